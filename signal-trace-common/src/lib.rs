//! Wire types shared by the kernel programs and the userspace tracer.
//!
//! Everything here crosses the kernel/user boundary as raw bytes, so every struct is
//! `#[repr(C)]`, has no implicit padding (explicit `_pad` fields where alignment needs it),
//! uses integers rather than `bool` or enums, and carries a size assertion.
#![no_std]

/// `TASK_COMM_LEN` in include/linux/sched.h.
pub const COMM_LEN: usize = 16;

// --- Event kinds (`Event::kind`) ---
/// `signal:signal_generate`: a signal was generated for a task.
pub const KIND_GENERATE: u32 = 1;
/// `signal:signal_deliver`: a signal was dequeued by its receiver.
pub const KIND_DELIVER: u32 = 2;
/// `sched:sched_process_exit` of the thread that ended its process: one record per process.
pub const KIND_EXIT: u32 = 3;
/// A signal-sending syscall returned an error.
pub const KIND_SEND_FAILED: u32 = 4;
/// `oom:mark_victim`: the OOM killer chose a victim.
pub const KIND_OOM: u32 = 5;
/// `cgroup_mkdir` on the cgroup v2 hierarchy: a new cgroup (`target.cgroup_id`). Internal: it
/// keeps container filters current and is not reported.
pub const KIND_CGROUP: u32 = 6;
/// `sched:sched_process_exec`: a process started a new program ([`Exec`] record). Internal: it
/// keeps the process-identity cache current and is not reported.
pub const KIND_EXEC: u32 = 7;
/// `sched:sched_process_fork` of a new process, not a thread (`sender.tgid` the parent,
/// `target.tgid` the child). Internal: the child runs its parent's program until it execs.
pub const KIND_FORK: u32 = 8;
/// Number of kinds, for per-kind counters (index 0 is unused).
pub const KIND_COUNT: u32 = 9;

/// How many of the sender's ancestors a generate record names (`Event::ancestors`).
pub const ANCESTORS: usize = 8;
/// Bytes of an exec's file name kept in an [`Exec`] record (`PATH_MAX` is 4096).
pub const EXE_LEN: usize = 256;
/// Bytes of an exec's argument block kept in an [`Exec`] record.
pub const ARGS_LEN: usize = 1024;

// --- `Event::flags` bits ---
/// generate: the signal is blocked in the target (`task->blocked`).
pub const FLAG_BLOCKED: u32 = 1 << 0;
/// generate: the target is traced (`task->ptrace != 0`).
pub const FLAG_PTRACED: u32 = 1 << 1;
/// generate: the target is a kernel thread (`PF_KTHREAD`).
pub const FLAG_KTHREAD: u32 = 1 << 2;
/// generate/deliver: full task_struct data was read (raw tracepoint with BTF offsets);
/// without it only the classic tracepoint's own fields are valid.
pub const FLAG_FULL: u32 = 1 << 3;
/// send_failed: `arg_pid` is a pidfd, not a pid.
pub const FLAG_PIDFD: u32 = 1 << 4;
/// generate: the siginfo pointer was `SEND_SIG_PRIV` (sent by the kernel itself).
pub const FLAG_INFO_PRIV: u32 = 1 << 5;
/// generate: the siginfo pointer was `SEND_SIG_NOINFO` (plain kill from user space).
pub const FLAG_INFO_NONE: u32 = 1 << 6;
/// deliver: not a dequeued signal but get_signal()'s group-exit path (kernel/signal.c): the
/// receiver's thread group was already marked for death (`SIGNAL_GROUP_EXIT`, or an exec in
/// another thread), and the kernel reports SIGKILL with `SEND_SIG_NOINFO` although no SIGKILL
/// may have been sent. `status` then holds `signal->group_exit_code` (with `FLAG_FULL`).
pub const FLAG_GROUP_EXIT: u32 = 1 << 7;
/// exec: the argument block was longer than [`ARGS_LEN`] and was cut.
pub const FLAG_ARGS_TRUNCATED: u32 = 1 << 8;
/// exec: the file name was longer than [`EXE_LEN`] - 1 and was cut.
pub const FLAG_EXE_TRUNCATED: u32 = 1 << 9;

// --- `Event::syscall` values for send_failed ---
pub const SYSCALL_KILL: u32 = 1;
pub const SYSCALL_TKILL: u32 = 2;
pub const SYSCALL_TGKILL: u32 = 3;
pub const SYSCALL_RT_SIGQUEUEINFO: u32 = 4;
pub const SYSCALL_RT_TGSIGQUEUEINFO: u32 = 5;
pub const SYSCALL_PIDFD_SEND_SIGNAL: u32 = 6;

/// One side of a signal: a task and the process it belongs to.
#[repr(C)]
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct Task {
    /// Thread-group id (the process id as `ps` shows it); 0 when unknown.
    pub tgid: u32,
    /// Thread id.
    pub tid: u32,
    /// The process id inside the process's own PID namespace; 0 when unknown.
    pub ns_pid: u32,
    /// Real uid (sender only; 0 for targets).
    pub uid: u32,
    /// cgroup v2 id (kernfs node id of the default-hierarchy cgroup); 0 when unknown.
    pub cgroup_id: u64,
    /// `comm` of the thread (generate: sender thread; target, exit: the process leader).
    pub comm: [u8; COMM_LEN],
}
const _: () = assert!(core::mem::size_of::<Task>() == 40);

/// One record in the ring buffer. Fixed size for every kind; the meaning of each field per
/// kind is documented on the field.
#[repr(C)]
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct Event {
    /// `KIND_*`.
    pub kind: u32,
    /// Signal number, signed like the kernel's `int sig`: a refused send carries whatever the
    /// caller passed (0 for a `kill(pid, 0)` probe, -1 or 65 for invalid numbers).
    pub signo: i32,
    /// `bpf_ktime_get_ns()` (CLOCK_MONOTONIC) when the hook ran.
    pub ts_ns: u64,
    /// generate/deliver: `si_code`.
    pub code: i32,
    /// generate/deliver: `si_errno`; send_failed: the positive errno the syscall returned.
    pub errno: i32,
    /// generate: `enum trace_signal_result` (0 delivered … 4 lose_info).
    pub result: u32,
    /// generate: the tracepoint's `group` argument (1 = process-wide, 0 = thread-directed).
    pub group: u32,
    /// `FLAG_*` bits.
    pub flags: u32,
    /// generate: `task->signal->flags` of the target (SIGNAL_UNKILLABLE, SIGNAL_GROUP_EXIT…).
    pub signal_flags: u32,
    /// exit: `task->exit_code` as wait(2) encodes it; deliver with `FLAG_GROUP_EXIT`:
    /// `signal->group_exit_code` (its low 7 bits: the signal that ended the group, 0 for an
    /// `exit_group()` or an exec).
    pub status: u32,
    /// send_failed: `SYSCALL_*`.
    pub syscall: u32,
    /// send_failed: the pid argument (negative for process groups; a pidfd with `FLAG_PIDFD`);
    /// 0 for tkill, which names a thread only.
    pub arg_pid: i32,
    /// send_failed: the thread argument of tkill, tgkill and rt_tgsigqueueinfo, else 0.
    pub arg_tid: i32,
    /// deliver: `si_pid` from the siginfo (meaningful for SI_USER, SI_TKILL, SI_QUEUE, CLD_*).
    pub si_pid: i32,
    /// deliver: `si_uid` from the siginfo.
    pub si_uid: u32,
    /// Explicit padding so that `sender` is 8-aligned; always 0.
    pub _pad: u32,
    /// generate, send_failed: the task that caused the signal (current); oom: the task whose
    /// allocation triggered the OOM killer.
    pub sender: Task,
    /// generate: the target; deliver: the receiver; exit: the exiting process; oom: the victim
    /// (tgid and comm only).
    pub target: Task,
    /// generate: the target's `sa_handler` for this signal; deliver: the handler used.
    pub handler: u64,
    /// generate/deliver: the matching `sa_flags`.
    pub sa_flags: u64,
    /// generate: the sender's ancestors' process ids (`task->real_parent`, then its parent…),
    /// nearest first, read when the signal was sent, up to and including the host's PID 1;
    /// 0 after the last one. Unset (0) for other kinds.
    pub ancestors: [u32; ANCESTORS],
}
const _: () = assert!(core::mem::size_of::<Event>() == 200);

/// A `KIND_EXEC` record: the program a process runs from now on, as exec loaded it. Its own
/// layout, larger than [`Event`]; `kind` leads both.
#[repr(C)]
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Exec {
    /// `KIND_EXEC`.
    pub kind: u32,
    /// The process (thread-group id after the exec).
    pub tgid: u32,
    /// `FLAG_ARGS_TRUNCATED`, `FLAG_EXE_TRUNCATED`.
    pub flags: u32,
    /// Bytes of `exe` used, without its NUL.
    pub exe_len: u32,
    /// Bytes of `args` used: the start of the new program's argument block (`mm->arg_start`
    /// to `arg_end`), NUL-separated arguments as execve(2) passed them.
    pub args_len: u32,
    /// Explicit padding so that `ts_ns` is 8-aligned; always 0.
    pub _pad: u32,
    /// `bpf_ktime_get_ns()` when the hook ran.
    pub ts_ns: u64,
    /// The process's `comm` after the exec (the file name's last component, cut to 15 bytes).
    pub comm: [u8; COMM_LEN],
    /// `linux_binprm.filename`: the path exec opened (as execve(2) was given it, or as the
    /// interpreter of a script was named).
    pub exe: [u8; EXE_LEN],
    pub args: [u8; ARGS_LEN],
}
const _: () = assert!(core::mem::size_of::<Exec>() == 32 + COMM_LEN + EXE_LEN + ARGS_LEN);

/// Field offsets inside kernel structures, resolved from the running kernel's BTF by userspace
/// and handed to the programs as a read-only global. `valid == 0` means "not resolved": the
/// programs then only use what the classic tracepoints provide.
#[repr(C)]
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct KernelOffsets {
    pub valid: u32,
    pub task_tgid: u32,
    pub task_pid: u32,
    pub task_comm: u32,
    pub task_flags: u32,
    pub task_ptrace: u32,
    pub task_signal: u32,
    pub task_sighand: u32,
    pub task_blocked: u32,
    pub task_group_leader: u32,
    pub task_thread_pid: u32,
    pub task_cgroups: u32,
    pub task_exit_code: u32,
    /// `task_struct.start_time` (u64, CLOCK_MONOTONIC ns).
    pub task_start_time: u32,
    pub signal_flags: u32,
    pub signal_live: u32,
    /// `signal_struct.group_exit_code`.
    pub signal_group_exit_code: u32,
    /// `signal_struct.group_exec_task` (5.16+); 0 where the kernel has no such member.
    pub signal_group_exec_task: u32,
    pub sighand_action: u32,
    pub k_sigaction_size: u32,
    pub sigaction_handler: u32,
    pub sigaction_flags: u32,
    pub pid_level: u32,
    pub pid_numbers: u32,
    pub upid_size: u32,
    pub upid_nr: u32,
    pub css_set_dfl_cgrp: u32,
    pub cgroup_kn: u32,
    pub kernfs_node_id: u32,
    /// `kernfs_node.__parent` (6.15+) or `.parent`.
    pub kernfs_node_parent: u32,
    pub cgroup_root: u32,
    pub cgroup_root_hierarchy_id: u32,
    /// x86-64 `struct pt_regs`: the syscall number and its first three arguments; 0 in
    /// `regs_orig_ax` means "not resolved" (other architectures use the classic syscall
    /// tracepoints).
    pub regs_orig_ax: u32,
    pub regs_di: u32,
    pub regs_si: u32,
    pub regs_dx: u32,
    pub siginfo_errno: u32,
    pub siginfo_code: u32,
    pub siginfo_pid: u32,
    pub siginfo_uid: u32,
    /// `task_struct.cred` (the subjective credentials `current_uid()` reads) and `cred.uid`.
    pub task_cred: u32,
    pub cred_uid: u32,
    /// `task_struct.real_parent` (the process that forked it, or the reaper it was handed to).
    pub task_real_parent: u32,
    /// `task_struct.mm` and `mm_struct.arg_start`, `.arg_end`: the argument block.
    pub task_mm: u32,
    pub mm_arg_start: u32,
    pub mm_arg_end: u32,
    /// `linux_binprm.filename`.
    pub binprm_filename: u32,
}
const _: () = assert!(core::mem::size_of::<KernelOffsets>() == 47 * 4);

/// Set in a [`ClassicOffsets`] offset when the field is a `__data_loc` (a u32 holding the
/// data's length << 16 | its offset in the record).
pub const OFFSET_DATA_LOC: u32 = 1 << 31;

/// Offsets of the fields of the classic `signal:signal_generate` and `signal:signal_deliver`
/// records, read from their tracefs `format` files (used without BTF).
#[repr(C)]
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct ClassicOffsets {
    pub gen_sig: u32,
    pub gen_errno: u32,
    pub gen_code: u32,
    pub gen_comm: u32,
    pub gen_pid: u32,
    pub gen_group: u32,
    pub gen_result: u32,
    pub del_sig: u32,
    pub del_errno: u32,
    pub del_code: u32,
    pub del_sa_handler: u32,
    pub del_sa_flags: u32,
    /// `oom:mark_victim` pid; its comm, or 0 where the kernel's record has none.
    pub oom_pid: u32,
    pub oom_comm: u32,
}
const _: () = assert!(core::mem::size_of::<ClassicOffsets>() == 14 * 4);

// --- `FilterConfig::flags` bits: which in-kernel filters are active ---
pub const FILTER_PID_EITHER: u32 = 1 << 0;
pub const FILTER_PID_TARGET: u32 = 1 << 1;
pub const FILTER_PID_SENDER: u32 = 1 << 2;
pub const FILTER_COMM: u32 = 1 << 3;
pub const FILTER_SIGNAL: u32 = 1 << 4;
pub const FILTER_RESULT: u32 = 1 << 5;
pub const FILTER_CGROUP_EITHER: u32 = 1 << 6;
pub const FILTER_CGROUP_TARGET: u32 = 1 << 7;
pub const FILTER_CGROUP_SENDER: u32 = 1 << 8;

// --- values in the PID_FILTER / CGROUP_FILTER / COMM_FILTER maps: which side a key selects ---
pub const SIDE_EITHER: u32 = 1 << 0;
pub const SIDE_TARGET: u32 = 1 << 1;
pub const SIDE_SENDER: u32 = 1 << 2;

/// What the programs filter on and how they wake userspace; a read-only global.
#[repr(C)]
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct FilterConfig {
    /// `FILTER_*` bits.
    pub flags: u32,
    /// Bit `r` set: generate results `r` pass (with `FILTER_RESULT`).
    pub result_mask: u32,
    /// Bit `n - 1` set: signal `n` passes (with `FILTER_SIGNAL`); signal 0 never passes then.
    pub signal_mask: u64,
    /// Wake the reader only once this many bytes wait in the ring buffer (0: every record).
    pub wakeup_bytes: u64,
    /// This architecture's numbers of kill, tkill, tgkill, rt_sigqueueinfo, rt_tgsigqueueinfo
    /// and pidfd_send_signal, in `SYSCALL_*` order (index = SYSCALL_* - 1).
    pub syscall_nrs: [u32; 6],
}
const _: () = assert!(core::mem::size_of::<FilterConfig>() == 48);

/// Per-send state kept between a signal syscall's entry and its exit.
#[repr(C)]
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct PendingSend {
    pub syscall: u32,
    pub signo: i32,
    pub arg_pid: i32,
    pub arg_tid: i32,
}
const _: () = assert!(core::mem::size_of::<PendingSend>() == 16);

#[cfg(feature = "user")]
mod pod {
    // SAFETY: all these types are repr(C), made only of integers and integer arrays, with no
    // implicit padding (checked by the size assertions above).
    unsafe impl aya::Pod for super::Event {}
    unsafe impl aya::Pod for super::Exec {}
    unsafe impl aya::Pod for super::Task {}
    unsafe impl aya::Pod for super::KernelOffsets {}
    unsafe impl aya::Pod for super::ClassicOffsets {}
    unsafe impl aya::Pod for super::FilterConfig {}
    unsafe impl aya::Pod for super::PendingSend {}
}
