//! Server connection pools: one per (node, database, user, other startup
//! options), bounded, with a queue of waiting clients.
//!
//! A connection is either checked out by one session or idle in its pool.
//! A connection put back goes straight to the oldest waiting client if
//! there is one, so a full pool serves its queue in order.

use std::collections::{HashMap, VecDeque};
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use pgha_core::NodeId;
use tokio::sync::{oneshot, OwnedSemaphorePermit, Semaphore};

use crate::admin::{ServerRow, ServerState};
use crate::frame::FrameReader;
use crate::metrics::{NodeLabel, NodeRecorder, ProxyMetrics};
use crate::params::Params;
use crate::prepared::ServerStatements;
use crate::stream::{ReadHalf, WriteHalf};
use crate::{server, CancelTarget, Error, ProxyConfig};

mod size;

/// What a pool is for. Parameters pgha keeps consistent itself
/// ([`crate::params::TRACKED`]) are not part of it; every other startup
/// option is, since a server connection cannot change it later.
#[derive(Debug, Clone, PartialEq, Eq, Hash)]
pub struct PoolKey {
    /// The node.
    pub node: NodeId,
    /// Database name.
    pub database: String,
    /// User name on the server.
    pub user: String,
    /// Other startup parameters, `name=value` joined by NUL, sorted.
    pub options: String,
}

/// A logged-in server connection.
#[derive(Debug)]
pub struct ServerConnection {
    pub(crate) reader: FrameReader<ReadHalf>,
    pub(crate) writer: WriteHalf,
    pub(crate) node: NodeId,
    /// Shared with the cancel registry: a client switching connections
    /// registers a pointer, not a copy.
    pub(crate) cancel: Arc<CancelTarget>,
    /// The server's values of the tracked parameters.
    pub(crate) params: Params,
    /// Proxy statements prepared on it.
    pub(crate) statements: ServerStatements,
    /// Its unnamed statement, as far as the proxy knows.
    pub(crate) unnamed: crate::prepared::ServerUnnamed,
    created: Instant,
    connected_at: std::time::SystemTime,
    idle_since: Instant,
    _permit: size::PoolPermit,
}

impl ServerConnection {
    /// Whether the server closed it (or sent something unasked, which
    /// only a server about to close does) while it sat idle.
    fn closed_while_idle(&mut self) -> bool {
        if !self.reader.buffered().is_empty() {
            return true;
        }
        let mut byte = [0u8; 1];
        match self.reader.get_mut().try_read(&mut byte) {
            Err(e) => e.kind() != std::io::ErrorKind::WouldBlock,
            Ok(_) => true,
        }
    }
}

#[derive(Debug, Default)]
struct Inner {
    /// Boxed: a connection moves between pool and session as a pointer,
    /// and a session holding none keeps no room for one.
    #[allow(clippy::vec_box)]
    idle: Vec<Box<ServerConnection>>,
    waiters: VecDeque<oneshot::Sender<Box<ServerConnection>>>,
}

/// Counters of one pool, for the admin console and metrics.
#[derive(Debug, Default)]
pub struct PoolStats {
    /// Checkouts served.
    pub checkouts: AtomicU64,
    /// Checkouts that had to wait for a connection.
    pub waits: AtomicU64,
    /// Total time spent waiting, in microseconds.
    pub wait_us: AtomicU64,
    /// Server connections opened.
    pub connects: AtomicU64,
    /// Transactions (or lone statements) run.
    pub transactions: AtomicU64,
    /// Of those, reads balanced to this node as a standby.
    pub reads: AtomicU64,
    /// Queries (simple queries and Executes) relayed.
    pub queries: AtomicU64,
    /// Total transaction time, in microseconds.
    pub transaction_us: AtomicU64,
}

enum Ready {
    Idle(Box<ServerConnection>),
    Room(OwnedSemaphorePermit),
    Queued(oneshot::Receiver<Box<ServerConnection>>),
}

/// One pool.
#[derive(Debug)]
pub struct Pool {
    /// What it is for.
    pub key: PoolKey,
    /// The node's label in metrics (built once).
    pub label: NodeLabel,
    host: String,
    port: u16,
    startup: Vec<(String, String)>,
    size: size::Size,
    /// What the server reported at the last login (server_version…).
    reported: Mutex<Vec<(String, String)>>,
    permits: Arc<Semaphore>,
    inner: Mutex<Inner>,
    /// Its counters.
    pub stats: PoolStats,
    /// Its node's per-transaction metrics.
    pub recorder: NodeRecorder,
}

impl Pool {
    fn lock(&self) -> std::sync::MutexGuard<'_, Inner> {
        self.inner.lock().unwrap_or_else(|p| p.into_inner())
    }

    /// A connection: an idle one, a new one while under the size limit
    /// (connected and logged in within `connect_timeout`), or the next one
    /// put back, waiting until `deadline`.
    pub async fn get(
        &self,
        config: &ProxyConfig,
        metrics: &ProxyMetrics,
        deadline: tokio::time::Instant,
        connect_timeout: Duration,
    ) -> Result<Box<ServerConnection>, Error> {
        self.stats.checkouts.fetch_add(1, Ordering::Relaxed);
        let waiter = match self.take_or_queue() {
            Ready::Idle(conn) => return Ok(conn),
            Ready::Room(permit) => {
                return self.connect(config, metrics, permit, connect_timeout).await
            }
            Ready::Queued(waiter) => waiter,
        };
        self.stats.waits.fetch_add(1, Ordering::Relaxed);
        let started = Instant::now();
        let result = tokio::select! {
            conn = waiter => conn.map_err(|_| Error::PoolTimeout { waited: started.elapsed() }),
            // A connection closed elsewhere frees room for a new one.
            permit = self.permits.clone().acquire_owned() => match permit {
                Ok(permit) => self.connect(config, metrics, permit, connect_timeout).await,
                Err(_) => Err(Error::PoolTimeout { waited: started.elapsed() }),
            },
            () = tokio::time::sleep_until(deadline) => Err(Error::PoolTimeout { waited: started.elapsed() }),
        };
        self.stats
            .wait_us
            .fetch_add(started.elapsed().as_micros() as u64, Ordering::Relaxed);
        metrics.pool_wait(&self.label, started.elapsed());
        if let Err(Error::PoolTimeout { .. }) = &result {
            metrics.pool_timeout(&self.label);
        }
        result
    }

    /// An idle connection if there is one: a transaction's usual checkout,
    /// with no future to build (no allocation, no clock read).
    pub fn try_idle(&self) -> Option<Box<ServerConnection>> {
        let conn = self.take_idle(&mut self.lock())?;
        self.stats.checkouts.fetch_add(1, Ordering::Relaxed);
        Some(conn)
    }

    fn take_idle(&self, inner: &mut Inner) -> Option<Box<ServerConnection>> {
        while let Some(mut conn) = inner.idle.pop() {
            // One non-blocking read per checkout: a server that died or
            // restarted since must not get the client's statement (which
            // then fails, though it never ran) when a live connection is a
            // connect away.
            if !conn.closed_while_idle() {
                return Some(conn);
            }
            tracing::debug!(node = %self.key.node, "dropping a pooled connection the server closed");
        }
        None
    }

    /// Without waiting: an idle connection, room for a new one, or a place
    /// in the queue.
    fn take_or_queue(&self) -> Ready {
        let mut inner = self.lock();
        if let Some(conn) = self.take_idle(&mut inner) {
            return Ready::Idle(conn);
        }
        match self.permits.clone().try_acquire_owned() {
            Ok(permit) => Ready::Room(permit),
            Err(_) => {
                let (tx, rx) = oneshot::channel();
                inner.waiters.push_back(tx);
                Ready::Queued(rx)
            }
        }
    }

    async fn connect(
        &self,
        config: &ProxyConfig,
        metrics: &ProxyMetrics,
        permit: OwnedSemaphorePermit,
        timeout: Duration,
    ) -> Result<Box<ServerConnection>, Error> {
        self.stats.connects.fetch_add(1, Ordering::Relaxed);
        let conn = server::connect(
            &self.host,
            self.port,
            &self.startup,
            &config.server_auth,
            config.server_tls.as_ref(),
            timeout,
        )
        .await;
        metrics.server_connect(&self.label, conn.is_ok());
        let conn = conn?;
        if !conn.leftover.is_empty() {
            return Err(Error::Protocol(
                "server sent data after ReadyForQuery".into(),
            ));
        }
        let mut params = Params::default();
        for (name, value) in &conn.params {
            params.set(name, value);
        }
        *self.reported.lock().unwrap_or_else(|p| p.into_inner()) = conn.params.clone();
        let (read, writer) = conn.stream.into_split();
        let now = Instant::now();
        Ok(Box::new(ServerConnection {
            reader: FrameReader::new(read, config.max_message).streaming_over(crate::frame::CHUNK),
            writer,
            node: self.key.node.clone(),
            cancel: Arc::new(CancelTarget {
                node: self.key.node.clone(),
                host: self.host.clone(),
                port: self.port,
                key: conn.key,
                owner: std::sync::atomic::AtomicI32::new(0),
            }),
            params,
            statements: ServerStatements::new(),
            unnamed: None,
            created: now,
            connected_at: std::time::SystemTime::now(),
            idle_since: now,
            _permit: self.size.hold(permit),
        }))
    }

    /// Returns a connection that is between transactions. It goes to the
    /// oldest waiting client, or to the idle list. `now` is the caller's
    /// clock reading (a transaction's end).
    pub fn put(&self, mut conn: Box<ServerConnection>, lifetime: Duration, now: Instant) {
        if now.saturating_duration_since(conn.created) >= lifetime {
            return; // closed; its permit lets a fresh one be opened
        }
        let mut inner = self.lock();
        while let Some(waiter) = inner.waiters.pop_front() {
            match waiter.send(conn) {
                Ok(()) => return,
                // That client gave up waiting.
                Err(back) => conn = back,
            }
        }
        conn.idle_since = now;
        inner.idle.push(conn);
    }

    /// Closes idle connections past `lifetime`, and past `idle_timeout`
    /// while more than `keep` connections are open (`min_pool_size`, as
    /// PgBouncer keeps them); all of them when `all`.
    pub fn evict(&self, idle_timeout: Duration, lifetime: Duration, keep: usize, all: bool) {
        self.size.settle(&self.permits);
        let mut inner = self.lock();
        inner.waiters.retain(|w| !w.is_closed());
        let mut open = self.size.open(&self.permits);
        // The list is LIFO, so the longest idle come first: those kept for
        // `keep` are the most recently used.
        inner.idle.retain(|c| {
            let close = all
                || c.created.elapsed() >= lifetime
                || (c.idle_since.elapsed() >= idle_timeout && open > keep);
            if close {
                open = open.saturating_sub(1);
            }
            !close
        });
    }

    /// Room for the connections missing to have `min` open (idle, lent or
    /// being opened), never above the pool's size: a permit each, taken
    /// now so that the next upkeep round does not count them as missing
    /// while they connect.
    pub fn reserve_missing(&self, min: usize) -> Vec<OwnedSemaphorePermit> {
        let target = min.min(self.size.get());
        let open = self.size.open(&self.permits);
        (open..target)
            .map_while(|_| self.permits.clone().try_acquire_owned().ok())
            .collect()
    }

    /// Opens a connection in room from [`Pool::reserve_missing`] and puts
    /// it in the pool (a waiting client gets it first).
    pub async fn open_spare(
        &self,
        config: &ProxyConfig,
        metrics: &ProxyMetrics,
        permit: OwnedSemaphorePermit,
    ) -> Result<(), Error> {
        let conn = self
            .connect(config, metrics, permit, config.connect_timeout)
            .await?;
        self.put(conn, config.server_lifetime, Instant::now());
        Ok(())
    }

    /// Sets the most connections the pool may open (a reload). Growing
    /// takes effect at once (waiting clients get the new room); shrinking
    /// closes idle connections over the size now and takes back lent ones
    /// as they are released.
    pub fn resize(&self, size: usize) {
        self.size.resize(&self.permits, size);
        let mut inner = self.lock();
        let open = self.size.open(&self.permits);
        let over = open.saturating_sub(size).min(inner.idle.len());
        // The longest idle first (the list is LIFO).
        inner.idle.drain(..over);
    }

    /// Whether it connects to `host:port`.
    pub fn at(&self, host: &str, port: u16) -> bool {
        self.host == host && self.port == port
    }

    /// What the server reported at the last login.
    pub fn reported(&self) -> Vec<(String, String)> {
        self.reported
            .lock()
            .unwrap_or_else(|p| p.into_inner())
            .clone()
    }

    /// Rows for `SHOW SERVERS` of the idle connections (busy ones are
    /// listed with their clients).
    pub fn idle_rows(&self) -> Vec<ServerRow> {
        let inner = self.lock();
        inner
            .idle
            .iter()
            .map(|c| ServerRow {
                node: self.key.node.clone(),
                database: self.key.database.clone(),
                user: self.key.user.clone(),
                state: ServerState::Idle,
                backend_pid: Some(c.cancel.key.0),
                connect_time: c.connected_at,
                request_time: None,
                client_pid: None,
            })
            .collect()
    }

    /// (open connections, idle ones, clients waiting).
    pub fn sizes(&self) -> (usize, usize, usize) {
        let inner = self.lock();
        let open = self.size.open(&self.permits);
        (open, inner.idle.len(), inner.waiters.len())
    }
}

/// Every pool of one proxy.
#[derive(Debug, Default)]
pub struct Pools {
    map: Mutex<HashMap<PoolKey, Arc<Pool>>>,
}

impl Pools {
    /// The pool for `key`, created on first use for a server at
    /// `host:port`.
    pub fn get(
        &self,
        key: &PoolKey,
        host: &str,
        port: u16,
        max_size: usize,
        metrics: &ProxyMetrics,
    ) -> Arc<Pool> {
        let mut map = self.map.lock().unwrap_or_else(|p| p.into_inner());
        if let Some(pool) = map.get(key) {
            if pool.at(host, port) {
                return pool.clone();
            }
        }
        let mut startup = vec![
            ("database".to_string(), key.database.clone()),
            ("user".to_string(), key.user.clone()),
        ];
        startup.extend(key.options.split('\0').filter_map(|kv| {
            let (k, v) = kv.split_once('=')?;
            Some((k.to_string(), v.to_string()))
        }));
        let label = NodeLabel::new(key.node.as_str());
        let pool = Arc::new(Pool {
            key: key.clone(),
            recorder: metrics.recorder(&label),
            label,
            host: host.to_string(),
            port,
            startup,
            size: size::Size::new(max_size),
            reported: Mutex::default(),
            permits: Arc::new(Semaphore::new(max_size)),
            inner: Mutex::default(),
            stats: PoolStats::default(),
        });
        map.insert(key.clone(), pool.clone());
        pool
    }

    /// Every pool.
    pub fn all(&self) -> Vec<Arc<Pool>> {
        let map = self.map.lock().unwrap_or_else(|p| p.into_inner());
        map.values().cloned().collect()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn pool(max_size: usize) -> Arc<Pool> {
        let key = PoolKey {
            node: NodeId::new("n"),
            database: "db".into(),
            user: "u".into(),
            options: String::new(),
        };
        Pools::default().get(&key, "127.0.0.1", 1, max_size, &ProxyMetrics::new())
    }

    #[test]
    fn min_pool_size_reserves_only_what_is_missing_and_never_above_the_size() {
        let pool = pool(4);
        assert!(pool.reserve_missing(0).is_empty());
        let first = pool.reserve_missing(3);
        assert_eq!(first.len(), 3);
        assert_eq!(pool.sizes().0, 3, "reserved room counts as open");
        // While those connect, the next round finds nothing missing.
        assert!(pool.reserve_missing(3).is_empty());
        // A larger minimum than the size stops at the size.
        let last = pool.reserve_missing(10);
        assert_eq!(last.len(), 1);
        assert_eq!(pool.sizes().0, 4);
        // Connects that failed give their room back.
        drop(first);
        assert!(pool.reserve_missing(1).is_empty(), "one is still open");
        assert_eq!(pool.reserve_missing(3).len(), 2);
    }
}
