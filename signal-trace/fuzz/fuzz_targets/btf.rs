//! BTF bytes → `KernelBtf::parse` → `kernel_offsets`: an error or offsets, never a panic.
//!
//! An input that starts like a BTF magic is a blob as it is. Any other input describes a little
//! kernel (see `btf_kernel`): its layout, then damages to its types and strings. Undamaged, it
//! must resolve to exactly the offsets it was laid out with; damaged or not, its big-endian and
//! little-endian encodings must give the same answer. For every blob, parse errors agree with
//! the header, lookups after a successful parse fail only with lookup errors that name one of
//! `kernel_offsets`' lookups, and bytes after the sections change nothing.
//!
//! Not checked: that an offset lies inside its struct. The reader takes member offsets and
//! struct sizes as BTF gives them and does not compare the two.

#![no_main]

mod btf_kernel;

use btf_kernel::{little_kernel, Input, HEADER_LEN, TYPE_LEN};
use libfuzzer_sys::fuzz_target;
use signal_trace::kernel::btf::{kernel_offsets, BtfError, KernelBtf, MalformedBtf};
use signal_trace_common::KernelOffsets;

/// The most damages applied to one little kernel.
const MAX_DAMAGES: usize = 32;

/// Every lookup of `kernel_offsets` whose error it returns (struct, member path). The
/// `pt_regs` lookups fall back to 0, and a missing `kernfs_node.__parent` to `.parent`.
const LOOKUPS: &[(&str, &str)] = &[
    ("task_struct", "tgid"),
    ("task_struct", "pid"),
    ("task_struct", "comm"),
    ("task_struct", "flags"),
    ("task_struct", "ptrace"),
    ("task_struct", "signal"),
    ("task_struct", "sighand"),
    ("task_struct", "blocked"),
    ("task_struct", "group_leader"),
    ("task_struct", "thread_pid"),
    ("task_struct", "cgroups"),
    ("task_struct", "exit_code"),
    ("task_struct", "start_time"),
    ("task_struct", "cred"),
    ("signal_struct", "flags"),
    ("signal_struct", "live"),
    ("signal_struct", "group_exit_code"),
    ("signal_struct", "group_exec_task"),
    ("sighand_struct", "action"),
    ("k_sigaction", "sa.sa_handler"),
    ("k_sigaction", "sa.sa_flags"),
    ("pid", "level"),
    ("pid", "numbers"),
    ("upid", "nr"),
    ("css_set", "dfl_cgrp"),
    ("cgroup", "kn"),
    ("cgroup", "root"),
    ("kernfs_node", "id"),
    ("kernfs_node", "parent"),
    ("cgroup_root", "hierarchy_id"),
    ("kernel_siginfo", "si_errno"),
    ("kernel_siginfo", "si_code"),
    ("kernel_siginfo", "_sifields._kill._pid"),
    ("kernel_siginfo", "_sifields._kill._uid"),
    ("cred", "uid"),
];

/// Appended to a blob: a string and words that would change a lookup if the reader looked
/// past its sections.
const TAIL: &[u8] = b"\0task_struct\0\x01\0\0\0\x04\0\0\x01";

/// The header as parse must read it: its length and the byte ranges of the type and string
/// sections (in u64, where start + length cannot overflow). `None` without a whole header that
/// starts with a magic.
struct Header {
    hdr_len: u32,
    types: (u64, u64),
    strings: (u64, u64),
}

fn header(data: &[u8]) -> Option<Header> {
    let h = data.get(..HEADER_LEN)?;
    let big_endian = match [h[0], h[1]] {
        [0x9f, 0xeb] => false,
        [0xeb, 0x9f] => true,
        _ => return None,
    };
    let word = |at: usize| {
        let b: [u8; 4] = h[at..at + 4].try_into().unwrap();
        if big_endian {
            u32::from_be_bytes(b)
        } else {
            u32::from_le_bytes(b)
        }
    };
    let hdr_len = word(4);
    let range = |off: u32, len: u32| {
        let start = u64::from(hdr_len) + u64::from(off);
        (start, start + u64::from(len))
    };
    Some(Header {
        hdr_len,
        types: range(word(8), word(12)),
        strings: range(word(16), word(20)),
    })
}

/// What the reader made of a blob: the type count or the parse error, then `kernel_offsets`'
/// answer (its error as text) when parse succeeded.
#[derive(Debug, PartialEq)]
struct Outcome {
    parse: Result<usize, MalformedBtf>,
    offsets: Option<Result<KernelOffsets, String>>,
}

/// A parse error is one of the header and layout checks, and agrees with the header.
fn check_parse_error(data: &[u8], e: &MalformedBtf) {
    let _ = e.to_string();
    let len = data.len();
    match *e {
        MalformedBtf::Short(n) => assert!(n == len && n < HEADER_LEN, "{e}"),
        MalformedBtf::Magic(m) => {
            assert!(len >= HEADER_LEN);
            assert_eq!(m.to_le_bytes(), [data[0], data[1]]);
            assert!(header(data).is_none(), "{e}");
        }
        MalformedBtf::Version(v) => assert!(v == data[2] && v != 1, "{e}"),
        MalformedBtf::HeaderLen(n) => {
            let h = header(data).expect("a header");
            assert_eq!(n, h.hdr_len);
            assert!((n as usize) < HEADER_LEN || n as usize > len, "{e}");
        }
        MalformedBtf::Section {
            name,
            start,
            end,
            len: n,
        } => {
            let h = header(data).expect("a header");
            let range = match name {
                "type" => h.types,
                "string" => {
                    assert!(
                        h.types.1 <= len as u64,
                        "the type section was checked first"
                    );
                    h.strings
                }
                _ => panic!("{e}"),
            };
            assert_eq!((start, end), range);
            assert!(n == len && end > len as u64, "{e}");
        }
        MalformedBtf::Truncated(id) => {
            let h = header(data).expect("a header");
            // Every type before it takes at least TYPE_LEN bytes of the section.
            assert!(id >= 1 && u64::from(id - 1) * TYPE_LEN as u64 <= h.types.1 - h.types.0);
        }
        MalformedBtf::UnknownKind { id, kind } => {
            let h = header(data).expect("a header");
            assert!(id >= 1 && u64::from(id) * TYPE_LEN as u64 <= h.types.1 - h.types.0);
            // 0 is no kind in the type section; 20 and up are kinds newer than the reader.
            assert!(kind == 0 || (20..32).contains(&kind), "{e}");
        }
        MalformedBtf::NoType(_)
        | MalformedBtf::NoString(_)
        | MalformedBtf::TooDeep
        | MalformedBtf::Overflow => panic!("parse failed with a lookup error: {e}"),
    }
}

/// The offsets of a successful `kernel_offsets`, or its error, are ones it can give.
fn check_offsets(data: &[u8], btf: &KernelBtf, r: &Result<KernelOffsets, BtfError>) {
    let o = match r {
        Ok(o) => o,
        Err(e) => return check_offsets_error(data, btf, e),
    };
    assert_eq!(o.valid, 1);
    // A member's bit offset is a u32 (its sum through anonymous members too, or an overflow
    // error), so each component of a member path adds at most u32::MAX / 8 bytes.
    const PART: u64 = (u32::MAX / 8) as u64;
    let one = [
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
        o.signal_flags,
        o.signal_live,
        o.sighand_action,
        o.pid_level,
        o.pid_numbers,
        o.upid_nr,
        o.css_set_dfl_cgrp,
        o.cgroup_kn,
        o.kernfs_node_id,
        o.kernfs_node_parent,
        o.cgroup_root,
        o.cgroup_root_hierarchy_id,
        o.regs_orig_ax,
        o.regs_di,
        o.regs_si,
        o.regs_dx,
        o.siginfo_errno,
        o.siginfo_code,
        o.task_cred,
        o.cred_uid,
    ];
    let two = [o.sigaction_handler, o.sigaction_flags];
    let three = [o.siginfo_pid, o.siginfo_uid];
    for (parts, values) in [(1, &one[..]), (2, &two[..]), (3, &three[..])] {
        for &v in values {
            assert!(
                u64::from(v) <= PART * parts,
                "{v:#x} for {parts} components: {o:?}"
            );
        }
    }
}

fn check_offsets_error(data: &[u8], btf: &KernelBtf, e: &BtfError) {
    let _ = e.to_string();
    let known = |s: &str, m: &str| LOOKUPS.contains(&(s, m));
    match e {
        BtfError::NoStruct(s) => assert!(LOOKUPS.iter().any(|l| l.0 == s), "{e}"),
        BtfError::NoMember { strukt, member } => assert!(known(strukt, member), "{e}"),
        BtfError::Shape {
            strukt,
            member,
            expected,
        } => {
            assert!(known(strukt, member), "{e}");
            match *expected {
                "byte aligned" => {}
                // Only a path goes through a member's type.
                "a struct or union" => assert!(member.contains('.'), "{e}"),
                _ => panic!("{e}"),
            }
        }
        BtfError::Lookup(m) => match *m {
            MalformedBtf::NoType(id) => assert!(id as usize > btf.type_count(), "{e}"),
            MalformedBtf::NoString(off) => {
                let h = header(data).expect("a header");
                let strings = &data[h.strings.0 as usize..h.strings.1 as usize];
                let terminated = strings
                    .get(off as usize..)
                    .is_some_and(|rest| rest.contains(&0));
                assert!(!terminated, "{e}");
            }
            MalformedBtf::TooDeep | MalformedBtf::Overflow => {}
            // Parse decoded every type once already.
            _ => panic!("a lookup after a successful parse failed with {e}"),
        },
        BtfError::Read { .. } | BtfError::Parse { .. } => panic!("{e}"),
    }
}

/// Parses `data` and resolves the offsets, checking both.
fn outcome(data: &[u8]) -> Outcome {
    let btf = match KernelBtf::parse(data) {
        Ok(btf) => btf,
        Err(e) => {
            check_parse_error(data, &e);
            return Outcome {
                parse: Err(e),
                offsets: None,
            };
        }
    };
    let h = header(data).expect("a parsed blob has a header");
    let type_len = h.types.1 - h.types.0;
    assert!(h.hdr_len as usize >= HEADER_LEN && h.strings.1 <= data.len() as u64);
    // Every type is TYPE_LEN bytes and whole words after it, and parse read the section to its
    // end.
    assert_eq!(type_len % 4, 0);
    let count = btf.type_count();
    assert!(count as u64 * TYPE_LEN as u64 <= type_len);
    assert_eq!(count == 0, type_len == 0);
    let r = kernel_offsets(&btf);
    check_offsets(data, &btf, &r);
    Outcome {
        parse: Ok(count),
        offsets: Some(r.map_err(|e| format!("{e:?}"))),
    }
}

/// Checks a blob, and that bytes after it change nothing (unless the blob was too short for
/// its header or sections).
fn check(data: &[u8]) -> Outcome {
    let out = outcome(data);
    let mut longer = data.to_vec();
    longer.extend_from_slice(TAIL);
    let again = outcome(&longer);
    if !matches!(
        out.parse,
        Err(MalformedBtf::Short(_) | MalformedBtf::HeaderLen(_) | MalformedBtf::Section { .. })
    ) {
        assert_eq!(out, again, "bytes after the blob changed the outcome");
    }
    out
}

fuzz_target!(|data: &[u8]| {
    check(data);
    if matches!(data.first(), Some(0x9f | 0xeb)) {
        return;
    }

    let mut input = Input(data);
    let (mut blob, count, expected) = little_kernel(&mut input);
    let mut damages = 0;
    while !input.is_empty() && damages < MAX_DAMAGES {
        blob.damage(&mut input);
        damages += 1;
    }
    let le = check(&blob.encode(false));
    let be = check(&blob.encode(true));
    assert_eq!(le, be, "byte order changed the outcome");
    if damages == 0 {
        assert_eq!(
            le,
            Outcome {
                parse: Ok(count as usize),
                offsets: Some(Ok(expected)),
            }
        );
    }
});
