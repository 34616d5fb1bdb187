//! signal-trace kernel programs.
//!
//! One function per hook, named after it. Every program filters before it reserves ring-buffer
//! space, and counts what it could not send in `LOST`. Kernel structure layouts are not compiled
//! in: userspace resolves field offsets from the running kernel's BTF and passes them in
//! `OFFSETS`; without BTF the classic tracepoints' own fields (offsets in `CLASSIC`) are used.
#![no_std]
#![no_main]

use aya_ebpf::{
    bindings::{BPF_RB_AVAIL_DATA, BPF_RB_FORCE_WAKEUP, BPF_RB_NO_WAKEUP},
    helpers::{
        bpf_get_current_pid_tgid, bpf_get_current_uid_gid, bpf_probe_read_kernel,
        generated::{
            bpf_get_current_cgroup_id, bpf_get_current_comm, bpf_get_current_task,
            bpf_get_current_task_btf, bpf_ktime_get_ns,
        },
    },
    macros::{btf_tracepoint, map, raw_tracepoint, tracepoint},
    maps::{HashMap, PerCpuArray, RingBuf},
    programs::{BtfTracePointContext, RawTracePointContext, TracePointContext},
    Global,
};
use signal_trace_common::*;

#[unsafe(no_mangle)]
static OFFSETS: Global<KernelOffsets> = Global::new(KernelOffsets {
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
    signal_flags: 0,
    signal_live: 0,
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
});

#[unsafe(no_mangle)]
static CLASSIC: Global<ClassicOffsets> = Global::new(ClassicOffsets {
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

#[unsafe(no_mangle)]
static FILTER: Global<FilterConfig> = Global::new(FilterConfig {
    flags: 0,
    result_mask: 0,
    signal_mask: 0,
    wakeup_bytes: 0,
    syscall_nrs: [0; 6],
});

/// The events. Its size is set by userspace at load time (`--ring-size`).
#[map]
static EVENTS: RingBuf = RingBuf::with_byte_size(1 << 22, 0);

/// Records that could not be reserved, per CPU, indexed by `KIND_*`.
#[map]
static LOST: PerCpuArray<u64> = PerCpuArray::with_max_entries(KIND_COUNT, 0);

/// pid or tid -> `SIDE_*` bits it is selected for.
#[map]
static PID_FILTER: HashMap<u32, u32> = HashMap::with_max_entries(4096, 0);

/// cgroup id -> `SIDE_*` bits it is selected for.
#[map]
static CGROUP_FILTER: HashMap<u64, u32> = HashMap::with_max_entries(16384, 0);

/// comm (NUL-padded) -> `SIDE_*` bits.
#[map]
static COMM_FILTER: HashMap<[u8; COMM_LEN], u32> = HashMap::with_max_entries(64, 0);

/// tid -> the arguments of a signal syscall in progress.
#[map]
static PENDING_SENDS: HashMap<u32, PendingSend> = HashMap::with_max_entries(16384, 0);

// ---------------------------------------------------------------------------------------------
// Small helpers

/// An unknown task, as a constant (zeroed with word stores, not a byte-wise memset).
const NO_TASK: Task = Task {
    tgid: 0,
    tid: 0,
    ns_pid: 0,
    uid: 0,
    cgroup_id: 0,
    comm: [0; COMM_LEN],
};

#[inline(always)]
fn read<T: Default>(base: u64, off: u32) -> T {
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
trait Mem {
    /// Typed loads: the verifier checks them field by field, so one read may not span
    /// adjacent fields, but each costs no helper call.
    const TYPED: bool;
    fn read<T: Default>(base: u64, off: u32) -> T;
    /// The current task, as a pointer this reader can follow.
    fn current_task() -> u64;
}

struct Probe;

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

struct Direct;

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
fn read_comm<M: Mem>(base: u64, off: u32) -> [u8; COMM_LEN] {
    let words: [u64; 2] = if M::TYPED {
        [M::read(base, off), M::read(base, off + 8)]
    } else {
        read(base, off)
    };
    // SAFETY: [u64; 2] and [u8; 16] have the same size, and any bytes are a valid [u8; 16].
    unsafe { core::mem::transmute::<[u64; 2], [u8; COMM_LEN]>(words) }
}

/// Writes a whole record into reserved ring memory, field by field, with volatile stores: the
/// compiler may then neither build it on the stack and copy it, nor merge runs of zeros into a
/// `memset` call (a byte-at-a-time loop in BPF). Ring memory is not zeroed, and every field is
/// written; the hot programs spell out every field of `ev`, so that none of it is built on the
/// stack either.
#[inline(always)]
fn write_event(rec: *mut Event, ev: Event) {
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
    }
}

#[inline(always)]
unsafe fn write_task(dst: *mut Task, t: &Task) {
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

#[inline(always)]
fn count_lost(kind: u32) {
    if let Some(p) = LOST.get_ptr_mut(kind) {
        unsafe { *p += 1 };
    }
}

/// Records submitted on each CPU (slot 0), so that the ring's fill level is queried only on
/// every `WAKEUP_EVERY`th record.
#[map]
static SUBMITTED: PerCpuArray<u64> = PerCpuArray::with_max_entries(1, 0);

/// How often a CPU checks whether to wake the reader; a power of two.
const WAKEUP_EVERY: u64 = 16;

/// Notification batching: wake the reader only when enough data waits, checked on every
/// `WAKEUP_EVERY`th record of a CPU (the per-CPU counter is a plain load and store; the fill
/// query is a helper call). Userspace also polls on a short timer, so a quiet stream is still
/// flushed promptly.
#[inline(always)]
fn wakeup_flags(cfg: &FilterConfig) -> u64 {
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

#[inline(always)]
fn pid_sides(tgid: u32, tid: u32) -> u32 {
    let mut sides = unsafe { PID_FILTER.get(&tgid) }.copied().unwrap_or(0);
    if tid != tgid && tid != 0 {
        sides |= unsafe { PID_FILTER.get(&tid) }.copied().unwrap_or(0);
    }
    sides
}

#[inline(always)]
fn cgroup_sides(id: u64) -> u32 {
    if id == 0 {
        return 0;
    }
    unsafe { CGROUP_FILTER.get(&id) }.copied().unwrap_or(0)
}

/// How deep a selected cgroup may sit above a task's own: a pod's cgroup is two or three
/// levels above its containers' processes (kubepods/<qos>/pod<uid>/<container>/...).
const CGROUP_DEPTH: u32 = 8;

/// The filter sides of cgroup `id` (whose kernfs node is `kn`) and its ancestors
/// (kernfs_node.parent chain), so that a selected pod or container cgroup also selects cgroups
/// created below it later. Without its node (`kn == 0`: no BTF) only the exact id is known.
#[inline(always)]
fn cgroup_chain_sides(o: &KernelOffsets, kn: u64, id: u64) -> u32 {
    let mut sides = cgroup_sides(id);
    let mut node = if kn == 0 {
        0
    } else {
        read(kn, o.kernfs_node_parent)
    };
    for _ in 1..CGROUP_DEPTH {
        if node == 0 {
            break;
        }
        sides |= cgroup_sides(read::<u64>(node, o.kernfs_node_id));
        node = read(node, o.kernfs_node_parent);
    }
    sides
}

/// The kernfs node of a task's cgroup v2 cgroup (task->cgroups->dfl_cgrp->kn).
#[inline(always)]
fn task_cgroup_kn(o: &KernelOffsets, task: u64) -> u64 {
    if o.valid == 0 {
        return 0;
    }
    let cgroups: u64 = read(task, o.task_cgroups);
    let cgrp: u64 = read(cgroups, o.css_set_dfl_cgrp);
    read(cgrp, o.cgroup_kn)
}

/// The kernfs node of the current task's cgroup when a cgroup filter needs it, else 0 (for the
/// programs that identify the current task through its helpers).
#[inline(always)]
fn current_cgroup_kn(cfg: &FilterConfig, o: &KernelOffsets) -> u64 {
    if cfg.flags & CGROUP_FILTERS == 0 {
        return 0;
    }
    task_cgroup_kn(o, unsafe { bpf_get_current_task() })
}

#[inline(always)]
fn comm_sides(comm: &[u8; COMM_LEN]) -> u32 {
    unsafe { COMM_FILTER.get(comm) }.copied().unwrap_or(0)
}

/// Applies one kind of side-aware filter: `t` and `s` are the `SIDE_*` bits the target and the
/// sender hold in the filter's map.
#[inline(always)]
fn sides_pass(flags: u32, either: u32, target: u32, sender: u32, t: u32, s: u32) -> bool {
    if flags & either != 0 && (t | s) & SIDE_EITHER == 0 {
        return false;
    }
    if flags & target != 0 && t & SIDE_TARGET == 0 {
        return false;
    }
    if flags & sender != 0 && s & SIDE_SENDER == 0 {
        return false;
    }
    true
}

#[inline(always)]
fn signal_passes(cfg: &FilterConfig, sig: u32) -> bool {
    if cfg.flags & FILTER_SIGNAL == 0 {
        return true;
    }
    sig >= 1 && sig <= 64 && (cfg.signal_mask >> (sig - 1)) & 1 == 1
}

const PID_FILTERS: u32 = FILTER_PID_EITHER | FILTER_PID_TARGET | FILTER_PID_SENDER;
const CGROUP_FILTERS: u32 = FILTER_CGROUP_EITHER | FILTER_CGROUP_TARGET | FILTER_CGROUP_SENDER;
/// The filters that look at either side's identity (pid, cgroup, comm).
const SIDE_FILTERS: u32 = PID_FILTERS | CGROUP_FILTERS | FILTER_COMM;

/// The side filters (pid, cgroup, comm) for one signal between `sender` and `target`;
/// `sender_kn` and `target_kn` are the kernfs nodes of their cgroups where known (0 if not),
/// for the cgroup ancestry.
#[inline(always)]
fn sides_filter(
    cfg: &FilterConfig,
    sender: &Task,
    target: &Task,
    sender_kn: u64,
    target_kn: u64,
) -> bool {
    if cfg.flags & PID_FILTERS != 0 {
        let t = pid_sides(target.tgid, target.tid);
        let s = pid_sides(sender.tgid, sender.tid);
        if !sides_pass(
            cfg.flags,
            FILTER_PID_EITHER,
            FILTER_PID_TARGET,
            FILTER_PID_SENDER,
            t,
            s,
        ) {
            return false;
        }
    }
    if cfg.flags & CGROUP_FILTERS != 0 {
        let o = OFFSETS.load();
        let t = cgroup_chain_sides(&o, target_kn, target.cgroup_id);
        let s = cgroup_chain_sides(&o, sender_kn, sender.cgroup_id);
        if !sides_pass(
            cfg.flags,
            FILTER_CGROUP_EITHER,
            FILTER_CGROUP_TARGET,
            FILTER_CGROUP_SENDER,
            t,
            s,
        ) {
            return false;
        }
    }
    if cfg.flags & FILTER_COMM != 0 && (comm_sides(&target.comm) | comm_sides(&sender.comm)) == 0 {
        return false;
    }
    true
}

/// The current task as a sender, through the helpers made for it (any program type).
#[inline(always)]
fn current_task() -> Task {
    let pid_tgid = bpf_get_current_pid_tgid();
    let words: [u64; 2] = [0; 2];
    let mut t = Task {
        tgid: (pid_tgid >> 32) as u32,
        tid: pid_tgid as u32,
        ns_pid: 0,
        uid: bpf_get_current_uid_gid() as u32,
        cgroup_id: unsafe { bpf_get_current_cgroup_id() },
        // SAFETY: as in read_comm.
        comm: unsafe { core::mem::transmute::<[u64; 2], [u8; COMM_LEN]>(words) },
    };
    // bpf_get_current_comm() writes at most 16 bytes, NUL-terminated, into the buffer.
    unsafe {
        bpf_get_current_comm(
            t.comm.as_mut_ptr() as *mut core::ffi::c_void,
            COMM_LEN as u32,
        )
    };
    t
}

/// The current task as a sender: with typed loads, read from the task_struct that
/// bpf_get_current_task_btf() returns (one helper call in place of four); otherwise through
/// the dedicated helpers. Reads what those helpers read: task.{pid,tgid,comm},
/// task->cred->uid (current_uid()), task->cgroups->dfl_cgrp->kn->id (the cgroup v2 id).
/// Also returns the cgroup's kernfs node where known (with typed loads, or when `task` is
/// given), for the cgroup filters.
#[inline(always)]
fn current_identity<M: Mem>(o: &KernelOffsets, task: u64) -> (Task, u64) {
    if !M::TYPED {
        let kn = if task == 0 {
            0
        } else {
            task_cgroup_kn(o, task)
        };
        return (current_task(), kn);
    }
    let cred: u64 = M::read(task, o.task_cred);
    let cgroups: u64 = M::read(task, o.task_cgroups);
    let cgrp: u64 = M::read(cgroups, o.css_set_dfl_cgrp);
    let kn: u64 = M::read(cgrp, o.cgroup_kn);
    let t = Task {
        tgid: M::read(task, o.task_tgid),
        tid: M::read(task, o.task_pid),
        ns_pid: 0,
        uid: M::read(cred, o.cred_uid),
        cgroup_id: M::read(kn, o.kernfs_node_id),
        comm: read_comm::<M>(task, o.task_comm),
    };
    (t, kn)
}

/// Identity of a task read through BTF offsets: the thread, its process, the process id in its
/// own PID namespace, the cgroup v2 id and the process leader's comm.
/// Relies on: task_struct.{tgid,pid,group_leader,thread_pid,cgroups,comm} (include/linux/sched.h),
/// struct pid.{level,numbers[]} (include/linux/pid.h), css_set.dfl_cgrp, cgroup.kn, kernfs_node.id.
#[inline(always)]
fn task_identity<M: Mem>(o: &KernelOffsets, task: u64) -> (Task, u64) {
    // pid and tgid are adjacent in task_struct (pid_t pid; pid_t tgid;): one read for both.
    let (tid, tgid) = if !M::TYPED && o.task_tgid == o.task_pid + 4 {
        let both: u64 = M::read(task, o.task_pid);
        (both as u32, (both >> 32) as u32)
    } else {
        (
            M::read::<u32>(task, o.task_pid),
            M::read::<u32>(task, o.task_tgid),
        )
    };
    let leader: u64 = M::read(task, o.task_group_leader);
    let pid: u64 = M::read(leader, o.task_thread_pid);
    let level: u32 = M::read(pid, o.pid_level);
    // In the initial namespace (level 0) the namespace pid is the leader's own pid, the tgid;
    // deeper levels index pid->numbers[] by a variable, which only the helper can read.
    let ns_pid = if level == 0 {
        tgid
    } else if level < 32 {
        read::<u32>(pid, o.pid_numbers + level * o.upid_size + o.upid_nr)
    } else {
        0
    };
    let cgroups: u64 = M::read(task, o.task_cgroups);
    let cgrp: u64 = M::read(cgroups, o.css_set_dfl_cgrp);
    let kn: u64 = M::read(cgrp, o.cgroup_kn);
    let t = Task {
        tgid,
        tid,
        ns_pid,
        uid: 0,
        cgroup_id: M::read(kn, o.kernfs_node_id),
        comm: read_comm::<M>(leader, o.task_comm),
    };
    (t, kn)
}

// ---------------------------------------------------------------------------------------------
// signal_generate

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

/// raw_tp/signal_generate: the same with bpf_probe_read_kernel().
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

    if !signal_passes(&cfg, sig) {
        return 0;
    }
    if cfg.flags & FILTER_RESULT != 0 && (cfg.result_mask >> (result & 31)) & 1 == 0 {
        return 0;
    }
    let current = if M::TYPED || cfg.flags & CGROUP_FILTERS != 0 {
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
        // si_errno and si_code are adjacent (int si_signo, si_errno, si_code): one read.
        p if !M::TYPED && o.siginfo_code == o.siginfo_errno + 4 => {
            let both: u64 = M::read(p, o.siginfo_errno);
            ((both >> 32) as i32, both as i32, 0)
        }
        p => (
            M::read::<i32>(p, o.siginfo_code),
            M::read::<i32>(p, o.siginfo_errno),
            0,
        ),
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
            signo: sig,
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
    if !signal_passes(&cfg, sig) {
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
            signo: sig,
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

// ---------------------------------------------------------------------------------------------
// signal_deliver

/// signal_deliver: TP_PROTO(int sig, struct kernel_siginfo *info, struct k_sigaction *ka),
/// include/trace/events/signal.h; called by the receiver in get_signal() (kernel/signal.c)
/// after it dequeued the signal, before the ignore/default-action checks. As a BTF tracepoint
/// (typed loads), with the raw tracepoint below as the fallback.
#[btf_tracepoint(function = "signal_deliver")]
pub fn signal_deliver(ctx: BtfTracePointContext) -> i32 {
    deliver::<Direct>([ctx.arg(0), ctx.arg(1), ctx.arg(2)])
}

/// raw_tp/signal_deliver: the same with bpf_probe_read_kernel().
#[raw_tracepoint(tracepoint = "signal_deliver")]
pub fn signal_deliver_raw(ctx: RawTracePointContext) -> i32 {
    deliver::<Probe>([ctx.arg(0), ctx.arg(1), ctx.arg(2)])
}

#[inline(always)]
fn deliver<M: Mem>(args: [u64; 3]) -> i32 {
    let o = OFFSETS.load();
    let cfg = FILTER.load();
    let sig = args[0] as u32;
    let info = args[1];
    let ka = args[2];
    if !signal_passes(&cfg, sig) {
        return 0;
    }
    let task = M::current_task();
    let (mut receiver, receiver_kn) = task_identity::<M>(&o, task);
    receiver.uid = if M::TYPED {
        M::read(M::read::<u64>(task, o.task_cred), o.cred_uid)
    } else {
        bpf_get_current_uid_gid() as u32
    };
    let si_pid = if info > 1 {
        M::read::<i32>(info, o.siginfo_pid)
    } else {
        0
    };
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
        p => (
            M::read::<i32>(p, o.siginfo_code),
            M::read::<i32>(p, o.siginfo_errno),
            M::read::<u32>(p, o.siginfo_uid),
        ),
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
            flags: FLAG_FULL,
            signal_flags: 0,
            status: 0,
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
        },
    );
    entry.submit(wakeup_flags(&cfg));
    0
}

/// tracepoint/signal/signal_deliver without BTF: sig, errno, code, sa_handler, sa_flags.
#[tracepoint(category = "signal", name = "signal_deliver")]
pub fn signal_deliver_classic(ctx: TracePointContext) -> i32 {
    let c = CLASSIC.load();
    let cfg = FILTER.load();
    let sig = unsafe { ctx.read_at::<i32>(c.del_sig as usize) }.unwrap_or(0) as u32;
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
    write_event(
        entry.as_mut_ptr(),
        Event {
            kind: KIND_DELIVER,
            signo: sig,
            ts_ns: unsafe { bpf_ktime_get_ns() },
            code: unsafe { ctx.read_at::<i32>(c.del_code as usize) }.unwrap_or(0),
            errno: unsafe { ctx.read_at::<i32>(c.del_errno as usize) }.unwrap_or(0),
            target: receiver,
            handler: unsafe { ctx.read_at::<u64>(c.del_sa_handler as usize) }.unwrap_or(0),
            sa_flags: unsafe { ctx.read_at::<u64>(c.del_sa_flags as usize) }.unwrap_or(0),
            ..Event::default()
        },
    );
    entry.submit(wakeup_flags(&cfg));
    0
}

// ---------------------------------------------------------------------------------------------
// sched_process_exit

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

// ---------------------------------------------------------------------------------------------
// cgroup_mkdir

/// raw_tp/cgroup_mkdir: TP_PROTO(struct cgroup *cgrp, const char *path),
/// include/trace/events/cgroup.h, fired by cgroup_mkdir() (kernel/cgroup/cgroup.c). Only cgroups
/// of the v2 (default) hierarchy, whose root has hierarchy_id 0, matter: their kernfs ids are
/// the cgroup ids signals carry. Attached only while container filters are active, so that
/// userspace can add a new container's cgroup to them at once.
#[raw_tracepoint(tracepoint = "cgroup_mkdir")]
pub fn cgroup_mkdir(ctx: RawTracePointContext) -> i32 {
    let o = OFFSETS.load();
    let cgrp = ctx.arg::<u64>(0);
    let root: u64 = read(cgrp, o.cgroup_root);
    if read::<i32>(root, o.cgroup_root_hierarchy_id) != 0 {
        return 0;
    }
    let kn: u64 = read(cgrp, o.cgroup_kn);
    let Some(mut entry) = EVENTS.reserve::<Event>(0) else {
        count_lost(KIND_CGROUP);
        return 0;
    };
    write_event(
        entry.as_mut_ptr(),
        Event {
            kind: KIND_CGROUP,
            ts_ns: unsafe { bpf_ktime_get_ns() },
            target: Task {
                cgroup_id: read(kn, o.kernfs_node_id),
                ..Task::default()
            },
            ..Event::default()
        },
    );
    // A new cgroup is rare and time-critical: always wake the reader.
    entry.submit(BPF_RB_FORCE_WAKEUP as u64);
    0
}

// ---------------------------------------------------------------------------------------------
// oom:mark_victim

/// tracepoint/oom/mark_victim, fired by mark_oom_victim() (mm/oom_kill.c) in the task that ran
/// the OOM killer, before the victim's SIGKILL. Its record layout changed over kernel versions
/// (pid only in 6.1; comm and memory counters later), so offsets come from its format file.
#[tracepoint(category = "oom", name = "mark_victim")]
pub fn oom_mark_victim(ctx: TracePointContext) -> i32 {
    let c = CLASSIC.load();
    let cfg = FILTER.load();
    let mut victim = Task {
        tgid: unsafe { ctx.read_at::<i32>(c.oom_pid as usize) }.unwrap_or(0) as u32,
        ..Task::default()
    };
    victim.tid = victim.tgid;
    if c.oom_comm != 0 {
        let mut at = c.oom_comm & !OFFSET_DATA_LOC;
        if c.oom_comm & OFFSET_DATA_LOC != 0 {
            at = unsafe { ctx.read_at::<u32>(at as usize) }.unwrap_or(0) & 0xffff;
        }
        if at != 0 {
            if let Ok(comm) = unsafe { ctx.read_at::<[u8; COMM_LEN]>(at as usize) } {
                victim.comm = comm;
            }
        }
    }
    let trigger = current_task();
    if !signal_passes(&cfg, 9) {
        return 0;
    }
    let mut cfg_here = cfg;
    // The victim's cgroup is not in the record: its side of a cgroup filter is decided in
    // userspace from the SIGKILL that follows.
    cfg_here.flags &= !(FILTER_CGROUP_TARGET | FILTER_CGROUP_EITHER);
    let o = OFFSETS.load();
    if !sides_filter(
        &cfg_here,
        &trigger,
        &victim,
        current_cgroup_kn(&cfg_here, &o),
        0,
    ) {
        return 0;
    }
    let Some(mut entry) = EVENTS.reserve::<Event>(0) else {
        count_lost(KIND_OOM);
        return 0;
    };
    write_event(
        entry.as_mut_ptr(),
        Event {
            kind: KIND_OOM,
            signo: 9,
            ts_ns: unsafe { bpf_ktime_get_ns() },
            sender: trigger,
            target: victim,
            ..Event::default()
        },
    );
    entry.submit(wakeup_flags(&cfg));
    0
}

// ---------------------------------------------------------------------------------------------
// Failed sends: signal_generate never fires when a send fails its permission or lookup checks
// (kill_pid_info / do_send_specific / do_rt_sigqueueinfo in kernel/signal.c return first), so
// the syscalls are watched instead: with BTF on x86-64 by one raw `sys_exit` program; otherwise
// by the classic per-syscall tracepoints, whose record is `struct syscall_trace_enter`
// (kernel/trace/trace_syscalls.c): an 8-byte trace_entry, int nr, then the arguments as
// unsigned longs from offset 16; `struct syscall_trace_exit` has `long ret` at offset 16.

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

/// syscalls/sys_enter_kill: kill(pid_t pid, int sig).
#[tracepoint(category = "syscalls", name = "sys_enter_kill")]
pub fn sys_enter_kill(ctx: TracePointContext) -> i32 {
    remember_send(SYSCALL_KILL, arg(&ctx, 1) as u32, arg(&ctx, 0) as i32, 0)
}

/// syscalls/sys_enter_tkill: tkill(pid_t pid, int sig).
#[tracepoint(category = "syscalls", name = "sys_enter_tkill")]
pub fn sys_enter_tkill(ctx: TracePointContext) -> i32 {
    remember_send(SYSCALL_TKILL, arg(&ctx, 1) as u32, arg(&ctx, 0) as i32, 0)
}

/// syscalls/sys_enter_tgkill: tgkill(pid_t tgid, pid_t pid, int sig).
#[tracepoint(category = "syscalls", name = "sys_enter_tgkill")]
pub fn sys_enter_tgkill(ctx: TracePointContext) -> i32 {
    remember_send(
        SYSCALL_TGKILL,
        arg(&ctx, 2) as u32,
        arg(&ctx, 0) as i32,
        arg(&ctx, 1) as i32,
    )
}

/// syscalls/sys_enter_rt_sigqueueinfo: rt_sigqueueinfo(pid_t pid, int sig, siginfo_t *uinfo).
#[tracepoint(category = "syscalls", name = "sys_enter_rt_sigqueueinfo")]
pub fn sys_enter_rt_sigqueueinfo(ctx: TracePointContext) -> i32 {
    remember_send(
        SYSCALL_RT_SIGQUEUEINFO,
        arg(&ctx, 1) as u32,
        arg(&ctx, 0) as i32,
        0,
    )
}

/// syscalls/sys_enter_rt_tgsigqueueinfo: rt_tgsigqueueinfo(pid_t tgid, pid_t pid, int sig, ...).
#[tracepoint(category = "syscalls", name = "sys_enter_rt_tgsigqueueinfo")]
pub fn sys_enter_rt_tgsigqueueinfo(ctx: TracePointContext) -> i32 {
    remember_send(
        SYSCALL_RT_TGSIGQUEUEINFO,
        arg(&ctx, 2) as u32,
        arg(&ctx, 0) as i32,
        arg(&ctx, 1) as i32,
    )
}

/// syscalls/sys_enter_pidfd_send_signal: pidfd_send_signal(int pidfd, int sig, ...).
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
/// one program attached to all six exits; emits a record when the send failed.
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

#[cfg(not(test))]
#[panic_handler]
fn panic(_info: &core::panic::PanicInfo) -> ! {
    loop {}
}
