//! Wire records from the kernel programs into [`Record`]s.

use std::borrow::Cow;

use signal_trace_common::{self as wire, Event};

use crate::event::names::{errno_name, handler_text, si_code_name, signal_name, syscall_name};
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
    }
}

fn nonzero<T: Default + PartialEq>(v: T) -> Option<T> {
    (v != T::default()).then_some(v)
}

/// Converts a wire event to its record. `full` data (BTF) fills every field; the classic
/// tracepoints leave what they cannot know as null.
pub fn decode(e: &Event, clock: &Clock) -> Result<Record, DecodeError> {
    let time = clock.wall(e.ts_ns);
    let full = e.flags & wire::FLAG_FULL != 0;
    Ok(match e.kind {
        wire::KIND_GENERATE => {
            let result = Outcome::from_raw(e.result).ok_or(DecodeError::Result(e.result))?;
            let reason = (result == Outcome::Ignored).then(|| {
                if full {
                    ignore_reason(e.signo, e.handler, e.signal_flags, e.flags, e.target.tgid)
                } else {
                    IgnoreReason::Unknown
                }
            });
            Record::Generate(Generate {
                time,
                signal: signal_name(e.signo),
                signo: e.signo,
                code: si_code_name(e.signo, e.code),
                si_code: e.code,
                errno: e.errno,
                group: e.group != 0,
                result,
                reason,
                sender: sender(&e.sender),
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
                },
            })
        }
        wire::KIND_DELIVER => {
            // si_pid names a process only for signals that processes send, and for SIGCHLD.
            let from_process = matches!(e.code, 0 | -1 | -6) || (e.signo == 17 && e.code > 0);
            Record::Deliver(Deliver {
                time,
                signal: signal_name(e.signo),
                signo: e.signo,
                code: si_code_name(e.signo, e.code),
                si_code: e.code,
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
                sender_pid: (full && from_process && e.si_pid > 0).then_some(e.si_pid as u32),
                latency_ns: None,
                container: None,
                unit: None,
            })
        }
        wire::KIND_EXIT => {
            let sig = e.status & 0x7f;
            Record::Exit(Exit {
                time,
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
            Record::SendFailed(SendFailed {
                time,
                syscall: Cow::Borrowed(syscall_name(e.syscall)),
                errno: errno_name(e.errno),
                signal: signal_name(e.signo),
                signo: e.signo,
                sender: sender(&e.sender),
                target_pid: (!pidfd).then_some(e.arg_pid),
                target_tid: (e.arg_tid != 0).then_some(e.arg_tid),
                pidfd: pidfd.then_some(e.arg_pid),
            })
        }
        wire::KIND_OOM => Record::Oom(Oom {
            time,
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
        let Record::Generate(g) = decode(&e, &CLOCK).unwrap() else {
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
        let Record::Generate(g) = decode(&e, &CLOCK).unwrap() else {
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
        let Record::Deliver(d) = decode(&d, &CLOCK).unwrap() else {
            panic!()
        };
        assert_eq!(
            (d.code.as_ref(), d.handler.as_ref()),
            ("SI_TKILL", "0x401000")
        );
        assert_eq!((d.pid, d.tid, d.sender_pid), (Some(7), 8, Some(42)));

        let x = Event {
            kind: KIND_EXIT,
            status: 9,
            flags: FLAG_FULL,
            target: task(7, 7, "app"),
            ..Default::default()
        };
        let Record::Exit(x) = decode(&x, &CLOCK).unwrap() else {
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
        let Record::Exit(core) = decode(&core, &CLOCK).unwrap() else {
            panic!()
        };
        assert_eq!((core.exit_code, core.core_dumped), (139, true));
        let clean = Event {
            kind: KIND_EXIT,
            status: 3 << 8,
            ..Default::default()
        };
        let Record::Exit(clean) = decode(&clean, &CLOCK).unwrap() else {
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
        let Record::SendFailed(f) = decode(&f, &CLOCK).unwrap() else {
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
        let Record::SendFailed(p) = decode(&p, &CLOCK).unwrap() else {
            panic!()
        };
        assert_eq!((p.target_pid, p.pidfd), (None, Some(5)));
    }

    #[test]
    fn malformed_wire_records_are_errors() {
        assert_eq!(parse_event(&[0u8; 10]), Err(DecodeError::Size(10, 168)));
        let bad = Event {
            kind: 99,
            ..Default::default()
        };
        assert_eq!(decode(&bad, &CLOCK), Err(DecodeError::Kind(99)));
        let bad = Event {
            kind: KIND_GENERATE,
            result: 9,
            ..Default::default()
        };
        assert_eq!(decode(&bad, &CLOCK), Err(DecodeError::Result(9)));
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
