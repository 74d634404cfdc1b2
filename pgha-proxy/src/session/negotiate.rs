//! The startup phase of a session: startup packets up to the
//! StartupMessage, with the switch to TLS on the way.

use tokio::io::AsyncReadExt;
use tokio::time::{timeout_at, Instant};

use super::send_fatal;
use crate::metrics::AuthFailure;
use crate::startup::{self, StartupRequest, MAX_STARTUP};
use crate::stream::{Peer, Stream};
use crate::{Error, Shared};

/// Where the packets read so far lead.
enum Step {
    /// The client's StartupMessage parameters.
    Startup(Vec<(String, String)>),
    /// A cancel request, served.
    Cancelled,
    /// `S` was sent: the TLS handshake comes next.
    Tls(tokio_rustls::TlsAcceptor),
}

/// Runs the startup phase until `deadline`; returns the connection (now
/// TLS if the client asked and the proxy offers it) and the client's
/// startup parameters, or `None` once the client has been dealt with (a
/// cancel request served, or an error sent).
pub(super) async fn startup(
    shared: &Shared,
    mut client: Stream,
    peer: Peer,
    deadline: Instant,
) -> Option<(Stream, Vec<(String, String)>)> {
    loop {
        let step = match timeout_at(deadline, read_packets(shared, &mut client)).await {
            Ok(Ok(step)) => step,
            Ok(Err(e @ (Error::Protocol(_) | Error::UnsupportedProtocol { .. }))) => {
                // Who the client claims to be is not known yet.
                tracing::warn!(%peer, reason = "protocol", error = ?e.to_string(), "client refused");
                shared.metrics.auth_failure(AuthFailure::Protocol);
                let _ = send_fatal(&mut client, &e).await;
                return None;
            }
            Ok(Err(e)) => {
                // The client went away (a port check, a dropped link).
                tracing::debug!(%peer, error = %e, "startup failed");
                let _ = send_fatal(&mut client, &e).await;
                return None;
            }
            Err(_) => {
                tracing::info!(%peer, "startup timed out");
                shared.metrics.auth_failure(AuthFailure::Timeout);
                let e = Error::Protocol("startup not finished in time".into());
                let _ = send_fatal(&mut client, &e).await;
                return None;
            }
        };
        match step {
            Step::Startup(params) => return Some((client, params)),
            Step::Cancelled => return None,
            Step::Tls(acceptor) => {
                // `read_packets` offers TLS over plain TCP only.
                let Stream::Tcp(tcp) = client else {
                    return None;
                };
                match timeout_at(deadline, acceptor.accept(tcp)).await {
                    Ok(Ok(tls)) => client = Stream::TlsAccepted(Box::new(tls)),
                    // Nothing can be said to a client whose handshake
                    // failed: it expects TLS records, not an ErrorResponse.
                    Ok(Err(e)) => {
                        tracing::info!(%peer, error = %e, "TLS handshake failed");
                        return None;
                    }
                    Err(_) => {
                        tracing::info!(%peer, "TLS handshake not finished in time");
                        return None;
                    }
                }
            }
        }
    }
}

/// Reads startup packets until one that ends this part of the phase.
async fn read_packets(shared: &Shared, client: &mut Stream) -> Result<Step, Error> {
    loop {
        let len = client.read_u32().await.map_err(Error::Io)? as usize;
        if !(8..=MAX_STARTUP).contains(&len) {
            return Err(Error::Protocol(format!(
                "startup packet length {len} out of range"
            )));
        }
        let mut body = vec![0u8; len - 4];
        client.read_exact(&mut body).await.map_err(Error::Io)?;
        match startup::parse(&body)? {
            StartupRequest::Ssl => {
                if client.is_tls() {
                    return Err(Error::Protocol(
                        "SSLRequest on a connection that is already encrypted".into(),
                    ));
                }
                refuse_early_data(client, "SSL request")?;
                // Like PostgreSQL, no TLS over a Unix socket: it is local.
                if let (Some(tls), Stream::Tcp(_)) = (&shared.config.tls, &*client) {
                    client.write_all(b"S").await.map_err(Error::Io)?;
                    return Ok(Step::Tls(tls.acceptor()));
                }
                // The client continues in plain text or gives up, as
                // libpq does with sslmode=prefer or require.
                client.write_all(b"N").await.map_err(Error::Io)?;
            }
            // GSS encryption is not offered.
            StartupRequest::GssEnc => {
                refuse_early_data(client, "GSSAPI encryption request")?;
                client.write_all(b"N").await.map_err(Error::Io)?;
            }
            StartupRequest::Cancel { pid, secret } => {
                // A live server takes it in well under this: the client's
                // cancel connection closes after the server has it (as with
                // PostgreSQL itself, so its next query is not the one
                // cancelled); a server that does not answer holds it no
                // longer than this, the forward going on in the background.
                if let Some(forward) = shared.cancel(pid, secret) {
                    let _ = tokio::time::timeout(CANCEL_WAIT, forward).await;
                }
                return Ok(Step::Cancelled);
            }
            StartupRequest::Startup(params) => return Ok(Step::Startup(params)),
        }
    }
}

/// How long a client's cancel connection waits for its forward to finish.
const CANCEL_WAIT: std::time::Duration = std::time::Duration::from_millis(250);

/// A client must wait for the answer to an encryption request before it
/// sends anything else. Bytes already there were sent in plain text
/// before the handshake — possibly injected by a man in the middle — and
/// must never be taken as if they came over TLS (CVE-2021-23214's class);
/// PostgreSQL refuses them the same way. Reads are unbuffered, so such
/// bytes are still in the socket, never in a buffer of ours.
fn refuse_early_data(client: &mut Stream, request: &str) -> Result<(), Error> {
    let mut buf = [0u8; 4096];
    match client.try_read(&mut buf) {
        Ok(0) => Ok(()), // closed; the next read says so
        Ok(_) => {
            // Read what else is there (a startup packet is small), so that
            // closing sends FIN rather than RST: a reset can make the
            // client lose the error sent just before it.
            for _ in 0..16 {
                if !matches!(client.try_read(&mut buf), Ok(n) if n > 0) {
                    break;
                }
            }
            Err(Error::Protocol(format!(
                "received unencrypted data after {request}"
            )))
        }
        Err(e) if e.kind() == std::io::ErrorKind::WouldBlock => Ok(()),
        Err(e) => Err(Error::Io(e)),
    }
}
