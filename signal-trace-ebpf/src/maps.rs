//! The maps and read-only globals every program shares: the ring buffer, the loss and wakeup
//! counters, the filter tables, and the offsets and filter settings userspace fills in at load.
//!
//! The globals are `#[unsafe(no_mangle)]` so that userspace can find them by name and
//! override them (`EbpfLoader::override_global`); map names are what userspace opens.

use aya_ebpf::{
    macros::map,
    maps::{HashMap, LruHashMap, PerCpuArray, RingBuf},
    Global,
};
use signal_trace_common::*;

/// Kernel structure field offsets, resolved by userspace from the running kernel's BTF.
#[unsafe(no_mangle)]
pub(crate) static OFFSETS: Global<KernelOffsets> = Global::new(KernelOffsets {
    valid: 0,
    task_tgid: 0,
    task_pid: 0,
    task_comm: 0,
    task_flags: 0,
    task_ptrace: 0,
    task_signal: 0,
    task_sighand: 0,
    task_blocked: 0,
    task_group_leader: 0,
    task_thread_pid: 0,
    task_cgroups: 0,
    task_exit_code: 0,
    task_start_time: 0,
    signal_flags: 0,
    signal_live: 0,
    signal_group_exit_code: 0,
    signal_group_exec_task: 0,
    sighand_action: 0,
    k_sigaction_size: 0,
    sigaction_handler: 0,
    sigaction_flags: 0,
    pid_level: 0,
    pid_numbers: 0,
    upid_size: 0,
    upid_nr: 0,
    css_set_dfl_cgrp: 0,
    cgroup_kn: 0,
    kernfs_node_id: 0,
    kernfs_node_parent: 0,
    cgroup_root: 0,
    cgroup_root_hierarchy_id: 0,
    regs_orig_ax: 0,
    regs_di: 0,
    regs_si: 0,
    regs_dx: 0,
    siginfo_errno: 0,
    siginfo_code: 0,
    siginfo_pid: 0,
    siginfo_uid: 0,
    task_cred: 0,
    cred_uid: 0,
    task_real_parent: 0,
    task_mm: 0,
    mm_arg_start: 0,
    mm_arg_end: 0,
    binprm_filename: 0,
});

/// Field offsets of the classic tracepoint records, read by userspace from their format files.
#[unsafe(no_mangle)]
pub(crate) static CLASSIC: Global<ClassicOffsets> = Global::new(ClassicOffsets {
    gen_sig: 0,
    gen_errno: 0,
    gen_code: 0,
    gen_comm: 0,
    gen_pid: 0,
    gen_group: 0,
    gen_result: 0,
    del_sig: 0,
    del_errno: 0,
    del_code: 0,
    del_sa_handler: 0,
    del_sa_flags: 0,
    oom_pid: 0,
    oom_comm: 0,
});

/// The active in-kernel filters and the wakeup threshold.
#[unsafe(no_mangle)]
pub(crate) static FILTER: Global<FilterConfig> = Global::new(FilterConfig {
    flags: 0,
    result_mask: 0,
    signal_mask: 0,
    wakeup_bytes: 0,
    syscall_nrs: [0; 6],
});

/// The events. Its size is set by userspace at load time (`--ring-size`).
#[map]
pub(crate) static EVENTS: RingBuf = RingBuf::with_byte_size(1 << 22, 0);

/// The exec and fork records, apart from the events: a signal storm that fills `EVENTS` does
/// not blind the process-identity cache, and a burst of execs does not push out signals.
#[map]
pub(crate) static PROCS: RingBuf = RingBuf::with_byte_size(PROCS_BYTES, 0);

/// The size of `PROCS`: about 750 exec records.
pub(crate) const PROCS_BYTES: u32 = 1 << 20;

/// Records that could not be reserved, per CPU, indexed by `KIND_*`.
#[map]
pub(crate) static LOST: PerCpuArray<u64> = PerCpuArray::with_max_entries(KIND_COUNT, 0);

/// pid or tid -> `SIDE_*` bits it is selected for.
#[map]
pub(crate) static PID_FILTER: HashMap<u32, u32> = HashMap::with_max_entries(4096, 0);

/// cgroup id -> `SIDE_*` bits it is selected for.
#[map]
pub(crate) static CGROUP_FILTER: HashMap<u64, u32> = HashMap::with_max_entries(16384, 0);

/// comm (NUL-padded) -> `SIDE_*` bits.
#[map]
pub(crate) static COMM_FILTER: HashMap<[u8; COMM_LEN], u32> = HashMap::with_max_entries(64, 0);

/// tid -> the arguments of a signal syscall in progress.
#[map]
pub(crate) static PENDING_SENDS: HashMap<u32, PendingSend> = HashMap::with_max_entries(16384, 0);

/// (`signal_struct` address, group leader's `start_time`) -> 0: processes whose end was
/// reported, on kernels whose `sched_process_exit` does not say which thread ends the process
/// (before 6.16); see `exit`. An LRU: the oldest keys make room for new ones.
#[map]
pub(crate) static EXITED: LruHashMap<[u64; 2], u8> = LruHashMap::with_max_entries(4096, 0);

/// Records submitted on each CPU (slot 0), so that the ring's fill level is queried only on
/// every `WAKEUP_EVERY`th record.
#[map]
pub(crate) static SUBMITTED: PerCpuArray<u64> = PerCpuArray::with_max_entries(1, 0);
