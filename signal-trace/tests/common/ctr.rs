//! containerd helpers for the live tests: `ctr` containers from the busybox test image, removed
//! with their cgroup directories, on the tests' own containerd (scripts/containerd-up.sh), never
//! the system's. Needs root; fails otherwise.

use std::fs;
use std::io::Read;
use std::path::{Path, PathBuf};
use std::process::{Command, Output};
use std::sync::OnceLock;
use std::time::{Duration, Instant};

use signal_trace::workload::cgroup;
use signal_trace::workload::containerd::{Containerd, DEFAULT_TIMEOUT};

pub const IMAGE: &str = "localhost/signal-trace/busybox:latest";
/// The CRI plugin's pod sandbox image (busybox plus a static /pause).
pub const PAUSE_IMAGE: &str = "localhost/signal-trace/pause:latest";
pub const NAMESPACE: &str = "default";
/// The containerd namespace of the CRI plugin's pods and containers.
pub const CRI_NAMESPACE: &str = "k8s.io";
/// The tests' containerd: point the tracer at it with `--containerd-socket`.
pub const SOCKET: &str = "/run/signal-trace-test/containerd/containerd.sock";
/// Its pid file (written by scripts/containerd-up.sh).
pub const PIDFILE: &str = "/run/signal-trace-test/containerd/containerd.pid";

/// The tracer's option that names the tests' containerd.
pub fn socket_args() -> [&'static str; 2] {
    ["--containerd-socket", SOCKET]
}

/// Path of a script under scripts/.
pub fn script(name: &str) -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR"))
        .join("../scripts")
        .join(name)
}

/// Runs `bash scripts/NAME ARGS`; panics with its output when it fails.
pub fn run_script(name: &str, args: &[&str]) {
    let out = Command::new("bash")
        .arg(script(name))
        .args(args)
        .output()
        .unwrap_or_else(|e| panic!("run {name}: {e}"));
    assert!(
        out.status.success(),
        "{name} {} failed ({}): {}{}",
        args.join(" "),
        out.status,
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    );
}

/// Makes sure the tests' containerd answers with its images (scripts/containerd-up.sh, which
/// starts it when it does not answer); once per test process, under 0.1 s when it is up.
pub fn up() {
    static UP: OnceLock<()> = OnceLock::new();
    UP.get_or_init(|| {
        super::require_root();
        run_script("containerd-up.sh", &[]);
    });
}

/// `PROGRAM ARGS` in a private mount namespace whose /run/containerd/containerd.sock (the
/// default socket) is the tests' containerd, for commands that have no socket option.
pub fn with_test_socket_as_default(program: &str, args: &[&str]) -> Command {
    let mut cmd = Command::new("unshare");
    cmd.args(["--mount", "--propagation", "private", "--", "sh", "-c"])
        .arg(
            "mkdir -p /run/containerd && mount -t tmpfs -o size=64k tmpfs /run/containerd \
             && ln -s \"$0\" /run/containerd/containerd.sock && exec \"$@\"",
        )
        .arg(SOCKET)
        .arg(program)
        .args(args);
    cmd
}

/// The pid of the tests' containerd, from its pid file.
pub fn containerd_pid() -> i32 {
    fs::read_to_string(PIDFILE)
        .ok()
        .and_then(|s| s.trim().parse().ok())
        .unwrap_or_else(|| panic!("no pid in {PIDFILE}; start it with scripts/containerd-up.sh"))
}

/// Runs `ctr` in the test namespace of the tests' containerd; panics with its output when it
/// fails.
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
    try_ctr_in(NAMESPACE, args)
}

/// `ctr` in containerd namespace `ns` of the tests' containerd.
pub fn try_ctr_in(ns: &str, args: &[&str]) -> Output {
    Command::new("ctr")
        .args(["--address", SOCKET, "--connect-timeout", "1s", "-n", ns])
        .args(args)
        .output()
        .expect("run ctr (apt-get install containerd)")
}

/// `ctr container info ID` in namespace `ns`: the container's record as JSON (its "Labels",
/// and its OCI "Spec" with the "annotations" the runtime set).
pub fn container_info(ns: &str, id: &str) -> serde_json::Value {
    let out = try_ctr_in(ns, &["container", "info", id]);
    assert!(
        out.status.success(),
        "ctr -n {ns} container info {id} failed: {}",
        String::from_utf8_lossy(&out.stderr)
    );
    serde_json::from_slice(&out.stdout).expect("ctr container info prints JSON")
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

/// The CRI plugin's own record of a container or sandbox, kept in its containerd record
/// (`container_info`) as the extension io.cri-containerd.container.metadata (or
/// ...sandbox.metadata): JSON with "Metadata" → "Config", the CRI config it was created with
/// (its "annotations" and "labels" among them).
pub fn cri_metadata(info: &serde_json::Value) -> serde_json::Value {
    use std::io::Write;
    let ext = info["Extensions"]
        .as_object()
        .and_then(|m| {
            m.iter()
                .find(|(k, _)| k.starts_with("io.cri-containerd.") && k.ends_with(".metadata"))
        })
        .map(|(_, v)| v["value"].as_str().unwrap_or_default().to_owned())
        .unwrap_or_else(|| panic!("no CRI metadata extension in {info}"));
    let mut child = Command::new("base64")
        .arg("-d")
        .stdin(std::process::Stdio::piped())
        .stdout(std::process::Stdio::piped())
        .spawn()
        .expect("run base64 (coreutils)");
    child
        .stdin
        .take()
        .expect("stdin")
        .write_all(ext.as_bytes())
        .expect("write to base64");
    let out = child.wait_with_output().expect("base64 -d");
    assert!(
        out.status.success(),
        "the CRI metadata is not base64: {ext}"
    );
    serde_json::from_slice(&out.stdout).expect("the CRI metadata is JSON")
}

/// Fails the test unless it runs as root against the tests' containerd, which it starts when
/// it does not answer (see [`up`]).
pub fn require_containerd() {
    up();
    let client = Containerd::new(SOCKET, DEFAULT_TIMEOUT).expect("start client");
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

/// Waits until a container's init has become the container's command: a started task's pid
/// may still be runc's init for a moment (comm "runc:[2:INIT]"), and a signal sent then is
/// runc's business, not the command's.
pub fn wait_exec(pid: i32) {
    let deadline = Instant::now() + Duration::from_secs(10);
    loop {
        let comm = fs::read_to_string(format!("/proc/{pid}/comm")).unwrap_or_default();
        if !comm.starts_with("runc:") {
            return;
        }
        assert!(
            Instant::now() < deadline,
            "pid {pid} is still {comm:?} after 10 s"
        );
        std::thread::sleep(Duration::from_millis(10));
    }
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

    /// The host pid of the container's init (`ctr task ls`), once it runs the container's
    /// command (see [`wait_exec`]).
    pub fn pid(&self) -> i32 {
        let pid = self
            .task()
            .map(|(pid, _)| pid)
            .filter(|&pid| pid > 0)
            .unwrap_or_else(|| panic!("no task for container {}", self.id));
        wait_exec(pid);
        pid
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
