//! The engine: per-process state built from the stream, and the moments a finding is due.

use super::*;

/// The diagnosis engine. Feed it records in time order. Processes are keyed by node (the
/// records' `host` and `boot_id`) and pid, so equal pids of two nodes never meet.
#[derive(Debug, Default)]
pub struct Engine {
    /// Node -> the engine's number for it.
    pub(crate) nodes: HashMap<Node, u32>,
    /// Number -> node.
    pub(crate) node_list: Vec<Node>,
    /// The node of the last record, and its number.
    pub(crate) last_node: Option<(u32, Node)>,
    pub(crate) procs: HashMap<ProcKey, Proc>,
    /// Exited processes awaiting their conclusions, by sequence number.
    pub(crate) dead: BTreeMap<u64, Proc>,
    pub(crate) next_seq: u64,
    /// (when, what, which dead process).
    pub(crate) dues: BTreeSet<(Time, Due, u64)>,
    /// (target, signal number, result) -> merged or dropped signals.
    pub(crate) aggs: HashMap<(ProcKey, u32, Outcome), Agg>,
    pub(crate) timelines: HashMap<TimelineKey, Timeline>,
    /// Timeline keys, oldest first, for eviction.
    pub(crate) timeline_order: VecDeque<TimelineKey>,
    /// Processes a namespace init's exit took down: victim -> init's timeline key.
    pub(crate) zapped: HashMap<ProcKey, TimelineKey>,
    pub(crate) now: Time,
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
        let node = match r {
            Record::Generate(g) => (&g.host, &g.boot_id),
            Record::Deliver(d) => (&d.host, &d.boot_id),
            Record::Exit(x) => (&x.host, &x.boot_id),
            Record::Oom(o) => (&o.host, &o.boot_id),
            Record::Lost(l) => (&l.host, &l.boot_id),
            Record::SendFailed(_) => return out,
        };
        let nid = self.node_id(node.0, node.1);
        match r {
            Record::Generate(g) => self.generate(nid, g, &mut out),
            Record::Deliver(d) => self.deliver(nid, d),
            Record::Exit(x) => self.exit(nid, x, &mut out),
            Record::Oom(o) => self.oom(nid, o),
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
        let mut keys: Vec<ProcKey> = self
            .procs
            .iter()
            .filter(|(_, p)| p.oom.is_some() && !p.explained)
            .map(|(&k, _)| k)
            .collect();
        keys.sort_unstable();
        for k in keys {
            if let Some(p) = self.procs.get_mut(&k) {
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

    /// The engine's number for a node. Past [`MAX_NODES`] distinct nodes (only a stream of
    /// made-up host names gets there), and for names too long to be a host's, they share one
    /// number rather than grow the table.
    pub(crate) fn node_id(&mut self, host: &Label, boot_id: &Option<Label>) -> u32 {
        // Records come in runs from one node: compare with the last one before hashing.
        if let Some(&(nid, ref last)) = self.last_node.as_ref() {
            if last.host == *host && last.boot_id == *boot_id {
                return nid;
            }
        }
        let nid = self.intern_node(host, boot_id);
        self.last_node = Some((nid, self.node_of(nid)));
        nid
    }

    fn intern_node(&mut self, host: &Label, boot_id: &Option<Label>) -> u32 {
        let node = Node {
            host: host.clone(),
            boot_id: boot_id.clone(),
        };
        if let Some(&n) = self.nodes.get(&node) {
            return n;
        }
        let n = self.node_list.len() as u32;
        // Host names are at most 253 bytes (DNS, Kubernetes node names) and boot ids 36: a
        // longer one is not a node's, and is not kept.
        let plausible =
            host.as_str().len() <= 253 && boot_id.as_ref().is_none_or(|b| b.as_str().len() <= 64);
        if self.node_list.len() >= MAX_NODES || !plausible {
            return MAX_NODES as u32;
        }
        self.nodes.insert(node.clone(), n);
        self.node_list.push(node);
        n
    }

    /// The node of a number (the shared one past [`MAX_NODES`] has no name).
    pub(crate) fn node_of(&self, nid: u32) -> Node {
        self.node_list
            .get(nid as usize)
            .cloned()
            .unwrap_or_default()
    }

    pub(crate) fn proc_mut(&mut self, nid: u32, pid: u32, time: Time) -> &mut Proc {
        if !self.procs.contains_key(&(nid, pid)) {
            let p = Proc::new(nid, &self.node_of(nid), pid);
            self.procs.insert((nid, pid), p);
        }
        let p = self.procs.get_mut(&(nid, pid)).expect("inserted above");
        p.last_seen = p.last_seen.max(time);
        p
    }

    pub(crate) fn generate(&mut self, nid: u32, g: &Generate, out: &mut Vec<Finding>) {
        let Some(pid) = g.target.pid else {
            // Without BTF only the thread is known: nothing to join on.
            return;
        };
        let action = default_action(g.signo);
        if matches!(action, DefaultAction::Ignore | DefaultAction::Continue) {
            return;
        }
        let shutdown = is_shutdown_signal(g.signo);
        // Who decided matters for the signals that stop a workload.
        let decider = if shutdown || g.signo == SIGKILL {
            decider(g)
        } else {
            Decider::Unknown
        };
        let mut ev = evidence_generate(g);
        if let Some(t) = decider.evidence_text() {
            ev.text.push_str(&t);
        }
        if matches!(g.result, Outcome::AlreadyPending | Outcome::Overflow) {
            self.coalesce(g, (nid, pid), &ev);
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
            sender_unit: g.sender.unit.clone(),
            decider,
            result: g.result,
            reason: g.reason,
            disposition: g.target.disposition,
            blocked: g.target.blocked.unwrap_or(false),
            ev,
        };
        let p = self.proc_mut(nid, pid, g.time);
        p.observe(
            g.target.comm,
            g.target.ns_pid,
            g.target.cgroup_id,
            &g.target.container,
            &g.target.unit,
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

    pub(crate) fn deliver(&mut self, nid: u32, d: &Deliver) {
        let Some(pid) = d.pid else { return };
        if !self.procs.contains_key(&(nid, pid)) && d.container.is_none() {
            return;
        }
        let p = self.proc_mut(nid, pid, d.time);
        p.observe(d.comm, d.ns_pid, d.cgroup_id, &d.container, &d.unit);
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

    pub(crate) fn oom(&mut self, nid: u32, o: &Oom) {
        let ev = Evidence {
            time: o.time,
            event: "oom".into(),
            text: format!(
                "the OOM killer chose {} (pid {}) while {} (pid {}) was allocating",
                o.comm
                    .map(|c| c.as_str().into_owned())
                    .unwrap_or_else(|| "a process".into()),
                o.pid,
                o.trigger.comm.as_str(),
                o.trigger.pid
            ),
        };
        let p = self.proc_mut(nid, o.pid, o.time);
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

    pub(crate) fn exit(&mut self, nid: u32, x: &Exit, out: &mut Vec<Finding>) {
        let mut p = match self.procs.remove(&(nid, x.pid)) {
            Some(p) => p,
            None => Proc::new(nid, &self.node_of(nid), x.pid),
        };
        p.observe(x.comm, x.ns_pid, x.cgroup_id, &x.container, &x.unit);
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
        let mut keys: Vec<_> = self
            .aggs
            .keys()
            .filter(|k| k.0 == (nid, x.pid))
            .copied()
            .collect();
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
                if self.forwarding_init(&p, signo).is_some() {
                    // Whether the stop was orderly shows when the init exits too.
                    self.dues
                        .insert((later(x.time, SETTLE_NS), Due::Forwarded, seq));
                } else if let Some(f) = death_finding(&p, signo, None) {
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
    pub(crate) fn flush(&mut self, now: Time, out: &mut Vec<Finding>) {
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

    pub(crate) fn conclude(&mut self, what: Due, seq: u64, out: &mut Vec<Finding>) {
        match what {
            Due::Shutdown => self.conclude_shutdown(seq, out),
            Due::Death => {
                let Some(p) = self.dead.get_mut(&seq) else {
                    return;
                };
                if !p.explained {
                    p.explained = true;
                    let p = p.clone();
                    let init = p.zapped_by().and_then(|i| self.find_proc((p.nid, i)));
                    if let Some(f) = kill_death_finding(&p, init.as_ref()) {
                        out.push(f);
                    }
                }
            }
            Due::Forwarded => {
                let Some(p) = self.dead.get(&seq).cloned() else {
                    return;
                };
                let Some(signo) = p.exit.as_ref().and_then(|x| x.signo) else {
                    return;
                };
                let init = self
                    .forwarding_init(&p, signo)
                    .and_then(|i| self.find_proc((p.nid, i)))
                    .filter(|i| i.exit.is_some());
                if let Some(f) = death_finding(&p, signo, init.as_ref()) {
                    out.push(f);
                }
            }
            Due::Forget => {
                self.dead.remove(&seq);
            }
        }
    }

    /// The namespace init that forwarded the SIGTERM `p` died of, after it got a SIGTERM from
    /// another process itself (an init such as tini or dumb-init passing a stop on).
    pub(crate) fn forwarding_init(&self, p: &Proc, signo: u32) -> Option<u32> {
        let s = p.fatal.as_ref().filter(|s| s.signo == signo)?;
        if signo != SIGTERM || s.sender.pid == p.pid || s.si_code > 0 {
            return None;
        }
        let init = self.find_proc((p.nid, s.sender.pid))?;
        let t = init.term.as_ref()?;
        let from_outside = t.signo == SIGTERM && t.sender.pid != init.pid && t.time <= s.time;
        (init.is_ns_init() && from_outside).then_some(init.pid)
    }

    /// Looks a process up among the living, then the most recently exited.
    pub(crate) fn find_proc(&self, key: ProcKey) -> Option<Proc> {
        self.procs
            .get(&key)
            .or_else(|| self.dead.values().rev().find(|p| p.key() == key))
            .cloned()
    }

    /// Exited processes of the same container or namespace as `p`, killed by SIGKILL at or
    /// after `since`, in exit order. Returns their sequence numbers.
    pub(crate) fn killed_members(&self, p: &Proc, since: Time) -> Vec<u64> {
        let group = p.group();
        let mut v: Vec<(Time, u32, u64)> = self
            .dead
            .iter()
            .filter(|(_, q)| q.nid == p.nid && q.pid != p.pid && q.died_by(SIGKILL))
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
    pub(crate) fn mark_explained(&mut self, seqs: &[u64]) -> Vec<Proc> {
        let mut v = Vec::with_capacity(seqs.len());
        for s in seqs {
            if let Some(q) = self.dead.get_mut(s) {
                q.explained = true;
                v.push(q.clone());
            }
        }
        v
    }

    pub(crate) fn conclude_shutdown(&mut self, seq: u64, out: &mut Vec<Finding>) {
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

    pub(crate) fn coalesce(&mut self, g: &Generate, key: ProcKey, ev: &Evidence) {
        if self.aggs.len() >= MAX_AGGS && !self.aggs.contains_key(&(key, g.signo, g.result)) {
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
        let node = Node {
            host: g.host.clone(),
            boot_id: g.boot_id.clone(),
        };
        let a = self
            .aggs
            .entry((key, g.signo, g.result))
            .or_insert_with(|| Agg {
                node,
                pid: key.1,
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
    pub(crate) fn bound(&mut self, out: &mut Vec<Finding>) {
        if self.procs.len() > MAX_PROCS {
            let mut by_age: Vec<(Time, ProcKey)> =
                self.procs.iter().map(|(&k, p)| (p.last_seen, k)).collect();
            by_age.sort_unstable();
            for (_, k) in by_age.into_iter().take(MAX_PROCS / 8) {
                self.procs.remove(&k);
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
    pub(crate) fn timeline_key_of(&self, p: &Proc) -> Option<TimelineKey> {
        if let Some(c) = &p.container {
            let k = TimelineKey::Container(p.nid, c.id.clone());
            if self.timelines.contains_key(&k) {
                return Some(k);
            }
        }
        if let Some(k) = self.zapped.get(&p.key()) {
            if self.timelines.contains_key(k) {
                return Some(k.clone());
            }
        }
        let k = TimelineKey::Process(p.key());
        self.timelines.contains_key(&k).then_some(k)
    }

    pub(crate) fn timeline_signal(&mut self, p: &Proc, g: &Generate, sig: &Sig) {
        let story = is_shutdown_signal(g.signo) || g.signo == SIGKILL;
        // A signal from a process of the same container, or from the namespace init, to a
        // member of a story already told is a forwarding (or the teardown).
        if g.signo == SIGKILL && g.si_code == SI_KERNEL && g.sender.pid != p.pid {
            if let Some(init) = self.find_proc((p.nid, g.sender.pid)) {
                if let Some(k) = self.timeline_key_of(&init) {
                    self.zapped.insert(p.key(), k);
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
                    Some(c) => TimelineKey::Container(p.nid, c.id.clone()),
                    None => TimelineKey::Process(p.key()),
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
                        host: p.node.host.clone(),
                        boot_id: p.node.boot_id.clone(),
                        process: p.process_ref(),
                        container: p.container.clone(),
                        unit: p.unit.as_deref().map(str::to_owned),
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
            .get(&(p.nid, g.sender.pid))
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

    pub(crate) fn add_step(&mut self, p: &Proc, time: Time, kind: StepKind, text: String) {
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
        if t.unit.is_none() {
            t.unit = p.unit.as_deref().map(str::to_owned);
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

/// `ns` nanoseconds after `t`.
pub(crate) fn later(t: Time, ns: u64) -> Time {
    Time(t.0.saturating_add(ns))
}

/// Signals orchestrators and terminals use to ask a process to stop.
pub(crate) fn is_shutdown_signal(signo: u32) -> bool {
    matches!(signo, SIGTERM | SIGINT | SIGHUP | SIGQUIT)
}
