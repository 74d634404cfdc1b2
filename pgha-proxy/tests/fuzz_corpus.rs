//! The fuzz corpus (`fuzz/corpus/<target>/`) replayed as ordinary tests, so
//! every seed and every crash once found keeps running in CI without
//! cargo-fuzz or nightly.

use std::panic::{catch_unwind, AssertUnwindSafe};
use std::path::PathBuf;

use pgha_proxy::auth::{ScramServer, ScramVerifier};
use pgha_proxy::fuzzing;
use pgha_proxy::startup::{self, StartupRequest};

fn corpus_dir(target: &str) -> PathBuf {
    PathBuf::from(env!("CARGO_MANIFEST_DIR")).join(format!("../fuzz/corpus/{target}"))
}

/// Every file of the target's corpus, by name; a missing or empty corpus
/// fails the test rather than passing with nothing replayed.
fn corpus(target: &str) -> Vec<(String, Vec<u8>)> {
    let dir = corpus_dir(target);
    let entries =
        std::fs::read_dir(&dir).unwrap_or_else(|e| panic!("corpus {}: {e}", dir.display()));
    let mut files: Vec<(String, Vec<u8>)> = entries
        .map(|entry| {
            let path = entry
                .unwrap_or_else(|e| panic!("corpus {}: {e}", dir.display()))
                .path();
            let data = std::fs::read(&path).unwrap_or_else(|e| panic!("{}: {e}", path.display()));
            (path.display().to_string(), data)
        })
        .collect();
    files.sort();
    assert!(
        files.len() >= 5,
        "corpus {} has {} seeds; run fuzz/make-seeds.py",
        dir.display(),
        files.len()
    );
    files
}

/// Runs `entry` on every seed of `target`; a panic is reported with the
/// name of the file that caused it, after all files ran.
fn replay(target: &str, entry: fn(&[u8])) {
    let failed: Vec<String> = corpus(target)
        .into_iter()
        .filter(|(_, data)| catch_unwind(AssertUnwindSafe(|| entry(data))).is_err())
        .map(|(name, _)| name)
        .collect();
    assert!(failed.is_empty(), "{target} panicked on: {failed:#?}");
}

fn seed(target: &str, name: &str) -> Vec<u8> {
    let path = corpus_dir(target).join(name);
    std::fs::read(&path).unwrap_or_else(|e| panic!("{}: {e}", path.display()))
}

#[test]
fn startup_packet_corpus() {
    replay("startup_packet", fuzzing::startup_packet);
}

#[test]
fn frontend_messages_corpus() {
    replay("frontend_messages", fuzzing::frontend_messages);
}

#[test]
fn scram_exchange_corpus() {
    replay("scram_exchange", fuzzing::scram_exchange);
}

#[test]
fn auth_config_corpus() {
    replay("auth_config", fuzzing::auth_config);
}

// The valid seeds must reach the end of the code they start the fuzzer in;
// a generator that drifted from the protocol would leave the fuzzer
// mutating inputs refused at the first byte.

#[test]
fn the_startup_seed_is_a_real_startup_message() {
    let packet = seed("startup_packet", "startup-v3-user-database");
    let (len, body) = packet.split_at(4);
    let len = u32::from_be_bytes([len[0], len[1], len[2], len[3]]);
    assert_eq!(startup::body_len(len).ok(), Some(body.len()));
    let Ok(StartupRequest::Startup(params)) = startup::parse(body) else {
        panic!("not a StartupMessage: {:?}", startup::parse(body));
    };
    assert!(params.iter().any(|(k, v)| k == "user" && v == "alice"));
}

#[test]
fn the_scram_seed_is_a_successful_exchange() {
    let data = seed("scram_exchange", "exchange-valid-proof");
    let Some(at) = data.iter().position(|b| *b == 0) else {
        panic!("no NUL between client-first and client-final");
    };
    let verifier = ScramVerifier::from_password(fuzzing::SCRAM_PASSWORD, fuzzing::SCRAM_SALT);
    let mut server = ScramServer::new("alice", &verifier, fuzzing::SCRAM_SERVER_NONCE);
    let first = server.handle_client_first(&data[..at]);
    assert!(first.is_ok(), "client-first refused: {first:?}");
    let last = server.handle_client_final(&data[at + 1..]);
    assert!(last.is_ok(), "client-final refused: {last:?}");
}
