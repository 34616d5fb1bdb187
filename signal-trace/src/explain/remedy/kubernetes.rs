//! Remedies for a pod's container, in the pod spec's terms.

use super::*;

pub(super) fn remedy(s: Situation<'_>) -> Option<String> {
    Some(match s {
        Situation::InitIgnored { signal }
        | Situation::Grace {
            signal,
            result: TermResult::Ignored,
            ..
        } => format!(
            "The container's PID 1 has no handler for {signal}, so the kernel drops it and the \
             kubelet's stop waits out the whole terminationGracePeriodSeconds before SIGKILL. \
             Handle it in the program, or make a real init PID 1: Kubernetes has no `--init`, \
             so set the container's `command: [\"tini\", \"--\", \"app\"]` (or dumb-init), or \
             use the exec form `ENTRYPOINT [\"app\"]` in the image instead of a shell form. If \
             the app stops cleanly on another signal, make that the stop signal (`STOPSIGNAL` \
             in the image, or the container's `lifecycle.stopSignal`); a `preStop` hook \
             (`lifecycle.preStop.exec.command`) can also start the shutdown before {signal} is \
             sent."
        ),
        Situation::NotForwarded => "PID 1 of the container got the kubelet's SIGTERM and passed \
             nothing on, so the app died by SIGKILL when the grace period ended. Let the app be \
             PID 1: exec form `command: [\"app\", \"--flag\"]` (or `exec app` at the end of the \
             entrypoint script), or run an init that forwards signals: `command: [\"tini\", \
             \"-g\", \"--\", \"app\"]`."
            .into(),
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
            "The kubelet sent SIGKILL {} after {signal}. Finish the shutdown inside the pod's \
             grace period with a margin (stop taking traffic, drain with a deadline a few \
             seconds shorter), or raise `terminationGracePeriodSeconds` in the pod spec if the \
             work really needs longer. A `preStop` hook runs inside the same grace period, so \
             its time counts against it too.",
            measured(measured_ns, configured_s, "the pod allows")
        ),
        Situation::Oom => "The container hit its memory limit: raise \
             `resources.limits.memory` (and `requests.memory` with it) in the pod spec, or keep \
             the program's heap below the limit (GOMEMLIMIT, -XX:MaxRAMPercentage, \
             --max-old-space-size). Kubernetes reports this as OOMKilled, exit code 137."
            .into(),
        Situation::KillWithoutTerm => "SIGKILL with no SIGTERM first: do not force-delete \
             (`kubectl delete --grace-period=0 --force`), and keep \
             `terminationGracePeriodSeconds` above 0."
            .into(),
        Situation::InitExited => "The container's PID 1 exited and the kernel killed the rest \
             of it. Have PID 1 stop its children and wait for them: `command: [\"tini\", \"-g\", \
             \"--\", \"app\"]`, or make the app itself PID 1 (exec form)."
            .into(),
    })
}
