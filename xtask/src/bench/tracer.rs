//! A running system-wide tracer: starting one configuration, waiting until it is attached,
//! stopping it, and reading the events it saw and lost from its own account.

use std::fs;
use std::path::{Path, PathBuf};
use std::process::{Child, Stdio};
use std::sync::Mutex;
use std::thread;
use std::time::{Duration, Instant};

use anyhow::{bail, Context as _};

use super::configs::Tool;
use super::measure::{fd_count, last_lines, scan_lines};
use super::Bench;

/// A running system-wide tracer.
pub(super) struct Tracer {
    pub(super) tool: Tool,
    pub(super) child: Child,
    pub(super) out: PathBuf,
    pub(super) err: PathBuf,
    pub(super) done: bool,
}

impl Tracer {
    pub(super) fn stderr(&self) -> String {
        fs::read_to_string(&self.err).unwrap_or_default()
    }

    pub(super) fn wait_ready(&mut self, cpus: usize) -> anyhow::Result<()> {
        let deadline = Instant::now() + Duration::from_secs(60);
        let pid = self.child.id();
        loop {
            if let Some(status) = self
                .child
                .try_wait()
                .context("cannot wait for the tracer")?
            {
                self.done = true;
                bail!(
                    "{} exited before tracing ({status}): {}",
                    self.tool.key(),
                    last_lines(&self.stderr(), 3)
                );
            }
            let ready = match self.tool {
                Tool::Bpftrace => {
                    fs::read_to_string(&self.out).is_ok_and(|o| o.contains("Attaching"))
                        && fd_count(pid, "anon_inode:bpf-prog") >= 2
                        && fd_count(pid, "anon_inode:[perf_event]") >= 2
                }
                // Two tracepoints opened on every CPU.
                Tool::PerfTrace => fd_count(pid, "anon_inode:[perf_event]") >= 2 * cpus,
                _ => self.stderr().contains("signal-trace: tracing"),
            };
            if ready {
                break;
            }
            if Instant::now() > deadline {
                self.kill();
                bail!("{} did not start tracing within 60 s", self.tool.key());
            }
            thread::sleep(Duration::from_millis(20));
        }
        // bpftrace and perf announce nothing once attached: give them time to finish.
        let settle = if self.tool.is_signal_trace() {
            200
        } else {
            700
        };
        thread::sleep(Duration::from_millis(settle));
        Ok(())
    }

    /// SIGINT, then waits (SIGKILL after 120 s); returns its stderr.
    pub(super) fn stop(&mut self) -> anyhow::Result<String> {
        if self.done {
            return Ok(self.stderr());
        }
        let pid = self.child.id() as libc::pid_t;
        // SAFETY: the pid is our own unreaped child.
        unsafe { libc::kill(pid, libc::SIGINT) };
        let deadline = Instant::now() + Duration::from_secs(120);
        loop {
            if let Some(status) = self
                .child
                .try_wait()
                .context("cannot wait for the tracer")?
            {
                self.done = true;
                let err = self.stderr();
                // bpftrace and perf exit non-zero on SIGINT on some versions; judge by output.
                if !status.success() && self.tool.is_signal_trace() {
                    bail!(
                        "{} exited with {status}: {}",
                        self.tool.key(),
                        last_lines(&err, 3)
                    );
                }
                return Ok(err);
            }
            if Instant::now() > deadline {
                self.kill();
                bail!("{} did not stop within 120 s of SIGINT", self.tool.key());
            }
            thread::sleep(Duration::from_millis(20));
        }
    }

    pub(super) fn kill(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
        self.done = true;
    }

    /// Events seen and lost as the tool reports them; removes its output file.
    pub(super) fn counts(&self, stderr: &str) -> anyhow::Result<(Option<u64>, Option<u64>)> {
        let r = match self.tool {
            Tool::StTextFile => {
                let (_, lost) = signal_trace_totals(stderr)?;
                let lines = scan_lines(&self.out, |_| 1)?;
                (Some(lines), Some(lost))
            }
            Tool::Bpftrace => {
                let lost = Mutex::new(lost_in(stderr, "Lost ", " events"));
                let seen = scan_lines(&self.out, |l| {
                    if let Some(n) = number_between(l, "Lost ", " events") {
                        *lost.lock().expect("lost lock") += n;
                        0
                    } else {
                        (l.starts_with("generate ") || l.starts_with("deliver ")) as u64
                    }
                })?;
                (Some(seen), Some(lost.into_inner().expect("lost lock")))
            }
            Tool::PerfTrace => {
                let lost = Mutex::new(lost_in(stderr, "LOST ", " events"));
                let seen = scan_lines(&self.out, |l| {
                    if let Some(n) = number_between(l, "LOST ", " events") {
                        *lost.lock().expect("lost lock") += n;
                        0
                    } else {
                        l.contains("signal:signal_") as u64
                    }
                })?;
                (Some(seen), Some(lost.into_inner().expect("lost lock")))
            }
            _ => {
                let (events, lost) = signal_trace_totals(stderr)?;
                (Some(events), Some(lost))
            }
        };
        let _ = fs::remove_file(&self.out);
        Ok(r)
    }
}

impl Drop for Tracer {
    fn drop(&mut self) {
        if !self.done {
            self.kill();
        }
    }
}

impl Bench {
    pub(super) fn out_file(&self, tool: Tool) -> PathBuf {
        self.tmp.join(format!("{}.out", tool.key()))
    }

    /// Starts a system-wide tracer and waits until it is attached.
    pub(super) fn start(&self, tool: Tool) -> anyhow::Result<Tracer> {
        let out = self.out_file(tool);
        let err = self.tmp.join(format!("{}.err", tool.key()));
        let _ = fs::remove_file(&out);
        let mut stdout = Stdio::null();
        let mut cmd = match tool {
            Tool::Bpftrace => {
                let mut c = self.pinned(self.tracer_cpu(), Path::new("bpftrace"));
                c.arg("-o").arg(&out).arg(&self.script);
                c
            }
            Tool::PerfTrace => {
                let mut c = self.pinned(self.tracer_cpu(), Path::new("perf"));
                c.args(["trace", "-a", "-e", "signal:*", "-o"]).arg(&out);
                c
            }
            _ => {
                let mut c = self.pinned(self.tracer_cpu(), &self.st);
                c.args(["--format"]);
                if tool == Tool::StJsonStdout {
                    stdout = Stdio::from(
                        fs::OpenOptions::new()
                            .write(true)
                            .open("/dev/null")
                            .context("cannot open /dev/null")?,
                    );
                }
                match (tool, tool.st_args()) {
                    (_, Some(args)) => c.args(args),
                    (Tool::StTextFile, None) => {
                        c.args(["text", "--color", "never", "--output"]).arg(&out)
                    }
                    (other, None) => bail!("{} is not a system-wide tracer", other.key()),
                };
                c
            }
        };
        let errf =
            fs::File::create(&err).with_context(|| format!("cannot create {}", err.display()))?;
        let child = cmd
            .stdin(Stdio::null())
            .stdout(stdout)
            .stderr(errf)
            .spawn()
            .with_context(|| format!("cannot start {}", tool.key()))?;
        let mut t = Tracer {
            tool,
            child,
            out,
            err,
            done: false,
        };
        t.wait_ready(self.cpus)?;
        Ok(t)
    }
}

/// "N events, M lost", printed by signal-trace at exit.
pub(super) fn signal_trace_totals(stderr: &str) -> anyhow::Result<(u64, u64)> {
    stderr
        .lines()
        .rev()
        .find_map(|l| {
            let (e, rest) = l.trim().split_once(" events, ")?;
            let lost = rest.strip_suffix(" lost")?;
            Some((e.parse().ok()?, lost.parse().ok()?))
        })
        .with_context(|| {
            format!(
                "no \"N events, M lost\" line from signal-trace: {}",
                last_lines(stderr, 3)
            )
        })
}

pub(super) fn number_between(line: &str, before: &str, after: &str) -> Option<u64> {
    let i = line.find(before)? + before.len();
    let rest = &line[i..];
    let j = rest.find(after)?;
    rest[..j].trim().parse().ok()
}

pub(super) fn lost_in(text: &str, before: &str, after: &str) -> u64 {
    text.lines()
        .filter_map(|l| number_between(l, before, after))
        .sum()
}
