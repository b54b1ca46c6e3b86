//! Fuzz target `jsonrpc`: see [`portcullis_fuzz::jsonrpc`] for what it checks.
#![no_main]

libfuzzer_sys::fuzz_target!(|data: &[u8]| portcullis_fuzz::jsonrpc(data));
