//! Live tests: what a process controls (its name, its arguments, the name of a cgroup it may
//! create) neither reaches the operator's terminal raw nor passes for a container, and inspect
//! reads every process whatever bytes it named itself with.
//!
//! The hostile name `\x1b[2J\x1b]0;x\x07\nFAKE` would clear the screen, set the window title
//! and start a line of its own if printed raw.

mod common;

use std::ffi::OsStr;
use std::io::{BufRead, BufReader, Read, Write};
use std::os::unix::ffi::OsStrExt;
use std::os::unix::process::CommandExt;
use std::path::{Path, PathBuf};
use std::process::{Child, ChildStdin, Command, Stdio};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use common::ctr::*;
use common::*;
use signal_trace::escape::{has_terminal_controls, HOSTILE};

/// The hostile name as the text outputs must show it: escaped once.
const SHOWN: &str = "\\x1b[2J\\x1b]0;x\\x07\\nFAKE";

const PY: &str = "/usr/bin/python3";

/// A Python helper: renames itself to argv[2] (bytes, any), then does argv[1]:
/// `signal` waits for a line on stdin, sends itself SIGUSR1 (handled) and SIGTERM (default:
/// it dies of it); `sleep` sleeps; `parent` forks a child that renames itself to argv[3]
/// and prints the child's pid, then sleeps.
const SCRIPT: &str = r#"
import ctypes, os, signal, sys, time
libc = ctypes.CDLL(None, use_errno=True)
def rename(name):
    if libc.prctl(15, ctypes.c_char_p(os.fsencode(name)), 0, 0, 0) != 0:
        raise OSError(ctypes.get_errno(), "prctl")
mode = sys.argv[1]
if mode == "parent":
    pid = os.fork()
    if pid == 0:
        rename(sys.argv[3])
        time.sleep(120)
        os._exit(0)
    rename(sys.argv[2])
    print(pid, flush=True)
    time.sleep(120)
    sys.exit(0)
rename(sys.argv[2])
signal.signal(signal.SIGUSR1, lambda *_: None)
print("ready", flush=True)
if mode == "signal":
    sys.stdin.readline()
    os.kill(os.getpid(), signal.SIGUSR1)
    time.sleep(0.2)
    os.kill(os.getpid(), signal.SIGTERM)
    time.sleep(5)
else:
    time.sleep(120)
"#;

/// A helper process, killed on drop.
struct Helper {
    child: Child,
    stdin: Option<ChildStdin>,
    /// The first line it printed.
    first: String,
}

impl Helper {
    /// Runs the helper as `sh -c 'echo $$ > CGROUP.procs; exec python3 …'` when `cgroup` is
    /// given, else directly; `argv0` and the other arguments may hold any bytes.
    fn start(mode: &str, name: &[u8], extra: &[&[u8]], cgroup: Option<&Path>) -> Helper {
        let mut cmd = match cgroup {
            Some(dir) => {
                let mut c = Command::new("sh");
                c.arg("-c")
                    .arg(format!(
                        "echo $$ > {}/cgroup.procs && exec \"$@\"",
                        dir.display()
                    ))
                    .arg("sh")
                    .arg(PY);
                c
            }
            None => {
                let mut c = Command::new(PY);
                // A hostile argv[0] too.
                c.arg0(HOSTILE);
                c
            }
        };
        cmd.arg("-c")
            .arg(SCRIPT)
            .arg(mode)
            .arg(OsStr::from_bytes(name));
        for e in extra {
            cmd.arg(OsStr::from_bytes(e));
        }
        let mut child = cmd
            .stdin(Stdio::piped())
            .stdout(Stdio::piped())
            .spawn()
            .expect("run python3");
        let stdin = child.stdin.take();
        let mut first = String::new();
        BufReader::new(child.stdout.take().unwrap())
            .read_line(&mut first)
            .expect("helper output");
        assert!(!first.is_empty(), "the helper did not start");
        Helper {
            child,
            stdin,
            first: first.trim().to_owned(),
        }
    }

    fn pid(&self) -> i32 {
        self.child.id() as i32
    }

    fn go(&mut self) {
        writeln!(self.stdin.as_mut().unwrap(), "go").expect("tell the helper to go");
    }
}

impl Drop for Helper {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

/// No byte a terminal acts on (newlines between lines allowed), and no line that the name
/// started.
fn assert_clean(what: &str, out: &[u8]) {
    let text = String::from_utf8_lossy(out);
    assert!(!has_terminal_controls(out, true), "{what}: {text:?}");
    assert!(
        !text.lines().any(|l| l.trim_start().starts_with("FAKE")),
        "{what}: {text}"
    );
}

/// Runs the tracer in text mode with `args`, does `act` once it is attached, and returns its
/// stdout and stderr after a SIGINT.
fn trace_text(args: &[&str], act: impl FnOnce()) -> (Vec<u8>, Vec<u8>) {
    require_root();
    let mut child = Command::new(BIN)
        .args(["--format", "text", "--color", "never"])
        .args(args)
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .expect("spawn signal-trace");
    let err = Arc::new(Mutex::new(Vec::new()));
    let mut stderr = child.stderr.take().unwrap();
    let e = err.clone();
    let reader = std::thread::spawn(move || {
        let mut buf = [0u8; 4096];
        while let Ok(n) = stderr.read(&mut buf) {
            if n == 0 {
                break;
            }
            e.lock().unwrap().extend_from_slice(&buf[..n]);
        }
    });
    let mut stdout = child.stdout.take().unwrap();
    let out_reader = std::thread::spawn(move || {
        let mut out = Vec::new();
        let _ = stdout.read_to_end(&mut out);
        out
    });
    let start = Instant::now();
    while !String::from_utf8_lossy(&err.lock().unwrap()).contains("Ctrl-C to stop") {
        assert!(
            start.elapsed() < Duration::from_secs(30),
            "tracer did not attach: {}",
            String::from_utf8_lossy(&err.lock().unwrap())
        );
        std::thread::sleep(Duration::from_millis(20));
    }
    act();
    std::thread::sleep(Duration::from_millis(1500));
    // SAFETY: kill(2) on our own child.
    unsafe { libc::kill(child.id() as i32, libc::SIGINT) };
    let status = child.wait().expect("wait for the tracer");
    let out = out_reader.join().unwrap();
    reader.join().unwrap();
    let err = err.lock().unwrap().clone();
    assert!(
        status.success(),
        "tracer failed: {status:?}: {}",
        String::from_utf8_lossy(&err)
    );
    (out, err)
}

#[test]
fn a_hostile_name_in_a_live_trace_is_shown_escaped_on_one_line() {
    let mut h = Helper::start("signal", HOSTILE.as_bytes(), &[], None);
    let pid = h.pid().to_string();
    let (out, err) = trace_text(&["--pid", &pid], || h.go());
    assert_clean("trace text", &out);
    assert_clean("trace stderr", &err);
    let text = String::from_utf8_lossy(&out);
    let lines: Vec<&str> = text.lines().collect();
    // USR1 generated and delivered, TERM generated, the exit: one line each.
    assert!(lines.len() >= 4, "{text}");
    let usr1 = lines
        .iter()
        .find(|l| l.contains("SIGUSR1") && l.contains(" signal "))
        .unwrap_or_else(|| panic!("no SIGUSR1 line in {text}"));
    assert!(
        usr1.contains(&format!("{SHOWN}({pid})[uid 0] → {SHOWN}({pid})")),
        "{usr1}"
    );
    let exit = lines
        .iter()
        .find(|l| l.contains(" exit ") && !l.contains(" group exit "))
        .unwrap_or_else(|| panic!("no exit line in {text}"));
    assert!(exit.contains(&format!("{SHOWN}({pid})")), "{exit}");
    assert!(exit.contains("killed by SIGTERM"), "{exit}");
}

#[test]
fn a_hostile_name_in_a_live_summary_is_shown_escaped() {
    let mut h = Helper::start("signal", HOSTILE.as_bytes(), &[], None);
    let pid = h.pid().to_string();
    let (out, err) = trace_text(&["--pid", &pid, "--summary", "1"], || h.go());
    assert_clean("summary", &out);
    assert_clean("summary stderr", &err);
    let text = String::from_utf8_lossy(&out);
    assert!(text.contains("summary "), "{text}");
    assert!(
        text.contains(&format!("{SHOWN}({pid}) → {SHOWN}({pid})")),
        "{text}"
    );
}

#[test]
fn inspect_shows_a_hostile_comm_and_argv_escaped() {
    require_root();
    let h = Helper::start(
        "sleep",
        HOSTILE.as_bytes(),
        &[HOSTILE.as_bytes(), b"flags:    none", b"\x9b31m\xff"],
        None,
    );
    let out = Command::new(BIN)
        .args(["inspect", &h.pid().to_string()])
        .output()
        .expect("run inspect");
    assert!(out.status.success(), "{out:?}");
    assert_clean("inspect", &out.stdout);
    let text = String::from_utf8_lossy(&out.stdout);
    assert!(
        text.starts_with(&format!("pid {} ({SHOWN})  state ", h.pid())),
        "{text}"
    );
    assert!(
        text.contains(&format!(
            "  cmdline:  {SHOWN} -c {}",
            signal_trace::escape::escape(SCRIPT)
        )),
        "{text}"
    );
    assert!(
        text.contains(&format!(
            "sleep {SHOWN} {SHOWN} flags:    none \\x9b31m\\xff\n"
        )),
        "{text}"
    );
    // The only line that starts with the flags heading is inspect's own.
    assert_eq!(
        text.lines()
            .filter(|l| l.trim_start().starts_with("flags:"))
            .count(),
        1,
        "{text}"
    );
}

/// The NDJSON fixture with every comm, container name, code, sender program and argument
/// replaced by the hostile name.
fn hostile_fixture(name: &str) -> String {
    let path = format!(
        "{}/tests/fixtures/explain/{name}.ndjson",
        env!("CARGO_MANIFEST_DIR")
    );
    let mut text = std::fs::read_to_string(&path).expect("fixture");
    let hostile = serde_json::to_string(HOSTILE).unwrap();
    for field in ["comm", "name", "pod", "namespace", "code"] {
        let key = format!("\"{field}\":\"");
        let mut out = String::new();
        let mut rest = text.as_str();
        while let Some(i) = rest.find(&key) {
            let after = &rest[i + key.len()..];
            let end = after.find('"').unwrap();
            out.push_str(&rest[..i]);
            out.push_str(&format!("\"{field}\":{hostile}"));
            rest = &after[end + 1..];
        }
        out.push_str(rest);
        text = out;
    }
    // And every sender's program, arguments and ancestors (which evidence shows).
    text.replace(
        "\"sender\":{",
        &format!(
            "\"sender\":{{\"exe\":{hostile},\"args\":[{hostile},\"-x\"],\"ancestors\":[{{\"pid\":5,\"comm\":{hostile},\"exe\":{hostile}}},{{\"pid\":1,\"comm\":null,\"exe\":{hostile}}}],"
        ),
    )
}

fn temp_file(name: &str, bytes: &[u8]) -> PathBuf {
    let path = std::env::temp_dir().join(format!("signal-trace-{name}-{}", std::process::id()));
    std::fs::write(&path, bytes).expect("write the replay file");
    path
}

#[test]
fn explain_of_a_replayed_file_with_hostile_strings_is_escaped() {
    let mut input = hostile_fixture("not_forwarded");
    input.push_str(&hostile_fixture("signal_death"));
    let path = temp_file("hostile-replay", input.as_bytes());
    let out = Command::new(BIN)
        .args(["explain", "--format", "text", "--timeline", "--from"])
        .arg(&path)
        .output()
        .expect("run explain");
    let _ = std::fs::remove_file(&path);
    assert!(out.status.success(), "{out:?}");
    assert_clean("explain", &out.stdout);
    assert_clean("explain stderr", &out.stderr);
    let text = String::from_utf8_lossy(&out.stdout);
    assert!(text.contains("not_forwarded"), "{text}");
    assert!(text.contains("shutdown of "), "{text}");
    assert!(text.matches(SHOWN).count() >= 10, "{text}");
}

#[test]
fn a_bad_replay_line_is_reported_escaped_on_stderr() {
    let mut input = hostile_fixture("healthy_shutdown").into_bytes();
    // serde quotes an unknown variant back; a line of raw control bytes; a non-UTF-8 name.
    input.extend_from_slice(
        format!(
            "{{\"event\":{}}}\n",
            serde_json::to_string(&format!("{HOSTILE}\u{9b}")).unwrap()
        )
        .as_bytes(),
    );
    input.extend_from_slice(b"\x1b[2J\x1b]0;x\x07 not json\n");
    let path = temp_file("hostile-bad-\x1b[2J", &input);
    let out = Command::new(BIN)
        .args(["explain", "--format", "text", "--from"])
        .arg(&path)
        .output()
        .expect("run explain");
    let _ = std::fs::remove_file(&path);
    assert_eq!(out.status.code(), Some(1), "{out:?}");
    assert_clean("stderr", &out.stderr);
    let err = String::from_utf8_lossy(&out.stderr);
    assert!(
        err.matches("not a signal-trace record").count() >= 2,
        "{err}"
    );
    assert!(
        err.contains("\\x1b[2J\\x1b]0;x\\x07\\nFAKE\\xc2\\x9b"),
        "{err}"
    );
    assert!(err.contains("hostile-bad-\\x1b[2J"), "the path too: {err}");
}

/// A cgroup directory (and its missing parents) under the cgroup2 root, removed on drop
/// (leaf first) once the processes in it are gone.
struct CgroupTree {
    created: Vec<PathBuf>,
    leaf: PathBuf,
}

impl CgroupTree {
    fn new(root: &Path, rel: &str) -> CgroupTree {
        let mut created = Vec::new();
        let mut dir = root.to_path_buf();
        for comp in rel.split('/').filter(|c| !c.is_empty()) {
            dir.push(comp);
            if !dir.exists() {
                std::fs::create_dir(&dir)
                    .unwrap_or_else(|e| panic!("mkdir {}: {e}", dir.display()));
                created.push(dir.clone());
            }
        }
        CgroupTree { created, leaf: dir }
    }
}

impl Drop for CgroupTree {
    fn drop(&mut self) {
        for dir in self.created.iter().rev() {
            for _ in 0..100 {
                if std::fs::remove_dir(dir).is_ok() {
                    break;
                }
                std::thread::sleep(Duration::from_millis(20));
            }
        }
    }
}

fn inspect_json(args: &[&str]) -> (std::process::Output, Vec<serde_json::Value>) {
    let out = Command::new(BIN)
        .arg("inspect")
        .args(args)
        .args(["--format", "json"])
        .output()
        .expect("run inspect");
    let reports = String::from_utf8_lossy(&out.stdout)
        .lines()
        .map(|l| serde_json::from_str(l).expect("a JSON report"))
        .collect();
    (out, reports)
}

#[test]
fn a_non_utf8_comm_fails_neither_its_container_nor_its_pod_nor_hides_from_its_parent() {
    require_root();
    let id = random_hex(32);
    let uid = random_uuid();
    let cg = Cgroup2::new();
    let tree = CgroupTree::new(
        &cg.root,
        &format!(
            "kubepods.slice/kubepods-pod{}.slice/cri-containerd-{id}.scope",
            uid.replace('-', "_")
        ),
    );
    let parent = Helper::start("parent", b"app", &[b"worker\xff"], Some(&tree.leaf));
    let child: i32 = parent.first.parse().expect("the child's pid");
    // The child has renamed itself once its status says so.
    let status = format!("/proc/{child}/status");
    let start = Instant::now();
    while !std::fs::read(&status)
        .unwrap_or_default()
        .windows(7)
        .any(|w| w == b"worker\xff")
    {
        assert!(start.elapsed() < Duration::from_secs(10), "no rename");
        std::thread::sleep(Duration::from_millis(20));
    }
    for args in [vec!["--container", &id[..12]], vec!["--pod", &uid[..8]]] {
        let (out, reports) = inspect_json(&args);
        assert!(out.status.success(), "{args:?}: {out:?}");
        let pids: Vec<i64> = reports.iter().map(|r| r["pid"].as_i64().unwrap()).collect();
        assert_eq!(pids, vec![parent.pid() as i64, child as i64], "{args:?}");
        let p = &reports[0];
        assert_eq!(p["children"].as_array().unwrap().len(), 1, "{p}");
        assert_eq!(p["children"][0]["comm"], "worker\u{fffd}", "{p}");
        assert_eq!(reports[1]["comm"], "worker\u{fffd}", "{}", reports[1]);
        assert_eq!(reports[1]["container"]["id"], id.as_str(), "{}", reports[1]);
    }
    let out = Command::new(BIN)
        .args(["inspect", &parent.pid().to_string()])
        .output()
        .expect("run inspect");
    assert!(out.status.success(), "{out:?}");
    let text = String::from_utf8_lossy(&out.stdout);
    assert!(text.contains("  children: 1\n"), "{text}");
    assert!(
        text.contains(&format!("    {child} (worker\\xff)  ")),
        "{text}"
    );
    drop(parent);
    // SAFETY: kill(2) of the orphaned child.
    unsafe { libc::kill(child, libc::SIGKILL) };
}

struct Pod {
    name: String,
    uid: String,
}

impl Pod {
    fn start(&self) -> TestContainer {
        require_containerd();
        TestContainer::start_with(
            &[
                ("io.kubernetes.pod.name", &self.name),
                ("io.kubernetes.pod.namespace", "shop"),
                ("io.kubernetes.container.name", "web"),
            ],
            Some(&format!("/kubepods/besteffort/pod{}/{{id}}", self.uid)),
            "sleep 1000",
        )
    }
}

#[test]
fn a_delegated_cgroup_named_like_a_real_pod_container_is_no_container() {
    let pod = Pod {
        name: format!("web-{}", random_hex(4)),
        uid: random_uuid(),
    };
    let real = pod.start();
    let cg = Cgroup2::new();
    let delegated = "user.slice/user-1000.slice/user@1000.service/app.slice";
    // Both shapes a user may copy: the systemd driver's scope and the cgroupfs driver's path.
    let scope = CgroupTree::new(
        &cg.root,
        &format!("{delegated}/cri-containerd-{}.scope", real.id),
    );
    let kube = CgroupTree::new(
        &cg.root,
        &format!("{delegated}/kubepods/besteffort/pod{}/{}", pod.uid, real.id),
    );
    let spoofs = [
        Helper::start("sleep", b"kubelet", &[], Some(&scope.leaf)),
        Helper::start("sleep", b"kubelet", &[], Some(&kube.leaf)),
    ];
    let spoof_pids: Vec<String> = spoofs.iter().map(|s| s.pid().to_string()).collect();
    let init = real.pid();

    // A tracer for the pod sees the real container's signal and nothing of the spoofs.
    let by_pod = Trace::start(&[
        "--pod",
        &pod.name,
        "--signal",
        "WINCH",
        "--containerd-socket",
        SOCKET,
    ]);
    // A tracer for the spoofs sees them, in no container.
    let mut targets = spoof_pids.join(",");
    targets.push_str(&format!(",{init}"));
    let by_pid = Trace::start(&["--target-pid", &targets, "--signal", "WINCH"]);
    for s in &spoofs {
        kill(s.pid(), libc::SIGWINCH);
    }
    kill(init, libc::SIGWINCH);
    let g = by_pod.wait_for("SIGWINCH to the real container", |v| {
        is(v, "generate") && v["target"]["pid"] == init
    });
    assert_eq!(g["target"]["container"]["pod"], pod.name.as_str(), "{g}");
    for s in &spoofs {
        let g = by_pid.wait_for("SIGWINCH to a spoof", |v| {
            is(v, "generate") && v["target"]["pid"] == s.pid()
        });
        assert!(g["target"]["container"].is_null(), "named: {g}");
        assert_eq!(g["target"]["comm"], "kubelet", "{g}");
    }
    std::thread::sleep(Duration::from_millis(300));
    let (_, records, _) = by_pod.stop();
    for s in &spoofs {
        assert!(
            !records.iter().any(|v| v["target"]["pid"] == s.pid()),
            "the pod filter let a spoof through: {records:?}"
        );
    }
    by_pid.stop();

    // inspect: the pod (by uid) is the real container alone; a spoof has no container.
    let (out, reports) = inspect_json(&["--pod", &pod.uid]);
    assert!(out.status.success(), "{out:?}");
    let pids: Vec<i64> = reports.iter().map(|r| r["pid"].as_i64().unwrap()).collect();
    for s in &spoofs {
        assert!(!pids.contains(&(s.pid() as i64)), "{pids:?}");
    }
    assert!(pids.contains(&(init as i64)), "{pids:?}");
    for s in &spoofs {
        let (out, reports) = inspect_json(&[&s.pid().to_string()]);
        assert!(out.status.success(), "{out:?}");
        assert!(reports[0]["container"].is_null(), "{}", reports[0]);
    }
}
