//! A client that speaks the protocol by hand, so a test sees exactly which
//! messages come back (and that nothing follows a FATAL).

use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::TcpStream;

/// One message from the server: its tag and body.
pub type Message = (u8, Vec<u8>);

pub struct Wire {
    stream: TcpStream,
    /// The (pid, secret) the greeting's BackendKeyData gave.
    pub key: Option<(i32, i32)>,
    /// NoticeResponse bodies the greeting carried.
    pub notices: Vec<Vec<u8>>,
}

impl Wire {
    /// Connects as `postgres` to database `postgres` and reads up to the
    /// first ReadyForQuery.
    pub async fn connect(port: u16) -> std::io::Result<Self> {
        Ok(Self::connect_with(port, &[]).await?.0)
    }

    /// Connects with extra startup parameters; returns the parameters the
    /// greeting reported (ParameterStatus), in order.
    pub async fn connect_with(
        port: u16,
        params: &[(&str, &str)],
    ) -> std::io::Result<(Self, Vec<(String, String)>)> {
        let stream = TcpStream::connect(("127.0.0.1", port)).await?;
        let mut wire = Self {
            stream,
            key: None,
            notices: Vec::new(),
        };
        let mut body = Vec::new();
        body.extend_from_slice(&196608u32.to_be_bytes());
        let mut all = vec![("user", "postgres"), ("database", "postgres")];
        all.extend_from_slice(params);
        for (k, v) in all {
            for s in [k, v] {
                body.extend_from_slice(s.as_bytes());
                body.push(0);
            }
        }
        body.push(0);
        let mut startup = ((body.len() + 4) as u32).to_be_bytes().to_vec();
        startup.extend_from_slice(&body);
        wire.stream.write_all(&startup).await?;
        let mut reported = Vec::new();
        loop {
            match wire.read().await? {
                Some((b'Z', _)) => return Ok((wire, reported)),
                Some((b'N', body)) => wire.notices.push(body),
                Some((b'K', body)) if body.len() == 8 => {
                    let int = |at: usize| {
                        i32::from_be_bytes([body[at], body[at + 1], body[at + 2], body[at + 3]])
                    };
                    wire.key = Some((int(0), int(4)));
                }
                Some((b'S', body)) => {
                    let mut parts = body.split(|&b| b == 0);
                    let mut next =
                        || String::from_utf8_lossy(parts.next().unwrap_or_default()).into_owned();
                    let name = next();
                    reported.push((name, next()));
                }
                Some((b'E', body)) => {
                    return Err(std::io::Error::other(
                        String::from_utf8_lossy(&body).into_owned(),
                    ))
                }
                Some(_) => {}
                None => return Err(std::io::ErrorKind::UnexpectedEof.into()),
            }
        }
    }

    /// Sends raw bytes.
    pub async fn send(&mut self, bytes: &[u8]) -> std::io::Result<()> {
        self.stream.write_all(bytes).await
    }

    /// Sends a simple Query.
    pub async fn query(&mut self, sql: &str) -> std::io::Result<()> {
        self.send(&message(b'Q', &[sql.as_bytes(), &[0]].concat()))
            .await
    }

    /// The next message; `None` at the end of the stream.
    pub async fn read(&mut self) -> std::io::Result<Option<Message>> {
        let mut head = [0u8; 5];
        match self.stream.read_exact(&mut head).await {
            Ok(_) => {}
            Err(e) if e.kind() == std::io::ErrorKind::UnexpectedEof => return Ok(None),
            Err(e) if e.kind() == std::io::ErrorKind::ConnectionReset => return Ok(None),
            Err(e) => return Err(e),
        }
        let len = u32::from_be_bytes([head[1], head[2], head[3], head[4]]) as usize;
        let mut body = vec![0u8; len.saturating_sub(4)];
        self.stream.read_exact(&mut body).await?;
        Ok(Some((head[0], body)))
    }

    /// As [`Self::until_ready`], keeping at most `keep` bytes of each body
    /// (the rest is read and dropped) and the full body length beside it:
    /// a client that holds little whatever the server sends.
    pub async fn until_ready_lean(
        &mut self,
        keep: usize,
    ) -> std::io::Result<Vec<(u8, usize, Vec<u8>)>> {
        let mut out = Vec::new();
        loop {
            let mut head = [0u8; 5];
            match self.stream.read_exact(&mut head).await {
                Ok(_) => {}
                Err(e) if e.kind() == std::io::ErrorKind::UnexpectedEof => return Ok(out),
                Err(e) => return Err(e),
            }
            let len = (u32::from_be_bytes([head[1], head[2], head[3], head[4]]) as usize)
                .saturating_sub(4);
            let mut kept = vec![0u8; len.min(keep)];
            self.stream.read_exact(&mut kept).await?;
            let mut left = len - kept.len();
            let mut sink = vec![0u8; 64 << 10];
            while left > 0 {
                let n = left.min(sink.len());
                self.stream.read_exact(&mut sink[..n]).await?;
                left -= n;
            }
            out.push((head[0], len, kept));
            if head[0] == b'Z' {
                return Ok(out);
            }
        }
    }

    /// Messages up to and including the next ReadyForQuery, or up to the
    /// end of the stream (then the last element is not a `Z`).
    pub async fn until_ready(&mut self) -> std::io::Result<Vec<Message>> {
        let mut out = Vec::new();
        while let Some(m) = self.read().await? {
            let ready = m.0 == b'Z';
            out.push(m);
            if ready {
                break;
            }
        }
        Ok(out)
    }
}

/// A frontend message.
pub fn message(tag: u8, body: &[u8]) -> Vec<u8> {
    let mut out = vec![tag];
    out.extend_from_slice(&((body.len() + 4) as u32).to_be_bytes());
    out.extend_from_slice(body);
    out
}

/// A field of an ErrorResponse body (`S` severity, `C` code, `M` message).
pub fn error_field(body: &[u8], field: u8) -> Option<String> {
    body.split(|&b| b == 0)
        .find(|f| f.first() == Some(&field))
        .map(|f| String::from_utf8_lossy(&f[1..]).into_owned())
}
