//! The records signal-trace emits: its NDJSON contract (schema/events.schema.json).
//!
//! The same types are read back when a recorded stream is replayed, so live tracing and replay
//! feed identical values to the diagnosis engine. Field names are an API: extend, never rename.

use std::borrow::Cow;
use std::fmt;
use std::sync::Arc;
use std::time::{Duration, SystemTime, UNIX_EPOCH};

use serde::{Deserialize, Deserializer, Serialize, Serializer};

pub use crate::escape::RawText;

/// A point in time, nanoseconds since the Unix epoch; RFC 3339 UTC with nanoseconds in JSON.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub struct Time(pub u64);

impl Time {
    pub fn system_time(self) -> SystemTime {
        UNIX_EPOCH + Duration::from_nanos(self.0)
    }
    /// Nanoseconds from `earlier` to `self` (0 if `earlier` is later).
    pub fn since(self, earlier: Time) -> u64 {
        self.0.saturating_sub(earlier.0)
    }
    /// "HH:MM:SS.micros" (UTC), as text output shows a time.
    pub fn clock(self) -> String {
        let s = self.to_string();
        // RFC 3339: 2026-11-26T13:20:38.123456789Z
        s.get(11..26).map(str::to_owned).unwrap_or(s)
    }
}

impl fmt::Display for Time {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}", humantime::format_rfc3339_nanos(self.system_time()))
    }
}

impl Serialize for Time {
    fn serialize<S: Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
        s.collect_str(self)
    }
}

impl<'de> Deserialize<'de> for Time {
    fn deserialize<D: Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        let s = Cow::<str>::deserialize(d)?;
        let t = humantime::parse_rfc3339(&s).map_err(serde::de::Error::custom)?;
        let ns = t
            .duration_since(UNIX_EPOCH)
            .map_err(serde::de::Error::custom)?
            .as_nanos();
        Ok(Time(u64::try_from(ns).map_err(serde::de::Error::custom)?))
    }
}

/// A string shared by many records (the node's name, its boot id, a systemd unit): cloned by
/// reference count.
#[derive(Clone, Debug, Default, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub struct Label(Arc<str>);

impl Label {
    pub fn new(s: &str) -> Label {
        Label(Arc::from(s))
    }
    pub fn as_str(&self) -> &str {
        &self.0
    }
    pub fn is_empty(&self) -> bool {
        self.0.is_empty()
    }
}

impl std::ops::Deref for Label {
    type Target = str;
    fn deref(&self) -> &str {
        &self.0
    }
}

impl From<&str> for Label {
    fn from(s: &str) -> Label {
        Label::new(s)
    }
}

impl From<String> for Label {
    fn from(s: String) -> Label {
        Label(Arc::from(s))
    }
}

impl fmt::Display for Label {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.0)
    }
}

impl Serialize for Label {
    fn serialize<S: Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
        s.serialize_str(&self.0)
    }
}

impl<'de> Deserialize<'de> for Label {
    fn deserialize<D: Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        Ok(Label::new(&Cow::<str>::deserialize(d)?))
    }
}

/// The node a record was made on: `host` and `boot_id` in every record.
#[derive(Clone, Debug, Default, PartialEq, Eq, Hash)]
pub struct Node {
    /// `NODE_NAME` when set (a DaemonSet sets it to the Kubernetes node name), else the
    /// hostname.
    pub host: Label,
    /// /proc/sys/kernel/random/boot_id: changes at every boot, so pids of two boots of one node
    /// are told apart.
    pub boot_id: Option<Label>,
}

/// A task's `comm`: up to 15 bytes that the task sets for itself (`prctl(PR_SET_NAME)`, or
/// by writing `/proc/self/comm`), so a claim, never proof of what runs. NDJSON carries it
/// lossily as UTF-8; `Display` escapes it for a terminal (see [`crate::escape`]).
#[derive(Clone, Copy, Default, PartialEq, Eq, Hash)]
pub struct Comm(pub [u8; 16]);

impl Comm {
    pub fn new(s: &str) -> Comm {
        let mut c = [0u8; 16];
        let n = s.len().min(15);
        c[..n].copy_from_slice(&s.as_bytes()[..n]);
        Comm(c)
    }
    pub fn bytes(&self) -> &[u8] {
        let n = self.0.iter().position(|&b| b == 0).unwrap_or(16);
        &self.0[..n]
    }
    pub fn from_bytes(b: &[u8]) -> Comm {
        let mut c = [0u8; 16];
        let n = b.len().min(15);
        c[..n].copy_from_slice(&b[..n]);
        Comm(c)
    }
    pub fn as_str(&self) -> Cow<'_, str> {
        String::from_utf8_lossy(self.bytes())
    }
}

impl fmt::Debug for Comm {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{:?}", self.as_str())
    }
}

impl fmt::Display for Comm {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        crate::escape::Escaped(self.bytes()).fmt(f)
    }
}

impl Serialize for Comm {
    fn serialize<S: Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
        s.serialize_str(&self.as_str())
    }
}

impl<'de> Deserialize<'de> for Comm {
    fn deserialize<D: Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        Ok(Comm::new(&Cow::<str>::deserialize(d)?))
    }
}

/// What the kernel did with a generated signal (`enum trace_signal_result`).
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum Outcome {
    /// Queued for the target (delivered later, or consumed by sigwait/signalfd).
    Delivered,
    /// Dropped at generation; `reason` says why.
    Ignored,
    /// A standard signal that was already pending: merged into it.
    AlreadyPending,
    /// Real-time queue full: dropped, the sender got EAGAIN.
    Overflow,
    /// Queued without its siginfo (no memory for it).
    LoseInfo,
}

impl Outcome {
    pub fn from_raw(r: u32) -> Option<Outcome> {
        Some(match r {
            0 => Outcome::Delivered,
            1 => Outcome::Ignored,
            2 => Outcome::AlreadyPending,
            3 => Outcome::Overflow,
            4 => Outcome::LoseInfo,
            _ => return None,
        })
    }
    pub fn as_str(self) -> &'static str {
        crate::event::names::result_name(self as u32)
    }
}

/// Why the kernel ignored a signal, from the target's state at that moment.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum IgnoreReason {
    /// The target's handler for the signal is SIG_IGN.
    HandlerIgnore,
    /// The handler is SIG_DFL and the default action is to ignore (CHLD, CONT, URG, WINCH).
    DefaultIgnore,
    /// The target is the init of a PID namespace (SIGNAL_UNKILLABLE) with the default handler:
    /// such an init only gets signals it has a handler for.
    PidNamespaceInit,
    /// The target is the host's init (pid 1) and the signal is SIGKILL or SIGSTOP.
    GlobalInit,
    /// The target process is already exiting (SIGNAL_GROUP_EXIT).
    Exiting,
    /// The target is a kernel thread that does not take the signal.
    KernelThread,
    /// The kernel's reason could not be read (no BTF).
    Unknown,
}

impl IgnoreReason {
    pub fn describe(self) -> &'static str {
        match self {
            IgnoreReason::HandlerIgnore => "handler is SIG_IGN",
            IgnoreReason::DefaultIgnore => "default action is ignore",
            IgnoreReason::PidNamespaceInit => "PID-namespace init with default handler",
            IgnoreReason::GlobalInit => "host init cannot be killed",
            IgnoreReason::Exiting => "target already exiting",
            IgnoreReason::KernelThread => "kernel thread",
            IgnoreReason::Unknown => "reason unknown without BTF",
        }
    }
}

/// A signal disposition: SIG_DFL, SIG_IGN or a handler function.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum Disposition {
    Default,
    Ignore,
    Handler,
}

impl Disposition {
    pub fn from_handler(handler: u64) -> Disposition {
        match handler {
            0 => Disposition::Default,
            1 => Disposition::Ignore,
            _ => Disposition::Handler,
        }
    }
}

/// The container a process runs in, from its cgroup and the container runtime.
/// OpenTelemetry names: `id` is container.id, `runtime` container.runtime, `name`
/// k8s.container.name (or container.name outside Kubernetes), `pod` k8s.pod.name, `namespace`
/// k8s.namespace.name, `image` container.image.name.
#[derive(Clone, Debug, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct Container {
    pub id: String,
    pub runtime: String,
    #[serde(default)]
    pub name: Option<String>,
    #[serde(default)]
    pub pod: Option<String>,
    #[serde(default)]
    pub namespace: Option<String>,
    /// The image it was created from, as the runtime names it.
    #[serde(default)]
    pub image: Option<String>,
    /// The Docker Compose project and service it belongs to (`com.docker.compose.*` labels).
    #[serde(default)]
    pub compose: Option<Compose>,
    /// What the orchestrator is configured to allow between the stop signal and SIGKILL, in
    /// seconds, when the runtime says (Kubernetes: the pod's terminationGracePeriodSeconds,
    /// from the kubelet's `io.kubernetes.pod.terminationGracePeriod` annotation).
    #[serde(default)]
    pub grace_period_s: Option<u64>,
}

/// A Docker Compose project and service.
#[derive(Clone, Debug, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct Compose {
    pub project: String,
    pub service: String,
}

/// The task that caused a signal.
#[derive(Clone, Debug, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct Sender {
    pub pid: u32,
    pub tid: u32,
    pub comm: Comm,
    pub uid: u32,
    pub cgroup_id: u64,
    /// Null when the sender is not in a container.
    #[serde(default)]
    pub container: Option<Container>,
    /// The systemd unit it runs in (`nginx.service`, `session-3.scope`), from its cgroup.
    #[serde(default)]
    pub unit: Option<Label>,
    /// The program it ran when it sent: the path its last exec opened (as execve(2) was given
    /// it, symbolic links not resolved), or /proc/PID/exe for a process that was running when
    /// the tracer started. Null when unknown (a kernel thread, or a record older than the field).
    #[serde(default)]
    pub exe: Option<RawText>,
    /// That program's arguments as execve(2) passed them (argv; the process may have rewritten
    /// them since: a claim), at most 32 of at most 1 KiB in all. Null when unknown.
    #[serde(default)]
    pub args: Option<Vec<RawText>>,
    /// Whether `args` was cut (more than 32 arguments or more than 1 KiB).
    #[serde(default)]
    pub args_truncated: bool,
    /// Its parent, grandparent… when it sent, nearest first, up to the host's PID 1 or 8
    /// levels (generate records only; empty otherwise).
    #[serde(default)]
    pub ancestors: Vec<Ancestor>,
}

/// One ancestor of a sender: its process id (a kernel fact, read when the signal was sent)
/// and what the tracer knows of the program it ran.
#[derive(Clone, Debug, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct Ancestor {
    pub pid: u32,
    /// Its comm (null when unknown): what the process calls itself, a claim.
    #[serde(default)]
    pub comm: Option<Comm>,
    /// Its program (as `exe` above; null when unknown).
    #[serde(default)]
    pub exe: Option<RawText>,
}

/// The task a signal was generated for.
#[derive(Clone, Debug, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct Target {
    /// Process id; null without BTF (only the thread id is known then).
    pub pid: Option<u32>,
    pub tid: u32,
    pub comm: Comm,
    /// The process id inside its own PID namespace (1 for a container's init).
    pub ns_pid: Option<u32>,
    pub cgroup_id: Option<u64>,
    pub disposition: Option<Disposition>,
    /// The handler: "default", "ignore" or its address.
    pub handler: Option<String>,
    pub blocked: Option<bool>,
    /// Null when the target is not in a container.
    #[serde(default)]
    pub container: Option<Container>,
    /// The systemd unit it runs in, from its cgroup.
    #[serde(default)]
    pub unit: Option<Label>,
    /// The program it runs (as `sender.exe`); null when unknown.
    #[serde(default)]
    pub exe: Option<RawText>,
}

#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct Generate {
    pub time: Time,
    /// The node: `NODE_NAME`, else the hostname. Empty in recordings made before it existed.
    #[serde(default)]
    pub host: Label,
    /// The node's boot id (/proc/sys/kernel/random/boot_id).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub boot_id: Option<Label>,
    pub signal: Cow<'static, str>,
    pub signo: u32,
    pub code: Cow<'static, str>,
    pub si_code: i32,
    pub errno: i32,
    pub group: bool,
    pub result: Outcome,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub reason: Option<IgnoreReason>,
    pub sender: Sender,
    pub target: Target,
}

/// Why a `deliver` record was written.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum DeliverCause {
    /// The receiver dequeued the signal (its handler runs, or the default action or SIG_IGN
    /// applies next).
    Dequeued,
    /// Not a dequeued signal: the receiver's process was already ending (a fatal signal, an
    /// `exit_group()` or an `exec` in another thread), and the kernel's group-exit path in
    /// get_signal() reports SIGKILL for each of its threads, whether or not a SIGKILL was sent.
    /// `group_exit_signal` is the signal that really ended the process.
    GroupExit,
}

#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct Deliver {
    pub time: Time,
    /// The node: `NODE_NAME`, else the hostname. Empty in recordings made before it existed.
    #[serde(default)]
    pub host: Label,
    /// The node's boot id (/proc/sys/kernel/random/boot_id).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub boot_id: Option<Label>,
    pub signal: Cow<'static, str>,
    pub signo: u32,
    pub code: Cow<'static, str>,
    pub si_code: i32,
    /// `dequeued`, or `group_exit` for the kernel's group-exit path (then `signal` is the
    /// SIGKILL the kernel reports and `group_exit_signal` the cause). Null in recordings made
    /// before the field existed.
    #[serde(default)]
    pub cause: Option<DeliverCause>,
    /// With `cause: group_exit`: the signal that ended the process (the process's
    /// `group_exit_code`), null for an `exit_group()` or an exec, or when it cannot be read
    /// (reduced mode).
    #[serde(default)]
    pub group_exit_signal: Option<Cow<'static, str>>,
    #[serde(default)]
    pub group_exit_signo: Option<u32>,
    /// Receiving process and thread.
    pub pid: Option<u32>,
    pub tid: u32,
    pub comm: Comm,
    pub ns_pid: Option<u32>,
    pub cgroup_id: Option<u64>,
    /// "default", "ignore" or the handler's address "0x…".
    pub handler: Cow<'static, str>,
    pub sa_flags: u64,
    /// The sender's process id on the host, from the matching `generate` record (its
    /// `sender.pid`), when it was seen.
    #[serde(default)]
    pub sender_pid: Option<u32>,
    /// The pid the siginfo claims as sender (`si_pid`), for signals sent by a process (SI_USER,
    /// SI_TKILL, SI_QUEUE) and for SIGCHLD (the child): as the receiver sees it, in the
    /// receiver's PID namespace, and for SI_QUEUE whatever the sender wrote there.
    #[serde(default)]
    pub claimed_sender_pid: Option<u32>,
    /// Time since the matching `generate` record, when it was seen.
    #[serde(default)]
    pub latency_ns: Option<u64>,
    #[serde(default)]
    pub container: Option<Container>,
    /// The receiver's systemd unit, from its cgroup.
    #[serde(default)]
    pub unit: Option<Label>,
}

/// Who sent the signal a process died of.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct KilledBy {
    pub pid: u32,
    pub comm: Comm,
    pub signal: Cow<'static, str>,
    pub code: Cow<'static, str>,
    pub time: Time,
}

#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct Exit {
    pub time: Time,
    /// The node: `NODE_NAME`, else the hostname. Empty in recordings made before it existed.
    #[serde(default)]
    pub host: Label,
    /// The node's boot id (/proc/sys/kernel/random/boot_id).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub boot_id: Option<Label>,
    pub pid: u32,
    pub comm: Comm,
    pub ns_pid: Option<u32>,
    pub cgroup_id: Option<u64>,
    /// As a shell or Kubernetes shows it: the exit status, or 128 + N for death by signal N.
    pub exit_code: u32,
    /// The signal it died of.
    #[serde(default)]
    pub signal: Option<Cow<'static, str>>,
    #[serde(default)]
    pub signo: Option<u32>,
    pub core_dumped: bool,
    /// The raw wait(2) status.
    pub status: u32,
    #[serde(default)]
    pub killed_by: Option<KilledBy>,
    #[serde(default)]
    pub container: Option<Container>,
    /// Its systemd unit, from its cgroup.
    #[serde(default)]
    pub unit: Option<Label>,
}

/// The kernel's OOM killer chose a victim (`oom:mark_victim`); its SIGKILL follows.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct Oom {
    pub time: Time,
    /// The node: `NODE_NAME`, else the hostname. Empty in recordings made before it existed.
    #[serde(default)]
    pub host: Label,
    /// The node's boot id (/proc/sys/kernel/random/boot_id).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub boot_id: Option<Label>,
    /// The victim process.
    pub pid: u32,
    /// The victim's comm, when the kernel's tracepoint carries it (6.x kernels do).
    #[serde(default)]
    pub comm: Option<Comm>,
    /// The task whose allocation ran out of memory (it runs the OOM killer).
    pub trigger: Sender,
}

#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct SendFailed {
    pub time: Time,
    /// The node: `NODE_NAME`, else the hostname. Empty in recordings made before it existed.
    #[serde(default)]
    pub host: Label,
    /// The node's boot id (/proc/sys/kernel/random/boot_id).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub boot_id: Option<Label>,
    pub syscall: Cow<'static, str>,
    pub errno: Cow<'static, str>,
    /// The signal's name; "0" for the null signal (an existence probe); null for a number that
    /// is no signal (below 0 or above 64: the caller's mistake, refused with EINVAL).
    pub signal: Option<Cow<'static, str>>,
    /// The `sig` argument as passed: any int.
    pub signo: i32,
    pub sender: Sender,
    /// The pid argument (negative for a process group, -1 for "every process"); null for
    /// pidfd_send_signal, whose target is `pidfd`, and for tkill, whose target is `target_tid`.
    pub target_pid: Option<i32>,
    /// The thread argument of tkill, tgkill and rt_tgsigqueueinfo.
    #[serde(default)]
    pub target_tid: Option<i32>,
    #[serde(default)]
    pub pidfd: Option<i32>,
}

#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct Lost {
    pub time: Time,
    /// The node: `NODE_NAME`, else the hostname. Empty in recordings made before it existed.
    #[serde(default)]
    pub host: Label,
    /// The node's boot id (/proc/sys/kernel/random/boot_id).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub boot_id: Option<Label>,
    /// Events the kernel programs could not send since the previous `lost` record.
    pub count: u64,
    /// The same, per kind of event.
    pub events: LostByKind,
}

#[derive(Clone, Debug, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct LostByKind {
    pub generate: u64,
    pub deliver: u64,
    pub exit: u64,
    pub send_failed: u64,
    #[serde(default)]
    pub oom: u64,
    /// New cgroups (internal: they keep a container filter current).
    #[serde(default)]
    pub cgroup: u64,
    /// Execs and forks (internal: the process-identity cache misses them, so some programs
    /// are unknown until those processes exec again).
    #[serde(default)]
    pub exec: u64,
    #[serde(default)]
    pub fork: u64,
}

/// One NDJSON record; `event` names the variant.
///
/// `generate`, the largest variant (two containers and units), is also by far the most common
/// one: boxing it would add an allocation to nearly every event to shrink the rare ones.
#[allow(clippy::large_enum_variant)]
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(tag = "event", rename_all = "snake_case")]
pub enum Record {
    Generate(Generate),
    Deliver(Deliver),
    Exit(Exit),
    SendFailed(SendFailed),
    Oom(Oom),
    Lost(Lost),
}

impl SendFailed {
    /// The signal's name, or "invalid signal N" for a number that is no signal.
    pub fn signal_text(&self) -> Cow<'static, str> {
        match &self.signal {
            Some(name) => name.clone(),
            None => Cow::Owned(format!("invalid signal {}", self.signo)),
        }
    }
}

impl Record {
    /// The node the record was made on (empty for recordings without `host`).
    pub fn host(&self) -> &Label {
        match self {
            Record::Generate(r) => &r.host,
            Record::Deliver(r) => &r.host,
            Record::Exit(r) => &r.host,
            Record::SendFailed(r) => &r.host,
            Record::Oom(r) => &r.host,
            Record::Lost(r) => &r.host,
        }
    }

    /// Names the node the record was made on.
    pub fn set_node(&mut self, node: &Node) {
        let (host, boot_id) = match self {
            Record::Generate(r) => (&mut r.host, &mut r.boot_id),
            Record::Deliver(r) => (&mut r.host, &mut r.boot_id),
            Record::Exit(r) => (&mut r.host, &mut r.boot_id),
            Record::SendFailed(r) => (&mut r.host, &mut r.boot_id),
            Record::Oom(r) => (&mut r.host, &mut r.boot_id),
            Record::Lost(r) => (&mut r.host, &mut r.boot_id),
        };
        host.clone_from(&node.host);
        boot_id.clone_from(&node.boot_id);
    }

    pub fn time(&self) -> Time {
        match self {
            Record::Generate(r) => r.time,
            Record::Deliver(r) => r.time,
            Record::Exit(r) => r.time,
            Record::SendFailed(r) => r.time,
            Record::Oom(r) => r.time,
            Record::Lost(r) => r.time,
        }
    }
}
