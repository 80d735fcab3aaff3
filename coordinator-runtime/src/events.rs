//! The event stream handed out by [`Coordinator::events`](crate::Coordinator::events).

use std::fmt;
use std::pin::Pin;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::Arc;
use std::task::{Context, Poll};

use coordinator_core::Event;
use futures::stream::{BoxStream, Stream, StreamExt};
use tokio::sync::broadcast;
use tokio::sync::broadcast::error::RecvError;

use crate::TARGET;

/// A stream of one coordinator's [`Event`]s (leader changed, became leader,
/// stopped leading, worker joined, timed out or left, …), from the moment it
/// was created.
///
/// Each subscriber has its own buffer of
/// [`event_capacity`](crate::CoordinatorConfig::event_capacity) events; a
/// subscriber that falls further behind misses the oldest ones (counted in
/// [`missed`](Self::missed) and logged). For the *current* leadership, which
/// is never missed, use [`leadership()`](crate::Coordinator::leadership).
/// The stream ends when the coordinator has stopped.
///
/// # Examples
///
/// ```no_run
/// # async fn demo(coordinator: &coordinator_runtime::Coordinator) {
/// use futures::StreamExt;
/// let mut events = coordinator.events();
/// while let Some(event) = events.next().await {
///     println!("{event:?}");
/// }
/// # }
/// ```
pub struct EventStream {
    inner: BoxStream<'static, Event>,
    missed: Arc<AtomicU64>,
}

impl EventStream {
    pub(crate) fn new(receiver: broadcast::Receiver<Event>) -> Self {
        let missed = Arc::new(AtomicU64::new(0));
        let counter = missed.clone();
        let inner = futures::stream::unfold(receiver, move |mut receiver| {
            let counter = counter.clone();
            async move {
                loop {
                    match receiver.recv().await {
                        Ok(event) => return Some((event, receiver)),
                        Err(RecvError::Lagged(n)) => {
                            counter.fetch_add(n, Ordering::Relaxed);
                            tracing::warn!(target: TARGET, missed = n,
                                "event subscriber fell behind and missed events; raise event_capacity or read faster");
                        }
                        Err(RecvError::Closed) => return None,
                    }
                }
            }
        })
        .boxed();
        Self { inner, missed }
    }

    /// The next event, or `None` once the coordinator has stopped.
    ///
    /// # Cancel safety
    ///
    /// Cancel safe: an event is never lost by dropping this future.
    pub async fn recv(&mut self) -> Option<Event> {
        self.inner.next().await
    }

    /// How many events this subscriber missed because it fell behind.
    pub fn missed(&self) -> u64 {
        self.missed.load(Ordering::Relaxed)
    }
}

impl Stream for EventStream {
    type Item = Event;

    fn poll_next(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<Option<Event>> {
        self.inner.poll_next_unpin(cx)
    }
}

impl fmt::Debug for EventStream {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("EventStream")
            .field("missed", &self.missed())
            .finish_non_exhaustive()
    }
}
