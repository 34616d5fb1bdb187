//! `signal-trace explain` and `inspect` from the command line: replayed streams, live
//! diagnosis on real processes, and the two agreeing.

mod common;

use std::collections::BTreeSet;
use std::process::{Command, Stdio};
use std::time::Duration;

use common::*;
use serde_json::Value;

fn fixture(name: &str) -> String {
    std::fs::read_to_string(format!(
        "{}/tests/fixtures/explain/{name}.ndjson",
        env!("CARGO_MANIFEST_DIR")
    ))
    .expect("fixture")
}

fn temp_file(name: &str, text: &str) -> std::path::PathBuf {
    let dir = std::env::temp_dir().join(format!("signal-trace-explain-{}", std::process::id()));
    std::fs::create_dir_all(&dir).unwrap();
    let path = dir.join(name);
    std::fs::write(&path, text).unwrap();
    path
}

fn findings(stdout: &[u8]) -> Vec<Value> {
    String::from_utf8_lossy(stdout)
        .lines()
        .map(|l| serde_json::from_str(l).unwrap_or_else(|e| panic!("not JSON ({e}): {l}")))
        .collect()
}

fn kinds(found: &[Value]) -> BTreeSet<String> {
    found
        .iter()
        .filter(|v| v["event"] == "finding")
        .map(|v| v["kind"].as_str().unwrap_or_default().to_string())
        .collect()
}

#[test]
fn a_replayed_stream_with_garbage_reports_the_line_and_keeps_the_rest() {
    let mut lines: Vec<String> = fixture("init_ignored").lines().map(str::to_owned).collect();
    lines.insert(1, "this is not json".into());
    lines.insert(3, r#"{"event":"generate","signo":"fifteen"}"#.into());
    let path = temp_file("garbage.ndjson", &(lines.join("\n") + "\n"));
    let out = Command::new(BIN)
        .args(["explain", "--format", "json", "--from"])
        .arg(&path)
        .output()
        .expect("run");
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert_eq!(
        out.status.code(),
        Some(1),
        "bad lines make a failed run: {stderr}"
    );
    assert!(
        stderr.contains("garbage.ndjson:2: not a signal-trace record"),
        "{stderr}"
    );
    assert!(
        stderr.contains("garbage.ndjson:4: not a signal-trace record"),
        "{stderr}"
    );
    assert!(!stderr.contains("panicked"), "{stderr}");
    let found = findings(&out.stdout);
    assert!(
        kinds(&found).contains("init_ignored"),
        "the good lines still count: {found:?}"
    );
}

#[test]
fn every_fixture_replays_to_its_finding_and_a_healthy_shutdown_to_none() {
    for (name, kind) in [
        ("init_ignored", Some("init_ignored")),
        ("not_forwarded", Some("not_forwarded")),
        ("grace_exceeded", Some("grace_exceeded")),
        ("oom_killed", Some("oom_killed")),
        ("signal_death", Some("signal_death")),
        ("coalesced", Some("coalesced")),
        ("healthy_shutdown", None),
    ] {
        let out = Command::new(BIN)
            .args(["explain", "--format", "json", "--timeline", "--from", "-"])
            .stdin(Stdio::piped())
            .stdout(Stdio::piped())
            .stderr(Stdio::piped())
            .spawn()
            .and_then(|mut c| {
                use std::io::Write;
                c.stdin
                    .take()
                    .expect("stdin")
                    .write_all(fixture(name).as_bytes())?;
                c.wait_with_output()
            })
            .expect("run");
        assert!(
            out.status.success(),
            "{name}: {}",
            String::from_utf8_lossy(&out.stderr)
        );
        let found = findings(&out.stdout);
        let k = kinds(&found);
        match kind {
            Some(kind) => assert!(k.contains(kind), "{name}: {k:?}"),
            None => assert!(
                k.is_empty(),
                "{name}: a healthy shutdown blames nobody: {found:?}"
            ),
        }
        assert!(
            found.iter().any(|v| v["event"] == "timeline") || name == "coalesced",
            "{name}: --timeline prints timelines: {found:?}"
        );
    }
}

#[test]
fn live_and_replayed_diagnoses_agree() {
    require_root();
    let ns = NsInit::start();
    let init = ns.init;
    let record =
        std::env::temp_dir().join(format!("signal-trace-agree-{}.ndjson", std::process::id()));
    let _ = std::fs::remove_file(&record);
    let pid = init.to_string();
    let recorder = Trace::start(&["--pid", &pid, "--output", record.to_str().unwrap()]);
    // The live explain, as a Trace: it prints findings as NDJSON.
    let live = Trace::start(&["explain", "--pid", &pid]);
    kill(init, libc::SIGTERM);
    std::thread::sleep(Duration::from_millis(1500));
    kill(init, libc::SIGKILL);
    live.wait_for("init_ignored finding", |v| v["kind"] == "init_ignored");
    std::thread::sleep(Duration::from_millis(500));
    let (_, live_found, _) = live.stop();
    recorder.stop();
    let out = Command::new(BIN)
        .args(["explain", "--format", "json", "--from"])
        .arg(&record)
        .output()
        .expect("run");
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    let replayed = findings(&out.stdout);
    let (live_kinds, replay_kinds) = (kinds(&live_found), kinds(&replayed));
    assert!(
        live_kinds.contains("init_ignored") && live_kinds.contains("grace_exceeded"),
        "{live_found:?}"
    );
    assert_eq!(
        live_kinds, replay_kinds,
        "live {live_found:?}\nreplay {replayed:?}"
    );
    let f = live_found
        .iter()
        .find(|v| v["kind"] == "grace_exceeded")
        .unwrap();
    assert_eq!(f["exit_code"], 137, "{f}");
    let grace = f["grace_ns"].as_u64().expect("grace_ns");
    assert!(grace >= 1_400_000_000, "SIGTERM to SIGKILL took 1.5 s: {f}");
    let _ = std::fs::remove_file(&record);
}

#[test]
fn a_sigpipe_death_is_explained_live() {
    require_root();
    let live = Trace::start(&["explain", "--comm", "yes"]);
    let status = Command::new("sh")
        .args(["-c", "yes | head -n1 >/dev/null"])
        .status()
        .expect("sh");
    assert!(status.success());
    let f = live.wait_for("signal_death", |v| v["kind"] == "signal_death");
    assert_eq!(f["signal"], "SIGPIPE", "{f}");
    assert_eq!(f["exit_code"], 141, "{f}");
    assert!(!f["remedy"].as_str().unwrap_or_default().is_empty(), "{f}");
    live.stop();
}

#[test]
fn inspect_flags_an_init_without_a_term_handler() {
    require_root();
    let ns = NsInit::start();
    let out = Command::new(BIN)
        .args(["inspect", &ns.init.to_string(), "--format", "json"])
        .output()
        .expect("run");
    drop(ns);
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    let text = String::from_utf8_lossy(&out.stdout);
    assert!(text.contains("init_without_term_handler"), "{text}");
    let out = Command::new(BIN)
        .args(["inspect", "999999999"])
        .output()
        .expect("run");
    assert_eq!(out.status.code(), Some(1));
    assert!(
        String::from_utf8_lossy(&out.stderr).contains("no such process"),
        "{:?}",
        out
    );
}

/// A memory cgroup (v1 controller) with a small limit, removed on drop.
struct MemCgroup(std::path::PathBuf);

impl MemCgroup {
    fn new(limit: &str) -> MemCgroup {
        let path = std::path::PathBuf::from(format!(
            "/sys/fs/cgroup/memory/signal-trace-oom-{}",
            std::process::id()
        ));
        std::fs::create_dir_all(&path).expect("create a memory cgroup (v1 memory controller)");
        std::fs::write(path.join("memory.limit_in_bytes"), limit).expect("set its limit");
        MemCgroup(path)
    }
}

impl Drop for MemCgroup {
    fn drop(&mut self) {
        for _ in 0..50 {
            if std::fs::remove_dir(&self.0).is_ok() {
                return;
            }
            std::thread::sleep(Duration::from_millis(100));
        }
    }
}

#[test]
fn an_oom_kill_in_a_memory_cgroup_is_explained() {
    require_root();
    let cg = MemCgroup::new("33554432");
    let procs = std::ffi::CString::new(cg.0.join("cgroup.procs").to_str().unwrap()).unwrap();
    let live = Trace::start(&["explain", "--events", "generate,exit,oom"]);
    // SAFETY: the child only makes async-signal-safe calls (open, write, mmap) before it is
    // killed; it touches anonymous memory until the OOM killer takes it.
    let pid = unsafe {
        let pid = libc::fork();
        assert!(pid >= 0);
        if pid == 0 {
            let fd = libc::open(procs.as_ptr(), libc::O_WRONLY);
            if fd < 0 || libc::write(fd, b"0".as_ptr().cast(), 1) != 1 {
                libc::_exit(3);
            }
            libc::close(fd);
            let size = 512usize << 20;
            let p = libc::mmap(
                std::ptr::null_mut(),
                size,
                libc::PROT_READ | libc::PROT_WRITE,
                libc::MAP_PRIVATE | libc::MAP_ANONYMOUS,
                -1,
                0,
            );
            if p == libc::MAP_FAILED {
                libc::_exit(4);
            }
            let mut off = 0;
            while off < size {
                *(p as *mut u8).add(off) = 1;
                off += 4096;
            }
            libc::_exit(5);
        }
        pid
    };
    let mut status = 0;
    // SAFETY: waitpid on our child.
    unsafe { libc::waitpid(pid, &mut status, 0) };
    assert!(
        libc::WIFSIGNALED(status) && libc::WTERMSIG(status) == libc::SIGKILL,
        "the child was OOM-killed, status {status:#x}"
    );
    let f = live.wait_for("oom_killed", |v| {
        v["kind"] == "oom_killed" && v["process"]["pid"] == pid
    });
    assert_eq!(f["exit_code"], 137, "{f}");
    assert!(
        f["remedy"]
            .as_str()
            .unwrap_or_default()
            .to_lowercase()
            .contains("memory"),
        "{f}"
    );
    live.stop();
    drop(cg);
}

#[test]
fn summary_mode_aggregates_a_flood() {
    require_root();
    let child = spawn(Setup {
        handle: &[libc::SIGUSR1],
        ..Setup::default()
    });
    let trace = Trace::start(&["--summary", "0.5", "--target-pid", &child.pid.to_string()]);
    for _ in 0..2000 {
        kill(child.pid, libc::SIGUSR1);
    }
    let s = trace.wait_for("a summary", |v| {
        v["event"] == "summary" && v["total"].as_u64().unwrap_or(0) > 0
    });
    let (_, records, _) = trace.stop();
    let schema: Value =
        serde_json::from_str(include_str!("../../schema/events.schema.json")).expect("schema");
    let validator = jsonschema::validator_for(&schema).expect("schema compiles");
    for r in &records {
        let errors: Vec<String> = validator.iter_errors(r).map(|e| e.to_string()).collect();
        assert!(errors.is_empty(), "{r}: {errors:?}");
    }
    assert!(
        records.iter().all(|v| v["event"] == "summary"),
        "summary mode prints no per-event lines"
    );
    let counted: u64 = records
        .iter()
        .flat_map(|v| v["rows"].as_array().cloned().unwrap_or_default())
        .filter(|r| {
            r["event"] == "generate" && r["signal"] == "SIGUSR1" && r["target_pid"] == child.pid
        })
        .map(|r| r["count"].as_u64().unwrap_or(0))
        .sum();
    assert_eq!(counted, 2000, "every generate is counted once: {s}");
}
