//! Kernel structure layouts from BTF, and classic tracepoint record layouts from tracefs.
//!
//! No kernel layout is compiled into signal-trace: the raw-tracepoint programs read
//! `task_struct` and friends at offsets resolved here from the running kernel's BTF
//! (/sys/kernel/btf/vmlinux). Where BTF is missing the classic tracepoints are used instead, with
//! field offsets read from their tracefs `format` files.

use std::path::Path;

use btf_rs::{Btf, Type};
use signal_trace_common::{ClassicOffsets, KernelOffsets};

#[derive(Debug, thiserror::Error)]
pub enum BtfError {
    #[error("cannot read BTF from {path}: {source}")]
    Read { path: String, source: anyhow::Error },
    #[error("BTF has no struct {0}")]
    NoStruct(String),
    #[error("BTF struct {strukt} has no member {member}")]
    NoMember { strukt: String, member: String },
    #[error("BTF member {strukt}.{member} is not {expected}")]
    Shape {
        strukt: String,
        member: String,
        expected: &'static str,
    },
    #[error("BTF lookup failed for {what}: {source}")]
    Lookup { what: String, source: anyhow::Error },
}

/// Loads BTF from `path` (normally /sys/kernel/btf/vmlinux) and resolves every offset the
/// programs need.
pub fn kernel_offsets_from_file(path: &Path) -> Result<KernelOffsets, BtfError> {
    let btf = Btf::from_file(path).map_err(|source| BtfError::Read {
        path: path.display().to_string(),
        source,
    })?;
    kernel_offsets(&btf)
}

/// Resolves the offsets of [`KernelOffsets`] in `btf`.
pub fn kernel_offsets(btf: &Btf) -> Result<KernelOffsets, BtfError> {
    let r = Resolver { btf };
    let task = r.strukt("task_struct")?;
    let o = KernelOffsets {
        valid: 1,
        task_tgid: r.offset(&task, "task_struct", "tgid")?,
        task_pid: r.offset(&task, "task_struct", "pid")?,
        task_comm: r.offset(&task, "task_struct", "comm")?,
        task_flags: r.offset(&task, "task_struct", "flags")?,
        task_ptrace: r.offset(&task, "task_struct", "ptrace")?,
        task_signal: r.offset(&task, "task_struct", "signal")?,
        task_sighand: r.offset(&task, "task_struct", "sighand")?,
        task_blocked: r.offset(&task, "task_struct", "blocked")?,
        task_group_leader: r.offset(&task, "task_struct", "group_leader")?,
        task_thread_pid: r.offset(&task, "task_struct", "thread_pid")?,
        task_cgroups: r.offset(&task, "task_struct", "cgroups")?,
        task_exit_code: r.offset(&task, "task_struct", "exit_code")?,
        signal_flags: r.member_offset("signal_struct", "flags")?,
        signal_live: r.member_offset("signal_struct", "live")?,
        sighand_action: r.member_offset("sighand_struct", "action")?,
        k_sigaction_size: r.size_of("k_sigaction")?,
        sigaction_handler: r.member_offset("k_sigaction", "sa.sa_handler")?,
        sigaction_flags: r.member_offset("k_sigaction", "sa.sa_flags")?,
        pid_level: r.member_offset("pid", "level")?,
        pid_numbers: r.member_offset("pid", "numbers")?,
        upid_size: r.size_of("upid")?,
        upid_nr: r.member_offset("upid", "nr")?,
        css_set_dfl_cgrp: r.member_offset("css_set", "dfl_cgrp")?,
        cgroup_kn: r.member_offset("cgroup", "kn")?,
        kernfs_node_id: r.member_offset("kernfs_node", "id")?,
        kernfs_node_parent: r
            .member_offset("kernfs_node", "__parent")
            .or_else(|_| r.member_offset("kernfs_node", "parent"))?,
        cgroup_root: r.member_offset("cgroup", "root")?,
        cgroup_root_hierarchy_id: r.member_offset("cgroup_root", "hierarchy_id")?,
        // x86-64 only; elsewhere the classic syscall tracepoints are used.
        regs_orig_ax: r.member_offset("pt_regs", "orig_ax").unwrap_or(0),
        regs_di: r.member_offset("pt_regs", "di").unwrap_or(0),
        regs_si: r.member_offset("pt_regs", "si").unwrap_or(0),
        regs_dx: r.member_offset("pt_regs", "dx").unwrap_or(0),
        siginfo_errno: r.member_offset("kernel_siginfo", "si_errno")?,
        siginfo_code: r.member_offset("kernel_siginfo", "si_code")?,
        siginfo_pid: r.member_offset("kernel_siginfo", "_sifields._kill._pid")?,
        siginfo_uid: r.member_offset("kernel_siginfo", "_sifields._kill._uid")?,
        task_cred: r.offset(&task, "task_struct", "cred")?,
        cred_uid: r.member_offset("cred", "uid")?,
    };
    Ok(o)
}

struct Resolver<'a> {
    btf: &'a Btf,
}

impl Resolver<'_> {
    fn strukt(&self, name: &str) -> Result<btf_rs::Struct, BtfError> {
        let types = self
            .btf
            .resolve_types_by_name(name)
            .map_err(|_| BtfError::NoStruct(name.into()))?;
        types
            .into_iter()
            .find_map(|t| match t {
                // Skip empty forward-declared copies.
                Type::Struct(s) if !s.members.is_empty() => Some(s),
                _ => None,
            })
            .ok_or_else(|| BtfError::NoStruct(name.into()))
    }

    fn size_of(&self, name: &str) -> Result<u32, BtfError> {
        Ok(self.strukt(name)?.size() as u32)
    }

    fn member_offset(&self, strukt: &str, path: &str) -> Result<u32, BtfError> {
        let s = self.strukt(strukt)?;
        self.offset(&s, strukt, path)
    }

    /// Byte offset of a dotted member path in `s`. Anonymous struct and union members are
    /// searched through, as C lets their members be named directly.
    fn offset(&self, s: &btf_rs::Struct, strukt: &str, path: &str) -> Result<u32, BtfError> {
        let mut current = s.clone();
        let mut total = 0u32;
        let mut parts = path.split('.').peekable();
        while let Some(part) = parts.next() {
            let (bits, member) = self
                .find(&current, part)?
                .ok_or_else(|| BtfError::NoMember {
                    strukt: strukt.into(),
                    member: path.into(),
                })?;
            if bits % 8 != 0 {
                return Err(BtfError::Shape {
                    strukt: strukt.into(),
                    member: path.into(),
                    expected: "byte aligned",
                });
            }
            total += bits / 8;
            if parts.peek().is_some() {
                current = match self.peel(&member)? {
                    Type::Struct(s) | Type::Union(s) => s,
                    _ => {
                        return Err(BtfError::Shape {
                            strukt: strukt.into(),
                            member: path.into(),
                            expected: "a struct or union",
                        })
                    }
                };
            }
        }
        Ok(total)
    }

    /// Finds `name` among the members of `s` (descending into anonymous members); returns its
    /// bit offset from the start of `s` and the member itself.
    fn find(
        &self,
        s: &btf_rs::Struct,
        name: &str,
    ) -> Result<Option<(u32, btf_rs::Member)>, BtfError> {
        for m in &s.members {
            let mname = self.btf.resolve_name(m).unwrap_or_default();
            if mname == name {
                return Ok(Some((m.bit_offset(), m.clone())));
            }
            if mname.is_empty() {
                if let Type::Struct(inner) | Type::Union(inner) = self.peel(m)? {
                    if let Some((bits, found)) = self.find(&inner, name)? {
                        return Ok(Some((m.bit_offset() + bits, found)));
                    }
                }
            }
        }
        Ok(None)
    }

    /// The type of a member with typedefs and qualifiers removed.
    fn peel(&self, m: &btf_rs::Member) -> Result<Type, BtfError> {
        let lookup = |source| BtfError::Lookup {
            what: "member type".into(),
            source,
        };
        let mut t = self.btf.resolve_chained_type(m).map_err(lookup)?;
        for _ in 0..16 {
            t = match &t {
                Type::Typedef(x) => self.btf.resolve_chained_type(x).map_err(lookup)?,
                Type::Const(x) => self.btf.resolve_chained_type(x).map_err(lookup)?,
                Type::Volatile(x) => self.btf.resolve_chained_type(x).map_err(lookup)?,
                Type::Restrict(x) => self.btf.resolve_chained_type(x).map_err(lookup)?,
                Type::TypeTag(x) => self.btf.resolve_chained_type(x).map_err(lookup)?,
                _ => return Ok(t),
            };
        }
        Ok(t)
    }
}

#[derive(Debug, thiserror::Error)]
pub enum FormatError {
    #[error("tracepoint format has no field {0}")]
    NoField(String),
    #[error("tracepoint format line is malformed: {0}")]
    Malformed(String),
}

/// Offset of `field` in a tracefs `format` file's text
/// (`field:int sig;\toffset:8;\tsize:4;\tsigned:1;`).
pub fn format_field_offset(format: &str, field: &str) -> Result<u32, FormatError> {
    for line in format.lines() {
        let line = line.trim();
        let Some(rest) = line.strip_prefix("field:") else {
            continue;
        };
        let mut parts = rest.split(';');
        let decl = parts.next().unwrap_or_default().trim();
        // The declared name is the last identifier, before any array brackets.
        let name = decl
            .rsplit(|c: char| c.is_whitespace() || c == '*')
            .next()
            .unwrap_or_default();
        let name = name.split('[').next().unwrap_or_default();
        if name != field {
            continue;
        }
        let offset = parts
            .find_map(|p| p.trim().strip_prefix("offset:"))
            .ok_or_else(|| FormatError::Malformed(line.into()))?;
        return offset
            .trim()
            .parse()
            .map_err(|_| FormatError::Malformed(line.into()));
    }
    Err(FormatError::NoField(field.into()))
}

/// Marks an offset as that of a `__data_loc` field (a u32: length << 16 | offset of the data).
pub const DATA_LOC: u32 = signal_trace_common::OFFSET_DATA_LOC;

/// The `oom:mark_victim` record layout: its pid, and its comm where the kernel has one (0 if
/// not; or'ed with [`DATA_LOC`] when the comm is stored out of line, as on 6.x kernels).
pub fn oom_offsets(format: &str) -> Result<(u32, u32), FormatError> {
    let pid = format_field_offset(format, "pid")?;
    let comm = match format_field_offset(format, "comm") {
        Ok(o) => {
            let data_loc = format
                .lines()
                .any(|l| l.contains("__data_loc") && l.contains(" comm;"));
            if data_loc {
                o | DATA_LOC
            } else {
                o
            }
        }
        Err(FormatError::NoField(_)) => 0,
        Err(e) => return Err(e),
    };
    Ok((pid, comm))
}

/// The classic `signal_generate` and `signal_deliver` record layouts from their format files.
/// (The `oom_*` offsets are filled separately by [`oom_offsets`].)
pub fn classic_offsets(generate: &str, deliver: &str) -> Result<ClassicOffsets, FormatError> {
    let g = |f| format_field_offset(generate, f);
    let d = |f| format_field_offset(deliver, f);
    Ok(ClassicOffsets {
        gen_sig: g("sig")?,
        gen_errno: g("errno")?,
        gen_code: g("code")?,
        gen_comm: g("comm")?,
        gen_pid: g("pid")?,
        gen_group: g("group")?,
        gen_result: g("result")?,
        del_sig: d("sig")?,
        del_errno: d("errno")?,
        del_code: d("code")?,
        del_sa_handler: d("sa_handler")?,
        del_sa_flags: d("sa_flags")?,
        oom_pid: 0,
        oom_comm: 0,
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    const GENERATE_FORMAT: &str = "name: signal_generate
ID: 190
format:
\tfield:unsigned short common_type;\toffset:0;\tsize:2;\tsigned:0;
\tfield:unsigned char common_flags;\toffset:2;\tsize:1;\tsigned:0;
\tfield:unsigned char common_preempt_count;\toffset:3;\tsize:1;\tsigned:0;
\tfield:int common_pid;\toffset:4;\tsize:4;\tsigned:1;

\tfield:int sig;\toffset:8;\tsize:4;\tsigned:1;
\tfield:int errno;\toffset:12;\tsize:4;\tsigned:1;
\tfield:int code;\toffset:16;\tsize:4;\tsigned:1;
\tfield:char comm[16];\toffset:20;\tsize:16;\tsigned:0;
\tfield:pid_t pid;\toffset:36;\tsize:4;\tsigned:1;
\tfield:int group;\toffset:40;\tsize:4;\tsigned:1;
\tfield:int result;\toffset:44;\tsize:4;\tsigned:1;

print fmt: \"sig=%d errno=%d code=%d comm=%s pid=%d grp=%d res=%d\", ...
";

    const DELIVER_FORMAT: &str = "name: signal_deliver
format:
\tfield:unsigned short common_type;\toffset:0;\tsize:2;\tsigned:0;
\tfield:int sig;\toffset:8;\tsize:4;\tsigned:1;
\tfield:int errno;\toffset:12;\tsize:4;\tsigned:1;
\tfield:int code;\toffset:16;\tsize:4;\tsigned:1;
\tfield:unsigned long sa_handler;\toffset:24;\tsize:8;\tsigned:0;
\tfield:unsigned long sa_flags;\toffset:32;\tsize:8;\tsigned:0;
";

    #[test]
    fn classic_formats_are_parsed() {
        let o = classic_offsets(GENERATE_FORMAT, DELIVER_FORMAT).unwrap();
        assert_eq!((o.gen_sig, o.gen_errno, o.gen_code), (8, 12, 16));
        assert_eq!(
            (o.gen_comm, o.gen_pid, o.gen_group, o.gen_result),
            (20, 36, 40, 44)
        );
        assert_eq!(
            (o.del_sig, o.del_code, o.del_sa_handler, o.del_sa_flags),
            (8, 16, 24, 32)
        );
        // A prefix of a field name must not match ("sig" vs "signed", "common_pid" vs "pid").
        assert_eq!(format_field_offset(GENERATE_FORMAT, "pid").unwrap(), 36);
    }

    #[test]
    fn oom_formats_old_and_new() {
        let old = "name: mark_victim\nformat:\n\tfield:unsigned short common_type;\toffset:0;\tsize:2;\tsigned:0;\n\tfield:int pid;\toffset:8;\tsize:4;\tsigned:1;\n";
        assert_eq!(oom_offsets(old).unwrap(), (8, 0));
        let new = "format:\n\tfield:int pid;\toffset:8;\tsize:4;\tsigned:1;\n\tfield:__data_loc char[] comm;\toffset:12;\tsize:4;\tsigned:0;\n";
        // A __data_loc comm is not inline: it is marked so that the program follows it.
        assert_eq!(oom_offsets(new).unwrap(), (8, 12 | DATA_LOC));
        let inline = "format:\n\tfield:int pid;\toffset:8;\tsize:4;\tsigned:1;\n\tfield:char comm[16];\toffset:12;\tsize:16;\tsigned:0;\n";
        assert_eq!(oom_offsets(inline).unwrap(), (8, 12));
        assert!(oom_offsets("format:\n").is_err());
    }

    #[test]
    fn missing_or_malformed_fields_are_errors() {
        assert!(matches!(
            format_field_offset(GENERATE_FORMAT, "nope"),
            Err(FormatError::NoField(f)) if f == "nope"
        ));
        assert!(matches!(
            format_field_offset("\tfield:int sig;\tsize:4;", "sig"),
            Err(FormatError::Malformed(_))
        ));
        assert!(classic_offsets(GENERATE_FORMAT, "").is_err());
    }

    /// Resolution against the running kernel's own BTF (readable without root on kernels that
    /// have it, which every machine this project supports does): offsets must be consistent
    /// with what the kernel's ABI fixes.
    #[test]
    fn offsets_resolve_from_the_running_kernel() {
        let path = Path::new("/sys/kernel/btf/vmlinux");
        let o = kernel_offsets_from_file(path).expect("BTF of the running kernel");
        assert_eq!(o.valid, 1);
        // kernel_siginfo starts with si_signo, si_errno, si_code; the union follows 8-aligned.
        assert_eq!((o.siginfo_errno, o.siginfo_code), (4, 8));
        assert_eq!((o.siginfo_pid, o.siginfo_uid), (16, 20));
        // struct sigaction starts with the handler; sa_flags follows it on 64-bit.
        assert_eq!((o.sigaction_handler, o.sigaction_flags), (0, 8));
        assert_eq!(o.upid_size, 16);
        // x86-64's pt_regs: di, si, dx and orig_ax (the user-space register file, ABI-fixed).
        assert_eq!(
            (o.regs_di, o.regs_si, o.regs_dx, o.regs_orig_ax),
            (112, 104, 96, 120)
        );
        assert_eq!(o.upid_nr, 0);
        // struct cred begins with its refcount (and, on some configs, a debug magic); the uid
        // follows within the first cache line.
        assert!(o.cred_uid > 0 && o.cred_uid < 64, "{}", o.cred_uid);
        assert!(o.k_sigaction_size >= 24);
        // task_struct is large; every member lies inside it and they are distinct.
        let task = [
            o.task_tgid,
            o.task_pid,
            o.task_comm,
            o.task_flags,
            o.task_ptrace,
            o.task_signal,
            o.task_sighand,
            o.task_blocked,
            o.task_group_leader,
            o.task_thread_pid,
            o.task_cgroups,
            o.task_exit_code,
            o.task_cred,
        ];
        let mut sorted = task.to_vec();
        sorted.sort_unstable();
        sorted.dedup();
        assert_eq!(sorted.len(), task.len(), "{task:?}");
        assert_eq!(
            o.task_pid + 4,
            o.task_tgid,
            "pid and tgid are adjacent in task_struct"
        );
    }

    #[test]
    fn unreadable_btf_is_a_clear_error() {
        let err = kernel_offsets_from_file(Path::new("/nonexistent/vmlinux")).unwrap_err();
        assert!(
            err.to_string()
                .starts_with("cannot read BTF from /nonexistent/vmlinux"),
            "{err}"
        );
    }
}
