//! The container and service engines the live tests drive, each through its helper under
//! tests/common/: a process is where the helper says (its cgroup), and the engine stops it
//! with the signals it is known for. Needs root; each engine's script starts it when it does
//! not answer. These tests fail, rather than skip, when an engine cannot run.

mod common;

use std::fs;
use std::time::Duration;

use common::cri::{CriPod, PodSpec, GRACE_ANNOTATION};
use common::ctr::{container_info, cri_metadata, CRI_NAMESPACE};

/// The cgroup v2 path of a process, relative to the hierarchy's root.
fn cgroup_of(pid: i32) -> String {
    let text = fs::read_to_string(format!("/proc/{pid}/cgroup"))
        .unwrap_or_else(|e| panic!("read /proc/{pid}/cgroup: {e}"));
    text.lines()
        .find_map(|l| l.strip_prefix("0::"))
        .unwrap_or_else(|| panic!("no cgroup v2 line for {pid}: {text}"))
        .to_owned()
}

fn alive(pid: i32) -> bool {
    // A zombie has no cgroup line any more; kill(pid, 0) would still succeed.
    fs::read_to_string(format!("/proc/{pid}/stat"))
        .map(|s| {
            !s.rsplit(')')
                .next()
                .unwrap_or("")
                .trim_start()
                .starts_with('Z')
        })
        .unwrap_or(false)
}

#[test]
fn cri_pod_container_is_killed_after_its_stop_timeout() {
    let mut spec = PodSpec::new("web");
    spec.grace_period = 1;
    let pod = CriPod::run(spec);
    let c = pod.start_container("app", &["sh", "-c", "sleep 1000"]);

    assert_eq!(
        cgroup_of(c.pid),
        format!("{}/{}", pod.spec.cgroup_parent, c.id),
        "the container's init is in the kubelet's cgroup layout"
    );
    assert_eq!(
        fs::read_to_string(format!("/proc/{}/comm", c.pid))
            .unwrap()
            .trim(),
        "sleep",
        "sh -c execs its last command"
    );

    // containerd's record of the container: the kubelet's labels, the annotations the CRI
    // plugin puts in the OCI spec, and the kubelet's annotations (the grace period) in the
    // CRI plugin's metadata.
    let info = container_info(CRI_NAMESPACE, &c.id);
    let labels = &info["Labels"];
    assert_eq!(
        labels["io.kubernetes.pod.name"],
        pod.spec.name.as_str(),
        "{labels}"
    );
    assert_eq!(
        labels["io.kubernetes.pod.namespace"],
        pod.spec.namespace.as_str()
    );
    assert_eq!(labels["io.kubernetes.pod.uid"], pod.spec.uid.as_str());
    assert_eq!(labels["io.kubernetes.container.name"], "app");
    assert_eq!(labels["io.cri-containerd.kind"], "container", "{labels}");
    let annotations = &info["Spec"]["annotations"];
    assert_eq!(annotations["io.kubernetes.cri.container-type"], "container");
    assert_eq!(annotations["io.kubernetes.cri.sandbox-id"], pod.id.as_str());
    assert_eq!(annotations["io.kubernetes.cri.container-name"], "app");
    let config = &cri_metadata(&info)["Metadata"]["Config"];
    assert_eq!(config["annotations"][GRACE_ANNOTATION], "1", "{config}");

    // sleep as its PID namespace's init has no SIGTERM handler: the kernel drops SIGTERM, and
    // StopContainer(timeout 1) ends it with SIGKILL one second later.
    let took = pod.stop_container(&c, 1);
    eprintln!("StopContainer(timeout 1) took {took:?}");
    assert!(
        took >= Duration::from_millis(950) && took < Duration::from_millis(2500),
        "StopContainer(timeout 1) took {took:?}"
    );
    assert!(!alive(c.pid), "the container's init still runs");
    let status = pod.status(&c.id);
    assert_eq!(status.exit_code, 137, "killed by SIGKILL: {status:?}");
}
