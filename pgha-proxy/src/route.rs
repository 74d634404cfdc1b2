//! Where a request goes: the pure part of read routing.

use std::time::Duration;

use pgha_core::{Lsn, NodeState, Role, Topology};

use crate::classify::{ClassifyConfig, Route};

/// Whether a client batch is one simple-protocol query that any server may
/// answer: a read, not starting a transaction (a transaction must stay on
/// one server).
pub fn single_read(batch: &[u8], config: &ClassifyConfig) -> bool {
    batch.first() == Some(&b'Q')
        && crate::prepared::batch_route(batch, &Default::default(), config) == Route::Any
}

/// How far behind a standby may be and still get reads; `None` is no
/// limit (see [`ProxyConfig::lag_limits`](crate::ProxyConfig::lag_limits)).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub struct LagLimits {
    /// WAL bytes not yet replayed ([`replay_lag_bytes`]).
    pub bytes: Option<u64>,
    /// Replay delay as the router judges it ([`replay_lag_time`]).
    pub time: Option<Duration>,
}

/// The WAL a read on `node` would not see: its replayed position against
/// the most advanced known one (the primary's current position, or what a
/// standby already received from it). A standby that receives but does
/// not replay (`pg_wal_replay_pause()`, a long conflict) is behind by what
/// it holds unreplayed; when both are idle the positions meet and the lag
/// is 0. `None` while its position is unknown.
pub fn replay_lag_bytes(topology: &Topology, node: &NodeState) -> Option<u64> {
    unreplayed(topology.most_advanced_lsn(), node)
}

/// [`replay_lag_bytes`] against `reference`, looked up once per routed read.
fn unreplayed(reference: Option<Lsn>, node: &NodeState) -> Option<u64> {
    // A primary's replay position is its last recovery's, not its data.
    let position = node.current_lsn.or(node.replayed_lsn)?;
    Some(position.bytes_behind(reference?))
}

/// How late `node`'s data is, as reads are routed by it: the probed replay
/// delay ([`NodeState::lag_time`], the age of the last replayed commit),
/// except that a node with nothing left to replay is not late (on a quiet
/// primary that age grows though the standby lacks nothing).
pub fn replay_lag_time(topology: &Topology, node: &NodeState) -> Option<Duration> {
    late(replay_lag_bytes(topology, node), node)
}

fn late(unreplayed: Option<u64>, node: &NodeState) -> Option<Duration> {
    if unreplayed == Some(0) {
        Some(Duration::ZERO)
    } else {
        node.lag_time
    }
}

/// The standbys load-balanced reads may go to now: up, weighted, seen in
/// recovery, and within both `limits` (an unknown lag is outside a limit).
pub fn read_candidates(
    topology: &Topology,
    limits: LagLimits,
) -> impl Iterator<Item = &NodeState> + '_ {
    let reference = topology.most_advanced_lsn();
    topology
        .readable_nodes()
        // Probed and seen in recovery: a standby pgha has not looked at yet
        // may be anything.
        .filter(|n| n.role == Role::Standby && n.weight > 0 && n.in_recovery == Some(true))
        .filter(move |n| {
            let behind = unreplayed(reference, n);
            within(limits.bytes, behind) && within(limits.time, late(behind, n))
        })
}

/// Whether `lag` is within `limit`; an unknown lag is not (do not risk
/// stale reads).
fn within<T: PartialOrd>(limit: Option<T>, lag: Option<T>) -> bool {
    match (limit, lag) {
        (Some(limit), Some(lag)) => lag <= limit,
        (Some(_), None) => false,
        (None, _) => true,
    }
}

/// A standby to read from, by weight, among [`read_candidates`]; `pick` is
/// a random number.
pub fn pick_standby(topology: &Topology, limits: LagLimits, pick: u64) -> Option<&NodeState> {
    pick_standby_at(topology, limits, None, |n| n.replayed_lsn, pick)
}

/// As [`pick_standby`], among standbys whose replay position (`replayed`)
/// has reached `at_least`, when given (read-your-writes).
pub fn pick_standby_at(
    topology: &Topology,
    limits: LagLimits,
    at_least: Option<Lsn>,
    replayed: impl Fn(&NodeState) -> Option<Lsn>,
    pick: u64,
) -> Option<&NodeState> {
    match weighted(topology, limits, at_least, replayed, |_| false, pick, 0) {
        ReadPick::Standby(n) => Some(n),
        ReadPick::Primary | ReadPick::NoStandby => None,
    }
}

/// Where a read that any server may answer goes ([`pick_read`]).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum ReadPick<'t> {
    /// This standby.
    Standby(&'t NodeState),
    /// The primary, by its share of the weight.
    Primary,
    /// No standby qualifies: the primary, for want of one.
    NoStandby,
}

/// A read's server, by weight among the usable primary and the standbys of
/// [`pick_standby_at`] that are not to be avoided (`avoid`: suspected of
/// not answering) (pgpool's `backend_weight`: a primary of weight 0 leaves
/// reads to the standbys while one qualifies).
pub fn pick_read(
    topology: &Topology,
    limits: LagLimits,
    at_least: Option<Lsn>,
    replayed: impl Fn(&NodeState) -> Option<Lsn>,
    avoid: impl Fn(&NodeState) -> bool,
    pick: u64,
) -> ReadPick<'_> {
    let primary = topology.usable_primary().map_or(0, |p| u64::from(p.weight));
    weighted(topology, limits, at_least, replayed, avoid, pick, primary)
}

/// The weighted draw behind [`pick_standby_at`] and [`pick_read`]: the
/// primary's `primary` weight first, then the qualifying standbys. Two
/// passes over the candidates rather than a list: this runs for every
/// routed read.
fn weighted(
    topology: &Topology,
    limits: LagLimits,
    at_least: Option<Lsn>,
    replayed: impl Fn(&NodeState) -> Option<Lsn>,
    avoid: impl Fn(&NodeState) -> bool,
    pick: u64,
    primary: u64,
) -> ReadPick<'_> {
    let candidates = || {
        read_candidates(topology, limits)
            .filter(|n| at_least.is_none_or(|lsn| replayed(n).is_some_and(|r| r >= lsn)))
            .filter(|n| !avoid(n))
    };
    let standbys: u64 = candidates().map(|n| u64::from(n.weight)).sum();
    if standbys == 0 {
        return ReadPick::NoStandby;
    }
    let mut at = pick % (primary + standbys);
    if at < primary {
        return ReadPick::Primary;
    }
    at -= primary;
    for n in candidates() {
        let w = u64::from(n.weight);
        if at < w {
            return ReadPick::Standby(n);
        }
        at -= w;
    }
    ReadPick::NoStandby
}

#[cfg(test)]
mod tests {
    use super::*;
    use pgha_core::{
        ClusterState, DefaultPolicy, Event, Health, Lsn, NodeId, NodeState, Observation,
    };

    fn query(sql: &str) -> Vec<u8> {
        let mut m = vec![b'Q'];
        m.extend_from_slice(&((sql.len() + 5) as u32).to_be_bytes());
        m.extend_from_slice(sql.as_bytes());
        m.push(0);
        m
    }

    #[test]
    fn only_a_lone_simple_read_may_leave_the_primary() {
        let c = ClassifyConfig::default();
        assert!(single_read(&query("SELECT 1"), &c));
        assert!(!single_read(&query("INSERT INTO t VALUES (1)"), &c));
        assert!(!single_read(&query("BEGIN READ ONLY"), &c));
        assert!(!single_read(&query(""), &c));
        let mut two = query("SELECT 1");
        two.extend(query("SELECT 2"));
        assert!(!single_read(&two, &c));
        assert!(!single_read(b"P\0\0\0\x04", &c));
    }

    fn observed(state: &mut ClusterState, node: &str, health: Health) {
        state.handle(Event::Observed {
            node: NodeId::new(node),
            at: Duration::from_secs(1),
            observation: Observation::Healthy(health),
        });
    }

    fn bytes(limit: u64) -> LagLimits {
        LagLimits {
            bytes: Some(limit),
            time: None,
        }
    }

    #[test]
    fn standbys_behind_the_lag_limit_or_unprobed_get_no_reads() {
        let topology = Topology::new([
            NodeState::new("p", Role::Primary, "h0", 1),
            NodeState::new("s1", Role::Standby, "h1", 2),
            NodeState::new("s2", Role::Standby, "h2", 3),
        ]);
        let mut state = ClusterState::new(topology, DefaultPolicy::default());
        // Nothing probed yet: lag unknown, no standby qualifies.
        assert!(pick_standby(state.topology(), bytes(100), 0).is_none());
        observed(&mut state, "p", Health::primary(Lsn(10_000)));
        observed(&mut state, "s1", Health::standby(Lsn(9_950)));
        observed(&mut state, "s2", Health::standby(Lsn(1_000)));
        for pick in 0..10 {
            let chosen = pick_standby(state.topology(), bytes(100), pick).map(|c| c.id.clone());
            assert_eq!(chosen, Some(NodeId::new("s1")), "s2 is 9000 bytes behind");
        }
        let both: std::collections::BTreeSet<_> = (0..10)
            .filter_map(|p| pick_standby(state.topology(), LagLimits::default(), p))
            .map(|c| c.id.clone())
            .collect();
        assert_eq!(
            both.len(),
            2,
            "without a limit both standbys share the reads"
        );
    }

    #[test]
    fn standbys_replaying_later_than_the_time_limit_or_unknown_get_no_reads() {
        let standby = |name: &str, lag_ms: Option<u64>| {
            let mut n = NodeState::new(name, Role::Standby, name, 5432);
            n.in_recovery = Some(true);
            n.lag_time = lag_ms.map(Duration::from_millis);
            n
        };
        let topology = Topology::new([
            NodeState::new("p", Role::Primary, "p", 5432),
            standby("fresh", Some(200)),
            standby("edge", Some(1_000)),
            standby("late", Some(5_000)),
            standby("unknown", None),
        ]);
        let readers = |limits: LagLimits| -> Vec<String> {
            read_candidates(&topology, limits)
                .map(|n| n.id.to_string())
                .collect()
        };
        let time = |ms: u64| LagLimits {
            bytes: None,
            time: Some(Duration::from_millis(ms)),
        };
        assert_eq!(
            readers(time(1_000)),
            ["edge", "fresh"],
            "at the limit counts"
        );
        assert_eq!(readers(time(100)), Vec::<String>::new());
        assert_eq!(
            readers(LagLimits::default()),
            ["edge", "fresh", "late", "unknown"],
            "no limit: lag does not matter, known or not"
        );
        // Both limits apply: none of these has a known replay position, so
        // even the loosest byte limit keeps them all out.
        let both = LagLimits {
            bytes: Some(u64::MAX),
            ..time(10_000)
        };
        assert_eq!(readers(both), Vec::<String>::new());
        for pick in 0..8 {
            let chosen = pick_standby(&topology, time(500), pick).map(|n| n.id.to_string());
            assert_eq!(chosen.as_deref(), Some("fresh"));
        }
    }

    #[test]
    fn reads_share_out_by_weight_including_the_primary() {
        let standby = |name: &str, weight: u32| {
            let mut n = NodeState::new(name, Role::Standby, name, 5432)
                .with_lsn(Lsn(100))
                .with_weight(weight);
            n.in_recovery = Some(true);
            n
        };
        let cluster = |primary: u32, s1: u32| {
            Topology::new([
                NodeState::new("p", Role::Primary, "p", 5432)
                    .with_lsn(Lsn(100))
                    .with_weight(primary),
                standby("s1", s1),
                standby("s2", 2),
            ])
        };
        let tally = |t: &Topology, at_least: Option<Lsn>| {
            let mut counts = std::collections::BTreeMap::new();
            for pick in 0..600 {
                let to = match pick_read(
                    t,
                    LagLimits::default(),
                    at_least,
                    |n| n.replayed_lsn,
                    |_| false,
                    pick,
                ) {
                    ReadPick::Standby(n) => n.id.to_string(),
                    ReadPick::Primary => "primary".to_string(),
                    ReadPick::NoStandby => "none".to_string(),
                };
                *counts.entry(to).or_insert(0) += 1;
            }
            counts.into_iter().collect::<Vec<_>>()
        };
        let by = |v: &[(&str, i32)]| {
            v.iter()
                .map(|(k, n)| (k.to_string(), *n))
                .collect::<Vec<_>>()
        };
        // Weights 1 : 1 : 2 (pgpool's backend_weight).
        assert_eq!(
            tally(&cluster(1, 1), None),
            by(&[("primary", 150), ("s1", 150), ("s2", 300)])
        );
        // A primary of weight 0 leaves the reads to the standbys.
        assert_eq!(tally(&cluster(0, 1), None), by(&[("s1", 200), ("s2", 400)]));
        // No standby has replayed the client's writes: none qualifies, the
        // primary's weight does not matter.
        assert_eq!(tally(&cluster(1, 1), Some(Lsn(200))), by(&[("none", 600)]));
        // A standby of weight 0 gets none.
        assert_eq!(tally(&cluster(0, 0), Some(Lsn(50))), by(&[("s2", 600)]));
    }

    #[test]
    fn a_caught_up_standby_of_a_quiet_primary_is_not_late() {
        // The probed delay is the age of the last replayed commit: with no
        // writes it grows though the standby lacks nothing.
        let mut quiet = NodeState::new("quiet", Role::Standby, "s", 5432).with_lsn(Lsn(500));
        quiet.in_recovery = Some(true);
        quiet.lag_time = Some(Duration::from_secs(3_600));
        let mut behind = NodeState::new("behind", Role::Standby, "b", 5432).with_lsn(Lsn(400));
        behind.in_recovery = Some(true);
        behind.lag_time = Some(Duration::from_secs(3_600));
        let topology = Topology::new([
            NodeState::new("p", Role::Primary, "p", 5432).with_lsn(Lsn(500)),
            quiet,
            behind,
        ]);
        let limits = LagLimits {
            bytes: None,
            time: Some(Duration::from_secs(1)),
        };
        let readers: Vec<String> = read_candidates(&topology, limits)
            .map(|n| n.id.to_string())
            .collect();
        assert_eq!(readers, ["quiet"]);
    }

    #[test]
    fn a_standby_that_receives_but_does_not_replay_is_behind_by_what_it_holds() {
        // Replay paused: everything received, little replayed. The limit is
        // about what a read sees, so the received position does not count.
        let mut paused = NodeState::new("paused", Role::Standby, "s", 5432);
        paused.in_recovery = Some(true);
        paused.received_lsn = Some(Lsn(9_000_000));
        paused.replayed_lsn = Some(Lsn(400_000));
        paused.lag_time = Some(Duration::from_secs(15));
        let mut idle = NodeState::new("idle", Role::Standby, "s", 5432).with_lsn(Lsn(9_000_000));
        idle.in_recovery = Some(true);
        // The age of its last replayed commit: no writes since.
        idle.lag_time = Some(Duration::from_secs(3_600));
        let topology = Topology::new([
            NodeState::new("p", Role::Primary, "p", 5432).with_lsn(Lsn(9_000_000)),
            paused,
            idle,
        ]);
        let node = |id: &str| topology.node(&pgha_core::NodeId::new(id)).cloned();
        let lag = |id: &str| node(id).and_then(|n| replay_lag_bytes(&topology, &n));
        assert_eq!(lag("paused"), Some(8_600_000));
        assert_eq!(lag("idle"), Some(0), "both idle: no false lag");
        assert_eq!(lag("p"), Some(0));
        let late = |id: &str| node(id).and_then(|n| replay_lag_time(&topology, &n));
        assert_eq!(late("idle"), Some(Duration::ZERO));
        assert_eq!(late("paused"), Some(Duration::from_secs(15)));
        let readers = |limits| -> Vec<String> {
            read_candidates(&topology, limits)
                .map(|n| n.id.to_string())
                .collect()
        };
        assert_eq!(readers(bytes(1 << 20)), ["idle"]);
        let time = LagLimits {
            bytes: None,
            time: Some(Duration::from_secs(10)),
        };
        assert_eq!(readers(time), ["idle"]);
        assert_eq!(readers(LagLimits::default()), ["idle", "paused"]);
    }

    #[test]
    fn a_standby_to_avoid_gets_no_reads_and_its_share_goes_elsewhere() {
        let standby = |name: &str| {
            let mut n = NodeState::new(name, Role::Standby, name, 5432).with_lsn(Lsn(100));
            n.in_recovery = Some(true);
            n
        };
        let topology = Topology::new([
            NodeState::new("p", Role::Primary, "p", 5432)
                .with_lsn(Lsn(100))
                .with_weight(0),
            standby("s1"),
            standby("s2"),
        ]);
        let to = |avoided: &[&str], pick| {
            let avoid = |n: &NodeState| avoided.contains(&n.id.as_str());
            match pick_read(
                &topology,
                LagLimits::default(),
                None,
                |n| n.replayed_lsn,
                avoid,
                pick,
            ) {
                ReadPick::Standby(n) => n.id.to_string(),
                ReadPick::Primary => "primary".to_string(),
                ReadPick::NoStandby => "none".to_string(),
            }
        };
        let all = |avoided: &[&str]| {
            (0..10)
                .map(|p| to(avoided, p))
                .collect::<std::collections::BTreeSet<_>>()
        };
        assert_eq!(all(&[]), ["s1".to_string(), "s2".to_string()].into());
        assert_eq!(all(&["s1"]), ["s2".to_string()].into());
        assert_eq!(
            all(&["s1", "s2"]),
            ["none".to_string()].into(),
            "the primary, for want of a standby"
        );
    }
}
