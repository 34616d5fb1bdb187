//! The `signal_generate` hook: a signal was generated for a task (sent, queued, ignored or
//! dropped), as a BTF tracepoint, its raw-tracepoint fallback and the classic tracepoint.

use aya_ebpf::{
    helpers::generated::bpf_ktime_get_ns,
    macros::{btf_tracepoint, raw_tracepoint, tracepoint},
    programs::{BtfTracePointContext, RawTracePointContext, TracePointContext},
};
use signal_trace_common::*;

use crate::filter::{sides_filter, signal_passes, CGROUP_FILTERS};
use crate::maps::{CLASSIC, EVENTS, FILTER, OFFSETS};
use crate::mem::{read, siginfo, Direct, Mem, Probe};
use crate::ring::{count_lost, wakeup_flags, write_event};
use crate::task::{ancestors, current_identity, current_task, task_identity};

/// signal_generate: TP_PROTO(int sig, struct kernel_siginfo *info, struct task_struct *task,
/// int group, int result), include/trace/events/signal.h; called from __send_signal_locked()
/// in kernel/signal.c with the target's siglock held, after the kernel decided the result, so
/// the target's disposition and flags read here are the ones it used. As a BTF tracepoint
/// (typed loads); the raw tracepoint below is the fallback where that does not load.
#[btf_tracepoint(function = "signal_generate")]
pub fn signal_generate(ctx: BtfTracePointContext) -> i32 {
    let args: [u64; 5] = [ctx.arg(0), ctx.arg(1), ctx.arg(2), ctx.arg(3), ctx.arg(4)];
    generate::<Direct>(args)
}

/// raw_tp/signal_generate: the same with bpf_probe_read_kernel() (same tracepoint, include/trace/events/signal.h).
#[raw_tracepoint(tracepoint = "signal_generate")]
pub fn signal_generate_raw(ctx: RawTracePointContext) -> i32 {
    let args: [u64; 5] = [ctx.arg(0), ctx.arg(1), ctx.arg(2), ctx.arg(3), ctx.arg(4)];
    generate::<Probe>(args)
}

#[inline(always)]
fn generate<M: Mem>(args: [u64; 5]) -> i32 {
    let o = OFFSETS.load();
    let cfg = FILTER.load();
    let sig = args[0] as u32;
    let info = args[1];
    let task = args[2];
    let group = args[3] as u32;
    let result = args[4] as u32;

    if !signal_passes(&cfg, sig as i32) {
        return 0;
    }
    if cfg.flags & FILTER_RESULT != 0 && (cfg.result_mask >> (result & 31)) & 1 == 0 {
        return 0;
    }
    let current = if M::TYPED || cfg.flags & CGROUP_FILTERS != 0 || o.task_real_parent != 0 {
        M::current_task()
    } else {
        0
    };
    let (sender, sender_kn) = current_identity::<M>(&o, current);
    let (target, target_kn) = task_identity::<M>(&o, task);
    if !sides_filter(&cfg, &sender, &target, sender_kn, target_kn) {
        return 0;
    }

    let Some(mut entry) = EVENTS.reserve::<Event>(0) else {
        count_lost(KIND_GENERATE);
        return 0;
    };
    // SEND_SIG_NOINFO is 0 and SEND_SIG_PRIV is 1 (include/linux/sched/signal.h): the
    // tracepoint itself reports them as SI_USER and SI_KERNEL (TP_STORE_SIGINFO).
    let (code, errno, info_flag) = match info {
        0 => (0, 0, FLAG_INFO_NONE),
        1 => (0x80, 0, FLAG_INFO_PRIV),
        p => {
            let [errno, code, _, _] = siginfo(&o, p);
            (code, errno, 0)
        }
    };
    let sighand: u64 = M::read(task, o.task_sighand);
    let action = sighand
        + o.sighand_action as u64
        + (sig.wrapping_sub(1) & 63) as u64 * o.k_sigaction_size as u64;
    let blocked: u64 = M::read(task, o.task_blocked);
    let signal: u64 = M::read(task, o.task_signal);
    let pf: u32 = M::read(task, o.task_flags);
    let ptrace: u32 = M::read(task, o.task_ptrace);
    let mut flags = FLAG_FULL | info_flag;
    if sig >= 1 && (blocked >> ((sig - 1) & 63)) & 1 == 1 {
        flags |= FLAG_BLOCKED;
    }
    if ptrace != 0 {
        flags |= FLAG_PTRACED;
    }
    // PF_KTHREAD, include/linux/sched.h.
    if pf & 0x0020_0000 != 0 {
        flags |= FLAG_KTHREAD;
    }
    // sa_handler and sa_flags lead struct sigaction: one read for both where adjacent.
    let (handler, sa_flags) = if sighand == 0 {
        (0, 0)
    } else if o.sigaction_flags == o.sigaction_handler + 8 {
        let both: [u64; 2] = read(action, o.sigaction_handler);
        (both[0], both[1])
    } else {
        (
            read(action, o.sigaction_handler),
            read(action, o.sigaction_flags),
        )
    };
    write_event(
        entry.as_mut_ptr(),
        Event {
            kind: KIND_GENERATE,
            signo: sig as i32,
            ts_ns: unsafe { bpf_ktime_get_ns() },
            code,
            errno,
            result,
            group,
            flags,
            signal_flags: M::read(signal, o.signal_flags),
            status: 0,
            syscall: 0,
            arg_pid: 0,
            arg_tid: 0,
            si_pid: 0,
            si_uid: 0,
            _pad: 0,
            sender,
            target,
            handler,
            sa_flags,
            ancestors: ancestors::<M>(&o, current),
        },
    );
    entry.submit(wakeup_flags(&cfg));
    0
}

/// tracepoint/signal/signal_generate, used when the kernel has no BTF: the record's own fields
/// only (sig, errno, code, comm, pid = target thread, group, result), offsets from its format file.
#[tracepoint(category = "signal", name = "signal_generate")]
pub fn signal_generate_classic(ctx: TracePointContext) -> i32 {
    let c = CLASSIC.load();
    let cfg = FILTER.load();
    let field = |off: u32| unsafe { ctx.read_at::<i32>(off as usize) }.unwrap_or(0);
    let sig = field(c.gen_sig) as u32;
    let result = field(c.gen_result) as u32;
    if !signal_passes(&cfg, sig as i32) {
        return 0;
    }
    if cfg.flags & FILTER_RESULT != 0 && (cfg.result_mask >> (result & 31)) & 1 == 0 {
        return 0;
    }
    let sender = current_task();
    let mut target = Task {
        tid: field(c.gen_pid) as u32,
        ..Task::default()
    };
    if let Ok(comm) = unsafe { ctx.read_at::<[u8; COMM_LEN]>(c.gen_comm as usize) } {
        target.comm = comm;
    }
    if !sides_filter(&cfg, &sender, &target, 0, 0) {
        return 0;
    }
    let Some(mut entry) = EVENTS.reserve::<Event>(0) else {
        count_lost(KIND_GENERATE);
        return 0;
    };
    write_event(
        entry.as_mut_ptr(),
        Event {
            kind: KIND_GENERATE,
            signo: sig as i32,
            ts_ns: unsafe { bpf_ktime_get_ns() },
            code: field(c.gen_code),
            errno: field(c.gen_errno),
            result,
            group: field(c.gen_group) as u32,
            sender,
            target,
            ..Event::default()
        },
    );
    entry.submit(wakeup_flags(&cfg));
    0
}
