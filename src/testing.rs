//! Decision tables for snapshot tests of a policy's behaviour.
//!
//! ```ignore
//! use portcullis::testing::{call, decision_table};
//!
//! #[test]
//! fn everything_policy() {
//!     let policy = portcullis::embedded::policy("everything").unwrap();
//!     insta::assert_yaml_snapshot!(decision_table(policy, &[
//!         call("echo", r#"{"message":"hi"}"#),
//!         call("get-sum", r#"{"a":1,"b":2}"#),
//!         call("get-env", "{}"),
//!     ]));
//! }
//! ```
//!
//! The calls run in order on fresh in-memory counters, so rate limits and
//! spend caps show in the table. Each row holds the call, the effect, the
//! deciding rule's name and the denial message: a stable, readable record
//! that `cargo insta review` turns into a reviewable behaviour diff.
//!
//! For a policy with result rules (docs/results.md), each allowed tool call
//! and resource read also names the rule that checks its answer
//! (`results`), and a call given an answer (`.answer(JSON)`) shows what
//! the rule does to it (`answer`: pass, redact or deny).

use serde::Serialize;

use portcullis_core::Policy;
use portcullis_core::counters::UnixMillis;
use portcullis_core::policy::Effect;
use portcullis_core::replay::Replay;

pub use portcullis_core::replay::DEFAULT_CLOCK;

/// One call of a decision table.
#[derive(Debug, Clone)]
pub struct Call {
    surface: portcullis_core::call::Surface,
    tool: String,
    args: String,
    at: Option<String>,
    upstream_error: bool,
    claims: Option<String>,
    answer: Option<String>,
}

/// A call of `tool` with `args` (JSON text).
pub fn call(tool: &str, args: &str) -> Call {
    Call {
        surface: portcullis_core::call::Surface::Tool,
        tool: tool.to_string(),
        args: args.to_string(),
        at: None,
        upstream_error: false,
        claims: None,
        answer: None,
    }
}

/// A `resources/read` of `uri` (decided on its normalised form, as the
/// proxy decides it; a URI that cannot be normalised is `refused`).
pub fn resource(uri: &str) -> Call {
    Call {
        surface: portcullis_core::call::Surface::Resource,
        ..call(uri, "{}")
    }
}

/// A `prompts/get` of `name` with `args` (JSON text).
pub fn prompt(name: &str, args: &str) -> Call {
    Call {
        surface: portcullis_core::call::Surface::Prompt,
        ..call(name, args)
    }
}

impl Call {
    /// Moves the clock to `rfc3339` (e.g. `"2026-01-15T10:31:00Z"`) from this call on.
    pub fn at(mut self, rfc3339: &str) -> Call {
        self.at = Some(rfc3339.to_string());
        self
    }

    /// This call is made by the caller with these token claims (JSON text
    /// with `sub` and `iss`), read by the policy's `principal.*` paths.
    /// Without it the caller is unknown.
    pub fn as_caller(mut self, claims: &str) -> Call {
        self.claims = Some(claims.to_string());
        self
    }

    /// The server answers with this `result` (JSON text, e.g.
    /// `{"content":[{"type":"text","text":"..."}]}`; for a resource,
    /// `{"contents":[...]}`): the row shows what the result rules do to it.
    pub fn answer(mut self, result: &str) -> Call {
        self.answer = Some(result.to_string());
        self
    }

    /// The upstream answers this call with an error: its counters are rolled back.
    pub fn upstream_error(mut self) -> Call {
        self.upstream_error = true;
        self
    }
}

/// A policy's decisions on a sequence of calls; serialises to YAML.
#[derive(Debug, Clone, Serialize, PartialEq, Eq)]
pub struct DecisionTable {
    /// The server the policy is for.
    pub server: String,
    /// Its dialect (`intercept-v1`, `catalogue`, `dsl`).
    pub dialect: String,
    /// One row per call, in order.
    pub rows: Vec<Row>,
}

/// One call and its decision.
#[derive(Debug, Clone, Serialize, PartialEq, Eq)]
pub struct Row {
    /// `tool {arguments}`, with the clock when the call moved it.
    pub call: String,
    /// `allow`, `deny`, or `refused` for arguments the proxy would not parse.
    pub effect: &'static str,
    /// The deciding rule's name, for a denial.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub rule: Option<String>,
    /// What the agent is told, for a denial (without the `[POLICY DENIED] ` prefix).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub message: Option<String>,
    /// For a policy with result rules, an allowed tool call or resource
    /// read: the result rule that checks its answer (`none` when none does).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub results: Option<String>,
    /// For a call given an answer: what the result rule does to it
    /// (`pass`, `redact: NAME xN, ...`, `deny: MESSAGE`).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub answer: Option<String>,
}

/// The result rule checking the answer of `name` on `surface` (a resource
/// by its URI as sent, normalised as the proxy does), as the row shows it,
/// and what it does to `answer`. (None, None) for a policy without result
/// rules and for prompts (their answers are not checked).
fn answer_of(
    policy: &dyn Policy,
    surface: portcullis_core::call::Surface,
    name: &str,
    answer: Option<&str>,
) -> (Option<String>, Option<String>) {
    use portcullis_core::call::Surface;
    use portcullis_core::results::{Verdict, check};
    if policy.result_rules().is_empty() || surface == Surface::Prompt {
        return (None, None);
    }
    let rule = match surface {
        Surface::Resource => policy.resource_result_rule(name),
        _ => policy.result_rule(name),
    };
    let shown = Some(rule.map_or("none", |r| r.spec.name).to_string());
    let Some(result) = answer else {
        return (shown, None);
    };
    let message = format!(r#"{{"jsonrpc":"2.0","id":1,"result":{result}}}"#);
    portcullis_core::json::validate(
        message.as_bytes(),
        portcullis_core::json::Strictness::LENIENT,
    )
    .unwrap_or_else(|e| panic!("the answer {result} is not JSON: {e}"));
    let did = match rule.map(|r| (r, check(r, message.as_bytes()))) {
        None | Some((_, Verdict::Pass)) => "pass".to_string(),
        Some((_, Verdict::Redacted { counts, .. })) => format!(
            "redact: {}",
            counts
                .iter()
                .map(|c| format!("{} x{}", c.name, c.count))
                .collect::<Vec<_>>()
                .join(", ")
        ),
        Some((r, Verdict::Denied { why, .. })) => format!("deny: {}", why.message(r, name)),
    };
    (shown, Some(did))
}

/// Runs `calls` in order against `policy` on fresh counters.
///
/// # Panics
/// When a call's `at` is not an RFC 3339 time, or its caller's claims make
/// no principal (mistakes in the test itself).
pub fn decision_table(policy: &dyn Policy, calls: &[Call]) -> DecisionTable {
    let mut replay = Replay::default();
    let meta = policy.meta();
    let mut rows = Vec::with_capacity(calls.len());
    for c in calls {
        use portcullis_core::call::Surface;
        let mut shown = match c.surface {
            Surface::Tool => format!("{} {}", c.tool, c.args.trim()),
            Surface::Resource => format!("resource {}", c.tool),
            Surface::Prompt => format!("prompt {} {}", c.tool, c.args.trim()),
        };
        if let Some(at) = &c.at {
            replay.set_clock(
                UnixMillis::parse_rfc3339(at)
                    .unwrap_or_else(|| panic!("`{at}` is not an RFC 3339 time")),
            );
            shown.push_str(&format!(" at {at}"));
        }
        if c.upstream_error {
            shown.push_str(" (upstream error)");
        }
        let principal = c.claims.as_ref().map(|claims| {
            portcullis_core::Principal::from_claims(claims.as_bytes().to_vec())
                .unwrap_or_else(|e| panic!("caller claims {claims}: {e}"))
        });
        if let Some(p) = &principal {
            shown.push_str(&format!(" as {}", p.sub()));
        }
        replay.set_principal(principal);
        let name = match c.surface {
            Surface::Resource => match portcullis_core::uri::normalize(&c.tool) {
                Ok(n) => n,
                // A policy without resource rules does not decide reads:
                // forwarded, its answer checked by the rule for such URIs.
                Err(_) if !policy.governs(Surface::Resource) => {
                    let (results, answer) =
                        answer_of(policy, c.surface, &c.tool, c.answer.as_deref());
                    rows.push(Row {
                        call: shown,
                        effect: "allow",
                        rule: None,
                        message: None,
                        results,
                        answer,
                    });
                    continue;
                }
                Err(e) => {
                    rows.push(Row {
                        call: shown,
                        effect: "refused",
                        rule: None,
                        message: Some(format!("the URI cannot be normalised: {}", e.kind)),
                        results: None,
                        answer: None,
                    });
                    continue;
                }
            },
            _ => c.tool.clone(),
        };
        let surface = c.surface;
        let decided = replay.call_with(&name, &c.args, c.upstream_error, |call, env, ticket| {
            policy.decide(&call.clone().with_surface(surface), env, ticket)
        });
        let row = match decided {
            Err(e) => Row {
                call: shown,
                effect: "refused",
                rule: None,
                message: Some(e.to_string()),
                results: None,
                answer: None,
            },
            Ok(d) if d.effect() == Effect::Allow => {
                let (results, answer) = answer_of(policy, surface, &c.tool, c.answer.as_deref());
                Row {
                    call: shown,
                    effect: "allow",
                    rule: None,
                    message: None,
                    results,
                    answer,
                }
            }
            Ok(d) => Row {
                call: shown,
                effect: if d.effect() == Effect::Approve {
                    "approve"
                } else {
                    "deny"
                },
                rule: d
                    .rule
                    .and_then(|r| meta.rule(r))
                    .map(|r| r.name.to_string()),
                message: Some(d.message_on(surface, &name).into_owned()),
                results: None,
                answer: None,
            },
        };
        rows.push(row);
    }
    DecisionTable {
        server: meta.server.to_string(),
        dialect: meta.dialect.to_string(),
        rows,
    }
}
