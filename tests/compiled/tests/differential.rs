//! Differential property test: for every compiled policy (the conformance
//! cases Portcullis accepts, Intercept's corpus, the benchmark policies), the
//! generated native code and the reference evaluator decide random call
//! sequences identically (callers with random claims, or none, included): same effect, same outcome, same rule, same message,
//! with counters, windows and rollbacks in play. About one call in four is
//! decided as approved by a person (`decide_approved`: approval rules skipped).
//!
//! Arguments are built from the paths and constants each policy actually
//! uses, so the random calls hit its rules: missing, null, nested, wrongly
//! typed, boundary and out-of-range values, escaped and duplicate keys, and
//! keys in another letter case (`AMOUNT`, `ſ` for `s`, the Kelvin sign for
//! `k`), which both engines must match under the same folding.
//!
//! The evaluator decides in two ways (its `Policy` entry points run plans
//! prepared at load; `explain` and `test` walk the IR with a trace): the
//! traced path is held to the same calls, on counters of its own.

mod support;

use portcullis_compiled::compiled;
use portcullis_compiler::compile;
use portcullis_compiler::eval::Evaluator;
use portcullis_core::Principal;
use portcullis_core::call::ToolCall;
use portcullis_core::counters::{Counters, MemoryCounters, Ticket, UnixMillis};
use portcullis_core::json::Strictness;
use portcullis_core::policy::{Effect, Env, FailMode, Policy};
use portcullis_core::spend::Budgets;
use proptest::prelude::*;
use proptest::test_runner::{Config, TestRunner};
use support::{calls, inputs, shape};

#[test]
fn generated_code_and_evaluator_agree() {
    let mut inputs = inputs();
    inputs.extend(support::spend_inputs());
    let set = compile(&inputs)
        .into_set()
        .unwrap_or_else(|o| panic!("{}", o.render()));
    let cases_per_policy: u32 = std::env::var("PORTCULLIS_PROPTEST_CASES")
        .ok()
        .and_then(|v| v.parse().ok())
        .unwrap_or(48);
    let mut checked = 0usize;
    for ir in &set.servers {
        let native = compiled(&ir.name).unwrap_or_else(|| panic!("{} not compiled", ir.name));
        let evaluator = Evaluator::new(ir.clone(), &set.sources);
        let shape = shape(ir);
        let mut runner = TestRunner::new(Config {
            cases: cases_per_policy,
            failure_persistence: None,
            ..Config::default()
        });
        let start = UnixMillis::parse_rfc3339("2026-01-15T10:59:30Z").unwrap();
        runner
            .run(&calls(&shape), |calls| {
                let (mem_a, mem_b, mem_c) = (
                    MemoryCounters::new(),
                    MemoryCounters::new(),
                    MemoryCounters::new(),
                );
                let mut now = start.0;
                for c in &calls {
                    now += c.advance_ms;
                    let tool = &shape.tools[c.tool];
                    let call = ToolCall::new(tool, c.args.as_bytes(), Strictness::LENIENT)
                        .expect("generated args are valid JSON");
                    // A claim path may spell `sub` or `iss` with a non-string:
                    // no principal then, as a token without them makes none.
                    let principal = c
                        .claims
                        .as_ref()
                        .and_then(|t| Principal::from_claims(t.clone().into_bytes()).ok());
                    prop_assert_eq!(
                        native.is_hidden(tool, principal.as_ref()),
                        evaluator.is_hidden(tool, principal.as_ref()),
                        "is_hidden {:?} claims {:?}",
                        tool,
                        c.claims
                    );
                    prop_assert_eq!(
                        evaluator.is_hidden(tool, principal.as_ref()),
                        evaluator.hiding(tool, principal.as_ref()).is_some(),
                        "is_hidden (traced) {:?} claims {:?}",
                        tool,
                        c.claims
                    );
                    // The arguments the proxy resolves through symlinks.
                    let path_args = |p: &dyn Policy| {
                        let mut v: Vec<Vec<String>> = Vec::new();
                        p.path_args(tool, &mut |a| {
                            v.push(a.iter().map(|s| s.to_string()).collect())
                        });
                        v.sort();
                        v.dedup();
                        v
                    };
                    prop_assert_eq!(
                        path_args(native),
                        path_args(&evaluator),
                        "path_args {:?}",
                        tool
                    );
                    let env_a = Env {
                        counters: &mem_a,
                        now: UnixMillis(now),
                        session: 7,
                        fail_mode: FailMode::Closed,
                        principal: principal.as_ref(),
                    };
                    let env_b = Env {
                        counters: &mem_b,
                        now: UnixMillis(now),
                        session: 7,
                        fail_mode: FailMode::Closed,
                        principal: principal.as_ref(),
                    };
                    let env_c = Env {
                        counters: &mem_c,
                        ..env_b
                    };
                    // The budgets a price would be checked against: the
                    // same counters and partitions (per caller included),
                    // the same refusal for a caller without the value.
                    let (mut ba, mut bb) = (Budgets::new(), Budgets::new());
                    native.spend(&call, &env_a, &mut ba);
                    evaluator.spend(&call, &env_b, &mut bb);
                    prop_assert!(
                        support::same_budgets(&ba, &bb),
                        "spend {:?} args {} claims {:?}: generated {:?}\nevaluator {:?}",
                        tool,
                        c.args,
                        c.claims,
                        ba,
                        bb
                    );
                    // Approved calls: a deterministic quarter of them.
                    let approved = c.advance_ms % 4 == 0;
                    let (mut ta, mut tb, mut tc) = (Ticket::EMPTY, Ticket::EMPTY, Ticket::EMPTY);
                    let (a, b, traced) = if approved {
                        (
                            native.decide_approved(&call, &env_a, &mut ta),
                            evaluator.decide_approved(&call, &env_b, &mut tb),
                            evaluator.decide_approved_traced(&call, &env_c, &mut tc, &mut |_| {}),
                        )
                    } else {
                        (
                            native.decide(&call, &env_a, &mut ta),
                            evaluator.decide(&call, &env_b, &mut tb),
                            evaluator.decide_traced(&call, &env_c, &mut tc, &mut |_| {}),
                        )
                    };
                    prop_assert_eq!(
                        (b.outcome, b.rule, b.message, b.idempotency),
                        (
                            traced.outcome,
                            traced.rule,
                            traced.message,
                            traced.idempotency
                        ),
                        "traced: tool {:?} args {} claims {:?} approved {}",
                        tool,
                        c.args,
                        c.claims,
                        approved
                    );
                    if approved {
                        prop_assert!(a.effect() != Effect::Approve, "an approved call asks again");
                    }
                    prop_assert_eq!(
                        a.outcome,
                        b.outcome,
                        "tool {:?} args {} claims {:?} approved {}",
                        tool,
                        c.args,
                        c.claims,
                        approved
                    );
                    prop_assert_eq!(
                        a.rule,
                        b.rule,
                        "tool {:?} args {} claims {:?} approved {}",
                        tool,
                        c.args,
                        c.claims,
                        approved
                    );
                    prop_assert_eq!(a.message(tool), b.message(tool));
                    prop_assert_eq!(a.idempotency, b.idempotency, "tool {:?}", tool);
                    if a.effect() == Effect::Allow {
                        match c.upstream {
                            0 => {
                                mem_a.rollback(&ta);
                                mem_b.rollback(&tb);
                                mem_c.rollback(&tc);
                            }
                            1 => {}
                            _ => {
                                mem_a.commit(&ta);
                                mem_b.commit(&tb);
                                mem_c.commit(&tc);
                            }
                        }
                    }
                }
                Ok(())
            })
            .unwrap_or_else(|e| panic!("{}: {e}", ir.name));
        checked += 1;
    }
    assert!(checked > 100, "only {checked} policies checked");
}
