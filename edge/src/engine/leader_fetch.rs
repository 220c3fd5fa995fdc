//! A fill's fetch run by the request that started it, until its outcome is known.
//!
//! Most misses are small: the response head and the whole body arrive in one read, and the
//! fetch completes in the poll that reads them. A task of its own would then cost a spawn,
//! a second task, and wake-ups between the two on every miss (about 3 000 instructions). So
//! the leader polls the fetch itself while it waits for the outcome, and the fetch goes to a
//! task of its own only when it outlives that wait: its body still arriving when the outcome
//! is published, or the leader gone (its client left), since a fill runs to completion
//! whatever its readers do.
//!
//! A panic in the fetch stays in the fetch, as it did in a task of its own: the fetch is
//! dropped (its guard resolves the fill as failed) and the leader answers like its joiners.

use std::future::{Future, poll_fn};
use std::panic::AssertUnwindSafe;
use std::pin::Pin;
use std::sync::Arc;
use std::task::Poll;

use super::fill::{Fill, Outcome};

/// A fetch owned by its leader; dropped unfinished, it carries on in a task.
pub(super) struct LeaderFetch<F: Future<Output = ()> + Send + 'static> {
    /// `None` once the fetch has completed (or been handed to a task).
    fetch: Option<Pin<Box<F>>>,
}

impl<F: Future<Output = ()> + Send + 'static> LeaderFetch<F> {
    /// Boxed: a fetch's state is kilobytes, and a box moves as a pointer (into a task too).
    pub(super) fn new(fetch: F) -> Self {
        LeaderFetch {
            fetch: Some(Box::pin(fetch)),
        }
    }

    /// Drives the fetch until `fill` has an outcome, and returns it.
    ///
    /// Only the fetch publishes a fill's outcome (its drop guard included), so while the
    /// fetch is pending without an outcome, what wakes this task is the fetch's own progress:
    /// no wait on the fill's notifications is needed here.
    pub(super) async fn outcome(&mut self, fill: &Arc<Fill>) -> Outcome {
        poll_fn(|cx| {
            let Some(fetch) = self.fetch.as_mut() else {
                return Poll::Ready(());
            };
            // Unwind safety: a fetch that panicked is never polled again (dropped here), and
            // the fill it shared is resolved by the fetch's own guard as it drops.
            match std::panic::catch_unwind(AssertUnwindSafe(|| fetch.as_mut().poll(cx))) {
                Ok(Poll::Pending) => {}
                Ok(Poll::Ready(())) => {
                    self.fetch = None;
                    return Poll::Ready(());
                }
                Err(_) => {
                    tracing::error!("a fill's fetch panicked; the fill fails");
                    self.fetch = None;
                    return Poll::Ready(());
                }
            }
            if fill.has_outcome() {
                Poll::Ready(())
            } else {
                Poll::Pending
            }
        })
        .await;
        // Published by now (a completed or dropped fetch always publishes, if only as
        // abandoned): this returns at once, and would wait like any joiner's otherwise.
        fill.outcome().await
    }
}

impl<F: Future<Output = ()> + Send + 'static> Drop for LeaderFetch<F> {
    fn drop(&mut self) {
        let Some(fetch) = self.fetch.take() else {
            return;
        };
        // Outside a runtime (it is shutting down) the fetch is dropped: its guard still takes
        // the fill out of the table and resolves it for its readers.
        if let Ok(runtime) = tokio::runtime::Handle::try_current() {
            drop(runtime.spawn(fetch));
        }
    }
}
