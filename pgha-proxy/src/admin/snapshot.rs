//! What the admin console shows: plain data the session copies out of the
//! proxy's live state before answering, so rendering is pure and the
//! console does not depend on how pools are built.

use std::collections::{BTreeMap, BTreeSet};
use std::net::SocketAddr;
use std::sync::Arc;
use std::time::{Duration, SystemTime};

use pgha_core::{NodeId, Topology};

/// Everything one admin query string can show, taken before it runs.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct AdminSnapshot {
    /// The cluster as the proxy routes by it.
    pub topology: Arc<Topology>,
    /// When each node's [`Status`](pgha_core::Status) last changed, as the
    /// proxy saw it (nodes missing here show NULL).
    pub status_since: BTreeMap<NodeId, SystemTime>,
    /// Whether reads are load-balanced to standbys at all.
    pub load_balance: bool,
    /// Standbys further behind than this get no reads (`None`: no limit).
    pub max_standby_lag_bytes: Option<u64>,
    /// Standbys replaying later than this get no reads (`None`: no limit).
    pub max_standby_lag_time: Option<Duration>,
    /// Standbys suspected of not answering: reads avoid them until the
    /// monitor probes them healthy.
    pub suspected: BTreeSet<NodeId>,
    /// One row per pool.
    pub pools: Vec<PoolRow>,
    /// One row per client connection (admin sessions included).
    pub clients: Vec<ClientRow>,
    /// One row per server connection.
    pub servers: Vec<ServerRow>,
    /// Counters per node.
    pub stats: Vec<StatsRow>,
    /// The settings, in the order to show them.
    pub config: Vec<ConfigRow>,
    /// Whether the proxy is paused (`PAUSE` without `RESUME` yet).
    pub paused: bool,
    /// Who leads the pgha nodes and holds the VIP.
    pub membership: super::Membership,
}

impl AdminSnapshot {
    /// A snapshot of `topology` with no pool, client, server, counter or
    /// setting, load balancing on without a lag limit, no node suspected,
    /// not paused.
    pub fn new(topology: Arc<Topology>) -> Self {
        AdminSnapshot {
            topology,
            status_since: BTreeMap::new(),
            load_balance: true,
            max_standby_lag_bytes: None,
            max_standby_lag_time: None,
            suspected: BTreeSet::new(),
            pools: Vec::new(),
            clients: Vec::new(),
            servers: Vec::new(),
            stats: Vec::new(),
            config: Vec::new(),
            paused: false,
            membership: super::Membership::default(),
        }
    }
}

/// One pool: the server connections of one (node, database, user).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct PoolRow {
    /// The node the pool connects to.
    pub node: NodeId,
    /// Database name.
    pub database: String,
    /// User name.
    pub user: String,
    /// Pooling mode (`session`, `transaction`…).
    pub mode: String,
    /// Clients linked to a server connection of this pool.
    pub cl_active: u64,
    /// Clients waiting for a server connection of this pool.
    pub cl_waiting: u64,
    /// Server connections linked to a client.
    pub sv_active: u64,
    /// Server connections idle and ready.
    pub sv_idle: u64,
    /// Server connections still logging in.
    pub sv_login: u64,
    /// How long the oldest waiting client has waited.
    pub max_wait: Duration,
}

/// What a client connection is doing.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum ClientState {
    /// Linked to a server connection (a request or transaction runs).
    Active,
    /// Between requests, holding no server connection.
    Idle,
    /// Has a request and waits for a server connection (or for `RESUME`).
    Waiting,
}

impl ClientState {
    /// The word `SHOW CLIENTS` shows.
    pub fn as_str(self) -> &'static str {
        match self {
            ClientState::Active => "active",
            ClientState::Idle => "idle",
            ClientState::Waiting => "waiting",
        }
    }
}

/// One client connection.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ClientRow {
    /// The process id the proxy gave this client (its `BackendKeyData`).
    pub pid: i32,
    /// User name.
    pub user: String,
    /// Database name.
    pub database: String,
    /// The client's `application_name`, if it sent one.
    pub application_name: Option<String>,
    /// What it is doing.
    pub state: ClientState,
    /// Its address (`None` over a Unix socket).
    pub peer: Option<SocketAddr>,
    /// When it connected.
    pub connect_time: SystemTime,
    /// When its current or last request began.
    pub request_time: Option<SystemTime>,
    /// The node of the server connection it is linked to.
    pub node: Option<NodeId>,
    /// That server connection's backend process id.
    pub server_pid: Option<i32>,
}

/// What a server connection is doing.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum ServerState {
    /// Connecting or authenticating.
    Login,
    /// In the pool, ready for a client.
    Idle,
    /// Linked to a client.
    Active,
}

impl ServerState {
    /// The word `SHOW SERVERS` shows.
    pub fn as_str(self) -> &'static str {
        match self {
            ServerState::Login => "login",
            ServerState::Idle => "idle",
            ServerState::Active => "active",
        }
    }
}

/// One server connection.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ServerRow {
    /// The node it is connected to.
    pub node: NodeId,
    /// Database name.
    pub database: String,
    /// User name.
    pub user: String,
    /// What it is doing.
    pub state: ServerState,
    /// The backend's process id (from its `BackendKeyData`; `None` while
    /// logging in).
    pub backend_pid: Option<i32>,
    /// When it was connected.
    pub connect_time: SystemTime,
    /// When it was last handed to a client.
    pub request_time: Option<SystemTime>,
    /// The proxy pid of the client it is linked to.
    pub client_pid: Option<i32>,
}

/// Counters for one node since the proxy started.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct StatsRow {
    /// The node.
    pub node: NodeId,
    /// Transactions run (a statement outside a transaction counts as one).
    pub xacts: u64,
    /// Statements run.
    pub queries: u64,
    /// Statements sent here because they only read: load-balanced reads on
    /// a standby, reads on the primary (pgpool's `select_cnt`).
    pub reads: u64,
    /// Bytes received from clients for this node.
    pub received: u64,
    /// Bytes sent to clients from this node.
    pub sent: u64,
    /// Time spent in transactions.
    pub xact_time: Duration,
    /// Time spent running statements.
    pub query_time: Duration,
    /// Time clients waited for a server connection of this node.
    pub wait_time: Duration,
}

impl StatsRow {
    /// Zero counters for `node`.
    pub fn new(node: NodeId) -> Self {
        StatsRow {
            node,
            xacts: 0,
            queries: 0,
            reads: 0,
            received: 0,
            sent: 0,
            xact_time: Duration::ZERO,
            query_time: Duration::ZERO,
            wait_time: Duration::ZERO,
        }
    }
}

/// One setting.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ConfigRow {
    /// Its name.
    pub key: String,
    /// Its current value, as configured.
    pub value: String,
    /// Its default (`None` if it has none).
    pub default: Option<String>,
    /// Whether `RELOAD` applies a change to it.
    pub changeable: bool,
}
