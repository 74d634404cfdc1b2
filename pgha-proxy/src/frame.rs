//! Framing: whole protocol messages out of a byte stream, with the length
//! checked before anything is allocated.

use bytes::{Buf, BytesMut};
use tokio::io::{AsyncRead, AsyncReadExt};

use crate::Error;

/// A tagged message's header: one tag byte, then a 4-byte length that
/// counts itself but not the tag.
const HEADER: usize = 5;

/// Reads tagged messages into one reused buffer.
#[derive(Debug)]
pub struct FrameReader<R> {
    inner: R,
    buf: BytesMut,
    max_message: usize,
    /// Frees the buffer whenever it is drained and starts the next read
    /// small: a connection that sits idle costs bytes, not kilobytes.
    lean: bool,
}

/// A lean reader's first read between batches: room for a typical query
/// (`SELECT … WHERE id = $1` with its Bind/Execute/Sync is under 200 bytes).
const LEAN_FIRST_READ: usize = 256;

/// Room kept free for a read otherwise.
const READ_ROOM: usize = 4096;

impl<R: AsyncRead + Unpin> FrameReader<R> {
    /// A reader refusing messages longer than `max_message` bytes.
    pub fn new(inner: R, max_message: usize) -> Self {
        Self {
            inner,
            buf: BytesMut::new(),
            max_message,
            lean: false,
        }
    }

    /// A reader for a connection that may sit idle for long (a client):
    /// no buffer is held between batches.
    pub fn lean(inner: R, max_message: usize) -> Self {
        Self {
            lean: true,
            ..Self::new(inner, max_message)
        }
    }

    /// The next whole message (tag, length and body) as it arrived, or
    /// `None` at a clean end of stream between messages.
    pub async fn next(&mut self) -> Result<Option<BytesMut>, Error> {
        loop {
            if let Some(total) = complete_length(&self.buf, self.max_message)? {
                return Ok(Some(self.buf.split_to(total)));
            }
            if !self.fill().await? {
                return Ok(None);
            }
        }
    }

    /// Every whole message already received (at least one), as one buffer
    /// to forward with a single write; `None` at a clean end of stream.
    /// A query's reply (RowDescription, DataRow…, CommandComplete,
    /// ReadyForQuery) usually arrives together: one write instead of four.
    pub async fn next_batch(&mut self) -> Result<Option<BytesMut>, Error> {
        loop {
            let mut total = 0;
            while let Some(len) = complete_length(&self.buf[total..], self.max_message)? {
                total += len;
            }
            if total > 0 {
                let batch = self.buf.split_to(total);
                if self.lean && self.buf.is_empty() {
                    // The batch keeps the allocation alive only until the
                    // caller has forwarded it.
                    self.buf = BytesMut::new();
                }
                return Ok(Some(batch));
            }
            if !self.fill().await? {
                return Ok(None);
            }
        }
    }

    /// Reads more bytes; false at a clean end of stream (between messages).
    async fn fill(&mut self) -> Result<bool, Error> {
        let room = self.buf.capacity() - self.buf.len();
        if self.lean && self.buf.is_empty() {
            // Waiting for the next batch (perhaps for hours): small. A
            // read that was interrupted comes back here; it stays small.
            if self.buf.capacity() == 0 {
                self.buf.reserve(LEAN_FIRST_READ);
            }
        } else if room < READ_ROOM {
            // After a small first read that filled up, a big message is
            // arriving: grow by a useful step.
            self.buf.reserve(2 * READ_ROOM);
        }
        let n = self
            .inner
            .read_buf(&mut self.buf)
            .await
            .map_err(Error::Io)?;
        if n > 0 {
            Ok(true)
        } else if self.buf.is_empty() {
            Ok(false)
        } else {
            Err(Error::Protocol(
                "connection closed in the middle of a message".into(),
            ))
        }
    }

    /// Waits until bytes can be read (or the stream has ended) without
    /// reading them: no buffer is needed for the wait. `confirm` looks at
    /// the bytes (a peek: a system call) instead of trusting the socket's
    /// readiness flag, which an exchange read by other code may have left
    /// set; without it, a stale flag only means the wait ends early.
    pub async fn readable(&mut self, confirm: bool) -> std::io::Result<()>
    where
        R: Readiness,
    {
        if !self.buf.is_empty() {
            return Ok(());
        }
        let inner = &mut self.inner;
        std::future::poll_fn(|cx| inner.poll_read_ready(cx, confirm)).await
    }

    /// Bytes already read past the last message (none in the normal case).
    pub fn buffered(&self) -> &[u8] {
        &self.buf
    }

    /// The underlying reader.
    pub fn get_mut(&mut self) -> &mut R {
        &mut self.inner
    }
}

/// A stream that can say when it has bytes to read without reading them.
pub trait Readiness {
    /// Ready once a read would not wait (or the stream cannot tell);
    /// with `confirm`, once bytes (or the end) are really there.
    fn poll_read_ready(
        &mut self,
        cx: &mut std::task::Context<'_>,
        confirm: bool,
    ) -> std::task::Poll<std::io::Result<()>>;
}

/// The full length of the first message in `buf` once all of it is there.
pub fn complete_length(buf: &[u8], max_message: usize) -> Result<Option<usize>, Error> {
    if buf.len() < HEADER {
        return Ok(None);
    }
    let declared = (&buf[1..5]).get_u32() as usize;
    if declared < 4 {
        return Err(Error::Protocol(format!(
            "message length {declared} is below 4"
        )));
    }
    if declared > max_message {
        return Err(Error::Protocol(format!(
            "message of {declared} bytes is over the limit of {max_message}"
        )));
    }
    let total = declared + 1;
    Ok((buf.len() >= total).then_some(total))
}

/// The whole messages in a batch from [`FrameReader::next_batch`].
pub fn messages(mut batch: &[u8]) -> impl Iterator<Item = &[u8]> {
    std::iter::from_fn(move || {
        let len = complete_length(batch, usize::MAX).ok().flatten()?;
        let (message, rest) = batch.split_at(len);
        batch = rest;
        Some(message)
    })
}

/// The body of a whole message (after tag and length).
pub fn body(message: &[u8]) -> &[u8] {
    message.get(HEADER..).unwrap_or_default()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn lengths_are_checked_before_allocation() {
        assert_eq!(complete_length(b"Q\0\0", 100).ok(), Some(None));
        assert_eq!(complete_length(b"Q\0\0\0\x05x", 100).ok(), Some(Some(6)));
        assert_eq!(complete_length(b"Q\0\0\0\x05", 100).ok(), Some(None));
        assert!(complete_length(b"Q\0\0\0\x03", 100).is_err());
        assert!(complete_length(b"Q\x7f\xff\xff\xff", 1 << 20).is_err());
    }

    #[tokio::test]
    async fn a_stream_is_split_into_whole_messages() {
        let bytes: &[u8] = b"Q\0\0\0\x09abcd\0Z\0\0\0\x05I";
        let mut reader = FrameReader::new(bytes, 1024);
        let first = reader.next().await.ok().flatten().unwrap_or_default();
        assert_eq!(&first[..], b"Q\0\0\0\x09abcd\0");
        assert_eq!(body(&first), b"abcd\0");
        let second = reader.next().await.ok().flatten().unwrap_or_default();
        assert_eq!(&second[..], b"Z\0\0\0\x05I");
        assert!(matches!(reader.next().await, Ok(None)));
    }

    #[tokio::test]
    async fn a_batch_holds_every_whole_message_received() {
        let bytes: &[u8] = b"C\0\0\0\x05xZ\0\0\0\x05IQ\0\0";
        let mut reader = FrameReader::new(bytes, 1024);
        let batch = reader.next_batch().await.ok().flatten().unwrap_or_default();
        let tags: Vec<u8> = messages(&batch).map(|m| m[0]).collect();
        assert_eq!(tags, b"CZ");
        assert!(
            reader.next_batch().await.is_err(),
            "a truncated tail is an error"
        );
    }

    #[tokio::test]
    async fn a_lean_reader_holds_no_buffer_between_batches() {
        let mut big = vec![b'Q'];
        big.extend_from_slice(&3005u32.to_be_bytes());
        big.extend(std::iter::repeat_n(b'x', 3001));
        let mut bytes = b"Z\0\0\0\x05I".to_vec();
        bytes.extend_from_slice(&big);
        let mut reader = FrameReader::lean(&bytes[..], 1 << 20);
        let first = reader.next_batch().await.ok().flatten().unwrap_or_default();
        let second = reader.next_batch().await.ok().flatten().unwrap_or_default();
        assert_eq!(first.len() + second.len(), bytes.len());
        assert_eq!(reader.buf.capacity(), 0, "drained: nothing held");
        assert!(matches!(reader.next_batch().await, Ok(None)));
    }

    #[tokio::test]
    async fn a_lean_reader_stays_small_while_its_reads_are_interrupted() {
        let (idle, _peer) = tokio::io::duplex(64);
        let mut reader = FrameReader::lean(idle, 1 << 20);
        for _ in 0..3 {
            let wait =
                tokio::time::timeout(std::time::Duration::from_millis(5), reader.next_batch());
            assert!(wait.await.is_err(), "nothing to read");
        }
        assert!(
            reader.buf.capacity() <= 2 * LEAN_FIRST_READ,
            "{}",
            reader.buf.capacity()
        );
    }

    #[tokio::test]
    async fn a_truncated_message_is_an_error() {
        let bytes: &[u8] = b"Q\0\0\0\x09ab";
        let mut reader = FrameReader::new(bytes, 1024);
        assert!(reader.next().await.is_err());
    }
}
