//! Workload attribution: which container (and pod) a process belongs to.
//!
//! [`cgroup`] reads the container id and runtime out of a cgroup path; [`containerd`] asks the
//! container runtime for names and Kubernetes labels; [`containers`] keeps the cache that maps
//! the cgroup ids carried by events to containers, refreshed as containers come and go. A new
//! runtime client goes next to [`containerd`] and feeds the same cache.

pub mod cgroup;
pub mod containerd;
pub mod containers;
