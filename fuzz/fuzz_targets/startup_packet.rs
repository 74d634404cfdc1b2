//! A client's first bytes: startup-phase packets (SSL, GSS, cancel, StartupMessage).
#![no_main]

libfuzzer_sys::fuzz_target!(|data: &[u8]| pgha_proxy::fuzzing::startup_packet(data));
