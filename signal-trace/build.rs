//! Builds the kernel programs (signal-trace-ebpf) with aya-build and places the object in
//! OUT_DIR, where `kernel/tracer.rs` includes it; and names the git commit for `--version`.
//!
//! When bpf-linker is not installed (or AYA_BUILD_SKIP=1), an empty object is written instead so
//! that `cargo check`, clippy and the pure unit tests work without the eBPF toolchain; a binary
//! built that way refuses to trace and says why.

use std::path::{Path, PathBuf};
use std::{env, fs};

fn bpf_linker_on_path() -> bool {
    env::var_os("PATH")
        .map(|p| env::split_paths(&p).any(|d| d.join("bpf-linker").is_file()))
        .unwrap_or(false)
}

/// The commit `--version` names: `SIGNAL_TRACE_COMMIT` when set (a build from a source
/// tarball without .git can pass it), else `git rev-parse` in the source tree, else "unknown".
fn commit(manifest_dir: &Path) -> String {
    println!("cargo:rerun-if-env-changed=SIGNAL_TRACE_COMMIT");
    if let Some(c) = env::var("SIGNAL_TRACE_COMMIT")
        .ok()
        .filter(|c| !c.trim().is_empty())
    {
        return c.trim().to_string();
    }
    let git = |args: &[&str]| {
        std::process::Command::new("git")
            .args(args)
            .current_dir(manifest_dir)
            .output()
            .ok()
            .filter(|o| o.status.success())
            .map(|o| String::from_utf8_lossy(&o.stdout).trim().to_string())
    };
    let Some(hash) = git(&["rev-parse", "--short=12", "HEAD"]) else {
        return "unknown".into();
    };
    // Rebuild when HEAD moves (a commit, a checkout).
    for f in ["HEAD"] {
        if let Some(p) = git(&["rev-parse", "--git-path", f]) {
            let p = manifest_dir.join(p);
            println!("cargo:rerun-if-changed={}", p.display());
        }
    }
    if let Some(r) = git(&["symbolic-ref", "-q", "HEAD"]) {
        if let Some(p) = git(&["rev-parse", "--git-path", &r]) {
            println!("cargo:rerun-if-changed={}", manifest_dir.join(p).display());
        }
    }
    hash
}

fn main() -> anyhow::Result<()> {
    let manifest_dir_early =
        PathBuf::from(env::var_os("CARGO_MANIFEST_DIR").expect("CARGO_MANIFEST_DIR"));
    println!(
        "cargo:rustc-env=SIGNAL_TRACE_VERSION={} (commit {})",
        env::var("CARGO_PKG_VERSION").unwrap_or_default(),
        commit(&manifest_dir_early)
    );
    println!("cargo:rerun-if-env-changed=AYA_BUILD_SKIP");
    println!("cargo:rerun-if-env-changed=PATH");
    let out_dir = PathBuf::from(env::var_os("OUT_DIR").expect("OUT_DIR"));
    let manifest_dir =
        PathBuf::from(env::var_os("CARGO_MANIFEST_DIR").expect("CARGO_MANIFEST_DIR"));
    let ebpf_dir = manifest_dir
        .parent()
        .unwrap_or(Path::new(".."))
        .join("signal-trace-ebpf");
    let skip = env::var("AYA_BUILD_SKIP").is_ok_and(|v| v == "1" || v.eq_ignore_ascii_case("true"));
    if skip || !bpf_linker_on_path() {
        println!(
            "cargo:warning=kernel programs not built ({}); this binary cannot trace",
            if skip {
                "AYA_BUILD_SKIP is set"
            } else {
                "bpf-linker is not on PATH: run scripts/setup.sh"
            }
        );
        fs::write(out_dir.join("signal-trace"), [])?;
        return Ok(());
    }
    let root = ebpf_dir.to_string_lossy().into_owned();
    let package = aya_build::Package {
        name: "signal-trace-ebpf",
        root_dir: &root,
        ..Default::default()
    };
    aya_build::build_ebpf([package], aya_build::Toolchain::default())
}
