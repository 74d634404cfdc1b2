//! When this member may grant a vote, and which quorum rounds may date its
//! lease (pure bookkeeping, shared by the RPC inbox and the lease task).
//!
//! The lease argument (`docs/watchdog.md`, "Why two members never hold a
//! valid lease at once") needs every vote a new leader wins to come from a
//! member that cannot still be vouching for an older lease:
//!
//! * a member that holds a valid lease itself grants no vote (openraft's
//!   leader would: its own vote is not refreshed by heartbeats);
//! * while a vote request is with openraft, and for rounds that began
//!   before it returned, no quorum round dates a new lease (a round could
//!   otherwise succeed just before the vote deposes this member);
//! * a member that just started grants no vote for `election_timeout_max`
//!   (openraft forgets at a restart when it last heard a leader, so its
//!   follower lease would not hold across one).

use tokio::time::Instant;

/// Votes and lease rounds of one member.
#[derive(Debug, Clone)]
pub(crate) struct Ballot {
    /// No vote is granted before this (start + `election_timeout_max`).
    votes_from: Instant,
    /// The lease this member publishes now.
    lease: Option<Instant>,
    /// Vote requests being handled by openraft right now.
    voting: u32,
    /// When the last vote request came back from openraft: rounds that
    /// began before it do not count.
    fence: Option<Instant>,
}

impl Ballot {
    pub(crate) fn new(votes_from: Instant) -> Ballot {
        Ballot {
            votes_from,
            lease: None,
            voting: 0,
            fence: None,
        }
    }

    /// Until when a vote request must wait (a member that just started).
    pub(crate) fn hold_until(&self, now: Instant) -> Option<Instant> {
        (self.votes_from > now).then_some(self.votes_from)
    }

    /// A vote request arrives at `now`: `true` if it may go to openraft
    /// (then [`end_vote`](Self::end_vote) must follow), `false` if it is
    /// refused because this member's lease is valid.
    pub(crate) fn begin_vote(&mut self, now: Instant) -> bool {
        if self.lease.is_some_and(|until| until > now) || self.votes_from > now {
            return false;
        }
        self.voting += 1;
        true
    }

    /// openraft answered the vote request at `now`.
    pub(crate) fn end_vote(&mut self, now: Instant) {
        self.voting = self.voting.saturating_sub(1);
        self.fence = Some(self.fence.map_or(now, |f| f.max(now)));
    }

    /// Whether a quorum round that began at `start` and just succeeded may
    /// date the lease.
    pub(crate) fn round_counts(&self, start: Instant) -> bool {
        self.voting == 0 && self.fence.is_none_or(|f| start > f)
    }

    /// The lease now published.
    pub(crate) fn published(&mut self, lease: Option<Instant>) {
        self.lease = lease;
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::time::Duration;

    const MS: Duration = Duration::from_millis(1);

    #[test]
    fn a_member_that_just_started_grants_no_vote() {
        let t0 = Instant::now();
        let mut b = Ballot::new(t0 + 600 * MS);
        assert_eq!(b.hold_until(t0), Some(t0 + 600 * MS));
        assert!(!b.begin_vote(t0 + 599 * MS));
        assert_eq!(b.hold_until(t0 + 600 * MS), None);
        assert!(b.begin_vote(t0 + 600 * MS));
    }

    #[test]
    fn a_lease_holder_refuses_votes_until_its_lease_ends() {
        let t0 = Instant::now();
        let mut b = Ballot::new(t0);
        b.published(Some(t0 + 400 * MS));
        assert!(!b.begin_vote(t0 + 399 * MS));
        assert!(b.begin_vote(t0 + 400 * MS));
    }

    #[test]
    fn rounds_during_or_before_a_vote_do_not_date_a_lease() {
        let t0 = Instant::now();
        let mut b = Ballot::new(t0);
        assert!(b.round_counts(t0));
        assert!(b.begin_vote(t0 + 10 * MS));
        assert!(!b.round_counts(t0 + 20 * MS), "a vote is with openraft");
        b.end_vote(t0 + 30 * MS);
        assert!(
            !b.round_counts(t0 + 25 * MS),
            "began before the vote returned"
        );
        assert!(!b.round_counts(t0 + 30 * MS));
        assert!(b.round_counts(t0 + 31 * MS));
    }
}
