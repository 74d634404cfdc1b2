//! Peer RPCs over TCP: connections per peer reused across calls and
//! clients, every call under a deadline, every frame tagged with the
//! [`SharedSecret`].

use std::collections::HashMap;
use std::future::Future;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use openraft::network::RaftNetworkFactory;
use openraft::BasicNode;
use serde::de::DeserializeOwned;
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::{TcpListener, TcpStream};

use super::frame::{self, Direction, Envelope};
use super::{
    dispatch, Connect, Inbox, Peer, Rpc, RpcReply, SharedSecret, Transport, TransportError,
};
use crate::types::{MemberId, TypeConfig};

/// Idle connections kept per peer for the next client (openraft opens a
/// client per quorum check and per election; the replication streams keep
/// theirs).
const IDLE_PER_PEER: usize = 4;

type Pool = Arc<Mutex<HashMap<MemberId, Vec<TcpStream>>>>;

/// Makes openraft's peer clients: TCP to each member's `BasicNode::addr`.
/// Clones share one pool of idle connections, so a client openraft makes
/// for one call (its quorum check, every lease renewal) reuses the
/// connection of the last one instead of connecting again.
#[derive(Debug, Clone)]
pub struct TcpNetwork {
    me: MemberId,
    secret: Arc<SharedSecret>,
    timeout: Duration,
    pool: Pool,
    next_id: Arc<AtomicU64>,
}

impl TcpNetwork {
    /// Clients for member `me`; no call (connect, send, answer) takes
    /// longer than `timeout`.
    pub fn new(me: MemberId, secret: SharedSecret, timeout: Duration) -> Self {
        TcpNetwork {
            me,
            secret: Arc::new(secret),
            timeout,
            pool: Pool::default(),
            next_id: Arc::new(AtomicU64::new(0)),
        }
    }
}

impl RaftNetworkFactory<TypeConfig> for TcpNetwork {
    type Network = Peer<TcpPeer>;

    async fn new_client(&mut self, target: MemberId, node: &BasicNode) -> Self::Network {
        Peer::new(target, self.connect(target, &node.addr), self.timeout)
    }
}

impl Connect for TcpNetwork {
    type Transport = TcpPeer;

    fn connect(&self, target: MemberId, addr: &str) -> TcpPeer {
        TcpPeer {
            me: self.me,
            target,
            addr: addr.to_string(),
            secret: self.secret.clone(),
            conn: None,
            pool: self.pool.clone(),
            next_id: self.next_id.clone(),
        }
    }
}

/// The TCP [`Transport`] to one member.
#[derive(Debug)]
pub struct TcpPeer {
    me: MemberId,
    target: MemberId,
    addr: String,
    secret: Arc<SharedSecret>,
    /// Only ever between whole exchanges: a call in flight holds it.
    conn: Option<TcpStream>,
    pool: Pool,
    next_id: Arc<AtomicU64>,
}

impl TcpPeer {
    fn pool(&self) -> std::sync::MutexGuard<'_, HashMap<MemberId, Vec<TcpStream>>> {
        self.pool.lock().unwrap_or_else(|p| p.into_inner())
    }

    /// Sends `rpc` on a kept connection, else on an idle one from the
    /// pool, else on a new one. A kept or pooled connection the peer has
    /// meanwhile closed (idle timeout, restart) fails at once: the call is
    /// then sent once more on a new connection (peer calls may be
    /// repeated: Raft's are, and views are replaced wholesale).
    async fn exchange(&mut self, rpc: Rpc) -> Result<RpcReply, TransportError> {
        let reused = self
            .conn
            .take()
            .or_else(|| self.pool().get_mut(&self.target)?.pop());
        if let Some(mut conn) = reused {
            match self.exchange_on(&mut conn, rpc.clone()).await {
                Ok(reply) => {
                    self.conn = Some(conn);
                    return Ok(reply);
                }
                Err(TransportError::Io(e)) => {
                    tracing::debug!(target_member = self.target, error = %e, "reused connection failed: reconnecting");
                }
                Err(e) => return Err(e),
            }
        }
        let mut conn = TcpStream::connect(&self.addr).await?;
        conn.set_nodelay(true)?;
        let reply = self.exchange_on(&mut conn, rpc).await?;
        self.conn = Some(conn);
        Ok(reply)
    }

    async fn exchange_on(
        &self,
        conn: &mut TcpStream,
        rpc: Rpc,
    ) -> Result<RpcReply, TransportError> {
        let id = self.next_id.fetch_add(1, Ordering::Relaxed) + 1;
        let frame = frame::seal(
            &self.secret,
            &Envelope {
                from: self.me,
                to: self.target,
                direction: Direction::Call,
                id,
                body: rpc,
            },
        )?;
        conn.write_all(&frame).await?;
        let answer: Envelope<RpcReply> = read_frame(conn, &self.secret).await?;
        let expected = (self.target, self.me, Direction::Answer, id);
        let got = (answer.from, answer.to, answer.direction, answer.id);
        if got != expected {
            return Err(TransportError::Unexpected(format!(
                "answer {got:?}, expected {expected:?}"
            )));
        }
        Ok(answer.body)
    }
}

impl Drop for TcpPeer {
    fn drop(&mut self) {
        // Whole exchanges only (a cancelled call dropped its connection).
        if let Some(conn) = self.conn.take() {
            let target = self.target;
            let mut pool = self.pool();
            let idle = pool.entry(target).or_default();
            if idle.len() < IDLE_PER_PEER {
                idle.push(conn);
            }
        }
    }
}

impl Transport for TcpPeer {
    async fn call(&mut self, rpc: Rpc, deadline: Duration) -> Result<RpcReply, TransportError> {
        match tokio::time::timeout(deadline, self.exchange(rpc)).await {
            Ok(result) => result,
            Err(_) => Err(TransportError::Deadline(deadline)),
        }
    }
}

async fn read_frame<T: DeserializeOwned>(
    conn: &mut TcpStream,
    secret: &SharedSecret,
) -> Result<Envelope<T>, TransportError> {
    let len = frame::check_length(conn.read_u32().await?)?;
    let mut body = vec![0; len];
    conn.read_exact(&mut body).await?;
    Ok(frame::open(secret, &body)?)
}

/// Answers peers' calls to member `me` on `listener` until `shutdown`
/// completes. A connection that sends a frame not tagged with `secret`, or
/// addressed to another member, is closed unanswered: it never reaches
/// openraft or the probe views. Idle connections are closed after `idle`.
pub async fn serve(
    listener: TcpListener,
    inbox: Inbox,
    me: MemberId,
    secret: SharedSecret,
    idle: Duration,
    shutdown: impl Future<Output = ()>,
) {
    let secret = Arc::new(secret);
    let mut shutdown = std::pin::pin!(shutdown);
    loop {
        let accepted = tokio::select! {
            accepted = listener.accept() => accepted,
            () = &mut shutdown => return,
        };
        match accepted {
            Ok((conn, peer)) => {
                let inbox = inbox.clone();
                let secret = secret.clone();
                tokio::spawn(async move {
                    if let Err(e) = answer_calls(conn, &inbox, me, &secret, idle).await {
                        tracing::warn!(%peer, error = %e, "peer connection closed");
                    }
                });
            }
            Err(e) => {
                tracing::warn!(error = %e, "accepting a peer connection failed");
                // Out of descriptors and the like: do not spin.
                tokio::time::sleep(Duration::from_millis(50)).await;
            }
        }
    }
}

async fn answer_calls(
    mut conn: TcpStream,
    inbox: &Inbox,
    me: MemberId,
    secret: &SharedSecret,
    idle: Duration,
) -> Result<(), TransportError> {
    conn.set_nodelay(true)?;
    loop {
        let call: Envelope<Rpc> =
            match tokio::time::timeout(idle, read_frame(&mut conn, secret)).await {
                Err(_) => return Ok(()),
                Ok(Err(TransportError::Io(e))) if e.kind() == std::io::ErrorKind::UnexpectedEof => {
                    return Ok(())
                }
                Ok(call) => call?,
            };
        if call.to != me || call.direction != Direction::Call {
            return Err(TransportError::Unexpected(format!(
                "call for member {} ({:?}) reached member {me}",
                call.to, call.direction
            )));
        }
        let body = dispatch(inbox, call.from, call.body).await;
        let frame = frame::seal(
            secret,
            &Envelope {
                from: me,
                to: call.from,
                direction: Direction::Answer,
                id: call.id,
                body,
            },
        )?;
        conn.write_all(&frame).await?;
    }
}
