//! Running async code inside a host's network namespace.
//!
//! A thread's network namespace is its own (`setns(2)` affects only the
//! calling thread), so each task gets a dedicated thread that enters the
//! namespace and then runs a single-threaded tokio runtime. Threads that
//! runtime starts (`spawn_blocking`) inherit the namespace.

use std::fs::File;

use nix::sched::{setns, CloneFlags};
use tokio::sync::{oneshot, watch};

use crate::testing::HarnessError;

/// A future running in a host's namespace. Dropping the handle (or
/// [`NetnsTask::abort`]) stops it and closes every socket it opened.
#[derive(Debug)]
pub struct NetnsTask<T> {
    result: Option<oneshot::Receiver<T>>,
    stop: Option<oneshot::Sender<()>>,
}

impl<T> NetnsTask<T> {
    /// Waits for the future's output; `None` if it was stopped (aborted or
    /// its host killed) or panicked.
    pub async fn join(mut self) -> Option<T> {
        self.result.take()?.await.ok()
    }

    /// Stops the future now.
    pub fn abort(&mut self) {
        if let Some(stop) = self.stop.take() {
            let _ = stop.send(());
        }
    }
}

impl<T> Drop for NetnsTask<T> {
    fn drop(&mut self) {
        self.abort();
    }
}

pub(super) fn spawn_in<F, Fut, T>(
    netns: &str,
    mut killed: watch::Receiver<bool>,
    make: F,
) -> Result<NetnsTask<T>, HarnessError>
where
    F: FnOnce() -> Fut + Send + 'static,
    Fut: std::future::Future<Output = T> + 'static,
    T: Send + 'static,
{
    let path = format!("/run/netns/{netns}");
    let ns = File::open(&path).map_err(HarnessError::io(format!("opening {path}")))?;
    let (result_tx, result_rx) = oneshot::channel();
    let (stop_tx, stop_rx) = oneshot::channel::<()>();
    let (ready_tx, ready_rx) = std::sync::mpsc::channel();
    std::thread::Builder::new()
        .name(format!("netns-{netns}"))
        .spawn(move || {
            let entered = setns(&ns, CloneFlags::CLONE_NEWNET).map_err(|e| e.to_string());
            let runtime = tokio::runtime::Builder::new_current_thread()
                .enable_all()
                .build()
                .map_err(|e| e.to_string());
            let runtime = match (entered, runtime) {
                (Ok(()), Ok(rt)) => {
                    let _ = ready_tx.send(Ok(()));
                    rt
                }
                (Err(e), _) | (_, Err(e)) => {
                    let _ = ready_tx.send(Err(e));
                    return;
                }
            };
            runtime.block_on(async move {
                if *killed.borrow() {
                    return;
                }
                tokio::select! {
                    out = make() => { let _ = result_tx.send(out); }
                    _ = stop_rx => {}
                    _ = killed.wait_for(|k| *k) => {}
                }
            });
            // Dropping the runtime here cancels every task the future
            // spawned and closes their sockets.
        })
        .map_err(HarnessError::io("spawning a namespace thread"))?;
    match ready_rx.recv() {
        Ok(Ok(())) => Ok(NetnsTask {
            result: Some(result_rx),
            stop: Some(stop_tx),
        }),
        Ok(Err(e)) => Err(HarnessError::Io {
            what: format!("entering namespace {netns}"),
            source: std::io::Error::other(e),
        }),
        Err(_) => Err(HarnessError::Io {
            what: format!("entering namespace {netns}"),
            source: std::io::Error::other("namespace thread died"),
        }),
    }
}
