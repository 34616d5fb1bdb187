//! A little kernel's BTF for the `btf` target: every struct and member `kernel_offsets` looks
//! up, laid out as the fuzz input says, written in either byte order, with the offsets it must
//! resolve to. Then the rest of the input damages it word by word, past the header checks.

use signal_trace_common::KernelOffsets;

/// BTF kinds (include/uapi/linux/btf.h).
pub const KIND_INT: u32 = 1;
pub const KIND_PTR: u32 = 2;
pub const KIND_ARRAY: u32 = 3;
pub const KIND_STRUCT: u32 = 4;
pub const KIND_UNION: u32 = 5;
pub const KIND_ENUM: u32 = 6;
pub const KIND_FWD: u32 = 7;
pub const KIND_TYPEDEF: u32 = 8;
pub const KIND_VOLATILE: u32 = 9;
pub const KIND_CONST: u32 = 10;
pub const KIND_RESTRICT: u32 = 11;
pub const KIND_FUNC: u32 = 12;
pub const KIND_FUNC_PROTO: u32 = 13;
pub const KIND_VAR: u32 = 14;
pub const KIND_DATASEC: u32 = 15;
pub const KIND_FLOAT: u32 = 16;
pub const KIND_DECL_TAG: u32 = 17;
pub const KIND_TYPE_TAG: u32 = 18;
pub const KIND_ENUM64: u32 = 19;

/// `struct btf_header` is 24 bytes; `struct btf_type` 12.
pub const HEADER_LEN: usize = 24;
pub const TYPE_LEN: usize = 12;

/// The fuzz input, read front to back; zeros once it runs out.
pub struct Input<'a>(pub &'a [u8]);

impl Input<'_> {
    pub fn is_empty(&self) -> bool {
        self.0.is_empty()
    }

    pub fn u8(&mut self) -> u8 {
        match self.0.split_first() {
            Some((&b, rest)) => {
                self.0 = rest;
                b
            }
            None => 0,
        }
    }

    pub fn u16(&mut self) -> u16 {
        u16::from_le_bytes([self.u8(), self.u8()])
    }

    pub fn u32(&mut self) -> u32 {
        u32::from_le_bytes([self.u8(), self.u8(), self.u8(), self.u8()])
    }
}

/// A BTF blob before it is written in a byte order: the header words after magic, version and
/// flags (hdr_len, type_off, type_len, str_off, str_len), the type section as words, and the
/// string section.
#[derive(Clone)]
pub struct Blob {
    pub header: [u32; 5],
    pub words: Vec<u32>,
    pub strings: Vec<u8>,
}

impl Blob {
    pub fn encode(&self, big_endian: bool) -> Vec<u8> {
        let mut out = if big_endian {
            vec![0xeb, 0x9f, 1, 0]
        } else {
            vec![0x9f, 0xeb, 1, 0]
        };
        for &w in self.header.iter().chain(&self.words) {
            out.extend_from_slice(&if big_endian {
                w.to_be_bytes()
            } else {
                w.to_le_bytes()
            });
        }
        out.extend_from_slice(&self.strings);
        out
    }

    /// Applies one damage from the input, the same in either byte order: a type-section word
    /// set, nudged, copied from another, or with its kind or vlen bits replaced; a string byte
    /// set; the type or string section cut shorter (its offset kept, so that nothing moves).
    pub fn damage(&mut self, input: &mut Input) {
        let (op, at, value) = (input.u8(), usize::from(input.u16()), input.u32());
        let word = at % self.words.len();
        let w = self.words[word];
        match op % 8 {
            0 => self.words[word] = value,
            1 => self.words[word] = w.wrapping_add(value as i8 as u32),
            2 => self.words[word] = self.words[value as usize % self.words.len()],
            3 => self.words[word] = (w & !(0x1f << 24)) | ((value & 0x1f) << 24),
            4 => self.words[word] = (w & !0xffff) | (value & 0xffff),
            5 => {
                let i = at % self.strings.len();
                self.strings[i] = value as u8;
            }
            6 => self.header[2] = value % (self.header[2] + 1),
            _ => self.header[4] = value % (self.header[4] + 1),
        }
    }
}

/// Writes the types and strings of a blob.
struct Builder {
    words: Vec<u32>,
    strings: Vec<u8>,
    count: u32,
    /// Set on every struct and union: member offsets then carry a bitfield size in their top
    /// byte, `bitfield_size` for every member (byte aligned all the same).
    kind_flag: bool,
    bitfield_size: u32,
}

/// Where the members of a struct or union went, and its size.
#[derive(Clone)]
struct Laid {
    members: Vec<(&'static str, u32, u32)>,
    size: u32,
}

impl Laid {
    fn at(&self, name: &str) -> u32 {
        self.members
            .iter()
            .find(|m| m.0 == name)
            .unwrap_or_else(|| panic!("no member {name}"))
            .2
    }
}

impl Builder {
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
    fn add(&mut self, name: &str, kind: u32, vlen: u32, size: u32, rest: &[u32]) -> u32 {
        let name = self.string(name);
        self.words.extend([name, (kind << 24) | vlen, size]);
        self.words.extend_from_slice(rest);
        self.count += 1;
        self.count
    }

    fn int(&mut self, name: &str, size: u32) -> u32 {
        self.add(name, KIND_INT, 0, size, &[size * 8])
    }

    /// A struct or union with members at the byte offsets of `laid`, and `extra` members
    /// (name, type, bit offset, bitfield size) when kind_flag is set.
    fn compound(&mut self, kind: u32, name: &str, laid: &Laid, extra: &[(&str, u32, u32, u32)]) {
        let (extra, top) = if self.kind_flag {
            (extra, self.bitfield_size << 24)
        } else {
            (&[][..], 0)
        };
        let mut rest = Vec::new();
        for &(n, ty, off) in &laid.members {
            rest.extend([self.string(n), ty, top | (off * 8)]);
        }
        for &(n, ty, bits, size) in extra {
            rest.extend([self.string(n), ty, (size << 24) | bits]);
        }
        let vlen = (laid.members.len() + extra.len()) as u32;
        let flag = if self.kind_flag { 1 << 31 } else { 0 };
        let name = self.string(name);
        self.words
            .extend([name, flag | (kind << 24) | vlen, laid.size]);
        self.words.extend(rest);
        self.count += 1;
    }

    fn finish(self) -> Blob {
        let type_len = (self.words.len() * 4) as u32;
        Blob {
            header: [
                HEADER_LEN as u32,
                0,
                type_len,
                type_len,
                self.strings.len() as u32,
            ],
            words: self.words,
            strings: self.strings,
        }
    }
}

/// Lays out a struct's members (name, type, size) in order, each aligned as C would after a
/// gap of 0..=255 bytes the input chooses.
fn strukt(input: &mut Input, members: &[(&'static str, u32, u32)]) -> Laid {
    let mut end = 0u32;
    let mut laid = Vec::new();
    for &(name, ty, size) in members {
        let off = (end + u32::from(input.u8())).next_multiple_of(size.clamp(1, 8));
        laid.push((name, ty, off));
        end = off + size;
    }
    Laid {
        members: laid,
        size: end.next_multiple_of(8),
    }
}

/// Lays out a union's members: each at offset 0, or the input's small offset.
fn union(input: &mut Input, members: &[(&'static str, u32, u32)]) -> Laid {
    let mut size = 0;
    let mut laid = Vec::new();
    for &(name, ty, msize) in members {
        let off = u32::from(input.u8() % 4) * 8;
        laid.push((name, ty, off));
        size = size.max(off + msize);
    }
    Laid {
        members: laid,
        size: size.next_multiple_of(8),
    }
}

/// Option bits of the little kernel (its first input byte).
const FORWARD_COPIES: u8 = 1 << 0;
const LATER_DUPLICATE: u8 = 1 << 1;
const ANONYMOUS_TASK: u8 = 1 << 2;
const ANONYMOUS_UNION: u8 = 1 << 3;
const KIND_FLAG: u8 = 1 << 4;
const PT_REGS: u8 = 1 << 5;
/// Bits 6-7: kernfs_node has `parent` (0), `__parent` (1), or both, either first (2, 3).
const PARENT_SHIFT: u8 = 6;

/// The little kernel the input describes, and the offsets it must resolve to: its types in
/// order, each struct with optional forward-declared and empty copies before it, typedef and
/// qualifier chains on the way to `k_sigaction.sa` and `kernel_siginfo._sifields`, members
/// found through anonymous structs and unions, and every kind a lookup only steps over. The
/// input: option bits, the chain length, a bitfield size for members where kind_flag is set,
/// then the gaps between members.
pub fn little_kernel(input: &mut Input) -> (Blob, u32, KernelOffsets) {
    let opts = input.u8();
    let chain = input.u8() % 4;
    let bitfield_size = input.u8().into();
    let on = |bit: u8| opts & bit != 0;
    let mut b = Builder {
        words: Vec::new(),
        strings: vec![0],
        count: 0,
        kind_flag: on(KIND_FLAG),
        bitfield_size,
    };
    let def = |b: &mut Builder, kind: u32, name: &str, laid: &Laid| -> u32 {
        if on(FORWARD_COPIES) && !name.is_empty() {
            b.add(name, KIND_FWD, 0, 0, &[]);
            b.add(name, kind, 0, 0, &[]);
        }
        b.compound(kind, name, laid, &[]);
        b.count
    };
    // Typedefs and qualifiers, 0 to 3 of them, in front of `id`.
    let qualified = |b: &mut Builder, mut id: u32, name: &str| {
        for kind in [KIND_TYPEDEF, KIND_CONST, KIND_TYPE_TAG]
            .into_iter()
            .take(chain.into())
        {
            let name = match kind {
                KIND_TYPEDEF => format!("{name}_t"),
                KIND_TYPE_TAG => "rcu".to_owned(),
                _ => String::new(),
            };
            id = b.add(&name, kind, 0, id, &[]);
        }
        id
    };

    let int = b.int("int", 4);
    let ulong = b.int("long unsigned int", 8);
    let char_ = b.int("char", 1);
    let pid_t = b.add("pid_t", KIND_TYPEDEF, 0, int, &[]);
    let kuid_t = b.add("kuid_t", KIND_TYPEDEF, 0, int, &[]);
    let ptr = b.add("", KIND_PTR, 0, 0, &[]);
    let comm = b.add("", KIND_ARRAY, 0, 0, &[char_, int, 16]);
    let sigset = b.add("sigset_t", KIND_TYPEDEF, 0, ulong, &[]);
    let cptr = b.add("", KIND_CONST, 0, ptr, &[]);
    let vint = b.add("", KIND_VOLATILE, 0, int, &[]);
    b.add("", KIND_RESTRICT, 0, ptr, &[]);
    // Kinds that lookups only step over.
    let (a, c) = (b.string("PIDTYPE_PID"), b.string("PIDTYPE_TGID"));
    b.add("pid_type", KIND_ENUM, 2, 4, &[a, 0, c, 1]);
    let a = b.string("CLONE_BIG");
    b.add("clone_flags", KIND_ENUM64, 1, 8, &[a, 0, 1]);
    let a = b.string("sig");
    let proto = b.add("", KIND_FUNC_PROTO, 1, int, &[a, int]);
    b.add("do_send_sig_info", KIND_FUNC, 0, proto, &[]);
    let var = b.add("init_task_flags", KIND_VAR, 0, int, &[1]);
    b.add(".data..percpu", KIND_DATASEC, 1, 4, &[var, 0, 4]);
    b.add("double", KIND_FLOAT, 0, 8, &[]);
    b.add("user", KIND_DECL_TAG, 0, ptr, &[u32::MAX]);
    b.add("kernfs_root", KIND_FWD, 0, 0, &[]);

    let sigaction = strukt(
        input,
        &[
            ("sa_handler", ptr, 8),
            ("sa_flags", ulong, 8),
            ("sa_mask", sigset, 8),
        ],
    );
    let sigaction_id = def(&mut b, KIND_STRUCT, "sigaction", &sigaction);
    let sa = qualified(&mut b, sigaction_id, "sigaction");
    let k_sigaction = strukt(input, &[("sa", sa, sigaction.size)]);
    let k_sigaction_id = def(&mut b, KIND_STRUCT, "k_sigaction", &k_sigaction);
    let actions = b.add("", KIND_ARRAY, 0, 0, &[k_sigaction_id, int, 64]);
    let sighand = strukt(
        input,
        &[
            ("count", int, 4),
            ("action", actions, 64 * k_sigaction.size),
        ],
    );
    def(&mut b, KIND_STRUCT, "sighand_struct", &sighand);
    let signal = strukt(
        input,
        &[
            ("sigcnt", int, 4),
            ("live", vint, 4),
            ("flags", int, 4),
            ("group_exit_code", int, 4),
            ("group_exec_task", ptr, 8),
        ],
    );
    def(&mut b, KIND_STRUCT, "signal_struct", &signal);

    let upid = strukt(input, &[("nr", int, 4), ("ns", ptr, 8)]);
    let upid_id = def(&mut b, KIND_STRUCT, "upid", &upid);
    let numbers = b.add("", KIND_ARRAY, 0, 0, &[upid_id, int, 1]);
    let pid = strukt(
        input,
        &[
            ("count", int, 4),
            ("level", int, 4),
            ("numbers", numbers, upid.size),
        ],
    );
    def(&mut b, KIND_STRUCT, "pid", &pid);

    let css_set = strukt(input, &[("refcount", int, 4), ("dfl_cgrp", ptr, 8)]);
    def(&mut b, KIND_STRUCT, "css_set", &css_set);
    let cgroup = strukt(
        input,
        &[("flags", int, 4), ("kn", ptr, 8), ("root", ptr, 8)],
    );
    def(&mut b, KIND_STRUCT, "cgroup", &cgroup);
    let parents: &[(&str, u32, u32)] = match opts >> PARENT_SHIFT {
        0 => &[("parent", ptr, 8)],
        1 => &[("__parent", ptr, 8)],
        2 => &[("__parent", ptr, 8), ("parent", ptr, 8)],
        _ => &[("parent", ptr, 8), ("__parent", ptr, 8)],
    };
    let mut kn_members = vec![("count", int, 4)];
    kn_members.extend_from_slice(parents);
    kn_members.push(("id", ulong, 8));
    let kernfs_node = strukt(input, &kn_members);
    def(&mut b, KIND_STRUCT, "kernfs_node", &kernfs_node);
    let parent = if opts >> PARENT_SHIFT == 0 {
        kernfs_node.at("parent")
    } else {
        kernfs_node.at("__parent")
    };
    let cgroup_root = strukt(input, &[("kf_root", ptr, 8), ("hierarchy_id", int, 4)]);
    def(&mut b, KIND_STRUCT, "cgroup_root", &cgroup_root);
    let cred = strukt(input, &[("usage", int, 4), ("uid", kuid_t, 4)]);
    def(&mut b, KIND_STRUCT, "cred", &cred);
    // mm_struct { struct { …, arg_start, arg_end, … }; unsigned long cpu_bitmap[]; } as
    // kernels since 5.x lay it out, and linux_binprm.filename.
    let mm_inner = strukt(
        input,
        &[
            ("mmap_base", ulong, 8),
            ("arg_start", ulong, 8),
            ("arg_end", ulong, 8),
        ],
    );
    let mm_inner_id = def(&mut b, KIND_STRUCT, "", &mm_inner);
    let mm = strukt(
        input,
        &[("", mm_inner_id, mm_inner.size), ("cpu_bitmap", ulong, 8)],
    );
    def(&mut b, KIND_STRUCT, "mm_struct", &mm);
    let binprm = strukt(input, &[("vma", ptr, 8), ("filename", cptr, 8)]);
    def(&mut b, KIND_STRUCT, "linux_binprm", &binprm);

    let regs = strukt(
        input,
        &[
            ("r15", ulong, 8),
            ("dx", ulong, 8),
            ("si", ulong, 8),
            ("di", ulong, 8),
            ("orig_ax", ulong, 8),
        ],
    );
    if on(PT_REGS) {
        def(&mut b, KIND_STRUCT, "pt_regs", &regs);
    }

    // kernel_siginfo { struct { si_signo, si_errno, si_code, union __sifields _sifields } }.
    let kill = strukt(input, &[("_pid", pid_t, 4), ("_uid", kuid_t, 4)]);
    let kill_id = def(&mut b, KIND_STRUCT, "", &kill);
    let timer = strukt(input, &[("_tid", int, 4), ("_overrun", int, 4)]);
    let timer_id = def(&mut b, KIND_STRUCT, "", &timer);
    let sifields = union(
        input,
        &[
            ("_timer", timer_id, timer.size),
            ("_kill", kill_id, kill.size),
        ],
    );
    let sifields_id = def(&mut b, KIND_UNION, "__sifields", &sifields);
    let sifields_ty = qualified(&mut b, sifields_id, "sifields");
    let inner = strukt(
        input,
        &[
            ("si_signo", int, 4),
            ("si_errno", int, 4),
            ("si_code", int, 4),
            ("_sifields", sifields_ty, sifields.size),
        ],
    );
    let inner_id = def(&mut b, KIND_STRUCT, "", &inner);
    let siginfo = strukt(input, &[("", inner_id, inner.size)]);
    def(&mut b, KIND_STRUCT, "kernel_siginfo", &siginfo);
    let in_siginfo =
        |path: &[(&Laid, &str)]| siginfo.at("") + path.iter().map(|(l, m)| l.at(m)).sum::<u32>();

    let task_members = [
        ("__state", int, 4),
        ("flags", int, 4),
        ("ptrace", int, 4),
        ("exit_code", int, 4),
        ("pid", pid_t, 4),
        ("tgid", pid_t, 4),
        ("comm", comm, 16),
        ("signal", ptr, 8),
        ("sighand", ptr, 8),
        ("blocked", sigset, 8),
        ("group_leader", ptr, 8),
        ("thread_pid", ptr, 8),
        ("cgroups", ptr, 8),
        ("cred", cptr, 8),
        ("start_time", ulong, 8),
        ("real_parent", ptr, 8),
        ("mm", ptr, 8),
    ];
    let fields = strukt(input, &task_members);
    // The members, or an anonymous struct or union holding them as in kernels built with
    // randomized_struct_fields_start.
    let (task, base) = if on(ANONYMOUS_TASK) {
        let kind = if on(ANONYMOUS_UNION) {
            KIND_UNION
        } else {
            KIND_STRUCT
        };
        b.compound(kind, "", &fields, &[]);
        let anon = b.count;
        let task = strukt(input, &[("thread_info", ulong, 8), ("", anon, fields.size)]);
        let base = task.at("");
        (task, base)
    } else {
        (fields.clone(), 0)
    };
    if on(FORWARD_COPIES) {
        b.add("task_struct", KIND_FWD, 0, 0, &[]);
        b.add("task_struct", KIND_STRUCT, 0, 0, &[]);
    }
    // A bitfield after the members, where kind_flag can say so: never looked up.
    let with_bitfield = Laid {
        members: task.members.clone(),
        size: task.size + 8,
    };
    b.compound(
        KIND_STRUCT,
        "task_struct",
        &with_bitfield,
        &[("in_execve", int, task.size * 8 + 3, 1)],
    );
    if on(LATER_DUPLICATE) {
        // Only the first definition counts.
        let moved = Laid {
            members: task
                .members
                .iter()
                .map(|&(n, t, o)| (n, t, o + 8))
                .collect(),
            size: task.size + 8,
        };
        b.compound(KIND_STRUCT, "task_struct", &moved, &[]);
    }
    let t = |m| base + fields.at(m);

    let expected = KernelOffsets {
        valid: 1,
        task_tgid: t("tgid"),
        task_pid: t("pid"),
        task_comm: t("comm"),
        task_flags: t("flags"),
        task_ptrace: t("ptrace"),
        task_signal: t("signal"),
        task_sighand: t("sighand"),
        task_blocked: t("blocked"),
        task_group_leader: t("group_leader"),
        task_thread_pid: t("thread_pid"),
        task_cgroups: t("cgroups"),
        task_exit_code: t("exit_code"),
        task_start_time: t("start_time"),
        signal_flags: signal.at("flags"),
        signal_live: signal.at("live"),
        signal_group_exit_code: signal.at("group_exit_code"),
        signal_group_exec_task: signal.at("group_exec_task"),
        sighand_action: sighand.at("action"),
        k_sigaction_size: k_sigaction.size,
        sigaction_handler: k_sigaction.at("sa") + sigaction.at("sa_handler"),
        sigaction_flags: k_sigaction.at("sa") + sigaction.at("sa_flags"),
        pid_level: pid.at("level"),
        pid_numbers: pid.at("numbers"),
        upid_size: upid.size,
        upid_nr: upid.at("nr"),
        css_set_dfl_cgrp: css_set.at("dfl_cgrp"),
        cgroup_kn: cgroup.at("kn"),
        kernfs_node_id: kernfs_node.at("id"),
        kernfs_node_parent: parent,
        cgroup_root: cgroup.at("root"),
        cgroup_root_hierarchy_id: cgroup_root.at("hierarchy_id"),
        regs_orig_ax: if on(PT_REGS) { regs.at("orig_ax") } else { 0 },
        regs_di: if on(PT_REGS) { regs.at("di") } else { 0 },
        regs_si: if on(PT_REGS) { regs.at("si") } else { 0 },
        regs_dx: if on(PT_REGS) { regs.at("dx") } else { 0 },
        siginfo_errno: in_siginfo(&[(&inner, "si_errno")]),
        siginfo_code: in_siginfo(&[(&inner, "si_code")]),
        siginfo_pid: in_siginfo(&[(&inner, "_sifields"), (&sifields, "_kill"), (&kill, "_pid")]),
        siginfo_uid: in_siginfo(&[(&inner, "_sifields"), (&sifields, "_kill"), (&kill, "_uid")]),
        task_cred: t("cred"),
        cred_uid: cred.at("uid"),
        task_real_parent: t("real_parent"),
        task_mm: t("mm"),
        mm_arg_start: mm.at("") + mm_inner.at("arg_start"),
        mm_arg_end: mm.at("") + mm_inner.at("arg_end"),
        binprm_filename: binprm.at("filename"),
    };
    let count = b.count;
    (b.finish(), count, expected)
}
