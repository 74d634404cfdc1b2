//! Session parameters a client relies on and a pooled server connection
//! may have differently: the ones PostgreSQL reports with ParameterStatus.
//! Before a client's transaction runs on a server, the proxy `SET`s the
//! ones that differ, so what the client was told stays true.

/// The reported parameters pgha keeps consistent, in PostgreSQL's spelling.
pub const TRACKED: [&str; 6] = [
    "client_encoding",
    "DateStyle",
    "IntervalStyle",
    "TimeZone",
    "standard_conforming_strings",
    "application_name",
];

/// Values of the [`TRACKED`] parameters (`None`: unknown). Shared, not
/// copied: every client's set starts as a clone of a server connection's,
/// so thousands of idle clients hold references, not strings.
#[derive(Debug, Clone, Default, PartialEq, Eq, Hash)]
pub struct Params([Option<std::sync::Arc<str>>; TRACKED.len()]);

/// Index of a tracked parameter (names are case-insensitive, as in
/// PostgreSQL).
pub fn tracked(name: &str) -> Option<usize> {
    TRACKED.iter().position(|t| t.eq_ignore_ascii_case(name))
}

impl Params {
    /// Sets a value if `name` is tracked; returns whether it was.
    pub fn set(&mut self, name: &str, value: &str) -> bool {
        match tracked(name) {
            Some(i) => {
                if self.0[i].as_deref() != Some(value) {
                    self.0[i] = Some(value.into());
                }
                true
            }
            None => false,
        }
    }

    /// The value of a tracked parameter.
    pub fn get(&self, name: &str) -> Option<&str> {
        self.0[tracked(name)?].as_deref()
    }

    /// A `SET` query (NUL-terminated, for a Query message) making a server
    /// with `server`'s values match `self`, and the server's values updated
    /// as if it ran; `None` when nothing differs.
    pub fn sync_query(&self, server: &mut Params) -> Option<Vec<u8>> {
        let mut sql = String::new();
        for (i, want) in self.0.iter().enumerate() {
            let Some(want) = want else { continue };
            if server.0[i].as_deref() == Some(&**want) {
                continue;
            }
            sql.push_str("SET ");
            sql.push_str(TRACKED[i]);
            sql.push_str(" TO ");
            quote(&mut sql, want);
            sql.push(';');
            server.0[i] = Some(want.clone());
        }
        if sql.is_empty() {
            return None;
        }
        let mut bytes = sql.into_bytes();
        bytes.push(0);
        Some(bytes)
    }

    /// Every known value, for ParameterStatus messages.
    pub fn iter(&self) -> impl Iterator<Item = (&'static str, &str)> {
        TRACKED
            .iter()
            .zip(&self.0)
            .filter_map(|(name, value)| Some((*name, value.as_deref()?)))
    }
}

/// A string literal that means `value` whatever
/// `standard_conforming_strings` is: `E'…'` with quotes and backslashes
/// doubled.
fn quote(sql: &mut String, value: &str) {
    sql.push_str("E'");
    for c in value.chars() {
        if c == '\'' || c == '\\' {
            sql.push(c);
        }
        sql.push(c);
    }
    sql.push('\'');
}

/// Name and value of a ParameterStatus message body.
pub fn parse_status(body: &[u8]) -> Option<(&str, &str)> {
    let mut parts = body.split(|&b| b == 0);
    let name = std::str::from_utf8(parts.next()?).ok()?;
    let value = std::str::from_utf8(parts.next()?).ok()?;
    Some((name, value))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn only_differing_parameters_are_set_and_values_are_quoted() {
        let mut client = Params::default();
        client.set("timezone", "Europe/Paris");
        client.set("application_name", "it's a\\b");
        client.set("search_path", "x");
        let mut server = Params::default();
        server.set("TimeZone", "Europe/Paris");
        server.set("application_name", "psql");
        let sql = client.sync_query(&mut server).unwrap_or_default();
        assert_eq!(
            String::from_utf8_lossy(&sql),
            "SET application_name TO E'it''s a\\\\b';\0"
        );
        assert_eq!(server, client, "the server now has the client's values");
        assert_eq!(client.sync_query(&mut server), None);
    }

    #[test]
    fn a_parameter_status_body_splits_into_name_and_value() {
        assert_eq!(parse_status(b"TimeZone\0UTC\0"), Some(("TimeZone", "UTC")));
        assert_eq!(parse_status(b"\xff\0x\0"), None);
    }
}
