//! Where records go: NDJSON and text lines ([`output`]), per-interval counts instead of lines
//! ([`summary`]), and Prometheus metrics ([`metrics`]).

pub mod metrics;
pub mod output;
pub mod summary;
