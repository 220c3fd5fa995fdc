//! Durable storage: the Raft log, the vote and the snapshots, in one redb database.
//!
//! Why redb: it is pure Rust (no C++ toolchain, unlike RocksDB), maintained, ACID with
//! copy-on-write B-trees, and `commit()` with [`redb::Durability::Immediate`] returns only once
//! the data is on disk (fsync). That gives exactly the guarantee Raft needs — an entry or a vote
//! is acknowledged only after it is durable — without a hand-written segment format whose
//! torn-write and truncation recovery would need its own proof. One write transaction per
//! append batch keeps fsyncs to one per batch, and the leader batches concurrent purges into one
//! entry, so throughput is not one fsync per purge.
//!
//! ```text
//! purge.redb
//!   log   : u64 index  -> JSON Entry
//!   meta  : "vote" | "committed" | "last_purged" | "snapshot_meta" | "snapshot_data" -> bytes
//! ```
//!
//! redb is blocking; every call runs on tokio's blocking pool.

pub mod log_store;
pub mod recent;
pub mod state_machine;

use std::path::Path;
use std::sync::Arc;

use redb::{Database, TableDefinition};

pub use log_store::LogStore;
pub use state_machine::{SnapshotView, StateMachineStore, StateReader};

/// Log entries by index.
pub(crate) const LOG: TableDefinition<u64, &[u8]> = TableDefinition::new("log");
/// Vote, committed and purged log ids, snapshot.
pub(crate) const META: TableDefinition<&str, &[u8]> = TableDefinition::new("meta");

pub(crate) const KEY_VOTE: &str = "vote";
pub(crate) const KEY_COMMITTED: &str = "committed";
pub(crate) const KEY_LAST_PURGED: &str = "last_purged";
pub(crate) const KEY_SNAPSHOT_META: &str = "snapshot_meta";
pub(crate) const KEY_SNAPSHOT_DATA: &str = "snapshot_data";

/// Why storage failed. Any of these stops the Raft node: state on disk is in doubt.
#[derive(Debug, thiserror::Error)]
pub enum StoreError {
    /// The database failed (IO, corruption, lock held by another process).
    #[error("database: {0}")]
    Db(#[from] redb::Error),
    /// A stored record could not be encoded or decoded.
    #[error("stored record: {0}")]
    Codec(#[from] serde_json::Error),
    /// The blocking task running the IO panicked or was cancelled.
    #[error("storage task: {0}")]
    Task(#[from] tokio::task::JoinError),
    /// The data directory could not be created.
    #[error("data directory {path}: {source}")]
    Dir {
        /// The directory.
        path: String,
        /// Why.
        source: std::io::Error,
    },
}

/// Converts any redb error into a [`StoreError`].
pub(crate) fn db_err<E: Into<redb::Error>>(e: E) -> StoreError {
    StoreError::Db(e.into())
}

/// Opens (or creates) `DIR/purge.redb` and its tables.
pub fn open(dir: &Path) -> Result<Arc<Database>, StoreError> {
    std::fs::create_dir_all(dir).map_err(|source| StoreError::Dir {
        path: dir.display().to_string(),
        source,
    })?;
    let db = Database::create(dir.join("purge.redb")).map_err(db_err)?;
    let txn = db.begin_write().map_err(db_err)?;
    {
        txn.open_table(LOG).map_err(db_err)?;
        txn.open_table(META).map_err(db_err)?;
    }
    txn.commit().map_err(db_err)?;
    Ok(Arc::new(db))
}

/// Runs blocking storage work off the async workers.
pub(crate) async fn blocking<T, F>(f: F) -> Result<T, StoreError>
where
    T: Send + 'static,
    F: FnOnce() -> Result<T, StoreError> + Send + 'static,
{
    tokio::task::spawn_blocking(f).await?
}

/// Reads one meta record.
pub(crate) fn read_meta(db: &Database, key: &str) -> Result<Option<Vec<u8>>, StoreError> {
    use redb::ReadableDatabase;
    let txn = db.begin_read().map_err(db_err)?;
    let table = txn.open_table(META).map_err(db_err)?;
    Ok(table.get(key).map_err(db_err)?.map(|v| v.value().to_vec()))
}
