//! File storage for openraft: vote, log and state machine under a member's
//! state directory, each fsync'd before openraft is told it is durable.

mod files;
mod log;
mod state_machine;

use std::io;
use std::path::Path;

use openraft::{ErrorSubject, ErrorVerb, StorageError, StorageIOError};

pub use self::log::LogStore;
pub use self::state_machine::StateMachineStore;
use crate::types::MemberId;

/// Opens the stores under `state_dir` (`raft-log/`, `raft-sm/`), creating
/// them when absent.
///
/// ```
/// let dir = tempfile::tempdir()?;
/// let (_log, sm) = pgha_watchdog::store::open(dir.path())?;
/// assert_eq!(sm.record().borrow().term, 0);
/// # Ok::<(), std::io::Error>(())
/// ```
pub fn open(state_dir: &Path) -> io::Result<(LogStore, StateMachineStore)> {
    let log = LogStore::open(&state_dir.join("raft-log"))?;
    let sm = StateMachineStore::open(&state_dir.join("raft-sm"))?;
    Ok((log, sm))
}

fn write_error(subject: ErrorSubject<MemberId>, e: io::Error) -> StorageError<MemberId> {
    StorageError::IO {
        source: StorageIOError::new(subject, ErrorVerb::Write, &e),
    }
}
