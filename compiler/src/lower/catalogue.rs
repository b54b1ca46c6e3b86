//! The catalogue YAML form to IR.
//!
//! The form policy catalogues publish per tool (no `version` key):
//!
//! ```yaml
//! tools:
//!   importRefreshTokensWithId:
//!     rules:
//!       - action: allow
//!         rate_limit: { max: 30, window: 60 }
//!   deleteTenant:
//!     rules:
//!       - action: deny
//!         reason: "Tenants are deleted by humans"
//! ```
//!
//! `action: deny` denies with `reason`; `action: allow` admits the call,
//! subject to its `rate_limit`: at most `max` calls in any `window` seconds
//! (a sliding window), counted per agent session. `action: approve` holds
//! every call for a person's approval (`reason` is what they are asked,
//! `timeout` how long they have, `via` who is asked: `client`, `operator` or
//! `client | operator`); once approved it is admitted like `allow`, subject
//! to the rule's `rate_limit`, `spend` and `idempotency`. Top-level `default`,
//! `hide` and `description` mean what they mean in Intercept's form, and a
//! `"*"` tool's rules apply to every call after the tool's own.

use super::{PolicyBuilder, Str, check_keys, get, map_entries, seq_items, string_field};
use crate::ir::{
    Amount, Approve, ArgPath, Channels, Check, Counter, CounterId, Expr, Limit, Loc, NamePattern,
    Operand, Partition, Posture, RuleKind, ServerPolicy, Test, TestKind, Tool, Window,
};
use crate::source::{Diagnostic, Span};
use crate::syntax::yaml::{Node, NodeValue, Typed, typed};

/// Largest window accepted, in seconds (a year).
pub const MAX_WINDOW_SECONDS: u64 = 366 * 24 * 3600;

/// Lowers a catalogue-form policy; None when there were errors.
pub fn lower(
    root: &Node,
    mut b: PolicyBuilder,
    diags: &mut Vec<Diagnostic>,
) -> Option<ServerPolicy> {
    let errors_before = diags.iter().filter(|d| d.is_error()).count();
    let entries = map_entries(root, "the policy file", diags)?;
    check_keys(
        entries,
        &[
            "description",
            "default",
            "hide",
            "tools",
            "resources",
            "prompts",
            "results",
        ],
        "a catalogue-form policy",
        diags,
    );
    if let Some(d) = get(entries, "description") {
        b.policy.description = Some(string_field(d, "description", diags).text);
    }
    if let Some(d) = get(entries, "default") {
        let s = string_field(d, "default", diags);
        b.policy.default = match s.text.as_str() {
            "allow" | "" => Posture::Allow,
            "deny" => Posture::Deny,
            other => {
                diags.push(
                    Diagnostic::error(
                        format!("default must be \"allow\" or \"deny\", got {other:?}"),
                        s.span,
                    )
                    .with_help("write `default: allow` or `default: deny`"),
                );
                Posture::Allow
            }
        };
    }
    if let Some(r) = get(entries, "results") {
        b.policy.results = super::results::decode_block(r, diags);
    }
    let default_span = get(entries, "default").map_or(root.span, |d| d.span);
    if let Some(h) = get(entries, "hide") {
        for (i, item) in seq_items(h, "hide", diags)
            .unwrap_or(&[])
            .iter()
            .enumerate()
        {
            let (s, conditional) = super::intercept::hide_name(item, i, diags);
            if s.text.trim().is_empty() {
                diags.push(Diagnostic::error(
                    format!("hide[{i}]: entry must not be empty"),
                    s.span,
                ));
                continue;
            }
            b.add_hide(i, &s.text, s.span);
            if conditional {
                let when =
                    super::intercept::hide_condition(item, &format!("hide[{i}]"), &mut b, diags);
                if let Some(h) = b.policy.hidden.last_mut() {
                    h.when = when;
                }
            }
        }
    }
    b.policy.default_rule = b.add_rule(
        "(default deny)".into(),
        "default".into(),
        RuleKind::DefaultDeny,
        default_span,
    );

    let mut tools: Vec<(&str, Span, &Node)> = Vec::new();
    if let Some(t) = get(entries, "tools") {
        for (k, v) in map_entries(t, "tools", diags).unwrap_or(&[]) {
            tools.push((&k.text, k.span, v));
        }
    }
    tools.sort_by(|a, b| a.0.cmp(b.0));
    for (tool, key_span, node) in tools {
        let ids = lower_tool("tools", "", &["rules"], tool, node, &mut b, diags);
        if tool == "*" {
            b.policy.wildcard = ids;
        } else {
            b.policy.tools.push(Tool {
                patterns: vec![NamePattern::Exact(tool.to_string())],
                rules: ids,
                loc: Loc(key_span),
            });
        }
    }
    for (key, surface) in [
        ("resources", crate::ir::Surface::Resource),
        ("prompts", crate::ir::Surface::Prompt),
    ] {
        if let Some(t) = get(entries, key) {
            lower_surface(key, surface, t, &mut b, diags);
        }
    }
    {
        let p = &b.policy;
        super::surfaces::check_rules(p, |id| p.rule(id).loc.0, diags);
    }
    (diags.iter().filter(|d| d.is_error()).count() == errors_before).then(|| b.finish())
}

/// A `resources:` or `prompts:` block: entries keyed by URI (or prompt
/// name) pattern, each `{rules, match, hide}`, in the order written; the
/// rules as a tool's.
fn lower_surface(
    section: &str,
    surface: crate::ir::Surface,
    node: &Node,
    b: &mut PolicyBuilder,
    diags: &mut Vec<Diagnostic>,
) {
    use super::surfaces::{HideField, MatchMode, hide_field, hide_when, pattern};
    let prefix = format!("{}:", surface.name());
    for (k, v) in map_entries(node, section, diags).unwrap_or(&[]) {
        if super::surfaces::yaml_default(section, surface, k, v, b, diags) {
            continue;
        }
        let ctx = format!("{section}.{}", k.text);
        let mut mode = MatchMode::Auto;
        let mut hide = HideField::No;
        if let Some(fields) = map_entries(v, &ctx, diags) {
            if let Some(m) = get(fields, "match") {
                let m = string_field(m, "match", diags);
                match MatchMode::parse(&m.text) {
                    Some(x) => mode = x,
                    None => diags.push(
                        Diagnostic::error(format!("{ctx}.match must be `exact`, `glob` or `regex`, got {:?}", m.text), m.span)
                            .with_help("without `match`, a key holding `*` is a glob and any other an exact match"),
                    ),
                }
            }
            if let Some(h) = get(fields, "hide") {
                hide = hide_field(&ctx, h, diags);
            }
        }
        let ids = lower_tool(
            section,
            &prefix,
            &["rules", "match", "hide"],
            &k.text,
            v,
            b,
            diags,
        );
        let when = match hide {
            HideField::No => None,
            HideField::Always => Some(None),
            HideField::When(n) => Some(hide_when(n, &ctx, b, diags)),
        };
        let always = matches!(when, Some(None));
        if let Some(when) = when {
            let rules = match surface {
                crate::ir::Surface::Resource => &b.policy.resources,
                _ => &b.policy.prompts,
            };
            let i = rules.hidden.len();
            let rule = b.add_rule(
                "(hidden)".into(),
                format!("{section}.hide[{i}]"),
                RuleKind::Hide,
                k.span,
            );
            let pat = pattern(surface, &k.text, mode, k.span, b, diags);
            let rules = match surface {
                crate::ir::Surface::Resource => &mut b.policy.resources,
                _ => &mut b.policy.prompts,
            };
            rules.hidden.push(crate::ir::Hide {
                pattern: pat,
                when,
                rule,
                loc: Loc(k.span),
            });
        }
        // An entry not hidden from everyone lists what it names (under
        // `default: deny`, an entry without rules allows it; a conditional
        // hide allows it to the callers it is not hidden from).
        let has_rules = !ids.is_empty() || !always;
        if has_rules {
            let pat = pattern(surface, &k.text, mode, k.span, b, diags);
            let block = Tool {
                patterns: vec![pat],
                rules: ids,
                loc: Loc(k.span),
            };
            match surface {
                crate::ir::Surface::Resource => b.policy.resources.blocks.push(block),
                _ => b.policy.prompts.blocks.push(block),
            }
        }
    }
}

/// The rules of one entry of `section` (`tools`, `resources`, `prompts`);
/// `prefix` starts its counters' keys (so a prompt's never meet a tool's).
fn lower_tool(
    section: &str,
    prefix: &str,
    keys: &[&str],
    tool: &str,
    node: &Node,
    b: &mut PolicyBuilder,
    diags: &mut Vec<Diagnostic>,
) -> Vec<crate::ir::RuleId> {
    let ctx = format!("{section}.{tool}");
    let key_tool = format!("{prefix}{tool}");
    let Some(entries) = map_entries(node, &ctx, diags) else {
        return Vec::new();
    };
    check_keys(
        entries,
        keys,
        &format!("{} `{tool}`", section.trim_end_matches('s')),
        diags,
    );
    let Some(rules) = get(entries, "rules") else {
        return Vec::new();
    };
    let mut ids = Vec::new();
    for (i, r) in seq_items(rules, &format!("{ctx}.rules"), diags)
        .unwrap_or(&[])
        .iter()
        .enumerate()
    {
        let label = format!("{ctx}.rules[{i}]");
        let Some(re) = map_entries(r, &label, diags) else {
            continue;
        };
        let rule_keys: &[&str] = &[
            "name",
            "action",
            "reason",
            "rate_limit",
            "spend",
            "idempotency",
            "timeout",
            "via",
            "paths",
        ];
        check_keys(
            re,
            if section == "tools" {
                rule_keys
            } else {
                &rule_keys[..rule_keys.len() - 1]
            },
            "a catalogue rule",
            diags,
        );
        let paths = get(re, "paths")
            .filter(|_| section == "tools")
            .and_then(|n| path_globs(n, &format!("{label}.paths"), diags));
        let name = get(re, "name")
            .map(|n| string_field(n, "name", diags).text)
            .filter(|n| !n.is_empty());
        let name = name.unwrap_or_else(|| label.clone());
        let action = get(re, "action").map(|a| string_field(a, "action", diags));
        let reason = get(re, "reason")
            .map(|a| string_field(a, "reason", diags))
            .filter(|s| !s.text.is_empty());
        let id = b.add_rule(name.clone(), label.clone(), RuleKind::Rule, r.span);
        let is_approve = action.as_ref().is_some_and(|a| a.text == "approve");
        for key in ["timeout", "via"] {
            if let Some(n) = get(re, key)
                && !is_approve
            {
                diags.push(
                    Diagnostic::error(
                        format!("`{key}` is only valid on an `action: approve` rule"),
                        n.span,
                    )
                    .with_help("write `action: approve`, or remove it"),
                );
            }
        }
        if is_approve {
            let timeout_ms =
                get(re, "timeout").map_or(Some(crate::ir::DEFAULT_APPROVAL_TIMEOUT_MS), |t| {
                    let t = string_field(t, "timeout", diags);
                    super::approval::timeout(&format!("{label}.timeout"), &t, diags)
                });
            let channels = match get(re, "via") {
                None => Some(Channels::BOTH),
                Some(v) => {
                    let v = string_field(v, "via", diags);
                    let c = channels(&v.text);
                    if c.is_none() {
                        diags.push(
                            Diagnostic::error(
                                format!("via must be `client`, `operator` or `client | operator`, got {:?}", v.text),
                                v.span,
                            )
                            .with_help("`client`: the MCP client asks its user (elicitation); `operator`: a person out of band; both (the default): the client when it can, else an operator"),
                        );
                    }
                    c
                }
            };
            if let (Some(timeout_ms), Some(channels)) = (timeout_ms, channels) {
                b.rule_mut(id).approve = Some(Approve {
                    when: paths.clone().map_or(Expr::Bool(true), any_path),
                    message: reason.as_ref().map_or_else(
                        || {
                            format!(
                                "Tool {} needs approval",
                                portcullis_core::policy::go_quote(tool)
                            )
                        },
                        |r| r.text.clone(),
                    ),
                    channels,
                    timeout_ms,
                });
            }
        }
        match action.as_ref().map(|a| a.text.as_str()) {
            Some("deny") => {
                if let Some(w) = get(re, "idempotency") {
                    diags.push(
                        Diagnostic::error("a deny rule cannot have an idempotency window", w.span)
                            .with_help("a deny rule denies every call; put the window on an `action: allow` rule"),
                    );
                }
                if let Some(rl) = get(re, "rate_limit") {
                    diags.push(
                        Diagnostic::error("a deny rule cannot have a rate_limit", rl.span)
                            .with_help("a deny rule denies every call; put the rate_limit on an `action: allow` rule"),
                    );
                }
                if let Some(sp) = get(re, "spend") {
                    diags.push(
                        Diagnostic::error("a deny rule cannot have a spend budget", sp.span)
                            .with_help("a deny rule denies every call; put the budget on an `action: allow` rule"),
                    );
                }
                let message = reason.map_or_else(
                    || {
                        format!(
                            "Tool {} is denied by policy",
                            portcullis_core::policy::go_quote(tool)
                        )
                    },
                    |r| r.text,
                );
                b.rule_mut(id).check = Some(Check {
                    deny_when: paths.clone().map_or(Expr::Bool(true), any_path),
                    message,
                });
            }
            Some("allow" | "approve") => {
                // `paths` on an allow rule: allowed only within them.
                if let Some(paths) = paths.clone().filter(|_| !is_approve) {
                    b.rule_mut(id).check = Some(Check {
                        deny_when: Expr::negate(within_paths(paths)),
                        message: reason.as_ref().map_or_else(
                            || {
                                format!(
                                    "Tool {} may only use the paths its policy allows",
                                    portcullis_core::policy::go_quote(tool)
                                )
                            },
                            |r| r.text.clone(),
                        ),
                    });
                }
                if let Some(rl) = get(re, "rate_limit")
                    && let Some(limit) =
                        rate_limit(b, &key_tool, &label, rl, reason.as_ref(), diags)
                {
                    b.rule_mut(id).limit = Some(limit);
                }
                if let Some(sp) = get(re, "spend")
                    && let Some(spend) = spend(b, &key_tool, &label, sp, reason.as_ref(), diags)
                {
                    b.rule_mut(id).spend = Some(spend);
                }
                if let Some(node) = get(re, "idempotency") {
                    b.rule_mut(id).idempotency = super::idempotency::catalogue(
                        node,
                        &format!("{label}.idempotency"),
                        reason.as_ref().map(|r| r.text.as_str()),
                        diags,
                    );
                }
            }
            Some(other) => {
                let span = action.as_ref().map_or(r.span, |a| a.span);
                diags.push(
                    Diagnostic::error(format!("action must be \"allow\", \"deny\" or \"approve\", got {other:?}"), span)
                        .with_help(if other == "require_approval" {
                            "the catalogue form spells it `action: approve`; Intercept's `require_approval` needs `version: \"1\"`"
                        } else {
                            "catalogue rules `allow` (optionally rate-limited), `deny` or `approve` (a person approves each call); Intercept's `evaluate` rules need `version: \"1\"`"
                        }),
                );
            }
            None => diags.push(
                Diagnostic::error(format!("{label}: rule needs an action"), r.span)
                    .with_help("add `action: allow`, `action: deny` or `action: approve`"),
            ),
        }
        ids.push(id);
    }
    ids
}

/// A rule's `paths:` (tools only): argument path to a glob or a list of
/// globs, each a normalised absolute path (`path()` conditions,
/// docs/policy-language.md "Paths in arguments"). One test per glob, grouped
/// by argument, in order.
fn path_globs(node: &Node, ctx: &str, diags: &mut Vec<Diagnostic>) -> Option<Vec<Vec<Test>>> {
    let entries = map_entries(node, ctx, diags)?;
    if entries.is_empty() {
        diags.push(
            Diagnostic::error(format!("{ctx} lists no argument"), node.span)
                .with_help("write e.g. `paths: { args.path: \"/srv/secret/**\" }`"),
        );
        return None;
    }
    let errors_before = diags.iter().filter(|d| d.is_error()).count();
    let mut out = Vec::new();
    for (k, v) in entries {
        let Some(rest) = k
            .text
            .strip_prefix("args.")
            .filter(|r| !r.is_empty() && r.split('.').all(|seg| !seg.is_empty()))
        else {
            diags.push(
                Diagnostic::error(
                    format!("{ctx}: `{}` is not an argument path", k.text),
                    k.span,
                )
                .with_help("keys are argument paths such as `args.path` or `args.options.dir`"),
            );
            continue;
        };
        let arg = ArgPath::args(rest.split('.').map(str::to_string).collect(), Loc(k.span));
        let globs: Vec<&Node> = match &v.value {
            NodeValue::Seq(items) if !items.is_empty() => items.iter().collect(),
            NodeValue::Scalar(_) => vec![v],
            _ => {
                diags.push(
                    Diagnostic::error(
                        format!("{ctx}.{}: write a path glob or a list of them", k.text),
                        v.span,
                    )
                    .with_help("e.g. `\"/srv/secret/**\"` or `[\"/srv/secret/**\", \"/etc/**\"]`"),
                );
                continue;
            }
        };
        let mut tests = Vec::new();
        for g in globs {
            let pattern = match typed(g) {
                Ok(Typed::Str(p)) => p,
                Err(d) => {
                    diags.push(d);
                    continue;
                }
                Ok(_) => {
                    diags.push(
                        Diagnostic::error(
                            format!("{ctx}.{}: a path glob is a string", k.text),
                            g.span,
                        )
                        .with_help("quote the glob, e.g. `\"/srv/secret/**\"`"),
                    );
                    continue;
                }
            };
            if let Err((msg, help)) = crate::ir::check_path_pattern(&pattern) {
                diags.push(Diagnostic::error(msg, g.span).with_help(help));
                continue;
            }
            tests.push(Test {
                kind: TestKind::Path {
                    lhs: Operand::Arg(arg.clone()),
                    op: crate::ir::PathOp::Glob,
                    pattern,
                    invalid: true,
                },
                loc: Loc(g.span),
            });
        }
        out.push(tests);
    }
    (diags.iter().filter(|d| d.is_error()).count() == errors_before).then_some(out)
}

/// `items` joined by `or` (`and` when `all`), without a one-item wrapper.
fn join(mut items: Vec<Expr>, all: bool) -> Expr {
    match items.len() {
        1 => items.remove(0),
        _ if all => Expr::And(items),
        _ => Expr::Or(items),
    }
}

/// Some glob of some argument matches (a deny or approve rule's `paths`).
fn any_path(paths: Vec<Vec<Test>>) -> Expr {
    join(paths.into_iter().flatten().map(Expr::Test).collect(), false)
}

/// Every listed argument matches one of its globs (an allow rule's `paths`).
fn within_paths(paths: Vec<Vec<Test>>) -> Expr {
    join(
        paths
            .into_iter()
            .map(|tests| join(tests.into_iter().map(Expr::Test).collect(), false))
            .collect(),
        true,
    )
}

/// `client`, `operator`, `client | operator` (either order, `,` too).
pub fn channels(text: &str) -> Option<Channels> {
    let mut c = Channels {
        client: false,
        operator: false,
    };
    for word in text.split(['|', ',']).map(str::trim) {
        match word {
            "client" if !c.client => c.client = true,
            "operator" if !c.operator => c.operator = true,
            _ => return None,
        }
    }
    Some(c)
}

fn whole(
    node: Option<&Node>,
    what: &str,
    at: Span,
    min: u64,
    max: u64,
    diags: &mut Vec<Diagnostic>,
) -> Option<u64> {
    let Some(node) = node else {
        diags.push(
            Diagnostic::error(format!("rate_limit needs `{what}`"), at)
                .with_help("write `rate_limit: { max: 30, window: 60 }` (window in seconds)"),
        );
        return None;
    };
    match typed(node) {
        Ok(Typed::Num(n)) => match n.num().to_u64_exact() {
            Some(v) if (min..=max).contains(&v) => Some(v),
            _ => {
                diags.push(
                    Diagnostic::error(
                        format!("rate_limit {what} must be a whole number from {min} to {max}"),
                        node.span,
                    )
                    .with_help(format!(
                        "write e.g. `{what}: {}`",
                        if what == "max" { 30 } else { 60 }
                    )),
                );
                None
            }
        },
        Ok(_) => {
            diags.push(
                Diagnostic::error(format!("rate_limit {what} must be a number"), node.span)
                    .with_help("write an unquoted whole number"),
            );
            None
        }
        Err(d) => {
            diags.push(d);
            None
        }
    }
}

fn rate_limit(
    b: &mut PolicyBuilder,
    tool: &str,
    label: &str,
    node: &Node,
    reason: Option<&Str>,
    diags: &mut Vec<Diagnostic>,
) -> Option<Limit> {
    let entries = map_entries(node, "rate_limit", diags)?;
    check_keys(entries, &["max", "window", "by"], "rate_limit", diags);
    let partition = match get(entries, "by") {
        None => Partition::Session,
        Some(n) => by_partition(n, "rate_limit.by", diags)?,
    };
    let max = whole(
        get(entries, "max"),
        "max",
        node.span,
        1,
        i64::MAX as u64,
        diags,
    );
    let window = whole(
        get(entries, "window"),
        "window",
        node.span,
        1,
        MAX_WINDOW_SECONDS,
        diags,
    );
    let (max, window) = (max?, window?);
    let server = b.policy.name.clone();
    let scope = if tool == "*" { "*" } else { tool };
    let counter = b.add_counter(Counter {
        id: CounterId(0),
        key: format!(
            "{server}/{scope}.{}",
            label.rsplit('.').next().unwrap_or(label)
        ),
        display: format!("{label}.rate_limit"),
        window: Window::Sliding {
            millis: window * 1000,
        },
        partition,
        loc: Loc(node.span),
    });
    let message = reason.map_or_else(
        || {
            let what = if tool == "*" {
                "tool calls".to_string()
            } else {
                format!("calls to {tool}")
            };
            format!("Rate limit of {max} {what} per {window} seconds reached. Try again later.")
        },
        |r| r.text.clone(),
    );
    Some(Limit {
        counter,
        max,
        amount: Amount::Const(1),
        message,
        loc: Loc(node.span),
    })
}

/// `rate_limit.by` (a Portcullis extension): `session` (the default: per
/// agent session), `global` (every caller shares it), `args.<path>` (per
/// argument value) or a principal path (`principal.sub`, per caller).
/// `spend.by` takes the same values (`ctx` names which one is read).
fn by_partition(n: &Node, ctx: &str, diags: &mut Vec<Diagnostic>) -> Option<Partition> {
    let s = string_field(n, ctx, diags);
    let help = "write `by: session`, `by: global`, `by: args.<name>` or `by: principal.sub` (or any `principal.claims.<name>`)";
    match s.text.as_str() {
        "session" => Some(Partition::Session),
        "global" => Some(Partition::Global),
        t if t.starts_with("principal.") => match super::intercept::yaml_principal_path(&s) {
            Ok(p) => Some(Partition::Arg(p)),
            Err(d) => {
                diags.push(d);
                None
            }
        },
        t if t
            .strip_prefix("args.")
            .is_some_and(|r| !r.split('.').any(str::is_empty)) =>
        {
            Some(Partition::Arg(crate::ir::ArgPath::args(
                t["args.".len()..].split('.').map(str::to_string).collect(),
                Loc(s.span),
            )))
        }
        t => {
            diags.push(
                Diagnostic::error(format!("{ctx}: unknown partition {t:?}"), s.span)
                    .with_help(help),
            );
            None
        }
    }
}

/// `spend: { per_call: 0.50, max: 50.00, window: 86400, currency: usd }`: a
/// budget on what the tool charges (MPP). `max` is the most the calls may
/// add up to in any `window` seconds (sliding), shared by every caller of
/// the deployment unless `by` partitions it (`by: principal.sub`: one
/// budget per caller; the values of `rate_limit.by`); `currency` limits it
/// to one currency (default: every currency, each counted separately).
fn spend(
    b: &mut PolicyBuilder,
    tool: &str,
    label: &str,
    node: &Node,
    reason: Option<&Str>,
    diags: &mut Vec<Diagnostic>,
) -> Option<crate::ir::Spend> {
    let entries = map_entries(node, "spend", diags)?;
    check_keys(
        entries,
        &["per_call", "max", "window", "currency", "by"],
        "spend",
        diags,
    );
    let partition = match (get(entries, "max"), get(entries, "by")) {
        (_, None) => Partition::Global,
        (Some(_), Some(n)) => by_partition(n, "spend.by", diags)?,
        (None, Some(n)) => {
            diags.push(
                Diagnostic::error("spend.by without `max`", n.span).with_help(
                    "`by` partitions the windowed budget, e.g. `spend: { max: 50.00, window: 86400, by: principal.sub }`; `per_call` is the same for every caller",
                ),
            );
            return None;
        }
    };
    let mut ok = true;
    let mut amount = |key: &str, diags: &mut Vec<Diagnostic>| {
        let s = get(entries, key).map(|n| string_field(n, &format!("spend.{key}"), diags))?;
        match portcullis_core::spend::parse_decimal(&s.text) {
            Ok(v) => Some(v),
            Err(e) => {
                diags.push(
                    Diagnostic::error(format!("spend {key} {:?} is {e}", s.text), s.span)
                        .with_help("write an amount in the currency's units with at most six decimals, e.g. `0.50`; money is never rounded"),
                );
                ok = false;
                None
            }
        }
    };
    let per_call = amount("per_call", diags);
    let max = amount("max", diags);
    let currency =
        match get(entries, "currency").map(|n| string_field(n, "spend.currency", diags)) {
            Some(c) => match portcullis_core::spend::currency(&c.text) {
                Some(k) => Some(k.code.to_string()),
                None => {
                    diags.push(
                        Diagnostic::error(format!("unknown currency {:?}", c.text), c.span)
                            .with_help(format!(
                                "known currencies: {}",
                                portcullis_core::spend::CURRENCIES
                                    .iter()
                                    .map(|c| c.code)
                                    .collect::<Vec<_>>()
                                    .join(", ")
                            )),
                    );
                    return None;
                }
            },
            None => None,
        };
    let window = match (max, get(entries, "window")) {
        (Some(_), w) => Some(whole(w, "window", node.span, 1, MAX_WINDOW_SECONDS, diags)?),
        (None, Some(w)) => {
            diags.push(
                Diagnostic::error("spend window without `max`", w.span).with_help(
                    "write `max: 50.00` for the most the calls may add up to in the window",
                ),
            );
            return None;
        }
        (None, None) => None,
    };
    if !ok {
        return None;
    }
    if per_call.is_none() && max.is_none() {
        diags.push(
            Diagnostic::error(
                "spend needs `per_call`, `max` (with `window`) or both",
                node.span,
            )
            .with_help("e.g. `spend: { per_call: 0.50, max: 50.00, window: 86400 }`"),
        );
        return None;
    }
    let server = b.policy.name.clone();
    let scope = if tool == "*" { "*" } else { tool };
    let window = match (max, window) {
        (Some(max), Some(secs)) => {
            let counter = b.add_counter(Counter {
                id: CounterId(0),
                key: format!(
                    "{server}/{scope}.{}.spend",
                    label.rsplit('.').next().unwrap_or(label)
                ),
                display: format!("{label}.spend"),
                window: Window::Sliding {
                    millis: secs * 1000,
                },
                partition,
                loc: Loc(node.span),
            });
            Some((counter, max))
        }
        _ => None,
    };
    Some(crate::ir::Spend {
        currency,
        per_call,
        window,
        message: reason.map_or_else(String::new, |r| r.text.clone()),
    })
}
