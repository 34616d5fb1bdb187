//! Remedies in the words of whoever stops the process: one file per orchestrator, each with
//! its own knobs (Kubernetes: `terminationGracePeriodSeconds`, `preStop`; Docker: `--init`,
//! `--stop-timeout`; systemd: `TimeoutStopSec=`, `KillSignal=`…), and [`generic`] for a process
//! no known orchestrator stops (or plain containerd, which has no stop policy of its own).
//!
//! A finding kind describes its [`Situation`]; [`remedy`] picks the orchestrator's text.

use super::*;

mod docker;
mod generic;
mod kubernetes;
mod systemd;

/// What a finding asks a remedy for.
#[derive(Clone, Copy, Debug)]
pub(crate) enum Situation<'a> {
    /// A PID-namespace init without a handler dropped the shutdown signal `signal`.
    InitIgnored { signal: &'a str },
    /// PID 1 got the shutdown signal and passed nothing on to the other processes.
    NotForwarded,
    /// SIGKILL came `measured_ns` after the shutdown signal `signal`, which met `result`;
    /// `configured_s` is the grace the orchestrator is configured to allow, when known.
    Grace {
        signal: &'a str,
        result: TermResult,
        measured_ns: u64,
        configured_s: Option<u64>,
    },
    /// The OOM killer killed it.
    Oom,
    /// SIGKILL without a shutdown signal first.
    KillWithoutTerm,
    /// Its PID 1 exited and the kernel killed the rest of the namespace.
    InitExited,
}

/// The remedy for `situation`, in the words of `orchestrator`; `unit` is the systemd unit when
/// known.
pub(crate) fn remedy(
    orchestrator: Option<Orchestrator>,
    situation: Situation<'_>,
    unit: Option<&str>,
) -> String {
    let specific = match orchestrator {
        Some(Orchestrator::Kubernetes) => kubernetes::remedy(situation),
        Some(Orchestrator::Docker) => docker::remedy(situation, "docker"),
        Some(Orchestrator::Podman) => docker::remedy(situation, "podman"),
        Some(Orchestrator::Systemd) => systemd::remedy(situation, unit),
        Some(Orchestrator::Containerd) | None => None,
    };
    specific.unwrap_or_else(|| generic::remedy(situation))
}

/// "3.003s (configured: 30 s)" or "3.003s".
pub(crate) fn measured(measured_ns: u64, configured_s: Option<u64>, what: &str) -> String {
    match configured_s {
        Some(c) => format!("{} ({what} {c} s)", duration(measured_ns)),
        None => duration(measured_ns),
    }
}
