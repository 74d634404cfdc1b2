//! A client's message stream: framing, read routing and statement classification.
#![no_main]

libfuzzer_sys::fuzz_target!(|data: &[u8]| pgha_proxy::fuzzing::frontend_messages(data));
