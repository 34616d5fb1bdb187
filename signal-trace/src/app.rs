//! The commands, at the edge: configuration in, exit status out.

use std::fs::File;
use std::io::{self, BufRead, BufReader, IsTerminal, Write};

use anyhow::{bail, Context as _};

use crate::cli::ExplainArgs;
use crate::config::{Config, Env};
use crate::event::record::Record;
use crate::explain::Engine;
use crate::filter::record_matches;
use crate::kernel::privilege;
use crate::kernel::tracer::{self, Consumer, Mode, Tracer};
use crate::sink::metrics::Metrics;
use crate::sink::output::Sink;
use crate::sink::summary::Summarizer;

pub fn env() -> Env {
    Env {
        stdout_is_terminal: io::stdout().is_terminal(),
        no_color: std::env::var_os("NO_COLOR").is_some_and(|v| !v.is_empty()),
    }
}

/// Attaches the programs and streams until stopped, printing records or, in explain mode, the
/// findings the engine draws from them.
pub fn trace(cfg: Config, consumer: Consumer) -> anyhow::Result<()> {
    privilege::check()?;
    let out = tracer::open_output(&cfg)?;
    let tracer = Tracer::start(&cfg)?;
    for w in &tracer.warnings {
        eprintln!("signal-trace: warning: {w}");
    }
    let rt = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .context("cannot start the event loop")?;
    let stops = {
        let _guard = rt.enter();
        tracer::StopSignals::install()?
    };
    let metrics = match cfg.metrics {
        None => None,
        Some(addr) => {
            let m = Metrics::new(cfg.metrics_pod_labels);
            let server = m
                .bind(addr)
                .with_context(|| format!("cannot serve metrics on {addr}"))?;
            eprintln!(
                "signal-trace: metrics on http://{}/metrics",
                server.local_addr()?
            );
            Some((m, server))
        }
    };
    // Everything privileged is done: programs attached, output open, metrics port bound.
    privilege::drop_all_but(&privilege::keep_after_attach())?;
    // Then the system calls: only what the loop, the output, the cgroup scans, the runtime
    // client and the metrics endpoint make (every thread, those already started included).
    if let Err(e) = privilege::install_seccomp() {
        eprintln!("signal-trace: warning: {e}; running without it");
    }
    let events: Vec<_> = cfg.events.iter().map(|e| e.as_str()).collect();
    eprintln!(
        "signal-trace: tracing {} ({} attachments, {} mode); Ctrl-C to stop",
        events.join(","),
        tracer.attached,
        match tracer.mode {
            Mode::Full => "full",
            Mode::Classic => "reduced",
        }
    );
    let (_stop, totals) = rt.block_on(tracer::run(cfg, tracer, out, consumer, stops, metrics))?;
    eprintln!("{} events, {} lost", totals.events, totals.lost);
    Ok(())
}

/// `signal-trace explain`: live, or replayed from a recorded stream.
pub fn explain(args: &ExplainArgs) -> anyhow::Result<()> {
    let cfg = Config::from_args(&args.trace, env())?;
    let engine = Box::new(Engine::new());
    let Some(from) = &args.from else {
        return trace(
            cfg,
            Consumer::Explain {
                engine,
                timeline: args.timeline,
            },
        );
    };
    let input: Box<dyn BufRead> = if from.as_os_str() == "-" {
        Box::new(BufReader::new(io::stdin()))
    } else {
        Box::new(BufReader::new(
            File::open(from).with_context(|| format!("cannot open {}", from.display()))?,
        ))
    };
    let out = tracer::open_output(&cfg)?;
    let bad = replay(
        input,
        &cfg,
        engine,
        args.timeline,
        Box::new(out),
        &from.display().to_string(),
    )?;
    if bad > 0 {
        bail!(
            "{bad} lines of {} were not records (reported above); the findings rest on the rest",
            from.display()
        );
    }
    Ok(())
}

/// Feeds a recorded stream to the engine. Lines that are not records are reported with their
/// number and skipped; returns how many there were.
pub fn replay(
    input: Box<dyn BufRead>,
    cfg: &Config,
    mut engine: Box<Engine>,
    timeline: bool,
    out: Box<dyn Write + Send>,
    name: &str,
) -> anyhow::Result<u64> {
    let mut sink = Sink::new(out, cfg.format, cfg.color);
    let mut summary = cfg.summary.map(|d| Summarizer::new(d.as_nanos() as u64));
    let mut last = crate::event::record::Time(0);
    let mut bad = 0u64;
    let write = |r: io::Result<()>| -> anyhow::Result<bool> {
        match r {
            Ok(()) => Ok(true),
            Err(e) if e.kind() == io::ErrorKind::BrokenPipe => Ok(false),
            Err(e) => Err(e).context("cannot write findings"),
        }
    };
    for (i, line) in input.lines().enumerate() {
        let line = line.with_context(|| format!("cannot read {name} at line {}", i + 1))?;
        if line.trim().is_empty() {
            continue;
        }
        let rec: Record = match serde_json::from_str(&line) {
            Ok(r) => r,
            Err(e) => {
                // Other records of a stream (findings, timelines) are not input: skip quietly.
                let is_output = serde_json::from_str::<serde_json::Value>(&line)
                    .ok()
                    .and_then(|v| v.get("event").and_then(|e| e.as_str()).map(str::to_owned))
                    .is_some_and(|e| e == "finding" || e == "timeline" || e == "inspect");
                if !is_output {
                    eprintln!(
                        "signal-trace: {name}:{}: not a signal-trace record: {e}",
                        i + 1
                    );
                    bad += 1;
                }
                continue;
            }
        };
        if !record_matches(&cfg.filters, &rec) {
            continue;
        }
        last = last.max(rec.time());
        if let Some(done) = summary.as_mut().and_then(|s| s.push(&rec)) {
            if !write(sink.write(&done))? {
                return Ok(bad);
            }
        }
        for f in engine.push(&rec) {
            if !write(sink.write(&f))? {
                return Ok(bad);
            }
        }
    }
    if let Some(done) = summary.as_mut().and_then(|s| s.finish(last)) {
        if !write(sink.write(&done))? {
            return Ok(bad);
        }
    }
    for f in engine.finish() {
        if !write(sink.write(&f))? {
            return Ok(bad);
        }
    }
    if timeline {
        for t in engine.timelines() {
            if !write(sink.write(&t))? {
                return Ok(bad);
            }
        }
    }
    write(sink.flush())?;
    Ok(bad)
}
