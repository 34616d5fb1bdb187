//! Filters: what the kernel programs are told, and what is left to userspace.

use std::collections::BTreeMap;

use signal_trace_common::*;

use crate::config::{Filters, Side};
use crate::event::record::{Comm, DeliverCause, Record};

/// Everything the programs need to filter in the kernel: the global config and the contents of
/// the PID_FILTER and COMM_FILTER maps.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct KernelFilter {
    pub config: FilterConfig,
    pub pids: BTreeMap<u32, u32>,
    pub comms: BTreeMap<[u8; 16], u32>,
}

/// Translates validated filters for the kernel. `wakeup_bytes` is the ring buffer backlog that
/// wakes the reader.
pub fn kernel_filter(f: &Filters, wakeup_bytes: u64) -> KernelFilter {
    let mut k = KernelFilter::default();
    let mut flags = 0;
    let mut add = |set: &std::collections::BTreeSet<u32>, flag: u32, side: u32| {
        if !set.is_empty() {
            flags |= flag;
            for &p in set {
                *k.pids.entry(p).or_insert(0) |= side;
            }
        }
    };
    add(&f.pids, FILTER_PID_EITHER, SIDE_EITHER);
    add(&f.target_pids, FILTER_PID_TARGET, SIDE_TARGET);
    add(&f.sender_pids, FILTER_PID_SENDER, SIDE_SENDER);
    if !f.comms.is_empty() {
        flags |= FILTER_COMM;
        for c in &f.comms {
            k.comms.insert(Comm::new(c).0, SIDE_EITHER);
        }
    }
    if !f.signals.is_empty() {
        flags |= FILTER_SIGNAL;
    }
    if !f.containers.is_empty() {
        flags |= side_bits(f.container_side).1;
    }
    if !f.results.is_empty() {
        flags |= FILTER_RESULT;
    }
    k.config = FilterConfig {
        flags,
        result_mask: f.result_mask(),
        signal_mask: f.signal_mask(),
        wakeup_bytes,
        syscall_nrs: SIGNAL_SYSCALL_NRS,
    };
    k
}

/// This architecture's numbers of the signal syscalls, in `SYSCALL_*` order.
pub const SIGNAL_SYSCALL_NRS: [u32; 6] = [
    libc::SYS_kill as u32,
    libc::SYS_tkill as u32,
    libc::SYS_tgkill as u32,
    libc::SYS_rt_sigqueueinfo as u32,
    libc::SYS_rt_tgsigqueueinfo as u32,
    libc::SYS_pidfd_send_signal as u32,
];

/// The CGROUP_FILTER value and the FilterConfig flag for a container filter's side.
pub fn side_bits(side: Side) -> (u32, u32) {
    match side {
        Side::Either => (SIDE_EITHER, FILTER_CGROUP_EITHER),
        Side::Target => (SIDE_TARGET, FILTER_CGROUP_TARGET),
        Side::Sender => (SIDE_SENDER, FILTER_CGROUP_SENDER),
    }
}

/// The part of the filters the kernel cannot apply: the comm filter on failed sends, whose
/// target is known only by its pid.
pub fn userspace_keeps(f: &Filters, r: &Record) -> bool {
    match r {
        Record::SendFailed(s) if !f.comms.is_empty() => {
            f.comms.iter().any(|c| Comm::new(c) == s.sender.comm)
        }
        _ => true,
    }
}

/// Whether a recorded record passes the filters — for a replayed stream, where the kernel did
/// not filter. Mirrors the kernel's rules: pid and comm filters look at either side, the
/// target side, or the sender side; the signal and result filters at the signal.
pub fn record_matches(f: &Filters, r: &Record) -> bool {
    let any = |set: &std::collections::BTreeSet<u32>, pids: &[Option<u32>]| {
        set.is_empty() || pids.iter().flatten().any(|p| set.contains(p))
    };
    let comm_ok = |comms: &[Option<&Comm>]| {
        f.comms.is_empty()
            || comms
                .iter()
                .flatten()
                .any(|c| f.comms.iter().any(|n| Comm::new(n) == **c))
    };
    let signal_ok =
        |signo: Option<u32>| f.signals.is_empty() || signo.is_some_and(|s| f.signals.contains(&s));
    match r {
        Record::Generate(g) => {
            let target = [g.target.pid, Some(g.target.tid)];
            let sender = [Some(g.sender.pid), Some(g.sender.tid)];
            let both = [target[0], target[1], sender[0], sender[1]];
            any(&f.pids, &both)
                && any(&f.target_pids, &target)
                && any(&f.sender_pids, &sender)
                && signal_ok(Some(g.signo))
                && (f.results.is_empty() || f.results.contains(&(g.result as u32)))
                && comm_ok(&[Some(&g.target.comm), Some(&g.sender.comm)])
        }
        Record::Deliver(d) => {
            let target = [d.pid, Some(d.tid)];
            let both = [d.pid, Some(d.tid), d.sender_pid];
            any(&f.pids, &both)
                && any(&f.target_pids, &target)
                && any(&f.sender_pids, &[d.sender_pid])
                // A group-exit delivery reports SIGKILL whatever ended the group: it matches the
                // signal that did (none for exit_group() or an exec), as the kernel filter does.
                && signal_ok(match d.cause {
                    Some(DeliverCause::GroupExit) => d.group_exit_signo,
                    _ => Some(d.signo),
                })
                && comm_ok(&[Some(&d.comm)])
        }
        Record::Exit(x) => {
            any(&f.pids, &[Some(x.pid)])
                && any(&f.target_pids, &[Some(x.pid)])
                && (x.signo.is_none() || signal_ok(x.signo))
                && comm_ok(&[Some(&x.comm)])
        }
        Record::SendFailed(s) => {
            let target = [s.target_pid.and_then(|p| u32::try_from(p).ok())];
            let sender = [Some(s.sender.pid), Some(s.sender.tid)];
            any(&f.pids, &[target[0], sender[0], sender[1]])
                && any(&f.target_pids, &target)
                && any(&f.sender_pids, &sender)
                && signal_ok(u32::try_from(s.signo).ok())
                && comm_ok(&[Some(&s.sender.comm)])
        }
        Record::Oom(o) => {
            any(&f.pids, &[Some(o.pid), Some(o.trigger.pid)])
                && any(&f.target_pids, &[Some(o.pid)])
                && any(&f.sender_pids, &[Some(o.trigger.pid)])
                && signal_ok(Some(9))
                && comm_ok(&[o.comm.as_ref(), Some(&o.trigger.comm)])
        }
        Record::Lost(_) => true,
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::collections::BTreeSet;

    fn replayed(line: &str) -> Record {
        serde_json::from_str(line).expect("fixture record")
    }

    #[test]
    fn replayed_records_are_filtered_like_the_kernel_does() {
        let g = replayed(
            r#"{"event":"generate","time":"2026-11-26T13:30:26.261043450Z","signal":"SIGTERM","signo":15,"code":"SI_USER","si_code":0,"errno":0,"group":true,"result":"ignored","reason":"pid_namespace_init","sender":{"pid":8255,"tid":8255,"comm":"bash","uid":0,"cgroup_id":1},"target":{"pid":8262,"tid":8262,"comm":"sleep","ns_pid":1,"cgroup_id":1,"disposition":"default","handler":"default","blocked":false}}"#,
        );
        let yes = |f: Filters| assert!(record_matches(&f, &g), "{f:?}");
        let no = |f: Filters| assert!(!record_matches(&f, &g), "{f:?}");
        yes(Filters::default());
        yes(Filters {
            pids: BTreeSet::from([8255]),
            ..Filters::default()
        });
        yes(Filters {
            pids: BTreeSet::from([8262]),
            ..Filters::default()
        });
        no(Filters {
            pids: BTreeSet::from([1]),
            ..Filters::default()
        });
        yes(Filters {
            target_pids: BTreeSet::from([8262]),
            ..Filters::default()
        });
        no(Filters {
            target_pids: BTreeSet::from([8255]),
            ..Filters::default()
        });
        yes(Filters {
            sender_pids: BTreeSet::from([8255]),
            ..Filters::default()
        });
        yes(Filters {
            signals: BTreeSet::from([15, 9]),
            ..Filters::default()
        });
        no(Filters {
            signals: BTreeSet::from([9]),
            ..Filters::default()
        });
        yes(Filters {
            results: BTreeSet::from([1]),
            ..Filters::default()
        });
        no(Filters {
            results: BTreeSet::from([0]),
            ..Filters::default()
        });
        yes(Filters {
            comms: BTreeSet::from(["sleep".to_string()]),
            ..Filters::default()
        });
        no(Filters {
            comms: BTreeSet::from(["nginx".to_string()]),
            ..Filters::default()
        });
        let x = replayed(
            r#"{"event":"exit","time":"2026-11-26T13:30:26.363151021Z","pid":8262,"comm":"sleep","ns_pid":1,"cgroup_id":1,"exit_code":137,"signal":"SIGKILL","signo":9,"core_dumped":false,"status":9,"killed_by":null}"#,
        );
        assert!(record_matches(
            &Filters {
                pids: BTreeSet::from([8262]),
                ..Filters::default()
            },
            &x
        ));
        assert!(!record_matches(
            &Filters {
                signals: BTreeSet::from([15]),
                ..Filters::default()
            },
            &x
        ));
    }

    #[test]
    fn no_filters_means_nothing_to_check() {
        let k = kernel_filter(&Filters::default(), 4096);
        assert_eq!(k.config.flags, 0);
        assert!(k.pids.is_empty() && k.comms.is_empty());
        assert_eq!(k.config.wakeup_bytes, 4096);
    }

    #[test]
    fn pid_sides_merge_per_pid() {
        let f = Filters {
            pids: BTreeSet::from([10]),
            target_pids: BTreeSet::from([10, 11]),
            sender_pids: BTreeSet::from([12]),
            signals: BTreeSet::from([15]),
            results: BTreeSet::from([1, 2]),
            comms: BTreeSet::from(["sleep".to_string()]),
            containers: vec![crate::workload::containers::Selector::Pod("web-0".into())],
            container_side: Side::Target,
        };
        let k = kernel_filter(&f, 0);
        assert_eq!(
            k.config.flags,
            FILTER_PID_EITHER
                | FILTER_PID_TARGET
                | FILTER_PID_SENDER
                | FILTER_COMM
                | FILTER_SIGNAL
                | FILTER_RESULT
                | FILTER_CGROUP_TARGET
        );
        assert_eq!(k.pids[&10], SIDE_EITHER | SIDE_TARGET);
        assert_eq!(k.pids[&11], SIDE_TARGET);
        assert_eq!(k.pids[&12], SIDE_SENDER);
        assert_eq!(k.config.signal_mask, 1 << 14);
        assert_eq!(k.config.result_mask, 0b110);
        assert_eq!(k.comms[&Comm::new("sleep").0], SIDE_EITHER);
    }
}
