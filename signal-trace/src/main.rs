use std::process::ExitCode;

use clap::Parser;
use signal_trace::app;
use signal_trace::cli::{Cli, Command};
use signal_trace::config::{Config, ConfigError};
use signal_trace::escape::escape;
use signal_trace::kernel::privilege::PrivilegeError;
use signal_trace::kernel::tracer::Consumer;

fn main() -> ExitCode {
    let cli = Cli::parse();
    let result = match cli.command {
        Some(Command::Inspect(a)) => {
            let mut out = std::io::stdout().lock();
            signal_trace::inspect::run(&a, std::path::Path::new("/proc"), &mut out)
                .map_err(anyhow::Error::from)
        }
        Some(Command::Explain(a)) => app::explain(&a),
        Some(Command::Assets { dir }) => app::write_assets(&dir),
        Some(Command::Trace(a)) => Config::from_args(&a, app::env())
            .map_err(anyhow::Error::from)
            .and_then(|cfg| app::trace(cfg, Consumer::Print)),
        None => Config::from_args(&cli.trace, app::env())
            .map_err(anyhow::Error::from)
            .and_then(|cfg| app::trace(cfg, Consumer::Print)),
    };
    match result {
        Ok(()) => ExitCode::SUCCESS,
        Err(e) if e.downcast_ref::<ConfigError>().is_some() => {
            eprintln!("signal-trace: {}", escape(e.to_string()));
            ExitCode::from(2)
        }
        Err(e) => {
            if let Some(p @ PrivilegeError::Missing) = e.downcast_ref::<PrivilegeError>() {
                eprintln!("{}", escape(p.to_string()));
            } else {
                // Messages quote paths, runtime answers and input: one escaped line.
                eprintln!("signal-trace: {}", escape(format!("{e:#}")));
            }
            ExitCode::from(1)
        }
    }
}
