//! openraft's storage conformance suite against the redb stores, plus restart checks.

use openraft::storage::RaftStateMachine;
use openraft::testing::{StoreBuilder, Suite};
use openraft::{CommittedLeaderId, EntryPayload, RaftLogReader, RaftSnapshotBuilder};
use tempfile::TempDir;

use super::*;
use crate::store::{StateMachineStore, open};
use crate::types::{Command, CommandResponse};

struct Builder;

impl StoreBuilder<TypeConfig, LogStore, StateMachineStore, TempDir> for Builder {
    async fn build(&self) -> Result<(TempDir, LogStore, StateMachineStore), StorageError> {
        let dir = TempDir::new().map_err(|e| StorageIOError::write(&e))?;
        let db = open(dir.path()).map_err(|e| StorageIOError::write(&e))?;
        let sm = StateMachineStore::open(db.clone())
            .await
            .map_err(|e| StorageIOError::write(&e))?;
        Ok((dir, LogStore::new(db), sm))
    }
}

#[test]
fn openraft_storage_suite() {
    Suite::test_all(Builder).unwrap();
}

fn entry(term: u64, index: u64) -> Entry {
    Entry {
        log_id: openraft::LogId::new(CommittedLeaderId::new(term, 1), index),
        payload: EntryPayload::Normal(Command::ServiceDelete {
            name: format!("s{index}"),
        }),
    }
}

#[tokio::test]
async fn log_vote_and_purge_survive_reopening() {
    let dir = TempDir::new().unwrap();
    {
        let db = open(dir.path()).unwrap();
        let mut store = LogStore::new(db.clone());
        for i in 1..=5 {
            // LogFlushed cannot be built outside openraft; the extension waits for it.
            openraft::storage::RaftLogStorageExt::blocking_append(&mut store, [entry(1, i)])
                .await
                .unwrap();
        }
        store.save_vote(&Vote::new(3, 2)).await.unwrap();
        store.purge(entry(1, 2).log_id).await.unwrap();
        store.truncate(entry(1, 5).log_id).await.unwrap();
    }
    // Reopen: what was acknowledged is there.
    let db = open(dir.path()).unwrap();
    let mut store = LogStore::new(db);
    assert_eq!(store.read_vote().await.unwrap(), Some(Vote::new(3, 2)));
    let st = store.get_log_state().await.unwrap();
    assert_eq!(st.last_purged_log_id.map(|l| l.index), Some(2));
    assert_eq!(st.last_log_id.map(|l| l.index), Some(4));
    let got: Vec<u64> = store
        .try_get_log_entries(0..100)
        .await
        .unwrap()
        .iter()
        .map(|e| e.log_id.index)
        .collect();
    assert_eq!(got, [3, 4]);
    assert_eq!(store.last_purged().await.unwrap().map(|l| l.index), Some(2));
    let entries = store.entries(4, 5).await.unwrap();
    assert_eq!(entries.len(), 1);
    assert_eq!(entries[0].payload.clone().into_normal_name(), "s4");
}

trait NormalName {
    fn into_normal_name(self) -> String;
}

impl NormalName for EntryPayload<TypeConfig> {
    fn into_normal_name(self) -> String {
        match self {
            EntryPayload::Normal(Command::ServiceDelete { name }) => name,
            other => panic!("{other:?}"),
        }
    }
}

#[tokio::test]
async fn the_state_machine_restarts_from_its_snapshot() {
    let dir = TempDir::new().unwrap();
    {
        let db = open(dir.path()).unwrap();
        let mut sm = StateMachineStore::open(db).await.unwrap();
        let put = |i: u64| Entry {
            log_id: openraft::LogId::new(CommittedLeaderId::new(1, 1), i),
            payload: EntryPayload::Normal(Command::ServicePut {
                name: format!("s{i}"),
                doc: serde_json::json!({"hosts": []}),
            }),
        };
        let resp = sm.apply([put(1), put(2)]).await.unwrap();
        assert_eq!(resp, [CommandResponse::Done, CommandResponse::Done]);
        let mut b = sm.get_snapshot_builder().await;
        let snap = b.build_snapshot().await.unwrap();
        assert_eq!(snap.meta.last_log_id.map(|l| l.index), Some(2));
        sm.apply([put(3)]).await.unwrap();
        assert_eq!(*sm.reader().applied().borrow(), 3);
    }
    let db = open(dir.path()).unwrap();
    let mut sm = StateMachineStore::open(db).await.unwrap();
    let (applied, _) = sm.applied_state().await.unwrap();
    assert_eq!(
        applied.map(|l| l.index),
        Some(2),
        "state after the snapshot is replayed from the log"
    );
    let reader = sm.reader();
    assert_eq!(reader.snapshot().index, 2);
    let names: Vec<String> = reader
        .snapshot()
        .services
        .into_iter()
        .map(|s| s.name)
        .collect();
    assert_eq!(names, ["s1", "s2"]);
    assert_eq!(
        reader.with(|m| m.state.service("s2").map(|s| s.version)),
        Some(2)
    );
    assert!(sm.get_current_snapshot().await.unwrap().is_some());
}
