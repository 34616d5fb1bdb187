//! Command-line arguments → clap (`Cli`) → `Config::from_args`: a configuration or an error,
//! never a panic, and an accepted configuration is one the kernel programs can be given. The
//! input is the argument list, NUL-separated.

#![no_main]

use clap::Parser;
use libfuzzer_sys::fuzz_target;
use signal_trace::cli::{Cli, Command};
use signal_trace::config::{Config, Env};
use signal_trace::filter::kernel_filter;

fuzz_target!(|data: &[u8]| {
    let args: Vec<String> = if data.is_empty() {
        Vec::new()
    } else {
        data.split(|&b| b == 0)
            .map(|a| String::from_utf8_lossy(a).into_owned())
            .collect()
    };
    let cli = match Cli::try_parse_from(std::iter::once("signal-trace".to_owned()).chain(args)) {
        Ok(c) => c,
        Err(e) => {
            let _ = e.render().to_string();
            return;
        }
    };
    let trace = match cli.command {
        None => cli.trace,
        Some(Command::Trace(t)) => t,
        Some(Command::Explain(e)) => e.trace,
        // Writes man pages and completions: nothing to validate.
        Some(Command::Assets { .. }) => return,
        Some(Command::Inspect(i)) => {
            assert!(
                i.target().is_some(),
                "clap let an inspect without target through"
            );
            return;
        }
    };
    for env in [
        Env::default(),
        Env {
            stdout_is_terminal: true,
            no_color: false,
        },
    ] {
        let cfg = match Config::from_args(&trace, env) {
            Ok(c) => c,
            Err(e) => {
                let _ = e.to_string();
                continue;
            }
        };
        let f = &cfg.filters;
        assert!(cfg.ring_size.is_power_of_two());
        assert!((4096..=1 << 30).contains(&cfg.ring_size));
        assert!(!cfg.events.is_empty());
        assert!(
            f.signals.iter().all(|s| (1..=64).contains(s)),
            "{:?}",
            f.signals
        );
        assert!(f.results.iter().all(|&r| r <= 4), "{:?}", f.results);
        assert!(f.comms.iter().all(|c| !c.is_empty() && c.len() <= 15));
        assert!(f
            .pids
            .iter()
            .chain(&f.target_pids)
            .chain(&f.sender_pids)
            .all(|&p| p > 0));
        assert_eq!(f.signal_mask().count_ones() as usize, f.signals.len());
        assert_eq!(f.result_mask().count_ones() as usize, f.results.len());
        if let Some(d) = cfg.duration {
            assert!(!d.is_zero());
        }
        assert_ne!(cfg.count, Some(0));
        let k = kernel_filter(f, 0);
        assert_eq!(
            k.comms.len(),
            f.comms.len(),
            "comm filters collide: {:?}",
            f.comms
        );
    }
});
