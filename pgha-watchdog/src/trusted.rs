//! pgpool's `trusted_servers`: a member that can reach none of the
//! configured upstream addresses (a router, a gateway, the application
//! servers) holds no lease and steps aside for one that can. An isolated
//! host is no use to clients, so it should neither hold the VIP nor fail
//! over.
//!
//! The decision ([`withhold`]) is pure; [`run`] is the shell that connects.

use std::sync::Arc;
use std::time::Duration;

use tokio::net::TcpStream;
use tokio::sync::watch;
use tokio::task::JoinSet;

use crate::types::MemberId;

/// Which upstream addresses to check, how often and how patiently.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct TrustedServers {
    /// `host:port` addresses; empty (the default) turns the check off.
    pub addrs: Vec<String>,
    /// Time between checks. Default 3 s.
    pub every: Duration,
    /// Deadline of one TCP connect (name resolution included). Default 1 s.
    pub deadline: Duration,
}

impl Default for TrustedServers {
    fn default() -> Self {
        TrustedServers {
            addrs: Vec::new(),
            every: Duration::from_secs(3),
            deadline: Duration::from_secs(1),
        }
    }
}

/// Whether to withhold the lease after a check in which `answered` of
/// `configured` trusted servers accepted a connection: only when some are
/// configured and none answered.
pub fn withhold(configured: usize, answered: usize) -> bool {
    configured > 0 && answered == 0
}

/// How many of `addrs` accept a TCP connection within `deadline` (tried
/// at once; the connections are closed right away).
pub async fn count_answering(addrs: &[String], deadline: Duration) -> usize {
    let mut tries = JoinSet::new();
    for addr in addrs {
        let addr = addr.clone();
        tries.spawn(async move {
            match tokio::time::timeout(deadline, TcpStream::connect(&addr)).await {
                Ok(Ok(_)) => true,
                Ok(Err(e)) => {
                    tracing::debug!(%addr, error = %e, "trusted server refused");
                    false
                }
                Err(_) => {
                    tracing::debug!(%addr, ?deadline, "trusted server did not answer");
                    false
                }
            }
        });
    }
    let mut answered = 0;
    while let Some(done) = tries.join_next().await {
        answered += usize::from(matches!(done, Ok(true)));
    }
    answered
}

/// Checks `config.addrs` every `config.every` and publishes whether any
/// answers into `reachable`, and into `allowed` (the lease task's gate).
/// While none answers the member also steps aside: it sends no heartbeats
/// (a leader's followers soon elect a member that may reach the
/// upstream; it grants them its vote) and never campaigns. Logs at WARN
/// when withholding starts and stops. Runs until aborted.
pub(crate) async fn run(
    me: MemberId,
    config: TrustedServers,
    reachable: watch::Sender<bool>,
    gate: Arc<crate::gate::Gate>,
) {
    let mut tick = tokio::time::interval(config.every);
    tick.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
    let mut withholding = false;
    loop {
        tick.tick().await;
        let answered = count_answering(&config.addrs, config.deadline).await;
        let now_withholding = withhold(config.addrs.len(), answered);
        if now_withholding != withholding {
            if now_withholding {
                tracing::warn!(
                    member = me,
                    servers = ?config.addrs,
                    "no trusted server answers: this member holds no lease until one does"
                );
            } else {
                tracing::warn!(
                    member = me,
                    answered,
                    "a trusted server answers again: this member may hold the lease"
                );
            }
            withholding = now_withholding;
            gate.set(crate::gate::Reason::NoTrustedServer, withholding);
        }
        reachable.send_if_modified(|open| {
            let changed = *open == withholding;
            *open = !withholding;
            changed
        });
    }
}

#[cfg(test)]
mod tests {
    use tokio::net::TcpListener;

    use super::*;

    #[test]
    fn the_lease_is_withheld_only_when_none_of_several_answer() {
        assert!(!withhold(0, 0), "no trusted servers: no check");
        assert!(withhold(1, 0));
        assert!(withhold(3, 0));
        assert!(!withhold(3, 1));
        assert!(!withhold(1, 1));
    }

    /// A port nothing listens on: bound, then released.
    async fn closed_port() -> String {
        let listener = TcpListener::bind("127.0.0.1:0").await.expect("bind");
        let addr = listener.local_addr().expect("addr").to_string();
        drop(listener);
        addr
    }

    #[tokio::test]
    async fn a_closed_port_does_not_answer_an_open_listener_does() {
        let closed = closed_port().await;
        let open = TcpListener::bind("127.0.0.1:0").await.expect("bind");
        let open_addr = open.local_addr().expect("addr").to_string();
        let deadline = Duration::from_secs(5);
        assert_eq!(
            count_answering(std::slice::from_ref(&closed), deadline).await,
            0
        );
        assert_eq!(
            count_answering(&[closed.clone(), open_addr.clone()], deadline).await,
            1
        );
        assert_eq!(count_answering(&[], deadline).await, 0);
    }
}
