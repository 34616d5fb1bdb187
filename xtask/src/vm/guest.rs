//! The live checks that `vm-test` runs inside each test kernel, and natively on the host: the
//! real tracer binary against real processes, as in signal-trace/tests/live.rs, with only what a
//! busybox initramfs offers (busybox `unshare` and `sleep`, no python, no util-linux).
//!
//! Every line meant for the host starts with [`TAG`]; the last one is `VMTEST PASS` or
//! `VMTEST FAIL`.

use std::io::{BufRead, BufReader, Read};
use std::path::{Path, PathBuf};
use std::process::{Child, Command, ExitStatus, Stdio};
use std::sync::{Arc, Mutex};
use std::thread::JoinHandle;
use std::time::{Duration, Instant};

use anyhow::{anyhow, bail, ensure, Context as _};
use serde_json::Value;

/// Prefix of every line the host reads back.
pub const TAG: &str = "VMTEST";

/// How long a tracer may take to load and attach; software emulation is slow.
const START_TIMEOUT: Duration = Duration::from_secs(120);
/// How long a record may take to arrive after the signal that causes it.
const RECORD_TIMEOUT: Duration = Duration::from_secs(30);
/// The tracer must stop this fast after SIGINT or SIGTERM (the host live tests use 2 s too).
const STOP_LIMIT: Duration = Duration::from_secs(2);

type Check = fn(&Guest) -> anyhow::Result<()>;

const CHECKS: &[(&str, Check)] = &[
    (
        "namespace_init_ignores_sigterm",
        namespace_init_ignores_sigterm,
    ),
    ("handler_delivery", handler_delivery),
    ("sender_identity", sender_identity),
    ("blocked_signal_merged", blocked_signal_merged),
    ("sigkill_exit_137", sigkill_exit_137),
    ("one_exit_per_process", one_exit_per_process),
    ("failed_sends", failed_sends),
    ("sigqueue_si_queue", sigqueue_si_queue),
    ("lost_events_counted", lost_events_counted),
    ("stoppable_once_tracing", stoppable_once_tracing),
    ("clean_stop", clean_stop),
    ("reduced_mode_without_btf", reduced_mode_without_btf),
];

/// Names of the checks, in the order they run.
pub fn check_names() -> impl Iterator<Item = &'static str> {
    CHECKS.iter().map(|(name, _)| *name)
}

struct Guest {
    tracer: PathBuf,
    /// Time spent waiting for tracers to attach, for the per-check report.
    starting: std::cell::Cell<Duration>,
}

/// Runs every check (or those named in `only`), printing one line per check and the verdict.
pub fn run(tracer: &Path, only: &[String]) -> anyhow::Result<()> {
    ensure!(tracer.is_file(), "no tracer binary at {}", tracer.display());
    for name in only {
        ensure!(
            check_names().any(|n| n == name),
            "no check named {name:?} (checks: {})",
            check_names().collect::<Vec<_>>().join(", ")
        );
    }
    // SAFETY: geteuid has no preconditions.
    ensure!(
        unsafe { libc::geteuid() } == 0,
        "the checks load BPF programs: run them as root"
    );
    let guest = Guest {
        tracer: tracer.to_path_buf(),
        starting: Default::default(),
    };
    println!("{TAG} kernel {}", kernel_release());
    let mut failed = Vec::new();
    for (name, check) in CHECKS {
        if !only.is_empty() && !only.iter().any(|o| o == name) {
            continue;
        }
        let start = Instant::now();
        guest.starting.set(Duration::ZERO);
        let result = check(&guest);
        let secs = start.elapsed().as_secs_f64();
        let starting = guest.starting.get().as_secs_f64();
        match result {
            Ok(()) => println!("{TAG} ok {name} ({secs:.1} s, tracer start {starting:.1} s)"),
            Err(e) => {
                println!("{TAG} FAIL {name} ({secs:.1} s, tracer start {starting:.1} s): {e:#}");
                failed.push(*name);
            }
        }
    }
    if failed.is_empty() {
        println!("{TAG} PASS");
        Ok(())
    } else {
        println!("{TAG} FAIL");
        bail!("failed checks: {}", failed.join(", "))
    }
}

fn kernel_release() -> String {
    std::fs::read_to_string("/proc/sys/kernel/osrelease")
        .map(|s| s.trim().to_string())
        .unwrap_or_else(|_| "unknown".into())
}

// ---------------------------------------------------------------------------------------------
// The checks.

fn generate_for(v: &Value, pid: i32, signo: i64) -> bool {
    is(v, "generate") && v["target"]["pid"] == pid && v["signo"] == signo
}

fn namespace_init_ignores_sigterm(g: &Guest) -> anyhow::Result<()> {
    let ns = NsInit::start()?;
    let trace = Trace::start(g, &["--target-pid", &ns.init.to_string()])?;
    ensure!(
        trace.stderr().contains("full mode"),
        "the tracer did not start in full mode (no BTF?): {}",
        trace.stderr()
    );
    kill(ns.init, libc::SIGTERM)?;
    let gen = trace.wait_for("SIGTERM to the namespace init", |v| {
        generate_for(v, ns.init, 15)
    })?;
    expect(&gen, "result", "ignored")?;
    expect(&gen, "reason", "pid_namespace_init")?;
    expect(&gen, "target.ns_pid", 1)?;
    expect(&gen, "target.disposition", "default")?;
    expect(&gen, "target.comm", "sleep")?;
    expect(&gen, "code", "SI_USER")?;
    expect(&gen, "sender.pid", std::process::id())?;
    // SIGKILL from an ancestor namespace is not ignored, and the init dies with 137.
    kill(ns.init, libc::SIGKILL)?;
    let k = trace.wait_for("SIGKILL to the namespace init", |v| {
        generate_for(v, ns.init, 9)
    })?;
    expect(&k, "result", "delivered")?;
    let x = trace.wait_for("exit of the namespace init", |v| {
        is(v, "exit") && v["pid"] == ns.init
    })?;
    expect(&x, "exit_code", 137)?;
    trace.stop()?;
    Ok(())
}

fn handler_delivery(g: &Guest) -> anyhow::Result<()> {
    let child = spawn(Setup {
        handle: &[libc::SIGUSR1],
        ..Setup::default()
    })?;
    let trace = Trace::start(g, &["--target-pid", &child.pid.to_string()])?;
    kill(child.pid, libc::SIGUSR1)?;
    let gen = trace.wait_for("SIGUSR1 generate", |v| generate_for(v, child.pid, 10))?;
    expect(&gen, "result", "delivered")?;
    expect(&gen, "target.disposition", "handler")?;
    expect(&gen, "target.blocked", false)?;
    let handler = field(&gen, "target.handler")
        .as_str()
        .filter(|h| h.starts_with("0x"))
        .ok_or_else(|| anyhow!("target.handler is not an address in {gen}"))?
        .to_string();
    let d = trace.wait_for("SIGUSR1 deliver", |v| {
        is(v, "deliver") && v["pid"] == child.pid && v["signo"] == 10
    })?;
    expect(&d, "handler", handler.as_str())?;
    expect(&d, "code", "SI_USER")?;
    expect(&d, "sender_pid", std::process::id())?;
    let latency = int(&d, "latency_ns")?;
    ensure!(
        latency > 0 && latency < 30_000_000_000,
        "latency_ns out of range in {d}"
    );
    ensure!(
        int(&d, "sa_flags")? & i64::from(libc::SA_RESTART) != 0,
        "sa_flags lacks SA_RESTART in {d}"
    );
    trace.stop()?;
    Ok(())
}

/// The sender's program, arguments and parent: a shell exec'd after the tracer started (its
/// exec record), whose parent is this process (named from /proc, and found through the
/// kernel's real_parent chain).
fn sender_identity(g: &Guest) -> anyhow::Result<()> {
    let child = spawn(Setup {
        handle: &[libc::SIGUSR1],
        ..Setup::default()
    })?;
    let trace = Trace::start(
        g,
        &[
            "--target-pid",
            &child.pid.to_string(),
            "--events",
            "generate",
        ],
    )?;
    // The shell's kill is a builtin: the shell itself sends.
    let status = Command::new("sh")
        .args(["-c", &format!("kill -USR1 {}", child.pid), "stopper"])
        .status()
        .context("run sh")?;
    ensure!(status.success(), "sh -c kill: {status}");
    let gen = trace.wait_for("SIGUSR1 from a shell", |v| generate_for(v, child.pid, 10))?;
    let sender = &gen["sender"];
    let exe = sender["exe"].as_str().unwrap_or_default();
    ensure!(
        exe.ends_with("/sh"),
        "sender.exe is {exe:?}, not a shell, in {gen}"
    );
    ensure!(sender["args"][1] == "-c", "sender.args lacks -c in {gen}");
    let parent = &sender["ancestors"][0];
    expect(parent, "pid", std::process::id())?;
    let me = std::fs::read_link("/proc/self/exe").context("read /proc/self/exe")?;
    expect(parent, "exe", me.to_string_lossy().as_ref())?;
    trace.stop()?;
    Ok(())
}

fn blocked_signal_merged(g: &Guest) -> anyhow::Result<()> {
    let child = spawn(Setup {
        block: &[libc::SIGUSR2],
        ..Setup::default()
    })?;
    let pid = child.pid.to_string();
    let trace = Trace::start(g, &["--target-pid", &pid, "--signal", "USR2"])?;
    kill(child.pid, libc::SIGUSR2)?;
    kill(child.pid, libc::SIGUSR2)?;
    trace.wait_for("the second SIGUSR2", |v| {
        generate_for(v, child.pid, 12) && v["result"] == "already_pending"
    })?;
    let stopped = trace.stop()?;
    let gens: Vec<_> = stopped
        .records
        .iter()
        .filter(|v| generate_for(v, child.pid, 12))
        .collect();
    ensure!(gens.len() == 2, "expected 2 generate records: {gens:?}");
    expect(gens[0], "result", "delivered")?;
    expect(gens[0], "target.blocked", true)?;
    expect(gens[1], "result", "already_pending")?;
    ensure!(
        !stopped
            .records
            .iter()
            .any(|v| is(v, "deliver") && v["pid"] == child.pid),
        "a blocked signal was delivered: {:?}",
        stopped.records
    );
    Ok(())
}

fn sigkill_exit_137(g: &Guest) -> anyhow::Result<()> {
    let child = spawn(Setup::default())?;
    let trace = Trace::start(g, &["--pid", &child.pid.to_string()])?;
    kill(child.pid, libc::SIGKILL)?;
    let x = trace.wait_for("the exit", |v| is(v, "exit") && v["pid"] == child.pid)?;
    expect(&x, "exit_code", 137)?;
    expect(&x, "signal", "SIGKILL")?;
    expect(&x, "core_dumped", false)?;
    expect(&x, "killed_by.pid", std::process::id())?;
    expect(&x, "killed_by.signal", "SIGKILL")?;
    let status = child.wait();
    ensure!(
        libc::WIFSIGNALED(status) && libc::WTERMSIG(status) == libc::SIGKILL,
        "the child's wait status is {status:#x}"
    );
    trace.stop()?;
    Ok(())
}

extern "C" fn spin(_: *mut libc::c_void) -> libc::c_int {
    loop {
        std::hint::spin_loop();
    }
}

/// Forks a process of two spinning threads (the second from a raw clone(CLONE_THREAD)); returns
/// once both run. The child makes only raw syscalls.
fn two_threads() -> anyhow::Result<Proc> {
    let mut fds = [0; 2];
    // SAFETY: pipe, fork; the child makes only raw syscalls and never returns.
    unsafe {
        ensure!(libc::pipe(fds.as_mut_ptr()) == 0, "pipe");
        let pid = libc::fork();
        ensure!(pid >= 0, "fork");
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
            if libc::clone(
                spin,
                (stack as *mut u8).add(STACK).cast(),
                flags,
                std::ptr::null_mut(),
            ) <= 0
            {
                libc::_exit(101);
            }
            libc::write(fds[1], [1u8].as_ptr().cast(), 1);
            loop {
                std::hint::spin_loop();
            }
        }
        libc::close(fds[1]);
        let mut b = [0u8; 1];
        let n = libc::read(fds[0], b.as_mut_ptr().cast(), 1);
        libc::close(fds[0]);
        ensure!(n == 1, "the two-thread child did not get ready");
        Ok(Proc { pid })
    }
}

/// One exit record per process, whichever exit program this kernel takes (the tracepoint's
/// group_dead since 6.16, the live count and a per-process key before); the start-up lines are
/// printed for the log (which refused-send watcher, if any, this kernel allows).
fn one_exit_per_process(g: &Guest) -> anyhow::Result<()> {
    let comm = std::fs::read_to_string("/proc/thread-self/comm")?;
    let trace = Trace::start(g, &["--events", "generate,exit", "--comm", comm.trim()])?;
    for line in trace.stderr().lines() {
        println!("{TAG} info {line}");
    }
    const N: usize = 20;
    for i in 0..N {
        let p = two_threads()?;
        std::thread::sleep(Duration::from_millis(1));
        kill(
            p.pid,
            if i % 2 == 0 {
                libc::SIGKILL
            } else {
                libc::SIGTERM
            },
        )?;
        let status = p.wait();
        ensure!(
            libc::WIFSIGNALED(status),
            "process {i}: wait status {status:#x}"
        );
    }
    let start = Instant::now();
    while trace.records().iter().filter(|v| is(v, "exit")).count() < N {
        ensure!(
            start.elapsed() < RECORD_TIMEOUT,
            "fewer than {N} exits within {RECORD_TIMEOUT:?}: {:?}",
            trace.records()
        );
        std::thread::sleep(Duration::from_millis(50));
    }
    std::thread::sleep(Duration::from_millis(500));
    let stopped = trace.stop()?;
    let exits: Vec<_> = stopped.records.iter().filter(|v| is(v, "exit")).collect();
    let mut pids: Vec<_> = exits.iter().map(|v| v["pid"].clone().to_string()).collect();
    pids.sort();
    pids.dedup();
    ensure!(
        exits.len() == N && pids.len() == N,
        "{} exit records for {} processes (want {N} and {N}): {exits:?}",
        exits.len(),
        pids.len()
    );
    for x in &exits {
        ensure!(
            x["killed_by"].is_object(),
            "an exit without its killer: {x}"
        );
    }
    Ok(())
}

fn failed_sends(g: &Guest) -> anyhow::Result<()> {
    let victim = spawn(Setup::default())?;
    let ghost = unused_pid()?;
    let trace = Trace::start(
        g,
        &[
            "--target-pid",
            &format!("{},{ghost}", victim.pid),
            "--events",
            "send_failed,generate",
        ],
    )?;
    for line in trace.stderr().lines() {
        println!("{TAG} info {line}");
    }
    let errno = unprivileged_kill(victim.pid, libc::SIGTERM)?;
    ensure!(
        errno == libc::EPERM,
        "an unprivileged kill of a root process returned errno {errno}, not EPERM"
    );
    let f = trace.wait_for("the EPERM send_failed", |v| {
        is(v, "send_failed") && v["target_pid"] == victim.pid
    })?;
    expect(&f, "errno", "EPERM")?;
    expect(&f, "syscall", "kill")?;
    expect(&f, "signal", "SIGTERM")?;
    expect(&f, "sender.uid", 65534)?;
    // SAFETY: kill(2) of a pid that names no process.
    let rc = unsafe { libc::kill(ghost, libc::SIGTERM) };
    let err = std::io::Error::last_os_error().raw_os_error();
    ensure!(
        rc == -1 && err == Some(libc::ESRCH),
        "kill of the unused pid {ghost} returned {rc} ({err:?}), not ESRCH"
    );
    let f = trace.wait_for("the ESRCH send_failed", |v| {
        is(v, "send_failed") && v["target_pid"] == ghost
    })?;
    expect(&f, "errno", "ESRCH")?;
    expect(&f, "syscall", "kill")?;
    expect(&f, "sender.pid", std::process::id())?;
    let stopped = trace.stop()?;
    ensure!(
        !stopped.records.iter().any(|v| is(v, "generate")),
        "a refused send generated a signal: {:?}",
        stopped.records
    );
    Ok(())
}

fn sigqueue_si_queue(g: &Guest) -> anyhow::Result<()> {
    let rt = libc::SIGRTMIN() + 1;
    let child = spawn(Setup {
        handle: &[rt],
        ..Setup::default()
    })?;
    let trace = Trace::start(g, &["--target-pid", &child.pid.to_string()])?;
    let value = libc::sigval {
        sival_ptr: std::ptr::null_mut(),
    };
    // SAFETY: sigqueue(3) to our own child, which handles the signal.
    let rc = unsafe { libc::sigqueue(child.pid, rt, value) };
    ensure!(rc == 0, "sigqueue: {}", std::io::Error::last_os_error());
    let gen = trace.wait_for("the queued signal", |v| {
        generate_for(v, child.pid, i64::from(rt))
    })?;
    expect(&gen, "code", "SI_QUEUE")?;
    expect(&gen, "signal", "SIGRTMIN+1")?;
    expect(&gen, "result", "delivered")?;
    let d = trace.wait_for("its delivery", |v| {
        is(v, "deliver") && v["pid"] == child.pid
    })?;
    expect(&d, "code", "SI_QUEUE")?;
    trace.stop()?;
    Ok(())
}

fn lost_events_counted(g: &Guest) -> anyhow::Result<()> {
    // A tiny ring buffer and a flood: the kernel side must drop, and say so.
    let trace = Trace::start(g, &["--ring-size", "4K", "--events", "generate,deliver"])?;
    let flooder = flood(libc::SIGUSR1, 20_000)?;
    let status = flooder.wait();
    ensure!(
        libc::WIFEXITED(status) && libc::WEXITSTATUS(status) == 0,
        "the flooding child ended with wait status {status:#x}"
    );
    let lost = trace.wait_for("a lost record", |v| is(v, "lost"))?;
    ensure!(int(&lost, "count")? > 0, "an empty lost record: {lost}");
    let stopped = trace.stop()?;
    let mut reported = 0;
    let mut by_kind = 0;
    for v in stopped.records.iter().filter(|v| is(v, "lost")) {
        reported += int(v, "count")?;
        by_kind += int(v, "events.generate")? + int(v, "events.deliver")?;
    }
    ensure!(
        reported == by_kind,
        "lost counts {reported} but per kind {by_kind}"
    );
    let emitted = stopped.records.iter().filter(|v| !is(v, "lost")).count();
    let totals = stopped.totals_line();
    ensure!(
        totals == format!("{emitted} events, {reported} lost"),
        "totals line {totals:?} vs {emitted} records and {reported} lost"
    );
    Ok(())
}

fn clean_stop(g: &Guest) -> anyhow::Result<()> {
    for (sig, name) in [(libc::SIGINT, "SIGINT"), (libc::SIGTERM, "SIGTERM")] {
        let trace = Trace::start(g, &[])?;
        // Stop it once it can be stopped cleanly (stoppable_once_tracing checks the moment).
        let deadline = Instant::now() + Duration::from_secs(10);
        while !catches_stop_signals(trace.pid())? {
            ensure!(
                Instant::now() < deadline,
                "the tracer does not handle SIGINT and SIGTERM 10 s after it started tracing"
            );
            std::thread::sleep(Duration::from_millis(10));
        }
        let prog_ids = bpf_prog_ids_of(trace.pid()).context("cannot read the tracer's fdinfo")?;
        ensure!(
            prog_ids.len() >= 4,
            "the tracer holds only programs {prog_ids:?}"
        );
        let stopped = trace.stop_with(sig)?;
        ensure!(
            stopped.status.success(),
            "after {name} the tracer exited with {:?}; stderr: {}",
            stopped.status,
            stopped.stderr
        );
        ensure!(
            stopped.took < STOP_LIMIT,
            "the tracer took {:?} to stop after {name}",
            stopped.took
        );
        let totals = stopped.totals_line();
        let words: Vec<_> = totals.split_whitespace().collect();
        ensure!(
            matches!(words.as_slice(), [n, "events,", m, "lost"] if n.parse::<u64>().is_ok() && m.parse::<u64>().is_ok()),
            "the last stderr line after {name} is not the totals: {}",
            stopped.stderr
        );
        let deadline = Instant::now() + Duration::from_secs(5);
        loop {
            let alive: Vec<_> = prog_ids.iter().filter(|&&id| bpf_prog_exists(id)).collect();
            if alive.is_empty() {
                break;
            }
            ensure!(
                Instant::now() < deadline,
                "programs still loaded after {name}: {alive:?}"
            );
            std::thread::sleep(Duration::from_millis(50));
        }
    }
    Ok(())
}

/// When the tracer says it is tracing, SIGINT and SIGTERM must already stop it cleanly: a
/// supervisor (or a test) that stops it right after that line must not kill it outright, losing
/// the records still buffered and the totals. Made deterministic by handing the tracer a full
/// stderr pipe: its first write, the "tracing" line, blocks, and its handlers are read then.
fn stoppable_once_tracing(g: &Guest) -> anyhow::Result<()> {
    use std::os::fd::{AsRawFd, FromRawFd, OwnedFd};
    let mut fds = [0; 2];
    // SAFETY: pipe2 with a valid array; both fds are owned below.
    if unsafe { libc::pipe2(fds.as_mut_ptr(), libc::O_CLOEXEC) } != 0 {
        return Err(std::io::Error::last_os_error()).context("pipe2 failed");
    }
    // SAFETY: fresh fds from pipe2, owned from here on.
    let (rd, wr) = unsafe { (OwnedFd::from_raw_fd(fds[0]), OwnedFd::from_raw_fd(fds[1])) };
    // SAFETY: fcntl on our own pipe.
    let capacity = unsafe { libc::fcntl(wr.as_raw_fd(), libc::F_GETPIPE_SZ) };
    ensure!(
        capacity > 0,
        "F_GETPIPE_SZ: {}",
        std::io::Error::last_os_error()
    );
    let filler = vec![b'.'; capacity as usize];
    // SAFETY: write(2) from a live buffer into our own, empty pipe: it fills it exactly.
    let n = unsafe { libc::write(wr.as_raw_fd(), filler.as_ptr().cast(), filler.len()) };
    ensure!(
        n == capacity as isize,
        "cannot fill the stderr pipe ({n} of {capacity} bytes)"
    );
    // Only the signal_generate program: no tracefs, so no warning precedes the "tracing" line.
    let mut child = Command::new(&g.tracer)
        .args(["--format", "json", "--events", "generate"])
        .stdin(Stdio::null())
        .stdout(Stdio::null())
        .stderr(Stdio::from(wr))
        .spawn()
        .with_context(|| format!("cannot start {}", g.tracer.display()))?;
    let pid = child.id();
    let start = Instant::now();
    let verdict = loop {
        if let Some(status) = child.try_wait().context("cannot wait for the tracer")? {
            break Err(anyhow!(
                "the tracer exited with {status} before writing to stderr"
            ));
        }
        // "1 0x2 …": blocked in write(2) on fd 2.
        let syscall = std::fs::read_to_string(format!("/proc/{pid}/syscall")).unwrap_or_default();
        if syscall.starts_with("1 0x2 ") {
            break Ok(catches_stop_signals(pid)?);
        }
        if start.elapsed() > START_TIMEOUT {
            break Err(anyhow!(
                "the tracer did not write to stderr within {START_TIMEOUT:?}"
            ));
        }
        std::thread::sleep(Duration::from_millis(5));
    };
    g.starting.set(g.starting.get() + start.elapsed());
    // Unblock it, then stop it and read what it said.
    let mut pipe = std::fs::File::from(rd);
    let reader = std::thread::spawn(move || {
        let mut all = Vec::new();
        let _ = pipe.read_to_end(&mut all);
        String::from_utf8_lossy(all.get(capacity as usize..).unwrap_or_default()).into_owned()
    });
    let deadline = Instant::now() + Duration::from_secs(10);
    while Instant::now() < deadline && child.try_wait().ok().flatten().is_none() {
        // SAFETY: kill(2) on our own child.
        unsafe { libc::kill(pid as i32, libc::SIGINT) };
        std::thread::sleep(Duration::from_millis(100));
    }
    let _ = child.kill();
    let _ = child.wait();
    let stderr = reader.join().unwrap_or_default();
    let caught = verdict?;
    ensure!(
        stderr.starts_with("signal-trace: tracing"),
        "the tracer's first words are not the tracing line: {stderr}"
    );
    ensure!(
        caught,
        "the tracer announces it is tracing before it handles SIGINT and SIGTERM: a stop signal \
         sent right after that line kills it by default action (no totals, buffered records lost)"
    );
    Ok(())
}

/// Whether a process has handlers installed for both SIGINT and SIGTERM (SigCgt).
fn catches_stop_signals(pid: u32) -> anyhow::Result<bool> {
    let path = format!("/proc/{pid}/status");
    let status = std::fs::read_to_string(&path).with_context(|| format!("cannot read {path}"))?;
    let mask = status
        .lines()
        .find_map(|l| l.strip_prefix("SigCgt:"))
        .and_then(|m| u64::from_str_radix(m.trim(), 16).ok())
        .ok_or_else(|| anyhow!("no SigCgt in {path}"))?;
    let bit = |sig: i32| 1u64 << (sig - 1);
    Ok(mask & bit(libc::SIGINT) != 0 && mask & bit(libc::SIGTERM) != 0)
}

fn reduced_mode_without_btf(g: &Guest) -> anyhow::Result<()> {
    let child = spawn(Setup {
        handle: &[libc::SIGUSR1],
        ..Setup::default()
    })?;
    let trace = Trace::start(
        g,
        &[
            "--btf",
            "/nonexistent/vmlinux",
            "--events",
            "generate",
            "--target-pid",
            &child.pid.to_string(),
        ],
    )?;
    kill(child.pid, libc::SIGUSR1)?;
    let gen = trace.wait_for("SIGUSR1 generate in reduced mode", |v| {
        is(v, "generate") && v["target"]["tid"] == child.pid && v["signo"] == 10
    })?;
    expect(&gen, "target.pid", Value::Null)?;
    expect(&gen, "target.ns_pid", Value::Null)?;
    expect(&gen, "result", "delivered")?;
    expect(&gen, "code", "SI_USER")?;
    expect(&gen, "sender.pid", std::process::id())?;
    let stopped = trace.stop()?;
    let warnings: Vec<_> = stopped
        .stderr
        .lines()
        .filter(|l| l.starts_with("signal-trace: warning:"))
        .collect();
    ensure!(
        warnings.len() == 1 && warnings[0].contains("reduced mode"),
        "expected one reduced-mode warning: {}",
        stopped.stderr
    );
    ensure!(
        stopped
            .stderr
            .lines()
            .any(|l| l.starts_with("signal-trace: tracing") && l.contains("reduced mode")),
        "the tracer does not say it runs in reduced mode: {}",
        stopped.stderr
    );
    Ok(())
}

// ---------------------------------------------------------------------------------------------
// Record helpers.

fn is(v: &Value, event: &str) -> bool {
    v["event"] == event
}

/// A field by dotted path (`target.ns_pid`); null when missing.
fn field<'a>(v: &'a Value, path: &str) -> &'a Value {
    path.split('.').fold(v, |cur, key| &cur[key])
}

fn expect(v: &Value, path: &str, want: impl Into<Value>) -> anyhow::Result<()> {
    let want = want.into();
    let got = field(v, path);
    ensure!(*got == want, "{path} is {got}, expected {want}, in {v}");
    Ok(())
}

fn int(v: &Value, path: &str) -> anyhow::Result<i64> {
    field(v, path)
        .as_i64()
        .ok_or_else(|| anyhow!("{path} is not an integer in {v}"))
}

// ---------------------------------------------------------------------------------------------
// The tracer, run as a child process with its NDJSON collected in the background.

struct Trace {
    child: Child,
    records: Arc<Mutex<Vec<Value>>>,
    garbage: Arc<Mutex<Vec<String>>>,
    stderr: Arc<Mutex<String>>,
    readers: Vec<JoinHandle<()>>,
}

struct Stopped {
    status: ExitStatus,
    took: Duration,
    records: Vec<Value>,
    stderr: String,
}

impl Stopped {
    fn totals_line(&self) -> String {
        self.stderr.lines().last().unwrap_or_default().to_string()
    }
}

impl Trace {
    /// Starts `signal-trace --format json ARGS` and waits until its programs are attached.
    fn start(g: &Guest, args: &[&str]) -> anyhow::Result<Trace> {
        let mut child = Command::new(&g.tracer)
            .args(["--format", "json"])
            .args(args)
            .stdin(Stdio::null())
            .stdout(Stdio::piped())
            .stderr(Stdio::piped())
            .spawn()
            .with_context(|| format!("cannot start {}", g.tracer.display()))?;
        let records = Arc::new(Mutex::new(Vec::new()));
        let garbage = Arc::new(Mutex::new(Vec::new()));
        let stderr = Arc::new(Mutex::new(String::new()));
        let out = child.stdout.take().context("no tracer stdout")?;
        let err = child.stderr.take().context("no tracer stderr")?;
        let (r, bad) = (records.clone(), garbage.clone());
        let t1 = std::thread::spawn(move || {
            for line in BufReader::new(out).lines() {
                let Ok(line) = line else { break };
                match serde_json::from_str::<Value>(&line) {
                    Ok(v) => r.lock().unwrap().push(v),
                    Err(_) => bad.lock().unwrap().push(line),
                }
            }
        });
        let s = stderr.clone();
        let t2 = std::thread::spawn(move || {
            let mut reader = BufReader::new(err);
            let mut buf = [0u8; 4096];
            while let Ok(n @ 1..) = reader.read(&mut buf) {
                s.lock()
                    .unwrap()
                    .push_str(&String::from_utf8_lossy(&buf[..n]));
            }
        });
        let mut trace = Trace {
            child,
            records,
            garbage,
            stderr,
            readers: vec![t1, t2],
        };
        let start = Instant::now();
        // The whole "tracing" line: a read may end in the middle of it.
        let started = |e: &str| {
            e.lines()
                .any(|l| l.starts_with("signal-trace: tracing") && l.ends_with("Ctrl-C to stop"))
        };
        while !started(&trace.stderr()) {
            if let Some(status) = trace
                .child
                .try_wait()
                .context("cannot wait for the tracer")?
            {
                // Let the stderr reader finish so the reason is complete.
                for r in trace.readers.drain(..) {
                    let _ = r.join();
                }
                bail!(
                    "the tracer {args:?} exited with {status} before tracing; stderr:\n{}",
                    trace.stderr()
                );
            }
            ensure!(
                start.elapsed() < START_TIMEOUT,
                "the tracer {args:?} did not start tracing within {START_TIMEOUT:?}; stderr:\n{}",
                trace.stderr()
            );
            std::thread::sleep(Duration::from_millis(20));
        }
        g.starting.set(g.starting.get() + start.elapsed());
        Ok(trace)
    }

    fn pid(&self) -> u32 {
        self.child.id()
    }

    fn stderr(&self) -> String {
        self.stderr.lock().unwrap().clone()
    }

    fn records(&self) -> Vec<Value> {
        self.records.lock().unwrap().clone()
    }

    /// Waits for a record matching `pred` and returns it.
    fn wait_for(&self, what: &str, pred: impl Fn(&Value) -> bool) -> anyhow::Result<Value> {
        let start = Instant::now();
        loop {
            if let Some(v) = self.records.lock().unwrap().iter().find(|v| pred(v)) {
                return Ok(v.clone());
            }
            if start.elapsed() > RECORD_TIMEOUT {
                let got: Vec<_> = self.records().iter().map(Value::to_string).collect();
                bail!(
                    "no record for {what} within {RECORD_TIMEOUT:?}; got:\n{}\nstderr:\n{}",
                    got.join("\n"),
                    self.stderr()
                );
            }
            std::thread::sleep(Duration::from_millis(20));
        }
    }

    /// Stops the tracer with `sig`; returns how it exited, how long that took, and its output.
    fn stop_with(mut self, sig: i32) -> anyhow::Result<Stopped> {
        let start = Instant::now();
        // SAFETY: kill(2) on our own child.
        unsafe { libc::kill(self.child.id() as i32, sig) };
        let status = loop {
            if let Some(s) = self
                .child
                .try_wait()
                .context("cannot wait for the tracer")?
            {
                break s;
            }
            if start.elapsed() > Duration::from_secs(20) {
                bail!("the tracer did not exit within 20 s of signal {sig}");
            }
            std::thread::sleep(Duration::from_millis(5));
        };
        let took = start.elapsed();
        for r in self.readers.drain(..) {
            let _ = r.join();
        }
        let garbage = self.garbage.lock().unwrap().clone();
        ensure!(
            garbage.is_empty(),
            "the tracer printed lines that are not JSON: {garbage:?}"
        );
        Ok(Stopped {
            status,
            took,
            records: self.records(),
            stderr: self.stderr(),
        })
    }

    /// Stops the tracer with SIGINT and requires a clean exit.
    fn stop(self) -> anyhow::Result<Stopped> {
        let stopped = self.stop_with(libc::SIGINT)?;
        ensure!(
            stopped.status.success(),
            "the tracer failed: {:?}; stderr:\n{}",
            stopped.status,
            stopped.stderr
        );
        Ok(stopped)
    }
}

impl Drop for Trace {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

// ---------------------------------------------------------------------------------------------
// Processes to signal.

/// The init of a new PID namespace, `unshare -p -f sleep 60`, as a container's PID 1.
struct NsInit {
    unshare: Child,
    init: i32,
}

impl NsInit {
    fn start() -> anyhow::Result<NsInit> {
        let mut unshare = Command::new("unshare")
            .args(["-p", "-f", "sleep", "60"])
            .stdin(Stdio::null())
            .spawn()
            .context("cannot run unshare")?;
        let parent = unshare.id() as i32;
        let start = Instant::now();
        while start.elapsed() < Duration::from_secs(20) {
            // Wait for the exec too, so the target's comm is `sleep`.
            if let Some(init) = children_of(parent)
                .into_iter()
                .find(|&pid| comm_of(pid).as_deref() == Some("sleep"))
            {
                return Ok(NsInit { unshare, init });
            }
            if let Ok(Some(status)) = unshare.try_wait() {
                bail!("unshare -p -f sleep 60 exited with {status}");
            }
            std::thread::sleep(Duration::from_millis(10));
        }
        let _ = unshare.kill();
        let _ = unshare.wait();
        bail!("unshare -p -f did not start its namespace init within 20 s")
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

/// Processes whose parent is `parent`, from /proc/PID/stat (no CONFIG_PROC_CHILDREN needed).
fn children_of(parent: i32) -> Vec<i32> {
    let Ok(dir) = std::fs::read_dir("/proc") else {
        return Vec::new();
    };
    dir.filter_map(|e| e.ok()?.file_name().to_str()?.parse::<i32>().ok())
        .filter(|pid| {
            std::fs::read_to_string(format!("/proc/{pid}/stat"))
                .ok()
                .and_then(|s| {
                    // pid (comm) state ppid …; comm may hold spaces and parentheses.
                    let rest = &s[s.rfind(')')? + 1..];
                    rest.split_whitespace().nth(1)?.parse::<i32>().ok()
                })
                == Some(parent)
        })
        .collect()
}

fn comm_of(pid: i32) -> Option<String> {
    std::fs::read_to_string(format!("/proc/{pid}/comm"))
        .ok()
        .map(|s| s.trim_end().to_string())
}

/// A pid that names no process (kill(2) of it fails with ESRCH).
fn unused_pid() -> anyhow::Result<i32> {
    let max: i32 = std::fs::read_to_string("/proc/sys/kernel/pid_max")
        .context("cannot read /proc/sys/kernel/pid_max")?
        .trim()
        .parse()
        .context("cannot parse /proc/sys/kernel/pid_max")?;
    (2..max)
        .rev()
        .find(|pid| !Path::new(&format!("/proc/{pid}")).exists())
        .ok_or_else(|| anyhow!("every pid is in use"))
}

fn kill(pid: i32, sig: i32) -> anyhow::Result<()> {
    // SAFETY: kill(2).
    if unsafe { libc::kill(pid, sig) } != 0 {
        return Err(std::io::Error::last_os_error())
            .with_context(|| format!("kill({pid}, {sig}) failed"));
    }
    Ok(())
}

/// Forks a child that raises `sig` (which it handles) `count` times, then exits 0.
fn flood(sig: i32, count: u32) -> anyhow::Result<Proc> {
    // SAFETY: after fork the child only calls sigaction, raise and _exit.
    unsafe {
        let pid = libc::fork();
        if pid < 0 {
            return Err(std::io::Error::last_os_error()).context("fork failed");
        }
        if pid == 0 {
            let mut sa: libc::sigaction = std::mem::zeroed();
            sa.sa_sigaction = noop_handler as *const () as usize;
            libc::sigaction(sig, &sa, std::ptr::null_mut());
            for _ in 0..count {
                libc::raise(sig);
            }
            libc::_exit(0);
        }
        Ok(Proc { pid })
    }
}

// ---------------------------------------------------------------------------------------------
// BPF program bookkeeping.

// Shared with the live tests; the guest uses only part of them.
#[path = "../../../signal-trace/tests/common/bpf.rs"]
#[allow(dead_code)]
mod bpf;
#[path = "../../../signal-trace/tests/common/proc.rs"]
mod proc;
use bpf::{bpf_prog_exists, bpf_prog_ids_of};
use proc::{noop_handler, spawn, unprivileged_kill, Proc, Setup};
