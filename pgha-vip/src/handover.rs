//! From the watchdog's leader lease to the lease a [`VipKeeper`] holds the
//! address by.
//!
//! The watchdog's lease is short (400 ms by default) and ends strictly
//! before another member's begins. A kernel address lifetime is counted in
//! whole seconds, and the kernel removes an expired address some time
//! after it expires. So the address lease is the leader lease **stretched**
//! by one kernel lifetime on the holder's side (it renews a 1 s lifetime
//! for as long as its leader lease lasts) and **delayed** on the taker's
//! side: a new leader takes the address only once its own leader lease has
//! lasted [`HandoverConfig::wait`], by when the old holder's last lifetime
//! has run out and the kernel has removed the address — even if the old
//! holder was frozen or cut off and never released it — or, sooner, once
//! nobody on the link answers for the address any more (below).
//!
//! The argument, with the old holder's leader lease ending at `t_end`:
//! its last renewal came before `t_end`, so its address expires by
//! `t_end + stretch` and is gone by `t_end + stretch + kernel_delay`. The
//! new leader's lease begins after `t_end + lease_gap` (the watchdog's
//! guarantee, `pgha_watchdog::Timing::lease_gap`: 150 ms by default), so
//! it takes the address after `t_end + lease_gap + wait`.
//! `wait ≥ stretch + kernel_delay − lease_gap` keeps the two apart; the
//! default takes 1 s for the kernel's delay (measured 10–250 ms, up to
//! about a second when other addresses with lifetimes change: Linux's IPv4
//! check runs at most once a second, and any address added or renewed on
//! the machine, in any namespace, puts it off).
//!
//! # Taking early
//!
//! That second is a rare worst case: the old address is usually gone
//! 1.0–1.25 s after the old holder's last renewal, long before the new
//! lease has lasted `wait`. So while it waits, a new leader asks the link
//! ([`AddressMover::probe_link`]; for IPv4 an RFC 5227 ARP probe, which
//! Linux answers for every address it has — one expired but not yet
//! removed included — whatever its pgha is doing), one probe after the
//! other, each listening [`HandoverConfig::probe_listen`]. Once
//! [`SILENT_PROBES_TO_TAKE`] probes in a row, every one begun after its own
//! lease began, went unanswered, it takes the address at once. An answer
//! starts the count again; a mover that cannot tell, or a probe that
//! fails, leaves the full `wait`.
//!
//! Why that is safe. Once the new lease has begun no other member holds a
//! leader lease, so no keeper adds the address anew: it can only be where
//! an old holder still has it. An old holder whose pgha is alive released
//! it when its leader lease ended, before the new one began. One whose pgha
//! is dead or frozen still has it until the kernel removes it — and its
//! kernel answers the probe, if the new leader can hear that host on the
//! link. If it cannot, clients on that link cannot reach that host either.
//! What is left is a double fault: the old holder's pgha dead or frozen
//! **and** its host unheard by the new leader yet reachable by clients (an
//! asymmetric partition, or a cut or whole-host pause that ends before its
//! address is removed). Then the two may both have the address until the
//! old one is removed: at most the window the early take saved, which ends
//! `wait` after the new lease began. Two silent probes rather than one, so
//! that one lost answer is not taken for silence. Hosts that never answer
//! ARP probes for their addresses (`arp_ignore = 8`, ARP off on the
//! interface, ARP dropped by a firewall) void the argument: turn
//! [`HandoverConfig::probe_before_take`] off there.
//!
//! [`VipKeeper`]: crate::VipKeeper

use std::future::Future;
use std::pin::Pin;
use std::sync::Arc;
use std::time::Duration;

use tokio::sync::watch;
use tokio::time::Instant;

use crate::keeper::sleep_until;
use crate::{AddressMover, LinkProbe, VipAddress};

/// Unanswered probes in a row, all begun during the current leader lease,
/// after which a new leader takes the address without waiting out
/// [`HandoverConfig::wait`]. Two: one lost answer is not silence.
pub const SILENT_PROBES_TO_TAKE: u32 = 2;

/// How the leader lease becomes the address lease.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct HandoverConfig {
    /// Added to the leader lease's end on the holder: the kernel lifetime
    /// it keeps renewing (whole seconds; at least 1 s). Default 1 s.
    pub stretch: Duration,
    /// How long a new leader's lease must have lasted before it takes the
    /// address. Default: `stretch` + 1 s kernel delay − the watchdog's
    /// default lease gap (150 ms) = 1.85 s.
    pub wait: Duration,
    /// While waiting, probe the link and take the address as soon as
    /// [`SILENT_PROBES_TO_TAKE`] probes in a row went unanswered (see the
    /// module documentation for why that is safe, and when it is not).
    /// Default `true`.
    pub probe_before_take: bool,
    /// How long each probe listens for an answer; probes run back to back.
    /// Default 100 ms (a LAN answers within a millisecond).
    pub probe_listen: Duration,
}

impl Default for HandoverConfig {
    fn default() -> Self {
        HandoverConfig {
            stretch: Duration::from_secs(1),
            wait: Duration::from_millis(1850),
            probe_before_take: true,
            probe_listen: Duration::from_millis(100),
        }
    }
}

impl HandoverConfig {
    /// The wait that keeps holders apart, given the watchdog's lease gap
    /// (the least time between one leader lease's end and the next one's
    /// start) and the kernel delay allowed for.
    pub fn wait_for(stretch: Duration, kernel_delay: Duration, lease_gap: Duration) -> Duration {
        (stretch + kernel_delay).saturating_sub(lease_gap)
    }
}

/// The pure part: leader lease and probe answers in, address lease out.
#[derive(Debug, Clone)]
pub struct Handover {
    config: HandoverConfig,
    /// Since when the leader lease has been valid without a break.
    since: Option<Instant>,
    /// Unanswered probes in a row begun at or after `since`.
    silent: u32,
    /// A probe could not tell during this lease: wait it out.
    probing_off: bool,
    /// The address lease has begun during this leader lease (and lasts
    /// as long as it: a later answer changes nothing).
    taken: bool,
    /// …and it began before the wait was over.
    early: bool,
}

impl Handover {
    /// No lease seen yet.
    pub fn new(config: HandoverConfig) -> Self {
        Handover {
            config,
            since: None,
            silent: 0,
            probing_off: false,
            taken: false,
            early: false,
        }
    }

    /// The address lease at `now` given the leader lease, and when to
    /// look again even if the leader lease does not change (or a probe
    /// ends).
    pub fn step(
        &mut self,
        now: Instant,
        leader: Option<Instant>,
    ) -> (Option<Instant>, Option<Instant>) {
        let Some(until) = leader.filter(|&until| until > now) else {
            // Lost, or ran out: the next lease starts a new wait (someone
            // else may have held the address meanwhile), and the probes
            // heard so far say nothing about it.
            *self = Handover::new(self.config.clone());
            return (None, None);
        };
        let since = *self.since.get_or_insert(now);
        let takes_at = since + self.config.wait;
        if !self.taken {
            if now >= takes_at {
                self.taken = true;
            } else if self.silent >= SILENT_PROBES_TO_TAKE {
                self.taken = true;
                self.early = true;
            } else {
                // Wake at whichever comes first: the wait is over, or the
                // leader lease runs out unrenewed.
                return (None, Some(takes_at.min(until)));
            }
        }
        (Some(until + self.config.stretch), Some(until))
    }

    /// Whether a probe begun at `now` could still bring the address
    /// sooner: the leader lease is valid (as of the last
    /// [`step`](Self::step)), the address not yet taken, the wait not yet
    /// over, probing on and no probe has failed to tell.
    pub fn wants_probe(&self, now: Instant) -> bool {
        let Some(since) = self.since else {
            return false;
        };
        self.config.probe_before_take
            && !self.probing_off
            && !self.taken
            && now < since + self.config.wait
    }

    /// What a probe begun at `started` found; the next
    /// [`step`](Self::step) acts on it. A probe begun before the current
    /// leader lease says nothing about who may hold the address since (a
    /// member leading then could have added it): ignored. So is any with
    /// probing off, or after one could not tell during this lease.
    pub fn probed(&mut self, started: Instant, outcome: LinkProbe) {
        let Some(since) = self.since else {
            return;
        };
        if started < since || self.taken || self.probing_off || !self.config.probe_before_take {
            return;
        }
        match outcome {
            LinkProbe::Silent => self.silent += 1,
            LinkProbe::Answered => self.silent = 0,
            LinkProbe::CannotTell => {
                self.silent = 0;
                self.probing_off = true;
            }
        }
    }

    /// Whether the current address lease began before the wait was over,
    /// because nobody answered for the address.
    pub fn took_early(&self) -> bool {
        self.early
    }
}

/// A probe under way: when it began, and what it will find.
type InFlight = Pin<Box<dyn Future<Output = (Instant, LinkProbe)> + Send>>;

/// Follows `leader` (the watchdog's lease) and publishes the address
/// lease for a [`VipKeeper`](crate::VipKeeper), until `leader`'s sender is
/// gone (the output's sender is then dropped too: the keeper releases).
/// While a new lease waits, it probes for `addr` through `mover` if
/// [`HandoverConfig::probe_before_take`] says so.
pub fn follow(
    mut leader: watch::Receiver<Option<Instant>>,
    config: HandoverConfig,
    mover: Arc<dyn AddressMover>,
    addr: VipAddress,
) -> watch::Receiver<Option<Instant>> {
    let (tx, rx) = watch::channel(None);
    tokio::spawn(async move {
        let listen = config.probe_listen;
        let mut plan = Handover::new(config);
        // Kept across turns of the loop: a renewal of the leader lease
        // (every heartbeat) must not cut a probe short.
        let mut probe: Option<InFlight> = None;
        loop {
            let now = Instant::now();
            let (lease, wake) = plan.step(now, *leader.borrow_and_update());
            tx.send_if_modified(|current| {
                let changed = *current != lease;
                if changed && current.is_none() {
                    tracing::info!(%addr, early = plan.took_early(), "address lease begins");
                }
                *current = lease;
                changed
            });
            if probe.is_none() && plan.wants_probe(now) {
                probe = Some(start_probe(Arc::clone(&mover), addr.clone(), listen));
            }
            tokio::select! {
                changed = leader.changed() => if changed.is_err() { return },
                () = sleep_until(wake) => {}
                (started, outcome) = finish(&mut probe) => {
                    tracing::debug!(%addr, ?outcome, "link probed");
                    plan.probed(started, outcome);
                }
                () = tx.closed() => return,
            }
        }
    });
    rx
}

/// One probe, its error taken as "cannot tell" (logged).
fn start_probe(mover: Arc<dyn AddressMover>, addr: VipAddress, listen: Duration) -> InFlight {
    Box::pin(async move {
        let started = Instant::now();
        let outcome = match mover.probe_link(&addr, listen).await {
            Ok(outcome) => outcome,
            Err(error) => {
                tracing::warn!(%addr, %error, "probing the link failed: waiting the handover out");
                LinkProbe::CannotTell
            }
        };
        (started, outcome)
    })
}

/// The probe under way to its end (then none is), or never without one.
/// Cancel-safe: dropped unfinished, the probe stays in `probe`.
async fn finish(probe: &mut Option<InFlight>) -> (Instant, LinkProbe) {
    match probe {
        Some(running) => {
            let result = running.await;
            *probe = None;
            result
        }
        None => std::future::pending().await,
    }
}

#[cfg(test)]
mod tests;
