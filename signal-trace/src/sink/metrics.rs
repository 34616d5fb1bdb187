//! Prometheus metrics (`--metrics-addr`): events by kind, signal and result, lost events, and
//! container-runtime failures, served as OpenMetrics text on `GET /metrics`.
//!
//! Pod and namespace labels are opt-in (`--metrics-pod-labels`): they make one series per pod.
//!
//! The endpoint runs on a thread of its own ([`Server::spawn`]), never on the trace loop, and
//! defends itself: at most [`MAX_CONNECTIONS`] connections at once (more are closed at once),
//! [`REQUEST_TIMEOUT`] to send a request, and a growing pause when accept(2) fails for want of
//! descriptors (EMFILE, ENFILE) instead of a loop retrying at full speed.

use std::collections::HashMap;
use std::net::SocketAddr;
use std::sync::Arc;
use std::time::Duration;

use prometheus_client::encoding::text::encode;
use prometheus_client::encoding::EncodeLabelSet;
use prometheus_client::metrics::counter::Counter;
use prometheus_client::metrics::family::Family;
use prometheus_client::registry::Registry;
use std::sync::atomic::{AtomicUsize, Ordering};

use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::TcpListener;

/// Connections served at once; more are closed as soon as they are accepted.
pub const MAX_CONNECTIONS: usize = 64;
/// How long a client has to send its request head.
pub const REQUEST_TIMEOUT: Duration = Duration::from_secs(2);
/// The pause after an accept that failed for want of descriptors, doubled while it lasts.
const ACCEPT_BACKOFF_MIN: Duration = Duration::from_millis(50);
const ACCEPT_BACKOFF_MAX: Duration = Duration::from_secs(1);

use crate::event::record::{Container, DeliverCause, Record};

#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
struct EventLabels {
    event: String,
    signal: String,
    /// The verdict for generate; errno for send_failed; "" otherwise.
    result: String,
}

#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
struct PodEventLabels {
    event: String,
    signal: String,
    result: String,
    pod: String,
    namespace: String,
}

#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
struct LostLabels {
    event: String,
}

/// Key of the per-series counter cache: no allocation per event.
type Key = (u8, u32, u8);

pub struct Metrics {
    registry: Arc<Registry>,
    events: Family<EventLabels, Counter>,
    pod_events: Option<Family<PodEventLabels, Counter>>,
    lost: Family<LostLabels, Counter>,
    runtime_failures: Counter,
    runtime_failures_seen: u64,
    cache: HashMap<Key, Counter>,
}

fn event_index(r: &Record) -> u8 {
    match r {
        Record::Generate(_) => 0,
        Record::Deliver(_) => 1,
        Record::Exit(_) => 2,
        Record::SendFailed(_) => 3,
        Record::Oom(_) => 4,
        Record::Lost(_) => 5,
    }
}

const EVENT_NAMES: [&str; 6] = ["generate", "deliver", "exit", "send_failed", "oom", "lost"];

impl Metrics {
    pub fn new(pod_labels: bool) -> Metrics {
        let mut registry = Registry::with_prefix("signal_trace");
        let events = Family::<EventLabels, Counter>::default();
        registry.register(
            "events",
            "Events traced, by kind, signal and result (verdict for generate, errno for send_failed, group_exit for the SIGKILL the kernel reports to each thread of an ending process)",
            events.clone(),
        );
        let pod_events = pod_labels.then(|| {
            let f = Family::<PodEventLabels, Counter>::default();
            registry.register(
                "pod_events",
                "Events whose target is in a Kubernetes pod, by kind, signal, result, pod and namespace",
                f.clone(),
            );
            f
        });
        let lost = Family::<LostLabels, Counter>::default();
        registry.register(
            "lost_events",
            "Events the kernel programs could not send (ring buffer full)",
            lost.clone(),
        );
        let runtime_failures = Counter::default();
        registry.register(
            "runtime_failures",
            "Container runtime queries that failed (pod and container names missing meanwhile)",
            runtime_failures.clone(),
        );
        Metrics {
            registry: Arc::new(registry),
            events,
            pod_events,
            lost,
            runtime_failures,
            runtime_failures_seen: 0,
            cache: HashMap::new(),
        }
    }

    /// Counts one record.
    pub fn record(&mut self, r: &Record) {
        if let Record::Lost(l) = r {
            for (name, n) in [
                ("generate", l.events.generate),
                ("deliver", l.events.deliver),
                ("exit", l.events.exit),
                ("send_failed", l.events.send_failed),
                ("oom", l.events.oom),
                ("cgroup", l.events.cgroup),
                ("exec", l.events.exec),
                ("fork", l.events.fork),
            ] {
                if n > 0 {
                    self.lost
                        .get_or_create(&LostLabels { event: name.into() })
                        .inc_by(n);
                }
            }
            return;
        }
        let (signo, result): (u32, u8) = match r {
            Record::Generate(g) => (g.signo, g.result as u8),
            // The kernel's group-exit path reports SIGKILL for every thread of an ending
            // process, sent or not: its own result value keeps it apart from a dequeued one.
            Record::Deliver(d) => (d.signo, u8::from(d.cause == Some(DeliverCause::GroupExit))),
            Record::Exit(x) => (x.signo.unwrap_or(0), 0),
            // A number that is no signal (kill(pid, -1)) gets one label, "invalid".
            Record::SendFailed(s) => (u32::try_from(s.signo).unwrap_or(u32::MAX), 0),
            Record::Oom(_) => (9, 0),
            Record::Lost(_) => return,
        };
        let key = (event_index(r), signo, result);
        // Label strings are built only when a series is looked up, not per event.
        let labels = || EventLabels {
            event: EVENT_NAMES[event_index(r) as usize].into(),
            signal: if signo == 0 && matches!(r, Record::Exit(_)) {
                String::new()
            } else if signo > crate::event::names::NSIG {
                "invalid".into()
            } else {
                crate::event::names::signal_name(signo).into_owned()
            },
            result: match r {
                Record::Generate(g) => g.result.as_str().into(),
                Record::SendFailed(s) => s.errno.to_string(),
                Record::Deliver(d) if d.cause == Some(DeliverCause::GroupExit) => {
                    "group_exit".into()
                }
                _ => String::new(),
            },
        };
        if matches!(r, Record::SendFailed(_)) {
            // Rare: no cache (errno varies within one key).
            self.events.get_or_create(&labels()).inc();
        } else {
            let counter = self
                .cache
                .entry(key)
                .or_insert_with(|| self.events.get_or_create(&labels()).clone());
            counter.inc();
        }
        if let Some(family) = &self.pod_events {
            let target: Option<&Container> = match r {
                Record::Generate(g) => g.target.container.as_ref(),
                Record::Deliver(d) => d.container.as_ref(),
                Record::Exit(x) => x.container.as_ref(),
                _ => None,
            };
            if let Some(c) = target.filter(|c| c.pod.is_some()) {
                let l = labels();
                family
                    .get_or_create(&PodEventLabels {
                        event: l.event,
                        signal: l.signal,
                        result: l.result,
                        pod: c.pod.clone().unwrap_or_default(),
                        namespace: c.namespace.clone().unwrap_or_default(),
                    })
                    .inc();
            }
        }
    }

    /// Brings the runtime failure counter up to `total`.
    pub fn runtime_failures(&mut self, total: u64) {
        if total > self.runtime_failures_seen {
            self.runtime_failures
                .inc_by(total - self.runtime_failures_seen);
            self.runtime_failures_seen = total;
        }
    }

    /// The OpenMetrics text of every metric.
    pub fn render(&self) -> String {
        render(&self.registry)
    }

    /// Binds `addr` (before privileges are dropped) and returns the server to spawn.
    pub fn bind(&self, addr: SocketAddr) -> std::io::Result<Server> {
        let listener = std::net::TcpListener::bind(addr)?;
        listener.set_nonblocking(true)?;
        Ok(Server {
            listener,
            registry: self.registry.clone(),
        })
    }
}

fn render(registry: &Registry) -> String {
    let mut out = String::new();
    // Writing to a String cannot fail.
    let _ = encode(&mut out, registry);
    out
}

/// A minimal HTTP/1.1 endpoint: `GET /metrics` answers the metrics, anything else 404.
pub struct Server {
    listener: std::net::TcpListener,
    registry: Arc<Registry>,
}

/// Releases a connection slot when a connection ends.
struct Slot(Arc<AtomicUsize>);

impl Drop for Slot {
    fn drop(&mut self) {
        self.0.fetch_sub(1, Ordering::Relaxed);
    }
}

impl Server {
    pub fn local_addr(&self) -> std::io::Result<SocketAddr> {
        self.listener.local_addr()
    }

    /// Serves on a thread of its own (with its own single-threaded runtime), so that nothing
    /// a client does can hold up the trace loop.
    pub fn spawn(self) -> std::io::Result<std::thread::JoinHandle<()>> {
        let rt = tokio::runtime::Builder::new_current_thread()
            .enable_all()
            .build()?;
        std::thread::Builder::new()
            .name("metrics".to_owned())
            .spawn(move || rt.block_on(self.serve()))
    }

    pub async fn serve(self) {
        let listener = match TcpListener::from_std(self.listener) {
            Ok(l) => l,
            Err(e) => {
                eprintln!("signal-trace: warning: metrics endpoint stopped: {e}");
                return;
            }
        };
        let open = Arc::new(AtomicUsize::new(0));
        let mut backoff = ACCEPT_BACKOFF_MIN;
        let mut refused_reported = false;
        loop {
            let mut conn = match listener.accept().await {
                Ok((conn, _)) => {
                    backoff = ACCEPT_BACKOFF_MIN;
                    conn
                }
                Err(e) => {
                    // Out of descriptors: wait for some to be given back rather than spin.
                    let out_of_fds = matches!(
                        e.raw_os_error(),
                        Some(libc::EMFILE | libc::ENFILE | libc::ENOBUFS | libc::ENOMEM)
                    );
                    let pause = if out_of_fds {
                        backoff
                    } else {
                        Duration::from_millis(5)
                    };
                    if out_of_fds {
                        backoff = (backoff * 2).min(ACCEPT_BACKOFF_MAX);
                    }
                    tokio::time::sleep(pause).await;
                    continue;
                }
            };
            if open.load(Ordering::Relaxed) >= MAX_CONNECTIONS {
                if !refused_reported {
                    refused_reported = true;
                    eprintln!("signal-trace: warning: more than {MAX_CONNECTIONS} metrics connections at once; closing the extra ones");
                }
                drop(conn);
                continue;
            }
            open.fetch_add(1, Ordering::Relaxed);
            let slot = Slot(open.clone());
            let registry = self.registry.clone();
            tokio::spawn(async move {
                let _slot = slot;
                let mut buf = vec![0u8; 8192];
                let mut len = 0;
                // Read the request head, bounded in size and time.
                let read = tokio::time::timeout(REQUEST_TIMEOUT, async {
                    while len < buf.len() {
                        let n = conn.read(&mut buf[len..]).await?;
                        if n == 0 {
                            break;
                        }
                        len += n;
                        if buf[..len].windows(4).any(|w| w == b"\r\n\r\n") {
                            break;
                        }
                    }
                    Ok::<_, std::io::Error>(())
                })
                .await;
                if !matches!(read, Ok(Ok(()))) {
                    return;
                }
                let head = String::from_utf8_lossy(&buf[..len]);
                let mut parts = head.split_whitespace();
                let response = match (parts.next(), parts.next()) {
                    (Some("GET"), Some("/metrics")) => {
                        let body = render(&registry);
                        format!(
                            "HTTP/1.1 200 OK\r\nContent-Type: application/openmetrics-text; version=1.0.0; charset=utf-8\r\nContent-Length: {}\r\nConnection: close\r\n\r\n{body}",
                            body.len()
                        )
                    }
                    _ => "HTTP/1.1 404 Not Found\r\nContent-Length: 0\r\nConnection: close\r\n\r\n"
                        .to_string(),
                };
                // A client that does not read its answer gets no more time than one that
                // does not send its request.
                let _ = tokio::time::timeout(REQUEST_TIMEOUT, async {
                    let _ = conn.write_all(response.as_bytes()).await;
                    let _ = conn.shutdown().await;
                })
                .await;
            });
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn rec(line: &str) -> Record {
        serde_json::from_str(line).expect("record")
    }

    const IGNORED: &str = r#"{"event":"generate","time":"2026-11-26T13:30:26.261043450Z","signal":"SIGTERM","signo":15,"code":"SI_USER","si_code":0,"errno":0,"group":true,"result":"ignored","reason":"pid_namespace_init","sender":{"pid":8255,"tid":8255,"comm":"bash","uid":0,"cgroup_id":1},"target":{"pid":8262,"tid":8262,"comm":"sleep","ns_pid":1,"cgroup_id":7,"disposition":"default","handler":"default","blocked":false,"container":{"id":"abc","runtime":"containerd","name":"app","pod":"web-0","namespace":"shop"}}}"#;

    #[test]
    fn the_kernels_group_exit_sigkills_are_counted_apart_from_dequeued_ones() {
        let deliver = |cause: &str| {
            rec(&format!(
                r#"{{"event":"deliver","time":"2026-11-26T13:30:26Z","signal":"SIGKILL","signo":9,"code":"SI_USER","si_code":0,"cause":{cause},"pid":7,"tid":8,"comm":"worker","handler":"default","sa_flags":0}}"#
            ))
        };
        let mut m = Metrics::new(false);
        m.record(&deliver(r#""dequeued""#));
        for _ in 0..4 {
            m.record(&deliver(r#""group_exit""#));
        }
        // A recording older than `cause` counts as a dequeued delivery.
        m.record(&deliver("null"));
        let text = m.render();
        assert!(
            text.contains(r#"signal_trace_events_total{event="deliver",signal="SIGKILL",result="group_exit"} 4"#),
            "{text}"
        );
        assert!(
            text.contains(
                r#"signal_trace_events_total{event="deliver",signal="SIGKILL",result=""} 2"#
            ),
            "{text}"
        );
    }

    #[test]
    fn events_lost_and_failures_are_counted() {
        let mut m = Metrics::new(false);
        for _ in 0..3 {
            m.record(&rec(IGNORED));
        }
        m.record(&rec(r#"{"event":"lost","time":"2026-11-26T13:30:26Z","count":5,"events":{"generate":4,"deliver":1,"exit":0,"send_failed":0}}"#));
        m.record(&rec(r#"{"event":"lost","time":"2026-11-26T13:30:27Z","count":3,"events":{"generate":0,"deliver":0,"exit":0,"send_failed":0,"exec":2,"fork":1}}"#));
        m.runtime_failures(2);
        m.runtime_failures(2);
        let text = m.render();
        assert!(
            text.contains(
                r#"signal_trace_events_total{event="generate",signal="SIGTERM",result="ignored"} 3"#
            ),
            "{text}"
        );
        assert!(
            text.contains(r#"signal_trace_lost_events_total{event="generate"} 4"#),
            "{text}"
        );
        assert!(
            text.contains(r#"signal_trace_lost_events_total{event="deliver"} 1"#),
            "{text}"
        );
        assert!(
            text.contains(r#"signal_trace_lost_events_total{event="exec"} 2"#),
            "{text}"
        );
        assert!(
            text.contains(r#"signal_trace_lost_events_total{event="fork"} 1"#),
            "{text}"
        );
        assert!(
            text.contains("signal_trace_runtime_failures_total 2"),
            "{text}"
        );
        assert!(
            !text.contains("web-0"),
            "no pod labels unless asked: {text}"
        );
    }

    #[test]
    fn pod_labels_are_opt_in() {
        let mut m = Metrics::new(true);
        m.record(&rec(IGNORED));
        let text = m.render();
        assert!(
            text.contains(r#"signal_trace_pod_events_total{event="generate",signal="SIGTERM",result="ignored",pod="web-0",namespace="shop"} 1"#),
            "{text}"
        );
    }

    #[test]
    fn idle_connections_are_capped_and_timed_out() {
        let m = Metrics::new(false);
        let server = m.bind("127.0.0.1:0".parse().unwrap()).unwrap();
        let addr = server.local_addr().unwrap();
        server.spawn().unwrap();
        let idle: Vec<std::net::TcpStream> = (0..MAX_CONNECTIONS)
            .map(|_| std::net::TcpStream::connect(addr).unwrap())
            .collect();
        std::thread::sleep(Duration::from_millis(300));
        // One more is closed at once: its read sees the end without any answer.
        let mut extra = std::net::TcpStream::connect(addr).unwrap();
        extra
            .set_read_timeout(Some(Duration::from_secs(1)))
            .unwrap();
        let mut got = Vec::new();
        std::io::Read::read_to_end(&mut extra, &mut got).expect("closed, not timed out");
        assert!(got.is_empty());
        // Once the idle ones have timed out, requests are served again.
        std::thread::sleep(REQUEST_TIMEOUT + Duration::from_millis(500));
        let mut c = std::net::TcpStream::connect(addr).unwrap();
        std::io::Write::write_all(&mut c, b"GET /metrics HTTP/1.1\r\n\r\n").unwrap();
        let mut resp = String::new();
        std::io::Read::read_to_string(&mut c, &mut resp).unwrap();
        assert!(resp.starts_with("HTTP/1.1 200 OK"), "{resp}");
        drop(idle);
    }

    #[test]
    fn the_endpoint_serves_metrics_and_404s() {
        let rt = tokio::runtime::Builder::new_current_thread()
            .enable_all()
            .build()
            .unwrap();
        rt.block_on(async {
            let mut m = Metrics::new(false);
            m.record(&rec(IGNORED));
            let server = m.bind("127.0.0.1:0".parse().unwrap()).unwrap();
            let addr = server.local_addr().unwrap();
            tokio::spawn(server.serve());
            for (path, want) in [("/metrics", "200 OK"), ("/", "404 Not Found")] {
                let mut c = tokio::net::TcpStream::connect(addr).await.unwrap();
                c.write_all(format!("GET {path} HTTP/1.1\r\nHost: x\r\n\r\n").as_bytes())
                    .await
                    .unwrap();
                let mut resp = String::new();
                c.read_to_string(&mut resp).await.unwrap();
                assert!(resp.starts_with(&format!("HTTP/1.1 {want}")), "{resp}");
                if path == "/metrics" {
                    assert!(resp.contains(r#"result="ignored"} 1"#), "{resp}");
                }
            }
        });
    }
}
