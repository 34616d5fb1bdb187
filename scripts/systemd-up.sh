#!/usr/bin/env bash
# Makes sure a real systemd runs for the live tests: a Debian bookworm root file system with
# systemd (debootstrap, cached), booted with systemd-nspawn in the background. Run as root.
# Idempotent: when the machine is up it returns in well under a second.
#   scripts/systemd-up.sh           build the root file system when missing or broken, boot it
#                                   when it does not run, wait until systemd is up
#   scripts/systemd-up.sh --fresh   power the machine off first, then as above
#   scripts/systemd-up.sh --down    power the machine off (kills it; nothing of it is kept)
#   scripts/systemd-up.sh --rootfs  only build the root file system (when missing or broken)
#
# Root file system: /var/cache/signal-trace/bookworm-systemd, made by
#   debootstrap --variant=minbase --include=systemd,systemd-sysv,dbus bookworm DIR MIRROR
# (MIRROR: the Debian mirror apt uses here) and valid while bookworm-systemd.ok beside it holds
# the recipe; otherwise it is made again. The machine boots it read-only under a volatile
# overlay (--volatile=overlay): what the tests write is gone at the next boot.
# Machine: systemd-nspawn -D DIR -b --register=no --keep-unit --volatile=overlay, in cgroup
# /signal-trace-systemd (its systemd's units: …/payload/system.slice/NAME.service);
#   /run/signal-trace-test/systemd/nspawn.pid   systemd-nspawn
#   /run/signal-trace-test/systemd/leader.pid   the machine's PID 1 (systemd), on the host
#   /run/signal-trace-test/systemd/nspawn.log   its console
# Drive it with: nsenter -t $(cat …/leader.pid) -a systemctl …
set -euo pipefail

here=$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)
log() { printf 'systemd-up: %s\n' "$*" >&2; }
die() { log "$*"; exit 1; }
source "$here/lib.sh"

ROOTFS=$TEST_CACHE/bookworm-systemd
MARKER=$ROOTFS.ok
RECIPE="debootstrap --variant=minbase --include=systemd,systemd-sysv,dbus bookworm v1"
RUN=$TEST_RUN/systemd
NSPAWN_PID=$RUN/nspawn.pid
LEADER_PID=$RUN/leader.pid
LOG=$RUN/nspawn.log
CGROUP_NAME=signal-trace-systemd
BOOT_SECONDS=60

mode=up
case "${1:-}" in
  "") ;;
  --fresh) mode=fresh ;;
  --down) mode=down ;;
  --rootfs) mode=rootfs ;;
  *) die "usage: systemd-up.sh [--fresh|--down|--rootfs]" ;;
esac

[ "$(id -u)" -eq 0 ] || die "must run as root (debootstrap and systemd-nspawn need it)"

cgroup2=$(awk '$9 == "cgroup2" {print $5; exit}' /proc/self/mountinfo)
[ -n "$cgroup2" ] || die "no cgroup2 mount: systemd in a container needs the unified hierarchy"
CGROUP=$cgroup2/$CGROUP_NAME

# The Debian mirror apt uses here (deb822 sources first, then sources.list).
mirror() {
  local m
  m=$(awk '/^URIs:/ {u=$2} /^Suites:/ {for (i = 2; i <= NF; i++) if ($i == "bookworm") {print u; exit}}' \
    /etc/apt/sources.list.d/*.sources 2>/dev/null || true)
  [ -n "$m" ] || m=$(awk '$1 == "deb" && $3 == "bookworm" {print $2; exit}' \
    /etc/apt/sources.list /etc/apt/sources.list.d/*.list 2>/dev/null || true)
  printf '%s\n' "${m:-http://deb.debian.org/debian}"
}

rootfs_ok() {
  [ "$(cat "$MARKER" 2>/dev/null)" = "$RECIPE" ] \
    && [ -x "$ROOTFS/lib/systemd/systemd" ] && [ -x "$ROOTFS/bin/systemctl" ] \
    && [ -e "$ROOTFS/usr/bin/dbus-daemon" ]
}

build_rootfs() {
  local m
  apt_install debootstrap
  m=$(mirror)
  log "debootstrap bookworm with systemd from $m into $ROOTFS (about 40 s)"
  rm -rf "$ROOTFS" "$ROOTFS.new" "$MARKER"
  mkdir -p "$TEST_CACHE"
  debootstrap --variant=minbase --include=systemd,systemd-sysv,dbus bookworm "$ROOTFS.new" "$m" \
    >"$TEST_CACHE/debootstrap.log" 2>&1 \
    || { tail -n 20 "$TEST_CACHE/debootstrap.log" >&2; die "debootstrap failed"; }
  # Nothing that waits for a console or a network in a machine without either.
  for unit in getty@tty1.service console-getty.service systemd-networkd-wait-online.service; do
    ln -sf /dev/null "$ROOTFS.new/etc/systemd/system/$unit"
  done
  printf 'signal-trace-test\n' >"$ROOTFS.new/etc/hostname"
  mv "$ROOTFS.new" "$ROOTFS"
  printf '%s\n' "$RECIPE" >"$MARKER"
}

# The machine's PID 1 on the host: the descendant of systemd-nspawn that is pid 1 in its own
# PID namespace.
find_leader() {
  local nspawn=$1 pid queue
  queue=$nspawn
  while [ -n "$queue" ]; do
    set -- $queue
    pid=$1
    shift
    queue="$* $(cat /proc/"$pid"/task/*/children 2>/dev/null || true)"
    queue=${queue# }
    if [ "$pid" != "$nspawn" ] && awk '$1 == "NSpid:" {exit !($NF == 1)}' /proc/"$pid"/status 2>/dev/null; then
      printf '%s\n' "$pid"
      return 0
    fi
  done
  return 1
}

running() {
  pidfile_alive "$NSPAWN_PID" && pidfile_alive "$LEADER_PID"
}

ready() {
  local state
  state=$(nsenter -t "$(cat "$LEADER_PID")" -a systemctl is-system-running 2>/dev/null || true)
  [ "$state" = running ] || [ "$state" = degraded ]
}

down() {
  local pid
  # Killing its PID 1 ends every process of the machine; nspawn then exits.
  if pidfile_alive "$LEADER_PID"; then kill -KILL "$(cat "$LEADER_PID")" 2>/dev/null || true; fi
  stop_pidfile "$NSPAWN_PID" 5
  # Machines of runs that lost their pid files.
  for pid in $(pgrep -f -- "systemd-nspawn -D $ROOTFS " || true); do kill_tree "$pid"; done
  rm -f "$LEADER_PID"
  umount_under "$RUN/mnt"
  # Empty cgroups of the machine, deepest first, in every hierarchy (on a hybrid host its
  # systemd keeps the name=systemd one too).
  local mount
  for mount in $(awk '$9 == "cgroup" || $9 == "cgroup2" {print $5}' /proc/self/mountinfo); do
    [ -d "$mount/$CGROUP_NAME" ] || continue
    find "$mount/$CGROUP_NAME" -depth -type d -exec rmdir {} + 2>/dev/null || true
  done
}

case $mode in
  down) down; exit 0 ;;
  fresh) down ;;
  rootfs) rootfs_ok || build_rootfs; exit 0 ;;
esac

if running; then
  ready && exit 0
else
  rootfs_ok || build_rootfs
  apt_install systemd-container
  down
  mkdir -p "$RUN" "$CGROUP"
  log "booting $ROOTFS with systemd-nspawn (console: $LOG)"
  # In a cgroup of its own, so that the machine's units sit at a known place.
  setsid sh -c 'echo $$ >"$1/cgroup.procs" && shift && exec "$@"' sh "$CGROUP" \
    systemd-nspawn -D "$ROOTFS" -b --register=no --keep-unit --volatile=overlay \
    --console=read-only --machine=signal-trace-test >"$LOG" 2>&1 </dev/null &
  echo $! >"$NSPAWN_PID"
  wait_until 10 "the machine's PID 1 to start" find_leader "$(cat "$NSPAWN_PID")" \
    || { tail -n 20 "$LOG" >&2; exit 1; }
  find_leader "$(cat "$NSPAWN_PID")" >"$LEADER_PID"
fi
started=$SECONDS
if ! wait_until "$BOOT_SECONDS" "systemd in the machine to finish booting" ready; then
  nsenter -t "$(cat "$LEADER_PID")" -a systemctl --failed --no-pager >&2 2>&1 || true
  tail -n 20 "$LOG" >&2
  exit 1
fi
log "systemd is up (pid $(cat "$LEADER_PID") on the host, booted in $((SECONDS - started)) s)"
