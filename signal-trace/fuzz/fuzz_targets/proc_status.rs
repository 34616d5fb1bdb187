//! `/proc/PID/status` text → `ProcStatus::parse`, and the analysis `inspect` runs on a process
//! snapshot. The input is NUL-separated: the process's status, its command line (words
//! separated by spaces), its `/proc/PID/cgroup`, then the status of each of its threads and
//! children, alternately.

#![no_main]

mod common;

use libfuzzer_sys::fuzz_target;
use signal_trace::escape::RawText;
use signal_trace::event::record::Disposition;
use signal_trace::inspect::{analyze, ProcStatus, Snapshot};

/// Properties of a parsed status, and that it reads back from the fields it shows.
fn check(s: &ProcStatus) {
    assert!(!s.nspid.is_empty());
    assert_eq!(s.ns_pid(), *s.nspid.last().unwrap());
    assert_eq!(s.state_code(), s.state.chars().next());
    for sig in 0..=70 {
        let d = s.disposition(sig);
        let valid = (1..=64).contains(&sig);
        if !valid {
            assert_eq!(d, Disposition::Default, "signal {sig}");
            assert!(!s.blocks(sig), "signal {sig}");
        } else if s.sig_cgt >> (sig - 1) & 1 == 1 {
            assert_eq!(d, Disposition::Handler, "signal {sig}");
        }
    }
    let _ = s.init_kind();

    // The round trip below writes the name back as text: only names that are text.
    let Ok(name) = std::str::from_utf8(s.name.as_bytes()) else {
        return;
    };
    // The kernel writes a backslash in a name as two (and the parser reads them back as one):
    // the raw round trip below holds for names without one.
    if name.contains(['\n', '\r', '\\']) || s.state.contains(['\n', '\r']) {
        return;
    }
    let nspid: Vec<String> = s.nspid.iter().map(u32::to_string).collect();
    let mut text = format!(
        "Name:\t{}\nState:\t{}\nTgid:\t{}\nPid:\t{}\nPPid:\t{}\nUid:\t{}\t{}\t{}\t{}\nNSpid:\t{}\n\
         SigPnd:\t{:016x}\nShdPnd:\t{:016x}\nSigBlk:\t{:016x}\nSigIgn:\t{:016x}\nSigCgt:\t{:016x}\n",
        name,
        s.state,
        s.tgid,
        s.pid,
        s.ppid,
        s.uid,
        s.euid,
        s.uid,
        s.uid,
        nspid.join("\t"),
        s.sig_pnd,
        s.shd_pnd,
        s.sig_blk,
        s.sig_ign,
        s.sig_cgt,
    );
    if let Some(q) = s.sigq {
        text.push_str(&format!("SigQ:\t{}/{}\n", q.queued, q.limit));
    }
    let again = ProcStatus::parse(&text).unwrap_or_else(|e| panic!("{e}: {text:?}"));
    assert_eq!(&again, s, "{text:?}");
}

fuzz_target!(|data: &[u8]| {
    let text = common::text(data);
    let mut sections = text.split('\0');
    let status = match ProcStatus::parse(sections.next().unwrap_or_default()) {
        Ok(s) => s,
        Err(e) => {
            let _ = e.to_string();
            return;
        }
    };
    check(&status);
    let cmdline = sections
        .next()
        .map(|c| c.split(' ').map(RawText::from).collect())
        .unwrap_or_default();
    let cgroup = sections.next().map(str::to_owned);
    let mut snap = Snapshot {
        status,
        cmdline,
        threads: Vec::new(),
        children: Vec::new(),
        cgroup,
        ..Snapshot::default()
    };
    for (i, section) in sections.enumerate() {
        if let Ok(s) = ProcStatus::parse(section) {
            check(&s);
            if i % 2 == 0 {
                snap.threads.push(s);
            } else {
                snap.children.push(s);
            }
        }
    }

    let report = analyze(&snap);
    let s = &snap.status;
    assert_eq!(report.pid, s.pid);
    assert_eq!(report.ns_pids, s.nspid);
    assert_eq!(report.caught.len(), s.sig_cgt.count_ones() as usize);
    assert_eq!(report.ignored.len(), s.sig_ign.count_ones() as usize);
    assert_eq!(report.blocked.len(), s.sig_blk.count_ones() as usize);
    assert_eq!(
        u64::from_str_radix(&report.masks.sig_cgt, 16),
        Ok(s.sig_cgt)
    );
    assert_eq!(report.children.len(), snap.children.len());
    assert!(report.threads >= 1);
    let _ = report.render_text();
    serde_json::to_string(&report).expect("report serializes");
});
