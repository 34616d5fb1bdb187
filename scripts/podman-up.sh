#!/usr/bin/env bash
# Makes sure the live tests' podman is ready: its own storage and configuration, the busybox
# root file system imported as localhost/signal-trace/busybox:latest, and its Docker-compatible
# API (`podman system service`) answering on a socket. Run as root. Idempotent: when all is in
# place it returns in well under a second.
#   scripts/podman-up.sh           set up what is missing
#   scripts/podman-up.sh --fresh   remove its containers, images and storage first
#   scripts/podman-up.sh --down    remove its containers, images and storage, stop the service
#
# Run podman with its configuration in the environment (the tests' helper does):
#   CONTAINERS_CONF=/run/signal-trace-test/podman/containers.conf
#   CONTAINERS_STORAGE_CONF=/run/signal-trace-test/podman/storage.conf
# storage /var/lib/signal-trace-test/podman (run root /run/signal-trace-test/podman/run);
# API socket /run/signal-trace-test/podman.sock (docker -H unix://…), service log and pid file
# under /run/signal-trace-test/podman.
# Its defaults fit this machine: runc, cgroupfs (no systemd), the host's network (no CNI
# plugin or netavark), and nofile and nproc limits of 1024: podman's default nofile limit
# (1048576) is above the hard limit here, and raising it needs CAP_SYS_RESOURCE, which root
# lacks on this machine, so every container would fail with "error setting rlimit type 7".
# --init uses catatonit.
set -euo pipefail

here=$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)
log() { printf 'podman-up: %s\n' "$*" >&2; }
die() { log "$*"; exit 1; }
source "$here/lib.sh"

IMAGE=localhost/signal-trace/busybox:latest
RUN=$TEST_RUN/podman
GRAPHROOT=$TEST_LIB/podman
RUNROOT=$RUN/run
SOCK=$TEST_RUN/podman.sock
PIDFILE=$RUN/service.pid
LOG=$RUN/service.log
export CONTAINERS_CONF=$RUN/containers.conf
export CONTAINERS_STORAGE_CONF=$RUN/storage.conf
WAIT_SECONDS=30

mode=up
case "${1:-}" in
  "") ;;
  --fresh) mode=fresh ;;
  --down) mode=down ;;
  *) die "usage: podman-up.sh [--fresh|--down]" ;;
esac

[ "$(id -u)" -eq 0 ] || die "must run as root"

api() { curl -sf --max-time 2 --unix-socket "$SOCK" "http://podman$1"; }
answering() { [ -S "$SOCK" ] && api /_ping >/dev/null 2>&1; }

write_config() {
  mkdir -p "$RUN"
  cat >"$CONTAINERS_CONF" <<EOF
# Written by scripts/podman-up.sh.
[containers]
default_ulimits = ["nofile=1024:1024", "nproc=1024:1024"]
netns = "host"
log_driver = "k8s-file"

[engine]
cgroup_manager = "cgroupfs"
events_logger = "file"
runtime = "runc"
EOF
  cat >"$CONTAINERS_STORAGE_CONF" <<EOF
# Written by scripts/podman-up.sh.
[storage]
driver = "overlay"
graphroot = "$GRAPHROOT"
runroot = "$RUNROOT"
EOF
}

down() {
  stop_pidfile "$PIDFILE" 5
  if [ -f "$CONTAINERS_STORAGE_CONF" ] && command -v podman >/dev/null; then
    podman rm -af -t 0 >/dev/null 2>&1 || true
  fi
  # conmon of containers the removal missed.
  local pid
  for pid in $(pgrep -f -- "conmon .*$RUNROOT" || true); do kill_tree "$pid"; done
  umount_under "$GRAPHROOT" "$RUNROOT"
  rm -rf "$GRAPHROOT" "$RUNROOT" "$SOCK"
}

case $mode in
  down) down; exit 0 ;;
  fresh) down ;;
esac

apt_install podman catatonit runc curl
[ -f "$CONTAINERS_CONF" ] && [ -f "$CONTAINERS_STORAGE_CONF" ] || write_config

if ! podman image exists "$IMAGE" 2>/dev/null; then
  podman import -q --change 'ENV PATH=/bin' --change 'CMD ["sh"]' "$(cached_busybox rootfs)" \
    "$IMAGE" >/dev/null
  podman image exists "$IMAGE" || die "podman import did not make $IMAGE"
  log "imported $IMAGE"
fi

if ! answering; then
  if ! pidfile_alive "$PIDFILE"; then
    log "starting podman system service on $SOCK (log: $LOG)"
    rm -f "$SOCK"
    setsid podman system service --time=0 "unix://$SOCK" >"$LOG" 2>&1 </dev/null &
    echo $! >"$PIDFILE"
  fi
  if ! wait_until "$WAIT_SECONDS" "podman's API to answer on $SOCK" answering; then
    tail -n 20 "$LOG" >&2 2>/dev/null || true
    exit 1
  fi
fi
