//! Task identities: who the current task is (sender or receiver), who a target task is
//! (thread, process, namespace pid, cgroup, comm), and the task's cgroup node for the filters.

use aya_ebpf::helpers::{
    bpf_get_current_pid_tgid, bpf_get_current_uid_gid,
    generated::{bpf_get_current_cgroup_id, bpf_get_current_comm, bpf_get_current_task},
};
use signal_trace_common::*;

use crate::filter::CGROUP_FILTERS;
use crate::mem::{read, read_comm, Mem};

/// An unknown task, as a constant (zeroed with word stores, not a byte-wise memset).
pub(crate) const NO_TASK: Task = Task {
    tgid: 0,
    tid: 0,
    ns_pid: 0,
    uid: 0,
    cgroup_id: 0,
    comm: [0; COMM_LEN],
};

/// The kernfs node of a task's cgroup v2 cgroup (task->cgroups->dfl_cgrp->kn).
#[inline(always)]
pub(crate) fn task_cgroup_kn(o: &KernelOffsets, task: u64) -> u64 {
    if o.valid == 0 {
        return 0;
    }
    let cgroups: u64 = read(task, o.task_cgroups);
    let cgrp: u64 = read(cgroups, o.css_set_dfl_cgrp);
    read(cgrp, o.cgroup_kn)
}

/// The kernfs node of the current task's cgroup when a cgroup filter needs it, else 0 (for the
/// programs that identify the current task through its helpers).
#[inline(always)]
pub(crate) fn current_cgroup_kn(cfg: &FilterConfig, o: &KernelOffsets) -> u64 {
    if cfg.flags & CGROUP_FILTERS == 0 {
        return 0;
    }
    task_cgroup_kn(o, unsafe { bpf_get_current_task() })
}

/// The current task as a sender, through the helpers made for it (any program type).
#[inline(always)]
pub(crate) fn current_task() -> Task {
    let pid_tgid = bpf_get_current_pid_tgid();
    let words: [u64; 2] = [0; 2];
    let mut t = Task {
        tgid: (pid_tgid >> 32) as u32,
        tid: pid_tgid as u32,
        ns_pid: 0,
        uid: bpf_get_current_uid_gid() as u32,
        cgroup_id: unsafe { bpf_get_current_cgroup_id() },
        // SAFETY: as in read_comm.
        comm: unsafe { core::mem::transmute::<[u64; 2], [u8; COMM_LEN]>(words) },
    };
    // bpf_get_current_comm() writes at most 16 bytes, NUL-terminated, into the buffer.
    unsafe {
        bpf_get_current_comm(
            t.comm.as_mut_ptr() as *mut core::ffi::c_void,
            COMM_LEN as u32,
        )
    };
    t
}

/// The current task as a sender: with typed loads, read from the task_struct that
/// bpf_get_current_task_btf() returns (one helper call in place of four); otherwise through
/// the dedicated helpers. Reads what those helpers read: task.{pid,tgid,comm},
/// task->cred->uid (current_uid()), task->cgroups->dfl_cgrp->kn->id (the cgroup v2 id).
/// Also returns the cgroup's kernfs node where known (with typed loads, or when `task` is
/// given), for the cgroup filters.
#[inline(always)]
pub(crate) fn current_identity<M: Mem>(o: &KernelOffsets, task: u64) -> (Task, u64) {
    if !M::TYPED {
        let kn = if task == 0 {
            0
        } else {
            task_cgroup_kn(o, task)
        };
        return (current_task(), kn);
    }
    let cred: u64 = M::read(task, o.task_cred);
    let cgroups: u64 = M::read(task, o.task_cgroups);
    let cgrp: u64 = M::read(cgroups, o.css_set_dfl_cgrp);
    let kn: u64 = M::read(cgrp, o.cgroup_kn);
    let t = Task {
        tgid: M::read(task, o.task_tgid),
        tid: M::read(task, o.task_pid),
        ns_pid: 0,
        uid: M::read(cred, o.cred_uid),
        cgroup_id: M::read(kn, o.kernfs_node_id),
        comm: read_comm::<M>(task, o.task_comm),
    };
    (t, kn)
}

/// Identity of a task read through BTF offsets: the thread, its process, the process id in its
/// own PID namespace, the cgroup v2 id and the process leader's comm.
/// Relies on: task_struct.{tgid,pid,group_leader,thread_pid,cgroups,comm} (include/linux/sched.h),
/// struct pid.{level,numbers[]} (include/linux/pid.h), css_set.dfl_cgrp, cgroup.kn, kernfs_node.id.
#[inline(always)]
pub(crate) fn task_identity<M: Mem>(o: &KernelOffsets, task: u64) -> (Task, u64) {
    // pid and tgid are adjacent in task_struct (pid_t pid; pid_t tgid;): one read for both.
    let (tid, tgid) = if !M::TYPED && o.task_tgid == o.task_pid + 4 {
        let both: u64 = M::read(task, o.task_pid);
        (both as u32, (both >> 32) as u32)
    } else {
        (
            M::read::<u32>(task, o.task_pid),
            M::read::<u32>(task, o.task_tgid),
        )
    };
    let leader: u64 = M::read(task, o.task_group_leader);
    let pid: u64 = M::read(leader, o.task_thread_pid);
    let level: u32 = M::read(pid, o.pid_level);
    // In the initial namespace (level 0) the namespace pid is the leader's own pid, the tgid;
    // deeper levels index pid->numbers[] by a variable, which only the helper can read.
    let ns_pid = if level == 0 {
        tgid
    } else if level < 32 {
        read::<u32>(pid, o.pid_numbers + level * o.upid_size + o.upid_nr)
    } else {
        0
    };
    let cgroups: u64 = M::read(task, o.task_cgroups);
    let cgrp: u64 = M::read(cgroups, o.css_set_dfl_cgrp);
    let kn: u64 = M::read(cgrp, o.cgroup_kn);
    let t = Task {
        tgid,
        tid,
        ns_pid,
        uid: 0,
        cgroup_id: M::read(kn, o.kernfs_node_id),
        comm: read_comm::<M>(leader, o.task_comm),
    };
    (t, kn)
}

/// The process ids of `task`'s ancestors, nearest first: `task->real_parent` (the parent of a
/// thread's process for a thread), its `real_parent`, and so on, up to and including the
/// host's init (pid 1), at most `ANCESTORS`; 0 after the last. Read at the moment of the
/// signal, so a parent that has since exited is still named. Relies on:
/// task_struct.{real_parent,tgid} (include/linux/sched.h).
#[inline(always)]
pub(crate) fn ancestors<M: Mem>(o: &KernelOffsets, task: u64) -> [u32; ANCESTORS] {
    let mut out = [0u32; ANCESTORS];
    if o.task_real_parent == 0 || task == 0 {
        return out;
    }
    let mut p: u64 = M::read(task, o.task_real_parent);
    let mut i = 0;
    while i < ANCESTORS {
        let tgid: u32 = M::read(p, o.task_tgid);
        if tgid == 0 {
            break;
        }
        out[i] = tgid;
        if tgid == 1 {
            break;
        }
        p = M::read(p, o.task_real_parent);
        i += 1;
    }
    out
}
