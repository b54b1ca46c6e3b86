//! Intercept's behavioural cases (`tests/conformance/intercept-conformance.yaml`),
//! run against BOTH the reference evaluator and the generated native code.
//!
//! `core` cases must match Intercept exactly. `quirk` cases are where
//! Intercept is unsafe or surprising; each has an asserted Portcullis outcome
//! below, and every divergence is listed in `docs/policy-yaml.md`.

use std::collections::BTreeMap;

use portcullis_compiled::{compiled, repo_path};
use portcullis_compiler::eval::Evaluator;
use portcullis_compiler::source::{FileId, Origin};
use portcullis_compiler::syntax::yaml::{self, Node, NodeValue};
use portcullis_compiler::{Input, compile};
use portcullis_core::call::ToolCall;
use portcullis_core::counters::{Counters, MemoryCounters, Ticket, UnixMillis};
use portcullis_core::json::{Strictness, Val, Value, validate};
use portcullis_core::jsonrpc::parse_tool_call;
use portcullis_core::policy::{Effect, Env, FailMode, Policy};
use portcullis_proxy::filter::filter_tools_list;

/// What a call came to.
#[derive(Debug, Clone, PartialEq, Eq)]
enum Seen {
    Allow,
    Deny(String),
    /// Refused before evaluation with this JSON-RPC error code (never forwarded).
    Rejected(i32),
}

fn deny(m: &str) -> Seen {
    Seen::Deny(m.to_string())
}

/// Portcullis's asserted outcome for a quirk case.
enum Quirk {
    /// Same behaviour as Intercept (the case's own expectations hold).
    AsIntercept,
    /// The policy is rejected; each text appears in some error.
    Invalid(&'static [&'static str]),
    /// The case's calls, with these outcomes instead.
    Calls(Vec<Seen>),
    /// The policy is accepted, and this script of calls behaves as given.
    Script(Vec<(&'static str, Seen)>),
    /// tools/list filtering: names kept, nextCursor, result keys.
    List(&'static [&'static str], &'static [&'static str]),
}

const INVALID_AMOUNT: &str =
    "Invalid amount for \"cap\": args.amount must be a whole number from 0 to 9223372036854775807";

fn quirk(id: &str) -> Quirk {
    use Seen::*;
    match id {
        "val-rate-limit-conflict-hides-other-errors" => Quirk::Invalid(&[
            "rate_limit cannot be combined with conditions or state",
            "rule must have a name",
            "path must start with \"args.\" or \"state.\", got \"bad.path\"",
            "unknown operator \"bogus\"",
        ]),
        "val-rate-limit-dotted-tool-name" => {
            let mut s: Vec<(&str, Seen)> = (0..5).map(|_| ("github.create_issue", Allow)).collect();
            s.push((
                "github.create_issue",
                deny("Rate limit of 5 per hour reached. Try again later."),
            ));
            Quirk::Script(s)
        }
        "val-unknown-fields-ignored" => {
            Quirk::Invalid(&["unknown key `defualt`", "unknown key `on-deny`"])
        }
        "val-rate-limit-plus-sign-and-leading-zero" => Quirk::AsIntercept,
        "eval-default-deny-star-tool-name" => Quirk::Calls(vec![
            deny("Tool \"*\" is not permitted by policy"),
            deny("Tool \"real_tool\" is not permitted by policy"),
        ]),
        "eval-empty-tool-name" => Quirk::Calls(vec![Rejected(-32602)]),
        "list-rebuild-drops-extra-result-fields" => Quirk::List(&["b"], &["tools", "_meta"]),
        "op-eq-cross-type-stringification" => Quirk::Calls(vec![
            Allow,
            Allow,
            deny("ne"),
            Allow,
            deny("ne"),
            Allow,
            Allow,
            Allow,
            deny("ne"),
        ]),
        "op-yaml-scalar-typing" => Quirk::Invalid(&[
            "ambiguous value `2026-01-01`",
            "ambiguous value `017`",
            "ambiguous value `1_000`",
        ]),
        "op-in-cross-type" | "op-contains-list-cross-type" => Quirk::AsIntercept,
        "op-numeric-large-integer-precision" => Quirk::Calls(vec![deny("over"), deny("over")]),
        "state-limit-with-fractional-value" => {
            Quirk::Invalid(&["the limit of counter `c` is not a whole number"])
        }
        "state-increment-from-fraction-truncated" => Quirk::Calls(vec![
            deny(INVALID_AMOUNT),
            deny(INVALID_AMOUNT),
            deny(INVALID_AMOUNT),
            deny(INVALID_AMOUNT),
            deny(INVALID_AMOUNT),
            Allow,
        ]),
        "state-increment-from-negative-refunds-quota" => Quirk::Calls(vec![
            Allow,
            deny("cap"),
            deny(INVALID_AMOUNT),
            deny("cap"),
            deny("cap"),
        ]),
        "state-increment-from-huge-amount-wraps" => {
            Quirk::Calls(vec![deny(INVALID_AMOUNT), deny("cap")])
        }
        "state-counter-without-lt-lte-never-counts" => Quirk::Invalid(&[
            "counter `state.gte.c` is never incremented",
            "counter `state.argsonly.c` is never incremented",
            "counter `state.gt.c` is never incremented",
        ]),
        "state-two-segment-path-never-enforced" => {
            Quirk::Invalid(&["state path `state.calls` names no tool"])
        }
        "rpc-notification-tools-call-answered" => Quirk::Calls(vec![Rejected(-32600)]),
        "rpc-malformed-params-bypass" => Quirk::Calls(vec![Rejected(-32602); 4]),
        "rpc-case-insensitive-keys-bypass" => Quirk::Calls(vec![
            Rejected(-32602),
            Rejected(-32600),
            Rejected(-32602),
            Rejected(-32600),
        ]),
        "rpc-stdio-batch-bypass" => Quirk::Calls(vec![deny("no deletes")]),
        other => panic!("quirk case `{other}` has no asserted Portcullis outcome"),
    }
}

struct Case {
    id: String,
    tier: String,
    policy: String,
    node: Node,
}

fn text<'n>(n: &'n Node, key: &str) -> Option<&'n str> {
    n.get(key).and_then(|v| v.scalar()).map(|s| s.text.as_str())
}

fn load() -> (UnixMillis, Vec<Case>) {
    let path = repo_path("tests/conformance/intercept-conformance.yaml");
    let src = std::fs::read_to_string(&path).unwrap();
    let root = yaml::parse(FileId(0), &src).unwrap().unwrap();
    let clock = UnixMillis::parse_rfc3339(text(&root, "default_clock").unwrap()).unwrap();
    let NodeValue::Seq(items) = &root.get("cases").unwrap().value else {
        panic!()
    };
    let cases = items
        .iter()
        .map(|c| Case {
            id: text(c, "id").unwrap().to_string(),
            tier: text(c, "tier").unwrap().to_string(),
            policy: text(c, "policy").unwrap().to_string(),
            node: c.clone(),
        })
        .collect();
    (clock, cases)
}

fn compile_case(case: &Case) -> portcullis_compiler::Output {
    compile(&[Input {
        server: case.id.clone(),
        path: format!("conformance/{}.yaml", case.id),
        text: case.policy.clone(),
    }])
}

/// The two engines for a case: the evaluator and the generated code.
fn engines(case: &Case) -> Vec<(&'static str, Box<dyn Policy>)> {
    let set = compile_case(case)
        .into_set()
        .unwrap_or_else(|o| panic!("{}: {}", case.id, o.render()));
    let ir = set.servers[0].clone();
    let evaluator = Evaluator::new(ir, &set.sources);
    let native =
        compiled(&case.id).unwrap_or_else(|| panic!("{} was not compiled by build.rs", case.id));
    vec![
        ("evaluator", Box::new(evaluator)),
        ("generated", Box::new(native)),
    ]
}

struct CallSpec {
    tool: Option<String>,
    args: Option<String>,
    line: Option<String>,
    at: Option<UnixMillis>,
    upstream: String,
}

fn call_specs(case: &Case) -> Vec<CallSpec> {
    let Some(NodeValue::Seq(calls)) = case.node.get("calls").map(|c| &c.value) else {
        return Vec::new();
    };
    calls
        .iter()
        .map(|c| CallSpec {
            tool: text(c, "tool").map(str::to_string),
            args: text(c, "args").map(str::to_string),
            line: text(c, "line").map(str::to_string),
            at: text(c, "at").map(|t| UnixMillis::parse_rfc3339(t).unwrap()),
            upstream: text(c, "upstream").unwrap_or("ok").to_string(),
        })
        .collect()
}

fn expected_calls(case: &Case) -> Vec<Seen> {
    let Some(NodeValue::Seq(calls)) = case.node.get("calls").map(|c| &c.value) else {
        return Vec::new();
    };
    calls
        .iter()
        .map(|c| match text(c, "expect").unwrap() {
            "allow" => Seen::Allow,
            "deny" => deny(text(c, "message").unwrap()),
            other => panic!("{}: core case expects {other}", case.id),
        })
        .collect()
}

fn decide(
    policy: &dyn Policy,
    counters: &MemoryCounters,
    now: UnixMillis,
    call: &ToolCall<'_>,
    upstream: &str,
) -> Seen {
    let env = Env {
        counters,
        now,
        session: 1,
        fail_mode: FailMode::Closed,
        principal: None,
    };
    let mut ticket = Ticket::EMPTY;
    let d = policy.decide(call, &env, &mut ticket);
    match d.effect() {
        Effect::Allow => {
            match upstream {
                "error" => counters.rollback(&ticket),
                "none" => {}
                _ => counters.commit(&ticket),
            }
            Seen::Allow
        }
        Effect::Deny => Seen::Deny(d.message(call.name()).into_owned()),
        // Not forwarded either (no conformance case has approval rules yet).
        Effect::Approve => Seen::Deny(format!("[APPROVAL REQUIRED] {}", d.message)),
    }
}

fn run(policy: &dyn Policy, specs: &[CallSpec], clock: UnixMillis) -> Vec<Seen> {
    let counters = MemoryCounters::new();
    let mut now = clock;
    specs
        .iter()
        .map(|s| {
            if let Some(t) = s.at {
                now = t;
            }
            if let Some(line) = &s.line {
                let bytes = line.as_bytes();
                if line.trim_start().starts_with('[') {
                    // A batch: every element is checked on its own; report the first denial.
                    validate(bytes, Strictness::LENIENT).unwrap();
                    let Val::Array(items) = Value::from_validated(bytes).val() else {
                        panic!()
                    };
                    let mut seen = Seen::Allow;
                    for item in items.iter() {
                        let one = match parse_tool_call(item.as_bytes()) {
                            Err(r) => Seen::Rejected(r.code()),
                            Ok(call) => decide(policy, &counters, now, &call, &s.upstream),
                        };
                        if seen == Seen::Allow {
                            seen = one;
                        }
                    }
                    return seen;
                }
                return match parse_tool_call(bytes) {
                    Err(r) => Seen::Rejected(r.code()),
                    Ok(call) => decide(policy, &counters, now, &call, &s.upstream),
                };
            }
            let args = s.args.as_deref().unwrap_or("");
            let call = ToolCall::new(
                s.tool.as_deref().unwrap(),
                args.as_bytes(),
                Strictness::LENIENT,
            )
            .expect("case arguments are valid JSON objects");
            decide(policy, &counters, now, &call, &s.upstream)
        })
        .collect()
}

fn check_invalid(case: &Case, failures: &mut Vec<String>) {
    let out = compile_case(case);
    let expected: Vec<(String, bool)> = match case.node.get("expect_invalid").map(|n| &n.value) {
        Some(NodeValue::Seq(items)) => items
            .iter()
            .map(|i| match i.scalar() {
                Some(s) => (s.text.clone(), false),
                None => (text(i, "prefix").unwrap().to_string(), true),
            })
            .collect(),
        _ => vec![(
            text(case.node.get("expect_load_error").unwrap(), "prefix")
                .unwrap()
                .to_string(),
            true,
        )],
    };
    let got: Vec<&str> = out
        .diagnostics
        .0
        .iter()
        .filter(|d| d.is_error() && d.origin == Origin::Intercept)
        .map(|d| d.message.as_str())
        .collect();
    let matches = got.len() == expected.len()
        && got.iter().zip(&expected).all(|(g, (e, prefix))| {
            if *prefix {
                g.starts_with(e.as_str())
            } else {
                g == e
            }
        });
    if !matches {
        failures.push(format!(
            "{}: expected errors {expected:?}\n  got {got:?}\n{}",
            case.id,
            out.render()
        ));
    }
    for d in &out.diagnostics.0 {
        if d.span.is_none() || d.help.is_none() {
            failures.push(format!(
                "{}: diagnostic without location or help: {}",
                case.id, d.message
            ));
        }
    }
}

fn check_list(
    case: &Case,
    names: &[&str],
    cursor: Option<&str>,
    keys: Option<&[&str]>,
    unchanged: bool,
    failures: &mut Vec<String>,
) {
    let upstream = text(&case.node, "upstream_tools_list").unwrap();
    for (engine, policy) in engines(case) {
        let out = filter_tools_list(upstream.as_bytes(), |n| policy.is_hidden(n, None));
        if unchanged {
            if out != Ok(None) {
                failures.push(format!(
                    "{}/{engine}: expected the response unchanged, got {out:?}",
                    case.id
                ));
            }
            continue;
        }
        let bytes = match out {
            Ok(Some(b)) => b,
            other => {
                failures.push(format!(
                    "{}/{engine}: expected a filtered response, got {other:?}",
                    case.id
                ));
                continue;
            }
        };
        let Val::Object(top) = Value::from_validated(&bytes).val() else {
            panic!()
        };
        let Some(Val::Object(result)) = top.get("result").map(|r| r.val()) else {
            panic!()
        };
        let Some(Val::Array(tools)) = result.get("tools").map(|t| t.val()) else {
            panic!()
        };
        let got: Vec<String> = tools
            .iter()
            .filter_map(|t| match t.val() {
                Val::Object(o) => o.get("name").and_then(|n| match n.val() {
                    Val::Str(s) => Some(s.chars().collect()),
                    _ => None,
                }),
                _ => None,
            })
            .collect();
        let got_cursor = result.get("nextCursor").and_then(|c| match c.val() {
            Val::Str(s) => Some(s.chars().collect::<String>()),
            _ => None,
        });
        let got_keys: Vec<String> = result.members().map(|(k, _)| k.chars().collect()).collect();
        if got != names || got_cursor.as_deref() != cursor || keys.is_some_and(|k| got_keys != k) {
            failures.push(format!(
                "{}/{engine}: got tools {got:?}, cursor {got_cursor:?}, keys {got_keys:?}",
                case.id
            ));
        }
    }
}

fn check_calls(case: &Case, expected: &[Seen], clock: UnixMillis, failures: &mut Vec<String>) {
    let specs = call_specs(case);
    assert_eq!(
        specs.len(),
        expected.len(),
        "{}: expectation count",
        case.id
    );
    for (engine, policy) in engines(case) {
        let got = run(policy.as_ref(), &specs, clock);
        for (i, (g, e)) in got.iter().zip(expected).enumerate() {
            if g != e {
                failures.push(format!(
                    "{}/{engine}: call {i}: expected {e:?}, got {g:?}",
                    case.id
                ));
            }
        }
    }
}

#[test]
fn conformance_cases() {
    let (clock, cases) = load();
    assert_eq!(cases.len(), 79, "the case file changed");
    let mut failures = Vec::new();
    let mut counts: BTreeMap<(String, &str), usize> = BTreeMap::new();
    for case in &cases {
        let kind;
        if case.tier == "core" {
            if case.node.get("expect_invalid").is_some()
                || case.node.get("expect_load_error").is_some()
            {
                kind = "invalid";
                check_invalid(case, &mut failures);
            } else if case.node.get("upstream_tools_list").is_some() {
                kind = "tools/list";
                let names: Vec<&str> = match case.node.get("expect_tool_names").map(|n| &n.value) {
                    Some(NodeValue::Seq(items)) => items
                        .iter()
                        .map(|i| i.scalar().unwrap().text.as_str())
                        .collect(),
                    _ => Vec::new(),
                };
                let unchanged = text(&case.node, "expect_tools_list_unchanged") == Some("true");
                let cursor = text(&case.node, "expect_next_cursor");
                check_list(
                    case,
                    &names,
                    cursor.filter(|c| *c != "null"),
                    None,
                    unchanged,
                    &mut failures,
                );
            } else {
                kind = "calls";
                check_calls(case, &expected_calls(case), clock, &mut failures);
            }
        } else {
            kind = "quirk";
            match quirk(&case.id) {
                Quirk::AsIntercept => {
                    check_calls(case, &expected_calls(case), clock, &mut failures)
                }
                Quirk::Calls(expected) => check_calls(case, &expected, clock, &mut failures),
                Quirk::Invalid(texts) => {
                    let out = compile_case(case);
                    let errors: Vec<&str> = out
                        .diagnostics
                        .0
                        .iter()
                        .filter(|d| d.is_error())
                        .map(|d| d.message.as_str())
                        .collect();
                    for t in texts {
                        if !errors.iter().any(|e| e.contains(t)) {
                            failures.push(format!(
                                "{}: expected an error containing {t:?}, got {errors:?}",
                                case.id
                            ));
                        }
                    }
                    for d in &out.diagnostics.0 {
                        if d.span.is_none() || d.help.is_none() {
                            failures.push(format!(
                                "{}: diagnostic without location or help: {}",
                                case.id, d.message
                            ));
                        }
                    }
                }
                Quirk::Script(script) => {
                    let specs: Vec<CallSpec> = script
                        .iter()
                        .map(|(tool, _)| CallSpec {
                            tool: Some(tool.to_string()),
                            args: None,
                            line: None,
                            at: None,
                            upstream: "ok".into(),
                        })
                        .collect();
                    let expected: Vec<Seen> = script.into_iter().map(|(_, s)| s).collect();
                    for (engine, policy) in engines(case) {
                        let got = run(policy.as_ref(), &specs, clock);
                        if got != expected {
                            failures.push(format!(
                                "{}/{engine}: expected {expected:?}, got {got:?}",
                                case.id
                            ));
                        }
                    }
                }
                Quirk::List(names, keys) => {
                    check_list(case, names, None, Some(keys), false, &mut failures)
                }
            }
        }
        *counts.entry((case.tier.clone(), kind)).or_default() += 1;
    }
    eprintln!("conformance cases run: {counts:?}");
    assert!(
        failures.is_empty(),
        "{} failure(s):\n{}",
        failures.len(),
        failures.join("\n")
    );
}

#[test]
fn help_suggests_the_misspelt_key() {
    let out = compile(&[Input {
        server: "t".into(),
        path: "t.yaml".into(),
        text: "version: \"1\"\ndefualt: deny\ntools: {}\n".into(),
    }]);
    let d = &out.diagnostics.0[0];
    assert_eq!(d.message, "unknown key `defualt` in the policy file");
    assert!(
        d.help
            .as_deref()
            .unwrap()
            .starts_with("did you mean `default`?")
    );
    assert_eq!(out.sources.location(d.span.unwrap()), "t.yaml:2:1");
}
