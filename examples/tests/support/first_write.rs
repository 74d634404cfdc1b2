//! A client that, from a fault on, starts a fresh connection and one
//! INSERT every `every`, each attempt on its own (no attempt waits for an
//! earlier one to time out): when the first was acknowledged is when
//! writes came back for a client that retries its connect that often —
//! apart from the `Writer`'s own timeouts (a 1 s TCP connect, a 2 s
//! statement), which round its outage up.

use std::time::{Duration, Instant};

use pgha_core::testing::{HarnessError, NetLab, NetnsTask, CLIENT};

use super::group::PORT;

/// How long one attempt may take: longer than a lost SYN's first
/// retransmission (1 s), so an attempt is not cut short just before it
/// would have succeeded.
const GIVE_UP: Duration = Duration::from_secs(3);

/// Starts trying now; the task ends with the first acknowledgement, or
/// `None` after `within`. Its rows have negative ids (the `Writer`'s are
/// positive).
pub fn start(
    lab: &NetLab,
    every: Duration,
    within: Duration,
) -> Result<NetnsTask<Option<Instant>>, HarnessError> {
    let vip = lab.vip(0);
    lab.spawn(CLIENT, move || async move {
        let conninfo = format!("host={vip} port={PORT} user=postgres dbname=postgres");
        let (acked, mut acks) = tokio::sync::mpsc::unbounded_channel();
        let started = Instant::now();
        let trying = async move {
            for id in 1i64.. {
                if started.elapsed() >= within {
                    break;
                }
                let (conninfo, acked) = (conninfo.clone(), acked.clone());
                tokio::spawn(async move {
                    let attempt = async {
                        let (client, connection) =
                            tokio_postgres::connect(&conninfo, tokio_postgres::NoTls)
                                .await
                                .ok()?;
                        tokio::spawn(connection);
                        client
                            .execute("INSERT INTO writes (id) VALUES ($1)", &[&-id])
                            .await
                            .ok()?;
                        Some(Instant::now())
                    };
                    if let Ok(Some(at)) = tokio::time::timeout(GIVE_UP, attempt).await {
                        let _ = acked.send(at);
                    }
                });
                tokio::time::sleep(every).await;
            }
        };
        tokio::select! {
            at = acks.recv() => at,
            () = trying => None,
        }
    })
}
