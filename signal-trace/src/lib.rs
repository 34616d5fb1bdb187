//! signal-trace: a system-wide Linux signal tracer.
//!
//! The kernel programs (signal-trace-ebpf) report every signal generated, delivered, fatal or
//! failed; this library decodes, filters, joins and prints what they send. Every module but
//! `tracer` is pure and unit-tested without privileges.

pub mod app;
pub mod btf;
pub mod cgroup;
pub mod cli;
pub mod config;
pub mod containers;
pub mod decode;
pub mod diagnose;
pub mod enrich;
pub mod explain;
pub mod filter;
pub mod inspect;
pub mod metrics;
pub mod names;
pub mod output;
pub mod privilege;
pub mod record;
pub mod runtime;
pub mod summary;
pub mod tracer;
