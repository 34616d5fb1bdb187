//! The tracer configurations the benchmark compares (untraced, signal-trace's variants, strace,
//! bpftrace, perf trace): their names, their command lines as reported, and which can run here.

use std::process::{Command, Stdio};

use serde::Serialize;

use super::measure::prog_stats;
use super::Bench;

/// Events named explicitly, so that the report says what was traced whatever the tracer's
/// default set is: every event but `send_failed` (whose watcher, a raw `sys_exit` tracepoint,
/// puts every syscall of the host on the syscall-tracing slow path), and every event with it.
const NO_SEND_FAILED: &str = "generate,deliver,exit,oom";
const WITH_SEND_FAILED: &str = "generate,deliver,exit,send_failed,oom";

/// What traces the workload.
#[derive(Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Debug, Serialize)]
#[serde(rename_all = "kebab-case")]
pub(super) enum Tool {
    Untraced,
    /// signal-trace's default configuration (no `--events`): whatever events it traces by
    /// default; the report lists the kernel programs it attached.
    StJsonDevnull,
    /// `--events generate,deliver,exit,oom`: no refused-send watcher.
    StNoSendFailed,
    /// `--events generate,deliver,exit,send_failed,oom`: with the refused-send watcher.
    StWithSendFailed,
    /// The default with `--no-process-identity`: without the exec and fork programs and the
    /// senders' programs, arguments and ancestors' names (what the process identities cost).
    StNoIdentity,
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
            Tool::StNoSendFailed => "st-json-no-send-failed",
            Tool::StWithSendFailed => "st-json-with-send-failed",
            Tool::StNoIdentity => "st-json-no-identity",
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
            Tool::StJsonDevnull => "`signal-trace --format json --output /dev/null` (default events)",
            Tool::StNoSendFailed => {
                "`signal-trace --format json --output /dev/null --events generate,deliver,exit,oom` (all but send_failed)"
            }
            Tool::StWithSendFailed => {
                "`signal-trace --format json --output /dev/null --events generate,deliver,exit,send_failed,oom` (all, with send_failed)"
            }
            Tool::StNoIdentity => {
                "`signal-trace --format json --output /dev/null --no-process-identity` (default events, no process identities)"
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
                | Tool::StNoSendFailed
                | Tool::StWithSendFailed
                | Tool::StNoIdentity
                | Tool::StJsonStdout
                | Tool::StTextFile
                | Tool::StFilterReject
        )
    }
}

impl Tool {
    /// signal-trace's arguments after `--format` for the configurations that write to
    /// `--output /dev/null` or to stdout; None for the others.
    pub(super) fn st_args(self) -> Option<&'static [&'static str]> {
        Some(match self {
            Tool::StJsonDevnull => &["json", "--output", "/dev/null"],
            Tool::StNoSendFailed => &["json", "--output", "/dev/null", "--events", NO_SEND_FAILED],
            Tool::StWithSendFailed => &[
                "json",
                "--output",
                "/dev/null",
                "--events",
                WITH_SEND_FAILED,
            ],
            Tool::StNoIdentity => &["json", "--output", "/dev/null", "--no-process-identity"],
            Tool::StJsonStdout => &["json"],
            Tool::StFilterReject => &[
                "json",
                "--output",
                "/dev/null",
                "--target-pid",
                "1",
                "--signal",
                "KILL",
            ],
            _ => return None,
        })
    }
}

impl Bench {
    /// The names of the BPF programs signal-trace's default configuration attaches on this
    /// machine (the kernel truncates them to 15 characters), so that the report says whether
    /// the default includes the refused-send watcher (`sys_exit`) whatever the build.
    pub(super) fn default_programs(&self) -> anyhow::Result<Vec<String>> {
        let mut t = self.start(Tool::StJsonDevnull)?;
        let progs = prog_stats(t.child.id());
        t.stop()?;
        let mut names: Vec<String> = progs?.into_values().map(|(name, _, _)| name).collect();
        names.sort();
        names.dedup();
        Ok(names)
    }

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
