//! A real systemd for the live tests: a Debian bookworm machine booted with systemd-nspawn by
//! scripts/systemd-up.sh (root file system cached under /var/cache/signal-trace), driven with
//! `nsenter -t LEADER -a systemctl …`. Units are installed in its /etc/systemd/system (a
//! volatile overlay: gone at the next boot); their cgroups are on the host under the machine's
//! payload cgroup: …/signal-trace-systemd/payload/system.slice/NAME.
//!
//! ```ignore
//! let m = Machine::up();
//! m.install_unit("stubborn.service", "[Service]\nExecStart=/bin/sleep 1000\n");
//! m.start("stubborn.service");
//! let pid = m.main_pid("stubborn.service"); // on the host
//! let took = m.stop("stubborn.service");
//! ```
//! A machine this process booted is powered off when the process exits (after the last test);
//! one that was already running is reused and left running.

use std::fs;
use std::path::PathBuf;
use std::process::{Command, Output};
use std::sync::OnceLock;
use std::time::{Duration, Instant};

use super::ctr::run_script;

/// systemd-nspawn's pid (the machine runs while it does).
pub const NSPAWN_PIDFILE: &str = "/run/signal-trace-test/systemd/nspawn.pid";
/// The machine's PID 1 (systemd), as a host pid.
pub const LEADER_PIDFILE: &str = "/run/signal-trace-test/systemd/leader.pid";

/// The running machine.
#[derive(Clone, Debug)]
pub struct Machine {
    /// Host pid of its systemd.
    pub leader: i32,
    /// Its payload cgroup v2 directory on the host: the machine's root cgroup.
    pub payload: PathBuf,
}

fn read_pid(file: &str) -> Option<i32> {
    fs::read_to_string(file).ok()?.trim().parse().ok()
}

fn running(pid: i32) -> bool {
    fs::read_to_string(format!("/proc/{pid}/stat"))
        .map(|s| {
            !s.rsplit(')')
                .next()
                .unwrap_or("")
                .trim_start()
                .starts_with('Z')
        })
        .unwrap_or(false)
}

extern "C" fn power_off() {
    let _ = Command::new("bash")
        .arg(super::ctr::script("systemd-up.sh"))
        .arg("--down")
        .output();
}

/// The cgroup v2 path of a host process, relative to the hierarchy's root.
pub fn cgroup_path(pid: i32) -> Option<String> {
    let text = fs::read_to_string(format!("/proc/{pid}/cgroup")).ok()?;
    text.lines()
        .find_map(|l| l.strip_prefix("0::"))
        .map(str::to_owned)
}

impl Machine {
    /// Boots the machine (scripts/systemd-up.sh) unless it runs, waits until its systemd is up,
    /// and returns it; once per process. A machine booted here is powered off at exit.
    pub fn up() -> Machine {
        static UP: OnceLock<Machine> = OnceLock::new();
        UP.get_or_init(|| {
            super::require_root();
            let was_running = read_pid(NSPAWN_PIDFILE).is_some_and(running)
                && read_pid(LEADER_PIDFILE).is_some_and(running);
            run_script("systemd-up.sh", &[]);
            if !was_running {
                // SAFETY: registers a plain function with no captured state.
                unsafe { libc::atexit(power_off) };
            }
            let leader = read_pid(LEADER_PIDFILE)
                .unwrap_or_else(|| panic!("systemd-up.sh wrote no {LEADER_PIDFILE}"));
            let init_scope =
                cgroup_path(leader).unwrap_or_else(|| panic!("no cgroup v2 for pid {leader}"));
            let payload = super::ctr::cgroup_root()
                .join(init_scope.trim_start_matches('/'))
                .parent()
                .expect("init.scope has a parent")
                .to_path_buf();
            assert!(
                payload.ends_with("payload"),
                "the machine's systemd is in {init_scope}, not in …/payload/init.scope"
            );
            Machine { leader, payload }
        })
        .clone()
    }

    /// `nsenter -t LEADER -a PROGRAM ARGS` in the machine, whatever its outcome.
    pub fn try_run(&self, program: &str, args: &[&str]) -> Output {
        Command::new("nsenter")
            .args(["-t", &self.leader.to_string(), "-a", program])
            .args(args)
            .output()
            .expect("run nsenter (util-linux)")
    }

    /// `systemctl ARGS` in the machine; panics with its output when it fails.
    pub fn systemctl(&self, args: &[&str]) -> Output {
        let out = self.try_run("systemctl", args);
        assert!(
            out.status.success(),
            "systemctl {} failed: {}{}",
            args.join(" "),
            String::from_utf8_lossy(&out.stdout),
            String::from_utf8_lossy(&out.stderr)
        );
        out
    }

    /// Writes /etc/systemd/system/NAME in the machine and reloads systemd.
    pub fn install_unit(&self, name: &str, text: &str) {
        let path = format!("/proc/{}/root/etc/systemd/system/{name}", self.leader);
        fs::write(&path, text).unwrap_or_else(|e| panic!("write {path}: {e}"));
        self.daemon_reload();
    }

    /// Removes /etc/systemd/system/NAME (stopping it first) and reloads systemd.
    pub fn remove_unit(&self, name: &str) {
        let _ = self.try_run("systemctl", &["stop", name]);
        let _ = self.try_run("systemctl", &["reset-failed", name]);
        let _ = fs::remove_file(format!(
            "/proc/{}/root/etc/systemd/system/{name}",
            self.leader
        ));
        self.daemon_reload();
    }

    pub fn daemon_reload(&self) {
        self.systemctl(&["daemon-reload"]);
    }

    pub fn start(&self, unit: &str) {
        self.systemctl(&["start", unit]);
    }

    /// `systemctl stop UNIT` (it returns once the unit stopped); how long it took.
    pub fn stop(&self, unit: &str) -> Duration {
        let start = Instant::now();
        self.systemctl(&["stop", unit]);
        start.elapsed()
    }

    /// `systemctl show -p PROPERTY --value UNIT`.
    pub fn show(&self, unit: &str, property: &str) -> String {
        let out = self.systemctl(&["show", "-p", property, "--value", unit]);
        String::from_utf8_lossy(&out.stdout).trim().to_owned()
    }

    /// The unit's cgroup v2 directory on the host (…/payload/system.slice/UNIT for a service).
    pub fn unit_cgroup(&self, unit: &str) -> PathBuf {
        let inside = self.show(unit, "ControlGroup");
        assert!(!inside.is_empty(), "{unit} has no control group");
        self.payload.join(inside.trim_start_matches('/'))
    }

    /// The unit's main process as a host pid (its MainPID is a pid in the machine).
    pub fn main_pid(&self, unit: &str) -> i32 {
        let inside: i32 = self
            .show(unit, "MainPID")
            .parse()
            .unwrap_or_else(|e| panic!("MainPID of {unit}: {e}"));
        assert!(inside > 0, "{unit} has no main process");
        let procs = self.unit_cgroup(unit).join("cgroup.procs");
        let text =
            fs::read_to_string(&procs).unwrap_or_else(|e| panic!("read {}: {e}", procs.display()));
        text.split_whitespace()
            .filter_map(|p| p.parse::<i32>().ok())
            .find(|pid| {
                fs::read_to_string(format!("/proc/{pid}/status"))
                    .ok()
                    .and_then(|s| {
                        s.lines()
                            .find_map(|l| l.strip_prefix("NSpid:"))
                            .and_then(|v| v.split_whitespace().last()?.parse::<i32>().ok())
                    })
                    == Some(inside)
            })
            .unwrap_or_else(|| panic!("no host pid for {unit}'s main pid {inside} in {text}"))
    }
}
