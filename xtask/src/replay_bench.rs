//! `cargo xtask bench-replay`: how fast `signal-trace explain --from` replays a fleet's
//! recordings and how much memory it takes. Writes a synthetic recording of two nodes (same
//! pids on both) with N records in all (10 million by default), replays it with the release
//! binary `cargo xtask dist` builds, and prints records/s and peak RSS. No timed assertion:
//! the figures are for reading.

use std::fs::File;
use std::io::{BufWriter, Write as _};
use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};
use std::time::Instant;

use anyhow::{bail, Context as _};

#[derive(Debug, clap::Args)]
pub struct Args {
    /// Records in all (split between the two nodes).
    #[arg(long, default_value_t = 10_000_000)]
    pub records: u64,
    /// Use this binary instead of building the release one.
    #[arg(long)]
    pub bin: Option<PathBuf>,
}

/// RFC 3339 of `ns` nanoseconds after 2026-11-29T00:00:00Z (the recording spans minutes).
fn time(ns: u64) -> String {
    let s = ns / 1_000_000_000;
    format!(
        "2026-11-29T{:02}:{:02}:{:02}.{:09}Z",
        s / 3600,
        s / 60 % 60,
        s % 60,
        ns % 1_000_000_000
    )
}

/// One node's recording: a mix like a busy node's — handled signals (generate and deliver),
/// and every 50th process told to stop and dying of it (generate SIGTERM, exit 143), which the
/// engine turns into findings. Pids cycle through 20,000, so processes are reused.
fn write_node(path: &Path, host: &str, n: u64, offset_ns: u64) -> anyhow::Result<()> {
    let mut w = BufWriter::with_capacity(1 << 20, File::create(path)?);
    let boot = format!("{host}-boot");
    let mut i = 0u64;
    let mut story = 0u64;
    while i < n {
        let pid = 10_000 + story % 20_000;
        let t = offset_ns + i * 2_000;
        let die = story % 50 == 49;
        let (sig, signo) = if die {
            ("SIGTERM", 15)
        } else {
            ("SIGUSR1", 10)
        };
        let disp = if die { "default" } else { "handler" };
        let handler = if die { "default" } else { "0x55d0c0de1000" };
        writeln!(
            w,
            r#"{{"event":"generate","time":"{}","host":"{host}","boot_id":"{boot}","signal":"{sig}","signo":{signo},"code":"SI_USER","si_code":0,"errno":0,"group":true,"result":"delivered","sender":{{"pid":4242,"tid":4242,"comm":"supervisor","uid":0,"cgroup_id":1,"container":null}},"target":{{"pid":{pid},"tid":{pid},"comm":"worker","ns_pid":{pid},"cgroup_id":9431,"disposition":"{disp}","handler":"{handler}","blocked":false,"container":null}}}}"#,
            time(t)
        )?;
        i += 1;
        if i >= n {
            break;
        }
        let t = t + 1_000;
        if die {
            writeln!(
                w,
                r#"{{"event":"exit","time":"{}","host":"{host}","boot_id":"{boot}","pid":{pid},"comm":"worker","ns_pid":{pid},"cgroup_id":9431,"exit_code":143,"signal":"SIGTERM","signo":15,"core_dumped":false,"status":15,"killed_by":{{"pid":4242,"comm":"supervisor","signal":"SIGTERM","code":"SI_USER","time":"{}"}},"container":null}}"#,
                time(t),
                time(t - 1_000)
            )?;
        } else {
            writeln!(
                w,
                r#"{{"event":"deliver","time":"{}","host":"{host}","boot_id":"{boot}","signal":"SIGUSR1","signo":10,"code":"SI_USER","si_code":0,"pid":{pid},"tid":{pid},"comm":"worker","ns_pid":{pid},"cgroup_id":9431,"handler":"0x55d0c0de1000","sa_flags":67108864,"sender_pid":4242,"latency_ns":1000,"container":null}}"#,
                time(t)
            )?;
        }
        i += 1;
        story += 1;
    }
    w.flush()?;
    Ok(())
}

/// What one run took.
struct Run {
    wall: f64,
    /// User and system CPU seconds (on a shared machine, wall time includes waiting for a core).
    cpu: f64,
    peak_kib: u64,
    lines: u64,
}

/// Runs `bin args`, its stdout counted and dropped.
fn measure(bin: &Path, args: &[String]) -> anyhow::Result<Run> {
    let start = Instant::now();
    let mut child = Command::new(bin)
        .args(args)
        .stdout(Stdio::piped())
        .stderr(Stdio::inherit())
        .spawn()
        .with_context(|| format!("cannot run {}", bin.display()))?;
    let mut out = child.stdout.take().expect("stdout");
    let mut lines = 0u64;
    let mut buf = vec![0u8; 1 << 16];
    loop {
        let n = std::io::Read::read(&mut out, &mut buf)?;
        if n == 0 {
            break;
        }
        lines += buf[..n].iter().filter(|&&b| b == b'\n').count() as u64;
    }
    let mut status = 0;
    // SAFETY: rusage is plain data that wait4 fills for our own child.
    let mut usage: libc::rusage = unsafe { std::mem::zeroed() };
    let pid = child.id() as libc::pid_t;
    // SAFETY: waits for our child and fills `usage`.
    let rc = unsafe { libc::wait4(pid, &mut status, 0, &mut usage) };
    let secs = start.elapsed().as_secs_f64();
    if rc != pid {
        bail!("wait4: {}", std::io::Error::last_os_error());
    }
    if !libc::WIFEXITED(status) || libc::WEXITSTATUS(status) != 0 {
        bail!("{} {:?} failed: status {status:#x}", bin.display(), args);
    }
    let tv = |t: libc::timeval| t.tv_sec as f64 + t.tv_usec as f64 / 1e6;
    Ok(Run {
        wall: secs,
        cpu: tv(usage.ru_utime) + tv(usage.ru_stime),
        peak_kib: usage.ru_maxrss as u64,
        lines,
    })
}

pub fn run(root: &Path, args: &Args) -> anyhow::Result<()> {
    let bin = match &args.bin {
        Some(b) => b.clone(),
        None => crate::dist::build_binary(root)?,
    };
    let dir = root.join("target/bench-replay");
    std::fs::create_dir_all(&dir)?;
    let half = args.records / 2;
    let nodes = [
        (dir.join(format!("node-a-{half}.ndjson")), "node-a", half, 0),
        (
            dir.join(format!("node-b-{}.ndjson", args.records - half)),
            "node-b",
            args.records - half,
            1_000,
        ),
    ];
    let started = Instant::now();
    let mut bytes = 0;
    for (path, host, n, offset) in &nodes {
        if !path.exists() {
            let tmp = path.with_extension("tmp");
            write_node(&tmp, host, *n, *offset)?;
            std::fs::rename(&tmp, path)?;
        }
        bytes += std::fs::metadata(path)?.len();
    }
    eprintln!(
        "bench-replay: {} records, {:.1} GiB in {} (ready in {:.0} s)",
        args.records,
        bytes as f64 / (1u64 << 30) as f64,
        dir.display(),
        started.elapsed().as_secs_f64()
    );
    let mut replay = vec!["explain".to_string(), "--format".into(), "json".into()];
    for (path, ..) in &nodes {
        replay.push("--from".into());
        replay.push(path.display().to_string());
    }
    let r = measure(&bin, &replay)?;
    println!(
        "replay of {} records from 2 nodes: {:.1} s wall, {:.0} records/s ({:.0} MB/s); \
         {:.1} s CPU, {:.0} records per CPU second; peak RSS {:.1} MiB; {} findings",
        args.records,
        r.wall,
        args.records as f64 / r.wall,
        bytes as f64 / r.wall / 1e6,
        r.cpu,
        args.records as f64 / r.cpu,
        r.peak_kib as f64 / 1024.0,
        r.lines
    );
    Ok(())
}
