//! The live tests' engine scripts (scripts/*-up.sh) start from empty state whatever the last
//! run left: here a dockerd and a containerd killed with SIGKILL, with a container running,
//! which leaves mounts behind (dockerd's data-root bind-mounted onto itself, the container's
//! root file system). `--fresh` must clear them and bring the engine back. A test binary of
//! its own, so that no other container test runs while the engines are away.

mod common;

use std::fs;
use std::path::Path;
use std::time::{Duration, Instant};

use common::ctr::run_script;
use common::docker::{self, RunOptions};
use common::*;

const DOCKER_DATA_ROOT: &str = "/var/lib/signal-trace-test/docker";
const DOCKER_PIDFILE: &str = "/run/signal-trace-test/docker/docker.pid";

/// Mount points at DIR or under it.
fn mounts_at_or_under(dir: &str) -> Vec<String> {
    let info = fs::read_to_string("/proc/self/mountinfo").expect("read /proc/self/mountinfo");
    info.lines()
        .filter_map(|l| l.split(' ').nth(4))
        .filter(|mp| *mp == dir || mp.starts_with(&format!("{dir}/")))
        .map(str::to_string)
        .collect()
}

fn pid_from(file: &str) -> i32 {
    let s = fs::read_to_string(file).unwrap_or_else(|e| panic!("read {file}: {e}"));
    s.trim()
        .parse()
        .unwrap_or_else(|e| panic!("{file} holds {s:?}: {e}"))
}

fn sigkill_and_wait(pid: i32, what: &str) {
    kill(pid, libc::SIGKILL);
    let deadline = Instant::now() + Duration::from_secs(10);
    // A zombie counts as gone: its parent (setsid'd away) may be init, which reaps slowly.
    while fs::read_to_string(format!("/proc/{pid}/stat"))
        .map(|s| !s.rsplit(") ").next().unwrap_or("").starts_with('Z'))
        .unwrap_or(false)
    {
        assert!(Instant::now() < deadline, "{what} ({pid}) did not die");
        std::thread::sleep(Duration::from_millis(20));
    }
}

#[test]
fn fresh_engines_after_a_sigkilled_dockerd_and_containerd() {
    require_root();
    docker::up();
    // A running container: its root file system is mounted under the data-root.
    let c = docker::DockerContainer::run(&RunOptions::new("scripts"), &["sleep", "600"]);
    assert!(c.pid() > 0);

    sigkill_and_wait(pid_from(DOCKER_PIDFILE), "dockerd");
    sigkill_and_wait(pid_from(common::ctr::PIDFILE), "containerd");
    // What made `rm -rf` of the data-root fail: dockerd binds it onto itself and only a clean
    // shutdown undoes that. Checked so that the test keeps testing that case.
    let left = mounts_at_or_under(DOCKER_DATA_ROOT);
    assert!(
        left.iter().any(|m| m == DOCKER_DATA_ROOT),
        "a killed dockerd no longer leaves its data-root mounted; mounts there: {left:?}"
    );

    // containerd-up.sh --fresh takes dockerd's leftovers down too (its containers live there).
    run_script("containerd-up.sh", &["--fresh"]);
    run_script("docker-up.sh", &["--fresh"]);
    assert!(
        Path::new(common::docker::SOCKET).exists(),
        "no dockerd socket after docker-up.sh --fresh"
    );
    let ps = docker::docker(&["ps", "-aq"]);
    assert!(
        String::from_utf8_lossy(&ps.stdout).trim().is_empty(),
        "the fresh dockerd still lists containers: {}",
        String::from_utf8_lossy(&ps.stdout)
    );
    // And it runs containers again (run() waits until its process has exec'd).
    let again = docker::DockerContainer::run(&RunOptions::new("scripts-again"), &["sleep", "600"]);
    assert!(again.pid() > 0);
    again.remove();
}
