//! Filters: what the kernel programs are told, and what is left to userspace.

use std::collections::BTreeMap;

use signal_trace_common::*;

use crate::config::Filters;
use crate::record::{Comm, Record};

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
    if !f.results.is_empty() {
        flags |= FILTER_RESULT;
    }
    k.config = FilterConfig {
        flags,
        result_mask: f.result_mask(),
        signal_mask: f.signal_mask(),
        wakeup_bytes,
    };
    k
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

#[cfg(test)]
mod tests {
    use super::*;
    use std::collections::BTreeSet;

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
        );
        assert_eq!(k.pids[&10], SIDE_EITHER | SIDE_TARGET);
        assert_eq!(k.pids[&11], SIDE_TARGET);
        assert_eq!(k.pids[&12], SIDE_SENDER);
        assert_eq!(k.config.signal_mask, 1 << 14);
        assert_eq!(k.config.result_mask, 0b110);
        assert_eq!(k.comms[&Comm::new("sleep").0], SIDE_EITHER);
    }
}
