//! The `oom:mark_victim` hook: the OOM killer chose a victim (the SIGKILL that follows is
//! seen by `signal_generate`).

use aya_ebpf::{
    helpers::generated::bpf_ktime_get_ns, macros::tracepoint, programs::TracePointContext,
};
use signal_trace_common::*;

use crate::filter::{sides_filter, signal_passes};
use crate::maps::{CLASSIC, EVENTS, FILTER, OFFSETS};
use crate::ring::{count_lost, wakeup_flags, write_event};
use crate::task::{current_cgroup_kn, current_task};

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
