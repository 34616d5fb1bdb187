//! A container runtime that accepts connections and never answers must not slow the event
//! stream: a paced storm of 60,000 signals a second from a process that moves into a new
//! Kubernetes-shaped container cgroup every 200 ms (each one a runtime query), with the
//! tracer pointed at such a socket, loses nothing; every record carries its container id,
//! and the failed queries are counted in the metrics.
//!
//! The storm needs an optimized tracer (a debug build formats about 22,000 records a second):
//! the release build next to the test's debug one (`cargo build --release -p signal-trace`,
//! which `cargo xtask test` runs first), or `SIGNAL_TRACE_BIN=/path/to/signal-trace` (also to
//! compare with an older build that queried the runtime on the event path).

mod common;

use std::io::Read;
use std::process::{Command, Stdio};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use common::ctr::{random_hex, random_uuid};
use common::*;
use serde_json::Value;

const RATE: u64 = 60_000;
const SECONDS: u64 = 4;

/// A child that raises SIGUSR1 (handled) at `rate` a second for `seconds` once told to
/// start, then reports how many it raised.
struct PacedStorm {
    pid: i32,
    go: i32,
    count: i32,
}

impl PacedStorm {
    fn fork(rate: u64, seconds: u64) -> PacedStorm {
        let (mut go, mut count) = ([0; 2], [0; 2]);
        // SAFETY: after fork the child uses only async-signal-safe calls (read, sigaction,
        // raise, clock_gettime, clock_nanosleep, write, _exit).
        unsafe {
            assert_eq!(libc::pipe(go.as_mut_ptr()), 0);
            assert_eq!(libc::pipe(count.as_mut_ptr()), 0);
            let pid = libc::fork();
            assert!(pid >= 0);
            if pid == 0 {
                // The parent's ends closed here, so a parent that dies before `start` ends
                // this child too (read returns 0) instead of leaving it waiting for ever.
                libc::close(go[1]);
                libc::close(count[0]);
                let mut b = [0u8; 1];
                if libc::read(go[0], b.as_mut_ptr().cast(), 1) != 1 {
                    libc::_exit(1);
                }
                extern "C" fn h(_: libc::c_int) {}
                let mut sa: libc::sigaction = std::mem::zeroed();
                sa.sa_sigaction = h as *const () as usize;
                libc::sigaction(libc::SIGUSR1, &sa, std::ptr::null_mut());
                let mut ts = libc::timespec {
                    tv_sec: 0,
                    tv_nsec: 0,
                };
                libc::clock_gettime(libc::CLOCK_MONOTONIC, &mut ts);
                let start = ts.tv_sec as u64 * 1_000_000_000 + ts.tv_nsec as u64;
                let total = rate * seconds;
                let mut raised: u64 = 0;
                while raised < total {
                    for _ in 0..100 {
                        libc::raise(libc::SIGUSR1);
                        raised += 1;
                    }
                    // Sleep until this many signals are due.
                    let due = start + raised * 1_000_000_000 / rate;
                    let t = libc::timespec {
                        tv_sec: (due / 1_000_000_000) as libc::time_t,
                        tv_nsec: (due % 1_000_000_000) as libc::c_long,
                    };
                    libc::clock_nanosleep(
                        libc::CLOCK_MONOTONIC,
                        libc::TIMER_ABSTIME,
                        &t,
                        std::ptr::null_mut(),
                    );
                }
                libc::write(count[1], (&raised as *const u64).cast(), 8);
                libc::_exit(0);
            }
            libc::close(go[0]);
            libc::close(count[1]);
            PacedStorm {
                pid,
                go: go[1],
                count: count[0],
            }
        }
    }

    fn start(&self) {
        // SAFETY: one byte to our own pipe.
        unsafe { libc::write(self.go, b"g".as_ptr().cast(), 1) };
    }

    fn raised(self) -> u64 {
        let mut raised: u64 = 0;
        // SAFETY: 8 bytes into a u64 from our pipe; waitpid on our child.
        unsafe {
            assert_eq!(
                libc::read(self.count, (&mut raised as *mut u64).cast(), 8),
                8,
                "the storm reported its count"
            );
            libc::close(self.count);
            libc::close(self.go);
            libc::waitpid(self.pid, std::ptr::null_mut(), 0);
        }
        raised
    }
}

/// The release build of the tracer, built after the last change to any source it is made of.
fn optimized_tracer() -> String {
    if let Ok(bin) = std::env::var("SIGNAL_TRACE_BIN") {
        return bin;
    }
    let debug = std::path::Path::new(BIN);
    let release = debug
        .parent()
        .and_then(|d| d.parent())
        .map(|t| t.join("release/signal-trace"))
        .expect("the target directory");
    fn newest(dir: &std::path::Path, best: &mut std::time::SystemTime) {
        for e in std::fs::read_dir(dir).into_iter().flatten().flatten() {
            let p = e.path();
            if p.is_dir() {
                newest(&p, best);
            } else if let Ok(t) = e.metadata().and_then(|m| m.modified()) {
                *best = (*best).max(t);
            }
        }
    }
    let root = std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("..");
    let mut sources = std::time::SystemTime::UNIX_EPOCH;
    for dir in [
        "signal-trace/src",
        "signal-trace-ebpf/src",
        "signal-trace-common/src",
    ] {
        newest(&root.join(dir), &mut sources);
    }
    match std::fs::metadata(&release).and_then(|m| m.modified()) {
        Ok(r) if r >= sources => release.to_string_lossy().into_owned(),
        _ => panic!(
            "{} is missing or older than its sources: run `cargo build --release -p signal-trace` first (a debug build cannot format 60,000 records a second)",
            release.display()
        ),
    }
}

#[test]
fn a_runtime_that_never_answers_does_not_slow_the_stream() {
    require_root();
    let dir = std::env::temp_dir().join(format!("st-hung-{}", std::process::id()));
    std::fs::create_dir_all(&dir).unwrap();
    let socket = dir.join("containerd.sock");
    let accepted = hung_runtime(&socket);
    let cg = Cgroup2::new();
    let pod = cg.mkdir(&format!("kubepods/besteffort/pod{}", random_uuid()));

    let bin = optimized_tracer();
    let storm = PacedStorm::fork(RATE, SECONDS);
    let storm_pid = storm.pid;
    // To a file: a test reading the stream through a pipe would be the bottleneck.
    let output = dir.join("signals.ndjson");
    let mut tracer = Command::new(&bin)
        .args(["--format", "json", "--events", "generate", "--output"])
        .arg(&output)
        .args(["--target-pid", &storm.pid.to_string()])
        .args(["--metrics-addr", "127.0.0.1:0", "--containerd-socket"])
        .arg(&socket)
        .stderr(Stdio::piped())
        .spawn()
        .expect("spawn signal-trace");
    let stderr = Arc::new(Mutex::new(String::new()));
    let mut err = tracer.stderr.take().unwrap();
    let s = stderr.clone();
    let err_reader = std::thread::spawn(move || {
        let mut buf = [0u8; 4096];
        while let Ok(n) = err.read(&mut buf) {
            if n == 0 {
                break;
            }
            s.lock()
                .unwrap()
                .push_str(&String::from_utf8_lossy(&buf[..n]));
        }
    });
    let start = Instant::now();
    while !stderr.lock().unwrap().contains("Ctrl-C to stop") {
        assert!(
            start.elapsed() < Duration::from_secs(30),
            "the tracer did not start: {}",
            stderr.lock().unwrap()
        );
        std::thread::sleep(Duration::from_millis(20));
    }
    let addr = stderr
        .lock()
        .unwrap()
        .split("metrics on http://")
        .nth(1)
        .and_then(|r| r.split('/').next())
        .expect("the metrics address")
        .to_string();

    // The storm hops into a new container cgroup every 200 ms.
    let mut ids = Vec::new();
    let mut dirs = Vec::new();
    let hop = |ids: &mut Vec<String>, dirs: &mut Vec<std::path::PathBuf>| {
        let id = random_hex(64);
        let dir = pod.join(&id);
        std::fs::create_dir(&dir).expect("a container cgroup");
        std::fs::write(dir.join("cgroup.procs"), storm_pid.to_string()).expect("move the storm");
        ids.push(id);
        dirs.push(dir);
    };
    hop(&mut ids, &mut dirs);
    storm.start();
    let began = Instant::now();
    while began.elapsed() < Duration::from_secs(SECONDS) {
        std::thread::sleep(Duration::from_millis(200));
        if began.elapsed() < Duration::from_secs(SECONDS) {
            hop(&mut ids, &mut dirs);
        }
    }
    let raised = storm.raised();
    let took = began.elapsed();
    std::thread::sleep(Duration::from_millis(500));
    let metrics = metrics(&addr);
    // SAFETY: kill(2) on our own child.
    unsafe { libc::kill(tracer.id() as i32, libc::SIGINT) };
    let status = tracer.wait().unwrap();
    err_reader.join().unwrap();
    let records: Vec<Value> = std::fs::read_to_string(&output)
        .expect("the output file")
        .lines()
        .map(|l| serde_json::from_str(l).expect("a JSON line"))
        .collect();
    for d in dirs.iter().rev() {
        let _ = std::fs::remove_dir(d);
    }
    let _ = std::fs::remove_dir(&pod);
    let _ = std::fs::remove_dir_all(&dir);
    let stderr = stderr.lock().unwrap().clone();

    let mine: Vec<&Value> = records
        .iter()
        .filter(|v| is(v, "generate") && int(v, &["target", "pid"]) == i64::from(storm_pid))
        .collect();
    let with_id = mine
        .iter()
        .filter(|v| {
            v["target"]["container"]["id"]
                .as_str()
                .is_some_and(|id| ids.iter().any(|i| i == id))
        })
        .count();
    let totals = stderr.lines().last().unwrap_or("").to_string();
    let failures = metrics
        .lines()
        .find(|l| l.starts_with("signal_trace_runtime_failures_total"))
        .unwrap_or("signal_trace_runtime_failures_total (missing)")
        .to_string();
    println!(
        "{raised} signals in {took:.1?} ({:.0}/s) over {} container cgroups; {} records, {with_id} with their container id; tracer: {totals}; {failures}; connections the hung runtime accepted: {}",
        raised as f64 / took.as_secs_f64(),
        ids.len(),
        mine.len(),
        accepted.lock().unwrap()
    );
    assert!(status.success(), "{status:?}: {stderr}");
    assert_eq!(raised, RATE * SECONDS);
    assert!(
        stderr.contains(&format!("{raised} events, 0 lost")),
        "every event emitted, none lost: {stderr}"
    );
    assert_eq!(mine.len() as u64, raised);
    assert_eq!(
        with_id as u64, raised,
        "every record carries its container id"
    );
    let failed: f64 = failures
        .split_whitespace()
        .nth(1)
        .and_then(|n| n.parse().ok())
        .unwrap_or(0.0);
    assert!(failed >= 1.0, "the failed queries are counted: {failures}");
}
