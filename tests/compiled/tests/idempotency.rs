//! The generated code and the reference evaluator name the same idempotency
//! window for every call of `tests/fixtures/dsl/refunds.policy`: the tool's
//! own rule first, a glob block's, the wildcard's, none after a denial.

use portcullis_compiled::{compiled_dsl, repo_path};
use portcullis_compiler::eval::Evaluator;
use portcullis_compiler::{Input, compile};
use portcullis_core::call::ToolCall;
use portcullis_core::counters::{MemoryCounters, Ticket};
use portcullis_core::idempotency::IdempotencyMode;
use portcullis_core::json::Strictness;
use portcullis_core::policy::{Env, Policy};

/// A window as (milliseconds, mode, number of `by` paths).
type Window = Option<(u64, IdempotencyMode, usize)>;

#[test]
fn native_code_and_evaluator_name_the_same_window() {
    let path = repo_path("tests/fixtures/dsl/refunds.policy");
    let set = compile(&[Input {
        server: "refunds".into(),
        path: "tests/fixtures/dsl/refunds.policy".into(),
        text: std::fs::read_to_string(path).unwrap(),
    }])
    .into_set()
    .unwrap_or_else(|o| panic!("{}", o.render()));
    let evaluator = Evaluator::new(set.servers[0].clone(), &set.sources);
    let native = compiled_dsl("refunds").expect("compiled");
    let cases: [(&str, &str, Window); 6] = [
        (
            "create_refund",
            r#"{"order_id":"o1","amount":500}"#,
            Some((300_000, IdempotencyMode::Replay, 1)),
        ),
        (
            "create_refund",
            r#"{"order_id":"o1","amount":500000}"#,
            None,
        ),
        (
            "send_email",
            r#"{"to":"a@example.com"}"#,
            Some((3_600_000, IdempotencyMode::Refuse, 0)),
        ),
        (
            "read_file",
            r#"{"path":"/x"}"#,
            Some((30_000, IdempotencyMode::Replay, 0)),
        ),
        (
            "anything",
            r#"{}"#,
            Some((30_000, IdempotencyMode::Replay, 0)),
        ),
        (
            "create_refund",
            r#"{"amount":"x"}"#,
            Some((300_000, IdempotencyMode::Replay, 1)),
        ),
    ];
    for (tool, args, want) in cases {
        let call = ToolCall::new(tool, args.as_bytes(), Strictness::STRICT).unwrap();
        let (ca, cb) = (MemoryCounters::new(), MemoryCounters::new());
        let a = native.decide(&call, &Env::new(&ca), &mut Ticket::default());
        let b = evaluator.decide(&call, &Env::new(&cb), &mut Ticket::default());
        assert_eq!(a.outcome, b.outcome, "{tool} {args}");
        assert_eq!(a.idempotency, b.idempotency, "{tool} {args}");
        let got = a.idempotency.map(|s| (s.window_ms, s.mode, s.by.len()));
        assert_eq!(got, want, "{tool} {args}");
    }
    assert_eq!(native.meta().idempotency, evaluator.meta().idempotency);
    assert_eq!(native.meta().idempotency.len(), 3);
}
