//! Batching of concurrent purges into one log entry on the leader.
//!
//! Purges queue in a channel; a loop takes whatever is queued (up to a count and a size), and
//! proposes it as one [`Command::Purges`] entry: one append, one fsync and one replication round
//! for the lot. A few batches may be in flight at once, and while they commit the next batch
//! fills, so batches grow with load and latency stays about one commit when idle.
//!
//! ```text
//! submit ─┐
//! submit ─┼─▶ queue ─▶ [take ≤ N] ─▶ client_write(Purges{items}) ─▶ answers in order
//! submit ─┘
//! ```

use std::sync::Arc;
use std::time::Duration;

use tiercel_cluster::purge::wire::PurgeAccepted;
use tokio::sync::{Semaphore, mpsc, oneshot};

use crate::app::WriteError;
use crate::types::{Command, CommandResponse, PurgeItem, Raft, unix_ms};

/// Most purges in one entry.
pub const MAX_BATCH_ITEMS: usize = 256;
/// Most bytes of targets in one entry (URLs, tags, ...), so an entry stays a few MiB at most.
pub const MAX_BATCH_BYTES: usize = 4 * 1024 * 1024;
/// Batches committing at the same time.
pub const MAX_IN_FLIGHT: usize = 4;

type Reply = oneshot::Sender<Result<PurgeAccepted, WriteError>>;

struct Pending {
    item: PurgeItem,
    reply: Reply,
}

/// Handle to the batching loop.
#[derive(Clone)]
pub struct Batcher {
    tx: mpsc::Sender<Pending>,
}

impl Batcher {
    /// Starts the loop proposing through `raft`, each commit bounded by `timeout`.
    pub fn start(raft: Raft, timeout: Duration) -> Self {
        let (tx, rx) = mpsc::channel(4096);
        tokio::spawn(run(raft, rx, timeout));
        Self { tx }
    }

    /// Queues one validated purge and waits for its commit.
    pub async fn submit(&self, item: PurgeItem) -> Result<PurgeAccepted, WriteError> {
        let (reply, rx) = oneshot::channel();
        self.tx
            .send(Pending { item, reply })
            .await
            .map_err(|_| WriteError::Unavailable("shutting down".into()))?;
        rx.await
            .unwrap_or_else(|_| Err(WriteError::Unavailable("batch dropped".into())))
    }
}

fn item_bytes(item: &PurgeItem) -> usize {
    let p = &item.purge;
    [&p.urls, &p.prefixes, &p.tags, &p.hosts]
        .iter()
        .flat_map(|v| v.iter())
        .map(|s| s.len() + 8)
        .sum::<usize>()
        + 64
}

async fn run(raft: Raft, mut rx: mpsc::Receiver<Pending>, timeout: Duration) {
    let slots = Arc::new(Semaphore::new(MAX_IN_FLIGHT));
    let mut carry: Option<Pending> = None;
    loop {
        let first = match carry.take() {
            Some(p) => p,
            None => match rx.recv().await {
                Some(p) => p,
                None => return,
            },
        };
        let Ok(permit) = slots.clone().acquire_owned().await else {
            return;
        };
        let mut bytes = item_bytes(&first.item);
        let mut batch = vec![first];
        while batch.len() < MAX_BATCH_ITEMS {
            match rx.try_recv() {
                Ok(p) => {
                    let b = item_bytes(&p.item);
                    if bytes + b > MAX_BATCH_BYTES {
                        carry = Some(p);
                        break;
                    }
                    bytes += b;
                    batch.push(p);
                }
                Err(_) => break,
            }
        }
        let raft = raft.clone();
        tokio::spawn(async move {
            let _permit = permit;
            commit(&raft, batch, timeout).await;
        });
    }
}

async fn commit(raft: &Raft, batch: Vec<Pending>, timeout: Duration) {
    let (items, replies): (Vec<PurgeItem>, Vec<Reply>) =
        batch.into_iter().map(|p| (p.item, p.reply)).unzip();
    let n = items.len();
    let cmd = Command::Purges {
        ts_ms: unix_ms(),
        items,
    };
    let result = match tokio::time::timeout(timeout, raft.client_write(cmd)).await {
        Ok(Ok(resp)) => match resp.data {
            CommandResponse::Purges { accepted } if accepted.len() == n => Ok(accepted),
            other => Err(WriteError::Unavailable(format!(
                "unexpected apply result {other:?}"
            ))),
        },
        Ok(Err(e)) => Err(WriteError::from_raft(e)),
        Err(_) => Err(WriteError::Unavailable("commit timed out".into())),
    };
    tracing::debug!(items = n, ok = result.is_ok(), "purge batch");
    match result {
        Ok(accepted) => {
            for (reply, a) in replies.into_iter().zip(accepted) {
                let _ = reply.send(Ok(a));
            }
        }
        Err(e) => {
            for reply in replies {
                let _ = reply.send(Err(e.clone()));
            }
        }
    }
}
