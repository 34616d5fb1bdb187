//! The `sched_process_exit` hook: the end of a process, exactly one record per process, with
//! the status it died with.
//!
//! Which thread ends a process is decided in do_exit() (kernel/exit.c) by
//! `group_dead = atomic_dec_and_test(&tsk->signal->live)`: only the thread whose decrement
//! reached zero knows it. The tracepoint fires later (after `tsk->exit_code = code`, exit_mm()
//! and acct_process()), so reading `signal->live == 0` there is not that fact: when two threads
//! exit together, A decrements to 1, B to 0, and both then read 0 at the tracepoint. Since
//! 6.16 the tracepoint carries `group_dead` itself (TP_PROTO(struct task_struct *p, bool
//! group_dead), include/trace/events/sched.h); before that (6.1, 6.12) it carries only `p`, and
//! a program that read a second argument would be refused at attach (the kernel checks the
//! program's context accesses against the tracepoint's argument count). Hence two programs,
//! chosen by userspace from the kernel's BTF:
//! - `sched_process_exit` reads `group_dead`: true in exactly one thread of each process.
//! - `sched_process_exit_live` (older kernels) takes `live == 0` as "the group is dead". That
//!   holds in the group-dead thread (it reads after its own decrement, and nothing increments
//!   `live` once it is 0: only a live thread can clone) and possibly in other threads that pass
//!   the tracepoint after it. Of those, the first to insert the process's key into `EXITED`
//!   (BPF_NOEXIST: the hash map's check-and-insert is atomic under its bucket lock) reports;
//!   the others get -EEXIST and stay silent. The key is the `signal_struct` address with the
//!   group leader's `start_time`: the address alone may be reused by a later process once this
//!   one is freed, the pair never is (a new process starts later). Keys are never deleted:
//!   deleting a process's key when its leader is freed (`sched_process_free`) was tried, and
//!   under load about one process in a hundred lost its exit record (deletions that did not
//!   happen left keys that hid the exits of later processes at the same address). The map
//!   is an LRU instead, and evicts the oldest keys: a key is read only during its process's
//!   own exit, microseconds, and evicting it that soon would take more process exits in those
//!   microseconds than the map holds.

use aya_ebpf::{
    bindings::BPF_NOEXIST, helpers::generated::bpf_ktime_get_ns, macros::raw_tracepoint,
    programs::RawTracePointContext,
};
use signal_trace_common::*;

use crate::filter::{cgroup_chain_sides, comm_sides, pid_sides, signal_passes};
use crate::maps::{EVENTS, EXITED, FILTER, OFFSETS};

/// EEXIST, include/uapi/asm-generic/errno-base.h.
const EEXIST: i32 = 17;
use crate::mem::{read, Probe};
use crate::ring::{count_lost, wakeup_flags, write_event};
use crate::task::task_identity;

/// raw_tp/sched_process_exit on 6.16 and later: TP_PROTO(struct task_struct *p, bool group_dead),
/// include/trace/events/sched.h, fired by do_exit() (kernel/exit.c) with do_exit()'s own
/// `group_dead`, true in exactly one thread of each process.
#[raw_tracepoint(tracepoint = "sched_process_exit")]
pub fn sched_process_exit(ctx: RawTracePointContext) -> i32 {
    if ctx.arg::<u64>(1) == 0 {
        return 0;
    }
    process_exit(ctx.arg::<u64>(0))
}

/// raw_tp/sched_process_exit before 6.16: TP_PROTO(struct task_struct *p),
/// include/trace/events/sched.h, fired by do_exit() (kernel/exit.c) after `signal->live` was
/// decremented; `live == 0` plus the process's `EXITED` key picks one thread (see the module
/// documentation).
#[raw_tracepoint(tracepoint = "sched_process_exit")]
pub fn sched_process_exit_live(ctx: RawTracePointContext) -> i32 {
    let o = OFFSETS.load();
    let task = ctx.arg::<u64>(0);
    let signal: u64 = read(task, o.task_signal);
    let live: i32 = read(signal, o.signal_live);
    if live != 0 || signal == 0 {
        return 0;
    }
    let leader: u64 = read(task, o.task_group_leader);
    let key = [signal, read::<u64>(leader, o.task_start_time)];
    // -EEXIST: another thread of this process already reported its end. Any other failure
    // reports rather than risk losing the exit.
    if let Err(e) = EXITED.insert(&key, &0, BPF_NOEXIST as u64) {
        if e == -EEXIST {
            return 0;
        }
    }
    process_exit(task)
}

/// The record of the end of the process `task` belongs to; `task` is the thread that ends it.
#[inline(always)]
fn process_exit(task: u64) -> i32 {
    let o = OFFSETS.load();
    let cfg = FILTER.load();
    let status: u32 = read(task, o.task_exit_code);
    let sig = (status & 0x7f) as i32;
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
