//! Who stopped what, on each orchestrator: real stops by dockerd, by containerd's CRI plugin
//! driven as the kubelet drives it, and by systemd in a booted container, traced with
//! signal-trace; the records must name the workload and `explain` the orchestrator and its
//! remedy. Needs root and the engines (started by the scripts under scripts/ when they do not
//! answer); fails, never skips, when one cannot run.

mod common;

use std::process::{Command, Stdio};
use std::time::Duration;

use common::cri::{CriPod, PodSpec};
use common::docker::{DockerContainer, RunOptions};
use common::systemd::Machine;
use common::{ctr, docker, explain, is, Trace};
use serde_json::Value;

/// The tracer with every runtime socket pointed at the tests' engines, plus `args`.
fn trace(args: &[&str]) -> Trace {
    let mut all = vec![
        "--docker-socket",
        docker::SOCKET,
        "--containerd-socket",
        ctr::SOCKET,
    ];
    all.extend_from_slice(args);
    Trace::start(&all)
}

/// Every record matches schema/events.schema.json (the new fields with real values in them),
/// and the schema is not vacuous about them.
fn validate(records: &[Value]) {
    let schema: Value = serde_json::from_str(include_str!("../../schema/events.schema.json"))
        .expect("schema is JSON");
    let validator = jsonschema::validator_for(&schema).expect("schema compiles");
    for r in records {
        let errors: Vec<String> = validator
            .iter_errors(r)
            .map(|e| format!("{e} at {}", e.instance_path))
            .collect();
        assert!(
            errors.is_empty(),
            "record does not match the schema: {r}\n{errors:#?}"
        );
    }
    let mut broken = records
        .iter()
        .find(|r| is(r, "generate"))
        .expect("a generate record")
        .clone();
    broken["target"]["unit"] = Value::from(7);
    assert!(!validator.is_valid(&broken), "a unit must be a string");
}

fn kinds(findings: &[Value]) -> Vec<String> {
    findings
        .iter()
        .map(|f| f["kind"].as_str().unwrap_or("?").to_owned())
        .collect()
}

fn finding<'a>(findings: &'a [Value], kind: &str) -> &'a Value {
    findings
        .iter()
        .find(|f| f["kind"] == kind)
        .unwrap_or_else(|| panic!("no {kind} finding in {:?}: {findings:#?}", kinds(findings)))
}

/// The generate record of `signal` to `pid`.
fn signal_to(records: &[Value], signal: &str, pid: i32) -> Value {
    records
        .iter()
        .find(|r| is(r, "generate") && r["signal"] == signal && r["target"]["pid"] == pid)
        .cloned()
        .unwrap_or_else(|| panic!("no {signal} to {pid} in {records:#?}"))
}

#[test]
fn docker_stop_of_a_shell_form_container_names_it_and_blames_docker_knobs() {
    // busybox sh -c execs its last command: sleep is PID 1, with no SIGTERM handler.
    let c = DockerContainer::run(
        &RunOptions::new("web").compose("shop", "web"),
        &["sh", "-c", "sleep 1000"],
    );
    let pid = c.pid();
    let labels = c.inspect()["Config"]["Labels"].clone();
    let project = labels["com.docker.compose.project"]
        .as_str()
        .unwrap()
        .to_owned();
    let t = trace(&["--container", &c.name]);
    let took = c.stop(1);
    assert!(took >= Duration::from_millis(950), "{took:?}");
    t.wait_for("the container's death", |r| {
        is(r, "exit") && r["pid"] == pid && r["signal"] == "SIGKILL"
    });
    let (_, records, _) = t.stop();

    let term = signal_to(&records, "SIGTERM", pid);
    assert_eq!(term["result"], "ignored", "{term}");
    let container = &term["target"]["container"];
    assert_eq!(container["id"], c.id.as_str(), "{term}");
    assert_eq!(container["runtime"], "docker");
    assert_eq!(
        container["name"],
        c.name.as_str(),
        "named by the Docker API: {term}"
    );
    assert_eq!(container["image"], docker::IMAGE);
    assert_eq!(container["compose"]["project"], project.as_str());
    assert_eq!(container["compose"]["service"], "web");
    // The first record of the container already carries its name (it existed before the
    // tracer started, so that is the start-up listing); the exit too.
    let exit = records
        .iter()
        .find(|r| is(r, "exit") && r["pid"] == pid)
        .expect("exit");
    assert_eq!(exit["container"]["name"], c.name.as_str(), "{exit}");
    validate(&records);

    let findings = explain(&records);
    for kind in ["init_ignored", "grace_exceeded"] {
        let f = finding(&findings, kind);
        assert_eq!(f["orchestrator"], "docker", "{f:#}");
        assert_eq!(f["container"]["name"], c.name.as_str(), "{f:#}");
        let summary = f["summary"].as_str().unwrap();
        assert!(
            summary.contains(&format!("Docker container {}", c.name)),
            "{summary}"
        );
        let remedy = f["remedy"].as_str().unwrap();
        for knob in ["docker run --init", "init: true", "STOPSIGNAL"] {
            assert!(remedy.contains(knob), "{knob} missing from {remedy}");
        }
        assert!(
            !remedy.contains("terminationGracePeriodSeconds"),
            "{remedy}"
        );
        // Docker's stop by its chain too: runc, run by the container's shim, in `moby`.
        assert_chain(f, "; a docker stop: runc under containerd-shim");
    }
    assert!(
        finding(&findings, "init_ignored")["evidence"][0]["text"]
            .as_str()
            .unwrap()
            .ends_with("(namespace moby)"),
        "{findings:#?}"
    );
}

/// The evidence of the stop signal (a finding's first) names the chain that decided it.
fn assert_chain(f: &Value, chain: &str) {
    let text = f["evidence"][0]["text"].as_str().unwrap();
    assert!(text.contains(chain), "{chain} missing from {text}");
}

#[test]
fn a_kill_from_a_shell_is_no_orchestrators_stop() {
    // sleep is PID 1 without a handler: the SIGTERM is dropped, the SIGKILL ends it. Both come
    // from a shell of this test, not from Docker: neither Docker's knobs nor anyone else's.
    let c = DockerContainer::run(&RunOptions::new("shell"), &["sh", "-c", "sleep 1000"]);
    let pid = c.pid();
    let t = trace(&["--container", &c.name]);
    let status = Command::new("sh")
        .args([
            "-c",
            &format!("kill -TERM {pid}; sleep 0.5; kill -KILL {pid}"),
        ])
        .status()
        .expect("run sh");
    assert!(status.success(), "{status}");
    t.wait_for("the container's death", |r| {
        is(r, "exit") && r["pid"] == pid && r["signal"] == "SIGKILL"
    });
    let (_, records, _) = t.stop();
    let term = signal_to(&records, "SIGTERM", pid);
    assert_eq!(term["sender"]["comm"], "sh", "{term}");
    assert_eq!(
        term["target"]["container"]["name"],
        c.name.as_str(),
        "{term}"
    );

    let findings = explain(&records);
    for kind in ["init_ignored", "grace_exceeded"] {
        let f = finding(&findings, kind);
        assert_eq!(f["orchestrator"], Value::Null, "{f:#}");
        assert_eq!(f["container"]["name"], c.name.as_str(), "{f:#}");
        let remedy = f["remedy"].as_str().unwrap();
        assert!(!remedy.contains("`docker stop`"), "{remedy}");
        assert!(!remedy.contains("init: true"), "{remedy}");
    }
}

#[test]
fn docker_stop_with_init_blames_nothing() {
    let c = DockerContainer::run(&RunOptions::new("init").init(), &["sh", "-c", "sleep 1000"]);
    let pid = c.pid();
    let t = trace(&["--container", &c.name]);
    let took = c.stop(10);
    assert!(
        took < Duration::from_secs(5),
        "tini forwards SIGTERM: {took:?}"
    );
    t.wait_for("docker-init's exit", |r| is(r, "exit") && r["pid"] == pid);
    let (_, records, _) = t.stop();
    let term = signal_to(&records, "SIGTERM", pid);
    assert_eq!(
        term["target"]["container"]["name"],
        c.name.as_str(),
        "{term}"
    );
    assert_eq!(term["target"]["comm"], "docker-init");
    assert!(
        !records
            .iter()
            .any(|r| is(r, "generate") && r["signal"] == "SIGKILL"),
        "nothing needed SIGKILL"
    );
    // Nothing blames the container's set-up or its stop: no dropped SIGTERM, no grace run
    // out, no child left behind. What remains is sleep's own lack of a handler (it dies of
    // the SIGTERM docker-init forwarded), which is about the app.
    let findings = explain(&records);
    let blaming: Vec<&Value> = findings
        .iter()
        .filter(|f| {
            [
                "init_ignored",
                "not_forwarded",
                "grace_exceeded",
                "oom_killed",
            ]
            .contains(&f["kind"].as_str().unwrap_or(""))
                || f["severity"] == "error"
        })
        .collect();
    assert!(
        blaming.is_empty(),
        "a container whose init forwards SIGTERM is healthy: {blaming:#?}"
    );
    for f in &findings {
        assert_eq!(f["kind"], "signal_death", "{f:#}");
        assert_eq!(
            f["sender"]["comm"], "docker-init",
            "forwarded by tini: {f:#}"
        );
        assert_eq!(f["orchestrator"], "docker", "{f:#}");
        // An orderly stop that the init passed on: information, no warning.
        assert_eq!(f["severity"], "info", "{f:#}");
    }
}

#[test]
fn docker_kill_of_a_new_container_is_named_at_once_and_is_a_kill_without_sigterm() {
    // The tracer runs first: the container is new to it, and its first event (the SIGKILL)
    // must already carry its name.
    let t = trace(&["--signal", "KILL"]);
    let c = DockerContainer::run(&RunOptions::new("killed"), &["sleep", "1000"]);
    let pid = c.pid();
    c.kill("SIGKILL");
    t.wait_for("the container's death", |r| {
        is(r, "exit") && r["pid"] == pid
    });
    let (_, records, _) = t.stop();
    let kill = signal_to(&records, "SIGKILL", pid);
    assert_eq!(
        kill["target"]["container"]["name"],
        c.name.as_str(),
        "{kill}"
    );
    let findings = explain(&records);
    // Other tests run beside this one: the finding about this container's process.
    let f = findings
        .iter()
        .find(|f| f["kind"] == "signal_death" && f["process"]["pid"] == pid)
        .unwrap_or_else(|| panic!("no signal_death of pid {pid} in {findings:#?}"));
    assert_eq!(f["orchestrator"], "docker", "{f:#}");
    assert_eq!(f["signal"], "SIGKILL");
    let remedy = f["remedy"].as_str().unwrap();
    assert!(remedy.contains("`docker stop`"), "{remedy}");
    assert!(remedy.contains("`docker kill`"), "{remedy}");
}

#[test]
fn cri_stop_container_shows_the_pods_configured_grace() {
    let mut spec = PodSpec::new("web");
    spec.grace_period = 1;
    let pod = CriPod::run(spec);
    let c = pod.start_container("app", &["sh", "-c", "sleep 1000"]);
    let t = trace(&["--pod", &pod.spec.name]);
    pod.stop_container(&c, 1);
    t.wait_for("the container's death", |r| {
        is(r, "exit") && r["pid"] == c.pid && r["signal"] == "SIGKILL"
    });
    let (_, records, _) = t.stop();

    let term = signal_to(&records, "SIGTERM", c.pid);
    let container = &term["target"]["container"];
    assert_eq!(container["id"], c.id.as_str(), "{term}");
    assert_eq!(container["pod"], pod.spec.name.as_str(), "{term}");
    assert_eq!(container["namespace"], pod.spec.namespace.as_str());
    assert_eq!(container["name"], "app");
    assert_eq!(
        container["grace_period_s"], 1,
        "the kubelet's annotation: {term}"
    );

    let findings = explain(&records);
    let f = finding(&findings, "grace_exceeded");
    assert_eq!(f["orchestrator"], "kubernetes", "{f:#}");
    let summary = f["summary"].as_str().unwrap();
    assert!(
        summary.contains(&format!(
            "container app of pod {}/{}",
            pod.spec.namespace, pod.spec.name
        )),
        "{summary}"
    );
    assert!(
        summary.contains("after SIGTERM; the pod allows 1 s)"),
        "{summary}"
    );
    let remedy = f["remedy"].as_str().unwrap();
    for knob in ["terminationGracePeriodSeconds", "preStop", "tini"] {
        assert!(remedy.contains(knob), "{knob} missing from {remedy}");
    }
    assert_chain(f, "; a kubernetes stop: runc under containerd-shim");
    assert_chain(f, "(namespace k8s.io)");
}

#[test]
fn systemctl_stop_of_a_unit_ignoring_sigterm_is_systemds_grace_exceeded() {
    let m = Machine::up();
    let unit = format!("stubborn-{}.service", ctr::random_hex(4));
    m.install_unit(
        &unit,
        "[Service]\nExecStart=/bin/sh -c 'trap \"\" TERM; while :; do sleep 1; done'\n\
         TimeoutStopSec=2\n",
    );
    m.start(&unit);
    let pid = m.main_pid(&unit);
    let t = trace(&["--pid", &pid.to_string()]);
    let took = m.stop(&unit);
    assert!(took >= Duration::from_millis(1950), "{took:?}");
    t.wait_for("the main process's death", |r| {
        is(r, "exit") && r["pid"] == pid
    });
    let (_, records, _) = t.stop();
    m.remove_unit(&unit);

    let term = signal_to(&records, "SIGTERM", pid);
    assert_eq!(term["target"]["unit"], unit.as_str(), "{term}");
    assert_eq!(term["target"]["container"], Value::Null, "{term}");
    assert_eq!(term["sender"]["comm"], "systemd", "{term}");
    assert_eq!(
        term["sender"]["unit"], "init.scope",
        "the manager's own cgroup: {term}"
    );
    assert_eq!(term["result"], "ignored", "trap '' TERM: {term}");
    validate(&records);

    let findings = explain(&records);
    let f = finding(&findings, "grace_exceeded");
    assert_eq!(f["orchestrator"], "systemd", "{f:#}");
    assert_eq!(f["unit"], unit.as_str(), "{f:#}");
    let summary = f["summary"].as_str().unwrap();
    assert!(summary.contains(&format!("in unit {unit}")), "{summary}");
    let remedy = f["remedy"].as_str().unwrap();
    for knob in [
        "TimeoutStopSec=",
        "KillSignal=",
        "KillMode=mixed",
        "ExecStop=",
    ] {
        assert!(remedy.contains(knob), "{knob} missing from {remedy}");
    }
    assert!(remedy.contains(&unit), "{remedy}");
}

/// podman's API service on a socket of its own, stopped on drop.
struct PodmanService {
    child: std::process::Child,
    socket: String,
}

impl PodmanService {
    fn start() -> PodmanService {
        common::require_root();
        let dir = std::env::temp_dir().join(format!("attribution-podman-{}", std::process::id()));
        std::fs::create_dir_all(&dir).expect("create the socket's directory");
        let socket = dir.join("podman.sock").display().to_string();
        let _ = std::fs::remove_file(&socket);
        let child = Command::new("podman")
            .args(["system", "service", "--time=0", &format!("unix://{socket}")])
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .spawn()
            .expect("run podman (apt-get install podman)");
        let deadline = std::time::Instant::now() + Duration::from_secs(20);
        while !std::path::Path::new(&socket).exists() {
            assert!(
                std::time::Instant::now() < deadline,
                "podman system service made no socket at {socket}"
            );
            std::thread::sleep(Duration::from_millis(50));
        }
        PodmanService { child, socket }
    }
}

impl Drop for PodmanService {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
        let _ = std::fs::remove_file(&self.socket);
    }
}

/// `podman ARGS`; panics with its output when it fails.
fn podman(args: &[&str]) -> String {
    let out = Command::new("podman")
        .args(args)
        .output()
        .expect("run podman");
    assert!(
        out.status.success(),
        "podman {} failed: {}",
        args.join(" "),
        String::from_utf8_lossy(&out.stderr)
    );
    String::from_utf8_lossy(&out.stdout).trim().to_owned()
}

#[test]
fn podman_stop_is_named_through_its_docker_compatible_api() {
    let service = PodmanService::start();
    let image = "localhost/signal-trace/busybox:latest";
    if podman(&["images", "-q", image]).is_empty() {
        // The busybox root file system the other engines import (scripts/lib.sh makes and
        // caches it).
        let lib = concat!(env!("CARGO_MANIFEST_DIR"), "/../scripts/lib.sh");
        let out = Command::new("bash")
            .args(["-c", &format!("source {lib} && cached_busybox rootfs")])
            .output()
            .expect("run bash");
        assert!(
            out.status.success(),
            "cannot make the busybox root file system: {}",
            String::from_utf8_lossy(&out.stderr)
        );
        let rootfs = String::from_utf8_lossy(&out.stdout).trim().to_owned();
        podman(&["import", "--change", "CMD [\"sh\"]", &rootfs, image]);
    }
    let name = format!("web-{}", ctr::random_hex(4));
    let id = podman(&[
        "run",
        "-d",
        "--name",
        &name,
        "--network",
        "none",
        "--ulimit",
        "nofile=1024:1024",
        "--ulimit",
        "nproc=1024:1024",
        "--label",
        "com.docker.compose.project=shop",
        "--label",
        "com.docker.compose.service=web",
        image,
        "sleep",
        "1000",
    ]);
    let pid: i32 = podman(&["inspect", "-f", "{{.State.Pid}}", &name])
        .parse()
        .expect("a pid");
    let t = trace(&[
        "--podman-socket",
        &service.socket,
        "--pid",
        &pid.to_string(),
    ]);
    podman(&["stop", "-t", "1", &name]);
    t.wait_for("the container's death", |r| {
        is(r, "exit") && r["pid"] == pid
    });
    let (_, records, _) = t.stop();
    let _ = Command::new("podman").args(["rm", "-f", &name]).output();

    let term = signal_to(&records, "SIGTERM", pid);
    let container = &term["target"]["container"];
    assert_eq!(container["id"], id.as_str(), "{term}");
    assert_eq!(container["runtime"], "podman", "{term}");
    assert_eq!(
        container["name"],
        name.as_str(),
        "named by podman's API: {term}"
    );
    assert_eq!(container["image"], image);
    assert_eq!(container["compose"]["service"], "web");
    validate(&records);
    let findings = explain(&records);
    let f = finding(&findings, "grace_exceeded");
    assert_eq!(f["orchestrator"], "podman", "{f:#}");
    let remedy = f["remedy"].as_str().unwrap();
    assert!(remedy.contains("podman run --init"), "{remedy}");
    assert_chain(f, "; a podman stop: runc under podman");
}
