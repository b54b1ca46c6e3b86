//! The real binary: `validate`, `policies`, `--version`, exit codes and output streams.

mod common;

use std::process::Command;

fn portcullis(args: &[&str]) -> (i32, String, String) {
    let out = Command::new(env!("CARGO_BIN_EXE_portcullis"))
        .args(args)
        .current_dir(env!("CARGO_MANIFEST_DIR"))
        .output()
        .expect("run portcullis");
    (
        out.status.code().unwrap_or(-1),
        String::from_utf8(out.stdout).unwrap(),
        String::from_utf8(out.stderr).unwrap(),
    )
}

#[test]
fn validate_accepts_a_valid_policy() {
    let (code, out, err) = portcullis(&["validate", "-c", "policies/default/everything.yaml"]);
    assert_eq!(code, 0, "{err}");
    assert!(
        out.contains(
            "policies/default/everything.yaml: valid (intercept-v1 policy for server `everything`"
        ),
        "{out}"
    );
    assert!(out.contains("Policy file is valid."), "{out}");
    assert!(err.is_empty(), "{err}");
}

#[test]
fn validate_reports_every_error_with_location_on_stderr() {
    let (code, out, err) = portcullis(&[
        "validate",
        "-c",
        "tests/corpus/intercept/invalid/invalid_schema.yaml",
    ]);
    assert_eq!(code, 1);
    assert!(out.is_empty(), "errors go to stderr: {out}");
    assert_eq!(
        err.matches("\nerror: ").count() + usize::from(err.starts_with("error: ")),
        16,
        "15 errors and the summary:\n{err}"
    );
    assert!(
        err.contains(" --> tests/corpus/intercept/invalid/invalid_schema.yaml:1:10\n"),
        "{err}"
    );
    assert!(err.contains("= help: "), "{err}");
    assert!(
        err.ends_with("error: policy validation failed with 15 error(s)\n"),
        "{err}"
    );
}

#[test]
fn validate_reports_a_yaml_error_with_its_line() {
    let (code, _, err) = portcullis(&[
        "validate",
        "tests/corpus/intercept/invalid/invalid_policy.yaml",
    ]);
    assert_eq!(code, 1);
    assert!(
        err.starts_with("error: parsing config file: yaml: line "),
        "{err}"
    );
    assert!(err.contains("invalid_policy.yaml:"), "{err}");
}

#[test]
fn every_corpus_policy_validates() {
    let (code, out, err) = portcullis(&["validate", "tests/corpus/intercept/servers"]);
    assert_eq!(code, 0, "{err}");
    assert_eq!(
        out.lines()
            .filter(|l| l.contains(": valid (intercept-v1 policy"))
            .count(),
        55,
        "{out}"
    );
    // Intercept's own fixture uses `lt` for limits it documents as inclusive: Portcullis warns.
    assert!(
        err.contains("warning: `lt 10` on this rule's own counter admits 9 per window, not 10"),
        "{err}"
    );
}

/// A directory with no server policy is an error, as it is for the build
/// (it was "valid": exit 0, nothing printed).
#[test]
fn validate_refuses_a_directory_without_a_server_policy() {
    let dir = common::temp_dir("validate-empty");
    let shown = dir.display().to_string();
    let (code, out, err) = portcullis(&["validate", &shown]);
    assert_eq!(code, 1, "{out}{err}");
    assert!(
        err.contains(&format!("error: no policy files in {shown}")),
        "{err}"
    );
    assert!(err.contains("= help: add `<server>.yaml`"), "{err}");

    std::fs::copy(
        "policies/default/everything.test.yaml",
        dir.join("everything.test.yaml"),
    )
    .unwrap();
    let (code, _, err) = portcullis(&["validate", &shown]);
    assert_eq!(code, 1, "{err}");
    assert!(
        err.contains("only policy tests (everything.test.yaml)"),
        "{err}"
    );

    std::fs::copy(
        "policies/default/everything.yaml",
        dir.join("everything.yaml"),
    )
    .unwrap();
    let (code, out, err) = portcullis(&["validate", &shown]);
    assert_eq!(code, 0, "{out}{err}");
}

#[test]
fn deny_warnings_fails_on_warnings() {
    let (code, _, _) = portcullis(&[
        "validate",
        "--deny-warnings",
        "tests/corpus/intercept/servers/valid_policy.yaml",
    ]);
    assert_eq!(code, 1);
}

#[test]
fn policies_and_version_name_the_embedded_policy() {
    let (code, out, _) = portcullis(&["policies"]);
    assert_eq!(code, 0);
    assert!(
        out.starts_with("environment: default\ndigest:      sha256:"),
        "{out}"
    );
    assert!(out.contains("  everything  intercept-v1"), "{out}");
    let (code, out, _) = portcullis(&["--version"]);
    assert_eq!(code, 0);
    assert!(
        out.starts_with("portcullis 0.1.0 (env default, 1 policy, sha256:"),
        "{out}"
    );
}

/// The README's main job: a real MCP session through the proxy and the
/// embedded default policy, every decision checked against the policy.
#[test]
fn demo_runs_a_real_session_and_every_decision_matches() {
    let server = common::server_everything();
    let (code, out, err) = portcullis(&["demo", "--", "node", server.to_str().unwrap()]);
    assert_eq!(code, 0, "{out}{err}");
    assert!(out.contains("hidden by policy: get-env"), "{out}");
    assert!(out.contains("DENY   get-sum"), "{out}");
    assert!(
        out.contains("Every decision matched the policy. Denied calls never reached the server."),
        "{out}"
    );
}
