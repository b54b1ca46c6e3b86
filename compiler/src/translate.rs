//! `portcullis translate`: any compiled policy (YAML, either dialect) to the
//! policy language, deciding exactly like the original.
//!
//! Works on the IR, so it is exact by construction where the languages
//! overlap: every rule becomes a rule (a rule with both a condition and a
//! limit becomes two, in the same places of the check and limit phases),
//! counters read by other rules get a name (`as NAME`) and are read with
//! `count(...)`, messages are written out in full (Intercept's defaults
//! included), and spend limits keep Intercept's `Internal policy error`
//! through `missing`. Rule names are not part of the language; they are
//! kept as comments.

use crate::ir::{
    Amount, ArgPath, Check, Const, CounterId, Expr, NamePattern, Operand, Partition, Posture,
    RuleId, ServerPolicy, TestKind, Window,
};
use crate::source::{FileId, Span};
use crate::syntax::dsl::{
    self, By, File, Item, Limit, Literal, Path, Pattern, PolicyRule, ServerHead, Spanned,
    WindowSpec,
};
use crate::syntax::dsl_fmt;

/// Why a policy cannot be written in the policy language.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Untranslatable(pub String);

impl std::fmt::Display for Untranslatable {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(&self.0)
    }
}

/// A result rule as a `results` block (docs/results.md). The rule is written
/// as the IR has it, the catch-all rule's settings already merged in.
fn results_block(r: &crate::results::ResultRule) -> Result<dsl::ResultsBlock, Untranslatable> {
    use crate::results::Target;
    use dsl::{ResultStmt, ResultsFor};
    let target = match &r.target {
        Target::All => ResultsFor::All,
        Target::Tool(t) => ResultsFor::Tools(vec![Pattern {
            quoted: !t
                .chars()
                .all(|c| c.is_ascii_alphanumeric() || matches!(c, '_' | '-' | '.' | '*')),
            text: t.clone(),
            span: Span::default(),
        }]),
        Target::Resource(crate::ir::NamePattern::Regex { source, .. }) => {
            ResultsFor::Resources(vec![(
                Pattern {
                    text: source.clone(),
                    quoted: false,
                    span: Span::default(),
                },
                true,
            )])
        }
        Target::Resource(u) => ResultsFor::Resources(vec![(
            Pattern {
                text: u.text().to_string(),
                quoted: true,
                span: Span::default(),
            },
            false,
        )]),
        // Made by the compiler from the others: not written.
        Target::Unnormalised => {
            return Err(Untranslatable(
                "the rule for unnormalised URIs is derived, not written".into(),
            ));
        }
    };
    let mut stmts = Vec::new();
    match (r.secrets, &r.message) {
        (Some(action), message) => stmts.push(ResultStmt::Secrets {
            action,
            message: message.clone().map(sp),
            span: Span::default(),
        }),
        (None, Some(_)) => {
            return Err(Untranslatable(format!(
                "{}: a message without `redact: secrets` or `deny: secrets` has no policy-language form; keep the YAML policy",
                r.name
            )));
        }
        (None, None) => {}
    }
    for pat in &r.patterns {
        stmts.push(ResultStmt::Pattern {
            action: pat.action,
            regex: sp((pat.source.clone(), String::new())),
            name: sp(pat.name.clone()),
            span: Span::default(),
        });
    }
    if let Some(m) = r.max_bytes {
        stmts.push(ResultStmt::Max(sp(crate::results::format_size(m))));
    }
    Ok(dsl::ResultsBlock {
        target,
        stmts,
        span: Span::default(),
    })
}

fn sp<T>(value: T) -> Spanned<T> {
    Spanned {
        value,
        span: Span::default(),
    }
}

fn pattern(p: &NamePattern) -> Result<Pattern, Untranslatable> {
    let text = match p {
        NamePattern::All => "*".to_string(),
        NamePattern::Glob(g) => g.clone(),
        NamePattern::Exact(n) if n.contains('*') => {
            return Err(Untranslatable(format!(
                "the tool name `{n}` contains `*`, which the policy language reads as a glob"
            )));
        }
        NamePattern::Exact(n) => n.clone(),
        NamePattern::UriGlob(g) => g.clone(),
        NamePattern::Regex { source, .. } => {
            return Err(Untranslatable(format!(
                "the resource regex `{source}` has no YAML form in this translation"
            )));
        }
    };
    Ok(Pattern {
        text,
        quoted: false,
        span: Span::default(),
    })
}

fn path(p: &ArgPath) -> Path {
    let segments = match p.root {
        crate::ir::Root::Args => p.segments.clone(),
        // Written out in full (`principal.claims.sub`, never the shorthand),
        // so a claim named like a reserved field keeps its meaning.
        crate::ir::Root::Principal(f) => std::iter::once(f.name().to_string())
            .chain(p.segments.iter().cloned())
            .collect(),
    };
    Path {
        principal: p.is_principal(),
        segments,
        span: Span::default(),
    }
}

fn literal(c: &Const) -> Literal {
    match c {
        Const::Null => Literal::Null,
        Const::Bool(b) => Literal::Bool(*b),
        Const::Num(n) => Literal::Num(n.clone()),
        Const::Str(s) => Literal::Str(s.clone()),
    }
}

/// A translated policy, formatted, with a header comment.
pub fn translate(p: &ServerPolicy) -> Result<String, Untranslatable> {
    let file = to_ast(p)?;
    let mut out = format!(
        "// Translated by `portcullis translate` from {} ({}).\n// Rule names are kept as comments; messages are written out in full.\n",
        p.path,
        p.dialect.name()
    );
    let body = dsl_fmt::format(&file, "");
    // Rule-name comments: inserted after formatting, before each rule line they name.
    out.push_str(&annotate(&body, p));
    Ok(out)
}

/// The policy as a policy-language AST.
pub fn to_ast(p: &ServerPolicy) -> Result<File, Untranslatable> {
    if p.approvals.is_some() {
        return Err(Untranslatable(
            "the top-level `approvals:` block (webhook, default timeout) has no policy-language form yet; keep the YAML policy".into(),
        ));
    }
    let mut items = Vec::new();
    if p.default == Posture::Deny {
        items.push(Item::Default(sp(dsl::Posture::Deny)));
    }
    // Unconditional hides in runs on one line; each conditional one alone.
    let mut run: Vec<Pattern> = Vec::new();
    for h in &p.hidden {
        match &h.when {
            None => run.push(pattern(&h.pattern)?),
            Some(e) => {
                if !run.is_empty() {
                    items.push(Item::Hide(std::mem::take(&mut run), None, Span::default()));
                }
                let cond = expr(p, e, &CounterNames::new(p))?;
                items.push(Item::Hide(
                    vec![pattern(&h.pattern)?],
                    Some(Box::new((false, cond))),
                    Span::default(),
                ));
            }
        }
    }
    if !run.is_empty() {
        items.push(Item::Hide(run, None, Span::default()));
    }
    let counter_names = CounterNames::new(p);
    for t in &p.tools {
        let patterns = t
            .patterns
            .iter()
            .map(pattern)
            .collect::<Result<Vec<_>, _>>()?;
        let rules = rules(p, &t.rules, &counter_names)?;
        items.push(Item::Tool(dsl::ToolBlock {
            patterns,
            rules,
            span: Span::default(),
        }));
    }
    for r in &p.results {
        if r.target != crate::results::Target::Unnormalised {
            items.push(Item::Results(results_block(r)?));
        }
    }
    if !p.wildcard.is_empty() {
        let rules = rules(p, &p.wildcard, &counter_names)?;
        items.push(Item::Tool(dsl::ToolBlock {
            patterns: vec![Pattern {
                text: "*".into(),
                quoted: false,
                span: Span::default(),
            }],
            rules,
            span: Span::default(),
        }));
    }
    // Resources, then prompts: their hides, then their blocks.
    for surface in [crate::ir::Surface::Resource, crate::ir::Surface::Prompt] {
        let Some(sr) = p.surface_rules(surface) else {
            continue;
        };
        let pats = |pats: &[crate::ir::NamePattern]| {
            pats.iter()
                .map(|x| match x {
                    crate::ir::NamePattern::Regex { source, .. } => (
                        Pattern {
                            text: source.clone(),
                            quoted: false,
                            span: Span::default(),
                        },
                        true,
                    ),
                    other => (
                        Pattern {
                            text: other.text().to_string(),
                            quoted: true,
                            span: Span::default(),
                        },
                        false,
                    ),
                })
                .collect::<Vec<_>>()
        };
        if sr.default == Posture::Deny {
            items.push(Item::Surface(dsl::SurfaceBlock {
                surface,
                hide: false,
                patterns: Vec::new(),
                rules: Vec::new(),
                default: Some(dsl::Posture::Deny),
                condition: None,
                span: Span::default(),
            }));
        }
        // Unconditional hides in runs on one line; each conditional one alone.
        let mut run: Vec<crate::ir::NamePattern> = Vec::new();
        let hide = |patterns: &[crate::ir::NamePattern], condition| {
            Item::Surface(dsl::SurfaceBlock {
                surface,
                hide: true,
                patterns: pats(patterns),
                rules: Vec::new(),
                default: None,
                condition,
                span: Span::default(),
            })
        };
        for h in &sr.hidden {
            match &h.when {
                None => run.push(h.pattern.clone()),
                Some(e) => {
                    if !run.is_empty() {
                        items.push(hide(&std::mem::take(&mut run), None));
                    }
                    let cond = expr(p, e, &CounterNames::new(p))?;
                    items.push(hide(
                        std::slice::from_ref(&h.pattern),
                        Some(Box::new((false, cond))),
                    ));
                }
            }
        }
        if !run.is_empty() {
            items.push(hide(&run, None));
        }
        for t in &sr.blocks {
            items.push(Item::Surface(dsl::SurfaceBlock {
                surface,
                hide: false,
                patterns: pats(&t.patterns),
                rules: rules(p, &t.rules, &counter_names)?,
                default: None,
                condition: None,
                span: Span::default(),
            }));
        }
    }
    Ok(File {
        server: Some(ServerHead {
            name: sp(p.name.clone()),
            description: p.description.clone().map(sp),
        }),
        items,
        span: Span::new(FileId(0), 0, 0),
        problems: Vec::new(),
    })
}

/// Names for counters other rules read: `(block pattern, name)`.
struct CounterNames {
    names: Vec<Option<(String, String)>>,
}

impl CounterNames {
    fn new(p: &ServerPolicy) -> CounterNames {
        let mut read = vec![false; p.counters.len()];
        for r in &p.rules {
            if let Some(c) = &r.check {
                for id in c.deny_when.counters() {
                    read[id.0 as usize] = true;
                }
            }
        }
        let mut names = vec![None; p.counters.len()];
        let blocks = p
            .tools
            .iter()
            .map(|t| {
                (
                    t.patterns
                        .first()
                        .map(|p| p.text().to_string())
                        .unwrap_or_default(),
                    &t.rules,
                )
            })
            .chain(std::iter::once(("*".to_string(), &p.wildcard)));
        for (scope, rules) in blocks {
            for id in rules {
                if let Some(l) = &p.rule(*id).limit
                    && read[l.counter.0 as usize]
                {
                    let local = p
                        .counter(l.counter)
                        .display
                        .rsplit('.')
                        .next()
                        .unwrap_or("c")
                        .to_string();
                    names[l.counter.0 as usize] = Some((scope.clone(), sanitize(&local)));
                }
            }
        }
        CounterNames { names }
    }

    fn get(&self, id: CounterId) -> Option<&(String, String)> {
        self.names.get(id.0 as usize).and_then(Option::as_ref)
    }
}

/// A counter name the grammar accepts (`name` characters only).
fn sanitize(s: &str) -> String {
    let n: String = s
        .chars()
        .map(|c| {
            if c.is_ascii_alphanumeric() || matches!(c, '_' | '-' | '.') {
                c
            } else {
                '_'
            }
        })
        .collect();
    if n.is_empty() { "counter".into() } else { n }
}

fn rules(
    p: &ServerPolicy,
    ids: &[RuleId],
    names: &CounterNames,
) -> Result<Vec<PolicyRule>, Untranslatable> {
    let mut out = Vec::new();
    for id in ids {
        let r = p.rule(*id);
        if let Some(Check { deny_when, message }) = &r.check {
            let message = sp(message.clone());
            let span = Span::default();
            out.push(match deny_when {
                Expr::Bool(true) => PolicyRule::Deny {
                    message,
                    condition: None,
                    span,
                },
                Expr::Not(inner) => PolicyRule::Allow {
                    condition: expr(p, inner, names)?,
                    message,
                    span,
                },
                e => PolicyRule::Deny {
                    message,
                    condition: Some((false, expr(p, e, names)?)),
                    span,
                },
            });
        }
        if let Some(a) = &r.approve {
            out.push(PolicyRule::Approve(dsl::ApproveRule {
                message: sp(a.message.clone()),
                condition: match &a.when {
                    Expr::Bool(true) => None,
                    e => Some(expr(p, e, names)?),
                },
                via: (a.channels != crate::ir::Channels::BOTH).then(|| {
                    let mut v = Vec::new();
                    if a.channels.client {
                        v.push("client".to_string());
                    }
                    if a.channels.operator {
                        v.push("operator".to_string());
                    }
                    sp(v)
                }),
                timeout: (a.timeout_ms != crate::ir::DEFAULT_APPROVAL_TIMEOUT_MS)
                    .then(|| sp(crate::ir::show_duration(a.timeout_ms))),
                span: Span::default(),
            }));
        }
        if let Some(l) = &r.limit {
            let counter = p.counter(l.counter);
            let window = match counter.window {
                Window::Calendar(c) => WindowSpec::Calendar(c),
                Window::Sliding { millis } if millis % 1000 == 0 => {
                    WindowSpec::Sliding(millis / 1000)
                }
                Window::Sliding { millis } => {
                    return Err(Untranslatable(format!(
                        "a sliding window of {millis} ms is not whole seconds"
                    )));
                }
            };
            let by = match &counter.partition {
                Partition::Global => None,
                Partition::Session => Some(By::Session),
                Partition::Arg(a) => Some(By::Path(path(a))),
            };
            let (amount, missing, invalid) = match &l.amount {
                Amount::Const(1) => (dsl::Amount::One, None, None),
                Amount::Const(k) => (dsl::Amount::Const(sp(*k)), None, None),
                Amount::Arg {
                    path: a,
                    missing_message,
                    invalid_message,
                } => (
                    dsl::Amount::Path(path(a)),
                    Some(sp(missing_message.clone())),
                    Some(sp(invalid_message.clone())),
                ),
            };
            out.push(PolicyRule::Limit(Limit {
                amount,
                max: sp(l.max),
                window: sp(window),
                by,
                name: names.get(l.counter).map(|(_, n)| sp(n.clone())),
                message: Some(sp(l.message.clone())),
                missing,
                invalid,
                span: Span::default(),
            }));
        }
        if let Some(i) = &r.idempotency {
            out.push(PolicyRule::Once(dsl::Once {
                window: sp(crate::ir::show_duration(i.window_ms)),
                by: i.by.iter().map(path).collect(),
                mode: Some(sp(i.mode.name().to_string())),
                message: Some(sp(i.message.clone())),
                span: Span::default(),
            }));
        }
        if let Some(spend) = &r.spend {
            out.extend(spend_rules(p, spend)?);
        }
    }
    Ok(out)
}

/// A spend budget as one or two `spend` rules (per call, per window).
fn spend_rules(p: &ServerPolicy, s: &crate::ir::Spend) -> Result<Vec<PolicyRule>, Untranslatable> {
    let Some(currency) = &s.currency else {
        return Err(Untranslatable(
            "a spend budget without a currency (Intercept's `spend:` block) has no policy-language form; the language names the currency (`spend <= $0.50 per call`, `spend <= 0.50 eur per call`)".into(),
        ));
    };
    let dollars = currency == "usd";
    let message = (!s.message.is_empty()).then(|| sp(s.message.clone()));
    let rule = |amount: u64, window: Option<WindowSpec>, by: Option<By>| {
        PolicyRule::Spend(dsl::SpendRule {
            amount: sp(portcullis_core::spend::format(amount)),
            currency: sp(currency.clone()),
            dollars,
            window: window.map(sp),
            by,
            name: None,
            message: message.clone(),
            span: Span::default(),
        })
    };
    let mut out = Vec::new();
    if let Some(v) = s.per_call {
        out.push(rule(v, None, None));
    }
    if let Some((c, max)) = s.window {
        let counter = p.counter(c);
        let window = match counter.window {
            Window::Calendar(c) => WindowSpec::Calendar(c),
            Window::Sliding { millis } if millis % 1000 == 0 => WindowSpec::Sliding(millis / 1000),
            Window::Sliding { millis } => {
                return Err(Untranslatable(format!(
                    "a sliding window of {millis} ms is not whole seconds"
                )));
            }
        };
        let by = match &counter.partition {
            Partition::Global => None,
            Partition::Session => Some(By::Session),
            Partition::Arg(a) => Some(By::Path(path(a))),
        };
        out.push(rule(max, Some(window), by));
    }
    Ok(out)
}

fn operand(
    p: &ServerPolicy,
    o: &Operand,
    names: &CounterNames,
) -> Result<dsl::Operand, Untranslatable> {
    Ok(match o {
        Operand::Arg(a) => dsl::Operand::Path(path(a)),
        Operand::Len(a) => dsl::Operand::Len(path(a)),
        Operand::Const(c) => dsl::Operand::Literal(literal(c), Span::default()),
        Operand::Counter(id) => match names.get(*id) {
            Some((scope, name)) => dsl::Operand::Count(sp(scope.clone()), sp(name.clone())),
            None => {
                return Err(Untranslatable(format!(
                    "the condition reads counter `{}`, which no limit increments",
                    p.counter(*id).display
                )));
            }
        },
    })
}

fn expr(p: &ServerPolicy, e: &Expr, names: &CounterNames) -> Result<dsl::Expr, Untranslatable> {
    Ok(match e {
        Expr::Bool(b) => dsl::Expr::Bool(*b),
        Expr::And(v) if v.is_empty() => dsl::Expr::Bool(true),
        Expr::Or(v) if v.is_empty() => dsl::Expr::Bool(false),
        Expr::And(v) if v.len() == 1 => expr(p, &v[0], names)?,
        Expr::Or(v) if v.len() == 1 => expr(p, &v[0], names)?,
        Expr::And(v) => dsl::Expr::And(
            v.iter()
                .map(|x| expr(p, x, names))
                .collect::<Result<_, _>>()?,
        ),
        Expr::Or(v) => dsl::Expr::Or(
            v.iter()
                .map(|x| expr(p, x, names))
                .collect::<Result<_, _>>()?,
        ),
        Expr::Not(x) => dsl::Expr::Not(Box::new(expr(p, x, names)?)),
        Expr::Test(t) => {
            let op = |o: &Operand| operand(p, o, names);
            let kind = match &t.kind {
                TestKind::Cmp { lhs, op: c, rhs } => dsl::TestKind::Cmp(op(lhs)?, *c, op(rhs)?),
                TestKind::In { lhs, list, negated } => {
                    dsl::TestKind::In(op(lhs)?, list.iter().map(literal).collect(), *negated)
                }
                TestKind::Contains { lhs, rhs } => dsl::TestKind::Contains(op(lhs)?, op(rhs)?),
                TestKind::StartsWith { lhs, rhs } => dsl::TestKind::StartsWith(op(lhs)?, op(rhs)?),
                TestKind::EndsWith { lhs, rhs } => dsl::TestKind::EndsWith(op(lhs)?, op(rhs)?),
                TestKind::Matches { lhs, regex } => {
                    let re = p.regex(*regex);
                    if re.source.contains('\n') {
                        return Err(Untranslatable(
                            "a regex with a line break cannot be written as a /literal/".into(),
                        ));
                    }
                    dsl::TestKind::Matches(op(lhs)?, sp((re.source.clone(), re.flags.clone())))
                }
                TestKind::Exists {
                    operand: Operand::Arg(a),
                    expect,
                } => {
                    let t = dsl::Expr::Test(dsl::Test {
                        kind: dsl::TestKind::Exists(path(a)),
                        span: Span::default(),
                    });
                    return Ok(if *expect {
                        t
                    } else {
                        dsl::Expr::Not(Box::new(t))
                    });
                }
                TestKind::Path {
                    lhs: Operand::Arg(a),
                    op: o,
                    pattern,
                    ..
                } => dsl::TestKind::Path(path(a), *o, sp(pattern.clone())),
                TestKind::Path { .. } => {
                    return Err(Untranslatable("a path() test reads an argument".into()));
                }
                TestKind::Exists { operand, expect } => {
                    // A counter, a constant or a length always exists.
                    let _ = operand;
                    return Ok(dsl::Expr::Bool(*expect));
                }
            };
            dsl::Expr::Test(dsl::Test {
                kind,
                span: Span::default(),
            })
        }
    })
}

/// Adds a `// rule: NAME` comment above each rule line whose source rule had a name
/// other than its message.
fn annotate(body: &str, p: &ServerPolicy) -> String {
    let mut names = Vec::new();
    for t in p
        .tools
        .iter()
        .map(|t| &t.rules)
        .chain(std::iter::once(&p.wildcard))
        .chain(p.resources.blocks.iter().map(|t| &t.rules))
        .chain(p.prompts.blocks.iter().map(|t| &t.rules))
    {
        for id in t {
            let r = p.rule(*id);
            let n = usize::from(r.check.is_some()) + usize::from(r.limit.is_some());
            for _ in 0..n {
                names.push((r.name.clone(), r.label.clone()));
            }
        }
    }
    let mut out = String::new();
    let mut i = 0;
    for line in body.lines() {
        let t = line.trim_start();
        if t.starts_with("deny ") || t.starts_with("allow ") || t.starts_with("limit ") {
            if let Some((name, label)) = names.get(i)
                && !name.is_empty()
            {
                let indent = &line[..line.len() - t.len()];
                out.push_str(&format!(
                    "{indent}// {label}: {}\n",
                    name.replace('\n', " ")
                ));
            }
            i += 1;
        }
        out.push_str(line);
        out.push('\n');
    }
    out
}
