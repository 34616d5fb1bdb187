//! Names of signals, si_codes, errnos, results and flags — decoding and parsing.
//!
//! Signal numbers are those of x86-64/arm64/riscv Linux (asm-generic/signal.h layout).
//! Real-time signals are named as util-linux `kill -l` and bash do: 34 is SIGRTMIN (glibc keeps
//! 32 and 33 for itself), 64 is SIGRTMAX.

use std::borrow::Cow;

/// Standard signal names, index = signal number.
const STANDARD: [&str; 32] = [
    "",
    "SIGHUP",
    "SIGINT",
    "SIGQUIT",
    "SIGILL",
    "SIGTRAP",
    "SIGABRT",
    "SIGBUS",
    "SIGFPE",
    "SIGKILL",
    "SIGUSR1",
    "SIGSEGV",
    "SIGUSR2",
    "SIGPIPE",
    "SIGALRM",
    "SIGTERM",
    "SIGSTKFLT",
    "SIGCHLD",
    "SIGCONT",
    "SIGSTOP",
    "SIGTSTP",
    "SIGTTIN",
    "SIGTTOU",
    "SIGURG",
    "SIGXCPU",
    "SIGXFSZ",
    "SIGVTALRM",
    "SIGPROF",
    "SIGWINCH",
    "SIGIO",
    "SIGPWR",
    "SIGSYS",
];

pub const SIGHUP: u32 = 1;
pub const SIGINT: u32 = 2;
pub const SIGQUIT: u32 = 3;
pub const SIGILL: u32 = 4;
pub const SIGTRAP: u32 = 5;
pub const SIGABRT: u32 = 6;
pub const SIGBUS: u32 = 7;
pub const SIGFPE: u32 = 8;
pub const SIGKILL: u32 = 9;
pub const SIGSEGV: u32 = 11;
pub const SIGPIPE: u32 = 13;
pub const SIGTERM: u32 = 15;
pub const SIGCHLD: u32 = 17;
pub const SIGCONT: u32 = 18;
pub const SIGSTOP: u32 = 19;
pub const SIGURG: u32 = 23;
pub const SIGWINCH: u32 = 28;
pub const SIGPOLL: u32 = 29;
pub const SIGSYS: u32 = 31;
/// First real-time signal as user space numbers them (glibc's SIGRTMIN).
pub const SIGRTMIN: u32 = 34;
pub const SIGRTMAX: u32 = 64;
/// Highest signal number the kernel knows (`_NSIG`).
pub const NSIG: u32 = 64;

/// The name of signal `sig`: "SIGTERM", "SIGRTMIN+3", "SIGRTMAX", "SIG32"; "0" for the null
/// signal and "SIG`<n>`" for anything out of range.
pub fn signal_name(sig: u32) -> Cow<'static, str> {
    match sig {
        0 => Cow::Borrowed("0"),
        1..=31 => Cow::Borrowed(STANDARD[sig as usize]),
        SIGRTMIN => Cow::Borrowed("SIGRTMIN"),
        SIGRTMAX => Cow::Borrowed("SIGRTMAX"),
        35..=49 => Cow::Owned(format!("SIGRTMIN+{}", sig - SIGRTMIN)),
        50..=63 => Cow::Owned(format!("SIGRTMAX-{}", SIGRTMAX - sig)),
        _ => Cow::Owned(format!("SIG{sig}")),
    }
}

/// Parses a signal given by name (with or without "SIG", any case: "TERM", "sigterm",
/// "RTMIN+2", "SIGRTMAX-1") or number ("15", 1..=64).
pub fn parse_signal(s: &str) -> Option<u32> {
    let s = s.trim();
    if let Ok(n) = s.parse::<u32>() {
        return (1..=NSIG).contains(&n).then_some(n);
    }
    let upper = s.to_ascii_uppercase();
    let bare = upper.strip_prefix("SIG").unwrap_or(&upper);
    if bare.is_empty() {
        return None;
    }
    if let Ok(n) = bare.parse::<u32>() {
        // "SIG32", as signal_name() writes the signals glibc keeps for itself.
        return (1..=NSIG).contains(&n).then_some(n);
    }
    if let Some(i) = STANDARD.iter().position(|n| n.len() > 3 && &n[3..] == bare) {
        return Some(i as u32);
    }
    // Aliases the kernel headers define.
    match bare {
        "IOT" => return Some(SIGABRT),
        "POLL" => return Some(SIGPOLL),
        "CLD" => return Some(SIGCHLD),
        "UNUSED" => return Some(SIGSYS),
        _ => {}
    }
    let rt = |rest: &str, base: u32, up: bool| -> Option<u32> {
        let n = if rest.is_empty() {
            0
        } else {
            let digits = rest.strip_prefix(if up { '+' } else { '-' })?;
            digits.parse::<u32>().ok()?
        };
        let sig = if up {
            base.checked_add(n)?
        } else {
            base.checked_sub(n)?
        };
        (SIGRTMIN..=SIGRTMAX).contains(&sig).then_some(sig)
    };
    if let Some(rest) = bare.strip_prefix("RTMIN") {
        return rt(rest, SIGRTMIN, true);
    }
    if let Some(rest) = bare.strip_prefix("RTMAX") {
        return rt(rest, SIGRTMAX, false);
    }
    if let Some(n) = bare.strip_prefix("RT").and_then(|r| r.parse::<u32>().ok()) {
        return (32..=NSIG).contains(&n).then_some(n);
    }
    None
}

/// What the kernel does with a signal whose handler is SIG_DFL (signal(7)).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum DefaultAction {
    Terminate,
    CoreDump,
    Ignore,
    Stop,
    Continue,
}

pub fn default_action(sig: u32) -> DefaultAction {
    match sig {
        SIGQUIT | SIGILL | SIGTRAP | SIGABRT | SIGBUS | SIGFPE | SIGSEGV | 24 | 25 | SIGSYS => {
            DefaultAction::CoreDump
        }
        SIGCHLD | SIGURG | SIGWINCH => DefaultAction::Ignore,
        SIGCONT => DefaultAction::Continue,
        SIGSTOP | 20 | 21 | 22 => DefaultAction::Stop,
        _ => DefaultAction::Terminate,
    }
}

/// `sig_kernel_ignore()` in include/linux/signal.h: signals whose default action is to be
/// ignored — the kernel drops them at generation when the handler is SIG_DFL. SIGCONT is in the
/// set: its "continue" happens at generation time, the signal itself is then discarded.
pub fn kernel_ignores_by_default(sig: u32) -> bool {
    matches!(sig, SIGCONT | SIGCHLD | SIGWINCH | SIGURG)
}

/// A standard (non real-time) signal: at most one instance can be pending.
pub fn is_standard(sig: u32) -> bool {
    (1..32).contains(&sig)
}

/// Decodes an `si_code`. Codes <= 0 and SI_KERNEL mean the same for every signal; positive
/// codes below SI_KERNEL are per signal (include/uapi/asm-generic/siginfo.h).
pub fn si_code_name(sig: u32, code: i32) -> Cow<'static, str> {
    let generic = match code {
        0 => Some("SI_USER"),
        0x80 => Some("SI_KERNEL"),
        -1 => Some("SI_QUEUE"),
        -2 => Some("SI_TIMER"),
        -3 => Some("SI_MESGQ"),
        -4 => Some("SI_ASYNCIO"),
        -5 => Some("SI_SIGIO"),
        -6 => Some("SI_TKILL"),
        -7 => Some("SI_DETHREAD"),
        -60 => Some("SI_ASYNCNL"),
        _ => None,
    };
    if let Some(name) = generic {
        return Cow::Borrowed(name);
    }
    let table: &[&str] = match sig {
        SIGILL => &[
            "ILL_ILLOPC",
            "ILL_ILLOPN",
            "ILL_ILLADR",
            "ILL_ILLTRP",
            "ILL_PRVOPC",
            "ILL_PRVREG",
            "ILL_COPROC",
            "ILL_BADSTK",
            "ILL_BADIADDR",
        ],
        SIGFPE => &[
            "FPE_INTDIV",
            "FPE_INTOVF",
            "FPE_FLTDIV",
            "FPE_FLTOVF",
            "FPE_FLTUND",
            "FPE_FLTRES",
            "FPE_FLTINV",
            "FPE_FLTSUB",
            // 9..=13 were ia64's __FPE_DECOVF … __FPE_INVDEC (asm-generic/siginfo.h); no other
            // architecture sends them: shown as numbers.
            "",
            "",
            "",
            "",
            "",
            "FPE_FLTUNK",
            "FPE_CONDTRAP",
        ],
        SIGSEGV => &[
            "SEGV_MAPERR",
            "SEGV_ACCERR",
            "SEGV_BNDERR",
            "SEGV_PKUERR",
            "SEGV_ACCADI",
            "SEGV_ADIDERR",
            "SEGV_ADIPERR",
            "SEGV_MTEAERR",
            "SEGV_MTESERR",
            "SEGV_CPERR",
        ],
        SIGBUS => &[
            "BUS_ADRALN",
            "BUS_ADRERR",
            "BUS_OBJERR",
            "BUS_MCEERR_AR",
            "BUS_MCEERR_AO",
        ],
        SIGTRAP => &[
            "TRAP_BRKPT",
            "TRAP_TRACE",
            "TRAP_BRANCH",
            "TRAP_HWBKPT",
            "TRAP_UNK",
            "TRAP_PERF",
        ],
        SIGCHLD => &[
            "CLD_EXITED",
            "CLD_KILLED",
            "CLD_DUMPED",
            "CLD_TRAPPED",
            "CLD_STOPPED",
            "CLD_CONTINUED",
        ],
        SIGPOLL => &[
            "POLL_IN", "POLL_OUT", "POLL_MSG", "POLL_ERR", "POLL_PRI", "POLL_HUP",
        ],
        SIGSYS => &["SYS_SECCOMP", "SYS_USER_DISPATCH"],
        // Any other signal with a positive code: an F_SETSIG signal (fcntl(2)) queued by
        // send_sigio(), whose si_code is the POLL_* band, as SIGIO's is.
        _ => &[
            "POLL_IN", "POLL_OUT", "POLL_MSG", "POLL_ERR", "POLL_PRI", "POLL_HUP",
        ],
    };
    match usize::try_from(code)
        .ok()
        .and_then(|c| c.checked_sub(1))
        .and_then(|i| table.get(i))
        .filter(|name| !name.is_empty())
    {
        Some(name) => Cow::Borrowed(name),
        None => Cow::Owned(code.to_string()),
    }
}

/// `enum trace_signal_result` (include/trace/events/signal.h), as the NDJSON `result` field.
pub fn result_name(result: u32) -> &'static str {
    match result {
        0 => "delivered",
        1 => "ignored",
        2 => "already_pending",
        3 => "overflow",
        4 => "lose_info",
        _ => "unknown",
    }
}

/// Parses a `--result` value (the names of [`result_name`]) into its number.
pub fn parse_result(s: &str) -> Option<u32> {
    let s = s.trim().to_ascii_lowercase().replace('-', "_");
    (0..5).find(|&r| result_name(r) == s)
}

/// Names of the errnos a signal send can return; others as "E`<n>`".
pub fn errno_name(errno: i32) -> Cow<'static, str> {
    let name = match errno {
        1 => "EPERM",
        3 => "ESRCH",
        4 => "EINTR",
        9 => "EBADF",
        11 => "EAGAIN",
        12 => "ENOMEM",
        14 => "EFAULT",
        22 => "EINVAL",
        38 => "ENOSYS",
        _ => return Cow::Owned(format!("E{errno}")),
    };
    Cow::Borrowed(name)
}

/// The syscall names of `signal_trace_common::SYSCALL_*`.
pub fn syscall_name(syscall: u32) -> &'static str {
    use signal_trace_common::*;
    match syscall {
        SYSCALL_KILL => "kill",
        SYSCALL_TKILL => "tkill",
        SYSCALL_TGKILL => "tgkill",
        SYSCALL_RT_SIGQUEUEINFO => "rt_sigqueueinfo",
        SYSCALL_RT_TGSIGQUEUEINFO => "rt_tgsigqueueinfo",
        SYSCALL_PIDFD_SEND_SIGNAL => "pidfd_send_signal",
        _ => "unknown",
    }
}

/// `sa_flags` bits (include/uapi/asm-generic/signal-defs.h and x86's SA_RESTORER).
const SA_FLAGS: [(u64, &str); 8] = [
    (0x0000_0001, "SA_NOCLDSTOP"),
    (0x0000_0002, "SA_NOCLDWAIT"),
    (0x0000_0004, "SA_SIGINFO"),
    (0x0400_0000, "SA_RESTORER"),
    (0x0800_0000, "SA_ONSTACK"),
    (0x1000_0000, "SA_RESTART"),
    (0x4000_0000, "SA_NODEFER"),
    (0x8000_0000, "SA_RESETHAND"),
];

/// Decodes `sa_flags` into flag names ("SA_SIGINFO|SA_RESTART"); unknown bits as hex.
pub fn sa_flags_names(flags: u64) -> String {
    let mut out = String::new();
    let mut rest = flags;
    for (bit, name) in SA_FLAGS {
        if flags & bit != 0 {
            if !out.is_empty() {
                out.push('|');
            }
            out.push_str(name);
            rest &= !bit;
        }
    }
    if rest != 0 {
        if !out.is_empty() {
            out.push('|');
        }
        out.push_str(&format!("{rest:#x}"));
    }
    out
}

/// The disposition a handler value stands for: SIG_DFL is 0, SIG_IGN is 1.
pub fn disposition(handler: u64) -> &'static str {
    match handler {
        0 => "default",
        1 => "ignore",
        _ => "handler",
    }
}

/// A handler as the NDJSON shows it: "default", "ignore" or the address "0x…".
pub fn handler_text(handler: u64) -> Cow<'static, str> {
    match handler {
        0 => Cow::Borrowed("default"),
        1 => Cow::Borrowed("ignore"),
        h => Cow::Owned(hex(h)),
    }
}

/// `format!("{h:#x}")` without the formatting machinery: a handler address is written into
/// nearly every record of a signal flood.
fn hex(h: u64) -> String {
    const DIGITS: &[u8; 16] = b"0123456789abcdef";
    let mut digits = [0u8; 16];
    let mut n = 0;
    let mut rest = h;
    loop {
        digits[15 - n] = DIGITS[(rest & 0xf) as usize];
        n += 1;
        rest >>= 4;
        if rest == 0 {
            break;
        }
    }
    let mut s = String::with_capacity(2 + n);
    s.push_str("0x");
    for &d in &digits[16 - n..] {
        s.push(char::from(d));
    }
    s
}

/// Decodes a 64-bit signal mask (bit n-1 = signal n, as /proc/PID/status shows them) to names.
pub fn mask_names(mask: u64) -> Vec<Cow<'static, str>> {
    (1..=NSIG)
        .filter(|s| mask >> (s - 1) & 1 == 1)
        .map(signal_name)
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn names_round_trip_for_every_signal() {
        for sig in 1..=NSIG {
            let name = signal_name(sig);
            assert_eq!(parse_signal(&name), Some(sig), "{name}");
        }
    }

    #[test]
    fn signal_names() {
        assert_eq!(signal_name(15), "SIGTERM");
        assert_eq!(signal_name(9), "SIGKILL");
        assert_eq!(signal_name(34), "SIGRTMIN");
        assert_eq!(signal_name(36), "SIGRTMIN+2");
        assert_eq!(signal_name(63), "SIGRTMAX-1");
        assert_eq!(signal_name(64), "SIGRTMAX");
        assert_eq!(signal_name(32), "SIG32");
        assert_eq!(signal_name(0), "0");
        assert_eq!(signal_name(65), "SIG65");
    }

    #[test]
    fn parsing_accepts_names_with_or_without_sig_and_numbers() {
        assert_eq!(parse_signal("TERM"), Some(15));
        assert_eq!(parse_signal("sigterm"), Some(15));
        assert_eq!(parse_signal("SIGKILL"), Some(9));
        assert_eq!(parse_signal(" usr1 "), Some(10));
        assert_eq!(parse_signal("9"), Some(9));
        assert_eq!(parse_signal("rtmin+1"), Some(35));
        assert_eq!(parse_signal("RTMAX"), Some(64));
        assert_eq!(parse_signal("SIGRTMAX-2"), Some(62));
        assert_eq!(parse_signal("IOT"), Some(6));
        assert_eq!(parse_signal("CLD"), Some(17));
        for bad in [
            "", "SIG", "TERMX", "0", "65", "-1", "RTMIN+31", "RTMAX-31", "RTMIN-1",
        ] {
            assert_eq!(parse_signal(bad), None, "{bad:?}");
        }
    }

    #[test]
    fn si_codes_are_decoded_per_signal() {
        assert_eq!(si_code_name(15, 0), "SI_USER");
        assert_eq!(si_code_name(9, 0x80), "SI_KERNEL");
        assert_eq!(si_code_name(35, -1), "SI_QUEUE");
        assert_eq!(si_code_name(10, -6), "SI_TKILL");
        assert_eq!(si_code_name(17, 1), "CLD_EXITED");
        assert_eq!(si_code_name(17, 2), "CLD_KILLED");
        assert_eq!(si_code_name(11, 1), "SEGV_MAPERR");
        assert_eq!(si_code_name(11, 2), "SEGV_ACCERR");
        assert_eq!(si_code_name(7, 1), "BUS_ADRALN");
        assert_eq!(si_code_name(31, 1), "SYS_SECCOMP");
        assert_eq!(si_code_name(29, 1), "POLL_IN");
        // F_SETSIG to a real-time signal or SIGUSR1: the POLL band still names the code.
        assert_eq!(si_code_name(40, 2), "POLL_OUT");
        assert_eq!(si_code_name(10, 6), "POLL_HUP");
        assert_eq!(si_code_name(40, 7), "7");
        // x86 FPE codes; ia64's 9..=13 are numbers.
        assert_eq!(si_code_name(8, 1), "FPE_INTDIV");
        assert_eq!(si_code_name(8, 9), "9");
        assert_eq!(si_code_name(8, 13), "13");
        assert_eq!(si_code_name(8, 14), "FPE_FLTUNK");
        assert_eq!(si_code_name(8, 15), "FPE_CONDTRAP");
        assert_eq!(si_code_name(5, 1), "TRAP_BRKPT");
        // A positive code on a signal without a table of its own is an F_SETSIG band.
        assert_eq!(si_code_name(15, 3), "POLL_MSG");
        assert_eq!(si_code_name(11, 99), "99");
    }

    #[test]
    fn results_and_errnos() {
        assert_eq!(result_name(1), "ignored");
        assert_eq!(parse_result("already_pending"), Some(2));
        assert_eq!(parse_result("lose-info"), Some(4));
        assert_eq!(parse_result("nope"), None);
        assert_eq!(errno_name(1), "EPERM");
        assert_eq!(errno_name(3), "ESRCH");
        assert_eq!(errno_name(200), "E200");
    }

    #[test]
    fn flags_and_handlers() {
        assert_eq!(
            sa_flags_names(0x1400_0004),
            "SA_SIGINFO|SA_RESTORER|SA_RESTART"
        );
        assert_eq!(sa_flags_names(0), "");
        assert_eq!(sa_flags_names(0x20), "0x20");
        assert_eq!(handler_text(0), "default");
        assert_eq!(handler_text(1), "ignore");
        assert_eq!(handler_text(0x5555_0000_1234), "0x555500001234");
        for h in [
            2,
            0xf,
            0x10,
            0xdead_beef,
            u64::MAX,
            1 << 63,
            0x7fff_ffff_ffff_fff0,
        ] {
            assert_eq!(handler_text(h), format!("{h:#x}"));
        }
        assert_eq!(disposition(0x400000), "handler");
        assert_eq!(mask_names(0x4000), vec!["SIGTERM"]);
        assert_eq!(mask_names((1 << 8) | (1 << 14)), vec!["SIGKILL", "SIGTERM"]);
    }

    #[test]
    fn default_actions() {
        assert_eq!(default_action(SIGTERM), DefaultAction::Terminate);
        assert_eq!(default_action(SIGSEGV), DefaultAction::CoreDump);
        assert_eq!(default_action(SIGCHLD), DefaultAction::Ignore);
        assert_eq!(default_action(SIGSTOP), DefaultAction::Stop);
        assert!(kernel_ignores_by_default(SIGCONT));
        assert!(!kernel_ignores_by_default(SIGTERM));
    }
}
