//! The default health probe: SQL over one kept monitoring connection.

use std::collections::{HashMap, HashSet};
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex, OnceLock};
use std::time::Duration;

use async_trait::async_trait;
use tokio::sync::mpsc;
use tokio_postgres::Client;

use crate::connect::query_row;
use crate::{
    ConnectConfig, ConnectionEnd, Error, FailureReason, Health, HealthProbe, Lsn, NodeId,
    NodeState, Observation,
};

/// One round trip tells role, timeline, WAL positions and replay delay.
/// CASE keeps primary-only functions off standbys (and vice versa).
const PROBE_SQL: &str = "SELECT pg_is_in_recovery()::text, \
  CASE WHEN pg_is_in_recovery() \
    THEN coalesce((SELECT received_tli FROM pg_stat_wal_receiver), \
                  (SELECT timeline_id FROM pg_control_checkpoint()))::text \
    ELSE substr(pg_walfile_name(pg_current_wal_lsn()), 1, 8) END, \
  CASE WHEN pg_is_in_recovery() THEN NULL ELSE pg_current_wal_lsn()::text END, \
  pg_last_wal_receive_lsn()::text, \
  pg_last_wal_replay_lsn()::text, \
  CASE WHEN pg_is_in_recovery() \
    THEN extract(epoch FROM now() - pg_last_xact_replay_timestamp())::text END, \
  CASE WHEN pg_is_in_recovery() THEN NULL \
    ELSE current_setting('default_transaction_read_only') END, \
  (SELECT sender_host || ' ' || sender_port::text FROM pg_stat_wal_receiver \
    WHERE status = 'streaming')";

/// Probes with SQL over a monitoring connection kept per node.
///
/// Each probe asks `pg_is_in_recovery()`, the timeline and the WAL
/// positions (`pg_current_wal_lsn` on a primary; `pg_last_wal_receive_lsn`
/// and `pg_last_wal_replay_lsn` on a standby). Connect and query are both
/// bounded by the probe timeout, so a frozen server (TCP accepted, nothing
/// answering) fails the probe instead of hanging it.
///
/// When a monitoring connection drops between probes (the server died, or
/// someone ran `pg_terminate_backend()` on it) the probe asks the monitor
/// for an immediate re-probe: a crash is noticed in one round trip, while a
/// terminated session on a healthy server just reconnects. When the
/// connection vanished without a word from the server
/// ([`ConnectionEnd::Abrupt`]: no error, no shutdown notice) and that
/// re-probe's connection is refused, the probe reports
/// [`FailureReason::Crashed`]. A connection pgha is about to cut itself
/// (before a fence: [`HealthProbe::release`]) wakes nobody.
#[derive(Debug)]
pub struct SqlProbe {
    connect: ConnectConfig,
    clients: Mutex<HashMap<NodeId, Kept>>,
    vanished: Arc<Mutex<HashSet<NodeId>>>,
    wake: OnceLock<mpsc::UnboundedSender<NodeId>>,
}

/// A monitoring connection and whether its end is expected (no news).
#[derive(Debug)]
struct Kept {
    client: Client,
    quiet: Arc<AtomicBool>,
}

impl SqlProbe {
    /// A probe connecting with `connect` (its `application_name` should say
    /// pgha, so the session is recognisable).
    pub fn new(connect: ConnectConfig) -> Self {
        Self {
            connect,
            clients: Mutex::new(HashMap::new()),
            vanished: Arc::new(Mutex::new(HashSet::new())),
            wake: OnceLock::new(),
        }
    }

    fn take_client(&self, node: &NodeId) -> Option<Kept> {
        let mut clients = self.clients.lock().unwrap_or_else(|p| p.into_inner());
        clients.remove(node).filter(|c| !c.client.is_closed())
    }

    fn keep_client(&self, node: &NodeId, kept: Kept) {
        let mut clients = self.clients.lock().unwrap_or_else(|p| p.into_inner());
        clients.insert(node.clone(), kept);
    }

    /// Whether `node`'s monitoring connection vanished without a word
    /// since the last probe (and forgets it: one sign per loss).
    fn take_vanished(&self, node: &NodeId) -> bool {
        let mut vanished = self.vanished.lock().unwrap_or_else(|p| p.into_inner());
        vanished.remove(node)
    }

    async fn connect(&self, node: &NodeState, timeout: Duration) -> Result<Kept, Error> {
        let wake = self.wake.get().cloned();
        let vanished = self.vanished.clone();
        let quiet = Arc::new(AtomicBool::new(false));
        let expected = quiet.clone();
        let id = node.id.clone();
        let client = self
            .connect
            .connect_then(node, timeout, move |end| {
                if expected.load(Ordering::Acquire) {
                    tracing::debug!(node = %id, "monitoring connection released");
                    return;
                }
                tracing::debug!(node = %id, ?end, "monitoring connection closed");
                if end == ConnectionEnd::Abrupt {
                    vanished
                        .lock()
                        .unwrap_or_else(|p| p.into_inner())
                        .insert(id.clone());
                }
                if let Some(wake) = wake {
                    let _ = wake.send(id);
                }
            })
            .await?;
        Ok(Kept { client, quiet })
    }

    async fn probe_once(&self, node: &NodeState, timeout: Duration) -> Result<Health, Error> {
        let kept = match self.take_client(&node.id) {
            Some(kept) => kept,
            None => self.connect(node, timeout).await?,
        };
        let row = query_row(&kept.client, node, PROBE_SQL, timeout).await?;
        let health = parse_health(&row).ok_or_else(|| Error::UnexpectedReply {
            node: node.id.to_string(),
            what: format!("probe row {row:?}"),
        });
        // Only a connection that just answered is worth keeping.
        self.keep_client(&node.id, kept);
        health
    }
}

#[async_trait]
impl HealthProbe for SqlProbe {
    async fn probe(&self, node: &NodeState, timeout: Duration) -> Observation {
        let vanished = self.take_vanished(&node.id);
        match self.probe_once(node, timeout).await {
            Ok(health) => Observation::Healthy(health),
            Err(e) => {
                let mut reason = failure_reason(&e);
                if vanished && reason == FailureReason::ConnectRefused {
                    reason = FailureReason::Crashed;
                }
                tracing::debug!(node = %node.id, error = %e, ?reason, "probe failed");
                Observation::Failed { reason }
            }
        }
    }

    fn set_wake(&self, wake: mpsc::UnboundedSender<NodeId>) {
        let _ = self.wake.set(wake);
    }

    async fn timeline_ancestors(&self, node: &NodeState, timeout: Duration) -> Option<Vec<u32>> {
        // Superuser or pg_read_server_files; the file is missing (NULL) on
        // timeline 1, which has no parents.
        let sql = "SELECT coalesce(pg_read_file('pg_wal/' || \
            substr(pg_walfile_name(pg_current_wal_lsn()), 1, 8) || '.history', 0, 1048576, true), '')";
        let read = async {
            let client = self.connect.connect(node, timeout).await?;
            query_row(&client, node, sql, timeout).await
        };
        match read.await {
            Ok(row) => row
                .into_iter()
                .next()
                .flatten()
                .map(|text| crate::evidence::parse_history(&text)),
            Err(e) => {
                tracing::warn!(node = %node.id, error = %e, "could not read the timeline history");
                None
            }
        }
    }

    fn release(&self, node: &NodeId) {
        let kept = self
            .clients
            .lock()
            .unwrap_or_else(|p| p.into_inner())
            .remove(node);
        if let Some(kept) = kept {
            kept.quiet.store(true, Ordering::Release);
        }
    }

    fn name(&self) -> &str {
        "sql probe"
    }
}

fn failure_reason(e: &Error) -> FailureReason {
    match e {
        Error::Timeout { .. } => FailureReason::Timeout,
        Error::Connect { source, .. } => {
            let refused = std::error::Error::source(source)
                .and_then(|s| s.downcast_ref::<std::io::Error>())
                .is_some_and(|io| io.kind() == std::io::ErrorKind::ConnectionRefused);
            if refused {
                FailureReason::ConnectRefused
            } else if source.as_db_error().is_some() {
                // The server answered but refused us: starting up, shutting
                // down, or too many connections.
                FailureReason::Query
            } else {
                FailureReason::ConnectionLost
            }
        }
        Error::Query { source, .. } if source.is_closed() => FailureReason::ConnectionLost,
        _ => FailureReason::Query,
    }
}

/// Reads the probe's columns; `None` if the row is not what we asked for.
fn parse_health(row: &[Option<String>]) -> Option<Health> {
    let in_recovery = match row.first()?.as_deref()? {
        "true" => true,
        "false" => false,
        _ => return None,
    };
    let timeline = row.get(1)?.as_deref().and_then(|t| {
        if in_recovery {
            t.parse().ok()
        } else {
            u32::from_str_radix(t, 16).ok()
        }
    });
    let lsn = |i: usize| row.get(i).and_then(|v| v.as_deref()?.parse::<Lsn>().ok());
    let lag_time = row
        .get(5)
        .and_then(|v| v.as_deref()?.parse::<f64>().ok())
        .filter(|s| s.is_finite() && *s >= 0.0)
        .map(Duration::from_secs_f64);
    let read_only = match row.get(6).and_then(|v| v.as_deref()) {
        Some("on") => Some(true),
        Some("off") => Some(false),
        _ => None,
    };
    let streaming_from = row
        .get(7)
        .and_then(|v| v.as_deref())
        .and_then(|v| v.rsplit_once(' '))
        .and_then(|(host, port)| Some((host.to_string(), port.parse().ok()?)));
    Some(Health {
        in_recovery,
        timeline,
        current_lsn: lsn(2),
        received_lsn: lsn(3),
        replayed_lsn: lsn(4),
        lag_bytes: None,
        lag_time,
        read_only,
        streaming_from,
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    fn row(cols: &[Option<&str>]) -> Vec<Option<String>> {
        cols.iter().map(|c| c.map(str::to_string)).collect()
    }

    #[test]
    fn a_primary_row_gives_its_timeline_from_the_wal_file_name() {
        let h = parse_health(&row(&[
            Some("false"),
            Some("0000000A"),
            Some("0/3000060"),
            None,
            None,
            None,
        ]))
        .unwrap_or_default();
        assert!(!h.in_recovery);
        assert_eq!(h.timeline, Some(10));
        assert_eq!(h.current_lsn, Some(Lsn(0x3000060)));
    }

    #[test]
    fn a_standby_row_gives_positions_and_replay_delay() {
        let h = parse_health(&row(&[
            Some("true"),
            Some("2"),
            None,
            Some("0/5000000"),
            Some("0/4000000"),
            Some("1.5"),
            None,
            Some("10.0.0.1 5433"),
        ]))
        .unwrap_or_default();
        assert!(h.in_recovery);
        assert_eq!(h.timeline, Some(2));
        assert_eq!(h.received_lsn, Some(Lsn(0x5000000)));
        assert_eq!(h.replayed_lsn, Some(Lsn(0x4000000)));
        assert_eq!(h.lag_time, Some(Duration::from_millis(1500)));
        assert_eq!(h.streaming_from, Some(("10.0.0.1".to_string(), 5433)));
    }

    #[test]
    fn garbage_is_not_health() {
        assert_eq!(parse_health(&row(&[Some("maybe")])), None);
        assert_eq!(parse_health(&[]), None);
    }
}
