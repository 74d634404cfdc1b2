//! How a session stops or refuses: a client's protocol violation, a FATAL
//! that ends the session, a standby read given up after its deadline, a
//! batch refused with an error, the messages dropped after one.

use super::*;

impl Relay<'_> {
    /// A protocol violation by the client: logged where an operator sees
    /// it, answered with `08P01` as PostgreSQL does, and the session ends.
    pub(super) async fn violation(&mut self, e: Error) -> Error {
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

    /// Tells the client why its session cannot go on (a FATAL, as a
    /// server says it) and returns the error that ends the session.
    pub(super) async fn end_session(&mut self, e: Error) -> Error {
        tracing::debug!(error = %e, "client session ends");
        self.out.clear();
        messages::error(&mut self.out, "FATAL", e.sqlstate(), &e.client_message());
        // The client may be gone already; the session ends either way.
        let _ = self.client.write_all(&self.out).await;
        e
    }

    /// When a read sent to a standby now must have heard from it.
    pub(super) fn standby_read_deadline(&self) -> Option<Instant> {
        let timeout = self.shared.config.standby_read_timeout;
        (!timeout.is_zero()).then(|| Instant::now() + timeout)
    }

    /// A standby said nothing for `standby_read_timeout` while a read ran
    /// on it: the read fails (it is never sent again: a read's outcome
    /// changes nothing, but the client must not wait on a hung server),
    /// and new reads avoid the standby at once.
    pub(super) async fn standby_silent(&mut self) -> Result<(), Error> {
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

    /// Answers a batch with an error instead of running it: one
    /// ErrorResponse, a ReadyForQuery for each Query/Sync, and if the batch
    /// ends inside an extended-protocol exchange, its messages are dropped
    /// until the Sync.
    pub(super) async fn refuse(&mut self, batch: &[u8], e: &Error) -> Result<(), Error> {
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
    pub(super) async fn discard_until_sync<'b>(
        &mut self,
        batch: &'b [u8],
    ) -> Result<&'b [u8], Error> {
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
}
