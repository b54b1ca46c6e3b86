//! The reference evaluator: a small, direct interpreter over the IR.
//!
//! It serves `-c FILE`, `validate`, `test` and `explain`, and it is the
//! oracle the generated code is tested against. Both it and the generated
//! code call the runtime's `ops` for every operator and `Limits` for the
//! counter phase.
//!
//! It decides in two ways that must agree (tested): the traced path
//! ([`Evaluator::decide_traced`], `explain`, `test` coverage) walks the IR
//! as written, looks arguments up by path for every test and allocates
//! freely, favouring being obviously correct; the [`Policy`] entry points
//! (`decide`, `spend`, `is_hidden`, ...: what the proxy calls with
//! `-c FILE`) run plans prepared when the policy is loaded (`eval/plan.rs`),
//! which read the call as the generated code does and allocate nothing.

mod plan;

use portcullis_core::call::{Surface, ToolCall};
use portcullis_core::counters::{CounterRef, CounterSpec, Scope, Ticket};
use portcullis_core::idempotency::IdempotencySpec;
use portcullis_core::json::{JStr, Num, Val};
use portcullis_core::ops::{self, AmountFault};
use portcullis_core::policy::{
    ApprovalConfig, ApprovalSpec, Decision, Env, Limits, Outcome, Policy, PolicyMeta, RuleId,
    RuleInfo,
};
use portcullis_core::spend::Budgets;

use portcullis_core::principal::{self, Principal};

use crate::ir::{
    Amount, ArgPath, CmpOp, Const, CounterId, Expr, NamePattern, Operand, Partition, Posture, Root,
    ServerPolicy, TestKind, Tool,
};
use crate::source::SourceMap;

/// Strings a decision returns must be `'static`; a policy loaded at run time
/// keeps its strings for the life of the process (a few KiB per load).
fn leak(s: &str) -> &'static str {
    Box::leak(s.to_string().into_boxed_str())
}

struct RuleText {
    check: &'static str,
    approve: &'static str,
    /// The denial when a counter the rule uses counts per a principal path
    /// the caller lacks.
    no_partition: &'static str,
    limit: &'static str,
    missing: &'static str,
    invalid: &'static str,
    spend_message: &'static str,
    /// The refusal of a price when the budget counts per a principal path
    /// the caller lacks.
    spend_no_partition: &'static str,
    spend_currency: Option<&'static str>,
}

impl RuleText {
    /// The denial of a limit whose amount argument is missing or invalid.
    fn bad_amount(&self, fault: AmountFault, id: RuleId) -> Decision {
        let message = match fault {
            AmountFault::Missing => self.missing,
            AmountFault::Invalid => self.invalid,
        };
        Decision::deny(Outcome::BadAmount, id, message)
    }
}

/// A policy interpreted from its IR.
pub struct Evaluator {
    ir: ServerPolicy,
    /// The policy as it decides resources and prompts ([`ServerPolicy::view`]).
    resource_view: ServerPolicy,
    prompt_view: ServerPolicy,
    meta: &'static PolicyMeta,
    texts: Vec<RuleText>,
    regexes: Vec<regex::Regex>,
    results: &'static [portcullis_core::results::ResultRule],
    /// The patterns of the resource and prompt blocks, as written, in
    /// block order ([`Policy::block_on`]).
    block_texts: [Vec<Vec<&'static str>>; 2],
    /// Which blocks list a name, per surface (tools, resources, prompts).
    blocks: [BlockIndex; 3],
    /// The decision path, prepared (`eval/plan.rs`).
    plans: plan::Plans,
}

/// Which blocks of a policy list a name, found without trying every
/// pattern of every block: a block whose patterns are all exact names is
/// found by a hash lookup of the name, the other blocks (globs, regexes,
/// `*`) are tried in order. Gives what [`ServerPolicy::blocks_for`] gives,
/// in the same order; with 310 exact tool blocks, trying them all was a
/// fifth of the reference evaluator's time per forwarded call.
#[derive(Debug, Default)]
struct BlockIndex {
    /// Exact name -> indices of the blocks listing it, ascending.
    exact: std::collections::HashMap<String, Vec<usize>>,
    /// Blocks with any other pattern, ascending.
    patterned: Vec<usize>,
}

impl BlockIndex {
    fn new(p: &ServerPolicy) -> BlockIndex {
        let mut ix = BlockIndex::default();
        for (i, block) in p.tools.iter().enumerate() {
            if block
                .patterns
                .iter()
                .all(|pat| matches!(pat, NamePattern::Exact(_)))
            {
                for pat in &block.patterns {
                    let list = ix.exact.entry(pat.text().to_string()).or_default();
                    if list.last() != Some(&i) {
                        list.push(i);
                    }
                }
            } else {
                ix.patterned.push(i);
            }
        }
        ix
    }

    /// The blocks of `p` (the policy this index was built from) that list
    /// `name`, in order.
    fn blocks<'a>(&self, p: &'a ServerPolicy, name: &str) -> Vec<&'a Tool> {
        let hits = self.exact.get(name).map_or(&[][..], Vec::as_slice);
        let tried = self
            .patterned
            .iter()
            .copied()
            .filter(|&i| p.tools[i].patterns.iter().any(|pat| pat.matches(name)));
        // Both lists ascend and are disjoint: merge them into block order.
        let mut out: Vec<&Tool> = Vec::with_capacity(hits.len() + 1);
        let mut hits = hits.iter().copied().peekable();
        for i in tried {
            while let Some(h) = hits.next_if(|&h| h < i) {
                out.push(&p.tools[h]);
            }
            out.push(&p.tools[i]);
        }
        out.extend(hits.map(|h| &p.tools[h]));
        out
    }
}

impl std::fmt::Debug for Evaluator {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Evaluator")
            .field("server", &self.ir.name)
            .finish()
    }
}

impl Evaluator {
    /// Builds an evaluator for a checked policy.
    pub fn new(ir: ServerPolicy, sources: &SourceMap) -> Evaluator {
        let meta = Box::leak(Box::new(meta_for(&ir, sources)));
        let texts = ir
            .rules
            .iter()
            .map(|r| {
                let (missing, invalid) = match r.limit.as_ref().map(|l| &l.amount) {
                    Some(Amount::Arg {
                        missing_message,
                        invalid_message,
                        ..
                    }) => (leak(missing_message), leak(invalid_message)),
                    _ => ("", ""),
                };
                RuleText {
                    no_partition: no_partition_message(&ir, r).map_or("", |m| leak(&m)),
                    check: r.check.as_ref().map_or("", |c| leak(&c.message)),
                    approve: r.approve.as_ref().map_or("", |a| leak(&a.message)),
                    limit: r.limit.as_ref().map_or("", |l| leak(&l.message)),
                    missing,
                    invalid,
                    spend_message: r.spend.as_ref().map_or("", |s| leak(&s.message)),
                    spend_no_partition: no_spend_partition_message(&ir, r).map_or("", |m| leak(&m)),
                    spend_currency: r
                        .spend
                        .as_ref()
                        .and_then(|s| s.currency.as_deref())
                        .map(|c| {
                            portcullis_core::spend::currency(c).map_or_else(|| leak(c), |k| k.code)
                        }),
                }
            })
            .collect();
        let regexes: Vec<regex::Regex> = ir
            .regexes
            .iter()
            .map(|r| {
                regex::Regex::new(&r.translated).unwrap_or_else(|_| {
                    regex::Regex::new("[^\\s\\S]").expect("the never-matching regex compiles")
                })
            })
            .collect();
        let results = crate::results::to_core(&ir, sources);
        let texts_of = |r: &crate::ir::SurfaceRules| {
            r.blocks
                .iter()
                .map(|b| b.patterns.iter().map(|p| leak(p.text())).collect())
                .collect()
        };
        let block_texts = [texts_of(&ir.resources), texts_of(&ir.prompts)];
        let resource_view = ir.view(Surface::Resource);
        let prompt_view = ir.view(Surface::Prompt);
        let blocks = [
            BlockIndex::new(&ir),
            BlockIndex::new(&resource_view),
            BlockIndex::new(&prompt_view),
        ];
        let plans = plan::Plans::new(&ir, [&ir, &resource_view, &prompt_view], meta, &regexes);
        Evaluator {
            plans,
            block_texts,
            resource_view,
            prompt_view,
            blocks,
            ir,
            meta,
            texts,
            regexes,
            results,
        }
    }

    /// The IR this evaluator runs.
    pub fn ir(&self) -> &ServerPolicy {
        &self.ir
    }

    /// The policy as it decides requests on `surface`.
    pub fn view(&self, surface: Surface) -> &ServerPolicy {
        match surface {
            Surface::Tool => &self.ir,
            Surface::Resource => &self.resource_view,
            Surface::Prompt => &self.prompt_view,
        }
    }

    /// The blocks of [`Evaluator::view`]`(surface)` that list `name`, in
    /// order (what [`ServerPolicy::blocks_for`] gives, through the index).
    fn blocks_on(&self, surface: Surface, name: &str) -> Vec<&Tool> {
        let i = match surface {
            Surface::Tool => 0,
            Surface::Resource => 1,
            Surface::Prompt => 2,
        };
        self.blocks[i].blocks(self.view(surface), name)
    }

    /// The counter `id` partitioned for this call; None when it counts per
    /// a principal path the caller lacks (the call is denied: fail closed).
    fn counter_ref(&self, id: CounterId, call: &ToolCall<'_>, env: &Env<'_>) -> Option<CounterRef> {
        let spec = &self.meta.counters[id.0 as usize];
        let partition = match &self.ir.counter(id).partition {
            Partition::Global => 0,
            Partition::Session => u128::from(env.session),
            Partition::Arg(p) => match p.root {
                Root::Args => ops::partition_of(arg(call, p)),
                Root::Principal(field) => {
                    let segs: Vec<&str> = p.segments.iter().map(String::as_str).collect();
                    principal::partition(env.principal, field, &segs)?
                }
            },
        };
        Some(CounterRef { spec, partition })
    }

    /// The readings of the counters `e` uses, for rule `id`; Err is the
    /// decision when one cannot be read (a caller without the partition's
    /// value is denied; a failed store is `state_unavailable`).
    fn readings(
        &self,
        e: &Expr,
        id: RuleId,
        call: &ToolCall<'_>,
        env: &Env<'_>,
    ) -> Result<Vec<(CounterId, String)>, Decision> {
        let mut readings = Vec::new();
        for c in e.counters() {
            let Some(cref) = self.counter_ref(c, call, env) else {
                return Err(Decision::deny(
                    Outcome::Check,
                    id,
                    self.texts[id.0 as usize].no_partition,
                ));
            };
            match env.read(cref) {
                Some(v) => readings.push((c, v.to_string())),
                None => return Err(Decision::state_unavailable(id)),
            }
        }
        Ok(readings)
    }

    /// Evaluates an expression; `counters` holds this rule's counter readings.
    /// Every test evaluated is reported to `trace` with the values it saw.
    fn expr(
        &self,
        e: &Expr,
        call: &ToolCall<'_>,
        principal: Option<&Principal>,
        counters: &[(CounterId, String)],
        rule: RuleId,
        trace: &mut dyn FnMut(Trace<'_>),
    ) -> bool {
        match e {
            Expr::Bool(b) => *b,
            Expr::And(v) => v
                .iter()
                .all(|e| self.expr(e, call, principal, counters, rule, trace)),
            Expr::Or(v) => v
                .iter()
                .any(|e| self.expr(e, call, principal, counters, rule, trace)),
            Expr::Not(e) => !self.expr(e, call, principal, counters, rule, trace),
            Expr::Test(t) => {
                let texts: Vec<String> = t
                    .operands()
                    .iter()
                    .map(|o| match o {
                        Operand::Counter(c) => counters
                            .iter()
                            .find(|(id, _)| id == c)
                            .map_or_else(|| "0".to_string(), |(_, v)| v.clone()),
                        Operand::Len(p) => ops::len(value(call, principal, p))
                            .map_or_else(String::new, |n| n.to_string()),
                        _ => String::new(),
                    })
                    .collect();
                let ops_vals: Vec<Option<Val<'_>>> = t
                    .operands()
                    .iter()
                    .zip(&texts)
                    .map(|(o, text)| operand(o, call, principal, text))
                    .collect();
                let a = ops_vals[0];
                let b = ops_vals.get(1).copied().flatten();
                let result = match &t.kind {
                    TestKind::Cmp { op, .. } => match op {
                        CmpOp::Eq => ops::eq2(a, b),
                        CmpOp::Ne => ops::ne2(a, b),
                        CmpOp::Lt => ops::lt(a, b),
                        CmpOp::Le => ops::le(a, b),
                        CmpOp::Gt => ops::gt(a, b),
                        CmpOp::Ge => ops::ge(a, b),
                    },
                    TestKind::In { list, negated, .. } => {
                        let list: Vec<Val<'_>> = list.iter().map(const_val).collect();
                        if *negated {
                            ops::not_one_of(a, &list)
                        } else {
                            ops::one_of(a, &list)
                        }
                    }
                    TestKind::Contains { .. } => ops::contains(a, b),
                    TestKind::StartsWith { .. } => ops::starts_with(a, b),
                    TestKind::EndsWith { .. } => ops::ends_with(a, b),
                    TestKind::Matches { regex, .. } => {
                        let re = &self.regexes[regex.0 as usize];
                        ops::matches(a, |s| re.is_match(s))
                    }
                    TestKind::Exists { expect, .. } => ops::exists(a) == *expect,
                    TestKind::Path {
                        op,
                        pattern,
                        invalid,
                        ..
                    } => eval_path(a, *op, pattern, *invalid),
                };
                let seen: Vec<Option<String>> = t
                    .operands()
                    .iter()
                    .zip(&ops_vals)
                    .map(|(o, v)| match o {
                        Operand::Const(_) => None,
                        _ => Some(v.map_or_else(|| "missing".to_string(), show_val)),
                    })
                    .collect();
                // A path argument: what it was compared as.
                let seen = match (&t.kind, a, seen.first()) {
                    (TestKind::Path { .. }, Some(v), Some(Some(shown)))
                        if !matches!(v, Val::Null) =>
                    {
                        let as_path = match v {
                            Val::Str(s) => portcullis_core::path::normalize(
                                &s.chars().collect::<String>(),
                            )
                            .map_or_else(
                                |e| {
                                    format!(
                                        "cannot be normalised: {}; the rule refuses the call",
                                        e.kind
                                    )
                                },
                                |p| format!("normalised {p}"),
                            ),
                            _ => "not a string: the rule refuses the call".to_string(),
                        };
                        vec![Some(format!("{shown} ({as_path})"))]
                    }
                    _ => seen,
                };
                trace(Trace::Test {
                    rule,
                    test: t,
                    seen,
                    result,
                });
                result
            }
        }
    }

    /// The rules that apply to `tool`, in order, or None when the tool is unlisted
    /// under a default-deny policy.
    pub fn rules_for(&self, tool: &str) -> Option<Vec<RuleId>> {
        self.rules_on(Surface::Tool, tool)
    }

    /// [`Evaluator::rules_for`] on any surface (`name`: a tool, a normalised
    /// resource URI, a prompt).
    pub fn rules_on(&self, surface: Surface, name: &str) -> Option<Vec<RuleId>> {
        let view = self.view(surface);
        let mut rules: Vec<RuleId> = Vec::new();
        let mut listed = false;
        for block in self.blocks_on(surface, name) {
            listed = true;
            rules.extend(&block.rules);
        }
        if !listed && view.default == Posture::Deny {
            return None;
        }
        rules.extend(&view.wildcard);
        Some(rules)
    }
}

/// A `path()` test, written plainly (a fresh string per call): missing is
/// false; not a string or not normalisable is `invalid`.
fn eval_path(v: Option<Val<'_>>, op: crate::ir::PathOp, pattern: &str, invalid: bool) -> bool {
    match v {
        None | Some(Val::Null) => false,
        Some(Val::Str(s)) => {
            let text: String = s.chars().collect();
            if text.len() > portcullis_core::path::MAX_PATH_LEN {
                return invalid;
            }
            portcullis_core::path::normalize(&text).map_or(invalid, |p| op.matches(pattern, &p))
        }
        Some(_) => invalid,
    }
}

/// The argument at `p` of `call` (None for a principal path).
pub fn arg<'a>(call: &ToolCall<'a>, p: &ArgPath) -> Option<Val<'a>> {
    if p.is_principal() {
        return None;
    }
    let segs: Vec<&str> = p.segments.iter().map(String::as_str).collect();
    call.arg(&segs)
}

/// The value at `p`: an argument of `call`, or a principal path of the
/// caller (missing when the caller is unknown or lacks the claim).
pub fn value<'a>(
    call: &ToolCall<'a>,
    principal: Option<&'a Principal>,
    p: &ArgPath,
) -> Option<Val<'a>> {
    match p.root {
        Root::Args => arg(call, p),
        Root::Principal(field) => {
            let segs: Vec<&str> = p.segments.iter().map(String::as_str).collect();
            principal::value(principal, field, &segs)
        }
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

fn operand<'a>(
    o: &'a Operand,
    call: &ToolCall<'a>,
    principal: Option<&'a Principal>,
    text: &'a str,
) -> Option<Val<'a>> {
    match o {
        Operand::Arg(p) => value(call, principal, p),
        Operand::Const(c) => Some(const_val(c)),
        Operand::Counter(_) | Operand::Len(_) => Num::parse(text.as_bytes()).map(Val::Num),
    }
}

impl Policy for Evaluator {
    fn meta(&self) -> &PolicyMeta {
        self.meta
    }

    fn is_hidden(&self, tool: &str, principal: Option<&Principal>) -> bool {
        self.hidden_on_planned(Surface::Tool, tool, principal)
    }

    fn result_rules(&self) -> &[portcullis_core::results::ResultRule] {
        self.results
    }

    fn path_args(&self, tool: &str, each: &mut dyn FnMut(&[&str])) {
        self.path_args_planned(tool, each);
    }

    fn governs(&self, surface: Surface) -> bool {
        self.ir.governs(surface)
    }

    fn is_hidden_on(&self, surface: Surface, name: &str, principal: Option<&Principal>) -> bool {
        self.hidden_on_planned(surface, name, principal)
    }

    fn is_listed_on(&self, surface: Surface, name: &str, principal: Option<&Principal>) -> bool {
        self.listed_on_planned(surface, name, principal)
    }

    fn block_on(&self, surface: Surface, name: &str) -> Option<&'static str> {
        let texts = match surface {
            Surface::Tool => return None,
            Surface::Resource => &self.block_texts[0],
            Surface::Prompt => &self.block_texts[1],
        };
        self.view(surface)
            .tools
            .iter()
            .zip(texts)
            .find_map(|(b, t)| {
                b.patterns
                    .iter()
                    .position(|p| p.matches(name))
                    .map(|i| t[i])
            })
    }

    fn decide(&self, call: &ToolCall<'_>, env: &Env<'_>, ticket: &mut Ticket) -> Decision {
        self.decide_planned(call, env, ticket, false)
    }

    fn decide_approved(&self, call: &ToolCall<'_>, env: &Env<'_>, ticket: &mut Ticket) -> Decision {
        self.decide_planned(call, env, ticket, true)
    }

    fn spend(&self, call: &ToolCall<'_>, env: &Env<'_>, out: &mut Budgets) {
        self.spend_planned(call, env, out);
    }
}

/// One step of an evaluation, for `explain` and test coverage.
#[derive(Debug)]
pub enum Trace<'a> {
    /// The tool is hidden by this entry.
    Hidden {
        /// The hide entry's rule.
        rule: RuleId,
    },
    /// A conditional hide entry matched the tool but its condition did not
    /// hold for this caller (its tests were reported just before).
    NotHidden {
        /// The hide entry's rule.
        rule: RuleId,
    },
    /// The tool is listed by no block (the default posture applies).
    Unlisted,
    /// The rules that apply, in order.
    Rules {
        /// Rule ids.
        rules: Vec<RuleId>,
    },
    /// A rule's condition was evaluated.
    Check {
        /// The rule.
        rule: RuleId,
        /// Whether it denied.
        denied: bool,
    },
    /// A test inside a condition was evaluated.
    Test {
        /// The rule.
        rule: RuleId,
        /// The test.
        test: &'a crate::ir::Test,
        /// What each non-constant operand was (JSON text, or `missing`).
        seen: Vec<Option<String>>,
        /// Its result.
        result: bool,
    },
    /// A rule's approval condition was evaluated.
    Approve {
        /// The rule.
        rule: RuleId,
        /// Whether it asks for approval.
        asked: bool,
    },
    /// A limit counts per a principal path the caller lacks: denied.
    NoPartition {
        /// The rule.
        rule: RuleId,
    },
    /// A limit's amount and counter (before the reservation).
    Limit {
        /// The rule.
        rule: RuleId,
        /// The amount, or why it could not be read.
        amount: Result<u64, AmountFault>,
        /// The counter's value now.
        current: Option<u64>,
    },
}

/// A value as JSON text (for traces).
pub fn show_val(v: Val<'_>) -> String {
    match v {
        Val::Null => "null".into(),
        Val::Bool(b) => b.to_string(),
        Val::Num(n) => format!("{n:?}"),
        Val::Str(s) => format!("{:?}", s.chars().collect::<String>()),
        Val::Array(a) => String::from_utf8_lossy(a.as_bytes()).into_owned(),
        Val::Object(o) => String::from_utf8_lossy(o.as_bytes()).into_owned(),
    }
}

/// The denial message of rule `r` when a counter it reads or reserves counts
/// per a principal path (`by principal.sub`) and the caller has no such
/// value; None when no counter of the rule is partitioned by the principal.
/// Shared with code generation, which embeds the same text.
pub fn no_partition_message(ir: &ServerPolicy, r: &crate::ir::Rule) -> Option<String> {
    let mut counters: Vec<CounterId> = r.limit.iter().map(|l| l.counter).collect();
    if let Some(c) = &r.check {
        counters.extend(c.deny_when.counters());
    }
    // Named after the rule's own message (a limit's, else its check's),
    // which every front end and `translate` keep, unlike rule names.
    let base = r
        .limit
        .as_ref()
        .map(|l| l.message.as_str())
        .or(r.check.as_ref().map(|c| c.message.as_str()))
        .unwrap_or(&r.name);
    counters
        .into_iter()
        .find_map(|c| match &ir.counter(c).partition {
            Partition::Arg(p) if p.is_principal() => Some(format!(
                "{base}: the limit counts per {} and the caller has none",
                p.display()
            )),
            _ => None,
        })
}

/// Why a price is refused when rule `r`'s spend window counts per a
/// principal path (`spend <= $50 per day by principal.sub`) and the caller
/// has no such value; None when its window is not per caller. Shared with
/// code generation, which embeds the same text.
pub fn no_spend_partition_message(ir: &ServerPolicy, r: &crate::ir::Rule) -> Option<String> {
    let sp = r.spend.as_ref()?;
    let (c, _) = sp.window?;
    match &ir.counter(c).partition {
        Partition::Arg(p) if p.is_principal() => {
            let why = format!(
                "the budget counts per {} and the caller has none",
                p.display()
            );
            // Named after the budget's own message when it has one (kept
            // by every front end and `translate`, unlike rule names).
            Some(if sp.message.is_empty() {
                why
            } else {
                format!("{}: {why}", sp.message)
            })
        }
        _ => None,
    }
}

impl Evaluator {
    /// The hide entry that hides `tool` from this caller, if any.
    pub fn hiding(&self, tool: &str, principal: Option<&Principal>) -> Option<RuleId> {
        self.hiding_traced(tool, principal, &mut |_| {})
    }

    fn hiding_traced(
        &self,
        tool: &str,
        principal: Option<&Principal>,
        trace: &mut dyn FnMut(Trace<'_>),
    ) -> Option<RuleId> {
        self.hiding_on(Surface::Tool, tool, principal, trace)
    }

    /// The hide entry that hides `name` on `surface` from this caller, if any.
    pub fn hiding_on(
        &self,
        surface: Surface,
        tool: &str,
        principal: Option<&Principal>,
        trace: &mut dyn FnMut(Trace<'_>),
    ) -> Option<RuleId> {
        // A hide condition reads principal paths only (checked), so it is
        // evaluated against a call without arguments.
        let none = ToolCall::new(tool, b"{}", portcullis_core::json::Strictness::STRICT)
            .expect("`{}` is a call");
        self.view(surface)
            .hides_for(tool)
            .find(|h| match &h.when {
                None => true,
                Some(e) => {
                    let hides = self.expr(e, &none, principal, &[], h.rule, trace);
                    if !hides {
                        trace(Trace::NotHidden { rule: h.rule });
                    }
                    hides
                }
            })
            .map(|h| h.rule)
    }

    /// Decides like [`Policy::decide`], reporting every step to `trace`.
    pub fn decide_traced(
        &self,
        call: &ToolCall<'_>,
        env: &Env<'_>,
        ticket: &mut Ticket,
        trace: &mut dyn FnMut(Trace<'_>),
    ) -> Decision {
        self.decide_inner(call, env, ticket, false, trace)
    }

    /// Decides like [`Policy::decide_approved`], reporting every step to `trace`.
    pub fn decide_approved_traced(
        &self,
        call: &ToolCall<'_>,
        env: &Env<'_>,
        ticket: &mut Ticket,
        trace: &mut dyn FnMut(Trace<'_>),
    ) -> Decision {
        self.decide_inner(call, env, ticket, true, trace)
    }

    fn decide_inner(
        &self,
        call: &ToolCall<'_>,
        env: &Env<'_>,
        ticket: &mut Ticket,
        approved: bool,
        trace: &mut dyn FnMut(Trace<'_>),
    ) -> Decision {
        ticket.clear();
        let tool = call.name();
        let surface = call.surface();
        if !self.ir.governs(surface) {
            // No rules for this surface: allowed (the proxy does not ask).
            trace(Trace::Unlisted);
            return Decision::ALLOW;
        }
        if let Some(rule) = self.hiding_on(surface, tool, env.principal, trace) {
            trace(Trace::Hidden { rule });
            return Decision::deny(Outcome::Hidden, rule, "");
        }
        let view = self.view(surface);
        let Some(rules) = self.rules_on(surface, tool) else {
            trace(Trace::Unlisted);
            return Decision::deny(Outcome::NotPermitted, view.default_rule, "");
        };
        if self.blocks_on(surface, tool).is_empty() {
            trace(Trace::Unlisted);
        }
        trace(Trace::Rules {
            rules: rules.clone(),
        });
        for &id in &rules {
            let Some(check) = &self.ir.rule(id).check else {
                continue;
            };
            let readings = match self.readings(&check.deny_when, id, call, env) {
                Ok(r) => r,
                Err(d) => return d,
            };
            let denied = self.expr(&check.deny_when, call, env.principal, &readings, id, trace);
            trace(Trace::Check { rule: id, denied });
            if denied {
                return Decision::deny(Outcome::Check, id, self.texts[id.0 as usize].check);
            }
        }
        // Approvals: after every deny rule, before any reservation. The
        // first rule that asks decides, unless a limit would refuse the call
        // (peeked below, nothing reserved).
        let mut asked_by = None;
        for &id in rules.iter().filter(|_| !approved) {
            let Some(approve) = &self.ir.rule(id).approve else {
                continue;
            };
            let readings = match self.readings(&approve.when, id, call, env) {
                Ok(r) => r,
                Err(d) => return d,
            };
            let asked = self.expr(&approve.when, call, env.principal, &readings, id, trace);
            trace(Trace::Approve { rule: id, asked });
            if asked {
                asked_by = Some(Decision::approve(id, self.texts[id.0 as usize].approve));
                break;
            }
        }
        let mut limits: Limits = Limits::new();
        for &id in &rules {
            let Some(limit) = &self.ir.rule(id).limit else {
                continue;
            };
            let text = &self.texts[id.0 as usize];
            let Some(counter) = self.counter_ref(limit.counter, call, env) else {
                trace(Trace::NoPartition { rule: id });
                return Decision::deny(Outcome::Limit, id, text.no_partition);
            };
            let amount = match &limit.amount {
                Amount::Const(n) => Ok(*n),
                Amount::Arg { path, .. } => ops::amount(value(call, env.principal, path)),
            };
            trace(Trace::Limit {
                rule: id,
                amount,
                current: env.read(counter),
            });
            let amount = match amount {
                Ok(n) => n,
                Err(fault) => return text.bad_amount(fault, id),
            };
            limits.push(id, counter, amount, limit.max, text.limit);
        }
        let mut decision = limits.decide(env, asked_by, ticket);
        if decision.outcome == Outcome::Allowed {
            // The first rule (in evaluation order) that declares a window.
            decision.idempotency = rules
                .iter()
                .find_map(|&id| self.meta.idempotency.iter().find(|s| s.rule == id));
        }
        decision
    }
}

/// The runtime tables for a policy (shared with code generation, which emits the same values).
pub fn meta_for(ir: &ServerPolicy, sources: &SourceMap) -> PolicyMeta {
    let file = sources.file(ir.file);
    let rules: Vec<RuleInfo> = ir
        .rules
        .iter()
        .map(|r| {
            let (line, column) = file.line_col(r.loc.0.start);
            RuleInfo {
                name: leak(&r.name),
                label: leak(&r.label),
                kind: r.kind,
                file: leak(&file.name),
                line,
                column,
            }
        })
        .collect();
    let counters: Vec<CounterSpec> = ir
        .counters
        .iter()
        .map(|c| {
            let scope = match &c.partition {
                Partition::Global => Scope::Global,
                Partition::Session => Scope::Session,
                Partition::Arg(p) if p.is_principal() => Scope::Principal,
                Partition::Arg(_) => Scope::Argument,
            };
            CounterSpec::new(leak(&c.key), c.window, scope)
        })
        .collect();
    let idempotency: Vec<IdempotencySpec> = ir
        .rules
        .iter()
        .filter_map(|r| {
            let i = r.idempotency.as_ref()?;
            let by: Vec<&'static [&'static str]> =
                i.by.iter()
                    .map(|p| {
                        let segs: Vec<&'static str> = p.segments.iter().map(|s| leak(s)).collect();
                        &*Box::leak(segs.into_boxed_slice())
                    })
                    .collect();
            Some(IdempotencySpec {
                rule: r.id,
                window_ms: i.window_ms,
                mode: i.mode,
                by: Box::leak(by.into_boxed_slice()),
                message: leak(&i.message),
            })
        })
        .collect();
    let approvals: Vec<ApprovalSpec> = ir
        .rules
        .iter()
        .filter_map(|r| {
            let a = r.approve.as_ref()?;
            Some(ApprovalSpec {
                rule: r.id,
                message: leak(&a.message),
                channels: a.channels,
                timeout_ms: a.timeout_ms,
            })
        })
        .collect();
    let approval_config = ir.approvals.as_ref().map(|c| {
        &*Box::leak(Box::new(ApprovalConfig {
            webhook_url: c.webhook_url.as_deref().map(leak),
            secret_env: c.secret_env.as_deref().map(leak),
            secret: c.secret.as_deref().map(leak),
            dedupe_window_ms: c.dedupe_window_ms,
        }))
    });
    PolicyMeta {
        approvals: Box::leak(approvals.into_boxed_slice()),
        approval_config,
        idempotency: Box::leak(idempotency.into_boxed_slice()),
        server: leak(&ir.name),
        file: leak(&file.name),
        dialect: ir.dialect.name(),
        digest: leak(&ir.digest),
        rules: Box::leak(rules.into_boxed_slice()),
        counters: Box::leak(counters.into_boxed_slice()),
    }
}

#[cfg(test)]
mod block_index_tests {
    use super::*;

    /// The index finds exactly the blocks the linear scan finds, in order:
    /// exact names listed in several blocks, globs between them, a block
    /// mixing an exact name and a glob, names listed nowhere.
    #[test]
    fn index_agrees_with_the_linear_scan() {
        let text = r#"server s {
  default deny
  tool create_charge, create_refund {
    deny "big" when args.amount > 50000
  }
  tool list_* {}
  tool create_charge {
    limit 10 per minute -> "ten a minute"
  }
  tool retrieve_charge, get_* {}
  tool create_* {
    deny "no zero" unless args.amount >= 1
  }
  tool list_charges {}
}
"#;
        let out = crate::compile(&[crate::Input {
            server: "s".into(),
            path: "s.policy".into(),
            text: text.into(),
        }]);
        assert_eq!(out.policies.len(), 1, "{:?}", out.diagnostics);
        let ir = &out.policies[0];
        let ix = BlockIndex::new(ir);
        assert_eq!(
            ix.patterned,
            vec![1, 3, 4],
            "globs and mixed blocks are tried"
        );
        for name in [
            "create_charge",
            "create_refund",
            "create_payout",
            "list_charges",
            "list_refunds",
            "retrieve_charge",
            "get_charge",
            "delete_charge",
            "",
        ] {
            let want: Vec<*const Tool> = ir.blocks_for(name).map(|t| t as *const Tool).collect();
            let got: Vec<*const Tool> = ix
                .blocks(ir, name)
                .into_iter()
                .map(|t| t as *const Tool)
                .collect();
            assert_eq!(got, want, "{name}");
        }
        // And the evaluator's rules for a tool come from the index.
        let ev = Evaluator::new(ir.clone(), &out.sources);
        let rules = ev.rules_on(Surface::Tool, "create_charge").unwrap();
        let linear: Vec<RuleId> = ir
            .blocks_for("create_charge")
            .flat_map(|b| b.rules.iter().copied())
            .chain(ir.wildcard.iter().copied())
            .collect();
        assert_eq!(rules, linear);
        assert_eq!(rules.len(), 3);
        assert!(ev.rules_on(Surface::Tool, "delete_charge").is_none());
    }
}
