//! A pool's size, which a reload may change while connections are lent.
//!
//! The semaphore holds one permit per connection the pool may open.
//! Growing adds permits. Shrinking forgets the permits that are free now
//! and records the rest as a debt: a lent connection whose permit comes
//! back while the debt lasts forgets its permit instead of returning it,
//! so the pool settles at its new size as connections close, and no
//! connection is closed under a client.

use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::Arc;

use tokio::sync::{OwnedSemaphorePermit, Semaphore};

/// The size and the permits still owed after a shrink.
#[derive(Debug)]
pub(crate) struct Size {
    size: AtomicUsize,
    debt: Arc<AtomicUsize>,
}

impl Size {
    pub(crate) fn new(size: usize) -> Self {
        Self {
            size: AtomicUsize::new(size),
            debt: Arc::new(AtomicUsize::new(0)),
        }
    }

    /// The most connections the pool may have open.
    pub(crate) fn get(&self) -> usize {
        self.size.load(Ordering::Acquire)
    }

    /// Connections open (idle, lent or being opened): every permit not free,
    /// less those owed (they will not come back as room).
    pub(crate) fn open(&self, permits: &Semaphore) -> usize {
        (self.get() + self.debt.load(Ordering::Acquire)).saturating_sub(permits.available_permits())
    }

    /// Sets the size to `new`.
    pub(crate) fn resize(&self, permits: &Semaphore, new: usize) {
        let old = self.size.swap(new, Ordering::AcqRel);
        if new > old {
            let mut grow = new - old;
            // Room still owed cancels first.
            let _ = self
                .debt
                .fetch_update(Ordering::AcqRel, Ordering::Acquire, |d| {
                    let cancel = d.min(grow);
                    grow -= cancel;
                    Some(d - cancel)
                });
            permits.add_permits(grow);
        } else if old > new {
            self.debt.fetch_add(old - new, Ordering::AcqRel);
            self.settle(permits);
        }
    }

    /// Pays what is owed from the free permits (a permit released without
    /// a connection, e.g. a failed connect, comes back to the semaphore).
    pub(crate) fn settle(&self, permits: &Semaphore) {
        let _ = self
            .debt
            .fetch_update(Ordering::AcqRel, Ordering::Acquire, |d| {
                (d > 0).then(|| d - permits.forget_permits(d))
            });
    }

    /// A connection's permit, forgotten on release while room is owed.
    pub(crate) fn hold(&self, permit: OwnedSemaphorePermit) -> PoolPermit {
        PoolPermit {
            permit: Some(permit),
            debt: self.debt.clone(),
        }
    }
}

/// The permit an open connection holds.
#[derive(Debug)]
pub(crate) struct PoolPermit {
    permit: Option<OwnedSemaphorePermit>,
    debt: Arc<AtomicUsize>,
}

impl Drop for PoolPermit {
    fn drop(&mut self) {
        let owed = self
            .debt
            .fetch_update(Ordering::AcqRel, Ordering::Acquire, |d| d.checked_sub(1))
            .is_ok();
        if let (true, Some(permit)) = (owed, self.permit.take()) {
            permit.forget();
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn shrinking_takes_free_room_now_and_lent_room_as_it_comes_back() {
        let permits = Arc::new(Semaphore::new(3));
        let size = Size::new(3);
        let lent: Vec<PoolPermit> = (0..2)
            .filter_map(|_| permits.clone().try_acquire_owned().ok())
            .map(|p| size.hold(p))
            .collect();
        assert_eq!(size.open(&permits), 2);
        size.resize(&permits, 1);
        assert_eq!(permits.available_permits(), 0, "the free one is gone");
        assert_eq!(size.open(&permits), 2, "both lent ones still open");
        drop(lent);
        assert_eq!(permits.available_permits(), 1, "one came back as room");
        assert_eq!(size.open(&permits), 0);
        size.resize(&permits, 4);
        assert_eq!(permits.available_permits(), 4);
    }

    #[test]
    fn growing_cancels_what_a_shrink_still_owes() {
        let permits = Arc::new(Semaphore::new(2));
        let size = Size::new(2);
        let lent: Vec<PoolPermit> = (0..2)
            .filter_map(|_| permits.clone().try_acquire_owned().ok())
            .map(|p| size.hold(p))
            .collect();
        size.resize(&permits, 1);
        size.resize(&permits, 3);
        assert_eq!(permits.available_permits(), 1);
        drop(lent);
        assert_eq!(permits.available_permits(), 3);
        assert_eq!(size.open(&permits), 0);
    }
}
