//! What to inspect: one pid, the processes of a container (from cgroup paths) or of a pod.

use super::*;

/// Inspects one process of the proc tree at `proc_root` (`/proc` on a live system).
pub fn inspect_pid(proc_root: &Path, pid: u32) -> Result<ProcessReport, InspectError> {
    read_snapshot(proc_root, pid).map(|snap| analyze(&snap))
}

/// The container a `/proc/PID/cgroup` text names. The plain containerd layout
/// (`/<namespace>/<id>`) is left out: any directory so named has its shape (cgroup v1 hosts
/// have `/process_api/<hex>`), and inspect does not ask containerd about ids; the tracer does.
pub(crate) fn container_of(text: &str) -> Option<cgroup::ContainerRef> {
    cgroup::container_from_proc_cgroup(text).filter(|c| !c.plain)
}

/// The container of every process under `proc_root` that has one, in pid order.
pub(crate) fn containers(proc_root: &Path) -> Vec<(u32, cgroup::ContainerRef)> {
    numeric_entries(proc_root)
        .unwrap_or_default()
        .into_iter()
        .filter_map(|pid| {
            let text = read_lossy(&proc_root.join(pid.to_string()).join("cgroup"))?;
            Some((pid, container_of(&text)?))
        })
        .collect()
}

/// The processes whose cgroup resolves to a container whose id starts with `prefix`
/// (case-insensitive), in pid order. An empty prefix matches nothing.
pub fn find_container_pids(proc_root: &Path, prefix: &str) -> Vec<u32> {
    let prefix = prefix.trim().to_ascii_lowercase();
    if prefix.is_empty() {
        return Vec::new();
    }
    containers(proc_root)
        .into_iter()
        .filter(|(_, c)| c.id.to_ascii_lowercase().starts_with(&prefix))
        .map(|(pid, _)| pid)
        .collect()
}

/// Whether `s` can be (a prefix of) a pod uid: hex digits and dashes, or the underscores the
/// systemd cgroup driver puts in their place.
pub(crate) fn looks_like_pod_uid(s: &str) -> bool {
    !s.is_empty()
        && s.bytes().any(|b| b.is_ascii_hexdigit())
        && s.bytes()
            .all(|b| b.is_ascii_hexdigit() || b == b'-' || b == b'_')
}

/// The processes in a Kubernetes pod whose uid starts with `pod` (case-insensitive; `_` and
/// `-` are the same), in pid order.
///
/// Only the pod uid is in the cgroup path; the pod name is known to the container runtime
/// alone ([`run`] asks it). Here a value that cannot be a uid is rejected with
/// [`InspectError::PodName`], and a uid prefix that matches nothing with
/// [`InspectError::NoPod`].
pub fn find_pod_pids(proc_root: &Path, pod: &str) -> Result<Vec<u32>, InspectError> {
    let pod = pod.trim();
    if !looks_like_pod_uid(pod) {
        return Err(InspectError::PodName(pod.to_owned()));
    }
    let want = pod.to_ascii_lowercase().replace('_', "-");
    let pids: Vec<u32> = containers(proc_root)
        .into_iter()
        .filter(|(_, c)| {
            c.pod_uid
                .as_deref()
                .is_some_and(|uid| uid.to_ascii_lowercase().starts_with(&want))
        })
        .map(|(pid, _)| pid)
        .collect();
    if pids.is_empty() {
        return Err(InspectError::NoPod(pod.to_owned()));
    }
    Ok(pids)
}

/// What to inspect.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Target {
    /// One process.
    Pid(u32),
    /// Every process of the container whose id starts with this prefix.
    Container(String),
    /// Every process of the pod whose uid starts with this prefix.
    Pod(String),
}

/// Inspects a target. Processes that exit while a container or pod is being inspected are
/// left out; a container prefix that matches more than one container is an error.
pub fn inspect_target(
    proc_root: &Path,
    target: &Target,
) -> Result<Vec<ProcessReport>, InspectError> {
    inspect_target_noting(proc_root, target, &mut |_, _| {})
}

/// [`inspect_target`], telling `skipped` of each process of a container or pod that could not
/// be read or parsed. One process never fails the whole container or pod: what it writes into
/// its own /proc files (its name, its arguments) is its choice, not the inspector's.
pub fn inspect_target_noting(
    proc_root: &Path,
    target: &Target,
    skipped: &mut dyn FnMut(u32, InspectError),
) -> Result<Vec<ProcessReport>, InspectError> {
    let pids = match target {
        Target::Pid(pid) => return Ok(vec![inspect_pid(proc_root, *pid)?]),
        Target::Container(prefix) => {
            if prefix.trim().is_empty() {
                return Err(InspectError::EmptyContainerPrefix);
            }
            find_container_pids(proc_root, prefix)
        }
        Target::Pod(pod) => find_pod_pids(proc_root, pod)?,
    };
    let mut reports = Vec::new();
    for pid in pids {
        match inspect_pid(proc_root, pid) {
            Ok(r) => reports.push(r),
            Err(InspectError::NoSuchProcess(_)) => {}
            Err(e) => skipped(pid, e),
        }
    }
    if let Target::Container(prefix) = target {
        let ids: BTreeSet<&str> = reports
            .iter()
            .filter_map(|r| r.container.as_ref().map(|c| c.container.id.as_str()))
            .collect();
        if ids.len() > 1 {
            return Err(InspectError::AmbiguousContainer {
                prefix: prefix.clone(),
                ids: ids.into_iter().map(str::to_owned).collect(),
            });
        }
        if reports.is_empty() {
            return Err(InspectError::NoContainer(prefix.clone()));
        }
    }
    Ok(reports)
}

/// The ids of the containers of pod `name` (the CRI plugin's `io.kubernetes.pod.name` label).
pub fn pod_container_ids<'a>(
    containers: &'a [crate::workload::containerd::RuntimeContainer],
    name: &str,
) -> Vec<&'a str> {
    containers
        .iter()
        .filter(|c| {
            c.labels
                .get(crate::workload::containers::LABEL_POD_NAME)
                .map(String::as_str)
                == Some(name)
        })
        .map(|c| c.id.as_str())
        .collect()
}
