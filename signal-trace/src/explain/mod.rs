//! Diagnosis: turns a stream of [`Record`]s into named findings with evidence and remedies.
//!
//! The engine is pure: no I/O and no clock. Records are pushed in time order, and the record
//! times are the only clock, so a live trace and the replay of its NDJSON recording give the same
//! findings. Some conclusions need a short wait (the rest of a container dies just after its
//! PID 1); they come out once a later record (or [`Engine::advance`]) passes their settle time,
//! or at [`Engine::finish`].
//!
//! Kinds of finding:
//! - `init_ignored`: a shutdown signal to a PID-namespace init without a handler was dropped.
//! - `not_forwarded`: a container's PID 1 got SIGTERM, its other processes got nothing from it
//!   and died by SIGKILL.
//! - `grace_exceeded`: SIGKILL followed SIGTERM and the process died of it (status 137).
//! - `oom_killed`: the kernel's OOM killer killed the process.
//! - `signal_death`: a death by a signal's default action not explained by the above.
//! - `coalesced`: standard signals merged while pending, real-time signals dropped on overflow.
//! - `events_lost`: the tracer lost events; findings around that time may be incomplete.
//!
//! Layout: [`model`] holds what a finding and a timeline are (the NDJSON contract); `state`
//! what is known of each process between records; `orchestrator` who decided a stop (the
//! sender's program and ancestry) and so which orchestrator a finding names; `engine` the state
//! machine that decides when a finding is due; `kinds/` one file per finding kind, with its evidence, text and
//! remedy; `remedy/` the remedy texts, one file per orchestrator (Kubernetes, Docker and
//! podman, systemd, and a generic one); [`render`] the text for people. A new kind is a file in `kinds/`, a variant of
//! [`FindingKind`], and the call from the engine that raises it.

use std::borrow::Cow;
use std::collections::{BTreeMap, BTreeSet, HashMap, VecDeque};
use std::fmt::{self, Write as _};

use serde::{Deserialize, Deserializer, Serialize, Serializer};

use crate::event::names::{
    default_action, is_standard, DefaultAction, SIGABRT, SIGBUS, SIGFPE, SIGHUP, SIGILL, SIGINT,
    SIGKILL, SIGPIPE, SIGQUIT, SIGSEGV, SIGSYS, SIGTERM, SIGTRAP,
};
use crate::event::record::*;

mod engine;
mod kinds;
pub mod model;
mod orchestrator;
mod remedy;
pub mod render;
mod state;

pub use engine::Engine;
pub use kinds::duration;
use kinds::*;
pub use model::*;
use orchestrator::*;
use remedy::{remedy, Situation};
pub use render::{render_text, render_timeline};
use state::*;

/// How long after a shutdown's exit to wait for the deaths it causes (the kernel kills the rest
/// of a PID namespace right after its init exits; runtimes kill a whole cgroup at once).
pub(crate) const SETTLE_NS: u64 = 1_000_000_000;
/// A coalescing aggregate is concluded after this long without a new merged or dropped signal.
pub(crate) const COALESCE_QUIET_NS: u64 = 5_000_000_000;
/// A SIGKILL later than this after a SIGTERM ends no grace period: the process outlived it.
pub(crate) const MAX_GRACE_NS: u64 = 3_600 * 1_000_000_000;
/// Bound on distinct nodes (host and boot) told apart; past it, the rest share one.
pub(crate) const MAX_NODES: usize = 65_536;
/// Bound on tracked live processes; the least recently seen are forgotten first.
pub(crate) const MAX_PROCS: usize = 16_384;
/// Bound on exited processes kept until their findings are out.
pub(crate) const MAX_DEAD: usize = 4_096;
/// Bound on open coalescing aggregates.
pub(crate) const MAX_AGGS: usize = 4_096;
/// Bound on remembered signals received per process.
pub(crate) const MAX_RECEIVED: usize = 16;
/// Bound on evidence items per finding.
pub(crate) const MAX_EVIDENCE: usize = 12;
/// Bound on timelines and on steps per timeline.
pub(crate) const MAX_TIMELINES: usize = 256;
pub(crate) const MAX_STEPS: usize = 64;
/// Bound on processes listed in one finding.
pub(crate) const MAX_LISTED: usize = 32;
/// The root cgroup's id on cgroup v2: shared by every process outside a container.
pub(crate) const ROOT_CGROUP: u64 = 1;
pub(crate) const SI_KERNEL: i32 = 0x80;

/// Runs a whole stream through a new engine: every finding, in order.
pub fn explain_all(records: &[Record]) -> Vec<Finding> {
    let mut e = Engine::new();
    let mut out = Vec::new();
    for r in records {
        out.extend(e.push(r));
    }
    out.extend(e.finish());
    out
}

#[cfg(test)]
mod tests;
