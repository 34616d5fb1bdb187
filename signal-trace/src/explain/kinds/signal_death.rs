//! `signal_death`: a death by a signal's default action that no other kind explains, and who raised it.

use super::*;

/// How the fatal signal came about, from its generate record or else the exit's `killed_by`.
pub(crate) fn cause_of(p: &Proc, signo: u32) -> (Cause, Option<Peer>, Option<String>) {
    if let Some(s) = p.fatal.as_ref().filter(|s| s.signo == signo) {
        let cause = if s.sender.pid == p.pid {
            if signo == SIGPIPE {
                Cause::BrokenPipe
            } else if s.si_code > 0 && s.si_code != SI_KERNEL {
                Cause::Fault
            } else {
                Cause::SelfRaised
            }
        } else if s.si_code == SI_KERNEL {
            Cause::Kernel
        } else {
            Cause::Process
        };
        return (cause, Some(s.sender.clone()), Some(s.code.clone()));
    }
    let Some(k) = p.exit.as_ref().and_then(|x| x.killed_by.clone()) else {
        return (Cause::Unknown, None, None);
    };
    let cause = if k.pid == p.pid {
        if signo == SIGPIPE {
            Cause::BrokenPipe
        } else if matches!(k.code.as_ref(), "SI_USER" | "SI_TKILL" | "SI_QUEUE") {
            Cause::SelfRaised
        } else {
            Cause::Fault
        }
    } else if k.code == "SI_KERNEL" {
        Cause::Kernel
    } else {
        Cause::Process
    };
    (
        cause,
        Some(Peer {
            pid: k.pid,
            comm: k.comm,
        }),
        Some(k.code.to_string()),
    )
}

pub(crate) fn death_remedy(signo: u32, code: Option<&str>) -> String {
    match signo {
        SIGSEGV => {
            format!(
            "A memory-safety bug{}: get a core dump (`ulimit -c unlimited` or LimitCORE=infinity, \
             and a core_pattern that is writable from the container) or run it under gdb / \
             AddressSanitizer, and fix the access. In managed runtimes look at native \
             extensions and FFI calls.",
            match code {
                Some("SEGV_MAPERR") => " (SEGV_MAPERR: an unmapped address, e.g. a null or \
                                        dangling pointer, or a stack overflow)",
                Some("SEGV_ACCERR") => " (SEGV_ACCERR: a mapped address without the right \
                                        permission, e.g. a write to read-only memory)",
                _ => "",
            }
        )
        }
        SIGBUS => "A bad memory access to a mapping: usually a memory-mapped file that was \
                   truncated under it, or a full tmpfs (/dev/shm is 64 MiB in Docker: raise \
                   `--shm-size` or mount an emptyDir with medium Memory); otherwise an unaligned \
                   access. Get a core dump to see where."
            .into(),
        SIGFPE => "An arithmetic fault, usually an integer division by zero (FPE_INTDIV): guard \
                   the divisor. Get a core dump to see where."
            .into(),
        SIGILL => "An illegal instruction: a binary built for a newer CPU than this one (e.g. \
                   AVX-512, -march=native), a corrupted binary, or a deliberate trap (Rust and \
                   C compilers emit ud2 for unreachable code). Rebuild for the target CPU."
            .into(),
        SIGABRT => "The process called abort(): a failed assert(), a C++ exception nobody caught \
                    (std::terminate), glibc detecting heap corruption (\"double free\", \
                    \"corrupted size\"), or a Rust panic with panic=abort. Its last lines on \
                    stderr say which."
            .into(),
        SIGSYS => "A seccomp filter killed it for a forbidden system call: allow the call in the \
                   seccomp profile (`securityContext.seccompProfile`, `docker run \
                   --security-opt seccomp=…`) or avoid it."
            .into(),
        SIGPIPE => "It wrote to a pipe or socket whose reader had gone. In a shell pipeline \
                    (`cmd | head`) this is the normal way the writer stops. In a server, ignore \
                    SIGPIPE (signal(SIGPIPE, SIG_IGN), or MSG_NOSIGNAL on send) and handle the \
                    EPIPE error instead of dying on the first closed connection."
            .into(),
        SIGTERM | SIGINT | SIGHUP | SIGQUIT => format!(
            "It had no handler for {}, so the default action ended it without any cleanup. If \
             it holds state worth saving (connections, buffers, locks), catch it (and handle \
             SIGTERM and SIGINT the same way) and shut down cleanly within the grace period.",
            crate::event::names::signal_name(signo)
        ),
        _ => format!(
            "It had no handler for {}, whose default action ends the process: install a handler \
             (or SIG_IGN) before anything can send it, or stop sending it.",
            crate::event::names::signal_name(signo)
        ),
    }
}

/// signal_death for a death other than by SIGKILL.
pub(crate) fn death_finding(p: &Proc, signo: u32) -> Option<Finding> {
    let x = p.exit.as_ref()?;
    let signal = x
        .signal
        .clone()
        .unwrap_or_else(|| crate::event::names::signal_name(signo).into_owned());
    let (cause, sender, code) = cause_of(p, signo);
    let severity = match signo {
        SIGSEGV | SIGBUS | SIGFPE | SIGILL | SIGABRT | SIGSYS | SIGTRAP => Severity::Error,
        SIGINT | SIGHUP => Severity::Info,
        _ => Severity::Warning,
    };
    let mut f = base(FindingKind::SignalDeath, severity, x.time, p);
    let how = match (cause, &sender) {
        (Cause::Fault, _) => format!(
            "from a fault in the process itself ({})",
            code.as_deref().unwrap_or("?")
        ),
        (Cause::SelfRaised, _) if signo == SIGABRT => "from abort() in the process itself".into(),
        (Cause::SelfRaised, _) => "raised by the process itself".into(),
        (Cause::BrokenPipe, _) => "from its own write to a pipe or socket with no reader".into(),
        (Cause::Kernel, Some(s)) => format!("from the kernel (in {})", peer_text(s)),
        (_, Some(s)) => format!(
            "from {} (pid {}, {})",
            s.comm,
            s.pid,
            code.as_deref().unwrap_or("?")
        ),
        _ => "from an unseen sender".into(),
    };
    let nohandler = match p.fatal.as_ref().and_then(|s| s.disposition) {
        Some(Disposition::Default) => ", which it had no handler for",
        _ => "",
    };
    f.summary = format!(
        "{}{} was killed by {signal} {how}{nohandler}; status {}{}",
        who(p.comm, p.pid, p.ns_pid),
        where_text(p),
        x.exit_code,
        if x.core_dumped { ", core dumped" } else { "" }
    );
    f.remedy = death_remedy(signo, code.as_deref());
    f.signal = Some(signal);
    f.code = code;
    f.sender = sender;
    f.cause = Some(cause);
    f.exit_code = Some(x.exit_code);
    f.core_dumped = Some(x.core_dumped);
    if let Some(s) = p.fatal.as_ref().filter(|s| s.signo == signo) {
        f.push_evidence(&s.ev);
    }
    f.push_evidence(&x.ev);
    Some(f)
}

/// signal_death for a SIGKILL no other finding explains.
pub(crate) fn kill_death_finding(p: &Proc, init: Option<&Proc>) -> Option<Finding> {
    let x = p.exit.as_ref()?;
    let mut f = base(FindingKind::SignalDeath, Severity::Warning, x.time, p);
    let zapped_by = p.zapped_by();
    let (cause, sender) = match (&p.kill, zapped_by) {
        (Some(k), Some(_)) if init.is_some_and(Proc::is_ns_init) => {
            (Cause::NamespaceInitExit, Some(k.sender.clone()))
        }
        (Some(k), _) if k.sender.pid == p.pid => (Cause::SelfRaised, Some(k.sender.clone())),
        (Some(k), _) if k.si_code == SI_KERNEL => (Cause::Kernel, Some(k.sender.clone())),
        (Some(k), _) => (Cause::Process, Some(k.sender.clone())),
        (None, _) => match &x.killed_by {
            Some(k) => (
                Cause::Process,
                Some(Peer {
                    pid: k.pid,
                    comm: k.comm,
                }),
            ),
            None => (Cause::Unknown, None),
        },
    };
    let from = sender
        .as_ref()
        .map(peer_text)
        .unwrap_or_else(|| "an unseen sender".into());
    let (summary, remedy) = match cause {
        Cause::NamespaceInitExit => (
            format!(
                "{}{} was killed by SIGKILL because PID 1 of its namespace, {}, exited: the \
                 kernel kills every process left in a PID namespace whose init is gone",
                who(p.comm, p.pid, p.ns_pid),
                where_text(p),
                from
            ),
            remedy_for(p, Situation::InitExited),
        ),
        _ => (
            format!(
                "{}{} was killed by SIGKILL from {from}{}; status {}",
                who(p.comm, p.pid, p.ns_pid),
                where_text(p),
                match (&p.term, &p.kill) {
                    (Some(t), Some(k)) => format!(
                        ", {} after the {} it outlived",
                        duration(k.time.since(t.time)),
                        t.signal
                    ),
                    _ => " with no SIGTERM first, so it had no chance to clean up".to_string(),
                },
                x.exit_code
            ),
            remedy_for(p, Situation::KillWithoutTerm),
        ),
    };
    f.summary = summary;
    f.remedy = remedy;
    f.signal = Some("SIGKILL".into());
    f.code = p.kill.as_ref().map(|k| k.code.clone());
    f.sender = sender;
    f.cause = Some(cause);
    f.exit_code = Some(x.exit_code);
    f.core_dumped = Some(x.core_dumped);
    if let Some(k) = &p.kill {
        f.push_evidence(&k.ev);
    }
    f.push_evidence(&x.ev);
    Some(f)
}
