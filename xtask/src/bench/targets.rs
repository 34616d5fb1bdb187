//! The targets table: each target, the figure measured for it and whether it is met.

use super::configs::Tool;
use super::report::{fmt_num, median_cost, mib, summarize, Results};
use super::workloads::Workload;

/// How a target fares in a run of the benchmark.
#[derive(Clone, Copy, PartialEq, Eq, Debug)]
pub(super) enum Verdict {
    Met,
    Missed,
    /// The run did not measure it (workload not run, tool failed, or too short a run).
    NotMeasured,
    /// A figure reported beside a target, with no threshold of its own.
    Reported,
}

impl Verdict {
    fn of(met: Option<bool>) -> Verdict {
        match met {
            Some(true) => Verdict::Met,
            Some(false) => Verdict::Missed,
            None => Verdict::NotMeasured,
        }
    }

    pub(super) fn label(self) -> &'static str {
        match self {
            Verdict::Met => "met",
            Verdict::Missed => "**missed**",
            Verdict::NotMeasured => "not measured",
            Verdict::Reported => "reported",
        }
    }
}

/// The signal-path targets hold for signal-trace's default configuration (no `--events`).
const ST: Tool = Tool::StJsonDevnull;

/// Sustained throughput: events/s over a run of at least this many seconds, with 0 lost.
const SUSTAINED_SECONDS: f64 = 60.0;
const SUSTAINED_EVENTS_PER_S: f64 = 700_000.0;

fn opt<T>(v: Option<T>, f: impl Fn(T) -> String) -> String {
    v.map(f).unwrap_or_else(|| "—".into())
}

/// (target, what was measured, verdict) — every figure comes from `r`.
pub(super) fn targets(r: &Results) -> Vec<(String, String, Verdict)> {
    let mut t = Vec::new();
    let rate = |w, tool| summarize(&r.runs, w, tool).rate.map(|s| s.median);
    let lost = |w, tool| summarize(&r.runs, w, tool).lost_total;

    // Throughput against untraced, with every event the workload caused emitted and none lost.
    for (w, need) in [(Workload::PingPong, 0.92), (Workload::Storm, 0.85)] {
        let ratio = match (rate(w, ST), rate(w, Tool::Untraced)) {
            (Some(x), Some(b)) if b > 0.0 => Some(x / b),
            _ => None,
        };
        let l = lost(w, ST);
        let runs: Vec<_> = r
            .runs
            .iter()
            .filter(|s| s.workload == w.key() && s.tool == ST.key() && s.error.is_none())
            .collect();
        let short: u64 = runs
            .iter()
            .filter_map(|s| Some(s.events_expected?.saturating_sub(s.events_seen?)))
            .sum();
        let all_emitted = (!runs.is_empty()).then_some(short == 0);
        t.push((
            format!(
                "{}: ≥ {need:.2} of untraced, every event emitted, 0 lost (default events, json to /dev/null)",
                w.key()
            ),
            format!(
                "{} of untraced, {} lost, {}",
                opt(ratio, |x| format!("{x:.2}")),
                opt(l, |l| l.to_string()),
                match all_emitted {
                    Some(true) => "every expected event emitted".to_string(),
                    Some(false) => format!("{short} expected events not emitted"),
                    None => "—".to_string(),
                }
            ),
            Verdict::of(
                ratio
                    .zip(l)
                    .zip(all_emitted)
                    .map(|((x, l), all)| x >= need && l == 0 && all),
            ),
        ));
    }

    // What the process identities (the exec and fork programs, the sender's ancestry, its
    // program and arguments in every record) cost the signal path: the default against the
    // default without them, in points of the untraced rate.
    for w in [Workload::PingPong, Workload::Storm] {
        let points = match (
            rate(w, ST),
            rate(w, Tool::StNoIdentity),
            rate(w, Tool::Untraced),
        ) {
            (Some(with), Some(without), Some(b)) if b > 0.0 => Some(100.0 * (without - with) / b),
            _ => None,
        };
        t.push((
            format!(
                "{}: process identities cost ≤ 2 points of the untraced rate",
                w.key()
            ),
            opt(points, |p| format!("{p:+.1} points")),
            Verdict::of(points.map(|p| p <= 2.0)),
        ));
    }

    // In the kernel: run_time_ns / run_cnt of the programs that see the event (signal_generate,
    // signal_deliver), the statistics' own overhead included; the all-in figure also charges
    // every other program of the configuration (the refused-send watcher, when attached).
    let kc = |w: Workload, tool: Tool| {
        median_cost(&r.kernel_cost, w, tool)
            .and_then(|(c, _)| c)
            .map(|c| (c.ns_per_signal_run, c.ns_per_event))
            .unwrap_or((None, None))
    };
    for (tool, what, need) in [
        (ST, "emitted event (storm)", 150.0),
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
                opt(per_run, |n| format!("{n:.1} ns")),
                opt(all_in, |n| format!("{n:.1} ns")),
            ),
            Verdict::of(per_run.map(|n| n <= need)),
        ));
    }

    // In userspace: the tracer's time on CPU per event, NDJSON to /dev/null.
    let ns_ev = |w, tool| summarize(&r.runs, w, tool).ns_per_event.map(|s| s.median);
    let storm_ns = ns_ev(Workload::Storm, ST);
    t.push((
        "userspace ≤ 400 ns of tracer CPU per event (storm, default events, json to /dev/null)"
            .into(),
        format!(
            "{} (ping-pong {}; sustained {})",
            opt(storm_ns, |n| format!("{n:.0} ns")),
            opt(ns_ev(Workload::PingPong, ST), |n| format!("{n:.0} ns")),
            opt(
                r.sustained
                    .as_ref()
                    .filter(|s| s.error.is_none())
                    .and_then(|s| s.tracer_cpu_ns_per_event),
                |n| format!("{n:.0} ns")
            ),
        ),
        Verdict::of(storm_ns.map(|n| n <= 400.0)),
    ));

    match r.sustained.as_ref().filter(|s| s.error.is_none()) {
        Some(s) => {
            let ev = s.events_seen.map(|e| e as f64 / s.seconds);
            let long_enough = r.sustained_seconds >= SUSTAINED_SECONDS;
            t.push((
                format!(
                    "sustained {SUSTAINED_SECONDS:.0} s: ≥ {}k events/s with 0 lost",
                    SUSTAINED_EVENTS_PER_S / 1000.0
                ),
                format!(
                    "{} events/s, {} lost over {} s{}",
                    opt(ev, fmt_num),
                    opt(s.lost, |l| l.to_string()),
                    r.sustained_seconds,
                    if long_enough {
                        ""
                    } else {
                        " (too short a run to judge)"
                    }
                ),
                if long_enough {
                    Verdict::of(
                        ev.zip(s.lost)
                            .map(|(e, l)| e >= SUSTAINED_EVENTS_PER_S && l == 0),
                    )
                } else {
                    Verdict::NotMeasured
                },
            ));
        }
        None => t.push((
            format!(
                "sustained {SUSTAINED_SECONDS:.0} s: ≥ {}k events/s with 0 lost",
                SUSTAINED_EVENTS_PER_S / 1000.0
            ),
            if r.sustained.is_some() {
                "run failed".into()
            } else {
                "not run".into()
            },
            Verdict::NotMeasured,
        )),
    }

    let idle = summarize(&r.runs, Workload::Idle, ST);
    let cpu = idle.cpu.map(|s| s.median);
    t.push((
        "idle: ≤ 0.5 % of one core".into(),
        opt(cpu, |c| format!("{c:.2} %")),
        Verdict::of(cpu.map(|c| c <= 0.5)),
    ));
    // Peak RSS over every run of signal-trace, whatever the workload and configuration.
    let rss = r
        .runs
        .iter()
        .chain(r.sustained.iter())
        .filter(|s| s.error.is_none() && s.tool.starts_with("st-"))
        .filter_map(|s| s.tracer_peak_rss_kib)
        .max();
    t.push((
        "peak RSS ≤ 30 MiB (every signal-trace run)".into(),
        opt(rss, |k| format!("{} MiB", mib(Some(k)))),
        Verdict::of(rss.map(|k| k <= 30 * 1024)),
    ));
    let crowded = r
        .crowded
        .as_ref()
        .filter(|s| s.error.is_none())
        .and_then(|s| s.tracer_peak_rss_kib);
    t.push((
        format!(
            "peak RSS ≤ 30 MiB with {} more processes alive (the process-identity cache full)",
            fmt_num(super::report::CROWD as f64)
        ),
        opt(crowded, |k| format!("{} MiB", mib(Some(k)))),
        Verdict::of(crowded.map(|k| k <= 30 * 1024)),
    ));

    // The rest of the host: the default configuration's tax on workloads that send no signal.
    let tax = |w: Workload| {
        r.host_tax
            .iter()
            .find(|h| h.workload == w.key() && h.tool == ST.key())
    };
    let tax_text = |w: Workload| {
        opt(tax(w), |h| {
            format!(
                "{:+.1} % ({} ns per syscall)",
                h.tax_percent,
                opt(h.tax_ns_per_syscall, |n| format!("{n:+.1}"))
            )
        })
    };
    t.push((
        "host tax of the default configuration on a getppid() loop ≤ 5 %".into(),
        tax_text(Workload::Getppid),
        Verdict::of(tax(Workload::Getppid).map(|h| h.tax_percent <= 5.0)),
    ));
    for w in [Workload::Pipe, Workload::Gzip, Workload::Spawn] {
        t.push((
            format!("host tax of the default configuration: {}", w.describe()),
            tax_text(w),
            if tax(w).is_some() {
                Verdict::Reported
            } else {
                Verdict::NotMeasured
            },
        ));
    }

    // Against the other tools.
    for w in [Workload::PingPong, Workload::Storm] {
        let x = rate(w, ST).zip(rate(w, Tool::Strace)).map(|(a, b)| a / b);
        t.push((
            format!("{}: ≥ 10× strace's throughput", w.key()),
            opt(x, |x| format!("{x:.1}×")),
            Verdict::of(x.map(|x| x >= 10.0)),
        ));
    }
    for w in [Workload::PingPong, Workload::Storm] {
        let (a, b) = (rate(w, Tool::StTextFile), rate(w, Tool::Bpftrace));
        let (la, lb) = (lost(w, Tool::StTextFile), lost(w, Tool::Bpftrace));
        let measured = format!(
            "{} vs {} {}; lost {} vs {}",
            opt(a, fmt_num),
            opt(b, fmt_num),
            w.unit(),
            opt(la, |l| l.to_string()),
            opt(lb, |l| l.to_string()),
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
            Verdict::of(verdict),
        ));
    }
    t
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::bench::measure::Sample;
    use crate::bench::report::{host_tax, Machine};

    fn sample(w: Workload, tool: Tool, rate: f64) -> Sample {
        Sample {
            workload: w.key().into(),
            tool: tool.key().into(),
            ops: Some(rate as u64),
            seconds: 1.0,
            rate: Some(rate),
            ..Sample::default()
        }
    }

    fn results(runs: Vec<Sample>) -> Results {
        let host_tax = host_tax(&runs, Some(200.0));
        Results {
            generated_unix: 0,
            command: String::new(),
            quick: false,
            reps: 1,
            seconds: 1.0,
            idle_seconds: 2.0,
            sustained_seconds: 60.0,
            pinning: String::new(),
            ring_size: "",
            machine: Machine {
                cpu_model: String::new(),
                cores: 2,
                kernel: String::new(),
                memory_kib: 0,
                loadavg_before: String::new(),
                loadavg_after: String::new(),
            },
            unavailable: Default::default(),
            workloads: vec![],
            default_programs: None,
            runs,
            host_tax,
            kernel_cost: vec![],
            sustained: None,
            crowded: None,
        }
    }

    fn verdict(r: &Results, starts: &str) -> (String, Verdict) {
        targets(r)
            .into_iter()
            .find(|(t, _, _)| t.starts_with(starts))
            .map(|(_, m, v)| (m, v))
            .unwrap()
    }

    #[test]
    fn host_tax_is_time_per_unit_against_untraced() {
        // 200 ns per call untraced, 250 ns traced: +25 %, +50 ns per syscall.
        let r = results(vec![
            sample(Workload::Getppid, Tool::Untraced, 5_000_000.0),
            sample(Workload::Getppid, ST, 4_000_000.0),
            // 4 syscalls per round trip: 10 µs → 10.4 µs is +4 %, +100 ns per syscall.
            sample(Workload::Pipe, Tool::Untraced, 100_000.0),
            sample(Workload::Pipe, ST, 1e9 / 10_400.0),
        ]);
        let g = &r.host_tax[0];
        assert_eq!(
            (g.workload.as_str(), g.tool.as_str()),
            ("getppid", ST.key())
        );
        assert!((g.tax_percent - 25.0).abs() < 1e-9);
        assert!((g.tax_ns_per_syscall.unwrap() - 50.0).abs() < 1e-9);
        let p = &r.host_tax[1];
        assert!((p.tax_percent - 4.0).abs() < 1e-9);
        assert!((p.tax_ns_per_syscall.unwrap() - 100.0).abs() < 1e-9);

        let (measured, v) = verdict(&r, "host tax of the default configuration on a getppid");
        assert_eq!(v, Verdict::Missed);
        assert!(measured.contains("+25.0 %"), "{measured}");
        let (_, v) = verdict(&r, "host tax of the default configuration: pipe");
        assert_eq!(v, Verdict::Reported);
        let (_, v) = verdict(&r, "host tax of the default configuration: `gzip");
        assert_eq!(v, Verdict::NotMeasured);
    }

    #[test]
    fn throughput_target_needs_every_event_and_none_lost() {
        let mut traced = sample(Workload::Storm, ST, 90.0);
        traced.events_expected = Some(180);
        traced.events_seen = Some(180);
        traced.lost = Some(0);
        let base = sample(Workload::Storm, Tool::Untraced, 100.0);
        let r = results(vec![base.clone(), traced.clone()]);
        assert_eq!(verdict(&r, "storm: ≥ 0.85").1, Verdict::Met);

        traced.events_seen = Some(170);
        let r = results(vec![base.clone(), traced.clone()]);
        let (measured, v) = verdict(&r, "storm: ≥ 0.85");
        assert_eq!(v, Verdict::Missed);
        assert!(
            measured.contains("10 expected events not emitted"),
            "{measured}"
        );

        traced.events_seen = Some(180);
        traced.rate = Some(80.0);
        let r = results(vec![base, traced]);
        let (measured, v) = verdict(&r, "storm: ≥ 0.85");
        assert_eq!(v, Verdict::Missed);
        assert!(measured.starts_with("0.80 of untraced"), "{measured}");
    }

    #[test]
    fn the_identity_cost_is_points_of_the_untraced_rate() {
        let r = results(vec![
            sample(Workload::Storm, Tool::Untraced, 1000.0),
            sample(Workload::Storm, ST, 800.0),
            sample(Workload::Storm, Tool::StNoIdentity, 815.0),
        ]);
        let (measured, v) = verdict(&r, "storm: process identities");
        assert_eq!((measured.as_str(), v), ("+1.5 points", Verdict::Met));
        let r = results(vec![
            sample(Workload::Storm, Tool::Untraced, 1000.0),
            sample(Workload::Storm, ST, 800.0),
            sample(Workload::Storm, Tool::StNoIdentity, 830.0),
        ]);
        assert_eq!(verdict(&r, "storm: process identities").1, Verdict::Missed);
        assert_eq!(
            verdict(&r, "ping-pong: process identities").1,
            Verdict::NotMeasured
        );
    }

    #[test]
    fn the_crowded_rss_is_judged_only_when_measured() {
        let mut r = results(vec![]);
        assert_eq!(
            verdict(&r, "peak RSS ≤ 30 MiB with").1,
            Verdict::NotMeasured
        );
        let mut s = sample(Workload::Idle, ST, 0.0);
        s.tracer_peak_rss_kib = Some(25 * 1024);
        r.crowded = Some(s.clone());
        let (measured, v) = verdict(&r, "peak RSS ≤ 30 MiB with");
        assert_eq!((measured.as_str(), v), ("25.0 MiB", Verdict::Met));
        s.tracer_peak_rss_kib = Some(31 * 1024);
        r.crowded = Some(s.clone());
        assert_eq!(verdict(&r, "peak RSS ≤ 30 MiB with").1, Verdict::Missed);
        s.error = Some("crowd failed".into());
        r.crowded = Some(s);
        assert_eq!(
            verdict(&r, "peak RSS ≤ 30 MiB with").1,
            Verdict::NotMeasured
        );
    }

    #[test]
    fn a_short_sustained_run_is_not_judged() {
        let mut s = sample(Workload::Storm, ST, 400_000.0);
        s.events_seen = Some(800_000);
        s.lost = Some(0);
        let mut r = results(vec![]);
        r.sustained = Some(s);
        assert_eq!(verdict(&r, "sustained").1, Verdict::Met);
        r.sustained_seconds = 5.0;
        assert_eq!(verdict(&r, "sustained").1, Verdict::NotMeasured);
    }
}
