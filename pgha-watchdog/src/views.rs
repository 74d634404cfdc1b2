//! Probe views: what this member and its peers last saw of each PostgreSQL
//! node, and the task that sends this member's views to a peer.

use std::collections::BTreeMap;
use std::sync::{Arc, Mutex, MutexGuard};
use std::time::Duration;

use pgha_core::{NodeId, Observation};
use tokio::sync::{mpsc, watch};
use tokio::time::Instant;

use crate::agreement::{self, agree, Agreement, PeerReport, Rule};
use crate::network::{Rpc, RpcReply, Transport};
use crate::types::MemberId;

/// This member's latest observations, as sent to peers.
pub(crate) type Outgoing = Arc<Vec<(NodeId, Observation)>>;

/// The views of one member: its own, each peer's, and who to wake when a
/// peer changes the picture.
pub(crate) struct ViewBook {
    me: MemberId,
    members: Vec<MemberId>,
    book: Mutex<Book>,
    outbox: watch::Sender<Outgoing>,
}

#[derive(Default)]
struct Book {
    mine: BTreeMap<NodeId, (Observation, Instant)>,
    peers: BTreeMap<MemberId, Received>,
    /// The latest healthy observation of each node, from anyone, of any
    /// age: what is reported when this member alone sees a node failed
    /// and no in-contact peer has a fresher healthy view.
    last_healthy: BTreeMap<NodeId, Observation>,
    /// The monitor's wake channel and the contact window it judges with.
    waker: Option<(mpsc::UnboundedSender<NodeId>, Duration)>,
}

struct Received {
    arrived: Instant,
    views: BTreeMap<NodeId, Observation>,
}

/// What the cluster makes of one node, owned (taken out of the lock).
#[derive(Debug, Clone)]
pub(crate) struct Verdict {
    pub failed: bool,
    pub probers: usize,
    pub reporting_failed: usize,
    pub freshest_healthy: Option<Observation>,
    pub freshest_failed: Option<Observation>,
    pub last_healthy: Option<Observation>,
}

impl From<Agreement<'_>> for Verdict {
    fn from(a: Agreement<'_>) -> Self {
        Verdict {
            failed: a.failed,
            probers: a.probers,
            reporting_failed: a.reporting_failed,
            freshest_healthy: a.freshest_healthy.cloned(),
            freshest_failed: a.freshest_failed.cloned(),
            last_healthy: None,
        }
    }
}

impl ViewBook {
    pub fn new(me: MemberId, members: Vec<MemberId>) -> Self {
        ViewBook {
            me,
            members,
            book: Mutex::new(Book::default()),
            outbox: watch::channel(Arc::new(Vec::new())).0,
        }
    }

    fn book(&self) -> MutexGuard<'_, Book> {
        self.book.lock().unwrap_or_else(|p| p.into_inner())
    }

    /// What the per-peer senders send.
    pub fn outbox(&self) -> watch::Receiver<Outgoing> {
        self.outbox.subscribe()
    }

    /// Where to send node ids whose picture a peer changed.
    pub fn set_waker(&self, wake: mpsc::UnboundedSender<NodeId>, contact_window: Duration) {
        self.book().waker = Some((wake, contact_window));
    }

    /// Records this member's own probe of `node` and queues all its views
    /// younger than `contact_window` for every peer.
    pub fn record_mine(&self, node: &NodeId, observation: Observation, contact_window: Duration) {
        let now = Instant::now();
        let mut book = self.book();
        if !agreement::is_failed(&observation) {
            book.last_healthy.insert(node.clone(), observation.clone());
        }
        book.mine.insert(node.clone(), (observation, now));
        // A view this member no longer refreshes (the node left the
        // topology, the monitor stopped probing it) is not sent on as if
        // it were current.
        book.mine
            .retain(|_, (_, at)| now.saturating_duration_since(*at) <= contact_window);
        let outgoing: Vec<_> = book
            .mine
            .iter()
            .map(|(n, (o, _))| (n.clone(), o.clone()))
            .collect();
        self.outbox.send_replace(Arc::new(outgoing));
    }

    /// The cluster's view of `node` now, this member's own view included.
    pub fn verdict(&self, node: &NodeId, contact_window: Duration) -> Verdict {
        let book = self.book();
        let rule = self.rule(contact_window);
        let mut verdict: Verdict = judge(&book, node, Instant::now(), rule).into();
        verdict.last_healthy = book.last_healthy.get(node).cloned();
        verdict
    }

    fn rule(&self, contact_window: Duration) -> Rule {
        Rule {
            contact_window,
            members: self.members.len(),
        }
    }

    /// Takes in a peer's views; wakes the monitor for every node on which
    /// the peer flipped (failed <-> healthy) or the agreement changed, so a
    /// second view is taken at once.
    pub fn receive(&self, from: MemberId, views: Vec<(NodeId, Observation)>) {
        if from == self.me || !self.members.contains(&from) {
            tracing::debug!(from, "probe views from a non-member ignored");
            return;
        }
        let now = Instant::now();
        let views: BTreeMap<NodeId, Observation> = views.into_iter().collect();
        let mut book = self.book();
        for (node, observation) in &views {
            if !agreement::is_failed(observation) {
                book.last_healthy.insert(node.clone(), observation.clone());
            }
        }
        let Some((wake, window)) = book.waker.clone() else {
            book.peers.insert(
                from,
                Received {
                    arrived: now,
                    views,
                },
            );
            return;
        };
        let rule = self.rule(window);
        let old = book.peers.get(&from);
        let mut nodes: Vec<NodeId> = views.keys().cloned().collect();
        nodes.extend(old.into_iter().flat_map(|r| r.views.keys().cloned()));
        nodes.sort();
        nodes.dedup();
        let before: Vec<(bool, Option<bool>)> = nodes
            .iter()
            .map(|n| {
                let peer = old
                    .filter(|r| now.saturating_duration_since(r.arrived) <= window)
                    .and_then(|r| r.views.get(n))
                    .map(agreement::is_failed);
                (judge(&book, n, now, rule).failed, peer)
            })
            .collect();
        book.peers.insert(
            from,
            Received {
                arrived: now,
                views,
            },
        );
        for (node, (failed_before, peer_before)) in nodes.iter().zip(before) {
            let peer_now = book.peers[&from].views.get(node).map(agreement::is_failed);
            let failed_now = judge(&book, node, now, rule).failed;
            let flipped = matches!((peer_before, peer_now), (Some(a), Some(b)) if a != b);
            if failed_now != failed_before || flipped {
                tracing::debug!(%node, from, failed_now, "peer view changed: probing again");
                // The monitor may be gone; then nobody needs waking.
                let _ = wake.send(node.clone());
            }
        }
    }
}

fn judge<'a>(book: &'a Book, node: &NodeId, now: Instant, rule: Rule) -> Agreement<'a> {
    let mine = book.mine.get(node).map(|(o, _)| o);
    let peers = book.peers.iter().filter_map(|(member, r)| {
        r.views.get(node).map(|observation| PeerReport {
            member: *member,
            observation,
            arrived: r.arrived,
        })
    });
    agree(mine, peers, now, rule)
}

/// Sends this member's views to `peer` whenever they change, until the
/// book is dropped. A call that fails is not retried: the next change (at
/// the latest the next probe) carries the newer views anyway.
pub(crate) async fn send_to<T: Transport>(
    peer: MemberId,
    mut transport: T,
    mut outbox: watch::Receiver<Outgoing>,
    deadline: Duration,
) {
    while outbox.changed().await.is_ok() {
        let views = outbox.borrow_and_update().clone();
        let rpc = Rpc::Views {
            observations: views.as_ref().clone(),
        };
        match transport.call(rpc, deadline).await {
            Ok(RpcReply::Views) => {}
            Ok(other) => tracing::debug!(peer, ?other, "unexpected answer to probe views"),
            Err(e) => tracing::debug!(peer, error = %e, "probe views not delivered"),
        }
    }
}

#[cfg(test)]
mod tests {
    use pgha_core::{FailureReason, Health, Lsn};

    use super::*;

    const WINDOW: Duration = Duration::from_millis(1000);

    fn book() -> (ViewBook, mpsc::UnboundedReceiver<NodeId>) {
        let book = ViewBook::new(1, vec![1, 2, 3]);
        let (tx, rx) = mpsc::unbounded_channel();
        book.set_waker(tx, WINDOW);
        (book, rx)
    }

    fn pg0() -> NodeId {
        NodeId::new("pg0")
    }

    fn failed() -> Observation {
        Observation::Failed {
            reason: FailureReason::Timeout,
        }
    }

    fn healthy() -> Observation {
        Observation::Healthy(Health::primary(Lsn(1)))
    }

    #[tokio::test(start_paused = true)]
    async fn only_flips_and_agreement_changes_wake_the_monitor() {
        let (book, mut wake) = book();
        book.record_mine(&pg0(), failed(), WINDOW);
        book.receive(2, vec![(pg0(), healthy())]);
        assert!(wake.try_recv().is_err(), "a first view is no change");
        book.receive(2, vec![(pg0(), healthy())]);
        assert!(wake.try_recv().is_err(), "the same view again");
        // Member 2 now sees it failed too: agreed (and a flip).
        book.receive(2, vec![(pg0(), failed())]);
        assert_eq!(wake.try_recv().ok(), Some(pg0()));
        assert!(book.verdict(&pg0(), WINDOW).failed);
        // Member 3's first view, healthy: 2 of 3 still agree, no wake.
        book.receive(3, vec![(pg0(), healthy())]);
        assert!(wake.try_recv().is_err());
        assert!(book.verdict(&pg0(), WINDOW).failed);
    }

    #[tokio::test(start_paused = true)]
    async fn views_from_non_members_and_from_myself_are_ignored() {
        let (book, mut wake) = book();
        book.record_mine(&pg0(), failed(), WINDOW);
        book.receive(9, vec![(pg0(), failed())]);
        book.receive(1, vec![(pg0(), failed())]);
        assert!(wake.try_recv().is_err());
        let verdict = book.verdict(&pg0(), WINDOW);
        assert_eq!((verdict.probers, verdict.failed), (1, false));
    }

    #[tokio::test(start_paused = true)]
    async fn my_views_not_refreshed_within_the_window_are_not_sent() {
        let (book, _wake) = book();
        let outbox = book.outbox();
        book.record_mine(&pg0(), healthy(), WINDOW);
        assert_eq!(outbox.borrow().len(), 1);
        tokio::time::advance(WINDOW + Duration::from_millis(1)).await;
        let other = NodeId::new("pg1");
        book.record_mine(&other, healthy(), WINDOW);
        let sent: Vec<NodeId> = outbox.borrow().iter().map(|(n, _)| n.clone()).collect();
        assert_eq!(sent, [other]);
    }

    #[tokio::test(start_paused = true)]
    async fn the_latest_healthy_view_outlives_the_contact_window() {
        let (book, _wake) = book();
        book.receive(2, vec![(pg0(), healthy())]);
        tokio::time::advance(WINDOW * 3).await;
        book.record_mine(&pg0(), failed(), WINDOW);
        let verdict = book.verdict(&pg0(), WINDOW);
        assert_eq!(verdict.freshest_healthy, None, "member 2 is out of contact");
        assert_eq!(verdict.last_healthy, Some(healthy()));
    }
}
