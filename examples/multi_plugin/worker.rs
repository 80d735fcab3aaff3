//! One worker: its registry, the three plugins on it, its queue consumer
//! and its monitors.

use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex, PoisonError};
use std::time::{Duration, SystemTime, UNIX_EPOCH};

use coordinator_plugins::queue::{ClaimHandle, HandlerError, Message, Queue, WorkerStats};
use coordinator_plugins::scheduler::{JobContext, JobError, Scheduler};
use coordinator_plugins::ttl::{CallbackError, ExpiredRecord, Ttl};
use coordinator_runtime::{Coordinator, CoordinatorPlugin, CoordinatorRegistry};
use coordinator_store::LeaseStore;
use tokio::task::JoinHandle;
use tokio_util::sync::CancellationToken;

use crate::monitor::{self, Out};
use crate::settings::FileConfig;
use crate::Error;

/// What the workers' handlers did, for the steps to wait on.
#[derive(Default)]
pub(crate) struct Progress {
    pub(crate) handled: AtomicU64,
    /// `(worker, epoch)` of each cron run.
    pub(crate) cron_runs: Mutex<Vec<(String, u64)>>,
    /// `(key, worker, epoch)` of each expired record.
    pub(crate) expired: Mutex<Vec<(String, String, u64)>>,
}

pub(crate) fn lock<T>(mutex: &Mutex<T>) -> std::sync::MutexGuard<'_, T> {
    mutex.lock().unwrap_or_else(PoisonError::into_inner)
}

pub(crate) struct Worker {
    pub(crate) name: String,
    pub(crate) registry: CoordinatorRegistry,
    /// The coordinator the plugins run under (the shared one in global mode).
    pub(crate) coordinator: Arc<Coordinator>,
    pub(crate) queue: Queue,
    pub(crate) scheduler: Scheduler,
    pub(crate) ttl: Ttl,
    pub(crate) consumer: CancellationToken,
    pub(crate) consuming: JoinHandle<WorkerStats>,
    pub(crate) monitors: Vec<JoinHandle<()>>,
}

fn unix_ms() -> u64 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map_or(0, |d| u64::try_from(d.as_millis()).unwrap_or(u64::MAX))
}

/// `HH:MM:SS` (UTC) of a Unix instant in ms.
fn clock_time(unix_ms: u64) -> String {
    let s = unix_ms / 1000;
    format!("{:02}:{:02}:{:02}", s / 3600 % 24, s / 60 % 60, s % 60)
}

pub(crate) async fn start_worker(
    name: &str,
    store: Arc<dyn LeaseStore>,
    file: &FileConfig,
    namespace: &str,
    out: &Out,
    progress: &Arc<Progress>,
) -> Result<Worker, Error> {
    let config = file.coordinator.clone().with_worker_id(name);
    let registry = CoordinatorRegistry::new(store, config)?;
    let plugins = &file.plugins;
    let queue = Queue::builder(&registry, namespace, plugins.queue.name("orders"))
        .config(plugins.queue.config.clone())
        .build()?;
    let (who, said, seen) = (name.to_owned(), out.clone(), progress.clone());
    let scheduler = Scheduler::builder(&registry, namespace, plugins.scheduler.name("cron"))
        .config(plugins.scheduler.config.clone())
        .handler("report", move |ctx: JobContext| {
            let (who, said, seen) = (who.clone(), said.clone(), seen.clone());
            async move {
                let slot = ctx.slot_unix_ms().map_or("now".into(), clock_time);
                said.say(format!(
                    "{who:>3} | cron: job `report`, slot {slot} UTC, epoch {}",
                    ctx.epoch()
                ));
                lock(&seen.cron_runs).push((who, ctx.epoch()));
                Ok::<(), JobError>(())
            }
        })
        .build()?;
    let (who, said, seen) = (name.to_owned(), out.clone(), progress.clone());
    let ttl = Ttl::builder(&registry, namespace, plugins.ttl.name("sessions"))
        .config(plugins.ttl.config.clone())
        .callback(move |record: ExpiredRecord| {
            let (who, said, seen) = (who.clone(), said.clone(), seen.clone());
            async move {
                let late = unix_ms().saturating_sub(record.expires_at_unix_ms);
                said.say(format!(
                    "{who:>3} | ttl: {} expired {:.1} s ago; handled under epoch {}",
                    record.key,
                    late as f64 / 1000.0,
                    record.epoch
                ));
                lock(&seen.expired).push((record.key, who, record.epoch));
                Ok::<(), CallbackError>(())
            }
        })
        .build()?;

    let leader_parts: [Arc<dyn CoordinatorPlugin>; 3] = [
        Arc::new(queue.maintenance()),
        Arc::new(scheduler.plugin()),
        Arc::new(ttl.sweeper()),
    ];
    let mut elections: Vec<(String, Vec<String>)> = Vec::new();
    let mut coordinator = None;
    for plugin in leader_parts {
        let plugin_name = plugin.name().to_owned();
        let attached = registry.attach(namespace, plugin).await?;
        let lease = attached.keys().lease().to_owned();
        match elections.iter_mut().find(|(key, _)| *key == lease) {
            Some((_, names)) => names.push(plugin_name),
            None => elections.push((lease, vec![plugin_name])),
        }
        coordinator.get_or_insert(attached);
    }
    let coordinator = coordinator.ok_or("no plugin attached")?;
    for (lease, names) in &elections {
        out.say(format!(
            "{name:>3} | started: {} under the election {lease}",
            names.join(", ")
        ));
    }
    let mut monitors = Vec::new();
    for c in registry.coordinators() {
        let label = match c.plugin() {
            Some(plugin) => format!("{name} ({plugin})"),
            None => name.to_owned(),
        };
        monitors.push(monitor::watch_leadership(
            out.clone(),
            label.clone(),
            c.clone(),
        ));
        monitors.push(monitor::print_events(out.clone(), label, &c));
    }

    let consumer = CancellationToken::new();
    let (who, said, seen) = (name.to_owned(), out.clone(), progress.clone());
    let handler = move |message: Message, _claim: ClaimHandle| {
        let (who, said, seen) = (who.clone(), said.clone(), seen.clone());
        async move {
            tokio::time::sleep(Duration::from_millis(150)).await; // "work"
            said.say(format!(
                "{who:>3} | queue: handled {} (attempt {})",
                String::from_utf8_lossy(&message.payload),
                message.attempt
            ));
            seen.handled.fetch_add(1, Ordering::Relaxed);
            Ok::<(), HandlerError>(())
        }
    };
    let consuming = tokio::spawn(queue.worker(handler).run(consumer.clone()));
    Ok(Worker {
        name: name.to_owned(),
        registry,
        coordinator,
        queue,
        scheduler,
        ttl,
        consumer,
        consuming,
        monitors,
    })
}
