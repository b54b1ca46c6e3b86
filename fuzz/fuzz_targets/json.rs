//! Fuzz target `json`: see [`portcullis_fuzz::json`] for what it checks.
#![no_main]

libfuzzer_sys::fuzz_target!(|data: &[u8]| portcullis_fuzz::json(data));
