//! Validated configuration, built from the raw CLI arguments.

use std::collections::BTreeSet;
use std::path::PathBuf;
use std::time::Duration;

use crate::cli::{ColorArg, FormatArg, SideArg, TraceArgs};
use crate::event::names::{parse_result, parse_signal, NSIG};
use crate::workload::containers::Selector;

#[derive(Debug, thiserror::Error, PartialEq, Eq)]
pub enum ConfigError {
    #[error("invalid value '{value}' for {flag}: {why}")]
    Invalid {
        flag: &'static str,
        value: String,
        why: String,
    },
}

fn invalid(flag: &'static str, value: &str, why: impl Into<String>) -> ConfigError {
    ConfigError::Invalid {
        flag,
        value: value.into(),
        why: why.into(),
    }
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub enum EventKind {
    Generate,
    Deliver,
    Exit,
    SendFailed,
    Oom,
}

impl EventKind {
    pub const ALL: [EventKind; 5] = [
        EventKind::Generate,
        EventKind::Deliver,
        EventKind::Exit,
        EventKind::SendFailed,
        EventKind::Oom,
    ];
    pub fn as_str(self) -> &'static str {
        match self {
            EventKind::Generate => "generate",
            EventKind::Deliver => "deliver",
            EventKind::Exit => "exit",
            EventKind::SendFailed => "send_failed",
            EventKind::Oom => "oom",
        }
    }
    fn parse(s: &str) -> Option<EventKind> {
        let s = s.trim().to_ascii_lowercase().replace('-', "_");
        EventKind::ALL.into_iter().find(|k| k.as_str() == s)
    }
}

/// Selection of signals, processes and results, applied in the kernel where it can be.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Filters {
    /// Either side.
    pub pids: BTreeSet<u32>,
    pub target_pids: BTreeSet<u32>,
    pub sender_pids: BTreeSet<u32>,
    /// Empty: every signal.
    pub signals: BTreeSet<u32>,
    /// Empty: every result.
    pub results: BTreeSet<u32>,
    pub comms: BTreeSet<String>,
    /// Container selectors (all must match); empty: no container filter.
    pub containers: Vec<Selector>,
    /// The side the container selectors look at.
    pub container_side: Side,
}

#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub enum Side {
    Sender,
    Target,
    #[default]
    Either,
}

impl Filters {
    pub fn signal_mask(&self) -> u64 {
        self.signals.iter().fold(0u64, |m, &s| m | 1u64 << (s - 1))
    }
    pub fn result_mask(&self) -> u32 {
        self.results.iter().fold(0u32, |m, &r| m | 1 << r)
    }
    /// A filter on the sender alone: exits (which have no sender) are then kept only for
    /// processes seen receiving a matching signal.
    pub fn sender_only(&self) -> bool {
        !self.sender_pids.is_empty() && self.pids.is_empty() && self.target_pids.is_empty()
    }
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Format {
    Text,
    Json,
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Config {
    pub filters: Filters,
    pub events: BTreeSet<EventKind>,
    /// `--events` names send_failed: refused sends are then watched even where that costs every
    /// syscall (the sys_exit watcher); otherwise only where the kernel allows the fexit programs.
    pub send_failed_asked: bool,
    /// `--failed`: only what did not get through.
    pub failed: bool,
    pub format: Format,
    pub color: bool,
    pub output: Option<PathBuf>,
    /// `--output-fifo`: the output may be a FIFO.
    pub output_fifo: bool,
    /// `--output-max-size`: rotate the output file before it grows past this.
    pub output_max_size: Option<u64>,
    /// `--output-keep`: rotated files kept.
    pub output_keep: u32,
    pub duration: Option<Duration>,
    pub count: Option<u64>,
    /// Summary mode: the interval.
    pub summary: Option<Duration>,
    pub ring_size: u32,
    pub btf: PathBuf,
    pub containerd_socket: PathBuf,
    pub docker_socket: PathBuf,
    pub podman_socket: PathBuf,
    pub cri_socket: PathBuf,
    pub metrics: Option<std::net::SocketAddr>,
    pub metrics_pod_labels: bool,
    /// Follow execs and forks to name senders' programs (not `--no-process-identity`).
    pub process_identity: bool,
}

/// Parses a metrics address: "host:port", "\[v6\]:port", or a bare port for 127.0.0.1.
pub fn parse_metrics_addr(s: &str) -> Option<std::net::SocketAddr> {
    let s = s.trim();
    if let Ok(port) = s.parse::<u16>() {
        return Some(std::net::SocketAddr::from(([127, 0, 0, 1], port)));
    }
    if let Some(port) = s.strip_prefix(':').and_then(|p| p.parse::<u16>().ok()) {
        return Some(std::net::SocketAddr::from(([127, 0, 0, 1], port)));
    }
    s.parse().ok()
}

/// What the process's environment says, for defaults that depend on it.
#[derive(Debug, Clone, Copy, Default)]
pub struct Env {
    pub stdout_is_terminal: bool,
    pub no_color: bool,
}

fn parse_pids(flag: &'static str, values: &[String]) -> Result<BTreeSet<u32>, ConfigError> {
    values
        .iter()
        .filter(|v| !v.trim().is_empty() || values.len() == 1)
        .map(|v| match v.trim().parse::<u32>() {
            Ok(p) if p > 0 && p <= 4_194_304 => Ok(p),
            _ => Err(invalid(flag, v, "expected a process id from 1 to 4194304")),
        })
        .collect()
}

/// Parses "4M", "65536", "512K" (powers of two, 4 KiB to 1 GiB).
pub fn parse_size(s: &str) -> Option<u32> {
    let n = parse_byte_count(s)?;
    (n.is_power_of_two() && (4096..=1 << 30).contains(&n)).then_some(n as u32)
}

/// Parses a byte count with an optional K, M or G suffix (powers of 1024).
pub fn parse_byte_count(s: &str) -> Option<u64> {
    let t = s.trim();
    let (num, mult) = match t.char_indices().last()? {
        (i, 'k' | 'K') => (&t[..i], 1u64 << 10),
        (i, 'm' | 'M') => (&t[..i], 1u64 << 20),
        (i, 'g' | 'G') => (&t[..i], 1u64 << 30),
        _ => (t, 1),
    };
    num.parse::<u64>().ok()?.checked_mul(mult)
}

/// Rotated output files kept by default with `--output-max-size`.
pub const DEFAULT_OUTPUT_KEEP: u32 = 5;

impl Config {
    pub fn from_args(a: &TraceArgs, env: Env) -> Result<Config, ConfigError> {
        let mut filters = Filters {
            pids: parse_pids("--pid", &a.pid)?,
            target_pids: parse_pids("--target-pid", &a.target_pid)?,
            sender_pids: parse_pids("--sender-pid", &a.sender_pid)?,
            ..Filters::default()
        };
        for s in &a.signal {
            let sig = parse_signal(s).ok_or_else(|| {
                invalid(
                    "--signal",
                    s,
                    format!("not a signal name or a number from 1 to {NSIG}"),
                )
            })?;
            filters.signals.insert(sig);
        }
        for r in &a.result {
            let res = parse_result(r).ok_or_else(|| {
                invalid(
                    "--result",
                    r,
                    "expected delivered, ignored, already_pending, overflow or lose_info",
                )
            })?;
            filters.results.insert(res);
        }
        if a.failed {
            if filters.results.contains(&0) {
                return Err(invalid("--result", "delivered", "contradicts --failed"));
            }
            if filters.results.is_empty() {
                filters.results.extend([1, 2, 3, 4]);
            }
        }
        for c in &a.comm {
            if c.is_empty() || c.len() > 15 {
                return Err(invalid("--comm", c, "a command name is 1 to 15 bytes"));
            }
            filters.comms.insert(c.clone());
        }

        for (flag, values, make) in [
            (
                "--container",
                &a.container,
                Selector::Container as fn(String) -> Selector,
            ),
            ("--pod", &a.pod, Selector::Pod),
            ("--namespace", &a.namespace, Selector::Namespace),
        ] {
            for v in values {
                if v.trim().is_empty() {
                    return Err(invalid(flag, v, "expected a non-empty value"));
                }
                filters.containers.push(make(v.trim().to_string()));
            }
        }
        filters.container_side = match a.side {
            SideArg::Sender => Side::Sender,
            SideArg::Target => Side::Target,
            SideArg::Either => Side::Either,
        };

        let mut events = BTreeSet::new();
        for e in &a.events {
            events.insert(EventKind::parse(e).ok_or_else(|| {
                invalid(
                    "--events",
                    e,
                    "expected generate, deliver, exit, send_failed or oom",
                )
            })?);
        }
        let send_failed_asked = events.contains(&EventKind::SendFailed);
        if events.is_empty() {
            if a.failed {
                events.extend([EventKind::Generate, EventKind::SendFailed]);
            } else if !filters.results.is_empty() {
                events.insert(EventKind::Generate);
            } else {
                events.extend(EventKind::ALL);
            }
        }

        let duration = match &a.duration {
            None => None,
            Some(s) => match s.trim().parse::<f64>() {
                Ok(secs) if secs > 0.0 && secs.is_finite() && secs < 1e9 => {
                    Some(Duration::from_secs_f64(secs))
                }
                _ => {
                    return Err(invalid(
                        "--duration",
                        s,
                        "expected a positive number of seconds",
                    ))
                }
            },
        };
        let summary = match &a.summary {
            None => None,
            Some(s) => match s.trim().parse::<f64>() {
                Ok(secs) if (0.1..1e6).contains(&secs) => Some(Duration::from_secs_f64(secs)),
                _ => {
                    return Err(invalid(
                        "--summary",
                        s,
                        "expected an interval of at least 0.1 seconds",
                    ))
                }
            },
        };
        let count = match &a.count {
            None => None,
            Some(s) => match s.trim().parse::<u64>() {
                Ok(n) if n > 0 => Some(n),
                _ => return Err(invalid("--count", s, "expected a positive whole number")),
            },
        };
        let ring_size = parse_size(&a.ring_size).ok_or_else(|| {
            invalid(
                "--ring-size",
                &a.ring_size,
                "expected a power of two from 4K to 1G",
            )
        })?;
        if let Some(out) = &a.output {
            if out.as_os_str().is_empty() {
                return Err(invalid("--output", "", "expected a file name"));
            }
        }
        let output_max_size = match &a.output_max_size {
            None => None,
            Some(s) => match parse_byte_count(s) {
                Some(n) if n >= 4096 => Some(n),
                _ => {
                    return Err(invalid(
                        "--output-max-size",
                        s,
                        "expected a size of at least 4K (K, M, G suffixes allowed)",
                    ))
                }
            },
        };
        if output_max_size.is_some() && a.output_fifo {
            return Err(invalid(
                "--output-max-size",
                a.output_max_size.as_deref().unwrap_or(""),
                "a FIFO cannot be rotated",
            ));
        }
        let output_keep = match &a.output_keep {
            None => DEFAULT_OUTPUT_KEEP,
            Some(s) => match s.trim().parse::<u32>() {
                Ok(n) if (1..=1000).contains(&n) => n,
                _ => {
                    return Err(invalid(
                        "--output-keep",
                        s,
                        "expected a number of files from 1 to 1000",
                    ))
                }
            },
        };
        let format = match a.format {
            Some(FormatArg::Text) => Format::Text,
            Some(FormatArg::Json) => Format::Json,
            None if a.output.is_none() && env.stdout_is_terminal => Format::Text,
            None => Format::Json,
        };
        let color = format == Format::Text
            && match a.color {
                ColorArg::Always => true,
                ColorArg::Never => false,
                ColorArg::Auto => a.output.is_none() && env.stdout_is_terminal && !env.no_color,
            };
        let metrics = match &a.metrics_addr {
            None => None,
            Some(m) => Some(parse_metrics_addr(m).ok_or_else(|| {
                invalid(
                    "--metrics-addr",
                    m,
                    "expected host:port, or a port for localhost",
                )
            })?),
        };
        Ok(Config {
            filters,
            events,
            send_failed_asked,
            failed: a.failed,
            format,
            color,
            output: a.output.clone(),
            output_fifo: a.output_fifo,
            output_max_size,
            output_keep,
            duration,
            count,
            summary,
            ring_size,
            btf: a.btf.clone(),
            containerd_socket: a.containerd_socket.clone(),
            docker_socket: a.docker_socket.clone(),
            podman_socket: a.podman_socket.clone(),
            cri_socket: a.cri_socket.clone(),
            metrics,
            metrics_pod_labels: a.metrics_pod_labels,
            process_identity: !a.no_process_identity,
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use clap::Parser;

    fn cfg(args: &[&str]) -> Result<Config, ConfigError> {
        let cli = crate::cli::Cli::try_parse_from(
            std::iter::once("signal-trace").chain(args.iter().copied()),
        )
        .expect("clap accepts");
        Config::from_args(&cli.trace, Env::default())
    }

    #[test]
    fn output_rotation_options() {
        let c = cfg(&["-o", "/var/log/s.ndjson", "--output-max-size", "10M"]).unwrap();
        assert_eq!(c.output_max_size, Some(10 << 20));
        assert_eq!(c.output_keep, DEFAULT_OUTPUT_KEEP);
        let c = cfg(&["-o", "x", "--output-max-size", "64K", "--output-keep", "2"]).unwrap();
        assert_eq!((c.output_max_size, c.output_keep), (Some(64 << 10), 2));
        for bad in [
            &["-o", "x", "--output-max-size", "1K"][..],
            &["-o", "x", "--output-max-size", "ten"],
            &["-o", "x", "--output-max-size", "1M", "--output-keep", "0"],
            &["-o", "x", "--output-fifo", "--output-max-size", "1M"],
        ] {
            assert!(cfg(bad).is_err(), "{bad:?}");
        }
        let c = cfg(&["-o", "/run/st.fifo", "--output-fifo"]).unwrap();
        assert!(c.output_fifo);
        for needs_output in [&["--output-fifo"][..], &["--output-max-size", "1M"]] {
            assert!(
                crate::cli::Cli::try_parse_from(
                    std::iter::once("signal-trace").chain(needs_output.iter().copied())
                )
                .is_err(),
                "{needs_output:?}"
            );
        }
    }

    #[test]
    fn defaults() {
        let c = cfg(&[]).unwrap();
        assert_eq!(c.events.len(), 5);
        assert_eq!(c.format, Format::Json, "not a terminal: json");
        assert_eq!(c.ring_size, 4 << 20);
        assert!(!c.color);
        assert_eq!(c.cri_socket, PathBuf::from("/var/run/crio/crio.sock"));
        assert_eq!(
            cfg(&["--cri-socket", "/run/containerd/containerd.sock"])
                .unwrap()
                .cri_socket,
            PathBuf::from("/run/containerd/containerd.sock")
        );
        let cli = crate::cli::Cli::try_parse_from(["signal-trace"]).unwrap();
        let t = Config::from_args(
            &cli.trace,
            Env {
                stdout_is_terminal: true,
                no_color: false,
            },
        )
        .unwrap();
        assert_eq!((t.format, t.color), (Format::Text, true));
        let t = Config::from_args(
            &cli.trace,
            Env {
                stdout_is_terminal: true,
                no_color: true,
            },
        )
        .unwrap();
        assert!(!t.color);
    }

    #[test]
    fn filters_parse() {
        let c = cfg(&[
            "--signal",
            "TERM,sigkill",
            "--signal",
            "10",
            "--pid",
            "5,6",
            "--target-pid",
            "7",
        ])
        .unwrap();
        assert_eq!(c.filters.signals, BTreeSet::from([9, 10, 15]));
        assert_eq!(c.filters.signal_mask(), (1 << 8) | (1 << 9) | (1 << 14));
        assert_eq!(c.filters.pids, BTreeSet::from([5, 6]));
        assert_eq!(c.filters.target_pids, BTreeSet::from([7]));
        assert!(!c.filters.sender_only());
        assert!(cfg(&["--sender-pid", "3"]).unwrap().filters.sender_only());
    }

    #[test]
    fn failed_and_result_narrow_the_events() {
        let c = cfg(&["--failed"]).unwrap();
        assert_eq!(c.filters.results, BTreeSet::from([1, 2, 3, 4]));
        assert_eq!(
            c.events,
            BTreeSet::from([EventKind::Generate, EventKind::SendFailed])
        );
        let c = cfg(&["--result", "ignored"]).unwrap();
        assert_eq!(c.filters.result_mask(), 0b10);
        assert_eq!(c.events, BTreeSet::from([EventKind::Generate]));
        let c = cfg(&["--result", "ignored", "--events", "generate,exit"]).unwrap();
        assert_eq!(
            c.events,
            BTreeSet::from([EventKind::Generate, EventKind::Exit])
        );
        assert!(cfg(&["--failed", "--result", "delivered"]).is_err());
    }

    #[test]
    fn bad_values_are_usage_errors() {
        for args in [
            &["--signal", "TERMINATE"][..],
            &["--signal", "0"],
            &["--signal", "65"],
            &["--pid", "abc"],
            &["--pid", "0"],
            &["--pid=-5"],
            &["--target-pid", "99999999999"],
            &["--result", "lost"],
            &["--events", "generate,bogus"],
            &["--duration", "0"],
            &["--duration=-1"],
            &["--duration", "soon"],
            &["--duration", "inf"],
            &["--count", "0"],
            &["--summary", "0"],
            &["--summary", "x"],
            &["--count", "1.5"],
            &["--ring-size", "3000"],
            &["--ring-size", "2G"],
            &["--ring-size", "1K"],
            &["--comm", "a-name-longer-than-15"],
            &["--comm", ""],
            &["--container", " "],
            &["--metrics-addr", "nowhere"],
            &["--metrics-addr", "70000"],
        ] {
            let err = cfg(args).expect_err(&format!("{args:?}"));
            let ConfigError::Invalid { flag, .. } = &err;
            assert!(args[0].starts_with(flag), "{args:?}: {err}");
            assert!(err.to_string().starts_with("invalid value"), "{err}");
        }
    }

    #[test]
    fn container_filters_and_metrics() {
        let c = cfg(&[
            "--pod",
            "web-0",
            "--namespace",
            "prod",
            "--side",
            "target",
            "--metrics-addr",
            "9464",
        ])
        .unwrap();
        assert_eq!(
            c.filters.containers,
            vec![
                Selector::Pod("web-0".into()),
                Selector::Namespace("prod".into())
            ]
        );
        assert_eq!(c.filters.container_side, Side::Target);
        assert_eq!(c.metrics, Some("127.0.0.1:9464".parse().unwrap()));
        assert_eq!(
            parse_metrics_addr("0.0.0.0:9464"),
            Some("0.0.0.0:9464".parse().unwrap())
        );
        assert_eq!(
            parse_metrics_addr("[::1]:80"),
            Some("[::1]:80".parse().unwrap())
        );
        assert_eq!(
            parse_metrics_addr(":8080"),
            Some("127.0.0.1:8080".parse().unwrap())
        );
    }

    #[test]
    fn sizes() {
        assert_eq!(parse_size("4M"), Some(4 << 20));
        assert_eq!(parse_size("64k"), Some(64 << 10));
        assert_eq!(parse_size("1G"), Some(1 << 30));
        assert_eq!(parse_size("8192"), Some(8192));
        assert_eq!(parse_size("5M"), None);
        assert_eq!(parse_size("M"), None);
        assert_eq!(parse_size(""), None);
    }
}
