//! The tracer's foundation against the kernel's own count: a short run of stress-ng's signal
//! stressors, traced at once by `signal-trace --format json --comm NAME` and by a bpftrace
//! counter on the raw tracepoints `signal:signal_generate` and `signal:signal_deliver`
//! (tests/fixtures/differential/raw_signal_counts.bt) with the same selection. stress-ng runs
//! under a name of its own (a symlink, `--keep-name`), so no other process on the host is counted.
//!
//! What is compared, and how a record maps to a tracepoint hit:
//! - `generate` record → one `signal_generate` hit, keyed (sig, errno, code, result):
//!   `signo`, `errno`, `si_code` and `result` as the kernel's enum (delivered 0, ignored 1,
//!   already_pending 2, overflow 3, lose_info 4).
//! - `deliver` record → one `signal_deliver` hit, keyed (sig, code): `signo`, `si_code`. A
//!   deliver with `cause: "group_exit"` is the SIGKILL the kernel's group-exit path dequeues
//!   (`trace_signal_deliver(SIGKILL, SEND_SIG_NOINFO, …)` in get_signal()); the tracepoint sees
//!   sig 9 with code SI_USER (0) whatever signal the record names as the cause of the exit.
//! - `send_failed` (a refused send: kill(pid, -1) and the like), `exit`, `oom`: no signal
//!   tracepoint fires for them; they are not counted here, only schema-checked.
//!
//! The counts must be equal key by key, and the tracer must report nothing lost. The same run's
//! whole NDJSON output must validate against schema/events.schema.json.
//!
//! Needs root, stress-ng and bpftrace (Debian: `apt-get install stress-ng bpftrace`); fails
//! without them.

mod common;

use std::collections::{BTreeMap, BTreeSet};
use std::io::{BufRead, BufReader, Read};
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::sync::{Arc, Mutex, OnceLock};
use std::time::{Duration, Instant};

use serde_json::Value;

use common::{is, require_root, Trace};

const SCRIPT: &str = concat!(
    env!("CARGO_MANIFEST_DIR"),
    "/tests/fixtures/differential/raw_signal_counts.bt"
);

/// The stressors and their bogo-op bounds: a few thousand signals of every origin (sigqueue,
/// signalfd, faults, abort, SIGPIPE, real-time queues, kill with invalid arguments, SIGCHLD,
/// nested handlers) and, from `--exit-group`, processes whose exit_group() takes down other
/// threads (the SIGKILL deliveries of the group-exit path, with no generate); done in about a
/// second on an idle machine. Left out: `--sigio`, which in
/// stress-ng 0.15 stalls with 0 ops until the timeout in about one run of four.
const STRESSORS: &[(&str, u32)] = &[
    ("sigq", 2000),
    ("sigpending", 1000),
    ("sigsuspend", 1000),
    ("sigfd", 1000),
    ("sigsegv", 500),
    ("sigfpe", 500),
    ("sigabrt", 50),
    ("sigpipe", 500),
    ("sigrt", 1000),
    ("sigtrap", 500),
    ("kill", 1000),
    ("sigchld", 200),
    ("signal", 500),
    ("signest", 500),
    ("exit-group", 50),
];

/// Signals that must show up among the raw generate hits, or the run did not exercise what
/// it claims to: TRAP, ABRT, FPE, USR1, SEGV, PIPE, CHLD.
const EXPECTED_SIGNALS: &[i64] = &[5, 6, 8, 10, 11, 13, 17];

/// (sig, errno, code, result)
type GenKey = (i64, i64, i64, i64);
/// (sig, code)
type DelKey = (i64, i64);

struct Run {
    records: Vec<Value>,
    tracer_stderr: String,
    raw_generate: BTreeMap<GenKey, u64>,
    raw_deliver: BTreeMap<DelKey, u64>,
    raw_renamed: u64,
    took: Duration,
}

/// The traced stress run, made once for both tests; a failure is kept and reported by both.
fn run() -> &'static Run {
    static RUN: OnceLock<Result<Run, String>> = OnceLock::new();
    let res = RUN.get_or_init(|| {
        std::panic::catch_unwind(stress_run).map_err(|p| {
            p.downcast_ref::<String>()
                .cloned()
                .or_else(|| p.downcast_ref::<&str>().map(|s| s.to_string()))
                .unwrap_or_else(|| "the stress run panicked".into())
        })
    });
    match res {
        Ok(run) => run,
        Err(e) => panic!("the traced stress run failed: {e}"),
    }
}

fn find_in_path(name: &str) -> Option<PathBuf> {
    std::env::var_os("PATH")
        .map(|p| std::env::split_paths(&p).collect::<Vec<_>>())
        .unwrap_or_default()
        .into_iter()
        .map(|d| d.join(name))
        .find(|p| p.is_file())
}

/// bpftrace's tracepoints need tracefs; the machine may not mount it at boot. It stays mounted
/// (other tracers may be using it by the time the test ends).
fn ensure_tracefs() {
    let format = Path::new("/sys/kernel/tracing/events/signal/signal_generate/format");
    if format.exists() {
        return;
    }
    let out = Command::new("mount")
        .args(["-t", "tracefs", "tracefs", "/sys/kernel/tracing"])
        .output()
        .expect("run mount");
    assert!(
        out.status.success() && format.exists(),
        "cannot mount tracefs on /sys/kernel/tracing ({}): bpftrace needs it",
        String::from_utf8_lossy(&out.stderr).trim()
    );
}

/// A temporary directory holding the stress-ng symlink, removed on drop.
struct TempDir(PathBuf);

impl Drop for TempDir {
    fn drop(&mut self) {
        let _ = std::fs::remove_dir_all(&self.0);
    }
}

/// A running bpftrace whose stdout lines are collected; killed on drop.
struct Bpftrace {
    child: Child,
    lines: Arc<Mutex<Vec<String>>>,
    stderr: Arc<Mutex<String>>,
    readers: Vec<std::thread::JoinHandle<()>>,
}

impl Bpftrace {
    fn start(script: &str, comm: &str) -> Bpftrace {
        let mut child = Command::new("bpftrace")
            .args(["-f", "json", script, comm])
            .stdin(Stdio::null())
            .stdout(Stdio::piped())
            .stderr(Stdio::piped())
            .spawn()
            .expect("spawn bpftrace");
        let lines = Arc::new(Mutex::new(Vec::new()));
        let stderr = Arc::new(Mutex::new(String::new()));
        let out = child.stdout.take().expect("stdout");
        let mut err = child.stderr.take().expect("stderr");
        let l = lines.clone();
        let t1 = std::thread::spawn(move || {
            for line in BufReader::new(out).lines() {
                let Ok(line) = line else { break };
                l.lock().unwrap().push(line);
            }
        });
        let s = stderr.clone();
        let t2 = std::thread::spawn(move || {
            let mut text = String::new();
            let _ = err.read_to_string(&mut text);
            s.lock().unwrap().push_str(&text);
        });
        let mut bt = Bpftrace {
            child,
            lines,
            stderr,
            readers: vec![t1, t2],
        };
        let start = Instant::now();
        loop {
            if bt
                .lines
                .lock()
                .unwrap()
                .iter()
                .any(|l| l.contains("\"attached_probes\""))
            {
                return bt;
            }
            if let Ok(Some(status)) = bt.child.try_wait() {
                for r in bt.readers.drain(..) {
                    let _ = r.join();
                }
                panic!(
                    "bpftrace exited ({status}) before attaching: {}",
                    bt.stderr.lock().unwrap()
                );
            }
            assert!(
                start.elapsed() < Duration::from_secs(60),
                "bpftrace did not attach within 60 s: {}",
                bt.stderr.lock().unwrap()
            );
            std::thread::sleep(Duration::from_millis(50));
        }
    }

    /// Stops bpftrace with SIGINT (it prints its maps then) and returns its stdout lines.
    /// bpftrace 0.17 can miss a SIGINT and sleep on in epoll_wait (about one stop in fifteen
    /// here): the signal is sent again every second until it exits.
    fn stop(mut self) -> Vec<String> {
        let start = Instant::now();
        let mut sent = 0;
        let status = loop {
            if start.elapsed() >= Duration::from_secs(sent) {
                // SAFETY: kill(2) on our own child, not yet reaped.
                unsafe { libc::kill(self.child.id() as i32, libc::SIGINT) };
                sent += 1;
            }
            if let Some(s) = self.child.try_wait().expect("wait for bpftrace") {
                break s;
            }
            if start.elapsed() > Duration::from_secs(30) {
                let pid = self.child.id();
                let status =
                    std::fs::read_to_string(format!("/proc/{pid}/status")).unwrap_or_default();
                let state = status.lines().find(|l| l.starts_with("State:"));
                let wchan =
                    std::fs::read_to_string(format!("/proc/{pid}/wchan")).unwrap_or_default();
                panic!(
                    "bpftrace did not exit within 30 s of {sent} SIGINTs ({state:?}, wchan {wchan}); \
                     stdout: {:?}; stderr: {}",
                    self.lines.lock().unwrap(),
                    self.stderr.lock().unwrap()
                );
            }
            std::thread::sleep(Duration::from_millis(20));
        };
        for r in self.readers.drain(..) {
            let _ = r.join();
        }
        assert!(
            status.success(),
            "bpftrace failed ({status}): {}",
            self.stderr.lock().unwrap()
        );
        std::mem::take(&mut *self.lines.lock().unwrap())
    }
}

impl Drop for Bpftrace {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

/// A bpftrace map key "a,b,c" as integers.
fn key_ints(key: &str) -> Vec<i64> {
    key.split(',')
        .map(|k| {
            k.trim()
                .parse()
                .unwrap_or_else(|_| panic!("bpftrace map key {key:?} is not integers"))
        })
        .collect()
}

/// The maps bpftrace printed at exit: name → (key → count); a scalar map has the key "".
fn bpftrace_maps(lines: &[String]) -> BTreeMap<String, BTreeMap<String, u64>> {
    let mut maps = BTreeMap::new();
    for line in lines.iter().filter(|l| !l.trim().is_empty()) {
        let v: Value = serde_json::from_str(line)
            .unwrap_or_else(|e| panic!("bpftrace printed a line that is not JSON ({e}): {line}"));
        if v["type"] != "map" {
            continue;
        }
        let data = v["data"].as_object().expect("a map's data is an object");
        for (name, value) in data {
            let entries: BTreeMap<String, u64> = match value {
                Value::Object(o) => o
                    .iter()
                    .map(|(k, n)| {
                        let n = n
                            .as_u64()
                            .unwrap_or_else(|| panic!("count {n} in {name} is not a count"));
                        (k.clone(), n)
                    })
                    .collect(),
                n => BTreeMap::from([(
                    String::new(),
                    n.as_u64()
                        .unwrap_or_else(|| panic!("value {n} of {name} is not a count")),
                )]),
            };
            maps.insert(name.clone(), entries);
        }
    }
    maps
}

fn stress_run() -> Run {
    require_root();
    let stress_ng = find_in_path("stress-ng")
        .expect("stress-ng is not installed (apt-get install stress-ng; scripts/setup.sh --test)");
    assert!(
        find_in_path("bpftrace").is_some(),
        "bpftrace is not installed (apt-get install bpftrace; scripts/setup.sh --test)"
    );
    ensure_tracefs();

    // A name no other process has: comm is the basename of the path that was executed.
    let comm = format!("stdiff{}", std::process::id());
    assert!(
        comm.len() <= 15,
        "comm {comm} is longer than the kernel keeps"
    );
    let dir = TempDir(std::env::temp_dir().join(format!("signal-trace-differential-{comm}")));
    let _ = std::fs::remove_dir_all(&dir.0);
    std::fs::create_dir_all(&dir.0).expect("create the temporary directory");
    let exe = dir.0.join(&comm);
    std::os::unix::fs::symlink(&stress_ng, &exe).expect("symlink stress-ng");

    let start = Instant::now();
    let bpftrace = Bpftrace::start(SCRIPT, &comm);
    let trace = Trace::start(&["--comm", &comm, "--ring-size", "16M"]);

    let mut cmd = Command::new(&exe);
    cmd.args(["--keep-name", "--timeout", "10", "--metrics-brief"]);
    for (stressor, ops) in STRESSORS {
        cmd.arg(format!("--{stressor}"))
            .arg("1")
            .arg(format!("--{stressor}-ops"))
            .arg(ops.to_string());
    }
    let out = cmd
        .stdin(Stdio::null())
        .output()
        .expect("run stress-ng through its symlink");
    let stress_log = format!(
        "{}{}",
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    );
    assert!(
        out.status.success(),
        "stress-ng failed ({}):\n{stress_log}",
        out.status
    );
    eprintln!("stress-ng:\n{stress_log}");

    // Every stress-ng process has exited and been reaped, so every hit is in the ring; the tracer
    // drains it when stopped.
    let (_, records, tracer_stderr) = trace.stop();
    let maps = bpftrace_maps(&bpftrace.stop());
    let took = start.elapsed();

    let raw_generate = maps
        .get("@generate")
        .expect("bpftrace printed no @generate map")
        .iter()
        .map(|(k, n)| match key_ints(k)[..] {
            [sig, errno, code, result] => ((sig, errno, code, result), *n),
            _ => panic!("@generate key {k:?} does not have 4 fields"),
        })
        .collect();
    let raw_deliver = maps
        .get("@deliver")
        .expect("bpftrace printed no @deliver map")
        .iter()
        .map(|(k, n)| match key_ints(k)[..] {
            [sig, code] => ((sig, code), *n),
            _ => panic!("@deliver key {k:?} does not have 2 fields"),
        })
        .collect();
    let raw_renamed = maps.get("@renamed").map(|m| m.values().sum()).unwrap_or(0);
    Run {
        records,
        tracer_stderr,
        raw_generate,
        raw_deliver,
        raw_renamed,
        took,
    }
}

/// The kernel's enum trace_signal_result (include/trace/events/signal.h) for a result name.
fn result_number(name: &str) -> i64 {
    match name {
        "delivered" => 0,
        "ignored" => 1,
        "already_pending" => 2,
        "overflow" => 3,
        "lose_info" => 4,
        other => panic!("unknown generate result {other:?}"),
    }
}

fn field(r: &Value, name: &str) -> i64 {
    r[name]
        .as_i64()
        .unwrap_or_else(|| panic!("{name} is not an integer in {r}"))
}

/// The tracepoint key a generate record stands for.
fn generate_key(r: &Value) -> GenKey {
    (
        field(r, "signo"),
        field(r, "errno"),
        field(r, "si_code"),
        result_number(r["result"].as_str().unwrap_or_default()),
    )
}

/// The tracepoint key a deliver record stands for (see the module comment for group exits).
fn deliver_key(r: &Value) -> DelKey {
    if r["cause"] == "group_exit" {
        (libc::SIGKILL as i64, 0)
    } else {
        (field(r, "signo"), field(r, "si_code"))
    }
}

fn count<K: Ord>(keys: impl Iterator<Item = K>) -> BTreeMap<K, u64> {
    let mut m = BTreeMap::new();
    for k in keys {
        *m.entry(k).or_insert(0) += 1;
    }
    m
}

/// Lines "key  tracer  raw" for every key, mismatches marked; returns (table, mismatches).
fn compare<K: Ord + Copy + std::fmt::Debug>(
    tracer: &BTreeMap<K, u64>,
    raw: &BTreeMap<K, u64>,
) -> (String, Vec<(K, u64, u64)>) {
    let keys: BTreeSet<K> = tracer.keys().chain(raw.keys()).copied().collect();
    let mut table = String::new();
    let mut diff = Vec::new();
    for k in keys {
        let t = tracer.get(&k).copied().unwrap_or(0);
        let r = raw.get(&k).copied().unwrap_or(0);
        let mark = if t == r { "" } else { "  <- differs" };
        table.push_str(&format!(
            "  {k:?}: signal-trace {t}, tracepoint {r}{mark}\n"
        ));
        if t != r {
            diff.push((k, t, r));
        }
    }
    (table, diff)
}

#[test]
fn generate_and_deliver_counts_equal_the_raw_tracepoints() {
    let run = run();
    let lost: i64 = run
        .records
        .iter()
        .filter(|r| is(r, "lost"))
        .map(|r| field(r, "count"))
        .sum();
    let totals = run.tracer_stderr.lines().last().unwrap_or_default();
    assert!(
        lost == 0 && totals.ends_with(" 0 lost"),
        "the tracer lost {lost} events (totals: {totals:?}); a differential check needs none"
    );
    assert_eq!(
        run.raw_renamed, 0,
        "stress-ng threads whose comm differs from their process's: the tracer's and the \
         tracepoint's selections could differ"
    );

    let gen = count(
        run.records
            .iter()
            .filter(|r| is(r, "generate"))
            .map(generate_key),
    );
    let del = count(
        run.records
            .iter()
            .filter(|r| is(r, "deliver"))
            .map(deliver_key),
    );
    let group_exit = run
        .records
        .iter()
        .filter(|r| is(r, "deliver") && r["cause"] == "group_exit")
        .count();
    let (gen_table, gen_diff) = compare(&gen, &run.raw_generate);
    let (del_table, del_diff) = compare(&del, &run.raw_deliver);
    let raw_gen_total: u64 = run.raw_generate.values().sum();
    let raw_del_total: u64 = run.raw_deliver.values().sum();
    eprintln!(
        "traced in {:.1} s; tracer: {totals}\n\
         generate: {} records, {raw_gen_total} tracepoint hits, {} keys, {} differ\n{gen_table}\
         deliver (sig, code): {} records ({group_exit} marked group_exit), {raw_del_total} \
         tracepoint hits, {} keys, {} differ\n{del_table}",
        run.took.as_secs_f64(),
        gen.values().sum::<u64>(),
        run.raw_generate.len(),
        gen_diff.len(),
        del.values().sum::<u64>(),
        run.raw_deliver.len(),
        del_diff.len(),
    );

    // The run did what it claims: every stressor's signal was raised, and plenty of them.
    let raw_signals: BTreeSet<i64> = run.raw_generate.keys().map(|k| k.0).collect();
    for sig in EXPECTED_SIGNALS {
        assert!(
            raw_signals.contains(sig),
            "no signal {sig} among the tracepoint's generate hits: {raw_signals:?}"
        );
    }
    assert!(
        raw_signals.iter().any(|&s| (34..=64).contains(&s)),
        "no real-time signal among the tracepoint's generate hits: {raw_signals:?}"
    );
    // Group exits happened: more SIGKILL deliveries than SIGKILLs generated and let through.
    let raw_kill_delivered: u64 = run
        .raw_generate
        .iter()
        .filter(|(k, _)| k.0 == libc::SIGKILL as i64 && k.3 == 0)
        .map(|(_, n)| n)
        .sum();
    let raw_kill_deliveries = run.raw_deliver.get(&(libc::SIGKILL as i64, 0)).copied();
    assert!(
        raw_kill_deliveries.unwrap_or(0) > raw_kill_delivered,
        "no group-exit deliveries: {raw_kill_deliveries:?} SIGKILL deliveries for \
         {raw_kill_delivered} SIGKILLs generated"
    );
    assert!(
        raw_gen_total >= 5000 && raw_del_total >= 1000,
        "too few signals to compare: {raw_gen_total} generated, {raw_del_total} delivered"
    );

    assert!(
        gen_diff.is_empty() && del_diff.is_empty(),
        "signal-trace and the raw tracepoints disagree\ngenerate (sig, errno, code, result), \
         signal-trace vs tracepoint: {gen_diff:?}\ndeliver (sig, code): {del_diff:?}"
    );
}

#[test]
fn a_stress_runs_whole_output_validates_against_the_schema() {
    let schema: Value = serde_json::from_str(include_str!("../../schema/events.schema.json"))
        .expect("schema is JSON");
    let validator = jsonschema::validator_for(&schema).expect("schema compiles");
    let run = run();
    // The root's oneOf only says that a record matched no kind; a failing record is checked
    // again against its own kind's definition to say what is wrong with it.
    let mut by_kind = BTreeMap::new();
    let mut kinds: BTreeMap<String, u64> = BTreeMap::new();
    // (event, where, which rule) → the offending values and how often each failed so.
    let mut failures: BTreeMap<(String, String, String), BTreeMap<String, u64>> = BTreeMap::new();
    let mut failed = 0u64;
    let mut examples = Vec::new();
    for r in &run.records {
        let kind = r["event"].as_str().unwrap_or("(no event)").to_string();
        *kinds.entry(kind.clone()).or_insert(0) += 1;
        if validator.is_valid(r) {
            continue;
        }
        failed += 1;
        let own = by_kind.entry(kind.clone()).or_insert_with(|| {
            let mut s = schema.clone();
            let root = s.as_object_mut().expect("the schema is an object");
            root.remove("oneOf");
            root.insert("$ref".into(), Value::from(format!("#/$defs/{kind}")));
            jsonschema::validator_for(&s).ok()
        });
        let describe = |e: jsonschema::ValidationError| {
            let value: String = e.instance.to_string().chars().take(80).collect();
            (
                e.instance_path.to_string(),
                e.schema_path.to_string(),
                value,
                e.to_string(),
            )
        };
        let mut errors: Vec<_> = own
            .as_ref()
            .map(|v| v.iter_errors(r).map(describe).collect())
            .unwrap_or_default();
        if errors.is_empty() {
            errors = validator.iter_errors(r).map(describe).collect();
        }
        for (at, rule, value, _) in &errors {
            *failures
                .entry((kind.clone(), at.clone(), rule.clone()))
                .or_default()
                .entry(value.clone())
                .or_insert(0) += 1;
        }
        if examples.len() < 5 {
            let why: Vec<String> = errors
                .iter()
                .map(|(at, _, _, what)| format!("{what} at {at}"))
                .collect();
            examples.push(format!("{r}\n    {}", why.join("\n    ")));
        }
    }
    let summary: String = failures
        .iter()
        .map(|((kind, at, rule), values)| {
            let n: u64 = values.values().sum();
            let values: Vec<String> = values.iter().map(|(v, n)| format!("{v} ×{n}")).collect();
            format!("  {n} × {kind} {at} fails {rule}: {}\n", values.join(", "))
        })
        .collect();
    eprintln!(
        "{} records; per kind {kinds:?}; {failed} fail the schema\n{summary}",
        run.records.len()
    );
    for k in ["generate", "deliver", "exit", "send_failed"] {
        assert!(
            kinds.contains_key(k),
            "no {k} record in the stress run: {kinds:?}"
        );
    }
    assert!(
        failed == 0,
        "{failed} of {} records do not match schema/events.schema.json:\n{summary}first ones:\n{}",
        run.records.len(),
        examples.join("\n")
    );
}
