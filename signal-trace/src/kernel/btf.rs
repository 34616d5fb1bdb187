//! Kernel structure layouts from BTF, and classic tracepoint record layouts from tracefs.
//!
//! No kernel layout is compiled into signal-trace: the raw-tracepoint programs read
//! `task_struct` and friends at offsets resolved here from the running kernel's BTF
//! (/sys/kernel/btf/vmlinux). Where BTF is missing the classic tracepoints are used instead, with
//! field offsets read from their tracefs `format` files.
//!
//! BTF is read by a small reader of this module's own ([`KernelBtf`]) rather than by a BTF
//! crate, for peak memory: btf-rs decodes every type of the 5 MiB vmlinux BTF into maps by id
//! and by name before the first lookup, which made the tracer's start-up peak above 50 MiB for
//! forty member offsets. This reader checks the header and the layout of every type, keeps the
//! position of each (one `u32` per type, about half a MiB), and decodes only the types the
//! lookups walk. The same bytes then go to aya, which needs its own parse for the BTF ids that
//! typed programs attach by.

use std::io;
use std::path::Path;

use signal_trace_common::{ClassicOffsets, KernelOffsets};

#[derive(Debug, thiserror::Error)]
pub enum BtfError {
    #[error("cannot read BTF from {path}: {source}")]
    Read { path: String, source: io::Error },
    #[error("cannot parse BTF from {path}: {source}")]
    Parse { path: String, source: MalformedBtf },
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
    #[error("BTF lookup failed: {0}")]
    Lookup(#[from] MalformedBtf),
}

/// What is wrong with a BTF blob.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum MalformedBtf {
    #[error("{0} bytes are too short for a BTF header")]
    Short(usize),
    #[error("no BTF magic (found {0:#06x})")]
    Magic(u16),
    #[error("unsupported BTF version {0}")]
    Version(u8),
    #[error("header length {0} is out of range")]
    HeaderLen(u32),
    #[error("the {name} section ({start}..{end}) lies outside the {len} bytes of BTF")]
    Section {
        name: &'static str,
        start: u64,
        end: u64,
        len: usize,
    },
    #[error("type {0} is cut short by the end of the type section")]
    Truncated(u32),
    #[error("type {id} has unknown kind {kind}")]
    UnknownKind { id: u32, kind: u8 },
    #[error("type id {0} does not exist")]
    NoType(u32),
    #[error("string offset {0} lies outside the string section")]
    NoString(u32),
    #[error("anonymous members nest more than {MAX_NESTING} levels deep")]
    TooDeep,
    #[error("member offsets overflow")]
    Overflow,
}

/// Reads the kernel's BTF from `path` (normally /sys/kernel/btf/vmlinux) and resolves every
/// offset the programs need. The bytes are returned too, so that aya's parse of the same BTF
/// (for the ids programs attach by) need not read the file again.
pub fn kernel_offsets_from_file(path: &Path) -> Result<(KernelOffsets, Vec<u8>), BtfError> {
    let data = std::fs::read(path).map_err(|source| BtfError::Read {
        path: path.display().to_string(),
        source,
    })?;
    let btf = KernelBtf::parse(&data).map_err(|source| BtfError::Parse {
        path: path.display().to_string(),
        source,
    })?;
    let offsets = kernel_offsets(&btf)?;
    Ok((offsets, data))
}

/// Resolves the offsets of [`KernelOffsets`] in `btf`.
pub fn kernel_offsets(btf: &KernelBtf<'_>) -> Result<KernelOffsets, BtfError> {
    // A struct lookup scans the type section; the members of one struct, asked for one after
    // another, share one scan.
    let last = std::cell::Cell::new(None);
    let strukt = |name: &'static str| -> Result<Type<'_>, BtfError> {
        if let Some((n, t)) = last.get() {
            if n == name {
                return Ok(t);
            }
        }
        let t = btf.strukt(name)?;
        last.set(Some((name, t)));
        Ok(t)
    };
    let member = |name: &'static str, path: &str| btf.offset(&strukt(name)?, name, path);
    let size_of = |name: &'static str| Ok::<_, BtfError>(strukt(name)?.size_or_type);
    let task = btf.strukt("task_struct")?;
    let o = KernelOffsets {
        valid: 1,
        task_tgid: btf.offset(&task, "task_struct", "tgid")?,
        task_pid: btf.offset(&task, "task_struct", "pid")?,
        task_comm: btf.offset(&task, "task_struct", "comm")?,
        task_flags: btf.offset(&task, "task_struct", "flags")?,
        task_ptrace: btf.offset(&task, "task_struct", "ptrace")?,
        task_signal: btf.offset(&task, "task_struct", "signal")?,
        task_sighand: btf.offset(&task, "task_struct", "sighand")?,
        task_blocked: btf.offset(&task, "task_struct", "blocked")?,
        task_group_leader: btf.offset(&task, "task_struct", "group_leader")?,
        task_thread_pid: btf.offset(&task, "task_struct", "thread_pid")?,
        task_cgroups: btf.offset(&task, "task_struct", "cgroups")?,
        task_exit_code: btf.offset(&task, "task_struct", "exit_code")?,
        task_start_time: btf.offset(&task, "task_struct", "start_time")?,
        signal_flags: member("signal_struct", "flags")?,
        signal_live: member("signal_struct", "live")?,
        signal_group_exit_code: member("signal_struct", "group_exit_code")?,
        // Since 5.16 (before: group_exit_task, with SIGNAL_GROUP_EXIT set as well).
        signal_group_exec_task: member("signal_struct", "group_exec_task").unwrap_or(0),
        sighand_action: member("sighand_struct", "action")?,
        k_sigaction_size: size_of("k_sigaction")?,
        sigaction_handler: member("k_sigaction", "sa.sa_handler")?,
        sigaction_flags: member("k_sigaction", "sa.sa_flags")?,
        pid_level: member("pid", "level")?,
        pid_numbers: member("pid", "numbers")?,
        upid_size: size_of("upid")?,
        upid_nr: member("upid", "nr")?,
        css_set_dfl_cgrp: member("css_set", "dfl_cgrp")?,
        cgroup_kn: member("cgroup", "kn")?,
        kernfs_node_id: member("kernfs_node", "id")?,
        kernfs_node_parent: member("kernfs_node", "__parent")
            .or_else(|_| member("kernfs_node", "parent"))?,
        cgroup_root: member("cgroup", "root")?,
        cgroup_root_hierarchy_id: member("cgroup_root", "hierarchy_id")?,
        // x86-64 only; elsewhere the classic syscall tracepoints are used.
        regs_orig_ax: member("pt_regs", "orig_ax").unwrap_or(0),
        regs_di: member("pt_regs", "di").unwrap_or(0),
        regs_si: member("pt_regs", "si").unwrap_or(0),
        regs_dx: member("pt_regs", "dx").unwrap_or(0),
        siginfo_errno: member("kernel_siginfo", "si_errno")?,
        siginfo_code: member("kernel_siginfo", "si_code")?,
        siginfo_pid: member("kernel_siginfo", "_sifields._kill._pid")?,
        siginfo_uid: member("kernel_siginfo", "_sifields._kill._uid")?,
        task_cred: btf.offset(&task, "task_struct", "cred")?,
        cred_uid: member("cred", "uid")?,
        // The process identities (sender ancestry, exec records); 0 leaves them out.
        task_real_parent: btf.offset(&task, "task_struct", "real_parent").unwrap_or(0),
        task_mm: btf.offset(&task, "task_struct", "mm").unwrap_or(0),
        mm_arg_start: member("mm_struct", "arg_start").unwrap_or(0),
        mm_arg_end: member("mm_struct", "arg_end").unwrap_or(0),
        binprm_filename: member("linux_binprm", "filename").unwrap_or(0),
    };
    Ok(o)
}

/// BTF kinds (include/uapi/linux/btf.h).
const KIND_VOID: u8 = 0;
const KIND_INT: u8 = 1;
const KIND_PTR: u8 = 2;
const KIND_ARRAY: u8 = 3;
const KIND_STRUCT: u8 = 4;
const KIND_UNION: u8 = 5;
const KIND_ENUM: u8 = 6;
const KIND_FWD: u8 = 7;
const KIND_TYPEDEF: u8 = 8;
const KIND_VOLATILE: u8 = 9;
const KIND_CONST: u8 = 10;
const KIND_RESTRICT: u8 = 11;
const KIND_FUNC: u8 = 12;
const KIND_FUNC_PROTO: u8 = 13;
const KIND_VAR: u8 = 14;
const KIND_DATASEC: u8 = 15;
const KIND_FLOAT: u8 = 16;
const KIND_DECL_TAG: u8 = 17;
const KIND_TYPE_TAG: u8 = 18;
const KIND_ENUM64: u8 = 19;

/// `struct btf_header`: magic, version, flags, hdr_len, then offset and length of the type and
/// string sections (relative to the end of the header).
const HEADER_LEN: usize = 24;
/// `struct btf_type`: name_off, info (vlen, kind, kind_flag), size or type.
const TYPE_LEN: usize = 12;
/// How deep anonymous structs and unions are searched for a member (C nests a few; a cycle in
/// malformed BTF would otherwise recurse forever).
const MAX_NESTING: usize = 32;
/// How many typedefs and qualifiers a member type is peeled through.
const MAX_PEEL: usize = 16;

/// Length of what follows a type's `struct btf_type`; `None` for kinds this reader does not know.
fn trailing_len(kind: u8, vlen: usize) -> Option<usize> {
    Some(match kind {
        KIND_PTR | KIND_FWD | KIND_TYPEDEF | KIND_VOLATILE | KIND_CONST | KIND_RESTRICT
        | KIND_FUNC | KIND_FLOAT | KIND_TYPE_TAG => 0,
        KIND_INT | KIND_VAR | KIND_DECL_TAG => 4,
        KIND_ARRAY => 12,
        KIND_STRUCT | KIND_UNION | KIND_DATASEC | KIND_ENUM64 => 12 * vlen,
        KIND_ENUM | KIND_FUNC_PROTO => 8 * vlen,
        _ => return None,
    })
}

/// A BTF blob (base BTF, such as vmlinux) whose header and type layout have been checked, with
/// the position of every type. Types are decoded when looked up.
pub struct KernelBtf<'a> {
    big_endian: bool,
    types: &'a [u8],
    strings: &'a [u8],
    /// Position in `types` of type id `i + 1` (id 0 is void).
    index: Vec<u32>,
}

/// One decoded type: its `struct btf_type` and the bytes after it (members of a struct).
#[derive(Debug, Clone, Copy)]
struct Type<'a> {
    kind: u8,
    kind_flag: bool,
    name_off: u32,
    /// The size of a struct, union, int…; the referenced type of a typedef, pointer, qualifier.
    size_or_type: u32,
    trailing: &'a [u8],
}

/// A struct or union member.
#[derive(Debug, Clone, Copy)]
struct Member {
    name_off: u32,
    type_id: u32,
    bit_offset: u32,
}

impl<'a> KernelBtf<'a> {
    /// Checks the header and the layout of every type, and indexes the types by id.
    pub fn parse(data: &'a [u8]) -> Result<KernelBtf<'a>, MalformedBtf> {
        let header = data
            .get(..HEADER_LEN)
            .ok_or(MalformedBtf::Short(data.len()))?;
        let big_endian = match [header[0], header[1]] {
            [0x9f, 0xeb] => false,
            [0xeb, 0x9f] => true,
            magic => return Err(MalformedBtf::Magic(u16::from_le_bytes(magic))),
        };
        if header[2] != 1 {
            return Err(MalformedBtf::Version(header[2]));
        }
        let word = |at: usize| read_u32(header, at, big_endian).unwrap_or_default();
        let hdr_len = word(4);
        if (hdr_len as usize) < HEADER_LEN || hdr_len as usize > data.len() {
            return Err(MalformedBtf::HeaderLen(hdr_len));
        }
        let section = |name, off: u32, len: u32| {
            let start = u64::from(hdr_len) + u64::from(off);
            let end = start + u64::from(len);
            usize::try_from(start)
                .ok()
                .zip(usize::try_from(end).ok())
                .and_then(|(s, e)| data.get(s..e))
                .ok_or(MalformedBtf::Section {
                    name,
                    start,
                    end,
                    len: data.len(),
                })
        };
        let types = section("type", word(8), word(12))?;
        let strings = section("string", word(16), word(20))?;
        let mut btf = KernelBtf {
            big_endian,
            types,
            strings,
            // vmlinux types average over 20 bytes; unused capacity is never touched.
            index: Vec::with_capacity(types.len() / 16),
        };
        let mut pos = 0;
        while pos < types.len() {
            let id = btf.index.len() as u32 + 1;
            let t = btf.decode(pos, id)?;
            btf.index.push(pos as u32);
            pos += TYPE_LEN + t.trailing.len();
        }
        Ok(btf)
    }

    /// How many types there are (ids 1..=count; 0 is void).
    pub fn type_count(&self) -> usize {
        self.index.len()
    }

    /// Decodes the type at `pos` in the type section (type `id`, for errors).
    fn decode(&self, pos: usize, id: u32) -> Result<Type<'a>, MalformedBtf> {
        let types = self.types;
        let word = |at: usize| read_u32(types, pos + at, self.big_endian);
        let (Some(name_off), Some(info), Some(size_or_type)) = (word(0), word(4), word(8)) else {
            return Err(MalformedBtf::Truncated(id));
        };
        let kind = ((info >> 24) & 0x1f) as u8;
        let vlen = (info & 0xffff) as usize;
        let len = trailing_len(kind, vlen).ok_or(MalformedBtf::UnknownKind { id, kind })?;
        let start = pos + TYPE_LEN;
        let trailing = types
            .get(start..start + len)
            .ok_or(MalformedBtf::Truncated(id))?;
        Ok(Type {
            kind,
            kind_flag: info >> 31 == 1,
            name_off,
            size_or_type,
            trailing,
        })
    }

    /// The type with this id (0 is void).
    fn type_by_id(&self, id: u32) -> Result<Type<'a>, MalformedBtf> {
        if id == 0 {
            return Ok(Type {
                kind: KIND_VOID,
                kind_flag: false,
                name_off: 0,
                size_or_type: 0,
                trailing: &[],
            });
        }
        let pos = self
            .index
            .get(id as usize - 1)
            .ok_or(MalformedBtf::NoType(id))?;
        self.decode(*pos as usize, id)
    }

    /// The NUL-terminated string at `off` in the string section.
    fn string(&self, off: u32) -> Result<&'a [u8], MalformedBtf> {
        let rest = self
            .strings
            .get(off as usize..)
            .ok_or(MalformedBtf::NoString(off))?;
        let end = rest
            .iter()
            .position(|&b| b == 0)
            .ok_or(MalformedBtf::NoString(off))?;
        Ok(&rest[..end])
    }

    /// The members of a struct or union (none for other kinds).
    fn members(&self, t: &Type<'a>) -> impl Iterator<Item = Member> + 'a {
        let members = match t.kind {
            KIND_STRUCT | KIND_UNION => t.trailing,
            _ => &[],
        };
        let (big_endian, kind_flag) = (self.big_endian, t.kind_flag);
        members.chunks_exact(12).map(move |m| {
            let word = |at| read_u32(m, at, big_endian).unwrap_or_default();
            let offset = word(8);
            Member {
                name_off: word(0),
                type_id: word(4),
                // With kind_flag the top byte is the size of a bitfield.
                bit_offset: if kind_flag {
                    offset & 0xff_ffff
                } else {
                    offset
                },
            }
        })
    }

    /// The first struct named `name` that has members (forward-declared copies have none).
    fn strukt(&self, name: &str) -> Result<Type<'a>, BtfError> {
        for (i, &pos) in self.index.iter().enumerate() {
            let t = self.decode(pos as usize, i as u32 + 1)?;
            if t.kind == KIND_STRUCT
                && !t.trailing.is_empty()
                && self.string(t.name_off) == Ok(name.as_bytes())
            {
                return Ok(t);
            }
        }
        Err(BtfError::NoStruct(name.into()))
    }

    #[cfg(test)]
    fn size_of(&self, name: &str) -> Result<u32, BtfError> {
        Ok(self.strukt(name)?.size_or_type)
    }

    #[cfg(test)]
    fn member_offset(&self, strukt: &str, path: &str) -> Result<u32, BtfError> {
        let s = self.strukt(strukt)?;
        self.offset(&s, strukt, path)
    }

    /// Byte offset of a dotted member path in `s`. Anonymous struct and union members are
    /// searched through, as C lets their members be named directly.
    fn offset(&self, s: &Type<'a>, strukt: &str, path: &str) -> Result<u32, BtfError> {
        let mut current = *s;
        let mut total = 0u32;
        let mut parts = path.split('.').peekable();
        while let Some(part) = parts.next() {
            let (bits, member) =
                self.find(&current, part, 0)?
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
            total = total.checked_add(bits / 8).ok_or(MalformedBtf::Overflow)?;
            if parts.peek().is_some() {
                current = self.peel(member.type_id)?;
                if !matches!(current.kind, KIND_STRUCT | KIND_UNION) {
                    return Err(BtfError::Shape {
                        strukt: strukt.into(),
                        member: path.into(),
                        expected: "a struct or union",
                    });
                }
            }
        }
        Ok(total)
    }

    /// Finds `name` among the members of `s` (descending into anonymous members, `depth` levels
    /// down already); returns its bit offset from the start of `s` and the member itself.
    fn find(
        &self,
        s: &Type<'a>,
        name: &str,
        depth: usize,
    ) -> Result<Option<(u32, Member)>, MalformedBtf> {
        if depth > MAX_NESTING {
            return Err(MalformedBtf::TooDeep);
        }
        for m in self.members(s) {
            let mname = self.string(m.name_off)?;
            if mname == name.as_bytes() {
                return Ok(Some((m.bit_offset, m)));
            }
            if mname.is_empty() {
                let inner = self.peel(m.type_id)?;
                if matches!(inner.kind, KIND_STRUCT | KIND_UNION) {
                    if let Some((bits, found)) = self.find(&inner, name, depth + 1)? {
                        let bits = m
                            .bit_offset
                            .checked_add(bits)
                            .ok_or(MalformedBtf::Overflow)?;
                        return Ok(Some((bits, found)));
                    }
                }
            }
        }
        Ok(None)
    }

    /// The type `id` with typedefs and qualifiers removed.
    fn peel(&self, id: u32) -> Result<Type<'a>, MalformedBtf> {
        let mut t = self.type_by_id(id)?;
        for _ in 0..MAX_PEEL {
            match t.kind {
                KIND_TYPEDEF | KIND_CONST | KIND_VOLATILE | KIND_RESTRICT | KIND_TYPE_TAG => {
                    t = self.type_by_id(t.size_or_type)?;
                }
                _ => break,
            }
        }
        Ok(t)
    }
}

fn read_u32(bytes: &[u8], at: usize, big_endian: bool) -> Option<u32> {
    let b: [u8; 4] = bytes.get(at..at.checked_add(4)?)?.try_into().ok()?;
    Some(if big_endian {
        u32::from_be_bytes(b)
    } else {
        u32::from_le_bytes(b)
    })
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
        let (o, bytes) = kernel_offsets_from_file(path).expect("BTF of the running kernel");
        // The bytes handed on to aya are the file's.
        assert_eq!(bytes, std::fs::read(path).unwrap());
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

    #[test]
    fn malformed_btf_file_is_named_in_the_error() {
        let path = std::env::temp_dir().join(format!("signal-trace-btf-{}", std::process::id()));
        std::fs::write(&path, b"not BTF, but long enough for a header").unwrap();
        let err = kernel_offsets_from_file(&path).unwrap_err();
        std::fs::remove_file(&path).unwrap();
        assert_eq!(
            err.to_string(),
            format!(
                "cannot parse BTF from {}: no BTF magic (found 0x6f6e)",
                path.display()
            )
        );
    }

    /// Writes small BTF blobs for the reader's tests.
    struct Builder {
        big_endian: bool,
        types: Vec<u8>,
        strings: Vec<u8>,
        count: u32,
    }

    impl Builder {
        fn new(big_endian: bool) -> Builder {
            Builder {
                big_endian,
                types: Vec::new(),
                strings: vec![0],
                count: 0,
            }
        }

        fn word(&self, v: u32) -> [u8; 4] {
            if self.big_endian {
                v.to_be_bytes()
            } else {
                v.to_le_bytes()
            }
        }

        fn string(&mut self, s: &str) -> u32 {
            if s.is_empty() {
                return 0;
            }
            let off = self.strings.len() as u32;
            self.strings.extend_from_slice(s.as_bytes());
            self.strings.push(0);
            off
        }

        /// Adds a type: its `struct btf_type` and the words after it. Returns its id.
        fn add(
            &mut self,
            name: &str,
            kind: u8,
            kind_flag: bool,
            vlen: u32,
            size: u32,
            rest: &[u32],
        ) -> u32 {
            let name = self.string(name);
            let info = (u32::from(kind_flag) << 31) | (u32::from(kind) << 24) | vlen;
            for w in [name, info, size].iter().chain(rest) {
                let b = self.word(*w);
                self.types.extend_from_slice(&b);
            }
            self.count += 1;
            self.count
        }

        fn int(&mut self, name: &str, size: u32) -> u32 {
            self.add(name, KIND_INT, false, 0, size, &[size * 8])
        }

        /// A struct or union; members are (name, type id, offset as BTF encodes it).
        fn compound(
            &mut self,
            kind: u8,
            kind_flag: bool,
            name: &str,
            size: u32,
            members: &[(&str, u32, u32)],
        ) -> u32 {
            let mut rest = Vec::new();
            for &(n, ty, off) in members {
                rest.extend([self.string(n), ty, off]);
            }
            self.add(name, kind, kind_flag, members.len() as u32, size, &rest)
        }

        fn build(&self) -> Vec<u8> {
            let magic = if self.big_endian {
                [0xeb, 0x9f]
            } else {
                [0x9f, 0xeb]
            };
            let mut out = vec![magic[0], magic[1], 1, 0];
            let type_len = self.types.len() as u32;
            let str_len = self.strings.len() as u32;
            for w in [HEADER_LEN as u32, 0, type_len, type_len, str_len] {
                out.extend_from_slice(&self.word(w));
            }
            out.extend_from_slice(&self.types);
            out.extend_from_slice(&self.strings);
            out
        }
    }

    /// A little kernel: typedefs and qualifiers, an anonymous union, a forward-declared copy, a
    /// struct with bitfields.
    fn fixture(big_endian: bool) -> Vec<u8> {
        let mut b = Builder::new(big_endian);
        let int = b.int("int", 4);
        let long = b.int("long", 8);
        // The empty copy comes first: lookups take the definition.
        b.compound(KIND_STRUCT, false, "outer", 0, &[]);
        let inner = b.compound(
            KIND_STRUCT,
            false,
            "inner",
            8,
            &[("a", int, 0), ("b", int, 32)],
        );
        let inner_t = b.add("inner_t", KIND_TYPEDEF, false, 0, inner, &[]);
        let const_inner = b.add("", KIND_CONST, false, 0, inner_t, &[]);
        let anon = b.compound(KIND_UNION, false, "", 8, &[("y", int, 0), ("z", long, 0)]);
        b.compound(
            KIND_STRUCT,
            false,
            "outer",
            32,
            &[("x", int, 0), ("", anon, 64), ("nested", const_inner, 128)],
        );
        // kind_flag: the top byte of a member's offset is its bitfield size.
        b.compound(
            KIND_STRUCT,
            true,
            "flags",
            8,
            &[
                ("f", int, 3 << 24),
                ("f2", int, (5 << 24) | 3),
                ("g", int, 32),
            ],
        );
        b.build()
    }

    /// Every lookup the fixture answers, as the tests below make them.
    fn lookups(btf: &KernelBtf<'_>) -> Vec<Result<u32, BtfError>> {
        let mut out: Vec<_> = [
            ("outer", "x"),
            ("outer", "y"),
            ("outer", "z"),
            ("outer", "nested.b"),
            ("flags", "f"),
            ("flags", "f2"),
            ("flags", "g"),
            ("outer", "x.a"),
            ("outer", "w"),
        ]
        .iter()
        .map(|(s, m)| btf.member_offset(s, m))
        .collect();
        out.push(btf.size_of("outer"));
        out.push(btf.size_of("inner"));
        out
    }

    #[test]
    fn reader_resolves_members_through_anonymous_members_and_typedefs() {
        let data = fixture(false);
        let btf = KernelBtf::parse(&data).unwrap();
        assert_eq!(btf.type_count(), 9);
        let ok = |s, m| btf.member_offset(s, m).unwrap();
        assert_eq!(ok("outer", "x"), 0);
        // Members of an anonymous union are named directly.
        assert_eq!((ok("outer", "y"), ok("outer", "z")), (8, 8));
        // A path goes through a const typedef'd struct.
        assert_eq!(ok("outer", "nested.b"), 20);
        assert_eq!(ok("flags", "f"), 0);
        assert_eq!(ok("flags", "g"), 4);
        assert_eq!(btf.size_of("outer").unwrap(), 32);
        assert_eq!(btf.size_of("inner").unwrap(), 8);
    }

    #[test]
    fn big_endian_btf_reads_the_same() {
        let (le, be) = (fixture(false), fixture(true));
        assert_ne!(le, be);
        let show = |data: &[u8]| format!("{:?}", lookups(&KernelBtf::parse(data).unwrap()));
        assert_eq!(show(&le), show(&be));
    }

    #[test]
    fn failed_lookups_say_what_is_missing() {
        let data = fixture(false);
        let btf = KernelBtf::parse(&data).unwrap();
        let err = |s, m| btf.member_offset(s, m).unwrap_err().to_string();
        assert_eq!(err("nope", "x"), "BTF has no struct nope");
        // A union is not a struct, and neither is a typedef.
        assert_eq!(err("inner_t", "a"), "BTF has no struct inner_t");
        assert_eq!(err("outer", "w"), "BTF struct outer has no member w");
        assert_eq!(
            err("outer", "nested.c"),
            "BTF struct outer has no member nested.c"
        );
        assert_eq!(
            err("outer", "x.a"),
            "BTF member outer.x.a is not a struct or union"
        );
        assert_eq!(
            err("flags", "f2"),
            "BTF member flags.f2 is not byte aligned"
        );
    }

    fn parse_err(data: &[u8]) -> MalformedBtf {
        match KernelBtf::parse(data) {
            Ok(_) => panic!("malformed BTF parsed"),
            Err(e) => e,
        }
    }

    /// The length of the type section (little-endian blobs).
    fn type_len(data: &[u8]) -> u32 {
        u32::from_le_bytes(data[12..16].try_into().unwrap())
    }

    /// Sets the header word at `at` (little-endian blobs).
    fn set_word(data: &mut [u8], at: usize, v: u32) {
        data[at..at + 4].copy_from_slice(&v.to_le_bytes());
    }

    #[test]
    fn malformed_headers_are_errors() {
        let good = fixture(false);
        assert_eq!(parse_err(&good[..10]), MalformedBtf::Short(10));
        assert_eq!(
            parse_err(b"not BTF, but long enough to be a header"),
            MalformedBtf::Magic(0x6f6e)
        );
        let mut v = good.clone();
        v[2] = 2;
        assert_eq!(parse_err(&v), MalformedBtf::Version(2));
        let mut v = good.clone();
        set_word(&mut v, 4, 8);
        assert_eq!(parse_err(&v), MalformedBtf::HeaderLen(8));
        // Sections past the end: the data is cut short, or the header lies.
        let cut = &good[..good.len() - 1];
        assert_eq!(
            parse_err(cut).to_string(),
            format!(
                "the string section ({}..{}) lies outside the {} bytes of BTF",
                HEADER_LEN + type_len(&good) as usize,
                good.len(),
                good.len() - 1
            )
        );
        let mut v = good.clone();
        set_word(&mut v, 8, u32::MAX);
        assert!(matches!(
            parse_err(&v),
            MalformedBtf::Section { name: "type", .. }
        ));
    }

    #[test]
    fn malformed_types_are_errors() {
        let good = fixture(false);
        // The type section ends inside the last type.
        let mut v = good.clone();
        set_word(&mut v, 12, type_len(&good) - 1);
        assert_eq!(parse_err(&v), MalformedBtf::Truncated(9));
        // A kind this reader does not know (the first type's info word).
        let mut v = good.clone();
        v[HEADER_LEN + 7] = 25;
        assert_eq!(parse_err(&v), MalformedBtf::UnknownKind { id: 1, kind: 25 });

        let mut b = Builder::new(false);
        let int = b.int("int", 4);
        b.compound(KIND_STRUCT, false, "dangling", 8, &[("", 99, 0)]);
        b.add("badname", KIND_STRUCT, false, 1, 4, &[10_000, int, 0]);
        // An anonymous member of its own type: a cycle.
        b.compound(KIND_STRUCT, false, "cycle", 8, &[("", 4, 0)]);
        let deep = b.compound(KIND_STRUCT, false, "", 8, &[("m", int, 64)]);
        b.compound(KIND_STRUCT, false, "far", 8, &[("", deep, u32::MAX - 7)]);
        let data = b.build();
        let btf = KernelBtf::parse(&data).unwrap();
        let err = |s, m| btf.member_offset(s, m).unwrap_err().to_string();
        assert_eq!(
            err("dangling", "m"),
            "BTF lookup failed: type id 99 does not exist"
        );
        assert_eq!(
            err("badname", "m"),
            "BTF lookup failed: string offset 10000 lies outside the string section"
        );
        assert_eq!(
            err("cycle", "m"),
            "BTF lookup failed: anonymous members nest more than 32 levels deep"
        );
        assert_eq!(
            err("far", "m"),
            "BTF lookup failed: member offsets overflow"
        );
    }

    /// Damaged input, cut anywhere or with any byte changed, gives errors or offsets; never a
    /// panic, an endless loop or a crash.
    #[test]
    fn damaged_btf_never_panics() {
        let good = fixture(false);
        let mut errors = 0;
        let mut check = |data: &[u8]| match KernelBtf::parse(data) {
            Ok(btf) => errors += lookups(&btf).iter().filter(|r| r.is_err()).count(),
            Err(_) => errors += 1,
        };
        for len in 0..good.len() {
            check(&good[..len]);
        }
        for at in 0..good.len() {
            for value in [0, 1, 0x1f, 0x80, 0xff, good[at].wrapping_add(1)] {
                let mut v = good.clone();
                v[at] = value;
                check(&v);
            }
        }
        assert!(errors > good.len(), "{errors}");
    }

    #[test]
    fn truncated_kernel_btf_is_an_error() {
        let data = std::fs::read("/sys/kernel/btf/vmlinux").expect("BTF of the running kernel");
        let btf = KernelBtf::parse(&data).unwrap();
        let count = btf.type_count() as u32;
        assert!(count > 10_000, "{count}");
        for len in [0, 23, 24, 4096, data.len() / 2, data.len() - 1] {
            assert!(KernelBtf::parse(&data[..len]).is_err(), "{len}");
        }
        // A header that agrees with the cut: the last type is incomplete.
        let mut v = data.clone();
        set_word(&mut v, 12, type_len(&data) - 1);
        assert_eq!(parse_err(&v), MalformedBtf::Truncated(count));
    }
}
