//! The tracer configurations the benchmark compares (untraced, signal-trace's variants, strace,
//! bpftrace, perf trace): their names, their command lines as reported, and which can run here.

use std::process::{Command, Stdio};

use serde::Serialize;

use super::Bench;

/// What traces the workload.
#[derive(Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Debug, Serialize)]
#[serde(rename_all = "kebab-case")]
pub(super) enum Tool {
    Untraced,
    StJsonDevnull,
    StSignalsOnly,
    StJsonStdout,
    StTextFile,
    StFilterReject,
    Strace,
    Bpftrace,
    PerfTrace,
}

impl Tool {
    pub(super) fn key(self) -> &'static str {
        match self {
            Tool::Untraced => "untraced",
            Tool::StJsonDevnull => "st-json-devnull",
            Tool::StSignalsOnly => "st-json-signals-only",
            Tool::StJsonStdout => "st-json-stdout",
            Tool::StTextFile => "st-text-file",
            Tool::StFilterReject => "st-filter-reject",
            Tool::Strace => "strace",
            Tool::Bpftrace => "bpftrace",
            Tool::PerfTrace => "perf-trace",
        }
    }

    pub(super) fn command(self) -> &'static str {
        match self {
            Tool::Untraced => "(no tracer)",
            Tool::StJsonDevnull => "`signal-trace --format json --output /dev/null`",
            Tool::StSignalsOnly => {
                "`signal-trace --format json --output /dev/null --events generate,deliver`"
            }
            Tool::StJsonStdout => "`signal-trace --format json > /dev/null`",
            Tool::StTextFile => "`signal-trace --format text --output FILE`",
            Tool::StFilterReject => {
                "`signal-trace --format json --output /dev/null --target-pid 1 --signal KILL`"
            }
            Tool::Strace => "`strace -f -e trace=signal -o FILE WORKLOAD`",
            Tool::Bpftrace => "`bpftrace -o FILE bench/signals.bt`",
            Tool::PerfTrace => "`perf trace -a -e 'signal:*' -o FILE`",
        }
    }

    pub(super) fn is_signal_trace(self) -> bool {
        matches!(
            self,
            Tool::StJsonDevnull
                | Tool::StSignalsOnly
                | Tool::StJsonStdout
                | Tool::StTextFile
                | Tool::StFilterReject
        )
    }
}

impl Bench {
    /// Records the tools that cannot run here, with the reason, instead of failing.
    pub(super) fn probe_tools(&mut self) {
        let probes: [(Tool, Vec<&str>); 3] = [
            (
                Tool::Strace,
                vec![
                    "strace",
                    "-f",
                    "-e",
                    "trace=signal",
                    "-o",
                    "/dev/null",
                    "true",
                ],
            ),
            (Tool::Bpftrace, vec!["bpftrace", "-e", "BEGIN { exit(); }"]),
            (
                Tool::PerfTrace,
                vec![
                    "perf",
                    "trace",
                    "-a",
                    "-e",
                    "signal:*",
                    "-o",
                    "/dev/null",
                    "--",
                    "true",
                ],
            ),
        ];
        for (tool, argv) in probes {
            let out = Command::new(argv[0])
                .args(&argv[1..])
                .stdin(Stdio::null())
                .output();
            let reason = match out {
                Err(e) => Some(format!("cannot run {}: {e}", argv[0])),
                Ok(o) if !o.status.success() => {
                    let err = String::from_utf8_lossy(&o.stderr);
                    let line = err
                        .lines()
                        .map(str::trim)
                        .find(|l| !l.is_empty() && !l.contains("RLIMIT_MEMLOCK"))
                        .unwrap_or("no message")
                        .to_string();
                    Some(format!(
                        "{} exited with {}: {line}",
                        argv[..2].join(" "),
                        o.status
                    ))
                }
                Ok(_) => None,
            };
            if let Some(r) = reason {
                eprintln!("bench: {} unavailable: {r}", tool.key());
                self.unavailable.insert(tool, r);
            }
        }
    }
}
