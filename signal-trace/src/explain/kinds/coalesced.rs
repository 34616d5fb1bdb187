//! `coalesced`: standard signals merged while pending, real-time signals dropped on overflow.

use super::*;

pub(crate) fn coalesced_finding(a: Agg) -> Finding {
    let p = Proc {
        node: a.node.clone(),
        pid: a.pid,
        comm: a.comm,
        container: a.container.clone(),
        ..Proc::default()
    };
    let mut f = base(FindingKind::Coalesced, Severity::Warning, a.last, &p);
    f.cgroup_id = None;
    let span = a.last.since(a.first);
    let (summary, remedy) = if a.result == Outcome::Overflow {
        (
            format!(
                "{} {} to {} were dropped over {}: its queue of pending real-time signals was \
                 full, and the senders got EAGAIN",
                a.count,
                a.signal,
                who(a.comm, a.pid, None),
                duration(span)
            ),
            "Real-time signals queue up to RLIMIT_SIGPENDING per user. Handle them faster (or \
             unblock the signal), raise the limit (`ulimit -i`, `LimitSIGPENDING=` in systemd), \
             make the senders retry on EAGAIN, or carry high-rate events over a pipe, eventfd or \
             socket instead."
                .to_string(),
        )
    } else {
        (
            format!(
                "{} {} to {} were merged into one already pending over {}: the process sees \
                 one signal for all of them",
                a.count,
                a.signal,
                who(a.comm, a.pid, None),
                duration(span)
            ),
            if is_standard(a.signo) {
                format!(
                    "Standard signals do not queue: at most one {} is pending at a time. Do not \
                     count them; treat a signal as \"something changed\" and re-check the state \
                     (drain the work queue, call waitpid in a loop), keep it unblocked and the \
                     handler short, or use a real-time signal with sigqueue, or a pipe or \
                     eventfd, when every event matters.",
                    a.signal
                )
            } else {
                "Keep the signal unblocked and the handler short.".to_string()
            },
        )
    };
    f.summary = summary;
    f.remedy = remedy;
    f.signal = Some(a.signal);
    f.result = Some(a.result);
    f.count = Some(a.count);
    f.first_time = Some(a.first);
    f.last_time = Some(a.last);
    f.span_ns = Some(span);
    f.senders = a.senders;
    f.evidence = a.evidence;
    f
}
