//! Docker containers for the live tests, on the tests' own dockerd (scripts/docker-up.sh: its
//! socket is [`SOCKET`], its containerd the tests' one, containerd namespace "moby"), never the
//! system's. Containers run the busybox image, with no network unless asked; they are removed
//! on drop. Needs root; fails otherwise.
//!
//! ```ignore
//! let c = DockerContainer::run(&RunOptions::new("web").init().compose("shop", "web"),
//!                              &["sh", "-c", "sleep 1000"]);
//! let took = c.stop(10); // docker stop -t 10: SIGTERM, SIGKILL after 10 s
//! ```

use std::path::PathBuf;
use std::process::{Command, Output};
use std::sync::OnceLock;
use std::time::{Duration, Instant};

use serde_json::Value;

use super::ctr::{random_hex, run_script};

/// The tests' dockerd.
pub const SOCKET: &str = "/run/signal-trace-test/docker.sock";
/// Debian's docker CLI (/usr/local/bin/docker may be another one).
pub const DOCKER: &str = "/usr/bin/docker";
/// The busybox root file system, `docker import`ed.
pub const IMAGE: &str = "localhost/signal-trace/busybox:latest";
/// The containerd namespace of dockerd's containers (on the tests' containerd).
pub const CONTAINERD_NAMESPACE: &str = "moby";

/// Makes sure the tests' dockerd answers with its image (scripts/docker-up.sh, which starts it
/// and the tests' containerd when they do not answer); once per test process.
pub fn up() {
    static UP: OnceLock<()> = OnceLock::new();
    UP.get_or_init(|| {
        super::require_root();
        run_script("docker-up.sh", &[]);
    });
}

/// `docker -H unix://SOCKET ARGS`, whatever its outcome.
pub fn try_docker(args: &[&str]) -> Output {
    Command::new(DOCKER)
        .args(["-H", &format!("unix://{SOCKET}")])
        .args(args)
        .output()
        .unwrap_or_else(|e| panic!("run {DOCKER} (apt-get install docker.io): {e}"))
}

/// Like [`try_docker`]; panics with its output when it fails.
pub fn docker(args: &[&str]) -> Output {
    let out = try_docker(args);
    assert!(
        out.status.success(),
        "docker {} failed: {}",
        args.join(" "),
        String::from_utf8_lossy(&out.stderr)
    );
    out
}

/// How a container is run: `docker run -d --name NAME [OPTIONS] IMAGE CMD`.
#[derive(Clone, Debug)]
pub struct RunOptions {
    /// Its name: the prefix given, a dash and random digits (or exactly what [`compose`] sets).
    ///
    /// [`compose`]: RunOptions::compose
    pub name: String,
    /// `--init`: docker-init (tini) as PID 1, the command its child.
    pub init: bool,
    pub labels: Vec<(String, String)>,
    /// `--network`: "none" unless set (the tests' dockerd has no bridge).
    pub network: String,
    /// Any other `docker run` options, e.g. `--stop-signal=SIGINT`, `--stop-timeout=3`.
    pub extra: Vec<String>,
    pub image: String,
}

impl RunOptions {
    pub fn new(prefix: &str) -> RunOptions {
        RunOptions {
            name: format!("{prefix}-{}", random_hex(4)),
            init: false,
            labels: Vec::new(),
            network: "none".to_owned(),
            extra: Vec::new(),
            image: IMAGE.to_owned(),
        }
    }

    pub fn init(mut self) -> RunOptions {
        self.init = true;
        self
    }

    pub fn label(mut self, key: &str, value: &str) -> RunOptions {
        self.labels.push((key.to_owned(), value.to_owned()));
        self
    }

    /// The labels docker compose puts on a service's first container, and its name
    /// `<project>-<service>-1` (project gets a random suffix so that runs never collide).
    pub fn compose(mut self, project: &str, service: &str) -> RunOptions {
        let project = format!("{project}{}", random_hex(3));
        self.name = format!("{project}-{service}-1");
        for (k, v) in [
            ("com.docker.compose.project", project.as_str()),
            ("com.docker.compose.service", service),
            ("com.docker.compose.container-number", "1"),
            ("com.docker.compose.oneoff", "False"),
        ] {
            self.labels.push((k.to_owned(), v.to_owned()));
        }
        self
    }

    pub fn arg(mut self, arg: &str) -> RunOptions {
        self.extra.push(arg.to_owned());
        self
    }
}

/// A running docker container, removed (`docker rm -f`) on drop.
pub struct DockerContainer {
    pub name: String,
    /// The 64-digit container id.
    pub id: String,
}

impl DockerContainer {
    /// `docker run -d` with `opts` and `cmd`; waits until it runs.
    pub fn run(opts: &RunOptions, cmd: &[&str]) -> DockerContainer {
        up();
        let mut args: Vec<String> = vec![
            "run".into(),
            "-d".into(),
            "--name".into(),
            opts.name.clone(),
            "--network".into(),
            opts.network.clone(),
        ];
        if opts.init {
            args.push("--init".into());
        }
        for (k, v) in &opts.labels {
            args.push("--label".into());
            args.push(format!("{k}={v}"));
        }
        args.extend(opts.extra.iter().cloned());
        args.push(opts.image.clone());
        args.extend(cmd.iter().map(|s| s.to_string()));
        let refs: Vec<&str> = args.iter().map(String::as_str).collect();
        // Made first so that a container created by a failed run is removed too.
        let mut c = DockerContainer {
            name: opts.name.clone(),
            id: String::new(),
        };
        let out = docker(&refs);
        let id = String::from_utf8_lossy(&out.stdout).trim().to_owned();
        assert_eq!(id.len(), 64, "docker run printed no id: {id:?}");
        c.id = id;
        let pid = c.pid();
        assert!(pid > 0, "{} does not run: {}", c.name, c.inspect());
        super::ctr::wait_exec(pid);
        c
    }

    /// `docker inspect`: the container's record.
    pub fn inspect(&self) -> Value {
        let out = docker(&["inspect", &self.name]);
        let v: Value = serde_json::from_slice(&out.stdout).expect("docker inspect prints JSON");
        v[0].clone()
    }

    /// Host pid of its PID 1 (docker-init with --init); 0 once it stopped.
    pub fn pid(&self) -> i32 {
        self.inspect()["State"]["Pid"].as_i64().unwrap_or(0) as i32
    }

    /// Its exit code once it stopped (`None` while it runs).
    pub fn exit_code(&self) -> Option<i64> {
        let v = self.inspect();
        (v["State"]["Running"] == false).then(|| v["State"]["ExitCode"].as_i64().unwrap_or(-1))
    }

    /// The cgroup v2 directory of its PID 1.
    pub fn cgroup_dir(&self) -> PathBuf {
        let pid = self.pid();
        let text = std::fs::read_to_string(format!("/proc/{pid}/cgroup")).expect("read cgroup");
        let rel = text
            .lines()
            .find_map(|l| l.strip_prefix("0::"))
            .expect("a cgroup v2 line")
            .trim_start_matches('/')
            .to_owned();
        super::ctr::cgroup_root().join(rel)
    }

    /// `docker stop -t SECONDS`: the stop signal (SIGTERM unless --stop-signal), SIGKILL after
    /// SECONDS. Returns how long it took.
    pub fn stop(&self, seconds: u32) -> Duration {
        let start = Instant::now();
        docker(&["stop", "-t", &seconds.to_string(), &self.name]);
        start.elapsed()
    }

    /// `docker kill -s SIGNAL`.
    pub fn kill(&self, signal: &str) {
        docker(&["kill", "-s", signal, &self.name]);
    }

    /// Waits until it stopped; false on timeout.
    pub fn wait_stopped(&self, timeout: Duration) -> bool {
        let deadline = Instant::now() + timeout;
        while Instant::now() < deadline {
            if self.exit_code().is_some() {
                return true;
            }
            std::thread::sleep(Duration::from_millis(50));
        }
        false
    }

    pub fn remove(&self) {
        let _ = try_docker(&["rm", "-f", &self.name]);
    }
}

impl Drop for DockerContainer {
    fn drop(&mut self) {
        self.remove();
    }
}
