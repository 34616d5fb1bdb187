#!/usr/bin/env bash
# Makes sure the live tests' own dockerd answers, with the busybox root file system imported as
# localhost/signal-trace/busybox:latest. Run as root. Idempotent: when all is in place it
# returns in well under a second.
#   scripts/docker-up.sh           start it when it does not answer (on the data it has)
#   scripts/docker-up.sh --fresh   stop it, remove its containers and data, start it again
#   scripts/docker-up.sh --down    stop it, remove its containers and data
#
# It is not the system's dockerd and leaves that one alone:
#   socket     /run/signal-trace-test/docker.sock     (docker -H unix://…)
#   exec-root  /run/signal-trace-test/docker/exec      data-root /var/lib/signal-trace-test/docker
#   config     /run/signal-trace-test/docker/daemon.json, pid file docker.pid, log docker.log
# No iptables, no bridge: containers use --network host or none.
#
# Its containerd is the tests' own (scripts/containerd-up.sh, which this starts when needed),
# named with --containerd, its containers in containerd namespace "moby". Named, because a
# dockerd 20.10 without --containerd takes whatever answers on /run/containerd/containerd.sock
# and starts a private one only when nothing does: the set-up would change with the machine.
# One containerd also means one --containerd-socket shows the tracer every engine's containers,
# as on a host where Debian's docker.io runs on the system's containerd.
# containerd-up.sh --fresh/--down take this dockerd down first (its containers live there).
#
# Use /usr/bin/docker (Debian's docker.io): /usr/local/bin/docker may be another CLI.
# `docker run --init` uses /usr/bin/docker-init (tini).
set -euo pipefail

here=$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)
log() { printf 'docker-up: %s\n' "$*" >&2; }
die() { log "$*"; exit 1; }
source "$here/lib.sh"

IMAGE=localhost/signal-trace/busybox:latest
DOCKER=/usr/bin/docker
SOCK=$TEST_RUN/docker.sock
RUN=$TEST_RUN/docker
EXEC_ROOT=$RUN/exec
DATA_ROOT=$TEST_LIB/docker
CONFIG=$RUN/daemon.json
PIDFILE=$RUN/docker.pid
LOG=$RUN/docker.log
CONTAINERD_SOCK=$TEST_RUN/containerd/containerd.sock
WAIT_SECONDS=60

mode=up
case "${1:-}" in
  "") ;;
  --fresh) mode=fresh ;;
  --down) mode=down ;;
  *) die "usage: docker-up.sh [--fresh|--down]" ;;
esac

[ "$(id -u)" -eq 0 ] || die "must run as root (dockerd needs it)"

d() { "$DOCKER" -H "unix://$SOCK" "$@"; }
# The API over the socket with curl: the docker CLI takes 0.1 s a call.
api() { curl -sf --max-time 2 --unix-socket "$SOCK" "http://docker$1"; }
answering() { [ -S "$SOCK" ] && api /_ping >/dev/null 2>&1; }
has_image() { api "/images/$IMAGE/json" >/dev/null 2>&1; }

down() {
  local ids
  if answering; then
    ids=$(d ps -aq)
    # shellcheck disable=SC2086
    [ -z "$ids" ] || d rm -f $ids >/dev/null 2>&1 || true
  fi
  stop_pidfile "$PIDFILE" 10
  # Whatever dockerd left in the tests' containerd goes with its data.
  if [ -S "$CONTAINERD_SOCK" ]; then
    local c=(ctr --address "$CONTAINERD_SOCK" --connect-timeout 1s -n moby)
    for id in $("${c[@]}" task ls -q 2>/dev/null); do
      "${c[@]}" task kill -s SIGKILL "$id" >/dev/null 2>&1 || true
      "${c[@]}" task delete -f "$id" >/dev/null 2>&1 || true
    done
    for id in $("${c[@]}" container ls -q 2>/dev/null); do
      "${c[@]}" container delete "$id" >/dev/null 2>&1 || true
    done
  fi
  umount_under "$EXEC_ROOT" "$DATA_ROOT"
  rm -rf "$EXEC_ROOT" "$DATA_ROOT" "$SOCK"
}

case $mode in
  down) down; exit 0 ;;
  fresh) down ;;
esac

apt_install docker.io tini curl
[ -x "$DOCKER" ] || die "$DOCKER is missing after installing docker.io"
bash "$here/containerd-up.sh"

if ! answering; then
  if pidfile_alive "$PIDFILE"; then
    wait_until "$WAIT_SECONDS" "dockerd (pid $(cat "$PIDFILE")) to answer on $SOCK" answering \
      || { tail -n 20 "$LOG" >&2 2>/dev/null || true; exit 1; }
  else
    mkdir -p "$RUN" "$EXEC_ROOT" "$DATA_ROOT"
    echo '{}' >"$CONFIG"
    log "starting dockerd on $SOCK (log: $LOG)"
    setsid dockerd --config-file "$CONFIG" -H "unix://$SOCK" --exec-root "$EXEC_ROOT" \
      --data-root "$DATA_ROOT" --pidfile "$PIDFILE" --containerd "$CONTAINERD_SOCK" \
      --iptables=false --ip-forward=false --ip-masq=false --bridge=none \
      --userland-proxy=false --init-path /usr/bin/docker-init >"$LOG" 2>&1 </dev/null &
    if ! wait_until "$WAIT_SECONDS" "dockerd to answer on $SOCK" answering; then
      tail -n 20 "$LOG" >&2 2>/dev/null || true
      exit 1
    fi
  fi
fi

if ! has_image; then
  d import --change 'ENV PATH=/bin' --change 'CMD ["sh"]' "$(cached_busybox rootfs)" "$IMAGE" >/dev/null
  has_image || die "docker import did not make $IMAGE"
  log "imported $IMAGE"
fi
