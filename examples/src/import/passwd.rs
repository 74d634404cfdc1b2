//! pgpool's `pool_passwd` (`user:secret` lines) as pgha's auth file
//! (`"user" "secret"` lines, PgBouncer's userlist format).
//!
//! pgpool stores a secret in one of five forms, told apart by a prefix:
//! `md5` + 32 hex digits (md5 of password + user, as PostgreSQL), a SCRAM
//! verifier (`SCRAM-SHA-256$…`), `TEXT` + the password, `AES` + base64 of
//! the password encrypted with the key in pgpool's `.pgpoolkey`, or no
//! prefix for the password itself. All but AES carry over unchanged in
//! meaning; AES needs pgpool's key, which the import does not have.

use pgha_proxy::auth::Secret;

use super::pgpool_conf::LineError;

/// The kind of a pgpool secret, and the password itself when it is
/// stored in the clear.
pub(super) fn classify(text: &str) -> (&'static str, Option<String>) {
    if let Some(hex) = text.strip_prefix("md5") {
        if hex.len() == 32 && hex.bytes().all(|b| b.is_ascii_hexdigit()) {
            return ("md5-hashed", None);
        }
    }
    if text.starts_with("SCRAM-SHA-256$") {
        return ("SCRAM-SHA-256", None);
    }
    if text.starts_with("AES") {
        return ("AES-encrypted", None);
    }
    if let Some(plain) = text.strip_prefix("TEXT") {
        return ("clear-text", Some(plain.to_owned()));
    }
    ("clear-text", Some(text.to_owned()))
}

/// The auth file written, and what it could not carry over.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(super) struct Converted {
    /// The auth file's text.
    pub text: String,
    /// How many users it lists.
    pub users: usize,
    /// `(line, why)` for each user left out.
    pub skipped: Vec<(usize, String)>,
}

/// Converts the text of a pool_passwd; a line that is not `user:secret`
/// is an error (pgpool would not read it either).
pub(super) fn convert(text: &str, source: &str) -> Result<Converted, Vec<LineError>> {
    let mut out = format!(
        "; pgha auth file, converted from {source} by `pgha import-pgpool`.\n\
         ; \"user\" \"secret\": md5 hashes and SCRAM verifiers as pgpool stored them,\n\
         ; clear-text passwords as they were. Keep this file readable by pgha only.\n"
    );
    let mut users = Vec::new();
    let mut skipped = Vec::new();
    let mut errors = Vec::new();
    for (i, line) in text.lines().enumerate() {
        let line_no = i + 1;
        let line = line.trim_end_matches('\r');
        if line.trim().is_empty() {
            continue;
        }
        let Some((user, secret)) = line.split_once(':') else {
            errors.push(LineError {
                line: line_no,
                message: "expected user:password (no ':' on this line)".into(),
            });
            continue;
        };
        if user.is_empty() {
            errors.push(LineError {
                line: line_no,
                message: "empty user name before ':'".into(),
            });
            continue;
        }
        let mut skip = |why: String| {
            out.push_str(&format!("; {user} (line {line_no}) left out: {why}\n"));
            skipped.push((line_no, format!("user {user}: {why}")));
        };
        if users.iter().any(|u| u == user) {
            skip("listed again; pgpool uses the first line".into());
            continue;
        }
        match carried(secret) {
            Ok(secret) => {
                out.push_str(&format!("{} {}\n", quote(user), quote(&secret)));
                users.push(user.to_owned());
            }
            Err(why) => skip(why),
        }
    }
    if errors.is_empty() {
        Ok(Converted {
            text: out,
            users: users.len(),
            skipped,
        })
    } else {
        Err(errors)
    }
}

/// The secret as pgha's auth file stores it, or why it cannot be.
fn carried(secret: &str) -> Result<String, String> {
    let (kind, plain) = classify(secret);
    let stored =
        match (kind, plain) {
            ("AES-encrypted", _) => return Err(
                "its password is AES-encrypted with pgpool's key (.pgpoolkey); decrypt it with \
                 pgpool's tools or list the user again with its password, md5 hash or SCRAM \
                 verifier"
                    .into(),
            ),
            (_, Some(plain)) => plain,
            (_, None) => secret.to_owned(),
        };
    if stored.is_empty() {
        return Err("empty password".into());
    }
    let parsed = Secret::parse(&stored).map_err(|e| format!("its {kind} secret: {e}"))?;
    // A clear-text password that happens to read as a hash would be taken
    // for one by pgha: say so rather than lock the user out.
    if kind == "clear-text" && !matches!(parsed, Secret::Plain(_)) {
        return Err(
            "its clear-text password looks like an md5 hash or SCRAM verifier, and pgha would \
             read it as one; store its SCRAM verifier instead"
                .into(),
        );
    }
    Ok(stored)
}

/// A field of the auth file: double-quoted, `"` doubled.
fn quote(text: &str) -> String {
    format!("\"{}\"", text.replace('"', "\"\""))
}

#[cfg(test)]
#[allow(clippy::unwrap_used)] // a failing unwrap is a failing test
mod tests {
    use super::*;
    use pgha_proxy::auth::AuthFile;

    #[test]
    fn md5_text_and_plain_entries_carry_over_aes_is_explained() {
        let pool_passwd = "postgres:md53175bce1d3201d16594cebf9d7eb3f9d\n\
                           app:TEXTs3cret\n\
                           legacy:plainpass\n\
                           vault:AESdGVzdA==\n\
                           \n\
                           postgres:md500000000000000000000000000000000\n";
        let converted = convert(pool_passwd, "pool_passwd").unwrap();
        assert_eq!(converted.users, 3);
        let skipped: Vec<usize> = converted.skipped.iter().map(|s| s.0).collect();
        assert_eq!(skipped, vec![4, 6]);
        assert!(
            converted.skipped[0].1.contains("AES"),
            "{:?}",
            converted.skipped
        );
        assert!(
            converted.text.contains("; vault (line 4) left out"),
            "{}",
            converted.text
        );
        // pgha's own parser reads the result, secrets as they were meant.
        let users = AuthFile::parse(&converted.text, "userlist").unwrap();
        assert_eq!(
            users.lookup("postgres"),
            Some(&Secret::Md5("md53175bce1d3201d16594cebf9d7eb3f9d".into()))
        );
        assert_eq!(users.lookup("app"), Some(&Secret::Plain("s3cret".into())));
        assert_eq!(
            users.lookup("legacy"),
            Some(&Secret::Plain("plainpass".into()))
        );
        assert_eq!(users.lookup("vault"), None);
    }

    #[test]
    fn scram_verifiers_carry_over_and_broken_ones_are_explained() {
        let verifier = "SCRAM-SHA-256$4096:c2FsdHNhbHQ=$\
                        4+PXVJ6mDo9MDO4ZBh0S0Rl5TQ5zgNw7eaYDkcsQdXw=:\
                        GDsWCskq5KEHtRlQQlu0MzGL3IVWyDmGA7tqqZkPj3o=";
        let text = format!("alice:{verifier}\nbob:SCRAM-SHA-256$broken\n");
        let converted = convert(&text, "pool_passwd").unwrap();
        assert_eq!(converted.users, 1);
        assert_eq!(converted.skipped.len(), 1);
        let users = AuthFile::parse(&converted.text, "userlist").unwrap();
        assert!(matches!(users.lookup("alice"), Some(Secret::Scram(_))));
    }

    #[test]
    fn quotes_in_names_and_passwords_survive() {
        let converted = convert("o\"neil:TEXTpa\"ss\n", "pool_passwd").unwrap();
        let users = AuthFile::parse(&converted.text, "userlist").unwrap();
        assert_eq!(
            users.lookup("o\"neil"),
            Some(&Secret::Plain("pa\"ss".into()))
        );
    }

    #[test]
    fn a_line_without_a_colon_is_an_error_with_its_line() {
        let errors = convert("ok:md5x\nno colon here\n:nouser\n", "pool_passwd").unwrap_err();
        let lines: Vec<usize> = errors.iter().map(|e| e.line).collect();
        assert_eq!(lines, vec![2, 3]);
    }
}
