//! Findings and timelines as text for people.

use super::*;

/// Readable multi-line text of a finding.
pub fn render_text(f: &Finding) -> String {
    let mut s = String::new();
    let _ = write!(
        s,
        "{} {} at {}",
        f.severity.as_str(),
        f.kind.as_str(),
        f.time.clock()
    );
    if f.process.pid != 0 {
        let _ = write!(
            s,
            ": {}",
            who(f.process.comm, f.process.pid, f.process.ns_pid)
        );
    }
    if let Some(c) = &f.container {
        let _ = write!(s, " in {}", container_text(c));
    } else if let Some(u) = &f.unit {
        let _ = write!(s, " in unit {u}");
    }
    if let Some(o) = f.orchestrator {
        let _ = write!(s, " (stopped by {})", o.as_str());
    }
    s.push('\n');
    let _ = writeln!(s, "  {}", f.summary);
    if let (Some(g), Some(t)) = (f.grace_ns, f.shutdown_ns) {
        let _ = writeln!(
            s,
            "  grace period {} (SIGTERM to SIGKILL), shutdown {}",
            duration(g),
            duration(t)
        );
    }
    if !f.evidence.is_empty() {
        s.push_str("  evidence:\n");
        for e in &f.evidence {
            let _ = writeln!(s, "    {} {:<8} {}", e.time.clock(), e.event, e.text);
        }
    }
    let _ = writeln!(s, "  remedy: {}", f.remedy);
    s
}

impl fmt::Display for Finding {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&render_text(self))
    }
}

/// Readable multi-line text of a timeline: one line per step with its offset from the first.
pub fn render_timeline(t: &Timeline) -> String {
    let mut s = String::new();
    let _ = write!(
        s,
        "shutdown of {}",
        who(t.process.comm, t.process.pid, t.process.ns_pid)
    );
    if let Some(u) = t.unit.as_ref().filter(|_| t.container.is_none()) {
        let _ = write!(s, " in unit {u}");
    }
    if let Some(c) = &t.container {
        let _ = write!(s, " in {}", container_text(c));
    }
    s.push('\n');
    for step in &t.steps {
        let _ = writeln!(
            s,
            "  {} {:>10}  {:<9} {}",
            step.time.clock(),
            if step.offset_ns == 0 {
                "+0".to_string()
            } else {
                format!("+{}", duration(step.offset_ns))
            },
            match step.kind {
                StepKind::Signal => "signal",
                StepKind::Handled => "handled",
                StepKind::Ignored => "ignored",
                StepKind::Pending => "pending",
                StepKind::Forwarded => "forwarded",
                StepKind::Exit => "exit",
            },
            step.text
        );
    }
    s
}

impl crate::sink::output::Item for Finding {
    fn text(&self, out: &mut String, _color: bool) {
        out.push_str(&render_text(self));
    }
}

impl crate::sink::output::Item for Timeline {
    fn text(&self, out: &mut String, _color: bool) {
        out.push_str(&render_timeline(self));
    }
}
