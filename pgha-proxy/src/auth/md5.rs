//! md5 password authentication (`AuthenticationMD5Password`).
//!
//! The client answers `md5` + hex(md5(hex(md5(password + user)) + salt)).
//! md5 is weak; prefer SCRAM. It is here because old clients and existing
//! userlists need it.

use super::crypto::{ct_eq, md5_hex};
use super::{AuthError, Method, Secret};

/// One md5 challenge: the 4-byte salt sent in `AuthenticationMD5Password`.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Md5Challenge {
    salt: [u8; 4],
}

impl Md5Challenge {
    /// A challenge with `salt`, which must be fresh random bytes.
    pub fn new(salt: [u8; 4]) -> Md5Challenge {
        Md5Challenge { salt }
    }

    /// The salt to send in `AuthenticationMD5Password`.
    pub fn salt(&self) -> [u8; 4] {
        self.salt
    }

    /// Checks the client's `PasswordMessage` body (with or without its
    /// trailing NUL) against the stored secret of `user`. Works with
    /// plaintext and md5 secrets; a SCRAM verifier cannot check an md5
    /// response ([`AuthError::SecretUnusable`]; use [`Method::resolve`] to
    /// run SCRAM instead). A response that is not even `md5` + 32 hex digits
    /// is a wrong password, as in PostgreSQL.
    pub fn verify(
        &self,
        stored: &Secret,
        user: &str,
        client_response: &[u8],
    ) -> Result<(), AuthError> {
        let inner = match stored {
            Secret::Plain(password) => md5_hex(&[password.as_bytes(), user.as_bytes()]),
            Secret::Md5(hash) => hash.get(3..).unwrap_or_default().to_owned(),
            Secret::Scram(_) => {
                return Err(AuthError::SecretUnusable {
                    user: user.to_owned(),
                    secret_kind: stored.kind(),
                    method: Method::Md5,
                })
            }
        };
        let expected = format!("md5{}", md5_hex(&[inner.as_bytes(), &self.salt]));
        let response = client_response
            .strip_suffix(&[0])
            .unwrap_or(client_response);
        if ct_eq(expected.as_bytes(), response) {
            Ok(())
        } else {
            Err(AuthError::WrongPassword {
                user: user.to_owned(),
            })
        }
    }
}
