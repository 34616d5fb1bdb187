//! `explain --from` over a fleet's recordings: many sources merged in time order, nodes kept
//! apart, gzip and directories, --host/--since/--until, and input that must not break replay.
//! No root needed.

use std::io::Write as _;
use std::path::{Path, PathBuf};
use std::process::{Command, Output, Stdio};
use std::time::Duration;

use serde_json::Value;
use signal_trace::event::record::{Label, Node, Record, Time};

const BIN: &str = env!("CARGO_BIN_EXE_signal-trace");

fn fixture(name: &str) -> Vec<Record> {
    let text = std::fs::read_to_string(format!(
        "{}/tests/fixtures/explain/{name}.ndjson",
        env!("CARGO_MANIFEST_DIR")
    ))
    .expect("fixture");
    text.lines()
        .filter(|l| !l.trim().is_empty())
        .map(|l| serde_json::from_str(l).expect("fixture record"))
        .collect()
}

/// The records as made on `host`, `shift_ns` later.
fn on_host(records: &[Record], host: &str, shift_ns: u64) -> Vec<Record> {
    let node = Node {
        host: Label::new(host),
        boot_id: Some(Label::new(&format!("boot-{host}"))),
    };
    records
        .iter()
        .map(|r| {
            let mut v = serde_json::to_value(r).unwrap();
            let t: Time = serde_json::from_value(v["time"].clone()).unwrap();
            v["time"] = serde_json::to_value(Time(t.0 + shift_ns)).unwrap();
            let mut r: Record = serde_json::from_value(v).unwrap();
            r.set_node(&node);
            r
        })
        .collect()
}

fn ndjson(records: &[Record]) -> String {
    records
        .iter()
        .map(|r| serde_json::to_string(r).unwrap() + "\n")
        .collect()
}

fn dir(name: &str) -> PathBuf {
    let d = std::env::temp_dir().join(format!("signal-trace-replay-{}-{name}", std::process::id()));
    let _ = std::fs::remove_dir_all(&d);
    std::fs::create_dir_all(&d).unwrap();
    d
}

fn gzip(path: &Path, text: &str) {
    let mut enc = flate2::write::GzEncoder::new(
        std::fs::File::create(path).unwrap(),
        flate2::Compression::default(),
    );
    enc.write_all(text.as_bytes()).unwrap();
    enc.finish().unwrap();
}

fn explain(args: &[&str]) -> Output {
    Command::new(BIN)
        .args(["explain", "--format", "json"])
        .args(args)
        .output()
        .expect("run signal-trace")
}

fn lines(out: &Output) -> Vec<Value> {
    String::from_utf8_lossy(&out.stdout)
        .lines()
        .map(|l| serde_json::from_str(l).unwrap_or_else(|e| panic!("not JSON ({e}): {l}")))
        .collect()
}

fn stderr(out: &Output) -> String {
    String::from_utf8_lossy(&out.stderr).into_owned()
}

/// (host, kind, pid) of each finding, in output order.
fn findings(out: &Output) -> Vec<(String, String, u64)> {
    lines(out)
        .iter()
        .filter(|v| v["event"] == "finding")
        .map(|v| {
            (
                v["host"].as_str().unwrap_or_default().to_string(),
                v["kind"].as_str().unwrap_or_default().to_string(),
                v["process"]["pid"].as_u64().unwrap_or_default(),
            )
        })
        .collect()
}

/// How many records `explain --summary` counted.
fn summarized(out: &Output) -> u64 {
    lines(out)
        .iter()
        .filter(|v| v["event"] == "summary")
        .map(|v| v["total"].as_u64().unwrap())
        .sum()
}

fn p(path: &Path) -> &str {
    path.to_str().unwrap()
}

#[test]
fn two_nodes_with_colliding_pids_keep_their_own_findings() {
    let d = dir("two-nodes");
    let mut expected = Vec::new();
    let mut a_all = Vec::new();
    let mut b_all = Vec::new();
    // Every story happens on both nodes, with the same pids, 1 ms apart.
    for (i, name) in [
        "grace_exceeded",
        "not_forwarded",
        "oom_killed",
        "signal_death",
    ]
    .into_iter()
    .enumerate()
    {
        let records = fixture(name);
        let alone = d.join(format!("{name}.ndjson"));
        std::fs::write(&alone, ndjson(&on_host(&records, "node-a", 0))).unwrap();
        let single = findings(&explain(&["--from", p(&alone)]));
        assert!(!single.is_empty(), "{name} explains something");
        expected.push(single);
        // Stories of different fixtures are hours apart: they do not interact.
        let shift = i as u64 * 3_600_000_000_000;
        a_all.extend(on_host(&records, "node-a", shift));
        b_all.extend(on_host(&records, "node-b", shift + 1_000_000));
    }
    a_all.sort_by_key(|r| r.time());
    b_all.sort_by_key(|r| r.time());
    let (a, b) = (d.join("node-a.ndjson"), d.join("node-b.ndjson"));
    std::fs::write(&a, ndjson(&a_all)).unwrap();
    std::fs::write(&b, ndjson(&b_all)).unwrap();
    let out = explain(&["--timeline", "--from", p(&a), "--from", p(&b)]);
    assert!(out.status.success(), "{}", stderr(&out));
    let got = findings(&out);
    let want: Vec<(String, u64)> = expected
        .iter()
        .flatten()
        .map(|(_, k, pid)| (k.clone(), *pid))
        .collect();
    for host in ["node-a", "node-b"] {
        let mine: Vec<(String, u64)> = got
            .iter()
            .filter(|f| f.0 == host)
            .map(|f| (f.1.clone(), f.2))
            .collect();
        assert_eq!(mine, want, "{host}'s findings are its own: {got:?}");
    }
    assert_eq!(got.len(), 2 * want.len(), "{got:?}");
    // Merged in time order: node-a's finding of each story comes out before node-b's.
    let hosts: Vec<&str> = got.iter().map(|f| f.0.as_str()).collect();
    assert_eq!(hosts.first(), Some(&"node-a"), "{hosts:?}");
    let tls: Vec<Value> = lines(&out)
        .into_iter()
        .filter(|v| v["event"] == "timeline")
        .collect();
    assert!(tls.iter().any(|t| t["host"] == "node-a") && tls.iter().any(|t| t["host"] == "node-b"));
    // The same pid on two nodes: each timeline tells only its own node's steps.
    for t in &tls {
        let times: Vec<&str> = t["steps"]
            .as_array()
            .unwrap()
            .iter()
            .map(|s| s["time"].as_str().unwrap())
            .collect();
        let host = t["host"].as_str().unwrap();
        let own: Vec<String> = if host == "node-a" { &a_all } else { &b_all }
            .iter()
            .map(|r| {
                serde_json::to_value(r.time())
                    .unwrap()
                    .as_str()
                    .unwrap()
                    .to_string()
            })
            .collect();
        for s in times {
            assert!(
                own.iter().any(|o| o == s),
                "{host} timeline step at {s} is not its own"
            );
        }
    }
    let _ = std::fs::remove_dir_all(&d);
}

#[test]
fn gzip_files_and_directories_of_rotated_files_replay_as_one_stream() {
    let d = dir("rotated");
    let records = on_host(&fixture("grace_exceeded"), "node-a", 0);
    let whole = d.join("whole.ndjson");
    std::fs::write(&whole, ndjson(&records)).unwrap();
    let want = findings(&explain(&["--from", p(&whole)]));
    assert!(!want.is_empty());
    // A gzip file.
    let gz = d.join("whole.ndjson.gz");
    gzip(&gz, &ndjson(&records));
    let out = explain(&["--from", p(&gz)]);
    assert!(out.status.success(), "{}", stderr(&out));
    assert_eq!(findings(&out), want);
    // A directory: the older half rotated and compressed, the newer half current, and a file
    // that is not a recording.
    let rot = d.join("node-a");
    std::fs::create_dir_all(&rot).unwrap();
    let half = records.len() / 2;
    gzip(
        &rot.join("signal-trace.1.ndjson.gz"),
        &ndjson(&records[..half]),
    );
    std::fs::write(rot.join("signal-trace.ndjson"), ndjson(&records[half..])).unwrap();
    std::fs::write(rot.join("notes.txt"), "not a recording\n").unwrap();
    let out = explain(&["--from", p(&rot)]);
    assert!(out.status.success(), "{}", stderr(&out));
    assert_eq!(findings(&out), want);
    // Standard input may be compressed too.
    let out = Command::new(BIN)
        .args(["explain", "--format", "json", "--from", "-"])
        .stdin(std::fs::File::open(&gz).unwrap())
        .output()
        .unwrap();
    assert_eq!(findings(&out), want, "{}", stderr(&out));
    // An empty directory is an error, said as such.
    let empty = d.join("empty");
    std::fs::create_dir_all(&empty).unwrap();
    let out = explain(&["--from", p(&empty)]);
    assert_eq!(out.status.code(), Some(1));
    assert!(stderr(&out).contains("no *.ndjson"), "{}", stderr(&out));
    let _ = std::fs::remove_dir_all(&d);
}

#[test]
fn since_until_and_host_select_records() {
    let d = dir("select");
    let base = on_host(&fixture("signal_death"), "node-a", 0);
    let mut all = base.clone();
    all.extend(on_host(&fixture("signal_death"), "node-b", 500_000));
    all.sort_by_key(|r| r.time());
    let file = d.join("both.ndjson");
    std::fs::write(&file, ndjson(&all)).unwrap();
    let f = p(&file);
    let count = |args: &[&str]| {
        let mut a = vec!["--summary", "100000", "--from", f];
        a.extend_from_slice(args);
        let out = explain(&a);
        assert!(out.status.success(), "{args:?}: {}", stderr(&out));
        summarized(&out)
    };
    let n = all.len() as u64;
    assert_eq!(count(&[]), n);
    assert_eq!(count(&["--host", "node-b"]), n / 2);
    assert_eq!(count(&["--host", "node-a,node-b"]), n);
    assert_eq!(count(&["--host", "node-c"]), 0);
    // An RFC 3339 time: from the 5th record on.
    let t = |r: &Record| {
        serde_json::to_value(r.time())
            .unwrap()
            .as_str()
            .unwrap()
            .to_string()
    };
    let since = t(&all[4]);
    let from_5th = all.iter().filter(|r| r.time() >= all[4].time()).count() as u64;
    assert_eq!(count(&["--since", &since]), from_5th);
    assert_eq!(count(&["--until", &since]), n - from_5th + 1);
    // A duration back from the newest record.
    let newest = all.iter().map(|r| r.time()).max().unwrap();
    for ms in [1u64, 50, 1000, 3_600_000] {
        let cut = Time(newest.0.saturating_sub(ms * 1_000_000));
        let want = all.iter().filter(|r| r.time() >= cut).count() as u64;
        assert_eq!(
            count(&["--since", &format!("{ms}ms")]),
            want,
            "--since {ms}ms"
        );
        let want = all.iter().filter(|r| r.time() <= cut).count() as u64;
        assert_eq!(
            count(&["--until", &format!("{ms}ms")]),
            want,
            "--until {ms}ms"
        );
    }
    // The newest record of the selected host: node-a's story ends 0.5 ms before node-b's.
    let newest_a = base.iter().map(|r| r.time()).max().unwrap();
    let cut = Time(newest_a.0 - 1_000_000);
    let want = base.iter().filter(|r| r.time() >= cut).count() as u64;
    assert_eq!(count(&["--host", "node-a", "--since", "1ms"]), want);
    // From a gzip file too (read whole to find its newest record).
    let gz = d.join("both.ndjson.gz");
    gzip(&gz, &ndjson(&all));
    let out = explain(&["--summary", "100000", "--since", "50ms", "--from", p(&gz)]);
    let cut = Time(newest.0 - 50_000_000);
    assert_eq!(
        summarized(&out),
        all.iter().filter(|r| r.time() >= cut).count() as u64
    );
    // Standard input cannot be read twice: a duration is refused there, a time is not.
    let out = Command::new(BIN)
        .args(["explain", "--from", "-", "--since", "30m"])
        .stdin(Stdio::null())
        .output()
        .unwrap();
    assert_eq!(out.status.code(), Some(1));
    assert!(stderr(&out).contains("standard input cannot be read twice"));
    // Bad values are usage errors; the selection flags need --from.
    for args in [
        &["explain", "--from", f, "--since", "yesterday"][..],
        &["explain", "--since", "30m"][..],
        &["explain", "--host", "node-a"][..],
    ] {
        let out = Command::new(BIN).args(args).output().unwrap();
        assert_eq!(out.status.code(), Some(2), "{args:?}: {}", stderr(&out));
    }
    let _ = std::fs::remove_dir_all(&d);
}

#[test]
fn records_slightly_out_of_order_within_a_source_are_put_back_in_order() {
    let d = dir("reorder");
    let records = on_host(&fixture("grace_exceeded"), "node-a", 0);
    let want = findings(&explain(&[
        "--from",
        p(&{
            let f = d.join("ordered.ndjson");
            std::fs::write(&f, ndjson(&records)).unwrap();
            f
        }),
    ]));
    // Swap neighbours (all within the fixture's few seconds, inside the window).
    let mut shuffled = records.clone();
    for i in (0..shuffled.len() - 1).step_by(2) {
        let gap = shuffled[i + 1].time().0 - shuffled[i].time().0;
        if gap < 1_000_000_000 {
            shuffled.swap(i, i + 1);
        }
    }
    assert_ne!(shuffled, records);
    let f = d.join("shuffled.ndjson");
    std::fs::write(&f, ndjson(&shuffled)).unwrap();
    let out = explain(&["--from", p(&f)]);
    assert!(out.status.success(), "{}", stderr(&out));
    assert_eq!(findings(&out), want);
    let _ = std::fs::remove_dir_all(&d);
}

#[test]
fn oversized_and_non_utf8_lines_are_reported_bad_lines_not_the_end() {
    let d = dir("bad-lines");
    let records = on_host(&fixture("init_ignored"), "node-a", 0);
    let want = findings(&explain(&[
        "--from",
        p(&{
            let f = d.join("good.ndjson");
            std::fs::write(&f, ndjson(&records)).unwrap();
            f
        }),
    ]));
    let mut bytes = Vec::new();
    for (i, r) in records.iter().enumerate() {
        if i == 1 {
            // Line 2: a record with one byte that is not UTF-8 and a terminal escape.
            let mut line = serde_json::to_vec(r).unwrap();
            line.splice(10..10, b"\xff\x1b[2J".iter().copied());
            bytes.extend_from_slice(&line);
            bytes.push(b'\n');
        }
        if i == 2 {
            // Line 4: 3 MiB without a newline.
            bytes.extend(std::iter::repeat_n(b'x', 3 << 20));
            bytes.push(b'\n');
        }
        bytes.extend_from_slice(&serde_json::to_vec(r).unwrap());
        bytes.push(b'\n');
    }
    // Line 9: JSON whose error message would quote the input.
    bytes.extend_from_slice(b"{\"event\":\"\x1b]0;owned\x07\"}\n");
    let f = d.join("bad.ndjson");
    std::fs::write(&f, &bytes).unwrap();
    let out = explain(&["--from", p(&f)]);
    let err = stderr(&out);
    assert_eq!(
        out.status.code(),
        Some(1),
        "bad lines make a failed run: {err}"
    );
    assert!(err.contains("bad.ndjson:2: not UTF-8"), "{err}");
    assert!(
        err.contains("bad.ndjson:4: line longer than 1048576 bytes"),
        "{err}"
    );
    assert!(
        err.contains("bad.ndjson:9: not a signal-trace record"),
        "{err}"
    );
    assert!(err.contains("3 lines were not records"), "{err}");
    assert!(!err.contains('\x1b') && !err.contains('\x07'), "{err:?}");
    assert_eq!(findings(&out), want, "the other lines still count");
    let _ = std::fs::remove_dir_all(&d);
}

/// Peak resident memory of a process (VmHWM), in KiB.
fn peak_kib(pid: u32) -> u64 {
    let status = std::fs::read_to_string(format!("/proc/{pid}/status")).expect("status");
    status
        .lines()
        .find_map(|l| l.strip_prefix("VmHWM:"))
        .and_then(|v| v.trim().trim_end_matches("kB").trim().parse().ok())
        .expect("VmHWM")
}

#[test]
fn replaying_dev_zero_stays_small() {
    let mut child = Command::new(BIN)
        .args(["explain", "--from", "/dev/zero"])
        .stdout(Stdio::null())
        .stderr(Stdio::piped())
        .spawn()
        .unwrap();
    std::thread::sleep(Duration::from_secs(3));
    assert!(
        child.try_wait().unwrap().is_none(),
        "still reading /dev/zero after 3 s"
    );
    let peak = peak_kib(child.id());
    child.kill().unwrap();
    child.wait().unwrap();
    // One capped line and the read buffers: a few MiB, whatever was read.
    assert!(peak < 32 * 1024, "peak RSS {peak} KiB reading /dev/zero");
}

/// The README's jq line (after the `<!-- jq-per-node -->` marker), run as written.
#[test]
fn the_readme_jq_example_counts_signals_per_node() {
    let readme = std::fs::read_to_string(concat!(env!("CARGO_MANIFEST_DIR"), "/../README.md"))
        .expect("README");
    let after = readme
        .split("<!-- jq-per-node -->")
        .nth(1)
        .expect("the jq example's marker");
    let cmd = after
        .lines()
        .skip_while(|l| !l.starts_with("```"))
        .nth(1)
        .expect("the jq line")
        .to_string();
    assert!(cmd.starts_with("jq "), "{cmd}");
    let d = dir("jq");
    let a = on_host(&fixture("grace_exceeded"), "node-a", 0);
    let mut b = on_host(&fixture("signal_death"), "node-b", 0);
    b.extend(on_host(&fixture("coalesced"), "node-b", 0));
    std::fs::write(d.join("node-a.ndjson"), ndjson(&a)).unwrap();
    std::fs::write(d.join("node-b.ndjson"), ndjson(&b)).unwrap();
    let out = Command::new("sh")
        .arg("-c")
        .arg(&cmd)
        .current_dir(&d)
        .output()
        .expect("sh");
    assert!(
        out.status.success(),
        "jq (Debian's jq package) must be installed: {}",
        stderr(&out)
    );
    let got: Value = serde_json::from_slice(&out.stdout).expect("jq printed JSON");
    let mut want = serde_json::Map::new();
    for r in a.iter().chain(&b) {
        if let Record::Generate(g) = r {
            let per = want
                .entry(g.host.to_string())
                .or_insert_with(|| Value::Object(Default::default()));
            let n = per[g.signal.as_ref()].as_u64().unwrap_or(0);
            per[g.signal.as_ref()] = Value::from(n + 1);
        }
    }
    assert_eq!(got, Value::Object(want));
    assert!(got["node-a"]["SIGKILL"].as_u64() > Some(0), "{got}");
    let _ = std::fs::remove_dir_all(&d);
}
