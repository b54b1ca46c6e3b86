//! The policy language (`*.policy`) to IR.
//!
//! Meaning (docs/policy-language.md has the reference):
//! - `deny MSG when E` denies when E holds; `deny MSG unless E` when it does
//!   not; `deny MSG` always; `allow when E else MSG` denies with MSG when E
//!   does not hold;
//! - `limit N per W` counts calls, `limit sum(PATH) <= N per W` adds up an
//!   argument, `limit sum(K) <= N per W` adds K per call; `per minute|hour|day`
//!   is a UTC calendar window, `per 90s|15m|1h|2d` a sliding one; `by PATH`
//!   or `by session` partitions the counter; one counter per limit, shared by
//!   every tool of its block;
//! - blocks run in order, `tool *` after every other block; `include` inlines
//!   a fragment file's items at that point.

use std::collections::BTreeMap;

use super::PolicyBuilder;
use crate::ir::{
    Amount, ArgPath, Check, Const, Counter, CounterId, Expr, Hide, Limit, Loc, NamePattern,
    Operand, Partition, Posture, RuleId, RuleKind, ServerPolicy, Surface, Test, TestKind, Tool,
    Window,
};
use crate::source::{Diagnostic, Span};
use crate::syntax::dsl::{
    self, Amount as DslAmount, By, File, Item, Literal, Pattern, PolicyRule, WindowSpec,
};

/// Looks up a fragment file by the name an `include` gives.
pub type Fragments<'a> = dyn Fn(&str) -> Option<&'a File> + 'a;

/// Lowers a parsed server file. The policy is returned even when there were
/// errors, so the semantic checks can report their findings in the same run;
/// the caller does not use it then.
pub fn lower<'f>(
    file: &'f File,
    fragments: &Fragments<'f>,
    mut b: PolicyBuilder,
    diags: &mut Vec<Diagnostic>,
) -> Option<ServerPolicy> {
    let head = file.server.as_ref()?;
    if head.name.value != b.policy.name {
        diags.push(
            Diagnostic::error(
                format!(
                    "server `{}` is in a file named for `{}`",
                    head.name.value, b.policy.name
                ),
                head.name.span,
            )
            .with_help(format!(
                "a server's policy lives in <server>.policy: rename the server to `{}` or the file",
                b.policy.name
            )),
        );
    }
    b.policy.description = head.description.as_ref().map(|d| d.value.clone());

    // Inline includes (recursively, refusing cycles).
    let mut items: Vec<&Item> = Vec::new();
    let mut stack: Vec<String> = Vec::new();
    flatten(&file.items, fragments, &mut stack, &mut items, diags);

    let mut default: Option<Span> = None;
    for item in &items {
        match item {
            Item::Default(p) => {
                if let Some(first) = default {
                    diags.push(
                        Diagnostic::error("`default` is set twice", p.span)
                            .with_label(first, "first set here")
                            .with_help("keep one `default allow` or `default deny`"),
                    );
                }
                default = Some(p.span);
                b.policy.default = match p.value {
                    dsl::Posture::Allow => Posture::Allow,
                    dsl::Posture::Deny => Posture::Deny,
                };
            }
            Item::Hide(patterns, condition, _) => {
                // A hide condition reads principal paths only (check.rs
                // reports anything else); it cannot read a counter.
                let when = condition.as_deref().map(|(unless, e)| {
                    let e = lower_expr(e, &BTreeMap::new(), &mut b, diags);
                    if *unless { Expr::negate(e) } else { e }
                });
                for pat in patterns {
                    let i = b.policy.hidden.len();
                    let rule = b.add_rule(
                        "(hidden)".into(),
                        format!("hide[{i}]"),
                        RuleKind::Hide,
                        pat.span,
                    );
                    b.policy.hidden.push(Hide {
                        pattern: name_pattern(pat),
                        when: when.clone(),
                        rule,
                        loc: Loc(pat.span),
                    });
                }
            }
            Item::Results(r) => super::results::lower_dsl(r, &mut b.policy.results, diags),
            Item::Surface(sb) if sb.default.is_some() => {
                let rules = match sb.surface {
                    Surface::Resource => &b.policy.resources,
                    _ => &b.policy.prompts,
                };
                if let Some(first) = rules.default_rule {
                    diags.push(
                        Diagnostic::error(
                            format!("`default {}` is set twice", sb.surface.name()),
                            sb.span,
                        )
                        .with_label(b.policy.rule(first).loc.0, "first set here")
                        .with_help(format!(
                            "keep one `default {0} allow` or `default {0} deny`",
                            sb.surface.name()
                        )),
                    );
                }
                let rule = b.add_rule(
                    "(default deny)".into(),
                    format!("default {}", sb.surface.name()),
                    RuleKind::DefaultDeny,
                    sb.span,
                );
                let rules = match sb.surface {
                    Surface::Resource => &mut b.policy.resources,
                    _ => &mut b.policy.prompts,
                };
                rules.default = match sb.default {
                    Some(dsl::Posture::Deny) => Posture::Deny,
                    _ => Posture::Allow,
                };
                rules.default_rule = Some(rule);
            }
            Item::Surface(sb) if sb.hide => {
                // As a tool's: principal paths only (check.rs reports anything else).
                let when = sb.condition.as_deref().map(|(unless, e)| {
                    let e = lower_expr(e, &BTreeMap::new(), &mut b, diags);
                    if *unless { Expr::negate(e) } else { e }
                });
                for (pat, regex) in &sb.patterns {
                    let rules = match sb.surface {
                        Surface::Resource => &b.policy.resources,
                        _ => &b.policy.prompts,
                    };
                    let i = rules.hidden.len();
                    let rule = b.add_rule(
                        "(hidden)".into(),
                        format!("hide {}[{i}]", sb.surface.name()),
                        RuleKind::Hide,
                        pat.span,
                    );
                    let pattern = surface_pattern(sb.surface, pat, *regex, &mut b, diags);
                    let rules = match sb.surface {
                        Surface::Resource => &mut b.policy.resources,
                        _ => &mut b.policy.prompts,
                    };
                    rules.hidden.push(Hide {
                        pattern,
                        when: when.clone(),
                        rule,
                        loc: Loc(pat.span),
                    });
                }
            }
            Item::Include(_) | Item::Tool(_) | Item::Surface(_) => {}
        }
    }
    b.policy.default_rule = b.add_rule(
        "(default deny)".into(),
        "default".into(),
        RuleKind::DefaultDeny,
        default.unwrap_or(head.name.span),
    );

    // Declare every limit's counter first: `count(...)` may read a later one.
    // Resource and prompt blocks are lowered like tool blocks, then moved
    // to their surface; `surface_of[i]` says which block is whose.
    let surface_blocks: Vec<(dsl::ToolBlock, &dsl::SurfaceBlock)> = items
        .iter()
        .filter_map(|i| match i {
            Item::Surface(sb) if !sb.hide && sb.default.is_none() => Some((
                dsl::ToolBlock {
                    patterns: sb.patterns.iter().map(|(p, _)| p.clone()).collect(),
                    rules: sb.rules.clone(),
                    span: sb.span,
                },
                sb,
            )),
            _ => None,
        })
        .collect();
    let mut blocks: Vec<&dsl::ToolBlock> = items
        .iter()
        .filter_map(|i| match i {
            Item::Tool(t) => Some(t),
            _ => None,
        })
        .collect();
    let mut surface_of: Vec<Option<&dsl::SurfaceBlock>> = vec![None; blocks.len()];
    for (t, sb) in &surface_blocks {
        blocks.push(t);
        surface_of.push(Some(sb));
    }
    let mut named: BTreeMap<(String, String), (CounterId, Span)> = BTreeMap::new();
    let mut counter_of: BTreeMap<(usize, usize), CounterId> = BTreeMap::new();
    let server = b.policy.name.clone();
    for (bi, block) in blocks.iter().enumerate() {
        let scope = match surface_of[bi] {
            Some(sb) => format!("{}:{}", sb.surface.name(), block_name(block)),
            None => block_name(block),
        };
        // Unnamed limits are named by what they count (not by position), so
        // a reload that adds a rule or changes a maximum keeps every count;
        // identical ones in one block are told apart by their order.
        let mut seen: BTreeMap<String, usize> = BTreeMap::new();
        for (ri, rule) in block.rules.iter().enumerate() {
            if let PolicyRule::Spend(sp) = rule
                && let Some(w) = &sp.window
            {
                let local = sp.name.as_ref().map_or_else(
                    || crate::syntax::dsl_fmt::spend_identity(sp),
                    |n| n.value.clone(),
                );
                let id = b.add_counter(Counter {
                    id: CounterId(0),
                    key: format!("{server}/{scope}.{local}"),
                    display: format!("spend({scope:?}, {local:?})"),
                    window: window_of(w.value),
                    partition: partition_of(sp.by.as_ref(), diags),
                    loc: Loc(sp.span),
                });
                counter_of.insert((bi, ri), id);
            }
            let PolicyRule::Limit(l) = rule else { continue };
            let local = match &l.name {
                Some(n) => n.value.clone(),
                None => {
                    let what = crate::syntax::dsl_fmt::limit_identity(l);
                    let n = seen.entry(what.clone()).or_insert(0);
                    *n += 1;
                    if *n == 1 {
                        what
                    } else {
                        format!("{what} #{n}")
                    }
                }
            };
            let window = match l.window.value {
                WindowSpec::Calendar(c) => Window::Calendar(c),
                WindowSpec::Sliding(secs) => Window::Sliding {
                    millis: secs * 1000,
                },
            };
            let partition = match &l.by {
                None => Partition::Global,
                Some(By::Session) => Partition::Session,
                Some(By::Path(p)) => Partition::Arg(arg_path(p, diags)),
            };
            let id = b.add_counter(Counter {
                id: CounterId(0),
                key: format!("{server}/{scope}.{local}"),
                display: format!("count({:?}, {local:?})", scope),
                window,
                partition,
                loc: Loc(l.span),
            });
            counter_of.insert((bi, ri), id);
            if let Some(n) = &l.name {
                for pat in &block.patterns {
                    let key = (pat.text.clone(), n.value.clone());
                    if let Some((_, first)) = named.get(&key) {
                        diags.push(
                            Diagnostic::error(
                                format!("limit `{}` is declared twice for `{}`", n.value, pat.text),
                                n.span,
                            )
                            .with_label(*first, "first declared here")
                            .with_help("give each named limit of a tool its own name"),
                        );
                    } else {
                        named.insert(key, (id, n.span));
                    }
                }
            }
        }
    }

    for (bi, block) in blocks.iter().enumerate() {
        if let Some(sb) = surface_of[bi] {
            let what = sb.surface.name();
            let scope = block_name(block);
            let mut ids = Vec::new();
            for (ri, rule) in block.rules.iter().enumerate() {
                let label = format!("{what} {scope} rule {}", ri + 1);
                ids.push(lower_rule(
                    rule,
                    &label,
                    counter_of.get(&(bi, ri)).copied(),
                    &named,
                    &mut b,
                    diags,
                ));
            }
            let patterns = sb
                .patterns
                .iter()
                .map(|(p, regex)| surface_pattern(sb.surface, p, *regex, &mut b, diags))
                .collect();
            let tool = Tool {
                patterns,
                rules: ids,
                loc: Loc(block.span),
            };
            match sb.surface {
                Surface::Resource => b.policy.resources.blocks.push(tool),
                _ => b.policy.prompts.blocks.push(tool),
            }
            continue;
        }
        let is_wildcard = block.patterns.iter().any(|p| p.text == "*");
        if is_wildcard && block.patterns.len() > 1 {
            diags.push(
                Diagnostic::error("`*` cannot share a block with other patterns", block.span)
                    .with_help("write `tool * { ... }` on its own: its rules apply to every call"),
            );
        }
        let scope = block_name(block);
        let mut ids = Vec::new();
        for (ri, rule) in block.rules.iter().enumerate() {
            let label = format!("tool {scope} rule {}", ri + 1);
            let id = lower_rule(
                rule,
                &label,
                counter_of.get(&(bi, ri)).copied(),
                &named,
                &mut b,
                diags,
            );
            ids.push(id);
        }
        if is_wildcard {
            b.policy.wildcard.extend(ids);
        } else {
            b.policy.tools.push(Tool {
                patterns: block.patterns.iter().map(name_pattern).collect(),
                rules: ids,
                loc: Loc(block.span),
            });
        }
    }
    {
        let p = &b.policy;
        super::surfaces::check_rules(p, |id| p.rule(id).loc.0, diags);
    }
    Some(b.finish())
}

/// The pattern of a resource or prompt block (a regex literal, else exact
/// or glob by the text).
fn surface_pattern(
    surface: Surface,
    p: &Pattern,
    regex: bool,
    b: &mut PolicyBuilder,
    diags: &mut Vec<Diagnostic>,
) -> NamePattern {
    let mode = if regex {
        super::surfaces::MatchMode::Regex
    } else {
        super::surfaces::MatchMode::Auto
    };
    super::surfaces::pattern(surface, &p.text, mode, p.span, b, diags)
}

fn flatten<'f>(
    items: &'f [Item],
    fragments: &Fragments<'f>,
    stack: &mut Vec<String>,
    out: &mut Vec<&'f Item>,
    diags: &mut Vec<Diagnostic>,
) {
    for item in items {
        let Item::Include(name) = item else {
            out.push(item);
            continue;
        };
        if stack.contains(&name.value) {
            diags.push(
                Diagnostic::error(format!("`{}` includes itself", name.value), name.span)
                    .with_help(format!(
                        "include chain: {} -> {}",
                        stack.join(" -> "),
                        name.value
                    )),
            );
            continue;
        }
        match fragments(&name.value) {
            Some(frag) if frag.server.is_none() => {
                stack.push(name.value.clone());
                flatten(&frag.items, fragments, stack, out, diags);
                stack.pop();
            }
            Some(_) => diags.push(
                Diagnostic::error(format!("`{}` is a server policy, not a fragment", name.value), name.span)
                    .with_help("an included file holds items (hide, default, tool blocks) without a `server` block"),
            ),
            None => diags.push(
                Diagnostic::error(format!("included file `{}` was not found", name.value), name.span)
                    .with_help("included files are looked up by file name among the policies compiled together (the same directory)"),
            ),
        }
    }
}

fn block_name(block: &dsl::ToolBlock) -> String {
    block
        .patterns
        .iter()
        .map(|p| p.text.as_str())
        .collect::<Vec<_>>()
        .join(",")
}

fn name_pattern(p: &Pattern) -> NamePattern {
    if p.text == "*" {
        NamePattern::All
    } else if p.text.contains('*') {
        NamePattern::Glob(p.text.clone())
    } else {
        NamePattern::Exact(p.text.clone())
    }
}

/// The IR path of a written path; `principal.groups` is the claim
/// `principal.claims.groups` (sub, iss, scopes and claims are reserved).
/// An invalid principal path is reported and read as `principal.claims.*`.
fn arg_path(p: &dsl::Path, diags: &mut Vec<Diagnostic>) -> ArgPath {
    if !p.principal {
        return ArgPath::args(p.segments.clone(), Loc(p.span));
    }
    match crate::ir::principal_path(&p.segments, true, Loc(p.span)) {
        Ok(path) => path,
        Err((message, help)) => {
            diags.push(Diagnostic::error(message, p.span).with_help(help));
            ArgPath {
                root: crate::ir::Root::Principal(crate::ir::PrincipalField::Claims),
                segments: p.segments.clone(),
                loc: Loc(p.span),
            }
        }
    }
}

fn window_text(w: WindowSpec) -> String {
    match w {
        WindowSpec::Calendar(c) => c.name().to_string(),
        WindowSpec::Sliding(s) if s % 86_400 == 0 => {
            format!("{} day{}", s / 86_400, if s == 86_400 { "" } else { "s" })
        }
        WindowSpec::Sliding(s) if s % 3600 == 0 => {
            format!("{} hour{}", s / 3600, if s == 3600 { "" } else { "s" })
        }
        WindowSpec::Sliding(s) if s % 60 == 0 => {
            format!("{} minute{}", s / 60, if s == 60 { "" } else { "s" })
        }
        WindowSpec::Sliding(s) => format!("{s} second{}", if s == 1 { "" } else { "s" }),
    }
}

fn lower_rule(
    rule: &PolicyRule,
    label: &str,
    counter: Option<CounterId>,
    named: &BTreeMap<(String, String), (CounterId, Span)>,
    b: &mut PolicyBuilder,
    diags: &mut Vec<Diagnostic>,
) -> RuleId {
    match rule {
        PolicyRule::Spend(sp) => lower_spend(sp, label, counter, b, diags),
        PolicyRule::Deny {
            message,
            condition,
            span,
        } => {
            let id = b.add_rule(
                message.value.clone(),
                label.to_string(),
                RuleKind::Rule,
                *span,
            );
            let deny_when = match condition {
                None => Expr::Bool(true),
                Some((false, e)) => lower_expr(e, named, b, diags),
                Some((true, e)) => Expr::negate(lower_expr(e, named, b, diags)),
            };
            b.rule_mut(id).check = Some(Check {
                deny_when,
                message: message.value.clone(),
            });
            id
        }
        PolicyRule::Allow {
            condition,
            message,
            span,
        } => {
            let id = b.add_rule(
                message.value.clone(),
                label.to_string(),
                RuleKind::Rule,
                *span,
            );
            let deny_when = Expr::negate(lower_expr(condition, named, b, diags));
            b.rule_mut(id).check = Some(Check {
                deny_when,
                message: message.value.clone(),
            });
            id
        }
        PolicyRule::Approve(a) => {
            let id = b.add_rule(
                a.message.value.clone(),
                label.to_string(),
                RuleKind::Rule,
                a.span,
            );
            let when = a
                .condition
                .as_ref()
                .map_or(Expr::Bool(true), |e| lower_expr(e, named, b, diags));
            let timeout_ms = match &a.timeout {
                None => Some(crate::ir::DEFAULT_APPROVAL_TIMEOUT_MS),
                Some(t) => super::approval::timeout(
                    "approve ... timeout",
                    &super::Str {
                        text: t.value.clone(),
                        span: t.span,
                    },
                    diags,
                ),
            };
            let channels = match &a.via {
                None => Some(crate::ir::Channels::BOTH),
                Some(v) => {
                    let c = super::catalogue::channels(&v.value.join(" | "));
                    if c.is_none() {
                        diags.push(
                            Diagnostic::error("a channel is named twice", v.span).with_help(
                                "write `via client`, `via operator` or `via client | operator`",
                            ),
                        );
                    }
                    c
                }
            };
            if let (Some(timeout_ms), Some(channels)) = (timeout_ms, channels) {
                b.rule_mut(id).approve = Some(crate::ir::Approve {
                    when,
                    message: a.message.value.clone(),
                    channels,
                    timeout_ms,
                });
            }
            id
        }
        PolicyRule::Once(o) => {
            let window_ms = match crate::ir::parse_duration(&o.window.value) {
                Ok(ms) => ms,
                Err(help) => {
                    diags.push(
                        Diagnostic::error(
                            format!("`once per` needs a duration, got `{}`", o.window.value),
                            o.window.span,
                        )
                        .with_help(help),
                    );
                    0
                }
            };
            let mode = match o.mode.as_ref().map(|m| m.value.as_str()) {
                Some("refuse") => crate::ir::IdempotencyMode::Refuse,
                _ => crate::ir::IdempotencyMode::Replay,
            };
            let message = o.message.as_ref().map_or_else(
                || super::idempotency::default_message(window_ms.max(1)),
                |m| m.value.clone(),
            );
            let name = format!("once per {}", o.window.value);
            let id = b.add_rule(name, label.to_string(), RuleKind::Rule, o.span);
            b.rule_mut(id).idempotency = Some(crate::ir::Idempotency {
                window_ms,
                mode,
                by: o
                    .by
                    .iter()
                    .map(|p| {
                        if p.principal {
                            diags.push(
                                Diagnostic::error("an idempotency key is made of arguments, not principal paths", p.span)
                                    .with_help("the key already includes the caller (iss and sub) when the session has a principal; write `by args.<name>`"),
                            );
                        }
                        arg_path(p, diags)
                    })
                    .collect(),
                message,
                loc: crate::ir::Loc(o.span),
            });
            id
        }
        PolicyRule::Limit(l) => {
            let w = window_text(l.window.value);
            let default_message = match &l.amount {
                DslAmount::One => format!(
                    "Rate limit of {} calls per {w} reached. Try again later.",
                    l.max.value
                ),
                DslAmount::Const(k) => format!(
                    "Limit of {} per {w} reached ({} per call). Try again later.",
                    l.max.value, k.value
                ),
                DslAmount::Path(p) => format!(
                    "Limit of {} on {} per {w} reached.",
                    l.max.value,
                    display_path(p)
                ),
            };
            let message = l
                .message
                .as_ref()
                .map_or(default_message, |m| m.value.clone());
            let name = l
                .name
                .as_ref()
                .map_or_else(|| message.clone(), |n| n.value.clone());
            let id = b.add_rule(name, label.to_string(), RuleKind::Rule, l.span);
            let amount = match &l.amount {
                DslAmount::One => Amount::Const(1),
                DslAmount::Const(k) => Amount::Const(k.value),
                DslAmount::Path(p) => Amount::Arg {
                    path: arg_path(p, diags),
                    missing_message: l.missing.as_ref().map_or_else(
                        || {
                            format!(
                                "{} is missing or not a number, and this tool's limit adds it up",
                                display_path(p)
                            )
                        },
                        |m| m.value.clone(),
                    ),
                    invalid_message: l.invalid.as_ref().map_or_else(
                        || {
                            format!(
                                "{} must be a whole number from 0 to {}",
                                display_path(p),
                                portcullis_core::ops::MAX_AMOUNT
                            )
                        },
                        |m| m.value.clone(),
                    ),
                },
            };
            if !matches!(l.amount, DslAmount::Path(_))
                && (l.missing.is_some() || l.invalid.is_some())
            {
                let span = l
                    .missing
                    .as_ref()
                    .or(l.invalid.as_ref())
                    .map_or(l.span, |m| m.span);
                diags.push(
                    Diagnostic::error(
                        "`missing` and `invalid` apply to `sum(args...)` limits only",
                        span,
                    )
                    .with_help("remove the clause: this limit does not read an argument"),
                );
            }
            if let Some(counter) = counter {
                b.rule_mut(id).limit = Some(Limit {
                    counter,
                    max: l.max.value,
                    amount,
                    message,
                    loc: Loc(l.span),
                });
            }
            id
        }
    }
}

fn window_of(w: WindowSpec) -> Window {
    match w {
        WindowSpec::Calendar(c) => Window::Calendar(c),
        WindowSpec::Sliding(secs) => Window::Sliding {
            millis: secs * 1000,
        },
    }
}

fn partition_of(by: Option<&By>, diags: &mut Vec<Diagnostic>) -> Partition {
    match by {
        None => Partition::Global,
        Some(By::Session) => Partition::Session,
        Some(By::Path(p)) => Partition::Arg(arg_path(p, diags)),
    }
}

/// `spend <= ...`: a budget rule with no decision-time phase.
fn lower_spend(
    sp: &dsl::SpendRule,
    label: &str,
    counter: Option<CounterId>,
    b: &mut PolicyBuilder,
    diags: &mut Vec<Diagnostic>,
) -> RuleId {
    let per = sp
        .window
        .as_ref()
        .map_or_else(|| "call".to_string(), |w| window_text(w.value));
    let name = sp.name.as_ref().map_or_else(
        || {
            format!(
                "spend <= {} {} per {per}",
                sp.amount.value, sp.currency.value
            )
        },
        |n| n.value.clone(),
    );
    let id = b.add_rule(name, label.to_string(), RuleKind::Rule, sp.span);
    let amount = match portcullis_core::spend::parse_decimal(&sp.amount.value) {
        Ok(v) => v,
        Err(e) => {
            diags.push(
                Diagnostic::error(
                    format!("amount `{}` is {e}", sp.amount.value),
                    sp.amount.span,
                )
                .with_help("write at most six decimals, e.g. `$0.50`; money is never rounded"),
            );
            return id;
        }
    };
    if portcullis_core::spend::currency(&sp.currency.value).is_none() {
        diags.push(
            Diagnostic::error(
                format!("unknown currency `{}`", sp.currency.value),
                sp.currency.span,
            )
            .with_help(format!(
                "known currencies: {}",
                portcullis_core::spend::CURRENCIES
                    .iter()
                    .map(|c| c.code)
                    .collect::<Vec<_>>()
                    .join(", ")
            )),
        );
        return id;
    }
    let (per_call, window) = match (&sp.window, counter) {
        (None, _) => (Some(amount), None),
        (Some(_), Some(c)) => (None, Some((c, amount))),
        (Some(_), None) => return id,
    };
    b.rule_mut(id).spend = Some(crate::ir::Spend {
        currency: Some(sp.currency.value.clone()),
        per_call,
        window,
        message: sp
            .message
            .as_ref()
            .map_or_else(String::new, |m| m.value.clone()),
    });
    id
}

fn display_path(p: &dsl::Path) -> String {
    format!("args.{}", p.segments.join("."))
}

fn literal(l: &Literal) -> Const {
    match l {
        Literal::Null => Const::Null,
        Literal::Bool(b) => Const::Bool(*b),
        Literal::Num(n) => Const::Num(n.clone()),
        Literal::Str(s) => Const::Str(s.clone()),
    }
}

fn lower_expr(
    e: &dsl::Expr,
    named: &BTreeMap<(String, String), (CounterId, Span)>,
    b: &mut PolicyBuilder,
    diags: &mut Vec<Diagnostic>,
) -> Expr {
    match e {
        dsl::Expr::Bool(v) => Expr::Bool(*v),
        dsl::Expr::Or(v) => Expr::Or(v.iter().map(|x| lower_expr(x, named, b, diags)).collect()),
        dsl::Expr::And(v) => Expr::And(v.iter().map(|x| lower_expr(x, named, b, diags)).collect()),
        dsl::Expr::Not(x) => Expr::Not(Box::new(lower_expr(x, named, b, diags))),
        dsl::Expr::Test(t) => {
            if let dsl::TestKind::Cmp(dsl::Operand::Literal(..), _, dsl::Operand::Literal(..)) =
                &t.kind
            {
                diags.push(
                    Diagnostic::error("this compares two constants", t.span).with_help(
                        "compare an argument (args.name), len(...) or count(...) with a value",
                    ),
                );
            }
            if let dsl::TestKind::Member(needle, haystack, negated) = &t.kind {
                let test = Expr::Test(Test {
                    kind: TestKind::Contains {
                        lhs: Operand::Arg(arg_path(haystack, diags)),
                        rhs: operand(needle, named, diags),
                    },
                    loc: Loc(t.span),
                });
                return if *negated { Expr::negate(test) } else { test };
            }
            let kind = match &t.kind {
                dsl::TestKind::Member(..) => unreachable!("lowered above"),
                dsl::TestKind::Cmp(l, c, r) => TestKind::Cmp {
                    lhs: operand(l, named, diags),
                    op: *c,
                    rhs: operand(r, named, diags),
                },
                dsl::TestKind::In(l, list, negated) => TestKind::In {
                    lhs: operand(l, named, diags),
                    list: list.iter().map(literal).collect(),
                    negated: *negated,
                },
                dsl::TestKind::Matches(l, re) => {
                    let lhs = operand(l, named, diags);
                    let (pattern, flags) = &re.value;
                    match b.add_regex(pattern, flags, re.span) {
                        Ok(regex) => TestKind::Matches { lhs, regex },
                        Err(err) => {
                            diags.push(
                                Diagnostic::error(format!("invalid regex /{pattern}/{flags}: {}", err.message), re.span)
                                    .with_help("patterns use RE2 syntax (no look-around, no backreferences); flags are i, m, s"),
                            );
                            return Expr::Bool(false);
                        }
                    }
                }
                dsl::TestKind::Contains(l, r) => TestKind::Contains {
                    lhs: operand(l, named, diags),
                    rhs: operand(r, named, diags),
                },
                dsl::TestKind::StartsWith(l, r) => TestKind::StartsWith {
                    lhs: operand(l, named, diags),
                    rhs: operand(r, named, diags),
                },
                dsl::TestKind::EndsWith(l, r) => TestKind::EndsWith {
                    lhs: operand(l, named, diags),
                    rhs: operand(r, named, diags),
                },
                dsl::TestKind::Exists(p) => TestKind::Exists {
                    operand: Operand::Arg(arg_path(p, diags)),
                    expect: true,
                },
                dsl::TestKind::Path(p, op, pattern) => {
                    let arg = arg_path(p, diags);
                    if arg.is_principal() {
                        diags.push(
                            Diagnostic::error("path() reads a tool argument", p.span)
                                .with_help("write `path(args.<name>)`, e.g. `path(args.path) matches \"/srv/secret/**\"`"),
                        );
                        return Expr::Bool(false);
                    }
                    if let Err((msg, help)) = crate::ir::check_path_pattern(&pattern.value) {
                        diags.push(Diagnostic::error(msg, pattern.span).with_help(help));
                        return Expr::Bool(false);
                    }
                    TestKind::Path {
                        lhs: Operand::Arg(arg),
                        op: *op,
                        pattern: pattern.value.clone(),
                        invalid: true,
                    }
                }
            };
            Expr::Test(Test {
                kind,
                loc: Loc(t.span),
            })
        }
    }
}

fn operand(
    o: &dsl::Operand,
    named: &BTreeMap<(String, String), (CounterId, Span)>,
    diags: &mut Vec<Diagnostic>,
) -> Operand {
    match o {
        dsl::Operand::Path(p) => Operand::Arg(arg_path(p, diags)),
        dsl::Operand::Len(p) => Operand::Len(arg_path(p, diags)),
        dsl::Operand::Literal(l, _) => Operand::Const(literal(l)),
        dsl::Operand::Count(tool, name) => {
            match named.get(&(tool.value.clone(), name.value.clone())) {
                Some((id, _)) => Operand::Counter(*id),
                None => {
                    diags.push(
                    Diagnostic::error(format!("no limit named `{}` for `{}`", name.value, tool.value), name.span.to(tool.span))
                        .with_help("name a limit with `as NAME` in a block whose patterns include that tool, e.g. `limit 5 per hour as hourly`"),
                );
                    Operand::Const(Const::Num(crate::ir::Number::from_u64(0)))
                }
            }
        }
    }
}
