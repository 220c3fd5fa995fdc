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
        let sm = StateMachineStore::open(db.clone(), 16)
            .await
            .map_err(|e| StorageIOError::write(&e))?;
        let log = LogStore::new(db).map_err(|e| StorageIOError::write(&e))?;
        Ok((dir, log, sm))
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
            ts_ms: 0,
            by: None,
        }),
    }
}

#[tokio::test]
async fn log_vote_and_purge_survive_reopening() {
    let dir = TempDir::new().unwrap();
    {
        let db = open(dir.path()).unwrap();
        let mut store = LogStore::new(db.clone()).unwrap();
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
    let mut store = LogStore::new(db).unwrap();
    assert_eq!(store.purged_index(), 2);
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
            EntryPayload::Normal(Command::ServiceDelete { name, .. }) => name,
            other => panic!("{other:?}"),
        }
    }
}

#[tokio::test]
async fn the_state_machine_restarts_from_its_snapshot() {
    let dir = TempDir::new().unwrap();
    {
        let db = open(dir.path()).unwrap();
        let mut sm = StateMachineStore::open(db, 16).await.unwrap();
        let put = |i: u64| Entry {
            log_id: openraft::LogId::new(CommittedLeaderId::new(1, 1), i),
            payload: EntryPayload::Normal(Command::ServicePut {
                name: format!("s{i}"),
                doc: serde_json::json!({"hosts": []}),
                ts_ms: 0,
                by: None,
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
    let mut sm = StateMachineStore::open(db, 16).await.unwrap();
    let (applied, _) = sm.applied_state().await.unwrap();
    assert_eq!(
        applied.map(|l| l.index),
        Some(2),
        "state after the snapshot is replayed from the log"
    );
    let reader = sm.reader();
    assert_eq!(reader.snapshot().index, 2);
    let line = reader.snapshot().reset_line;
    let reset: tiercel_cluster::purge::wire::LogEvent = serde_json::from_slice(&line).unwrap();
    let tiercel_cluster::purge::wire::LogEvent::Reset {
        snapshot_index,
        services,
    } = reset
    else {
        panic!("not a reset: {reset:?}");
    };
    assert_eq!(snapshot_index, 2);
    let names: Vec<String> = services.into_iter().map(|s| s.name).collect();
    assert_eq!(names, ["s1", "s2"]);
    assert_eq!(
        reader.with(|m| m.state.service("s2").map(|s| s.version)),
        Some(2)
    );
    assert!(sm.get_current_snapshot().await.unwrap().is_some());
}

#[tokio::test]
async fn replication_reads_are_bounded_by_bytes_but_never_empty() {
    let dir = TempDir::new().unwrap();
    let db = open(dir.path()).unwrap();
    let mut store = LogStore::new(db.clone()).unwrap();
    openraft::storage::RaftLogStorageExt::blocking_append(&mut store, (1..=5).map(|i| entry(1, i)))
        .await
        .unwrap();
    let one = serde_json::to_vec(&entry(1, 1)).unwrap().len();
    let cases: &[(usize, u64, u64, Vec<u64>)] = &[
        (0, 1, 6, vec![1]),
        (one, 1, 6, vec![1]),
        (one * 2 + 1, 2, 6, vec![2, 3]),
        (usize::MAX, 1, 6, vec![1, 2, 3, 4, 5]),
        (usize::MAX, 4, 5, vec![4]),
        (usize::MAX, 6, 9, vec![]),
    ];
    for (budget, start, end, want) in cases {
        let got: Vec<u64> = read_limited(&db, *start, *end, *budget)
            .unwrap()
            .iter()
            .map(|e| e.log_id.index)
            .collect();
        assert_eq!(&got, want, "budget {budget} [{start},{end})");
    }
    let all = store.limited_get_log_entries(1, 6).await.unwrap();
    assert_eq!(all.len(), 5);
}

#[tokio::test]
async fn applied_entries_are_kept_encoded_exactly_as_the_store_path_encodes_them() {
    use crate::state::events::{encode_line, entry_event};
    let dir = TempDir::new().unwrap();
    let db = open(dir.path()).unwrap();
    let mut sm = StateMachineStore::open(db, 3).await.unwrap();
    let entries: Vec<Entry> = (1..=5)
        .map(|i| {
            if i == 3 {
                Entry {
                    log_id: openraft::LogId::new(CommittedLeaderId::new(1, 1), i),
                    payload: EntryPayload::Blank,
                }
            } else {
                entry(1, i)
            }
        })
        .collect();
    sm.apply(entries.clone()).await.unwrap();
    let reader = sm.reader();
    let want: Vec<bytes::Bytes> = entries[2..]
        .iter()
        .filter_map(entry_event)
        .map(|ev| encode_line(&ev).unwrap())
        .collect();
    assert_eq!(reader.recent_lines(3, 5), Some(want));
    assert_eq!(reader.recent_lines(2, 5), None, "only the last 3 are kept");
    assert_eq!(*reader.applied().borrow(), 5);
}
