//! Approval rules, compiled: the fixtures in `tests/fixtures/approval` (one
//! per dialect) decide as their test files say on the generated code and the
//! evaluator alike, with every rule and condition covered; the approval
//! tables (message, channels, timeout, webhook) reach the generated
//! `PolicyMeta`; and a call waiting for approval reserves nothing.

use portcullis_compiled::{compiled, repo_path};
use portcullis_compiler::policy_tests::{TestSource, run_suite};
use portcullis_compiler::{Input, compile};
use portcullis_core::call::ToolCall;
use portcullis_core::counters::{Counters, MemoryCounters, Ticket, UnixMillis};
use portcullis_core::json::Strictness;
use portcullis_core::policy::{ApprovalSpec, Channels, Effect, Env, FailMode, Outcome};

fn inputs() -> Vec<Input> {
    portcullis_compiler::load_dir(
        &repo_path("tests/fixtures/approval"),
        Some("tests/fixtures/approval"),
    )
    .unwrap()
}

#[test]
fn the_approval_tests_pass_on_both_engines_with_full_coverage() {
    let set = compile(&inputs())
        .into_set()
        .unwrap_or_else(|o| panic!("{}", o.render()));
    let tests: Vec<TestSource> = ["approval-intercept", "approval-catalogue", "approval-dsl"]
        .iter()
        .map(|s| {
            let path = format!("tests/fixtures/approval/{s}.test.yaml");
            TestSource {
                text: std::fs::read_to_string(repo_path(&path)).unwrap(),
                path,
            }
        })
        .collect();
    let report = run_suite(&set, &tests, &compiled, true);
    assert!(report.ok(), "{}", report.text);
    for file in [
        "approval-intercept.yaml",
        "approval-catalogue.yaml",
        "approval-dsl.policy",
    ] {
        assert!(
            report
                .text
                .contains(&format!("{file} (compiled + evaluator)")),
            "{file} did not run on the compiled code:\n{}",
            report.text
        );
    }
    assert_eq!(report.passed, 10, "{}", report.text);
    let c = report.coverage.unwrap();
    assert_eq!(c.covered, c.total, "{:#?}", c.uncovered);
    assert_eq!(c.total, 22);
}

#[test]
fn approval_specs_and_the_webhook_reach_the_generated_tables() {
    let p = compiled("approval-intercept").expect("compiled");
    let meta = p.meta();
    assert_eq!(meta.approvals.len(), 3);
    let by_name = |name: &str| -> ApprovalSpec {
        *meta
            .approvals
            .iter()
            .find(|a| meta.rule(a.rule).unwrap().name == name)
            .unwrap_or_else(|| panic!("no approval rule {name:?}"))
    };
    let large = by_name("large charge approval");
    assert_eq!(meta.approval(large.rule), Some(&large));
    assert_eq!(large.message, "Charges over $500.00 require human approval");
    assert_eq!(large.channels, Channels::BOTH);
    assert_eq!(large.timeout_ms, 30 * 60_000);
    // No approval_timeout: the block's default_timeout (20m).
    assert_eq!(by_name("deletions need approval").timeout_ms, 20 * 60_000);
    assert_eq!(
        by_name("deletions need approval").message,
        "Approval required by rule \"deletions need approval\""
    );
    let hook = meta.approval_config.expect("the approvals block");
    assert_eq!(
        hook.webhook_url,
        Some("https://hooks.example.com/approvals")
    );
    assert_eq!(hook.secret_env, Some("APPROVAL_WEBHOOK_SECRET"));
    assert_eq!(hook.secret, None);
    assert_eq!(hook.dedupe_window_ms, Some(10 * 60_000));

    let cat = compiled("approval-catalogue").expect("compiled").meta();
    assert_eq!(cat.approvals[0].timeout_ms, 3_600_000);
    assert_eq!(
        cat.approvals[0].channels,
        Channels {
            client: false,
            operator: true
        }
    );
    assert!(cat.approval_config.is_none());

    let dsl = compiled("approval-dsl").expect("compiled").meta();
    let specs: Vec<(&str, &str, u64)> = dsl
        .approvals
        .iter()
        .map(|a| (a.message, a.channels.name(), a.timeout_ms))
        .collect();
    assert_eq!(
        specs,
        [
            (
                "Refunds over $1,000 need a human",
                "client | operator",
                30 * 60_000
            ),
            ("Closing an account needs a human", "operator", 15 * 60_000),
            ("Payouts by interns need a human", "operator", 15 * 60_000),
            ("Large exports need a human", "client", 5 * 60_000),
        ]
    );
}

#[test]
fn a_call_waiting_for_approval_reserves_nothing_and_is_counted_once_approved() {
    let p = compiled("approval-dsl").expect("compiled");
    let counters = MemoryCounters::new();
    let env = Env {
        counters: &counters,
        now: UnixMillis::parse_rfc3339("2026-01-15T10:30:00Z").unwrap(),
        session: 1,
        fail_mode: FailMode::Closed,
        principal: None,
    };
    let args = br#"{"amount": 400000, "reason": "r"}"#;
    let call = ToolCall::new("create_refund", args, Strictness::STRICT).unwrap();
    for _ in 0..3 {
        let mut ticket = Ticket::EMPTY;
        let d = p.decide(&call, &env, &mut ticket);
        assert_eq!(d.effect(), Effect::Approve);
        assert_eq!(d.outcome, Outcome::ApprovalRequired);
        assert!(ticket.is_empty(), "an approval request reserved counters");
    }
    let mut ticket = Ticket::EMPTY;
    let d = p.decide_approved(&call, &env, &mut ticket);
    assert_eq!(d.effect(), Effect::Allow);
    assert!(!ticket.is_empty());
    counters.commit(&ticket);
    // 400000 of the 500000 daily budget is spent: the next approved one is denied.
    let d = p.decide_approved(&call, &env, &mut Ticket::default());
    assert_eq!(d.outcome, Outcome::Limit);
    assert_eq!(d.message, "Daily refund budget spent");
}

#[test]
fn a_call_a_full_limit_would_refuse_is_denied_at_once_and_reserves_nothing() {
    let p = compiled("approval-dsl").expect("compiled");
    let counters = MemoryCounters::new();
    let env = Env {
        counters: &counters,
        now: UnixMillis::parse_rfc3339("2026-01-15T10:30:00Z").unwrap(),
        session: 1,
        fail_mode: FailMode::Closed,
        principal: None,
    };
    let args = |amount: u64| format!(r#"{{"amount": {amount}, "reason": "r"}}"#).into_bytes();
    let (big, over, fits) = (args(400_000), args(100_001), args(100_000));
    let big = ToolCall::new("create_refund", &big, Strictness::STRICT).unwrap();
    let mut ticket = Ticket::EMPTY;
    let d = p.decide_approved(&big, &env, &mut ticket);
    assert_eq!(d.effect(), Effect::Allow);
    counters.commit(&ticket);
    // 100000 left: a request for 100001 would be refused once approved.
    let over = ToolCall::new("create_refund", &over, Strictness::STRICT).unwrap();
    for _ in 0..2 {
        let mut ticket = Ticket::EMPTY;
        let d = p.decide(&over, &env, &mut ticket);
        assert_eq!(d.outcome, Outcome::Limit);
        assert_eq!(d.message, "Daily refund budget spent");
        assert!(ticket.is_empty(), "a peek reserves nothing");
    }
    // What is left is still there: 100000 fits.
    let fits = ToolCall::new("create_refund", &fits, Strictness::STRICT).unwrap();
    let mut ticket = Ticket::EMPTY;
    let d = p.decide(&fits, &env, &mut ticket);
    assert_eq!(d.effect(), Effect::Allow);
    assert!(!ticket.is_empty());
}
