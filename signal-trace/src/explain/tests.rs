use super::engine::later;
use super::*;

fn load(ndjson: &str) -> Vec<Record> {
    ndjson
        .lines()
        .filter(|l| !l.trim().is_empty())
        .enumerate()
        .map(|(i, l)| {
            serde_json::from_str(l).unwrap_or_else(|e| panic!("fixture line {}: {e}", i + 1))
        })
        .collect()
}

const INIT_IGNORED: &str = include_str!("../../tests/fixtures/explain/init_ignored.ndjson");
const NOT_FORWARDED: &str = include_str!("../../tests/fixtures/explain/not_forwarded.ndjson");
const GRACE: &str = include_str!("../../tests/fixtures/explain/grace_exceeded.ndjson");
const OOM: &str = include_str!("../../tests/fixtures/explain/oom_killed.ndjson");
const DEATH: &str = include_str!("../../tests/fixtures/explain/signal_death.ndjson");
const COALESCED: &str = include_str!("../../tests/fixtures/explain/coalesced.ndjson");
const HEALTHY: &str = include_str!("../../tests/fixtures/explain/healthy_shutdown.ndjson");

const ALL: [&str; 7] = [
    INIT_IGNORED,
    NOT_FORWARDED,
    GRACE,
    OOM,
    DEATH,
    COALESCED,
    HEALTHY,
];

fn kinds(fs: &[Finding]) -> Vec<FindingKind> {
    fs.iter().map(|f| f.kind).collect()
}

fn one(fs: &[Finding], kind: FindingKind) -> &Finding {
    let v: Vec<_> = fs.iter().filter(|f| f.kind == kind).collect();
    assert_eq!(v.len(), 1, "{kind:?} in {:?}", kinds(fs));
    v[0]
}

#[test]
fn init_ignored_names_the_init_and_the_sender() {
    let fs = explain_all(&load(INIT_IGNORED));
    let f = one(&fs, FindingKind::InitIgnored);
    assert_eq!(f.severity, Severity::Error);
    assert_eq!((f.process.pid, f.process.ns_pid), (22070, Some(1)));
    assert_eq!(f.process.comm.as_str(), "sleep");
    assert_eq!(f.signal.as_deref(), Some("SIGTERM"));
    assert_eq!(f.reason, Some(IgnoreReason::PidNamespaceInit));
    assert_eq!(f.sender.as_ref().map(|s| s.pid), Some(22067));
    assert_eq!(f.evidence.len(), 1);
    assert_eq!(f.evidence[0].event, "generate");
    assert!(f.remedy.contains("tini") && f.remedy.contains("CMD [\"app\"]"));
    // The SIGKILL two seconds later ended it: the grace period ran out because of it.
    let g = one(&fs, FindingKind::GraceExceeded);
    assert_eq!(g.term_result, Some(TermResult::Ignored));
    assert_eq!(g.exit_code, Some(137));
    let grace = g.grace_ns.expect("grace");
    assert!((2_000_000_000..2_010_000_000).contains(&grace), "{grace}");
    // And the death is not reported a third time.
    assert_eq!(fs.len(), 2, "{:?}", kinds(&fs));
}

#[test]
fn evidence_names_the_senders_command_line_and_ancestry() {
    // The fixture predates exe, args and ancestors: it still loads, and evidence names the
    // sender by comm and pid alone.
    let fs = explain_all(&load(INIT_IGNORED));
    let f = one(&fs, FindingKind::InitIgnored);
    assert!(
        f.evidence[0].text.contains("from bash (pid 22067) to"),
        "{}",
        f.evidence[0].text
    );
    // The same stream as recorded now.
    let mut lines: Vec<serde_json::Value> = INIT_IGNORED
        .lines()
        .filter(|l| !l.trim().is_empty())
        .map(|l| serde_json::from_str(l).unwrap())
        .collect();
    lines[0]["sender"]["exe"] = "/usr/bin/bash".into();
    lines[0]["sender"]["args"] = serde_json::json!(["bash", "/etc/cron.daily/stop-app", "now"]);
    lines[0]["sender"]["args_truncated"] = false.into();
    lines[0]["sender"]["ancestors"] = serde_json::json!([
        {"pid": 900, "comm": "cron", "exe": "/usr/sbin/cron"},
        {"pid": 1, "comm": null, "exe": "/usr/lib/systemd/systemd"}
    ]);
    let text: String = lines.iter().map(|v| format!("{v}\n")).collect();
    let fs = explain_all(&load(&text));
    let f = one(&fs, FindingKind::InitIgnored);
    assert!(
        f.evidence[0].text.contains(
            "from bash (pid 22067), running \"bash /etc/cron.daily/stop-app now\", child of cron (pid 900) ← systemd (pid 1) to"
        ),
        "{}",
        f.evidence[0].text
    );
    // A long command line is cut, and says so.
    let long = "x".repeat(300);
    lines[0]["sender"]["args"] = serde_json::json!(["sh", "-c", long]);
    let text: String = lines.iter().map(|v| format!("{v}\n")).collect();
    let fs = explain_all(&load(&text));
    let t = &one(&fs, FindingKind::InitIgnored).evidence[0].text;
    assert!(t.contains("…\""), "{t}");
    assert!(!t.contains(&"x".repeat(120)), "{t}");
}

#[test]
fn init_ignored_is_reported_once_per_process_and_at_once() {
    let records = load(INIT_IGNORED);
    let mut e = Engine::new();
    // The first record is the ignored SIGTERM: certain as soon as it is seen.
    assert_eq!(kinds(&e.push(&records[0])), vec![FindingKind::InitIgnored]);
    // The same SIGTERM again (a second `kill`): nothing new.
    assert!(e.push(&records[0]).is_empty());
}

#[test]
fn not_forwarded_lists_the_children_killed_at_teardown() {
    let fs = explain_all(&load(NOT_FORWARDED));
    assert_eq!(kinds(&fs), vec![FindingKind::NotForwarded]);
    let f = &fs[0];
    assert_eq!(f.process.pid, 24175);
    assert_eq!(f.process.comm.as_str(), "sh");
    assert_eq!(f.term_result, Some(TermResult::Handled));
    assert_eq!(
        f.children
            .iter()
            .map(|c| (c.pid, c.comm.as_str().into_owned()))
            .collect::<Vec<_>>(),
        vec![(24177, "sleep".to_string())]
    );
    assert_eq!(
        f.container.as_ref().and_then(|c| c.pod.as_deref()),
        Some("web-0")
    );
    // SIGTERM, handler, the init's exit, the kernel's SIGKILL, the child's exit.
    let events: Vec<_> = f.evidence.iter().map(|e| e.event.as_str()).collect();
    assert_eq!(
        events,
        vec!["generate", "deliver", "exit", "generate", "exit"]
    );
    assert!(f.evidence.windows(2).all(|w| w[0].time <= w[1].time));
    assert!(f.remedy.contains("exec"));
}

#[test]
fn not_forwarded_waits_for_the_teardown_to_settle() {
    let records = load(NOT_FORWARDED);
    let mut e = Engine::new();
    let mut early = Vec::new();
    for r in &records {
        early.extend(e.push(r));
    }
    assert!(early.is_empty(), "{:?}", kinds(&early));
    let last = records.last().map(Record::time).unwrap_or_default();
    // Live: a quiet trace concludes it once the settle time has passed.
    assert!(e.advance(last).is_empty());
    let settled = e.advance(later(last, 3 * SETTLE_NS));
    assert_eq!(kinds(&settled), vec![FindingKind::NotForwarded]);
    assert!(e.finish().is_empty(), "concluded once only");
}

#[test]
fn forwarding_init_is_not_blamed() {
    // The grace fixture's PID 1 passes SIGTERM on to its worker.
    let fs = explain_all(&load(GRACE));
    assert!(!kinds(&fs).contains(&FindingKind::NotForwarded));
}

#[test]
fn grace_exceeded_reports_the_gap_and_who_else_died() {
    let fs = explain_all(&load(GRACE));
    assert_eq!(kinds(&fs), vec![FindingKind::GraceExceeded]);
    let f = &fs[0];
    assert_eq!(f.process.pid, 24529);
    assert_eq!(f.term_result, Some(TermResult::Handled));
    assert_eq!(f.term_sender.as_ref().map(|s| s.pid), Some(24605));
    assert_eq!(f.kill_sender.as_ref().map(|s| s.pid), Some(24700));
    let grace = f.grace_ns.expect("grace");
    assert!((3_000_000_000..3_010_000_000).contains(&grace), "{grace}");
    assert!(f.shutdown_ns.expect("shutdown") >= grace);
    assert_eq!(f.exit_code, Some(137));
    assert_eq!(
        f.also_killed.iter().map(|p| p.pid).collect::<Vec<_>>(),
        vec![24580]
    );
    assert_eq!(
        f.container.as_ref().and_then(|c| c.namespace.as_deref()),
        Some("shop")
    );
    assert!(f.remedy.contains("terminationGracePeriodSeconds"));
    assert!(f.summary.contains("3.00"), "{}", f.summary);
}

#[test]
fn a_sigkill_long_after_a_handled_sigterm_is_no_grace_period() {
    let mut records = load(GRACE);
    let kill_at = records
        .iter()
        .position(|r| matches!(r, Record::Generate(g) if g.signo == SIGKILL))
        .expect("a SIGKILL");
    for r in &mut records[kill_at..] {
        let t = match r {
            Record::Generate(g) => &mut g.time,
            Record::Deliver(d) => &mut d.time,
            Record::Exit(x) => &mut x.time,
            _ => continue,
        };
        *t = later(*t, 2 * MAX_GRACE_NS);
    }
    let fs = explain_all(&records);
    assert!(!kinds(&fs).contains(&FindingKind::GraceExceeded));
    let f = fs
        .iter()
        .find(|f| f.process.pid == 24529)
        .expect("the death is still reported");
    assert_eq!(
        (f.kind, f.cause),
        (FindingKind::SignalDeath, Some(Cause::Process))
    );
    assert!(
        f.summary.contains("after the SIGTERM it outlived"),
        "{}",
        f.summary
    );
}

#[test]
fn oom_killed_names_victim_trigger_and_container() {
    let fs = explain_all(&load(OOM));
    assert_eq!(kinds(&fs), vec![FindingKind::OomKilled]);
    let f = &fs[0];
    assert_eq!(f.process.pid, 25828);
    assert_eq!(f.trigger.as_ref().map(|t| t.pid), Some(25828));
    assert_eq!(f.exit_code, Some(137));
    assert_eq!(f.code.as_deref(), Some("SI_KERNEL"));
    assert_eq!(f.cgroup_id, Some(10244));
    assert_eq!(
        f.container.as_ref().and_then(|c| c.name.as_deref()),
        Some("indexer")
    );
    let events: Vec<_> = f.evidence.iter().map(|e| e.event.as_str()).collect();
    assert_eq!(events, vec!["generate", "oom", "exit"]);
    assert!(f.summary.contains("OOM killer"));
}

#[test]
fn oom_is_concluded_at_the_exit() {
    let records = load(OOM);
    let mut e = Engine::new();
    let exit_at = records
        .iter()
        .position(|r| matches!(r, Record::Exit(_)))
        .expect("exit in fixture");
    for r in &records[..exit_at] {
        assert!(e.push(r).is_empty());
    }
    assert_eq!(
        kinds(&e.push(&records[exit_at])),
        vec![FindingKind::OomKilled]
    );
}

#[test]
fn signal_deaths_name_the_signal_and_its_origin() {
    let fs = explain_all(&load(DEATH));
    assert!(fs.iter().all(|f| f.kind == FindingKind::SignalDeath));
    let got: Vec<_> = fs
        .iter()
        .map(|f| {
            (
                f.process.pid,
                f.signal.clone().unwrap_or_default(),
                f.code.clone().unwrap_or_default(),
                f.cause,
                f.severity,
                f.exit_code,
            )
        })
        .collect();
    use Cause::*;
    use Severity::*;
    let want = vec![
        (
            26315,
            "SIGSEGV".into(),
            "SEGV_MAPERR".into(),
            Some(Fault),
            Error,
            Some(139),
        ),
        (
            26360,
            "SIGPIPE".into(),
            "SI_USER".into(),
            Some(BrokenPipe),
            Warning,
            Some(141),
        ),
        (
            26362,
            "SIGTERM".into(),
            "SI_USER".into(),
            Some(Process),
            Warning,
            Some(143),
        ),
        (
            26393,
            "SIGABRT".into(),
            "SI_TKILL".into(),
            Some(SelfRaised),
            Error,
            Some(134),
        ),
    ];
    assert_eq!(got, want);
    let term = &fs[2];
    assert_eq!(
        term.sender.as_ref().map(|s| s.comm.as_str().into_owned()),
        Some("kill".into())
    );
    assert!(term.summary.contains("no handler"), "{}", term.summary);
    assert!(fs[0].remedy.contains("SEGV_MAPERR"));
    assert!(fs[1].remedy.contains("SIGPIPE"));
}

#[test]
fn signal_death_falls_back_to_killed_by() {
    // Only the exit record: the join in enrich gives the sender.
    let records: Vec<_> = load(DEATH)
        .into_iter()
        .filter(|r| matches!(r, Record::Exit(x) if x.pid == 26362))
        .collect();
    let fs = explain_all(&records);
    let f = one(&fs, FindingKind::SignalDeath);
    assert_eq!(
        (f.cause, f.sender.as_ref().map(|s| s.pid)),
        (Some(Cause::Process), Some(26391))
    );
}

#[test]
fn coalesced_counts_merged_and_dropped_signals() {
    let fs = explain_all(&load(COALESCED));
    assert_eq!(
        kinds(&fs),
        vec![FindingKind::Coalesced, FindingKind::Coalesced]
    );
    let merged = fs
        .iter()
        .find(|f| f.result == Some(Outcome::AlreadyPending))
        .expect("merged");
    assert_eq!(
        (merged.signal.as_deref(), merged.count),
        (Some("SIGUSR1"), Some(4))
    );
    assert_eq!(merged.senders.len(), 4);
    let dropped = fs
        .iter()
        .find(|f| f.result == Some(Outcome::Overflow))
        .expect("dropped");
    assert_eq!(
        (dropped.signal.as_deref(), dropped.count),
        (Some("SIGRTMIN"), Some(4))
    );
    let span = dropped.span_ns.expect("span");
    assert!((7_000_000..8_000_000).contains(&span), "{span}");
    assert_eq!(dropped.evidence.len(), 4);
    assert!(fs.iter().all(|f| f.process.pid == 26970));
}

#[test]
fn sigchld_merges_are_not_findings() {
    // The SIGPIPE fixture has a SIGCHLD merged into a pending one.
    let fs = explain_all(&load(DEATH));
    assert!(!kinds(&fs).contains(&FindingKind::Coalesced));
}

#[test]
fn healthy_shutdown_blames_nobody() {
    let records = load(HEALTHY);
    let fs = explain_all(&records);
    assert!(fs.iter().all(|f| !f.kind.blames()), "{:?}", kinds(&fs));
    assert!(fs.is_empty(), "{:?}", kinds(&fs));
    // It still has a timeline: SIGTERM, handled, exit 0.
    let mut e = Engine::new();
    for r in &records {
        e.push(r);
    }
    let ts = e.timelines();
    assert_eq!(ts.len(), 1);
    let steps: Vec<_> = ts[0].steps.iter().map(|s| s.kind).collect();
    assert_eq!(
        steps,
        vec![StepKind::Signal, StepKind::Handled, StepKind::Exit]
    );
    assert!(ts[0].steps[2].text.contains("status 0"));
}

#[test]
fn timeline_tells_the_container_story_in_order() {
    let mut e = Engine::new();
    for r in load(GRACE) {
        e.push(&r);
    }
    let ts = e.timelines();
    assert_eq!(ts.len(), 1, "one container, one timeline");
    let t = &ts[0];
    assert_eq!(t.process.pid, 24529);
    let steps: Vec<_> = t.steps.iter().map(|s| (s.kind, s.pid)).collect();
    use StepKind::*;
    assert_eq!(
        steps,
        vec![
            (Signal, 24529),
            (Handled, 24529),
            (Forwarded, 24580),
            (Handled, 24580),
            (Signal, 24529),
            (Exit, 24529),
            (Signal, 24580),
            (Exit, 24580),
        ]
    );
    let kill = &t.steps[4];
    assert!(kill.text.starts_with("SIGKILL from kill"), "{}", kill.text);
    assert!((3_000_000_000..3_010_000_000).contains(&kill.offset_ns));
    let text = render_timeline(t);
    assert!(text.contains("status 137 (SIGKILL)"), "{text}");
    assert_eq!(text.lines().count(), 1 + t.steps.len());
    let json = serde_json::to_value(t).expect("serializes");
    assert_eq!(json["event"], "timeline");
}

#[test]
fn namespace_teardown_joins_the_init_timeline() {
    let mut e = Engine::new();
    let mut records = load(NOT_FORWARDED);
    // Without containers, the kernel's SIGKILL from the exiting init still ties them.
    for r in &mut records {
        match r {
            Record::Generate(g) => {
                g.target.container = None;
                g.target.cgroup_id = Some(1);
                g.sender.container = None;
                g.sender.cgroup_id = 1;
            }
            Record::Deliver(d) => {
                d.container = None;
                d.cgroup_id = Some(1);
            }
            Record::Exit(x) => {
                x.container = None;
                x.cgroup_id = Some(1);
            }
            _ => {}
        }
    }
    let mut fs = Vec::new();
    for r in &records {
        fs.extend(e.push(r));
    }
    let ts = e.timelines();
    assert_eq!(ts.len(), 1);
    assert!(ts[0]
        .steps
        .iter()
        .any(|s| s.pid == 24177 && s.kind == StepKind::Exit));
    fs.extend(e.finish());
    let f = one(&fs, FindingKind::NotForwarded);
    assert_eq!(f.children.len(), 1);
    assert_eq!(f.container, None);
}

#[test]
fn findings_round_trip_through_json() {
    for fixture in ALL {
        for f in explain_all(&load(fixture)) {
            let line = serde_json::to_string(&f).expect("serializes");
            assert!(!line.contains('\n'));
            let v: serde_json::Value = serde_json::from_str(&line).expect("json");
            assert_eq!(v["event"], "finding");
            assert_eq!(v["kind"], f.kind.as_str());
            assert!(v["process"]["pid"].is_u64());
            assert!(v.get("container").is_some(), "container is always present");
            let back: Finding = serde_json::from_str(&line).expect("deserializes");
            assert_eq!(back, f);
        }
    }
    // Another event is not a finding.
    let bad = r#"{"event":"timeline","time":"2026-11-26T13:36:49Z","kind":"coalesced"}"#;
    assert!(serde_json::from_str::<Finding>(bad).is_err());
}

#[test]
fn replay_and_live_feeding_agree() {
    for fixture in ALL {
        let records = load(fixture);
        let whole = explain_all(&records);
        // Records one at a time with quiet periods in between, as a live trace feeds them.
        let mut e = Engine::new();
        let mut live = Vec::new();
        for r in &records {
            live.extend(e.push(r));
            live.extend(e.advance(r.time()));
        }
        live.extend(e.finish());
        assert_eq!(live, whole);
        // And the NDJSON round trip of the records changes nothing.
        let text: String = records
            .iter()
            .map(|r| serde_json::to_string(r).expect("record") + "\n")
            .collect();
        assert_eq!(explain_all(&load(&text)), whole);
    }
}

#[test]
fn render_text_has_summary_evidence_and_remedy() {
    let fs = explain_all(&load(GRACE));
    let text = render_text(&fs[0]);
    let lines: Vec<_> = text.lines().collect();
    assert!(
        lines[0].starts_with("error grace_exceeded at "),
        "{}",
        lines[0]
    );
    assert!(lines[0].contains("container api of pod shop/api-7d9f8c6b5-x2k4q"));
    assert!(text.contains("grace period 3.00"));
    assert!(text.contains("  evidence:\n"));
    assert!(lines.last().is_some_and(|l| l.starts_with("  remedy: ")));
}

#[test]
fn lost_events_are_a_warning() {
    let r: Record = serde_json::from_str(
        r#"{"event":"lost","time":"2026-11-26T13:37:00Z","count":12,"events":{"generate":10,"deliver":0,"exit":2,"send_failed":0,"oom":0}}"#,
    )
    .expect("lost record");
    let fs = explain_all(&[r]);
    let f = one(&fs, FindingKind::EventsLost);
    assert_eq!((f.severity, f.count), (Severity::Warning, Some(12)));
    assert!(f.summary.contains("10 generate, 2 exit"), "{}", f.summary);
    assert!(!f.kind.blames());
}

#[test]
fn state_stays_bounded() {
    let mut e = Engine::new();
    let template = load(DEATH)
        .into_iter()
        .find_map(|r| match r {
            Record::Generate(g) if g.signo == SIGTERM => Some(g),
            _ => None,
        })
        .expect("a SIGTERM");
    let n = 2 * MAX_PROCS as u32;
    for i in 0..n {
        let mut g = template.clone();
        g.target.pid = Some(100_000 + i);
        g.target.tid = 100_000 + i;
        g.time = Time(template.time.0 + u64::from(i));
        e.push(&Record::Generate(g.clone()));
        // A quarter of them exit by the SIGTERM.
        if i % 4 == 0 {
            let x = Exit {
                time: g.time,
                host: Default::default(),
                boot_id: None,
                pid: 100_000 + i,
                comm: g.target.comm,
                ns_pid: None,
                cgroup_id: None,
                exit_code: 143,
                signal: Some(Cow::Borrowed("SIGTERM")),
                signo: Some(SIGTERM),
                core_dumped: false,
                status: 15,
                killed_by: None,
                container: None,
                unit: None,
            };
            assert_eq!(e.push(&Record::Exit(x)).len(), 1);
        }
    }
    assert!(e.procs.len() <= MAX_PROCS);
    assert!(e.dead.len() <= MAX_DEAD);
    assert!(e.timelines.len() <= MAX_TIMELINES);
    assert!(e.dues.len() <= 3 * MAX_DEAD);
    e.finish();
    assert!(e.dead.is_empty() && e.dues.is_empty());
}

/// The records of a fixture with the target's container and unit (on every record about the
/// target) and the sender's unit replaced.
fn placed(
    ndjson: &str,
    container: Option<Container>,
    unit: Option<&str>,
    sender_unit: Option<&str>,
) -> Vec<Record> {
    let unit = unit.map(Label::from);
    let mut records = load(ndjson);
    for r in &mut records {
        match r {
            Record::Generate(g) => {
                g.target.container.clone_from(&container);
                g.target.unit.clone_from(&unit);
                g.sender.unit = sender_unit.map(Label::from);
            }
            Record::Deliver(d) => {
                d.container.clone_from(&container);
                d.unit.clone_from(&unit);
            }
            Record::Exit(x) => {
                x.container.clone_from(&container);
                x.unit.clone_from(&unit);
            }
            _ => {}
        }
    }
    records
}

fn docker_web() -> Container {
    Container {
        id: "5e5e56284716d1377022e5040c601c82fe47ba6c05cb30340ae0c210a52ec9bb".into(),
        runtime: "docker".into(),
        name: Some("shop-web-1".into()),
        image: Some("busybox".into()),
        compose: Some(Compose {
            project: "shop".into(),
            service: "web".into(),
        }),
        ..Container::default()
    }
}

#[test]
fn a_docker_container_gets_dockers_knobs() {
    let fs = explain_all(&placed(INIT_IGNORED, Some(docker_web()), None, None));
    for f in &fs {
        assert_eq!(f.orchestrator, Some(Orchestrator::Docker), "{f:?}");
        assert!(
            f.summary
                .contains("Docker container shop-web-1 (Compose service web of project shop"),
            "{}",
            f.summary
        );
        assert!(f.remedy.contains("docker run --init"), "{}", f.remedy);
        assert!(f.remedy.contains("init: true"), "{}", f.remedy);
        assert!(f.remedy.contains("STOPSIGNAL"), "{}", f.remedy);
        assert!(
            !f.remedy.contains("terminationGracePeriodSeconds"),
            "{}",
            f.remedy
        );
        assert!(!f.remedy.contains("TimeoutStopSec"), "{}", f.remedy);
    }
    // a handled SIGTERM that ran out of time: the stop timeout's knobs
    let fs = explain_all(&placed(GRACE, Some(docker_web()), None, None));
    let g = one(&fs, FindingKind::GraceExceeded);
    assert!(g.remedy.contains("--stop-timeout"), "{}", g.remedy);
    assert!(g.remedy.contains("stop_grace_period"), "{}", g.remedy);
    assert!(g.remedy.contains("10 s by default"), "{}", g.remedy);
    // podman: the same knobs under its own name
    let podman = Container {
        runtime: "podman".into(),
        compose: None,
        ..docker_web()
    };
    let fs = explain_all(&placed(INIT_IGNORED, Some(podman), None, None));
    let f = one(&fs, FindingKind::InitIgnored);
    assert_eq!(f.orchestrator, Some(Orchestrator::Podman));
    assert!(f.remedy.contains("podman run --init"), "{}", f.remedy);
}

#[test]
fn a_pod_gets_kubernetes_knobs_and_its_configured_grace() {
    let pod = Container {
        id: "3ab1c5843010d1377022e5040c601c82fe47ba6c05cb30340ae0c210a52ec9bb".into(),
        runtime: "containerd".into(),
        name: Some("app".into()),
        pod: Some("web-0".into()),
        namespace: Some("shop".into()),
        grace_period_s: Some(2),
        ..Container::default()
    };
    let fs = explain_all(&placed(INIT_IGNORED, Some(pod.clone()), None, None));
    let g = one(&fs, FindingKind::GraceExceeded);
    assert_eq!(g.orchestrator, Some(Orchestrator::Kubernetes));
    assert!(
        g.summary
            .ends_with("(SIGKILL 2.0 s after SIGTERM; the pod allows 2 s)"),
        "{}",
        g.summary
    );
    assert!(
        g.summary.contains("container app of pod shop/web-0"),
        "{}",
        g.summary
    );
    let i = one(&fs, FindingKind::InitIgnored);
    for text in [&g.remedy, &i.remedy] {
        assert!(text.contains("terminationGracePeriodSeconds"), "{text}");
        assert!(text.contains("preStop"), "{text}");
        assert!(text.contains("tini"), "{text}");
        assert!(!text.contains("docker run"), "{text}");
    }
    // handled but too slow: measured next to configured
    let fs = explain_all(&placed(GRACE, Some(pod), None, None));
    let g = one(&fs, FindingKind::GraceExceeded);
    assert!(g.remedy.contains("the pod allows 2 s"), "{}", g.remedy);
    // a kubepods cgroup whose runtime did not answer is still Kubernetes
    let bare = Container {
        id: "3ab1c5843010".into(),
        runtime: "kubernetes".into(),
        ..Container::default()
    };
    let fs = explain_all(&placed(INIT_IGNORED, Some(bare), None, None));
    assert!(fs
        .iter()
        .all(|f| f.orchestrator == Some(Orchestrator::Kubernetes)));
}

#[test]
fn a_unit_stopped_by_systemd_gets_systemd_knobs() {
    let fs = explain_all(&placed(
        INIT_IGNORED,
        None,
        Some("stubborn.service"),
        Some("init.scope"),
    ));
    let g = one(&fs, FindingKind::GraceExceeded);
    assert_eq!(g.orchestrator, Some(Orchestrator::Systemd));
    assert_eq!(g.unit.as_deref(), Some("stubborn.service"));
    assert_eq!(g.container, None);
    assert!(
        g.summary.contains("in unit stubborn.service"),
        "{}",
        g.summary
    );
    for knob in [
        "TimeoutStopSec=",
        "KillMode=mixed",
        "KillSignal=",
        "ExecStop=",
    ] {
        assert!(g.remedy.contains(knob), "{knob}: {}", g.remedy);
    }
    assert!(g.remedy.contains("stubborn.service"), "{}", g.remedy);
    // a user manager counts as well
    let fs = explain_all(&placed(
        GRACE,
        None,
        Some("app.service"),
        Some("user@1000.service"),
    ));
    assert_eq!(
        one(&fs, FindingKind::GraceExceeded).orchestrator,
        Some(Orchestrator::Systemd)
    );
    // the same process in a unit, signalled from a login session: nobody's stop policy
    let fs = explain_all(&placed(
        INIT_IGNORED,
        None,
        Some("stubborn.service"),
        Some("session-3.scope"),
    ));
    let g = one(&fs, FindingKind::GraceExceeded);
    assert_eq!(g.orchestrator, None);
    assert_eq!(g.unit.as_deref(), Some("stubborn.service"));
    assert!(!g.remedy.contains("KillMode"), "{}", g.remedy);
    // and without any workload: null
    let fs = explain_all(&load(INIT_IGNORED));
    assert!(fs
        .iter()
        .all(|f| f.orchestrator.is_none() && f.unit.is_none()));
    let json = serde_json::to_value(&fs[0]).expect("json");
    assert!(json["orchestrator"].is_null(), "always present: {json}");
}

/// The records with sender `pid`'s program, arguments and ancestry (pid, comm, exe; nearest
/// first) set, as recordings carry them now.
fn sent_by(
    mut records: Vec<Record>,
    pid: u32,
    exe: &str,
    args: &[&str],
    ancestors: &[(u32, &str, &str)],
) -> Vec<Record> {
    for r in &mut records {
        if let Record::Generate(g) = r {
            if g.sender.pid == pid {
                g.sender.exe = Some(exe.into());
                g.sender.args = Some(args.iter().map(|&a| a.into()).collect());
                g.sender.ancestors = ancestors
                    .iter()
                    .map(|&(pid, comm, exe)| Ancestor {
                        pid,
                        comm: Some(Comm::new(comm)),
                        exe: Some(exe.into()),
                    })
                    .collect();
            }
        }
    }
    records
}

const HOST_SYSTEMD: (u32, &str, &str) = (1, "systemd", "/usr/lib/systemd/systemd");

/// A user's `kill` from a login shell: bash under sshd.
fn by_a_users_shell(records: Vec<Record>, pid: u32) -> Vec<Record> {
    sent_by(
        records,
        pid,
        "/usr/bin/bash",
        &["-bash"],
        &[
            (900, "sshd", "/usr/sbin/sshd"),
            (800, "sshd", "/usr/sbin/sshd"),
            HOST_SYSTEMD,
        ],
    )
}

/// `runc kill` as a containerd shim runs it for namespace `ns` (Docker's `moby`, the CRI
/// plugin's `k8s.io`).
fn by_runc_under_a_shim(records: Vec<Record>, pid: u32, ns: &str) -> Vec<Record> {
    let root = format!("/run/containerd/runc/{ns}");
    let log = format!("/run/containerd/io.containerd.runtime.v2.task/{ns}/0123abcd/log.json");
    sent_by(
        records,
        pid,
        "/usr/sbin/runc",
        &[
            "runc", "--root", &root, "--log", &log, "kill", "0123abcd", "15",
        ],
        &[
            (700, "containerd-shim", "/usr/bin/containerd-shim-runc-v2"),
            HOST_SYSTEMD,
        ],
    )
}

#[test]
fn a_users_kill_of_a_docker_container_names_no_orchestrator() {
    // TERM, then KILL, from bash under sshd: nobody's stop policy, so no Docker knobs.
    let records = by_a_users_shell(placed(INIT_IGNORED, Some(docker_web()), None, None), 22067);
    let fs = explain_all(&records);
    assert_eq!(fs.len(), 2, "{:?}", kinds(&fs));
    for f in &fs {
        assert_eq!(f.orchestrator, None, "{f:?}");
        assert_eq!(
            f.container,
            Some(docker_web()),
            "the workload is still named"
        );
        assert!(!f.remedy.contains("`docker stop`"), "{}", f.remedy);
        assert!(!f.remedy.contains("init: true"), "{}", f.remedy);
        assert!(!f.evidence[0].text.contains(" stop: "), "{:?}", f.evidence);
    }
    let i = one(&fs, FindingKind::InitIgnored);
    assert!(
        i.remedy.starts_with("Make PID 1 react to SIGTERM"),
        "{}",
        i.remedy
    );
    let g = one(&fs, FindingKind::GraceExceeded);
    assert!(
        g.remedy.starts_with("The SIGTERM was dropped before"),
        "{}",
        g.remedy
    );
    // The same stop by runc under a shim of Docker's namespace: Docker's.
    let records = by_runc_under_a_shim(
        placed(INIT_IGNORED, Some(docker_web()), None, None),
        22067,
        "moby",
    );
    let fs = explain_all(&records);
    assert_eq!(fs.len(), 2, "{:?}", kinds(&fs));
    for f in &fs {
        assert_eq!(f.orchestrator, Some(Orchestrator::Docker), "{f:?}");
        assert!(f.remedy.contains("`docker stop`"), "{}", f.remedy);
        assert!(
            f.evidence[0]
                .text
                .ends_with("; a docker stop: runc under containerd-shim-runc-v2 (namespace moby)"),
            "{}",
            f.evidence[0].text
        );
    }
}

#[test]
fn a_runtimes_chain_names_a_plain_containerd_target() {
    // The workload lookup had no names: the cgroup said containerd and no more.
    let bare = Container {
        id: "0123abcd".into(),
        runtime: "containerd".into(),
        ..Container::default()
    };
    let fs = explain_all(&placed(INIT_IGNORED, Some(bare.clone()), None, None));
    assert!(fs
        .iter()
        .all(|f| f.orchestrator == Some(Orchestrator::Containerd)));
    for (ns, want) in [
        ("moby", Orchestrator::Docker),
        ("k8s.io", Orchestrator::Kubernetes),
        ("default", Orchestrator::Containerd),
    ] {
        let records = by_runc_under_a_shim(
            placed(INIT_IGNORED, Some(bare.clone()), None, None),
            22067,
            ns,
        );
        let fs = explain_all(&records);
        assert_eq!(fs.len(), 2, "{:?}", kinds(&fs));
        assert!(
            fs.iter().all(|f| f.orchestrator == Some(want)),
            "{ns}: {fs:?}"
        );
    }
    // runc under podman.
    let records = sent_by(
        placed(INIT_IGNORED, Some(bare), None, None),
        22067,
        "/usr/bin/runc",
        &["/usr/bin/runc", "kill", "0123abcd", "15"],
        &[
            (600, "podman", "/usr/bin/podman"),
            (500, "bash", "/usr/bin/bash"),
        ],
    );
    let fs = explain_all(&records);
    assert!(fs
        .iter()
        .all(|f| f.orchestrator == Some(Orchestrator::Podman)));
    assert!(
        fs[0].remedy.contains("podman run --init"),
        "{}",
        fs[0].remedy
    );
}

#[test]
fn a_recording_without_programs_keeps_the_workloads_answer() {
    // No exe: the sender's comm alone ("bash") decides nothing.
    for (container, want) in [
        (docker_web(), Orchestrator::Docker),
        (
            Container {
                runtime: "containerd".into(),
                pod: Some("web-0".into()),
                ..docker_web()
            },
            Orchestrator::Kubernetes,
        ),
    ] {
        let fs = explain_all(&placed(INIT_IGNORED, Some(container), None, None));
        assert_eq!(fs.len(), 2, "{:?}", kinds(&fs));
        assert!(fs.iter().all(|f| f.orchestrator == Some(want)), "{fs:?}");
    }
}

#[test]
fn the_kernels_and_the_containers_own_signals_accuse_nobody() {
    // The OOM killer's SIGKILL runs in whatever task was allocating: a shell's, here.
    let mut records = load(OOM);
    for r in &mut records {
        if let Record::Generate(g) = r {
            if g.signal == "SIGKILL" {
                g.sender.pid = 4242;
            }
        }
    }
    let fs = explain_all(&by_a_users_shell(records, 4242));
    let f = one(&fs, FindingKind::OomKilled);
    assert_eq!(f.orchestrator, Some(Orchestrator::Kubernetes), "{f:?}");
    // An init passing the runtime's SIGTERM on (tini, docker-init) is the container's own.
    let records = by_runc_under_a_shim(load(FORWARDED), 30990, "k8s.io");
    let records = sent_by(
        records,
        31000,
        "/sbin/tini",
        &["/sbin/tini", "--", "sleep", "1000"],
        &[(700, "containerd-shim", "/usr/bin/containerd-shim-runc-v2")],
    );
    let fs = explain_all(&records);
    let f = one(&fs, FindingKind::SignalDeath);
    assert_eq!(f.severity, Severity::Info, "{f:?}");
    assert_eq!(f.orchestrator, Some(Orchestrator::Kubernetes), "{f:?}");
}

#[test]
fn a_unit_stopped_by_a_systemd_program_is_systemds() {
    // No sender unit (an older recording's), but the sender is systemd, PID 1 of an nspawn
    // container.
    let records = sent_by(
        placed(GRACE, None, Some("app.service"), None),
        24605,
        "/usr/lib/systemd/systemd",
        &["/usr/lib/systemd/systemd"],
        &[
            (70, "systemd-nspawn", "/usr/bin/systemd-nspawn"),
            HOST_SYSTEMD,
        ],
    );
    let records = sent_by(
        records,
        24700,
        "/usr/lib/systemd/systemd",
        &["/usr/lib/systemd/systemd"],
        &[
            (70, "systemd-nspawn", "/usr/bin/systemd-nspawn"),
            HOST_SYSTEMD,
        ],
    );
    let fs = explain_all(&records);
    let g = one(&fs, FindingKind::GraceExceeded);
    assert_eq!(g.orchestrator, Some(Orchestrator::Systemd));
    assert!(g.remedy.contains("TimeoutStopSec="), "{}", g.remedy);
    // A shell calling itself systemd is not.
    let mut records = by_a_users_shell(placed(GRACE, None, Some("app.service"), None), 24605);
    records = by_a_users_shell(records, 24700);
    for r in &mut records {
        if let Record::Generate(g) = r {
            g.sender.comm = Comm::new("systemd");
        }
    }
    let fs = explain_all(&records);
    assert_eq!(one(&fs, FindingKind::GraceExceeded).orchestrator, None);
}

/// Every fixture with every comm, container name, pod, namespace and code replaced by a name
/// that clears the screen, sets the title and fakes a line: the same findings, and their text
/// and timelines hold no control byte and no line of the name's making.
#[test]
fn hostile_names_reach_no_terminal_raw() {
    use crate::escape::{has_terminal_controls, HOSTILE};
    let hostile = serde_json::to_string(HOSTILE).unwrap();
    let mut seen = 0;
    for fixture in ALL {
        let mut evil = fixture.to_owned();
        for field in ["comm", "name", "pod", "namespace", "code", "handler"] {
            let mut out = String::new();
            let mut rest = evil.as_str();
            let key = format!("\"{field}\":\"");
            while let Some(i) = rest.find(&key) {
                let after = &rest[i + key.len()..];
                let end = after.find('"').unwrap();
                out.push_str(&rest[..i]);
                out.push_str(&format!("\"{field}\":{hostile}"));
                rest = &after[end + 1..];
            }
            out.push_str(rest);
            evil = out;
        }
        assert!(
            evil.contains("\\u001b[2J") || evil.contains("\\u001b"),
            "replaced"
        );
        let (plain, records) = (load(fixture), load(&evil));
        let fs = explain_all(&records);
        assert_eq!(kinds(&fs), kinds(&explain_all(&plain)));
        let mut e = Engine::new();
        for r in &records {
            e.push(r);
        }
        e.finish();
        let mut text = String::new();
        for f in &fs {
            text.push_str(&render_text(f));
        }
        for t in e.timelines() {
            text.push_str(&render_timeline(&t));
        }
        seen += text.matches("\\x1b[2J").count();
        assert!(!has_terminal_controls(text.as_bytes(), true), "{text:?}");
        assert!(!text.lines().any(|l| l.starts_with("FAKE")), "{text}");
        // Escaped once: the JSON fields keep the name raw, the text shows it escaped once.
        assert!(!text.contains("\\\\x1b"), "escaped twice: {text}");
    }
    assert!(
        seen > 20,
        "the hostile name shows, escaped, in findings and timelines: {seen}"
    );
}

const FORWARDED: &str = include_str!("../../tests/fixtures/explain/forwarded_stop.ndjson");

#[test]
fn a_sigterm_forwarded_by_init_in_an_orderly_stop_is_info() {
    let records = load(FORWARDED);
    let fs = explain_all(&records);
    let f = one(&fs, FindingKind::SignalDeath);
    assert_eq!(f.severity, Severity::Info, "{}", render_text(f));
    assert_eq!(f.process.pid, 31001);
    assert_eq!(f.sender.as_ref().map(|s| s.pid), Some(31000));
    assert!(f.summary.contains("orderly stop"), "{}", f.summary);
    assert!(
        f.summary.contains("containerd-shim (pid 30990)"),
        "{}",
        f.summary
    );
    assert!(fs.iter().all(|f| f.severity == Severity::Info), "{fs:?}");

    // Without the init's exit (it is still running when the death settles): a warning.
    let fs = explain_all(&records[..3]);
    assert_eq!(
        one(&fs, FindingKind::SignalDeath).severity,
        Severity::Warning
    );
    // Without the SIGTERM from outside, the init sent it on its own: a warning.
    let fs = explain_all(&records[1..]);
    assert_eq!(
        one(&fs, FindingKind::SignalDeath).severity,
        Severity::Warning
    );
}

fn on_host(records: &[Record], host: &str, shift_ns: u64) -> Vec<Record> {
    let node = Node {
        host: Label::new(host),
        boot_id: Some(Label::new("boot")),
    };
    records
        .iter()
        .cloned()
        .map(|mut r| {
            r.set_node(&node);
            match &mut r {
                Record::Generate(g) => g.time.0 += shift_ns,
                Record::Deliver(d) => d.time.0 += shift_ns,
                Record::Exit(x) => x.time.0 += shift_ns,
                Record::Oom(o) => o.time.0 += shift_ns,
                Record::Lost(l) => l.time.0 += shift_ns,
                Record::SendFailed(s) => s.time.0 += shift_ns,
            }
            r
        })
        .collect()
}

#[test]
fn two_nodes_with_the_same_pids_keep_their_own_findings() {
    for fixture in ALL {
        let records = load(fixture);
        let single = explain_all(&on_host(&records, "node-a", 0));
        // node-b replays the same story (same pids) 1 ms later, interleaved with node-a's.
        let mut both = on_host(&records, "node-a", 0);
        both.extend(on_host(&records, "node-b", 1_000_000));
        both.sort_by_key(|r| r.time());
        let merged = explain_all(&both);
        for host in ["node-a", "node-b"] {
            let mine: Vec<_> = merged
                .iter()
                .filter(|f| f.host.as_str() == host)
                .map(|f| (f.kind, f.process.pid, f.summary.clone(), f.children.clone()))
                .collect();
            let want: Vec<_> = single
                .iter()
                .map(|f| (f.kind, f.process.pid, f.summary.clone(), f.children.clone()))
                .collect();
            assert_eq!(mine, want, "{host}");
        }
        assert_eq!(merged.len(), 2 * single.len());
        let mut e = Engine::new();
        for r in &both {
            e.push(r);
        }
        e.finish();
        let ts = e.timelines();
        assert_eq!(
            ts.iter().filter(|t| t.host.as_str() == "node-a").count(),
            ts.iter().filter(|t| t.host.as_str() == "node-b").count(),
        );
    }
}

#[test]
fn made_up_host_names_do_not_grow_the_node_table_without_bound() {
    let mut e = Engine::new();
    let long = "h".repeat(1000);
    let a = e.node_id(&Label::new(&long), &None);
    let b = e.node_id(&Label::new(&format!("{long}x")), &None);
    assert_eq!(a, b, "implausible names share one number");
    assert!(e.node_list.is_empty());
    for i in 0..MAX_NODES + 10 {
        e.node_id(&Label::new(&format!("n{i}")), &None);
    }
    assert_eq!(e.node_list.len(), MAX_NODES);
    assert_eq!(e.nodes.len(), MAX_NODES);
    assert_eq!(e.node_id(&Label::new("n0"), &None), 0);
}

#[test]
fn text_names_the_node_when_records_do() {
    let fs = explain_all(&on_host(&load(GRACE), "node-a", 0));
    let f = one(&fs, FindingKind::GraceExceeded);
    let first = render_text(f).lines().next().unwrap().to_string();
    assert!(first.ends_with(" on node-a"), "{first}");
    let mut f = f.clone();
    f.host = Label::new("n\u{1b}[2J");
    assert!(!render_text(&f).contains('\u{1b}'));
    f.host = Label::default();
    assert!(!render_text(&f).contains(" on "));
}
