//! Remedies when no known orchestrator stops the process: every usual knob, briefly.

use super::*;

pub(super) fn remedy(s: Situation<'_>) -> String {
    match s {
        Situation::InitIgnored { signal } => format!(
            "Make PID 1 react to {signal}: install a handler in the program (signal.signal(SIGTERM, …) \
             in Python, signal.NotifyContext in Go, process.on('SIGTERM') in Node.js, `trap … TERM` \
             in a shell entrypoint); or put a real init in front of it that forwards signals: \
             `ENTRYPOINT [\"tini\", \"--\"]` in the Dockerfile, `docker run --init`, or tini / \
             dumb-init as the container command in Kubernetes (which has no --init). If PID 1 is a \
             shell running the app (shell-form `CMD app`), use the exec form `CMD [\"app\"]` or \
             `exec app` in the entrypoint so the app itself is PID 1 with its own handler. SIGKILL \
             still works, so today every stop waits out the whole grace period."
        ),
        Situation::NotForwarded => "Make the signal reach the app. If PID 1 is a shell that starts it, let the app \
                replace the shell: exec form `CMD [\"app\", \"--flag\"]` instead of `CMD app \
                --flag` in the Dockerfile, or `exec app \"$@\"` as the last line of the \
                entrypoint script. If PID 1 has to supervise several processes, run an init that \
                forwards signals and waits for its children: `ENTRYPOINT [\"tini\", \"-g\", \
                \"--\"]`, `docker run --init`, or in the script `trap 'kill -TERM \"$child\"; \
                wait \"$child\"' TERM` before `wait`. When PID 1 exits the kernel SIGKILLs \
                everything left in the namespace."
            .into(),
        Situation::Grace {
            signal,
            result: TermResult::Ignored,
            ..
        } => format!(
            "The {signal} was dropped before the process could see it, so the whole grace period was \
             wasted: install a handler for it, or run tini as PID 1 (`ENTRYPOINT [\"tini\", \
             \"--\"]`, `docker run --init`), or use the exec form `CMD [\"app\"]` so the app \
             itself is PID 1 with its own handler."
        ),
        Situation::Grace {
            signal,
            result: TermResult::Pending,
            ..
        } => pending(signal),
        Situation::Grace { measured_ns, .. } => format!(
            "Shut down within the grace period, with a margin: give the drain a deadline \
             shorter than the {} it gets now (e.g. 25s for 30s), stop accepting work first, and \
             close slow dependencies with timeouts. If the work really needs longer, raise the \
             grace period: `terminationGracePeriodSeconds` in the pod spec, `docker stop -t N` \
             or `stop_grace_period` in Compose, `TimeoutStopSec=` in a systemd unit.",
            duration(measured_ns)
        ),
        Situation::Oom => "Give it the memory it needs or make it need less: raise the limit \
                (`resources.limits.memory` in the pod spec, `docker run --memory`, `MemoryMax=` \
                in a systemd unit), or keep the program's own heap below the limit (GOMEMLIMIT \
                for Go, -XX:MaxRAMPercentage for the JVM, --max-old-space-size for Node.js, \
                fewer workers). If usage grows without bound, profile it for a leak. Exit status \
                137 with this finding is the OOM killer, not a shutdown."
            .into(),
        Situation::KillWithoutTerm => "Stop it with SIGTERM first and send SIGKILL only after a grace period \
             (`kill -TERM`, then `kill -KILL` if it is still there; `docker stop` rather than \
             `docker kill`; no `--grace-period=0 --force` in kubectl)."
            .into(),
        Situation::InitExited => "Have PID 1 stop its children before it exits: forward SIGTERM to them and wait \
             (tini does both: `ENTRYPOINT [\"tini\", \"-g\", \"--\"]`), or make the app itself \
             PID 1 with the exec form `CMD [\"app\"]`."
            .into(),
    }
}

/// A shutdown signal blocked and never delivered: the same advice everywhere.
pub(super) fn pending(signal: &str) -> String {
    format!(
        "{signal} was blocked and never delivered: unblock it (check sigprocmask / \
         pthread_sigmask in the main thread and in threads it creates), or wait for it \
         with sigwaitinfo or a signalfd and start the shutdown from there."
    )
}
