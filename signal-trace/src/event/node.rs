//! Which node the records come from: `host` (`NODE_NAME`, else the hostname) and `boot_id`.

use std::path::Path;

use crate::event::record::{Label, Node};

/// Where the kernel publishes the boot id.
pub const BOOT_ID_PATH: &str = "/proc/sys/kernel/random/boot_id";

impl Node {
    /// This node: `NODE_NAME` from the environment when set and not blank (a DaemonSet sets
    /// it from the downward API), else the hostname; the boot id when /proc has it.
    pub fn current() -> Node {
        let node_name = std::env::var("NODE_NAME").ok();
        let boot_id = std::fs::read_to_string(Path::new(BOOT_ID_PATH)).ok();
        Node::from_parts(node_name.as_deref(), &hostname(), boot_id.as_deref())
    }

    /// The pure part of [`Node::current`].
    pub fn from_parts(node_name: Option<&str>, hostname: &str, boot_id: Option<&str>) -> Node {
        let host = node_name
            .map(str::trim)
            .filter(|n| !n.is_empty())
            .unwrap_or_else(|| hostname.trim());
        Node {
            host: Label::new(host),
            boot_id: boot_id
                .map(str::trim)
                .filter(|b| !b.is_empty())
                .map(Label::new),
        }
    }
}

/// The hostname of this UTS namespace (the node's, with hostNetwork or on the host).
pub fn hostname() -> String {
    let mut buf = [0u8; 256];
    // SAFETY: gethostname writes at most `len` bytes into a valid buffer.
    let rc = unsafe { libc::gethostname(buf.as_mut_ptr().cast(), buf.len()) };
    if rc != 0 {
        return String::new();
    }
    let n = buf.iter().position(|&b| b == 0).unwrap_or(buf.len());
    String::from_utf8_lossy(&buf[..n]).into_owned()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn node_name_wins_over_the_hostname() {
        let n = Node::from_parts(Some("node-a"), "box", Some("b1\n"));
        assert_eq!(n.host.as_str(), "node-a");
        assert_eq!(n.boot_id.as_ref().map(Label::as_str), Some("b1"));
    }

    #[test]
    fn blank_node_name_falls_back_to_the_hostname() {
        for v in [None, Some(""), Some("  ")] {
            let n = Node::from_parts(v, "box\n", None);
            assert_eq!(n.host.as_str(), "box", "{v:?}");
            assert_eq!(n.boot_id, None);
        }
    }

    #[test]
    fn current_node_has_this_hosts_name_and_boot_id() {
        let n = Node::current();
        let want = std::env::var("NODE_NAME")
            .ok()
            .filter(|v| !v.trim().is_empty())
            .unwrap_or_else(hostname);
        assert_eq!(n.host.as_str(), want.trim());
        let boot = std::fs::read_to_string(BOOT_ID_PATH).unwrap();
        assert_eq!(n.boot_id.unwrap().as_str(), boot.trim());
    }
}
