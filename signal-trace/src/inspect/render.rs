//! Reports as text for people.
//!
//! What the process controls (comm, every argument, thread and child names) and what the
//! cgroup path says (container id, pod uid, which whoever created the cgroup chose) is
//! escaped (see [`crate::escape`]), as are the flag texts: a report stays the lines it is made
//! of.

use super::*;

impl ProcessReport {
    /// The report for people: identity, init status, container, signals by name, threads,
    /// children, and the flags with their remedies.
    pub fn render_text(&self) -> String {
        let mut o = String::new();
        let _ = writeln!(
            o,
            "pid {} ({})  state {}  ppid {}  uid {}{}",
            self.pid,
            self.comm,
            if self.state.is_empty() {
                "?".to_owned()
            } else {
                Escaped::str(&self.state).to_string()
            },
            self.ppid,
            self.uid,
            if self.euid != self.uid {
                format!(" (euid {})", self.euid)
            } else {
                String::new()
            }
        );
        if !self.cmdline.is_empty() {
            let args: Vec<String> = self.cmdline.iter().map(RawText::to_string).collect();
            let _ = writeln!(o, "  cmdline:  {}", args.join(" "));
        }
        let pids = self
            .ns_pids
            .iter()
            .map(u32::to_string)
            .collect::<Vec<_>>()
            .join(" > ");
        let init = match self.init {
            Some(InitKind::Namespace) => "init of its PID namespace",
            Some(InitKind::Host) => "PID 1",
            None => "not an init",
        };
        let _ = writeln!(o, "  init:     {init} (pid per namespace: {pids})");
        if let Some(c) = &self.container {
            let _ = write!(
                o,
                "  container: {} {}",
                Escaped::str(&c.container.runtime),
                Escaped::str(&c.container.id)
            );
            if let Some(uid) = &c.pod_uid {
                let _ = write!(o, "  pod uid {}", Escaped::str(uid));
            }
            if let Some(qos) = &c.qos {
                let _ = write!(o, " ({})", Escaped::str(qos));
            }
            o.push('\n');
        }
        let _ = writeln!(o, "  caught:   {}", join(&self.caught));
        let _ = writeln!(o, "  ignored:  {}", join(&self.ignored));
        let _ = writeln!(o, "  blocked:  {}", join(&self.blocked));
        let mut pending = Vec::new();
        if !self.pending_thread.is_empty() {
            pending.push(format!("{} (thread)", self.pending_thread.join(" ")));
        }
        if !self.pending_process.is_empty() {
            pending.push(format!("{} (process)", self.pending_process.join(" ")));
        }
        let _ = writeln!(
            o,
            "  pending:  {}",
            if pending.is_empty() {
                "-".to_owned()
            } else {
                pending.join("; ")
            }
        );
        let _ = writeln!(
            o,
            "  SIGTERM:  {}{}{}",
            disposition_text(self.term),
            if self.term_blocked_everywhere {
                ", blocked in every thread"
            } else {
                ""
            },
            match self.term_wait {
                Some(w) => format!("; {}", w.describe()),
                None => String::new(),
            }
        );
        if let Some(q) = self.sigq {
            let _ = writeln!(
                o,
                "  queued:   {}/{} (for uid {})",
                q.queued, q.limit, self.uid
            );
        }
        let _ = writeln!(
            o,
            "  threads:  {}, differing from the main thread: {}",
            self.threads,
            self.thread_differences.len()
        );
        for t in &self.thread_differences {
            let _ = writeln!(
                o,
                "    tid {} ({}): blocked {}; pending {}",
                t.tid,
                t.comm,
                join(&t.blocked),
                join(&t.pending)
            );
        }
        let _ = writeln!(o, "  children: {}", self.children.len());
        for c in &self.children {
            let _ = writeln!(
                o,
                "    {} ({})  {}  SIGTERM {}{}",
                c.pid,
                c.comm,
                Escaped::str(&c.state),
                disposition_text(c.term),
                if c.term_blocked { ", blocked" } else { "" }
            );
        }
        if self.flags.is_empty() {
            let _ = writeln!(o, "  flags:    none");
        } else {
            let _ = writeln!(o, "  flags:");
            for f in &self.flags {
                let _ = writeln!(
                    o,
                    "    {}: {}",
                    f.flag.as_str(),
                    Escaped::str(&f.explanation)
                );
                let _ = writeln!(o, "      remedy: {}", Escaped::str(&f.remedy));
            }
        }
        o
    }
}
