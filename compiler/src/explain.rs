//! `portcullis explain`: how a policy decides one call, step by step.
//!
//! Runs the reference evaluator with a tracer and prints which rules applied,
//! each condition in the policy language's notation with the value it saw,
//! each limit with its counter, the deciding rule with its file:line, and
//! the result.

use std::fmt::Write as _;

use portcullis_core::call::{Surface, ToolCall};
use portcullis_core::counters::{Calendar, MemoryCounters, UnixMillis, Window};
use portcullis_core::json::Strictness;
use portcullis_core::ops::AmountFault;
use portcullis_core::policy::{Effect, Env, FailMode, Outcome, Policy, RuleId};
use portcullis_core::principal::Principal;
use portcullis_core::spend::{self, Budgets};

use crate::eval::{Evaluator, Trace};
use crate::ir::{Amount, Const, Expr, Operand, Partition, RuleKind, ServerPolicy, Test, TestKind};
use crate::source::SourceMap;

/// A test written in the policy language's notation (`args.amount <= 10000`).
pub fn describe_test(p: &ServerPolicy, t: &Test) -> String {
    let op = |o: &Operand| -> String {
        match o {
            Operand::Arg(a) => a.display(),
            Operand::Len(a) => format!("len({})", a.display()),
            Operand::Counter(c) => p.counter(*c).display.clone(),
            Operand::Const(Const::Str(s)) => crate::syntax::dsl_fmt::string(s),
            Operand::Const(c) => c.to_string(),
        }
    };
    match &t.kind {
        TestKind::Cmp { lhs, op: c, rhs } => format!("{} {} {}", op(lhs), c.symbol(), op(rhs)),
        TestKind::In { lhs, list, negated } => format!(
            "{} {}in [{}]",
            op(lhs),
            if *negated { "not " } else { "" },
            list.iter()
                .map(|c| op(&Operand::Const(c.clone())))
                .collect::<Vec<_>>()
                .join(", ")
        ),
        TestKind::Contains { lhs, rhs } => format!("{} contains {}", op(lhs), op(rhs)),
        TestKind::StartsWith { lhs, rhs } => format!("{} starts_with {}", op(lhs), op(rhs)),
        TestKind::EndsWith { lhs, rhs } => format!("{} ends_with {}", op(lhs), op(rhs)),
        TestKind::Matches { lhs, regex } => {
            let re = p.regex(*regex);
            format!("{} matches /{}/{}", op(lhs), re.source, re.flags)
        }
        TestKind::Exists { operand, expect } => {
            format!(
                "{}exists({})",
                if *expect { "" } else { "not " },
                op(operand)
            )
        }
        TestKind::Path {
            lhs,
            op: o,
            pattern,
            ..
        } => format!(
            "path({}) {} {}",
            op(lhs),
            o.dsl(),
            crate::syntax::dsl_fmt::string(pattern)
        ),
    }
}

/// Explains the decision on `tool` with `args` (JSON text), with fresh
/// counters at `now`, for the caller `principal` (None: an unknown caller,
/// whose principal paths read as missing).
pub fn explain(
    ev: &Evaluator,
    sources: &SourceMap,
    tool: &str,
    args: &str,
    now: UnixMillis,
    principal: Option<&Principal>,
) -> Result<String, String> {
    explain_on(ev, sources, Surface::Tool, tool, args, now, principal)
}

/// [`explain`] for a request on any surface: a tool call, a resource read
/// (`name` is the URI, explained as normalised) or a prompt request.
pub fn explain_on(
    ev: &Evaluator,
    sources: &SourceMap,
    surface: Surface,
    name: &str,
    args: &str,
    now: UnixMillis,
    principal: Option<&Principal>,
) -> Result<String, String> {
    let normalised;
    let tool = if surface == Surface::Resource {
        normalised = match portcullis_core::uri::normalize(name) {
            Ok(n) => n,
            Err(e) if ev.governs(Surface::Resource) => {
                return Err(format!(
                    "the URI `{name}` cannot be normalised ({e}): the proxy denies reading it"
                ));
            }
            Err(e) => {
                // Not decided (no resource rules): forwarded, and its answer
                // gets the rule for URIs that cannot be normalised.
                let mut out = format!(
                    "read     {name}\n         cannot be normalised: {e}\nresult   ALLOW (not decided: the policy has no resource rules; the proxy forwards the request)\n"
                );
                if let Some(line) = answer_line(ev, sources, surface, name) {
                    out.push_str(&line);
                }
                return Ok(out);
            }
        };
        normalised.as_str()
    } else {
        name
    };
    let call = ToolCall::on(surface, tool, args.as_bytes(), Strictness::STRICT)
        .map_err(|e| format!("the arguments: {e}"))?;
    let p = ev.ir();
    let view = ev.view(surface);
    let meta = ev.meta();
    let where_ = |id: RuleId| {
        let r = p.rule(id);
        sources.location(r.loc.0)
    };
    let mut events: Vec<String> = Vec::new();
    let counters = MemoryCounters::new();
    let env = Env {
        counters: &counters,
        now,
        session: 0,
        fail_mode: FailMode::Closed,
        principal,
    };
    let mut seen_tests: Vec<Seen> = Vec::new();
    let mut no_partition = false;
    let hide_when = |rule: RuleId| {
        view.hidden
            .iter()
            .find(|h| h.rule == rule)
            .and_then(|h| h.when.as_ref())
    };
    let mut ticket = portcullis_core::counters::Ticket::EMPTY;
    let decision = ev.decide_traced(&call, &env, &mut ticket, &mut |t| match t {
        Trace::Hidden { rule } => {
            events.push(format!("hidden   by {} ({})", p.rule(rule).label, where_(rule)));
            if let Some(e) = hide_when(rule) {
                events.push("    for this caller: hidden when".to_string());
                tree(p, e, 3, &seen_tests, &mut events);
            }
            seen_tests.clear();
        }
        Trace::NotHidden { rule } => {
            events.push(format!("visible  {} ({}) does not hide it from this caller", p.rule(rule).label, where_(rule)));
            if let Some(e) = hide_when(rule) {
                events.push("    hidden only when".to_string());
                tree(p, e, 3, &seen_tests, &mut events);
            }
            seen_tests.clear();
        }
        Trace::NoPartition { rule } => {
            no_partition = true;
            let r = p.rule(rule);
            if let Some(l) = &r.limit {
                let c = p.counter(l.counter);
                events.push(format!(
                    "  limit {:?} ({}, {})\n    counter {} ({}, {})\n    => DENIES: the caller has no value to count by (fail closed)",
                    r.name,
                    r.label,
                    where_(rule),
                    c.display,
                    window(c.window),
                    partition(&c.partition, &call, principal)
                ));
            }
        }
        Trace::Unlisted => events.push(format!("listed   by no {} block", surface.name())),
        Trace::Rules { rules } => {
            let blocks: Vec<String> = view
                .blocks_for(tool)
                .map(|b| format!("{} ({})", b.patterns.iter().map(|x| x.text()).collect::<Vec<_>>().join(", "), sources.location(b.loc.0)))
                .collect();
            if !blocks.is_empty() {
                events.push(format!("listed   by {} {}", surface.name(), blocks.join(", ")));
            }
            events.push(format!("rules    {} apply, in order", rules.len()));
        }
        Trace::Test { test, seen, result, .. } => {
            let values: Vec<String> = test
                .operands()
                .iter()
                .zip(&seen)
                .filter_map(|(o, v)| {
                    let v = v.as_ref()?;
                    let name = match o {
                        Operand::Arg(a) => a.display(),
                        Operand::Len(a) => format!("len({})", a.display()),
                        Operand::Counter(c) => p.counter(*c).display.clone(),
                        Operand::Const(_) => return None,
                    };
                    Some(format!("{name} = {v}"))
                })
                .collect();
            seen_tests.push(Seen {
                span: test.loc.0,
                values: values.join(", "),
                result,
            });
        }
        Trace::Check { rule, denied } => {
            let r = p.rule(rule);
            events.push(format!("  rule {:?} ({}, {})", r.name, r.label, where_(rule)));
            if let Some(c) = &r.check {
                match &c.deny_when {
                    Expr::Bool(true) => events.push("    denies unconditionally".to_string()),
                    Expr::Not(inner) => {
                        events.push("    denies unless".to_string());
                        tree(p, inner, 3, &seen_tests, &mut events);
                    }
                    e => {
                        events.push("    denies when".to_string());
                        tree(p, e, 3, &seen_tests, &mut events);
                    }
                }
            }
            seen_tests.clear();
            events.push(
                if denied { "    => DENIES (the rules and limits after it are not evaluated)" } else { "    => passes" }
                    .to_string(),
            );
        }
        Trace::Approve { rule, asked } => {
            let r = p.rule(rule);
            events.push(format!("  approval rule {:?} ({}, {})", r.name, r.label, where_(rule)));
            if let Some(a) = &r.approve {
                match &a.when {
                    Expr::Bool(true) => events.push("    asks unconditionally".to_string()),
                    e => {
                        events.push("    asks when".to_string());
                        tree(p, e, 3, &seen_tests, &mut events);
                    }
                }
            }
            seen_tests.clear();
            events.push(
                if asked { "    => ASKS FOR APPROVAL (the limits are only read: one that would refuse the call denies it now; nothing is reserved until it is approved)" } else { "    => passes" }
                    .to_string(),
            );
        }
        Trace::Limit { rule, amount, current } => {
            let r = p.rule(rule);
            let Some(l) = &r.limit else { return };
            let c = p.counter(l.counter);
            let amount = match (amount, &l.amount) {
                (Ok(n), Amount::Const(_)) => format!("+{n}"),
                (Ok(n), Amount::Arg { path, .. }) => format!("+{n} ({})", path.display()),
                (Err(AmountFault::Missing), _) => "amount missing or not a number".into(),
                (Err(AmountFault::Invalid), _) => "amount not a whole number in range".into(),
            };
            let window = window(c.window);
            let partition = partition(&c.partition, &call, principal);
            events.push(format!(
                "  limit {:?} ({}, {})\n    counter {} ({window}, {partition})\n      = {} now (fresh state), {amount}, at most {}",
                r.name,
                r.label,
                where_(rule),
                c.display,
                current.map_or_else(|| "?".into(), |v| v.to_string()),
                l.max
            ));
        }
    });
    let mut out = String::new();
    let _ = writeln!(
        out,
        "policy   {} ({}, {}, sha256:{})",
        meta.server,
        meta.file,
        meta.dialect,
        meta.digest.get(..16).unwrap_or(meta.digest)
    );
    if let Some(c) = meta.approval_config
        && let Some(url) = c.webhook_url
    {
        let signed = match (c.secret_env, c.secret) {
            (Some(env), _) => format!("signed with the secret in ${env}"),
            (None, Some(_)) => "signed with the secret written in the policy".to_string(),
            (None, None) => "unsigned".to_string(),
        };
        let _ = writeln!(
            out,
            "approvals new requests are announced to {url} ({signed})"
        );
    }
    match surface {
        Surface::Tool => {
            let _ = writeln!(out, "call     {tool} {}", args.trim());
        }
        Surface::Resource => {
            let _ = writeln!(out, "read     {tool}");
        }
        Surface::Prompt => {
            let _ = writeln!(out, "prompt   {tool} {}", args.trim());
        }
    }
    match principal {
        Some(pr) => {
            let _ = writeln!(
                out,
                "caller   sub {:?}, iss {:?}, scopes [{}]",
                pr.sub(),
                pr.iss(),
                pr.scopes()
                    .iter()
                    .map(|s| format!("{s:?}"))
                    .collect::<Vec<_>>()
                    .join(", ")
            );
        }
        None if reads_principal(p) => {
            let _ = writeln!(
                out,
                "caller   none (every principal.* path reads as missing; give one with --claims)"
            );
        }
        None => {}
    }
    out.push('\n');
    for e in &events {
        let _ = writeln!(out, "{e}");
    }
    out.push('\n');
    match decision.effect() {
        Effect::Allow => {
            let _ = writeln!(
                out,
                "result   ALLOW{}",
                if ticket.is_empty() {
                    ""
                } else {
                    " (counters reserved)"
                }
            );
            if let Some(spec) = decision.idempotency {
                let r = p.rule(spec.rule);
                let key = if spec.by.is_empty() {
                    "the tool and all its arguments (canonical: key order, whitespace and number spelling do not matter)".to_string()
                } else {
                    let paths: Vec<String> = spec
                        .by
                        .iter()
                        .map(|s| format!("args.{}", s.join(".")))
                        .collect();
                    format!("the tool and {}", paths.join(", "))
                };
                let _ = writeln!(
                    out,
                    "once     idempotency window {} ({}), by rule {:?} ({}, {})\n         key: {key}; per caller (the token's iss + sub, or the local user)\n         an identical call within the window {}",
                    crate::ir::show_duration(spec.window_ms),
                    spec.mode.name(),
                    r.name,
                    r.label,
                    where_(spec.rule),
                    match spec.mode {
                        portcullis_core::idempotency::IdempotencyMode::Replay =>
                            "gets this call's answer again (a failed call is not remembered)"
                                .to_string(),
                        portcullis_core::idempotency::IdempotencyMode::Refuse =>
                            format!("is denied: [POLICY DENIED] {}", spec.message),
                    }
                );
            }
            budgets(ev, sources, &call, &env, &mut out);
        }
        Effect::Approve => {
            let id = decision.rule.unwrap_or(RuleId(0));
            let r = p.rule(id);
            let _ = writeln!(
                out,
                "result   APPROVAL REQUIRED by rule {:?} ({})",
                r.name,
                where_(id)
            );
            if let Some(a) = meta.approval(id) {
                let _ = writeln!(out, "         message: {}", a.message);
                let _ = writeln!(
                    out,
                    "         ask: {}; timeout {}",
                    match (a.channels.client, a.channels.operator) {
                        (true, true) => "the user through the client when it supports elicitation, else an operator".to_string(),
                        (true, false) => "the user through the client (refused when the client cannot ask)".to_string(),
                        _ => "an operator (out of band)".to_string(),
                    },
                    duration(a.timeout_ms)
                );
            }
            let _ = writeln!(
                out,
                "         once approved the call is decided again without approval rules: deny rules and limits apply, counters are reserved then"
            );
            let _ = writeln!(
                out,
                "         the proxy refuses it meanwhile: [APPROVAL REQUIRED] {}",
                decision.message
            );
        }
        Effect::Deny => {
            let rule = decision.rule.map(|id| {
                let r = p.rule(id);
                match r.kind {
                    RuleKind::Hide => format!("{} ({})", r.label, where_(id)),
                    RuleKind::DefaultDeny => format!("the default ({})", where_(id)),
                    RuleKind::Rule => format!("rule {:?} ({})", r.name, where_(id)),
                }
            });
            let why = match decision.outcome {
                Outcome::Hidden => "hidden",
                Outcome::NotPermitted => "not listed; the default is deny",
                Outcome::Check => "condition",
                Outcome::Limit if no_partition => "no value to count the caller by",
                Outcome::Limit => "limit reached",
                Outcome::BadAmount => "bad amount",
                Outcome::StateUnavailable => "counter store unavailable",
                Outcome::Allowed => "allowed",
                Outcome::ApprovalRequired => "approval required",
            };
            let _ = writeln!(out, "result   DENY ({why}) by {}", rule.unwrap_or_default());
            let _ = writeln!(
                out,
                "         [POLICY DENIED] {}",
                decision.message_on(surface, tool)
            );
        }
    }
    // What happens to the answer (only for policies with result rules).
    if decision.effect() != Effect::Deny
        && let Some(line) = answer_line(ev, sources, surface, name)
    {
        out.push_str(&line);
    }
    Ok(out)
}

/// The `answer` line: the result rule that checks the answer of a call to
/// `name` (a tool, or a resource by its URI as sent, normalised as the proxy
/// does); None for a policy without result rules and for prompts (their
/// answers are not checked).
fn answer_line(
    ev: &Evaluator,
    sources: &SourceMap,
    surface: Surface,
    name: &str,
) -> Option<String> {
    let p = ev.ir();
    if p.results.is_empty() {
        return None;
    }
    let rule = match surface {
        Surface::Tool => ev.result_rule(name),
        Surface::Resource => ev.resource_result_rule(name),
        Surface::Prompt => return None,
    };
    Some(
        match rule.and_then(|r| p.results.iter().find(|i| i.name == r.spec.name)) {
            Some(r) => format!(
                "answer   checked by {} ({}): {}\n",
                r.name,
                sources.location(r.loc.0),
                r.summary()
            ),
            None if surface == Surface::Resource => {
                "answer   not checked: no result rule names resources\n".to_string()
            }
            None => "answer   not checked: no result rule names this tool\n".to_string(),
        },
    )
}

/// A counter's window, in words.
fn window(w: Window) -> String {
    match w {
        Window::Calendar(Calendar::Minute) => "calendar minute (UTC)".to_string(),
        Window::Calendar(Calendar::Hour) => "calendar hour (UTC)".to_string(),
        Window::Calendar(Calendar::Day) => "calendar day (UTC)".to_string(),
        Window::Sliding { millis } => format!("sliding {}", duration(millis)),
    }
}

/// Who shares a counter, with this call's partition value for an argument
/// or a principal path.
fn partition(p: &Partition, call: &ToolCall<'_>, principal: Option<&Principal>) -> String {
    match p {
        Partition::Global => "shared by every caller".to_string(),
        Partition::Session => "per agent session".to_string(),
        Partition::Arg(a)
            if a.root == crate::ir::Root::Principal(crate::ir::PrincipalField::Sub) =>
        {
            let v = principal.map_or_else(
                || "missing".to_string(),
                |p| format!("{:?} of {:?}", p.sub(), p.iss()),
            );
            format!("per caller, principal.sub of principal.iss (this caller: {v})")
        }
        Partition::Arg(a) => {
            let v = crate::eval::value(call, principal, a)
                .map_or_else(|| "missing".to_string(), crate::eval::show_val);
            let whose = if a.is_principal() {
                "this caller"
            } else {
                "this call"
            };
            format!("per {} ({whose}: {v})", a.display())
        }
    }
}

/// True when some condition, hide or counter of the policy reads a
/// `principal.*` path.
pub fn reads_principal(p: &ServerPolicy) -> bool {
    let expr_reads = |e: &Expr| {
        e.tests().iter().any(|t| {
            t.operands()
                .iter()
                .any(|o| matches!(o, Operand::Arg(a) | Operand::Len(a) if a.is_principal()))
        })
    };
    p.hidden
        .iter()
        .any(|h| h.when.as_ref().is_some_and(expr_reads))
        || p.rules
            .iter()
            .any(|r| r.check.as_ref().is_some_and(|c| expr_reads(&c.deny_when)))
        || p.counters
            .iter()
            .any(|c| matches!(&c.partition, Partition::Arg(a) if a.is_principal()))
}

/// The spend budgets (MPP) of an allowed call, one paragraph each: what a
/// price the server asks is checked against before the wallet sees it.
fn budgets(
    ev: &Evaluator,
    sources: &SourceMap,
    call: &ToolCall<'_>,
    env: &Env<'_>,
    out: &mut String,
) {
    let p = ev.ir();
    let mut found = Budgets::new();
    ev.spend(call, env, &mut found);
    for (i, b) in found.iter().enumerate() {
        let r = p.rule(b.rule);
        let Some(sp) = &r.spend else { continue };
        let currency = b.currency.unwrap_or("");
        let unit = |micros: u64| {
            if currency.is_empty() {
                spend::format(micros)
            } else {
                format!("{} {currency}", spend::format(micros))
            }
        };
        let _ = writeln!(
            out,
            "{}budget {:?} ({}, {}), {}",
            if i == 0 { "spend    " } else { "         " },
            r.name,
            r.label,
            sources.location(r.loc.0),
            match b.currency {
                Some(c) => format!("{c} only"),
                None => "any currency, each counted on its own".to_string(),
            }
        );
        if let Some(max) = b.per_call {
            let _ = writeln!(out, "           at most {} per call", unit(max));
        }
        if let Some((cid, max)) = sp.window {
            let c = p.counter(cid);
            let _ = writeln!(
                out,
                "           at most {} per window: counter {} ({}, {}), spent 0 now (fresh state)",
                unit(max),
                c.display,
                window(c.window),
                partition(&c.partition, call, env.principal)
            );
        }
        if let Some(why) = b.no_partition {
            let _ = writeln!(
                out,
                "           no value to count the caller by: every price is refused ({why})"
            );
        }
        if !b.message.is_empty() {
            let _ = writeln!(out, "           over budget: [POLICY DENIED] {}", b.message);
        }
    }
    if !found.is_empty() {
        let _ = writeln!(
            out,
            "         a price the server asks (MPP -32042) is checked against these before the wallet sees it;\n         a price in a currency no budget covers is denied"
        );
    }
}

/// One test as evaluated: where it is, the values it saw, its result.
struct Seen {
    span: crate::source::Span,
    values: String,
    result: bool,
}

/// A condition as an indented tree, each test with the values it saw and
/// its result (or `not evaluated` where evaluation stopped early).
fn tree(p: &ServerPolicy, e: &Expr, depth: usize, seen: &[Seen], out: &mut Vec<String>) {
    let mut rows: Vec<(String, Option<String>)> = Vec::new();
    tree_rows(p, e, depth, seen, &mut rows);
    let width = rows
        .iter()
        .filter(|(_, r)| r.is_some())
        .map(|(l, _)| l.len())
        .max()
        .unwrap_or(0);
    for (left, right) in rows {
        match right {
            Some(r) => out.push(format!("{left:<width$}  {r}").trim_end().to_string()),
            None => out.push(left),
        }
    }
}

fn tree_rows(
    p: &ServerPolicy,
    e: &Expr,
    depth: usize,
    seen: &[Seen],
    rows: &mut Vec<(String, Option<String>)>,
) {
    let pad = "  ".repeat(depth);
    match e {
        Expr::Bool(b) => rows.push((format!("{pad}{b}"), None)),
        Expr::And(v) | Expr::Or(v) => {
            rows.push((
                format!(
                    "{pad}{}",
                    if matches!(e, Expr::And(_)) {
                        "all of"
                    } else {
                        "any of"
                    }
                ),
                None,
            ));
            v.iter()
                .for_each(|e| tree_rows(p, e, depth + 1, seen, rows));
        }
        Expr::Not(e) => {
            rows.push((format!("{pad}not"), None));
            tree_rows(p, e, depth + 1, seen, rows);
        }
        Expr::Test(t) => {
            let right = match seen.iter().find(|s| s.span == t.loc.0) {
                Some(seen) => format!("{:<5}  {}", seen.result.to_string(), seen.values),
                None => "(not evaluated)".to_string(),
            };
            rows.push((format!("{pad}{}", describe_test(p, t)), Some(right)));
        }
    }
}

/// `90s`, `15m`, `1h`, `2d`: the largest unit that divides the length.
fn duration(millis: u64) -> String {
    for (unit, len) in [
        ("d", 86_400_000),
        ("h", 3_600_000),
        ("m", 60_000),
        ("s", 1_000),
    ] {
        if millis.is_multiple_of(len) {
            return format!("{}{unit}", millis / len);
        }
    }
    format!("{millis}ms")
}
