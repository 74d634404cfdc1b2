//! Peer RPCs: what openraft sends between members, and the members' probe
//! views, over any [`Transport`] (TCP with HMAC-tagged frames in [`tcp`],
//! an in-memory network in [`crate::testing`]).

pub mod frame;
pub mod tcp;

use std::future::Future;
use std::sync::{Arc, Mutex};
use std::time::Duration;

use openraft::error::{
    InstallSnapshotError, NetworkError, RPCError, RaftError, RemoteError, Unreachable,
};
use openraft::network::{Backoff, RPCOption, RaftNetwork};
use openraft::raft::{
    AppendEntriesRequest, AppendEntriesResponse, InstallSnapshotRequest, InstallSnapshotResponse,
    VoteRequest, VoteResponse,
};
use openraft::BasicNode;
use pgha_core::{NodeId, Observation};
use serde::{Deserialize, Serialize};
use tokio::time::Instant;

pub use frame::{FrameError, SharedSecret};

use crate::ballot::Ballot;
use crate::types::{MemberId, Raft, TypeConfig};
use crate::views::ViewBook;

/// A call from one member to another: openraft's, or probe views.
#[derive(Debug, Clone, Serialize, Deserialize)]
#[allow(clippy::large_enum_variant)]
pub enum Rpc {
    /// Log replication and heartbeats.
    Append(AppendEntriesRequest<TypeConfig>),
    /// A candidate asks for a vote.
    Vote(VoteRequest<MemberId>),
    /// A chunk of a snapshot.
    Snapshot(InstallSnapshotRequest<TypeConfig>),
    /// The sender's latest probe observation of each PostgreSQL node it
    /// probes (see [`crate::QuorumProbe`]).
    Views {
        /// Node and what the sender's probe last saw of it.
        observations: Vec<(NodeId, Observation)>,
    },
}

/// The answer to an [`Rpc`].
#[derive(Debug, Serialize, Deserialize)]
pub enum RpcReply {
    /// To [`Rpc::Append`].
    Append(Result<AppendEntriesResponse<MemberId>, RaftError<MemberId>>),
    /// To [`Rpc::Vote`].
    Vote(Result<VoteResponse<MemberId>, RaftError<MemberId>>),
    /// To [`Rpc::Snapshot`].
    Snapshot(Result<InstallSnapshotResponse<MemberId>, RaftError<MemberId, InstallSnapshotError>>),
    /// To [`Rpc::Views`]: received.
    Views,
}

/// Why a call got no answer.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum TransportError {
    /// No answer within the call's deadline.
    #[error("no answer within {0:?}")]
    Deadline(Duration),
    /// The connection failed.
    #[error("connection: {0}")]
    Io(#[from] std::io::Error),
    /// A frame was refused (unauthenticated, too long, malformed).
    #[error(transparent)]
    Frame(#[from] FrameError),
    /// The peer answered something that is not the answer to this call.
    #[error("unexpected answer: {0}")]
    Unexpected(String),
    /// The simulated network dropped the call or the member is down.
    #[error("unreachable")]
    Unreachable,
}

/// Carries calls to one member.
///
/// # Contract
///
/// `call` returns within `deadline`; an answer it returns is the target's
/// answer to this very call.
pub trait Transport: Send + Sync + 'static {
    /// Sends `rpc` and waits at most `deadline` for its answer.
    fn call(
        &mut self,
        rpc: Rpc,
        deadline: Duration,
    ) -> impl Future<Output = Result<RpcReply, TransportError>> + Send;
}

/// Opens [`Transport`]s for a member's own calls (its probe views);
/// openraft's clients come from the same network's
/// [`RaftNetworkFactory`](openraft::network::RaftNetworkFactory) side.
pub trait Connect {
    /// The transport to one peer.
    type Transport: Transport;

    /// A transport from this member to `target` at `addr` (`host:port`).
    /// Connects lazily: never fails here.
    fn connect(&self, target: MemberId, addr: &str) -> Self::Transport;
}

/// Where a member's incoming calls go: its openraft and its probe views.
/// Cheap to clone; from [`crate::Member::inbox`].
#[derive(Clone)]
pub struct Inbox {
    pub(crate) raft: Raft,
    pub(crate) views: Arc<ViewBook>,
    /// When a leader and a candidate were last heard from.
    pub(crate) heard: Arc<Mutex<Heard>>,
    /// Whether a vote may be granted now (shared with the lease task).
    pub(crate) ballot: Arc<Mutex<Ballot>>,
}

/// When this member last heard from a leader and from a candidate (what a
/// witness needs to know whether to step in, see `witness::rescue`).
#[derive(Debug, Clone, Copy)]
pub(crate) struct Heard {
    /// An append this member accepted as coming from the current leader.
    pub leader: Instant,
    /// A vote request.
    pub candidate: Option<Instant>,
}

impl Heard {
    pub fn new() -> Arc<Mutex<Heard>> {
        Arc::new(Mutex::new(Heard {
            leader: Instant::now(),
            candidate: None,
        }))
    }
}

impl Inbox {
    fn heard(&self) -> std::sync::MutexGuard<'_, Heard> {
        self.heard.lock().unwrap_or_else(|p| p.into_inner())
    }

    fn ballot(&self) -> std::sync::MutexGuard<'_, Ballot> {
        self.ballot.lock().unwrap_or_else(|p| p.into_inner())
    }
}

impl std::fmt::Debug for Inbox {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Inbox").finish_non_exhaustive()
    }
}

/// Hands a call from member `from` (as its authenticated frame names it)
/// to the local openraft or view book and returns the answer.
pub async fn dispatch(inbox: &Inbox, from: MemberId, rpc: Rpc) -> RpcReply {
    let raft = &inbox.raft;
    match rpc {
        Rpc::Append(req) => {
            let answer = raft.append_entries(req).await;
            if matches!(answer, Ok(ref a) if !matches!(a, AppendEntriesResponse::HigherVote(_))) {
                inbox.heard().leader = Instant::now();
            }
            RpcReply::Append(answer)
        }
        Rpc::Vote(req) => {
            let answer = vote(inbox, req).await;
            let mut heard = inbox.heard();
            heard.candidate = Some(Instant::now());
            if matches!(answer, Ok(ref v) if v.vote_granted) {
                // A candidate this member voted for may well win: that is
                // no time for a witness's rescue campaign, which would
                // depose it (found in a whole-group restart: the witness
                // and the host it had just elected took turns for 15 s).
                heard.leader = Instant::now();
            }
            RpcReply::Vote(answer)
        }
        Rpc::Snapshot(req) => RpcReply::Snapshot(raft.install_snapshot(req).await),
        Rpc::Views { observations } => {
            inbox.views.receive(from, observations);
            RpcReply::Views
        }
    }
}

/// A vote request, under the [`Ballot`]'s rules: held while this member
/// has just started, refused while it holds a valid lease (as openraft's
/// own follower lease refuses: not granted, with this member's vote).
async fn vote(
    inbox: &Inbox,
    req: VoteRequest<MemberId>,
) -> Result<VoteResponse<MemberId>, RaftError<MemberId>> {
    let hold = inbox.ballot().hold_until(Instant::now());
    if let Some(until) = hold {
        tokio::time::sleep_until(until).await;
    }
    if !inbox.ballot().begin_vote(Instant::now()) {
        let mine = inbox.raft.metrics().borrow().vote;
        tracing::debug!(candidate = ?req.vote, "vote refused: this member's lease is valid");
        return Ok(VoteResponse::new(mine, None, false));
    }
    let answer = inbox.raft.vote(req).await;
    inbox.ballot().end_vote(Instant::now());
    answer
}

/// openraft's client for one peer, over a [`Transport`].
#[derive(Debug)]
pub struct Peer<T> {
    target: MemberId,
    transport: T,
    timeout: Duration,
}

impl<T: Transport> Peer<T> {
    /// A client for `target`; no call waits longer than `timeout`.
    pub fn new(target: MemberId, transport: T, timeout: Duration) -> Self {
        Peer {
            target,
            transport,
            timeout,
        }
    }

    async fn call<E: std::error::Error>(
        &mut self,
        rpc: Rpc,
        option: &RPCOption,
    ) -> Result<RpcReply, RPCError<MemberId, BasicNode, E>> {
        let deadline = option.hard_ttl().min(self.timeout);
        match self.transport.call(rpc, deadline).await {
            Ok(reply) => Ok(reply),
            Err(e @ TransportError::Unexpected(_)) => Err(RPCError::Network(NetworkError::new(&e))),
            Err(e) => {
                tracing::debug!(target_member = self.target, error = %e, "peer call failed");
                Err(RPCError::Unreachable(Unreachable::new(&e)))
            }
        }
    }

    fn unexpected<E: std::error::Error>(reply: &RpcReply) -> RPCError<MemberId, BasicNode, E> {
        let e = TransportError::Unexpected(format!("{reply:?}"));
        RPCError::Network(NetworkError::new(&e))
    }
}

impl<T: Transport> RaftNetwork<TypeConfig> for Peer<T> {
    async fn append_entries(
        &mut self,
        rpc: AppendEntriesRequest<TypeConfig>,
        option: RPCOption,
    ) -> Result<AppendEntriesResponse<MemberId>, RPCError<MemberId, BasicNode, RaftError<MemberId>>>
    {
        match self.call(Rpc::Append(rpc), &option).await? {
            RpcReply::Append(Ok(r)) => Ok(r),
            RpcReply::Append(Err(e)) => Err(RemoteError::new(self.target, e).into()),
            other => Err(Self::unexpected(&other)),
        }
    }

    async fn install_snapshot(
        &mut self,
        rpc: InstallSnapshotRequest<TypeConfig>,
        option: RPCOption,
    ) -> Result<
        InstallSnapshotResponse<MemberId>,
        RPCError<MemberId, BasicNode, RaftError<MemberId, InstallSnapshotError>>,
    > {
        match self.call(Rpc::Snapshot(rpc), &option).await? {
            RpcReply::Snapshot(Ok(r)) => Ok(r),
            RpcReply::Snapshot(Err(e)) => Err(RemoteError::new(self.target, e).into()),
            other => Err(Self::unexpected(&other)),
        }
    }

    async fn vote(
        &mut self,
        rpc: VoteRequest<MemberId>,
        option: RPCOption,
    ) -> Result<VoteResponse<MemberId>, RPCError<MemberId, BasicNode, RaftError<MemberId>>> {
        match self.call(Rpc::Vote(rpc), &option).await? {
            RpcReply::Vote(Ok(r)) => Ok(r),
            RpcReply::Vote(Err(e)) => Err(RemoteError::new(self.target, e).into()),
            other => Err(Self::unexpected(&other)),
        }
    }

    fn backoff(&self) -> Backoff {
        // Retry an unreachable peer about once per heartbeat-and-a-bit, so
        // a healed link is used again quickly.
        Backoff::new(std::iter::repeat(Duration::from_millis(200)))
    }
}
