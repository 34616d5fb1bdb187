//! containerd helpers for the live tests: `ctr` containers from the busybox test image, removed
//! with their cgroup directories. Needs root and scripts/containerd-up.sh; fails otherwise.

use std::fs;
use std::io::Read;
use std::path::PathBuf;
use std::process::{Command, Output};
use std::time::{Duration, Instant};

use signal_trace::workload::cgroup;
use signal_trace::workload::containerd::{Containerd, DEFAULT_SOCKET, DEFAULT_TIMEOUT};

pub const IMAGE: &str = "localhost/signal-trace/busybox:latest";
pub const NAMESPACE: &str = "default";

/// Runs `ctr` in the test namespace; panics with its output when it fails.
pub fn ctr(args: &[&str]) -> Output {
    let out = try_ctr(args);
    assert!(
        out.status.success(),
        "ctr {} failed: {}",
        args.join(" "),
        String::from_utf8_lossy(&out.stderr)
    );
    out
}

pub fn try_ctr(args: &[&str]) -> Output {
    Command::new("ctr")
        .args(["--connect-timeout", "1s", "-n", NAMESPACE])
        .args(args)
        .output()
        .expect("run ctr (apt-get install containerd)")
}

/// `n` random bytes as lowercase hex.
pub fn random_hex(n: usize) -> String {
    let mut bytes = vec![0u8; n];
    fs::File::open("/dev/urandom")
        .and_then(|mut f| f.read_exact(&mut bytes))
        .expect("read /dev/urandom");
    bytes.iter().map(|b| format!("{b:02x}")).collect()
}

pub fn random_uuid() -> String {
    fs::read_to_string("/proc/sys/kernel/random/uuid")
        .expect("read a uuid")
        .trim()
        .to_owned()
}

/// The cgroup v2 mount point.
pub fn cgroup_root() -> PathBuf {
    let mountinfo = fs::read_to_string("/proc/self/mountinfo").expect("read mountinfo");
    cgroup::cgroup2_mount(&mountinfo).expect("a cgroup2 mount")
}

/// Fails the test unless it runs as root against a containerd that answers.
pub fn require_containerd() {
    super::require_root();
    let client = Containerd::new(DEFAULT_SOCKET, DEFAULT_TIMEOUT).expect("start client");
    if let Err(err) = client.list(None) {
        panic!("{err}; start it with scripts/containerd-up.sh");
    }
    let images = ctr(&["image", "ls", "-q"]);
    assert!(
        String::from_utf8_lossy(&images.stdout)
            .lines()
            .any(|l| l == IMAGE),
        "image {IMAGE} is missing; import it with scripts/containerd-up.sh"
    );
}

/// Mount points of every cgroup hierarchy, v1 and v2.
pub fn cgroup_mounts() -> Vec<PathBuf> {
    let mountinfo = fs::read_to_string("/proc/self/mountinfo").expect("read mountinfo");
    mountinfo
        .lines()
        .filter_map(|line| {
            let fields: Vec<&str> = line.split_ascii_whitespace().collect();
            let sep = fields.iter().position(|f| *f == "-")?;
            let fstype = *fields.get(sep + 1)?;
            let mount = fields.get(4)?;
            matches!(fstype, "cgroup" | "cgroup2").then(|| PathBuf::from(mount))
        })
        .collect()
}

/// A running `ctr run` container, removed with its cgroup directories on drop.
pub struct TestContainer {
    pub id: String,
    /// Its cgroup path, relative to each hierarchy's root (runc creates it in all of them).
    pub path: PathBuf,
    /// Its cgroup directory under the cgroup2 mount.
    pub dir: PathBuf,
}

impl TestContainer {
    /// Starts `sleep 1000` in a container with `labels`, in cgroup `cgroup_path` (or the
    /// default `/<namespace>/<id>` when `None`).
    pub fn start(labels: &[(&str, &str)], cgroup_path: Option<&str>) -> TestContainer {
        TestContainer::start_with(labels, cgroup_path, "sleep 1000")
    }

    /// Like [`start`](Self::start), running `sh -c CMD`.
    pub fn start_with(
        labels: &[(&str, &str)],
        cgroup_path: Option<&str>,
        cmd: &str,
    ) -> TestContainer {
        let id = random_hex(32);
        let path = cgroup_path
            .map(str::to_owned)
            .unwrap_or_else(|| format!("/{NAMESPACE}/{id}"))
            .replace("{id}", &id);
        let rel = PathBuf::from(path.trim_start_matches('/'));
        let dir = cgroup_root().join(&rel);
        let label_args: Vec<String> = labels.iter().map(|(k, v)| format!("{k}={v}")).collect();
        let mut args = vec!["run", "-d", "--cgroup", &path];
        for label in &label_args {
            args.extend(["--label", label]);
        }
        args.extend([IMAGE, &id, "sh", "-c", cmd]);
        // Created before the run so that a half-made container is cleaned up too.
        let container = TestContainer {
            id: id.clone(),
            path: rel,
            dir,
        };
        ctr(&args);
        assert!(
            container.dir.is_dir(),
            "no cgroup directory {}",
            container.dir.display()
        );
        container
    }

    /// The container's cgroup id: the inode of its cgroup v2 directory.
    pub fn cgroup_id(&self) -> u64 {
        super::inode(&self.dir)
    }

    /// Kills and deletes the container and removes its (empty) cgroup directories.
    pub fn remove(&self) {
        let _ = try_ctr(&["task", "kill", "-s", "SIGKILL", &self.id]);
        let deadline = Instant::now() + Duration::from_secs(10);
        while !try_ctr(&["task", "delete", "-f", &self.id])
            .status
            .success()
            && try_ctr(&["task", "ls", "-q"])
                .stdout
                .split(|b| *b == b'\n')
                .any(|l| l == self.id.as_bytes())
            && Instant::now() < deadline
        {
            std::thread::sleep(Duration::from_millis(50));
        }
        let _ = try_ctr(&["container", "delete", &self.id]);
        // runc leaves the parent directories behind, in every hierarchy; shared parents that
        // are still in use stay.
        for mount in cgroup_mounts() {
            for dir in self.path.ancestors().filter(|p| !p.as_os_str().is_empty()) {
                let _ = fs::remove_dir(mount.join(dir));
            }
        }
    }
}

impl Drop for TestContainer {
    fn drop(&mut self) {
        self.remove();
    }
}

impl TestContainer {
    /// The container's task as `ctr task ls` lists it: its host pid and status ("RUNNING",
    /// "STOPPED"…), or `None` without a task.
    pub fn task(&self) -> Option<(i32, String)> {
        let out = ctr(&["task", "ls"]);
        String::from_utf8_lossy(&out.stdout).lines().find_map(|l| {
            let f: Vec<&str> = l.split_whitespace().collect();
            (f.first() == Some(&self.id.as_str())).then(|| {
                (
                    f.get(1).and_then(|p| p.parse().ok()).unwrap_or(0),
                    f.get(2).copied().unwrap_or_default().to_owned(),
                )
            })
        })
    }

    /// The host pid of the container's init (`ctr task ls`).
    pub fn pid(&self) -> i32 {
        self.task()
            .map(|(pid, _)| pid)
            .filter(|&pid| pid > 0)
            .unwrap_or_else(|| panic!("no task for container {}", self.id))
    }

    /// Waits until this container's task has stopped or is gone; false on timeout.
    pub fn wait_stopped(&self, timeout: Duration) -> bool {
        let deadline = Instant::now() + timeout;
        while Instant::now() < deadline {
            match self.task() {
                Some((_, status)) if status != "STOPPED" => {}
                _ => return true,
            }
            std::thread::sleep(Duration::from_millis(50));
        }
        false
    }

    /// Runs a command inside the running container.
    pub fn exec(&self, cmd: &[&str]) -> Output {
        let exec_id = format!("x{}", random_hex(4));
        let mut args = vec![
            "task",
            "exec",
            "--exec-id",
            exec_id.as_str(),
            self.id.as_str(),
        ];
        args.extend(cmd);
        try_ctr(&args)
    }
}
