//! The command line (clap derive).

use std::path::PathBuf;

use clap::{Args, Parser, Subcommand};

const AFTER_HELP: &str = "\
Settings, in rising precedence: defaults < the config file (--config or
COORDINATOR_CONFIG) < COORDINATOR_* environment variables (COORDINATOR_URL,
COORDINATOR_NAMESPACE, COORDINATOR_WORKER_ID, COORDINATOR_ELECTION_LEASE_TIMEOUT, ...)
< flags. `coordinator config` prints every value with its source.

Exit status:
  0  success (status: a live leader)
  1  an error: the store, the config file, a refused namespace
  2  a usage error
  3  status: no live leader (no lease, released, or past its renew deadline)
  4  status: records this version cannot use (foreign or newer format)";

/// The operator's command for a leader election over object storage.
#[derive(Debug, Parser)]
#[command(name = "coordinator", version, about, after_help = AFTER_HELP)]
pub(crate) struct Cli {
    #[command(flatten)]
    pub(crate) globals: Globals,
    #[command(subcommand)]
    pub(crate) command: Command,
}

/// The options every command takes.
#[derive(Debug, Args)]
pub(crate) struct Globals {
    /// The store URL: file:///abs/dir, s3://bucket/prefix?endpoint=…,
    /// gs://bucket/prefix, az://container/prefix, memory:// [env: COORDINATOR_URL]
    #[arg(long, global = true, value_name = "URL")]
    pub(crate) url: Option<String>,
    /// The namespace [env: COORDINATOR_NAMESPACE]
    #[arg(long, short = 'n', global = true, value_name = "NS")]
    pub(crate) namespace: Option<String>,
    /// A coordinator.toml [env: COORDINATOR_CONFIG]
    #[arg(long, global = true, value_name = "FILE")]
    pub(crate) config: Option<PathBuf>,
    /// One JSON object (watch: one per line) instead of a table
    #[arg(long, global = true)]
    pub(crate) json: bool,
}

/// The commands.
#[derive(Debug, Subcommand)]
pub(crate) enum Command {
    /// Who leads, the workers, the records and a verdict. Read-only: never
    /// writes, never joins. Exit 3 when no live leader exists.
    Status(StatusArgs),
    /// Follow a namespace read-only: one line per change (leader, epoch,
    /// workers joined, left or timed out).
    Watch(WatchArgs),
    /// Probe what a store can do (create-if-absent, compare-and-swap,
    /// conditional GET and DELETE, clock) with evidence and latency. Writes
    /// and deletes scratch objects under `.coordinator-probe/`.
    Probe(ProbeArgs),
    /// One bundle for a bug report: versions, the resolved config with its
    /// sources, probe, status, clock facts and a short watch. Never prints
    /// credentials.
    Diagnose(DiagnoseArgs),
    /// Join the election of each configured namespace as a worker; SIGTERM
    /// or Ctrl-C releases the lease and exits.
    Run(RunArgs),
    /// Print the resolved configuration with the source of every value.
    Config,
}

/// `status`.
#[derive(Debug, Args)]
pub(crate) struct StatusArgs {
    /// Also read every worker's heartbeat object (one GET per worker) for
    /// its incarnation and the epoch it has seen.
    #[arg(long)]
    pub(crate) heartbeats: bool,
}

/// `watch`.
#[derive(Debug, Args)]
pub(crate) struct WatchArgs {
    /// How often to read (default: the configured heartbeat interval).
    #[arg(long, value_name = "DURATION", value_parser = parse_duration)]
    pub(crate) interval: Option<std::time::Duration>,
    /// Stop after this long (default: until Ctrl-C).
    #[arg(long, value_name = "DURATION", value_parser = parse_duration)]
    pub(crate) duration: Option<std::time::Duration>,
}

/// `probe`.
#[derive(Debug, Args)]
pub(crate) struct ProbeArgs {
    /// The store URL to probe (default: --url or the config's).
    #[arg(value_name = "URL")]
    pub(crate) target: Option<String>,
    /// Round trips for the latency figures.
    #[arg(long, default_value_t = 20, value_name = "N")]
    pub(crate) rounds: u32,
}

/// `diagnose`.
#[derive(Debug, Args)]
pub(crate) struct DiagnoseArgs {
    /// How long to watch for events.
    #[arg(long, default_value = "5s", value_name = "DURATION", value_parser = parse_duration)]
    pub(crate) watch: std::time::Duration,
    /// Round trips for probe's latency figures.
    #[arg(long, default_value_t = 5, value_name = "N")]
    pub(crate) rounds: u32,
    /// Skip the probe (the one part that writes: scratch objects under
    /// `.coordinator-probe/`, deleted).
    #[arg(long)]
    pub(crate) no_probe: bool,
}

/// `run`.
#[derive(Debug, Args)]
pub(crate) struct RunArgs {
    /// This worker's id (default: the config's, else POD_NAME/HOSTNAME plus
    /// a random suffix).
    #[arg(long, value_name = "ID")]
    pub(crate) worker_id: Option<String>,
    /// Sub-second timings for tests and demos (lease 1.5 s, heartbeat 200 ms,
    /// recovery wait 6 s).
    #[arg(long)]
    pub(crate) fast: bool,
    /// Attach the queues and TTL expirers named under `[plugins]` in the
    /// config file to each namespace, each under the election its mode
    /// names (schedulers are not attached: their job handlers are
    /// application code).
    #[arg(long)]
    pub(crate) plugins: bool,
    /// Serve /metrics (Prometheus text) and /healthz (200 unless a
    /// namespace is unhealthy, 503 then; JSON body) on this address, e.g.
    /// 127.0.0.1:9464 (port 0: any free port; the address is printed).
    #[arg(long, value_name = "ADDR")]
    pub(crate) metrics_addr: Option<std::net::SocketAddr>,
    /// Print each event (ready, view, stopping, stopped) as one JSON object
    /// a line, with `mono_ns`: the instant on CLOCK_MONOTONIC, in
    /// nanoseconds (null outside Linux and Android).
    #[arg(long)]
    pub(crate) events_json: bool,
}

fn parse_duration(text: &str) -> Result<std::time::Duration, String> {
    coordinator_core::parse_duration(text)
}
