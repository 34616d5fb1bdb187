//! The CRI client against a real CRI runtime: the tests' containerd serves the CRI API on its
//! own socket, as the kubelet uses it. Pods are made through it as the kubelet makes them
//! (tests/common/cri.rs). The client alone must return what the kubelet gave a container; the
//! tracer pointed at that socket with `--cri-socket` only (containerd's own API out of reach)
//! must name the pod in its records and `explain` blame Kubernetes, and `inspect --pod` find its
//! containers through it; and a CRI socket that
//! accepts and never answers must cost names only. Needs root and the tests' containerd
//! (started by scripts/containerd-up.sh when it does not answer); fails, never skips, when
//! either is missing.

mod common;

use std::io::{Read as _, Write as _};
use std::os::unix::net::UnixListener;
use std::path::{Path, PathBuf};
use std::process::Command;
use std::time::{Duration, Instant};

use common::cri::{CriPod, PodSpec, GRACE_ANNOTATION};
use common::ctr::{self, random_hex, random_uuid};
use common::{explain, hung_runtime, is, metrics, require_root, spawn, Cgroup2, Setup, Trace, BIN};
use serde_json::Value;
use signal_trace::workload::cgroup::Runtime;
use signal_trace::workload::containerd::{ContainerSource, RuntimeError};
use signal_trace::workload::containers::{
    LABEL_CONTAINER_NAME, LABEL_POD_NAME, LABEL_POD_NAMESPACE,
};
use signal_trace::workload::cri::{self, Cri};

/// Where no runtime listens.
const NOWHERE: &str = "/nonexistent/signal-trace-test";

/// An annotation value only a hostile pod author would write: kept as data all the way.
const HOSTILE: &str = "\u{1b}]0;pwned\u{7}\n\u{1b}[2Jnot-a-line\\x41";

/// The tracer with containerd's, dockerd's and podman's APIs out of reach and the CRI client
/// on the tests' containerd, plus `args`.
fn trace_with_cri_only(args: &[&str]) -> Trace {
    let nowhere = |name: &str| format!("{NOWHERE}/{name}.sock");
    let (containerd, docker, podman) =
        (nowhere("containerd"), nowhere("docker"), nowhere("podman"));
    let mut all = vec![
        "--containerd-socket",
        containerd.as_str(),
        "--docker-socket",
        docker.as_str(),
        "--podman-socket",
        podman.as_str(),
        "--cri-socket",
        ctr::SOCKET,
    ];
    all.extend_from_slice(args);
    Trace::start(&all)
}

/// Case A: the client itself, on containerd's CRI plugin.
#[test]
fn the_cri_client_returns_what_the_kubelet_gave_a_container() {
    let mut spec = PodSpec::new("cri");
    spec.grace_period = 17;
    spec.annotations
        .push(("example.com/note".to_owned(), HOSTILE.to_owned()));
    let pod = CriPod::run(spec);
    let app = pod.start_container("app", &["sh", "-c", "sleep 1000"]);
    let sidecar = pod.start_container("sidecar", &["sh", "-c", "sleep 1000"]);
    assert_eq!(app.id.len(), 64, "CRI ids are full ids: {}", app.id);
    // The id in the container's cgroup path is the id CRI lists.
    assert!(app.dir.ends_with(&app.id), "{}", app.dir.display());

    let mut client = Cri::new(ctr::SOCKET, cri::DEFAULT_TIMEOUT).expect("start the client");
    let found = client
        .lookup(std::slice::from_ref(&app.id))
        .unwrap_or_else(|e| panic!("{e}"));
    assert_eq!(found.len(), 1, "{found:#?}");
    let c = &found[0];
    assert_eq!(c.id, app.id);
    assert_eq!(c.runtime, Runtime::Containerd, "Version names containerd");
    assert_eq!(c.name.as_deref(), Some("app"), "the CRI metadata name");
    assert_eq!(c.image, ctr::IMAGE);
    let label = |k: &str| c.labels.get(k).map(String::as_str);
    assert_eq!(label(LABEL_POD_NAME), Some(pod.spec.name.as_str()));
    assert_eq!(
        label(LABEL_POD_NAMESPACE),
        Some(pod.spec.namespace.as_str())
    );
    assert_eq!(label(LABEL_CONTAINER_NAME), Some("app"));
    let annotation = |k: &str| c.annotations.get(k).map(String::as_str);
    assert_eq!(annotation(GRACE_ANNOTATION), Some("17"));
    assert_eq!(annotation("example.com/note"), Some(HOSTILE));

    // More ids than are asked one by one: one listing, still only the ids asked for.
    let mut ids = vec![sidecar.id.clone(), app.id.clone()];
    ids.extend((0..10).map(|_| random_hex(64)));
    let mut found: Vec<(String, Option<String>)> = client
        .lookup(&ids)
        .unwrap_or_else(|e| panic!("{e}"))
        .into_iter()
        .map(|c| (c.id, c.name))
        .collect();
    found.sort();
    let mut want = vec![
        (app.id.clone(), Some("app".to_owned())),
        (sidecar.id.clone(), Some("sidecar".to_owned())),
    ];
    want.sort();
    assert_eq!(found, want);

    // An id the runtime does not know is simply absent.
    assert_eq!(
        client.lookup(&[random_hex(64)]).expect("an empty answer"),
        Vec::new()
    );
    // The sandbox (pause) container is no CRI container.
    assert_eq!(
        client
            .lookup(std::slice::from_ref(&pod.id))
            .expect("an empty answer"),
        Vec::new()
    );
}

/// Case B: the tracer names a pod through the CRI client alone.
#[test]
fn the_tracer_names_a_pod_through_the_cri_socket_alone() {
    let mut spec = PodSpec::new("crionly");
    spec.grace_period = 1;
    let pod = CriPod::run(spec);
    let c = pod.start_container("app", &["sh", "-c", "sleep 1000"]);
    // The pod filter is resolved in the kernel from the names the CRI client gives.
    let t = trace_with_cri_only(&["--pod", &pod.spec.name]);
    pod.stop_container(&c, 1);
    t.wait_for("the container's death", |r| {
        is(r, "exit") && r["pid"] == c.pid && r["signal"] == "SIGKILL"
    });
    let (_, records, _) = t.stop();

    // containerd's own API was out of reach: the names below came from CRI.
    assert!(!Path::new(NOWHERE).exists(), "{NOWHERE} must not exist");
    let term = records
        .iter()
        .find(|r| is(r, "generate") && r["signal"] == "SIGTERM" && r["target"]["pid"] == c.pid)
        .unwrap_or_else(|| panic!("no SIGTERM to {} in {records:#?}", c.pid));
    let container = &term["target"]["container"];
    assert_eq!(container["id"], c.id.as_str(), "{term}");
    assert_eq!(container["runtime"], "containerd", "{term}");
    assert_eq!(container["pod"], pod.spec.name.as_str(), "{term}");
    assert_eq!(
        container["namespace"],
        pod.spec.namespace.as_str(),
        "{term}"
    );
    assert_eq!(container["name"], "app", "{term}");
    assert_eq!(container["image"], ctr::IMAGE, "{term}");
    assert_eq!(container["grace_period_s"], 1, "{term}");

    let findings = explain(&records);
    let f = findings
        .iter()
        .find(|f| f["kind"] == "grace_exceeded")
        .unwrap_or_else(|| panic!("no grace_exceeded finding in {findings:#?}"));
    assert_eq!(f["orchestrator"], "kubernetes", "{f:#}");
    let summary = f["summary"].as_str().expect("a summary");
    assert!(
        summary.contains(&format!(
            "container app of pod {}/{}",
            pod.spec.namespace, pod.spec.name
        )),
        "{summary}"
    );
    assert!(summary.contains("the pod allows 1 s"), "{summary}");
}

#[test]
fn inspect_finds_a_pod_by_name_through_the_cri_socket_alone() {
    let pod = CriPod::run(PodSpec::new("inspectcri"));
    let c = pod.start_container("app", &["sh", "-c", "sleep 1000; echo done"]);
    let nowhere = format!("{NOWHERE}/containerd.sock");
    let inspect = |pod_name: &str, cri_socket: &str| {
        Command::new(BIN)
            .args(["inspect", "--pod", pod_name, "--format", "json"])
            .args(["--containerd-socket", &nowhere, "--cri-socket", cri_socket])
            .output()
            .expect("run inspect")
    };
    let out = inspect(&pod.spec.name, ctr::SOCKET);
    let stdout = String::from_utf8_lossy(&out.stdout);
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    let reports: Vec<Value> = stdout
        .lines()
        .map(|l| serde_json::from_str(l).expect("json"))
        .collect();
    assert!(
        reports
            .iter()
            .any(|r| r.to_string().contains(&format!("\"pid\":{}", c.pid))),
        "the container's init {} in {stdout}",
        c.pid
    );
    assert!(stdout.contains("shell_init_with_children"), "{stdout}");

    // Neither runtime reachable: one line naming both failures, status 1.
    let none = inspect(&pod.spec.name, &format!("{NOWHERE}/crio.sock"));
    assert_eq!(none.status.code(), Some(1), "{none:?}");
    let err = String::from_utf8_lossy(&none.stderr);
    assert!(err.contains("cannot ask the container runtime"), "{err}");
}

/// A container cgroup of CRI-O's cgroupfs layout, `/kubepods/besteffort/pod<uid>/crio-<id>`,
/// made by hand; removed with the parents it made on drop.
struct CrioCgroup {
    id: String,
    dir: PathBuf,
    made: Vec<PathBuf>,
}

impl CrioCgroup {
    fn new(cg: &Cgroup2, pod: &Path) -> CrioCgroup {
        let id = random_hex(64);
        let dir = pod.join(format!("crio-{id}"));
        let mut made = Vec::new();
        for d in dir.ancestors().collect::<Vec<_>>().into_iter().rev() {
            if d.starts_with(&cg.root) && !d.exists() {
                std::fs::create_dir(d).unwrap_or_else(|e| panic!("mkdir {}: {e}", d.display()));
                made.push(d.to_path_buf());
            }
        }
        CrioCgroup { id, dir, made }
    }

    fn enter(&self, pid: i32) {
        std::fs::write(self.dir.join("cgroup.procs"), pid.to_string())
            .unwrap_or_else(|e| panic!("move {pid} into {}: {e}", self.dir.display()));
    }
}

impl Drop for CrioCgroup {
    fn drop(&mut self) {
        // Parents another test still uses are not empty: those stay.
        for d in self.made.iter().rev() {
            let _ = std::fs::remove_dir(d);
        }
    }
}

/// A Docker Engine API that knows no container: every request is answered with `[]`.
fn empty_docker_api(path: &Path) {
    let _ = std::fs::remove_file(path);
    let listener = UnixListener::bind(path).expect("bind the Docker API socket");
    std::thread::spawn(move || {
        for conn in listener.incoming() {
            let Ok(mut c) = conn else { break };
            let mut request = Vec::new();
            let mut buf = [0u8; 4096];
            while !request.windows(4).any(|w| w == b"\r\n\r\n") {
                match c.read(&mut buf) {
                    Ok(0) | Err(_) => break,
                    Ok(n) => request.extend_from_slice(&buf[..n]),
                }
            }
            let _ = c.write_all(
                b"HTTP/1.0 200 OK\r\nContent-Type: application/json\r\nContent-Length: 2\r\n\r\n[]",
            );
        }
    });
}

/// Case C: a CRI socket that accepts and never answers costs names, never events or time.
///
/// The other runtimes answer (the tests' containerd, and a Docker API that knows no
/// container, as this host has cgroups of Docker's shape), so every failed query counted is
/// the CRI client's.
#[test]
fn a_cri_runtime_that_never_answers_costs_names_only() {
    require_root();
    ctr::require_containerd();
    let dir = std::env::temp_dir().join(format!("st-cri-hung-{}", std::process::id()));
    let _ = std::fs::remove_dir_all(&dir);
    std::fs::create_dir_all(&dir).unwrap();
    let socket = dir.join("crio.sock");
    let accepted = hung_runtime(&socket);
    let docker = dir.join("docker.sock");
    empty_docker_api(&docker);
    let cg = Cgroup2::new();
    let pod = cg
        .root
        .join(format!("kubepods/besteffort/pod{}", random_uuid()));
    let first = CrioCgroup::new(&cg, &pod);
    let second = CrioCgroup::new(&cg, &pod);
    let target = spawn(Setup {
        handle: &[libc::SIGUSR1],
        ..Setup::default()
    });
    first.enter(target.pid);

    let podman = format!("{NOWHERE}/podman.sock");
    let pid = target.pid.to_string();
    let t = Trace::start(&[
        "--events",
        "generate",
        "--target-pid",
        &pid,
        "--containerd-socket",
        ctr::SOCKET,
        "--docker-socket",
        docker.to_str().unwrap(),
        "--podman-socket",
        &podman,
        "--cri-socket",
        socket.to_str().unwrap(),
        "--metrics-addr",
        "127.0.0.1:0",
    ]);
    let addr = t
        .stderr()
        .split("metrics on http://")
        .nth(1)
        .and_then(|r| r.split('/').next())
        .expect("the metrics address")
        .to_owned();

    // 20 signals over 2 s, past the client's 1 s bound, the process moving into a second
    // container halfway: each record must come at once, whatever the runtime does.
    let mut slowest = Duration::ZERO;
    for i in 0..20 {
        if i == 10 {
            second.enter(target.pid);
        }
        let want = if i < 10 { &first.id } else { &second.id };
        let sent = Instant::now();
        common::kill(target.pid, libc::SIGUSR1);
        let n = i + 1;
        loop {
            let mine = t
                .records()
                .into_iter()
                .filter(|r| is(r, "generate") && r["target"]["pid"] == target.pid)
                .collect::<Vec<_>>();
            if mine.len() >= n {
                let r = &mine[i];
                let c = &r["target"]["container"];
                assert_eq!(c["id"], want.as_str(), "{r}");
                assert_eq!(c["runtime"], "cri-o", "from the cgroup path: {r}");
                assert!(c["pod"].is_null() && c["name"].is_null(), "{r}");
                break;
            }
            assert!(
                sent.elapsed() < Duration::from_secs(10),
                "no record for signal {n}; stderr: {}",
                t.stderr()
            );
            std::thread::sleep(Duration::from_millis(5));
        }
        slowest = slowest.max(sent.elapsed());
        std::thread::sleep(Duration::from_millis(100));
    }
    assert!(
        slowest < cri::DEFAULT_TIMEOUT,
        "a record waited {slowest:?}, as long as a runtime query may take"
    );

    // The failed queries are counted and said.
    let started = Instant::now();
    let failures = loop {
        let text = metrics(&addr);
        let failed = text
            .lines()
            .find_map(|l| l.strip_prefix("signal_trace_runtime_failures_total "))
            .and_then(|n| n.trim().parse::<f64>().ok())
            .unwrap_or(0.0);
        if failed >= 1.0 || started.elapsed() > Duration::from_secs(10) {
            break failed;
        }
        std::thread::sleep(Duration::from_millis(100));
    };
    assert!(failures >= 1.0, "the failed queries are counted");
    let (status, took, records, stderr) = t.stop_with(libc::SIGINT);
    println!(
        "slowest record {slowest:?}; {failures} failed queries; connections the hung socket accepted: {}; stopped in {took:?}\n{stderr}",
        accepted.lock().unwrap()
    );
    assert!(status.success(), "{status:?}: {stderr}");
    assert!(took < Duration::from_secs(2), "stopping took {took:?}");
    let hung = RuntimeError::Timeout {
        engine: "cri",
        socket: socket.clone(),
        timeout: cri::DEFAULT_TIMEOUT,
    };
    assert!(stderr.contains(&hung.to_string()), "{stderr}");
    for line in stderr.lines().filter(|l| l.contains("query failed")) {
        assert!(
            line.contains("cri at "),
            "only the CRI client fails: {line}"
        );
    }
    assert!(
        *accepted.lock().unwrap() >= 1,
        "the CRI client connected to the hung socket"
    );
    assert!(
        stderr.contains("20 events, 0 lost"),
        "every event emitted: {stderr}"
    );
    assert_eq!(
        records
            .iter()
            .filter(|r| is(r, "generate") && r["target"]["pid"] == target.pid)
            .count(),
        20
    );
    drop(target);
    drop(second);
    drop(first);
    let _ = std::fs::remove_dir_all(&dir);
}
