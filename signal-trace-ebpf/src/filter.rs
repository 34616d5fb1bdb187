//! In-kernel filters: the signal mask and the side-aware pid, cgroup (with ancestry) and comm
//! filters every program applies before it reserves ring space.

use signal_trace_common::*;

use crate::maps::{CGROUP_FILTER, COMM_FILTER, OFFSETS, PID_FILTER};
use crate::mem::read;

#[inline(always)]
pub(crate) fn pid_sides(tgid: u32, tid: u32) -> u32 {
    let mut sides = unsafe { PID_FILTER.get(&tgid) }.copied().unwrap_or(0);
    if tid != tgid && tid != 0 {
        sides |= unsafe { PID_FILTER.get(&tid) }.copied().unwrap_or(0);
    }
    sides
}

#[inline(always)]
pub(crate) fn cgroup_sides(id: u64) -> u32 {
    if id == 0 {
        return 0;
    }
    unsafe { CGROUP_FILTER.get(&id) }.copied().unwrap_or(0)
}

/// How deep a selected cgroup may sit above a task's own: a pod's cgroup is two or three
/// levels above its containers' processes (kubepods/<qos>/pod<uid>/<container>/...).
pub(crate) const CGROUP_DEPTH: u32 = 8;

/// The filter sides of cgroup `id` (whose kernfs node is `kn`) and its ancestors
/// (kernfs_node.parent chain), so that a selected pod or container cgroup also selects cgroups
/// created below it later. Without its node (`kn == 0`: no BTF) only the exact id is known.
#[inline(always)]
pub(crate) fn cgroup_chain_sides(o: &KernelOffsets, kn: u64, id: u64) -> u32 {
    let mut sides = cgroup_sides(id);
    let mut node = if kn == 0 {
        0
    } else {
        read(kn, o.kernfs_node_parent)
    };
    for _ in 1..CGROUP_DEPTH {
        if node == 0 {
            break;
        }
        sides |= cgroup_sides(read::<u64>(node, o.kernfs_node_id));
        node = read(node, o.kernfs_node_parent);
    }
    sides
}

#[inline(always)]
pub(crate) fn comm_sides(comm: &[u8; COMM_LEN]) -> u32 {
    unsafe { COMM_FILTER.get(comm) }.copied().unwrap_or(0)
}

/// Applies one kind of side-aware filter: `t` and `s` are the `SIDE_*` bits the target and the
/// sender hold in the filter's map.
#[inline(always)]
pub(crate) fn sides_pass(
    flags: u32,
    either: u32,
    target: u32,
    sender: u32,
    t: u32,
    s: u32,
) -> bool {
    if flags & either != 0 && (t | s) & SIDE_EITHER == 0 {
        return false;
    }
    if flags & target != 0 && t & SIDE_TARGET == 0 {
        return false;
    }
    if flags & sender != 0 && s & SIDE_SENDER == 0 {
        return false;
    }
    true
}

#[inline(always)]
pub(crate) fn signal_passes(cfg: &FilterConfig, sig: i32) -> bool {
    if cfg.flags & FILTER_SIGNAL == 0 {
        return true;
    }
    (1..=64).contains(&sig) && (cfg.signal_mask >> (sig - 1)) & 1 == 1
}

pub(crate) const PID_FILTERS: u32 = FILTER_PID_EITHER | FILTER_PID_TARGET | FILTER_PID_SENDER;
pub(crate) const CGROUP_FILTERS: u32 =
    FILTER_CGROUP_EITHER | FILTER_CGROUP_TARGET | FILTER_CGROUP_SENDER;
/// The filters that look at either side's identity (pid, cgroup, comm).
pub(crate) const SIDE_FILTERS: u32 = PID_FILTERS | CGROUP_FILTERS | FILTER_COMM;

/// The side filters (pid, cgroup, comm) for one signal between `sender` and `target`;
/// `sender_kn` and `target_kn` are the kernfs nodes of their cgroups where known (0 if not),
/// for the cgroup ancestry.
#[inline(always)]
pub(crate) fn sides_filter(
    cfg: &FilterConfig,
    sender: &Task,
    target: &Task,
    sender_kn: u64,
    target_kn: u64,
) -> bool {
    if cfg.flags & PID_FILTERS != 0 {
        let t = pid_sides(target.tgid, target.tid);
        let s = pid_sides(sender.tgid, sender.tid);
        if !sides_pass(
            cfg.flags,
            FILTER_PID_EITHER,
            FILTER_PID_TARGET,
            FILTER_PID_SENDER,
            t,
            s,
        ) {
            return false;
        }
    }
    if cfg.flags & CGROUP_FILTERS != 0 {
        let o = OFFSETS.load();
        let t = cgroup_chain_sides(&o, target_kn, target.cgroup_id);
        let s = cgroup_chain_sides(&o, sender_kn, sender.cgroup_id);
        if !sides_pass(
            cfg.flags,
            FILTER_CGROUP_EITHER,
            FILTER_CGROUP_TARGET,
            FILTER_CGROUP_SENDER,
            t,
            s,
        ) {
            return false;
        }
    }
    if cfg.flags & FILTER_COMM != 0 && (comm_sides(&target.comm) | comm_sides(&sender.comm)) == 0 {
        return false;
    }
    true
}
