//! Getting a server connection for a transaction: the primary of the
//! current term (waiting while there is none), or a standby for a read.

use std::sync::Arc;
use std::time::Duration;

use pgha_core::{NodeId, Topology};
use tokio::sync::watch;
use tokio::time::Instant;

use super::Login;
use crate::pool::{Pool, PoolKey, ServerConnection};
use crate::{route, Error, Shared};

/// A server connection checked out for this session.
#[derive(Debug)]
pub(crate) struct Attached {
    pub(crate) conn: Box<ServerConnection>,
    pub(crate) pool: Arc<Pool>,
    /// Checked out as the primary (writes); otherwise a standby for reads.
    pub(crate) primary: bool,
}

/// The pools a session has used, so a transaction does not look them up
/// in the proxy-wide map. Most sessions only ever use the primary's: that
/// one is held without a vector (whose first push would allocate room for
/// four), and in the space of one.
#[derive(Debug, Default)]
pub(crate) enum PoolCache {
    #[default]
    Empty,
    One(Arc<Pool>),
    /// One pool, the usable primary's as [`idle_primary`] found it in the
    /// topology the session's receiver has seen: valid while that
    /// receiver sees no change. Whatever else marks the receiver seen
    /// makes it `One` again ([`PoolCache::forget_primary`]).
    Primary(Arc<Pool>),
    Many(Vec<Arc<Pool>>),
}

const _: () = assert!(std::mem::size_of::<PoolCache>() == std::mem::size_of::<Vec<Arc<Pool>>>());

impl PoolCache {
    fn get(
        &mut self,
        shared: &Shared,
        login: &Login,
        node: &NodeId,
        host: &str,
        port: u16,
    ) -> Arc<Pool> {
        if let Some(pool) = self
            .as_slice()
            .iter()
            .find(|p| &p.key.node == node && p.at(host, port))
        {
            return pool.clone();
        }
        let key = PoolKey {
            node: node.clone(),
            database: login.database.clone(),
            user: login.server_user.clone(),
            options: login.options.clone(),
        };
        let pool = shared
            .pools
            .get(&key, host, port, shared.live().pool_size, &shared.metrics);
        let mut kept: Vec<Arc<Pool>> = match std::mem::take(self) {
            PoolCache::Empty => Vec::new(),
            PoolCache::One(p) | PoolCache::Primary(p) => vec![p],
            PoolCache::Many(v) => v,
        };
        kept.retain(|p| &p.key.node != node);
        *self = if kept.is_empty() {
            PoolCache::One(pool.clone())
        } else {
            kept.push(pool.clone());
            PoolCache::Many(kept)
        };
        pool
    }

    fn as_slice(&self) -> &[Arc<Pool>] {
        match self {
            PoolCache::Empty => &[],
            PoolCache::One(p) | PoolCache::Primary(p) => std::slice::from_ref(p),
            PoolCache::Many(v) => v,
        }
    }

    /// The receiver was marked seen by other code: the cached primary
    /// pool may belong to an older topology.
    pub(crate) fn forget_primary(&mut self) {
        if let PoolCache::Primary(p) = self {
            *self = PoolCache::One(p.clone());
        }
    }

    /// `pool`, just found as the usable primary's, is cached as such when
    /// it is the session's only pool (with standby pools too, the
    /// lookup stays).
    fn mark_primary(&mut self, pool: &Arc<Pool>) {
        if matches!(self, PoolCache::One(p) if Arc::ptr_eq(p, pool)) {
            *self = PoolCache::Primary(pool.clone());
        }
    }
}

/// The primary's idle pooled connection, if it has one: how most
/// transactions start, decided without building (and boxing) the waiting
/// future of [`primary`].
pub(crate) fn idle_primary(
    shared: &Shared,
    topology: &mut watch::Receiver<Arc<Topology>>,
    pools: &mut PoolCache,
    login: &Login,
) -> Option<Attached> {
    let pool = match pools {
        // The topology the pool was chosen in is still the latest: the
        // same primary (most transactions; no lookups by name).
        PoolCache::Primary(pool) if matches!(topology.has_changed(), Ok(false)) => pool.clone(),
        _ => {
            pools.forget_primary();
            let t = topology.borrow_and_update();
            let p = t.usable_primary()?;
            let pool = pools.get(shared, login, &p.id, &p.host, p.port);
            pools.mark_primary(&pool);
            pool
        }
    };
    let conn = pool.try_idle()?;
    Some(Attached {
        conn,
        pool,
        primary: true,
    })
}

/// A connection to the primary of the current term, waiting (up to the
/// configured time) while there is none or it does not answer.
pub(crate) async fn primary(
    shared: &Shared,
    topology: &mut watch::Receiver<Arc<Topology>>,
    pools: &mut PoolCache,
    login: &Login,
) -> Result<Attached, Error> {
    let config = &*shared.live();
    let deadline = Instant::now() + config.no_primary_wait;
    pools.forget_primary();
    loop {
        let target = {
            let t = topology.borrow_and_update();
            t.usable_primary()
                .map(|p| (p.id.clone(), p.host.clone(), p.port))
        };
        if let Some((node, host, port)) = target {
            let pool = pools.get(shared, login, &node, &host, port);
            match pool
                .get(
                    config,
                    &shared.metrics,
                    Instant::now() + config.pool_timeout,
                    config.connect_timeout,
                )
                .await
            {
                Ok(conn) => {
                    return Ok(Attached {
                        conn,
                        pool,
                        primary: true,
                    })
                }
                // The server answered and said no (bad password, unknown
                // database), or the pool stayed full: waiting for another
                // primary will not change that.
                Err(
                    e @ (Error::ServerRefused { .. }
                    | Error::Protocol(_)
                    | Error::PoolTimeout { .. }),
                ) => return Err(e),
                Err(e) => {
                    tracing::debug!(%node, error = %e, "primary not reachable; waiting for the topology")
                }
            }
        }
        let remaining = deadline.saturating_duration_since(Instant::now());
        if remaining.is_zero() {
            return Err(Error::NoPrimary {
                waited: config.no_primary_wait,
            });
        }
        // Retry on the next topology, or after a short pause.
        let _ = tokio::time::timeout(
            remaining.min(Duration::from_millis(250)),
            topology.changed(),
        )
        .await;
    }
}

/// Where a read goes.
pub(crate) enum ReadTarget {
    /// The pool of the standby picked.
    Standby(Arc<Pool>),
    /// The primary, picked by its weight.
    Primary,
    /// The primary: no standby qualifies.
    NoStandby,
}

/// Picks the server of a read that any server may answer.
pub(crate) fn read_target(
    shared: &Shared,
    topology: &Topology,
    pools: &mut PoolCache,
    login: &Login,
    at_least: Option<pgha_core::Lsn>,
) -> ReadTarget {
    // Read once: only while some node is suspected.
    let now = shared.suspects.any().then(std::time::Instant::now);
    let pick = route::pick_read(
        topology,
        shared.live().lag_limits(),
        at_least,
        |n| shared.replay.of(n),
        |n| now.is_some_and(|now| shared.suspects.avoid(n, now)),
        rand::random(),
    );
    match pick {
        route::ReadPick::Standby(n) => {
            ReadTarget::Standby(pools.get(shared, login, &n.id, &n.host, n.port))
        }
        route::ReadPick::Primary => ReadTarget::Primary,
        route::ReadPick::NoStandby => ReadTarget::NoStandby,
    }
}

/// A new or freed connection from a standby's pool (the caller found none
/// idle) if it comes soon; `None` sends the read to the primary.
pub(crate) async fn standby(shared: &Shared, pool: Arc<Pool>) -> Option<Attached> {
    let config = &*shared.live();
    // A standby that is slow to give a connection is no better than the
    // primary: do not queue or connect long for it.
    let timeout = config.standby_connect_timeout;
    let deadline = Instant::now() + timeout.min(config.pool_timeout);
    match pool.get(config, &shared.metrics, deadline, timeout).await {
        Ok(conn) => Some(Attached {
            conn,
            pool,
            primary: false,
        }),
        Err(e) => {
            tracing::debug!(node = %pool.key.node, error = %e, "standby not usable for reads; using the primary");
            if unanswering(&e) {
                shared.suspect(&pool.key.node);
            }
            None
        }
    }
}

/// Whether a failed checkout says the node itself does not answer (so new
/// reads should avoid it), not that its pool is busy or the login refused.
fn unanswering(e: &Error) -> bool {
    match e {
        Error::Server { .. } | Error::Io(_) => true,
        // Class 57: starting up, shutting down, crashed.
        Error::ServerRefused { code, .. } => code.starts_with("57"),
        _ => false,
    }
}
