//! `portcullis translate`: every policy of Intercept's corpus, every
//! conformance policy Portcullis accepts, the benchmark and catalogue
//! policies translate to the policy language, compile, and decide random
//! call sequences exactly like the YAML original (effect, outcome, message),
//! counters and windows included. The formatter is checked on the way:
//! formatting a translation changes nothing.

mod support;

use portcullis_compiler::eval::Evaluator;
use portcullis_compiler::source::FileId;
use portcullis_compiler::syntax::{dsl, dsl_fmt};
use portcullis_compiler::translate::translate;
use portcullis_compiler::{Input, compile};
use portcullis_core::Principal;
use portcullis_core::call::ToolCall;
use portcullis_core::counters::{Counters, MemoryCounters, Ticket, UnixMillis};
use portcullis_core::json::Strictness;
use portcullis_core::policy::{Effect, Env, FailMode, Policy};
use proptest::prelude::*;
use proptest::test_runner::{Config, TestRunner};
use support::{calls, inputs, shape};

#[test]
fn translations_decide_like_their_originals() {
    let cases: u32 = std::env::var("PORTCULLIS_PROPTEST_CASES")
        .ok()
        .and_then(|v| v.parse().ok())
        .unwrap_or(24);
    let mut translated = 0;
    for input in inputs() {
        let set = compile(std::slice::from_ref(&input))
            .into_set()
            .unwrap_or_else(|o| panic!("{}", o.render()));
        let original = &set.servers[0];
        if original.approvals.is_some() {
            // The webhook block has no policy-language form: refused, not dropped.
            let e = translate(original).expect_err(&input.path);
            assert!(
                e.0.contains("`approvals:` block"),
                "{}: {}",
                input.path,
                e.0
            );
            continue;
        }
        let text = translate(original).unwrap_or_else(|e| panic!("{}: {e}", input.path));
        // Canonical already: the formatter leaves it as it is.
        let parsed = dsl::parse(FileId(0), &text)
            .unwrap_or_else(|d| panic!("{}: {d:#?}\n{text}", input.path));
        assert_eq!(
            dsl_fmt::format(&parsed, &text),
            text,
            "{}: fmt changed the translation",
            input.path
        );
        let dsl_input = Input {
            server: input.server.clone(),
            path: format!("{}.policy", input.server),
            text: text.clone(),
        };
        let dsl_set = compile(std::slice::from_ref(&dsl_input))
            .into_set()
            .unwrap_or_else(|o| {
                panic!(
                    "{}: the translation does not compile:\n{}\n{text}",
                    input.path,
                    o.render()
                )
            });
        let (a, b) = (
            Evaluator::new(original.clone(), &set.sources),
            Evaluator::new(dsl_set.servers[0].clone(), &dsl_set.sources),
        );
        let shape = shape(original);
        let mut runner = TestRunner::new(Config {
            cases,
            failure_persistence: None,
            ..Config::default()
        });
        let start = UnixMillis::parse_rfc3339("2026-01-15T10:59:30Z").unwrap();
        runner
            .run(&calls(&shape), |calls| {
                let (ma, mb) = (MemoryCounters::new(), MemoryCounters::new());
                let mut now = start.0;
                for c in &calls {
                    now += c.advance_ms;
                    let tool = &shape.tools[c.tool];
                    let call = ToolCall::new(tool, c.args.as_bytes(), Strictness::LENIENT).unwrap();
                    let principal = c
                        .claims
                        .as_ref()
                        .and_then(|t| Principal::from_claims(t.clone().into_bytes()).ok());
                    let (mut ta, mut tb) = (Ticket::EMPTY, Ticket::EMPTY);
                    let da = a.decide(
                        &call,
                        &Env {
                            counters: &ma,
                            now: UnixMillis(now),
                            session: 3,
                            fail_mode: FailMode::Closed,
                            principal: principal.as_ref(),
                        },
                        &mut ta,
                    );
                    let db = b.decide(
                        &call,
                        &Env {
                            counters: &mb,
                            now: UnixMillis(now),
                            session: 3,
                            fail_mode: FailMode::Closed,
                            principal: principal.as_ref(),
                        },
                        &mut tb,
                    );
                    prop_assert_eq!(da.outcome, db.outcome, "tool {:?} args {}", tool, c.args);
                    prop_assert_eq!(
                        da.message(tool),
                        db.message(tool),
                        "tool {:?} args {}",
                        tool,
                        c.args
                    );
                    prop_assert_eq!(
                        a.is_hidden(tool, principal.as_ref()),
                        b.is_hidden(tool, principal.as_ref())
                    );
                    if da.effect() == Effect::Allow {
                        if c.upstream == 0 {
                            ma.rollback(&ta);
                            mb.rollback(&tb);
                        } else {
                            ma.commit(&ta);
                            mb.commit(&tb);
                        }
                    }
                }
                Ok(())
            })
            .unwrap_or_else(|e| panic!("{}: {e}\n{text}", input.path));
        translated += 1;
    }
    assert!(translated > 100, "only {translated} policies translated");
}

#[test]
fn a_translation_reads_well() {
    let input = portcullis_compiler::load_file(
        &portcullis_compiled::repo_path("tests/corpus/intercept/servers/valid_policy.yaml"),
        Some("valid_policy.yaml".into()),
    )
    .unwrap();
    let set = compile(&[input]).into_set().unwrap();
    let text = translate(&set.servers[0]).unwrap();
    assert!(
        text.contains("limit sum(args.amount) <= 999999 per day"),
        "{text}"
    );
}
