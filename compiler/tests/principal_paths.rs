//! `principal.*` paths (issue 14) in every front end: what compiles, what
//! each path means, and the positioned errors for what cannot mean anything
//! (`principal.nope` in YAML, members of `principal.sub`, a hide reading
//! arguments, an idempotency key made of principal paths, ...).

use portcullis_compiler::eval::Evaluator;
use portcullis_compiler::ir::{ArgPath, Expr, Operand, Partition, PrincipalField, Root};
use portcullis_compiler::{Input, Output, compile};
use portcullis_core::Principal;
use portcullis_core::call::ToolCall;
use portcullis_core::counters::{MemoryCounters, Ticket};
use portcullis_core::json::Strictness;
use portcullis_core::policy::{Env, Outcome, Policy};

fn compile_one(path: &str, text: &str) -> Output {
    compile(&[Input {
        server: "s".into(),
        path: path.into(),
        text: text.into(),
    }])
}

/// The rendered diagnostics of a policy that must not compile.
fn errors(path: &str, text: &str) -> String {
    let out = compile_one(path, text);
    assert!(!out.is_ok(), "compiled:\n{text}");
    out.render()
}

/// The condition paths of the first rule with a check.
fn first_paths(out: &Output) -> Vec<ArgPath> {
    let p = &out.policies[0];
    let r = p.rules.iter().find(|r| r.check.is_some()).expect("a check");
    let c = r.check.as_ref().unwrap();
    c.deny_when
        .tests()
        .into_iter()
        .flat_map(|t| t.operands().into_iter().cloned())
        .filter_map(|o| match o {
            Operand::Arg(a) => Some(a),
            _ => None,
        })
        .collect()
}

#[test]
fn dsl_paths_resolve_with_the_claims_shorthand() {
    let out = compile_one(
        "s.policy",
        r#"server s {
  tool t {
    deny "x" when principal.sub == "a" or principal.iss == "b" or principal.scopes contains "c"
      or principal.claims.org.team == "d" or principal.groups contains "e" or principal.claims.sub == "f"
  }
}
"#,
    );
    assert!(out.is_ok(), "{}", out.render());
    let shown: Vec<(Root, String)> = first_paths(&out)
        .iter()
        .map(|p| (p.root, p.display()))
        .collect();
    use PrincipalField::*;
    assert_eq!(
        shown,
        [
            (Root::Principal(Sub), "principal.sub".to_string()),
            (Root::Principal(Iss), "principal.iss".into()),
            (Root::Principal(Scopes), "principal.scopes".into()),
            (Root::Principal(Claims), "principal.claims.org.team".into()),
            (Root::Principal(Claims), "principal.claims.groups".into()),
            // The claim named `sub`, written out in full.
            (Root::Principal(Claims), "principal.claims.sub".into()),
        ]
    );
}

#[test]
fn dsl_membership_in_a_path_is_contains() {
    let out = compile_one(
        "s.policy",
        "server s {\n  tool t {\n    deny \"x\" when \"a\" not in principal.groups\n  }\n}\n",
    );
    assert!(out.is_ok(), "{}", out.render());
    let c = out.policies[0]
        .rules
        .iter()
        .find_map(|r| r.check.as_ref())
        .unwrap();
    assert!(
        matches!(&c.deny_when, Expr::Not(inner) if matches!(&**inner, Expr::Test(_))),
        "{:?}",
        c.deny_when
    );
}

#[test]
fn dsl_errors_are_positioned() {
    let cases = [
        (
            "server s {\n  tool t {\n    deny \"x\" when principal.sub.first == \"a\"\n  }\n}\n",
            "s.policy:3:19",
            "`principal.sub` has no members (`first`)",
        ),
        (
            "server s {\n  tool t {\n    deny \"x\" when principal.claims == \"a\"\n  }\n}\n",
            "s.policy:3:19",
            "`principal.claims` needs a claim name",
        ),
        (
            "server s {\n  hide t when args.x == 1\n}\n",
            "s.policy:2:15",
            "a hide condition may only read principal paths, not `args.x`",
        ),
        (
            "server s {\n  tool t {\n    once per 5m by principal.sub\n  }\n}\n",
            "s.policy:3:20",
            "an idempotency key is made of arguments, not principal paths",
        ),
    ];
    for (text, at, message) in cases {
        let rendered = errors("s.policy", text);
        assert!(rendered.contains(message), "{message}:\n{rendered}");
        assert!(
            rendered.contains(&format!("--> {at}\n")),
            "{at}:\n{rendered}"
        );
    }
}

#[test]
fn yaml_errors_are_positioned() {
    let intercept = |cond: &str| {
        format!(
            "version: \"1\"\ntools:\n  t:\n    rules:\n      - name: r\n        conditions:\n          - {cond}\n"
        )
    };
    let cases = [
        (
            intercept("{path: principal.nope, op: eq, value: 1}"),
            "s.yaml:7:20",
            "unknown principal path `principal.nope`",
            "for a claim write `principal.claims.nope`",
        ),
        (
            intercept("{path: principal.scopes.x, op: eq, value: 1}"),
            "s.yaml:7:20",
            "`principal.scopes` has no members (`x`)",
            "list of strings",
        ),
        (
            intercept("{path: principal., op: eq, value: 1}"),
            "s.yaml:7:20",
            "has an empty member name",
            "principal.claims.groups",
        ),
        (
            "version: \"1\"\nhide:\n  - tool: t\n    when:\n      - {path: args.x, op: eq, value: 1}\n".into(),
            "s.yaml:5:16",
            "a hide condition may only read principal paths, got \"args.x\"",
            "tools/list",
        ),
        (
            "version: \"1\"\nhide:\n  - tool: t\n    when: [{path: principal.sub, op: eq, value: a}]\n    unless: [{path: principal.sub, op: eq, value: b}]\n".into(),
            "s.yaml:5:13",
            "give `when` or `unless`, not both",
            "",
        ),
        (
            "version: \"1\"\nhide:\n  - tool: t\n    if: []\n".into(),
            "s.yaml:4:5",
            "unknown",
            "",
        ),
        (
            "version: \"1\"\ntools:\n  t:\n    rules:\n      - name: r\n        rate_limit_by: principal.sub\n".into(),
            "s.yaml:6:24",
            "there is no `rate_limit` shorthand for it to partition",
            "",
        ),
        (
            "version: \"1\"\ntools:\n  t:\n    rules:\n      - name: r\n        rate_limit: 5/hour\n        rate_limit_by: session\n".into(),
            "s.yaml:7:24",
            "a counter's `by` must be a principal or argument path",
            "",
        ),
    ];
    for (text, at, message, help) in cases {
        let rendered = errors("s.yaml", &text);
        assert!(rendered.contains(message), "{message}:\n{rendered}");
        assert!(
            rendered.contains(&format!("--> {at}\n")),
            "{at}:\n{rendered}"
        );
        assert!(rendered.contains(help), "{help}:\n{rendered}");
    }
    // The catalogue form.
    let rendered = errors(
        "s.yaml",
        "tools:\n  t:\n    rules:\n      - action: allow\n        rate_limit: {max: 1, window: 60, by: principal.claim.x}\n",
    );
    assert!(
        rendered.contains("unknown principal path `principal.claim.x`"),
        "{rendered}"
    );
    assert!(rendered.contains("--> s.yaml:5:46\n"), "{rendered}");
    let rendered = errors(
        "s.yaml",
        "tools:\n  t:\n    rules:\n      - action: allow\n        rate_limit: {max: 1, window: 60, by: everyone}\n",
    );
    assert!(
        rendered.contains("rate_limit.by: unknown partition \"everyone\""),
        "{rendered}"
    );
}

#[test]
fn yaml_partitions_and_hides_lower_to_principal_paths() {
    let out = compile_one(
        "s.yaml",
        "tools:\n  t:\n    rules:\n      - action: allow\n        rate_limit: {max: 1, window: 60, by: principal.claims.org.team}\nhide:\n  - tool: t\n    unless: [{path: principal.scopes, op: contains, value: admin}]\n",
    );
    assert!(out.is_ok(), "{}", out.render());
    let p = &out.policies[0];
    assert!(
        matches!(&p.counters[0].partition, Partition::Arg(a) if a.display() == "principal.claims.org.team")
    );
    assert!(matches!(&p.hidden[0].when, Some(Expr::Not(_))));
    // `by` also takes argument paths, in both forms.
    let out = compile_one(
        "s.yaml",
        "tools:\n  t:\n    rules:\n      - action: allow\n        rate_limit: {max: 1, window: 60, by: args.customer.id}\n",
    );
    assert!(out.is_ok(), "{}", out.render());
    assert!(
        matches!(&out.policies[0].counters[0].partition, Partition::Arg(a) if a.display() == "args.customer.id" && !a.is_principal())
    );
    let out = compile_one(
        "s.yaml",
        "version: \"1\"\ntools:\n  t:\n    rules:\n      - name: r\n        conditions:\n          - {path: state.t.n, op: lte, value: 3}\n        state: {counter: n, window: hour, by: args.customer}\n",
    );
    assert!(out.is_ok(), "{}", out.render());
    assert!(
        matches!(&out.policies[0].counters[0].partition, Partition::Arg(a) if a.display() == "args.customer")
    );
}

fn who(claims: &str) -> Principal {
    Principal::from_claims(claims.as_bytes().to_vec()).unwrap()
}

/// A missing principal or claim is a missing value, as a missing argument
/// is: comparisons with it are false, `exists` is false, `not (x in ...)`
/// holds; so `deny ... unless` fails closed and `deny ... when x != v` does not.
#[test]
fn missing_claims_are_missing_values() {
    let out = compile_one(
        "s.policy",
        r#"server s {
  tool closed { deny "no" unless principal.claims.verified == true }
  tool open { deny "no" when principal.claims.verified != true }
  tool present { deny "no" unless exists(principal.claims.verified) }
  tool group { deny "no" when not ("a" in principal.groups) }
}
"#,
    );
    assert!(out.is_ok(), "{}", out.render());
    let ev = Evaluator::new(out.policies[0].clone(), &out.sources);
    let decide = |tool: &str, p: Option<&Principal>| {
        let c = MemoryCounters::new();
        let mut env = Env::new(&c);
        env.principal = p;
        let call = ToolCall::new(tool, b"{}", Strictness::STRICT).unwrap();
        ev.decide(&call, &env, &mut Ticket::default()).outcome
    };
    let without = who(r#"{"sub":"s","iss":"i"}"#);
    let with = who(r#"{"sub":"s","iss":"i","verified":true,"groups":["a"]}"#);
    for caller in [None, Some(&without)] {
        assert_eq!(decide("closed", caller), Outcome::Check);
        assert_eq!(
            decide("open", caller),
            Outcome::Allowed,
            "`!=` with a missing value is false"
        );
        assert_eq!(decide("present", caller), Outcome::Check);
        assert_eq!(decide("group", caller), Outcome::Check);
    }
    for tool in ["closed", "open", "present", "group"] {
        assert_eq!(decide(tool, Some(&with)), Outcome::Allowed, "{tool}");
    }
}

#[test]
fn formatting_and_translation_keep_principal_paths() {
    let text = "server s {\n  hide admin_* unless \"admins\" in principal.groups\n\n  tool t {\n    deny \"x\" when principal.claims.org.team == \"a\" and \"b\" not in principal.scopes\n    limit 3 per hour by principal.sub\n  }\n}\n";
    let file =
        portcullis_compiler::syntax::dsl::parse(portcullis_compiler::source::FileId(0), text)
            .unwrap_or_else(|d| panic!("{d:?}"));
    let formatted = portcullis_compiler::syntax::dsl_fmt::format(&file, "");
    assert_eq!(formatted, text);
    // YAML -> DSL: the translated policy compiles to the same decisions' IR.
    let yaml = "version: \"1\"\nhide:\n  - tool: t\n    unless: [{path: principal.claims.sub, op: eq, value: a}]\ntools:\n  t:\n    rules:\n      - name: r\n        conditions:\n          - {path: principal.scopes, op: contains, value: w}\n        on_deny: nope\n";
    let out = compile_one("s.yaml", yaml);
    assert!(out.is_ok(), "{}", out.render());
    let dsl = portcullis_compiler::translate::translate(&out.policies[0]).unwrap();
    assert!(
        dsl.contains("hide t when not (principal.claims.sub == \"a\")"),
        "{dsl}"
    );
    assert!(dsl.contains("principal.scopes contains \"w\""), "{dsl}");
    let back = compile_one("s.policy", &dsl);
    assert!(back.is_ok(), "{dsl}\n{}", back.render());
    assert_eq!(back.policies[0].hidden, out.policies[0].hidden);
}

/// A per-caller budget formats as written, and the catalogue form's
/// translates to the language with its partition.
#[test]
fn per_caller_budgets_format_and_translate() {
    let text = "server s {\n  tool t {\n    spend <= $50 per day by principal.sub\n    spend <= 5 eur per 1h by principal.claims.team as team -> \"team budget spent\"\n  }\n}\n";
    let file =
        portcullis_compiler::syntax::dsl::parse(portcullis_compiler::source::FileId(0), text)
            .unwrap_or_else(|d| panic!("{d:?}"));
    assert_eq!(
        portcullis_compiler::syntax::dsl_fmt::format(&file, ""),
        text
    );
    let out = compile_one("s.policy", text);
    assert!(out.is_ok(), "{}", out.render());
    let yaml = "tools:\n  t:\n    rules:\n      - action: allow\n        spend: { max: 10.00, window: 86400, currency: usd, by: principal.sub }\n";
    let out = compile_one("s.yaml", yaml);
    assert!(out.is_ok(), "{}", out.render());
    let p = &out.policies[0];
    assert!(
        matches!(&p.counters[0].partition, Partition::Arg(a) if a.display() == "principal.sub")
    );
    let dsl = portcullis_compiler::translate::translate(p).unwrap();
    assert!(dsl.contains("by principal.sub"), "{dsl}");
    let back = compile_one("s.policy", &dsl);
    assert!(back.is_ok(), "{dsl}\n{}", back.render());
    assert_eq!(
        back.policies[0].counters[0].partition,
        p.counters[0].partition
    );
}
