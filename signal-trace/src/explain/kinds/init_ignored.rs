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
    f.remedy = format!(
        "Make PID 1 react to {sig}: install a handler in the program (signal.signal(SIGTERM, …) \
         in Python, signal.NotifyContext in Go, process.on('SIGTERM') in Node.js, `trap … TERM` \
         in a shell entrypoint); or put a real init in front of it that forwards signals: \
         `ENTRYPOINT [\"tini\", \"--\"]` in the Dockerfile, `docker run --init`, or tini / \
         dumb-init as the container command in Kubernetes (which has no --init). If PID 1 is a \
         shell running the app (shell-form `CMD app`), use the exec form `CMD [\"app\"]` or \
         `exec app` in the entrypoint so the app itself is PID 1 with its own handler. SIGKILL \
         still works, so today every stop waits out the whole grace period.",
        sig = sig.signal
    );
    f.signal = Some(sig.signal.clone());
    f.code = Some(sig.code.clone());
    f.sender = Some(sig.sender.clone());
    f.reason = sig.reason;
    f.push_evidence(&sig.ev);
    f
}
