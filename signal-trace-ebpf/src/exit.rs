//! The `sched_process_exit` hook: the end of a process (its last thread), with the status it
//! died with.

use aya_ebpf::{
    helpers::generated::bpf_ktime_get_ns, macros::raw_tracepoint, programs::RawTracePointContext,
};
use signal_trace_common::*;

use crate::filter::{cgroup_chain_sides, comm_sides, pid_sides, signal_passes};
use crate::maps::{EVENTS, FILTER, OFFSETS};
use crate::mem::{read, Probe};
use crate::ring::{count_lost, wakeup_flags, write_event};
use crate::task::task_identity;

/// raw_tp/sched_process_exit: TP_PROTO(struct task_struct *p, ...), fired by do_exit()
/// (kernel/exit.c) after `tsk->exit_code = code` and after `signal->live` was decremented, so
/// `live == 0` marks the last thread of the process. Only process exits are sent; userspace keeps
/// those that matter (died of a signal, or had been sent one).
#[raw_tracepoint(tracepoint = "sched_process_exit")]
pub fn sched_process_exit(ctx: RawTracePointContext) -> i32 {
    let o = OFFSETS.load();
    let cfg = FILTER.load();
    let task = ctx.arg::<u64>(0);
    let signal: u64 = read(task, o.task_signal);
    let live: i32 = read(signal, o.signal_live);
    if live != 0 {
        return 0;
    }
    let status: u32 = read(task, o.task_exit_code);
    let sig = status & 0x7f;
    // A signal filter keeps deaths by those signals, and clean exits (userspace then keeps only
    // those of processes it saw a matching signal sent to).
    if sig != 0 && !signal_passes(&cfg, sig) {
        return 0;
    }
    let (process, kn) = task_identity::<Probe>(&o, task);
    // Only the target side of the filters applies: a process has no sender at exit.
    if cfg.flags & (FILTER_PID_EITHER | FILTER_PID_TARGET) != 0
        && pid_sides(process.tgid, process.tid) & (SIDE_EITHER | SIDE_TARGET) == 0
    {
        return 0;
    }
    if cfg.flags & (FILTER_CGROUP_EITHER | FILTER_CGROUP_TARGET) != 0
        && cgroup_chain_sides(&o, kn, process.cgroup_id) & (SIDE_EITHER | SIDE_TARGET) == 0
    {
        return 0;
    }
    if cfg.flags & FILTER_COMM != 0 && comm_sides(&process.comm) == 0 {
        return 0;
    }
    let Some(mut entry) = EVENTS.reserve::<Event>(0) else {
        count_lost(KIND_EXIT);
        return 0;
    };
    write_event(
        entry.as_mut_ptr(),
        Event {
            kind: KIND_EXIT,
            signo: sig,
            ts_ns: unsafe { bpf_ktime_get_ns() },
            flags: FLAG_FULL,
            status,
            target: process,
            ..Event::default()
        },
    );
    entry.submit(wakeup_flags(&cfg));
    0
}
