//! Compiles the environment's policies into `$OUT_DIR/policies.rs`.
//!
//! `PORTCULLIS_POLICY_DIR=/abs/dir` compiles that directory; otherwise
//! `policies/$PORTCULLIS_ENV/` (default `policies/default/`). A policy error
//! fails the build with the same diagnostic `portcullis validate` prints.
//!
//! Development builds (feature `dynamic`) also embed the policy sources and
//! the `*.test.yaml` files beside them, for `portcullis test` and
//! `portcullis explain`. `PORTCULLIS_TEST_ON_BUILD=1` runs those tests here,
//! against the reference evaluator, and fails the build when one fails.

use std::path::{Path, PathBuf};

use portcullis_compiler::Input;
use portcullis_compiler::codegen::{self, Options};
use portcullis_compiler::ir::PolicySet;
use portcullis_compiler::policy_tests::{self, TestSource};

fn main() {
    println!("cargo:rerun-if-env-changed=PORTCULLIS_ENV");
    println!("cargo:rerun-if-env-changed=PORTCULLIS_POLICY_DIR");
    println!("cargo:rerun-if-env-changed=PORTCULLIS_TEST_ON_BUILD");
    let manifest =
        PathBuf::from(std::env::var("CARGO_MANIFEST_DIR").expect("cargo sets CARGO_MANIFEST_DIR"));
    let env_name = std::env::var("PORTCULLIS_ENV")
        .ok()
        .filter(|e| !e.is_empty());
    let (env, dir, display) = match std::env::var("PORTCULLIS_POLICY_DIR")
        .ok()
        .filter(|d| !d.is_empty())
    {
        Some(d) => {
            let dir = PathBuf::from(&d);
            let name = env_name.unwrap_or_else(|| {
                dir.file_name()
                    .and_then(|n| n.to_str())
                    .unwrap_or("custom")
                    .to_string()
            });
            (name, dir, d)
        }
        None => {
            let name = env_name.unwrap_or_else(|| "default".to_string());
            let dir = manifest.join("policies").join(&name);
            (name.clone(), dir, format!("policies/{name}"))
        }
    };
    if !dir.is_dir() {
        eprintln!(
            "error: policy directory {} does not exist\n  = help: create it, or set PORTCULLIS_ENV / PORTCULLIS_POLICY_DIR to an existing one",
            dir.display()
        );
        std::process::exit(1);
    }
    println!("cargo:rerun-if-changed={}", dir.display());
    let inputs = match portcullis_compiler::load_dir(&dir, Some(&display)) {
        Ok(i) => i,
        Err(e) => {
            eprintln!("error: reading {}: {e}", dir.display());
            std::process::exit(1);
        }
    };
    for entry in std::fs::read_dir(&dir).into_iter().flatten().flatten() {
        println!("cargo:rerun-if-changed={}", entry.path().display());
    }
    let tests = test_files(&dir, &display);
    let output = portcullis_compiler::compile(&inputs);
    for d in output.diagnostics.0.iter().filter(|d| !d.is_error()) {
        for line in d.render(&output.sources).lines() {
            println!("cargo:warning={line}");
        }
    }
    let set = match output.into_set() {
        Ok(set) => set,
        Err(output) => {
            eprintln!("{}", output.render());
            eprintln!(
                "error: {} policy error(s) in {}; the binary was not built",
                output.diagnostics.error_count(),
                dir.display()
            );
            std::process::exit(1);
        }
    };
    // An empty table would reach rustc as a constant index out of bounds.
    let test_paths: Vec<&str> = tests.iter().map(|t| t.path.as_str()).collect();
    let shown = dir.display().to_string();
    if let Some((message, help)) =
        portcullis_compiler::no_policy_error(&shown, &inputs, &test_paths, set.servers.len())
    {
        eprintln!("error: {message}\n  = help: {help}");
        std::process::exit(1);
    }
    if std::env::var("PORTCULLIS_TEST_ON_BUILD").is_ok_and(|v| v == "1") {
        test_on_build(&set, &tests);
    }
    let little_endian = std::env::var("CARGO_CFG_TARGET_ENDIAN").map_or(true, |e| e == "little");
    let generated = codegen::generate(
        &set,
        &Options {
            env: env.clone(),
            little_endian,
            embed_dfas: true,
        },
    );
    let out = PathBuf::from(std::env::var("OUT_DIR").expect("cargo sets OUT_DIR"));
    for (name, bytes) in &generated.blobs {
        std::fs::write(out.join(name), bytes).expect("write DFA");
    }
    std::fs::write(out.join("policies.rs"), &generated.rust).expect("write policies.rs");
    let dynamic = std::env::var_os("CARGO_FEATURE_DYNAMIC").is_some();
    std::fs::write(
        out.join("sources.rs"),
        embedded_sources(dynamic, &inputs, &tests),
    )
    .expect("write sources.rs");
}

/// The `*.test.yaml` files in `dir`, sorted, with their display paths.
fn test_files(dir: &Path, display: &str) -> Vec<TestSource> {
    let mut paths: Vec<PathBuf> = std::fs::read_dir(dir)
        .into_iter()
        .flatten()
        .flatten()
        .map(|e| e.path())
        .filter(|p| {
            p.is_file()
                && p.file_name()
                    .and_then(|n| n.to_str())
                    .is_some_and(portcullis_compiler::is_test_file)
        })
        .collect();
    paths.sort();
    paths
        .into_iter()
        .map(|p| {
            let name = p.file_name().and_then(|n| n.to_str()).unwrap_or_default();
            let text = std::fs::read_to_string(&p).unwrap_or_else(|e| {
                eprintln!("error: reading {}: {e}", p.display());
                std::process::exit(1);
            });
            TestSource {
                path: format!("{}/{name}", display.trim_end_matches('/')),
                text,
            }
        })
        .collect()
}

/// Runs the policy tests against the reference evaluator; exits on failure,
/// or when `PORTCULLIS_MIN_COVERAGE=P` is set and coverage is below P percent.
fn test_on_build(set: &PolicySet, tests: &[TestSource]) {
    println!("cargo:rerun-if-env-changed=PORTCULLIS_MIN_COVERAGE");
    let min = std::env::var("PORTCULLIS_MIN_COVERAGE").ok().map(|v| {
        v.trim_end_matches('%')
            .parse::<f64>()
            .ok()
            .filter(|p| (0.0..=100.0).contains(p))
            .unwrap_or_else(|| {
                eprintln!("error: PORTCULLIS_MIN_COVERAGE={v} is not a percentage from 0 to 100");
                std::process::exit(1);
            })
    });
    if tests.is_empty() {
        println!(
            "cargo:warning=PORTCULLIS_TEST_ON_BUILD=1 but the policy directory has no *.test.yaml"
        );
    }
    let report = policy_tests::run_suite(set, tests, &|_| None, min.is_some());
    if !report.ok() {
        eprintln!("{}", report.text);
        eprintln!(
            "error: {} policy test case(s) failed and {} test file(s) could not be read; the binary was not built\n  = help: run `portcullis test` for the same report, fix the policy or the expectation",
            report.failed, report.errors
        );
        std::process::exit(1);
    }
    if let (Some(min), Some(c)) = (min, &report.coverage)
        && c.percent() < min
    {
        for line in &c.uncovered {
            eprintln!("  not covered  {line}");
        }
        eprintln!(
            "error: policy test coverage {:.1}% is below PORTCULLIS_MIN_COVERAGE={min}; the binary was not built",
            c.percent()
        );
        std::process::exit(1);
    }
    println!(
        "cargo:warning=policy tests passed: {} case(s) in {} file(s)",
        report.passed,
        tests.len()
    );
}

/// `sources.rs`: the policy sources and test files (empty in hardened builds).
fn embedded_sources(dynamic: bool, inputs: &[Input], tests: &[TestSource]) -> String {
    let mut out = String::from("// @generated by build.rs. Do not edit.\n\n");
    out.push_str("/// (server, path, text) of every policy source (development builds only).\n");
    out.push_str("pub const SOURCE_TEXTS: &[(&str, &str, &str)] = &[\n");
    for i in inputs.iter().filter(|_| dynamic) {
        out.push_str(&format!(
            "    ({:?}, {:?}, {:?}),\n",
            i.server, i.path, i.text
        ));
    }
    out.push_str("];\n\n/// (path, text) of every `*.test.yaml` beside the policies (development builds only).\n");
    out.push_str("pub const TEST_FILES: &[(&str, &str)] = &[\n");
    for t in tests.iter().filter(|_| dynamic) {
        out.push_str(&format!("    ({:?}, {:?}),\n", t.path, t.text));
    }
    out.push_str("];\n");
    out
}
