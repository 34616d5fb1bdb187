//! Kernel memory reads: the `Mem` strategy (helper reads for raw tracepoints, plain typed
//! loads for BTF tracepoints) and the `comm` read shared by every identity.

use aya_ebpf::helpers::{
    bpf_probe_read_kernel,
    generated::{bpf_get_current_task, bpf_get_current_task_btf},
};
use signal_trace_common::COMM_LEN;

#[inline(always)]
pub(crate) fn read<T: Default>(base: u64, off: u32) -> T {
    if base == 0 {
        return T::default();
    }
    unsafe { bpf_probe_read_kernel((base + off as u64) as *const T) }.unwrap_or_default()
}

/// How a program reads kernel memory: through bpf_probe_read_kernel() (raw tracepoints, which
/// see untyped pointers), or with plain loads (BTF tracepoints, whose arguments the verifier
/// knows as typed kernel pointers: a load at a constant offset becomes a direct, fault-safe
/// access, several times cheaper than the helper call). Variable indexes (an array slot chosen
/// by signal number or namespace level) and byte arrays always go through the helper.
pub(crate) trait Mem {
    /// Typed loads: the verifier checks them field by field, so one read may not span
    /// adjacent fields, but each costs no helper call.
    const TYPED: bool;
    fn read<T: Default>(base: u64, off: u32) -> T;
    /// The current task, as a pointer this reader can follow.
    fn current_task() -> u64;
}

pub(crate) struct Probe;

impl Mem for Probe {
    const TYPED: bool = false;
    #[inline(always)]
    fn read<T: Default>(base: u64, off: u32) -> T {
        read(base, off)
    }
    #[inline(always)]
    fn current_task() -> u64 {
        unsafe { bpf_get_current_task() }
    }
}

pub(crate) struct Direct;

impl Mem for Direct {
    const TYPED: bool = true;
    #[inline(always)]
    fn read<T: Default>(base: u64, off: u32) -> T {
        if base == 0 {
            return T::default();
        }
        unsafe { core::ptr::read_volatile((base + off as u64) as *const T) }
    }
    #[inline(always)]
    fn current_task() -> u64 {
        // bpf_get_current_task_btf(): a typed pointer, for direct loads (5.11+).
        unsafe { bpf_get_current_task_btf() as u64 }
    }
}

/// A `comm` (char[16]) as two 8-byte loads: typed loads may read inside an array member,
/// and words avoid the byte-wise copies and zeroing a `[u8; 16]` value compiles to.
#[inline(always)]
pub(crate) fn read_comm<M: Mem>(base: u64, off: u32) -> [u8; COMM_LEN] {
    let words: [u64; 2] = if M::TYPED {
        [M::read(base, off), M::read(base, off + 8)]
    } else {
        read(base, off)
    };
    // SAFETY: [u64; 2] and [u8; 16] have the same size, and any bytes are a valid [u8; 16].
    unsafe { core::mem::transmute::<[u64; 2], [u8; COMM_LEN]>(words) }
}

/// The siginfo fields the programs use, `[si_errno, si_code, si_pid, si_uid]` (si_pid and
/// si_uid from `_sifields._kill`), for a siginfo pointer other than SEND_SIG_NOINFO (0) and
/// SEND_SIG_PRIV (1). Always through the helper, also in the BTF tracepoints: recent kernels
/// (6.18 here) type the signal tracepoints' `info` argument as a scalar, because it carries
/// those two special values, and refuse typed loads from it. One read where the four are
/// adjacent, as they are in `struct kernel_siginfo` (int si_signo, si_errno, si_code; then
/// the union, whose `_kill` leads with pid and uid; include/linux/signal_types.h).
#[inline(always)]
pub(crate) fn siginfo(o: &signal_trace_common::KernelOffsets, info: u64) -> [i32; 4] {
    if o.siginfo_code == o.siginfo_errno + 4
        && o.siginfo_pid == o.siginfo_code + 4
        && o.siginfo_uid == o.siginfo_pid + 4
    {
        read(info, o.siginfo_errno)
    } else {
        [
            read(info, o.siginfo_errno),
            read(info, o.siginfo_code),
            read(info, o.siginfo_pid),
            read(info, o.siginfo_uid),
        ]
    }
}
