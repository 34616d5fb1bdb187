//! Process identities: which program each process of the host runs (its path and arguments),
//! kept current from the kernel's exec and fork records and seeded from /proc at start-up, so
//! that a signal's sender, its target and the sender's ancestors are named as they were when
//! the signal was sent: no /proc read per event, and no race with a sender that has exited by
//! the time its record is read (a `kill`, a `runc`, a shell).
//!
//! Keyed by process id alone: a process's entry is replaced when it forks into being (the
//! child runs its parent's program) and when it execs, and removed a few hundred exits after
//! its own (its last signals, such as the SIGCHLD to its parent, come after its exit record),
//! so the entry of a live pid is always that process's, reused pid or not. A process created while
//! its creation record was lost (a full ring buffer: counted and reported) is unknown, never
//! misnamed: a fork whose parent is unknown removes whatever the child's pid held.
//!
//! Bounded: at most `max` entries. Past that (exits filtered out in the kernel leave entries
//! of dead processes behind), entries of processes that no longer exist are dropped; should
//! that not make room, arbitrary entries go, counted in `evicted`.

use std::collections::VecDeque;

use foldhash::HashMap;
use std::fs;
use std::io::Read;
use std::path::{Path, PathBuf};
use std::sync::Arc;

use signal_trace_common as wire;

use crate::escape::RawText;
use crate::event::decode::{exec_program, split_args, Program};
use crate::event::record::{Comm, Record};

/// Default bound on remembered processes (a host's pid_max is 4 million; 32 Ki live
/// processes is far beyond what one node runs).
pub const MAX_PROCESSES: usize = 32_768;

/// Exited processes whose entries are kept a little longer: an exiting process still sends
/// (the SIGCHLD to its parent comes after its exit record), and records of its last moments
/// may follow.
const DYING: usize = 256;

pub struct Processes {
    by_pid: HashMap<u32, Arc<Program>>,
    /// The last exited processes, oldest first, with the entry each had.
    dying: VecDeque<(u32, Arc<Program>)>,
    max: usize,
    proc_root: PathBuf,
    /// Entries dropped to stay within `max` while their process may have been alive.
    pub evicted: u64,
}

impl Processes {
    pub fn new(proc_root: &Path, max: usize) -> Processes {
        Processes {
            by_pid: HashMap::default(),
            dying: VecDeque::new(),
            max: max.max(1),
            proc_root: proc_root.to_path_buf(),
            evicted: 0,
        }
    }

    pub fn len(&self) -> usize {
        self.by_pid.len()
    }

    pub fn is_empty(&self) -> bool {
        self.by_pid.is_empty()
    }

    pub fn get(&self, pid: u32) -> Option<&Program> {
        self.by_pid.get(&pid).map(|p| &**p)
    }

    /// Adds every process /proc lists that no record has named yet (records are newer). Call
    /// it once the exec and fork programs are attached, so that nothing falls between the two.
    /// Returns how many it added.
    pub fn seed(&mut self) -> usize {
        let Ok(dir) = fs::read_dir(&self.proc_root) else {
            return 0;
        };
        let mut added = 0;
        for entry in dir.flatten() {
            let Some(pid) = entry
                .file_name()
                .to_str()
                .and_then(|s| s.parse::<u32>().ok())
            else {
                continue;
            };
            if self.by_pid.contains_key(&pid) {
                continue;
            }
            if let Some(p) = read_proc(&entry.path()) {
                self.insert(pid, Arc::new(p));
                added += 1;
            }
        }
        added
    }

    /// A `KIND_EXEC` record: the process runs a new program.
    pub fn exec(&mut self, x: &wire::Exec) {
        self.insert(x.tgid, Arc::new(exec_program(x)));
    }

    /// A `KIND_FORK` record: `child` runs `parent`'s program (shared, not copied).
    pub fn fork(&mut self, parent: u32, child: u32) {
        match self.by_pid.get(&parent).cloned() {
            Some(p) => self.insert(child, p),
            // Unknown parent: whatever the child's pid named before is another process.
            None => {
                self.by_pid.remove(&child);
            }
        }
    }

    /// The process ended (its exit record). Its entry goes [`DYING`] exits later, unless its
    /// pid was taken by another process meanwhile (whose fork replaced it).
    pub fn exit(&mut self, pid: u32) {
        if let Some(p) = self.by_pid.get(&pid) {
            self.dying.push_back((pid, Arc::clone(p)));
        }
        while self.dying.len() > DYING {
            let Some((old, prog)) = self.dying.pop_front() else {
                break;
            };
            if self.by_pid.get(&old).is_some_and(|q| Arc::ptr_eq(q, &prog)) {
                self.by_pid.remove(&old);
            }
        }
    }

    fn insert(&mut self, pid: u32, p: Arc<Program>) {
        if self.by_pid.len() >= self.max && !self.by_pid.contains_key(&pid) {
            self.make_room();
        }
        self.by_pid.insert(pid, p);
    }

    /// Drops the entries of processes that are gone; then, if still full, a quarter of the
    /// entries (counted).
    fn make_room(&mut self) {
        let root = self.proc_root.clone();
        self.by_pid
            .retain(|pid, _| root.join(pid.to_string()).exists());
        if self.by_pid.len() >= self.max {
            let drop: Vec<u32> = self.by_pid.keys().copied().take(self.max / 4 + 1).collect();
            for pid in drop {
                self.by_pid.remove(&pid);
                self.evicted += 1;
            }
        }
    }

    /// Fills in the programs of a record's processes: the sender's `exe` and `args` and its
    /// ancestors' `comm` and `exe`, the target's `exe`.
    pub fn enrich(&self, rec: &mut Record) {
        match rec {
            Record::Generate(g) => {
                if let Some(p) = self.get(g.sender.pid) {
                    g.sender.exe = p.exe.clone();
                    (g.sender.args, g.sender.args_truncated) = args(p);
                }
                for a in &mut g.sender.ancestors {
                    if let Some(p) = self.get(a.pid) {
                        a.comm = Some(p.comm);
                        a.exe = p.exe.clone();
                    }
                }
                if let Some(p) = g.target.pid.and_then(|pid| self.get(pid)) {
                    g.target.exe = p.exe.clone();
                }
            }
            Record::SendFailed(f) => {
                if let Some(p) = self.get(f.sender.pid) {
                    f.sender.exe = p.exe.clone();
                    (f.sender.args, f.sender.args_truncated) = args(p);
                }
            }
            _ => {}
        }
    }
}

/// A program's arguments as a record shows them: null for a process without a program (a
/// kernel thread).
fn args(p: &Program) -> (Option<Vec<RawText>>, bool) {
    if p.exe.is_none() && p.args.is_empty() {
        (None, false)
    } else {
        (Some(p.args.clone()), p.args_truncated)
    }
}

/// What /proc/PID shows of a process's program: `exe` (the kernel's path of it), `cmdline`
/// (at most [`wire::ARGS_LEN`] bytes, [`crate::event::decode::MAX_ARGS`] arguments) and `comm`. None when the process
/// is gone. A kernel thread has no exe and an empty cmdline.
fn read_proc(dir: &Path) -> Option<Program> {
    let comm = fs::read(dir.join("comm")).ok()?;
    let comm = Comm::from_bytes(comm.strip_suffix(b"\n").unwrap_or(&comm));
    let exe = fs::read_link(dir.join("exe"))
        .ok()
        .map(|p| RawText::from(p.into_os_string().into_encoded_bytes()));
    let mut block = Vec::with_capacity(256);
    if let Ok(f) = fs::File::open(dir.join("cmdline")) {
        let _ = f.take(wire::ARGS_LEN as u64 + 1).read_to_end(&mut block);
    }
    let cut = block.len() > wire::ARGS_LEN;
    block.truncate(wire::ARGS_LEN);
    let (args, more) = split_args(&block);
    Some(Program {
        exe,
        comm,
        args,
        args_truncated: cut || more,
    })
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::event::decode::MAX_ARGS;
    use crate::event::record::{Ancestor, Generate, Outcome, Sender, Target, Time};
    use std::borrow::Cow;

    fn exec(tgid: u32, exe: &str, args: &[&str]) -> wire::Exec {
        let mut x = wire::Exec {
            kind: wire::KIND_EXEC,
            tgid,
            flags: 0,
            exe_len: exe.len() as u32,
            args_len: 0,
            _pad: 0,
            ts_ns: 1,
            comm: [0; 16],
            exe: [0; wire::EXE_LEN],
            args: [0; wire::ARGS_LEN],
        };
        x.exe[..exe.len()].copy_from_slice(exe.as_bytes());
        let base = exe.rsplit('/').next().unwrap();
        x.comm[..base.len().min(15)].copy_from_slice(&base.as_bytes()[..base.len().min(15)]);
        let mut n = 0;
        for a in args {
            x.args[n..n + a.len()].copy_from_slice(a.as_bytes());
            n += a.len() + 1;
        }
        x.args_len = n as u32;
        x
    }

    fn empty_proc() -> tempfile::TempDir {
        tempfile::tempdir().unwrap()
    }

    fn generate(sender: u32, ancestors: &[u32], target: u32) -> Record {
        Record::Generate(Generate {
            time: Time(0),
            host: Default::default(),
            boot_id: None,
            signal: Cow::Borrowed("SIGTERM"),
            signo: 15,
            code: Cow::Borrowed("SI_USER"),
            si_code: 0,
            errno: 0,
            group: true,
            result: Outcome::Delivered,
            reason: None,
            sender: Sender {
                pid: sender,
                tid: sender,
                ancestors: ancestors
                    .iter()
                    .map(|&pid| Ancestor {
                        pid,
                        ..Ancestor::default()
                    })
                    .collect(),
                ..Sender::default()
            },
            target: Target {
                pid: Some(target),
                tid: target,
                ..Target::default()
            },
        })
    }

    #[test]
    fn exec_names_the_sender_its_ancestors_and_the_target() {
        let root = empty_proc();
        let mut p = Processes::new(root.path(), 100);
        p.exec(&exec(10, "/usr/sbin/cron", &["/usr/sbin/cron", "-f"]));
        p.exec(&exec(
            20,
            "/bin/sh",
            &["/bin/sh", "/etc/cron.daily/rotate", "x y"],
        ));
        p.exec(&exec(30, "/usr/bin/kill", &["kill", "-TERM", "40"]));
        p.exec(&exec(40, "/usr/sbin/nginx", &["nginx: master process"]));
        let mut r = generate(30, &[20, 10, 1], 40);
        p.enrich(&mut r);
        let Record::Generate(g) = r else {
            unreachable!()
        };
        assert_eq!(g.sender.exe, Some(RawText::from("/usr/bin/kill")));
        assert_eq!(
            g.sender.args,
            Some(vec![
                RawText::from("kill"),
                RawText::from("-TERM"),
                RawText::from("40")
            ])
        );
        assert!(!g.sender.args_truncated);
        assert_eq!(g.sender.ancestors[0].exe, Some(RawText::from("/bin/sh")));
        assert_eq!(g.sender.ancestors[0].comm, Some(Comm::new("sh")));
        assert_eq!(
            g.sender.ancestors[1].exe,
            Some(RawText::from("/usr/sbin/cron"))
        );
        // pid 1 was never seen: its pid stays, its program unknown.
        assert_eq!(g.sender.ancestors[2].pid, 1);
        assert_eq!(g.sender.ancestors[2].exe, None);
        assert_eq!(g.target.exe, Some(RawText::from("/usr/sbin/nginx")));
    }

    #[test]
    fn a_fork_runs_its_parents_program_until_it_execs() {
        let root = empty_proc();
        let mut p = Processes::new(root.path(), 100);
        p.exec(&exec(20, "/bin/bash", &["bash", "-c", "x"]));
        p.fork(20, 21);
        assert_eq!(p.get(21).unwrap().exe, Some(RawText::from("/bin/bash")));
        p.exec(&exec(21, "/usr/bin/kill", &["kill", "1"]));
        assert_eq!(p.get(21).unwrap().exe, Some(RawText::from("/usr/bin/kill")));
        assert_eq!(p.get(20).unwrap().exe, Some(RawText::from("/bin/bash")));
    }

    #[test]
    fn a_reused_pid_never_keeps_the_dead_process_program() {
        let root = empty_proc();
        let mut p = Processes::new(root.path(), 10_000);
        p.exec(&exec(50, "/usr/bin/old", &["old"]));
        // The exit was filtered out in the kernel; pid 50 is reused by a child of an unknown
        // process.
        p.fork(7, 50);
        assert!(p.get(50).is_none());
        p.exec(&exec(50, "/usr/bin/old", &["old"]));
        // An exited process is still named for a while (its SIGCHLD to its parent comes
        // after its exit record)…
        p.exit(50);
        assert_eq!(p.get(50).unwrap().exe, Some(RawText::from("/usr/bin/old")));
        // …unless its pid is taken again, by a known parent's child…
        p.exec(&exec(7, "/bin/sh", &["sh"]));
        p.fork(7, 50);
        // …whose entry the old exit does not remove.
        for pid in 1000..1000 + DYING as u32 {
            p.exec(&exec(pid, "/usr/bin/true", &["true"]));
            p.exit(pid);
        }
        assert_eq!(p.get(50).unwrap().exe, Some(RawText::from("/bin/sh")));
        // The oldest exits are forgotten.
        p.exit(50);
        for pid in 2000..2000 + DYING as u32 + 1 {
            p.exec(&exec(pid, "/usr/bin/true", &["true"]));
            p.exit(pid);
        }
        assert!(p.get(50).is_none());
        assert!(p.get(1000).is_none());
    }

    #[test]
    fn arguments_are_bounded_and_cut_ones_are_marked() {
        let many: Vec<String> = (0..40).map(|i| format!("a{i}")).collect();
        let refs: Vec<&str> = many.iter().map(String::as_str).collect();
        let prog = exec_program(&exec(1, "/x", &refs));
        assert_eq!(prog.args.len(), MAX_ARGS);
        assert!(prog.args_truncated);
        // A block cut by the kernel inside an argument: the part read is kept, marked.
        let mut x = exec(1, "/x", &["first", "second-argument"]);
        x.args_len = 10;
        x.flags |= wire::FLAG_ARGS_TRUNCATED;
        let prog = exec_program(&x);
        assert_eq!(
            prog.args,
            vec![RawText::from("first"), RawText::from("seco")]
        );
        assert!(prog.args_truncated);
        // Hostile bytes stay bytes; escaping is the output's.
        let prog = exec_program(&exec(1, "/x", &["\x1b[2J"]));
        assert_eq!(prog.args, vec![RawText::from("\x1b[2J")]);
    }

    #[test]
    fn seeded_from_proc_records_win_and_the_bound_drops_the_dead() {
        let root = empty_proc();
        let mk = |pid: u32, comm: &str, exe: Option<&str>, cmdline: &[u8]| {
            let d = root.path().join(pid.to_string());
            fs::create_dir_all(&d).unwrap();
            fs::write(d.join("comm"), format!("{comm}\n")).unwrap();
            fs::write(d.join("cmdline"), cmdline).unwrap();
            if let Some(e) = exe {
                std::os::unix::fs::symlink(e, d.join("exe")).unwrap();
            }
        };
        mk(
            1,
            "systemd",
            Some("/usr/lib/systemd/systemd"),
            b"/sbin/init\0splash\0",
        );
        mk(2, "kthreadd", None, b"");
        mk(3, "sh", Some("/usr/bin/dash"), b"sh\0-c\0sleep 1\0");
        let mut p = Processes::new(root.path(), 3);
        p.exec(&exec(3, "/bin/sh", &["sh", "-c", "newer"]));
        assert_eq!(p.seed(), 2);
        let init = p.get(1).unwrap();
        assert_eq!(init.exe, Some(RawText::from("/usr/lib/systemd/systemd")));
        assert_eq!(
            init.args,
            vec![RawText::from("/sbin/init"), RawText::from("splash")]
        );
        assert_eq!(p.get(2).unwrap().exe, None);
        assert_eq!(args(p.get(2).unwrap()), (None, false));
        // The exec record is newer than /proc: it stays.
        assert_eq!(p.get(3).unwrap().args[2], RawText::from("newer"));
        // Full: a new process makes room by dropping those /proc no longer lists.
        fs::remove_dir_all(root.path().join("2")).unwrap();
        p.exec(&exec(4, "/usr/bin/true", &["true"]));
        assert!(p.get(2).is_none());
        assert!(p.get(4).is_some());
        assert_eq!(p.evicted, 0);
        // Full of live processes: some go, counted.
        mk(4, "true", Some("/usr/bin/true"), b"true\0");
        mk(5, "false", Some("/usr/bin/false"), b"false\0");
        p.exec(&exec(5, "/usr/bin/false", &["false"]));
        assert!(p.get(5).is_some());
        assert!(p.len() <= 3);
        assert!(p.evicted >= 1);
    }
}
