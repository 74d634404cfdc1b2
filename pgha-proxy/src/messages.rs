//! Messages the proxy itself sends to clients (postgres-protocol encodes
//! only the frontend side).

use bytes::{BufMut, BytesMut};

/// Appends a tagged message whose body `fill` writes.
fn tagged(buf: &mut BytesMut, tag: u8, fill: impl FnOnce(&mut BytesMut)) {
    buf.put_u8(tag);
    let at = buf.len();
    buf.put_u32(0);
    fill(buf);
    let len = (buf.len() - at) as u32;
    buf[at..at + 4].copy_from_slice(&len.to_be_bytes());
}

fn cstr(buf: &mut BytesMut, s: &str) {
    buf.put_slice(s.as_bytes());
    buf.put_u8(0);
}

/// `ErrorResponse` with severity, SQLSTATE and message.
pub fn error(buf: &mut BytesMut, severity: &str, code: &str, message: &str) {
    error_fields(buf, severity, code, message, None);
}

/// `ErrorResponse` like [`error`], with a hint (`H`) telling the user what
/// would have worked.
pub fn error_with_hint(buf: &mut BytesMut, severity: &str, code: &str, message: &str, hint: &str) {
    error_fields(buf, severity, code, message, Some(hint));
}

/// `ErrorResponse` like [`error`], with a detail (`D`) when there is one:
/// what exactly was wrong, one item per line.
pub fn error_with_detail(
    buf: &mut BytesMut,
    severity: &str,
    code: &str,
    message: &str,
    detail: Option<&str>,
) {
    error_all(buf, severity, code, message, None, detail);
}

fn error_fields(buf: &mut BytesMut, severity: &str, code: &str, message: &str, hint: Option<&str>) {
    error_all(buf, severity, code, message, hint, None);
}

fn error_all(
    buf: &mut BytesMut,
    severity: &str,
    code: &str,
    message: &str,
    hint: Option<&str>,
    detail: Option<&str>,
) {
    tagged(buf, b'E', |b| {
        b.put_u8(b'S');
        cstr(b, severity);
        b.put_u8(b'V');
        cstr(b, severity);
        b.put_u8(b'C');
        cstr(b, code);
        b.put_u8(b'M');
        cstr(b, message);
        if let Some(detail) = detail {
            b.put_u8(b'D');
            cstr(b, detail);
        }
        if let Some(hint) = hint {
            b.put_u8(b'H');
            cstr(b, hint);
        }
        b.put_u8(0);
    });
}

/// One column of a [`row_description`]: its name and type OID (text
/// format; the type's size is derived from the OID).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Field<'a> {
    /// Column name.
    pub name: &'a str,
    /// Type OID, e.g. 25 `text`, 20 `int8`, 16 `bool`.
    pub type_oid: u32,
}

/// `RowDescription`: columns not taken from a table, sent in text format.
pub fn row_description(buf: &mut BytesMut, fields: &[Field<'_>]) {
    tagged(buf, b'T', |b| {
        b.put_i16(count_i16(fields.len()));
        for field in fields {
            cstr(b, field.name);
            b.put_i32(0); // no table
            b.put_i16(0); // no column number
            b.put_u32(field.type_oid);
            b.put_i16(type_size(field.type_oid));
            b.put_i32(-1); // no type modifier
            b.put_i16(0); // text format
        }
    });
}

/// The fixed size PostgreSQL reports for a type, -1 for variable length.
fn type_size(type_oid: u32) -> i16 {
    match type_oid {
        16 => 1,
        20 => 8,
        23 => 4,
        _ => -1,
    }
}

/// A count as the protocol's Int16; callers never come near the limit
/// (PostgreSQL allows 1664 columns), the saturation only keeps this total.
fn count_i16(n: usize) -> i16 {
    i16::try_from(n).unwrap_or(i16::MAX)
}

/// `DataRow`: one value per column in text format, `None` for NULL.
///
/// Values are the proxy's own short texts; one over 2 GiB (which the
/// protocol cannot carry) would get a wrong length, not a panic.
pub fn data_row<'v>(buf: &mut BytesMut, values: impl ExactSizeIterator<Item = Option<&'v [u8]>>) {
    tagged(buf, b'D', |b| {
        b.put_i16(count_i16(values.len()));
        for value in values {
            match value {
                None => b.put_i32(-1),
                Some(bytes) => {
                    b.put_i32(i32::try_from(bytes.len()).unwrap_or(i32::MAX));
                    b.put_slice(bytes);
                }
            }
        }
    });
}

/// `CommandComplete` with its tag (`SHOW`, `SELECT 3`…).
pub fn command_complete(buf: &mut BytesMut, tag: &str) {
    tagged(buf, b'C', |b| cstr(b, tag));
}

/// `EmptyQueryResponse`: the answer to a query string with no statement.
pub fn empty_query(buf: &mut BytesMut) {
    tagged(buf, b'I', |_| {});
}

/// `AuthenticationOk`.
pub fn auth_ok(buf: &mut BytesMut) {
    tagged(buf, b'R', |b| b.put_i32(0));
}

/// `ParameterStatus`.
pub fn parameter_status(buf: &mut BytesMut, name: &str, value: &str) {
    tagged(buf, b'S', |b| {
        cstr(b, name);
        cstr(b, value);
    });
}

/// `BackendKeyData`: the proxy's own key for this client.
pub fn backend_key(buf: &mut BytesMut, pid: i32, secret: i32) {
    tagged(buf, b'K', |b| {
        b.put_i32(pid);
        b.put_i32(secret);
    });
}

/// `ReadyForQuery` with a transaction status (`I`, `T` or `E`).
pub fn ready(buf: &mut BytesMut, status: u8) {
    tagged(buf, b'Z', |b| b.put_u8(status));
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn messages_carry_their_length() {
        let mut b = BytesMut::new();
        ready(&mut b, b'I');
        assert_eq!(&b[..], b"Z\0\0\0\x05I");
        let mut b = BytesMut::new();
        error(&mut b, "FATAL", "28P01", "no");
        assert_eq!(b[0], b'E');
        assert_eq!(
            u32::from_be_bytes([b[1], b[2], b[3], b[4]]) as usize,
            b.len() - 1
        );
    }

    #[test]
    fn result_sets_decode_as_the_server_would_send_them() {
        use fallible_iterator::FallibleIterator;
        use postgres_protocol::message::backend::Message;

        let mut b = BytesMut::new();
        row_description(
            &mut b,
            &[
                Field {
                    name: "node",
                    type_oid: 25,
                },
                Field {
                    name: "port",
                    type_oid: 20,
                },
            ],
        );
        data_row(&mut b, [Some(&b"db1"[..]), None].into_iter());
        command_complete(&mut b, "SHOW");
        empty_query(&mut b);
        error_with_hint(&mut b, "ERROR", "42601", "bad", "try SHOW HELP");

        let Ok(Some(Message::RowDescription(desc))) = Message::parse(&mut b) else {
            panic!("a RowDescription comes first");
        };
        let fields: Vec<(String, u32, i16)> = desc
            .fields()
            .map(|f| Ok((f.name().to_owned(), f.type_oid(), f.type_size())))
            .collect()
            .unwrap_or_default();
        assert_eq!(fields, [("node".into(), 25, -1), ("port".into(), 20, 8)]);
        let Ok(Some(Message::DataRow(row))) = Message::parse(&mut b) else {
            panic!("then a DataRow");
        };
        let buffer = row.buffer();
        let values: Vec<Option<Vec<u8>>> = row
            .ranges()
            .map(|r| Ok(r.map(|r| buffer[r].to_vec())))
            .collect()
            .unwrap_or_default();
        assert_eq!(values, [Some(b"db1".to_vec()), None]);
        let Ok(Some(Message::CommandComplete(done))) = Message::parse(&mut b) else {
            panic!("then a CommandComplete");
        };
        assert_eq!(done.tag().ok(), Some("SHOW"));
        assert!(matches!(
            Message::parse(&mut b),
            Ok(Some(Message::EmptyQueryResponse))
        ));
        let Ok(Some(Message::ErrorResponse(e))) = Message::parse(&mut b) else {
            panic!("then an ErrorResponse");
        };
        let fields: Vec<(u8, String)> = e
            .fields()
            .map(|f| {
                Ok((
                    f.type_(),
                    String::from_utf8_lossy(f.value_bytes()).into_owned(),
                ))
            })
            .collect()
            .unwrap_or_default();
        assert!(fields.contains(&(b'C', "42601".into())));
        assert!(fields.contains(&(b'H', "try SHOW HELP".into())));
        assert!(b.is_empty(), "every byte belongs to a message");
    }
}
