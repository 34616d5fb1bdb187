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

die() { printf 'busybox-image: %s\n' "$*" >&2; exit 1; }
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
blobs=$work/oci/blobs/sha256
mkdir -p "$root/bin" "$root/dev" "$root/proc" "$root/sys" "$root/etc" "$root/tmp" "$blobs"
chmod 1777 "$root/tmp"
cp "$busybox" "$root/bin/busybox"
chmod 0755 "$root/bin/busybox"
for applet in $("$busybox" --list); do
  [ "$applet" = busybox ] || ln -sf busybox "$root/bin/$applet"
done
for needed in sh sleep kill yes head cat trap; do
  [ "$needed" = trap ] && continue # a shell builtin
  [ -L "$root/bin/$needed" ] || die "busybox has no $needed applet"
done

# Reproducible layer: sorted names, fixed owner and time.
tar --sort=name --owner=0 --group=0 --numeric-owner --mtime=@0 --format=posix \
  --pax-option=exthdr.name=%d/PaxHeaders/%f,delete=atime,delete=ctime \
  -C "$root" -cf "$work/layer.tar" .

# put FILE MEDIA-TYPE: stores FILE as a blob and prints its descriptor JSON.
put() {
  local digest size
  digest=$(sha256sum "$1" | cut -d' ' -f1)
  size=$(stat -c %s "$1")
  cp "$1" "$blobs/$digest"
  printf '{"mediaType":"%s","digest":"sha256:%s","size":%s}' "$2" "$digest" "$size"
}

layer_desc=$(put "$work/layer.tar" application/vnd.oci.image.layer.v1.tar)
diff_id=$(sha256sum "$work/layer.tar" | cut -d' ' -f1)

printf '{"architecture":"%s","os":"linux","config":{"Env":["PATH=/bin"],"Cmd":["sh"],"WorkingDir":"/"},"rootfs":{"type":"layers","diff_ids":["sha256:%s"]},"history":[{"created_by":"busybox-image.sh"}]}' \
  "$arch" "$diff_id" >"$work/config.json"
config_desc=$(put "$work/config.json" application/vnd.oci.image.config.v1+json)

printf '{"schemaVersion":2,"mediaType":"application/vnd.oci.image.manifest.v1+json","config":%s,"layers":[%s]}' \
  "$config_desc" "$layer_desc" >"$work/manifest.json"
manifest_desc=$(put "$work/manifest.json" application/vnd.oci.image.manifest.v1+json)

tag=${name##*:}
if [ "$tag" = "$name" ] || [[ "$tag" == */* ]]; then tag=latest; fi
printf '{"schemaVersion":2,"mediaType":"application/vnd.oci.image.index.v1+json","manifests":[%s]}' \
  "${manifest_desc%\}},\"platform\":{\"architecture\":\"$arch\",\"os\":\"linux\"},\"annotations\":{\"io.containerd.image.name\":\"$name\",\"org.opencontainers.image.ref.name\":\"$tag\"}}" \
  >"$work/oci/index.json"
printf '{"imageLayoutVersion":"1.0.0"}' >"$work/oci/oci-layout"

mkdir -p "$(dirname "$out")"
tar --sort=name --owner=0 --group=0 --numeric-owner --mtime=@0 -C "$work/oci" -cf "$out.tmp" \
  oci-layout index.json blobs
mv "$out.tmp" "$out"
printf 'busybox-image: wrote %s (%s)\n' "$out" "$name" >&2
