//! BPF program bookkeeping shared by the live tests and the kernel-matrix guest checker
//! (`xtask/src/vm/guest.rs` includes this file by path): which programs a process holds, and
//! whether a program is still loaded. Only std and libc.

use std::io;

/// BPF program ids held by a process, from /proc/PID/fdinfo, sorted and deduplicated.
pub fn bpf_prog_ids_of(pid: u32) -> io::Result<Vec<u32>> {
    let mut ids = Vec::new();
    for entry in std::fs::read_dir(format!("/proc/{pid}/fdinfo"))? {
        // A descriptor closed while listing is no longer held.
        let Ok(text) = std::fs::read_to_string(entry?.path()) else {
            continue;
        };
        ids.extend(text.lines().filter_map(|l| {
            l.strip_prefix("prog_id:")
                .and_then(|v| v.trim().parse::<u32>().ok())
        }));
    }
    ids.sort_unstable();
    ids.dedup();
    Ok(ids)
}

/// Whether a BPF program with this id is still loaded (BPF_PROG_GET_FD_BY_ID).
pub fn bpf_prog_exists(id: u32) -> bool {
    #[repr(C)]
    struct Attr {
        prog_id: u32,
        next_id: u32,
        open_flags: u32,
        _pad: [u32; 29],
    }
    let attr = Attr {
        prog_id: id,
        next_id: 0,
        open_flags: 0,
        _pad: [0; 29],
    };
    const BPF_PROG_GET_FD_BY_ID: libc::c_long = 13;
    // SAFETY: bpf(2) with a correctly sized, zero-padded attribute union.
    let fd = unsafe {
        libc::syscall(
            libc::SYS_bpf,
            BPF_PROG_GET_FD_BY_ID,
            &attr as *const Attr,
            std::mem::size_of::<Attr>(),
        )
    };
    if fd >= 0 {
        // SAFETY: closing the fd we just got.
        unsafe { libc::close(fd as i32) };
        true
    } else {
        false
    }
}

/// Program ids currently loaded in the kernel (BPF_PROG_GET_NEXT_ID).
pub fn loaded_prog_ids() -> Vec<u32> {
    #[repr(C)]
    struct Attr {
        start_id: u32,
        next_id: u32,
        open_flags: u32,
        _pad: [u32; 29],
    }
    const BPF_PROG_GET_NEXT_ID: libc::c_long = 11;
    let mut ids = Vec::new();
    let mut attr = Attr {
        start_id: 0,
        next_id: 0,
        open_flags: 0,
        _pad: [0; 29],
    };
    loop {
        // SAFETY: bpf(2) with a zero-padded attribute union it writes next_id into.
        let rc = unsafe {
            libc::syscall(
                libc::SYS_bpf,
                BPF_PROG_GET_NEXT_ID,
                &mut attr as *mut Attr,
                std::mem::size_of::<Attr>(),
            )
        };
        if rc != 0 {
            break;
        }
        ids.push(attr.next_id);
        attr.start_id = attr.next_id;
    }
    ids
}
