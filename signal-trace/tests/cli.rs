//! The command-line contract: exit codes, output destinations, formats, stopping conditions.

mod common;

use std::os::unix::fs::PermissionsExt;
use std::process::{Command, Stdio};
use std::time::{Duration, Instant};

use common::*;

fn run(args: &[&str]) -> std::process::Output {
    Command::new(BIN)
        .args(args)
        .stdin(Stdio::null())
        .output()
        .expect("run signal-trace")
}

#[test]
fn bad_flags_exit_2_with_the_reason() {
    for (args, needle) in [
        (&["--signal", "TERMINATE"][..], "--signal"),
        (&["--pid", "abc"], "--pid"),
        (&["--result", "queued"], "--result"),
        (&["--events", "bogus"], "--events"),
        (&["--format", "xml"], "--format"),
        (&["--ring-size", "3000"], "--ring-size"),
        (&["--duration", "soon"], "--duration"),
        (&["--no-such-flag"], "--no-such-flag"),
    ] {
        let out = run(args);
        let stderr = String::from_utf8_lossy(&out.stderr);
        assert_eq!(out.status.code(), Some(2), "{args:?}: {stderr}");
        assert!(stderr.contains(needle), "{args:?}: {stderr}");
        assert!(!stderr.contains("panicked"), "{stderr}");
        assert!(out.stdout.is_empty());
    }
}

#[test]
fn without_privileges_it_says_what_is_needed_and_exits_1() {
    require_root();
    let out = Command::new("setpriv")
        .args([
            "--reuid=65534",
            "--regid=65534",
            "--clear-groups",
            "--inh-caps=-all",
            BIN,
            "--format",
            "json",
        ])
        .stdin(Stdio::null())
        .output()
        .expect("run setpriv (util-linux)");
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert_eq!(out.status.code(), Some(1), "{stderr}");
    assert_eq!(stderr.lines().count(), 1, "one clear line: {stderr}");
    assert!(
        stderr.contains("needs root")
            && stderr.contains("CAP_BPF")
            && stderr.contains("CAP_PERFMON"),
        "{stderr}"
    );
}

#[test]
fn a_closed_pipe_ends_the_trace_quietly_with_status_0() {
    require_root();
    let child = spawn(Setup {
        handle: &[libc::SIGUSR1],
        ..Setup::default()
    });
    let script = format!(
        "{BIN} --format json --target-pid {} | head -n 1 >/dev/null; echo \"${{PIPESTATUS[0]}}\"",
        child.pid
    );
    let sh = Command::new("bash")
        .args(["-c", &script])
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .expect("bash");
    // Keep signalling until the pipeline is done: the first record closes head, the next write
    // meets the closed pipe.
    let start = Instant::now();
    let mut sh = sh;
    let status = loop {
        if let Some(s) = sh.try_wait().expect("wait") {
            break s;
        }
        assert!(
            start.elapsed() < Duration::from_secs(30),
            "the tracer did not stop at the closed pipe"
        );
        // SAFETY: kill(2) to our own child, which handles SIGUSR1.
        unsafe { libc::kill(child.pid, libc::SIGUSR1) };
        std::thread::sleep(Duration::from_millis(20));
    };
    assert!(status.success());
    let out = sh.wait_with_output().expect("output");
    let stdout = String::from_utf8_lossy(&out.stdout);
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert_eq!(stdout.trim(), "0", "tracer exit status; stderr: {stderr}");
    assert!(
        !stderr.to_lowercase().contains("error") && !stderr.contains("Broken pipe"),
        "{stderr}"
    );
}

#[test]
fn output_file_count_and_duration() {
    require_root();
    let dir = std::env::temp_dir().join(format!("signal-trace-cli-{}", std::process::id()));
    std::fs::create_dir_all(&dir).unwrap();
    let path = dir.join("events.ndjson");
    let _ = std::fs::remove_file(&path);
    let child = spawn(Setup {
        handle: &[libc::SIGUSR1],
        ..Setup::default()
    });
    let mut tracer = Command::new(BIN)
        .args([
            "--target-pid",
            &child.pid.to_string(),
            "--events",
            "generate",
            "--count",
            "3",
        ])
        .arg("--output")
        .arg(&path)
        .stderr(Stdio::piped())
        .spawn()
        .expect("spawn");
    let start = Instant::now();
    let status = loop {
        if let Some(s) = tracer.try_wait().unwrap() {
            break s;
        }
        assert!(
            start.elapsed() < Duration::from_secs(30),
            "--count 3 did not stop the tracer"
        );
        // SAFETY: kill(2) to our own child, which handles SIGUSR1.
        unsafe { libc::kill(child.pid, libc::SIGUSR1) };
        std::thread::sleep(Duration::from_millis(50));
    };
    assert!(status.success());
    let text = std::fs::read_to_string(&path).unwrap();
    assert_eq!(text.lines().count(), 3, "{text}");
    for line in text.lines() {
        let v: serde_json::Value =
            serde_json::from_str(line).expect("json lines in a file by default");
        assert_eq!(v["event"], "generate");
    }
    let mode = std::fs::metadata(&path).unwrap().permissions().mode() & 0o777;
    assert_eq!(mode, 0o640, "output files are created 0640");

    // --duration counts from the moment tracing starts (start-up itself varies with load).
    let mut timed = Command::new(BIN)
        .args([
            "--duration",
            "1.5",
            "--format",
            "text",
            "--events",
            "generate",
        ])
        .stdout(Stdio::null())
        .stderr(Stdio::piped())
        .spawn()
        .expect("spawn");
    let mut err = std::io::BufReader::new(timed.stderr.take().expect("stderr"));
    let mut first = String::new();
    std::io::BufRead::read_line(&mut err, &mut first).expect("read stderr");
    assert!(first.starts_with("signal-trace: tracing"), "{first}");
    let started = Instant::now();
    let status = timed.wait().expect("wait");
    let took = started.elapsed();
    assert!(status.success());
    assert!(
        took >= Duration::from_millis(1450),
        "stopped early: {took:?}"
    );
    assert!(
        took < Duration::from_secs(8),
        "--duration 1.5 did not stop it: {took:?}"
    );
    let _ = std::fs::remove_dir_all(&dir);
}

#[test]
fn text_output_makes_an_ignored_signal_stand_out() {
    require_root();
    let child = spawn(Setup {
        ignore: &[libc::SIGTERM],
        ..Setup::default()
    });
    let mut tracer = Command::new(BIN)
        .args([
            "--format",
            "text",
            "--color",
            "never",
            "--target-pid",
            &child.pid.to_string(),
            "--count",
            "1",
        ])
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .expect("spawn");
    let start = Instant::now();
    loop {
        if tracer.try_wait().unwrap().is_some() {
            break;
        }
        assert!(start.elapsed() < Duration::from_secs(30));
        // SAFETY: kill(2) to our child, which ignores SIGTERM.
        unsafe { libc::kill(child.pid, libc::SIGTERM) };
        std::thread::sleep(Duration::from_millis(100));
    }
    let out = tracer.wait_with_output().unwrap();
    let text = String::from_utf8_lossy(&out.stdout);
    let line = text.lines().next().unwrap_or_default();
    assert!(
        line.contains("SIGTERM") && line.contains("IGNORED: handler is SIG_IGN"),
        "{text}"
    );
    assert!(line.contains(&format!("({})", child.pid)), "{line}");
}
