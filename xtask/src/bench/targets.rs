//! The targets table: each target, the figure measured for it and whether it is met.

use super::configs::Tool;
use super::report::{fmt_num, median_cost, mib, summarize, Results};
use super::workloads::Workload;

/// (target, what was measured, met?) — every figure comes from `r`.
pub(super) fn targets(r: &Results) -> Vec<(String, String, Option<bool>)> {
    let mut t = Vec::new();
    let rate = |w, tool| summarize(&r.runs, w, tool).rate.map(|s| s.median);
    let lost = |w, tool| summarize(&r.runs, w, tool).lost_total;
    let st = Tool::StJsonDevnull;

    for (w, need) in [(Workload::PingPong, 0.90), (Workload::Storm, 0.75)] {
        let ratio = match (rate(w, st), rate(w, Tool::Untraced)) {
            (Some(x), Some(b)) if b > 0.0 => Some(x / b),
            _ => None,
        };
        let l = lost(w, st);
        t.push((
            format!(
                "{}: ≥ {need:.2} of untraced with 0 lost (json to /dev/null)",
                w.key()
            ),
            format!(
                "{} of untraced, {} lost",
                ratio
                    .map(|x| format!("{x:.2}"))
                    .unwrap_or_else(|| "—".into()),
                l.map(|l| l.to_string()).unwrap_or_else(|| "—".into())
            ),
            ratio.zip(l).map(|(x, l)| x >= need && l == 0),
        ));
    }
    for w in [Workload::PingPong, Workload::Storm] {
        let x = rate(w, st).zip(rate(w, Tool::Strace)).map(|(a, b)| a / b);
        t.push((
            format!("{}: ≥ 10× strace's throughput", w.key()),
            x.map(|x| format!("{x:.1}×")).unwrap_or_else(|| "—".into()),
            x.map(|x| x >= 10.0),
        ));
    }
    for w in [Workload::PingPong, Workload::Storm] {
        let (a, b) = (rate(w, Tool::StTextFile), rate(w, Tool::Bpftrace));
        let (la, lb) = (lost(w, Tool::StTextFile), lost(w, Tool::Bpftrace));
        let measured = format!(
            "{} vs {} {}; lost {} vs {}",
            a.map(fmt_num).unwrap_or_else(|| "—".into()),
            b.map(fmt_num).unwrap_or_else(|| "—".into()),
            w.unit(),
            la.map(|l| l.to_string()).unwrap_or_else(|| "—".into()),
            lb.map(|l| l.to_string()).unwrap_or_else(|| "—".into()),
        );
        let verdict = match (a, b, la, lb) {
            (Some(a), Some(b), Some(la), Some(lb)) => Some(a >= b && (la < lb || la == 0)),
            _ => None,
        };
        t.push((
            format!(
                "{}: ≥ bpftrace's throughput with fewer losses (both text to a file)",
                w.key()
            ),
            measured,
            verdict,
        ));
    }
    // Per event: run_time_ns / run_cnt of the programs that see the event (signal_generate,
    // signal_deliver), as the target defines it; the all-in figure also charges the syscall
    // program that watches for refused sends to the signal events.
    let kc = |w: Workload, tool: Tool| {
        median_cost(&r.kernel_cost, w, tool)
            .and_then(|(c, _)| c)
            .map(|c| (c.ns_per_signal_run, c.ns_per_event))
            .unwrap_or((None, None))
    };
    for (tool, what, need) in [
        (st, "emitted event (storm)", 150.0),
        (
            Tool::StFilterReject,
            "filtered-out event (storm, filter rejecting all)",
            60.0,
        ),
    ] {
        let (per_run, all_in) = kc(Workload::Storm, tool);
        t.push((
            format!("in-kernel ≤ {need:.0} ns per {what}"),
            format!(
                "{} per signal_generate/signal_deliver run; {} with every program charged to the signal events",
                per_run
                    .map(|n| format!("{n:.1} ns"))
                    .unwrap_or_else(|| "—".into()),
                all_in
                    .map(|n| format!("{n:.1} ns"))
                    .unwrap_or_else(|| "—".into()),
            ),
            per_run.map(|n| n <= need),
        ));
    }
    let idle = summarize(&r.runs, Workload::Idle, st);
    let cpu = idle.cpu.map(|s| s.median);
    t.push((
        "idle: ≤ 0.5 % of one core".into(),
        cpu.map(|c| format!("{c:.2} %"))
            .unwrap_or_else(|| "—".into()),
        cpu.map(|c| c <= 0.5),
    ));
    t.push((
        "idle: peak RSS ≤ 30 MiB".into(),
        idle.rss_max
            .map(|k| format!("{} MiB", mib(Some(k))))
            .unwrap_or_else(|| "—".into()),
        idle.rss_max.map(|k| k <= 30 * 1024),
    ));
    if let Some(s) = r.sustained.as_ref().filter(|s| s.error.is_none()) {
        let ev = s.events_seen.map(|e| e as f64 / s.seconds);
        let storm = s
            .rate
            .zip(rate(Workload::Storm, Tool::Untraced))
            .map(|(a, b)| a / b);
        t.push((
            format!(
                "sustained {} s: ≥ 500k events/s with 0 lost",
                r.sustained_seconds
            ),
            format!(
                "{} events/s, {} lost",
                ev.map(fmt_num).unwrap_or_else(|| "—".into()),
                s.lost.map(|l| l.to_string()).unwrap_or_else(|| "—".into())
            ),
            ev.zip(s.lost).map(|(e, l)| e >= 500_000.0 && l == 0),
        ));
        t.push((
            format!(
                "storm over {} s with the default ring: ≥ 0.75 of untraced and 0 lost",
                r.sustained_seconds
            ),
            format!(
                "{} of untraced, {} lost",
                storm
                    .map(|x| format!("{x:.2}"))
                    .unwrap_or_else(|| "—".into()),
                s.lost.map(|l| l.to_string()).unwrap_or_else(|| "—".into())
            ),
            storm.zip(s.lost).map(|(x, l)| x >= 0.75 && l == 0),
        ));
    } else {
        t.push((
            "sustained ≥ 500k events/s with 0 lost".into(),
            "run failed".into(),
            None,
        ));
    }
    t
}
