//! Argument keys match under case folding, in both engines: a server in Go
//! (encoding/json) reads `"AMOUNT"`, `"Amount"`, `"\u0041MOUNT"` and
//! `"amounſ"`-style keys (`ſ` = s, U+212A KELVIN SIGN = k) as the field
//! `amount`, so `deny when args.amount > 100` must see them all. Policies:
//! tests/fixtures/argcase (the policy language and Intercept YAML).

use portcullis_compiled::{compiled, repo_path};
use portcullis_compiler::eval::Evaluator;
use portcullis_compiler::{compile, load_dir};
use portcullis_core::call::ToolCall;
use portcullis_core::counters::{MemoryCounters, Ticket, UnixMillis};
use portcullis_core::json::Strictness;
use portcullis_core::policy::{Effect, Env, FailMode, Policy};

/// (engine, policy) for `server`: the reference evaluator and the generated code.
fn engines(server: &str) -> Vec<(&'static str, Box<dyn Policy>)> {
    let inputs = load_dir(
        &repo_path("tests/fixtures/argcase"),
        Some("tests/fixtures/argcase"),
    )
    .unwrap();
    let set = compile(&inputs)
        .into_set()
        .unwrap_or_else(|o| panic!("{}", o.render()));
    let ir = set
        .servers
        .iter()
        .find(|s| s.name == server)
        .unwrap()
        .clone();
    vec![
        ("evaluator", Box::new(Evaluator::new(ir, &set.sources))),
        ("generated", Box::new(compiled(server).expect("compiled"))),
    ]
}

/// The message `policy` gives `args` for the tool `pay`, or None when allowed.
fn denial(policy: &dyn Policy, args: &str) -> Option<String> {
    // The proxy's own reading: strict (no duplicate or case-variant keys).
    let call = ToolCall::new("pay", args.as_bytes(), Strictness::STRICT)
        .unwrap_or_else(|e| panic!("{args}: {e}"));
    let counters = MemoryCounters::new();
    let env = Env {
        counters: &counters,
        now: UnixMillis(1_767_225_600_000),
        session: 1,
        fail_mode: FailMode::Closed,
        principal: None,
    };
    let d = policy.decide(&call, &env, &mut Ticket::default());
    (d.effect() == Effect::Deny).then(|| d.message("pay").into_owned())
}

fn assert_cases(server: &str, cases: &[(&str, Option<&str>)]) {
    for (engine, policy) in engines(server) {
        for (args, expected) in cases {
            let got = denial(policy.as_ref(), args);
            assert_eq!(
                got.as_deref().map(|m| m.contains(expected.unwrap_or("?"))),
                expected.map(|_| true),
                "{server} {engine}: {args} gave {got:?}, expected a denial containing {expected:?}"
            );
        }
    }
}

#[test]
fn the_policy_language_sees_keys_in_any_letter_case() {
    assert_cases(
        "argcase_dsl",
        &[
            (r#"{"amount": 50}"#, None),
            (r#"{"amount": 5000}"#, Some("too much")),
            (r#"{"AMOUNT": 5000}"#, Some("too much")),
            (r#"{"Amount": 5000}"#, Some("too much")),
            (r#"{"aMoUnT": 5000}"#, Some("too much")),
            (r#"{"\u0041MOUNT": 5000}"#, Some("too much")),
            (
                r#"{"\u0041\u004d\u004f\u0055\u004e\u0054": 5000}"#,
                Some("too much"),
            ),
            (r#"{"AMOUNT": 50}"#, None),
            // Nested paths fold at every level.
            (
                r#"{"customer": {"id": "c-blocked"}}"#,
                Some("blocked customer"),
            ),
            (
                r#"{"Customer": {"ID": "c-blocked"}}"#,
                Some("blocked customer"),
            ),
            (
                r#"{"CUSTOMER": {"\u0069d": "c-blocked"}}"#,
                Some("blocked customer"),
            ),
            (r#"{"Customer": {"ID": "c-ok"}}"#, None),
            // `ſ` (U+017F) folds to `s`, the Kelvin sign (U+212A) to `k`, raw or escaped.
            ("{\"ta\u{17f}\u{212a}\": 1}", Some("no tasks")),
            (r#"{"TA\u017f\u212a": 1}"#, Some("no tasks")),
            (r#"{"ta\u017F\u212A": 1}"#, Some("no tasks")),
            (r#"{"tasks": 1}"#, None),
            // A key longer than any policy key is skipped, not truncated.
            (r#"{"amountamount": 5000}"#, None),
        ],
    );
}

#[test]
fn intercept_yaml_sees_keys_in_any_letter_case() {
    assert_cases(
        "argcase_yaml",
        &[
            (r#"{}"#, None),
            (r#"{"force": true}"#, Some("no force")),
            (r#"{"FORCE": true}"#, Some("no force")),
            (r#"{"Force": true}"#, Some("no force")),
            (r#"{"\u0046orce": true}"#, Some("no force")),
            ("{\"for\u{212a}e\": true}", None),
            (
                r#"{"options": {"recursive": true}}"#,
                Some("no recursive option"),
            ),
            (
                r#"{"Options": {"RECURSIVE": true}}"#,
                Some("no recursive option"),
            ),
            (
                r#"{"OPTIONS": {"Recur\u017Five": true}}"#,
                Some("no recursive option"),
            ),
            (r#"{"OPTIONS": {"other": true}}"#, None),
            ("{\"TA\u{17f}\u{212a}\": 1}", Some("no tasks")),
        ],
    );
}
