//! Containers on both sides of a signal, with real containerd + runc containers: identity from
//! the cgroup and pod metadata from the runtime, and filters by pod and container in the kernel.

mod common;

use std::time::Duration;

use common::ctr::*;
use common::*;

struct Pod {
    name: String,
    namespace: String,
    container: String,
    uid: String,
}

impl Pod {
    fn new() -> Pod {
        let tag = random_hex(4);
        Pod {
            name: format!("web-{tag}"),
            namespace: format!("shop-{tag}"),
            container: format!("app-{tag}"),
            uid: random_uuid(),
        }
    }

    /// A container of this pod, as a kubelet would create it (labels, kubepods cgroup).
    fn start(&self, cmd: &str) -> TestContainer {
        require_containerd();
        TestContainer::start_with(
            &[
                ("io.kubernetes.pod.name", &self.name),
                ("io.kubernetes.pod.namespace", &self.namespace),
                ("io.kubernetes.container.name", &self.container),
            ],
            Some(&format!("/kubepods/besteffort/pod{}/{{id}}", self.uid)),
            cmd,
        )
    }
}

#[test]
fn a_stopped_container_names_its_pod_and_a_sender_outside() {
    let pod = Pod::new();
    let c = pod.start("sleep 1000");
    let init = c.pid();
    let trace = Trace::start(&[
        "--target-pid",
        &init.to_string(),
        "--signal",
        "TERM",
        "--containerd-socket",
        SOCKET,
    ]);
    ctr(&["task", "kill", &c.id]);
    let g = trace.wait_for("SIGTERM from the runtime", |v| {
        is(v, "generate") && v["target"]["pid"] == init
    });
    let target = &g["target"]["container"];
    assert_eq!(target["id"], c.id.as_str(), "{g}");
    assert_eq!(target["pod"], pod.name.as_str(), "{g}");
    assert_eq!(target["namespace"], pod.namespace.as_str(), "{g}");
    assert_eq!(target["name"], pod.container.as_str(), "{g}");
    assert_eq!(target["runtime"], "containerd", "{g}");
    assert!(
        g["sender"]["container"].is_null(),
        "the runtime sends from outside: {g}"
    );
    // The container's shell is its PID 1 without a handler: the SIGTERM is ignored.
    assert_eq!(g["result"], "ignored", "{g}");
    assert_eq!(g["reason"], "pid_namespace_init", "{g}");
    assert_eq!(g["target"]["ns_pid"], 1, "{g}");
    trace.stop();
}

#[test]
fn a_signal_sent_inside_a_container_carries_the_sender_container() {
    let pod = Pod::new();
    let c = pod.start("trap 'echo usr1' USR1; while true; do sleep 1; done");
    let init = c.pid();
    let trace = Trace::start(&[
        "--container",
        &c.id[..12],
        "--signal",
        "USR1",
        "--containerd-socket",
        SOCKET,
    ]);
    let out = c.exec(&["kill", "-USR1", "1"]);
    assert!(out.status.success(), "{out:?}");
    let g = trace.wait_for("USR1 inside the container", |v| {
        is(v, "generate") && v["target"]["pid"] == init
    });
    assert_eq!(g["sender"]["container"]["id"], c.id.as_str(), "{g}");
    assert_eq!(g["sender"]["container"]["pod"], pod.name.as_str(), "{g}");
    assert_eq!(g["target"]["container"]["id"], c.id.as_str(), "{g}");
    assert_eq!(
        g["target"]["disposition"], "handler",
        "the shell traps USR1: {g}"
    );
    assert_eq!(g["result"], "delivered", "{g}");
    trace.stop();
}

#[test]
fn pod_and_container_filters_keep_the_pod_and_drop_host_noise() {
    let pod = Pod::new();
    let first = pod.start("trap 'exit 0' TERM; while true; do sleep 1; done");
    let host = spawn(Setup {
        handle: &[libc::SIGUSR1],
        ..Setup::default()
    });
    let trace = Trace::start(&[
        "--pod",
        &pod.name,
        "--events",
        "generate,exit",
        "--containerd-socket",
        SOCKET,
    ]);
    // Host noise at the same time.
    for _ in 0..5 {
        kill(host.pid, libc::SIGUSR1);
    }
    // A container of the pod started after the tracer is selected as soon as its cgroup exists.
    let second = pod.start("trap 'exit 0' TERM; while true; do sleep 1; done");
    std::thread::sleep(Duration::from_millis(300));
    let (p1, p2) = (first.pid(), second.pid());
    ctr(&["task", "kill", &first.id]);
    ctr(&["task", "kill", &second.id]);
    trace.wait_for("SIGTERM to the first", |v| {
        is(v, "generate") && v["target"]["pid"] == p1 && v["signo"] == 15
    });
    trace.wait_for("SIGTERM to the second", |v| {
        is(v, "generate") && v["target"]["pid"] == p2 && v["signo"] == 15
    });
    trace.wait_for("exit of the second", |v| is(v, "exit") && v["pid"] == p2);
    kill(host.pid, libc::SIGUSR1);
    std::thread::sleep(Duration::from_millis(300));
    let (_, records, _) = trace.stop();
    for v in &records {
        let pods: Vec<&serde_json::Value> = [
            &v["sender"]["container"]["pod"],
            &v["target"]["container"]["pod"],
            &v["container"]["pod"],
        ]
        .into_iter()
        .filter(|p| !p.is_null())
        .collect();
        assert!(
            pods.iter().any(|p| **p == pod.name.as_str()),
            "a record outside the pod got through: {v}"
        );
        assert_ne!(v["target"]["pid"], host.pid, "host noise got through: {v}");
    }
    let x = records
        .iter()
        .find(|v| is(v, "exit") && v["pid"] == p2)
        .expect("exit");
    assert_eq!(x["exit_code"], 0, "the trap exits 0: {x}");
    assert_eq!(x["container"]["name"], pod.container.as_str(), "{x}");
}

/// The findings `explain` prints for a pod while `stop` runs.
fn explain_pod(pod: &Pod, cmd: &str, stop: impl FnOnce(&TestContainer)) -> Vec<serde_json::Value> {
    let c = pod.start(cmd);
    let live = Trace::start(&[
        "explain",
        "--pod",
        &pod.name,
        "--timeline",
        "--containerd-socket",
        SOCKET,
    ]);
    // Let the shell start its child.
    std::thread::sleep(Duration::from_millis(500));
    stop(&c);
    // The engine concludes a shutdown shortly after the last exit.
    std::thread::sleep(Duration::from_secs(3));
    let (_, found, _) = live.stop();
    found
}

fn kinds(found: &[serde_json::Value]) -> std::collections::BTreeSet<String> {
    found
        .iter()
        .filter(|v| v["event"] == "finding")
        .filter_map(|v| v["kind"].as_str().map(str::to_owned))
        .collect()
}

#[test]
fn a_shell_form_entrypoint_stopped_with_term_then_kill_is_explained() {
    let pod = Pod::new();
    let found = explain_pod(&pod, "sleep 1000; echo done", |c| {
        ctr(&["task", "kill", &c.id]);
        std::thread::sleep(Duration::from_secs(2));
        ctr(&["task", "kill", "-s", "SIGKILL", &c.id]);
    });
    let k = kinds(&found);
    for want in ["init_ignored", "not_forwarded", "grace_exceeded"] {
        assert!(k.contains(want), "{want} missing: {found:#?}");
    }
    let grace = found
        .iter()
        .find(|v| v["kind"] == "grace_exceeded")
        .unwrap();
    assert_eq!(grace["exit_code"], 137, "{grace}");
    assert!(
        grace["grace_ns"].as_u64().unwrap_or(0) >= 1_900_000_000,
        "{grace}"
    );
    assert_eq!(grace["container"]["pod"], pod.name.as_str(), "{grace}");
    let nf = found.iter().find(|v| v["kind"] == "not_forwarded").unwrap();
    assert!(
        nf["children"]
            .as_array()
            .is_some_and(|c| c.iter().any(|p| p["comm"] == "sleep")),
        "the sleep child was never signalled by the shell: {nf}"
    );
    assert!(found.iter().any(|v| v["event"] == "timeline"), "{found:#?}");
}

#[test]
fn a_pid_1_that_traps_term_and_exits_0_is_not_blamed() {
    let pod = Pod::new();
    let found = explain_pod(
        &pod,
        "trap 'exit 0' TERM; while true; do sleep 1; done",
        |c| {
            ctr(&["task", "kill", &c.id]);
            assert!(
                c.wait_stopped(Duration::from_secs(10)),
                "the trapped shell did not exit"
            );
        },
    );
    let blaming: Vec<_> = found
        .iter()
        .filter(|v| v["event"] == "finding" && v["severity"] != "info")
        .collect();
    assert!(
        blaming.is_empty(),
        "a clean shutdown blames nobody: {blaming:#?}"
    );
    assert!(
        found.iter().any(|v| v["event"] == "timeline"),
        "its story is still told: {found:#?}"
    );
}

#[test]
fn inspect_finds_a_pod_by_name_and_flags_its_shell_init() {
    let pod = Pod::new();
    let c = pod.start("sleep 1000; echo done");
    let init = c.pid();
    // inspect asks containerd's default socket; there, it finds the tests' containerd.
    let out =
        with_test_socket_as_default(BIN, &["inspect", "--pod", &pod.name, "--format", "json"])
            .output()
            .expect("run inspect");
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    let reports: Vec<serde_json::Value> = String::from_utf8_lossy(&out.stdout)
        .lines()
        .map(|l| serde_json::from_str(l).expect("json"))
        .collect();
    let text = String::from_utf8_lossy(&out.stdout);
    assert!(
        reports
            .iter()
            .any(|r| r.to_string().contains(&format!("\"pid\":{init}"))),
        "{text}"
    );
    assert!(text.contains("init_without_term_handler"), "{text}");
    assert!(text.contains("shell_init_with_children"), "{text}");
    let missing = with_test_socket_as_default(BIN, &["inspect", "--pod", "no-such-pod-x"])
        .output()
        .expect("run");
    assert_eq!(missing.status.code(), Some(1));
    assert!(
        String::from_utf8_lossy(&missing.stderr).contains("no process runs in pod no-such-pod-x"),
        "{missing:?}"
    );
}

/// After attaching, the tracer runs under its seccomp allow-list (every thread), and still does
/// everything a trace with containers needs: a pod started afterwards is found by a cgroup scan
/// and named by a first connection to containerd, and metrics are served.
#[test]
fn the_system_call_filter_is_active_and_a_trace_with_containers_still_works() {
    let trace = Trace::start(&[
        "--signal",
        "TERM",
        "--metrics-addr",
        "127.0.0.1:0",
        "--containerd-socket",
        SOCKET,
    ]);
    let tasks = std::fs::read_dir(format!("/proc/{}/task", trace.pid())).expect("tasks");
    let mut threads = 0;
    for t in tasks.flatten() {
        let status = std::fs::read_to_string(t.path().join("status")).expect("status");
        assert!(
            status.lines().any(|l| l == "Seccomp:\t2"),
            "thread {:?} runs without the filter:\n{status}",
            t.file_name()
        );
        threads += 1;
    }
    assert!(
        threads >= 3,
        "the loop, the runtime client, metrics: {threads}"
    );
    let pod = Pod::new();
    let c = pod.start("sleep 1000");
    let init = c.pid();
    ctr(&["task", "kill", &c.id]);
    let g = trace.wait_for("SIGTERM to a pod started under the filter", |v| {
        is(v, "generate") && v["target"]["pid"] == init
    });
    assert_eq!(
        g["target"]["container"]["pod"],
        pod.name.as_str(),
        "{g}\n{}",
        trace.stderr()
    );
    let stderr = trace.stderr();
    let addr = stderr
        .split("metrics on http://")
        .nth(1)
        .and_then(|r| r.split('/').next())
        .expect("the metrics address");
    let mut conn = std::net::TcpStream::connect(addr).expect("connect to metrics");
    std::io::Write::write_all(&mut conn, b"GET /metrics HTTP/1.1\r\n\r\n").unwrap();
    let mut resp = String::new();
    std::io::Read::read_to_string(&mut conn, &mut resp).unwrap();
    assert!(resp.contains("signal_trace_events_total"), "{resp}");
    let (_, _, stderr) = trace.stop();
    assert!(!stderr.contains("system call filter"), "{stderr}");
    assert!(!stderr.contains("Operation not permitted"), "{stderr}");
}
