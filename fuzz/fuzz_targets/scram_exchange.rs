//! SCRAM client-first and client-final, SASLInitialResponse, md5 and cleartext password messages.
#![no_main]

libfuzzer_sys::fuzz_target!(|data: &[u8]| pgha_proxy::fuzzing::scram_exchange(data));
