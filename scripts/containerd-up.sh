#!/usr/bin/env bash
# Makes sure a containerd answers on its default socket, with the busybox test image imported,
# for the tests that drive real containers (signal-trace/tests/runtime_live.rs). Run as root.
# Idempotent: when all is in place it returns in well under a second.
#   scripts/containerd-up.sh
# Installs containerd, runc, busybox-static (and protobuf-compiler, which building the
# containerd client needs) from Debian when missing; starts containerd when it does not answer
# (log: ${CONTAINERD_LOG:-/tmp/containerd.log}); imports localhost/signal-trace/busybox:latest
# into the containerd namespace "default" when it is not there.
set -euo pipefail

IMAGE=localhost/signal-trace/busybox:latest
LOG=${CONTAINERD_LOG:-/tmp/containerd.log}
WAIT_SECONDS=30
here=$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)

log() { printf 'containerd-up: %s\n' "$*" >&2; }
die() { log "$*"; exit 1; }

[ "$(id -u)" -eq 0 ] || die "must run as root (containerd and its containers need it)"

source "$(dirname "${BASH_SOURCE[0]}")/lib.sh"

apt_install containerd runc busybox-static procps

answering() { ctr --connect-timeout 1s version >/dev/null 2>&1; }

if ! answering; then
  if pgrep -x containerd >/dev/null; then
    log "a containerd process exists but does not answer; waiting for it"
  else
    log "starting containerd (log: $LOG)"
    setsid containerd >"$LOG" 2>&1 </dev/null &
  fi
  deadline=$((SECONDS + WAIT_SECONDS))
  until answering; do
    if [ $SECONDS -ge $deadline ]; then
      log "containerd did not answer within ${WAIT_SECONDS}s; last lines of $LOG:"
      tail -n 20 "$LOG" >&2 2>/dev/null || true
      exit 1
    fi
    sleep 0.2
  done
  log "containerd is up"
fi

if ! ctr -n default image ls -q | grep -qxF "$IMAGE"; then
  archive=$(mktemp --suffix=.tar)
  trap 'rm -f "$archive"' EXIT
  "$here/busybox-image.sh" "$archive" "$IMAGE"
  ctr -n default image import --index-name "$IMAGE" "$archive" >/dev/null
  ctr -n default image ls -q | grep -qxF "$IMAGE" || die "importing $IMAGE failed"
  log "imported $IMAGE"
fi
