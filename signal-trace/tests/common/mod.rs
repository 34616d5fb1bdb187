//! Shared machinery for the live tests: they run the real tracer binary (root, real BPF) against
//! real processes. A live test that cannot run fails with the reason; it never skips.
#![allow(dead_code)]

pub mod bpf;
pub mod cri;
pub mod ctr;
pub mod docker;
pub mod proc;
pub mod systemd;

use std::io::{BufRead, BufReader, Read, Write};
use std::process::{Child, Command, ExitStatus, Stdio};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use serde_json::Value;

pub use proc::{Proc, Setup};

pub const BIN: &str = env!("CARGO_BIN_EXE_signal-trace");

pub fn require_root() {
    // SAFETY: geteuid has no preconditions.
    let euid = unsafe { libc::geteuid() };
    assert_eq!(
        euid, 0,
        "live tests need root (they load BPF programs); run them as root"
    );
}

/// A running tracer whose NDJSON output is collected in the background.
pub struct Trace {
    child: Child,
    records: Arc<Mutex<Vec<Value>>>,
    stderr: Arc<Mutex<String>>,
    readers: Vec<std::thread::JoinHandle<()>>,
}

impl Trace {
    /// Starts `signal-trace --format json ARGS` and waits until its programs are attached.
    pub fn start(args: &[&str]) -> Trace {
        Trace::start_env(args, &[])
    }

    /// [`Trace::start`] with environment variables set (a value of `None` removes one).
    pub fn start_env(args: &[&str], env: &[(&str, Option<&str>)]) -> Trace {
        require_root();
        // A subcommand (explain) comes before the options.
        let (sub, rest) = match args.first() {
            Some(a) if !a.starts_with('-') => (&args[..1], &args[1..]),
            _ => (&args[..0], args),
        };
        let mut cmd = Command::new(BIN);
        for (k, v) in env {
            match v {
                Some(v) => cmd.env(k, v),
                None => cmd.env_remove(k),
            };
        }
        let mut child = cmd
            .args(sub)
            .args(["--format", "json"])
            .args(rest)
            .stdout(Stdio::piped())
            .stderr(Stdio::piped())
            .spawn()
            .expect("spawn signal-trace");
        let records = Arc::new(Mutex::new(Vec::new()));
        let stderr = Arc::new(Mutex::new(String::new()));
        let out = child.stdout.take().expect("stdout");
        let err = child.stderr.take().expect("stderr");
        let r = records.clone();
        let t1 = std::thread::spawn(move || {
            for line in BufReader::new(out).lines() {
                let Ok(line) = line else { break };
                let v: Value = serde_json::from_str(&line).unwrap_or_else(|e| {
                    panic!("tracer printed a line that is not JSON ({e}): {line}")
                });
                r.lock().unwrap().push(v);
            }
        });
        let s = stderr.clone();
        let t2 = std::thread::spawn(move || {
            let mut reader = BufReader::new(err);
            let mut buf = [0u8; 4096];
            loop {
                match reader.read(&mut buf) {
                    Ok(0) | Err(_) => break,
                    Ok(n) => s
                        .lock()
                        .unwrap()
                        .push_str(&String::from_utf8_lossy(&buf[..n])),
                }
            }
        });
        let trace = Trace {
            child,
            records,
            stderr,
            readers: vec![t1, t2],
        };
        // The whole line: a read may end in the middle of it.
        trace.wait_stderr("Ctrl-C to stop", Duration::from_secs(30));
        trace
    }

    pub fn pid(&self) -> u32 {
        self.child.id()
    }

    pub fn stderr(&self) -> String {
        self.stderr.lock().unwrap().clone()
    }

    fn wait_stderr(&self, needle: &str, timeout: Duration) {
        let start = Instant::now();
        loop {
            if self.stderr().contains(needle) {
                return;
            }
            if start.elapsed() > timeout {
                panic!(
                    "tracer did not print {needle:?} within {timeout:?}; stderr: {}",
                    self.stderr()
                );
            }
            std::thread::sleep(Duration::from_millis(20));
        }
    }

    pub fn records(&self) -> Vec<Value> {
        self.records.lock().unwrap().clone()
    }

    /// Waits for a record matching `pred` and returns it.
    pub fn wait_for(&self, what: &str, pred: impl Fn(&Value) -> bool) -> Value {
        let start = Instant::now();
        loop {
            if let Some(v) = self.records.lock().unwrap().iter().find(|v| pred(v)) {
                return v.clone();
            }
            if start.elapsed() > Duration::from_secs(10) {
                panic!(
                    "no record for {what} within 10 s; got:\n{}\nstderr: {}",
                    self.records()
                        .iter()
                        .map(|v| v.to_string())
                        .collect::<Vec<_>>()
                        .join("\n"),
                    self.stderr()
                );
            }
            std::thread::sleep(Duration::from_millis(20));
        }
    }

    /// Stops the tracer with `sig` and returns its exit status, how long it took, every record
    /// and its stderr.
    pub fn stop_with(mut self, sig: i32) -> (ExitStatus, Duration, Vec<Value>, String) {
        let start = Instant::now();
        // SAFETY: kill(2) on our own child.
        unsafe { libc::kill(self.child.id() as i32, sig) };
        let status = loop {
            if let Some(s) = self.child.try_wait().expect("wait") {
                break s;
            }
            if start.elapsed() > Duration::from_secs(10) {
                let _ = self.child.kill();
                panic!("tracer did not exit within 10 s of signal {sig}");
            }
            std::thread::sleep(Duration::from_millis(5));
        };
        let took = start.elapsed();
        for r in self.readers.drain(..) {
            let _ = r.join();
        }
        let records = self.records();
        let stderr = self.stderr();
        (status, took, records, stderr)
    }

    pub fn stop(self) -> (ExitStatus, Vec<Value>, String) {
        let (status, _, records, stderr) = self.stop_with(libc::SIGINT);
        assert!(
            status.success(),
            "tracer failed: {status:?}; stderr: {stderr}"
        );
        (status, records, stderr)
    }
}

impl Drop for Trace {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

/// Forks a child that installs `setup` and waits for signals (see [`proc::spawn`]).
pub fn spawn(setup: Setup) -> Proc {
    proc::spawn(setup).expect("fork a child that gets ready")
}

/// Forks a child that drops to uid/gid 65534, sends `sig` to `target` and returns the errno
/// kill(2) gave it (0 on success); see [`proc::unprivileged_kill`].
pub fn unprivileged_kill(target: i32, sig: i32) -> i32 {
    proc::unprivileged_kill(target, sig).expect("an unprivileged child sends a signal")
}

pub fn kill(pid: i32, sig: i32) {
    // SAFETY: kill(2).
    assert_eq!(
        unsafe { libc::kill(pid, sig) },
        0,
        "kill({pid}, {sig}) failed"
    );
}

/// A field of a record as i64 (panics with the record when it is missing).
pub fn int(v: &Value, path: &[&str]) -> i64 {
    let mut cur = v;
    for p in path {
        cur = &cur[*p];
    }
    cur.as_i64()
        .unwrap_or_else(|| panic!("{path:?} is not an integer in {v}"))
}

/// `signal-trace explain --from -` over recorded records: the findings.
pub fn explain(records: &[Value]) -> Vec<Value> {
    let mut child = Command::new(BIN)
        .args(["explain", "--format", "json", "--from", "-"])
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .expect("spawn signal-trace explain");
    {
        let mut stdin = child.stdin.take().expect("stdin");
        for r in records {
            writeln!(stdin, "{r}").expect("write a record");
        }
    }
    let out = child.wait_with_output().expect("explain output");
    assert!(
        out.status.success(),
        "explain failed: {}",
        String::from_utf8_lossy(&out.stderr)
    );
    String::from_utf8_lossy(&out.stdout)
        .lines()
        .map(|l| serde_json::from_str(l).expect("explain prints JSON"))
        .filter(|v: &Value| v["event"] == "finding")
        .collect()
}

pub fn is(v: &Value, event: &str) -> bool {
    v["event"] == event
}

/// The init of a new PID namespace: `unshare --pid --fork sleep 60`, as a container's PID 1.
pub struct NsInit {
    pub unshare: std::process::Child,
    pub init: i32,
}

impl NsInit {
    pub fn start() -> NsInit {
        require_root();
        let mut unshare = Command::new("unshare")
            .args(["--pid", "--fork", "sleep", "60"])
            .stdin(Stdio::null())
            .spawn()
            .expect("run unshare (util-linux)");
        let children = format!("/proc/{0}/task/{0}/children", unshare.id());
        for _ in 0..500 {
            if let Ok(text) = std::fs::read_to_string(&children) {
                if let Some(pid) = text.split_whitespace().next().and_then(|p| p.parse().ok()) {
                    return NsInit { unshare, init: pid };
                }
            }
            std::thread::sleep(Duration::from_millis(10));
        }
        let _ = unshare.kill();
        let _ = unshare.wait();
        panic!("unshare --pid --fork did not start its init");
    }
}

impl Drop for NsInit {
    fn drop(&mut self) {
        // SAFETY: kill(2).
        unsafe { libc::kill(self.init, libc::SIGKILL) };
        let _ = self.unshare.kill();
        let _ = self.unshare.wait();
    }
}

/// The cgroup v2 hierarchy: the system's mount, or one mounted for the test (hybrid hosts
/// without a cgroup2 mount), unmounted again on drop.
pub struct Cgroup2 {
    pub root: std::path::PathBuf,
    mounted: bool,
}

impl Cgroup2 {
    pub fn new() -> Cgroup2 {
        let mountinfo = std::fs::read_to_string("/proc/self/mountinfo").expect("mountinfo");
        if let Some(root) = signal_trace::workload::cgroup::cgroup2_mount(&mountinfo) {
            return Cgroup2 {
                root,
                mounted: false,
            };
        }
        let root = std::env::temp_dir().join(format!("signal-trace-cg2-{}", std::process::id()));
        std::fs::create_dir_all(&root).expect("mount point");
        let target = std::ffi::CString::new(root.to_str().unwrap()).unwrap();
        // SAFETY: mount(2) with valid NUL-terminated strings and no data.
        let rc = unsafe {
            libc::mount(
                c"cgroup2".as_ptr(),
                target.as_ptr(),
                c"cgroup2".as_ptr(),
                0,
                std::ptr::null(),
            )
        };
        assert_eq!(
            rc,
            0,
            "cannot mount cgroup2: {}",
            std::io::Error::last_os_error()
        );
        Cgroup2 {
            root,
            mounted: true,
        }
    }

    /// This process's own cgroup v2 directory.
    pub fn own(&self) -> std::path::PathBuf {
        let own = std::fs::read_to_string("/proc/self/cgroup").expect("/proc/self/cgroup");
        let path = own
            .lines()
            .find_map(|l| l.strip_prefix("0::"))
            .expect("a cgroup v2 line");
        self.root.join(path.trim_start_matches('/'))
    }

    pub fn mkdir(&self, name: &str) -> std::path::PathBuf {
        let dir = self.root.join(name);
        std::fs::create_dir(&dir).unwrap_or_else(|e| panic!("mkdir {}: {e}", dir.display()));
        dir
    }

    pub fn rmdir(&self, dir: &std::path::Path) {
        std::fs::remove_dir(dir).unwrap_or_else(|e| panic!("rmdir {}: {e}", dir.display()));
    }
}

impl Drop for Cgroup2 {
    fn drop(&mut self) {
        if self.mounted {
            let target = std::ffi::CString::new(self.root.to_str().unwrap()).unwrap();
            // SAFETY: umount2(2) with a valid path.
            unsafe { libc::umount2(target.as_ptr(), libc::MNT_DETACH) };
            let _ = std::fs::remove_dir(&self.root);
        }
    }
}

/// A Unix socket at `path` that accepts every connection and never says a word, as a hung
/// runtime does; returns how many connections it accepted so far.
pub fn hung_runtime(path: &std::path::Path) -> Arc<Mutex<usize>> {
    let _ = std::fs::remove_file(path);
    let listener = std::os::unix::net::UnixListener::bind(path).expect("bind the hung socket");
    let accepted = Arc::new(Mutex::new(0));
    let count = accepted.clone();
    std::thread::spawn(move || {
        let mut held = Vec::new();
        for conn in listener.incoming() {
            match conn {
                Ok(c) => {
                    *count.lock().unwrap() += 1;
                    held.push(c);
                }
                Err(_) => break,
            }
        }
    });
    accepted
}

/// The text of the tracer's metrics endpoint at `addr` (host:port).
pub fn metrics(addr: &str) -> String {
    use std::io::Write;
    let mut c = std::net::TcpStream::connect(addr).expect("connect to the metrics endpoint");
    c.set_read_timeout(Some(Duration::from_secs(5))).unwrap();
    c.write_all(b"GET /metrics HTTP/1.1\r\nHost: x\r\n\r\n")
        .unwrap();
    let mut s = String::new();
    c.read_to_string(&mut s).expect("read the metrics");
    s
}

/// The inode number of a path: for a cgroup v2 directory, its cgroup id.
pub fn inode(path: &std::path::Path) -> u64 {
    use std::os::unix::fs::MetadataExt;
    std::fs::metadata(path)
        .unwrap_or_else(|e| panic!("stat {}: {e}", path.display()))
        .ino()
}
