//! Live tests: the real kernel programs, real processes, real signals. They need root and run
//! in CI; without root or BPF they fail with the reason.

mod common;

use std::time::Duration;

use common::bpf::{bpf_prog_exists, bpf_prog_ids_of};
use common::*;
use serde_json::Value;

fn pid_arg(pid: i32) -> String {
    pid.to_string()
}

fn generate_for(v: &Value, pid: i32, signo: i64) -> bool {
    is(v, "generate") && v["target"]["pid"] == pid && v["signo"] == signo
}

#[test]
fn sigterm_to_a_namespace_init_is_ignored_with_the_reason() {
    let ns = NsInit::start();
    let trace = Trace::start(&["--target-pid", &pid_arg(ns.init)]);
    kill(ns.init, libc::SIGTERM);
    let g = trace.wait_for("SIGTERM to the init", |v| generate_for(v, ns.init, 15));
    assert_eq!(g["result"], "ignored", "{g}");
    assert_eq!(g["reason"], "pid_namespace_init", "{g}");
    assert_eq!(g["target"]["ns_pid"], 1, "{g}");
    assert_eq!(g["target"]["disposition"], "default", "{g}");
    assert_eq!(g["target"]["comm"], "sleep", "{g}");
    assert_eq!(g["code"], "SI_USER", "{g}");
    assert_eq!(
        int(&g, &["sender", "pid"]),
        std::process::id() as i64,
        "{g}"
    );
    // SIGKILL from the host (an ancestor namespace) is not ignored, and the init dies with 137.
    kill(ns.init, libc::SIGKILL);
    let k = trace.wait_for("SIGKILL to the init", |v| generate_for(v, ns.init, 9));
    assert_eq!(k["result"], "delivered", "{k}");
    let x = trace.wait_for("exit of the init", |v| is(v, "exit") && v["pid"] == ns.init);
    assert_eq!(x["exit_code"], 137, "{x}");
    trace.stop();
}

#[test]
fn a_handled_signal_is_delivered_to_the_handler() {
    let child = spawn(Setup {
        handle: &[libc::SIGUSR1],
        ..Setup::default()
    });
    let trace = Trace::start(&["--target-pid", &pid_arg(child.pid)]);
    kill(child.pid, libc::SIGUSR1);
    let g = trace.wait_for("SIGUSR1 generate", |v| generate_for(v, child.pid, 10));
    assert_eq!(g["result"], "delivered", "{g}");
    assert_eq!(g["target"]["disposition"], "handler", "{g}");
    assert_eq!(g["target"]["blocked"], false, "{g}");
    let handler = g["target"]["handler"]
        .as_str()
        .expect("handler address")
        .to_string();
    assert!(handler.starts_with("0x"), "{g}");
    let d = trace.wait_for("SIGUSR1 deliver", |v| {
        is(v, "deliver") && v["pid"] == child.pid && v["signo"] == 10
    });
    assert_eq!(
        d["handler"],
        handler.as_str(),
        "the deliver record names the same handler: {d}"
    );
    assert_eq!(d["code"], "SI_USER", "{d}");
    assert_eq!(int(&d, &["sender_pid"]), std::process::id() as i64, "{d}");
    let latency = int(&d, &["latency_ns"]);
    assert!(latency > 0 && latency < 5_000_000_000, "{d}");
    // SA_RESTART as installed.
    assert_ne!(int(&d, &["sa_flags"]) & libc::SA_RESTART as i64, 0, "{d}");
    trace.stop();
}

#[test]
fn a_blocked_standard_signal_sent_twice_is_merged() {
    let child = spawn(Setup {
        block: &[libc::SIGUSR2],
        ..Setup::default()
    });
    let trace = Trace::start(&["--target-pid", &pid_arg(child.pid), "--signal", "USR2"]);
    kill(child.pid, libc::SIGUSR2);
    kill(child.pid, libc::SIGUSR2);
    trace.wait_for("second SIGUSR2", |v| {
        generate_for(v, child.pid, 12) && v["result"] == "already_pending"
    });
    let (_, records, _) = trace.stop();
    let gens: Vec<_> = records
        .iter()
        .filter(|v| generate_for(v, child.pid, 12))
        .collect();
    assert_eq!(gens.len(), 2, "{gens:?}");
    assert_eq!(gens[0]["result"], "delivered", "{}", gens[0]);
    assert_eq!(gens[0]["target"]["blocked"], true, "{}", gens[0]);
    assert_eq!(gens[1]["result"], "already_pending", "{}", gens[1]);
    // Blocked: no delivery happened.
    assert!(
        !records
            .iter()
            .any(|v| is(v, "deliver") && v["pid"] == child.pid),
        "{records:?}"
    );
}

#[test]
fn sigkill_gives_exit_code_137_and_names_the_killer() {
    let child = spawn(Setup::default());
    let trace = Trace::start(&["--pid", &pid_arg(child.pid)]);
    kill(child.pid, libc::SIGKILL);
    let x = trace.wait_for("exit", |v| is(v, "exit") && v["pid"] == child.pid);
    assert_eq!(x["exit_code"], 137, "{x}");
    assert_eq!(x["signal"], "SIGKILL", "{x}");
    assert_eq!(x["core_dumped"], false, "{x}");
    assert_eq!(
        int(&x, &["killed_by", "pid"]),
        std::process::id() as i64,
        "{x}"
    );
    assert_eq!(x["killed_by"]["signal"], "SIGKILL", "{x}");
    let status = child.wait();
    assert!(libc::WIFSIGNALED(status) && libc::WTERMSIG(status) == libc::SIGKILL);
    trace.stop();
}

#[test]
fn an_unprivileged_kill_of_a_root_process_fails_with_eperm() {
    let victim = spawn(Setup::default());
    let trace = Trace::start(&[
        "--target-pid",
        &pid_arg(victim.pid),
        "--events",
        "send_failed,generate",
    ]);
    let errno = unprivileged_kill(victim.pid, libc::SIGTERM);
    assert_eq!(errno, libc::EPERM, "the kernel refuses the send");
    let f = trace.wait_for("send_failed", |v| {
        is(v, "send_failed") && v["target_pid"] == victim.pid
    });
    assert_eq!(f["errno"], "EPERM", "{f}");
    assert_eq!(f["syscall"], "kill", "{f}");
    assert_eq!(f["signal"], "SIGTERM", "{f}");
    assert_eq!(f["sender"]["uid"], 65534, "{f}");
    let (_, records, _) = trace.stop();
    assert!(
        !records.iter().any(|v| is(v, "generate")),
        "a refused send generates nothing: {records:?}"
    );
}

#[test]
fn a_real_time_signal_sent_with_sigqueue_has_si_queue() {
    let rt = libc::SIGRTMIN() + 1;
    let child = spawn(Setup {
        handle: &[rt],
        ..Setup::default()
    });
    let trace = Trace::start(&["--target-pid", &pid_arg(child.pid)]);
    let value = libc::sigval {
        sival_ptr: 42 as *mut libc::c_void,
    };
    // SAFETY: sigqueue(3) to our own child.
    assert_eq!(unsafe { libc::sigqueue(child.pid, rt, value) }, 0);
    let g = trace.wait_for("sigqueue'd signal", |v| {
        generate_for(v, child.pid, rt as i64)
    });
    assert_eq!(g["code"], "SI_QUEUE", "{g}");
    assert_eq!(g["signal"], "SIGRTMIN+1", "{g}");
    assert_eq!(g["result"], "delivered", "{g}");
    let d = trace.wait_for("its delivery", |v| {
        is(v, "deliver") && v["pid"] == child.pid
    });
    assert_eq!(d["code"], "SI_QUEUE", "{d}");
    trace.stop();
}

#[test]
fn the_target_filter_leaves_out_other_processes() {
    let a = spawn(Setup {
        handle: &[libc::SIGUSR1, libc::SIGUSR2],
        ..Setup::default()
    });
    let b = spawn(Setup {
        handle: &[libc::SIGUSR1, libc::SIGUSR2],
        ..Setup::default()
    });
    let trace = Trace::start(&["--target-pid", &pid_arg(a.pid)]);
    kill(b.pid, libc::SIGUSR1);
    kill(a.pid, libc::SIGUSR1);
    kill(b.pid, libc::SIGUSR2);
    kill(a.pid, libc::SIGUSR2);
    trace.wait_for("last signal to a", |v| generate_for(v, a.pid, 12));
    let (_, records, _) = trace.stop();
    assert!(
        records.iter().any(|v| generate_for(v, a.pid, 10)),
        "{records:?}"
    );
    for v in &records {
        let touches_b = v["target"]["pid"] == b.pid || v["pid"] == b.pid;
        assert!(
            !touches_b,
            "a record about the other process got through: {v}"
        );
        if is(v, "generate") {
            assert_eq!(v["target"]["pid"], a.pid, "{v}");
        }
    }
}

#[test]
fn sigint_and_sigterm_stop_the_tracer_cleanly_within_two_seconds() {
    // Every program attached, and a filter so that other tests' signal storms on this host do
    // not queue up behind a slow reader.
    let quiet = spawn(Setup::default());
    let pid = quiet.pid.to_string();
    for sig in [libc::SIGINT, libc::SIGTERM] {
        let trace = Trace::start(&["--pid", &pid]);
        let prog_ids = bpf_prog_ids_of(trace.pid()).expect("the tracer's fdinfo");
        assert!(
            prog_ids.len() >= 4,
            "the tracer holds its programs: {prog_ids:?}"
        );
        let (status, took, _, stderr) = trace.stop_with(sig);
        assert!(status.success(), "exit status {status:?}; stderr {stderr}");
        assert!(took < Duration::from_secs(2), "took {took:?}");
        let totals = stderr.lines().last().unwrap_or_default();
        let words: Vec<_> = totals.split_whitespace().collect();
        assert!(
            matches!(words.as_slice(), [n, "events,", m, "lost"] if n.parse::<u64>().is_ok() && m.parse::<u64>().is_ok()),
            "last stderr line is the totals: {stderr}"
        );
        // Nothing pinned or left attached: every program the tracer held is gone.
        let deadline = std::time::Instant::now() + Duration::from_secs(3);
        loop {
            let alive: Vec<_> = prog_ids.iter().filter(|&&id| bpf_prog_exists(id)).collect();
            if alive.is_empty() {
                break;
            }
            assert!(
                std::time::Instant::now() < deadline,
                "programs still loaded after exit: {alive:?}"
            );
            std::thread::sleep(Duration::from_millis(50));
        }
    }
}

#[test]
fn lost_events_are_counted_and_reported() {
    // A tiny ring buffer and a flood: the kernel side must drop, and say so.
    let trace = Trace::start(&["--ring-size", "4K", "--events", "generate,deliver"]);
    // SAFETY: fork; the child only raises signals it handles and exits.
    let pid = unsafe {
        let pid = libc::fork();
        if pid == 0 {
            let mut sa: libc::sigaction = std::mem::zeroed();
            extern "C" fn h(_: libc::c_int) {}
            sa.sa_sigaction = h as *const () as usize;
            libc::sigaction(libc::SIGUSR1, &sa, std::ptr::null_mut());
            for _ in 0..200_000 {
                libc::raise(libc::SIGUSR1);
            }
            libc::_exit(0);
        }
        pid
    };
    let mut status = 0;
    // SAFETY: waitpid on our child.
    unsafe { libc::waitpid(pid, &mut status, 0) };
    let lost = trace.wait_for("a lost record", |v| is(v, "lost"));
    assert!(int(&lost, &["count"]) > 0, "{lost}");
    let (_, records, stderr) = trace.stop();
    let reported: i64 = records
        .iter()
        .filter(|v| is(v, "lost"))
        .map(|v| int(v, &["count"]))
        .sum();
    let by_kind: i64 = records
        .iter()
        .filter(|v| is(v, "lost"))
        .map(|v| {
            // Every kind, the internal exec and fork records (which keep the senders'
            // programs known) included: other processes exec meanwhile.
            v["events"]
                .as_object()
                .expect("events by kind")
                .values()
                .map(|n| n.as_i64().expect("a count"))
                .sum::<i64>()
        })
        .sum();
    assert_eq!(reported, by_kind, "per-kind counts add up");
    let signals: i64 = records
        .iter()
        .filter(|v| is(v, "lost"))
        .map(|v| int(v, &["events", "generate"]) + int(v, &["events", "deliver"]))
        .sum();
    assert!(signals > 0, "the storm's own records were lost: {signals}");
    let totals = stderr.lines().last().unwrap_or_default().to_string();
    assert!(
        totals.ends_with(&format!(" {reported} lost")),
        "totals {totals:?} vs records {reported}"
    );
    let emitted = records.iter().filter(|v| !is(v, "lost")).count();
    assert!(
        totals.starts_with(&format!("{emitted} events,")),
        "totals {totals:?} vs {emitted} records"
    );
}

#[test]
fn every_record_names_its_node() {
    let boot_id = std::fs::read_to_string("/proc/sys/kernel/random/boot_id").expect("boot id");
    let hostname = std::fs::read_to_string("/proc/sys/kernel/hostname").expect("hostname");
    for (node_name, want) in [
        (Some("node-under-test"), "node-under-test"),
        (None, hostname.trim()),
    ] {
        let child = spawn(Setup {
            handle: &[libc::SIGUSR1],
            ..Setup::default()
        });
        let trace = Trace::start_env(
            &["--pid", &child.pid.to_string()],
            &[("NODE_NAME", node_name)],
        );
        kill(child.pid, libc::SIGUSR1);
        trace.wait_for("the delivery", |v| {
            is(v, "deliver") && v["pid"] == child.pid
        });
        let (_, records, _) = trace.stop();
        assert!(records.len() >= 2, "a generate and a deliver: {records:?}");
        for r in &records {
            assert_eq!(r["host"], want, "NODE_NAME={node_name:?}: {r}");
            assert_eq!(r["boot_id"], boot_id.trim(), "{r}");
        }
    }
}

#[test]
fn real_output_validates_against_the_schema() {
    let schema: Value = serde_json::from_str(include_str!("../../schema/events.schema.json"))
        .expect("schema is JSON");
    let validator = jsonschema::validator_for(&schema).expect("schema compiles");
    let ns = NsInit::start();
    let child = spawn(Setup {
        handle: &[libc::SIGUSR1],
        ..Setup::default()
    });
    let victim = spawn(Setup::default());
    let trace = Trace::start(&[
        "--pid",
        &format!("{},{},{}", ns.init, child.pid, victim.pid),
        "--ring-size",
        "4K",
        // Refused sends are on by default only where fexit programs load.
        "--events",
        "generate,deliver,exit,send_failed",
    ]);
    kill(ns.init, libc::SIGTERM);
    kill(child.pid, libc::SIGUSR1);
    let rt = libc::SIGRTMIN();
    // SAFETY: sigqueue to our child, whose default action for the RT signal is to die.
    unsafe {
        libc::sigqueue(
            child.pid,
            rt,
            libc::sigval {
                sival_ptr: std::ptr::null_mut(),
            },
        )
    };
    assert_eq!(unprivileged_kill(victim.pid, libc::SIGTERM), libc::EPERM);
    kill(victim.pid, libc::SIGKILL);
    trace.wait_for("the exit", |v| is(v, "exit") && v["pid"] == victim.pid);
    trace.wait_for("the failed send", |v| is(v, "send_failed"));
    let (_, records, _) = trace.stop();
    let mut kinds = std::collections::BTreeSet::new();
    for r in &records {
        let errors: Vec<String> = validator
            .iter_errors(r)
            .map(|e| format!("{e} at {}", e.instance_path))
            .collect();
        assert!(
            errors.is_empty(),
            "record does not match the schema: {r}\n{errors:#?}"
        );
        kinds.insert(r["event"].as_str().unwrap_or_default().to_string());
    }
    for k in ["generate", "deliver", "exit", "send_failed"] {
        assert!(kinds.contains(k), "no {k} record to validate: {kinds:?}");
    }
    // The schema is not vacuous: a broken record fails it.
    let mut broken = records
        .iter()
        .find(|v| is(v, "generate"))
        .expect("a generate record")
        .clone();
    broken["result"] = Value::from("queued");
    assert!(
        !validator.is_valid(&broken),
        "a wrong result name must fail validation"
    );
}

#[test]
fn once_attached_the_tracer_keeps_only_cap_bpf() {
    let child = spawn(Setup {
        handle: &[libc::SIGUSR1],
        ..Setup::default()
    });
    let trace = Trace::start(&["--pid", &child.pid.to_string()]);
    let status = std::fs::read_to_string(format!("/proc/{}/status", trace.pid())).expect("status");
    let field = |name: &str| {
        status
            .lines()
            .find_map(|l| l.strip_prefix(name))
            .and_then(|v| u64::from_str_radix(v.trim(), 16).ok())
            .unwrap_or_else(|| panic!("no {name} in {status}"))
    };
    const CAP_BPF: u64 = 1 << 39;
    assert_eq!(field("CapEff:"), CAP_BPF, "{status}");
    assert_eq!(field("CapPrm:"), CAP_BPF, "{status}");
    assert_eq!(field("CapInh:"), 0, "{status}");
    assert_eq!(field("NoNewPrivs:"), 1, "{status}");
    // And it still works: it reads its loss counters and streams.
    kill(child.pid, libc::SIGUSR1);
    trace.wait_for("a signal after the drop", |v| {
        is(v, "generate") && v["target"]["pid"] == child.pid
    });
    trace.stop();
}

#[test]
fn prometheus_metrics_count_what_is_traced() {
    use std::io::{Read, Write};
    let child = spawn(Setup {
        handle: &[libc::SIGUSR1],
        ..Setup::default()
    });
    let listener = std::net::TcpListener::bind("127.0.0.1:0").expect("a free port");
    let port = listener.local_addr().unwrap().port();
    drop(listener);
    let trace = Trace::start(&[
        "--target-pid",
        &child.pid.to_string(),
        "--metrics-addr",
        &port.to_string(),
    ]);
    assert!(
        trace
            .stderr()
            .contains(&format!("metrics on http://127.0.0.1:{port}/metrics")),
        "{}",
        trace.stderr()
    );
    // One at a time, each delivered before the next: no merging.
    for n in 1..=3 {
        kill(child.pid, libc::SIGUSR1);
        let delivered = |records: &[Value]| {
            records
                .iter()
                .filter(|v| is(v, "deliver") && v["pid"] == child.pid)
                .count()
        };
        let deadline = std::time::Instant::now() + Duration::from_secs(10);
        while delivered(&trace.records()) < n {
            assert!(
                std::time::Instant::now() < deadline,
                "delivery {n} not seen"
            );
            std::thread::sleep(Duration::from_millis(20));
        }
    }
    let body = || {
        let mut c = std::net::TcpStream::connect(("127.0.0.1", port)).expect("metrics port");
        c.write_all(b"GET /metrics HTTP/1.1\r\nHost: localhost\r\n\r\n")
            .unwrap();
        let mut text = String::new();
        c.read_to_string(&mut text).unwrap();
        text
    };
    let deadline = std::time::Instant::now() + Duration::from_secs(10);
    loop {
        let text = body();
        if text.contains(
            r#"signal_trace_events_total{event="generate",signal="SIGUSR1",result="delivered"} 3"#,
        ) {
            assert!(text.starts_with("HTTP/1.1 200 OK"), "{text}");
            assert!(
                text.contains("signal_trace_runtime_failures_total"),
                "{text}"
            );
            break;
        }
        assert!(
            std::time::Instant::now() < deadline,
            "metrics never showed the signals: {text}"
        );
        std::thread::sleep(Duration::from_millis(100));
    }
    trace.stop();
}

/// The sender's and the target's identities as the kernel programs read them (plain loads from
/// the task_struct) match what the processes are: pid, thread, comm, real uid and cgroup v2 id.
/// The sender runs in a cgroup of its own, with a real uid other than its effective one.
#[test]
fn sender_and_target_identities_match_the_processes() {
    let target = spawn(Setup {
        handle: &[libc::SIGUSR1],
        ..Setup::default()
    });
    let cg = Cgroup2::new();
    let dir = cg.mkdir(&format!("signal-trace-live-{}", std::process::id()));
    let dir_id = inode(&dir);
    let trace = Trace::start(&["--target-pid", &pid_arg(target.pid)]);
    let procs = std::ffi::CString::new(dir.join("cgroup.procs").to_str().unwrap()).unwrap();
    // SAFETY: after fork the child makes only async-signal-safe calls (open, write, close,
    // prctl, setresuid, kill, _exit).
    let sender = unsafe {
        let pid = libc::fork();
        assert!(pid >= 0, "fork failed");
        if pid == 0 {
            let fd = libc::open(procs.as_ptr(), libc::O_WRONLY);
            if fd < 0 || libc::write(fd, b"0".as_ptr().cast(), 1) != 1 {
                libc::_exit(101);
            }
            libc::close(fd);
            libc::prctl(libc::PR_SET_NAME, c"st-idsender".as_ptr());
            // Real uid 65534, effective uid 0: the send is allowed, and the real uid shows.
            if libc::setresuid(65534, 0, 0) != 0 {
                libc::_exit(102);
            }
            libc::_exit(if libc::kill(target.pid, libc::SIGUSR1) == 0 {
                0
            } else {
                103
            });
        }
        let mut status = 0;
        libc::waitpid(pid, &mut status, 0);
        assert_eq!(libc::WEXITSTATUS(status), 0, "the sender failed");
        pid
    };
    let g = trace.wait_for("SIGUSR1 generate", |v| generate_for(v, target.pid, 10));
    let s = &g["sender"];
    assert_eq!(s["pid"], sender, "{g}");
    assert_eq!(s["tid"], sender, "{g}");
    assert_eq!(s["comm"], "st-idsender", "{g}");
    assert_eq!(s["uid"], 65534, "{g}");
    assert_eq!(s["cgroup_id"], dir_id, "{g}");
    let own_id = inode(&cg.own());
    let t = &g["target"];
    assert_eq!(t["tid"], target.pid, "{g}");
    // Not in a PID namespace of its own: its namespace pid is its pid.
    assert_eq!(t["ns_pid"], target.pid, "{g}");
    assert_eq!(t["cgroup_id"], own_id, "{g}");
    let d = trace.wait_for("SIGUSR1 deliver", |v| {
        is(v, "deliver") && v["pid"] == target.pid && v["signo"] == 10
    });
    assert_eq!(d["tid"], target.pid, "{d}");
    assert_eq!(d["ns_pid"], target.pid, "{d}");
    assert_eq!(d["cgroup_id"], own_id, "{d}");
    assert_eq!(d["sender_pid"], sender, "{d}");
    trace.stop();
    kill(target.pid, libc::SIGKILL);
    target.wait();
    cg.rmdir(&dir);
}
