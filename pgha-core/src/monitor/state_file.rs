//! The monitor's durable memory: the term and who is primary in it.
//!
//! Written before a promotion is carried out (the decision is recorded
//! first), atomically: a temporary file, fsync, rename, fsync of the
//! directory. A pgha restarted after a failover therefore never routes to
//! the old primary again (pgpool-II without its status file does). Without
//! the file, the nodes' evidence decides ([`evidence`](crate::evidence)).

use std::io::Write;
use std::path::{Path, PathBuf};

use serde::{Deserialize, Serialize};

use crate::admin::{admin_states, AdminStates};
use crate::{Error, NodeId, Topology};

/// What is persisted.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct PersistedState {
    /// The current term.
    pub term: u64,
    /// The primary of that term, if any.
    pub primary: Option<NodeId>,
    /// Nodes that are detached, quarantined, rejoining or in maintenance
    /// (absent from files written before it was kept: all attached).
    #[serde(default, skip_serializing_if = "AdminStates::is_empty")]
    pub admin: AdminStates,
}

impl PersistedState {
    /// The part of `topology` that is persisted.
    pub fn of(topology: &Topology) -> Self {
        Self {
            term: topology.term(),
            primary: topology.primary_id().cloned(),
            admin: admin_states(topology),
        }
    }
}

/// Reads the state file; `Ok(None)` when it does not exist yet.
pub fn load(path: &Path) -> Result<Option<PersistedState>, Error> {
    let text = match std::fs::read_to_string(path) {
        Ok(text) => text,
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => return Ok(None),
        Err(e) => return Err(state_error(path, e.to_string())),
    };
    serde_json::from_str(&text)
        .map(Some)
        .map_err(|e| state_error(path, format!("line {}: {e}", e.line())))
}

/// Writes the state file atomically and durably.
pub fn store(path: &Path, state: &PersistedState) -> Result<(), Error> {
    let text = serde_json::to_string_pretty(state).map_err(|e| state_error(path, e.to_string()))?;
    let tmp = tmp_path(path);
    let write = || -> std::io::Result<()> {
        let mut f = std::fs::File::create(&tmp)?;
        f.write_all(text.as_bytes())?;
        f.write_all(b"\n")?;
        f.sync_all()?;
        std::fs::rename(&tmp, path)?;
        let dir = path
            .parent()
            .filter(|d| !d.as_os_str().is_empty())
            .unwrap_or(Path::new("."));
        std::fs::File::open(dir)?.sync_all()
    };
    write().map_err(|e| state_error(path, e.to_string()))
}

fn tmp_path(path: &Path) -> PathBuf {
    let mut name = path
        .file_name()
        .map(|n| n.to_os_string())
        .unwrap_or_default();
    name.push(".tmp");
    path.with_file_name(name)
}

fn state_error(path: &Path, problem: String) -> Error {
    Error::StateFile {
        path: path.display().to_string(),
        problem,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_stored_state_loads_back_and_a_missing_file_is_none() {
        let dir = std::env::temp_dir().join(format!("pgha-state-test-{}", std::process::id()));
        std::fs::create_dir_all(&dir).unwrap_or_default();
        let path = dir.join("state.json");
        assert_eq!(load(&path).ok(), Some(None));
        let state = PersistedState {
            term: 7,
            primary: Some(NodeId::new("node1")),
            admin: AdminStates::from([(NodeId::new("node2"), crate::AdminState::Detached)]),
        };
        assert!(store(&path, &state).is_ok());
        assert_eq!(load(&path).ok(), Some(Some(state)));
        // A file from before the administrative states were kept.
        std::fs::write(&path, "{\"term\": 3, \"primary\": \"node0\"}").unwrap_or_default();
        let old = load(&path).ok().flatten();
        assert_eq!(old.map(|s| (s.term, s.admin.is_empty())), Some((3, true)));
        std::fs::write(&path, "{\"term\": 1,\n \"bogus\": 2}").unwrap_or_default();
        let err = load(&path).err().map(|e| e.to_string()).unwrap_or_default();
        assert!(err.contains("line 2") && err.contains("bogus"), "{err}");
        let _ = std::fs::remove_dir_all(&dir);
    }
}
