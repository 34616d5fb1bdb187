//! Project tasks: `cargo xtask setup|run|test|bench|bench-replay|dist|vm-test|fuzz`.
//!
//! Each task first installs what is missing (scripts/setup.sh: nightly rust-src, LLVM 22,
//! bpf-linker; with the tests, the tools they drive), idempotently and quickly when all is there.

use std::path::{Path, PathBuf};
use std::process::{Command, ExitCode};

use anyhow::{bail, Context as _};
use clap::{Parser, Subcommand};

mod bench;
mod dist;
mod fuzz;
mod replay_bench;
mod vm;

#[derive(Parser)]
#[command(name = "xtask", about = "signal-trace project tasks")]
struct Cli {
    #[command(subcommand)]
    task: Task,
}

#[derive(Subcommand)]
enum Task {
    /// Install the build toolchain pieces that are missing (add --test for the test tools).
    Setup {
        #[arg(long)]
        test: bool,
    },
    /// Build signal-trace (release) and run it with ARGS, as root.
    Run {
        #[arg(trailing_var_arg = true, allow_hyphen_values = true)]
        args: Vec<String>,
    },
    /// Fuzz the decoders and parsers (signal-trace/fuzz) for a bounded time; fails on any crash.
    Fuzz(fuzz::Args),
    /// Benchmark signal-trace against strace, bpftrace and perf trace (root); writes
    /// BENCHMARKS.md and bench/results.json.
    Bench(bench::BenchArgs),
    /// Packages in target/dist/: a static binary tarball and a .deb (binary, systemd unit, man
    /// pages, completions); --install-check installs, runs and removes the .deb (root).
    Dist(dist::Args),
    /// Replay speed and peak memory of `explain --from` on a 10-million-record recording.
    BenchReplay(replay_bench::Args),
    /// The live checks on Debian's 6.1 and 6.12 kernels (QEMU) and natively on the host (root).
    VmTest {
        /// Only these kernels of the matrix: 6.1, 6.12, host (repeatable).
        #[arg(long = "kernel")]
        kernels: Vec<String>,
        /// Only these checks (repeatable).
        #[arg(long = "check")]
        checks: Vec<String>,
    },
    /// Runs the live checks against TRACER on the running kernel (inside a vm-test guest).
    #[command(hide = true)]
    VmGuest {
        #[arg(long)]
        tracer: PathBuf,
        #[arg(long = "check")]
        checks: Vec<String>,
    },
    /// Everything CI checks: formatting, lints, unit tests, live tests (root), the kernel matrix.
    Test {
        /// Extra arguments for `cargo test`, e.g. a test name filter.
        #[arg(trailing_var_arg = true, allow_hyphen_values = true)]
        args: Vec<String>,
    },
}

fn root() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR"))
        .parent()
        .expect("workspace root")
        .to_path_buf()
}

fn cargo_bin_path() -> String {
    let home = std::env::var("HOME").unwrap_or_else(|_| "/root".into());
    let path = std::env::var("PATH").unwrap_or_default();
    format!("{home}/.cargo/bin:{path}")
}

fn sh(cmd: &mut Command) -> anyhow::Result<()> {
    cmd.current_dir(root()).env("PATH", cargo_bin_path());
    status_ok(cmd)
}

/// Runs a command and fails, naming it, unless it succeeds.
fn status_ok(cmd: &mut Command) -> anyhow::Result<()> {
    let shown = format!("{cmd:?}");
    let status = cmd
        .status()
        .with_context(|| format!("cannot run {shown}"))?;
    if !status.success() {
        bail!("{shown} failed: {status}");
    }
    Ok(())
}

fn setup(test: bool) -> anyhow::Result<()> {
    let mut cmd = Command::new("bash");
    cmd.arg(root().join("scripts/setup.sh"));
    if test {
        cmd.arg("--test");
    }
    sh(&mut cmd)
}

fn is_root() -> bool {
    std::fs::read_to_string("/proc/self/status")
        .ok()
        .and_then(|s| {
            s.lines()
                .find_map(|l| l.strip_prefix("Uid:"))
                .and_then(|v| v.split_whitespace().nth(1).map(|e| e == "0"))
        })
        .unwrap_or(false)
}

fn run(args: &[String]) -> anyhow::Result<()> {
    setup(false)?;
    sh(Command::new("cargo").args(["build", "--release", "--package", "signal-trace"]))?;
    let bin = root().join("target/release/signal-trace");
    let mut cmd = if is_root() {
        Command::new(&bin)
    } else {
        let mut c = Command::new("sudo");
        c.arg(&bin);
        c
    };
    let status = cmd
        .args(args)
        .status()
        .context("cannot start signal-trace")?;
    std::process::exit(status.code().unwrap_or(1));
}

fn test(args: &[String]) -> anyhow::Result<()> {
    if !is_root() {
        bail!("the tests load BPF programs into the kernel: run `cargo xtask test` as root");
    }
    setup(true)?;
    sh(Command::new("cargo").args(["fmt", "--all", "--check"]))?;
    sh(Command::new("cargo").args(["clippy", "--all-targets", "--", "-D", "warnings"]))?;
    // tests/runtime_hung.rs sends 60,000 signals a second, more than a debug build formats.
    sh(Command::new("cargo").args(["build", "--release", "-p", "signal-trace"]))?;
    // The live tests start several tracers at once; two threads keep a 2-core machine responsive.
    sh(Command::new("cargo")
        .args(["test", "--workspace", "--exclude", "signal-trace-ebpf"])
        .args(args)
        .args(["--", "--test-threads", "2"]))?;
    if args.is_empty() {
        // The packages: built, installed with dpkg, run (a live trace), removed.
        dist::run(
            &root(),
            &dist::Args {
                install_check: true,
            },
        )?;
        // setup --test above covered what the kernel matrix needs.
        vm::vm_test(&root(), &vm::Options::default())?;
        fuzz::run(&root(), &fuzz::Args::default())?;
    }
    Ok(())
}

fn vm_test(opts: &vm::Options) -> anyhow::Result<()> {
    if !is_root() {
        bail!(
            "the kernel matrix loads BPF programs on the host: run `cargo xtask vm-test` as root"
        );
    }
    setup(false)?;
    vm::vm_test(&root(), opts)
}

fn main() -> ExitCode {
    let cli = Cli::parse();
    let result = match cli.task {
        Task::Setup { test } => setup(test),
        Task::Run { args } => run(&args),
        Task::Test { args } => test(&args),
        Task::Bench(args) => bench::run(&args),
        Task::Fuzz(args) => fuzz::run(&root(), &args),
        Task::Dist(args) => dist::run(&root(), &args),
        Task::BenchReplay(args) => replay_bench::run(&root(), &args),
        Task::VmTest { kernels, checks } => vm_test(&vm::Options { kernels, checks }),
        Task::VmGuest { tracer, checks } => vm::guest::run(&tracer, &checks),
    };
    match result {
        Ok(()) => ExitCode::SUCCESS,
        Err(e) => {
            eprintln!("xtask: {e:#}");
            ExitCode::FAILURE
        }
    }
}
