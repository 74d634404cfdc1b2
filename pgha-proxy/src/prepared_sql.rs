//! The SQL forms that name prepared statements (`PREPARE`, `EXECUTE`,
//! `DEALLOCATE`), recognised in a simple query so the proxy can keep a
//! client's names true in transaction pooling, where the server knows its
//! statements by the proxy's names.

/// A simple query about prepared statements, by its first keyword.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum PreparedSql {
    /// `DEALLOCATE [PREPARE] name` (the name as PostgreSQL folds it), alone
    /// in the query.
    Deallocate(Vec<u8>),
    /// `DEALLOCATE [PREPARE] ALL`, alone in the query.
    DeallocateAll,
    /// `PREPARE …`.
    Prepare,
    /// `EXECUTE …`.
    Execute,
}

/// What the query text (without its NUL) is, if it starts with one of the
/// forms above. Comments and whitespace before and between words are
/// skipped; a `DEALLOCATE` followed by anything but `;` and whitespace is
/// not recognised (the server judges it).
pub fn recognise(sql: &[u8]) -> Option<PreparedSql> {
    if !could_be(sql) {
        return None;
    }
    let mut words = Words { sql, at: 0 };
    let first = words.word()?;
    if first.eq_ignore_ascii_case(b"prepare") {
        return Some(PreparedSql::Prepare);
    }
    if first.eq_ignore_ascii_case(b"execute") {
        return Some(PreparedSql::Execute);
    }
    if !first.eq_ignore_ascii_case(b"deallocate") {
        return None;
    }
    let mut name = words.name()?;
    if name.as_slice() == b"prepare" {
        name = words.name()?;
    }
    words.skip();
    if words.sql.get(words.at) == Some(&b';') {
        words.at += 1;
        words.skip();
    }
    if words.at != words.sql.len() {
        return None;
    }
    Some(if name.as_slice() == b"all" {
        PreparedSql::DeallocateAll
    } else {
        PreparedSql::Deallocate(name)
    })
}

/// Whether `sql` may be one of the forms: its first byte past whitespace
/// starts one of their words or a comment. Every simple query and unnamed
/// Parse is looked at: most are decided by that one byte.
pub fn could_be(sql: &[u8]) -> bool {
    matches!(
        sql.iter().find(|b| !b.is_ascii_whitespace()),
        Some(b'p' | b'P' | b'e' | b'E' | b'd' | b'D' | b'-' | b'/')
    )
}

struct Words<'a> {
    sql: &'a [u8],
    at: usize,
}

impl<'a> Words<'a> {
    /// Skips whitespace and comments.
    fn skip(&mut self) {
        loop {
            let rest = &self.sql[self.at..];
            if rest.first().is_some_and(u8::is_ascii_whitespace) {
                self.at += 1;
            } else if rest.starts_with(b"--") {
                self.at += rest.iter().position(|&b| b == b'\n').unwrap_or(rest.len());
            } else if rest.starts_with(b"/*") {
                // Nested, as PostgreSQL's; an unterminated one runs to the end.
                let mut depth = 0usize;
                let mut i = 0;
                while i < rest.len() {
                    if rest[i..].starts_with(b"/*") {
                        depth += 1;
                        i += 2;
                    } else if rest[i..].starts_with(b"*/") {
                        depth -= 1;
                        i += 2;
                        if depth == 0 {
                            break;
                        }
                    } else {
                        i += 1;
                    }
                }
                self.at += i;
            } else {
                return;
            }
        }
    }

    /// The next bare word.
    fn word(&mut self) -> Option<&'a [u8]> {
        self.skip();
        let rest = &self.sql[self.at..];
        let len = rest
            .iter()
            .position(|b| !(b.is_ascii_alphanumeric() || *b == b'_' || *b >= 0x80))
            .unwrap_or(rest.len());
        self.at += len;
        (len > 0).then_some(&rest[..len])
    }

    /// The next identifier as PostgreSQL folds it: unquoted lowercased,
    /// quoted as written (`""` inside for one quote).
    fn name(&mut self) -> Option<Vec<u8>> {
        self.skip();
        if self.sql.get(self.at) != Some(&b'"') {
            return self.word().map(|w| w.to_ascii_lowercase());
        }
        let mut out = Vec::new();
        let mut i = self.at + 1;
        loop {
            match self.sql.get(i)? {
                b'"' if self.sql.get(i + 1) == Some(&b'"') => {
                    out.push(b'"');
                    i += 2;
                }
                b'"' => break,
                &b => {
                    out.push(b);
                    i += 1;
                }
            }
        }
        self.at = i + 1;
        Some(out)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn deallocate_forms_are_recognised_with_postgresqls_folding() {
        let d = |s: &str| recognise(s.as_bytes());
        assert_eq!(
            d("DEALLOCATE _pg3_0"),
            Some(PreparedSql::Deallocate(b"_pg3_0".to_vec()))
        );
        assert_eq!(
            d(" deallocate prepare S_1 ;"),
            Some(PreparedSql::Deallocate(b"s_1".to_vec()))
        );
        assert_eq!(
            d("DEALLOCATE \"S_1\""),
            Some(PreparedSql::Deallocate(b"S_1".to_vec()))
        );
        assert_eq!(
            d("DEALLOCATE \"a\"\"b\""),
            Some(PreparedSql::Deallocate(b"a\"b".to_vec()))
        );
        assert_eq!(
            d("/* c */ DEALLOCATE -- x\n ALL"),
            Some(PreparedSql::DeallocateAll)
        );
        assert_eq!(
            d("DEALLOCATE PREPARE ALL;"),
            Some(PreparedSql::DeallocateAll)
        );
        assert_eq!(d("DEALLOCATE \"all\""), Some(PreparedSql::DeallocateAll));
        assert_eq!(d("DEALLOCATE a; SELECT 1"), None, "not alone");
        assert_eq!(d("DEALLOCATE"), None);
        assert_eq!(d("DEALLOCATE \"open"), None);
    }

    #[test]
    fn prepare_and_execute_are_recognised_by_their_first_word_only() {
        let d = |s: &str| recognise(s.as_bytes());
        assert_eq!(d("prepare p AS SELECT 1"), Some(PreparedSql::Prepare));
        assert_eq!(d("/**/EXECUTE p(1)"), Some(PreparedSql::Execute));
        assert_eq!(d("SELECT 'EXECUTE'"), None);
        assert_eq!(d("executed"), None);
        assert_eq!(d(""), None);
        assert_eq!(
            d("/* /* nested */ still */ PREPARE x AS SELECT 1"),
            Some(PreparedSql::Prepare)
        );
    }
}
