//! Who is connected, for the admin console: one entry per client from
//! login to goodbye, with what it is doing now.

use std::collections::HashMap;
use std::net::SocketAddr;
use std::sync::atomic::{AtomicI32, AtomicU8, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{Duration, SystemTime, UNIX_EPOCH};

use pgha_core::NodeId;

use crate::admin::{ClientRow, ClientState};
use crate::session::{Login, LoginParts};

/// What a session updates as it goes (atomics: no lock per transaction
/// except the node's, taken when the server connection changes; the
/// node's name is copied only when the node does).
#[derive(Debug)]
pub(crate) struct ClientStatus {
    state: AtomicU8,
    server_pid: AtomicI32,
    node: Mutex<Option<NodeId>>,
    entry: ClientEntry,
}

const IDLE: u8 = 0;
const ACTIVE: u8 = 1;
const WAITING: u8 = 2;

impl ClientStatus {
    pub(crate) fn new(entry: ClientEntry) -> Self {
        Self {
            state: AtomicU8::new(IDLE),
            server_pid: AtomicI32::new(0),
            node: Mutex::new(None),
            entry,
        }
    }

    /// Who the client is.
    pub(crate) fn entry(&self) -> &ClientEntry {
        &self.entry
    }

    /// Waiting for a server connection.
    pub(crate) fn waiting(&self) {
        self.state.store(WAITING, Ordering::Relaxed);
    }

    /// Running a transaction on `node`'s backend `pid`.
    pub(crate) fn active(&self, node: &NodeId, pid: i32) {
        self.state.store(ACTIVE, Ordering::Relaxed);
        if self.server_pid.swap(pid, Ordering::Relaxed) != pid {
            // In transaction pooling the backend changes on most
            // transactions but the node seldom does: no copy of its name
            // (an allocation) unless it did.
            let mut held = self.node.lock().unwrap_or_else(|p| p.into_inner());
            if held.as_ref() != Some(node) {
                *held = Some(node.clone());
            }
        }
    }

    /// Between transactions (its server, if kept, stays listed).
    pub(crate) fn idle(&self) {
        self.state.store(IDLE, Ordering::Relaxed);
    }

    /// Whether the session runs no transaction: idle (the relay marks it
    /// so once the client has the answer that ended its transaction), or
    /// waiting for the server of one that has not started (nothing of it
    /// has been sent anywhere: the relay marks a transaction active before
    /// its first bytes go to a server).
    pub(crate) fn runs_no_transaction(&self) -> bool {
        self.state.load(Ordering::Acquire) != ACTIVE
    }
}

/// Who one connected client is: its user and database are its login's
/// (shared with the session and with every client of the same login).
#[derive(Debug)]
pub(crate) struct ClientEntry {
    pub(crate) login: Login,
    pub(crate) peer: Option<SocketAddr>,
    /// When it connected, in nanoseconds since the Unix epoch: 8 bytes
    /// where a `SystemTime` takes 16 (see the size check below).
    connected_ns: u64,
}

// One status per client, in an Arc: with the Arc's counts 104 bytes, a
// 112-byte chunk for glibc's malloc (8 bytes more would make it 128).
const _: () = assert!(std::mem::size_of::<ClientStatus>() <= 88);

impl std::ops::Deref for ClientEntry {
    type Target = LoginParts;

    fn deref(&self) -> &LoginParts {
        &self.login
    }
}

impl ClientEntry {
    /// A client connecting now.
    pub(crate) fn new(login: Login, peer: Option<SocketAddr>) -> Self {
        let since_epoch = SystemTime::now()
            .duration_since(UNIX_EPOCH)
            .unwrap_or_default();
        Self {
            login,
            peer,
            connected_ns: u64::try_from(since_epoch.as_nanos()).unwrap_or(u64::MAX),
        }
    }

    /// When the client connected.
    pub(crate) fn connect_time(&self) -> SystemTime {
        UNIX_EPOCH + Duration::from_nanos(self.connected_ns)
    }

    /// Where the client connected from.
    pub(crate) fn peer(&self) -> crate::stream::Peer {
        self.peer
            .map_or(crate::stream::Peer::Unix, crate::stream::Peer::Tcp)
    }

    /// The `application_name` the client gave at startup.
    pub(crate) fn application_name(&self) -> Option<&str> {
        self.login.asked.get("application_name")
    }
}

/// Every connected client, by the pid the proxy gave it. The map holds a
/// pointer per client; what the console shows lives with the status the
/// session already shares.
#[derive(Debug, Default)]
pub(crate) struct Clients(Mutex<HashMap<i32, Arc<ClientStatus>>>);

impl Clients {
    pub(crate) fn insert(&self, pid: i32, entry: Arc<ClientStatus>) {
        self.0
            .lock()
            .unwrap_or_else(|p| p.into_inner())
            .insert(pid, entry);
    }

    pub(crate) fn remove(&self, pid: i32) {
        self.0
            .lock()
            .unwrap_or_else(|p| p.into_inner())
            .remove(&pid);
    }

    /// Rows for `SHOW CLIENTS`, by pid.
    pub(crate) fn rows(&self) -> Vec<ClientRow> {
        let map = self.0.lock().unwrap_or_else(|p| p.into_inner());
        let mut rows: Vec<ClientRow> = map
            .iter()
            .map(|(&pid, status)| {
                let c = &status.entry;
                let state = match status.state.load(Ordering::Relaxed) {
                    ACTIVE => ClientState::Active,
                    WAITING => ClientState::Waiting,
                    _ => ClientState::Idle,
                };
                let server_pid = status.server_pid.load(Ordering::Relaxed);
                ClientRow {
                    pid,
                    user: c.user.clone(),
                    database: c.database.clone(),
                    application_name: c.application_name().map(str::to_string),
                    state,
                    peer: c.peer,
                    connect_time: c.connect_time(),
                    request_time: None,
                    node: status
                        .node
                        .lock()
                        .unwrap_or_else(|p| p.into_inner())
                        .clone(),
                    server_pid: (server_pid != 0).then_some(server_pid),
                }
            })
            .collect();
        rows.sort_by_key(|r| r.pid);
        rows
    }
}
