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

use portcullis_core::policy::go_quote;

use super::surfaces::{self, MatchMode};
use super::{PolicyBuilder, Str, check_keys, get, key_span, map_entries, seq_items, string_field};
use crate::ir::Surface;
use crate::ir::{
    Amount, Approve, ArgPath, Calendar, Channels, Check, CmpOp, Const, Counter, CounterId, Expr,
    Idempotency, IdempotencyMode, Limit, Loc, NamePattern, Operand, Partition, Posture, RuleKind,
    ServerPolicy, Spend, Test, TestKind, Tool, Window,
};
use crate::source::{Diagnostic, Span};
use crate::syntax::yaml::{Key, Node, NodeValue, Scalar, Style, Typed, typed};

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
    let checked = validate(&file, diags);
    if diags.iter().filter(|d| d.is_error()).count() > errors_before {
        return None;
    }
    let checked = derive_limits(checked?, diags)?;
    build(&file, checked, &mut b);
    for (i, node) in &file.hide_conditions {
        b.policy.hidden[*i].when = hide_condition(node, &format!("hide[{i}]"), &mut b, diags);
    }
    for mut sd in std::mem::take(&mut file.surfaces) {
        if let Some((span, posture)) = sd.default {
            surfaces::set_default(sd.file.section, sd.surface, span, posture, &mut b);
        }
        expand_rate_limits(&mut sd.file);
        let Some(checked) = validate(&sd.file, diags) else {
            continue;
        };
        let Some(checked) = derive_limits(checked, diags) else {
            continue;
        };
        let before = b.policy.tools.len();
        build_blocks(&sd.file, checked, &mut b);
        let mut blocks = b.policy.tools.split_off(before);
        for block in &mut blocks {
            let key = block.patterns[0].text().to_string();
            let entry = sd.entries.iter().find(|e| e.key.text == key);
            let mode = entry.map_or(MatchMode::Auto, |e| e.mode);
            let span = entry.map_or(block.loc.0, |e| e.key.span);
            block.patterns = vec![surfaces::pattern(
                sd.surface, &key, mode, span, &mut b, diags,
            )];
        }
        // Blocks apply in the order the file lists them.
        blocks.sort_by_key(|t| t.loc.0.start);
        let mut hidden = Vec::new();
        for (i, e) in sd.entries.iter().filter(|e| e.hide).enumerate() {
            let when = e.hide_when.as_ref().and_then(|n| {
                let ctx = format!("{}.{}", sd.file.section, e.key.text);
                surfaces::hide_when(n, &ctx, &mut b, diags)
            });
            let rule = b.add_rule(
                "(hidden)".into(),
                format!("{}.hide[{i}]", sd.file.section),
                RuleKind::Hide,
                e.key.span,
            );
            hidden.push(crate::ir::Hide {
                pattern: surfaces::pattern(
                    sd.surface,
                    &e.key.text,
                    e.mode,
                    e.key.span,
                    &mut b,
                    diags,
                ),
                when,
                rule,
                loc: Loc(e.key.span),
            });
        }
        let rules = match sd.surface {
            Surface::Resource => &mut b.policy.resources,
            _ => &mut b.policy.prompts,
        };
        rules.blocks = blocks;
        rules.hidden = hidden;
    }
    {
        let p = &b.policy;
        surfaces::check_rules(p, |id| p.rule(id).loc.0, diags);
    }
    if diags.iter().filter(|d| d.is_error()).count() > errors_before {
        return None;
    }
    Some(b.finish())
}

// ---------------------------------------------------------------------------
// Surface form.

struct File {
    version: Str,
    default: Str,
    description: Option<Str>,
    hide: Vec<Str>,
    /// Conditional hide entries (`{tool, when | unless}`), by index in `hide`.
    hide_conditions: Vec<(usize, Node)>,
    tools: BTreeMap<String, ToolDecl>,
    /// The top-level `approvals:` block, decoded and checked.
    approvals: Option<crate::ir::ApprovalConfig>,
    /// The top-level `results:` block (a Portcullis extension; docs/results.md).
    results: Vec<crate::results::ResultRule>,
    /// Where the blocks sit: `tools`, `resources` or `prompts` (labels, messages).
    section: &'static str,
    /// Counter keys of the blocks start with this (`resource:`, `prompt:`),
    /// so a prompt's counters never meet a tool's of the same name.
    key_prefix: &'static str,
    /// The `resources:` and `prompts:` blocks (a Portcullis extension), each
    /// read as a file of its own whose tools are resources or prompts.
    surfaces: Vec<SurfaceDecl>,
}

/// A `resources:` or `prompts:` block.
struct SurfaceDecl {
    surface: Surface,
    /// Its entries with rules, as tools of a file of their own.
    file: File,
    /// Every entry, in order: how its key matches, whether it is hidden.
    entries: Vec<SurfaceEntry>,
    /// `default: allow | deny` (where the key is, and the posture).
    default: Option<(Span, crate::ir::Posture)>,
}

struct SurfaceEntry {
    key: Str,
    mode: MatchMode,
    hide: bool,
    /// A conditional hide's `{when | unless}` mapping.
    hide_when: Option<Node>,
}

struct ToolDecl {
    key_span: Span,
    rules: Vec<RuleDecl>,
}

struct RuleDecl {
    span: Span,
    name: Str,
    action: ActionDecl,
    rate_limit: Option<Str>,
    /// `rate_limit_by: principal.sub` (a Portcullis extension): the
    /// rate_limit counts per value of this path.
    rate_limit_by: Option<Str>,
    conditions: Vec<CondDecl>,
    conditions_span: Option<Span>,
    on_deny: Str,
    state: Option<StateDecl>,
    /// `idempotency_window: 5m` (a Go duration).
    idempotency_window: Option<Str>,
    /// `approval_timeout: 30m` (require_approval rules).
    approval_timeout: Option<Str>,
    spend: Option<SpendDecl>,
}

/// A rule's `spend:` block (budgets on paid tools, MPP): amounts as written.
struct SpendDecl {
    span: Span,
    per_call: Option<Str>,
    daily: Option<Str>,
    /// `by: principal.sub` (a Portcullis extension, as `rate_limit_by`):
    /// one daily budget per value; without it every caller shares one.
    by: Option<Str>,
}

struct CondDecl {
    span: Span,
    path: Str,
    op: OpDecl,
    value: Option<Node>,
}

/// A rule's `action`, decoded once. An absent or empty action is `evaluate`.
enum Action {
    Evaluate,
    Deny,
    /// `action: require_approval`: a person must approve the call when
    /// every condition holds (always, without conditions).
    RequireApproval,
    /// Anything else, as written (reported by validation).
    Unknown(String),
}

struct ActionDecl {
    action: Action,
    span: Span,
}

impl ActionDecl {
    fn decode(s: Str) -> ActionDecl {
        let action = match s.text.as_str() {
            "" | "evaluate" => Action::Evaluate,
            "deny" => Action::Deny,
            "require_approval" => Action::RequireApproval,
            _ => Action::Unknown(s.text),
        };
        ActionDecl {
            action,
            span: s.span,
        }
    }
}

/// An Intercept condition operator (spec `intercept-v1.md` §4.2).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Operator {
    /// `eq`
    Eq,
    /// `neq`
    Neq,
    /// `in`
    In,
    /// `not_in`
    NotIn,
    /// `lt`
    Lt,
    /// `lte`
    Lte,
    /// `gt`
    Gt,
    /// `gte`
    Gte,
    /// `regex`
    Regex,
    /// `contains`
    Contains,
    /// `exists`
    Exists,
    /// `path_glob` (a Portcullis extension): the argument, normalised as a
    /// filesystem path, matches a glob.
    PathGlob,
    /// `path_not_glob`: it does not.
    PathNotGlob,
    /// `path_eq`: the normalised path is exactly the value.
    PathEq,
    /// `path_neq`: it is not.
    PathNeq,
    /// `path_under`: the normalised path is the value or below it.
    PathUnder,
    /// `path_not_under`: it is neither.
    PathNotUnder,
}

impl Operator {
    /// Every operator, in Intercept's order (its "unknown operator" help lists them so).
    pub const ALL: [Operator; 17] = [
        Operator::Eq,
        Operator::Neq,
        Operator::In,
        Operator::NotIn,
        Operator::Lt,
        Operator::Lte,
        Operator::Gt,
        Operator::Gte,
        Operator::Regex,
        Operator::Contains,
        Operator::Exists,
        Operator::PathGlob,
        Operator::PathNotGlob,
        Operator::PathEq,
        Operator::PathNeq,
        Operator::PathUnder,
        Operator::PathNotUnder,
    ];

    /// The spelling in a policy file.
    pub fn name(self) -> &'static str {
        match self {
            Operator::Eq => "eq",
            Operator::Neq => "neq",
            Operator::In => "in",
            Operator::NotIn => "not_in",
            Operator::Lt => "lt",
            Operator::Lte => "lte",
            Operator::Gt => "gt",
            Operator::Gte => "gte",
            Operator::Regex => "regex",
            Operator::Contains => "contains",
            Operator::Exists => "exists",
            Operator::PathGlob => "path_glob",
            Operator::PathNotGlob => "path_not_glob",
            Operator::PathEq => "path_eq",
            Operator::PathNeq => "path_neq",
            Operator::PathUnder => "path_under",
            Operator::PathNotUnder => "path_not_under",
        }
    }

    /// For a `path_*` operator: how it compares, and whether it is negated.
    pub fn path_op(self) -> Option<(crate::ir::PathOp, bool)> {
        use crate::ir::PathOp;
        Some(match self {
            Operator::PathGlob => (PathOp::Glob, false),
            Operator::PathNotGlob => (PathOp::Glob, true),
            Operator::PathEq => (PathOp::Eq, false),
            Operator::PathNeq => (PathOp::Eq, true),
            Operator::PathUnder => (PathOp::Under, false),
            Operator::PathNotUnder => (PathOp::Under, true),
            _ => return None,
        })
    }

    /// The operator spelled `s` (case-sensitive, as in Intercept).
    pub fn parse(s: &str) -> Option<Operator> {
        Operator::ALL.into_iter().find(|o| o.name() == s)
    }
}

/// A condition's `op`, decoded once: a known operator, or the unknown
/// spelling kept for its diagnostic.
enum OpDecl {
    Known(Operator),
    Unknown(Str),
}

impl OpDecl {
    fn decode(s: Str) -> OpDecl {
        match Operator::parse(&s.text) {
            Some(op) => OpDecl::Known(op),
            None => OpDecl::Unknown(s),
        }
    }

    fn known(&self) -> Option<Operator> {
        match self {
            OpDecl::Known(op) => Some(*op),
            OpDecl::Unknown(_) => None,
        }
    }
}

struct StateDecl {
    span: Span,
    /// `by: principal.sub` (a Portcullis extension): one count per value.
    by: Option<Str>,
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
        hide_conditions: Vec::new(),
        tools: BTreeMap::new(),
        approvals: None,
        results: Vec::new(),
        section: "tools",
        key_prefix: "",
        surfaces: Vec::new(),
    };
    let Some(root) = root else {
        return file;
    };
    let Some(entries) = map_entries(root, "the policy file", diags) else {
        return file;
    };
    check_keys(
        entries,
        &[
            "version",
            "description",
            "default",
            "hide",
            "tools",
            "approvals",
            "results",
            "resources",
            "prompts",
        ],
        "the policy file",
        diags,
    );
    if let Some(v) = get(entries, "version") {
        file.version = string_field(v, "version", diags);
    }
    if let Some(v) = get(entries, "description") {
        file.description = Some(string_field(v, "description", diags));
    }
    if let Some(a) = get(entries, "approvals") {
        file.approvals = super::approval::decode_block(a, diags);
    }
    if let Some(r) = get(entries, "results") {
        file.results = super::results::decode_block(r, diags);
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
        for (i, n) in items.iter().enumerate() {
            let (name, conditional) = hide_name(n, i, diags);
            if conditional {
                file.hide_conditions.push((i, n.clone()));
            }
            file.hide.push(name);
        }
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
    for (key, surface, section, prefix) in [
        ("resources", Surface::Resource, "resources", "resource:"),
        ("prompts", Surface::Prompt, "prompts", "prompt:"),
    ] {
        if let Some(node) = get(entries, key) {
            file.surfaces
                .push(decode_surface(node, surface, section, prefix, diags));
        }
    }
    file
}

/// A `resources:` or `prompts:` block: a mapping from a URI (or prompt
/// name) pattern to `{rules, match, hide}`.
fn decode_surface(
    node: &Node,
    surface: Surface,
    section: &'static str,
    key_prefix: &'static str,
    diags: &mut Vec<Diagnostic>,
) -> SurfaceDecl {
    let mut file = File {
        version: Str {
            text: "1".into(),
            span: node.span,
        },
        default: Str::default(),
        description: None,
        hide: Vec::new(),
        hide_conditions: Vec::new(),
        tools: BTreeMap::new(),
        approvals: None,
        section,
        key_prefix,
        surfaces: Vec::new(),
        results: Vec::new(),
    };
    let mut out = Vec::new();
    let mut default = None;
    if let Some(items) = map_entries(node, section, diags) {
        for (k, v) in items {
            if surfaces::is_default(k, v) {
                default =
                    surfaces::default_posture(section, surface, v, diags).map(|p| (k.span, p));
                continue;
            }
            let ctx = format!("{section}.{}", k.text);
            let mut entry = SurfaceEntry {
                key: Str {
                    text: k.text.clone(),
                    span: k.span,
                },
                mode: MatchMode::Auto,
                hide: false,
                hide_when: None,
            };
            let Some(fields) = map_entries(v, &ctx, diags) else {
                continue;
            };
            check_keys(
                fields,
                &["rules", "match", "hide"],
                &format!("{} `{}`", surface.name(), k.text),
                diags,
            );
            if let Some(m) = get(fields, "match") {
                let m = string_field(m, "match", diags);
                match MatchMode::parse(&m.text) {
                    Some(mode) => entry.mode = mode,
                    None => diags.push(
                        Diagnostic::error(format!("{ctx}.match must be `exact`, `glob` or `regex`, got {}", go_quote(&m.text)), m.span)
                            .with_help("without `match`, a key holding `*` is a glob and any other an exact match"),
                    ),
                }
            }
            if let Some(h) = get(fields, "hide") {
                match surfaces::hide_field(&ctx, h, diags) {
                    surfaces::HideField::No => {}
                    surfaces::HideField::Always => entry.hide = true,
                    surfaces::HideField::When(n) => {
                        entry.hide = true;
                        entry.hide_when = Some(n.clone());
                    }
                }
            }
            // An entry not hidden from everyone lists what it names: under
            // `default: deny`, one without rules allows it.
            if get(fields, "rules").is_some() || entry.hide_when.is_some() || !entry.hide {
                let rules = if get(fields, "rules").is_some() {
                    decode_rules(&ctx, fields, diags)
                } else {
                    Vec::new()
                };
                file.tools.insert(
                    k.text.clone(),
                    ToolDecl {
                        key_span: k.span,
                        rules,
                    },
                );
            }
            out.push(entry);
        }
    }
    SurfaceDecl {
        surface,
        file,
        entries: out,
        default,
    }
}

fn decode_tool(name: &str, node: &Node, diags: &mut Vec<Diagnostic>) -> Vec<RuleDecl> {
    let ctx = format!("tools.{name}");
    let Some(entries) = map_entries(node, &ctx, diags) else {
        return Vec::new();
    };
    check_keys(entries, &["rules"], &format!("tool `{name}`"), diags);
    decode_rules(&ctx, entries, diags)
}

/// The `rules:` list of a tool's (or resource's, prompt's) entries.
fn decode_rules(ctx: &str, entries: &[(Key, Node)], diags: &mut Vec<Diagnostic>) -> Vec<RuleDecl> {
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
            "spend",
            "idempotency_window",
            "rate_limit_by",
            "approval_timeout",
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
    let action = ActionDecl::decode(at_rule(field("action", diags)));
    let on_deny = at_rule(field("on_deny", diags));
    let rate_limit = field("rate_limit", diags).filter(|s| !s.text.is_empty());
    let idempotency_window = field("idempotency_window", diags);
    let rate_limit_by = field("rate_limit_by", diags);
    let approval_timeout = field("approval_timeout", diags);
    let conditions_span = key_span(entries, "conditions");
    let conditions = match get(entries, "conditions") {
        Some(c) => decode_conditions(c, &format!("{ctx}.conditions"), diags),
        None => Vec::new(),
    };
    let state = get(entries, "state").and_then(|s| decode_state(&format!("{ctx}.state"), s, diags));
    let spend = get(entries, "spend").and_then(|s| decode_spend(&format!("{ctx}.spend"), s, diags));
    Some(RuleDecl {
        span: node.span,
        name,
        action,
        rate_limit,
        rate_limit_by,
        conditions,
        conditions_span,
        on_deny,
        state,
        spend,
        idempotency_window,
        approval_timeout,
    })
}

/// A counter's `by` (`state.by`, `rate_limit_by`; Portcullis extensions):
/// `principal.sub` or any principal path (one count per caller), or
/// `args.<path>` (one count per argument value).
fn state_partition(by: &Str) -> Result<Partition, Diagnostic> {
    if by.text.starts_with("principal.") {
        return yaml_principal_path(by).map(Partition::Arg);
    }
    match by.text.strip_prefix("args.") {
        Some(rest) if !rest.split('.').any(str::is_empty) => Ok(Partition::Arg(ArgPath::args(
            rest.split('.').map(str::to_string).collect(),
            Loc(by.span),
        ))),
        _ => Err(Diagnostic::error(
            format!("a counter's `by` must be a principal or argument path, got {}", go_quote(&by.text)),
            by.span,
        )
        .with_help("write `by: principal.sub` (one count per caller), `by: principal.claims.<name>` or `by: args.<name>`; without `by` the counter is shared by every caller")),
    }
}

/// A list of `{path, op, value}` conditions at `ctx`.
fn decode_conditions(c: &Node, ctx: &str, diags: &mut Vec<Diagnostic>) -> Vec<CondDecl> {
    let mut conditions = Vec::new();
    if let Some(items) = seq_items(c, ctx, diags) {
        for (j, item) in items.iter().enumerate() {
            let cctx = format!("{ctx}[{j}]");
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
                op: OpDecl::decode(op),
                value: get(ce, "value").cloned(),
            });
        }
    }
    conditions
}

/// The tool name of a `hide` entry (both YAML forms), and whether it is a
/// conditional entry: a tool name, or (a Portcullis extension) a map
/// `{tool: NAME, when: [CONDITIONS]}` or `{tool: NAME, unless: [CONDITIONS]}`.
pub(super) fn hide_name(n: &Node, i: usize, diags: &mut Vec<Diagnostic>) -> (Str, bool) {
    if !matches!(n.value, NodeValue::Map(_)) {
        return (string_field(n, "a hide entry", diags), false);
    }
    let ctx = format!("hide[{i}]");
    let Some(entries) = map_entries(n, &ctx, diags) else {
        return (
            Str {
                text: String::new(),
                span: n.span,
            },
            false,
        );
    };
    check_keys(
        entries,
        &["tool", "when", "unless"],
        "a conditional hide entry",
        diags,
    );
    let name = match get(entries, "tool") {
        Some(t) => string_field(t, &format!("{ctx}.tool"), diags),
        None => {
            diags.push(
                Diagnostic::error(format!("{ctx}: a conditional hide entry needs `tool`"), n.span)
                    .with_help("write `- {tool: admin_tool, unless: [{path: principal.claims.groups, op: contains, value: admins}]}`"),
            );
            Str {
                text: "?".into(),
                span: n.span,
            }
        }
    };
    match (get(entries, "when"), get(entries, "unless")) {
        (Some(_), Some(u)) => diags.push(
            Diagnostic::error(format!("{ctx}: give `when` or `unless`, not both"), u.span)
                .with_help("`when`: hidden when every condition holds; `unless`: hidden unless every condition holds"),
        ),
        (None, None) => diags.push(
            Diagnostic::error(format!("{ctx}: a conditional hide entry needs `when` or `unless`"), n.span)
                .with_help("or write the tool name alone to hide it from every caller"),
        ),
        _ => {}
    }
    (name, true)
}

/// The condition of a conditional `hide` entry (see [`hide_name`]): its
/// conditions are Intercept's `{path, op, value}`, all of which must hold,
/// on principal paths only (a hide decides `tools/list` too, where there
/// are no arguments or counters).
pub(super) fn hide_condition(
    n: &Node,
    ctx: &str,
    b: &mut PolicyBuilder,
    diags: &mut Vec<Diagnostic>,
) -> Option<Expr> {
    let entries = match &n.value {
        NodeValue::Map(_) => map_entries(n, ctx, diags)?,
        _ => return None,
    };
    let (key, node) = match (get(entries, "when"), get(entries, "unless")) {
        (Some(w), None) => ("when", w),
        (None, Some(u)) => ("unless", u),
        _ => return None,
    };
    let conds = decode_conditions(node, &format!("{ctx}.{key}"), diags);
    if conds.is_empty() {
        diags.push(
            Diagnostic::error(
                format!("{ctx}.{key}: needs at least one condition"),
                node.span,
            )
            .with_help(
                "write e.g. `[{path: principal.claims.groups, op: contains, value: admins}]`",
            ),
        );
        return None;
    }
    let mut tests = Vec::new();
    let before = diags.iter().filter(|d| d.is_error()).count();
    for (j, c) in conds.iter().enumerate() {
        let cctx = format!("{ctx}.{key}[{j}]");
        if !c.path.text.starts_with("principal.") {
            diags.push(
                Diagnostic::error(
                    format!("{cctx}: a hide condition may only read principal paths, got {}", go_quote(&c.path.text)),
                    c.path.span,
                )
                .with_help("a hide decides lists too (`tools/list`, `resources/list`, `prompts/list`), where there are no arguments or counters; test the caller (`principal.sub`, `principal.scopes`, `principal.claims.<name>`)"),
            );
            continue;
        }
        validate_condition(&cctx, c, diags);
        if diags.iter().filter(|d| d.is_error()).count() > before {
            continue;
        }
        match check_condition(c, &BTreeMap::new()) {
            Ok(cond) => tests.push(lower_condition(cond, &BTreeMap::new(), b)),
            Err(d) => diags.push(d),
        }
    }
    if diags.iter().filter(|d| d.is_error()).count() > before {
        return None;
    }
    let all = if tests.len() == 1 {
        tests.pop().expect("one test")
    } else {
        Expr::And(tests)
    };
    Some(if key == "unless" {
        Expr::negate(all)
    } else {
        all
    })
}

/// `spend: {per_call: 0.50, daily: 50.00, by: principal.sub}`: strict keys,
/// amounts kept as written.
fn decode_spend(ctx: &str, node: &Node, diags: &mut Vec<Diagnostic>) -> Option<SpendDecl> {
    let entries = map_entries(node, ctx, diags)?;
    check_keys(
        entries,
        &["per_call", "daily", "by"],
        "a spend block",
        diags,
    );
    let field = |key: &str, diags: &mut Vec<Diagnostic>| {
        get(entries, key).map(|v| string_field(v, &format!("{ctx}.{key}"), diags))
    };
    Some(SpendDecl {
        span: node.span,
        per_call: field("per_call", diags),
        daily: field("daily", diags),
        by: field("by", diags),
    })
}

/// Reads a spend amount exactly (micro-units), reporting why it cannot be.
fn spend_amount(p: &str, key: &str, s: &Str, diags: &mut Vec<Diagnostic>) -> Option<u64> {
    match portcullis_core::spend::parse_decimal(&s.text) {
        Ok(v) => Some(v),
        Err(e) => {
            diags.push(
                Diagnostic::error(format!("{p}.spend.{key}: {} is {e}", go_quote(&s.text)), s.span)
                    .with_help("write an amount in the currency's units with at most six decimals, e.g. `0.50`; money is never rounded"),
            );
            None
        }
    }
}

fn decode_state(ctx: &str, node: &Node, diags: &mut Vec<Diagnostic>) -> Option<StateDecl> {
    if node.is_null() {
        return None; // `state:` with no value is no state block, as in Go
    }
    let entries = map_entries(node, ctx, diags)?;
    check_keys(
        entries,
        &["counter", "window", "increment", "increment_from", "by"],
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
    let by = get(entries, "by").map(|v| string_field(v, &format!("{ctx}.by"), diags));
    Some(StateDecl {
        span: node.span,
        by,
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
            if !rule.conditions.is_empty()
                || rule.state.is_some()
                || matches!(rule.action.action, Action::Deny | Action::RequireApproval)
            {
                continue;
            }
            let Ok((n, w)) = parse_rate_limit(&rl.text) else {
                continue;
            };
            let span = rl.span;
            let counter = format!("_rate_{}", w.name());
            rule.action.action = Action::Evaluate;
            rule.conditions.push(CondDecl {
                span,
                path: Str {
                    text: format!("state.{scope}.{counter}"),
                    span,
                },
                op: OpDecl::Known(Operator::Lte),
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
                by: rule.rate_limit_by.clone(),
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

/// A file as validation leaves it: every tool, in `file.tools` order, with
/// its rules in their typed form. This is all lowering reads of conditions
/// and actions, so it cannot meet a spelling it does not know.
struct Checked<'f> {
    tools: Vec<(&'f str, &'f ToolDecl, Vec<CheckedRule<'f>>)>,
}

/// One validated rule.
struct CheckedRule<'f> {
    decl: &'f RuleDecl,
    state: Option<CheckedState<'f>>,
    body: Body,
    /// The rule's limit on its own counter, and the condition it replaces.
    limit: Option<OwnLimit>,
}

/// A validated `state` block.
struct CheckedState<'f> {
    counter: &'f str,
    window: Calendar,
    partition: Partition,
    span: Span,
}

/// What a rule does with a call. Every condition of an `evaluate` rule is
/// here, or in its [`OwnLimit`]: there is no way to lose one on the way.
enum Body {
    /// `action: deny`: every call is denied.
    Deny,
    /// `action: evaluate`: a call is denied unless every condition holds.
    Evaluate(Vec<Cond>),
    /// `action: require_approval`: a call needs a person's approval when
    /// every condition holds (always, with none).
    Approve(Vec<Cond>),
}

/// A typed condition.
struct Cond {
    span: Span,
    /// The value's span (the condition's when it has none).
    value_span: Span,
    lhs: Lhs,
    pred: Pred,
}

/// What a condition reads.
#[derive(PartialEq, Eq)]
enum Lhs {
    /// `args.…` or (a Portcullis extension) `principal.…`.
    Path(ArgPath),
    /// A declared counter, `state.<scope>.<counter>`.
    Counter { scope: String, counter: String },
}

/// What a condition tests, one variant per operator family.
enum Pred {
    Cmp(CmpOp, Const),
    In {
        list: Vec<Const>,
        negated: bool,
    },
    Contains(Const),
    Exists(bool),
    /// An already translated and compiled-once pattern.
    Matches(crate::regex::GoRegex, Span),
    /// A `path_*` operator: (how, negated, the checked pattern).
    Path(crate::ir::PathOp, bool, String),
}

/// A rule's limit on its own counter, derived from (and replacing) its
/// `lt`/`lte` condition on that counter.
struct OwnLimit {
    /// The condition the limit enforces: the reservation checks the count
    /// after this call, so the condition itself is not evaluated again.
    condition: Cond,
    /// (scope, counter) of the rule's own counter.
    counter: (String, String),
    spec: LimitSpec,
}

/// What a limit condition and its state block say.
struct LimitSpec {
    max: u64,
    amount: Amount,
    message: String,
}

fn validate<'f>(file: &'f File, diags: &mut Vec<Diagnostic>) -> Option<Checked<'f>> {
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
        if file.hide_conditions.iter().any(|(j, _)| *j == i) {
            continue; // several conditional hides of one tool are fine
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
    let mut tools = Vec::new();
    let mut complete = true;
    for (tool, decl) in &file.tools {
        let rules = validate_tool(file.section, tool, decl, &declared, diags);
        let rules: Option<Vec<CheckedRule>> = rules.into_iter().collect();
        match rules {
            Some(rules) => tools.push((tool.as_str(), decl, rules)),
            None => complete = false,
        }
    }
    complete.then_some(Checked { tools })
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

/// Reports a tool's problems; each rule's typed form, None for a rule with errors.
fn validate_tool<'f>(
    section: &str,
    tool: &str,
    decl: &'f ToolDecl,
    declared: &BTreeMap<String, Vec<String>>,
    diags: &mut Vec<Diagnostic>,
) -> Vec<Option<CheckedRule<'f>>> {
    let p = |i: usize| format!("{section}.{tool}.rules[{i}]");
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
    decl.rules
        .iter()
        .enumerate()
        .map(|(i, r)| validate_rule(&p(i), tool, r, declared, diags))
        .collect()
}

fn validate_rule<'f>(
    p: &str,
    tool: &str,
    r: &'f RuleDecl,
    declared: &BTreeMap<String, Vec<String>>,
    diags: &mut Vec<Diagnostic>,
) -> Option<CheckedRule<'f>> {
    if let Some(by) = &r.rate_limit_by
        && r.state.as_ref().is_none_or(|s| s.by.is_none())
    {
        diags.push(
            Diagnostic::error(format!("{p}.rate_limit_by: there is no `rate_limit` shorthand for it to partition"), by.span)
                .with_help("`rate_limit_by` partitions a `rate_limit: N/window` rule without conditions or state; a `state` counter takes `by:` inside its `state` block"),
        );
    }
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
        if matches!(r.action.action, Action::Deny) {
            diags.push(
                Diagnostic::intercept(
                    format!("{p}: rate_limit cannot be used with action \"deny\""),
                    rl.span,
                )
                .with_help("remove `action: deny` (a rate limit allows calls up to the limit)"),
            );
        }
        if matches!(r.action.action, Action::RequireApproval) {
            diags.push(
                Diagnostic::error(
                    format!("{p}: rate_limit cannot be used with action \"require_approval\""),
                    rl.span,
                )
                .with_help("put the rate_limit in a rule of its own; an approved call still counts against it"),
            );
        }
        // Intercept stops here for this rule; Portcullis also reports what it hides.
        // A rate_limit left after expansion is always one of the errors above.
        let mut rest = Vec::new();
        validate_rule_body(p, tool, r, declared, &mut rest);
        for mut d in rest {
            d.origin = crate::source::Origin::Portcullis;
            diags.push(d);
        }
        return None;
    }
    validate_rule_body(p, tool, r, declared, diags)
}

/// Reports a rule's problems in Intercept's order; the typed rule when there
/// were none. A condition that validation passed but that cannot be typed is
/// an error here too (fail closed): a rule is never built without one of its
/// conditions.
fn validate_rule_body<'f>(
    p: &str,
    tool: &str,
    r: &'f RuleDecl,
    declared: &BTreeMap<String, Vec<String>>,
    diags: &mut Vec<Diagnostic>,
) -> Option<CheckedRule<'f>> {
    let errors_before = diags.iter().filter(|d| d.is_error()).count();
    if r.name.text.is_empty() {
        diags.push(
            Diagnostic::intercept(format!("{p}: rule must have a name"), r.name.span)
                .with_help("add `name: \"...\"`; the name appears in denials and the audit log"),
        );
    }
    if let Some(sp) = &r.spend {
        let per_call = sp
            .per_call
            .as_ref()
            .map(|s| spend_amount(p, "per_call", s, diags));
        let daily = sp
            .daily
            .as_ref()
            .map(|s| spend_amount(p, "daily", s, diags));
        if let Some(by) = &sp.by {
            if sp.daily.is_none() {
                diags.push(
                    Diagnostic::error(format!("{p}.spend.by: there is no `daily` budget for it to partition"), by.span)
                        .with_help("`by` partitions the daily budget, e.g. `spend: {daily: 50.00, by: principal.sub}`; `per_call` is the same for every caller"),
                );
            } else if let Err(d) = state_partition(by) {
                diags.push(d);
            }
        }
        if per_call.is_none() && daily.is_none() {
            diags.push(
                Diagnostic::error(
                    format!("{p}.spend: a spend block needs `per_call`, `daily` or both"),
                    sp.span,
                )
                .with_help("e.g. `spend: {per_call: 0.50, daily: 50.00}`"),
            );
        }
        if !r.conditions.is_empty()
            || r.state.is_some()
            || !matches!(r.action.action, Action::Evaluate)
        {
            diags.push(
                Diagnostic::error(format!("{p}: spend cannot be combined with conditions, state, rate_limit or action deny"), sp.span)
                    .with_help("give the budget a rule of its own; the price is only known when the server asks for payment"),
            );
        }
    }
    match &r.action.action {
        Action::Evaluate if r.spend.is_some() => {}
        Action::Evaluate
            if r.conditions.is_empty()
                && r.rate_limit.is_none()
                && r.idempotency_window.is_none() =>
        {
            diags.push(
            Diagnostic::intercept(format!("{p}: evaluate rules must have at least one condition"), r.span)
                .with_help("add `conditions:`, or use `action: deny` to deny the tool outright"),
            )
        }
        Action::Deny if !r.conditions.is_empty() => diags.push(
            Diagnostic::intercept(
                format!("{p}: deny rules must not have conditions"),
                r.conditions_span.unwrap_or(r.span),
            )
            .with_help("an `evaluate` rule denies when its conditions fail; a `deny` rule always denies"),
        ),
        Action::Evaluate | Action::Deny => {}
        Action::RequireApproval => {
            if let Some(s) = &r.state {
                diags.push(
                    Diagnostic::error(
                        format!("{p}: state cannot be used with action \"require_approval\""),
                        s.span,
                    )
                    .with_help("count calls in a rule of its own; an approved call still counts against it"),
                );
            }
        }
        Action::Unknown(other) => diags.push(
            Diagnostic::intercept(
                // Intercept v1's text, kept byte for byte (the conformance
                // cases record it); the help names `require_approval`.
                format!("{p}: action must be \"evaluate\" or \"deny\", got {}", go_quote(other)),
                r.action.span,
            )
            .with_help(if other == "allow" {
                "Intercept rules only restrict: leave a tool's rules empty to allow it; `action: allow` belongs to the catalogue form, which has no `version` key"
            } else if other == "approve" {
                "Intercept spells it `action: require_approval`; `action: approve` belongs to the catalogue form, which has no `version` key"
            } else {
                "write `action: evaluate` (the default), `action: deny` or `action: require_approval`"
            }),
        ),
    }
    if let Some(t) = &r.approval_timeout {
        if matches!(r.action.action, Action::RequireApproval) {
            super::approval::timeout(&format!("{p}.approval_timeout"), t, diags);
        } else {
            diags.push(
                Diagnostic::error(
                    format!("{p}: approval_timeout is only valid with action \"require_approval\""),
                    t.span,
                )
                .with_help("add `action: require_approval`, or remove `approval_timeout`"),
            );
        }
    }
    if let Some(w) = &r.idempotency_window {
        if let Err(help) = crate::ir::parse_duration(&w.text) {
            diags.push(
                Diagnostic::error(
                    format!(
                        "{p}: idempotency_window must be a duration, got {}",
                        go_quote(&w.text)
                    ),
                    w.span,
                )
                .with_help(help),
            );
        }
        if matches!(r.action.action, Action::Deny) {
            diags.push(
                Diagnostic::error(
                    format!("{p}: idempotency_window cannot be used with action \"deny\""),
                    w.span,
                )
                .with_help("a deny rule denies every call; put the window on an evaluate rule"),
            );
        }
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
    if diags.iter().filter(|d| d.is_error()).count() > errors_before {
        return None;
    }
    match check_rule(r, declared) {
        Ok(rule) => Some(rule),
        Err(d) => {
            diags.push(d);
            None
        }
    }
}

/// An error for input validation passed but the typed form cannot hold.
/// Reaching it is a compiler bug; the policy is rejected rather than built
/// with a rule weaker than written.
fn internal(what: &str, span: Span) -> Diagnostic {
    Diagnostic::error(
        format!("internal error: {what}; the policy is rejected rather than enforced without it"),
        span,
    )
    .with_help("please report this policy to the Portcullis maintainers")
}

/// The typed form of a rule that validation passed.
fn check_rule<'f>(
    r: &'f RuleDecl,
    declared: &BTreeMap<String, Vec<String>>,
) -> Result<CheckedRule<'f>, Diagnostic> {
    let state = match &r.state {
        None => None,
        Some(s) => Some(CheckedState {
            partition: match &s.by {
                None => Partition::Global,
                Some(by) => state_partition(by)?,
            },
            counter: &s.counter.text,
            window: calendar(&s.window.text)
                .ok_or_else(|| internal("a state window is not minute, hour or day", s.span))?,
            span: s.span,
        }),
    };
    let body = match &r.action.action {
        Action::Deny if r.conditions.is_empty() => Body::Deny,
        Action::Deny => return Err(internal("a deny rule has conditions", r.span)),
        Action::Evaluate => Body::Evaluate(
            r.conditions
                .iter()
                .map(|c| check_condition(c, declared))
                .collect::<Result<_, _>>()?,
        ),
        Action::RequireApproval => Body::Approve(
            r.conditions
                .iter()
                .map(|c| check_condition(c, declared))
                .collect::<Result<_, _>>()?,
        ),
        Action::Unknown(_) => return Err(internal("the action is unknown", r.action.span)),
    };
    Ok(CheckedRule {
        decl: r,
        state,
        body,
        limit: None,
    })
}

/// The typed form of a condition that validation passed.
fn check_condition(
    c: &CondDecl,
    declared: &BTreeMap<String, Vec<String>>,
) -> Result<Cond, Diagnostic> {
    let lhs = if let Some(rest) = c.path.text.strip_prefix("args.") {
        Lhs::Path(ArgPath::args(
            rest.split('.').map(str::to_string).collect(),
            Loc(c.path.span),
        ))
    } else if c.path.text.starts_with("principal.") {
        Lhs::Path(
            yaml_principal_path(&c.path)
                .map_err(|_| internal("a principal path is invalid", c.path.span))?,
        )
    } else if let Some(rest) = c.path.text.strip_prefix("state.") {
        match resolve_state(rest, declared).as_slice() {
            [(scope, counter)] => Lhs::Counter {
                scope: scope.to_string(),
                counter: counter.to_string(),
            },
            _ => {
                return Err(internal(
                    "a state path names no single counter",
                    c.path.span,
                ));
            }
        }
    } else {
        return Err(internal("a path is neither args. nor state.", c.path.span));
    };
    let op = match &c.op {
        OpDecl::Known(op) => *op,
        OpDecl::Unknown(s) => return Err(internal("the operator is unknown", s.span)),
    };
    let vspan = c.value.as_ref().map_or(c.span, |v| v.span);
    let constant = |n: &Node| match typed(n) {
        Ok(Typed::Null) => Ok(Const::Null),
        Ok(Typed::Bool(v)) => Ok(Const::Bool(v)),
        Ok(Typed::Num(v)) => Ok(Const::Num(v)),
        Ok(Typed::Str(v)) => Ok(Const::Str(v)),
        Ok(Typed::List | Typed::Map) => Err(internal("a value is not a scalar", n.span)),
        Err(d) => Err(d),
    };
    let single = || match &c.value {
        Some(v) => constant(v),
        None => Err(internal("the condition has no value", c.span)),
    };
    let pred = match op {
        Operator::Eq => Pred::Cmp(CmpOp::Eq, single()?),
        Operator::Neq => Pred::Cmp(CmpOp::Ne, single()?),
        Operator::Lt => Pred::Cmp(CmpOp::Lt, single()?),
        Operator::Lte => Pred::Cmp(CmpOp::Le, single()?),
        Operator::Gt => Pred::Cmp(CmpOp::Gt, single()?),
        Operator::Gte => Pred::Cmp(CmpOp::Ge, single()?),
        Operator::In | Operator::NotIn => match c.value.as_ref().map(|v| &v.value) {
            Some(NodeValue::Seq(items)) => Pred::In {
                list: items.iter().map(constant).collect::<Result<_, _>>()?,
                negated: op == Operator::NotIn,
            },
            _ => return Err(internal("an in / not_in value is not a list", vspan)),
        },
        Operator::Contains => Pred::Contains(single()?),
        Operator::Exists => match single()? {
            Const::Bool(expect) => Pred::Exists(expect),
            _ => return Err(internal("an exists value is not a boolean", vspan)),
        },
        Operator::Regex => match single()? {
            Const::Str(pattern) => {
                let re = crate::regex::translate_go(&pattern)
                    .and_then(|re| crate::regex::build_regex(&re).map(|_| re))
                    .map_err(|e| internal(&format!("invalid regex: {}", e.message), vspan))?;
                Pred::Matches(re, vspan)
            }
            _ => return Err(internal("a regex value is not a string", vspan)),
        },
        Operator::PathGlob
        | Operator::PathNotGlob
        | Operator::PathEq
        | Operator::PathNeq
        | Operator::PathUnder
        | Operator::PathNotUnder => {
            let (how, negated) = op
                .path_op()
                .ok_or_else(|| internal("a path operator has no comparison", vspan))?;
            match single()? {
                Const::Str(pattern) if crate::ir::check_path_pattern(&pattern).is_ok() => {
                    Pred::Path(how, negated, pattern)
                }
                _ => return Err(internal("a path pattern is invalid", vspan)),
            }
        }
    };
    Ok(Cond {
        span: c.span,
        value_span: vspan,
        lhs,
        pred,
    })
}

/// A YAML `path: principal.…` (a Portcullis extension of Intercept's
/// paths): `principal.sub`, `.iss`, `.scopes`, `.claims.<name>…`, with no
/// shorthand for claims. The error is positioned at the path.
pub(super) fn yaml_principal_path(path: &Str) -> Result<ArgPath, Diagnostic> {
    let rest: Vec<String> = path
        .text
        .strip_prefix("principal.")
        .unwrap_or_default()
        .split('.')
        .map(str::to_string)
        .collect();
    if rest.iter().any(String::is_empty) {
        return Err(Diagnostic::error(
            format!("{:?} has an empty member name", path.text),
            path.span,
        )
        .with_help("write e.g. `principal.claims.groups`"));
    }
    crate::ir::principal_path(&rest, false, Loc(path.span))
        .map_err(|(message, help)| Diagnostic::error(message, path.span).with_help(help))
}

fn validate_condition(c_ctx: &str, c: &CondDecl, diags: &mut Vec<Diagnostic>) {
    if c.path.text.starts_with("principal.") {
        if let Err(d) = yaml_principal_path(&c.path) {
            diags.push(d);
        }
    } else if !(c.path.text.starts_with("args.") || c.path.text.starts_with("state.")) {
        diags.push(
            Diagnostic::intercept(
                format!(
                    "{c_ctx}: path must start with \"args.\" or \"state.\", got {}",
                    go_quote(&c.path.text)
                ),
                c.path.span,
            )
            .with_help("arguments are `args.<name>`, counters are `state.<tool>.<counter>`, the caller is `principal.sub`, `principal.iss`, `principal.scopes` or `principal.claims.<name>` (a Portcullis extension)"),
        );
    }
    if let OpDecl::Unknown(op) = &c.op {
        let names = Operator::ALL.map(Operator::name);
        let help = match crate::source::did_you_mean(&op.text, &names) {
            Some(s) => format!("did you mean `{s}`? operators are case-sensitive"),
            None => format!("operators: {}", names.join(", ")),
        };
        diags.push(
            Diagnostic::intercept(
                format!("{c_ctx}: unknown operator {}", go_quote(&op.text)),
                op.span,
            )
            .with_help(help),
        );
    }
    let op = c.op.known();
    let value = c.value.as_ref();
    let vspan = value.map_or(c.span, |v| v.span);
    let ty = value.map(typed);
    let is_list = matches!(ty, Some(Ok(Typed::List)));
    if let Some(op @ (Operator::In | Operator::NotIn)) = op
        && !is_list
    {
        diags.push(
            Diagnostic::intercept(
                format!(
                    "{c_ctx}: operator {} requires a list value",
                    go_quote(op.name())
                ),
                vspan,
            )
            .with_help("write the allowed values as a list, e.g. `value: [usd, eur]`"),
        );
    }
    if let Some(op @ (Operator::Lt | Operator::Lte | Operator::Gt | Operator::Gte)) = op
        && !matches!(ty, Some(Ok(Typed::Num(_))))
    {
        // An ambiguous scalar is reported below, with its own fix.
        if !matches!(ty, Some(Err(_))) {
            diags.push(
                Diagnostic::intercept(
                    format!(
                        "{c_ctx}: operator {} requires a numeric value",
                        go_quote(op.name())
                    ),
                    vspan,
                )
                .with_help("write an unquoted number, e.g. `value: 50000`"),
            );
        }
    }
    if op == Some(Operator::Exists) && !matches!(ty, Some(Ok(Typed::Bool(_)))) {
        diags.push(
            Diagnostic::intercept(
                format!("{c_ctx}: operator \"exists\" requires a boolean value"),
                vspan,
            )
            .with_help("write `value: true` or `value: false`"),
        );
    }
    if op == Some(Operator::Regex) {
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
    if let Some(op) = op.filter(|o| o.path_op().is_some()) {
        if !c.path.text.starts_with("args.") {
            diags.push(
                Diagnostic::error(
                    format!("operator `{}` reads a tool argument", op.name()),
                    c.path.span,
                )
                .with_help("write `path: args.<name>`, e.g. `path: args.path`"),
            );
        }
        match (&ty, value.and_then(Node::scalar)) {
            (Some(Ok(Typed::Str(_))), Some(s)) => {
                if let Err((msg, help)) = crate::ir::check_path_pattern(&s.text) {
                    diags.push(Diagnostic::error(msg, vspan).with_help(help));
                }
            }
            (Some(Err(_)), _) => {}
            _ => diags.push(
                Diagnostic::error(
                    format!("operator `{}` requires a path as a string value", op.name()),
                    vspan,
                )
                .with_help("write an absolute path or glob, e.g. `value: \"/srv/secret/**\"`"),
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
            if let Some(op) = op
                && !matches!(op, Operator::In | Operator::NotIn)
            {
                diags.push(
                    Diagnostic::error(
                        format!("operator `{}` needs a single value, not a list", op.name()),
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
        // Intercept reads a missing value as nil; a comparison with nothing
        // written is far more likely a slip than a test for null.
        None if matches!(
            op,
            Some(Operator::Eq | Operator::Neq | Operator::Contains)
        ) => diags.push(
            Diagnostic::error("this condition has no `value`", c.span).with_help(
                "write the value to compare with; `value: null` compares with null (Intercept reads a missing value as null)",
            ),
        ),
        _ => {}
    }
}

// ---------------------------------------------------------------------------
// Limits: each rule's own `lt`/`lte` condition on its counter becomes its limit.

/// Moves each rule's limit condition into its [`OwnLimit`], reporting limits
/// no counter can honour (after validation, as before: only for a valid file).
fn derive_limits<'f>(mut checked: Checked<'f>, diags: &mut Vec<Diagnostic>) -> Option<Checked<'f>> {
    let errors_before = diags.iter().filter(|d| d.is_error()).count();
    for (tool, _, rules) in &mut checked.tools {
        let scope = if *tool == "*" { "_global" } else { tool };
        for rule in rules {
            let (Some(state), Body::Evaluate(conditions)) = (&rule.state, &mut rule.body) else {
                continue;
            };
            let Some(index) = conditions.iter().position(|c| {
                matches!(&c.lhs, Lhs::Counter { scope: s, counter } if s == scope && counter == state.counter)
                    && matches!(c.pred, Pred::Cmp(CmpOp::Lt | CmpOp::Le, Const::Num(_)))
            }) else {
                continue;
            };
            let Some(spec) = own_limit(rule.decl, state, &conditions[index], diags) else {
                continue;
            };
            rule.limit = Some(OwnLimit {
                condition: conditions.remove(index),
                counter: (scope.to_string(), state.counter.to_string()),
                spec,
            });
        }
    }
    (diags.iter().filter(|d| d.is_error()).count() == errors_before).then_some(checked)
}

/// A rule's limit on its own counter, from its first numeric `lt`/`lte`
/// condition on exactly `state.<scope>.<counter>` (Intercept §5.3).
/// `lte X` admits up to X; `lt X` up to the largest whole number below X.
fn own_limit(
    r: &RuleDecl,
    s: &CheckedState,
    cond: &Cond,
    diags: &mut Vec<Diagnostic>,
) -> Option<LimitSpec> {
    let Pred::Cmp(op @ (CmpOp::Lt | CmpOp::Le), Const::Num(x)) = &cond.pred else {
        return None;
    };
    let strict = *op == CmpOp::Lt;
    let vspan = cond.value_span;
    let n = x.num();
    if !n.is_integer() {
        diags.push(
            Diagnostic::error(format!("the limit of counter `{}` is not a whole number", s.counter), vspan)
                .with_help(format!(
                    "counters count whole units; write a whole number (Intercept truncates {x}, so `lt {x}` admits fewer calls than it says)"
                )),
        );
        return None;
    }
    if n.is_negative() || (strict && n.is_zero()) {
        diags.push(
            Diagnostic::error(
                format!(
                    "the limit of counter `{}` admits no calls at all",
                    s.counter
                ),
                vspan,
            )
            .with_help("to forbid the tool, use `action: deny`"),
        );
        return None;
    }
    let x = n.to_u64_exact().unwrap_or(u64::MAX);
    let max = if strict { x - 1 } else { x };
    if strict {
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
    let state = r.state.as_ref()?;
    let amount = match &state.increment_from {
        Some(f) => Amount::Arg {
            path: ArgPath::args(
                f.text
                    .trim_start_matches("args.")
                    .split('.')
                    .map(str::to_string)
                    .collect(),
                Loc(f.span),
            ),
            missing_message: INTERNAL_POLICY_ERROR.to_string(),
            invalid_message: format!(
                "Invalid amount for {}: {} must be a whole number from 0 to {}",
                go_quote(&r.name.text),
                f.text,
                portcullis_core::ops::MAX_AMOUNT
            ),
        },
        None => Amount::Const(if state.increment == 0 {
            1
        } else {
            u64::try_from(state.increment).unwrap_or(u64::MAX)
        }),
    };
    let message = if r.on_deny.text.is_empty() {
        format!("Rate limit exceeded for {}", r.name.text)
    } else {
        r.on_deny.text.clone()
    };
    Some(LimitSpec {
        max,
        amount,
        message,
    })
}

// ---------------------------------------------------------------------------
// Lowering: total over the typed form.

fn build(file: &File, checked: Checked, b: &mut PolicyBuilder) {
    b.policy.description = file.description.as_ref().map(|d| d.text.clone());
    b.policy.approvals = file.approvals.clone();
    b.policy.results = file.results.clone();
    for (i, h) in file.hide.iter().enumerate() {
        b.add_hide(i, &h.text, h.span);
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
    build_blocks(file, checked, b);
}

/// The blocks of `file` (its tools, or the resources or prompts of a
/// `resources:`/`prompts:` block read as a file), with their counters.
fn build_blocks(file: &File, checked: Checked, b: &mut PolicyBuilder) {
    let server = b.policy.name.clone();
    let (section, prefix) = (file.section, file.key_prefix);

    // Declare every counter first: conditions may read another tool's counter.
    let mut counters: BTreeMap<(String, String), CounterId> = BTreeMap::new();
    for (tool, _, rules) in &checked.tools {
        let (scope, key_scope) = if *tool == "*" {
            ("_global", "*")
        } else {
            (*tool, *tool)
        };
        for s in rules.iter().filter_map(|r| r.state.as_ref()) {
            let id = b.add_counter(Counter {
                id: CounterId(0),
                key: format!("{server}/{prefix}{key_scope}.{}", s.counter),
                display: format!("state.{scope}.{}", s.counter),
                window: Window::Calendar(s.window),
                partition: s.partition.clone(),
                loc: Loc(s.span),
            });
            counters.insert((scope.to_string(), s.counter.to_string()), id);
        }
    }
    for (tool, decl, rules) in checked.tools {
        let mut ids = Vec::new();
        for (i, r) in rules.into_iter().enumerate() {
            let label = format!("{section}.{tool}.rules[{i}]");
            let name = &r.decl.name.text;
            let id = b.add_rule(name.clone(), label, RuleKind::Rule, r.decl.span);
            let message = if r.decl.on_deny.text.is_empty() {
                format!("Denied by rule {}", go_quote(name))
            } else {
                r.decl.on_deny.text.clone()
            };
            // The condition that sets the limit is enforced by the reservation,
            // which checks the count *after* this call; checking the count
            // before the call as well (Intercept does) can only differ when the
            // counter is already above its limit, which this policy never causes.
            // Leaving it out saves a counter read per call (a round trip with Redis).
            let deny_when = match r.body {
                Body::Approve(conditions) => {
                    let when = if conditions.is_empty() {
                        Expr::Bool(true)
                    } else {
                        Expr::And(
                            conditions
                                .into_iter()
                                .flat_map(|c| flat_and(lower_condition(c, &counters, b)))
                                .collect(),
                        )
                    };
                    let timeout_ms = r
                        .decl
                        .approval_timeout
                        .as_ref()
                        .and_then(|t| crate::ir::parse_approval_timeout(&t.text).ok())
                        .or(file.approvals.as_ref().and_then(|a| a.default_timeout_ms))
                        .unwrap_or(crate::ir::DEFAULT_APPROVAL_TIMEOUT_MS);
                    b.rule_mut(id).approve = Some(Approve {
                        when,
                        message: if r.decl.on_deny.text.is_empty() {
                            format!("Approval required by rule {}", go_quote(name))
                        } else {
                            r.decl.on_deny.text.clone()
                        },
                        channels: Channels::BOTH,
                        timeout_ms,
                    });
                    None
                }
                Body::Deny => Some(Expr::Bool(true)),
                // A rule whose only condition was its limit has nothing left to check.
                Body::Evaluate(conditions) if conditions.is_empty() => None,
                Body::Evaluate(conditions) => Some(Expr::negate(Expr::And(
                    conditions
                        .into_iter()
                        .flat_map(|c| flat_and(lower_condition(c, &counters, b)))
                        .collect(),
                ))),
            };
            // Intercept refuses a call identical to one made within the
            // window; the rule's on_deny (or a default) is the refusal.
            b.rule_mut(id).idempotency = r.decl.idempotency_window.as_ref().and_then(|w| {
                Some(Idempotency {
                    window_ms: crate::ir::parse_duration(&w.text).ok()?,
                    mode: IdempotencyMode::Refuse,
                    by: Vec::new(),
                    message: if r.decl.on_deny.text.is_empty() {
                        super::idempotency::default_message(
                            crate::ir::parse_duration(&w.text).ok()?,
                        )
                    } else {
                        message.clone()
                    },
                    loc: Loc(w.span),
                })
            });
            b.rule_mut(id).check = deny_when.map(|deny_when| Check { deny_when, message });
            if let Some(sp) = &r.decl.spend {
                let amount = |s: &Option<Str>| {
                    s.as_ref()
                        .and_then(|s| portcullis_core::spend::parse_decimal(&s.text).ok())
                };
                let window = amount(&sp.daily).map(|max| {
                    let key_scope = if tool == "*" { "*" } else { tool };
                    let counter = b.add_counter(Counter {
                        id: CounterId(0),
                        key: format!("{server}/{key_scope}.rules[{i}].spend"),
                        display: format!("spend.{key_scope}.rules[{i}]"),
                        window: Window::Calendar(Calendar::Day),
                        // Validated above; per caller (or argument) when given.
                        partition: sp
                            .by
                            .as_ref()
                            .and_then(|by| state_partition(by).ok())
                            .unwrap_or(Partition::Global),
                        loc: Loc(sp.span),
                    });
                    (counter, max)
                });
                b.rule_mut(id).spend = Some(Spend {
                    currency: None,
                    per_call: amount(&sp.per_call),
                    window,
                    message: r.decl.on_deny.text.clone(),
                });
            }
            b.rule_mut(id).limit = r.limit.map(|l| Limit {
                counter: counters[&l.counter],
                max: l.spec.max,
                amount: l.spec.amount,
                message: l.spec.message,
                loc: Loc(l.condition.span),
            });
            ids.push(id);
        }
        if tool == "*" && section == "tools" {
            b.policy.wildcard = ids;
        } else {
            b.policy.tools.push(Tool {
                patterns: vec![NamePattern::Exact(tool.to_string())],
                rules: ids,
                loc: Loc(decl.key_span),
            });
        }
    }
}

/// A condition as items of the rule's `and` (a negated `path_*` operator
/// lowers to two tests, which join the rule's own list).
fn flat_and(e: Expr) -> Vec<Expr> {
    match e {
        Expr::And(items) => items,
        e => vec![e],
    }
}

/// Lowers a typed condition. Total: every operator has its test, and a
/// counter path names a counter declared above (validation resolved it).
fn lower_condition(
    c: Cond,
    counters: &BTreeMap<(String, String), CounterId>,
    b: &mut PolicyBuilder,
) -> Expr {
    let lhs = match c.lhs {
        Lhs::Path(path) => Operand::Arg(path),
        Lhs::Counter { scope, counter } => Operand::Counter(counters[&(scope, counter)]),
    };
    let kind = match c.pred {
        Pred::Cmp(op, rhs) => TestKind::Cmp {
            lhs,
            op,
            rhs: Operand::Const(rhs),
        },
        Pred::In { list, negated } => TestKind::In { lhs, list, negated },
        Pred::Contains(rhs) => TestKind::Contains {
            lhs,
            rhs: Operand::Const(rhs),
        },
        Pred::Exists(expect) => TestKind::Exists {
            operand: lhs,
            expect,
        },
        Pred::Matches(re, span) => TestKind::Matches {
            lhs,
            regex: b.add_translated_regex(re, "", span),
        },
        Pred::Path(op, negated, pattern) => {
            let test = |kind| {
                Expr::Test(Test {
                    kind,
                    loc: Loc(c.span),
                })
            };
            let path = test(TestKind::Path {
                lhs: lhs.clone(),
                op,
                pattern,
                invalid: true,
            });
            // A negated operator fails on a missing argument, as `neq` does
            // (Intercept's conditions fail closed on a missing key).
            return if negated {
                Expr::And(vec![
                    test(TestKind::Exists {
                        operand: lhs,
                        expect: true,
                    }),
                    Expr::negate(path),
                ])
            } else {
                path
            };
        }
    };
    Expr::Test(Test {
        kind,
        loc: Loc(c.span),
    })
}
