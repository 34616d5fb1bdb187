//! `signal-trace inspect`: the signal dispositions of live processes, read from /proc, no BPF.
//!
//! For one process (or every process of a container or pod) this reports which signals are
//! caught, ignored, blocked and pending, whether the process is the init of a PID namespace,
//! how its threads differ from the main thread, what its children do with SIGTERM, which
//! container it runs in, and risk flags with remedies: an init that will never see SIGTERM, a
//! shell as PID 1 that will not pass SIGTERM on, SIGTERM blocked or ignored, zombies piling up.
//!
//! The work is layered so that everything but the file reads is testable on text:
//!
//! - [`ProcStatus::parse`] turns the text of `/proc/PID/status` (or of a thread's
//!   `/proc/PID/task/TID/status`) into the fields that matter for signals;
//! - [`analyze`] turns a [`Snapshot`] (the parsed status of the process, of its threads and of
//!   its children, its command line and its cgroup text) into a [`ProcessReport`];
//! - [`inspect_pid`], [`find_container_pids`], [`find_pod_pids`] and [`inspect_target`] read
//!   a proc tree given by its root, `/proc` in production and a directory tree in tests.
//!
//! # Why /proc is read by hand
//!
//! The `procfs` crate (0.18, which builds with the project's toolchain) was considered for the
//! reads and the status parser. Its `Status` parser splits each line at every `:`, so the name
//! of a task such as `kworker/u8:2` comes back as `kworker/u8`; and it requires some twenty
//! fields that have nothing to do with signals (`FDSize`, `Groups`, `CapInh`, ...), failing the
//! whole parse with an "internal error, please report this procfs bug" when one is missing.
//! Its file layer opens `O_PATH` handles and would add `rustix` and `linux-raw-sys` to the
//! build for what is here a handful of `read_to_string` and `read_dir` calls. The parser below
//! reads only the fields inspect needs, keeps names intact, and names the field it rejects.

use std::borrow::Cow;
use std::collections::BTreeSet;
use std::fmt::Write as _;
use std::fs;
use std::io::{self, Write};
use std::path::{Path, PathBuf};

use serde::Serialize;

use crate::cgroup;
use crate::cli::FormatArg;
use crate::names::{self, SIGCHLD, SIGINT, SIGTERM};
use crate::record::{Container, Disposition};

/// Share of the queued-signal limit (`SigQ`) at which [`RiskFlag::SigqNearLimit`] is raised,
/// in percent.
const SIGQ_WARN_PERCENT: u64 = 90;

/// Command names of shells that do not forward signals to their children.
const SHELLS: &[&str] = &["sh", "bash", "dash", "ash", "zsh", "ksh", "mksh"];

/// Failure to parse the text of a `/proc/PID/status` file.
#[derive(Debug, thiserror::Error, PartialEq, Eq)]
pub enum StatusError {
    #[error("missing field {0}")]
    Missing(&'static str),
    #[error("field {field} has invalid value {value:?}")]
    Invalid { field: &'static str, value: String },
}

/// Failure to inspect a process or to resolve what to inspect.
#[derive(Debug, thiserror::Error)]
pub enum InspectError {
    #[error("no such process {0}")]
    NoSuchProcess(u32),
    #[error("cannot read {}: {source}", path.display())]
    Read {
        path: PathBuf,
        #[source]
        source: io::Error,
    },
    #[error("cannot parse {}: {source}", path.display())]
    Parse {
        path: PathBuf,
        #[source]
        source: StatusError,
    },
    #[error("nothing to inspect: give a pid, --container or --pod")]
    NoTarget,
    #[error("container id prefix must not be empty")]
    EmptyContainerPrefix,
    #[error("no process runs in a container whose id starts with {0}")]
    NoContainer(String),
    #[error("container id prefix {prefix} matches {} containers: {}", ids.len(), ids.join(", "))]
    AmbiguousContainer { prefix: String, ids: Vec<String> },
    #[error(
        "pod {0:?} is not a pod uid: look pod names up through the container runtime \
         (`inspect --pod NAME` does)"
    )]
    PodName(String),
    #[error("no process runs in pod {0} (by name through containerd, or by uid prefix)")]
    NoPod(String),
    #[error("cannot ask the container runtime for pod {pod:?}: {why}")]
    Runtime { pod: String, why: String },
    #[error("cannot write output: {0}")]
    Write(#[source] io::Error),
}

/// The `SigQ` field: signals queued for the process's real user id, and the limit
/// (RLIMIT_SIGPENDING).
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, Serialize)]
pub struct SigQ {
    pub queued: u64,
    pub limit: u64,
}

/// The fields of `/proc/PID/status` (or `/proc/PID/task/TID/status`) that describe signals.
///
/// Masks are 64-bit: bit n-1 stands for signal n. `SigPnd` and `SigBlk` belong to the thread
/// whose status was read; `ShdPnd` (pending for the whole process), `SigIgn` and `SigCgt` are
/// shared by all threads.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct ProcStatus {
    /// The command name (`comm`), as the kernel escapes it.
    pub name: String,
    /// The state with its description, such as `"S (sleeping)"`; empty when absent.
    pub state: String,
    pub tgid: u32,
    /// The thread id (the process id for `/proc/PID/status`).
    pub pid: u32,
    pub ppid: u32,
    /// The pid in each PID namespace, outermost (the one of the proc mount) first. Kernels
    /// without the field get `[pid]`.
    pub nspid: Vec<u32>,
    pub sigq: Option<SigQ>,
    pub sig_pnd: u64,
    pub shd_pnd: u64,
    pub sig_blk: u64,
    pub sig_ign: u64,
    pub sig_cgt: u64,
    /// Real user id.
    pub uid: u32,
    /// Effective user id.
    pub euid: u32,
}

/// Which init a process is.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize)]
#[serde(rename_all = "snake_case")]
pub enum InitKind {
    /// PID 1 of the PID namespace the proc tree belongs to: the host's init when /proc is the
    /// host's, the container's init when inspect itself runs in the container.
    Host,
    /// The init of a nested PID namespace (a container's PID 1): its innermost pid is 1.
    Namespace,
}

fn has(mask: u64, sig: u32) -> bool {
    (1..=names::NSIG).contains(&sig) && (mask >> (sig - 1)) & 1 == 1
}

fn parse_u32(field: &'static str, value: &str) -> Result<u32, StatusError> {
    value.parse().map_err(|_| StatusError::Invalid {
        field,
        value: value.to_owned(),
    })
}

fn parse_mask(field: &'static str, value: &str) -> Result<u64, StatusError> {
    let ok = !value.is_empty() && value.len() <= 16 && value.bytes().all(|b| b.is_ascii_hexdigit());
    ok.then(|| u64::from_str_radix(value, 16).ok())
        .flatten()
        .ok_or_else(|| StatusError::Invalid {
            field,
            value: value.to_owned(),
        })
}

impl ProcStatus {
    /// Parses the text of `/proc/PID/status` or `/proc/PID/task/TID/status`.
    ///
    /// Required: Name, Tgid, Pid, PPid, Uid, SigPnd, ShdPnd, SigBlk, SigIgn, SigCgt. State,
    /// NSpid and SigQ are optional; every other field is ignored. The name is everything after
    /// the tab that follows `Name:`, colons included.
    pub fn parse(text: &str) -> Result<ProcStatus, StatusError> {
        let mut name = None;
        let mut state = String::new();
        let (mut tgid, mut pid, mut ppid) = (None, None, None);
        let mut nspid = None;
        let mut sigq = None;
        let mut uids = None;
        let mut masks: [Option<u64>; 5] = [None; 5];
        const MASKS: [&str; 5] = ["SigPnd", "ShdPnd", "SigBlk", "SigIgn", "SigCgt"];

        for line in text.lines() {
            let Some((key, raw)) = line.split_once(':') else {
                continue;
            };
            let value = raw.trim();
            match key {
                "Name" => name = Some(raw.strip_prefix('\t').unwrap_or(raw).to_owned()),
                "State" => state = value.to_owned(),
                "Tgid" => tgid = Some(parse_u32("Tgid", value)?),
                "Pid" => pid = Some(parse_u32("Pid", value)?),
                "PPid" => ppid = Some(parse_u32("PPid", value)?),
                "NSpid" => {
                    let pids = value
                        .split_whitespace()
                        .map(|p| parse_u32("NSpid", p))
                        .collect::<Result<Vec<u32>, _>>()?;
                    nspid = Some(pids);
                }
                "SigQ" => {
                    let bad = || StatusError::Invalid {
                        field: "SigQ",
                        value: value.to_owned(),
                    };
                    let (q, l) = value.split_once('/').ok_or_else(bad)?;
                    sigq = Some(SigQ {
                        queued: q.trim().parse().map_err(|_| bad())?,
                        limit: l.trim().parse().map_err(|_| bad())?,
                    });
                }
                "Uid" => {
                    let ids: Vec<u32> = value
                        .split_whitespace()
                        .filter_map(|id| id.parse().ok())
                        .collect();
                    let [real, effective, ..] = ids[..] else {
                        return Err(StatusError::Invalid {
                            field: "Uid",
                            value: value.to_owned(),
                        });
                    };
                    uids = Some((real, effective));
                }
                _ => {
                    if let Some(i) = MASKS.iter().position(|m| *m == key) {
                        masks[i] = Some(parse_mask(MASKS[i], value)?);
                    }
                }
            }
        }

        let pid = pid.ok_or(StatusError::Missing("Pid"))?;
        let nspid = match nspid {
            Some(v) if !v.is_empty() => v,
            Some(_) => {
                return Err(StatusError::Invalid {
                    field: "NSpid",
                    value: String::new(),
                })
            }
            None => vec![pid],
        };
        let mask = |i: usize| masks[i].ok_or(StatusError::Missing(MASKS[i]));
        let (uid, euid) = uids.ok_or(StatusError::Missing("Uid"))?;
        Ok(ProcStatus {
            name: name.ok_or(StatusError::Missing("Name"))?,
            state,
            tgid: tgid.ok_or(StatusError::Missing("Tgid"))?,
            pid,
            ppid: ppid.ok_or(StatusError::Missing("PPid"))?,
            nspid,
            sigq,
            sig_pnd: mask(0)?,
            shd_pnd: mask(1)?,
            sig_blk: mask(2)?,
            sig_ign: mask(3)?,
            sig_cgt: mask(4)?,
            uid,
            euid,
        })
    }

    /// The pid in the innermost PID namespace.
    pub fn ns_pid(&self) -> u32 {
        self.nspid.last().copied().unwrap_or(self.pid)
    }

    /// Whether the process is the init of its innermost PID namespace, and which kind.
    pub fn init_kind(&self) -> Option<InitKind> {
        if self.nspid.len() > 1 && self.ns_pid() == 1 {
            Some(InitKind::Namespace)
        } else if self.pid == 1 {
            Some(InitKind::Host)
        } else {
            None
        }
    }

    /// What the process does with `sig`: a handler, SIG_IGN or SIG_DFL.
    pub fn disposition(&self, sig: u32) -> Disposition {
        if has(self.sig_cgt, sig) {
            Disposition::Handler
        } else if has(self.sig_ign, sig) {
            Disposition::Ignore
        } else {
            Disposition::Default
        }
    }

    /// Whether this thread blocks `sig`.
    pub fn blocks(&self, sig: u32) -> bool {
        has(self.sig_blk, sig)
    }

    /// The one-letter state (`'R'`, `'S'`, `'Z'`, ...), if known.
    pub fn state_code(&self) -> Option<char> {
        self.state.chars().next()
    }

    fn is_zombie(&self) -> bool {
        matches!(self.state_code(), Some('Z' | 'X'))
    }
}

/// Everything read for one process; the input of [`analyze`].
#[derive(Clone, Debug, Default)]
pub struct Snapshot {
    /// `/proc/PID/status`.
    pub status: ProcStatus,
    /// `/proc/PID/cmdline`, split at NULs; empty for kernel threads and zombies.
    pub cmdline: Vec<String>,
    /// `/proc/PID/task/*/status`, the main thread included; empty when unreadable.
    pub threads: Vec<ProcStatus>,
    /// The status of each child.
    pub children: Vec<ProcStatus>,
    /// The text of `/proc/PID/cgroup`.
    pub cgroup: Option<String>,
}

/// Raw masks as /proc shows them (16 hex digits).
#[derive(Clone, Debug, PartialEq, Eq, Serialize)]
pub struct Masks {
    pub sig_pnd: String,
    pub shd_pnd: String,
    pub sig_blk: String,
    pub sig_ign: String,
    pub sig_cgt: String,
}

/// A thread whose blocked or pending signals differ from the main thread's.
#[derive(Clone, Debug, PartialEq, Eq, Serialize)]
pub struct ThreadReport {
    pub tid: u32,
    pub comm: String,
    pub blocked: Vec<Cow<'static, str>>,
    pub pending: Vec<Cow<'static, str>>,
}

/// A child process and what it does with SIGTERM.
#[derive(Clone, Debug, PartialEq, Eq, Serialize)]
pub struct ChildReport {
    pub pid: u32,
    pub comm: String,
    pub state: String,
    /// SIGTERM's disposition in the child.
    pub term: Disposition,
    /// Whether the child's main thread blocks SIGTERM.
    pub term_blocked: bool,
}

/// The container of a process, from its cgroup. `name`, `pod` and `namespace` stay empty until
/// they are looked up through the container runtime.
#[derive(Clone, Debug, PartialEq, Eq, Serialize)]
pub struct ContainerInfo {
    #[serde(flatten)]
    pub container: Container,
    /// The Kubernetes pod uid, from a kubepods cgroup path.
    pub pod_uid: Option<String>,
    /// The pod QoS class, from a kubepods cgroup path.
    pub qos: Option<String>,
}

/// A risk found in a process's signal setup.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, Serialize)]
#[serde(rename_all = "snake_case")]
pub enum RiskFlag {
    /// A PID-namespace (or host) init with SIGTERM at SIG_DFL: the kernel drops SIGTERM.
    InitWithoutTermHandler,
    /// PID 1 is a shell with children and no SIGTERM trap: it does not pass SIGTERM on.
    ShellInitWithChildren,
    /// SIGTERM is blocked in every thread.
    TermBlocked,
    /// SIGTERM is ignored.
    TermIgnored,
    /// Signals are pending.
    SignalsPending,
    /// Zombie children that nobody reaps, SIGCHLD not handled.
    ZombieChildren,
    /// The process itself is a zombie.
    Zombie,
    /// The process is stopped: caught signals wait for SIGCONT.
    Stopped,
    /// SIGINT has a handler, SIGTERM is at its default.
    SigintOnly,
    /// A child ignores SIGTERM.
    ChildIgnoresTerm,
    /// The owner's queue of pending signals is close to RLIMIT_SIGPENDING.
    SigqNearLimit,
}

impl RiskFlag {
    /// The flag as the NDJSON writes it.
    pub fn as_str(self) -> &'static str {
        match self {
            RiskFlag::InitWithoutTermHandler => "init_without_term_handler",
            RiskFlag::ShellInitWithChildren => "shell_init_with_children",
            RiskFlag::TermBlocked => "term_blocked",
            RiskFlag::TermIgnored => "term_ignored",
            RiskFlag::SignalsPending => "signals_pending",
            RiskFlag::ZombieChildren => "zombie_children",
            RiskFlag::Zombie => "zombie",
            RiskFlag::Stopped => "stopped",
            RiskFlag::SigintOnly => "sigint_only",
            RiskFlag::ChildIgnoresTerm => "child_ignores_term",
            RiskFlag::SigqNearLimit => "sigq_near_limit",
        }
    }
}

/// One risk flag with what it means for this process and what to do about it.
#[derive(Clone, Debug, PartialEq, Eq, Serialize)]
pub struct Finding {
    pub flag: RiskFlag,
    /// One line: what happens, with this process's specifics.
    pub explanation: String,
    /// One line: a concrete fix.
    pub remedy: String,
}

/// The signal setup of one process: the NDJSON record `{"event":"inspect", ...}`.
#[derive(Clone, Debug, PartialEq, Eq, Serialize)]
#[serde(tag = "event", rename = "inspect")]
pub struct ProcessReport {
    pub pid: u32,
    pub ppid: u32,
    /// The pid in each PID namespace, outermost first (`NSpid`).
    pub ns_pids: Vec<u32>,
    pub comm: String,
    pub cmdline: Vec<String>,
    pub state: String,
    pub uid: u32,
    pub euid: u32,
    /// Set when the process is an init.
    pub init: Option<InitKind>,
    /// Signals with a handler (`SigCgt`).
    pub caught: Vec<Cow<'static, str>>,
    /// Signals set to SIG_IGN (`SigIgn`).
    pub ignored: Vec<Cow<'static, str>>,
    /// Signals the main thread blocks (`SigBlk`).
    pub blocked: Vec<Cow<'static, str>>,
    /// Signals pending for the main thread (`SigPnd`).
    pub pending_thread: Vec<Cow<'static, str>>,
    /// Signals pending for the whole process (`ShdPnd`).
    pub pending_process: Vec<Cow<'static, str>>,
    /// SIGTERM's disposition.
    pub term: Disposition,
    /// Whether SIGTERM is blocked in every thread read.
    pub term_blocked_everywhere: bool,
    pub masks: Masks,
    pub sigq: Option<SigQ>,
    /// Number of threads read from `/proc/PID/task` (1 when it cannot be read).
    pub threads: usize,
    /// Threads whose blocked or pending signals differ from the main thread's.
    pub thread_differences: Vec<ThreadReport>,
    pub children: Vec<ChildReport>,
    pub container: Option<ContainerInfo>,
    pub flags: Vec<Finding>,
}

fn join(names: &[Cow<'static, str>]) -> String {
    if names.is_empty() {
        "-".to_owned()
    } else {
        names.join(" ")
    }
}

fn disposition_text(d: Disposition) -> &'static str {
    match d {
        Disposition::Default => "default",
        Disposition::Ignore => "ignored",
        Disposition::Handler => "caught",
    }
}

/// Whether the command looks like a shell (`sh`, `bash`, ..., or `busybox sh`).
fn is_shell(comm: &str, cmdline: &[String]) -> bool {
    if SHELLS.contains(&comm) {
        return true;
    }
    if comm == "busybox" {
        let base = |s: &String| s.rsplit('/').next().unwrap_or(s).to_owned();
        return cmdline
            .get(1)
            .map(base)
            .is_some_and(|a| SHELLS.contains(&a.as_str()));
    }
    false
}

/// Builds the report for a snapshot: decoded masks, thread differences, children, container
/// and risk flags.
pub fn analyze(snap: &Snapshot) -> ProcessReport {
    let s = &snap.status;
    let others: Vec<&ProcStatus> = snap.threads.iter().filter(|t| t.pid != s.pid).collect();
    let thread_differences = others
        .iter()
        .filter(|t| t.sig_blk != s.sig_blk || t.sig_pnd != s.sig_pnd)
        .map(|t| ThreadReport {
            tid: t.pid,
            comm: t.name.clone(),
            blocked: names::mask_names(t.sig_blk),
            pending: names::mask_names(t.sig_pnd),
        })
        .collect();
    let children = snap
        .children
        .iter()
        .map(|c| ChildReport {
            pid: c.pid,
            comm: c.name.clone(),
            state: c.state.clone(),
            term: c.disposition(SIGTERM),
            term_blocked: c.blocks(SIGTERM),
        })
        .collect();
    let container = snap
        .cgroup
        .as_deref()
        .and_then(cgroup::container_from_proc_cgroup)
        .map(|c| ContainerInfo {
            container: Container {
                id: c.id,
                runtime: c.runtime.as_str().to_owned(),
                name: None,
                pod: None,
                namespace: None,
            },
            pod_uid: c.pod_uid,
            qos: c.qos,
        });
    let hex = |m: u64| format!("{m:016x}");
    ProcessReport {
        pid: s.pid,
        ppid: s.ppid,
        ns_pids: s.nspid.clone(),
        comm: s.name.clone(),
        cmdline: snap.cmdline.clone(),
        state: s.state.clone(),
        uid: s.uid,
        euid: s.euid,
        init: s.init_kind(),
        caught: names::mask_names(s.sig_cgt),
        ignored: names::mask_names(s.sig_ign),
        blocked: names::mask_names(s.sig_blk),
        pending_thread: names::mask_names(s.sig_pnd),
        pending_process: names::mask_names(s.shd_pnd),
        term: s.disposition(SIGTERM),
        term_blocked_everywhere: blocked_everywhere(snap, SIGTERM),
        masks: Masks {
            sig_pnd: hex(s.sig_pnd),
            shd_pnd: hex(s.shd_pnd),
            sig_blk: hex(s.sig_blk),
            sig_ign: hex(s.sig_ign),
            sig_cgt: hex(s.sig_cgt),
        },
        sigq: s.sigq,
        threads: snap.threads.len().max(1),
        thread_differences,
        children,
        container,
        flags: risk_flags(snap),
    }
}

/// Whether every live thread blocks `sig` (the main thread alone when no thread was read or
/// all have exited): a process-directed `sig` then stays pending.
fn blocked_everywhere(snap: &Snapshot, sig: u32) -> bool {
    let live: Vec<&ProcStatus> = snap.threads.iter().filter(|t| !t.is_zombie()).collect();
    if live.is_empty() {
        snap.status.blocks(sig)
    } else {
        snap.status.blocks(sig) && live.iter().all(|t| t.blocks(sig))
    }
}

fn pid_list(pids: &[u32]) -> String {
    pids.iter()
        .map(u32::to_string)
        .collect::<Vec<_>>()
        .join(", ")
}

/// The risk flags of a snapshot, in a fixed order.
pub fn risk_flags(snap: &Snapshot) -> Vec<Finding> {
    let s = &snap.status;
    let mut out = Vec::new();
    let mut flag = |flag: RiskFlag, explanation: String, remedy: &str| {
        out.push(Finding {
            flag,
            explanation,
            remedy: remedy.to_owned(),
        })
    };

    let all_threads_gone = snap.threads.iter().all(ProcStatus::is_zombie);
    if s.is_zombie() && all_threads_gone {
        flag(
            RiskFlag::Zombie,
            format!(
                "the process has exited and waits for its parent (pid {}) to reap it; \
                 signals, SIGKILL included, have no effect on it",
                s.ppid
            ),
            "make the parent wait() for its children, or end the parent so that init adopts \
             and reaps the zombie",
        );
        return out;
    }

    let term = s.disposition(SIGTERM);
    let init = s.init_kind();
    if let Some(kind) = init {
        if term == Disposition::Default {
            let whose = match kind {
                InitKind::Namespace => "the init of a PID namespace",
                InitKind::Host => "PID 1",
            };
            flag(
                RiskFlag::InitWithoutTermHandler,
                format!(
                    "{whose} with SIGTERM at SIG_DFL: the kernel discards SIGTERM sent to it, \
                     from inside or outside the namespace, so a stop waits out the grace period \
                     and ends in SIGKILL"
                ),
                "install a SIGTERM handler in the program, or run it under an init that \
                 forwards signals (tini, dumb-init, `docker run --init`)",
            );
        }
        if is_shell(&s.name, &snap.cmdline)
            && !snap.children.is_empty()
            && term != Disposition::Handler
        {
            let pids: Vec<u32> = snap.children.iter().map(|c| c.pid).collect();
            flag(
                RiskFlag::ShellInitWithChildren,
                format!(
                    "PID 1 is the shell {} with children ({}) and no SIGTERM trap: it does not \
                     pass SIGTERM on, so the children are SIGKILLed when the grace period ends",
                    s.name,
                    pid_list(&pids)
                ),
                "end the entrypoint script with `exec \"$@\"` (or use the exec form of \
                 CMD/ENTRYPOINT), or trap TERM and forward it: \
                 trap 'kill -TERM \"$child\"; wait \"$child\"' TERM",
            );
        }
    }

    if blocked_everywhere(snap, SIGTERM) {
        flag(
            RiskFlag::TermBlocked,
            "SIGTERM is blocked in every thread: a SIGTERM stays pending until a thread \
             unblocks it or takes it with sigwaitinfo()/signalfd()"
                .to_owned(),
            "unless the program reads SIGTERM through signalfd or sigwait, unblock it \
             (pthread_sigmask) in at least one thread; blocked masks survive fork and exec, so \
             check the launcher that started it",
        );
    }

    if term == Disposition::Ignore {
        flag(
            RiskFlag::TermIgnored,
            "SIGTERM is set to SIG_IGN: kill, `docker stop` and pod deletion have no effect \
             until the SIGKILL that follows"
                .to_owned(),
            "SIG_IGN survives exec: find what set it (a nohup-like wrapper, a parent that \
             ignored SIGTERM before spawning) and reset it to SIG_DFL or install a handler",
        );
    }

    let thread_pending: u64 = snap.threads.iter().fold(0, |m, t| m | t.sig_pnd);
    let pending = s.sig_pnd | s.shd_pnd | thread_pending;
    if pending != 0 {
        let mut parts = Vec::new();
        if s.shd_pnd != 0 {
            parts.push(format!(
                "process-wide {}",
                join(&names::mask_names(s.shd_pnd))
            ));
        }
        let per_thread = s.sig_pnd | thread_pending;
        if per_thread != 0 {
            parts.push(format!(
                "thread-directed {}",
                join(&names::mask_names(per_thread))
            ));
        }
        let blocked_pending: Vec<u32> = (1..=names::NSIG)
            .filter(|&sig| has(pending, sig) && blocked_everywhere(snap, sig))
            .collect();
        let thread_blocked = snap
            .threads
            .iter()
            .chain(std::iter::once(s))
            .any(|t| t.sig_pnd & t.sig_blk != 0);
        let stopped = s.state_code() == Some('T');
        let mut explanation = format!("signals pending: {}", parts.join("; "));
        let remedy = if !blocked_pending.is_empty() || thread_blocked {
            let names: Vec<Cow<'static, str>> = blocked_pending
                .iter()
                .map(|&n| names::signal_name(n))
                .collect();
            if !names.is_empty() {
                let _ = write!(
                    explanation,
                    "; blocked in every thread: {}",
                    names.join(" ")
                );
            } else {
                explanation.push_str("; blocked by the thread they were sent to");
            }
            "a blocked signal is delivered when the thread unblocks it: find the code that \
             blocks it (sigprocmask/pthread_sigmask, a mask inherited from the launcher) or \
             make sure the program consumes it with sigwait/signalfd"
        } else if stopped {
            "the process is stopped: send SIGCONT (kill -CONT PID) so the pending signals \
             are handled"
        } else {
            "signals stay pending only until the thread next returns to user space; if they \
             persist, the thread is stuck in the kernel (state D): look at /proc/PID/stack \
             and /proc/PID/wchan"
        };
        flag(RiskFlag::SignalsPending, explanation, remedy);
    }

    let zombies: Vec<u32> = snap
        .children
        .iter()
        .filter(|c| c.is_zombie())
        .map(|c| c.pid)
        .collect();
    if !zombies.is_empty() && s.disposition(SIGCHLD) != Disposition::Handler {
        let mut explanation = format!(
            "{} zombie children ({}) and no SIGCHLD handler: the process does not reap them",
            zombies.len(),
            pid_list(&zombies)
        );
        if init.is_some() {
            explanation.push_str(
                "; as an init it also adopts every orphan of the namespace, which pile up the \
                 same way",
            );
        }
        flag(
            RiskFlag::ZombieChildren,
            explanation,
            "run a reaping init as PID 1 (tini, dumb-init, `docker run --init`), or have the \
             program wait() for its children (or set SIGCHLD to SIG_IGN if it never needs \
             their exit status)",
        );
    }

    if s.state_code() == Some('T') {
        flag(
            RiskFlag::Stopped,
            "the process is stopped: caught signals, a SIGTERM handler included, run only after \
             SIGCONT (SIGKILL still works)"
                .to_owned(),
            "send SIGCONT after SIGTERM (kill -CONT PID), and find what stopped it (job \
             control, a debugger, a SIGSTOP from a supervisor)",
        );
    }

    if s.disposition(SIGINT) == Disposition::Handler
        && term == Disposition::Default
        && init.is_none()
    {
        flag(
            RiskFlag::SigintOnly,
            "SIGINT has a handler but SIGTERM is at its default: Ctrl-C shuts down cleanly, but \
             kill, `docker stop` and pod deletion end the process at once, skipping cleanup"
                .to_owned(),
            "install the same shutdown handler for SIGTERM as for SIGINT",
        );
    }

    let ignoring: Vec<u32> = snap
        .children
        .iter()
        .filter(|c| !c.is_zombie() && c.disposition(SIGTERM) == Disposition::Ignore)
        .map(|c| c.pid)
        .collect();
    if !ignoring.is_empty() {
        flag(
            RiskFlag::ChildIgnoresTerm,
            format!(
                "children that ignore SIGTERM ({}): a SIGTERM sent or forwarded to them has no \
                 effect",
                pid_list(&ignoring)
            ),
            "SIG_IGN is inherited across fork and exec: reset SIGTERM to SIG_DFL before \
             spawning them, or have them install a handler",
        );
    }

    if let Some(q) = s.sigq {
        if q.limit > 0 && q.queued.saturating_mul(100) >= q.limit.saturating_mul(SIGQ_WARN_PERCENT)
        {
            flag(
                RiskFlag::SigqNearLimit,
                format!(
                    "uid {} has {} of at most {} signals queued (RLIMIT_SIGPENDING): past the \
                     limit, real-time signals are refused (sigqueue fails with EAGAIN) and \
                     standard ones lose their siginfo",
                    s.uid, q.queued, q.limit
                ),
                "find the processes of that user with long queues of pending signals (blocked \
                 real-time signals nobody reads), or raise the limit (ulimit -i)",
            );
        }
    }

    out
}

impl ProcessReport {
    /// The report for people: identity, init status, container, signals by name, threads,
    /// children, and the flags with their remedies.
    pub fn render_text(&self) -> String {
        let mut o = String::new();
        let _ = writeln!(
            o,
            "pid {} ({})  state {}  ppid {}  uid {}{}",
            self.pid,
            self.comm,
            if self.state.is_empty() {
                "?"
            } else {
                &self.state
            },
            self.ppid,
            self.uid,
            if self.euid != self.uid {
                format!(" (euid {})", self.euid)
            } else {
                String::new()
            }
        );
        if !self.cmdline.is_empty() {
            let _ = writeln!(o, "  cmdline:  {}", self.cmdline.join(" "));
        }
        let pids = self
            .ns_pids
            .iter()
            .map(u32::to_string)
            .collect::<Vec<_>>()
            .join(" > ");
        let init = match self.init {
            Some(InitKind::Namespace) => "init of its PID namespace",
            Some(InitKind::Host) => "PID 1",
            None => "not an init",
        };
        let _ = writeln!(o, "  init:     {init} (pid per namespace: {pids})");
        if let Some(c) = &self.container {
            let _ = write!(o, "  container: {} {}", c.container.runtime, c.container.id);
            if let Some(uid) = &c.pod_uid {
                let _ = write!(o, "  pod uid {uid}");
            }
            if let Some(qos) = &c.qos {
                let _ = write!(o, " ({qos})");
            }
            o.push('\n');
        }
        let _ = writeln!(o, "  caught:   {}", join(&self.caught));
        let _ = writeln!(o, "  ignored:  {}", join(&self.ignored));
        let _ = writeln!(o, "  blocked:  {}", join(&self.blocked));
        let mut pending = Vec::new();
        if !self.pending_thread.is_empty() {
            pending.push(format!("{} (thread)", self.pending_thread.join(" ")));
        }
        if !self.pending_process.is_empty() {
            pending.push(format!("{} (process)", self.pending_process.join(" ")));
        }
        let _ = writeln!(
            o,
            "  pending:  {}",
            if pending.is_empty() {
                "-".to_owned()
            } else {
                pending.join("; ")
            }
        );
        let _ = writeln!(
            o,
            "  SIGTERM:  {}{}",
            disposition_text(self.term),
            if self.term_blocked_everywhere {
                ", blocked in every thread"
            } else {
                ""
            }
        );
        if let Some(q) = self.sigq {
            let _ = writeln!(
                o,
                "  queued:   {}/{} (for uid {})",
                q.queued, q.limit, self.uid
            );
        }
        let _ = writeln!(
            o,
            "  threads:  {}, differing from the main thread: {}",
            self.threads,
            self.thread_differences.len()
        );
        for t in &self.thread_differences {
            let _ = writeln!(
                o,
                "    tid {} ({}): blocked {}; pending {}",
                t.tid,
                t.comm,
                join(&t.blocked),
                join(&t.pending)
            );
        }
        let _ = writeln!(o, "  children: {}", self.children.len());
        for c in &self.children {
            let _ = writeln!(
                o,
                "    {} ({})  {}  SIGTERM {}{}",
                c.pid,
                c.comm,
                c.state,
                disposition_text(c.term),
                if c.term_blocked { ", blocked" } else { "" }
            );
        }
        if self.flags.is_empty() {
            let _ = writeln!(o, "  flags:    none");
        } else {
            let _ = writeln!(o, "  flags:");
            for f in &self.flags {
                let _ = writeln!(o, "    {}: {}", f.flag.as_str(), f.explanation);
                let _ = writeln!(o, "      remedy: {}", f.remedy);
            }
        }
        o
    }
}

/// Reads a file of a process, mapping a missing process to [`InspectError::NoSuchProcess`].
fn read_proc_file(path: &Path, pid: u32) -> Result<String, InspectError> {
    fs::read_to_string(path).map_err(|e| match e.kind() {
        io::ErrorKind::NotFound => InspectError::NoSuchProcess(pid),
        _ => InspectError::Read {
            path: path.to_owned(),
            source: e,
        },
    })
}

fn read_status(path: &Path, pid: u32) -> Result<ProcStatus, InspectError> {
    let text = read_proc_file(path, pid)?;
    ProcStatus::parse(&text).map_err(|source| InspectError::Parse {
        path: path.to_owned(),
        source,
    })
}

/// The numeric entries of a directory (pids under a proc root, tids under `task/`), sorted.
fn numeric_entries(dir: &Path) -> io::Result<Vec<u32>> {
    let mut ids: Vec<u32> = fs::read_dir(dir)?
        .filter_map(Result::ok)
        .filter_map(|e| e.file_name().to_str()?.parse().ok())
        .collect();
    ids.sort_unstable();
    Ok(ids)
}

/// The children of `pid`: the union of `task/*/children`, or, when the kernel has no such
/// file (CONFIG_PROC_CHILDREN off), the processes whose PPid is `pid`.
fn child_pids(proc_root: &Path, pid: u32, tids: &[u32]) -> Vec<u32> {
    let mut found = false;
    let mut pids = BTreeSet::new();
    for tid in tids {
        let path = proc_root
            .join(pid.to_string())
            .join("task")
            .join(tid.to_string())
            .join("children");
        if let Ok(text) = fs::read_to_string(path) {
            found = true;
            pids.extend(
                text.split_whitespace()
                    .filter_map(|p| p.parse::<u32>().ok()),
            );
        }
    }
    if !found {
        for other in numeric_entries(proc_root).unwrap_or_default() {
            let path = proc_root.join(other.to_string()).join("status");
            let Ok(text) = fs::read_to_string(path) else {
                continue;
            };
            if ProcStatus::parse(&text).is_ok_and(|s| s.ppid == pid && s.pid != pid) {
                pids.insert(other);
            }
        }
    }
    pids.into_iter().collect()
}

/// Reads everything [`analyze`] needs for `pid` from the proc tree at `proc_root`.
///
/// Only the process's own status is required; threads, children, command line and cgroup
/// that cannot be read (permissions, a race with exit) are left out.
pub fn read_snapshot(proc_root: &Path, pid: u32) -> Result<Snapshot, InspectError> {
    let dir = proc_root.join(pid.to_string());
    if !dir.is_dir() {
        return Err(InspectError::NoSuchProcess(pid));
    }
    let status = read_status(&dir.join("status"), pid)?;
    let tids = numeric_entries(&dir.join("task")).unwrap_or_default();
    let threads = tids
        .iter()
        .filter_map(|tid| {
            let path = dir.join("task").join(tid.to_string()).join("status");
            read_status(&path, pid).ok()
        })
        .collect();
    let children = child_pids(proc_root, pid, &tids)
        .into_iter()
        .filter_map(|child| {
            let path = proc_root.join(child.to_string()).join("status");
            read_status(&path, child).ok()
        })
        .collect();
    let cmdline = fs::read(dir.join("cmdline"))
        .map(|raw| {
            raw.split(|&b| b == 0)
                .filter(|a| !a.is_empty())
                .map(|a| String::from_utf8_lossy(a).into_owned())
                .collect()
        })
        .unwrap_or_default();
    let cgroup = fs::read_to_string(dir.join("cgroup")).ok();
    Ok(Snapshot {
        status,
        cmdline,
        threads,
        children,
        cgroup,
    })
}

/// Inspects one process of the proc tree at `proc_root` (`/proc` on a live system).
pub fn inspect_pid(proc_root: &Path, pid: u32) -> Result<ProcessReport, InspectError> {
    read_snapshot(proc_root, pid).map(|snap| analyze(&snap))
}

/// The container of every process under `proc_root` that has one, in pid order.
fn containers(proc_root: &Path) -> Vec<(u32, cgroup::ContainerRef)> {
    numeric_entries(proc_root)
        .unwrap_or_default()
        .into_iter()
        .filter_map(|pid| {
            let text = fs::read_to_string(proc_root.join(pid.to_string()).join("cgroup")).ok()?;
            Some((pid, cgroup::container_from_proc_cgroup(&text)?))
        })
        .collect()
}

/// The processes whose cgroup resolves to a container whose id starts with `prefix`
/// (case-insensitive), in pid order. An empty prefix matches nothing.
pub fn find_container_pids(proc_root: &Path, prefix: &str) -> Vec<u32> {
    let prefix = prefix.trim().to_ascii_lowercase();
    if prefix.is_empty() {
        return Vec::new();
    }
    containers(proc_root)
        .into_iter()
        .filter(|(_, c)| c.id.to_ascii_lowercase().starts_with(&prefix))
        .map(|(pid, _)| pid)
        .collect()
}

/// Whether `s` can be (a prefix of) a pod uid: hex digits and dashes, or the underscores the
/// systemd cgroup driver puts in their place.
fn looks_like_pod_uid(s: &str) -> bool {
    !s.is_empty()
        && s.bytes().any(|b| b.is_ascii_hexdigit())
        && s.bytes()
            .all(|b| b.is_ascii_hexdigit() || b == b'-' || b == b'_')
}

/// The processes in a Kubernetes pod whose uid starts with `pod` (case-insensitive; `_` and
/// `-` are the same), in pid order.
///
/// Only the pod uid is in the cgroup path; the pod name is known to the container runtime
/// alone ([`run`] asks it). Here a value that cannot be a uid is rejected with
/// [`InspectError::PodName`], and a uid prefix that matches nothing with
/// [`InspectError::NoPod`].
pub fn find_pod_pids(proc_root: &Path, pod: &str) -> Result<Vec<u32>, InspectError> {
    let pod = pod.trim();
    if !looks_like_pod_uid(pod) {
        return Err(InspectError::PodName(pod.to_owned()));
    }
    let want = pod.to_ascii_lowercase().replace('_', "-");
    let pids: Vec<u32> = containers(proc_root)
        .into_iter()
        .filter(|(_, c)| {
            c.pod_uid
                .as_deref()
                .is_some_and(|uid| uid.to_ascii_lowercase().starts_with(&want))
        })
        .map(|(pid, _)| pid)
        .collect();
    if pids.is_empty() {
        return Err(InspectError::NoPod(pod.to_owned()));
    }
    Ok(pids)
}

/// What to inspect.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Target {
    /// One process.
    Pid(u32),
    /// Every process of the container whose id starts with this prefix.
    Container(String),
    /// Every process of the pod whose uid starts with this prefix.
    Pod(String),
}

/// Inspects a target. Processes that exit while a container or pod is being inspected are
/// left out; a container prefix that matches more than one container is an error.
pub fn inspect_target(
    proc_root: &Path,
    target: &Target,
) -> Result<Vec<ProcessReport>, InspectError> {
    let pids = match target {
        Target::Pid(pid) => return Ok(vec![inspect_pid(proc_root, *pid)?]),
        Target::Container(prefix) => {
            if prefix.trim().is_empty() {
                return Err(InspectError::EmptyContainerPrefix);
            }
            find_container_pids(proc_root, prefix)
        }
        Target::Pod(pod) => find_pod_pids(proc_root, pod)?,
    };
    let mut reports = Vec::new();
    for pid in pids {
        match inspect_pid(proc_root, pid) {
            Ok(r) => reports.push(r),
            Err(InspectError::NoSuchProcess(_)) => {}
            Err(e) => return Err(e),
        }
    }
    if let Target::Container(prefix) = target {
        let ids: BTreeSet<&str> = reports
            .iter()
            .filter_map(|r| r.container.as_ref().map(|c| c.container.id.as_str()))
            .collect();
        if ids.len() > 1 {
            return Err(InspectError::AmbiguousContainer {
                prefix: prefix.clone(),
                ids: ids.into_iter().map(str::to_owned).collect(),
            });
        }
        if reports.is_empty() {
            return Err(InspectError::NoContainer(prefix.clone()));
        }
    }
    Ok(reports)
}

/// Arguments of `signal-trace inspect`.
#[derive(Debug, Clone, clap::Args)]
pub struct InspectArgs {
    /// The process to inspect.
    #[arg(
        value_name = "PID",
        required_unless_present_any = ["container", "pod"],
        conflicts_with_all = ["container", "pod"]
    )]
    pub pid: Option<u32>,
    /// Inspect every process of the container whose id starts with this prefix.
    #[arg(long, value_name = "ID", conflicts_with = "pod")]
    pub container: Option<String>,
    /// Inspect every process of this pod: its name (looked up in containerd's Kubernetes
    /// labels), or its uid or a prefix of it (from the cgroup paths).
    #[arg(long, value_name = "NAME|UID")]
    pub pod: Option<String>,
    /// Output format.
    #[arg(long, value_enum, default_value = "text")]
    pub format: FormatArg,
}

impl InspectArgs {
    /// The target the arguments name; clap lets exactly one through.
    pub fn target(&self) -> Option<Target> {
        match (&self.pid, &self.container, &self.pod) {
            (_, Some(c), _) => Some(Target::Container(c.clone())),
            (_, _, Some(p)) => Some(Target::Pod(p.clone())),
            (Some(pid), _, _) => Some(Target::Pid(*pid)),
            (None, None, None) => None,
        }
    }
}

/// Writes reports as text (separated by blank lines) or NDJSON.
pub fn write_reports(
    reports: &[ProcessReport],
    format: FormatArg,
    out: &mut dyn Write,
) -> Result<(), InspectError> {
    for (i, r) in reports.iter().enumerate() {
        match format {
            FormatArg::Json => {
                serde_json::to_writer(&mut *out, r)
                    .map_err(|e| InspectError::Write(io::Error::other(e)))?;
                out.write_all(b"\n").map_err(InspectError::Write)?;
            }
            FormatArg::Text => {
                if i > 0 {
                    out.write_all(b"\n").map_err(InspectError::Write)?;
                }
                out.write_all(r.render_text().as_bytes())
                    .map_err(InspectError::Write)?;
            }
        }
    }
    out.flush().map_err(InspectError::Write)
}

/// Runs `signal-trace inspect` against the proc tree at `proc_root`.
pub fn run(args: &InspectArgs, proc_root: &Path, out: &mut dyn Write) -> Result<(), InspectError> {
    let target = args.target().ok_or(InspectError::NoTarget)?;
    let reports = match &target {
        // A pod name (not a uid): its containers come from containerd's labels.
        Target::Pod(name) if !looks_like_pod_uid(name.trim()) => {
            let client = crate::runtime::Containerd::new(
                crate::runtime::DEFAULT_SOCKET,
                crate::runtime::DEFAULT_TIMEOUT,
            )
            .map_err(|e| InspectError::Runtime {
                pod: name.clone(),
                why: e.to_string(),
            })?;
            let all = client.list(None).map_err(|e| InspectError::Runtime {
                pod: name.clone(),
                why: e.to_string(),
            })?;
            let mut reports = Vec::new();
            for id in pod_container_ids(&all, name.trim()) {
                reports.extend(inspect_target(
                    proc_root,
                    &Target::Container(id.to_owned()),
                )?);
            }
            if reports.is_empty() {
                return Err(InspectError::NoPod(name.clone()));
            }
            reports
        }
        _ => inspect_target(proc_root, &target)?,
    };
    write_reports(&reports, args.format, out)
}

/// The ids of the containers of pod `name` (the CRI plugin's `io.kubernetes.pod.name` label).
pub fn pod_container_ids<'a>(
    containers: &'a [crate::runtime::RuntimeContainer],
    name: &str,
) -> Vec<&'a str> {
    containers
        .iter()
        .filter(|c| {
            c.labels
                .get(crate::containers::LABEL_POD_NAME)
                .map(String::as_str)
                == Some(name)
        })
        .map(|c| c.id.as_str())
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    /// Real status texts captured on Linux 6.18 (see tests/fixtures/inspect).
    macro_rules! fixture {
        ($name:literal) => {
            include_str!(concat!("../tests/fixtures/inspect/", $name, ".status"))
        };
    }

    /// `cat /proc/self/status`.
    const SELF: &str = fixture!("self");
    /// python3 with `signal.signal(SIGTERM, handler)`.
    const PY_TERM: &str = fixture!("python_term_handler");
    /// python3 with its default SIGINT handler and nothing for SIGTERM.
    const PY_INT: &str = fixture!("python_int_only");
    /// `unshare --pid --fork sleep 60`: the sleep is the init of the new namespace.
    const SLEEP_INIT: &str = fixture!("unshare_sleep_init");
    /// `unshare --pid --fork sh -c 'sleep 60 & sleep 61'`: dash as init, two children.
    const SHELL_INIT: &str = fixture!("shell_init");
    /// One of SHELL_INIT's children.
    const SHELL_CHILD: &str = fixture!("shell_init_child");
    /// As SHELL_INIT with `trap "exit 0" TERM`.
    const SHELL_INIT_TRAP: &str = fixture!("shell_init_trap");
    /// `sh` as PID 1, read through the /proc mounted in its own namespace.
    const CONTAINER_VIEW_INIT: &str = fixture!("container_view_init");
    /// sleep exec'd with SIGTERM set to SIG_IGN.
    const TERM_IGNORED: &str = fixture!("term_ignored");
    /// python3 with a SIGTERM handler, stopped with SIGSTOP, then sent SIGTERM.
    const STOPPED: &str = fixture!("stopped_term_pending");
    /// python3 as a namespace init that forked two children and never waited for them.
    const ZOMBIE_INIT: &str = fixture!("zombie_init");
    const ZOMBIE_CHILD_1: &str = fixture!("zombie_child_18686");
    const ZOMBIE_CHILD_2: &str = fixture!("zombie_child_18687");
    /// python3 that blocked SIGTERM, started a thread that also blocks SIGUSR1, sent that
    /// thread SIGUSR1 and itself SIGTERM. Main thread (also its task/18227/status) and thread.
    const BLOCKED_MAIN: &str = fixture!("blocked_main");
    const BLOCKED_THREAD: &str = fixture!("blocked_thread");
    /// python3 that blocked SIGTERM and started a thread that unblocks it.
    const UNBLOCK_MAIN: &str = fixture!("unblock_main");
    const UNBLOCK_THREAD: &str = fixture!("unblock_thread");

    const ID1: &str = "0123456789abcdef0123456789abcdef0123456789abcdef0123456789abcdef";
    const ID2: &str = "fedcba9876543210fedcba9876543210fedcba9876543210fedcba9876543210";
    const POD_UID: &str = "5a0a4d5e-0b3c-4f8e-9c1a-6f2d3b4c5d6e";

    const TERM_BIT: u64 = 1 << (SIGTERM - 1);

    fn st(text: &str) -> ProcStatus {
        ProcStatus::parse(text).expect("fixture parses")
    }

    fn snap(status: &str, threads: &[&str], children: &[&str]) -> Snapshot {
        Snapshot {
            status: st(status),
            cmdline: Vec::new(),
            threads: threads.iter().map(|t| st(t)).collect(),
            children: children.iter().map(|c| st(c)).collect(),
            cgroup: None,
        }
    }

    fn flags(s: &Snapshot) -> Vec<RiskFlag> {
        risk_flags(s).into_iter().map(|f| f.flag).collect()
    }

    fn k8s_cgroup(uid_esc: &str, id: &str) -> String {
        format!(
            "0::/kubepods.slice/kubepods-besteffort.slice/kubepods-besteffort-pod{uid_esc}.slice/cri-containerd-{id}.scope\n"
        )
    }

    #[test]
    fn parses_plain_status() {
        let s = st(SELF);
        assert_eq!(
            s,
            ProcStatus {
                name: "cat".into(),
                state: "R (running)".into(),
                tgid: 17362,
                pid: 17362,
                ppid: 17359,
                nspid: vec![17362],
                sigq: Some(SigQ {
                    queued: 0,
                    limit: 96365
                }),
                sig_pnd: 0,
                shd_pnd: 0,
                sig_blk: 0,
                sig_ign: 0,
                sig_cgt: 0,
                uid: 0,
                euid: 0,
            }
        );
        assert_eq!(s.init_kind(), None);
        assert_eq!(s.ns_pid(), 17362);
        assert_eq!(s.disposition(SIGTERM), Disposition::Default);
    }

    #[test]
    fn parses_masks_and_dispositions() {
        let py = st(PY_TERM);
        assert_eq!(py.sig_cgt, TERM_BIT);
        assert_eq!(names::mask_names(py.sig_cgt), vec!["SIGTERM"]);
        assert_eq!(py.disposition(SIGTERM), Disposition::Handler);
        assert_eq!(
            names::mask_names(py.sig_ign),
            vec!["SIGINT", "SIGQUIT", "SIGPIPE", "SIGXFSZ"]
        );
        assert_eq!(py.disposition(SIGINT), Disposition::Ignore);

        let ign = st(TERM_IGNORED);
        assert_eq!(ign.disposition(SIGTERM), Disposition::Ignore);

        let b = st(BLOCKED_THREAD);
        assert_eq!(b.pid, 18275);
        assert_eq!(b.tgid, 18227);
        assert_eq!(names::mask_names(b.sig_blk), vec!["SIGUSR1", "SIGTERM"]);
        assert_eq!(names::mask_names(b.sig_pnd), vec!["SIGUSR1"]);
        assert_eq!(names::mask_names(b.shd_pnd), vec!["SIGTERM"]);
        assert!(b.blocks(SIGTERM));
        assert_eq!(
            b.sigq,
            Some(SigQ {
                queued: 3,
                limit: 96365
            })
        );

        let stopped = st(STOPPED);
        assert_eq!(stopped.state_code(), Some('T'));
        assert_eq!(stopped.shd_pnd, TERM_BIT);
    }

    #[test]
    fn recognises_inits() {
        let ns = st(SLEEP_INIT);
        assert_eq!(ns.nspid, vec![17905, 1]);
        assert_eq!(ns.ns_pid(), 1);
        assert_eq!(ns.init_kind(), Some(InitKind::Namespace));

        let view = st(CONTAINER_VIEW_INIT);
        assert_eq!((view.pid, view.nspid.clone()), (1, vec![1]));
        assert_eq!(view.init_kind(), Some(InitKind::Host));

        // a namespace's second process is not an init
        let child = st(SHELL_CHILD);
        assert_eq!(child.nspid, vec![17937, 2]);
        assert_eq!(child.init_kind(), None);

        // nested namespaces: only the innermost pid counts
        let nested = SLEEP_INIT.replace("NSpid:\t17905\t1", "NSpid:\t17905\t1\t7");
        assert_eq!(st(&nested).init_kind(), None);
        let nested_init = SLEEP_INIT.replace("NSpid:\t17905\t1", "NSpid:\t17905\t7\t1");
        assert_eq!(st(&nested_init).init_kind(), Some(InitKind::Namespace));
    }

    #[test]
    fn parser_keeps_names_with_colons_and_spaces() {
        let kworker = SELF.replace("Name:\tcat", "Name:\tkworker/u8:2-events");
        assert_eq!(st(&kworker).name, "kworker/u8:2-events");
        let spaced = SELF.replace("Name:\tcat", "Name:\t my app ");
        assert_eq!(st(&spaced).name, " my app ");
    }

    #[test]
    fn parser_tolerates_old_kernels_and_unknown_fields() {
        let old: String = SELF
            .lines()
            .filter(|l| !l.starts_with("NSpid") && !l.starts_with("SigQ"))
            .map(|l| format!("{l}\n"))
            .collect();
        let s = st(&old);
        assert_eq!(s.nspid, vec![17362]);
        assert_eq!(s.sigq, None);
        let extra = format!("{SELF}Future_field:\tx:y:z\nno colon here\n");
        assert_eq!(st(&extra), st(SELF));
    }

    #[test]
    fn parser_rejects_missing_and_malformed_fields() {
        let without = |field: &str| -> String {
            SELF.lines()
                .filter(|l| !l.starts_with(&format!("{field}:")))
                .map(|l| format!("{l}\n"))
                .collect()
        };
        for field in [
            "Name", "Pid", "Tgid", "PPid", "Uid", "SigPnd", "ShdPnd", "SigBlk", "SigIgn", "SigCgt",
        ] {
            let err = ProcStatus::parse(&without(field)).expect_err(field);
            assert_eq!(err.to_string(), format!("missing field {field}"));
        }
        let cases = [
            (
                "SigCgt:\t0000000000000000",
                "SigCgt:\t00000000000000zz",
                "SigCgt",
            ),
            (
                "SigCgt:\t0000000000000000",
                "SigCgt:\t00000000000000000",
                "SigCgt",
            ),
            ("SigBlk:\t0000000000000000", "SigBlk:\t", "SigBlk"),
            ("Pid:\t17362", "Pid:\t-1", "Pid"),
            ("NSpid:\t17362", "NSpid:\t17362 x", "NSpid"),
            ("NSpid:\t17362", "NSpid:\t", "NSpid"),
            ("SigQ:\t0/96365", "SigQ:\t0", "SigQ"),
            ("Uid:\t0\t0\t0\t0", "Uid:\t0", "Uid"),
        ];
        for (from, to, field) in cases {
            let text = SELF.replace(from, to);
            assert_ne!(text, SELF, "{from}");
            match ProcStatus::parse(&text) {
                Err(StatusError::Invalid { field: f, .. }) => assert_eq!(f, field, "{to}"),
                other => panic!("{to:?}: {other:?}"),
            }
        }
        assert_eq!(
            ProcStatus::parse("").unwrap_err(),
            StatusError::Missing("Pid")
        );
    }

    #[test]
    fn init_without_term_handler() {
        let positive = [
            snap(SLEEP_INIT, &[], &[]),
            snap(CONTAINER_VIEW_INIT, &[], &[]),
            snap(SHELL_INIT, &[], &[SHELL_CHILD]),
        ];
        for s in &positive {
            assert!(
                flags(s).contains(&RiskFlag::InitWithoutTermHandler),
                "{}",
                s.status.name
            );
        }
        let negative = [
            // not an init
            snap(SELF, &[], &[]),
            // an init that traps SIGTERM
            snap(SHELL_INIT_TRAP, &[], &[SHELL_CHILD]),
            // an init with a handler
            snap(
                &PY_TERM.replace("NSpid:\t17539", "NSpid:\t17539\t1"),
                &[],
                &[],
            ),
        ];
        for s in &negative {
            assert!(
                !flags(s).contains(&RiskFlag::InitWithoutTermHandler),
                "{}",
                s.status.name
            );
        }
        // an init that ignores SIGTERM gets term_ignored instead
        let ign = snap(
            &TERM_IGNORED.replace("NSpid:\t19401", "NSpid:\t19401\t1"),
            &[],
            &[],
        );
        assert_eq!(flags(&ign), vec![RiskFlag::TermIgnored]);
    }

    #[test]
    fn shell_init_with_children() {
        let s = snap(SHELL_INIT, &[SHELL_INIT], &[SHELL_CHILD, SHELL_CHILD]);
        assert_eq!(
            flags(&s),
            vec![
                RiskFlag::InitWithoutTermHandler,
                RiskFlag::ShellInitWithChildren
            ]
        );
        let finding = &risk_flags(&s)[1];
        assert!(
            finding.explanation.contains("shell sh"),
            "{}",
            finding.explanation
        );
        assert!(finding.remedy.contains("exec"), "{}", finding.remedy);

        // the same shell with a trap, without children, or not an init
        for s in [
            snap(SHELL_INIT_TRAP, &[], &[SHELL_CHILD]),
            snap(SHELL_INIT, &[], &[]),
            snap(
                &SHELL_INIT.replace("NSpid:\t17936\t1", "NSpid:\t17936\t4"),
                &[],
                &[SHELL_CHILD],
            ),
            snap(SLEEP_INIT, &[], &[SHELL_CHILD]),
        ] {
            assert!(!flags(&s).contains(&RiskFlag::ShellInitWithChildren));
        }
        // busybox counts when it runs sh
        let mut busybox = snap(
            &SHELL_INIT.replace("Name:\tsh", "Name:\tbusybox"),
            &[],
            &[SHELL_CHILD],
        );
        busybox.cmdline = vec!["/bin/busybox".into(), "sh".into(), "-c".into(), "x".into()];
        assert!(flags(&busybox).contains(&RiskFlag::ShellInitWithChildren));
        busybox.cmdline = vec!["/bin/busybox".into(), "init".into()];
        assert!(!flags(&busybox).contains(&RiskFlag::ShellInitWithChildren));
    }

    #[test]
    fn term_blocked_in_every_thread() {
        let blocked = snap(BLOCKED_MAIN, &[BLOCKED_MAIN, BLOCKED_THREAD], &[]);
        assert_eq!(
            flags(&blocked),
            vec![RiskFlag::TermBlocked, RiskFlag::SignalsPending]
        );
        // no thread could be read: the main thread decides
        let main_only = snap(BLOCKED_MAIN, &[], &[]);
        assert!(flags(&main_only).contains(&RiskFlag::TermBlocked));
        // a thread that unblocks SIGTERM takes it
        let unblocked = snap(UNBLOCK_MAIN, &[UNBLOCK_MAIN, UNBLOCK_THREAD], &[]);
        assert_eq!(flags(&unblocked), vec![]);
        assert!(!analyze(&unblocked).term_blocked_everywhere);
        // a zombie thread does not count as unblocking
        let zombie_thread = UNBLOCK_THREAD.replace("State:\tS (sleeping)", "State:\tZ (zombie)");
        let s = snap(UNBLOCK_MAIN, &[UNBLOCK_MAIN, &zombie_thread], &[]);
        assert!(flags(&s).contains(&RiskFlag::TermBlocked));
        assert!(!flags(&snap(SELF, &[SELF], &[])).contains(&RiskFlag::TermBlocked));
    }

    #[test]
    fn term_ignored() {
        assert_eq!(
            flags(&snap(TERM_IGNORED, &[], &[])),
            vec![RiskFlag::TermIgnored]
        );
        assert!(!flags(&snap(PY_TERM, &[], &[])).contains(&RiskFlag::TermIgnored));
    }

    #[test]
    fn signals_pending() {
        let blocked = risk_flags(&snap(BLOCKED_MAIN, &[BLOCKED_MAIN, BLOCKED_THREAD], &[]));
        let pending = blocked
            .iter()
            .find(|f| f.flag == RiskFlag::SignalsPending)
            .expect("pending flag");
        assert_eq!(
            pending.explanation,
            "signals pending: process-wide SIGTERM; thread-directed SIGUSR1; \
             blocked in every thread: SIGTERM"
        );
        assert!(pending.remedy.contains("unblocks"), "{}", pending.remedy);

        // stopped with a caught SIGTERM pending: the handler waits for SIGCONT
        let stopped = risk_flags(&snap(STOPPED, &[STOPPED], &[]));
        let got: Vec<RiskFlag> = stopped.iter().map(|f| f.flag).collect();
        assert_eq!(got, vec![RiskFlag::SignalsPending, RiskFlag::Stopped]);
        assert!(
            stopped[0].remedy.contains("SIGCONT"),
            "{}",
            stopped[0].remedy
        );

        // pending and not blocked: transient unless the thread is stuck in the kernel
        let unblocked = SELF.replace("SigPnd:\t0000000000000000", "SigPnd:\t0000000000000100");
        let f = risk_flags(&snap(&unblocked, &[], &[]));
        assert_eq!(f.len(), 1);
        assert_eq!(f[0].explanation, "signals pending: thread-directed SIGKILL");
        assert!(f[0].remedy.contains("state D"), "{}", f[0].remedy);

        for quiet in [SELF, PY_TERM, SLEEP_INIT] {
            assert!(!flags(&snap(quiet, &[quiet], &[])).contains(&RiskFlag::SignalsPending));
        }
    }

    #[test]
    fn zombie_children() {
        let s = snap(
            ZOMBIE_INIT,
            &[ZOMBIE_INIT],
            &[ZOMBIE_CHILD_1, ZOMBIE_CHILD_2],
        );
        let f = risk_flags(&s);
        let got: Vec<RiskFlag> = f.iter().map(|f| f.flag).collect();
        assert_eq!(
            got,
            vec![RiskFlag::InitWithoutTermHandler, RiskFlag::ZombieChildren]
        );
        assert!(f[1]
            .explanation
            .starts_with("2 zombie children (18686, 18687)"));
        assert!(f[1].explanation.contains("orphan"));

        // a live child is no zombie; a SIGCHLD handler reaps (dash catches SIGCHLD)
        assert!(!flags(&snap(ZOMBIE_INIT, &[], &[SHELL_CHILD])).contains(&RiskFlag::ZombieChildren));
        let shell = snap(SHELL_INIT, &[], &[ZOMBIE_CHILD_1]);
        assert!(!flags(&shell).contains(&RiskFlag::ZombieChildren));
        // not an init: flagged, without the orphan remark
        let plain = risk_flags(&snap(PY_TERM, &[], &[ZOMBIE_CHILD_1]));
        assert_eq!(plain.len(), 1);
        assert_eq!(plain[0].flag, RiskFlag::ZombieChildren);
        assert!(!plain[0].explanation.contains("orphan"));
    }

    #[test]
    fn zombie_process_gets_one_flag() {
        let f = risk_flags(&snap(ZOMBIE_CHILD_1, &[ZOMBIE_CHILD_1], &[]));
        assert_eq!(f.len(), 1);
        assert_eq!(f[0].flag, RiskFlag::Zombie);
        assert!(
            f[0].explanation.contains("pid 18644"),
            "{}",
            f[0].explanation
        );
    }

    #[test]
    fn sigint_only_and_child_ignores_term() {
        assert_eq!(flags(&snap(PY_INT, &[], &[])), vec![RiskFlag::SigintOnly]);
        assert!(!flags(&snap(PY_TERM, &[], &[])).contains(&RiskFlag::SigintOnly));
        // an init with SIGINT caught is reported as an init without SIGTERM handler
        assert_eq!(
            flags(&snap(CONTAINER_VIEW_INIT, &[], &[])),
            vec![RiskFlag::InitWithoutTermHandler]
        );

        let f = risk_flags(&snap(SHELL_INIT_TRAP, &[], &[TERM_IGNORED, SHELL_CHILD]));
        assert_eq!(f.len(), 1);
        assert_eq!(f[0].flag, RiskFlag::ChildIgnoresTerm);
        assert!(f[0].explanation.contains("(19401)"), "{}", f[0].explanation);
        assert!(!flags(&snap(SHELL_INIT_TRAP, &[], &[SHELL_CHILD]))
            .contains(&RiskFlag::ChildIgnoresTerm));
    }

    #[test]
    fn sigq_near_limit() {
        let near = SELF.replace("SigQ:\t0/96365", "SigQ:\t86729/96365");
        let f = risk_flags(&snap(&near, &[], &[]));
        assert_eq!(f.len(), 1);
        assert_eq!(f[0].flag, RiskFlag::SigqNearLimit);
        assert!(f[0]
            .explanation
            .starts_with("uid 0 has 86729 of at most 96365"));
        let below = SELF.replace("SigQ:\t0/96365", "SigQ:\t86728/96365");
        assert!(flags(&snap(&below, &[], &[])).is_empty());
        let zero_limit = SELF.replace("SigQ:\t0/96365", "SigQ:\t0/0");
        assert!(flags(&snap(&zero_limit, &[], &[])).is_empty());
    }

    #[test]
    fn flags_serialize_snake_case() {
        for (flag, name) in [
            (
                RiskFlag::InitWithoutTermHandler,
                "init_without_term_handler",
            ),
            (RiskFlag::ShellInitWithChildren, "shell_init_with_children"),
            (RiskFlag::TermBlocked, "term_blocked"),
            (RiskFlag::TermIgnored, "term_ignored"),
            (RiskFlag::SignalsPending, "signals_pending"),
            (RiskFlag::ZombieChildren, "zombie_children"),
            (RiskFlag::Zombie, "zombie"),
            (RiskFlag::Stopped, "stopped"),
            (RiskFlag::SigintOnly, "sigint_only"),
            (RiskFlag::ChildIgnoresTerm, "child_ignores_term"),
            (RiskFlag::SigqNearLimit, "sigq_near_limit"),
        ] {
            assert_eq!(serde_json::to_value(flag).expect("json"), name);
            assert_eq!(flag.as_str(), name);
        }
    }

    #[test]
    fn analyze_reports_threads_children_and_container() {
        let mut s = snap(BLOCKED_MAIN, &[BLOCKED_MAIN, BLOCKED_THREAD], &[]);
        s.cgroup = Some(k8s_cgroup(&POD_UID.replace('-', "_"), ID1));
        s.cmdline = vec!["python3".into(), "blocked.py".into(), "block".into()];
        let r = analyze(&s);
        assert_eq!((r.pid, r.ppid, r.threads), (18227, 18224, 2));
        assert_eq!(r.blocked, vec!["SIGTERM"]);
        assert_eq!(r.pending_process, vec!["SIGTERM"]);
        assert!(r.pending_thread.is_empty());
        assert_eq!(r.caught, vec!["SIG33"]);
        assert!(r.term_blocked_everywhere);
        assert_eq!(r.term, Disposition::Default);
        assert_eq!(r.masks.shd_pnd, "0000000000004000");
        assert_eq!(r.masks.sig_ign, "0000000001001006");
        assert_eq!(
            r.thread_differences,
            vec![ThreadReport {
                tid: 18275,
                comm: "python3".into(),
                blocked: vec!["SIGUSR1".into(), "SIGTERM".into()],
                pending: vec!["SIGUSR1".into()],
            }]
        );
        let c = r.container.as_ref().expect("container");
        assert_eq!(c.container.id, ID1);
        assert_eq!(c.container.runtime, "containerd");
        assert_eq!(c.container.pod, None);
        assert_eq!(c.pod_uid.as_deref(), Some(POD_UID));
        assert_eq!(c.qos.as_deref(), Some("besteffort"));

        let init = analyze(&snap(
            SHELL_INIT,
            &[SHELL_INIT],
            &[SHELL_CHILD, TERM_IGNORED],
        ));
        assert_eq!(init.init, Some(InitKind::Namespace));
        assert_eq!(init.ns_pids, vec![17936, 1]);
        assert!(init.thread_differences.is_empty());
        assert_eq!(
            init.children,
            vec![
                ChildReport {
                    pid: 17937,
                    comm: "sleep".into(),
                    state: "S (sleeping)".into(),
                    term: Disposition::Default,
                    term_blocked: false,
                },
                ChildReport {
                    pid: 19401,
                    comm: "sleep".into(),
                    state: "S (sleeping)".into(),
                    term: Disposition::Ignore,
                    term_blocked: false,
                },
            ]
        );
    }

    #[test]
    fn report_json_is_an_inspect_record() {
        let mut s = snap(SHELL_INIT, &[SHELL_INIT], &[SHELL_CHILD]);
        s.cgroup = Some(format!("0::/system.slice/docker-{ID1}.scope\n"));
        let v = serde_json::to_value(analyze(&s)).expect("json");
        assert_eq!(v["event"], "inspect");
        assert_eq!(v["pid"], 17936);
        assert_eq!(v["init"], "namespace");
        assert_eq!(v["term"], "default");
        assert_eq!(v["caught"], serde_json::json!(["SIGCHLD"]));
        assert_eq!(v["ignored"], serde_json::json!(["SIGINT", "SIGQUIT"]));
        assert_eq!(v["children"][0]["term"], "default");
        assert_eq!(v["container"]["id"], ID1);
        assert_eq!(v["container"]["runtime"], "docker");
        assert!(v["container"]["pod"].is_null());
        assert!(v["container"]["pod_uid"].is_null());
        assert_eq!(v["flags"][0]["flag"], "init_without_term_handler");
        assert_eq!(v["flags"][1]["flag"], "shell_init_with_children");
        assert!(v["flags"][1]["remedy"]
            .as_str()
            .is_some_and(|r| !r.is_empty()));
        let line = serde_json::to_string(&analyze(&s)).expect("json");
        assert!(!line.contains('\n'));
        assert!(line.starts_with("{\"event\":\"inspect\""), "{line}");
    }

    #[test]
    fn text_report_names_everything() {
        let mut s = snap(
            ZOMBIE_INIT,
            &[ZOMBIE_INIT],
            &[ZOMBIE_CHILD_1, ZOMBIE_CHILD_2],
        );
        s.cmdline = vec!["python3".into(), "zombie.py".into()];
        s.cgroup = Some(format!("0::/system.slice/docker-{ID1}.scope\n"));
        let text = analyze(&s).render_text();
        for want in [
            "pid 18644 (python3)  state S (sleeping)  ppid 18642  uid 0\n",
            "  cmdline:  python3 zombie.py\n",
            "  init:     init of its PID namespace (pid per namespace: 18644 > 1)\n",
            &format!("  container: docker {ID1}\n"),
            "  caught:   -\n",
            "  ignored:  SIGINT SIGQUIT SIGPIPE SIGXFSZ\n",
            "  blocked:  -\n",
            "  pending:  -\n",
            "  SIGTERM:  default\n",
            "  threads:  1, differing from the main thread: 0\n",
            "  children: 2\n",
            "    18686 (python3)  Z (zombie)  SIGTERM default\n",
            "    init_without_term_handler: the init of a PID namespace with SIGTERM at SIG_DFL",
            "    zombie_children: 2 zombie children (18686, 18687)",
            "      remedy: run a reaping init as PID 1",
        ] {
            assert!(text.contains(want), "missing {want:?} in\n{text}");
        }

        let blocked =
            analyze(&snap(BLOCKED_MAIN, &[BLOCKED_MAIN, BLOCKED_THREAD], &[])).render_text();
        for want in [
            "  blocked:  SIGTERM\n",
            "  pending:  SIGTERM (process)\n",
            "  SIGTERM:  default, blocked in every thread\n",
            "  queued:   3/96365 (for uid 0)\n",
            "    tid 18275 (python3): blocked SIGUSR1 SIGTERM; pending SIGUSR1\n",
            "    term_blocked: ",
        ] {
            assert!(blocked.contains(want), "missing {want:?} in\n{blocked}");
        }
        let quiet = analyze(&snap(PY_TERM, &[], &[])).render_text();
        assert!(quiet.contains("  SIGTERM:  caught\n"), "{quiet}");
        assert!(quiet.contains("  init:     not an init"), "{quiet}");
        assert!(quiet.ends_with("  flags:    none\n"), "{quiet}");
    }

    /// A fake proc tree under the system temp dir, removed on drop.
    struct FakeProc(PathBuf);

    impl FakeProc {
        fn new(name: &str) -> FakeProc {
            let dir = std::env::temp_dir().join(format!(
                "inspect-{name}-{}-{:?}",
                std::process::id(),
                std::thread::current().id()
            ));
            let _ = fs::remove_dir_all(&dir);
            fs::create_dir_all(&dir).expect("create temp dir");
            FakeProc(dir)
        }

        fn write(&self, rel: &str, text: &str) {
            let path = self.0.join(rel);
            fs::create_dir_all(path.parent().expect("parent")).expect("create dirs");
            fs::write(path, text).expect("write file");
        }

        /// A process with its status, the status of each task, and optional files.
        fn process(&self, pid: u32, status: &str, tasks: &[(u32, &str)], cgroup: Option<&str>) {
            self.write(&format!("{pid}/status"), status);
            for (tid, text) in tasks {
                self.write(&format!("{pid}/task/{tid}/status"), text);
            }
            if let Some(c) = cgroup {
                self.write(&format!("{pid}/cgroup"), c);
            }
        }
    }

    impl Drop for FakeProc {
        fn drop(&mut self) {
            let _ = fs::remove_dir_all(&self.0);
        }
    }

    #[test]
    fn inspect_pid_on_a_fake_tree() {
        let proc = FakeProc::new("zombies");
        let cgroup = k8s_cgroup(&POD_UID.replace('-', "_"), ID1);
        proc.process(18644, ZOMBIE_INIT, &[(18644, ZOMBIE_INIT)], Some(&cgroup));
        proc.write("18644/task/18644/children", "18686 18687 ");
        proc.write("18644/cmdline", "python3\0zombie.py\0");
        proc.process(
            18686,
            ZOMBIE_CHILD_1,
            &[(18686, ZOMBIE_CHILD_1)],
            Some(&cgroup),
        );
        proc.process(
            18687,
            ZOMBIE_CHILD_2,
            &[(18687, ZOMBIE_CHILD_2)],
            Some(&cgroup),
        );
        proc.write("self", "not a process");

        let r = inspect_pid(&proc.0, 18644).expect("inspect");
        assert_eq!(r.comm, "python3");
        assert_eq!(r.cmdline, vec!["python3", "zombie.py"]);
        assert_eq!(r.init, Some(InitKind::Namespace));
        assert_eq!(r.threads, 1);
        let kids: Vec<(u32, &str)> = r
            .children
            .iter()
            .map(|c| (c.pid, c.state.as_str()))
            .collect();
        assert_eq!(kids, vec![(18686, "Z (zombie)"), (18687, "Z (zombie)")]);
        assert_eq!(
            r.container.as_ref().and_then(|c| c.pod_uid.as_deref()),
            Some(POD_UID)
        );
        let got: Vec<RiskFlag> = r.flags.iter().map(|f| f.flag).collect();
        assert_eq!(
            got,
            vec![RiskFlag::InitWithoutTermHandler, RiskFlag::ZombieChildren]
        );

        // without the children file (CONFIG_PROC_CHILDREN off), children come from PPid
        fs::remove_file(proc.0.join("18644/task/18644/children")).expect("remove");
        let again = inspect_pid(&proc.0, 18644).expect("inspect");
        assert_eq!(again.children, r.children);

        // the child itself, a zombie
        let z = inspect_pid(&proc.0, 18686).expect("inspect");
        assert!(z.cmdline.is_empty());
        assert!(z.children.is_empty());
        assert_eq!(z.flags.len(), 1);
        assert_eq!(z.flags[0].flag, RiskFlag::Zombie);
    }

    #[test]
    fn inspect_pid_reads_every_thread() {
        let proc = FakeProc::new("threads");
        proc.process(
            18227,
            BLOCKED_MAIN,
            &[(18227, BLOCKED_MAIN), (18275, BLOCKED_THREAD)],
            Some("0::/user.slice/user-0.slice/session-1.scope\n"),
        );
        // an unrelated process; no children files anywhere
        proc.process(18686, ZOMBIE_CHILD_1, &[], None);
        // a task directory without status (the thread just exited) is left out
        fs::create_dir_all(proc.0.join("18227/task/18300")).expect("mkdir");

        let r = inspect_pid(&proc.0, 18227).expect("inspect");
        assert_eq!(r.threads, 2);
        assert_eq!(r.thread_differences.len(), 1);
        assert_eq!(r.thread_differences[0].tid, 18275);
        assert!(r.children.is_empty());
        assert_eq!(r.container, None);
        let got: Vec<RiskFlag> = r.flags.iter().map(|f| f.flag).collect();
        assert_eq!(got, vec![RiskFlag::TermBlocked, RiskFlag::SignalsPending]);

        // SIGTERM unblocked by a second thread
        let proc2 = FakeProc::new("unblock");
        proc2.process(
            18308,
            UNBLOCK_MAIN,
            &[(18308, UNBLOCK_MAIN), (18367, UNBLOCK_THREAD)],
            None,
        );
        let r = inspect_pid(&proc2.0, 18308).expect("inspect");
        assert!(r.flags.is_empty(), "{:?}", r.flags);
        assert!(!r.term_blocked_everywhere);
        assert_eq!(r.thread_differences[0].blocked, Vec::<Cow<str>>::new());
    }

    #[test]
    fn inspect_pid_errors_carry_context() {
        let proc = FakeProc::new("errors");
        let err = inspect_pid(&proc.0, 4242).expect_err("missing");
        assert!(matches!(err, InspectError::NoSuchProcess(4242)));
        assert_eq!(err.to_string(), "no such process 4242");

        // a directory where the status file should be cannot be read
        fs::create_dir_all(proc.0.join("77/status")).expect("mkdir");
        let err = inspect_pid(&proc.0, 77).expect_err("unreadable");
        let msg = err.to_string();
        let want = format!("cannot read {}: ", proc.0.join("77/status").display());
        assert!(msg.starts_with(&want), "{msg}");

        proc.write("78/status", &SELF.replace("SigCgt:", "SigCaught:"));
        let err = inspect_pid(&proc.0, 78).expect_err("malformed");
        assert_eq!(
            err.to_string(),
            format!(
                "cannot parse {}: missing field SigCgt",
                proc.0.join("78/status").display()
            )
        );
        // a process directory without status: gone between listing and reading
        fs::create_dir_all(proc.0.join("79")).expect("mkdir");
        assert!(matches!(
            inspect_pid(&proc.0, 79),
            Err(InspectError::NoSuchProcess(79))
        ));
    }

    /// Two containers (one in a pod), a host process.
    fn container_tree(name: &str) -> FakeProc {
        let proc = FakeProc::new(name);
        let pod = k8s_cgroup(&POD_UID.replace('-', "_"), ID1);
        proc.process(100, SHELL_INIT, &[], Some(&pod));
        proc.process(101, SHELL_CHILD, &[], Some(&pod));
        let v1 = format!("12:pids:/docker/{ID2}\n1:name=systemd:/docker/{ID2}\n");
        proc.process(200, SLEEP_INIT, &[], Some(&v1));
        proc.process(
            300,
            SELF,
            &[],
            Some("0::/user.slice/user-0.slice/session-1.scope\n"),
        );
        proc.process(400, SELF, &[], None);
        proc
    }

    #[test]
    fn container_pids_by_prefix() {
        let proc = container_tree("containers");
        assert_eq!(find_container_pids(&proc.0, "0123"), vec![100, 101]);
        assert_eq!(find_container_pids(&proc.0, ID1), vec![100, 101]);
        assert_eq!(find_container_pids(&proc.0, "FEDC"), vec![200]);
        assert_eq!(find_container_pids(&proc.0, "abc"), Vec::<u32>::new());
        assert_eq!(find_container_pids(&proc.0, ""), Vec::<u32>::new());
        assert_eq!(
            find_container_pids(&proc.0.join("nope"), "0123"),
            Vec::<u32>::new()
        );
    }

    #[test]
    fn pod_pids_by_uid_prefix() {
        let proc = container_tree("pods");
        assert_eq!(
            find_pod_pids(&proc.0, "5a0a4d5e").expect("pod"),
            vec![100, 101]
        );
        assert_eq!(
            find_pod_pids(&proc.0, POD_UID).expect("pod"),
            vec![100, 101]
        );
        assert_eq!(
            find_pod_pids(&proc.0, &POD_UID.replace('-', "_").to_uppercase()).expect("pod"),
            vec![100, 101]
        );
        let err = find_pod_pids(&proc.0, "web-7d9f8").expect_err("name");
        assert!(matches!(err, InspectError::PodName(ref n) if n == "web-7d9f8"));
        assert!(err.to_string().contains("container runtime"), "{err}");
        assert!(matches!(
            find_pod_pids(&proc.0, "ffff"),
            Err(InspectError::NoPod(_))
        ));
        assert!(matches!(
            find_pod_pids(&proc.0, "-"),
            Err(InspectError::PodName(_))
        ));
    }

    #[test]
    fn targets() {
        let proc = container_tree("targets");
        let one = inspect_target(&proc.0, &Target::Pid(300)).expect("pid");
        assert_eq!(one.len(), 1);
        assert_eq!(one[0].pid, 17362);

        let c = inspect_target(&proc.0, &Target::Container("0123".into())).expect("container");
        assert_eq!(c.len(), 2);
        assert!(c
            .iter()
            .all(|r| r.container.as_ref().is_some_and(|c| c.container.id == ID1)));
        assert_eq!(c[0].init, Some(InitKind::Namespace));

        let p = inspect_target(&proc.0, &Target::Pod(POD_UID[..8].into())).expect("pod");
        assert_eq!(p, c);

        // a second container whose id shares the prefix "012"
        let ambiguous = container_tree("ambiguous");
        let other = ID1.replacen("0123", "0124", 1);
        ambiguous.write(
            "200/cgroup",
            &format!("0::/system.slice/docker-{other}.scope\n"),
        );
        match inspect_target(&ambiguous.0, &Target::Container("012".into())) {
            Err(InspectError::AmbiguousContainer { prefix, ids }) => {
                assert_eq!(prefix, "012");
                assert_eq!(ids, vec![ID1.to_owned(), other]);
            }
            other => panic!("{other:?}"),
        }
        assert!(matches!(
            inspect_target(&proc.0, &Target::Container("abc".into())),
            Err(InspectError::NoContainer(_))
        ));
        assert!(matches!(
            inspect_target(&proc.0, &Target::Container(" ".into())),
            Err(InspectError::EmptyContainerPrefix)
        ));
        assert!(matches!(
            inspect_target(&proc.0, &Target::Pid(999)),
            Err(InspectError::NoSuchProcess(999))
        ));
    }

    #[derive(clap::Parser, Debug)]
    struct TestCli {
        #[command(flatten)]
        args: InspectArgs,
    }

    fn parse_args(argv: &[&str]) -> Result<InspectArgs, clap::Error> {
        use clap::Parser;
        TestCli::try_parse_from(std::iter::once("inspect").chain(argv.iter().copied()))
            .map(|c| c.args)
    }

    #[test]
    fn arguments_name_one_target() {
        let t = |argv: &[&str]| parse_args(argv).expect("parses").target();
        assert_eq!(t(&["42"]), Some(Target::Pid(42)));
        assert_eq!(
            t(&["--container", "abc"]),
            Some(Target::Container("abc".into()))
        );
        assert_eq!(t(&["--pod", "5a0a"]), Some(Target::Pod("5a0a".into())));
        assert_eq!(
            parse_args(&["--format", "json", "1"])
                .expect("parses")
                .format,
            FormatArg::Json
        );
        for bad in [
            &[][..],
            &["42", "--container", "abc"],
            &["--container", "abc", "--pod", "x"],
            &["notapid"],
        ] {
            assert!(parse_args(bad).is_err(), "{bad:?}");
        }
    }

    #[test]
    fn run_writes_text_or_ndjson() {
        let proc = container_tree("run");
        let args = parse_args(&["--container", "0123", "--format", "json"]).expect("args");
        let mut out = Vec::new();
        run(&args, &proc.0, &mut out).expect("run");
        let text = String::from_utf8(out).expect("utf8");
        let lines: Vec<&str> = text.lines().collect();
        assert_eq!(lines.len(), 2);
        for line in lines {
            let v: serde_json::Value = serde_json::from_str(line).expect("json line");
            assert_eq!(v["event"], "inspect");
        }

        let args = parse_args(&["300"]).expect("args");
        let mut out = Vec::new();
        run(&args, &proc.0, &mut out).expect("run");
        let text = String::from_utf8(out).expect("utf8");
        assert!(text.starts_with("pid 17362 (cat)"), "{text}");

        let args = parse_args(&["999"]).expect("args");
        let err = run(&args, &proc.0, &mut Vec::new()).expect_err("missing");
        assert_eq!(err.to_string(), "no such process 999");
    }

    #[test]
    fn inspects_itself_through_real_proc() {
        let root = Path::new("/proc");
        if !root.join("self/status").exists() {
            return;
        }
        let me = std::process::id();
        // a child to find among the children
        let child = std::process::Command::new("sleep").arg("30").spawn().ok();

        let r = inspect_pid(root, me).expect("inspect self");
        assert_eq!(r.pid, me);
        assert_eq!(r.ns_pids.first(), Some(&me));
        assert_ne!(r.ppid, 0);
        assert_eq!(r.init, None);
        assert!(!r.comm.is_empty());
        assert!(!r.cmdline.is_empty());
        assert!(r.threads >= 1);
        assert!(
            r.state.starts_with('R') || r.state.starts_with('S'),
            "{}",
            r.state
        );
        // the kernel never lets SIGKILL or SIGSTOP be caught, ignored or blocked
        for list in [&r.caught, &r.ignored, &r.blocked] {
            assert!(
                !list.iter().any(|s| s == "SIGKILL" || s == "SIGSTOP"),
                "{list:?}"
            );
        }
        // the names are the masks
        let mask = u64::from_str_radix(&r.masks.sig_ign, 16).expect("hex");
        assert_eq!(r.ignored, names::mask_names(mask));
        // the Rust runtime ignores SIGPIPE
        assert!(r.ignored.iter().any(|s| s == "SIGPIPE"), "{:?}", r.ignored);
        assert!(!r.flags.iter().any(|f| f.flag == RiskFlag::Zombie
            || f.flag == RiskFlag::InitWithoutTermHandler
            || f.flag == RiskFlag::ShellInitWithChildren));

        if let Some(mut child) = child {
            let pid = child.id();
            // spawn() can return before the exec has renamed the child: wait for the name
            let comm = root.join(pid.to_string()).join("comm");
            for _ in 0..200 {
                if fs::read_to_string(&comm).is_ok_and(|c| c.trim_end() == "sleep") {
                    break;
                }
                std::thread::sleep(std::time::Duration::from_millis(10));
            }
            let again = inspect_pid(root, me).expect("inspect self");
            let _ = child.kill();
            let _ = child.wait();
            let found = again
                .children
                .iter()
                .find(|c| c.pid == pid)
                .expect("child listed");
            assert_eq!(found.comm, "sleep");
        }
        let text = r.render_text();
        assert!(text.starts_with(&format!("pid {me} (")), "{text}");
    }

    #[test]
    fn pod_names_select_their_containers_by_label() {
        use crate::runtime::RuntimeContainer;
        let c = |id: &str, pod: Option<&str>| RuntimeContainer {
            namespace: "k8s.io".into(),
            id: id.into(),
            image: String::new(),
            labels: pod
                .map(|p| [(crate::containers::LABEL_POD_NAME.to_string(), p.to_string())].into())
                .unwrap_or_default(),
        };
        let all = [
            c("a1", Some("web-0")),
            c("b2", Some("web-1")),
            c("c3", Some("web-0")),
            c("d4", None),
        ];
        assert_eq!(pod_container_ids(&all, "web-0"), vec!["a1", "c3"]);
        assert!(
            pod_container_ids(&all, "web").is_empty(),
            "names match whole"
        );
    }
}
