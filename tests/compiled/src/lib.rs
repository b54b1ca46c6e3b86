//! Policies compiled to native code by this crate's build script, for the
//! conformance, differential and allocation tests and the benchmarks.

#![forbid(unsafe_code)]

// Only POLICIES is used here; ENV, DIGEST and SOURCES serve the binary.
#[allow(dead_code)]
mod generated {
    include!(concat!(env!("OUT_DIR"), "/policies.rs"));
}

#[allow(dead_code)]
mod generated_dsl {
    include!(concat!(env!("OUT_DIR"), "/dsl_policies.rs"));
}

pub use generated::POLICIES;

/// The compiled policy-language fixtures (`tests/fixtures/dsl`).
pub fn compiled_dsl(server: &str) -> Option<&'static dyn Policy> {
    generated_dsl::POLICIES
        .iter()
        .copied()
        .find(|p| p.meta().server == server)
}

use portcullis_core::Policy;

/// The compiled policy for `server` (a conformance case id, a corpus file stem, a bench policy).
pub fn compiled(server: &str) -> Option<&'static dyn Policy> {
    POLICIES.iter().copied().find(|p| p.meta().server == server)
}

/// Path of a file in the repository, from this crate.
pub fn repo_path(rel: &str) -> std::path::PathBuf {
    std::path::Path::new(env!("CARGO_MANIFEST_DIR"))
        .join("../..")
        .join(rel)
}
