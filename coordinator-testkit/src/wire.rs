//! The wire benchmark: real `coordinator run` worker processes (the
//! `coordinator` binary of coordinator-cli) on a real S3 server (moto), behind a [`CountingProxy`], measured as the simulator
//! measures itself.
//!
//! [`run`] starts the proxy, launches the workers at once on a fresh prefix,
//! and measures, from the workers' own `--events-json` lines (every
//! process on one machine reads the same `CLOCK_MONOTONIC`):
//!
//! * **cold start**: launch → the first worker that believes it leads, and
//!   launch → the first instant every live worker names that leader (from
//!   the first launch and from the last one);
//! * **requests by kind per worker-hour** over a steady window that starts
//!   `warmup` after they all agree (no trial runs during it);
//! * **crash fail-over** per trial: SIGKILL of the leader → the first new
//!   leader, and → every survivor agrees; the killed worker is restarted
//!   (same id) and the fleet settles before the next trial;
//! * **graceful hand-over** per trial: SIGTERM of the leader → the first
//!   new leader, and → every survivor agrees.
//!
//! Unix only (the timestamps are `CLOCK_MONOTONIC`, the signals POSIX);
//! the workers print `mono_ns` on Linux and Android only.
//! The `coordinator-wire-bench` binary prints the result beside
//! `coordinator-sim`'s prediction; `tests/wire.rs` pins the request counts
//! against the simulator's.

use std::path::PathBuf;
use std::process::Stdio;
use std::time::Duration;

use coordinator_core::Config;
use serde::Serialize;
use tokio::io::{AsyncBufReadExt, BufReader};
use tokio::process::{Child, Command};
use tokio::sync::mpsc;

use crate::proxy::{CountingProxy, RequestCounts, RoundTrips};
use crate::Requests;

/// What to run.
#[derive(Clone, Debug)]
pub struct WireConfig {
    /// Worker processes.
    pub workers: usize,
    /// Their timings (passed as `COORDINATOR_ELECTION_*` variables).
    pub election: Config,
    /// The `coordinator` binary (coordinator-cli), run as `coordinator run`.
    pub coordinator_bin: PathBuf,
    /// The S3 server, `http://127.0.0.1:9000`.
    pub endpoint: String,
    /// Its bucket (must exist).
    pub bucket: String,
    /// From "every worker agrees" to the start of the steady window.
    pub warmup: Duration,
    /// The steady window in which requests are counted.
    pub window: Duration,
    /// SIGKILL trials after the window.
    pub crash_trials: usize,
    /// SIGTERM trials after those.
    pub graceful_trials: usize,
    /// After a restarted worker agrees again, before the next trial.
    pub settle: Duration,
}

impl WireConfig {
    /// `workers` workers at `election`'s timings on the server at
    /// `endpoint`; a warm-up of two membership intervals, a window of ten
    /// minutes, three trials of each kind.
    pub fn new(workers: usize, election: Config, coordinator_bin: PathBuf, endpoint: &str) -> Self {
        let warmup = (election.membership_interval * 2).max(election.worker_list_interval * 2);
        Self {
            workers,
            settle: election.heartbeat_interval + election.heartbeat_jitter,
            election,
            coordinator_bin,
            endpoint: endpoint.to_owned(),
            bucket: "coordinator-test".into(),
            warmup,
            window: Duration::from_secs(600),
            crash_trials: 3,
            graceful_trials: 3,
        }
    }
}

/// Requests per worker-hour, by kind.
#[derive(Clone, Copy, Debug, Default, PartialEq, Serialize)]
pub struct KindRates {
    /// Object GETs.
    pub get: f64,
    /// PUTs.
    pub put: f64,
    /// Listings.
    pub list: f64,
    /// DELETEs.
    pub delete: f64,
    /// HEADs.
    pub head: f64,
    /// Anything else (never expected).
    pub other: f64,
    /// All of them.
    pub total: f64,
}

impl KindRates {
    /// `counts` spread over `worker_hours`.
    pub fn of_wire(counts: &RequestCounts, worker_hours: f64) -> Self {
        let rate = |n: u64| n as f64 / worker_hours;
        Self {
            get: rate(counts.get),
            put: rate(counts.put),
            list: rate(counts.list),
            delete: rate(counts.delete),
            head: rate(counts.head),
            other: rate(counts.other),
            total: rate(counts.total()),
        }
    }

    /// The simulator's `requests` spread over its `worker_hours`.
    pub fn of_sim(requests: &Requests, worker_hours: f64) -> Self {
        let rate = |n: u64| n as f64 / worker_hours;
        Self {
            get: rate(requests.get),
            put: rate(requests.put),
            list: rate(requests.list),
            delete: rate(requests.delete),
            head: rate(requests.head),
            other: 0.0,
            total: rate(requests.total()),
        }
    }

    /// `(name, value)` for each kind and the total, in table order.
    pub fn rows(&self) -> [(&'static str, f64); 7] {
        [
            ("GET", self.get),
            ("PUT", self.put),
            ("LIST", self.list),
            ("DELETE", self.delete),
            ("HEAD", self.head),
            ("other", self.other),
            ("total", self.total),
        ]
    }
}

/// Cold start, in seconds.
#[derive(Clone, Copy, Debug, Serialize)]
pub struct ColdStart {
    /// From the first launch to the last (the bench launches them in a
    /// loop).
    pub launch_spread_seconds: f64,
    /// From the first launch to the first worker that believes it leads.
    pub first_leader_seconds: f64,
    /// From the first launch to the first instant every worker names that
    /// leader.
    pub all_agree_seconds: f64,
    /// The same from the last launch (issue 17's figure: at most 1.5 s).
    pub all_agree_after_last_launch_seconds: f64,
}

/// One fail-over or hand-over, in seconds from the signal.
#[derive(Clone, Copy, Debug, Serialize)]
pub struct Trial {
    /// To the first other worker that believes it leads.
    pub new_leader_seconds: f64,
    /// To the first instant every survivor names that leader.
    pub all_agree_seconds: f64,
}

/// What [`run`] measured.
#[derive(Clone, Debug, Serialize)]
pub struct WireReport {
    /// Worker processes.
    pub workers: usize,
    /// The store URL the workers used (through the proxy).
    pub url: String,
    /// The steady window's length.
    pub window_seconds: f64,
    /// Requests in the window.
    pub requests: RequestCounts,
    /// The same per worker-hour.
    pub requests_per_worker_hour: KindRates,
    /// The server's round trips in the window, as the proxy timed them.
    pub round_trips: RoundTrips,
    /// Their mean, ms: the simulator's `--latency` for the same
    /// configuration.
    pub mean_round_trip_ms: f64,
    /// Requests from the first launch to the window (start-up probes of
    /// the store, the first election, the warm-up).
    pub startup_requests: RequestCounts,
    /// Changes of leader during the window (0 on a quiet machine).
    pub leader_changes_in_window: u64,
    /// The cold start.
    pub cold_start: ColdStart,
    /// SIGKILL trials.
    pub failover: Vec<Trial>,
    /// SIGTERM trials.
    pub handover: Vec<Trial>,
}

/// Runs the benchmark.
///
/// # Errors
/// A message: the proxy could not start, a worker could not be launched or
/// exited unexpectedly, or the fleet did not agree on a leader in time.
pub async fn run(config: &WireConfig) -> Result<WireReport, String> {
    let proxy = CountingProxy::start(&config.endpoint)
        .await
        .map_err(|e| format!("starting the proxy in front of {}: {e}", config.endpoint))?;
    let prefix = format!("wire-bench/{}-{}", std::process::id(), monotonic_ns());
    let url = format!(
        "s3://{}/{prefix}?endpoint={}&region=us-east-1",
        config.bucket,
        proxy.endpoint()
    );
    let mut fleet = Fleet::new(config, url.clone())?;
    let patience = patience(&config.election);

    // Cold start.
    let counts_at_launch = proxy.counts();
    for worker in 0..config.workers {
        fleet.spawn(worker)?;
    }
    let first_launch = fleet.launched.iter().copied().min().unwrap_or(0);
    let last_launch = fleet.launched.iter().copied().max().unwrap_or(0);
    let first_leader = fleet
        .wait("a first leader", patience, |f, e| {
            matches!(
                e.kind,
                Kind::View {
                    is_leader: true,
                    ..
                }
            ) && f.alive[e.worker]
        })
        .await?;
    let agreed = fleet
        .wait("every worker to agree", patience, |f, _| {
            f.agreed().is_some()
        })
        .await?;
    let cold_start = ColdStart {
        launch_spread_seconds: secs(last_launch - first_launch),
        first_leader_seconds: secs(first_leader.saturating_sub(first_launch)),
        all_agree_seconds: secs(agreed.saturating_sub(first_launch)),
        all_agree_after_last_launch_seconds: secs(agreed.saturating_sub(last_launch)),
    };

    // The steady window.
    fleet.idle(config.warmup).await?;
    let before = proxy.counts();
    let trips_before = proxy.round_trips();
    let changes_before = fleet.leader_changes;
    let start = monotonic_ns();
    fleet.idle(config.window).await?;
    let after = proxy.counts();
    let round_trips = proxy.round_trips() - trips_before;
    let end = monotonic_ns();
    let window_seconds = secs(end - start);
    let requests = after - before;
    let worker_hours = config.workers as f64 * window_seconds / 3600.0;
    let leader_changes_in_window = fleet.leader_changes - changes_before;

    let mut failover = Vec::new();
    for _ in 0..config.crash_trials {
        failover.push(fleet.trial(Signal::Kill, patience, config.settle).await?);
    }
    let mut handover = Vec::new();
    for _ in 0..config.graceful_trials {
        handover.push(fleet.trial(Signal::Term, patience, config.settle).await?);
    }
    fleet.stop_all().await;
    Ok(WireReport {
        workers: config.workers,
        url,
        window_seconds,
        requests,
        requests_per_worker_hour: KindRates::of_wire(&requests, worker_hours),
        round_trips,
        mean_round_trip_ms: round_trips.mean_ms(),
        startup_requests: before - counts_at_launch,
        leader_changes_in_window,
        cold_start,
        failover,
        handover,
    })
}

impl WireReport {
    /// The fixed round trip, in whole ms, to give the simulator
    /// (`coordinator-sim --latency Nms`, `LatencyModel::fixed`) for the
    /// store latency the window saw: the simulator's fixed model takes
    /// 1.5 times as long for a write, so the mean is spread accordingly.
    pub fn sim_latency_ms(&self) -> u64 {
        let r = &self.requests;
        let writes = (r.put + r.delete) as f64;
        let weight = r.total() as f64 + 0.5 * writes;
        if weight == 0.0 {
            return 0;
        }
        (self.mean_round_trip_ms * r.total() as f64 / weight).round() as u64
    }
}

/// How long any one step may take before the run is given up: a few
/// take-over waits and heartbeats, and half a minute for slow machines.
fn patience(election: &Config) -> Duration {
    election.takeover_wait() * 4
        + (election.heartbeat_interval + election.heartbeat_jitter) * 4
        + Duration::from_secs(30)
}

/// Now on `CLOCK_MONOTONIC`, in nanoseconds (the workers' `mono_ns`).
pub fn monotonic_ns() -> u64 {
    let ts = rustix::time::clock_gettime(rustix::time::ClockId::Monotonic);
    let secs = u64::try_from(ts.tv_sec).unwrap_or(0);
    let nanos = u64::try_from(ts.tv_nsec).unwrap_or(0);
    secs.saturating_mul(1_000_000_000).saturating_add(nanos)
}

/// The timings as the environment variables `coordinator run` reads
/// (`COORDINATOR_ELECTION_` + the field in upper case), every field given
/// so that nothing falls back to the defaults.
fn election_env(election: &Config) -> Result<Vec<(String, String)>, String> {
    let value = serde_json::to_value(election).map_err(|e| e.to_string())?;
    let fields = value
        .as_object()
        .ok_or("the election timings are not a JSON object")?;
    Ok(fields
        .iter()
        .map(|(field, value)| {
            let text = match value {
                serde_json::Value::String(text) => text.clone(),
                other => other.to_string(),
            };
            (
                format!("COORDINATOR_ELECTION_{}", field.to_ascii_uppercase()),
                text,
            )
        })
        .collect())
}

fn secs(ns: u64) -> f64 {
    (ns as f64 / 1e6).round() / 1e3
}

#[derive(Clone, Copy, Debug, PartialEq, Eq)]
enum Signal {
    Kill,
    Term,
}

#[derive(Clone, Debug)]
enum Kind {
    View {
        leader: Option<String>,
        is_leader: bool,
    },
    /// Stdout closed: the process ended.
    Exited,
    /// Another line (ready, stopping, stopped).
    Other,
}

#[derive(Clone, Debug)]
struct Event {
    worker: usize,
    generation: u64,
    kind: Kind,
    mono_ns: u64,
}

struct Fleet {
    coordinator_bin: PathBuf,
    /// `COORDINATOR_ELECTION_<FIELD>` = value, for every field of the
    /// timings.
    election: Vec<(String, String)>,
    url: String,
    ids: Vec<String>,
    children: Vec<Option<Child>>,
    generation: Vec<u64>,
    alive: Vec<bool>,
    /// The latest view of each worker's current process.
    views: Vec<Option<(Option<String>, bool)>>,
    launched: Vec<u64>,
    leader_changes: u64,
    events: mpsc::UnboundedReceiver<Event>,
    sender: mpsc::UnboundedSender<Event>,
}

impl Fleet {
    fn new(config: &WireConfig, url: String) -> Result<Self, String> {
        let election = election_env(&config.election)?;
        let (sender, events) = mpsc::unbounded_channel();
        let n = config.workers;
        Ok(Self {
            coordinator_bin: config.coordinator_bin.clone(),
            election,
            url,
            ids: (0..n).map(|i| format!("w{i}")).collect(),
            children: (0..n).map(|_| None).collect(),
            generation: vec![0; n],
            alive: vec![false; n],
            views: vec![None; n],
            launched: vec![0; n],
            leader_changes: 0,
            events,
            sender,
        })
    }

    fn spawn(&mut self, worker: usize) -> Result<(), String> {
        let mut command = Command::new(&self.coordinator_bin);
        command
            .args(["--url", &self.url, "--namespace", "bench", "run"])
            .args(["--worker-id", &self.ids[worker], "--events-json"])
            // Only these timings: no config file from the environment.
            .env_remove("COORDINATOR_CONFIG")
            .envs(self.election.iter().map(|(k, v)| (k, v)))
            .stdin(Stdio::null())
            .stdout(Stdio::piped())
            .stderr(Stdio::inherit())
            .kill_on_drop(true);
        for (name, value) in [
            ("AWS_ACCESS_KEY_ID", "test"),
            ("AWS_SECRET_ACCESS_KEY", "test"),
            ("AWS_REGION", "us-east-1"),
        ] {
            if std::env::var_os(name).is_none() {
                command.env(name, value);
            }
        }
        self.generation[worker] += 1;
        let generation = self.generation[worker];
        self.launched[worker] = monotonic_ns();
        let mut child = command
            .spawn()
            .map_err(|e| format!("launching {}: {e}", self.coordinator_bin.display()))?;
        let stdout = child
            .stdout
            .take()
            .ok_or("the worker's stdout is not piped")?;
        let sender = self.sender.clone();
        tokio::spawn(async move {
            let mut lines = BufReader::new(stdout).lines();
            while let Ok(Some(line)) = lines.next_line().await {
                let Ok(value) = serde_json::from_str::<serde_json::Value>(&line) else {
                    continue;
                };
                let mono_ns = value["mono_ns"].as_u64().unwrap_or_else(monotonic_ns);
                let kind = match value["event"].as_str() {
                    Some("view") => Kind::View {
                        leader: value["leader"].as_str().map(str::to_owned),
                        is_leader: value["is_leader"].as_bool().unwrap_or(false),
                    },
                    _ => Kind::Other,
                };
                let event = Event {
                    worker,
                    generation,
                    kind,
                    mono_ns,
                };
                if sender.send(event).is_err() {
                    return;
                }
            }
            let _ = sender.send(Event {
                worker,
                generation,
                kind: Kind::Exited,
                mono_ns: monotonic_ns(),
            });
        });
        self.children[worker] = Some(child);
        self.alive[worker] = true;
        self.views[worker] = None;
        Ok(())
    }

    /// Applies one event; false if it belongs to an earlier process.
    fn apply(&mut self, event: &Event) -> bool {
        if event.generation != self.generation[event.worker] {
            return false;
        }
        match &event.kind {
            Kind::View { leader, is_leader } => {
                let was_leader = self.views[event.worker]
                    .as_ref()
                    .is_some_and(|(_, is_leader)| *is_leader);
                if *is_leader && !was_leader && self.alive[event.worker] {
                    self.leader_changes += 1;
                }
                self.views[event.worker] = Some((leader.clone(), *is_leader));
            }
            Kind::Exited => {
                self.alive[event.worker] = false;
                self.views[event.worker] = None;
            }
            Kind::Other => {}
        }
        true
    }

    /// The leader every live worker names, if they agree and it believes
    /// it leads.
    fn agreed(&self) -> Option<usize> {
        let mut named = None;
        for worker in (0..self.ids.len()).filter(|&w| self.alive[w]) {
            let (Some(leader), _) = self.views[worker].as_ref()? else {
                return None;
            };
            match named {
                None => named = Some(leader.clone()),
                Some(ref n) if n == leader => {}
                Some(_) => return None,
            }
        }
        let leader = self.ids.iter().position(|id| Some(id) == named.as_ref())?;
        let leads = self.alive[leader] && self.views[leader].as_ref().is_some_and(|v| v.1);
        leads.then_some(leader)
    }

    /// Applies events until `done` holds after one; returns its timestamp.
    async fn wait(
        &mut self,
        what: &str,
        patience: Duration,
        mut done: impl FnMut(&Self, &Event) -> bool,
    ) -> Result<u64, String> {
        let deadline = tokio::time::Instant::now() + patience;
        loop {
            let event = tokio::time::timeout_at(deadline, self.events.recv())
                .await
                .map_err(|_| format!("waited {patience:?} for {what}"))?
                .ok_or("the event channel closed")?;
            if self.apply(&event) && done(self, &event) {
                return Ok(event.mono_ns);
            }
        }
    }

    /// Applies events for `span`; an unexpected exit is an error.
    async fn idle(&mut self, span: Duration) -> Result<(), String> {
        let deadline = tokio::time::Instant::now() + span;
        while let Ok(event) = tokio::time::timeout_at(deadline, self.events.recv()).await {
            let event = event.ok_or("the event channel closed")?;
            if self.apply(&event) && matches!(event.kind, Kind::Exited) {
                return Err(format!(
                    "worker {} exited on its own",
                    self.ids[event.worker]
                ));
            }
        }
        Ok(())
    }

    /// Signals the leader, measures the fail-over, restarts it, settles.
    async fn trial(
        &mut self,
        signal: Signal,
        patience: Duration,
        settle: Duration,
    ) -> Result<Trial, String> {
        let what = match signal {
            Signal::Kill => "a new leader after SIGKILL",
            Signal::Term => "a new leader after SIGTERM",
        };
        if self.agreed().is_none() {
            self.wait("every worker to agree", patience, |f, _| {
                f.agreed().is_some()
            })
            .await?;
        }
        let leader = self.agreed().ok_or("no agreed leader")?;
        let child = self.children[leader]
            .as_mut()
            .ok_or("the leader has no process")?;
        let pid = child.id().ok_or("the leader already exited")?;
        let pid = rustix::process::Pid::from_raw(i32::try_from(pid).map_err(|e| e.to_string())?)
            .ok_or("pid 0")?;
        let sent = monotonic_ns();
        let sig = match signal {
            Signal::Kill => rustix::process::Signal::KILL,
            Signal::Term => rustix::process::Signal::TERM,
        };
        rustix::process::kill_process(pid, sig).map_err(|e| format!("signalling: {e}"))?;
        // Its lines after the signal do not count as a view of the fleet.
        self.alive[leader] = false;
        let new_leader = self
            .wait(what, patience, |f, e| {
                e.worker != leader
                    && f.alive[e.worker]
                    && matches!(
                        e.kind,
                        Kind::View {
                            is_leader: true,
                            ..
                        }
                    )
            })
            .await?;
        let agreed = self
            .wait("the survivors to agree", patience, |f, _| {
                f.agreed().is_some()
            })
            .await?;
        if let Some(mut child) = self.children[leader].take() {
            let _ = tokio::time::timeout(patience, child.wait()).await;
        }
        self.spawn(leader)?;
        self.wait("the restarted worker to agree", patience, |f, _| {
            f.views[leader].is_some() && f.agreed().is_some()
        })
        .await?;
        self.idle(settle).await?;
        Ok(Trial {
            new_leader_seconds: secs(new_leader.saturating_sub(sent)),
            all_agree_seconds: secs(agreed.saturating_sub(sent)),
        })
    }

    /// SIGTERM to every worker; waits a little for each to stop.
    async fn stop_all(&mut self) {
        for child in self.children.iter_mut().flatten() {
            if let Some(pid) = child
                .id()
                .and_then(|p| i32::try_from(p).ok())
                .and_then(rustix::process::Pid::from_raw)
            {
                let _ = rustix::process::kill_process(pid, rustix::process::Signal::TERM);
            }
        }
        for child in self.children.iter_mut().flatten() {
            let _ = tokio::time::timeout(Duration::from_secs(10), child.wait()).await;
        }
    }
}

/// The defaults, five times faster (the drift tolerance and the ratios the
/// validation asks for kept). Faster still (heartbeat 500 ms) the wire came
/// out 0.4–1.4% below the simulator on a loaded 2-core machine: timers
/// that wake late and the client's own time per request, which the proxy
/// does not see, lengthen every period by a millisecond or more, and that
/// is a larger share of a shorter period.
pub fn short_timings() -> coordinator_core::Config {
    coordinator_core::Config {
        heartbeat_interval: Duration::from_millis(1000),
        heartbeat_jitter: Duration::from_millis(200),
        lease_timeout: Duration::from_millis(3000),
        renew_deadline: Duration::from_millis(2000),
        worker_timeout: Duration::from_millis(4000),
        membership_interval: Duration::from_millis(2000),
        successor_poll_interval: Duration::from_millis(400),
        worker_list_interval: Duration::from_millis(2400),
        request_timeout: Duration::from_millis(400),
        retry_backoff: Duration::from_millis(50),
        stale_takeover_margin: Duration::from_millis(400),
        recovery_wait: Duration::from_secs(12),
        ..coordinator_core::Config::default()
    }
}
