//! `oom_killed`: a death by the kernel's OOM killer.

use super::*;

pub(crate) fn oom_finding(p: &Proc) -> Finding {
    let exit = p.exit.as_ref();
    let oom = p.oom.as_ref();
    let time = exit
        .map(|x| x.time)
        .or(oom.map(|o| o.ev.time))
        .unwrap_or(p.last_seen);
    let mut f = base(FindingKind::OomKilled, Severity::Error, time, p);
    let trigger = oom.map(|o| o.trigger.clone());
    let by = match &trigger {
        Some(t) if t.pid == p.pid => " while it was allocating memory itself".to_string(),
        Some(t) => format!(" while {} was allocating memory", peer_text(t)),
        None => String::new(),
    };
    let scope = match (&p.container, p.cgroup_id) {
        (Some(c), _) => format!("{} hit its memory limit", container_text(c)),
        (None, Some(cg)) if cg > ROOT_CGROUP => format!("cgroup {cg} hit its memory limit"),
        _ => "memory ran out".to_string(),
    };
    f.summary = format!(
        "the kernel's OOM killer killed {}: {scope}{by}{}",
        who(p.comm, p.pid, p.ns_pid),
        exit.map(|x| format!("; it died with status {}", x.exit_code))
            .unwrap_or_default()
    );
    f.remedy = remedy_for(p, Situation::Oom);
    f.signal = Some("SIGKILL".into());
    f.code = p.kill.as_ref().map(|k| k.code.clone());
    f.sender = p.kill.as_ref().map(|k| k.sender.clone());
    f.trigger = trigger;
    f.cause = Some(Cause::Kernel);
    f.exit_code = exit.map(|x| x.exit_code);
    if let Some(k) = &p.kill {
        f.push_evidence(&k.ev);
    }
    if let Some(o) = oom {
        f.push_evidence(&o.ev);
    }
    if let Some(x) = exit {
        f.push_evidence(&x.ev);
    }
    f.evidence.sort_by_key(|e| e.time);
    f
}
