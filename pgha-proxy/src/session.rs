//! One client session: startup, authentication, then relaying messages to
//! the current primary — across failovers.

use std::net::SocketAddr;
use std::sync::Arc;
use std::time::Duration;

use bytes::BytesMut;
use pgha_core::{NodeId, Role, Topology};
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::tcp::{OwnedReadHalf, OwnedWriteHalf};
use tokio::net::TcpStream;

use crate::frame::FrameReader;
use crate::startup::{self, StartupRequest};
use crate::{messages, route, server, CancelTarget, Error, Shared};

/// The server side of a session, bound to one node in one term.
struct Backend {
    reader: FrameReader<OwnedReadHalf>,
    writer: OwnedWriteHalf,
    node: NodeId,
    cancel: CancelTarget,
}

impl Backend {
    /// Connects and logs in to `node` at `host:port`.
    async fn connect(
        shared: &Shared,
        node: NodeId,
        host: String,
        port: u16,
        params: &[(String, String)],
    ) -> Result<(Backend, Vec<(String, String)>), Error> {
        let config = &shared.config;
        let conn = server::connect(
            &host,
            port,
            params,
            &config.server_auth,
            config.connect_timeout,
        )
        .await?;
        if !conn.leftover.is_empty() {
            return Err(Error::Protocol(
                "server sent data after ReadyForQuery".into(),
            ));
        }
        let params = conn.params.clone();
        Ok((
            Backend::new(node, host, port, conn, config.max_message),
            params,
        ))
    }

    fn new(
        node: NodeId,
        host: String,
        port: u16,
        conn: server::ServerConn,
        max_message: usize,
    ) -> Self {
        let cancel = CancelTarget {
            host,
            port,
            key: conn.key,
        };
        let (read, writer) = conn.stream.into_split();
        Backend {
            reader: FrameReader::new(read, max_message),
            writer,
            node,
            cancel,
        }
    }
}

/// A connection to a standby for reads, if one qualifies and answers.
async fn connect_standby(
    shared: &Shared,
    topology: &Topology,
    params: &[(String, String)],
) -> Option<Backend> {
    let (node, host, port) = route::pick_standby(
        topology,
        shared.config.max_standby_lag_bytes,
        rand::random(),
    )?;
    match Backend::connect(shared, node.clone(), host, port, params).await {
        Ok((backend, _)) => Some(backend),
        Err(e) => {
            tracing::debug!(%node, error = %e, "standby not usable for reads; using the primary");
            None
        }
    }
}

pub(crate) async fn run(shared: Arc<Shared>, mut client: TcpStream, peer: SocketAddr) {
    let _ = client.set_nodelay(true);
    let params = match tokio::time::timeout(
        shared.config.startup_timeout,
        startup_phase(&shared, &mut client),
    )
    .await
    {
        Ok(Ok(Some(params))) => params,
        Ok(Ok(None)) => return, // a cancel request, served
        Ok(Err(e)) => {
            tracing::debug!(%peer, error = %e, "startup failed");
            let _ = send_fatal(&mut client, &e).await;
            return;
        }
        Err(_) => {
            tracing::debug!(%peer, "startup timed out");
            let e = Error::Protocol("startup not finished in time".into());
            let _ = send_fatal(&mut client, &e).await;
            return;
        }
    };
    if let Some(auth) = &shared.config.client_auth {
        let exchange = crate::client_auth::authenticate(
            &mut client,
            auth,
            peer.ip(),
            &params,
            &shared.mock_key,
        );
        let done = tokio::time::timeout(shared.config.startup_timeout, exchange)
            .await
            .unwrap_or_else(|_| {
                Err(Error::Protocol(
                    "authentication not finished in time".into(),
                ))
            });
        if let Err(e) = done {
            tracing::info!(%peer, error = %e, "authentication failed");
            let _ = send_fatal(&mut client, &e).await;
            return;
        }
    }
    if let Err(e) = session(&shared, client, &params).await {
        tracing::debug!(%peer, error = %e, "session ended");
    }
}

async fn send_fatal(client: &mut TcpStream, e: &Error) -> std::io::Result<()> {
    let mut out = BytesMut::new();
    messages::error(&mut out, "FATAL", e.sqlstate(), &e.client_message());
    client.write_all(&out).await
}

/// Reads startup packets until a StartupMessage (returned) or a cancel
/// request (served; `None`).
async fn startup_phase(
    shared: &Shared,
    client: &mut TcpStream,
) -> Result<Option<Vec<(String, String)>>, Error> {
    loop {
        let len = client.read_u32().await.map_err(Error::Io)?;
        let mut body = vec![0u8; startup::body_len(len)?];
        client.read_exact(&mut body).await.map_err(Error::Io)?;
        match startup::parse(&body)? {
            // TLS and GSS encryption are not offered (yet): the client
            // continues in plain text or gives up, as libpq does.
            StartupRequest::Ssl | StartupRequest::GssEnc => {
                client.write_all(b"N").await.map_err(Error::Io)?;
            }
            StartupRequest::Cancel { pid, secret } => {
                shared.cancel(pid, secret).await;
                return Ok(None);
            }
            StartupRequest::Startup(params) => return Ok(Some(params)),
        }
    }
}

async fn session(
    shared: &Arc<Shared>,
    client: TcpStream,
    params: &[(String, String)],
) -> Result<(), Error> {
    let (client_read, mut client_write) = client.into_split();
    let mut out = BytesMut::with_capacity(512);
    let mut topology = shared.topology.clone();
    let (backend, server_params) = match connect_primary(shared, &mut topology, params).await {
        Ok(connected) => connected,
        Err(e) => {
            messages::error(&mut out, "FATAL", e.sqlstate(), &e.client_message());
            let _ = client_write.write_all(&out).await;
            return Err(e);
        }
    };
    let (pid, secret) = shared.register_client();
    let _registration = shared.client_guard(pid);
    shared.set_cancel_target(pid, secret, backend.cancel.clone());
    messages::auth_ok(&mut out);
    for (name, value) in &server_params {
        messages::parameter_status(&mut out, name, value);
    }
    messages::backend_key(&mut out, pid, secret);
    messages::ready(&mut out, b'I');
    client_write.write_all(&out).await.map_err(Error::Io)?;

    let mut client_frames = FrameReader::new(client_read, shared.config.max_message);
    let mut current = Some(backend);
    // A standby connection for reads (load balancing), opened on demand.
    let mut reader: Option<Backend> = None;
    let mut state = RelayState::default();
    let mut to_server = BytesMut::with_capacity(1024);
    loop {
        tokio::select! {
            // Servers first: a connection that died is noticed before the
            // next client statement is written into it; a client whose
            // server closed while it was idle then goes straight to the new
            // primary instead of getting an error.
            biased;
            message = next_server(&mut current) => match message {
                Ok(Some(batch)) => state.deliver(&batch, &mut client_write).await?,
                Ok(None) | Err(_) => {
                    lose(shared, &mut current);
                    if !state.on_reader {
                        state.lost(&mut out, &mut client_write).await?;
                    }
                }
            },
            message = next_server(&mut reader) => match message {
                Ok(Some(batch)) => state.deliver(&batch, &mut client_write).await?,
                Ok(None) | Err(_) => {
                    lose(shared, &mut reader);
                    if state.on_reader {
                        state.lost(&mut out, &mut client_write).await?;
                    }
                }
            },
            changed = topology.changed() => {
                if changed.is_err() {
                    return Ok(());
                }
                let t = topology.borrow_and_update().clone();
                if current.as_ref().is_some_and(|b| !t.is_writable(&b.node)) {
                    // A new term: whatever runs on the old primary must not
                    // be acknowledged from there (it is being fenced). A
                    // running statement fails; an idle client notices
                    // nothing.
                    tracing::info!(busy = state.busy, "new term: dropping the connection to the old primary");
                    current = None;
                    if !state.on_reader {
                        state.lost(&mut out, &mut client_write).await?;
                    }
                }
                let readable = |node: &NodeId| t.readable_nodes().any(|n| &n.id == node && n.role == Role::Standby);
                if reader.as_ref().is_some_and(|b| !readable(&b.node)) {
                    reader = None;
                    if state.on_reader {
                        state.lost(&mut out, &mut client_write).await?;
                    }
                }
            }
            batch = client_frames.next_batch() => {
                let Some(batch) = batch? else { return Ok(()) };
                if state.busy && state.on_reader {
                    // Pipelined behind a read: the same server answers, in order.
                    if crate::frame::messages(&batch).any(|m| m[0] == b'X') {
                        return Ok(());
                    }
                    state.sent(&batch);
                    if let Some(b) = reader.as_mut() {
                        if b.writer.write_all(&batch).await.is_err() {
                            lose(shared, &mut reader);
                            state.lost(&mut out, &mut client_write).await?;
                        }
                    }
                    continue;
                }
                if !state.busy && !state.discarding && state.may_balance(shared) && route::single_read(&batch, &shared.config.classify) {
                    let t = topology.borrow().clone();
                    let readable = |node: &NodeId| t.readable_nodes().any(|n| &n.id == node && n.role == Role::Standby);
                    if reader.as_ref().is_none_or(|b| !readable(&b.node)) {
                        reader = connect_standby(shared, &t, params).await;
                    }
                    if let Some(b) = reader.as_mut() {
                        if b.writer.write_all(&batch).await.is_ok() {
                            shared.set_cancel_target(pid, secret, b.cancel.clone());
                            state.on_reader = true;
                            state.sent(&batch);
                            continue;
                        }
                        // A standby that broke: the read goes to the primary.
                        lose(shared, &mut reader);
                    }
                }
                // Everything else goes to the primary, in one write (an
                // extended-protocol exchange is five messages); decisions are
                // still made per message.
                to_server.clear();
                for message in crate::frame::messages(&batch) {
                    let tag = message[0];
                    if tag == b'X' {
                        if let Some(b) = current.as_mut() {
                            let _ = b.writer.write_all(&to_server).await;
                        }
                        return Ok(());
                    }
                    if state.discarding {
                        if tag == b'S' {
                            state.discarding = false;
                            out.clear();
                            messages::ready(&mut out, b'I');
                            client_write.write_all(&out).await.map_err(Error::Io)?;
                        }
                        continue;
                    }
                    let stale = current.as_ref().is_none_or(|b| !topology.borrow().is_writable(&b.node));
                    if !state.busy && to_server.is_empty() && stale {
                        // Between transactions: the next statement goes to
                        // the primary of the current term (held while there
                        // is none).
                        current = None;
                        match connect_primary(shared, &mut topology, params).await {
                            Ok((fresh, _)) => current = Some(fresh),
                            Err(e) => {
                                tracing::warn!(error = %e, "no primary for a waiting client");
                                out.clear();
                                messages::error(&mut out, "ERROR", e.sqlstate(), &e.client_message());
                                if tag == b'Q' || tag == b'S' {
                                    messages::ready(&mut out, b'I');
                                } else {
                                    state.discarding = true;
                                }
                                client_write.write_all(&out).await.map_err(Error::Io)?;
                                continue;
                            }
                        }
                    }
                    to_server.extend_from_slice(message);
                }
                if to_server.is_empty() {
                    continue;
                }
                let Some(b) = current.as_mut() else { continue };
                shared.set_cancel_target(pid, secret, b.cancel.clone());
                state.on_reader = false;
                // From now on this session reads its own writes: primary only.
                state.pinned = true;
                state.sent(&to_server);
                if b.writer.write_all(&to_server).await.is_err() {
                    lose(shared, &mut current);
                    state.lost(&mut out, &mut client_write).await?;
                }
            }
        }
    }
}

/// What the relay knows about the request in flight.
#[derive(Debug)]
struct RelayState {
    /// A request is in flight from the first message forwarded until the
    /// server's ReadyForQuery.
    busy: bool,
    /// ReadyForQuery messages still owed (one per Query, Sync or
    /// FunctionCall: clients may pipeline).
    syncs: usize,
    /// The request in flight is on the standby connection.
    on_reader: bool,
    /// The last ReadyForQuery said idle (not in a transaction).
    tx_idle: bool,
    /// The session has sent something other than a lone read to the
    /// primary: it stays there (read-your-writes, session state).
    pinned: bool,
    /// After an error of the proxy's own in the extended protocol, the
    /// client's messages are dropped until its Sync, as a server does.
    discarding: bool,
}

impl Default for RelayState {
    fn default() -> Self {
        Self {
            busy: false,
            syncs: 0,
            on_reader: false,
            tx_idle: true,
            pinned: false,
            discarding: false,
        }
    }
}

impl RelayState {
    fn may_balance(&self, shared: &Shared) -> bool {
        shared.config.load_balance && !self.pinned && self.tx_idle
    }

    /// Records messages forwarded to a server.
    fn sent(&mut self, batch: &[u8]) {
        self.busy = true;
        self.syncs += crate::frame::messages(batch)
            .filter(|m| matches!(m[0], b'Q' | b'S' | b'F'))
            .count();
    }

    /// Forwards a server's batch to the client, counting ReadyForQuery.
    async fn deliver(&mut self, batch: &[u8], client: &mut OwnedWriteHalf) -> Result<(), Error> {
        let mut ready = 0;
        for m in crate::frame::messages(batch).filter(|m| m[0] == b'Z') {
            ready += 1;
            self.tx_idle = m.get(5) == Some(&b'I');
        }
        if ready > 0 {
            self.syncs = self.syncs.saturating_sub(ready);
            self.busy = self.syncs > 0;
            if !self.busy {
                self.on_reader = false;
            }
        }
        client.write_all(batch).await.map_err(Error::Io)
    }

    /// The server of the request in flight is gone: tell the client as a
    /// server would report an error.
    async fn lost(&mut self, out: &mut BytesMut, client: &mut OwnedWriteHalf) -> Result<(), Error> {
        self.discarding = tell_lost(out, client, self.busy, self.syncs).await?;
        self.busy = false;
        self.syncs = 0;
        self.on_reader = false;
        self.tx_idle = true;
        Ok(())
    }
}

/// Drops a server connection that broke, and tells the monitor (a hint:
/// it probes the node before believing anything).
fn lose(shared: &Shared, current: &mut Option<Backend>) {
    tracing::debug!(node = ?current.as_ref().map(|b| &b.node), "server connection lost");
    if let Some(b) = current.take() {
        if let Some(hint) = &shared.hint {
            hint(&b.node, "08006");
        }
    }
}

/// Tells a client whose request was running that its server is gone, the
/// way a server reports an error: one ErrorResponse, then a ReadyForQuery
/// for every Query/Sync already sent. With none sent yet (an extended-
/// protocol batch in progress), returns true: drop the client's messages
/// until its Sync, then answer ReadyForQuery. An idle client is told
/// nothing: its next statement gets a new server.
async fn tell_lost(
    out: &mut BytesMut,
    client: &mut OwnedWriteHalf,
    busy: bool,
    syncs: usize,
) -> Result<bool, Error> {
    tracing::debug!(busy, syncs, "telling the client its server is gone");
    if !busy {
        return Ok(false);
    }
    out.clear();
    let e = Error::ServerLost;
    messages::error(out, "ERROR", e.sqlstate(), &e.client_message());
    for _ in 0..syncs {
        messages::ready(out, b'I');
    }
    client.write_all(out).await.map_err(Error::Io)?;
    Ok(syncs == 0)
}

async fn next_server(current: &mut Option<Backend>) -> Result<Option<BytesMut>, Error> {
    match current {
        Some(b) => b.reader.next_batch().await,
        None => std::future::pending().await,
    }
}

/// Connects to the primary of the current term, waiting (up to the
/// configured time) while there is none or it does not answer.
async fn connect_primary(
    shared: &Shared,
    topology: &mut tokio::sync::watch::Receiver<Arc<Topology>>,
    params: &[(String, String)],
) -> Result<(Backend, Vec<(String, String)>), Error> {
    let deadline = tokio::time::Instant::now() + shared.config.no_primary_wait;
    loop {
        let target = {
            let t = topology.borrow_and_update();
            t.usable_primary()
                .map(|p| (p.id.clone(), p.host.clone(), p.port))
        };
        if let Some((node, host, port)) = target {
            match Backend::connect(shared, node.clone(), host, port, params).await {
                Ok(connected) => return Ok(connected),
                // The server answered and said no (bad password, unknown
                // database): waiting will not change that.
                Err(e @ (Error::ServerRefused { .. } | Error::Protocol(_))) => return Err(e),
                Err(e) => {
                    tracing::debug!(%node, error = %e, "primary not reachable; waiting for the topology")
                }
            }
        }
        let remaining = deadline.saturating_duration_since(tokio::time::Instant::now());
        if remaining.is_zero() {
            return Err(Error::NoPrimary {
                waited: shared.config.no_primary_wait,
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
