//! hba rules, auth files, stored secrets and SCRAM verifiers as text.
#![no_main]

libfuzzer_sys::fuzz_target!(|data: &[u8]| pgha_proxy::fuzzing::auth_config(data));
