//! Entry points shared by the fuzz targets (`fuzz/` at the repository root)
//! and the corpus-replay test (`tests/fuzz_corpus.rs`); each must return,
//! never panic, on any input.
//!
//! Each one hands arbitrary bytes to the real code that reads client bytes,
//! in the order the proxy calls it, and throws the results away: what the
//! fuzzer looks for is a panic, an overflow, a hang or a runaway allocation.
//! The one property checked beyond that is that a parsed SCRAM verifier
//! prints as text that parses back to it (the auth file is written from
//! that text).

use std::future::Future;
use std::sync::OnceLock;
use std::task::{Context, Poll, Waker};

use crate::auth::{
    verify_cleartext, AuthFile, ClientInfo, HbaRules, Md5Challenge, Method, ScramServer,
    ScramVerifier, Secret,
};
use crate::classify::{classify, ClassifyConfig};
use crate::frame::{self, FrameReader};
use crate::startup::{self, StartupRequest};
use crate::{client_auth, route};

/// The password behind the verifier [`scram_exchange`] authenticates
/// against; with [`SCRAM_SALT`] and [`SCRAM_SERVER_NONCE`] fixed, a seed can
/// hold a client-final with a valid proof and reach the end of the exchange.
pub const SCRAM_PASSWORD: &str = "pw";
/// The salt of that verifier (4096 iterations, as PostgreSQL).
pub const SCRAM_SALT: &[u8] = b"salt";
/// The server's nonce bytes (sent base64-encoded in server-first).
pub const SCRAM_SERVER_NONCE: &[u8] = b"pgha-fuzz-nonce-18";

/// The user every exchange is for.
const USER: &str = "alice";
/// Large enough for every seed, small enough that the fuzzer hits the limit.
const MAX_MESSAGE: usize = 1 << 20;

/// Reads `data` as the session reads a client's first bytes (length word
/// checked, body parsed, again after an SSL or GSS encryption request),
/// and parses all of `data` as one packet body too.
pub fn startup_packet(data: &[u8]) {
    let mut rest = data;
    while let Some((len, after)) = rest.split_first_chunk::<4>() {
        let Ok(len) = startup::body_len(u32::from_be_bytes(*len)) else {
            break;
        };
        let Some((body, after)) = after.split_at_checked(len) else {
            break;
        };
        rest = after;
        if !matches!(
            startup::parse(body),
            Ok(StartupRequest::Ssl | StartupRequest::GssEnc)
        ) {
            break;
        }
    }
    let _ = startup::parse(data);
}

/// Reads `data` as a client's message stream: batches from a
/// [`FrameReader`], each offered to [`route::single_read`] as the relay
/// does, and the SQL of every Query and Parse through [`classify`].
pub fn frontend_messages(data: &[u8]) {
    let config = classify_config();
    let mut reader = FrameReader::new(data, MAX_MESSAGE);
    while let Some(Ok(Some(batch))) = now_or_never(reader.next_batch()) {
        let _ = route::single_read(&batch, config);
    }
    // Every message again without the size limit: `frame::messages` trusts
    // a batch the reader already checked, so it must cope with any length.
    for message in frame::messages(data) {
        if let Some(sql) = sql_text(message) {
            let _ = classify(sql, config);
        }
    }
}

/// Runs the SCRAM exchange with `data` split at its first NUL into
/// client-first and client-final, against a real verifier and a mock one
/// (unknown user); also reads `data` as a SASLInitialResponse body and as
/// md5 and cleartext password messages.
pub fn scram_exchange(data: &[u8]) {
    let (first, last) = match data.iter().position(|b| *b == 0) {
        Some(at) => (&data[..at], &data[at + 1..]),
        None => (data, &[][..]),
    };
    let real = ScramServer::new(USER, scram_verifier(), SCRAM_SERVER_NONCE);
    let mock = ScramServer::mock(USER, b"pgha fuzz mock key", SCRAM_SERVER_NONCE);
    for mut server in [real, mock] {
        if server.handle_client_first(first).is_ok() {
            let _ = server.handle_client_final(last);
        }
        // A second client-first, or a message after the end, is refused.
        let _ = server.handle_client_first(first);
    }
    // Client-final before client-first.
    let _ = ScramServer::new(USER, scram_verifier(), SCRAM_SERVER_NONCE).handle_client_final(data);

    let _ = client_auth::sasl_initial_data(data);
    let plain = Secret::Plain(SCRAM_PASSWORD.to_owned());
    let md5 = Secret::Md5("md5a3556571e93b0d20722ba62be61e8c2d".to_owned());
    for secret in [&plain, &md5] {
        let _ = Md5Challenge::new([1, 2, 3, 4]).verify(secret, USER, data);
        let _ = verify_cleartext(secret, USER, data);
    }
}

/// Parses `data` (lossy UTF-8) as an hba file, an auth file, a stored
/// secret and a SCRAM verifier, and uses what parses: hba rules are matched
/// against a few clients, auth file secrets looked up.
pub fn auth_config(data: &[u8]) {
    let text = String::from_utf8_lossy(data);
    if let Ok(rules) = HbaRules::parse(&text, "fuzz") {
        for client in clients() {
            let _ = rules.method_for(&client);
        }
    }
    if let Ok(users) = AuthFile::parse(&text, "fuzz") {
        let _ = Method::Md5.resolve(users.lookup(USER));
    }
    // Only cheap checks: a parsed verifier may ask for 10 million
    // iterations, a deliberate limit, not a bug.
    if let Ok(secret @ (Secret::Plain(_) | Secret::Md5(_))) = Secret::parse(&text) {
        let _ = verify_cleartext(&secret, USER, SCRAM_PASSWORD.as_bytes());
    }
    if let Ok(verifier) = ScramVerifier::parse(&text) {
        let printed = verifier.to_string();
        assert!(
            ScramVerifier::parse(&printed).ok().as_ref() == Some(&verifier),
            "a parsed SCRAM verifier does not parse back from its printed form"
        );
    }
}

/// The SQL text the classifier would see: a Query's body without its
/// terminating NUL, or a Parse's query string (after the statement name).
/// Invalid UTF-8 is skipped, as [`route::single_read`] skips it.
fn sql_text(message: &[u8]) -> Option<&str> {
    let body = frame::body(message);
    let sql = match message.first()? {
        b'Q' => body.strip_suffix(&[0]).unwrap_or(body),
        b'P' => {
            let query = body.get(body.iter().position(|b| *b == 0)? + 1..)?;
            query.split(|b| *b == 0).next()?
        }
        _ => return None,
    };
    std::str::from_utf8(sql).ok()
}

/// Polls `future` once: reading from a byte slice never waits, so every
/// future here is ready at once and no runtime is needed per input.
fn now_or_never<F: Future>(future: F) -> Option<F::Output> {
    let mut future = std::pin::pin!(future);
    match future
        .as_mut()
        .poll(&mut Context::from_waker(Waker::noop()))
    {
        Poll::Ready(out) => Some(out),
        Poll::Pending => None,
    }
}

/// Built once: deriving the verifier costs 4096 HMAC rounds, too slow per
/// input.
fn scram_verifier() -> &'static ScramVerifier {
    static VERIFIER: OnceLock<ScramVerifier> = OnceLock::new();
    VERIFIER.get_or_init(|| ScramVerifier::from_password(SCRAM_PASSWORD, SCRAM_SALT))
}

fn classify_config() -> &'static ClassifyConfig {
    static CONFIG: OnceLock<ClassifyConfig> = OnceLock::new();
    CONFIG.get_or_init(ClassifyConfig::default)
}

/// Clients over IPv4, IPv6, IPv4-mapped IPv6 and a Unix socket, so every
/// kind of rule and address comparison runs.
fn clients() -> [ClientInfo<'static>; 4] {
    let client = |addr: Option<std::net::IpAddr>| ClientInfo {
        addr,
        ssl: false,
        database: "app",
        user: USER,
    };
    [
        client(Some(std::net::Ipv4Addr::new(10, 1, 2, 3).into())),
        client(Some(std::net::Ipv6Addr::LOCALHOST.into())),
        client(Some(
            std::net::Ipv4Addr::new(192, 168, 0, 7)
                .to_ipv6_mapped()
                .into(),
        )),
        client(None),
    ]
}
