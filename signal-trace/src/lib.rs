//! signal-trace: a system-wide Linux signal tracer.
//!
//! The folders follow the path of one event (docs/architecture.md has the map):
//!
//! - [`kernel`]: loading the kernel programs, their offsets from BTF, privileges, and the loop
//!   that reads the ring buffer: the only module that needs root;
//! - [`event`]: what a record is — wire decode, names of signals and codes, why the kernel
//!   ignored a signal, and the joins over time (latency, the killer of a process);
//! - [`workload`]: which workload a process belongs to — cgroup paths, the container runtime's
//!   client and the container cache;
//! - [`filter`]: what the kernel is told to drop, and what is left to userspace;
//! - [`sink`]: where records go — NDJSON and text, summaries, Prometheus metrics;
//! - [`explain`] and [`inspect`]: the two consumers — findings from a stream of records, and
//!   the dispositions of live processes read from /proc;
//! - [`replay`]: recordings read back — files, directories, gzip, standard input — merged in
//!   time order for `explain --from`.
//!
//! [`cli`] holds the raw arguments, [`config`] the validated configuration, [`app`] the commands
//! at the edge, [`escape`] the one way text a process controls reaches a terminal. Every module but [`kernel`] is pure and unit-tested without privileges.

pub mod app;
pub mod cli;
pub mod config;
pub mod escape;
pub mod event;
pub mod explain;
pub mod filter;
pub mod inspect;
pub mod kernel;
pub mod replay;
pub mod sink;
pub mod workload;
