//! Privileges: what tracing needs, and giving up the rest once the programs are attached.

use caps::{CapSet, Capability, CapsHashSet};

#[derive(Debug, thiserror::Error)]
pub enum PrivilegeError {
    #[error("signal-trace: tracing needs root, or the capabilities CAP_BPF and CAP_PERFMON (CAP_SYS_ADMIN before Linux 5.8)")]
    Missing,
    #[error("cannot drop capabilities: {0}")]
    Drop(String),
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
