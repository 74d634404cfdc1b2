//! Whether the cluster agrees that a PostgreSQL node has failed: a pure
//! function of the members' latest probe views (pgpool's
//! `failover_require_consensus`, counted over the members in contact).
//!
//! No clock is read here: `now` and the arrival instants are data.

use std::time::Duration;

use pgha_core::{FailureReason, Observation};
use tokio::time::Instant;

use crate::types::MemberId;

/// A peer's latest report on one node and when (local clock) it arrived.
#[derive(Debug, Clone, Copy)]
pub struct PeerReport<'a> {
    /// The reporting member.
    pub member: MemberId,
    /// What its probe saw.
    pub observation: &'a Observation,
    /// When the message carrying it arrived here.
    pub arrived: Instant,
}

/// How reports are counted.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Rule {
    /// A peer whose last views arrived longer ago than this is not in
    /// contact: its report does not count, for or against.
    pub contact_window: Duration,
    /// How many members the cluster has (voters, witnesses included).
    pub members: usize,
}

/// The cluster's view of one node.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Agreement<'a> {
    /// In-contact members that probe the node (this one included when it
    /// has a view of its own).
    pub probers: usize,
    /// How many of them report it failed.
    pub reporting_failed: usize,
    /// Whether the node counts as failed for the cluster (see [`agree`]).
    pub failed: bool,
    /// The latest-arrived in-contact peer report that sees it healthy.
    pub freshest_healthy: Option<&'a Observation>,
    /// The in-contact peer report that sees it failed: one that saw it
    /// crash ([`FailureReason::Crashed`](pgha_core::FailureReason)) if
    /// any, else the latest-arrived.
    pub freshest_failed: Option<&'a Observation>,
}

/// Counts `mine` and the in-contact `peers` for one node.
///
/// The node is **failed** when more than half of the in-contact probers
/// report it failed, and — in a cluster of more than one member — at
/// least two of them do: one member's view alone (its own link to the node
/// broke, or its peers' views are late) never fails a node. A tie is not
/// failed. Peers that sent no view of the node do not count.
///
/// ```
/// use std::time::Duration;
/// use pgha_core::{FailureReason, Health, Lsn, Observation};
/// use pgha_watchdog::agreement::{agree, PeerReport, Rule};
/// use tokio::time::Instant;
///
/// let now = Instant::now();
/// let failed = Observation::Failed { reason: FailureReason::Timeout };
/// let healthy = Observation::Healthy(Health::primary(Lsn(1)));
/// let rule = Rule { contact_window: Duration::from_secs(2), members: 3 };
/// // Two hosts and a witness: my link to the primary broke, the others
/// // see it healthy.
/// let peers = [
///     PeerReport { member: 2, observation: &healthy, arrived: now },
///     PeerReport { member: 3, observation: &healthy, arrived: now },
/// ];
/// assert!(!agree(Some(&failed), peers, now, rule).failed);
/// ```
pub fn agree<'a>(
    mine: Option<&'a Observation>,
    peers: impl IntoIterator<Item = PeerReport<'a>>,
    now: Instant,
    rule: Rule,
) -> Agreement<'a> {
    let mut probers = 0;
    let mut reporting_failed = 0;
    let mut freshest_healthy: Option<(Instant, &Observation)> = None;
    let mut freshest_failed: Option<(Instant, &Observation)> = None;
    if let Some(mine) = mine {
        probers += 1;
        reporting_failed += usize::from(is_failed(mine));
    }
    for report in peers {
        if now.saturating_duration_since(report.arrived) > rule.contact_window {
            continue;
        }
        probers += 1;
        let freshest = if is_failed(report.observation) {
            reporting_failed += 1;
            &mut freshest_failed
        } else {
            &mut freshest_healthy
        };
        let rank = (is_crash(report.observation), report.arrived);
        if freshest.is_none_or(|(at, o)| rank >= (is_crash(o), at)) {
            *freshest = Some((report.arrived, report.observation));
        }
    }
    let needed = rule.members.clamp(1, 2);
    Agreement {
        probers,
        reporting_failed,
        failed: reporting_failed * 2 > probers && reporting_failed >= needed,
        freshest_healthy: freshest_healthy.map(|(_, o)| o),
        freshest_failed: freshest_failed.map(|(_, o)| o),
    }
}

/// Whether an observation reports the node failed.
pub fn is_failed(observation: &Observation) -> bool {
    matches!(observation, Observation::Failed { .. })
}

/// Whether an observation saw the server process gone (enough for
/// pgha-core's policy to act on at once).
pub fn is_crash(observation: &Observation) -> bool {
    matches!(
        observation,
        Observation::Failed {
            reason: FailureReason::Crashed
        }
    )
}

#[cfg(test)]
mod tests {
    use pgha_core::{Health, Lsn};

    use super::*;

    fn ms(n: u64) -> Duration {
        Duration::from_millis(n)
    }

    fn failed() -> Observation {
        Observation::Failed {
            reason: FailureReason::ConnectRefused,
        }
    }

    fn healthy(lsn: u64) -> Observation {
        Observation::Healthy(Health::standby(Lsn(lsn)))
    }

    const RULE: Rule = Rule {
        contact_window: Duration::from_millis(1500),
        members: 3,
    };

    fn report(member: MemberId, observation: &Observation, arrived: Instant) -> PeerReport<'_> {
        PeerReport {
            member,
            observation,
            arrived,
        }
    }

    #[test]
    fn a_majority_of_in_contact_probers_fails_a_node() {
        let now = Instant::now();
        let (f, h) = (failed(), healthy(1));
        let a = agree(
            Some(&f),
            [report(2, &f, now), report(3, &h, now)],
            now,
            RULE,
        );
        assert_eq!((a.probers, a.reporting_failed, a.failed), (3, 2, true));
        assert_eq!(a.freshest_healthy, Some(&h));
        let a = agree(
            Some(&h),
            [report(2, &f, now), report(3, &f, now)],
            now,
            RULE,
        );
        assert!(a.failed, "my healthy view is outvoted");
    }

    #[test]
    fn my_broken_link_alone_never_fails_a_node() {
        let now = Instant::now();
        let (f, h) = (failed(), healthy(1));
        let a = agree(
            Some(&f),
            [report(2, &h, now), report(3, &h, now)],
            now,
            RULE,
        );
        assert_eq!((a.probers, a.reporting_failed, a.failed), (3, 1, false));
    }

    #[test]
    fn a_tie_is_not_failed() {
        let now = Instant::now();
        let (f, h) = (failed(), healthy(1));
        // Two hosts, the witness out of contact.
        let a = agree(Some(&f), [report(2, &h, now)], now, RULE);
        assert_eq!((a.probers, a.failed), (2, false));
        let rule = Rule { members: 4, ..RULE };
        let peers = [report(2, &f, now), report(3, &h, now), report(4, &h, now)];
        assert!(!agree(Some(&f), peers, now, rule).failed);
    }

    #[test]
    fn stale_peers_do_not_count() {
        let now = Instant::now() + ms(10_000);
        let (f, h) = (failed(), healthy(1));
        let stale = now - RULE.contact_window - ms(1);
        let edge = now - RULE.contact_window;
        // Two stale healthy views cannot outvote two fresh failed ones.
        let peers = [
            report(2, &f, edge),
            report(3, &h, stale),
            report(4, &h, stale),
        ];
        let a = agree(Some(&f), peers, now, Rule { members: 4, ..RULE });
        assert_eq!((a.probers, a.reporting_failed, a.failed), (2, 2, true));
        assert_eq!(a.freshest_healthy, None);
        // Nor do two stale failed views outvote a fresh healthy one.
        let peers = [report(2, &f, stale), report(3, &f, stale)];
        let a = agree(Some(&h), peers, now, RULE);
        assert_eq!((a.probers, a.failed), (1, false));
    }

    #[test]
    fn only_me_in_contact_decides_nothing_in_a_cluster() {
        let now = Instant::now() + ms(10_000);
        let f = failed();
        let a = agree(Some(&f), [], now, RULE);
        assert_eq!((a.probers, a.reporting_failed, a.failed), (1, 1, false));
        let stale = now - ms(5_000);
        let a = agree(Some(&f), [report(2, &f, stale)], now, RULE);
        assert!(!a.failed);
    }

    #[test]
    fn a_member_alone_in_its_cluster_decides_alone() {
        let now = Instant::now();
        let f = failed();
        let rule = Rule { members: 1, ..RULE };
        assert!(agree(Some(&f), [], now, rule).failed);
        assert!(!agree(Some(&healthy(1)), [], now, rule).failed);
    }

    #[test]
    fn without_a_view_of_my_own_the_peers_decide() {
        let now = Instant::now();
        let (f, h) = (failed(), healthy(1));
        let a = agree(None, [report(2, &f, now), report(3, &f, now)], now, RULE);
        assert_eq!((a.probers, a.failed), (2, true));
        let a = agree(None, [report(2, &f, now), report(3, &h, now)], now, RULE);
        assert!(!a.failed);
        assert!(!agree(None, [], now, RULE).failed);
    }

    #[test]
    fn the_freshest_report_of_each_kind_is_kept() {
        let now = Instant::now() + ms(1_000);
        let (old, new) = (healthy(1), healthy(2));
        let f = Observation::Failed {
            reason: FailureReason::Crashed,
        };
        let peers = [
            report(2, &new, now - ms(10)),
            report(3, &old, now - ms(500)),
            report(4, &f, now - ms(20)),
        ];
        let a = agree(Some(&old), peers, now, Rule { members: 4, ..RULE });
        assert_eq!(a.freshest_healthy, Some(&new));
        assert_eq!(a.freshest_failed, Some(&f));
        assert!(!a.failed);
        // A crash report wins over a fresher plain failure.
        let refused = failed();
        let peers = [report(2, &f, now - ms(300)), report(3, &refused, now)];
        let a = agree(Some(&old), peers, now, RULE);
        assert_eq!(a.freshest_failed, Some(&f));
    }

    #[test]
    fn a_report_from_the_future_counts_as_fresh() {
        // Arrival instants are local and monotonic, but a caller may pass
        // an older `now`; that must not panic or drop the report.
        let now = Instant::now();
        let f = failed();
        let a = agree(Some(&f), [report(2, &f, now + ms(5))], now, RULE);
        assert!(a.failed);
    }
}
