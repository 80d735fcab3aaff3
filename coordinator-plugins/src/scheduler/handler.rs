//! [`JobHandler`] and the [`JobContext`] it runs with.

use std::future::Future;
use std::sync::Arc;

use async_trait::async_trait;
use coordinator_core::Instant;
use coordinator_runtime::{Clock, LeaderContext};
use tokio_util::sync::CancellationToken;

/// The error a job returns to fail an attempt.
pub type JobError = Box<dyn std::error::Error + Send + Sync + 'static>;

/// What a job run gets: which job and slot, which attempt, under which
/// epoch, and a token that fires when the run must stop (timeout, end of
/// the leader's term, or loss of the slot's lease). The job's future is
/// also dropped then; the token is for work the job spawned.
#[derive(Clone, Debug)]
pub struct JobContext {
    pub(crate) job: String,
    pub(crate) slot_unix_ms: Option<u64>,
    pub(crate) attempt: u32,
    pub(crate) leader: LeaderContext,
    pub(crate) token: CancellationToken,
    pub(crate) lease_deadline: Arc<std::sync::atomic::AtomicU64>,
    pub(crate) clock: Arc<dyn Clock>,
}

impl JobContext {
    /// The job's name.
    pub fn job(&self) -> &str {
        &self.job
    }

    /// The slot's scheduled instant (ms since the epoch); `None` for a
    /// run-now request.
    pub fn slot_unix_ms(&self) -> Option<u64> {
        self.slot_unix_ms
    }

    /// The attempt, from 1.
    pub fn attempt(&self) -> u32 {
        self.attempt
    }

    /// The leader's epoch: write it into anything the job writes, fenced.
    pub fn epoch(&self) -> u64 {
        self.leader.epoch()
    }

    /// The leader's context.
    pub fn leader(&self) -> &LeaderContext {
        &self.leader
    }

    /// Fires when the run must stop.
    pub fn cancellation_token(&self) -> &CancellationToken {
        &self.token
    }

    /// True while the run may still act: the token has not fired, this
    /// worker still leads, and its lease on the slot holds, checked now.
    /// Check it just before each side effect.
    pub fn is_valid(&self) -> bool {
        let lease = Instant::from_millis(
            self.lease_deadline
                .load(std::sync::atomic::Ordering::Acquire),
        );
        !self.token.is_cancelled() && self.leader.is_valid() && self.clock.now() < lease
    }
}

/// What a job runs. Any `Fn(JobContext) -> impl Future<Output = Result<(), JobError>>`
/// is one:
///
/// ```
/// use coordinator_plugins::scheduler::{JobContext, JobError, JobHandler};
/// fn assert_handler(_: impl JobHandler) {}
/// assert_handler(|ctx: JobContext| async move {
///     if ctx.is_valid() { println!("{} slot {:?}", ctx.job(), ctx.slot_unix_ms()); }
///     Ok::<(), JobError>(())
/// });
/// ```
#[async_trait]
pub trait JobHandler: Send + Sync + 'static {
    /// Runs one attempt.
    ///
    /// # Errors
    ///
    /// Any error fails the attempt (retried per the job's policy).
    async fn run(&self, ctx: JobContext) -> Result<(), JobError>;
}

#[async_trait]
impl<F, Fut> JobHandler for F
where
    F: Fn(JobContext) -> Fut + Send + Sync + 'static,
    Fut: Future<Output = Result<(), JobError>> + Send + 'static,
{
    async fn run(&self, ctx: JobContext) -> Result<(), JobError> {
        self(ctx).await
    }
}
