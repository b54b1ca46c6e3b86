//! Every condition of an Intercept rule reaches the decision (issue 11,
//! defect 3): lowering consumes typed conditions and cannot drop one, and a
//! condition validation used to pass but lowering dropped is now an error.

use portcullis_compiler::lower::intercept::Operator;
use portcullis_compiler::policy_tests::{TestSource, run_suite};
use portcullis_compiler::{Input, Output, compile};

fn compile_yaml(text: &str) -> Output {
    compile(&[Input {
        server: "pay".into(),
        path: "pay.yaml".into(),
        text: text.into(),
    }])
}

/// `eq` with no `value` passed validation, lowering found no value and
/// dropped the condition: the rule below allowed every currency.
#[test]
fn a_comparison_without_a_value_is_an_error_not_a_dropped_condition() {
    for op in ["eq", "neq", "contains"] {
        let out = compile_yaml(&format!(
            r#"version: "1"
tools:
  pay:
    rules:
      - name: small payments in usd
        conditions:
          - {{path: args.amount, op: lte, value: 100}}
          - {{path: args.currency, op: {op}}}
"#
        ));
        let rendered = out.render();
        assert!(
            !out.is_ok(),
            "`{op}` without a value compiled (the condition was dropped): {rendered}"
        );
        assert!(
            rendered.contains("this condition has no `value`"),
            "`{op}`: {rendered}"
        );
        assert!(rendered.contains("value: null"), "`{op}`: {rendered}");
    }
    // `value: null` says it on purpose, and compiles.
    let out = compile_yaml(
        r#"version: "1"
tools:
  pay:
    rules:
      - name: no currency
        conditions:
          - {path: args.currency, op: eq, value: null}
"#,
    );
    assert!(out.is_ok(), "{}", out.render());
}

/// (operator, value, an argument that passes, one that fails).
const CASES: [(Operator, &str, &str, &str); 17] = [
    (Operator::Eq, "usd", r#""usd""#, r#""eur""#),
    (Operator::Neq, "usd", r#""eur""#, r#""usd""#),
    (Operator::In, "[usd, eur]", r#""eur""#, r#""gbp""#),
    (Operator::NotIn, "[usd, eur]", r#""gbp""#, r#""usd""#),
    (Operator::Lt, "10", "9", "10"),
    (Operator::Lte, "10", "10", "11"),
    (Operator::Gt, "10", "11", "10"),
    (Operator::Gte, "10", "10", "9"),
    (Operator::Regex, r#""^feat/""#, r#""feat/x""#, r#""fix/x""#),
    (Operator::Contains, "ab", r#""xaby""#, r#""xy""#),
    (Operator::Exists, "true", "1", "null"),
    // The `path_*` extension: the argument normalised as a path first.
    (
        Operator::PathGlob,
        r#""/srv/*/a""#,
        r#""/srv/x/../y/a""#,
        r#""/srv/y/b/a""#,
    ),
    (
        Operator::PathNotGlob,
        r#""/srv/secret/**""#,
        r#""/srv/secretive""#,
        r#""/srv/public/../secret""#,
    ),
    (
        Operator::PathEq,
        r#""/etc/passwd""#,
        r#""//etc/./passwd""#,
        r#""/etc/passwd2""#,
    ),
    (
        Operator::PathNeq,
        r#""/etc/passwd""#,
        r#""/etc/shadow""#,
        r#""/etc/passwd/""#,
    ),
    (Operator::PathUnder, r#""/srv""#, r#""/srv""#, r#""/srvx""#),
    (
        Operator::PathNotUnder,
        r#""/srv""#,
        r#""/srvx/a""#,
        r#""/srv/a/..""#,
    ),
];

/// Each operator of spec intercept-v1 §4.2 lowers to a test the evaluator
/// honours: in a rule with a second condition that holds, the operator's
/// condition alone flips the decision, and the other condition does too.
#[test]
fn every_operator_can_flip_a_decision_on_its_own() {
    let covered: Vec<Operator> = CASES.iter().map(|c| c.0).collect();
    assert_eq!(
        covered,
        Operator::ALL,
        "a case for every operator, in order"
    );
    let mut policy = String::from("version: \"1\"\ntools:\n");
    let mut tests = String::from("cases:\n");
    for (op, value, pass, fail) in CASES {
        let tool = format!("t_{}", op.name());
        policy.push_str(&format!(
            "  {tool}:\n    rules:\n      - name: rule {tool}\n        conditions:\n          - {{path: args.on, op: eq, value: true}}\n          - {{path: args.x, op: {}, value: {value}}}\n",
            op.name()
        ));
        tests.push_str(&format!(
            "  - name: {tool}\n    calls:\n      - {{tool: {tool}, args: '{{\"on\": true, \"x\": {pass}}}', expect: allow}}\n      - {{tool: {tool}, args: '{{\"on\": true, \"x\": {fail}}}', expect: deny, rule: rule {tool}}}\n      - {{tool: {tool}, args: '{{\"on\": false, \"x\": {pass}}}', expect: deny, rule: rule {tool}}}\n"
        ));
    }
    let out = compile_yaml(&policy);
    let set = out.into_set().unwrap_or_else(|o| panic!("{}", o.render()));
    let report = run_suite(
        &set,
        &[TestSource {
            path: "pay.test.yaml".into(),
            text: tests,
        }],
        &|_| None,
        false,
    );
    assert!(report.ok(), "{}", report.text);
    assert_eq!(report.passed, CASES.len(), "{}", report.text);
}
