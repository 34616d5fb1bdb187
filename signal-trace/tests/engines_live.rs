//! The container and service engines the live tests drive, each through its helper under
//! tests/common/: a process is where the helper says (its cgroup), and the engine stops it
//! with the signals it is known for. Needs root; each engine's script starts it when it does
//! not answer. These tests fail, rather than skip, when an engine cannot run.

mod common;

use std::fs;
use std::time::Duration;

use common::cri::{CriPod, PodSpec, GRACE_ANNOTATION};
use common::ctr::{container_info, cri_metadata, CRI_NAMESPACE};
use common::docker::{DockerContainer, Engine, RunOptions};
use common::systemd::Machine;

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
    // runc's init has exec'd sh by now; sh execs its last command a moment later.
    let comm = || {
        fs::read_to_string(format!("/proc/{}/comm", c.pid))
            .unwrap()
            .trim()
            .to_owned()
    };
    let deadline = std::time::Instant::now() + std::time::Duration::from_secs(5);
    while comm() == "sh" && std::time::Instant::now() < deadline {
        std::thread::sleep(std::time::Duration::from_millis(10));
    }
    assert_eq!(comm(), "sleep", "sh -c execs its last command");

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

/// The pids whose parent is `pid`.
fn children(pid: i32) -> Vec<i32> {
    fs::read_to_string(format!("/proc/{pid}/task/{pid}/children"))
        .unwrap_or_default()
        .split_whitespace()
        .filter_map(|p| p.parse().ok())
        .collect()
}

fn comm(pid: i32) -> String {
    fs::read_to_string(format!("/proc/{pid}/comm"))
        .unwrap_or_default()
        .trim()
        .to_owned()
}

/// `stop` of a container under `engine`: with --init, the init forwards SIGTERM to its child,
/// which dies of it, at once; without, a bare sleep as PID 1 drops SIGTERM and is killed with
/// SIGKILL after the timeout. `kill -s` sends what it is told.
fn engine_stops_containers(engine: Engine, init_comm: &str) {
    let opts = RunOptions::new("svc")
        .engine(engine)
        .init()
        .compose("shop", "web");
    let c = DockerContainer::run(&opts, &["sh", "-c", "sleep 1000"]);
    let init = c.pid();
    assert_eq!(comm(init), init_comm);
    let kids = children(init);
    assert_eq!(kids.len(), 1, "one child under {init_comm}: {kids:?}");
    assert_eq!(comm(kids[0]), "sleep");
    let cgroup = c.cgroup_dir();
    assert!(
        cgroup
            .file_name()
            .and_then(|n| n.to_str())
            .is_some_and(|n| n.ends_with(c.id.as_str())),
        "{engine:?}: the container's cgroup is named by its id: {}",
        cgroup.display()
    );
    assert_eq!(cgroup_of(kids[0]), cgroup_of(init));
    let labels = &c.inspect()["Config"]["Labels"];
    assert_eq!(labels["com.docker.compose.service"], "web", "{labels}");
    assert_eq!(
        c.name,
        format!(
            "{}-web-1",
            labels["com.docker.compose.project"].as_str().unwrap()
        )
    );
    let took = c.stop(10);
    eprintln!("{engine:?}: stop -t 10 with --init took {took:?}");
    assert!(
        took < Duration::from_secs(5),
        "SIGTERM was not forwarded: {took:?}"
    );
    assert_eq!(c.exit_code(), Some(143), "the init exits 128+SIGTERM");
    assert!(!alive(kids[0]));

    let bare = DockerContainer::run(&RunOptions::new("bare").engine(engine), &["sleep", "1000"]);
    let pid = bare.pid();
    assert_eq!(comm(pid), "sleep");
    let took = bare.stop(1);
    eprintln!("{engine:?}: stop -t 1 without --init took {took:?}");
    assert!(took >= Duration::from_millis(950), "{took:?}");
    assert!(took < Duration::from_secs(5), "{took:?}");
    assert_eq!(bare.exit_code(), Some(137));
    assert!(!alive(pid));

    let k = DockerContainer::run(
        &RunOptions::new("kill").engine(engine).init(),
        &["sleep", "1000"],
    );
    k.kill("SIGUSR1");
    assert!(
        k.wait_stopped(Duration::from_secs(5)),
        "SIGUSR1 through the init ends sleep"
    );
    assert_eq!(k.exit_code(), Some(128 + 10));
}

#[test]
fn docker_stop_with_init_forwards_term_and_without_kills_after_the_timeout() {
    engine_stops_containers(Engine::Docker, "docker-init");
}

#[test]
fn podman_and_its_docker_api_stop_containers_like_docker() {
    engine_stops_containers(Engine::Podman, "podman-init");
    engine_stops_containers(Engine::PodmanDockerApi, "podman-init");
}

#[test]
fn systemd_kills_a_service_that_ignores_sigterm_after_its_stop_timeout() {
    let m = Machine::up();
    let unit = format!("stubborn-{}.service", common::ctr::random_hex(4));
    m.install_unit(
        &unit,
        "[Service]\nExecStart=/bin/sh -c 'trap \"\" TERM; while :; do sleep 1; done'\n\
         TimeoutStopSec=2\n",
    );
    m.start(&unit);
    let pid = m.main_pid(&unit);
    let dir = m.unit_cgroup(&unit);
    assert!(
        dir.ends_with(format!("payload/system.slice/{unit}")),
        "{}",
        dir.display()
    );
    assert_eq!(
        common::ctr::cgroup_root().join(cgroup_of(pid).trim_start_matches('/')),
        dir,
        "the main process is in the unit's cgroup"
    );
    assert_eq!(comm(pid), "sh");

    // SIGTERM is ignored; systemd sends SIGKILL when TimeoutStopSec has passed.
    let took = m.stop(&unit);
    eprintln!("systemctl stop of a unit ignoring SIGTERM took {took:?}");
    assert!(took >= Duration::from_millis(1950), "{took:?}");
    assert!(took < Duration::from_secs(6), "{took:?}");
    assert_eq!(m.show(&unit, "Result"), "timeout");
    // The main process was killed by signal 9 (ExecMainCode 2: CLD_KILLED).
    assert_eq!(m.show(&unit, "ExecMainCode"), "2");
    assert_eq!(m.show(&unit, "ExecMainStatus"), "9");
    assert!(!alive(pid));
    m.remove_unit(&unit);
}
