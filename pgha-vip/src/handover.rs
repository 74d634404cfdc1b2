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
//! holder was frozen or cut off and never released it.
//!
//! The argument, with the old holder's leader lease ending at `t_end`:
//! its last renewal came before `t_end`, so its address expires by
//! `t_end + stretch` and is gone by `t_end + stretch + kernel_delay`. The
//! new leader's lease begins after `t_end + new_leader_wait` (the
//! watchdog's guarantee), so it takes the address after `t_end +
//! new_leader_wait + wait`. `wait ≥ stretch + kernel_delay −
//! new_leader_wait` keeps the two apart; the default takes 1 s for the
//! kernel's delay (measured 10–250 ms, up to about a second when other
//! addresses with lifetimes change).
//!
//! [`VipKeeper`]: crate::VipKeeper

use std::time::Duration;

use tokio::sync::watch;
use tokio::time::Instant;

use crate::keeper::sleep_until;

/// How the leader lease becomes the address lease.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct HandoverConfig {
    /// Added to the leader lease's end on the holder: the kernel lifetime
    /// it keeps renewing (whole seconds; at least 1 s). Default 1 s.
    pub stretch: Duration,
    /// How long a new leader's lease must have lasted before it takes the
    /// address. Default: `stretch` + 1 s kernel delay − the watchdog's
    /// default new-leader wait (450 ms) = 1.55 s.
    pub wait: Duration,
}

impl Default for HandoverConfig {
    fn default() -> Self {
        HandoverConfig {
            stretch: Duration::from_secs(1),
            wait: Duration::from_millis(1550),
        }
    }
}

impl HandoverConfig {
    /// The wait that keeps holders apart, given the watchdog's new-leader
    /// wait and the kernel delay allowed for.
    pub fn wait_for(
        stretch: Duration,
        kernel_delay: Duration,
        new_leader_wait: Duration,
    ) -> Duration {
        (stretch + kernel_delay).saturating_sub(new_leader_wait)
    }
}

/// The pure part: leader lease in, address lease out.
#[derive(Debug, Clone)]
pub struct Handover {
    config: HandoverConfig,
    /// Since when the leader lease has been valid without a break.
    since: Option<Instant>,
}

impl Handover {
    /// No lease seen yet.
    pub fn new(config: HandoverConfig) -> Self {
        Handover {
            config,
            since: None,
        }
    }

    /// The address lease at `now` given the leader lease, and when to
    /// look again even if the leader lease does not change.
    pub fn step(
        &mut self,
        now: Instant,
        leader: Option<Instant>,
    ) -> (Option<Instant>, Option<Instant>) {
        let Some(until) = leader.filter(|&until| until > now) else {
            // Lost, or ran out: the next lease starts a new wait (someone
            // else may have held the address meanwhile).
            self.since = None;
            return (None, None);
        };
        let since = *self.since.get_or_insert(now);
        let takes_at = since + self.config.wait;
        if now < takes_at {
            // Wake at whichever comes first: the wait is over, or the
            // leader lease runs out unrenewed.
            return (None, Some(takes_at.min(until)));
        }
        (Some(until + self.config.stretch), Some(until))
    }
}

/// Follows `leader` (the watchdog's lease) and publishes the address
/// lease for a [`VipKeeper`](crate::VipKeeper), until `leader`'s sender is
/// gone (the output's sender is then dropped too: the keeper releases).
pub fn follow(
    mut leader: watch::Receiver<Option<Instant>>,
    config: HandoverConfig,
) -> watch::Receiver<Option<Instant>> {
    let (tx, rx) = watch::channel(None);
    tokio::spawn(async move {
        let mut plan = Handover::new(config);
        loop {
            let (lease, wake) = plan.step(Instant::now(), *leader.borrow_and_update());
            tx.send_if_modified(|current| {
                let changed = *current != lease;
                *current = lease;
                changed
            });
            tokio::select! {
                changed = leader.changed() => if changed.is_err() { return },
                () = sleep_until(wake) => {}
                () = tx.closed() => return,
            }
        }
    });
    rx
}

#[cfg(test)]
mod tests {
    use super::*;

    fn ms(n: u64) -> Duration {
        Duration::from_millis(n)
    }

    #[test]
    fn a_new_leader_takes_the_address_only_after_the_wait() {
        let t0 = Instant::now();
        let mut h = Handover::new(HandoverConfig::default());
        assert_eq!(h.step(t0, Some(t0 + ms(400))), (None, Some(t0 + ms(400))));
        // Renewed all along: still waiting at 1.5 s, holding at 1.55 s.
        assert_eq!(h.step(t0 + ms(1500), Some(t0 + ms(1900))).0, None);
        assert_eq!(
            h.step(t0 + ms(1550), Some(t0 + ms(1950))),
            (Some(t0 + ms(2950)), Some(t0 + ms(1950)))
        );
    }

    #[test]
    fn a_break_in_the_leader_lease_starts_the_wait_again() {
        let t0 = Instant::now();
        let mut h = Handover::new(HandoverConfig::default());
        h.step(t0, Some(t0 + ms(400)));
        assert!(h.step(t0 + ms(1600), Some(t0 + ms(2000))).0.is_some());
        // The lease ran out unrenewed: nothing, at once.
        assert_eq!(h.step(t0 + ms(2000), Some(t0 + ms(2000))), (None, None));
        // Back: the wait starts over.
        assert_eq!(h.step(t0 + ms(2100), Some(t0 + ms(2500))).0, None);
        assert_eq!(h.step(t0 + ms(3600), Some(t0 + ms(4000))).0, None);
        assert!(h.step(t0 + ms(3650), Some(t0 + ms(4050))).0.is_some());
    }

    #[test]
    fn the_holders_address_outlives_its_leader_lease_by_the_stretch_only() {
        let t0 = Instant::now();
        let mut h = Handover::new(HandoverConfig::default());
        h.step(t0, Some(t0 + ms(400)));
        let (lease, _) = h.step(t0 + ms(2000), Some(t0 + ms(2400)));
        assert_eq!(lease, Some(t0 + ms(3400)));
        assert_eq!(h.step(t0 + ms(2000), None), (None, None));
    }

    #[test]
    fn the_default_wait_covers_a_second_of_kernel_delay_after_the_watchdogs_default_wait() {
        let c = HandoverConfig::default();
        assert_eq!(
            c.wait,
            HandoverConfig::wait_for(c.stretch, Duration::from_secs(1), ms(450))
        );
    }
}
