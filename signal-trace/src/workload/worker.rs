//! The thread each runtime client queries from, and the bound on every answer.
//!
//! Tracing must never stall on a hung runtime, and the callers (the container cache, on the
//! trace loop's thread or its own) are synchronous. So each client ([`super::containerd`],
//! [`super::cri`], [`super::docker`]) hands its queries to a thread of its own through a
//! [`Worker`]: the thread runs one [`Query`] at a time, the query bounds itself to the
//! client's timeout, and the caller waits for the answer that long plus [`REPLY_GRACE`], after
//! which it gets [`RuntimeError::Timeout`] whatever the thread is doing. A new client
//! implements [`Query`] (connecting, listing) and keeps a [`Worker`].

use std::future::Future;
use std::path::{Path, PathBuf};
use std::sync::mpsc;
use std::thread;
use std::time::Duration;

use crate::workload::containerd::{RuntimeContainer, RuntimeError};

/// Extra time a caller waits beyond the worker's own bound before giving up on an answer.
pub const REPLY_GRACE: Duration = Duration::from_millis(200);

/// One listing, run on the client's thread; bounded by the client's timeout itself.
pub trait Query: Send + 'static {
    /// The containers with one of `ids`, or every container for `None`.
    fn run(&mut self, ids: Option<&[String]>) -> Result<Vec<RuntimeContainer>, RuntimeError>;
}

/// A request to the client thread.
struct Job {
    ids: Option<Vec<String>>,
    reply: mpsc::SyncSender<Result<Vec<RuntimeContainer>, RuntimeError>>,
}

/// The caller's side of a client thread.
pub struct Worker {
    engine: &'static str,
    socket: PathBuf,
    timeout: Duration,
    jobs: mpsc::Sender<Job>,
}

impl Worker {
    /// Starts the thread `ENGINE-client` answering with `query`, whose bound is `timeout`.
    pub fn start(
        engine: &'static str,
        socket: &Path,
        timeout: Duration,
        mut query: impl Query,
    ) -> Result<Worker, RuntimeError> {
        let (jobs, queue) = mpsc::channel::<Job>();
        thread::Builder::new()
            .name(format!("{engine}-client"))
            .spawn(move || {
                while let Ok(job) = queue.recv() {
                    let result = query.run(job.ids.as_deref());
                    // The caller may have stopped waiting; its answer is then dropped.
                    let _ = job.reply.send(result);
                }
            })
            .map_err(RuntimeError::Spawn)?;
        Ok(Worker {
            engine,
            socket: socket.to_path_buf(),
            timeout,
            jobs,
        })
    }

    /// The answer to one query, within about the timeout whatever the runtime does.
    pub fn list(&self, ids: Option<&[String]>) -> Result<Vec<RuntimeContainer>, RuntimeError> {
        let (reply, answer) = mpsc::sync_channel(1);
        let job = Job {
            ids: ids.map(<[String]>::to_vec),
            reply,
        };
        self.jobs.send(job).map_err(|_| RuntimeError::WorkerGone)?;
        match answer.recv_timeout(self.timeout + REPLY_GRACE) {
            Ok(result) => result,
            Err(mpsc::RecvTimeoutError::Timeout) => Err(self.timed_out()),
            Err(mpsc::RecvTimeoutError::Disconnected) => Err(RuntimeError::WorkerGone),
        }
    }

    /// The containers with one of `ids`: a filtered query for up to `max_filtered` ids (the
    /// runtime's filters cost a call or a clause each), else one listing of all, cut down.
    pub fn lookup(
        &self,
        ids: &[String],
        max_filtered: usize,
    ) -> Result<Vec<RuntimeContainer>, RuntimeError> {
        if ids.is_empty() {
            return Ok(Vec::new());
        }
        if ids.len() > max_filtered {
            let mut all = self.list(None)?;
            all.retain(|c| ids.contains(&c.id));
            return Ok(all);
        }
        self.list(Some(ids))
    }

    fn timed_out(&self) -> RuntimeError {
        RuntimeError::Timeout {
            engine: self.engine,
            socket: self.socket.clone(),
            timeout: self.timeout,
        }
    }
}

/// Runs an asynchronous query (a gRPC client's) to completion on `rt`, cut off at `timeout`.
pub fn bounded(
    rt: &tokio::runtime::Runtime,
    engine: &'static str,
    socket: &Path,
    timeout: Duration,
    query: impl Future<Output = Result<Vec<RuntimeContainer>, RuntimeError>>,
) -> Result<Vec<RuntimeContainer>, RuntimeError> {
    rt.block_on(async {
        tokio::time::timeout(timeout, query)
            .await
            .unwrap_or_else(|_| {
                Err(RuntimeError::Timeout {
                    engine,
                    socket: socket.to_path_buf(),
                    timeout,
                })
            })
    })
}
