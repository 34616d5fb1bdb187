//! The `cgroup_mkdir` hook: a new cgroup v2 cgroup, so that userspace can add a new
//! container's cgroup to the container filters at once. Internal: never reported.

use aya_ebpf::{
    bindings::BPF_RB_FORCE_WAKEUP, helpers::generated::bpf_ktime_get_ns, macros::raw_tracepoint,
    programs::RawTracePointContext,
};
use signal_trace_common::*;

use crate::maps::{EVENTS, OFFSETS};
use crate::mem::read;
use crate::ring::{count_lost, write_event};

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
