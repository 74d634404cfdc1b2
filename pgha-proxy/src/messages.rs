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
    tagged(buf, b'E', |b| {
        b.put_u8(b'S');
        cstr(b, severity);
        b.put_u8(b'V');
        cstr(b, severity);
        b.put_u8(b'C');
        cstr(b, code);
        b.put_u8(b'M');
        cstr(b, message);
        b.put_u8(0);
    });
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
}
