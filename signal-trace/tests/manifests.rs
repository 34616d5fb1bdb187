//! The Kubernetes manifests under deploy/: valid against the Kubernetes API schemas (strict:
//! unknown fields are errors), and carrying what docs/deploy.md promises: host PID namespace,
//! exactly the documented capabilities, read-only host mounts, every node, the node's name.
//!
//! Needs python3 with `kubernetes-validate` (which brings PyYAML):
//!   python3 -m pip install kubernetes-validate==1.37.0
//! The tests fail, rather than skip, when it is missing.

use std::collections::BTreeSet;
use std::fs;
use std::path::{Path, PathBuf};
use std::process::Command;

use serde_json::{json, Value};

/// Kubernetes versions the manifests are validated against: the oldest supported one, and the
/// newest that the pinned kubernetes-validate ships.
const KUBERNETES_VERSIONS: &[&str] = &["1.30.0", "1.37.0"];
const INSTALL: &str = "python3 -m pip install kubernetes-validate==1.37.0";

const NAMESPACE: &str = "signal-trace";
const BASE: &str = "signal-trace.yaml";
const METRICS: &str = "signal-trace-metrics.yaml";
const METRICS_PORT: i64 = 9464;

/// Host paths the tracer reads, each mounted read-only at the same path in the container.
const HOST_MOUNTS: &[&str] = &[
    "/run/containerd/containerd.sock",
    "/sys/fs/cgroup",
    "/sys/kernel/btf",
    "/sys/kernel/tracing",
];

fn workspace() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR"))
        .parent()
        .expect("workspace root")
        .to_path_buf()
}

/// Every YAML file under deploy/, sorted.
fn manifest_files() -> Vec<PathBuf> {
    fn walk(dir: &Path, out: &mut Vec<PathBuf>) {
        let entries =
            fs::read_dir(dir).unwrap_or_else(|e| panic!("cannot read {}: {e}", dir.display()));
        for entry in entries {
            let path = entry.expect("directory entry").path();
            if path.is_dir() {
                walk(&path, out);
            } else if matches!(
                path.extension().and_then(|e| e.to_str()),
                Some("yaml" | "yml")
            ) {
                out.push(path);
            }
        }
    }
    let mut files = Vec::new();
    walk(&workspace().join("deploy"), &mut files);
    files.sort();
    assert!(!files.is_empty(), "no manifests under deploy/");
    files
}

fn python(args: &[&str]) -> std::process::Output {
    Command::new("python3")
        .args(args)
        .output()
        .unwrap_or_else(|e| panic!("cannot run python3 ({e}); install it, then {INSTALL}"))
}

fn require_validator() {
    let out = python(&["-m", "kubernetes_validate", "--version"]);
    assert!(
        out.status.success(),
        "kubernetes-validate is missing ({}); install it with `{INSTALL}`",
        String::from_utf8_lossy(&out.stderr).trim()
    );
}

/// Runs kubernetes-validate --strict on `files` for `version`; returns success and output.
fn validate(version: &str, files: &[PathBuf]) -> (bool, String) {
    let mut args = vec!["-m", "kubernetes_validate", "--strict", "-k", version];
    let paths: Vec<String> = files.iter().map(|f| f.display().to_string()).collect();
    args.extend(paths.iter().map(String::as_str));
    let out = python(&args);
    let text = format!(
        "{}{}",
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    );
    (out.status.success(), text)
}

/// The documents of a YAML file, as JSON (through PyYAML, which kubernetes-validate uses).
fn documents(path: &Path) -> Vec<Value> {
    const LOAD: &str = "import json, sys, yaml\n\
        with open(sys.argv[1]) as f:\n    \
            docs = [d for d in yaml.safe_load_all(f) if d is not None]\n\
        print(json.dumps(docs))";
    let file = path.display().to_string();
    let out = python(&["-c", LOAD, &file]);
    assert!(
        out.status.success(),
        "cannot parse {file}: {}",
        String::from_utf8_lossy(&out.stderr)
    );
    let docs: Value = serde_json::from_slice(&out.stdout).expect("json from python");
    docs.as_array().expect("a list of documents").clone()
}

fn load(name: &str) -> Vec<Value> {
    documents(&workspace().join("deploy").join(name))
}

fn find<'a>(docs: &'a [Value], kind: &str) -> &'a Value {
    let found: Vec<&Value> = docs.iter().filter(|d| d["kind"] == kind).collect();
    assert_eq!(found.len(), 1, "expected one {kind}, found {}", found.len());
    found[0]
}

fn strings(v: &Value) -> Vec<String> {
    v.as_array()
        .unwrap_or_else(|| panic!("not a list: {v}"))
        .iter()
        .map(|s| {
            s.as_str()
                .unwrap_or_else(|| panic!("not a string: {s}"))
                .to_owned()
        })
        .collect()
}

/// A Kubernetes quantity in base units (millicores for "m", bytes for the binary suffixes).
fn quantity(v: &Value) -> u64 {
    let s = v
        .as_str()
        .unwrap_or_else(|| panic!("quantity is not a string: {v}"));
    let (number, scale) = [("m", 1), ("Ki", 1 << 10), ("Mi", 1 << 20), ("Gi", 1 << 30)]
        .iter()
        .find_map(|(suffix, scale)| s.strip_suffix(suffix).map(|n| (n, *scale)))
        .unwrap_or((s, 1000));
    number.parse::<u64>().expect("an integer quantity") * scale
}

/// The capabilities docs/deploy.md lists as added: rows "| `NAME` | added | ... |".
fn documented_capabilities() -> BTreeSet<String> {
    let doc = fs::read_to_string(workspace().join("docs/deploy.md")).expect("read docs/deploy.md");
    let caps: BTreeSet<String> = doc
        .lines()
        .filter_map(|line| {
            let cells: Vec<&str> = line.split('|').map(str::trim).collect();
            match cells.as_slice() {
                ["", name, "added", ..] => Some(name.trim_matches('`').to_owned()),
                _ => None,
            }
        })
        .collect();
    assert!(
        !caps.is_empty(),
        "docs/deploy.md has no capability table rows marked \"added\""
    );
    caps
}

/// The long options `signal-trace --help` lists.
fn tracer_options() -> BTreeSet<String> {
    let out = Command::new(env!("CARGO_BIN_EXE_signal-trace"))
        .arg("--help")
        .output()
        .expect("run signal-trace --help");
    assert!(out.status.success());
    String::from_utf8_lossy(&out.stdout)
        .split(|c: char| c.is_whitespace() || c == ',' || c == '[' || c == ']')
        .filter(|w| w.starts_with("--"))
        .map(|w| w.split('=').next().unwrap_or(w).to_owned())
        .collect()
}

#[test]
fn manifests_are_valid_kubernetes_objects() {
    require_validator();
    let files = manifest_files();
    let resources: usize = files.iter().map(|f| documents(f).len()).sum();
    for version in KUBERNETES_VERSIONS {
        let (ok, text) = validate(version, &files);
        assert!(
            ok,
            "kubernetes-validate {version} rejected deploy/:\n{text}"
        );
        // Every document was checked (one line each), not skipped as unknown.
        let passed = text.matches(" passed for resource ").count();
        assert_eq!(
            passed, resources,
            "not every resource was validated:\n{text}"
        );
        assert!(!text.contains("WARN"), "warnings from {version}:\n{text}");
    }
}

#[test]
fn the_validator_rejects_unknown_fields() {
    require_validator();
    // The same DaemonSet with a misspelt field: strict validation must catch it.
    let base = fs::read_to_string(workspace().join("deploy").join(BASE)).expect("read manifest");
    let broken = base.replacen("readOnlyRootFilesystem:", "readOnlyRootFilesytem:", 1);
    assert_ne!(base, broken);
    let path = std::env::temp_dir().join(format!("manifests-broken-{}.yaml", std::process::id()));
    fs::write(&path, broken).expect("write manifest");
    let (ok, text) = validate(KUBERNETES_VERSIONS[0], std::slice::from_ref(&path));
    let _ = fs::remove_file(&path);
    assert!(!ok, "a misspelt field passed validation:\n{text}");
    assert!(text.contains("readOnlyRootFilesytem"), "{text}");
}

/// What both manifests promise about the tracer's pod.
fn check_tracer_objects(name: &str, docs: &[Value]) {
    for doc in docs {
        let kind = doc["kind"].as_str().unwrap_or_default();
        if kind != "Namespace" {
            assert_eq!(doc["metadata"]["namespace"], NAMESPACE, "{name}: {kind}");
        }
    }
    let ns = find(docs, "Namespace");
    assert_eq!(ns["metadata"]["name"], NAMESPACE);
    assert_eq!(
        ns["metadata"]["labels"]["pod-security.kubernetes.io/enforce"], "privileged",
        "{name}: hostPID and hostPath pods need the privileged Pod Security level"
    );
    let sa = find(docs, "ServiceAccount");
    assert_eq!(sa["automountServiceAccountToken"], false, "{name}");
    assert!(
        docs.iter()
            .all(|d| !matches!(d["kind"].as_str(), Some("Role" | "ClusterRole"))),
        "{name}: the tracer needs no API access"
    );

    let ds = find(docs, "DaemonSet");
    let labels = &ds["spec"]["selector"]["matchLabels"];
    assert_eq!(&ds["spec"]["template"]["metadata"]["labels"], labels);
    let strategy = &ds["spec"]["updateStrategy"];
    assert_eq!(strategy["type"], "RollingUpdate", "{name}");
    assert!(
        !strategy["rollingUpdate"]["maxUnavailable"].is_null(),
        "{name}: maxUnavailable"
    );
    assert_eq!(
        strategy["rollingUpdate"]["maxSurge"], 0,
        "{name}: two tracers on a node would report everything twice"
    );

    let pod = &ds["spec"]["template"]["spec"];
    assert_eq!(pod["hostPID"], true, "{name}: hostPID");
    for shared in ["hostNetwork", "hostIPC"] {
        assert!(
            pod[shared].is_null() || pod[shared] == false,
            "{name}: {shared}"
        );
    }
    assert_eq!(pod["serviceAccountName"], sa["metadata"]["name"], "{name}");
    assert_eq!(pod["automountServiceAccountToken"], false, "{name}");
    assert_eq!(pod["priorityClassName"], "system-node-critical", "{name}");
    let grace = pod["terminationGracePeriodSeconds"]
        .as_i64()
        .unwrap_or_else(|| panic!("{name}: terminationGracePeriodSeconds"));
    assert!((10..=120).contains(&grace), "{name}: grace period {grace}");
    assert_eq!(
        pod["tolerations"],
        json!([{"operator": "Exists"}]),
        "{name}: one toleration for every taint"
    );
    assert_eq!(
        pod["securityContext"]["seccompProfile"]["type"], "RuntimeDefault",
        "{name}"
    );

    let containers = pod["containers"].as_array().expect("containers");
    assert_eq!(containers.len(), 1, "{name}: one container");
    assert!(
        pod["initContainers"].is_null(),
        "{name}: no init containers"
    );
    let c = &containers[0];
    assert_eq!(
        c["image"],
        format!(
            "localhost/signal-trace/signal-trace:{}",
            env!("CARGO_PKG_VERSION")
        ),
        "{name}: the name scripts/build-image.sh gives the image"
    );
    assert_eq!(c["imagePullPolicy"], "IfNotPresent", "{name}");
    assert!(
        c["command"].is_null(),
        "{name}: the image's entrypoint runs"
    );
    let args = strings(&c["args"]);
    assert!(
        args.windows(2).any(|w| w == ["--format", "json"]),
        "{name}: NDJSON output: {args:?}"
    );
    // Every option the manifest passes is one the tracer has.
    let options = tracer_options();
    for arg in args.iter().filter(|a| a.starts_with("--")) {
        let flag = arg.split('=').next().unwrap_or(arg);
        assert!(
            options.contains(flag),
            "{name}: signal-trace has no option {flag}"
        );
    }

    let sc = &c["securityContext"];
    assert!(
        sc["seccompProfile"].is_null(),
        "{name}: the pod's seccomp profile applies"
    );
    assert_eq!(sc["runAsUser"], 0, "{name}");
    assert_eq!(sc["runAsNonRoot"], false, "{name}");
    assert_eq!(sc["privileged"], false, "{name}");
    assert_eq!(sc["allowPrivilegeEscalation"], false, "{name}");
    assert_eq!(sc["readOnlyRootFilesystem"], true, "{name}");
    assert_eq!(strings(&sc["capabilities"]["drop"]), ["ALL"], "{name}");
    let added: BTreeSet<String> = strings(&sc["capabilities"]["add"]).into_iter().collect();
    assert_eq!(
        added,
        documented_capabilities(),
        "{name}: the added capabilities are the ones docs/deploy.md explains"
    );
    assert!(
        added.contains("BPF") && added.contains("PERFMON"),
        "{name}: {added:?}"
    );

    let env = c["env"].as_array().expect("env");
    let node = env
        .iter()
        .find(|e| e["name"] == "NODE_NAME")
        .unwrap_or_else(|| panic!("{name}: no NODE_NAME"));
    assert_eq!(
        node["valueFrom"]["fieldRef"]["fieldPath"], "spec.nodeName",
        "{name}"
    );

    let res = &c["resources"];
    for r in ["cpu", "memory"] {
        let (req, lim) = (quantity(&res["requests"][r]), quantity(&res["limits"][r]));
        assert!(
            req > 0 && req <= lim,
            "{name}: {r} request {req} limit {lim}"
        );
    }
    // The tracer's resident memory plus twice its default 4 MiB ring fit in the request.
    assert!(quantity(&res["requests"]["memory"]) >= 64 << 20, "{name}");

    let mounts = c["volumeMounts"].as_array().expect("volumeMounts");
    let volumes = pod["volumes"].as_array().expect("volumes");
    assert_eq!(
        mounts.len(),
        volumes.len(),
        "{name}: every volume is mounted"
    );
    let mut paths = BTreeSet::new();
    for m in mounts {
        let path = m["mountPath"].as_str().expect("mountPath");
        assert_eq!(m["readOnly"], true, "{name}: {path} is read-only");
        let volume = volumes
            .iter()
            .find(|v| v["name"] == m["name"])
            .unwrap_or_else(|| panic!("{name}: no volume for {path}"));
        assert_eq!(
            volume["hostPath"]["path"], path,
            "{name}: {path} is the host's, at the same path"
        );
        paths.insert(path.to_owned());
    }
    let want: BTreeSet<String> = HOST_MOUNTS.iter().map(|p| p.to_string()).collect();
    assert_eq!(paths, want, "{name}: host mounts");
}

#[test]
fn the_daemonset_keeps_its_promises() {
    let docs = load(BASE);
    check_tracer_objects(BASE, &docs);
    let kinds: Vec<&str> = docs.iter().filter_map(|d| d["kind"].as_str()).collect();
    assert!(!kinds.contains(&"Service"), "{BASE}: no Service: {kinds:?}");
    let c = &find(&docs, "DaemonSet")["spec"]["template"]["spec"]["containers"][0];
    assert!(c["ports"].is_null(), "{BASE}: metrics are off");
    assert!(
        !strings(&c["args"])
            .iter()
            .any(|a| a.starts_with("--metrics-addr")),
        "{BASE}: metrics are off"
    );
}

/// The metrics manifest without its metrics: annotations, argument, port, Service and
/// NetworkPolicy.
fn without_metrics(docs: &[Value]) -> Vec<Value> {
    let mut docs: Vec<Value> = docs
        .iter()
        .filter(|d| d["kind"] != "Service" && d["kind"] != "NetworkPolicy")
        .cloned()
        .collect();
    for doc in docs.iter_mut().filter(|d| d["kind"] == "DaemonSet") {
        let template = &mut doc["spec"]["template"];
        template["metadata"]
            .as_object_mut()
            .expect("template metadata")
            .remove("annotations");
        let c = &mut template["spec"]["containers"][0];
        let obj = c.as_object_mut().expect("container");
        obj.remove("ports");
        let args = obj
            .get_mut("args")
            .and_then(Value::as_array_mut)
            .expect("args");
        args.retain(|a| !a.as_str().unwrap_or_default().starts_with("--metrics-addr"));
    }
    docs
}

#[test]
fn the_metrics_variant_is_the_daemonset_plus_metrics() {
    let docs = load(METRICS);
    check_tracer_objects(METRICS, &docs);
    let pretty = |docs: Vec<Value>| -> Vec<String> {
        docs.iter()
            .map(|d| serde_json::to_string_pretty(d).expect("json"))
            .collect()
    };
    assert_eq!(
        pretty(without_metrics(&docs)),
        pretty(load(BASE)),
        "{METRICS} differs from {BASE} in more than its metrics"
    );

    let ds = find(&docs, "DaemonSet");
    let template = &ds["spec"]["template"];
    let c = &template["spec"]["containers"][0];
    let addr: Vec<String> = strings(&c["args"])
        .into_iter()
        .filter_map(|a| a.strip_prefix("--metrics-addr=").map(str::to_owned))
        .collect();
    assert_eq!(
        addr,
        [format!("0.0.0.0:{METRICS_PORT}")],
        "{METRICS}: numeric, on every address of the pod"
    );
    let ports = c["ports"].as_array().expect("ports");
    assert_eq!(ports.len(), 1);
    assert_eq!(ports[0]["name"], "metrics");
    assert_eq!(ports[0]["containerPort"], METRICS_PORT);
    let annotations = &template["metadata"]["annotations"];
    assert_eq!(annotations["prometheus.io/scrape"], "true");
    assert_eq!(annotations["prometheus.io/port"], METRICS_PORT.to_string());
    assert_eq!(annotations["prometheus.io/path"], "/metrics");

    let svc = find(&docs, "Service");
    assert_eq!(svc["spec"]["clusterIP"], "None", "headless");
    assert_eq!(
        svc["spec"]["selector"], ds["spec"]["selector"]["matchLabels"],
        "the Service selects the tracer's pods"
    );
    let sp = &svc["spec"]["ports"][0];
    assert_eq!(sp["port"], METRICS_PORT);
    assert_eq!(sp["targetPort"], "metrics");
    assert!(
        svc["metadata"]["annotations"].is_null(),
        "scrape annotations on the pods only, or every tracer is scraped twice"
    );

    let np = find(&docs, "NetworkPolicy");
    assert_eq!(
        np["spec"]["podSelector"]["matchLabels"], ds["spec"]["selector"]["matchLabels"],
        "the NetworkPolicy covers the tracer's pods"
    );
    assert_eq!(strings(&np["spec"]["policyTypes"]), ["Ingress"]);
    let rules = np["spec"]["ingress"].as_array().expect("ingress rules");
    assert_eq!(rules.len(), 1, "one rule: Prometheus to the metrics port");
    assert_eq!(rules[0]["ports"][0]["port"], "metrics");
    assert!(
        rules[0]["from"]
            .as_array()
            .is_some_and(|f| !f.is_empty() && f.iter().all(|p| p.is_object())),
        "from named peers only, never everyone"
    );
}
