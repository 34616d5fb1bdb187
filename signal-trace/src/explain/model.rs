//! What a finding and a timeline are: the `finding` and `timeline` records of the NDJSON contract.

use super::*;

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

/// Who stops the workload a finding is about, and so whose knobs its remedy names.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum Orchestrator {
    /// A container of a Kubernetes pod (the kubelet, through the CRI).
    Kubernetes,
    /// A Docker container (dockerd).
    Docker,
    /// A podman container.
    Podman,
    /// A containerd container outside Kubernetes (ctr, nerdctl).
    Containerd,
    /// A systemd unit, stopped by its manager (PID 1 or `systemd --user`).
    Systemd,
}

impl Orchestrator {
    pub fn as_str(self) -> &'static str {
        match self {
            Orchestrator::Kubernetes => "kubernetes",
            Orchestrator::Docker => "docker",
            Orchestrator::Podman => "podman",
            Orchestrator::Containerd => "containerd",
            Orchestrator::Systemd => "systemd",
        }
    }
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
    /// The node the process ran on (the records' `host`).
    #[serde(default)]
    pub host: Label,
    /// The node's boot id, when the records carry it.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub boot_id: Option<Label>,
    pub kind: FindingKind,
    pub severity: Severity,
    pub summary: String,
    pub process: ProcessRef,
    pub container: Option<Container>,
    /// The systemd unit of the process, when its cgroup is a unit's.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub unit: Option<String>,
    /// Who stops this workload: from the container's runtime and labels and from who sent its
    /// stop signals (the senders' programs and ancestry), or systemd for a unit its manager
    /// stopped; null when none says, or when only someone else (a `kill` from a shell) did.
    #[serde(default)]
    pub orchestrator: Option<Orchestrator>,
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
    pub(crate) fn new(
        kind: FindingKind,
        severity: Severity,
        time: Time,
        process: ProcessRef,
    ) -> Finding {
        Finding {
            event: FindingTag,
            time,
            host: Label::default(),
            boot_id: None,
            kind,
            severity,
            summary: String::new(),
            process,
            container: None,
            unit: None,
            orchestrator: None,
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

    pub(crate) fn push_evidence(&mut self, e: &Evidence) {
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
    /// The node the process ran on (the records' `host`).
    #[serde(default)]
    pub host: Label,
    /// The node's boot id, when the records carry it.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub boot_id: Option<Label>,
    /// The process the story started with (the first one signalled).
    pub process: ProcessRef,
    pub container: Option<Container>,
    /// The systemd unit of the process, when its cgroup is a unit's.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub unit: Option<String>,
    pub steps: Vec<Step>,
}
