//! Workload attribution: which container (and pod) or systemd unit a process belongs to.
//!
//! [`cgroup`] reads the container id and runtime out of a cgroup path and [`unit`] the systemd
//! unit; [`containerd`] asks containerd for names, Kubernetes labels and the kubelet's
//! annotations, [`cri`] asks a CRI runtime (CRI-O, or containerd's CRI plugin) for the same as
//! the kubelet sees them, [`docker`] asks dockerd or podman for names, images and Compose labels;
//! [`containers`] keeps the cache that maps the cgroup ids carried by events to containers and
//! units, refreshed as containers come and go. Each client queries from a thread of its own
//! with a bound on every answer ([`worker`]). A new runtime client goes next to them: it
//! implements [`worker::Query`] and [`containerd::ContainerSource`], and feeds the same cache.

pub mod cgroup;
pub mod containerd;
pub mod containers;
pub mod cri;
pub mod docker;
pub mod unit;
pub mod worker;
