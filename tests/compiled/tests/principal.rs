//! The caller in policies (issue 14): `principal.*` paths in conditions,
//! per-caller hides (tools/list and calls alike) and per-caller limits, in
//! the policy language, Intercept's YAML and the catalogue form; the same
//! answers from the generated code and the reference evaluator.

use portcullis_compiled::{compiled, repo_path};
use portcullis_compiler::eval::Evaluator;
use portcullis_compiler::{compile, load_file};
use portcullis_core::Principal;
use portcullis_core::call::ToolCall;
use portcullis_core::counters::{Counters, MemoryCounters, Ticket, UnixMillis};
use portcullis_core::json::Strictness;
use portcullis_core::policy::{Decision, Env, FailMode, Outcome, Policy};

/// Both engines for the fixture `file` (in tests/fixtures/principal).
fn engines(file: &str) -> Vec<(&'static str, Box<dyn Policy>)> {
    let input = load_file(
        &repo_path(&format!("tests/fixtures/principal/{file}")),
        None,
    )
    .unwrap();
    let set = compile(&[input])
        .into_set()
        .unwrap_or_else(|o| panic!("{}", o.render()));
    let ir = set.servers[0].clone();
    let native = compiled(&ir.name).unwrap_or_else(|| panic!("{} not compiled", ir.name));
    vec![
        (
            "evaluator",
            Box::new(Evaluator::new(ir, &set.sources)) as Box<dyn Policy>,
        ),
        ("generated", Box::new(native)),
    ]
}

fn who(claims: &str) -> Principal {
    Principal::from_claims(claims.as_bytes().to_vec()).expect("valid claims")
}

fn decide(
    policy: &dyn Policy,
    counters: &MemoryCounters,
    principal: Option<&Principal>,
    tool: &str,
    args: &str,
) -> Decision {
    let call = ToolCall::new(tool, args.as_bytes(), Strictness::STRICT).unwrap();
    let env = Env {
        counters,
        now: UnixMillis::parse_rfc3339("2026-03-01T12:00:00Z").unwrap(),
        session: 1,
        fail_mode: FailMode::Closed,
        principal,
    };
    let mut ticket = Ticket::EMPTY;
    let d = policy.decide(&call, &env, &mut ticket);
    counters.commit(&ticket);
    d
}

#[test]
fn dsl_group_scope_and_issuer_conditions() {
    let finance = who(
        r#"{"sub":"alice","iss":"https://idp.example","groups":["finance"],"scope":"refunds:large"}"#,
    );
    let staff = who(r#"{"sub":"bob","iss":"https://idp.example","groups":["staff"]}"#);
    for (engine, p) in engines("finance.policy") {
        let c = MemoryCounters::new();
        let d = decide(
            &*p,
            &c,
            Some(&finance),
            "create_refund",
            r#"{"amount": 20000}"#,
        );
        assert_eq!(d.outcome, Outcome::Allowed, "{engine}");
        let d = decide(&*p, &c, Some(&staff), "create_refund", r#"{"amount": 5}"#);
        assert_eq!(
            (d.outcome, d.message),
            (Outcome::Check, "Refunds need the finance group"),
            "{engine}"
        );
        // No caller at all: the group claim is missing, and the rule fails closed.
        let d = decide(&*p, &c, None, "create_refund", r#"{"amount": 5}"#);
        assert_eq!(d.message, "Refunds need the finance group", "{engine}");
        // A large refund without the scope.
        let no_scope = who(r#"{"sub":"carol","iss":"https://idp.example","groups":["finance"]}"#);
        let d = decide(
            &*p,
            &c,
            Some(&no_scope),
            "create_refund",
            r#"{"amount": 20000}"#,
        );
        assert_eq!(
            d.message, "Refunds over 100.00 need the refunds:large scope",
            "{engine}"
        );
        // Nested claims and booleans.
        let eu = who(
            r#"{"sub":"dan","iss":"x","org":{"region":"eu","team":"t1"},"email_verified":true}"#,
        );
        assert_eq!(
            decide(&*p, &c, Some(&eu), "get_report", "{}").outcome,
            Outcome::Allowed,
            "{engine}"
        );
        assert_eq!(
            decide(&*p, &c, Some(&eu), "list_refunds", "{}").outcome,
            Outcome::Allowed,
            "{engine}"
        );
        let us = who(r#"{"sub":"eve","iss":"x","org":{"region":"us"},"email_verified":"true"}"#);
        assert_eq!(
            decide(&*p, &c, Some(&us), "get_report", "{}").outcome,
            Outcome::Check,
            "{engine}"
        );
        assert_eq!(
            decide(&*p, &c, Some(&us), "list_refunds", "{}").outcome,
            Outcome::Check,
            "{engine}"
        );
    }
}

#[test]
fn two_callers_see_different_tool_lists_and_calls() {
    let admin = who(r#"{"sub":"root","iss":"https://idp.example","groups":["admins"]}"#);
    let user = who(r#"{"sub":"bob","iss":"https://idp.example","groups":["staff"]}"#);
    for (engine, p) in engines("finance.policy") {
        assert!(!p.is_hidden("admin_reset", Some(&admin)), "{engine}");
        assert!(p.is_hidden("admin_reset", Some(&user)), "{engine}");
        assert!(
            p.is_hidden("admin_reset", None),
            "{engine}: no caller, no admin tools"
        );
        // An unconditional hide hides from everyone.
        assert!(p.is_hidden("debug_dump", Some(&admin)), "{engine}");
        assert!(!p.is_hidden("create_refund", Some(&user)), "{engine}");
        let c = MemoryCounters::new();
        assert_eq!(
            decide(&*p, &c, Some(&admin), "admin_reset", "{}").outcome,
            Outcome::Allowed,
            "{engine}"
        );
        assert_eq!(
            decide(&*p, &c, Some(&user), "admin_reset", "{}").outcome,
            Outcome::Hidden,
            "{engine}"
        );
    }
}

#[test]
fn limits_per_caller_give_each_their_own_budget_and_fail_closed_without_one() {
    let alice = who(r#"{"sub":"alice","iss":"i","groups":["finance"]}"#);
    let bob = who(r#"{"sub":"bob","iss":"i","groups":["finance"]}"#);
    for (engine, p) in engines("finance.policy") {
        let c = MemoryCounters::new();
        for i in 0..3 {
            for caller in [&alice, &bob] {
                let d = decide(&*p, &c, Some(caller), "create_refund", r#"{"amount": 1}"#);
                assert_eq!(
                    d.outcome,
                    Outcome::Allowed,
                    "{engine}: call {i} of {}",
                    caller.sub()
                );
            }
        }
        for caller in [&alice, &bob] {
            let d = decide(&*p, &c, Some(caller), "create_refund", r#"{"amount": 1}"#);
            assert_eq!(
                (d.outcome, d.message),
                (Outcome::Limit, "Three refunds per hour per user"),
                "{engine}: {}'s fourth",
                caller.sub()
            );
        }
        // Per team (a nested claim); a caller without a team is refused.
        let t1 = who(r#"{"sub":"x","iss":"i","org":{"region":"eu","team":"t1"}}"#);
        let t2 = who(r#"{"sub":"y","iss":"i","org":{"region":"eu","team":"t2"}}"#);
        for _ in 0..5 {
            assert_eq!(
                decide(&*p, &c, Some(&t1), "get_report", "{}").outcome,
                Outcome::Allowed
            );
        }
        assert_eq!(
            decide(&*p, &c, Some(&t1), "get_report", "{}").outcome,
            Outcome::Limit,
            "{engine}"
        );
        assert_eq!(
            decide(&*p, &c, Some(&t2), "get_report", "{}").outcome,
            Outcome::Allowed,
            "{engine}"
        );
        let teamless = who(r#"{"sub":"z","iss":"i","org":{"region":"eu"}}"#);
        let d = decide(&*p, &c, Some(&teamless), "get_report", "{}");
        assert_eq!(
            (d.outcome, d.message),
            (
                Outcome::Limit,
                "Five reports a day per team: the limit counts per principal.claims.org.team and the caller has none"
            ),
            "{engine}"
        );
    }
}

#[test]
fn intercept_yaml_principal_conditions_hides_and_limits() {
    let hr = who(
        r#"{"sub":"hana","iss":"i","department":"hr","groups":["payroll"],"team":"a","level":7,"scope":"salary:write"}"#,
    );
    let dev = who(r#"{"sub":"dev","iss":"i","department":"eng","level":3}"#);
    for (engine, p) in engines("hr.yaml") {
        let c = MemoryCounters::new();
        assert_eq!(
            decide(&*p, &c, Some(&hr), "get_employee", "{}").outcome,
            Outcome::Allowed,
            "{engine}"
        );
        let d = decide(&*p, &c, Some(&dev), "get_employee", "{}");
        assert_eq!(d.message, "Only HR staff read employee records", "{engine}");
        assert_eq!(
            decide(&*p, &c, Some(&hr), "update_salary", "{}").outcome,
            Outcome::Allowed,
            "{engine}"
        );
        assert_eq!(
            decide(&*p, &c, Some(&dev), "update_salary", "{}").outcome,
            Outcome::Check,
            "{engine}"
        );
        assert!(!p.is_hidden("export_payroll", Some(&hr)), "{engine}");
        assert!(p.is_hidden("export_payroll", Some(&dev)), "{engine}");
        assert!(p.is_hidden("delete_employee", Some(&hr)), "{engine}");
        // rate_limit 10/hour by principal.sub: hana has 9 left, another HR user 10.
        for _ in 0..9 {
            assert_eq!(
                decide(&*p, &c, Some(&hr), "get_employee", "{}").outcome,
                Outcome::Allowed
            );
        }
        let d = decide(&*p, &c, Some(&hr), "get_employee", "{}");
        assert_eq!(
            d.message, "Ten employee reads per hour per user",
            "{engine}"
        );
        let hr2 = who(r#"{"sub":"hugo","iss":"i","department":"hr"}"#);
        assert_eq!(
            decide(&*p, &c, Some(&hr2), "get_employee", "{}").outcome,
            Outcome::Allowed,
            "{engine}"
        );
        // state counter by principal.claims.team: two exports per team per day.
        for _ in 0..2 {
            assert_eq!(
                decide(&*p, &c, Some(&hr), "export_payroll", "{}").outcome,
                Outcome::Allowed
            );
        }
        let d = decide(&*p, &c, Some(&hr), "export_payroll", "{}");
        assert_eq!(
            (d.outcome, d.message),
            (Outcome::Limit, "Two payroll exports per team per day"),
            "{engine}"
        );
        // Another team has its own two.
        let other = who(r#"{"sub":"olga","iss":"i","groups":["payroll"],"team":"b"}"#);
        assert_eq!(
            decide(&*p, &c, Some(&other), "export_payroll", "{}").outcome,
            Outcome::Allowed,
            "{engine}"
        );
    }
}

#[test]
fn catalogue_per_caller_view_and_limit() {
    let ops = who(r#"{"sub":"op","iss":"i","scope":"ops:admin"}"#);
    let viewer = who(r#"{"sub":"viewer","iss":"i"}"#);
    for (engine, p) in engines("ops-catalogue.yaml") {
        assert!(!p.is_hidden("restart_cluster", Some(&ops)), "{engine}");
        assert!(p.is_hidden("restart_cluster", Some(&viewer)), "{engine}");
        let c = MemoryCounters::new();
        for caller in [&ops, &viewer] {
            for _ in 0..2 {
                assert_eq!(
                    decide(&*p, &c, Some(caller), "get_status", "{}").outcome,
                    Outcome::Allowed
                );
            }
            let d = decide(&*p, &c, Some(caller), "get_status", "{}");
            assert_eq!(
                d.message, "Two status checks per minute per user",
                "{engine}"
            );
        }
        let d = decide(&*p, &c, None, "get_status", "{}");
        assert_eq!(d.outcome, Outcome::Limit, "{engine}: no caller, no budget");
    }
}

/// The fixtures' tests as data (`principal:` blocks on cases and calls)
/// pass on the generated code and the evaluator alike, covering every rule
/// and condition.
#[test]
fn tests_as_data_with_callers_pass_on_both_engines() {
    use portcullis_compiler::policy_tests::{TestSource, run_suite};
    // The same inputs and display paths as the build script, so the digests
    // match and the compiled policies run too.
    let inputs = portcullis_compiler::load_dir(
        &repo_path("tests/fixtures/principal"),
        Some("tests/fixtures/principal"),
    )
    .unwrap();
    let set = compile(&inputs)
        .into_set()
        .unwrap_or_else(|o| panic!("{}", o.render()));
    let tests: Vec<TestSource> = ["finance", "hr", "ops-catalogue"]
        .iter()
        .map(|s| {
            let path = format!("tests/fixtures/principal/{s}.test.yaml");
            TestSource {
                text: std::fs::read_to_string(repo_path(&path)).unwrap(),
                path,
            }
        })
        .collect();
    let report = run_suite(&set, &tests, &compiled, true);
    assert!(report.ok(), "{}", report.text);
    for policy in ["finance.policy", "hr.yaml", "ops-catalogue.yaml"] {
        assert!(
            report
                .text
                .contains(&format!("{policy} (compiled + evaluator)")),
            "{}",
            report.text
        );
    }
    assert_eq!(report.passed, 12, "{}", report.text);
    let c = report.coverage.unwrap();
    assert_eq!(c.covered, c.total, "{:#?}", c.uncovered);
}
