//! Where records go: NDJSON (records encoded by [`ndjson`]) and text lines ([`output`]) to
//! standard output or a file opened,
//! reopened and rotated safely ([`file`]), per-interval counts instead of lines ([`summary`]),
//! and Prometheus metrics ([`metrics`]).

pub mod file;
pub mod metrics;
pub mod ndjson;
pub mod output;
pub mod summary;
