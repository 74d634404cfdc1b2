//! The auth file: users and their secrets, like PgBouncer's `userlist.txt`.
//!
//! ```text
//! ; comments start with ';' or '#'
//! "alice" "SCRAM-SHA-256$4096:c2FsdA==$<StoredKey>:<ServerKey>"
//! "bob"   "md5a3556571e93b0d20722ba62be61e8c2d"
//! "carol" "plain text password"
//! ```
//!
//! Each line is two double-quoted fields, user then secret; `""` inside a
//! field is a literal quote. See [`Secret::parse`] for how a secret's kind is
//! recognised. Unlike PgBouncer, anything else on a line is an error, and so
//! is a user listed twice.

use std::collections::HashMap;

use super::Secret;

/// A line of an auth file that could not be used. It never contains a
/// secret.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("{source_name}:{line}: {message}")]
pub struct AuthFileError {
    /// The name of the file (or other source) given to [`AuthFile::parse`].
    pub source_name: String,
    /// The line, 1-based.
    pub line: usize,
    /// What is wrong with it.
    pub message: String,
}

/// Users and their secrets.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct AuthFile {
    users: HashMap<String, Secret>,
}

impl AuthFile {
    /// Parses an auth file, reporting every bad line at once as
    /// `source_name:line: what is wrong`.
    pub fn parse(text: &str, source_name: &str) -> Result<AuthFile, Vec<AuthFileError>> {
        let mut users = HashMap::new();
        let mut first_line: HashMap<String, usize> = HashMap::new();
        let mut errors = Vec::new();
        for (i, line) in text.lines().enumerate() {
            let line_no = i + 1;
            let result = parse_line(line).and_then(|entry| match entry {
                None => Ok(()),
                Some((user, _)) if first_line.contains_key(&user) => Err(format!(
                    "user \"{user}\" is already listed on line {}",
                    first_line.get(&user).copied().unwrap_or_default()
                )),
                Some((user, secret)) => {
                    first_line.insert(user.clone(), line_no);
                    users.insert(user, secret);
                    Ok(())
                }
            });
            if let Err(message) = result {
                errors.push(AuthFileError {
                    source_name: source_name.to_owned(),
                    line: line_no,
                    message,
                });
            }
        }
        if errors.is_empty() {
            Ok(AuthFile { users })
        } else {
            Err(errors)
        }
    }

    /// The secret stored for `user`.
    pub fn lookup(&self, user: &str) -> Option<&Secret> {
        self.users.get(user)
    }

    /// How many users are listed.
    pub fn len(&self) -> usize {
        self.users.len()
    }

    /// Whether no user is listed.
    pub fn is_empty(&self) -> bool {
        self.users.is_empty()
    }
}

fn parse_line(line: &str) -> Result<Option<(String, Secret)>, String> {
    let trimmed = line.trim();
    if trimmed.is_empty() || trimmed.starts_with(';') || trimmed.starts_with('#') {
        return Ok(None);
    }
    let (user, rest) = quoted(trimmed).map_err(|e| format!("user: {e}"))?;
    if user.is_empty() {
        return Err("empty user name".into());
    }
    let rest = rest.trim_start();
    if rest.is_empty() {
        return Err(format!("user \"{user}\" has no secret"));
    }
    let (secret, rest) = quoted(rest).map_err(|e| format!("secret of user \"{user}\": {e}"))?;
    if !rest.trim().is_empty() {
        return Err(format!(
            "unexpected text after the secret of user \"{user}\""
        ));
    }
    let secret = Secret::parse(&secret).map_err(|e| format!("secret of user \"{user}\": {e}"))?;
    Ok(Some((user, secret)))
}

/// Reads one double-quoted field at the start of `text`; returns it and
/// what follows.
fn quoted(text: &str) -> Result<(String, &str), &'static str> {
    let mut rest = text
        .strip_prefix('"')
        .ok_or("expected a double-quoted field")?;
    let mut out = String::new();
    loop {
        let end = rest.find('"').ok_or("missing closing double quote")?;
        out.push_str(&rest[..end]);
        rest = &rest[end + 1..];
        match rest.strip_prefix('"') {
            Some(after) => {
                out.push('"');
                rest = after;
            }
            None => return Ok((out, rest)),
        }
    }
}
