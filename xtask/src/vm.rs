//! `cargo xtask vm-test`: the tracer's live checks on the kernels of the matrix — Debian's
//! packaged 6.1 and 6.12 kernels booted under QEMU software emulation, and the host's own kernel
//! natively. It fails when any check fails on any kernel, and when QEMU, busybox or a kernel
//! package cannot be obtained: it never skips.
//!
//! Each guest boots a small initramfs: static busybox, the static release tracer, this xtask
//! binary (static too) whose hidden `vm-guest` subcommand runs the checks (see `guest`), and an
//! /init that mounts what the tracer needs, runs them and powers off. QEMU exits 0 whatever the
//! guest does, so the verdict is read from the serial console (`VMTEST PASS` / `VMTEST FAIL`).
//! Downloads and the extracted kernels are cached under target/vm/.

pub mod guest;

use crate::status_ok as run;
use std::io::{BufRead, BufReader, BufWriter, Write};
use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};
use std::sync::mpsc;
use std::time::{Duration, Instant};

use anyhow::{anyhow, bail, ensure, Context as _};

use guest::TAG;

/// A kernel of the matrix: the Debian package preferred, and the pattern (POSIX regex for
/// `apt-cache search --names-only`) to fall back to the newest of when it is not available.
struct KernelSpec {
    label: &'static str,
    preferred: &'static str,
    pattern: &'static str,
}

const KERNELS: &[KernelSpec] = &[
    KernelSpec {
        label: "6.1",
        preferred: "linux-image-6.1.0-50-amd64",
        pattern: r"^linux-image-6\.1\.0-[0-9]+-amd64$",
    },
    KernelSpec {
        label: "6.12",
        preferred: "linux-image-6.12.100+deb12-amd64",
        pattern: r"^linux-image-6\.12\.[0-9]+\+deb[0-9]+-amd64$",
    },
];

/// The label of the host kernel's row in `--kernel`.
const HOST: &str = "host";

/// A whole guest run (boot, checks, power-off); the checks take well under a minute each.
const VM_TIMEOUT: Duration = Duration::from_secs(300);
/// The checks run natively on the host.
const HOST_TIMEOUT: Duration = Duration::from_secs(180);

/// Debian packages the matrix needs on the host.
const HOST_PACKAGES: &[&str] = &["qemu-system-x86", "busybox-static"];

const BUSYBOX: &str = "/bin/busybox";

/// The guest's /init (busybox sh).
const INIT: &str = r#"#!/bin/busybox sh
/bin/busybox --install -s /bin
export PATH=/bin
mount -t proc proc /proc
mount -t sysfs sysfs /sys
mount -t devtmpfs devtmpfs /dev
mount -t tracefs tracefs /sys/kernel/tracing
mount -t cgroup2 cgroup2 /sys/fs/cgroup
mount -t tmpfs tmpfs /tmp
/xtask vm-guest --tracer /signal-trace || echo "VMTEST FAIL (the checks exited with status $?)"
poweroff -f
"#;

/// What `cargo xtask vm-test` runs.
#[derive(Default)]
pub struct Options {
    /// Only these rows of the matrix (`6.1`, `6.12`, `host`); all when empty.
    pub kernels: Vec<String>,
    /// Only these checks; all when empty.
    pub checks: Vec<String>,
}

struct Outcome {
    label: String,
    release: String,
    passed: bool,
    secs: f64,
    log: PathBuf,
}

pub fn vm_test(root: &Path, opts: &Options) -> anyhow::Result<()> {
    let labels: Vec<&str> = KERNELS.iter().map(|k| k.label).chain([HOST]).collect();
    for k in &opts.kernels {
        ensure!(
            labels.contains(&k.as_str()),
            "no kernel {k:?} in the matrix (kernels: {})",
            labels.join(", ")
        );
    }
    for c in &opts.checks {
        ensure!(
            guest::check_names().any(|n| n == c),
            "no check named {c:?} (checks: {})",
            guest::check_names().collect::<Vec<_>>().join(", ")
        );
    }
    let wanted = |label: &str| opts.kernels.is_empty() || opts.kernels.iter().any(|k| k == label);
    let vm_dir = root.join("target/vm");
    std::fs::create_dir_all(vm_dir.join("logs"))
        .with_context(|| format!("cannot create {}", vm_dir.display()))?;
    let total = Instant::now();

    let mut apt = Apt::default();
    apt.ensure_installed(HOST_PACKAGES)?;
    ensure!(
        is_static(Path::new(BUSYBOX))?,
        "{BUSYBOX} is not statically linked; the busybox-static package provides one"
    );

    let t = Instant::now();
    let (tracer, checker) = build_static(root)?;
    println!(
        "vm-test: static tracer and checker built in {:.1} s",
        t.elapsed().as_secs_f64()
    );

    let t = Instant::now();
    let mut kernels = Vec::new();
    for spec in KERNELS.iter().filter(|k| wanted(k.label)) {
        let vmlinuz = fetch_kernel(&mut apt, &vm_dir, spec)?;
        kernels.push((spec.label, vmlinuz));
    }
    let initrd = vm_dir.join("initramfs.cpio");
    if !kernels.is_empty() {
        write_initramfs(&initrd, &tracer, &checker, &opts.checks)?;
    }
    println!(
        "vm-test: kernels and initramfs ready in {:.1} s",
        t.elapsed().as_secs_f64()
    );

    let mut outcomes = Vec::new();
    // The host first, alone: its stop-time check must not compete with the emulators for CPU.
    if wanted(HOST) {
        let mut cmd = Command::new(&checker);
        cmd.args(["vm-guest", "--tracer"]).arg(&tracer);
        for c in &opts.checks {
            cmd.args(["--check", c]);
        }
        let log = vm_dir.join("logs/host.log");
        outcomes.push(run_logged(HOST, cmd, &log, HOST_TIMEOUT)?);
    }
    // The guests in parallel: each emulated CPU keeps one host thread busy.
    let results: Vec<anyhow::Result<Outcome>> = std::thread::scope(|s| {
        let handles: Vec<_> = kernels
            .iter()
            .map(|(label, vmlinuz)| {
                let log = vm_dir.join(format!("logs/{label}.log"));
                let cmd = qemu_command(vmlinuz, &initrd);
                s.spawn(move || run_logged(label, cmd, &log, VM_TIMEOUT))
            })
            .collect();
        handles
            .into_iter()
            .map(|h| {
                h.join()
                    .unwrap_or_else(|_| Err(anyhow!("a vm thread panicked")))
            })
            .collect()
    });
    for r in results {
        outcomes.push(r?);
    }

    println!();
    println!(
        "{:<8} {:<28} {:<6} {:>8}",
        "kernel", "release", "result", "time"
    );
    for o in &outcomes {
        println!(
            "{:<8} {:<28} {:<6} {:>6.1} s",
            o.label,
            o.release,
            if o.passed { "pass" } else { "FAIL" },
            o.secs
        );
    }
    println!(
        "vm-test: matrix finished in {:.1} s",
        total.elapsed().as_secs_f64()
    );
    let failed: Vec<_> = outcomes
        .iter()
        .filter(|o| !o.passed)
        .map(|o| format!("{} (log: {})", o.label, o.log.display()))
        .collect();
    if !failed.is_empty() {
        bail!("the live checks failed on {}", failed.join(", "));
    }
    Ok(())
}

fn qemu_command(vmlinuz: &Path, initrd: &Path) -> Command {
    let mut cmd = Command::new("qemu-system-x86_64");
    cmd.args(["-accel", "tcg", "-cpu", "max", "-smp", "1", "-m", "512M"])
        .args(["-nographic", "-no-reboot", "-nic", "none"])
        .arg("-kernel")
        .arg(vmlinuz)
        .arg("-initrd")
        .arg(initrd)
        .args(["-append", "console=ttyS0 panic=-1 quiet loglevel=3"]);
    cmd
}

/// Runs `cmd` with a deadline, copies its output to `log`, and reads the verdict from it.
fn run_logged(
    label: &str,
    mut cmd: Command,
    log: &Path,
    timeout: Duration,
) -> anyhow::Result<Outcome> {
    println!("vm-test: {label}: starting");
    let start = Instant::now();
    let shown = format!("{cmd:?}");
    let mut child = cmd
        .stdin(Stdio::null())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .with_context(|| format!("cannot run {shown}"))?;
    let (tx, rx) = mpsc::channel::<String>();
    let mut readers = Vec::new();
    for stream in [
        child
            .stdout
            .take()
            .map(|s| Box::new(s) as Box<dyn std::io::Read + Send>),
        child
            .stderr
            .take()
            .map(|s| Box::new(s) as Box<dyn std::io::Read + Send>),
    ]
    .into_iter()
    .flatten()
    {
        let tx = tx.clone();
        readers.push(std::thread::spawn(move || {
            let mut reader = BufReader::new(stream);
            let mut buf = Vec::new();
            while matches!(reader.read_until(b'\n', &mut buf), Ok(1..)) {
                let line = String::from_utf8_lossy(&buf);
                let _ = tx.send(clean_console_line(&line));
                buf.clear();
            }
        }));
    }
    drop(tx);
    let mut file = BufWriter::new(
        std::fs::File::create(log).with_context(|| format!("cannot create {}", log.display()))?,
    );
    let mut lines = Vec::new();
    let mut timed_out = false;
    loop {
        match rx.recv_timeout(Duration::from_millis(200)) {
            Ok(line) => {
                writeln!(file, "{line}")
                    .with_context(|| format!("cannot write {}", log.display()))?;
                if let Some(rest) = line.strip_prefix(TAG).map(str::trim) {
                    if rest.starts_with("ok ") || rest.starts_with("FAIL ") {
                        println!("vm-test: {label}: {rest}");
                    }
                }
                lines.push(line);
            }
            Err(mpsc::RecvTimeoutError::Disconnected) => break,
            Err(mpsc::RecvTimeoutError::Timeout) => {}
        }
        if start.elapsed() > timeout && !timed_out {
            timed_out = true;
            let _ = child.kill();
        }
    }
    let status = child
        .wait()
        .with_context(|| format!("cannot wait for {shown}"))?;
    for r in readers {
        let _ = r.join();
    }
    file.flush()
        .with_context(|| format!("cannot write {}", log.display()))?;
    let secs = start.elapsed().as_secs_f64();
    let tagged: Vec<&str> = lines
        .iter()
        .filter_map(|l| l.strip_prefix(TAG).map(str::trim))
        .collect();
    let release = tagged
        .iter()
        .find_map(|l| l.strip_prefix("kernel "))
        .unwrap_or("unknown")
        .to_string();
    let passed = !timed_out
        && tagged.last() == Some(&"PASS")
        && !tagged.iter().any(|l| l.starts_with("FAIL"));
    if !passed {
        let why = if timed_out {
            format!("timed out after {timeout:?}")
        } else if tagged.is_empty() {
            format!("no check ran ({shown} ended with {status})")
        } else {
            "checks failed".to_string()
        };
        println!("vm-test: {label}: {why}; output ({}):", log.display());
        for line in &lines {
            println!("  | {line}");
        }
    }
    println!(
        "vm-test: {label}: {} in {secs:.1} s",
        if passed { "pass" } else { "FAIL" }
    );
    Ok(Outcome {
        label: label.to_string(),
        release,
        passed,
        secs,
        log: log.to_path_buf(),
    })
}

/// A serial console line without carriage returns and terminal escape sequences.
fn clean_console_line(line: &str) -> String {
    let mut out = String::with_capacity(line.len());
    let mut chars = line.chars().peekable();
    while let Some(c) = chars.next() {
        match c {
            '\u{1b}' => {
                // CSI: ESC [ parameters… final byte in @..~
                if chars.peek() == Some(&'[') {
                    chars.next();
                    for c in chars.by_ref() {
                        if ('@'..='~').contains(&c) {
                            break;
                        }
                    }
                } else {
                    chars.next();
                }
            }
            '\r' | '\n' => {}
            c => out.push(c),
        }
    }
    out
}

// ---------------------------------------------------------------------------------------------
// Host packages and kernels.

#[derive(Default)]
struct Apt {
    updated: bool,
}

impl Apt {
    fn update(&mut self) -> anyhow::Result<()> {
        if !self.updated {
            println!("vm-test: apt-get update");
            run(Command::new("apt-get").args(["update", "-qq"]))?;
            self.updated = true;
        }
        Ok(())
    }

    fn ensure_installed(&mut self, packages: &[&str]) -> anyhow::Result<()> {
        let missing: Vec<&str> = packages
            .iter()
            .copied()
            .filter(|p| !dpkg_installed(p))
            .collect();
        if missing.is_empty() {
            return Ok(());
        }
        println!("vm-test: installing {}", missing.join(" "));
        let install = || {
            run(Command::new("apt-get")
                .args(["install", "-y", "-qq", "--no-install-recommends"])
                .args(&missing)
                .env("DEBIAN_FRONTEND", "noninteractive"))
        };
        if install().is_err() {
            self.update()?;
            install().with_context(|| format!("cannot install {}", missing.join(" ")))?;
        }
        Ok(())
    }

    /// The package to use for `spec`: the preferred one when apt knows it, else the newest
    /// matching the pattern.
    fn resolve(&mut self, spec: &KernelSpec) -> anyhow::Result<String> {
        for attempt in 0..2 {
            if attempt == 1 {
                self.update()?;
            }
            if apt_has(spec.preferred)? {
                return Ok(spec.preferred.to_string());
            }
            let out =
                capture(Command::new("apt-cache").args(["search", "--names-only", spec.pattern]))?;
            let newest = out
                .lines()
                .filter_map(|l| l.split_whitespace().next())
                .max_by_key(|name| version_key(name));
            if let Some(name) = newest {
                return Ok(name.to_string());
            }
        }
        bail!(
            "apt knows neither {} nor any package matching {}",
            spec.preferred,
            spec.pattern
        )
    }
}

fn dpkg_installed(package: &str) -> bool {
    Command::new("dpkg-query")
        .args(["-W", "-f=${Status}", package])
        .stderr(Stdio::null())
        .output()
        .is_ok_and(|o| String::from_utf8_lossy(&o.stdout).contains("install ok installed"))
}

/// Whether apt has a candidate version of `package`.
fn apt_has(package: &str) -> anyhow::Result<bool> {
    let out = capture(Command::new("apt-cache").args(["policy", package]))?;
    Ok(out
        .lines()
        .filter_map(|l| l.trim().strip_prefix("Candidate:"))
        .any(|c| c.trim() != "(none)"))
}

/// The numbers in a package name, for ordering `6.1.0-9` before `6.1.0-50`.
fn version_key(name: &str) -> Vec<u64> {
    name.split(|c: char| !c.is_ascii_digit())
        .filter(|s| !s.is_empty())
        .filter_map(|s| s.parse().ok())
        .collect()
}

/// The kernel image of `spec`, downloaded and extracted once into target/vm/kernels/PACKAGE/.
fn fetch_kernel(apt: &mut Apt, vm_dir: &Path, spec: &KernelSpec) -> anyhow::Result<PathBuf> {
    let cached = |package: &str| vm_dir.join("kernels").join(package).join("vmlinuz");
    if cached(spec.preferred).is_file() {
        return Ok(cached(spec.preferred));
    }
    let package = apt.resolve(spec)?;
    let vmlinuz = cached(&package);
    if vmlinuz.is_file() {
        return Ok(vmlinuz);
    }
    let download = vm_dir.join("download");
    std::fs::create_dir_all(&download)
        .with_context(|| format!("cannot create {}", download.display()))?;
    println!("vm-test: downloading {package}");
    run(Command::new("apt-get")
        .args(["download", "-qq", &package])
        .current_dir(&download))
    .with_context(|| format!("cannot download the kernel package {package}"))?;
    let deb = std::fs::read_dir(&download)
        .with_context(|| format!("cannot list {}", download.display()))?
        .filter_map(|e| e.ok().map(|e| e.path()))
        .find(|p| {
            p.file_name()
                .and_then(|n| n.to_str())
                .is_some_and(|n| n.starts_with(&format!("{package}_")) && n.ends_with(".deb"))
        })
        .ok_or_else(|| anyhow!("apt-get download left no {package} .deb"))?;
    let dir = vmlinuz.parent().expect("a cache directory");
    std::fs::create_dir_all(dir).with_context(|| format!("cannot create {}", dir.display()))?;
    let part = dir.join("vmlinuz.part");
    extract_vmlinuz(&deb, &part)?;
    std::fs::rename(&part, &vmlinuz)
        .with_context(|| format!("cannot move {} into place", part.display()))?;
    std::fs::remove_file(&deb).with_context(|| format!("cannot remove {}", deb.display()))?;
    Ok(vmlinuz)
}

/// Copies ./boot/vmlinuz-* out of a kernel .deb into `dest`.
fn extract_vmlinuz(deb: &Path, dest: &Path) -> anyhow::Result<()> {
    let mut dpkg = Command::new("dpkg-deb")
        .arg("--fsys-tarfile")
        .arg(deb)
        .stdout(Stdio::piped())
        .spawn()
        .context("cannot run dpkg-deb")?;
    let out =
        std::fs::File::create(dest).with_context(|| format!("cannot create {}", dest.display()))?;
    let tar = Command::new("tar")
        .args(["-xO", "--wildcards", "./boot/vmlinuz-*"])
        .stdin(dpkg.stdout.take().context("no dpkg-deb stdout")?)
        .stdout(out)
        .status()
        .context("cannot run tar")?;
    let dpkg = dpkg.wait().context("cannot wait for dpkg-deb")?;
    ensure!(
        dpkg.success() && tar.success(),
        "cannot extract the kernel image from {} (dpkg-deb {dpkg}, tar {tar})",
        deb.display()
    );
    let len = std::fs::metadata(dest)
        .with_context(|| format!("cannot stat {}", dest.display()))?
        .len();
    ensure!(len > 1 << 20, "{} holds no kernel image", deb.display());
    Ok(())
}

// ---------------------------------------------------------------------------------------------
// The binaries and the initramfs.

const HOST_TARGET: &str = "x86_64-unknown-linux-gnu";

/// Builds the release tracer and this xtask, statically linked against glibc (the musl target
/// is not needed). Returns their paths.
fn build_static(root: &Path) -> anyhow::Result<(PathBuf, PathBuf)> {
    run(Command::new("cargo")
        .args(["build", "--release", "--target", HOST_TARGET])
        .args(["--package", "signal-trace", "--package", "xtask"])
        .current_dir(root)
        .env("PATH", crate::cargo_bin_path())
        .env_remove("RUSTFLAGS")
        .env_remove("CARGO_ENCODED_RUSTFLAGS")
        .env(
            "CARGO_TARGET_X86_64_UNKNOWN_LINUX_GNU_RUSTFLAGS",
            "-C target-feature=+crt-static",
        ))
    .context("cannot build the static binaries")?;
    let dir = root.join("target").join(HOST_TARGET).join("release");
    let (tracer, checker) = (dir.join("signal-trace"), dir.join("xtask"));
    for bin in [&tracer, &checker] {
        ensure!(
            is_static(bin)?,
            "{} is dynamically linked; the initramfs needs static binaries",
            bin.display()
        );
    }
    Ok((tracer, checker))
}

/// Whether an ELF executable has no program interpreter (is statically linked).
fn is_static(path: &Path) -> anyhow::Result<bool> {
    let elf = std::fs::read(path).with_context(|| format!("cannot read {}", path.display()))?;
    let u16_at = |o: usize| elf.get(o..o + 2).map(|b| u16::from_le_bytes([b[0], b[1]]));
    let u32_at = |o: usize| {
        elf.get(o..o + 4)
            .map(|b| u32::from_le_bytes(b.try_into().expect("4 bytes")))
    };
    let u64_at = |o: usize| {
        elf.get(o..o + 8)
            .map(|b| u64::from_le_bytes(b.try_into().expect("8 bytes")))
    };
    ensure!(
        elf.starts_with(b"\x7fELF\x02\x01"),
        "{} is not a 64-bit little-endian ELF file",
        path.display()
    );
    let bad = || anyhow!("{} has a truncated ELF header", path.display());
    let phoff = u64_at(0x20).ok_or_else(bad)? as usize;
    let phentsize = u16_at(0x36).ok_or_else(bad)? as usize;
    let phnum = u16_at(0x38).ok_or_else(bad)? as usize;
    const PT_INTERP: u32 = 3;
    for i in 0..phnum {
        if u32_at(phoff + i * phentsize).ok_or_else(bad)? == PT_INTERP {
            return Ok(false);
        }
    }
    Ok(true)
}

/// Writes the guest's initramfs: an uncompressed newc cpio archive (the kernel unpacks it
/// faster than a compressed one under emulation).
fn write_initramfs(
    dest: &Path,
    tracer: &Path,
    checker: &Path,
    checks: &[String],
) -> anyhow::Result<()> {
    let mut init = INIT.to_string();
    if !checks.is_empty() {
        let only: String = checks.iter().map(|c| format!(" --check {c}")).collect();
        init = init.replace(
            "--tracer /signal-trace",
            &format!("--tracer /signal-trace{only}"),
        );
    }
    let read = |p: &Path| std::fs::read(p).with_context(|| format!("cannot read {}", p.display()));
    let part = dest.with_extension("part");
    let mut cpio = Cpio::new(BufWriter::new(
        std::fs::File::create(&part)
            .with_context(|| format!("cannot create {}", part.display()))?,
    ));
    for dir in ["bin", "dev", "proc", "sys", "tmp"] {
        cpio.entry(dir, 0o040755, &[], (0, 0))?;
    }
    cpio.entry("dev/console", 0o020600, &[], (5, 1))?;
    cpio.entry("bin/busybox", 0o100755, &read(Path::new(BUSYBOX))?, (0, 0))?;
    cpio.entry("signal-trace", 0o100755, &read(tracer)?, (0, 0))?;
    cpio.entry("xtask", 0o100755, &read(checker)?, (0, 0))?;
    cpio.entry("init", 0o100755, init.as_bytes(), (0, 0))?;
    cpio.finish()
        .with_context(|| format!("cannot write {}", part.display()))?;
    std::fs::rename(&part, dest)
        .with_context(|| format!("cannot move {} into place", part.display()))?;
    Ok(())
}

/// A writer of the "newc" cpio format the kernel's initramfs unpacker reads.
struct Cpio<W: Write> {
    out: W,
    ino: u32,
}

impl<W: Write> Cpio<W> {
    fn new(out: W) -> Self {
        Cpio { out, ino: 1 }
    }

    fn entry(
        &mut self,
        name: &str,
        mode: u32,
        data: &[u8],
        rdev: (u32, u32),
    ) -> anyhow::Result<()> {
        self.ino += 1;
        let nlink = if mode & 0o170000 == 0o040000 { 2 } else { 1 };
        self.raw(name, self.ino, mode, nlink, data, rdev)
            .with_context(|| format!("cannot add {name} to the initramfs"))
    }

    fn raw(
        &mut self,
        name: &str,
        ino: u32,
        mode: u32,
        nlink: u32,
        data: &[u8],
        (major, minor): (u32, u32),
    ) -> std::io::Result<()> {
        let size = u32::try_from(data.len()).map_err(std::io::Error::other)?;
        let fields = [
            ino,
            mode,
            0, // uid
            0, // gid
            nlink,
            0, // mtime
            size,
            0, // devmajor
            0, // devminor
            major,
            minor,
            name.len() as u32 + 1,
            0, // check
        ];
        let mut header = String::from("070701");
        for f in fields {
            header.push_str(&format!("{f:08x}"));
        }
        self.out.write_all(header.as_bytes())?;
        self.out.write_all(name.as_bytes())?;
        self.out.write_all(&[0])?;
        self.pad(header.len() + name.len() + 1)?;
        self.out.write_all(data)?;
        self.pad(data.len())
    }

    fn pad(&mut self, len: usize) -> std::io::Result<()> {
        let n = (4 - len % 4) % 4;
        self.out.write_all(&[0; 3][..n])
    }

    fn finish(mut self) -> std::io::Result<()> {
        self.raw("TRAILER!!!", 0, 0, 1, &[], (0, 0))?;
        self.out.flush()
    }
}

// ---------------------------------------------------------------------------------------------

fn capture(cmd: &mut Command) -> anyhow::Result<String> {
    let shown = format!("{cmd:?}");
    let out = cmd
        .stderr(Stdio::inherit())
        .output()
        .with_context(|| format!("cannot run {shown}"))?;
    ensure!(out.status.success(), "{shown} failed: {}", out.status);
    Ok(String::from_utf8_lossy(&out.stdout).into_owned())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn newer_kernel_packages_sort_last() {
        let mut names = [
            "linux-image-6.1.0-50-amd64",
            "linux-image-6.1.0-9-amd64",
            "linux-image-6.1.0-37-amd64",
        ];
        names.sort_by_key(|n| version_key(n));
        assert_eq!(names.last(), Some(&"linux-image-6.1.0-50-amd64"));
        assert!(
            version_key("linux-image-6.12.100+deb12-amd64")
                > version_key("linux-image-6.12.9+deb12-amd64")
        );
    }

    #[test]
    fn console_lines_lose_escapes_and_carriage_returns() {
        assert_eq!(
            clean_console_line("\u{1b}[?7l\u{1b}[2JVMTEST PASS\r\n"),
            "VMTEST PASS"
        );
    }

    #[test]
    fn cpio_entries_are_padded_to_four_bytes() {
        let mut buf = Vec::new();
        let mut cpio = Cpio::new(&mut buf);
        cpio.entry("init", 0o100755, b"abcde", (0, 0)).unwrap();
        cpio.finish().unwrap();
        assert!(buf.starts_with(b"070701"));
        // header 110 + "init\0" 5 = 115 → 116, data 5 → 8, then the trailer's header.
        assert_eq!(&buf[116..121], b"abcde");
        assert_eq!(&buf[124..130], b"070701");
        assert_eq!(buf.len() % 4, 0);
    }
}
