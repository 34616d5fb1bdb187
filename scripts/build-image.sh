#!/usr/bin/env bash
# Builds the signal-trace container image without a container engine and without pulling any
# base image: the static release binary, alone in a one-layer OCI image archive.
#   scripts/build-image.sh OUT.tar [IMAGE-NAME]
#   scripts/build-image.sh --rootfs DIR
# IMAGE-NAME defaults to localhost/signal-trace/signal-trace:VERSION (VERSION: the crate's).
# Import the archive with
#   ctr image import OUT.tar                   (containerd; add -n k8s.io for the kubelet's)
#   docker load -i OUT.tar                     (Docker 25 and later)
# The image holds /signal-trace only, runs as uid 0, and has Entrypoint ["/signal-trace"] and
# Cmd ["--format","json"] (NDJSON on stdout). --rootfs DIR only writes the image's file tree
# into DIR; the Dockerfile's builder stage uses it, so both build the same binary the same way.
#
# The binary is built with `cargo build --release --target HOST -p signal-trace` and
# -C target-feature=+crt-static (glibc's static libraries, from libc6-dev), in
# target/HOST/release; debug info is stripped for the image. The archive is deterministic:
# building the same sources twice writes the same bytes.
set -euo pipefail

here=$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)
root=$(dirname "$here")

log() { printf 'build-image: %s\n' "$*" >&2; }
die() { log "$*"; exit 1; }
source "$(dirname "${BASH_SOURCE[0]}")/lib.sh"
usage() { die "usage: build-image.sh OUT.tar [IMAGE-NAME] | build-image.sh --rootfs DIR"; }

rootfs_only=
case "${1:-}" in
  "") usage ;;
  --rootfs) [ $# -eq 2 ] || usage; rootfs_only=$2 ;;
  -*) usage ;;
  *) [ $# -le 2 ] || usage; out=$1; name=${2:-} ;;
esac

# Only when missing: a changed PATH makes cargo rerun the build script, which rebuilds the
# kernel programs.
case ":$PATH:" in
  *":$HOME/.cargo/bin:"*) ;;
  *) export PATH="$HOME/.cargo/bin:$PATH" ;;
esac
for tool in cargo rustc sha256sum tar gzip objcopy file; do
  command -v "$tool" >/dev/null || die "$tool is missing"
done

case "$(uname -m)" in
  x86_64) arch=amd64 ;;
  aarch64) arch=arm64 ;;
  *) die "unsupported machine $(uname -m) (x86_64 and aarch64 are)" ;;
esac

# 1. The toolchain: nightly rust-src, LLVM 22, bpf-linker (quick when all is there). Without
#    bpf-linker on PATH the build would quietly make a binary without its kernel programs.
"$here/setup.sh"
command -v bpf-linker >/dev/null || die "bpf-linker is not on PATH after scripts/setup.sh"

# 2. The static binary.
host=$(rustc -vV | sed -n 's/^host: //p')
case "$host" in
  *-linux-gnu) ;;
  *) die "unsupported host target $host (a *-linux-gnu target is needed for +crt-static)" ;;
esac
flags_var=CARGO_TARGET_$(printf '%s' "$host" | tr 'a-z-' 'A-Z_')_RUSTFLAGS
started=$SECONDS
# Target-specific flags only: build scripts, proc macros and the eBPF crate (built by aya-build
# for bpfel-unknown-none) stay as they are.
(cd "$root" && env -u RUSTFLAGS -u CARGO_ENCODED_RUSTFLAGS -u AYA_BUILD_SKIP \
  "$flags_var=-C target-feature=+crt-static" \
  cargo build --release --locked --target "$host" --package signal-trace)
bin=$root/target/$host/release/signal-trace
log "built $bin in $((SECONDS - started)) s"

# A static executable has no program interpreter; ldd says so in one of two ways.
file -b "$bin" | grep -Eq 'static(-pie)? linked|statically linked' \
  || die "$bin is not statically linked: $(file -b "$bin")"
if command -v ldd >/dev/null; then
  ldd_out=$(ldd "$bin" 2>&1 || true)
  case "$ldd_out" in
    *"not a dynamic executable"* | *"statically linked"*) ;;
    *) die "ldd lists libraries for $bin: $ldd_out" ;;
  esac
fi
# The kernel programs are embedded as an ELF relocatable object for EM_BPF (247).
LC_ALL=C grep -qaP '\x7fELF\x02\x01\x01\x00{9}\x01\x00\xf7\x00' "$bin" \
  || die "$bin carries no kernel programs (was bpf-linker on PATH when it was built?)"

work=$(mktemp -d)
trap 'rm -rf "$work"' EXIT
tree=$work/rootfs
mkdir -p "$tree"
objcopy --strip-debug "$bin" "$tree/signal-trace"
chmod 0755 "$tree/signal-trace"
"$tree/signal-trace" --version >/dev/null || die "the stripped binary does not run"

if [ -n "$rootfs_only" ]; then
  mkdir -p "$rootfs_only"
  cp -p "$tree/signal-trace" "$rootfs_only/signal-trace"
  log "wrote $rootfs_only/signal-trace"
  exit 0
fi

version=$("$tree/signal-trace" --version | awk '{print $2}')
[ -n "$version" ] || die "cannot read the version of $bin"
name=${name:-localhost/signal-trace/signal-trace:$version}

# The same configuration as the Dockerfile's final stage.
oci_archive "$tree" "$out" "$name" "$arch" \
  '{"User":"0:0","Entrypoint":["/signal-trace"],"Cmd":["--format","json"],"WorkingDir":"/","Labels":{"org.opencontainers.image.title":"signal-trace"}}' \
  1 build-image.sh
log "wrote $out ($name; binary $(stat -c %s "$tree/signal-trace") bytes, layer $OCI_LAYER_BYTES bytes compressed)"
