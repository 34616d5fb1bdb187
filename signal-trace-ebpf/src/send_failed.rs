//! Refused sends: a signal syscall (kill, tkill, tgkill, rt_sigqueueinfo, rt_tgsigqueueinfo,
//! pidfd_send_signal) that returned an error, which `signal_generate` never sees.
//!
//! signal_generate never fires when a send fails its permission or lookup checks
//! (kill_pid_info / do_send_specific / do_rt_sigqueueinfo in kernel/signal.c return first), so
//! the syscalls are watched instead: with BTF on x86-64 by one raw `sys_exit` program; otherwise
//! by the classic per-syscall tracepoints, whose record is `struct syscall_trace_enter`
//! (kernel/trace/trace_syscalls.c): an 8-byte trace_entry, int nr, then the arguments as
//! unsigned longs from offset 16; `struct syscall_trace_exit` has `long ret` at offset 16.

use aya_ebpf::{
    helpers::{bpf_get_current_pid_tgid, generated::bpf_ktime_get_ns},
    macros::{raw_tracepoint, tracepoint},
    programs::{RawTracePointContext, TracePointContext},
};
use signal_trace_common::*;

use crate::filter::{sides_filter, signal_passes};
use crate::maps::{EVENTS, FILTER, OFFSETS, PENDING_SENDS};
use crate::mem::read;
use crate::ring::{count_lost, wakeup_flags, write_event};
use crate::task::{current_cgroup_kn, current_task};

#[inline(always)]
fn arg(ctx: &TracePointContext, n: usize) -> i64 {
    unsafe { ctx.read_at::<i64>(16 + 8 * n) }.unwrap_or(0)
}

/// The current task as the sender of a send, if the send passes the filters: only the
/// sender's side, its target's pid and the signal are known here; the target's cgroup and comm
/// are left to userspace.
#[inline(always)]
fn sender_if_passes(
    cfg: &FilterConfig,
    syscall: u32,
    sig: u32,
    arg_pid: i32,
    arg_tid: i32,
) -> Option<Task> {
    if !signal_passes(cfg, sig) {
        return None;
    }
    let sender = current_task();
    let mut target = Task {
        tgid: arg_pid as u32,
        tid: if arg_tid != 0 {
            arg_tid as u32
        } else {
            arg_pid as u32
        },
        ..Task::default()
    };
    let mut cfg_here = *cfg;
    cfg_here.flags &= !(FILTER_CGROUP_TARGET | FILTER_CGROUP_EITHER | FILTER_COMM);
    if syscall == SYSCALL_PIDFD_SEND_SIGNAL {
        target = Task::default();
        cfg_here.flags &= !(FILTER_PID_TARGET | FILTER_PID_EITHER);
    }
    let o = OFFSETS.load();
    sides_filter(
        &cfg_here,
        &sender,
        &target,
        current_cgroup_kn(&cfg_here, &o),
        0,
    )
    .then_some(sender)
}

#[inline(always)]
fn emit_send_failed(cfg: &FilterConfig, pending: &PendingSend, errno: i32, sender: Task) {
    let Some(mut entry) = EVENTS.reserve::<Event>(0) else {
        count_lost(KIND_SEND_FAILED);
        return;
    };
    write_event(
        entry.as_mut_ptr(),
        Event {
            kind: KIND_SEND_FAILED,
            signo: pending.signo,
            ts_ns: unsafe { bpf_ktime_get_ns() },
            errno,
            flags: if pending.syscall == SYSCALL_PIDFD_SEND_SIGNAL {
                FLAG_PIDFD
            } else {
                0
            },
            syscall: pending.syscall,
            arg_pid: pending.arg_pid,
            arg_tid: pending.arg_tid,
            sender,
            ..Event::default()
        },
    );
    entry.submit(wakeup_flags(cfg));
}

/// raw_tp/sys_exit: TP_PROTO(struct pt_regs *regs, long ret), include/trace/events/syscalls.h,
/// fired on every syscall's return. Successful returns leave at the first test; a failed
/// signal syscall is recognised by its number (`regs->orig_ax`) and its arguments are read
/// from the saved user registers (di, si, dx: the x86-64 syscall ABI). One attachment, no
/// per-send state, and a fast detach, unlike the per-syscall classic tracepoints below.
/// (fexit programs on the six syscalls would spare all other syscalls, but kernels may refuse
/// them: a locked-down 6.18 answers EPERM.)
#[raw_tracepoint(tracepoint = "sys_exit")]
pub fn sys_exit(ctx: RawTracePointContext) -> i32 {
    let ret = ctx.arg::<i64>(1);
    if ret >= 0 {
        return 0;
    }
    let o = OFFSETS.load();
    let cfg = FILTER.load();
    let regs = ctx.arg::<u64>(0);
    let nr = read::<u64>(regs, o.regs_orig_ax) as u32;
    let nrs = cfg.syscall_nrs;
    let syscall = if nr == nrs[0] {
        SYSCALL_KILL
    } else if nr == nrs[1] {
        SYSCALL_TKILL
    } else if nr == nrs[2] {
        SYSCALL_TGKILL
    } else if nr == nrs[3] {
        SYSCALL_RT_SIGQUEUEINFO
    } else if nr == nrs[4] {
        SYSCALL_RT_TGSIGQUEUEINFO
    } else if nr == nrs[5] {
        SYSCALL_PIDFD_SEND_SIGNAL
    } else {
        return 0;
    };
    send_returned(&o, &cfg, regs, ret, syscall)
}

/// A signal syscall failed with `ret`: sent as a record. `regs` holds its arguments
/// (x86-64: di, si, dx).
#[inline(always)]
fn send_returned(o: &KernelOffsets, cfg: &FilterConfig, regs: u64, ret: i64, syscall: u32) -> i32 {
    let a0 = read::<u64>(regs, o.regs_di) as i32;
    let a1 = read::<u64>(regs, o.regs_si) as i32;
    let a2 = read::<u64>(regs, o.regs_dx) as i32;
    // tgkill and rt_tgsigqueueinfo: (tgid, tid, sig); the others: (pid or pidfd, sig).
    let (sig, arg_pid, arg_tid) = match syscall {
        SYSCALL_TGKILL | SYSCALL_RT_TGSIGQUEUEINFO => (a2 as u32, a0, a1),
        _ => (a1 as u32, a0, 0),
    };
    let Some(sender) = sender_if_passes(cfg, syscall, sig, arg_pid, arg_tid) else {
        return 0;
    };
    let pending = PendingSend {
        syscall,
        signo: sig,
        arg_pid,
        arg_tid,
    };
    emit_send_failed(cfg, &pending, (-ret) as i32, sender);
    0
}

#[inline(always)]
fn remember_send(syscall: u32, sig: u32, arg_pid: i32, arg_tid: i32) -> i32 {
    let cfg = FILTER.load();
    let Some(sender) = sender_if_passes(&cfg, syscall, sig, arg_pid, arg_tid) else {
        return 0;
    };
    let pending = PendingSend {
        syscall,
        signo: sig,
        arg_pid,
        arg_tid,
    };
    // A full table would hide this send's failure: count it as lost.
    if PENDING_SENDS.insert(&sender.tid, &pending, 0).is_err() {
        count_lost(KIND_SEND_FAILED);
    }
    0
}

/// syscalls/sys_enter_kill: kill(pid_t pid, int sig), SYSCALL_DEFINE2(kill) in kernel/signal.c.
#[tracepoint(category = "syscalls", name = "sys_enter_kill")]
pub fn sys_enter_kill(ctx: TracePointContext) -> i32 {
    remember_send(SYSCALL_KILL, arg(&ctx, 1) as u32, arg(&ctx, 0) as i32, 0)
}

/// syscalls/sys_enter_tkill: tkill(pid_t pid, int sig), SYSCALL_DEFINE2(tkill) in kernel/signal.c.
#[tracepoint(category = "syscalls", name = "sys_enter_tkill")]
pub fn sys_enter_tkill(ctx: TracePointContext) -> i32 {
    remember_send(SYSCALL_TKILL, arg(&ctx, 1) as u32, arg(&ctx, 0) as i32, 0)
}

/// syscalls/sys_enter_tgkill: tgkill(pid_t tgid, pid_t pid, int sig), SYSCALL_DEFINE3(tgkill)
/// in kernel/signal.c.
#[tracepoint(category = "syscalls", name = "sys_enter_tgkill")]
pub fn sys_enter_tgkill(ctx: TracePointContext) -> i32 {
    remember_send(
        SYSCALL_TGKILL,
        arg(&ctx, 2) as u32,
        arg(&ctx, 0) as i32,
        arg(&ctx, 1) as i32,
    )
}

/// syscalls/sys_enter_rt_sigqueueinfo: rt_sigqueueinfo(pid_t pid, int sig, siginfo_t *uinfo),
/// SYSCALL_DEFINE3(rt_sigqueueinfo) in kernel/signal.c.
#[tracepoint(category = "syscalls", name = "sys_enter_rt_sigqueueinfo")]
pub fn sys_enter_rt_sigqueueinfo(ctx: TracePointContext) -> i32 {
    remember_send(
        SYSCALL_RT_SIGQUEUEINFO,
        arg(&ctx, 1) as u32,
        arg(&ctx, 0) as i32,
        0,
    )
}

/// syscalls/sys_enter_rt_tgsigqueueinfo: rt_tgsigqueueinfo(pid_t tgid, pid_t pid, int sig, ...),
/// SYSCALL_DEFINE4(rt_tgsigqueueinfo) in kernel/signal.c.
#[tracepoint(category = "syscalls", name = "sys_enter_rt_tgsigqueueinfo")]
pub fn sys_enter_rt_tgsigqueueinfo(ctx: TracePointContext) -> i32 {
    remember_send(
        SYSCALL_RT_TGSIGQUEUEINFO,
        arg(&ctx, 2) as u32,
        arg(&ctx, 0) as i32,
        arg(&ctx, 1) as i32,
    )
}

/// syscalls/sys_enter_pidfd_send_signal: pidfd_send_signal(int pidfd, int sig, ...),
/// SYSCALL_DEFINE4(pidfd_send_signal) in kernel/signal.c.
#[tracepoint(category = "syscalls", name = "sys_enter_pidfd_send_signal")]
pub fn sys_enter_pidfd_send_signal(ctx: TracePointContext) -> i32 {
    remember_send(
        SYSCALL_PIDFD_SEND_SIGNAL,
        arg(&ctx, 1) as u32,
        arg(&ctx, 0) as i32,
        0,
    )
}

/// syscalls/sys_exit_{kill,tkill,tgkill,rt_sigqueueinfo,rt_tgsigqueueinfo,pidfd_send_signal}:
/// one program attached to all six exits; emits a record when the send failed. The record is
/// `struct syscall_trace_exit` (kernel/trace/trace_syscalls.c).
#[tracepoint]
pub fn sys_exit_signal(ctx: TracePointContext) -> i32 {
    let tid = bpf_get_current_pid_tgid() as u32;
    let Some(pending) = (unsafe { PENDING_SENDS.get(&tid) }).copied() else {
        return 0;
    };
    let _ = PENDING_SENDS.remove(&tid);
    let ret = unsafe { ctx.read_at::<i64>(16) }.unwrap_or(0);
    if ret >= 0 {
        return 0;
    }
    let cfg = FILTER.load();
    emit_send_failed(&cfg, &pending, (-ret) as i32, current_task());
    0
}
