//! The server side of SCRAM-SHA-256 (RFC 5802 / RFC 7677) as PostgreSQL
//! speaks it, without channel binding.
//!
//! The shell sends `AuthenticationSASL` offering `SCRAM-SHA-256`, passes the
//! data of the client's `SASLInitialResponse` to
//! [`ScramServer::handle_client_first`], sends what it returns in
//! `AuthenticationSASLContinue`, passes the client's `SASLResponse` to
//! [`ScramServer::handle_client_final`], and on `Ok` sends the returned bytes
//! in `AuthenticationSASLFinal` followed by `AuthenticationOk`.

use std::fmt;

use base64::engine::general_purpose::STANDARD as B64;
use base64::Engine;

use super::crypto::{ct_eq, hi, hmac_sha256, sha256};
use super::{AuthError, Secret};

/// The prefix of a stored SCRAM-SHA-256 verifier.
pub const VERIFIER_PREFIX: &str = "SCRAM-SHA-256$";

/// The SASL mechanism name the shell offers in `AuthenticationSASL`.
pub const MECHANISM: &str = "SCRAM-SHA-256";

/// PostgreSQL's default iteration count, used when a verifier is derived here.
pub const DEFAULT_ITERATIONS: u32 = 4096;

/// Upper bound on a stored iteration count: each login costs this many
/// HMACs on the client, and a typo like `40960000` would stall every login.
const MAX_ITERATIONS: u32 = 10_000_000;

/// A SCRAM-SHA-256 verifier: what PostgreSQL stores in `pg_authid`.
#[derive(Clone, PartialEq, Eq)]
pub struct ScramVerifier {
    iterations: u32,
    salt: Vec<u8>,
    stored_key: [u8; 32],
    server_key: [u8; 32],
}

impl ScramVerifier {
    /// Parses `SCRAM-SHA-256$<iterations>:<salt>$<StoredKey>:<ServerKey>`
    /// strictly: a positive iteration count, a non-empty base64 salt, and
    /// keys that are base64 of exactly 32 bytes. The error never contains
    /// key material.
    pub fn parse(text: &str) -> Result<ScramVerifier, String> {
        let rest = text
            .strip_prefix(VERIFIER_PREFIX)
            .ok_or_else(|| format!("a SCRAM verifier starts with `{VERIFIER_PREFIX}`"))?;
        let (iter_salt, keys) = rest
            .split_once('$')
            .ok_or("SCRAM verifier: expected `<iterations>:<salt>$<StoredKey>:<ServerKey>`")?;
        let (iter, salt) = iter_salt
            .split_once(':')
            .ok_or("SCRAM verifier: expected `<iterations>:<salt>` after `SCRAM-SHA-256$`")?;
        let iterations: u32 = match iter.parse() {
            Ok(n) if n > 0 && n <= MAX_ITERATIONS && iter.bytes().all(|b| b.is_ascii_digit()) => n,
            _ => {
                return Err(format!(
                    "SCRAM verifier: iteration count must be a number from 1 to {MAX_ITERATIONS}"
                ))
            }
        };
        let salt = match B64.decode(salt) {
            Ok(s) if !s.is_empty() => s,
            _ => return Err("SCRAM verifier: the salt is not non-empty base64".into()),
        };
        let (stored, server) = keys
            .split_once(':')
            .ok_or("SCRAM verifier: expected `<StoredKey>:<ServerKey>` after the salt")?;
        let stored_key =
            decode_key(stored).ok_or("SCRAM verifier: StoredKey is not base64 of 32 bytes")?;
        let server_key =
            decode_key(server).ok_or("SCRAM verifier: ServerKey is not base64 of 32 bytes")?;
        Ok(ScramVerifier {
            iterations,
            salt,
            stored_key,
            server_key,
        })
    }

    /// Derives a verifier from a password, a salt and an iteration count.
    ///
    /// The password is used as given: clients apply SASLprep first, which
    /// leaves every ASCII password unchanged; for other passwords prefer
    /// [`ScramVerifier::from_password`].
    pub fn derive(password: &[u8], salt: &[u8], iterations: u32) -> ScramVerifier {
        let salted = hi(password, salt, iterations.max(1));
        let client_key = hmac_sha256(&salted, &[b"Client Key"]);
        ScramVerifier {
            iterations: iterations.max(1),
            salt: salt.to_vec(),
            stored_key: sha256(&client_key),
            server_key: hmac_sha256(&salted, &[b"Server Key"]),
        }
    }

    /// Derives a verifier for a plaintext password the way PostgreSQL does
    /// (SASLprep, 4096 iterations). `salt` must be fresh random bytes (16,
    /// like PostgreSQL); it is used for ASCII passwords. Other passwords go
    /// through `postgres_protocol::password::scram_sha_256`, which applies
    /// SASLprep and draws its own salt from the thread RNG.
    pub fn from_password(password: &str, salt: &[u8]) -> ScramVerifier {
        if !password.is_ascii() {
            let text = postgres_protocol::password::scram_sha_256(password.as_bytes());
            if let Ok(v) = ScramVerifier::parse(&text) {
                return v;
            }
        }
        ScramVerifier::derive(password.as_bytes(), salt, DEFAULT_ITERATIONS)
    }

    /// The iteration count.
    pub fn iterations(&self) -> u32 {
        self.iterations
    }

    /// The salt.
    pub fn salt(&self) -> &[u8] {
        &self.salt
    }

    /// Whether `password` (as the client would send it after SASLprep)
    /// matches, compared in constant time.
    pub(crate) fn matches_password(&self, password: &[u8]) -> bool {
        let other = ScramVerifier::derive(password, &self.salt, self.iterations);
        ct_eq(&other.stored_key, &self.stored_key) & ct_eq(&other.server_key, &self.server_key)
    }
}

fn decode_key(text: &str) -> Option<[u8; 32]> {
    B64.decode(text).ok()?.try_into().ok()
}

impl fmt::Display for ScramVerifier {
    /// The stored form, `SCRAM-SHA-256$<iter>:<salt>$<StoredKey>:<ServerKey>`.
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(
            f,
            "{VERIFIER_PREFIX}{}:{}${}:{}",
            self.iterations,
            B64.encode(&self.salt),
            B64.encode(self.stored_key),
            B64.encode(self.server_key)
        )
    }
}

impl fmt::Debug for ScramVerifier {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("ScramVerifier")
            .field("iterations", &self.iterations)
            .finish_non_exhaustive()
    }
}

/// Where a [`ScramServer`] is in the exchange.
#[derive(Debug)]
enum State {
    /// Waiting for client-first.
    First,
    /// Sent server-first; waiting for client-final.
    Final {
        /// The gs2 header the client used (`n,,` or `y,,`); client-final's
        /// `c=` must carry it back.
        gs2_header: String,
        /// client-first-bare then `,` then server-first: the start of the
        /// AuthMessage.
        auth_prefix: String,
        /// client nonce + server nonce.
        nonce: String,
    },
    /// Finished (well or badly); every further message is a violation.
    Done,
}

/// The server side of one SCRAM-SHA-256 exchange.
#[derive(Debug)]
pub struct ScramServer {
    user: String,
    verifier: ScramVerifier,
    server_nonce: String,
    /// A mock exchange for a user who does not exist: it looks the same to
    /// the client and always ends in [`AuthError::UnknownUser`].
    mock: bool,
    state: State,
}

impl ScramServer {
    /// Starts an exchange for `user` (from the startup packet; PostgreSQL
    /// clients send an empty name in SCRAM) against `verifier`.
    /// `server_nonce` must be fresh random bytes (18, like PostgreSQL); they
    /// are sent base64-encoded.
    pub fn new(user: &str, verifier: &ScramVerifier, server_nonce: &[u8]) -> ScramServer {
        ScramServer {
            user: user.to_owned(),
            verifier: verifier.clone(),
            server_nonce: B64.encode(server_nonce),
            mock: false,
            state: State::First,
        }
    }

    /// Starts an exchange against any stored secret: a plaintext password is
    /// turned into a verifier first (with `fresh_salt`, see
    /// [`ScramVerifier::from_password`]); an md5 hash cannot drive SCRAM
    /// ([`AuthError::SecretUnusable`]).
    pub fn for_secret(
        user: &str,
        secret: &Secret,
        server_nonce: &[u8],
        fresh_salt: &[u8],
    ) -> Result<ScramServer, AuthError> {
        match secret {
            Secret::Scram(v) => Ok(ScramServer::new(user, v, server_nonce)),
            Secret::Plain(p) => Ok(ScramServer::new(
                user,
                &ScramVerifier::from_password(p, fresh_salt),
                server_nonce,
            )),
            Secret::Md5(_) => Err(AuthError::SecretUnusable {
                user: user.to_owned(),
                secret_kind: secret.kind(),
                method: super::Method::ScramSha256,
            }),
        }
    }

    /// Starts a mock exchange for a user who has no secret, so a client
    /// cannot probe which users exist: the salt is derived from `mock_key`
    /// (a per-proxy random secret) and the user name, so it is stable across
    /// attempts like a real one, and the exchange ends in
    /// [`AuthError::UnknownUser`] (same SQLSTATE and message as a wrong
    /// password).
    pub fn mock(user: &str, mock_key: &[u8], server_nonce: &[u8]) -> ScramServer {
        let salt = hmac_sha256(mock_key, &[b"pgha mock salt", user.as_bytes()]);
        let verifier = ScramVerifier {
            iterations: DEFAULT_ITERATIONS,
            salt: salt[..16].to_vec(),
            stored_key: hmac_sha256(mock_key, &[b"pgha mock stored key", user.as_bytes()]),
            server_key: hmac_sha256(mock_key, &[b"pgha mock server key", user.as_bytes()]),
        };
        ScramServer {
            mock: true,
            ..ScramServer::new(user, &verifier, server_nonce)
        }
    }

    /// Handles client-first (the data of `SASLInitialResponse`) and returns
    /// server-first, to be sent in `AuthenticationSASLContinue`.
    pub fn handle_client_first(&mut self, message: &[u8]) -> Result<Vec<u8>, AuthError> {
        if !matches!(self.state, State::First) {
            self.state = State::Done;
            return Err(AuthError::protocol("unexpected SCRAM client-first message"));
        }
        self.state = State::Done;
        let text = std::str::from_utf8(message)
            .map_err(|_| AuthError::protocol("SCRAM message is not UTF-8"))?;

        // gs2-header = gs2-cbind-flag "," [ authzid ] ","
        let (gs2_header, bare) = match text.as_bytes().first() {
            Some(b'n' | b'y') if text.as_bytes().get(1) == Some(&b',') => {
                let rest = &text[2..];
                if rest.starts_with("a=") {
                    return Err(AuthError::Unsupported {
                        what: "SCRAM authorization identity".into(),
                    });
                }
                let bare = rest
                    .strip_prefix(',')
                    .ok_or_else(|| AuthError::protocol("malformed SCRAM gs2 header"))?;
                (&text[..3], bare)
            }
            Some(b'p') => {
                return Err(AuthError::Unsupported {
                    what: "SCRAM channel binding (SCRAM-SHA-256-PLUS was not offered)".into(),
                })
            }
            _ => return Err(AuthError::protocol("malformed SCRAM gs2 header")),
        };

        // client-first-bare = [reserved-mext ","] username "," nonce ["," extensions]
        let mut attrs = bare.split(',');
        let user = attrs.next().unwrap_or_default();
        if user.starts_with("m=") {
            return Err(AuthError::Unsupported {
                what: "SCRAM mandatory extension".into(),
            });
        }
        if !user.starts_with("n=") {
            return Err(AuthError::protocol("SCRAM client-first: expected `n=`"));
        }
        let client_nonce = attrs
            .next()
            .and_then(|a| a.strip_prefix("r="))
            .ok_or_else(|| AuthError::protocol("SCRAM client-first: expected `r=`"))?;
        if client_nonce.is_empty() || !client_nonce.bytes().all(is_printable) {
            return Err(AuthError::protocol("SCRAM client-first: invalid nonce"));
        }
        for ext in attrs {
            check_attribute(ext)?;
        }

        let nonce = format!("{client_nonce}{}", self.server_nonce);
        let server_first = format!(
            "r={nonce},s={},i={}",
            B64.encode(&self.verifier.salt),
            self.verifier.iterations
        );
        self.state = State::Final {
            gs2_header: gs2_header.to_owned(),
            auth_prefix: format!("{bare},{server_first}"),
            nonce,
        };
        Ok(server_first.into_bytes())
    }

    /// Handles client-final (the data of `SASLResponse`). On success returns
    /// server-final (`v=<ServerSignature>`), to be sent in
    /// `AuthenticationSASLFinal`; a wrong proof is
    /// [`AuthError::WrongPassword`].
    pub fn handle_client_final(&mut self, message: &[u8]) -> Result<Vec<u8>, AuthError> {
        let (gs2_header, auth_prefix, nonce) = match std::mem::replace(&mut self.state, State::Done)
        {
            State::Final {
                gs2_header,
                auth_prefix,
                nonce,
            } => (gs2_header, auth_prefix, nonce),
            _ => return Err(AuthError::protocol("unexpected SCRAM client-final message")),
        };
        let text = std::str::from_utf8(message)
            .map_err(|_| AuthError::protocol("SCRAM message is not UTF-8"))?;

        // client-final = "c=" cbind "," "r=" nonce ["," extensions] "," "p=" proof
        let (without_proof, proof) = text
            .rsplit_once(",p=")
            .ok_or_else(|| AuthError::protocol("SCRAM client-final: expected `p=` last"))?;
        let mut attrs = without_proof.split(',');
        let cbind = attrs
            .next()
            .and_then(|a| a.strip_prefix("c="))
            .ok_or_else(|| AuthError::protocol("SCRAM client-final: expected `c=`"))?;
        if B64.decode(cbind).ok().as_deref() != Some(gs2_header.as_bytes()) {
            return Err(AuthError::protocol(
                "SCRAM client-final: channel binding data does not match the gs2 header",
            ));
        }
        let client_nonce = attrs
            .next()
            .and_then(|a| a.strip_prefix("r="))
            .ok_or_else(|| AuthError::protocol("SCRAM client-final: expected `r=`"))?;
        if client_nonce != nonce {
            return Err(AuthError::protocol(
                "SCRAM client-final: nonce does not match",
            ));
        }
        for ext in attrs {
            check_attribute(ext)?;
        }
        let proof: [u8; 32] = B64
            .decode(proof)
            .ok()
            .and_then(|p| p.try_into().ok())
            .ok_or_else(|| {
                AuthError::protocol("SCRAM client-final: proof is not base64 of 32 bytes")
            })?;

        let auth_message = format!("{auth_prefix},{without_proof}");
        let client_signature = hmac_sha256(&self.verifier.stored_key, &[auth_message.as_bytes()]);
        let mut client_key = proof;
        for (k, s) in client_key.iter_mut().zip(client_signature) {
            *k ^= s;
        }
        let proof_ok = ct_eq(&sha256(&client_key), &self.verifier.stored_key);
        if self.mock {
            return Err(AuthError::UnknownUser {
                user: self.user.clone(),
            });
        }
        if !proof_ok {
            return Err(AuthError::WrongPassword {
                user: self.user.clone(),
            });
        }
        let server_signature = hmac_sha256(&self.verifier.server_key, &[auth_message.as_bytes()]);
        Ok(format!("v={}", B64.encode(server_signature)).into_bytes())
    }
}

/// RFC 5802 `printable`: `%x21-2B / %x2D-7E` (no comma).
fn is_printable(b: u8) -> bool {
    matches!(b, 0x21..=0x2b | 0x2d..=0x7e)
}

/// An optional extension attribute: `<letter>=<value>`. Unknown ones are
/// ignored, as RFC 5802 asks.
fn check_attribute(attr: &str) -> Result<(), AuthError> {
    let b = attr.as_bytes();
    if b.len() >= 2 && b[0].is_ascii_alphabetic() && b[1] == b'=' {
        Ok(())
    } else {
        Err(AuthError::protocol("SCRAM: malformed attribute"))
    }
}
