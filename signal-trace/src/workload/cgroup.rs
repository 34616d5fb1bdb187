//! Mapping a process's cgroup to the container it runs in.
//!
//! Container runtimes place every container in a cgroup whose name encodes the
//! container id, and Kubernetes adds the pod UID and QoS class on the way down.
//! The functions here recognise those layouts from cgroup paths (pure string
//! parsing), read `/proc/PID/cgroup` text, find the cgroup v2 mount point in
//! `/proc/self/mountinfo` text, and map cgroup ids (as returned by
//! `bpf_get_current_cgroup_id()`) back to cgroup paths.
//!
//! Recognised layouts (`<id>` is a container id, normally 64 hex digits):
//!
//! | layout | runtime |
//! |---|---|
//! | `/system.slice/docker-<id>.scope`, `/docker/<id>` | [`Runtime::Docker`] |
//! | `.../kubepods-...-pod<uid>.slice/cri-containerd-<id>.scope` | [`Runtime::Containerd`] |
//! | `/<namespace>/<id>` (plain containerd, e.g. `/default/<id>`, `/k8s.io/<id>`) | [`Runtime::Containerd`] |
//! | `/system.slice/nerdctl-<id>.scope` | [`Runtime::Containerd`] |
//! | `.../crio-<id>.scope`, `/kubepods/<qos>/pod<uid>/crio-<id>` | [`Runtime::CriO`] |
//! | `.../libpod-<id>.scope`, `/libpod_parent/libpod-<id>` | [`Runtime::Podman`] |
//! | `/kubepods[/<qos>]/pod<uid>/<id>` (cgroupfs driver, runtime not named) | [`Runtime::Kubernetes`] |
//!
//! Sub-cgroups below a container cgroup (`/init`, `container`, nested services of
//! a systemd-in-container, ...) resolve to that container. When containers are
//! nested (docker-in-docker, kind nodes running pods), the innermost container
//! is reported. Conmon scopes (`crio-conmon-<id>.scope`, `libpod-conmon-<id>.scope`)
//! are not containers: conmon is a host-side monitor process, so such paths yield
//! `None` unless they sit inside some other container.

use std::collections::HashMap;
use std::ffi::OsString;
use std::fs;
use std::io;
use std::os::unix::ffi::OsStringExt;
use std::os::unix::fs::MetadataExt;
use std::path::{Path, PathBuf};

/// Which runtime created the container, as far as the cgroup path shows it.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, Hash)]
pub enum Runtime {
    /// Docker (`docker-<id>.scope` or `/docker/<id>`).
    Docker,
    /// containerd, either through its CRI plugin (`cri-containerd-<id>.scope`),
    /// plain `ctr run` (`/<namespace>/<id>`) or nerdctl (`nerdctl-<id>.scope`).
    #[default]
    Containerd,
    /// CRI-O (`crio-<id>.scope` or `crio-<id>`).
    CriO,
    /// Podman (`libpod-<id>.scope` or `libpod-<id>`).
    Podman,
    /// A Kubernetes container whose cgroup does not name the runtime, as with
    /// the cgroupfs driver (`/kubepods/<qos>/pod<uid>/<id>`).
    Kubernetes,
}

impl Runtime {
    /// Stable lowercase name: `"docker"`, `"containerd"`, `"cri-o"`, `"podman"`
    /// or `"kubernetes"`.
    pub fn as_str(self) -> &'static str {
        match self {
            Runtime::Docker => "docker",
            Runtime::Containerd => "containerd",
            Runtime::CriO => "cri-o",
            Runtime::Podman => "podman",
            Runtime::Kubernetes => "kubernetes",
        }
    }
}

/// The container a cgroup path belongs to.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct ContainerRef {
    /// The full container id exactly as it appears in the path (usually 64
    /// lowercase hex digits).
    pub id: String,
    /// The runtime that created the container, as far as the path shows it.
    pub runtime: Runtime,
    /// The pod UID from a kubepods path (`pod<uid>`), with the `_` that the
    /// systemd driver substitutes for `-` turned back into `-`.
    pub pod_uid: Option<String>,
    /// The pod QoS class from a kubepods path: `"besteffort"` or `"burstable"`
    /// when the path has that level, `"guaranteed"` when the pod cgroup sits
    /// directly under the kubepods root (kubelet puts guaranteed pods there).
    pub qos: Option<String>,
}

/// Minimum length of a bare hex component accepted as a container id.
const MIN_ID_LEN: usize = 12;

/// Prefixes of container cgroup names, each followed by the id and optionally
/// `.scope`. Conmon scopes (`crio-conmon-`, `libpod-conmon-`) share a prefix
/// but never match because `conmon-<id>` is not a hex id.
const PREFIXES: &[(&str, Runtime)] = &[
    ("docker-", Runtime::Docker),
    ("cri-containerd-", Runtime::Containerd),
    ("nerdctl-", Runtime::Containerd),
    ("crio-", Runtime::CriO),
    ("libpod-", Runtime::Podman),
];

/// systemd unit suffixes; a component with one of these is never a containerd
/// namespace.
const UNIT_SUFFIXES: &[&str] = &[
    ".slice",
    ".scope",
    ".service",
    ".mount",
    ".socket",
    ".target",
    ".swap",
    ".device",
    ".path",
    ".timer",
    ".automount",
];

/// Kubernetes context collected while walking down a path.
#[derive(Default)]
struct KubeCtx {
    /// Index of the component that opened the kubepods hierarchy (cgroupfs
    /// driver only; systemd slice names carry the whole chain themselves).
    root_index: Option<usize>,
    qos: Option<String>,
    pod_uid: Option<String>,
    /// Index of the component that named the pod.
    pod_index: Option<usize>,
}

impl KubeCtx {
    /// Updates the context with component `comp` at index `i`.
    fn observe(&mut self, i: usize, comp: &str) {
        if let Some(name) = comp.strip_suffix(".slice") {
            self.observe_slice(i, name);
            return;
        }
        if comp == "kubepods" {
            *self = KubeCtx {
                root_index: Some(i),
                ..KubeCtx::default()
            };
            return;
        }
        let Some(root) = self.root_index else {
            return;
        };
        if self.pod_uid.is_some() {
            return;
        }
        if i == root + 1 && is_qos(comp) {
            self.qos = Some(comp.to_owned());
        } else if let Some(uid) = pod_uid(comp) {
            if i == root + 1 {
                self.qos = Some("guaranteed".to_owned());
            }
            self.pod_uid = Some(uid);
            self.pod_index = Some(i);
        }
    }

    /// Handles a systemd slice name (without `.slice`), e.g.
    /// `kubepods-besteffort-pod<uid>` or `kubelet-kubepods-pod<uid>`.
    fn observe_slice(&mut self, i: usize, name: &str) {
        let segments: Vec<&str> = name.split('-').collect();
        let Some(pos) = segments.iter().position(|s| *s == "kubepods") else {
            return;
        };
        let rest = segments.get(pos + 1..).unwrap_or_default();
        *self = KubeCtx::default();
        match rest {
            [] => {}
            [q] if is_qos(q) => self.qos = Some((*q).to_owned()),
            [p] => {
                if let Some(uid) = pod_uid(p) {
                    self.qos = Some("guaranteed".to_owned());
                    self.pod_uid = Some(uid);
                    self.pod_index = Some(i);
                }
            }
            [q, p] if is_qos(q) => {
                if let Some(uid) = pod_uid(p) {
                    self.qos = Some((*q).to_owned());
                    self.pod_uid = Some(uid);
                    self.pod_index = Some(i);
                }
            }
            _ => {}
        }
    }
}

fn is_qos(s: &str) -> bool {
    matches!(s, "besteffort" | "burstable")
}

/// Extracts the pod UID from `pod<uid>`, undoing systemd's `-` to `_` escaping.
fn pod_uid(comp: &str) -> Option<String> {
    let uid = comp.strip_prefix("pod")?;
    let valid = !uid.is_empty()
        && uid
            .bytes()
            .all(|b| b.is_ascii_hexdigit() || b == b'-' || b == b'_');
    valid.then(|| uid.replace('_', "-"))
}

/// True when `s` looks like a container id: at least [`MIN_ID_LEN`] hex digits.
fn is_container_id(s: &str) -> bool {
    s.len() >= MIN_ID_LEN && s.bytes().all(|b| b.is_ascii_hexdigit())
}

/// True when `s` is a plausible containerd namespace name and not a systemd
/// unit or a cgroup that some other rule owns.
fn is_containerd_namespace(s: &str) -> bool {
    // containerd identifiers: alphanumerics separated by single '.', '_' or '-'.
    let mut prev_sep = true;
    for b in s.bytes() {
        let sep = matches!(b, b'.' | b'_' | b'-');
        if sep && prev_sep || !(sep || b.is_ascii_alphanumeric()) {
            return false;
        }
        prev_sep = sep;
    }
    !prev_sep
        && !UNIT_SUFFIXES.iter().any(|suffix| s.ends_with(suffix))
        && !matches!(s, "kubepods" | "docker" | "libpod_parent")
}

/// Recognises a container cgroup from one component and its surroundings.
fn match_component<'a>(
    comp: &'a str,
    i: usize,
    parent: Option<&str>,
    kube: &KubeCtx,
) -> Option<(&'a str, Runtime)> {
    let base = comp.strip_suffix(".scope").unwrap_or(comp);
    for (prefix, runtime) in PREFIXES {
        if let Some(id) = base.strip_prefix(prefix) {
            if is_container_id(id) {
                return Some((id, *runtime));
            }
        }
    }
    if !is_container_id(comp) {
        return None;
    }
    if parent == Some("docker") {
        return Some((comp, Runtime::Docker));
    }
    if kube.pod_index.is_some() && kube.pod_index == i.checked_sub(1) {
        return Some((comp, Runtime::Kubernetes));
    }
    if i == 1 && parent.is_some_and(is_containerd_namespace) {
        return Some((comp, Runtime::Containerd));
    }
    None
}

/// Parses one cgroup path into the container it belongs to.
///
/// `path` is a cgroup path as found in `/proc/PID/cgroup` after the second
/// `:`, or a path relative to a cgroup mount (e.g. the values returned by
/// [`scan_cgroup_ids`]). Cgroup v1 and v2 paths use the same names.
///
/// Returns `None` for host cgroups (`/`, `/init.scope`, `/user.slice/...`,
/// `/system.slice/docker.service`, ...), for Kubernetes cgroups above the
/// container level (`/kubepods.slice`, `/kubepods/besteffort/pod<uid>`), and
/// for conmon scopes. Sub-cgroups of a container resolve to the container;
/// with nested containers the innermost one wins.
pub fn parse_cgroup_path(path: &str) -> Option<ContainerRef> {
    let comps: Vec<&str> = path
        .trim()
        .split('/')
        .filter(|c| !c.is_empty() && *c != ".")
        .collect();
    let mut kube = KubeCtx::default();
    let mut found = None;
    let mut parent = None;
    for (i, comp) in comps.iter().copied().enumerate() {
        if let Some((id, runtime)) = match_component(comp, i, parent, &kube) {
            found = Some(ContainerRef {
                id: id.to_owned(),
                runtime,
                pod_uid: kube.pod_uid.take(),
                qos: kube.qos.take(),
            });
            kube = KubeCtx::default();
        } else {
            kube.observe(i, comp);
        }
        parent = Some(comp);
    }
    found
}

/// Parses the whole text of `/proc/PID/cgroup` and returns the container the
/// process belongs to.
///
/// Accepts cgroup v1 lines (`N:controllers:/path`), the v2 line (`0::/path`)
/// and hybrid mixes of both; malformed lines are ignored. The v2 line is
/// consulted first, then the `name=systemd` line, then the remaining lines in
/// order; the first one that names a container wins.
pub fn container_from_proc_cgroup(text: &str) -> Option<ContainerRef> {
    let mut v2 = Vec::new();
    let mut systemd = Vec::new();
    let mut other = Vec::new();
    for line in text.lines() {
        let mut fields = line.splitn(3, ':');
        let (Some(hierarchy), Some(controllers), Some(path)) =
            (fields.next(), fields.next(), fields.next())
        else {
            continue;
        };
        if hierarchy.trim() == "0" && controllers.is_empty() {
            v2.push(path);
        } else if controllers.split(',').any(|c| c == "name=systemd") {
            systemd.push(path);
        } else {
            other.push(path);
        }
    }
    v2.into_iter()
        .chain(systemd)
        .chain(other)
        .find_map(parse_cgroup_path)
}

/// Walks a cgroup v2 hierarchy and maps every cgroup id to its path.
///
/// `root` is the cgroup v2 mount point (e.g. `/sys/fs/cgroup`, or
/// `/sys/fs/cgroup/unified` on hybrid systems; see [`cgroup2_mount`]). The
/// returned paths are relative to `root` and start with `/`; the root itself
/// maps to `"/"`. On cgroup v2 the id returned by `bpf_get_current_cgroup_id()`
/// is the inode number of the cgroup directory, which is what the keys are.
///
/// Symbolic links are not followed and directories on a different file system
/// than `root` (other mounts below it) are not entered. Subdirectories that
/// cannot be read are skipped; only failing to read `root` itself is an error.
/// Names that are not valid UTF-8 are converted lossily.
pub fn scan_cgroup_ids(root: &Path) -> io::Result<HashMap<u64, String>> {
    let root_meta = fs::metadata(root)?;
    let dev = root_meta.dev();
    let mut ids = HashMap::new();
    ids.insert(root_meta.ino(), "/".to_owned());

    let mut stack = vec![(root.to_path_buf(), String::new())];
    let mut is_root = true;
    while let Some((dir, rel)) = stack.pop() {
        let entries = match fs::read_dir(&dir) {
            Ok(entries) => entries,
            Err(err) if is_root => return Err(err),
            Err(_) => continue,
        };
        is_root = false;
        for entry in entries.flatten() {
            let Ok(file_type) = entry.file_type() else {
                continue;
            };
            if !file_type.is_dir() {
                continue;
            }
            let Ok(meta) = entry.metadata() else {
                continue;
            };
            if meta.dev() != dev {
                continue;
            }
            let child_rel = format!("{rel}/{}", entry.file_name().to_string_lossy());
            ids.insert(meta.ino(), child_rel.clone());
            stack.push((entry.path(), child_rel));
        }
    }
    Ok(ids)
}

/// Finds the mount point of the cgroup v2 hierarchy in the text of
/// `/proc/self/mountinfo` (the `mountinfo` format, not `/proc/mounts`).
///
/// Considers the mounts whose file system type is `cgroup2`, preferring one
/// that mounts the root of the hierarchy (root field `/`) and otherwise taking
/// the first. Octal escapes in the mount point (`\040` for a space, ...) are
/// decoded. Returns `None` when no cgroup2 mount is listed.
pub fn cgroup2_mount(mountinfo: &str) -> Option<PathBuf> {
    let mut fallback = None;
    for line in mountinfo.lines() {
        let fields: Vec<&str> = line.split_ascii_whitespace().collect();
        // id parent major:minor root mount-point options [optional...] - fstype source super-options
        let Some(sep) = fields.iter().skip(6).position(|f| *f == "-") else {
            continue;
        };
        if fields.get(6 + sep + 1) != Some(&"cgroup2") {
            continue;
        }
        let (Some(root), Some(mount_point)) = (fields.get(3), fields.get(4)) else {
            continue;
        };
        let path = PathBuf::from(OsString::from_vec(unescape_octal(mount_point)));
        if *root == "/" {
            return Some(path);
        }
        fallback.get_or_insert(path);
    }
    fallback
}

/// Decodes the `\ooo` octal escapes the kernel uses in mountinfo fields.
fn unescape_octal(field: &str) -> Vec<u8> {
    let bytes = field.as_bytes();
    let mut out = Vec::with_capacity(bytes.len());
    let mut i = 0;
    while i < bytes.len() {
        if let Some(&[b'\\', a, b, c]) = bytes.get(i..i + 4) {
            let digits = [a, b, c];
            if digits.iter().all(|d| (b'0'..=b'7').contains(d)) {
                let value = digits
                    .iter()
                    .fold(0u32, |acc, d| acc * 8 + u32::from(d - b'0'));
                if let Ok(byte) = u8::try_from(value) {
                    out.push(byte);
                    i += 4;
                    continue;
                }
            }
        }
        out.push(bytes[i]);
        i += 1;
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    const ID1: &str = "4d3c2b1a0f9e8d7c6b5a49382716059483726150a9b8c7d6e5f4a3b2c1d0e9f8";
    const ID2: &str = "e7a1f0c2b3d4958667a8b9c0d1e2f3041526374859a0b1c2d3e4f5a6b7c8d9e0";
    const UID: &str = "5a8b2f3c-1d4e-4f6a-9b7c-0e1d2c3b4a59";
    const UID_ESC: &str = "5a8b2f3c_1d4e_4f6a_9b7c_0e1d2c3b4a59";

    fn expect(id: &str, runtime: Runtime, pod: Option<&str>, qos: Option<&str>) -> ContainerRef {
        ContainerRef {
            id: id.to_owned(),
            runtime,
            pod_uid: pod.map(str::to_owned),
            qos: qos.map(str::to_owned),
        }
    }

    #[test]
    fn runtime_names() {
        let cases = [
            (Runtime::Docker, "docker"),
            (Runtime::Containerd, "containerd"),
            (Runtime::CriO, "cri-o"),
            (Runtime::Podman, "podman"),
            (Runtime::Kubernetes, "kubernetes"),
        ];
        for (runtime, name) in cases {
            assert_eq!(runtime.as_str(), name);
        }
    }

    #[test]
    fn container_paths() {
        use Runtime::*;
        let cases: Vec<(String, ContainerRef)> = vec![
            // docker, systemd driver
            (
                format!("/system.slice/docker-{ID1}.scope"),
                expect(ID1, Docker, None, None),
            ),
            (
                format!("/system.slice/docker-{ID1}.scope/init"),
                expect(ID1, Docker, None, None),
            ),
            // docker, cgroupfs driver, and children below the container
            (format!("/docker/{ID1}"), expect(ID1, Docker, None, None)),
            (format!("/docker/{ID1}/init"), expect(ID1, Docker, None, None)),
            (
                format!("/docker/{ID1}/system.slice/nginx.service"),
                expect(ID1, Docker, None, None),
            ),
            (
                format!("/docker/{ID1}/init.scope"),
                expect(ID1, Docker, None, None),
            ),
            // docker-in-docker: innermost container wins
            (
                format!("/docker/{ID1}/docker/{ID2}"),
                expect(ID2, Docker, None, None),
            ),
            // dockershim / cri-dockerd under kubepods
            (
                format!("/kubepods/besteffort/pod{UID}/{ID1}"),
                expect(ID1, Kubernetes, Some(UID), Some("besteffort")),
            ),
            (
                format!(
                    "/kubepods.slice/kubepods-burstable.slice/kubepods-burstable-pod{UID_ESC}.slice/docker-{ID1}.scope"
                ),
                expect(ID1, Docker, Some(UID), Some("burstable")),
            ),
            // containerd CRI, systemd driver
            (
                format!(
                    "/kubepods.slice/kubepods-besteffort.slice/kubepods-besteffort-pod{UID_ESC}.slice/cri-containerd-{ID1}.scope"
                ),
                expect(ID1, Containerd, Some(UID), Some("besteffort")),
            ),
            (
                format!(
                    "/kubepods.slice/kubepods-burstable.slice/kubepods-burstable-pod{UID_ESC}.slice/cri-containerd-{ID1}.scope"
                ),
                expect(ID1, Containerd, Some(UID), Some("burstable")),
            ),
            (
                format!(
                    "/kubepods.slice/kubepods-pod{UID_ESC}.slice/cri-containerd-{ID1}.scope"
                ),
                expect(ID1, Containerd, Some(UID), Some("guaranteed")),
            ),
            (
                format!(
                    "/kubepods.slice/kubepods-pod{UID_ESC}.slice/cri-containerd-{ID1}.scope/init"
                ),
                expect(ID1, Containerd, Some(UID), Some("guaranteed")),
            ),
            // containerd CRI, cgroupfs driver
            (
                format!("/kubepods/besteffort/pod{UID}/{ID1}"),
                expect(ID1, Kubernetes, Some(UID), Some("besteffort")),
            ),
            (
                format!("/kubepods/burstable/pod{UID}/{ID1}"),
                expect(ID1, Kubernetes, Some(UID), Some("burstable")),
            ),
            (
                format!("/kubepods/pod{UID}/{ID1}"),
                expect(ID1, Kubernetes, Some(UID), Some("guaranteed")),
            ),
            (
                format!("/kubepods/pod{UID}/{ID1}/init"),
                expect(ID1, Kubernetes, Some(UID), Some("guaranteed")),
            ),
            // static pod: the uid is a config hash without dashes
            (
                format!("/kubepods/burstable/pod0f1e2d3c4b5a69788796a5b4c3d2e1f0/{ID1}"),
                expect(
                    ID1,
                    Kubernetes,
                    Some("0f1e2d3c4b5a69788796a5b4c3d2e1f0"),
                    Some("burstable"),
                ),
            ),
            // plain containerd (ctr run)
            (format!("/default/{ID1}"), expect(ID1, Containerd, None, None)),
            (format!("/k8s.io/{ID1}"), expect(ID1, Containerd, None, None)),
            (
                "/moby/0123456789ab".to_owned(),
                expect("0123456789ab", Containerd, None, None),
            ),
            (
                format!("/default/{ID1}/init"),
                expect(ID1, Containerd, None, None),
            ),
            // nerdctl, systemd driver
            (
                format!("/system.slice/nerdctl-{ID1}.scope"),
                expect(ID1, Containerd, None, None),
            ),
            // CRI-O, systemd and cgroupfs managers
            (
                format!(
                    "/kubepods.slice/kubepods-burstable.slice/kubepods-burstable-pod{UID_ESC}.slice/crio-{ID1}.scope"
                ),
                expect(ID1, CriO, Some(UID), Some("burstable")),
            ),
            (
                format!("/kubepods.slice/kubepods-pod{UID_ESC}.slice/crio-{ID1}.scope/container"),
                expect(ID1, CriO, Some(UID), Some("guaranteed")),
            ),
            (
                format!("/kubepods/besteffort/pod{UID}/crio-{ID1}"),
                expect(ID1, CriO, Some(UID), Some("besteffort")),
            ),
            // podman, rootful and rootless, and the inner "container" cgroup
            (
                format!("/machine.slice/libpod-{ID1}.scope"),
                expect(ID1, Podman, None, None),
            ),
            (
                format!("/machine.slice/libpod-{ID1}.scope/container"),
                expect(ID1, Podman, None, None),
            ),
            (
                format!(
                    "/user.slice/user-1000.slice/user@1000.service/user.slice/libpod-{ID1}.scope"
                ),
                expect(ID1, Podman, None, None),
            ),
            (
                format!(
                    "/user.slice/user-1000.slice/user@1000.service/user.slice/libpod-{ID1}.scope/container"
                ),
                expect(ID1, Podman, None, None),
            ),
            (
                format!("/libpod_parent/libpod-{ID1}"),
                expect(ID1, Podman, None, None),
            ),
            // kind: pods inside a docker container acting as a node
            (
                format!(
                    "/system.slice/docker-{ID2}.scope/kubelet.slice/kubelet-kubepods.slice/kubelet-kubepods-besteffort.slice/kubelet-kubepods-besteffort-pod{UID_ESC}.slice/cri-containerd-{ID1}.scope"
                ),
                expect(ID1, Containerd, Some(UID), Some("besteffort")),
            ),
            (
                format!("/docker/{ID2}/kubepods/burstable/pod{UID}/{ID1}"),
                expect(ID1, Kubernetes, Some(UID), Some("burstable")),
            ),
            // a conmon scope inside a container belongs to that container
            (
                format!("/docker/{ID2}/libpod-conmon-{ID1}.scope"),
                expect(ID2, Docker, None, None),
            ),
            // as seen from another cgroup namespace, and with stray whitespace
            (
                format!("/../../system.slice/docker-{ID1}.scope"),
                expect(ID1, Docker, None, None),
            ),
            (
                format!("/system.slice/docker-{ID1}.scope\n"),
                expect(ID1, Docker, None, None),
            ),
            // relative path, as under a cgroup mount without the leading '/'
            (
                format!("system.slice/docker-{ID1}.scope"),
                expect(ID1, Docker, None, None),
            ),
        ];
        for (path, want) in cases {
            assert_eq!(parse_cgroup_path(&path), Some(want), "path {path:?}");
        }
    }

    #[test]
    fn host_and_non_container_paths() {
        let cases: Vec<String> = vec![
            "".to_owned(),
            "/".to_owned(),
            "/init.scope".to_owned(),
            "/system.slice".to_owned(),
            "/system.slice/containerd.service".to_owned(),
            "/system.slice/docker.service".to_owned(),
            "/system.slice/docker.socket".to_owned(),
            "/system.slice/crio.service".to_owned(),
            "/system.slice/systemd-journald.service".to_owned(),
            "/user.slice/user-0.slice/session-1.scope".to_owned(),
            "/user.slice/user-1000.slice/user@1000.service/app.slice/app-gnome-firefox-4242.scope"
                .to_owned(),
            "/kubepods.slice".to_owned(),
            "/kubepods.slice/kubepods-besteffort.slice".to_owned(),
            format!("/kubepods.slice/kubepods-besteffort.slice/kubepods-besteffort-pod{UID_ESC}.slice"),
            format!("/kubepods.slice/kubepods-pod{UID_ESC}.slice"),
            "/kubepods".to_owned(),
            "/kubepods/besteffort".to_owned(),
            format!("/kubepods/besteffort/pod{UID}"),
            format!("/kubepods/pod{UID}"),
            "/docker".to_owned(),
            // conmon is a host-side monitor, not the container
            format!(
                "/kubepods.slice/kubepods-burstable.slice/kubepods-burstable-pod{UID_ESC}.slice/crio-conmon-{ID1}.scope"
            ),
            format!("/machine.slice/libpod-conmon-{ID1}.scope"),
            format!(
                "/user.slice/user-1000.slice/user@1000.service/user.slice/libpod-conmon-{ID1}.scope"
            ),
            // ids that are too short or not hex, and names that only look close
            "/default/abc123".to_owned(),
            "/default/my-container".to_owned(),
            "/system.slice/docker-compose.scope".to_owned(),
            "/system.slice/docker-abc.scope".to_owned(),
            // a hex name only counts right under a namespace, docker or a pod
            format!("/system.slice/{ID1}"),
            format!("/user.slice/user-1000.slice/{ID1}"),
            format!("/a/b/{ID1}"),
            format!("/.hidden/{ID1}"),
            format!("/kubepods/{ID1}"),
        ];
        for path in cases {
            assert_eq!(parse_cgroup_path(&path), None, "path {path:?}");
        }
    }

    #[test]
    fn proc_cgroup_text() {
        let docker_v1 = format!(
            "12:pids:/docker/{ID1}\n\
             11:hugetlb:/docker/{ID1}\n\
             10:net_cls,net_prio:/docker/{ID1}\n\
             9:cpu,cpuacct:/docker/{ID1}\n\
             8:memory:/docker/{ID1}\n\
             1:name=systemd:/docker/{ID1}\n"
        );
        let docker_v2 = format!("0::/system.slice/docker-{ID1}.scope\n");
        let hybrid_root_v2 = format!(
            "5:memory:/system.slice/docker-{ID1}.scope\n\
             1:name=systemd:/system.slice/docker-{ID1}.scope\n\
             0::/\n"
        );
        let hybrid_v2_wins = format!(
            "4:cpu,cpuacct:/docker/{ID2}\n\
             1:name=systemd:/docker/{ID2}\n\
             0::/system.slice/docker-{ID1}.scope\n"
        );
        let systemd_over_others = format!(
            "4:cpu,cpuacct:/docker/{ID2}\n\
             1:name=systemd:/system.slice/docker-{ID1}.scope\n"
        );
        let other_only = format!("3:devices:/user.slice\n4:cpu,cpuacct:/docker/{ID2}\n");
        let k8s_v2 = format!(
            "0::/kubepods.slice/kubepods-besteffort.slice/kubepods-besteffort-pod{UID_ESC}.slice/cri-containerd-{ID1}.scope\n"
        );
        let host_v1 = "12:pids:/user.slice/user-1000.slice/session-3.scope\n\
                       8:memory:/user.slice/user-1000.slice/session-3.scope\n\
                       1:name=systemd:/user.slice/user-1000.slice/session-3.scope\n\
                       0::/user.slice/user-1000.slice/session-3.scope\n";
        let host_v2 = "0::/init.scope\n";
        let malformed = format!("garbage\n\n7\n3:cpu\n0::/system.slice/docker-{ID1}.scope");

        let cases: Vec<(&str, Option<ContainerRef>)> = vec![
            (&docker_v1, Some(expect(ID1, Runtime::Docker, None, None))),
            (&docker_v2, Some(expect(ID1, Runtime::Docker, None, None))),
            (
                &hybrid_root_v2,
                Some(expect(ID1, Runtime::Docker, None, None)),
            ),
            (
                &hybrid_v2_wins,
                Some(expect(ID1, Runtime::Docker, None, None)),
            ),
            (
                &systemd_over_others,
                Some(expect(ID1, Runtime::Docker, None, None)),
            ),
            (&other_only, Some(expect(ID2, Runtime::Docker, None, None))),
            (
                &k8s_v2,
                Some(expect(
                    ID1,
                    Runtime::Containerd,
                    Some(UID),
                    Some("besteffort"),
                )),
            ),
            (host_v1, None),
            (host_v2, None),
            ("", None),
            (&malformed, Some(expect(ID1, Runtime::Docker, None, None))),
        ];
        for (text, want) in cases {
            assert_eq!(container_from_proc_cgroup(text), want, "text {text:?}");
        }
    }

    #[test]
    fn cgroup2_mount_points() {
        let unified = "\
22 27 0:21 / /sys rw,nosuid,nodev,noexec,relatime shared:7 - sysfs sysfs rw
23 27 0:22 / /proc rw,nosuid,nodev,noexec,relatime shared:13 - proc proc rw
27 1 259:2 / / rw,relatime shared:1 - ext4 /dev/nvme0n1p2 rw,errors=remount-ro
30 22 0:26 / /sys/fs/cgroup rw,nosuid,nodev,noexec,relatime shared:9 - cgroup2 cgroup2 rw,nsdelegate,memory_recursiveprot
31 22 0:27 / /sys/fs/pstore rw,nosuid,nodev,noexec,relatime shared:10 - pstore pstore rw
";
        let hybrid = "\
25 18 0:22 / /sys/fs/cgroup ro,nosuid,nodev,noexec shared:9 - tmpfs tmpfs ro,mode=755
26 25 0:23 / /sys/fs/cgroup/unified rw,nosuid,nodev,noexec,relatime shared:10 - cgroup2 cgroup2 rw,nsdelegate
27 25 0:24 / /sys/fs/cgroup/systemd rw,nosuid,nodev,noexec,relatime shared:11 - cgroup cgroup rw,xattr,name=systemd
30 25 0:27 / /sys/fs/cgroup/memory rw,nosuid,nodev,noexec,relatime shared:14 - cgroup cgroup rw,memory
";
        let v1_only = "\
25 18 0:22 / /sys/fs/cgroup ro,nosuid,nodev,noexec shared:9 - tmpfs tmpfs ro,mode=755
27 25 0:24 / /sys/fs/cgroup/systemd rw,nosuid,nodev,noexec,relatime shared:11 - cgroup cgroup rw,xattr,name=systemd
";
        // container view: the cgroup2 mount exposes a sub-tree only
        let subtree_first = "\
700 690 0:26 /system.slice/docker-abc.scope /mnt/cg rw,nosuid - cgroup2 cgroup rw
701 690 0:26 / /sys/fs/cgroup rw,nosuid - cgroup2 cgroup rw
";
        let subtree_only = "\
700 690 0:26 /../.. /sys/fs/cgroup ro,nosuid,nodev,noexec,relatime - cgroup2 cgroup rw,nsdelegate
";
        let escaped = "\
40 22 0:26 / /mnt/my\\040cgroup\\134x rw,relatime shared:9 - cgroup2 none rw
";
        // no optional fields, and an fstype that only starts with cgroup2
        let bare = "\
41 22 0:30 / /run/cg2x rw - cgroup2fs none rw
42 22 0:26 / /run/cg2 rw - cgroup2 none rw
";
        let cases: Vec<(&str, Option<PathBuf>)> = vec![
            (unified, Some(PathBuf::from("/sys/fs/cgroup"))),
            (hybrid, Some(PathBuf::from("/sys/fs/cgroup/unified"))),
            (v1_only, None),
            (subtree_first, Some(PathBuf::from("/sys/fs/cgroup"))),
            (subtree_only, Some(PathBuf::from("/sys/fs/cgroup"))),
            (escaped, Some(PathBuf::from("/mnt/my cgroup\\x"))),
            (bare, Some(PathBuf::from("/run/cg2"))),
            ("", None),
            ("not a mountinfo line\n", None),
        ];
        for (text, want) in cases {
            assert_eq!(cgroup2_mount(text), want, "mountinfo {text:?}");
        }
    }

    /// A directory tree under the system temp dir, removed on drop.
    struct TempTree(PathBuf);

    impl TempTree {
        fn new(name: &str) -> TempTree {
            let dir = std::env::temp_dir().join(format!(
                "cgroup-scan-{name}-{}-{:?}",
                std::process::id(),
                std::thread::current().id()
            ));
            let _ = fs::remove_dir_all(&dir);
            fs::create_dir_all(&dir).expect("create temp dir");
            TempTree(dir)
        }
    }

    impl Drop for TempTree {
        fn drop(&mut self) {
            use std::os::unix::fs::PermissionsExt;
            // restore permissions so the tree can be removed
            let _ = fs::set_permissions(self.0.join("locked"), fs::Permissions::from_mode(0o755));
            let _ = fs::remove_dir_all(&self.0);
        }
    }

    #[test]
    fn scan_maps_inodes_to_paths() {
        let tree = TempTree::new("basic");
        let root = &tree.0;
        let scope = format!("system.slice/docker-{ID1}.scope");
        let dirs = [
            "init.scope".to_owned(),
            "system.slice".to_owned(),
            scope.clone(),
            format!("{scope}/init"),
            format!("kubepods/besteffort/pod{UID}/{ID2}"),
        ];
        for dir in &dirs {
            fs::create_dir_all(root.join(dir)).expect("create cgroup dir");
        }
        // files such as cgroup.procs are not cgroups
        fs::write(root.join(&scope).join("cgroup.procs"), "1\n").expect("write file");
        std::os::unix::fs::symlink(root.join("system.slice"), root.join("link"))
            .expect("create symlink");

        let ids = scan_cgroup_ids(root).expect("scan");
        let ino = |rel: &str| fs::metadata(root.join(rel)).expect("stat").ino();

        let mut want: HashMap<u64, String> = HashMap::new();
        want.insert(ino(""), "/".to_owned());
        for rel in [
            "init.scope",
            "system.slice",
            scope.as_str(),
            &format!("{scope}/init"),
            "kubepods",
            "kubepods/besteffort",
            &format!("kubepods/besteffort/pod{UID}"),
            &format!("kubepods/besteffort/pod{UID}/{ID2}"),
        ] {
            want.insert(ino(rel), format!("/{rel}"));
        }
        assert_eq!(ids, want);

        let leaf = &ids[&ino(&format!("kubepods/besteffort/pod{UID}/{ID2}"))];
        assert_eq!(
            parse_cgroup_path(leaf),
            Some(expect(
                ID2,
                Runtime::Kubernetes,
                Some(UID),
                Some("besteffort")
            ))
        );
    }

    #[test]
    fn scan_skips_unreadable_subdirectories() {
        use std::os::unix::fs::PermissionsExt;
        let tree = TempTree::new("locked");
        let root = &tree.0;
        fs::create_dir_all(root.join("locked/child")).expect("create dirs");
        fs::create_dir_all(root.join("open")).expect("create dirs");
        fs::set_permissions(root.join("locked"), fs::Permissions::from_mode(0o000)).expect("chmod");

        let ids = scan_cgroup_ids(root).expect("scan");
        let paths: Vec<&str> = ids.values().map(String::as_str).collect();
        assert!(paths.contains(&"/"));
        assert!(paths.contains(&"/open"));
        assert!(paths.contains(&"/locked"));
        // privileged users can still read the locked directory
        let readable = fs::read_dir(root.join("locked")).is_ok();
        assert_eq!(paths.contains(&"/locked/child"), readable);
    }

    #[test]
    fn scan_missing_root_is_an_error() {
        let tree = TempTree::new("missing");
        assert!(scan_cgroup_ids(&tree.0.join("does-not-exist")).is_err());
    }

    #[test]
    fn scan_real_cgroup2_mount() {
        let Ok(mountinfo) = fs::read_to_string("/proc/self/mountinfo") else {
            return;
        };
        let Some(mount) = cgroup2_mount(&mountinfo) else {
            return;
        };
        let Ok(ids) = scan_cgroup_ids(&mount) else {
            return;
        };
        assert!(ids.values().any(|p| p == "/"));
        assert!(ids.values().all(|p| p.starts_with('/')));
    }
}
