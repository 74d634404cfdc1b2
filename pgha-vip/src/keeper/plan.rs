//! The keeper's decisions, pure: lease, now, what is held → commands.
//! No clock, no IO; [`VipKeeper`](crate::VipKeeper) runs them.

use std::time::Duration;

use serde::{Deserialize, Serialize};
use tokio::time::Instant;

/// What the keeper asks of its mover, in order.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum KeeperCommand {
    /// Add the address for `lifetime` (then it is announced).
    Acquire {
        /// Whole seconds, ending no later than the lease less the margin.
        lifetime: Duration,
    },
    /// Give the held address a new lifetime, counted from now.
    Renew {
        /// Whole seconds, ending no later than the lease less the margin.
        lifetime: Duration,
    },
    /// Remove the address.
    Release,
    /// Announce the address once (gratuitous ARP / neighbour advertisement).
    Announce,
}

/// How the keeper holds an address.
///
/// ```
/// use pgha_vip::KeeperConfig;
/// use std::time::Duration;
///
/// let config: KeeperConfig = toml::from_str(r#"announce_interval = "5s""#).unwrap();
/// assert_eq!(config.margin, Duration::from_secs(1));
/// assert_eq!(config.announce_interval, Duration::from_secs(5));
/// ```
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct KeeperConfig {
    /// How long before the lease ends the address's kernel lifetime must
    /// end, for the kernel's own delay in removing an expired address
    /// (measured 10–250 ms; up to about 1 s when other addresses with
    /// lifetimes change on the machine, as the kernel then checks at most
    /// once a second). The lifetime set is the lease's remaining time less
    /// this, rounded down to whole seconds, so a lease must have at least
    /// `margin` + 1 s left to be acted on, and the address stays without a
    /// gap only if the lease is extended before its lifetime runs out:
    /// lease length ≥ `margin` + lease renewal period + 1 s (or more).
    /// Default: `"1s"`.
    #[serde(with = "pgha_core::duration_serde")]
    pub margin: Duration,
    /// Announcements sent when the address is acquired, the first at once.
    /// Default: 3.
    pub announce_count: u32,
    /// Time between those. Default: `"100ms"`.
    #[serde(with = "pgha_core::duration_serde")]
    pub announce_spacing: Duration,
    /// While held, the address is announced again this often, so that a
    /// client that cached another host's hardware address (during a
    /// partition, say) is corrected within one interval. Default: `"2s"`.
    #[serde(with = "pgha_core::duration_serde")]
    pub announce_interval: Duration,
    /// After a failed acquire, renew or release, how long before it is
    /// tried again. Default: `"500ms"`.
    #[serde(with = "pgha_core::duration_serde")]
    pub retry: Duration,
}

impl Default for KeeperConfig {
    fn default() -> Self {
        KeeperConfig {
            margin: Duration::from_secs(1),
            announce_count: 3,
            announce_spacing: Duration::from_millis(100),
            announce_interval: Duration::from_secs(2),
            retry: Duration::from_millis(500),
        }
    }
}

/// What the keeper believes the host has.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Holding {
    /// Just started: a copy left by a previous run may be there.
    Unknown,
    /// Not held.
    Free,
    /// Held; with a lifetime-enforcing mover, gone at `expires`.
    Held { expires: Instant },
    /// A release failed: maybe still there.
    Releasing,
}

/// The keeper's state machine: fed the lease and the time, it says what to
/// do. One per address.
///
/// ```
/// use pgha_vip::{KeeperCommand, KeeperConfig, KeeperPlan};
/// use std::time::Duration;
/// use tokio::time::Instant;
///
/// let mut plan = KeeperPlan::new(KeeperConfig::default(), true);
/// let now = Instant::now();
/// let s = Duration::from_secs;
/// // At start, a copy left by a crash is removed; a lease of 4.5 s gives
/// // a lifetime of 3 s (less the 1 s margin, rounded down).
/// assert_eq!(
///     plan.step(now, Some(now + Duration::from_millis(4500))),
///     [KeeperCommand::Release, KeeperCommand::Acquire { lifetime: s(3) }, KeeperCommand::Announce],
/// );
/// // The lease is lost: released at once.
/// assert_eq!(plan.step(now + s(1), None), [KeeperCommand::Release]);
/// ```
#[derive(Debug, Clone)]
pub struct KeeperPlan {
    config: KeeperConfig,
    enforces_lifetime: bool,
    holding: Holding,
    /// The next announcement while held, and how many of the acquisition
    /// burst are left after it.
    announce: Option<(Instant, u32)>,
    /// No acquire, renew or release before this (after a failure).
    retry_at: Option<Instant>,
}

impl KeeperPlan {
    /// A plan for a mover that enforces lifetimes
    /// ([`AddressMover::enforces_lifetime`](crate::AddressMover::enforces_lifetime))
    /// or not.
    pub fn new(config: KeeperConfig, enforces_lifetime: bool) -> Self {
        KeeperPlan {
            config,
            enforces_lifetime,
            holding: Holding::Unknown,
            announce: None,
            retry_at: None,
        }
    }

    /// What to do at `now` with the local lease `lease` (`Some(valid
    /// until)` while this node holds it). The commands are to be run in
    /// order; report a failed one with [`failed`](Self::failed).
    pub fn step(&mut self, now: Instant, lease: Option<Instant>) -> Vec<KeeperCommand> {
        let mut commands = Vec::new();
        let may_act = self.retry_at.is_none_or(|at| now >= at);
        if let Holding::Held { expires } = self.holding {
            if self.enforces_lifetime && now >= expires {
                // The kernel has removed it (or is about to).
                self.set_free();
            }
        }
        let Some(end) = lease.filter(|&end| end > now) else {
            if self.holding != Holding::Free && may_act {
                commands.push(KeeperCommand::Release);
                self.set_free();
            }
            return commands;
        };
        match self.holding {
            Holding::Unknown => {
                commands.push(KeeperCommand::Release);
                self.set_free();
            }
            // Whatever is left will be replaced (or renewed) by acquire.
            Holding::Releasing => self.set_free(),
            Holding::Free | Holding::Held { .. } => {}
        }
        let lifetime = self.lifetime(now, end);
        match self.holding {
            Holding::Free if lifetime >= Duration::from_secs(1) && may_act => {
                commands.push(KeeperCommand::Acquire { lifetime });
                commands.push(KeeperCommand::Announce);
                self.holding = Holding::Held {
                    expires: now + lifetime,
                };
                self.announce = Some(self.after_announcement(now, self.config.announce_count));
            }
            Holding::Held { expires }
                if lifetime >= Duration::from_secs(1) && now + lifetime > expires && may_act =>
            {
                commands.push(KeeperCommand::Renew { lifetime });
                self.holding = Holding::Held {
                    expires: now + lifetime,
                };
            }
            _ => {}
        }
        if let (Holding::Held { .. }, Some((at, left))) = (self.holding, self.announce) {
            if at <= now && !commands.contains(&KeeperCommand::Announce) {
                commands.push(KeeperCommand::Announce);
                self.announce = Some(self.after_announcement(now, left));
            }
        }
        commands
    }

    /// `command` (returned by [`step`](Self::step)) succeeded; it returned
    /// at `done`. An acquisition or renewal holds the address until `done`
    /// plus its lifetime at the latest, not the decision's `now` plus it:
    /// a process frozen between deciding and the kernel taking the request
    /// (SIGSTOP mid-call) has the address from the thaw on, and must still
    /// believe it holds it — to release it at once, since its lease ran out
    /// while it was frozen.
    pub fn completed(&mut self, command: KeeperCommand, done: Instant) {
        if let (
            KeeperCommand::Acquire { lifetime } | KeeperCommand::Renew { lifetime },
            Holding::Held { expires },
        ) = (command, self.holding)
        {
            self.holding = Holding::Held {
                expires: expires.max(done + lifetime),
            };
        }
    }

    /// `command`, returned by [`step`](Self::step) at `now`, failed.
    pub fn failed(&mut self, command: KeeperCommand, now: Instant) {
        self.retry_at = Some(now + self.config.retry);
        match command {
            // Not held, or not for as long as believed: acquire again (and
            // announce) once the retry delay is over.
            KeeperCommand::Acquire { .. } | KeeperCommand::Renew { .. } => self.set_free(),
            KeeperCommand::Release => {
                self.holding = Holding::Releasing;
                self.announce = None;
            }
            KeeperCommand::Announce => self.retry_at = None,
        }
    }

    /// When [`step`](Self::step) has something to do next if the lease
    /// does not change; `None`: only a lease change.
    pub fn next_wake(&self, lease: Option<Instant>) -> Option<Instant> {
        let mut wake: Option<Instant> = None;
        let mut at = |t: Instant| wake = Some(wake.map_or(t, |w| w.min(t)));
        match self.holding {
            Holding::Held { expires } => {
                if let Some(end) = lease {
                    at(end);
                }
                if self.enforces_lifetime {
                    at(expires);
                }
                if let Some((next, _)) = self.announce {
                    at(next);
                }
            }
            Holding::Releasing | Holding::Unknown => {
                if let Some(end) = lease {
                    at(end);
                }
            }
            Holding::Free => {}
        }
        if let Some(retry) = self.retry_at {
            if self.holding != Holding::Free || lease.is_some() {
                at(retry);
            }
        }
        wake
    }

    /// Whether the address is held (as far as the keeper knows).
    pub fn held(&self) -> bool {
        matches!(self.holding, Holding::Held { .. })
    }

    /// The lifetime an address may get at `now` under a lease ending at
    /// `end`: what is left less the margin, in whole seconds (rounded down).
    fn lifetime(&self, now: Instant, end: Instant) -> Duration {
        let left = end
            .saturating_duration_since(now)
            .saturating_sub(self.config.margin);
        Duration::from_secs(left.as_secs())
    }

    /// The announcement after one sent at `now` with `left` of a burst to go.
    fn after_announcement(&self, now: Instant, left: u32) -> (Instant, u32) {
        match left.saturating_sub(1) {
            0 => (now + self.config.announce_interval, 0),
            more => (now + self.config.announce_spacing, more),
        }
    }

    fn set_free(&mut self) {
        self.holding = Holding::Free;
        self.announce = None;
    }
}
