#!/usr/bin/env bash
# Writes a one-layer OCI image archive of a busybox rootfs, built from Debian's busybox-static
# without pulling anything:
#   scripts/busybox-image.sh OUT.tar [IMAGE-NAME]
#   scripts/busybox-image.sh --pause OUT.tar [IMAGE-NAME]
#   scripts/busybox-image.sh --rootfs-tar OUT.tar
# IMAGE-NAME defaults to localhost/signal-trace/busybox:latest (--pause:
# localhost/signal-trace/pause:latest). Import it with
#   ctr image import OUT.tar
# The archive names itself (io.containerd.image.name in its index). Do not add --index-name:
# on a containerd with an empty content store that fails with "content digest ... not found".
# The rootfs holds /bin/busybox and a symlink for each of its applets (sh, sleep, kill, yes,
# head, cat, ...), plus empty /dev /proc /sys /etc and a sticky /tmp.
# --pause adds /pause (scripts/pause.c, built static with cc) as the entrypoint: the sandbox
# image of pods run through containerd's CRI plugin.
# --rootfs-tar writes the root file system as a plain tar, for `docker import` and
# `podman import`.
set -euo pipefail

usage() {
  printf 'usage: busybox-image.sh [--pause|--rootfs-tar] OUT.tar [IMAGE-NAME]\n' >&2
  exit 1
}
kind=image
case "${1:-}" in
  --pause) kind=pause; shift ;;
  --rootfs-tar) kind=rootfs; shift ;;
  -* | "") usage ;;
esac
out=${1:-}
[ -n "$out" ] || usage
name=${2:-localhost/signal-trace/busybox:latest}
[ $kind = pause ] && name=${2:-localhost/signal-trace/pause:latest}
busybox=/bin/busybox

log() { printf 'busybox-image: %s\n' "$*" >&2; }
die() { log "$*"; exit 1; }
source "$(dirname "${BASH_SOURCE[0]}")/lib.sh"
[ -x "$busybox" ] || die "$busybox is missing (apt-get install busybox-static)"
file_type=$(od -An -tx1 -j16 -N2 "$busybox" | tr -d ' \n')
[ "$file_type" = "0200" ] || die "$busybox is not a static executable (install busybox-static, not busybox)"

case "$(uname -m)" in
  x86_64) arch=amd64 ;;
  aarch64) arch=arm64 ;;
  armv7l) arch=arm ;;
  ppc64le) arch=ppc64le ;;
  s390x) arch=s390x ;;
  riscv64) arch=riscv64 ;;
  *) die "unsupported machine $(uname -m)" ;;
esac

work=$(mktemp -d)
trap 'rm -rf "$work"' EXIT
root=$work/rootfs
mkdir -p "$root/bin" "$root/dev" "$root/proc" "$root/sys" "$root/etc" "$root/tmp"
chmod 1777 "$root/tmp"
cp "$busybox" "$root/bin/busybox"
chmod 0755 "$root/bin/busybox"
for applet in $("$busybox" --list); do
  [ "$applet" = busybox ] || ln -sf busybox "$root/bin/$applet"
done
for needed in sh sleep kill yes head cat; do
  [ -L "$root/bin/$needed" ] || die "busybox has no $needed applet"
done

case $kind in
  image)
    oci_archive "$root" "$out" "$name" "$arch" '{"Env":["PATH=/bin"],"Cmd":["sh"],"WorkingDir":"/"}' 0 busybox-image.sh
    ;;
  pause)
    command -v cc >/dev/null || die "cc is missing (apt-get install gcc libc6-dev)"
    cc -static -Os -s -o "$root/pause" "$(dirname "${BASH_SOURCE[0]}")/pause.c" \
      || die "cannot build pause.c statically (apt-get install libc6-dev)"
    oci_archive "$root" "$out" "$name" "$arch" '{"Env":["PATH=/bin"],"Entrypoint":["/pause"],"WorkingDir":"/"}' 0 busybox-image.sh
    ;;
  rootfs)
    tar --sort=name --owner=0 --group=0 --numeric-owner --mtime=@0 -C "$root" -cf "$out" .
    log "wrote $out (root file system)"
    exit 0
    ;;
esac
log "wrote $out ($name)"
