//! The watchdog's timers, and the openraft configuration they make.
//!
//! The numbers and why they are safe: `docs/watchdog.md`.

use std::time::Duration;

/// Heartbeat, election and lease durations of one cluster (every member
/// should use the same).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Timing {
    /// How often the leader heartbeats. Default 100 ms.
    pub heartbeat: Duration,
    /// A follower that hears no leader campaigns after the follower lease
    /// (`election_timeout_max`) plus a random time in
    /// `election_timeout_min..election_timeout_max`. Default 400 ms.
    pub election_timeout_min: Duration,
    /// Also the follower lease: a follower refuses to vote for this long
    /// after the leader's last heartbeat. Default 600 ms.
    pub election_timeout_max: Duration,
    /// How long after the send time of the last heartbeat a quorum
    /// acknowledged the leader's lease lasts. Default 400 ms.
    pub lease: Duration,
    /// Covers clock-rate drift between members: the lease plus this is
    /// below the follower lease. Default 50 ms.
    pub lease_margin: Duration,
    /// Deadline of one peer call (connect, send, answer). Default 150 ms.
    pub rpc_timeout: Duration,
}

impl Default for Timing {
    fn default() -> Self {
        Timing {
            heartbeat: Duration::from_millis(100),
            election_timeout_min: Duration::from_millis(400),
            election_timeout_max: Duration::from_millis(600),
            lease: Duration::from_millis(400),
            lease_margin: Duration::from_millis(50),
            rpc_timeout: Duration::from_millis(150),
        }
    }
}

/// Timings that cannot give one lease holder at a time.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[non_exhaustive]
pub enum TimingError {
    /// The lease plus its margin must end before followers may vote again.
    #[error(
        "lease {lease:?} + margin {margin:?} must be below election_timeout_max {follower_lease:?}"
    )]
    LeaseTooLong {
        /// The leader lease.
        lease: Duration,
        /// The margin.
        margin: Duration,
        /// The follower lease.
        follower_lease: Duration,
    },
    /// Heartbeats must come well within the lease, or it lapses between two.
    #[error("heartbeat {heartbeat:?} must be at most half the lease {lease:?}")]
    HeartbeatTooSlow {
        /// The heartbeat interval.
        heartbeat: Duration,
        /// The leader lease.
        lease: Duration,
    },
    /// openraft refused the election timeouts.
    #[error("openraft: {0}")]
    Openraft(String),
}

impl Timing {
    /// The least time between the end of one member's lease and the start
    /// of another's: a new leader's votes came from members that had not
    /// acknowledged the old leader for `election_timeout_max`, and the old
    /// lease lasts `lease` from before such an acknowledgement
    /// (`docs/watchdog.md`); less the margin for clock-rate drift.
    pub fn lease_gap(&self) -> Duration {
        self.election_timeout_max
            .saturating_sub(self.lease + self.lease_margin)
    }

    /// Checks the lease argument's preconditions and builds openraft's
    /// configuration.
    ///
    /// ```
    /// let config = pgha_watchdog::Timing::default().raft_config().unwrap();
    /// assert_eq!(config.heartbeat_interval, 100);
    /// ```
    pub fn raft_config(&self) -> Result<openraft::Config, TimingError> {
        if self.lease + self.lease_margin >= self.election_timeout_max {
            return Err(TimingError::LeaseTooLong {
                lease: self.lease,
                margin: self.lease_margin,
                follower_lease: self.election_timeout_max,
            });
        }
        if self.heartbeat * 2 > self.lease {
            return Err(TimingError::HeartbeatTooSlow {
                heartbeat: self.heartbeat,
                lease: self.lease,
            });
        }
        let ms = |d: Duration| d.as_millis() as u64;
        openraft::Config {
            cluster_name: "pgha".into(),
            heartbeat_interval: ms(self.heartbeat),
            election_timeout_min: ms(self.election_timeout_min),
            election_timeout_max: ms(self.election_timeout_max),
            ..Default::default()
        }
        .validate()
        .map_err(|e| TimingError::Openraft(e.to_string()))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_lease_reaching_the_follower_lease_is_refused() {
        let timing = Timing {
            lease: Duration::from_millis(560),
            ..Timing::default()
        };
        assert!(matches!(
            timing.raft_config(),
            Err(TimingError::LeaseTooLong { .. })
        ));
    }

    #[test]
    fn heartbeats_must_fit_twice_in_the_lease() {
        let timing = Timing {
            heartbeat: Duration::from_millis(250),
            ..Timing::default()
        };
        assert!(matches!(
            timing.raft_config(),
            Err(TimingError::HeartbeatTooSlow { .. })
        ));
    }
}
