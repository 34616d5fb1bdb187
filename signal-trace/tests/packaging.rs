//! What the packages ship, checked without installing them: the systemd unit (verified by
//! systemd-analyze), `--version`, and the man pages and completions generated from the CLI.
//! `cargo xtask dist --install-check` installs, runs and removes the real .deb.

use std::path::PathBuf;
use std::process::Command;

const BIN: &str = env!("CARGO_BIN_EXE_signal-trace");

fn unit_text() -> String {
    std::fs::read_to_string(concat!(
        env!("CARGO_MANIFEST_DIR"),
        "/../deploy/signal-trace.service"
    ))
    .expect("deploy/signal-trace.service")
}

fn temp_dir(name: &str) -> PathBuf {
    let d = std::env::temp_dir().join(format!("signal-trace-pkg-{}-{name}", std::process::id()));
    let _ = std::fs::remove_dir_all(&d);
    std::fs::create_dir_all(&d).unwrap();
    d
}

/// `systemd-analyze verify` of a unit text, with ExecStart pointing at the test binary (the
/// packaged path does not exist before installation). Returns its stderr: warnings included,
/// since a bad value is only a warning to systemd.
fn verify(text: &str) -> String {
    let d = temp_dir("unit");
    let path = d.join("signal-trace.service");
    std::fs::write(&path, text.replace("/usr/bin/signal-trace", BIN)).unwrap();
    let out = Command::new("systemd-analyze")
        .args(["verify", "--man=no"])
        .arg(&path)
        .output()
        .expect("systemd-analyze (Debian's systemd package) must be installed");
    let err = String::from_utf8_lossy(&out.stderr).into_owned();
    assert!(
        out.status.success() || !err.is_empty(),
        "verify failed silently"
    );
    if !out.status.success() {
        return format!("exit {}: {err}", out.status);
    }
    err
}

fn setting<'a>(text: &'a str, key: &str) -> Vec<&'a str> {
    text.lines()
        .filter_map(|l| l.strip_prefix(key)?.strip_prefix('='))
        .collect()
}

#[test]
fn the_unit_is_hardened_and_systemd_accepts_it() {
    let text = unit_text();
    assert_eq!(verify(&text), "", "systemd-analyze verify complains");
    // The check is not vacuous: a wrong value is reported.
    let broken = text.replace("ProtectSystem=strict", "ProtectSystem=stricter");
    let complaint = verify(&broken);
    assert!(complaint.contains("protect system"), "{complaint}");
    assert_eq!(setting(&text, "NoNewPrivileges"), ["yes"]);
    assert_eq!(setting(&text, "ProtectSystem"), ["strict"]);
    let caps: Vec<&str> = setting(&text, "CapabilityBoundingSet")
        .iter()
        .flat_map(|v| v.split_whitespace())
        .collect();
    for need in ["CAP_BPF", "CAP_PERFMON", "CAP_SYS_ADMIN"] {
        assert!(caps.contains(&need), "{need} missing from {caps:?}");
    }
    for never in [
        "CAP_DAC_OVERRIDE",
        "CAP_NET_ADMIN",
        "CAP_SYS_PTRACE",
        "CAP_SYS_MODULE",
    ] {
        assert!(!caps.contains(&never), "{never} is not needed");
    }
    // The output goes where the service may write.
    let exec = setting(&text, "ExecStart").join(" ");
    let out_dir = "/var/log/signal-trace";
    assert!(exec.contains(&format!("--output {out_dir}/")), "{exec}");
    assert_eq!(setting(&text, "ReadWritePaths"), [out_dir]);
    assert_eq!(setting(&text, "LogsDirectory"), ["signal-trace"]);
}

#[test]
fn version_names_the_version_and_the_commit() {
    let out = Command::new(BIN).arg("--version").output().unwrap();
    let v = String::from_utf8_lossy(&out.stdout);
    assert!(out.status.success());
    assert!(
        v.starts_with(&format!(
            "signal-trace {} (commit ",
            env!("CARGO_PKG_VERSION")
        )),
        "{v}"
    );
    let head = Command::new("git")
        .args(["rev-parse", "--short=12", "HEAD"])
        .current_dir(env!("CARGO_MANIFEST_DIR"))
        .output()
        .unwrap();
    let head = String::from_utf8_lossy(&head.stdout).trim().to_string();
    assert!(!head.is_empty(), "the tests run in a git checkout");
    assert!(
        v.contains(&format!("(commit {head})")),
        "{v} vs HEAD {head}"
    );
}

#[test]
fn man_pages_and_completions_are_generated_from_the_cli() {
    let d = temp_dir("assets");
    let out = Command::new(BIN).arg("assets").arg(&d).output().unwrap();
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    let read = |p: &str| std::fs::read_to_string(d.join(p)).unwrap_or_else(|e| panic!("{p}: {e}"));
    let man = read("man/signal-trace.1");
    assert!(
        man.starts_with(".ie") || man.contains(".TH signal-trace"),
        "{man}"
    );
    assert!(man.contains("\\-\\-format"), "main page lists the options");
    // Every runtime socket, with its default.
    for (flag, default) in [
        ("containerd", "/run/containerd/containerd.sock"),
        ("docker", "/var/run/docker.sock"),
        ("podman", "/run/podman/podman.sock"),
        ("cri", "/var/run/crio/crio.sock"),
    ] {
        let option = format!("\\-\\-{flag}\\-socket");
        let options = man.find(".SH OPTIONS").expect("an OPTIONS section");
        let at = options
            + man[options..]
                .find(&option)
                .unwrap_or_else(|| panic!("main page lacks {option}"));
        let entry = &man[at..man[at..].find(".TP").map_or(man.len(), |end| at + end)];
        assert!(
            entry.contains(&default.replace('-', "\\-")),
            "{option} without its default: {entry}"
        );
    }
    assert!(read("completions/signal-trace.bash").contains("--cri-socket"));
    let explain = read("man/signal-trace-explain.1");
    for flag in ["\\-\\-from", "\\-\\-host", "\\-\\-since", "\\-\\-until"] {
        assert!(explain.contains(flag), "explain page lacks {flag}");
    }
    read("man/signal-trace-inspect.1");
    assert!(read("completions/signal-trace.bash").contains("--since"));
    assert!(read("completions/_signal-trace").contains("--since"));
    assert!(read("completions/signal-trace.fish").contains("-l since"));
    // The hidden command stays out of the help and the pages.
    let help = Command::new(BIN).arg("--help").output().unwrap();
    assert!(!String::from_utf8_lossy(&help.stdout).contains("assets"));
    let _ = std::fs::remove_dir_all(&d);
}
