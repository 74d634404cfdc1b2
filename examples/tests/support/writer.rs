//! The client of the group tests: one INSERT every 50 ms through the VIP,
//! each attempt and its outcome remembered.

#![allow(dead_code, clippy::unwrap_used)] // test support

use std::net::Ipv4Addr;
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use pgha_core::testing::{HarnessError, NetLab, NetnsTask, CLIENT};

use super::PORT;

/// One write the client tried.
#[derive(Debug, Clone)]
pub struct Attempt {
    /// When it was sent.
    pub at: Instant,
    /// When its answer (or error) came.
    pub done: Instant,
    pub id: i64,
    pub ok: bool,
    pub error: Option<String>,
    /// The error's SQLSTATE when the server (or pgha) answered one; none
    /// for a client-side timeout or a connection that ended unanswered.
    pub sqlstate: Option<String>,
}

/// A client in the client namespace inserting one row every 50 ms through
/// the VIP, reconnecting after any error.
pub struct Writer {
    pub attempts: Arc<Mutex<Vec<Attempt>>>,
    _task: NetnsTask<()>,
}

impl Writer {
    pub fn start(lab: &NetLab) -> Result<Writer, HarnessError> {
        let attempts = Arc::new(Mutex::new(Vec::new()));
        let seen = attempts.clone();
        let vip: Ipv4Addr = lab.vip(0);
        let task = lab.spawn(CLIENT, move || async move {
            let conninfo =
                format!("host={vip} port={PORT} user=postgres dbname=postgres connect_timeout=1");
            let mut client: Option<tokio_postgres::Client> = None;
            for id in 0i64.. {
                let at = Instant::now();
                if client.as_ref().is_none_or(|c| c.is_closed()) {
                    // connect_timeout covers the TCP connect only: a
                    // login that is never answered must not stop the writer.
                    let connect = tokio_postgres::connect(&conninfo, tokio_postgres::NoTls);
                    client = match tokio::time::timeout(Duration::from_secs(3), connect).await {
                        Ok(Ok((c, conn))) => {
                            tokio::spawn(conn);
                            Some(c)
                        }
                        _ => None,
                    };
                }
                let result = match &client {
                    Some(c) => tokio::time::timeout(
                        Duration::from_secs(2),
                        c.execute("INSERT INTO writes (id) VALUES ($1)", &[&id]),
                    )
                    .await
                    .map_err(|_| ("no answer in 2 s".to_string(), None))
                    .and_then(|r| {
                        r.map_err(|e| (e.to_string(), e.code().map(|c| c.code().to_string())))
                    }),
                    None => Err(("cannot connect".to_string(), None)),
                };
                if result.is_err() {
                    client = None;
                }
                seen.lock().unwrap().push(Attempt {
                    at,
                    done: Instant::now(),
                    id,
                    ok: result.is_ok(),
                    sqlstate: result.as_ref().err().and_then(|(_, code)| code.clone()),
                    error: result.err().map(|(text, _)| text),
                });
                tokio::time::sleep_until((at + Duration::from_millis(50)).into()).await;
            }
        })?;
        Ok(Writer {
            attempts,
            _task: task,
        })
    }

    /// The attempts that failed since `at`.
    pub fn errors_since(&self, at: Instant) -> Vec<Attempt> {
        let attempts = self.attempts.lock().unwrap();
        attempts
            .iter()
            .filter(|a| a.at >= at && !a.ok)
            .cloned()
            .collect()
    }

    /// Acknowledged writes so far.
    pub fn acknowledged(&self) -> Vec<i64> {
        let a = self.attempts.lock().unwrap();
        a.iter().filter(|a| a.ok).map(|a| a.id).collect()
    }

    /// Waits for `n` acknowledged writes after `since`.
    pub async fn wait_acknowledged_after(&self, since: Instant, n: usize, within: Duration) {
        let deadline = Instant::now() + within;
        loop {
            let count = {
                let a = self.attempts.lock().unwrap();
                a.iter().filter(|a| a.ok && a.at >= since).count()
            };
            if count >= n {
                return;
            }
            assert!(
                Instant::now() < deadline,
                "fewer than {n} writes acknowledged within {within:?} (last: {:?})",
                self.attempts.lock().unwrap().last()
            );
            tokio::time::sleep(Duration::from_millis(50)).await;
        }
    }

    /// The outage a fault at `at` caused: the longest time between two
    /// consecutive acknowledged writes from the last one before `at` on
    /// (a write may still slip through just after a fault is injected).
    pub fn outage_around(&self, at: Instant) -> Option<Duration> {
        let a = self.attempts.lock().unwrap();
        let before = a
            .iter()
            .filter(|x| x.ok && x.at <= at)
            .map(|x| x.at)
            .max()?;
        // By when the answers came: a write held through the fault and
        // answered after it counts at its answer.
        let acks: Vec<Instant> = a
            .iter()
            .filter(|x| x.ok && x.at >= before)
            .map(|x| x.done)
            .collect();
        acks.windows(2).map(|w| w[1] - w[0]).max()
    }
}
