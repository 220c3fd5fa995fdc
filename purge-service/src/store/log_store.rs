//! The Raft log and vote in redb: openraft's [`RaftLogStorage`] and [`RaftLogReader`].
//!
//! Appends, votes and truncations commit with [`Durability::Immediate`] (fsync) before
//! openraft is told they are done, so nothing acknowledged is lost when every node restarts.
//! `committed` and purges may lag on disk: both are recomputed or redone after a crash.

use std::fmt::Debug;
use std::io;
use std::ops::{Bound, RangeBounds};
use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};

use openraft::storage::{LogFlushed, LogState, RaftLogStorage};
use openraft::{RaftLogReader, StorageIOError, Vote};
use redb::{Database, Durability, ReadableDatabase, ReadableTable};

use super::{
    KEY_COMMITTED, KEY_LAST_PURGED, KEY_VOTE, LOG, META, StoreError, blocking, db_err, read_meta,
};
use crate::types::{Entry, LogId, NodeId, StorageError, TypeConfig};

/// Most stored bytes of entries sent in one AppendEntries (one entry is always sent, and a
/// single entry stays a few MiB: request bodies are at most 1 MiB and batches at most 4 MiB).
pub const REPLICATION_BUDGET: usize = 8 * 1024 * 1024;

/// The log store. Cheap to clone: the API reads entries through a clone to serve `/v1/log`.
#[derive(Clone)]
pub struct LogStore {
    db: Arc<Database>,
    /// Index of the last purged entry (0: none), kept in memory for `/v1/log`.
    purged: Arc<AtomicU64>,
}

impl LogStore {
    /// A log store over an opened database.
    pub fn new(db: Arc<Database>) -> Result<Self, StoreError> {
        let purged: Option<LogId> = read_json(&db, KEY_LAST_PURGED)?;
        Ok(Self {
            db,
            purged: Arc::new(AtomicU64::new(purged.map(|l| l.index).unwrap_or(0))),
        })
    }

    /// Index of the last purged entry (0 when nothing was purged): entries up to it are gone.
    pub fn purged_index(&self) -> u64 {
        self.purged.load(Ordering::Acquire)
    }

    /// Entries with index in `[start, end)`, in order; absent ones (purged) are skipped.
    pub async fn entries(&self, start: u64, end: u64) -> Result<Vec<Entry>, StoreError> {
        let db = self.db.clone();
        blocking(move || read_range(&db, (Bound::Included(start), Bound::Excluded(end)))).await
    }

    /// Entries from `start` (below `end`) up to about `budget` stored bytes, at least one, in
    /// order; absent ones (purged) are skipped.
    pub async fn entries_limited(
        &self,
        start: u64,
        end: u64,
        budget: usize,
    ) -> Result<Vec<Entry>, StoreError> {
        let db = self.db.clone();
        blocking(move || read_limited(&db, start, end, budget)).await
    }

    /// The last purged log id: entries up to it are gone from the log.
    pub async fn last_purged(&self) -> Result<Option<LogId>, StoreError> {
        let db = self.db.clone();
        blocking(move || read_json(&db, KEY_LAST_PURGED)).await
    }

    async fn write<F>(&self, durability: Durability, f: F) -> Result<(), StoreError>
    where
        F: FnOnce(&redb::WriteTransaction) -> Result<(), StoreError> + Send + 'static,
    {
        let db = self.db.clone();
        blocking(move || {
            let mut txn = db.begin_write().map_err(db_err)?;
            txn.set_durability(durability).map_err(db_err)?;
            f(&txn)?;
            txn.commit().map_err(db_err)
        })
        .await
    }

    async fn put_meta<T: serde::Serialize>(
        &self,
        key: &'static str,
        value: &T,
        durability: Durability,
    ) -> Result<(), StoreError> {
        let bytes = serde_json::to_vec(value)?;
        self.write(durability, move |txn| {
            let mut meta = txn.open_table(META).map_err(db_err)?;
            meta.insert(key, bytes.as_slice()).map_err(db_err)?;
            Ok(())
        })
        .await
    }
}

fn read_json<T: serde::de::DeserializeOwned>(
    db: &Database,
    key: &str,
) -> Result<Option<T>, StoreError> {
    match read_meta(db, key)? {
        Some(bytes) => Ok(Some(serde_json::from_slice(&bytes)?)),
        None => Ok(None),
    }
}

fn read_range(db: &Database, range: (Bound<u64>, Bound<u64>)) -> Result<Vec<Entry>, StoreError> {
    let txn = db.begin_read().map_err(db_err)?;
    let table = txn.open_table(LOG).map_err(db_err)?;
    let mut out = Vec::new();
    for row in table.range(range).map_err(db_err)? {
        let (_, v) = row.map_err(db_err)?;
        out.push(serde_json::from_slice(v.value())?);
    }
    Ok(out)
}

/// Entries from `start` (exclusive of `end`) up to about `budget` stored bytes, at least one.
fn read_limited(
    db: &Database,
    start: u64,
    end: u64,
    budget: usize,
) -> Result<Vec<Entry>, StoreError> {
    let txn = db.begin_read().map_err(db_err)?;
    let table = txn.open_table(LOG).map_err(db_err)?;
    let mut out = Vec::new();
    let mut used = 0;
    for row in table.range(start..end).map_err(db_err)? {
        let (_, v) = row.map_err(db_err)?;
        let bytes = v.value();
        if !out.is_empty() && used + bytes.len() > budget {
            break;
        }
        used += bytes.len();
        out.push(serde_json::from_slice(bytes)?);
    }
    Ok(out)
}

fn last_entry(db: &Database) -> Result<Option<Entry>, StoreError> {
    let txn = db.begin_read().map_err(db_err)?;
    let table = txn.open_table(LOG).map_err(db_err)?;
    match table.last().map_err(db_err)? {
        Some((_, v)) => Ok(Some(serde_json::from_slice(v.value())?)),
        None => Ok(None),
    }
}

fn read_err(e: StoreError) -> StorageError {
    StorageIOError::read_logs(&e).into()
}

fn write_err(e: StoreError) -> StorageError {
    StorageIOError::write_logs(&e).into()
}

impl RaftLogReader<TypeConfig> for LogStore {
    async fn try_get_log_entries<RB: RangeBounds<u64> + Clone + Debug + Send>(
        &mut self,
        range: RB,
    ) -> Result<Vec<Entry>, StorageError> {
        let bounds = (range.start_bound().cloned(), range.end_bound().cloned());
        let db = self.db.clone();
        blocking(move || read_range(&db, bounds))
            .await
            .map_err(read_err)
    }

    /// Replication reads: at most [`REPLICATION_BUDGET`] bytes of entries per AppendEntries,
    /// so a run of large purge batches never makes an RPC body bigger than a peer accepts.
    async fn limited_get_log_entries(
        &mut self,
        start: u64,
        end: u64,
    ) -> Result<Vec<Entry>, StorageError> {
        let db = self.db.clone();
        blocking(move || read_limited(&db, start, end, REPLICATION_BUDGET))
            .await
            .map_err(read_err)
    }
}

impl RaftLogStorage<TypeConfig> for LogStore {
    type LogReader = LogStore;

    async fn get_log_state(&mut self) -> Result<LogState<TypeConfig>, StorageError> {
        let db = self.db.clone();
        let (purged, last) = blocking(move || {
            let purged: Option<LogId> = read_json(&db, KEY_LAST_PURGED)?;
            let last = last_entry(&db)?.map(|e| e.log_id);
            Ok((purged, last))
        })
        .await
        .map_err(read_err)?;
        Ok(LogState {
            last_purged_log_id: purged,
            last_log_id: last.or(purged),
        })
    }

    async fn get_log_reader(&mut self) -> Self::LogReader {
        self.clone()
    }

    async fn save_vote(&mut self, vote: &Vote<NodeId>) -> Result<(), StorageError> {
        self.put_meta(KEY_VOTE, vote, Durability::Immediate)
            .await
            .map_err(|e| StorageIOError::write_vote(&e).into())
    }

    async fn read_vote(&mut self) -> Result<Option<Vote<NodeId>>, StorageError> {
        let db = self.db.clone();
        blocking(move || read_json(&db, KEY_VOTE))
            .await
            .map_err(|e| StorageIOError::read_vote(&e).into())
    }

    async fn save_committed(&mut self, committed: Option<LogId>) -> Result<(), StorageError> {
        // Not fsynced on its own: the next durable commit carries it, and a lost value only
        // means re-applying from the snapshot up to what the leader commits again.
        self.put_meta(KEY_COMMITTED, &committed, Durability::None)
            .await
            .map_err(write_err)
    }

    async fn read_committed(&mut self) -> Result<Option<LogId>, StorageError> {
        let db = self.db.clone();
        let committed: Option<Option<LogId>> = blocking(move || read_json(&db, KEY_COMMITTED))
            .await
            .map_err(read_err)?;
        Ok(committed.flatten())
    }

    async fn append<I>(
        &mut self,
        entries: I,
        callback: LogFlushed<TypeConfig>,
    ) -> Result<(), StorageError>
    where
        I: IntoIterator<Item = Entry> + Send,
        I::IntoIter: Send,
    {
        let mut rows = Vec::new();
        for entry in entries {
            let bytes = serde_json::to_vec(&entry).map_err(|e| write_err(e.into()))?;
            rows.push((entry.log_id.index, bytes));
        }
        let result = self
            .write(Durability::Immediate, move |txn| {
                let mut log = txn.open_table(LOG).map_err(db_err)?;
                for (index, bytes) in &rows {
                    log.insert(*index, bytes.as_slice()).map_err(db_err)?;
                }
                Ok(())
            })
            .await;
        //= openraft RaftLogStorage::append: "When the `callback` is called, the entries must be
        //= persisted on disk." The write above returned after an fsync'd commit.
        match result {
            Ok(()) => {
                callback.log_io_completed(Ok(()));
                Ok(())
            }
            Err(e) => {
                callback.log_io_completed(Err(io::Error::other(e.to_string())));
                Err(write_err(e))
            }
        }
    }

    async fn truncate(&mut self, log_id: LogId) -> Result<(), StorageError> {
        let from = log_id.index;
        self.write(Durability::Immediate, move |txn| {
            let mut log = txn.open_table(LOG).map_err(db_err)?;
            log.retain_in(from.., |_, _| false).map_err(db_err)?;
            Ok(())
        })
        .await
        .map_err(write_err)
    }

    async fn purge(&mut self, log_id: LogId) -> Result<(), StorageError> {
        let upto = log_id.index;
        let bytes = serde_json::to_vec(&Some(log_id)).map_err(|e| write_err(e.into()))?;
        self.write(Durability::None, move |txn| {
            let mut meta = txn.open_table(META).map_err(db_err)?;
            meta.insert(KEY_LAST_PURGED, bytes.as_slice())
                .map_err(db_err)?;
            let mut log = txn.open_table(LOG).map_err(db_err)?;
            log.retain_in(..=upto, |_, _| false).map_err(db_err)?;
            Ok(())
        })
        .await
        .map_err(write_err)?;
        self.purged.fetch_max(upto, Ordering::AcqRel);
        Ok(())
    }
}

#[cfg(test)]
mod tests;
