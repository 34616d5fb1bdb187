//! A client for the Kubernetes Container Runtime Interface: asks a CRI runtime (CRI-O, or
//! containerd's CRI plugin) which containers exist, as the kubelet sees them.
//!
//! The kubelet talks to its runtime over gRPC on a Unix socket (CRI-O:
//! `/var/run/crio/crio.sock`; containerd serves CRI on its own socket) with the CRI v1
//! `runtime.v1.RuntimeService`. Two of its calls are used, through the bindings of the
//! `k8s-cri` crate (on the same tonic and prost as `containerd-client`):
//!
//! - `Version`, once per connection: its `runtime_name` (`cri-o`, `containerd`) says which
//!   runtime answers, and so what the records call it.
//! - `ListContainers`: every container the runtime still has (running or exited, until the
//!   kubelet removes it) with its id (the full 64 hex digits, the same id the runtime puts in
//!   the container's cgroup path: `crio-<id>.scope`, `/kubepods/<qos>/pod<uid>/<id>`), its
//!   CRI metadata name, its image, and the labels and annotations the kubelet gave it in
//!   CreateContainer: `io.kubernetes.pod.name`, `io.kubernetes.pod.namespace`,
//!   `io.kubernetes.container.name` among the labels, and the pod's
//!   `io.kubernetes.pod.terminationGracePeriod` among the annotations (the CRI requires a
//!   runtime to return the annotations unaltered). A request takes one filter, whose id
//!   is matched exactly (CRI-O and containerd also accept a unique prefix), so a few ids are
//!   asked one request each and more in one unfiltered listing.
//!
//! As with [`crate::workload::containerd`], tracing must never stall on a hung runtime: the
//! client runs on a dedicated thread with a single-threaded Tokio runtime, every query
//! (connecting, `Version` and all listings) is bounded by one timeout, [`Cri::list`] waits for
//! its answer with the same bound, and a failure drops the connection so the next query
//! connects anew (a runtime that restarted is picked up again).

use std::path::{Path, PathBuf};
use std::time::Duration;

use containerd_client::tonic::transport::Channel;
use containerd_client::tonic::Status;
use k8s_cri::v1::runtime_service_client::RuntimeServiceClient;
use k8s_cri::v1::{Container, ContainerFilter, ListContainersRequest, VersionRequest};

use crate::workload::cgroup::Runtime;
use crate::workload::containerd::{error_chain, ContainerSource, RuntimeContainer, RuntimeError};
use crate::workload::worker::{bounded, Query, Worker};

/// Where CRI-O listens by default.
pub const DEFAULT_SOCKET: &str = "/var/run/crio/crio.sock";

/// The default bound on one query (connecting, `Version` and the listings).
pub const DEFAULT_TIMEOUT: Duration = Duration::from_secs(1);

/// The runtime's name in errors, before it has said which it is.
const ENGINE: &str = "cri";

/// The CRI API version asked for in `Version`.
const CRI_VERSION: &str = "v1";

/// Up to this many ids are asked one filtered request each; more in one unfiltered listing.
const MAX_FILTERED_IDS: usize = 8;

/// Largest response accepted (the kubelet's own limit is 16 MiB).
const MAX_MESSAGE_BYTES: usize = 16 << 20;

/// The runtime a CRI `Version` answer names: `cri-o` is CRI-O, `containerd` is containerd's
/// CRI plugin, `docker` is cri-dockerd in front of dockerd. Any other runtime is reported as
/// [`Runtime::Kubernetes`], a Kubernetes container whose runtime is not otherwise known.
pub fn runtime_from_name(name: &str) -> Runtime {
    match name {
        "cri-o" => Runtime::CriO,
        "containerd" => Runtime::Containerd,
        "docker" => Runtime::Docker,
        _ => Runtime::Kubernetes,
    }
}

/// A CRI `Container` as a [`RuntimeContainer`] of `runtime`: the CRI metadata name is the
/// container's name, labels and annotations are taken as they are. The image is the one the
/// user named (`user_specified_image`, CRI 1.29 and later), else the image of the container's
/// spec (often an image id when the kubelet created it), else the runtime's image reference.
/// A runtime without namespaces in this sense: `namespace` stays empty.
pub fn runtime_container(c: Container, runtime: Runtime) -> RuntimeContainer {
    let image = c
        .image
        .map(|spec| {
            if spec.user_specified_image.is_empty() {
                spec.image
            } else {
                spec.user_specified_image
            }
        })
        .filter(|image| !image.is_empty())
        .unwrap_or(c.image_ref);
    RuntimeContainer {
        runtime,
        namespace: String::new(),
        id: c.id,
        name: c.metadata.map(|m| m.name).filter(|n| !n.is_empty()),
        image,
        labels: c.labels.into_iter().collect(),
        annotations: c.annotations.into_iter().collect(),
    }
}

/// A CRI RuntimeService client with a bounded wait on every query.
///
/// Keeps one connection open between queries and reconnects after any failure.
pub struct Cri {
    worker: Worker,
}

impl Cri {
    /// Starts a client for the CRI runtime at `socket`; each query is bounded by `timeout`.
    /// Does not connect yet: the first query does.
    pub fn new(socket: impl AsRef<Path>, timeout: Duration) -> Result<Cri, RuntimeError> {
        let socket = socket.as_ref();
        let rt = tokio::runtime::Builder::new_current_thread()
            .enable_all()
            .build()
            .map_err(RuntimeError::Spawn)?;
        let client = Client {
            rt,
            socket: socket.to_path_buf(),
            timeout,
            connection: None,
        };
        Ok(Cri {
            worker: Worker::start(ENGINE, socket, timeout, client)?,
        })
    }

    /// Lists the runtime's containers: all of them when `ids` is `None`, otherwise those with
    /// one of the given ids. Returns within about the configured timeout whatever the runtime
    /// does.
    pub fn list(&self, ids: Option<&[String]>) -> Result<Vec<RuntimeContainer>, RuntimeError> {
        self.worker.list(ids)
    }
}

impl ContainerSource for Cri {
    fn lookup(&mut self, ids: &[String]) -> Result<Vec<RuntimeContainer>, RuntimeError> {
        self.worker.lookup(ids, MAX_FILTERED_IDS)
    }

    /// CRI-O's own layouts (`crio-<id>.scope`, `crio-<id>`), and the Kubernetes layouts that
    /// do not name the runtime (the kubelet's cgroupfs driver). containerd's own layouts are
    /// left to its native client, which also knows containers made outside Kubernetes.
    fn serves(&self, runtime: Runtime) -> bool {
        matches!(runtime, Runtime::CriO | Runtime::Kubernetes)
    }
}

/// The client thread's state.
struct Client {
    rt: tokio::runtime::Runtime,
    socket: PathBuf,
    timeout: Duration,
    /// The open connection and the runtime its `Version` named, dropped after any failure.
    connection: Option<(Channel, Runtime)>,
}

impl Query for Client {
    fn run(&mut self, ids: Option<&[String]>) -> Result<Vec<RuntimeContainer>, RuntimeError> {
        let query = query(&mut self.connection, &self.socket, ids);
        let result = bounded(&self.rt, ENGINE, &self.socket, self.timeout, query);
        if result.is_err() {
            self.connection = None;
        }
        result
    }
}

/// Connects and asks `Version` if `open` holds no connection, then lists the containers.
async fn query(
    open: &mut Option<(Channel, Runtime)>,
    socket: &Path,
    ids: Option<&[String]>,
) -> Result<Vec<RuntimeContainer>, RuntimeError> {
    let (channel, runtime) = match open {
        Some(connection) => connection.clone(),
        None => {
            // A plain gRPC channel over the Unix socket; nothing in it is containerd's.
            let channel =
                containerd_client::connect(socket)
                    .await
                    .map_err(|e| RuntimeError::Connect {
                        engine: ENGINE,
                        socket: socket.to_path_buf(),
                        reason: error_chain(&e),
                    })?;
            let version = RuntimeServiceClient::new(channel.clone())
                .version(VersionRequest {
                    version: CRI_VERSION.to_owned(),
                })
                .await
                .map_err(|status| call_error("version", status))?
                .into_inner();
            let connection = (channel, runtime_from_name(&version.runtime_name));
            *open = Some(connection.clone());
            connection
        }
    };
    let mut client =
        RuntimeServiceClient::new(channel).max_decoding_message_size(MAX_MESSAGE_BYTES);
    let filters: Vec<Option<ContainerFilter>> = match ids {
        None => vec![None],
        Some(ids) => ids.iter().map(|id| Some(id_filter(id))).collect(),
    };
    let mut found = Vec::new();
    for filter in filters {
        let containers = client
            .list_containers(ListContainersRequest { filter })
            .await
            .map_err(|status| call_error("containers list", status))?
            .into_inner()
            .containers;
        found.extend(
            containers
                .into_iter()
                .map(|c| runtime_container(c, runtime)),
        );
    }
    Ok(found)
}

/// The filter that selects the container with this id.
fn id_filter(id: &str) -> ContainerFilter {
    ContainerFilter {
        id: id.to_owned(),
        ..ContainerFilter::default()
    }
}

fn call_error(call: &'static str, status: Status) -> RuntimeError {
    RuntimeError::Call {
        engine: ENGINE,
        call,
        status: Box::new(status),
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::workload::cgroup::ContainerRef;
    use crate::workload::containers::{
        container_record, ANNOTATION_GRACE_PERIOD, LABEL_CONTAINER_NAME, LABEL_POD_NAME,
        LABEL_POD_NAMESPACE,
    };
    use crate::workload::worker::REPLY_GRACE;
    use k8s_cri::v1::{ContainerMetadata, ImageSpec};
    use std::collections::HashMap;
    use std::time::Instant;

    const ID: &str = "3ab1c5843010d1377022e5040c601c82fe47ba6c05cb30340ae0c210a52ec9bb";

    fn map(pairs: &[(&str, &str)]) -> HashMap<String, String> {
        pairs
            .iter()
            .map(|(k, v)| ((*k).to_owned(), (*v).to_owned()))
            .collect()
    }

    /// A container as CRI-O lists one the kubelet created (field values from `crictl ps -o
    /// json` on a kubeadm node).
    fn kubelet_container() -> Container {
        Container {
            id: ID.to_owned(),
            pod_sandbox_id: "9f2e0c7d41b85a6e".to_owned(),
            metadata: Some(ContainerMetadata {
                name: "app".to_owned(),
                attempt: 2,
            }),
            image: Some(ImageSpec {
                image: "sha256:4a2b1c".to_owned(),
                user_specified_image: "registry.example/app:1".to_owned(),
                ..ImageSpec::default()
            }),
            image_ref: "registry.example/app@sha256:77aa".to_owned(),
            image_id: "sha256:4a2b1c".to_owned(),
            state: 1,
            created_at: 1_700_000_000_000_000_000,
            labels: map(&[
                (LABEL_POD_NAME, "web-0"),
                (LABEL_POD_NAMESPACE, "shop"),
                (LABEL_CONTAINER_NAME, "app"),
                (
                    "io.kubernetes.pod.uid",
                    "0358379a-44b0-4f55-a3d6-9be487c1e499",
                ),
            ]),
            annotations: map(&[
                (ANNOTATION_GRACE_PERIOD, "45"),
                ("io.kubernetes.container.restartCount", "2"),
            ]),
        }
    }

    fn cref(runtime: Runtime) -> ContainerRef {
        ContainerRef {
            id: ID.to_owned(),
            runtime,
            pod_uid: None,
            qos: None,
            plain: false,
        }
    }

    #[test]
    fn runtime_names() {
        assert_eq!(runtime_from_name("cri-o"), Runtime::CriO);
        assert_eq!(runtime_from_name("containerd"), Runtime::Containerd);
        assert_eq!(runtime_from_name("docker"), Runtime::Docker);
        assert_eq!(runtime_from_name("CRI-O"), Runtime::Kubernetes);
        assert_eq!(runtime_from_name(""), Runtime::Kubernetes);
    }

    #[test]
    fn a_kubelet_container_gives_labels_annotations_and_grace() {
        let meta = runtime_container(kubelet_container(), Runtime::CriO);
        assert_eq!(meta.runtime, Runtime::CriO);
        assert_eq!(meta.id, ID);
        assert_eq!(meta.namespace, "");
        assert_eq!(meta.name.as_deref(), Some("app"));
        assert_eq!(meta.image, "registry.example/app:1");
        assert_eq!(meta.labels.len(), 4);
        assert_eq!(
            meta.labels.get(LABEL_POD_NAME).map(String::as_str),
            Some("web-0")
        );
        assert_eq!(
            meta.annotations
                .get(ANNOTATION_GRACE_PERIOD)
                .map(String::as_str),
            Some("45")
        );
        assert_eq!(meta.annotations.len(), 2);

        // what the records carry: the CRI-O runtime named by the answer, even where the
        // cgroup path (cgroupfs driver) did not name one
        let record = container_record(&cref(Runtime::Kubernetes), Some(&meta));
        assert_eq!(record.id, ID);
        assert_eq!(record.runtime, "cri-o");
        assert_eq!(record.name.as_deref(), Some("app"));
        assert_eq!(record.pod.as_deref(), Some("web-0"));
        assert_eq!(record.namespace.as_deref(), Some("shop"));
        assert_eq!(record.image.as_deref(), Some("registry.example/app:1"));
        assert_eq!(record.grace_period_s, Some(45));
        assert_eq!(record.compose, None);
    }

    #[test]
    fn the_image_falls_back_to_the_spec_then_the_reference() {
        let mut c = kubelet_container();
        c.image.as_mut().unwrap().user_specified_image.clear();
        assert_eq!(
            runtime_container(c.clone(), Runtime::CriO).image,
            "sha256:4a2b1c"
        );
        c.image = Some(ImageSpec::default());
        assert_eq!(
            runtime_container(c.clone(), Runtime::CriO).image,
            "registry.example/app@sha256:77aa"
        );
        c.image = None;
        c.image_ref.clear();
        assert_eq!(runtime_container(c, Runtime::CriO).image, "");
    }

    #[test]
    fn missing_metadata_gives_an_id_only_container() {
        // A container made outside the kubelet (crictl create with a bare config), or a
        // runtime that leaves the optional messages out.
        let c = Container {
            id: ID.to_owned(),
            ..Container::default()
        };
        let meta = runtime_container(c, Runtime::Containerd);
        assert_eq!(
            meta,
            RuntimeContainer {
                runtime: Runtime::Containerd,
                id: ID.to_owned(),
                ..RuntimeContainer::default()
            }
        );
        let record = container_record(&cref(Runtime::Kubernetes), Some(&meta));
        assert_eq!(record.runtime, "containerd");
        assert_eq!(
            (record.name, record.pod, record.namespace),
            (None, None, None)
        );
        assert_eq!((record.image, record.grace_period_s), (None, None));

        // an empty metadata name is no name, and the container-name label wins over it
        let mut c = kubelet_container();
        c.metadata = Some(ContainerMetadata::default());
        c.labels.remove(LABEL_CONTAINER_NAME);
        assert_eq!(runtime_container(c, Runtime::CriO).name, None);
        let mut c = kubelet_container();
        c.metadata.as_mut().unwrap().name = "app-meta".to_owned();
        let meta = runtime_container(c, Runtime::CriO);
        assert_eq!(meta.name.as_deref(), Some("app-meta"));
        let record = container_record(&cref(Runtime::CriO), Some(&meta));
        assert_eq!(record.name.as_deref(), Some("app"));
    }

    #[test]
    fn a_grace_period_that_is_no_number_is_no_grace_period() {
        for bad in ["", "thirty", "-", "1e3", "99999999999999999999999"] {
            let mut c = kubelet_container();
            c.annotations
                .insert(ANNOTATION_GRACE_PERIOD.to_owned(), bad.to_owned());
            let meta = runtime_container(c, Runtime::CriO);
            // kept as the runtime gave it
            assert_eq!(meta.annotations[ANNOTATION_GRACE_PERIOD], bad);
            let record = container_record(&cref(Runtime::CriO), Some(&meta));
            assert_eq!(record.grace_period_s, None, "{bad:?}");
        }
        let mut c = kubelet_container();
        c.annotations
            .insert(ANNOTATION_GRACE_PERIOD.to_owned(), " 0 ".to_owned());
        let meta = runtime_container(c, Runtime::CriO);
        let record = container_record(&cref(Runtime::CriO), Some(&meta));
        assert_eq!(record.grace_period_s, Some(0));
    }

    #[test]
    fn hostile_strings_are_kept_as_data() {
        // Whoever creates a pod chooses these; escaping is the output's job, not the client's.
        let hostile = "web\u{1b}]0;pwned\u{7}\n\u{1b}[2J\\x41\u{202e}\u{0}";
        let mut c = kubelet_container();
        c.metadata.as_mut().unwrap().name = hostile.to_owned();
        c.labels
            .insert(LABEL_POD_NAME.to_owned(), hostile.to_owned());
        c.labels.insert(hostile.to_owned(), hostile.to_owned());
        c.annotations
            .insert(ANNOTATION_GRACE_PERIOD.to_owned(), hostile.to_owned());
        c.image.as_mut().unwrap().user_specified_image = hostile.to_owned();
        let meta = runtime_container(c, Runtime::CriO);
        assert_eq!(meta.name.as_deref(), Some(hostile));
        assert_eq!(meta.image, hostile);
        assert_eq!(meta.labels[LABEL_POD_NAME], hostile);
        assert_eq!(meta.labels[hostile], hostile);
        assert_eq!(meta.annotations[ANNOTATION_GRACE_PERIOD], hostile);
        let record = container_record(&cref(Runtime::CriO), Some(&meta));
        assert_eq!(record.pod.as_deref(), Some(hostile));
        assert_eq!(record.grace_period_s, None);
    }

    #[test]
    fn serves_cri_o_and_unnamed_kubernetes_layouts() {
        let client = Cri::new("/nonexistent/crio.sock", DEFAULT_TIMEOUT).expect("start client");
        assert!(client.serves(Runtime::CriO));
        assert!(client.serves(Runtime::Kubernetes));
        for other in [Runtime::Containerd, Runtime::Docker, Runtime::Podman] {
            assert!(!client.serves(other), "{other:?}");
        }
    }

    #[test]
    fn id_filters_select_one_container_each() {
        let f = id_filter(ID);
        assert_eq!(f.id, ID);
        assert_eq!((f.state, f.pod_sandbox_id.as_str()), (None, ""));
        assert!(f.label_selector.is_empty());
    }

    #[test]
    fn missing_socket_fails_fast_with_context() {
        let dir = std::env::temp_dir().join(format!("cri-missing-{}", std::process::id()));
        let socket = dir.join("crio.sock");
        let client = Cri::new(&socket, DEFAULT_TIMEOUT).expect("start client");
        let started = Instant::now();
        let err = client.list(None).expect_err("no runtime there");
        assert!(
            started.elapsed() < DEFAULT_TIMEOUT,
            "took {:?}",
            started.elapsed()
        );
        assert!(matches!(err, RuntimeError::Connect { .. }), "{err:?}");
        let text = err.to_string();
        assert!(text.starts_with("cannot connect to cri at "), "{text}");
        assert!(text.contains(&socket.display().to_string()), "{text}");
        assert_eq!(text.matches("No such file").count(), 1, "{text}");
    }

    #[test]
    fn hung_runtime_is_cut_off_by_the_timeout() {
        // A listener that accepts connections but never answers.
        let dir = std::env::temp_dir().join(format!("cri-hung-{}", std::process::id()));
        let _ = std::fs::remove_dir_all(&dir);
        std::fs::create_dir_all(&dir).expect("create dir");
        let socket = dir.join("crio.sock");
        let listener = std::os::unix::net::UnixListener::bind(&socket).expect("bind");
        let timeout = Duration::from_millis(300);
        let mut client = Cri::new(&socket, timeout).expect("start client");
        // a few ids (one request each) and many (one listing): one bound for the whole query
        let few = vec![ID.to_owned(); 2];
        let many = vec![ID.to_owned(); MAX_FILTERED_IDS + 1];
        for ids in [&few, &many] {
            let started = Instant::now();
            let err = client.lookup(ids).expect_err("nothing answers");
            let took = started.elapsed();
            assert!(matches!(err, RuntimeError::Timeout { .. }), "{err:?}");
            assert!(
                err.to_string()
                    .starts_with(&format!("cri at {} did not answer", socket.display())),
                "{err}"
            );
            assert!(took >= timeout, "gave up after {took:?}");
            assert!(
                took < timeout + REPLY_GRACE + Duration::from_millis(200),
                "took {took:?}"
            );
        }
        drop(listener);
        let _ = std::fs::remove_dir_all(&dir);
    }

    #[test]
    fn lookup_of_no_ids_asks_nothing() {
        let mut client = Cri::new("/nonexistent/crio.sock", DEFAULT_TIMEOUT).expect("start client");
        assert_eq!(client.lookup(&[]).expect("no query"), Vec::new());
    }
}
