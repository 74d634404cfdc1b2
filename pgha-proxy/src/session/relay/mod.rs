//! The relay between one client and the server connections its
//! transactions get: routing at transaction boundaries, statement and
//! parameter translation, failover.

use std::sync::Arc;

use bytes::{BufMut, BytesMut};
use pgha_core::Topology;
use tokio::sync::watch;

use super::acquire::{self, Attached, PoolCache};
use super::{greeting, hidden, Login};
use crate::classify::{Reason, Route};
use crate::clients::ClientStatus;
use crate::frame::{self, FrameReader, Input};
use crate::metrics::{RouteReason, RouteTarget};
use crate::params::{parse_status, Params};
use crate::pause::Running;
use crate::prepared::{self, ClientStatements, Rewrite};
use crate::stream::{ReadHalf, WriteHalf};
use crate::tracker::{Disposition, Origin, Request, Tracker};
use crate::Consistency;
use crate::{messages, spare, Error, PoolMode, Shared};
use pgha_core::Lsn;
use std::sync::atomic::Ordering;
use tokio::time::Instant;

mod ending;
mod large;
mod login;
mod prepared_sql;
mod reply;
mod ryw;
mod topology;

use reply::Lost;
use ryw::PendingWrite;
pub(crate) use ryw::Written;
pub(crate) use topology::Holdable;

pub(crate) struct Relay<'a> {
    shared: &'a Arc<Shared>,
    client: WriteHalf,
    key: (i32, i32),
    /// A shared handle (see [`Login`]).
    login: Login,
    /// The tracked parameters as the client was told they are.
    params: Params,
    statements: ClientStatements,
    topology: watch::Receiver<Arc<Topology>>,
    pools: PoolCache,
    /// The connection of the transaction in progress (in session mode, of
    /// the whole session).
    server: Option<Attached>,
    /// Session mode: the session's primary connection while one of its
    /// reads runs on a standby.
    parked: Option<Attached>,
    tracker: Tracker,
    /// Transaction status of the last ReadyForQuery the client got.
    tx_status: u8,
    /// Reads stay on the primary from the first statement that is not a
    /// read (read-your-writes, session state).
    pinned: bool,
    /// The transaction in progress may write: learn the primary's WAL
    /// position when it ends (read-your-writes by LSN).
    lsn_wanted: bool,
    /// The hidden position query is in flight; its answer lands here.
    lsn_probe: Option<Option<Lsn>>,
    /// The client's last write position.
    written: Option<Lsn>,
    /// Shared positions: other sessions of the key read from the primary
    /// from this client's commit until its position is known.
    pending: Option<PendingWrite>,
    /// After an error of the proxy's own in the extended protocol, the
    /// client's messages are dropped until its Sync, as a server does.
    discarding: bool,
    /// Server key last registered for the client's cancel requests.
    cancel_key: (i32, i32),
    /// A read on a standby fails, and the standby is suspected, if it says
    /// nothing until then.
    standby_deadline: Option<Instant>,
    /// Transaction pooling: the transaction in progress left session state
    /// on its connection (see `leaves_state`); reset before it is shared.
    left_state: bool,
    /// What the admin console shows of this client.
    status: Arc<ClientStatus>,
    /// The transaction in progress: counted for PAUSE, timed for metrics.
    running: Option<(Running, Instant, RouteTarget, RouteReason)>,
    out: BytesMut,
    to_server: BytesMut,
}

impl<'a> Relay<'a> {
    pub(crate) fn new(
        shared: &'a Arc<Shared>,
        client: WriteHalf,
        login: Login,
        key: (i32, i32),
        status: Arc<ClientStatus>,
    ) -> Self {
        Self {
            shared,
            client,
            key,
            params: login.asked.clone(),
            login,
            statements: ClientStatements::new(),
            topology: shared.topology.clone(),
            pools: PoolCache::default(),
            server: None,
            parked: None,
            tracker: Tracker::default(),
            tx_status: b'I',
            pinned: false,
            lsn_wanted: false,
            lsn_probe: None,
            written: None,
            pending: None,
            discarding: false,
            cancel_key: (0, 0),
            standby_deadline: None,
            left_state: false,
            status,
            running: None,
            out: BytesMut::new(),
            to_server: BytesMut::new(),
        }
    }

    /// Relays until the client leaves.
    pub(crate) async fn run(&mut self, frames: &mut FrameReader<ReadHalf>) -> Result<(), Error> {
        // The startup exchange may leave the socket's readiness flag set:
        // the first wait looks at the bytes, so that an idle client does
        // not look busy; later ones trust the flag (a peek per transaction
        // would be one more system call each).
        let mut confirm = true;
        loop {
            if self.is_idle() {
                // Between transactions with no server (transaction
                // pooling): the wait holds the client's socket and the
                // session's settings, nothing more. The relay's working
                // state (the loop in `busy`) is built for each busy spell,
                // so thousands of idle clients cost little; its buffers go
                // to the thread's spares for the next busy session (no
                // allocation per transaction).
                spare::give(std::mem::take(&mut self.out));
                spare::give(std::mem::take(&mut self.to_server));
                frames.shed();
                frames.readable(confirm).await.map_err(Error::Io)?;
                confirm = false;
                self.to_server = spare::take();
            }
            if !Box::pin(self.busy(frames)).await? {
                return Ok(());
            }
        }
    }

    /// Nothing attached, nothing owed, nothing in flight.
    fn is_idle(&self) -> bool {
        self.server.is_none()
            && self.parked.is_none()
            && self.tracker.is_empty()
            && self.tx_status == b'I'
            && self.lsn_probe.is_none()
    }

    /// Relays until the session is idle again (true) or the client has
    /// gone (false).
    async fn busy(&mut self, frames: &mut FrameReader<ReadHalf>) -> Result<bool, Error> {
        loop {
            tokio::select! {
                // Servers first: a connection that died is noticed before
                // the next client statement is written into it.
                biased;
                input = next_server(&mut self.server) => match input {
                    Ok(Some(Input::Batch(batch))) => self.on_server(&batch).await?,
                    Ok(Some(Input::Large { tag, len })) => {
                        Box::pin(self.on_server_large(tag, len)).await?;
                    }
                    Ok(None) | Err(_) => self.server_lost(Lost::Broken).await?,
                },
                () = sleep_until(self.standby_deadline), if self.standby_deadline.is_some() => {
                    self.standby_silent().await?;
                }
                // Only a session holding a server cares about the term.
                // No waiter is registered here: the upkeep rings the
                // sessions' bell (`Drain::ends`, polled by this task) when
                // a topology may no longer allow a held connection, and
                // this looks whenever the task runs.
                changed = topology_moved(&self.topology), if self.server.is_some() || self.parked.is_some() => {
                    if changed.is_err() {
                        return Ok(false);
                    }
                    self.on_topology().await?;
                }
                input = frames.next_input() => {
                    let batch = match input {
                        Ok(Some(Input::Batch(batch))) => batch,
                        Ok(Some(Input::Large { tag, len })) => {
                            match Box::pin(self.on_large(frames, tag, len)).await {
                                Err(e @ Error::Protocol(_)) => return Err(self.violation(e).await),
                                other => other?,
                            }
                            continue;
                        }
                        Ok(None) => return Ok(false),
                        Err(e @ Error::Protocol(_)) => return Err(self.violation(e).await),
                        Err(e) => return Err(e),
                    };
                    if !self.on_client(&batch).await? {
                        return Ok(false);
                    }
                    // Read whole into its own buffer (the usual case), the
                    // batch is the reader's next spare.
                    spare::give(batch);
                }
            }
            if self.is_idle() && frames.buffered().is_empty() {
                return Ok(true);
            }
        }
    }

    /// Handles a client batch; false once the client said goodbye.
    async fn on_client(&mut self, mut batch: &[u8]) -> Result<bool, Error> {
        let mut goodbye = false;
        let mut len = 0;
        let mut queries = 0;
        for m in frame::messages(batch) {
            match m[0] {
                b'X' => {
                    goodbye = true;
                    break;
                }
                b'Q' | b'E' => queries += 1,
                b'B' | b'C' | b'D' | b'F' | b'H' | b'P' | b'S' | b'd' | b'c' | b'f' => {}
                // What PostgreSQL refuses after startup is never forwarded
                // (a server may read it differently than the proxy did).
                tag => {
                    let e = Error::Protocol(format!("invalid frontend message type {tag}"));
                    return Err(self.violation(e).await);
                }
            }
            len += m.len();
        }
        batch = &batch[..len];
        tracing::trace!(pid = self.key.0, tags = %tags(batch), tx = %char::from(self.tx_status), pending = self.tracker.owed_ready(), attached = self.server.is_some(), "client batch");
        if self.discarding {
            batch = self.discard_until_sync(batch).await?;
        }
        if batch.is_empty() {
            return Ok(!goodbye);
        }
        if matches!(batch.first(), Some(b'Q' | b'P')) && self.prepared_sql(batch).await? {
            return Ok(!goodbye);
        }
        let between = self.tracker.is_empty() && self.tx_status == b'I';
        if between || self.server.is_none() {
            if let Err(e) = self.route(batch).await {
                tracing::warn!(error = %e, "no server for a client transaction");
                self.transaction_done(None);
                self.refuse(batch, &e).await?;
                return Ok(!goodbye);
            }
        }
        if self.begin_send(|cx| prepared::rewrite(batch, cx)).is_none() {
            return Ok(!goodbye);
        }
        let Some(server) = self.server.as_mut() else {
            return Ok(!goodbye);
        };
        if queries > 0 {
            server
                .pool
                .stats
                .queries
                .fetch_add(queries, Ordering::Relaxed);
            server.pool.recorder.queries(queries);
        }
        if !self.to_server.is_empty()
            && server.conn.writer.write_all(&self.to_server).await.is_err()
        {
            self.server_lost(Lost::Broken).await?;
            return Ok(!goodbye);
        }
        if !server.primary {
            self.standby_deadline = self.standby_read_deadline();
        }
        // Answers the proxy owes before the server says anything.
        self.out.clear();
        while let Some(tag) = self.tracker.next_synthetic() {
            put_empty(&mut self.out, tag);
        }
        if !self.out.is_empty() {
            self.client.write_all(&self.out).await.map_err(Error::Io)?;
        }
        Ok(!goodbye)
    }

    /// Puts the client's next messages for the attached server into
    /// `to_server`: the parameter SET the connection needs (if any), then
    /// what `translate` writes (statement names as that connection knows
    /// them, each request recorded); the console shows the client active
    /// and its cancel requests reach this server. `None` with no server.
    fn begin_send<R>(&mut self, translate: impl FnOnce(&mut Rewrite<'_>) -> R) -> Option<R> {
        let server = self.server.as_mut()?;
        self.to_server.clear();
        if let Some(sql) = self.params.sync_query(&mut server.conn.params) {
            put_query(&mut self.to_server, &sql);
            self.tracker.push(Request::Query, Origin::Proxy);
            server.conn.unnamed = None;
        }
        self.status
            .active(&server.conn.node, server.conn.cancel.key.0);
        server
            .conn
            .cancel
            .owner
            .store(self.key.0, Ordering::Release);
        if server.conn.cancel.key != self.cancel_key {
            self.cancel_key = server.conn.cancel.key;
            let (pid, secret) = self.key;
            self.shared
                .set_cancel_target(pid, secret, server.conn.cancel.clone());
        }
        // A session's own connection has the client's names (session
        // mode's primary); shared ones have the proxy's.
        let own_names = self.shared.config.pool_mode == PoolMode::Session && server.primary;
        Some(translate(&mut Rewrite {
            registry: &self.shared.statements,
            classify: &self.shared.config.classify,
            client: &mut self.statements,
            server: &mut server.conn.statements,
            server_unnamed: &mut server.conn.unnamed,
            own_names,
            cap: self.shared.config.max_prepared_statements,
            out: &mut self.to_server,
            tracker: &mut self.tracker,
        }))
    }

    /// Picks the server for a transaction that starts with `batch`,
    /// once the pause gate lets it start.
    async fn route(&mut self, batch: &[u8]) -> Result<(), Error> {
        if self.running.is_none() {
            self.status.waiting();
            let running = self.shared.gate.enter().await;
            self.running = Some((
                running,
                Instant::now(),
                RouteTarget::Primary,
                RouteReason::Transaction,
            ));
        }
        let config = &self.shared.config;
        // Without balancing, or pinned to the primary, where the batch may
        // run does not matter: the lexer is not run (it is the biggest
        // per-statement cost of routing).
        let route = if !config.load_balance {
            None
        } else if self.pinned {
            Some(Route::Any)
        } else {
            Some(prepared::batch_route_cached(
                batch,
                &self.statements,
                &self.shared.query_routes,
                config.pool_mode == PoolMode::Session,
            ))
        };
        let reason = match route {
            None => RouteReason::NoStandby,
            Some(Route::Any) if self.pinned => RouteReason::Pinned,
            Some(Route::Any) => {
                if self.server.as_ref().is_some_and(|s| !s.primary) {
                    return Ok(());
                }
                let at_least = self.written_lsn();
                let target = acquire::read_target(
                    self.shared,
                    &self.topology.borrow(),
                    &mut self.pools,
                    &self.login,
                    at_least,
                );
                let by_weight = matches!(target, acquire::ReadTarget::Primary);
                let standby = match target {
                    acquire::ReadTarget::Standby(pool) => match pool.try_idle() {
                        Some(conn) => Some(Attached {
                            conn,
                            pool,
                            primary: false,
                        }),
                        None => Box::pin(acquire::standby(self.shared, pool)).await,
                    },
                    acquire::ReadTarget::Primary | acquire::ReadTarget::NoStandby => None,
                };
                if let Some(standby) = standby {
                    if let Some(primary) = self.server.take() {
                        self.parked = Some(primary);
                    }
                    self.server = Some(standby);
                    self.set_route(RouteTarget::Standby, RouteReason::Read);
                    return Ok(());
                }
                if by_weight {
                    RouteReason::Read
                } else if at_least.is_some() {
                    RouteReason::Lag
                } else {
                    RouteReason::NoStandby
                }
            }
            Some(Route::Primary(reason)) => {
                match reason {
                    // Session state lives on the primary connection: later
                    // reads must see it.
                    Reason::Set | Reason::Session | Reason::TempTable | Reason::Unknown => {
                        self.pinned = true
                    }
                    Reason::Hint | Reason::Prepare => {}
                    _ if config.consistency.tracks_lsn() => self.lsn_wanted = true,
                    _ => self.pinned = true,
                }
                RouteReason::Statement(reason)
            }
        };
        self.set_route(RouteTarget::Primary, reason);
        let writable = |s: &Attached| s.primary && self.topology.borrow().is_writable(&s.conn.node);
        if self.server.as_ref().is_some_and(writable) {
            return Ok(());
        }
        // Between transactions a connection to an old primary (or a
        // standby) is simply left: the next statement goes to the primary
        // of the current term.
        if self.shared.config.pool_mode == PoolMode::Session {
            let held = match &self.server {
                Some(s) if s.primary => Some(s),
                _ => self.parked.as_ref(),
            };
            if held.is_some_and(|s| !writable(s)) {
                // The session's state lived on that connection.
                return Err(self.end_session(Error::SessionLost).await);
            }
        }
        self.server = None;
        if let Some(parked) = self.parked.take().filter(|p| writable(p)) {
            self.server = Some(parked);
            return Ok(());
        }
        let idle = acquire::idle_primary(
            self.shared,
            &mut self.topology,
            &mut self.pools,
            &self.login,
        );
        let attached = match idle {
            Some(attached) => attached,
            None => {
                Box::pin(acquire::primary(
                    self.shared,
                    &mut self.topology,
                    &mut self.pools,
                    &self.login,
                ))
                .await?
            }
        };
        self.server = Some(attached);
        Ok(())
    }

    fn set_route(&mut self, target: RouteTarget, reason: RouteReason) {
        if let Some(running) = self.running.as_mut() {
            running.2 = target;
            running.3 = reason;
        }
    }

    /// The transaction in progress ended (or never got a server); returns
    /// the time it ended.
    fn transaction_done(&mut self, node: Option<&Attached>) -> Instant {
        self.status.idle();
        let now = Instant::now();
        let Some((_, started, target, reason)) = self.running.take() else {
            return now;
        };
        if let Some(server) = node {
            let took = now.saturating_duration_since(started);
            let stats = &server.pool.stats;
            stats.transactions.fetch_add(1, Ordering::Relaxed);
            stats
                .transaction_us
                .fetch_add(took.as_micros() as u64, Ordering::Relaxed);
            if target == RouteTarget::Standby {
                stats.reads.fetch_add(1, Ordering::Relaxed);
            }
            server.pool.recorder.transaction(target, reason, took);
        }
        now
    }

    fn put_back(&self, server: Attached, now: Instant) {
        server.conn.cancel.owner.store(0, Ordering::Release);
        let lifetime = self.shared.config.server_lifetime;
        server.pool.put(server.conn, lifetime, now.into_std());
    }

    /// The client left: connections between transactions go back to their
    /// pools (session mode: after the reset query), others are closed.
    pub(crate) async fn finish(&mut self) {
        self.shared.forget_cancel(self.key);
        let idle = self.tracker.is_empty() && self.tx_status == b'I';
        // The parked primary is between transactions by definition.
        let servers = [self.server.take().filter(|_| idle), self.parked.take()];
        for mut server in servers.into_iter().flatten() {
            if self.shared.config.pool_mode == PoolMode::Session {
                let mut reset = self.shared.config.server_reset_query.as_str();
                if reset.is_empty() && server.primary && !self.statements.is_empty() {
                    // The client's names are on its own connection: the
                    // next client may use the same ones.
                    reset = "DEALLOCATE ALL";
                }
                if !reset.is_empty() {
                    let done = Box::pin(hidden::run(
                        &mut server.conn,
                        reset,
                        self.shared.config.connect_timeout,
                    ))
                    .await;
                    if let Err(e) = done {
                        tracing::debug!(error = %e, "server reset failed; closing the connection");
                        continue;
                    }
                    server.conn.statements.clear();
                }
            }
            self.put_back(server, Instant::now());
        }
    }
}

/// A Query message for NUL-terminated `sql`.
fn put_query(out: &mut BytesMut, sql: &[u8]) {
    out.put_u8(b'Q');
    out.put_u32(sql.len() as u32 + 4);
    out.put_slice(sql);
}

/// The message tags of a batch, for trace logs.
fn tags(batch: &[u8]) -> String {
    frame::messages(batch).map(|m| char::from(m[0])).collect()
}

/// A message with an empty body (ParseComplete, CloseComplete).
fn put_empty(out: &mut BytesMut, tag: u8) {
    out.put_u8(tag);
    out.put_u32(4);
}

/// Sleeps until `deadline`; never wakes without one.
async fn sleep_until(deadline: Option<Instant>) {
    match deadline {
        Some(at) => tokio::time::sleep_until(at).await,
        None => std::future::pending().await,
    }
}

/// Ready when `topology` has a value the session has not seen (an error
/// once its sender is gone); never registers a waker (see `busy`).
fn topology_moved(
    topology: &watch::Receiver<Arc<Topology>>,
) -> impl std::future::Future<Output = Result<(), watch::error::RecvError>> + '_ {
    std::future::poll_fn(move |_| match topology.has_changed() {
        Ok(false) => std::task::Poll::Pending,
        Ok(true) => std::task::Poll::Ready(Ok(())),
        Err(e) => std::task::Poll::Ready(Err(e)),
    })
}

async fn next_server(server: &mut Option<Attached>) -> Result<Option<Input>, Error> {
    match server {
        Some(s) => s.conn.reader.next_input().await,
        None => std::future::pending().await,
    }
}
