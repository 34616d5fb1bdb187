//! Replay of recordings: `--from` sources (files, directories of rotated files, gzip, standard
//! input) read as bytes with a line cap ([`lines`]), each source put back in time order within
//! a bounded window, and all sources merged in time order ([`merge`]).
//!
//! Memory is bounded whatever the input: one line of at most [`lines::MAX_LINE`] bytes and at
//! most [`REORDER_MAX`] records per source are held, plus the diagnosis engine's own bounds.

use std::fs::File;
use std::io::{self, BufRead, BufReader, Read, Seek, SeekFrom};
use std::os::unix::ffi::OsStrExt as _;
use std::path::{Path, PathBuf};

use crate::escape::escape;
use crate::event::record::{Label, Record, Time};

pub mod lines;
pub mod merge;

pub use lines::{BadLine, LineReader, MAX_LINE};
pub use merge::{Merge, Selection};

/// Records of one source up to this much older than the newest seen are put back in order
/// (a recording is in the order the tracer read its per-CPU ring: close, not exact).
pub const REORDER_NS: u64 = 2_000_000_000;
/// And at most this many records per source are held for it.
pub const REORDER_MAX: usize = 16_384;

#[derive(Debug, thiserror::Error)]
pub enum ReplayError {
    #[error("cannot open {name}: {source}")]
    Open { name: String, source: io::Error },
    #[error("cannot list the directory {name}: {source}")]
    List { name: String, source: io::Error },
    #[error("cannot read {name}: {source}")]
    Read { name: String, source: io::Error },
    #[error("the directory {name} holds no *.ndjson or *.ndjson.gz file")]
    EmptyDir { name: String },
    #[error(
        "a --since or --until duration counts back from the newest record, so it needs files: \
         standard input cannot be read twice (give an RFC 3339 time instead)"
    )]
    DurationFromStdin,
}

/// One recording to read: a file, or standard input.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Input {
    /// `None` for standard input.
    pub path: Option<PathBuf>,
}

impl Input {
    /// As messages name it (escaped for a terminal, see [`crate::escape`]).
    pub fn name(&self) -> String {
        match &self.path {
            None => "standard input".into(),
            Some(p) => escape(p.as_os_str().as_bytes()),
        }
    }
}

/// The recordings `--from` names: "-" is standard input, a directory its `*.ndjson` and
/// `*.ndjson.gz` files (sorted by name), anything else a file.
pub fn expand(from: &[PathBuf]) -> Result<Vec<Input>, ReplayError> {
    let mut out = Vec::new();
    for p in from {
        if p.as_os_str() == "-" {
            out.push(Input { path: None });
            continue;
        }
        if !p.is_dir() {
            out.push(Input {
                path: Some(p.clone()),
            });
            continue;
        }
        let name = Input {
            path: Some(p.clone()),
        }
        .name();
        let entries = std::fs::read_dir(p).map_err(|source| ReplayError::List {
            name: name.clone(),
            source,
        })?;
        let mut files = Vec::new();
        for e in entries {
            let e = e.map_err(|source| ReplayError::List {
                name: name.clone(),
                source,
            })?;
            let fname = e.file_name();
            let fname = fname.to_string_lossy();
            let recording = fname.ends_with(".ndjson") || fname.ends_with(".ndjson.gz");
            if recording && e.path().is_file() {
                files.push(e.path());
            }
        }
        if files.is_empty() {
            return Err(ReplayError::EmptyDir { name });
        }
        files.sort();
        out.extend(files.into_iter().map(|f| Input { path: Some(f) }));
    }
    Ok(out)
}

/// Opens an input as a byte stream, decompressing gzip (recognised by its magic bytes, so
/// `-` may be compressed too).
pub fn open(input: &Input) -> Result<Box<dyn BufRead + Send>, ReplayError> {
    let raw: Box<dyn Read + Send> = match &input.path {
        None => Box::new(io::stdin()),
        Some(p) => Box::new(File::open(p).map_err(|source| ReplayError::Open {
            name: input.name(),
            source,
        })?),
    };
    let mut r = BufReader::with_capacity(64 * 1024, raw);
    let gz = r
        .fill_buf()
        .map_err(|source| ReplayError::Read {
            name: input.name(),
            source,
        })?
        .starts_with(&[0x1f, 0x8b]);
    Ok(if gz {
        Box::new(BufReader::with_capacity(
            64 * 1024,
            flate2::bufread::MultiGzDecoder::new(r),
        ))
    } else {
        Box::new(r)
    })
}

/// What one line of a recording is.
#[derive(Debug)]
pub enum Parsed {
    Record(Box<Record>),
    /// Blank, or another record of a signal-trace stream that is not input (finding,
    /// timeline, summary, inspect).
    Skip,
    /// Not a record; the reason never quotes the line itself.
    Bad(String),
}

/// A record whose `event` comes first — as signal-trace writes them — is read straight into
/// its type; serde's tagged-enum path would buffer the whole object first (twice the work).
fn parse_direct(line: &str) -> Option<Record> {
    let rest = line.strip_prefix(r#"{"event":""#)?;
    let (tag, _) = rest.split_once('"')?;
    fn read<T: serde::de::DeserializeOwned>(line: &str) -> Option<T> {
        serde_json::from_str(line).ok()
    }
    Some(match tag {
        "generate" => Record::Generate(read(line)?),
        "deliver" => Record::Deliver(read(line)?),
        "exit" => Record::Exit(read(line)?),
        "send_failed" => Record::SendFailed(read(line)?),
        "oom" => Record::Oom(read(line)?),
        "lost" => Record::Lost(read(line)?),
        _ => return None,
    })
}

pub fn parse(line: &str) -> Parsed {
    if line.trim().is_empty() {
        return Parsed::Skip;
    }
    if let Some(r) = parse_direct(line) {
        return Parsed::Record(Box::new(r));
    }
    match serde_json::from_str::<Record>(line) {
        Ok(r) => Parsed::Record(Box::new(r)),
        Err(e) => {
            #[derive(serde::Deserialize)]
            struct Tag<'a> {
                #[serde(borrow)]
                event: std::borrow::Cow<'a, str>,
            }
            let output = serde_json::from_str::<Tag>(line).is_ok_and(|t| {
                matches!(
                    t.event.as_ref(),
                    "finding" | "timeline" | "inspect" | "summary"
                )
            });
            if output {
                Parsed::Skip
            } else {
                Parsed::Bad(format!(
                    "not a signal-trace record: {}",
                    escape(e.to_string())
                ))
            }
        }
    }
}

/// The time and node of a record, read without the rest.
#[derive(serde::Deserialize)]
struct Stamp {
    time: Time,
    #[serde(default)]
    host: Label,
}

/// The newest record time among the inputs (of the selected hosts), for a `--since` or
/// `--until` given as a duration. A plain file is read from its tail (the last 2 MiB, so at
/// least one whole line; the whole file when the tail holds no record); a gzip file has no
/// tail to seek to and is read whole (streaming). Standard input cannot be read twice.
pub fn newest(inputs: &[Input], hosts: &[String]) -> Result<Option<Time>, ReplayError> {
    let mut newest: Option<Time> = None;
    let keep = |s: &Stamp| hosts.is_empty() || hosts.iter().any(|h| h == s.host.as_str());
    for input in inputs {
        let Some(path) = &input.path else {
            return Err(ReplayError::DurationFromStdin);
        };
        let read_err = |source| ReplayError::Read {
            name: input.name(),
            source,
        };
        let mut found = None;
        let mut f = File::open(path).map_err(|source| ReplayError::Open {
            name: input.name(),
            source,
        })?;
        let mut magic = [0u8; 2];
        let n = f.read(&mut magic).map_err(read_err)?;
        let gz = n == 2 && magic == [0x1f, 0x8b];
        if !gz {
            let len = f.metadata().map_err(read_err)?.len();
            let tail = 2 * MAX_LINE as u64;
            if len > tail {
                f.seek(SeekFrom::Start(len - tail)).map_err(read_err)?;
                let mut lines = LineReader::new(BufReader::new(&mut f));
                // The first line is likely cut.
                let _ = lines.next_line().map_err(read_err)?;
                found = newest_in(&mut lines, &keep).map_err(read_err)?;
            }
        }
        if found.is_none() {
            let mut lines = LineReader::new(open(input)?);
            found = newest_in(&mut lines, &keep).map_err(read_err)?;
        }
        newest = newest.max(found);
    }
    Ok(newest)
}

fn newest_in<R: BufRead>(
    lines: &mut LineReader<R>,
    keep: &dyn Fn(&Stamp) -> bool,
) -> io::Result<Option<Time>> {
    let mut newest = None;
    while let Some(l) = lines.next_line()? {
        let Ok(l) = l else { continue };
        if let Ok(s) = serde_json::from_str::<Stamp>(l) {
            if keep(&s) {
                newest = newest.max(Some(s.time));
            }
        }
    }
    Ok(newest)
}

/// A `--since` or `--until` value: a time, or a duration back from the newest record.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum When {
    At(Time),
    Ago(std::time::Duration),
}

impl When {
    /// Parses RFC 3339 (`2026-11-29T08:00:00Z`, fractions allowed) or a duration (`30m`,
    /// `1h30m`, `90s`).
    pub fn parse(s: &str) -> Result<When, String> {
        if let Ok(t) = humantime::parse_rfc3339_weak(s) {
            let ns = t
                .duration_since(std::time::UNIX_EPOCH)
                .map_err(|_| "a time before 1970".to_string())?
                .as_nanos();
            return Ok(When::At(Time(
                u64::try_from(ns).map_err(|e| e.to_string())?,
            )));
        }
        humantime::parse_duration(s).map(When::Ago).map_err(|_| {
            "expected an RFC 3339 time (2026-11-29T08:00:00Z) or a duration (30m, 1h30m)".into()
        })
    }

    pub fn resolve(self, newest: Option<Time>) -> Time {
        match self {
            When::At(t) => t,
            When::Ago(d) => {
                let newest = newest.unwrap_or_default();
                Time(newest.0.saturating_sub(d.as_nanos() as u64))
            }
        }
    }
}

/// Reads one input's records, reporting its bad lines through `bad`.
pub struct Source {
    pub input: Input,
    lines: LineReader<Box<dyn BufRead + Send>>,
}

impl Source {
    pub fn open(input: Input) -> Result<Source, ReplayError> {
        let lines = LineReader::new(open(&input)?);
        Ok(Source { input, lines })
    }

    /// The next record, or `None` at the end; lines that are not records go to `bad` with
    /// their number and reason.
    pub fn next_record(
        &mut self,
        bad: &mut dyn FnMut(&Input, u64, &str),
    ) -> Result<Option<Box<Record>>, ReplayError> {
        loop {
            // The number of the line about to be read.
            let n = self.lines.line + 1;
            let line = self.lines.next_line().map_err(|source| ReplayError::Read {
                name: self.input.name(),
                source,
            })?;
            let Some(line) = line else { return Ok(None) };
            match line {
                Err(why) => bad(&self.input, n, &why.to_string()),
                Ok(text) => match parse(text) {
                    Parsed::Record(r) => return Ok(Some(r)),
                    Parsed::Skip => {}
                    Parsed::Bad(why) => bad(&self.input, n, &why),
                },
            }
        }
    }
}

/// A path for messages.
pub fn display(p: &Path) -> String {
    escape(p.as_os_str().as_bytes())
}

#[cfg(test)]
mod tests;
