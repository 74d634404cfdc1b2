//! Client messages too long to hold (a huge query, a Bind with big
//! parameters, COPY data in big pieces): routed on their head, then streamed
//! to the server piece by piece, so what one client costs stays bounded
//! whatever it sends.

use super::*;
use crate::frame::CHUNK;
use crate::prepared::Head;

/// Room for the names at the front of a Parse (one) or Bind (two).
const NAMES_MAX: usize = 4096;

impl Relay<'_> {
    /// Streams one message of `len` body bytes, whose tag `next_input`
    /// gave, to the server of the client's transaction.
    pub(super) async fn on_large(
        &mut self,
        frames: &mut FrameReader<ReadHalf>,
        tag: u8,
        len: usize,
    ) -> Result<(), Error> {
        if !matches!(tag, b'Q' | b'P' | b'B' | b'F' | b'd') {
            return Err(Error::Protocol(format!(
                "a message of type {tag} cannot be {len} bytes long"
            )));
        }
        let head = read_names(frames, tag, len).await?;
        if self.discarding {
            // As for any message after an error, until the Sync.
            return drain(frames).await;
        }
        let pooled = self.shared.config.pool_mode == PoolMode::Transaction;
        let between = self.tracker.is_empty() && self.tx_status == b'I';
        if between || self.server.is_none() {
            if tag == b'P' && pooled && !head.starts_with(&[0]) {
                drain(frames).await?;
                return self.refuse_named_parse(len).await;
            }
            // Not classified (the text is not held): the primary's.
            if let Err(e) = self.route(&[]).await {
                tracing::warn!(error = %e, "no server for a client transaction");
                self.transaction_done(None);
                drain(frames).await?;
                return self.refuse(&[tag, 0, 0, 0, 4], &e).await;
            }
        }
        let done = self.begin_send(|cx| prepared::rewrite_head(tag, &head, len, cx));
        let Some(server) = self.server.as_mut() else {
            return drain(frames).await;
        };
        if done == Some(Head::NamedParseTooLong) {
            drain(frames).await?;
            return self.refuse_named_parse(len).await;
        }
        if tag == b'Q' {
            server.pool.stats.queries.fetch_add(1, Ordering::Relaxed);
            server.pool.recorder.queries(1);
        }
        if server.conn.writer.write_all(&self.to_server).await.is_err() {
            drain(frames).await?;
            return self.server_lost(Lost::Broken).await;
        }
        loop {
            let piece = frames.chunk(CHUNK).await?;
            if piece.is_empty() {
                return Ok(());
            }
            if server.conn.writer.write_all(&piece).await.is_err() {
                // The server cannot have run a message it did not get
                // whole, but what came before it in the pipeline may have.
                drain(frames).await?;
                return self.server_lost(Lost::Broken).await;
            }
        }
    }

    /// A named Parse too long to hold in transaction pooling: refused like
    /// a failed Parse (the client's messages up to its Sync are dropped).
    async fn refuse_named_parse(&mut self, len: usize) -> Result<(), Error> {
        self.out.clear();
        messages::error_with_hint(
            &mut self.out,
            "ERROR",
            "54000",
            &format!("pgha: a statement of {len} bytes cannot be prepared by name in transaction pooling"),
            "prepare it as the unnamed statement, or use pool_mode = session",
        );
        self.discarding = true;
        self.client.write_all(&self.out).await.map_err(Error::Io)
    }
}

/// The names at the front of a Parse (its statement) or Bind (portal and
/// statement), read off the streamed body; nothing for other messages.
async fn read_names(
    frames: &mut FrameReader<ReadHalf>,
    tag: u8,
    len: usize,
) -> Result<BytesMut, Error> {
    let names = match tag {
        b'P' => 1,
        b'B' => 2,
        _ => return Ok(BytesMut::new()),
    };
    let mut head = BytesMut::new();
    while head.iter().filter(|&&b| b == 0).count() < names {
        if head.len() >= NAMES_MAX.min(len) {
            return Err(Error::Protocol(
                "names in a message are not terminated".into(),
            ));
        }
        // Byte by byte past the names would cost a read each: take what
        // is there, and keep only up to the last name's end.
        let piece = frames.chunk(NAMES_MAX - head.len()).await?;
        head.extend_from_slice(&piece);
    }
    // What was read past the names goes out with the head unchanged.
    Ok(head)
}

/// Reads and drops the rest of a streamed body.
async fn drain(frames: &mut FrameReader<ReadHalf>) -> Result<(), Error> {
    while !frames.chunk(CHUNK).await?.is_empty() {}
    Ok(())
}

impl Relay<'_> {
    /// Streams one server message of `len` body bytes (a huge row, COPY
    /// data, an error with a huge text) to the client, or drops it if it
    /// answers the proxy's own request. Once part of it has reached the
    /// client, a server that stops (or a standby silent past its read
    /// deadline) ends the session: the client's stream cannot be mended.
    pub(super) async fn on_server_large(&mut self, tag: u8, len: usize) -> Result<(), Error> {
        let Some(server) = self.server.as_mut() else {
            return Ok(());
        };
        let unasked = self.tracker.is_empty();
        let statements = &mut server.conn.statements;
        let disposition = self.tracker.on_server(tag, |id| {
            statements.remove(&id);
        });
        let silence = (!server.primary)
            .then_some(self.shared.config.standby_read_timeout)
            .filter(|t| !t.is_zero());
        let reader = &mut server.conn.reader;
        // The severity leads an ErrorResponse: enough of it to tell FATAL.
        let mut first = BytesMut::new();
        while first.len() < 16.min(len) {
            first.extend_from_slice(&piece(reader, silence).await?);
        }
        let fatal = tag == b'E' && reply::is_fatal(&first);
        let forward = disposition == Disposition::Forward && !(fatal && unasked);
        if forward {
            self.out.clear();
            self.out.put_u8(tag);
            self.out.put_u32((len + 4) as u32);
            self.client.write_all(&self.out).await.map_err(Error::Io)?;
            self.client.write_all(&first).await.map_err(Error::Io)?;
        }
        loop {
            let more = piece(reader, silence).await?;
            if more.is_empty() {
                break;
            }
            if forward {
                self.client.write_all(&more).await.map_err(Error::Io)?;
            }
        }
        self.out.clear();
        while let Some(tag) = self.tracker.next_synthetic() {
            put_empty(&mut self.out, tag);
        }
        if !self.out.is_empty() {
            self.client.write_all(&self.out).await.map_err(Error::Io)?;
        }
        if self.standby_deadline.is_some() {
            self.standby_deadline = self.standby_read_deadline();
        }
        if fatal {
            let how = if forward { Lost::Told } else { Lost::Broken };
            return self.server_lost(how).await;
        }
        Ok(())
    }
}

/// The next piece of a streamed server message, within `silence` if given.
async fn piece(
    reader: &mut FrameReader<ReadHalf>,
    silence: Option<std::time::Duration>,
) -> Result<BytesMut, Error> {
    match silence {
        None => reader.chunk(CHUNK).await,
        Some(limit) => tokio::time::timeout(limit, reader.chunk(CHUNK))
            .await
            .unwrap_or(Err(Error::ReadLost)),
    }
}
