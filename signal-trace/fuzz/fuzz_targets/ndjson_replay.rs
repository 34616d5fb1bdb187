//! A recorded NDJSON stream → records → the live-side joins and the diagnosis engine, as
//! `signal-trace explain --from` replays it: never a panic, and every record, finding and
//! timeline serializes and reads back the same.

#![no_main]

mod json;

use libfuzzer_sys::fuzz_target;
use signal_trace::config::Filters;
use signal_trace::event::enrich::Correlator;
use signal_trace::event::record::Record;
use signal_trace::explain::{render_text, render_timeline, Engine, Finding, Timeline};
use signal_trace::filter::record_matches;
use signal_trace::sink::output::text_line;

fuzz_target!(|data: &[u8]| {
    let text = String::from_utf8_lossy(data);
    let filters = Filters::default();
    let mut engine = Engine::new();
    let mut correlator = Correlator::new(false);
    let mut findings = Vec::new();
    let mut line_text = String::new();
    for line in text.lines() {
        if line.trim().is_empty() {
            continue;
        }
        let Ok(record) = serde_json::from_str::<Record>(line) else {
            continue;
        };
        json::round_trip(&record);
        json::same_as_serde(&record);
        assert!(record_matches(&filters, &record));
        text_line(&mut line_text, &record, false);

        let mut joined = record.clone();
        if correlator.process(&mut joined) {
            json::round_trip(&joined);
        }
        findings.extend(engine.push(&record));
    }
    findings.extend(engine.finish());

    for f in &findings {
        json::round_trip::<Finding>(f);
        let _ = render_text(f);
    }
    for t in engine.timelines() {
        json::round_trip::<Timeline>(&t);
        let _ = render_timeline(&t);
    }
});
