//! [`VipKeeper`]: holds the address exactly while the local lease is
//! valid. The decisions are [`KeeperPlan`]'s (pure); this is the shell
//! that runs them against an [`AddressMover`].

mod plan;

use std::future::Future;
use std::sync::Arc;

use tokio::sync::watch;
use tokio::task::JoinHandle;
use tokio::time::Instant;

use crate::{AddressMover, VipAddress};
pub use plan::{KeeperCommand, KeeperConfig, KeeperPlan};

/// What a keeper has done so far: for metrics (`pgha_vip_held{addr}`, and
/// counters of acquisitions, announcements, failures) and for tests.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct KeeperStatus {
    /// Whether the address is held now.
    pub held: bool,
    /// Acquisitions that succeeded.
    pub acquisitions: u64,
    /// Renewals that succeeded.
    pub renewals: u64,
    /// Releases that succeeded (including the one at start).
    pub releases: u64,
    /// Announcements sent.
    pub announcements: u64,
    /// Commands that failed.
    pub failures: u64,
}

/// Holds a virtual IP exactly while this node holds the lease.
///
/// Given a `watch` of the local lease — `Some(valid_until)` while this
/// node has it — it acquires the address with a lifetime that ends no
/// later than the lease less [`margin`](KeeperConfig::margin) (with
/// [`NetlinkMover`](crate::NetlinkMover) the kernel removes the address
/// then, whatever happens to this process), renews it as the lease is
/// extended, and releases it the moment the lease is lost (`None` or past)
/// or [`run`](Self::run) is asked to stop. It announces the address a few
/// times ~100 ms apart on every acquisition and then every
/// [`announce_interval`](KeeperConfig::announce_interval) while held;
/// announcements run beside the loop, so a slow `arping_cmd` never delays
/// a release. At start it removes any copy of the address a previous run
/// left (a crash), before it can acquire it. A failed command is logged,
/// counted and tried again after [`retry`](KeeperConfig::retry).
///
/// ```no_run
/// use pgha_vip::{NetlinkMover, VipAddress, VipKeeper};
/// use std::sync::Arc;
/// use std::time::Duration;
/// use tokio::sync::watch;
/// use tokio::time::Instant;
///
/// # #[tokio::main] async fn main() -> Result<(), pgha_vip::Error> {
/// let vip = VipAddress::new([192, 0, 2, 50], 24, "eth0")?;
/// let keeper = VipKeeper::new(Arc::new(NetlinkMover::new()?), vip);
/// // The watchdog publishes the local lease; here, by hand.
/// let (lease, lease_rx) = watch::channel(None);
/// let (stop, stopped) = tokio::sync::oneshot::channel::<()>();
/// let task = tokio::spawn(keeper.run(lease_rx, async { let _ = stopped.await; }));
///
/// lease.send_replace(Some(Instant::now() + Duration::from_secs(4))); // acquired, 3 s lifetime
/// lease.send_replace(None); // released at once
/// let _ = stop.send(());
/// task.await.ok();
/// # Ok(()) }
/// ```
pub struct VipKeeper {
    mover: Arc<dyn AddressMover>,
    addr: VipAddress,
    config: KeeperConfig,
    status: watch::Sender<KeeperStatus>,
}

impl std::fmt::Debug for VipKeeper {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("VipKeeper")
            .field("mover", &self.mover.name())
            .field("addr", &self.addr)
            .field("config", &self.config)
            .finish_non_exhaustive()
    }
}

impl VipKeeper {
    /// A keeper of `addr` through `mover`, with the default
    /// [`KeeperConfig`].
    pub fn new(mover: Arc<dyn AddressMover>, addr: VipAddress) -> Self {
        VipKeeper {
            mover,
            addr,
            config: KeeperConfig::default(),
            status: watch::channel(KeeperStatus::default()).0,
        }
    }

    /// The same keeper with `config`.
    pub fn with_config(mut self, config: KeeperConfig) -> Self {
        self.config = config;
        self
    }

    /// Follows what the keeper does (held, counters).
    pub fn status(&self) -> watch::Receiver<KeeperStatus> {
        self.status.subscribe()
    }

    /// Holds the address while `lease` says so, until `shutdown` completes
    /// (the address is then released) or the lease's sender is dropped
    /// (treated as a lost lease: released, and `run` returns). Dropping
    /// the future instead releases nothing — as a killed process would not
    /// — and leaves the address to its kernel lifetime.
    pub async fn run(
        self,
        mut lease: watch::Receiver<Option<Instant>>,
        shutdown: impl Future<Output = ()>,
    ) {
        let mut plan = KeeperPlan::new(self.config.clone(), self.mover.enforces_lifetime());
        let mut announcing: Option<JoinHandle<()>> = None;
        tokio::pin!(shutdown);
        let mut lease_open = true;
        loop {
            let now = Instant::now();
            let current = if lease_open {
                *lease.borrow_and_update()
            } else {
                None
            };
            for command in plan.step(now, current) {
                // After a failure the plan has changed its mind: the rest
                // (an acquisition's announcement) no longer applies.
                if !self.execute(&mut plan, command, now, &mut announcing).await {
                    break;
                }
            }
            let held = plan.held();
            self.status.send_if_modified(|s| {
                let changed = s.held != held;
                s.held = held;
                changed
            });
            if !lease_open {
                break;
            }
            let wake = plan.next_wake(current);
            tokio::select! {
                changed = lease.changed() => {
                    if changed.is_err() {
                        tracing::warn!(addr = %self.addr, "the lease's sender is gone: releasing");
                        lease_open = false;
                    }
                }
                () = sleep_until(wake) => {}
                () = &mut shutdown => {
                    tracing::info!(addr = %self.addr, "stopping: releasing");
                    let now = Instant::now();
                    if plan.step(now, None).contains(&KeeperCommand::Release) {
                        self.execute(&mut plan, KeeperCommand::Release, now, &mut announcing).await;
                    }
                    self.status.send_modify(|s| s.held = false);
                    break;
                }
            }
        }
        if let Some(task) = announcing {
            task.abort();
        }
    }

    /// Runs one command of the plan; `false` if it failed (the plan has
    /// been told).
    async fn execute(
        &self,
        plan: &mut KeeperPlan,
        command: KeeperCommand,
        now: Instant,
        announcing: &mut Option<JoinHandle<()>>,
    ) -> bool {
        let addr = &self.addr;
        let result = match command {
            KeeperCommand::Acquire { lifetime } => {
                tracing::info!(%addr, ?lifetime, mover = self.mover.name(), "acquiring the virtual IP");
                self.mover.acquire(addr, lifetime).await
            }
            KeeperCommand::Renew { lifetime } => {
                tracing::debug!(%addr, ?lifetime, "renewing the virtual IP");
                self.mover.renew(addr, lifetime).await
            }
            KeeperCommand::Release => {
                // Nothing may announce an address no longer here.
                if let Some(task) = announcing.take() {
                    task.abort();
                }
                tracing::info!(%addr, mover = self.mover.name(), "releasing the virtual IP");
                self.mover.release(addr).await
            }
            KeeperCommand::Announce => {
                self.announce(announcing);
                return true;
            }
        };
        match result {
            Ok(()) => {
                plan.completed(command, Instant::now());
                self.status.send_modify(|s| match command {
                    KeeperCommand::Acquire { .. } => s.acquisitions += 1,
                    KeeperCommand::Renew { .. } => s.renewals += 1,
                    KeeperCommand::Release => s.releases += 1,
                    KeeperCommand::Announce => {}
                });
                true
            }
            Err(error) => {
                tracing::warn!(%addr, %error, ?command, retry_in = ?self.config.retry, "virtual IP command failed");
                plan.failed(command, now);
                self.status.send_modify(|s| s.failures += 1);
                false
            }
        }
    }

    /// Sends one announcement beside the loop, unless the last one is
    /// still running.
    fn announce(&self, announcing: &mut Option<JoinHandle<()>>) {
        if announcing.as_ref().is_some_and(|task| !task.is_finished()) {
            tracing::debug!(addr = %self.addr, "previous announcement still running: skipped");
            return;
        }
        let mover = Arc::clone(&self.mover);
        let addr = self.addr.clone();
        let status = self.status.clone();
        *announcing = Some(tokio::spawn(async move {
            match mover.announce(&addr).await {
                Ok(()) => status.send_modify(|s| s.announcements += 1),
                Err(error) => {
                    tracing::warn!(%addr, %error, "announcing the virtual IP failed");
                    status.send_modify(|s| s.failures += 1);
                }
            }
        }));
    }
}

/// Sleeps until `wake`, or for ever without one (a `select!` arm that
/// only a lease change can end).
pub(crate) async fn sleep_until(wake: Option<Instant>) {
    match wake {
        Some(at) => tokio::time::sleep_until(at).await,
        None => std::future::pending().await,
    }
}

#[cfg(test)]
mod tests;
