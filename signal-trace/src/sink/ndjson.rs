//! NDJSON for [`Record`]s, written straight into the output buffer.
//!
//! Byte for byte what `serde_json::to_writer` writes for the same record (the derive in
//! [`crate::event::record`] stays the contract, and replay reads records back through it), but
//! several times cheaper on the trace loop's hot path: field names are literal bytes rather
//! than strings escaped anew for every record, numbers go through `itoa`, strings take one
//! scan when they need no escape, and a timestamp's date and time of day are formatted once
//! per second. The tests compare the two encoders on every variant, every optional field and
//! hostile strings; the `wire_event` fuzz target compares them on whatever it decodes.

use crate::event::record::*;

/// `,"NAME":` (every key but an object's first), one copy of a length known when compiling.
macro_rules! key {
    ($out:expr, $name:literal) => {
        $out.extend_from_slice(concat!(",\"", $name, "\":").as_bytes())
    };
}

/// Encodes records; keeps the text of the last second seen, as consecutive records share it.
#[derive(Default)]
pub struct Encoder {
    /// Seconds since the epoch of `second_text`, or `None` before the first record.
    second: Option<u64>,
    /// `YYYY-MM-DDTHH:MM:SS.` for `second`.
    second_text: Vec<u8>,
}

impl Encoder {
    /// Appends `r` as one JSON object (no newline).
    pub fn record(&mut self, out: &mut Vec<u8>, r: &Record) {
        match r {
            Record::Generate(g) => {
                self.head(out, "generate", g.time, &g.host, &g.boot_id);
                key!(out, "signal");
                string(out, &g.signal);
                key!(out, "signo");
                num(out, g.signo);
                key!(out, "code");
                string(out, &g.code);
                key!(out, "si_code");
                num(out, g.si_code);
                key!(out, "errno");
                num(out, g.errno);
                key!(out, "group");
                boolean(out, g.group);
                key!(out, "result");
                string(out, outcome(g.result));
                if let Some(reason) = g.reason {
                    key!(out, "reason");
                    string(out, ignore_reason(reason));
                }
                key!(out, "sender");
                sender(out, &g.sender);
                key!(out, "target");
                target(out, &g.target);
            }
            Record::Deliver(d) => {
                self.head(out, "deliver", d.time, &d.host, &d.boot_id);
                key!(out, "signal");
                string(out, &d.signal);
                key!(out, "signo");
                num(out, d.signo);
                key!(out, "code");
                string(out, &d.code);
                key!(out, "si_code");
                num(out, d.si_code);
                key!(out, "cause");
                opt(out, d.cause, |out, c| string(out, deliver_cause(c)));
                key!(out, "group_exit_signal");
                opt(out, d.group_exit_signal.as_deref(), string);
                key!(out, "group_exit_signo");
                opt(out, d.group_exit_signo, num);
                key!(out, "pid");
                opt(out, d.pid, num);
                key!(out, "tid");
                num(out, d.tid);
                key!(out, "comm");
                comm(out, &d.comm);
                key!(out, "ns_pid");
                opt(out, d.ns_pid, num);
                key!(out, "cgroup_id");
                opt(out, d.cgroup_id, num);
                key!(out, "handler");
                string(out, &d.handler);
                key!(out, "sa_flags");
                num(out, d.sa_flags);
                key!(out, "sender_pid");
                opt(out, d.sender_pid, num);
                key!(out, "claimed_sender_pid");
                opt(out, d.claimed_sender_pid, num);
                key!(out, "latency_ns");
                opt(out, d.latency_ns, num);
                key!(out, "container");
                opt(out, d.container.as_ref(), container);
                key!(out, "unit");
                opt(out, d.unit.as_deref(), string);
            }
            Record::Exit(x) => {
                self.head(out, "exit", x.time, &x.host, &x.boot_id);
                key!(out, "pid");
                num(out, x.pid);
                key!(out, "comm");
                comm(out, &x.comm);
                key!(out, "ns_pid");
                opt(out, x.ns_pid, num);
                key!(out, "cgroup_id");
                opt(out, x.cgroup_id, num);
                key!(out, "exit_code");
                num(out, x.exit_code);
                key!(out, "signal");
                opt(out, x.signal.as_deref(), string);
                key!(out, "signo");
                opt(out, x.signo, num);
                key!(out, "core_dumped");
                boolean(out, x.core_dumped);
                key!(out, "status");
                num(out, x.status);
                key!(out, "killed_by");
                match &x.killed_by {
                    Some(k) => {
                        out.extend_from_slice(b"{\"pid\":");
                        num(out, k.pid);
                        key!(out, "comm");
                        comm(out, &k.comm);
                        key!(out, "signal");
                        string(out, &k.signal);
                        key!(out, "code");
                        string(out, &k.code);
                        key!(out, "time");
                        self.time(out, k.time);
                        out.push(b'}');
                    }
                    None => null(out),
                }
                key!(out, "container");
                opt(out, x.container.as_ref(), container);
                key!(out, "unit");
                opt(out, x.unit.as_deref(), string);
            }
            Record::SendFailed(s) => {
                self.head(out, "send_failed", s.time, &s.host, &s.boot_id);
                key!(out, "syscall");
                string(out, &s.syscall);
                key!(out, "errno");
                string(out, &s.errno);
                key!(out, "signal");
                opt(out, s.signal.as_deref(), string);
                key!(out, "signo");
                num(out, s.signo);
                key!(out, "sender");
                sender(out, &s.sender);
                key!(out, "target_pid");
                opt(out, s.target_pid, num);
                key!(out, "target_tid");
                opt(out, s.target_tid, num);
                key!(out, "pidfd");
                opt(out, s.pidfd, num);
            }
            Record::Oom(o) => {
                self.head(out, "oom", o.time, &o.host, &o.boot_id);
                key!(out, "pid");
                num(out, o.pid);
                key!(out, "comm");
                opt(out, o.comm.as_ref(), comm);
                key!(out, "trigger");
                sender(out, &o.trigger);
            }
            Record::Lost(l) => {
                self.head(out, "lost", l.time, &l.host, &l.boot_id);
                key!(out, "count");
                num(out, l.count);
                let e = &l.events;
                out.extend_from_slice(b",\"events\":{\"generate\":");
                num(out, e.generate);
                key!(out, "deliver");
                num(out, e.deliver);
                key!(out, "exit");
                num(out, e.exit);
                key!(out, "send_failed");
                num(out, e.send_failed);
                key!(out, "oom");
                num(out, e.oom);
                key!(out, "cgroup");
                num(out, e.cgroup);
                key!(out, "exec");
                num(out, e.exec);
                key!(out, "fork");
                num(out, e.fork);
                out.push(b'}');
            }
        }
        out.push(b'}');
    }

    /// `{"event":KIND,"time":…,"host":…` and `boot_id` when there is one: how every variant
    /// begins (serde's internally tagged enum puts the tag first).
    fn head(&mut self, out: &mut Vec<u8>, kind: &str, t: Time, host: &Label, boot: &Option<Label>) {
        out.extend_from_slice(b"{\"event\":\"");
        out.extend_from_slice(kind.as_bytes());
        out.extend_from_slice(b"\",\"time\":");
        self.time(out, t);
        key!(out, "host");
        string(out, host.as_str());
        if let Some(b) = boot {
            key!(out, "boot_id");
            string(out, b.as_str());
        }
    }

    /// RFC 3339 UTC with nanoseconds, as [`Time`]'s `Display` writes it.
    fn time(&mut self, out: &mut Vec<u8>, t: Time) {
        let (secs, nanos) = (t.0 / 1_000_000_000, t.0 % 1_000_000_000);
        if self.second != Some(secs) {
            let whole = Time(secs * 1_000_000_000).to_string();
            // "2026-11-26T13:20:38.000000000Z": keep up to and with the dot.
            let dot = whole.rfind('.').map_or(whole.len(), |i| i + 1);
            self.second_text.clear();
            self.second_text.extend_from_slice(&whole.as_bytes()[..dot]);
            self.second = Some(secs);
        }
        out.push(b'"');
        out.extend_from_slice(&self.second_text);
        let mut digits = itoa::Buffer::new();
        let d = digits.format(nanos);
        out.extend(std::iter::repeat_n(b'0', 9 - d.len()));
        out.extend_from_slice(d.as_bytes());
        out.extend_from_slice(b"Z\"");
    }
}

fn sender(out: &mut Vec<u8>, s: &Sender) {
    out.extend_from_slice(b"{\"pid\":");
    num(out, s.pid);
    key!(out, "tid");
    num(out, s.tid);
    key!(out, "comm");
    comm(out, &s.comm);
    key!(out, "uid");
    num(out, s.uid);
    key!(out, "cgroup_id");
    num(out, s.cgroup_id);
    key!(out, "container");
    opt(out, s.container.as_ref(), container);
    key!(out, "unit");
    opt(out, s.unit.as_deref(), string);
    key!(out, "exe");
    opt(out, s.exe.as_ref(), raw_text);
    key!(out, "args");
    match &s.args {
        Some(args) => {
            out.push(b'[');
            for (i, a) in args.iter().enumerate() {
                if i > 0 {
                    out.push(b',');
                }
                raw_text(out, a);
            }
            out.push(b']');
        }
        None => null(out),
    }
    key!(out, "args_truncated");
    boolean(out, s.args_truncated);
    key!(out, "ancestors");
    out.push(b'[');
    for (i, a) in s.ancestors.iter().enumerate() {
        if i > 0 {
            out.push(b',');
        }
        out.extend_from_slice(b"{\"pid\":");
        num(out, a.pid);
        key!(out, "comm");
        opt(out, a.comm.as_ref(), comm);
        key!(out, "exe");
        opt(out, a.exe.as_ref(), raw_text);
        out.push(b'}');
    }
    out.extend_from_slice(b"]}");
}

fn target(out: &mut Vec<u8>, t: &Target) {
    out.extend_from_slice(b"{\"pid\":");
    opt(out, t.pid, num);
    key!(out, "tid");
    num(out, t.tid);
    key!(out, "comm");
    comm(out, &t.comm);
    key!(out, "ns_pid");
    opt(out, t.ns_pid, num);
    key!(out, "cgroup_id");
    opt(out, t.cgroup_id, num);
    key!(out, "disposition");
    opt(out, t.disposition, |out, d| string(out, disposition(d)));
    key!(out, "handler");
    opt(out, t.handler.as_deref(), string);
    key!(out, "blocked");
    opt(out, t.blocked, boolean);
    key!(out, "container");
    opt(out, t.container.as_ref(), container);
    key!(out, "unit");
    opt(out, t.unit.as_deref(), string);
    key!(out, "exe");
    opt(out, t.exe.as_ref(), raw_text);
    out.push(b'}');
}

fn container(out: &mut Vec<u8>, c: &Container) {
    out.extend_from_slice(b"{\"id\":");
    string(out, &c.id);
    key!(out, "runtime");
    string(out, &c.runtime);
    key!(out, "name");
    opt(out, c.name.as_deref(), string);
    key!(out, "pod");
    opt(out, c.pod.as_deref(), string);
    key!(out, "namespace");
    opt(out, c.namespace.as_deref(), string);
    key!(out, "image");
    opt(out, c.image.as_deref(), string);
    key!(out, "compose");
    match &c.compose {
        Some(p) => {
            out.extend_from_slice(b"{\"project\":");
            string(out, &p.project);
            key!(out, "service");
            string(out, &p.service);
            out.push(b'}');
        }
        None => null(out),
    }
    key!(out, "grace_period_s");
    opt(out, c.grace_period_s, num);
    out.push(b'}');
}

/// The wire names of the enums: serde's `rename_all = "snake_case"` of their variants.
fn outcome(o: Outcome) -> &'static str {
    match o {
        Outcome::Delivered => "delivered",
        Outcome::Ignored => "ignored",
        Outcome::AlreadyPending => "already_pending",
        Outcome::Overflow => "overflow",
        Outcome::LoseInfo => "lose_info",
    }
}

fn ignore_reason(r: IgnoreReason) -> &'static str {
    match r {
        IgnoreReason::HandlerIgnore => "handler_ignore",
        IgnoreReason::DefaultIgnore => "default_ignore",
        IgnoreReason::PidNamespaceInit => "pid_namespace_init",
        IgnoreReason::GlobalInit => "global_init",
        IgnoreReason::Exiting => "exiting",
        IgnoreReason::KernelThread => "kernel_thread",
        IgnoreReason::Unknown => "unknown",
    }
}

fn disposition(d: Disposition) -> &'static str {
    match d {
        Disposition::Default => "default",
        Disposition::Ignore => "ignore",
        Disposition::Handler => "handler",
    }
}

fn deliver_cause(c: DeliverCause) -> &'static str {
    match c {
        DeliverCause::Dequeued => "dequeued",
        DeliverCause::GroupExit => "group_exit",
    }
}

fn null(out: &mut Vec<u8>) {
    out.extend_from_slice(b"null");
}

fn boolean(out: &mut Vec<u8>, b: bool) {
    out.extend_from_slice(if b { b"true" } else { b"false" });
}

/// A decimal integer. Its few digits are pushed one by one: a copy of a length known only at
/// run time would be a call to `memmove`, the most expensive part of writing a small number.
fn num<N: itoa::Integer>(out: &mut Vec<u8>, n: N) {
    let mut digits = itoa::Buffer::new();
    for &d in digits.format(n).as_bytes() {
        out.push(d);
    }
}

fn opt<T>(out: &mut Vec<u8>, v: Option<T>, f: impl FnOnce(&mut Vec<u8>, T)) {
    match v {
        Some(v) => f(out, v),
        None => null(out),
    }
}

fn comm(out: &mut Vec<u8>, c: &Comm) {
    lossy(out, c.bytes());
}

fn raw_text(out: &mut Vec<u8>, t: &RawText) {
    lossy(out, t.as_bytes());
}

/// Bytes as a JSON string, invalid UTF-8 replaced by U+FFFD (as their serde impls do).
fn lossy(out: &mut Vec<u8>, b: &[u8]) {
    match std::str::from_utf8(b) {
        Ok(s) => string(out, s),
        Err(_) => string(out, &String::from_utf8_lossy(b)),
    }
}

/// How serde_json escapes each byte: 0 not at all, `u` as `\u00XX`, else a backslash and
/// this byte.
static ESCAPE: [u8; 256] = {
    let mut t = [0u8; 256];
    let mut c = 0;
    while c < 0x20 {
        t[c] = b'u';
        c += 1;
    }
    t[0x08] = b'b';
    t[0x09] = b't';
    t[0x0a] = b'n';
    t[0x0c] = b'f';
    t[0x0d] = b'r';
    t[b'"' as usize] = b'"';
    t[b'\\' as usize] = b'\\';
    t
};

/// Whether any of eight bytes needs an escape (a C0 control, `"` or `\`), all at once: the
/// classic "has a byte less than n" and "has a zero byte" tests on a word.
fn any_escape(word: u64) -> bool {
    const ONES: u64 = u64::from_ne_bytes([0x01; 8]);
    const HIGH: u64 = u64::from_ne_bytes([0x80; 8]);
    let below = |w: u64, n: u64| w.wrapping_sub(ONES * n) & !w & HIGH;
    let control = below(word, 0x20);
    let quote = below(word ^ (ONES * u64::from(b'"')), 1);
    let backslash = below(word ^ (ONES * u64::from(b'\\')), 1);
    control | quote | backslash != 0
}

/// A JSON string, escaped as serde_json escapes: `"`, `\` and the C0 controls (the usual
/// short forms, else `\u00XX` in lowercase hex); everything else as it is, DEL and C1
/// controls included (JSON does not escape them: a terminal is protected by text output).
/// Runs of eight bytes that need nothing are skipped a word at a time.
fn string(out: &mut Vec<u8>, s: &str) {
    const HEX: &[u8; 16] = b"0123456789abcdef";
    let b = s.as_bytes();
    out.reserve(b.len() + 2);
    out.push(b'"');
    let (mut start, mut i) = (0, 0);
    while i < b.len() {
        if let Some(word) = b.get(i..i + 8) {
            let word = u64::from_ne_bytes(word.try_into().expect("eight bytes"));
            if !any_escape(word) {
                i += 8;
                continue;
            }
        }
        let c = b[i];
        let e = ESCAPE[usize::from(c)];
        if e != 0 {
            out.extend_from_slice(&b[start..i]);
            if e == b'u' {
                out.extend_from_slice(b"\\u00");
                out.push(HEX[usize::from(c >> 4)]);
                out.push(HEX[usize::from(c & 0xf)]);
            } else {
                out.push(b'\\');
                out.push(e);
            }
            start = i + 1;
        }
        i += 1;
    }
    out.extend_from_slice(&b[start..]);
    out.push(b'"');
}

#[cfg(test)]
mod tests {
    use std::borrow::Cow;

    use super::*;
    use crate::escape::HOSTILE;

    /// Both encoders on `r`: the same bytes.
    fn same(enc: &mut Encoder, r: &Record) {
        let mut ours = Vec::new();
        enc.record(&mut ours, r);
        let theirs = serde_json::to_vec(r).unwrap();
        assert_eq!(
            String::from_utf8_lossy(&ours),
            String::from_utf8_lossy(&theirs)
        );
        assert_eq!(ours, theirs);
    }

    /// A small deterministic generator (xorshift), so failures replay.
    struct Rng(u64);
    impl Rng {
        fn next(&mut self) -> u64 {
            self.0 ^= self.0 << 13;
            self.0 ^= self.0 >> 7;
            self.0 ^= self.0 << 17;
            self.0
        }
        fn coin(&mut self) -> bool {
            self.next() & 1 == 1
        }
        fn maybe<T>(&mut self, f: impl FnOnce(&mut Rng) -> T) -> Option<T> {
            self.coin().then(|| f(self))
        }
        /// Bytes from an alphabet rich in what must be escaped or replaced.
        fn bytes(&mut self) -> Vec<u8> {
            const ALPHABET: &[&[u8]] = &[
                b"a",
                b"Z",
                b"0",
                b" ",
                b"\"",
                b"\\",
                b"/",
                b"\n",
                b"\r",
                b"\t",
                b"\x00",
                b"\x01",
                b"\x08",
                b"\x0c",
                b"\x1b",
                b"\x1f",
                b"\x7f",
                b"\xc2\x9b",
                b"\xff",
                b"\xc3",
                b"\xe2\x82\xac",
                b"\xf0\x9f\x98\x80",
                b"\xed\xa0\x80",
                b"{}",
            ];
            let n = (self.next() % 12) as usize;
            (0..n)
                .flat_map(|_| ALPHABET[(self.next() % ALPHABET.len() as u64) as usize].to_vec())
                .collect()
        }
        fn text(&mut self) -> String {
            String::from_utf8_lossy(&self.bytes()).into_owned()
        }
        fn name(&mut self) -> Cow<'static, str> {
            Cow::Owned(self.text())
        }
        fn comm(&mut self) -> Comm {
            Comm::from_bytes(&self.bytes())
        }
        fn raw(&mut self) -> RawText {
            RawText::from(self.bytes())
        }
        fn time(&mut self) -> Time {
            // Up to the year 2500, any nanosecond.
            Time(self.next() % 16_725_225_600_000_000_000)
        }
        fn container(&mut self) -> Container {
            Container {
                id: self.text(),
                runtime: self.text(),
                name: self.maybe(Rng::text),
                pod: self.maybe(Rng::text),
                namespace: self.maybe(Rng::text),
                image: self.maybe(Rng::text),
                compose: self.maybe(|r| Compose {
                    project: r.text(),
                    service: r.text(),
                }),
                grace_period_s: self.maybe(Rng::next),
            }
        }
        fn sender(&mut self) -> Sender {
            let ancestors = (0..self.next() % 4)
                .map(|_| Ancestor {
                    pid: self.next() as u32,
                    comm: self.maybe(Rng::comm),
                    exe: self.maybe(Rng::raw),
                })
                .collect();
            Sender {
                pid: self.next() as u32,
                tid: self.next() as u32,
                comm: self.comm(),
                uid: self.next() as u32,
                cgroup_id: self.next(),
                container: self.maybe(Rng::container),
                unit: self.maybe(|r| Label::from(r.text())),
                exe: self.maybe(Rng::raw),
                args: self.maybe(|r| (0..r.next() % 4).map(|_| r.raw()).collect()),
                args_truncated: self.coin(),
                ancestors,
            }
        }
        fn head(&mut self) -> (Time, Label, Option<Label>) {
            let host = Label::new(&self.text());
            (self.time(), host, self.maybe(|r| Label::new(&r.text())))
        }
        fn record(&mut self) -> Record {
            let (time, host, boot_id) = self.head();
            match self.next() % 6 {
                0 => Record::Generate(Generate {
                    time,
                    host,
                    boot_id,
                    signal: self.name(),
                    signo: self.next() as u32,
                    code: self.name(),
                    si_code: self.next() as i32,
                    errno: self.next() as i32,
                    group: self.coin(),
                    result: Outcome::from_raw((self.next() % 5) as u32).unwrap(),
                    reason: self.maybe(|r| {
                        [
                            IgnoreReason::HandlerIgnore,
                            IgnoreReason::DefaultIgnore,
                            IgnoreReason::PidNamespaceInit,
                            IgnoreReason::GlobalInit,
                            IgnoreReason::Exiting,
                            IgnoreReason::KernelThread,
                            IgnoreReason::Unknown,
                        ][(r.next() % 7) as usize]
                    }),
                    sender: self.sender(),
                    target: Target {
                        pid: self.maybe(|r| r.next() as u32),
                        tid: self.next() as u32,
                        comm: self.comm(),
                        ns_pid: self.maybe(|r| r.next() as u32),
                        cgroup_id: self.maybe(Rng::next),
                        disposition: self.maybe(|r| Disposition::from_handler(r.next() % 3)),
                        handler: self.maybe(Rng::text),
                        blocked: self.maybe(Rng::coin),
                        container: self.maybe(Rng::container),
                        unit: self.maybe(|r| Label::from(r.text())),
                        exe: self.maybe(Rng::raw),
                    },
                }),
                1 => Record::Deliver(Deliver {
                    time,
                    host,
                    boot_id,
                    signal: self.name(),
                    signo: self.next() as u32,
                    code: self.name(),
                    si_code: self.next() as i32,
                    cause: self.maybe(|r| {
                        if r.coin() {
                            DeliverCause::Dequeued
                        } else {
                            DeliverCause::GroupExit
                        }
                    }),
                    group_exit_signal: self.maybe(Rng::name),
                    group_exit_signo: self.maybe(|r| r.next() as u32),
                    pid: self.maybe(|r| r.next() as u32),
                    tid: self.next() as u32,
                    comm: self.comm(),
                    ns_pid: self.maybe(|r| r.next() as u32),
                    cgroup_id: self.maybe(Rng::next),
                    handler: self.name(),
                    sa_flags: self.next(),
                    sender_pid: self.maybe(|r| r.next() as u32),
                    claimed_sender_pid: self.maybe(|r| r.next() as u32),
                    latency_ns: self.maybe(Rng::next),
                    container: self.maybe(Rng::container),
                    unit: self.maybe(|r| Label::from(r.text())),
                }),
                2 => Record::Exit(Exit {
                    time,
                    host,
                    boot_id,
                    pid: self.next() as u32,
                    comm: self.comm(),
                    ns_pid: self.maybe(|r| r.next() as u32),
                    cgroup_id: self.maybe(Rng::next),
                    exit_code: self.next() as u32,
                    signal: self.maybe(Rng::name),
                    signo: self.maybe(|r| r.next() as u32),
                    core_dumped: self.coin(),
                    status: self.next() as u32,
                    killed_by: self.maybe(|r| KilledBy {
                        pid: r.next() as u32,
                        comm: r.comm(),
                        signal: r.name(),
                        code: r.name(),
                        time: r.time(),
                    }),
                    container: self.maybe(Rng::container),
                    unit: self.maybe(|r| Label::from(r.text())),
                }),
                3 => Record::SendFailed(SendFailed {
                    time,
                    host,
                    boot_id,
                    syscall: self.name(),
                    errno: self.name(),
                    signal: self.maybe(Rng::name),
                    signo: self.next() as i32,
                    sender: self.sender(),
                    target_pid: self.maybe(|r| r.next() as i32),
                    target_tid: self.maybe(|r| r.next() as i32),
                    pidfd: self.maybe(|r| r.next() as i32),
                }),
                4 => Record::Oom(Oom {
                    time,
                    host,
                    boot_id,
                    pid: self.next() as u32,
                    comm: self.maybe(Rng::comm),
                    trigger: self.sender(),
                }),
                _ => Record::Lost(Lost {
                    time,
                    host,
                    boot_id,
                    count: self.next(),
                    events: LostByKind {
                        generate: self.next(),
                        deliver: self.next(),
                        exit: self.next(),
                        send_failed: self.next(),
                        oom: self.next(),
                        cgroup: self.next(),
                        exec: self.next(),
                        fork: self.next(),
                    },
                }),
            }
        }
    }

    #[test]
    fn random_records_encode_as_serde_json_does() {
        let mut rng = Rng(0x5eed_1234_abcd_0001);
        let mut enc = Encoder::default();
        for _ in 0..20_000 {
            same(&mut enc, &rng.record());
        }
    }

    #[test]
    fn every_control_byte_and_the_hostile_name_escape_as_serde_json_does() {
        let mut rng = Rng(7);
        let mut enc = Encoder::default();
        for b in 0u8..=0xff {
            let mut r = rng.record();
            if let Record::Generate(g) = &mut r {
                g.sender.comm = Comm::from_bytes(&[b, b'x', b]);
                g.sender.exe = Some(RawText::from(vec![b]));
            }
            r.set_node(&Node {
                host: Label::new(&char::from(b).to_string()),
                boot_id: Some(Label::new(HOSTILE)),
            });
            same(&mut enc, &r);
        }
    }

    #[test]
    fn an_escape_at_any_place_of_a_long_string_is_found() {
        for len in 0..40 {
            for at in 0..len {
                for special in [b'"', b'\\', b'\n', 0x00, 0x1f, 0x7f, b'a'] {
                    let mut b = vec![b'x'; len];
                    b[at] = special;
                    let text = String::from_utf8(b).unwrap();
                    let mut ours = Vec::new();
                    string(&mut ours, &text);
                    assert_eq!(ours, serde_json::to_vec(&text).unwrap(), "{text:?}");
                }
            }
        }
    }

    #[test]
    fn consecutive_times_share_the_second_and_change_it_when_it_turns() {
        let mut enc = Encoder::default();
        for t in [
            1_764_163_238_999_999_999u64,
            1_764_163_239_000_000_000,
            1_764_163_239_000_000_001,
            1_764_163_239_123_456_789,
            1_764_163_238_000_000_000,
            0,
        ] {
            let mut ours = Vec::new();
            enc.time(&mut ours, Time(t));
            assert_eq!(ours, serde_json::to_vec(&Time(t)).unwrap(), "{t}");
        }
    }
}
