//! A running `pgha run` and the signals that stop or reload it.
//!
//! * SIGTERM or SIGINT: stop gracefully. The listeners close at once (new
//!   clients are refused), an idle client gets `FATAL 57P01` at once and
//!   one inside a transaction when its transaction ends; after
//!   `[proxy] shutdown_timeout` the sessions still inside a transaction are
//!   ended too. Then the process exits 0. A second SIGTERM or SIGINT ends
//!   the process at once (exit status 1).
//! * SIGHUP: reload the configuration file (see [`crate::reload`]), as the
//!   console's `RELOAD` does.

use std::time::Duration;

use tokio::signal::unix::{signal, Signal, SignalKind};

use crate::daemon::Daemon;
use crate::reload::{Origin, Reloader};

/// The exit status after a second stop signal cut the drain short.
pub const EXIT_INTERRUPTED: i32 = 1;

/// The signals the daemon acts on, installed before it reports ready so
/// that none arrives unhandled.
#[derive(Debug)]
pub struct Signals {
    term: Signal,
    int: Signal,
    hup: Signal,
}

impl Signals {
    /// Installs the handlers.
    pub fn install() -> std::io::Result<Self> {
        Ok(Self {
            term: signal(SignalKind::terminate())?,
            int: signal(SignalKind::interrupt())?,
            hup: signal(SignalKind::hangup())?,
        })
    }

    /// The next SIGTERM or SIGINT, by name.
    /// (A SIGHUP meanwhile is not acted on: the daemon is stopping.)
    async fn stop(&mut self) -> &'static str {
        loop {
            if let Some(name) = self.next().await {
                return name;
            }
            tracing::warn!("SIGHUP ignored: pgha is stopping");
        }
    }

    /// The next signal: a stop signal by name, or `None` for SIGHUP.
    async fn next(&mut self) -> Option<&'static str> {
        tokio::select! {
            _ = self.term.recv() => Some("SIGTERM"),
            _ = self.int.recv() => Some("SIGINT"),
            _ = self.hup.recv() => None,
        }
    }
}

/// Serves until a stop signal, reloading on SIGHUP and on the console's
/// `RELOAD`; returns the process's exit status.
pub async fn run(daemon: Daemon, mut signals: Signals, mut reloader: Reloader) -> i32 {
    let signal = loop {
        let origin = tokio::select! {
            signal = signals.next() => match signal {
                Some(name) => break name,
                None => Origin::Signal,
            },
            Some(request) = reloader.request() => Origin::Console(request),
        };
        reloader.reload(&daemon.proxy, origin);
    };
    // A RELOAD from now on is answered "stopping", not left waiting.
    drop(reloader);
    // Read now: a reload may have changed it.
    let timeout = daemon.proxy.settings().shutdown_timeout;
    stop(&daemon, signal, timeout, &mut signals).await
}

/// The graceful stop, phase by phase in the log.
async fn stop(
    daemon: &Daemon,
    signal: &'static str,
    timeout: Duration,
    signals: &mut Signals,
) -> i32 {
    crate::notify::stopping();
    let drain = daemon.proxy.drain();
    tracing::warn!(
        signal,
        sessions = drain.sessions(),
        ?timeout,
        "stopping: new clients are refused; running transactions may finish (a second signal stops at once)"
    );
    let outcome = tokio::select! {
        outcome = drain.run(timeout) => outcome,
        again = signals.stop() => {
            tracing::warn!(signal = again, sessions = drain.sessions(), "second signal: stopping now, running transactions are cut");
            return EXIT_INTERRUPTED;
        }
    };
    if outcome.terminated > 0 {
        tracing::warn!(
            sessions = outcome.terminated,
            ?timeout,
            "shutdown_timeout reached: sessions still inside a transaction were ended (their transactions rolled back)"
        );
    }
    tracing::warn!("stopped: every client session has ended");
    daemon.group.stop().await;
    0
}
