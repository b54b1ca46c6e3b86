//! `portcullis test` and `portcullis explain`, the real binary: the sample
//! policies' tests pass, a broken expectation fails with a readable diff,
//! coverage names an uncovered rule at its exact line, and explanations are
//! snapshots.

mod common;

use std::path::Path;
use std::process::Command;

fn portcullis(args: &[&str]) -> (i32, String, String) {
    let out = Command::new(common::portcullis())
        .args(args)
        .current_dir(common::root())
        .output()
        .expect("run portcullis");
    (
        out.status.code().unwrap_or(-1),
        String::from_utf8(out.stdout).unwrap(),
        String::from_utf8(out.stderr).unwrap(),
    )
}

/// A directory holding a copy of the default policy and a test file.
fn policy_dir(name: &str, tests: &str) -> std::path::PathBuf {
    let dir = common::temp_dir(name);
    std::fs::copy(
        common::root().join("policies/default/everything.yaml"),
        dir.join("everything.yaml"),
    )
    .unwrap();
    std::fs::write(dir.join("everything.test.yaml"), tests).unwrap();
    dir
}

fn redact(text: &str, dir: &Path) -> String {
    text.replace(dir.to_str().unwrap(), "<dir>")
}

/// The 1-based line of the first line of `file` containing `needle`.
fn line_of(file: &Path, needle: &str) -> usize {
    std::fs::read_to_string(file)
        .unwrap()
        .lines()
        .position(|l| l.contains(needle))
        .unwrap_or_else(|| panic!("{needle:?} not in {}", file.display()))
        + 1
}

#[test]
fn the_embedded_policy_passes_its_embedded_tests_on_both_back_ends() {
    let (code, out, err) = portcullis(&["test", "--coverage", "--min-coverage", "100"]);
    assert_eq!(code, 0, "{out}{err}");
    assert!(
        out.contains(
            "policies/default/everything.test.yaml -> policies/default/everything.yaml (compiled + evaluator)"
        ),
        "{out}"
    );
    assert!(
        out.contains("coverage: 8 of 8 rules and conditions evaluated (100.0%)"),
        "{out}"
    );
    assert!(
        out.contains("test result: ok. 5 passed; 0 failed; 1 file(s)"),
        "{out}"
    );
}

#[test]
fn the_policy_language_samples_pass_their_tests_with_full_coverage() {
    let (code, out, err) = portcullis(&[
        "test",
        "policies/examples",
        "--coverage",
        "--min-coverage",
        "100",
    ]);
    assert_eq!(code, 0, "{out}{err}");
    assert!(
        out.contains(
            "policies/examples/stripe.test.yaml -> policies/examples/stripe.policy (evaluator)"
        ),
        "{out}"
    );
    assert!(
        out.contains(
            "policies/examples/github.test.yaml -> policies/examples/github.policy (evaluator)"
        ),
        "{out}"
    );
    assert!(out.contains("(100.0%)"), "{out}");
    assert!(
        out.contains("test result: ok. 17 passed; 0 failed; 2 file(s)"),
        "{out}"
    );
}

#[test]
fn a_broken_expectation_fails_with_a_readable_diff() {
    let tests =
        std::fs::read_to_string(common::root().join("policies/default/everything.test.yaml"))
            .unwrap()
            .replace(
                "message: get-sum is limited to operands up to 1000",
                "message: get-sum is limited to operands up to 100",
            )
            .replace("expect: allow, upstream: error}", "expect: allow}");
    let dir = policy_dir("broken-expectation", &tests);
    let (code, out, err) = portcullis(&["test", dir.to_str().unwrap()]);
    assert_eq!(code, 1, "{out}{err}");
    // The same policy text as the embedded one: both back ends run, agree, and one diff is shown.
    insta::assert_snapshot!(redact(&out, &dir));
}

#[test]
fn a_test_file_mistake_is_a_diagnostic_with_its_location() {
    let dir = policy_dir(
        "bad-test-file",
        "cases:\n  - name: typo\n    calls:\n      - tool: echo\n        expcet: allow\n",
    );
    let (code, out, err) = portcullis(&["test", dir.to_str().unwrap()]);
    assert_eq!(code, 1, "{out}{err}");
    let out = redact(&out, &dir);
    assert!(out.contains("<dir>/everything.test.yaml:5:9"), "{out}");
    assert!(out.contains("expect"), "{out}");
    assert!(out.contains("1 could not be read"), "{out}");

    // Every other mistake of one file, reported together.
    std::fs::write(
        dir.join("everything.test.yaml"),
        "cases:\n  - calls:\n      - {tool: echo, args: [1, 2], expect: allow}\n      - {tool: echo, expect: allow, message: hi}\n",
    )
    .unwrap();
    let (code, out, _) = portcullis(&["test", dir.to_str().unwrap()]);
    assert_eq!(code, 1, "{out}");
    for needle in [
        "cases[0] has no `name`",
        "`args` must be a mapping",
        "<dir>/everything.test.yaml:3:28",
        "`message` is checked on denials and approval requests only",
    ] {
        assert!(redact(&out, &dir).contains(needle), "{needle}: {out}");
    }
}

#[test]
fn a_test_file_for_no_policy_is_an_error() {
    let dir = policy_dir("no-policy", "cases: []\n");
    std::fs::rename(
        dir.join("everything.test.yaml"),
        dir.join("everthing.test.yaml"),
    )
    .unwrap();
    let (code, out, err) = portcullis(&["test", dir.join("everthing.test.yaml").to_str().unwrap()]);
    assert_eq!(code, 1, "{out}{err}");
    assert!(err.contains("no policy beside"), "{err}");
    let (code, out, _) = portcullis(&["test", dir.to_str().unwrap()]);
    assert_eq!(code, 1, "{out}");
    assert!(out.contains("no policy for server `everthing`"), "{out}");
    assert!(
        out.contains("did you mean `everything.test.yaml`?"),
        "{out}"
    );
}

#[test]
fn coverage_names_the_rule_no_case_reached_at_its_exact_line() {
    let dir = policy_dir(
        "coverage",
        "cases:\n  - name: sums only\n    calls:\n      - {tool: get-sum, args: {a: 1, b: 2}, expect: allow}\n      - {tool: get-sum, args: {a: 1001, b: 2}, expect: deny}\n",
    );
    let policy = dir.join("everything.yaml");
    let (code, out, err) = portcullis(&["test", dir.to_str().unwrap(), "--coverage"]);
    assert_eq!(code, 0, "coverage alone does not fail: {out}{err}");
    let echo = line_of(&policy, "- name: \"single-line echo\"");
    let echo_condition = line_of(&policy, "path: args.message");
    let out = redact(&out, &dir);
    assert!(
        out.contains(&format!(
            "not covered  <dir>/everything.yaml:{echo}:9  rule \"single-line echo\" (tools.echo.rules[0]) never evaluated"
        )),
        "{out}"
    );
    assert!(
        out.contains(&format!(
            "not covered  <dir>/everything.yaml:{echo_condition}:13  condition `args.message matches /^[^\\x00-\\x1f]*$/` of rule \"single-line echo\" never evaluated"
        )),
        "{out}"
    );
    // Both get-sum conditions and the global limit ran: 4 of 8.
    assert!(
        out.contains("coverage: 4 of 8 rules and conditions evaluated (50.0%)"),
        "{out}"
    );
    let (code, out, _) = portcullis(&["test", dir.to_str().unwrap(), "--min-coverage", "75"]);
    assert_eq!(code, 1, "{out}");
    assert!(
        out.contains("coverage 50.0% is below the minimum 75%"),
        "{out}"
    );
    assert!(
        out.contains("test result: FAILED. 1 passed; 0 failed"),
        "{out}"
    );
}

#[test]
fn explain_shows_rules_conditions_values_and_the_deciding_rule() {
    let cases: &[&[&str]] = &[
        &["--tool", "get-sum", "--args", r#"{"a": 5, "b": 2000}"#],
        &["--tool", "get-sum", "--args", r#"{"a": 5000, "b": 2}"#],
        &["--tool", "echo", "--args", r#"{"message": "hello"}"#],
        &["--tool", "get-env"],
        &[
            "--tool",
            "trigger-long-running-operation",
            "--args",
            r#"{"duration": 1}"#,
        ],
        &[
            "-c",
            "policies/examples/stripe.policy",
            "--tool",
            "create_refund",
            "--args",
            r#"{"amount": 500, "reason": "Suspected fraud"}"#,
        ],
        &[
            "-c",
            "policies/examples/stripe.policy",
            "--tool",
            "create_charge",
            "--args",
            r#"{"amount": 1200, "currency": "usd", "customer": "cus_1"}"#,
        ],
        &[
            "-c",
            "policies/examples/github.policy",
            "--tool",
            "push_files",
            "--args",
            r#"{"branch": "main", "path": "src/lib.rs"}"#,
        ],
        &[
            "-c",
            "policies/examples/stripe.policy",
            "--tool",
            "update_customer",
        ],
    ];
    let mut all = String::new();
    for args in cases {
        let mut argv = vec!["explain"];
        argv.extend_from_slice(args);
        let (code, out, err) = portcullis(&argv);
        assert_eq!(code, 0, "{argv:?}: {err}");
        assert!(
            err.is_empty(),
            "{argv:?}: the compiled policy and the evaluator agree: {err}"
        );
        all.push_str(&format!("$ portcullis {}\n{out}\n", argv.join(" ")));
    }
    insta::assert_snapshot!(all);
}

#[test]
fn explain_rejects_arguments_that_are_not_json() {
    let (code, out, err) = portcullis(&["explain", "--tool", "echo", "--args", "{message: hi}"]);
    assert_eq!(code, 1, "{out}");
    assert!(err.contains("error: the arguments:"), "{err}");
    assert!(
        err.contains("help: pass the arguments as one JSON object"),
        "{err}"
    );
}

#[test]
fn explain_shows_spend_budgets_with_their_rules_windows_and_currencies() {
    let (code, out, err) = portcullis(&[
        "explain",
        "-c",
        "tests/fixtures/spend/paid-dsl.policy",
        "--tool",
        "render_chart",
        "--args",
        r#"{"project": "p1"}"#,
    ]);
    assert_eq!(code, 0, "{err}");
    let file = common::root().join("tests/fixtures/spend/paid-dsl.policy");
    let per_call = line_of(&file, "spend <= $0.50 per call");
    let project = line_of(&file, "project_budget");
    for want in [
        format!(
            "spend    budget \"spend <= 0.50 usd per call\" (tool generate_image,render_* rule 1, tests/fixtures/spend/paid-dsl.policy:{per_call}:5), usd only\n           at most 0.50 usd per call\n"
        ),
        "at most 50.00 usd per window: counter spend(\"generate_image,render_*\", \"spend usd per day by session\") (calendar day (UTC), per agent session)".to_string(),
        format!("budget \"project_budget\" (tool generate_image,render_* rule 3, tests/fixtures/spend/paid-dsl.policy:{project}:5), eur only"),
        "at most 40.00 eur per window: counter spend(\"generate_image,render_*\", \"project_budget\") (sliding 1d, per args.project (this call: \"p1\"))".to_string(),
        "over budget: [POLICY DENIED] project budget spent".to_string(),
        "a price in a currency no budget covers is denied".to_string(),
    ] {
        assert!(out.contains(&want), "missing {want:?} in:\n{out}");
    }

    // Intercept's `spend:` names no currency: every currency, counted apart.
    let (code, out, err) = portcullis(&[
        "explain",
        "-c",
        "tests/fixtures/spend/paid-intercept.yaml",
        "--tool",
        "generate_image",
    ]);
    assert_eq!(code, 0, "{err}");
    assert!(
        out.contains("spend    budget \"image-budget\" (tools.generate_image.rules[0], tests/fixtures/spend/paid-intercept.yaml:6:9), any currency, each counted on its own\n           at most 0.50 per call\n           at most 50.00 per window: counter spend.generate_image.rules[0] (calendar day (UTC), shared by every caller)"),
        "{out}"
    );
    assert!(
        out.contains("budget \"everything\" (tools.*.rules[0]"),
        "{out}"
    );

    // A denied call never reaches the server, so it has no price to check.
    let (code, out, err) = portcullis(&[
        "explain",
        "-c",
        "tests/fixtures/spend/paid-dsl.policy",
        "--tool",
        "translate",
    ]);
    assert_eq!(code, 0, "{err}");
    assert!(out.contains("result   DENY"), "{out}");
    assert!(!out.contains("budget"), "{out}");
}

/// `explain --claims` on a per-caller budget: the window's partition with
/// this caller's value; without a caller (or the claim), the refusal every
/// price would get.
#[test]
fn explain_shows_per_caller_budgets_and_their_refusal_without_a_caller() {
    let policy = "tests/fixtures/spend/paid-caller.policy";
    let (code, out, err) = portcullis(&[
        "explain",
        "-c",
        policy,
        "--tool",
        "generate_image",
        "--claims",
        r#"{"sub":"alice","iss":"https://idp.example"}"#,
    ]);
    assert_eq!(code, 0, "{err}");
    for want in [
        "budget \"user_budget\"",
        r#"at most 1.00 usd per window: counter spend("generate_image", "user_budget") (calendar day (UTC), per caller, principal.sub of principal.iss (this caller: "alice" of "https://idp.example"))"#,
    ] {
        assert!(out.contains(want), "missing {want:?} in:\n{out}");
    }
    assert!(!out.contains("no value to count the caller by"), "{out}");
    let (code, out, err) = portcullis(&["explain", "-c", policy, "--tool", "generate_image"]);
    assert_eq!(code, 0, "{err}");
    assert!(out.contains("(this caller: missing)"), "{out}");
    assert!(
        out.contains("no value to count the caller by: every price is refused (Your daily image budget is spent: the budget counts per principal.sub and the caller has none)"),
        "{out}"
    );
    let (code, out, err) = portcullis(&[
        "explain",
        "-c",
        policy,
        "--tool",
        "render_video",
        "--claims",
        r#"{"sub":"alice","iss":"https://idp.example","team":"studio"}"#,
    ]);
    assert_eq!(code, 0, "{err}");
    assert!(
        out.contains(r#"per principal.claims.team (this caller: "studio")"#),
        "{out}"
    );
}

/// `explain --claims`: the same call explained as two callers (a per-caller
/// hide, a group condition, a per-caller limit), and without one.
#[test]
fn explain_as_a_caller_shows_principal_dependent_rules() {
    let policy = "tests/fixtures/principal/finance.policy";
    let claims = r#"{"sub":"alice","iss":"https://idp.example","groups":["finance"],"scope":"refunds:read"}"#;
    let (code, out, err) = portcullis(&[
        "explain",
        "-c",
        policy,
        "--tool",
        "create_refund",
        "--args",
        r#"{"amount": 500}"#,
        "--claims",
        claims,
    ]);
    assert_eq!(code, 0, "{err}");
    for line in [
        r#"caller   sub "alice", iss "https://idp.example", scopes ["refunds:read"]"#,
        r#"principal.claims.groups contains "finance"  true   principal.claims.groups = ["finance"]"#,
        r#"per caller, principal.sub of principal.iss (this caller: "alice" of "https://idp.example")"#,
        "result   ALLOW (counters reserved)",
    ] {
        assert!(out.contains(line), "{line}\n{out}");
    }
    let (code, out, _) = portcullis(&[
        "explain",
        "-c",
        policy,
        "--tool",
        "admin_reset",
        "--claims",
        r#"{"sub":"bob","iss":"https://idp.example","groups":["staff"]}"#,
    ]);
    assert_eq!(code, 0);
    assert!(out.contains("hidden   by hide[0]"), "{out}");
    assert!(out.contains("for this caller: hidden when"), "{out}");
    assert!(
        out.contains(r#"[POLICY DENIED] Tool "admin_reset" is hidden by policy"#),
        "{out}"
    );
    let (code, out, _) = portcullis(&["explain", "-c", policy, "--tool", "create_refund"]);
    assert_eq!(code, 0);
    assert!(
        out.contains(
            "caller   none (every principal.* path reads as missing; give one with --claims)"
        ),
        "{out}"
    );
    assert!(out.contains("principal.claims.groups = missing"), "{out}");
    let (code, _, err) = portcullis(&[
        "explain",
        "-c",
        policy,
        "--tool",
        "t",
        "--claims",
        r#"{"iss":"i"}"#,
    ]);
    assert_eq!(code, 1);
    assert!(
        err.contains("error: --claims: the claims have no `sub` string"),
        "{err}"
    );
}
