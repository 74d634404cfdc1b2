//! The leader lease: pure bookkeeping ([`LeaseTracker`]) and the task that
//! renews and publishes it.
//!
//! openraft's metrics are published only when they change, so a steady
//! `millis_since_quorum_ack: 0` carries no date. The lease is therefore
//! dated by openraft's own quorum check (`Raft::ensure_linearizable`, one
//! heartbeat round to every voter): when it succeeds, a quorum acknowledged
//! a heartbeat sent after the instant taken just before the call. The
//! argument for why two members never hold a valid lease at once is in
//! `docs/watchdog.md`; the comments point at its steps.

use std::sync::{Arc, Mutex};
use std::time::Duration;

use openraft::{RaftMetrics, ServerState};
use tokio::sync::watch;
use tokio::time::Instant;

use crate::ballot::Ballot;
use crate::types::{MemberId, Raft};

/// One look at a member.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Observation {
    /// `Some(raft_term)` while this member is the leader.
    pub leading_in: Option<u64>,
    /// An instant before which no heartbeat of the quorum round that just
    /// succeeded was sent (in the term of `leading_in`), if one did.
    pub quorum_acked: Option<Instant>,
    /// Now.
    pub now: Instant,
}

/// Turns observations into the local lease.
#[derive(Debug, Clone)]
pub struct LeaseTracker {
    lease: Duration,
    wait: Duration,
    /// The Raft term this member leads in, the first instant it was seen
    /// leading it (no earlier than it won), and the latest quorum ack.
    leading: Option<(u64, Instant, Option<Instant>)>,
}

impl LeaseTracker {
    /// A tracker for leases of `lease` that a new leader reports only
    /// `new_leader_wait` after it is first seen leading.
    pub fn new(lease: Duration, new_leader_wait: Duration) -> Self {
        LeaseTracker {
            lease,
            wait: new_leader_wait,
            leading: None,
        }
    }

    /// The lease after `obs`: `Some(valid_until)` (later than `obs.now`) or
    /// `None`.
    ///
    /// ```
    /// use std::time::Duration;
    /// use pgha_watchdog::lease::{LeaseTracker, Observation};
    /// use tokio::time::Instant;
    ///
    /// let ms = Duration::from_millis;
    /// let t0 = Instant::now();
    /// let mut lease = LeaseTracker::new(ms(400), ms(450));
    /// let leading = |now, acked| Observation { leading_in: Some(3), quorum_acked: Some(acked), now };
    /// // Just elected: no lease until an older leader's must have ended.
    /// assert_eq!(lease.observe(leading(t0, t0)), None);
    /// // 450 ms on, a quorum round that began 10 ms ago succeeded.
    /// let now = t0 + ms(450);
    /// assert_eq!(lease.observe(leading(now, now - ms(10))), Some(now - ms(10) + ms(400)));
    /// ```
    pub fn observe(&mut self, obs: Observation) -> Option<Instant> {
        let Some(term) = obs.leading_in else {
            self.leading = None;
            return None;
        };
        let (since, mut acked) = match self.leading {
            Some((t, since, acked)) if t == term => (since, acked),
            _ => (obs.now, None),
        };
        if let Some(at) = obs.quorum_acked {
            acked = acked.max(Some(at));
        }
        self.leading = Some((term, since, acked));
        // Step 3: a new leader reports nothing until every older lease
        // must have run out.
        if obs.now < since + self.wait {
            return None;
        }
        // Step 1: the lease runs from the start of the last quorum round.
        let valid_until = acked? + self.lease;
        (valid_until > obs.now).then_some(valid_until)
    }

    /// When a lease could begin without a new round (the end of a new
    /// leader's wait), if it is waiting.
    pub fn wait_ends(&self, now: Instant) -> Option<Instant> {
        let (_, since, _) = self.leading?;
        let ends = since + self.wait;
        (ends > now).then_some(ends)
    }
}

type Metrics = watch::Receiver<RaftMetrics<MemberId, openraft::BasicNode>>;

fn leading_in(metrics: &Metrics) -> Option<u64> {
    let m = metrics.borrow();
    (m.state == ServerState::Leader).then_some(m.current_term)
}

/// Renews the lease every `renew` while leading and publishes it into
/// `lease`, and the permission (`lease` is `Some`) into `permission`,
/// until the member shuts down, when both fall back to `None` / `false`.
/// While `allowed` is `false` (a witness; no trusted server answers) it
/// publishes `None`: withholding only ever shortens a lease.
pub(crate) async fn run(
    me: MemberId,
    raft: Raft,
    renew: Duration,
    mut tracker: LeaseTracker,
    ballot: Arc<Mutex<Ballot>>,
    mut allowed: watch::Receiver<bool>,
    (lease, permission): (watch::Sender<Option<Instant>>, watch::Sender<bool>),
) {
    let mut metrics = raft.metrics();
    loop {
        metrics.borrow_and_update();
        let before = leading_in(&metrics);
        let mut quorum_acked = None;
        // A withheld lease needs no rounds; and a witness that leads only
        // to hand its log over must not send them (they would keep the
        // followers from campaigning).
        if before.is_some() && *allowed.borrow() {
            let round_start = Instant::now();
            // One heartbeat round to every voter, each call under the peer
            // deadline; bounded again here so a stuck round cannot stall
            // the lease's expiry below.
            let round = tokio::time::timeout(renew * 4, raft.ensure_linearizable()).await;
            if matches!(round, Ok(Ok(_))) && leading_in(&metrics) == before {
                quorum_acked = Some(round_start);
            }
        }
        let current = {
            // Under the ballot's lock: a vote request sees either the lease
            // this publishes, or this round not counted.
            let mut ballot = ballot.lock().unwrap_or_else(|p| p.into_inner());
            let quorum_acked = quorum_acked.filter(|start| ballot.round_counts(*start));
            let current = tracker.observe(Observation {
                leading_in: leading_in(&metrics),
                quorum_acked,
                now: Instant::now(),
            });
            let current = current.filter(|_| *allowed.borrow_and_update());
            ballot.published(current);
            publish(me, &lease, &permission, current);
            current
        };
        let now = Instant::now();
        // Next: a renewal while leading; a change of state at once; the
        // lease's end or the wait's end even if nothing else happens.
        let next = leading_in(&metrics).map(|_| now + renew);
        let wake = [next, current, tracker.wait_ends(now)]
            .into_iter()
            .flatten()
            .min();
        let alive = match wake {
            Some(at) => tokio::select! {
                r = metrics.changed() => r.is_ok(),
                r = allowed.changed() => r.is_ok(),
                () = tokio::time::sleep_until(at) => true,
            },
            None => tokio::select! {
                r = metrics.changed() => r.is_ok(),
                r = allowed.changed() => r.is_ok(),
            },
        };
        if !alive {
            publish(me, &lease, &permission, None);
            return;
        }
    }
}

fn publish(
    me: MemberId,
    lease: &watch::Sender<Option<Instant>>,
    permission: &watch::Sender<bool>,
    current: Option<Instant>,
) {
    let was = lease.send_replace(current);
    if was.is_some() != current.is_some() {
        if current.is_some() {
            // WARN: rare, and what an operator (or a test) reads to see
            // who led when.
            tracing::warn!(member = me, "leader lease acquired: this member leads");
        } else {
            tracing::warn!(
                member = me,
                "leader lease lost: this member no longer leads"
            );
        }
    }
    permission.send_if_modified(|p| {
        let changed = *p != current.is_some();
        *p = current.is_some();
        changed
    });
}

#[cfg(test)]
mod tests {
    use super::*;

    fn ms(n: u64) -> Duration {
        Duration::from_millis(n)
    }

    fn obs(term: Option<u64>, acked: Option<Instant>, now: Instant) -> Observation {
        Observation {
            leading_in: term,
            quorum_acked: acked,
            now,
        }
    }

    #[test]
    fn a_follower_has_no_lease() {
        let t0 = Instant::now();
        let mut lease = LeaseTracker::new(ms(400), ms(450));
        assert_eq!(lease.observe(obs(None, Some(t0), t0)), None);
        assert_eq!(lease.wait_ends(t0), None);
    }

    #[test]
    fn a_new_leader_waits_then_the_lease_follows_quorum_rounds() {
        let t0 = Instant::now();
        let mut lease = LeaseTracker::new(ms(400), ms(450));
        assert_eq!(lease.observe(obs(Some(2), Some(t0), t0)), None);
        assert_eq!(lease.wait_ends(t0), Some(t0 + ms(450)));
        let t = t0 + ms(449);
        assert_eq!(lease.observe(obs(Some(2), Some(t - ms(5)), t)), None);
        // No new round: the lease still runs from the last one.
        let t = t0 + ms(450);
        assert_eq!(
            lease.observe(obs(Some(2), None, t)),
            Some(t0 + ms(444) + ms(400))
        );
        let t = t0 + ms(500);
        assert_eq!(
            lease.observe(obs(Some(2), Some(t - ms(3)), t)),
            Some(t - ms(3) + ms(400))
        );
    }

    #[test]
    fn without_rounds_the_lease_runs_out() {
        let t0 = Instant::now();
        let mut lease = LeaseTracker::new(ms(400), ms(0));
        assert_eq!(
            lease.observe(obs(Some(1), Some(t0), t0)),
            Some(t0 + ms(400))
        );
        let t = t0 + ms(399);
        assert_eq!(lease.observe(obs(Some(1), None, t)), Some(t0 + ms(400)));
        let t = t0 + ms(400);
        assert_eq!(lease.observe(obs(Some(1), None, t)), None);
    }

    #[test]
    fn a_new_term_restarts_the_wait_and_forgets_old_rounds() {
        let t0 = Instant::now();
        let mut lease = LeaseTracker::new(ms(400), ms(450));
        lease.observe(obs(Some(1), Some(t0), t0));
        let t = t0 + ms(500);
        assert!(lease.observe(obs(Some(1), Some(t), t)).is_some());
        assert_eq!(lease.observe(obs(Some(3), None, t)), None);
        let t = t + ms(450);
        // The round of term 1 does not count for term 3.
        assert_eq!(lease.observe(obs(Some(3), None, t)), None);
        assert_eq!(lease.observe(obs(None, Some(t), t)), None);
        let t = t + ms(10);
        assert_eq!(lease.observe(obs(Some(3), Some(t), t)), None);
        assert_eq!(lease.wait_ends(t), Some(t + ms(450)));
    }
}
