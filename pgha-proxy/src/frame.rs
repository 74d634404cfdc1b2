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
    // The three lengths below fit in 32 bits (a message's length field
    // has 32): kept so, a reader held by every idle client is 16 bytes
    // smaller.
    max_message: u32,
    /// Frees the buffer whenever it is drained and starts the next read
    /// small: a connection that sits idle costs bytes, not kilobytes.
    lean: bool,
    /// Messages longer than this are not held whole: [`Self::next_input`]
    /// gives their head and [`Self::chunk`] their body piece by piece.
    stream_over: u32,
    /// Body bytes of the streamed message not yet given out.
    streaming: u32,
}

/// What a client sent next (see [`FrameReader::next_input`]).
#[derive(Debug)]
pub enum Input {
    /// Whole messages, at least one.
    Batch(BytesMut),
    /// A message too long to hold: its tag and body length; the body
    /// follows through [`FrameReader::chunk`].
    Large {
        /// The message type.
        tag: u8,
        /// Bytes of body to stream.
        len: usize,
    },
}

/// The most a streamed message's body is read in at once.
pub const CHUNK: usize = 64 << 10;

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
            max_message: u32::try_from(max_message).unwrap_or(u32::MAX),
            lean: false,
            stream_over: u32::MAX,
            streaming: 0,
        }
    }

    /// Streams messages longer than `over` bytes instead of holding them
    /// (see [`Self::next_input`]).
    pub fn streaming_over(mut self, over: usize) -> Self {
        self.stream_over = u32::try_from(over).unwrap_or(u32::MAX);
        self
    }

    /// Every whole message already received (at least one) as one batch,
    /// or, when the next message is longer than the streaming threshold,
    /// its head (after the whole messages before it have been given out);
    /// `None` at a clean end of stream. A streamed body must be read to
    /// its end with [`Self::chunk`] before the next call.
    pub async fn next_input(&mut self) -> Result<Option<Input>, Error> {
        loop {
            let mut total = 0;
            // One look at each header (this runs for every batch both
            // ways): checked, then streamed, whole, or not all there yet.
            while let Some(declared) = declared(&self.buf[total..]) {
                check(declared, self.max_message as usize)?;
                if declared > self.stream_over as usize {
                    if total > 0 {
                        break;
                    }
                    let tag = self.buf[0];
                    self.buf.advance(HEADER);
                    // At most max_message, a u32.
                    self.streaming = (declared - 4) as u32;
                    return Ok(Some(Input::Large {
                        tag,
                        len: declared - 4,
                    }));
                }
                if self.buf.len() - total <= declared {
                    break;
                }
                total += declared + 1;
            }
            if total > 0 {
                return Ok(Some(Input::Batch(self.take_batch(total))));
            }
            if !self.fill().await? {
                return Ok(None);
            }
        }
    }

    /// The next piece (at most `max` bytes, at least one while any is
    /// left) of the body [`Self::next_input`] announced; empty at its end.
    pub async fn chunk(&mut self, max: usize) -> Result<BytesMut, Error> {
        if self.streaming == 0 {
            return Ok(BytesMut::new());
        }
        if self.buf.is_empty() {
            let more = self.fill().await?;
            if !more || self.buf.is_empty() {
                return Err(Error::Protocol(
                    "connection closed in the middle of a message".into(),
                ));
            }
        }
        let n = self.buf.len().min(self.streaming as usize).min(max.max(1));
        // n <= streaming, a u32.
        self.streaming -= n as u32;
        let piece = self.buf.split_to(n);
        if self.lean && self.buf.is_empty() && self.streaming == 0 {
            self.buf = BytesMut::new();
        }
        Ok(piece)
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
            if let Some(total) = complete_length(&self.buf, self.max_message as usize)? {
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
            while let Some(len) = complete_length(&self.buf[total..], self.max_message as usize)? {
                total += len;
            }
            if total > 0 {
                return Ok(Some(self.take_batch(total)));
            }
            if !self.fill().await? {
                return Ok(None);
            }
        }
    }

    /// The first `total` bytes, whole messages, as a batch.
    fn take_batch(&mut self, total: usize) -> BytesMut {
        if self.lean && total == self.buf.len() {
            // The usual case: the batch is all there is. The buffer itself
            // goes (no shared-ownership record to allocate, as splitting
            // needs), and the reader holds nothing until its next read;
            // the caller may hand the buffer on (`spare::give`).
            return std::mem::take(&mut self.buf);
        }
        let batch = self.buf.split_to(total);
        if self.lean && self.buf.is_empty() {
            // The batch keeps the allocation alive only until the
            // caller has forwarded it.
            self.buf = BytesMut::new();
        }
        batch
    }

    /// Gives up an empty buffer (a read that was started and interrupted
    /// leaves one) to the thread's spares: a connection about to sit idle
    /// holds none, and the next busy session's read needs no allocation.
    pub fn shed(&mut self) {
        if self.buf.is_empty() && self.buf.capacity() > 0 {
            crate::spare::give(std::mem::take(&mut self.buf));
        }
    }

    /// Reads more bytes; false at a clean end of stream (between messages).
    async fn fill(&mut self) -> Result<bool, Error> {
        let room = self.buf.capacity() - self.buf.len();
        if self.streaming > 0 {
            // A streamed body: one bounded piece at a time.
            if room == 0 {
                self.buf.reserve((self.streaming as usize).min(CHUNK));
            }
        } else if self.lean && self.buf.is_empty() {
            // Waiting for the next batch (perhaps for hours): small. A
            // read that was interrupted comes back here; it stays small.
            if self.buf.capacity() == 0 {
                // A spare buffer of the thread's when there is one.
                self.buf = crate::spare::take();
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
    let Some(declared) = declared(buf) else {
        return Ok(None);
    };
    check(declared, max_message)?;
    let total = declared + 1;
    Ok((buf.len() >= total).then_some(total))
}

/// The length the first message in `buf` declares (counting itself, not
/// its tag), once its header is there.
#[inline]
fn declared(buf: &[u8]) -> Option<usize> {
    let length: [u8; 4] = buf.get(1..HEADER)?.try_into().ok()?;
    Some(u32::from_be_bytes(length) as usize)
}

/// A declared length a message may have.
#[inline]
fn check(declared: usize, max_message: usize) -> Result<(), Error> {
    if declared < 4 || declared > max_message {
        return Err(length_error(declared, max_message));
    }
    Ok(())
}

#[cold]
fn length_error(declared: usize, max_message: usize) -> Error {
    if declared < 4 {
        Error::Protocol(format!("message length {declared} is below 4"))
    } else {
        Error::Protocol(format!(
            "message of {declared} bytes is over the limit of {max_message}"
        ))
    }
}

/// The whole messages in a batch from [`FrameReader::next_batch`].
pub fn messages(mut batch: &[u8]) -> impl Iterator<Item = &[u8]> {
    std::iter::from_fn(move || {
        // Checked when read: only the lengths are needed here.
        let len = declared(batch).filter(|&d| d >= 4)? + 1;
        if batch.len() < len {
            return None;
        }
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
    async fn a_lean_reader_hands_over_its_whole_buffer() {
        let bytes: &[u8] = b"Q\0\0\0\x09abcd\0";
        let mut reader = FrameReader::lean(bytes, 1024);
        let Ok(Some(Input::Batch(batch))) = reader.next_input().await else {
            panic!("a batch");
        };
        assert_eq!(&batch[..], bytes);
        assert!(
            batch.capacity() >= LEAN_FIRST_READ,
            "the read buffer itself, not a part split off it"
        );
        assert_eq!(reader.buf.capacity(), 0, "nothing held");
        crate::spare::give(batch);
        reader.shed();
        assert!(matches!(reader.next_input().await, Ok(None)));
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
    async fn a_message_over_the_threshold_comes_as_a_head_and_bounded_pieces() {
        let mut bytes = b"S\0\0\0\x04".to_vec();
        bytes.push(b'Q');
        bytes.extend_from_slice(&(4 + 300u32).to_be_bytes());
        bytes.extend(std::iter::repeat_n(b'x', 300));
        bytes.extend_from_slice(b"S\0\0\0\x04");
        let mut reader = FrameReader::lean(&bytes[..], 1 << 20).streaming_over(100);
        let Ok(Some(Input::Batch(first))) = reader.next_input().await else {
            panic!("the whole message before it first");
        };
        assert_eq!(&first[..], b"S\0\0\0\x04");
        let Ok(Some(Input::Large { tag, len })) = reader.next_input().await else {
            panic!("then the head");
        };
        assert_eq!((tag, len), (b'Q', 300));
        let mut body = Vec::new();
        loop {
            let piece = reader.chunk(64).await.unwrap_or_default();
            if piece.is_empty() {
                break;
            }
            assert!(piece.len() <= 64);
            body.extend_from_slice(&piece);
        }
        assert_eq!(body, vec![b'x'; 300]);
        assert!(matches!(
            reader.next_input().await,
            Ok(Some(Input::Batch(_)))
        ));
        assert!(matches!(reader.next_input().await, Ok(None)));
        // Cut short: an error, not a short body.
        let mut cut = FrameReader::new(&bytes[5..200], 1 << 20).streaming_over(100);
        assert!(matches!(
            cut.next_input().await,
            Ok(Some(Input::Large { .. }))
        ));
        let mut failed = false;
        for _ in 0..10 {
            match cut.chunk(64).await {
                Err(_) => failed = true,
                Ok(p) if p.is_empty() => break,
                Ok(_) => continue,
            }
            break;
        }
        assert!(failed, "a body cut short is an error");
        // Over max_message: refused before anything is read.
        let mut over = FrameReader::new(&bytes[5..], 200).streaming_over(100);
        assert!(over.next_input().await.is_err());
    }

    #[tokio::test]
    async fn a_truncated_message_is_an_error() {
        let bytes: &[u8] = b"Q\0\0\0\x09ab";
        let mut reader = FrameReader::new(bytes, 1024);
        assert!(reader.next().await.is_err());
    }
}
