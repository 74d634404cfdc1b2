//! # pgha-watchdog
//!
//! Membership between pgha nodes: heartbeats, leader election among a
//! quorum, and quorum votes on backend failures.
//!
//! Status: the crate is being built (issue "pgha-watchdog"); today it holds
//! only its error type.
//!
//! ```
//! let e = pgha_watchdog::Error::NoQuorum { seen: 1, needed: 2 };
//! assert_eq!(e.to_string(), "no quorum: 1 of 2 needed nodes seen");
//! ```

/// Everything that can go wrong in the watchdog.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum Error {
    /// Fewer nodes are reachable than a quorum needs.
    #[error("no quorum: {seen} of {needed} needed nodes seen")]
    NoQuorum {
        /// Nodes seen, this one included.
        seen: usize,
        /// Nodes a quorum needs.
        needed: usize,
    },
}
