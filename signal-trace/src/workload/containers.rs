//! Which container a cgroup id belongs to, with pod metadata from the container runtime.
//!
//! Signals carry cgroup v2 ids (the inode numbers of cgroup directories). [`ContainerCache`]
//! maps them to [`Container`] records: the cgroup path (found by scanning the cgroup2 mount)
//! gives the container id and the runtime's name for it ([`crate::workload::cgroup::parse_cgroup_path`]);
//! the runtime ([`crate::workload::containerd`]) adds the Kubernetes pod, namespace and container name from
//! its labels.
//!
//! - Each runtime client is asked only about the containers whose path it serves
//!   ([`ContainerSource::serves`]). A layout that does not name its runtime (the kubelet's
//!   cgroupfs driver) is served by more than one (containerd's API and a CRI runtime): such a
//!   container is asked of each until one knows it, and of none once all have said they do not.
//! - A cgroup seen for the first time is resolved on the spot: the cgroup tree is rescanned and
//!   the runtime asked, so the first event of a new container already carries its metadata.
//!   Each runtime is asked on a thread of its own ([`Background`]): the caller (the trace loop)
//!   waits for a fresh query's answer at most [`CacheConfig::answer_wait`], and only while that
//!   runtime's last query succeeded; otherwise the container is reported by id at once and its
//!   names are filled in when the answer comes. A runtime that accepts and never answers thus
//!   costs the event path one such wait, not one per query.
//!   Cgroup ids are never reused, so an id that a rescan did not find is remembered as unknown
//!   and not looked for again; after such a fruitless rescan, other unknown ids wait for
//!   [`CacheConfig::rescan_interval`], which bounds the cost of a storm of them.
//! - Entries outlive their cgroups by [`CacheConfig::ttl`], so the last events of a container
//!   that just died (SIGKILL, OOM) are still attributed.
//! - When the runtime cannot be reached, containers are still reported by id (from the path)
//!   and their metadata is fetched by a later [`ContainerCache::refresh`] once the runtime is
//!   back; failed queries are counted ([`ContainerCache::failures`]) and retried with
//!   exponential backoff so a runtime that is down costs at most one bounded query per
//!   backoff period.
//! - [`ContainerCache::matching_cgroups`] translates `--container`, `--pod` and `--namespace`
//!   selectors to cgroup ids; [`ContainerCache::refresh`] reports the cgroups that appeared or
//!   changed so that such filters can follow new containers.
//!
//! The plain containerd layout (`/<namespace>/<id>`) also matches host cgroups that merely look
//! like it (e.g. `/process_api/<32 hex digits>`). While the runtime answers, such a cgroup is
//! only taken for a container when the runtime knows its id; while it does not, the id is
//! reported as a containerd container, as the path parser says.

use std::collections::{HashMap, HashSet};
use std::io;
use std::path::PathBuf;
use std::sync::mpsc;
use std::time::{Duration, Instant};

use crate::event::record::{Compose, Container, Label};
use crate::workload::cgroup::{self, ContainerRef, Runtime};
use crate::workload::containerd::{ContainerSource, RuntimeContainer, RuntimeError};
use crate::workload::docker::{LABEL_COMPOSE_PROJECT, LABEL_COMPOSE_SERVICE};
use crate::workload::unit;

/// Label with the Kubernetes pod name (set by the CRI plugin).
pub const LABEL_POD_NAME: &str = "io.kubernetes.pod.name";
/// Label with the Kubernetes namespace of the pod.
pub const LABEL_POD_NAMESPACE: &str = "io.kubernetes.pod.namespace";
/// Label with the container's name in its pod spec.
pub const LABEL_CONTAINER_NAME: &str = "io.kubernetes.container.name";
/// Label with the container name nerdctl was given (`nerdctl run --name`).
pub const LABEL_NERDCTL_NAME: &str = "nerdctl/name";

/// Why the cache could not be refreshed.
#[derive(Debug, thiserror::Error)]
pub enum ContainersError {
    /// The cgroup hierarchy could not be read.
    #[error("cannot scan cgroups under {root}: {source}")]
    Scan {
        /// The directory scanned.
        root: PathBuf,
        /// The error reading it.
        #[source]
        source: io::Error,
    },
}

/// A source of time, replaceable in tests.
pub trait Clock: Send {
    /// The current instant.
    fn now(&self) -> Instant;
}

/// The monotonic system clock.
#[derive(Clone, Copy, Debug, Default)]
pub struct SystemClock;

impl Clock for SystemClock {
    fn now(&self) -> Instant {
        Instant::now()
    }
}

/// Something that lists the cgroups that currently exist, by id.
pub trait CgroupSource: Send {
    /// Every cgroup id with its path relative to the hierarchy root (starting with `/`).
    fn scan(&self) -> Result<HashMap<u64, String>, ContainersError>;
}

/// The cgroup v2 hierarchy mounted at a directory (see [`cgroup::cgroup2_mount`]).
#[derive(Clone, Debug)]
pub struct CgroupMount {
    root: PathBuf,
}

impl CgroupMount {
    /// The hierarchy mounted at `root`, e.g. `/sys/fs/cgroup` or `/sys/fs/cgroup/unified`.
    pub fn new(root: impl Into<PathBuf>) -> CgroupMount {
        CgroupMount { root: root.into() }
    }
}

impl CgroupSource for CgroupMount {
    fn scan(&self) -> Result<HashMap<u64, String>, ContainersError> {
        cgroup::scan_cgroup_ids(&self.root).map_err(|source| ContainersError::Scan {
            root: self.root.clone(),
            source,
        })
    }
}

/// Timing of the cache.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct CacheConfig {
    /// How long an entry is kept after its cgroup disappeared.
    pub ttl: Duration,
    /// After a scan that did not find the unknown id it was looking for, how long other
    /// unknown ids are answered with `None` instead of triggering another scan.
    pub rescan_interval: Duration,
    /// Wait before querying the runtime again after its first failure; doubled after each
    /// further failure.
    pub retry_min: Duration,
    /// Upper bound of that wait.
    pub retry_max: Duration,
    /// How long a lookup waits for the answer to the query it just sent, while that runtime's
    /// last query succeeded (never otherwise); the answer is applied whenever it comes.
    pub answer_wait: Duration,
}

impl Default for CacheConfig {
    fn default() -> CacheConfig {
        CacheConfig {
            ttl: Duration::from_secs(300),
            rescan_interval: Duration::from_millis(250),
            retry_min: Duration::from_secs(1),
            retry_max: Duration::from_secs(30),
            answer_wait: Duration::from_millis(200),
        }
    }
}

/// What a filter option selects.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Selector {
    /// `--container`: a full container id, an id prefix, or a container name.
    Container(String),
    /// `--pod`: a Kubernetes pod name.
    Pod(String),
    /// `--namespace`: a Kubernetes namespace.
    Namespace(String),
}

impl Selector {
    /// True when `container` is selected. An empty selector value selects nothing.
    pub fn matches(&self, container: &Container) -> bool {
        match self {
            Selector::Container(want) => {
                !want.is_empty()
                    && (container
                        .id
                        .get(..want.len())
                        .is_some_and(|prefix| prefix.eq_ignore_ascii_case(want))
                        || container.name.as_deref() == Some(want.as_str()))
            }
            Selector::Pod(want) => container.pod.as_deref() == Some(want.as_str()),
            Selector::Namespace(want) => container.namespace.as_deref() == Some(want.as_str()),
        }
    }
}

/// Annotation with the pod's terminationGracePeriodSeconds (set by the kubelet on each container).
pub const ANNOTATION_GRACE_PERIOD: &str = "io.kubernetes.pod.terminationGracePeriod";

/// The record for a container, from its cgroup path and, when the runtime knows it, the
/// runtime's view of it.
///
/// Without runtime metadata only the id and the runtime named by the path are known. With it,
/// the runtime is the one that answered; the Kubernetes labels give pod, namespace and container
/// name, the runtime's own name (Docker, podman) or nerdctl's label the name outside
/// Kubernetes; Compose's labels the project and service; the kubelet's annotation the grace
/// period. Empty values count as absent.
pub fn container_record(cref: &ContainerRef, meta: Option<&RuntimeContainer>) -> Container {
    let Some(meta) = meta else {
        return Container {
            id: cref.id.clone(),
            runtime: cref.runtime.as_str().to_owned(),
            ..Container::default()
        };
    };
    let label = |key: &str| {
        meta.labels
            .get(key)
            .filter(|value| !value.is_empty())
            .cloned()
    };
    let compose = match (label(LABEL_COMPOSE_PROJECT), label(LABEL_COMPOSE_SERVICE)) {
        (Some(project), Some(service)) => Some(Compose { project, service }),
        _ => None,
    };
    Container {
        id: cref.id.clone(),
        runtime: meta.runtime.as_str().to_owned(),
        name: label(LABEL_CONTAINER_NAME)
            .or_else(|| meta.name.clone().filter(|n| !n.is_empty()))
            .or_else(|| label(LABEL_NERDCTL_NAME)),
        pod: label(LABEL_POD_NAME),
        namespace: label(LABEL_POD_NAMESPACE),
        image: Some(meta.image.clone()).filter(|i| !i.is_empty()),
        compose,
        grace_period_s: meta
            .annotations
            .get(ANNOTATION_GRACE_PERIOD)
            .and_then(|v| v.trim().parse().ok()),
    }
}

/// True when the container was recognised only by the plain containerd layout
/// (`/<namespace>/<id>`), which host cgroups can imitate.
fn is_plain_containerd(path: &str, cref: &ContainerRef) -> bool {
    cref.runtime == Runtime::Containerd && path.split('/').any(|comp| comp == cref.id)
}

/// True when `entry` still waits for what `source` knows of its container: it serves the
/// container's runtime and has not said that it does not know it.
fn waits_for(entry: &Entry, source: &Source) -> bool {
    entry.pending
        && entry.unknown_to & source.bit == 0
        && entry
            .cref
            .as_ref()
            .is_some_and(|c| source.serves(c.runtime))
}

/// Every runtime a cgroup path can name.
const RUNTIMES: [Runtime; 5] = [
    Runtime::Docker,
    Runtime::Containerd,
    Runtime::CriO,
    Runtime::Podman,
    Runtime::Kubernetes,
];

/// A runtime client, asked on its own thread, and its failure bookkeeping.
struct Source {
    /// The runtimes whose containers it may know ([`ContainerSource::serves`]).
    serves: Vec<Runtime>,
    /// This source's bit in [`Entry::unknown_to`].
    bit: u64,
    background: Background,
    /// Consecutive failures, for the backoff.
    failure_streak: u32,
    /// No query before this instant.
    retry_at: Option<Instant>,
}

impl Source {
    fn serves(&self, runtime: Runtime) -> bool {
        self.serves.contains(&runtime)
    }
}

/// One runtime answer: the ids asked and what the runtime said.
type Answer = (Vec<String>, Result<Vec<RuntimeContainer>, RuntimeError>);

/// A runtime client on a thread of its own, so that a slow or hung runtime never holds up the
/// caller: one query at a time, each bounded by the client's own timeout.
pub struct Background {
    jobs: mpsc::Sender<Vec<String>>,
    answers: mpsc::Receiver<Answer>,
    /// The ids of the query in flight.
    in_flight: Option<Vec<String>>,
}

impl Background {
    /// Starts the thread that runs `client`'s lookups.
    pub fn start(mut client: Box<dyn ContainerSource>) -> io::Result<Background> {
        let (jobs, queue) = mpsc::channel::<Vec<String>>();
        let (reply, answers) = mpsc::channel::<Answer>();
        std::thread::Builder::new()
            .name("runtime-lookup".to_owned())
            .spawn(move || {
                while let Ok(ids) = queue.recv() {
                    let result = client.lookup(&ids);
                    if reply.send((ids, result)).is_err() {
                        break;
                    }
                }
            })?;
        Ok(Background {
            jobs,
            answers,
            in_flight: None,
        })
    }

    fn submit(&mut self, ids: Vec<String>) -> bool {
        if self.jobs.send(ids.clone()).is_err() {
            return false;
        }
        self.in_flight = Some(ids);
        true
    }

    /// The answer to the query in flight, waiting at most `wait` for it.
    fn answer(&mut self, wait: Duration) -> Option<Answer> {
        self.in_flight.as_ref()?;
        let got = if wait.is_zero() {
            self.answers.try_recv().ok()
        } else {
            self.answers.recv_timeout(wait).ok()
        };
        if got.is_some() {
            self.in_flight = None;
        }
        got
    }
}

/// What the cache knows about one cgroup.
#[derive(Clone, Debug)]
struct Entry {
    /// The cgroup's path relative to the hierarchy root.
    path: String,
    /// The container parsed from the path; `None` for host cgroups.
    cref: Option<ContainerRef>,
    /// The systemd unit the path names.
    unit: Option<Label>,
    /// What [`ContainerCache::resolve`] answers.
    container: Option<Container>,
    /// The runtime still has to be asked about this container: until one of the sources
    /// serving its runtime knows it, or all of them have said they do not.
    pending: bool,
    /// The sources (their [`Source::bit`]) that answered without knowing this container.
    unknown_to: u64,
    /// When a scan first missed the cgroup.
    gone_since: Option<Instant>,
}

/// Changes found by [`ContainerCache::refresh`].
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct Changes {
    /// Cgroups that belong (or belonged until now) to a container and that are new to the
    /// cache or whose container record changed since the previous refresh, including those
    /// first seen by [`ContainerCache::resolve`]: re-evaluate filters for these. Sorted.
    pub updated: Vec<u64>,
    /// Cgroups dropped from the cache after their retention time. Sorted.
    pub purged: Vec<u64>,
}

/// Maps cgroup ids to containers, asking the runtime for metadata; see the module docs.
pub struct ContainerCache {
    cgroups: Box<dyn CgroupSource>,
    sources: Vec<Source>,
    clock: Box<dyn Clock>,
    config: CacheConfig,
    entries: foldhash::HashMap<u64, Entry>,
    /// When a scan for an unknown id last came up empty.
    fruitless_scan_at: Option<Instant>,
    /// Ids a scan looked for and did not find, with when; kept as long as retained entries.
    unknown: foldhash::HashMap<u64, Instant>,
    /// Container cgroups added or changed since the last refresh.
    unreported: HashSet<u64>,
    failures: u64,
    /// The message of the most recent runtime failure.
    last_failure: Option<String>,
}

impl ContainerCache {
    /// A cache over the cgroups of `cgroups`, with metadata from the runtimes in `runtimes`
    /// (each asked only about the containers it [serves](ContainerSource::serves); where
    /// several serve a runtime, each is asked until one knows the container). At most 64
    /// runtimes: any more are left out.
    /// Nothing is scanned until the first [`resolve`](Self::resolve) or
    /// [`refresh`](Self::refresh).
    pub fn new(
        cgroups: Box<dyn CgroupSource>,
        runtimes: Vec<Box<dyn ContainerSource>>,
        config: CacheConfig,
    ) -> ContainerCache {
        ContainerCache::with_clock(cgroups, runtimes, config, Box::new(SystemClock))
    }

    /// Like [`new`](Self::new), reading time from `clock`.
    pub fn with_clock(
        cgroups: Box<dyn CgroupSource>,
        runtimes: Vec<Box<dyn ContainerSource>>,
        config: CacheConfig,
        clock: Box<dyn Clock>,
    ) -> ContainerCache {
        let mut sources: Vec<Source> = runtimes
            .into_iter()
            .take(u64::BITS as usize)
            .filter_map(|client| {
                let serves = RUNTIMES.into_iter().filter(|r| client.serves(*r)).collect();
                match Background::start(client) {
                    Ok(background) => Some(Source {
                        serves,
                        bit: 0,
                        background,
                        failure_streak: 0,
                        retry_at: None,
                    }),
                    // Containers are then named by id only.
                    Err(e) => {
                        eprintln!(
                            "signal-trace: warning: cannot start a runtime lookup thread: {e}"
                        );
                        None
                    }
                }
            })
            .collect();
        for (i, source) in sources.iter_mut().enumerate() {
            source.bit = 1 << i;
        }
        ContainerCache {
            cgroups,
            sources,
            clock,
            config,
            entries: Default::default(),
            fruitless_scan_at: None,
            unknown: Default::default(),
            unreported: HashSet::new(),
            failures: 0,
            last_failure: None,
        }
    }

    /// The container cgroup `id` belongs to, or `None` for host cgroups and unknown ids.
    ///
    /// A known id is answered from the cache, also for up to the retention time after its
    /// cgroup disappeared. An id never seen before triggers a rescan of the cgroup tree and,
    /// when it names a container, one bounded runtime query for all containers that appeared.
    /// An id that a rescan did not find is not looked for again, and for
    /// [`CacheConfig::rescan_interval`] after that no other unknown id triggers a rescan.
    pub fn resolve(&mut self, id: u64) -> Option<Container> {
        if let Some(entry) = self.entries.get(&id) {
            return entry.container.clone();
        }
        if self.unknown.contains_key(&id) {
            return None;
        }
        let now = self.clock.now();
        if self
            .fruitless_scan_at
            .is_some_and(|at| now.saturating_duration_since(at) < self.config.rescan_interval)
        {
            return None;
        }
        // An unreadable hierarchy leaves the id unresolved; refresh() reports the error.
        let appeared = self.rescan(now).ok()?.0;
        if !appeared.contains(&id) {
            self.unknown.insert(id, now);
            self.fruitless_scan_at = Some(now);
            return None;
        }
        self.enrich(now, true);
        self.entries.get(&id)?.container.clone()
    }

    /// Applies the runtimes' answers that have come, and asks about containers still pending;
    /// never waits. Returns true when an answer was applied (then [`refresh`](Self::refresh)
    /// or [`take_updated`](Self::take_updated) report what changed).
    pub fn poll(&mut self) -> bool {
        let now = self.clock.now();
        let applied = self.collect(now, Duration::ZERO);
        self.enrich(now, false);
        applied
    }

    /// Waits up to `bound` for the queries in flight (at start-up, where waiting is fine).
    pub fn wait_for_runtime(&mut self, bound: Duration) -> bool {
        let now = self.clock.now();
        self.collect(now, bound)
    }

    /// Container cgroups added or changed since last reported, sorted (and now reported).
    pub fn take_updated(&mut self) -> Vec<u64> {
        let mut updated: Vec<u64> = self.unreported.drain().collect();
        updated.sort_unstable();
        updated
    }

    /// The cached answer for `id`, without scanning or asking the runtime.
    pub fn get(&self, id: u64) -> Option<&Container> {
        self.entries.get(&id)?.container.as_ref()
    }

    /// The systemd unit of cgroup `id` (see [`unit::unit_from_cgroup_path`]), from the cache:
    /// call [`resolve`](Self::resolve) first for an id that may be new.
    pub fn unit(&self, id: u64) -> Option<&Label> {
        self.entries.get(&id)?.unit.as_ref()
    }

    /// The cgroup path of `id` as last scanned.
    pub fn path(&self, id: u64) -> Option<&str> {
        self.entries.get(&id).map(|e| e.path.as_str())
    }

    /// Rescans the cgroup tree, drops entries past their retention time, and asks the runtime
    /// about containers it has not described yet (new ones, and those seen while it could not
    /// be reached). Meant to run periodically, e.g. every 2 s.
    pub fn refresh(&mut self) -> Result<Changes, ContainersError> {
        let now = self.clock.now();
        let (_, purged) = self.rescan(now)?;
        self.enrich(now, true);
        let mut updated: Vec<u64> = self.unreported.drain().collect();
        updated.sort_unstable();
        Ok(Changes { updated, purged })
    }

    /// Every cached cgroup id (live or retained) whose container `selector` selects, sorted.
    /// Sub-cgroups of a container are included.
    pub fn matching_cgroups(&self, selector: &Selector) -> Vec<u64> {
        let mut ids: Vec<u64> = self
            .entries
            .iter()
            .filter(|(_, e)| e.container.as_ref().is_some_and(|c| selector.matches(c)))
            .map(|(id, _)| *id)
            .collect();
        ids.sort_unstable();
        ids
    }

    /// How many runtime queries have failed.
    pub fn failures(&self) -> u64 {
        self.failures
    }

    /// Why the most recent failed runtime query failed, if any did.
    pub fn last_failure(&self) -> Option<&str> {
        self.last_failure.as_deref()
    }

    /// How many cgroups the cache holds, retained ones included.
    pub fn len(&self) -> usize {
        self.entries.len()
    }

    /// True when the cache holds no cgroup.
    pub fn is_empty(&self) -> bool {
        self.entries.is_empty()
    }

    /// Scans the cgroup tree: adds new cgroups, marks missing ones gone, drops those gone for
    /// longer than the retention time. Returns the ids added and the ids dropped.
    fn rescan(&mut self, now: Instant) -> Result<(Vec<u64>, Vec<u64>), ContainersError> {
        let live = self.cgroups.scan()?;
        for (id, entry) in self.entries.iter_mut() {
            if !live.contains_key(id) {
                entry.gone_since.get_or_insert(now);
            }
        }
        let mut appeared = Vec::new();
        for (id, path) in live {
            if let Some(entry) = self.entries.get_mut(&id) {
                entry.path = path;
                entry.gone_since = None;
                continue;
            }
            let cref = cgroup::parse_cgroup_path(&path);
            let container = cref.as_ref().map(|c| container_record(c, None));
            if container.is_some() {
                self.unreported.insert(id);
            }
            let pending = cref
                .as_ref()
                .is_some_and(|c| self.sources.iter().any(|s| s.serves(c.runtime)));
            let unit = unit::unit_from_cgroup_path(&path).map(Label::from);
            self.entries.insert(
                id,
                Entry {
                    path,
                    cref,
                    unit,
                    container,
                    pending,
                    unknown_to: 0,
                    gone_since: None,
                },
            );
            appeared.push(id);
        }
        let ttl = self.config.ttl;
        self.unknown
            .retain(|_, since| now.saturating_duration_since(*since) < ttl);
        let mut purged = Vec::new();
        self.entries.retain(|id, entry| {
            let keep = entry
                .gone_since
                .is_none_or(|since| now.saturating_duration_since(since) < ttl);
            if !keep {
                purged.push(*id);
                self.unreported.remove(id);
            }
            keep
        });
        purged.sort_unstable();
        Ok((appeared, purged))
    }

    /// Applies the answers that have come, waiting at most `wait` in all; true when one was.
    fn collect(&mut self, now: Instant, wait: Duration) -> bool {
        let deadline = Instant::now() + wait;
        let mut applied = false;
        for i in 0..self.sources.len() {
            let left = deadline.saturating_duration_since(Instant::now());
            if let Some((asked, result)) = self.sources[i].background.answer(left) {
                self.apply(i, now, &asked, result);
                applied = true;
            }
        }
        applied
    }

    /// Asks each runtime about the pending containers it serves (one query in flight per
    /// runtime), unless it failed recently. With `may_wait`, waits up to
    /// [`CacheConfig::answer_wait`] for the answers of queries sent now to runtimes whose last
    /// query succeeded.
    fn enrich(&mut self, now: Instant, may_wait: bool) {
        self.collect(now, Duration::ZERO);
        let mut waiting = false;
        for i in 0..self.sources.len() {
            let source = &mut self.sources[i];
            if source.retry_at.is_some_and(|at| now < at) || source.background.in_flight.is_some() {
                continue;
            }
            let mut wanted: Vec<String> = self
                .entries
                .values()
                .filter(|e| waits_for(e, source))
                .filter_map(|e| e.cref.as_ref().map(|c| c.id.clone()))
                .collect();
            if wanted.is_empty() {
                continue;
            }
            wanted.sort_unstable();
            wanted.dedup();
            let healthy = source.failure_streak == 0;
            if !source.background.submit(wanted) {
                self.apply(i, now, &[], Err(RuntimeError::WorkerGone));
                continue;
            }
            waiting |= may_wait && healthy;
        }
        if waiting {
            self.collect(now, self.config.answer_wait);
        }
    }

    /// What runtime `i` said about `asked`.
    fn apply(
        &mut self,
        i: usize,
        now: Instant,
        asked: &[String],
        result: Result<Vec<RuntimeContainer>, RuntimeError>,
    ) {
        let source = &mut self.sources[i];
        let known = match result {
            Ok(known) => known,
            Err(err) => {
                self.failures += 1;
                self.last_failure = Some(err.to_string());
                source.failure_streak = source.failure_streak.saturating_add(1);
                let backoff = self
                    .config
                    .retry_min
                    .saturating_mul(1 << source.failure_streak.saturating_sub(1).min(16))
                    .min(self.config.retry_max);
                source.retry_at = Some(now + backoff);
                return;
            }
        };
        source.failure_streak = 0;
        source.retry_at = None;
        let source = &self.sources[i];
        // Per runtime, the sources that serve it.
        let serving: Vec<(Runtime, u64)> = RUNTIMES
            .into_iter()
            .map(|r| {
                let bits = self.sources.iter().filter(|s| s.serves(r));
                (r, bits.fold(0, |all, s| all | s.bit))
            })
            .collect();
        let by_id: HashMap<&str, &RuntimeContainer> =
            known.iter().map(|c| (c.id.as_str(), c)).collect();
        for (id, entry) in self.entries.iter_mut() {
            if !waits_for(entry, source) {
                continue;
            }
            let Some(cref) = entry.cref.as_ref() else {
                entry.pending = false;
                continue;
            };
            // Containers that appeared while the query was in flight wait for the next one.
            if !asked.contains(&cref.id) {
                continue;
            }
            let updated = match by_id.get(cref.id.as_str()) {
                Some(meta) => Some(container_record(cref, Some(meta))),
                None => {
                    entry.unknown_to |= source.bit;
                    let all = serving
                        .iter()
                        .find(|(r, _)| *r == cref.runtime)
                        .map_or(0, |(_, bits)| *bits);
                    // Another runtime that serves it may still know it.
                    if entry.unknown_to & all != all {
                        continue;
                    }
                    // A live cgroup that only looks like a plain containerd one, and that
                    // containerd does not know, is a host cgroup.
                    if entry.gone_since.is_none() && is_plain_containerd(&entry.path, cref) {
                        None
                    } else {
                        entry.container.clone()
                    }
                }
            };
            entry.pending = false;
            if updated != entry.container {
                entry.container = updated;
                self.unreported.insert(*id);
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::workload::containerd::RuntimeError;
    use std::collections::BTreeMap;
    use std::sync::{Arc, Mutex};

    const ID1: &str = "3ab1c5843010d1377022e5040c601c82fe47ba6c05cb30340ae0c210a52ec9bb";
    const ID2: &str = "9f2e0c7d41b85a6e3c1d0f9b8a7e6d5c4b3a29181706f5e4d3c2b1a098765432";
    const UID: &str = "0358379a-44b0-4f55-a3d6-9be487c1e499";
    const HOST_HEX: &str = "b82dd7c0e2cb68f6b0e23e253ac132b1";

    /// Shared mutable state behind the fakes.
    #[derive(Clone, Default)]
    struct Shared<T>(Arc<Mutex<T>>);

    impl<T: Clone> Shared<T> {
        fn get(&self) -> T {
            self.0.lock().expect("lock").clone()
        }
        fn set(&self, value: T) {
            *self.0.lock().expect("lock") = value;
        }
    }

    #[derive(Clone)]
    struct FakeClock {
        base: Instant,
        offset: Shared<Duration>,
    }

    impl FakeClock {
        fn new() -> FakeClock {
            FakeClock {
                base: Instant::now(),
                offset: Shared::default(),
            }
        }
        fn advance(&self, by: Duration) {
            self.offset.set(self.offset.get() + by);
        }
    }

    impl Clock for FakeClock {
        fn now(&self) -> Instant {
            self.base + self.offset.get()
        }
    }

    #[derive(Clone, Default)]
    struct FakeCgroups {
        tree: Shared<HashMap<u64, String>>,
        scans: Shared<u32>,
    }

    impl FakeCgroups {
        fn add(&self, id: u64, path: &str) {
            let mut tree = self.tree.get();
            tree.insert(id, path.to_owned());
            self.tree.set(tree);
        }
        fn remove(&self, id: u64) {
            let mut tree = self.tree.get();
            tree.remove(&id);
            self.tree.set(tree);
        }
    }

    impl CgroupSource for FakeCgroups {
        fn scan(&self) -> Result<HashMap<u64, String>, ContainersError> {
            self.scans.set(self.scans.get() + 1);
            Ok(self.tree.get())
        }
    }

    #[derive(Clone, Default)]
    struct FakeRuntime {
        /// Serves what containerd serves when `None`.
        serves: Option<Runtime>,
        containers: Shared<Vec<RuntimeContainer>>,
        down: Shared<bool>,
        /// The id lists asked for, one per query.
        queries: Shared<Vec<Vec<String>>>,
    }

    impl FakeRuntime {
        fn add(&self, id: &str, labels: &[(&str, &str)]) {
            let mut all = self.containers.get();
            all.push(RuntimeContainer {
                namespace: "k8s.io".to_owned(),
                id: id.to_owned(),
                image: "registry.example/app:1".to_owned(),
                labels: labels
                    .iter()
                    .map(|(k, v)| ((*k).to_owned(), (*v).to_owned()))
                    .collect(),
                ..RuntimeContainer::default()
            });
            self.containers.set(all);
        }
        fn query_count(&self) -> usize {
            self.queries.get().len()
        }
    }

    impl ContainerSource for FakeRuntime {
        fn lookup(&mut self, ids: &[String]) -> Result<Vec<RuntimeContainer>, RuntimeError> {
            let mut queries = self.queries.get();
            queries.push(ids.to_vec());
            self.queries.set(queries);
            if self.down.get() {
                return Err(RuntimeError::WorkerGone);
            }
            Ok(self
                .containers
                .get()
                .into_iter()
                .filter(|c| ids.contains(&c.id))
                .collect())
        }

        fn serves(&self, runtime: Runtime) -> bool {
            match self.serves {
                Some(r) => r == runtime,
                None => matches!(runtime, Runtime::Containerd | Runtime::Kubernetes),
            }
        }
    }

    fn web_labels() -> Vec<(&'static str, &'static str)> {
        vec![
            (LABEL_POD_NAME, "web-0"),
            (LABEL_POD_NAMESPACE, "shop"),
            (LABEL_CONTAINER_NAME, "app"),
        ]
    }

    fn web(id: &str) -> Container {
        Container {
            id: id.to_owned(),
            runtime: "containerd".to_owned(),
            name: Some("app".to_owned()),
            pod: Some("web-0".to_owned()),
            namespace: Some("shop".to_owned()),
            image: Some("registry.example/app:1".to_owned()),
            ..Container::default()
        }
    }

    fn bare(id: &str, runtime: &str) -> Container {
        Container {
            id: id.to_owned(),
            runtime: runtime.to_owned(),
            ..Container::default()
        }
    }

    struct Setup {
        clock: FakeClock,
        cgroups: FakeCgroups,
        runtime: FakeRuntime,
        cache: ContainerCache,
    }

    fn setup(with_runtime: bool) -> Setup {
        let clock = FakeClock::new();
        let cgroups = FakeCgroups::default();
        cgroups.add(1, "/");
        cgroups.add(2, "/system.slice");
        let runtime = FakeRuntime::default();
        let source: Vec<Box<dyn ContainerSource>> = if with_runtime {
            vec![Box::new(runtime.clone())]
        } else {
            Vec::new()
        };
        let cache = ContainerCache::with_clock(
            Box::new(cgroups.clone()),
            source,
            CacheConfig::default(),
            Box::new(clock.clone()),
        );
        Setup {
            clock,
            cgroups,
            runtime,
            cache,
        }
    }

    impl Setup {
        /// A refresh, then the runtime's answer to the query it sent (which a refresh waits
        /// for only while the runtime is healthy), with every change it brought.
        fn settled_refresh(&mut self) -> Changes {
            let mut changes = self.cache.refresh().expect("refresh");
            self.cache.wait_for_runtime(Duration::from_secs(5));
            changes.updated.extend(self.cache.take_updated());
            changes.updated.sort_unstable();
            changes.updated.dedup();
            changes
        }
    }

    fn cref(id: &str, runtime: Runtime) -> ContainerRef {
        ContainerRef {
            id: id.to_owned(),
            runtime,
            pod_uid: None,
            qos: None,
            plain: false,
        }
    }

    #[test]
    fn record_from_kubernetes_labels() {
        let meta = RuntimeContainer {
            namespace: "k8s.io".to_owned(),
            id: ID1.to_owned(),
            image: "registry.example/app:1".to_owned(),
            labels: web_labels()
                .into_iter()
                .map(|(k, v)| (k.to_owned(), v.to_owned()))
                .collect(),
            ..RuntimeContainer::default()
        };
        // the runtime's view overrides the runtime guessed from a cgroupfs path
        assert_eq!(
            container_record(&cref(ID1, Runtime::Kubernetes), Some(&meta)),
            web(ID1)
        );
    }

    #[test]
    fn record_from_other_labels() {
        let labels = |pairs: &[(&str, &str)]| -> BTreeMap<String, String> {
            pairs
                .iter()
                .map(|(k, v)| ((*k).to_owned(), (*v).to_owned()))
                .collect()
        };
        let meta = |pairs: &[(&str, &str)]| RuntimeContainer {
            namespace: "default".to_owned(),
            id: ID1.to_owned(),
            image: String::new(),
            labels: labels(pairs),
            ..RuntimeContainer::default()
        };
        let plain = cref(ID1, Runtime::Containerd);
        // ctr run without labels
        assert_eq!(
            container_record(
                &plain,
                Some(&meta(&[(
                    "io.containerd.image.config.stop-signal",
                    "SIGTERM"
                )]))
            ),
            bare(ID1, "containerd")
        );
        // nerdctl names its containers with its own label
        assert_eq!(
            container_record(&plain, Some(&meta(&[(LABEL_NERDCTL_NAME, "db")]))).name,
            Some("db".to_owned())
        );
        // the Kubernetes name wins over nerdctl's; empty values are absent
        let both = meta(&[
            (LABEL_NERDCTL_NAME, "db"),
            (LABEL_CONTAINER_NAME, "app"),
            (LABEL_POD_NAME, ""),
        ]);
        let record = container_record(&plain, Some(&both));
        assert_eq!(record.name.as_deref(), Some("app"));
        assert_eq!(record.pod, None);
        // no metadata: id and the runtime named by the path
        assert_eq!(
            container_record(&cref(ID2, Runtime::CriO), None),
            bare(ID2, "cri-o")
        );
    }

    #[test]
    fn selectors() {
        let c = web(ID1);
        let yes = [
            Selector::Container(ID1.to_owned()),
            Selector::Container(ID1[..12].to_owned()),
            Selector::Container(ID1[..12].to_uppercase()),
            Selector::Container("3".to_owned()),
            Selector::Container("app".to_owned()),
            Selector::Pod("web-0".to_owned()),
            Selector::Namespace("shop".to_owned()),
        ];
        for s in &yes {
            assert!(s.matches(&c), "{s:?} should select");
        }
        let no = [
            Selector::Container(String::new()),
            Selector::Container(ID2[..12].to_owned()),
            Selector::Container(format!("{ID1}0")),
            Selector::Container("ap".to_owned()),
            Selector::Container("web-0".to_owned()),
            Selector::Pod("web".to_owned()),
            Selector::Pod("shop".to_owned()),
            Selector::Namespace("default".to_owned()),
            Selector::Namespace(String::new()),
        ];
        for s in &no {
            assert!(!s.matches(&c), "{s:?} should not select");
        }
        // no metadata: only the id can select
        let b = bare(ID1, "docker");
        assert!(Selector::Container(ID1[..5].to_owned()).matches(&b));
        assert!(!Selector::Pod(String::new()).matches(&b));
        assert!(!Selector::Namespace(String::new()).matches(&b));
    }

    #[test]
    fn plain_containerd_detection() {
        let plain = cref(ID1, Runtime::Containerd);
        assert!(is_plain_containerd(&format!("/default/{ID1}"), &plain));
        assert!(is_plain_containerd(&format!("/default/{ID1}/init"), &plain));
        assert!(!is_plain_containerd(
            &format!("/system.slice/cri-containerd-{ID1}.scope"),
            &plain
        ));
        assert!(!is_plain_containerd(
            &format!("/kubepods/pod{UID}/{ID1}"),
            &cref(ID1, Runtime::Kubernetes)
        ));
    }

    #[test]
    fn record_from_docker() {
        let meta = RuntimeContainer {
            runtime: Runtime::Docker,
            id: ID1.to_owned(),
            name: Some("shop-web-1".to_owned()),
            image: "localhost/signal-trace/busybox:latest".to_owned(),
            labels: [
                (LABEL_COMPOSE_PROJECT, "shop"),
                (LABEL_COMPOSE_SERVICE, "web"),
            ]
            .into_iter()
            .map(|(k, v)| (k.to_owned(), v.to_owned()))
            .collect(),
            ..RuntimeContainer::default()
        };
        let c = container_record(&cref(ID1, Runtime::Docker), Some(&meta));
        assert_eq!(
            c,
            Container {
                id: ID1.to_owned(),
                runtime: "docker".to_owned(),
                name: Some("shop-web-1".to_owned()),
                image: Some("localhost/signal-trace/busybox:latest".to_owned()),
                compose: Some(Compose {
                    project: "shop".to_owned(),
                    service: "web".to_owned(),
                }),
                ..Container::default()
            }
        );
        // a project without a service is no Compose container
        let mut half = meta.clone();
        half.labels.remove(LABEL_COMPOSE_SERVICE);
        assert_eq!(
            container_record(&cref(ID1, Runtime::Docker), Some(&half)).compose,
            None
        );
    }

    #[test]
    fn record_from_cri_annotations() {
        let mut meta = RuntimeContainer {
            id: ID1.to_owned(),
            labels: web_labels()
                .into_iter()
                .map(|(k, v)| (k.to_owned(), v.to_owned()))
                .collect(),
            ..RuntimeContainer::default()
        };
        meta.annotations
            .insert(ANNOTATION_GRACE_PERIOD.to_owned(), "45".to_owned());
        let c = container_record(&cref(ID1, Runtime::Containerd), Some(&meta));
        assert_eq!(c.grace_period_s, Some(45));
        assert_eq!(c.pod.as_deref(), Some("web-0"));
        meta.annotations
            .insert(ANNOTATION_GRACE_PERIOD.to_owned(), "soon".to_owned());
        let c = container_record(&cref(ID1, Runtime::Containerd), Some(&meta));
        assert_eq!(c.grace_period_s, None);
    }

    #[test]
    fn each_runtime_is_asked_about_its_own_containers() {
        let clock = FakeClock::new();
        let cgroups = FakeCgroups::default();
        let containerd = FakeRuntime::default();
        let docker = FakeRuntime {
            serves: Some(Runtime::Docker),
            ..FakeRuntime::default()
        };
        let mut cache = ContainerCache::with_clock(
            Box::new(cgroups.clone()),
            vec![Box::new(containerd.clone()), Box::new(docker.clone())],
            CacheConfig::default(),
            Box::new(clock.clone()),
        );
        cgroups.add(11, &format!("/kubepods/besteffort/pod{UID}/{ID1}"));
        cgroups.add(12, &format!("/docker/{ID2}"));
        cgroups.add(13, "/system.slice/nginx.service");
        containerd.add(ID1, &web_labels());
        let mut d = docker.containers.get();
        d.push(RuntimeContainer {
            runtime: Runtime::Docker,
            id: ID2.to_owned(),
            name: Some("web".to_owned()),
            ..RuntimeContainer::default()
        });
        docker.containers.set(d);
        assert_eq!(
            cache.resolve(12).and_then(|c| c.name),
            Some("web".to_owned())
        );
        assert_eq!(cache.resolve(11), Some(web(ID1)));
        assert_eq!(containerd.queries.get(), vec![vec![ID1.to_owned()]]);
        assert_eq!(docker.queries.get(), vec![vec![ID2.to_owned()]]);
        // a host cgroup: no container, a unit, nobody asked
        assert_eq!(cache.resolve(13), None);
        assert_eq!(cache.unit(13).map(|u| &**u), Some("nginx.service"));
        assert_eq!(cache.unit(12), None);

        // dockerd down: only its containers lose names, and only its queries back off
        docker.down.set(true);
        cgroups.add(14, &format!("/docker/{ID1}"));
        clock.advance(Duration::from_secs(1));
        assert_eq!(cache.resolve(14), Some(bare(ID1, "docker")));
        assert_eq!(cache.failures(), 1);
        let last = cache.last_failure().unwrap_or_default().to_owned();
        assert!(last.contains("thread"), "{last}");
        cgroups.add(15, &format!("/kubepods/besteffort/pod{UID}/{ID2}"));
        containerd.add(ID2, &web_labels());
        clock.advance(Duration::from_millis(500));
        assert_eq!(cache.resolve(15), Some(web(ID2)));
        // within dockerd's backoff: not asked again
        assert_eq!(docker.query_count(), 2);
    }

    #[test]
    fn first_sight_resolves_with_metadata() {
        let mut s = setup(true);
        assert_eq!(s.cache.resolve(1), None);
        assert_eq!(s.cache.resolve(2), None);
        // a pod starts after the first scan
        s.clock.advance(Duration::from_secs(1));
        let path = format!("/kubepods/besteffort/pod{UID}/{ID1}");
        s.cgroups.add(10, &format!("/kubepods/besteffort/pod{UID}"));
        s.cgroups.add(11, &path);
        s.cgroups.add(12, &format!("{path}/init"));
        s.runtime.add(ID1, &web_labels());
        assert_eq!(s.cache.resolve(11), Some(web(ID1)));
        // one scan, one query for the one container the new cgroups name
        assert_eq!(s.cgroups.scans.get(), 2);
        assert_eq!(s.runtime.queries.get().last(), Some(&vec![ID1.to_owned()]));
        let queries = s.runtime.query_count();
        // the sub-cgroup and the pod cgroup came with the same scan
        assert_eq!(s.cache.resolve(12), Some(web(ID1)));
        assert_eq!(s.cache.resolve(10), None);
        assert_eq!(s.cache.path(12), Some(format!("{path}/init").as_str()));
        assert_eq!(s.cgroups.scans.get(), 2);
        assert_eq!(s.runtime.query_count(), queries);
        assert_eq!(s.cache.failures(), 0);
    }

    #[test]
    fn unknown_ids_rescan_at_a_bounded_rate() {
        let mut s = setup(true);
        assert_eq!(s.cache.resolve(99), None);
        assert_eq!(s.cgroups.scans.get(), 1);
        // an id that a scan did not find is not looked for again
        s.clock.advance(Duration::from_secs(10));
        assert_eq!(s.cache.resolve(99), None);
        assert_eq!(s.cgroups.scans.get(), 1);
        // other unknown ids right after a fruitless scan wait
        assert_eq!(s.cache.resolve(98), None);
        assert_eq!(s.cgroups.scans.get(), 2);
        s.clock.advance(Duration::from_millis(100));
        assert_eq!(s.cache.resolve(97), None);
        assert_eq!(s.cgroups.scans.get(), 2);
        s.clock.advance(CacheConfig::default().rescan_interval);
        assert_eq!(s.cache.resolve(97), None);
        assert_eq!(s.cgroups.scans.get(), 3);
        // host cgroups never reach the runtime
        assert_eq!(s.runtime.query_count(), 0);
        // the memory of unknown ids lasts as long as retained entries
        s.clock.advance(CacheConfig::default().ttl);
        s.cache.refresh().expect("refresh");
        let scans = s.cgroups.scans.get();
        assert_eq!(s.cache.resolve(99), None);
        assert_eq!(s.cgroups.scans.get(), scans + 1);
    }

    #[test]
    fn containers_found_by_resolve_are_reported_by_the_next_refresh() {
        let mut s = setup(true);
        s.cache.refresh().expect("refresh");
        s.cgroups
            .add(11, &format!("/kubepods/besteffort/pod{UID}/{ID1}"));
        s.runtime.add(ID1, &web_labels());
        s.clock.advance(Duration::from_millis(10));
        assert_eq!(s.cache.resolve(11), Some(web(ID1)));
        assert_eq!(s.cache.refresh().expect("refresh").updated, vec![11]);
        assert!(s.cache.refresh().expect("refresh").updated.is_empty());
    }

    #[test]
    fn new_container_right_after_a_refresh() {
        let mut s = setup(true);
        s.cache.refresh().expect("refresh");
        s.clock.advance(Duration::from_millis(10));
        s.cgroups
            .add(11, &format!("/kubepods/besteffort/pod{UID}/{ID1}"));
        s.runtime.add(ID1, &web_labels());
        assert_eq!(s.cache.resolve(11), Some(web(ID1)));
        // and right after a successful miss scan
        s.clock.advance(Duration::from_millis(10));
        s.cgroups
            .add(12, &format!("/kubepods/besteffort/pod{UID}/{ID2}"));
        s.runtime.add(ID2, &web_labels());
        assert_eq!(s.cache.resolve(12), Some(web(ID2)));
    }

    #[test]
    fn retained_for_ttl_after_the_cgroup_is_gone() {
        let mut s = setup(true);
        s.cgroups
            .add(11, &format!("/kubepods/besteffort/pod{UID}/{ID1}"));
        s.runtime.add(ID1, &web_labels());
        assert_eq!(s.cache.refresh().expect("refresh").updated, vec![11]);

        // killed: the cgroup is removed and the runtime forgets it
        s.cgroups.remove(11);
        s.runtime.containers.set(Vec::new());
        let ttl = CacheConfig::default().ttl;
        s.clock.advance(Duration::from_secs(2));
        assert_eq!(s.cache.refresh().expect("refresh"), Changes::default());
        s.clock.advance(ttl - Duration::from_secs(1));
        assert_eq!(s.cache.refresh().expect("refresh"), Changes::default());
        assert_eq!(s.cache.resolve(11), Some(web(ID1)));
        assert_eq!(
            s.cache.matching_cgroups(&Selector::Pod("web-0".to_owned())),
            vec![11]
        );
        s.clock.advance(Duration::from_secs(1));
        let changes = s.cache.refresh().expect("refresh");
        assert_eq!(changes.purged, vec![11]);
        assert_eq!(s.cache.get(11), None);
        assert!(s
            .cache
            .matching_cgroups(&Selector::Pod("web-0".to_owned()))
            .is_empty());
        assert_eq!(s.cache.len(), 2);
    }

    #[test]
    fn a_cgroup_that_comes_back_is_live_again() {
        let mut s = setup(false);
        s.cgroups.add(11, &format!("/docker/{ID1}"));
        s.cache.refresh().expect("refresh");
        s.cgroups.remove(11);
        s.clock.advance(Duration::from_secs(200));
        s.cache.refresh().expect("refresh");
        // seen again (a scan that raced with a slow readdir): the retention clock restarts
        s.cgroups.add(11, &format!("/docker/{ID1}"));
        s.clock.advance(Duration::from_secs(1));
        s.cache.refresh().expect("refresh");
        s.cgroups.remove(11);
        s.clock.advance(Duration::from_secs(200));
        let changes = s.cache.refresh().expect("refresh");
        assert!(changes.purged.is_empty());
        assert_eq!(s.cache.resolve(11), Some(bare(ID1, "docker")));
    }

    #[test]
    fn runtime_down_then_back() {
        let mut s = setup(true);
        s.runtime.down.set(true);
        let path = format!("/kubepods/besteffort/pod{UID}/{ID1}");
        s.cgroups.add(11, &path);
        s.runtime.add(ID1, &web_labels());
        // still resolved, by id only, and counted
        assert_eq!(s.cache.resolve(11), Some(bare(ID1, "kubernetes")));
        assert_eq!(s.cache.failures(), 1);
        assert_eq!(
            s.cache.last_failure(),
            Some(RuntimeError::WorkerGone.to_string().as_str())
        );

        // within the backoff nothing is asked
        s.clock.advance(Duration::from_millis(500));
        s.settled_refresh();
        assert_eq!(s.runtime.query_count(), 1);
        // after it, asked again: still down, the wait doubles
        s.clock.advance(Duration::from_millis(600));
        s.settled_refresh();
        assert_eq!(s.runtime.query_count(), 2);
        assert_eq!(s.cache.failures(), 2);
        s.clock.advance(Duration::from_millis(1500));
        s.settled_refresh();
        assert_eq!(s.runtime.query_count(), 2);

        // back: the next refresh after the backoff fills in the metadata and reports it
        s.runtime.down.set(false);
        s.clock.advance(Duration::from_millis(600));
        let changes = s.settled_refresh();
        assert_eq!(changes.updated, vec![11]);
        assert_eq!(s.cache.resolve(11), Some(web(ID1)));
        assert_eq!(s.cache.failures(), 2);
        // nothing is pending any more
        s.clock.advance(Duration::from_secs(5));
        s.settled_refresh();
        assert_eq!(s.runtime.query_count(), 3);
    }

    /// A runtime that takes far longer than the answer wait: containers are reported by id at
    /// once, the lookup waits once (not once per query), and the names arrive later.
    #[test]
    fn a_hung_runtime_costs_one_bounded_wait_and_names_follow() {
        #[derive(Clone)]
        struct Slow(FakeRuntime, Duration);
        impl ContainerSource for Slow {
            fn lookup(&mut self, ids: &[String]) -> Result<Vec<RuntimeContainer>, RuntimeError> {
                std::thread::sleep(self.1);
                self.0.lookup(ids)
            }
        }
        let clock = FakeClock::new();
        let cgroups = FakeCgroups::default();
        let runtime = FakeRuntime::default();
        let config = CacheConfig {
            answer_wait: Duration::from_millis(50),
            ..CacheConfig::default()
        };
        let mut cache = ContainerCache::with_clock(
            Box::new(cgroups.clone()),
            vec![Box::new(Slow(runtime.clone(), Duration::from_millis(800)))],
            config,
            Box::new(clock.clone()),
        );
        let started = Instant::now();
        for (cg, id) in [(11, ID1), (12, ID2)] {
            cgroups.add(cg, &format!("/kubepods/besteffort/pod{UID}/{id}"));
            runtime.add(id, &web_labels());
            clock.advance(Duration::from_secs(1));
            assert_eq!(cache.resolve(cg), Some(bare(id, "kubernetes")));
        }
        for _ in 0..100 {
            cache.poll();
        }
        let took = started.elapsed();
        assert!(
            took < Duration::from_millis(400),
            "one 50 ms wait, not one per query: {took:?}"
        );
        // The first answer, then the query for the container that appeared meanwhile.
        assert!(cache.wait_for_runtime(Duration::from_secs(5)));
        assert_eq!(cache.resolve(11), Some(web(ID1)));
        cache.poll();
        assert!(cache.wait_for_runtime(Duration::from_secs(5)));
        assert_eq!(cache.resolve(12), Some(web(ID2)));
        assert_eq!(cache.take_updated(), vec![11, 12]);
        assert_eq!(cache.failures(), 0);
    }

    /// Two runtimes serve the layouts that do not name one (containerd's API and a CRI
    /// runtime): the one that does not know a container does not stop the other from naming
    /// it, and a container neither knows is asked about no more.
    #[test]
    fn a_container_one_runtime_does_not_know_is_named_by_the_other() {
        let clock = FakeClock::new();
        let cgroups = FakeCgroups::default();
        let containerd = FakeRuntime::default();
        let cri = FakeRuntime::default();
        let mut cache = ContainerCache::with_clock(
            Box::new(cgroups.clone()),
            vec![Box::new(containerd.clone()), Box::new(cri.clone())],
            CacheConfig::default(),
            Box::new(clock.clone()),
        );
        let settle = |cache: &mut ContainerCache| {
            cache.refresh().expect("refresh");
            while cache.wait_for_runtime(Duration::from_secs(5)) {
                cache.poll();
            }
        };
        cgroups.add(11, &format!("/kubepods/besteffort/pod{UID}/{ID1}"));
        cri.add(ID1, &web_labels());
        settle(&mut cache);
        assert_eq!(cache.resolve(11), Some(web(ID1)));
        assert_eq!((containerd.query_count(), cri.query_count()), (1, 1));

        // the other way round, with the one that knows it down at first
        cgroups.add(12, &format!("/kubepods/besteffort/pod{UID}/{ID2}"));
        containerd.add(ID2, &web_labels());
        containerd.down.set(true);
        clock.advance(Duration::from_secs(2));
        settle(&mut cache);
        assert_eq!(cache.resolve(12), Some(bare(ID2, "kubernetes")));
        assert_eq!(cache.failures(), 1);
        containerd.down.set(false);
        clock.advance(Duration::from_secs(2));
        settle(&mut cache);
        assert_eq!(cache.resolve(12), Some(web(ID2)));
        // the CRI runtime said once that it does not know it, and was not asked again
        assert_eq!(
            cri.queries.get(),
            vec![vec![ID1.to_owned()], vec![ID2.to_owned()]]
        );

        // known to neither: both asked once, then nobody
        cgroups.add(13, &format!("/kubepods/besteffort/pod{UID}/{HOST_HEX}"));
        clock.advance(Duration::from_secs(2));
        settle(&mut cache);
        let asked = (containerd.query_count(), cri.query_count());
        clock.advance(Duration::from_secs(60));
        settle(&mut cache);
        assert_eq!((containerd.query_count(), cri.query_count()), asked);
        assert_eq!(asked, (4, 3));
        assert_eq!(cache.resolve(13), Some(bare(HOST_HEX, "kubernetes")));
    }

    #[test]
    fn backoff_is_capped() {
        let mut s = setup(true);
        s.runtime.down.set(true);
        s.cgroups
            .add(11, &format!("/system.slice/cri-containerd-{ID1}.scope"));
        s.settled_refresh();
        for _ in 0..10 {
            s.clock.advance(CacheConfig::default().retry_max);
            s.settled_refresh();
        }
        assert_eq!(s.cache.failures(), 11);
    }

    #[test]
    fn plain_containerd_lookalikes() {
        let host = format!("/process_api/{HOST_HEX}");
        let real = format!("/default/{ID1}");

        // runtime reachable: only ids it knows are containers
        let mut s = setup(true);
        s.cgroups.add(20, &host);
        s.cgroups.add(21, &real);
        s.cgroups.add(22, &format!("{real}/sub"));
        s.runtime.add(ID1, &[(LABEL_CONTAINER_NAME, "job")]);
        s.cache.refresh().expect("refresh");
        assert_eq!(s.cache.resolve(20), None);
        let job = Container {
            name: Some("job".to_owned()),
            image: Some("registry.example/app:1".to_owned()),
            ..bare(ID1, "containerd")
        };
        assert_eq!(s.cache.resolve(21), Some(job.clone()));
        assert_eq!(s.cache.resolve(22), Some(job));
        assert!(s
            .cache
            .matching_cgroups(&Selector::Container(HOST_HEX[..8].to_owned()))
            .is_empty());

        // runtime down: reported by id as the parser says, then corrected once it is back
        let mut s = setup(true);
        s.runtime.down.set(true);
        s.cgroups.add(20, &host);
        assert_eq!(s.cache.resolve(20), Some(bare(HOST_HEX, "containerd")));
        s.runtime.down.set(false);
        s.clock.advance(Duration::from_secs(2));
        assert_eq!(s.settled_refresh().updated, vec![20]);
        assert_eq!(s.cache.resolve(20), None);

        // no runtime configured at all: the parser's word stands
        let mut s = setup(false);
        s.cgroups.add(20, &host);
        assert_eq!(s.cache.resolve(20), Some(bare(HOST_HEX, "containerd")));
    }

    #[test]
    fn unverified_ids_of_vanished_cgroups_keep_their_id() {
        let mut s = setup(true);
        s.runtime.down.set(true);
        s.cgroups.add(21, &format!("/default/{ID1}"));
        assert_eq!(s.cache.resolve(21), Some(bare(ID1, "containerd")));
        // the container died while the runtime was down: nobody can vouch for it any more,
        // but its last events keep the id
        s.cgroups.remove(21);
        s.runtime.down.set(false);
        s.clock.advance(Duration::from_secs(2));
        s.settled_refresh();
        assert_eq!(s.cache.resolve(21), Some(bare(ID1, "containerd")));
    }

    #[test]
    fn refresh_reports_new_container_cgroups_for_filters() {
        let mut s = setup(true);
        let first = s.cache.refresh().expect("refresh");
        assert!(first.updated.is_empty(), "host cgroups are not reported");
        s.cgroups
            .add(11, &format!("/kubepods/besteffort/pod{UID}/{ID1}"));
        s.cgroups
            .add(12, &format!("/kubepods/besteffort/pod{UID}/{ID2}"));
        s.cgroups
            .add(13, &format!("/kubepods/besteffort/pod{UID}/{ID2}/init"));
        s.runtime.add(ID1, &web_labels());
        s.runtime.add(
            ID2,
            &[
                (LABEL_POD_NAME, "web-0"),
                (LABEL_POD_NAMESPACE, "shop"),
                (LABEL_CONTAINER_NAME, "sidecar"),
            ],
        );
        s.clock.advance(Duration::from_secs(2));
        let changes = s.cache.refresh().expect("refresh");
        assert_eq!(changes.updated, vec![11, 12, 13]);
        // one query for both containers
        assert_eq!(s.runtime.query_count(), 1);
        let mut asked = s.runtime.queries.get()[0].clone();
        asked.sort();
        assert_eq!(asked, vec![ID1.to_owned(), ID2.to_owned()]);

        let pod = Selector::Pod("web-0".to_owned());
        assert_eq!(s.cache.matching_cgroups(&pod), vec![11, 12, 13]);
        let sidecar = Selector::Container("sidecar".to_owned());
        assert_eq!(s.cache.matching_cgroups(&sidecar), vec![12, 13]);
        let prefix = Selector::Container(ID1[..12].to_owned());
        assert_eq!(s.cache.matching_cgroups(&prefix), vec![11]);
        let ns = Selector::Namespace("shop".to_owned());
        assert_eq!(s.cache.matching_cgroups(&ns), vec![11, 12, 13]);
        assert!(s
            .cache
            .matching_cgroups(&Selector::Namespace("default".to_owned()))
            .is_empty());
        // nothing new: nothing reported, nothing asked
        s.clock.advance(Duration::from_secs(2));
        assert_eq!(s.cache.refresh().expect("refresh"), Changes::default());
        assert_eq!(s.runtime.query_count(), 1);
    }

    #[test]
    fn scan_errors_are_reported_with_the_root() {
        let dir = std::env::temp_dir().join(format!("containers-missing-{}", std::process::id()));
        let mut cache = ContainerCache::new(
            Box::new(CgroupMount::new(dir.join("nope"))),
            Vec::new(),
            CacheConfig::default(),
        );
        let err = cache.refresh().expect_err("missing root");
        assert!(err.to_string().contains("nope"), "{err}");
        assert_eq!(cache.resolve(1), None);
    }

    #[test]
    fn real_mount_resolves_the_root_as_host() {
        let Ok(mountinfo) = std::fs::read_to_string("/proc/self/mountinfo") else {
            return;
        };
        let Some(root) = cgroup::cgroup2_mount(&mountinfo) else {
            return;
        };
        let Ok(meta) = std::fs::metadata(&root) else {
            return;
        };
        use std::os::unix::fs::MetadataExt;
        let mut cache = ContainerCache::new(
            Box::new(CgroupMount::new(&root)),
            Vec::new(),
            CacheConfig::default(),
        );
        assert_eq!(cache.resolve(meta.ino()), None);
        assert_eq!(cache.path(meta.ino()), Some("/"));
    }
}
