use std::io::IsTerminal;
use std::process::ExitCode;

use clap::Parser;
use signal_trace::cli::{Cli, Command};
use signal_trace::config::{Config, Env};
use signal_trace::tracer::{self, PrivilegeError, Stop, Tracer};

fn main() -> ExitCode {
    let cli = Cli::parse();
    let args = match cli.command {
        Some(Command::Trace(a)) => a,
        None => cli.trace,
    };
    let env = Env {
        stdout_is_terminal: std::io::stdout().is_terminal(),
        no_color: std::env::var_os("NO_COLOR").is_some_and(|v| !v.is_empty()),
    };
    let cfg = match Config::from_args(&args, env) {
        Ok(c) => c,
        Err(e) => {
            eprintln!("signal-trace: {e}");
            return ExitCode::from(2);
        }
    };
    match trace(cfg) {
        Ok(()) => ExitCode::SUCCESS,
        Err(e) => {
            if let Some(p) = e.downcast_ref::<PrivilegeError>() {
                eprintln!("{p}");
            } else {
                eprintln!("signal-trace: {e:#}");
            }
            ExitCode::from(1)
        }
    }
}

fn trace(cfg: Config) -> anyhow::Result<()> {
    tracer::check_privileges()?;
    let out = tracer::open_output(&cfg)?;
    let tracer = Tracer::start(&cfg)?;
    for w in &tracer.warnings {
        eprintln!("signal-trace: warning: {w}");
    }
    let events: Vec<_> = cfg.events.iter().map(|e| e.as_str()).collect();
    eprintln!(
        "signal-trace: tracing {} ({} attachments, {} mode); Ctrl-C to stop",
        events.join(","),
        tracer.attached,
        match tracer.mode {
            tracer::Mode::Full => "full",
            tracer::Mode::Classic => "reduced",
        }
    );
    let rt = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()?;
    let (stop, totals) = rt.block_on(tracer::run(cfg, tracer, out))?;
    let _ = stop == Stop::BrokenPipe;
    eprintln!("{} events, {} lost", totals.events, totals.lost);
    Ok(())
}
