//! Text → `parse_cgroup_path`, `container_from_proc_cgroup` and `cgroup2_mount`: never a
//! panic, and a container found is named by a non-empty id taken from the input itself.

#![no_main]

mod common;

use libfuzzer_sys::fuzz_target;
use signal_trace::workload::cgroup::{
    cgroup2_mount, container_from_proc_cgroup, parse_cgroup_path, ContainerRef,
};

fn check(c: &ContainerRef, input: &str) {
    assert!(!c.id.is_empty(), "empty container id from {input:?}");
    assert!(input.contains(&c.id), "id {:?} not in {input:?}", c.id);
    assert!(!c.id.contains('/'), "id {:?} spans components", c.id);
    if let Some(uid) = &c.pod_uid {
        assert!(!uid.is_empty(), "empty pod uid from {input:?}");
    }
    if let Some(qos) = &c.qos {
        assert!(
            ["besteffort", "burstable", "guaranteed"].contains(&qos.as_str()),
            "qos {qos:?} from {input:?}"
        );
    }
}

fuzz_target!(|data: &[u8]| {
    let text = common::text(data);

    let path = parse_cgroup_path(text);
    if let Some(c) = &path {
        check(c, text);
        // Sub-cgroups of a container belong to it.
        let child = format!("{}/init", text.trim());
        assert_eq!(parse_cgroup_path(&child).as_ref(), Some(c), "{child:?}");
        // So does the same path in a v2 /proc/PID/cgroup line.
        let line = format!("0::{}\n", text.trim());
        if !text.contains('\n') && !text.contains('\r') {
            assert_eq!(
                container_from_proc_cgroup(&line).as_ref(),
                Some(c),
                "{line:?}"
            );
        }
    }

    if let Some(c) = container_from_proc_cgroup(text) {
        check(&c, text);
        // The answer comes from one of the lines' paths.
        let from_lines = text
            .lines()
            .filter_map(|l| l.splitn(3, ':').nth(2))
            .filter_map(parse_cgroup_path)
            .any(|p| p == c);
        assert!(from_lines, "{c:?} from no line of {text:?}");
    }

    let _ = cgroup2_mount(text);
});
