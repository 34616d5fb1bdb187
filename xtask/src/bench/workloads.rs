//! The workloads (bench/*.c): what each one does, its unit of work, the signal events and the
//! syscalls one unit causes, the configurations it runs under, building and running it pinned.

use std::ffi::OsString;
use std::fs;
use std::io::Write as _;
use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};

use anyhow::{bail, Context as _};
use serde::Serialize;

use super::configs::Tool;
use super::Bench;

/// Size of the file the `gzip` workload compresses.
const GZIP_INPUT_BYTES: usize = 2 << 20;

#[derive(Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Debug, Serialize)]
#[serde(rename_all = "kebab-case")]
pub(super) enum Workload {
    PingPong,
    Storm,
    /// A tight loop of getppid(2): the tax on every syscall of the host.
    Getppid,
    /// One byte back and forth over two pipes between two processes.
    Pipe,
    /// `gzip -c` of a generated text file, run over and over by `runprog`.
    Gzip,
    /// `/bin/true` run over and over by `runprog`: a fork, an exec and an exit each, what the
    /// tracer's exec and fork programs cost.
    Spawn,
    Idle,
}

impl Workload {
    /// Every workload, in the order of a repetition.
    pub(super) const ALL: [Workload; 7] = [
        Workload::PingPong,
        Workload::Storm,
        Workload::Getppid,
        Workload::Pipe,
        Workload::Gzip,
        Workload::Spawn,
        Workload::Idle,
    ];

    /// The workloads that send no signal: what a tracer costs the rest of the host.
    pub(super) const HOST: [Workload; 4] = [
        Workload::Getppid,
        Workload::Pipe,
        Workload::Gzip,
        Workload::Spawn,
    ];

    pub(super) fn key(self) -> &'static str {
        match self {
            Workload::PingPong => "ping-pong",
            Workload::Storm => "storm",
            Workload::Getppid => "getppid",
            Workload::Pipe => "pipe",
            Workload::Gzip => "gzip",
            Workload::Spawn => "spawn",
            Workload::Idle => "idle",
        }
    }

    /// The program built from bench/BINARY.c.
    pub(super) fn binary(self) -> &'static str {
        match self {
            Workload::PingPong => "pingpong",
            Workload::Storm => "storm",
            Workload::Getppid => "getppid",
            Workload::Pipe => "pipe",
            Workload::Gzip | Workload::Spawn => "runprog",
            Workload::Idle => "",
        }
    }

    pub(super) fn unit(self) -> &'static str {
        match self {
            Workload::PingPong | Workload::Pipe => "round trips/s",
            Workload::Storm => "signals/s",
            Workload::Getppid => "calls/s",
            Workload::Gzip | Workload::Spawn => "runs/s",
            Workload::Idle => "",
        }
    }

    /// What one unit of work is, for the report.
    pub(super) fn describe(self) -> &'static str {
        match self {
            Workload::PingPong => "Ping-pong between two processes (kill + sigsuspend, handlers)",
            Workload::Storm => "raise() + handler storm in one process",
            Workload::Getppid => "`getppid()` loop (1 syscall per call)",
            Workload::Pipe => {
                "pipe ping-pong between two processes (1 byte; 2 write + 2 read per round trip)"
            }
            Workload::Gzip => {
                "`gzip -c` of a 2 MiB generated text file to /dev/null, run over and over"
            }
            Workload::Spawn => "`/bin/true` run over and over (fork + exec + exit + wait)",
            Workload::Idle => "idle host",
        }
    }

    /// Signal tracepoint hits (signal_generate + signal_deliver) per unit of work; None for
    /// the workloads that send no signal (their runs may still see other processes' events).
    pub(super) fn events_per_op(self) -> Option<u64> {
        match self {
            Workload::PingPong => Some(4),
            Workload::Storm => Some(2),
            Workload::Getppid
            | Workload::Pipe
            | Workload::Gzip
            | Workload::Spawn
            | Workload::Idle => None,
        }
    }

    /// Syscalls per unit of work when the workload fixes them; the gzip run's are counted once
    /// per benchmark (`Bench::count_gzip_syscalls`).
    pub(super) fn syscalls_per_op(self) -> Option<f64> {
        match self {
            Workload::Getppid => Some(1.0),
            Workload::Pipe => Some(4.0),
            _ => None,
        }
    }

    pub(super) fn tools(self) -> &'static [Tool] {
        match self {
            Workload::PingPong => &[
                Tool::Untraced,
                Tool::StJsonDevnull,
                Tool::StNoSendFailed,
                Tool::StWithSendFailed,
                Tool::StNoIdentity,
                Tool::StJsonStdout,
                Tool::StTextFile,
                Tool::Strace,
                Tool::Bpftrace,
                Tool::PerfTrace,
            ],
            Workload::Storm => &[
                Tool::Untraced,
                Tool::StJsonDevnull,
                Tool::StNoSendFailed,
                Tool::StWithSendFailed,
                Tool::StNoIdentity,
                Tool::StJsonStdout,
                Tool::StTextFile,
                Tool::StFilterReject,
                Tool::Strace,
                Tool::Bpftrace,
                Tool::PerfTrace,
            ],
            // strace stops its tracee at every syscall whatever it prints, and bpftrace only
            // attaches the two signal tracepoints: both are the reference points either side.
            Workload::Getppid | Workload::Pipe | Workload::Gzip | Workload::Spawn => &[
                Tool::Untraced,
                Tool::StJsonDevnull,
                Tool::StNoSendFailed,
                Tool::StWithSendFailed,
                Tool::StNoIdentity,
                Tool::Strace,
                Tool::Bpftrace,
            ],
            Workload::Idle => &[Tool::StJsonDevnull, Tool::Bpftrace, Tool::PerfTrace],
        }
    }
}

/// Compiles bench/*.c into `bin_dir` and writes the gzip workload's input file there.
pub(super) fn build(root: &Path, bin_dir: &Path) -> anyhow::Result<()> {
    for w in Workload::ALL.into_iter().filter(|w| *w != Workload::Idle) {
        let src = root.join("bench").join(format!("{}.c", w.binary()));
        super::super::sh(
            Command::new("gcc")
                .args(["-O2", "-Wall", "-Wextra", "-o"])
                .arg(bin_dir.join(w.binary()))
                .arg(&src),
        )?;
    }
    super::super::sh(
        Command::new("gcc")
            .args(["-O2", "-Wall", "-Wextra", "-o"])
            .arg(bin_dir.join("crowd"))
            .arg(root.join("bench/crowd.c")),
    )?;
    write_gzip_input(&gzip_input(bin_dir))
}

fn gzip_input(bin_dir: &Path) -> PathBuf {
    bin_dir.join("gzip-input.txt")
}

/// Deterministic English-like text (words from a fixed list, picked by a fixed xorshift), so
/// that every run compresses the same bytes at an ordinary ratio.
fn write_gzip_input(path: &Path) -> anyhow::Result<()> {
    if fs::metadata(path).is_ok_and(|m| m.len() == GZIP_INPUT_BYTES as u64) {
        return Ok(());
    }
    const WORDS: [&str; 32] = [
        "the",
        "signal",
        "process",
        "kernel",
        "of",
        "and",
        "handler",
        "to",
        "a",
        "pending",
        "delivered",
        "in",
        "mask",
        "thread",
        "is",
        "group",
        "exit",
        "code",
        "for",
        "container",
        "with",
        "blocked",
        "ignored",
        "queue",
        "on",
        "default",
        "action",
        "core",
        "stop",
        "child",
        "parent",
        "session",
    ];
    let mut x: u64 = 0x9E37_79B9_7F4A_7C15;
    let mut text = Vec::with_capacity(GZIP_INPUT_BYTES + 16);
    let mut col = 0;
    while text.len() < GZIP_INPUT_BYTES {
        x ^= x << 13;
        x ^= x >> 7;
        x ^= x << 17;
        let w = WORDS[(x % WORDS.len() as u64) as usize];
        text.extend_from_slice(w.as_bytes());
        col += w.len() + 1;
        if col > 72 {
            text.push(b'\n');
            col = 0;
        } else {
            text.push(b' ');
        }
    }
    text.truncate(GZIP_INPUT_BYTES);
    let mut f =
        fs::File::create(path).with_context(|| format!("cannot create {}", path.display()))?;
    f.write_all(&text)
        .with_context(|| format!("cannot write {}", path.display()))
}

impl Bench {
    /// The workload's program and arguments for a run of `seconds`.
    pub(super) fn workload_argv(&self, w: Workload, seconds: f64) -> (PathBuf, Vec<OsString>) {
        let mut args: Vec<OsString> = vec![seconds.to_string().into()];
        if w == Workload::Gzip {
            args.extend(["gzip".into(), "-c".into()]);
            args.push(gzip_input(&self.bin_dir).into());
        }
        if w == Workload::Spawn {
            args.push("/bin/true".into());
        }
        (self.bin_dir.join(w.binary()), args)
    }

    /// Runs the pinned workload; returns (ops, seconds) from its own report.
    pub(super) fn workload(&self, w: Workload, seconds: f64) -> anyhow::Result<(u64, f64)> {
        let (program, args) = self.workload_argv(w, seconds);
        let out = self
            .pinned(self.workload_cpu(), &program)
            .args(args)
            .stdin(Stdio::null())
            .output()
            .with_context(|| format!("cannot run the {} workload", w.key()))?;
        if !out.status.success() {
            bail!(
                "the {} workload failed ({}): {}",
                w.key(),
                out.status,
                String::from_utf8_lossy(&out.stderr).trim()
            );
        }
        parse_workload(&String::from_utf8_lossy(&out.stdout))
    }

    /// Syscalls of one `gzip -c` run of the workload's input, counted by `strace -f -c`; the
    /// driver's fork, wait and redirection (about 6 per run) are left out.
    pub(super) fn count_gzip_syscalls(&self) -> anyhow::Result<f64> {
        let summary = self.tmp.join("gzip-syscalls.txt");
        let status = Command::new("strace")
            .args(["-f", "-c", "-U", "calls,name", "-o"])
            .arg(&summary)
            .args(["gzip", "-c"])
            .arg(gzip_input(&self.bin_dir))
            .stdin(Stdio::null())
            .stdout(Stdio::null())
            .status()
            .context("cannot run strace -c gzip")?;
        if !status.success() {
            bail!("strace -c gzip exited with {status}");
        }
        let text = fs::read_to_string(&summary)
            .with_context(|| format!("cannot read {}", summary.display()))?;
        let _ = fs::remove_file(&summary);
        strace_total_calls(&text)
            .with_context(|| format!("no total in strace's summary: {}", text.trim()))
    }
}

/// The total of `strace -c -U calls,name`'s summary ("   N total").
fn strace_total_calls(summary: &str) -> Option<f64> {
    summary.lines().find_map(|l| {
        let mut f = l.split_whitespace();
        let calls = f.next()?.parse::<f64>().ok()?;
        (f.next()? == "total").then_some(calls)
    })
}

/// "rounds=N seconds=S rate=R", "signals=N …", "calls=N …" or "runs=N …" from a workload.
pub(super) fn parse_workload(out: &str) -> anyhow::Result<(u64, f64)> {
    let mut ops = None;
    let mut secs = None;
    for kv in out.split_whitespace() {
        match kv.split_once('=') {
            Some(("rounds" | "signals" | "calls" | "runs", v)) => ops = v.parse::<u64>().ok(),
            Some(("seconds", v)) => secs = v.parse::<f64>().ok(),
            _ => {}
        }
    }
    match (ops, secs) {
        (Some(o), Some(s)) if s > 0.0 => Ok((o, s)),
        _ => bail!("unexpected workload output: {:?}", out.trim()),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn workload_reports_parse_for_every_unit() {
        assert_eq!(
            parse_workload("calls=1024 seconds=0.5 rate=2048.0\n").unwrap(),
            (1024, 0.5)
        );
        assert_eq!(
            parse_workload("runs=3 seconds=1.25 rate=2.4").unwrap(),
            (3, 1.25)
        );
        assert_eq!(parse_workload("rounds=7 seconds=2").unwrap(), (7, 2.0));
        assert!(parse_workload("runs=3").is_err());
        assert!(parse_workload("calls=3 seconds=0").is_err());
    }

    #[test]
    fn strace_summary_total_is_read() {
        let summary = "    calls syscall\n--------- ----------------\n      256 read\n       \
                       12 write\n--------- ----------------\n      268 total\n";
        assert_eq!(strace_total_calls(summary), Some(268.0));
        assert_eq!(strace_total_calls("    calls syscall\n"), None);
    }

    #[test]
    fn gzip_input_is_fixed_text() {
        let dir = std::env::temp_dir().join(format!("bench-gzip-{}", std::process::id()));
        fs::create_dir_all(&dir).unwrap();
        let (a, b) = (dir.join("a"), dir.join("b"));
        write_gzip_input(&a).unwrap();
        write_gzip_input(&b).unwrap();
        let (ta, tb) = (fs::read(&a).unwrap(), fs::read(&b).unwrap());
        fs::remove_dir_all(&dir).unwrap();
        assert_eq!(ta.len(), GZIP_INPUT_BYTES);
        assert_eq!(ta, tb);
        assert!(ta
            .iter()
            .all(|c| c.is_ascii_lowercase() || *c == b' ' || *c == b'\n'));
    }
}
