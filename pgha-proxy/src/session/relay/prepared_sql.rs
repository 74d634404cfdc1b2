//! SQL about prepared statements (`PREPARE`, `EXECUTE`, `DEALLOCATE`) as
//! the relay handles it, in a simple query or as the unnamed statement of
//! the extended protocol.

use super::*;

impl Relay<'_> {
    /// `PREPARE`, `EXECUTE` and `DEALLOCATE` in a lone simple query: the
    /// client's statements forget what it deallocates; in transaction
    /// pooling, where the server knows them by the proxy's names, the
    /// proxy answers a `DEALLOCATE` of a statement it knows itself and
    /// refuses `PREPARE`/`EXECUTE` (they would leave a statement on a
    /// connection other clients get). True when the batch was answered.
    pub(super) async fn prepared_sql(&mut self, batch: &[u8]) -> Result<bool, Error> {
        use crate::prepared_sql::PreparedSql;
        let Some((form, extended)) = prepared_sql_form(batch) else {
            return Ok(false);
        };
        let pooled = self.shared.config.pool_mode == PoolMode::Transaction;
        self.out.clear();
        let completed = |out: &mut BytesMut, tag: &str| {
            if let Some(tags) = extended {
                // Parse, Bind, (Describe of the portal,) Execute, Sync.
                for t in tags {
                    match t {
                        b'P' => put_empty(out, b'1'),
                        b'B' => put_empty(out, b'2'),
                        b'D' => put_empty(out, b'n'),
                        b'E' => messages::command_complete(out, tag),
                        _ => {}
                    }
                }
            } else {
                messages::command_complete(out, tag);
            }
        };
        match form {
            PreparedSql::DeallocateAll => {
                self.statements.clear();
                if !pooled {
                    return Ok(false);
                }
                completed(&mut self.out, "DEALLOCATE ALL");
            }
            PreparedSql::Deallocate(name) => {
                let known = self.statements.remove(&name[..]).is_some();
                if !pooled || !known {
                    // The server's own answer (unknown: its 26000).
                    return Ok(false);
                }
                completed(&mut self.out, "DEALLOCATE");
            }
            PreparedSql::Prepare | PreparedSql::Execute if pooled => {
                messages::error_with_hint(
                    &mut self.out,
                    "ERROR",
                    "0A000",
                    "pgha: PREPARE and EXECUTE are not supported in transaction pooling (the statement would stay on a server connection other clients share)",
                    "prepare through the protocol (a driver's prepared statements), or use pool_mode = session",
                );
            }
            PreparedSql::Prepare | PreparedSql::Execute => return Ok(false),
        }
        messages::ready(&mut self.out, self.tx_status);
        self.client.write_all(&self.out).await.map_err(Error::Io)?;
        Ok(true)
    }
}

/// What a batch says about prepared statements, if it is a lone simple
/// query or the unnamed statement run once in the extended protocol
/// (Parse, Bind, an optional Describe of the portal, Execute, Sync — how
/// psycopg sends its `DEALLOCATE` in pipeline mode), with the tags of the
/// latter. `None` for anything else.
fn prepared_sql_form(batch: &[u8]) -> Option<(crate::prepared_sql::PreparedSql, Option<Vec<u8>>)> {
    use crate::prepared_sql::recognise;
    let mut all = frame::messages(batch);
    let first = all.next()?;
    let body = frame::body(first);
    if first[0] == b'Q' {
        if all.next().is_some() {
            return None;
        }
        return Some((recognise(body.strip_suffix(&[0]).unwrap_or(body))?, None));
    }
    // An unnamed Parse: the name is empty, the text follows. Only SQL that
    // names prepared statements is looked at further.
    let text = body.strip_prefix(&[0])?;
    if !crate::prepared_sql::could_be(text) {
        return None;
    }
    let form = recognise(&text[..text.iter().position(|&b| b == 0)?])?;
    let mut tags = vec![b'P'];
    for m in all {
        let unnamed = match m[0] {
            b'B' => frame::body(m).starts_with(b"\0\0"),
            b'D' => frame::body(m) == b"P\0",
            b'E' => frame::body(m).starts_with(b"\0"),
            b'S' => true,
            _ => false,
        };
        if !unnamed {
            return None;
        }
        tags.push(m[0]);
    }
    (tags.ends_with(b"ES") && tags.get(1) == Some(&b'B')).then_some((form, Some(tags)))
}
