//! What runs in and next to the kernel: loading and attaching the programs, the kernel
//! structure offsets they need (from BTF), and the privileges tracing takes and gives up.
//!
//! [`tracer`] is the aya glue and the only code in the crate that needs root; [`btf`] and
//! [`privilege`] are pure and tested without it.

pub mod btf;
pub mod containers;
pub mod privilege;
pub mod tracer;
