#!/usr/bin/env bash
# Writes a one-layer OCI image archive of a busybox rootfs, built from Debian's busybox-static
# without pulling anything:
#   scripts/busybox-image.sh OUT.tar [IMAGE-NAME]
# IMAGE-NAME defaults to localhost/signal-trace/busybox:latest. Import it with
#   ctr image import --index-name IMAGE-NAME OUT.tar
# (the archive also carries io.containerd.image.name, so a plain `ctr image import OUT.tar`
# names it the same). The rootfs holds /bin/busybox and a symlink for each of its applets
# (sh, sleep, kill, yes, head, cat, ...), plus empty /dev /proc /sys /etc and a sticky /tmp.
set -euo pipefail

out=${1:?usage: busybox-image.sh OUT.tar [IMAGE-NAME]}
name=${2:-localhost/signal-trace/busybox:latest}
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

oci_archive "$root" "$out" "$name" "$arch" '{"Env":["PATH=/bin"],"Cmd":["sh"],"WorkingDir":"/"}' 0 busybox-image.sh
printf 'busybox-image: wrote %s (%s)\n' "$out" "$name" >&2
