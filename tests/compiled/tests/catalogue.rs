//! The catalogue form (DESIGN.md section 3): FusionAuth's published
//! `importRefreshTokensWithId` policy allows 30 calls per 60 s per session,
//! then denies the 31st with a clear message, in both engines.

use portcullis_compiled::{compiled, repo_path};
use portcullis_compiler::eval::Evaluator;
use portcullis_compiler::{compile, load_file};
use portcullis_core::call::ToolCall;
use portcullis_core::counters::{MemoryCounters, Ticket, UnixMillis};
use portcullis_core::json::Strictness;
use portcullis_core::policy::{Effect, Env, FailMode, Outcome, Policy};

fn engines() -> Vec<(&'static str, Box<dyn Policy>)> {
    let input = load_file(
        &repo_path("tests/fixtures/catalogue/fusionauth-catalogue.yaml"),
        None,
    )
    .unwrap();
    let set = compile(&[input])
        .into_set()
        .unwrap_or_else(|o| panic!("{}", o.render()));
    let evaluator = Evaluator::new(set.servers[0].clone(), &set.sources);
    assert_eq!(set.servers[0].dialect.name(), "catalogue");
    let native = compiled("fusionauth-catalogue").unwrap();
    vec![
        ("evaluator", Box::new(evaluator)),
        ("generated", Box::new(native)),
    ]
}

#[test]
fn thirty_per_minute_per_session_then_a_clear_denial() {
    for (engine, policy) in engines() {
        let counters = MemoryCounters::new();
        let t0 = UnixMillis::parse_rfc3339("2026-03-01T12:00:00Z").unwrap().0;
        let call = ToolCall::new(
            "importRefreshTokensWithId",
            br#"{"refreshTokens": []}"#,
            Strictness::STRICT,
        )
        .unwrap();
        let decide = |ms: i64, session: u64| {
            policy.decide(
                &call,
                &Env {
                    counters: &counters,
                    now: UnixMillis(t0 + ms),
                    session,
                    fail_mode: FailMode::Closed,
                    principal: None,
                },
                &mut Ticket::default(),
            )
        };
        for i in 0..30 {
            let d = decide(i * 1000, 1);
            assert_eq!(d.effect(), Effect::Allow, "{engine}: call {}", i + 1);
        }
        let d = decide(30_000, 1);
        assert_eq!(d.outcome, Outcome::Limit, "{engine}: the 31st call");
        assert_eq!(
            d.message("importRefreshTokensWithId"),
            "Rate limit of 30 calls to importRefreshTokensWithId per 60 seconds reached. Try again later."
        );
        // Another agent session has its own budget.
        assert_eq!(
            decide(30_000, 2).effect(),
            Effect::Allow,
            "{engine}: session 2"
        );
        // Sliding, not calendar: 59 s after the first call, still full ...
        assert_eq!(decide(59_000, 1).outcome, Outcome::Limit, "{engine}");
        // ... and once the first calls have left the window, room again.
        assert_eq!(decide(62_000, 1).effect(), Effect::Allow, "{engine}");
        let deny = policy.decide(
            &ToolCall::new("deleteTenant", b"{}", Strictness::STRICT).unwrap(),
            &Env {
                counters: &counters,
                now: UnixMillis(t0),
                session: 1,
                fail_mode: FailMode::Closed,
                principal: None,
            },
            &mut Ticket::default(),
        );
        assert_eq!(
            deny.message("deleteTenant"),
            "Tenants are deleted by humans, not agents"
        );
        let other = policy.decide(
            &ToolCall::new("retrieveUser", b"{}", Strictness::STRICT).unwrap(),
            &Env {
                counters: &counters,
                now: UnixMillis(t0),
                session: 1,
                fail_mode: FailMode::Closed,
                principal: None,
            },
            &mut Ticket::default(),
        );
        assert_eq!(other.effect(), Effect::Allow);
    }
}
