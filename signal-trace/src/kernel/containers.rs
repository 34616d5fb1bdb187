//! The container view's kernel side: the cgroup id → container cache (workload/) joined to
//! the in-kernel container filter (the CGROUP_FILTER map), kept current as containers come
//! and go. Part of the aya glue.

use std::fs;
use std::time::Duration;

use anyhow::{anyhow, bail};
use aya::maps::{HashMap as BpfHashMap, MapData};
use aya::Ebpf;

use crate::config::{Config, Side};
use crate::event::record::Record;
use crate::filter::side_bits;
use crate::workload::cgroup;
use crate::workload::containerd::{self as runtime, Containerd};
use crate::workload::containers::{CacheConfig, CgroupMount, ContainerCache, Selector};
use crate::workload::cri::{self, Cri};
use crate::workload::docker;

/// How often the container view is rescanned (new containers also arrive at once through the
/// cgroup_mkdir program when a container filter is active).
pub(crate) const CONTAINER_REFRESH: Duration = Duration::from_secs(2);

/// The container view: cgroup id → container (with pod metadata from the runtimes), used to
/// enrich both sides of every record and to keep the in-kernel container filter current.
pub struct Containers {
    cache: ContainerCache,
    pub(crate) filter: Option<ContainerFilter>,
    failures_reported: u64,
}

pub(crate) struct ContainerFilter {
    selectors: Vec<Selector>,
    side: Side,
    /// The SIDE_* bits a selected cgroup gets in CGROUP_FILTER.
    bits: u32,
    map: BpfHashMap<MapData, u64, u32>,
    selected: std::collections::HashSet<u64>,
}

impl ContainerFilter {
    fn selects(&self, c: Option<&crate::event::record::Container>) -> bool {
        c.is_some_and(|c| self.selectors.iter().all(|s| s.matches(c)))
    }

    fn set(&mut self, id: u64, on: bool) {
        let result = if on {
            self.selected.insert(id);
            self.map.insert(id, self.bits, 0)
        } else if self.selected.remove(&id) {
            self.map.remove(&id)
        } else {
            Ok(())
        };
        if let Err(e) = result {
            eprintln!(
                "signal-trace: warning: cannot update the container filter for cgroup {id}: {}",
                crate::escape::escape(e.to_string())
            );
        }
    }
}

impl Containers {
    pub(crate) fn new(
        cfg: &Config,
        ebpf: &mut Ebpf,
        warnings: &mut Vec<String>,
    ) -> anyhow::Result<Option<Containers>> {
        let mountinfo = fs::read_to_string("/proc/self/mountinfo").unwrap_or_default();
        let Some(root) = cgroup::cgroup2_mount(&mountinfo) else {
            if !cfg.filters.containers.is_empty() {
                bail!("container filters need the cgroup v2 hierarchy, and none is mounted");
            }
            warnings.push("no cgroup v2 hierarchy is mounted: records carry no container".into());
            return Ok(None);
        };
        let mut runtimes: Vec<Box<dyn runtime::ContainerSource>> = Vec::new();
        match Containerd::new(&cfg.containerd_socket, runtime::DEFAULT_TIMEOUT) {
            Ok(r) => runtimes.push(Box::new(r)),
            Err(e) => warnings.push(format!("{e}; containerd containers are named by id only")),
        }
        let mut engines = vec![(docker::Engine::Docker, &cfg.docker_socket)];
        // podman's API service is socket-activated or started by hand: asked only when there.
        if cfg.podman_socket.exists() {
            engines.push((docker::Engine::Podman, &cfg.podman_socket));
        }
        for (engine, socket) in engines {
            match docker::DockerApi::new(engine, socket, docker::DEFAULT_TIMEOUT) {
                Ok(r) => runtimes.push(Box::new(r)),
                Err(e) => warnings.push(format!("{e}; {engine:?} containers are named by id only")),
            }
        }
        // The CRI socket (CRI-O's by default) exists only where such a runtime runs.
        if cfg.cri_socket.exists() {
            match Cri::new(&cfg.cri_socket, cri::DEFAULT_TIMEOUT) {
                Ok(r) => runtimes.push(Box::new(r)),
                Err(e) => warnings.push(format!("{e}; CRI-O containers are named by id only")),
            }
        }
        let mut cache = ContainerCache::new(
            Box::new(CgroupMount::new(root)),
            runtimes,
            CacheConfig::default(),
        );
        let filter = if cfg.filters.containers.is_empty() {
            None
        } else {
            if let Err(e) = cache.refresh() {
                bail!("cannot list containers for the filter: {e}");
            }
            // At start-up the runtime's first answer is worth waiting for (bounded).
            cache.wait_for_runtime(runtime::DEFAULT_TIMEOUT + Duration::from_millis(500));
            let (bits, _) = side_bits(cfg.filters.container_side);
            let map = BpfHashMap::try_from(
                ebpf.take_map("CGROUP_FILTER")
                    .ok_or_else(|| anyhow!("no CGROUP_FILTER map"))?,
            )?;
            let mut f = ContainerFilter {
                selectors: cfg.filters.containers.clone(),
                side: cfg.filters.container_side,
                bits,
                map,
                selected: Default::default(),
            };
            // The cgroups of the containers every selector matches.
            let ids: Vec<u64> = f
                .selectors
                .first()
                .map(|s| cache.matching_cgroups(s))
                .unwrap_or_default()
                .into_iter()
                .filter(|&id| f.selects(cache.get(id)))
                .collect();
            if ids.is_empty() {
                warnings.push(
                    "no running container matches the container filter yet; waiting for one".into(),
                );
            }
            for id in ids {
                f.set(id, true);
            }
            Some(f)
        };
        Ok(Some(Containers {
            cache,
            filter,
            failures_reported: 0,
        }))
    }

    /// A cgroup was just created: a new container may belong in the filter.
    pub(crate) fn new_cgroup(&mut self, id: u64) {
        if let Some(f) = &mut self.filter {
            let c = self.cache.resolve(id);
            if f.selects(c.as_ref()) {
                f.set(id, true);
            }
        }
    }

    /// Periodic rescan: new and changed containers are re-evaluated against the filter,
    /// containers long gone leave it. Runtime failures are reported (they also count in the
    /// metrics).
    pub(crate) fn refresh(&mut self) {
        match self.cache.refresh() {
            Ok(changes) => {
                if let Some(f) = &mut self.filter {
                    for id in changes.updated {
                        f.set(id, f.selects(self.cache.get(id)));
                    }
                    for id in changes.purged {
                        f.set(id, false);
                    }
                }
            }
            Err(e) => eprintln!(
                "signal-trace: warning: {}",
                crate::escape::escape(e.to_string())
            ),
        }
        let failures = self.cache.failures();
        if failures > self.failures_reported {
            self.failures_reported = failures;
            if let Some(why) = self.cache.last_failure() {
                eprintln!(
                    "signal-trace: warning: container runtime query failed ({failures} so far): {}",
                    crate::escape::escape(why)
                );
            }
        }
    }

    pub fn failures(&self) -> u64 {
        self.cache.failures()
    }

    /// Applies a runtime answer that has come in meanwhile (never waits); containers it named
    /// are re-evaluated against the filter at once.
    pub(crate) fn poll(&mut self) {
        if self.cache.poll() {
            if let Some(f) = &mut self.filter {
                for id in self.cache.take_updated() {
                    f.set(id, f.selects(self.cache.get(id)));
                }
            }
        }
    }

    /// The container and the systemd unit of cgroup `id`.
    fn lookup(
        &mut self,
        id: Option<u64>,
    ) -> (
        Option<crate::event::record::Container>,
        Option<crate::event::record::Label>,
    ) {
        let Some(id) = id.filter(|&i| i != 0) else {
            return (None, None);
        };
        let container = self.cache.resolve(id);
        (container, self.cache.unit(id).cloned())
    }

    /// Fills in the container and unit of every side of a record.
    pub(crate) fn enrich(&mut self, rec: &mut Record) {
        match rec {
            Record::Generate(g) => {
                (g.sender.container, g.sender.unit) = self.lookup(Some(g.sender.cgroup_id));
                (g.target.container, g.target.unit) = self.lookup(g.target.cgroup_id);
            }
            Record::Deliver(d) => (d.container, d.unit) = self.lookup(d.cgroup_id),
            Record::Exit(x) => (x.container, x.unit) = self.lookup(x.cgroup_id),
            Record::SendFailed(s) => {
                (s.sender.container, s.sender.unit) = self.lookup(Some(s.sender.cgroup_id));
            }
            Record::Oom(o) => {
                (o.trigger.container, o.trigger.unit) = self.lookup(Some(o.trigger.cgroup_id));
            }
            Record::Lost(_) => {}
        }
    }

    /// The container filter for what the kernel could not decide: failed sends and OOM
    /// victims, whose target's cgroup is not known there. They are kept when their sender
    /// side is selected (and the filter looks at senders), or when the filter looks at targets
    /// only (then the kernel has nothing to go by, and the record is kept).
    pub(crate) fn keeps(&self, rec: &Record) -> bool {
        let Some(f) = &self.filter else { return true };
        let sender = match rec {
            Record::SendFailed(s) => &s.sender,
            Record::Oom(o) => &o.trigger,
            _ => return true,
        };
        match f.side {
            Side::Target => true,
            Side::Sender | Side::Either => f.selects(sender.container.as_ref()),
        }
    }
}
