//! Policy tests as data: `<server>.test.yaml` beside a policy.
//!
//! ```yaml
//! clock: "2026-01-15T10:30:00Z"     # optional: the time of the first call of each case
//! cases:
//!   - name: small sums are allowed
//!     calls:
//!       - tool: get-sum
//!         args: {a: 2, b: 3}          # a mapping, or JSON text in a string
//!         expect: allow
//!   - name: the rate limit bites on the fourth call
//!     calls:
//!       - {tool: trigger-long-running-operation, expect: allow}
//!       - {tool: trigger-long-running-operation, expect: allow, upstream: error}  # rolled back
//!       - {tool: trigger-long-running-operation, expect: allow, at: "2026-01-15T10:30:30Z"}
//!       - {tool: trigger-long-running-operation, expect: allow}
//!       - tool: trigger-long-running-operation
//!         expect: deny
//!         message: At most 3 long-running operations per minute
//! ```
//!
//! Each case starts with fresh counters and no idempotency records.
//! `principal:` (on a case, or on a call to override it) gives the caller's
//! token claims, e.g. `principal: {sub: alice, iss: "https://idp.example",
//! groups: [finance], scope: "refunds:large"}`, read by `principal.*`
//! paths; without one the caller is unknown (every principal path is
//! missing), and `principal: null` on a call says so explicitly.
//! `expect` is `allow`, `deny` or `replay`; `message` (the text after
//! `[POLICY DENIED] `) and `rule` (a rule's name or label) are checked when
//! given. `upstream: error` makes the upstream answer with a JSON-RPC error,
//! which rolls the call's counters back (and a failed call is not
//! remembered by an idempotency window).
//!
//! `price: "0.60 usd"` makes the server ask that price (MPP `-32042`): it is
//! checked against the tool's spend budgets as the proxy checks it (a denial
//! names the budget), and an allowed call pays it (it counts against the
//! windowed budgets of the later calls). `expect: replay`: the call is
//! identical to an earlier successful one within an idempotency window in
//! `replay` mode, so it gets that call's answer without reaching the server.
//!
//! `result:` (the tool's answer, a mapping or JSON text: the JSON-RPC
//! `result`) tests the policy's result rules (docs/results.md): the call
//! must be allowed, and `expect` says what happens to the answer: `pass`
//! (unchanged), `redact` (secrets replaced) or `deny` (withheld).
//!
//! ```yaml
//!   - name: tokens in answers are redacted
//!     calls:
//!       - tool: echo
//!         args: {message: hi}
//!         result: {content: [{type: text, text: "Echo: ghp_16C7e42F292c6912E7710c838347Ae178B4a"}]}
//!         expect: redact
//! ```

use std::collections::BTreeSet;
use std::fmt::Write as _;

use portcullis_core::Principal;
use portcullis_core::call::{Surface, ToolCall};
use portcullis_core::counters::UnixMillis;
use portcullis_core::json::Strictness;
use portcullis_core::policy::{Effect, Policy, RuleKind};
use portcullis_core::replay::{Replay, Replayed, Upstream};
use portcullis_core::spend::{self, Currency};

use crate::eval::{Evaluator, Trace};
use crate::ir::{RuleId, ServerPolicy};
use crate::lower::{check_keys, get, map_entries, seq_items, string_field};
use crate::source::{Diagnostic, FileId, SourceMap, Span};
use crate::syntax::yaml::{self, Node, NodeValue, Typed, typed};

/// The default clock of a test file.
pub use portcullis_core::replay::DEFAULT_CLOCK;

/// A parsed test file.
#[derive(Debug, Clone)]
pub struct TestFile {
    /// The clock at the first call of each case.
    pub clock: UnixMillis,
    /// The cases.
    pub cases: Vec<Case>,
}

/// One case: a sequence of calls on fresh counters.
#[derive(Debug, Clone)]
pub struct Case {
    /// Its name.
    pub name: String,
    /// Where it is.
    pub span: Span,
    /// The caller of every call (`principal:`), unless a call names its own.
    pub principal: Option<Principal>,
    /// The calls.
    pub calls: Vec<CallSpec>,
}

/// What a call should come to.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Expect {
    /// It reaches the server (and pays its price, if it has one).
    Allow,
    /// It is denied: by a rule, a spend budget or a `refuse` window.
    Deny,
    /// It gets an earlier identical call's answer again (a `replay` window).
    Replay,
    /// An approval rule holds it for a person (nothing is reserved).
    Approve,
}

impl Expect {
    fn name(self) -> &'static str {
        match self {
            Expect::Allow => "allow",
            Expect::Deny => "deny",
            Expect::Replay => "replay",
            Expect::Approve => "approve",
        }
    }
}

/// What should happen to a call's answer (`result:` with `expect`).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum ResultExpect {
    /// Passed on unchanged.
    Pass,
    /// Secrets redacted.
    Redact,
    /// Withheld (an `isError` result instead).
    Deny,
}

impl ResultExpect {
    fn name(self) -> &'static str {
        match self {
            ResultExpect::Pass => "pass",
            ResultExpect::Redact => "redact",
            ResultExpect::Deny => "deny",
        }
    }
}

/// One call and what it should come to.
#[derive(Debug, Clone)]
pub struct CallSpec {
    /// The answer (`result:`, JSON text) and what should happen to it.
    pub result: Option<(String, ResultExpect)>,
    /// What is requested: a tool call, a resource read, a prompt.
    pub surface: Surface,
    /// The tool (or the resource's normalised URI, or the prompt's name).
    pub tool: String,
    /// The arguments, as JSON text.
    pub args: String,
    /// The clock from this call on.
    pub at: Option<UnixMillis>,
    /// The upstream answers with a JSON-RPC error (counters are rolled back).
    pub upstream_error: bool,
    /// The price the server asks (MPP), in micro-units of a currency.
    pub price: Option<(u64, &'static Currency)>,
    /// The call was approved by a person: it is decided without approval
    /// rules (deny rules and limits still apply; counters are reserved).
    pub approved: bool,
    /// Allow, deny, replay or approve.
    pub expect: Expect,
    /// The denial (or approval) message, if checked.
    pub message: Option<String>,
    /// The deciding rule (name or label), if checked.
    pub rule: Option<String>,
    /// This call's own caller: `Some(None)` for `principal: null` (no
    /// caller), None to use the case's.
    pub principal: Option<Option<Principal>>,
    /// Where it is.
    pub span: Span,
}

/// Parses a test file.
pub fn parse(file: FileId, text: &str) -> Result<TestFile, Vec<Diagnostic>> {
    // The YAML layer words its errors as Intercept does for policies.
    let root = yaml::parse(file, text).map_err(|diags| {
        diags
            .into_iter()
            .map(|mut d| {
                if let Some(rest) = d.message.strip_prefix("parsing config file: ") {
                    d.message = format!("parsing test file: {rest}");
                }
                d
            })
            .collect::<Vec<_>>()
    })?;
    let mut diags = Vec::new();
    let whole = Span::new(file, 0, 0);
    let Some(root) = root else {
        return Err(vec![
            Diagnostic::error("the test file is empty", whole)
                .with_help("add `cases:` with named cases of calls"),
        ]);
    };
    let Some(entries) = map_entries(&root, "the test file", &mut diags) else {
        return Err(diags);
    };
    check_keys(entries, &["clock", "cases"], "a test file", &mut diags);
    let clock = match get(entries, "clock") {
        Some(n) => time(n, &mut diags),
        None => UnixMillis::parse_rfc3339(DEFAULT_CLOCK),
    }
    .unwrap_or(UnixMillis(0));
    let mut cases = Vec::new();
    for (i, c) in get(entries, "cases")
        .and_then(|n| seq_items(n, "cases", &mut diags))
        .unwrap_or(&[])
        .iter()
        .enumerate()
    {
        let Some(ce) = map_entries(c, &format!("cases[{i}]"), &mut diags) else {
            continue;
        };
        check_keys(ce, &["name", "principal", "calls"], "a case", &mut diags);
        let principal = get(ce, "principal").and_then(|n| principal(n, &mut diags));
        let name = match get(ce, "name") {
            Some(n) => string_field(n, "name", &mut diags).text,
            None => {
                diags.push(
                    Diagnostic::error(format!("cases[{i}] has no `name`"), c.span)
                        .with_help("name every case: failures are reported by name"),
                );
                format!("case {}", i + 1)
            }
        };
        let mut calls = Vec::new();
        for (j, call) in get(ce, "calls")
            .and_then(|n| seq_items(n, "calls", &mut diags))
            .unwrap_or(&[])
            .iter()
            .enumerate()
        {
            if let Some(spec) = call_spec(call, &format!("cases[{i}].calls[{j}]"), &mut diags) {
                calls.push(spec);
            }
        }
        if calls.is_empty() {
            diags.push(
                Diagnostic::error(format!("case {name:?} has no calls"), c.span)
                    .with_help("add `calls:` with at least one `tool` and `expect`"),
            );
        }
        cases.push(Case {
            name,
            span: c.span,
            principal,
            calls,
        });
    }
    if cases.is_empty() && diags.is_empty() {
        diags.push(
            Diagnostic::error("the test file has no cases", root.span)
                .with_help("add `cases:` with named cases of calls"),
        );
    }
    if diags.iter().any(Diagnostic::is_error) {
        Err(diags)
    } else {
        Ok(TestFile { clock, cases })
    }
}

fn time(n: &Node, diags: &mut Vec<Diagnostic>) -> Option<UnixMillis> {
    let s = string_field(n, "a time", diags);
    let t = UnixMillis::parse_rfc3339(&s.text);
    if t.is_none() {
        diags.push(
            Diagnostic::error(format!("`{}` is not an RFC 3339 time", s.text), s.span)
                .with_help("write e.g. \"2026-01-15T10:30:00Z\" (quoted)"),
        );
    }
    t
}

fn call_spec(n: &Node, ctx: &str, diags: &mut Vec<Diagnostic>) -> Option<CallSpec> {
    let e = map_entries(n, ctx, diags)?;
    check_keys(
        e,
        &[
            "tool",
            "resource",
            "prompt",
            "args",
            "at",
            "upstream",
            "price",
            "approved",
            "expect",
            "message",
            "rule",
            "principal",
            "result",
        ],
        "a call",
        diags,
    );
    let result = get(e, "result").and_then(|r| result_json(r, diags));
    let given: Vec<(&str, Surface)> = [
        ("tool", Surface::Tool),
        ("resource", Surface::Resource),
        ("prompt", Surface::Prompt),
    ]
    .into_iter()
    .filter(|(k, _)| get(e, k).is_some())
    .collect();
    let (key, surface) = match given.as_slice() {
        [one] => *one,
        [] => {
            diags.push(
                Diagnostic::error(format!("{ctx}: a call needs `tool`"), n.span)
                    .with_help("add `tool: <name>` (or `resource: <URI>`, `prompt: <name>`)"),
            );
            return None;
        }
        _ => {
            diags.push(
                Diagnostic::error(
                    format!("{ctx}: a call names one of `tool`, `resource`, `prompt`"),
                    n.span,
                )
                .with_help("split it into one call per request"),
            );
            return None;
        }
    };
    let target = string_field(get(e, key).expect("given"), key, diags);
    if surface == Surface::Prompt
        && let Some(r) = get(e, "result")
    {
        diags.push(
            Diagnostic::error(
                format!("{ctx}: `result` on a prompt call: prompts/get answers are not checked by result rules"),
                r.span,
            )
            .with_help("`result` tests the answer of a `tool` call or a `resource` read (docs/results.md)"),
        );
    }
    let tool = if surface == Surface::Resource {
        match portcullis_core::uri::normalize(&target.text) {
            Ok(n) => n,
            Err(err) => {
                diags.push(
                    Diagnostic::error(
                        format!(
                            "the URI `{}` cannot be normalised: {}",
                            target.text, err.kind
                        ),
                        target.span,
                    )
                    .with_help(
                        "the proxy denies reading such a URI before any rule; see docs/surfaces.md",
                    ),
                );
                return None;
            }
        }
    } else {
        target.text
    };
    let args = match get(e, "args") {
        None => "{}".to_string(),
        Some(a) => match &a.value {
            NodeValue::Scalar(s) if !a.is_null() => {
                if let Err(e) = ToolCall::new("", s.text.as_bytes(), Strictness::STRICT) {
                    diags.push(
                        Diagnostic::error(format!("`args` is refused as the proxy would refuse it: {e}"), a.span).with_help(
                            "write the arguments as a mapping, or as one strict JSON object in a string",
                        ),
                    );
                }
                s.text.clone()
            }
            _ if a.is_null() => "{}".to_string(),
            NodeValue::Map(_) => {
                let mut out = String::new();
                to_json(a, &mut out, diags);
                out
            }
            _ => {
                diags.push(
                    Diagnostic::error(
                        "`args` must be a mapping: a tool's arguments are one JSON object",
                        a.span,
                    )
                    .with_help("write `args: {name: value}`, or JSON text in a string"),
                );
                "{}".to_string()
            }
        },
    };
    let at = get(e, "at").and_then(|t| time(t, diags));
    let upstream_error = match get(e, "upstream").map(|u| string_field(u, "upstream", diags)) {
        None => false,
        Some(u) if u.text == "ok" => false,
        Some(u) if u.text == "error" => true,
        Some(u) => {
            diags.push(
                Diagnostic::error(
                    format!("upstream must be `ok` or `error`, got {:?}", u.text),
                    u.span,
                )
                .with_help(
                    "`error`: the server answers with a JSON-RPC error (counters are rolled back)",
                ),
            );
            false
        }
    };
    let price = get(e, "price").and_then(|p| price(p, diags));
    let mut result_expect = None;
    let expect = match get(e, "expect").map(|x| string_field(x, "expect", diags)) {
        Some(x) if get(e, "result").is_some() => {
            result_expect = match x.text.as_str() {
                "pass" => Some(ResultExpect::Pass),
                "redact" => Some(ResultExpect::Redact),
                "deny" => Some(ResultExpect::Deny),
                other => {
                    diags.push(
                        Diagnostic::error(
                            format!("with `result`, expect must be `pass`, `redact` or `deny`, got {other:?}"),
                            x.span,
                        )
                        .with_help("`result` tests what the result rules do to the answer of an allowed call: pass it, redact it, or withhold it"),
                    );
                    None
                }
            };
            Expect::Allow
        }
        Some(x) if x.text == "allow" => Expect::Allow,
        Some(x) if x.text == "deny" => Expect::Deny,
        Some(x) if x.text == "replay" => Expect::Replay,
        Some(x) if x.text == "approve" => Expect::Approve,
        Some(x) => {
            diags.push(
                Diagnostic::error(
                    format!(
                        "expect must be `allow`, `deny`, `replay` or `approve`, got {:?}",
                        x.text
                    ),
                    x.span,
                )
                .with_help("write `expect: allow`, `expect: deny`, `expect: replay` (an identical call within an idempotency window) or `expect: approve` (an approval rule holds the call)"),
            );
            Expect::Allow
        }
        None => {
            diags.push(
                Diagnostic::error(format!("{ctx}: a call needs `expect`"), n.span)
                    .with_help("add `expect: allow` or `expect: deny`"),
            );
            Expect::Allow
        }
    };
    let message = get(e, "message").map(|m| (m.span, string_field(m, "message", diags).text));
    let rule = get(e, "rule").map(|m| (m.span, string_field(m, "rule", diags).text));
    let approved = match get(e, "approved").map(|a| (a.span, typed(a))) {
        None => false,
        Some((_, Ok(Typed::Bool(b)))) => b,
        Some((span, _)) => {
            diags.push(
                Diagnostic::error("approved must be `true` or `false`", span).with_help(
                    "`approved: true` decides the call as a person approved it: approval rules are skipped, deny rules and limits apply",
                ),
            );
            false
        }
    };
    if approved && expect == Expect::Approve {
        diags.push(
            Diagnostic::error(
                "an approved call is never held for approval again",
                get(e, "approved").map_or(n.span, |a| a.span),
            )
            .with_help("expect `allow` or `deny` for an approved call"),
        );
    }
    if !matches!(expect, Expect::Deny | Expect::Approve) {
        // A replay names its window's rule; nothing else names one.
        let checked: &[(&str, &Option<(Span, String)>)] = if expect == Expect::Replay {
            &[("message", &message)]
        } else {
            &[("message", &message), ("rule", &rule)]
        };
        for &(key, found) in checked {
            if let Some((span, _)) = found {
                diags.push(
                    Diagnostic::error(
                        format!(
                            "`{key}` is checked on denials and approval requests only, and this call expects `{}`",
                            expect.name()
                        ),
                        *span,
                    )
                    .with_help(format!("remove `{key}`, or expect `deny` (or `approve`)")),
                );
            }
        }
    }
    let own_principal = get(e, "principal").map(|n| principal(n, diags));
    Some(CallSpec {
        result: result.zip(result_expect),
        surface,
        principal: own_principal,
        tool,
        args,
        at,
        upstream_error,
        price,
        approved,
        expect,
        message: message.map(|(_, m)| m),
        rule: rule.map(|(_, r)| r),
        span: n.span,
    })
}

/// A call's `result:` as JSON text (a mapping, or one JSON object in a string).
fn result_json(n: &Node, diags: &mut Vec<Diagnostic>) -> Option<String> {
    let text = match &n.value {
        NodeValue::Map(_) => {
            let mut out = String::new();
            to_json(n, &mut out, diags);
            out
        }
        NodeValue::Scalar(s) if !n.is_null() => s.text.clone(),
        _ => String::new(),
    };
    let ok = text.trim_start().starts_with('{')
        && portcullis_core::json::validate(text.as_bytes(), Strictness::LENIENT).is_ok();
    if !ok {
        diags.push(
            Diagnostic::error("`result` must be a JSON object: the tool's answer (`content`, `structuredContent`, ...)", n.span)
                .with_help("write `result: {content: [{type: text, text: \"...\"}]}`, or JSON text in a string"),
        );
        return None;
    }
    Some(text)
}

/// `principal: {sub: alice, iss: "https://idp.example", groups: [finance]}`:
/// the caller's token claims (as a validated JWT's payload), read by the
/// policy's `principal.*` paths; `scope` (space-separated) or `scp` give
/// the scopes. `principal: null` is no caller. None also when the claims
/// make no principal (reported).
fn principal(n: &Node, diags: &mut Vec<Diagnostic>) -> Option<Principal> {
    if n.is_null() {
        return None;
    }
    if !matches!(n.value, NodeValue::Map(_)) {
        diags.push(
            Diagnostic::error("`principal` must be a mapping of token claims", n.span)
                .with_help("write `principal: {sub: alice, iss: \"https://idp.example\", groups: [finance]}`, or `principal: null` for no caller"),
        );
        return None;
    }
    let mut json = String::new();
    to_json(n, &mut json, diags);
    match Principal::from_claims(json.into_bytes()) {
        Ok(p) => Some(p),
        Err(e) => {
            diags.push(
                Diagnostic::error(format!("`principal`: {e}"), n.span).with_help(
                    "a caller has `sub` and `iss` strings, as a validated token does; add e.g. `sub: alice, iss: \"https://idp.example\"`",
                ),
            );
            None
        }
    }
}

/// `price: "0.60 usd"`: an exact decimal amount of whole units and a known
/// currency, read as the proxy reads money ([`spend::parse_decimal`]).
fn price(n: &Node, diags: &mut Vec<Diagnostic>) -> Option<(u64, &'static Currency)> {
    let s = string_field(n, "price", diags);
    let help = "write the amount in whole units and the currency, e.g. `price: \"0.60 usd\"`";
    let mut words = s.text.split_whitespace();
    let (Some(amount), Some(code), None) = (words.next(), words.next(), words.next()) else {
        diags.push(
            Diagnostic::error(
                format!("price {:?} is not an amount and a currency", s.text),
                s.span,
            )
            .with_help(help),
        );
        return None;
    };
    let amount = match spend::parse_decimal(amount) {
        Ok(a) => a,
        Err(e) => {
            diags.push(
                Diagnostic::error(format!("price amount `{amount}` is {e}"), s.span)
                    .with_help(help),
            );
            return None;
        }
    };
    let Some(currency) = spend::currency(code) else {
        let known: Vec<&str> = spend::CURRENCIES.iter().map(|c| c.code).collect();
        diags.push(
            Diagnostic::error(format!("price currency `{code}` is unknown"), s.span).with_help(
                format!("the proxy knows these currencies: {}", known.join(", ")),
            ),
        );
        return None;
    };
    Some((amount, currency))
}

/// A YAML node as JSON text (scalars typed strictly, as in policies).
fn to_json(n: &Node, out: &mut String, diags: &mut Vec<Diagnostic>) {
    match &n.value {
        NodeValue::Map(entries) => {
            out.push('{');
            for (i, (k, v)) in entries.iter().enumerate() {
                if i > 0 {
                    out.push(',');
                }
                out.push_str(&json_string(&k.text));
                out.push(':');
                to_json(v, out, diags);
            }
            out.push('}');
        }
        NodeValue::Seq(items) => {
            out.push('[');
            for (i, v) in items.iter().enumerate() {
                if i > 0 {
                    out.push(',');
                }
                to_json(v, out, diags);
            }
            out.push(']');
        }
        NodeValue::Scalar(_) => match typed(n) {
            Ok(Typed::Null) => out.push_str("null"),
            Ok(Typed::Bool(b)) => out.push_str(if b { "true" } else { "false" }),
            Ok(Typed::Num(x)) => out.push_str(&x.text),
            Ok(Typed::Str(s)) => out.push_str(&json_string(&s)),
            Ok(Typed::List | Typed::Map) => {}
            Err(d) => {
                diags.push(d);
                out.push_str("null");
            }
        },
    }
}

fn json_string(s: &str) -> String {
    let mut out = Vec::new();
    portcullis_core::json::push_json_str(&mut out, s);
    String::from_utf8(out).unwrap_or_default()
}

/// What a call came to: allow, deny or replay, the deciding rule, the
/// denial message, and the kind of outcome (targets must agree on it).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Got {
    /// Allow, deny or replay.
    pub expect: Expect,
    /// The decision's outcome (`check`, `limit`, ...), or `spend`,
    /// `duplicate`, `replayed` for what the proxy does after it.
    pub outcome: String,
    /// The deciding rule: a denial's, a budget's, a window's.
    pub rule: Option<RuleId>,
    /// The denial message (empty otherwise).
    pub message: String,
}

impl Got {
    fn of(r: &Replayed, surface: Surface, tool: &str) -> Got {
        match r {
            Replayed::Decided { decision: d, .. } => Got {
                expect: match d.effect() {
                    Effect::Allow => Expect::Allow,
                    Effect::Deny => Expect::Deny,
                    Effect::Approve => Expect::Approve,
                },
                outcome: format!("{:?}", d.outcome),
                rule: if d.effect() != Effect::Allow {
                    d.rule
                } else {
                    None
                },
                message: if d.effect() != Effect::Allow {
                    d.message_on(surface, tool).into_owned()
                } else {
                    String::new()
                },
            },
            Replayed::Replayed { rule } => Got {
                expect: Expect::Replay,
                outcome: "replayed".into(),
                rule: Some(*rule),
                message: String::new(),
            },
            Replayed::Duplicate { rule, message } => Got {
                expect: Expect::Deny,
                outcome: "duplicate".into(),
                rule: Some(*rule),
                message: (*message).to_string(),
            },
            Replayed::Spend(refusal) => Got {
                expect: Expect::Deny,
                outcome: refusal.outcome.into(),
                rule: refusal.rule,
                message: refusal.message.clone(),
            },
        }
    }

    /// Described for a report.
    fn describe(&self, meta: &portcullis_core::PolicyMeta) -> String {
        let rule = self
            .rule
            .and_then(|r| meta.rule(r))
            .map_or_else(String::new, |r| {
                format!(
                    "\n              (rule {:?}, {}, {}:{})",
                    r.name, r.label, r.file, r.line
                )
            });
        match self.expect {
            Expect::Allow => "allow".to_string(),
            Expect::Deny => format!("deny: {}{rule}", self.message),
            Expect::Replay => format!("replay{rule}"),
            Expect::Approve => format!("approve: {}{rule}", self.message),
        }
    }
}

/// One call that did not come to what the case expects.
#[derive(Debug, Clone)]
pub struct Failure {
    /// The call's index in the case.
    pub call: usize,
    /// What it came to (`None` when the arguments were refused).
    pub got: Option<Got>,
    /// The report: the call, what was expected, what happened.
    pub text: String,
}

impl Failure {
    /// Two targets failed the same way (the reports may differ in paths).
    fn same(&self, other: &Failure) -> bool {
        self.call == other.call && self.got == other.got
    }
}

/// Runs one case; returns the failures (empty when it passes). With
/// `coverage`, the policy must be an [`Evaluator`] and what it evaluates is recorded.
pub fn run_case(
    case: &Case,
    policy: &dyn Policy,
    clock: UnixMillis,
    mut coverage: Option<(&Evaluator, &mut Coverage)>,
    sources: &SourceMap,
) -> Vec<Failure> {
    let mut replay = Replay::new(clock);
    let mut failures = Vec::new();
    for (i, c) in case.calls.iter().enumerate() {
        if let Some(t) = c.at {
            replay.set_clock(t);
        }
        replay.set_principal(
            c.principal
                .clone()
                .unwrap_or_else(|| case.principal.clone()),
        );
        let upstream = Upstream {
            error: c.upstream_error,
            price: c.price,
        };
        let decided = match coverage.as_mut() {
            Some((ev, cov)) => {
                let r = replay.exchange_on(
                    *ev,
                    c.surface,
                    &c.tool,
                    &c.args,
                    upstream,
                    |call, env, ticket| {
                        if c.approved {
                            ev.decide_approved_traced(call, env, ticket, &mut |t| cov.record(&t))
                        } else {
                            ev.decide_traced(call, env, ticket, &mut |t| cov.record(&t))
                        }
                    },
                );
                if let Ok(r) = &r {
                    cov.record_after(r);
                }
                r
            }
            None => replay.exchange_on(
                policy,
                c.surface,
                &c.tool,
                &c.args,
                upstream,
                |call, env, ticket| {
                    if c.approved {
                        policy.decide_approved(call, env, ticket)
                    } else {
                        policy.decide(call, env, ticket)
                    }
                },
            ),
        };
        let d = match decided {
            Ok(d) => d,
            Err(e) => {
                failures.push(Failure {
                    call: i,
                    got: None,
                    text: format!(
                        "call {} ({}): the arguments are refused: {e}",
                        i + 1,
                        sources.location(c.span)
                    ),
                });
                continue;
            }
        };
        let meta = policy.meta();
        let got = Got::of(&d, c.surface, &c.tool);
        let rule = got.rule.and_then(|r| meta.rule(r));
        let mut wrong = got.expect != c.expect;
        if let Some(m) = &c.message {
            wrong |= got.message != m.as_str();
        }
        if let Some(r) = &c.rule {
            wrong |= !rule.is_some_and(|x| x.name == r.as_str() || x.label == r.as_str());
        }
        if got.expect == Expect::Allow
            && c.result.is_some()
            && let Some((_, cov)) = coverage.as_mut()
            && let Some(r) = answer_rule(policy, c.surface, &c.tool)
        {
            cov.results.insert(r.spec.name.to_string());
        }
        if !wrong
            && let Some((json, want)) = &c.result
            && let Some(text) = result_mismatch(policy, c.surface, &c.tool, json, *want)
        {
            failures.push(Failure {
                call: i,
                text: format!(
                    "call {} ({}): {} {}\n    answer    {json}\n{text}",
                    i + 1,
                    sources.location(c.span),
                    c.tool,
                    c.args,
                ),
                got: Some(got),
            });
            continue;
        }
        if wrong {
            let mut expected = c.expect.name().to_string();
            if let Some(m) = &c.message {
                let _ = write!(expected, ": {m}");
            }
            if let Some(r) = &c.rule {
                let _ = write!(expected, " (rule {r:?})");
            }
            let price = c.price.map_or_else(String::new, |(a, cur)| {
                format!(" (price {} {})", spend::format(a), cur.code)
            });
            failures.push(Failure {
                call: i,
                text: format!(
                    "call {} ({}): {} {}{price}\n    expected  {expected}\n    got       {}",
                    i + 1,
                    sources.location(c.span),
                    c.tool,
                    c.args,
                    got.describe(meta)
                ),
                got: Some(got),
            });
        }
    }
    failures
}

/// The result rule checking the answer of a call to `name` on `surface`
/// (a resource by its URI; prompts' answers are not checked).
fn answer_rule<'p>(
    policy: &'p dyn Policy,
    surface: Surface,
    name: &str,
) -> Option<&'p portcullis_core::results::ResultRule> {
    match surface {
        Surface::Tool => policy.result_rule(name),
        Surface::Resource => policy.resource_result_rule(name),
        Surface::Prompt => None,
    }
}

/// What the result rules do to `json` (a `result`) from `tool` (a tool, or
/// a resource's URI), when it is not `want`: the report's expected/got lines.
fn result_mismatch(
    policy: &dyn Policy,
    surface: Surface,
    tool: &str,
    json: &str,
    want: ResultExpect,
) -> Option<String> {
    use portcullis_core::results::{Verdict, check};
    let message = format!(r#"{{"jsonrpc":"2.0","id":1,"result":{json}}}"#);
    let (got, detail) = match answer_rule(policy, surface, tool) {
        None => (
            ResultExpect::Pass,
            format!("no result rule names this {}", surface.name()),
        ),
        Some(rule) => match check(rule, message.as_bytes()) {
            Verdict::Pass => (ResultExpect::Pass, format!("by {}", rule.spec.name)),
            Verdict::Redacted { counts, .. } => (
                ResultExpect::Redact,
                format!(
                    "by {}: {}",
                    rule.spec.name,
                    counts
                        .iter()
                        .map(|c| format!("{} x{}", c.name, c.count))
                        .collect::<Vec<_>>()
                        .join(", ")
                ),
            ),
            Verdict::Denied { why, .. } => (
                ResultExpect::Deny,
                format!("by {}: {}", rule.spec.name, why.message(rule, tool)),
            ),
        },
    };
    (got != want).then(|| {
        format!(
            "    expected  {}\n    got       {} ({detail})",
            want.name(),
            got.name()
        )
    })
}

/// A policy to run a test file against.
pub struct Target<'a> {
    /// How reports name it (`compiled`, `evaluator`).
    pub label: &'a str,
    /// The policy.
    pub policy: &'a dyn Policy,
    /// Decide through this evaluator's tracer instead, recording coverage.
    pub trace: Option<&'a Evaluator>,
}

/// What running one test file came to.
#[derive(Debug, Default, Clone)]
pub struct FileReport {
    /// Cases that passed on every target.
    pub passed: usize,
    /// Cases that failed on some target.
    pub failed: usize,
    /// One line per case (`ok` / `FAIL`), each failure with its diff.
    pub text: String,
}

/// Runs every case of `file` against every target. Coverage is recorded
/// from the target that has a tracer.
pub fn run_file(
    file: &TestFile,
    targets: &[Target<'_>],
    mut coverage: Option<&mut Coverage>,
    sources: &SourceMap,
) -> FileReport {
    let mut report = FileReport::default();
    for case in &file.cases {
        let results: Vec<Vec<Failure>> = targets
            .iter()
            .map(|t| {
                let cov = match (t.trace, coverage.as_deref_mut()) {
                    (Some(ev), Some(c)) => Some((ev, c)),
                    _ => None,
                };
                run_case(case, t.policy, file.clock, cov, sources)
            })
            .collect();
        if results.iter().all(Vec::is_empty) {
            report.passed += 1;
            let _ = writeln!(report.text, "  ok    {}", case.name);
            continue;
        }
        report.failed += 1;
        let agree = results
            .windows(2)
            .all(|w| w[0].len() == w[1].len() && w[0].iter().zip(&w[1]).all(|(a, b)| a.same(b)));
        if agree {
            // The last target is the evaluator, whose paths are the sources read.
            let _ = writeln!(
                report.text,
                "  FAIL  {}  ({})",
                case.name,
                sources.location(case.span)
            );
            for f in results.last().into_iter().flatten() {
                let _ = writeln!(report.text, "{}", indent(&f.text, 8));
            }
        } else {
            let _ = writeln!(
                report.text,
                "  FAIL  {}  ({}): the targets disagree, which is a compiler bug; please report it",
                case.name,
                sources.location(case.span)
            );
            for (t, r) in targets.iter().zip(&results) {
                let _ = writeln!(
                    report.text,
                    "        [{}]{}",
                    t.label,
                    if r.is_empty() { " passes" } else { "" }
                );
                for f in r {
                    let _ = writeln!(report.text, "{}", indent(&f.text, 10));
                }
            }
        }
    }
    report
}

fn indent(text: &str, n: usize) -> String {
    let pad = " ".repeat(n);
    text.lines()
        .map(|l| format!("{pad}{l}"))
        .collect::<Vec<_>>()
        .join("\n")
}

/// The rules and conditions a test run evaluated.
#[derive(Debug, Default, Clone)]
pub struct Coverage {
    rules: BTreeSet<RuleId>,
    /// Result rules (by name) a `result:` case exercised.
    results: BTreeSet<String>,
    /// Conditions by span (file included: a fragment's test may sit at the
    /// same offsets as one of the main file).
    tests: BTreeSet<Span>,
}

impl Coverage {
    fn record(&mut self, t: &Trace<'_>) {
        match t {
            Trace::Check { rule, .. }
            | Trace::Approve { rule, .. }
            | Trace::Limit { rule, .. }
            | Trace::Hidden { rule } => {
                self.rules.insert(*rule);
            }
            Trace::Test { rule, test, .. } => {
                self.rules.insert(*rule);
                self.tests.insert(test.loc.0);
            }
            _ => {}
        }
    }

    /// Records the rules the proxy's part after a decision used: the
    /// budgets a price was checked against, the window a duplicate hit or an
    /// allowed call opened.
    fn record_after(&mut self, r: &Replayed) {
        match r {
            Replayed::Decided { decision, budgets } => {
                self.rules.extend(budgets);
                self.rules.extend(decision.idempotency.map(|s| s.rule));
            }
            Replayed::Replayed { rule } | Replayed::Duplicate { rule, .. } => {
                self.rules.insert(*rule);
            }
            Replayed::Spend(refusal) => self.rules.extend(refusal.rule),
        }
    }

    /// What was never evaluated, as `file:line:col  what` lines, with (covered, total).
    pub fn uncovered(&self, p: &ServerPolicy, sources: &SourceMap) -> (Vec<String>, usize, usize) {
        let mut lines = Vec::new();
        let (mut covered, mut total) = (0, 0);
        // The conditions of per-caller hides (a plain hide has none).
        for h in &p.hidden {
            for t in h.when.iter().flat_map(|e| e.tests()) {
                total += 1;
                if self.tests.contains(&t.loc.0) {
                    covered += 1;
                } else {
                    lines.push(format!(
                        "{}  condition `{}` of {} never evaluated",
                        sources.location(t.loc.0),
                        crate::explain::describe_test(p, t),
                        p.rule(h.rule).label
                    ));
                }
            }
        }
        for r in &p.rules {
            if r.kind != RuleKind::Rule {
                continue;
            }
            total += 1;
            if self.rules.contains(&r.id) {
                covered += 1;
            } else {
                lines.push(format!(
                    "{}  rule {:?} ({}) never evaluated",
                    sources.location(r.loc.0),
                    r.name,
                    r.label
                ));
            }
            // The tests of its check, then of its approval condition.
            let tests = r
                .check
                .iter()
                .flat_map(|c| c.deny_when.tests())
                .chain(r.approve.iter().flat_map(|a| a.when.tests()));
            {
                for t in tests {
                    total += 1;
                    if self.tests.contains(&t.loc.0) {
                        covered += 1;
                    } else {
                        lines.push(format!(
                            "{}  condition `{}` of rule {:?} never evaluated",
                            sources.location(t.loc.0),
                            crate::explain::describe_test(p, t),
                            r.name
                        ));
                    }
                }
            }
        }
        // Result rules (a `result:` case on a tool call or a resource read
        // exercises one; the derived rule for unnormalised URIs is left
        // out: a test's URI must normalise).
        for r in &p.results {
            if r.target == crate::results::Target::Unnormalised {
                continue;
            }
            total += 1;
            if self.results.contains(&r.name) {
                covered += 1;
            } else {
                lines.push(format!(
                    "{}  result rule {} never checked an answer (no `result:` case)",
                    sources.location(r.loc.0),
                    r.name
                ));
            }
        }
        (lines, covered, total)
    }
}

/// A test file to run: its display path and its text.
#[derive(Debug, Clone)]
pub struct TestSource {
    /// Shown in reports; its file name names the server (`<server>.test.yaml`).
    pub path: String,
    /// The YAML.
    pub text: String,
}

/// The server a test file is for: its file name without `.test.yaml`.
pub fn server_of(path: &str) -> &str {
    let name = path.rsplit(['/', '\\']).next().unwrap_or(path);
    crate::TEST_FILE_SUFFIXES
        .iter()
        .find_map(|s| name.strip_suffix(s))
        .unwrap_or(name)
}

/// What a whole run came to.
#[derive(Debug, Default, Clone)]
pub struct SuiteReport {
    /// The report, per file and case.
    pub text: String,
    /// Cases that passed.
    pub passed: usize,
    /// Cases that failed.
    pub failed: usize,
    /// Test files that could not be read (their diagnostics are in `text`).
    pub errors: usize,
    /// With coverage: what no case evaluated.
    pub coverage: Option<CoverageReport>,
}

impl SuiteReport {
    /// True when every case passed and every file was read.
    pub fn ok(&self) -> bool {
        self.failed == 0 && self.errors == 0
    }

    /// Adds another run's results.
    pub fn merge(&mut self, other: SuiteReport) {
        self.text.push_str(&other.text);
        self.passed += other.passed;
        self.failed += other.failed;
        self.errors += other.errors;
        if let Some(o) = other.coverage {
            let c = self.coverage.get_or_insert_with(CoverageReport::default);
            c.uncovered.extend(o.uncovered);
            c.covered += o.covered;
            c.total += o.total;
        }
    }
}

/// Rules and conditions no case evaluated.
#[derive(Debug, Default, Clone)]
pub struct CoverageReport {
    /// `file:line:col  what` lines.
    pub uncovered: Vec<String>,
    /// Items evaluated by some case.
    pub covered: usize,
    /// Every rule and every condition.
    pub total: usize,
}

impl CoverageReport {
    /// Covered items as a percentage (100 when there is nothing to cover).
    pub fn percent(&self) -> f64 {
        if self.total == 0 {
            100.0
        } else {
            self.covered as f64 * 100.0 / self.total as f64
        }
    }
}

/// Runs test files against the policies of `set`: each file against the
/// reference evaluator and, when `compiled` has a policy for the server
/// with the same digest, against that compiled policy too.
pub fn run_suite(
    set: &crate::ir::PolicySet,
    tests: &[TestSource],
    compiled: &dyn Fn(&str) -> Option<&'static dyn Policy>,
    with_coverage: bool,
) -> SuiteReport {
    let mut sources = set.sources.clone();
    let evaluators: Vec<Evaluator> = set
        .servers
        .iter()
        .map(|p| Evaluator::new(p.clone(), &set.sources))
        .collect();
    let mut coverage: Vec<Coverage> = vec![Coverage::default(); evaluators.len()];
    let mut report = SuiteReport::default();
    for t in tests {
        let file = sources.add(crate::source::SourceFile::new(&t.path, t.text.as_str()));
        let parsed = parse(file, &t.text);
        let server = server_of(&t.path);
        let index = set.servers.iter().position(|p| p.name == server);
        let Some(index) = index else {
            report.errors += 1;
            let known: Vec<&str> = set.servers.iter().map(|p| p.name.as_str()).collect();
            let mut d = Diagnostic::error(
                format!("no policy for server `{server}`"),
                Span::new(file, 0, 0),
            );
            d = match crate::source::did_you_mean(server, &known) {
                Some(k) => d.with_help(format!("a test file is named after its server: did you mean `{k}.test.yaml`?")),
                None => d.with_help(format!(
                    "a test file is named `<server>.test.yaml` and sits beside `<server>.yaml` or `<server>.policy`; servers here: {}",
                    known.join(", ")
                )),
            };
            let _ = writeln!(report.text, "{}", d.render(&sources));
            continue;
        };
        let parsed = match parsed {
            Ok(p) => p,
            Err(diags) => {
                report.errors += 1;
                for d in diags {
                    let _ = writeln!(report.text, "{}", d.render(&sources));
                }
                continue;
            }
        };
        let ev = &evaluators[index];
        let mut targets = Vec::new();
        let mut note = "";
        match compiled(server) {
            Some(c) if c.meta().digest == ev.meta().digest => targets.push(Target {
                label: "compiled",
                policy: c,
                trace: None,
            }),
            Some(_) => {
                note = "; the embedded policy differs from this source, so only the evaluator runs"
            }
            None => {}
        }
        targets.push(Target {
            label: "evaluator",
            policy: ev,
            trace: Some(ev),
        });
        let labels: Vec<&str> = targets.iter().map(|t| t.label).collect();
        let _ = writeln!(
            report.text,
            "{} -> {} ({}){note}",
            t.path,
            ev.ir().path,
            labels.join(" + ")
        );
        let r = run_file(
            &parsed,
            &targets,
            with_coverage.then_some(&mut coverage[index]),
            &sources,
        );
        report.text.push_str(&r.text);
        report.passed += r.passed;
        report.failed += r.failed;
    }
    if with_coverage {
        let mut c = CoverageReport::default();
        for (p, cov) in set.servers.iter().zip(&coverage) {
            let (lines, covered, total) = cov.uncovered(p, &sources);
            c.uncovered.extend(lines);
            c.covered += covered;
            c.total += total;
        }
        report.coverage = Some(c);
    }
    report
}

#[cfg(test)]
mod tests {
    use super::*;

    const POLICY: &str = r#"server shop {
  tool buy {
    spend <= $1 per call
    spend <= $2 per day as daily -> "Daily budget spent"
  }
  tool refund {
    once per 5m by args.order
  }
  tool mail {
    once per 1h refuse -> "Already sent"
  }
}
"#;

    fn suite(tests: &str) -> SuiteReport {
        let set = crate::compile(&[crate::Input {
            server: "shop".into(),
            path: "shop.policy".into(),
            text: POLICY.into(),
        }])
        .into_set()
        .unwrap_or_else(|o| panic!("{}", o.render()));
        let tests = [TestSource {
            path: "shop.test.yaml".into(),
            text: tests.into(),
        }];
        run_suite(&set, &tests, &|_| None, true)
    }

    #[test]
    fn prices_are_checked_against_the_budgets_and_paid_ones_add_up() {
        let r = suite(
            r#"cases:
  - name: budgets
    calls:
      - {tool: buy, price: "1.00 usd", expect: allow}
      - {tool: buy, price: "1.000001 usd", expect: deny, rule: "spend <= 1 usd per call"}
      - {tool: buy, price: "0.60 usd", upstream: error, expect: allow}
      - {tool: buy, price: "1 usd", expect: allow}
      - {tool: buy, price: "0.01 usd", expect: deny, rule: daily, message: Daily budget spent}
      - {tool: buy, price: "5 eur", expect: deny, message: "Payment for buy refused: it asks 5.00 eur, and no budget of this tool is in eur"}
      - {tool: buy, expect: allow}
"#,
        );
        assert!(r.ok(), "{}", r.text);
        // A price the budget does not allow, expected to pass, is a readable failure.
        let r = suite(
            "cases:\n  - name: too dear\n    calls:\n      - {tool: buy, price: \"1.50 usd\", expect: allow}\n",
        );
        assert_eq!(r.failed, 1, "{}", r.text);
        assert!(
            r.text.contains("buy {} (price 1.50 usd)\n            expected  allow\n            got       deny: Spend budget \"spend <= 1 usd per call\" exceeded: buy asks 1.50 usd; at most 1.00 usd per call\n                      (rule \"spend <= 1 usd per call\", tool buy rule 1, shop.policy:3)"),
            "{}",
            r.text
        );
    }

    #[test]
    fn identical_calls_are_replayed_or_refused_within_the_window_only() {
        let r = suite(
            r#"cases:
  - name: replay by order
    calls:
      - {tool: refund, args: {order: 7, amount: 1}, expect: allow}
      - {tool: refund, args: '{"amount": 2, "order": 7.0}', expect: replay, rule: "once per 5m"}
      - {tool: refund, args: {order: 8}, expect: allow}
      - {tool: refund, args: {order: 7}, at: "2026-01-15T10:35:00Z", expect: allow}
  - name: a failed first call is not remembered
    calls:
      - {tool: refund, args: {order: 1}, upstream: error, expect: allow}
      - {tool: refund, args: {order: 1}, expect: allow}
      - {tool: refund, args: {order: 1}, expect: replay}
  - name: refuse
    calls:
      - {tool: mail, args: {to: a}, expect: allow}
      - {tool: mail, args: {to: a}, expect: deny, message: Already sent, rule: "once per 1h"}
      - {tool: mail, args: {to: b}, expect: allow}
"#,
        );
        assert!(r.ok(), "{}", r.text);
        let r = suite(
            "cases:\n  - name: retried\n    calls:\n      - {tool: refund, args: {order: 1}, expect: allow}\n      - {tool: refund, args: {order: 1}, expect: allow}\n",
        );
        assert_eq!(r.failed, 1, "{}", r.text);
        assert!(
            r.text.contains("expected  allow\n            got       replay\n                      (rule \"once per 5m\""),
            "{}",
            r.text
        );
    }

    #[test]
    fn coverage_counts_budgets_and_windows_a_case_hit() {
        let r = suite(
            "cases:\n  - name: one of each\n    calls:\n      - {tool: buy, price: \"3 usd\", expect: deny}\n      - {tool: refund, expect: allow}\n",
        );
        assert!(r.ok(), "{}", r.text);
        let c = r.coverage.unwrap();
        // The per-call budget refused the price; the daily one was never
        // reached; the refund window applied; the mail window never did.
        assert_eq!((c.covered, c.total), (2, 4), "{:#?}", c.uncovered);
        assert!(
            c.uncovered
                .iter()
                .any(|l| l.starts_with("shop.policy:4:5  rule \"daily\"")),
            "{:#?}",
            c.uncovered
        );
        assert!(
            c.uncovered
                .iter()
                .any(|l| l.starts_with("shop.policy:10:5  rule \"once per 1h\"")),
            "{:#?}",
            c.uncovered
        );
    }

    #[test]
    fn principal_blocks_are_claims_and_bad_ones_are_positioned_diagnostics() {
        let text = "cases:\n  - name: x\n    principal: {sub: alice, iss: i, groups: [a], org: {team: t}}\n    calls:\n      - {tool: t, expect: allow}\n      - {tool: t, principal: null, expect: allow}\n      - {tool: t, principal: {sub: bob, iss: i, scope: \"r w\"}, expect: allow}\n";
        let file = parse(FileId(0), text).unwrap();
        let case = &file.cases[0];
        let p = case.principal.as_ref().unwrap();
        assert_eq!((p.sub(), p.iss()), ("alice", "i"));
        assert_eq!(
            p.claim("org").unwrap().as_bytes(),
            br#"{"team":"t"}"#,
            "nested mappings are JSON objects"
        );
        assert!(case.calls[0].principal.is_none(), "the case's caller");
        assert!(matches!(case.calls[1].principal, Some(None)), "no caller");
        let bob = case.calls[2].principal.clone().flatten().unwrap();
        assert_eq!(bob.sub(), "bob");
        assert!(bob.has_scope("r") && bob.has_scope("w"));
        for (block, want, at) in [
            (
                "{iss: i}",
                "`principal`: the claims have no `sub` string",
                "{iss",
            ),
            (
                "{sub: 1, iss: i}",
                "the claims have no `sub` string",
                "{sub",
            ),
            ("{sub: a}", "the claims have no `iss` string", "{sub"),
            (
                "[a]",
                "`principal` must be a mapping of token claims",
                "[a]",
            ),
        ] {
            let text = format!(
                "cases:\n  - name: x\n    calls:\n      - {{tool: t, principal: {block}, expect: allow}}\n"
            );
            let diags = parse(FileId(0), &text).expect_err(block);
            let d = diags
                .iter()
                .find(|d| d.message.contains(want))
                .unwrap_or_else(|| panic!("{block}: no {want:?} in {diags:#?}"));
            assert_eq!(d.span.unwrap().start, text.find(at).unwrap(), "{block}");
        }
    }

    #[test]
    fn bad_prices_and_misplaced_keys_are_positioned_diagnostics() {
        let check = |call: &str, want: &str, at: &str| {
            let text = format!("cases:\n  - name: x\n    calls:\n      - {call}\n");
            let diags = parse(FileId(0), &text).expect_err(call);
            let d = diags
                .iter()
                .find(|d| d.message.contains(want))
                .unwrap_or_else(|| panic!("{call}: no {want:?} in {diags:#?}"));
            let span = d.span.expect("positioned");
            assert_eq!(span.start, text.find(at).unwrap(), "{call}: {d:#?}");
        };
        check(
            r#"{tool: buy, price: "0.6.0 usd", expect: allow}"#,
            "price amount `0.6.0` is not a plain decimal amount",
            "\"0.6.0",
        );
        check(
            r#"{tool: buy, price: "1e2 usd", expect: allow}"#,
            "price amount `1e2` is not a plain decimal",
            "\"1e2",
        );
        check(
            r#"{tool: buy, price: "0.0000001 usd", expect: allow}"#,
            "more precise than a millionth",
            "\"0.0000001",
        );
        check(
            r#"{tool: buy, price: "0.50 doubloons", expect: allow}"#,
            "price currency `doubloons` is unknown",
            "\"0.50 doubloons",
        );
        check(
            r#"{tool: buy, price: 0.50, expect: allow}"#,
            "price \"0.50\" is not an amount and a currency",
            "0.50,",
        );
        check(
            r#"{tool: buy, prize: "1 usd", expect: allow}"#,
            "unknown key `prize` in a call",
            "prize",
        );
        check(
            r#"{tool: buy, expect: replay, message: hi}"#,
            "`message` is checked on denials and approval requests only, and this call expects `replay`",
            "hi}",
        );
        check(
            r#"{tool: buy, expect: replayed}"#,
            "expect must be `allow`, `deny`, `replay` or `approve`",
            "replayed",
        );
        check(
            r#"{tool: buy, approved: yes, expect: allow}"#,
            "approved must be `true` or `false`",
            "yes",
        );
        check(
            r#"{tool: buy, approved: true, expect: approve}"#,
            "an approved call is never held for approval again",
            "true",
        );
        check(
            r#"{tool: buy, expect: allow, rule: r}"#,
            "`rule` is checked on denials and approval requests only",
            "r}",
        );
    }
}
