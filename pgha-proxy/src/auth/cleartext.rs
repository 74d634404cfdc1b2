//! Cleartext password authentication (`AuthenticationCleartextPassword`,
//! hba method `password`). The password crosses the wire as is: only
//! sensible over TLS.

use super::crypto::{ct_eq, md5_hex};
use super::{AuthError, Secret};

/// Checks a cleartext password (the `PasswordMessage` body, with or without
/// its trailing NUL) against the stored secret of `user`, whatever its kind.
///
/// Against a SCRAM verifier the password is used as sent; clients apply no
/// SASLprep to cleartext passwords, and PostgreSQL's SASLprep leaves every
/// ASCII password unchanged, so only non-ASCII passwords that SASLprep would
/// rewrite fail to match.
pub fn verify_cleartext(
    stored: &Secret,
    user: &str,
    client_password: &[u8],
) -> Result<(), AuthError> {
    let password = client_password
        .strip_suffix(&[0])
        .unwrap_or(client_password);
    let ok = match stored {
        Secret::Plain(p) => ct_eq(p.as_bytes(), password),
        Secret::Md5(hash) => ct_eq(
            hash.as_bytes(),
            format!("md5{}", md5_hex(&[password, user.as_bytes()])).as_bytes(),
        ),
        Secret::Scram(v) => v.matches_password(password),
    };
    if ok {
        Ok(())
    } else {
        Err(AuthError::WrongPassword {
            user: user.to_owned(),
        })
    }
}
