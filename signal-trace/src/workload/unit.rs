//! The systemd unit a process runs in, from its cgroup path, read the way systemd reads it.
//!
//! systemd puts every unit's processes in a cgroup named after the unit, below the slices that
//! hold it: `/system.slice/nginx.service`, `/user.slice/user-1000.slice/session-3.scope`,
//! `/user.slice/user-1000.slice/user@1000.service/app.slice/foo.service`. Like systemd's own
//! `cg_path_get_unit()`, [`unit_from_cgroup_path`] skips the leading slices and takes the first
//! component that is a valid unit name (so a user manager's units answer `user@1000.service`,
//! the unit the system manager stops). A cgroup name is first unescaped as systemd escapes it
//! (`cg_escape()` puts `_` before names that start with `_` or `.`, or that would clash with a
//! cgroup attribute file such as `cpu.service`); the unit name itself is kept as systemd spells
//! it, escapes included (`dev-disk-by\x2duuid-….swap`, `foo\x2dbar.service`: `\x2d` is how
//! systemd writes a `-` that is not a path separator), which is the name `systemctl` takes.
//!
//! A systemd booted in a container (`systemd-nspawn -b`) runs its units in the payload cgroup of
//! the container, `…/payload/system.slice/NAME.service`: the unit is read from the part after
//! the last `payload` component, since that is the manager that starts and stops it.
//!
//! The paths are the same on a pure cgroup v2 host (`0::/system.slice/nginx.service` in
//! /proc/PID/cgroup) and on the hybrid layout, where systemd mirrors its tree in the v2
//! hierarchy mounted at /sys/fs/cgroup/unified and in the v1 `name=systemd` one
//! ([`unit_from_proc_cgroup`] takes either).

/// The unit types systemd knows, as name suffixes.
const UNIT_TYPES: &[&str] = &[
    "service",
    "socket",
    "target",
    "device",
    "mount",
    "automount",
    "swap",
    "timer",
    "path",
    "slice",
    "scope",
];

/// systemd's bound on a unit name's length (`UNIT_NAME_MAX`).
const UNIT_NAME_MAX: usize = 256;

/// The component name nspawn gives the cgroup its container's init and units run in.
const NSPAWN_PAYLOAD: &str = "payload";

/// Undoes systemd's `cg_escape()`: a leading `_` was added by it.
fn cg_unescape(name: &str) -> &str {
    name.strip_prefix('_').unwrap_or(name)
}

/// The unit type of a valid unit name (`"service"` for `nginx.service`), as systemd's
/// `unit_name_is_valid()` checks it: a prefix of `[A-Za-z0-9:_.\-]` with at most one `@`
/// (template or instance), a known type suffix, under 256 bytes.
pub fn unit_type(name: &str) -> Option<&'static str> {
    if name.is_empty() || name.len() >= UNIT_NAME_MAX {
        return None;
    }
    let (prefix, suffix) = name.rsplit_once('.')?;
    let kind = UNIT_TYPES.iter().copied().find(|t| *t == suffix)?;
    if prefix.is_empty() || prefix.starts_with('@') {
        return None;
    }
    let mut ats = 0;
    for b in prefix.bytes() {
        match b {
            b'@' => ats += 1,
            b if b.is_ascii_alphanumeric() || matches!(b, b':' | b'-' | b'_' | b'.' | b'\\') => {}
            _ => return None,
        }
    }
    (ats <= 1).then_some(kind)
}

/// The systemd unit a cgroup path belongs to, or `None` when the path is not under a unit
/// (the root, a slice, a cgroup made by something other than systemd such as `/docker/<id>` or
/// `/kubepods/…` with the cgroupfs driver).
///
/// `path` is relative to the hierarchy's root (as in /proc/PID/cgroup, or as the cgroup cache
/// scans it).
pub fn unit_from_cgroup_path(path: &str) -> Option<String> {
    let comps: Vec<&str> = path
        .trim()
        .split('/')
        .filter(|c| !c.is_empty() && *c != ".")
        .collect();
    let start = comps
        .iter()
        .rposition(|c| *c == NSPAWN_PAYLOAD)
        .map_or(0, |i| i + 1);
    // The payload cgroup itself (a container's init before its systemd made its own) belongs
    // to the unit that holds the container.
    first_unit(&comps[start..]).or_else(|| first_unit(&comps))
}

/// The first component after the leading slices, when it is a unit.
fn first_unit(comps: &[&str]) -> Option<String> {
    for comp in comps {
        let name = cg_unescape(comp);
        match unit_type(name) {
            Some("slice") => continue,
            Some(_) => return Some(name.to_owned()),
            None => return None,
        }
    }
    None
}

/// The systemd unit of a process from the text of /proc/PID/cgroup: the v2 line (`0::…`) when
/// it names a unit, else the `name=systemd` line of a hybrid or v1 host.
pub fn unit_from_proc_cgroup(text: &str) -> Option<String> {
    let mut v2 = None;
    let mut systemd = None;
    for line in text.lines() {
        let mut fields = line.splitn(3, ':');
        let (Some(hierarchy), Some(controllers), Some(path)) =
            (fields.next(), fields.next(), fields.next())
        else {
            continue;
        };
        if hierarchy.trim() == "0" && controllers.is_empty() {
            v2 = Some(path);
        } else if controllers.split(',').any(|c| c == "name=systemd") {
            systemd = Some(path);
        }
    }
    v2.and_then(unit_from_cgroup_path)
        .or_else(|| systemd.and_then(unit_from_cgroup_path))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn units_from_cgroup_paths() {
        let id = "5e5e56284716d1377022e5040c601c82fe47ba6c05cb30340ae0c210a52ec9bb";
        let table: &[(&str, Option<&str>)] = &[
            ("/system.slice/nginx.service", Some("nginx.service")),
            ("/system.slice/nginx.service/", Some("nginx.service")),
            // a service's own sub-cgroups (Delegate=yes) are still the service
            (
                "/system.slice/containerd.service/worker",
                Some("containerd.service"),
            ),
            ("/init.scope", Some("init.scope")),
            (
                "/user.slice/user-1000.slice/session-3.scope",
                Some("session-3.scope"),
            ),
            // the user manager and what it runs: the system manager's unit
            (
                "/user.slice/user-1000.slice/user@1000.service/init.scope",
                Some("user@1000.service"),
            ),
            (
                "/user.slice/user-1000.slice/user@1000.service/app.slice/foo.service",
                Some("user@1000.service"),
            ),
            // template instances, escapes kept as systemctl takes them
            (
                "/system.slice/system-getty.slice/getty@tty1.service",
                Some("getty@tty1.service"),
            ),
            (
                r"/system.slice/system-systemd\x2dfsck.slice/systemd-fsck@dev-disk-by\x2duuid-0f3c.service",
                Some(r"systemd-fsck@dev-disk-by\x2duuid-0f3c.service"),
            ),
            (
                r"/system.slice/foo\x2dbar.service",
                Some(r"foo\x2dbar.service"),
            ),
            // cg_escape()d names
            ("/system.slice/_cpu.service", Some("cpu.service")),
            ("/system.slice/__hidden.service", Some("_hidden.service")),
            // a booted container's units: its own manager's
            (
                "/machine.slice/machine-web.scope/payload/system.slice/nginx.service",
                Some("nginx.service"),
            ),
            (
                "/signal-trace-systemd/payload/system.slice/stubborn.service",
                Some("stubborn.service"),
            ),
            (
                "/signal-trace-systemd/payload/init.scope",
                Some("init.scope"),
            ),
            (
                "/machine.slice/machine-web.scope",
                Some("machine-web.scope"),
            ),
            (
                "/machine.slice/machine-web.scope/payload",
                Some("machine-web.scope"),
            ),
            // containers under systemd's driver are scopes
            (
                &format!("/system.slice/docker-{id}.scope"),
                Some(&format!("docker-{id}.scope")),
            ),
            // not units
            ("/", None),
            ("", None),
            ("/system.slice", None),
            ("/user.slice/user-1000.slice", None),
            (&format!("/docker/{id}"), None),
            (
                "/kubepods/besteffort/pod0358379a-44b0-4f55-a3d6-9be487c1e499",
                None,
            ),
            ("/process_api/f7144db6e822f8150548341a353e847f", None),
            ("/system.slice/nginx.servic", None),
            ("/system.slice/.service", None),
            ("/system.slice/a@b@c.service", None),
            ("/system.slice/@x.service", None),
            ("/system.slice/has space.service", None),
            // a slice below a non-unit is not looked into
            ("/lxc/web/system.slice/nginx.service", None),
        ];
        for (path, want) in table {
            assert_eq!(
                unit_from_cgroup_path(path).as_deref(),
                *want,
                "path {path:?}"
            );
        }
        let long = format!("/system.slice/{}.service", "a".repeat(250));
        assert_eq!(unit_from_cgroup_path(&long), None);
    }

    #[test]
    fn unit_types() {
        assert_eq!(unit_type("nginx.service"), Some("service"));
        assert_eq!(unit_type("dev-sda1.swap"), Some("swap"));
        assert_eq!(unit_type("-.mount"), Some("mount"));
        assert_eq!(unit_type("user-1000.slice"), Some("slice"));
        assert_eq!(unit_type("getty@.service"), Some("service"));
        assert_eq!(unit_type("nginx"), None);
        assert_eq!(unit_type("nginx.conf"), None);
    }

    #[test]
    fn units_from_proc_cgroup_on_every_layout() {
        // pure cgroup v2
        assert_eq!(
            unit_from_proc_cgroup("0::/system.slice/nginx.service\n").as_deref(),
            Some("nginx.service")
        );
        // hybrid: v1 controllers, name=systemd and the unified hierarchy agree
        let hybrid = "12:memory:/system.slice/nginx.service\n\
                      1:name=systemd:/system.slice/nginx.service\n\
                      0::/system.slice/nginx.service\n";
        assert_eq!(
            unit_from_proc_cgroup(hybrid).as_deref(),
            Some("nginx.service")
        );
        // hybrid where the unified line says nothing (systemd not managing it): name=systemd
        let v1 = "4:memory:/process_api/f7144db6\n1:name=systemd:/user.slice/user-0.slice/session-3.scope\n0::/\n";
        assert_eq!(
            unit_from_proc_cgroup(v1).as_deref(),
            Some("session-3.scope")
        );
        // no systemd at all
        assert_eq!(unit_from_proc_cgroup("9:name=systemd:/\n0::/\n"), None);
        assert_eq!(unit_from_proc_cgroup("garbage"), None);
    }
}
