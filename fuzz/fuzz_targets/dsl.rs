//! Fuzz target `dsl`: see [`portcullis_fuzz::dsl`] for what it checks.
#![no_main]

libfuzzer_sys::fuzz_target!(|data: &[u8]| portcullis_fuzz::dsl(data));
