//! Privileges: what tracing needs, and giving up the rest once the programs are attached.

use caps::{CapSet, Capability, CapsHashSet};

#[derive(Debug, thiserror::Error)]
pub enum PrivilegeError {
    #[error("signal-trace: tracing needs root, or the capabilities CAP_BPF and CAP_PERFMON (CAP_SYS_ADMIN before Linux 5.8)")]
    Missing,
    #[error("cannot drop capabilities: {0}")]
    Drop(String),
    #[error("cannot install the system call filter: {0}")]
    Seccomp(String),
}

/// Loading programs that read kernel memory takes CAP_BPF and CAP_PERFMON (Linux 5.8 and
/// later), or CAP_SYS_ADMIN. Mounting tracefs when it is missing takes CAP_SYS_ADMIN, which
/// `tracer` reports on its own if it is needed and absent.
pub fn check() -> Result<(), PrivilegeError> {
    let has = |c| caps::has_cap(None, CapSet::Effective, c).unwrap_or(false);
    if has(Capability::CAP_SYS_ADMIN) || (has(Capability::CAP_BPF) && has(Capability::CAP_PERFMON))
    {
        Ok(())
    } else {
        Err(PrivilegeError::Missing)
    }
}

/// What the running tracer still needs once everything is attached: the bpf(2) calls that read
/// the loss counters and update filter maps (CAP_BPF; CAP_SYS_ADMIN on kernels without
/// CAP_BPF, where it was the capability used to load).
pub fn keep_after_attach() -> CapsHashSet {
    let mut keep = CapsHashSet::new();
    if caps::has_cap(None, CapSet::Effective, Capability::CAP_BPF).unwrap_or(false) {
        keep.insert(Capability::CAP_BPF);
    } else {
        keep.insert(Capability::CAP_SYS_ADMIN);
    }
    keep
}

/// Drops every capability but `keep` from the effective, permitted and inheritable sets and the
/// bounding set, and sets no_new_privs, so nothing regains them (not even through exec).
pub fn drop_all_but(keep: &CapsHashSet) -> Result<(), PrivilegeError> {
    let err = |e: caps::errors::CapsError| PrivilegeError::Drop(e.to_string());
    for cap in caps::all() {
        if !keep.contains(&cap) {
            // Dropping from the bounding set needs CAP_SETPCAP, so it goes first.
            let _ = caps::drop(None, CapSet::Bounding, cap);
        }
    }
    let mut keep_set = keep.clone();
    keep_set.retain(|c| caps::has_cap(None, CapSet::Permitted, *c).unwrap_or(false));
    caps::set(None, CapSet::Inheritable, &CapsHashSet::new()).map_err(err)?;
    caps::set(None, CapSet::Effective, &keep_set).map_err(err)?;
    caps::set(None, CapSet::Permitted, &keep_set).map_err(err)?;
    // SAFETY: prctl(PR_SET_NO_NEW_PRIVS) has no memory-safety preconditions.
    if unsafe { libc::prctl(libc::PR_SET_NO_NEW_PRIVS, 1, 0, 0, 0) } != 0 {
        return Err(PrivilegeError::Drop(
            std::io::Error::last_os_error().to_string(),
        ));
    }
    Ok(())
}

/// The system calls the tracer makes once its programs are attached: the trace loop (epoll,
/// the ring buffer's mappings, `bpf(2)` for the loss counters and the container filter,
/// timers, signals), the output (write, fsync, rename and open for reopening and rotation,
/// fchmod, ftruncate after a failed batch), the cgroup scans (openat, getdents64, statx), the
/// containerd client (a Unix socket: socket, connect, send and receive) and the metrics
/// endpoint (accept4, send and receive), the threads the runtime client and the metrics
/// endpoint already started, and the allocator. Everything else fails with EPERM.
#[cfg(any(target_arch = "x86_64", target_arch = "aarch64"))]
const ALLOWED_AFTER_ATTACH: &[libc::c_long] = &[
    // I/O on open descriptors
    libc::SYS_read,
    libc::SYS_write,
    libc::SYS_readv,
    libc::SYS_writev,
    libc::SYS_pread64,
    libc::SYS_pwrite64,
    libc::SYS_lseek,
    libc::SYS_close,
    libc::SYS_fcntl,
    libc::SYS_ioctl,
    libc::SYS_fsync,
    libc::SYS_fdatasync,
    libc::SYS_ftruncate,
    libc::SYS_fchmod,
    libc::SYS_fstat,
    libc::SYS_newfstatat,
    libc::SYS_statx,
    // files: output reopen and rotation, cgroup scans, /proc reads
    libc::SYS_openat,
    libc::SYS_getdents64,
    libc::SYS_renameat,
    libc::SYS_renameat2,
    libc::SYS_readlinkat,
    // the event loop
    libc::SYS_epoll_create1,
    libc::SYS_epoll_ctl,
    libc::SYS_epoll_pwait,
    libc::SYS_epoll_pwait2,
    libc::SYS_ppoll,
    libc::SYS_pselect6,
    libc::SYS_eventfd2,
    libc::SYS_pipe2,
    libc::SYS_futex,
    libc::SYS_sched_yield,
    libc::SYS_sched_getaffinity,
    libc::SYS_clock_gettime,
    libc::SYS_clock_getres,
    libc::SYS_clock_nanosleep,
    libc::SYS_nanosleep,
    libc::SYS_gettimeofday,
    libc::SYS_restart_syscall,
    // the kernel programs' maps
    libc::SYS_bpf,
    // sockets: the containerd client and the metrics endpoint
    libc::SYS_socket,
    libc::SYS_connect,
    libc::SYS_accept4,
    libc::SYS_getsockopt,
    libc::SYS_setsockopt,
    libc::SYS_getsockname,
    libc::SYS_getpeername,
    libc::SYS_sendto,
    libc::SYS_recvfrom,
    libc::SYS_sendmsg,
    libc::SYS_recvmsg,
    libc::SYS_shutdown,
    // memory
    libc::SYS_mmap,
    libc::SYS_munmap,
    libc::SYS_mremap,
    libc::SYS_mprotect,
    libc::SYS_madvise,
    libc::SYS_brk,
    libc::SYS_membarrier,
    // signals and threads
    libc::SYS_rt_sigaction,
    libc::SYS_rt_sigprocmask,
    libc::SYS_rt_sigreturn,
    libc::SYS_sigaltstack,
    libc::SYS_tgkill,
    libc::SYS_clone,
    libc::SYS_clone3,
    libc::SYS_set_robust_list,
    libc::SYS_rseq,
    libc::SYS_prctl,
    libc::SYS_getpid,
    libc::SYS_gettid,
    libc::SYS_getuid,
    libc::SYS_geteuid,
    libc::SYS_getgid,
    libc::SYS_getegid,
    libc::SYS_getrandom,
    libc::SYS_prlimit64,
    libc::SYS_uname,
    libc::SYS_exit,
    libc::SYS_exit_group,
];

/// The same calls under their older names, which x86-64 still has and glibc or Rust's
/// standard library may use there.
#[cfg(target_arch = "x86_64")]
const ALLOWED_X86_64: &[libc::c_long] = &[
    libc::SYS_open,
    libc::SYS_stat,
    libc::SYS_lstat,
    libc::SYS_poll,
    libc::SYS_select,
    libc::SYS_epoll_wait,
    libc::SYS_rename,
    libc::SYS_readlink,
    libc::SYS_pipe,
    libc::SYS_accept,
    libc::SYS_arch_prctl,
];
#[cfg(not(target_arch = "x86_64"))]
const ALLOWED_X86_64: &[libc::c_long] = &[];

/// Installs the allow-list of [`ALLOWED_AFTER_ATTACH`] on every thread of the process
/// (seccomp's TSYNC), after the programs are attached and privileges dropped: a bug in the
/// metrics parser, the containerd client or a decoder can no longer execute programs, load
/// BPF programs of its own (loading also needs capabilities that are gone), ptrace, mount,
/// change uids or open new kinds of sockets' peers beyond what the list allows. Unlisted calls
/// fail with EPERM rather than kill the tracer, so a path the list missed is an error message,
/// not a silent death.
#[cfg(any(target_arch = "x86_64", target_arch = "aarch64"))]
pub fn install_seccomp() -> Result<(), PrivilegeError> {
    use seccompiler::{BpfProgram, SeccompAction, SeccompFilter, SeccompRule};
    let arch = if cfg!(target_arch = "x86_64") {
        seccompiler::TargetArch::x86_64
    } else {
        seccompiler::TargetArch::aarch64
    };
    let rules: std::collections::BTreeMap<i64, Vec<SeccompRule>> = ALLOWED_AFTER_ATTACH
        .iter()
        .chain(ALLOWED_X86_64)
        .map(|&nr| (nr, Vec::new()))
        .collect();
    let err = |e: &dyn std::fmt::Display| PrivilegeError::Seccomp(e.to_string());
    let filter = SeccompFilter::new(
        rules,
        SeccompAction::Errno(libc::EPERM as u32),
        SeccompAction::Allow,
        arch,
    )
    .map_err(|e| err(&e))?;
    let program: BpfProgram = filter
        .try_into()
        .map_err(|e: seccompiler::BackendError| err(&e))?;
    seccompiler::apply_filter_all_threads(&program).map_err(|e| err(&e))
}

#[cfg(not(any(target_arch = "x86_64", target_arch = "aarch64")))]
pub fn install_seccomp() -> Result<(), PrivilegeError> {
    Err(PrivilegeError::Seccomp(
        "no system call list for this architecture".into(),
    ))
}
