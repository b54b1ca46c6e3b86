//! Budgets on paid tools (MPP): every dialect lowers to the same budgets, and
//! the generated code and the reference evaluator expose the same budgets
//! for a call (rule, currency, amounts in micro-units, counter and partition).

use portcullis_compiled::{compiled, repo_path};
use portcullis_compiler::eval::Evaluator;
use portcullis_compiler::{Input, compile};
use portcullis_core::Principal;
use portcullis_core::counters::{MemoryCounters, UnixMillis};
use portcullis_core::jsonrpc::parse_tool_call;
use portcullis_core::policy::{Env, FailMode, Policy};
use portcullis_core::spend::{Budget, Budgets};

fn evaluator(file: &str) -> Evaluator {
    let path = repo_path(&format!("tests/fixtures/spend/{file}"));
    let text = std::fs::read_to_string(&path).unwrap();
    let server = file.split('.').next().unwrap().to_string();
    let out = compile(&[Input {
        server,
        path: path.display().to_string(),
        text,
    }]);
    let set = match out.into_set() {
        Ok(s) => s,
        Err(o) => panic!("{}", o.render()),
    };
    Evaluator::new(set.servers[0].clone(), &set.sources)
}

fn budgets(p: &dyn Policy, tool: &str, args: &str, session: u64) -> Vec<Budget> {
    budgets_of(p, tool, args, session, None)
}

fn budgets_of(
    p: &dyn Policy,
    tool: &str,
    args: &str,
    session: u64,
    principal: Option<&Principal>,
) -> Vec<Budget> {
    let line = format!(
        r#"{{"jsonrpc":"2.0","id":1,"method":"tools/call","params":{{"name":"{tool}","arguments":{args}}}}}"#
    );
    let call = parse_tool_call(line.as_bytes()).unwrap();
    let counters = MemoryCounters::new();
    let env = Env {
        counters: &counters,
        now: UnixMillis(0),
        session,
        fail_mode: FailMode::Closed,
        principal,
    };
    let mut out = Budgets::new();
    p.spend(&call, &env, &mut out);
    out.iter().copied().collect()
}

/// Budgets compared field by field; counter specs by key and window (the
/// two engines hold them in different statics).
fn same(a: &[Budget], b: &[Budget]) -> bool {
    a.len() == b.len()
        && a.iter().zip(b).all(|(x, y)| {
            x.rule == y.rule
                && x.currency == y.currency
                && x.per_call == y.per_call
                && x.message == y.message
                && x.no_partition == y.no_partition
                && match (x.window, y.window) {
                    (None, None) => true,
                    (Some(v), Some(w)) => {
                        v.max == w.max
                            && v.counter.partition == w.counter.partition
                            && v.counter.spec.key == w.counter.spec.key
                            && v.counter.spec.window == w.counter.spec.window
                    }
                    _ => false,
                }
        })
}

#[test]
fn both_engines_expose_the_same_budgets() {
    let calls = [
        ("generate_image", r#"{"project":"apollo"}"#, 1),
        ("generate_image", r#"{"project":"gemini"}"#, 2),
        ("render_video", r#"{"project":"apollo"}"#, 1),
        ("render_video", r#"{}"#, 1),
        ("translate", r#"{}"#, 1),
        ("unlisted", r#"{}"#, 1),
    ];
    for file in [
        "paid-intercept.yaml",
        "paid-catalogue.yaml",
        "paid-dsl.policy",
    ] {
        let server = file.split('.').next().unwrap();
        let native = compiled(server).expect("compiled");
        let eval = evaluator(file);
        for (tool, args, session) in calls {
            let (n, e) = (
                budgets(native, tool, args, session),
                budgets(&eval, tool, args, session),
            );
            assert!(
                same(&n, &e),
                "{file} {tool} {args}: generated {n:?}\nevaluator {e:?}"
            );
        }
    }
}

#[test]
fn the_budgets_say_what_the_policies_say() {
    let i = evaluator("paid-intercept.yaml");
    let b = budgets(&i, "generate_image", "{}", 1);
    assert_eq!(b.len(), 2, "{b:?}");
    assert_eq!((b[0].currency, b[0].per_call), (None, Some(500_000)));
    assert_eq!(b[0].window.unwrap().max, 50_000_000);
    assert_eq!(b[1].window.unwrap().max, 200_000_000);
    assert_eq!(budgets(&i, "anything", "{}", 1).len(), 1);

    let c = evaluator("paid-catalogue.yaml");
    let b = budgets(&c, "generate_image", "{}", 1);
    assert_eq!(b.len(), 1);
    assert_eq!((b[0].currency, b[0].per_call), (Some("usd"), Some(500_000)));
    assert_eq!(b[0].window.unwrap().max, 50_000_000);

    let d = evaluator("paid-dsl.policy");
    let b = budgets(&d, "render_video", r#"{"project":"apollo"}"#, 9);
    assert_eq!(b.len(), 3);
    assert_eq!((b[0].currency, b[0].per_call), (Some("usd"), Some(500_000)));
    assert_eq!(b[1].window.unwrap().counter.partition, 9, "by session");
    assert_eq!(b[2].currency, Some("eur"));
    assert_eq!(b[2].message, "project budget spent");
    let other = budgets(&d, "render_video", r#"{"project":"gemini"}"#, 9);
    assert_ne!(
        b[2].window.unwrap().counter.partition,
        other[2].window.unwrap().counter.partition,
        "by args.project"
    );
    assert!(budgets(&d, "translate", "{}", 1).is_empty());
}

fn who(claims: &str) -> Principal {
    Principal::from_claims(claims.as_bytes().to_vec()).unwrap()
}

/// Budgets per caller in every dialect: the window's partition is the
/// caller's (issuer and subject together for `principal.sub`), both engines
/// agree, and a caller without the value gets a budget with no counter that
/// refuses every price, naming why.
#[test]
fn per_caller_budgets_partition_by_the_caller_in_every_dialect() {
    let alice = who(r#"{"sub":"alice","iss":"https://idp.example","team":"studio"}"#);
    let bob = who(r#"{"sub":"bob","iss":"https://idp.example","team":"studio"}"#);
    let alice_elsewhere = who(r#"{"sub":"alice","iss":"https://other.example"}"#);
    let callers = [Some(&alice), Some(&bob), Some(&alice_elsewhere), None];
    for file in [
        "paid-caller.policy",
        "paid-caller-catalogue.yaml",
        "paid-caller-intercept.yaml",
    ] {
        let server = file.split('.').next().unwrap();
        let native = compiled(server).expect("compiled");
        let eval = evaluator(file);
        for tool in ["generate_image", "render_video", "other"] {
            for caller in callers {
                let (n, e) = (
                    budgets_of(native, tool, "{}", 1, caller),
                    budgets_of(&eval, tool, "{}", 1, caller),
                );
                assert!(
                    same(&n, &e),
                    "{file} {tool} {caller:?}: generated {n:?}\nevaluator {e:?}"
                );
            }
        }
        // The image budget: per call for everyone, per day per caller.
        let image = |caller| {
            let b = budgets_of(native, "generate_image", "{}", 1, caller);
            let windowed: Vec<Budget> = b
                .into_iter()
                .filter(|b| b.per_call.is_none() || b.window.is_some() || b.no_partition.is_some())
                .collect();
            *windowed.last().unwrap()
        };
        let partition = |caller| image(caller).window.expect("a counter").counter.partition;
        let (a, b, c) = (
            partition(Some(&alice)),
            partition(Some(&bob)),
            partition(Some(&alice_elsewhere)),
        );
        assert!(
            a != b && a != c && b != c,
            "{file}: one budget per issuer and subject"
        );
        assert_eq!(a, partition(Some(&alice)), "{file}: stable");
        let none = image(None);
        assert!(none.window.is_none(), "{file}: no counter without a caller");
        let why = none.no_partition.expect("a refusal");
        assert!(
            why.contains("the budget counts per principal.sub and the caller has none"),
            "{file}: {why}"
        );
    }
    let d = evaluator("paid-caller.policy");
    let team = |p: &Principal| budgets_of(&d, "render_video", "{}", 1, Some(p))[0];
    assert_eq!(
        team(&alice).window.unwrap().counter.partition,
        team(&bob).window.unwrap().counter.partition,
        "by principal.claims.team: one budget per team"
    );
    assert_eq!(
        team(&alice_elsewhere).no_partition,
        Some("the budget counts per principal.claims.team and the caller has none")
    );
}

/// A partition spelled wrongly, or with nothing to partition, is a
/// positioned error in both YAML forms.
#[test]
fn per_caller_budget_errors_are_positioned() {
    let e = errors(
        "p",
        "p.yaml",
        "version: \"1\"\ntools:\n  t:\n    rules:\n      - name: b\n        spend: {per_call: 1, by: principal.sub}\n",
    );
    assert!(
        e.contains("spend.by: there is no `daily` budget for it to partition"),
        "{e}"
    );
    assert!(e.contains("--> p.yaml:6:"), "{e}");
    let e = errors(
        "p",
        "p.yaml",
        "version: \"1\"\ntools:\n  t:\n    rules:\n      - name: b\n        spend: {daily: 1, by: principal.nope}\n",
    );
    assert!(e.contains("principal.nope"), "{e}");
    assert!(e.contains("--> p.yaml:6:"), "{e}");
    let e = errors(
        "p",
        "p.yaml",
        "tools:\n  t:\n    rules:\n      - action: allow\n        spend: { per_call: 1, by: principal.sub }\n",
    );
    assert!(e.contains("spend.by without `max`"), "{e}");
    assert!(e.contains("--> p.yaml:5:"), "{e}");
    let e = errors(
        "p",
        "p.yaml",
        "tools:\n  t:\n    rules:\n      - action: allow\n        spend: { max: 1, window: 60, by: caller }\n",
    );
    assert!(e.contains("spend.by: unknown partition \"caller\""), "{e}");
    assert!(e.contains("--> p.yaml:5:"), "{e}");
}

fn errors(server: &str, path: &str, text: &str) -> String {
    let out = compile(&[Input {
        server: server.into(),
        path: path.into(),
        text: text.into(),
    }]);
    match out.into_set() {
        Ok(_) => String::new(),
        Err(o) => o.render(),
    }
}

#[test]
fn amounts_that_cannot_be_exact_and_unknown_keys_are_compile_errors() {
    let intercept = |spend: &str| {
        errors(
            "p",
            "p.yaml",
            &format!(
                "version: \"1\"\ntools:\n  t:\n    rules:\n      - name: b\n        spend: {spend}\n"
            ),
        )
    };
    assert!(intercept("{per_call: 0.50, daily: 50}").is_empty());
    let e = intercept("{per_call: 0.0000001}");
    assert!(e.contains("more precise than a millionth"), "{e}");
    let e = intercept("{per_call: -1}");
    assert!(e.contains("not a plain decimal amount"), "{e}");
    let e = intercept("{per_call: 1e2}");
    assert!(e.contains("not a plain decimal amount"), "{e}");
    let e = intercept("{per_cal: 0.50}");
    assert!(
        e.contains("unknown key `per_cal`") && e.contains("per_call"),
        "{e}"
    );
    let e = intercept("{}");
    assert!(e.contains("needs `per_call`, `daily` or both"), "{e}");
    let e = errors(
        "p",
        "p.yaml",
        "version: \"1\"\ntools:\n  t:\n    rules:\n      - name: b\n        rate_limit: 5/hour\n        spend: {daily: 5}\n",
    );
    assert!(!e.is_empty());
    let dsl = |rule: &str| {
        errors(
            "p",
            "p.policy",
            &format!("server p {{\n  tool t {{\n    {rule}\n  }}\n}}\n"),
        )
    };
    assert!(dsl("spend <= $0.50 per call").is_empty());
    let e = dsl("spend <= $0.0000001 per call");
    assert!(e.contains("more precise"), "{e}");
    let e = dsl("spend <= 5 doge per day");
    assert!(e.contains("unknown currency `doge`"), "{e}");
    let cat = errors(
        "p",
        "p.yaml",
        "tools:\n  t:\n    rules:\n      - action: allow\n        spend: { max: 5 }\n",
    );
    assert!(cat.contains("window"), "{cat}");
}

/// The sample test file replays prices and duplicates against the generated
/// code and the reference evaluator alike, and exercises every budget and
/// window rule.
/// The per-caller sample replays prices with `principal:` blocks on both
/// engines: each caller's own budget, the shared per-call ceiling, the
/// refusal without a caller, one budget per team.
#[test]
fn the_paid_caller_tests_pass_on_both_engines_with_full_coverage() {
    use portcullis_compiler::policy_tests::{TestSource, run_suite};
    let inputs: Vec<Input> = portcullis_compiler::load_dir(
        &repo_path("tests/fixtures/spend"),
        Some("tests/fixtures/spend"),
    )
    .unwrap()
    .into_iter()
    .filter(|i| i.server == "paid-caller")
    .collect();
    let set = compile(&inputs)
        .into_set()
        .unwrap_or_else(|o| panic!("{}", o.render()));
    let path = "tests/fixtures/spend/paid-caller.test.yaml";
    let tests = [TestSource {
        path: path.into(),
        text: std::fs::read_to_string(repo_path(path)).unwrap(),
    }];
    let report = run_suite(&set, &tests, &compiled, true);
    assert!(report.ok(), "{}", report.text);
    assert!(
        report
            .text
            .contains("paid-caller.policy (compiled + evaluator)"),
        "{}",
        report.text
    );
    assert_eq!(report.passed, 4, "{}", report.text);
    let c = report.coverage.unwrap();
    assert_eq!(c.covered, c.total, "{:#?}", c.uncovered);
}

#[test]
fn the_paid_once_tests_pass_on_both_engines_with_full_coverage() {
    use portcullis_compiler::policy_tests::{TestSource, run_suite};
    // The same inputs, with the same display paths, as the build script:
    // the digests match, so the compiled policy runs too.
    let inputs: Vec<Input> = portcullis_compiler::load_dir(
        &repo_path("tests/fixtures/spend"),
        Some("tests/fixtures/spend"),
    )
    .unwrap()
    .into_iter()
    .filter(|i| i.server == "paid-once")
    .collect();
    let set = compile(&inputs)
        .into_set()
        .unwrap_or_else(|o| panic!("{}", o.render()));
    let path = "tests/fixtures/spend/paid-once.test.yaml";
    let tests = [TestSource {
        path: path.into(),
        text: std::fs::read_to_string(repo_path(path)).unwrap(),
    }];
    let report = run_suite(&set, &tests, &compiled, true);
    assert!(report.ok(), "{}", report.text);
    assert!(
        report
            .text
            .contains("paid-once.policy (compiled + evaluator)"),
        "{}",
        report.text
    );
    assert_eq!(report.passed, 6, "{}", report.text);
    let c = report.coverage.unwrap();
    assert_eq!((c.covered, c.total), (4, 4), "{:#?}", c.uncovered);
}
