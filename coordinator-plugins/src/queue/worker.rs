//! [`QueueWorker`]: claims messages and runs a [`MessageHandler`] on each,
//! up to the configured concurrency.

use std::fmt;
use std::future::Future;
use std::sync::Arc;

use async_trait::async_trait;
use tokio::task::JoinSet;
use tokio_util::sync::CancellationToken;

use super::claim::{ClaimHandle, Consumer, Message, WorkerStats};
use super::{Queue, TARGET};

/// The error a handler returns to fail an attempt; its text is kept with
/// the message (and in the dead letter).
pub type HandlerError = Box<dyn std::error::Error + Send + Sync + 'static>;

/// What a [`QueueWorker`] runs for each message.
///
/// Return `Ok` to complete the message, `Err` to fail the attempt (retried
/// after the back-off, dead-lettered after the last attempt). The future
/// is dropped if the claim's visibility runs out first (then
/// `claim.cancellation_token()` has fired): keep effects idempotent, or
/// call [`ClaimHandle::extend`] while working.
///
/// Any `Fn(Message, ClaimHandle) -> impl Future<Output = Result<(), HandlerError>>`
/// is a handler:
///
/// ```
/// use coordinator_plugins::queue::{ClaimHandle, HandlerError, Message, MessageHandler};
/// fn assert_handler(_: impl MessageHandler) {}
/// assert_handler(|message: Message, _claim: ClaimHandle| async move {
///     println!("{} attempt {}", message.id, message.attempt);
///     Ok::<(), HandlerError>(())
/// });
/// ```
#[async_trait]
pub trait MessageHandler: Send + Sync + 'static {
    /// Handles one delivery.
    ///
    /// # Errors
    ///
    /// Any error fails the attempt.
    async fn handle(&self, message: Message, claim: ClaimHandle) -> Result<(), HandlerError>;
}

#[async_trait]
impl<F, Fut> MessageHandler for F
where
    F: Fn(Message, ClaimHandle) -> Fut + Send + Sync + 'static,
    Fut: Future<Output = Result<(), HandlerError>> + Send + 'static,
{
    async fn handle(&self, message: Message, claim: ClaimHandle) -> Result<(), HandlerError> {
        self(message, claim).await
    }
}

/// Claims messages and runs a handler on each, at most
/// [`concurrency`](super::QueueConfig::concurrency) at a time; polls with a
/// back-off while the queue is empty.
///
/// # Examples
///
/// ```
/// use std::sync::Arc;
/// use std::sync::atomic::{AtomicUsize, Ordering};
/// use coordinator_plugins::queue::{ClaimHandle, HandlerError, Message, Queue};
/// use tokio_util::sync::CancellationToken;
/// # #[tokio::main(flavor = "current_thread", start_paused = true)]
/// # async fn main() -> Result<(), coordinator_plugins::queue::QueueError> {
/// # let registry = coordinator_runtime::CoordinatorRegistry::new(
/// #     Arc::new(coordinator_store::MemoryStore::new()),
/// #     coordinator_runtime::CoordinatorConfig::default().with_worker_id("w1"),
/// # ).unwrap();
/// let queue = Queue::builder(&registry, "ns", "q").build()?;
/// queue.enqueue_batch(["a", "b"]).await?;
/// let done = Arc::new(AtomicUsize::new(0));
/// let counter = done.clone();
/// let worker = queue.worker(move |_m: Message, _c: ClaimHandle| {
///     let counter = counter.clone();
///     async move { counter.fetch_add(1, Ordering::SeqCst); Ok::<(), HandlerError>(()) }
/// });
/// let stop = CancellationToken::new();
/// let task = tokio::spawn(worker.run(stop.clone()));
/// while done.load(Ordering::SeqCst) < 2 {
///     tokio::time::sleep(std::time::Duration::from_millis(100)).await;
/// }
/// stop.cancel();
/// let stats = task.await.unwrap();
/// assert_eq!(stats.completed, 2);
/// # Ok(())
/// # }
/// ```
pub struct QueueWorker {
    consumer: Arc<Consumer>,
    handler: Arc<dyn MessageHandler>,
}

impl Queue {
    /// A worker claiming as the worker of the registry the queue was built
    /// from, and running `handler`.
    pub fn worker(&self, handler: impl MessageHandler) -> QueueWorker {
        QueueWorker {
            consumer: Arc::new(self.consumer()),
            handler: Arc::new(handler),
        }
    }
}

impl QueueWorker {
    /// This worker's counters so far.
    pub fn stats(&self) -> WorkerStats {
        self.consumer.stats()
    }

    /// Runs until `shutdown` fires, then stops claiming and waits for the
    /// handlers in flight (each ends by its visibility deadline at the
    /// latest). Returns the counters.
    ///
    /// Store errors are logged and retried at the poll interval; they never
    /// end the loop.
    ///
    /// # Cancel safety
    ///
    /// Dropping the future aborts the handlers in flight (like a crash):
    /// their claims expire and the leader recovers them.
    pub async fn run(self, shutdown: CancellationToken) -> WorkerStats {
        let queue = self.consumer.queue().clone();
        let config = &queue.config;
        let mut tasks: JoinSet<()> = JoinSet::new();
        let mut idle = config.poll_interval;
        let mut next_poll = tokio::time::Instant::now();
        loop {
            while let Some(joined) = tasks.try_join_next() {
                if let Err(error) = joined {
                    if error.is_panic() {
                        tracing::error!(target: TARGET, queue = %queue.name, worker_id = %self.consumer.worker_id(), "a handler panicked; its claim expires and the message is retried");
                    }
                }
            }
            if shutdown.is_cancelled() {
                break;
            }
            let free = config.concurrency.saturating_sub(tasks.len());
            if free > 0 && tokio::time::Instant::now() >= next_poll {
                match self.consumer.claim(free).await {
                    Ok(claimed) => {
                        let got = claimed.len();
                        for message in claimed {
                            let handler = self.handler.clone();
                            tasks.spawn(run_one(handler, message));
                        }
                        if got == 0 {
                            next_poll = tokio::time::Instant::now() + idle;
                            idle = (idle * 2).min(config.max_poll_interval);
                        } else {
                            idle = config.poll_interval;
                            // Free slots left over: the queue ran dry (or
                            // every race was lost); wait a poll.
                            if got < free {
                                next_poll = tokio::time::Instant::now() + config.poll_interval;
                            }
                        }
                    }
                    Err(error) => {
                        tracing::warn!(target: TARGET, queue = %queue.name, worker_id = %self.consumer.worker_id(), error = %error, "claim failed; retrying after the poll interval");
                        next_poll = tokio::time::Instant::now() + config.poll_interval;
                    }
                }
                continue;
            }
            let wait_poll = free > 0;
            tokio::select! {
                // In order: tokio picks a ready branch at random (seeded per
                // process), and a seed must replay a simulated run.
                biased;
                () = shutdown.cancelled() => {}
                Some(_) = tasks.join_next(), if !tasks.is_empty() => {
                    // A slot freed: poll at once unless we are backing off.
                    if idle == config.poll_interval {
                        next_poll = next_poll.min(tokio::time::Instant::now());
                    }
                }
                () = tokio::time::sleep_until(next_poll), if wait_poll => {}
            }
        }
        while tasks.join_next().await.is_some() {}
        self.consumer.stats()
    }
}

async fn run_one(handler: Arc<dyn MessageHandler>, message: super::ClaimedMessage) {
    let handle = message.handle().clone();
    let outcome = tokio::select! {
        // In order: tokio picks a ready branch at random (seeded per
        // process), and a seed must replay a simulated run.
        biased;
        () = handle.expired() => None,
        result = handler.handle(message.message().clone(), handle.clone()) => Some(result),
    };
    match outcome {
        None => {}
        Some(Ok(())) => {
            if let Err(error) = message.complete().await {
                tracing::debug!(target: TARGET, key = %handle.key(), error = %error, "completion not recorded");
            }
        }
        Some(Err(error)) => {
            if let Err(error) = message.fail(&error).await {
                tracing::debug!(target: TARGET, key = %handle.key(), error = %error, "failure not recorded");
            }
        }
    }
}

impl fmt::Debug for QueueWorker {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("QueueWorker")
            .field("consumer", &self.consumer)
            .finish_non_exhaustive()
    }
}
