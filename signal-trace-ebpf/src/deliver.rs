//! The `signal_deliver` hook: a task dequeued a signal (or the kernel's group-exit path made it
//! act on one), as a BTF tracepoint, its raw-tracepoint fallback and the classic tracepoint.

use aya_ebpf::{
    helpers::{bpf_get_current_uid_gid, generated::bpf_ktime_get_ns},
    macros::{btf_tracepoint, raw_tracepoint, tracepoint},
    programs::{BtfTracePointContext, RawTracePointContext, TracePointContext},
};
use signal_trace_common::*;

use crate::filter::{sides_filter, signal_passes, SIDE_FILTERS};
use crate::maps::{CLASSIC, EVENTS, FILTER, OFFSETS};
use crate::mem::{siginfo, Direct, Mem, Probe};
use crate::ring::{count_lost, wakeup_flags, write_event};
use crate::task::{current_task, task_identity, NO_TASK};

/// SIGKILL, include/uapi/asm-generic/signal.h.
const SIGKILL: i32 = 9;
/// SIGNAL_GROUP_EXIT, include/linux/sched/signal.h.
const SIGNAL_GROUP_EXIT: u32 = 0x0000_0004;

/// signal_deliver: TP_PROTO(int sig, struct kernel_siginfo *info, struct k_sigaction *ka),
/// include/trace/events/signal.h; called by the receiver in get_signal() (kernel/signal.c)
/// after it dequeued the signal, before the ignore/default-action checks, and also at the top
/// of get_signal()'s loop when the thread group is already marked for death
/// (`signal->flags & SIGNAL_GROUP_EXIT` or `signal->group_exec_task`): then with SIGKILL and
/// `SEND_SIG_NOINFO` (a null `info`; 6.18 passes a cleared `&ksig->info`, si_code SI_USER),
/// although no SIGKILL need have been sent: a fatal signal's complete_signal(), exit_group() and exec all
/// end the other threads this way. Those records carry `FLAG_GROUP_EXIT` and the group's
/// `signal->group_exit_code` in `status`. As a BTF tracepoint (typed loads), with the raw
/// tracepoint below as the fallback.
#[btf_tracepoint(function = "signal_deliver")]
pub fn signal_deliver(ctx: BtfTracePointContext) -> i32 {
    deliver::<Direct>([ctx.arg(0), ctx.arg(1), ctx.arg(2)])
}

/// raw_tp/signal_deliver: the same with bpf_probe_read_kernel() (same tracepoint, include/trace/events/signal.h).
#[raw_tracepoint(tracepoint = "signal_deliver")]
pub fn signal_deliver_raw(ctx: RawTracePointContext) -> i32 {
    deliver::<Probe>([ctx.arg(0), ctx.arg(1), ctx.arg(2)])
}

#[inline(always)]
fn deliver<M: Mem>(args: [u64; 3]) -> i32 {
    let o = OFFSETS.load();
    let cfg = FILTER.load();
    let sig = args[0] as i32;
    let info = args[1];
    let ka = args[2];
    let task = M::current_task();
    // The group-exit path (see above): a signal filter applies to the signal that ended the
    // group (none for exit_group() or exec), not to the SIGKILL the kernel reports.
    // Recognised by the group's state, not only by the null `info`: later kernels may pass
    // `&ksig->info` (cleared, si_code SI_USER) there.
    let (flags, status, filtered_sig) = if sig == SIGKILL {
        let signal: u64 = M::read(task, o.task_signal);
        let sflags: u32 = M::read(signal, o.signal_flags);
        let exec_task: u64 = if o.signal_group_exec_task != 0 {
            M::read(signal, o.signal_group_exec_task)
        } else {
            0
        };
        if info == 0 || sflags & SIGNAL_GROUP_EXIT != 0 || exec_task != 0 {
            let code: u32 = M::read(signal, o.signal_group_exit_code);
            (FLAG_FULL | FLAG_GROUP_EXIT, code, (code & 0x7f) as i32)
        } else {
            (FLAG_FULL, 0, sig)
        }
    } else {
        (FLAG_FULL, 0, sig)
    };
    if !signal_passes(&cfg, filtered_sig) {
        return 0;
    }
    let (mut receiver, receiver_kn) = task_identity::<M>(&o, task);
    receiver.uid = if M::TYPED {
        M::read(M::read::<u64>(task, o.task_cred), o.cred_uid)
    } else {
        bpf_get_current_uid_gid() as u32
    };
    let [si_errno, si_code, si_pid, si_uid] = if info > 1 { siginfo(&o, info) } else { [0; 4] };
    if cfg.flags & SIDE_FILTERS != 0 {
        // The sender of a delivered signal is only known through si_pid.
        let sender = Task {
            tgid: si_pid as u32,
            tid: si_pid as u32,
            ..NO_TASK
        };
        if !sides_filter(&cfg, &sender, &receiver, 0, receiver_kn) {
            return 0;
        }
    }
    let Some(mut entry) = EVENTS.reserve::<Event>(0) else {
        count_lost(KIND_DELIVER);
        return 0;
    };
    let (code, errno, si_uid) = match info {
        0 => (0, 0, 0),
        1 => (0x80, 0, 0),
        _ => (si_code, si_errno, si_uid as u32),
    };
    write_event(
        entry.as_mut_ptr(),
        Event {
            kind: KIND_DELIVER,
            signo: sig,
            ts_ns: unsafe { bpf_ktime_get_ns() },
            code,
            errno,
            result: 0,
            group: 0,
            flags,
            signal_flags: 0,
            status,
            syscall: 0,
            arg_pid: 0,
            arg_tid: 0,
            si_pid,
            si_uid,
            _pad: 0,
            sender: NO_TASK,
            target: receiver,
            handler: M::read(ka, o.sigaction_handler),
            sa_flags: M::read(ka, o.sigaction_flags),
            ancestors: [0; ANCESTORS],
        },
    );
    entry.submit(wakeup_flags(&cfg));
    0
}

/// tracepoint/signal/signal_deliver without BTF: the record's own fields (sig, errno, code,
/// sa_handler, sa_flags; TP_STRUCT__entry in include/trace/events/signal.h), offsets from its
/// format file. TP_STORE_SIGINFO records `SEND_SIG_NOINFO` as si_code SI_USER, errno 0: a
/// SIGKILL so recorded is get_signal()'s group-exit path (a sent SIGKILL always marks the group
/// for death in complete_signal() first, so it is never dequeued), marked `FLAG_GROUP_EXIT`;
/// without BTF the group's exit code cannot be read and `status` stays 0.
#[tracepoint(category = "signal", name = "signal_deliver")]
pub fn signal_deliver_classic(ctx: TracePointContext) -> i32 {
    let c = CLASSIC.load();
    let cfg = FILTER.load();
    let sig = unsafe { ctx.read_at::<i32>(c.del_sig as usize) }.unwrap_or(0);
    if !signal_passes(&cfg, sig) {
        return 0;
    }
    let receiver = current_task();
    if !sides_filter(&cfg, &Task::default(), &receiver, 0, 0) {
        return 0;
    }
    let Some(mut entry) = EVENTS.reserve::<Event>(0) else {
        count_lost(KIND_DELIVER);
        return 0;
    };
    let code = unsafe { ctx.read_at::<i32>(c.del_code as usize) }.unwrap_or(0);
    let errno = unsafe { ctx.read_at::<i32>(c.del_errno as usize) }.unwrap_or(0);
    write_event(
        entry.as_mut_ptr(),
        Event {
            kind: KIND_DELIVER,
            signo: sig,
            ts_ns: unsafe { bpf_ktime_get_ns() },
            code,
            errno,
            flags: if sig == SIGKILL && code == 0 && errno == 0 {
                FLAG_GROUP_EXIT
            } else {
                0
            },
            target: receiver,
            handler: unsafe { ctx.read_at::<u64>(c.del_sa_handler as usize) }.unwrap_or(0),
            sa_flags: unsafe { ctx.read_at::<u64>(c.del_sa_flags as usize) }.unwrap_or(0),
            ..Event::default()
        },
    );
    entry.submit(wakeup_flags(&cfg));
    0
}
