# Shared by the setup scripts: `source` it after defining log().

apt_updated=0

# apt_install PACKAGE...: installs the Debian packages that are missing (one apt-get update
# first), and nothing when all are there.
apt_install() {
  local missing=()
  for p in "$@"; do
    dpkg-query -W -f='${Status}' "$p" 2>/dev/null | grep -q 'install ok installed' || missing+=("$p")
  done
  [ ${#missing[@]} -eq 0 ] && return 0
  if [ "$(id -u)" -ne 0 ]; then
    log "missing Debian packages: ${missing[*]} (run this script as root to install them)"; exit 1
  fi
  if [ $apt_updated -eq 0 ]; then
    log "apt-get update"; apt-get update -qq; apt_updated=1
  fi
  log "installing ${missing[*]}"
  DEBIAN_FRONTEND=noninteractive apt-get install -y -qq --no-install-recommends "${missing[@]}" >/dev/null
}

# oci_archive ROOTFS OUT.tar NAME ARCH CONFIG GZIP CREATED_BY: writes a reproducible one-layer
# OCI image archive of the directory ROOTFS (sorted names, fixed owner and times), importable
# with `ctr image import`. CONFIG is the image config's "config" object as JSON; GZIP is 1 to
# compress the layer.
oci_archive() {
  local root=$1 out=$2 name=$3 arch=$4 config=$5 gzip=$6 created_by=$7
  local work blobs diff_id layer_desc config_desc manifest_desc tag layer media
  work=$(mktemp -d)
  blobs=$work/oci/blobs/sha256
  mkdir -p "$blobs"
  tar --sort=name --owner=0 --group=0 --numeric-owner --mtime=@0 --format=posix \
    --pax-option=exthdr.name=%d/PaxHeaders/%f,delete=atime,delete=ctime \
    -C "$root" -cf "$work/layer.tar" .
  diff_id=$(sha256sum "$work/layer.tar" | cut -d' ' -f1)
  layer=$work/layer.tar
  media=application/vnd.oci.image.layer.v1.tar
  if [ "$gzip" = 1 ]; then
    gzip -9 -n -c "$work/layer.tar" >"$work/layer.tar.gz"
    layer=$work/layer.tar.gz
    media=application/vnd.oci.image.layer.v1.tar+gzip
  fi
  # _oci_put FILE MEDIA-TYPE: stores FILE as a blob and prints its descriptor JSON.
  _oci_put() {
    local digest size
    digest=$(sha256sum "$1" | cut -d' ' -f1)
    size=$(stat -c %s "$1")
    cp "$1" "$blobs/$digest"
    printf '{"mediaType":"%s","digest":"sha256:%s","size":%s}' "$2" "$digest" "$size"
  }
  layer_desc=$(_oci_put "$layer" "$media")
  printf '{"architecture":"%s","os":"linux","config":%s,"rootfs":{"type":"layers","diff_ids":["sha256:%s"]},"history":[{"created_by":"%s"}]}' \
    "$arch" "$config" "$diff_id" "$created_by" >"$work/config.json"
  config_desc=$(_oci_put "$work/config.json" application/vnd.oci.image.config.v1+json)
  printf '{"schemaVersion":2,"mediaType":"application/vnd.oci.image.manifest.v1+json","config":%s,"layers":[%s]}' \
    "$config_desc" "$layer_desc" >"$work/manifest.json"
  manifest_desc=$(_oci_put "$work/manifest.json" application/vnd.oci.image.manifest.v1+json)
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
  OCI_LAYER_BYTES=$(stat -c %s "$layer")
  rm -rf "$work"
}
