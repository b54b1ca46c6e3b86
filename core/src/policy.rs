//! The contract between a compiled policy and the proxy: [`Policy`], [`Decision`], [`Env`].
//!
//! Generated code and the reference evaluator both implement [`Policy`] and
//! both finish a decision through [`Limits`], so the two cannot drift in how
//! counters, fail modes and messages are handled.

use std::borrow::Cow;
use std::fmt::Write as _;

use crate::call::{Surface, ToolCall};
use crate::counters::{
    CounterRef, CounterSpec, Counters, MAX_RESERVATIONS, ReserveOutcome, ReserveRequest, Ticket,
    UNUSED_COUNTER, UnixMillis,
};
use crate::idempotency::IdempotencySpec;

/// Index of a rule in its policy's rule table ([`PolicyMeta::rules`]).
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub struct RuleId(pub u32);

/// What a rule-table entry is.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum RuleKind {
    /// A `hide` entry: the tool is invisible and uncallable.
    Hide,
    /// The policy's `default: deny` posture.
    DefaultDeny,
    /// A rule written in the policy.
    Rule,
}

/// One entry of a policy's static rule table: what the audit log, `explain`
/// and the denial's `_meta` name.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct RuleInfo {
    /// The rule's name (`(hidden)` and `(default deny)` for the built-in ones).
    pub name: &'static str,
    /// Where it sits in the policy, e.g. `tools.create_charge.rules[1]`.
    pub label: &'static str,
    /// What kind of entry this is.
    pub kind: RuleKind,
    /// Source file, as given to the compiler.
    pub file: &'static str,
    /// 1-based line.
    pub line: u32,
    /// 1-based column.
    pub column: u32,
}

/// Facts about one compiled server policy.
#[derive(Debug)]
pub struct PolicyMeta {
    /// Server name (the policy file's stem).
    pub server: &'static str,
    /// Source file.
    pub file: &'static str,
    /// `intercept-v1`, `catalogue` or `dsl`.
    pub dialect: &'static str,
    /// sha256 (hex) of the policy source.
    pub digest: &'static str,
    /// Rule table, indexed by [`RuleId`].
    pub rules: &'static [RuleInfo],
    /// Counters the policy declares.
    pub counters: &'static [CounterSpec],
    /// Idempotency windows the policy declares, in rule order.
    pub idempotency: &'static [IdempotencySpec],
    /// Approval rules, in rule order: what an [`Effect::Approve`] decision
    /// naming one of them asks (message, channels, timeout).
    pub approvals: &'static [ApprovalSpec],
    /// The policy's approval notifications (Intercept's top-level
    /// `approvals:` block), when it has one.
    pub approval_config: Option<&'static ApprovalConfig>,
}

impl PolicyMeta {
    /// The rule-table entry for `id`.
    pub fn rule(&self, id: RuleId) -> Option<&'static RuleInfo> {
        self.rules.get(id.0 as usize)
    }

    /// The approval rule `id`, when it is one.
    pub fn approval(&self, id: RuleId) -> Option<&'static ApprovalSpec> {
        self.approvals.iter().find(|a| a.rule == id)
    }
}

/// Who may be asked to approve a call.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub struct Channels {
    /// In-band: the MCP client asks its user (`elicitation/create`) when it
    /// declared the `elicitation` capability.
    pub client: bool,
    /// Out-of-band: an operator decides (CLI, admin API, webhook); the
    /// fallback when the client cannot be asked.
    pub operator: bool,
}

impl Channels {
    /// Both channels: the client when it can elicit, else an operator (the default).
    pub const BOTH: Channels = Channels {
        client: true,
        operator: true,
    };

    /// The channels as the policy language writes them (`client | operator`).
    pub fn name(self) -> &'static str {
        match (self.client, self.operator) {
            (true, true) => "client | operator",
            (true, false) => "client",
            (false, true) => "operator",
            (false, false) => "none",
        }
    }
}

/// Default time a person has to answer an approval request: 15 minutes.
pub const DEFAULT_APPROVAL_TIMEOUT_MS: u64 = 15 * 60_000;

/// One approval rule: what a call it catches waits for.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct ApprovalSpec {
    /// The rule (an index into [`PolicyMeta::rules`]).
    pub rule: RuleId,
    /// The message shown to the person asked (and to the agent meanwhile).
    pub message: &'static str,
    /// Who may be asked.
    pub channels: Channels,
    /// How long the request stays open, in milliseconds.
    pub timeout_ms: u64,
}

/// Where new approval requests are announced: a webhook, signed with
/// HMAC-SHA256 when a secret is configured.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct ApprovalConfig {
    /// The webhook URL, if any.
    pub webhook_url: Option<&'static str>,
    /// The environment variable holding the HMAC secret (read at run time).
    pub secret_env: Option<&'static str>,
    /// A secret written into the policy itself. Accepted as Intercept does,
    /// but it is embedded in the compiled binary: `validate` warns.
    pub secret: Option<&'static str>,
    /// Intercept's `dedupe_window`: how long an identical pending request is
    /// reused instead of creating another, in milliseconds.
    pub dedupe_window_ms: Option<u64>,
}

/// Whether the call may proceed.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum Effect {
    /// Forward the call.
    Allow,
    /// Answer it with a denial; it never reaches the server.
    Deny,
    /// Hold it until a person approves it ([`PolicyMeta::approval`] says
    /// how); nothing was reserved. Once approved, decide it again with
    /// [`Policy::decide_approved`], which reserves counters.
    Approve,
}

/// Why a decision came out the way it did.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum Outcome {
    /// No rule objected and every counter had room.
    Allowed,
    /// The tool is hidden.
    Hidden,
    /// The tool is not listed and the policy's default is deny.
    NotPermitted,
    /// A rule's condition denied the call.
    Check,
    /// A counter had no room.
    Limit,
    /// The amount to add to a counter could not be read from the arguments.
    BadAmount,
    /// The counter store failed and the fail mode is closed.
    StateUnavailable,
    /// An approval rule caught the call: a person must approve it first.
    ApprovalRequired,
}

/// The message for [`Outcome::StateUnavailable`].
pub const STATE_UNAVAILABLE: &str =
    "Policy state unavailable: the call needs a counter and the counter store did not answer";

/// A policy's verdict on one call: a few words (asserted by
/// `a_decision_stays_small`). The counter reservations of an allowed call
/// are not in it: [`Policy::decide`] writes them into a [`Ticket`] the
/// caller owns. Building one allocates nothing.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Decision {
    /// Why.
    pub outcome: Outcome,
    /// The deciding rule. For an allow it is `None`, except when the call
    /// was allowed without its limits being checked because the counter
    /// store failed under the open fail mode: then it names the first limit
    /// that could not be checked (and `message` is [`STATE_UNAVAILABLE`]).
    pub rule: Option<RuleId>,
    /// The denial message, without the `[POLICY DENIED]` prefix. For
    /// [`Outcome::Hidden`] and [`Outcome::NotPermitted`] the text names the
    /// tool and is produced by [`Decision::message`].
    pub message: &'static str,
    /// The idempotency window that applies to an allowed call (the first
    /// rule declaring one, in evaluation order); the session carries it out.
    pub idempotency: Option<&'static IdempotencySpec>,
}

impl Decision {
    /// A plain allow (its reservations, if any, are in the caller's ticket).
    pub const ALLOW: Decision = Decision {
        outcome: Outcome::Allowed,
        rule: None,
        message: "",
        idempotency: None,
    };

    /// A denial.
    pub const fn deny(outcome: Outcome, rule: RuleId, message: &'static str) -> Decision {
        Decision {
            outcome,
            rule: Some(rule),
            message,
            idempotency: None,
        }
    }

    /// An approval request by `rule`, asking with `message`. Nothing is
    /// reserved: counters are reserved when the approved call is decided
    /// again with [`Policy::decide_approved`].
    pub const fn approve(rule: RuleId, message: &'static str) -> Decision {
        Decision {
            outcome: Outcome::ApprovalRequired,
            rule: Some(rule),
            message,
            idempotency: None,
        }
    }

    /// The denial for a store failure under the closed fail mode.
    pub const fn state_unavailable(rule: RuleId) -> Decision {
        Decision::deny(Outcome::StateUnavailable, rule, STATE_UNAVAILABLE)
    }

    /// True for a call allowed only because the counter store failed and
    /// the fail mode is open: its limits were not enforced.
    pub fn allowed_unchecked(&self) -> bool {
        self.outcome == Outcome::Allowed && self.rule.is_some()
    }

    /// Allow, deny or ask for approval.
    pub fn effect(&self) -> Effect {
        match self.outcome {
            Outcome::Allowed => Effect::Allow,
            Outcome::ApprovalRequired => Effect::Approve,
            _ => Effect::Deny,
        }
    }

    /// The full denial message for a call of `tool` (empty for an allow).
    pub fn message(&self, tool: &str) -> Cow<'static, str> {
        self.message_on(Surface::Tool, tool)
    }

    /// The full denial message for a request on `surface` naming `name`
    /// (a tool, a resource URI, a prompt); empty for an allow.
    pub fn message_on(&self, surface: Surface, name: &str) -> Cow<'static, str> {
        match self.outcome {
            Outcome::Hidden => Cow::Owned(format!(
                "{} {} is hidden by policy",
                surface.title(),
                go_quote(name)
            )),
            Outcome::NotPermitted => Cow::Owned(format!(
                "{} {} is not permitted by policy",
                surface.title(),
                go_quote(name)
            )),
            _ => Cow::Borrowed(self.message),
        }
    }
}

/// Quotes `s` the way Go's `%q` does (Intercept's messages use it), so
/// messages match Intercept's byte for byte.
pub fn go_quote(s: &str) -> String {
    let mut out = String::with_capacity(s.len() + 2);
    out.push('"');
    for c in s.chars() {
        match c {
            '"' => out.push_str("\\\""),
            '\\' => out.push_str("\\\\"),
            '\u{7}' => out.push_str("\\a"),
            '\u{8}' => out.push_str("\\b"),
            '\u{c}' => out.push_str("\\f"),
            '\n' => out.push_str("\\n"),
            '\r' => out.push_str("\\r"),
            '\t' => out.push_str("\\t"),
            '\u{b}' => out.push_str("\\v"),
            '\u{fffd}' => out.push('\u{fffd}'),
            c if is_go_printable(c) => out.push(c),
            c if (c as u32) < 0x80 => {
                let _ = write!(out, "\\x{:02x}", c as u32);
            }
            c if (c as u32) < 0x10000 => {
                let _ = write!(out, "\\u{:04x}", c as u32);
            }
            c => {
                let _ = write!(out, "\\U{:08x}", c as u32);
            }
        }
    }
    out.push('"');
    out
}

/// An approximation of Go's `strconv.IsPrint`: everything but control,
/// format, separator (other than ASCII space) and private/unassigned characters.
fn is_go_printable(c: char) -> bool {
    if c == ' ' {
        return true;
    }
    if c.is_control() || c.is_whitespace() {
        return false;
    }
    let u = c as u32;
    // Format characters (Cf) and private use that Go escapes.
    !matches!(u,
        0xad | 0x600..=0x605 | 0x61c | 0x6dd | 0x70f | 0x180e | 0x200b..=0x200f
        | 0x202a..=0x202e | 0x2060..=0x2064 | 0x2066..=0x206f | 0xfeff | 0xfff9..=0xfffb
        | 0xe000..=0xf8ff | 0xf0000..=0x10ffff)
}

/// What happens when the counter store cannot answer.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub enum FailMode {
    /// Deny calls that need state (the default).
    #[default]
    Closed,
    /// Let them through uncounted.
    Open,
}

/// Everything a decision needs besides the call: counters, the clock, the session.
#[derive(Clone, Copy)]
pub struct Env<'a> {
    /// The counter store.
    pub counters: &'a dyn Counters,
    /// The time of the call.
    pub now: UnixMillis,
    /// The agent session (partitions per-session counters).
    pub session: u64,
    /// What to do when the store fails.
    pub fail_mode: FailMode,
    /// Who is calling: the validated token's principal over HTTP, the local
    /// user over stdio; None when the caller is unknown (a policy reading
    /// `principal.*` then sees missing values).
    pub principal: Option<&'a crate::Principal>,
}

impl<'a> Env<'a> {
    /// An environment at the current time, fail-closed, session 0, no principal.
    pub fn new(counters: &'a dyn Counters) -> Env<'a> {
        Env {
            counters,
            now: UnixMillis::now(),
            session: 0,
            fail_mode: FailMode::Closed,
            principal: None,
        }
    }

    /// Reads a counter for a condition. None when the store failed under the
    /// closed fail mode (deny with [`Decision::state_unavailable`]); under the
    /// open mode a failed read is 0.
    pub fn read(&self, counter: CounterRef) -> Option<u64> {
        match self.counters.read(counter, self.now) {
            Ok(v) => Some(v),
            Err(_) if self.fail_mode == FailMode::Open => Some(0),
            Err(_) => None,
        }
    }
}

/// A compiled server policy: generated code or the reference evaluator.
pub trait Policy: Send + Sync {
    /// Name, source, digest, rule table.
    fn meta(&self) -> &PolicyMeta;

    /// True when `tool` must be removed from `tools/list` and refused for
    /// this caller (`hide` rules may depend on the principal; None: the
    /// caller is unknown, and its principal paths read as missing).
    fn is_hidden(&self, tool: &str, principal: Option<&crate::Principal>) -> bool;

    /// True when the policy has rules or hides for `surface`. Tools are
    /// always governed; a policy without `resource` or `prompt` rules leaves
    /// those requests alone, and the proxy does not decide them at all.
    fn governs(&self, surface: Surface) -> bool {
        surface == Surface::Tool
    }

    /// [`Policy::is_hidden`] on any surface: true when the resource (by its
    /// normalised URI) or prompt is removed from its list and refused.
    fn is_hidden_on(
        &self,
        surface: Surface,
        name: &str,
        principal: Option<&crate::Principal>,
    ) -> bool {
        surface == Surface::Tool && self.is_hidden(name, principal)
    }

    /// True when a `resources/list`, `resources/templates/list` or
    /// `prompts/list` entry naming `name` (a normalised URI, a URI
    /// template's text, a prompt name) is shown to this caller: it is not
    /// hidden from it, and, under `default resource deny` /
    /// `default prompt deny`, some block matches it and no matching block
    /// denies unconditionally (a request for it could be permitted).
    fn is_listed_on(
        &self,
        surface: Surface,
        name: &str,
        principal: Option<&crate::Principal>,
    ) -> bool {
        !self.is_hidden_on(surface, name, principal)
    }

    /// The pattern, as the policy writes it, of the first resource or prompt
    /// block whose pattern matches `name` (a normalised URI, a prompt
    /// name); None when no block matches, and for tools. A bounded label
    /// for metrics: it comes from the policy, never from the request.
    fn block_on(&self, surface: Surface, name: &str) -> Option<&'static str> {
        let _ = (surface, name);
        None
    }

    /// Decides one call, reserving counters for an allowed one. `ticket`
    /// is emptied first; on return it holds the reservations of an allowed
    /// call (to commit or roll back) and nothing otherwise. The caller owns
    /// it (a ticket holds up to [`MAX_RESERVATIONS`] inline, a few hundred
    /// bytes), so the decision returned is a few words and nothing large
    /// is built or copied per call. A call an approval rule catches (and
    /// no deny rule denies) is [`Effect::Approve`], with nothing reserved.
    fn decide(&self, call: &ToolCall<'_>, env: &Env<'_>, ticket: &mut Ticket) -> Decision;

    /// Decides a call a person approved: approval rules are skipped, deny
    /// rules and limits apply as in [`Policy::decide`] and counters are
    /// reserved into `ticket` for an allowed call. Never
    /// [`Effect::Approve`]. Policies without approval rules decide as usual.
    fn decide_approved(&self, call: &ToolCall<'_>, env: &Env<'_>, ticket: &mut Ticket) -> Decision {
        self.decide(call, env, ticket)
    }

    /// Adds to `out` the spend budgets (MPP) that apply to `call`, in rule
    /// order, with their counters partitioned for this call. Synchronous and
    /// allocation-free like [`Policy::decide`]; the price is only known when
    /// the server answers, so the proxy checks it then. Policies without
    /// budgets add nothing.
    fn spend(&self, call: &ToolCall<'_>, env: &Env<'_>, out: &mut crate::spend::Budgets) {
        let _ = (call, env, out);
    }

    /// Calls `each` with every argument a `path()` condition reads in the
    /// rules that apply to `tool` (member names from the arguments down,
    /// e.g. `["path"]` for `path(args.path)`), each once per block that
    /// reads it (the same argument may come twice). The proxy resolves
    /// these through symlinks when it started the server itself
    /// (docs/surfaces.md, "Symlinks"). Generated code calls it with static
    /// slices; policies without `path()` conditions call it never.
    fn path_args(&self, tool: &str, each: &mut dyn FnMut(&[&str])) {
        let _ = (tool, each);
    }

    /// The policy's result rules (`results:`, docs/results.md), in policy order.
    fn result_rules(&self) -> &[crate::results::ResultRule] {
        &[]
    }

    /// The result rule for answers of `tool` (generated code matches the
    /// name; see [`crate::results::for_tool`] for which rule wins).
    fn result_rule(&self, tool: &str) -> Option<&crate::results::ResultRule> {
        crate::results::for_tool(self.result_rules(), tool)
    }

    /// The result rule for a `resources/read` of `uri`: None unless some
    /// result rule names resources ([`crate::results::for_resource`]).
    fn resource_result_rule(&self, uri: &str) -> Option<&crate::results::ResultRule> {
        crate::results::for_resource(self.result_rules(), uri)
    }
}

/// A borrowed policy is a policy: the embedded `&'static dyn Policy` table
/// and an owned evaluator can stand side by side as `Box<dyn Policy>`.
impl<P: Policy + ?Sized> Policy for &P {
    fn meta(&self) -> &PolicyMeta {
        (**self).meta()
    }

    fn is_hidden(&self, tool: &str, principal: Option<&crate::Principal>) -> bool {
        (**self).is_hidden(tool, principal)
    }

    fn governs(&self, surface: Surface) -> bool {
        (**self).governs(surface)
    }

    fn is_hidden_on(
        &self,
        surface: Surface,
        name: &str,
        principal: Option<&crate::Principal>,
    ) -> bool {
        (**self).is_hidden_on(surface, name, principal)
    }

    fn is_listed_on(
        &self,
        surface: Surface,
        name: &str,
        principal: Option<&crate::Principal>,
    ) -> bool {
        (**self).is_listed_on(surface, name, principal)
    }

    fn block_on(&self, surface: Surface, name: &str) -> Option<&'static str> {
        (**self).block_on(surface, name)
    }

    fn decide(&self, call: &ToolCall<'_>, env: &Env<'_>, ticket: &mut Ticket) -> Decision {
        (**self).decide(call, env, ticket)
    }

    fn decide_approved(&self, call: &ToolCall<'_>, env: &Env<'_>, ticket: &mut Ticket) -> Decision {
        (**self).decide_approved(call, env, ticket)
    }

    fn spend(&self, call: &ToolCall<'_>, env: &Env<'_>, out: &mut crate::spend::Budgets) {
        (**self).spend(call, env, out)
    }

    fn path_args(&self, tool: &str, each: &mut dyn FnMut(&[&str])) {
        (**self).path_args(tool, each)
    }

    fn result_rules(&self) -> &[crate::results::ResultRule] {
        (**self).result_rules()
    }

    fn result_rule(&self, tool: &str) -> Option<&crate::results::ResultRule> {
        (**self).result_rule(tool)
    }

    fn resource_result_rule(&self, uri: &str) -> Option<&crate::results::ResultRule> {
        (**self).resource_result_rule(uri)
    }
}

/// The counter phase of a decision: the limit rules that apply to a call, in
/// order, then one atomic reservation for all of them.
///
/// `N` is how many limits it can hold: generated code sizes it to the
/// limit rules a function can push (at most [`MAX_RESERVATIONS`]), since
/// every limited call initialises the whole table (eight requests and
/// owners are about 500 bytes); the evaluator uses the default.
pub struct Limits<const N: usize = MAX_RESERVATIONS> {
    len: usize,
    requests: [ReserveRequest; N],
    owners: [(RuleId, &'static str); N],
}

impl<const N: usize> Default for Limits<N> {
    fn default() -> Self {
        Limits::new()
    }
}

impl<const N: usize> Limits<N> {
    /// No limits yet.
    pub const fn new() -> Limits<N> {
        Limits {
            len: 0,
            requests: [ReserveRequest {
                counter: CounterRef {
                    spec: &UNUSED_COUNTER,
                    partition: 0,
                },
                amount: 0,
                limit: 0,
            }; N],
            owners: [(RuleId(0), ""); N],
        }
    }

    /// Adds one limit: `amount` on `counter`, at most `limit`, denied with `message` when full.
    pub fn push(
        &mut self,
        rule: RuleId,
        counter: CounterRef,
        amount: u64,
        limit: u64,
        message: &'static str,
    ) {
        // The compiler rejects policies with more limits per call than fit,
        // so a full table here is a compiler bug: fail loudly in tests.
        debug_assert!(self.len < N, "too many limits for one call");
        if self.len < N {
            self.requests[self.len] = ReserveRequest {
                counter,
                amount,
                limit,
            };
            self.owners[self.len] = (rule, message);
            self.len += 1;
        }
    }

    /// The decision of a call that is `asked` about (an approval rule's
    /// [`Effect::Approve`] decision) or not (None): [`Limits::peek`] or
    /// [`Limits::finish`] (reserving into `ticket`).
    pub fn decide(&self, env: &Env<'_>, asked: Option<Decision>, ticket: &mut Ticket) -> Decision {
        match asked {
            Some(d) => self.peek(env, d),
            None => self.finish(env, ticket),
        }
    }

    /// For a call an approval rule holds: reads every counter without
    /// reserving anything and denies at once when a limit would refuse the
    /// call (no person is asked about a call that would then be refused),
    /// else returns `asked`. A counter the store cannot read denies the call
    /// as unavailable (fail closed; an open fail mode reads it as 0). The
    /// reservation when the approved call is forwarded stays the real check.
    pub fn peek(&self, env: &Env<'_>, asked: Decision) -> Decision {
        for (r, &(rule, message)) in self.requests[..self.len].iter().zip(&self.owners) {
            if r.amount == 0 {
                continue;
            }
            match env.read(r.counter) {
                Some(current) if current.saturating_add(r.amount) > r.limit => {
                    return Decision::deny(Outcome::Limit, rule, message);
                }
                Some(_) => {}
                None => return Decision::state_unavailable(rule),
            }
        }
        asked
    }

    /// Reserves everything at once into `ticket` (empty when given) and
    /// returns the decision; `ticket` is left empty unless the call is
    /// allowed with its limits checked.
    ///
    /// Always inlined into the generated tool functions (an out-of-line
    /// call cost a decision's worth of stores and copies per call when a
    /// decision still carried its ticket; inlined, the reservation writes
    /// straight into the caller's ticket).
    #[inline(always)]
    pub fn finish(&self, env: &Env<'_>, ticket: &mut Ticket) -> Decision {
        if self.len == 0 {
            return Decision::ALLOW;
        }
        match env
            .counters
            .reserve(&self.requests[..self.len], env.now, ticket)
        {
            Ok(ReserveOutcome::Reserved) => Decision::ALLOW,
            Ok(ReserveOutcome::Refused { index }) => {
                ticket.clear();
                let (rule, message) = self.owners[index.min(self.len - 1)];
                Decision::deny(Outcome::Limit, rule, message)
            }
            Err(_) if env.fail_mode == FailMode::Open => {
                ticket.clear();
                Decision {
                    rule: Some(self.owners[0].0),
                    message: STATE_UNAVAILABLE,
                    ..Decision::ALLOW
                }
            }
            Err(_) => {
                ticket.clear();
                Decision::state_unavailable(self.owners[0].0)
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn go_quote_matches_go() {
        assert_eq!(go_quote("no drops"), r#""no drops""#);
        assert_eq!(go_quote(r#"a"b\c"#), r#""a\"b\\c""#);
        assert_eq!(go_quote("tab\there\n"), r#""tab\there\n""#);
        assert_eq!(go_quote("\u{1}"), r#""\x01""#);
        assert_eq!(go_quote("é😀"), "\"é😀\"");
        assert_eq!(go_quote("\u{200b}"), r#""\u200b""#);
    }

    #[test]
    fn an_approval_request_is_its_own_effect_and_reserves_nothing() {
        let d = Decision::approve(RuleId(3), "Refunds over $1,000 need a human");
        assert_eq!(d.effect(), Effect::Approve);
        assert_eq!(d.outcome, Outcome::ApprovalRequired);
        assert_eq!(d.rule, Some(RuleId(3)));
        assert!(!d.allowed_unchecked());
        assert_eq!(d.message("x"), "Refunds over $1,000 need a human");
        assert_eq!(Channels::BOTH.name(), "client | operator");
        static SPECS: [ApprovalSpec; 1] = [ApprovalSpec {
            rule: RuleId(3),
            message: "m",
            channels: Channels {
                client: false,
                operator: true,
            },
            timeout_ms: 60_000,
        }];
        let meta = PolicyMeta {
            server: "s",
            file: "s.policy",
            dialect: "dsl",
            digest: "",
            rules: &[],
            counters: &[],
            idempotency: &[],
            approvals: &SPECS,
            approval_config: None,
        };
        assert_eq!(
            meta.approval(RuleId(3)).map(|a| a.channels.name()),
            Some("operator")
        );
        assert!(meta.approval(RuleId(2)).is_none());
    }

    /// A decision is returned, and copied, by value on every call: its size
    /// is paid per decision. The reservations (the ticket's eight inline
    /// entries, 40 bytes each) live in a ticket the caller owns, so a
    /// decision is five words: this bound keeps it there (it was 376 bytes,
    /// and 448 before that, while it carried the ticket).
    #[test]
    fn a_decision_stays_small() {
        assert_eq!(std::mem::size_of::<Ticket>(), 336);
        assert!(
            std::mem::size_of::<Decision>() <= 40,
            "Decision is {} bytes",
            std::mem::size_of::<Decision>()
        );
    }

    #[test]
    fn messages_name_the_tool() {
        let d = Decision::deny(Outcome::Hidden, RuleId(0), "");
        assert_eq!(
            d.message("delete_repo"),
            r#"Tool "delete_repo" is hidden by policy"#
        );
        let d = Decision::deny(Outcome::NotPermitted, RuleId(0), "");
        assert_eq!(
            d.message("x\"y"),
            r#"Tool "x\"y" is not permitted by policy"#
        );
        let d = Decision::deny(Outcome::Hidden, RuleId(0), "");
        assert_eq!(
            d.message_on(Surface::Resource, "file:///etc/shadow"),
            r#"Resource "file:///etc/shadow" is hidden by policy"#
        );
    }
}
