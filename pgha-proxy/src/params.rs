//! Session parameters a client relies on and a pooled server connection
//! may have differently: the ones PostgreSQL reports with ParameterStatus.
//! Before a client's transaction runs on a server, the proxy `SET`s the
//! ones that differ, so what the client was told stays true.

use std::sync::Arc;

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
/// so thousands of idle clients hold one pointer (copy on write), not six
/// values each. `None` inside: all unknown.
#[derive(Debug, Clone, Default)]
pub struct Params(Option<Arc<Values>>);

type Values = [Option<Arc<str>>; TRACKED.len()];

/// What an empty set reads as.
static UNKNOWN: Values = [const { None }; TRACKED.len()];

impl PartialEq for Params {
    fn eq(&self, other: &Self) -> bool {
        self.values() == other.values()
    }
}

impl Eq for Params {}

impl std::hash::Hash for Params {
    fn hash<H: std::hash::Hasher>(&self, state: &mut H) {
        self.values().hash(state);
    }
}

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
                if self.values()[i].as_deref() != Some(value) {
                    self.values_mut()[i] = Some(value.into());
                }
                true
            }
            None => false,
        }
    }

    /// The value of a tracked parameter.
    pub fn get(&self, name: &str) -> Option<&str> {
        self.values()[tracked(name)?].as_deref()
    }

    fn values(&self) -> &Values {
        self.0.as_deref().unwrap_or(&UNKNOWN)
    }

    /// The values to change: this set's own copy from now on.
    fn values_mut(&mut self) -> &mut Values {
        Arc::make_mut(self.0.get_or_insert_with(Default::default))
    }

    /// A `SET` query (NUL-terminated, for a Query message) making a server
    /// with `server`'s values match `self`, and the server's values updated
    /// as if it ran; `None` when nothing differs. When the two sets are the
    /// same throughout, this one becomes a handle to the server's (one set
    /// per connection, not one per session; the next look is a pointer's).
    pub fn sync_query(&mut self, server: &mut Params) -> Option<Vec<u8>> {
        if let (Some(mine), Some(its)) = (&self.0, &server.0) {
            // One set: the session's own connection, or one it used last.
            if Arc::ptr_eq(mine, its) {
                return None;
            }
        }
        let mut sql = String::new();
        // Whether the two sets are the same throughout (not only where
        // this one knows a value).
        let mut same = true;
        for (i, want) in self.values().iter().enumerate() {
            let has = &server.values()[i];
            let Some(want) = want else {
                same &= has.is_none();
                continue;
            };
            match has {
                // Values are clones of servers' (see the type): usually
                // the very same string.
                Some(has) if Arc::ptr_eq(has, want) || **has == **want => continue,
                _ => {}
            }
            same = false;
            sql.push_str("SET ");
            sql.push_str(TRACKED[i]);
            sql.push_str(" TO ");
            quote(&mut sql, want);
            sql.push(';');
            server.values_mut()[i] = Some(want.clone());
        }
        if same {
            *self = server.clone();
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
            .zip(self.values())
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
    fn a_session_whose_values_equal_the_servers_shares_the_servers_set() {
        let mut server = Params::default();
        server.set("TimeZone", "UTC");
        let mut client = Params::default();
        client.set("timezone", "UTC");
        assert_eq!(client.sync_query(&mut server), None);
        let (Some(mine), Some(its)) = (&client.0, &server.0) else {
            panic!("both sets hold values");
        };
        assert!(Arc::ptr_eq(mine, its), "one set, not a copy per session");
        // Different sets stay apart.
        client.set("application_name", "app");
        assert!(client.sync_query(&mut server).is_some());
        assert_eq!(server.get("application_name"), Some("app"));
    }

    #[test]
    fn a_copy_is_shared_until_written_and_compares_by_value() {
        let mut server = Params::default();
        assert_eq!(server, Params::default());
        server.set("TimeZone", "UTC");
        let mut client = server.clone();
        assert!(matches!((&client.0, &server.0), (Some(c), Some(s)) if Arc::ptr_eq(c, s)));
        // Setting what is already there copies nothing.
        client.set("timezone", "UTC");
        assert!(matches!((&client.0, &server.0), (Some(c), Some(s)) if Arc::ptr_eq(c, s)));
        client.set("TimeZone", "Europe/Paris");
        assert_eq!(server.get("TimeZone"), Some("UTC"));
        assert_eq!(client.get("TimeZone"), Some("Europe/Paris"));
        client.set("TimeZone", "UTC");
        assert_eq!(client, server, "equal values, separate copies");
        assert_eq!(std::mem::size_of::<Params>(), 8);
    }

    #[test]
    fn a_parameter_status_body_splits_into_name_and_value() {
        assert_eq!(parse_status(b"TimeZone\0UTC\0"), Some(("TimeZone", "UTC")));
        assert_eq!(parse_status(b"\xff\0x\0"), None);
    }
}
