//! The workloads (bench/*.c): what each one does, its unit of work, the signal events one unit
//! causes, the configurations it runs under, and running it pinned.

use std::process::Stdio;

use anyhow::{bail, Context as _};
use serde::Serialize;

use super::configs::Tool;
use super::Bench;

#[derive(Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Debug, Serialize)]
#[serde(rename_all = "kebab-case")]
pub(super) enum Workload {
    PingPong,
    Storm,
    Idle,
}

impl Workload {
    pub(super) fn key(self) -> &'static str {
        match self {
            Workload::PingPong => "ping-pong",
            Workload::Storm => "storm",
            Workload::Idle => "idle",
        }
    }

    pub(super) fn binary(self) -> &'static str {
        match self {
            Workload::PingPong => "pingpong",
            Workload::Storm => "storm",
            Workload::Idle => "",
        }
    }

    pub(super) fn unit(self) -> &'static str {
        match self {
            Workload::PingPong => "round trips/s",
            Workload::Storm => "signals/s",
            Workload::Idle => "",
        }
    }

    /// Signal tracepoint hits (signal_generate + signal_deliver) per unit of work.
    pub(super) fn events_per_op(self) -> u64 {
        match self {
            Workload::PingPong => 4,
            Workload::Storm => 2,
            Workload::Idle => 0,
        }
    }

    pub(super) fn tools(self) -> &'static [Tool] {
        match self {
            Workload::PingPong => &[
                Tool::Untraced,
                Tool::StJsonDevnull,
                Tool::StSignalsOnly,
                Tool::StJsonStdout,
                Tool::StTextFile,
                Tool::Strace,
                Tool::Bpftrace,
                Tool::PerfTrace,
            ],
            Workload::Storm => &[
                Tool::Untraced,
                Tool::StJsonDevnull,
                Tool::StSignalsOnly,
                Tool::StJsonStdout,
                Tool::StTextFile,
                Tool::StFilterReject,
                Tool::Strace,
                Tool::Bpftrace,
                Tool::PerfTrace,
            ],
            Workload::Idle => &[Tool::StJsonDevnull, Tool::Bpftrace, Tool::PerfTrace],
        }
    }
}

impl Bench {
    /// Runs the pinned workload; returns (ops, seconds) from its own report.
    pub(super) fn workload(&self, w: Workload, seconds: f64) -> anyhow::Result<(u64, f64)> {
        let out = self
            .pinned(self.workload_cpu(), &self.bin_dir.join(w.binary()))
            .arg(seconds.to_string())
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
}

/// "rounds=N seconds=S rate=R" or "signals=N …" from a workload.
pub(super) fn parse_workload(out: &str) -> anyhow::Result<(u64, f64)> {
    let mut ops = None;
    let mut secs = None;
    for kv in out.split_whitespace() {
        match kv.split_once('=') {
            Some(("rounds" | "signals", v)) => ops = v.parse::<u64>().ok(),
            Some(("seconds", v)) => secs = v.parse::<f64>().ok(),
            _ => {}
        }
    }
    match (ops, secs) {
        (Some(o), Some(s)) if s > 0.0 => Ok((o, s)),
        _ => bail!("unexpected workload output: {:?}", out.trim()),
    }
}
