//! A client for the Docker Engine API, and for podman through its Docker-compatible API: which
//! containers exist, with their names, images and labels (Compose's among them).
//!
//! Both serve HTTP on a Unix socket (`/var/run/docker.sock`, `/run/podman/podman.sock`). One
//! call is needed, `GET /containers/json?all=1&filters={"id":[…]}`, whose answer carries each
//! container's `Id`, `Names`, `Image` and `Labels`; `all=1` includes containers that have just
//! stopped, so the last events of a container that died are named too.
//!
//! The client is written here rather than taken from a crate: it is one GET with a JSON answer,
//! and bollard 0.19 would add 11 crates to this tree (bollard, bollard-stubs, hyperlocal,
//! serde_with, serde_repr, serde_urlencoded, url, form_urlencoded, hex, ryu, futures-macro)
//! for it. Measured on a probe doing the same listing (release, stripped): 619 KB with this
//! std-only approach, 1,858 KB with bollard; bollard-stubs alone took 78 s of CPU to compile,
//! the whole build 5m13s against 1m41s (2 shared cores). Requests are HTTP/1.0, so the daemons (Go's net/http)
//! answer without chunked encoding and close the connection; a chunked answer is decoded
//! anyway. As with containerd, every query runs on a client thread and is bounded by a
//! timeout covering connecting, writing and reading: a daemon that is down or hangs costs
//! names, never events.

use std::collections::BTreeMap;
use std::io::{self, Read, Write};
use std::os::unix::net::UnixStream;
use std::path::{Path, PathBuf};
use std::time::{Duration, Instant};

use serde::Deserialize;

use crate::workload::cgroup::Runtime;
use crate::workload::containerd::{ContainerSource, RuntimeContainer, RuntimeError};
use crate::workload::worker::{Query, Worker};

/// Where dockerd listens by default.
pub const DEFAULT_SOCKET: &str = "/var/run/docker.sock";

/// Where podman's API service (`podman system service`) listens by default for root.
pub const PODMAN_DEFAULT_SOCKET: &str = "/run/podman/podman.sock";

/// The default bound on one query.
pub const DEFAULT_TIMEOUT: Duration = Duration::from_secs(1);

/// Label with the Compose project of a container.
pub const LABEL_COMPOSE_PROJECT: &str = "com.docker.compose.project";
/// Label with the Compose service of a container.
pub const LABEL_COMPOSE_SERVICE: &str = "com.docker.compose.service";

/// Largest answer accepted.
const MAX_RESPONSE_BYTES: usize = 16 << 20;

/// Which daemon speaks the API.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Engine {
    /// dockerd.
    Docker,
    /// podman's Docker-compatible API.
    Podman,
}

impl Engine {
    fn name(self) -> &'static str {
        match self {
            Engine::Docker => "docker",
            Engine::Podman => "podman",
        }
    }

    fn runtime(self) -> Runtime {
        match self {
            Engine::Docker => Runtime::Docker,
            Engine::Podman => Runtime::Podman,
        }
    }
}

/// A Docker Engine API client with a bounded wait on every query.
pub struct DockerApi {
    engine: Engine,
    worker: Worker,
}

impl DockerApi {
    /// Starts a client for the API of `engine` at `socket`; each query is bounded by
    /// `timeout`. Does not connect yet: each query connects anew (the API is cheap to reach
    /// on a Unix socket, and a daemon that restarted is picked up by the next query).
    pub fn new(
        engine: Engine,
        socket: impl AsRef<Path>,
        timeout: Duration,
    ) -> Result<DockerApi, RuntimeError> {
        let socket = socket.as_ref();
        let client = Client {
            engine,
            socket: socket.to_path_buf(),
            timeout,
        };
        Ok(DockerApi {
            engine,
            worker: Worker::start(engine.name(), socket, timeout, client)?,
        })
    }

    /// The containers (running or not) with one of the given ids. Returns within about the
    /// configured timeout whatever the daemon does.
    pub fn list(&self, ids: &[String]) -> Result<Vec<RuntimeContainer>, RuntimeError> {
        self.worker.list(Some(ids))
    }
}

impl ContainerSource for DockerApi {
    fn lookup(&mut self, ids: &[String]) -> Result<Vec<RuntimeContainer>, RuntimeError> {
        // The API takes any number of ids in one filter.
        self.worker.lookup(ids, usize::MAX)
    }

    fn serves(&self, runtime: Runtime) -> bool {
        runtime == self.engine.runtime()
    }
}

/// The client thread's state: where to connect, each query anew.
struct Client {
    engine: Engine,
    socket: PathBuf,
    timeout: Duration,
}

impl Query for Client {
    fn run(&mut self, ids: Option<&[String]>) -> Result<Vec<RuntimeContainer>, RuntimeError> {
        list(
            self.engine,
            &self.socket,
            self.timeout,
            ids.unwrap_or_default(),
        )
    }
}

/// One entry of `GET /containers/json`, the fields used.
#[derive(Debug, Deserialize)]
#[serde(rename_all = "PascalCase")]
struct ApiContainer {
    id: String,
    #[serde(default)]
    names: Option<Vec<String>>,
    #[serde(default)]
    image: Option<String>,
    #[serde(default)]
    labels: Option<BTreeMap<String, String>>,
}

/// The request path listing the containers with these ids.
fn list_path(ids: &[String]) -> String {
    let filters = serde_json::json!({ "id": ids }).to_string();
    format!(
        "/containers/json?all=1&filters={}",
        percent_encode(&filters)
    )
}

/// Percent-encodes everything but RFC 3986's unreserved characters.
fn percent_encode(s: &str) -> String {
    let mut out = String::with_capacity(s.len() * 3);
    for b in s.bytes() {
        if b.is_ascii_alphanumeric() || matches!(b, b'-' | b'.' | b'_' | b'~') {
            out.push(char::from(b));
        } else {
            out.push_str(&format!("%{b:02X}"));
        }
    }
    out
}

/// Runs one listing against the socket, all of it within `timeout`.
fn list(
    engine: Engine,
    socket: &Path,
    timeout: Duration,
    ids: &[String],
) -> Result<Vec<RuntimeContainer>, RuntimeError> {
    let deadline = Instant::now() + timeout;
    let connect_err = |e: io::Error| RuntimeError::Connect {
        engine: engine.name(),
        socket: socket.to_path_buf(),
        reason: e.to_string(),
    };
    let timeout_err = || RuntimeError::Timeout {
        engine: engine.name(),
        socket: socket.to_path_buf(),
        timeout,
    };
    let mut stream = UnixStream::connect(socket).map_err(connect_err)?;
    let request = format!(
        "GET {} HTTP/1.0\r\nHost: {}\r\nUser-Agent: signal-trace\r\n\r\n",
        list_path(ids),
        engine.name()
    );
    set_deadline(&stream, deadline).ok_or_else(timeout_err)?;
    stream
        .write_all(request.as_bytes())
        .map_err(|e| io_error(e, engine, socket, timeout))?;
    let mut raw = Vec::new();
    let mut buf = [0u8; 16 * 1024];
    loop {
        set_deadline(&stream, deadline).ok_or_else(timeout_err)?;
        let n = stream
            .read(&mut buf)
            .map_err(|e| io_error(e, engine, socket, timeout))?;
        if n == 0 {
            break;
        }
        raw.extend_from_slice(&buf[..n]);
        if raw.len() > MAX_RESPONSE_BYTES {
            return Err(api_error(
                engine,
                format!("answer larger than {MAX_RESPONSE_BYTES} bytes"),
            ));
        }
    }
    let body = parse_response(&raw).map_err(|reason| api_error(engine, reason))?;
    let listed: Vec<ApiContainer> = serde_json::from_slice(&body)
        .map_err(|e| api_error(engine, format!("unexpected answer: {e}")))?;
    Ok(listed
        .into_iter()
        .map(|c| RuntimeContainer {
            runtime: engine.runtime(),
            namespace: String::new(),
            id: c.id,
            name: c
                .names
                .unwrap_or_default()
                .into_iter()
                .map(|n| n.trim_start_matches('/').to_owned())
                .find(|n| !n.is_empty()),
            image: c.image.unwrap_or_default(),
            labels: c.labels.unwrap_or_default(),
            annotations: BTreeMap::new(),
        })
        .collect())
}

/// Sets the socket's read and write timeouts to what is left until `deadline`; `None` when
/// nothing is left.
fn set_deadline(stream: &UnixStream, deadline: Instant) -> Option<()> {
    let left = deadline.checked_duration_since(Instant::now())?;
    if left.is_zero() {
        return None;
    }
    stream.set_read_timeout(Some(left)).ok()?;
    stream.set_write_timeout(Some(left)).ok()
}

fn io_error(e: io::Error, engine: Engine, socket: &Path, timeout: Duration) -> RuntimeError {
    if matches!(
        e.kind(),
        io::ErrorKind::WouldBlock | io::ErrorKind::TimedOut
    ) {
        RuntimeError::Timeout {
            engine: engine.name(),
            socket: socket.to_path_buf(),
            timeout,
        }
    } else {
        RuntimeError::Connect {
            engine: engine.name(),
            socket: socket.to_path_buf(),
            reason: e.to_string(),
        }
    }
}

fn api_error(engine: Engine, reason: String) -> RuntimeError {
    RuntimeError::Api {
        engine: engine.name(),
        call: "containers list",
        reason,
    }
}

/// The body of a complete HTTP/1.x response read to its end; an error for a status other
/// than 200 (with the daemon's message) and for a malformed response.
fn parse_response(raw: &[u8]) -> Result<Vec<u8>, String> {
    let end = raw
        .windows(4)
        .position(|w| w == b"\r\n\r\n")
        .ok_or("the answer has no end of headers")?;
    let head = std::str::from_utf8(&raw[..end]).map_err(|_| "headers are not text")?;
    let body = &raw[end + 4..];
    let mut lines = head.split("\r\n");
    let status_line = lines.next().unwrap_or_default();
    let status: u16 = status_line
        .split(' ')
        .nth(1)
        .and_then(|s| s.parse().ok())
        .ok_or_else(|| format!("bad status line {status_line:?}"))?;
    let mut chunked = false;
    let mut length = None;
    for line in lines {
        let Some((name, value)) = line.split_once(':') else {
            continue;
        };
        let value = value.trim();
        if name.eq_ignore_ascii_case("transfer-encoding") {
            chunked = value.eq_ignore_ascii_case("chunked");
        } else if name.eq_ignore_ascii_case("content-length") {
            length = value.parse::<usize>().ok();
        }
    }
    let body = if chunked {
        dechunk(body)?
    } else {
        match length {
            Some(n) if n <= body.len() => body[..n].to_vec(),
            Some(n) => return Err(format!("answer cut short: {} of {n} bytes", body.len())),
            None => body.to_vec(),
        }
    };
    if status != 200 {
        let message = String::from_utf8_lossy(&body);
        return Err(format!("status {status}: {}", message.trim()));
    }
    Ok(body)
}

/// Decodes a chunked body.
fn dechunk(mut body: &[u8]) -> Result<Vec<u8>, String> {
    let mut out = Vec::new();
    loop {
        let line_end = body
            .windows(2)
            .position(|w| w == b"\r\n")
            .ok_or("chunked answer cut short")?;
        let size_text = std::str::from_utf8(&body[..line_end]).map_err(|_| "bad chunk size")?;
        let size_text = size_text.split(';').next().unwrap_or_default().trim();
        let size = usize::from_str_radix(size_text, 16)
            .map_err(|_| format!("bad chunk size {size_text:?}"))?;
        body = &body[line_end + 2..];
        if size == 0 {
            return Ok(out);
        }
        let chunk = body.get(..size).ok_or("chunked answer cut short")?;
        out.extend_from_slice(chunk);
        body = body.get(size + 2..).ok_or("chunked answer cut short")?;
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::workload::worker::REPLY_GRACE;
    use std::os::unix::net::UnixListener;
    use std::thread;

    const ID1: &str = "5e5e56284716d1377022e5040c601c82fe47ba6c05cb30340ae0c210a52ec9bb";

    /// A daemon stand-in answering one request per connection with `answer`; returns the
    /// requests it read.
    fn serve(socket: &Path, answers: Vec<Vec<u8>>) -> thread::JoinHandle<Vec<String>> {
        let listener = UnixListener::bind(socket).expect("bind");
        thread::spawn(move || {
            let mut requests = Vec::new();
            for answer in answers {
                let (mut conn, _) = listener.accept().expect("accept");
                let mut req = Vec::new();
                let mut buf = [0u8; 4096];
                while !req.windows(4).any(|w| w == b"\r\n\r\n") {
                    let n = conn.read(&mut buf).expect("read");
                    if n == 0 {
                        break;
                    }
                    req.extend_from_slice(&buf[..n]);
                }
                requests.push(String::from_utf8_lossy(&req).into_owned());
                conn.write_all(&answer).expect("write");
            }
            requests
        })
    }

    fn temp_socket(name: &str) -> PathBuf {
        let dir = std::env::temp_dir().join(format!("docker-{name}-{}", std::process::id()));
        let _ = std::fs::remove_dir_all(&dir);
        std::fs::create_dir_all(&dir).expect("create dir");
        dir.join("docker.sock")
    }

    // As dockerd 20.10 answers (trimmed to the fields read and a few others).
    const LISTING: &str = r#"[{"Id":"5e5e56284716d1377022e5040c601c82fe47ba6c05cb30340ae0c210a52ec9bb","Names":["/shop-web-1"],"Image":"localhost/signal-trace/busybox:latest","ImageID":"sha256:1b1e","Command":"sh -c 'sleep 1000'","Created":1764400000,"Ports":[],"Labels":{"com.docker.compose.project":"shop","com.docker.compose.service":"web"},"State":"running","Status":"Up 2 seconds","HostConfig":{"NetworkMode":"none"},"NetworkSettings":{"Networks":{}},"Mounts":[]}]"#;

    #[test]
    fn lists_names_images_and_labels() {
        let socket = temp_socket("list");
        let plain = format!(
            "HTTP/1.0 200 OK\r\nContent-Type: application/json\r\nContent-Length: {}\r\n\r\n{LISTING}",
            LISTING.len()
        );
        // the same answer chunked, in two chunks
        let (a, b) = LISTING.split_at(40);
        let chunked = format!(
            "HTTP/1.1 200 OK\r\nTransfer-Encoding: chunked\r\n\r\n{:x}\r\n{a}\r\n{:x};ext=1\r\n{b}\r\n0\r\n\r\n",
            a.len(),
            b.len()
        );
        let server = serve(&socket, vec![plain.into_bytes(), chunked.into_bytes()]);
        let mut client =
            DockerApi::new(Engine::Docker, &socket, DEFAULT_TIMEOUT).expect("start client");
        for _ in 0..2 {
            let found = client.lookup(&[ID1.to_owned()]).expect("listing");
            assert_eq!(found.len(), 1);
            let c = &found[0];
            assert_eq!(c.runtime, Runtime::Docker);
            assert_eq!(c.id, ID1);
            assert_eq!(c.name.as_deref(), Some("shop-web-1"));
            assert_eq!(c.image, "localhost/signal-trace/busybox:latest");
            assert_eq!(
                c.labels.get(LABEL_COMPOSE_SERVICE).map(String::as_str),
                Some("web")
            );
        }
        let requests = server.join().expect("server");
        let want = format!(
            "GET /containers/json?all=1&filters=%7B%22id%22%3A%5B%22{ID1}%22%5D%7D HTTP/1.0\r\n"
        );
        assert!(requests[0].starts_with(&want), "{}", requests[0]);
    }

    #[test]
    fn error_status_carries_the_daemons_message() {
        let socket = temp_socket("status");
        let body = r#"{"message":"client version 1.99 is too new"}"#;
        let answer = format!(
            "HTTP/1.0 400 Bad Request\r\nContent-Length: {}\r\n\r\n{body}",
            body.len()
        );
        let server = serve(&socket, vec![answer.into_bytes()]);
        let client =
            DockerApi::new(Engine::Podman, &socket, DEFAULT_TIMEOUT).expect("start client");
        let err = client.list(&[ID1.to_owned()]).expect_err("400");
        let text = err.to_string();
        assert!(
            text.starts_with("podman containers list failed: status 400"),
            "{text}"
        );
        assert!(text.contains("too new"), "{text}");
        server.join().expect("server");
    }

    #[test]
    fn missing_socket_fails_fast_with_context() {
        let socket = temp_socket("missing");
        let client =
            DockerApi::new(Engine::Docker, &socket, DEFAULT_TIMEOUT).expect("start client");
        let started = Instant::now();
        let err = client.list(&[ID1.to_owned()]).expect_err("nothing there");
        assert!(started.elapsed() < DEFAULT_TIMEOUT);
        assert!(matches!(err, RuntimeError::Connect { .. }), "{err:?}");
        let text = err.to_string();
        assert!(text.starts_with("cannot connect to docker at "), "{text}");
        assert!(text.contains(&socket.display().to_string()), "{text}");
    }

    #[test]
    fn hung_daemon_is_cut_off_by_the_timeout() {
        let socket = temp_socket("hung");
        // accepts (the kernel does, up to the backlog) and never answers
        let listener = UnixListener::bind(&socket).expect("bind");
        let timeout = Duration::from_millis(300);
        let client = DockerApi::new(Engine::Docker, &socket, timeout).expect("start client");
        for _ in 0..2 {
            let started = Instant::now();
            let err = client.list(&[ID1.to_owned()]).expect_err("nothing answers");
            let took = started.elapsed();
            assert!(matches!(err, RuntimeError::Timeout { .. }), "{err:?}");
            assert!(took >= timeout, "gave up after {took:?}");
            assert!(
                took < timeout + REPLY_GRACE + Duration::from_millis(200),
                "took {took:?}"
            );
        }
        drop(listener);
    }

    #[test]
    fn malformed_answers_are_errors() {
        assert!(parse_response(b"HTTP/1.0 200 OK\r\nContent-Length: 10\r\n\r\n[]").is_err());
        assert!(parse_response(b"garbage").is_err());
        assert!(
            parse_response(b"HTTP/1.1 200 OK\r\nTransfer-Encoding: chunked\r\n\r\nzz\r\n").is_err()
        );
        assert_eq!(
            parse_response(b"HTTP/1.0 200 OK\r\n\r\n[]").expect("no length: to the end"),
            b"[]"
        );
    }

    #[test]
    fn serves_only_its_own_runtime() {
        let docker = DockerApi::new(Engine::Docker, "/nonexistent", DEFAULT_TIMEOUT).expect("c");
        assert!(docker.serves(Runtime::Docker));
        assert!(!docker.serves(Runtime::Podman));
        assert!(!docker.serves(Runtime::Containerd));
        let podman = DockerApi::new(Engine::Podman, "/nonexistent", DEFAULT_TIMEOUT).expect("c");
        assert!(podman.serves(Runtime::Podman));
        assert!(!podman.serves(Runtime::Kubernetes));
    }
}
