//! The finding kinds, one file each: when it holds, its evidence, its text and its remedy.
//!
//! This file holds the text helpers they share.

use std::fmt::Write as _;

use super::*;
use crate::event::record::Sender;

mod coalesced;
mod events_lost;
mod grace_exceeded;
mod init_ignored;
mod not_forwarded;
mod oom_killed;
mod signal_death;

pub(crate) use coalesced::*;
pub(crate) use events_lost::*;
pub(crate) use grace_exceeded::*;
pub(crate) use init_ignored::*;
pub(crate) use not_forwarded::*;
pub(crate) use oom_killed::*;
pub(crate) use signal_death::*;

// The texts of findings and timelines hold what the records say, raw (`Comm::as_str`, not its
// escaping `Display`): NDJSON carries them as they are, and `render` escapes each text field
// for a terminal once.

pub(crate) fn who(comm: Comm, pid: u32, ns_pid: Option<u32>) -> String {
    let comm = comm.as_str();
    match ns_pid {
        Some(1) if pid != 1 => format!("{comm} (pid {pid}, PID 1 of its namespace)"),
        Some(n) if n != pid => format!("{comm} (pid {pid}, ns pid {n})"),
        _ => format!("{comm} (pid {pid})"),
    }
}

pub(crate) fn peer_text(p: &Peer) -> String {
    format!("{} (pid {})", p.comm.as_str(), p.pid)
}

pub(crate) fn status(x: &Exit) -> String {
    match &x.signal {
        Some(s) => format!(
            "status {} ({s}{})",
            x.exit_code,
            if x.core_dumped { ", core dumped" } else { "" }
        ),
        None => format!("status {}", x.exit_code),
    }
}

/// A duration for people: "3.003s", "5.6ms", "68µs".
pub fn duration(ns: u64) -> String {
    if ns >= 1_000_000_000 {
        format!("{:.3}s", ns as f64 / 1e9)
    } else if ns >= 1_000_000 {
        format!("{:.1}ms", ns as f64 / 1e6)
    } else if ns >= 1_000 {
        format!("{}µs", ns / 1_000)
    } else {
        format!("{ns}ns")
    }
}

pub(crate) fn result_text(g: &Generate) -> String {
    match g.result {
        Outcome::Ignored => format!(
            "ignored ({})",
            g.reason.map(|r| r.describe()).unwrap_or("reason unknown")
        ),
        Outcome::Delivered => match (g.target.disposition, g.target.blocked) {
            (_, Some(true)) => "queued, blocked".into(),
            (Some(Disposition::Handler), _) => format!(
                "queued for handler {}",
                g.target.handler.as_deref().unwrap_or("?")
            ),
            (Some(Disposition::Default), _) => "queued, default action".into(),
            _ => "queued".into(),
        },
        Outcome::AlreadyPending => "merged into the one already pending".into(),
        Outcome::Overflow => "dropped: real-time queue full (sender got EAGAIN)".into(),
        Outcome::LoseInfo => "queued without its siginfo".into(),
    }
}

/// A sender as evidence names it: its comm and pid, the command line it ran (cut to
/// [`COMMAND_CHARS`] characters), and who started it, nearest first, as far as the record
/// knows: `kill (pid 40), running "kill -TERM 7", child of sh (pid 30) ← cron (pid 2) ←
/// systemd (pid 1)`.
pub(crate) fn sender_text(s: &Sender) -> String {
    let mut t = format!("{} (pid {})", s.comm.as_str(), s.pid);
    match (&s.args, &s.exe) {
        (Some(args), _) if !args.is_empty() => {
            let line: Vec<_> = args.iter().map(|a| a.lossy()).collect();
            let line = line.join(" ");
            let mut cut: String = line.chars().take(COMMAND_CHARS).collect();
            if cut.len() < line.len() || s.args_truncated {
                cut.push('…');
            }
            let _ = write!(t, ", running \"{cut}\"");
        }
        (_, Some(exe)) => {
            let _ = write!(t, ", running {}", exe.lossy());
        }
        _ => {}
    }
    if !s.ancestors.is_empty() {
        let chain: Vec<String> = s
            .ancestors
            .iter()
            .map(|a| {
                let name = match (&a.comm, &a.exe) {
                    (Some(c), _) => c.as_str().into_owned(),
                    (None, Some(e)) => e.lossy().rsplit('/').next().unwrap_or("").to_owned(),
                    (None, None) => "?".to_owned(),
                };
                format!("{name} (pid {})", a.pid)
            })
            .collect();
        let _ = write!(t, ", child of {}", chain.join(" ← "));
    }
    t
}

/// How much of a sender's command line evidence shows.
pub(crate) const COMMAND_CHARS: usize = 100;

pub(crate) fn evidence_generate(g: &Generate) -> Evidence {
    let target = who(
        g.target.comm,
        g.target.pid.unwrap_or(g.target.tid),
        g.target.ns_pid,
    );
    let from = if g.si_code == SI_KERNEL {
        format!(
            "from the kernel (in {} (pid {}))",
            g.sender.comm.as_str(),
            g.sender.pid
        )
    } else if g.sender.pid == g.target.pid.unwrap_or(g.target.tid) {
        "raised by itself".to_string()
    } else {
        format!("from {}", sender_text(&g.sender))
    };
    Evidence {
        time: g.time,
        event: "generate".into(),
        text: format!(
            "{} ({}) {from} to {target}: {}",
            g.signal,
            g.code,
            result_text(g)
        ),
    }
}

pub(crate) fn step_text(g: &Generate, sig: &Sig) -> String {
    let target = who(
        g.target.comm,
        g.target.pid.unwrap_or(g.target.tid),
        g.target.ns_pid,
    );
    let from = if g.si_code == SI_KERNEL && g.signo == SIGKILL {
        format!("from the kernel (in {})", peer_text(&sig.sender))
    } else {
        format!("from {}", peer_text(&sig.sender))
    };
    let disposition = match g.target.disposition {
        Some(Disposition::Handler) => ", which has a handler",
        Some(Disposition::Default) if g.signo != SIGKILL => ", which has no handler",
        Some(Disposition::Ignore) => ", which ignores it",
        _ => "",
    };
    format!("{} {from} to {target}{disposition}", g.signal)
}

pub(crate) fn container_text(c: &Container) -> String {
    let short = c.id.get(..12).unwrap_or(&c.id);
    let runtime = match c.runtime.as_str() {
        "docker" => "Docker container",
        "podman" => "podman container",
        _ => "container",
    };
    match (&c.namespace, &c.pod, &c.name, &c.compose) {
        (Some(ns), Some(pod), Some(name), _) => {
            format!("container {name} of pod {ns}/{pod} ({short})")
        }
        (_, _, Some(name), Some(compose)) => format!(
            "{runtime} {name} (Compose service {} of project {}, {short})",
            compose.service, compose.project
        ),
        (_, _, Some(name), None) => format!("{runtime} {name} ({short})"),
        _ => format!("{runtime} {short}"),
    }
}

pub(crate) fn where_text(p: &Proc) -> String {
    match (&p.container, &p.unit, p.cgroup_id) {
        (Some(c), _, _) => format!(" in {}", container_text(c)),
        (None, Some(u), _) => format!(" in unit {u}"),
        (None, None, Some(cg)) if cg > ROOT_CGROUP => format!(" in cgroup {cg}"),
        _ => String::new(),
    }
}

/// The remedy for `situation` in the words of whoever stops `p`.
pub(crate) fn remedy_for(p: &Proc, situation: Situation<'_>) -> String {
    remedy(p.orchestrator(), situation, p.unit.as_deref())
}

pub(crate) fn list(ps: &[ProcessRef]) -> String {
    ps.iter()
        .map(|p| format!("{} (pid {})", p.comm.as_str(), p.pid))
        .collect::<Vec<_>>()
        .join(", ")
}

pub(crate) fn base(kind: FindingKind, severity: Severity, time: Time, p: &Proc) -> Finding {
    let mut f = Finding::new(kind, severity, time, p.process_ref());
    f.host.clone_from(&p.node.host);
    f.boot_id.clone_from(&p.node.boot_id);
    f.container.clone_from(&p.container);
    f.unit = p.unit.as_deref().map(str::to_owned);
    f.orchestrator = p.orchestrator();
    f.cgroup_id = p.cgroup_id;
    f
}
