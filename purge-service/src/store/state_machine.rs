//! The state machine around [`State`]: openraft's [`RaftStateMachine`] and
//! [`RaftSnapshotBuilder`], with snapshots persisted in redb.
//!
//! The state lives in memory and is not written on every apply; snapshots are (fsync'd), and
//! after a restart openraft re-applies the committed log after the last snapshot (the log store
//! saves `committed`). Readers (the HTTP API) share the state through a [`StateReader`] and learn
//! about progress from a watch channel of the last applied index.

use std::io::Cursor;
use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};

use openraft::storage::RaftStateMachine;
use openraft::{
    EntryPayload, RaftSnapshotBuilder, Snapshot, SnapshotMeta, StorageIOError, StoredMembership,
};
use parking_lot::RwLock;
use redb::{Database, Durability};
use serde::{Deserialize, Serialize};
use tiercel_cluster::purge::wire::LogEvent;
use tokio::sync::watch;

use super::recent::RecentEvents;
use super::{KEY_SNAPSHOT_DATA, KEY_SNAPSHOT_META, META, StoreError, blocking, db_err, read_meta};
use crate::state::State;
use crate::state::events::{encode_line, entry_event};
use crate::types::{CommandResponse, Entry, LogId, NodeId, StorageError, TypeConfig};

/// The state plus what openraft needs to know about it.
#[derive(Debug, Clone, Default, Serialize, Deserialize)]
pub struct Machine {
    /// Last applied log id.
    pub last_applied: Option<LogId>,
    /// Last applied membership.
    pub membership: StoredMembership<NodeId, openraft::BasicNode>,
    /// The replicated state.
    pub state: State,
}

/// The newest snapshot as `/v1/log` needs it for a `Reset`: encoded once, shared by every
/// stream that needs it (a thousand followers reconnecting after compaction copy nothing).
#[derive(Debug, Clone, Default)]
pub struct SnapshotView {
    /// Last index covered (0 when there is none).
    pub index: u64,
    /// The `Reset` line (NDJSON) naming that index and every service as of it.
    pub reset_line: bytes::Bytes,
}

/// Default number of entries kept encoded for streams (seconds of history at full load).
pub const RECENT_ENTRIES: usize = 4096;
/// Bytes of encoded lines kept for streams.
const RECENT_BYTES: usize = 16 * 1024 * 1024;

struct Shared {
    machine: RwLock<Machine>,
    recent: RwLock<RecentEvents>,
    snapshot: RwLock<SnapshotView>,
    applied: watch::Sender<u64>,
    snapshot_seq: AtomicU64,
    db: Arc<Database>,
}

/// Read access to the applied state for the API.
#[derive(Clone)]
pub struct StateReader {
    shared: Arc<Shared>,
}

impl StateReader {
    /// Runs `f` on the current state under a read lock (keep it short).
    pub fn with<T>(&self, f: impl FnOnce(&Machine) -> T) -> T {
        f(&self.shared.machine.read())
    }

    /// Watches the last applied index.
    pub fn applied(&self) -> watch::Receiver<u64> {
        self.shared.applied.subscribe()
    }

    /// The newest snapshot's index and services.
    pub fn snapshot(&self) -> SnapshotView {
        self.shared.snapshot.read().clone()
    }

    /// The encoded `/v1/log` lines of the applied entries `from..=upto`, when they are all
    /// still in memory.
    pub fn recent_lines(&self, from: u64, upto: u64) -> Option<Vec<bytes::Bytes>> {
        self.shared.recent.read().lines(from, upto)
    }
}

/// The state machine handed to openraft; clones share one state.
#[derive(Clone)]
pub struct StateMachineStore {
    shared: Arc<Shared>,
}

#[derive(Serialize, Deserialize)]
struct StoredMeta {
    meta: SnapshotMeta<NodeId, openraft::BasicNode>,
}

impl StateMachineStore {
    /// Loads the last snapshot from `db` (or starts empty); keeps the `/v1/log` lines of the
    /// last `recent_entries` applied entries in memory.
    pub async fn open(db: Arc<Database>, recent_entries: usize) -> Result<Self, StoreError> {
        let db2 = db.clone();
        let loaded = blocking(move || {
            let meta = read_meta(&db2, KEY_SNAPSHOT_META)?;
            let data = read_meta(&db2, KEY_SNAPSHOT_DATA)?;
            match (meta, data) {
                (Some(m), Some(d)) => {
                    let _: StoredMeta = serde_json::from_slice(&m)?;
                    Ok(Some(decode_machine(&d)?))
                }
                _ => Ok(None),
            }
        })
        .await?;
        let machine = loaded.unwrap_or_default();
        let view = view_of(&machine);
        let applied = machine.last_applied.map(|l| l.index).unwrap_or(0);
        let (tx, _) = watch::channel(applied);
        Ok(Self {
            shared: Arc::new(Shared {
                machine: RwLock::new(machine),
                recent: RwLock::new(RecentEvents::new(recent_entries, RECENT_BYTES)),
                snapshot: RwLock::new(view),
                applied: tx,
                snapshot_seq: AtomicU64::new(0),
                db,
            }),
        })
    }

    /// A reader sharing this state.
    pub fn reader(&self) -> StateReader {
        StateReader {
            shared: self.shared.clone(),
        }
    }

    async fn save_snapshot(
        &self,
        meta: &SnapshotMeta<NodeId, openraft::BasicNode>,
        data: Vec<u8>,
    ) -> Result<(), StoreError> {
        let meta_bytes = serde_json::to_vec(&StoredMeta { meta: meta.clone() })?;
        let db = self.shared.db.clone();
        blocking(move || {
            let mut txn = db.begin_write().map_err(db_err)?;
            txn.set_durability(Durability::Immediate).map_err(db_err)?;
            {
                let mut t = txn.open_table(META).map_err(db_err)?;
                t.insert(KEY_SNAPSHOT_META, meta_bytes.as_slice())
                    .map_err(db_err)?;
                t.insert(KEY_SNAPSHOT_DATA, data.as_slice())
                    .map_err(db_err)?;
            }
            txn.commit().map_err(db_err)
        })
        .await
    }
}

fn decode_machine(data: &[u8]) -> Result<Machine, StoreError> {
    let mut m: Machine = serde_json::from_slice(data)?;
    m.state.rebuild();
    Ok(m)
}

fn view_of(m: &Machine) -> SnapshotView {
    let index = m.last_applied.map(|l| l.index).unwrap_or(0);
    let reset = LogEvent::Reset {
        snapshot_index: index,
        services: m.state.services(),
    };
    let reset_line = encode_line(&reset).unwrap_or_else(|e| {
        // Services are JSON already; this cannot fail. An empty line would end the stream
        // at the follower (undecodable), which then reconnects: loud, never silent.
        tracing::error!(error = %e, "encoding a Reset line");
        bytes::Bytes::new()
    });
    SnapshotView { index, reset_line }
}

fn snap_err(e: StoreError) -> StorageError {
    StorageIOError::write_snapshot(None, &e).into()
}

impl RaftSnapshotBuilder<TypeConfig> for StateMachineStore {
    async fn build_snapshot(&mut self) -> Result<Snapshot<TypeConfig>, StorageError> {
        // Clone under the read lock (fast), encode off the async workers without blocking apply.
        let machine = self.shared.machine.read().clone();
        let (data, last_applied, membership, view) = blocking(move || {
            let data = serde_json::to_vec(&machine)?;
            let view = view_of(&machine);
            Ok((data, machine.last_applied, machine.membership, view))
        })
        .await
        .map_err(snap_err)?;
        let seq = self.shared.snapshot_seq.fetch_add(1, Ordering::Relaxed);
        let snapshot_id = match last_applied {
            Some(l) => format!("{}-{}-{}", l.leader_id.term, l.index, seq),
            None => format!("0-0-{seq}"),
        };
        let meta = SnapshotMeta {
            last_log_id: last_applied,
            last_membership: membership,
            snapshot_id,
        };
        self.save_snapshot(&meta, data.clone())
            .await
            .map_err(snap_err)?;
        *self.shared.snapshot.write() = view;
        tracing::info!(index = last_applied.map(|l| l.index), "snapshot built");
        Ok(Snapshot {
            meta,
            snapshot: Box::new(Cursor::new(data)),
        })
    }
}

impl RaftStateMachine<TypeConfig> for StateMachineStore {
    type SnapshotBuilder = Self;

    async fn applied_state(
        &mut self,
    ) -> Result<(Option<LogId>, StoredMembership<NodeId, openraft::BasicNode>), StorageError> {
        let m = self.shared.machine.read();
        Ok((m.last_applied, m.membership.clone()))
    }

    async fn apply<I>(&mut self, entries: I) -> Result<Vec<CommandResponse>, StorageError>
    where
        I: IntoIterator<Item = Entry> + Send,
        I::IntoIter: Send,
    {
        let mut out = Vec::new();
        let mut lines = Vec::new();
        let last = {
            let mut m = self.shared.machine.write();
            for entry in entries {
                // Encoded once here, then copied to every open `/v1/log` stream.
                // `None` when encoding failed: the window is cut there and streams read the
                // entry from the store instead.
                let line = match entry_event(&entry).map(|ev| encode_line(&ev)).transpose() {
                    Ok(line) => Some(line),
                    Err(e) => {
                        tracing::warn!(index = entry.log_id.index, error = %e, "encoding a log event");
                        None
                    }
                };
                lines.push((entry.log_id.index, line));
                m.last_applied = Some(entry.log_id);
                let resp = match entry.payload {
                    EntryPayload::Blank => CommandResponse::Done,
                    EntryPayload::Normal(cmd) => m.state.apply(entry.log_id.index, &cmd),
                    EntryPayload::Membership(mem) => {
                        m.membership = StoredMembership::new(Some(entry.log_id), mem);
                        CommandResponse::Done
                    }
                };
                out.push(resp);
            }
            m.last_applied.map(|l| l.index).unwrap_or(0)
        };
        {
            let mut recent = self.shared.recent.write();
            for (index, line) in lines {
                match line {
                    Some(line) => recent.push(index, line),
                    None => recent.clear(),
                }
            }
        }
        self.shared.applied.send_replace(last);
        Ok(out)
    }

    async fn get_snapshot_builder(&mut self) -> Self::SnapshotBuilder {
        self.clone()
    }

    async fn begin_receiving_snapshot(&mut self) -> Result<Box<Cursor<Vec<u8>>>, StorageError> {
        Ok(Box::new(Cursor::new(Vec::new())))
    }

    async fn install_snapshot(
        &mut self,
        meta: &SnapshotMeta<NodeId, openraft::BasicNode>,
        snapshot: Box<Cursor<Vec<u8>>>,
    ) -> Result<(), StorageError> {
        let data = snapshot.into_inner();
        let (machine, data) = blocking(move || Ok((decode_machine(&data)?, data)))
            .await
            .map_err(|e| StorageIOError::read_snapshot(Some(meta.signature()), &e))?;
        self.save_snapshot(meta, data).await.map_err(snap_err)?;
        let view = view_of(&machine);
        let last = machine.last_applied.map(|l| l.index).unwrap_or(0);
        *self.shared.machine.write() = machine;
        self.shared.recent.write().clear();
        *self.shared.snapshot.write() = view;
        self.shared.applied.send_replace(last);
        tracing::info!(index = last, "snapshot installed");
        Ok(())
    }

    async fn get_current_snapshot(&mut self) -> Result<Option<Snapshot<TypeConfig>>, StorageError> {
        let db = self.shared.db.clone();
        let loaded = blocking(move || {
            let meta = read_meta(&db, KEY_SNAPSHOT_META)?;
            let data = read_meta(&db, KEY_SNAPSHOT_DATA)?;
            match (meta, data) {
                (Some(m), Some(d)) => Ok(Some((serde_json::from_slice::<StoredMeta>(&m)?, d))),
                _ => Ok(None),
            }
        })
        .await
        .map_err(|e| StorageIOError::read_snapshot(None, &e))?;
        Ok(loaded.map(|(m, d)| Snapshot {
            meta: m.meta,
            snapshot: Box::new(Cursor::new(d)),
        }))
    }
}
