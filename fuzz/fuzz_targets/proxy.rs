//! Fuzz target `proxy`: see [`portcullis_fuzz::proxy`] for what it checks.
#![no_main]

libfuzzer_sys::fuzz_target!(|data: &[u8]| portcullis_fuzz::proxy(data));
