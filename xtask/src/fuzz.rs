//! `cargo xtask fuzz`: runs every cargo-fuzz target of signal-trace/fuzz for a bounded time.
//!
//! Installs cargo-fuzz when it is missing, builds the targets once (nightly, AddressSanitizer,
//! debug assertions), then fuzzes each one for `--seconds` from the kept corpus in
//! `signal-trace/fuzz/corpus/<target>`. New inputs go to a scratch corpus under the fuzz
//! crate's target directory, so a run leaves the kept corpus as it is. Any crash, failed
//! property or hang fails the task and names the input that caused it.

use std::fs;
use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};
use std::time::{Duration, Instant, SystemTime};

use anyhow::{bail, Context as _};

/// Arguments of `cargo xtask fuzz`.
#[derive(Debug, Clone, clap::Args)]
pub struct Args {
    /// How long to fuzz each target, in seconds.
    #[arg(long, value_name = "N", default_value_t = 20)]
    pub seconds: u64,
    /// Only these targets (default: every target).
    #[arg(value_name = "TARGET")]
    pub targets: Vec<String>,
}

impl Default for Args {
    fn default() -> Args {
        Args {
            seconds: 20,
            targets: Vec::new(),
        }
    }
}

/// A single input slower than this is reported as a hang.
const INPUT_TIMEOUT_SECS: u64 = 10;

struct Fuzz {
    root: PathBuf,
    dir: PathBuf,
    path: String,
}

impl Fuzz {
    fn new(root: &Path) -> Fuzz {
        let home = std::env::var("HOME").unwrap_or_else(|_| "/root".into());
        let path = std::env::var("PATH").unwrap_or_default();
        Fuzz {
            root: root.to_path_buf(),
            dir: root.join("signal-trace/fuzz"),
            path: format!("{home}/.cargo/bin:{path}"),
        }
    }

    fn command(&self, program: &str) -> Command {
        let mut cmd = Command::new(program);
        cmd.current_dir(&self.root)
            .env("PATH", &self.path)
            // The kernel programs are not needed to fuzz the userspace decoders and parsers.
            .env("AYA_BUILD_SKIP", "1");
        cmd
    }

    /// `cargo +nightly fuzz SUBCOMMAND --fuzz-dir signal-trace/fuzz`.
    fn cargo_fuzz(&self, subcommand: &str) -> Command {
        let mut cmd = self.command("cargo");
        cmd.args(["+nightly", "fuzz", subcommand, "--fuzz-dir"])
            .arg(&self.dir);
        cmd
    }

    fn run(&self, cmd: &mut Command) -> anyhow::Result<()> {
        super::status_ok(cmd)
    }

    fn succeeds(&self, cmd: &mut Command) -> bool {
        cmd.stdout(Stdio::null())
            .stderr(Stdio::null())
            .status()
            .is_ok_and(|s| s.success())
    }

    fn ensure_tools(&self) -> anyhow::Result<()> {
        let has_nightly = self
            .command("rustup")
            .args(["toolchain", "list"])
            .output()
            .is_ok_and(|o| {
                String::from_utf8_lossy(&o.stdout)
                    .lines()
                    .any(|l| l.starts_with("nightly"))
            });
        if !has_nightly {
            eprintln!("xtask: installing the nightly toolchain (cargo-fuzz needs it)");
            self.run(self.command("rustup").args([
                "toolchain",
                "install",
                "nightly",
                "--profile",
                "minimal",
            ]))?;
        }
        if !self.succeeds(self.command("cargo").args(["fuzz", "--version"])) {
            eprintln!("xtask: installing cargo-fuzz");
            self.run(
                self.command("cargo")
                    .args(["install", "cargo-fuzz", "--locked"]),
            )?;
        }
        Ok(())
    }

    fn targets(&self) -> anyhow::Result<Vec<String>> {
        let out = self
            .cargo_fuzz("list")
            .stderr(Stdio::inherit())
            .output()
            .context("cannot run cargo fuzz list")?;
        if !out.status.success() {
            bail!("cargo fuzz list failed: {}", out.status);
        }
        let targets: Vec<String> = String::from_utf8_lossy(&out.stdout)
            .lines()
            .map(str::trim)
            .filter(|l| !l.is_empty())
            .map(str::to_owned)
            .collect();
        if targets.is_empty() {
            bail!("no fuzz targets in {}", self.dir.display());
        }
        Ok(targets)
    }

    /// Artifacts (crashing, failing or hanging inputs) written for `target` since `since`.
    fn new_artifacts(&self, target: &str, since: SystemTime) -> Vec<PathBuf> {
        let Ok(entries) = fs::read_dir(self.dir.join("artifacts").join(target)) else {
            return Vec::new();
        };
        let mut found: Vec<PathBuf> = entries
            .flatten()
            .filter(|e| {
                e.metadata()
                    .and_then(|m| m.modified())
                    .is_ok_and(|t| t >= since)
            })
            .map(|e| e.path())
            .collect();
        found.sort();
        found
    }

    /// Fuzzes one target; returns its executions per second.
    fn fuzz(&self, target: &str, seconds: u64) -> anyhow::Result<f64> {
        let kept = self.dir.join("corpus").join(target);
        let scratch = self.dir.join("target/corpus").join(target);
        let logs = self.dir.join("target/logs");
        fs::create_dir_all(&kept)?;
        fs::create_dir_all(&scratch)?;
        fs::create_dir_all(&logs)?;
        let log_path = logs.join(format!("{target}.log"));
        let log = fs::File::create(&log_path)
            .with_context(|| format!("cannot create {}", log_path.display()))?;

        let started = SystemTime::now();
        let mut cmd = self.cargo_fuzz("run");
        cmd.arg(target)
            .arg(&scratch)
            .arg(&kept)
            .arg("--")
            .arg(format!("-max_total_time={seconds}"))
            .arg(format!("-timeout={INPUT_TIMEOUT_SECS}"))
            .arg("-print_final_stats=1")
            .stdout(log.try_clone()?)
            .stderr(log);
        let status = cmd
            .status()
            .with_context(|| format!("cannot run cargo fuzz run {target}"))?;
        let text = fs::read_to_string(&log_path).unwrap_or_default();
        if !status.success() {
            eprintln!("{}", failure_report(&text));
            let artifacts = self.new_artifacts(target, started);
            let shown = if artifacts.is_empty() {
                format!("no artifact written; full log in {}", log_path.display())
            } else {
                artifacts
                    .iter()
                    .map(|a| {
                        format!(
                            "{} (reproduce: AYA_BUILD_SKIP=1 cargo +nightly fuzz run --fuzz-dir {} {target} {})",
                            a.display(),
                            self.dir.display(),
                            a.display()
                        )
                    })
                    .collect::<Vec<_>>()
                    .join("; ")
            };
            bail!("fuzz target {target} failed ({status}): {shown}");
        }
        Ok(execs_per_second(&text))
    }
}

/// The part of a failed run's log that explains it: from the panic or sanitizer report on (at
/// most 200 lines), or the last 60 lines when there is none.
fn failure_report(log: &str) -> String {
    const MARKS: [&str; 3] = ["panicked at", "ERROR: libFuzzer", "ERROR: AddressSanitizer"];
    let lines: Vec<&str> = log.lines().collect();
    let start = lines
        .iter()
        .position(|l| MARKS.iter().any(|m| l.contains(m)))
        .unwrap_or(lines.len().saturating_sub(60));
    lines[start..lines.len().min(start + 200)].join("\n")
}

/// Executions per second from libFuzzer's final statistics (0 when it printed none).
fn execs_per_second(log: &str) -> f64 {
    log.lines()
        .filter_map(|l| l.strip_prefix("stat::average_exec_per_sec:"))
        .filter_map(|v| v.trim().parse::<f64>().ok())
        .next_back()
        .unwrap_or(0.0)
}

fn secs(d: Duration) -> String {
    format!("{:.1}s", d.as_secs_f64())
}

/// Runs the fuzz targets (all, or those named) for `args.seconds` each.
pub fn run(root: &Path, args: &Args) -> anyhow::Result<()> {
    if args.seconds == 0 {
        bail!("--seconds must be at least 1");
    }
    let total = Instant::now();
    let fuzz = Fuzz::new(root);
    fuzz.ensure_tools()?;
    fuzz.run(
        fuzz.command("cargo")
            .args(["fmt", "--check", "--manifest-path"])
            .arg(fuzz.dir.join("Cargo.toml")),
    )?;

    let all = fuzz.targets()?;
    let targets = if args.targets.is_empty() {
        all
    } else {
        for t in &args.targets {
            if !all.contains(t) {
                bail!("no fuzz target {t}; targets: {}", all.join(", "));
            }
        }
        args.targets.clone()
    };

    let build = Instant::now();
    fuzz.run(&mut fuzz.cargo_fuzz("build"))?;
    let build = build.elapsed();

    let mut rates = Vec::new();
    for t in &targets {
        eprintln!("xtask: fuzzing {t} for {}s", args.seconds);
        let rate = fuzz.fuzz(t, args.seconds)?;
        rates.push((t, rate));
    }
    eprintln!("xtask: fuzz build {}", secs(build));
    for (t, rate) in rates {
        eprintln!("xtask: fuzz {t}: {rate:.0} executions/s, no failure");
    }
    eprintln!("xtask: fuzz total {}", secs(total.elapsed()));
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn final_stats_are_read() {
        let log = "#1000\tDONE   cov: 10 ft: 20\n\
                   stat::number_of_executed_units: 134059\n\
                   stat::average_exec_per_sec:     6383\n\
                   stat::new_units_added:          42\n";
        assert_eq!(execs_per_second(log), 6383.0);
        assert_eq!(execs_per_second("no stats"), 0.0);
    }

    #[test]
    fn failure_report_starts_at_the_panic() {
        let log = "INFO: seed\n#2 INITED\nthread '<unnamed>' panicked at t.rs:1:1:\nboom\n\
                   ==1== ERROR: libFuzzer: deadly signal\n";
        assert!(failure_report(log).starts_with("thread '<unnamed>' panicked"));
        assert_eq!(failure_report("a\nb"), "a\nb");
    }
}
