//! The event itself: the records signal-trace emits ([`record`]), how the kernel programs'
//! wire structs become records ([`decode`]), the names of signals, si_codes and errnos
//! ([`names`]), why the kernel ignored a signal ([`reason`]), and the joins over time that
//! complete a record ([`enrich`]: a delivery's latency, the killer of a process); which node
//! the records come from ([`node`]); which program each process runs ([`procs`]: the sender's
//! exe, argv and ancestors).

pub mod decode;
pub mod enrich;
pub mod names;
pub mod node;
pub mod procs;
pub mod reason;
pub mod record;
