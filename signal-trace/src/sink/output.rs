//! Writing records: NDJSON for machines, aligned text lines for people.

use std::fmt::Write as _;
use std::io::{self, Write};

use crate::config::Format;
use crate::escape::Escaped;
use crate::event::names::sa_flags_names;
use crate::event::record::*;
use crate::sink::ndjson::Encoder;

/// Buffered record writer. The caller flushes (the trace loop does so at least every 100 ms).
/// The buffer holds whole lines only and goes out in one `write_all`, so an output that fails
/// midway (see [`FileOut`]) can drop the partial batch rather than leave half a line.
pub struct Sink<W: Write> {
    out: W,
    buf: Vec<u8>,
    format: Format,
    color: bool,
    line: String,
    encoder: Encoder,
}

impl<W: Write> Sink<W> {
    pub fn new(out: W, format: Format, color: bool) -> Sink<W> {
        Sink {
            out,
            buf: Vec::with_capacity(SINK_BATCH + 4096),
            format,
            color,
            line: String::with_capacity(256),
            encoder: Encoder::default(),
        }
    }

    /// Writes one item as one whole line of JSON, or its text: JSON is encoded straight into the
    /// buffer and cut back off if encoding fails, and text is rendered first, so a failed write
    /// never leaves half an item behind in the buffer.
    pub fn write<T: Item>(&mut self, item: &T) -> io::Result<()> {
        match self.format {
            Format::Json => {
                let start = self.buf.len();
                if let Err(e) = item.json(&mut self.encoder, &mut self.buf) {
                    self.buf.truncate(start);
                    return Err(io::Error::other(e));
                }
                self.buf.push(b'\n');
            }
            Format::Text => {
                self.line.clear();
                item.text(&mut self.line, self.color);
                if !self.line.ends_with('\n') {
                    self.line.push('\n');
                }
                self.buf.extend_from_slice(self.line.as_bytes());
            }
        }
        if self.buf.len() >= SINK_BATCH {
            self.flush()?;
        }
        Ok(())
    }

    pub fn flush(&mut self) -> io::Result<()> {
        if !self.buf.is_empty() {
            let result = self.out.write_all(&self.buf);
            self.buf.clear();
            result?;
        }
        self.out.flush()
    }

    /// The output itself (to reopen it); flush first.
    pub fn get_mut(&mut self) -> &mut W {
        &mut self.out
    }

    pub fn into_inner(mut self) -> io::Result<W> {
        self.flush()?;
        Ok(self.out)
    }
}

/// Lines are written out once this much is buffered (and on every flush).
const SINK_BATCH: usize = 64 * 1024;

/// An output file written in whole batches: when a write fails partway (a full disk), the file
/// is cut back to where the batch began, so it never ends in a torn line.
pub struct FileOut {
    file: std::fs::File,
    /// Length of the file after the last complete batch.
    committed: u64,
}

impl FileOut {
    pub fn new(file: std::fs::File) -> io::Result<FileOut> {
        let committed = file.metadata()?.len();
        Ok(FileOut { file, committed })
    }

    /// The file's length after the last complete batch.
    pub fn committed(&self) -> u64 {
        self.committed
    }
}

impl Write for FileOut {
    fn write(&mut self, buf: &[u8]) -> io::Result<usize> {
        self.write_all(buf)?;
        Ok(buf.len())
    }

    fn write_all(&mut self, buf: &[u8]) -> io::Result<()> {
        match self.file.write_all(buf) {
            Ok(()) => {
                self.committed += buf.len() as u64;
                Ok(())
            }
            Err(e) => {
                // Whatever part of the batch got in is cut off again.
                let _ = self.file.set_len(self.committed);
                Err(e)
            }
        }
    }

    fn flush(&mut self) -> io::Result<()> {
        self.file.flush()
    }
}

/// Something the sink can write: NDJSON (through serde unless the item has an encoder of its
/// own), or text for people.
pub trait Item: serde::Serialize {
    fn text(&self, out: &mut String, color: bool);

    /// Appends the item as one JSON object.
    fn json(&self, _encoder: &mut Encoder, out: &mut Vec<u8>) -> serde_json::Result<()> {
        serde_json::to_writer(out, self)
    }
}

impl Item for Record {
    fn text(&self, out: &mut String, color: bool) {
        text_line(out, self, color);
    }

    /// Records, nearly every line written, take the encoder that writes serde_json's bytes
    /// without its per-field cost.
    fn json(&self, encoder: &mut Encoder, out: &mut Vec<u8>) -> serde_json::Result<()> {
        encoder.record(out, self);
        Ok(())
    }
}

impl Item for crate::sink::summary::Summary {
    fn text(&self, out: &mut String, _color: bool) {
        out.push_str(&crate::sink::summary::render_text(self));
    }
}

const RED: &str = "\x1b[1;31m";
const YELLOW: &str = "\x1b[1;33m";
const MAGENTA: &str = "\x1b[35m";
const DIM: &str = "\x1b[2m";
const RESET: &str = "\x1b[0m";

fn paint(out: &mut String, color: bool, style: &str, text: &str) {
    if color {
        let _ = write!(out, "{style}{text}{RESET}");
    } else {
        out.push_str(text);
    }
}

fn who(comm: &Comm, pid: Option<u32>, tid: u32) -> String {
    match pid {
        Some(p) if p == tid || tid == 0 => format!("{comm}({p})"),
        Some(p) => format!("{comm}({p}/{tid})"),
        None => format!("{comm}(tid {tid})"),
    }
}

/// Where a process runs, for people: "ns/pod:container", or the container's name or short id.
/// Every part comes from the runtime (labels, names) and is escaped.
pub fn where_text(c: Option<&Container>) -> String {
    let Some(c) = c else { return String::new() };
    let short = Escaped::str(c.id.get(..12).unwrap_or(&c.id));
    let (namespace, pod, name) = (
        c.namespace.as_deref().map(Escaped::str),
        c.pod.as_deref().map(Escaped::str),
        c.name.as_deref().map(Escaped::str),
    );
    let runtime = Escaped::str(&c.runtime);
    match (namespace, pod, name) {
        (Some(ns), Some(pod), Some(name)) => format!(" {ns}/{pod}:{name}"),
        (_, Some(pod), _) => format!(" {pod}:{short}"),
        (_, _, Some(name)) => format!(" {name}"),
        _ => format!(" {runtime}:{short}"),
    }
}

/// Where a process runs: its container (see [`where_text`]), or else its systemd unit.
pub fn place_text(c: Option<&Container>, unit: Option<&str>) -> String {
    match (c, unit) {
        (Some(_), _) => where_text(c),
        (None, Some(u)) => format!(" {}", Escaped::str(u)),
        (None, None) => String::new(),
    }
}

fn latency(ns: u64) -> String {
    match ns {
        0..=999 => format!("{ns}ns"),
        1_000..=999_999 => format!("{:.1}µs", ns as f64 / 1e3),
        1_000_000..=999_999_999 => format!("{:.1}ms", ns as f64 / 1e6),
        _ => format!("{:.1}s", ns as f64 / 1e9),
    }
}

/// One human line for a record (no newline). Columns: time, event, sender → target, signal,
/// code, outcome and details.
///
/// Every string a process or a runtime controls (comms, container names, and, in a replayed
/// file, the signal, code, handler and errno strings) is escaped, so the line stays one line
/// and no byte of it reaches the terminal as a control. A signal a process sent shows the
/// sender's real uid, `[uid N]`: the kernel's fact, where the comm is only the sender's claim.
pub fn text_line(out: &mut String, r: &Record, color: bool) {
    let _ = write!(out, "{}  ", r.time().clock());
    match r {
        Record::Generate(g) => {
            let mut target = who(&g.target.comm, g.target.pid, g.target.tid);
            if let Some(ns) = g.target.ns_pid.filter(|&n| Some(n) != g.target.pid) {
                let _ = write!(target, "[ns {ns}]");
            }
            target.push_str(&place_text(
                g.target.container.as_ref(),
                g.target.unit.as_deref(),
            ));
            let mut sender = who(&g.sender.comm, Some(g.sender.pid), g.sender.tid);
            if g.si_code <= 0 {
                // Sent by a process (SI_USER, SI_QUEUE, SI_TKILL, ...), not by the kernel.
                let _ = write!(sender, "[uid {}]", g.sender.uid);
            }
            sender.push_str(&place_text(
                g.sender.container.as_ref(),
                g.sender.unit.as_deref(),
            ));
            let _ = write!(
                out,
                "{:<8} {:>24} → {:<28} {:<10} {:<11} ",
                "signal",
                sender,
                target,
                Escaped::str(&g.signal),
                Escaped::str(&g.code)
            );
            match g.result {
                Outcome::Delivered | Outcome::LoseInfo => {
                    out.push_str(g.result.as_str());
                    if let Some(d) = g.target.disposition {
                        let what = match d {
                            Disposition::Default => "default action",
                            Disposition::Ignore => "SIG_IGN",
                            Disposition::Handler => "handler",
                        };
                        let _ = write!(out, " ({what}");
                        if g.target.blocked == Some(true) {
                            out.push_str(", blocked");
                        }
                        out.push(')');
                    }
                }
                // SIGCONT's work happens when it is generated (prepare_signal() resumes a
                // stopped process); only the signal itself is then dropped, having no handler.
                Outcome::Ignored
                    if g.signo == crate::event::names::SIGCONT
                        && g.reason == Some(IgnoreReason::DefaultIgnore) =>
                {
                    out.push_str("resumed the process if it was stopped; the signal itself discarded (no handler)");
                }
                Outcome::Ignored => {
                    let reason = g
                        .reason
                        .map(IgnoreReason::describe)
                        .unwrap_or("reason unknown");
                    paint(out, color, RED, &format!("IGNORED: {reason}"));
                }
                Outcome::AlreadyPending => paint(out, color, YELLOW, "already pending: merged"),
                Outcome::Overflow => paint(out, color, RED, "OVERFLOW: real-time queue full"),
            }
        }
        Record::Deliver(d) if d.cause == Some(DeliverCause::GroupExit) => {
            let cause = match &d.group_exit_signal {
                Some(sig) => format!("process ending ({})", Escaped::str(sig)),
                None => "process ending (exit_group or exec)".into(),
            };
            let _ = write!(
                out,
                "{:<8} {:>24}   {:<28} {:<22} ",
                "group exit",
                "",
                who(&d.comm, d.pid, d.tid) + &place_text(d.container.as_ref(), d.unit.as_deref()),
                cause,
            );
            out.push_str("thread ends; no SIGKILL is delivered");
            if let Some(ns) = d.latency_ns {
                let _ = write!(out, " ({} after the signal)", latency(ns));
            }
        }
        Record::Deliver(d) => {
            let _ = write!(
                out,
                "{:<8} {:>24}   {:<28} {:<10} {:<11} ",
                "deliver",
                "",
                who(&d.comm, d.pid, d.tid) + &place_text(d.container.as_ref(), d.unit.as_deref()),
                Escaped::str(&d.signal),
                Escaped::str(&d.code)
            );
            match d.handler.as_ref() {
                "default" => out.push_str("default action"),
                "ignore" => out.push_str("SIG_IGN"),
                h => {
                    let _ = write!(out, "handler {}", Escaped::str(h));
                }
            }
            let flags = sa_flags_names(d.sa_flags);
            if !flags.is_empty() {
                let _ = write!(out, " [{flags}]");
            }
            if let Some(ns) = d.latency_ns {
                let _ = write!(out, " after {}", latency(ns));
            }
        }
        Record::Exit(x) => {
            let _ = write!(
                out,
                "{:<8} {:>24}   {:<28} ",
                "exit",
                "",
                who(&x.comm, Some(x.pid), x.pid)
                    + &place_text(x.container.as_ref(), x.unit.as_deref())
            );
            match &x.signal {
                Some(sig) => {
                    let core = if x.core_dumped { ", core dumped" } else { "" };
                    paint(
                        out,
                        color,
                        MAGENTA,
                        &format!(
                            "killed by {}{core}: exit code {}",
                            Escaped::str(sig),
                            x.exit_code
                        ),
                    );
                    if let Some(k) = &x.killed_by {
                        let _ = write!(
                            out,
                            " (sent by {}({}) {} earlier)",
                            k.comm,
                            k.pid,
                            latency(x.time.since(k.time))
                        );
                    }
                }
                None => {
                    let _ = write!(out, "exited: exit code {}", x.exit_code);
                }
            }
        }
        Record::SendFailed(s) => {
            let sender = who(&s.sender.comm, Some(s.sender.pid), s.sender.tid);
            let target = match (s.target_pid, s.target_tid, s.pidfd) {
                (_, _, Some(fd)) => format!("pidfd {fd}"),
                (Some(p), Some(t), _) => format!("pid {p}/{t}"),
                (Some(p), None, _) => format!("pid {p}"),
                (None, Some(t), _) => format!("tid {t}"),
                _ => "?".into(),
            };
            let _ = write!(
                out,
                "{:<8} {:>24} → {:<28} {:<10} {:<11} ",
                "send",
                sender,
                target,
                Escaped::str(&s.signal_text()),
                Escaped::str(&s.syscall)
            );
            paint(
                out,
                color,
                RED,
                &format!("FAILED: {} (uid {})", Escaped::str(&s.errno), s.sender.uid),
            );
        }
        Record::Oom(o) => {
            let victim = match &o.comm {
                Some(c) => who(c, Some(o.pid), o.pid),
                None => format!("pid {}", o.pid),
            };
            let trigger = who(&o.trigger.comm, Some(o.trigger.pid), o.trigger.tid);
            let _ = write!(out, "{:<8} {:>24} → {:<28} ", "oom", trigger, victim);
            paint(
                out,
                color,
                RED,
                "OOM KILLER chose this victim: SIGKILL follows",
            );
        }
        Record::Lost(l) => {
            paint(
                out,
                color,
                RED,
                &format!(
                    "LOST {} events: the ring buffer was full (raise --ring-size)",
                    l.count
                ),
            );
        }
    }
    if color && matches!(r, Record::Deliver(_)) {
        // Deliveries are the quieter half of the story.
        out.insert_str(0, DIM);
        out.push_str(RESET);
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::borrow::Cow;

    fn ignored() -> Record {
        Record::Generate(Generate {
            time: Time(1_700_000_000_123_456_789),
            host: Default::default(),
            boot_id: None,
            signal: Cow::Borrowed("SIGTERM"),
            signo: 15,
            code: Cow::Borrowed("SI_USER"),
            si_code: 0,
            errno: 0,
            group: true,
            result: Outcome::Ignored,
            reason: Some(IgnoreReason::PidNamespaceInit),
            sender: Sender {
                pid: 10,
                tid: 10,
                comm: Comm::new("bash"),
                uid: 0,
                cgroup_id: 1,
                container: None,
                unit: None,
                ..Sender::default()
            },
            target: Target {
                pid: Some(20),
                tid: 20,
                comm: Comm::new("sleep"),
                ns_pid: Some(1),
                cgroup_id: Some(2),
                disposition: Some(Disposition::Default),
                handler: Some("default".into()),
                blocked: Some(false),
                container: None,
                unit: None,
                exe: None,
            },
        })
    }

    #[test]
    fn json_is_one_object_per_line() {
        let mut sink = Sink::new(Vec::new(), Format::Json, false);
        sink.write(&ignored()).unwrap();
        sink.write(&ignored()).unwrap();
        let buf = sink.into_inner().unwrap();
        let text = String::from_utf8(buf).unwrap();
        let lines: Vec<_> = text.lines().collect();
        assert_eq!(lines.len(), 2);
        let v: serde_json::Value = serde_json::from_str(lines[0]).unwrap();
        assert_eq!(v["event"], "generate");
        assert_eq!(v["time"], "2023-11-14T22:13:20.123456789Z");
        assert_eq!(v["result"], "ignored");
        assert_eq!(v["reason"], "pid_namespace_init");
        assert_eq!(v["target"]["ns_pid"], 1);
        assert_eq!(v["sender"]["comm"], "bash");
        // And it reads back to the same record.
        let back: Record = serde_json::from_str(lines[0]).unwrap();
        assert_eq!(back, ignored());
    }

    #[test]
    fn text_makes_an_ignored_signal_stand_out() {
        let mut line = String::new();
        text_line(&mut line, &ignored(), false);
        assert!(line.starts_with("22:13:20.123456  signal"), "{line}");
        assert!(line.contains("bash(10)[uid 0] → sleep(20)[ns 1]"), "{line}");
        assert!(line.contains("SIGTERM"), "{line}");
        assert!(
            line.ends_with("IGNORED: PID-namespace init with default handler"),
            "{line}"
        );
        // a unit or a container beside the comm, on one line
        let Record::Generate(mut g) = ignored() else {
            unreachable!()
        };
        g.sender.unit = Some("cron.service".into());
        g.target.unit = Some("nginx.service".into());
        g.target.container = Some(Container {
            id: "5e5e56284716d1377022e5040c601c82".into(),
            runtime: "docker".into(),
            name: Some("web".into()),
            ..Container::default()
        });
        let mut named = String::new();
        text_line(&mut named, &Record::Generate(g), false);
        assert!(
            named.contains("bash(10)[uid 0] cron.service → sleep(20)[ns 1] web "),
            "{named}"
        );
        assert!(!named.contains("nginx"), "the container wins: {named}");
        assert!(!named.contains('\n'), "{named}");
        let mut colored = String::new();
        text_line(&mut colored, &ignored(), true);
        assert!(colored.contains("\x1b[1;31mIGNORED"), "{colored}");
    }

    #[test]
    fn text_for_exits_and_failures() {
        let x = Record::Exit(Exit {
            time: Time(5_000_000_000),
            host: Default::default(),
            boot_id: None,
            pid: 7,
            comm: Comm::new("app"),
            ns_pid: None,
            cgroup_id: None,
            exit_code: 137,
            signal: Some(Cow::Borrowed("SIGKILL")),
            signo: Some(9),
            core_dumped: false,
            status: 9,
            killed_by: Some(KilledBy {
                pid: 1,
                comm: Comm::new("containerd-shim"),
                signal: Cow::Borrowed("SIGKILL"),
                code: Cow::Borrowed("SI_USER"),
                time: Time(3_000_000_000),
            }),
            container: None,
            unit: None,
        });
        let mut line = String::new();
        text_line(&mut line, &x, false);
        assert!(
            line.contains(
                "killed by SIGKILL: exit code 137 (sent by containerd-shim(1) 2.0s earlier)"
            ),
            "{line}"
        );
        let f = Record::SendFailed(SendFailed {
            time: Time(0),
            host: Default::default(),
            boot_id: None,
            syscall: Cow::Borrowed("kill"),
            errno: Cow::Borrowed("EPERM"),
            signal: Some(Cow::Borrowed("SIGTERM")),
            signo: 15,
            sender: Sender {
                pid: 3,
                tid: 3,
                comm: Comm::new("kill"),
                uid: 65534,
                cgroup_id: 0,
                container: None,
                unit: None,
                ..Sender::default()
            },
            target_pid: Some(1),
            target_tid: None,
            pidfd: None,
        });
        line.clear();
        text_line(&mut line, &f, false);
        assert!(line.contains("kill(3) → pid 1"), "{line}");
        assert!(line.ends_with("FAILED: EPERM (uid 65534)"), "{line}");
    }

    #[test]
    fn hostile_strings_stay_on_one_line_and_show_as_escapes() {
        use crate::escape::{has_terminal_controls, HOSTILE};
        let hostile_comm = Comm::new("\x1b]0;x\x07\nFAKE");
        let evil = || Cow::Owned(HOSTILE.to_owned());
        let container = Container {
            id: format!("{HOSTILE}0123456789abcdef"),
            runtime: HOSTILE.into(),
            name: Some(HOSTILE.into()),
            pod: Some(HOSTILE.into()),
            namespace: Some(HOSTILE.into()),
            image: Some(HOSTILE.into()),
            compose: Some(Compose {
                project: HOSTILE.into(),
                service: HOSTILE.into(),
            }),
            grace_period_s: None,
        };
        let mut g = match ignored() {
            Record::Generate(g) => g,
            _ => unreachable!(),
        };
        g.sender.comm = hostile_comm;
        g.sender.uid = 65534;
        g.target.comm = hostile_comm;
        g.signal = evil();
        g.code = evil();
        g.result = Outcome::Delivered;
        g.target.container = Some(container.clone());
        let mut only_id = container.clone();
        (only_id.name, only_id.pod, only_id.namespace) = (None, None, None);
        g.sender.container = Some(only_id);
        let d = Record::Deliver(Deliver {
            host: Label::new(HOSTILE),
            boot_id: Some(Label::new(HOSTILE)),
            time: Time(0),
            signal: evil(),
            signo: 15,
            code: evil(),
            si_code: 0,
            pid: Some(5),
            tid: 5,
            comm: hostile_comm,
            ns_pid: None,
            cgroup_id: None,
            handler: evil(),
            sa_flags: 0,
            sender_pid: Some(1),
            claimed_sender_pid: Some(1),
            cause: None,
            group_exit_signal: Some(evil()),
            group_exit_signo: Some(15),
            latency_ns: None,
            container: Some(container.clone()),
            unit: Some(HOSTILE.into()),
        });
        let x = Record::Exit(Exit {
            host: Label::new(HOSTILE),
            boot_id: Some(Label::new(HOSTILE)),
            time: Time(5),
            pid: 7,
            comm: hostile_comm,
            ns_pid: None,
            cgroup_id: None,
            exit_code: 143,
            signal: Some(evil()),
            signo: Some(15),
            core_dumped: false,
            status: 15,
            killed_by: Some(KilledBy {
                pid: 1,
                comm: hostile_comm,
                signal: evil(),
                code: evil(),
                time: Time(3),
            }),
            container: None,
            unit: Some(HOSTILE.into()),
        });
        let f = Record::SendFailed(SendFailed {
            host: Label::new(HOSTILE),
            boot_id: Some(Label::new(HOSTILE)),
            time: Time(0),
            syscall: evil(),
            errno: evil(),
            signal: Some(evil()),
            signo: 15,
            sender: Sender {
                comm: hostile_comm,
                ..Sender::default()
            },
            target_pid: Some(1),
            target_tid: None,
            pidfd: None,
        });
        let group_exit = match &d {
            Record::Deliver(d) => Record::Deliver(Deliver {
                cause: Some(DeliverCause::GroupExit),
                ..d.clone()
            }),
            _ => unreachable!(),
        };
        let mut sink = Sink::new(Vec::new(), Format::Text, true);
        for r in [Record::Generate(g), d, group_exit, x, f] {
            sink.write(&r).unwrap();
        }
        let out = String::from_utf8(sink.into_inner().unwrap()).unwrap();
        assert_eq!(out.lines().count(), 5, "{out}");
        // Colour codes are the only ESC bytes: take them out, and nothing else acts.
        let plain = out
            .replace(RED, "")
            .replace(YELLOW, "")
            .replace(MAGENTA, "")
            .replace(DIM, "")
            .replace(RESET, "");
        assert!(!has_terminal_controls(plain.as_bytes(), true), "{plain:?}");
        assert!(!plain.lines().any(|l| l.starts_with("FAKE")), "{plain}");
        assert!(
            plain.contains(
                "\\x1b]0;x\\x07\\nFAKE(10)[uid 65534] \\x1b[2J\\x1b]0;x\\x07\\nFAKE:\\x1b"
            ),
            "{plain}"
        );
        assert!(plain.contains("handler \\x1b[2J"), "{plain}");
        assert!(plain.contains("FAILED: \\x1b[2J"), "{plain}");
    }

    /// A writer that accepts `room` bytes and then fails like a full disk.
    struct Full {
        data: Vec<u8>,
        room: usize,
    }

    impl Write for Full {
        fn write(&mut self, buf: &[u8]) -> io::Result<usize> {
            if self.data.len() >= self.room {
                return Err(io::Error::from_raw_os_error(libc::ENOSPC));
            }
            let n = buf.len().min(self.room - self.data.len());
            self.data.extend_from_slice(&buf[..n]);
            Ok(n)
        }
        fn flush(&mut self) -> io::Result<()> {
            Ok(())
        }
    }

    #[test]
    fn batches_hold_whole_lines() {
        let mut sink = Sink::new(
            Full {
                data: Vec::new(),
                room: 4 << 20,
            },
            Format::Json,
            false,
        );
        for _ in 0..2000 {
            sink.write(&ignored()).unwrap();
        }
        let out = sink.into_inner().unwrap();
        assert!(out.data.ends_with(b"\n"));
        assert_eq!(out.data.iter().filter(|&&b| b == b'\n').count(), 2000);
    }

    #[test]
    fn a_full_disk_leaves_no_torn_line() {
        let path =
            std::env::temp_dir().join(format!("signal-trace-fileout-{}", std::process::id()));
        let file = std::fs::OpenOptions::new()
            .create(true)
            .write(true)
            .truncate(true)
            .open(&path)
            .unwrap();
        let mut out = FileOut::new(file).unwrap();
        out.write_all(b"{\"a\":1}\n").unwrap();
        // A batch that fails partway is cut back off.
        let mut failing = FileOut {
            file: std::fs::File::open(&path).unwrap(),
            committed: 8,
        };
        assert!(
            failing.write_all(b"{\"b\":2}\n").is_err(),
            "a read-only file cannot be written"
        );
        assert_eq!(std::fs::read(&path).unwrap(), b"{\"a\":1}\n");
        let _ = std::fs::remove_file(&path);
    }

    #[test]
    fn latencies_are_readable() {
        assert_eq!(latency(950), "950ns");
        assert_eq!(latency(12_345), "12.3µs");
        assert_eq!(latency(8_884), "8.9µs");
        assert_eq!(latency(25_000_000), "25.0ms");
        assert_eq!(latency(2_500_000_000), "2.5s");
        assert_eq!(latency(25_000_000_000), "25.0s");
    }
}
