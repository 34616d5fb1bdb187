//! The container cache against a real containerd: labelled containers made with `ctr run`,
//! resolved by the inode of their cgroup v2 directory.
//!
//! Needs root and a containerd answering on its default socket with the busybox image
//! imported (scripts/containerd-up.sh does both). These tests fail, rather than skip, when
//! that is not so.

use std::fs;
use std::io::Read;
use std::os::unix::fs::MetadataExt;
use std::path::{Path, PathBuf};
use std::process::{Command, Output};
use std::time::{Duration, Instant};

use signal_trace::cgroup;
use signal_trace::containers::{CacheConfig, CgroupMount, ContainerCache, Selector};
use signal_trace::record::Container;
use signal_trace::runtime::{ContainerSource, Containerd, DEFAULT_SOCKET, DEFAULT_TIMEOUT};

const IMAGE: &str = "localhost/signal-trace/busybox:latest";
const NAMESPACE: &str = "default";

/// Runs `ctr` in the test namespace; panics with its output when it fails.
fn ctr(args: &[&str]) -> Output {
    let out = try_ctr(args);
    assert!(
        out.status.success(),
        "ctr {} failed: {}",
        args.join(" "),
        String::from_utf8_lossy(&out.stderr)
    );
    out
}

fn try_ctr(args: &[&str]) -> Output {
    Command::new("ctr")
        .args(["--connect-timeout", "1s", "-n", NAMESPACE])
        .args(args)
        .output()
        .expect("run ctr (apt-get install containerd)")
}

/// `n` random bytes as lowercase hex.
fn random_hex(n: usize) -> String {
    let mut bytes = vec![0u8; n];
    fs::File::open("/dev/urandom")
        .and_then(|mut f| f.read_exact(&mut bytes))
        .expect("read /dev/urandom");
    bytes.iter().map(|b| format!("{b:02x}")).collect()
}

fn random_uuid() -> String {
    fs::read_to_string("/proc/sys/kernel/random/uuid")
        .expect("read a uuid")
        .trim()
        .to_owned()
}

/// The cgroup v2 mount point.
fn cgroup_root() -> PathBuf {
    let mountinfo = fs::read_to_string("/proc/self/mountinfo").expect("read mountinfo");
    cgroup::cgroup2_mount(&mountinfo).expect("a cgroup2 mount")
}

/// Fails the test unless it runs as root against a containerd that answers.
fn require_containerd() {
    // SAFETY: geteuid has no preconditions.
    let euid = unsafe { libc::geteuid() };
    assert_eq!(euid, 0, "the runtime tests drive containerd and need root");
    let client = Containerd::new(DEFAULT_SOCKET, DEFAULT_TIMEOUT).expect("start client");
    if let Err(err) = client.list(None) {
        panic!("{err}; start it with scripts/containerd-up.sh");
    }
    let images = ctr(&["image", "ls", "-q"]);
    assert!(
        String::from_utf8_lossy(&images.stdout)
            .lines()
            .any(|l| l == IMAGE),
        "image {IMAGE} is missing; import it with scripts/containerd-up.sh"
    );
}

/// Mount points of every cgroup hierarchy, v1 and v2.
fn cgroup_mounts() -> Vec<PathBuf> {
    let mountinfo = fs::read_to_string("/proc/self/mountinfo").expect("read mountinfo");
    mountinfo
        .lines()
        .filter_map(|line| {
            let fields: Vec<&str> = line.split_ascii_whitespace().collect();
            let sep = fields.iter().position(|f| *f == "-")?;
            let fstype = *fields.get(sep + 1)?;
            let mount = fields.get(4)?;
            matches!(fstype, "cgroup" | "cgroup2").then(|| PathBuf::from(mount))
        })
        .collect()
}

/// A running `ctr run` container, removed with its cgroup directories on drop.
struct TestContainer {
    id: String,
    /// Its cgroup path, relative to each hierarchy's root (runc creates it in all of them).
    path: PathBuf,
    /// Its cgroup directory under the cgroup2 mount.
    dir: PathBuf,
}

impl TestContainer {
    /// Starts `sleep 1000` in a container with `labels`, in cgroup `cgroup_path` (or the
    /// default `/<namespace>/<id>` when `None`).
    fn start(labels: &[(&str, &str)], cgroup_path: Option<&str>) -> TestContainer {
        let id = random_hex(32);
        let path = cgroup_path
            .map(str::to_owned)
            .unwrap_or_else(|| format!("/{NAMESPACE}/{id}"))
            .replace("{id}", &id);
        let rel = PathBuf::from(path.trim_start_matches('/'));
        let dir = cgroup_root().join(&rel);
        let label_args: Vec<String> = labels.iter().map(|(k, v)| format!("{k}={v}")).collect();
        let mut args = vec!["run", "-d", "--cgroup", &path];
        for label in &label_args {
            args.extend(["--label", label]);
        }
        args.extend([IMAGE, &id, "sh", "-c", "sleep 1000"]);
        // Created before the run so that a half-made container is cleaned up too.
        let container = TestContainer {
            id: id.clone(),
            path: rel,
            dir,
        };
        ctr(&args);
        assert!(
            container.dir.is_dir(),
            "no cgroup directory {}",
            container.dir.display()
        );
        container
    }

    /// The container's cgroup id: the inode of its cgroup v2 directory.
    fn cgroup_id(&self) -> u64 {
        fs::metadata(&self.dir).expect("stat cgroup dir").ino()
    }

    /// Kills and deletes the container and removes its (empty) cgroup directories.
    fn remove(&self) {
        let _ = try_ctr(&["task", "kill", "-s", "SIGKILL", &self.id]);
        let deadline = Instant::now() + Duration::from_secs(10);
        while !try_ctr(&["task", "delete", "-f", &self.id])
            .status
            .success()
            && try_ctr(&["task", "ls", "-q"])
                .stdout
                .split(|b| *b == b'\n')
                .any(|l| l == self.id.as_bytes())
            && Instant::now() < deadline
        {
            std::thread::sleep(Duration::from_millis(50));
        }
        let _ = try_ctr(&["container", "delete", &self.id]);
        // runc leaves the parent directories behind, in every hierarchy; shared parents that
        // are still in use stay.
        for mount in cgroup_mounts() {
            for dir in self.path.ancestors().filter(|p| !p.as_os_str().is_empty()) {
                let _ = fs::remove_dir(mount.join(dir));
            }
        }
    }
}

impl Drop for TestContainer {
    fn drop(&mut self) {
        self.remove();
    }
}

fn cache_for(socket: &Path, config: CacheConfig) -> ContainerCache {
    let client = Containerd::new(socket, DEFAULT_TIMEOUT).expect("start client");
    ContainerCache::new(
        Box::new(CgroupMount::new(cgroup_root())),
        Some(Box::new(client)),
        config,
    )
}

#[test]
fn labelled_container_through_its_life() {
    require_containerd();
    let tag = random_hex(4);
    let pod = format!("web-{tag}");
    let namespace = format!("shop-{tag}");
    let name = format!("app-{tag}");
    let uid = random_uuid();

    let mut cache = cache_for(Path::new(DEFAULT_SOCKET), CacheConfig::default());
    cache.refresh().expect("first scan");

    // A container that starts after the cache was filled is resolved on first sight.
    let container = TestContainer::start(
        &[
            ("io.kubernetes.pod.name", &pod),
            ("io.kubernetes.pod.namespace", &namespace),
            ("io.kubernetes.container.name", &name),
        ],
        Some(&format!("/kubepods/besteffort/pod{uid}/{{id}}")),
    );
    let id = container.cgroup_id();
    let want = Container {
        id: container.id.clone(),
        runtime: "containerd".to_owned(),
        name: Some(name.clone()),
        pod: Some(pod.clone()),
        namespace: Some(namespace.clone()),
    };
    let started = Instant::now();
    let got = cache.resolve(id);
    let miss = started.elapsed();
    assert_eq!(got.as_ref(), Some(&want));
    let started = Instant::now();
    assert_eq!(cache.resolve(id).as_ref(), Some(&want));
    let hit = started.elapsed();
    eprintln!(
        "resolve: first sight {miss:?} (rescan of {} cgroups and one runtime query), cached {hit:?}",
        cache.len()
    );
    assert_eq!(
        cache.path(id),
        Some(format!("/kubepods/besteffort/pod{uid}/{}", container.id).as_str())
    );
    assert_eq!(cache.failures(), 0);

    // Dead and gone: SIGKILL, task and container deleted, cgroup directories removed.
    container.remove();
    assert!(!container.dir.exists(), "cgroup directory left behind");
    let mut client = Containerd::new(DEFAULT_SOCKET, DEFAULT_TIMEOUT).expect("start client");
    assert!(
        client
            .lookup(std::slice::from_ref(&container.id))
            .expect("query containerd")
            .is_empty(),
        "containerd still knows the container"
    );
    let changes = cache.refresh().expect("rescan");
    assert!(!changes.purged.contains(&id));
    // Retained: its last events are still attributed.
    assert_eq!(cache.resolve(id).as_ref(), Some(&want));
    // A cache that never saw it cannot tell.
    let mut fresh = cache_for(Path::new(DEFAULT_SOCKET), CacheConfig::default());
    assert_eq!(fresh.resolve(id), None);

    // Filters find it by id prefix, name, pod and namespace, and nothing else with them.
    for selector in [
        Selector::Container(container.id[..12].to_owned()),
        Selector::Container(container.id.clone()),
        Selector::Container(name.clone()),
        Selector::Pod(pod.clone()),
        Selector::Namespace(namespace.clone()),
    ] {
        assert_eq!(cache.matching_cgroups(&selector), vec![id], "{selector:?}");
    }
    assert!(cache
        .matching_cgroups(&Selector::Pod(format!("{pod}-other")))
        .is_empty());
    assert_eq!(cache.failures(), 0);
}

#[test]
fn plain_containerd_paths_need_the_runtimes_word() {
    require_containerd();
    let name = format!("job-{}", random_hex(4));
    // ctr's own cgroup layout, /<namespace>/<id>, and nerdctl's name label.
    let container = TestContainer::start(&[("nerdctl/name", &name)], None);
    // A host cgroup with the same shape.
    let root = cgroup_root();
    let lookalike_parent = root.join(format!("process-api-{}", random_hex(4)));
    let lookalike = lookalike_parent.join(random_hex(16));
    fs::create_dir_all(&lookalike).expect("create lookalike cgroup");
    let lookalike_id = fs::metadata(&lookalike).expect("stat").ino();

    let mut cache = cache_for(Path::new(DEFAULT_SOCKET), CacheConfig::default());
    let resolved = cache.resolve(container.cgroup_id());
    let host = cache.resolve(lookalike_id);
    let _ = fs::remove_dir(&lookalike);
    let _ = fs::remove_dir(&lookalike_parent);

    assert_eq!(
        resolved,
        Some(Container {
            id: container.id.clone(),
            runtime: "containerd".to_owned(),
            name: Some(name.clone()),
            pod: None,
            namespace: None,
        })
    );
    assert_eq!(host, None, "a host cgroup was taken for a container");
    assert_eq!(
        cache.matching_cgroups(&Selector::Container(name)),
        vec![container.cgroup_id()]
    );
}

#[test]
fn runtime_unreachable_then_back() {
    require_containerd();
    let pod = format!("db-{}", random_hex(4));
    let container = TestContainer::start(
        &[("io.kubernetes.pod.name", &pod)],
        Some(&format!("/kubepods/pod{}/{{id}}", random_uuid())),
    );
    let id = container.cgroup_id();

    // The client's socket path leads nowhere at first.
    let dir = std::env::temp_dir().join(format!("runtime-live-{}", random_hex(4)));
    fs::create_dir_all(&dir).expect("create dir");
    let socket = dir.join("containerd.sock");
    let config = CacheConfig {
        retry_min: Duration::from_millis(100),
        ..CacheConfig::default()
    };
    let mut cache = cache_for(&socket, config);

    let started = Instant::now();
    let bare = cache.resolve(id);
    let took = started.elapsed();
    assert_eq!(
        bare,
        Some(Container {
            id: container.id.clone(),
            runtime: "kubernetes".to_owned(),
            ..Container::default()
        }),
        "ids come from the cgroup path while the runtime is away"
    );
    assert!(took < DEFAULT_TIMEOUT, "resolve stalled for {took:?}");
    assert_eq!(cache.failures(), 1);
    let why = cache.last_failure().unwrap_or_default();
    assert!(why.contains(&socket.display().to_string()), "{why}");

    // containerd appears at that path: the next refresh after the backoff fills in the pod.
    std::os::unix::fs::symlink(DEFAULT_SOCKET, &socket).expect("link socket");
    std::thread::sleep(Duration::from_millis(150));
    let changes = cache.refresh().expect("rescan");
    let _ = fs::remove_dir_all(&dir);
    assert!(changes.updated.contains(&id), "{changes:?}");
    assert_eq!(
        cache.resolve(id).and_then(|c| c.pod),
        Some(pod.clone()),
        "metadata after the runtime came back"
    );
    assert_eq!(cache.failures(), 1);
    assert_eq!(cache.matching_cgroups(&Selector::Pod(pod)), vec![id]);
}
