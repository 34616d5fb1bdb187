# Shared by the setup scripts: `source` it after defining log().

apt_updated=0

# apt_install PACKAGE...: installs the Debian packages that are missing (one apt-get update
# first), and nothing when all are there.
apt_install() {
  local missing=() installed
  # One dpkg-query for all: one per package costs 10-20 ms each. It exits 1 when it has never
  # heard of one of them (on a bare machine), which is what this is here to find out.
  installed=" $({ dpkg-query -W -f='${Package}:${Status}\n' "$@" 2>/dev/null || true; } \
    | awk -F: '$2 == "install ok installed" {print $1}' | tr '\n' ' ') "
  for p in "$@"; do
    [[ "$installed" == *" $p "* ]] || missing+=("$p")
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

# The throwaway engines of the live tests (scripts/*-up.sh) keep their sockets, pid files, logs
# and state under TEST_RUN, their data under TEST_LIB; built images and root file systems are
# cached under TEST_CACHE.
TEST_RUN=/run/signal-trace-test
TEST_LIB=/var/lib/signal-trace-test
TEST_CACHE=/var/cache/signal-trace

# proc_alive PID: true when PID runs (a zombie does not: whoever reaps it may take a while).
proc_alive() {
  local stat
  stat=$(cat /proc/"$1"/stat 2>/dev/null) || return 1
  stat=${stat##*) }
  [ "${stat%% *}" != Z ]
}

# pidfile_alive FILE: true when FILE names a live process.
pidfile_alive() {
  local pid
  pid=$(cat "$1" 2>/dev/null) || return 1
  [ -n "$pid" ] && proc_alive "$pid"
}

# stop_pidfile FILE SECONDS: SIGTERM to the process FILE names, SIGKILL after SECONDS, and
# waits until it is gone; removes FILE.
stop_pidfile() {
  local file=$1 seconds=$2 pid deadline
  pid=$(cat "$file" 2>/dev/null) || return 0
  if [ -n "$pid" ] && proc_alive "$pid"; then
    kill -TERM "$pid" 2>/dev/null || true
    deadline=$((SECONDS + seconds))
    while proc_alive "$pid"; do
      if [ $SECONDS -ge $deadline ]; then kill -KILL "$pid" 2>/dev/null || true; fi
      sleep 0.05
    done
  fi
  rm -f "$file"
}

# umount_under DIR...: lazily unmounts every mount point under the DIRs and the DIRs themselves,
# deepest first, until none is left (mounts can be stacked). A dockerd that did not shut down
# cleanly leaves its data-root bind-mounted onto itself (it makes the root's propagation
# shared that way), and `rm -rf` then fails on the directory with "Device or resource busy".
umount_under() {
  local dir real mps mp round
  for dir in "$@"; do
    [ -d "$dir" ] || continue
    real=$(realpath "$dir")
    for round in 1 2 3 4 5 6 7 8 9; do
      mps=$(awk -v d="$real" '$5 == d || index($5, d "/") == 1 {print $5}' /proc/self/mountinfo \
        | sort -r -u)
      [ -n "$mps" ] || break
      [ "$round" -lt 9 ] || break
      while read -r mp; do umount -l "$mp" 2>/dev/null || true; done <<<"$mps"
    done
    if [ -n "$mps" ]; then
      log "still mounted after 8 rounds of umount: $(echo "$mps" | head -n 3 | tr '\n' ' ')"
      return 1
    fi
  done
}

# kill_tree PID...: SIGKILL to each PID and all its descendants.
kill_tree() {
  local pid child
  for pid in "$@"; do
    for child in $(cat /proc/"$pid"/task/*/children 2>/dev/null); do kill_tree "$child"; done
    kill -KILL "$pid" 2>/dev/null || true
  done
}

# wait_until SECONDS WHAT COMMAND...: runs COMMAND every 0.1 s until it succeeds; fails with
# WHAT after SECONDS.
wait_until() {
  local seconds=$1 what=$2 deadline
  shift 2
  deadline=$((SECONDS + seconds))
  until "$@" >/dev/null 2>&1; do
    if [ $SECONDS -ge $deadline ]; then log "$what: not within ${seconds}s"; return 1; fi
    sleep 0.1
  done
}

# cached_busybox KIND: prints the path of the cached busybox artefact KIND, made by
# scripts/busybox-image.sh when missing or older than busybox or the scripts that make it:
#   image   OCI archive of localhost/signal-trace/busybox:latest
#   pause   OCI archive of localhost/signal-trace/pause:latest (the pod sandbox image)
#   rootfs  plain tar of the busybox root file system (for `docker import`, `podman import`)
cached_busybox() {
  local kind=$1 here out input
  here=$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)
  out=$TEST_CACHE/busybox-$kind.tar
  for input in /bin/busybox "$here/busybox-image.sh" "$here/lib.sh" "$here/pause.c"; do
    if [ ! -s "$out" ] || [ "$input" -nt "$out" ]; then
      mkdir -p "$TEST_CACHE"
      case $kind in
        image) bash "$here/busybox-image.sh" "$out.new" ;;
        pause) bash "$here/busybox-image.sh" --pause "$out.new" ;;
        rootfs) bash "$here/busybox-image.sh" --rootfs-tar "$out.new" ;;
        *) log "no busybox artefact $kind"; return 1 ;;
      esac
      mv "$out.new" "$out"
      break
    fi
  done
  printf '%s\n' "$out"
}
