//! One client session: startup, authentication, then relaying messages to
//! the current primary — across failovers.

use std::net::SocketAddr;
use std::sync::Arc;
use std::time::Duration;

use bytes::BytesMut;
use pgha_core::{NodeId, Topology};
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::tcp::{OwnedReadHalf, OwnedWriteHalf};
use tokio::net::TcpStream;

use crate::frame::FrameReader;
use crate::startup::{self, StartupRequest, MAX_STARTUP};
use crate::{messages, server, CancelTarget, Error, Shared};

/// The server side of a session, bound to one node in one term.
struct Backend {
    reader: FrameReader<OwnedReadHalf>,
    writer: OwnedWriteHalf,
    node: NodeId,
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
        let len = client.read_u32().await.map_err(Error::Io)? as usize;
        if !(8..=MAX_STARTUP).contains(&len) {
            return Err(Error::Protocol(format!(
                "startup packet length {len} out of range"
            )));
        }
        let mut body = vec![0u8; len - 4];
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
    let (backend, target, server_params) =
        match connect_primary(shared, &mut topology, params).await {
            Ok(connected) => connected,
            Err(e) => {
                messages::error(&mut out, "FATAL", e.sqlstate(), &e.client_message());
                let _ = client_write.write_all(&out).await;
                return Err(e);
            }
        };
    let (pid, secret) = shared.register_client();
    let _registration = shared.client_guard(pid);
    shared.set_cancel_target(pid, secret, target);
    messages::auth_ok(&mut out);
    for (name, value) in &server_params {
        messages::parameter_status(&mut out, name, value);
    }
    messages::backend_key(&mut out, pid, secret);
    messages::ready(&mut out, b'I');
    client_write.write_all(&out).await.map_err(Error::Io)?;

    let mut client_frames = FrameReader::new(client_read, shared.config.max_message);
    let mut current = Some(backend);
    // A request is in flight from the first message forwarded until the
    // server's ReadyForQuery; `syncs` counts the ReadyForQuery still owed
    // (one per Query, Sync or FunctionCall: clients may pipeline).
    let mut busy = false;
    let mut syncs: usize = 0;
    let mut to_server = BytesMut::with_capacity(1024);
    // After an error of the proxy's own in the extended protocol, the
    // client's messages are dropped until its Sync, as a server does.
    let mut discarding = false;
    loop {
        tokio::select! {
            // Server first: a connection that died is noticed before the
            // next client statement is written into it; a client whose
            // server closed while it was idle then goes straight to the new
            // primary instead of getting an error.
            biased;
            message = next_server(&mut current) => {
                match message {
                    Ok(Some(batch)) => {
                        let ready = crate::frame::messages(&batch).filter(|m| m[0] == b'Z').count();
                        if ready > 0 {
                            syncs = syncs.saturating_sub(ready);
                            busy = syncs > 0;
                        }
                        tracing::trace!(tags = ?crate::frame::messages(&batch).map(|m| char::from(m[0])).collect::<String>(), syncs, "to client");
                        client_write.write_all(&batch).await.map_err(Error::Io)?;
                    }
                    Ok(None) | Err(_) => {
                        lose(shared, &mut current);
                        discarding = tell_lost(&mut out, &mut client_write, busy, syncs).await?;
                        busy = false;
                        syncs = 0;
                    }
                }
            }
            changed = topology.changed() => {
                if changed.is_err() {
                    return Ok(());
                }
                let stale = current.as_ref().is_some_and(|b| !topology.borrow_and_update().is_writable(&b.node));
                if stale {
                    // A new term: whatever runs on the old primary must not
                    // be acknowledged from there (it is being fenced). A
                    // running statement fails; an idle client notices
                    // nothing.
                    tracing::info!(busy, "new term: dropping the connection to the old primary");
                    current = None;
                    discarding = tell_lost(&mut out, &mut client_write, busy, syncs).await?;
                    busy = false;
                    syncs = 0;
                }
            }
            batch = client_frames.next_batch() => {
                let Some(batch) = batch? else { return Ok(()) };
                // Everything the client sent so far goes to the server in
                // one write (an extended-protocol exchange is five
                // messages); the decisions are still made per message.
                to_server.clear();
                for message in crate::frame::messages(&batch) {
                    let tag = message[0];
                    if tag == b'X' {
                        if let Some(b) = current.as_mut() {
                            let _ = b.writer.write_all(&to_server).await;
                        }
                        return Ok(());
                    }
                    if discarding {
                        if tag == b'S' {
                            discarding = false;
                            out.clear();
                            messages::ready(&mut out, b'I');
                            client_write.write_all(&out).await.map_err(Error::Io)?;
                        }
                        continue;
                    }
                    let stale = current.as_ref().is_none_or(|b| !topology.borrow().is_writable(&b.node));
                    if !busy && stale {
                        // Between transactions: the next statement goes to
                        // the primary of the current term (held while there
                        // is none).
                        current = None;
                        match connect_primary(shared, &mut topology, params).await {
                            Ok((fresh, target, _)) => {
                                shared.set_cancel_target(pid, secret, target);
                                current = Some(fresh);
                            }
                            Err(e) => {
                                tracing::warn!(error = %e, "no primary for a waiting client");
                                out.clear();
                                messages::error(&mut out, "ERROR", e.sqlstate(), &e.client_message());
                                if tag == b'Q' || tag == b'S' {
                                    messages::ready(&mut out, b'I');
                                } else {
                                    discarding = true;
                                }
                                client_write.write_all(&out).await.map_err(Error::Io)?;
                                continue;
                            }
                        }
                    }
                    to_server.extend_from_slice(message);
                    busy = true;
                    if matches!(tag, b'Q' | b'S' | b'F') {
                        syncs += 1;
                    }
                }
                if to_server.is_empty() {
                    continue;
                }
                let Some(b) = current.as_mut() else { continue };
                if b.writer.write_all(&to_server).await.is_err() {
                    lose(shared, &mut current);
                    discarding = tell_lost(&mut out, &mut client_write, true, syncs).await?;
                    busy = false;
                    syncs = 0;
                }
            }
        }
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
) -> Result<(Backend, CancelTarget, Vec<(String, String)>), Error> {
    let deadline = tokio::time::Instant::now() + shared.config.no_primary_wait;
    loop {
        let target = {
            let t = topology.borrow_and_update();
            t.usable_primary()
                .map(|p| (p.id.clone(), p.host.clone(), p.port))
        };
        if let Some((node, host, port)) = target {
            let config = &shared.config;
            match server::connect(
                &host,
                port,
                params,
                &config.server_auth,
                config.connect_timeout,
            )
            .await
            {
                Ok(conn) => {
                    if !conn.leftover.is_empty() {
                        return Err(Error::Protocol(
                            "server sent data after ReadyForQuery".into(),
                        ));
                    }
                    let cancel = CancelTarget {
                        host,
                        port,
                        key: conn.key,
                    };
                    let (read, writer) = conn.stream.into_split();
                    let reader = FrameReader::new(read, config.max_message);
                    return Ok((
                        Backend {
                            reader,
                            writer,
                            node,
                        },
                        cancel,
                        conn.params,
                    ));
                }
                // The server answered and said no (bad password, unknown
                // database): waiting will not change that.
                Err(e @ Error::ServerRefused { .. }) => return Err(e),
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
