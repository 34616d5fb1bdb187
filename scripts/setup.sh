#!/usr/bin/env bash
# Installs what building and testing signal-trace needs, and nothing that is already there.
# Idempotent: on a machine that has everything it returns in well under a second.
#   scripts/setup.sh          build toolchain (nightly rust-src, LLVM 22, bpf-linker)
#   scripts/setup.sh --test   the above plus what the live tests use
set -euo pipefail

BPF_LINKER_VERSION=0.13.0
LLVM_MAJOR=22
want_test=0
[ "${1:-}" = "--test" ] && want_test=1

log() { printf 'setup: %s\n' "$*" >&2; }
export PATH="$HOME/.cargo/bin:$PATH"

source "$(dirname "${BASH_SOURCE[0]}")/lib.sh"

# 1. nightly with rust-src: the eBPF crate is built with -Z build-std=core.
if ! rustup toolchain list | grep -q '^nightly'; then
  log "the nightly toolchain is missing and cannot be fetched here"; exit 1
fi
if ! rustup component list --toolchain nightly --installed 2>/dev/null | grep -q '^rust-src'; then
  log "adding rust-src to nightly"
  rustup component add rust-src --toolchain nightly >/dev/null
fi

# 2. bpf-linker built against LLVM 22.
if ! bpf-linker --version 2>/dev/null | grep -q "$BPF_LINKER_VERSION"; then
  apt_install "llvm-$LLVM_MAJOR-dev"
  log "building bpf-linker $BPF_LINKER_VERSION against LLVM $LLVM_MAJOR (about a minute)"
  LLVM_PREFIX=/usr/lib/llvm-$LLVM_MAJOR cargo +stable install --quiet --locked bpf-linker \
    --version "$BPF_LINKER_VERSION" --no-default-features --features "llvm-$LLVM_MAJOR"
fi

# 3. protoc: the containerd API client is generated from its protobuf definitions at build time.
apt_install protobuf-compiler

# 4. What the live tests drive: util-linux (unshare, setpriv, nsenter), procps, the inits and
#    tools tests run in containers, and the engines, each from an empty state every run:
#    the tests' containerd with the busybox and pause images (scripts/containerd-up.sh), their
#    dockerd (docker-up.sh) and podman (podman-up.sh); the systemd machine is booted by the
#    tests that need it (tests/common/systemd.rs) and one left over from a killed run is
#    powered off here, its root file system built when missing (systemd-up.sh).
if [ $want_test -eq 1 ]; then
  apt_install util-linux procps file binutils curl tini dumb-init stress-ng bpftrace \
    containerd runc busybox-static docker.io podman catatonit systemd-container debootstrap
  here=$(dirname "${BASH_SOURCE[0]}")
  bash "$here/containerd-up.sh" --fresh
  bash "$here/docker-up.sh" --fresh
  bash "$here/podman-up.sh" --fresh
  bash "$here/systemd-up.sh" --down
  bash "$here/systemd-up.sh" --rootfs
  # kubernetes-validate (and PyYAML) check the Kubernetes manifests under deploy/.
  if ! python3 -c 'import kubernetes_validate, yaml' 2>/dev/null; then
    log "installing kubernetes-validate"
    python3 -m pip install --quiet --disable-pip-version-check kubernetes-validate==1.37.0 \
      || python3 -m pip install --quiet --disable-pip-version-check --break-system-packages kubernetes-validate==1.37.0
  fi
fi
