//! The `sched_process_exec` hook: a process started a new program. Internal: the record keeps
//! userspace's process-identity cache current (the program's path, its arguments), so that a
//! signal's sender is named as it was when it sent, however short-lived it is.

use core::ffi::c_void;

use aya_ebpf::{
    helpers::{
        bpf_get_current_pid_tgid,
        generated::{
            bpf_get_current_comm, bpf_ktime_get_ns, bpf_probe_read_kernel_str, bpf_probe_read_user,
        },
    },
    macros::raw_tracepoint,
    programs::RawTracePointContext,
};
use signal_trace_common::*;

use crate::maps::{OFFSETS, PROCS};
use crate::mem::read;
use crate::ring::{count_lost, procs_wakeup_flags};

/// raw_tp/sched_process_exec: TP_PROTO(struct task_struct *p, pid_t old_pid, struct
/// linux_binprm *bprm), include/trace/events/sched.h, fired by exec_binprm() (fs/exec.c) in
/// the exec'ing task once the new program is loaded: begin_new_exec() has installed its mm
/// (whose arg_start..arg_end is the argument block execve(2) copied onto the new stack) and
/// set its comm. `bprm->filename` is the path exec opened. Every exec of the host is recorded,
/// whatever the filters: any process may send a signal later.
#[raw_tracepoint(tracepoint = "sched_process_exec")]
pub fn sched_process_exec(ctx: RawTracePointContext) -> i32 {
    let o = OFFSETS.load();
    let task = ctx.arg::<u64>(0);
    let bprm = ctx.arg::<u64>(2);
    let filename: u64 = read(bprm, o.binprm_filename);
    let mm: u64 = read(task, o.task_mm);
    let arg_start: u64 = read(mm, o.mm_arg_start);
    let arg_end: u64 = read(mm, o.mm_arg_end);

    let Some(mut entry) = PROCS.reserve::<Exec>(0) else {
        count_lost(KIND_EXEC);
        return 0;
    };
    let rec = entry.as_mut_ptr();
    let mut flags = 0;
    // SAFETY: `rec` points to a reserved, writable record of size_of::<Exec>(); every field is
    // written below (ring memory is not zeroed), the byte arrays by the helpers up to the
    // lengths recorded.
    unsafe {
        let exe = core::ptr::addr_of_mut!((*rec).exe) as *mut c_void;
        let n = bpf_probe_read_kernel_str(exe, EXE_LEN as u32, filename as *const c_void);
        // The helper counts the NUL it writes; a name it cut fills the whole buffer.
        let exe_len = if n > 0 { n as u32 - 1 } else { 0 };
        if n >= EXE_LEN as i64 {
            flags |= FLAG_EXE_TRUNCATED;
        }
        let total = arg_end.wrapping_sub(arg_start);
        let len = if arg_start == 0 || total > (1 << 20) {
            0
        } else if total > ARGS_LEN as u64 {
            flags |= FLAG_ARGS_TRUNCATED;
            ARGS_LEN as u32
        } else {
            total as u32
        };
        let args = core::ptr::addr_of_mut!((*rec).args) as *mut c_void;
        // The block was written by execve() moments ago: resident, so the non-faulting read
        // succeeds; if it does not, the record says "no arguments" rather than garbage.
        let args_len = if len > 0 && bpf_probe_read_user(args, len, arg_start as *const c_void) == 0
        {
            len
        } else {
            0
        };
        let comm = core::ptr::addr_of_mut!((*rec).comm) as *mut c_void;
        if bpf_get_current_comm(comm, COMM_LEN as u32) != 0 {
            core::ptr::write_volatile(comm as *mut [u64; 2], [0; 2]);
        }
        core::ptr::write_volatile(core::ptr::addr_of_mut!((*rec).kind), KIND_EXEC);
        core::ptr::write_volatile(
            core::ptr::addr_of_mut!((*rec).tgid),
            (bpf_get_current_pid_tgid() >> 32) as u32,
        );
        core::ptr::write_volatile(core::ptr::addr_of_mut!((*rec).flags), flags);
        core::ptr::write_volatile(core::ptr::addr_of_mut!((*rec).exe_len), exe_len);
        core::ptr::write_volatile(core::ptr::addr_of_mut!((*rec).args_len), args_len);
        core::ptr::write_volatile(core::ptr::addr_of_mut!((*rec)._pad), 0);
        core::ptr::write_volatile(core::ptr::addr_of_mut!((*rec).ts_ns), bpf_ktime_get_ns());
    }
    entry.submit(procs_wakeup_flags());
    0
}
