//! tracefs `format` text → `format_field_offset`, `classic_offsets` and `oom_offsets`: an
//! offset or an error, never a panic, and the offsets agree with the field-by-field lookup.
//! The input is NUL-separated: the signal_generate format, the signal_deliver format, the
//! oom:mark_victim format, and a field name to look up in each.

#![no_main]

mod common;

use libfuzzer_sys::fuzz_target;
use signal_trace::kernel::btf::{
    classic_offsets, format_field_offset, oom_offsets, FormatError, DATA_LOC,
};

fn lookup(format: &str, field: &str) -> Option<u32> {
    match format_field_offset(format, field) {
        Ok(o) => {
            assert!(!field.is_empty() || format.contains("field:"));
            assert!(format.contains(field), "{field:?} found in {format:?}");
            assert!(
                format.contains("offset:"),
                "offset without offset: {format:?}"
            );
            Some(o)
        }
        Err(FormatError::NoField(f)) => {
            assert_eq!(f, field);
            None
        }
        Err(e @ FormatError::Malformed(_)) => {
            let _ = e.to_string();
            None
        }
    }
}

fuzz_target!(|data: &[u8]| {
    let text = common::text(data);
    let mut parts = text.split('\0');
    let generate = parts.next().unwrap_or_default();
    let deliver = parts.next().unwrap_or_default();
    let oom = parts.next().unwrap_or_default();
    let field = parts.next().unwrap_or("pid");

    for format in [generate, deliver, oom] {
        lookup(format, field);
    }

    if let Ok(c) = classic_offsets(generate, deliver) {
        let g = |f| lookup(generate, f);
        let d = |f| lookup(deliver, f);
        assert_eq!(Some(c.gen_sig), g("sig"));
        assert_eq!(Some(c.gen_errno), g("errno"));
        assert_eq!(Some(c.gen_code), g("code"));
        assert_eq!(Some(c.gen_comm), g("comm"));
        assert_eq!(Some(c.gen_pid), g("pid"));
        assert_eq!(Some(c.gen_group), g("group"));
        assert_eq!(Some(c.gen_result), g("result"));
        assert_eq!(Some(c.del_sig), d("sig"));
        assert_eq!(Some(c.del_errno), d("errno"));
        assert_eq!(Some(c.del_code), d("code"));
        assert_eq!(Some(c.del_sa_handler), d("sa_handler"));
        assert_eq!(Some(c.del_sa_flags), d("sa_flags"));
    }

    if let Ok((pid, comm)) = oom_offsets(oom) {
        assert_eq!(Some(pid), lookup(oom, "pid"));
        match lookup(oom, "comm") {
            Some(o) => assert!(comm == o || comm == o | DATA_LOC, "{comm:#x} vs {o:#x}"),
            None => assert_eq!(comm, 0),
        }
    }
});
