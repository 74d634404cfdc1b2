//! The server side of the relay: answers forwarded (the proxy's own hidden,
//! its own answers added), the connection released at a transaction
//! boundary, a lost connection reported as a server would.

use bytes::BufMut;

use super::*;

impl Relay<'_> {
    /// Relays a server batch, hiding answers to the proxy's own requests
    /// and adding the proxy's answers in their place.
    pub(super) async fn on_server(&mut self, batch: &[u8]) -> Result<(), Error> {
        tracing::trace!(pid = self.key.0, tags = %tags(batch), "server batch");
        let Some(server) = self.server.as_mut() else {
            return Ok(());
        };
        let pooled = self.shared.config.pool_mode == PoolMode::Transaction;
        let mut rebuilt = false;
        // Whether the server said FATAL, and if so whether the client got it.
        let mut fatal = None;
        self.out.clear();
        let mut at = 0;
        for m in frame::messages(batch) {
            let tag = m[0];
            let statements = &mut server.conn.statements;
            let unasked = self.tracker.is_empty();
            let mut disposition = self.tracker.on_server(tag, |id| {
                statements.remove(&id);
            });
            match tag {
                b'S' => {
                    if let Some((name, value)) = parse_status(frame::body(m)) {
                        // The server's value is now the client's too
                        // (normalised when the proxy set it).
                        server.conn.params.set(name, value);
                        self.params.set(name, value);
                    }
                }
                b'Z' if disposition == Disposition::Forward => {
                    self.tx_status = m.get(5).copied().unwrap_or(b'I');
                }
                // The server is closing this connection (terminated,
                // shutting down): do not send it anything more.
                // Only a shared connection must be reset (transaction
                // pooling); a session keeps its own.
                b'C' if pooled
                    && disposition == Disposition::Forward
                    && !self.left_state
                    && leaves_state(frame::body(m)) =>
                {
                    self.left_state = true;
                }
                b'E' if is_fatal(frame::body(m)) => {
                    if unasked {
                        // Nothing in flight: no statement of the client's
                        // may be answered with it later (left unread in
                        // the client's socket, it would be taken as the
                        // answer to the next one, which may run and
                        // commit elsewhere).
                        disposition = Disposition::Hide;
                    }
                    fatal = Some(disposition == Disposition::Forward);
                }
                b'D' if disposition == Disposition::Hide && self.lsn_probe.is_some() => {
                    self.lsn_probe = Some(first_text(frame::body(m)).and_then(|t| t.parse().ok()));
                }
                _ => {}
            }
            let synthetic = self.tracker.next_synthetic();
            if (disposition == Disposition::Hide || synthetic.is_some()) && !rebuilt {
                rebuilt = true;
                self.out.put_slice(&batch[..at]);
            }
            at += m.len();
            if rebuilt && disposition == Disposition::Forward {
                self.out.put_slice(m);
            }
            if let Some(tag) = synthetic {
                put_empty(&mut self.out, tag);
                while let Some(tag) = self.tracker.next_synthetic() {
                    put_empty(&mut self.out, tag);
                }
            }
        }
        if self.lsn_wanted && self.tracker.is_empty() && self.tx_status == b'I' {
            // Before the client learns of its commit.
            self.pending = self
                .shared_key()
                .map(|key| PendingWrite::new(self.shared, key));
        }
        if self.standby_deadline.is_some() {
            // It answered: the deadline counts silence from now, or ends
            // with the read.
            self.standby_deadline = if self.tracker.is_empty() {
                None
            } else {
                self.standby_read_deadline()
            };
        }
        let reply = if rebuilt { &self.out[..] } else { batch };
        if !reply.is_empty() {
            self.client.write_all(reply).await.map_err(Error::Io)?;
        }
        match fatal {
            Some(true) => return self.server_lost(Lost::Told).await,
            // The answer to the proxy's own request: the client was told
            // nothing yet.
            Some(false) => return self.server_lost(Lost::Broken).await,
            None => {}
        }
        self.release_if_done().await
    }

    /// At a transaction boundary: a standby goes back to its pool, and in
    /// transaction mode the primary too.
    pub(super) async fn release_if_done(&mut self) -> Result<(), Error> {
        if !self.tracker.is_empty() || self.tx_status != b'I' {
            return Ok(());
        }
        if let Some(answer) = self.lsn_probe.take() {
            self.wrote(answer);
        } else if std::mem::take(&mut self.lsn_wanted) {
            if let Some(server) = self.server.as_mut().filter(|s| s.primary) {
                // The client has its answer; the connection stays ours for
                // one more round trip.
                self.to_server.clear();
                put_query(&mut self.to_server, b"SELECT pg_current_wal_lsn()::text\0");
                server.conn.unnamed = None;
                self.tracker.push(Request::Query, Origin::Proxy);
                self.lsn_probe = Some(None);
                if server.conn.writer.write_all(&self.to_server).await.is_err() {
                    return self.server_lost(Lost::Broken).await;
                }
                return Ok(());
            }
        }
        let keep = |s: &Attached, mode| s.primary && mode == PoolMode::Session;
        let mode = self.shared.config.pool_mode;
        let server = self.server.take();
        let now = self.transaction_done(server.as_ref());
        let left_state = std::mem::take(&mut self.left_state);
        if let Some(mut server) = server {
            if keep(&server, mode) {
                self.server = Some(server);
            } else {
                if left_state && !self.reset_before_sharing(&mut server).await {
                    self.server = self.parked.take();
                    return Ok(());
                }
                self.put_back(server, now);
                self.server = self.parked.take();
            }
        }
        Ok(())
    }

    /// A shared connection on which the client's transaction left session
    /// state (a temp table and its rows, a LISTEN, a SET, a cursor held
    /// open): reset before another client gets it, so nothing of this
    /// client's reaches the next one. False when the reset failed (the
    /// connection is then closed, not pooled).
    async fn reset_before_sharing(&mut self, server: &mut Attached) -> bool {
        let done = Box::pin(hidden::run(
            &mut server.conn,
            "DISCARD ALL",
            self.shared.config.connect_timeout,
        ))
        .await;
        match done {
            Ok(()) => {
                server.conn.statements.clear();
                true
            }
            Err(e) => {
                tracing::debug!(error = %e, "reset of a shared connection failed; closing it");
                false
            }
        }
    }

    /// The server connection in use broke, said FATAL, or belongs to an
    /// old primary. What the client is told follows one rule: a statement
    /// that reached a server is never sent again, and no error claims more
    /// than is known.
    ///
    /// - A standby only ever runs lone reads outside transactions: the
    ///   reads in flight fail (`08006`), the session goes on.
    /// - The primary with a client request in flight: the server's FATAL
    ///   (already forwarded as the answer) or, when it just vanished,
    ///   `08007` (the statement may have committed); the session ends.
    /// - The primary inside the client's transaction: it did not commit;
    ///   the session ends (nothing more may run outside the transaction).
    /// - Session mode, between transactions: the session's state is gone;
    ///   the session ends, as it would with PostgreSQL itself.
    /// - Transaction mode, between transactions: nothing to tell (the next
    ///   transaction takes another connection).
    ///
    /// Ending the session returns an error after the client was told.
    pub(super) async fn server_lost(&mut self, how: Lost) -> Result<(), Error> {
        let Some(server) = self.server.take() else {
            return Ok(());
        };
        self.standby_deadline = None;
        self.left_state = false;
        if how != Lost::Dropped {
            tracing::debug!(node = %server.conn.node, "server connection lost");
            if let Some(hint) = &self.shared.hint {
                hint(&server.conn.node, "08006");
            }
        }
        let owed = self.tracker.owed_ready();
        let asked = self.tracker.client_waiting();
        self.tracker.clear();
        if self.lsn_probe.take().is_some() {
            // The commit's position is unknown: read-your-writes falls back
            // to the primary.
            self.wrote(None);
        }
        self.transaction_done(Some(&server));
        let in_transaction = self.tx_status != b'I';
        self.tx_status = b'I';
        if !server.primary {
            self.server = self.parked.take();
            if !asked {
                return Ok(());
            }
            // Told the way a server reports an error, for every request
            // still unanswered (pipelined ones never ran: none may look
            // successful). With no Sync sent yet, the client's messages
            // are dropped until its Sync.
            self.out.clear();
            let e = Error::ReadLost;
            for i in 0..owed.max(1) {
                if i > 0 || how != Lost::Told {
                    messages::error(&mut self.out, "ERROR", e.sqlstate(), &e.client_message());
                }
                if owed > 0 {
                    messages::ready(&mut self.out, b'I');
                }
            }
            self.discarding = owed == 0;
            return self.client.write_all(&self.out).await.map_err(Error::Io);
        }
        let end = if asked {
            Some(Error::OutcomeUnknown)
        } else if in_transaction {
            Some(Error::TransactionLost)
        } else if self.shared.config.pool_mode == PoolMode::Session {
            Some(Error::SessionLost)
        } else {
            None
        };
        let Some(e) = end else {
            return Ok(());
        };
        if how == Lost::Told {
            tracing::debug!(node = %server.conn.node, "client session ends with its server's FATAL");
            return Err(e);
        }
        Err(self.end_session(e).await)
    }
}

/// Why a server connection is given up.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(super) enum Lost {
    /// It broke (closed, reset, unreadable).
    Broken,
    /// It said FATAL, which the client got (as the answer to its oldest
    /// request, or unasked).
    Told,
    /// The topology no longer allows it.
    Dropped,
}

/// The first column of a DataRow body, as text.
fn first_text(body: &[u8]) -> Option<&str> {
    let len = i32::from_be_bytes(body.get(2..6)?.try_into().ok()?);
    let len = usize::try_from(len).ok()?;
    std::str::from_utf8(body.get(6..6 + len)?).ok()
}

/// Whether a CommandComplete tag is of a command that can leave state in
/// the server session past its transaction (temp objects live in a temp
/// schema, so their CREATE tags count; SET also covers SET LOCAL, which
/// costs only a needless reset).
fn leaves_state(tag: &[u8]) -> bool {
    const TAGS: [&[u8]; 10] = [
        b"SET\0",
        b"RESET\0",
        b"LISTEN\0",
        b"PREPARE\0",
        b"DECLARE CURSOR\0",
        b"CREATE TABLE",
        b"CREATE VIEW\0",
        b"CREATE SEQUENCE\0",
        b"CREATE TYPE\0",
        b"CREATE DOMAIN\0",
    ];
    TAGS.iter().any(|t| tag.starts_with(t)) || tag == b"LOAD\0"
}

/// Whether an ErrorResponse body ends the session (severity comes first).
pub(super) fn is_fatal(body: &[u8]) -> bool {
    body.starts_with(b"SFATAL\0") || body.starts_with(b"SPANIC\0")
}
