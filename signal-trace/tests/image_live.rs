//! The container image against a real containerd: scripts/build-image.sh builds it, `ctr image
//! import` loads it, and the tracer runs as a container with what deploy/ gives it — the host's
//! PID namespace, CAP_BPF and CAP_PERFMON and no other capability, the runtime's default
//! seccomp profile, a read-only root file system and read-only host mounts — while a second
//! container is stopped with `ctr task kill`.
//!
//! Needs root; runs scripts/containerd-up.sh (containerd, runc and the busybox image) itself.
//! Fails, rather than skips, when anything is missing.

use std::fs;
use std::io::{Read, Seek, SeekFrom};
use std::path::{Path, PathBuf};
use std::process::{Command, Output};
use std::time::{Duration, Instant};

use common::ctr::{
    cgroup_mounts, cgroup_root, ctr, random_hex, try_ctr, IMAGE as BUSYBOX, NAMESPACE, SOCKET,
};
use serde_json::Value;

mod common;

/// The capabilities ctr gives a container by default (containerd's default OCI spec); the
/// tracer's container drops them all, as `drop: [ALL]` does in deploy/.
const CTR_DEFAULT_CAPS: &[&str] = &[
    "CAP_CHOWN",
    "CAP_DAC_OVERRIDE",
    "CAP_FSETID",
    "CAP_FOWNER",
    "CAP_MKNOD",
    "CAP_NET_RAW",
    "CAP_SETGID",
    "CAP_SETUID",
    "CAP_SETFCAP",
    "CAP_SETPCAP",
    "CAP_NET_BIND_SERVICE",
    "CAP_SYS_CHROOT",
    "CAP_KILL",
    "CAP_AUDIT_WRITE",
];
const CAP_BPF: u32 = 39;

fn workspace() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR"))
        .parent()
        .expect("workspace root")
        .to_path_buf()
}

fn lines(out: &Output) -> Vec<String> {
    String::from_utf8_lossy(&out.stdout)
        .lines()
        .map(str::to_owned)
        .collect()
}

fn run_script(script: &str, args: &[&str]) {
    let path = workspace().join("scripts").join(script);
    let out = Command::new("bash")
        .arg(&path)
        .args(args)
        .current_dir(workspace())
        .output()
        .unwrap_or_else(|e| panic!("cannot run {}: {e}", path.display()));
    assert!(
        out.status.success(),
        "{script} {} failed ({}):\n{}{}",
        args.join(" "),
        out.status,
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    );
}

/// A container made with `ctr run -d`; on drop its task is killed and deleted, the container
/// and its snapshot deleted, and the cgroup directories runc leaves behind removed.
struct Ctr {
    id: String,
}

impl Ctr {
    fn run(id: String, options: &[String], image: &str, command: &[&str]) -> Ctr {
        // Made first so that a half-created container is cleaned up too.
        let c = Ctr { id };
        let mut args: Vec<&str> = vec!["run", "-d"];
        args.extend(options.iter().map(String::as_str));
        args.extend([image, c.id.as_str()]);
        args.extend(command);
        ctr(&args);
        c
    }

    /// The task's host pid, and its status (RUNNING, STOPPED...).
    fn task(&self) -> Option<(i32, String)> {
        lines(&ctr(&["task", "ls"])).iter().find_map(|l| {
            let f: Vec<&str> = l.split_whitespace().collect();
            (f.first() == Some(&self.id.as_str()))
                .then(|| (f[1].parse().expect("task pid"), f[2].to_owned()))
        })
    }

    fn pid(&self) -> i32 {
        let (pid, status) = self.task().expect("the task exists");
        assert_eq!(status, "RUNNING", "container {}", self.id);
        common::ctr::wait_exec(pid);
        pid
    }

    fn kill(&self, signal: &str) {
        ctr(&["task", "kill", "-s", signal, &self.id]);
    }

    fn wait_stopped(&self, timeout: Duration) -> bool {
        let deadline = Instant::now() + timeout;
        while Instant::now() < deadline {
            if matches!(self.task(), Some((_, s)) if s == "STOPPED") {
                return true;
            }
            std::thread::sleep(Duration::from_millis(50));
        }
        false
    }

    fn cgroup_dirs(&self) -> Vec<PathBuf> {
        cgroup_mounts()
            .into_iter()
            .map(|m| m.join(NAMESPACE).join(&self.id))
            .filter(|d| d.exists())
            .collect()
    }

    fn remove(&self) {
        if self.task().is_some() {
            let _ = try_ctr(&["task", "kill", "-s", "SIGKILL", &self.id]);
            self.wait_stopped(Duration::from_secs(10));
            let _ = try_ctr(&["task", "delete", "-f", &self.id]);
        }
        let _ = try_ctr(&["container", "delete", &self.id]);
        // ctr's cgroup path is /<namespace>/<id>, made in every hierarchy.
        for mount in cgroup_mounts() {
            let _ = fs::remove_dir(mount.join(NAMESPACE).join(&self.id));
        }
    }

    /// Asserts that nothing of the container is left: task, container, snapshot, cgroups.
    fn assert_gone(&self) {
        let id = self.id.as_str();
        let listed = |args: &[&str]| {
            lines(&ctr(args))
                .iter()
                .any(|l| l.split_whitespace().next() == Some(id))
        };
        assert!(!listed(&["task", "ls"]), "task {id} left behind");
        assert!(!listed(&["container", "ls"]), "container {id} left behind");
        assert!(!listed(&["snapshot", "ls"]), "snapshot {id} left behind");
        assert!(
            self.cgroup_dirs().is_empty(),
            "cgroup directories left behind: {:?}",
            self.cgroup_dirs()
        );
    }
}

impl Drop for Ctr {
    fn drop(&mut self) {
        self.remove();
    }
}

/// The tracer container's log (stdout and stderr, through `ctr run --log-uri file://`), read
/// as it grows.
struct Log {
    path: PathBuf,
    offset: u64,
    partial: String,
    /// Lines that are not records: the tracer's stderr.
    stderr: Vec<String>,
    /// Records kept by the predicates given to `poll`.
    kept: Vec<Value>,
    records: usize,
}

impl Log {
    fn new(path: PathBuf) -> Log {
        Log {
            path,
            offset: 0,
            partial: String::new(),
            stderr: Vec::new(),
            kept: Vec::new(),
            records: 0,
        }
    }

    /// Reads what was appended; keeps the records for which `keep` is true.
    fn poll(&mut self, keep: &dyn Fn(&Value) -> bool) {
        let Ok(mut f) = fs::File::open(&self.path) else {
            return;
        };
        f.seek(SeekFrom::Start(self.offset)).expect("seek log");
        let mut buf = Vec::new();
        f.read_to_end(&mut buf).expect("read log");
        self.offset += buf.len() as u64;
        self.partial.push_str(&String::from_utf8_lossy(&buf));
        let Some(end) = self.partial.rfind('\n') else {
            return;
        };
        let complete: String = self.partial.drain(..=end).collect();
        for line in complete.lines() {
            if line.starts_with('{') {
                let v: Value = serde_json::from_str(line)
                    .unwrap_or_else(|e| panic!("a record that is not JSON ({e}): {line}"));
                self.records += 1;
                if keep(&v) {
                    self.kept.push(v);
                }
            } else if !line.is_empty() {
                self.stderr.push(line.to_owned());
            }
        }
    }

    fn describe(&self) -> String {
        format!(
            "stderr: {:?}; {} records, kept: {:?}",
            self.stderr, self.records, self.kept
        )
    }

    /// Waits until a kept record satisfies `found`.
    fn wait_for(
        &mut self,
        what: &str,
        keep: &dyn Fn(&Value) -> bool,
        found: &dyn Fn(&Value) -> bool,
    ) -> Value {
        let deadline = Instant::now() + Duration::from_secs(15);
        loop {
            self.poll(keep);
            if let Some(v) = self.kept.iter().find(|v| found(v)) {
                return v.clone();
            }
            assert!(
                Instant::now() < deadline,
                "no record of {what} within 15 s; {}",
                self.describe()
            );
            std::thread::sleep(Duration::from_millis(50));
        }
    }

    fn wait_stderr(&mut self, needle: &str, tracer: &Ctr) {
        let deadline = Instant::now() + Duration::from_secs(30);
        loop {
            self.poll(&|_| false);
            if self.stderr.iter().any(|l| l.contains(needle)) {
                return;
            }
            let status = tracer.task().map(|(_, s)| s);
            assert!(
                status.as_deref() == Some("RUNNING") && Instant::now() < deadline,
                "the tracer container did not print {needle:?} (task {status:?}); {}",
                self.describe()
            );
            std::thread::sleep(Duration::from_millis(50));
        }
    }
}

/// A field of /proc/PID/status.
fn proc_status(pid: i32, field: &str) -> String {
    let status = fs::read_to_string(format!("/proc/{pid}/status")).expect("read status");
    status
        .lines()
        .find_map(|l| l.strip_prefix(field)?.strip_prefix(':'))
        .unwrap_or_else(|| panic!("no {field} in /proc/{pid}/status"))
        .trim()
        .to_owned()
}

fn is_signal_to(v: &Value, pid: i32, signal: &str) -> bool {
    v["event"] == "generate" && v["signal"] == signal && v["target"]["pid"] == pid
}

#[test]
fn tracer_image_traces_another_container_being_stopped() {
    common::require_root();
    run_script("containerd-up.sh", &[]);

    let tag = random_hex(4);
    let image = format!("localhost/signal-trace/signal-trace:image-live-{tag}");
    let dir = std::env::temp_dir().join(format!("image-live-{tag}"));
    fs::create_dir_all(&dir).expect("create temp dir");
    let archive = dir.join("image.tar");
    run_script(
        "build-image.sh",
        &[archive.to_str().expect("utf-8 path"), &image],
    );
    let size = fs::metadata(&archive).expect("the archive").len();
    eprintln!("image archive: {size} bytes");
    assert!(
        size < 32 << 20,
        "a one-binary image should be small: {size} bytes"
    );
    ctr(&["image", "import", archive.to_str().expect("utf-8 path")]);
    let result = std::panic::catch_unwind(|| run_containers(&image, &dir, &tag));
    let _ = try_ctr(&["image", "rm", &image]);
    let _ = fs::remove_dir_all(&dir);
    if let Err(panic) = result {
        std::panic::resume_unwind(panic);
    }
    let left = lines(&ctr(&["image", "ls", "-q"]));
    assert!(!left.contains(&image), "image {image} left behind");
}

fn run_containers(image: &str, dir: &Path, tag: &str) {
    assert!(
        lines(&ctr(&["image", "ls", "-q"]))
            .iter()
            .any(|l| l == image),
        "ctr image import did not name the image {image}"
    );

    let log_path = dir.join("tracer.log");
    // The host's PID namespace, as hostPID gives; this process lives in it.
    let mut options = vec![format!("--with-ns=pid:/proc/{}/ns/pid", std::process::id())];
    for cap in CTR_DEFAULT_CAPS {
        options.push(format!("--cap-drop={cap}"));
    }
    options.extend(["--cap-add=CAP_BPF".into(), "--cap-add=CAP_PERFMON".into()]);
    // containerd's default seccomp profile, which RuntimeDefault is under containerd.
    options.push("--seccomp".into());
    options.push("--read-only".into());
    for (path, flags) in [
        ("/sys/kernel/btf", "rbind:ro"),
        ("/sys/kernel/tracing", "rbind:ro"),
        ("/sys/fs/cgroup", "rbind:rro"),
    ] {
        options.push(format!(
            "--mount=type=bind,src={path},dst={path},options={flags}"
        ));
    }
    // The tests' containerd, where the tracer looks by default.
    options.push(format!(
        "--mount=type=bind,src={SOCKET},dst={},options=bind:ro",
        signal_trace::workload::containerd::DEFAULT_SOCKET
    ));
    options.push(format!("--log-uri=file://{}", log_path.display()));

    let tracer = Ctr::run(format!("signal-trace-{tag}"), &options, image, &[]);
    let mut log = Log::new(log_path);
    log.wait_stderr("signal-trace: tracing", &tracer);
    // Everything attached, nothing degraded: no start-up warning (about BTF or tracefs). The
    // line saying refused sends are off (this kernel refuses fexit programs) is no warning.
    let startup: Vec<&String> = log
        .stderr
        .iter()
        .take_while(|l| !l.contains("signal-trace: tracing"))
        .filter(|l| !l.starts_with("signal-trace: refused sends"))
        .collect();
    assert!(startup.is_empty(), "start-up warnings: {startup:?}");
    assert!(
        log.stderr
            .iter()
            .any(|l| l.contains(" attachments, full mode)")),
        "{}",
        log.describe()
    );

    // Attached, the tracer holds CAP_BPF alone, under seccomp, without new privileges.
    let tracer_pid = tracer.pid();
    let effective = u64::from_str_radix(&proc_status(tracer_pid, "CapEff"), 16).expect("CapEff");
    assert_eq!(effective, 1 << CAP_BPF, "capabilities after attaching");
    assert_eq!(proc_status(tracer_pid, "NoNewPrivs"), "1");
    assert_eq!(
        proc_status(tracer_pid, "Seccomp"),
        "2",
        "seccomp filter mode"
    );

    // A second container whose PID 1 has no SIGTERM handler, labelled as the kubelet labels
    // a pod's container.
    let (pod, namespace, name) = (format!("web-{tag}"), format!("shop-{tag}"), "app");
    let labels = [
        format!("--label=io.kubernetes.pod.name={pod}"),
        format!("--label=io.kubernetes.pod.namespace={namespace}"),
        format!("--label=io.kubernetes.container.name={name}"),
    ];
    // A 64-digit id, as containerd's clients make them: the tracer recognises the cgroup path.
    let target = Ctr::run(random_hex(32), &labels, BUSYBOX, &["sleep", "1000"]);
    let pid = target.pid();
    let cgroup_id = common::inode(&cgroup_root().join(NAMESPACE).join(&target.id));
    let keep = move |v: &Value| v["target"]["pid"] == pid || v["pid"] == pid;

    target.kill("SIGTERM");
    let term = log.wait_for("the SIGTERM to the container", &keep, &|v| {
        is_signal_to(v, pid, "SIGTERM")
    });
    assert_eq!(term["target"]["ns_pid"], 1, "{term}");
    assert_eq!(term["target"]["comm"], "sleep", "{term}");
    assert_eq!(term["target"]["cgroup_id"], cgroup_id, "{term}");
    assert_eq!(term["code"], "SI_USER", "{term}");
    // Named through the host's cgroup tree and containerd's socket, both mounted read-only.
    assert_eq!(
        term["target"]["container"],
        serde_json::json!({
            "id": target.id,
            "runtime": "containerd",
            "name": name,
            "pod": pod,
            "namespace": namespace,
            "image": BUSYBOX,
            "compose": null,
            "grace_period_s": null,
        }),
        "{term}"
    );
    // The kernel drops it: a PID-namespace init only gets signals it handles.
    assert_eq!(term["result"], "ignored", "{term}");
    assert_eq!(term["reason"], "pid_namespace_init", "{term}");
    assert!(
        !target.wait_stopped(Duration::from_millis(500)),
        "the container stopped on an ignored SIGTERM"
    );

    target.kill("SIGKILL");
    let kill = log.wait_for("the SIGKILL to the container", &keep, &|v| {
        is_signal_to(v, pid, "SIGKILL")
    });
    assert_eq!(kill["result"], "delivered", "{kill}");
    let exit = log.wait_for("the container's exit", &keep, &|v| {
        v["event"] == "exit" && v["pid"] == pid
    });
    assert_eq!(exit["exit_code"], 137, "{exit}");
    assert_eq!(exit["killed_by"]["signal"], "SIGKILL", "{exit}");
    assert!(target.wait_stopped(Duration::from_secs(10)));
    target.remove();
    target.assert_gone();

    // SIGTERM stops the tracer cleanly: it drains, prints its totals and exits 0.
    let started = Instant::now();
    tracer.kill("SIGTERM");
    assert!(
        tracer.wait_stopped(Duration::from_secs(20)),
        "the tracer did not stop within 20 s of SIGTERM"
    );
    eprintln!("tracer stopped {:?} after SIGTERM", started.elapsed());
    let deleted = try_ctr(&["task", "delete", &tracer.id]);
    assert!(
        deleted.status.success(),
        "the tracer exited with {:?}: {}",
        deleted.status.code(),
        log.describe()
    );
    log.poll(&|_| false);
    assert!(
        log.stderr
            .last()
            .is_some_and(|l| l.ends_with(" lost") && l.contains(" events, ")),
        "no totals line at exit; {}",
        log.describe()
    );
    tracer.remove();
    tracer.assert_gone();
}
