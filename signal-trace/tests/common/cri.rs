//! Kubernetes-style pods on the tests' containerd, driven through its CRI plugin the way the
//! kubelet drives it: RunPodSandbox, CreateContainer, StartContainer, StopContainer(timeout),
//! RemoveContainer, StopPodSandbox, RemovePodSandbox, with the labels and annotations the
//! kubelet sets. Pods use the host's network namespace (no CNI), the sandbox image is
//! localhost/signal-trace/pause:latest and containers run the busybox image; cgroups are laid
//! out as the kubelet's cgroupfs driver lays them: /kubepods/besteffort/pod<uid>/<container id>.
//!
//! ```ignore
//! let pod = CriPod::run(PodSpec::new("web"));
//! let c = pod.start_container("app", &["sh", "-c", "sleep 1000"]);
//! let took = pod.stop_container(&c, 1); // SIGTERM, SIGKILL after 1 s
//! ```
//! The pod and its containers are stopped and removed on drop.

use std::collections::HashMap;
use std::path::PathBuf;
use std::time::{Duration, Instant};

use containerd_client::tonic::transport::Channel;
use k8s_cri::v1::runtime_service_client::RuntimeServiceClient;
use k8s_cri::v1::{
    ContainerConfig, ContainerMetadata, ContainerState, ContainerStatusRequest,
    CreateContainerRequest, ImageSpec, LinuxContainerConfig, LinuxContainerSecurityContext,
    LinuxPodSandboxConfig, LinuxSandboxSecurityContext, NamespaceMode, NamespaceOption,
    PodSandboxConfig, PodSandboxMetadata, RemoveContainerRequest, RemovePodSandboxRequest,
    RunPodSandboxRequest, StartContainerRequest, StopContainerRequest, StopPodSandboxRequest,
};

use super::ctr::{self, random_hex, random_uuid};

/// The kubelet's annotation with the pod's terminationGracePeriodSeconds, on each container.
pub const GRACE_ANNOTATION: &str = "io.kubernetes.pod.terminationGracePeriod";

/// What a pod is made of.
#[derive(Clone, Debug)]
pub struct PodSpec {
    pub name: String,
    pub namespace: String,
    pub uid: String,
    /// terminationGracePeriodSeconds: put on every container as [`GRACE_ANNOTATION`].
    pub grace_period: i64,
    /// The pod's cgroup, e.g. /kubepods/besteffort/pod<uid>.
    pub cgroup_parent: String,
    /// Extra labels and annotations of the sandbox and of every container.
    pub labels: Vec<(String, String)>,
    pub annotations: Vec<(String, String)>,
}

impl PodSpec {
    /// A BestEffort pod named `<prefix>-<random>` in namespace `ns-<random>`, grace period 30 s.
    pub fn new(prefix: &str) -> PodSpec {
        let tag = random_hex(4);
        let uid = random_uuid();
        PodSpec {
            name: format!("{prefix}-{tag}"),
            namespace: format!("ns-{tag}"),
            cgroup_parent: format!("/kubepods/besteffort/pod{uid}"),
            uid,
            grace_period: 30,
            labels: Vec::new(),
            annotations: Vec::new(),
        }
    }

    fn pod_labels(&self) -> HashMap<String, String> {
        let mut l: HashMap<String, String> = self.labels.iter().cloned().collect();
        l.insert("io.kubernetes.pod.name".into(), self.name.clone());
        l.insert("io.kubernetes.pod.namespace".into(), self.namespace.clone());
        l.insert("io.kubernetes.pod.uid".into(), self.uid.clone());
        l
    }
}

/// A container of a [`CriPod`].
#[derive(Clone, Debug)]
pub struct CriContainer {
    pub id: String,
    pub name: String,
    /// Host pid of its init.
    pub pid: i32,
    /// Its cgroup v2 directory.
    pub dir: PathBuf,
}

impl CriContainer {
    /// Its cgroup id: the inode of its cgroup v2 directory.
    pub fn cgroup_id(&self) -> u64 {
        super::inode(&self.dir)
    }
}

/// A CRI container's status: state, exit code, reason ("Completed", "Error"...).
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Status {
    pub state: ContainerState,
    pub exit_code: i32,
    pub reason: String,
}

/// A running pod sandbox; stopped and removed, with its containers, on drop.
pub struct CriPod {
    pub spec: PodSpec,
    /// The sandbox id (also the pause container's containerd id).
    pub id: String,
    rt: tokio::runtime::Runtime,
    client: RuntimeServiceClient<Channel>,
    config: PodSandboxConfig,
    containers: std::cell::RefCell<Vec<String>>,
}

impl CriPod {
    /// Runs a pod sandbox on the tests' containerd (started when it does not answer).
    pub fn run(spec: PodSpec) -> CriPod {
        ctr::require_containerd();
        let rt = tokio::runtime::Builder::new_current_thread()
            .enable_all()
            .build()
            .expect("tokio runtime");
        let channel = rt
            .block_on(containerd_client::connect(ctr::SOCKET))
            .unwrap_or_else(|e| panic!("connect to {}: {e}", ctr::SOCKET));
        let client = RuntimeServiceClient::new(channel);
        let mut annotations: HashMap<String, String> = spec.annotations.iter().cloned().collect();
        annotations.insert("kubernetes.io/config.source".into(), "api".into());
        let host = NamespaceOption {
            network: NamespaceMode::Node as i32,
            pid: NamespaceMode::Container as i32,
            ipc: NamespaceMode::Pod as i32,
            ..Default::default()
        };
        let config = PodSandboxConfig {
            metadata: Some(PodSandboxMetadata {
                name: spec.name.clone(),
                uid: spec.uid.clone(),
                namespace: spec.namespace.clone(),
                attempt: 0,
            }),
            // The host's UTS namespace too (host network): runc refuses a hostname there.
            hostname: String::new(),
            labels: spec.pod_labels(),
            annotations,
            linux: Some(LinuxPodSandboxConfig {
                cgroup_parent: spec.cgroup_parent.clone(),
                security_context: Some(LinuxSandboxSecurityContext {
                    namespace_options: Some(host),
                    ..Default::default()
                }),
                ..Default::default()
            }),
            ..Default::default()
        };
        let id = rt
            .block_on(client.clone().run_pod_sandbox(RunPodSandboxRequest {
                config: Some(config.clone()),
                runtime_handler: String::new(),
            }))
            .unwrap_or_else(|e| panic!("RunPodSandbox {}: {e}", spec.name))
            .into_inner()
            .pod_sandbox_id;
        CriPod {
            spec,
            id,
            rt,
            client,
            config,
            containers: Default::default(),
        }
    }

    /// Creates and starts container `name` running `argv` (the image's entrypoint replaced),
    /// labelled and annotated as the kubelet does, and waits until it runs.
    pub fn start_container(&self, name: &str, argv: &[&str]) -> CriContainer {
        let mut labels: HashMap<String, String> = self.spec.pod_labels();
        labels.insert("io.kubernetes.container.name".into(), name.to_owned());
        let mut annotations: HashMap<String, String> =
            self.spec.annotations.iter().cloned().collect();
        for (k, v) in [
            ("io.kubernetes.container.hash", random_hex(4)),
            ("io.kubernetes.container.restartCount", "0".to_owned()),
            (
                "io.kubernetes.container.terminationMessagePath",
                "/dev/termination-log".to_owned(),
            ),
            (
                "io.kubernetes.container.terminationMessagePolicy",
                "File".to_owned(),
            ),
            (GRACE_ANNOTATION, self.spec.grace_period.to_string()),
        ] {
            annotations.insert(k.to_owned(), v);
        }
        let config = ContainerConfig {
            metadata: Some(ContainerMetadata {
                name: name.to_owned(),
                attempt: 0,
            }),
            image: Some(ImageSpec {
                image: ctr::IMAGE.to_owned(),
                ..Default::default()
            }),
            command: argv.iter().map(|s| s.to_string()).collect(),
            labels,
            annotations,
            linux: Some(LinuxContainerConfig {
                security_context: Some(LinuxContainerSecurityContext {
                    namespace_options: self
                        .config
                        .linux
                        .as_ref()
                        .and_then(|l| l.security_context.as_ref())
                        .and_then(|s| s.namespace_options.clone()),
                    ..Default::default()
                }),
                ..Default::default()
            }),
            ..Default::default()
        };
        let id = self
            .rt
            .block_on(
                self.client
                    .clone()
                    .create_container(CreateContainerRequest {
                        pod_sandbox_id: self.id.clone(),
                        config: Some(config),
                        sandbox_config: Some(self.config.clone()),
                    }),
            )
            .unwrap_or_else(|e| panic!("CreateContainer {name}: {e}"))
            .into_inner()
            .container_id;
        self.containers.borrow_mut().push(id.clone());
        self.rt
            .block_on(self.client.clone().start_container(StartContainerRequest {
                container_id: id.clone(),
            }))
            .unwrap_or_else(|e| panic!("StartContainer {name}: {e}"));
        let pid = self.pid(&id);
        ctr::wait_exec(pid);
        let dir = ctr::cgroup_root()
            .join(self.spec.cgroup_parent.trim_start_matches('/'))
            .join(&id);
        assert!(dir.is_dir(), "no cgroup directory {}", dir.display());
        CriContainer {
            id,
            name: name.to_owned(),
            pid,
            dir,
        }
    }

    /// The host pid of container `id`'s init (ContainerStatus, verbose).
    pub fn pid(&self, id: &str) -> i32 {
        let resp = self
            .rt
            .block_on(
                self.client
                    .clone()
                    .container_status(ContainerStatusRequest {
                        container_id: id.to_owned(),
                        verbose: true,
                    }),
            )
            .unwrap_or_else(|e| panic!("ContainerStatus {id}: {e}"))
            .into_inner();
        let info: serde_json::Value = resp
            .info
            .get("info")
            .and_then(|i| serde_json::from_str(i).ok())
            .unwrap_or_else(|| panic!("ContainerStatus {id} has no verbose info"));
        info["pid"]
            .as_i64()
            .filter(|&p| p > 0)
            .unwrap_or_else(|| panic!("container {id} has no pid: {info}")) as i32
    }

    /// Container `id`'s status.
    pub fn status(&self, id: &str) -> Status {
        let s = self
            .rt
            .block_on(
                self.client
                    .clone()
                    .container_status(ContainerStatusRequest {
                        container_id: id.to_owned(),
                        verbose: false,
                    }),
            )
            .unwrap_or_else(|e| panic!("ContainerStatus {id}: {e}"))
            .into_inner()
            .status
            .unwrap_or_else(|| panic!("ContainerStatus {id}: no status"));
        Status {
            state: ContainerState::try_from(s.state).unwrap_or(ContainerState::ContainerUnknown),
            exit_code: s.exit_code,
            reason: s.reason,
        }
    }

    /// StopContainer with `timeout` seconds, as the kubelet does with the grace period left:
    /// the runtime sends the image's stop signal (SIGTERM), then SIGKILL after `timeout`.
    /// Returns how long the call took (it returns once the container has exited).
    pub fn stop_container(&self, c: &CriContainer, timeout: i64) -> Duration {
        let start = Instant::now();
        self.rt
            .block_on(self.client.clone().stop_container(StopContainerRequest {
                container_id: c.id.clone(),
                timeout,
            }))
            .unwrap_or_else(|e| panic!("StopContainer {} (timeout {timeout}): {e}", c.name));
        start.elapsed()
    }

    /// RemoveContainer (stops it first if it runs).
    pub fn remove_container(&self, id: &str) {
        let _ = self.rt.block_on(
            self.client
                .clone()
                .remove_container(RemoveContainerRequest {
                    container_id: id.to_owned(),
                }),
        );
        self.containers.borrow_mut().retain(|c| c != id);
    }

    /// Removes the containers, stops and removes the sandbox; errors are ignored (drop).
    pub fn remove(&self) {
        let ids: Vec<String> = self.containers.borrow().clone();
        for id in ids {
            let _ = self
                .rt
                .block_on(self.client.clone().stop_container(StopContainerRequest {
                    container_id: id.clone(),
                    timeout: 0,
                }));
            self.remove_container(&id);
        }
        let _ = self
            .rt
            .block_on(self.client.clone().stop_pod_sandbox(StopPodSandboxRequest {
                pod_sandbox_id: self.id.clone(),
            }));
        let _ = self.rt.block_on(
            self.client
                .clone()
                .remove_pod_sandbox(RemovePodSandboxRequest {
                    pod_sandbox_id: self.id.clone(),
                }),
        );
        // The pod's cgroup and its parents, when empty (the kubelet removes them itself).
        let root = ctr::cgroup_root();
        let parent = PathBuf::from(self.spec.cgroup_parent.trim_start_matches('/'));
        for dir in parent.ancestors().filter(|p| !p.as_os_str().is_empty()) {
            let _ = std::fs::remove_dir(root.join(dir));
        }
    }
}

impl Drop for CriPod {
    fn drop(&mut self) {
        self.remove();
    }
}
