//! Semantic checks on the IR, shared by every front end.
//!
//! These go beyond Intercept's validator: they catch policies that compile
//! but cannot mean what their author wrote.
//! - a counter that no limit increments (it stays 0, so its limit never bites);
//! - tests joined by `and` that can never hold together (`lt 5` and `gt 10`);
//! - a rule after an unconditional deny (it can never run);
//! - a hidden tool that also has rules (they can never run);
//! - more counters on one call than a reservation can hold;
//! - argument paths spelt in two letter cases (`args.Amount`, `args.amount`):
//!   paths match keys under case folding, so both read the same argument.

use std::cmp::Ordering;

use portcullis_core::counters::MAX_RESERVATIONS;
use portcullis_core::json::{JStr, Val};
use portcullis_core::ops;

use crate::ir::{CmpOp, Const, Expr, NamePattern, Operand, RuleId, ServerPolicy, Test, TestKind};
use crate::source::Diagnostic;

/// Runs every check; returns errors and warnings in a deterministic order.
pub fn check(p: &ServerPolicy) -> Vec<Diagnostic> {
    let mut out = Vec::new();
    unlimited_counters(p, &mut out);
    for rule in &p.rules {
        if let Some(c) = &rule.check {
            contradictions(&c.deny_when, &mut out);
        }
        if let Some(a) = &rule.approve {
            contradictions(&a.when, &mut out);
        }
    }
    shadowed_rules(p, &mut out);
    approvals_behind_denies(p, &mut out);
    hidden_with_rules(p, &mut out);
    too_many_limits(p, &mut out);
    case_variant_paths(p, &mut out);
    hide_conditions(p, &mut out);
    // Resources and prompts: the same per-block checks on their blocks.
    for surface in [crate::ir::Surface::Resource, crate::ir::Surface::Prompt] {
        if p.governs(surface) {
            let view = p.view(surface);
            shadowed_rules(&view, &mut out);
            too_many_limits(&view, &mut out);
            hidden_with_rules(&view, &mut out);
            hide_conditions(&view, &mut out);
        }
    }
    resource_arguments(p, &mut out);
    out
}

/// A resource request has no arguments: a resource rule's condition that
/// reads `args.*` reads a missing value for every request (what the
/// author meant is the URI, which the block's pattern matches).
fn resource_arguments(p: &ServerPolicy, out: &mut Vec<Diagnostic>) {
    for block in &p.resources.blocks {
        for &id in &block.rules {
            let r = p.rule(id);
            let exprs = r.check.iter().map(|c| &c.deny_when);
            for e in exprs {
                for t in e.tests() {
                    for o in t.operands() {
                        let path = match o {
                            Operand::Arg(a) | Operand::Len(a) => a,
                            _ => continue,
                        };
                        if !path.is_principal() {
                            out.push(
                                Diagnostic::error(
                                    format!("`{}`: a resource request has no arguments", path.display()),
                                    t.loc.0,
                                )
                                .with_help("a resource rule matches the URI by its block's pattern (exact, glob or regex); its conditions may read `principal.*` and counters"),
                            );
                        }
                    }
                }
            }
        }
    }
}

/// A conditional `hide` decides `tools/list` too, where a call has no
/// arguments and no counter is read: its condition may read principal
/// paths (and constants) only.
fn hide_conditions(p: &ServerPolicy, out: &mut Vec<Diagnostic>) {
    for h in &p.hidden {
        let Some(when) = &h.when else { continue };
        for t in when.tests() {
            for o in t.operands() {
                let bad = match o {
                    Operand::Arg(a) | Operand::Len(a) if !a.is_principal() => {
                        Some((a.display(), a.loc.0))
                    }
                    Operand::Counter(c) => Some((p.counter(*c).display.clone(), t.loc.0)),
                    _ => None,
                };
                if let Some((what, at)) = bad {
                    out.push(
                        Diagnostic::error(
                            format!("a hide condition may only read principal paths, not `{what}`"),
                            at,
                        )
                        .with_help("a hide decides lists too (`tools/list`, `resources/list`, `prompts/list`), where there are no arguments or counters; test the caller (`principal.sub`, `principal.scopes`, `principal.claims.<name>`), or write a `deny ... when` rule in the tool's block"),
                    );
                }
            }
        }
    }
}

/// Argument paths match object keys under case folding (what a Go server
/// reads as the field), so `args.Amount` and `args.amount` are one argument.
/// Intercept reads them as two, so a policy may spell both (often to cover
/// both spellings): that still compiles, both rules read the same value,
/// and a warning says so once per pair of spellings.
fn case_variant_paths(p: &ServerPolicy, out: &mut Vec<Diagnostic>) {
    use std::collections::BTreeMap;
    // Folded prefix -> the first spelling seen and where.
    let mut first: BTreeMap<Vec<String>, (Vec<String>, crate::source::Span)> = BTreeMap::new();
    let mut reported = std::collections::BTreeSet::new();
    for rule in &p.rules {
        for path in crate::schema::rule_paths(p, rule.id) {
            for len in 1..=path.segments.len() {
                let spelt = &path.segments[..len];
                let folded: Vec<String> = spelt.iter().map(|s| JStr::plain(s).folded()).collect();
                let (seen, at) = first
                    .entry(folded)
                    .or_insert_with(|| (spelt.to_vec(), path.loc.0))
                    .clone();
                if seen == spelt {
                    continue;
                }
                if reported.insert((seen.clone(), spelt.to_vec())) {
                    let (a, b) = (
                        format!("args.{}", seen.join(".")),
                        format!("args.{}", spelt.join(".")),
                    );
                    out.push(
                        Diagnostic::warning(
                            format!("`{b}` and `{a}` name the same argument"),
                            path.loc.0,
                        )
                        .with_label(at, format!("`{a}` is spelt here"))
                        .with_help(
                            "argument keys match in any letter case (as a Go server reads them), so both read the same member; use one spelling (Intercept reads them as two different keys)"
                        ),
                    );
                }
                break;
            }
        }
    }
}

fn unlimited_counters(p: &ServerPolicy, out: &mut Vec<Diagnostic>) {
    for c in &p.counters {
        let limited = p.rules.iter().any(|r| {
            r.limit.as_ref().is_some_and(|l| l.counter == c.id)
                || r.spend
                    .as_ref()
                    .is_some_and(|s| s.window.is_some_and(|(w, _)| w == c.id))
        });
        if !limited {
            out.push(
                Diagnostic::error(
                    format!("counter `{}` is never incremented, so its limit can never take effect", c.display),
                    c.loc.0,
                )
                .with_help(format!(
                    "a counter counts only through an `lt` or `lte` condition on itself in the same rule: add `{{path: {}, op: lte, value: N}}` to this rule (Intercept silently never counts it)",
                    c.display
                )),
            );
        }
    }
}

/// Operand identity for grouping constraints (argument paths only).
fn path_key(o: &Operand) -> Option<String> {
    match o {
        Operand::Arg(p) if p.is_principal() => Some(p.display()),
        // Folded: paths differing only in letter case read the same argument.
        Operand::Arg(p) => Some(format!(
            "args.{}",
            p.segments
                .iter()
                .map(|s| JStr::plain(s).folded())
                .collect::<Vec<_>>()
                .join("\u{0}")
        )),
        Operand::Counter(c) => Some(format!("counter#{}", c.0)),
        _ => None,
    }
}

fn const_val(c: &Const) -> Val<'_> {
    match c {
        Const::Null => Val::Null,
        Const::Bool(b) => Val::Bool(*b),
        Const::Num(n) => Val::Num(n.num()),
        Const::Str(s) => Val::Str(JStr::plain(s)),
    }
}

#[derive(Default)]
struct Facts<'e> {
    lower: Option<(Val<'e>, bool, &'e Test)>, // (bound, strict)
    upper: Option<(Val<'e>, bool, &'e Test)>,
    equal: Option<(Val<'e>, &'e Test)>,
    within: Option<(Vec<Val<'e>>, &'e Test)>,
    absent: Option<&'e Test>,
    present: Option<&'e Test>,
}

fn numeric(v: Val<'_>) -> bool {
    matches!(v, Val::Num(_))
}

fn contradictions(e: &Expr, out: &mut Vec<Diagnostic>) {
    match e {
        Expr::And(items) => {
            let tests: Vec<&Test> = items
                .iter()
                .filter_map(|i| match i {
                    Expr::Test(t) => Some(t),
                    _ => None,
                })
                .collect();
            let mut keys: Vec<String> = tests
                .iter()
                .flat_map(|t| t.operands().into_iter().next().and_then(path_key))
                .collect();
            keys.sort();
            keys.dedup();
            for key in keys {
                let group: Vec<&Test> = tests
                    .iter()
                    .copied()
                    .filter(|t| {
                        t.operands().first().and_then(|o| path_key(o)).as_deref() == Some(&key)
                    })
                    .collect();
                if let Some((a, b)) = conflict(&group) {
                    out.push(
                        Diagnostic::error("these conditions can never hold together", b.loc.0)
                            .with_label(a.loc.0, "conflicts with this condition")
                            .with_help("no value satisfies both; check the operators and bounds (e.g. `lt 5` with `gt 10`)"),
                    );
                }
            }
            items.iter().for_each(|i| contradictions(i, out));
        }
        Expr::Or(items) => items.iter().for_each(|i| contradictions(i, out)),
        Expr::Not(inner) => contradictions(inner, out),
        Expr::Bool(_) | Expr::Test(_) => {}
    }
}

/// The first pair of tests on one operand that no value satisfies together.
fn conflict<'e>(group: &[&'e Test]) -> Option<(&'e Test, &'e Test)> {
    let mut f = Facts::default();
    for &t in group {
        let rhs_const = |o: &'e Operand| match o {
            Operand::Const(c) => Some(const_val(c)),
            _ => None,
        };
        match &t.kind {
            TestKind::Cmp { op, rhs, .. } => {
                let Some(v) = rhs_const(rhs) else { continue };
                match op {
                    CmpOp::Lt | CmpOp::Le => {
                        let strict = *op == CmpOp::Lt;
                        let tighter = match f.upper {
                            None => true,
                            Some((u, us, _)) => match ops::order(Some(v), Some(u)) {
                                Some(Ordering::Less) => true,
                                Some(Ordering::Equal) => strict && !us,
                                _ => false,
                            },
                        };
                        if tighter {
                            f.upper = Some((v, strict, t));
                        }
                    }
                    CmpOp::Gt | CmpOp::Ge => {
                        let strict = *op == CmpOp::Gt;
                        let tighter = match f.lower {
                            None => true,
                            Some((l, ls, _)) => match ops::order(Some(v), Some(l)) {
                                Some(Ordering::Greater) => true,
                                Some(Ordering::Equal) => strict && !ls,
                                _ => false,
                            },
                        };
                        if tighter {
                            f.lower = Some((v, strict, t));
                        }
                    }
                    CmpOp::Eq => {
                        if let Some((e, et)) = f.equal
                            && !ops::equal(e, v)
                        {
                            return Some((et, t));
                        }
                        f.equal = Some((v, t));
                    }
                    CmpOp::Ne => {}
                }
                f.present.get_or_insert(t);
            }
            TestKind::In {
                list,
                negated: false,
                ..
            } => {
                let vals: Vec<Val<'e>> = list.iter().map(const_val).collect();
                if let Some((prev, pt)) = &f.within {
                    let both: Vec<Val<'e>> = vals
                        .iter()
                        .copied()
                        .filter(|v| prev.iter().any(|p| ops::equal(*p, *v)))
                        .collect();
                    if both.is_empty() {
                        return Some((pt, t));
                    }
                    f.within = Some((both, t));
                } else {
                    f.within = Some((vals, t));
                }
                f.present.get_or_insert(t);
            }
            TestKind::Exists { expect: false, .. } => {
                f.absent.get_or_insert(t);
            }
            _ => {
                f.present.get_or_insert(t);
            }
        }
        if let (Some(a), Some(p)) = (f.absent, f.present) {
            return Some(if std::ptr::eq(a, t) { (p, a) } else { (a, p) });
        }
        if let (Some((lo, ls, lt)), Some((hi, hs, ht))) = (f.lower, f.upper)
            && numeric(lo) == numeric(hi)
        {
            match ops::order(Some(lo), Some(hi)) {
                Some(Ordering::Greater) => return Some((lt, ht)),
                Some(Ordering::Equal) if ls || hs => return Some((lt, ht)),
                None => return Some((lt, ht)),
                _ => {}
            }
        }
        if let Some((e, et)) = f.equal {
            if let Some((lo, ls, lt)) = f.lower {
                let ok = match ops::order(Some(e), Some(lo)) {
                    Some(Ordering::Greater) => true,
                    Some(Ordering::Equal) => !ls,
                    // A numeric string equal to a number still orders as a string: not provable.
                    _ => !numeric(e) && numeric(lo),
                };
                if !ok && numeric(e) == numeric(lo) {
                    return Some((lt, et));
                }
            }
            if let Some((hi, hs, ht)) = f.upper {
                let ok = match ops::order(Some(e), Some(hi)) {
                    Some(Ordering::Less) => true,
                    Some(Ordering::Equal) => !hs,
                    _ => !numeric(e) && numeric(hi),
                };
                if !ok && numeric(e) == numeric(hi) {
                    return Some((ht, et));
                }
            }
            if let Some((list, lt)) = &f.within
                && !list.iter().any(|v| ops::equal(*v, e))
            {
                return Some((lt, et));
            }
        }
    }
    None
}

fn always_denies(p: &ServerPolicy, id: RuleId) -> bool {
    p.rule(id)
        .check
        .as_ref()
        .is_some_and(|c| c.deny_when == Expr::Bool(true))
}

fn shadowed_rules(p: &ServerPolicy, out: &mut Vec<Diagnostic>) {
    let lists = p
        .tools
        .iter()
        .map(|t| &t.rules)
        .chain(std::iter::once(&p.wildcard));
    for rules in lists {
        if let Some(pos) = rules.iter().position(|&r| always_denies(p, r)) {
            let denier = p.rule(rules[pos]);
            for &later in &rules[pos + 1..] {
                let r = p.rule(later);
                out.push(
                    Diagnostic::warning(format!("rule {:?} can never run", r.name), r.loc.0)
                        .with_label(
                            denier.loc.0,
                            format!("rule {:?} always denies first", denier.name),
                        )
                        .with_help("remove the rule, or move it above the unconditional deny"),
                );
            }
        }
    }
}

/// Denies win over approvals: an approval rule above an unconditional deny
/// of the same block never asks (one below it is reported as never running).
fn approvals_behind_denies(p: &ServerPolicy, out: &mut Vec<Diagnostic>) {
    let lists = p
        .tools
        .iter()
        .map(|t| &t.rules)
        .chain(std::iter::once(&p.wildcard));
    for rules in lists {
        let Some(pos) = rules.iter().position(|&r| always_denies(p, r)) else {
            continue;
        };
        let denier = p.rule(rules[pos]);
        for &earlier in &rules[..pos] {
            let r = p.rule(earlier);
            if r.approve.is_none() {
                continue;
            }
            out.push(
                Diagnostic::warning(
                    format!(
                        "approval rule {:?} can never ask: every call is denied",
                        r.name
                    ),
                    r.loc.0,
                )
                .with_label(
                    denier.loc.0,
                    format!(
                        "rule {:?} always denies, and a deny wins over an approval",
                        denier.name
                    ),
                )
                .with_help("remove one of the two rules"),
            );
        }
    }
}

fn hidden_with_rules(p: &ServerPolicy, out: &mut Vec<Diagnostic>) {
    // A conditional hide hides from some callers only: the rest reach the rules.
    for h in p.hidden.iter().filter(|h| h.when.is_none()) {
        for t in &p.tools {
            let covered = t.patterns.iter().any(|pat| match (&h.pattern, pat) {
                (NamePattern::All, _) => true,
                (hp, NamePattern::Exact(name)) => hp.matches(name),
                (NamePattern::Exact(a), NamePattern::Glob(b)) => a == b,
                _ => false,
            });
            if covered && !t.rules.is_empty() {
                out.push(
                    Diagnostic::warning(
                        format!(
                            "tool `{}` is hidden, so its rules never run",
                            t.patterns[0].text()
                        ),
                        t.loc.0,
                    )
                    .with_label(h.loc.0, "hidden here")
                    .with_help(
                        "a hidden tool is always denied; remove its rules or the hide entry",
                    ),
                );
            }
        }
    }
}

fn too_many_limits(p: &ServerPolicy, out: &mut Vec<Diagnostic>) {
    // Spend budgets fill a table of the same size (`spend::MAX_BUDGETS`):
    // counted with the limits, which can only over-count.
    let limits = |ids: &[RuleId]| {
        ids.iter()
            .filter(|&&r| p.rule(r).limit.is_some() || p.rule(r).spend.is_some())
            .count()
    };
    let wildcard = limits(&p.wildcard);
    let globs: usize = p
        .tools
        .iter()
        .filter(|t| {
            t.patterns
                .iter()
                .any(|x| !matches!(x, NamePattern::Exact(_)))
        })
        .map(|t| limits(&t.rules))
        .sum();
    let mut worst = (wildcard + globs, None);
    for t in &p.tools {
        for pat in &t.patterns {
            if let NamePattern::Exact(name) = pat {
                let n: usize =
                    p.blocks_for(name).map(|b| limits(&b.rules)).sum::<usize>() + wildcard;
                if n > worst.0 {
                    worst = (n, Some(t));
                }
            }
        }
    }
    if worst.0 > MAX_RESERVATIONS {
        let span = worst
            .1
            .map_or(p.rules.first().map(|r| r.loc.0).unwrap_or_default(), |t| {
                t.loc.0
            });
        out.push(
            Diagnostic::error(
                format!(
                    "a call can need {} counters; at most {MAX_RESERVATIONS} are supported",
                    worst.0
                ),
                span,
            )
            .with_help("merge limits, or move some to other tools"),
        );
    }
}
