//! Docker containers for the live tests, on the tests' own dockerd (scripts/docker-up.sh: its
//! socket is [`SOCKET`], its containerd the tests' one, containerd namespace "moby"), never the
//! system's; or on the tests' podman (scripts/podman-up.sh), through its own CLI or through
//! its Docker-compatible API with the docker CLI ([`Engine`]). Containers run the busybox
//! image, with no network unless asked; they are removed on drop. Needs root; fails otherwise.
//!
//! ```ignore
//! let c = DockerContainer::run(&RunOptions::new("web").init().compose("shop", "web"),
//!                              &["sh", "-c", "sleep 1000"]);
//! let took = c.stop(10); // docker stop -t 10: SIGTERM, SIGKILL after 10 s
//! let p = DockerContainer::run(&RunOptions::new("web").engine(Engine::Podman), &["sleep", "1000"]);
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

/// The tests' podman's Docker-compatible API (`podman system service`).
pub const PODMAN_SOCKET: &str = "/run/signal-trace-test/podman.sock";
/// The tests' podman configuration: run podman with these in its environment.
pub const PODMAN_ENV: [(&str, &str); 2] = [
    (
        "CONTAINERS_CONF",
        "/run/signal-trace-test/podman/containers.conf",
    ),
    (
        "CONTAINERS_STORAGE_CONF",
        "/run/signal-trace-test/podman/storage.conf",
    ),
];

/// Which engine runs a container; all take the same CLI options used here.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Engine {
    /// /usr/bin/docker on the tests' dockerd.
    Docker,
    /// The podman CLI with the tests' podman configuration.
    Podman,
    /// /usr/bin/docker on podman's Docker-compatible API ([`PODMAN_SOCKET`]).
    PodmanDockerApi,
}

impl Engine {
    /// Makes sure the engine is ready (scripts/docker-up.sh or scripts/podman-up.sh, which
    /// start what does not answer); once per test process and engine.
    pub fn up(self) {
        static DOCKER_UP: OnceLock<()> = OnceLock::new();
        static PODMAN_UP: OnceLock<()> = OnceLock::new();
        let (once, script) = match self {
            Engine::Docker => (&DOCKER_UP, "docker-up.sh"),
            Engine::Podman | Engine::PodmanDockerApi => (&PODMAN_UP, "podman-up.sh"),
        };
        once.get_or_init(|| {
            super::require_root();
            run_script(script, &[]);
        });
    }

    /// The engine's CLI, ready for its arguments.
    pub fn command(self) -> Command {
        match self {
            Engine::Docker => {
                let mut c = Command::new(DOCKER);
                c.args(["-H", &format!("unix://{SOCKET}")]);
                c
            }
            Engine::Podman => {
                let mut c = Command::new("podman");
                c.envs(PODMAN_ENV);
                c
            }
            Engine::PodmanDockerApi => {
                let mut c = Command::new(DOCKER);
                c.args(["-H", &format!("unix://{PODMAN_SOCKET}")]);
                c
            }
        }
    }

    /// The CLI with ARGS, whatever its outcome.
    pub fn try_run(self, args: &[&str]) -> Output {
        self.command()
            .args(args)
            .output()
            .unwrap_or_else(|e| panic!("run {self:?} (apt-get install docker.io podman): {e}"))
    }

    /// Like [`try_run`](Self::try_run); panics with its output when it fails.
    pub fn run(self, args: &[&str]) -> Output {
        let out = self.try_run(args);
        assert!(
            out.status.success(),
            "{self:?} {} failed: {}",
            args.join(" "),
            String::from_utf8_lossy(&out.stderr)
        );
        out
    }
}

/// Makes sure the tests' dockerd answers with its image (scripts/docker-up.sh, which starts it
/// and the tests' containerd when they do not answer); once per test process.
pub fn up() {
    Engine::Docker.up();
}

/// `docker -H unix://SOCKET ARGS`, whatever its outcome.
pub fn try_docker(args: &[&str]) -> Output {
    Engine::Docker.try_run(args)
}

/// Like [`try_docker`]; panics with its output when it fails.
pub fn docker(args: &[&str]) -> Output {
    Engine::Docker.run(args)
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
    pub engine: Engine,
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
            engine: Engine::Docker,
        }
    }

    pub fn engine(mut self, engine: Engine) -> RunOptions {
        self.engine = engine;
        self
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

/// A running container, removed (`docker rm -f`) on drop.
pub struct DockerContainer {
    pub name: String,
    /// The 64-digit container id.
    pub id: String,
    pub engine: Engine,
}

impl DockerContainer {
    /// `docker run -d` with `opts` and `cmd`; waits until it runs.
    pub fn run(opts: &RunOptions, cmd: &[&str]) -> DockerContainer {
        opts.engine.up();
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
            engine: opts.engine,
        };
        let out = c.engine.run(&refs);
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
        let out = self.engine.run(&["inspect", &self.name]);
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
        self.engine
            .run(&["stop", "-t", &seconds.to_string(), &self.name]);
        start.elapsed()
    }

    /// `docker kill -s SIGNAL`.
    pub fn kill(&self, signal: &str) {
        self.engine.run(&["kill", "-s", signal, &self.name]);
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
        let _ = self.engine.try_run(&["rm", "-f", &self.name]);
    }
}

impl Drop for DockerContainer {
    fn drop(&mut self) {
        self.remove();
    }
}
