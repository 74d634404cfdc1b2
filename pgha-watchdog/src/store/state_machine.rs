//! The state machine: the cluster record, applied from committed entries
//! and saved (with its snapshot) under `<state>/raft-sm/`.
//!
//! The record is saved durably on every apply, so a restarted member starts
//! from what it had applied and a snapshot is just a copy of that file.

use std::io::{self, Cursor};
use std::path::{Path, PathBuf};
use std::sync::{Arc, Mutex, MutexGuard};

use openraft::storage::{RaftStateMachine, Snapshot, SnapshotMeta};
use openraft::{
    BasicNode, Entry, EntryPayload, ErrorSubject, LogId, OptionalSend, RaftSnapshotBuilder,
    StorageError, StoredMembership,
};
use serde::{Deserialize, Serialize};
use tokio::sync::watch;

use super::{files, write_error};
use crate::record::ClusterRecord;
use crate::types::{ChangeOutcome, MemberId, TypeConfig};

const STATE: &str = "state.json";
const SNAPSHOT: &str = "snapshot.json";

/// What the state machine holds and saves.
#[derive(Debug, Clone, Default, Serialize, Deserialize)]
struct Applied {
    last_applied: Option<LogId<MemberId>>,
    membership: StoredMembership<MemberId, BasicNode>,
    record: ClusterRecord,
}

#[derive(Debug, Clone, Serialize, Deserialize)]
struct StoredSnapshot {
    meta: SnapshotMeta<MemberId, BasicNode>,
    data: Vec<u8>,
}

#[derive(Debug)]
struct SmData {
    applied: Applied,
    snapshot: Option<StoredSnapshot>,
    snapshots_built: u64,
}

/// The state machine store of one member.
#[derive(Debug, Clone)]
pub struct StateMachineStore {
    dir: Arc<PathBuf>,
    data: Arc<Mutex<SmData>>,
    published: watch::Sender<ClusterRecord>,
}

impl StateMachineStore {
    pub(crate) fn open(dir: &Path) -> io::Result<StateMachineStore> {
        std::fs::create_dir_all(dir)?;
        let applied: Applied = files::read_json(dir, STATE)?.unwrap_or_default();
        let snapshot = files::read_json(dir, SNAPSHOT)?;
        Ok(StateMachineStore {
            dir: Arc::new(dir.to_path_buf()),
            published: watch::channel(applied.record.clone()).0,
            data: Arc::new(Mutex::new(SmData {
                applied,
                snapshot,
                snapshots_built: 0,
            })),
        })
    }

    /// The applied (committed) record now and every change to it.
    pub fn record(&self) -> watch::Receiver<ClusterRecord> {
        self.published.subscribe()
    }

    fn data(&self) -> MutexGuard<'_, SmData> {
        self.data.lock().unwrap_or_else(|p| p.into_inner())
    }

    async fn save(&self, applied: Applied) -> Result<(), StorageError<MemberId>> {
        let dir = self.dir.clone();
        let saved = applied.clone();
        files::blocking(move || files::write_json(&dir, STATE, &saved))
            .await
            .map_err(|e| write_error(ErrorSubject::StateMachine, e))?;
        let record = applied.record.clone();
        self.data().applied = applied;
        // Published only once durable: what a member routes by survives it.
        self.published.send_if_modified(|old| {
            let changed = *old != record;
            *old = record;
            changed
        });
        Ok(())
    }
}

impl RaftSnapshotBuilder<TypeConfig> for StateMachineStore {
    async fn build_snapshot(&mut self) -> Result<Snapshot<TypeConfig>, StorageError<MemberId>> {
        let (applied, n) = {
            let mut data = self.data();
            data.snapshots_built += 1;
            (data.applied.clone(), data.snapshots_built)
        };
        let bytes = serde_json::to_vec(&applied)
            .map_err(|e| write_error(ErrorSubject::Snapshot(None), io::Error::other(e)))?;
        let snapshot_id = match applied.last_applied {
            Some(id) => format!("{}-{}-{n}", id.leader_id, id.index),
            None => format!("empty-{n}"),
        };
        let stored = StoredSnapshot {
            meta: SnapshotMeta {
                last_log_id: applied.last_applied,
                last_membership: applied.membership,
                snapshot_id,
            },
            data: bytes,
        };
        let dir = self.dir.clone();
        let saved = stored.clone();
        files::blocking(move || files::write_json(&dir, SNAPSHOT, &saved))
            .await
            .map_err(|e| write_error(ErrorSubject::Snapshot(None), e))?;
        self.data().snapshot = Some(stored.clone());
        Ok(Snapshot {
            meta: stored.meta,
            snapshot: Box::new(Cursor::new(stored.data)),
        })
    }
}

impl RaftStateMachine<TypeConfig> for StateMachineStore {
    type SnapshotBuilder = StateMachineStore;

    async fn applied_state(
        &mut self,
    ) -> Result<
        (
            Option<LogId<MemberId>>,
            StoredMembership<MemberId, BasicNode>,
        ),
        StorageError<MemberId>,
    > {
        let data = self.data();
        Ok((data.applied.last_applied, data.applied.membership.clone()))
    }

    async fn apply<I>(&mut self, entries: I) -> Result<Vec<ChangeOutcome>, StorageError<MemberId>>
    where
        I: IntoIterator<Item = Entry<TypeConfig>> + OptionalSend,
        I::IntoIter: OptionalSend,
    {
        let mut applied = self.data().applied.clone();
        let mut outcomes = Vec::new();
        for entry in entries {
            applied.last_applied = Some(entry.log_id);
            let outcome = match entry.payload {
                EntryPayload::Blank => ChangeOutcome::Applied(applied.record.clone()),
                EntryPayload::Membership(m) => {
                    applied.membership = StoredMembership::new(Some(entry.log_id), m);
                    ChangeOutcome::Applied(applied.record.clone())
                }
                EntryPayload::Normal(change) => match applied.record.apply(&change) {
                    Ok(record) => {
                        tracing::info!(?change, "record change applied");
                        applied.record = record.clone();
                        ChangeOutcome::Applied(record)
                    }
                    Err(refusal) => {
                        tracing::warn!(?change, %refusal, "record change refused");
                        ChangeOutcome::Refused {
                            reason: refusal.to_string(),
                            record: applied.record.clone(),
                        }
                    }
                },
            };
            outcomes.push(outcome);
        }
        self.save(applied).await?;
        Ok(outcomes)
    }

    async fn get_snapshot_builder(&mut self) -> Self::SnapshotBuilder {
        self.clone()
    }

    async fn begin_receiving_snapshot(
        &mut self,
    ) -> Result<Box<Cursor<Vec<u8>>>, StorageError<MemberId>> {
        Ok(Box::new(Cursor::new(Vec::new())))
    }

    async fn install_snapshot(
        &mut self,
        meta: &SnapshotMeta<MemberId, BasicNode>,
        snapshot: Box<Cursor<Vec<u8>>>,
    ) -> Result<(), StorageError<MemberId>> {
        let bytes = snapshot.into_inner();
        let sent: Applied = serde_json::from_slice(&bytes).map_err(|e| {
            write_error(
                ErrorSubject::Snapshot(Some(meta.signature())),
                io::Error::new(io::ErrorKind::InvalidData, e),
            )
        })?;
        // The meta is authoritative for position and membership; the data
        // carries the record.
        let applied = Applied {
            last_applied: meta.last_log_id,
            membership: meta.last_membership.clone(),
            record: sent.record,
        };
        let stored = StoredSnapshot {
            meta: meta.clone(),
            data: bytes,
        };
        let dir = self.dir.clone();
        let saved = stored.clone();
        files::blocking(move || files::write_json(&dir, SNAPSHOT, &saved))
            .await
            .map_err(|e| write_error(ErrorSubject::Snapshot(Some(meta.signature())), e))?;
        self.data().snapshot = Some(stored);
        self.save(applied).await
    }

    async fn get_current_snapshot(
        &mut self,
    ) -> Result<Option<Snapshot<TypeConfig>>, StorageError<MemberId>> {
        Ok(self.data().snapshot.clone().map(|s| Snapshot {
            meta: s.meta,
            snapshot: Box::new(Cursor::new(s.data)),
        }))
    }
}
