//! Why the kernel did what it did with a signal.

use signal_trace_common::{FLAG_BLOCKED, FLAG_KTHREAD};

use crate::event::names::{kernel_ignores_by_default, SIGKILL, SIGSTOP};
use crate::event::record::IgnoreReason;

/// `signal_struct.flags` bits (include/linux/sched/signal.h).
pub const SIGNAL_GROUP_EXIT: u32 = 0x04;
pub const SIGNAL_UNKILLABLE: u32 = 0x40;

/// SIG_DFL, SIG_IGN, and the kernel-internal SIG_KTHREAD_KERNEL handler values.
const SIG_DFL: u64 = 0;
const SIG_IGN: u64 = 1;
const SIG_KTHREAD_KERNEL: u64 = 2;

/// The reason an ignored signal was ignored, following prepare_signal() → sig_ignored() →
/// sig_task_ignored() → sig_handler_ignored() in kernel/signal.c, in that order, from the target
/// state read when signal_generate fired: its handler, `signal->flags`, the event's `FLAG_*` bits,
/// and its process id.
pub fn ignore_reason(
    sig: u32,
    handler: u64,
    signal_flags: u32,
    flags: u32,
    tgid: u32,
) -> IgnoreReason {
    // prepare_signal(): a process that is already exiting takes no new signal.
    if signal_flags & SIGNAL_GROUP_EXIT != 0 {
        return IgnoreReason::Exiting;
    }
    // sig_ignored(): a blocked signal is never ignored at generation.
    if flags & FLAG_BLOCKED != 0 {
        return IgnoreReason::Unknown;
    }
    // sig_task_ignored().
    let kernel_only = sig == SIGKILL || sig == SIGSTOP;
    if tgid == 1 && kernel_only {
        return IgnoreReason::GlobalInit;
    }
    if signal_flags & SIGNAL_UNKILLABLE != 0 && handler == SIG_DFL {
        return if tgid == 1 {
            IgnoreReason::GlobalInit
        } else {
            IgnoreReason::PidNamespaceInit
        };
    }
    if flags & FLAG_KTHREAD != 0 && handler == SIG_KTHREAD_KERNEL {
        return IgnoreReason::KernelThread;
    }
    // sig_handler_ignored().
    if handler == SIG_IGN {
        return IgnoreReason::HandlerIgnore;
    }
    if handler == SIG_DFL && kernel_ignores_by_default(sig) {
        return IgnoreReason::DefaultIgnore;
    }
    IgnoreReason::Unknown
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn reasons_follow_the_kernel_order() {
        use IgnoreReason::*;
        // (sig, handler, signal_flags, flags, tgid) -> reason
        let cases = [
            (15, 0, SIGNAL_UNKILLABLE, 0, 4242, PidNamespaceInit),
            (15, 0x4000, SIGNAL_UNKILLABLE, 0, 4242, Unknown), // a handler: not ignored by init rule
            (15, 0, SIGNAL_UNKILLABLE, 0, 1, GlobalInit),
            (9, 0, SIGNAL_UNKILLABLE, 0, 1, GlobalInit),
            (15, 1, 0, 0, 300, HandlerIgnore),
            (17, 0, 0, 0, 300, DefaultIgnore),
            (28, 0, 0, 0, 300, DefaultIgnore),
            (23, 0, 0, 0, 300, DefaultIgnore),
            (18, 0, 0, 0, 300, DefaultIgnore),
            (15, 0x4000, SIGNAL_GROUP_EXIT, 0, 300, Exiting),
            (
                15,
                1,
                SIGNAL_GROUP_EXIT | SIGNAL_UNKILLABLE,
                0,
                300,
                Exiting,
            ),
            (10, 2, 0, FLAG_KTHREAD, 2, KernelThread),
            (10, 1, 0, FLAG_BLOCKED, 300, Unknown),
        ];
        for (sig, handler, sf, flags, tgid, want) in cases {
            assert_eq!(
                ignore_reason(sig, handler, sf, flags, tgid),
                want,
                "{sig} {handler} {sf:#x} {flags:#x} {tgid}"
            );
        }
    }
}
