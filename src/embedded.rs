//! The policies compiled into this binary by `build.rs`.

#[allow(missing_docs, dead_code, clippy::all, clippy::pedantic)]
mod generated {
    include!(concat!(env!("OUT_DIR"), "/policies.rs"));
}

pub use generated::{DIGEST, ENV, POLICIES, SOURCES};

/// The one-line summary used by `--version`.
pub fn version_line() -> String {
    format!(
        "{} (env {}, {} polic{}, sha256:{})",
        env!("CARGO_PKG_VERSION"),
        ENV,
        POLICIES.len(),
        if POLICIES.len() == 1 { "y" } else { "ies" },
        &DIGEST[..16.min(DIGEST.len())]
    )
}
