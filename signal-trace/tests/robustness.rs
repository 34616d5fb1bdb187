//! The tracer must never be the thing that breaks, and never lose events silently: storms,
//! being killed or stopped, a full disk.

mod common;

use std::process::{Command, Stdio};
use std::time::{Duration, Instant};

use common::bpf::{bpf_prog_ids_of, loaded_prog_ids};
use common::*;

#[test]
fn sigkill_of_the_tracer_leaves_nothing_attached() {
    let quiet = spawn(Setup::default());
    let trace = Trace::start(&["--pid", &quiet.pid.to_string()]);
    let mine = bpf_prog_ids_of(trace.pid()).expect("the tracer's fdinfo");
    assert!(mine.len() >= 4, "{mine:?}");
    assert!(
        mine.iter().all(|id| loaded_prog_ids().contains(id)),
        "enumeration sees them while running"
    );
    let (status, _, _, _) = trace.stop_with(libc::SIGKILL);
    assert_eq!(
        std::os::unix::process::ExitStatusExt::signal(&status),
        Some(libc::SIGKILL)
    );
    let deadline = Instant::now() + Duration::from_secs(5);
    loop {
        let loaded = loaded_prog_ids();
        let left: Vec<_> = mine.iter().filter(|id| loaded.contains(id)).collect();
        if left.is_empty() {
            break;
        }
        assert!(
            Instant::now() < deadline,
            "programs still loaded after SIGKILL: {left:?}"
        );
        std::thread::sleep(Duration::from_millis(50));
    }
    // Nothing pinned either.
    let pinned: Vec<_> = std::fs::read_dir("/sys/fs/bpf")
        .expect("list /sys/fs/bpf")
        .flatten()
        .map(|e| e.file_name())
        .filter(|n| n.to_string_lossy().contains("signal"))
        .collect();
    assert!(pinned.is_empty(), "{pinned:?}");
}

/// A child that raises SIGUSR1 (handled) `n` times, or for `seconds` when `n` is 0, once told
/// to start, and then reports how many it raised.
struct Storm {
    pid: i32,
    go: i32,
    count: i32,
}

impl Storm {
    fn fork(n: u64, seconds: i64) -> Storm {
        let (mut go, mut count) = ([0; 2], [0; 2]);
        // SAFETY: after fork the child uses only async-signal-safe calls (read, sigaction,
        // raise, clock_gettime, write, _exit).
        unsafe {
            assert_eq!(libc::pipe(go.as_mut_ptr()), 0);
            assert_eq!(libc::pipe(count.as_mut_ptr()), 0);
            let pid = libc::fork();
            assert!(pid >= 0);
            if pid == 0 {
                let mut b = [0u8; 1];
                libc::read(go[0], b.as_mut_ptr().cast(), 1);
                extern "C" fn h(_: libc::c_int) {}
                let mut sa: libc::sigaction = std::mem::zeroed();
                sa.sa_sigaction = h as *const () as usize;
                libc::sigaction(libc::SIGUSR1, &sa, std::ptr::null_mut());
                let mut ts = libc::timespec {
                    tv_sec: 0,
                    tv_nsec: 0,
                };
                libc::clock_gettime(libc::CLOCK_MONOTONIC, &mut ts);
                let end = ts.tv_sec + seconds;
                let mut raised: u64 = 0;
                loop {
                    for _ in 0..1000 {
                        libc::raise(libc::SIGUSR1);
                        raised += 1;
                        if n != 0 && raised >= n {
                            break;
                        }
                    }
                    libc::clock_gettime(libc::CLOCK_MONOTONIC, &mut ts);
                    if (n != 0 && raised >= n) || (n == 0 && ts.tv_sec >= end) {
                        break;
                    }
                }
                libc::write(count[1], (&raised as *const u64).cast(), 8);
                libc::_exit(0);
            }
            libc::close(go[0]);
            libc::close(count[1]);
            Storm {
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

    /// Waits for the storm to end; how many signals it raised.
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

fn rss_kib(pid: u32) -> u64 {
    std::fs::read_to_string(format!("/proc/{pid}/status"))
        .ok()
        .and_then(|s| {
            s.lines()
                .find_map(|l| l.strip_prefix("VmRSS:"))
                .and_then(|v| v.split_whitespace().next()?.parse().ok())
        })
        .unwrap_or(0)
}

/// Events the tracer reported: generate rows of summaries for `pid`, and its loss total.
fn summary_counts(records: &[serde_json::Value], stderr: &str, pid: i32) -> (u64, u64) {
    let received: u64 = records
        .iter()
        .filter(|v| v["event"] == "summary")
        .flat_map(|v| v["rows"].as_array().cloned().unwrap_or_default())
        .filter(|r| r["event"] == "generate" && r["target_pid"] == pid)
        .map(|r| r["count"].as_u64().unwrap_or(0))
        .sum();
    let totals = stderr.lines().last().unwrap_or_default();
    let words: Vec<&str> = totals.split_whitespace().collect();
    let lost = match words.as_slice() {
        [_, "events,", m, "lost"] => m.parse().expect("lost count"),
        _ => panic!("no totals line: {stderr}"),
    };
    (received, lost)
}

#[test]
fn a_sixty_second_storm_is_accounted_for_exactly_with_bounded_memory() {
    require_root();
    // The storm child is created first so the tracer can filter on it, and starts when told.
    let storm = Storm::fork(0, 60);
    let pid = storm.pid;
    let trace = Trace::start(&[
        "--summary",
        "5",
        "--target-pid",
        &pid.to_string(),
        "--events",
        "generate",
    ]);
    storm.start();
    let mut rss = Vec::new();
    let start = Instant::now();
    while start.elapsed() < Duration::from_secs(58) {
        std::thread::sleep(Duration::from_secs(2));
        rss.push(rss_kib(trace.pid()));
    }
    let generated = storm.raised();
    let (status, _, records, stderr) = trace.stop_with(libc::SIGINT);
    assert!(status.success(), "{stderr}");
    let (received, lost) = summary_counts(&records, &stderr, pid);
    assert!(generated > 1_000_000, "a real storm: {generated}");
    assert_eq!(
        received + lost,
        generated,
        "received {received} + lost {lost} = generated {generated}"
    );
    let first = rss.iter().copied().find(|&r| r > 0).unwrap_or(0);
    let peak = rss.iter().copied().max().unwrap_or(0);
    assert!(
        peak < 64 * 1024,
        "resident memory stays small: peak {peak} KiB ({rss:?})"
    );
    assert!(
        peak <= first + 16 * 1024,
        "resident memory does not grow with the storm: {rss:?}"
    );
    eprintln!("storm: generated {generated}, received {received}, lost {lost}, rss {rss:?} KiB");
}

#[test]
fn stopped_under_load_it_counts_the_losses_then_recovers() {
    let storm = Storm::fork(200_000, 0);
    let pid = storm.pid;
    let child = spawn(Setup {
        handle: &[libc::SIGUSR2],
        ..Setup::default()
    });
    let pids = format!("{},{}", pid, child.pid);
    let trace = Trace::start(&[
        "--summary",
        "0.5",
        "--ring-size",
        "64K",
        "--events",
        "generate",
        "--target-pid",
        &pids,
    ]);
    kill(trace.pid() as i32, libc::SIGSTOP);
    storm.start();
    let generated = storm.raised();
    kill(trace.pid() as i32, libc::SIGCONT);
    // It runs again: a new signal after the storm is seen.
    let deadline = Instant::now() + Duration::from_secs(15);
    let mut sent = 0u64;
    loop {
        kill(child.pid, libc::SIGUSR2);
        sent += 1;
        let seen = trace.records().iter().any(|v| {
            v["event"] == "summary"
                && v["rows"].as_array().is_some_and(|rows| {
                    rows.iter()
                        .any(|r| r["target_pid"] == child.pid && r["signal"] == "SIGUSR2")
                })
        });
        if seen {
            break;
        }
        assert!(
            Instant::now() < deadline,
            "no events after SIGCONT: {}",
            trace.stderr()
        );
        std::thread::sleep(Duration::from_millis(100));
    }
    let (status, _, records, stderr) = trace.stop_with(libc::SIGINT);
    assert!(status.success(), "{stderr}");
    let (received, lost) = summary_counts(&records, &stderr, pid);
    let (received_after, _) = summary_counts(&records, &stderr, child.pid);
    assert!(
        lost > 0,
        "a 64 KiB ring cannot hold {generated} events while stopped: {stderr}"
    );
    // The loss counter covers every event the filter let through: the storm's and the later
    // SIGUSR2s'.
    assert_eq!(
        received + received_after + lost,
        generated + sent,
        "received {received} + {received_after} + lost {lost} = generated {generated} + {sent}"
    );
    assert!(
        stderr.contains("events lost (ring buffer full)"),
        "warned: {stderr}"
    );
}

#[test]
fn a_full_disk_is_a_clear_error_without_a_torn_line() {
    require_root();
    let dir = std::env::temp_dir().join(format!("signal-trace-full-{}", std::process::id()));
    std::fs::create_dir_all(&dir).unwrap();
    let status = Command::new("mount")
        .args(["-t", "tmpfs", "-o", "size=256k", "tmpfs"])
        .arg(&dir)
        .status()
        .expect("mount");
    assert!(status.success(), "mount a small tmpfs");
    struct Unmount(std::path::PathBuf);
    impl Drop for Unmount {
        fn drop(&mut self) {
            let _ = Command::new("umount").arg(&self.0).status();
            let _ = std::fs::remove_dir(&self.0);
        }
    }
    let _guard = Unmount(dir.clone());
    let file = dir.join("events.ndjson");
    let mut tracer = Command::new(BIN)
        .args([
            "--format",
            "json",
            "--events",
            "generate,deliver",
            "--output",
        ])
        .arg(&file)
        .stderr(Stdio::piped())
        .spawn()
        .expect("spawn");
    std::thread::sleep(Duration::from_millis(500));
    let start = Instant::now();
    let status = loop {
        if let Some(s) = tracer.try_wait().unwrap() {
            break s;
        }
        assert!(
            start.elapsed() < Duration::from_secs(60),
            "the tracer did not notice the full disk"
        );
        let storm = Storm::fork(20_000, 0);
        storm.start();
        storm.raised();
    };
    let out = tracer.wait_with_output().unwrap();
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert_eq!(status.code(), Some(1), "{stderr}");
    assert!(
        stderr.contains("cannot write events to") && stderr.contains("No space left on device"),
        "{stderr}"
    );
    let data = std::fs::read(&file).unwrap();
    assert!(!data.is_empty(), "it wrote until the disk was full");
    assert!(data.ends_with(b"\n"), "the file ends with a whole line");
    for line in String::from_utf8_lossy(&data).lines() {
        serde_json::from_str::<serde_json::Value>(line)
            .unwrap_or_else(|e| panic!("torn line ({e}): {line}"));
    }
}
