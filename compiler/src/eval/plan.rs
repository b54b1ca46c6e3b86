//! The evaluator's decision path, prepared when the policy is loaded.
//!
//! [`super::Evaluator`] keeps two ways of deciding. The traced one walks
//! the IR as written and reports every step (`explain`, `test` coverage);
//! it is the obviously-right reading of the policy. This module is the
//! one [`Policy::decide`](portcullis_core::policy::Policy::decide) and
//! the other per-call entry points use (the proxy's `-c FILE`), prepared
//! once per policy so that a decision does what the generated code does
//! and nothing more:
//!
//! - each exact name (tool, resource URI, prompt) has a [`NamePlan`]: its
//!   rules in order (its blocks', glob and regex blocks that match it
//!   included, then the wildcard rules), the hide entries that match it,
//!   its idempotency window, its budgets, and the first segments of every
//!   argument path its rules read; other names get a plan built for the
//!   set of glob and regex blocks and hides they match, cached by that set;
//! - conditions are compiled to [`Cond`]: operands name a prepared path,
//!   a counter or a constant, tests carry their compiled regex; no
//!   operand list, reading text or trace is built;
//! - arguments are read like the generated code reads them: one pass
//!   over [`ToolCall::arg_members`] per call (on first use), each key
//!   folded into a stack buffer as long as the plan's longest first
//!   segment and compared with those segments, the last member winning;
//! - counter values and lengths become numbers on the stack
//!   ([`num_from_u64`]), `path()` tests normalise on the stack
//!   ([`portcullis_core::path::test`]), limits go into a table sized to
//!   the plan's limit rules.
//!
//! A decision allocates nothing (asserted by
//! `tests/compiled/tests/zero_alloc.rs`; a name outside the exact table
//! allocates once, when the first name matching its set of patterns
//! arrives, and on every call only for a view with more than 128 glob or
//! regex blocks or hides), and decides exactly as the traced path does
//! (asserted by the tests below and by `tests/compiled/tests/differential.rs`,
//! which holds the traced path, this one and the generated code to the same
//! random calls over every test policy).

use std::collections::HashMap;
use std::sync::{Arc, Mutex};

use portcullis_core::call::{Surface, ToolCall};
use portcullis_core::counters::{CounterRef, Ticket};
use portcullis_core::idempotency::IdempotencySpec;
use portcullis_core::json::{JStr, Strictness, Val, num_from_u64};
use portcullis_core::ops;
use portcullis_core::policy::{Decision, Env, Limits, Outcome, PolicyMeta, RuleId};
use portcullis_core::principal::{self, Principal, PrincipalField};

use crate::ir::{
    Amount, ArgPath, CmpOp, Const, CounterId, Expr, NamePattern, Operand, Partition, PathOp,
    Posture, Root, ServerPolicy, TestKind,
};

use super::RuleText;

/// The name tables hash with foldhash (a few instructions per eight
/// bytes; FNV, a byte at a time, was a tenth of a decision on 310 tool
/// names). The keys are the policy's own names, randomly seeded per table.
type NameMap<K, V> = HashMap<K, V, foldhash::fast::RandomState>;

/// How many first segments a plan resolves in its one pass over the
/// arguments; a plan reading more (rare) looks each path up on its own.
const SLOTS: usize = 8;
/// The longest folded segment matched through a stack buffer; a longer
/// one is compared by [`JStr::eq_folded`] instead.
const SEGMENT_BUF: usize = 64;
/// How many counter readings one condition keeps on the stack.
const READINGS: usize = 8;

/// An argument or principal path, prepared.
#[derive(Debug)]
enum PathPlan {
    /// `args`: the arguments object itself.
    Whole,
    /// `args.first.rest...`: `first` indexes [`Plans::firsts`]; `rest` are
    /// the further segments, as written and folded.
    Args {
        first: u32,
        rest: Box<[(String, Box<[u8]>)]>,
    },
    /// `principal.field.segments...`.
    Principal {
        field: PrincipalField,
        segments: Box<[String]>,
    },
}

/// A compiled operand.
#[derive(Debug)]
enum COperand {
    Path(u32),
    Const(Const),
    Counter(CounterId),
    Len(u32),
}

/// A compiled test.
#[derive(Debug)]
enum CTest {
    Cmp(CmpOp, COperand, COperand),
    In(COperand, Box<[Const]>, bool),
    Contains(COperand, COperand),
    StartsWith(COperand, COperand),
    EndsWith(COperand, COperand),
    Matches(COperand, usize),
    Exists(COperand, bool),
    Path(COperand, PathOp, Box<str>, bool),
}

/// A compiled expression (the IR's shape, operands prepared).
#[derive(Debug)]
enum CExpr {
    Bool(bool),
    And(Box<[CExpr]>),
    Or(Box<[CExpr]>),
    Not(Box<CExpr>),
    Test(Box<CTest>),
}

/// A condition and the counters it reads, in first-use order (read, in
/// that order, before it is evaluated).
#[derive(Debug)]
struct Cond {
    expr: CExpr,
    counters: Box<[CounterId]>,
}

/// A rule's parts the decision reads.
#[derive(Debug)]
struct RulePlan {
    check: Option<Cond>,
    approve: Option<Cond>,
    limit: Option<LimitPlan>,
}

#[derive(Debug)]
struct LimitPlan {
    counter: CounterId,
    max: u64,
    /// The amount: a constant, or the number at a path.
    amount: Result<u64, u32>,
}

/// A counter's partition, prepared.
#[derive(Debug)]
enum PartitionPlan {
    Global,
    Session,
    Arg(u32),
    Principal(PrincipalField, Box<[String]>),
}

/// A hide entry, prepared.
#[derive(Debug)]
struct HidePlan {
    when: Option<CExpr>,
    rule: RuleId,
}

/// Everything a decision on one name needs.
#[derive(Debug)]
pub(super) struct NamePlan {
    /// The rules in order; None when the name is unlisted under default deny.
    rules: Option<Box<[RuleId]>>,
    /// Indices of the surface's hide entries matching the name, in order.
    hides: Box<[u32]>,
    /// The first segments (indices of [`Plans::firsts`]) its rules'
    /// argument paths start with, and the longest of them folded.
    firsts: Box<[u32]>,
    first_cap: usize,
    /// How many of its rules have a limit.
    limits: usize,
    /// The idempotency window of an allowed call.
    idempotency: Option<&'static IdempotencySpec>,
    /// Its rules that have a budget, in order.
    spend: Box<[RuleId]>,
    /// Some block lists it, and none of those blocks denies always
    /// ([`portcullis_core::policy::Policy::is_listed_on`] under default deny).
    listed_open: bool,
    /// The arguments its `path()` conditions read (segments).
    path_args: Box<[Box<[String]>]>,
}

/// One surface's view, prepared.
#[derive(Debug)]
struct SurfacePlan {
    governs: bool,
    /// The view's posture is allow.
    default_allow: bool,
    default_rule: RuleId,
    hides: Box<[HidePlan]>,
    exact: NameMap<String, NamePlan>,
    /// Blocks with a pattern other than an exact name, and hides likewise:
    /// a name outside `exact` can match only these.
    patterned_blocks: Box<[usize]>,
    patterned_hides: Box<[usize]>,
    /// Plans of names outside `exact`, by which patterned blocks and hides
    /// they match (bit sets, at most 128 of each; beyond that a plan is
    /// built per call).
    dynamic: Mutex<NameMap<(u128, u128), Arc<NamePlan>>>,
}

/// The prepared policy.
#[derive(Debug)]
pub(super) struct Plans {
    surfaces: [SurfacePlan; 3],
    rules: Box<[RulePlan]>,
    paths: Box<[PathPlan]>,
    /// Distinct first segments of argument paths: as written, and folded.
    firsts: Box<[(String, Box<[u8]>)]>,
    partitions: Box<[PartitionPlan]>,
    /// A call without arguments: what hide conditions are evaluated on.
    none: ToolCall<'static>,
}

fn surface_index(s: Surface) -> usize {
    match s {
        Surface::Tool => 0,
        Surface::Resource => 1,
        Surface::Prompt => 2,
    }
}

/// Calls `f` with `segments` as `&[&str]`, on the stack when there are at
/// most eight.
fn with_segs<R>(segments: &[String], f: impl FnOnce(&[&str]) -> R) -> R {
    if segments.len() <= 8 {
        let mut a: [&str; 8] = [""; 8];
        for (o, s) in a.iter_mut().zip(segments) {
            *o = s;
        }
        f(&a[..segments.len()])
    } else {
        let v: Vec<&str> = segments.iter().map(String::as_str).collect();
        f(&v)
    }
}

/// Compiles paths and conditions, numbering paths and first segments.
#[derive(Default)]
struct Builder {
    paths: Vec<PathPlan>,
    path_keys: Vec<(Root, Vec<String>)>,
    firsts: Vec<(String, Box<[u8]>)>,
}

impl Builder {
    fn first(&mut self, seg: &str) -> u32 {
        let folded: Box<[u8]> = JStr::plain(seg).folded().into_bytes().into_boxed_slice();
        if let Some(i) = self.firsts.iter().position(|(_, f)| *f == folded) {
            return i as u32;
        }
        self.firsts.push((seg.to_string(), folded));
        (self.firsts.len() - 1) as u32
    }

    fn path(&mut self, p: &ArgPath) -> u32 {
        let key = (p.root, p.segments.clone());
        if let Some(i) = self.path_keys.iter().position(|k| *k == key) {
            return i as u32;
        }
        let plan = match p.root {
            Root::Args => match p.segments.split_first() {
                None => PathPlan::Whole,
                Some((first, rest)) => PathPlan::Args {
                    first: self.first(first),
                    rest: rest
                        .iter()
                        .map(|s| {
                            let f = JStr::plain(s).folded().into_bytes().into_boxed_slice();
                            (s.clone(), f)
                        })
                        .collect(),
                },
            },
            Root::Principal(field) => PathPlan::Principal {
                field,
                segments: p.segments.clone().into_boxed_slice(),
            },
        };
        self.paths.push(plan);
        self.path_keys.push(key);
        (self.paths.len() - 1) as u32
    }

    fn operand(&mut self, o: &Operand) -> COperand {
        match o {
            Operand::Arg(p) => COperand::Path(self.path(p)),
            Operand::Const(c) => COperand::Const(c.clone()),
            Operand::Counter(c) => COperand::Counter(*c),
            Operand::Len(p) => COperand::Len(self.path(p)),
        }
    }

    fn expr(&mut self, e: &Expr) -> CExpr {
        match e {
            Expr::Bool(b) => CExpr::Bool(*b),
            Expr::And(v) => CExpr::And(v.iter().map(|e| self.expr(e)).collect()),
            Expr::Or(v) => CExpr::Or(v.iter().map(|e| self.expr(e)).collect()),
            Expr::Not(e) => CExpr::Not(Box::new(self.expr(e))),
            Expr::Test(t) => CExpr::Test(Box::new(match &t.kind {
                TestKind::Cmp { lhs, op, rhs } => {
                    CTest::Cmp(*op, self.operand(lhs), self.operand(rhs))
                }
                TestKind::In { lhs, list, negated } => {
                    CTest::In(self.operand(lhs), list.clone().into_boxed_slice(), *negated)
                }
                TestKind::Contains { lhs, rhs } => {
                    CTest::Contains(self.operand(lhs), self.operand(rhs))
                }
                TestKind::StartsWith { lhs, rhs } => {
                    CTest::StartsWith(self.operand(lhs), self.operand(rhs))
                }
                TestKind::EndsWith { lhs, rhs } => {
                    CTest::EndsWith(self.operand(lhs), self.operand(rhs))
                }
                TestKind::Matches { lhs, regex } => {
                    CTest::Matches(self.operand(lhs), regex.0 as usize)
                }
                TestKind::Exists { operand, expect } => {
                    CTest::Exists(self.operand(operand), *expect)
                }
                TestKind::Path {
                    lhs,
                    op,
                    pattern,
                    invalid,
                } => CTest::Path(self.operand(lhs), *op, pattern.as_str().into(), *invalid),
            })),
        }
    }

    fn cond(&mut self, e: &Expr) -> Cond {
        Cond {
            expr: self.expr(e),
            counters: e.counters().into_boxed_slice(),
        }
    }
}

/// Whether `p` matches `name` (regex name patterns through the
/// evaluator's compiled regexes, which never match when the pattern did
/// not compile, as with [`NamePattern::matches`], which compiles it anew).
fn pattern_matches(regexes: &[regex::Regex], p: &NamePattern, name: &str) -> bool {
    match p {
        NamePattern::Regex { id, .. } => regexes[id.0 as usize].is_match(name),
        p => p.matches(name),
    }
}

/// The paths (indices) an expression's operands read.
fn expr_paths(e: &CExpr, f: &mut impl FnMut(u32)) {
    match e {
        CExpr::Bool(_) => {}
        CExpr::And(v) | CExpr::Or(v) => v.iter().for_each(|e| expr_paths(e, f)),
        CExpr::Not(e) => expr_paths(e, f),
        CExpr::Test(t) => {
            let ops: [Option<&COperand>; 2] = match &**t {
                CTest::Cmp(_, a, b)
                | CTest::Contains(a, b)
                | CTest::StartsWith(a, b)
                | CTest::EndsWith(a, b) => [Some(a), Some(b)],
                CTest::In(a, ..)
                | CTest::Matches(a, _)
                | CTest::Exists(a, _)
                | CTest::Path(a, ..) => [Some(a), None],
            };
            for o in ops.into_iter().flatten() {
                if let COperand::Path(p) | COperand::Len(p) = o {
                    f(*p);
                }
            }
        }
    }
}

/// The built tables a name's plan is made from (at load, and for a name
/// outside the exact table when there are too many patterns to cache).
struct Tables<'t> {
    meta: &'static PolicyMeta,
    regexes: &'t [regex::Regex],
    paths: &'t [PathPlan],
    firsts: &'t [(String, Box<[u8]>)],
    partitions: &'t [PartitionPlan],
    rules: &'t [RulePlan],
}

impl Tables<'_> {
    /// The first segments the paths of rule `id` start with (its check,
    /// approval, limit amount and counters' partitions).
    fn rule_firsts(&self, id: RuleId, out: &mut Vec<u32>) {
        let r = &self.rules[id.0 as usize];
        let mut add = |p: u32| {
            if let PathPlan::Args { first, .. } = &self.paths[p as usize]
                && !out.contains(first)
            {
                out.push(*first);
            }
        };
        let mut counters: Vec<CounterId> = Vec::new();
        for c in [&r.check, &r.approve].into_iter().flatten() {
            expr_paths(&c.expr, &mut add);
            counters.extend(c.counters.iter().copied());
        }
        if let Some(l) = &r.limit {
            if let Err(p) = l.amount {
                add(p);
            }
            counters.push(l.counter);
        }
        for c in counters {
            if let PartitionPlan::Arg(p) = &self.partitions[c.0 as usize] {
                add(*p);
            }
        }
    }

    fn surface(&self, governs: bool, v: &ServerPolicy, hides: Box<[HidePlan]>) -> SurfacePlan {
        let is_exact = |p: &NamePattern| matches!(p, NamePattern::Exact(_));
        let patterned_blocks = (0..v.tools.len())
            .filter(|&i| !v.tools[i].patterns.iter().all(is_exact))
            .collect();
        let patterned_hides = (0..v.hidden.len())
            .filter(|&i| !is_exact(&v.hidden[i].pattern))
            .collect();
        let mut exact: NameMap<String, NamePlan> = NameMap::default();
        let names = v
            .tools
            .iter()
            .flat_map(|b| &b.patterns)
            .chain(v.hidden.iter().map(|h| &h.pattern));
        for p in names {
            if let NamePattern::Exact(n) = p
                && !exact.contains_key(n)
            {
                exact.insert(n.clone(), self.name_plan(v, n));
            }
        }
        SurfacePlan {
            governs,
            default_allow: v.default == Posture::Allow,
            default_rule: v.default_rule,
            hides,
            exact,
            patterned_blocks,
            patterned_hides,
            dynamic: Mutex::new(NameMap::default()),
        }
    }

    /// The plan of `name` on view `v`.
    fn name_plan(&self, v: &ServerPolicy, name: &str) -> NamePlan {
        let blocks: Vec<&crate::ir::Tool> = v
            .tools
            .iter()
            .filter(|b| {
                b.patterns
                    .iter()
                    .any(|p| pattern_matches(self.regexes, p, name))
            })
            .collect();
        let all: Vec<RuleId> = blocks
            .iter()
            .flat_map(|b| b.rules.iter().copied())
            .chain(v.wildcard.iter().copied())
            .collect();
        let applied = (!blocks.is_empty() || v.default != Posture::Deny).then(|| all.clone());
        let mut firsts = Vec::new();
        for &id in applied.iter().flatten() {
            self.rule_firsts(id, &mut firsts);
        }
        let first_cap = firsts
            .iter()
            .map(|&f| self.firsts[f as usize].1.len())
            .max()
            .unwrap_or(0);
        let idempotency = applied.as_ref().and_then(|r| {
            r.iter()
                .find_map(|&id| self.meta.idempotency.iter().find(|s| s.rule == id))
        });
        NamePlan {
            limits: applied
                .iter()
                .flatten()
                .filter(|&&id| self.rules[id.0 as usize].limit.is_some())
                .count(),
            idempotency,
            hides: (0..v.hidden.len() as u32)
                .filter(|&i| pattern_matches(self.regexes, &v.hidden[i as usize].pattern, name))
                .collect(),
            firsts: firsts.into_boxed_slice(),
            first_cap,
            spend: all
                .iter()
                .copied()
                .filter(|&id| v.rule(id).spend.is_some())
                .collect(),
            listed_open: !blocks.is_empty()
                && !blocks
                    .iter()
                    .any(|b| b.rules.iter().any(|&r| v.rule(r).denies_always())),
            path_args: v
                .path_args(all.iter().copied())
                .into_iter()
                .map(|a| a.segments.clone().into_boxed_slice())
                .collect(),
            rules: applied.map(Vec::into_boxed_slice),
        }
    }
}

impl Plans {
    /// Prepares `ir` and its resource and prompt `views` for deciding.
    pub(super) fn new(
        ir: &ServerPolicy,
        views: [&ServerPolicy; 3],
        meta: &'static PolicyMeta,
        regexes: &[regex::Regex],
    ) -> Plans {
        let mut b = Builder::default();
        let partitions: Vec<PartitionPlan> = ir
            .counters
            .iter()
            .map(|c| match &c.partition {
                Partition::Global => PartitionPlan::Global,
                Partition::Session => PartitionPlan::Session,
                Partition::Arg(p) => match p.root {
                    Root::Args => PartitionPlan::Arg(b.path(p)),
                    Root::Principal(field) => {
                        PartitionPlan::Principal(field, p.segments.clone().into_boxed_slice())
                    }
                },
            })
            .collect();
        let rules: Vec<RulePlan> = ir
            .rules
            .iter()
            .map(|r| RulePlan {
                check: r.check.as_ref().map(|c| b.cond(&c.deny_when)),
                approve: r.approve.as_ref().map(|a| b.cond(&a.when)),
                limit: r.limit.as_ref().map(|l| LimitPlan {
                    counter: l.counter,
                    max: l.max,
                    amount: match &l.amount {
                        Amount::Const(n) => Ok(*n),
                        Amount::Arg { path, .. } => Err(b.path(path)),
                    },
                }),
            })
            .collect();
        let mut hides = views.map(|v| {
            Some(
                v.hidden
                    .iter()
                    .map(|h| HidePlan {
                        when: h.when.as_ref().map(|e| b.expr(e)),
                        rule: h.rule,
                    })
                    .collect::<Box<[HidePlan]>>(),
            )
        });
        let tables = Tables {
            meta,
            regexes,
            paths: &b.paths,
            firsts: &b.firsts,
            partitions: &partitions,
            rules: &rules,
        };
        let surfaces = [Surface::Tool, Surface::Resource, Surface::Prompt].map(|s| {
            let i = surface_index(s);
            let h = hides[i].take().expect("each surface once");
            tables.surface(ir.governs(s), views[i], h)
        });
        Plans {
            surfaces,
            rules: rules.into_boxed_slice(),
            paths: b.paths.into_boxed_slice(),
            firsts: b.firsts.into_boxed_slice(),
            partitions: partitions.into_boxed_slice(),
            none: ToolCall::new("", b"{}", Strictness::STRICT).expect("`{}` is a call"),
        }
    }
}

/// The value of the last member of `members` whose key folds to `folded`
/// (`seg` as written, `folded` its folding): what [`ToolCall::arg`] and
/// [`portcullis_core::json::Object::get_folded`] find, each key folded
/// into a stack buffer.
fn last_folded<'a>(
    members: impl Iterator<Item = (JStr<'a>, portcullis_core::json::Value<'a>)>,
    seg: &str,
    folded: &[u8],
) -> Option<Val<'a>> {
    let mut found = None;
    if folded.len() <= SEGMENT_BUF {
        let mut buf = [0u8; SEGMENT_BUF];
        for (k, v) in members {
            if k.fold_into(&mut buf[..folded.len()]) == Some(folded) {
                found = Some(v);
            }
        }
    } else {
        let key = JStr::plain(seg);
        for (k, v) in members {
            if k.eq_folded(&key) {
                found = Some(v);
            }
        }
    }
    found.map(|v| v.val())
}

/// The arguments of one call as a plan reads them: the plan's first
/// segments resolved in one pass over the members, on first use.
struct Args<'c, 'a> {
    plans: &'c Plans,
    call: &'c ToolCall<'a>,
    principal: Option<&'a Principal>,
    /// The plan's first segments; empty when each path is looked up on its own.
    firsts: &'c [u32],
    cap: usize,
    vals: [Option<Val<'a>>; SLOTS],
    filled: bool,
}

impl<'c, 'a> Args<'c, 'a> {
    fn new(
        plans: &'c Plans,
        call: &'c ToolCall<'a>,
        principal: Option<&'a Principal>,
        plan: Option<&'c NamePlan>,
    ) -> Args<'c, 'a> {
        let (firsts, cap) = match plan {
            Some(p) if p.firsts.len() <= SLOTS && p.first_cap <= SEGMENT_BUF => {
                (&*p.firsts, p.first_cap)
            }
            _ => (&[][..], 0),
        };
        Args {
            plans,
            call,
            principal,
            firsts,
            cap,
            vals: [None; SLOTS],
            filled: false,
        }
    }

    fn fill(&mut self) {
        self.filled = true;
        let mut buf = [0u8; SEGMENT_BUF];
        let firsts = self.firsts;
        let texts = &self.plans.firsts;
        for (k, v) in self.call.arg_members() {
            let Some(f) = k.fold_into(&mut buf[..self.cap]) else {
                continue;
            };
            if let Some(i) = firsts.iter().position(|&id| *texts[id as usize].1 == *f) {
                // The last member wins, as in `ToolCall::arg`.
                self.vals[i] = Some(v.val());
            }
        }
    }

    /// The value of the arguments' member `id` (a first segment).
    fn first(&mut self, id: u32) -> Option<Val<'a>> {
        if let Some(i) = self.firsts.iter().position(|&f| f == id) {
            if !self.filled {
                self.fill();
            }
            return self.vals[i];
        }
        let (seg, folded) = &self.plans.firsts[id as usize];
        last_folded(self.call.arg_members(), seg, folded)
    }

    /// The value at path `p`.
    fn value(&mut self, p: u32) -> Option<Val<'a>> {
        let plans = self.plans;
        match &plans.paths[p as usize] {
            PathPlan::Whole => Some(Val::Object(self.call.arguments())),
            PathPlan::Args { first, rest } => {
                let mut current = self.first(*first)?;
                for (seg, folded) in rest.iter() {
                    let Val::Object(o) = current else {
                        return None;
                    };
                    current = last_folded(o.members(), seg, folded)?;
                }
                Some(current)
            }
            PathPlan::Principal { field, segments } => {
                let principal = self.principal;
                with_segs(segments, |s| principal::value(principal, *field, s))
            }
        }
    }
}

/// The plan of a name outside the exact table.
enum Unlisted {
    /// Shared by every name matching the same glob and regex patterns.
    Cached(Arc<NamePlan>),
    /// Built for this call (more patterns than the cache's key holds).
    Built(Box<NamePlan>),
}

impl std::ops::Deref for Unlisted {
    type Target = NamePlan;
    fn deref(&self) -> &NamePlan {
        match self {
            Unlisted::Cached(p) => p,
            Unlisted::Built(p) => p,
        }
    }
}

/// A condition's counter readings, on the stack up to [`READINGS`].
struct Readings {
    ids: [CounterId; READINGS],
    values: [u64; READINGS],
    len: usize,
    more: Vec<(CounterId, u64)>,
}

impl Readings {
    const fn new() -> Readings {
        Readings {
            ids: [CounterId(0); READINGS],
            values: [0; READINGS],
            len: 0,
            more: Vec::new(),
        }
    }

    fn push(&mut self, id: CounterId, v: u64) {
        if self.len < READINGS {
            self.ids[self.len] = id;
            self.values[self.len] = v;
            self.len += 1;
        } else {
            self.more.push((id, v));
        }
    }

    /// The reading of `id` (0 when not read, as the traced path).
    fn get(&self, id: CounterId) -> u64 {
        match self.ids[..self.len].iter().position(|&c| c == id) {
            Some(i) => self.values[i],
            None => self
                .more
                .iter()
                .find(|(c, _)| *c == id)
                .map_or(0, |&(_, v)| v),
        }
    }
}

fn const_val(c: &Const) -> Val<'_> {
    super::const_val(c)
}

impl super::Evaluator {
    /// The plan of `name` on surface `sp` (its index `s`), given to `f`.
    fn with_plan<R>(&self, s: usize, name: &str, f: impl FnOnce(&NamePlan) -> R) -> R {
        match self.plans.surfaces[s].exact.get(name) {
            Some(p) => f(p),
            None => f(&self.unlisted_plan(s, name)),
        }
    }

    /// The plan of a name no exact pattern lists: it depends only on which
    /// glob and regex blocks and hides match it. Out of line (and not
    /// generic), as the exact names are the common case.
    #[inline(never)]
    fn unlisted_plan(&self, s: usize, name: &str) -> Unlisted {
        let sp = &self.plans.surfaces[s];
        let view = self.view(match s {
            0 => Surface::Tool,
            1 => Surface::Resource,
            _ => Surface::Prompt,
        });
        if sp.patterned_blocks.len() > 128 || sp.patterned_hides.len() > 128 {
            return Unlisted::Built(Box::new(self.name_plan(view, name)));
        }
        let regexes = &self.regexes;
        let mut blocks = 0u128;
        for (bit, &i) in sp.patterned_blocks.iter().enumerate() {
            if view.tools[i]
                .patterns
                .iter()
                .any(|p| pattern_matches(regexes, p, name))
            {
                blocks |= 1 << bit;
            }
        }
        let mut hides = 0u128;
        for (bit, &i) in sp.patterned_hides.iter().enumerate() {
            if pattern_matches(regexes, &view.hidden[i].pattern, name) {
                hides |= 1 << bit;
            }
        }
        let cached = sp
            .dynamic
            .lock()
            .unwrap_or_else(|e| e.into_inner())
            .get(&(blocks, hides))
            .cloned();
        Unlisted::Cached(match cached {
            Some(p) => p,
            None => {
                let p = Arc::new(self.name_plan(view, name));
                sp.dynamic
                    .lock()
                    .unwrap_or_else(|e| e.into_inner())
                    .insert((blocks, hides), Arc::clone(&p));
                p
            }
        })
    }

    /// A plan built for `name` (outside the exact table).
    fn name_plan(&self, view: &ServerPolicy, name: &str) -> NamePlan {
        Tables {
            meta: self.meta,
            regexes: &self.regexes,
            paths: &self.plans.paths,
            firsts: &self.plans.firsts,
            partitions: &self.plans.partitions,
            rules: &self.plans.rules,
        }
        .name_plan(view, name)
    }

    /// The hide entry that hides the plan's name from this caller.
    fn hidden_planned(
        &self,
        s: usize,
        plan: &NamePlan,
        principal: Option<&Principal>,
    ) -> Option<RuleId> {
        let sp = &self.plans.surfaces[s];
        for &i in plan.hides.iter() {
            let h = &sp.hides[i as usize];
            match &h.when {
                None => return Some(h.rule),
                Some(e) => {
                    // A hide condition reads principal paths only (checked):
                    // evaluated against a call without arguments.
                    let mut args = Args::new(&self.plans, &self.plans.none, principal, None);
                    if self.cexpr(e, &mut args, &Readings::new()) {
                        return Some(h.rule);
                    }
                }
            }
        }
        None
    }

    /// The counter `id` partitioned for this call; None when it counts per
    /// a principal path the caller lacks.
    fn counter_planned(
        &self,
        id: CounterId,
        args: &mut Args<'_, '_>,
        env: &Env<'_>,
    ) -> Option<CounterRef> {
        let spec = &self.meta.counters[id.0 as usize];
        let partition = match &self.plans.partitions[id.0 as usize] {
            PartitionPlan::Global => 0,
            PartitionPlan::Session => u128::from(env.session),
            PartitionPlan::Arg(p) => ops::partition_of(args.value(*p)),
            PartitionPlan::Principal(field, segs) => {
                with_segs(segs, |s| principal::partition(env.principal, *field, s))?
            }
        };
        Some(CounterRef { spec, partition })
    }

    /// Reads the counters of `cond` for rule `id`; Err is the decision
    /// when one cannot be read.
    fn readings_planned(
        &self,
        cond: &Cond,
        id: RuleId,
        args: &mut Args<'_, '_>,
        env: &Env<'_>,
    ) -> Result<Readings, Decision> {
        let mut r = Readings::new();
        for &c in cond.counters.iter() {
            let Some(cref) = self.counter_planned(c, args, env) else {
                return Err(Decision::deny(
                    Outcome::Check,
                    id,
                    self.texts[id.0 as usize].no_partition,
                ));
            };
            match env.read(cref) {
                Some(v) => r.push(c, v),
                None => return Err(Decision::state_unavailable(id)),
            }
        }
        Ok(r)
    }

    fn cexpr(&self, e: &CExpr, args: &mut Args<'_, '_>, r: &Readings) -> bool {
        match e {
            CExpr::Bool(b) => *b,
            CExpr::And(v) => v.iter().all(|e| self.cexpr(e, args, r)),
            CExpr::Or(v) => v.iter().any(|e| self.cexpr(e, args, r)),
            CExpr::Not(e) => !self.cexpr(e, args, r),
            CExpr::Test(t) => self.ctest(t, args, r),
        }
    }

    fn operand<'x, 'a: 'x>(
        o: &'x COperand,
        args: &mut Args<'_, 'a>,
        r: &Readings,
        buf: &'x mut [u8; 20],
    ) -> Option<Val<'x>> {
        match o {
            COperand::Path(p) => args.value(*p),
            COperand::Const(c) => Some(const_val(c)),
            COperand::Counter(c) => Some(Val::Num(num_from_u64(r.get(*c), buf))),
            COperand::Len(p) => ops::len(args.value(*p)).map(|n| Val::Num(num_from_u64(n, buf))),
        }
    }

    fn ctest(&self, t: &CTest, args: &mut Args<'_, '_>, r: &Readings) -> bool {
        let (mut ba, mut bb) = ([0u8; 20], [0u8; 20]);
        match t {
            CTest::Cmp(op, a, b) => {
                let a = Self::operand(a, args, r, &mut ba);
                let b = Self::operand(b, args, r, &mut bb);
                match op {
                    CmpOp::Eq => ops::eq2(a, b),
                    CmpOp::Ne => ops::ne2(a, b),
                    CmpOp::Lt => ops::lt(a, b),
                    CmpOp::Le => ops::le(a, b),
                    CmpOp::Gt => ops::gt(a, b),
                    CmpOp::Ge => ops::ge(a, b),
                }
            }
            CTest::In(a, list, negated) => {
                let a = Self::operand(a, args, r, &mut ba);
                // `ops::one_of` / `ops::not_one_of` over the constants.
                a.is_some_and(|a| list.iter().any(|c| ops::equal(a, const_val(c))) != *negated)
            }
            CTest::Contains(a, b) => ops::contains(
                Self::operand(a, args, r, &mut ba),
                Self::operand(b, args, r, &mut bb),
            ),
            CTest::StartsWith(a, b) => ops::starts_with(
                Self::operand(a, args, r, &mut ba),
                Self::operand(b, args, r, &mut bb),
            ),
            CTest::EndsWith(a, b) => ops::ends_with(
                Self::operand(a, args, r, &mut ba),
                Self::operand(b, args, r, &mut bb),
            ),
            CTest::Matches(a, re) => {
                let re = &self.regexes[*re];
                ops::matches(Self::operand(a, args, r, &mut ba), |s| re.is_match(s))
            }
            CTest::Exists(a, expect) => ops::exists(Self::operand(a, args, r, &mut ba)) == *expect,
            CTest::Path(a, op, pattern, invalid) => portcullis_core::path::test(
                Self::operand(a, args, r, &mut ba),
                *op,
                pattern,
                *invalid,
            ),
        }
    }

    /// [`Policy::decide`](portcullis_core::policy::Policy::decide) (and
    /// `decide_approved` when `approved`) through the plans.
    pub(super) fn decide_planned(
        &self,
        call: &ToolCall<'_>,
        env: &Env<'_>,
        ticket: &mut Ticket,
        approved: bool,
    ) -> Decision {
        ticket.clear();
        let s = surface_index(call.surface());
        let sp = &self.plans.surfaces[s];
        if !sp.governs {
            return Decision::ALLOW;
        }
        self.with_plan(s, call.name(), |plan| {
            if let Some(rule) = self.hidden_planned(s, plan, env.principal) {
                return Decision::deny(Outcome::Hidden, rule, "");
            }
            let Some(rules) = plan.rules.as_deref() else {
                return Decision::deny(Outcome::NotPermitted, sp.default_rule, "");
            };
            let mut args = Args::new(&self.plans, call, env.principal, Some(plan));
            for &id in rules {
                let Some(check) = &self.plans.rules[id.0 as usize].check else {
                    continue;
                };
                let readings = match self.readings_planned(check, id, &mut args, env) {
                    Ok(r) => r,
                    Err(d) => return d,
                };
                if self.cexpr(&check.expr, &mut args, &readings) {
                    return Decision::deny(Outcome::Check, id, self.texts[id.0 as usize].check);
                }
            }
            let mut asked = None;
            if !approved {
                for &id in rules {
                    let Some(approve) = &self.plans.rules[id.0 as usize].approve else {
                        continue;
                    };
                    let readings = match self.readings_planned(approve, id, &mut args, env) {
                        Ok(r) => r,
                        Err(d) => return d,
                    };
                    if self.cexpr(&approve.expr, &mut args, &readings) {
                        asked = Some(Decision::approve(id, self.texts[id.0 as usize].approve));
                        break;
                    }
                }
            }
            // A table sized for the common single limit (the `"*"` rule),
            // else the largest: each size is one more copy of the
            // reservation code.
            let mut decision = match plan.limits {
                0 => asked.unwrap_or(Decision::ALLOW),
                1 => self.reserve(Limits::<1>::new(), rules, &mut args, env, asked, ticket),
                _ => self.reserve(Limits::<8>::new(), rules, &mut args, env, asked, ticket),
            };
            if decision.outcome == Outcome::Allowed {
                decision.idempotency = plan.idempotency;
            }
            decision
        })
    }

    /// The limit phase: every limit of `rules` pushed, then reserved (or
    /// peeked at for a call `asked` about).
    #[inline(never)]
    fn reserve<const N: usize>(
        &self,
        mut limits: Limits<N>,
        rules: &[RuleId],
        args: &mut Args<'_, '_>,
        env: &Env<'_>,
        asked: Option<Decision>,
        ticket: &mut Ticket,
    ) -> Decision {
        for &id in rules {
            let Some(limit) = &self.plans.rules[id.0 as usize].limit else {
                continue;
            };
            let text: &RuleText = &self.texts[id.0 as usize];
            let Some(counter) = self.counter_planned(limit.counter, args, env) else {
                return Decision::deny(Outcome::Limit, id, text.no_partition);
            };
            let amount = match limit.amount {
                Ok(n) => n,
                Err(p) => match ops::amount(args.value(p)) {
                    Ok(n) => n,
                    Err(fault) => return text.bad_amount(fault, id),
                },
            };
            limits.push(id, counter, amount, limit.max, text.limit);
        }
        limits.decide(env, asked, ticket)
    }

    /// Whether `name` on `surface` is hidden from this caller.
    pub(super) fn hidden_on_planned(
        &self,
        surface: Surface,
        name: &str,
        principal: Option<&Principal>,
    ) -> bool {
        let s = surface_index(surface);
        self.with_plan(s, name, |plan| {
            self.hidden_planned(s, plan, principal).is_some()
        })
    }

    /// [`Policy::is_listed_on`](portcullis_core::policy::Policy::is_listed_on).
    pub(super) fn listed_on_planned(
        &self,
        surface: Surface,
        name: &str,
        principal: Option<&Principal>,
    ) -> bool {
        let s = surface_index(surface);
        self.with_plan(s, name, |plan| {
            if self.hidden_planned(s, plan, principal).is_some() {
                return false;
            }
            surface == Surface::Tool || self.plans.surfaces[s].default_allow || plan.listed_open
        })
    }

    /// [`Policy::path_args`](portcullis_core::policy::Policy::path_args).
    pub(super) fn path_args_planned(&self, tool: &str, each: &mut dyn FnMut(&[&str])) {
        self.with_plan(0, tool, |plan| {
            for a in plan.path_args.iter() {
                with_segs(a, |s| each(s));
            }
        });
    }

    /// [`Policy::spend`](portcullis_core::policy::Policy::spend).
    pub(super) fn spend_planned(
        &self,
        call: &ToolCall<'_>,
        env: &Env<'_>,
        out: &mut portcullis_core::spend::Budgets,
    ) {
        use portcullis_core::spend::{Budget, WindowBudget};
        // Only tools are paid for.
        if call.surface() != Surface::Tool {
            return;
        }
        self.with_plan(0, call.name(), |plan| {
            // A hidden tool is denied before it can ever be charged.
            if plan.spend.is_empty() || self.hidden_planned(0, plan, env.principal).is_some() {
                return;
            }
            let mut args = Args::new(&self.plans, call, env.principal, Some(plan));
            for &id in plan.spend.iter() {
                let Some(sp) = &self.ir.rule(id).spend else {
                    continue;
                };
                let text = &self.texts[id.0 as usize];
                let window = sp
                    .window
                    .and_then(|(c, max)| Some((self.counter_planned(c, &mut args, env)?, max)));
                out.push(Budget {
                    rule: id,
                    currency: text.spend_currency,
                    per_call: sp.per_call,
                    // A window per a principal path the caller lacks has no
                    // counter: the budget refuses every price it covers.
                    window: window.map(|(counter, max)| WindowBudget { counter, max }),
                    message: text.spend_message,
                    no_partition: (sp.window.is_some() && window.is_none())
                        .then_some(text.spend_no_partition),
                });
            }
        });
    }
}

#[cfg(test)]
mod tests {
    use portcullis_core::Principal;
    use portcullis_core::counters::{Counters, MemoryCounters, Ticket, UnixMillis};
    use portcullis_core::json::Strictness;
    use portcullis_core::policy::{Env, FailMode, Policy};

    use super::super::Evaluator;
    use super::*;

    const POLICY: &str = r#"server s {
  default deny
  hide delete_*, "*_webhook"
  hide admin_* unless "admins" in principal.groups

  tool create_charge {
    deny "big" when args.amount > 50000
    deny "currency" unless args.currency in ["usd", "eur"]
    limit sum(args.amount) <= 100000 per day -> "cap"
    limit 3 per 1h by args.customer.id -> "per customer"
  }
  tool create_* {
    deny "no zero" unless args.amount >= 1
  }
  tool list_* { }
  tool admin_reset { }
  tool search {
    deny "long" when len(args.q) > 5
    deny "x" when args.q matches /^x/i
    deny "nested" when args.Filter.Kind == "secret"
  }
  tool * {
    limit 20 per minute -> "rate"
  }
}
"#;

    fn evaluator() -> Evaluator {
        let out = crate::compile(&[crate::Input {
            server: "s".into(),
            path: "s.policy".into(),
            text: POLICY.into(),
        }]);
        assert_eq!(out.policies.len(), 1, "{:?}", out.diagnostics);
        Evaluator::new(out.policies[0].clone(), &out.sources)
    }

    /// The planned decisions (`Policy`) and the traced walk of the IR
    /// decide the same on every kind of call: exact names, names only a
    /// glob lists, hidden (always, and per caller), unknown; conditions on
    /// nested, case-folded, escaped, repeated, missing and wrongly typed
    /// arguments; limits per argument, with their counters filling up.
    #[test]
    fn planned_decisions_agree_with_the_traced_walk() {
        let ev = evaluator();
        let calls: &[(&str, &str)] = &[
            (
                "create_charge",
                r#"{"amount": 100, "currency": "usd", "customer": {"id": "c1"}}"#,
            ),
            ("create_charge", r#"{"AMOUNT": 60000, "Currency": "usd"}"#),
            ("create_charge", r#"{"amount": 100, "currency": "gbp"}"#),
            (
                "create_charge",
                r#"{"amount": 0, "currency": "eur", "customer": {"ID": "c2"}}"#,
            ),
            (
                "create_charge",
                r#"{"\u0061mount": 5, "currency": "usd", "customer": "c3"}"#,
            ),
            (
                "create_charge",
                r#"{"amount": 5, "amount": 90000, "currency": "usd"}"#,
            ),
            ("create_charge", r#"{"amount": "5", "currency": ["usd"]}"#),
            ("create_payout", r#"{"amount": 0}"#),
            ("create_payout", r#"{"amount": 7}"#),
            ("create_refund", r#"{}"#),
            ("list_charges", r#"{}"#),
            ("delete_customer", r#"{}"#),
            ("stripe_webhook", r#"{}"#),
            ("admin_reset", r#"{}"#),
            ("admin_other", r#"{}"#),
            ("search", r#"{"q": "abc"}"#),
            ("search", r#"{"q": "abcdefgh"}"#),
            ("search", r#"{"Q": "Xyz"}"#),
            ("search", r#"{"q": "ok", "filter": {"kind": "secret"}}"#),
            ("search", r#"{"q": "ok", "FILTER": {"KIND": "public"}}"#),
            ("unknown", r#"{"amount": 1}"#),
            ("", r#"{}"#),
        ];
        let admin = Principal::from_claims(
            br#"{"sub":"a","iss":"https://idp.example","groups":["admins"]}"#.to_vec(),
        )
        .unwrap();
        let (planned, traced) = (MemoryCounters::new(), MemoryCounters::new());
        let mut seen = std::collections::BTreeSet::new();
        for round in 0..12i64 {
            for (i, (tool, args)) in calls.iter().enumerate() {
                let call = ToolCall::new(tool, args.as_bytes(), Strictness::LENIENT).unwrap();
                let principal = (i % 2 == 0).then_some(&admin);
                let env = |counters| Env {
                    counters,
                    now: UnixMillis(1_768_474_800_000 + round * 7_000),
                    session: 1,
                    fail_mode: FailMode::Closed,
                    principal,
                };
                let (ea, eb) = (
                    env(&planned as &dyn Counters),
                    env(&traced as &dyn Counters),
                );
                assert_eq!(
                    ev.is_hidden(tool, principal),
                    ev.hiding(tool, principal).is_some(),
                    "{tool}"
                );
                let approved = round % 3 == 2;
                let (mut ta, mut tb) = (Ticket::EMPTY, Ticket::EMPTY);
                let (a, b) = if approved {
                    (
                        ev.decide_approved(&call, &ea, &mut ta),
                        ev.decide_approved_traced(&call, &eb, &mut tb, &mut |_| {}),
                    )
                } else {
                    (
                        ev.decide(&call, &ea, &mut ta),
                        ev.decide_traced(&call, &eb, &mut tb, &mut |_| {}),
                    )
                };
                assert_eq!(
                    (a.outcome, a.rule, a.message, a.idempotency),
                    (b.outcome, b.rule, b.message, b.idempotency),
                    "{tool} {args} round {round}"
                );
                seen.insert(format!("{:?}", a.outcome));
                planned.commit(&ta);
                traced.commit(&tb);
            }
        }
        for kind in ["Allowed", "Check", "Hidden", "NotPermitted", "Limit"] {
            assert!(seen.contains(kind), "never {kind}: {seen:?}");
        }
    }

    /// Names outside the exact table share the plan of the patterns they
    /// match: built once per set, then found again.
    #[test]
    fn names_matched_by_the_same_patterns_share_a_plan() {
        let ev = evaluator();
        let sp = &ev.plans.surfaces[0];
        assert!(sp.exact.contains_key("create_charge"));
        assert!(!sp.exact.contains_key("create_payout"));
        for name in [
            "create_payout",
            "create_refund",
            "list_a",
            "list_b",
            "nope",
            "x",
        ] {
            ev.with_plan(0, name, |_| ());
        }
        // create_*; list_*; none (both unknown names).
        assert_eq!(sp.dynamic.lock().unwrap().len(), 3);
        let rules = |name: &str| ev.with_plan(0, name, |p| p.rules.as_deref().map(<[_]>::to_vec));
        assert_eq!(rules("create_payout"), ev.rules_for("create_payout"));
        assert_eq!(rules("list_a"), ev.rules_for("list_a"));
        assert_eq!(rules("nope"), None);
        assert_eq!(rules("create_charge"), ev.rules_for("create_charge"));
    }
}
