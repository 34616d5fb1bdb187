//! The container cache against a real containerd: labelled containers made with `ctr run`,
//! resolved by the inode of their cgroup v2 directory.
//!
//! Needs root; talks to the tests' own containerd (common::ctr::SOCKET), which
//! scripts/containerd-up.sh starts with the busybox image imported (the tests run it when that
//! containerd does not answer). These tests fail, rather than skip, when that is not so.

mod common;

use std::fs;
use std::os::unix::fs::MetadataExt;
use std::path::Path;
use std::time::{Duration, Instant};

use common::ctr::*;
use signal_trace::event::record::Container;
use signal_trace::workload::containerd::{ContainerSource, Containerd, DEFAULT_TIMEOUT};
use signal_trace::workload::containers::{CacheConfig, CgroupMount, ContainerCache, Selector};

fn cache_for(socket: &Path, config: CacheConfig) -> ContainerCache {
    let client = Containerd::new(socket, DEFAULT_TIMEOUT).expect("start client");
    ContainerCache::new(
        Box::new(CgroupMount::new(cgroup_root())),
        vec![Box::new(client)],
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

    let mut cache = cache_for(Path::new(SOCKET), CacheConfig::default());
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
        image: Some(IMAGE.to_owned()),
        ..Container::default()
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
    let mut client = Containerd::new(SOCKET, DEFAULT_TIMEOUT).expect("start client");
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
    let mut fresh = cache_for(Path::new(SOCKET), CacheConfig::default());
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

    let mut cache = cache_for(Path::new(SOCKET), CacheConfig::default());
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
            image: Some(IMAGE.to_owned()),
            ..Container::default()
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

    // containerd appears at that path: the next refresh after the backoff asks again (without
    // waiting: the last query failed), and the answer fills in the pod when it comes.
    std::os::unix::fs::symlink(SOCKET, &socket).expect("link socket");
    std::thread::sleep(Duration::from_millis(150));
    let mut updated = cache.refresh().expect("rescan").updated;
    assert!(
        cache.wait_for_runtime(DEFAULT_TIMEOUT * 2),
        "the runtime answered"
    );
    updated.extend(cache.take_updated());
    let _ = fs::remove_dir_all(&dir);
    assert!(updated.contains(&id), "{updated:?}");
    assert_eq!(
        cache.resolve(id).and_then(|c| c.pod),
        Some(pod.clone()),
        "metadata after the runtime came back"
    );
    assert_eq!(cache.failures(), 1);
    assert_eq!(cache.matching_cgroups(&Selector::Pod(pod)), vec![id]);
}
