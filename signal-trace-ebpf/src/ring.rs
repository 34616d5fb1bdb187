//! Ring-buffer output: writing a record into reserved memory, counting what could not be
//! reserved, and deciding when to wake the reader.

use aya_ebpf::bindings::{BPF_RB_AVAIL_DATA, BPF_RB_FORCE_WAKEUP, BPF_RB_NO_WAKEUP};
use signal_trace_common::*;

use crate::maps::{EVENTS, LOST, PROCS, PROCS_BYTES, SUBMITTED};

/// Writes a whole record into reserved ring memory, field by field, with volatile stores: the
/// compiler may then neither build it on the stack and copy it, nor merge runs of zeros into a
/// `memset` call (a byte-at-a-time loop in BPF). Ring memory is not zeroed, and every field is
/// written; the hot programs spell out every field of `ev`, so that none of it is built on the
/// stack either.
#[inline(always)]
pub(crate) fn write_event(rec: *mut Event, ev: Event) {
    macro_rules! put {
        ($($field:ident),*) => {
            // SAFETY: `rec` points to a reserved, writable record of size_of::<Event>().
            $(unsafe { core::ptr::write_volatile(core::ptr::addr_of_mut!((*rec).$field), ev.$field) };)*
        };
    }
    put!(
        kind,
        signo,
        ts_ns,
        code,
        errno,
        result,
        group,
        flags,
        signal_flags,
        status,
        syscall
    );
    put!(arg_pid, arg_tid, si_pid, si_uid, _pad, handler, sa_flags);
    // SAFETY: as above; the two Task fields are 8-aligned inside the record.
    unsafe {
        write_task(core::ptr::addr_of_mut!((*rec).sender), &ev.sender);
        write_task(core::ptr::addr_of_mut!((*rec).target), &ev.target);
        // Eight u32s as four words.
        let words = core::mem::transmute::<[u32; ANCESTORS], [u64; ANCESTORS / 2]>(ev.ancestors);
        let dst = core::ptr::addr_of_mut!((*rec).ancestors) as *mut u64;
        let mut i = 0;
        while i < ANCESTORS / 2 {
            core::ptr::write_volatile(dst.add(i), words[i]);
            i += 1;
        }
    }
}

#[inline(always)]
pub(crate) unsafe fn write_task(dst: *mut Task, t: &Task) {
    // SAFETY: the caller's; comm is written as two words (same size, 8-aligned in Task).
    unsafe {
        core::ptr::write_volatile(core::ptr::addr_of_mut!((*dst).tgid), t.tgid);
        core::ptr::write_volatile(core::ptr::addr_of_mut!((*dst).tid), t.tid);
        core::ptr::write_volatile(core::ptr::addr_of_mut!((*dst).ns_pid), t.ns_pid);
        core::ptr::write_volatile(core::ptr::addr_of_mut!((*dst).uid), t.uid);
        core::ptr::write_volatile(core::ptr::addr_of_mut!((*dst).cgroup_id), t.cgroup_id);
        let words = core::mem::transmute::<[u8; COMM_LEN], [u64; 2]>(t.comm);
        let comm = core::ptr::addr_of_mut!((*dst).comm) as *mut u64;
        core::ptr::write_volatile(comm, words[0]);
        core::ptr::write_volatile(comm.add(1), words[1]);
    }
}

/// Wakes the reader for a process record only when `PROCS` is half full: it is read whenever
/// `EVENTS` is, and on the reader's timer, so a quiet host costs no wakeup per exec.
#[inline(always)]
pub(crate) fn procs_wakeup_flags() -> u64 {
    if PROCS.query(BPF_RB_AVAIL_DATA as u64) >= u64::from(PROCS_BYTES / 2) {
        BPF_RB_FORCE_WAKEUP as u64
    } else {
        BPF_RB_NO_WAKEUP as u64
    }
}

#[inline(always)]
pub(crate) fn count_lost(kind: u32) {
    if let Some(p) = LOST.get_ptr_mut(kind) {
        unsafe { *p += 1 };
    }
}

/// How often a CPU checks whether to wake the reader; a power of two.
pub(crate) const WAKEUP_EVERY: u64 = 16;

/// Notification batching: wake the reader only when enough data waits, checked on every
/// `WAKEUP_EVERY`th record of a CPU (the per-CPU counter is a plain load and store; the fill
/// query is a helper call). Userspace also polls on a short timer, so a quiet stream is still
/// flushed promptly.
#[inline(always)]
pub(crate) fn wakeup_flags(cfg: &FilterConfig) -> u64 {
    if cfg.wakeup_bytes == 0 {
        return 0;
    }
    if let Some(n) = SUBMITTED.get_ptr_mut(0) {
        // SAFETY: a per-CPU slot. Should a program nest in another on this CPU (an interrupt
        // that sends a signal), an increment may be lost, which only shifts the next check.
        let count = unsafe { *n };
        unsafe { *n = count.wrapping_add(1) };
        if count & (WAKEUP_EVERY - 1) != 0 {
            return BPF_RB_NO_WAKEUP as u64;
        }
    }
    if EVENTS.query(BPF_RB_AVAIL_DATA as u64) >= cfg.wakeup_bytes {
        BPF_RB_FORCE_WAKEUP as u64
    } else {
        BPF_RB_NO_WAKEUP as u64
    }
}
