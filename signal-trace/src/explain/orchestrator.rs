//! Who decided a stop: the sender of a shutdown signal or a SIGKILL, judged from its program and
//! ancestry as a container runtime, a systemd manager or someone else; and, with the target's
//! workload, the orchestrator a finding names.
//!
//! The chains this reads (`sender.exe`, `sender.args`, `sender.ancestors`):
//! - `docker stop`, `docker kill`: `runc … --log …/io.containerd.runtime.v2.task/moby/ID/… kill
//!   ID 15`, child of `containerd-shim-runc-v2`, child of PID 1 (or containerd);
//! - a CRI StopContainer (the kubelet): the same with the namespace `k8s.io`;
//! - `ctr task kill`, nerdctl: the same with their namespace (`default`…);
//! - `podman stop`: `runc kill ID 15` (or crun), child of `podman`;
//! - `systemctl stop`: `systemd` itself (PID 1 of the host or of a container, `systemd --user`).
//!
//! Names are hints, not proof: an exe is the path exec opened (anyone may run a copy called
//! `runc`), a comm is what a process calls itself (`prctl`, no exec needed). The exe's file name
//! is the stronger of the two, so it is what counts: the sender is judged by its exe alone, an
//! ancestor by its exe and by its comm only when its exe is unknown. A sender without an exe
//! (a recording older than the field, `--no-process-identity`, a kernel thread) is not judged:
//! its finding keeps what the target's workload says.

use super::*;
use crate::event::record::{Ancestor, Sender};

/// Who decided a signal, judged from its sender.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub(crate) enum Decider {
    /// The record does not say what the sender runs.
    #[default]
    Unknown,
    /// The kernel (the OOM killer, a namespace init's exit, a fault), the process itself, or
    /// another process of its container: the workload's own doing, which names nobody.
    Workload,
    /// A container runtime, acting for `orchestrator` (containerd when nothing in its chain says
    /// more); `via` says which processes show it: "runc under containerd-shim-runc-v2
    /// (namespace moby)".
    Runtime {
        orchestrator: Orchestrator,
        via: String,
    },
    /// A systemd manager: PID 1 of the host or of a container, or `systemd --user`.
    Systemd,
    /// Anyone else: a shell, `kill`, a script, a program of its own.
    Other,
}

impl Decider {
    /// What evidence adds to the signal's line when a runtime's chain decided:
    /// "; a docker stop: runc under containerd-shim-runc-v2 (namespace moby)".
    pub(crate) fn evidence_text(&self) -> Option<String> {
        match self {
            Decider::Runtime { orchestrator, via } => {
                Some(format!("; a {} stop: {via}", orchestrator.as_str()))
            }
            _ => None,
        }
    }
}

/// What a process of a sender's chain is, by name.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
enum Part {
    /// runc or crun: the low-level runtime, run by whoever decided.
    Runc,
    /// containerd-shim, containerd-shim-runc-v2…: containerd's per-container process.
    Shim,
    Containerd,
    Dockerd,
    Podman,
    /// podman's (and CRI-O's) container monitor.
    Conmon,
    Kubelet,
    Systemd,
    Other,
}

fn part(name: &[u8]) -> Part {
    match name {
        b"runc" | b"crun" => Part::Runc,
        b"containerd" => Part::Containerd,
        b"dockerd" => Part::Dockerd,
        b"podman" => Part::Podman,
        b"conmon" => Part::Conmon,
        b"kubelet" => Part::Kubelet,
        b"systemd" => Part::Systemd,
        n if n.starts_with(b"containerd-shim") => Part::Shim,
        _ => Part::Other,
    }
}

/// The file name of an exe path; a binary replaced since it started reads "… (deleted)".
fn basename(exe: &[u8]) -> &[u8] {
    let exe = exe.strip_suffix(b" (deleted)").unwrap_or(exe);
    exe.rsplit(|&b| b == b'/').next().unwrap_or(exe)
}

/// An ancestor's name: its exe's file name, or its comm when the exe is unknown.
fn ancestor_name(a: &Ancestor) -> Option<&[u8]> {
    match (&a.exe, &a.comm) {
        (Some(exe), _) => Some(basename(exe.as_bytes())),
        (None, Some(comm)) => Some(comm.bytes()),
        (None, None) => None,
    }
}

/// The containerd namespace a runtime process works in, from its own arguments: a shim's
/// `-namespace NS`, or runc's `--log …/io.containerd.runtime.v2.task/NS/ID/log.json` and
/// `--root …/runc/NS` (`…/runtime-runc/NS` under dockerd). Only a name containerd would accept.
fn namespace(args: &[RawText]) -> Option<String> {
    let mut from_root = None;
    for (i, a) in args.iter().enumerate() {
        let a = a.as_bytes();
        // `-flag value`, `--flag value`, `-flag=value` or `--flag=value`.
        let Some(a) = a.strip_prefix(b"-") else {
            continue;
        };
        let a = a.strip_prefix(b"-").unwrap_or(a);
        let (flag, value) = match a.iter().position(|&b| b == b'=') {
            Some(eq) => (&a[..eq], Some(&a[eq + 1..])),
            None => (a, args.get(i + 1).map(RawText::as_bytes)),
        };
        let ns = match (flag, value) {
            (b"namespace", Some(v)) => Some(v),
            (b"log", Some(v)) => after(v, b"io.containerd.runtime.v2.task"),
            (b"root", Some(v)) => {
                from_root = after(v, b"runc").or_else(|| after(v, b"runtime-runc"));
                None
            }
            _ => None,
        };
        if let Some(ns) = ns.filter(|ns| valid_namespace(ns)) {
            return Some(String::from_utf8_lossy(ns).into_owned());
        }
    }
    from_root
        .filter(|ns| valid_namespace(ns))
        .map(|ns| String::from_utf8_lossy(ns).into_owned())
}

/// The path component after the component `dir`.
fn after<'a>(path: &'a [u8], dir: &[u8]) -> Option<&'a [u8]> {
    let mut parts = path.split(|&b| b == b'/');
    parts.find(|p| *p == dir)?;
    parts.next().filter(|p| !p.is_empty())
}

/// containerd's rule for a namespace: letters and digits, with single `.`, `_` or `-` between,
/// at most 76 bytes.
fn valid_namespace(ns: &[u8]) -> bool {
    let sep = |b: u8| matches!(b, b'.' | b'_' | b'-');
    !ns.is_empty()
        && ns.len() <= 76
        && ns.iter().all(|&b| b.is_ascii_alphanumeric() || sep(b))
        && !sep(ns[0])
        && !sep(ns[ns.len() - 1])
        && !ns.windows(2).any(|w| sep(w[0]) && sep(w[1]))
}

/// The orchestrator a containerd namespace belongs to: dockerd's `moby`, the CRI plugin's
/// `k8s.io`, anyone else's (ctr, nerdctl) containerd's own.
fn by_namespace(ns: Option<&str>) -> Orchestrator {
    match ns {
        Some("moby") => Orchestrator::Docker,
        Some("k8s.io") => Orchestrator::Kubernetes,
        _ => Orchestrator::Containerd,
    }
}

/// Judges a sender by its program and ancestry (see the module's comment on trust).
///
/// - A systemd manager (exe `…/systemd`) is [`Decider::Systemd`].
/// - kubelet, dockerd, podman or conmon themselves are their orchestrator.
/// - runc, crun, a containerd shim or containerd are a runtime acting for the first of their
///   ancestors (past other such runtime processes) that is podman or conmon (podman), dockerd
///   (docker) or the kubelet (kubernetes); otherwise for the containerd namespace their own
///   arguments name: `moby` is docker, `k8s.io` kubernetes, any other (or none) containerd.
/// - Any other program is [`Decider::Other`], unless the kubelet is among its ancestors.
pub(crate) fn judge(s: &Sender) -> Decider {
    let Some(exe) = &s.exe else {
        return Decider::Unknown;
    };
    let name = basename(exe.as_bytes());
    let shown = |n: &[u8]| String::from_utf8_lossy(n).into_owned();
    let runtime = |orchestrator, via: String| Decider::Runtime { orchestrator, via };
    match part(name) {
        Part::Systemd => Decider::Systemd,
        Part::Kubelet => runtime(Orchestrator::Kubernetes, shown(name)),
        Part::Dockerd => runtime(Orchestrator::Docker, shown(name)),
        Part::Podman | Part::Conmon => runtime(Orchestrator::Podman, shown(name)),
        Part::Runc | Part::Shim | Part::Containerd => {
            let mut via = shown(name);
            for a in &s.ancestors {
                let Some(n) = ancestor_name(a) else { break };
                let decided = match part(n) {
                    Part::Runc | Part::Shim | Part::Containerd => None,
                    Part::Podman | Part::Conmon => Some(Orchestrator::Podman),
                    Part::Dockerd => Some(Orchestrator::Docker),
                    Part::Kubelet => Some(Orchestrator::Kubernetes),
                    Part::Systemd | Part::Other => break,
                };
                let _ = write!(via, " under {}", shown(n));
                if let Some(o) = decided {
                    return runtime(o, via);
                }
            }
            let ns = s.args.as_deref().and_then(namespace);
            if let Some(ns) = &ns {
                let _ = write!(via, " (namespace {ns})");
            }
            runtime(by_namespace(ns.as_deref()), via)
        }
        Part::Other => {
            let kubelet = s
                .ancestors
                .iter()
                .filter_map(ancestor_name)
                .any(|n| part(n) == Part::Kubelet);
            if kubelet {
                runtime(
                    Orchestrator::Kubernetes,
                    format!("{} under kubelet", shown(name)),
                )
            } else {
                Decider::Other
            }
        }
    }
}

/// Who decided the signal of `g`: the kernel, the process itself and its own container are the
/// workload's doing; a systemd manager counts wherever it runs (PID 1 of a container stops
/// that container's units); anyone else is judged by [`judge`].
pub(crate) fn decider(g: &Generate) -> Decider {
    let target = g.target.pid.unwrap_or(g.target.tid);
    // si_code > 0: raised by the kernel (SI_KERNEL, a fault), whatever task it ran in.
    if g.si_code > 0 || g.sender.pid == target {
        return Decider::Workload;
    }
    let d = judge(&g.sender);
    let same_container = match (&g.sender.container, &g.target.container) {
        (Some(s), Some(t)) => s.id == t.id,
        _ => false,
    };
    if same_container && d != Decider::Systemd {
        return Decider::Workload;
    }
    d
}

/// The orchestrator a container's runtime and labels name: Kubernetes for a pod's container
/// (or a kubepods cgroup, or CRI-O), else the runtime.
pub(crate) fn of_container(c: &Container) -> Orchestrator {
    match c.runtime.as_str() {
        _ if c.pod.is_some() => Orchestrator::Kubernetes,
        "kubernetes" | "cri-o" => Orchestrator::Kubernetes,
        "docker" => Orchestrator::Docker,
        "podman" => Orchestrator::Podman,
        _ => Orchestrator::Containerd,
    }
}

/// Who stops a container whose workload names `workload`, given who decided its stop signals
/// (the shutdown signal, then the SIGKILL):
/// - a systemd manager: systemd;
/// - a runtime: the workload's orchestrator, or the runtime's when the workload only knows plain
///   containerd (a container the runtimes' APIs did not name);
/// - only someone else (a `kill` from a login shell): nobody's stop policy, null;
/// - otherwise (not known, the kernel, the container itself): the workload's.
pub(crate) fn for_container<'a>(
    workload: Orchestrator,
    deciders: impl IntoIterator<Item = &'a Decider>,
) -> Option<Orchestrator> {
    let mut foreign = false;
    for d in deciders {
        match d {
            Decider::Systemd => return Some(Orchestrator::Systemd),
            Decider::Runtime { orchestrator, .. } => {
                return Some(match workload {
                    Orchestrator::Containerd => *orchestrator,
                    known => known,
                })
            }
            Decider::Other => foreign = true,
            Decider::Unknown | Decider::Workload => {}
        }
    }
    (!foreign).then_some(workload)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn ancestor(pid: u32, comm: &str, exe: Option<&str>) -> Ancestor {
        Ancestor {
            pid,
            comm: Some(Comm::new(comm)),
            exe: exe.map(RawText::from),
        }
    }

    fn sender(exe: &str, args: &[&str], ancestors: Vec<Ancestor>) -> Sender {
        let comm = exe.rsplit('/').next().unwrap_or(exe);
        Sender {
            pid: 100,
            tid: 100,
            comm: Comm::new(comm),
            exe: Some(exe.into()),
            args: Some(args.iter().map(|&a| a.into()).collect()),
            ancestors,
            ..Sender::default()
        }
    }

    const ID: &str = "4e988c80cb05fbde22532af0ae89f517244d3db6bf11d039e0534448183377b4";

    /// `runc … kill ID 15` as a containerd shim runs it, for namespace `ns` (the arguments seen
    /// from Docker 20.10 and containerd 1.6's CRI plugin).
    fn runc_args(root: &str, ns: &str) -> Vec<String> {
        vec![
            "runc".into(),
            "--root".into(),
            format!("{root}/{ns}"),
            "--log".into(),
            format!("/run/containerd/io.containerd.runtime.v2.task/{ns}/{ID}/log.json"),
            "--log-format".into(),
            "json".into(),
            "kill".into(),
            ID.into(),
            "15".into(),
        ]
    }

    fn under_shim(args: &[String], shim_parent: Ancestor) -> Sender {
        let args: Vec<&str> = args.iter().map(String::as_str).collect();
        sender(
            "/usr/sbin/runc",
            &args,
            vec![
                ancestor(
                    50,
                    "containerd-shim",
                    Some("/usr/bin/containerd-shim-runc-v2"),
                ),
                shim_parent,
            ],
        )
    }

    fn host_init() -> Ancestor {
        ancestor(1, "systemd", Some("/usr/lib/systemd/systemd"))
    }

    fn runtime(o: Orchestrator, via: &str) -> Decider {
        Decider::Runtime {
            orchestrator: o,
            via: via.into(),
        }
    }

    #[test]
    fn chains_name_who_decided() {
        use Orchestrator::*;
        let docker_root = "/run/docker/runtime-runc";
        let cases: Vec<(&str, Sender, Decider)> = vec![
            (
                "docker stop: runc under a shim of namespace moby",
                under_shim(&runc_args(docker_root, "moby"), host_init()),
                runtime(
                    Docker,
                    "runc under containerd-shim-runc-v2 (namespace moby)",
                ),
            ),
            (
                "the same where the shim's parent is containerd",
                under_shim(
                    &runc_args(docker_root, "moby"),
                    ancestor(40, "containerd", Some("/usr/bin/containerd")),
                ),
                runtime(
                    Docker,
                    "runc under containerd-shim-runc-v2 under containerd (namespace moby)",
                ),
            ),
            (
                "CRI StopContainer: namespace k8s.io",
                under_shim(&runc_args("/run/containerd/runc", "k8s.io"), host_init()),
                runtime(
                    Kubernetes,
                    "runc under containerd-shim-runc-v2 (namespace k8s.io)",
                ),
            ),
            (
                "ctr task kill: namespace default",
                under_shim(&runc_args("/run/containerd/runc", "default"), host_init()),
                runtime(
                    Containerd,
                    "runc under containerd-shim-runc-v2 (namespace default)",
                ),
            ),
            (
                "the namespace from --root alone",
                sender(
                    "/usr/sbin/runc",
                    &[
                        "runc",
                        "--root=/run/containerd/runc/k8s.io",
                        "kill",
                        ID,
                        "9",
                    ],
                    vec![host_init()],
                ),
                runtime(Kubernetes, "runc (namespace k8s.io)"),
            ),
            (
                "a shim itself, with -namespace",
                sender(
                    "/usr/bin/containerd-shim-runc-v2",
                    &["containerd-shim-runc-v2", "-namespace", "moby", "-id", ID],
                    vec![host_init()],
                ),
                runtime(Docker, "containerd-shim-runc-v2 (namespace moby)"),
            ),
            (
                "podman stop: runc under podman under a shell",
                sender(
                    "/usr/bin/runc",
                    &["/usr/bin/runc", "kill", ID, "15"],
                    vec![
                        ancestor(60, "podman", Some("/usr/bin/podman")),
                        ancestor(30, "bash", Some("/usr/bin/bash")),
                        host_init(),
                    ],
                ),
                runtime(Podman, "runc under podman"),
            ),
            (
                "crun under conmon",
                sender(
                    "/usr/bin/crun",
                    &["crun", "kill", ID, "15"],
                    vec![ancestor(60, "conmon", Some("/usr/bin/conmon")), host_init()],
                ),
                runtime(Podman, "crun under conmon"),
            ),
            (
                "podman itself",
                sender("/usr/bin/podman", &["podman", "stop", "web"], vec![]),
                runtime(Podman, "podman"),
            ),
            (
                "a shim whose exe is unknown is named by its comm",
                {
                    let mut s = under_shim(&runc_args(docker_root, "moby"), host_init());
                    s.ancestors[0].exe = None;
                    s
                },
                runtime(Docker, "runc under containerd-shim (namespace moby)"),
            ),
            (
                "the host's PID 1",
                sender("/usr/lib/systemd/systemd", &["/sbin/init"], vec![]),
                Decider::Systemd,
            ),
            (
                "PID 1 of a systemd-nspawn container",
                sender(
                    "/usr/lib/systemd/systemd",
                    &["/usr/lib/systemd/systemd"],
                    vec![
                        ancestor(70, "systemd-nspawn", Some("/usr/bin/systemd-nspawn")),
                        ancestor(1, "process_api", None),
                    ],
                ),
                Decider::Systemd,
            ),
            (
                "systemd --user",
                sender(
                    "/usr/lib/systemd/systemd",
                    &["/usr/lib/systemd/systemd", "--user"],
                    vec![host_init()],
                ),
                Decider::Systemd,
            ),
            (
                "a binary replaced since it started",
                sender("/usr/lib/systemd/systemd (deleted)", &[], vec![]),
                Decider::Systemd,
            ),
            (
                "a user's kill from a shell under sshd",
                sender(
                    "/usr/bin/kill",
                    &["kill", "-TERM", "4242"],
                    vec![
                        ancestor(30, "bash", Some("/usr/bin/bash")),
                        ancestor(20, "sshd", Some("/usr/sbin/sshd")),
                        ancestor(10, "sshd", Some("/usr/sbin/sshd")),
                        host_init(),
                    ],
                ),
                Decider::Other,
            ),
            (
                "a cron script's kill",
                sender(
                    "/usr/bin/bash",
                    &["bash", "/etc/cron.daily/stop-app"],
                    vec![
                        ancestor(31, "sh", Some("/usr/bin/dash")),
                        ancestor(21, "cron", Some("/usr/sbin/cron")),
                        host_init(),
                    ],
                ),
                Decider::Other,
            ),
            (
                "systemd is every process's ancestor: it decides only when it sends",
                sender("/usr/bin/pkill", &["pkill", "app"], vec![host_init()]),
                Decider::Other,
            ),
            (
                "a shell script calling itself kubelet: its exe says bash",
                sender(
                    "/usr/bin/kill",
                    &["kill", "4242"],
                    vec![
                        ancestor(30, "kubelet", Some("/usr/bin/bash")),
                        ancestor(20, "sshd", Some("/usr/sbin/sshd")),
                        host_init(),
                    ],
                ),
                Decider::Other,
            ),
            (
                "a sender calling itself systemd: its exe says bash",
                Sender {
                    comm: Comm::new("systemd"),
                    ..sender("/usr/bin/bash", &["bash", "-c", "kill 4242"], vec![])
                },
                Decider::Other,
            ),
            (
                "a helper of the kubelet",
                sender(
                    "/usr/bin/kill",
                    &["kill", "4242"],
                    vec![
                        ancestor(30, "sh", Some("/bin/sh")),
                        ancestor(20, "kubelet", Some("/usr/bin/kubelet")),
                        host_init(),
                    ],
                ),
                runtime(Kubernetes, "kill under kubelet"),
            ),
            (
                "a hand-run runc under a login shell: containerd's tool, nobody's namespace",
                sender(
                    "/usr/sbin/runc",
                    &["runc", "kill", ID, "15"],
                    vec![ancestor(30, "bash", Some("/usr/bin/bash")), host_init()],
                ),
                runtime(Containerd, "runc"),
            ),
            (
                "a namespace containerd would refuse is not one",
                sender(
                    "/usr/bin/containerd-shim-runc-v2",
                    &["containerd-shim-runc-v2", "-namespace", "moby\n\x1b[2J"],
                    vec![],
                ),
                runtime(Containerd, "containerd-shim-runc-v2"),
            ),
        ];
        for (what, s, want) in cases {
            assert_eq!(judge(&s), want, "{what}");
        }
    }

    #[test]
    fn no_program_is_no_verdict() {
        // A recording older than the field, --no-process-identity, a kernel thread: the comm
        // alone proves nothing, whatever it claims.
        for comm in ["runc", "systemd", "kubelet", "bash"] {
            let s = Sender {
                comm: Comm::new(comm),
                ancestors: vec![ancestor(50, "containerd-shim", None)],
                ..Sender::default()
            };
            assert_eq!(judge(&s), Decider::Unknown, "{comm}");
        }
    }

    #[test]
    fn namespaces_come_from_the_runtimes_own_arguments() {
        let args = |v: &[&str]| v.iter().map(|&a| RawText::from(a)).collect::<Vec<_>>();
        assert_eq!(
            namespace(&args(&["shim", "--namespace=k8s.io"])).as_deref(),
            Some("k8s.io")
        );
        // --log wins over --root.
        assert_eq!(
            namespace(&args(&[
                "runc",
                "--root",
                "/run/containerd/runc/default",
                "--log",
                "/x/io.containerd.runtime.v2.task/moby/ID/log.json"
            ]))
            .as_deref(),
            Some("moby")
        );
        assert_eq!(namespace(&args(&["runc", "--root", "/run/runc"])), None);
        assert_eq!(namespace(&args(&["runc", "--log"])), None);
        assert_eq!(namespace(&args(&["runc", "-namespace", "a..b"])), None);
        assert_eq!(namespace(&args(&["runc", "-namespace", "-x"])), None);
        assert_eq!(
            namespace(&args(&["runc", "kill", "namespace", "moby"])),
            None
        );
        assert_eq!(
            namespace(&args(&["runc", "-namespace", "my-ns.1"])).as_deref(),
            Some("my-ns.1")
        );
    }

    #[test]
    fn the_workload_and_the_deciders_name_the_orchestrator() {
        use Orchestrator::*;
        let docker = runtime(Docker, "runc");
        let plain = runtime(Containerd, "runc");
        let podman = runtime(Podman, "runc under podman");
        let cases: Vec<(Orchestrator, Vec<Decider>, Option<Orchestrator>)> = vec![
            // Not known: the workload's answer, as before senders had programs.
            (Docker, vec![Decider::Unknown], Some(Docker)),
            (Docker, vec![], Some(Docker)),
            // The kernel's SIGKILL (OOM, a namespace init's exit) accuses nobody.
            (Kubernetes, vec![Decider::Workload], Some(Kubernetes)),
            // A runtime: the workload's, refined when it only knew plain containerd.
            (Docker, vec![docker.clone()], Some(Docker)),
            (Containerd, vec![docker.clone()], Some(Docker)),
            (Containerd, vec![podman.clone()], Some(Podman)),
            (Containerd, vec![plain.clone()], Some(Containerd)),
            (Kubernetes, vec![docker.clone()], Some(Kubernetes)),
            (Docker, vec![plain.clone()], Some(Docker)),
            // Someone else's kill: nobody's stop policy.
            (Docker, vec![Decider::Other], None),
            (Docker, vec![Decider::Other, Decider::Workload], None),
            // A runtime's SIGKILL after someone's SIGTERM: the runtime stopped it.
            (Docker, vec![Decider::Other, docker], Some(Docker)),
            (Podman, vec![Decider::Systemd], Some(Systemd)),
        ];
        for (workload, deciders, want) in cases {
            assert_eq!(
                for_container(workload, &deciders),
                want,
                "{workload:?} {deciders:?}"
            );
        }
    }
}
