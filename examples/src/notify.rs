//! systemd's readiness protocol (`sd_notify`), for `Type=notify` units.
//!
//! systemd passes a unix datagram socket in `$NOTIFY_SOCKET` (a path, or an
//! abstract name written with a leading `@`); the service sends it
//! newline-separated `KEY=VALUE` states. Outside systemd the variable is
//! unset and every call does nothing. The protocol is this small, so it is
//! written here on std's `UnixDatagram` rather than pulled in as a crate.

use std::io;
use std::os::linux::net::SocketAddrExt;
use std::os::unix::net::{SocketAddr, UnixDatagram};

/// The service is ready: `pgha run` sends it once the proxy listens.
pub fn ready() {
    send_logged("READY=1");
}

/// The service is rereading its configuration; send [`ready`] when done.
/// `Type=notify` units take it as is (`Type=notify-reload` would also want
/// `MONOTONIC_USEC`, which this does not send).
pub fn reloading() {
    send_logged("RELOADING=1");
}

/// The service is shutting down.
pub fn stopping() {
    send_logged("STOPPING=1");
}

/// A failed notification is logged, not fatal: systemd then counts the
/// start as failed by its own timeout, which says more than a crash would.
fn send_logged(state: &str) {
    match notify(state) {
        Ok(true) => tracing::debug!(state, "told systemd"),
        Ok(false) => {}
        Err(e) => tracing::warn!(state, error = %e, "could not tell systemd"),
    }
}

/// Sends `state` to `$NOTIFY_SOCKET`; `Ok(false)` when it is not set.
pub fn notify(state: &str) -> io::Result<bool> {
    match std::env::var_os("NOTIFY_SOCKET") {
        Some(socket) if !socket.is_empty() => {
            let socket = socket.to_str().ok_or_else(|| {
                io::Error::new(io::ErrorKind::InvalidInput, "NOTIFY_SOCKET is not UTF-8")
            })?;
            notify_to(socket, state).map(|()| true)
        }
        _ => Ok(false),
    }
}

/// Sends `state` to the socket named as in `$NOTIFY_SOCKET`.
pub fn notify_to(socket: &str, state: &str) -> io::Result<()> {
    let addr = address(socket)?;
    let sender = UnixDatagram::unbound()?;
    let sent = sender.send_to_addr(state.as_bytes(), &addr)?;
    if sent != state.len() {
        return Err(io::Error::new(
            io::ErrorKind::WriteZero,
            "the notification was cut short",
        ));
    }
    Ok(())
}

/// `@name` is an abstract socket; anything else a path.
fn address(socket: &str) -> io::Result<SocketAddr> {
    match socket.strip_prefix('@') {
        Some(name) => SocketAddr::from_abstract_name(name.as_bytes()),
        None if socket.starts_with('/') => SocketAddr::from_pathname(socket),
        None => Err(io::Error::new(
            io::ErrorKind::InvalidInput,
            format!("NOTIFY_SOCKET {socket:?} is neither an absolute path nor @abstract"),
        )),
    }
}

#[cfg(test)]
#[allow(clippy::unwrap_used)] // a failing unwrap is a failing test
mod tests {
    use super::*;

    fn received(socket: &UnixDatagram) -> String {
        let mut buf = [0u8; 256];
        let n = socket.recv(&mut buf).unwrap();
        String::from_utf8_lossy(&buf[..n]).into_owned()
    }

    #[test]
    fn a_state_reaches_a_socket_named_by_path() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("notify.sock");
        let socket = UnixDatagram::bind(&path).unwrap();
        notify_to(path.to_str().unwrap(), "READY=1").unwrap();
        assert_eq!(received(&socket), "READY=1");
    }

    #[test]
    fn a_state_reaches_an_abstract_socket() {
        // Unique per process, so parallel test runs do not collide.
        let name = format!("pgha-notify-test-{}", std::process::id());
        let addr = SocketAddr::from_abstract_name(name.as_bytes()).unwrap();
        let socket = UnixDatagram::bind_addr(&addr).unwrap();
        notify_to(&format!("@{name}"), "STOPPING=1").unwrap();
        assert_eq!(received(&socket), "STOPPING=1");
    }

    #[test]
    fn a_relative_or_missing_socket_is_an_error() {
        assert!(notify_to("relative/notify.sock", "READY=1").is_err());
        assert!(notify_to("/nonexistent-dir/notify.sock", "READY=1").is_err());
    }
}
