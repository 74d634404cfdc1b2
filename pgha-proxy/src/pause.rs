//! Holding new transactions: the admin console's `PAUSE`/`RESUME` and the
//! monitor's planned switchover ([`SwitchoverHook`]) both use one gate.
//!
//! While paused, a client's next transaction waits before it gets a
//! server; transactions already running go on, and [`PauseGate::pause`]
//! returns once they are done (or its time is up).

use std::sync::atomic::{AtomicBool, AtomicUsize, Ordering};
use std::sync::Arc;
use std::time::Duration;

use async_trait::async_trait;
use pgha_core::SwitchoverHook;
use tokio::sync::{watch, Notify};

/// The gate every session of a proxy passes before a transaction.
#[derive(Debug)]
pub struct PauseGate {
    paused: watch::Sender<bool>,
    /// `paused`, readable without a lock: every transaction looks.
    held: AtomicBool,
    active: AtomicUsize,
    drained: Notify,
    drain_timeout: Duration,
}

impl PauseGate {
    /// An open gate; `pause` waits at most `drain_timeout` for running
    /// transactions.
    pub fn new(drain_timeout: Duration) -> Arc<Self> {
        Arc::new(Self {
            paused: watch::Sender::new(false),
            held: AtomicBool::new(false),
            active: AtomicUsize::new(0),
            drained: Notify::new(),
            drain_timeout,
        })
    }

    /// Holds new transactions, then waits for the running ones to finish;
    /// returns how many were still running when the time ran out.
    pub async fn pause(&self) -> usize {
        self.held.store(true, Ordering::SeqCst);
        self.paused.send_replace(true);
        let drained = async {
            loop {
                let notified = self.drained.notified();
                if self.active.load(Ordering::SeqCst) == 0 {
                    return;
                }
                notified.await;
            }
        };
        let _ = tokio::time::timeout(self.drain_timeout, drained).await;
        let left = self.active.load(Ordering::Acquire);
        if left > 0 {
            tracing::warn!(left, "paused with transactions still running");
        }
        left
    }

    /// Lets held transactions go.
    pub fn resume(&self) {
        self.held.store(false, Ordering::SeqCst);
        self.paused.send_replace(false);
    }

    /// Whether new transactions are held.
    pub fn is_paused(&self) -> bool {
        *self.paused.borrow()
    }

    /// Transactions running now.
    pub fn active(&self) -> usize {
        self.active.load(Ordering::Acquire)
    }

    /// Waits while paused, then counts a transaction as running until the
    /// returned guard is dropped.
    pub(crate) async fn enter(self: &Arc<Self>) -> Running {
        loop {
            // Counted first, then the flag checked (both SeqCst): either
            // this sees the pause, or the pause sees this transaction
            // running and waits for it.
            self.active.fetch_add(1, Ordering::SeqCst);
            let running = Running(self.clone());
            if !self.held.load(Ordering::SeqCst) {
                return running;
            }
            drop(running);
            let mut paused = self.paused.subscribe();
            // The sender lives in self, so this cannot fail.
            let _ = paused.wait_for(|p| !p).await;
        }
    }
}

/// A transaction counted as running.
#[derive(Debug)]
pub(crate) struct Running(Arc<PauseGate>);

impl Drop for Running {
    fn drop(&mut self) {
        // Only a pause waits for the count to reach zero: without one the
        // last transaction's end wakes nobody (a lock per transaction
        // saved). SeqCst as in `enter` and `pause`: a pause that read a
        // count above zero stored `held` before, so this load sees it.
        if self.0.active.fetch_sub(1, Ordering::SeqCst) == 1 && self.0.held.load(Ordering::SeqCst) {
            self.0.drained.notify_waiters();
        }
    }
}

#[async_trait]
impl SwitchoverHook for PauseGate {
    async fn pause(&self) {
        PauseGate::pause(self).await;
    }

    async fn resume(&self) {
        PauseGate::resume(self);
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[tokio::test]
    async fn pause_holds_new_transactions_and_waits_for_running_ones() {
        let gate = PauseGate::new(Duration::from_secs(5));
        let running = gate.enter().await;
        let pausing = tokio::spawn({
            let gate = gate.clone();
            async move { gate.pause().await }
        });
        tokio::task::yield_now().await;
        assert!(gate.is_paused());
        let held = tokio::spawn({
            let gate = gate.clone();
            async move { gate.enter().await }
        });
        tokio::time::sleep(Duration::from_millis(50)).await;
        assert!(!pausing.is_finished(), "a transaction is still running");
        assert!(!held.is_finished(), "new transactions wait");
        drop(running);
        assert_eq!(pausing.await.ok(), Some(0));
        assert!(!held.is_finished());
        gate.resume();
        let second = held.await;
        assert!(second.is_ok());
        assert_eq!(gate.active(), 1);
    }

    #[tokio::test]
    async fn pause_gives_up_waiting_after_its_timeout() {
        let gate = PauseGate::new(Duration::from_millis(50));
        let _stuck = gate.enter().await;
        assert_eq!(gate.pause().await, 1);
        assert!(gate.is_paused());
    }
}
