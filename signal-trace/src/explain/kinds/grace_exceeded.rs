//! `grace_exceeded`: SIGKILL after SIGTERM, and the death by it (status 137).

use super::*;

pub(crate) fn grace_finding(p: &Proc, term: &Sig, kill: &Sig, also: &[Proc]) -> Finding {
    let exit = p.exit.as_ref();
    let end = exit.map(|x| x.time).unwrap_or(kill.time);
    let mut f = base(FindingKind::GraceExceeded, Severity::Error, end, p);
    let grace = kill.time.since(term.time);
    let result = term_result(p, term);
    f.also_killed = also.iter().map(Proc::process_ref).collect();
    let what = match result {
        TermResult::Handled => "ran its handler but was still running".to_string(),
        TermResult::Ignored => format!(
            "never saw it (ignored: {}) and was still running",
            term.reason
                .map(|r| r.describe())
                .unwrap_or("reason unknown")
        ),
        TermResult::Pending => "had it blocked, pending, and was still running".to_string(),
        TermResult::Delivered => "was still running".to_string(),
    };
    f.summary = format!(
        "{}{} got {} from {}, {what} {} later, when {} sent SIGKILL; it died with status {}{}",
        who(p.comm, p.pid, p.ns_pid),
        where_text(p),
        term.signal,
        peer_text(&term.sender),
        duration(grace),
        peer_text(&kill.sender),
        exit.map(|x| x.exit_code).unwrap_or(137),
        if also.is_empty() {
            String::new()
        } else {
            format!(", and so did {}", list(&f.also_killed))
        }
    );
    // What the orchestrator was configured to allow, next to what happened.
    if let Some(allowed) = p.container.as_ref().and_then(|c| c.grace_period_s) {
        let _ = write!(
            f.summary,
            " (SIGKILL {:.1} s after {}; the pod allows {allowed} s)",
            grace as f64 / 1e9,
            term.signal
        );
    }
    f.remedy = remedy_for(
        p,
        Situation::Grace {
            signal: &term.signal,
            result,
            measured_ns: grace,
            configured_s: p.container.as_ref().and_then(|c| c.grace_period_s),
        },
    );
    f.signal = Some(term.signal.clone());
    f.sender = Some(kill.sender.clone());
    f.reason = term.reason;
    f.term_time = Some(term.time);
    f.term_sender = Some(term.sender.clone());
    f.term_result = Some(result);
    f.kill_time = Some(kill.time);
    f.kill_sender = Some(kill.sender.clone());
    f.grace_ns = Some(grace);
    f.shutdown_ns = exit.map(|x| x.time.since(term.time));
    f.exit_code = exit.map(|x| x.exit_code);
    f.push_evidence(&term.ev);
    if let Some(h) = &p.term_handled {
        f.push_evidence(h);
    }
    f.push_evidence(&kill.ev);
    if let Some(x) = exit {
        f.push_evidence(&x.ev);
    }
    for q in also {
        if let Some(x) = &q.exit {
            f.push_evidence(&x.ev);
        }
    }
    f
}
