//! Stopping gracefully: no new clients, running transactions finish, every
//! client is told why its session ends.
//!
//! [`Drain::begin`] closes the proxy's listeners (a new connection is
//! refused by the kernel) and ends each session between transactions with
//! `FATAL 57P01` (`admin_shutdown`, as PostgreSQL's smart shutdown words
//! it): an idle client at once, a client inside a transaction when its
//! transaction ends. [`Drain::terminate`] ends every session now, running
//! transactions included (their server connections are closed, so the
//! servers roll them back). [`Drain::run`] does both in order, with a
//! deadline.
//!
//! The relay is not changed for this: a session waits on its relay and on
//! the drain at once, and ends when the drain says so and the session's
//! [`ClientStatus`](crate::clients::ClientStatus) reports no transaction
//! running.

use std::sync::atomic::{AtomicU8, AtomicUsize, Ordering};
use std::sync::Arc;
use std::task::Poll;
use std::time::Duration;

use tokio::sync::{watch, Notify};

use crate::bell::{Bell, Listener};
use crate::clients::ClientStatus;

/// Where a proxy is in stopping.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum DrainPhase {
    /// Accepting clients.
    Serving,
    /// No new clients; sessions end at their next transaction boundary.
    Draining,
    /// Every session ends now.
    Terminating,
}

/// The stop switch of one proxy, shared by its accept loop and sessions.
#[derive(Debug)]
pub struct Drain {
    phase: watch::Sender<DrainPhase>,
    /// `phase`, readable without a lock: every session looks at it each
    /// time its task is polled.
    now: AtomicU8,
    /// Rung when the phase moves on (and by the proxy's upkeep when the
    /// topology may no longer allow a connection a session holds).
    bell: Bell,
    sessions: AtomicUsize,
    gone: Notify,
}

/// What [`Drain::run`] saw.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct DrainOutcome {
    /// Sessions still inside a transaction when the time ran out (ended
    /// by force); 0 when every session ended on its own.
    pub terminated: usize,
}

/// How often a draining session looks whether its transaction has ended:
/// short beside a transaction, and only while the proxy stops.
const IDLE_CHECK: Duration = Duration::from_millis(20);

/// How long sessions ended by force get to tell their clients.
const FAREWELL: Duration = Duration::from_secs(1);

impl Default for Drain {
    fn default() -> Self {
        Self {
            phase: watch::Sender::new(DrainPhase::Serving),
            now: AtomicU8::new(DrainPhase::Serving as u8),
            bell: Bell::default(),
            sessions: AtomicUsize::new(0),
            gone: Notify::new(),
        }
    }
}

impl Drain {
    /// Stops accepting clients; sessions end at their next transaction
    /// boundary. Never goes back to serving.
    pub fn begin(&self) {
        let begun = self.phase.send_if_modified(|p| {
            let changed = *p == DrainPhase::Serving;
            if changed {
                *p = DrainPhase::Draining;
            }
            changed
        });
        if begun {
            self.moved_to(DrainPhase::Draining);
        }
    }

    /// Ends every session now, inside a transaction or not.
    pub fn terminate(&self) {
        self.phase.send_replace(DrainPhase::Terminating);
        self.moved_to(DrainPhase::Terminating);
    }

    /// Tells the sessions: the phase first, then the ring (a session
    /// registers, then reads the phase).
    fn moved_to(&self, phase: DrainPhase) {
        self.now.store(phase as u8, Ordering::SeqCst);
        self.bell.ring();
    }

    /// The sessions' bell.
    pub(crate) fn bell(&self) -> &Bell {
        &self.bell
    }

    /// The phase now (read without a lock: sessions look on every poll).
    pub fn phase(&self) -> DrainPhase {
        match self.now.load(Ordering::SeqCst) {
            p if p == DrainPhase::Serving as u8 => DrainPhase::Serving,
            p if p == DrainPhase::Draining as u8 => DrainPhase::Draining,
            _ => DrainPhase::Terminating,
        }
    }

    /// Client sessions (past login, admin console excluded) still open.
    pub fn sessions(&self) -> usize {
        self.sessions.load(Ordering::Acquire)
    }

    /// Waits until no client session is open.
    pub async fn sessions_gone(&self) {
        loop {
            let notified = self.gone.notified();
            if self.sessions() == 0 {
                return;
            }
            notified.await;
        }
    }

    /// Begins draining, waits up to `timeout` for every session to end on
    /// its own, then ends the rest and waits briefly for them to go.
    pub async fn run(&self, timeout: Duration) -> DrainOutcome {
        self.begin();
        if tokio::time::timeout(timeout, self.sessions_gone())
            .await
            .is_ok()
        {
            return DrainOutcome { terminated: 0 };
        }
        let terminated = self.sessions();
        self.terminate();
        let _ = tokio::time::timeout(FAREWELL, self.sessions_gone()).await;
        DrainOutcome { terminated }
    }

    /// Waits until the listeners must close.
    pub(crate) async fn closing(&self) {
        let mut phase = self.phase.subscribe();
        // The sender lives in self: wait_for cannot fail while we wait.
        let _ = phase.wait_for(|p| *p != DrainPhase::Serving).await;
    }

    /// Counts a session until the guard drops.
    pub(crate) fn enter(self: &Arc<Self>) -> SessionCount {
        self.sessions.fetch_add(1, Ordering::AcqRel);
        SessionCount(self.clone())
    }

    /// Waits until the session reporting `status` must end: the proxy
    /// terminates, or it drains and the session runs no transaction (idle,
    /// or held before its transaction's first statement reached a server,
    /// e.g. by `PAUSE`).
    pub(crate) async fn ends(&self, status: &ClientStatus, key: i32) {
        // The session's place at the bell, for its whole life: a ring
        // wakes its task (the relay, polled by the same task, looks at the
        // topology then), and a poll with nothing rung costs an atomic.
        let mut listener = Listener::new(&self.bell, key);
        let mut moved = |from: DrainPhase, cx: &mut std::task::Context<'_>| {
            listener.listen(cx);
            let now = self.phase();
            if now == from {
                Poll::Pending
            } else {
                Poll::Ready(now)
            }
        };
        let mut phase = std::future::poll_fn(|cx| moved(DrainPhase::Serving, cx)).await;
        loop {
            match phase {
                // (Never back to serving: phases only move on.)
                DrainPhase::Serving | DrainPhase::Terminating => return,
                DrainPhase::Draining if status.runs_no_transaction() => return,
                DrainPhase::Draining => {
                    // A transaction ends without telling anyone: look
                    // again soon, or at once if the phase moves on.
                    // Boxed: the timer is needed only while the proxy
                    // stops; inline, every idle session would hold it.
                    let wait = std::future::poll_fn(|cx| moved(DrainPhase::Draining, cx));
                    if let Ok(now) = Box::pin(tokio::time::timeout(IDLE_CHECK, wait)).await {
                        phase = now;
                    }
                }
            }
        }
    }
}

/// One open session, counted for [`Drain::sessions`].
#[derive(Debug)]
pub(crate) struct SessionCount(Arc<Drain>);

impl Drop for SessionCount {
    fn drop(&mut self) {
        if self.0.sessions.fetch_sub(1, Ordering::AcqRel) == 1 {
            self.0.gone.notify_waiters();
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[tokio::test]
    async fn run_waits_for_sessions_then_terminates_the_rest() {
        let drain = Arc::new(Drain::default());
        let session = drain.enter();
        let outcome = drain.run(Duration::from_millis(30)).await;
        assert_eq!(outcome.terminated, 1);
        assert_eq!(drain.phase(), DrainPhase::Terminating);
        drop(session);
        assert_eq!(drain.sessions(), 0);
    }

    #[tokio::test]
    async fn run_returns_once_the_last_session_ends() {
        let drain = Arc::new(Drain::default());
        let session = drain.enter();
        let running = tokio::spawn({
            let drain = drain.clone();
            async move { drain.run(Duration::from_secs(60)).await }
        });
        tokio::task::yield_now().await;
        assert_eq!(drain.phase(), DrainPhase::Draining);
        drop(session);
        let outcome = running.await.ok();
        assert_eq!(outcome, Some(DrainOutcome { terminated: 0 }));
    }
}
