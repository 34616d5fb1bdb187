# syntax=docker/dockerfile:1
# The signal-trace image: the static tracer alone on an empty (scratch) image.
#   docker build -t localhost/signal-trace/signal-trace:0.1.0 .
# scripts/build-image.sh writes the same image as an OCI archive without a container engine;
# the builder stage runs that script's --rootfs mode, so both build the binary the same way:
# cargo build --release --target HOST -p signal-trace with -C target-feature=+crt-static,
# then debug info stripped. Run the image as root (see deploy/ and docs/deploy.md):
#   docker run --rm --pid=host --cap-drop=ALL --cap-add=BPF --cap-add=PERFMON --read-only \
#     -v /sys/kernel/tracing:/sys/kernel/tracing:ro -v /sys/fs/cgroup:/sys/fs/cgroup:ro \
#     localhost/signal-trace/signal-trace:0.1.0

ARG RUST_VERSION=1.95

FROM docker.io/library/rust:${RUST_VERSION}-bookworm AS builder
# What scripts/setup.sh installs: nightly with rust-src (the eBPF crate is built with
# -Z build-std=core), LLVM 22 and bpf-linker built against it; protobuf-compiler for the
# containerd client; file for the static-binary check.
ARG LLVM_MAJOR=22
ARG BPF_LINKER_VERSION=0.13.0
RUN apt-get update \
 && DEBIAN_FRONTEND=noninteractive apt-get install -y --no-install-recommends \
      "llvm-${LLVM_MAJOR}-dev" protobuf-compiler file binutils \
 && rm -rf /var/lib/apt/lists/*
RUN rustup toolchain install nightly --profile minimal --component rust-src
RUN LLVM_PREFIX="/usr/lib/llvm-${LLVM_MAJOR}" cargo install --locked bpf-linker \
      --version "${BPF_LINKER_VERSION}" --no-default-features --features "llvm-${LLVM_MAJOR}"
WORKDIR /src
COPY . .
RUN --mount=type=cache,target=/usr/local/cargo/registry \
    --mount=type=cache,target=/src/target \
    scripts/build-image.sh --rootfs /rootfs

FROM scratch
COPY --from=builder /rootfs/ /
USER 0:0
WORKDIR /
LABEL org.opencontainers.image.title="signal-trace"
ENTRYPOINT ["/signal-trace"]
CMD ["--format", "json"]
