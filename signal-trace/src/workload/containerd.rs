//! A client for the node's container runtime: asks containerd which containers exist and
//! which labels they carry.
//!
//! containerd serves its API over gRPC on a Unix socket (`/run/containerd/containerd.sock`).
//! The Kubernetes CRI plugin keeps its containers in the containerd namespace `k8s.io` and
//! labels each with `io.kubernetes.pod.name`, `io.kubernetes.pod.namespace` and
//! `io.kubernetes.container.name`; containers made with `ctr run --label ...` or nerdctl live
//! in other namespaces (`default`, ...) with whatever labels they were given. [`Containerd`]
//! lists namespaces (Namespaces.List) and the containers of each (Containers.List), using the
//! bindings of the `containerd-client` crate (tonic and prost).
//!
//! Tracing must never stall on a hung runtime: every query is bounded by a timeout (one second
//! by default) covering connecting and all calls. The gRPC client is asynchronous while its
//! callers (the trace loop's event handler) are not and may run inside a Tokio runtime of their
//! own, so the client runs on a dedicated thread with a single-threaded Tokio runtime and
//! [`Containerd::list`] waits for its answer with the same bound.

use std::collections::BTreeMap;
use std::io;
use std::path::{Path, PathBuf};
use std::time::Duration;

use containerd_client::services::v1::containers_client::ContainersClient;
use containerd_client::services::v1::namespaces_client::NamespacesClient;
use containerd_client::services::v1::{ListContainersRequest, ListNamespacesRequest};
use containerd_client::tonic::metadata::MetadataValue;
use containerd_client::tonic::transport::Channel;
use containerd_client::tonic::{Request, Status};

use crate::workload::cgroup::Runtime;
use crate::workload::worker::{bounded, Query, Worker};

/// Where containerd listens by default.
pub const DEFAULT_SOCKET: &str = "/run/containerd/containerd.sock";

/// The default bound on one query (connecting, listing namespaces and their containers).
pub const DEFAULT_TIMEOUT: Duration = Duration::from_secs(1);

/// The runtime's name in errors.
const ENGINE: &str = "containerd";

/// The container extension in which containerd's CRI plugin keeps what the kubelet asked for
/// (the CRI container config, with the kubelet's annotations), as JSON.
pub const CRI_METADATA_EXTENSION: &str = "io.cri-containerd.container.metadata";

/// The gRPC metadata key that selects a containerd namespace.
const NAMESPACE_HEADER: &str = "containerd-namespace";

/// Above this many ids, one unfiltered listing is cheaper than a filter per id.
const MAX_FILTERED_IDS: usize = 64;

/// Largest response accepted: container listings carry each container's full OCI spec.
const MAX_MESSAGE_BYTES: usize = 64 << 20;

/// One container as the runtime knows it.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct RuntimeContainer {
    /// The runtime that answered for it.
    pub runtime: Runtime,
    /// The containerd namespace it lives in (`k8s.io` for Kubernetes pods); empty for
    /// runtimes without namespaces.
    pub namespace: String,
    /// The container id (the same id its cgroup path carries).
    pub id: String,
    /// The runtime's own name for it (`docker run --name`), when it has one.
    pub name: Option<String>,
    /// The image reference it was created from.
    pub image: String,
    /// Its labels (Kubernetes metadata for CRI containers, Compose's for Docker).
    pub labels: BTreeMap<String, String>,
    /// The annotations the kubelet gave a CRI container (among them the pod's
    /// `io.kubernetes.pod.terminationGracePeriod`); empty elsewhere.
    pub annotations: BTreeMap<String, String>,
}

/// Why a runtime query failed.
#[derive(Debug, thiserror::Error)]
pub enum RuntimeError {
    /// The socket could not be reached (containerd not running, wrong path, no permission).
    #[error("cannot connect to {engine} at {socket}: {reason}")]
    Connect {
        /// Which runtime: `"containerd"`, `"docker"`, `"podman"`.
        engine: &'static str,
        /// The socket path tried.
        socket: PathBuf,
        /// The transport error with its causes.
        reason: String,
    },
    /// The query as a whole took longer than allowed.
    #[error("{engine} at {socket} did not answer within {timeout:?}")]
    Timeout {
        /// Which runtime.
        engine: &'static str,
        /// The socket path queried.
        socket: PathBuf,
        /// The bound that was exceeded.
        timeout: Duration,
    },
    /// A gRPC runtime (containerd, a CRI runtime) answered a call with an error.
    #[error("{engine} {call} failed: {status}")]
    Call {
        /// Which runtime: `"containerd"`, `"cri"`.
        engine: &'static str,
        /// Which call failed, e.g. `"namespaces list"`.
        call: &'static str,
        /// The gRPC status returned.
        status: Box<Status>,
    },
    /// A runtime's HTTP API answered with an error status or a body that is not what its
    /// documentation says.
    #[error("{engine} {call} failed: {reason}")]
    Api {
        /// Which runtime.
        engine: &'static str,
        /// Which call, e.g. `"containers list"`.
        call: &'static str,
        /// The status and the runtime's message, or the parse error.
        reason: String,
    },
    /// The thread that talks to the runtime could not be started.
    #[error("cannot start the container runtime client thread: {0}")]
    Spawn(#[source] io::Error),
    /// The thread that talks to the runtime has stopped.
    #[error("the container runtime client thread has stopped")]
    WorkerGone,
}

/// Something that knows containers by id: containerd, Docker, podman, a CRI runtime, or a
/// stand-in in tests.
pub trait ContainerSource: Send {
    /// The containers with any of the given ids, in every namespace. Ids the runtime does
    /// not know are simply absent from the answer.
    fn lookup(&mut self, ids: &[String]) -> Result<Vec<RuntimeContainer>, RuntimeError>;

    /// Whether this source may know containers whose cgroup path names `runtime`: only those
    /// are asked of it. containerd knows its own layouts and the Kubernetes layouts that do
    /// not name the runtime.
    fn serves(&self, runtime: Runtime) -> bool {
        matches!(runtime, Runtime::Containerd | Runtime::Kubernetes)
    }
}

/// A containerd API client with a bounded wait on every query.
///
/// Keeps one connection open between queries and reconnects after any failure, so a
/// containerd that restarts is picked up again by the next query.
pub struct Containerd {
    worker: Worker,
}

impl Containerd {
    /// Starts a client for the containerd socket at `socket`; each query is bounded by
    /// `timeout`. Does not connect yet: the first query does.
    pub fn new(socket: impl AsRef<Path>, timeout: Duration) -> Result<Containerd, RuntimeError> {
        let socket = socket.as_ref();
        let rt = tokio::runtime::Builder::new_current_thread()
            .enable_all()
            .build()
            .map_err(RuntimeError::Spawn)?;
        let client = Client {
            rt,
            socket: socket.to_path_buf(),
            timeout,
            channel: None,
        };
        Ok(Containerd {
            worker: Worker::start(ENGINE, socket, timeout, client)?,
        })
    }

    /// Lists containers in every namespace: all of them when `ids` is `None`, otherwise only
    /// those with one of the given ids. Returns within about the configured timeout whatever
    /// containerd does.
    pub fn list(&self, ids: Option<&[String]>) -> Result<Vec<RuntimeContainer>, RuntimeError> {
        self.worker.list(ids)
    }
}

impl ContainerSource for Containerd {
    fn lookup(&mut self, ids: &[String]) -> Result<Vec<RuntimeContainer>, RuntimeError> {
        self.worker.lookup(ids, MAX_FILTERED_IDS)
    }
}

/// The client thread's state.
struct Client {
    rt: tokio::runtime::Runtime,
    socket: PathBuf,
    timeout: Duration,
    /// The open connection, dropped after any failure.
    channel: Option<Channel>,
}

impl Query for Client {
    fn run(&mut self, ids: Option<&[String]>) -> Result<Vec<RuntimeContainer>, RuntimeError> {
        let query = query(&mut self.channel, &self.socket, ids);
        let result = bounded(&self.rt, ENGINE, &self.socket, self.timeout, query);
        if result.is_err() {
            self.channel = None;
        }
        result
    }
}

/// Connects if `open` holds no connection, then lists namespaces and their containers.
async fn query(
    open: &mut Option<Channel>,
    socket: &Path,
    ids: Option<&[String]>,
) -> Result<Vec<RuntimeContainer>, RuntimeError> {
    let channel = match open {
        Some(channel) => channel.clone(),
        None => {
            let channel =
                containerd_client::connect(socket)
                    .await
                    .map_err(|e| RuntimeError::Connect {
                        engine: ENGINE,
                        socket: socket.to_path_buf(),
                        reason: error_chain(&e),
                    })?;
            *open = Some(channel.clone());
            channel
        }
    };
    let namespaces = NamespacesClient::new(channel.clone())
        .list(ListNamespacesRequest::default())
        .await
        .map_err(|status| call_error("namespaces list", status))?
        .into_inner()
        .namespaces;
    let filters = ids.map(id_filters).unwrap_or_default();
    let mut client = ContainersClient::new(channel).max_decoding_message_size(MAX_MESSAGE_BYTES);
    let mut found = Vec::new();
    for namespace in namespaces {
        // containerd only accepts namespace names that are valid header values; skip any
        // other rather than lose the rest of the answer.
        let Ok(value) = MetadataValue::try_from(namespace.name.as_str()) else {
            continue;
        };
        let mut request = Request::new(ListContainersRequest {
            filters: filters.clone(),
        });
        request.metadata_mut().insert(NAMESPACE_HEADER, value);
        let containers = client
            .list(request)
            .await
            .map_err(|status| call_error("containers list", status))?
            .into_inner()
            .containers;
        found.extend(containers.into_iter().map(|c| {
            let annotations = c
                .extensions
                .get(CRI_METADATA_EXTENSION)
                .map(|any| cri_annotations(&any.value))
                .unwrap_or_default();
            RuntimeContainer {
                runtime: Runtime::Containerd,
                namespace: namespace.name.clone(),
                id: c.id,
                name: None,
                image: c.image,
                labels: c.labels.into_iter().collect(),
                annotations,
            }
        }));
    }
    Ok(found)
}

/// The kubelet's annotations from the CRI plugin's container metadata extension: a JSON
/// document `{"Version":"v1","Metadata":{…,"Config":{…,"annotations":{…}}}}` holding the CRI
/// `ContainerConfig` the kubelet sent. Anything else gives no annotations.
pub fn cri_annotations(json: &[u8]) -> BTreeMap<String, String> {
    let Ok(doc) = serde_json::from_slice::<serde_json::Value>(json) else {
        return BTreeMap::new();
    };
    doc.pointer("/Metadata/Config/annotations")
        .and_then(serde_json::Value::as_object)
        .map(|map| {
            map.iter()
                .filter_map(|(k, v)| Some((k.clone(), v.as_str()?.to_owned())))
                .collect()
        })
        .unwrap_or_default()
}

/// containerd filters selecting containers by id; the filters of one request are OR-ed.
fn id_filters(ids: &[String]) -> Vec<String> {
    ids.iter().map(|id| format!("id=={}", quote(id))).collect()
}

/// Quotes a value for containerd's filter syntax.
fn quote(value: &str) -> String {
    let mut quoted = String::with_capacity(value.len() + 2);
    quoted.push('"');
    for c in value.chars() {
        if matches!(c, '"' | '\\') {
            quoted.push('\\');
        }
        quoted.push(c);
    }
    quoted.push('"');
    quoted
}

fn call_error(call: &'static str, status: Status) -> RuntimeError {
    RuntimeError::Call {
        engine: ENGINE,
        call,
        status: Box::new(status),
    }
}

/// An error and its causes, joined with `": "`; a cause that only repeats the previous
/// message is left out.
pub(crate) fn error_chain(err: &dyn std::error::Error) -> String {
    let mut text = err.to_string();
    let mut last = text.clone();
    let mut source = err.source();
    while let Some(cause) = source {
        let message = cause.to_string();
        if !last.ends_with(&message) {
            text.push_str(": ");
            text.push_str(&message);
        }
        last = message;
        source = cause.source();
    }
    text
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::workload::worker::REPLY_GRACE;
    use std::time::Instant;

    #[test]
    fn cri_metadata_gives_the_kubelets_annotations() {
        // as containerd 1.6's CRI plugin stores it (pkg/cri/store/container/metadata.go)
        let json = br#"{"Version":"v1","Metadata":{"ID":"3ab1","Name":"app_web-0_shop_0358_0",
            "SandboxID":"9f2e","Config":{"metadata":{"name":"app"},"image":{"image":"busybox"},
            "labels":{"io.kubernetes.pod.name":"web-0"},
            "annotations":{"io.kubernetes.pod.terminationGracePeriod":"30",
            "io.kubernetes.container.restartCount":"0"}},"StopSignal":"SIGTERM"}}"#;
        let a = cri_annotations(json);
        assert_eq!(a.len(), 2);
        assert_eq!(
            a.get("io.kubernetes.pod.terminationGracePeriod")
                .map(String::as_str),
            Some("30")
        );
        assert!(cri_annotations(b"{\"Version\":\"v1\"}").is_empty());
        assert!(cri_annotations(b"\x0a\x03app").is_empty());
    }

    #[test]
    fn id_filters_quote_each_id() {
        let ids = vec!["3ab1c5843010".to_owned(), "we\"ird\\".to_owned()];
        assert_eq!(
            id_filters(&ids),
            vec![r#"id=="3ab1c5843010""#, r#"id=="we\"ird\\""#]
        );
        assert!(id_filters(&[]).is_empty());
    }

    #[test]
    fn missing_socket_fails_fast_with_context() {
        let dir = std::env::temp_dir().join(format!("runtime-missing-{}", std::process::id()));
        let socket = dir.join("containerd.sock");
        let client = Containerd::new(&socket, DEFAULT_TIMEOUT).expect("start client");
        let started = Instant::now();
        let err = client.list(None).expect_err("no containerd there");
        assert!(
            started.elapsed() < DEFAULT_TIMEOUT,
            "took {:?}",
            started.elapsed()
        );
        assert!(matches!(err, RuntimeError::Connect { .. }), "{err:?}");
        let text = err.to_string();
        assert!(text.contains(&socket.display().to_string()), "{text}");
        // the io error behind the transport error is part of the message
        assert_eq!(text.matches("No such file").count(), 1, "{text}");
    }

    #[test]
    fn hung_runtime_is_cut_off_by_the_timeout() {
        // A listener that accepts connections but never answers.
        let dir = std::env::temp_dir().join(format!("runtime-hung-{}", std::process::id()));
        let _ = std::fs::remove_dir_all(&dir);
        std::fs::create_dir_all(&dir).expect("create dir");
        let socket = dir.join("containerd.sock");
        let listener = std::os::unix::net::UnixListener::bind(&socket).expect("bind");
        let timeout = Duration::from_millis(300);
        let mut client = Containerd::new(&socket, timeout).expect("start client");
        for _ in 0..2 {
            let started = Instant::now();
            let err = client
                .lookup(&["3ab1c5843010".to_owned()])
                .expect_err("nothing answers");
            let took = started.elapsed();
            assert!(matches!(err, RuntimeError::Timeout { .. }), "{err:?}");
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
        let mut client =
            Containerd::new("/nonexistent/containerd.sock", DEFAULT_TIMEOUT).expect("start client");
        assert_eq!(client.lookup(&[]).expect("no query"), Vec::new());
    }
}
