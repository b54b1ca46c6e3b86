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
//! Run: `cargo bench -p portcullis-compiled --bench decision`.

use std::hint::black_box;
use std::time::Duration;

use criterion::{BenchmarkId, Criterion, criterion_group, criterion_main};
use portcullis_compiled::{compiled, repo_path};
use portcullis_compiler::eval::Evaluator;
use portcullis_compiler::{compile, load_file};
use portcullis_core::call::ToolCall;
use portcullis_core::counters::{MemoryCounters, UnixMillis};
use portcullis_core::json::Strictness;
use portcullis_core::jsonrpc::parse_tool_call;
use portcullis_core::policy::{Env, FailMode, Outcome, Policy};
use portcullis_proxy::metrics::Metrics;

const POLICY: &str = "benches/policies/fusionauth.yaml";

/// 2026-01-01T00:00:30Z: a fixed clock, mid-minute, so every counter stays in one window.
const NOW: UnixMillis = UnixMillis(1_767_225_630_000);

/// One kind of call: a benchmark id, the tool, its arguments, the expected outcome.
struct Kind {
    id: &'static str,
    tool: &'static str,
    args: &'static str,
    expect: Outcome,
}

const KINDS: &[Kind] = &[
    // A listed tool without rules: only the global "*" rate limit applies.
    Kind {
        id: "allow",
        tool: "retrieveUser",
        args: r#"{"userId":"00000000-0000-0000-0000-000000000001"}"#,
        expect: Outcome::Allowed,
    },
    // The same, for the tools that sort first and last among the 310 (the
    // generated code dispatches on the name with one `match`).
    Kind {
        id: "allow_first",
        tool: "addUserToFamily",
        args: r#"{"familyId":"00000000-0000-0000-0000-0000000000f1","userId":"u-1"}"#,
        expect: Outcome::Allowed,
    },
    Kind {
        id: "allow_last",
        tool: "verifyRegistration",
        args: r#"{"verificationId":"YkQY5Gsyo4RlfmDciBGRmvfj3RmatUqrbjoIZ19fmw4"}"#,
        expect: Outcome::Allowed,
    },
    // delete*: an unconditional deny.
    Kind {
        id: "deny",
        tool: "deleteUser",
        args: r#"{"userId":"00000000-0000-0000-0000-000000000001"}"#,
        expect: Outcome::Check,
    },
    // A numeric bound (args.numberOfResults lte 100).
    Kind {
        id: "condition",
        tool: "searchUsers",
        args: r#"{"queryString":"email:*@example.com","numberOfResults":25,"startRow":0}"#,
        expect: Outcome::Allowed,
    },
    // A regex on args.email.
    Kind {
        id: "regex",
        tool: "createUser",
        args: r#"{"email":"jane.doe@example.com","firstName":"Jane","lastName":"Doe"}"#,
        expect: Outcome::Allowed,
    },
    // `in` a list of key algorithms.
    Kind {
        id: "in_list",
        tool: "createKey",
        args: r#"{"algorithm":"ES256","name":"signing key","length":256}"#,
        expect: Outcome::Allowed,
    },
    // import*: its own 30/minute limit plus the global one (two counters).
    Kind {
        id: "rate_limited",
        tool: "importUsers",
        args: r#"{"users":[{"email":"a@example.com"},{"email":"b@example.com"}],"validateDbConstraints":true}"#,
        expect: Outcome::Allowed,
    },
    // A spend-cap-like counter: a state read for the condition, then a reservation of args.recipientCount.
    Kind {
        id: "spend_cap",
        tool: "sendEmail",
        args: r#"{"emailTemplateId":"00000000-0000-0000-0000-0000000000e1","recipientCount":3}"#,
        expect: Outcome::Allowed,
    },
    // A hidden tool.
    Kind {
        id: "hidden",
        tool: "retrieveAPIKey",
        args: r#"{"keyId":"k1"}"#,
        expect: Outcome::Hidden,
    },
    // A tool the policy does not list (`default: deny`).
    Kind {
        id: "unknown",
        tool: "retrieveCatPictures",
        args: r#"{"count":3}"#,
        expect: Outcome::NotPermitted,
    },
];

/// A realistic `tools/call` line of about 1 KiB: a FusionAuth createUser with
/// nested objects, arrays, numbers, booleans and strings.
const RAW_LINE: &str = concat!(
    r#"{"jsonrpc":"2.0","id":4217,"method":"tools/call","params":{"name":"createUser","arguments":{"#,
    r#""email":"jane.doe@example.com","#,
    r#""applicationId":"3c219e58-ed0e-4b18-ad48-f4f92793ae32","#,
    r#""tenantId":"a1b2c3d4-e5f6-4789-8abc-def012345678","#,
    r#""sendSetPasswordEmail":false,"skipVerification":true,"disableDomainBlock":false,"#,
    r#""user":{"firstName":"Jane","lastName":"Doe","username":"jdoe","birthDate":"1990-04-12","#,
    r#""mobilePhone":"+1 303 555 0199","preferredLanguages":["en","fr"],"timezone":"America/Denver","#,
    r#""data":{"department":"Engineering","costCenter":4410,"manager":{"id":"u-1029"},"#,
    r#""tags":["beta","early-access","sso"]}},"#,
    r#""registration":{"applicationId":"3c219e58-ed0e-4b18-ad48-f4f92793ae32","#,
    r#""roles":["admin","user","auditor"],"data":{"plan":"enterprise","seats":25}},"#,
    r#""memberships":[{"groupId":"5f0c8e8a-0d7f-4a7e-9d1c-0b6f6b2f9a11"}],"#,
    r#""eventInfo":{"ipAddress":"203.0.113.42","userAgent":"AgentRuntime/1.4"},"#,
    r#""requestedAt":1767225630000,"locale":"en-US","twoFactorEnabled":false,"weight":0.75,"#,
    r#""comment":"Provisioned by the onboarding agent \u2014 ticket #88213"}}}"#
);

fn evaluator() -> Evaluator {
    let input = load_file(&repo_path(POLICY), Some(POLICY.to_string())).expect("read the policy");
    let set = compile(&[input])
        .into_set()
        .unwrap_or_else(|o| panic!("{POLICY} does not compile:\n{}", o.render()));
    let ir = set.servers[0].clone();
    Evaluator::new(ir, &set.sources)
}

fn env(counters: &MemoryCounters) -> Env<'_> {
    Env {
        counters,
        now: NOW,
        session: 1,
        fail_mode: FailMode::Closed,
        principal: None,
    }
}

/// One decision as every benchmark times it: decide, then give back what an
/// allowed call reserved, so no limit ever fills.
#[inline(always)]
fn decide_and_rollback(policy: &dyn Policy, call: &ToolCall<'_>, env: &Env<'_>) -> Outcome {
    let decision = policy.decide(black_box(call), env);
    if decision.outcome == Outcome::Allowed {
        env.counters.rollback(&decision.ticket);
    }
    black_box(decision).outcome
}

/// The two engines: the generated code and the evaluator (leaked, so both are `&'static`
/// and both are called through one `dyn Policy` indirection).
fn engines() -> [(&'static str, &'static dyn Policy); 2] {
    let generated =
        compiled("fusionauth").expect("build.rs compiled benches/policies/fusionauth.yaml");
    let evaluator: &'static Evaluator = Box::leak(Box::new(evaluator()));
    [("generated", generated), ("evaluator", evaluator)]
}

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
                let decision = policy.decide(black_box(call), &env);
                metrics.decided(
                    policy.meta(),
                    call.name(),
                    decision.outcome,
                    decision.rule.map(|r| r.0),
                );
                if decision.outcome == Outcome::Allowed {
                    env.counters.rollback(&decision.ticket);
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
