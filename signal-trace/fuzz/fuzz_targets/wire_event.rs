//! Ring-buffer bytes → `parse_event` → `decode`: an error or a record, never a panic; every
//! record serializes to JSON and reads back equal, as a replay of a recording does, and the
//! sink's record encoder writes the same bytes as serde_json. Bytes that
//! start like an exec record go through `parse_exec` → `exec_program` too: bounded arguments,
//! never a panic.

#![no_main]

mod json;

use libfuzzer_sys::fuzz_target;
use signal_trace::event::decode::{
    decode, exec_program, parse_event, parse_exec, record_kind, Clock, DecodeError, MAX_ARGS,
};
use signal_trace::event::record::{Comm, Node, Record};
use signal_trace::sink::output::text_line;
use signal_trace_common::{Event, Exec, ARGS_LEN, KIND_EXEC};

/// 2023-11-14T22:13:20Z at CLOCK_MONOTONIC 0.
const CLOCK: Clock = Clock {
    offset_ns: 1_700_000_000_000_000_000,
};

/// Whether a comm survives JSON unchanged: what the kernel writes (at most 15 bytes, zero
/// padded) and valid UTF-8. Other comms are shown lossily by design.
fn lossless_comm(c: &Comm) -> bool {
    let n = c.bytes().len();
    n < c.0.len() && c.0[n..].iter().all(|&b| b == 0) && std::str::from_utf8(c.bytes()).is_ok()
}

fn comms(r: &Record) -> Vec<&Comm> {
    match r {
        Record::Generate(g) => vec![&g.sender.comm, &g.target.comm],
        Record::Deliver(d) => vec![&d.comm],
        Record::Exit(x) => vec![&x.comm],
        Record::SendFailed(s) => vec![&s.sender.comm],
        Record::Oom(o) => o.comm.iter().chain([&o.trigger.comm]).collect(),
        Record::Lost(_) => vec![],
    }
}

fuzz_target!(|data: &[u8]| {
    if record_kind(data) == Some(KIND_EXEC) {
        match parse_exec(data) {
            Ok(x) => {
                let p = exec_program(&x);
                assert!(p.args.len() <= MAX_ARGS);
                let bytes: usize = p.args.iter().map(|a| a.as_bytes().len() + 1).sum();
                assert!(bytes <= ARGS_LEN + 1);
                assert!(p.exe.as_ref().is_none_or(|e| !e.as_bytes().contains(&0)));
            }
            Err(e) => assert_eq!(
                e,
                DecodeError::Size(data.len(), std::mem::size_of::<Exec>())
            ),
        }
    }
    let size = std::mem::size_of::<Event>();
    let event = match parse_event(data) {
        Ok(e) => e,
        Err(e) => {
            assert_eq!(e, DecodeError::Size(data.len(), size));
            assert!(data.len() < size);
            return;
        }
    };
    let record = match decode(&event, &CLOCK, &Node::default()) {
        Ok(r) => r,
        Err(DecodeError::Kind(k)) => {
            assert_eq!(k, event.kind);
            return;
        }
        Err(DecodeError::Result(r)) => {
            assert_eq!(r, event.result);
            return;
        }
        Err(e @ DecodeError::Size(..)) => panic!("decode of a parsed event: {e}"),
    };
    assert_eq!(record.time(), CLOCK.wall(event.ts_ns));

    json::same_as_serde(&record);
    let back = json::round_trip(&record);
    if comms(&record).into_iter().all(lossless_comm) {
        assert_eq!(back, record, "record changed through JSON");
    }

    let mut line = String::new();
    text_line(&mut line, &record, false);
    text_line(&mut line, &record, true);
});
