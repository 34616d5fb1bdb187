//! A node daemon's manners, live: an `--output` path that another user prepared is refused
//! (symbolic link, their file, a FIFO) without hanging; SIGHUP reopens the output after
//! logrotate renamed it; size rotation never tears a line; every signal that stops the tracer
//! drains the ring and prints the totals.

mod common;

use std::fs;
use std::os::unix::fs::{MetadataExt, PermissionsExt};
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Output, Stdio};
use std::time::{Duration, Instant};

use common::*;
use serde_json::Value;

const NOBODY: &str = "65534";

/// A world-writable sticky directory like /tmp, removed at the end.
struct StickyDir(PathBuf);

impl StickyDir {
    fn new(name: &str) -> StickyDir {
        let dir = std::env::temp_dir().join(format!("st-daemon-{name}-{}", std::process::id()));
        let _ = fs::remove_dir_all(&dir);
        fs::create_dir(&dir).expect("create the test directory");
        fs::set_permissions(&dir, fs::Permissions::from_mode(0o1777)).expect("chmod 1777");
        StickyDir(dir)
    }

    fn path(&self, name: &str) -> PathBuf {
        self.0.join(name)
    }
}

impl Drop for StickyDir {
    fn drop(&mut self) {
        let _ = fs::remove_dir_all(&self.0);
    }
}

/// Runs a command as uid/gid 65534 and asserts it succeeded.
fn as_nobody(args: &[&str]) {
    let out = Command::new("setpriv")
        .args(["--reuid", NOBODY, "--regid", NOBODY, "--clear-groups", "--"])
        .args(args)
        .output()
        .expect("run setpriv (util-linux)");
    assert!(out.status.success(), "as uid 65534: {args:?}: {out:?}");
}

/// Runs the tracer with `args` for at most 15 s (it must not hang) and returns its output.
fn run_tracer(args: &[&str]) -> (Output, Duration) {
    require_root();
    let start = Instant::now();
    let mut child = Command::new(BIN)
        .args(args)
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .expect("spawn signal-trace");
    loop {
        if child.try_wait().expect("wait").is_some() {
            break;
        }
        if start.elapsed() > Duration::from_secs(15) {
            let _ = child.kill();
            let out = child.wait_with_output().expect("collect");
            panic!(
                "the tracer hung for 15 s with {args:?}; stderr: {}",
                String::from_utf8_lossy(&out.stderr)
            );
        }
        std::thread::sleep(Duration::from_millis(20));
    }
    (child.wait_with_output().expect("collect"), start.elapsed())
}

fn assert_refused(args: &[&str], why: &str) {
    let (out, took) = run_tracer(args);
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert_eq!(out.status.code(), Some(1), "{args:?}: {stderr}");
    assert!(
        stderr.contains("refusing to write events to") && stderr.contains(why),
        "{args:?}: {stderr}"
    );
    assert_eq!(
        stderr.trim().lines().count(),
        1,
        "one line, nothing attached first: {stderr}"
    );
    assert!(took < Duration::from_secs(5), "took {took:?}");
    println!("refused in {took:?}: {}", stderr.trim());
}

#[test]
fn a_symlink_planted_by_another_user_is_refused_and_its_target_untouched() {
    let dir = StickyDir::new("symlink");
    let secret = std::env::temp_dir().join(format!("st-daemon-secret-{}", std::process::id()));
    fs::write(&secret, b"root only\n").unwrap();
    fs::set_permissions(&secret, fs::Permissions::from_mode(0o600)).unwrap();
    let planted = dir.path("signals.ndjson");
    as_nobody(&[
        "ln",
        "-s",
        secret.to_str().unwrap(),
        planted.to_str().unwrap(),
    ]);
    assert_refused(
        &["--output", planted.to_str().unwrap(), "--duration", "1"],
        "it is a symbolic link",
    );
    assert_eq!(fs::read(&secret).unwrap(), b"root only\n");
    assert_eq!(fs::metadata(&secret).unwrap().mode() & 0o7777, 0o600);
    let _ = fs::remove_file(&secret);
}

#[test]
fn a_file_another_user_precreated_0666_is_refused() {
    let dir = StickyDir::new("precreated");
    let theirs = dir.path("signals.ndjson");
    as_nobody(&["touch", theirs.to_str().unwrap()]);
    as_nobody(&["chmod", "0666", theirs.to_str().unwrap()]);
    assert_refused(
        &["--output", theirs.to_str().unwrap(), "--duration", "1"],
        "owned by uid 65534",
    );
    let meta = fs::metadata(&theirs).unwrap();
    assert_eq!((meta.len(), meta.mode() & 0o7777), (0, 0o666), "untouched");

    // The operator's own file left group-writable is refused too; a private one is made 0640.
    let mine = dir.path("mine.ndjson");
    fs::write(&mine, b"").unwrap();
    fs::set_permissions(&mine, fs::Permissions::from_mode(0o664)).unwrap();
    assert_refused(
        &["--output", mine.to_str().unwrap(), "--duration", "1"],
        "writable by group or others (mode 0664)",
    );
    fs::set_permissions(&mine, fs::Permissions::from_mode(0o600)).unwrap();
    let (out, _) = run_tracer(&[
        "--output",
        mine.to_str().unwrap(),
        "--duration",
        "0.5",
        "--events",
        "generate",
    ]);
    assert!(out.status.success(), "{out:?}");
    assert_eq!(fs::metadata(&mine).unwrap().mode() & 0o7777, 0o640);
}

fn mkfifo(path: &Path) {
    let c = std::ffi::CString::new(path.to_str().unwrap()).unwrap();
    // SAFETY: mkfifo with a valid path.
    assert_eq!(unsafe { libc::mkfifo(c.as_ptr(), 0o600) }, 0, "mkfifo");
}

/// A reader holding `fifo` open: as uid 65534 read-write, so that it never sees an end of
/// file (a refused tracer opens and closes its end); as root a plain `cat`, which ends when
/// the tracer closes its end.
fn fifo_reader(fifo: &Path, nobody: bool) -> Child {
    let mut cmd = if nobody {
        let mut c = Command::new("setpriv");
        c.args(["--reuid", NOBODY, "--regid", NOBODY, "--clear-groups", "--"]);
        c.args(["sh", "-c", "exec 3<>\"$0\"; exec cat <&3"]);
        c
    } else {
        Command::new("cat")
    };
    let child = cmd
        .arg(fifo)
        .stdout(Stdio::piped())
        .spawn()
        .expect("spawn a FIFO reader");
    // Until the reader has the FIFO open, a non-blocking writer gets ENXIO.
    std::thread::sleep(Duration::from_millis(300));
    child
}

#[test]
fn a_fifo_is_refused_without_the_flag_and_never_hangs() {
    let dir = StickyDir::new("fifo");
    // Another user's FIFO, with that user holding the reader: refused with or without the flag.
    let theirs = dir.path("theirs.fifo");
    as_nobody(&["mkfifo", "-m", "0622", theirs.to_str().unwrap()]);
    let mut reader = fifo_reader(&theirs, true);
    assert_refused(
        &["--output", theirs.to_str().unwrap(), "--duration", "1"],
        "it is a FIFO (pass --output-fifo to write to one)",
    );
    assert_refused(
        &[
            "--output",
            theirs.to_str().unwrap(),
            "--output-fifo",
            "--duration",
            "1",
        ],
        "owned by uid 65534",
    );
    let _ = reader.kill();
    let got = reader.wait_with_output().unwrap();
    assert!(got.stdout.is_empty(), "the reader got nothing");

    // No reader: refused at once, with or without the flag.
    let mine = dir.path("mine.fifo");
    mkfifo(&mine);
    assert_refused(
        &["--output", mine.to_str().unwrap(), "--duration", "1"],
        "it is a FIFO",
    );
    assert_refused(
        &[
            "--output",
            mine.to_str().unwrap(),
            "--output-fifo",
            "--duration",
            "1",
        ],
        "the FIFO has no reader",
    );

    // The operator's FIFO with a reader and the flag: records flow.
    let reader = fifo_reader(&mine, false);
    let target = spawn(Setup {
        handle: &[libc::SIGUSR1],
        ..Setup::default()
    });
    let mut tracer = Command::new(BIN)
        .args(["--format", "json", "--events", "generate", "--output-fifo"])
        .args(["--target-pid", &target.pid.to_string(), "--output"])
        .arg(&mine)
        .stderr(Stdio::piped())
        .spawn()
        .expect("spawn signal-trace");
    std::thread::sleep(Duration::from_secs(3));
    for _ in 0..3 {
        kill(target.pid, libc::SIGUSR1);
    }
    std::thread::sleep(Duration::from_millis(500));
    kill(tracer.id() as i32, libc::SIGINT);
    assert!(tracer.wait().unwrap().success());
    let got = reader.wait_with_output().unwrap();
    let lines: Vec<Value> = String::from_utf8(got.stdout)
        .unwrap()
        .lines()
        .map(|l| serde_json::from_str(l).expect("a JSON line"))
        .collect();
    assert_eq!(lines.len(), 3, "{lines:?}");
}

/// The SIGUSR1 generate records for `pid` in an NDJSON file; every line must parse and the
/// file must end with a newline.
fn generates_in(path: &Path, pid: i32) -> Vec<Value> {
    let text = fs::read_to_string(path).unwrap_or_else(|e| panic!("{}: {e}", path.display()));
    assert!(
        text.is_empty() || text.ends_with('\n'),
        "{} ends in a torn line",
        path.display()
    );
    text.lines()
        .map(|l| {
            serde_json::from_str::<Value>(l)
                .unwrap_or_else(|e| panic!("{}: not JSON ({e}): {l}", path.display()))
        })
        .filter(|v| is(v, "generate") && int(v, &["target", "pid"]) == i64::from(pid))
        .collect()
}

fn wait_until(what: &str, timeout: Duration, cond: impl Fn() -> bool) {
    let start = Instant::now();
    while !cond() {
        assert!(start.elapsed() < timeout, "{what} within {timeout:?}");
        std::thread::sleep(Duration::from_millis(20));
    }
}

#[test]
fn sighup_reopens_the_output_after_logrotate_renamed_it() {
    let dir = StickyDir::new("hup");
    let out = dir.path("signals.ndjson");
    let rotated = dir.path("signals.ndjson.1");
    let target = spawn(Setup {
        handle: &[libc::SIGUSR1],
        ..Setup::default()
    });
    let trace = Trace::start(&[
        "--events",
        "generate",
        "--target-pid",
        &target.pid.to_string(),
        "--output",
        out.to_str().unwrap(),
    ]);
    let (before, after) = (700, 300);
    for _ in 0..before {
        kill(target.pid, libc::SIGUSR1);
    }
    // logrotate's way: rename, then HUP; the tracer writes on to the renamed file until then.
    fs::rename(&out, &rotated).unwrap();
    kill(trace.pid() as i32, libc::SIGHUP);
    wait_until("the reopened file", Duration::from_secs(5), || out.exists());
    assert_eq!(
        fs::metadata(&out).unwrap().mode() & 0o7777,
        0o640,
        "the new file has the output's mode"
    );
    for _ in 0..after {
        kill(target.pid, libc::SIGUSR1);
    }
    let (status, _, _, stderr) = trace.stop_with(libc::SIGINT);
    assert!(status.success(), "{stderr}");
    let old = generates_in(&rotated, target.pid);
    let new = generates_in(&out, target.pid);
    println!(
        "{} records in the renamed file, {} in the new one",
        old.len(),
        new.len()
    );
    assert_eq!(old.len(), before, "every record sent before the HUP, once");
    assert_eq!(new.len(), after, "every record sent after the HUP, once");
    assert!(
        stderr.contains(&format!("{} events, 0 lost", before + after)),
        "{stderr}"
    );
}

#[test]
fn size_rotation_under_a_storm_never_tears_a_line_nor_loses_one() {
    let dir = StickyDir::new("rotate");
    let out = dir.path("signals.ndjson");
    let target = spawn(Setup {
        handle: &[libc::SIGUSR1],
        ..Setup::default()
    });
    let trace = Trace::start(&[
        "--events",
        "generate",
        "--target-pid",
        &target.pid.to_string(),
        "--output",
        out.to_str().unwrap(),
        "--output-max-size",
        "64K",
        "--output-keep",
        "1000",
        // Room for the whole storm: this is about rotation, not throughput (a debug build
        // formats slowly).
        "--ring-size",
        "32M",
    ]);
    let n = 30_000;
    for _ in 0..n {
        kill(target.pid, libc::SIGUSR1);
    }
    let (status, _, _, stderr) = trace.stop_with(libc::SIGTERM);
    assert!(status.success(), "{stderr}");
    println!("tracer: {}", stderr.trim());
    let mut files = vec![out.clone()];
    let mut k = 1;
    loop {
        let p = dir.path(&format!("signals.ndjson.{k}"));
        if !p.exists() {
            break;
        }
        files.push(p);
        k += 1;
    }
    let mut total = 0;
    for f in &files {
        let size = fs::metadata(f).unwrap().len();
        assert!(
            size <= 64 * 1024 + 70 * 1024,
            "{}: {size} bytes",
            f.display()
        );
        total += generates_in(f, target.pid).len();
    }
    println!("{n} signals: {total} records in {} files", files.len());
    assert!(files.len() > 10, "rotated: {} files", files.len());
    assert_eq!(total, n);
    assert!(stderr.contains(&format!("{n} events, 0 lost")), "{stderr}");
}

#[test]
fn every_stop_signal_drains_the_ring_and_prints_the_totals() {
    for (sig, name) in [
        (libc::SIGUSR1, "SIGUSR1"),
        (libc::SIGALRM, "SIGALRM"),
        (libc::SIGUSR2, "SIGUSR2"),
        (libc::SIGQUIT, "SIGQUIT"),
        (libc::SIGTERM, "SIGTERM"),
    ] {
        let target = spawn(Setup {
            handle: &[libc::SIGUSR1],
            ..Setup::default()
        });
        let trace = Trace::start(&[
            "--events",
            "generate",
            "--target-pid",
            &target.pid.to_string(),
        ]);
        let n = 5000;
        for _ in 0..n {
            kill(target.pid, libc::SIGUSR1);
        }
        // At once: most of them are still in the ring (the programs wake the reader only
        // past a backlog, or on its 50 ms tick).
        let (status, _, records, stderr) = trace.stop_with(sig);
        assert!(status.success(), "{name}: {status:?}; {stderr}");
        let got = records
            .iter()
            .filter(|v| is(v, "generate") && int(v, &["target", "pid"]) == i64::from(target.pid))
            .count();
        println!(
            "{name}: {got} of {n} records, stderr ends: {}",
            stderr.trim().lines().last().unwrap_or("")
        );
        assert_eq!(got, n, "{name}: every record drained");
        assert!(
            stderr.contains(&format!("{n} events, 0 lost")),
            "{name}: {stderr}"
        );
    }
}
