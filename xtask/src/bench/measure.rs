//! Measurement: one workload run under one configuration (rate, tracer CPU and RSS), the idle
//! tracer, and the in-kernel cost of BPF programs from kernel.bpf_stats_enabled and fdinfo.

use std::collections::BTreeMap;
use std::fs;
use std::io::{BufRead as _, BufReader};
use std::path::Path;
use std::process::{Command, Stdio};
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex};
use std::thread;
use std::time::{Duration, Instant};

use anyhow::{bail, Context as _};
use serde::Serialize;

use super::configs::Tool;
use super::workloads::{parse_workload, Workload};
use super::Bench;

/// The runs measured with kernel.bpf_stats_enabled=1, once per repetition.
/// The getppid loop shows what the default configuration's programs cost a syscall that is
/// not a signal's.
pub(super) const KERNEL_COST_RUNS: [(Workload, Tool); 6] = [
    (Workload::PingPong, Tool::StJsonDevnull),
    (Workload::Storm, Tool::StJsonDevnull),
    (Workload::Storm, Tool::StFilterReject),
    (Workload::Getppid, Tool::StJsonDevnull),
    (Workload::PingPong, Tool::Bpftrace),
    (Workload::Storm, Tool::Bpftrace),
];

/// One measured run.
#[derive(Debug, Clone, Serialize, Default)]
pub(super) struct Sample {
    pub(super) workload: String,
    pub(super) tool: String,
    pub(super) rep: usize,
    /// Work done (round trips, signals, calls or program runs) and the workload's own wall time.
    pub(super) ops: Option<u64>,
    pub(super) seconds: f64,
    pub(super) rate: Option<f64>,
    /// Signal tracepoint hits the workload caused (None for the workloads that send none).
    pub(super) events_expected: Option<u64>,
    /// Events the tool reported (its own count, or lines of its output).
    pub(super) events_seen: Option<u64>,
    /// Events lost as the tool reports them; None when it reports none.
    pub(super) lost: Option<u64>,
    pub(super) tracer_cpu_seconds: Option<f64>,
    pub(super) tracer_cpu_percent: Option<f64>,
    /// The same from /proc/PID/task/*/schedstat (nanoseconds on CPU), for short intervals.
    pub(super) tracer_cpu_percent_schedstat: Option<f64>,
    pub(super) tracer_peak_rss_kib: Option<u64>,
    /// The tracer's time on CPU (schedstat) over the workload's run, per event it reported.
    #[serde(default)]
    pub(super) tracer_cpu_ns_per_event: Option<f64>,
    pub(super) error: Option<String>,
}

/// In-kernel cost of one BPF program over a workload run.
#[derive(Debug, Clone, Serialize)]
pub(super) struct ProgCost {
    pub(super) name: String,
    pub(super) run_cnt: u64,
    pub(super) run_time_ns: u64,
    pub(super) ns_per_run: Option<f64>,
}

#[derive(Debug, Clone, Serialize)]
pub(super) struct KernelCost {
    pub(super) rep: usize,
    pub(super) workload: String,
    pub(super) tool: String,
    /// Signal tracepoint hits the workload caused during the measurement.
    pub(super) events: u64,
    /// Events the tool emitted (its own count) — 0 when a filter rejects them all.
    pub(super) events_emitted: Option<u64>,
    pub(super) total_run_time_ns: u64,
    /// Sum of all the tool's programs' run time divided by the workload's tracepoint hits.
    pub(super) ns_per_event: Option<f64>,
    /// run_time_ns / run_cnt of signal-trace's signal_generate and signal_deliver programs
    /// together: the cost of one run of the program that emits (or filters out) an event.
    #[serde(default)]
    pub(super) ns_per_signal_run: Option<f64>,
    /// For a workload that sends no signal: all the tool's programs' run time per unit of work
    /// (per getppid call).
    #[serde(default)]
    pub(super) ns_per_op: Option<f64>,
    pub(super) programs: Vec<ProgCost>,
    pub(super) error: Option<String>,
}

impl Bench {
    pub(super) fn pinned(&self, cpu: Option<usize>, program: &Path) -> Command {
        match cpu {
            Some(c) => {
                let mut cmd = Command::new("taskset");
                cmd.arg("-c").arg(c.to_string()).arg(program);
                cmd
            }
            None => Command::new(program),
        }
    }

    pub(super) fn tracer_cpu(&self) -> Option<usize> {
        self.pin.map(|(t, _)| t)
    }

    pub(super) fn workload_cpu(&self) -> Option<usize> {
        self.pin.map(|(_, w)| w)
    }

    /// An empty sample of `w` under `tool`; its `error` already says "n/a" and why when the
    /// tool cannot run on this machine.
    pub(super) fn sample(&self, w: Workload, tool: Tool, rep: usize, seconds: f64) -> Sample {
        let mut s = Sample {
            workload: w.key().into(),
            tool: tool.key().into(),
            rep,
            seconds,
            ..Sample::default()
        };
        if let Some(r) = self.unavailable.get(&tool) {
            s.error = Some(format!("n/a: {r}"));
        }
        s
    }

    /// One workload run under one configuration.
    pub(super) fn measure(&self, w: Workload, tool: Tool, rep: usize, seconds: f64) -> Sample {
        let mut s = self.sample(w, tool, rep, seconds);
        if s.error.is_some() {
            return s;
        }
        let result = match tool {
            Tool::Untraced => self.workload(w, seconds).map(|(ops, secs)| {
                s.ops = Some(ops);
                s.seconds = secs;
            }),
            Tool::Strace => self.under_strace(w, seconds, &mut s),
            _ => self.under_tracer(w, tool, seconds, &mut s),
        };
        if let Err(e) = result {
            s.error = Some(format!("{e:#}"));
        }
        if let Some(ops) = s.ops {
            s.rate = Some(ops as f64 / s.seconds);
            s.events_expected = w.events_per_op().map(|e| ops * e);
        }
        s
    }

    pub(super) fn under_tracer(
        &self,
        w: Workload,
        tool: Tool,
        seconds: f64,
        s: &mut Sample,
    ) -> anyhow::Result<()> {
        let mut t = self.start(tool)?;
        let pid = t.child.id();
        let (before, before_ns) = (cpu_ticks(pid), cpu_ns(pid));
        let run = self.workload(w, seconds);
        let (after, after_ns) = (cpu_ticks(pid), cpu_ns(pid));
        s.tracer_peak_rss_kib = peak_rss_kib(pid);
        if let (Some(a), Some(b)) = (after, before) {
            let cpu = a.saturating_sub(b) as f64 / self.clk_tck;
            s.tracer_cpu_seconds = Some(cpu);
        }
        let stopped = t.stop();
        let (ops, secs) = run?;
        s.ops = Some(ops);
        s.seconds = secs;
        if let Some(cpu) = s.tracer_cpu_seconds {
            s.tracer_cpu_percent = Some(100.0 * cpu / secs);
        }
        let cpu_ns = after_ns.zip(before_ns).map(|(a, b)| a.saturating_sub(b));
        if let Some(ns) = cpu_ns {
            s.tracer_cpu_percent_schedstat = Some(ns as f64 / secs / 1e7);
        }
        let stderr = stopped?;
        let (seen, lost) = t.counts(&stderr)?;
        s.events_seen = seen;
        s.lost = lost;
        if let (Some(ns), Some(seen)) = (cpu_ns, seen.filter(|&n| n > 0)) {
            s.tracer_cpu_ns_per_event = Some(ns as f64 / seen as f64);
        }
        Ok(())
    }

    pub(super) fn under_strace(
        &self,
        w: Workload,
        seconds: f64,
        s: &mut Sample,
    ) -> anyhow::Result<()> {
        let out = self.out_file(Tool::Strace);
        // ptrace hands off synchronously between strace and its tracee: both share the
        // workload's CPU, which suits strace far better than splitting them.
        let mut cmd = self.pinned(self.workload_cpu(), Path::new("strace"));
        let (program, args) = self.workload_argv(w, seconds);
        let child = cmd
            .args(["-f", "-qq", "-e", "trace=signal", "-o"])
            .arg(&out)
            .arg(program)
            .args(args)
            .stdin(Stdio::null())
            .stdout(Stdio::piped())
            .stderr(Stdio::piped())
            .spawn()
            .context("cannot start strace")?;
        // strace is the workload's parent: sample its own CPU time and RSS until it exits.
        let pid = child.id();
        let stop = Arc::new(AtomicBool::new(false));
        let last = Arc::new(Mutex::new((None::<u64>, None::<u64>)));
        let sampler = {
            let (stop, last) = (stop.clone(), last.clone());
            thread::spawn(move || {
                while !stop.load(Ordering::Relaxed) {
                    if let Some(t) = cpu_ticks(pid) {
                        let rss = peak_rss_kib(pid);
                        *last.lock().expect("sampler lock") = (Some(t), rss);
                    }
                    thread::sleep(Duration::from_millis(50));
                }
            })
        };
        let out_res = child.wait_with_output().context("cannot wait for strace");
        stop.store(true, Ordering::Relaxed);
        let _ = sampler.join();
        let o = out_res?;
        if !o.status.success() {
            bail!(
                "strace exited with {}: {}",
                o.status,
                String::from_utf8_lossy(&o.stderr).trim()
            );
        }
        let (ops, secs) = parse_workload(&String::from_utf8_lossy(&o.stdout))?;
        s.ops = Some(ops);
        s.seconds = secs;
        let (ticks, rss) = *last.lock().expect("sampler lock");
        if let Some(t) = ticks {
            let cpu = t as f64 / self.clk_tck;
            s.tracer_cpu_seconds = Some(cpu);
            s.tracer_cpu_percent = Some(100.0 * cpu / secs);
        }
        s.tracer_peak_rss_kib = rss;
        // Comparable events: kill/tkill/tgkill calls (generation) and `--- SIGx` (delivery).
        let seen = scan_lines(&out, |l| {
            (l.contains("--- SIG") || l.contains("kill(")) as u64
        })?;
        s.events_seen = Some(seen);
        let _ = fs::remove_file(&out);
        Ok(())
    }

    /// A tracer on an idle host: its CPU time and peak RSS over `seconds`.
    pub(super) fn idle(&self, tool: Tool, rep: usize, seconds: f64) -> Sample {
        let mut s = self.sample(Workload::Idle, tool, rep, seconds);
        if s.error.is_some() {
            return s;
        }
        let res = (|| -> anyhow::Result<()> {
            let mut t = self.start(tool)?;
            let pid = t.child.id();
            let (before, before_ns) = (cpu_ticks(pid), cpu_ns(pid));
            let start = Instant::now();
            thread::sleep(Duration::from_secs_f64(seconds));
            let (after, after_ns) = (cpu_ticks(pid), cpu_ns(pid));
            let secs = start.elapsed().as_secs_f64();
            if let (Some(a), Some(b)) = (after_ns, before_ns) {
                s.tracer_cpu_percent_schedstat = Some(a.saturating_sub(b) as f64 / secs / 1e7);
            }
            s.seconds = secs;
            s.tracer_peak_rss_kib = peak_rss_kib(pid);
            if let (Some(a), Some(b)) = (after, before) {
                let cpu = a.saturating_sub(b) as f64 / self.clk_tck;
                s.tracer_cpu_seconds = Some(cpu);
                s.tracer_cpu_percent = Some(100.0 * cpu / secs);
            }
            let stderr = t.stop()?;
            let (seen, lost) = t.counts(&stderr)?;
            s.events_seen = seen;
            s.lost = lost;
            Ok(())
        })();
        if let Err(e) = res {
            s.error = Some(format!("{e:#}"));
        }
        s
    }

    /// The tracer (default configuration) started with `processes` more processes alive on the
    /// host, idle for `seconds`: its peak RSS with the process-identity cache that full.
    pub(super) fn crowded(&self, processes: usize, seconds: f64) -> Sample {
        let mut crowd = match Command::new(self.bin_dir.join("crowd"))
            .arg(processes.to_string())
            .stdin(Stdio::piped())
            .stdout(Stdio::piped())
            .spawn()
        {
            Ok(c) => c,
            Err(e) => {
                let mut s = self.sample(Workload::Idle, Tool::StJsonDevnull, 0, seconds);
                s.error = Some(format!("cannot start crowd: {e}"));
                return s;
            }
        };
        let mut line = String::new();
        let ready = crowd
            .stdout
            .take()
            .map(|o| BufReader::new(o).read_line(&mut line));
        let mut s = if matches!(ready, Some(Ok(_))) && line.trim() == format!("ready {processes}") {
            self.idle(Tool::StJsonDevnull, 0, seconds)
        } else {
            let mut s = self.sample(Workload::Idle, Tool::StJsonDevnull, 0, seconds);
            s.error = Some(format!(
                "crowd did not start {processes} processes: {line:?}"
            ));
            s
        };
        drop(crowd.stdin.take());
        if let Ok(st) = crowd.wait() {
            if !st.success() && s.error.is_none() {
                s.error = Some(format!("crowd failed: {st}"));
            }
        }
        s
    }

    /// In-kernel cost per BPF program with kernel.bpf_stats_enabled=1 (restored afterwards).
    pub(super) fn kernel_costs(
        &self,
        seconds: f64,
        reps: usize,
        workloads: &[Workload],
    ) -> anyhow::Result<Vec<KernelCost>> {
        let mut costs = Vec::new();
        if !KERNEL_COST_RUNS.iter().any(|(w, _)| workloads.contains(w)) {
            return Ok(costs);
        }
        let _stats = BpfStats::enable()?;
        let runs = KERNEL_COST_RUNS
            .into_iter()
            .filter(|(w, _)| workloads.contains(w));
        for (rep, (w, tool)) in (0..reps).flat_map(|rep| runs.clone().map(move |c| (rep, c))) {
            let mut c = self.kernel_cost(w, tool, seconds);
            c.rep = rep;
            match (&c.ns_per_event.or(c.ns_per_op), &c.error) {
                (_, Some(e)) => eprintln!("bench: in-kernel {} {}: {e}", w.key(), tool.key()),
                (Some(ns), None) => {
                    eprintln!(
                        "bench: in-kernel {} {}: {ns:.1} ns per {}",
                        w.key(),
                        tool.key(),
                        if w.events_per_op().is_some() {
                            "event"
                        } else {
                            "unit of work"
                        }
                    )
                }
                (None, None) => {}
            }
            costs.push(c);
        }
        Ok(costs)
    }

    pub(super) fn kernel_cost(&self, w: Workload, tool: Tool, seconds: f64) -> KernelCost {
        let mut c = KernelCost {
            rep: 0,
            workload: w.key().into(),
            tool: tool.key().into(),
            events: 0,
            events_emitted: None,
            total_run_time_ns: 0,
            ns_per_event: None,
            ns_per_signal_run: None,
            ns_per_op: None,
            programs: Vec::new(),
            error: None,
        };
        if let Some(r) = self.unavailable.get(&tool) {
            c.error = Some(format!("n/a: {r}"));
            return c;
        }
        let res = (|| -> anyhow::Result<()> {
            let mut t = self.start(tool)?;
            let pid = t.child.id();
            let before = prog_stats(pid)?;
            let run = self.workload(w, seconds);
            let after = prog_stats(pid)?;
            let stderr = t.stop()?;
            let (ops, _) = run?;
            let ops_done = ops;
            c.events = ops * w.events_per_op().unwrap_or(0);
            if tool.is_signal_trace() {
                c.events_emitted = t.counts(&stderr)?.0;
            }
            for (id, (name, time, cnt)) in &after {
                let (t0, n0) = before.get(id).map(|(_, t, n)| (*t, *n)).unwrap_or((0, 0));
                let (dt, dn) = (time.saturating_sub(t0), cnt.saturating_sub(n0));
                c.total_run_time_ns += dt;
                c.programs.push(ProgCost {
                    name: name.clone(),
                    run_cnt: dn,
                    run_time_ns: dt,
                    ns_per_run: (dn > 0).then(|| dt as f64 / dn as f64),
                });
            }
            c.programs
                .sort_by(|a, b| b.run_cnt.cmp(&a.run_cnt).then(a.name.cmp(&b.name)));
            c.ns_per_event = (c.events > 0).then(|| c.total_run_time_ns as f64 / c.events as f64);
            if w.events_per_op().is_none() && ops_done > 0 {
                c.ns_per_op = Some(c.total_run_time_ns as f64 / ops_done as f64);
            }
            if tool.is_signal_trace() {
                let signal = c.programs.iter().filter(|p| {
                    p.name.starts_with("signal_generate") || p.name.starts_with("signal_deliver")
                });
                let (time, runs) =
                    signal.fold((0u64, 0u64), |(t, n), p| (t + p.run_time_ns, n + p.run_cnt));
                c.ns_per_signal_run = (runs > 0).then(|| time as f64 / runs as f64);
            }
            Ok(())
        })();
        if let Err(e) = res {
            c.error = Some(format!("{e:#}"));
        }
        c
    }
}

/// Sets kernel.bpf_stats_enabled=1 and restores the previous value when dropped.
pub(super) struct BpfStats {
    pub(super) previous: String,
}

pub(super) const BPF_STATS: &str = "/proc/sys/kernel/bpf_stats_enabled";

impl BpfStats {
    pub(super) fn enable() -> anyhow::Result<Self> {
        let previous = fs::read_to_string(BPF_STATS)
            .with_context(|| format!("cannot read {BPF_STATS}"))?
            .trim()
            .to_string();
        fs::write(BPF_STATS, "1").with_context(|| format!("cannot enable {BPF_STATS}"))?;
        Ok(BpfStats { previous })
    }
}

impl Drop for BpfStats {
    fn drop(&mut self) {
        if let Err(e) = fs::write(BPF_STATS, &self.previous) {
            eprintln!(
                "bench: cannot restore {BPF_STATS} to {}: {e}",
                self.previous
            );
        }
    }
}

/// The BPF programs a process holds: prog id → (name, run_time_ns, run_cnt), from fdinfo.
pub(super) fn prog_stats(pid: u32) -> anyhow::Result<BTreeMap<u32, (String, u64, u64)>> {
    let mut progs = BTreeMap::new();
    let dir = format!("/proc/{pid}/fd");
    for entry in fs::read_dir(&dir).with_context(|| format!("cannot list {dir}"))? {
        let Ok(entry) = entry else { continue };
        let is_prog =
            fs::read_link(entry.path()).is_ok_and(|l| l.to_string_lossy() == "anon_inode:bpf-prog");
        if !is_prog {
            continue;
        }
        let info_path = format!("/proc/{pid}/fdinfo/{}", entry.file_name().to_string_lossy());
        let Ok(info) = fs::read_to_string(&info_path) else {
            continue;
        };
        let field = |k: &str| {
            info.lines()
                .find_map(|l| l.strip_prefix(k))
                .and_then(|v| v.trim().parse::<u64>().ok())
        };
        let (Some(id), Some(time), Some(cnt)) =
            (field("prog_id:"), field("run_time_ns:"), field("run_cnt:"))
        else {
            continue;
        };
        let id = id as u32;
        let name = prog_name(id).unwrap_or_else(|| format!("prog {id}"));
        progs.insert(id, (name, time, cnt));
    }
    Ok(progs)
}

/// A BPF program's name, from BPF_PROG_GET_FD_BY_ID and BPF_OBJ_GET_INFO_BY_FD.
pub(super) fn prog_name(id: u32) -> Option<String> {
    const BPF_PROG_GET_FD_BY_ID: libc::c_long = 13;
    const BPF_OBJ_GET_INFO_BY_FD: libc::c_long = 15;
    // struct bpf_prog_info: u32 id at offset 4, char name[16] at offset 64 (stable UAPI).
    const ID_OFFSET: usize = 4;
    const NAME_OFFSET: usize = 64;
    let mut attr = [0u8; 128];
    attr[..4].copy_from_slice(&id.to_ne_bytes());
    // SAFETY: bpf(2) reads a zeroed attr of the size passed.
    let fd = unsafe {
        libc::syscall(
            libc::SYS_bpf,
            BPF_PROG_GET_FD_BY_ID,
            attr.as_ptr(),
            attr.len(),
        )
    };
    if fd < 0 {
        return None;
    }
    let fd = fd as libc::c_int;
    let mut info = [0u8; 256];
    let mut attr = [0u8; 128];
    attr[..4].copy_from_slice(&(fd as u32).to_ne_bytes());
    attr[4..8].copy_from_slice(&(info.len() as u32).to_ne_bytes());
    attr[8..16].copy_from_slice(&(info.as_mut_ptr() as u64).to_ne_bytes());
    // SAFETY: the kernel writes at most info_len bytes into `info`, which outlives the call.
    let rc = unsafe {
        libc::syscall(
            libc::SYS_bpf,
            BPF_OBJ_GET_INFO_BY_FD,
            attr.as_ptr(),
            attr.len(),
        )
    };
    // SAFETY: fd was returned by the kernel above and is closed once.
    unsafe { libc::close(fd) };
    if rc != 0 || info[ID_OFFSET..ID_OFFSET + 4] != id.to_ne_bytes() {
        return None;
    }
    let raw = &info[NAME_OFFSET..NAME_OFFSET + 16];
    let len = raw.iter().position(|&b| b == 0).unwrap_or(raw.len());
    let name = String::from_utf8_lossy(&raw[..len]).into_owned();
    (!name.is_empty()).then_some(name)
}

pub(super) fn fd_count(pid: u32, target: &str) -> usize {
    fs::read_dir(format!("/proc/{pid}/fd"))
        .map(|d| {
            d.filter_map(Result::ok)
                .filter(|e| fs::read_link(e.path()).is_ok_and(|l| l.to_string_lossy() == target))
                .count()
        })
        .unwrap_or(0)
}

/// utime + stime of a process (all its threads), in clock ticks.
pub(super) fn cpu_ticks(pid: u32) -> Option<u64> {
    let stat = fs::read_to_string(format!("/proc/{pid}/stat")).ok()?;
    let rest = &stat[stat.rfind(')')? + 1..];
    let f: Vec<&str> = rest.split_whitespace().collect();
    // Fields 14 and 15 of stat(5); `rest` starts at field 3.
    Some(f.get(11)?.parse::<u64>().ok()? + f.get(12)?.parse::<u64>().ok()?)
}

/// Time on CPU of all a process's threads, in ns, from /proc/PID/task/*/schedstat.
pub(super) fn cpu_ns(pid: u32) -> Option<u64> {
    let tasks = fs::read_dir(format!("/proc/{pid}/task")).ok()?;
    let mut total = 0;
    for t in tasks.filter_map(Result::ok) {
        let stat = fs::read_to_string(t.path().join("schedstat")).ok()?;
        total += stat.split_whitespace().next()?.parse::<u64>().ok()?;
    }
    Some(total)
}

pub(super) fn peak_rss_kib(pid: u32) -> Option<u64> {
    let status = fs::read_to_string(format!("/proc/{pid}/status")).ok()?;
    status
        .lines()
        .find_map(|l| l.strip_prefix("VmHWM:"))
        .and_then(|v| v.trim().trim_end_matches("kB").trim().parse().ok())
}

/// Sums `f` over the lines of a file (absent file: 0).
pub(super) fn scan_lines(path: &Path, f: impl Fn(&str) -> u64) -> anyhow::Result<u64> {
    let file = match fs::File::open(path) {
        Ok(f) => f,
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => return Ok(0),
        Err(e) => return Err(e).with_context(|| format!("cannot open {}", path.display())),
    };
    let mut reader = BufReader::with_capacity(1 << 20, file);
    let mut buf = Vec::with_capacity(256);
    let mut total = 0;
    loop {
        buf.clear();
        let n = reader
            .read_until(b'\n', &mut buf)
            .with_context(|| format!("cannot read {}", path.display()))?;
        if n == 0 {
            break;
        }
        total += f(&String::from_utf8_lossy(&buf));
    }
    Ok(total)
}

pub(super) fn last_lines(s: &str, n: usize) -> String {
    let lines: Vec<&str> = s.lines().filter(|l| !l.trim().is_empty()).collect();
    lines[lines.len().saturating_sub(n)..].join(" | ")
}
