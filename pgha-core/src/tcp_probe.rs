//! [`TcpProbe`]: is anything listening on the node's port?

use std::io::ErrorKind as IoKind;
use std::time::Duration;

use async_trait::async_trait;
use tokio::net::TcpStream;

use crate::{FailureReason, Health, HealthProbe, NodeState, Observation, Role};

/// A [`HealthProbe`] that only opens a TCP connection to the node's
/// `host:port` (name resolution included in the timeout) and closes it.
///
/// # What it cannot see
///
/// **A TCP probe cannot see the role.** A node that accepts connections is
/// reported healthy *in the role pgha already believes*: `in_recovery` is
/// true unless the node is the model's [`Role::Primary`]. So, with this
/// probe:
///
/// * a stale primary (a fenced node that came back writable) is **not
///   detected**: it is reported as a standby;
/// * no WAL positions are reported, and a healthy observation clears the
///   ones the model had, so promotion is **not lag-aware**: every standby
///   looks fully caught up;
/// * a PostgreSQL that accepts connections but cannot answer queries
///   (starting up, out of connections, frozen) counts as healthy.
///
/// Use it where nothing better is possible (no monitoring credentials), or
/// to test the failover machinery; use an SQL probe in production.
///
/// | outcome | observation |
/// |---|---|
/// | connected | `Healthy` (role as believed) |
/// | connection refused | `Failed { ConnectRefused }` |
/// | no answer within the timeout | `Failed { Timeout }` |
/// | anything else (unreachable, name not found) | `Failed { ConnectionLost }` |
///
/// ```
/// use pgha_core::{FailureReason, HealthProbe, NodeState, Observation, Role, TcpProbe};
/// use std::time::Duration;
///
/// # #[tokio::main(flavor = "current_thread")] async fn main() -> std::io::Result<()> {
/// let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await?;
/// let port = listener.local_addr()?.port();
/// let standby = NodeState::new("b", Role::Standby, "127.0.0.1", port);
/// let seen = TcpProbe.probe(&standby, Duration::from_secs(1)).await;
/// assert!(matches!(seen, Observation::Healthy(ref h) if h.in_recovery));
///
/// drop(listener);
/// let seen = TcpProbe.probe(&standby, Duration::from_secs(1)).await;
/// assert_eq!(seen, Observation::Failed { reason: FailureReason::ConnectRefused });
/// # Ok(()) }
/// ```
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct TcpProbe;

#[async_trait]
impl HealthProbe for TcpProbe {
    async fn probe(&self, node: &NodeState, timeout: Duration) -> Observation {
        let address = (node.host.as_str(), node.port);
        let reason = match tokio::time::timeout(timeout, TcpStream::connect(address)).await {
            Ok(Ok(_stream)) => {
                return Observation::Healthy(Health {
                    // Not observed: what the model already believes.
                    in_recovery: node.role != Role::Primary,
                    ..Health::default()
                });
            }
            Ok(Err(error)) => {
                tracing::debug!(node = %node.id, %error, "tcp probe failed");
                match error.kind() {
                    IoKind::ConnectionRefused => FailureReason::ConnectRefused,
                    IoKind::TimedOut => FailureReason::Timeout,
                    _ => FailureReason::ConnectionLost,
                }
            }
            Err(_) => FailureReason::Timeout,
        };
        Observation::Failed { reason }
    }

    fn name(&self) -> &str {
        "tcp"
    }
}
