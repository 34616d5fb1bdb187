//! From a snapshot to a report: dispositions per signal and the risk flags with their remedies.

use super::*;

/// Share of the queued-signal limit (`SigQ`) at which [`RiskFlag::SigqNearLimit`] is raised,
/// in percent.
pub(crate) const SIGQ_WARN_PERCENT: u64 = 90;

/// Command names of shells that do not forward signals to their children.
pub(crate) const SHELLS: &[&str] = &["sh", "bash", "dash", "ash", "zsh", "ksh", "mksh"];

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

pub(crate) fn join(names: &[Cow<'static, str>]) -> String {
    if names.is_empty() {
        "-".to_owned()
    } else {
        names.join(" ")
    }
}

pub(crate) fn disposition_text(d: Disposition) -> &'static str {
    match d {
        Disposition::Default => "default",
        Disposition::Ignore => "ignored",
        Disposition::Handler => "caught",
    }
}

/// Whether the command looks like a shell (`sh`, `bash`, ..., or `busybox sh`).
pub(crate) fn is_shell(comm: &str, cmdline: &[String]) -> bool {
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
                ..Container::default()
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
pub(crate) fn blocked_everywhere(snap: &Snapshot, sig: u32) -> bool {
    let live: Vec<&ProcStatus> = snap.threads.iter().filter(|t| !t.is_zombie()).collect();
    if live.is_empty() {
        snap.status.blocks(sig)
    } else {
        snap.status.blocks(sig) && live.iter().all(|t| t.blocks(sig))
    }
}

pub(crate) fn pid_list(pids: &[u32]) -> String {
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
