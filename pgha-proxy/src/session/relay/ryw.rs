//! Read-your-writes by WAL position: the client's (or its user's or
//! application's) last commit position, and the pending mark that keeps
//! other sessions on the primary until that position is known.

use super::*;

impl Relay<'_> {
    /// Records the client's write position (and its user's or
    /// application's, when shared).
    pub(super) fn wrote(&mut self, lsn: Option<Lsn>) {
        let Some(lsn) = lsn else {
            // Unknown: be safe, read from the primary from now on.
            self.pinned = true;
            return;
        };
        self.written = self.written.max(Some(lsn));
        if let Some(key) = self.shared_key() {
            let mut map = self
                .shared
                .written
                .lock()
                .unwrap_or_else(|p| p.into_inner());
            let at = map.entry(key).or_default();
            at.lsn = at.lsn.max(Some(lsn));
        }
        self.pending = None;
    }

    /// The position this client's reads must have reached.
    pub(super) fn written_lsn(&self) -> Option<Lsn> {
        let shared = self.shared_key().and_then(|key| {
            let map = self
                .shared
                .written
                .lock()
                .unwrap_or_else(|p| p.into_inner());
            // A commit whose position is not known yet: nothing but the
            // primary is sure to have it.
            map.get(&key).and_then(|w| {
                if w.pending > 0 {
                    Some(Lsn(u64::MAX))
                } else {
                    w.lsn
                }
            })
        });
        self.written.max(shared)
    }

    pub(super) fn shared_key(&self) -> Option<String> {
        match self.shared.config.consistency {
            Consistency::LsnPerUser => Some(format!("u:{}", self.login.user)),
            Consistency::LsnPerApplication => Some(format!(
                "a:{}",
                self.params.get("application_name").unwrap_or_default()
            )),
            Consistency::Pin | Consistency::Lsn => None,
        }
    }
}

/// A write position shared by a user's (or application's) sessions.
#[derive(Debug, Default, Clone, Copy)]
pub(crate) struct Written {
    lsn: Option<Lsn>,
    /// Commits whose position is being asked for.
    pending: usize,
}

/// A commit of the key whose position is not known yet; dropped once it
/// is (or the connection is lost).
pub(super) struct PendingWrite {
    shared: Arc<Shared>,
    key: String,
}

impl PendingWrite {
    pub(super) fn new(shared: &Arc<Shared>, key: String) -> Self {
        let mut map = shared.written.lock().unwrap_or_else(|p| p.into_inner());
        map.entry(key.clone()).or_default().pending += 1;
        drop(map);
        Self {
            shared: shared.clone(),
            key,
        }
    }
}

impl Drop for PendingWrite {
    fn drop(&mut self) {
        let mut map = self
            .shared
            .written
            .lock()
            .unwrap_or_else(|p| p.into_inner());
        if let Some(w) = map.get_mut(&self.key) {
            w.pending = w.pending.saturating_sub(1);
        }
    }
}
