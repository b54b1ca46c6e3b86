//! Human approval, first part (issue 13): the real binary validates, tests
//! and explains approval policies in every dialect (Intercept's documented
//! example among them), reports malformed approval settings with their
//! file:line:col and a fix, and, in front of the real server-everything,
//! refuses a call an approval rule holds (`[APPROVAL REQUIRED]`, never
//! forwarded, nothing counted), logs it as `approval_required`, counts it
//! in the metrics and in `status`, while denies still win and calls that no
//! rule holds pass.

mod common;

use std::path::Path;
use std::process::Command;

use common::{Proxy, free_port, is_denial, portcullis, root, scrape, temp_dir};

/// Intercept's example from POLICY.md, "Approval rules" (PolicyLayer/Intercept#3).
const INTERCEPT_EXAMPLE: &str = r#"version: "1"
tools:
  create_charge:
    rules:
      - name: "large charge approval"
        action: "require_approval"
        conditions:
          - path: "args.amount"
            op: "gt"
            value: 50000
        on_deny: "Charges over $500.00 require human approval"
        approval_timeout: "30m"
"#;

fn run(args: &[&str]) -> (i32, String, String) {
    let out = Command::new(portcullis())
        .args(args)
        .current_dir(root())
        .output()
        .expect("run portcullis");
    (
        out.status.code().unwrap_or(-1),
        String::from_utf8_lossy(&out.stdout).into_owned(),
        String::from_utf8_lossy(&out.stderr).into_owned(),
    )
}

fn write(dir: &Path, name: &str, text: &str) -> String {
    let p = dir.join(name);
    std::fs::write(&p, text).unwrap();
    p.display().to_string()
}

#[test]
fn intercepts_documented_example_validates_and_explains() {
    let dir = temp_dir("approval-example");
    let file = write(&dir, "stripe.yaml", INTERCEPT_EXAMPLE);
    let (code, out, err) = run(&["validate", "-c", &file]);
    assert_eq!(code, 0, "{out}{err}");
    assert!(
        out.contains("intercept-v1 policy for server `stripe`"),
        "{out}"
    );
    let (code, out, err) = run(&[
        "explain",
        "-c",
        &file,
        "--tool",
        "create_charge",
        "--args",
        r#"{"amount": 50001}"#,
    ]);
    assert_eq!(code, 0, "{out}{err}");
    assert!(
        out.contains("result   APPROVAL REQUIRED by rule \"large charge approval\" (")
            && out.contains("stripe.yaml:5:9)"),
        "{out}"
    );
    assert!(
        out.contains("message: Charges over $500.00 require human approval"),
        "{out}"
    );
    assert!(out.contains("timeout 30m"), "{out}");
    assert!(
        out.contains("[APPROVAL REQUIRED] Charges over $500.00 require human approval"),
        "{out}"
    );
    // At the threshold the condition does not hold: allowed, no prompt.
    let (_, out, _) = run(&[
        "explain",
        "-c",
        &file,
        "--tool",
        "create_charge",
        "--args",
        r#"{"amount": 50000}"#,
    ]);
    assert!(out.contains("result   ALLOW"), "{out}");
}

#[test]
fn the_fixture_tests_pass_with_full_coverage_through_the_binary() {
    let (code, out, err) = run(&["test", "--min-coverage", "100", "tests/fixtures/approval"]);
    assert_eq!(code, 0, "{out}{err}");
    assert!(
        out.contains("test result: ok. 10 passed; 0 failed; 3 file(s)"),
        "{out}"
    );
    assert!(out.contains("(100.0%)"), "{out}");
    for f in [
        "approval-intercept.yaml",
        "approval-catalogue.yaml",
        "approval-dsl.policy",
    ] {
        let (code, out, err) = run(&["validate", "-c", &format!("tests/fixtures/approval/{f}")]);
        assert_eq!(code, 0, "{f}: {out}{err}");
    }
}

#[test]
fn a_broken_expectation_names_the_approval_rule() {
    let dir = temp_dir("approval-broken");
    std::fs::copy(
        root().join("tests/fixtures/approval/approval-dsl.policy"),
        dir.join("approval-dsl.policy"),
    )
    .unwrap();
    write(
        &dir,
        "approval-dsl.test.yaml",
        "cases:\n  - name: wrong\n    calls:\n      - {tool: close_account, args: {}, expect: allow}\n",
    );
    let (code, out, err) = run(&["test", dir.to_str().unwrap()]);
    assert_eq!(code, 1, "{out}{err}");
    assert!(out.contains("expected  allow"), "{out}");
    assert!(
        out.contains("got       approve: Closing an account needs a human"),
        "{out}"
    );
    assert!(
        out.contains("(rule \"Closing an account needs a human\""),
        "{out}"
    );
}

/// Runs `validate -c` on `text` saved as `name`; returns stderr (errors are there).
fn diagnostics(name: &str, text: &str) -> String {
    let dir = temp_dir("approval-bad");
    let file = write(&dir, name, text);
    let (code, out, err) = run(&["validate", "-c", &file]);
    assert_eq!(code, 1, "{name} should be invalid: {out}{err}");
    err
}

/// `message` at `name:line:col`, followed by a `= help:` line.
fn assert_positioned(err: &str, message: &str, at: &str) {
    let i = err
        .find(message)
        .unwrap_or_else(|| panic!("no {message:?} in\n{err}"));
    let rest = &err[i..];
    let block = rest.split("\n\n").next().unwrap();
    assert!(block.contains(at), "{message:?} not at {at}:\n{block}");
    assert!(
        block.contains("= help: "),
        "{message:?} has no help:\n{block}"
    );
}

#[test]
fn malformed_approval_settings_get_positioned_errors_with_help() {
    let err = diagnostics(
        "bad.yaml",
        r#"version: "1"
approvals:
  default_timeout: soon
  notify:
    webhook:
      url: "ftp://hooks.example.com"
      secret_env: "2BAD"
      retries: 3
tools:
  create_charge:
    rules:
      - name: "large charge approval"
        action: "require_approval"
        approval_timeout: "30 minutes"
      - name: "counted"
        action: require_approval
        rate_limit: 5/hour
"#,
    );
    assert_positioned(
        &err,
        "approvals.default_timeout: invalid duration \"soon\"",
        "bad.yaml:3:20",
    );
    assert_positioned(
        &err,
        "approvals.notify.webhook.url must be an http or https URL, got \"ftp://hooks.example.com\"",
        "bad.yaml:6:12",
    );
    assert_positioned(
        &err,
        "secret_env must name an environment variable, got \"2BAD\"",
        "bad.yaml:7:19",
    );
    assert_positioned(
        &err,
        "unknown key `retries` in the approvals webhook",
        "bad.yaml:8:7",
    );
    assert_positioned(
        &err,
        "tools.create_charge.rules[0].approval_timeout: invalid duration \"30 minutes\"",
        "bad.yaml:14:27",
    );
    assert_positioned(
        &err,
        "rate_limit cannot be used with action \"require_approval\"",
        "bad.yaml:17:21",
    );

    let err = diagnostics(
        "nourl.yaml",
        "version: \"1\"\napprovals:\n  notify:\n    webhook:\n      secret_env: S\ntools: {}\n",
    );
    assert_positioned(
        &err,
        "approvals.notify.webhook: url is required",
        "nourl.yaml:5:7",
    );

    let err = diagnostics(
        "cat.yaml",
        "tools:\n  a:\n    rules:\n      - action: approve\n        timeout: 8d\n        via: email\n",
    );
    assert_positioned(
        &err,
        "tools.a.rules[0].timeout: invalid duration \"8d\"",
        "cat.yaml:5:18",
    );
    assert!(err.contains("at most 7 days"), "{err}");
    assert_positioned(
        &err,
        "via must be `client`, `operator` or `client | operator`",
        "cat.yaml:6:14",
    );

    let err = diagnostics(
        "lang.policy",
        "server lang {\n  tool a {\n    approve \"x\" when args.n > 1 via operator timeout 90x\n  }\n}\n",
    );
    assert_positioned(&err, "invalid duration \"90x\"", "lang.policy:3:54");
    let err = diagnostics(
        "via.policy",
        "server via {\n  tool a {\n    approve \"x\" via email\n  }\n}\n",
    );
    assert_positioned(
        &err,
        "expected `client` or `operator`, found `email`",
        "via.policy:3:21",
    );
}

#[test]
fn a_literal_webhook_secret_is_accepted_with_a_warning() {
    let dir = temp_dir("approval-secret");
    let file = write(
        &dir,
        "lit.yaml",
        r#"version: "1"
approvals:
  notify:
    webhook:
      url: https://hooks.example.com/approvals
      secret: "s3cret"
tools:
  delete_customer:
    rules:
      - name: "deletions need approval"
        action: require_approval
"#,
    );
    let (code, out, err) = run(&["validate", "-c", &file]);
    assert_eq!(code, 0, "{out}{err}");
    assert!(
        err.contains("warning: the webhook secret is written in the policy: it is embedded in the compiled binary"),
        "{err}"
    );
    assert!(err.contains("lit.yaml:6:15"), "{err}");
    assert!(err.contains("= help: use `secret_env: NAME`"), "{err}");
}

/// The policy the proxy enforces in front of server-everything.
const EVERYTHING: &str = r#"server everything {
  tool get-sum {
    deny "No negative sums" when args.a < 0
    approve "Sums over 100 need a human" when args.a > 100 or args.b > 100 via operator timeout 10m
    limit 2 per day -> "Two sums a day"
  }
}
"#;

#[test]
fn the_proxy_refuses_approval_required_calls_until_the_flows_exist() {
    let dir = temp_dir("approval-proxy-policy");
    let policy = write(&dir, "everything.policy", EVERYTHING);
    let log = dir.join("decisions.jsonl");
    let port = free_port();
    let addr = format!("127.0.0.1:{port}");
    let mut p = Proxy::everything(
        "approval-proxy",
        &[
            "-c",
            &policy,
            "--audit-log",
            log.to_str().unwrap(),
            "--metrics",
            &addr,
            "--log-level",
            "error",
        ],
    );
    p.initialize();
    // A tool with an approval rule stays listed (it is callable once approved).
    p.send(r#"{"jsonrpc":"2.0","id":"list","method":"tools/list"}"#);
    let list = p.response("\"list\"");
    assert!(list.contains("\"get-sum\""), "{list}");

    // Held for approval: an isError result the model can read, never forwarded.
    let held = p.call(1, "get-sum", r#"{"a":500,"b":1}"#);
    assert!(held.contains("\"isError\":true"), "{held}");
    assert!(
        held.contains("[APPROVAL REQUIRED] Sums over 100 need a human"),
        "{held}"
    );
    assert!(!is_denial(&held), "{held}");
    assert!(held.contains("\"outcome\":\"approval_required\""), "{held}");
    assert!(
        held.contains("\"rule\":\"Sums over 100 need a human\""),
        "{held}"
    );
    // A deny wins over an approval.
    let denied = p.call(2, "get-sum", r#"{"a":-1,"b":500}"#);
    assert!(is_denial(&denied), "{denied}");
    assert!(denied.contains("No negative sums"), "{denied}");
    // Two more held calls: none of them used the daily limit.
    for id in 3..5 {
        let r = p.call(id, "get-sum", r#"{"a":1,"b":101}"#);
        assert!(r.contains("[APPROVAL REQUIRED]"), "{r}");
    }
    // A call no rule holds passes without a prompt, twice (the limit), then the limit denies.
    for id in 5..7 {
        let r = p.call(id, "get-sum", r#"{"a":2,"b":3}"#);
        assert!(!r.contains("isError\":true"), "{r}");
        assert!(r.contains('5'), "{r}");
    }
    let limited = p.call(7, "get-sum", r#"{"a":2,"b":3}"#);
    assert!(limited.contains("Two sums a day"), "{limited}");

    // The server saw exactly the two calls that passed.
    let calls: Vec<String> = p
        .server_received()
        .into_iter()
        .filter(|l| l.contains("tools/call"))
        .collect();
    assert_eq!(calls.len(), 2, "{calls:#?}");
    assert!(calls.iter().all(|l| l.contains("\"a\":2")), "{calls:#?}");

    let metrics = scrape(port);
    assert!(
        metrics.contains(
            "portcullis_calls_total{server=\"everything\",tool=\"get-sum\",effect=\"approve\"} 3"
        ),
        "{metrics}"
    );
    assert!(
        metrics.contains("portcullis_approval_requests_total{server=\"everything\",rule=\"Sums over 100 need a human\"")
            && metrics.contains("outcome=\"approval_required\"} 3"),
        "{metrics}"
    );
    assert!(
        metrics.contains(
            "portcullis_calls_total{server=\"everything\",tool=\"get-sum\",effect=\"deny\"} 2"
        ),
        "{metrics}"
    );
    let (_, stderr) = p.finish();

    let text = std::fs::read_to_string(&log).unwrap();
    let held: Vec<&str> = text
        .lines()
        .filter(|l| l.contains("\"outcome\":\"approval_required\""))
        .collect();
    assert_eq!(held.len(), 3, "{text}\n{stderr}");
    for l in &held {
        assert!(l.contains("\"effect\":\"approve\""), "{l}");
        assert!(l.contains("\"rule\":\"Sums over 100 need a human\""), "{l}");
        assert!(l.contains("everything.policy:4:5"), "{l}");
    }

    // `status` counts them apart: neither allowed nor denied.
    let (code, out, err) = run(&["status", "--audit-log", log.to_str().unwrap()]);
    assert_eq!(code, 0, "{out}{err}");
    assert!(out.contains("Calls: 7 total, 2 allowed, 2 denied"), "{out}");
    // Two requests: the two held calls with identical arguments share one.
    assert!(out.contains("Approvals: 2 requested"), "{out}");
    assert!(out.contains("Held for approval: 3"), "{out}");
    let (_, json, _) = run(&["status", "--json", "--audit-log", log.to_str().unwrap()]);
    assert!(
        json.contains("\"approval_required\": 3") || json.contains("\"approval_required\":3"),
        "{json}"
    );
}

#[test]
fn approval_timeouts_are_read_as_gos_parse_duration() {
    let dir = temp_dir("approval-go-durations");
    // Intercept's YAML, the catalogue and the policy language, as `explain` shows them.
    for (timeout, shown) in [
        ("1.5h", "timeout 90m"),
        ("1h30m", "timeout 90m"),
        ("500ms", "timeout 500ms"),
        ("2.5s", "timeout 2500ms"),
    ] {
        let yaml = write(
            &dir,
            "go.yaml",
            &format!(
                "version: \"1\"\ntools:\n  t:\n    rules:\n      - name: \"ask\"\n        action: \"require_approval\"\n        approval_timeout: \"{timeout}\"\n"
            ),
        );
        let dsl = write(
            &dir,
            "go.policy",
            &format!(
                "server go {{\n  tool t {{\n    approve \"ask\" timeout {timeout}\n  }}\n}}\n"
            ),
        );
        for file in [yaml, dsl] {
            let (code, out, err) = run(&["explain", "-c", &file, "--tool", "t", "--args", "{}"]);
            assert_eq!(code, 0, "{timeout} in {file}: {out}{err}");
            assert!(out.contains(shown), "{timeout} in {file}: {out}");
        }
    }
    let err = diagnostics(
        "x.yaml",
        "version: \"1\"\ntools:\n  t:\n    rules:\n      - name: \"ask\"\n        action: \"require_approval\"\n        approval_timeout: \"30x\"\n",
    );
    assert_positioned(
        &err,
        "tools.t.rules[0].approval_timeout: invalid duration \"30x\"",
        "x.yaml:7:27",
    );
    assert!(err.contains("`1.5h`"), "{err}");
    let err = diagnostics(
        "frac.policy",
        "server frac {\n  tool t {\n    approve \"x\" timeout 1..5h\n  }\n}\n",
    );
    assert_positioned(&err, "invalid duration \"1..5h\"", "frac.policy:3:25");
}
