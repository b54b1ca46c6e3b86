//! The typed policy IR that every front end lowers to.
//!
//! One [`ServerPolicy`] per policy file. Its rule table ([`ServerPolicy::rules`])
//! is indexed by [`RuleId`] and becomes the runtime's static rule table one to
//! one; counters and regexes are likewise indexed by [`CounterId`] and
//! [`RegexId`]. Every node keeps a [`Loc`], which is left out of equality, so
//! two front ends that mean the same policy produce equal IR.
//!
//! Semantics, shared by the evaluator and the generated code:
//! 1. a `hide` entry matching the tool denies ([`RuleKind::Hide`]);
//! 2. the rules are those of every [`Tool`] block whose pattern matches, in
//!    order, then the wildcard rules; no matching block and
//!    [`Posture::Deny`] denies ([`RuleKind::DefaultDeny`]);
//! 3. check phase: each rule's [`Check`] in order; the first whose
//!    `deny_when` holds denies with its message (a deny wins over an approval);
//! 4. approval phase: each rule's [`Approve`] in order; the first whose
//!    `when` holds asks for approval ([`portcullis_core::policy::Effect::Approve`]),
//!    reserving nothing (skipped when deciding a call a person approved);
//! 5. limit phase: every rule's [`Limit`] in order; amounts are read, then all
//!    counters are reserved at once; the first that has no room denies.

use std::fmt;

pub use portcullis_core::counters::{Calendar, Window};
pub use portcullis_core::policy::{RuleId, RuleKind};

use crate::source::{FileId, SourceMap, Span};

/// A source location that never affects equality or hashing.
#[derive(Clone, Copy, Default)]
pub struct Loc(pub Span);

impl PartialEq for Loc {
    fn eq(&self, _: &Loc) -> bool {
        true
    }
}

impl Eq for Loc {}

impl std::hash::Hash for Loc {
    fn hash<H: std::hash::Hasher>(&self, _: &mut H) {}
}

impl fmt::Debug for Loc {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "@{}..{}", self.0.start, self.0.end)
    }
}

/// Index of a counter in [`ServerPolicy::counters`].
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub struct CounterId(pub u32);

/// Index of a regex in [`ServerPolicy::regexes`].
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub struct RegexId(pub u32);

/// Every server policy of one environment.
#[derive(Debug, Clone)]
pub struct PolicySet {
    /// The policies, sorted by server name.
    pub servers: Vec<ServerPolicy>,
    /// Their sources.
    pub sources: SourceMap,
    /// sha256 (hex) over the sorted (name, source) pairs.
    pub digest: String,
}

/// Which surface syntax a policy was written in.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum Dialect {
    /// PolicyLayer Intercept's YAML (`version: "1"`).
    InterceptV1,
    /// The catalogue YAML form (`action`, `reason`, `rate_limit: {max, window}`).
    Catalogue,
    /// The Portcullis policy language (`*.policy`).
    Dsl,
}

impl Dialect {
    /// The name used in `PolicyMeta::dialect` and `portcullis policies`.
    pub fn name(self) -> &'static str {
        match self {
            Dialect::InterceptV1 => "intercept-v1",
            Dialect::Catalogue => "catalogue",
            Dialect::Dsl => "dsl",
        }
    }
}

/// What happens to a tool no block lists.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum Posture {
    /// Unlisted tools are allowed (subject to wildcard rules).
    Allow,
    /// Unlisted tools are denied.
    Deny,
}

/// One compiled server policy.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ServerPolicy {
    /// The server name (the file stem).
    pub name: String,
    /// The source file.
    pub file: FileId,
    /// The file's path as shown to users.
    pub path: String,
    /// Surface syntax.
    pub dialect: Dialect,
    /// Free text from the policy.
    pub description: Option<String>,
    /// Unlisted tools.
    pub default: Posture,
    /// The rule-table entry that default-deny denials name.
    pub default_rule: RuleId,
    /// Hidden tools, checked first.
    pub hidden: Vec<Hide>,
    /// Tool blocks, in evaluation order.
    pub tools: Vec<Tool>,
    /// Rules that apply to every call after the tool's own rules.
    pub wildcard: Vec<RuleId>,
    /// The rule table (hide entries, the default posture, then rules).
    pub rules: Vec<Rule>,
    /// Counters, by [`CounterId`].
    pub counters: Vec<Counter>,
    /// Regexes, by [`RegexId`].
    pub regexes: Vec<Regex>,
    /// sha256 (hex) of the source text.
    pub digest: String,
    /// Where approval requests are announced (Intercept's `approvals:`).
    pub approvals: Option<ApprovalConfig>,
    /// What happens to answers (`results:`; docs/results.md).
    pub results: Vec<crate::results::ResultRule>,
    /// Rules on `resources/read` and `resources/subscribe`, by URI.
    pub resources: SurfaceRules,
    /// Rules on `prompts/get`, by name and arguments.
    pub prompts: SurfaceRules,
}

pub use portcullis_core::call::Surface;

/// The hides and blocks of one surface other than tools (resources,
/// prompts). Their rules live in the one rule table (so counters, messages
/// and the audit log work alike); a surface is decided exactly as tools are
/// (see the module documentation), against its own blocks and posture, with
/// no wildcard rules.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct SurfaceRules {
    /// Hidden resources or prompts, checked first.
    pub hidden: Vec<Hide>,
    /// Blocks, in evaluation order.
    pub blocks: Vec<Tool>,
    /// What happens to a resource or prompt no block lists (allow unless
    /// the policy says `default resource deny` / `default prompt deny`).
    pub default: Posture,
    /// The rule-table entry its default-deny denials name.
    pub default_rule: Option<RuleId>,
}

impl Default for SurfaceRules {
    fn default() -> Self {
        SurfaceRules {
            hidden: Vec::new(),
            blocks: Vec::new(),
            default: Posture::Allow,
            default_rule: None,
        }
    }
}

impl SurfaceRules {
    /// True when the surface has no hides, no blocks and the allow posture.
    pub fn is_empty(&self) -> bool {
        self.hidden.is_empty() && self.blocks.is_empty() && self.default == Posture::Allow
    }
}

impl ServerPolicy {
    /// The rules of `surface`, None for tools (whose rules are the policy's own fields).
    pub fn surface_rules(&self, surface: Surface) -> Option<&SurfaceRules> {
        match surface {
            Surface::Tool => None,
            Surface::Resource => Some(&self.resources),
            Surface::Prompt => Some(&self.prompts),
        }
    }

    /// True when the policy decides requests on `surface` (always for tools).
    pub fn governs(&self, surface: Surface) -> bool {
        self.surface_rules(surface).is_none_or(|r| !r.is_empty())
    }

    /// The policy as it decides `surface`: for a resource or prompt, its
    /// hides, blocks and posture in place of the tools', no wildcard rules;
    /// the tables (rules, counters, regexes) are shared, so
    /// rule ids mean the same in the view. For tools, the policy itself.
    pub fn view(&self, surface: Surface) -> ServerPolicy {
        let mut v = self.clone();
        if let Some(r) = self.surface_rules(surface) {
            v.hidden = r.hidden.clone();
            v.tools = r.blocks.clone();
            v.wildcard = Vec::new();
            v.default = r.default;
            v.default_rule = r.default_rule.unwrap_or(self.default_rule);
        }
        v
    }

    /// The rule with this id.
    pub fn rule(&self, id: RuleId) -> &Rule {
        &self.rules[id.0 as usize]
    }

    /// The counter with this id.
    pub fn counter(&self, id: CounterId) -> &Counter {
        &self.counters[id.0 as usize]
    }

    /// The regex with this id.
    pub fn regex(&self, id: RegexId) -> &Regex {
        &self.regexes[id.0 as usize]
    }

    /// True if `tool` is hidden from every caller, with the deciding hide
    /// entry (the first unconditional one matching; conditional entries
    /// before it are skipped, see [`ServerPolicy::hides_for`]).
    pub fn hidden_by(&self, tool: &str) -> Option<&Hide> {
        self.hidden
            .iter()
            .find(|h| h.when.is_none() && h.pattern.matches(tool))
    }

    /// The hide entries matching `tool`, in order: the first whose
    /// condition holds for the caller (or that has none) hides it.
    pub fn hides_for<'a>(&'a self, tool: &'a str) -> impl Iterator<Item = &'a Hide> + 'a {
        self.hidden.iter().filter(move |h| h.pattern.matches(tool))
    }

    /// The arguments `path()` conditions read in `rules` (their deny and
    /// approval conditions), in first-use order, each once: what
    /// [`portcullis_core::policy::Policy::path_args`] names for a tool.
    pub fn path_args(&self, rules: impl IntoIterator<Item = RuleId>) -> Vec<&ArgPath> {
        let mut out: Vec<&ArgPath> = Vec::new();
        for id in rules {
            let r = self.rule(id);
            let exprs = r
                .check
                .as_ref()
                .map(|c| &c.deny_when)
                .into_iter()
                .chain(r.approve.as_ref().map(|a| &a.when));
            for e in exprs {
                for t in e.tests() {
                    if let TestKind::Path {
                        lhs: Operand::Arg(a),
                        ..
                    } = &t.kind
                        && !a.is_principal()
                        && !out.iter().any(|o| o.segments == a.segments)
                    {
                        out.push(a);
                    }
                }
            }
        }
        out
    }

    /// The tool blocks that list `tool`, in order.
    pub fn blocks_for<'a>(&'a self, tool: &'a str) -> impl Iterator<Item = &'a Tool> + 'a {
        self.tools
            .iter()
            .filter(move |t| t.patterns.iter().any(|p| p.matches(tool)))
    }
}

/// A tool name or a glob over tool names.
#[derive(Debug, Clone, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub enum NamePattern {
    /// Exactly this name.
    Exact(String),
    /// `*` matches any run of characters (DSL patterns such as `list_*`).
    Glob(String),
    /// Every tool (Intercept's `hide: ["*"]`).
    All,
    /// A resource URI glob: `*` matches within a path segment, `**` across
    /// segments ([`portcullis_core::uri::uri_glob_match`]).
    UriGlob(String),
    /// A regex over the (normalised) URI: unanchored, RE2 semantics as in
    /// conditions, one of the policy's [`ServerPolicy::regexes`].
    Regex {
        /// Which regex.
        id: RegexId,
        /// The pattern as written.
        source: String,
        /// The pattern in Rust's dialect.
        translated: String,
    },
}

impl NamePattern {
    /// True if `tool` matches.
    pub fn matches(&self, tool: &str) -> bool {
        match self {
            NamePattern::Exact(n) => n == tool,
            NamePattern::Glob(g) => portcullis_core::ops::glob_match(g, tool),
            NamePattern::All => true,
            NamePattern::UriGlob(g) => portcullis_core::uri::uri_glob_match(g, tool),
            // The reference evaluator favours obviously right over fast.
            NamePattern::Regex { translated, .. } => {
                regex::Regex::new(translated).is_ok_and(|r| r.is_match(tool))
            }
        }
    }

    /// The pattern as written.
    pub fn text(&self) -> &str {
        match self {
            NamePattern::Exact(s) | NamePattern::Glob(s) | NamePattern::UriGlob(s) => s,
            NamePattern::All => "*",
            NamePattern::Regex { source, .. } => source,
        }
    }
}

/// A hidden tool (or pattern).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Hide {
    /// Which tools.
    pub pattern: NamePattern,
    /// When the tool is hidden: always (None), or when this condition over
    /// principal paths holds (a per-principal tool view; it may read no
    /// argument, since `tools/list` has none).
    pub when: Option<Expr>,
    /// Its rule-table entry.
    pub rule: RuleId,
    /// Where.
    pub loc: Loc,
}

/// A block of rules for the tools its patterns match.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Tool {
    /// Which tools (several in the DSL: `tool create_refund, create_payout`).
    pub patterns: Vec<NamePattern>,
    /// Its rules, in order.
    pub rules: Vec<RuleId>,
    /// Where.
    pub loc: Loc,
}

/// One entry of the rule table.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Rule {
    /// Its index.
    pub id: RuleId,
    /// Its name (generated from the label when the policy gives none).
    pub name: String,
    /// Where it sits, e.g. `tools.create_charge.rules[1]`.
    pub label: String,
    /// Built-in entry or written rule.
    pub kind: RuleKind,
    /// The condition phase.
    pub check: Option<Check>,
    /// The counter phase.
    pub limit: Option<Limit>,
    /// A budget on what the tool charges (MPP), checked when the server
    /// asks for payment, not in the decision.
    pub spend: Option<Spend>,
    /// The idempotency window this rule declares (applies to allowed calls).
    pub idempotency: Option<Idempotency>,
    /// The approval phase: hold the call for a person when its condition holds.
    pub approve: Option<Approve>,
    /// Where.
    pub loc: Loc,
}

impl Rule {
    /// True for a deny rule without a condition (`deny "..."`, `action: deny`):
    /// every request its block matches is denied.
    pub fn denies_always(&self) -> bool {
        self.check
            .as_ref()
            .is_some_and(|c| c.deny_when == Expr::Bool(true))
    }
}

pub use portcullis_core::policy::{Channels, DEFAULT_APPROVAL_TIMEOUT_MS};

/// Ask a person to approve the call when `when` holds. Evaluated after
/// every rule's check (a deny wins) and before the limits (nothing is
/// reserved for a call waiting for approval).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Approve {
    /// The condition under which approval is needed (`Expr::Bool(true)`: always).
    pub when: Expr,
    /// What the person is asked, and what the agent is told meanwhile.
    pub message: String,
    /// Who may be asked.
    pub channels: Channels,
    /// How long the request stays open, in milliseconds.
    pub timeout_ms: u64,
}

/// Where new approval requests are announced.
#[derive(Debug, Clone, PartialEq, Eq, Default)]
pub struct ApprovalConfig {
    /// Webhook URL.
    pub webhook_url: Option<String>,
    /// Environment variable naming the HMAC secret.
    pub secret_env: Option<String>,
    /// A secret written in the policy (embedded in the binary; warned about).
    pub secret: Option<String>,
    /// Intercept's `default_timeout`, applied to rules without their own.
    pub default_timeout_ms: Option<u64>,
    /// Intercept's `dedupe_window` (how long an identical pending request is
    /// reused), in milliseconds.
    pub dedupe_window_ms: Option<u64>,
}

/// Longest approval timeout: 7 days.
pub const MAX_APPROVAL_TIMEOUT_MS: u64 = 7 * 86_400_000;

/// Parses an approval timeout (Go duration units plus `d`), at most 7 days.
pub fn parse_approval_timeout(text: &str) -> Result<u64, String> {
    let ms = parse_any_duration(text)?;
    if ms > MAX_APPROVAL_TIMEOUT_MS {
        return Err("an approval timeout is at most 7 days (`7d`)".into());
    }
    Ok(ms)
}

pub use portcullis_core::idempotency::IdempotencyMode;

/// An idempotency window: identical allowed calls within `window_ms` are
/// replayed the first call's answer, or refused.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Idempotency {
    /// How long a completed call is remembered, in milliseconds.
    pub window_ms: u64,
    /// Replay or refuse.
    pub mode: IdempotencyMode,
    /// The arguments that form the key; empty: all of them.
    pub by: Vec<ArgPath>,
    /// The denial message of a refused duplicate.
    pub message: String,
    /// Where.
    pub loc: Loc,
}

/// Parses a duration as Intercept writes it (Go's `time.ParseDuration`
/// units `ms`, `s`, `m`, `h`, plus `d` for days), e.g. `5m`, `90s`, `1h30m`:
/// milliseconds, positive. The error is the help text of a diagnostic.
pub fn parse_duration(text: &str) -> Result<u64, String> {
    let total = parse_any_duration(text)?;
    if total > MAX_IDEMPOTENCY_WINDOW_MS {
        return Err("an idempotency window is at most 30 days (`30d`)".into());
    }
    Ok(total)
}

/// A positive duration in milliseconds, unbounded, read as Go's
/// `time.ParseDuration` reads it (Intercept is written in Go): a sequence of
/// decimal numbers, each with an optional fraction and a unit (`ns`, `us`,
/// `µs`, `ms`, `s`, `m`, `h`, and Portcullis's `d`), e.g. `1.5h`, `1h30m`,
/// `500ms`, `.5s`. A leading `+` is allowed. Sub-millisecond parts are
/// added up in nanoseconds and the total rounded down to milliseconds; a
/// total under 1 ms is an error (not positive).
fn parse_any_duration(text: &str) -> Result<u64, String> {
    const HELP: &str = "write a positive duration such as `30s`, `5m`, `1.5h`, `1h30m`, `500ms` or `1d` (units: ns, us, ms, s, m, h, d)";
    let t = text.trim();
    let t = t.strip_prefix('+').unwrap_or(t);
    if t.is_empty() || t == "0" {
        return Err(HELP.into());
    }
    let b = t.as_bytes();
    let mut total_ns: u128 = 0;
    let mut i = 0;
    while i < b.len() {
        // The number: digits, optionally `.` and digits (at least one digit in all).
        let int_start = i;
        while i < b.len() && b[i].is_ascii_digit() {
            i += 1;
        }
        let int_part = &t[int_start..i];
        let mut frac_part = "";
        if i < b.len() && b[i] == b'.' {
            i += 1;
            let frac_start = i;
            while i < b.len() && b[i].is_ascii_digit() {
                i += 1;
            }
            frac_part = &t[frac_start..i];
        }
        if int_part.is_empty() && frac_part.is_empty() {
            return Err(HELP.into());
        }
        let unit_start = i;
        while i < b.len() && !(b[i].is_ascii_digit() || b[i] == b'.') {
            i += 1;
        }
        let unit: u128 = match &t[unit_start..i] {
            "ns" => 1,
            "us" | "µs" | "μs" => 1_000,
            "ms" => 1_000_000,
            "s" => 1_000_000_000,
            "m" => 60_000_000_000,
            "h" => 3_600_000_000_000,
            "d" => 86_400_000_000_000,
            _ => return Err(HELP.into()),
        };
        let whole: u128 = if int_part.is_empty() {
            0
        } else {
            int_part.parse().map_err(|_| HELP.to_string())?
        };
        let mut part = whole.checked_mul(unit).ok_or_else(|| HELP.to_string())?;
        // The fraction, digit by digit (as Go does: no floating point).
        let mut scale = unit;
        for d in frac_part.bytes() {
            scale /= 10;
            if scale == 0 {
                break;
            }
            part += u128::from(d - b'0') * scale;
        }
        total_ns = total_ns.checked_add(part).ok_or_else(|| HELP.to_string())?;
    }
    let ms = u64::try_from(total_ns / 1_000_000).map_err(|_| HELP.to_string())?;
    if ms == 0 {
        return Err(HELP.into());
    }
    Ok(ms)
}

#[cfg(test)]
mod duration_tests {
    use super::parse_any_duration;

    #[test]
    fn durations_read_as_gos_parse_duration() {
        for (text, ms) in [
            ("30s", 30_000),
            ("15m", 900_000),
            ("1h30m", 5_400_000),
            ("1.5h", 5_400_000),
            ("500ms", 500),
            (".5s", 500),
            ("1.s", 1_000),
            ("+2m", 120_000),
            ("1d", 86_400_000),
            ("1h0.5m1s", 3_631_000),
            ("1500us", 1),
            ("2000000ns", 2),
            ("1.0005s", 1_000),
        ] {
            assert_eq!(parse_any_duration(text), Ok(ms), "{text}");
        }
        for bad in [
            "", "0", "30", "30x", "-5m", "1..5h", ".s", "5 m", "m", "1h-5m", "900us", "0s",
        ] {
            assert!(parse_any_duration(bad).is_err(), "{bad:?}");
        }
    }
}

/// Longest idempotency window.
pub const MAX_IDEMPOTENCY_WINDOW_MS: u64 = 30 * 86_400_000;

/// A window in the shortest unit that writes it exactly (`5m`, `90s`).
pub fn show_duration(ms: u64) -> String {
    for (unit, size) in [
        ("d", 86_400_000),
        ("h", 3_600_000),
        ("m", 60_000),
        ("s", 1000),
    ] {
        if ms.is_multiple_of(size) {
            return format!("{}{unit}", ms / size);
        }
    }
    format!("{ms}ms")
}

/// Deny with `message` when `deny_when` holds.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Check {
    /// The condition under which the call is denied.
    pub deny_when: Expr,
    /// The denial message.
    pub message: String,
}

/// Reserve `amount` on `counter`; deny with `message` if it would exceed `max`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Limit {
    /// Which counter.
    pub counter: CounterId,
    /// Highest value the counter may reach.
    pub max: u64,
    /// What one call adds.
    pub amount: Amount,
    /// The denial message when there is no room.
    pub message: String,
    /// Where.
    pub loc: Loc,
}

/// What one call adds to a counter.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Amount {
    /// A fixed number of units.
    Const(u64),
    /// The value of an argument.
    Arg {
        /// Which argument.
        path: ArgPath,
        /// Denial message when it is absent or not a number.
        missing_message: String,
        /// Denial message when it is negative, fractional or too large.
        invalid_message: String,
    },
}

/// A counter: its storage key, window and partitioning.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Counter {
    /// Its index.
    pub id: CounterId,
    /// Storage key, `<server>/<scope>.<name>`.
    pub key: String,
    /// How policies refer to it, e.g. `state.create_charge.daily_spend`.
    pub display: String,
    /// How it forgets.
    pub window: Window,
    /// Who shares it.
    pub partition: Partition,
    /// Where it is declared.
    pub loc: Loc,
}

/// Who shares a counter.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Partition {
    /// Everyone using this proxy (Intercept's counters).
    Global,
    /// Each agent session separately.
    Session,
    /// Each distinct value of an argument.
    Arg(ArgPath),
}

/// A regex in a condition.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Regex {
    /// Its index.
    pub id: RegexId,
    /// The pattern as written (Go / RE2 syntax).
    pub source: String,
    /// Flags from a policy-language literal (`/re/i`), "" otherwise.
    pub flags: String,
    /// The pattern in Rust's dialect, with identical semantics.
    pub translated: String,
    /// Where.
    pub loc: Loc,
}

/// A boolean condition.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Expr {
    /// A constant.
    Bool(bool),
    /// All hold (evaluated in order, stopping at the first false).
    And(Vec<Expr>),
    /// Any holds (evaluated in order, stopping at the first true).
    Or(Vec<Expr>),
    /// Negation.
    Not(Box<Expr>),
    /// One test.
    Test(Test),
}

impl Expr {
    /// `not e`, simplifying constants and double negation.
    pub fn negate(e: Expr) -> Expr {
        match e {
            Expr::Bool(b) => Expr::Bool(!b),
            Expr::Not(inner) => *inner,
            e => Expr::Not(Box::new(e)),
        }
    }

    /// The tests in this expression, in evaluation order.
    pub fn tests(&self) -> Vec<&Test> {
        let mut out = Vec::new();
        self.walk(&mut |t| out.push(t));
        out
    }

    fn walk<'a>(&'a self, f: &mut impl FnMut(&'a Test)) {
        match self {
            Expr::Bool(_) => {}
            Expr::And(v) | Expr::Or(v) => v.iter().for_each(|e| e.walk(f)),
            Expr::Not(e) => e.walk(f),
            Expr::Test(t) => f(t),
        }
    }

    /// Counters this expression reads, in first-use order, without repeats.
    pub fn counters(&self) -> Vec<CounterId> {
        let mut out: Vec<CounterId> = Vec::new();
        for t in self.tests() {
            for o in t.operands() {
                if let Operand::Counter(c) = o
                    && !out.contains(c)
                {
                    out.push(*c);
                }
            }
        }
        out
    }
}

/// One test on the call's arguments or counters.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Test {
    /// What is tested.
    pub kind: TestKind,
    /// Where.
    pub loc: Loc,
}

impl Test {
    /// The operands this test reads.
    pub fn operands(&self) -> Vec<&Operand> {
        match &self.kind {
            TestKind::Cmp { lhs, rhs, .. }
            | TestKind::Contains { lhs, rhs }
            | TestKind::StartsWith { lhs, rhs }
            | TestKind::EndsWith { lhs, rhs } => vec![lhs, rhs],
            TestKind::In { lhs, .. }
            | TestKind::Matches { lhs, .. }
            | TestKind::Path { lhs, .. } => vec![lhs],
            TestKind::Exists { operand, .. } => vec![operand],
        }
    }
}

/// The tests.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum TestKind {
    /// A comparison.
    Cmp {
        /// Left side.
        lhs: Operand,
        /// Operator.
        op: CmpOp,
        /// Right side.
        rhs: Operand,
    },
    /// Membership in a constant list (`in`, or `not_in` when `negated`).
    In {
        /// The value.
        lhs: Operand,
        /// The list.
        list: Vec<Const>,
        /// `not_in`: present and not in the list.
        negated: bool,
    },
    /// Substring of a string, or element of an array.
    Contains {
        /// Haystack.
        lhs: Operand,
        /// Needle.
        rhs: Operand,
    },
    /// String prefix.
    StartsWith {
        /// The string.
        lhs: Operand,
        /// The prefix.
        rhs: Operand,
    },
    /// String suffix.
    EndsWith {
        /// The string.
        lhs: Operand,
        /// The suffix.
        rhs: Operand,
    },
    /// Unanchored regex match on a string.
    Matches {
        /// The string.
        lhs: Operand,
        /// The regex.
        regex: RegexId,
    },
    /// A filesystem path argument, normalised lexically
    /// ([`portcullis_core::path`]), compared with a normalised absolute
    /// path or glob: `path(args.p) matches "/srv/secret/**"`.
    Path {
        /// The argument.
        lhs: Operand,
        /// How it is compared.
        op: PathOp,
        /// The pattern (normalised; a glob for [`PathOp::Glob`]).
        pattern: String,
        /// The test's value when the argument is present but is not a
        /// string or cannot be normalised: whichever makes the rule refuse
        /// the call (set by [`fail_closed_paths`]).
        invalid: bool,
    },
    /// Presence (non-null) equals `expect`.
    Exists {
        /// The value.
        operand: Operand,
        /// `exists: true` or `exists: false`.
        expect: bool,
    },
}

pub use portcullis_core::path::PathOp;

/// Sets every `path()` test's value on an invalid argument so that it
/// refuses the call: in a rule's deny condition and approval condition,
/// a test under an even number of `not`s holds (the rule denies, or asks),
/// one under an odd number does not (so an `allow when path(...)` does not
/// allow). Called once per policy by [`crate::lower::PolicyBuilder::finish`].
pub fn fail_closed_paths(p: &mut ServerPolicy) {
    fn walk(e: &mut Expr, holds: bool) {
        match e {
            Expr::Bool(_) => {}
            Expr::And(v) | Expr::Or(v) => v.iter_mut().for_each(|e| walk(e, holds)),
            Expr::Not(e) => walk(e, !holds),
            Expr::Test(Test {
                kind: TestKind::Path { invalid, .. },
                ..
            }) => *invalid = holds,
            Expr::Test(_) => {}
        }
    }
    for r in &mut p.rules {
        if let Some(c) = &mut r.check {
            walk(&mut c.deny_when, true);
        }
        if let Some(a) = &mut r.approve {
            walk(&mut a.when, true);
        }
    }
}

/// Checks a `path()` pattern: an absolute path already in normalised form
/// (a glob's `*` count as ordinary characters here). The error is
/// (message, help), the help naming the normalised form when there is one.
pub fn check_path_pattern(pattern: &str) -> Result<(), (String, String)> {
    match portcullis_core::path::normalize(pattern) {
        Ok(n) if n == pattern => {
            if pattern.len() > portcullis_core::uri::MAX_GLOB_LEN {
                return Err((
                    format!(
                        "a path pattern is at most {} bytes",
                        portcullis_core::uri::MAX_GLOB_LEN
                    ),
                    "shorten the pattern, e.g. with `*` or `**`".into(),
                ));
            }
            Ok(())
        }
        Ok(n) => Err((
            format!("the path pattern `{pattern}` is not in normalised form"),
            format!(
                "write `{n}`: arguments are normalised (`.`, `..`, `//` and a trailing `/` resolved) before they are compared, so this spelling would never match"
            ),
        )),
        Err(e) => Err((
            format!("the path pattern `{pattern}` is not a normalisable absolute path: {}", e.kind),
            "write an absolute path such as `/srv/secret/**` (`*` within a segment, `**` across segments)".into(),
        )),
    }
}

/// Comparison operators.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum CmpOp {
    /// `eq`, `==`
    Eq,
    /// `neq`, `!=` (fails when the value is missing)
    Ne,
    /// `lt`, `<`
    Lt,
    /// `lte`, `<=`
    Le,
    /// `gt`, `>`
    Gt,
    /// `gte`, `>=`
    Ge,
}

impl CmpOp {
    /// Intercept's operator name.
    pub fn intercept_name(self) -> &'static str {
        match self {
            CmpOp::Eq => "eq",
            CmpOp::Ne => "neq",
            CmpOp::Lt => "lt",
            CmpOp::Le => "lte",
            CmpOp::Gt => "gt",
            CmpOp::Ge => "gte",
        }
    }

    /// The DSL's operator symbol.
    pub fn symbol(self) -> &'static str {
        match self {
            CmpOp::Eq => "==",
            CmpOp::Ne => "!=",
            CmpOp::Lt => "<",
            CmpOp::Le => "<=",
            CmpOp::Gt => ">",
            CmpOp::Ge => ">=",
        }
    }
}

/// Something a test reads.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Operand {
    /// A value from the call's arguments.
    Arg(ArgPath),
    /// A counter's value in its current window (before this call's increment).
    Counter(CounterId),
    /// A constant from the policy.
    Const(Const),
    /// The length of a string, array or object argument.
    Len(ArgPath),
}

pub use portcullis_core::principal::PrincipalField;

/// Where a path starts: the call's arguments or the caller.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub enum Root {
    /// `args.…`: the call's arguments (member names match case-insensitively).
    Args,
    /// `principal.sub`, `principal.iss`, `principal.scopes`,
    /// `principal.claims.…`: the caller (claim names match exactly).
    Principal(PrincipalField),
}

/// `args.a.b.c` (object members from the arguments down) or a
/// `principal.*` path (the segments follow `principal.claims`; empty for
/// `sub`, `iss` and `scopes`).
#[derive(Debug, Clone, PartialEq, Eq, Hash)]
pub struct ArgPath {
    /// What the path starts from.
    pub root: Root,
    /// Member names, outermost first.
    pub segments: Vec<String>,
    /// Where.
    pub loc: Loc,
}

impl ArgPath {
    /// A path into the arguments.
    pub fn args(segments: Vec<String>, loc: Loc) -> ArgPath {
        ArgPath {
            root: Root::Args,
            segments,
            loc,
        }
    }

    /// The path as policies write it: `args.a.b`, `principal.sub`,
    /// `principal.claims.org.team`.
    pub fn display(&self) -> String {
        match self.root {
            Root::Args => format!("args.{}", self.segments.join(".")),
            Root::Principal(PrincipalField::Claims) => {
                format!("principal.claims.{}", self.segments.join("."))
            }
            Root::Principal(f) => format!("principal.{}", f.name()),
        }
    }

    /// True for a `principal.*` path.
    pub fn is_principal(&self) -> bool {
        matches!(self.root, Root::Principal(_))
    }
}

/// Resolves the part of a path after `principal.` (the segments as written)
/// into a principal path. `shorthand`: a first segment that is none of
/// `sub`, `iss`, `scopes`, `claims` names a claim (the policy language's
/// `principal.groups`); otherwise it is an error. The error is (message, help).
pub fn principal_path(
    rest: &[String],
    shorthand: bool,
    loc: Loc,
) -> Result<ArgPath, (String, String)> {
    let help = "principal paths are `principal.sub`, `principal.iss`, `principal.scopes` and `principal.claims.<name>[.<nested>...]`";
    let Some(first) = rest.first() else {
        return Err(("`principal` alone is not a value".into(), help.into()));
    };
    let (field, segments) = match PrincipalField::from_name(first) {
        Some(PrincipalField::Claims) => {
            if rest.len() < 2 {
                return Err((
                    "`principal.claims` needs a claim name".into(),
                    "write `principal.claims.<name>`, e.g. `principal.claims.groups`".into(),
                ));
            }
            (PrincipalField::Claims, rest[1..].to_vec())
        }
        Some(f) => {
            if rest.len() > 1 {
                return Err((
                    format!(
                        "`principal.{}` has no members (`{}`)",
                        f.name(),
                        rest[1..].join(".")
                    ),
                    format!(
                        "`principal.{}` is a {}; nested values are claims: `principal.claims.<name>.<nested>`",
                        f.name(),
                        if f == PrincipalField::Scopes {
                            "list of strings"
                        } else {
                            "string"
                        }
                    ),
                ));
            }
            (f, Vec::new())
        }
        None if shorthand => (PrincipalField::Claims, rest.to_vec()),
        None => {
            return Err((
                format!("unknown principal path `principal.{}`", rest.join(".")),
                format!(
                    "{help}; for a claim write `principal.claims.{}`",
                    rest.join(".")
                ),
            ));
        }
    };
    Ok(ArgPath {
        root: Root::Principal(field),
        segments,
        loc,
    })
}

/// A policy constant.
#[derive(Debug, Clone, PartialEq, Eq, Hash)]
pub enum Const {
    /// `null`
    Null,
    /// `true` / `false`
    Bool(bool),
    /// An exact decimal number.
    Num(Number),
    /// A string.
    Str(String),
}

impl fmt::Display for Const {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Const::Null => f.write_str("null"),
            Const::Bool(b) => write!(f, "{b}"),
            Const::Num(n) => write!(f, "{n}"),
            Const::Str(s) => write!(f, "{s:?}"),
        }
    }
}

/// An exact decimal number in JSON syntax: `-? int (. frac)? (e exp)?`.
#[derive(Debug, Clone, PartialEq, Eq, Hash)]
pub struct Number {
    /// The JSON text.
    pub text: String,
}

impl Number {
    /// A number from JSON number text; None if it is not strict JSON syntax.
    pub fn parse(text: &str) -> Option<Number> {
        portcullis_core::json::Num::parse(text.as_bytes())?;
        Some(Number {
            text: text.to_string(),
        })
    }

    /// A number from an integer.
    pub fn from_u64(v: u64) -> Number {
        Number {
            text: v.to_string(),
        }
    }

    /// The runtime view of this number.
    pub fn num(&self) -> portcullis_core::json::Num<'_> {
        portcullis_core::json::Num::parse(self.text.as_bytes())
            .unwrap_or(portcullis_core::json::Num::ZERO)
    }
}

impl fmt::Display for Number {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.text)
    }
}

/// A spend budget (MPP): the price a server asks for a call, in exact
/// micro-units ([`portcullis_core::spend`]), against a per-call ceiling
/// and/or a windowed total.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Spend {
    /// Lowercase currency code the budget is in; `None`: every currency, each
    /// counted on its own (Intercept's `spend:` names none).
    pub currency: Option<String>,
    /// The most one call may cost, micro-units.
    pub per_call: Option<u64>,
    /// The counter that adds up spend, and its ceiling in micro-units.
    pub window: Option<(CounterId, u64)>,
    /// The denial message when a price breaks the budget.
    pub message: String,
}
