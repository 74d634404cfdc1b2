//! The file storage: openraft's own conformance suite, and what survives a
//! restart (a restarted member must never vote twice in one Raft term, nor
//! forget a committed record).

use std::collections::BTreeSet;

use openraft::storage::{RaftLogStorage, RaftLogStorageExt, RaftStateMachine};
use openraft::testing::{StoreBuilder, Suite};
use openraft::{
    CommittedLeaderId, Entry, EntryPayload, LogId, Membership, RaftLogReader, StorageError, Vote,
};
use pgha_watchdog::store::{self, LogStore, StateMachineStore};
use pgha_watchdog::{ClusterRecord, RecordChange, TypeConfig};
use tempfile::TempDir;

struct FileStores;

impl StoreBuilder<TypeConfig, LogStore, StateMachineStore, TempDir> for FileStores {
    async fn build(&self) -> Result<(TempDir, LogStore, StateMachineStore), StorageError<u64>> {
        let dir = tempfile::tempdir().map_err(|e| {
            StorageError::from_io_error(
                openraft::ErrorSubject::Store,
                openraft::ErrorVerb::Write,
                e,
            )
        })?;
        let (log, sm) = store::open(dir.path()).map_err(|e| {
            StorageError::from_io_error(openraft::ErrorSubject::Store, openraft::ErrorVerb::Read, e)
        })?;
        Ok((dir, log, sm))
    }
}

#[test]
fn file_storage_passes_openraft_storage_suite() {
    if let Err(e) = Suite::test_all(FileStores) {
        panic!("openraft storage suite: {e}");
    }
}

fn log_id(term: u64, index: u64) -> LogId<u64> {
    LogId::new(CommittedLeaderId::new(term, 1), index)
}

fn entry(term: u64, index: u64, payload: EntryPayload<TypeConfig>) -> Entry<TypeConfig> {
    Entry {
        log_id: log_id(term, index),
        payload,
    }
}

async fn append(log: &mut LogStore, entries: Vec<Entry<TypeConfig>>) {
    // Returns once the flush callback has reported the entries durable.
    log.blocking_append(entries).await.expect("append");
}

#[tokio::test]
async fn vote_log_and_record_survive_a_restart() {
    let dir = tempfile::tempdir().expect("tempdir");
    {
        let (mut log, mut sm) = store::open(dir.path()).expect("open");
        log.save_vote(&Vote::new(3, 2)).await.expect("vote");
        let members = Membership::new(vec![BTreeSet::from([1, 2, 3])], None);
        let promote = RecordChange::promote(4, "node1");
        let entries = vec![
            entry(1, 0, EntryPayload::Membership(members)),
            entry(1, 1, EntryPayload::Blank),
            entry(3, 2, EntryPayload::Normal(promote)),
        ];
        append(&mut log, entries.clone()).await;
        sm.apply(entries).await.expect("apply");
    }
    let (mut log, mut sm) = store::open(dir.path()).expect("reopen");
    assert_eq!(
        log.read_vote().await.expect("read vote"),
        Some(Vote::new(3, 2))
    );
    let state = log.get_log_state().await.expect("log state");
    assert_eq!(state.last_log_id, Some(log_id(3, 2)));
    assert_eq!(log.try_get_log_entries(0..3).await.expect("read").len(), 3);
    let (applied, membership) = sm.applied_state().await.expect("applied");
    assert_eq!(applied, Some(log_id(3, 2)));
    assert_eq!(membership.voter_ids().collect::<Vec<_>>(), vec![1, 2, 3]);
    assert_eq!(
        *sm.record().borrow(),
        ClusterRecord {
            term: 4,
            primary: Some("node1".into()),
            admin: Default::default(),
        }
    );
}

#[tokio::test]
async fn a_crash_mid_append_leaves_no_hole() {
    let dir = tempfile::tempdir().expect("tempdir");
    {
        let (mut log, _sm) = store::open(dir.path()).expect("open");
        let entries = (0..4).map(|i| entry(1, i, EntryPayload::Blank)).collect();
        append(&mut log, entries).await;
    }
    // What a crash can leave: a torn temporary file, and a later entry whose
    // rename reached the disk while an earlier one's did not.
    let entries_dir = dir.path().join("raft-log/entries");
    std::fs::write(
        entries_dir.join("00000000000000000004.json.tmp"),
        b"{\"torn",
    )
    .expect("tmp");
    std::fs::remove_file(entries_dir.join("00000000000000000002.json")).expect("hole");

    let (mut log, _sm) = store::open(dir.path()).expect("reopen");
    let state = log.get_log_state().await.expect("log state");
    assert_eq!(state.last_log_id, Some(log_id(1, 1)));
    assert_eq!(log.try_get_log_entries(0..10).await.expect("read").len(), 2);
    let left: Vec<_> = std::fs::read_dir(&entries_dir)
        .expect("list")
        .map(|e| e.expect("entry").file_name())
        .collect();
    assert_eq!(left.len(), 2, "{left:?}");
}

#[tokio::test]
async fn purged_entries_stay_purged_after_a_restart() {
    let dir = tempfile::tempdir().expect("tempdir");
    {
        let (mut log, _sm) = store::open(dir.path()).expect("open");
        let entries = (0..5).map(|i| entry(1, i, EntryPayload::Blank)).collect();
        append(&mut log, entries).await;
        log.purge(log_id(1, 2)).await.expect("purge");
        log.truncate(log_id(1, 4)).await.expect("truncate");
    }
    let (mut log, _sm) = store::open(dir.path()).expect("reopen");
    let state = log.get_log_state().await.expect("log state");
    assert_eq!(state.last_purged_log_id, Some(log_id(1, 2)));
    assert_eq!(state.last_log_id, Some(log_id(1, 3)));
    assert_eq!(log.try_get_log_entries(0..10).await.expect("read").len(), 1);
}
