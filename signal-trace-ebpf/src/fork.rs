//! The `sched_process_fork` hook: a new process (not a thread). Internal: the child runs its
//! parent's program until it execs, and userspace's process-identity cache says so.

use aya_ebpf::{
    helpers::{bpf_get_current_pid_tgid, generated::bpf_ktime_get_ns},
    macros::raw_tracepoint,
    programs::RawTracePointContext,
};
use signal_trace_common::*;

use crate::maps::{OFFSETS, PROCS};
use crate::mem::read;
use crate::ring::{count_lost, procs_wakeup_flags, write_event};

/// raw_tp/sched_process_fork: TP_PROTO(struct task_struct *parent, struct task_struct *child),
/// include/trace/events/sched.h, fired by kernel_clone() (kernel/fork.c) in the forking task
/// after copy_process(), before the child first runs. Threads (CLONE_THREAD: `child->pid !=
/// child->tgid`) are left out. The program the child runs is the forking task's (`current`,
/// whose mm it copied), even with CLONE_PARENT, which gives it another parent.
#[raw_tracepoint(tracepoint = "sched_process_fork")]
pub fn sched_process_fork(ctx: RawTracePointContext) -> i32 {
    let o = OFFSETS.load();
    let child = ctx.arg::<u64>(1);
    // pid and tgid are adjacent in task_struct (pid_t pid; pid_t tgid;): one read for both.
    let (pid, tgid) = if o.task_tgid == o.task_pid + 4 {
        let both: u64 = read(child, o.task_pid);
        (both as u32, (both >> 32) as u32)
    } else {
        (
            read::<u32>(child, o.task_pid),
            read::<u32>(child, o.task_tgid),
        )
    };
    if pid != tgid || tgid == 0 {
        return 0;
    }
    let Some(mut entry) = PROCS.reserve::<Event>(0) else {
        count_lost(KIND_FORK);
        return 0;
    };
    write_event(
        entry.as_mut_ptr(),
        Event {
            kind: KIND_FORK,
            ts_ns: unsafe { bpf_ktime_get_ns() },
            sender: Task {
                tgid: (bpf_get_current_pid_tgid() >> 32) as u32,
                ..Task::default()
            },
            target: Task {
                tgid,
                tid: pid,
                ..Task::default()
            },
            ..Event::default()
        },
    );
    entry.submit(procs_wakeup_flags());
    0
}
