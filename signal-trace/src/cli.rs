//! Raw command-line arguments, as clap parses them. Validation into a [`crate::config::Config`]
//! happens in `config`.

use std::path::PathBuf;

use clap::{Args, Parser, Subcommand, ValueEnum};

use crate::replay::When;

#[derive(Debug, Parser)]
#[command(
    name = "signal-trace",
    version = env!("SIGNAL_TRACE_VERSION"),
    about = "Trace every signal on the host: who sent it, who got it, and what the kernel did with it",
    long_about = None,
    args_conflicts_with_subcommands = true,
    after_help = "Filters combine with AND; the values of one filter with OR. \
Lists take commas or repeated flags: --signal TERM,KILL --signal USR1."
)]
pub struct Cli {
    #[command(subcommand)]
    pub command: Option<Command>,
    #[command(flatten)]
    pub trace: TraceArgs,
}

#[derive(Debug, Subcommand)]
pub enum Command {
    /// Trace signals (the default when no subcommand is given).
    Trace(TraceArgs),
    /// Diagnose: turn the signal stream (live, or a recorded NDJSON file) into named causes,
    /// evidence and remedies.
    Explain(ExplainArgs),
    /// Show the signal dispositions of live processes (no BPF needed).
    Inspect(InspectArgs),
    /// Write the man pages (DIR/man) and the bash, zsh and fish completions (DIR/completions)
    /// generated from these arguments, for packages.
    #[command(hide = true)]
    Assets { dir: PathBuf },
}

#[derive(Debug, Clone, Args)]
pub struct ExplainArgs {
    /// Replay recorded NDJSON (`signal-trace --format json` output) instead of tracing live: a
    /// file, a gzip file, a directory (its *.ndjson and *.ndjson.gz files), or "-" for standard
    /// input. Repeat it for the recordings of many nodes: their records are merged in time
    /// order, and each node's processes stay its own.
    #[arg(long, value_name = "PATH")]
    pub from: Vec<PathBuf>,
    /// With --from: only the records of these nodes (their `host` field).
    #[arg(long, value_name = "NAME", value_delimiter = ',', requires = "from")]
    pub host: Vec<String>,
    /// With --from: only records from this time on: RFC 3339 (2026-11-29T08:00:00Z), or a
    /// duration (30m, 1h30m) back from the newest record of the recordings.
    #[arg(long, value_name = "TIME|DURATION", value_parser = When::parse, requires = "from")]
    pub since: Option<When>,
    /// With --from: only records up to this time (same forms as --since).
    #[arg(long, value_name = "TIME|DURATION", value_parser = When::parse, requires = "from")]
    pub until: Option<When>,
    /// Also print the shutdown timeline of each process or container, at the end.
    #[arg(long)]
    pub timeline: bool,
    #[command(flatten)]
    pub trace: TraceArgs,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, ValueEnum)]
pub enum FormatArg {
    /// One aligned line per event, for people.
    Text,
    /// NDJSON: one JSON object per line (schema/events.schema.json).
    Json,
}

#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, ValueEnum)]
pub enum SideArg {
    Sender,
    Target,
    #[default]
    Either,
}

#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, ValueEnum)]
pub enum ColorArg {
    #[default]
    Auto,
    Always,
    Never,
}

#[derive(Debug, Clone, Default, Args)]
pub struct TraceArgs {
    /// Stop after this many seconds (fractions allowed).
    #[arg(long, value_name = "SECS")]
    pub duration: Option<String>,

    /// Print counts per interval of SECS seconds (sender → target, signal, result) instead of
    /// one line per event.
    #[arg(long, value_name = "SECS")]
    pub summary: Option<String>,

    /// Stop after this many events.
    #[arg(long, value_name = "N")]
    pub count: Option<String>,

    /// Write events to FILE (created 0640, appended to) instead of standard output. A symbolic
    /// link, a file owned by another user, writable by group or others, or with other hard
    /// links is refused; SIGHUP reopens FILE (for logrotate).
    #[arg(long, short = 'o', value_name = "FILE")]
    pub output: Option<PathBuf>,

    /// Accept a FIFO as --output FILE (it must have a reader already, and be owned by the
    /// tracer's user).
    #[arg(long, requires = "output")]
    pub output_fifo: bool,

    /// Rotate --output FILE before it would grow past SIZE bytes (K, M, G suffixes): FILE
    /// becomes FILE.1, FILE.1 becomes FILE.2 …, between whole lines.
    #[arg(long, value_name = "SIZE", requires = "output")]
    pub output_max_size: Option<String>,

    /// Rotated files kept with --output-max-size (FILE.1 … FILE.N; the oldest is dropped).
    #[arg(long, value_name = "N", requires = "output_max_size")]
    pub output_keep: Option<String>,

    /// Output format [default: text on a terminal, json otherwise].
    #[arg(long, short = 'f', value_enum)]
    pub format: Option<FormatArg>,

    /// Only signals sent by or to these processes (or threads).
    #[arg(long, short = 'p', value_name = "PID", value_delimiter = ',')]
    pub pid: Vec<String>,

    /// Only signals sent to these processes (or threads).
    #[arg(long, value_name = "PID", value_delimiter = ',')]
    pub target_pid: Vec<String>,

    /// Only signals sent by these processes (or threads).
    #[arg(long, value_name = "PID", value_delimiter = ',')]
    pub sender_pid: Vec<String>,

    /// Only these signals: names with or without SIG (TERM, SIGKILL, RTMIN+1) or numbers.
    #[arg(long, short = 's', value_name = "SIGNAL", value_delimiter = ',')]
    pub signal: Vec<String>,

    /// Only generate events with these results: delivered, ignored, already_pending, overflow,
    /// lose_info. Implies --events generate unless --events is given.
    #[arg(long, value_name = "RESULT", value_delimiter = ',')]
    pub result: Vec<String>,

    /// Only what did not get through: failed sends and signals not delivered (ignored,
    /// already_pending, overflow, lose_info).
    #[arg(long)]
    pub failed: bool,

    /// Only signals where the sender or the target has this command name (comm, at most 15
    /// bytes).
    #[arg(long, short = 'c', value_name = "NAME", value_delimiter = ',')]
    pub comm: Vec<String>,

    /// Only signals where a side is in this container: a full id, an id prefix, or a name.
    #[arg(long, value_name = "ID|NAME", value_delimiter = ',')]
    pub container: Vec<String>,

    /// Only signals where a side is in this Kubernetes pod (by name).
    #[arg(long, value_name = "NAME", value_delimiter = ',')]
    pub pod: Vec<String>,

    /// Only signals where a side is in this Kubernetes namespace.
    #[arg(long, value_name = "NS", value_delimiter = ',')]
    pub namespace: Vec<String>,

    /// Which side --container, --pod and --namespace look at.
    #[arg(long, value_enum, default_value = "either")]
    pub side: SideArg,

    /// containerd's socket, for pod and container names.
    #[arg(
        long,
        value_name = "PATH",
        default_value = crate::workload::containerd::DEFAULT_SOCKET
    )]
    pub containerd_socket: PathBuf,

    /// dockerd's socket, for Docker container names, images and Compose projects.
    #[arg(
        long,
        value_name = "PATH",
        default_value = crate::workload::docker::DEFAULT_SOCKET
    )]
    pub docker_socket: PathBuf,

    /// podman's API socket (`podman system service`), for podman container names; asked
    /// when the socket exists.
    #[arg(
        long,
        value_name = "PATH",
        default_value = crate::workload::docker::PODMAN_DEFAULT_SOCKET
    )]
    pub podman_socket: PathBuf,

    /// CRI-O's socket, or another CRI runtime's (containerd's), for pod and container names
    /// as the kubelet sees them; asked when the socket exists.
    #[arg(
        long,
        value_name = "PATH",
        default_value = crate::workload::cri::DEFAULT_SOCKET
    )]
    pub cri_socket: PathBuf,

    /// Serve Prometheus metrics on ADDR (host:port, or a port for localhost).
    #[arg(long, value_name = "ADDR")]
    pub metrics_addr: Option<String>,

    /// Label metrics with pod and namespace too (more series: one per pod).
    #[arg(long)]
    pub metrics_pod_labels: bool,

    /// Do not follow execs and forks: the sender's and target's `exe`, the sender's `args` and
    /// its ancestors' programs stay null (the ancestors' pids remain).
    #[arg(long)]
    pub no_process_identity: bool,

    /// Which events to report: generate, deliver, exit, send_failed, oom [default: all].
    #[arg(long, short = 'e', value_name = "EVENT", value_delimiter = ',')]
    pub events: Vec<String>,

    /// Ring buffer size in bytes, a power of two; K and M suffixes allowed.
    #[arg(long, value_name = "BYTES", default_value = "4M")]
    pub ring_size: String,

    /// Where to read the kernel's BTF; without it signal-trace runs in a reduced mode.
    #[arg(long, value_name = "PATH", default_value = "/sys/kernel/btf/vmlinux")]
    pub btf: PathBuf,

    /// Colors in text output.
    #[arg(long, value_enum, default_value = "auto")]
    pub color: ColorArg,
}

/// Arguments of `signal-trace inspect`.
#[derive(Debug, Clone, clap::Args)]
pub struct InspectArgs {
    /// The process to inspect.
    #[arg(
        value_name = "PID",
        required_unless_present_any = ["container", "pod"],
        conflicts_with_all = ["container", "pod"]
    )]
    pub pid: Option<u32>,
    /// Inspect every process of the container whose id starts with this prefix.
    #[arg(long, value_name = "ID", conflicts_with = "pod")]
    pub container: Option<String>,
    /// Inspect every process of this pod: its name (looked up in containerd's Kubernetes
    /// labels), or its uid or a prefix of it (from the cgroup paths).
    #[arg(long, value_name = "NAME|UID")]
    pub pod: Option<String>,
    /// Output format.
    #[arg(long, value_enum, default_value = "text")]
    pub format: FormatArg,
    /// containerd's socket, asked for the containers of a pod given by name.
    #[arg(
        long,
        value_name = "PATH",
        default_value = crate::workload::containerd::DEFAULT_SOCKET
    )]
    pub containerd_socket: std::path::PathBuf,
    /// A CRI runtime's socket (CRI-O's by default), asked too for the containers of a pod
    /// given by name when the socket exists.
    #[arg(
        long,
        value_name = "PATH",
        default_value = crate::workload::cri::DEFAULT_SOCKET
    )]
    pub cri_socket: std::path::PathBuf,
}
