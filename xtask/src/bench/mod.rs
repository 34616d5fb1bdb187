//! `cargo xtask bench`: signal-trace's overhead against no tracing, strace, bpftrace and
//! `perf trace`, on signal workloads and on workloads that send no signal (the tax on the rest
//! of the host), built from bench/*.c.
//!
//! Every configuration of one workload runs once per repetition, in turn (A B C … A B C …), so
//! drift on the machine spreads over all of them; summaries are medians with min–max. The
//! tracer is pinned to one CPU and the workload to another when there are two. Results go to
//! bench/results.json (every run, raw) and to the generated section of BENCHMARKS.md.
//!
//! This module runs the whole benchmark in order; `workloads`, `configs`, `tracer`, `measure`,
//! `report` and `targets` hold the parts.

mod configs;
mod measure;
mod report;
mod targets;
mod tracer;
mod workloads;

use std::collections::BTreeMap;
use std::fs;
use std::path::PathBuf;
use std::process::{Command, Stdio};
use std::thread;
use std::time::SystemTime;

use anyhow::{bail, Context as _};

use self::configs::Tool;
use self::report::{describe, host_tax, loadavg, machine, render, write_section, Results, CROWD};
use self::targets::{targets, Verdict};
use self::workloads::Workload;

const DEFAULT_RING: &str = "4 MiB (default)";

#[derive(clap::Args, Debug)]
pub struct BenchArgs {
    /// Repetitions of each configuration (default 5; 1 with --quick).
    #[arg(long)]
    reps: Option<usize>,
    /// Seconds per workload run (default 5; 1 with --quick).
    #[arg(long)]
    seconds: Option<f64>,
    /// Smoke run: one short repetition and a 5 s sustained test.
    #[arg(long)]
    quick: bool,
    /// Only these workloads (repeatable): ping-pong, storm, getppid, pipe, gzip, spawn, idle. The
    /// in-kernel cost runs and the sustained storm follow the signal workloads named.
    #[arg(long = "workload", value_parser = parse_workload_name)]
    workloads: Vec<Workload>,
}

fn parse_workload_name(name: &str) -> Result<Workload, String> {
    Workload::ALL
        .into_iter()
        .find(|w| w.key() == name)
        .ok_or_else(|| {
            let known: Vec<&str> = Workload::ALL.iter().map(|w| w.key()).collect();
            format!("unknown workload {name:?} (known: {})", known.join(", "))
        })
}

/// What every measurement needs: paths, pinning and the tools that cannot run here.
struct Bench {
    root: PathBuf,
    st: PathBuf,
    bin_dir: PathBuf,
    tmp: PathBuf,
    script: PathBuf,
    /// (tracer CPU, workload CPU) when pinning is possible.
    pin: Option<(usize, usize)>,
    cpus: usize,
    clk_tck: f64,
    unavailable: BTreeMap<Tool, String>,
}

pub fn run(args: &BenchArgs) -> anyhow::Result<()> {
    if !super::is_root() {
        bail!("the benchmark loads BPF programs and sets kernel.bpf_stats_enabled: run `cargo xtask bench` as root");
    }
    let reps = args.reps.unwrap_or(if args.quick { 1 } else { 5 }).max(1);
    let seconds = args.seconds.unwrap_or(if args.quick { 1.0 } else { 5.0 });
    if !(seconds > 0.0 && seconds.is_finite()) {
        bail!("--seconds must be a positive number of seconds");
    }
    let idle_seconds = (seconds * 2.0).max(2.0);
    let sustained_seconds = if args.quick { 5.0 } else { 60.0 };

    let root = super::root();
    super::setup(false)?;
    apt_install(&[
        "strace",
        "bpftrace",
        "linux-perf",
        "gcc",
        "libc6-dev",
        "util-linux",
    ])?;
    super::sh(Command::new("cargo").args(["build", "--release", "--package", "signal-trace"]))?;
    let bin_dir = root.join("target/bench");
    fs::create_dir_all(&bin_dir).with_context(|| format!("cannot create {}", bin_dir.display()))?;
    workloads::build(&root, &bin_dir)?;
    let tmp = bin_dir.join("tmp");
    fs::create_dir_all(&tmp).with_context(|| format!("cannot create {}", tmp.display()))?;

    let cpus = thread::available_parallelism()
        .map(|n| n.get())
        .unwrap_or(1);
    let has_taskset = Command::new("taskset")
        .arg("--version")
        .stdout(Stdio::null())
        .status()
        .is_ok_and(|s| s.success());
    let pin = (cpus >= 2 && has_taskset).then_some((0, 1));
    // SAFETY: sysconf has no preconditions.
    let clk_tck = unsafe { libc::sysconf(libc::_SC_CLK_TCK) }.max(1) as f64;
    let mut bench = Bench {
        st: root.join("target/release/signal-trace"),
        script: root.join("bench/signals.bt"),
        root,
        bin_dir,
        tmp,
        pin,
        cpus,
        clk_tck,
        unavailable: BTreeMap::new(),
    };
    bench.probe_tools();
    let selected: Vec<Workload> = Workload::ALL
        .into_iter()
        .filter(|w| args.workloads.is_empty() || args.workloads.contains(w))
        .collect();
    let default_programs = bench.default_programs();
    match &default_programs {
        Ok(p) => eprintln!("bench: the default configuration attaches {}", p.join(", ")),
        Err(e) => eprintln!("bench: cannot list the default configuration's programs: {e:#}"),
    }
    let gzip_syscalls = if selected.contains(&Workload::Gzip) {
        bench
            .count_gzip_syscalls()
            .inspect(|n| eprintln!("bench: one gzip run makes {n} syscalls"))
            .inspect_err(|e| eprintln!("bench: cannot count gzip's syscalls: {e:#}"))
            .ok()
    } else {
        None
    };

    let loadavg_before = loadavg();
    eprintln!("bench: load average {loadavg_before}; {reps} repetitions of {seconds} s");
    let mut runs = Vec::new();
    for rep in 0..reps {
        for &w in &selected {
            for &tool in w.tools() {
                let s = if w == Workload::Idle {
                    bench.idle(tool, rep, idle_seconds)
                } else {
                    bench.measure(w, tool, rep, seconds)
                };
                eprintln!("bench: {}", describe(&s));
                runs.push(s);
            }
        }
    }

    let kernel_cost = bench.kernel_costs(seconds, reps, &selected)?;

    let sustained = selected.contains(&Workload::Storm).then(|| {
        eprintln!("bench: sustained raise storm under signal-trace for {sustained_seconds} s");
        let s = bench.measure(Workload::Storm, Tool::StJsonDevnull, 0, sustained_seconds);
        eprintln!("bench: {}", describe(&s));
        s
    });
    let crowded = selected.contains(&Workload::Idle).then(|| {
        eprintln!("bench: signal-trace idle with {CROWD} more processes alive");
        let s = bench.crowded(CROWD, idle_seconds);
        eprintln!("bench: {}", describe(&s));
        s
    });
    let host_tax = host_tax(&runs, gzip_syscalls);

    let machine = machine(loadavg_before, loadavg());
    let results = Results {
        generated_unix: SystemTime::now()
            .duration_since(SystemTime::UNIX_EPOCH)
            .map(|d| d.as_secs())
            .unwrap_or(0),
        command: std::env::args().skip(1).collect::<Vec<_>>().join(" "),
        quick: args.quick,
        reps,
        seconds,
        idle_seconds,
        sustained_seconds,
        pinning: match bench.pin {
            Some((t, w)) => format!(
                "signal-trace, bpftrace and perf trace on CPU {t}, the workload on CPU {w}; strace \
                 shares CPU {w} with its tracee, as ptrace hands off synchronously (taskset)"
            ),
            None => "none (one CPU or no taskset)".into(),
        },
        ring_size: DEFAULT_RING,
        machine,
        unavailable: bench
            .unavailable
            .iter()
            .map(|(t, r)| (t.key().to_string(), r.clone()))
            .collect(),
        workloads: selected.iter().map(|w| w.key().to_string()).collect(),
        default_programs: default_programs.ok(),
        runs,
        host_tax,
        kernel_cost,
        sustained,
        crowded,
    };
    let json_path = bench.root.join("bench/results.json");
    let json = serde_json::to_string_pretty(&results).context("cannot encode the results")?;
    fs::write(&json_path, json + "\n")
        .with_context(|| format!("cannot write {}", json_path.display()))?;
    let md = render(&results);
    write_section(&bench.root.join("BENCHMARKS.md"), &md)?;
    let _ = fs::remove_dir_all(&bench.tmp);
    println!("{md}");
    for (target, measured, verdict) in targets(&results) {
        if verdict == Verdict::Missed {
            eprintln!("bench: target missed: {target}: {measured}");
        }
    }
    eprintln!("bench: wrote bench/results.json and BENCHMARKS.md");
    Ok(())
}

/// Installs the Debian packages that are missing; quick when all are there.
fn apt_install(pkgs: &[&str]) -> anyhow::Result<()> {
    let missing: Vec<&str> = pkgs
        .iter()
        .copied()
        .filter(|p| {
            Command::new("dpkg-query")
                .args(["-W", "-f=${Status}", p])
                .stderr(Stdio::null())
                .output()
                .map(|o| !String::from_utf8_lossy(&o.stdout).contains("install ok installed"))
                .unwrap_or(true)
        })
        .collect();
    if missing.is_empty() {
        return Ok(());
    }
    eprintln!("bench: installing {}", missing.join(" "));
    super::sh(Command::new("apt-get").args(["update", "-qq"]))?;
    super::sh(
        Command::new("apt-get")
            .env("DEBIAN_FRONTEND", "noninteractive")
            .args(["install", "-y", "-qq", "--no-install-recommends"])
            .args(&missing),
    )
}
