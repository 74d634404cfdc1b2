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
use crate::{messages, Error, PoolMode, Shared};
use pgha_core::Lsn;
use std::sync::atomic::Ordering;
use tokio::time::Instant;

mod large;
mod reply;
mod ryw;

use reply::Lost;
use ryw::PendingWrite;
pub(crate) use ryw::Written;

pub(crate) struct Relay<'a> {
    shared: &'a Arc<Shared>,
    client: WriteHalf,
    key: (i32, i32),
    /// Out of line: read at routing and login only.
    login: Box<Login>,
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
            login: Box::new(login),
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

    /// Checks the login on the primary (the database exists, the server
    /// takes the user and the client's parameters) and returns the
    /// client's greeting.
    pub(crate) async fn login(&mut self) -> Result<BytesMut, Error> {
        let mut attached = Box::pin(acquire::primary(
            self.shared,
            &mut self.topology,
            &mut self.pools,
            &self.login,
        ))
        .await?;
        // What the client did not ask for, it gets as the server's
        // defaults (what a fresh connection reported), never as an earlier
        // client of this pooled connection left it.
        let reported = attached.pool.reported();
        let mut notices = BytesMut::new();
        let mut params = Params::default();
        for (name, value) in &reported {
            params.set(name, value);
        }
        for (name, value) in self.login.asked.iter() {
            params.set(name, value);
        }
        if let Some(sql) = params.sync_query(&mut attached.conn.params) {
            // The values as the server spells them (`utf8` is `UTF8`): a
            // SET that changes nothing reports nothing, so they are read.
            let mut sql = String::from_utf8_lossy(&sql[..sql.len() - 1]).into_owned();
            sql.push_str("SELECT ");
            for (i, name) in crate::params::TRACKED.iter().enumerate() {
                if i > 0 {
                    sql.push(',');
                }
                sql.push_str(&format!("current_setting('{name}')"));
            }
            let answer = Box::pin(hidden::run_row(
                &mut attached.conn,
                &sql,
                self.shared.config.connect_timeout,
            ))
            .await?;
            // What PostgreSQL would have told the client at its startup
            // (a name too long truncated, say): the greeting carries it.
            notices = answer.notices;
            for (name, value) in crate::params::TRACKED.iter().zip(answer.row) {
                if let Some(value) = value {
                    attached.conn.params.set(name, &value);
                }
            }
        }
        self.params = attached.conn.params.clone();
        if self.shared.config.pool_mode == PoolMode::Session && !self.shared.config.load_balance {
            // The session has exactly this one server connection for its
            // life (it ends with it): the client is told the server's own
            // pid and key, so pg_terminate_backend() of the pid it reads,
            // pg_stat_activity and notifications agree with it. Cancels
            // still come through the proxy.
            self.key = attached.conn.cancel.key;
            self.shared
                .set_cancel_target(self.key.0, self.key.1, attached.conn.cancel.clone());
            self.cancel_key = self.key;
        }
        let mut out = BytesMut::with_capacity(512);
        greeting(&mut out, &reported, &self.params, self.key, &notices);
        self.server = Some(attached);
        self.release_if_done().await?;
        Ok(out)
    }

    /// Tells the client why it cannot go on.
    pub(crate) async fn fatal(&mut self, e: &Error) {
        self.out.clear();
        messages::error(&mut self.out, "FATAL", e.sqlstate(), &e.client_message());
        let _ = self.client.write_all(&self.out).await;
    }

    /// Sends the client its greeting (authentication done, parameters,
    /// key, ReadyForQuery).
    pub(crate) async fn greet(&mut self, greeting: BytesMut) -> Result<(), Error> {
        self.client.write_all(&greeting).await.map_err(Error::Io)
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
                // so thousands of idle clients cost little.
                self.out = BytesMut::new();
                self.to_server = BytesMut::new();
                frames.readable(confirm).await.map_err(Error::Io)?;
                confirm = false;
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
                // Only a session holding a server cares about the term (an
                // idle client is not woken by every probe).
                changed = self.topology.changed(), if self.server.is_some() || self.parked.is_some() => {
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
        self.begin_send();
        let Some(server) = self.server.as_mut() else {
            return Ok(!goodbye);
        };
        let own_names = self.shared.config.pool_mode == PoolMode::Session && server.primary;
        prepared::rewrite(
            batch,
            &mut Rewrite {
                registry: &self.shared.statements,
                classify: &self.shared.config.classify,
                client: &mut self.statements,
                server: &mut server.conn.statements,
                server_unnamed: &mut server.conn.unnamed,
                own_names,
                cap: self.shared.config.max_prepared_statements,
                out: &mut self.to_server,
                tracker: &mut self.tracker,
            },
        );
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

    /// The attached server, made ready for the client's next messages:
    /// `to_server` holds the parameter SET it needs (if any), the console
    /// shows the client active, its cancel requests reach this server.
    fn begin_send(&mut self) {
        let Some(server) = self.server.as_mut() else {
            return;
        };
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

    async fn on_topology(&mut self) -> Result<(), Error> {
        let t = self.topology.borrow_and_update().clone();
        let usable = |s: &Attached| {
            if s.primary {
                t.is_writable(&s.conn.node)
            } else {
                // A read may finish on a standby just promoted: it still
                // answers from the same data.
                t.readable_nodes().any(|n| n.id == s.conn.node)
            }
        };
        if self.parked.as_ref().is_some_and(|s| !usable(s)) {
            self.parked = None;
            if self.shared.config.pool_mode == PoolMode::Session {
                return Err(self.end_session(Error::SessionLost).await);
            }
        }
        if self.server.as_ref().is_some_and(|s| !usable(s)) {
            // A new term: whatever runs on the old primary must not be
            // acknowledged from there (it is being fenced). A running
            // statement fails; an idle client notices nothing.
            tracing::info!(
                busy = !self.tracker.is_empty(),
                "dropping a server connection the topology no longer allows"
            );
            self.server_lost(Lost::Dropped).await?;
        }
        Ok(())
    }

    /// A protocol violation by the client: logged where an operator sees
    /// it, answered with `08P01` as PostgreSQL does, and the session ends.
    async fn violation(&mut self, e: Error) -> Error {
        let entry = self.status.entry();
        tracing::warn!(
            peer = ?entry.peer,
            user = %entry.user,
            database = %entry.database,
            error = %e,
            "client protocol violation; closing its connection"
        );
        // A client turned away, as at startup.
        self.shared
            .metrics
            .auth_failure(crate::metrics::AuthFailure::Protocol);
        self.end_session(e).await
    }

    /// `PREPARE`, `EXECUTE` and `DEALLOCATE` in a lone simple query: the
    /// client's statements forget what it deallocates; in transaction
    /// pooling, where the server knows them by the proxy's names, the
    /// proxy answers a `DEALLOCATE` of a statement it knows itself and
    /// refuses `PREPARE`/`EXECUTE` (they would leave a statement on a
    /// connection other clients get). True when the batch was answered.
    async fn prepared_sql(&mut self, batch: &[u8]) -> Result<bool, Error> {
        use crate::prepared_sql::{recognise, PreparedSql};
        let Some((sql, extended)) = prepared_sql_text(batch) else {
            return Ok(false);
        };
        let Some(form) = recognise(sql) else {
            return Ok(false);
        };
        let pooled = self.shared.config.pool_mode == PoolMode::Transaction;
        self.out.clear();
        let completed = |out: &mut BytesMut, tag: &str| {
            if let Some(tags) = extended {
                // Parse, Bind, (Describe of the portal,) Execute, Sync.
                for t in tags {
                    match t {
                        b'P' => put_empty(out, b'1'),
                        b'B' => put_empty(out, b'2'),
                        b'D' => put_empty(out, b'n'),
                        b'E' => messages::command_complete(out, tag),
                        _ => {}
                    }
                }
            } else {
                messages::command_complete(out, tag);
            }
        };
        match form {
            PreparedSql::DeallocateAll => {
                self.statements.clear();
                if !pooled {
                    return Ok(false);
                }
                completed(&mut self.out, "DEALLOCATE ALL");
            }
            PreparedSql::Deallocate(name) => {
                let known = self.statements.remove(&name[..]).is_some();
                if !pooled || !known {
                    // The server's own answer (unknown: its 26000).
                    return Ok(false);
                }
                completed(&mut self.out, "DEALLOCATE");
            }
            PreparedSql::Prepare | PreparedSql::Execute if pooled => {
                messages::error_with_hint(
                    &mut self.out,
                    "ERROR",
                    "0A000",
                    "pgha: PREPARE and EXECUTE are not supported in transaction pooling (the statement would stay on a server connection other clients share)",
                    "prepare through the protocol (a driver's prepared statements), or use pool_mode = session",
                );
            }
            PreparedSql::Prepare | PreparedSql::Execute => return Ok(false),
        }
        messages::ready(&mut self.out, self.tx_status);
        self.client.write_all(&self.out).await.map_err(Error::Io)?;
        Ok(true)
    }

    /// When a read sent to a standby now must have heard from it.
    fn standby_read_deadline(&self) -> Option<Instant> {
        let timeout = self.shared.config.standby_read_timeout;
        (!timeout.is_zero()).then(|| Instant::now() + timeout)
    }

    /// A standby said nothing for `standby_read_timeout` while a read ran
    /// on it: the read fails (it is never sent again: a read's outcome
    /// changes nothing, but the client must not wait on a hung server),
    /// and new reads avoid the standby at once.
    async fn standby_silent(&mut self) -> Result<(), Error> {
        self.standby_deadline = None;
        let Some(node) = self
            .server
            .as_ref()
            .filter(|s| !s.primary)
            .map(|s| s.conn.node.clone())
        else {
            return Ok(());
        };
        tracing::warn!(%node, timeout = ?self.shared.config.standby_read_timeout, "a read on a standby got no answer in time; it fails and the standby is suspected");
        self.shared.suspect(&node);
        self.server_lost(Lost::Dropped).await
    }

    /// Tells the client why its session cannot go on (a FATAL, as a
    /// server says it) and returns the error that ends the session.
    async fn end_session(&mut self, e: Error) -> Error {
        tracing::debug!(error = %e, "client session ends");
        self.out.clear();
        messages::error(&mut self.out, "FATAL", e.sqlstate(), &e.client_message());
        // The client may be gone already; the session ends either way.
        let _ = self.client.write_all(&self.out).await;
        e
    }

    /// Answers a batch with an error instead of running it: one
    /// ErrorResponse, a ReadyForQuery for each Query/Sync, and if the batch
    /// ends inside an extended-protocol exchange, its messages are dropped
    /// until the Sync.
    async fn refuse(&mut self, batch: &[u8], e: &Error) -> Result<(), Error> {
        self.out.clear();
        messages::error(&mut self.out, "ERROR", e.sqlstate(), &e.client_message());
        let mut last = 0;
        for m in frame::messages(batch) {
            last = m[0];
            if matches!(last, b'Q' | b'S' | b'F') {
                messages::ready(&mut self.out, b'I');
            }
        }
        self.discarding = !matches!(last, b'Q' | b'S' | b'F');
        self.tx_status = b'I';
        self.client.write_all(&self.out).await.map_err(Error::Io)
    }

    /// Drops messages up to the first Sync (answered with ReadyForQuery)
    /// and returns the rest.
    async fn discard_until_sync<'b>(&mut self, batch: &'b [u8]) -> Result<&'b [u8], Error> {
        let mut at = 0;
        for m in frame::messages(batch) {
            at += m.len();
            if m[0] == b'S' {
                self.discarding = false;
                self.out.clear();
                messages::ready(&mut self.out, b'I');
                self.client.write_all(&self.out).await.map_err(Error::Io)?;
                return Ok(&batch[at..]);
            }
        }
        Ok(&[])
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

/// The SQL of a batch that may be about prepared statements: a lone simple
/// query, or the unnamed statement run once in the extended protocol
/// (Parse, Bind, an optional Describe of the portal, Execute, Sync — how
/// psycopg sends its `DEALLOCATE` in pipeline mode), with the tags of the
/// latter. `None` for anything else.
fn prepared_sql_text(batch: &[u8]) -> Option<(&[u8], Option<Vec<u8>>)> {
    let mut all = frame::messages(batch);
    let first = all.next()?;
    let body = frame::body(first);
    if first[0] == b'Q' {
        return all
            .next()
            .is_none()
            .then(|| (body.strip_suffix(&[0]).unwrap_or(body), None));
    }
    // An unnamed Parse: the name is empty, the text follows.
    let text = body.strip_prefix(&[0])?;
    let text = &text[..text.iter().position(|&b| b == 0)?];
    // Only SQL that names prepared statements is looked at further.
    crate::prepared_sql::recognise(text)?;
    let mut tags = vec![b'P'];
    for m in all {
        let unnamed = match m[0] {
            b'B' => frame::body(m).starts_with(b"\0\0"),
            b'D' => frame::body(m) == b"P\0",
            b'E' => frame::body(m).starts_with(b"\0"),
            b'S' => true,
            _ => false,
        };
        if !unnamed {
            return None;
        }
        tags.push(m[0]);
    }
    (tags.ends_with(b"ES") && tags.get(1) == Some(&b'B')).then_some((text, Some(tags)))
}

/// Sleeps until `deadline`; never wakes without one.
async fn sleep_until(deadline: Option<Instant>) {
    match deadline {
        Some(at) => tokio::time::sleep_until(at).await,
        None => std::future::pending().await,
    }
}

async fn next_server(server: &mut Option<Attached>) -> Result<Option<Input>, Error> {
    match server {
        Some(s) => s.conn.reader.next_input().await,
        None => std::future::pending().await,
    }
}
