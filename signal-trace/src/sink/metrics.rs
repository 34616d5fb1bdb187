//! Prometheus metrics (`--metrics-addr`): events by kind, signal and result, lost events, and
//! container-runtime failures, served as OpenMetrics text on `GET /metrics`.
//!
//! Pod and namespace labels are opt-in (`--metrics-pod-labels`): they make one series per pod.

use std::collections::HashMap;
use std::net::SocketAddr;
use std::sync::Arc;
use std::time::Duration;

use prometheus_client::encoding::text::encode;
use prometheus_client::encoding::EncodeLabelSet;
use prometheus_client::metrics::counter::Counter;
use prometheus_client::metrics::family::Family;
use prometheus_client::registry::Registry;
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::TcpListener;

use crate::event::record::{Container, Record};

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
            "Events traced, by kind, signal and result (verdict for generate, errno for send_failed)",
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
            Record::Deliver(d) => (d.signo, 0),
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
    pub async fn bind(&self, addr: SocketAddr) -> std::io::Result<Server> {
        let listener = TcpListener::bind(addr).await?;
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
    listener: TcpListener,
    registry: Arc<Registry>,
}

impl Server {
    pub fn local_addr(&self) -> std::io::Result<SocketAddr> {
        self.listener.local_addr()
    }

    pub async fn serve(self) {
        loop {
            let Ok((mut conn, _)) = self.listener.accept().await else {
                continue;
            };
            let registry = self.registry.clone();
            tokio::spawn(async move {
                let mut buf = vec![0u8; 8192];
                let mut len = 0;
                // Read the request head, bounded in size and time.
                let read = tokio::time::timeout(Duration::from_secs(5), async {
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
                let _ = conn.write_all(response.as_bytes()).await;
                let _ = conn.shutdown().await;
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
    fn events_lost_and_failures_are_counted() {
        let mut m = Metrics::new(false);
        for _ in 0..3 {
            m.record(&rec(IGNORED));
        }
        m.record(&rec(r#"{"event":"lost","time":"2026-11-26T13:30:26Z","count":5,"events":{"generate":4,"deliver":1,"exit":0,"send_failed":0}}"#));
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
    fn the_endpoint_serves_metrics_and_404s() {
        let rt = tokio::runtime::Builder::new_current_thread()
            .enable_all()
            .build()
            .unwrap();
        rt.block_on(async {
            let mut m = Metrics::new(false);
            m.record(&rec(IGNORED));
            let server = m.bind("127.0.0.1:0".parse().unwrap()).await.unwrap();
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
