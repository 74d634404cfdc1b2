//! # pgha-vip
//!
//! Virtual-IP movers: add and remove the cluster's client address on the
//! leader's host and announce it (gratuitous ARP / unsolicited neighbour
//! advertisement).
//!
//! Status: the crate is being built (issue "pgha-vip"); today it holds only
//! its error type.
//!
//! ```
//! let e = pgha_vip::Error::Command { command: "ip addr add".into(), status: 2 };
//! assert_eq!(e.to_string(), "`ip addr add` exited with status 2");
//! ```

/// Everything that can go wrong while moving an address.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum Error {
    /// An address command failed.
    #[error("`{command}` exited with status {status}")]
    Command {
        /// The command that ran.
        command: String,
        /// Its exit status.
        status: i32,
    },
}
