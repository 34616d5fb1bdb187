//! `events_lost`: the tracer lost events, so findings around that time may be incomplete.

use super::*;

pub(crate) fn lost_finding(l: &Lost) -> Finding {
    let mut f = Finding::new(
        FindingKind::EventsLost,
        Severity::Warning,
        l.time,
        ProcessRef::default(),
    );
    f.host.clone_from(&l.host);
    f.boot_id.clone_from(&l.boot_id);
    let e = &l.events;
    let kinds = [
        ("generate", e.generate),
        ("deliver", e.deliver),
        ("exit", e.exit),
        ("send_failed", e.send_failed),
        ("oom", e.oom),
    ]
    .iter()
    .filter(|(_, n)| *n > 0)
    .map(|(k, n)| format!("{n} {k}"))
    .collect::<Vec<_>>()
    .join(", ");
    f.summary = format!(
        "the tracer lost {} events{}: findings around this time may be missing or incomplete",
        l.count,
        if kinds.is_empty() {
            String::new()
        } else {
            format!(" ({kinds})")
        }
    );
    f.remedy = "Give the ring buffer more room (`--ring-size 16M`) or trace less (filters on \
                pid, signal or event kind) so that no event is dropped."
        .into();
    f.count = Some(l.count);
    f.evidence.push(Evidence {
        time: l.time,
        event: "lost".into(),
        text: format!("{} events lost since the previous report", l.count),
    });
    f
}
