//! The listener: one task per client, shared state, cancel requests.

use std::collections::HashMap;
use std::sync::atomic::{AtomicI32, AtomicUsize, Ordering};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use bytes::BytesMut;
use pgha_core::{NodeId, Status, Topology};
use tokio::net::{TcpListener, UnixListener};
use tokio::sync::watch;

use crate::{session, Listener, ProxyConfig};

/// Where a client's cancel request must go: the server connection it is
/// using now.
#[derive(Debug)]
pub struct CancelTarget {
    pub(crate) node: NodeId,
    pub(crate) host: String,
    pub(crate) port: u16,
    pub(crate) key: (i32, i32),
    /// The pid (as told) of the client whose requests the connection runs
    /// now; 0 while it sits in its pool. A cancel from anyone else — a
    /// client that used the connection before — must not reach it.
    pub(crate) owner: std::sync::atomic::AtomicI32,
}

type Hint = Arc<dyn Fn(&NodeId, &str) + Send + Sync>;

/// State every session of one proxy shares. No globals: two proxies in one
/// process are independent.
pub(crate) struct Shared {
    /// The settings at start: what the relay reads (see [`crate::live`]).
    pub(crate) config: ProxyConfig,
    /// The settings now: what a reload may change.
    pub(crate) live: crate::live::Live,
    pub(crate) topology: watch::Receiver<Arc<Topology>>,
    pub(crate) hint: Option<Hint>,
    /// Per-proxy secret for SCRAM exchanges with unknown users.
    pub(crate) mock_key: [u8; 32],
    /// Server connection pools.
    pub(crate) pools: crate::pool::Pools,
    /// Prepared statements, proxy-wide.
    pub(crate) statements: crate::prepared::Registry,
    /// Routes of simple-query texts seen.
    pub(crate) query_routes: crate::route_cache::RouteCache,
    /// Clients connected now.
    pub(crate) client_count: AtomicUsize,
    /// Who they are, for the admin console.
    pub(crate) clients: crate::clients::Clients,
    /// Their logins, one copy of each.
    pub(crate) logins: crate::session::Logins,
    pub(crate) metrics: Arc<crate::ProxyMetrics>,
    pub(crate) gate: Arc<crate::PauseGate>,
    /// Standbys' replay positions (read-your-writes by LSN).
    pub(crate) replay: crate::replay::ReplayPositions,
    /// Write positions shared by sessions of one user or application.
    pub(crate) written: std::sync::Mutex<HashMap<String, crate::session::Written>>,
    /// Standbys suspected of not answering: reads avoid them.
    pub(crate) suspects: crate::suspects::Suspects,
    /// Called on the admin console's RELOAD; set once serving, by whoever
    /// owns the configuration file.
    pub(crate) reload: Mutex<Option<crate::ReloadHook>>,
    /// Runs the console's PROMOTE, SWITCHOVER, ATTACH, DETACH.
    pub(crate) control: Option<Arc<dyn crate::ClusterControl>>,
    /// Stopping gracefully.
    pub(crate) drain: Arc<crate::Drain>,
    next_pid: AtomicI32,
    /// By the (pid, secret) a client was told: the proxy's own, or in
    /// session mode without balancing its server's.
    cancels: Mutex<HashMap<(i32, i32), Arc<CancelTarget>>>,
}

impl Shared {
    /// The settings now (a reload may have changed some since start).
    pub(crate) fn live(&self) -> Arc<ProxyConfig> {
        self.live.get()
    }

    /// A proxy-issued (pid, secret) for a new client.
    pub(crate) fn register_client(&self) -> (i32, i32) {
        let pid = self.next_pid.fetch_add(1, Ordering::Relaxed);
        (pid, rand::random::<i32>())
    }

    /// Forgets a client whose session ends: its cancel key and its
    /// console entry.
    pub(crate) fn forget_client(&self, key: (i32, i32)) {
        self.forget_cancel(key);
        self.clients.remove(key.0);
    }

    /// Suspects `node` of not answering (a read unanswered past its
    /// deadline, a connect that failed or timed out): new reads avoid it
    /// at once, and the monitor is asked to probe it now. The suspicion
    /// holds until a probe after it finds the node healthy
    /// ([`crate::suspects`]).
    pub(crate) fn suspect(&self, node: &NodeId) {
        let Some(state) = self.topology.borrow().node(node).cloned() else {
            return;
        };
        if self.suspects.suspect(&state, std::time::Instant::now()) {
            tracing::warn!(%node, "standby suspected of not answering: reads avoid it until the monitor probes it healthy");
            self.metrics
                .suspected(&crate::metrics::NodeLabel::from(node));
            if let Some(hint) = &self.hint {
                hint(node, "08006");
            }
        }
    }

    pub(crate) fn set_cancel_target(&self, pid: i32, secret: i32, target: Arc<CancelTarget>) {
        let mut cancels = self.cancels.lock().unwrap_or_else(|p| p.into_inner());
        cancels.insert((pid, secret), target);
    }

    /// Forgets a cancel key (a session that gave its client its server's
    /// key, ending).
    pub(crate) fn forget_cancel(&self, key: (i32, i32)) {
        let mut cancels = self.cancels.lock().unwrap_or_else(|p| p.into_inner());
        cancels.remove(&key);
    }

    /// Forwards a cancel request to the server the client is using, if the
    /// key matches (a wrong secret is ignored, as PostgreSQL does) and that
    /// connection runs the client's requests now, in the background: the
    /// caller waits for it briefly (a live server takes it at once), then
    /// closes the client's cancel connection whatever the server's fate. A client
    /// cancelling because its server stopped answering is often about to
    /// fail over; holding its cancel connection for a connect to that
    /// server would stall it. Never sent to a node the topology holds down
    /// or quarantined: nothing pgha could reach runs there.
    pub(crate) fn cancel(&self, pid: i32, secret: i32) -> Option<tokio::task::JoinHandle<()>> {
        let target = {
            let cancels = self.cancels.lock().unwrap_or_else(|p| p.into_inner());
            cancels.get(&(pid, secret)).cloned()
        };
        let Some(target) = target else {
            tracing::debug!(pid, "cancel request with an unknown key ignored");
            return None;
        };
        if target.owner.load(std::sync::atomic::Ordering::Acquire) != pid {
            // Back in its pool, or another client's now: nothing of this
            // client's runs there.
            tracing::debug!(
                pid,
                "cancel request ignored: the client has no request on a server"
            );
            return None;
        }
        let status = self.topology.borrow().node(&target.node).map(|n| n.status);
        if matches!(status, Some(Status::Down | Status::Quarantined)) {
            tracing::info!(pid, node = %target.node, "cancel request not forwarded: the topology holds the node down or quarantined");
            return None;
        }
        let deadline = self.config.connect_timeout.min(CANCEL_TIMEOUT);
        Some(tokio::spawn(forward_cancel(target, pid, deadline)))
    }
}

/// The most a cancel request's forwarding may take: a server that does not
/// take a connection by then is not running the client's query either.
const CANCEL_TIMEOUT: Duration = Duration::from_secs(1);

async fn forward_cancel(target: Arc<CancelTarget>, pid: i32, deadline: Duration) {
    let mut buf = BytesMut::new();
    postgres_protocol::message::frontend::cancel_request(target.key.0, target.key.1, &mut buf);
    let sent = async {
        // The same way as the connection it cancels: TCP or Unix socket.
        let mut s = crate::stream::connect(&target.host, target.port).await?;
        s.write_all(&buf).await?;
        // PostgreSQL closes it once the backend is signalled.
        let mut byte = [0u8; 1];
        let _ = tokio::io::AsyncReadExt::read(&mut s, &mut byte).await;
        Ok::<(), std::io::Error>(())
    };
    if let Err(e) = tokio::time::timeout(deadline, sent)
        .await
        .unwrap_or_else(|_| Err(std::io::Error::other("timed out")))
    {
        tracing::warn!(pid, node = %target.node, error = %e, "could not forward a cancel request");
    }
}

/// A PostgreSQL wire-protocol proxy that sends every session to the
/// primary of the current term, following the topology it is given.
pub struct Proxy {
    shared: Arc<Shared>,
}

impl std::fmt::Debug for Proxy {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Proxy")
            .field("config", &self.shared.config)
            .finish()
    }
}

impl Proxy {
    /// A proxy following `topology` (from a `ClusterMonitor`, or fed by
    /// hand).
    pub fn new(config: ProxyConfig, topology: watch::Receiver<Arc<Topology>>) -> Self {
        Self::build(config, topology, None)
    }

    /// Like [`Proxy::new`], reporting broken server connections to `hint`
    /// (e.g. `MonitorHandle::hint`) so the monitor probes at once.
    pub fn with_hint(
        config: ProxyConfig,
        topology: watch::Receiver<Arc<Topology>>,
        hint: impl Fn(&NodeId, &str) + Send + Sync + 'static,
    ) -> Self {
        Self::build(config, topology, Some(Arc::new(hint)))
    }

    fn build(
        config: ProxyConfig,
        topology: watch::Receiver<Arc<Topology>>,
        hint: Option<Hint>,
    ) -> Self {
        Self {
            shared: Arc::new(Shared {
                topology,
                hint,
                // Distinct from real server pids in logs; wraps harmlessly.
                mock_key: rand::random(),
                pools: crate::pool::Pools::default(),
                statements: crate::prepared::Registry::default(),
                query_routes: crate::route_cache::RouteCache::new(config.classify.clone()),
                client_count: AtomicUsize::new(0),
                clients: crate::clients::Clients::default(),
                logins: crate::session::Logins::default(),
                metrics: Arc::new(crate::ProxyMetrics::new()),
                gate: crate::PauseGate::new(std::time::Duration::from_secs(30)),
                reload: Mutex::new(None),
                control: None,
                drain: Arc::new(crate::Drain::default()),
                replay: crate::replay::ReplayPositions::default(),
                suspects: crate::suspects::Suspects::default(),
                written: std::sync::Mutex::new(HashMap::new()),
                next_pid: AtomicI32::new(1 << 24),
                cancels: Mutex::new(HashMap::new()),
                live: crate::live::Live::new(config.clone()),
                config,
            }),
        }
    }

    /// Uses `gate` to hold new transactions (share it with the monitor as
    /// its switchover hook). Call before serving.
    pub fn with_pause_gate(mut self, gate: Arc<crate::PauseGate>) -> Self {
        match Arc::get_mut(&mut self.shared) {
            Some(shared) => shared.gate = gate,
            None => tracing::warn!("with_pause_gate after serving started: ignored"),
        }
        self
    }

    /// Runs the admin console's `PROMOTE`, `SWITCHOVER`, `ATTACH` and
    /// `DETACH` through `control` (e.g. the `MonitorHandle` whose topology
    /// the proxy follows). Without it they are refused (`0A000`). Call
    /// before serving.
    pub fn with_control(mut self, control: Arc<dyn crate::ClusterControl>) -> Self {
        match Arc::get_mut(&mut self.shared) {
            Some(shared) => shared.control = Some(control),
            None => tracing::warn!("with_control after serving started: ignored"),
        }
        self
    }

    /// A handle to stop, reload and command the proxy while it serves.
    pub fn handle(&self) -> ProxyHandle {
        ProxyHandle {
            shared: self.shared.clone(),
        }
    }

    /// The proxy's metrics (for [`serve_http`](crate::http::serve_http)).
    pub fn metrics(&self) -> Arc<crate::ProxyMetrics> {
        self.shared.metrics.clone()
    }

    /// The gate that holds new transactions (`PAUSE`, switchovers).
    pub fn pause_gate(&self) -> Arc<crate::PauseGate> {
        self.shared.gate.clone()
    }

    /// The proxy's stop switch: [`Drain::run`](crate::Drain::run) closes
    /// the listeners, lets running transactions finish and ends every
    /// session with `57P01`; the serving future returns once the last
    /// session has gone.
    pub fn drain(&self) -> Arc<crate::Drain> {
        self.shared.drain.clone()
    }

    /// Accepts clients on `listener` until `shutdown` completes.
    pub async fn serve(
        &self,
        listener: TcpListener,
        shutdown: impl std::future::Future<Output = ()>,
    ) {
        self.serve_listeners(vec![listener.into()], shutdown).await
    }

    /// Accepts clients on a Unix socket (from [`bind_unix`](crate::bind_unix))
    /// until `shutdown` completes. They match hba `local` rules and never
    /// use TLS, as with PostgreSQL.
    pub async fn serve_unix(
        &self,
        listener: UnixListener,
        shutdown: impl std::future::Future<Output = ()>,
    ) {
        self.serve_listeners(vec![listener.into()], shutdown).await
    }

    /// Accepts clients on every listener (e.g. TCP and a Unix socket)
    /// until `shutdown` completes, or until the proxy [drains](Self::drain):
    /// then the listeners are closed at once, and the future returns when
    /// the last client session has ended (pools and replay positions are
    /// kept up for them until then).
    pub async fn serve_listeners(
        &self,
        mut listeners: Vec<Listener>,
        shutdown: impl std::future::Future<Output = ()>,
    ) {
        tokio::pin!(shutdown);
        // One upkeep task whatever the number of listeners.
        let upkeep = crate::upkeep::run(self.shared.clone());
        tokio::pin!(upkeep);
        let ringer = crate::upkeep::ring_on_topology(self.shared.clone());
        tokio::pin!(ringer);
        let mut ringing = true;
        let tracks_lsn = self.shared.config.consistency.tracks_lsn();
        let replay = crate::replay::run(self.shared.clone());
        tokio::pin!(replay);
        let stalls = crate::stall::run(self.shared.metrics.clone());
        tokio::pin!(stalls);
        let mut next = 0;
        let drain = self.shared.drain.clone();
        let closing = drain.closing();
        tokio::pin!(closing);
        let gone = drain.sessions_gone();
        tokio::pin!(gone);
        let mut open = true;
        loop {
            tokio::select! {
                _ = &mut shutdown => {
                    // Sessions outlive this: their bell keeps ringing
                    // until the last of them has gone.
                    if ringing {
                        let drain = self.shared.drain.clone();
                        let shared = self.shared.clone();
                        tokio::spawn(async move {
                            tokio::select! {
                                () = crate::upkeep::ring_on_topology(shared) => {}
                                () = drain.sessions_gone() => {}
                            }
                        });
                    }
                    return;
                }
                () = &mut upkeep => {}
                () = &mut ringer, if ringing => ringing = false,
                () = &mut replay, if tracks_lsn => {}
                () = &mut closing, if open => {
                    open = false;
                    // Dropped: the kernel refuses new connections now.
                    listeners.clear();
                    tracing::info!(sessions = drain.sessions(), "listeners closed: no new clients");
                }
                () = &mut gone, if !open => return,
                () = &mut stalls => {}
                accepted = crate::listener::accept(&listeners, &mut next), if open => match accepted {
                    Ok((stream, peer)) => {
                        tokio::spawn(session::run(self.shared.clone(), Box::new((stream, peer))));
                    }
                    Err(e) => {
                        // EMFILE and friends: back off instead of spinning.
                        tracing::warn!(error = %e, "accept failed");
                        tokio::time::sleep(std::time::Duration::from_millis(50)).await;
                    }
                },
            }
        }
    }
}

/// A handle on a [`Proxy`] that may be serving: stop it gracefully,
/// reload its settings. Cheap to clone.
#[derive(Clone)]
pub struct ProxyHandle {
    shared: Arc<Shared>,
}

impl std::fmt::Debug for ProxyHandle {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("ProxyHandle").finish_non_exhaustive()
    }
}

impl ProxyHandle {
    /// The proxy's stop switch (see [`Proxy::drain`]).
    pub fn drain(&self) -> Arc<crate::Drain> {
        self.shared.drain.clone()
    }

    /// The gate that holds new transactions (`PAUSE`, switchovers).
    pub fn pause_gate(&self) -> Arc<crate::PauseGate> {
        self.shared.gate.clone()
    }

    /// The settings now.
    pub fn settings(&self) -> Arc<ProxyConfig> {
        self.shared.live()
    }

    /// Applies what of `wanted` can change while serving (see
    /// [`LIVE_SETTINGS`](crate::LIVE_SETTINGS)): pools resize, new clients
    /// and transactions use the rest. Returns one line per setting whose
    /// value differs, saying whether it was applied (a setting that needs
    /// a restart keeps its running value).
    pub fn apply(&self, wanted: &ProxyConfig) -> Vec<crate::admin::ReloadLine> {
        let running = self.shared.live();
        let (next, lines) = crate::live::plan(&running, wanted);
        if next.pool_size != running.pool_size {
            for pool in self.shared.pools.all() {
                pool.resize(next.pool_size);
            }
        }
        self.shared.live.set(next);
        lines
    }

    /// Calls `hook` on the admin console's `RELOAD` (replacing any hook
    /// set before); without one, `RELOAD` is refused (`0A000`).
    pub fn on_reload(&self, hook: crate::ReloadHook) {
        *self.shared.reload.lock().unwrap_or_else(|p| p.into_inner()) = Some(hook);
    }
}
