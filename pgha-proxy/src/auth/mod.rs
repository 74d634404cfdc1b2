//! Client authentication, as pure state machines.
//!
//! Nothing here touches a socket, a clock or tokio: the proxy's IO shell reads
//! a client's bytes, hands them to these types and writes back what they
//! return. Randomness (SCRAM nonces, md5 salts) is an input too.
//!
//! The pieces:
//!
//! * [`HbaRules`] (pg_hba.conf-style rules) choose a [`Method`] for a client;
//! * [`AuthFile`] (PgBouncer userlist-style) maps a user to a [`Secret`];
//! * [`ScramServer`], [`Md5Challenge`] and [`verify_cleartext`] run the
//!   exchange for that method and say yes or give an [`AuthError`] whose
//!   [`sqlstate`](AuthError::sqlstate) the client is sent.
//!
//! ```
//! use pgha_proxy::auth::{AuthError, AuthFile, ClientInfo, HbaRules, Md5Challenge, Method};
//!
//! let hba = HbaRules::parse("host all all 10.0.0.0/8 md5\n", "hba.conf").unwrap();
//! let users = AuthFile::parse(r#""alice" "s3cret""#, "userlist.txt").unwrap();
//!
//! let client = ClientInfo { addr: Some("10.1.2.3".parse().unwrap()), ssl: false,
//!                           database: "app", user: "alice" };
//! assert_eq!(hba.method_for(&client), Method::Md5);
//!
//! // The shell sends AuthenticationMD5Password with this salt, reads the reply…
//! let challenge = Md5Challenge::new([1, 2, 3, 4]);
//! let reply = postgres_protocol::authentication::md5_hash(b"alice", b"s3cret", [1, 2, 3, 4]);
//! let secret = users.lookup("alice").unwrap();
//! assert!(challenge.verify(secret, "alice", reply.as_bytes()).is_ok());
//!
//! // …and a wrong password gets 28P01.
//! let wrong = postgres_protocol::authentication::md5_hash(b"alice", b"guess", [1, 2, 3, 4]);
//! let err = challenge.verify(secret, "alice", wrong.as_bytes()).unwrap_err();
//! assert_eq!(err.sqlstate(), "28P01");
//! ```

use std::fmt;

pub mod auth_file;
pub mod cleartext;
mod crypto;
pub mod hba;
pub mod md5;
pub mod scram;

pub use auth_file::{AuthFile, AuthFileError};
pub use cleartext::verify_cleartext;
pub use hba::{ClientInfo, ConnType, HbaError, HbaRule, HbaRules};
pub use md5::Md5Challenge;
pub use scram::{ScramServer, ScramVerifier};

/// How a client must prove who it is (the METHOD column of an hba rule).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum Method {
    /// Let the client in without a password.
    Trust,
    /// Refuse the client.
    Reject,
    /// `AuthenticationMD5Password`; a user whose stored secret is a SCRAM
    /// verifier gets SCRAM instead, as PostgreSQL does (see [`Method::resolve`]).
    Md5,
    /// SASL with SCRAM-SHA-256, without channel binding.
    ScramSha256,
    /// `AuthenticationCleartextPassword` (only sensible over TLS).
    Password,
}

impl Method {
    /// The keyword for this method in an hba file.
    pub fn as_str(self) -> &'static str {
        match self {
            Method::Trust => "trust",
            Method::Reject => "reject",
            Method::Md5 => "md5",
            Method::ScramSha256 => "scram-sha-256",
            Method::Password => "password",
        }
    }

    /// Parses an hba keyword (`trust`, `reject`, `md5`, `scram-sha-256`,
    /// `password`).
    pub fn from_keyword(word: &str) -> Option<Method> {
        Some(match word {
            "trust" => Method::Trust,
            "reject" => Method::Reject,
            "md5" => Method::Md5,
            "scram-sha-256" => Method::ScramSha256,
            "password" => Method::Password,
            _ => return None,
        })
    }

    /// The exchange to run once the user's secret is known (`None`: no such
    /// user). Like PostgreSQL, `md5` is upgraded to SCRAM when the stored
    /// secret is a SCRAM verifier, since md5 cannot be checked against one.
    /// An unknown user keeps the method, so the shell runs the same exchange
    /// (see [`ScramServer::mock`]) and the client cannot tell.
    pub fn resolve(self, secret: Option<&Secret>) -> Method {
        match (self, secret) {
            (Method::Md5, Some(Secret::Scram(_))) => Method::ScramSha256,
            (m, _) => m,
        }
    }
}

impl fmt::Display for Method {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

/// What the proxy stores to check a user's password.
///
/// `Debug` never shows the secret itself.
#[derive(Clone, PartialEq, Eq)]
pub enum Secret {
    /// The password itself.
    Plain(String),
    /// PostgreSQL's md5 form: `md5` followed by 32 lowercase hex digits of
    /// md5(password + user).
    Md5(String),
    /// A SCRAM-SHA-256 verifier.
    Scram(ScramVerifier),
}

impl Secret {
    /// Parses a stored secret: a SCRAM verifier
    /// (`SCRAM-SHA-256$<iter>:<salt>$<StoredKey>:<ServerKey>`, checked
    /// strictly), an md5 hash (`md5` + 32 hex digits, stored lowercase), or
    /// else a plaintext password. The error never contains the secret.
    pub fn parse(text: &str) -> Result<Secret, String> {
        if text.is_empty() {
            return Err("empty secret".into());
        }
        if text.starts_with(scram::VERIFIER_PREFIX) {
            return ScramVerifier::parse(text).map(Secret::Scram);
        }
        if let Some(hex) = text.strip_prefix("md5") {
            if hex.len() == 32 && hex.bytes().all(|b| b.is_ascii_hexdigit()) {
                return Ok(Secret::Md5(format!("md5{}", hex.to_ascii_lowercase())));
            }
        }
        Ok(Secret::Plain(text.to_owned()))
    }

    /// The kind of secret, for logs: `plaintext`, `md5` or `SCRAM-SHA-256`.
    pub fn kind(&self) -> &'static str {
        match self {
            Secret::Plain(_) => "plaintext",
            Secret::Md5(_) => "md5",
            Secret::Scram(_) => "SCRAM-SHA-256",
        }
    }
}

impl fmt::Debug for Secret {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "Secret::{}(<redacted>)", self.kind())
    }
}

/// Why a client was not let in.
///
/// `Display` is for the proxy's log; send the client
/// [`client_message`](AuthError::client_message) and
/// [`sqlstate`](AuthError::sqlstate), which never say whether a user exists.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[non_exhaustive]
pub enum AuthError {
    /// The password (or proof) did not match the stored secret.
    #[error("wrong password for user \"{user}\"")]
    WrongPassword {
        /// The user from the startup packet.
        user: String,
    },
    /// No secret is stored for this user.
    #[error("unknown user \"{user}\"")]
    UnknownUser {
        /// The user from the startup packet.
        user: String,
    },
    /// The stored secret cannot check this method (a SCRAM verifier cannot
    /// check an md5 response; an md5 hash cannot drive SCRAM).
    #[error("user \"{user}\" has a {secret_kind} secret, which cannot be used for {method}")]
    SecretUnusable {
        /// The user from the startup packet.
        user: String,
        /// The kind of stored secret ([`Secret::kind`]).
        secret_kind: &'static str,
        /// The method that was asked for.
        method: Method,
    },
    /// An hba rule rejected the connection, or none matched.
    #[error("rejected by hba rules: user \"{user}\", database \"{database}\"{}", match .line { Some(l) => format!(" (line {l})"), None => " (no rule matched)".to_owned() })]
    Rejected {
        /// The user from the startup packet.
        user: String,
        /// The database from the startup packet.
        database: String,
        /// The line of the rule that rejected; `None` when no rule matched.
        line: Option<usize>,
    },
    /// The client asked for something this proxy does not do (a SASL
    /// mechanism other than SCRAM-SHA-256, channel binding, an authzid…).
    #[error("unsupported: {what}")]
    Unsupported {
        /// What was asked for.
        what: String,
    },
    /// The client's bytes are not a valid authentication message.
    #[error("protocol violation during authentication: {what}")]
    Protocol {
        /// What is wrong with them.
        what: String,
    },
}

impl AuthError {
    /// The SQLSTATE the client is sent: `28P01` for a failed password
    /// (whatever the reason, so a client cannot probe for users), `28000`
    /// for an hba reject or an unsupported request, `08P01` for a protocol
    /// violation.
    pub fn sqlstate(&self) -> &'static str {
        match self {
            AuthError::WrongPassword { .. }
            | AuthError::UnknownUser { .. }
            | AuthError::SecretUnusable { .. } => "28P01",
            AuthError::Rejected { .. } | AuthError::Unsupported { .. } => "28000",
            AuthError::Protocol { .. } => "08P01",
        }
    }

    /// The message the client is sent. It is the same for a wrong password,
    /// an unknown user and an unusable secret, and never names an address or
    /// a secret.
    pub fn client_message(&self) -> String {
        match self {
            AuthError::WrongPassword { user }
            | AuthError::UnknownUser { user }
            | AuthError::SecretUnusable { user, .. } => {
                format!("password authentication failed for user \"{user}\"")
            }
            AuthError::Rejected { user, database, .. } => {
                format!("no pgha hba entry allows user \"{user}\", database \"{database}\"")
            }
            AuthError::Unsupported { what } => {
                format!("unsupported authentication request: {what}")
            }
            AuthError::Protocol { what } => format!("invalid authentication message: {what}"),
        }
    }

    pub(crate) fn protocol(what: impl Into<String>) -> AuthError {
        AuthError::Protocol { what: what.into() }
    }
}

#[cfg(test)]
mod tests;
