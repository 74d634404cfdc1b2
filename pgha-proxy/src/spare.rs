//! Spare I/O buffers, shared by the sessions of a thread.
//!
//! A client between transactions holds no buffer (idle clients must cost
//! bytes, not kilobytes), so a session that starts a transaction needs
//! fresh ones: its read buffer and the batch it writes to the server.
//! Allocating and freeing them on every transaction was three of the five
//! heap allocations a transaction made. Instead, a session done with its
//! buffers leaves them here and the next busy session takes them, as
//! PgBouncer lends its packet buffers: the memory is that of the busy
//! sessions, never of the idle ones.
//!
//! Per thread (the daemon's proxy runs on one; an embedding runtime with
//! several threads keeps one stock per thread, and a buffer may move
//! between them), bounded in count and in the size of what is kept.

use std::cell::RefCell;

use bytes::BytesMut;

/// Buffers kept per thread: about as many as sessions run at once on a
/// busy thread; more are freed.
const KEEP: usize = 64;

/// Buffers larger than this (grown for a big query) are freed, not kept:
/// the stock stays under `KEEP × MAX_KEPT` bytes, and a client reader
/// that waits with a spare (session pooling keeps its busy loop, and a
/// read started, between transactions) holds at most this much.
const MAX_KEPT: usize = 1024;

/// The size of a new buffer: a typical transaction's batch (a query, or
/// Parse/Bind/Describe/Execute/Sync) fits without growing, as does a
/// client reader's first read (`frame::LEAN_FIRST_READ`). Smaller ones
/// are not kept.
const MIN_KEPT: usize = 256;

thread_local! {
    static STOCK: RefCell<Vec<BytesMut>> = const { RefCell::new(Vec::new()) };
}

/// An empty buffer with room for at least `MIN_KEPT` bytes: a spare one
/// if there is one, else a new one.
pub(crate) fn take() -> BytesMut {
    STOCK
        .try_with(|s| s.borrow_mut().pop())
        .ok()
        .flatten()
        .unwrap_or_else(|| BytesMut::with_capacity(MIN_KEPT))
}

/// Leaves `buf` for the next session that needs one (emptied), or frees
/// it when it is too small, too large, or enough are kept.
pub(crate) fn give(mut buf: BytesMut) {
    let cap = buf.capacity();
    if !(MIN_KEPT..=MAX_KEPT).contains(&cap) {
        return;
    }
    buf.clear();
    // During thread teardown the stock may be gone: the buffer is freed.
    let _ = STOCK.try_with(|s| {
        let mut s = s.borrow_mut();
        if s.len() < KEEP {
            s.push(buf);
        }
    });
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn buffers_are_reused_emptied_and_only_within_bounds() {
        // Whatever other code left on this thread first.
        STOCK.with(|s| s.borrow_mut().clear());
        assert_eq!(take().capacity(), MIN_KEPT, "nothing kept yet: a new one");
        let mut buf = BytesMut::with_capacity(1024);
        buf.extend_from_slice(b"left over");
        let ptr = buf.as_ptr();
        give(buf);
        let again = take();
        assert!(again.is_empty());
        assert_eq!(again.as_ptr(), ptr, "the same allocation");
        give(BytesMut::with_capacity(16));
        give(BytesMut::with_capacity(MAX_KEPT + 1));
        assert_eq!(
            take().capacity(),
            MIN_KEPT,
            "too small and too large: freed"
        );
        for _ in 0..KEEP + 10 {
            give(BytesMut::with_capacity(512));
        }
        let kept = STOCK.with(|s| s.borrow().len());
        assert_eq!(kept, KEEP);
    }
}
