//! Joins records over time: a delivery to the generation it came from (latency, the sender's
//! host pid), a process exit to the signal that killed it, and the policy for which exits are
//! worth reporting.

use std::collections::VecDeque;

use foldhash::HashMap;

use crate::event::names::{default_action, DefaultAction};
use crate::event::record::{DeliverCause, KilledBy, Outcome, Record, Time};

/// Pending generations older than this are forgotten (signals consumed by sigwaitinfo or
/// signalfd are never "delivered" through get_signal).
const PENDING_TTL_NS: u64 = 120 * 1_000_000_000;
/// Bound on remembered pending signals and signalled processes.
const MAX_ENTRIES: usize = 65_536;
/// Real-time signals queue; keep at most this many generation times per (task, signal).
const MAX_QUEUE: usize = 256;

#[derive(Debug, Clone)]
struct LastSignal {
    pid: u32,
    comm: crate::event::record::Comm,
    signo: u32,
    signal: std::borrow::Cow<'static, str>,
    code: std::borrow::Cow<'static, str>,
    time: Time,
}

#[derive(Debug, Default)]
pub struct Correlator {
    /// (task, signal) -> times of generations not yet delivered. The task is the process for
    /// process-wide signals and the thread for thread-directed ones, as the kernel's shared and
    /// private pending queues are.
    /// Each generation: its time and its sender's pid.
    pending: HashMap<(u32, u32), VecDeque<(Time, u32)>>,
    /// Process -> the last signal sent to it.
    signalled: HashMap<u32, LastSignal>,
    /// Exits are reported for processes that died of a signal only when no filter restricts the
    /// sender (with one, only for processes seen receiving a matching signal).
    sender_only_filter: bool,
}

impl Correlator {
    pub fn new(sender_only_filter: bool) -> Correlator {
        Correlator {
            sender_only_filter,
            ..Correlator::default()
        }
    }

    /// Updates the state with `r`, fills in what the joins know, and says whether to report it.
    pub fn process(&mut self, r: &mut Record) -> bool {
        match r {
            Record::Generate(g) => {
                if let Some(pid) = g.target.pid {
                    if matches!(g.result, Outcome::Delivered | Outcome::LoseInfo) {
                        let key = (if g.group { pid } else { g.target.tid }, g.signo);
                        self.expire(g.time);
                        let q = self.pending.entry(key).or_default();
                        if q.len() >= MAX_QUEUE {
                            q.pop_front();
                        }
                        q.push_back((g.time, g.sender.pid));
                    }
                    // A SIGCHLD (or another signal whose default is to be ignored) tells nothing
                    // about why a process later exits.
                    let telling = !matches!(
                        default_action(g.signo),
                        DefaultAction::Ignore | DefaultAction::Continue
                    );
                    if telling {
                        self.signalled.insert(
                            pid,
                            LastSignal {
                                pid: g.sender.pid,
                                comm: g.sender.comm,
                                signo: g.signo,
                                signal: g.signal.clone(),
                                code: g.code.clone(),
                                time: g.time,
                            },
                        );
                    }
                }
                true
            }
            Record::Deliver(d) if d.cause == Some(DeliverCause::GroupExit) => {
                // Every thread of the ending process gets one: each is joined to the fatal
                // signal's generation, which stays for the process's exit to name its killer.
                if let Some(&(t, sender)) = d.group_exit_signo.and_then(|sig| {
                    self.pending
                        .get(&(d.pid.unwrap_or(d.tid), sig))
                        .and_then(|q| q.front())
                }) {
                    d.latency_ns = Some(d.time.since(t));
                    d.sender_pid = Some(sender);
                }
                true
            }
            Record::Deliver(d) => {
                let keys = [(d.tid, d.signo), (d.pid.unwrap_or(d.tid), d.signo)];
                for key in keys {
                    if let Some(q) = self.pending.get_mut(&key) {
                        if let Some((t, sender)) = q.pop_front() {
                            d.latency_ns = Some(d.time.since(t));
                            d.sender_pid = Some(sender);
                            if q.is_empty() {
                                self.pending.remove(&key);
                            }
                            break;
                        }
                    }
                }
                true
            }
            Record::Exit(x) => {
                let last = self.signalled.remove(&x.pid);
                self.pending.retain(|&(task, _), _| task != x.pid);
                if let (Some(signo), Some(last)) = (x.signo, &last) {
                    if last.signo == signo {
                        x.killed_by = Some(KilledBy {
                            pid: last.pid,
                            comm: last.comm,
                            signal: last.signal.clone(),
                            code: last.code.clone(),
                            time: last.time,
                        });
                    }
                }
                last.is_some() || (x.signo.is_some() && !self.sender_only_filter)
            }
            Record::SendFailed(_) | Record::Oom(_) | Record::Lost(_) => true,
        }
    }

    fn expire(&mut self, now: Time) {
        if self.pending.len() < MAX_ENTRIES && self.signalled.len() < MAX_ENTRIES {
            return;
        }
        let fresh = |t: &Time| now.since(*t) < PENDING_TTL_NS;
        self.pending.retain(|_, q| {
            q.retain(|(t, _)| fresh(t));
            !q.is_empty()
        });
        self.signalled.retain(|_, s| fresh(&s.time));
        // Still full of fresh entries: a flood; keep the map bounded regardless.
        if self.pending.len() >= MAX_ENTRIES {
            self.pending.clear();
        }
        if self.signalled.len() >= MAX_ENTRIES {
            self.signalled.clear();
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::event::record::*;
    use std::borrow::Cow;

    fn generate(t: u64, sig: u32, pid: u32, tid: u32, group: bool, result: Outcome) -> Record {
        Record::Generate(Generate {
            time: Time(t),
            host: Default::default(),
            boot_id: None,
            signal: crate::event::names::signal_name(sig),
            signo: sig,
            code: Cow::Borrowed("SI_USER"),
            si_code: 0,
            errno: 0,
            group,
            result,
            reason: None,
            sender: Sender {
                pid: 1000,
                tid: 1000,
                comm: Comm::new("kill"),
                uid: 0,
                cgroup_id: 1,
                container: None,
                unit: None,
                ..Sender::default()
            },
            target: Target {
                pid: Some(pid),
                tid,
                ..Target::default()
            },
        })
    }

    fn deliver(t: u64, sig: u32, pid: u32, tid: u32) -> Record {
        Record::Deliver(Deliver {
            time: Time(t),
            host: Default::default(),
            boot_id: None,
            signal: crate::event::names::signal_name(sig),
            signo: sig,
            code: Cow::Borrowed("SI_USER"),
            si_code: 0,
            pid: Some(pid),
            tid,
            comm: Comm::new("app"),
            ns_pid: None,
            cgroup_id: None,
            handler: Cow::Borrowed("0x1000"),
            sa_flags: 0,
            cause: Some(DeliverCause::Dequeued),
            group_exit_signal: None,
            group_exit_signo: None,
            sender_pid: None,
            claimed_sender_pid: None,
            latency_ns: None,
            container: None,
            unit: None,
        })
    }

    #[test]
    fn deliveries_carry_the_host_pid_of_the_generation_sender() {
        let mut c = Correlator::new(false);
        // generate(t, sig, pid, tid, group, result): the sender's pid is in the generate record.
        let mut g = generate(100, 10, 5, 5, true, Outcome::Delivered);
        if let Record::Generate(g) = &mut g {
            g.sender.pid = 4242;
        }
        c.process(&mut g);
        let mut d = deliver(150, 10, 5, 5);
        c.process(&mut d);
        let Record::Deliver(d) = d else { panic!() };
        assert_eq!(d.sender_pid, Some(4242));
    }

    #[test]
    fn group_exit_deliveries_join_the_fatal_signal_without_consuming_it() {
        let mut c = Correlator::new(false);
        let mut g = generate(100, 15, 5, 5, true, Outcome::Delivered);
        if let Record::Generate(g) = &mut g {
            g.sender.pid = 77;
        }
        c.process(&mut g);
        let group_exit = |t, tid| {
            let mut d = deliver(t, 9, 5, tid);
            if let Record::Deliver(d) = &mut d {
                d.cause = Some(DeliverCause::GroupExit);
                d.group_exit_signo = Some(15);
            }
            d
        };
        for (t, tid) in [(200, 5), (210, 6)] {
            let mut d = group_exit(t, tid);
            c.process(&mut d);
            let Record::Deliver(d) = d else { panic!() };
            assert_eq!((d.sender_pid, d.latency_ns), (Some(77), Some(t - 100)));
        }
        let mut x = exit(300, 5, 15);
        c.process(&mut x);
        let Record::Exit(x) = x else { panic!() };
        assert_eq!(x.killed_by.map(|k| k.pid), Some(77));
    }

    fn exit(t: u64, pid: u32, status: u32) -> Record {
        let sig = status & 0x7f;
        Record::Exit(Exit {
            time: Time(t),
            host: Default::default(),
            boot_id: None,
            pid,
            comm: Comm::new("app"),
            ns_pid: None,
            cgroup_id: None,
            exit_code: crate::event::decode::shell_exit_code(status),
            signal: (sig != 0).then(|| crate::event::names::signal_name(sig)),
            signo: (sig != 0).then_some(sig),
            core_dumped: false,
            status,
            killed_by: None,
            container: None,
            unit: None,
        })
    }

    fn latency(r: &Record) -> Option<u64> {
        match r {
            Record::Deliver(d) => d.latency_ns,
            _ => panic!("not a deliver"),
        }
    }

    #[test]
    fn deliveries_match_their_generation() {
        let mut c = Correlator::new(false);
        assert!(c.process(&mut generate(100, 10, 5, 5, true, Outcome::Delivered)));
        // A process-wide signal may be delivered in any thread of the process.
        let mut d = deliver(350, 10, 5, 6);
        c.process(&mut d);
        assert_eq!(latency(&d), Some(250));
        // Matched once only.
        let mut again = deliver(400, 10, 5, 6);
        c.process(&mut again);
        assert_eq!(latency(&again), None);
    }

    #[test]
    fn thread_directed_and_queued_signals() {
        let mut c = Correlator::new(false);
        c.process(&mut generate(10, 35, 5, 7, false, Outcome::Delivered));
        c.process(&mut generate(20, 35, 5, 7, false, Outcome::Delivered));
        // Not merged or ignored: no deliver is expected for these.
        c.process(&mut generate(30, 35, 5, 7, false, Outcome::Overflow));
        let mut d1 = deliver(100, 35, 5, 7);
        let mut d2 = deliver(110, 35, 5, 7);
        let mut d3 = deliver(120, 35, 5, 7);
        c.process(&mut d1);
        c.process(&mut d2);
        c.process(&mut d3);
        assert_eq!(
            (latency(&d1), latency(&d2), latency(&d3)),
            (Some(90), Some(90), None)
        );
    }

    #[test]
    fn exits_join_the_killing_signal() {
        let mut c = Correlator::new(false);
        c.process(&mut generate(10, 9, 5, 5, true, Outcome::Delivered));
        let mut x = exit(50, 5, 9);
        assert!(c.process(&mut x));
        let Record::Exit(x) = x else { unreachable!() };
        let k = x.killed_by.expect("joined");
        assert_eq!(
            (k.pid, k.signal.as_ref(), k.time),
            (1000, "SIGKILL", Time(10))
        );
        assert_eq!(x.exit_code, 137);
    }

    #[test]
    fn which_exits_are_reported() {
        let mut c = Correlator::new(false);
        // A clean exit of a process nobody signalled: not interesting.
        assert!(!c.process(&mut exit(1, 40, 0)));
        // A SIGCHLD does not make a later clean exit worth reporting.
        c.process(&mut generate(1, 17, 43, 43, true, Outcome::Delivered));
        assert!(!c.process(&mut exit(2, 43, 0)));
        // A death by signal: always.
        assert!(c.process(&mut exit(2, 41, 11)));
        // A clean exit after a signal (a handler that exits): reported.
        c.process(&mut generate(3, 15, 42, 42, true, Outcome::Delivered));
        let mut x = exit(4, 42, 0);
        assert!(c.process(&mut x));
        let Record::Exit(x) = x else { unreachable!() };
        assert!(x.killed_by.is_none(), "did not die of the signal");
        // The state is gone with the process: a reused pid starts clean.
        assert!(!c.process(&mut exit(5, 42, 0)));

        // With a sender filter, a death by signal counts only after a matching signal.
        let mut c = Correlator::new(true);
        assert!(!c.process(&mut exit(6, 50, 9)));
        c.process(&mut generate(7, 9, 51, 51, true, Outcome::Delivered));
        assert!(c.process(&mut exit(8, 51, 9)));
    }

    #[test]
    fn state_stays_bounded() {
        let mut c = Correlator::new(false);
        for pid in 0..(MAX_ENTRIES as u32 + 10) {
            c.process(&mut generate(
                pid as u64,
                10,
                pid + 1,
                pid + 1,
                true,
                Outcome::Delivered,
            ));
        }
        assert!(c.pending.len() <= MAX_ENTRIES);
        assert!(c.signalled.len() <= MAX_ENTRIES + 1);
    }
}
