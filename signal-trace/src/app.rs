//! The commands, at the edge: configuration in, exit status out.

use std::io::{self, IsTerminal, Write};

use anyhow::{bail, Context as _};

use crate::cli::ExplainArgs;
use crate::config::{Config, Env};
use crate::escape::escape;
use crate::explain::Engine;
use crate::filter::record_matches;
use crate::kernel::privilege;
use crate::kernel::tracer::{self, Consumer, Mode, Tracer};
use crate::replay::{self, Merge, Selection, Source, When};
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
        eprintln!("signal-trace: warning: {}", escape(w));
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
    let events: Vec<_> = tracer.traced.iter().map(|e| e.as_str()).collect();
    if let Some(why) = &tracer.send_failed_off {
        eprintln!("{}", send_failed_off_line(why, cfg.failed));
    }
    match tracer.send_watch {
        tracer::SendWatch::Fexit => eprintln!(
            "signal-trace: refused sends from fexit programs on the six signal syscalls"
        ),
        tracer::SendWatch::SyscallTracepoint => eprintln!(
            "signal-trace: refused sends from the syscall-exit tracepoint (every syscall on the host takes the slower syscall-tracing path)"
        ),
        tracer::SendWatch::Off => {}
    }
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

/// The start-up line for refused sends that are not watched: that they are off, why, and what
/// watching them costs; with `--failed`, in one line what it therefore cannot see.
pub fn send_failed_off_line(why: &str, failed: bool) -> String {
    let off = format!(
        "refused sends (a kill, tkill, tgkill, rt_sigqueueinfo, rt_tgsigqueueinfo or pidfd_send_signal the kernel turns down) are off: {why}"
    );
    let cost = "--events ...,send_failed watches them from the syscall-exit tracepoint, which slows every syscall on the host (+34 % on a getppid() loop in the benchmark)";
    if failed {
        format!("signal-trace: --failed sees signals the kernel dropped, not sends it refused: {off}; {cost}")
    } else {
        format!("signal-trace: {off}; {cost}")
    }
}

/// `signal-trace explain`: live, or replayed from recordings.
pub fn explain(args: &ExplainArgs) -> anyhow::Result<()> {
    let cfg = Config::from_args(&args.trace, env())?;
    let engine = Box::new(Engine::new());
    if args.from.is_empty() {
        return trace(
            cfg,
            Consumer::Explain {
                engine,
                timeline: args.timeline,
            },
        );
    }
    let inputs = replay::expand(&args.from)?;
    let ago = |w: &Option<When>| matches!(w, Some(When::Ago(_)));
    let newest = if ago(&args.since) || ago(&args.until) {
        replay::newest(&inputs, &args.host)?
    } else {
        None
    };
    let sel = Selection {
        hosts: args.host.clone(),
        since: args.since.map(|w| w.resolve(newest)),
        until: args.until.map(|w| w.resolve(newest)),
    };
    let sources = inputs
        .into_iter()
        .map(Source::open)
        .collect::<Result<Vec<_>, _>>()?;
    let out = tracer::open_output(&cfg)?;
    let stats = replay(
        Merge::new(sources, sel),
        &cfg,
        engine,
        args.timeline,
        Box::new(out),
    )?;
    if stats.bad > 0 {
        bail!(
            "{} lines were not records (reported above); the findings rest on the {} records",
            stats.bad,
            stats.records
        );
    }
    Ok(())
}

/// What a replay read.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct ReplayStats {
    /// Records fed to the engine (after --host, --since, --until and the filters).
    pub records: u64,
    /// Lines that were not records.
    pub bad: u64,
}

/// Bad lines reported one by one up to this many; the rest are only counted.
const BAD_LINES_SHOWN: u64 = 100;

/// Feeds merged recordings to the engine. Lines that are not records are reported with their
/// source, number and reason (never their bytes), and skipped.
pub fn replay(
    mut input: Merge,
    cfg: &Config,
    mut engine: Box<Engine>,
    timeline: bool,
    out: Box<dyn Write + Send>,
) -> anyhow::Result<ReplayStats> {
    let mut sink = Sink::new(out, cfg.format, cfg.color);
    let mut summary = cfg.summary.map(|d| Summarizer::new(d.as_nanos() as u64));
    let mut last = crate::event::record::Time(0);
    let mut stats = ReplayStats::default();
    let write = |r: io::Result<()>| -> anyhow::Result<bool> {
        match r {
            Ok(()) => Ok(true),
            Err(e) if e.kind() == io::ErrorKind::BrokenPipe => Ok(false),
            Err(e) => Err(e).context("cannot write findings"),
        }
    };
    let mut bad_count = 0u64;
    let mut bad = |src: &replay::Input, line: u64, why: &str| {
        bad_count += 1;
        if bad_count <= BAD_LINES_SHOWN {
            // Both are escaped already: the name by Input::name, the reason where it was made.
            eprintln!("signal-trace: {}:{line}: {why}", src.name());
        } else if bad_count == BAD_LINES_SHOWN + 1 {
            eprintln!("signal-trace: more bad lines: only counted from here on");
        }
    };
    while let Some(rec) = input.next_record(&mut bad)? {
        if !record_matches(&cfg.filters, &rec) {
            continue;
        }
        stats.records += 1;
        last = last.max(rec.time());
        if let Some(done) = summary.as_mut().and_then(|s| s.push(&rec)) {
            if !write(sink.write(&done))? {
                return Ok(stats);
            }
        }
        for f in engine.push(&rec) {
            if !write(sink.write(&f))? {
                return Ok(stats);
            }
        }
    }
    stats.bad = bad_count;
    if let Some(done) = summary.as_mut().and_then(|s| s.finish(last)) {
        if !write(sink.write(&done))? {
            return Ok(stats);
        }
    }
    for f in engine.finish() {
        if !write(sink.write(&f))? {
            return Ok(stats);
        }
    }
    if timeline {
        for t in engine.timelines() {
            if !write(sink.write(&t))? {
                return Ok(stats);
            }
        }
    }
    write(sink.flush())?;
    Ok(stats)
}

/// Writes the man pages (`DIR/man/signal-trace.1` and one per subcommand) and the shell
/// completions (`DIR/completions`: `signal-trace.bash`, `_signal-trace`, `signal-trace.fish`),
/// all generated from the clap definitions, so they never drift from the CLI.
pub fn write_assets(dir: &std::path::Path) -> anyhow::Result<()> {
    use clap::CommandFactory as _;
    use clap_complete::Shell;
    let man = dir.join("man");
    let completions = dir.join("completions");
    for d in [&man, &completions] {
        std::fs::create_dir_all(d).with_context(|| format!("cannot create {}", d.display()))?;
    }
    let cmd = crate::cli::Cli::command();
    let page = |c: clap::Command, name: &str| -> anyhow::Result<()> {
        let path = man.join(format!("{name}.1"));
        let mut f = std::fs::File::create(&path)
            .with_context(|| format!("cannot create {}", path.display()))?;
        clap_mangen::Man::new(c)
            .render(&mut f)
            .with_context(|| format!("cannot write {}", path.display()))
    };
    page(cmd.clone(), "signal-trace")?;
    for sub in cmd.get_subcommands().filter(|s| !s.is_hide_set()) {
        // clap names are 'static; this runs once, for a package build.
        let name: &'static str = Box::leak(format!("signal-trace-{}", sub.get_name()).into());
        page(sub.clone().name(name), name)?;
    }
    for shell in [Shell::Bash, Shell::Zsh, Shell::Fish] {
        clap_complete::generate_to(shell, &mut cmd.clone(), "signal-trace", &completions)
            .with_context(|| format!("cannot write the {shell} completions"))?;
    }
    Ok(())
}
