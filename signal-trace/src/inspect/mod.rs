//! `signal-trace inspect`: the signal dispositions of live processes, read from /proc, no BPF.
//!
//! For one process (or every process of a container or pod) this reports which signals are
//! caught, ignored, blocked and pending, whether the process is the init of a PID namespace,
//! how its threads differ from the main thread, what its children do with SIGTERM, which
//! container it runs in, and risk flags with remedies: an init that will never see SIGTERM, a
//! shell as PID 1 that will not pass SIGTERM on, SIGTERM blocked or ignored, zombies piling up.
//!
//! The work is layered so that everything but the file reads is testable on text:
//!
//! - [`ProcStatus::parse`] turns the text of `/proc/PID/status` (or of a thread's
//!   `/proc/PID/task/TID/status`) into the fields that matter for signals;
//! - [`analyze`] turns a [`Snapshot`] (the parsed status of the process, of its threads and of
//!   its children, its command line and its cgroup text) into a [`ProcessReport`];
//! - [`inspect_pid`], [`find_container_pids`], [`find_pod_pids`] and [`inspect_target`] read
//!   a proc tree given by its root, `/proc` in production and a directory tree in tests.
//!
//! # Why /proc is read by hand
//!
//! The `procfs` crate (0.18, which builds with the project's toolchain) was considered for the
//! reads and the status parser. Its `Status` parser splits each line at every `:`, so the name
//! of a task such as `kworker/u8:2` comes back as `kworker/u8`; and it requires some twenty
//! fields that have nothing to do with signals (`FDSize`, `Groups`, `CapInh`, ...), failing the
//! whole parse with an "internal error, please report this procfs bug" when one is missing.
//! Its file layer opens `O_PATH` handles and would add `rustix` and `linux-raw-sys` to the
//! build for what is here a handful of `read_to_string` and `read_dir` calls. The parser below
//! reads only the fields inspect needs, keeps names intact, and names the field it rejects.
//!
//! Layout: [`procfs`] reads and parses, [`analysis`] decides, [`render`] writes text, [`target`]
//! finds the processes a container or pod has.

use std::borrow::Cow;
use std::collections::BTreeSet;
use std::fmt::Write as _;
use std::fs;
use std::io::{self, Write};
use std::path::{Path, PathBuf};

use serde::Serialize;

use crate::cli::{FormatArg, InspectArgs};
use crate::escape::{Escaped, RawText};
use crate::event::names::{self, SIGCHLD, SIGINT, SIGTERM};
use crate::event::record::{Container, Disposition};
use crate::workload::cgroup;

pub mod analysis;
pub mod procfs;
pub mod render;
pub mod target;

pub use analysis::*;
pub use procfs::*;
pub use target::*;

/// Failure to inspect a process or to resolve what to inspect.
#[derive(Debug, thiserror::Error)]
pub enum InspectError {
    #[error("no such process {0}")]
    NoSuchProcess(u32),
    #[error("cannot read {}: {source}", path.display())]
    Read {
        path: PathBuf,
        #[source]
        source: io::Error,
    },
    #[error("cannot parse {}: {source}", path.display())]
    Parse {
        path: PathBuf,
        #[source]
        source: StatusError,
    },
    #[error("nothing to inspect: give a pid, --container or --pod")]
    NoTarget,
    #[error("container id prefix must not be empty")]
    EmptyContainerPrefix,
    #[error("no process runs in a container whose id starts with {0}")]
    NoContainer(String),
    #[error("container id prefix {prefix} matches {} containers: {}", ids.len(), ids.join(", "))]
    AmbiguousContainer { prefix: String, ids: Vec<String> },
    #[error(
        "pod {0:?} is not a pod uid: look pod names up through the container runtime \
         (`inspect --pod NAME` does)"
    )]
    PodName(String),
    #[error("no process runs in pod {0} (by name through containerd, or by uid prefix)")]
    NoPod(String),
    #[error("cannot ask the container runtime for pod {pod:?}: {why}")]
    Runtime { pod: String, why: String },
    #[error("cannot write output: {0}")]
    Write(#[source] io::Error),
}

impl InspectArgs {
    /// The target the arguments name; clap lets exactly one through.
    pub fn target(&self) -> Option<Target> {
        match (&self.pid, &self.container, &self.pod) {
            (_, Some(c), _) => Some(Target::Container(c.clone())),
            (_, _, Some(p)) => Some(Target::Pod(p.clone())),
            (Some(pid), _, _) => Some(Target::Pid(*pid)),
            (None, None, None) => None,
        }
    }
}

/// Writes reports as text (separated by blank lines) or NDJSON.
pub fn write_reports(
    reports: &[ProcessReport],
    format: FormatArg,
    out: &mut dyn Write,
) -> Result<(), InspectError> {
    for (i, r) in reports.iter().enumerate() {
        match format {
            FormatArg::Json => {
                serde_json::to_writer(&mut *out, r)
                    .map_err(|e| InspectError::Write(io::Error::other(e)))?;
                out.write_all(b"\n").map_err(InspectError::Write)?;
            }
            FormatArg::Text => {
                if i > 0 {
                    out.write_all(b"\n").map_err(InspectError::Write)?;
                }
                out.write_all(r.render_text().as_bytes())
                    .map_err(InspectError::Write)?;
            }
        }
    }
    out.flush().map_err(InspectError::Write)
}

/// Every container the node's runtimes list: containerd's API, and a CRI runtime (CRI-O) when
/// its socket exists. An error, naming each runtime's failure, only when none answered.
fn runtime_containers(
    args: &InspectArgs,
) -> Result<Vec<crate::workload::containerd::RuntimeContainer>, String> {
    use crate::workload::{containerd, cri};
    let mut all = Vec::new();
    let mut failures = Vec::new();
    match containerd::Containerd::new(&args.containerd_socket, containerd::DEFAULT_TIMEOUT)
        .and_then(|c| c.list(None))
    {
        Ok(found) => all.push(found),
        Err(e) => failures.push(e.to_string()),
    }
    if args.cri_socket.exists() {
        match cri::Cri::new(&args.cri_socket, cri::DEFAULT_TIMEOUT).and_then(|c| c.list(None)) {
            Ok(found) => all.push(found),
            Err(e) => failures.push(e.to_string()),
        }
    }
    if all.is_empty() {
        return Err(failures.join("; "));
    }
    Ok(all.into_iter().flatten().collect())
}

/// Runs `signal-trace inspect` against the proc tree at `proc_root`.
pub fn run(args: &InspectArgs, proc_root: &Path, out: &mut dyn Write) -> Result<(), InspectError> {
    let target = args.target().ok_or(InspectError::NoTarget)?;
    let mut skipped = |pid: u32, e: InspectError| {
        eprintln!(
            "signal-trace: warning: left out pid {pid}: {}",
            Escaped::str(&e.to_string())
        );
    };
    let reports = match &target {
        // A pod name (not a uid): its containers come from the runtimes' labels.
        Target::Pod(name) if !looks_like_pod_uid(name.trim()) => {
            let all = runtime_containers(args).map_err(|why| InspectError::Runtime {
                pod: name.clone(),
                why,
            })?;
            let mut ids = pod_container_ids(&all, name.trim());
            // containerd and its own CRI plugin may both list a container.
            ids.sort_unstable();
            ids.dedup();
            let mut reports = Vec::new();
            for id in ids {
                reports.extend(inspect_target_noting(
                    proc_root,
                    &Target::Container(id.to_owned()),
                    &mut skipped,
                )?);
            }
            if reports.is_empty() {
                return Err(InspectError::NoPod(name.clone()));
            }
            reports
        }
        _ => inspect_target_noting(proc_root, &target, &mut skipped)?,
    };
    write_reports(&reports, args.format, out)
}

#[cfg(test)]
mod tests;
