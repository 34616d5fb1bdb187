//! Live tests: a signal's sender is named as it was when it sent — its program, its arguments
//! and who started it — however short-lived it is (a `kill` run by a script has exited long
//! before its record is read), and a process that forked without exec runs its parent's
//! program.

mod common;

use std::path::PathBuf;
use std::process::{Child, Command, Stdio};

use common::*;
use serde_json::Value;

/// A target that takes SIGUSR1 (handled) and lives until dropped: `/bin/sh` trapping it.
struct Target {
    child: Child,
}

impl Target {
    fn start() -> Target {
        let child = Command::new("/bin/sh")
            .args(["-c", "trap 'true' USR1; while true; do sleep 1; done"])
            .stdin(Stdio::null())
            .spawn()
            .expect("start the target shell");
        // Its trap is set once it runs its loop's first sleep.
        let pid = child.id();
        let deadline = std::time::Instant::now() + std::time::Duration::from_secs(10);
        while !std::fs::read_to_string(format!("/proc/{pid}/task/{pid}/children"))
            .is_ok_and(|c| !c.trim().is_empty())
        {
            assert!(
                std::time::Instant::now() < deadline,
                "the target never looped"
            );
            std::thread::sleep(std::time::Duration::from_millis(20));
        }
        Target { child }
    }

    fn pid(&self) -> u32 {
        self.child.id()
    }
}

impl Drop for Target {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

fn script(name: &str, body: &str) -> PathBuf {
    let path = std::env::temp_dir().join(format!("signal-trace-{name}-{}.sh", std::process::id()));
    std::fs::write(&path, body).expect("write the script");
    path
}

fn strings(v: &Value) -> Vec<String> {
    v.as_array()
        .unwrap_or_else(|| panic!("not an array: {v}"))
        .iter()
        .map(|s| s.as_str().unwrap_or_default().to_owned())
        .collect()
}

fn usr1_to(trace: &Trace, target: u32, what: &str) -> Value {
    trace.wait_for(what, |v| {
        is(v, "generate") && v["signal"] == "SIGUSR1" && v["target"]["pid"] == target
    })
}

#[test]
fn a_kill_run_by_a_script_names_its_program_its_arguments_and_the_script_behind_it() {
    let target = Target::start();
    let trace = Trace::start(&["--signal", "USR1", "--events", "generate"]);
    let path = script("stop-app", "#!/bin/sh\n/bin/kill -USR1 \"$1\"\n");
    let mut sh = Command::new("/bin/sh")
        .arg(&path)
        .arg(target.pid().to_string())
        .spawn()
        .expect("run the script");
    let sh_pid = sh.id();
    assert!(sh.wait().expect("wait for the script").success());
    let _ = std::fs::remove_file(&path);

    let g = usr1_to(&trace, target.pid(), "the script's kill");
    let s = &g["sender"];
    // The kill has exited by now; what it was comes from its exec record.
    assert_eq!(s["comm"], "kill", "{g}");
    assert_eq!(s["exe"], "/bin/kill", "{g}");
    assert_eq!(
        strings(&s["args"]),
        ["/bin/kill", "-USR1", &target.pid().to_string()],
        "{g}"
    );
    assert_eq!(s["args_truncated"], false, "{g}");
    let ancestors = s["ancestors"].as_array().expect("ancestors");
    assert_eq!(ancestors[0]["pid"], sh_pid, "{g}");
    assert_eq!(ancestors[0]["exe"], "/bin/sh", "{g}");
    assert_eq!(ancestors[0]["comm"], "sh", "{g}");
    // Then this test process, which ran before the tracer started: named from /proc.
    assert_eq!(ancestors[1]["pid"], std::process::id(), "{g}");
    let me = std::fs::read_link("/proc/self/exe").expect("own exe");
    assert_eq!(ancestors[1]["exe"], me.to_str().unwrap(), "{g}");
    // Up to the host's PID 1, or 8 levels.
    assert!(
        ancestors.len() == 8 || ancestors.last().unwrap()["pid"] == 1,
        "{g}"
    );
    // The target ran before the tracer started: its program is what /proc/PID/exe says
    // (symbolic links resolved, unlike the path an exec opened).
    let target_exe = std::fs::read_link(format!("/proc/{}/exe", target.pid())).unwrap();
    assert_eq!(g["target"]["exe"], target_exe.to_str().unwrap(), "{g}");
    let (_, _, stderr) = trace.stop();
    assert!(!stderr.contains("warning"), "{stderr}");
}

#[test]
fn a_subshell_that_never_execs_runs_its_parents_program() {
    let target = Target::start();
    let trace = Trace::start(&["--signal", "USR1", "--events", "generate"]);
    // bash's kill is a builtin, and ( … ) forks a subshell without exec.
    let mut bash = Command::new("/bin/bash")
        .args([
            "-c",
            &format!("( kill -USR1 {} ); sleep 0.1", target.pid()),
            "stopper",
        ])
        .spawn()
        .expect("run bash");
    let bash_pid = bash.id();
    assert!(bash.wait().expect("wait for bash").success());

    let g = usr1_to(&trace, target.pid(), "the subshell's kill");
    let s = &g["sender"];
    assert_ne!(
        s["pid"], bash_pid,
        "the subshell is a process of its own: {g}"
    );
    assert_eq!(s["exe"], "/bin/bash", "{g}");
    assert_eq!(strings(&s["args"])[0], "/bin/bash", "{g}");
    assert_eq!(s["ancestors"][0]["pid"], bash_pid, "{g}");
    assert_eq!(s["ancestors"][0]["exe"], "/bin/bash", "{g}");
    trace.stop();
}

#[test]
fn without_process_identity_the_ancestors_pids_remain() {
    let target = Target::start();
    let trace = Trace::start(&[
        "--signal",
        "USR1",
        "--events",
        "generate",
        "--no-process-identity",
    ]);
    let mut kill = Command::new("/bin/kill")
        .args(["-USR1", &target.pid().to_string()])
        .spawn()
        .expect("run kill");
    assert!(kill.wait().expect("wait for kill").success());
    let g = usr1_to(&trace, target.pid(), "a kill");
    assert_eq!(g["sender"]["exe"], Value::Null, "{g}");
    assert_eq!(g["sender"]["args"], Value::Null, "{g}");
    assert_eq!(g["target"]["exe"], Value::Null, "{g}");
    assert_eq!(
        g["sender"]["ancestors"][0]["pid"],
        std::process::id(),
        "{g}"
    );
    assert_eq!(g["sender"]["ancestors"][0]["exe"], Value::Null, "{g}");
    trace.stop();
}
