//! signal-trace kernel programs.
//!
//! One module per hook family, named after it (`generate`, `deliver`, `exit`, `cgroup_mkdir`,
//! `oom`, `send_failed`, `exec`, `fork`), each program a function named after its hook; the maps and globals
//! they share are in `maps`, and the shared code in `mem` (kernel memory reads), `task` (task
//! identities), `filter` (in-kernel filters) and `ring` (record writing). Every program filters
//! before it reserves ring-buffer space, and counts what it could not send in `LOST`. Kernel
//! structure layouts are not compiled in: userspace resolves field offsets from the running
//! kernel's BTF and passes them in `OFFSETS`; without BTF the classic tracepoints' own fields
//! (offsets in `CLASSIC`) are used.
#![no_std]
#![no_main]

mod filter;
mod maps;
mod mem;
mod ring;
mod task;

mod cgroup_mkdir;
mod deliver;
mod exec;
mod exit;
mod fork;
mod generate;
mod oom;
mod send_failed;

#[cfg(not(test))]
#[panic_handler]
fn panic(_info: &core::panic::PanicInfo) -> ! {
    loop {}
}
