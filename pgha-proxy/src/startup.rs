//! The startup phase: SSL and GSS encryption requests, cancel requests and
//! the StartupMessage, before any tagged message.

use bytes::Buf;

use crate::Error;

const SSL_REQUEST: u32 = 80_877_103;
const GSSENC_REQUEST: u32 = 80_877_104;
const CANCEL_REQUEST: u32 = 80_877_102;
const PROTOCOL_3_0: u32 = 196_608;
/// A startup packet holds a few short parameters; 10 000 bytes is what
/// PostgreSQL itself allows.
pub const MAX_STARTUP: usize = 10_000;

/// What a client's first packet asks for.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum StartupRequest {
    /// Wants TLS (answered `N` until TLS is configured).
    Ssl,
    /// Wants GSSAPI encryption (always answered `N`).
    GssEnc,
    /// Cancels the query running on another connection.
    Cancel {
        /// The process id the proxy gave that connection.
        pid: i32,
        /// Its secret key.
        secret: i32,
    },
    /// Starts a session with these parameters (`user`, `database`, …).
    Startup(Vec<(String, String)>),
}

/// The body length of a startup-phase packet whose length word (which
/// counts itself) is `len`, checked before anything is allocated: room for
/// the 4-byte code, at most [`MAX_STARTUP`].
pub fn body_len(len: u32) -> Result<usize, Error> {
    let len = len as usize;
    if !(8..=MAX_STARTUP).contains(&len) {
        return Err(Error::Protocol(format!(
            "startup packet length {len} out of range"
        )));
    }
    Ok(len - 4)
}

/// Parses one startup-phase packet's body (after its length word).
pub fn parse(mut body: &[u8]) -> Result<StartupRequest, Error> {
    if body.len() < 4 {
        return Err(Error::Protocol("startup packet too short".into()));
    }
    let code = body.get_u32();
    match code {
        SSL_REQUEST => Ok(StartupRequest::Ssl),
        GSSENC_REQUEST => Ok(StartupRequest::GssEnc),
        CANCEL_REQUEST if body.len() == 8 => Ok(StartupRequest::Cancel {
            pid: body.get_i32(),
            secret: body.get_i32(),
        }),
        CANCEL_REQUEST => Err(Error::Protocol("malformed cancel request".into())),
        PROTOCOL_3_0 => parse_parameters(body).map(StartupRequest::Startup),
        other => Err(Error::UnsupportedProtocol {
            major: other >> 16,
            minor: other & 0xffff,
        }),
    }
}

fn parse_parameters(body: &[u8]) -> Result<Vec<(String, String)>, Error> {
    let mut fields = body.split(|b| *b == 0);
    let mut params = Vec::new();
    loop {
        let key = fields
            .next()
            .ok_or_else(|| Error::Protocol("startup parameters not terminated".into()))?;
        if key.is_empty() {
            break;
        }
        let value = fields
            .next()
            .ok_or_else(|| Error::Protocol("startup parameter without a value".into()))?;
        let text = |b: &[u8]| {
            String::from_utf8(b.to_vec())
                .map_err(|_| Error::Protocol("startup parameter is not UTF-8".into()))
        };
        params.push((text(key)?, text(value)?));
    }
    if !params.iter().any(|(k, _)| k == "user") {
        return Err(Error::Protocol("no user name in the startup packet".into()));
    }
    Ok(params)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn packet(code: u32, rest: &[u8]) -> Vec<u8> {
        let mut v = code.to_be_bytes().to_vec();
        v.extend_from_slice(rest);
        v
    }

    #[test]
    fn startup_parameters_are_read() {
        let req = parse(&packet(PROTOCOL_3_0, b"user\0alice\0database\0db\0\0"));
        assert_eq!(
            req.ok(),
            Some(StartupRequest::Startup(vec![
                ("user".into(), "alice".into()),
                ("database".into(), "db".into())
            ]))
        );
    }

    #[test]
    fn startup_lengths_are_checked() {
        assert_eq!(body_len(8).ok(), Some(4));
        assert_eq!(body_len(MAX_STARTUP as u32).ok(), Some(MAX_STARTUP - 4));
        for bad in [0, 3, 7, MAX_STARTUP as u32 + 1, u32::MAX] {
            assert!(body_len(bad).is_err(), "{bad}");
        }
    }

    #[test]
    fn bad_packets_are_errors() {
        assert!(parse(b"").is_err());
        assert!(parse(&packet(PROTOCOL_3_0, b"user\0alice")).is_err());
        assert!(parse(&packet(PROTOCOL_3_0, b"database\0db\0\0")).is_err());
        assert!(parse(&packet(PROTOCOL_3_0, b"user\0\xff\0\0")).is_err());
        assert!(matches!(
            parse(&packet(0x0002_0000, b"")),
            Err(Error::UnsupportedProtocol { major: 2, minor: 0 })
        ));
        assert!(parse(&packet(CANCEL_REQUEST, b"\0\0")).is_err());
        assert_eq!(
            parse(&packet(SSL_REQUEST, b"")).ok(),
            Some(StartupRequest::Ssl)
        );
        assert_eq!(
            parse(&packet(CANCEL_REQUEST, &[0, 0, 0, 7, 0, 0, 0, 9])).ok(),
            Some(StartupRequest::Cancel { pid: 7, secret: 9 })
        );
    }
}
