//! Wire records from the kernel programs into [`Record`]s.

use std::borrow::Cow;

use signal_trace_common::{self as wire, Event};

use crate::event::names::{
    errno_name, handler_text, si_code_name, signal_name, syscall_name, NSIG,
};
use crate::event::reason::ignore_reason;
use crate::event::record::*;

#[derive(Debug, thiserror::Error, PartialEq, Eq)]
pub enum DecodeError {
    #[error("ring buffer record is {0} bytes, expected {1}")]
    Size(usize, usize),
    #[error("ring buffer record has unknown kind {0}")]
    Kind(u32),
    #[error("ring buffer record has unknown result {0}")]
    Result(u32),
}

/// Converts the programs' CLOCK_MONOTONIC timestamps into wall-clock time.
#[derive(Clone, Copy, Debug)]
pub struct Clock {
    /// CLOCK_REALTIME minus CLOCK_MONOTONIC, in nanoseconds, at start-up.
    pub offset_ns: i128,
}

impl Clock {
    pub fn now() -> Clock {
        let read = |id| {
            let mut ts = libc::timespec {
                tv_sec: 0,
                tv_nsec: 0,
            };
            // SAFETY: clock_gettime writes one timespec to a valid pointer.
            unsafe { libc::clock_gettime(id, &mut ts) };
            ts.tv_sec as i128 * 1_000_000_000 + ts.tv_nsec as i128
        };
        let mono = read(libc::CLOCK_MONOTONIC);
        let real = read(libc::CLOCK_REALTIME);
        Clock {
            offset_ns: real - mono,
        }
    }

    pub fn wall(&self, mono_ns: u64) -> Time {
        Time((mono_ns as i128 + self.offset_ns).clamp(0, u64::MAX as i128) as u64)
    }
}

/// Reads one ring-buffer record. The buffer may be unaligned.
pub fn parse_event(bytes: &[u8]) -> Result<Event, DecodeError> {
    if bytes.len() < std::mem::size_of::<Event>() {
        return Err(DecodeError::Size(bytes.len(), std::mem::size_of::<Event>()));
    }
    // SAFETY: Event is plain integers with no padding, any bit pattern is valid, and the length
    // was checked; read_unaligned copes with the ring buffer's 8-byte (not struct) alignment.
    Ok(unsafe { std::ptr::read_unaligned(bytes.as_ptr().cast::<Event>()) })
}

/// The kind of a ring-buffer record (its first 4 bytes), to tell an [`wire::Exec`] from an
/// [`Event`] before reading either.
pub fn record_kind(bytes: &[u8]) -> Option<u32> {
    Some(u32::from_ne_bytes(bytes.get(..4)?.try_into().ok()?))
}

/// Reads one `KIND_EXEC` record. The buffer may be unaligned.
pub fn parse_exec(bytes: &[u8]) -> Result<wire::Exec, DecodeError> {
    let size = std::mem::size_of::<wire::Exec>();
    if bytes.len() < size {
        return Err(DecodeError::Size(bytes.len(), size));
    }
    // SAFETY: as in parse_event: integers and byte arrays only, no padding, length checked.
    Ok(unsafe { std::ptr::read_unaligned(bytes.as_ptr().cast::<wire::Exec>()) })
}

/// At most this many arguments of an exec are kept.
pub const MAX_ARGS: usize = 32;

/// What an exec record says of the program a process runs from now on.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Program {
    pub exe: Option<RawText>,
    pub comm: Comm,
    pub args: Vec<RawText>,
    /// More than [`MAX_ARGS`] arguments, or more bytes than the record holds.
    pub args_truncated: bool,
}

/// Splits an exec record into its program: the file name, and the NUL-separated argument
/// block (a cut block's last argument is kept as far as it goes, and marked truncated).
pub fn exec_program(x: &wire::Exec) -> Program {
    let exe_len = (x.exe_len as usize).min(wire::EXE_LEN);
    let exe = &x.exe[..exe_len];
    let exe = exe.iter().position(|&b| b == 0).map_or(exe, |n| &exe[..n]);
    let block = &x.args[..(x.args_len as usize).min(wire::ARGS_LEN)];
    let (args, more) = split_args(block);
    Program {
        exe: (!exe.is_empty()).then(|| RawText::from(exe)),
        comm: Comm(x.comm),
        args,
        args_truncated: more || x.flags & wire::FLAG_ARGS_TRUNCATED != 0,
    }
}

/// The arguments of an argument block (NUL-separated, as execve(2) lays argv out and
/// /proc/PID/cmdline shows it), at most [`MAX_ARGS`]; true when there were more. The block ends
/// with its last argument's NUL; without one, the last argument was cut and is kept as read.
pub fn split_args(block: &[u8]) -> (Vec<RawText>, bool) {
    let block = block.strip_suffix(&[0]).unwrap_or(block);
    let mut args = Vec::new();
    if !block.is_empty() {
        for a in block.split(|&b| b == 0) {
            if args.len() == MAX_ARGS {
                return (args, true);
            }
            args.push(RawText::from(a));
        }
    }
    (args, false)
}

fn comm(c: &[u8; 16]) -> Comm {
    Comm(*c)
}

fn sender(t: &wire::Task) -> Sender {
    Sender {
        pid: t.tgid,
        tid: t.tid,
        comm: comm(&t.comm),
        uid: t.uid,
        cgroup_id: t.cgroup_id,
        container: None,
        unit: None,
        exe: None,
        args: None,
        args_truncated: false,
        ancestors: Vec::new(),
    }
}

/// The sender's ancestors as the kernel named them (process ids, nearest first); the
/// process-identity cache fills in their programs.
fn ancestors(pids: &[u32]) -> Vec<Ancestor> {
    pids.iter()
        .take_while(|&&p| p != 0)
        .map(|&pid| Ancestor {
            pid,
            comm: None,
            exe: None,
        })
        .collect()
}

fn nonzero<T: Default + PartialEq>(v: T) -> Option<T> {
    (v != T::default()).then_some(v)
}

/// Converts a wire event to its record. `full` data (BTF) fills every field; the classic
/// tracepoints leave what they cannot know as null. `node` names the host in every record.
pub fn decode(e: &Event, clock: &Clock, node: &Node) -> Result<Record, DecodeError> {
    let time = clock.wall(e.ts_ns);
    let full = e.flags & wire::FLAG_FULL != 0;
    Ok(match e.kind {
        wire::KIND_GENERATE => {
            // signal_generate fires only for valid signals (1..=64).
            let signo = e.signo as u32;
            let result = Outcome::from_raw(e.result).ok_or(DecodeError::Result(e.result))?;
            let reason = (result == Outcome::Ignored).then(|| {
                if full {
                    ignore_reason(signo, e.handler, e.signal_flags, e.flags, e.target.tgid)
                } else {
                    IgnoreReason::Unknown
                }
            });
            Record::Generate(Generate {
                time,
                host: node.host.clone(),
                boot_id: node.boot_id.clone(),
                signal: signal_name(signo),
                signo,
                code: si_code_name(signo, e.code),
                si_code: e.code,
                errno: e.errno,
                group: e.group != 0,
                result,
                reason,
                sender: Sender {
                    ancestors: ancestors(&e.ancestors),
                    ..sender(&e.sender)
                },
                target: Target {
                    pid: if full { Some(e.target.tgid) } else { None },
                    tid: e.target.tid,
                    comm: comm(&e.target.comm),
                    ns_pid: if full { nonzero(e.target.ns_pid) } else { None },
                    cgroup_id: if full {
                        nonzero(e.target.cgroup_id)
                    } else {
                        None
                    },
                    disposition: full.then(|| Disposition::from_handler(e.handler)),
                    handler: full.then(|| handler_text(e.handler).into_owned()),
                    blocked: full.then_some(e.flags & wire::FLAG_BLOCKED != 0),
                    container: None,
                    unit: None,
                    exe: None,
                },
            })
        }
        wire::KIND_DELIVER => {
            let signo = e.signo as u32;
            // si_pid names a process only for signals that processes send, and for SIGCHLD.
            let from_process = matches!(e.code, 0 | -1 | -6) || (signo == 17 && e.code > 0);
            let group_exit = e.flags & wire::FLAG_GROUP_EXIT != 0;
            // The group's exit code is read only with BTF; its low 7 bits are the signal.
            let group_exit_signo = (group_exit && full)
                .then_some(e.status & 0x7f)
                .filter(|&s| s != 0);
            Record::Deliver(Deliver {
                time,
                host: node.host.clone(),
                boot_id: node.boot_id.clone(),
                signal: signal_name(signo),
                signo,
                code: si_code_name(signo, e.code),
                si_code: e.code,
                cause: Some(if group_exit {
                    DeliverCause::GroupExit
                } else {
                    DeliverCause::Dequeued
                }),
                group_exit_signal: group_exit_signo.map(signal_name),
                group_exit_signo,
                pid: if full {
                    Some(e.target.tgid)
                } else {
                    Some(e.target.tgid).filter(|&p| p != 0)
                },
                tid: e.target.tid,
                comm: comm(&e.target.comm),
                ns_pid: nonzero(e.target.ns_pid),
                cgroup_id: nonzero(e.target.cgroup_id),
                handler: handler_text(e.handler),
                sa_flags: e.sa_flags,
                sender_pid: None,
                claimed_sender_pid: (full && !group_exit && from_process && e.si_pid > 0)
                    .then_some(e.si_pid as u32),
                latency_ns: None,
                container: None,
                unit: None,
            })
        }
        wire::KIND_EXIT => {
            let sig = e.status & 0x7f;
            Record::Exit(Exit {
                time,
                host: node.host.clone(),
                boot_id: node.boot_id.clone(),
                pid: e.target.tgid,
                comm: comm(&e.target.comm),
                ns_pid: nonzero(e.target.ns_pid),
                cgroup_id: nonzero(e.target.cgroup_id),
                exit_code: shell_exit_code(e.status),
                signal: (sig != 0).then(|| signal_name(sig)),
                signo: (sig != 0).then_some(sig),
                core_dumped: sig != 0 && e.status & 0x80 != 0,
                status: e.status,
                killed_by: None,
                container: None,
                unit: None,
            })
        }
        wire::KIND_SEND_FAILED => {
            let pidfd = e.flags & wire::FLAG_PIDFD != 0;
            let tkill = e.syscall == wire::SYSCALL_TKILL;
            Record::SendFailed(SendFailed {
                time,
                host: node.host.clone(),
                boot_id: node.boot_id.clone(),
                syscall: Cow::Borrowed(syscall_name(e.syscall)),
                errno: errno_name(e.errno),
                signal: u32::try_from(e.signo)
                    .ok()
                    .filter(|&s| s <= NSIG)
                    .map(signal_name),
                signo: e.signo,
                sender: sender(&e.sender),
                target_pid: (!pidfd && !tkill).then_some(e.arg_pid),
                target_tid: (e.arg_tid != 0).then_some(e.arg_tid),
                pidfd: pidfd.then_some(e.arg_pid),
            })
        }
        wire::KIND_OOM => Record::Oom(Oom {
            time,
            host: node.host.clone(),
            boot_id: node.boot_id.clone(),
            pid: e.target.tgid,
            comm: (e.target.comm[0] != 0).then(|| comm(&e.target.comm)),
            trigger: sender(&e.sender),
        }),
        k => return Err(DecodeError::Kind(k)),
    })
}

/// The exit status as a shell (`$?`) and Kubernetes show it: 128 + N for a death by signal N,
/// else the exit status byte.
pub fn shell_exit_code(status: u32) -> u32 {
    let sig = status & 0x7f;
    if sig != 0 {
        128 + sig
    } else {
        (status >> 8) & 0xff
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use signal_trace_common::*;

    fn task(tgid: u32, tid: u32, comm: &str) -> wire::Task {
        let mut t = wire::Task {
            tgid,
            tid,
            ..Default::default()
        };
        t.comm[..comm.len()].copy_from_slice(comm.as_bytes());
        t
    }

    fn node() -> Node {
        Node::from_parts(Some("node-a"), "box", Some("boot-1"))
    }

    #[test]
    fn every_record_names_its_node() {
        let mut e = Event {
            kind: KIND_GENERATE,
            signo: 15,
            ..Default::default()
        };
        for kind in [
            KIND_GENERATE,
            KIND_DELIVER,
            KIND_EXIT,
            KIND_SEND_FAILED,
            KIND_OOM,
        ] {
            e.kind = kind;
            let r = decode(&e, &CLOCK, &node()).unwrap();
            assert_eq!(r.host().as_str(), "node-a", "kind {kind}");
            let v = serde_json::to_value(&r).unwrap();
            assert_eq!(v["host"], "node-a", "kind {kind}");
            assert_eq!(v["boot_id"], "boot-1", "kind {kind}");
        }
    }

    const CLOCK: Clock = Clock {
        offset_ns: 1_700_000_000_000_000_000,
    };

    #[test]
    fn clock_converts_monotonic_to_wall_time() {
        assert_eq!(CLOCK.wall(5).to_string(), "2023-11-14T22:13:20.000000005Z");
    }

    #[test]
    fn generate_ignored_by_a_namespace_init() {
        let e = Event {
            kind: KIND_GENERATE,
            signo: 15,
            ts_ns: 1,
            result: 1,
            group: 1,
            flags: FLAG_FULL | FLAG_INFO_NONE,
            signal_flags: 0x40,
            sender: task(100, 100, "bash"),
            target: wire::Task {
                ns_pid: 1,
                cgroup_id: 77,
                ..task(200, 200, "sleep")
            },
            handler: 0,
            ..Default::default()
        };
        let Record::Generate(g) = decode(&e, &CLOCK, &node()).unwrap() else {
            panic!()
        };
        assert_eq!(g.signal, "SIGTERM");
        assert_eq!(g.code, "SI_USER");
        assert_eq!(g.result, Outcome::Ignored);
        assert_eq!(g.reason, Some(IgnoreReason::PidNamespaceInit));
        assert_eq!(g.target.ns_pid, Some(1));
        assert_eq!(g.target.pid, Some(200));
        assert_eq!(g.target.disposition, Some(Disposition::Default));
        assert_eq!(g.target.blocked, Some(false));
        assert_eq!(g.sender.comm.as_str(), "bash");
        assert!(g.group);
    }

    #[test]
    fn classic_generate_leaves_unknowns_null() {
        let e = Event {
            kind: KIND_GENERATE,
            signo: 10,
            result: 1,
            target: task(0, 55, "x"),
            ..Default::default()
        };
        let Record::Generate(g) = decode(&e, &CLOCK, &node()).unwrap() else {
            panic!()
        };
        assert_eq!(g.target.pid, None);
        assert_eq!(g.target.tid, 55);
        assert_eq!(g.target.disposition, None);
        assert_eq!(g.reason, Some(IgnoreReason::Unknown));
    }

    #[test]
    fn deliver_exit_and_failed_sends() {
        let d = Event {
            kind: KIND_DELIVER,
            signo: 10,
            code: -6,
            flags: FLAG_FULL,
            si_pid: 42,
            target: task(7, 8, "app"),
            handler: 0x401000,
            sa_flags: 0x0400_0004,
            ..Default::default()
        };
        let Record::Deliver(d) = decode(&d, &CLOCK, &node()).unwrap() else {
            panic!()
        };
        assert_eq!(
            (d.code.as_ref(), d.handler.as_ref()),
            ("SI_TKILL", "0x401000")
        );
        assert_eq!((d.pid, d.tid, d.claimed_sender_pid), (Some(7), 8, Some(42)));
        assert_eq!(
            (d.cause, d.sender_pid),
            (Some(DeliverCause::Dequeued), None)
        );
        // get_signal()'s group-exit path after a SIGTERM: SIGKILL without siginfo, marked.
        let g = Event {
            kind: KIND_DELIVER,
            signo: 9,
            flags: FLAG_FULL | FLAG_GROUP_EXIT,
            status: 15,
            target: task(7, 9, "app"),
            ..Default::default()
        };
        let Record::Deliver(g) = decode(&g, &CLOCK, &node()).unwrap() else {
            panic!()
        };
        assert_eq!(g.cause, Some(DeliverCause::GroupExit));
        assert_eq!(
            (g.group_exit_signal.as_deref(), g.group_exit_signo),
            (Some("SIGTERM"), Some(15))
        );
        assert_eq!(g.claimed_sender_pid, None);
        // After exit_group(3): no signal ended the group.
        let plain = Event {
            status: 3 << 8,
            ..g_wire()
        };
        let Record::Deliver(plain) = decode(&plain, &CLOCK, &node()).unwrap() else {
            panic!()
        };
        assert_eq!(
            (plain.group_exit_signal, plain.group_exit_signo),
            (None, None)
        );

        let x = Event {
            kind: KIND_EXIT,
            status: 9,
            flags: FLAG_FULL,
            target: task(7, 7, "app"),
            ..Default::default()
        };
        let Record::Exit(x) = decode(&x, &CLOCK, &node()).unwrap() else {
            panic!()
        };
        assert_eq!(
            (x.exit_code, x.signal.as_deref(), x.core_dumped),
            (137, Some("SIGKILL"), false)
        );
        let core = Event {
            kind: KIND_EXIT,
            status: 0x80 | 11,
            ..Default::default()
        };
        let Record::Exit(core) = decode(&core, &CLOCK, &node()).unwrap() else {
            panic!()
        };
        assert_eq!((core.exit_code, core.core_dumped), (139, true));
        let clean = Event {
            kind: KIND_EXIT,
            status: 3 << 8,
            ..Default::default()
        };
        let Record::Exit(clean) = decode(&clean, &CLOCK, &node()).unwrap() else {
            panic!()
        };
        assert_eq!((clean.exit_code, clean.signal), (3, None));

        let f = Event {
            kind: KIND_SEND_FAILED,
            signo: 15,
            errno: 1,
            syscall: SYSCALL_KILL,
            arg_pid: 1,
            sender: wire::Task {
                uid: 65534,
                ..task(9, 9, "kill")
            },
            ..Default::default()
        };
        let Record::SendFailed(f) = decode(&f, &CLOCK, &node()).unwrap() else {
            panic!()
        };
        assert_eq!(
            (f.syscall.as_ref(), f.errno.as_ref(), f.target_pid),
            ("kill", "EPERM", Some(1))
        );
        assert_eq!(f.sender.uid, 65534);
        let p = Event {
            kind: KIND_SEND_FAILED,
            syscall: SYSCALL_PIDFD_SEND_SIGNAL,
            flags: FLAG_PIDFD,
            arg_pid: 5,
            errno: 3,
            ..Default::default()
        };
        let Record::SendFailed(p) = decode(&p, &CLOCK, &node()).unwrap() else {
            panic!()
        };
        assert_eq!((p.target_pid, p.pidfd), (None, Some(5)));
    }

    fn g_wire() -> Event {
        Event {
            kind: KIND_DELIVER,
            signo: 9,
            flags: FLAG_FULL | FLAG_GROUP_EXIT,
            target: task(7, 9, "app"),
            ..Default::default()
        }
    }

    #[test]
    fn refused_sends_keep_the_numbers_and_threads_the_caller_passed() {
        let f = |syscall, signo, arg_pid, arg_tid| {
            let e = Event {
                kind: KIND_SEND_FAILED,
                signo,
                errno: 22,
                syscall,
                arg_pid,
                arg_tid,
                ..Default::default()
            };
            let Record::SendFailed(f) = decode(&e, &CLOCK, &node()).unwrap() else {
                panic!()
            };
            f
        };
        let k = f(SYSCALL_KILL, -1, 5, 0);
        assert_eq!((k.signo, k.signal, k.target_pid), (-1, None, Some(5)));
        let k = f(SYSCALL_KILL, 65, 5, 0);
        assert_eq!((k.signo, k.signal), (65, None));
        let k = f(SYSCALL_KILL, 0, 5, 0);
        assert_eq!(k.signal.as_deref(), Some("0"));
        let t = f(SYSCALL_TKILL, 15, 0, 77);
        assert_eq!((t.target_pid, t.target_tid), (None, Some(77)));
        let t = f(SYSCALL_TGKILL, 15, 70, 77);
        assert_eq!((t.target_pid, t.target_tid), (Some(70), Some(77)));
    }

    #[test]
    fn malformed_wire_records_are_errors() {
        assert_eq!(
            parse_event(&[0u8; 10]),
            Err(DecodeError::Size(10, std::mem::size_of::<Event>()))
        );
        assert_eq!(
            parse_exec(&[0u8; 300]),
            Err(DecodeError::Size(300, std::mem::size_of::<Exec>()))
        );
        assert_eq!(record_kind(&[7, 0, 0]), None);
        assert_eq!(record_kind(&KIND_EXEC.to_ne_bytes()), Some(KIND_EXEC));
        let bad = Event {
            kind: 99,
            ..Default::default()
        };
        assert_eq!(decode(&bad, &CLOCK, &node()), Err(DecodeError::Kind(99)));
        let bad = Event {
            kind: KIND_GENERATE,
            result: 9,
            ..Default::default()
        };
        assert_eq!(decode(&bad, &CLOCK, &node()), Err(DecodeError::Result(9)));
    }

    #[test]
    fn parse_event_reads_unaligned_bytes() {
        let e = Event {
            kind: KIND_EXIT,
            signo: 9,
            status: 9,
            ..Default::default()
        };
        let mut buf = vec![0u8; 1 + std::mem::size_of::<Event>()];
        // SAFETY: Event is plain data; copy its bytes at an odd offset.
        let bytes = unsafe {
            std::slice::from_raw_parts(
                (&e as *const Event).cast::<u8>(),
                std::mem::size_of::<Event>(),
            )
        };
        buf[1..].copy_from_slice(bytes);
        assert_eq!(parse_event(&buf[1..]).unwrap(), e);
    }
}
