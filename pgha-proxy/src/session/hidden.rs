//! Queries the proxy runs on a server connection for itself (restoring
//! parameters at login, the session-mode reset): answers read and hidden.

use bytes::{BufMut, BytesMut};

use crate::params::parse_status;
use crate::pool::ServerConnection;
use crate::{frame, Error};

/// Runs `sql` and reads up to its ReadyForQuery, keeping reported
/// parameters; the server's error, if any, is returned.
pub(crate) async fn run(
    conn: &mut ServerConnection,
    sql: &str,
    timeout: std::time::Duration,
) -> Result<(), Error> {
    run_row(conn, sql, timeout).await.map(drop)
}

/// What a hidden query answered besides its outcome.
#[derive(Debug, Default)]
pub(crate) struct Answer {
    /// The columns (as text, `None` for NULL) of the last row any of its
    /// statements returned.
    pub(crate) row: Vec<Option<String>>,
    /// The notices it raised, as the server sent them (NoticeResponse
    /// messages), for a client that should see them.
    pub(crate) notices: BytesMut,
}

/// As [`run`], returning what else it answered.
pub(crate) async fn run_row(
    conn: &mut ServerConnection,
    sql: &str,
    timeout: std::time::Duration,
) -> Result<Answer, Error> {
    tokio::time::timeout(timeout, run_inner(conn, sql))
        .await
        .unwrap_or_else(|_| {
            Err(Error::Server {
                node: conn.node.to_string(),
                what: format!("no answer to the proxy's own query within {timeout:?}"),
            })
        })
}

async fn run_inner(conn: &mut ServerConnection, sql: &str) -> Result<Answer, Error> {
    let mut out = BytesMut::with_capacity(sql.len() + 6);
    out.put_u8(b'Q');
    out.put_u32((sql.len() + 5) as u32);
    out.put_slice(sql.as_bytes());
    out.put_u8(0);
    // A simple query drops the server's unnamed statement.
    conn.unnamed = None;
    conn.writer.write_all(&out).await.map_err(Error::Io)?;
    let mut failure = None;
    let mut answer = Answer::default();
    loop {
        let Some(message) = conn.reader.next().await? else {
            return Err(Error::ServerLost);
        };
        let body = frame::body(&message);
        match message[0] {
            b'S' => {
                if let Some((name, value)) = parse_status(body) {
                    conn.params.set(name, value);
                }
            }
            b'E' => failure = Some(crate::server::error_message(conn.node.as_str(), &message)),
            b'D' => answer.row = columns(body),
            b'N' => answer.notices.extend_from_slice(&message),
            b'Z' => return failure.map_or(Ok(answer), Err),
            _ => {}
        }
    }
}

/// The columns of a DataRow body as text (`None` for NULL or a value that
/// is not UTF-8); a malformed row ends where it stops making sense.
fn columns(body: &[u8]) -> Vec<Option<String>> {
    let mut out = Vec::new();
    let mut at = 2;
    let count = body
        .get(..2)
        .map_or(0, |b| u16::from_be_bytes([b[0], b[1]]));
    for _ in 0..count {
        let Some(len) = body.get(at..at + 4) else {
            break;
        };
        let len = i32::from_be_bytes([len[0], len[1], len[2], len[3]]);
        at += 4;
        let Ok(len) = usize::try_from(len) else {
            out.push(None);
            continue;
        };
        let Some(value) = body.get(at..at + len) else {
            break;
        };
        at += len;
        out.push(std::str::from_utf8(value).ok().map(str::to_string));
    }
    out
}
