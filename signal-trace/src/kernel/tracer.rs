//! The aya glue: loading and attaching the kernel programs, and reading what they send.
//! Everything else in the crate is pure and tested without root.

use std::fs;
use std::io::{self, Write};
use std::path::Path;
use std::time::{Duration, Instant};

use anyhow::{anyhow, bail, Context as _};
use aya::maps::{HashMap as BpfHashMap, MapData, PerCpuArray, RingBuf};
use aya::programs::{BtfTracePoint, FExit, RawTracePoint, TracePoint};
use aya::{Ebpf, EbpfLoader};
use signal_trace_common::{ClassicOffsets, KernelOffsets, KIND_COUNT};
use tokio::io::unix::AsyncFd;
use tokio::signal::unix::{signal, SignalKind};

use crate::config::{Config, EventKind};
use crate::event::decode::{decode, parse_event, parse_exec, record_kind, Clock, DecodeError};
use crate::event::enrich::Correlator;
use crate::event::procs::{Processes, MAX_PROCESSES};
use crate::event::record::{Lost, LostByKind, Node, Record};
use crate::explain::Engine;
use crate::filter::{kernel_filter, userspace_keeps};
use crate::kernel::btf::{classic_offsets, kernel_offsets_from_file, oom_offsets};
use crate::kernel::containers::{Containers, CONTAINER_REFRESH};
use crate::sink::file::Output;
use crate::sink::metrics::{Metrics, Server};
use crate::sink::output::Sink;
use crate::sink::summary::Summarizer;

/// The compiled kernel programs (built by build.rs with aya-build).
static PROGRAMS: &[u8] = aya::include_bytes_aligned!(concat!(env!("OUT_DIR"), "/signal-trace"));

const SIGNAL_SYSCALLS: [&str; 6] = [
    "kill",
    "tkill",
    "tgkill",
    "rt_sigqueueinfo",
    "rt_tgsigqueueinfo",
    "pidfd_send_signal",
];

/// How much of the kernel's state the programs can read.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Mode {
    /// Raw tracepoints reading task_struct through BTF offsets: everything.
    Full,
    /// Classic tracepoints' own fields only (no BTF).
    Classic,
}

/// Makes sure tracefs is mounted where aya looks for it (classic tracepoints need their ids).
fn ensure_tracefs() -> anyhow::Result<()> {
    for dir in ["/sys/kernel/tracing", "/sys/kernel/debug/tracing"] {
        if Path::new(dir).join("events").is_dir() {
            return Ok(());
        }
    }
    let target = c"/sys/kernel/tracing";
    // SAFETY: mount(2) with valid NUL-terminated strings and no data.
    let rc = unsafe {
        libc::mount(
            c"tracefs".as_ptr(),
            target.as_ptr(),
            c"tracefs".as_ptr(),
            0,
            std::ptr::null(),
        )
    };
    if rc != 0 {
        return Err(io::Error::last_os_error())
            .context("cannot mount tracefs on /sys/kernel/tracing");
    }
    Ok(())
}

fn tracefs_file(rel: &str) -> io::Result<String> {
    fs::read_to_string(Path::new("/sys/kernel/tracing").join(rel))
        .or_else(|_| fs::read_to_string(Path::new("/sys/kernel/debug/tracing").join(rel)))
}

/// Loads and attaches the BTF tracepoint program named after its tracepoint.
fn attach_btf_tracepoint(
    ebpf: &mut Ebpf,
    btf: &Result<aya::Btf, String>,
    name: &str,
) -> anyhow::Result<()> {
    let btf = btf.as_ref().map_err(|e| anyhow!("{e}"))?;
    let p: &mut BtfTracePoint = ebpf
        .program_mut(name)
        .ok_or_else(|| anyhow!("no program {name}"))?
        .try_into()?;
    p.load(name, btf)
        .with_context(|| format!("the kernel refused program {name}"))?;
    p.attach()
        .with_context(|| format!("cannot attach {name} to its BTF tracepoint"))?;
    Ok(())
}

/// The refused-send fexit programs and the x86-64 functions they attach to, in `SYSCALL_*`
/// order.
const FEXIT_PROGRAMS: [(&str, &str); 6] = [
    ("fexit_kill", "__x64_sys_kill"),
    ("fexit_tkill", "__x64_sys_tkill"),
    ("fexit_tgkill", "__x64_sys_tgkill"),
    ("fexit_rt_sigqueueinfo", "__x64_sys_rt_sigqueueinfo"),
    ("fexit_rt_tgsigqueueinfo", "__x64_sys_rt_tgsigqueueinfo"),
    ("fexit_pidfd_send_signal", "__x64_sys_pidfd_send_signal"),
];

/// Loads and attaches the six fexit programs, or none: on the first refusal the ones already
/// attached are unloaded, and the refusal is returned.
fn attach_fexit(ebpf: &mut Ebpf, btf: &Result<aya::Btf, String>) -> anyhow::Result<usize> {
    let btf = btf.as_ref().map_err(|e| anyhow!("{e}"))?;
    let mut done: Vec<&str> = Vec::new();
    let mut result = Ok(());
    for (prog, function) in FEXIT_PROGRAMS {
        let step = (|| -> anyhow::Result<()> {
            let p: &mut FExit = ebpf
                .program_mut(prog)
                .ok_or_else(|| anyhow!("no program {prog}"))?
                .try_into()?;
            p.load(function, btf)
                .with_context(|| format!("the kernel refused fexit program {prog}"))?;
            p.attach()
                .with_context(|| format!("cannot attach {prog} to {function}"))?;
            Ok(())
        })();
        match step {
            Ok(()) => done.push(prog),
            Err(e) => {
                result = Err(e);
                break;
            }
        }
    }
    if let Err(e) = result {
        for prog in done {
            if let Some(p) = ebpf.program_mut(prog) {
                let p: Result<&mut FExit, _> = p.try_into();
                if let Ok(p) = p {
                    let _ = p.unload();
                }
            }
        }
        return Err(e);
    }
    Ok(FEXIT_PROGRAMS.len())
}

/// How refused sends are watched, as chosen at start-up.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum SendWatch {
    /// fexit programs on the six signal syscalls: only those syscalls pay.
    Fexit,
    /// The syscall-exit watcher (raw `sys_exit`, or the classic per-syscall tracepoints): every
    /// syscall of every process takes the kernel's syscall-tracing slow path.
    SyscallTracepoint,
    /// Not watched.
    Off,
}

/// Loaded and attached programs, with the maps userspace reads.
pub struct Tracer {
    _ebpf: Ebpf,
    events: RingBuf<MapData>,
    /// The exec and fork records (empty without process identities).
    procs: RingBuf<MapData>,
    lost: PerCpuArray<MapData, u64>,
    containers: Option<Containers>,
    /// The process-identity cache, fed by the exec and fork programs; None when they are not
    /// attached (`--no-process-identity`, no BTF, or kernel offsets missing).
    processes: Option<Processes>,
    pub mode: Mode,
    pub attached: usize,
    pub warnings: Vec<String>,
    /// The events actually traced (the start-up line says these, not the ones asked for).
    pub traced: Vec<EventKind>,
    pub send_watch: SendWatch,
    /// Why refused sends are not watched, when they were wanted but are not.
    pub send_failed_off: Option<String>,
}

impl Tracer {
    pub fn start(cfg: &Config) -> anyhow::Result<Tracer> {
        if PROGRAMS.is_empty() {
            bail!("this signal-trace was built without its kernel programs (bpf-linker was missing at build time); run scripts/setup.sh and rebuild");
        }
        let mut warnings = Vec::new();
        // Kernels before 5.11 charge BPF memory to RLIMIT_MEMLOCK; later ones do not, and
        // raising it may be refused (no CAP_SYS_RESOURCE): never fatal.
        let rlim = libc::rlimit {
            rlim_cur: libc::RLIM_INFINITY,
            rlim_max: libc::RLIM_INFINITY,
        };
        // SAFETY: setrlimit with a valid struct.
        let memlock = if unsafe { libc::setrlimit(libc::RLIMIT_MEMLOCK, &rlim) } != 0 {
            Some(io::Error::last_os_error())
        } else {
            None
        };

        // Descriptors: the soft limit up to the hard one (containers often start at 1024:1024
        // or 1024:524288). The metrics endpoint caps its connections anyway; this leaves room
        // for cgroup scans and the runtime client whatever the soft default.
        let mut nofile = libc::rlimit {
            rlim_cur: 0,
            rlim_max: 0,
        };
        // SAFETY: getrlimit/setrlimit with a valid struct.
        unsafe {
            if libc::getrlimit(libc::RLIMIT_NOFILE, &mut nofile) == 0
                && nofile.rlim_cur < nofile.rlim_max
            {
                nofile.rlim_cur = nofile.rlim_max;
                libc::setrlimit(libc::RLIMIT_NOFILE, &nofile);
            }
        }

        // glibc raises its mmap threshold to the size of the largest block freed (up to 32 MiB),
        // after which the multi-megabyte buffers of the BTF parses below would come from the
        // heap, where they may be copied as they grow and stay resident after being freed. A
        // fixed threshold keeps them in mappings of their own, returned when freed.
        // SAFETY: mallopt has no preconditions.
        unsafe { libc::mallopt(libc::M_MMAP_THRESHOLD, 128 * 1024) };
        // aya's EbpfLoader::new() parses /sys/kernel/btf/vmlinux for CO-RE relocations, which
        // these programs do not have (offsets come from OFFSETS): make it before any other BTF
        // is in memory and drop its parse at once, so that the two are never held together.
        let mut loader = EbpfLoader::new();
        loader.btf(None);
        // SAFETY: malloc_trim has no preconditions.
        unsafe { libc::malloc_trim(0) };

        let (offsets, mode, btf) = match kernel_offsets_from_file(&cfg.btf) {
            Ok((o, btf)) => (o, Mode::Full, Some(btf)),
            Err(e) => {
                warnings.push(format!(
                    "{e}; tracing in reduced mode: no target process id, PID-namespace pid, cgroup, disposition, ignore reason, process exits or programs of senders and targets"
                ));
                (KernelOffsets::default(), Mode::Classic, None)
            }
        };
        let wants = |k| cfg.events.contains(&k);
        // Failed sends come from the raw sys_exit program when pt_regs could be resolved
        // (x86-64 with BTF), else from the classic syscall tracepoints, which need tracefs.
        let raw_sys_exit = mode == Mode::Full && offsets.regs_orig_ax != 0;
        // The syscall-tracepoint watchers tax every syscall of the host: only when --events
        // names send_failed (the fexit programs, tried first, cost only the six syscalls).
        let watcher_allowed = cfg.send_failed_asked;
        let needs_tracefs = (wants(EventKind::SendFailed) && !raw_sys_exit && watcher_allowed)
            || wants(EventKind::Oom)
            || mode == Mode::Classic;
        let mut tracefs_ok = true;
        if needs_tracefs {
            if let Err(e) = ensure_tracefs() {
                if mode == Mode::Classic {
                    return Err(e.context("without BTF the classic tracepoints are needed"));
                }
                warnings.push(format!(
                    "{e:#}; {} not traced",
                    if wants(EventKind::Oom) && wants(EventKind::SendFailed) && !raw_sys_exit {
                        "refused sends and OOM kills are"
                    } else if wants(EventKind::Oom) {
                        "OOM kills are"
                    } else {
                        "refused sends are"
                    }
                ));
                tracefs_ok = false;
            }
        }
        let mut classic = if mode == Mode::Classic {
            let g = tracefs_file("events/signal/signal_generate/format")
                .context("cannot read the signal_generate tracepoint format")?;
            let d = tracefs_file("events/signal/signal_deliver/format")
                .context("cannot read the signal_deliver tracepoint format")?;
            classic_offsets(&g, &d)?
        } else {
            ClassicOffsets::default()
        };
        let mut oom_ok = wants(EventKind::Oom) && tracefs_ok;
        if oom_ok {
            match tracefs_file("events/oom/mark_victim/format")
                .map_err(anyhow::Error::from)
                .and_then(|f| Ok(oom_offsets(&f)?))
            {
                Ok((pid, comm)) => (classic.oom_pid, classic.oom_comm) = (pid, comm),
                Err(e) => {
                    warnings.push(format!("cannot read the oom:mark_victim format ({e:#}); OOM kills are seen only as SIGKILL from the kernel"));
                    oom_ok = false;
                }
            }
        }

        // The batching threshold: wake the reader when an eighth of the ring is used.
        let filter = kernel_filter(&cfg.filters, u64::from(cfg.ring_size / 8));
        loader
            .override_global("OFFSETS", &offsets, true)
            .override_global("CLASSIC", &classic, true)
            .override_global("FILTER", &filter.config, true)
            .map_max_entries("EVENTS", cfg.ring_size);
        let mut ebpf = loader.load(PROGRAMS).map_err(|e| {
            let e = anyhow::Error::from(e).context("cannot load the kernel programs");
            match &memlock {
                // Kernels before 5.11 charge BPF memory to RLIMIT_MEMLOCK.
                Some(m) => e.context(format!(
                    "raising RLIMIT_MEMLOCK failed ({m}); kernels before 5.11 need it raised"
                )),
                None => e,
            }
        })?;

        {
            let mut pids: BpfHashMap<_, u32, u32> = BpfHashMap::try_from(
                ebpf.map_mut("PID_FILTER")
                    .ok_or_else(|| anyhow!("no PID_FILTER map"))?,
            )?;
            for (pid, sides) in &filter.pids {
                pids.insert(pid, sides, 0)
                    .context("cannot fill the pid filter")?;
            }
        }
        {
            let mut comms: BpfHashMap<_, [u8; 16], u32> = BpfHashMap::try_from(
                ebpf.map_mut("COMM_FILTER")
                    .ok_or_else(|| anyhow!("no COMM_FILTER map"))?,
            )?;
            for (comm, sides) in &filter.comms {
                comms
                    .insert(comm, sides, 0)
                    .context("cannot fill the comm filter")?;
            }
        }

        let containers = Containers::new(cfg, &mut ebpf, &mut warnings)?;
        let mut attached = 0;
        let mut typed = 0;
        // The typed programs attach by the BTF id of their tracepoint: aya needs the kernel's BTF.
        // It parses the bytes the offsets were read from, which are freed right after.
        let kernel_btf = match btf.filter(|_| {
            wants(EventKind::Generate)
                || wants(EventKind::Deliver)
                || (wants(EventKind::SendFailed) && raw_sys_exit)
        }) {
            Some(bytes) => aya::Btf::parse(&bytes, aya::Endianness::default())
                .map_err(|e| format!("cannot parse BTF from {}: {e}", cfg.btf.display())),
            None => Err("no BTF".to_string()),
        };
        // Refused sends: fexit programs where the kernel allows them (x86-64 with BTF: they read
        // the syscall's saved registers like sys_exit does), else the syscall-exit watcher when
        // asked for, else off.
        let mut fexit_attached = 0;
        let mut send_watch = SendWatch::Off;
        let mut send_failed_off = None;
        if wants(EventKind::SendFailed) {
            let fexit_err = if raw_sys_exit {
                match attach_fexit(&mut ebpf, &kernel_btf) {
                    Ok(n) => {
                        fexit_attached = n;
                        send_watch = SendWatch::Fexit;
                        None
                    }
                    Err(e) => Some(format!(
                        "this kernel refuses the fexit programs ({})",
                        e.chain()
                            .find_map(|c| c.downcast_ref::<io::Error>())
                            .and_then(io::Error::raw_os_error)
                            .map(|n| crate::event::names::errno_name(n).into_owned())
                            .unwrap_or_else(|| e.root_cause().to_string())
                    )),
                }
            } else {
                Some(if mode == Mode::Full {
                    "fexit programs are used on x86-64 only".to_string()
                } else {
                    "fexit programs need BTF".to_string()
                })
            };
            if send_watch == SendWatch::Off {
                if watcher_allowed && (raw_sys_exit || tracefs_ok) {
                    send_watch = SendWatch::SyscallTracepoint;
                } else if watcher_allowed {
                    send_failed_off = Some("tracefs is not available".to_string());
                } else {
                    send_failed_off = fexit_err;
                }
            }
        }
        let mut raw = |ebpf: &mut Ebpf, prog: &str, tp: &str| -> anyhow::Result<()> {
            let p: &mut RawTracePoint = ebpf
                .program_mut(prog)
                .ok_or_else(|| anyhow!("no program {prog}"))?
                .try_into()?;
            p.load()
                .with_context(|| format!("the kernel refused program {prog}"))?;
            p.attach(tp)
                .with_context(|| format!("cannot attach {prog} to raw tracepoint {tp}"))?;
            attached += 1;
            Ok(())
        };
        // The typed (BTF tracepoint) programs read the target without helper calls; where the
        // kernel refuses one, its raw tracepoint version reads the same through the helper.
        for (kind, name) in [
            (EventKind::Generate, "signal_generate"),
            (EventKind::Deliver, "signal_deliver"),
        ] {
            if !wants(kind) || mode != Mode::Full {
                continue;
            }
            match attach_btf_tracepoint(&mut ebpf, &kernel_btf, name) {
                Ok(()) => typed += 1,
                Err(e) => {
                    warnings.push(format!(
                        "{e:#}; {name} falls back to the raw tracepoint (slower)"
                    ));
                    raw(&mut ebpf, &format!("{name}_raw"), name)?;
                }
            }
        }
        if wants(EventKind::Exit) {
            if mode == Mode::Full {
                // The tracepoint carries group_dead since 6.16; before, attaching a program
                // that reads a second argument fails, and the program that picks one thread
                // per process itself takes over (signal-trace-ebpf/src/exit.rs).
                if let Err(e) = raw(&mut ebpf, "sched_process_exit", "sched_process_exit") {
                    raw(&mut ebpf, "sched_process_exit_live", "sched_process_exit").with_context(
                        || format!("after {e:#} (kernels before 6.16 have no group_dead)"),
                    )?;
                }
            } else {
                warnings.push("process exits are not traced without BTF".into());
            }
        }
        if send_watch == SendWatch::SyscallTracepoint && raw_sys_exit {
            raw(&mut ebpf, "sys_exit", "sys_exit")?;
        }
        if containers.as_ref().is_some_and(|c| c.filter.is_some()) {
            if mode == Mode::Full {
                raw(&mut ebpf, "cgroup_mkdir", "cgroup_mkdir")?;
            } else {
                warnings.push(
                    "without BTF new containers join the container filter only on the next refresh (every 2 s)"
                        .into(),
                );
            }
        }
        // The process identities: every exec and fork of the host, then what /proc shows of the
        // processes already running (in that order, so that none falls between the two).
        let identity_offsets = offsets.task_real_parent != 0
            && offsets.task_mm != 0
            && offsets.mm_arg_start != 0
            && offsets.binprm_filename != 0;
        let processes = if !cfg.process_identity
            || !(wants(EventKind::Generate) || wants(EventKind::SendFailed))
        {
            None
        } else if mode != Mode::Full {
            // The reduced-mode warning says it.
            None
        } else if !identity_offsets {
            warnings.push(
                "the programs of senders and targets are not known here (the kernel's task_struct, mm_struct or linux_binprm lacks a field used): exe, args and ancestors stay null".into(),
            );
            None
        } else {
            raw(&mut ebpf, "sched_process_exec", "sched_process_exec")?;
            raw(&mut ebpf, "sched_process_fork", "sched_process_fork")?;
            let mut p = Processes::new(Path::new("/proc"), MAX_PROCESSES);
            p.seed();
            Some(p)
        };

        let mut classic_tp =
            |ebpf: &mut Ebpf, prog: &str, points: &[(&str, String)]| -> anyhow::Result<()> {
                let p: &mut TracePoint = ebpf
                    .program_mut(prog)
                    .ok_or_else(|| anyhow!("no program {prog}"))?
                    .try_into()?;
                p.load()
                    .with_context(|| format!("the kernel refused program {prog}"))?;
                for (category, name) in points {
                    p.attach(category, name).with_context(|| {
                        format!("cannot attach {prog} to tracepoint {category}:{name}")
                    })?;
                    attached += 1;
                }
                Ok(())
            };
        if mode == Mode::Classic {
            if wants(EventKind::Generate) {
                classic_tp(
                    &mut ebpf,
                    "signal_generate_classic",
                    &[("signal", "signal_generate".into())],
                )?;
            }
            if wants(EventKind::Deliver) {
                classic_tp(
                    &mut ebpf,
                    "signal_deliver_classic",
                    &[("signal", "signal_deliver".into())],
                )?;
            }
        }
        if send_watch == SendWatch::SyscallTracepoint && !raw_sys_exit {
            for sc in SIGNAL_SYSCALLS {
                classic_tp(
                    &mut ebpf,
                    &format!("sys_enter_{sc}"),
                    &[("syscalls", format!("sys_enter_{sc}"))],
                )?;
            }
            let exits: Vec<_> = SIGNAL_SYSCALLS
                .iter()
                .map(|sc| ("syscalls", format!("sys_exit_{sc}")))
                .collect();
            classic_tp(&mut ebpf, "sys_exit_signal", &exits)?;
        }

        if oom_ok {
            classic_tp(
                &mut ebpf,
                "oom_mark_victim",
                &[("oom", "mark_victim".into())],
            )?;
        }

        drop(kernel_btf);
        // Start-up parsed megabytes of BTF and ELF; give the freed memory back to the system.
        // SAFETY: malloc_trim has no preconditions.
        unsafe { libc::malloc_trim(0) };

        let events = RingBuf::try_from(
            ebpf.take_map("EVENTS")
                .ok_or_else(|| anyhow!("no EVENTS map"))?,
        )?;
        let procs = RingBuf::try_from(
            ebpf.take_map("PROCS")
                .ok_or_else(|| anyhow!("no PROCS map"))?,
        )?;
        let lost = PerCpuArray::try_from(
            ebpf.take_map("LOST")
                .ok_or_else(|| anyhow!("no LOST map"))?,
        )?;
        Ok(Tracer {
            _ebpf: ebpf,
            events,
            procs,
            lost,
            containers,
            processes,
            mode,
            attached: attached + typed + fexit_attached,
            warnings,
            traced: cfg
                .events
                .iter()
                .copied()
                .filter(|&k| match k {
                    EventKind::SendFailed => send_watch != SendWatch::Off,
                    EventKind::Oom => oom_ok,
                    EventKind::Exit => mode == Mode::Full,
                    _ => true,
                })
                .collect(),
            send_watch,
            send_failed_off,
        })
    }
}

/// Why the trace loop stopped.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Stop {
    Signal,
    Duration,
    Count,
    BrokenPipe,
}

/// Totals for the closing line.
#[derive(Debug, Default, Clone, Copy)]
pub struct Totals {
    pub events: u64,
    pub lost: u64,
}

/// What the loop does with each record: print it, or feed the diagnosis engine and print its
/// findings.
pub enum Consumer {
    Print,
    Explain { engine: Box<Engine>, timeline: bool },
}

/// An exec or fork record waiting to be applied to the process-identity cache.
enum ProcessRecord {
    Exec(Box<signal_trace_common::Exec>),
    Fork { parent: u32, child: u32 },
}

struct Loop<W: Write> {
    sink: Sink<W>,
    consumer: Consumer,
    summary: Option<Summarizer>,
    correlator: Correlator,
    clock: Clock,
    node: Node,
    cfg: Config,
    totals: Totals,
    lost_seen: [u64; KIND_COUNT as usize],
    last_warning: Option<Instant>,
    containers: Option<Containers>,
    processes: Option<Processes>,
    /// Exec and fork records read but not applied yet (newer than the events handled).
    pending_processes: std::collections::VecDeque<(u64, ProcessRecord)>,
    metrics: Option<Metrics>,
    last_refresh: Instant,
    malformed: u64,
}

impl<W: Write> Loop<W> {
    /// An exec or fork record (from `PROCS`): queued until the events from before it are
    /// handled, so that each event sees the processes as they were when it happened.
    fn take_process(&mut self, bytes: &[u8]) {
        use signal_trace_common::{KIND_EXEC, KIND_FORK};
        if self.processes.is_none() {
            return;
        }
        let rec = match record_kind(bytes) {
            Some(KIND_EXEC) => {
                parse_exec(bytes).map(|x| (x.ts_ns, ProcessRecord::Exec(Box::new(x))))
            }
            Some(KIND_FORK) => parse_event(bytes).map(|e| {
                (
                    e.ts_ns,
                    ProcessRecord::Fork {
                        parent: e.sender.tgid,
                        child: e.target.tgid,
                    },
                )
            }),
            Some(k) => Err(DecodeError::Kind(k)),
            None => Err(DecodeError::Size(bytes.len(), 4)),
        };
        match rec {
            Ok(r) => self.pending_processes.push_back(r),
            Err(e) => self.malformed(&e),
        }
    }

    /// Applies the queued exec and fork records up to time `until` (CLOCK_MONOTONIC ns).
    fn apply_processes(&mut self, until: u64) {
        let Some(p) = &mut self.processes else {
            return;
        };
        while self
            .pending_processes
            .front()
            .is_some_and(|(ts, _)| *ts <= until)
        {
            match self.pending_processes.pop_front() {
                Some((_, ProcessRecord::Exec(x))) => p.exec(&x),
                Some((_, ProcessRecord::Fork { parent, child })) => p.fork(parent, child),
                None => break,
            }
        }
    }

    /// Whether `bytes` is a record whose sender the process-identity cache does not know.
    fn sender_unknown(&self, bytes: &[u8]) -> bool {
        use signal_trace_common::{Event, Task, KIND_GENERATE, KIND_SEND_FAILED};
        let Some(p) = &self.processes else {
            return false;
        };
        if !matches!(record_kind(bytes), Some(KIND_GENERATE | KIND_SEND_FAILED)) {
            return false;
        }
        let at = std::mem::offset_of!(Event, sender) + std::mem::offset_of!(Task, tgid);
        bytes
            .get(at..at + 4)
            .and_then(|b| b.try_into().ok())
            .is_some_and(|b| p.get(u32::from_ne_bytes(b)).is_none())
    }

    /// Counts a record the decoder refused, and says so for the first few.
    fn malformed(&mut self, e: &DecodeError) {
        // Never expected: the programs and this decoder share their types.
        self.malformed += 1;
        if self.malformed <= 10 {
            eprintln!(
                "signal-trace: warning: dropping a malformed record from the kernel: {}",
                crate::escape::escape(e.to_string())
            );
        }
    }

    /// Handles one record of `EVENTS`. Errors are output failures.
    fn handle(&mut self, bytes: &[u8]) -> io::Result<()> {
        let event = parse_event(bytes);
        if let Ok(e) = &event {
            if e.kind == signal_trace_common::KIND_CGROUP {
                // Internal: it keeps the container filter current and is not reported.
                if let Some(c) = &mut self.containers {
                    c.new_cgroup(e.target.cgroup_id);
                }
                return Ok(());
            }
        }
        let rec = event.and_then(|e| decode(&e, &self.clock, &self.node));
        let mut rec = match rec {
            Ok(r) => r,
            Err(e) => {
                self.malformed(&e);
                return Ok(());
            }
        };
        if let Some(p) = &mut self.processes {
            p.enrich(&mut rec);
            if let Record::Exit(x) = &rec {
                p.exit(x.pid);
            }
        }
        if let Some(c) = &mut self.containers {
            c.enrich(&mut rec);
            if !c.keeps(&rec) {
                return Ok(());
            }
        }
        if !self.correlator.process(&mut rec) || !userspace_keeps(&self.cfg.filters, &rec) {
            return Ok(());
        }
        if self.cfg.count.is_some_and(|n| self.totals.events >= n) {
            return Ok(());
        }
        self.totals.events += 1;
        if let Some(m) = &mut self.metrics {
            m.record(&rec);
        }
        self.consume(&rec)
    }

    fn consume(&mut self, rec: &Record) -> io::Result<()> {
        if let Some(s) = &mut self.summary {
            if let Some(done) = s.push(rec) {
                self.sink.write(&done)?;
            }
        }
        match &mut self.consumer {
            Consumer::Print if self.summary.is_some() => Ok(()),
            Consumer::Print => self.sink.write(rec),
            Consumer::Explain { engine, .. } => {
                for f in engine.push(rec) {
                    self.sink.write(&f)?;
                }
                Ok(())
            }
        }
    }

    /// Lets the diagnosis engine conclude what a quiet stream can no longer change, closes a
    /// summary interval that is over, and keeps the container view current.
    fn advance(&mut self) -> io::Result<()> {
        if let Some(c) = &mut self.containers {
            c.poll();
        }
        if self.last_refresh.elapsed() >= CONTAINER_REFRESH {
            self.last_refresh = Instant::now();
            if let Some(c) = &mut self.containers {
                c.refresh();
                if let Some(m) = &mut self.metrics {
                    m.runtime_failures(c.failures());
                }
            }
        }
        if let Some(s) = &mut self.summary {
            if let Some(done) = s.flush_before(self.clock.wall(monotonic_ns())) {
                self.sink.write(&done)?;
            }
        }
        if let Consumer::Explain { engine, .. } = &mut self.consumer {
            let now = self.clock.wall(monotonic_ns());
            let behind = crate::event::record::Time(now.0.saturating_sub(2_000_000_000));
            for f in engine.advance(behind) {
                self.sink.write(&f)?;
            }
        }
        Ok(())
    }

    /// End of the stream: the last summary, the engine's last findings and the timelines.
    fn finish(&mut self) -> io::Result<()> {
        if let Some(s) = &mut self.summary {
            if let Some(done) = s.finish(self.clock.wall(monotonic_ns())) {
                self.sink.write(&done)?;
            }
        }
        if let Consumer::Explain { engine, timeline } = &mut self.consumer {
            for f in engine.finish() {
                self.sink.write(&f)?;
            }
            if *timeline {
                for t in engine.timelines() {
                    self.sink.write(&t)?;
                }
            }
        }
        Ok(())
    }

    /// Reports records the kernel could not send since the last check.
    fn check_lost(&mut self, now: [u64; KIND_COUNT as usize]) -> io::Result<()> {
        let delta: Vec<u64> = now
            .iter()
            .zip(self.lost_seen)
            .map(|(n, s)| n.saturating_sub(s))
            .collect();
        let count: u64 = delta.iter().sum();
        if count == 0 {
            return Ok(());
        }
        self.lost_seen = now;
        self.totals.lost += count;
        let rec = Record::Lost(Lost {
            time: self.clock.wall(monotonic_ns()),
            host: self.node.host.clone(),
            boot_id: self.node.boot_id.clone(),
            count,
            events: LostByKind {
                generate: delta[1],
                deliver: delta[2],
                exit: delta[3],
                send_failed: delta[4],
                oom: delta[5],
                cgroup: delta[6],
                exec: delta[7],
                fork: delta[8],
            },
        });
        if self
            .last_warning
            .is_none_or(|t| t.elapsed() >= Duration::from_secs(1))
        {
            self.last_warning = Some(Instant::now());
            eprintln!("signal-trace: warning: {count} events lost (ring buffer full); raise --ring-size or narrow the filters");
        }
        if let Some(m) = &mut self.metrics {
            m.record(&rec);
        }
        self.consume(&rec)
    }
}

fn drain_procs<W: Write>(procs: &mut RingBuf<MapData>, lp: &mut Loop<W>) {
    while let Some(item) = procs.next() {
        lp.take_process(&item);
    }
}

fn monotonic_ns() -> u64 {
    let mut ts = libc::timespec {
        tv_sec: 0,
        tv_nsec: 0,
    };
    // SAFETY: clock_gettime writes one timespec.
    unsafe { libc::clock_gettime(libc::CLOCK_MONOTONIC, &mut ts) };
    ts.tv_sec as u64 * 1_000_000_000 + ts.tv_nsec as u64
}

/// Opens the output: standard output, or a file checked as [`crate::sink::file`] says.
pub fn open_output(cfg: &Config) -> anyhow::Result<Output> {
    Ok(Output::open(cfg)?)
}

/// Handlers for every signal that would otherwise end the tracer without draining the ring:
/// SIGINT, SIGTERM, SIGQUIT, SIGUSR1, SIGUSR2 and SIGALRM stop it cleanly (the ring is drained
/// and the totals printed); SIGHUP reopens the output file. They are installed before the
/// tracer says it is tracing, so a signal sent from then on is always handled. (SIGPIPE stays
/// ignored, as Rust sets it: a closed pipe is a write error, and a clean stop.)
pub struct StopSignals {
    stops: Stops,
    hup: tokio::signal::unix::Signal,
}

/// The handlers of [`STOP_SIGNALS`].
struct Stops(Vec<(i32, tokio::signal::unix::Signal)>);

/// The signals that stop the tracer cleanly.
const STOP_SIGNALS: [(i32, &str); 6] = [
    (libc::SIGINT, "SIGINT"),
    (libc::SIGTERM, "SIGTERM"),
    (libc::SIGQUIT, "SIGQUIT"),
    (libc::SIGUSR1, "SIGUSR1"),
    (libc::SIGUSR2, "SIGUSR2"),
    (libc::SIGALRM, "SIGALRM"),
];

impl StopSignals {
    /// Must be called inside the tokio runtime (`rt.enter()`).
    pub fn install() -> anyhow::Result<StopSignals> {
        let mut stops = Vec::new();
        for (signo, name) in STOP_SIGNALS {
            stops.push((
                signo,
                signal(SignalKind::from_raw(signo))
                    .with_context(|| format!("cannot handle {name}"))?,
            ));
        }
        Ok(StopSignals {
            stops: Stops(stops),
            hup: signal(SignalKind::hangup()).context("cannot handle SIGHUP")?,
        })
    }
}

impl Stops {
    /// The next stop signal.
    async fn next(&mut self) -> i32 {
        let [a, b, c, d, e, f] = &mut self.0[..] else {
            unreachable!("one handler per stop signal")
        };
        tokio::select! {
            _ = a.1.recv() => a.0,
            _ = b.1.recv() => b.0,
            _ = c.1.recv() => c.0,
            _ = d.1.recv() => d.0,
            _ = e.1.recv() => e.0,
            _ = f.1.recv() => f.0,
        }
    }
}

/// Streams until stopped; returns why it stopped and the totals. Output errors other than a
/// closed pipe are returned as errors.
pub async fn run(
    cfg: Config,
    tracer: Tracer,
    out: Output,
    consumer: Consumer,
    stops: StopSignals,
    metrics: Option<(Metrics, Server)>,
) -> anyhow::Result<(Stop, Totals)> {
    let metrics = match metrics {
        Some((m, server)) => {
            server
                .spawn()
                .context("cannot start the metrics endpoint's thread")?;
            Some(m)
        }
        None => None,
    };
    let Tracer {
        _ebpf: ebpf,
        events,
        procs,
        lost,
        containers,
        processes,
        ..
    } = tracer;
    let lost_reader = LostReader { lost };
    // SAFETY: the ring buffer owns its fd and outlives the registration (both are dropped
    // together at the end of this function).
    let mut ring =
        unsafe { AsyncFd::register_with_interest(events, tokio::io::Interest::READABLE) }
            .map_err(|e| anyhow!("cannot poll the ring buffer: {e}"))?;
    // SAFETY: as above.
    let mut procs_ring =
        unsafe { AsyncFd::register_with_interest(procs, tokio::io::Interest::READABLE) }
            .map_err(|e| anyhow!("cannot poll the process ring buffer: {e}"))?;
    let StopSignals {
        stops: mut stop_signals,
        mut hup,
    } = stops;
    let format = cfg.format;
    let color = cfg.color;
    let target = match &cfg.output {
        Some(p) => p.display().to_string(),
        None => "standard output".to_string(),
    };
    let mut lp = Loop {
        sink: Sink::new(out, format, color),
        correlator: Correlator::new(cfg.filters.sender_only()),
        clock: Clock::now(),
        node: Node::current(),
        totals: Totals::default(),
        lost_seen: [0; KIND_COUNT as usize],
        last_warning: None,
        consumer,
        summary: cfg.summary.map(|d| Summarizer::new(d.as_nanos() as u64)),
        containers,
        processes,
        pending_processes: Default::default(),
        metrics,
        last_refresh: Instant::now(),
        malformed: 0,
        cfg,
    };
    // The programs wake us only past a backlog; this tick bounds the latency of a quiet stream.
    let mut tick = tokio::time::interval(Duration::from_millis(50));
    tick.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
    let deadline = lp.cfg.duration.map(|d| tokio::time::Instant::now() + d);
    let sleep = tokio::time::sleep_until(
        deadline.unwrap_or_else(|| tokio::time::Instant::now() + Duration::from_secs(86400 * 365)),
    );
    tokio::pin!(sleep);

    let outcome: io::Result<Stop> = async {
        loop {
            tokio::select! {
                guard = ring.readable_mut() => {
                    let mut guard = guard?;
                    drain(guard.get_inner_mut(), procs_ring.get_mut(), &mut lp)?;
                    guard.clear_ready();
                }
                guard = procs_ring.readable_mut() => {
                    // Half full: the events first, so that they see the processes as they were.
                    let mut guard = guard?;
                    drain(ring.get_mut(), guard.get_inner_mut(), &mut lp)?;
                    guard.clear_ready();
                }
                _ = tick.tick() => {
                    drain(ring.get_mut(), procs_ring.get_mut(), &mut lp)?;
                    lp.check_lost(lost_reader.totals())?;
                    lp.advance()?;
                    lp.sink.flush()?;
                }
                _ = stop_signals.next() => return Ok(Stop::Signal),
                _ = hup.recv() => {
                    // Whatever is buffered goes to the old file (logrotate renamed it), then
                    // the path is opened anew with the same checks.
                    drain(ring.get_mut(), procs_ring.get_mut(), &mut lp)?;
                    lp.sink.flush()?;
                    if let Err(e) = lp.sink.get_mut().reopen() {
                        eprintln!("signal-trace: warning: {e}; still writing to the file already open");
                    }
                }
                _ = &mut sleep, if deadline.is_some() => return Ok(Stop::Duration),
            }
            if lp.cfg.count.is_some_and(|n| lp.totals.events >= n) {
                return Ok(Stop::Count);
            }
        }
    }
    .await;
    let stop = match outcome {
        Ok(stop) => {
            // Drain what is still in the ring, then the final loss count.
            let done = drain(ring.get_mut(), procs_ring.get_mut(), &mut lp)
                .and_then(|_| lp.check_lost(lost_reader.totals()))
                .and_then(|_| lp.finish())
                .and_then(|_| lp.sink.flush());
            match done {
                Ok(()) => stop,
                Err(e) if e.kind() == io::ErrorKind::BrokenPipe => Stop::BrokenPipe,
                Err(e) => return Err(e).context(format!("cannot write events to {target}")),
            }
        }
        Err(e) if e.kind() == io::ErrorKind::BrokenPipe => Stop::BrokenPipe,
        Err(e) => return Err(e).context(format!("cannot write events to {target}")),
    };
    // Detach everything before returning: programs and links are closed with their fds.
    drop(ring);
    drop(procs_ring);
    drop(ebpf);
    Ok((stop, lp.totals))
}

struct LostReader {
    lost: PerCpuArray<MapData, u64>,
}

impl LostReader {
    /// Records the programs could not send so far, per kind, summed over CPUs.
    fn totals(&self) -> [u64; KIND_COUNT as usize] {
        let mut totals = [0u64; KIND_COUNT as usize];
        for (kind, total) in totals.iter_mut().enumerate() {
            if let Ok(values) = self.lost.get(&(kind as u32), 0) {
                *total = values.iter().sum();
            }
        }
        totals
    }
}

/// Handles what the rings hold, in time order across the two: before each event, the exec and
/// fork records from before it are applied (and `procs` is read again when the event's sender
/// is unknown: its exec may have been written after the first read, but before its signal);
/// the rest once the events are done.
fn drain<W: Write>(
    ring: &mut RingBuf<MapData>,
    procs: &mut RingBuf<MapData>,
    lp: &mut Loop<W>,
) -> io::Result<()> {
    drain_procs(procs, lp);
    let ts_at = std::mem::offset_of!(signal_trace_common::Event, ts_ns);
    while let Some(item) = ring.next() {
        let ts = item
            .get(ts_at..ts_at + 8)
            .and_then(|b| b.try_into().ok())
            .map_or(u64::MAX, u64::from_ne_bytes);
        lp.apply_processes(ts);
        if lp.sender_unknown(&item) {
            drain_procs(procs, lp);
            lp.apply_processes(ts);
        }
        lp.handle(&item)?;
        if lp.cfg.count.is_some_and(|n| lp.totals.events >= n) {
            break;
        }
    }
    lp.apply_processes(u64::MAX);
    Ok(())
}
