//! Remedies for a systemd unit, in unit-file terms.

use super::*;

pub(super) fn remedy(s: Situation<'_>, unit: Option<&str>) -> Option<String> {
    let unit = unit.unwrap_or("the unit");
    Some(match s {
        Situation::Grace {
            signal,
            result,
            measured_ns,
            configured_s,
        } => {
            let why = match result {
                TermResult::Ignored => format!(
                    "its process ignores {signal} (SIG_IGN, e.g. `trap '' TERM`), so it never \
                     saw it"
                ),
                TermResult::Pending => format!("its process had {signal} blocked"),
                _ => "its process did not exit in time".to_string(),
            };
            format!(
                "systemd stopped {unit} with {signal} and, because {why}, sent SIGKILL when \
                 `TimeoutStopSec=` ran out ({}; the default is DefaultTimeoutStopSec=, 90 s). \
                 Make the service exit on {signal}, or tell systemd how it stops: \
                 `KillSignal=` for the signal it does handle (e.g. `KillSignal=SIGINT`), \
                 `ExecStop=` for a command that stops it cleanly, `KillMode=mixed` so only the \
                 main process gets {signal} and the rest of the unit SIGKILL at the end; raise \
                 `TimeoutStopSec=` if the work really needs longer (`systemctl edit {unit}`).",
                measured(measured_ns, configured_s, "configured")
            )
        }
        Situation::Oom => format!(
            "{unit} hit its memory limit: raise `MemoryMax=` (and `MemoryHigh=`) with \
             `systemctl edit {unit}`, or keep the program's heap below it."
        ),
        Situation::KillWithoutTerm => format!(
            "SIGKILL with no SIGTERM first: stop {unit} with `systemctl stop` (KillSignal=, \
             then SIGKILL after TimeoutStopSec=) rather than `systemctl kill -s KILL`; check \
             that `KillSignal=` is not SIGKILL."
        ),
        Situation::InitIgnored { .. } | Situation::NotForwarded | Situation::InitExited => {
            return None
        }
    })
}
