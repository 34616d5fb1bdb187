//! Live tests: inits as a container runs them, each PID 1 of a new PID namespace
//! (`unshare --pid --fork --mount-proc`). An init that takes SIGTERM through sigtimedwait
//! (tini), a handler (dumb-init) or a signalfd gets it, and inspect does not flag it; a plain
//! `sleep` as PID 1 does not, and is flagged. A SIGTERM tini forwards in an orderly stop is
//! `info` for explain.

mod common;

use std::io::{BufRead, BufReader};
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

use common::*;
use serde_json::Value;

const TINI: &str = "/usr/bin/tini";
const DUMB_INIT: &str = "/usr/bin/dumb-init";

/// An init that blocks SIGTERM and SIGINT, reads them from a signalfd and exits 0 once one
/// comes; it prints `ready` when set up.
const SIGNALFD_INIT: &str = r#"
import ctypes, os, signal, struct
libc = ctypes.CDLL(None, use_errno=True)
signal.pthread_sigmask(signal.SIG_BLOCK, {signal.SIGTERM, signal.SIGINT})
mask = ctypes.create_string_buffer(128)
ctypes.memmove(mask, struct.pack("Q", (1 << (signal.SIGTERM - 1)) | (1 << (signal.SIGINT - 1))), 8)
fd = libc.signalfd(-1, mask, 0)
if fd < 0:
    raise OSError(ctypes.get_errno(), "signalfd")
print("ready", flush=True)
info = os.read(fd, 128)
os._exit(0 if struct.unpack_from("I", info)[0] == signal.SIGTERM else 1)
"#;

/// `unshare --pid --fork --mount-proc CMD…`: CMD is PID 1 of a new namespace.
struct Init {
    unshare: Child,
    pid: i32,
}

impl Init {
    fn start(cmd: &[&str]) -> Init {
        require_root();
        for tool in [TINI, DUMB_INIT] {
            assert!(
                std::path::Path::new(tool).exists(),
                "{tool} is missing: apt-get install tini dumb-init"
            );
        }
        let mut unshare = Command::new("unshare")
            .args(["--pid", "--fork", "--mount-proc"])
            .args(cmd)
            .stdin(Stdio::null())
            .stdout(Stdio::piped())
            .spawn()
            .expect("run unshare (util-linux)");
        let pid = wait_child(unshare.id() as i32).unwrap_or_else(|| {
            let _ = unshare.kill();
            panic!("unshare did not start {cmd:?}")
        });
        Init { unshare, pid }
    }

    /// Waits for the init to print `ready`.
    fn ready(&mut self) {
        let mut line = String::new();
        BufReader::new(self.unshare.stdout.as_mut().unwrap())
            .read_line(&mut line)
            .expect("the init's output");
        assert_eq!(line.trim(), "ready", "the init did not get ready");
    }

    /// Waits until unshare (and so the init) exits; its status.
    fn wait_exit(&mut self, timeout: Duration) -> Option<std::process::ExitStatus> {
        let start = Instant::now();
        while start.elapsed() < timeout {
            if let Some(s) = self.unshare.try_wait().expect("wait") {
                return Some(s);
            }
            std::thread::sleep(Duration::from_millis(20));
        }
        None
    }
}

impl Drop for Init {
    fn drop(&mut self) {
        // SAFETY: kill(2); the namespace dies with its init.
        unsafe { libc::kill(self.pid, libc::SIGKILL) };
        let _ = self.unshare.kill();
        let _ = self.unshare.wait();
    }
}

/// The first child of `pid`, once it has one.
fn wait_child(pid: i32) -> Option<i32> {
    let children = format!("/proc/{pid}/task/{pid}/children");
    for _ in 0..500 {
        if let Ok(text) = std::fs::read_to_string(&children) {
            if let Some(c) = text.split_whitespace().next().and_then(|p| p.parse().ok()) {
                return Some(c);
            }
        }
        std::thread::sleep(Duration::from_millis(10));
    }
    None
}

/// Waits until the main thread of `pid` sits in system call `nr`.
fn wait_in_syscall(pid: i32, nr: u32) {
    let start = Instant::now();
    loop {
        let text = std::fs::read_to_string(format!("/proc/{pid}/syscall")).unwrap_or_default();
        if text.split_whitespace().next() == Some(&nr.to_string()) {
            return;
        }
        assert!(
            start.elapsed() < Duration::from_secs(10),
            "pid {pid} never waited in syscall {nr}: {text}"
        );
        std::thread::sleep(Duration::from_millis(20));
    }
}

fn inspect(pid: i32) -> (Value, String) {
    let json = Command::new(BIN)
        .args(["inspect", &pid.to_string(), "--format", "json"])
        .output()
        .expect("run inspect");
    assert!(json.status.success(), "{json:?}");
    let text = Command::new(BIN)
        .args(["inspect", &pid.to_string()])
        .output()
        .expect("run inspect");
    assert!(text.status.success(), "{text:?}");
    (
        serde_json::from_slice(&json.stdout).expect("a JSON report"),
        String::from_utf8_lossy(&text.stdout).into_owned(),
    )
}

fn flags(report: &Value) -> Vec<String> {
    report["flags"]
        .as_array()
        .expect("flags")
        .iter()
        .map(|f| f["flag"].as_str().unwrap().to_owned())
        .collect()
}

#[test]
fn tini_as_pid_1_waits_for_sigterm_and_is_not_flagged() {
    let mut init = Init::start(&[TINI, "--", "sleep", "1000"]);
    let child = wait_child(init.pid).expect("tini starts its child");
    wait_in_syscall(init.pid, signal_trace::inspect::SYS_RT_SIGTIMEDWAIT);
    let (r, text) = inspect(init.pid);
    assert_eq!(r["init"], "namespace", "{r}");
    assert_eq!(r["term"], "default", "SigCgt is 0: {r}");
    assert_eq!(r["term_wait"], "sigtimedwait", "{r}");
    assert!(flags(&r).is_empty(), "{text}");
    assert!(
        text.contains("  SIGTERM:  default; waits for SIGTERM in sigtimedwait\n"),
        "{text}"
    );
    assert!(text.contains("  flags:    none\n"), "{text}");
    // And it does get SIGTERM: it forwards it, its child dies, and it exits.
    kill(init.pid, libc::SIGTERM);
    let status = init.wait_exit(Duration::from_secs(5));
    assert!(status.is_some(), "tini did not stop on SIGTERM");
    assert!(!std::path::Path::new(&format!("/proc/{child}")).exists());
}

#[test]
fn dumb_init_as_pid_1_catches_sigterm_and_is_not_flagged() {
    let mut init = Init::start(&[DUMB_INIT, "sleep", "1000"]);
    wait_child(init.pid).expect("dumb-init starts its child");
    let (r, text) = inspect(init.pid);
    assert_eq!(r["init"], "namespace", "{r}");
    assert_eq!(r["term"], "handler", "{r}");
    assert!(flags(&r).is_empty(), "{text}");
    kill(init.pid, libc::SIGTERM);
    assert!(
        init.wait_exit(Duration::from_secs(5)).is_some(),
        "dumb-init did not stop on SIGTERM"
    );
}

#[test]
fn a_signalfd_init_reads_sigterm_and_is_not_flagged() {
    let mut init = Init::start(&["/usr/bin/python3", "-c", SIGNALFD_INIT]);
    init.ready();
    let (r, text) = inspect(init.pid);
    assert_eq!(r["init"], "namespace", "{r}");
    assert_eq!(r["term"], "default", "{r}");
    assert_eq!(r["term_wait"], "signalfd", "{r}");
    assert!(flags(&r).is_empty(), "{text}");
    assert!(
        text.contains(
            "SIGTERM:  default, blocked in every thread; reads SIGTERM from a signalfd\n"
        ),
        "{text}"
    );
    kill(init.pid, libc::SIGTERM);
    let status = init
        .wait_exit(Duration::from_secs(5))
        .expect("the signalfd init got SIGTERM and exited");
    assert!(status.success(), "it read SIGTERM: {status:?}");
}

#[test]
fn sleep_as_pid_1_is_still_flagged() {
    let mut init = Init::start(&["sleep", "1000"]);
    let (r, text) = inspect(init.pid);
    assert_eq!(r["init"], "namespace", "{r}");
    assert!(r["term_wait"].is_null(), "{r}");
    assert!(
        flags(&r).contains(&"init_without_term_handler".to_owned()),
        "{text}"
    );
    // The kernel drops SIGTERM for it, as the flag says.
    kill(init.pid, libc::SIGTERM);
    assert!(init.wait_exit(Duration::from_millis(500)).is_none());
}

#[test]
fn a_sigterm_tini_forwards_in_an_orderly_stop_is_info() {
    let mut init = Init::start(&[TINI, "--", "sleep", "1000"]);
    let child = wait_child(init.pid).expect("tini starts its child");
    wait_in_syscall(init.pid, signal_trace::inspect::SYS_RT_SIGTIMEDWAIT);
    let pids = format!("{},{child}", init.pid);
    let trace = Trace::start(&["explain", "--pid", &pids]);
    kill(init.pid, libc::SIGTERM);
    assert!(
        init.wait_exit(Duration::from_secs(5)).is_some(),
        "tini did not stop"
    );
    let f = trace.wait_for("the child's death", |v| {
        is(v, "finding") && v["kind"] == "signal_death" && v["process"]["pid"] == child
    });
    assert_eq!(f["severity"], "info", "{f}");
    assert_eq!(f["signal"], "SIGTERM", "{f}");
    assert_eq!(int(&f, &["sender", "pid"]), init.pid as i64, "{f}");
    assert!(
        f["summary"].as_str().unwrap().contains("orderly stop"),
        "{f}"
    );
    let (_, records, _) = trace.stop();
    let warnings: Vec<&Value> = records
        .iter()
        .filter(|v| is(v, "finding") && v["severity"] != "info")
        .collect();
    assert!(warnings.is_empty(), "{warnings:?}");
}
