//! Peer RPCs over TCP: one connection per peer, reused, every call under a
//! deadline, every frame tagged with the [`SharedSecret`].

use std::future::Future;
use std::sync::Arc;
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

/// Makes openraft's peer clients: TCP to each member's `BasicNode::addr`.
#[derive(Debug, Clone)]
pub struct TcpNetwork {
    me: MemberId,
    secret: Arc<SharedSecret>,
    timeout: Duration,
}

impl TcpNetwork {
    /// Clients for member `me`; no call (connect, send, answer) takes
    /// longer than `timeout`.
    pub fn new(me: MemberId, secret: SharedSecret, timeout: Duration) -> Self {
        TcpNetwork {
            me,
            secret: Arc::new(secret),
            timeout,
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
            next_id: 0,
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
    conn: Option<TcpStream>,
    next_id: u64,
}

impl TcpPeer {
    async fn exchange(&mut self, rpc: Rpc) -> Result<RpcReply, TransportError> {
        self.next_id += 1;
        let id = self.next_id;
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
        let conn = match &mut self.conn {
            Some(conn) => conn,
            none => {
                let conn = TcpStream::connect(&self.addr).await?;
                conn.set_nodelay(true)?;
                none.insert(conn)
            }
        };
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

impl Transport for TcpPeer {
    async fn call(&mut self, rpc: Rpc, deadline: Duration) -> Result<RpcReply, TransportError> {
        let result = match tokio::time::timeout(deadline, self.exchange(rpc)).await {
            Ok(result) => result,
            Err(_) => Err(TransportError::Deadline(deadline)),
        };
        if result.is_err() {
            // The stream may hold half a frame or a late answer: start over.
            self.conn = None;
        }
        result
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
