//! What one server connection holds of the proxy's statements.

use std::collections::HashMap;

/// The proxy's statements a server connection holds, with when each was
/// last used, so that a connection keeps at most a configured number
/// (the least recently used is closed first).
#[derive(Debug, Default, Clone)]
pub struct ServerStatements {
    used: HashMap<u64, u64>,
    clock: u64,
}

impl ServerStatements {
    /// None yet.
    pub fn new() -> Self {
        Self::default()
    }

    /// Whether the server has statement `id`; a use, for the eviction order.
    pub fn contains(&mut self, id: &u64) -> bool {
        self.clock += 1;
        match self.used.get_mut(id) {
            Some(at) => {
                *at = self.clock;
                true
            }
            None => false,
        }
    }

    /// Records that the server has statement `id` now.
    pub fn insert(&mut self, id: u64) {
        self.clock += 1;
        self.used.insert(id, self.clock);
    }

    /// Forgets statement `id` (its Parse failed).
    pub fn remove(&mut self, id: &u64) {
        self.used.remove(id);
    }

    /// Forgets every statement (the server dropped them).
    pub fn clear(&mut self) {
        self.used.clear();
    }

    /// Whether it holds none.
    pub fn is_empty(&self) -> bool {
        self.used.is_empty()
    }

    /// How many it holds.
    pub fn len(&self) -> usize {
        self.used.len()
    }

    /// The least recently used statement, forgotten, if there are `cap`
    /// or more: the caller closes it on the server.
    pub(super) fn evict(&mut self, cap: usize) -> Option<u64> {
        if self.used.len() < cap.max(1) {
            return None;
        }
        let (&id, _) = self.used.iter().min_by_key(|(_, &at)| at)?;
        self.used.remove(&id);
        Some(id)
    }
}
