//! Fuzz target `yaml`: see [`portcullis_fuzz::yaml`] for what it checks.
#![no_main]

libfuzzer_sys::fuzz_target!(|data: &[u8]| portcullis_fuzz::yaml(data));
