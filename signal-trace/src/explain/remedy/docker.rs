//! Remedies for a Docker (or podman) container, in `docker run` and Compose terms.

use super::*;

/// Docker's stop timeout when none is set (`docker stop`, Compose's `stop_grace_period`).
const DEFAULT_STOP_TIMEOUT_S: u64 = 10;

pub(super) fn remedy(s: Situation<'_>, cli: &str) -> Option<String> {
    Some(match s {
        Situation::InitIgnored { signal }
        | Situation::Grace {
            signal,
            result: TermResult::Ignored,
            ..
        } => format!(
            "The container's PID 1 has no handler for {signal}, so the kernel drops it and \
             `{cli} stop` waits out its whole timeout ({DEFAULT_STOP_TIMEOUT_S} s unless \
             `--stop-timeout`/`-t`) before SIGKILL. Run it with an init that forwards signals: \
             `{cli} run --init`, or `init: true` in Compose; or use the exec form \
             `CMD [\"app\"]` so the app itself is PID 1 with its own handler; or, if the app \
             stops cleanly on another signal, declare it: `STOPSIGNAL` in the Dockerfile, \
             `--stop-signal`, or `stop_signal` in Compose."
        ),
        Situation::NotForwarded => format!(
            "PID 1 of the container got `{cli} stop`'s SIGTERM and passed nothing on, so the \
             app died by SIGKILL when the timeout ran out. Use the exec form \
             `CMD [\"app\", \"--flag\"]` instead of the shell form `CMD app --flag` (or `exec \
             app` at the end of the entrypoint), or run `{cli} run --init` / `init: true` in \
             Compose so tini forwards the signal."
        ),
        Situation::Grace {
            signal,
            result: TermResult::Pending,
            ..
        } => generic::pending(signal),
        Situation::Grace {
            signal,
            measured_ns,
            configured_s,
            ..
        } => format!(
            "`{cli} stop` sent SIGKILL {} after {signal}: the app took longer than the stop \
             timeout ({DEFAULT_STOP_TIMEOUT_S} s by default). Shut down faster, with a deadline \
             shorter than the timeout, or give it more time: `{cli} run --stop-timeout N`, \
             `{cli} stop -t N`, or `stop_grace_period: 30s` in Compose.",
            measured(measured_ns, configured_s, "configured")
        ),
        Situation::Oom => format!(
            "The container hit its memory limit: raise it (`{cli} run --memory`, `mem_limit` or \
             `deploy.resources.limits.memory` in Compose), or keep the program's heap below it \
             (GOMEMLIMIT, -XX:MaxRAMPercentage, --max-old-space-size). `{cli} inspect` shows \
             `OOMKilled: true`."
        ),
        Situation::KillWithoutTerm => format!(
            "SIGKILL with no SIGTERM first: use `{cli} stop` (SIGTERM, then SIGKILL after the \
             timeout) rather than `{cli} kill`, and `{cli} rm` without `-f` on a running \
             container."
        ),
        Situation::InitExited => format!(
            "The container's PID 1 exited and the kernel killed the rest of it. Run `{cli} run \
             --init` (or `init: true` in Compose) so tini waits for its children, or make the \
             app itself PID 1 with the exec form `CMD [\"app\"]`."
        ),
    })
}
