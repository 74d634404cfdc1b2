//! The IO shell around [`crate::auth`]: the authentication exchange with a
//! client, after its StartupMessage.

use std::net::IpAddr;

use bytes::{Buf, BufMut, BytesMut};
use tokio::io::AsyncReadExt;

use crate::auth::{
    AuthError, AuthFile, ClientInfo, HbaRules, Md5Challenge, Method, ScramServer, Secret,
};
use crate::stream::Stream;
use crate::Error;

/// Who may connect, and how they prove it.
#[derive(Debug, Clone)]
pub struct ClientAuth {
    /// hba rules: method per address, database and user.
    pub hba: HbaRules,
    /// Users and their secrets (SCRAM verifiers, md5 hashes or passwords).
    pub users: AuthFile,
}

/// Password messages are short; SCRAM's are under 1 KB.
const MAX_AUTH_MESSAGE: usize = 10_000;

/// Runs the exchange the hba rules ask for; `Ok` once the client proved
/// who it is. `mock_key` makes unknown users indistinguishable from wrong
/// passwords. `peer` is `None` for a Unix-socket client (hba `local`
/// rules); `tls` picks between `hostssl` and `hostnossl` rules.
pub(crate) async fn authenticate(
    client: &mut Stream,
    auth: &ClientAuth,
    peer: Option<IpAddr>,
    tls: bool,
    params: &[(String, String)],
    looked_up: Option<&Secret>,
    mock_key: &[u8; 32],
) -> Result<(), Error> {
    let get = |key: &str| {
        params
            .iter()
            .find(|(k, _)| k == key)
            .map(|(_, v)| v.as_str())
    };
    let user = get("user").unwrap_or_default();
    let database = get("database").unwrap_or(user);
    let info = ClientInfo {
        addr: peer,
        ssl: tls,
        database,
        user,
    };
    let secret = auth.users.lookup(user).or(looked_up);
    let method = auth.hba.method_for(&info).resolve(secret);
    let mut out = BytesMut::new();
    match method {
        Method::Trust => Ok(()),
        Method::Reject => Err(Error::Auth(AuthError::Rejected {
            user: user.into(),
            database: database.into(),
            line: auth.hba.rule_for(&info).map(|r| r.line()),
        })),
        Method::Password => {
            request(&mut out, 3, &[]);
            client.write_all(&out).await.map_err(Error::Io)?;
            let answer = read_password_message(client).await?;
            let secret = secret.ok_or_else(|| unknown(user))?;
            crate::auth::verify_cleartext(secret, user, &answer).map_err(Error::Auth)
        }
        Method::Md5 => {
            let challenge = Md5Challenge::new(rand::random());
            request(&mut out, 5, &challenge.salt());
            client.write_all(&out).await.map_err(Error::Io)?;
            let answer = read_password_message(client).await?;
            let secret = secret.ok_or_else(|| unknown(user))?;
            challenge.verify(secret, user, &answer).map_err(Error::Auth)
        }
        Method::ScramSha256 => {
            let nonce: [u8; 18] = rand::random();
            let salt: [u8; 16] = rand::random();
            let mut server = match secret {
                Some(secret) => {
                    ScramServer::for_secret(user, secret, &nonce, &salt).map_err(Error::Auth)?
                }
                None => ScramServer::mock(user, mock_key, &nonce),
            };
            request(&mut out, 10, b"SCRAM-SHA-256\0\0");
            client.write_all(&out).await.map_err(Error::Io)?;
            let initial = read_password_message(client).await?;
            let first = sasl_initial_data(&initial)?;
            let reply = server.handle_client_first(first).map_err(Error::Auth)?;
            out.clear();
            request(&mut out, 11, &reply);
            client.write_all(&out).await.map_err(Error::Io)?;
            let last = read_password_message(client).await?;
            let reply = server.handle_client_final(&last).map_err(Error::Auth)?;
            out.clear();
            request(&mut out, 12, &reply);
            client.write_all(&out).await.map_err(Error::Io)
        }
    }
}

fn unknown(user: &str) -> Error {
    Error::Auth(AuthError::UnknownUser { user: user.into() })
}

/// An `AuthenticationRequest` message: `R`, length, code, data.
fn request(out: &mut BytesMut, code: i32, data: &[u8]) {
    out.put_u8(b'R');
    out.put_u32((8 + data.len()) as u32);
    out.put_i32(code);
    out.put_slice(data);
}

/// Reads one `p` message (password, SASL initial response or response).
async fn read_password_message(client: &mut Stream) -> Result<Vec<u8>, Error> {
    let tag = client.read_u8().await.map_err(Error::Io)?;
    if tag != b'p' {
        return Err(Error::Protocol(format!(
            "expected a password message, got {:?}",
            char::from(tag)
        )));
    }
    let len = client.read_u32().await.map_err(Error::Io)? as usize;
    if !(4..=MAX_AUTH_MESSAGE).contains(&len) {
        return Err(Error::Protocol(format!(
            "password message length {len} out of range"
        )));
    }
    let mut body = vec![0u8; len - 4];
    client.read_exact(&mut body).await.map_err(Error::Io)?;
    Ok(body)
}

/// The client-first message inside a SASLInitialResponse: mechanism name,
/// then a length-prefixed payload.
pub(crate) fn sasl_initial_data(body: &[u8]) -> Result<&[u8], Error> {
    let bad = || Error::Protocol("malformed SASLInitialResponse".into());
    let nul = body.iter().position(|b| *b == 0).ok_or_else(bad)?;
    if &body[..nul] != b"SCRAM-SHA-256" {
        // A fixed text: a misconfigured client may send its password
        // where the mechanism's name goes; it is neither echoed nor logged.
        return Err(Error::Auth(AuthError::Unsupported {
            what: "a SASL mechanism other than SCRAM-SHA-256".into(),
        }));
    }
    let mut rest = &body[nul + 1..];
    if rest.len() < 4 {
        return Err(bad());
    }
    let len = rest.get_i32();
    if len < 0 || len as usize != rest.len() {
        return Err(bad());
    }
    Ok(rest)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn sasl_initial_responses_are_checked() {
        let mut ok = b"SCRAM-SHA-256\0".to_vec();
        ok.extend_from_slice(&3i32.to_be_bytes());
        ok.extend_from_slice(b"n,,");
        assert_eq!(sasl_initial_data(&ok).ok(), Some(&b"n,,"[..]));
        assert!(sasl_initial_data(b"SCRAM-SHA-256").is_err());
        assert!(sasl_initial_data(b"SCRAM-SHA-256\0\0\0\0\x09n,,").is_err());
        assert!(sasl_initial_data(b"PLAIN\0\0\0\0\0").is_err());
        // Whatever the client put in the mechanism's place is not repeated.
        let e = sasl_initial_data(b"hunter2-secret\0\0\0\0\0").err();
        let told = e.map(|e| format!("{e} {}", e.client_message()));
        assert!(
            told.as_deref().is_some_and(|t| !t.contains("hunter2")),
            "{told:?}"
        );
    }
}
