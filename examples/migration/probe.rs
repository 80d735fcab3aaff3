//! A plugin that records where it leads, and what the records say.

use std::sync::{Arc, Mutex, PoisonError};
use std::time::{Duration, Instant};

use coordinator_runtime::{
    async_trait, CoordinatorPlugin, LeaderContext, PluginError, StepDownReason,
};

use crate::Error;

/// One term of a plugin on one worker, as the plugin saw it.
#[derive(Clone, Debug)]
pub(crate) struct Term {
    pub(crate) plugin: String,
    pub(crate) worker: String,
    /// The election's lease key (`LeaderContext::election`).
    pub(crate) election: String,
    pub(crate) epoch: u64,
    pub(crate) began: Instant,
    pub(crate) ended: Option<Instant>,
}

pub(crate) type Terms = Arc<Mutex<Vec<Term>>>;

pub(crate) fn lock<T>(m: &Mutex<T>) -> std::sync::MutexGuard<'_, T> {
    m.lock().unwrap_or_else(PoisonError::into_inner)
}

/// A plugin that records when, where and under which election it leads.
pub(crate) struct Probe {
    pub(crate) name: &'static str,
    pub(crate) worker: String,
    pub(crate) terms: Terms,
}

#[async_trait]
impl CoordinatorPlugin for Probe {
    fn name(&self) -> &str {
        self.name
    }
    async fn on_become_coordinator(&self, ctx: LeaderContext) -> Result<(), PluginError> {
        lock(&self.terms).push(Term {
            plugin: self.name.to_owned(),
            worker: self.worker.clone(),
            election: ctx.election().to_owned(),
            epoch: ctx.epoch(),
            began: Instant::now(),
            ended: None,
        });
        Ok(())
    }
    async fn on_stop_being_coordinator(&self, _: StepDownReason) -> Result<(), PluginError> {
        let mut terms = lock(&self.terms);
        if let Some(term) = terms
            .iter_mut()
            .rev()
            .find(|t| t.plugin == self.name && t.worker == self.worker && t.ended.is_none())
        {
            term.ended = Some(Instant::now());
        }
        Ok(())
    }
}

/// Waits until `billing` has a term under `election` that began after
/// `since`; returns that term.
pub(crate) async fn billing_under(
    terms: &Terms,
    election: &str,
    since: Instant,
) -> Result<Term, Error> {
    let deadline = Instant::now() + Duration::from_secs(60);
    loop {
        let found = lock(terms)
            .iter()
            .find(|t| t.plugin == "billing" && t.election == election && t.began >= since)
            .cloned();
        if let Some(term) = found {
            return Ok(term);
        }
        if Instant::now() > deadline {
            return Err(format!("billing never led under {election}").into());
        }
        tokio::time::sleep(Duration::from_millis(10)).await;
    }
}

/// How long `billing` led under two elections at once, after `since`.
pub(crate) fn double_leader(terms: &Terms, since: Instant, now: Instant) -> Duration {
    let terms = lock(terms);
    let billing: Vec<&Term> = terms.iter().filter(|t| t.plugin == "billing").collect();
    let mut total = Duration::ZERO;
    for (i, a) in billing.iter().enumerate() {
        for b in &billing[i + 1..] {
            if a.election == b.election {
                continue;
            }
            let start = a.began.max(b.began).max(since);
            let end = a.ended.unwrap_or(now).min(b.ended.unwrap_or(now));
            total += end.saturating_duration_since(start);
        }
    }
    total
}
