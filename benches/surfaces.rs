//! What resource and prompt rules cost a `tools/call` that is not one of
//! them: nothing measurable. The FusionAuth benchmark policy
//! (`benches/policies/fusionauth.yaml`) as written (`fusionauth-plain`),
//! and the same policy with resource and prompt rules appended
//! (`fusionauth-rules`; both built by tests/compiled/build.rs), decide the
//! same tool calls; and, for scale, a resource read and a prompt on the
//! policy that has rules.
//!
//! Run: `cargo bench -p portcullis-compiled --bench surfaces`.
//! Instruction counts (repeatable on a loaded machine):
//! `tests/compiled/examples/surface_cost.rs`.

use std::hint::black_box;
use std::time::Duration;

use criterion::{BenchmarkId, Criterion, criterion_group, criterion_main};
use portcullis_compiled::compiled;
use portcullis_core::call::{Surface, ToolCall};
use portcullis_core::counters::{Counters, MemoryCounters, Ticket, UnixMillis};
use portcullis_core::json::Strictness;
use portcullis_core::policy::{Env, FailMode, Outcome};

/// A fixed clock, mid-minute.
const NOW: UnixMillis = UnixMillis(1_767_225_630_000);

const CALLS: &[(&str, &str, &str, Outcome)] = &[
    (
        "allow",
        "retrieveUser",
        r#"{"userId":"00000000-0000-0000-0000-000000000001"}"#,
        Outcome::Allowed,
    ),
    (
        "deny",
        "deleteUser",
        r#"{"userId":"00000000-0000-0000-0000-000000000001"}"#,
        Outcome::Check,
    ),
    (
        "regex",
        "createUser",
        r#"{"email":"jane.doe@example.com","firstName":"Jane","lastName":"Doe"}"#,
        Outcome::Allowed,
    ),
];

fn decide(c: &mut Criterion) {
    let mut g = c.benchmark_group("tools_call");
    g.warm_up_time(Duration::from_millis(500))
        .measurement_time(Duration::from_secs(2));
    for server in ["fusionauth-plain", "fusionauth-rules"] {
        let p = compiled(server).expect("compiled by build.rs");
        assert_eq!(p.governs(Surface::Resource), server == "fusionauth-rules");
        for (kind, tool, args, expect) in CALLS {
            let call = ToolCall::new(tool, args.as_bytes(), Strictness::STRICT).unwrap();
            let counters = MemoryCounters::new();
            let env = Env {
                counters: &counters,
                now: NOW,
                session: 1,
                fail_mode: FailMode::Closed,
                principal: None,
            };
            assert_eq!(
                p.decide(&call, &env, &mut Ticket::default()).outcome,
                *expect,
                "{server} {kind}"
            );
            g.bench_function(BenchmarkId::new(server, kind), |b| {
                b.iter(|| {
                    let mut ticket = Ticket::EMPTY;
                    let d = p.decide(black_box(&call), &env, &mut ticket);
                    counters.rollback(&ticket);
                    d.outcome
                })
            });
        }
    }
    g.finish();
    // For scale: a resource read and a prompt on the policy with rules.
    let mut g = c.benchmark_group("surface_request");
    g.warm_up_time(Duration::from_millis(500))
        .measurement_time(Duration::from_secs(2));
    let p = compiled("fusionauth-rules").unwrap();
    let counters = MemoryCounters::new();
    let env = Env {
        counters: &counters,
        now: NOW,
        session: 1,
        fail_mode: FailMode::Closed,
        principal: None,
    };
    for (kind, surface, name, args, expect) in [
        (
            "read_denied",
            Surface::Resource,
            "file:///etc/passwd",
            "{}",
            Outcome::Check,
        ),
        (
            "read_limited",
            Surface::Resource,
            "file:///srv/data/a.csv",
            "{}",
            Outcome::Allowed,
        ),
        (
            "prompt",
            Surface::Prompt,
            "deploy",
            r#"{"env":"dev"}"#,
            Outcome::Allowed,
        ),
    ] {
        let call = ToolCall::on(surface, name, args.as_bytes(), Strictness::STRICT).unwrap();
        assert_eq!(
            p.decide(&call, &env, &mut Ticket::default()).outcome,
            expect,
            "{kind}"
        );
        g.bench_function(kind, |b| {
            b.iter(|| {
                let mut ticket = Ticket::EMPTY;
                let d = p.decide(black_box(&call), &env, &mut ticket);
                counters.rollback(&ticket);
                d.outcome
            })
        });
    }
    g.finish();
}

criterion_group!(benches, decide);
criterion_main!(benches);
