//! Decision latency on a FusionAuth-sized policy (310 tools,
//! `benches/policies/fusionauth.yaml`, written by `benches/gen_fusionauth.py`):
//! the native code build.rs generated from it against the reference
//! evaluator interpreting the same policy, side by side in one run.
//!
//! - `decide/<engine>/<kind>`: a pre-built `ToolCall` to a `Decision`.
//! - `raw_to_decision/<engine>`: a ~1 KiB `tools/call` JSON-RPC line, read
//!   strictly by `parse_tool_call`, then decided; `raw_to_decision/parse_only`
//!   is the reading alone.
//!
//! Run: `cargo bench -p portcullis-compiled --bench decision`. The same
//! calls, counted in instructions under callgrind: `benches/instructions.rs`.

use std::hint::black_box;
use std::time::Duration;

use criterion::{BenchmarkId, Criterion, criterion_group, criterion_main};
use portcullis_core::call::ToolCall;
use portcullis_core::counters::{MemoryCounters, Ticket};
use portcullis_core::json::Strictness;
use portcullis_core::jsonrpc::parse_tool_call;
use portcullis_core::policy::Outcome;
use portcullis_proxy::metrics::Metrics;

#[path = "calls.rs"]
mod calls;
use calls::{KINDS, RAW_LINE, decide_and_rollback, engines, env};

fn decide(c: &mut Criterion) {
    let calls: Vec<ToolCall<'static>> = KINDS
        .iter()
        .map(|k| {
            ToolCall::new(k.tool, k.args.as_bytes(), Strictness::STRICT)
                .unwrap_or_else(|e| panic!("{}: {e}", k.id))
        })
        .collect();
    let engines = engines();

    // Both engines must agree with the expected outcome before anything is timed.
    for (name, policy) in &engines {
        let counters = MemoryCounters::new();
        let env = env(&counters);
        for (k, call) in KINDS.iter().zip(&calls) {
            assert_eq!(
                decide_and_rollback(*policy, call, &env),
                k.expect,
                "{name} on {}",
                k.id
            );
        }
    }

    let mut group = c.benchmark_group("decide");
    group
        .warm_up_time(Duration::from_secs(1))
        .measurement_time(Duration::from_secs(2));
    for (k, call) in KINDS.iter().zip(&calls) {
        for (name, policy) in &engines {
            let counters = MemoryCounters::new();
            let env = env(&counters);
            // The rollback of an allowed call's reservations is inside the timed closure.
            group.bench_function(BenchmarkId::new(*name, k.id), |b| {
                b.iter(|| decide_and_rollback(*policy, call, &env))
            });
        }
    }
    // Every kind in turn, one decision per iteration.
    for (name, policy) in &engines {
        let counters = MemoryCounters::new();
        let env = env(&counters);
        let mut i = 0;
        group.bench_function(BenchmarkId::new(*name, "mixed"), |b| {
            b.iter(|| {
                i = if i + 1 == calls.len() { 0 } else { i + 1 };
                decide_and_rollback(*policy, &calls[i], &env)
            })
        });
    }
    // The same mix with every decision recorded in the Prometheus metrics
    // (`--metrics`), as the proxy records it: the cost of recording.
    {
        let policy = engines[0].1;
        let metrics = Metrics::new(policy.meta());
        for k in KINDS {
            metrics.register_tool(k.tool);
        }
        let counters = MemoryCounters::new();
        let env = env(&counters);
        let mut i = 0;
        group.bench_function(BenchmarkId::new("generated+metrics", "mixed"), |b| {
            b.iter(|| {
                i = if i + 1 == calls.len() { 0 } else { i + 1 };
                let call = &calls[i];
                let mut ticket = Ticket::EMPTY;
                let decision = policy.decide(black_box(call), &env, &mut ticket);
                metrics.decided(
                    policy.meta(),
                    call.name(),
                    decision.outcome,
                    decision.rule.map(|r| r.0),
                );
                if decision.outcome == Outcome::Allowed {
                    env.counters.rollback(&ticket);
                }
                black_box(decision).outcome
            })
        });
    }
    group.finish();
}

fn raw_to_decision(c: &mut Criterion) {
    let raw = RAW_LINE.as_bytes();
    assert!(
        (900..=1200).contains(&raw.len()),
        "the raw line is {} bytes, not about 1 KiB",
        raw.len()
    );
    let engines = engines();
    for (name, policy) in &engines {
        let counters = MemoryCounters::new();
        let call = parse_tool_call(raw).expect("the raw line is a valid tools/call");
        assert_eq!(
            decide_and_rollback(*policy, &call, &env(&counters)),
            Outcome::Allowed,
            "{name} on the raw line"
        );
    }

    let mut group = c.benchmark_group("raw_to_decision");
    group
        .warm_up_time(Duration::from_secs(1))
        .measurement_time(Duration::from_secs(2));
    group.bench_function("parse_only", |b| {
        b.iter(|| {
            let call = parse_tool_call(black_box(raw)).expect("valid");
            black_box(call.arguments().as_bytes().len())
        })
    });
    for (name, policy) in &engines {
        let counters = MemoryCounters::new();
        let env = env(&counters);
        // Parsing, the decision and the rollback of its reservations are all timed.
        group.bench_function(*name, |b| {
            b.iter(|| {
                let call = parse_tool_call(black_box(raw)).expect("valid");
                decide_and_rollback(*policy, &call, &env)
            })
        });
    }
    group.finish();
}

criterion_group!(benches, decide, raw_to_decision);
criterion_main!(benches);
