//! The policies compiled into this binary by `build.rs`.

use portcullis_core::Policy;

mod generated {
    include!(concat!(env!("OUT_DIR"), "/policies.rs"));
}

#[allow(missing_docs, dead_code, clippy::all, clippy::pedantic)]
mod sources {
    include!(concat!(env!("OUT_DIR"), "/sources.rs"));
}

pub use generated::{DIGEST, ENV, POLICIES, SOURCES};
pub use sources::{SOURCE_TEXTS, TEST_FILES};

/// The compiled policy for `server`.
pub fn policy(server: &str) -> Option<&'static dyn Policy> {
    POLICIES.iter().copied().find(|p| p.meta().server == server)
}

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

/// The embedded sources compiled again, for the reference evaluator
/// (`portcullis test` and `explain`). Development builds only.
#[cfg(feature = "dynamic")]
pub fn source_set() -> Result<portcullis_compiler::ir::PolicySet, String> {
    let inputs: Vec<portcullis_compiler::Input> = SOURCE_TEXTS
        .iter()
        .map(|(server, path, text)| portcullis_compiler::Input {
            server: server.to_string(),
            path: path.to_string(),
            text: text.to_string(),
        })
        .collect();
    let set = portcullis_compiler::compile(&inputs)
        .into_set()
        .map_err(|o| o.render())?;
    if set.digest != DIGEST {
        return Err(format!(
            "the embedded sources digest to sha256:{}, the compiled policies to sha256:{DIGEST}",
            set.digest
        ));
    }
    Ok(set)
}
