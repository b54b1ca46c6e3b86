//! The fuzz targets' committed corpora, replayed on stable: every file under
//! `fuzz/corpus/<target>/` (seeds, and the inputs of crashes found so far)
//! goes through the same check the target runs (`fuzz/src/lib.rs`), so
//! `cargo test` exercises them even where no nightly toolchain is installed.
//! Coverage-guided runs are `scripts/fuzz`.

#[path = "../fuzz/src/lib.rs"]
#[allow(dead_code)]
mod checks;

use std::path::Path;

/// Runs `check` on every file of `fuzz/corpus/<target>`; names the input that fails.
fn replay(target: &str, check: fn(&[u8])) {
    let dir = Path::new(env!("CARGO_MANIFEST_DIR"))
        .join("fuzz/corpus")
        .join(target);
    let mut files: Vec<_> = std::fs::read_dir(&dir)
        .unwrap_or_else(|e| panic!("{}: {e}", dir.display()))
        .map(|e| e.expect("directory entry").path())
        .collect();
    files.sort();
    assert!(
        files.len() >= 10,
        "{}: only {} seeds",
        dir.display(),
        files.len()
    );
    for f in files {
        let data = std::fs::read(&f).unwrap_or_else(|e| panic!("{}: {e}", f.display()));
        if let Err(e) = std::panic::catch_unwind(|| check(&data)) {
            let why = e
                .downcast_ref::<String>()
                .cloned()
                .or_else(|| e.downcast_ref::<&str>().map(|s| s.to_string()))
                .unwrap_or_default();
            panic!("{}: {why}", f.display());
        }
    }
}

#[test]
fn json_corpus() {
    replay("json", checks::json);
}

#[test]
fn jsonrpc_corpus() {
    replay("jsonrpc", checks::jsonrpc);
}

#[test]
fn yaml_corpus() {
    replay("yaml", checks::yaml);
}

#[test]
fn dsl_corpus() {
    replay("dsl", checks::dsl);
}

#[test]
fn proxy_corpus() {
    replay("proxy", checks::proxy);
}
