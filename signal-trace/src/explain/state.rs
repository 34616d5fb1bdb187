//! What the engine knows of each process, group and coalescing aggregate between records.

use super::*;

#[derive(Clone, Debug)]
pub(crate) struct Sig {
    pub(crate) time: Time,
    pub(crate) signal: String,
    pub(crate) signo: u32,
    pub(crate) code: String,
    pub(crate) si_code: i32,
    pub(crate) sender: Peer,
    /// The sender's systemd unit (`init.scope` for a manager that is PID 1).
    pub(crate) sender_unit: Option<Label>,
    /// Who decided it, from the sender's program and ancestry (shutdown signals and SIGKILL).
    pub(crate) decider: Decider,
    pub(crate) result: Outcome,
    pub(crate) reason: Option<IgnoreReason>,
    pub(crate) disposition: Option<Disposition>,
    pub(crate) blocked: bool,
    pub(crate) ev: Evidence,
}

#[derive(Clone, Debug)]
pub(crate) struct Received {
    pub(crate) time: Time,
    pub(crate) signo: u32,
    pub(crate) si_code: i32,
}

impl Received {
    /// The SIGKILL the kernel sends on behalf of another task (an exiting namespace init, or the
    /// OOM killer running in an allocating task).
    pub(crate) fn kernel_kill(&self) -> bool {
        self.signo == SIGKILL && self.si_code == SI_KERNEL
    }
}

#[derive(Clone, Debug)]
pub(crate) struct OomSeen {
    pub(crate) trigger: Peer,
    pub(crate) ev: Evidence,
}

#[derive(Clone, Debug)]
pub(crate) struct ExitSeen {
    pub(crate) time: Time,
    pub(crate) exit_code: u32,
    pub(crate) signo: Option<u32>,
    pub(crate) signal: Option<String>,
    pub(crate) core_dumped: bool,
    pub(crate) killed_by: Option<KilledBy>,
    pub(crate) ev: Evidence,
}

/// A process's key: the engine's number for its node (host and boot), and its pid there.
pub(crate) type ProcKey = (u32, u32);

#[derive(Clone, Debug, Default)]
pub(crate) struct Proc {
    /// The engine's number for its node: pids of two nodes (or two boots) never meet.
    pub(crate) nid: u32,
    /// The node, as findings name it.
    pub(crate) node: Node,
    pub(crate) pid: u32,
    pub(crate) comm: Comm,
    pub(crate) ns_pid: Option<u32>,
    pub(crate) cgroup_id: Option<u64>,
    pub(crate) container: Option<Container>,
    pub(crate) unit: Option<Label>,
    pub(crate) last_seen: Time,
    /// The first shutdown signal (TERM, INT, HUP, QUIT) of the current story.
    pub(crate) term: Option<Sig>,
    /// The handler run for it.
    pub(crate) term_handled: Option<Evidence>,
    /// The first SIGKILL generated for it.
    pub(crate) kill: Option<Sig>,
    /// The last signal generated for it whose default action ends the process.
    pub(crate) fatal: Option<Sig>,
    pub(crate) oom: Option<OomSeen>,
    /// Recent signals it received (not SIGCHLD and the like), for forwarding checks.
    pub(crate) received: VecDeque<Received>,
    pub(crate) init_ignored_reported: bool,
    pub(crate) exit: Option<ExitSeen>,
    /// A finding already accounts for its death.
    pub(crate) explained: bool,
}

impl Proc {
    pub(crate) fn new(nid: u32, node: &Node, pid: u32) -> Proc {
        Proc {
            nid,
            node: node.clone(),
            pid,
            ..Proc::default()
        }
    }

    pub(crate) fn key(&self) -> ProcKey {
        (self.nid, self.pid)
    }

    /// Takes what a record says about the process: its comm, and what it knows of its PID
    /// namespace, cgroup, container and unit (kept when the record does not know them).
    pub(crate) fn observe(
        &mut self,
        comm: Comm,
        ns_pid: Option<u32>,
        cgroup_id: Option<u64>,
        container: &Option<Container>,
        unit: &Option<Label>,
    ) {
        self.comm = comm;
        self.ns_pid = ns_pid.or(self.ns_pid);
        self.cgroup_id = cgroup_id.or(self.cgroup_id);
        if container.is_some() {
            self.container.clone_from(container);
        }
        if unit.is_some() {
            self.unit.clone_from(unit);
        }
    }

    /// Who stops this process's workload, from the workload and from who decided its shutdown
    /// signal and SIGKILL (see `orchestrator.rs`).
    ///
    /// A container: its runtime (Kubernetes when the kubelet made it), refined by a runtime's
    /// chain when the workload only knows plain containerd; systemd when a systemd manager sent
    /// them; null when only someone else did (a `kill` from a login shell). A process in a unit:
    /// systemd when a service manager sent them, by the manager's own cgroup (`init.scope` for
    /// PID 1 of the host or of a container, `user@UID.service` for `systemd --user`) or by its
    /// program; null otherwise. The kernel's signals (the OOM killer, a namespace init's exit)
    /// and senders whose program is unknown (older recordings) leave the workload's answer.
    pub(crate) fn orchestrator(&self) -> Option<Orchestrator> {
        let mut stops = [self.term.as_ref(), self.kill.as_ref()]
            .into_iter()
            .flatten();
        if let Some(c) = &self.container {
            return for_container(of_container(c), stops.map(|s| &s.decider));
        }
        self.unit.as_ref()?;
        let by_manager = stops.any(|s| {
            s.decider == Decider::Systemd || s.sender_unit.as_deref().is_some_and(is_manager_unit)
        });
        by_manager.then_some(Orchestrator::Systemd)
    }

    pub(crate) fn process_ref(&self) -> ProcessRef {
        ProcessRef {
            pid: self.pid,
            comm: self.comm,
            ns_pid: self.ns_pid,
        }
    }

    /// Its container or cgroup, on its node.
    pub(crate) fn group(&self) -> Option<(u32, Group)> {
        group_of(self.container.as_ref(), self.cgroup_id).map(|g| (self.nid, g))
    }

    /// The PID 1 of a PID namespace other than the host's.
    pub(crate) fn is_ns_init(&self) -> bool {
        self.ns_pid == Some(1) && self.pid != 1
    }

    pub(crate) fn died_by(&self, signo: u32) -> bool {
        self.exit.as_ref().and_then(|x| x.signo) == Some(signo)
    }

    /// The SIGKILL it got came from the kernel on behalf of `init` exiting.
    pub(crate) fn zapped_by(&self) -> Option<u32> {
        if self.oom.is_some() {
            return None;
        }
        let k = self.kill.as_ref()?;
        (k.si_code == SI_KERNEL && k.sender.pid != self.pid).then_some(k.sender.pid)
    }

    pub(crate) fn remember(&mut self, r: Received) {
        if self.received.len() >= MAX_RECEIVED {
            self.received.pop_front();
        }
        self.received.push_back(r);
    }
}

/// The cgroup of a systemd manager: PID 1's `init.scope`, or a user manager's unit.
pub(crate) fn is_manager_unit(unit: &str) -> bool {
    unit == "init.scope" || (unit.starts_with("user@") && unit.ends_with(".service"))
}

/// Which processes belong together: a container, or failing that a (non-root) cgroup.
#[derive(Clone, Debug, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub(crate) enum Group {
    Container(String),
    Cgroup(u64),
}

pub(crate) fn group_of(container: Option<&Container>, cgroup_id: Option<u64>) -> Option<Group> {
    if let Some(c) = container {
        return Some(Group::Container(c.id.clone()));
    }
    cgroup_id.filter(|&c| c > ROOT_CGROUP).map(Group::Cgroup)
}

#[derive(Clone, Copy, Debug, PartialEq, Eq, PartialOrd, Ord)]
pub(crate) enum Due {
    /// Conclude a shutdown: grace_exceeded and not_forwarded.
    Shutdown,
    /// Conclude a SIGKILL death not yet explained: signal_death.
    Death,
    /// Conclude a death by a SIGTERM that a namespace init forwarded after it got one from
    /// outside: signal_death, `info` once the init has exited too (an orderly stop).
    Forwarded,
    /// Drop the exited process.
    Forget,
}

#[derive(Clone, Debug)]
pub(crate) struct Agg {
    pub(crate) node: Node,
    pub(crate) pid: u32,
    pub(crate) comm: Comm,
    pub(crate) container: Option<Container>,
    pub(crate) signal: String,
    pub(crate) signo: u32,
    pub(crate) result: Outcome,
    pub(crate) count: u64,
    pub(crate) first: Time,
    pub(crate) last: Time,
    pub(crate) senders: Vec<Peer>,
    pub(crate) evidence: Vec<Evidence>,
}

#[derive(Clone, Debug, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub(crate) enum TimelineKey {
    /// A container on a node.
    Container(u32, String),
    Process(ProcKey),
}
