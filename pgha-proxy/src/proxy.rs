//! The listener: one task per client, shared state, cancel requests.

use std::collections::HashMap;
use std::sync::atomic::{AtomicI32, AtomicUsize, Ordering};
use std::sync::{Arc, Mutex};

use bytes::BytesMut;
use pgha_core::{NodeId, Topology};
use tokio::io::AsyncWriteExt;
use tokio::net::{TcpListener, TcpStream};
use tokio::sync::watch;

use crate::{session, ProxyConfig};

/// Where a client's cancel request must go: the server connection it is
/// using now.
#[derive(Debug, Clone)]
pub struct CancelTarget {
    pub(crate) host: String,
    pub(crate) port: u16,
    pub(crate) key: (i32, i32),
}

type Hint = Arc<dyn Fn(&NodeId, &str) + Send + Sync>;

/// State every session of one proxy shares. No globals: two proxies in one
/// process are independent.
pub(crate) struct Shared {
    pub(crate) config: ProxyConfig,
    pub(crate) topology: watch::Receiver<Arc<Topology>>,
    pub(crate) hint: Option<Hint>,
    /// Per-proxy secret for SCRAM exchanges with unknown users.
    pub(crate) mock_key: [u8; 32],
    /// Server connection pools.
    pub(crate) pools: crate::pool::Pools,
    /// Prepared statements, proxy-wide.
    pub(crate) statements: crate::prepared::Registry,
    /// Clients connected now.
    pub(crate) clients: AtomicUsize,
    next_pid: AtomicI32,
    cancels: Mutex<HashMap<i32, (i32, CancelTarget)>>,
}

impl Shared {
    /// A proxy-issued (pid, secret) for a new client.
    pub(crate) fn register_client(&self) -> (i32, i32) {
        let pid = self.next_pid.fetch_add(1, Ordering::Relaxed);
        (pid, rand::random::<i32>())
    }

    /// Forgets the client's cancel key when the session ends.
    pub(crate) fn client_guard(&self, pid: i32) -> ClientGuard<'_> {
        ClientGuard { shared: self, pid }
    }

    pub(crate) fn set_cancel_target(&self, pid: i32, secret: i32, target: CancelTarget) {
        let mut cancels = self.cancels.lock().unwrap_or_else(|p| p.into_inner());
        cancels.insert(pid, (secret, target));
    }

    /// Forwards a cancel request to the server the client is using, if the
    /// key matches (a wrong secret is ignored, as PostgreSQL does).
    pub(crate) async fn cancel(&self, pid: i32, secret: i32) {
        let target = {
            let cancels = self.cancels.lock().unwrap_or_else(|p| p.into_inner());
            cancels
                .get(&pid)
                .filter(|(s, _)| *s == secret)
                .map(|(_, t)| t.clone())
        };
        let Some(target) = target else {
            tracing::debug!(pid, "cancel request with an unknown key ignored");
            return;
        };
        let mut buf = BytesMut::new();
        postgres_protocol::message::frontend::cancel_request(target.key.0, target.key.1, &mut buf);
        let sent = async {
            let mut s = TcpStream::connect((target.host.as_str(), target.port)).await?;
            s.write_all(&buf).await
        };
        if let Err(e) = tokio::time::timeout(self.config.connect_timeout, sent)
            .await
            .unwrap_or_else(|_| Err(std::io::Error::other("timed out")))
        {
            tracing::warn!(pid, error = %e, "could not forward a cancel request");
        }
    }
}

pub(crate) struct ClientGuard<'a> {
    shared: &'a Shared,
    pid: i32,
}

impl Drop for ClientGuard<'_> {
    fn drop(&mut self) {
        let mut cancels = self
            .shared
            .cancels
            .lock()
            .unwrap_or_else(|p| p.into_inner());
        cancels.remove(&self.pid);
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
                config,
                topology,
                hint,
                // Distinct from real server pids in logs; wraps harmlessly.
                mock_key: rand::random(),
                pools: crate::pool::Pools::default(),
                statements: crate::prepared::Registry::default(),
                clients: AtomicUsize::new(0),
                next_pid: AtomicI32::new(1 << 24),
                cancels: Mutex::new(HashMap::new()),
            }),
        }
    }

    /// Accepts clients on `listener` until `shutdown` completes.
    pub async fn serve(
        &self,
        listener: TcpListener,
        shutdown: impl std::future::Future<Output = ()>,
    ) {
        tokio::pin!(shutdown);
        let upkeep = crate::upkeep::run(self.shared.clone());
        tokio::pin!(upkeep);
        loop {
            tokio::select! {
                _ = &mut shutdown => return,
                () = &mut upkeep => {}
                accepted = listener.accept() => match accepted {
                    Ok((stream, peer)) => {
                        tokio::spawn(session::run(self.shared.clone(), stream, peer));
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
