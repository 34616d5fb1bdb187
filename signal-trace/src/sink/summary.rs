//! Summary mode: counts per interval — sender → target, signal, result — instead of a line
//! per event, for floods such as SIGCHLD storms or the Go runtime's SIGURG preemption.

use std::collections::HashMap;
use std::fmt::Write as _;

use serde::{Deserialize, Serialize};

use crate::escape::Escaped;
use crate::event::record::{Comm, Label, Record, Time};

/// One aggregated row.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct Row {
    /// "generate", "deliver", "exit", "send_failed" or "oom".
    pub event: String,
    /// The node the records came from (their `host`).
    #[serde(default)]
    pub host: Label,
    pub sender_pid: Option<u32>,
    pub sender_comm: Option<Comm>,
    pub target_pid: Option<u32>,
    pub target_comm: Option<Comm>,
    pub signal: Option<String>,
    /// The verdict (generate), errno (send_failed), exit code (exit) or handler kind (deliver).
    pub outcome: Option<String>,
    pub count: u64,
}

/// `"event":"summary"`: what happened during one interval.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct Summary {
    pub event: SummaryTag,
    /// End of the interval.
    pub time: Time,
    pub start: Time,
    pub interval_ns: u64,
    /// Every record of the interval, including those not broken out in `rows`.
    pub total: u64,
    /// Most frequent first.
    pub rows: Vec<Row>,
    /// Distinct rows left out beyond the row limit.
    pub rows_omitted: u64,
}

/// Serializes as the constant "summary".
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct SummaryTag;

impl Serialize for SummaryTag {
    fn serialize<S: serde::Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
        s.serialize_str("summary")
    }
}

impl<'de> Deserialize<'de> for SummaryTag {
    fn deserialize<D: serde::Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        let s = String::deserialize(d)?;
        if s == "summary" {
            Ok(SummaryTag)
        } else {
            Err(serde::de::Error::custom(format!(
                "expected \"summary\", got {s:?}"
            )))
        }
    }
}

type Key = (
    &'static str,
    Option<u32>,
    Option<Comm>,
    Option<u32>,
    Option<Comm>,
    Option<String>,
    Option<String>,
);

/// Aggregates records over fixed intervals.
pub struct Summarizer {
    interval_ns: u64,
    max_rows: usize,
    start: Option<Time>,
    total: u64,
    rows: HashMap<(Label, Key), u64>,
}

impl Summarizer {
    pub fn new(interval_ns: u64) -> Summarizer {
        Summarizer {
            interval_ns: interval_ns.max(1),
            max_rows: 50,
            start: None,
            total: 0,
            rows: HashMap::new(),
        }
    }

    fn key(r: &Record) -> Option<Key> {
        Some(match r {
            Record::Generate(g) => (
                "generate",
                Some(g.sender.pid),
                Some(g.sender.comm),
                g.target.pid.or(Some(g.target.tid)),
                Some(g.target.comm),
                Some(g.signal.to_string()),
                Some(g.result.as_str().to_string()),
            ),
            Record::Deliver(d) => (
                "deliver",
                d.sender_pid,
                None,
                d.pid,
                Some(d.comm),
                Some(d.signal.to_string()),
                Some(
                    crate::event::names::disposition(match d.handler.as_ref() {
                        "default" => 0,
                        "ignore" => 1,
                        _ => 2,
                    })
                    .to_string(),
                ),
            ),
            Record::Exit(x) => (
                "exit",
                x.killed_by.as_ref().map(|k| k.pid),
                x.killed_by.as_ref().map(|k| k.comm),
                Some(x.pid),
                Some(x.comm),
                x.signal.as_ref().map(|s| s.to_string()),
                Some(x.exit_code.to_string()),
            ),
            Record::SendFailed(s) => (
                "send_failed",
                Some(s.sender.pid),
                Some(s.sender.comm),
                s.target_pid.and_then(|p| u32::try_from(p).ok()),
                None,
                Some(s.signal_text().into_owned()),
                Some(s.errno.to_string()),
            ),
            Record::Oom(o) => (
                "oom",
                Some(o.trigger.pid),
                Some(o.trigger.comm),
                Some(o.pid),
                o.comm,
                Some("SIGKILL".into()),
                None,
            ),
            Record::Lost(_) => return None,
        })
    }

    /// Counts a record. Returns the summary of the previous interval when `r` starts a new one.
    pub fn push(&mut self, r: &Record) -> Option<Summary> {
        let t = r.time();
        let done = self.flush_before(t);
        if self.start.is_none() {
            self.start = Some(t);
        }
        if let Some(k) = Self::key(r) {
            self.total += 1;
            *self.rows.entry((r.host().clone(), k)).or_insert(0) += 1;
        }
        done
    }

    /// Closes the interval if `now` is past its end (also when nothing happened since).
    pub fn flush_before(&mut self, now: Time) -> Option<Summary> {
        let start = self.start?;
        if now.since(start) < self.interval_ns {
            return None;
        }
        let end = Time(start.0 + self.interval_ns);
        let s = self.take(start, end);
        // The next interval starts where this one ended (skipping empty ones).
        let skipped = now.since(end) / self.interval_ns;
        self.start = Some(Time(end.0 + skipped * self.interval_ns));
        Some(s)
    }

    /// The summary of what is counted so far (at the end of a trace).
    pub fn finish(&mut self, now: Time) -> Option<Summary> {
        let start = self.start.take()?;
        (self.total > 0).then(|| self.take(start, now.max(start)))
    }

    fn take(&mut self, start: Time, end: Time) -> Summary {
        let mut rows: Vec<Row> = self
            .rows
            .drain()
            .map(
                |((host, (event, sp, sc, tp, tc, signal, outcome)), count)| Row {
                    event: event.to_string(),
                    host,
                    sender_pid: sp,
                    sender_comm: sc,
                    target_pid: tp,
                    target_comm: tc,
                    signal,
                    outcome,
                    count,
                },
            )
            .collect();
        rows.sort_by(|a, b| {
            b.count
                .cmp(&a.count)
                .then_with(|| a.signal.cmp(&b.signal))
                .then_with(|| a.target_pid.cmp(&b.target_pid))
                .then_with(|| a.host.cmp(&b.host))
        });
        let omitted = rows.len().saturating_sub(self.max_rows) as u64;
        rows.truncate(self.max_rows);
        let total = std::mem::take(&mut self.total);
        Summary {
            event: SummaryTag,
            time: end,
            start,
            interval_ns: end.since(start),
            total,
            rows,
            rows_omitted: omitted,
        }
    }
}

/// A readable table of one summary.
/// Text for people; comms (escaped by `Comm`'s `Display`), signal and outcome strings (which a
/// replayed file controls) are escaped.
pub fn render_text(s: &Summary) -> String {
    let mut out = String::new();
    let _ = writeln!(out, "summary {} → {}: {} events", s.start, s.time, s.total);
    for r in &s.rows {
        let side = |pid: Option<u32>, comm: &Option<Comm>| match (pid, comm) {
            (Some(p), Some(c)) => format!("{c}({p})"),
            (Some(p), None) => format!("pid {p}"),
            (None, Some(c)) => c.to_string(),
            (None, None) => "?".into(),
        };
        let _ = writeln!(
            out,
            "  {:>8}  {:<11} {:>24} → {:<24} {:<10} {}",
            r.count,
            Escaped::str(&r.event),
            side(r.sender_pid, &r.sender_comm),
            side(r.target_pid, &r.target_comm),
            Escaped::str(r.signal.as_deref().unwrap_or("")),
            Escaped::str(r.outcome.as_deref().unwrap_or(""))
        );
    }
    if s.rows_omitted > 0 {
        let _ = writeln!(out, "  … and {} more distinct rows", s.rows_omitted);
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    fn gen(t: u64, sig: &str, sender: u32, target: u32, result: &str) -> Record {
        let signo = crate::event::names::parse_signal(sig).unwrap();
        serde_json::from_value(serde_json::json!({
            "event": "generate", "time": Time(t).to_string(), "signal": format!("SIG{sig}"), "signo": signo,
            "code": "SI_KERNEL", "si_code": 128, "errno": 0, "group": true, "result": result,
            "sender": {"pid": sender, "tid": sender, "comm": "go-app", "uid": 0, "cgroup_id": 1},
            "target": {"pid": target, "tid": target, "comm": "go-app", "ns_pid": null, "cgroup_id": 1,
                       "disposition": "handler", "handler": "0x1", "blocked": false}
        }))
        .unwrap()
    }

    #[test]
    fn a_flood_becomes_one_row_per_interval() {
        let mut s = Summarizer::new(1_000_000_000);
        let base = 1_700_000_000_000_000_000;
        for i in 0..1000u64 {
            assert!(s
                .push(&gen(base + i * 100_000, "URG", 10, 10, "delivered"))
                .is_none());
        }
        s.push(&gen(base + 200, "TERM", 1, 10, "ignored"));
        // The next second starts a new interval and closes the first.
        let done = s
            .push(&gen(base + 1_500_000_000, "URG", 10, 10, "delivered"))
            .expect("closed");
        assert_eq!(done.total, 1001);
        assert_eq!(done.interval_ns, 1_000_000_000);
        assert_eq!(done.rows.len(), 2);
        assert_eq!(
            (done.rows[0].count, done.rows[0].signal.as_deref()),
            (1000, Some("SIGURG"))
        );
        assert_eq!(
            (done.rows[1].count, done.rows[1].outcome.as_deref()),
            (1, Some("ignored"))
        );
        let last = s.finish(Time(base + 1_600_000_000)).expect("rest");
        assert_eq!(last.total, 1);
        assert_eq!(last.start, Time(base + 1_000_000_000));
        let text = render_text(&done);
        assert!(
            text.contains("1000  generate") && text.contains("go-app(10) → go-app(10)"),
            "{text}"
        );
        let json = serde_json::to_value(&done).unwrap();
        assert_eq!(json["event"], "summary");
        let back: Summary = serde_json::from_value(json).unwrap();
        assert_eq!(back, done);
    }

    #[test]
    fn quiet_intervals_close_on_the_clock_and_rows_are_capped() {
        let mut s = Summarizer::new(1_000);
        assert!(s.flush_before(Time(5)).is_none(), "nothing started yet");
        for i in 0..80 {
            s.push(&gen(10, "USR1", i + 1, 100, "delivered"));
        }
        let done = s.flush_before(Time(5_000)).expect("interval over");
        assert_eq!(done.rows.len(), 50);
        assert_eq!(done.rows_omitted, 30);
        assert_eq!(done.total, 80);
        assert!(s.finish(Time(6_000)).is_none(), "nothing counted since");
    }

    #[test]
    fn hostile_names_and_strings_are_escaped() {
        use crate::escape::{has_terminal_controls, HOSTILE};
        let mut s = Summarizer::new(1_000_000_000);
        let base = 1_700_000_000_000_000_000;
        let r: Record = serde_json::from_value(serde_json::json!({
            "event": "generate", "time": Time(base).to_string(), "signal": HOSTILE, "signo": 15,
            "code": HOSTILE, "si_code": 0, "errno": 0, "group": true, "result": "delivered",
            "sender": {"pid": 1, "tid": 1, "comm": HOSTILE, "uid": 0, "cgroup_id": 1},
            "target": {"pid": 2, "tid": 2, "comm": HOSTILE, "ns_pid": null, "cgroup_id": 1,
                       "disposition": "handler", "handler": HOSTILE, "blocked": false}
        }))
        .unwrap();
        s.push(&r);
        let done = s.finish(Time(base + 1)).expect("one interval");
        let text = render_text(&done);
        assert_eq!(text.lines().count(), 2, "{text}");
        assert!(!has_terminal_controls(text.as_bytes(), true), "{text:?}");
        assert!(text.contains("\\x1b[2J\\x1b]0;x\\x07\\nFAKE"), "{text}");
    }
}
