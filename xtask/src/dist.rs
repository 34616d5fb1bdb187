//! `cargo xtask dist`: the packages a node installs, in target/dist/.
//!
//! - `signal-trace-VERSION-x86_64-linux.tar.gz`: a statically linked binary (glibc,
//!   `-C target-feature=+crt-static`: it runs on any x86-64 Linux, no musl toolchain needed),
//!   the systemd unit, man pages and completions.
//! - `signal-trace_VERSION_amd64.deb`: /usr/bin/signal-trace, /lib/systemd/system/
//!   signal-trace.service, man pages, bash/zsh/fish completions. Built with `dpkg-deb` from a
//!   staged tree: the same static binary as the tarball (cargo-deb would build its own) and
//!   nothing to install beyond dpkg.
//!
//! `--install-check` (root) then installs the .deb with `dpkg -i`, verifies the installed unit,
//! traces one signal with the installed /usr/bin/signal-trace, and removes it with `dpkg -r`;
//! and runs the unit under real systemd in a booted Debian container (systemd-nspawn).

use std::io::{BufRead as _, BufReader, Read as _};
use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};
use std::time::{Duration, Instant};

use anyhow::{bail, Context as _};

use crate::{sh, status_ok};

pub const TARGET: &str = "x86_64-unknown-linux-gnu";
const VERSION: &str = env!("CARGO_PKG_VERSION");

#[derive(Debug, Default, clap::Args)]
pub struct Args {
    /// Then install the .deb, trace one signal with the installed binary and remove it (root).
    #[arg(long)]
    pub install_check: bool,
}

/// Builds the release binary, statically linked, and returns its path.
pub fn build_binary(root: &Path) -> anyhow::Result<PathBuf> {
    // Only the target's own code gets crt-static: build scripts, proc macros and the kernel
    // programs (built for bpfel by signal-trace's build script) are left as they are.
    sh(Command::new("cargo")
        .current_dir(root)
        .env(
            "CARGO_TARGET_X86_64_UNKNOWN_LINUX_GNU_RUSTFLAGS",
            "-C target-feature=+crt-static",
        )
        .args([
            "build",
            "--release",
            "--package",
            "signal-trace",
            "--target",
            TARGET,
        ]))?;
    let bin = root
        .join("target")
        .join(TARGET)
        .join("release/signal-trace");
    if has_interpreter(&bin)? {
        bail!(
            "{} is dynamically linked (it has an ELF interpreter)",
            bin.display()
        );
    }
    Ok(bin)
}

/// Whether an ELF64 file asks for a dynamic loader (a PT_INTERP program header).
fn has_interpreter(path: &Path) -> anyhow::Result<bool> {
    let data = std::fs::read(path).with_context(|| format!("cannot read {}", path.display()))?;
    if data.len() < 64 || &data[..4] != b"\x7fELF" || data[4] != 2 {
        bail!("{} is not an ELF64 file", path.display());
    }
    let u = |o: usize, n: usize| -> u64 {
        let mut b = [0u8; 8];
        b[..n].copy_from_slice(&data[o..o + n]);
        u64::from_le_bytes(b)
    };
    let (phoff, phentsize, phnum) = (
        u(0x20, 8) as usize,
        u(0x36, 2) as usize,
        u(0x38, 2) as usize,
    );
    Ok((0..phnum).any(|i| {
        let o = phoff + i * phentsize;
        o + 4 <= data.len() && u(o, 4) == 3
    }))
}

fn size(path: &Path) -> String {
    let n = std::fs::metadata(path).map(|m| m.len()).unwrap_or(0);
    format!("{:.1} MiB", n as f64 / (1u64 << 20) as f64)
}

fn copy(from: &Path, to: &Path, mode: u32) -> anyhow::Result<()> {
    use std::os::unix::fs::PermissionsExt as _;
    if let Some(d) = to.parent() {
        std::fs::create_dir_all(d)?;
    }
    std::fs::copy(from, to)
        .with_context(|| format!("cannot copy {} to {}", from.display(), to.display()))?;
    std::fs::set_permissions(to, std::fs::Permissions::from_mode(mode))?;
    Ok(())
}

pub fn run(root: &Path, args: &Args) -> anyhow::Result<()> {
    let started = Instant::now();
    let bin = build_binary(root)?;
    let built = started.elapsed();
    let dist = root.join("target/dist");
    let stage = dist.join("stage");
    let _ = std::fs::remove_dir_all(&stage);
    std::fs::create_dir_all(&stage)?;
    // The packages ship the binary without its debug information (the release profile keeps
    // line tables for profiling: three quarters of the file).
    let unstripped = bin;
    let bin = stage.join("signal-trace");
    sh(Command::new("strip")
        .arg("--strip-debug")
        .arg("-o")
        .arg(&bin)
        .arg(&unstripped))?;
    let assets = stage.join("assets");
    sh(Command::new(&bin).arg("assets").arg(&assets))?;
    let unit = root.join("deploy/signal-trace.service");
    let mans: Vec<PathBuf> = {
        let mut v: Vec<PathBuf> = std::fs::read_dir(assets.join("man"))?
            .map(|e| e.map(|e| e.path()))
            .collect::<Result<_, _>>()?;
        v.sort();
        v
    };

    // The tarball.
    let name = format!("signal-trace-{VERSION}");
    let tree = stage.join(&name);
    copy(&bin, &tree.join("signal-trace"), 0o755)?;
    copy(&unit, &tree.join("signal-trace.service"), 0o644)?;
    copy(&root.join("README.md"), &tree.join("README.md"), 0o644)?;
    for m in &mans {
        copy(m, &tree.join("man").join(m.file_name().unwrap()), 0o644)?;
    }
    for f in ["signal-trace.bash", "_signal-trace", "signal-trace.fish"] {
        copy(
            &assets.join("completions").join(f),
            &tree.join("completions").join(f),
            0o644,
        )?;
    }
    let tarball = dist.join(format!("{name}-x86_64-linux.tar.gz"));
    sh(Command::new("tar")
        .arg("--owner=0")
        .arg("--group=0")
        .arg("-czf")
        .arg(&tarball)
        .arg("-C")
        .arg(&stage)
        .arg(&name))?;

    // The .deb.
    let deb_root = stage.join("deb");
    copy(&bin, &deb_root.join("usr/bin/signal-trace"), 0o755)?;
    copy(
        &unit,
        &deb_root.join("lib/systemd/system/signal-trace.service"),
        0o644,
    )?;
    let man1 = deb_root.join("usr/share/man/man1");
    for m in &mans {
        let to = man1.join(m.file_name().unwrap());
        copy(m, &to, 0o644)?;
        sh(Command::new("gzip").arg("-9n").arg(&to))?;
    }
    let c = assets.join("completions");
    copy(
        &c.join("signal-trace.bash"),
        &deb_root.join("usr/share/bash-completion/completions/signal-trace"),
        0o644,
    )?;
    copy(
        &c.join("_signal-trace"),
        &deb_root.join("usr/share/zsh/vendor-completions/_signal-trace"),
        0o644,
    )?;
    copy(
        &c.join("signal-trace.fish"),
        &deb_root.join("usr/share/fish/vendor_completions.d/signal-trace.fish"),
        0o644,
    )?;
    copy(
        &root.join("README.md"),
        &deb_root.join("usr/share/doc/signal-trace/README.md"),
        0o644,
    )?;
    let installed_kib = du_kib(&deb_root)?;
    let control = format!(
        "Package: signal-trace\n\
         Version: {VERSION}\n\
         Architecture: amd64\n\
         Maintainer: signal-trace maintainers <signal-trace@example.invalid>\n\
         Installed-Size: {installed_kib}\n\
         Section: admin\n\
         Priority: optional\n\
         Homepage: https://example.invalid/signal-trace\n\
         Description: system-wide Linux signal tracer (eBPF)\n \
         Who sent which signal to whom, and what the kernel did with it: every signal on\n \
         the host as NDJSON or text, diagnoses (explain) and dispositions (inspect).\n \
         The unit signal-trace.service is installed, not enabled.\n"
    );
    std::fs::create_dir_all(deb_root.join("DEBIAN"))?;
    std::fs::write(deb_root.join("DEBIAN/control"), control)?;
    let deb = dist.join(format!("signal-trace_{VERSION}_amd64.deb"));
    sh(Command::new("dpkg-deb")
        .args(["--root-owner-group", "-Zxz", "--build"])
        .arg(&deb_root)
        .arg(&deb))?;
    println!(
        "dist: {} ({}), {} ({}), binary {} ({}); build {:.0} s, packaging {:.0} s",
        tarball.display(),
        size(&tarball),
        deb.display(),
        size(&deb),
        bin.display(),
        size(&bin),
        built.as_secs_f64(),
        (started.elapsed() - built).as_secs_f64()
    );
    if args.install_check {
        install_check(&deb)?;
        systemd_check(root, &deb)?;
    }
    Ok(())
}

fn du_kib(dir: &Path) -> anyhow::Result<u64> {
    let mut total = 0;
    for e in std::fs::read_dir(dir)? {
        let e = e?;
        let m = e.metadata()?;
        total += if m.is_dir() {
            du_kib(&e.path())?
        } else {
            m.len().div_ceil(1024)
        };
    }
    Ok(total)
}

fn installed() -> bool {
    Command::new("dpkg-query")
        .args(["-W", "-f=${Status}", "signal-trace"])
        .output()
        .is_ok_and(|o| String::from_utf8_lossy(&o.stdout).contains("install ok installed"))
}

/// Installs the .deb, checks what it put in place, traces one signal with the installed
/// binary, and removes the package again (also when a check fails).
pub fn install_check(deb: &Path) -> anyhow::Result<()> {
    // SAFETY: geteuid has no preconditions.
    if unsafe { libc::geteuid() } != 0 {
        bail!("installing a package needs root: run as root");
    }
    if installed() || Path::new("/usr/bin/signal-trace").exists() {
        bail!("signal-trace is already installed here: the check would not leave the machine as it found it");
    }
    sh(Command::new("dpkg").arg("-i").arg(deb))?;
    let checked = check_installed();
    let removed = status_ok(Command::new("dpkg").args(["-r", "signal-trace"]));
    checked?;
    removed?;
    if installed() || Path::new("/usr/bin/signal-trace").exists() {
        bail!("dpkg -r left signal-trace installed");
    }
    println!("dist: installed, traced a signal with /usr/bin/signal-trace, removed");
    Ok(())
}

fn check_installed() -> anyhow::Result<()> {
    for f in [
        "/usr/bin/signal-trace",
        "/lib/systemd/system/signal-trace.service",
        "/usr/share/man/man1/signal-trace.1.gz",
        "/usr/share/man/man1/signal-trace-explain.1.gz",
        "/usr/share/bash-completion/completions/signal-trace",
        "/usr/share/zsh/vendor-completions/_signal-trace",
        "/usr/share/fish/vendor_completions.d/signal-trace.fish",
    ] {
        if !Path::new(f).is_file() {
            bail!("the package did not install {f}");
        }
    }
    let v = Command::new("/usr/bin/signal-trace")
        .arg("--version")
        .output()?;
    let v = String::from_utf8_lossy(&v.stdout);
    if !v.contains(VERSION) || !v.contains("commit ") {
        bail!("--version does not name the version and commit: {v:?}");
    }
    let verify = Command::new("systemd-analyze")
        .args([
            "verify",
            "--man=no",
            "/lib/systemd/system/signal-trace.service",
        ])
        .output()?;
    if !verify.status.success() || !verify.stderr.is_empty() {
        bail!(
            "systemd-analyze verify: {}",
            String::from_utf8_lossy(&verify.stderr)
        );
    }
    // A live trace of one signal, by the installed binary.
    let mut target = Command::new("sleep").arg("60").spawn()?;
    let pid = target.id().to_string();
    let mut tracer = Command::new("/usr/bin/signal-trace")
        .args(["--format", "json", "--count", "1", "--events", "generate"])
        .args(["--signal", "USR1", "--target-pid", &pid])
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()?;
    let mut err = BufReader::new(tracer.stderr.take().expect("stderr"));
    let mut line = String::new();
    let ready = Instant::now();
    loop {
        line.clear();
        if err.read_line(&mut line)? == 0 {
            let _ = target.kill();
            bail!("the installed tracer exited before tracing: {line}");
        }
        if line.contains("Ctrl-C to stop") {
            break;
        }
        if ready.elapsed() > Duration::from_secs(30) {
            let _ = tracer.kill();
            let _ = target.kill();
            bail!("the installed tracer did not start within 30 s");
        }
    }
    // SAFETY: kill(2) to our own child.
    unsafe { libc::kill(target.id() as i32, libc::SIGUSR1) };
    let _ = target.wait();
    let deadline = Instant::now() + Duration::from_secs(20);
    let status = loop {
        if let Some(s) = tracer.try_wait()? {
            break s;
        }
        if Instant::now() > deadline {
            let _ = tracer.kill();
            bail!("the installed tracer did not report the signal within 20 s");
        }
        std::thread::sleep(Duration::from_millis(50));
    };
    let mut out = String::new();
    tracer
        .stdout
        .take()
        .expect("stdout")
        .read_to_string(&mut out)?;
    if !status.success() {
        bail!("the installed tracer failed: {status}");
    }
    let rec: serde_json::Value = serde_json::from_str(out.trim())
        .with_context(|| format!("not one NDJSON record: {out:?}"))?;
    let ok = rec["event"] == "generate"
        && rec["signal"] == "SIGUSR1"
        && rec["target"]["pid"].as_u64().map(|p| p.to_string()) == Some(pid.clone())
        && rec["host"].as_str().is_some_and(|h| !h.is_empty());
    if !ok {
        bail!("the installed tracer reported something else: {rec}");
    }
    Ok(())
}

/// The unit under real systemd: the tests' Debian bookworm root with systemd
/// (scripts/systemd-up.sh --rootfs builds it once into /var/cache/signal-trace) booted with
/// systemd-nspawn under a volatile overlay, the .deb bound into it and installed,
/// `systemctl start signal-trace`, one signal sent, its record read from
/// /var/log/signal-trace, `systemctl stop` (the totals line in the journal), power-off.
/// Nothing the run writes outlives the machine.
pub fn systemd_check(root: &Path, deb: &Path) -> anyhow::Result<()> {
    sh(Command::new("bash")
        .arg(root.join("scripts/systemd-up.sh"))
        .arg("--rootfs"))?;
    let rootfs = Path::new("/var/cache/signal-trace/bookworm-systemd");
    let deb = deb
        .canonicalize()
        .with_context(|| format!("cannot find {}", deb.display()))?;
    let mut nspawn = Command::new("systemd-nspawn")
        .arg("-D")
        .arg(rootfs)
        .args([
            "-b",
            "--register=no",
            "--keep-unit",
            "--quiet",
            "--console=passive",
            "--volatile=overlay",
        ])
        .arg(format!(
            "--bind-ro={}:/root/signal-trace.deb",
            deb.display()
        ))
        // What the unit's bounding set asks for, and the two syscalls nspawn filters out.
        .arg("--capability=CAP_BPF,CAP_PERFMON,CAP_SYS_ADMIN,CAP_SYS_RESOURCE")
        .arg("--system-call-filter=bpf perf_event_open")
        .stdin(Stdio::null())
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .spawn()
        .context("cannot run systemd-nspawn")?;
    let result = in_booted(nspawn.id());
    if let Some(init) = init_of(nspawn.id()) {
        let _ = Command::new("nsenter")
            .args(["-t", &init.to_string(), "-a", "systemctl", "poweroff"])
            .status();
    }
    let deadline = Instant::now() + Duration::from_secs(20);
    while nspawn.try_wait()?.is_none() {
        if Instant::now() > deadline {
            let _ = nspawn.kill();
            let _ = nspawn.wait();
            break;
        }
        std::thread::sleep(Duration::from_millis(100));
    }
    result
}

/// The container's init: the nspawn process's child.
fn init_of(nspawn: u32) -> Option<u32> {
    let children =
        std::fs::read_to_string(format!("/proc/{nspawn}/task/{nspawn}/children")).ok()?;
    children.split_whitespace().next()?.parse().ok()
}

fn in_booted(nspawn: u32) -> anyhow::Result<()> {
    let start = Instant::now();
    let init = loop {
        if let Some(i) = init_of(nspawn) {
            let state = Command::new("nsenter")
                .args(["-t", &i.to_string(), "-a", "systemctl", "is-system-running"])
                .output()?;
            let s = String::from_utf8_lossy(&state.stdout);
            if s.trim() == "running" || s.trim() == "degraded" {
                break i.to_string();
            }
        }
        if start.elapsed() > Duration::from_secs(60) {
            bail!("the systemd container did not boot within 60 s");
        }
        std::thread::sleep(Duration::from_millis(250));
    };
    let run = |script: &str| -> anyhow::Result<String> {
        let out = Command::new("nsenter")
            .args(["-t", &init, "-a", "sh", "-c", script])
            .output()?;
        if !out.status.success() {
            bail!(
                "in the systemd container, {script:?} failed: {}{}",
                String::from_utf8_lossy(&out.stdout),
                String::from_utf8_lossy(&out.stderr)
            );
        }
        Ok(String::from_utf8_lossy(&out.stdout).into_owned())
    };
    run("dpkg -i /root/signal-trace.deb >/dev/null")?;
    run("systemctl start signal-trace")?;
    let ready = Instant::now();
    while !run("journalctl -u signal-trace --no-pager")?.contains("Ctrl-C to stop") {
        if ready.elapsed() > Duration::from_secs(30) {
            let status = run("systemctl status signal-trace --no-pager || true")?;
            bail!("the service did not start tracing within 30 s:\n{status}");
        }
        std::thread::sleep(Duration::from_millis(200));
    }
    let pid = run("sleep 60 & p=$!; sleep 0.3; kill -USR1 $p; echo $p")?;
    let pid = pid.trim();
    std::thread::sleep(Duration::from_millis(500));
    // The pid the container's shell knows is the target's ns_pid (records carry host pids).
    let seen = run(&format!(
        "grep -m1 '\"signal\":\"SIGUSR1\".*\"target\":{{[^}}]*\"ns_pid\":{pid},' \
         /var/log/signal-trace/signal-trace.ndjson || true"
    ))?;
    run("systemctl stop signal-trace")?;
    if seen.trim().is_empty() {
        bail!("the service's output has no record of SIGUSR1 to the container's pid {pid}");
    }
    let journal = run("journalctl -u signal-trace --no-pager")?;
    if !journal.contains(" lost") {
        bail!("no totals line at stop:\n{journal}");
    }
    run("dpkg -r signal-trace >/dev/null")?;
    println!("dist: the unit ran under systemd in a booted container and traced a signal");
    Ok(())
}
