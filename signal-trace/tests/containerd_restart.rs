//! containerd restarted mid-trace: events keep flowing (with the container id from the cgroup)
//! while it is down, and pod names come back once it is up again. A test binary of its own, so
//! that no other container test runs while containerd is away.

mod common;

use std::time::{Duration, Instant};

use common::ctr::*;
use common::*;

fn labels(tag: &str) -> Vec<(String, String)> {
    vec![
        ("io.kubernetes.pod.name".into(), format!("web-{tag}")),
        ("io.kubernetes.pod.namespace".into(), format!("shop-{tag}")),
        ("io.kubernetes.container.name".into(), format!("app-{tag}")),
    ]
}

fn start(tag: &str) -> TestContainer {
    let l = labels(tag);
    let refs: Vec<(&str, &str)> = l.iter().map(|(k, v)| (k.as_str(), v.as_str())).collect();
    TestContainer::start_with(
        &refs,
        Some(&format!("/kubepods/besteffort/pod{}/{{id}}", random_uuid())),
        "trap 'echo usr1' USR1; while true; do sleep 1; done",
    )
}

fn containerd_up() {
    run_script("containerd-up.sh", &[]);
}

fn alive(pid: i32) -> bool {
    // SAFETY: kill(2) with signal 0 only checks.
    unsafe { libc::kill(pid, 0) == 0 }
}

#[test]
fn events_flow_while_containerd_restarts_and_names_come_back() {
    require_containerd();
    let tag = random_hex(4);
    let first = start(&tag);
    let pid = first.pid();
    let trace = Trace::start(&[
        "--signal",
        "USR1",
        "--events",
        "generate",
        "--containerd-socket",
        SOCKET,
    ]);
    kill(pid, libc::SIGUSR1);
    let g = trace.wait_for("USR1 with containerd up", |v| {
        is(v, "generate") && v["target"]["pid"] == pid
    });
    assert_eq!(
        g["target"]["container"]["pod"],
        format!("web-{tag}").as_str(),
        "{g}"
    );

    // The tests' containerd goes away (no other); the container (its shim and process) lives
    // on.
    let containerd = containerd_pid();
    assert!(alive(containerd), "containerd was running");
    kill(containerd, libc::SIGTERM);
    let deadline = Instant::now() + Duration::from_secs(10);
    while alive(containerd) {
        assert!(Instant::now() < deadline, "containerd did not stop");
        std::thread::sleep(Duration::from_millis(50));
    }
    let before = trace.records().len();
    kill(pid, libc::SIGUSR1);
    let deadline = Instant::now() + Duration::from_secs(10);
    loop {
        let recs = trace.records();
        if recs[before..]
            .iter()
            .any(|v| is(v, "generate") && v["target"]["pid"] == pid)
        {
            let g = recs[before..]
                .iter()
                .find(|v| is(v, "generate") && v["target"]["pid"] == pid)
                .unwrap();
            assert_eq!(
                g["target"]["container"]["id"],
                first.id.as_str(),
                "known from the cgroup and the cache: {g}"
            );
            break;
        }
        assert!(
            Instant::now() < deadline,
            "no event while containerd was down: {}",
            trace.stderr()
        );
        std::thread::sleep(Duration::from_millis(50));
    }

    // A container the cache has not named yet asks the runtime while it is down: a cgroup of
    // containerd's shape, which only containerd could name. The failed query is reported.
    // Its namespace's cgroup exists only once a container of that namespace ran there.
    let ns_dir = cgroup_root().join(NAMESPACE);
    let made_ns_dir = !ns_dir.exists();
    let unknown = ns_dir.join(random_hex(32));
    std::fs::create_dir_all(&unknown).expect("make a container-shaped cgroup");
    let deadline = Instant::now() + Duration::from_secs(15);
    while !trace.stderr().contains("container runtime query failed") {
        if Instant::now() >= deadline {
            let _ = std::fs::remove_dir(&unknown);
            if made_ns_dir {
                let _ = std::fs::remove_dir(&ns_dir);
            }
            panic!("the outage was not reported: {}", trace.stderr());
        }
        std::thread::sleep(Duration::from_millis(100));
    }
    std::fs::remove_dir(&unknown).expect("remove the container-shaped cgroup");
    if made_ns_dir {
        let _ = std::fs::remove_dir(&ns_dir);
    }

    // Back up: a container started now is named again.
    containerd_up();
    let second = start(&random_hex(4));
    let pid2 = second.pid();
    let deadline = Instant::now() + Duration::from_secs(40);
    loop {
        kill(pid2, libc::SIGUSR1);
        std::thread::sleep(Duration::from_millis(200));
        let named = trace.records().iter().any(|v| {
            is(v, "generate")
                && v["target"]["pid"] == pid2
                && v["target"]["container"]["pod"]
                    .as_str()
                    .is_some_and(|p| p.starts_with("web-"))
        });
        if named {
            break;
        }
        assert!(
            Instant::now() < deadline,
            "enrichment did not recover after containerd came back: {}",
            trace.stderr()
        );
    }
    let (_, _, stderr) = trace.stop();
    assert!(
        stderr.contains("container runtime query failed"),
        "the outage was reported: {stderr}"
    );
}
