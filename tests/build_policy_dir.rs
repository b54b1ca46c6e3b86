//! The real build (`cargo build`, so `build.rs`) against policy directories
//! that hold no server policy: it stops with a diagnostic naming the
//! directory and the fix, never with rustc's "index out of bounds" on an
//! empty policy table (issue 11, defect 7).
//!
//! Builds go to `target/corpus`, the directory `scripts/test` builds its
//! policy-directory binaries in, so the dependencies are compiled once for
//! both; each case then reruns only the build script, which fails first.

mod common;

use std::path::Path;
use std::process::Command;

use common::{root, temp_dir};

/// `cargo build` with `PORTCULLIS_POLICY_DIR=dir`; (success, stderr).
fn build_with(dir: &Path) -> (bool, String) {
    let cargo = std::env::var("CARGO").unwrap_or_else(|_| "cargo".into());
    let out = Command::new(cargo)
        .current_dir(root())
        .args(["build", "--quiet", "--target-dir", "target/corpus"])
        .env("PORTCULLIS_POLICY_DIR", dir)
        .env_remove("PORTCULLIS_ENV")
        .env_remove("PORTCULLIS_TEST_ON_BUILD")
        .output()
        .expect("run cargo build");
    (
        out.status.success(),
        String::from_utf8_lossy(&out.stderr).into_owned(),
    )
}

fn assert_refused(dir: &Path, message: &str, help: &str) {
    let (ok, stderr) = build_with(dir);
    assert!(!ok, "the build must fail for {}:\n{stderr}", dir.display());
    assert!(
        !stderr.contains("index out of bounds"),
        "rustc saw an empty policy table:\n{stderr}"
    );
    let expected = format!("error: {message}");
    assert!(
        stderr.contains(&expected),
        "want `{expected}` in:\n{stderr}"
    );
    assert!(stderr.contains(help), "want `{help}` in:\n{stderr}");
}

#[test]
fn a_directory_without_a_server_policy_fails_the_build_with_a_diagnostic() {
    // Empty (a stray non-policy file does not count).
    let empty = temp_dir("no-policy");
    std::fs::write(empty.join("README.md"), "notes\n").unwrap();
    assert_refused(
        &empty,
        &format!("no policy files in {}", empty.display()),
        "add `<server>.yaml`",
    );

    // Only policy tests.
    let tests_only = temp_dir("tests-only");
    std::fs::write(tests_only.join("pay.test.yaml"), "cases: []\n").unwrap();
    assert_refused(
        &tests_only,
        &format!(
            "no policy files in {}, only policy tests (pay.test.yaml)",
            tests_only.display()
        ),
        "add the policy they test beside them",
    );

    // Only a policy-language fragment (no `server` block).
    let fragments = temp_dir("fragments-only");
    std::fs::write(
        fragments.join("common.policy"),
        "// a baseline for include\nhide delete_*\n",
    )
    .unwrap();
    assert_refused(
        &fragments,
        &format!(
            "no server policy in {}: common.policy only holds fragments",
            fragments.display()
        ),
        "PORTCULLIS_POLICY_DIR",
    );
    for d in [empty, tests_only, fragments] {
        let _ = std::fs::remove_dir_all(d);
    }
}
