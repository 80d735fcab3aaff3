//! Runs the chaos test: starts the fault proxy in front of the S3 server,
//! launches one `coordinator-chaos-worker` process per worker (each through
//! its own proxy listener), plays the nemesis's steps, then kills every
//! process and checks the logs.
//!
//! Every bound a take-over is held to comes from the simulator's formulas
//! ([`Scenario::liveness_bound`], [`Scenario::handover_bound`],
//! [`Scenario::recovery_bound`]) for the timings in use (both sets, since
//! rolling restarts switch between them), with round trips of at most one
//! `request_timeout`, plus [`ChaosConfig::slack`]: the worker prints a
//! belief after its loop saw it, on a 2-core machine that other jobs share.

use std::collections::BTreeMap;
use std::path::PathBuf;
use std::process::Stdio;
use std::sync::{Arc, Mutex, PoisonError};
use std::time::Duration;

use coordinator_core::{Config, Keys, Namespace};
use coordinator_store::LeaseStore;
use serde::Serialize;
use tokio::io::{AsyncBufReadExt, BufReader};
use tokio::process::{Child, Command};
use tokio::task::JoinHandle;

use super::check::{self, Checked, Violation};
use super::check_queue::QueueStats;
use super::events::{Action, Life, Line, RunLog, Takeover, WorkerEvent};
use super::faults::NetFault;
use super::monotonic_ns;
use super::nemesis::{self, Record, Step, Target};
use super::proxy::{FaultCounts, FaultProxy};
use crate::timeline::{MarkKind, Timeline};
use crate::{LatencyModel, Scenario};

/// The namespace every worker joins.
pub const NAMESPACE: &str = "chaos";

/// What to run.
#[derive(Clone, Debug)]
pub struct ChaosConfig {
    /// The root seed of the schedule and of the proxy's draws.
    pub seed: u64,
    /// How long to play steps (the run stops at the first step that would
    /// not finish, with its calm spell, in time).
    pub duration: Duration,
    /// Worker processes.
    pub workers: usize,
    /// The `coordinator-chaos-worker` binary.
    pub worker_bin: PathBuf,
    /// The S3 server (`http://127.0.0.1:9000`).
    pub endpoint: String,
    /// Its bucket (must exist).
    pub bucket: String,
    /// The workers' timings.
    pub timings: Config,
    /// The timings a rolling restart switches to (and back from).
    pub alternate: Config,
    /// Test only: every worker runs the broken register.
    pub broken: bool,
    /// The steps to play; `None`: drawn from the seed.
    pub steps: Option<Vec<Step>>,
    /// Added to every take-over bound.
    pub slack: Duration,
    /// From launch to the first step.
    pub warmup: Duration,
    /// Run the queue too (producers, consumers, maintenance; audited at
    /// the end).
    pub queue: bool,
    /// Each worker process's log (`COORDINATOR_LOG=coordinator=info`) goes
    /// to `DIR/<worker>-<life>.log`; `None`: to this process's stderr, at
    /// the worker's default level (warn).
    pub log_dir: Option<PathBuf>,
}

pub use crate::wire::short_timings;

/// The timings of a rolling restart: lease and renew deadline doubled.
pub fn alternate_timings() -> Config {
    Config {
        lease_timeout: Duration::from_millis(6000),
        renew_deadline: Duration::from_millis(4000),
        worker_timeout: Duration::from_millis(8000),
        ..short_timings()
    }
}

impl ChaosConfig {
    /// Four workers at [`short_timings`] on the server at `endpoint`.
    pub fn new(seed: u64, duration: Duration, worker_bin: PathBuf, endpoint: &str) -> Self {
        Self {
            seed,
            duration,
            workers: 4,
            worker_bin,
            endpoint: endpoint.to_owned(),
            bucket: "coordinator-test".into(),
            timings: short_timings(),
            alternate: alternate_timings(),
            broken: false,
            steps: None,
            slack: Duration::from_secs(1),
            warmup: Duration::from_secs(6),
            queue: true,
            log_dir: None,
        }
    }

    fn scenario(&self) -> Scenario {
        let mut scenario = Scenario::new(self.seed, self.workers);
        scenario.config = self.timings.clone();
        scenario.configs = Some(vec![self.alternate.clone()]);
        let rtt = u64::try_from(self.timings.request_timeout.as_millis()).unwrap_or(u64::MAX);
        scenario.latency = LatencyModel::fixed(rtt);
        scenario
    }

    /// The take-over bounds, slack included.
    pub fn bounds(&self) -> Bounds {
        let s = self.scenario();
        Bounds {
            liveness: s.liveness_bound() + self.slack,
            handover: s.handover_bound() + self.slack,
            recovery: s.recovery_bound() + self.slack,
        }
    }
}

/// The bounds take-overs are held to.
#[derive(Clone, Copy, Debug, Serialize)]
pub struct Bounds {
    /// After a leader dies, is paused or cut off, or a network fault ends.
    pub liveness: Duration,
    /// After a graceful stop.
    pub handover: Duration,
    /// After an operator deletes or corrupts a record.
    pub recovery: Duration,
}

/// What a run found, for people and for `report.json`.
#[derive(Clone, Debug, Serialize)]
pub struct ChaosReport {
    /// The seed.
    pub seed: u64,
    /// From the first launch to the end.
    pub seconds: f64,
    /// Worker processes at a time.
    pub workers: usize,
    /// Whether the broken register ran.
    pub broken: bool,
    /// The bounds (seconds): liveness, handover, recovery.
    pub bounds_seconds: [f64; 3],
    /// Steps played, by kind.
    pub steps: BTreeMap<String, u64>,
    /// Network faults switched on, by kind.
    pub net_faults: BTreeMap<String, u64>,
    /// What the proxy did.
    pub proxy: FaultCounts,
    /// Processes launched.
    pub processes: usize,
    /// Processes that exited on their own before they were ready (their
    /// store probe failed under the faults); the supervisor restarted
    /// them.
    pub start_failures: u64,
    /// Leadership terms seen.
    pub terms: usize,
    /// Register writes: accepted, fenced, failed.
    pub register_writes: [u64; 3],
    /// Take-overs held to a bound.
    pub takeovers_checked: usize,
    /// The slowest of those that needed a new leader, seconds.
    pub takeover_max_seconds: f64,
    /// Their mean, seconds.
    pub takeover_mean_seconds: f64,
    /// Take-overs whose bound ran past the end.
    pub takeovers_unchecked: u64,
    /// The queue's counts (with the queue only).
    pub queue: Option<QueueStats>,
    /// Every violation.
    pub violations: Vec<Violation>,
}

/// Everything a run produced.
pub struct Outcome {
    /// The raw logs (`runlog.json`).
    pub log: RunLog,
    /// The checker's verdict.
    pub checked: Checked,
    /// The picture's data (`timeline.json`).
    pub timeline: Timeline,
    /// The summary (`report.json`).
    pub report: ChaosReport,
}

/// Runs the chaos test.
///
/// # Errors
/// A message: the proxy could not start, a worker could not be launched,
/// the operator's store could not be opened.
pub async fn run(config: &ChaosConfig) -> Result<Outcome, String> {
    let bounds = config.bounds();
    let lease = config
        .timings
        .lease_timeout
        .max(config.alternate.lease_timeout);
    let period = bounds.recovery + Duration::from_secs(6);
    let steps = match &config.steps {
        Some(steps) => steps.clone(),
        None => nemesis::plan(config.seed, config.duration, period, lease),
    };
    let mut proxy = FaultProxy::start(&config.endpoint, config.workers, config.seed)
        .await
        .map_err(|e| {
            format!(
                "starting the fault proxy in front of {}: {e}",
                config.endpoint
            )
        })?;
    let prefix = format!(
        "chaos/{}-{}-{}",
        config.seed,
        std::process::id(),
        monotonic_ns()
    );
    let url = |endpoint: &str| {
        format!(
            "s3://{}/{prefix}?endpoint={endpoint}&region=us-east-1",
            config.bucket
        )
    };
    set_test_credentials();
    let operator = coordinator_store::open(&url(&config.endpoint))
        .await
        .map_err(|e| format!("opening the store for the operator's faults: {e}"))?;
    let mut fleet = Fleet::new(
        config,
        (0..config.workers)
            .map(|i| url(&proxy.endpoint(i)))
            .collect(),
    )?;
    let start_ns = monotonic_ns();
    for i in 0..config.workers {
        fleet.spawn(i)?;
    }
    tokio::time::sleep(config.warmup).await;
    let end_by = start_ns + nanos(config.duration);
    let mut player = Player {
        fleet: &mut fleet,
        proxy: &proxy,
        operator: operator.as_ref(),
        bounds,
        slack: config.slack,
        actions: Vec::new(),
        steps: BTreeMap::new(),
        net_faults: BTreeMap::new(),
        alternate: false,
        seed_rng: coordinator_core::SplitMix64::new(config.seed ^ 0xC4A0_5EED),
        restart_due: vec![None; config.workers],
    };
    for step in &steps {
        let cost = player.cost(step);
        if monotonic_ns() + nanos(cost) > end_by {
            break;
        }
        player.play(step).await?;
    }
    // Let the last calm spell run out, then end every process.
    let now = monotonic_ns();
    if now < end_by {
        player.wait(Duration::from_nanos(end_by - now)).await?;
    }
    let Player {
        actions,
        steps: step_counts,
        net_faults,
        ..
    } = player;
    let end_ns = monotonic_ns();
    fleet.kill_all().await;
    let proxy_counts = proxy.counts();
    proxy.shutdown();
    let lives = fleet.finish().await;
    let queue = if config.queue {
        let patience = Duration::from_secs(60);
        Some(
            super::queue::audit(
                Arc::clone(&operator),
                NAMESPACE,
                config.timings.clone(),
                patience,
            )
            .await?,
        )
    } else {
        None
    };
    let log = RunLog {
        title: format!(
            "chaos seed {} — {} workers, {:.0} s{}",
            config.seed,
            config.workers,
            (end_ns - start_ns) as f64 / 1e9,
            if config.broken {
                ", broken register"
            } else {
                ""
            }
        ),
        workers: (0..config.workers).map(worker_id).collect(),
        start_ns,
        end_ns,
        lives,
        actions,
        queue,
    };
    let checked = check::check(&log);
    let timeline = check::timeline(&log, &checked);
    let needed: Vec<f64> = checked.takeovers.iter().filter_map(|t| t.seconds).collect();
    let report = ChaosReport {
        seed: config.seed,
        seconds: (end_ns - start_ns) as f64 / 1e9,
        workers: config.workers,
        broken: config.broken,
        bounds_seconds: [
            bounds.liveness.as_secs_f64(),
            bounds.handover.as_secs_f64(),
            bounds.recovery.as_secs_f64(),
        ],
        steps: step_counts,
        net_faults,
        proxy: proxy_counts,
        processes: log.lives.len(),
        start_failures: checked.start_failures,
        terms: checked.beliefs.len(),
        register_writes: [
            checked.register_writes_ok,
            checked.register_writes_fenced,
            checked.register_writes_failed,
        ],
        takeovers_checked: checked.takeovers.len(),
        takeover_max_seconds: needed.iter().copied().fold(0.0, f64::max),
        takeover_mean_seconds: if needed.is_empty() {
            0.0
        } else {
            needed.iter().sum::<f64>() / needed.len() as f64
        },
        takeovers_unchecked: checked.takeovers_unchecked,
        queue: checked.queue.clone(),
        violations: checked.violations.clone(),
    };
    Ok(Outcome {
        log,
        checked,
        timeline,
        report,
    })
}

fn nanos(d: Duration) -> u64 {
    u64::try_from(d.as_nanos()).unwrap_or(u64::MAX)
}

fn worker_id(i: usize) -> String {
    format!("w{i}")
}

/// moto accepts any credentials; the workers' store needs some.
fn set_test_credentials() {
    for (name, value) in [
        ("AWS_ACCESS_KEY_ID", "test"),
        ("AWS_SECRET_ACCESS_KEY", "test"),
        ("AWS_REGION", "us-east-1"),
    ] {
        if std::env::var_os(name).is_none() {
            // Before the operator's client reads the environment; nothing
            // else in the run writes it.
            std::env::set_var(name, value);
        }
    }
}

struct Proc {
    child: Child,
    life: usize,
    reader: JoinHandle<()>,
}

struct Fleet {
    worker_bin: PathBuf,
    urls: Vec<String>,
    timings: Vec<String>,
    broken: bool,
    queue: bool,
    log_dir: Option<PathBuf>,
    procs: Vec<Option<Proc>>,
    readers: Vec<JoinHandle<()>>,
    lives: Arc<Mutex<Vec<Life>>>,
    next_life: Vec<u32>,
}

fn lock<T>(m: &Mutex<T>) -> std::sync::MutexGuard<'_, T> {
    m.lock().unwrap_or_else(PoisonError::into_inner)
}

impl Fleet {
    fn new(config: &ChaosConfig, urls: Vec<String>) -> Result<Self, String> {
        let timings = serde_json::to_string(&config.timings).map_err(|e| e.to_string())?;
        let n = config.workers;
        Ok(Self {
            worker_bin: config.worker_bin.clone(),
            urls,
            timings: vec![timings; n],
            broken: config.broken,
            queue: config.queue,
            log_dir: config.log_dir.clone(),
            procs: (0..n).map(|_| None).collect(),
            readers: Vec::new(),
            lives: Arc::new(Mutex::new(Vec::new())),
            next_life: vec![0; n],
        })
    }

    fn spawn(&mut self, i: usize) -> Result<(), String> {
        let mut command = Command::new(&self.worker_bin);
        command
            .args(["--url", &self.urls[i], "--worker-id", &worker_id(i)])
            .args(["--namespace", NAMESPACE, "--election", &self.timings[i]])
            .stdin(Stdio::null())
            .stdout(Stdio::piped())
            .kill_on_drop(true);
        match &self.log_dir {
            Some(dir) => {
                let path = dir.join(format!("{}-{}.log", worker_id(i), self.next_life[i]));
                let file = std::fs::File::create(&path)
                    .map_err(|e| format!("creating the worker log {}: {e}", path.display()))?;
                command
                    .stderr(Stdio::from(file))
                    .env("COORDINATOR_LOG", "coordinator=info");
            }
            None => {
                command.stderr(Stdio::inherit());
            }
        }
        if self.queue {
            command.arg("--queue");
        }
        if self.broken {
            command.env("COORD_CHAOS_BROKEN", "ignore-term");
        } else {
            command.env_remove("COORD_CHAOS_BROKEN");
        }
        let start_ns = monotonic_ns();
        let mut child = command
            .spawn()
            .map_err(|e| format!("launching {}: {e}", self.worker_bin.display()))?;
        let stdout = child
            .stdout
            .take()
            .ok_or("the worker's stdout is not piped")?;
        let life = {
            let mut lives = lock(&self.lives);
            lives.push(Life {
                worker: worker_id(i),
                life: self.next_life[i],
                start_ns,
                end_ns: None,
                exit: None,
                lines: Vec::new(),
            });
            lives.len() - 1
        };
        self.next_life[i] += 1;
        let lives = Arc::clone(&self.lives);
        let reader = tokio::spawn(async move {
            let mut lines = BufReader::new(stdout).lines();
            while let Ok(Some(text)) = lines.next_line().await {
                if let Ok(line) = serde_json::from_str::<Line>(&text) {
                    lock(&lives)[life].lines.push(line);
                }
            }
        });
        self.procs[i] = Some(Proc {
            child,
            life,
            reader,
        });
        Ok(())
    }

    fn pid(&self, i: usize) -> Option<rustix::process::Pid> {
        let id = self.procs[i].as_ref()?.child.id()?;
        rustix::process::Pid::from_raw(i32::try_from(id).ok()?)
    }

    fn signal(&self, i: usize, signal: rustix::process::Signal) {
        if let Some(pid) = self.pid(i) {
            let _ = rustix::process::kill_process(pid, signal);
        }
    }

    /// SIGKILL; the life ends at the signal.
    async fn kill(&mut self, i: usize) {
        if let Some(mut p) = self.procs[i].take() {
            let at = monotonic_ns();
            let _ = p.child.start_kill();
            let _ = p.child.wait().await;
            lock(&self.lives)[p.life].end_ns = Some(at);
            self.readers.push(p.reader);
        }
    }

    /// SIGTERM and wait (SIGKILL after 10 s); the life ends at its exit.
    async fn terminate(&mut self, i: usize) {
        self.signal(i, rustix::process::Signal::TERM);
        if let Some(mut p) = self.procs[i].take() {
            if tokio::time::timeout(Duration::from_secs(10), p.child.wait())
                .await
                .is_err()
            {
                let _ = p.child.start_kill();
                let _ = p.child.wait().await;
            }
            lock(&self.lives)[p.life].end_ns = Some(monotonic_ns());
            self.readers.push(p.reader);
        }
    }

    /// The process of worker `i` if it has exited on its own: its life
    /// ends now, with its status.
    fn reap(&mut self, i: usize) -> Option<String> {
        let p = self.procs[i].as_mut()?;
        let status = match p.child.try_wait() {
            Ok(Some(status)) => status.to_string(),
            Ok(None) => return None,
            Err(e) => format!("unknown ({e})"),
        };
        let p = self.procs[i].take()?;
        {
            let mut lives = lock(&self.lives);
            lives[p.life].end_ns = Some(monotonic_ns());
            lives[p.life].exit = Some(status.clone());
        }
        self.readers.push(p.reader);
        Some(status)
    }

    async fn kill_all(&mut self) {
        for i in 0..self.procs.len() {
            // A paused process dies of SIGKILL as well.
            self.kill(i).await;
        }
    }

    async fn finish(mut self) -> Vec<Life> {
        for reader in self.readers.drain(..) {
            let _ = tokio::time::timeout(Duration::from_secs(5), reader).await;
        }
        std::mem::take(&mut *lock(&self.lives))
    }

    /// The worker that believes it leads now (the highest epoch among the
    /// running processes whose last word is a live `leading`).
    fn leader(&self) -> Option<usize> {
        let now = monotonic_ns();
        let lives = lock(&self.lives);
        let mut best: Option<(u64, usize)> = None;
        for (i, p) in self.procs.iter().enumerate() {
            let Some(p) = p else { continue };
            let last = lives[p.life]
                .lines
                .iter()
                .rev()
                .find_map(|l| match l.event {
                    WorkerEvent::Leading { epoch, deadline_ns } => Some(Some((epoch, deadline_ns))),
                    WorkerEvent::NotLeading { .. } | WorkerEvent::Stopping => Some(None),
                    _ => None,
                });
            if let Some(Some((epoch, deadline))) = last {
                if deadline > now && best.is_none_or(|(e, _)| epoch > e) {
                    best = Some((epoch, i));
                }
            }
        }
        best.map(|(_, i)| i)
    }
}

struct Player<'a> {
    fleet: &'a mut Fleet,
    proxy: &'a FaultProxy,
    operator: &'a dyn LeaseStore,
    bounds: Bounds,
    slack: Duration,
    actions: Vec<Action>,
    steps: BTreeMap<String, u64>,
    net_faults: BTreeMap<String, u64>,
    alternate: bool,
    seed_rng: coordinator_core::SplitMix64,
    /// When the supervisor restarts a worker that exited on its own.
    restart_due: Vec<Option<tokio::time::Instant>>,
}

/// How often the supervisor looks for processes that exited on their own.
const SUPERVISE_EVERY: Duration = Duration::from_millis(200);

/// How long the supervisor waits before it restarts such a process (a
/// service manager's restart delay).
const SUPERVISOR_RESTART_DELAY: Duration = Duration::from_secs(1);

impl Player<'_> {
    /// How long a step takes, its calm spell included.
    fn cost(&self, step: &Step) -> Duration {
        let calm = self.calm(step);
        let workers = self.fleet.procs.len() as u32;
        calm + match step {
            Step::Net { hold, .. } | Step::Pause { hold, .. } | Step::Partition { hold, .. } => {
                *hold
            }
            Step::Kill { down, .. } | Step::Terminate { down, .. } => *down,
            Step::RollingRestart => (self.bounds.handover + Duration::from_secs(3)) * workers,
            Step::Delete(_) | Step::Corrupt(_) => Duration::ZERO,
        }
    }

    fn calm(&self, step: &Step) -> Duration {
        let bound = match step {
            Step::Terminate { .. } => self.bounds.handover,
            Step::Delete(_) | Step::Corrupt(_) => self.bounds.recovery,
            _ => self.bounds.liveness,
        };
        bound + self.slack
    }

    fn resolve(&mut self, target: Target) -> (usize, bool) {
        let n = self.fleet.procs.len();
        let leader = self.fleet.leader();
        match (target, leader) {
            (Target::Leader, Some(l)) => (l, true),
            (Target::Leader, None) => (self.seed_rng.below(n as u64) as usize, false),
            (Target::Follower(k), Some(l)) => {
                let others: Vec<usize> = (0..n).filter(|&i| i != l).collect();
                (others[k % others.len().max(1)], false)
            }
            (Target::Follower(k), None) => (k % n, false),
        }
    }

    fn act(
        &mut self,
        at_ns: u64,
        until_ns: Option<u64>,
        worker: Option<usize>,
        kind: MarkKind,
        label: String,
        takeover: Option<(u64, Duration, &str)>,
    ) {
        self.actions.push(Action {
            at_ns,
            until_ns,
            worker: worker.map(worker_id),
            kind,
            label,
            takeover: takeover.map(|(from_ns, bound, name)| Takeover {
                from_ns,
                bound_ns: nanos(bound),
                bound: name.into(),
            }),
        });
    }

    /// [`act`](Self::act) on worker `i`, held to `bound` if it led.
    #[allow(clippy::too_many_arguments)]
    fn act_on(
        &mut self,
        i: usize,
        leader: bool,
        at_ns: u64,
        until_ns: Option<u64>,
        kind: MarkKind,
        label: String,
        bound: (Duration, &str),
    ) {
        let takeover = leader.then_some((at_ns, bound.0, bound.1));
        self.act(at_ns, until_ns, Some(i), kind, label, takeover);
    }

    async fn play(&mut self, step: &Step) -> Result<(), String> {
        *self.steps.entry(step.kind().into()).or_default() += 1;
        let liveness = self.bounds.liveness;
        match step {
            Step::Net {
                faults,
                target,
                hold,
            } => {
                for f in faults {
                    let name = f.label();
                    let kind = name.split(' ').next().unwrap_or("").to_owned();
                    *self.net_faults.entry(kind).or_default() += 1;
                }
                let label = faults
                    .iter()
                    .map(NetFault::label)
                    .collect::<Vec<_>>()
                    .join(" + ");
                let (who, leader) = match target {
                    Some(t) => {
                        let (i, leader) = self.resolve(*t);
                        self.proxy.set_worker_faults(i, faults.clone());
                        (Some(i), leader)
                    }
                    None => {
                        self.proxy.set_faults(faults.clone());
                        (None, true)
                    }
                };
                let at = monotonic_ns();
                self.wait(*hold).await?;
                match who {
                    Some(i) => self.proxy.set_worker_faults(i, Vec::new()),
                    None => self.proxy.set_faults(Vec::new()),
                }
                let end = monotonic_ns();
                let check = leader.then_some((end, liveness, "liveness"));
                self.act(at, Some(end), who, MarkKind::Fault, label, check);
            }
            Step::Kill { target, down } => {
                let (i, leader) = self.resolve(*target);
                let at = monotonic_ns();
                self.fleet.kill(i).await;
                self.act_on(
                    i,
                    leader,
                    at,
                    None,
                    MarkKind::Nemesis,
                    format!("SIGKILL w{i}"),
                    (liveness, "liveness"),
                );
                self.wait(*down).await?;
                self.restart(i)?;
            }
            Step::Pause { target, hold } => {
                let (i, leader) = self.resolve(*target);
                let at = monotonic_ns();
                self.fleet.signal(i, rustix::process::Signal::STOP);
                self.wait(*hold).await?;
                self.fleet.signal(i, rustix::process::Signal::CONT);
                let end = monotonic_ns();
                self.act_on(
                    i,
                    leader,
                    at,
                    Some(end),
                    MarkKind::Nemesis,
                    format!("SIGSTOP w{i} {:.1} s", hold.as_secs_f64()),
                    (liveness, "liveness"),
                );
            }
            Step::Terminate { target, down } => {
                let (i, leader) = self.resolve(*target);
                let at = monotonic_ns();
                self.fleet.terminate(i).await;
                self.act_on(
                    i,
                    leader,
                    at,
                    None,
                    MarkKind::Nemesis,
                    format!("SIGTERM w{i}"),
                    (self.bounds.handover, "handover"),
                );
                self.wait(*down).await?;
                self.restart(i)?;
            }
            Step::Partition { target, hold } => {
                let (i, leader) = self.resolve(*target);
                let at = monotonic_ns();
                self.proxy.partition(i, true);
                self.wait(*hold).await?;
                self.proxy.partition(i, false);
                let end = monotonic_ns();
                self.act_on(
                    i,
                    leader,
                    at,
                    Some(end),
                    MarkKind::Fault,
                    format!("partition w{i} {:.1} s", hold.as_secs_f64()),
                    (liveness, "liveness"),
                );
            }
            Step::RollingRestart => {
                self.alternate = !self.alternate;
                let timings = if self.alternate {
                    alternate_timings()
                } else {
                    short_timings()
                };
                let json = serde_json::to_string(&timings).map_err(|e| e.to_string())?;
                let name = if self.alternate { "alternate" } else { "short" };
                for i in 0..self.fleet.procs.len() {
                    let leader = self.fleet.leader() == Some(i);
                    let at = monotonic_ns();
                    self.fleet.terminate(i).await;
                    self.act_on(
                        i,
                        leader,
                        at,
                        None,
                        MarkKind::Nemesis,
                        format!("rolling restart w{i} ({name} timings)"),
                        (self.bounds.handover, "handover"),
                    );
                    self.fleet.timings[i] = json.clone();
                    self.restart(i)?;
                    self.wait(self.bounds.handover + Duration::from_secs(3))
                        .await?;
                }
                return Ok(());
            }
            Step::Delete(record) | Step::Corrupt(record) => {
                let namespace = Namespace::new(NAMESPACE).map_err(|e| e.to_string())?;
                let keys = Keys::global(&namespace);
                let (key, name) = match record {
                    Record::Lease => (keys.lease(), "lease"),
                    Record::Metadata => (keys.metadata(), "metadata.json"),
                    Record::Marker => (keys.election_marker().to_owned(), "election marker"),
                };
                let at = monotonic_ns();
                let label = if matches!(step, Step::Delete(_)) {
                    let _ = self.operator.delete(&key).await;
                    format!("operator deletes the {name}")
                } else {
                    let junk = match self.operator.get(&key).await {
                        Ok(Some(object)) if object.body.len() > 1 => {
                            object.body.slice(..object.body.len() / 2)
                        }
                        _ => bytes::Bytes::from_static(b"\x00\xffnot a record"),
                    };
                    let _ = self.operator.put(&key, junk).await;
                    format!("operator corrupts the {name}")
                };
                let check = Some((at, self.bounds.recovery, "recovery"));
                self.act(at, None, None, MarkKind::Operator, label, check);
            }
        }
        self.wait(self.calm(step)).await?;
        Ok(())
    }

    /// Sleeps for `d`, acting meanwhile as the workers' service manager: a
    /// process that exited on its own is restarted after
    /// [`SUPERVISOR_RESTART_DELAY`], as systemd or Kubernetes would (its
    /// exit is on record for the checker).
    async fn wait(&mut self, d: Duration) -> Result<(), String> {
        let until = tokio::time::Instant::now() + d;
        loop {
            self.supervise()?;
            let now = tokio::time::Instant::now();
            if now >= until {
                return Ok(());
            }
            tokio::time::sleep((until - now).min(SUPERVISE_EVERY)).await;
        }
    }

    fn supervise(&mut self) -> Result<(), String> {
        for i in 0..self.fleet.procs.len() {
            if let Some(status) = self.fleet.reap(i) {
                let at = monotonic_ns();
                self.act(
                    at,
                    None,
                    Some(i),
                    MarkKind::Nemesis,
                    format!("w{i} exited on its own ({status})"),
                    None,
                );
                self.restart_due[i] = Some(tokio::time::Instant::now() + SUPERVISOR_RESTART_DELAY);
            }
            let due = self.restart_due[i].is_some_and(|t| t <= tokio::time::Instant::now());
            if due {
                self.restart(i)?;
            }
        }
        Ok(())
    }

    fn restart(&mut self, i: usize) -> Result<(), String> {
        self.restart_due[i] = None;
        if self.fleet.procs[i].is_some() {
            // The supervisor restarted it while a step held it down.
            return Ok(());
        }
        let at = monotonic_ns();
        self.fleet.spawn(i)?;
        self.act(
            at,
            None,
            Some(i),
            MarkKind::Nemesis,
            format!("restart w{i}"),
            None,
        );
        Ok(())
    }
}
