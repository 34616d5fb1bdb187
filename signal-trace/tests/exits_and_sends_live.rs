//! Live tests of what the records say about process ends and refused sends: one `exit` per
//! process, group-exit deliveries marked as such, signal numbers as the caller passed them,
//! and the two modes of the refused-send watcher. Root, real BPF, real processes.

mod common;

use std::time::{Duration, Instant};

use common::*;
use serde_json::Value;

extern "C" fn spin(_: *mut libc::c_void) -> libc::c_int {
    loop {
        std::hint::spin_loop();
    }
}

/// Forks a process of two threads, both spinning: a second thread made with a raw
/// clone(CLONE_THREAD), and the main thread. Returns when both run. Only async-signal-safe
/// calls in the child (mmap, clone, write).
fn two_threads() -> (Proc, i32) {
    let mut fds = [0; 2];
    // SAFETY: pipe, fork; the child makes only raw syscalls and never returns.
    unsafe {
        assert_eq!(libc::pipe(fds.as_mut_ptr()), 0);
        let pid = libc::fork();
        assert!(pid >= 0, "fork");
        if pid == 0 {
            const STACK: usize = 64 * 1024;
            let stack = libc::mmap(
                std::ptr::null_mut(),
                STACK,
                libc::PROT_READ | libc::PROT_WRITE,
                libc::MAP_PRIVATE | libc::MAP_ANONYMOUS | libc::MAP_STACK,
                -1,
                0,
            );
            if stack == libc::MAP_FAILED {
                libc::_exit(100);
            }
            let flags = libc::CLONE_VM
                | libc::CLONE_FS
                | libc::CLONE_FILES
                | libc::CLONE_SIGHAND
                | libc::CLONE_THREAD
                | libc::CLONE_SYSVSEM;
            let tid = libc::clone(
                spin,
                (stack as *mut u8).add(STACK).cast(),
                flags,
                std::ptr::null_mut(),
            );
            if tid <= 0 {
                libc::_exit(101);
            }
            let t = tid.to_ne_bytes();
            libc::write(fds[1], t.as_ptr().cast(), 4);
            loop {
                std::hint::spin_loop();
            }
        }
        libc::close(fds[1]);
        let mut t = [0u8; 4];
        assert_eq!(
            libc::read(fds[0], t.as_mut_ptr().cast(), 4),
            4,
            "the child reports its second thread"
        );
        libc::close(fds[0]);
        (Proc { pid }, i32::from_ne_bytes(t))
    }
}

fn records_of<'a>(records: &'a [Value], event: &str, pid: i32) -> Vec<&'a Value> {
    records
        .iter()
        .filter(|v| is(v, event) && v["pid"] == pid)
        .collect()
}

/// Waits until `pred` holds for the tracer's records (at most 20 s).
fn wait_until(trace: &Trace, what: &str, pred: impl Fn(&[Value]) -> bool) {
    let start = Instant::now();
    while !pred(&trace.records()) {
        assert!(
            start.elapsed() < Duration::from_secs(20),
            "{what} within 20 s; stderr: {}",
            trace.stderr()
        );
        std::thread::sleep(Duration::from_millis(50));
    }
}

#[test]
fn a_hundred_killed_two_thread_processes_give_a_hundred_exits() {
    // Filtered by comm: only this test thread's processes (forked, they keep its comm).
    let comm = std::fs::read_to_string("/proc/thread-self/comm").expect("own comm");
    let trace = Trace::start(&["--events", "generate,exit", "--comm", comm.trim()]);
    for i in 0..100 {
        // Both threads spin, so that both are on a CPU when the signal lands and exit together:
        // the case where two threads of one process both found it dead.
        let (p, _) = two_threads();
        std::thread::sleep(Duration::from_millis(1));
        let sig = if i % 2 == 0 {
            libc::SIGKILL
        } else {
            libc::SIGTERM
        };
        kill(p.pid, sig);
        let status = p.wait();
        assert!(libc::WIFSIGNALED(status), "process {i} died of its signal");
    }
    wait_until(&trace, "an exit record for every process", |r| {
        r.iter().filter(|v| is(v, "exit")).count() >= 100
    });
    // Late duplicates would come within microseconds; give the reader a moment.
    std::thread::sleep(Duration::from_millis(500));
    let (_, records, _) = trace.stop();
    let exits: Vec<&Value> = records.iter().filter(|v| is(v, "exit")).collect();
    let mut per_pid = std::collections::BTreeMap::<i64, usize>::new();
    for x in &exits {
        *per_pid.entry(int(x, &["pid"])).or_default() += 1;
        assert!(
            x["killed_by"].is_object(),
            "every exit names its killer: {x}"
        );
    }
    let duplicated: Vec<_> = per_pid.iter().filter(|(_, &n)| n > 1).collect();
    assert!(duplicated.is_empty(), "duplicate exits: {duplicated:?}");
    assert_eq!(exits.len(), 100, "exactly one exit per process");
}

#[test]
fn sigterm_of_a_sleep_gives_no_sigkill_delivery_matching_signal_kill() {
    let sleeper = spawn(Setup::default());
    let victim = spawn(Setup::default());
    let (sleeper_pid, victim_pid) = (sleeper.pid, victim.pid);
    let pids = format!("{sleeper_pid},{victim_pid}");
    let trace = Trace::start(&["--pid", &pids, "--signal", "KILL"]);
    kill(sleeper.pid, libc::SIGTERM);
    kill(victim.pid, libc::SIGKILL);
    assert!(libc::WIFSIGNALED(sleeper.wait()));
    assert!(libc::WIFSIGNALED(victim.wait()));
    // The real SIGKILL shows: its delivery is the group-exit path, ended by SIGKILL.
    let d = trace.wait_for("the SIGKILL victim's delivery", |v| {
        is(v, "deliver") && v["pid"] == victim_pid
    });
    assert_eq!(d["cause"], "group_exit", "{d}");
    assert_eq!(d["group_exit_signal"], "SIGKILL", "{d}");
    trace.wait_for("the SIGKILL victim's exit", |v| {
        is(v, "exit") && v["pid"] == victim_pid
    });
    let (_, records, _) = trace.stop();
    let sleeper_records: Vec<_> = records
        .iter()
        .filter(|v| v["pid"] == sleeper_pid || v["target"]["pid"] == sleeper_pid)
        .collect();
    assert!(
        sleeper_records.is_empty(),
        "nothing of the SIGTERM'd sleep matches --signal KILL: {sleeper_records:?}"
    );
}

#[test]
fn sigterm_of_a_sleep_is_a_group_exit_delivery_of_sigterm() {
    let sleeper = spawn(Setup::default());
    let pid = sleeper.pid;
    let trace = Trace::start(&["--pid", &pid.to_string()]);
    kill(pid, libc::SIGTERM);
    assert!(libc::WIFSIGNALED(sleeper.wait()));
    let d = trace.wait_for("the delivery", |v| is(v, "deliver") && v["pid"] == pid);
    // The kernel reports SIGKILL; the record says what it is and what ended the process.
    assert_eq!(d["signal"], "SIGKILL", "{d}");
    assert_eq!(d["cause"], "group_exit", "{d}");
    assert_eq!(d["group_exit_signal"], "SIGTERM", "{d}");
    assert_eq!(d["group_exit_signo"], 15, "{d}");
    // Joined to the SIGTERM's generation: the sender is this test process, on the host.
    assert_eq!(d["sender_pid"], std::process::id(), "{d}");
    assert!(d["claimed_sender_pid"].is_null(), "{d}");
    let schema: Value = serde_json::from_str(include_str!("../../schema/events.schema.json"))
        .expect("schema is JSON");
    let validator = jsonschema::validator_for(&schema).expect("schema compiles");
    let errors: Vec<String> = validator.iter_errors(&d).map(|e| e.to_string()).collect();
    assert!(errors.is_empty(), "{d} fails the schema: {errors:?}");
}

#[test]
fn a_multi_threaded_normal_exit_gives_marked_group_exit_deliveries() {
    // A process of two threads whose main thread calls exit_group(3) when told to.
    let mut fds = [0; 2];
    // SAFETY: pipe(2).
    assert_eq!(unsafe { libc::pipe(fds.as_mut_ptr()) }, 0);
    let (p, tid) = two_threads_exiting_on(fds[0]);
    let trace = Trace::start(&["--pid", &p.pid.to_string()]);
    // SAFETY: write(2) to our pipe.
    assert_eq!(unsafe { libc::write(fds[1], [1u8].as_ptr().cast(), 1) }, 1);
    let status = p.wait();
    assert!(libc::WIFEXITED(status) && libc::WEXITSTATUS(status) == 3);
    let d = trace.wait_for("the other thread's group-exit delivery", |v| {
        is(v, "deliver") && v["tid"] == tid
    });
    assert_eq!(d["cause"], "group_exit", "{d}");
    assert!(
        d["group_exit_signal"].is_null(),
        "no signal ended the process: {d}"
    );
    let (_, records, _) = trace.stop();
    let dequeued: Vec<_> = records_of(&records, "deliver", p_pid(&d))
        .into_iter()
        .filter(|v| v["cause"] != "group_exit")
        .collect();
    assert!(
        dequeued.is_empty(),
        "no signal was sent, so no delivery is a dequeued one: {dequeued:?}"
    );
    // SAFETY: close(2).
    unsafe {
        libc::close(fds[0]);
        libc::close(fds[1]);
    }
}

fn p_pid(d: &Value) -> i32 {
    int(d, &["pid"]) as i32
}

/// Forks a two-thread process whose main thread calls exit_group(3) once `fd` is readable.
fn two_threads_exiting_on(fd: i32) -> (Proc, i32) {
    let mut ready = [0; 2];
    // SAFETY: as in two_threads; the child blocks in read(2), then _exit(2).
    unsafe {
        assert_eq!(libc::pipe(ready.as_mut_ptr()), 0);
        let pid = libc::fork();
        assert!(pid >= 0, "fork");
        if pid == 0 {
            const STACK: usize = 64 * 1024;
            let stack = libc::mmap(
                std::ptr::null_mut(),
                STACK,
                libc::PROT_READ | libc::PROT_WRITE,
                libc::MAP_PRIVATE | libc::MAP_ANONYMOUS | libc::MAP_STACK,
                -1,
                0,
            );
            let flags = libc::CLONE_VM
                | libc::CLONE_FS
                | libc::CLONE_FILES
                | libc::CLONE_SIGHAND
                | libc::CLONE_THREAD
                | libc::CLONE_SYSVSEM;
            let tid = libc::clone(
                spin,
                (stack as *mut u8).add(STACK).cast(),
                flags,
                std::ptr::null_mut(),
            );
            let t = tid.to_ne_bytes();
            libc::write(ready[1], t.as_ptr().cast(), 4);
            let mut b = [0u8; 1];
            libc::read(fd, b.as_mut_ptr().cast(), 1);
            libc::_exit(3);
        }
        libc::close(ready[1]);
        let mut t = [0u8; 4];
        assert_eq!(libc::read(ready[0], t.as_mut_ptr().cast(), 4), 4);
        libc::close(ready[0]);
        (Proc { pid }, i32::from_ne_bytes(t))
    }
}

#[test]
fn invalid_signal_numbers_and_tkill_threads_are_recorded_as_passed() {
    let child = spawn(Setup::default());
    let trace = Trace::start(&[
        "--sender-pid",
        &std::process::id().to_string(),
        "--events",
        "generate,send_failed",
    ]);
    // SAFETY: kill(2) and tkill(2) with invalid signal numbers: refused with EINVAL.
    unsafe {
        assert_eq!(libc::kill(child.pid, -1), -1);
        assert_eq!(libc::kill(child.pid, 65), -1);
        assert_eq!(libc::syscall(libc::SYS_tkill, child.pid, 65), -1);
    }
    let minus_one = trace.wait_for("kill(pid, -1)", |v| {
        is(v, "send_failed") && v["signo"] == -1
    });
    assert_eq!(minus_one["errno"], "EINVAL", "{minus_one}");
    assert!(minus_one["signal"].is_null(), "{minus_one}");
    assert_eq!(minus_one["target_pid"], child.pid, "{minus_one}");
    let big = trace.wait_for("kill(pid, 65)", |v| {
        is(v, "send_failed") && v["signo"] == 65 && v["syscall"] == "kill"
    });
    assert!(big["signal"].is_null(), "{big}");
    let t = trace.wait_for("tkill(tid, 65)", |v| {
        is(v, "send_failed") && v["syscall"] == "tkill"
    });
    assert_eq!(t["target_tid"], child.pid, "{t}");
    assert!(t["target_pid"].is_null(), "tkill names a thread only: {t}");
    assert_eq!(t["signo"], 65, "{t}");
    // The published schema covers what a syscall can carry.
    let schema: Value = serde_json::from_str(include_str!("../../schema/events.schema.json"))
        .expect("schema is JSON");
    let validator = jsonschema::validator_for(&schema).expect("schema compiles");
    for r in [&minus_one, &big, &t] {
        let errors: Vec<String> = validator.iter_errors(r).map(|e| e.to_string()).collect();
        assert!(errors.is_empty(), "{r} fails the schema: {errors:?}");
    }
}

#[test]
fn refused_sends_are_recorded_when_events_name_them() {
    let victim = spawn(Setup::default());
    let trace = Trace::start(&[
        "--target-pid",
        &victim.pid.to_string(),
        "--events",
        "generate,send_failed",
    ]);
    assert!(
        trace.stderr().contains("tracing generate,send_failed"),
        "{}",
        trace.stderr()
    );
    assert_eq!(unprivileged_kill(victim.pid, libc::SIGTERM), libc::EPERM);
    let f = trace.wait_for("the refused send", |v| is(v, "send_failed"));
    assert_eq!(f["errno"], "EPERM", "{f}");
}

#[test]
fn refused_sends_by_default_follow_what_the_kernel_allows() {
    let victim = spawn(Setup::default());
    let trace = Trace::start(&["--target-pid", &victim.pid.to_string()]);
    let stderr = trace.stderr();
    let tracing_line = stderr
        .lines()
        .find(|l| l.contains("Ctrl-C to stop"))
        .expect("the start-up line")
        .to_string();
    assert_eq!(unprivileged_kill(victim.pid, libc::SIGTERM), libc::EPERM);
    if stderr.contains("refused sends") && stderr.contains("are off") {
        // A kernel that refuses the fexit programs (this machine's, locked down): the default
        // leaves the syscall-exit watcher out, and says so, why, and what it would cost.
        assert!(
            !tracing_line.contains("send_failed"),
            "the start-up line claims refused sends: {tracing_line}"
        );
        assert!(
            stderr.contains("every syscall"),
            "the cost is said: {stderr}"
        );
        // Let a record arrive if one were (wrongly) sent.
        kill(victim.pid, libc::SIGUSR1);
        trace.wait_for("the later SIGUSR1", |v| {
            is(v, "generate") && v["signo"] == 10
        });
        let (_, records, _) = trace.stop();
        assert!(
            !records.iter().any(|v| is(v, "send_failed")),
            "refused sends are off: {records:?}"
        );
    } else {
        // fexit programs: refused sends are on by default and cost only the six syscalls.
        assert!(tracing_line.contains("send_failed"), "{tracing_line}");
        let f = trace.wait_for("the refused send", |v| is(v, "send_failed"));
        assert_eq!(f["errno"], "EPERM", "{f}");
    }
}

#[test]
fn failed_says_in_one_line_what_it_cannot_see() {
    let trace = Trace::start(&["--failed"]);
    let stderr = trace.stderr();
    let lines: Vec<_> = stderr.lines().filter(|l| l.contains("--failed")).collect();
    if stderr.contains("are off") {
        assert_eq!(lines.len(), 1, "{stderr}");
        assert!(lines[0].contains("not sends it refused"), "{stderr}");
    } else {
        assert!(lines.is_empty(), "{stderr}");
        assert!(stderr.contains("tracing generate,send_failed"), "{stderr}");
    }
}
