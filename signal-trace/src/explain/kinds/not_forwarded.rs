//! `not_forwarded`: a PID 1 that got SIGTERM and never passed it on before its children were SIGKILLed.

use super::*;

pub(crate) fn term_result(p: &Proc, term: &Sig) -> TermResult {
    if p.term_handled.is_some() {
        TermResult::Handled
    } else if term.result == Outcome::Ignored {
        TermResult::Ignored
    } else if term.blocked {
        TermResult::Pending
    } else {
        TermResult::Delivered
    }
}

pub(crate) fn not_forwarded_finding(init: &Proc, term: &Sig, children: &[Proc]) -> Finding {
    let end = children
        .iter()
        .filter_map(|c| c.exit.as_ref().map(|x| x.time))
        .max()
        .unwrap_or(term.time);
    let mut f = base(FindingKind::NotForwarded, Severity::Error, end, init);
    f.children = children.iter().map(Proc::process_ref).collect();
    let handled = match term_result(init, term) {
        TermResult::Handled => "ran its handler",
        TermResult::Ignored => "ignored it",
        TermResult::Pending => "left it pending",
        TermResult::Delivered => "took it",
    };
    f.summary = format!(
        "{} got {} from {} and {handled}, but passed no signal on to {}{}: {} died by SIGKILL \
         with no chance to shut down",
        who(init.comm, init.pid, init.ns_pid),
        term.signal,
        peer_text(&term.sender),
        if children.len() == 1 {
            "the other process"
        } else {
            "the other processes"
        },
        where_text(init),
        list(&f.children)
    );
    f.remedy = remedy_for(init, Situation::NotForwarded);
    f.signal = Some(term.signal.clone());
    f.sender = Some(term.sender.clone());
    f.term_time = Some(term.time);
    f.term_sender = Some(term.sender.clone());
    f.term_result = Some(term_result(init, term));
    f.reason = term.reason;
    f.push_evidence(&term.ev);
    if let Some(h) = &init.term_handled {
        f.push_evidence(h);
    }
    if let Some(x) = &init.exit {
        f.push_evidence(&x.ev);
    }
    for c in children {
        if let Some(k) = &c.kill {
            f.push_evidence(&k.ev);
        }
        if let Some(x) = &c.exit {
            f.push_evidence(&x.ev);
        }
    }
    f
}
