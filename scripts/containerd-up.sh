#!/usr/bin/env bash
# Makes sure the live tests' own containerd answers, with the busybox test image imported, and
# its CRI plugin ready to run pods (sandbox image imported, host network only: no CNI).
# Run as root. Idempotent: when all is in place it returns in well under a second.
#   scripts/containerd-up.sh           start it when it does not answer (on the state it has)
#   scripts/containerd-up.sh --fresh   stop it, kill its containers, empty its root and state,
#                                      and start it again (setup.sh --test does this: every
#                                      test run starts from an empty containerd)
#   scripts/containerd-up.sh --down    stop it, kill its containers, empty its root and state
# --fresh and --down take the tests' dockerd (scripts/docker-up.sh), which runs on this
# containerd, down first.
#
# It is not the system's containerd and leaves that one alone:
#   socket  /run/signal-trace-test/containerd/containerd.sock
#   config  /run/signal-trace-test/containerd/config.toml (written here)
#   state   /run/signal-trace-test/containerd/state      root /var/lib/signal-trace-test/containerd
#   log     /run/signal-trace-test/containerd/containerd.log, pid file containerd.pid beside it
# Images: localhost/signal-trace/busybox:latest in the namespaces "default" (ctr) and
# "k8s.io" (CRI), localhost/signal-trace/pause:latest in "k8s.io" (the CRI sandbox image).
# Installs containerd, runc and busybox-static from Debian when missing.
set -euo pipefail

here=$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)
log() { printf 'containerd-up: %s\n' "$*" >&2; }
die() { log "$*"; exit 1; }
source "$here/lib.sh"

IMAGE=localhost/signal-trace/busybox:latest
PAUSE=localhost/signal-trace/pause:latest
RUN=$TEST_RUN/containerd
SOCK=$RUN/containerd.sock
STATE=$RUN/state
ROOT=$TEST_LIB/containerd
CONFIG=$RUN/config.toml
PIDFILE=$RUN/containerd.pid
LOG=$RUN/containerd.log
WAIT_SECONDS=30

mode=up
case "${1:-}" in
  "") ;;
  --fresh) mode=fresh ;;
  --down) mode=down ;;
  *) die "usage: containerd-up.sh [--fresh|--down]" ;;
esac

[ "$(id -u)" -eq 0 ] || die "must run as root (containerd and its containers need it)"
apt_install containerd runc busybox-static procps

c() { ctr --address "$SOCK" --connect-timeout 1s "$@"; }
answering() { [ -S "$SOCK" ] && c version >/dev/null 2>&1; }

# Kills every task of every namespace, deletes them and their containers (runc removes their
# cgroups), stops containerd, kills what its shims still hold, and empties its root and state.
down() {
  local ns ids id shim
  # The tests' dockerd keeps its containers here (scripts/docker-up.sh): it goes first.
  if [ -e "$TEST_RUN/docker/docker.pid" ] || [ -d "$TEST_LIB/docker" ]; then
    bash "$here/docker-up.sh" --down
  fi
  if answering; then
    for ns in $(c namespaces ls -q); do
      ids=$(c -n "$ns" task ls -q)
      for id in $ids; do c -n "$ns" task kill -s SIGKILL "$id" >/dev/null 2>&1 || true; done
      for id in $ids; do
        wait_until 5 "task $ns/$id to stop" \
          sh -c "! ctr --address '$SOCK' -n '$ns' task ls | grep -q '^$id .*RUNNING'" || true
        c -n "$ns" task delete -f "$id" >/dev/null 2>&1 || true
      done
      for id in $(c -n "$ns" container ls -q); do
        c -n "$ns" container delete "$id" >/dev/null 2>&1 || true
      done
    done
  fi
  # Its state goes: no need for a clean shutdown (which takes over a second).
  stop_pidfile "$PIDFILE" 0
  # Shims of this instance outlive it; so would their containers.
  for shim in $(pgrep -f -- "-address $SOCK( |$)" || true); do kill_tree "$shim"; done
  umount_under "$STATE" "$ROOT"
  rm -rf "$STATE" "$ROOT" "$SOCK" "$SOCK.ttrpc"
}

write_config() {
  mkdir -p "$RUN"
  cat >"$CONFIG" <<EOF
# Written by scripts/containerd-up.sh: the live tests' own containerd.
version = 2
root = "$ROOT"
state = "$STATE"
oom_score = 0

[grpc]
  address = "$SOCK"

[ttrpc]
  address = "$SOCK.ttrpc"

[debug]
  address = ""

[metrics]
  address = ""

[plugins."io.containerd.grpc.v1.cri"]
  sandbox_image = "$PAUSE"
  stream_server_address = "127.0.0.1"
  stream_server_port = "0"
  disable_apparmor = true
  # No CAP_SYS_RESOURCE here: sandboxes get -998 otherwise, which runc cannot set.
  restrict_oom_score_adj = true
  enable_selinux = false
  systemd_cgroup = false
  [plugins."io.containerd.grpc.v1.cri".cni]
    # Pods use the host's network namespace; no CNI plugin is installed or needed.
    bin_dir = "$RUN/cni/bin"
    conf_dir = "$RUN/cni/net.d"
  [plugins."io.containerd.grpc.v1.cri".containerd]
    snapshotter = "overlayfs"
    default_runtime_name = "runc"
    [plugins."io.containerd.grpc.v1.cri".containerd.runtimes.runc]
      runtime_type = "io.containerd.runc.v2"
      [plugins."io.containerd.grpc.v1.cri".containerd.runtimes.runc.options]
        SystemdCgroup = false
EOF
}

start() {
  write_config
  mkdir -p "$ROOT" "$STATE"
  log "starting containerd on $SOCK (log: $LOG)"
  setsid containerd --config "$CONFIG" >"$LOG" 2>&1 </dev/null &
  echo $! >"$PIDFILE"
  if ! wait_until "$WAIT_SECONDS" "containerd to answer on $SOCK" answering; then
    tail -n 20 "$LOG" >&2 2>/dev/null || true
    exit 1
  fi
}

# has_image NS NAME
has_image() { c -n "$1" image ls -q | grep -qxF "$2"; }

# import NS ARCHIVE NAME: a plain import; the archive names the image itself.
import() {
  c -n "$1" image import "$2" >/dev/null
  # The CRI plugin may still be indexing the image when the import returns.
  wait_until 5 "image $3 in namespace $1" has_image "$1" "$3" \
    || die "importing $2 into namespace $1 did not make $3"
  log "imported $3 into namespace $1"
}

case $mode in
  down) down; exit 0 ;;
  fresh) down ;;
esac

if ! answering; then
  if pidfile_alive "$PIDFILE"; then
    wait_until "$WAIT_SECONDS" "containerd (pid $(cat "$PIDFILE")) to answer on $SOCK" answering \
      || { tail -n 20 "$LOG" >&2 2>/dev/null || true; exit 1; }
  else
    start
  fi
fi

has_image default "$IMAGE" || import default "$(cached_busybox image)" "$IMAGE"
has_image k8s.io "$IMAGE" || import k8s.io "$(cached_busybox image)" "$IMAGE"
has_image k8s.io "$PAUSE" || import k8s.io "$(cached_busybox pause)" "$PAUSE"
