//! The Raft log and vote, one file per entry under `<state>/raft-log/`.
//!
//! Entries live in memory for reading (the log of a handful of pgha
//! members is small: elections and record changes); files exist for
//! durability only. One file per entry keeps every operation a rename or
//! a removal, each atomic on its own:
//!
//! * append: every entry's file written and fsync'd, then the directory,
//!   then openraft is told the entries are durable;
//! * truncate: files removed from the highest index down, so a crash in the
//!   middle leaves a log without holes;
//! * purge: the purge point is saved durably first, then the files below
//!   it go (any left behind by a crash are ignored on open).

use std::collections::BTreeMap;
use std::fmt::Debug;
use std::io;
use std::ops::RangeBounds;
use std::path::{Path, PathBuf};
use std::sync::{Arc, Mutex, MutexGuard};

use openraft::storage::{LogFlushed, LogState, RaftLogStorage};
use openraft::{Entry, LogId, OptionalSend, RaftLogId, RaftLogReader, StorageError, Vote};

use super::files;
use super::write_error;
use crate::types::{MemberId, TypeConfig};

const VOTE: &str = "vote.json";
const PURGED: &str = "purged.json";
const ENTRIES: &str = "entries";

/// The log store of one member: vote and log, durable in files.
#[derive(Debug, Clone)]
pub struct LogStore {
    dir: Arc<PathBuf>,
    data: Arc<Mutex<LogData>>,
}

#[derive(Debug, Default)]
struct LogData {
    entries: BTreeMap<u64, Entry<TypeConfig>>,
    last_purged: Option<LogId<MemberId>>,
    vote: Option<Vote<MemberId>>,
}

fn entry_name(index: u64) -> String {
    // Zero-padded so a directory listing sorts like the indexes.
    format!("{index:020}.json")
}

impl LogStore {
    /// Opens (creating if need be) the log under `dir`, dropping anything a
    /// crash left half-done: temporary files, entries at or below the purge
    /// point, entries after a hole (their append was never acknowledged).
    pub(crate) fn open(dir: &Path) -> io::Result<LogStore> {
        let entries_dir = dir.join(ENTRIES);
        std::fs::create_dir_all(&entries_dir)?;
        let vote = files::read_json(dir, VOTE)?;
        let last_purged: Option<LogId<MemberId>> = files::read_json(dir, PURGED)?;
        let mut indexes = Vec::new();
        for item in std::fs::read_dir(&entries_dir)? {
            let name = item?.file_name();
            let name = name.to_string_lossy();
            match name.strip_suffix(".json").map(str::parse::<u64>) {
                Some(Ok(index)) => indexes.push(index),
                _ => files::remove(&entries_dir, &name)?,
            }
        }
        indexes.sort_unstable();
        let mut entries = BTreeMap::new();
        let mut expected = last_purged.as_ref().map(|p| p.index + 1);
        for index in indexes {
            let keep = match expected {
                Some(next) => index == next,
                None => true,
            };
            if !keep {
                tracing::warn!(
                    index,
                    "log entry after a hole or below the purge point dropped"
                );
                files::remove(&entries_dir, &entry_name(index))?;
                continue;
            }
            let entry: Entry<TypeConfig> = files::read_json(&entries_dir, &entry_name(index))?
                .ok_or_else(|| io::Error::other(format!("log entry {index} vanished")))?;
            entries.insert(index, entry);
            expected = Some(index + 1);
        }
        Ok(LogStore {
            dir: Arc::new(dir.to_path_buf()),
            data: Arc::new(Mutex::new(LogData {
                entries,
                last_purged,
                vote,
            })),
        })
    }

    fn data(&self) -> MutexGuard<'_, LogData> {
        // A panic while the lock was held left plain data behind; keep going
        // with it rather than poisoning every later call.
        self.data.lock().unwrap_or_else(|p| p.into_inner())
    }
}

impl RaftLogReader<TypeConfig> for LogStore {
    async fn try_get_log_entries<RB: RangeBounds<u64> + Clone + Debug + OptionalSend>(
        &mut self,
        range: RB,
    ) -> Result<Vec<Entry<TypeConfig>>, StorageError<MemberId>> {
        Ok(self
            .data()
            .entries
            .range(range)
            .map(|(_, e)| e.clone())
            .collect())
    }
}

impl RaftLogStorage<TypeConfig> for LogStore {
    type LogReader = LogStore;

    async fn get_log_state(&mut self) -> Result<LogState<TypeConfig>, StorageError<MemberId>> {
        let data = self.data();
        let last_log_id = data
            .entries
            .values()
            .next_back()
            .map(|e| *e.get_log_id())
            .or(data.last_purged);
        Ok(LogState {
            last_purged_log_id: data.last_purged,
            last_log_id,
        })
    }

    async fn get_log_reader(&mut self) -> Self::LogReader {
        self.clone()
    }

    async fn save_vote(&mut self, vote: &Vote<MemberId>) -> Result<(), StorageError<MemberId>> {
        let dir = self.dir.clone();
        let saved = *vote;
        // Durable before returning: a restarted member must never vote
        // twice in one Raft term.
        files::blocking(move || files::write_json(&dir, VOTE, &saved))
            .await
            .map_err(|e| write_error(openraft::ErrorSubject::Vote, e))?;
        self.data().vote = Some(*vote);
        Ok(())
    }

    async fn read_vote(&mut self) -> Result<Option<Vote<MemberId>>, StorageError<MemberId>> {
        Ok(self.data().vote)
    }

    async fn append<I>(
        &mut self,
        entries: I,
        callback: LogFlushed<TypeConfig>,
    ) -> Result<(), StorageError<MemberId>>
    where
        I: IntoIterator<Item = Entry<TypeConfig>> + OptionalSend,
        I::IntoIter: OptionalSend,
    {
        let entries: Vec<Entry<TypeConfig>> = entries.into_iter().collect();
        let mut encoded = Vec::with_capacity(entries.len());
        for entry in &entries {
            let bytes = serde_json::to_vec(entry)
                .map_err(|e| write_error(openraft::ErrorSubject::Logs, io::Error::other(e)))?;
            encoded.push((entry.get_log_id().index, bytes));
        }
        let dir = self.dir.join(ENTRIES);
        let written = files::blocking(move || {
            for (index, bytes) in &encoded {
                files::write_bytes(&dir, &entry_name(*index), bytes)?;
            }
            files::sync_dir(&dir)
        })
        .await;
        match written {
            Ok(()) => {
                let mut data = self.data();
                for entry in entries {
                    data.entries.insert(entry.get_log_id().index, entry);
                }
                drop(data);
                callback.log_io_completed(Ok(()));
                Ok(())
            }
            Err(e) => {
                let kind = e.kind();
                let text = e.to_string();
                callback.log_io_completed(Err(io::Error::new(kind, text)));
                Err(write_error(openraft::ErrorSubject::Logs, e))
            }
        }
    }

    async fn truncate(&mut self, log_id: LogId<MemberId>) -> Result<(), StorageError<MemberId>> {
        let doomed: Vec<u64> = self
            .data()
            .entries
            .range(log_id.index..)
            .map(|(i, _)| *i)
            .rev()
            .collect();
        let dir = self.dir.join(ENTRIES);
        files::blocking(move || {
            for index in doomed {
                files::remove(&dir, &entry_name(index))?;
            }
            files::sync_dir(&dir)
        })
        .await
        .map_err(|e| write_error(openraft::ErrorSubject::Logs, e))?;
        self.data().entries.split_off(&log_id.index);
        Ok(())
    }

    async fn purge(&mut self, log_id: LogId<MemberId>) -> Result<(), StorageError<MemberId>> {
        let doomed: Vec<u64> = self
            .data()
            .entries
            .range(..=log_id.index)
            .map(|(i, _)| *i)
            .collect();
        let dir = self.dir.clone();
        files::blocking(move || {
            files::write_json(&dir, PURGED, &log_id)?;
            let entries = dir.join(ENTRIES);
            for index in doomed {
                files::remove(&entries, &entry_name(index))?;
            }
            files::sync_dir(&entries)
        })
        .await
        .map_err(|e| write_error(openraft::ErrorSubject::Logs, e))?;
        let mut data = self.data();
        data.entries = data.entries.split_off(&(log_id.index + 1));
        data.last_purged = Some(log_id);
        Ok(())
    }
}
