//! The crate's one error type.

use std::time::Duration;

/// Everything that can go wrong while moving an address. Each variant
/// names the address (`198.51.100.7/24 on eth0`) and what was being done.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum Error {
    /// The address's interface does not exist on this host.
    #[error("{operation} {addr}: interface {interface} does not exist")]
    InterfaceMissing {
        /// What was being done (`acquire`, `announce`…).
        operation: &'static str,
        /// The address, as `IP/PREFIX on INTERFACE`.
        addr: String,
        /// The missing interface.
        interface: String,
    },
    /// The IP is already configured on this host, on another interface or
    /// with another prefix length; pgha does not take it over.
    #[error("{operation} {addr}: the address is already configured as {found}")]
    AddressElsewhere {
        /// What was being done.
        operation: &'static str,
        /// The address, as `IP/PREFIX on INTERFACE`.
        addr: String,
        /// Where it was found, as `IP/PREFIX on INTERFACE`.
        found: String,
    },
    /// The kernel refused: pgha needs root, or `CAP_NET_ADMIN` (addresses)
    /// and `CAP_NET_RAW` (gratuitous ARP).
    #[error("{what}: not permitted (run as root, or grant CAP_NET_ADMIN and CAP_NET_RAW)")]
    NotPermitted {
        /// What was refused, with the address when there is one.
        what: String,
    },
    /// A lifetime the kernel cannot express: it counts whole seconds, at
    /// least one.
    #[error("{operation} {addr}: a lifetime of {lifetime:?} is below the kernel's 1 s resolution")]
    Lifetime {
        /// What was being done.
        operation: &'static str,
        /// The address.
        addr: String,
        /// The lifetime asked for.
        lifetime: Duration,
    },
    /// Any other netlink failure.
    #[error("{operation} {addr}: netlink: {message}")]
    Netlink {
        /// What was being done.
        operation: &'static str,
        /// The address.
        addr: String,
        /// What the kernel (or the netlink library) said.
        message: String,
    },
    /// A socket or system call failed.
    #[error("{what}: {source}")]
    Io {
        /// What was being done.
        what: String,
        /// The failure.
        source: std::io::Error,
    },
    /// An address command (`if_up_cmd`, `if_down_cmd`, `arping_cmd`) failed
    /// or timed out.
    #[error("{operation} {addr}: `{command}` failed ({status}): {output}")]
    Command {
        /// What was being done.
        operation: &'static str,
        /// The address.
        addr: String,
        /// The command line as run.
        command: String,
        /// Its exit status, or "timed out after …".
        status: String,
        /// The tail of what it printed.
        output: String,
    },
    /// A configuration that cannot work (bad placeholder, zero timeout,
    /// prefix length out of range…).
    #[error("configuration: {what}")]
    Config {
        /// What is wrong, naming the setting.
        what: String,
    },
}

impl Error {
    /// A `pgha-core` error from running a command, with the address added.
    pub(crate) fn from_core(
        operation: &'static str,
        addr: String,
        error: pgha_core::Error,
    ) -> Self {
        match error {
            pgha_core::Error::Command {
                command,
                status,
                output,
            } => Error::Command {
                operation,
                addr,
                command,
                status,
                output,
            },
            pgha_core::Error::Config { what } => Error::Config { what },
            other => Error::Io {
                what: format!("{operation} {addr}"),
                source: std::io::Error::other(other.to_string()),
            },
        }
    }

    /// A socket error, as [`NotPermitted`](Error::NotPermitted) when the
    /// kernel said `EPERM`/`EACCES`.
    pub(crate) fn io(what: String, source: std::io::Error) -> Self {
        match source.raw_os_error() {
            Some(libc::EPERM) | Some(libc::EACCES) => Error::NotPermitted { what },
            _ => Error::Io { what, source },
        }
    }
}
