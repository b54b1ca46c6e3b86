//! Intercept v1 YAML (`version: "1"`) to IR.
//!
//! Three steps, mirroring Intercept's loader so its messages and their order
//! carry over (spec `intercept-v1.md` §2):
//! 1. decode the node tree into the surface form, strictly (unknown keys and
//!    wrong types are errors here; Intercept ignores the former);
//! 2. expand `rate_limit` shorthands, then validate in Intercept's order with
//!    Intercept's texts, plus Portcullis's stricter checks on values;
//! 3. lower to IR, resolving `state.` paths and deriving each counter's limit
//!    from its rule's own `lt`/`lte` condition.

use std::collections::BTreeMap;

use portcullis_runtime::policy::go_quote;

use super::{PolicyBuilder, Str, check_keys, get, key_span, map_entries, seq_items, string_field};
use crate::ir::{
    Amount, ArgPath, Calendar, Check, CmpOp, Const, Counter, CounterId, Expr, Hide, Limit, Loc,
    NamePattern, Operand, Partition, Posture, RuleKind, ServerPolicy, Test, TestKind, Tool, Window,
};
use crate::source::{Diagnostic, Span};
use crate::syntax::yaml::{Node, NodeValue, Scalar, Style, Typed, typed};

/// The message when a counter's amount cannot be read (Intercept's text).
pub const INTERNAL_POLICY_ERROR: &str = "Internal policy error";

/// Lowers an Intercept v1 policy. `root` is None for an empty file.
/// Diagnostics are appended; None when there were errors.
pub fn lower(
    root: Option<&Node>,
    mut b: PolicyBuilder,
    file_span: Span,
    diags: &mut Vec<Diagnostic>,
) -> Option<ServerPolicy> {
    let errors_before = diags.iter().filter(|d| d.is_error()).count();
    let mut file = decode(root, file_span, diags);
    expand_rate_limits(&mut file);
    validate(&file, diags);
    if diags.iter().filter(|d| d.is_error()).count() > errors_before {
        return None;
    }
    build(&file, &mut b, diags)?;
    Some(b.finish())
}

// ---------------------------------------------------------------------------
// Surface form.

struct File {
    version: Str,
    default: Str,
    description: Option<Str>,
    hide: Vec<Str>,
    tools: BTreeMap<String, ToolDecl>,
}

struct ToolDecl {
    key_span: Span,
    rules: Vec<RuleDecl>,
}

struct RuleDecl {
    span: Span,
    name: Str,
    action: Str,
    rate_limit: Option<Str>,
    conditions: Vec<CondDecl>,
    conditions_span: Option<Span>,
    on_deny: Str,
    state: Option<StateDecl>,
}

struct CondDecl {
    span: Span,
    path: Str,
    op: Str,
    value: Option<Node>,
}

struct StateDecl {
    span: Span,
    counter: Str,
    window: Str,
    increment: i128,
    increment_span: Option<Span>,
    increment_from: Option<Str>,
}

fn decode(root: Option<&Node>, file_span: Span, diags: &mut Vec<Diagnostic>) -> File {
    let mut file = File {
        version: Str {
            text: String::new(),
            span: file_span,
        },
        default: Str::default(),
        description: None,
        hide: Vec::new(),
        tools: BTreeMap::new(),
    };
    let Some(root) = root else {
        return file;
    };
    let Some(entries) = map_entries(root, "the policy file", diags) else {
        return file;
    };
    check_keys(
        entries,
        &["version", "description", "default", "hide", "tools"],
        "the policy file",
        diags,
    );
    if let Some(v) = get(entries, "version") {
        file.version = string_field(v, "version", diags);
    }
    if let Some(v) = get(entries, "description") {
        file.description = Some(string_field(v, "description", diags));
    }
    file.default = match get(entries, "default") {
        Some(v) => string_field(v, "default", diags),
        None => Str {
            text: String::new(),
            span: root.span,
        },
    };
    if let Some(h) = get(entries, "hide")
        && let Some(items) = seq_items(h, "hide", diags)
    {
        file.hide = items
            .iter()
            .map(|n| string_field(n, "a hide entry", diags))
            .collect();
    }
    if let Some(t) = get(entries, "tools")
        && let Some(tools) = map_entries(t, "tools", diags)
    {
        for (k, v) in tools {
            let rules = decode_tool(&k.text, v, diags);
            file.tools.insert(
                k.text.clone(),
                ToolDecl {
                    key_span: k.span,
                    rules,
                },
            );
        }
    }
    file
}

fn decode_tool(name: &str, node: &Node, diags: &mut Vec<Diagnostic>) -> Vec<RuleDecl> {
    let ctx = format!("tools.{name}");
    let Some(entries) = map_entries(node, &ctx, diags) else {
        return Vec::new();
    };
    check_keys(entries, &["rules"], &format!("tool `{name}`"), diags);
    let Some(rules) = get(entries, "rules") else {
        return Vec::new();
    };
    let Some(items) = seq_items(rules, &format!("{ctx}.rules"), diags) else {
        return Vec::new();
    };
    items
        .iter()
        .enumerate()
        .filter_map(|(i, n)| decode_rule(&format!("{ctx}.rules[{i}]"), n, diags))
        .collect()
}

fn decode_rule(ctx: &str, node: &Node, diags: &mut Vec<Diagnostic>) -> Option<RuleDecl> {
    let entries = map_entries(node, ctx, diags)?;
    check_keys(
        entries,
        &[
            "name",
            "action",
            "rate_limit",
            "conditions",
            "on_deny",
            "state",
        ],
        "a rule",
        diags,
    );
    let field = |key: &str, diags: &mut Vec<Diagnostic>| {
        get(entries, key).map(|v| string_field(v, &format!("{ctx}.{key}"), diags))
    };
    let at_rule = |s: Option<Str>| {
        s.unwrap_or(Str {
            text: String::new(),
            span: node.span,
        })
    };
    let name = at_rule(field("name", diags));
    let action = at_rule(field("action", diags));
    let on_deny = at_rule(field("on_deny", diags));
    let rate_limit = field("rate_limit", diags).filter(|s| !s.text.is_empty());
    let mut conditions = Vec::new();
    let conditions_span = key_span(entries, "conditions");
    if let Some(c) = get(entries, "conditions")
        && let Some(items) = seq_items(c, &format!("{ctx}.conditions"), diags)
    {
        for (j, item) in items.iter().enumerate() {
            let cctx = format!("{ctx}.conditions[{j}]");
            let Some(ce) = map_entries(item, &cctx, diags) else {
                continue;
            };
            check_keys(ce, &["path", "op", "value"], "a condition", diags);
            let at_cond = |s: Option<Str>| {
                s.unwrap_or(Str {
                    text: String::new(),
                    span: item.span,
                })
            };
            let path =
                at_cond(get(ce, "path").map(|v| string_field(v, &format!("{cctx}.path"), diags)));
            let op = at_cond(get(ce, "op").map(|v| string_field(v, &format!("{cctx}.op"), diags)));
            conditions.push(CondDecl {
                span: item.span,
                path,
                op,
                value: get(ce, "value").cloned(),
            });
        }
    }
    let state = get(entries, "state").and_then(|s| decode_state(&format!("{ctx}.state"), s, diags));
    Some(RuleDecl {
        span: node.span,
        name,
        action,
        rate_limit,
        conditions,
        conditions_span,
        on_deny,
        state,
    })
}

fn decode_state(ctx: &str, node: &Node, diags: &mut Vec<Diagnostic>) -> Option<StateDecl> {
    if node.is_null() {
        return None; // `state:` with no value is no state block, as in Go
    }
    let entries = map_entries(node, ctx, diags)?;
    check_keys(
        entries,
        &["counter", "window", "increment", "increment_from"],
        "a state block",
        diags,
    );
    let at = |s: Option<Str>| {
        s.unwrap_or(Str {
            text: String::new(),
            span: node.span,
        })
    };
    let counter =
        at(get(entries, "counter").map(|v| string_field(v, &format!("{ctx}.counter"), diags)));
    let window =
        at(get(entries, "window").map(|v| string_field(v, &format!("{ctx}.window"), diags)));
    let increment_from = get(entries, "increment_from")
        .map(|v| string_field(v, &format!("{ctx}.increment_from"), diags))
        .filter(|s| !s.text.is_empty());
    let mut increment = 0;
    let mut increment_span = None;
    if let Some(v) = get(entries, "increment") {
        increment_span = Some(v.span);
        match typed(v) {
            Ok(Typed::Null) => {}
            Ok(Typed::Num(n)) if n.num().is_integer() => {
                increment = n.text.parse::<i128>().unwrap_or(i128::MAX);
            }
            Ok(_) => diags.push(
                Diagnostic::intercept(
                    format!("parsing config file: {ctx}.increment must be an integer"),
                    v.span,
                )
                .with_help("write a whole number such as `increment: 5`"),
            ),
            Err(d) => diags.push(d),
        }
    }
    Some(StateDecl {
        span: node.span,
        counter,
        window,
        increment,
        increment_span,
        increment_from,
    })
}

// ---------------------------------------------------------------------------
// rate_limit shorthand (Intercept's loader, before validation).

#[derive(Debug, PartialEq, Eq)]
enum RateLimitError {
    Format,
    Count(String),
    Window(String),
}

fn parse_rate_limit(s: &str) -> Result<(u64, Calendar), RateLimitError> {
    let Some((count, window)) = s.split_once('/') else {
        return Err(RateLimitError::Format);
    };
    let n = go_atoi(count).filter(|&n| n > 0);
    let Some(n) = n else {
        return Err(RateLimitError::Count(count.to_string()));
    };
    let w = calendar(window).ok_or_else(|| RateLimitError::Window(window.to_string()))?;
    Ok((n as u64, w))
}

/// Go's `strconv.Atoi`: optional sign, ASCII digits, no spaces, fits i64.
fn go_atoi(s: &str) -> Option<i64> {
    let digits = s.strip_prefix(['+', '-']).unwrap_or(s);
    if digits.is_empty() || !digits.bytes().all(|b| b.is_ascii_digit()) {
        return None;
    }
    s.strip_prefix('+').unwrap_or(s).parse::<i64>().ok()
}

fn calendar(w: &str) -> Option<Calendar> {
    match w {
        "minute" => Some(Calendar::Minute),
        "hour" => Some(Calendar::Hour),
        "day" => Some(Calendar::Day),
        _ => None,
    }
}

fn expand_rate_limits(file: &mut File) {
    for (tool, decl) in &mut file.tools {
        let scope = if tool == "*" {
            "_global"
        } else {
            tool.as_str()
        };
        for rule in &mut decl.rules {
            let Some(rl) = &rule.rate_limit else { continue };
            if !rule.conditions.is_empty() || rule.state.is_some() || rule.action.text == "deny" {
                continue;
            }
            let Ok((n, w)) = parse_rate_limit(&rl.text) else {
                continue;
            };
            let span = rl.span;
            let counter = format!("_rate_{}", w.name());
            rule.action.text = "evaluate".into();
            rule.conditions.push(CondDecl {
                span,
                path: Str {
                    text: format!("state.{scope}.{counter}"),
                    span,
                },
                op: Str {
                    text: "lte".into(),
                    span,
                },
                value: Some(Node {
                    value: NodeValue::Scalar(Scalar {
                        text: n.to_string(),
                        style: Style::Plain,
                    }),
                    span,
                }),
            });
            rule.state = Some(StateDecl {
                span,
                counter: Str {
                    text: counter,
                    span,
                },
                window: Str {
                    text: w.name().into(),
                    span,
                },
                increment: 1,
                increment_span: None,
                increment_from: None,
            });
            if rule.on_deny.text.is_empty() {
                rule.on_deny.text = format!(
                    "Rate limit of {n} per {} reached. Try again later.",
                    w.name()
                );
            }
            rule.rate_limit = None;
        }
    }
}

// ---------------------------------------------------------------------------
// Validation, in Intercept's order and with its texts.

const OPERATORS: [&str; 11] = [
    "eq", "neq", "in", "not_in", "lt", "lte", "gt", "gte", "regex", "contains", "exists",
];

fn validate(file: &File, diags: &mut Vec<Diagnostic>) {
    if file.version.text != "1" {
        diags.push(
            Diagnostic::intercept(
                format!("version must be \"1\", got {}", go_quote(&file.version.text)),
                file.version.span,
            )
            .with_help(if file.version.text.is_empty() {
                "start the file with `version: \"1\"` (an Intercept policy); a catalogue-form policy has no `version` and lists `tools` directly"
            } else {
                "write `version: \"1\"` (quoted, exactly 1)"
            }),
        );
    }
    if !matches!(file.default.text.as_str(), "" | "allow" | "deny") {
        diags.push(
            Diagnostic::intercept(
                format!(
                    "default must be \"allow\" or \"deny\", got {}",
                    go_quote(&file.default.text)
                ),
                file.default.span,
            )
            .with_help("write `default: allow` or `default: deny` (lowercase)"),
        );
    }
    let mut seen: Vec<&str> = Vec::new();
    for (i, h) in file.hide.iter().enumerate() {
        if h.text.trim().is_empty() {
            diags.push(
                Diagnostic::intercept(format!("hide[{i}]: entry must not be empty"), h.span)
                    .with_help("remove the empty entry, or write the tool name"),
            );
            continue;
        }
        if seen.contains(&h.text.as_str()) {
            diags.push(
                Diagnostic::intercept(
                    format!("hide: duplicate entry {}", go_quote(&h.text)),
                    h.span,
                )
                .with_help("remove the repeated entry"),
            );
        } else {
            seen.push(&h.text);
        }
    }
    let declared = declared_counters(file);
    for (tool, decl) in &file.tools {
        validate_tool(tool, decl, &declared, diags);
    }
}

/// scope (`_global` for `*`) -> counter names declared by state blocks.
fn declared_counters(file: &File) -> BTreeMap<String, Vec<String>> {
    let mut m: BTreeMap<String, Vec<String>> = BTreeMap::new();
    for (tool, decl) in &file.tools {
        let scope = if tool == "*" {
            "_global".to_string()
        } else {
            tool.clone()
        };
        for r in &decl.rules {
            if let Some(s) = &r.state {
                m.entry(scope.clone())
                    .or_default()
                    .push(s.counter.text.clone());
            }
        }
    }
    m
}

/// Resolves `state.<rest>` to (scope, counter). Intercept splits at the first
/// dot only, so a dotted tool name can never be referenced; Portcullis tries
/// every split and requires exactly one to name a declared counter.
fn resolve_state<'d>(
    rest: &str,
    declared: &'d BTreeMap<String, Vec<String>>,
) -> Vec<(&'d str, &'d str)> {
    let mut out = Vec::new();
    for (i, _) in rest.match_indices('.') {
        let (scope, counter) = (&rest[..i], &rest[i + 1..]);
        if let Some((s, names)) = declared.get_key_value(scope)
            && let Some(c) = names.iter().find(|n| *n == counter)
        {
            out.push((s.as_str(), c.as_str()));
        }
    }
    out
}

fn validate_tool(
    tool: &str,
    decl: &ToolDecl,
    declared: &BTreeMap<String, Vec<String>>,
    diags: &mut Vec<Diagnostic>,
) {
    let p = |i: usize| format!("tools.{tool}.rules[{i}]");
    // Duplicate counters come first, each repeat naming the first user.
    let mut first_user: BTreeMap<&str, usize> = BTreeMap::new();
    for (i, r) in decl.rules.iter().enumerate() {
        let Some(s) = &r.state else { continue };
        match first_user.get(s.counter.text.as_str()) {
            Some(&k) => diags.push(
                Diagnostic::intercept(
                    format!(
                        "{}: duplicate state counter {} (also used by rules[{k}])",
                        p(i),
                        go_quote(&s.counter.text)
                    ),
                    s.counter.span,
                )
                .with_label(decl.rules[k].span, "first used here")
                .with_help("give each rule of a tool its own counter name (two `rate_limit`s with the same window share `_rate_<window>`)"),
            ),
            None => {
                first_user.insert(&s.counter.text, i);
            }
        }
    }
    for (i, r) in decl.rules.iter().enumerate() {
        validate_rule(&p(i), tool, r, declared, diags);
    }
}

fn validate_rule(
    p: &str,
    tool: &str,
    r: &RuleDecl,
    declared: &BTreeMap<String, Vec<String>>,
    diags: &mut Vec<Diagnostic>,
) {
    if let Some(rl) = &r.rate_limit {
        match parse_rate_limit(&rl.text) {
            Ok(_) => {}
            Err(RateLimitError::Format) => diags.push(
                Diagnostic::intercept(
                    format!(
                        "{p}: rate_limit must be in the format \"N/window\" (e.g. \"5/hour\"), got {}",
                        go_quote(&rl.text)
                    ),
                    rl.span,
                )
                .with_help("write e.g. `rate_limit: 5/hour` (windows: minute, hour, day)"),
            ),
            Err(RateLimitError::Count(c)) => diags.push(
                Diagnostic::intercept(
                    format!("{p}: rate_limit count must be a positive integer, got {}", go_quote(&c)),
                    rl.span,
                )
                .with_help("the count is a whole number of calls, at least 1, e.g. `5/hour`"),
            ),
            Err(RateLimitError::Window(w)) => diags.push(
                Diagnostic::intercept(
                    format!(
                        "{p}: rate_limit window must be \"minute\", \"hour\", or \"day\", got {}",
                        go_quote(&w)
                    ),
                    rl.span,
                )
                .with_help("Intercept windows are calendar buckets: minute, hour or day"),
            ),
        }
        if !r.conditions.is_empty() || r.state.is_some() {
            diags.push(
                Diagnostic::intercept(
                    format!("{p}: rate_limit cannot be combined with conditions or state; use separate rules or the full syntax instead"),
                    rl.span,
                )
                .with_help("move the rate_limit into a rule of its own"),
            );
        }
        if r.action.text == "deny" {
            diags.push(
                Diagnostic::intercept(
                    format!("{p}: rate_limit cannot be used with action \"deny\""),
                    rl.span,
                )
                .with_help("remove `action: deny` (a rate limit allows calls up to the limit)"),
            );
        }
        // Intercept stops here for this rule; Portcullis also reports what it hides.
        let mut rest = Vec::new();
        validate_rule_body(p, tool, r, declared, &mut rest);
        for mut d in rest {
            d.origin = crate::source::Origin::Portcullis;
            diags.push(d);
        }
        return;
    }
    validate_rule_body(p, tool, r, declared, diags);
}

fn validate_rule_body(
    p: &str,
    tool: &str,
    r: &RuleDecl,
    declared: &BTreeMap<String, Vec<String>>,
    diags: &mut Vec<Diagnostic>,
) {
    if r.name.text.is_empty() {
        diags.push(
            Diagnostic::intercept(format!("{p}: rule must have a name"), r.name.span)
                .with_help("add `name: \"...\"`; the name appears in denials and the audit log"),
        );
    }
    let action = if r.action.text.is_empty() {
        "evaluate"
    } else {
        r.action.text.as_str()
    };
    match action {
        "evaluate" if r.conditions.is_empty() && r.rate_limit.is_none() => diags.push(
            Diagnostic::intercept(format!("{p}: evaluate rules must have at least one condition"), r.span)
                .with_help("add `conditions:`, or use `action: deny` to deny the tool outright"),
        ),
        "deny" if !r.conditions.is_empty() => diags.push(
            Diagnostic::intercept(
                format!("{p}: deny rules must not have conditions"),
                r.conditions_span.unwrap_or(r.span),
            )
            .with_help("an `evaluate` rule denies when its conditions fail; a `deny` rule always denies"),
        ),
        "evaluate" | "deny" => {}
        other => diags.push(
            Diagnostic::intercept(
                format!("{p}: action must be \"evaluate\" or \"deny\", got {}", go_quote(other)),
                r.action.span,
            )
            .with_help(if other == "allow" {
                "Intercept rules only restrict: leave a tool's rules empty to allow it; `action: allow` belongs to the catalogue form, which has no `version` key"
            } else {
                "write `action: evaluate` (the default) or `action: deny`"
            }),
        ),
    }
    for (j, c) in r.conditions.iter().enumerate() {
        validate_condition(&format!("{p}.conditions[{j}]"), c, diags);
    }
    if let Some(s) = &r.state {
        if s.counter.text.is_empty() {
            diags.push(
                Diagnostic::intercept(
                    format!("{p}.state: counter must not be empty"),
                    s.counter.span,
                )
                .with_help("name the counter, e.g. `counter: daily_spend`"),
            );
        }
        if calendar(&s.window.text).is_none() {
            diags.push(
                Diagnostic::intercept(
                    format!(
                        "{p}.state: window must be \"minute\", \"hour\", or \"day\", got {}",
                        go_quote(&s.window.text)
                    ),
                    s.window.span,
                )
                .with_help("add `window: minute`, `window: hour` or `window: day`"),
            );
        }
        if let Some(f) = &s.increment_from
            && !f.text.starts_with("args.")
        {
            diags.push(
                Diagnostic::intercept(
                    format!(
                        "{p}.state: increment_from must start with \"args.\", got {}",
                        go_quote(&f.text)
                    ),
                    f.span,
                )
                .with_help("point at a numeric argument, e.g. `increment_from: args.amount`"),
            );
        }
        if s.increment < 0 {
            diags.push(
                Diagnostic::error(
                    "a negative increment is not allowed",
                    s.increment_span.unwrap_or(s.span),
                )
                .with_help(
                    "Intercept lets a negative increment refund quota; use a positive whole number",
                ),
            );
        }
    }
    for c in &r.conditions {
        let Some(rest) = c.path.text.strip_prefix("state.") else {
            continue;
        };
        if !rest.contains('.') {
            diags.push(
                Diagnostic::error(format!("state path `{}` names no tool", c.path.text), c.path.span)
                    .with_help(format!(
                        "write state.<tool>.<counter> (state._global.<counter> for `*`); Intercept silently never enforces `{}`",
                        c.path.text
                    )),
            );
            continue;
        }
        match resolve_state(rest, declared).len() {
            1 => {}
            0 => diags.push(
                Diagnostic::intercept(
                    format!("{p}: condition references state.{rest} but no matching state block found"),
                    c.path.span,
                )
                .with_help(format!(
                    "declare the counter with a `state:` block on tool `{}` (or `*` for state._global.*), or fix the path",
                    rest.split('.').next().unwrap_or(tool)
                )),
            ),
            _ => diags.push(
                Diagnostic::error(format!("state path `{}` is ambiguous", c.path.text), c.path.span)
                    .with_help("more than one tool/counter pair spells this path; rename a counter"),
            ),
        }
    }
}

fn validate_condition(c_ctx: &str, c: &CondDecl, diags: &mut Vec<Diagnostic>) {
    if !(c.path.text.starts_with("args.") || c.path.text.starts_with("state.")) {
        diags.push(
            Diagnostic::intercept(
                format!(
                    "{c_ctx}: path must start with \"args.\" or \"state.\", got {}",
                    go_quote(&c.path.text)
                ),
                c.path.span,
            )
            .with_help("arguments are `args.<name>`, counters are `state.<tool>.<counter>`"),
        );
    }
    let op = c.op.text.as_str();
    if !OPERATORS.contains(&op) {
        let help = match crate::source::did_you_mean(op, &OPERATORS) {
            Some(s) => format!("did you mean `{s}`? operators are case-sensitive"),
            None => format!("operators: {}", OPERATORS.join(", ")),
        };
        diags.push(
            Diagnostic::intercept(
                format!("{c_ctx}: unknown operator {}", go_quote(op)),
                c.op.span,
            )
            .with_help(help),
        );
    }
    let value = c.value.as_ref();
    let vspan = value.map_or(c.span, |v| v.span);
    let ty = value.map(typed);
    let is_list = matches!(ty, Some(Ok(Typed::List)));
    if matches!(op, "in" | "not_in") && !is_list {
        diags.push(
            Diagnostic::intercept(
                format!("{c_ctx}: operator {} requires a list value", go_quote(op)),
                vspan,
            )
            .with_help("write the allowed values as a list, e.g. `value: [usd, eur]`"),
        );
    }
    if matches!(op, "lt" | "lte" | "gt" | "gte") && !matches!(ty, Some(Ok(Typed::Num(_)))) {
        // An ambiguous scalar is reported below, with its own fix.
        if !matches!(ty, Some(Err(_))) {
            diags.push(
                Diagnostic::intercept(
                    format!(
                        "{c_ctx}: operator {} requires a numeric value",
                        go_quote(op)
                    ),
                    vspan,
                )
                .with_help("write an unquoted number, e.g. `value: 50000`"),
            );
        }
    }
    if op == "exists" && !matches!(ty, Some(Ok(Typed::Bool(_)))) {
        diags.push(
            Diagnostic::intercept(
                format!("{c_ctx}: operator \"exists\" requires a boolean value"),
                vspan,
            )
            .with_help("write `value: true` or `value: false`"),
        );
    }
    if op == "regex" {
        match (&ty, value.and_then(Node::scalar)) {
            (Some(Ok(Typed::Str(_))), Some(s)) => {
                if let Err(e) = crate::regex::translate_go(&s.text)
                    .and_then(|r| crate::regex::build_regex(&r).map(|_| ()))
                {
                    diags.push(
                        Diagnostic::intercept(
                            format!(
                                "{c_ctx}: invalid regex {}: {}",
                                go_quote(&s.text),
                                e.message
                            ),
                            vspan,
                        )
                        .with_help("patterns use Go RE2 syntax: no look-around, no backreferences"),
                    );
                }
            }
            (Some(Err(_)), _) => {}
            _ => diags.push(
                Diagnostic::intercept(format!("{c_ctx}: regex value must be a string"), vspan)
                    .with_help("quote the pattern, e.g. `value: \"^feat/\"`"),
            ),
        }
    }
    // Portcullis's own checks on the value.
    match &ty {
        Some(Err(d)) => diags.push(d.clone()),
        Some(Ok(Typed::List)) => {
            if let Some(NodeValue::Seq(items)) = value.map(|v| &v.value) {
                for item in items {
                    match typed(item) {
                        Ok(Typed::List | Typed::Map) => diags.push(
                            Diagnostic::error("list values must be scalars", item.span)
                                .with_help("nested lists and mappings never equal an argument; flatten the list"),
                        ),
                        Err(d) => diags.push(d),
                        Ok(_) => {}
                    }
                }
            }
            if !matches!(op, "in" | "not_in") && OPERATORS.contains(&op) {
                diags.push(
                    Diagnostic::error(
                        format!("operator `{op}` needs a single value, not a list"),
                        vspan,
                    )
                    .with_help("use `in` / `not_in` to test membership in a list"),
                );
            }
        }
        Some(Ok(Typed::Map)) => diags.push(
            Diagnostic::error("a condition value cannot be a mapping", vspan).with_help(
                "compare with a string, number, boolean, null or (for in / not_in) a list",
            ),
        ),
        _ => {}
    }
}

// ---------------------------------------------------------------------------
// Lowering.

fn build(file: &File, b: &mut PolicyBuilder, diags: &mut Vec<Diagnostic>) -> Option<()> {
    let server = b.policy.name.clone();
    b.policy.description = file.description.as_ref().map(|d| d.text.clone());
    for (i, h) in file.hide.iter().enumerate() {
        let rule = b.add_rule(
            "(hidden)".into(),
            format!("hide[{i}]"),
            RuleKind::Hide,
            h.span,
        );
        let pattern = if h.text == "*" {
            NamePattern::All
        } else {
            NamePattern::Exact(h.text.clone())
        };
        b.policy.hidden.push(Hide {
            pattern,
            rule,
            loc: Loc(h.span),
        });
    }
    b.policy.default = if file.default.text == "deny" {
        Posture::Deny
    } else {
        Posture::Allow
    };
    b.policy.default_rule = b.add_rule(
        "(default deny)".into(),
        "default".into(),
        RuleKind::DefaultDeny,
        file.default.span,
    );

    // Declare every counter first: conditions may read another tool's counter.
    let mut counters: BTreeMap<(String, String), CounterId> = BTreeMap::new();
    for (tool, decl) in &file.tools {
        let (scope, key_scope) = if tool == "*" {
            ("_global", "*")
        } else {
            (tool.as_str(), tool.as_str())
        };
        for r in &decl.rules {
            let Some(s) = &r.state else { continue };
            let window = Window::Calendar(calendar(&s.window.text)?);
            let id = b.add_counter(Counter {
                id: CounterId(0),
                key: format!("{server}/{key_scope}.{}", s.counter.text),
                display: format!("state.{scope}.{}", s.counter.text),
                window,
                partition: Partition::Global,
                loc: Loc(s.span),
            });
            counters.insert((scope.to_string(), s.counter.text.clone()), id);
        }
    }
    let declared = declared_counters(file);
    let errors_before = diags.iter().filter(|d| d.is_error()).count();
    for (tool, decl) in &file.tools {
        let scope = if tool == "*" {
            "_global"
        } else {
            tool.as_str()
        };
        let mut ids = Vec::new();
        for (i, r) in decl.rules.iter().enumerate() {
            let label = format!("tools.{tool}.rules[{i}]");
            let id = b.add_rule(r.name.text.clone(), label.clone(), RuleKind::Rule, r.span);
            let limit = r.state.as_ref().and_then(|s| {
                let counter = counters[&(scope.to_string(), s.counter.text.clone())];
                own_limit(&label, scope, r, s, counter, diags)
            });
            // The condition that sets the limit is enforced by the reservation,
            // which checks the count *after* this call; checking the count
            // before the call as well (Intercept does) can only differ when the
            // counter is already above its limit, which this policy never causes.
            // Dropping it saves a counter read per call (a round trip with Redis).
            let limit_condition = limit.as_ref().map(|(_, i)| *i);
            let tests: Vec<Expr> = r
                .conditions
                .iter()
                .enumerate()
                .filter(|(j, _)| Some(*j) != limit_condition)
                .filter_map(|(_, c)| {
                    lower_condition(c, &declared, &counters, b, diags).map(Expr::Test)
                })
                .collect();
            let message = if r.on_deny.text.is_empty() {
                format!("Denied by rule {}", go_quote(&r.name.text))
            } else {
                r.on_deny.text.clone()
            };
            // A rule whose only condition was its limit has nothing left to check.
            let deny_when = if r.action.text == "deny" {
                Some(Expr::Bool(true))
            } else if tests.is_empty() {
                None
            } else {
                Some(Expr::negate(Expr::And(tests)))
            };
            b.rule_mut(id).check = deny_when.map(|deny_when| Check { deny_when, message });
            b.rule_mut(id).limit = limit.map(|(l, _)| l);
            ids.push(id);
        }
        if tool == "*" {
            b.policy.wildcard = ids;
        } else {
            b.policy.tools.push(Tool {
                patterns: vec![NamePattern::Exact(tool.clone())],
                rules: ids,
                loc: Loc(decl.key_span),
            });
        }
    }
    (diags.iter().filter(|d| d.is_error()).count() == errors_before).then_some(())
}

fn lower_condition(
    c: &CondDecl,
    declared: &BTreeMap<String, Vec<String>>,
    counters: &BTreeMap<(String, String), CounterId>,
    b: &mut PolicyBuilder,
    diags: &mut Vec<Diagnostic>,
) -> Option<Test> {
    let lhs = if let Some(rest) = c.path.text.strip_prefix("args.") {
        Operand::Arg(ArgPath {
            segments: rest.split('.').map(str::to_string).collect(),
            loc: Loc(c.path.span),
        })
    } else {
        let rest = c.path.text.strip_prefix("state.")?;
        let (scope, counter) = *resolve_state(rest, declared).first()?;
        Operand::Counter(counters[&(scope.to_string(), counter.to_string())])
    };
    let value = c.value.as_ref();
    let constant = |n: &Node| match typed(n) {
        Ok(Typed::Null) => Some(Const::Null),
        Ok(Typed::Bool(v)) => Some(Const::Bool(v)),
        Ok(Typed::Num(v)) => Some(Const::Num(v)),
        Ok(Typed::Str(v)) => Some(Const::Str(v)),
        _ => None,
    };
    let single = || value.and_then(constant).map(Operand::Const);
    let cmp = |op| {
        single().map(|rhs| TestKind::Cmp {
            lhs: lhs.clone(),
            op,
            rhs,
        })
    };
    let kind = match c.op.text.as_str() {
        "eq" => cmp(CmpOp::Eq),
        "neq" => cmp(CmpOp::Ne),
        "lt" => cmp(CmpOp::Lt),
        "lte" => cmp(CmpOp::Le),
        "gt" => cmp(CmpOp::Gt),
        "gte" => cmp(CmpOp::Ge),
        "in" | "not_in" => {
            let Some(NodeValue::Seq(items)) = value.map(|v| &v.value) else {
                return None;
            };
            Some(TestKind::In {
                lhs: lhs.clone(),
                list: items.iter().filter_map(constant).collect(),
                negated: c.op.text == "not_in",
            })
        }
        "contains" => single().map(|rhs| TestKind::Contains {
            lhs: lhs.clone(),
            rhs,
        }),
        "exists" => match value.map(typed) {
            Some(Ok(Typed::Bool(expect))) => Some(TestKind::Exists {
                operand: lhs.clone(),
                expect,
            }),
            _ => None,
        },
        "regex" => {
            let pattern = value.and_then(Node::scalar)?;
            match b.add_regex(&pattern.text, "", value.map_or(c.span, |v| v.span)) {
                Ok(regex) => Some(TestKind::Matches {
                    lhs: lhs.clone(),
                    regex,
                }),
                Err(e) => {
                    diags.push(Diagnostic::error(
                        format!("invalid regex: {}", e.message),
                        c.span,
                    ));
                    None
                }
            }
        }
        _ => None,
    }?;
    Some(Test {
        kind,
        loc: Loc(c.span),
    })
}

/// A rule's limit on its own counter, from its first numeric `lt`/`lte`
/// condition on exactly `state.<scope>.<counter>` (Intercept §5.3).
/// `lte X` admits up to X; `lt X` up to the largest whole number below X.
fn own_limit(
    label: &str,
    scope: &str,
    r: &RuleDecl,
    s: &StateDecl,
    counter: CounterId,
    diags: &mut Vec<Diagnostic>,
) -> Option<(Limit, usize)> {
    let own_path = format!("state.{scope}.{}", s.counter.text);
    let (index, cond) = r
        .conditions
        .iter()
        .enumerate()
        .find(|(_, c)| c.path.text == own_path && matches!(c.op.text.as_str(), "lt" | "lte"))?;
    let Some(Ok(Typed::Num(x))) = cond.value.as_ref().map(typed) else {
        return None;
    };
    let vspan = cond.value.as_ref().map_or(cond.span, |v| v.span);
    let n = x.num();
    if !n.is_integer() {
        diags.push(
            Diagnostic::error(format!("the limit of counter `{}` is not a whole number", s.counter.text), vspan)
                .with_help(format!(
                    "counters count whole units; write a whole number (Intercept truncates {x}, so `lt {x}` admits fewer calls than it says)"
                )),
        );
        return None;
    }
    if n.is_negative() || (cond.op.text == "lt" && n.is_zero()) {
        diags.push(
            Diagnostic::error(
                format!(
                    "the limit of counter `{}` admits no calls at all",
                    s.counter.text
                ),
                vspan,
            )
            .with_help("to forbid the tool, use `action: deny`"),
        );
        return None;
    }
    let x = n.to_u64_exact().unwrap_or(u64::MAX);
    let max = if cond.op.text == "lt" { x - 1 } else { x };
    if cond.op.text == "lt" {
        diags.push(
            Diagnostic::warning(
                format!("`lt {x}` on this rule's own counter admits {max} per window, not {x}"),
                cond.span,
            )
            .with_help(format!(
                "the count after this call must stay below {x}; write `op: lte` to admit {x} (Intercept's own fixtures make this mistake)"
            )),
        );
    }
    let amount = match &s.increment_from {
        Some(f) => Amount::Arg {
            path: ArgPath {
                segments: f
                    .text
                    .trim_start_matches("args.")
                    .split('.')
                    .map(str::to_string)
                    .collect(),
                loc: Loc(f.span),
            },
            missing_message: INTERNAL_POLICY_ERROR.to_string(),
            invalid_message: format!(
                "Invalid amount for {}: {} must be a whole number from 0 to {}",
                go_quote(&r.name.text),
                f.text,
                portcullis_runtime::ops::MAX_AMOUNT
            ),
        },
        None => Amount::Const(if s.increment == 0 {
            1
        } else {
            u64::try_from(s.increment).unwrap_or(u64::MAX)
        }),
    };
    let message = if r.on_deny.text.is_empty() {
        format!("Rate limit exceeded for {}", r.name.text)
    } else {
        r.on_deny.text.clone()
    };
    let _ = label;
    Some((
        Limit {
            counter,
            max,
            amount,
            message,
            loc: Loc(cond.span),
        },
        index,
    ))
}
