//! `init_ignored`: a shutdown signal dropped by a PID-namespace init without a handler.

use super::*;

pub(crate) fn init_ignored_finding(p: &Proc, sig: &Sig) -> Finding {
    let mut f = base(FindingKind::InitIgnored, Severity::Error, sig.time, p);
    f.summary = format!(
        "{} from {} to {}{} was ignored by the kernel: PID 1 of a PID namespace only gets the \
         signals it has a handler for, and it has none for {}",
        sig.signal,
        peer_text(&sig.sender),
        who(p.comm, p.pid, p.ns_pid),
        where_text(p),
        sig.signal
    );
    f.remedy = remedy_for(
        p,
        Situation::InitIgnored {
            signal: &sig.signal,
        },
    );
    f.signal = Some(sig.signal.clone());
    f.code = Some(sig.code.clone());
    f.sender = Some(sig.sender.clone());
    f.reason = sig.reason;
    f.push_evidence(&sig.ev);
    f
}
