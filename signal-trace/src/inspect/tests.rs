use super::*;

/// Real status texts captured on Linux 6.18 (see tests/fixtures/inspect).
macro_rules! fixture {
    ($name:literal) => {
        include_str!(concat!("../../tests/fixtures/inspect/", $name, ".status"))
    };
}

/// `cat /proc/self/status`.
const SELF: &str = fixture!("self");
/// python3 with `signal.signal(SIGTERM, handler)`.
const PY_TERM: &str = fixture!("python_term_handler");
/// python3 with its default SIGINT handler and nothing for SIGTERM.
const PY_INT: &str = fixture!("python_int_only");
/// `unshare --pid --fork sleep 60`: the sleep is the init of the new namespace.
const SLEEP_INIT: &str = fixture!("unshare_sleep_init");
/// `unshare --pid --fork sh -c 'sleep 60 & sleep 61'`: dash as init, two children.
const SHELL_INIT: &str = fixture!("shell_init");
/// One of SHELL_INIT's children.
const SHELL_CHILD: &str = fixture!("shell_init_child");
/// As SHELL_INIT with `trap "exit 0" TERM`.
const SHELL_INIT_TRAP: &str = fixture!("shell_init_trap");
/// `sh` as PID 1, read through the /proc mounted in its own namespace.
const CONTAINER_VIEW_INIT: &str = fixture!("container_view_init");
/// sleep exec'd with SIGTERM set to SIG_IGN.
const TERM_IGNORED: &str = fixture!("term_ignored");
/// python3 with a SIGTERM handler, stopped with SIGSTOP, then sent SIGTERM.
const STOPPED: &str = fixture!("stopped_term_pending");
/// python3 as a namespace init that forked two children and never waited for them.
const ZOMBIE_INIT: &str = fixture!("zombie_init");
const ZOMBIE_CHILD_1: &str = fixture!("zombie_child_18686");
const ZOMBIE_CHILD_2: &str = fixture!("zombie_child_18687");
/// python3 that blocked SIGTERM, started a thread that also blocks SIGUSR1, sent that
/// thread SIGUSR1 and itself SIGTERM. Main thread (also its task/18227/status) and thread.
const BLOCKED_MAIN: &str = fixture!("blocked_main");
const BLOCKED_THREAD: &str = fixture!("blocked_thread");
/// python3 that blocked SIGTERM and started a thread that unblocks it.
const UNBLOCK_MAIN: &str = fixture!("unblock_main");
const UNBLOCK_THREAD: &str = fixture!("unblock_thread");

const ID1: &str = "0123456789abcdef0123456789abcdef0123456789abcdef0123456789abcdef";
const ID2: &str = "fedcba9876543210fedcba9876543210fedcba9876543210fedcba9876543210";
const POD_UID: &str = "5a0a4d5e-0b3c-4f8e-9c1a-6f2d3b4c5d6e";

const TERM_BIT: u64 = 1 << (SIGTERM - 1);

fn st(text: &str) -> ProcStatus {
    ProcStatus::parse(text).expect("fixture parses")
}

fn snap(status: &str, threads: &[&str], children: &[&str]) -> Snapshot {
    Snapshot {
        status: st(status),
        cmdline: Vec::new(),
        threads: threads.iter().map(|t| st(t)).collect(),
        children: children.iter().map(|c| st(c)).collect(),
        ..Snapshot::default()
    }
}

fn flags(s: &Snapshot) -> Vec<RiskFlag> {
    risk_flags(s).into_iter().map(|f| f.flag).collect()
}

fn k8s_cgroup(uid_esc: &str, id: &str) -> String {
    format!(
        "0::/kubepods.slice/kubepods-besteffort.slice/kubepods-besteffort-pod{uid_esc}.slice/cri-containerd-{id}.scope\n"
    )
}

#[test]
fn parses_plain_status() {
    let s = st(SELF);
    assert_eq!(
        s,
        ProcStatus {
            name: "cat".into(),
            state: "R (running)".into(),
            tgid: 17362,
            pid: 17362,
            ppid: 17359,
            nspid: vec![17362],
            sigq: Some(SigQ {
                queued: 0,
                limit: 96365
            }),
            sig_pnd: 0,
            shd_pnd: 0,
            sig_blk: 0,
            sig_ign: 0,
            sig_cgt: 0,
            uid: 0,
            euid: 0,
        }
    );
    assert_eq!(s.init_kind(), None);
    assert_eq!(s.ns_pid(), 17362);
    assert_eq!(s.disposition(SIGTERM), Disposition::Default);
}

#[test]
fn parses_masks_and_dispositions() {
    let py = st(PY_TERM);
    assert_eq!(py.sig_cgt, TERM_BIT);
    assert_eq!(names::mask_names(py.sig_cgt), vec!["SIGTERM"]);
    assert_eq!(py.disposition(SIGTERM), Disposition::Handler);
    assert_eq!(
        names::mask_names(py.sig_ign),
        vec!["SIGINT", "SIGQUIT", "SIGPIPE", "SIGXFSZ"]
    );
    assert_eq!(py.disposition(SIGINT), Disposition::Ignore);

    let ign = st(TERM_IGNORED);
    assert_eq!(ign.disposition(SIGTERM), Disposition::Ignore);

    let b = st(BLOCKED_THREAD);
    assert_eq!(b.pid, 18275);
    assert_eq!(b.tgid, 18227);
    assert_eq!(names::mask_names(b.sig_blk), vec!["SIGUSR1", "SIGTERM"]);
    assert_eq!(names::mask_names(b.sig_pnd), vec!["SIGUSR1"]);
    assert_eq!(names::mask_names(b.shd_pnd), vec!["SIGTERM"]);
    assert!(b.blocks(SIGTERM));
    assert_eq!(
        b.sigq,
        Some(SigQ {
            queued: 3,
            limit: 96365
        })
    );

    let stopped = st(STOPPED);
    assert_eq!(stopped.state_code(), Some('T'));
    assert_eq!(stopped.shd_pnd, TERM_BIT);
}

#[test]
fn recognises_inits() {
    let ns = st(SLEEP_INIT);
    assert_eq!(ns.nspid, vec![17905, 1]);
    assert_eq!(ns.ns_pid(), 1);
    assert_eq!(ns.init_kind(), Some(InitKind::Namespace));

    let view = st(CONTAINER_VIEW_INIT);
    assert_eq!((view.pid, view.nspid.clone()), (1, vec![1]));
    assert_eq!(view.init_kind(), Some(InitKind::Host));

    // a namespace's second process is not an init
    let child = st(SHELL_CHILD);
    assert_eq!(child.nspid, vec![17937, 2]);
    assert_eq!(child.init_kind(), None);

    // nested namespaces: only the innermost pid counts
    let nested = SLEEP_INIT.replace("NSpid:\t17905\t1", "NSpid:\t17905\t1\t7");
    assert_eq!(st(&nested).init_kind(), None);
    let nested_init = SLEEP_INIT.replace("NSpid:\t17905\t1", "NSpid:\t17905\t7\t1");
    assert_eq!(st(&nested_init).init_kind(), Some(InitKind::Namespace));
}

#[test]
fn parser_keeps_names_with_colons_and_spaces() {
    let kworker = SELF.replace("Name:\tcat", "Name:\tkworker/u8:2-events");
    assert_eq!(st(&kworker).name, "kworker/u8:2-events");
    let spaced = SELF.replace("Name:\tcat", "Name:\t my app ");
    assert_eq!(st(&spaced).name, " my app ");
}

#[test]
fn parser_tolerates_old_kernels_and_unknown_fields() {
    let old: String = SELF
        .lines()
        .filter(|l| !l.starts_with("NSpid") && !l.starts_with("SigQ"))
        .map(|l| format!("{l}\n"))
        .collect();
    let s = st(&old);
    assert_eq!(s.nspid, vec![17362]);
    assert_eq!(s.sigq, None);
    let extra = format!("{SELF}Future_field:\tx:y:z\nno colon here\n");
    assert_eq!(st(&extra), st(SELF));
}

#[test]
fn parser_rejects_missing_and_malformed_fields() {
    let without = |field: &str| -> String {
        SELF.lines()
            .filter(|l| !l.starts_with(&format!("{field}:")))
            .map(|l| format!("{l}\n"))
            .collect()
    };
    for field in [
        "Name", "Pid", "Tgid", "PPid", "Uid", "SigPnd", "ShdPnd", "SigBlk", "SigIgn", "SigCgt",
    ] {
        let err = ProcStatus::parse(&without(field)).expect_err(field);
        assert_eq!(err.to_string(), format!("missing field {field}"));
    }
    let cases = [
        (
            "SigCgt:\t0000000000000000",
            "SigCgt:\t00000000000000zz",
            "SigCgt",
        ),
        (
            "SigCgt:\t0000000000000000",
            "SigCgt:\t00000000000000000",
            "SigCgt",
        ),
        ("SigBlk:\t0000000000000000", "SigBlk:\t", "SigBlk"),
        ("Pid:\t17362", "Pid:\t-1", "Pid"),
        ("NSpid:\t17362", "NSpid:\t17362 x", "NSpid"),
        ("NSpid:\t17362", "NSpid:\t", "NSpid"),
        ("SigQ:\t0/96365", "SigQ:\t0", "SigQ"),
        ("Uid:\t0\t0\t0\t0", "Uid:\t0", "Uid"),
    ];
    for (from, to, field) in cases {
        let text = SELF.replace(from, to);
        assert_ne!(text, SELF, "{from}");
        match ProcStatus::parse(&text) {
            Err(StatusError::Invalid { field: f, .. }) => assert_eq!(f, field, "{to}"),
            other => panic!("{to:?}: {other:?}"),
        }
    }
    assert_eq!(
        ProcStatus::parse("").unwrap_err(),
        StatusError::Missing("Pid")
    );
}

#[test]
fn init_without_term_handler() {
    let positive = [
        snap(SLEEP_INIT, &[], &[]),
        snap(CONTAINER_VIEW_INIT, &[], &[]),
        snap(SHELL_INIT, &[], &[SHELL_CHILD]),
    ];
    for s in &positive {
        assert!(
            flags(s).contains(&RiskFlag::InitWithoutTermHandler),
            "{}",
            s.status.name
        );
    }
    let negative = [
        // not an init
        snap(SELF, &[], &[]),
        // an init that traps SIGTERM
        snap(SHELL_INIT_TRAP, &[], &[SHELL_CHILD]),
        // an init with a handler
        snap(
            &PY_TERM.replace("NSpid:\t17539", "NSpid:\t17539\t1"),
            &[],
            &[],
        ),
    ];
    for s in &negative {
        assert!(
            !flags(s).contains(&RiskFlag::InitWithoutTermHandler),
            "{}",
            s.status.name
        );
    }
    // an init that ignores SIGTERM gets term_ignored instead
    let ign = snap(
        &TERM_IGNORED.replace("NSpid:\t19401", "NSpid:\t19401\t1"),
        &[],
        &[],
    );
    assert_eq!(flags(&ign), vec![RiskFlag::TermIgnored]);
}

#[test]
fn shell_init_with_children() {
    let s = snap(SHELL_INIT, &[SHELL_INIT], &[SHELL_CHILD, SHELL_CHILD]);
    assert_eq!(
        flags(&s),
        vec![
            RiskFlag::InitWithoutTermHandler,
            RiskFlag::ShellInitWithChildren
        ]
    );
    let finding = &risk_flags(&s)[1];
    assert!(
        finding.explanation.contains("shell sh"),
        "{}",
        finding.explanation
    );
    assert!(finding.remedy.contains("exec"), "{}", finding.remedy);

    // the same shell with a trap, without children, or not an init
    for s in [
        snap(SHELL_INIT_TRAP, &[], &[SHELL_CHILD]),
        snap(SHELL_INIT, &[], &[]),
        snap(
            &SHELL_INIT.replace("NSpid:\t17936\t1", "NSpid:\t17936\t4"),
            &[],
            &[SHELL_CHILD],
        ),
        snap(SLEEP_INIT, &[], &[SHELL_CHILD]),
    ] {
        assert!(!flags(&s).contains(&RiskFlag::ShellInitWithChildren));
    }
    // busybox counts when it runs sh
    let mut busybox = snap(
        &SHELL_INIT.replace("Name:\tsh", "Name:\tbusybox"),
        &[],
        &[SHELL_CHILD],
    );
    busybox.cmdline = vec!["/bin/busybox".into(), "sh".into(), "-c".into(), "x".into()];
    assert!(flags(&busybox).contains(&RiskFlag::ShellInitWithChildren));
    busybox.cmdline = vec!["/bin/busybox".into(), "init".into()];
    assert!(!flags(&busybox).contains(&RiskFlag::ShellInitWithChildren));
}

#[test]
fn term_blocked_in_every_thread() {
    let blocked = snap(BLOCKED_MAIN, &[BLOCKED_MAIN, BLOCKED_THREAD], &[]);
    assert_eq!(
        flags(&blocked),
        vec![RiskFlag::TermBlocked, RiskFlag::SignalsPending]
    );
    // no thread could be read: the main thread decides
    let main_only = snap(BLOCKED_MAIN, &[], &[]);
    assert!(flags(&main_only).contains(&RiskFlag::TermBlocked));
    // a thread that unblocks SIGTERM takes it
    let unblocked = snap(UNBLOCK_MAIN, &[UNBLOCK_MAIN, UNBLOCK_THREAD], &[]);
    assert_eq!(flags(&unblocked), vec![]);
    assert!(!analyze(&unblocked).term_blocked_everywhere);
    // a zombie thread does not count as unblocking
    let zombie_thread = UNBLOCK_THREAD.replace("State:\tS (sleeping)", "State:\tZ (zombie)");
    let s = snap(UNBLOCK_MAIN, &[UNBLOCK_MAIN, &zombie_thread], &[]);
    assert!(flags(&s).contains(&RiskFlag::TermBlocked));
    assert!(!flags(&snap(SELF, &[SELF], &[])).contains(&RiskFlag::TermBlocked));
}

#[test]
fn term_ignored() {
    assert_eq!(
        flags(&snap(TERM_IGNORED, &[], &[])),
        vec![RiskFlag::TermIgnored]
    );
    assert!(!flags(&snap(PY_TERM, &[], &[])).contains(&RiskFlag::TermIgnored));
}

#[test]
fn signals_pending() {
    let blocked = risk_flags(&snap(BLOCKED_MAIN, &[BLOCKED_MAIN, BLOCKED_THREAD], &[]));
    let pending = blocked
        .iter()
        .find(|f| f.flag == RiskFlag::SignalsPending)
        .expect("pending flag");
    assert_eq!(
        pending.explanation,
        "signals pending: process-wide SIGTERM; thread-directed SIGUSR1; \
         blocked in every thread: SIGTERM"
    );
    assert!(pending.remedy.contains("unblocks"), "{}", pending.remedy);

    // stopped with a caught SIGTERM pending: the handler waits for SIGCONT
    let stopped = risk_flags(&snap(STOPPED, &[STOPPED], &[]));
    let got: Vec<RiskFlag> = stopped.iter().map(|f| f.flag).collect();
    assert_eq!(got, vec![RiskFlag::SignalsPending, RiskFlag::Stopped]);
    assert!(
        stopped[0].remedy.contains("SIGCONT"),
        "{}",
        stopped[0].remedy
    );

    // pending and not blocked: transient unless the thread is stuck in the kernel
    let unblocked = SELF.replace("SigPnd:\t0000000000000000", "SigPnd:\t0000000000000100");
    let f = risk_flags(&snap(&unblocked, &[], &[]));
    assert_eq!(f.len(), 1);
    assert_eq!(f[0].explanation, "signals pending: thread-directed SIGKILL");
    assert!(f[0].remedy.contains("state D"), "{}", f[0].remedy);

    for quiet in [SELF, PY_TERM, SLEEP_INIT] {
        assert!(!flags(&snap(quiet, &[quiet], &[])).contains(&RiskFlag::SignalsPending));
    }
}

#[test]
fn zombie_children() {
    let s = snap(
        ZOMBIE_INIT,
        &[ZOMBIE_INIT],
        &[ZOMBIE_CHILD_1, ZOMBIE_CHILD_2],
    );
    let f = risk_flags(&s);
    let got: Vec<RiskFlag> = f.iter().map(|f| f.flag).collect();
    assert_eq!(
        got,
        vec![RiskFlag::InitWithoutTermHandler, RiskFlag::ZombieChildren]
    );
    assert!(f[1]
        .explanation
        .starts_with("2 zombie children (18686, 18687)"));
    assert!(f[1].explanation.contains("orphan"));

    // a live child is no zombie; a SIGCHLD handler reaps (dash catches SIGCHLD)
    assert!(!flags(&snap(ZOMBIE_INIT, &[], &[SHELL_CHILD])).contains(&RiskFlag::ZombieChildren));
    let shell = snap(SHELL_INIT, &[], &[ZOMBIE_CHILD_1]);
    assert!(!flags(&shell).contains(&RiskFlag::ZombieChildren));
    // not an init: flagged, without the orphan remark
    let plain = risk_flags(&snap(PY_TERM, &[], &[ZOMBIE_CHILD_1]));
    assert_eq!(plain.len(), 1);
    assert_eq!(plain[0].flag, RiskFlag::ZombieChildren);
    assert!(!plain[0].explanation.contains("orphan"));
}

#[test]
fn zombie_process_gets_one_flag() {
    let f = risk_flags(&snap(ZOMBIE_CHILD_1, &[ZOMBIE_CHILD_1], &[]));
    assert_eq!(f.len(), 1);
    assert_eq!(f[0].flag, RiskFlag::Zombie);
    assert!(
        f[0].explanation.contains("pid 18644"),
        "{}",
        f[0].explanation
    );
}

#[test]
fn sigint_only_and_child_ignores_term() {
    assert_eq!(flags(&snap(PY_INT, &[], &[])), vec![RiskFlag::SigintOnly]);
    assert!(!flags(&snap(PY_TERM, &[], &[])).contains(&RiskFlag::SigintOnly));
    // an init with SIGINT caught is reported as an init without SIGTERM handler
    assert_eq!(
        flags(&snap(CONTAINER_VIEW_INIT, &[], &[])),
        vec![RiskFlag::InitWithoutTermHandler]
    );

    let f = risk_flags(&snap(SHELL_INIT_TRAP, &[], &[TERM_IGNORED, SHELL_CHILD]));
    assert_eq!(f.len(), 1);
    assert_eq!(f[0].flag, RiskFlag::ChildIgnoresTerm);
    assert!(f[0].explanation.contains("(19401)"), "{}", f[0].explanation);
    assert!(
        !flags(&snap(SHELL_INIT_TRAP, &[], &[SHELL_CHILD])).contains(&RiskFlag::ChildIgnoresTerm)
    );
}

#[test]
fn sigq_near_limit() {
    let near = SELF.replace("SigQ:\t0/96365", "SigQ:\t86729/96365");
    let f = risk_flags(&snap(&near, &[], &[]));
    assert_eq!(f.len(), 1);
    assert_eq!(f[0].flag, RiskFlag::SigqNearLimit);
    assert!(f[0]
        .explanation
        .starts_with("uid 0 has 86729 of at most 96365"));
    let below = SELF.replace("SigQ:\t0/96365", "SigQ:\t86728/96365");
    assert!(flags(&snap(&below, &[], &[])).is_empty());
    let zero_limit = SELF.replace("SigQ:\t0/96365", "SigQ:\t0/0");
    assert!(flags(&snap(&zero_limit, &[], &[])).is_empty());
}

#[test]
fn flags_serialize_snake_case() {
    for (flag, name) in [
        (
            RiskFlag::InitWithoutTermHandler,
            "init_without_term_handler",
        ),
        (RiskFlag::ShellInitWithChildren, "shell_init_with_children"),
        (RiskFlag::TermBlocked, "term_blocked"),
        (RiskFlag::TermIgnored, "term_ignored"),
        (RiskFlag::SignalsPending, "signals_pending"),
        (RiskFlag::ZombieChildren, "zombie_children"),
        (RiskFlag::Zombie, "zombie"),
        (RiskFlag::Stopped, "stopped"),
        (RiskFlag::SigintOnly, "sigint_only"),
        (RiskFlag::ChildIgnoresTerm, "child_ignores_term"),
        (RiskFlag::SigqNearLimit, "sigq_near_limit"),
    ] {
        assert_eq!(serde_json::to_value(flag).expect("json"), name);
        assert_eq!(flag.as_str(), name);
    }
}

#[test]
fn analyze_reports_threads_children_and_container() {
    let mut s = snap(BLOCKED_MAIN, &[BLOCKED_MAIN, BLOCKED_THREAD], &[]);
    s.cgroup = Some(k8s_cgroup(&POD_UID.replace('-', "_"), ID1));
    s.cmdline = vec!["python3".into(), "blocked.py".into(), "block".into()];
    let r = analyze(&s);
    assert_eq!((r.pid, r.ppid, r.threads), (18227, 18224, 2));
    assert_eq!(r.blocked, vec!["SIGTERM"]);
    assert_eq!(r.pending_process, vec!["SIGTERM"]);
    assert!(r.pending_thread.is_empty());
    assert_eq!(r.caught, vec!["SIG33"]);
    assert!(r.term_blocked_everywhere);
    assert_eq!(r.term, Disposition::Default);
    assert_eq!(r.masks.shd_pnd, "0000000000004000");
    assert_eq!(r.masks.sig_ign, "0000000001001006");
    assert_eq!(
        r.thread_differences,
        vec![ThreadReport {
            tid: 18275,
            comm: "python3".into(),
            blocked: vec!["SIGUSR1".into(), "SIGTERM".into()],
            pending: vec!["SIGUSR1".into()],
        }]
    );
    let c = r.container.as_ref().expect("container");
    assert_eq!(c.container.id, ID1);
    assert_eq!(c.container.runtime, "containerd");
    assert_eq!(c.container.pod, None);
    assert_eq!(c.pod_uid.as_deref(), Some(POD_UID));
    assert_eq!(c.qos.as_deref(), Some("besteffort"));

    let init = analyze(&snap(
        SHELL_INIT,
        &[SHELL_INIT],
        &[SHELL_CHILD, TERM_IGNORED],
    ));
    assert_eq!(init.init, Some(InitKind::Namespace));
    assert_eq!(init.ns_pids, vec![17936, 1]);
    assert!(init.thread_differences.is_empty());
    assert_eq!(
        init.children,
        vec![
            ChildReport {
                pid: 17937,
                comm: "sleep".into(),
                state: "S (sleeping)".into(),
                term: Disposition::Default,
                term_blocked: false,
            },
            ChildReport {
                pid: 19401,
                comm: "sleep".into(),
                state: "S (sleeping)".into(),
                term: Disposition::Ignore,
                term_blocked: false,
            },
        ]
    );
}

#[test]
fn report_json_is_an_inspect_record() {
    let mut s = snap(SHELL_INIT, &[SHELL_INIT], &[SHELL_CHILD]);
    s.cgroup = Some(format!("0::/system.slice/docker-{ID1}.scope\n"));
    let v = serde_json::to_value(analyze(&s)).expect("json");
    assert_eq!(v["event"], "inspect");
    assert_eq!(v["pid"], 17936);
    assert_eq!(v["init"], "namespace");
    assert_eq!(v["term"], "default");
    assert_eq!(v["caught"], serde_json::json!(["SIGCHLD"]));
    assert_eq!(v["ignored"], serde_json::json!(["SIGINT", "SIGQUIT"]));
    assert_eq!(v["children"][0]["term"], "default");
    assert_eq!(v["container"]["id"], ID1);
    assert_eq!(v["container"]["runtime"], "docker");
    assert!(v["container"]["pod"].is_null());
    assert!(v["container"]["pod_uid"].is_null());
    assert_eq!(v["flags"][0]["flag"], "init_without_term_handler");
    assert_eq!(v["flags"][1]["flag"], "shell_init_with_children");
    assert!(v["flags"][1]["remedy"]
        .as_str()
        .is_some_and(|r| !r.is_empty()));
    let line = serde_json::to_string(&analyze(&s)).expect("json");
    assert!(!line.contains('\n'));
    assert!(line.starts_with("{\"event\":\"inspect\""), "{line}");
}

#[test]
fn text_report_names_everything() {
    let mut s = snap(
        ZOMBIE_INIT,
        &[ZOMBIE_INIT],
        &[ZOMBIE_CHILD_1, ZOMBIE_CHILD_2],
    );
    s.cmdline = vec!["python3".into(), "zombie.py".into()];
    s.cgroup = Some(format!("0::/system.slice/docker-{ID1}.scope\n"));
    let text = analyze(&s).render_text();
    for want in [
        "pid 18644 (python3)  state S (sleeping)  ppid 18642  uid 0\n",
        "  cmdline:  python3 zombie.py\n",
        "  init:     init of its PID namespace (pid per namespace: 18644 > 1)\n",
        &format!("  container: docker {ID1}\n"),
        "  caught:   -\n",
        "  ignored:  SIGINT SIGQUIT SIGPIPE SIGXFSZ\n",
        "  blocked:  -\n",
        "  pending:  -\n",
        "  SIGTERM:  default\n",
        "  threads:  1, differing from the main thread: 0\n",
        "  children: 2\n",
        "    18686 (python3)  Z (zombie)  SIGTERM default\n",
        "    init_without_term_handler: the init of a PID namespace with SIGTERM at SIG_DFL",
        "    zombie_children: 2 zombie children (18686, 18687)",
        "      remedy: run a reaping init as PID 1",
    ] {
        assert!(text.contains(want), "missing {want:?} in\n{text}");
    }

    let blocked = analyze(&snap(BLOCKED_MAIN, &[BLOCKED_MAIN, BLOCKED_THREAD], &[])).render_text();
    for want in [
        "  blocked:  SIGTERM\n",
        "  pending:  SIGTERM (process)\n",
        "  SIGTERM:  default, blocked in every thread\n",
        "  queued:   3/96365 (for uid 0)\n",
        "    tid 18275 (python3): blocked SIGUSR1 SIGTERM; pending SIGUSR1\n",
        "    term_blocked: ",
    ] {
        assert!(blocked.contains(want), "missing {want:?} in\n{blocked}");
    }
    let quiet = analyze(&snap(PY_TERM, &[], &[])).render_text();
    assert!(quiet.contains("  SIGTERM:  caught\n"), "{quiet}");
    assert!(quiet.contains("  init:     not an init"), "{quiet}");
    assert!(quiet.ends_with("  flags:    none\n"), "{quiet}");
}

/// A fake proc tree under the system temp dir, removed on drop.
struct FakeProc(PathBuf);

impl FakeProc {
    fn new(name: &str) -> FakeProc {
        let dir = std::env::temp_dir().join(format!(
            "inspect-{name}-{}-{:?}",
            std::process::id(),
            std::thread::current().id()
        ));
        let _ = fs::remove_dir_all(&dir);
        fs::create_dir_all(&dir).expect("create temp dir");
        FakeProc(dir)
    }

    fn write(&self, rel: &str, text: &str) {
        let path = self.0.join(rel);
        fs::create_dir_all(path.parent().expect("parent")).expect("create dirs");
        fs::write(path, text).expect("write file");
    }

    /// A process with its status, the status of each task, and optional files.
    fn process(&self, pid: u32, status: &str, tasks: &[(u32, &str)], cgroup: Option<&str>) {
        self.write(&format!("{pid}/status"), status);
        for (tid, text) in tasks {
            self.write(&format!("{pid}/task/{tid}/status"), text);
        }
        if let Some(c) = cgroup {
            self.write(&format!("{pid}/cgroup"), c);
        }
    }
}

impl Drop for FakeProc {
    fn drop(&mut self) {
        let _ = fs::remove_dir_all(&self.0);
    }
}

#[test]
fn inspect_pid_on_a_fake_tree() {
    let proc = FakeProc::new("zombies");
    let cgroup = k8s_cgroup(&POD_UID.replace('-', "_"), ID1);
    proc.process(18644, ZOMBIE_INIT, &[(18644, ZOMBIE_INIT)], Some(&cgroup));
    proc.write("18644/task/18644/children", "18686 18687 ");
    proc.write("18644/cmdline", "python3\0zombie.py\0");
    proc.process(
        18686,
        ZOMBIE_CHILD_1,
        &[(18686, ZOMBIE_CHILD_1)],
        Some(&cgroup),
    );
    proc.process(
        18687,
        ZOMBIE_CHILD_2,
        &[(18687, ZOMBIE_CHILD_2)],
        Some(&cgroup),
    );
    proc.write("self", "not a process");

    let r = inspect_pid(&proc.0, 18644).expect("inspect");
    assert_eq!(r.comm, "python3");
    assert_eq!(r.cmdline, vec!["python3", "zombie.py"]);
    assert_eq!(r.init, Some(InitKind::Namespace));
    assert_eq!(r.threads, 1);
    let kids: Vec<(u32, &str)> = r
        .children
        .iter()
        .map(|c| (c.pid, c.state.as_str()))
        .collect();
    assert_eq!(kids, vec![(18686, "Z (zombie)"), (18687, "Z (zombie)")]);
    assert_eq!(
        r.container.as_ref().and_then(|c| c.pod_uid.as_deref()),
        Some(POD_UID)
    );
    let got: Vec<RiskFlag> = r.flags.iter().map(|f| f.flag).collect();
    assert_eq!(
        got,
        vec![RiskFlag::InitWithoutTermHandler, RiskFlag::ZombieChildren]
    );

    // without the children file (CONFIG_PROC_CHILDREN off), children come from PPid
    fs::remove_file(proc.0.join("18644/task/18644/children")).expect("remove");
    let again = inspect_pid(&proc.0, 18644).expect("inspect");
    assert_eq!(again.children, r.children);

    // the child itself, a zombie
    let z = inspect_pid(&proc.0, 18686).expect("inspect");
    assert!(z.cmdline.is_empty());
    assert!(z.children.is_empty());
    assert_eq!(z.flags.len(), 1);
    assert_eq!(z.flags[0].flag, RiskFlag::Zombie);
}

#[test]
fn inspect_pid_reads_every_thread() {
    let proc = FakeProc::new("threads");
    proc.process(
        18227,
        BLOCKED_MAIN,
        &[(18227, BLOCKED_MAIN), (18275, BLOCKED_THREAD)],
        Some("0::/user.slice/user-0.slice/session-1.scope\n"),
    );
    // an unrelated process; no children files anywhere
    proc.process(18686, ZOMBIE_CHILD_1, &[], None);
    // a task directory without status (the thread just exited) is left out
    fs::create_dir_all(proc.0.join("18227/task/18300")).expect("mkdir");

    let r = inspect_pid(&proc.0, 18227).expect("inspect");
    assert_eq!(r.threads, 2);
    assert_eq!(r.thread_differences.len(), 1);
    assert_eq!(r.thread_differences[0].tid, 18275);
    assert!(r.children.is_empty());
    assert_eq!(r.container, None);
    let got: Vec<RiskFlag> = r.flags.iter().map(|f| f.flag).collect();
    assert_eq!(got, vec![RiskFlag::TermBlocked, RiskFlag::SignalsPending]);

    // SIGTERM unblocked by a second thread
    let proc2 = FakeProc::new("unblock");
    proc2.process(
        18308,
        UNBLOCK_MAIN,
        &[(18308, UNBLOCK_MAIN), (18367, UNBLOCK_THREAD)],
        None,
    );
    let r = inspect_pid(&proc2.0, 18308).expect("inspect");
    assert!(r.flags.is_empty(), "{:?}", r.flags);
    assert!(!r.term_blocked_everywhere);
    assert_eq!(r.thread_differences[0].blocked, Vec::<Cow<str>>::new());
}

#[test]
fn inspect_pid_errors_carry_context() {
    let proc = FakeProc::new("errors");
    let err = inspect_pid(&proc.0, 4242).expect_err("missing");
    assert!(matches!(err, InspectError::NoSuchProcess(4242)));
    assert_eq!(err.to_string(), "no such process 4242");

    // a directory where the status file should be cannot be read
    fs::create_dir_all(proc.0.join("77/status")).expect("mkdir");
    let err = inspect_pid(&proc.0, 77).expect_err("unreadable");
    let msg = err.to_string();
    let want = format!("cannot read {}: ", proc.0.join("77/status").display());
    assert!(msg.starts_with(&want), "{msg}");

    proc.write("78/status", &SELF.replace("SigCgt:", "SigCaught:"));
    let err = inspect_pid(&proc.0, 78).expect_err("malformed");
    assert_eq!(
        err.to_string(),
        format!(
            "cannot parse {}: missing field SigCgt",
            proc.0.join("78/status").display()
        )
    );
    // a process directory without status: gone between listing and reading
    fs::create_dir_all(proc.0.join("79")).expect("mkdir");
    assert!(matches!(
        inspect_pid(&proc.0, 79),
        Err(InspectError::NoSuchProcess(79))
    ));
}

/// Two containers (one in a pod), a host process.
fn container_tree(name: &str) -> FakeProc {
    let proc = FakeProc::new(name);
    let pod = k8s_cgroup(&POD_UID.replace('-', "_"), ID1);
    proc.process(100, SHELL_INIT, &[], Some(&pod));
    proc.process(101, SHELL_CHILD, &[], Some(&pod));
    let v1 = format!("12:pids:/docker/{ID2}\n1:name=systemd:/docker/{ID2}\n");
    proc.process(200, SLEEP_INIT, &[], Some(&v1));
    proc.process(
        300,
        SELF,
        &[],
        Some("0::/user.slice/user-0.slice/session-1.scope\n"),
    );
    proc.process(400, SELF, &[], None);
    proc
}

#[test]
fn container_pids_by_prefix() {
    let proc = container_tree("containers");
    assert_eq!(find_container_pids(&proc.0, "0123"), vec![100, 101]);
    assert_eq!(find_container_pids(&proc.0, ID1), vec![100, 101]);
    assert_eq!(find_container_pids(&proc.0, "FEDC"), vec![200]);
    assert_eq!(find_container_pids(&proc.0, "abc"), Vec::<u32>::new());
    assert_eq!(find_container_pids(&proc.0, ""), Vec::<u32>::new());
    assert_eq!(
        find_container_pids(&proc.0.join("nope"), "0123"),
        Vec::<u32>::new()
    );
}

#[test]
fn pod_pids_by_uid_prefix() {
    let proc = container_tree("pods");
    assert_eq!(
        find_pod_pids(&proc.0, "5a0a4d5e").expect("pod"),
        vec![100, 101]
    );
    assert_eq!(
        find_pod_pids(&proc.0, POD_UID).expect("pod"),
        vec![100, 101]
    );
    assert_eq!(
        find_pod_pids(&proc.0, &POD_UID.replace('-', "_").to_uppercase()).expect("pod"),
        vec![100, 101]
    );
    let err = find_pod_pids(&proc.0, "web-7d9f8").expect_err("name");
    assert!(matches!(err, InspectError::PodName(ref n) if n == "web-7d9f8"));
    assert!(err.to_string().contains("container runtime"), "{err}");
    assert!(matches!(
        find_pod_pids(&proc.0, "ffff"),
        Err(InspectError::NoPod(_))
    ));
    assert!(matches!(
        find_pod_pids(&proc.0, "-"),
        Err(InspectError::PodName(_))
    ));
}

#[test]
fn targets() {
    let proc = container_tree("targets");
    let one = inspect_target(&proc.0, &Target::Pid(300)).expect("pid");
    assert_eq!(one.len(), 1);
    assert_eq!(one[0].pid, 17362);

    let c = inspect_target(&proc.0, &Target::Container("0123".into())).expect("container");
    assert_eq!(c.len(), 2);
    assert!(c
        .iter()
        .all(|r| r.container.as_ref().is_some_and(|c| c.container.id == ID1)));
    assert_eq!(c[0].init, Some(InitKind::Namespace));

    let p = inspect_target(&proc.0, &Target::Pod(POD_UID[..8].into())).expect("pod");
    assert_eq!(p, c);

    // a second container whose id shares the prefix "012"
    let ambiguous = container_tree("ambiguous");
    let other = ID1.replacen("0123", "0124", 1);
    ambiguous.write(
        "200/cgroup",
        &format!("0::/system.slice/docker-{other}.scope\n"),
    );
    match inspect_target(&ambiguous.0, &Target::Container("012".into())) {
        Err(InspectError::AmbiguousContainer { prefix, ids }) => {
            assert_eq!(prefix, "012");
            assert_eq!(ids, vec![ID1.to_owned(), other]);
        }
        other => panic!("{other:?}"),
    }
    assert!(matches!(
        inspect_target(&proc.0, &Target::Container("abc".into())),
        Err(InspectError::NoContainer(_))
    ));
    assert!(matches!(
        inspect_target(&proc.0, &Target::Container(" ".into())),
        Err(InspectError::EmptyContainerPrefix)
    ));
    assert!(matches!(
        inspect_target(&proc.0, &Target::Pid(999)),
        Err(InspectError::NoSuchProcess(999))
    ));
}

#[derive(clap::Parser, Debug)]
struct TestCli {
    #[command(flatten)]
    args: InspectArgs,
}

fn parse_args(argv: &[&str]) -> Result<InspectArgs, clap::Error> {
    use clap::Parser;
    TestCli::try_parse_from(std::iter::once("inspect").chain(argv.iter().copied())).map(|c| c.args)
}

#[test]
fn arguments_name_one_target() {
    let t = |argv: &[&str]| parse_args(argv).expect("parses").target();
    assert_eq!(t(&["42"]), Some(Target::Pid(42)));
    assert_eq!(
        t(&["--container", "abc"]),
        Some(Target::Container("abc".into()))
    );
    assert_eq!(t(&["--pod", "5a0a"]), Some(Target::Pod("5a0a".into())));
    assert_eq!(
        parse_args(&["--format", "json", "1"])
            .expect("parses")
            .format,
        FormatArg::Json
    );
    for bad in [
        &[][..],
        &["42", "--container", "abc"],
        &["--container", "abc", "--pod", "x"],
        &["notapid"],
    ] {
        assert!(parse_args(bad).is_err(), "{bad:?}");
    }
}

#[test]
fn run_writes_text_or_ndjson() {
    let proc = container_tree("run");
    let args = parse_args(&["--container", "0123", "--format", "json"]).expect("args");
    let mut out = Vec::new();
    run(&args, &proc.0, &mut out).expect("run");
    let text = String::from_utf8(out).expect("utf8");
    let lines: Vec<&str> = text.lines().collect();
    assert_eq!(lines.len(), 2);
    for line in lines {
        let v: serde_json::Value = serde_json::from_str(line).expect("json line");
        assert_eq!(v["event"], "inspect");
    }

    let args = parse_args(&["300"]).expect("args");
    let mut out = Vec::new();
    run(&args, &proc.0, &mut out).expect("run");
    let text = String::from_utf8(out).expect("utf8");
    assert!(text.starts_with("pid 17362 (cat)"), "{text}");

    let args = parse_args(&["999"]).expect("args");
    let err = run(&args, &proc.0, &mut Vec::new()).expect_err("missing");
    assert_eq!(err.to_string(), "no such process 999");
}

#[test]
fn inspects_itself_through_real_proc() {
    let root = Path::new("/proc");
    if !root.join("self/status").exists() {
        return;
    }
    let me = std::process::id();
    // a child to find among the children
    let child = std::process::Command::new("sleep").arg("30").spawn().ok();

    let r = inspect_pid(root, me).expect("inspect self");
    assert_eq!(r.pid, me);
    assert_eq!(r.ns_pids.first(), Some(&me));
    assert_ne!(r.ppid, 0);
    assert_eq!(r.init, None);
    assert!(!r.comm.is_empty());
    assert!(!r.cmdline.is_empty());
    assert!(r.threads >= 1);
    assert!(
        r.state.starts_with('R') || r.state.starts_with('S'),
        "{}",
        r.state
    );
    // the kernel never lets SIGKILL or SIGSTOP be caught, ignored or blocked
    for list in [&r.caught, &r.ignored, &r.blocked] {
        assert!(
            !list.iter().any(|s| s == "SIGKILL" || s == "SIGSTOP"),
            "{list:?}"
        );
    }
    // the names are the masks
    let mask = u64::from_str_radix(&r.masks.sig_ign, 16).expect("hex");
    assert_eq!(r.ignored, names::mask_names(mask));
    // the Rust runtime ignores SIGPIPE
    assert!(r.ignored.iter().any(|s| s == "SIGPIPE"), "{:?}", r.ignored);
    assert!(!r.flags.iter().any(|f| f.flag == RiskFlag::Zombie
        || f.flag == RiskFlag::InitWithoutTermHandler
        || f.flag == RiskFlag::ShellInitWithChildren));

    if let Some(mut child) = child {
        let pid = child.id();
        // spawn() can return before the exec has renamed the child: wait for the name
        let comm = root.join(pid.to_string()).join("comm");
        for _ in 0..200 {
            if fs::read_to_string(&comm).is_ok_and(|c| c.trim_end() == "sleep") {
                break;
            }
            std::thread::sleep(std::time::Duration::from_millis(10));
        }
        let again = inspect_pid(root, me).expect("inspect self");
        let _ = child.kill();
        let _ = child.wait();
        let found = again
            .children
            .iter()
            .find(|c| c.pid == pid)
            .expect("child listed");
        assert_eq!(found.comm, "sleep");
    }
    let text = r.render_text();
    assert!(text.starts_with(&format!("pid {me} (")), "{text}");
}

#[test]
fn pod_names_select_their_containers_by_label() {
    use crate::workload::containerd::RuntimeContainer;
    let c = |id: &str, pod: Option<&str>| RuntimeContainer {
        namespace: "k8s.io".into(),
        id: id.into(),
        image: String::new(),
        labels: pod
            .map(|p| {
                [(
                    crate::workload::containers::LABEL_POD_NAME.to_string(),
                    p.to_string(),
                )]
                .into()
            })
            .unwrap_or_default(),
        ..RuntimeContainer::default()
    };
    let all = [
        c("a1", Some("web-0")),
        c("b2", Some("web-1")),
        c("c3", Some("web-0")),
        c("d4", None),
    ];
    assert_eq!(pod_container_ids(&all, "web-0"), vec!["a1", "c3"]);
    assert!(
        pod_container_ids(&all, "web").is_empty(),
        "names match whole"
    );
}

#[test]
fn names_and_arguments_are_read_as_bytes_and_shown_escaped() {
    // The kernel writes a newline of the name as `\n` and a backslash as `\\`; the rest raw.
    let hostile_status = SELF
        .replace("Name:\tcat", "Name:\t\x1b[2J\x1b]0;x\x07\\nFAKE\\\\")
        .into_bytes();
    let st = ProcStatus::parse_bytes(&hostile_status).unwrap();
    assert_eq!(st.name, "\x1b[2J\x1b]0;x\x07\nFAKE\\");
    // Not UTF-8: still parsed, the byte kept.
    let mut worker = SELF.replace("Name:\tcat", "Name:\tworkerX").into_bytes();
    let at = worker.iter().position(|&b| b == b'X').unwrap();
    worker[at] = 0xff;
    assert_eq!(
        ProcStatus::parse_bytes(&worker).unwrap().name.as_bytes(),
        b"worker\xff"
    );

    let mut s = snap(SELF, &[SELF], &[]);
    s.status = st.clone();
    s.threads = vec![st.clone()];
    s.children = vec![ProcStatus::parse_bytes(&worker).unwrap()];
    s.cmdline = vec![
        crate::escape::HOSTILE.into(),
        RawText::from(&b"--flag=\x9b\xff"[..]),
    ];
    s.cgroup = Some(format!("0::/system.slice/docker-{ID1}.scope\n"));
    let r = analyze(&s);
    let text = r.render_text();
    assert!(
        !crate::escape::has_terminal_controls(text.as_bytes(), true),
        "{text:?}"
    );
    assert!(
        text.starts_with("pid 17362 (\\x1b[2J\\x1b]0;x\\x07\\nFAKE\\\\)  state "),
        "{text}"
    );
    assert!(
        text.contains("  cmdline:  \\x1b[2J\\x1b]0;x\\x07\\nFAKE --flag=\\x9b\\xff\n"),
        "{text}"
    );
    assert!(text.contains(" (worker\\xff)  "), "{text}");
    // No line of the report starts with what the name tried to fake.
    assert!(!text.lines().any(|l| l.starts_with("FAKE")), "{text}");
    // NDJSON: the comm as lossy UTF-8, escaped by serde.
    let json = serde_json::to_string(&r).unwrap();
    assert!(
        json.contains("\"comm\":\"\\u001b[2J\\u001b]0;x\\u0007\\nFAKE\\\\\""),
        "{json}"
    );
    assert!(json.contains("\"comm\":\"worker\u{fffd}\""), "{json}");
}

#[test]
fn a_process_that_cannot_be_parsed_does_not_fail_its_container() {
    let proc = container_tree("bad-one");
    // One process of the container has a status the parser rejects.
    let pids = find_container_pids(&proc.0, &ID1[..12]);
    assert!(pids.len() >= 2, "{pids:?}");
    let broken = pids[1];
    proc.write(
        &format!("{broken}/status"),
        "Name:\tx\nPid:\tnot-a-number\n",
    );
    let mut skipped = Vec::new();
    let reports = inspect_target_noting(
        &proc.0,
        &Target::Container(ID1[..12].to_owned()),
        &mut |pid, e| skipped.push((pid, e.to_string())),
    )
    .expect("the container is inspected");
    assert_eq!(reports.len(), pids.len() - 1);
    assert_eq!(skipped.len(), 1, "{skipped:?}");
    assert_eq!(skipped[0].0, broken);
}

#[test]
fn lookalike_and_delegated_cgroups_are_no_containers() {
    let proc = FakeProc::new("lookalikes");
    // cgroup v1 host cgroup with the plain containerd shape
    proc.process(
        500,
        SELF,
        &[],
        Some("4:memory:/process_api/58cd6f8b3b107ca70e99d6254a8f80b2\n0::/\n"),
    );
    // a user's delegated cgroup named like a real pod's container
    proc.process(
        600,
        SELF,
        &[],
        Some(&format!(
            "0::/user.slice/user-1000.slice/user@1000.service/app.slice/cri-containerd-{ID1}.scope\n"
        )),
    );
    assert!(containers(&proc.0).is_empty());
    assert!(find_container_pids(&proc.0, "58cd6f8b").is_empty());
    assert!(find_container_pids(&proc.0, &ID1[..12]).is_empty());
    let r = inspect_pid(&proc.0, 600).unwrap();
    assert_eq!(r.container, None);
}

#[test]
fn an_init_that_waits_for_sigterm_is_not_flagged() {
    let term_default_init = snap(SLEEP_INIT, &[SLEEP_INIT], &[]);
    assert!(flags(&term_default_init).contains(&RiskFlag::InitWithoutTermHandler));

    // tini: in rt_sigtimedwait for a set with SIGTERM (SigBlk shows nothing while it waits).
    let mut tini = term_default_init.clone();
    tini.syscall = Some(format!(
        "{SYS_RT_SIGTIMEDWAIT} 0x7ffd1e34ac80 0x7ffd1e34abb0 0x563a488b9020 0x8 0x7 0x0 0x7ffd1e34ab80 0x7fa01b4c3c2f\n"
    ));
    tini.sigwait_mask = Some(!0);
    let r = analyze(&tini);
    assert_eq!(r.term_wait, Some(TermWait::Sigtimedwait));
    assert!(r.flags.is_empty(), "{:?}", r.flags);
    assert!(
        r.render_text()
            .contains("  SIGTERM:  default; waits for SIGTERM in sigtimedwait\n"),
        "{}",
        r.render_text()
    );
    // ...for a set without SIGTERM: flagged.
    tini.sigwait_mask = Some(!TERM_BIT);
    assert!(flags(&tini).contains(&RiskFlag::InitWithoutTermHandler));
    // ...in some other call: flagged.
    tini.sigwait_mask = Some(!0);
    tini.syscall = Some("230 0x1 0x0 0x7ffd 0x0 0x0 0x0 0x7ffd 0x7f\n".into());
    assert!(flags(&tini).contains(&RiskFlag::InitWithoutTermHandler));

    // A signalfd init: SIGTERM blocked, a signalfd with SIGTERM in its mask.
    let blocked = SLEEP_INIT.replace(
        "SigBlk:\t0000000000000000",
        &format!("SigBlk:\t{TERM_BIT:016x}"),
    );
    assert_ne!(blocked, SLEEP_INIT, "the fixture has the line");
    let mut sfd = snap(&blocked, &[&blocked], &[]);
    sfd.signalfd_masks = vec![TERM_BIT | 1 << (SIGINT - 1)];
    let r = analyze(&sfd);
    assert_eq!(r.term_wait, Some(TermWait::Signalfd));
    assert!(r.flags.is_empty(), "{:?}", r.flags);
    // A signalfd without SIGTERM: SIGTERM stays pending forever.
    sfd.signalfd_masks = vec![1 << (SIGINT - 1)];
    let f = flags(&sfd);
    assert!(f.contains(&RiskFlag::InitWithoutTermHandler), "{f:?}");
    assert!(f.contains(&RiskFlag::TermBlocked), "{f:?}");
    // A signalfd with SIGTERM while SIGTERM is not blocked: the default action wins.
    let mut unblocked = term_default_init.clone();
    unblocked.signalfd_masks = vec![TERM_BIT];
    assert_eq!(analyze(&unblocked).term_wait, None);
    assert!(flags(&unblocked).contains(&RiskFlag::InitWithoutTermHandler));
}
