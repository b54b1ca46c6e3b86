//! Portcullis as a library: the policies compiled into this build, and
//! helpers for snapshot-testing their behaviour in `cargo test`.
//!
//! - [`embedded`]: the compiled policies (`PORTCULLIS_ENV` /
//!   `PORTCULLIS_POLICY_DIR` at build time), their sources and test files.
//! - [`testing`]: [`testing::decision_table`] for `insta` snapshots.

#![warn(missing_docs)]
#![forbid(unsafe_code)]

pub mod embedded;
pub mod testing;
