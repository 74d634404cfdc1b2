//! Whether this member may lead: every reason it must not, in one place.
//!
//! A member steps aside — no lease, no heartbeats (its followers soon
//! elect another), no campaigns — while any reason holds: it is a witness,
//! it started moments ago, it reaches none of its trusted servers, or it
//! cannot reach the primary that the other members reach. The lease task reads the combined gate.

use std::sync::{Arc, Mutex};

use tokio::sync::watch;

use crate::types::{MemberId, Raft};

/// Why a member must not lead.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord)]
pub(crate) enum Reason {
    /// It started less than `election_timeout_max` ago: it may have
    /// acknowledged a leader just before a restart, and openraft does not
    /// remember when (see `ballot`).
    Starting,
    /// It reaches none of its trusted servers.
    NoTrustedServer,
    /// Its own probe of the committed primary fails while the members
    /// agree it is healthy.
    PrimaryUnreachable,
}

/// The combined gate: open while no reason holds.
pub(crate) struct Gate {
    me: MemberId,
    raft: Raft,
    witness: bool,
    reasons: Mutex<Vec<Reason>>,
    open: watch::Sender<bool>,
}

impl std::fmt::Debug for Gate {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Gate")
            .field("me", &self.me)
            .field("open", &*self.open.borrow())
            .finish_non_exhaustive()
    }
}

impl Gate {
    /// A gate open unless `witness` (a witness never leads).
    pub(crate) fn new(me: MemberId, raft: Raft, witness: bool) -> Arc<Gate> {
        Arc::new(Gate {
            me,
            raft,
            witness,
            reasons: Mutex::new(Vec::new()),
            open: watch::channel(!witness).0,
        })
    }

    /// The lease task's view of it.
    pub(crate) fn subscribe(&self) -> watch::Receiver<bool> {
        self.open.subscribe()
    }

    /// `reason` holds (`true`) or no longer does.
    pub(crate) fn set(&self, reason: Reason, holds: bool) {
        if self.witness {
            // Shut for good, heartbeats and campaigns off from the start.
            return;
        }
        let open = {
            let mut reasons = self.reasons.lock().unwrap_or_else(|p| p.into_inner());
            let had = reasons.contains(&reason);
            if had == holds {
                return;
            }
            if holds {
                reasons.push(reason);
                if reason != Reason::Starting {
                    tracing::warn!(member = self.me, ?reason, "stepping aside: this member holds no lease and sends no heartbeats while this lasts");
                }
            } else {
                reasons.retain(|r| *r != reason);
                if reason != Reason::Starting {
                    tracing::warn!(member = self.me, ?reason, remaining = ?reasons, "a reason to step aside is over");
                }
            }
            reasons.is_empty()
        };
        self.raft.runtime_config().heartbeat(open);
        self.raft.runtime_config().elect(open);
        self.open.send_if_modified(|o| {
            let changed = *o != open;
            *o = open;
            changed
        });
    }
}

/// When a member that cannot reach the primary steps aside (pure).
///
/// Only the committed primary counts: a leader whose own probe of it fails
/// while the members agree it is healthy (a broken link between this host
/// and the primary's, say) would hold the VIP and serve clients nothing.
/// After `after` of that it steps aside, so a member that reaches the
/// primary leads; it is back in the running as soon as it reaches the
/// primary again, or when the members agree the primary failed (a real
/// failure must be acted on).
#[derive(Debug, Clone)]
pub(crate) struct Reach {
    after: std::time::Duration,
    since: Option<tokio::time::Instant>,
    stepped: bool,
}

impl Reach {
    pub(crate) fn new(after: std::time::Duration) -> Self {
        Reach {
            after,
            since: None,
            stepped: false,
        }
    }

    /// A probe of the committed primary at `now`: `Some(step aside?)` when
    /// that changes.
    pub(crate) fn observe(
        &mut self,
        now: tokio::time::Instant,
        local_failed: bool,
        group_failed: bool,
    ) -> Option<bool> {
        let cut_off = local_failed && !group_failed;
        if !cut_off {
            self.since = None;
            return std::mem::take(&mut self.stepped).then_some(false);
        }
        let since = *self.since.get_or_insert(now);
        if !self.stepped && now >= since + self.after {
            self.stepped = true;
            return Some(true);
        }
        None
    }
}

#[cfg(test)]
mod tests {
    use std::time::Duration;

    use tokio::time::Instant;

    use super::Reach;

    #[test]
    fn a_member_steps_aside_only_after_the_primary_was_out_of_its_reach_for_a_while() {
        let t0 = Instant::now();
        let s = Duration::from_secs;
        let mut r = Reach::new(s(2));
        assert_eq!(r.observe(t0, true, false), None);
        assert_eq!(r.observe(t0 + s(1), true, false), None);
        assert_eq!(r.observe(t0 + s(2), true, false), Some(true));
        assert_eq!(r.observe(t0 + s(3), true, false), None, "said once");
        // Reached again: back at once.
        assert_eq!(r.observe(t0 + s(4), false, false), Some(false));
        assert_eq!(r.observe(t0 + s(5), false, false), None);
        // A healthy probe in between starts the wait again.
        assert_eq!(r.observe(t0 + s(6), true, false), None);
        assert_eq!(r.observe(t0 + s(7), false, false), None);
        assert_eq!(r.observe(t0 + s(8), true, false), None);
        assert_eq!(r.observe(t0 + s(9), true, false), None);
        assert_eq!(r.observe(t0 + s(10), true, false), Some(true));
    }

    #[test]
    fn a_primary_the_members_agree_failed_is_no_reason_to_step_aside() {
        let t0 = Instant::now();
        let mut r = Reach::new(Duration::from_secs(2));
        assert_eq!(r.observe(t0, true, true), None);
        assert_eq!(r.observe(t0 + Duration::from_secs(9), true, true), None);
        r.observe(t0, true, false);
        r.observe(t0 + Duration::from_secs(2), true, false);
        assert_eq!(
            r.observe(t0 + Duration::from_secs(3), true, true),
            Some(false),
            "the failure is agreed: lead and act on it"
        );
    }
}
