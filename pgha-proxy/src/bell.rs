//! The sessions' bell: wakes every session when something it must look at
//! has changed — the drain phase, or a topology that may no longer allow a
//! server connection a session holds.
//!
//! A session registers its task's waker once, for its whole life, and
//! checks what it watches (an atomic each) whenever its task runs. Waiting
//! on a `watch` or a `Notify` instead registers and unregisters a waiter,
//! two locks, each time a session waits for its server: once per
//! transaction. Rings are rare (a failover, a node going down, the proxy
//! stopping): each wakes every session once, and those with nothing to do
//! go back to sleep.

use std::collections::HashMap;
use std::sync::Mutex;
use std::task::{Context, Waker};

/// Every session's waker, by the session's key (its client's backend pid,
/// unique per proxy until the pid counter wraps after 2^31 sessions; two
/// sessions sharing a key would share one entry, and the first to end
/// would take the other's place at the bell with it).
#[derive(Debug, Default)]
pub(crate) struct Bell {
    wakers: Mutex<HashMap<i32, Waker>>,
}

impl Bell {
    /// Wakes every registered session.
    pub(crate) fn ring(&self) {
        let wakers = self.wakers.lock().unwrap_or_else(|p| p.into_inner());
        for waker in wakers.values() {
            waker.wake_by_ref();
        }
    }

    fn set(&self, key: i32, waker: &Waker) {
        let mut wakers = self.wakers.lock().unwrap_or_else(|p| p.into_inner());
        wakers.insert(key, waker.clone());
    }

    fn forget(&self, key: i32) {
        let mut wakers = self.wakers.lock().unwrap_or_else(|p| p.into_inner());
        wakers.remove(&key);
    }

    /// Sessions registered now.
    #[cfg(test)]
    fn registered(&self) -> usize {
        self.wakers.lock().map(|w| w.len()).unwrap_or(0)
    }
}

/// One session's place at the bell; leaves it when dropped.
#[derive(Debug)]
pub(crate) struct Listener<'a> {
    bell: &'a Bell,
    key: i32,
    /// The waker registered, to tell whether a poll comes from elsewhere
    /// (a tokio task's waker stays the same for the task's life).
    waker: Option<Waker>,
}

impl<'a> Listener<'a> {
    pub(crate) fn new(bell: &'a Bell, key: i32) -> Self {
        Self {
            bell,
            key,
            waker: None,
        }
    }

    /// Makes sure a ring wakes the task polling with `cx`: a lock on the
    /// first poll only.
    pub(crate) fn listen(&mut self, cx: &Context<'_>) {
        if self.waker.as_ref().is_some_and(|w| w.will_wake(cx.waker())) {
            return;
        }
        self.bell.set(self.key, cx.waker());
        self.waker = Some(cx.waker().clone());
    }
}

impl Drop for Listener<'_> {
    fn drop(&mut self) {
        if self.waker.is_some() {
            self.bell.forget(self.key);
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::sync::atomic::{AtomicUsize, Ordering};
    use std::sync::Arc;
    use std::task::Wake;

    struct Count(AtomicUsize);

    impl Wake for Count {
        fn wake(self: Arc<Self>) {
            self.0.fetch_add(1, Ordering::SeqCst);
        }
    }

    #[test]
    fn a_ring_wakes_each_listener_once_until_it_leaves() {
        let bell = Bell::default();
        let count = Arc::new(Count(AtomicUsize::new(0)));
        let waker = Waker::from(count.clone());
        let cx = Context::from_waker(&waker);
        let mut a = Listener::new(&bell, 1);
        let mut b = Listener::new(&bell, 2);
        a.listen(&cx);
        a.listen(&cx);
        b.listen(&cx);
        assert_eq!(bell.registered(), 2);
        bell.ring();
        assert_eq!(count.0.load(Ordering::SeqCst), 2);
        // Still registered: a ring does not use the registration up.
        bell.ring();
        assert_eq!(count.0.load(Ordering::SeqCst), 4);
        drop(a);
        bell.ring();
        assert_eq!(count.0.load(Ordering::SeqCst), 5);
        drop(b);
        assert_eq!(bell.registered(), 0);
    }
}
