//! Reading /proc: the status file parser and the snapshot of one process (its threads, children,
//! command line and cgroup).

use super::*;

/// Failure to parse the text of a `/proc/PID/status` file.
#[derive(Debug, thiserror::Error, PartialEq, Eq)]
pub enum StatusError {
    #[error("missing field {0}")]
    Missing(&'static str),
    #[error("field {field} has invalid value {value:?}")]
    Invalid { field: &'static str, value: String },
}

/// The `SigQ` field: signals queued for the process's real user id, and the limit
/// (RLIMIT_SIGPENDING).
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, Serialize)]
pub struct SigQ {
    pub queued: u64,
    pub limit: u64,
}

/// The fields of `/proc/PID/status` (or `/proc/PID/task/TID/status`) that describe signals.
///
/// Masks are 64-bit: bit n-1 stands for signal n. `SigPnd` and `SigBlk` belong to the thread
/// whose status was read; `ShdPnd` (pending for the whole process), `SigIgn` and `SigCgt` are
/// shared by all threads.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct ProcStatus {
    /// The command name (`comm`): the bytes the process set, with the kernel's escapes of the
    /// `Name:` line (`\n`, `\\`) undone. Not necessarily UTF-8.
    pub name: RawText,
    /// The state with its description, such as `"S (sleeping)"`; empty when absent.
    pub state: String,
    pub tgid: u32,
    /// The thread id (the process id for `/proc/PID/status`).
    pub pid: u32,
    pub ppid: u32,
    /// The pid in each PID namespace, outermost (the one of the proc mount) first. Kernels
    /// without the field get `[pid]`.
    pub nspid: Vec<u32>,
    pub sigq: Option<SigQ>,
    pub sig_pnd: u64,
    pub shd_pnd: u64,
    pub sig_blk: u64,
    pub sig_ign: u64,
    pub sig_cgt: u64,
    /// Real user id.
    pub uid: u32,
    /// Effective user id.
    pub euid: u32,
}

/// Which init a process is.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize)]
#[serde(rename_all = "snake_case")]
pub enum InitKind {
    /// PID 1 of the PID namespace the proc tree belongs to: the host's init when /proc is the
    /// host's, the container's init when inspect itself runs in the container.
    Host,
    /// The init of a nested PID namespace (a container's PID 1): its innermost pid is 1.
    Namespace,
}

pub(crate) fn has(mask: u64, sig: u32) -> bool {
    (1..=names::NSIG).contains(&sig) && (mask >> (sig - 1)) & 1 == 1
}

pub(crate) fn parse_u32(field: &'static str, value: &str) -> Result<u32, StatusError> {
    value.parse().map_err(|_| StatusError::Invalid {
        field,
        value: value.to_owned(),
    })
}

pub(crate) fn parse_mask(field: &'static str, value: &str) -> Result<u64, StatusError> {
    let ok = !value.is_empty() && value.len() <= 16 && value.bytes().all(|b| b.is_ascii_hexdigit());
    ok.then(|| u64::from_str_radix(value, 16).ok())
        .flatten()
        .ok_or_else(|| StatusError::Invalid {
            field,
            value: value.to_owned(),
        })
}

impl ProcStatus {
    /// Parses the text of `/proc/PID/status` or `/proc/PID/task/TID/status`.
    ///
    /// Required: Name, Tgid, Pid, PPid, Uid, SigPnd, ShdPnd, SigBlk, SigIgn, SigCgt. State,
    /// NSpid and SigQ are optional; every other field is ignored. The name is everything after
    /// the tab that follows `Name:`, colons included.
    pub fn parse(text: &str) -> Result<ProcStatus, StatusError> {
        ProcStatus::parse_bytes(text.as_bytes())
    }

    /// [`ProcStatus::parse`] on the file's bytes: the `Name:` line holds whatever bytes the
    /// process named itself with (`prctl(PR_SET_NAME)` takes any), so the file need not be
    /// UTF-8; every other line is the kernel's ASCII.
    pub fn parse_bytes(bytes: &[u8]) -> Result<ProcStatus, StatusError> {
        let mut name = None;
        let mut state = String::new();
        let (mut tgid, mut pid, mut ppid) = (None, None, None);
        let mut nspid = None;
        let mut sigq = None;
        let mut uids = None;
        let mut masks: [Option<u64>; 5] = [None; 5];
        const MASKS: [&str; 5] = ["SigPnd", "ShdPnd", "SigBlk", "SigIgn", "SigCgt"];

        for line in bytes.split(|&b| b == b'\n') {
            if let Some(raw) = line.strip_prefix(b"Name:") {
                name = Some(unescape_name(raw.strip_prefix(b"\t").unwrap_or(raw)));
                continue;
            }
            let line = String::from_utf8_lossy(line);
            let Some((key, raw)) = line.split_once(':') else {
                continue;
            };
            let value = raw.trim();
            match key {
                "State" => state = value.to_owned(),
                "Tgid" => tgid = Some(parse_u32("Tgid", value)?),
                "Pid" => pid = Some(parse_u32("Pid", value)?),
                "PPid" => ppid = Some(parse_u32("PPid", value)?),
                "NSpid" => {
                    let pids = value
                        .split_whitespace()
                        .map(|p| parse_u32("NSpid", p))
                        .collect::<Result<Vec<u32>, _>>()?;
                    nspid = Some(pids);
                }
                "SigQ" => {
                    let bad = || StatusError::Invalid {
                        field: "SigQ",
                        value: value.to_owned(),
                    };
                    let (q, l) = value.split_once('/').ok_or_else(bad)?;
                    sigq = Some(SigQ {
                        queued: q.trim().parse().map_err(|_| bad())?,
                        limit: l.trim().parse().map_err(|_| bad())?,
                    });
                }
                "Uid" => {
                    let ids: Vec<u32> = value
                        .split_whitespace()
                        .filter_map(|id| id.parse().ok())
                        .collect();
                    let [real, effective, ..] = ids[..] else {
                        return Err(StatusError::Invalid {
                            field: "Uid",
                            value: value.to_owned(),
                        });
                    };
                    uids = Some((real, effective));
                }
                _ => {
                    if let Some(i) = MASKS.iter().position(|m| *m == key) {
                        masks[i] = Some(parse_mask(MASKS[i], value)?);
                    }
                }
            }
        }

        let pid = pid.ok_or(StatusError::Missing("Pid"))?;
        let nspid = match nspid {
            Some(v) if !v.is_empty() => v,
            Some(_) => {
                return Err(StatusError::Invalid {
                    field: "NSpid",
                    value: String::new(),
                })
            }
            None => vec![pid],
        };
        let mask = |i: usize| masks[i].ok_or(StatusError::Missing(MASKS[i]));
        let (uid, euid) = uids.ok_or(StatusError::Missing("Uid"))?;
        Ok(ProcStatus {
            name: name.ok_or(StatusError::Missing("Name"))?,
            state,
            tgid: tgid.ok_or(StatusError::Missing("Tgid"))?,
            pid,
            ppid: ppid.ok_or(StatusError::Missing("PPid"))?,
            nspid,
            sigq,
            sig_pnd: mask(0)?,
            shd_pnd: mask(1)?,
            sig_blk: mask(2)?,
            sig_ign: mask(3)?,
            sig_cgt: mask(4)?,
            uid,
            euid,
        })
    }

    /// The pid in the innermost PID namespace.
    pub fn ns_pid(&self) -> u32 {
        self.nspid.last().copied().unwrap_or(self.pid)
    }

    /// Whether the process is the init of its innermost PID namespace, and which kind.
    pub fn init_kind(&self) -> Option<InitKind> {
        if self.nspid.len() > 1 && self.ns_pid() == 1 {
            Some(InitKind::Namespace)
        } else if self.pid == 1 {
            Some(InitKind::Host)
        } else {
            None
        }
    }

    /// What the process does with `sig`: a handler, SIG_IGN or SIG_DFL.
    pub fn disposition(&self, sig: u32) -> Disposition {
        if has(self.sig_cgt, sig) {
            Disposition::Handler
        } else if has(self.sig_ign, sig) {
            Disposition::Ignore
        } else {
            Disposition::Default
        }
    }

    /// Whether this thread blocks `sig`.
    pub fn blocks(&self, sig: u32) -> bool {
        has(self.sig_blk, sig)
    }

    /// The one-letter state (`'R'`, `'S'`, `'Z'`, ...), if known.
    pub fn state_code(&self) -> Option<char> {
        self.state.chars().next()
    }

    pub(crate) fn is_zombie(&self) -> bool {
        matches!(self.state_code(), Some('Z' | 'X'))
    }
}

/// Undoes the kernel's escapes of the `Name:` line of a status file: it writes a newline of
/// the name as `\n` and a backslash as `\\` (`proc_task_name`), every other byte as it is.
pub(crate) fn unescape_name(raw: &[u8]) -> RawText {
    let mut out = Vec::with_capacity(raw.len());
    let mut i = 0;
    while i < raw.len() {
        match (raw[i], raw.get(i + 1)) {
            (b'\\', Some(b'n')) => {
                out.push(b'\n');
                i += 2;
            }
            (b'\\', Some(b'\\')) => {
                out.push(b'\\');
                i += 2;
            }
            (b, _) => {
                out.push(b);
                i += 1;
            }
        }
    }
    RawText::from(out)
}

/// Everything read for one process; the input of [`analyze`].
#[derive(Clone, Debug, Default)]
pub struct Snapshot {
    /// `/proc/PID/status`.
    pub status: ProcStatus,
    /// `/proc/PID/cmdline`, split at NULs, as bytes; empty for kernel threads and zombies.
    pub cmdline: Vec<RawText>,
    /// `/proc/PID/task/*/status`, the main thread included; empty when unreadable.
    pub threads: Vec<ProcStatus>,
    /// The status of each child.
    pub children: Vec<ProcStatus>,
    /// The text of `/proc/PID/cgroup`.
    pub cgroup: Option<String>,
    /// The text of `/proc/PID/syscall`: the number of the system call the main thread waits
    /// in, then its arguments; `running` or absent when it is not in one or cannot be read.
    pub syscall: Option<String>,
    /// The `sigmask:` of every signalfd the process holds open (`/proc/PID/fdinfo`).
    pub signalfd_masks: Vec<u64>,
    /// The set the main thread waits for when it waits in `rt_sigtimedwait`: read from the
    /// process's memory at the syscall's first argument. (While it waits, the kernel takes
    /// that set out of `SigBlk` and keeps the real mask aside, so the status file cannot
    /// tell.)
    pub sigwait_mask: Option<u64>,
}

/// `rt_sigtimedwait`, which sigwait, sigwaitinfo and sigtimedwait call, on this architecture.
#[cfg(target_arch = "x86_64")]
pub const SYS_RT_SIGTIMEDWAIT: u32 = 128;
#[cfg(target_arch = "aarch64")]
pub const SYS_RT_SIGTIMEDWAIT: u32 = 137;
#[cfg(not(any(target_arch = "x86_64", target_arch = "aarch64")))]
pub const SYS_RT_SIGTIMEDWAIT: u32 = libc::SYS_rt_sigtimedwait as u32;

/// The system call number at the start of a `/proc/PID/syscall` text.
pub(crate) fn syscall_number(text: &str) -> Option<u32> {
    text.split_whitespace().next()?.parse().ok()
}

/// The `n`th argument (from 0) of a `/proc/PID/syscall` text.
pub(crate) fn syscall_arg(text: &str, n: usize) -> Option<u64> {
    let hex = text.split_whitespace().nth(n + 1)?.strip_prefix("0x")?;
    u64::from_str_radix(hex, 16).ok()
}

/// The signal set an `rt_sigtimedwait` waits for, read from the waiting process's memory
/// (`/proc/PID/mem`, which needs the same access as ptrace) at its first argument.
pub(crate) fn read_sigwait_mask(dir: &Path, syscall: &str) -> Option<u64> {
    use std::os::unix::fs::FileExt;
    if syscall_number(syscall)? != SYS_RT_SIGTIMEDWAIT || syscall_arg(syscall, 3)? != 8 {
        return None;
    }
    let addr = syscall_arg(syscall, 0)?;
    let mem = fs::File::open(dir.join("mem")).ok()?;
    let mut buf = [0u8; 8];
    mem.read_exact_at(&mut buf, addr).ok()?;
    Some(u64::from_ne_bytes(buf))
}

/// The masks of the signalfds among the open files of the process at `dir`: a descriptor
/// whose link reads `anon_inode:[signalfd]` has a `sigmask:` line in its fdinfo.
pub(crate) fn read_signalfd_masks(dir: &Path) -> Vec<u64> {
    let Ok(fds) = numeric_entries(&dir.join("fd")) else {
        return Vec::new();
    };
    fds.into_iter()
        .filter(|fd| {
            fs::read_link(dir.join("fd").join(fd.to_string()))
                .is_ok_and(|l| l.as_os_str() == "anon_inode:[signalfd]")
        })
        .filter_map(|fd| {
            let text = read_lossy(&dir.join("fdinfo").join(fd.to_string()))?;
            let line = text.lines().find_map(|l| l.strip_prefix("sigmask:"))?;
            parse_mask("sigmask", line.trim()).ok()
        })
        .collect()
}

/// Reads a file of a process, mapping a missing process to [`InspectError::NoSuchProcess`].
pub(crate) fn read_proc_file(path: &Path, pid: u32) -> Result<Vec<u8>, InspectError> {
    fs::read(path).map_err(|e| match e.kind() {
        io::ErrorKind::NotFound => InspectError::NoSuchProcess(pid),
        _ => InspectError::Read {
            path: path.to_owned(),
            source: e,
        },
    })
}

pub(crate) fn read_status(path: &Path, pid: u32) -> Result<ProcStatus, InspectError> {
    let text = read_proc_file(path, pid)?;
    ProcStatus::parse_bytes(&text).map_err(|source| InspectError::Parse {
        path: path.to_owned(),
        source,
    })
}

/// The numeric entries of a directory (pids under a proc root, tids under `task/`), sorted.
pub(crate) fn numeric_entries(dir: &Path) -> io::Result<Vec<u32>> {
    let mut ids: Vec<u32> = fs::read_dir(dir)?
        .filter_map(Result::ok)
        .filter_map(|e| e.file_name().to_str()?.parse().ok())
        .collect();
    ids.sort_unstable();
    Ok(ids)
}

/// The children of `pid`: the union of `task/*/children`, or, when the kernel has no such
/// file (CONFIG_PROC_CHILDREN off), the processes whose PPid is `pid`.
pub(crate) fn child_pids(proc_root: &Path, pid: u32, tids: &[u32]) -> Vec<u32> {
    let mut found = false;
    let mut pids = BTreeSet::new();
    for tid in tids {
        let path = proc_root
            .join(pid.to_string())
            .join("task")
            .join(tid.to_string())
            .join("children");
        if let Ok(text) = fs::read(path) {
            let text = String::from_utf8_lossy(&text);
            found = true;
            pids.extend(
                text.split_whitespace()
                    .filter_map(|p| p.parse::<u32>().ok()),
            );
        }
    }
    if !found {
        for other in numeric_entries(proc_root).unwrap_or_default() {
            let path = proc_root.join(other.to_string()).join("status");
            let Ok(text) = fs::read(path) else {
                continue;
            };
            if ProcStatus::parse_bytes(&text).is_ok_and(|s| s.ppid == pid && s.pid != pid) {
                pids.insert(other);
            }
        }
    }
    pids.into_iter().collect()
}

/// Reads everything [`analyze`] needs for `pid` from the proc tree at `proc_root`.
///
/// Only the process's own status is required; threads, children, command line and cgroup
/// that cannot be read (permissions, a race with exit) are left out.
pub fn read_snapshot(proc_root: &Path, pid: u32) -> Result<Snapshot, InspectError> {
    let dir = proc_root.join(pid.to_string());
    if !dir.is_dir() {
        return Err(InspectError::NoSuchProcess(pid));
    }
    let status = read_status(&dir.join("status"), pid)?;
    let tids = numeric_entries(&dir.join("task")).unwrap_or_default();
    let threads = tids
        .iter()
        .filter_map(|tid| {
            let path = dir.join("task").join(tid.to_string()).join("status");
            read_status(&path, pid).ok()
        })
        .collect();
    let children = child_pids(proc_root, pid, &tids)
        .into_iter()
        .filter_map(|child| {
            let path = proc_root.join(child.to_string()).join("status");
            read_status(&path, child).ok()
        })
        .collect();
    let cmdline = fs::read(dir.join("cmdline"))
        .map(|raw| {
            raw.split(|&b| b == 0)
                .filter(|a| !a.is_empty())
                .map(RawText::from)
                .collect()
        })
        .unwrap_or_default();
    let cgroup = read_lossy(&dir.join("cgroup"));
    let syscall = read_lossy(&dir.join("syscall"));
    let signalfd_masks = read_signalfd_masks(&dir);
    let sigwait_mask = syscall.as_deref().and_then(|s| read_sigwait_mask(&dir, s));
    Ok(Snapshot {
        status,
        cmdline,
        threads,
        children,
        cgroup,
        syscall,
        signalfd_masks,
        sigwait_mask,
    })
}

/// A file's text with bytes that are not UTF-8 replaced, or `None` when it cannot be read: a
/// cgroup path is a directory name that whoever may create the cgroup chose.
pub(crate) fn read_lossy(path: &Path) -> Option<String> {
    fs::read(path)
        .ok()
        .map(|b| String::from_utf8_lossy(&b).into_owned())
}
