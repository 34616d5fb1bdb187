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

use std::borrow::Cow;
use std::collections::{BTreeMap, BTreeSet, HashMap, VecDeque};
use std::fmt::{self, Write as _};

use serde::{Deserialize, Deserializer, Serialize, Serializer};

use crate::names::{
    default_action, is_standard, DefaultAction, SIGABRT, SIGBUS, SIGFPE, SIGHUP, SIGILL, SIGINT,
    SIGKILL, SIGPIPE, SIGQUIT, SIGSEGV, SIGSYS, SIGTERM, SIGTRAP,
};
use crate::output::clock;
use crate::record::*;

/// How long after a shutdown's exit to wait for the deaths it causes (the kernel kills the rest
/// of a PID namespace right after its init exits; runtimes kill a whole cgroup at once).
const SETTLE_NS: u64 = 1_000_000_000;
/// A coalescing aggregate is concluded after this long without a new merged or dropped signal.
const COALESCE_QUIET_NS: u64 = 5_000_000_000;
/// A SIGKILL later than this after a SIGTERM ends no grace period: the process outlived it.
const MAX_GRACE_NS: u64 = 3_600 * 1_000_000_000;
/// Bound on tracked live processes; the least recently seen are forgotten first.
const MAX_PROCS: usize = 16_384;
/// Bound on exited processes kept until their findings are out.
const MAX_DEAD: usize = 4_096;
/// Bound on open coalescing aggregates.
const MAX_AGGS: usize = 4_096;
/// Bound on remembered signals received per process.
const MAX_RECEIVED: usize = 16;
/// Bound on evidence items per finding.
const MAX_EVIDENCE: usize = 12;
/// Bound on timelines and on steps per timeline.
const MAX_TIMELINES: usize = 256;
const MAX_STEPS: usize = 64;
/// Bound on processes listed in one finding.
const MAX_LISTED: usize = 32;
/// The root cgroup's id on cgroup v2: shared by every process outside a container.
const ROOT_CGROUP: u64 = 1;
const SI_KERNEL: i32 = 0x80;

macro_rules! event_tag {
    ($name:ident, $value:literal) => {
        #[doc = concat!("The constant `\"event\":\"", $value, "\"` field.")]
        #[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
        pub struct $name;

        impl Serialize for $name {
            fn serialize<S: Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
                s.serialize_str($value)
            }
        }

        impl<'de> Deserialize<'de> for $name {
            fn deserialize<D: Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
                let s = Cow::<str>::deserialize(d)?;
                if s == $value {
                    Ok($name)
                } else {
                    Err(serde::de::Error::custom(format!(
                        concat!("expected event \"", $value, "\", found {:?}"),
                        s
                    )))
                }
            }
        }
    };
}

event_tag!(FindingTag, "finding");
event_tag!(TimelineTag, "timeline");

/// What a finding is about.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, PartialOrd, Ord, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum FindingKind {
    InitIgnored,
    NotForwarded,
    GraceExceeded,
    OomKilled,
    SignalDeath,
    Coalesced,
    EventsLost,
}

impl FindingKind {
    pub fn as_str(self) -> &'static str {
        match self {
            FindingKind::InitIgnored => "init_ignored",
            FindingKind::NotForwarded => "not_forwarded",
            FindingKind::GraceExceeded => "grace_exceeded",
            FindingKind::OomKilled => "oom_killed",
            FindingKind::SignalDeath => "signal_death",
            FindingKind::Coalesced => "coalesced",
            FindingKind::EventsLost => "events_lost",
        }
    }

    /// Whether the finding says a shutdown or a process went wrong (as opposed to a remark on
    /// signal delivery or on the trace itself).
    pub fn blames(self) -> bool {
        !matches!(self, FindingKind::Coalesced | FindingKind::EventsLost)
    }
}

#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, PartialOrd, Ord, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum Severity {
    Info,
    Warning,
    Error,
}

impl Severity {
    pub fn as_str(self) -> &'static str {
        match self {
            Severity::Info => "info",
            Severity::Warning => "warning",
            Severity::Error => "error",
        }
    }
}

/// Who or what raised the signal a process died of.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum Cause {
    /// A hardware fault in the process itself (bad address, division by zero…).
    Fault,
    /// The process raised it itself: abort(), raise(), kill(getpid()).
    SelfRaised,
    /// A write to a pipe or socket with no reader left.
    BrokenPipe,
    /// Another process sent it.
    Process,
    /// The kernel sent it (SI_KERNEL) for another reason.
    Kernel,
    /// Its PID-namespace init exited, and the kernel kills every other process in the namespace.
    NamespaceInitExit,
    /// Not seen: no generate record and no `killed_by`.
    Unknown,
}

/// What became of the SIGTERM of a shutdown.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum TermResult {
    /// A handler ran (a deliver record with a handler address).
    Handled,
    /// Dropped by the kernel at generation (see `reason`).
    Ignored,
    /// Queued while blocked and never delivered.
    Pending,
    /// Queued; no delivery seen (consumed by sigwait/signalfd, or not traced).
    Delivered,
}

/// A process as findings name it.
#[derive(Clone, Debug, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct ProcessRef {
    pub pid: u32,
    pub comm: Comm,
    /// The pid inside its own PID namespace (1 for a container's init), when known.
    #[serde(default)]
    pub ns_pid: Option<u32>,
}

/// The sender of a signal.
#[derive(Clone, Debug, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct Peer {
    pub pid: u32,
    pub comm: Comm,
}

/// One record a finding rests on.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct Evidence {
    pub time: Time,
    /// The record's `event`: generate, deliver, exit, oom, lost.
    pub event: String,
    pub text: String,
}

/// A diagnosis: one NDJSON object with `"event":"finding"`.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct Finding {
    pub event: FindingTag,
    /// When the finding's story ends (the death, the last merged signal…).
    pub time: Time,
    pub kind: FindingKind,
    pub severity: Severity,
    pub summary: String,
    pub process: ProcessRef,
    pub container: Option<Container>,
    pub evidence: Vec<Evidence>,
    pub remedy: String,
    /// The signal the finding is about.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub signal: Option<String>,
    /// Its si_code, decoded.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub code: Option<String>,
    /// Who sent it.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub sender: Option<Peer>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub reason: Option<IgnoreReason>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub cause: Option<Cause>,
    /// Exit status as shells show it (137 for SIGKILL).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub exit_code: Option<u32>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub core_dumped: Option<bool>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub cgroup_id: Option<u64>,
    /// The shutdown signal (SIGTERM…): when, from whom, and what became of it.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub term_time: Option<Time>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub term_sender: Option<Peer>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub term_result: Option<TermResult>,
    /// The SIGKILL that ended the shutdown: when and from whom.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub kill_time: Option<Time>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub kill_sender: Option<Peer>,
    /// SIGTERM to SIGKILL.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub grace_ns: Option<u64>,
    /// SIGTERM to exit.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub shutdown_ns: Option<u64>,
    /// Processes that got no signal from their PID 1 before dying (not_forwarded).
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub children: Vec<ProcessRef>,
    /// Other processes of the same container or namespace killed in the same shutdown.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub also_killed: Vec<ProcessRef>,
    /// The task whose allocation ran out of memory (oom_killed).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub trigger: Option<Peer>,
    /// already_pending or overflow (coalesced).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub result: Option<Outcome>,
    /// How many signals were merged or dropped, or events lost.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub count: Option<u64>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub first_time: Option<Time>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub last_time: Option<Time>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub span_ns: Option<u64>,
    /// Distinct senders of the merged or dropped signals.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub senders: Vec<Peer>,
}

impl Finding {
    fn new(kind: FindingKind, severity: Severity, time: Time, process: ProcessRef) -> Finding {
        Finding {
            event: FindingTag,
            time,
            kind,
            severity,
            summary: String::new(),
            process,
            container: None,
            evidence: Vec::new(),
            remedy: String::new(),
            signal: None,
            code: None,
            sender: None,
            reason: None,
            cause: None,
            exit_code: None,
            core_dumped: None,
            cgroup_id: None,
            term_time: None,
            term_sender: None,
            term_result: None,
            kill_time: None,
            kill_sender: None,
            grace_ns: None,
            shutdown_ns: None,
            children: Vec::new(),
            also_killed: Vec::new(),
            trigger: None,
            result: None,
            count: None,
            first_time: None,
            last_time: None,
            span_ns: None,
            senders: Vec::new(),
        }
    }

    fn push_evidence(&mut self, e: &Evidence) {
        if self.evidence.len() < MAX_EVIDENCE && !self.evidence.contains(e) {
            self.evidence.push(e.clone());
        }
    }
}

/// What a timeline step is.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum StepKind {
    /// A shutdown signal (SIGTERM, SIGINT, SIGHUP, SIGQUIT, SIGKILL) was sent.
    Signal,
    /// A handler ran for it.
    Handled,
    /// The kernel dropped it.
    Ignored,
    /// It was queued behind a block, or merged into a pending one.
    Pending,
    /// A process of the container or namespace passed a signal on to another one.
    Forwarded,
    /// A process exited.
    Exit,
}

/// One step of a shutdown timeline.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct Step {
    pub time: Time,
    /// Since the timeline's first step.
    pub offset_ns: u64,
    pub kind: StepKind,
    pub pid: u32,
    pub comm: Comm,
    pub text: String,
}

/// The shutdown story of one process, or of one container when known: `"event":"timeline"`.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct Timeline {
    pub event: TimelineTag,
    /// The process the story started with (the first one signalled).
    pub process: ProcessRef,
    pub container: Option<Container>,
    pub steps: Vec<Step>,
}

#[derive(Clone, Debug)]
struct Sig {
    time: Time,
    signal: String,
    signo: u32,
    code: String,
    si_code: i32,
    sender: Peer,
    result: Outcome,
    reason: Option<IgnoreReason>,
    disposition: Option<Disposition>,
    blocked: bool,
    ev: Evidence,
}

#[derive(Clone, Debug)]
struct Received {
    time: Time,
    signo: u32,
    si_code: i32,
}

impl Received {
    /// The SIGKILL the kernel sends on behalf of another task (an exiting namespace init, or the
    /// OOM killer running in an allocating task).
    fn kernel_kill(&self) -> bool {
        self.signo == SIGKILL && self.si_code == SI_KERNEL
    }
}

#[derive(Clone, Debug)]
struct OomSeen {
    trigger: Peer,
    ev: Evidence,
}

#[derive(Clone, Debug)]
struct ExitSeen {
    time: Time,
    exit_code: u32,
    signo: Option<u32>,
    signal: Option<String>,
    core_dumped: bool,
    killed_by: Option<KilledBy>,
    ev: Evidence,
}

#[derive(Clone, Debug, Default)]
struct Proc {
    pid: u32,
    comm: Comm,
    ns_pid: Option<u32>,
    cgroup_id: Option<u64>,
    container: Option<Container>,
    last_seen: Time,
    /// The first shutdown signal (TERM, INT, HUP, QUIT) of the current story.
    term: Option<Sig>,
    /// The handler run for it.
    term_handled: Option<Evidence>,
    /// The first SIGKILL generated for it.
    kill: Option<Sig>,
    /// The last signal generated for it whose default action ends the process.
    fatal: Option<Sig>,
    oom: Option<OomSeen>,
    /// Recent signals it received (not SIGCHLD and the like), for forwarding checks.
    received: VecDeque<Received>,
    init_ignored_reported: bool,
    exit: Option<ExitSeen>,
    /// A finding already accounts for its death.
    explained: bool,
}

impl Proc {
    fn new(pid: u32) -> Proc {
        Proc {
            pid,
            ..Proc::default()
        }
    }

    /// Takes what a record says about the process: its comm, and what it knows of its PID
    /// namespace, cgroup and container (kept when the record does not know them).
    fn observe(
        &mut self,
        comm: Comm,
        ns_pid: Option<u32>,
        cgroup_id: Option<u64>,
        container: &Option<Container>,
    ) {
        self.comm = comm;
        self.ns_pid = ns_pid.or(self.ns_pid);
        self.cgroup_id = cgroup_id.or(self.cgroup_id);
        if container.is_some() {
            self.container.clone_from(container);
        }
    }

    fn process_ref(&self) -> ProcessRef {
        ProcessRef {
            pid: self.pid,
            comm: self.comm,
            ns_pid: self.ns_pid,
        }
    }

    fn group(&self) -> Option<Group> {
        group_of(self.container.as_ref(), self.cgroup_id)
    }

    /// The PID 1 of a PID namespace other than the host's.
    fn is_ns_init(&self) -> bool {
        self.ns_pid == Some(1) && self.pid != 1
    }

    fn died_by(&self, signo: u32) -> bool {
        self.exit.as_ref().and_then(|x| x.signo) == Some(signo)
    }

    /// The SIGKILL it got came from the kernel on behalf of `init` exiting.
    fn zapped_by(&self) -> Option<u32> {
        if self.oom.is_some() {
            return None;
        }
        let k = self.kill.as_ref()?;
        (k.si_code == SI_KERNEL && k.sender.pid != self.pid).then_some(k.sender.pid)
    }

    fn remember(&mut self, r: Received) {
        if self.received.len() >= MAX_RECEIVED {
            self.received.pop_front();
        }
        self.received.push_back(r);
    }
}

/// Which processes belong together: a container, or failing that a (non-root) cgroup.
#[derive(Clone, Debug, PartialEq, Eq, Hash, PartialOrd, Ord)]
enum Group {
    Container(String),
    Cgroup(u64),
}

fn group_of(container: Option<&Container>, cgroup_id: Option<u64>) -> Option<Group> {
    if let Some(c) = container {
        return Some(Group::Container(c.id.clone()));
    }
    cgroup_id.filter(|&c| c > ROOT_CGROUP).map(Group::Cgroup)
}

#[derive(Clone, Copy, Debug, PartialEq, Eq, PartialOrd, Ord)]
enum Due {
    /// Conclude a shutdown: grace_exceeded and not_forwarded.
    Shutdown,
    /// Conclude a SIGKILL death not yet explained: signal_death.
    Death,
    /// Drop the exited process.
    Forget,
}

#[derive(Clone, Debug)]
struct Agg {
    pid: u32,
    comm: Comm,
    container: Option<Container>,
    signal: String,
    signo: u32,
    result: Outcome,
    count: u64,
    first: Time,
    last: Time,
    senders: Vec<Peer>,
    evidence: Vec<Evidence>,
}

#[derive(Clone, Debug, PartialEq, Eq, Hash, PartialOrd, Ord)]
enum TimelineKey {
    Container(String),
    Process(u32),
}

/// The diagnosis engine. Feed it records in time order.
#[derive(Debug, Default)]
pub struct Engine {
    procs: HashMap<u32, Proc>,
    /// Exited processes awaiting their conclusions, by sequence number.
    dead: BTreeMap<u64, Proc>,
    next_seq: u64,
    /// (when, what, which dead process).
    dues: BTreeSet<(Time, Due, u64)>,
    /// (target pid, signal number, result) -> merged or dropped signals.
    aggs: HashMap<(u32, u32, Outcome), Agg>,
    timelines: HashMap<TimelineKey, Timeline>,
    /// Timeline keys, oldest first, for eviction.
    timeline_order: VecDeque<TimelineKey>,
    /// Processes a namespace init's exit took down: victim pid -> init's timeline key.
    zapped: HashMap<u32, TimelineKey>,
    now: Time,
}

impl Engine {
    pub fn new() -> Engine {
        Engine::default()
    }

    /// Feeds one record (in time order); returns the findings that became certain with it.
    pub fn push(&mut self, r: &Record) -> Vec<Finding> {
        let mut out = Vec::new();
        // Conclusions due before this record cannot depend on it.
        self.flush(r.time(), &mut out);
        self.now = self.now.max(r.time());
        match r {
            Record::Generate(g) => self.generate(g, &mut out),
            Record::Deliver(d) => self.deliver(d),
            Record::Exit(x) => self.exit(x, &mut out),
            Record::Oom(o) => self.oom(o),
            Record::Lost(l) => out.push(lost_finding(l)),
            Record::SendFailed(_) => {}
        }
        self.bound(&mut out);
        out
    }

    /// Concludes what is due by `now` without a new record: for a live trace that has gone
    /// quiet. `now` must not be later than the next record's time will be (pass a time a little
    /// behind the wall clock).
    pub fn advance(&mut self, now: Time) -> Vec<Finding> {
        let mut out = Vec::new();
        self.flush(now, &mut out);
        out
    }

    /// End of stream: concludes everything still pending.
    pub fn finish(&mut self) -> Vec<Finding> {
        let mut out = Vec::new();
        self.flush(Time(u64::MAX), &mut out);
        // OOM victims whose exit was not seen.
        let mut pids: Vec<u32> = self
            .procs
            .iter()
            .filter(|(_, p)| p.oom.is_some() && !p.explained)
            .map(|(&pid, _)| pid)
            .collect();
        pids.sort_unstable();
        for pid in pids {
            if let Some(p) = self.procs.get_mut(&pid) {
                p.explained = true;
                out.push(oom_finding(p));
            }
        }
        out
    }

    /// The shutdown timelines seen so far, one per process or container, oldest first.
    pub fn timelines(&self) -> Vec<Timeline> {
        self.timeline_order
            .iter()
            .filter_map(|k| self.timelines.get(k))
            .cloned()
            .collect()
    }

    fn proc_mut(&mut self, pid: u32, time: Time) -> &mut Proc {
        let p = self.procs.entry(pid).or_insert_with(|| Proc::new(pid));
        p.last_seen = p.last_seen.max(time);
        p
    }

    fn generate(&mut self, g: &Generate, out: &mut Vec<Finding>) {
        let Some(pid) = g.target.pid else {
            // Without BTF only the thread is known: nothing to join on.
            return;
        };
        let action = default_action(g.signo);
        if matches!(action, DefaultAction::Ignore | DefaultAction::Continue) {
            return;
        }
        let ev = evidence_generate(g);
        if matches!(g.result, Outcome::AlreadyPending | Outcome::Overflow) {
            self.coalesce(g, pid, &ev);
        }
        let sig = Sig {
            time: g.time,
            signal: g.signal.to_string(),
            signo: g.signo,
            code: g.code.to_string(),
            si_code: g.si_code,
            sender: Peer {
                pid: g.sender.pid,
                comm: g.sender.comm,
            },
            result: g.result,
            reason: g.reason,
            disposition: g.target.disposition,
            blocked: g.target.blocked.unwrap_or(false),
            ev,
        };
        let p = self.proc_mut(pid, g.time);
        p.observe(
            g.target.comm,
            g.target.ns_pid,
            g.target.cgroup_id,
            &g.target.container,
        );
        if g.sender.pid != pid {
            p.remember(Received {
                time: g.time,
                signo: g.signo,
                si_code: g.si_code,
            });
        }
        // A handled SIGHUP asks for a reload, not a stop.
        let reload = g.signo == SIGHUP && sig.disposition == Some(Disposition::Handler);
        let shutdown = is_shutdown_signal(g.signo);
        if shutdown && !reload && p.term.is_none() {
            p.term = Some(sig.clone());
        }
        if g.signo == SIGKILL && p.kill.is_none() {
            p.kill = Some(sig.clone());
        }
        if g.result != Outcome::Ignored
            && g.signo != SIGKILL
            && sig.disposition != Some(Disposition::Handler)
        {
            p.fatal = Some(sig.clone());
        }
        let init_ignored = shutdown
            && g.result == Outcome::Ignored
            && g.reason == Some(IgnoreReason::PidNamespaceInit)
            && matches!(g.target.ns_pid, Some(1) | None)
            && !p.init_ignored_reported;
        if init_ignored {
            p.init_ignored_reported = true;
            out.push(init_ignored_finding(p, &sig));
        }
        let p = p.clone();
        self.timeline_signal(&p, g, &sig);
    }

    fn deliver(&mut self, d: &Deliver) {
        let Some(pid) = d.pid else { return };
        if !self.procs.contains_key(&pid) && d.container.is_none() {
            return;
        }
        let p = self.proc_mut(pid, d.time);
        p.observe(d.comm, d.ns_pid, d.cgroup_id, &d.container);
        let handled = d.handler.starts_with("0x")
            && p.term_handled.is_none()
            && p.term.as_ref().is_some_and(|t| t.signo == d.signo);
        if handled {
            let ev = Evidence {
                time: d.time,
                event: "deliver".into(),
                text: format!(
                    "{} ran its {} handler {}{}",
                    who(p.comm, p.pid, p.ns_pid),
                    d.signal,
                    d.handler,
                    d.latency_ns
                        .map(|l| format!(", {} after it was sent", duration(l)))
                        .unwrap_or_default()
                ),
            };
            p.term_handled = Some(ev.clone());
            let p = p.clone();
            self.add_step(&p, d.time, StepKind::Handled, ev.text);
        }
    }

    fn oom(&mut self, o: &Oom) {
        let ev = Evidence {
            time: o.time,
            event: "oom".into(),
            text: format!(
                "the OOM killer chose {} (pid {}) while {} (pid {}) was allocating",
                o.comm
                    .map(|c| c.to_string())
                    .unwrap_or_else(|| "a process".into()),
                o.pid,
                o.trigger.comm,
                o.trigger.pid
            ),
        };
        let p = self.proc_mut(o.pid, o.time);
        if let Some(c) = o.comm {
            p.comm = c;
        }
        p.oom = Some(OomSeen {
            trigger: Peer {
                pid: o.trigger.pid,
                comm: o.trigger.comm,
            },
            ev: ev.clone(),
        });
        let p = p.clone();
        self.add_step(&p, o.time, StepKind::Signal, ev.text);
    }

    fn exit(&mut self, x: &Exit, out: &mut Vec<Finding>) {
        let mut p = self
            .procs
            .remove(&x.pid)
            .unwrap_or_else(|| Proc::new(x.pid));
        p.observe(x.comm, x.ns_pid, x.cgroup_id, &x.container);
        p.last_seen = x.time;
        let ev = Evidence {
            time: x.time,
            event: "exit".into(),
            text: format!("{} exited with {}", who(x.comm, x.pid, p.ns_pid), status(x)),
        };
        p.exit = Some(ExitSeen {
            time: x.time,
            exit_code: x.exit_code,
            signo: x.signo,
            signal: x.signal.as_ref().map(|s| s.to_string()),
            core_dumped: x.core_dumped,
            killed_by: x.killed_by.clone(),
            ev: ev.clone(),
        });
        // Coalescing stops with the process.
        let mut keys: Vec<_> = self.aggs.keys().filter(|k| k.0 == x.pid).copied().collect();
        keys.sort_unstable_by_key(|k| (k.1, k.2 as u8));
        for k in keys {
            if let Some(a) = self.aggs.remove(&k) {
                out.push(coalesced_finding(a));
            }
        }
        self.add_step(&p, x.time, StepKind::Exit, ev.text.clone());

        let seq = self.next_seq;
        self.next_seq += 1;
        if x.signo == Some(SIGKILL) && p.oom.is_some() {
            p.explained = true;
            out.push(oom_finding(&p));
        }
        if p.term.is_some() || p.is_ns_init() {
            self.dues
                .insert((later(x.time, SETTLE_NS), Due::Shutdown, seq));
        }
        match x.signo {
            Some(SIGKILL) if !p.explained => {
                self.dues
                    .insert((later(x.time, 2 * SETTLE_NS), Due::Death, seq));
            }
            Some(signo) if !p.explained => {
                if let Some(f) = death_finding(&p, signo) {
                    out.push(f);
                }
                p.explained = true;
            }
            _ => {}
        }
        self.dues
            .insert((later(x.time, 2 * SETTLE_NS), Due::Forget, seq));
        self.dead.insert(seq, p);
    }

    /// Concludes everything due strictly before `now`.
    fn flush(&mut self, now: Time, out: &mut Vec<Finding>) {
        while let Some(&(due, what, seq)) = self.dues.first() {
            if due >= now {
                break;
            }
            self.dues.remove(&(due, what, seq));
            self.conclude(what, seq, out);
        }
        if !self.aggs.is_empty() {
            let mut quiet: Vec<_> = self
                .aggs
                .iter()
                .filter(|(_, a)| later(a.last, COALESCE_QUIET_NS) < now)
                .map(|(k, a)| (a.first, *k))
                .collect();
            quiet.sort_unstable_by_key(|(t, k)| (*t, k.0, k.1, k.2 as u8));
            for (_, k) in quiet {
                if let Some(a) = self.aggs.remove(&k) {
                    out.push(coalesced_finding(a));
                }
            }
        }
    }

    fn conclude(&mut self, what: Due, seq: u64, out: &mut Vec<Finding>) {
        match what {
            Due::Shutdown => self.conclude_shutdown(seq, out),
            Due::Death => {
                let Some(p) = self.dead.get_mut(&seq) else {
                    return;
                };
                if !p.explained {
                    p.explained = true;
                    let p = p.clone();
                    let init = p.zapped_by().and_then(|i| self.find_proc(i));
                    if let Some(f) = kill_death_finding(&p, init.as_ref()) {
                        out.push(f);
                    }
                }
            }
            Due::Forget => {
                self.dead.remove(&seq);
            }
        }
    }

    /// Looks a process up among the living, then the most recently exited.
    fn find_proc(&self, pid: u32) -> Option<Proc> {
        self.procs
            .get(&pid)
            .or_else(|| self.dead.values().rev().find(|p| p.pid == pid))
            .cloned()
    }

    /// Exited processes of the same container or namespace as `p`, killed by SIGKILL at or
    /// after `since`, in exit order. Returns their sequence numbers.
    fn killed_members(&self, p: &Proc, since: Time) -> Vec<u64> {
        let group = p.group();
        let mut v: Vec<(Time, u32, u64)> = self
            .dead
            .iter()
            .filter(|(_, q)| q.pid != p.pid && q.died_by(SIGKILL))
            .filter(|(_, q)| {
                q.zapped_by() == Some(p.pid) || (group.is_some() && q.group() == group)
            })
            .filter_map(|(&seq, q)| {
                let t = q.exit.as_ref()?.time;
                (t >= since).then_some((t, q.pid, seq))
            })
            .collect();
        v.sort_unstable();
        v.into_iter().map(|(_, _, s)| s).take(MAX_LISTED).collect()
    }

    /// Marks exited processes as accounted for by a finding; returns them.
    fn mark_explained(&mut self, seqs: &[u64]) -> Vec<Proc> {
        let mut v = Vec::with_capacity(seqs.len());
        for s in seqs {
            if let Some(q) = self.dead.get_mut(s) {
                q.explained = true;
                v.push(q.clone());
            }
        }
        v
    }

    fn conclude_shutdown(&mut self, seq: u64, out: &mut Vec<Finding>) {
        let Some(p) = self.dead.get(&seq).cloned() else {
            return;
        };
        let Some(term) = p.term.clone() else {
            return;
        };
        // not_forwarded: the namespace init got SIGTERM; the others got nothing from it.
        if p.is_ns_init() {
            let orphans: Vec<u64> = self
                .killed_members(&p, term.time)
                .into_iter()
                .filter(|s| {
                    self.dead.get(s).is_some_and(|q| {
                        !q.received
                            .iter()
                            .any(|r| r.time >= term.time && !r.kernel_kill())
                    })
                })
                .collect();
            if !orphans.is_empty() {
                let children = self.mark_explained(&orphans);
                out.push(not_forwarded_finding(&p, &term, &children));
            }
        }
        // grace_exceeded: SIGKILL (not the OOM killer's, not a namespace teardown) ended it.
        let Some(kill) = p.kill.clone() else { return };
        let own_kill = p.oom.is_none() && p.zapped_by().is_none();
        let gap = kill.time.since(term.time);
        if !own_kill || !p.died_by(SIGKILL) || kill.time < term.time || gap > MAX_GRACE_NS {
            return;
        }
        if p.explained {
            return;
        }
        let members = self.killed_members(&p, kill.time);
        let also = self.mark_explained(&members);
        if let Some(q) = self.dead.get_mut(&seq) {
            q.explained = true;
        }
        out.push(grace_finding(&p, &term, &kill, &also));
    }

    fn coalesce(&mut self, g: &Generate, pid: u32, ev: &Evidence) {
        if self.aggs.len() >= MAX_AGGS && !self.aggs.contains_key(&(pid, g.signo, g.result)) {
            // A flood of distinct targets: keep the newest.
            if let Some(k) = self
                .aggs
                .iter()
                .min_by_key(|(k, a)| (a.last, k.0, k.1))
                .map(|(k, _)| *k)
            {
                self.aggs.remove(&k);
            }
        }
        let a = self
            .aggs
            .entry((pid, g.signo, g.result))
            .or_insert_with(|| Agg {
                pid,
                comm: g.target.comm,
                container: g.target.container.clone(),
                signal: g.signal.to_string(),
                signo: g.signo,
                result: g.result,
                count: 0,
                first: g.time,
                last: g.time,
                senders: Vec::new(),
                evidence: Vec::new(),
            });
        a.count += 1;
        a.last = g.time;
        let sender = Peer {
            pid: g.sender.pid,
            comm: g.sender.comm,
        };
        if !a.senders.contains(&sender) && a.senders.len() < MAX_LISTED {
            a.senders.push(sender);
        }
        if a.evidence.len() < MAX_EVIDENCE - 1 {
            a.evidence.push(ev.clone());
        } else if let Some(last) = a.evidence.last_mut() {
            // Keep the first ones and the latest.
            last.clone_from(ev);
        }
    }

    /// Keeps the state bounded: forgets the least recently seen processes and concludes the
    /// oldest exited ones early.
    fn bound(&mut self, out: &mut Vec<Finding>) {
        if self.procs.len() > MAX_PROCS {
            let mut by_age: Vec<(Time, u32)> = self
                .procs
                .iter()
                .map(|(&pid, p)| (p.last_seen, pid))
                .collect();
            by_age.sort_unstable();
            for (_, pid) in by_age.into_iter().take(MAX_PROCS / 8) {
                self.procs.remove(&pid);
            }
        }
        while self.dead.len() > MAX_DEAD {
            let Some(&(due, what, seq)) = self.dues.first() else {
                break;
            };
            self.dues.remove(&(due, what, seq));
            self.conclude(what, seq, out);
        }
    }

    /// The timeline a process's steps go to, if one has been started for it.
    fn timeline_key_of(&self, p: &Proc) -> Option<TimelineKey> {
        if let Some(c) = &p.container {
            let k = TimelineKey::Container(c.id.clone());
            if self.timelines.contains_key(&k) {
                return Some(k);
            }
        }
        if let Some(k) = self.zapped.get(&p.pid) {
            if self.timelines.contains_key(k) {
                return Some(k.clone());
            }
        }
        let k = TimelineKey::Process(p.pid);
        self.timelines.contains_key(&k).then_some(k)
    }

    fn timeline_signal(&mut self, p: &Proc, g: &Generate, sig: &Sig) {
        let story = is_shutdown_signal(g.signo) || g.signo == SIGKILL;
        // A signal from a process of the same container, or from the namespace init, to a
        // member of a story already told is a forwarding (or the teardown).
        if g.signo == SIGKILL && g.si_code == SI_KERNEL && g.sender.pid != p.pid {
            if let Some(init) = self.find_proc(g.sender.pid) {
                if let Some(k) = self.timeline_key_of(&init) {
                    self.zapped.insert(p.pid, k);
                    if self.zapped.len() > MAX_PROCS {
                        self.zapped.clear();
                    }
                }
            }
        }
        let key = match self.timeline_key_of(p) {
            Some(k) => Some(k),
            None if story => {
                let k = match &p.container {
                    Some(c) => TimelineKey::Container(c.id.clone()),
                    None => TimelineKey::Process(p.pid),
                };
                if self.timelines.len() >= MAX_TIMELINES {
                    if let Some(old) = self.timeline_order.pop_front() {
                        self.timelines.remove(&old);
                    }
                }
                self.timelines.insert(
                    k.clone(),
                    Timeline {
                        event: TimelineTag,
                        process: p.process_ref(),
                        container: p.container.clone(),
                        steps: Vec::new(),
                    },
                );
                self.timeline_order.push_back(k.clone());
                Some(k)
            }
            None => None,
        };
        if key.is_none() {
            return;
        }
        let from_member = self
            .procs
            .get(&g.sender.pid)
            .map(|s| s.group().is_some() && s.group() == p.group())
            .unwrap_or(false);
        let kind = if from_member && g.si_code != SI_KERNEL && g.sender.pid != p.pid {
            StepKind::Forwarded
        } else if story {
            StepKind::Signal
        } else {
            // Other signals are not part of the shutdown story.
            return;
        };
        let text = step_text(g, sig);
        self.add_step(p, g.time, kind, text);
        let follow = match g.result {
            Outcome::Ignored => Some((
                StepKind::Ignored,
                format!(
                    "the kernel ignored it: {}",
                    g.reason.map(|r| r.describe()).unwrap_or("reason unknown")
                ),
            )),
            Outcome::AlreadyPending => Some((
                StepKind::Pending,
                format!("merged into a {} already pending", g.signal),
            )),
            Outcome::Delivered if sig.blocked && g.signo != SIGKILL => Some((
                StepKind::Pending,
                format!("{} is blocked: it stays pending", g.signal),
            )),
            _ => None,
        };
        if let Some((kind, text)) = follow {
            self.add_step(p, g.time, kind, text);
        }
    }

    fn add_step(&mut self, p: &Proc, time: Time, kind: StepKind, text: String) {
        let Some(k) = self.timeline_key_of(p) else {
            return;
        };
        let Some(t) = self.timelines.get_mut(&k) else {
            return;
        };
        if t.steps.len() >= MAX_STEPS {
            return;
        }
        let offset_ns = t.steps.first().map(|s| time.since(s.time)).unwrap_or(0);
        if t.container.is_none() {
            t.container.clone_from(&p.container);
        }
        t.steps.push(Step {
            time,
            offset_ns,
            kind,
            pid: p.pid,
            comm: p.comm,
            text,
        });
    }
}

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

/// `ns` nanoseconds after `t`.
fn later(t: Time, ns: u64) -> Time {
    Time(t.0.saturating_add(ns))
}

/// Signals orchestrators and terminals use to ask a process to stop.
fn is_shutdown_signal(signo: u32) -> bool {
    matches!(signo, SIGTERM | SIGINT | SIGHUP | SIGQUIT)
}

fn who(comm: Comm, pid: u32, ns_pid: Option<u32>) -> String {
    match ns_pid {
        Some(1) if pid != 1 => format!("{comm} (pid {pid}, PID 1 of its namespace)"),
        Some(n) if n != pid => format!("{comm} (pid {pid}, ns pid {n})"),
        _ => format!("{comm} (pid {pid})"),
    }
}

fn peer_text(p: &Peer) -> String {
    format!("{} (pid {})", p.comm, p.pid)
}

fn status(x: &Exit) -> String {
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

fn result_text(g: &Generate) -> String {
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

fn evidence_generate(g: &Generate) -> Evidence {
    let target = who(
        g.target.comm,
        g.target.pid.unwrap_or(g.target.tid),
        g.target.ns_pid,
    );
    let from = if g.si_code == SI_KERNEL {
        format!(
            "from the kernel (in {} (pid {}))",
            g.sender.comm, g.sender.pid
        )
    } else if g.sender.pid == g.target.pid.unwrap_or(g.target.tid) {
        "raised by itself".to_string()
    } else {
        format!("from {} (pid {})", g.sender.comm, g.sender.pid)
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

fn step_text(g: &Generate, sig: &Sig) -> String {
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

fn container_text(c: &Container) -> String {
    let short = c.id.get(..12).unwrap_or(&c.id);
    match (&c.namespace, &c.pod, &c.name) {
        (Some(ns), Some(pod), Some(name)) => {
            format!("container {name} of pod {ns}/{pod} ({short})")
        }
        (_, _, Some(name)) => format!("container {name} ({short})"),
        _ => format!("container {short}"),
    }
}

fn where_text(p: &Proc) -> String {
    match (&p.container, p.cgroup_id) {
        (Some(c), _) => format!(" in {}", container_text(c)),
        (None, Some(cg)) if cg > ROOT_CGROUP => format!(" in cgroup {cg}"),
        _ => String::new(),
    }
}

fn list(ps: &[ProcessRef]) -> String {
    ps.iter()
        .map(|p| format!("{} (pid {})", p.comm, p.pid))
        .collect::<Vec<_>>()
        .join(", ")
}

fn base(kind: FindingKind, severity: Severity, time: Time, p: &Proc) -> Finding {
    let mut f = Finding::new(kind, severity, time, p.process_ref());
    f.container.clone_from(&p.container);
    f.cgroup_id = p.cgroup_id;
    f
}

fn init_ignored_finding(p: &Proc, sig: &Sig) -> Finding {
    let mut f = base(FindingKind::InitIgnored, Severity::Error, sig.time, p);
    f.summary = format!(
        "{} from {} to {}{} was ignored by the kernel: PID 1 of a PID namespace only gets the \
         signals it has a handler for, and it has none for {}",
        sig.signal,
        peer_text(&sig.sender),
        who(p.comm, p.pid, p.ns_pid),
        where_text(p),
        sig.signal
    );
    f.remedy = format!(
        "Make PID 1 react to {sig}: install a handler in the program (signal.signal(SIGTERM, …) \
         in Python, signal.NotifyContext in Go, process.on('SIGTERM') in Node.js, `trap … TERM` \
         in a shell entrypoint); or put a real init in front of it that forwards signals: \
         `ENTRYPOINT [\"tini\", \"--\"]` in the Dockerfile, `docker run --init`, or tini / \
         dumb-init as the container command in Kubernetes (which has no --init). If PID 1 is a \
         shell running the app (shell-form `CMD app`), use the exec form `CMD [\"app\"]` or \
         `exec app` in the entrypoint so the app itself is PID 1 with its own handler. SIGKILL \
         still works, so today every stop waits out the whole grace period.",
        sig = sig.signal
    );
    f.signal = Some(sig.signal.clone());
    f.code = Some(sig.code.clone());
    f.sender = Some(sig.sender.clone());
    f.reason = sig.reason;
    f.push_evidence(&sig.ev);
    f
}

fn term_result(p: &Proc, term: &Sig) -> TermResult {
    if p.term_handled.is_some() {
        TermResult::Handled
    } else if term.result == Outcome::Ignored {
        TermResult::Ignored
    } else if term.blocked {
        TermResult::Pending
    } else {
        TermResult::Delivered
    }
}

fn not_forwarded_finding(init: &Proc, term: &Sig, children: &[Proc]) -> Finding {
    let end = children
        .iter()
        .filter_map(|c| c.exit.as_ref().map(|x| x.time))
        .max()
        .unwrap_or(term.time);
    let mut f = base(FindingKind::NotForwarded, Severity::Error, end, init);
    f.children = children.iter().map(Proc::process_ref).collect();
    let handled = match term_result(init, term) {
        TermResult::Handled => "ran its handler",
        TermResult::Ignored => "ignored it",
        TermResult::Pending => "left it pending",
        TermResult::Delivered => "took it",
    };
    f.summary = format!(
        "{} got {} from {} and {handled}, but passed no signal on to {}{}: {} died by SIGKILL \
         with no chance to shut down",
        who(init.comm, init.pid, init.ns_pid),
        term.signal,
        peer_text(&term.sender),
        if children.len() == 1 {
            "the other process"
        } else {
            "the other processes"
        },
        where_text(init),
        list(&f.children)
    );
    f.remedy = "Make the signal reach the app. If PID 1 is a shell that starts it, let the app \
                replace the shell: exec form `CMD [\"app\", \"--flag\"]` instead of `CMD app \
                --flag` in the Dockerfile, or `exec app \"$@\"` as the last line of the \
                entrypoint script. If PID 1 has to supervise several processes, run an init that \
                forwards signals and waits for its children: `ENTRYPOINT [\"tini\", \"-g\", \
                \"--\"]`, `docker run --init`, or in the script `trap 'kill -TERM \"$child\"; \
                wait \"$child\"' TERM` before `wait`. When PID 1 exits the kernel SIGKILLs \
                everything left in the namespace."
        .into();
    f.signal = Some(term.signal.clone());
    f.sender = Some(term.sender.clone());
    f.term_time = Some(term.time);
    f.term_sender = Some(term.sender.clone());
    f.term_result = Some(term_result(init, term));
    f.reason = term.reason;
    f.push_evidence(&term.ev);
    if let Some(h) = &init.term_handled {
        f.push_evidence(h);
    }
    if let Some(x) = &init.exit {
        f.push_evidence(&x.ev);
    }
    for c in children {
        if let Some(k) = &c.kill {
            f.push_evidence(&k.ev);
        }
        if let Some(x) = &c.exit {
            f.push_evidence(&x.ev);
        }
    }
    f
}

fn grace_finding(p: &Proc, term: &Sig, kill: &Sig, also: &[Proc]) -> Finding {
    let exit = p.exit.as_ref();
    let end = exit.map(|x| x.time).unwrap_or(kill.time);
    let mut f = base(FindingKind::GraceExceeded, Severity::Error, end, p);
    let grace = kill.time.since(term.time);
    let result = term_result(p, term);
    f.also_killed = also.iter().map(Proc::process_ref).collect();
    let what = match result {
        TermResult::Handled => "ran its handler but was still running".to_string(),
        TermResult::Ignored => format!(
            "never saw it (ignored: {}) and was still running",
            term.reason
                .map(|r| r.describe())
                .unwrap_or("reason unknown")
        ),
        TermResult::Pending => "had it blocked, pending, and was still running".to_string(),
        TermResult::Delivered => "was still running".to_string(),
    };
    f.summary = format!(
        "{}{} got {} from {}, {what} {} later, when {} sent SIGKILL; it died with status {}{}",
        who(p.comm, p.pid, p.ns_pid),
        where_text(p),
        term.signal,
        peer_text(&term.sender),
        duration(grace),
        peer_text(&kill.sender),
        exit.map(|x| x.exit_code).unwrap_or(137),
        if also.is_empty() {
            String::new()
        } else {
            format!(", and so did {}", list(&f.also_killed))
        }
    );
    f.remedy = match result {
        TermResult::Ignored => format!(
            "The {} was dropped before the process could see it, so the whole grace period was \
             wasted: install a handler for it, or run tini as PID 1 (`ENTRYPOINT [\"tini\", \
             \"--\"]`, `docker run --init`), or use the exec form `CMD [\"app\"]` so the app \
             itself is PID 1 with its own handler.",
            term.signal
        ),
        TermResult::Pending => format!(
            "{} was blocked and never delivered: unblock it (check sigprocmask / \
             pthread_sigmask in the main thread and in threads it creates), or wait for it \
             with sigwaitinfo or a signalfd and start the shutdown from there.",
            term.signal
        ),
        _ => format!(
            "Shut down within the grace period, with a margin: give the drain a deadline \
             shorter than the {} it gets now (e.g. 25s for 30s), stop accepting work first, and \
             close slow dependencies with timeouts. If the work really needs longer, raise the \
             grace period: `terminationGracePeriodSeconds` in the pod spec, `docker stop -t N` \
             or `stop_grace_period` in Compose, `TimeoutStopSec=` in a systemd unit.",
            duration(grace)
        ),
    };
    f.signal = Some(term.signal.clone());
    f.sender = Some(kill.sender.clone());
    f.reason = term.reason;
    f.term_time = Some(term.time);
    f.term_sender = Some(term.sender.clone());
    f.term_result = Some(result);
    f.kill_time = Some(kill.time);
    f.kill_sender = Some(kill.sender.clone());
    f.grace_ns = Some(grace);
    f.shutdown_ns = exit.map(|x| x.time.since(term.time));
    f.exit_code = exit.map(|x| x.exit_code);
    f.push_evidence(&term.ev);
    if let Some(h) = &p.term_handled {
        f.push_evidence(h);
    }
    f.push_evidence(&kill.ev);
    if let Some(x) = exit {
        f.push_evidence(&x.ev);
    }
    for q in also {
        if let Some(x) = &q.exit {
            f.push_evidence(&x.ev);
        }
    }
    f
}

fn oom_finding(p: &Proc) -> Finding {
    let exit = p.exit.as_ref();
    let oom = p.oom.as_ref();
    let time = exit
        .map(|x| x.time)
        .or(oom.map(|o| o.ev.time))
        .unwrap_or(p.last_seen);
    let mut f = base(FindingKind::OomKilled, Severity::Error, time, p);
    let trigger = oom.map(|o| o.trigger.clone());
    let by = match &trigger {
        Some(t) if t.pid == p.pid => " while it was allocating memory itself".to_string(),
        Some(t) => format!(" while {} was allocating memory", peer_text(t)),
        None => String::new(),
    };
    let scope = match (&p.container, p.cgroup_id) {
        (Some(c), _) => format!("{} hit its memory limit", container_text(c)),
        (None, Some(cg)) if cg > ROOT_CGROUP => format!("cgroup {cg} hit its memory limit"),
        _ => "memory ran out".to_string(),
    };
    f.summary = format!(
        "the kernel's OOM killer killed {}: {scope}{by}{}",
        who(p.comm, p.pid, p.ns_pid),
        exit.map(|x| format!("; it died with status {}", x.exit_code))
            .unwrap_or_default()
    );
    f.remedy = "Give it the memory it needs or make it need less: raise the limit \
                (`resources.limits.memory` in the pod spec, `docker run --memory`, `MemoryMax=` \
                in a systemd unit), or keep the program's own heap below the limit (GOMEMLIMIT \
                for Go, -XX:MaxRAMPercentage for the JVM, --max-old-space-size for Node.js, \
                fewer workers). If usage grows without bound, profile it for a leak. Exit status \
                137 with this finding is the OOM killer, not a shutdown."
        .into();
    f.signal = Some("SIGKILL".into());
    f.code = p.kill.as_ref().map(|k| k.code.clone());
    f.sender = p.kill.as_ref().map(|k| k.sender.clone());
    f.trigger = trigger;
    f.cause = Some(Cause::Kernel);
    f.exit_code = exit.map(|x| x.exit_code);
    if let Some(k) = &p.kill {
        f.push_evidence(&k.ev);
    }
    if let Some(o) = oom {
        f.push_evidence(&o.ev);
    }
    if let Some(x) = exit {
        f.push_evidence(&x.ev);
    }
    f.evidence.sort_by_key(|e| e.time);
    f
}

/// How the fatal signal came about, from its generate record or else the exit's `killed_by`.
fn cause_of(p: &Proc, signo: u32) -> (Cause, Option<Peer>, Option<String>) {
    if let Some(s) = p.fatal.as_ref().filter(|s| s.signo == signo) {
        let cause = if s.sender.pid == p.pid {
            if signo == SIGPIPE {
                Cause::BrokenPipe
            } else if s.si_code > 0 && s.si_code != SI_KERNEL {
                Cause::Fault
            } else {
                Cause::SelfRaised
            }
        } else if s.si_code == SI_KERNEL {
            Cause::Kernel
        } else {
            Cause::Process
        };
        return (cause, Some(s.sender.clone()), Some(s.code.clone()));
    }
    let Some(k) = p.exit.as_ref().and_then(|x| x.killed_by.clone()) else {
        return (Cause::Unknown, None, None);
    };
    let cause = if k.pid == p.pid {
        if signo == SIGPIPE {
            Cause::BrokenPipe
        } else if matches!(k.code.as_ref(), "SI_USER" | "SI_TKILL" | "SI_QUEUE") {
            Cause::SelfRaised
        } else {
            Cause::Fault
        }
    } else if k.code == "SI_KERNEL" {
        Cause::Kernel
    } else {
        Cause::Process
    };
    (
        cause,
        Some(Peer {
            pid: k.pid,
            comm: k.comm,
        }),
        Some(k.code.to_string()),
    )
}

fn death_remedy(signo: u32, code: Option<&str>) -> String {
    match signo {
        SIGSEGV => {
            format!(
            "A memory-safety bug{}: get a core dump (`ulimit -c unlimited` or LimitCORE=infinity, \
             and a core_pattern that is writable from the container) or run it under gdb / \
             AddressSanitizer, and fix the access. In managed runtimes look at native \
             extensions and FFI calls.",
            match code {
                Some("SEGV_MAPERR") => " (SEGV_MAPERR: an unmapped address, e.g. a null or \
                                        dangling pointer, or a stack overflow)",
                Some("SEGV_ACCERR") => " (SEGV_ACCERR: a mapped address without the right \
                                        permission, e.g. a write to read-only memory)",
                _ => "",
            }
        )
        }
        SIGBUS => "A bad memory access to a mapping: usually a memory-mapped file that was \
                   truncated under it, or a full tmpfs (/dev/shm is 64 MiB in Docker: raise \
                   `--shm-size` or mount an emptyDir with medium Memory); otherwise an unaligned \
                   access. Get a core dump to see where."
            .into(),
        SIGFPE => "An arithmetic fault, usually an integer division by zero (FPE_INTDIV): guard \
                   the divisor. Get a core dump to see where."
            .into(),
        SIGILL => "An illegal instruction: a binary built for a newer CPU than this one (e.g. \
                   AVX-512, -march=native), a corrupted binary, or a deliberate trap (Rust and \
                   C compilers emit ud2 for unreachable code). Rebuild for the target CPU."
            .into(),
        SIGABRT => "The process called abort(): a failed assert(), a C++ exception nobody caught \
                    (std::terminate), glibc detecting heap corruption (\"double free\", \
                    \"corrupted size\"), or a Rust panic with panic=abort. Its last lines on \
                    stderr say which."
            .into(),
        SIGSYS => "A seccomp filter killed it for a forbidden system call: allow the call in the \
                   seccomp profile (`securityContext.seccompProfile`, `docker run \
                   --security-opt seccomp=…`) or avoid it."
            .into(),
        SIGPIPE => "It wrote to a pipe or socket whose reader had gone. In a shell pipeline \
                    (`cmd | head`) this is the normal way the writer stops. In a server, ignore \
                    SIGPIPE (signal(SIGPIPE, SIG_IGN), or MSG_NOSIGNAL on send) and handle the \
                    EPIPE error instead of dying on the first closed connection."
            .into(),
        SIGTERM | SIGINT | SIGHUP | SIGQUIT => format!(
            "It had no handler for {}, so the default action ended it without any cleanup. If \
             it holds state worth saving (connections, buffers, locks), catch it (and handle \
             SIGTERM and SIGINT the same way) and shut down cleanly within the grace period.",
            crate::names::signal_name(signo)
        ),
        _ => format!(
            "It had no handler for {}, whose default action ends the process: install a handler \
             (or SIG_IGN) before anything can send it, or stop sending it.",
            crate::names::signal_name(signo)
        ),
    }
}

/// signal_death for a death other than by SIGKILL.
fn death_finding(p: &Proc, signo: u32) -> Option<Finding> {
    let x = p.exit.as_ref()?;
    let signal = x
        .signal
        .clone()
        .unwrap_or_else(|| crate::names::signal_name(signo).into_owned());
    let (cause, sender, code) = cause_of(p, signo);
    let severity = match signo {
        SIGSEGV | SIGBUS | SIGFPE | SIGILL | SIGABRT | SIGSYS | SIGTRAP => Severity::Error,
        SIGINT | SIGHUP => Severity::Info,
        _ => Severity::Warning,
    };
    let mut f = base(FindingKind::SignalDeath, severity, x.time, p);
    let how = match (cause, &sender) {
        (Cause::Fault, _) => format!(
            "from a fault in the process itself ({})",
            code.as_deref().unwrap_or("?")
        ),
        (Cause::SelfRaised, _) if signo == SIGABRT => "from abort() in the process itself".into(),
        (Cause::SelfRaised, _) => "raised by the process itself".into(),
        (Cause::BrokenPipe, _) => "from its own write to a pipe or socket with no reader".into(),
        (Cause::Kernel, Some(s)) => format!("from the kernel (in {})", peer_text(s)),
        (_, Some(s)) => format!(
            "from {} (pid {}, {})",
            s.comm,
            s.pid,
            code.as_deref().unwrap_or("?")
        ),
        _ => "from an unseen sender".into(),
    };
    let nohandler = match p.fatal.as_ref().and_then(|s| s.disposition) {
        Some(Disposition::Default) => ", which it had no handler for",
        _ => "",
    };
    f.summary = format!(
        "{}{} was killed by {signal} {how}{nohandler}; status {}{}",
        who(p.comm, p.pid, p.ns_pid),
        where_text(p),
        x.exit_code,
        if x.core_dumped { ", core dumped" } else { "" }
    );
    f.remedy = death_remedy(signo, code.as_deref());
    f.signal = Some(signal);
    f.code = code;
    f.sender = sender;
    f.cause = Some(cause);
    f.exit_code = Some(x.exit_code);
    f.core_dumped = Some(x.core_dumped);
    if let Some(s) = p.fatal.as_ref().filter(|s| s.signo == signo) {
        f.push_evidence(&s.ev);
    }
    f.push_evidence(&x.ev);
    Some(f)
}

/// signal_death for a SIGKILL no other finding explains.
fn kill_death_finding(p: &Proc, init: Option<&Proc>) -> Option<Finding> {
    let x = p.exit.as_ref()?;
    let mut f = base(FindingKind::SignalDeath, Severity::Warning, x.time, p);
    let zapped_by = p.zapped_by();
    let (cause, sender) = match (&p.kill, zapped_by) {
        (Some(k), Some(_)) if init.is_some_and(Proc::is_ns_init) => {
            (Cause::NamespaceInitExit, Some(k.sender.clone()))
        }
        (Some(k), _) if k.sender.pid == p.pid => (Cause::SelfRaised, Some(k.sender.clone())),
        (Some(k), _) if k.si_code == SI_KERNEL => (Cause::Kernel, Some(k.sender.clone())),
        (Some(k), _) => (Cause::Process, Some(k.sender.clone())),
        (None, _) => match &x.killed_by {
            Some(k) => (
                Cause::Process,
                Some(Peer {
                    pid: k.pid,
                    comm: k.comm,
                }),
            ),
            None => (Cause::Unknown, None),
        },
    };
    let from = sender
        .as_ref()
        .map(peer_text)
        .unwrap_or_else(|| "an unseen sender".into());
    let (summary, remedy) = match cause {
        Cause::NamespaceInitExit => (
            format!(
                "{}{} was killed by SIGKILL because PID 1 of its namespace, {}, exited: the \
                 kernel kills every process left in a PID namespace whose init is gone",
                who(p.comm, p.pid, p.ns_pid),
                where_text(p),
                from
            ),
            "Have PID 1 stop its children before it exits: forward SIGTERM to them and wait \
             (tini does both: `ENTRYPOINT [\"tini\", \"-g\", \"--\"]`), or make the app itself \
             PID 1 with the exec form `CMD [\"app\"]`."
                .to_string(),
        ),
        _ => (
            format!(
                "{}{} was killed by SIGKILL from {from}{}; status {}",
                who(p.comm, p.pid, p.ns_pid),
                where_text(p),
                match (&p.term, &p.kill) {
                    (Some(t), Some(k)) => format!(
                        ", {} after the {} it outlived",
                        duration(k.time.since(t.time)),
                        t.signal
                    ),
                    _ => " with no SIGTERM first, so it had no chance to clean up".to_string(),
                },
                x.exit_code
            ),
            "Stop it with SIGTERM first and send SIGKILL only after a grace period \
             (`kill -TERM`, then `kill -KILL` if it is still there; `docker stop` rather than \
             `docker kill`; no `--grace-period=0 --force` in kubectl)."
                .to_string(),
        ),
    };
    f.summary = summary;
    f.remedy = remedy;
    f.signal = Some("SIGKILL".into());
    f.code = p.kill.as_ref().map(|k| k.code.clone());
    f.sender = sender;
    f.cause = Some(cause);
    f.exit_code = Some(x.exit_code);
    f.core_dumped = Some(x.core_dumped);
    if let Some(k) = &p.kill {
        f.push_evidence(&k.ev);
    }
    f.push_evidence(&x.ev);
    Some(f)
}

fn coalesced_finding(a: Agg) -> Finding {
    let p = Proc {
        pid: a.pid,
        comm: a.comm,
        container: a.container.clone(),
        ..Proc::default()
    };
    let mut f = base(FindingKind::Coalesced, Severity::Warning, a.last, &p);
    f.cgroup_id = None;
    let span = a.last.since(a.first);
    let (summary, remedy) = if a.result == Outcome::Overflow {
        (
            format!(
                "{} {} to {} were dropped over {}: its queue of pending real-time signals was \
                 full, and the senders got EAGAIN",
                a.count,
                a.signal,
                who(a.comm, a.pid, None),
                duration(span)
            ),
            "Real-time signals queue up to RLIMIT_SIGPENDING per user. Handle them faster (or \
             unblock the signal), raise the limit (`ulimit -i`, `LimitSIGPENDING=` in systemd), \
             make the senders retry on EAGAIN, or carry high-rate events over a pipe, eventfd or \
             socket instead."
                .to_string(),
        )
    } else {
        (
            format!(
                "{} {} to {} were merged into one already pending over {}: the process sees \
                 one signal for all of them",
                a.count,
                a.signal,
                who(a.comm, a.pid, None),
                duration(span)
            ),
            if is_standard(a.signo) {
                format!(
                    "Standard signals do not queue: at most one {} is pending at a time. Do not \
                     count them; treat a signal as \"something changed\" and re-check the state \
                     (drain the work queue, call waitpid in a loop), keep it unblocked and the \
                     handler short, or use a real-time signal with sigqueue, or a pipe or \
                     eventfd, when every event matters.",
                    a.signal
                )
            } else {
                "Keep the signal unblocked and the handler short.".to_string()
            },
        )
    };
    f.summary = summary;
    f.remedy = remedy;
    f.signal = Some(a.signal);
    f.result = Some(a.result);
    f.count = Some(a.count);
    f.first_time = Some(a.first);
    f.last_time = Some(a.last);
    f.span_ns = Some(span);
    f.senders = a.senders;
    f.evidence = a.evidence;
    f
}

fn lost_finding(l: &Lost) -> Finding {
    let mut f = Finding::new(
        FindingKind::EventsLost,
        Severity::Warning,
        l.time,
        ProcessRef::default(),
    );
    let e = &l.events;
    let kinds = [
        ("generate", e.generate),
        ("deliver", e.deliver),
        ("exit", e.exit),
        ("send_failed", e.send_failed),
        ("oom", e.oom),
    ]
    .iter()
    .filter(|(_, n)| *n > 0)
    .map(|(k, n)| format!("{n} {k}"))
    .collect::<Vec<_>>()
    .join(", ");
    f.summary = format!(
        "the tracer lost {} events{}: findings around this time may be missing or incomplete",
        l.count,
        if kinds.is_empty() {
            String::new()
        } else {
            format!(" ({kinds})")
        }
    );
    f.remedy = "Give the ring buffer more room (`--ring-size 16M`) or trace less (filters on \
                pid, signal or event kind) so that no event is dropped."
        .into();
    f.count = Some(l.count);
    f.evidence.push(Evidence {
        time: l.time,
        event: "lost".into(),
        text: format!("{} events lost since the previous report", l.count),
    });
    f
}

/// Readable multi-line text of a finding.
pub fn render_text(f: &Finding) -> String {
    let mut s = String::new();
    let _ = write!(
        s,
        "{} {} at {}",
        f.severity.as_str(),
        f.kind.as_str(),
        clock(f.time)
    );
    if f.process.pid != 0 {
        let _ = write!(
            s,
            ": {}",
            who(f.process.comm, f.process.pid, f.process.ns_pid)
        );
    }
    if let Some(c) = &f.container {
        let _ = write!(s, " in {}", container_text(c));
    }
    s.push('\n');
    let _ = writeln!(s, "  {}", f.summary);
    if let (Some(g), Some(t)) = (f.grace_ns, f.shutdown_ns) {
        let _ = writeln!(
            s,
            "  grace period {} (SIGTERM to SIGKILL), shutdown {}",
            duration(g),
            duration(t)
        );
    }
    if !f.evidence.is_empty() {
        s.push_str("  evidence:\n");
        for e in &f.evidence {
            let _ = writeln!(s, "    {} {:<8} {}", clock(e.time), e.event, e.text);
        }
    }
    let _ = writeln!(s, "  remedy: {}", f.remedy);
    s
}

impl fmt::Display for Finding {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&render_text(self))
    }
}

/// Readable multi-line text of a timeline: one line per step with its offset from the first.
pub fn render_timeline(t: &Timeline) -> String {
    let mut s = String::new();
    let _ = write!(
        s,
        "shutdown of {}",
        who(t.process.comm, t.process.pid, t.process.ns_pid)
    );
    if let Some(c) = &t.container {
        let _ = write!(s, " in {}", container_text(c));
    }
    s.push('\n');
    for step in &t.steps {
        let _ = writeln!(
            s,
            "  {} {:>10}  {:<9} {}",
            clock(step.time),
            if step.offset_ns == 0 {
                "+0".to_string()
            } else {
                format!("+{}", duration(step.offset_ns))
            },
            match step.kind {
                StepKind::Signal => "signal",
                StepKind::Handled => "handled",
                StepKind::Ignored => "ignored",
                StepKind::Pending => "pending",
                StepKind::Forwarded => "forwarded",
                StepKind::Exit => "exit",
            },
            step.text
        );
    }
    s
}

#[cfg(test)]
mod tests {
    use super::*;

    fn load(ndjson: &str) -> Vec<Record> {
        ndjson
            .lines()
            .filter(|l| !l.trim().is_empty())
            .enumerate()
            .map(|(i, l)| {
                serde_json::from_str(l).unwrap_or_else(|e| panic!("fixture line {}: {e}", i + 1))
            })
            .collect()
    }

    const INIT_IGNORED: &str = include_str!("../tests/fixtures/explain/init_ignored.ndjson");
    const NOT_FORWARDED: &str = include_str!("../tests/fixtures/explain/not_forwarded.ndjson");
    const GRACE: &str = include_str!("../tests/fixtures/explain/grace_exceeded.ndjson");
    const OOM: &str = include_str!("../tests/fixtures/explain/oom_killed.ndjson");
    const DEATH: &str = include_str!("../tests/fixtures/explain/signal_death.ndjson");
    const COALESCED: &str = include_str!("../tests/fixtures/explain/coalesced.ndjson");
    const HEALTHY: &str = include_str!("../tests/fixtures/explain/healthy_shutdown.ndjson");

    const ALL: [&str; 7] = [
        INIT_IGNORED,
        NOT_FORWARDED,
        GRACE,
        OOM,
        DEATH,
        COALESCED,
        HEALTHY,
    ];

    fn kinds(fs: &[Finding]) -> Vec<FindingKind> {
        fs.iter().map(|f| f.kind).collect()
    }

    fn one(fs: &[Finding], kind: FindingKind) -> &Finding {
        let v: Vec<_> = fs.iter().filter(|f| f.kind == kind).collect();
        assert_eq!(v.len(), 1, "{kind:?} in {:?}", kinds(fs));
        v[0]
    }

    #[test]
    fn init_ignored_names_the_init_and_the_sender() {
        let fs = explain_all(&load(INIT_IGNORED));
        let f = one(&fs, FindingKind::InitIgnored);
        assert_eq!(f.severity, Severity::Error);
        assert_eq!((f.process.pid, f.process.ns_pid), (22070, Some(1)));
        assert_eq!(f.process.comm.as_str(), "sleep");
        assert_eq!(f.signal.as_deref(), Some("SIGTERM"));
        assert_eq!(f.reason, Some(IgnoreReason::PidNamespaceInit));
        assert_eq!(f.sender.as_ref().map(|s| s.pid), Some(22067));
        assert_eq!(f.evidence.len(), 1);
        assert_eq!(f.evidence[0].event, "generate");
        assert!(f.remedy.contains("tini") && f.remedy.contains("CMD [\"app\"]"));
        // The SIGKILL two seconds later ended it: the grace period ran out because of it.
        let g = one(&fs, FindingKind::GraceExceeded);
        assert_eq!(g.term_result, Some(TermResult::Ignored));
        assert_eq!(g.exit_code, Some(137));
        let grace = g.grace_ns.expect("grace");
        assert!((2_000_000_000..2_010_000_000).contains(&grace), "{grace}");
        // And the death is not reported a third time.
        assert_eq!(fs.len(), 2, "{:?}", kinds(&fs));
    }

    #[test]
    fn init_ignored_is_reported_once_per_process_and_at_once() {
        let records = load(INIT_IGNORED);
        let mut e = Engine::new();
        // The first record is the ignored SIGTERM: certain as soon as it is seen.
        assert_eq!(kinds(&e.push(&records[0])), vec![FindingKind::InitIgnored]);
        // The same SIGTERM again (a second `kill`): nothing new.
        assert!(e.push(&records[0]).is_empty());
    }

    #[test]
    fn not_forwarded_lists_the_children_killed_at_teardown() {
        let fs = explain_all(&load(NOT_FORWARDED));
        assert_eq!(kinds(&fs), vec![FindingKind::NotForwarded]);
        let f = &fs[0];
        assert_eq!(f.process.pid, 24175);
        assert_eq!(f.process.comm.as_str(), "sh");
        assert_eq!(f.term_result, Some(TermResult::Handled));
        assert_eq!(
            f.children
                .iter()
                .map(|c| (c.pid, c.comm.as_str().into_owned()))
                .collect::<Vec<_>>(),
            vec![(24177, "sleep".to_string())]
        );
        assert_eq!(
            f.container.as_ref().and_then(|c| c.pod.as_deref()),
            Some("web-0")
        );
        // SIGTERM, handler, the init's exit, the kernel's SIGKILL, the child's exit.
        let events: Vec<_> = f.evidence.iter().map(|e| e.event.as_str()).collect();
        assert_eq!(
            events,
            vec!["generate", "deliver", "exit", "generate", "exit"]
        );
        assert!(f.evidence.windows(2).all(|w| w[0].time <= w[1].time));
        assert!(f.remedy.contains("exec"));
    }

    #[test]
    fn not_forwarded_waits_for_the_teardown_to_settle() {
        let records = load(NOT_FORWARDED);
        let mut e = Engine::new();
        let mut early = Vec::new();
        for r in &records {
            early.extend(e.push(r));
        }
        assert!(early.is_empty(), "{:?}", kinds(&early));
        let last = records.last().map(Record::time).unwrap_or_default();
        // Live: a quiet trace concludes it once the settle time has passed.
        assert!(e.advance(last).is_empty());
        let settled = e.advance(later(last, 3 * SETTLE_NS));
        assert_eq!(kinds(&settled), vec![FindingKind::NotForwarded]);
        assert!(e.finish().is_empty(), "concluded once only");
    }

    #[test]
    fn forwarding_init_is_not_blamed() {
        // The grace fixture's PID 1 passes SIGTERM on to its worker.
        let fs = explain_all(&load(GRACE));
        assert!(!kinds(&fs).contains(&FindingKind::NotForwarded));
    }

    #[test]
    fn grace_exceeded_reports_the_gap_and_who_else_died() {
        let fs = explain_all(&load(GRACE));
        assert_eq!(kinds(&fs), vec![FindingKind::GraceExceeded]);
        let f = &fs[0];
        assert_eq!(f.process.pid, 24529);
        assert_eq!(f.term_result, Some(TermResult::Handled));
        assert_eq!(f.term_sender.as_ref().map(|s| s.pid), Some(24605));
        assert_eq!(f.kill_sender.as_ref().map(|s| s.pid), Some(24700));
        let grace = f.grace_ns.expect("grace");
        assert!((3_000_000_000..3_010_000_000).contains(&grace), "{grace}");
        assert!(f.shutdown_ns.expect("shutdown") >= grace);
        assert_eq!(f.exit_code, Some(137));
        assert_eq!(
            f.also_killed.iter().map(|p| p.pid).collect::<Vec<_>>(),
            vec![24580]
        );
        assert_eq!(
            f.container.as_ref().and_then(|c| c.namespace.as_deref()),
            Some("shop")
        );
        assert!(f.remedy.contains("terminationGracePeriodSeconds"));
        assert!(f.summary.contains("3.00"), "{}", f.summary);
    }

    #[test]
    fn a_sigkill_long_after_a_handled_sigterm_is_no_grace_period() {
        let mut records = load(GRACE);
        let kill_at = records
            .iter()
            .position(|r| matches!(r, Record::Generate(g) if g.signo == SIGKILL))
            .expect("a SIGKILL");
        for r in &mut records[kill_at..] {
            let t = match r {
                Record::Generate(g) => &mut g.time,
                Record::Deliver(d) => &mut d.time,
                Record::Exit(x) => &mut x.time,
                _ => continue,
            };
            *t = later(*t, 2 * MAX_GRACE_NS);
        }
        let fs = explain_all(&records);
        assert!(!kinds(&fs).contains(&FindingKind::GraceExceeded));
        let f = fs
            .iter()
            .find(|f| f.process.pid == 24529)
            .expect("the death is still reported");
        assert_eq!(
            (f.kind, f.cause),
            (FindingKind::SignalDeath, Some(Cause::Process))
        );
        assert!(
            f.summary.contains("after the SIGTERM it outlived"),
            "{}",
            f.summary
        );
    }

    #[test]
    fn oom_killed_names_victim_trigger_and_container() {
        let fs = explain_all(&load(OOM));
        assert_eq!(kinds(&fs), vec![FindingKind::OomKilled]);
        let f = &fs[0];
        assert_eq!(f.process.pid, 25828);
        assert_eq!(f.trigger.as_ref().map(|t| t.pid), Some(25828));
        assert_eq!(f.exit_code, Some(137));
        assert_eq!(f.code.as_deref(), Some("SI_KERNEL"));
        assert_eq!(f.cgroup_id, Some(10244));
        assert_eq!(
            f.container.as_ref().and_then(|c| c.name.as_deref()),
            Some("indexer")
        );
        let events: Vec<_> = f.evidence.iter().map(|e| e.event.as_str()).collect();
        assert_eq!(events, vec!["generate", "oom", "exit"]);
        assert!(f.summary.contains("OOM killer"));
    }

    #[test]
    fn oom_is_concluded_at_the_exit() {
        let records = load(OOM);
        let mut e = Engine::new();
        let exit_at = records
            .iter()
            .position(|r| matches!(r, Record::Exit(_)))
            .expect("exit in fixture");
        for r in &records[..exit_at] {
            assert!(e.push(r).is_empty());
        }
        assert_eq!(
            kinds(&e.push(&records[exit_at])),
            vec![FindingKind::OomKilled]
        );
    }

    #[test]
    fn signal_deaths_name_the_signal_and_its_origin() {
        let fs = explain_all(&load(DEATH));
        assert!(fs.iter().all(|f| f.kind == FindingKind::SignalDeath));
        let got: Vec<_> = fs
            .iter()
            .map(|f| {
                (
                    f.process.pid,
                    f.signal.clone().unwrap_or_default(),
                    f.code.clone().unwrap_or_default(),
                    f.cause,
                    f.severity,
                    f.exit_code,
                )
            })
            .collect();
        use Cause::*;
        use Severity::*;
        let want = vec![
            (
                26315,
                "SIGSEGV".into(),
                "SEGV_MAPERR".into(),
                Some(Fault),
                Error,
                Some(139),
            ),
            (
                26360,
                "SIGPIPE".into(),
                "SI_USER".into(),
                Some(BrokenPipe),
                Warning,
                Some(141),
            ),
            (
                26362,
                "SIGTERM".into(),
                "SI_USER".into(),
                Some(Process),
                Warning,
                Some(143),
            ),
            (
                26393,
                "SIGABRT".into(),
                "SI_TKILL".into(),
                Some(SelfRaised),
                Error,
                Some(134),
            ),
        ];
        assert_eq!(got, want);
        let term = &fs[2];
        assert_eq!(
            term.sender.as_ref().map(|s| s.comm.as_str().into_owned()),
            Some("kill".into())
        );
        assert!(term.summary.contains("no handler"), "{}", term.summary);
        assert!(fs[0].remedy.contains("SEGV_MAPERR"));
        assert!(fs[1].remedy.contains("SIGPIPE"));
    }

    #[test]
    fn signal_death_falls_back_to_killed_by() {
        // Only the exit record: the join in enrich gives the sender.
        let records: Vec<_> = load(DEATH)
            .into_iter()
            .filter(|r| matches!(r, Record::Exit(x) if x.pid == 26362))
            .collect();
        let fs = explain_all(&records);
        let f = one(&fs, FindingKind::SignalDeath);
        assert_eq!(
            (f.cause, f.sender.as_ref().map(|s| s.pid)),
            (Some(Cause::Process), Some(26391))
        );
    }

    #[test]
    fn coalesced_counts_merged_and_dropped_signals() {
        let fs = explain_all(&load(COALESCED));
        assert_eq!(
            kinds(&fs),
            vec![FindingKind::Coalesced, FindingKind::Coalesced]
        );
        let merged = fs
            .iter()
            .find(|f| f.result == Some(Outcome::AlreadyPending))
            .expect("merged");
        assert_eq!(
            (merged.signal.as_deref(), merged.count),
            (Some("SIGUSR1"), Some(4))
        );
        assert_eq!(merged.senders.len(), 4);
        let dropped = fs
            .iter()
            .find(|f| f.result == Some(Outcome::Overflow))
            .expect("dropped");
        assert_eq!(
            (dropped.signal.as_deref(), dropped.count),
            (Some("SIGRTMIN"), Some(4))
        );
        let span = dropped.span_ns.expect("span");
        assert!((7_000_000..8_000_000).contains(&span), "{span}");
        assert_eq!(dropped.evidence.len(), 4);
        assert!(fs.iter().all(|f| f.process.pid == 26970));
    }

    #[test]
    fn sigchld_merges_are_not_findings() {
        // The SIGPIPE fixture has a SIGCHLD merged into a pending one.
        let fs = explain_all(&load(DEATH));
        assert!(!kinds(&fs).contains(&FindingKind::Coalesced));
    }

    #[test]
    fn healthy_shutdown_blames_nobody() {
        let records = load(HEALTHY);
        let fs = explain_all(&records);
        assert!(fs.iter().all(|f| !f.kind.blames()), "{:?}", kinds(&fs));
        assert!(fs.is_empty(), "{:?}", kinds(&fs));
        // It still has a timeline: SIGTERM, handled, exit 0.
        let mut e = Engine::new();
        for r in &records {
            e.push(r);
        }
        let ts = e.timelines();
        assert_eq!(ts.len(), 1);
        let steps: Vec<_> = ts[0].steps.iter().map(|s| s.kind).collect();
        assert_eq!(
            steps,
            vec![StepKind::Signal, StepKind::Handled, StepKind::Exit]
        );
        assert!(ts[0].steps[2].text.contains("status 0"));
    }

    #[test]
    fn timeline_tells_the_container_story_in_order() {
        let mut e = Engine::new();
        for r in load(GRACE) {
            e.push(&r);
        }
        let ts = e.timelines();
        assert_eq!(ts.len(), 1, "one container, one timeline");
        let t = &ts[0];
        assert_eq!(t.process.pid, 24529);
        let steps: Vec<_> = t.steps.iter().map(|s| (s.kind, s.pid)).collect();
        use StepKind::*;
        assert_eq!(
            steps,
            vec![
                (Signal, 24529),
                (Handled, 24529),
                (Forwarded, 24580),
                (Handled, 24580),
                (Signal, 24529),
                (Exit, 24529),
                (Signal, 24580),
                (Exit, 24580),
            ]
        );
        let kill = &t.steps[4];
        assert!(kill.text.starts_with("SIGKILL from kill"), "{}", kill.text);
        assert!((3_000_000_000..3_010_000_000).contains(&kill.offset_ns));
        let text = render_timeline(t);
        assert!(text.contains("status 137 (SIGKILL)"), "{text}");
        assert_eq!(text.lines().count(), 1 + t.steps.len());
        let json = serde_json::to_value(t).expect("serializes");
        assert_eq!(json["event"], "timeline");
    }

    #[test]
    fn namespace_teardown_joins_the_init_timeline() {
        let mut e = Engine::new();
        let mut records = load(NOT_FORWARDED);
        // Without containers, the kernel's SIGKILL from the exiting init still ties them.
        for r in &mut records {
            match r {
                Record::Generate(g) => {
                    g.target.container = None;
                    g.target.cgroup_id = Some(1);
                    g.sender.container = None;
                    g.sender.cgroup_id = 1;
                }
                Record::Deliver(d) => {
                    d.container = None;
                    d.cgroup_id = Some(1);
                }
                Record::Exit(x) => {
                    x.container = None;
                    x.cgroup_id = Some(1);
                }
                _ => {}
            }
        }
        let mut fs = Vec::new();
        for r in &records {
            fs.extend(e.push(r));
        }
        let ts = e.timelines();
        assert_eq!(ts.len(), 1);
        assert!(ts[0]
            .steps
            .iter()
            .any(|s| s.pid == 24177 && s.kind == StepKind::Exit));
        fs.extend(e.finish());
        let f = one(&fs, FindingKind::NotForwarded);
        assert_eq!(f.children.len(), 1);
        assert_eq!(f.container, None);
    }

    #[test]
    fn findings_round_trip_through_json() {
        for fixture in ALL {
            for f in explain_all(&load(fixture)) {
                let line = serde_json::to_string(&f).expect("serializes");
                assert!(!line.contains('\n'));
                let v: serde_json::Value = serde_json::from_str(&line).expect("json");
                assert_eq!(v["event"], "finding");
                assert_eq!(v["kind"], f.kind.as_str());
                assert!(v["process"]["pid"].is_u64());
                assert!(v.get("container").is_some(), "container is always present");
                let back: Finding = serde_json::from_str(&line).expect("deserializes");
                assert_eq!(back, f);
            }
        }
        // Another event is not a finding.
        let bad = r#"{"event":"timeline","time":"2026-11-26T13:36:49Z","kind":"coalesced"}"#;
        assert!(serde_json::from_str::<Finding>(bad).is_err());
    }

    #[test]
    fn replay_and_live_feeding_agree() {
        for fixture in ALL {
            let records = load(fixture);
            let whole = explain_all(&records);
            // Records one at a time with quiet periods in between, as a live trace feeds them.
            let mut e = Engine::new();
            let mut live = Vec::new();
            for r in &records {
                live.extend(e.push(r));
                live.extend(e.advance(r.time()));
            }
            live.extend(e.finish());
            assert_eq!(live, whole);
            // And the NDJSON round trip of the records changes nothing.
            let text: String = records
                .iter()
                .map(|r| serde_json::to_string(r).expect("record") + "\n")
                .collect();
            assert_eq!(explain_all(&load(&text)), whole);
        }
    }

    #[test]
    fn render_text_has_summary_evidence_and_remedy() {
        let fs = explain_all(&load(GRACE));
        let text = render_text(&fs[0]);
        let lines: Vec<_> = text.lines().collect();
        assert!(
            lines[0].starts_with("error grace_exceeded at "),
            "{}",
            lines[0]
        );
        assert!(lines[0].contains("container api of pod shop/api-7d9f8c6b5-x2k4q"));
        assert!(text.contains("grace period 3.00"));
        assert!(text.contains("  evidence:\n"));
        assert!(lines.last().is_some_and(|l| l.starts_with("  remedy: ")));
    }

    #[test]
    fn lost_events_are_a_warning() {
        let r: Record = serde_json::from_str(
            r#"{"event":"lost","time":"2026-11-26T13:37:00Z","count":12,"events":{"generate":10,"deliver":0,"exit":2,"send_failed":0,"oom":0}}"#,
        )
        .expect("lost record");
        let fs = explain_all(&[r]);
        let f = one(&fs, FindingKind::EventsLost);
        assert_eq!((f.severity, f.count), (Severity::Warning, Some(12)));
        assert!(f.summary.contains("10 generate, 2 exit"), "{}", f.summary);
        assert!(!f.kind.blames());
    }

    #[test]
    fn state_stays_bounded() {
        let mut e = Engine::new();
        let template = load(DEATH)
            .into_iter()
            .find_map(|r| match r {
                Record::Generate(g) if g.signo == SIGTERM => Some(g),
                _ => None,
            })
            .expect("a SIGTERM");
        let n = 2 * MAX_PROCS as u32;
        for i in 0..n {
            let mut g = template.clone();
            g.target.pid = Some(100_000 + i);
            g.target.tid = 100_000 + i;
            g.time = Time(template.time.0 + u64::from(i));
            e.push(&Record::Generate(g.clone()));
            // A quarter of them exit by the SIGTERM.
            if i % 4 == 0 {
                let x = Exit {
                    time: g.time,
                    pid: 100_000 + i,
                    comm: g.target.comm,
                    ns_pid: None,
                    cgroup_id: None,
                    exit_code: 143,
                    signal: Some(Cow::Borrowed("SIGTERM")),
                    signo: Some(SIGTERM),
                    core_dumped: false,
                    status: 15,
                    killed_by: None,
                    container: None,
                };
                assert_eq!(e.push(&Record::Exit(x)).len(), 1);
            }
        }
        assert!(e.procs.len() <= MAX_PROCS);
        assert!(e.dead.len() <= MAX_DEAD);
        assert!(e.timelines.len() <= MAX_TIMELINES);
        assert!(e.dues.len() <= 3 * MAX_DEAD);
        e.finish();
        assert!(e.dead.is_empty() && e.dues.is_empty());
    }
}
