//! Enforcement for one MCP session, independent of the transport.
//!
//! A transport hands every message from the client to [`Session::from_client`]
//! and every message from the server to [`Session::from_server`], and does
//! what the returned [`Outcome`] says: forward bytes (the original bytes,
//! unless a `tools/list` result was filtered) and/or answer the sender. The
//! session keeps the client's requests in flight, keyed by the JSON value of
//! their id, so each answer settles the counters of the call it belongs to
//! and `tools/list` answers are filtered.

use smallvec::{SmallVec, smallvec};
use std::borrow::Cow;
use std::collections::HashMap;
use std::sync::{Arc, Mutex, RwLock};
use std::time::{Duration, Instant};

use super::audit::{AuditLog, Event, Verdict};
use super::log::Log;
use super::metrics::Metrics;
use super::respond;
use crate::approvals::{self as apr, ApprovalStore, NewRequest, Record, Resolution};
use crate::elicit;
use crate::filter::{FilterError, SERVER_ANSWER, filter_scanned, filter_tools_list};
use crate::idempotency::{self as idem, Refusal};
use crate::surfaces;
use portcullis_core::call::Surface;
use portcullis_core::counters::{Counters, NoWait, Ticket, UnixMillis};
use portcullis_core::idempotency::{
    Claim, IdemKey, IdempotencyMode, IdempotencySpec, MAX_REPLAY_BYTES,
};
use portcullis_core::json::{Strictness, Val, Value, validate};
use portcullis_core::jsonrpc::{Envelope, RejectKind, ambiguous_answer_envelope};
use portcullis_core::policy::{Channels, Effect, Env, FailMode, Policy};
use portcullis_core::structural::{AnswerOutline, Scan, scan_answer};
use std::sync::atomic::{AtomicU64, Ordering};

/// JSON-RPC error code for "the upstream did not answer in time".
pub const UPSTREAM_TIMEOUT: i32 = -32001;
/// JSON-RPC error code for "the upstream went away".
pub const UPSTREAM_GONE: i32 = -32000;
/// JSON-RPC error code for an upstream answer the proxy refused to pass on
/// (JSON-RPC's internal error, as the server failed, not the client).
pub const UPSTREAM_BAD_ANSWER: i32 = portcullis_core::jsonrpc::INTERNAL_ERROR;

/// The message of the error that replaces an upstream answer whose
/// envelope is ambiguous (docs/cli.md).
pub const AMBIGUOUS_ANSWER: &str = "the upstream answer was refused by the proxy: its envelope has a member in another letter case or twice (ambiguous)";

pub use crate::id::IdKey;
use crate::id::SmallBytes;

/// Requests awaiting their answer, by id. foldhash (randomly seeded per
/// process) instead of std's SipHash: a lookup per message either way, and
/// SipHash was a measurable share of a forwarded call's CPU. Ids are chosen
/// by the client, but a client aiming ids at one bucket only slows its own
/// session's map.
type PendingMap = HashMap<IdKey, Pending, foldhash::fast::RandomState>;

/// The reservations an allowed call holds until its answer: boxed only
/// when there are some. A call that reserves nothing (no limit applies to
/// it) allocates nothing and copies no ticket (336 bytes) into its pending
/// entry; it reads as [`Ticket::EMPTY`], so committing or rolling it back
/// does what it did with an empty ticket in a box.
#[derive(Debug)]
struct Reserved(Option<Box<Ticket>>);

impl Reserved {
    fn new(ticket: Ticket) -> Reserved {
        Reserved((ticket != Ticket::EMPTY).then(|| Box::new(ticket)))
    }
}

impl std::ops::Deref for Reserved {
    type Target = Ticket;
    fn deref(&self) -> &Ticket {
        match &self.0 {
            Some(ticket) => ticket,
            None => &Ticket::EMPTY,
        }
    }
}

#[derive(Debug)]
enum Kind {
    /// An allowed `tools/call` holding counter reservations.
    Call(Reserved),
    /// A `tools/list`: its answer is filtered.
    List,
    /// A `resources/list`, `resources/templates/list` or `prompts/list` of
    /// a surface the policy governs: its answer is filtered
    /// (surface, the result's array, each entry's naming member, the method).
    SurfaceList(Surface, &'static str, &'static str, &'static str),
    /// Any other request.
    Other,
    /// The client's `initialize`: its answer names the protocol revision.
    Initialize,
    /// A call held for approval while the client asks its user (the
    /// elicitation id): never forwarded unless approved.
    Asking(String),
    /// Timed out and answered by the proxy; a late answer is dropped.
    Abandoned,
}

#[derive(Debug)]
struct Pending {
    kind: Kind,
    since: Instant,
    /// The id as the client wrote it (inline when short: no allocation).
    raw_id: SmallBytes,
    /// A call to a tool with spend budgets (MPP): its answer may be a
    /// payment challenge, or settle a payment.
    paid: Option<Box<Paid>>,
    /// The idempotency record this call owns (forwarded first calls only).
    idem: Option<Box<IdemClaim>>,
    /// The approval this call consumed (operator flow): given back when
    /// the upstream answers with a JSON-RPC error.
    approval: Option<Box<Granted>>,
    /// The result rule its answer is checked against (docs/results.md).
    results: Option<Box<crate::results::Watch>>,
}

/// An approval consumed by a forwarded call.
#[derive(Debug)]
struct Granted {
    id: String,
    tool: String,
    rule: String,
}

/// A call held while the client asks its user (in-band approval).
#[derive(Debug)]
struct Asking {
    /// The original request (`tools/call`, `resources/read`,
    /// `resources/subscribe`, `prompts/get`), forwarded unchanged on approval.
    call: Vec<u8>,
    /// Its id: raw JSON, and as a key of the pending map.
    raw_id: Vec<u8>,
    key: IdKey,
    /// A tool call, or a resource or prompt request (answered with an error).
    surface: Surface,
    /// The tool, or `resource:URI` / `prompt:NAME`.
    tool: String,
    /// The approval rule and its message (for results and the decision log).
    rule: Option<portcullis_core::policy::RuleId>,
    rule_name: String,
    message: &'static str,
    meta: &'static portcullis_core::policy::PolicyMeta,
    /// When the user's answer is no longer awaited.
    deadline: Instant,
    timeout_ms: u64,
}

impl Asking {
    /// The approval decision that held the call (for result `_meta`).
    fn decision(&self) -> portcullis_core::policy::Decision {
        let mut d = portcullis_core::policy::Decision::deny(
            portcullis_core::policy::Outcome::ApprovalRequired,
            self.rule.unwrap_or(portcullis_core::policy::RuleId(0)),
            self.message,
        );
        d.rule = self.rule;
        d
    }
}

/// What the session knows of its client from `initialize`.
#[derive(Debug, Default)]
struct Peer {
    /// It declared `elicitation` with form mode.
    can_elicit: bool,
    /// The protocol revision the server's `initialize` answer named.
    protocol: Option<String>,
}

/// A message for the client that belongs to a call held for in-band
/// approval: the elicitation request, its withdrawal, and the call's final
/// answer when the proxy gives it. A transport with one output (stdio)
/// writes them in order; Streamable HTTP sends them on the stream of the
/// POST that carried the call.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ForCall {
    /// The raw JSON id of the held `tools/call`.
    pub call_id: Vec<u8>,
    /// The message.
    pub message: Vec<u8>,
    /// Nothing more will come for this call from the proxy itself (it was
    /// answered or cancelled; a forwarded call's answer comes from upstream).
    pub last: bool,
}

/// What handling a client message produced besides forwarding it as it
/// came and one reply: owned messages to forward (an approved call), and
/// messages for held calls.
#[derive(Debug, Default)]
struct Extra {
    forward: Vec<Vec<u8>>,
    for_call: Vec<ForCall>,
}

/// What the approval records say about a call an approval rule holds.
enum Held {
    /// Approved earlier and now consumed by this call.
    Granted(Record),
    /// Waiting for a person.
    Pending(Record),
    /// A person denied this very call.
    Denied(Record),
    /// Not held (and not forwarded): why, for the agent.
    Refused(String),
}

/// What a call to a paid tool needs when its answer comes.
struct Paid {
    tool: String,
    budgets: portcullis_core::spend::Budgets,
    /// The policy that found the budgets (rule names).
    meta: &'static portcullis_core::policy::PolicyMeta,
    /// A paid retry: the reservation its credential claimed.
    claimed: Option<crate::mpp::Hold>,
}

impl std::fmt::Debug for Paid {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Paid")
            .field("tool", &self.tool)
            .field("claimed", &self.claimed.is_some())
            .finish()
    }
}

impl Drop for Paid {
    /// A paid retry that ends without an answer (timed out, cancelled, the
    /// upstream gone) keeps its reservation: the proxy cannot know whether
    /// money moved, so it counts it.
    fn drop(&mut self) {
        if let Some(h) = self.claimed.take() {
            h.commit();
        }
    }
}

/// An idempotency key claimed by a forwarded call, settled by its answer.
#[derive(Debug)]
struct IdemClaim {
    key: IdemKey,
    token: u64,
    window_ms: u64,
}

/// What to do with one message.
#[derive(Debug, Default)]
pub struct Outcome<'a> {
    /// Messages to pass on to the other side, in order (without newlines);
    /// one message (the common case) is held inline, without an allocation.
    pub forward: SmallVec<[Cow<'a, [u8]>; 1]>,
    /// Messages to send back to the side the message came from.
    pub reply: Vec<Vec<u8>>,
    /// Messages for the client about calls held for in-band approval
    /// (after `reply`, in order).
    pub for_call: Vec<ForCall>,
}

impl<'a> Outcome<'a> {
    /// The same outcome, owning its bytes (for a message handled on another
    /// thread), for any lifetime: `Outcome` is not covariant (its forward
    /// list is a `SmallVec`), so an owned outcome is relabelled this way.
    pub fn into_owned<'b>(self) -> Outcome<'b> {
        Outcome {
            forward: self
                .forward
                .into_iter()
                .map(|f| Cow::Owned(f.into_owned()))
                .collect(),
            reply: self.reply,
            for_call: self.for_call,
        }
    }

    fn add(&mut self, extra: Extra) {
        self.forward
            .extend(extra.forward.into_iter().map(Cow::Owned));
        self.for_call.extend(extra.for_call);
    }

    fn forward(bytes: Cow<'a, [u8]>) -> Outcome<'a> {
        Outcome {
            forward: smallvec![bytes],
            ..Outcome::default()
        }
    }

    fn reply(bytes: Vec<u8>) -> Outcome<'a> {
        Outcome {
            reply: vec![bytes],
            ..Outcome::default()
        }
    }

    /// One message: forwarded as it came or not, and maybe a reply.
    fn single(message: &'a [u8], forward: bool, reply: Option<Vec<u8>>) -> Outcome<'a> {
        Outcome {
            forward: if forward {
                smallvec![Cow::Borrowed(message)]
            } else {
                SmallVec::new()
            },
            reply: reply.into_iter().collect(),
            for_call: Vec::new(),
        }
    }
}

/// May a decision wait on the counter store?
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Wait {
    /// Yes: this runs where waiting is fine (a blocking thread, or a store
    /// that never waits).
    Yes,
    /// No: this runs on the event loop; give up rather than wait.
    No,
}

/// Messages the proxy originates when requests expire.
#[derive(Debug, Default)]
pub struct Expired {
    /// Error answers for the client.
    pub to_client: Vec<Vec<u8>>,
    /// `notifications/cancelled` for the server.
    pub to_server: Vec<Vec<u8>>,
}

/// The policy a proxy process enforces now: one per process, shared by its
/// sessions, swapped by a reload.
pub struct PolicySlot {
    current: RwLock<&'static dyn Policy>,
}

impl PolicySlot {
    /// A slot holding `policy`.
    pub fn new(policy: &'static dyn Policy) -> PolicySlot {
        PolicySlot {
            current: RwLock::new(policy),
        }
    }

    /// The policy enforced now.
    pub fn get(&self) -> &'static dyn Policy {
        // The lock only guards a pointer copy, so a poisoned lock still holds a valid policy.
        *self.current.read().unwrap_or_else(|e| e.into_inner())
    }

    /// Enforces `policy` from the next message on. Calls already decided keep
    /// their decision, and their counter reservations are committed or rolled
    /// back as before: counters are keyed by name and window, not by policy.
    /// `metrics`, when kept, get the new policy's rule table first.
    pub fn replace(&self, policy: &'static dyn Policy, metrics: Option<&Metrics>) {
        if let Some(m) = metrics {
            m.policy(policy.meta());
        }
        *self.current.write().unwrap_or_else(|e| e.into_inner()) = policy;
    }
}

/// One MCP session's enforcement state.
pub struct Session {
    /// Swapped by a reload (`-c FILE` in development builds); read once per
    /// message; shared by the sessions of one proxy process.
    policy: Arc<PolicySlot>,
    counters: Arc<dyn Counters>,
    /// The counter store does I/O (SQLite, Redis).
    store_may_block: bool,
    /// Approval records of the operator flow (beside the counters).
    approvals: Arc<dyn ApprovalStore>,
    /// Operator flow: announces new approval requests (the policy's webhook).
    webhook: Option<crate::webhook::Webhook>,
    /// Operator flow: answer held calls as Intercept does (JSON-RPC error -32003).
    intercept_approval_errors: bool,
    session: u64,
    fail_mode: FailMode,
    pending: Mutex<PendingMap>,
    audit: Option<AuditLog>,
    metrics: Option<Arc<Metrics>>,
    log: Log,
    /// Who calls: the claims of the bearer token that opened the session,
    /// or the process's caller (the local user, `--principal-claims`);
    /// None: unknown (library users that set none).
    principal: Option<Arc<portcullis_core::Principal>>,
    /// What `initialize` said about the client.
    peer: Mutex<Peer>,
    /// Calls held while the client asks its user, by elicitation id.
    asking: Mutex<HashMap<String, Asking>>,
    /// The number of the last elicitation id minted.
    asked: AtomicU64,
    /// Decide `file://` resource reads on their resolved path too
    /// ([`crate::symlinks`]): the server is a local child.
    resolve_symlinks: bool,
}

/// What deciding a read on the path it resolves to adds ([`Session::resolved`]).
enum Resolve {
    /// Nothing: the decision stands.
    Keep,
    /// The decision stands; the URI resolves to this one (whose result
    /// rule applies to the answer too).
    Target(String),
    /// The store would block: decide again off the event loop.
    Wait,
    /// The resolved URI is denied (or held for an approval): its decision.
    Denied(String, portcullis_core::policy::Decision),
    /// The path cannot be resolved: fail closed.
    Unresolvable(String),
}

/// What deciding a request's symlink target found ([`Session::decide_target`]).
enum Target {
    /// The decision as sent stands (with the target's own reservations,
    /// if any, added to its ticket).
    Stands,
    /// The store would block: decide again off the event loop.
    Wait,
    /// The target's decision is the decision: a denial (a limit only the
    /// target carries included), or an approval the request as sent did
    /// not need.
    Decided(portcullis_core::policy::Decision),
    /// The two decisions' reservations do not fit one ticket: fail closed.
    Full,
}

/// Why a request whose target's reservations do not fit is refused.
const TOO_MANY_LIMITS: &str =
    "more limits apply to it and to what it resolves to than one call can reserve (8)";

/// What resolving a tool call's path arguments decided ([`Session::resolved_call`]).
enum ResolveCall {
    /// Nothing: the decision stands.
    Keep,
    /// The store would block: decide again off the event loop.
    Wait,
    /// Denied (or held for an approval) on the resolved arguments: that
    /// decision, and what resolved to what.
    Decided(portcullis_core::policy::Decision, String),
    /// An argument cannot be resolved: fail closed with this message.
    Unresolvable(String),
}

impl Session {
    /// A session enforcing `policy` with `counters`.
    pub fn new(
        policy: &'static dyn Policy,
        counters: Arc<dyn Counters>,
        session: u64,
        fail_mode: FailMode,
        audit: Option<AuditLog>,
        log: Log,
    ) -> Session {
        Session {
            policy: Arc::new(PolicySlot::new(policy)),
            store_may_block: counters.may_block(),
            counters,
            approvals: Arc::new(apr::MemoryApprovals::new()),
            webhook: None,
            intercept_approval_errors: false,
            session,
            fail_mode,
            pending: Mutex::new(PendingMap::default()),
            audit,
            metrics: None,
            log,
            principal: None,
            peer: Mutex::new(Peer::default()),
            asking: Mutex::new(HashMap::new()),
            asked: AtomicU64::new(0),
            resolve_symlinks: false,
        }
    }

    /// Decides `resources/read` and `resources/subscribe` of local
    /// `file://` URIs on the path they resolve to as well
    /// ([`crate::symlinks`]; for a server this proxy started itself).
    pub fn with_symlink_resolution(mut self, on: bool) -> Session {
        self.resolve_symlinks = on;
        self
    }

    /// Keeps approval records in `store` (the proxy's shared store: every
    /// session of a process, and with SQLite every process, sees the same
    /// records). Without it a session keeps its own in memory.
    pub fn with_approvals(mut self, store: Arc<dyn ApprovalStore>) -> Session {
        self.approvals = store;
        self
    }

    /// Announces each new approval request with `webhook` (never waits).
    pub fn with_webhook(mut self, webhook: Option<crate::webhook::Webhook>) -> Session {
        self.webhook = webhook;
        self
    }

    /// Answers a call held for approval as Intercept does: a JSON-RPC error
    /// `-32003` ([`apr::intercept_error`]) instead of an `isError` result.
    pub fn with_intercept_approval_errors(mut self, on: bool) -> Session {
        self.intercept_approval_errors = on;
        self
    }

    /// Records Prometheus metrics of this session's decisions and upstream latency.
    pub fn with_metrics(mut self, metrics: Arc<Metrics>) -> Session {
        self.metrics = Some(metrics);
        self
    }

    /// Enforces whatever `slot` holds (sessions of one process share it, so
    /// a reload reaches every session at once).
    pub fn with_policy_slot(mut self, slot: Arc<PolicySlot>) -> Session {
        self.policy = slot;
        self
    }

    /// The caller this session acts for (extracted once per token by
    /// [`crate::jwt`], or once per process for the local user). Decisions
    /// read it through `Env::principal` (borrowed, never copied per
    /// decision); decision-log lines name its `sub` and `iss`.
    pub fn with_principal(mut self, principal: Option<Arc<portcullis_core::Principal>>) -> Session {
        self.principal = principal;
        self
    }

    /// The caller this session acts for, if known.
    pub fn principal(&self) -> Option<&Arc<portcullis_core::Principal>> {
        self.principal.as_ref()
    }

    /// The policy enforced now.
    pub fn policy(&self) -> &'static dyn Policy {
        self.policy.get()
    }

    /// Enforces `policy` from the next message on, in every session sharing
    /// this one's policy slot (see [`PolicySlot::replace`]).
    pub fn replace_policy(&self, policy: &'static dyn Policy) {
        self.policy.replace(policy, self.metrics.as_deref());
    }

    fn pending(&self) -> std::sync::MutexGuard<'_, PendingMap> {
        // Every critical section leaves the map consistent, so a poisoned lock is usable.
        self.pending.lock().unwrap_or_else(|e| e.into_inner())
    }

    fn peer(&self) -> std::sync::MutexGuard<'_, Peer> {
        self.peer.lock().unwrap_or_else(|e| e.into_inner())
    }

    fn asking(&self) -> std::sync::MutexGuard<'_, HashMap<String, Asking>> {
        self.asking.lock().unwrap_or_else(|e| e.into_inner())
    }

    /// Whether the client declared the `elicitation` capability (form mode)
    /// in its `initialize` request.
    pub fn client_can_elicit(&self) -> bool {
        self.peer().can_elicit
    }

    /// Number of client requests waiting for an answer.
    pub fn in_flight(&self) -> usize {
        self.pending()
            .values()
            .filter(|p| !matches!(p.kind, Kind::Abandoned))
            .count()
    }

    /// Handles one client line on the event loop, unless that would mean
    /// waiting on the counter store: `None` then, and nothing was done (no
    /// counter touched, nothing registered or logged).
    ///
    /// With the in-memory store this is always [`Session::from_client`].
    /// With a store that does I/O ([`Counters::may_block`]) a `tools/call` is
    /// decided through [`NoWait`]: SQLite answers when its lock is free at
    /// once (the usual case, a few microseconds), Redis never does (a round
    /// trip). A batch with such a store is always `None`.
    ///
    /// On `None` a transport hands the line to
    /// [`Session::from_client_blocking`] and waits for its outcome before it
    /// handles the client's next message: messages from the client keep
    /// their order (a call is forwarded before anything the client sent
    /// after it), while the event loop stays free to relay the server's
    /// messages (answers, progress, pings, requests) and to serve other
    /// sessions.
    pub fn from_client_now<'a>(&self, line: &'a [u8]) -> Option<Outcome<'a>> {
        // The policy is read each time: a reload may add or drop counters.
        // A call with an idempotency window may wait for an identical one
        // in flight: never on the event loop.
        let meta = self.policy().meta();
        // Approval records in a store that does I/O: never on the event loop.
        if (!self.store_may_block || meta.counters.is_empty())
            && meta.idempotency.is_empty()
            && (meta.approvals.is_empty() || !self.approvals.may_block())
        {
            return Some(self.from_client(line));
        }
        let trimmed = trim(line);
        match trimmed.first() {
            None => Some(Outcome::default()),
            Some(b'[') => None,
            Some(_) => {
                let mut extra = Extra::default();
                let (forward, reply) = self.client_message(trimmed, Wait::No, &mut extra)?;
                let mut out = Outcome::single(trimmed, forward, reply);
                out.add(extra);
                Some(out)
            }
        }
    }

    /// [`Session::from_client`] on tokio's blocking thread pool, for a line
    /// [`Session::from_client_now`] did not handle: the decision's reservation
    /// (a SQLite transaction, a Redis round trip) waits there, not on the
    /// event loop.
    pub async fn from_client_blocking<'b>(self: Arc<Self>, line: Vec<u8>) -> Outcome<'b> {
        let log = self.log;
        match tokio::task::spawn_blocking(move || self.from_client(&line).into_owned()).await {
            // Owned already: only relabelled, nothing copied.
            Ok(out) => out.into_owned(),
            Err(e) => {
                // A bug, not a policy outcome: nothing is forwarded.
                log.error(format_args!("deciding a client message failed: {e}"));
                Outcome::reply(respond::refusal(None, RejectKind::Internal))
            }
        }
    }

    /// Handles one line from the client. A JSON-RPC batch is split: every
    /// element is checked on its own, allowed ones are forwarded as single
    /// messages (servers since MCP 2025-06-18 do not accept batches), and
    /// refused ones are answered one by one.
    pub fn from_client<'a>(&self, line: &'a [u8]) -> Outcome<'a> {
        let trimmed = trim(line);
        if trimmed.is_empty() {
            return Outcome::default();
        }
        let mut extra = Extra::default();
        if trimmed[0] != b'[' {
            let (forward, reply) = self.client_message_waiting(trimmed, &mut extra);
            let mut out = Outcome::single(trimmed, forward, reply);
            out.add(extra);
            return out;
        }
        if let Err(e) = validate(trimmed, Strictness::LENIENT) {
            self.log.warn(format_args!(
                "client sent invalid JSON ({e}); answered -32700"
            ));
            return Outcome::reply(respond::refusal(None, RejectKind::NotJson));
        }
        let Val::Array(items) = Value::from_validated(trimmed).val() else {
            return Outcome::default();
        };
        if items.is_empty() {
            return Outcome::reply(respond::refusal(None, RejectKind::EmptyBatch));
        }
        let mut out = Outcome::default();
        for item in items.iter() {
            let (forward, reply) = self.client_message_waiting(item.as_bytes(), &mut extra);
            if forward {
                out.forward.push(Cow::Borrowed(item.as_bytes()));
            }
            out.reply.extend(reply);
        }
        out.add(extra);
        out
    }

    /// [`Session::client_message`] with [`Wait::Yes`], which always decides.
    fn client_message_waiting(&self, raw: &[u8], extra: &mut Extra) -> (bool, Option<Vec<u8>>) {
        self.client_message(raw, Wait::Yes, extra)
            .unwrap_or_else(|| {
                // Unreachable: only Wait::No gives up. Refuse rather than forward unchecked.
                (false, Some(respond::refusal(None, RejectKind::Internal)))
            })
    }

    /// One client message: whether to forward `raw`, and the reply to the client if any. `None`
    /// only with [`Wait::No`], when the decision would wait on the store
    /// (and then nothing was pushed to `extra`).
    fn client_message(
        &self,
        raw: &[u8],
        wait: Wait,
        extra: &mut Extra,
    ) -> Option<(bool, Option<Vec<u8>>)> {
        let env = match Envelope::parse(raw) {
            Ok(env) => env,
            Err(r) => {
                self.log.warn(format_args!("refused a client message: {r}"));
                return Some((
                    false,
                    Some(respond::refusal(r.id.map(|v| v.as_bytes()), r.kind())),
                ));
            }
        };
        if env.method_is("tools/call") {
            return self.tools_call(&env, wait, extra, false);
        }
        // Resources and prompts, when the policy has rules for them.
        if env.id.is_some() {
            for (method, surface) in [
                ("resources/read", Surface::Resource),
                ("resources/subscribe", Surface::Resource),
                ("prompts/get", Surface::Prompt),
            ] {
                if env.method_is(method) && self.policy().governs(surface) {
                    return self.surface_request(&env, surface, wait, extra, false);
                }
            }
        }
        if env.method.is_some() {
            let Some(id) = env.id else {
                if env.method_is("notifications/cancelled") {
                    // A call held for approval never reached the server:
                    // its cancellation is the proxy's.
                    let held = self.client_cancelled(&env, extra);
                    return Some((!held, None));
                }
                return Some((true, None)); // a notification
            };
            let key = match IdKey::of_request(id) {
                Ok(key) => key,
                Err(why) => return Some((false, Some(refuse_id(id, why)))),
            };
            let kind = if env.method_is("tools/list") {
                Kind::List
            } else if env.method_is("initialize") {
                self.initialize(&env);
                Kind::Initialize
            } else {
                let policy = self.policy();
                ["resources/list", "resources/templates/list", "prompts/list"]
                    .into_iter()
                    .find(|m| env.method_is(m))
                    .and_then(|m| {
                        let (surface, array, key) = surfaces::filtered_list(m)?;
                        policy
                            .governs(surface)
                            .then_some(Kind::SurfaceList(surface, array, key, m))
                    })
                    .unwrap_or(Kind::Other)
            };
            let watch = if env.method_is("resources/read") {
                self.resource_watch(&env, None)
            } else {
                None
            };
            let later_key = watch.as_ref().map(|_| key.clone());
            return Some(match self.register(key, id.as_bytes(), kind) {
                Ok(()) => {
                    if let (Some(w), Some(k)) = (watch, later_key)
                        && let Some(p) = self.pending().get_mut(&k)
                    {
                        p.results = Some(w);
                    }
                    (true, None)
                }
                Err(reply) => (false, Some(reply)),
            });
        }
        if let Some(id) = env.id
            && (env.result.is_some() || env.error.is_some())
        {
            if let Some(IdKey::Str(s)) = IdKey::of(id)
                && s.starts_with(elicit::ID_PREFIX)
            {
                // An answer to the proxy's own elicitation: never forwarded.
                if wait == Wait::No {
                    return None; // the call may be decided again: off the event loop
                }
                self.elicitation_answered(env.raw, s.into(), extra);
                return Some((false, None));
            }
            return Some((true, None)); // the client answering a server request
        }
        Some((
            false,
            Some(respond::refusal(
                env.request_id().map(|v| v.as_bytes()),
                RejectKind::NotAMessage,
            )),
        ))
    }

    /// The result rule for a `resources/read` (by its `params.uri`), when one names it.
    /// With symlink resolution on, the rule of the URI's target applies too
    /// ([`crate::results::both`]): `target` is what the request decision
    /// resolved (`Some(None)`: the URI resolves to itself), or None when it
    /// resolved nothing (the policy has no resource request rules), and it
    /// is resolved here if some result rule names resources.
    fn resource_watch(
        &self,
        env: &Envelope<'_>,
        target: Option<Option<&str>>,
    ) -> Option<Box<crate::results::Watch>> {
        let Some(Val::Object(params)) = env.params.map(|p| p.val()) else {
            return None;
        };
        let Some(Val::Str(uri)) = params.get("uri").map(|u| u.val()) else {
            return None;
        };
        let policy = self.policy();
        // Decoded without allocating (no copy unless a rule names the URI).
        let sent = uri.with_str(|u| policy.resource_result_rule(u));
        let resolved;
        let target = match target {
            Some(t) => t,
            None if self.resolve_symlinks && crate::results::names_resources(policy) => {
                resolved = crate::results::target_of(&uri.chars().collect::<String>());
                resolved.as_deref()
            }
            None => None,
        };
        let rule = crate::results::both(sent, target.and_then(|t| policy.resource_result_rule(t)))?;
        Some(Box::new(crate::results::Watch {
            rule,
            what: uri.chars().collect(),
            resource: true,
        }))
    }

    /// Applies the result rule of a watched request to its answer: None
    /// when it passes as it came, else the bytes the client gets instead
    /// (redacted, or an `isError` result). Findings go to the decision log
    /// and metrics by pattern name and count, never what matched.
    fn check_result(
        &self,
        w: &crate::results::Watch,
        raw: &[u8],
        result: Value<'_>,
        raw_id: &[u8],
    ) -> Option<Vec<u8>> {
        use portcullis_core::results::Verdict;
        let (bytes, counts, action) =
            match portcullis_core::results::check_result(w.rule, raw, result) {
                Verdict::Pass => return None,
                Verdict::Redacted { bytes, counts } => (bytes, counts, "redact"),
                Verdict::Denied { why, counts } => {
                    let meta = self.policy().meta();
                    self.log.info(format_args!(
                        "withheld the answer from {}: {}",
                        w.what,
                        why.message(w.rule, &w.what)
                    ));
                    (
                        crate::results::withheld(raw_id, w, &why, &counts, meta),
                        counts,
                        "deny",
                    )
                }
            };
        if action == "redact" {
            self.log.info(format_args!(
                "redacted {} secret(s) in the answer from {} ({})",
                counts.iter().map(|c| c.count).sum::<u32>(),
                w.what,
                w.rule.spec.name
            ));
        }
        self.note_findings(w.what.clone(), w.rule, action, counts);
        Some(bytes)
    }

    /// A request or notification the server sends on its own (sampling,
    /// elicitation, roots; log messages, progress): the policy's catch-all
    /// result rule, when it has one, checks its `params` as it checks
    /// answers. A server that read a secret could otherwise put it in a
    /// `sampling/createMessage` (which goes to the model) or a log message.
    /// Redactions are made in place (the note in `params._meta`); a
    /// withheld message is never forwarded (a request stays unanswered:
    /// the server's own timeout ends it).
    fn server_initiated(
        &self,
        raw: &[u8],
        method: portcullis_core::json::JStr<'_>,
        id: Option<Value<'_>>,
        params: Option<Value<'_>>,
    ) -> Answer {
        let Some(params) = params else {
            return Answer::Forward;
        };
        let method = method.chars().collect::<String>();
        match (self.check_unasked(raw, &method, params), id) {
            // A request the client never sees: answered for it, so the
            // server (and the call it is serving) does not wait for ever.
            (Answer::Drop, Some(id)) if !id.is_null() => Answer::Back(respond::error(
                Some(id.as_bytes()),
                crate::surfaces::POLICY_DENIED,
                &format!(
                    "{}the {method} request was withheld by the proxy's result rules",
                    crate::respond::DENY_PREFIX
                ),
            )),
            (answer, _) => answer,
        }
    }

    /// What the server sent on its own (`what`: the method, or the kind of
    /// message) checked by the catch-all result rule, if the policy has
    /// one, at `value` (inside `raw`): forwarded, redacted, or withheld.
    fn check_unasked(&self, raw: &[u8], what: &str, value: Value<'_>) -> Answer {
        use portcullis_core::results::{Refusal, Verdict};
        let Some(rule) = portcullis_core::results::catch_all(self.policy().result_rules()) else {
            return Answer::Forward;
        };
        let what = || format!("{what} from the server");
        match portcullis_core::results::check_result(rule, raw, value) {
            Verdict::Pass => Answer::Forward,
            Verdict::Redacted { bytes, counts } => {
                let what = what();
                self.log.info(format_args!(
                    "redacted {} secret(s) in a {what} ({})",
                    counts.iter().map(|c| c.count).sum::<u32>(),
                    rule.spec.name
                ));
                self.note_findings(what, rule, "redact", counts);
                Answer::Replace(bytes)
            }
            Verdict::Denied { why, counts } => {
                let what = what();
                let reason = match why {
                    Refusal::Secret(name) => format!("it holds a secret ({name})"),
                    Refusal::TooLarge { size, max } => format!(
                        "it is {size} bytes, more than the {max} bytes the policy allows ({})",
                        rule.spec.name
                    ),
                };
                self.log.warn(format_args!(
                    "withheld a {what} ({}): {reason}",
                    rule.spec.name
                ));
                self.note_findings(what, rule, "deny", counts);
                Answer::Drop
            }
        }
    }

    /// Metrics and the decision log of a result rule's findings (pattern
    /// names and counts, never what matched).
    fn note_findings(
        &self,
        what: String,
        rule: &'static portcullis_core::results::ResultRule,
        action: &'static str,
        counts: Vec<portcullis_core::results::Count>,
    ) {
        if let Some(m) = &self.metrics {
            for c in &counts {
                m.result_findings(c.name, c.action.name(), u64::from(c.count));
            }
        }
        let rule = rule.spec.name;
        self.record(|| Event::Result {
            at: UnixMillis::now(),
            tool: what,
            rule,
            action,
            findings: counts,
            session: Some(self.session),
            principal: self.principal.clone(),
        });
    }

    /// The client cancelled one of its requests: it expects no answer, so a
    /// late one is dropped. The call may already have run, so its counter
    /// units are kept (committed), not returned. A call held while the
    /// client asks its user is withdrawn instead (true): the elicitation is
    /// cancelled and nothing reaches the server.
    fn client_cancelled(&self, env: &Envelope<'_>, extra: &mut Extra) -> bool {
        let Some(Val::Object(params)) = env.params.map(|p| p.val()) else {
            return false;
        };
        let Some(key) = params.get("requestId").and_then(IdKey::of) else {
            return false;
        };
        let mut pending = self.pending();
        if let Some(p) = pending.get(&key)
            && let Kind::Asking(eid) = &p.kind
        {
            let eid = eid.clone();
            pending.remove(&key);
            drop(pending);
            if let Some(a) = self.asking().remove(&eid) {
                self.log.info(format_args!(
                    "withdrew elicitation {eid} for {}: the client cancelled the call",
                    a.tool
                ));
                self.approval_event(&a, "cancelled", &eid, "the client cancelled the call");
                extra.for_call.push(ForCall {
                    call_id: a.raw_id,
                    message: elicit::cancelled(&eid, "the call was cancelled by the client"),
                    last: true,
                });
            }
            return true;
        }
        if let Some(p) = pending.get_mut(&key) {
            if let Kind::Call(ticket) = &p.kind {
                self.counters.commit(ticket);
            }
            p.kind = Kind::Abandoned;
            p.since = Instant::now();
        }
        false
    }

    /// The client's `initialize`: whether it can ask its user.
    fn initialize(&self, env: &Envelope<'_>) {
        let can = env
            .params
            .and_then(|p| serde_json::from_slice::<serde_json::Value>(p.as_bytes()).ok())
            .is_some_and(|p| elicit::client_can_elicit(&p));
        self.peer().can_elicit = can;
    }

    fn register(&self, key: IdKey, raw_id: &[u8], kind: Kind) -> Result<(), Vec<u8>> {
        self.register_with(key, raw_id, kind, None, None)
            .map_err(|(reply, _)| reply)
    }

    /// Registers an allowed call, with the payment and the idempotency
    /// claim it carries, in one step. When its id is in flight the call is
    /// refused and nothing it holds is kept: its counter units and its
    /// idempotency claim go back, and the reservation a paid retry claimed
    /// is released at once (the retry never reaches the server, so nothing
    /// was paid), not counted until the payment timeout.
    fn register_call(
        &self,
        key: IdKey,
        raw_id: &[u8],
        ticket: Ticket,
        paid: Option<Box<Paid>>,
        idem: Option<IdemClaim>,
    ) -> Result<(), Vec<u8>> {
        let registered = self.register_with(
            key,
            raw_id,
            Kind::Call(Reserved::new(ticket)),
            paid,
            idem.map(Box::new),
        );
        let Err((reply, (paid, idem))) = registered else {
            return Ok(());
        };
        self.counters.rollback(&ticket);
        if let Some(c) = idem {
            self.settle_idem(&c, None);
        }
        if let Some(paid) = paid {
            self.never_sent(paid);
        }
        Err(reply)
    }

    /// A paid call refused before it was forwarded: the reservation its
    /// credential claimed is released now (and the release logged).
    fn never_sent(&self, mut paid: Box<Paid>) {
        let Some(h) = paid.claimed.take() else {
            return;
        };
        let price = format!(
            "{} {}",
            portcullis_core::spend::format(h.amount),
            h.currency.code
        );
        let budgets = rule_names(h.meta, &h.reserved.rules);
        h.release();
        self.record(|| Event::Payment {
            at: UnixMillis::now(),
            tool: paid.tool.clone(),
            stage: "released",
            price,
            budgets,
            message: "the paid retry was refused before reaching the server".into(),
            session: Some(self.session),
            principal: self.principal.clone(),
        });
    }

    /// Inserts a pending request unless its id is in flight; Err gives back
    /// the refusal and what the request would have held.
    #[allow(clippy::type_complexity)]
    fn register_with(
        &self,
        key: IdKey,
        raw_id: &[u8],
        kind: Kind,
        paid: Option<Box<Paid>>,
        idem: Option<Box<IdemClaim>>,
    ) -> Result<(), (Vec<u8>, (Option<Box<Paid>>, Option<Box<IdemClaim>>))> {
        let mut pending = self.pending();
        if pending
            .get(&key)
            .is_some_and(|p| !matches!(p.kind, Kind::Abandoned))
        {
            return Err((
                respond::refusal(Some(raw_id), RejectKind::IdInFlight),
                (paid, idem),
            ));
        }
        let replaced = pending.insert(
            key,
            Pending {
                kind,
                since: Instant::now(),
                raw_id: SmallBytes::from(raw_id),
                paid,
                idem,
                approval: None,
                results: None,
            },
        );
        drop(pending);
        // The id of a cancelled call, reused: its tombstone goes, and with it
        // the only way its claim would be settled. Release it, or identical
        // calls would wait for an answer that can no longer be matched until
        // the lease lapses.
        if let Some(c) = replaced.and_then(|p| p.idem) {
            self.settle_idem(&c, None);
        }
        Ok(())
    }

    fn tools_call(
        &self,
        env: &Envelope<'_>,
        wait: Wait,
        extra: &mut Extra,
        approved: bool,
    ) -> Option<(bool, Option<Vec<u8>>)> {
        let raw = env.raw;
        let call = match env.tool_call() {
            Ok(call) => call,
            Err(r) => {
                self.log.warn(format_args!("refused a tools/call: {r}"));
                if let Some(m) = &self.metrics {
                    m.rejected();
                }
                self.record(|| Event::ToolCall {
                    at: UnixMillis::now(),
                    digest: None,
                    tool: String::new(),
                    verdict: Verdict::Rejected {
                        code: r.code(),
                        message: r.message(),
                    },
                    arguments: None,
                    session: Some(self.session),
                    principal: self.principal.clone(),
                });
                return Some((
                    false,
                    Some(respond::refusal(r.id.map(|v| v.as_bytes()), r.kind())),
                ));
            }
        };
        let credential = crate::mpp::credential_challenge(env.params_meta());
        // tool_call() guarantees a string or number id.
        let id = env.request_id().expect("tools/call has an id");
        let key = match self.free_id(id) {
            Ok(key) => key,
            Err(reply) => return Some((false, Some(reply))),
        };
        let now = UnixMillis::now();
        // One policy for the whole decision, whatever a reload does meanwhile.
        let policy = self.policy();
        let env = |counters| Env {
            counters,
            now,
            session: self.session,
            fail_mode: self.fail_mode,
            principal: self.principal.as_deref(),
        };
        // A call the user approved in band is decided as approved.
        let decide = |env: &Env<'_>, ticket: &mut Ticket| {
            if approved {
                policy.decide_approved(&call, env, ticket)
            } else {
                policy.decide(&call, env, ticket)
            }
        };
        // The call's reservations: committed or rolled back with the call.
        let mut ticket = Ticket::EMPTY;
        let mut decision = match wait {
            Wait::Yes => decide(&env(self.counters.as_ref()), &mut ticket),
            Wait::No => {
                let view = NoWait::new(self.counters.as_ref());
                let decision = decide(&env(&view), &mut ticket);
                if view.waited() {
                    // Void: nothing was reserved, recorded or registered.
                    return None;
                }
                if decision.effect() == Effect::Allow && decision.idempotency.is_some() {
                    // Claiming the key may mean waiting for an identical call
                    // in flight: void, and decide again where waiting is fine.
                    self.counters.rollback(&ticket);
                    return None;
                }
                decision
            }
        };
        // Path arguments are decided on what they resolve to too, when this
        // proxy started the server (crate::symlinks): a denial there is the
        // decision (resolved before an approval is asked for).
        let mut resolved_note = None;
        if self.resolve_symlinks && matches!(decision.effect(), Effect::Allow | Effect::Approve) {
            match self.resolved_call(&call, &decision, &mut ticket, wait, approved, now) {
                ResolveCall::Keep => {}
                ResolveCall::Wait => {
                    self.counters.rollback(&ticket);
                    return None;
                }
                ResolveCall::Decided(d, note) => {
                    self.counters.rollback(&ticket);
                    ticket.clear();
                    decision = d;
                    resolved_note = Some(note);
                }
                ResolveCall::Unresolvable(message) => {
                    self.counters.rollback(&ticket);
                    self.log.info(format_args!(
                        "denied {}{}: {message}",
                        call.name(),
                        crate::log::Caller(self.principal.as_deref()),
                    ));
                    self.record(|| Event::ToolCall {
                        at: now,
                        digest: Some(policy.meta().digest),
                        tool: call.name().to_string(),
                        verdict: Verdict::Rejected {
                            code: surfaces::POLICY_DENIED,
                            message: "a path argument cannot be resolved",
                        },
                        arguments: Some(call.arguments().as_bytes().to_vec()),
                        session: Some(self.session),
                        principal: self.principal.clone(),
                    });
                    let text = format!("{}{message}", crate::respond::DENY_PREFIX);
                    let reply = respond::error(Some(id.as_bytes()), surfaces::POLICY_DENIED, &text);
                    return Some((false, Some(reply)));
                }
            }
        }
        let meta = policy.meta();
        // Held for approval: the records say whether a person approved this
        // very call (consumed now, and the call decided again as approved,
        // its counters reserved then), denied it, or is still to decide.
        let approved_env = |counters| Env {
            counters,
            now,
            session: self.session,
            fail_mode: self.fail_mode,
            principal: self.principal.as_deref(),
        };
        let mut held = None;
        let mut granted = GrantGuard {
            session: self,
            granted: None,
        };
        // Who is asked: the client when the rule allows it and the client
        // can ask its user; else an operator when the rule allows it; else
        // nobody (refused).
        let mut ask = false;
        if decision.effect() == Effect::Approve {
            let channels = decision
                .rule
                .and_then(|r| meta.approval(r))
                .map_or(Channels::BOTH, |s| s.channels);
            if channels.client && self.client_can_elicit() {
                ask = true;
            } else if !channels.operator {
                held = Some(Held::Refused(
                    "this rule asks the user through the MCP client, and this client cannot ask: it declared no elicitation capability with form mode at initialize"
                        .into(),
                ));
            }
        }
        if decision.effect() == Effect::Approve && !ask && held.is_none() {
            if wait == Wait::No && self.approvals.may_block() {
                return None; // nothing reserved: decided again off the event loop
            }
            let note = resolved_note.as_deref().unwrap_or("");
            match self.hold(&call, None, call.name(), meta, &decision, note, now) {
                Held::Granted(record) => {
                    // Held: nothing was reserved, the ticket is empty.
                    let again = match wait {
                        Wait::Yes => policy.decide_approved(
                            &call,
                            &approved_env(self.counters.as_ref()),
                            &mut ticket,
                        ),
                        Wait::No => {
                            let view = NoWait::new(self.counters.as_ref());
                            let again =
                                policy.decide_approved(&call, &approved_env(&view), &mut ticket);
                            let claims =
                                again.effect() == Effect::Allow && again.idempotency.is_some();
                            if view.waited() || claims {
                                if claims {
                                    self.counters.rollback(&ticket);
                                }
                                // Given back quietly: the blocking pass consumes it again.
                                if let Err(e) = self.approvals.restore(&record.id) {
                                    self.log.warn(format_args!(
                                        "could not give back approval {} ({}); the call is refused",
                                        record.id, e.0
                                    ));
                                    let reply = self.approval_refusal(
                                        id.as_bytes(),
                                        call.name(),
                                        &decision,
                                        "approval state unavailable",
                                    );
                                    return Some((false, Some(reply)));
                                }
                                return None;
                            }
                            again
                        }
                    };
                    // The person approved the call as sent: its path
                    // arguments' target is decided (and counted) as approved
                    // too, as for a call approved in band.
                    let mut again = again;
                    if self.resolve_symlinks && again.effect() == Effect::Allow {
                        match self.resolved_call(&call, &again, &mut ticket, wait, true, now) {
                            ResolveCall::Keep => {}
                            ResolveCall::Decided(d, note) => {
                                self.counters.rollback(&ticket);
                                ticket.clear();
                                again = d;
                                resolved_note = Some(note);
                            }
                            outcome @ (ResolveCall::Wait | ResolveCall::Unresolvable(_)) => {
                                self.counters.rollback(&ticket);
                                // Given back: decided again off the event
                                // loop, or refused without using it.
                                let restored = self.approvals.restore(&record.id);
                                let why = match (&outcome, &restored) {
                                    (_, Err(_)) => "approval state unavailable".to_string(),
                                    (ResolveCall::Unresolvable(m), _) => m.clone(),
                                    _ => return None,
                                };
                                self.log.info(format_args!(
                                    "denied {}{}: {why}",
                                    call.name(),
                                    crate::log::Caller(self.principal.as_deref()),
                                ));
                                let text = format!("{}{why}", crate::respond::DENY_PREFIX);
                                let reply = respond::error(
                                    Some(id.as_bytes()),
                                    surfaces::POLICY_DENIED,
                                    &text,
                                );
                                return Some((false, Some(reply)));
                            }
                        }
                    }
                    granted.granted = Some(self.granted(record, call.name(), now));
                    decision = again;
                }
                other => held = Some(other),
            }
        }
        if let Some(m) = &self.metrics {
            m.decided(
                meta,
                call.name(),
                decision.outcome,
                decision.rule.map(|r| r.0),
            );
        }
        // An allowed call with a window claims its key first (waiting for an
        // identical call in flight), so the decision log records what
        // happened to it: forwarded, or answered as a duplicate.
        let claimed = match (decision.effect(), decision.idempotency) {
            (Effect::Allow, Some(spec)) => Some((spec, self.claim(meta.server, &call, spec))),
            _ => None,
        };
        self.record(|| Event::ToolCall {
            at: now,
            digest: Some(meta.digest),
            tool: call.name().to_string(),
            verdict: match &claimed {
                Some((spec, Err(dup))) => Verdict::Duplicate {
                    result: dup.result(),
                    rule: meta.rule(spec.rule),
                },
                _ => Verdict::Decided {
                    outcome: decision.outcome,
                    rule: decision.rule.and_then(|r| meta.rule(r)),
                    message: format!(
                        "{}{}",
                        decision.message(call.name()),
                        resolved_note.as_deref().unwrap_or("")
                    ),
                },
            },
            arguments: Some(call.arguments().as_bytes().to_vec()),
            session: Some(self.session),
            principal: self.principal.clone(),
        });
        Some(match decision.effect() {
            Effect::Deny => {
                let note = resolved_note.as_deref().unwrap_or("");
                self.log.info(format_args!(
                    "denied {}{}: {}{note}",
                    call.name(),
                    crate::log::Caller(self.principal.as_deref()),
                    decision.message(call.name())
                ));
                let reply = match &resolved_note {
                    None => respond::denial(id.as_bytes(), call.name(), &decision, meta),
                    Some(note) => {
                        crate::symlinks::denial(id.as_bytes(), call.name(), &decision, meta, note)
                    }
                };
                (false, Some(reply))
            }
            // Not forwarded, nothing reserved: the pending request's id and
            // expiry, a person's denial, or why it could not be held.
            Effect::Approve if ask => {
                return Some(self.ask(
                    raw,
                    Surface::Tool,
                    call.name(),
                    &call,
                    id.as_bytes(),
                    key,
                    meta,
                    &decision,
                    resolved_note.as_deref().unwrap_or(""),
                    extra,
                ));
            }
            Effect::Approve => {
                let reply = match held {
                    Some(Held::Pending(record)) => {
                        self.log.info(format_args!(
                            "approval required for {}: {} (approval {}, expires {})",
                            call.name(),
                            decision.message,
                            record.id,
                            record.expires.to_rfc3339()
                        ));
                        if self.intercept_approval_errors {
                            apr::intercept_error(id.as_bytes(), call.name(), &record)
                        } else {
                            apr::pending_result(
                                id.as_bytes(),
                                call.name(),
                                &decision,
                                meta,
                                &record,
                            )
                        }
                    }
                    Some(Held::Denied(record)) => {
                        self.log.info(format_args!(
                            "refused {}: approval {} was denied by {}",
                            call.name(),
                            record.id,
                            record.decided_by
                        ));
                        apr::denied_result(id.as_bytes(), call.name(), &decision, meta, &record)
                    }
                    Some(Held::Refused(why)) => {
                        self.approval_refusal(id.as_bytes(), call.name(), &decision, &why)
                    }
                    Some(Held::Granted(_)) | None => self.approval_refusal(
                        id.as_bytes(),
                        call.name(),
                        &decision,
                        "approval state unavailable",
                    ),
                };
                (false, Some(reply))
            }
            Effect::Allow => {
                let claim = match claimed {
                    None => None,
                    Some((spec, claimed)) => match claimed {
                        Ok(claim) => claim,
                        Err(reply) => {
                            self.counters.rollback(&ticket);
                            return Some((
                                false,
                                Some(self.duplicate(id.as_bytes(), call.name(), spec, reply)),
                            ));
                        }
                    },
                };
                let paid = match self.paid_call(&call, policy, now, credential) {
                    Ok(paid) => paid,
                    Err(refusal) => {
                        self.counters.rollback(&ticket);
                        if let Some(c) = &claim {
                            self.settle_idem(c, None);
                        }
                        return Some((
                            false,
                            Some(crate::mpp::denial(
                                id.as_bytes(),
                                call.name(),
                                &refusal,
                                meta,
                            )),
                        ));
                    }
                };
                // Only an approved call, or one whose answer a result rule
                // checks, needs its key again (no copy otherwise).
                let result_rule = policy.result_rule(call.name());
                let later_key =
                    (granted.granted.is_some() || result_rule.is_some()).then(|| key.clone());
                match self.register_call(key, id.as_bytes(), ticket, paid, claim) {
                    Ok(()) => {
                        if let Some(k) = later_key
                            && let Some(p) = self.pending().get_mut(&k)
                        {
                            if let Some(g) = granted.granted.take() {
                                p.approval = Some(Box::new(g));
                            }
                            if let Some(rule) = result_rule {
                                p.results = Some(Box::new(crate::results::Watch {
                                    rule,
                                    what: call.name().to_string(),
                                    resource: false,
                                }));
                            }
                        }
                        (true, None)
                    }
                    Err(reply) => (false, Some(reply)),
                }
            }
        })
    }

    /// The spend budgets of an allowed call (None when the tool has none), and
    /// the reservation a paid retry's credential claims. A credential that
    /// names no challenge this session was given is refused: the wallet paid
    /// a price nobody checked, and forwarding it would settle that payment.
    fn paid_call(
        &self,
        call: &portcullis_core::ToolCall<'_>,
        policy: &'static dyn Policy,
        now: UnixMillis,
        credential: Result<Option<String>, crate::mpp::BadCredential>,
    ) -> Result<Option<Box<Paid>>, crate::mpp::Refusal> {
        let mut budgets = portcullis_core::spend::Budgets::new();
        let env = Env {
            counters: self.counters.as_ref(),
            now,
            session: self.session,
            fail_mode: self.fail_mode,
            principal: self.principal.as_deref(),
        };
        policy.spend(call, &env, &mut budgets);
        if budgets.is_empty() {
            return Ok(None);
        }
        let tool = call.name();
        let claimed = match credential {
            Ok(None) => None,
            Err(crate::mpp::BadCredential) => {
                return Err(crate::mpp::Refusal {
                    rule: None,
                    message: format!(
                        "Payment for {tool} refused: the payment credential names no challenge"
                    ),
                    outcome: "bad_challenge",
                });
            }
            Ok(Some(challenge)) => {
                match crate::mpp::Payments::global().claim(self.session, &challenge) {
                    Some(h) if h.tool == tool => Some(h),
                    Some(h) => {
                        h.release();
                        return Err(crate::mpp::Refusal {
                            rule: None,
                            message: format!(
                                "Payment for {tool} refused: the credential pays a challenge issued for another tool"
                            ),
                            outcome: "bad_challenge",
                        });
                    }
                    None => {
                        self.record(|| Event::Payment {
                            at: now,
                            tool: tool.to_string(),
                            stage: "denied",
                            price: String::new(),
                            budgets: String::new(),
                            message: format!("unknown challenge {challenge:?}"),
                            session: Some(self.session),
                            principal: self.principal.clone(),
                        });
                        return Err(crate::mpp::Refusal {
                            rule: None,
                            message: format!(
                                "Payment for {tool} refused: the credential pays challenge {challenge:?}, which this proxy did not check against the budget (expired, already used, or never issued)"
                            ),
                            outcome: "bad_challenge",
                        });
                    }
                }
            }
        };
        Ok(Some(Box::new(Paid {
            tool: tool.to_string(),
            budgets,
            meta: policy.meta(),
            claimed,
        })))
    }

    /// The answer to a call of a paid tool: settles the payment a retry
    /// made, and checks a payment challenge against the budgets (passing it
    /// on with the price reserved, or replacing it with a denial).
    fn paid_answer(&self, env: &Envelope<'_>, mut paid: Box<Paid>, raw_id: &[u8]) -> Answer {
        use crate::mpp;
        let error = env.error.filter(|e| !e.is_null());
        let now = UnixMillis::now();
        let tool = paid.tool.clone();
        if let Some(h) = paid.claimed.take() {
            let price = format!(
                "{} {}",
                portcullis_core::spend::format(h.amount),
                h.currency.code
            );
            let budgets = rule_names(h.meta, &h.reserved.rules);
            let stage = if error.is_none() {
                if let Some(r) = mpp::receipt_challenge(env.result)
                    && !h.challenge_ids.contains(&r)
                {
                    self.log.warn(format_args!(
                        "the receipt for {tool} names challenge {r:?}, not the one reserved; counted as paid"
                    ));
                }
                h.commit();
                "committed"
            } else {
                h.release();
                "released"
            };
            self.record(|| Event::Payment {
                at: now,
                tool: tool.clone(),
                stage,
                price,
                budgets,
                message: String::new(),
                session: Some(self.session),
                principal: self.principal.clone(),
            });
        }
        let Some(error) = error else {
            return Answer::Forward;
        };
        let is_challenge = match error.val() {
            Val::Object(e) => e.get("code").is_some_and(|c| {
                matches!(c.val(), Val::Num(n) if n.canonical_text() == mpp::PAYMENT_REQUIRED.to_string())
            }),
            _ => false,
        };
        if !is_challenge {
            return Answer::Forward;
        }
        let meta = paid.meta;
        let refused = |refusal: mpp::Refusal, price: String| {
            self.log.info(format_args!(
                "denied payment for {tool}: {}",
                refusal.message
            ));
            let budgets = refusal
                .rule
                .map(|r| rule_names(meta, &[r]))
                .unwrap_or_default();
            self.record(|| Event::Payment {
                at: now,
                tool: tool.clone(),
                stage: "denied",
                price,
                budgets,
                message: refusal.message.clone(),
                session: Some(self.session),
                principal: self.principal.clone(),
            });
            Answer::Replace(mpp::denial(raw_id, &tool, &refusal, meta))
        };
        let price = match mpp::read_challenges(error, now) {
            Ok(None) => return Answer::Forward,
            Ok(Some(p)) => p,
            Err(e) => return refused(mpp::unreadable(&tool, e), String::new()),
        };
        let shown = format!(
            "{} {}",
            portcullis_core::spend::format(price.amount),
            price.currency.code
        );
        match mpp::reserve(
            &tool,
            &paid.budgets,
            &price,
            self.counters.as_ref(),
            now,
            self.fail_mode,
            meta,
        ) {
            Ok(reserved) => {
                let payments = mpp::Payments::global();
                if let Some(m) = &self.metrics {
                    m.spend(
                        meta,
                        &tool,
                        &reserved.rules,
                        price.currency.code,
                        "reserved",
                        price.amount,
                    );
                }
                let budgets = rule_names(meta, &reserved.rules);
                payments.hold(
                    self.session,
                    &price.ids,
                    mpp::Hold {
                        tool: tool.clone(),
                        reserved,
                        amount: price.amount,
                        currency: price.currency,
                        challenge_ids: price.ids.clone(),
                        counters: self.counters.clone(),
                        meta,
                        metrics: self.metrics.clone(),
                        deadline: Instant::now() + payments.timeout(),
                    },
                );
                self.record(|| Event::Payment {
                    at: now,
                    tool: tool.clone(),
                    stage: "reserved",
                    price: shown,
                    budgets,
                    message: String::new(),
                    session: Some(self.session),
                    principal: self.principal.clone(),
                });
                Answer::Forward
            }
            Err(refusal) => {
                if let Some(m) = &self.metrics {
                    let rules: Vec<_> = refusal.rule.into_iter().collect();
                    m.spend(
                        meta,
                        &tool,
                        &rules,
                        price.currency.code,
                        "denied",
                        price.amount,
                    );
                }
                refused(refusal, shown)
            }
        }
    }

    /// Claims the idempotency key of an allowed `call` under `spec`, waiting
    /// (bounded) while an identical call is in flight. `Ok(Some)`: this call
    /// owns the key and is forwarded; `Ok(None)`: forward without a record
    /// (the store failed under the open fail mode); `Err`: answer the
    /// caller instead (a replay or a refusal), without reaching the server.
    fn claim(
        &self,
        server: &str,
        call: &portcullis_core::call::ToolCall<'_>,
        spec: &'static IdempotencySpec,
    ) -> Result<Option<IdemClaim>, Duplicate> {
        let key = IdemKey::of(server, self.principal.as_deref(), call, spec);
        let started = Instant::now();
        loop {
            let claimed = match self.counters.idempotency() {
                Some(store) => store.claim(&key, UnixMillis::now(), idem::LEASE_MS),
                None => Err(portcullis_core::counters::StateError(
                    "the counter store keeps no idempotency records".into(),
                )),
            };
            match claimed {
                Ok(Claim::Mine(token)) => {
                    return Ok(Some(IdemClaim {
                        key,
                        token,
                        window_ms: spec.window_ms,
                    }));
                }
                Ok(Claim::Done(answer)) => {
                    return Err(match (spec.mode, answer) {
                        (IdempotencyMode::Refuse, _) => Duplicate::Refuse(Refusal::Policy),
                        (IdempotencyMode::Replay, Some(a)) => Duplicate::Replay(a),
                        (IdempotencyMode::Replay, None) => Duplicate::Refuse(Refusal::TooLarge),
                    });
                }
                Ok(Claim::Full) => {
                    // Refusing every windowed call while the store is full
                    // would let a flood of distinct calls deny service.
                    self.log.warn(format_args!(
                        "idempotency store full; forwarded {} without a record",
                        call.name()
                    ));
                    return Ok(None);
                }
                Ok(Claim::InFlight) if spec.mode == IdempotencyMode::Refuse => {
                    return Err(Duplicate::Refuse(Refusal::Policy));
                }
                Ok(Claim::InFlight) => {
                    if started.elapsed() >= idem::MAX_WAIT {
                        return Err(Duplicate::Refuse(Refusal::StillInFlight));
                    }
                    std::thread::sleep(idem::POLL);
                }
                Err(e) if self.fail_mode == FailMode::Open => {
                    self.log.warn(format_args!(
                        "idempotency record unavailable ({}); forwarded {} without one (fail mode open)",
                        e.0,
                        call.name()
                    ));
                    return Ok(None);
                }
                Err(e) => {
                    self.log.warn(format_args!(
                        "idempotency record unavailable ({}); refused {}",
                        e.0,
                        call.name()
                    ));
                    return Err(Duplicate::Unavailable);
                }
            }
        }
    }

    /// The answer to a call that does not reach the server because of its
    /// idempotency window.
    fn duplicate(
        &self,
        id: &[u8],
        tool: &str,
        spec: &'static IdempotencySpec,
        d: Duplicate,
    ) -> Vec<u8> {
        let meta = self.policy().meta();
        let (result, reply) = match d {
            Duplicate::Replay(stored) => match idem::replay(&stored, id, meta.server, tool, spec) {
                Some(r) => ("replayed", r),
                None => (
                    "refused",
                    idem::refusal(id, tool, spec, meta, Refusal::TooLarge),
                ),
            },
            Duplicate::Refuse(why) => ("refused", idem::refusal(id, tool, spec, meta, why)),
            Duplicate::Unavailable => (
                "unavailable",
                respond::denial(
                    id,
                    tool,
                    &portcullis_core::policy::Decision::state_unavailable(spec.rule),
                    meta,
                ),
            ),
        };
        self.log
            .info(format_args!("{result} a duplicate call of {tool}"));
        if let Some(m) = &self.metrics {
            m.idempotency(result);
        }
        reply
    }

    /// Settles an idempotency claim: remembers a successful `answer`,
    /// forgets a failed or missing one.
    fn settle_idem(&self, c: &IdemClaim, answer: Option<&[u8]>) {
        let Some(store) = self.counters.idempotency() else {
            return;
        };
        let r = match answer {
            Some(a) if idem::is_success(a) => {
                let kept = (a.len() <= MAX_REPLAY_BYTES).then_some(a);
                let expires = UnixMillis(
                    UnixMillis::now()
                        .0
                        .saturating_add(c.window_ms.min(i64::MAX as u64) as i64),
                );
                store.complete(&c.key, c.token, kept, expires)
            }
            _ => store.release(&c.key, c.token),
        };
        if let Err(e) = r {
            self.log.warn(format_args!(
                "could not settle an idempotency record ({}); it lapses with its lease",
                e.0
            ));
        }
    }

    /// Holds `call` (message `raw`) and asks the client's user about it:
    /// an `elicitation/create` request in the proxy's id namespace, for the
    /// call's stream. Nothing is forwarded or reserved until the answer.
    #[allow(clippy::too_many_arguments)]
    fn ask(
        &self,
        raw: &[u8],
        surface: Surface,
        tool: &str,
        call: &portcullis_core::call::ToolCall<'_>,
        raw_id: &[u8],
        key: IdKey,
        meta: &'static portcullis_core::policy::PolicyMeta,
        decision: &portcullis_core::policy::Decision,
        note: &str,
        extra: &mut Extra,
    ) -> (bool, Option<Vec<u8>>) {
        let eid = elicit::id(self.asked.fetch_add(1, Ordering::Relaxed) + 1);
        if let Err(reply) = self.register(key.clone(), raw_id, Kind::Asking(eid.clone())) {
            return (false, Some(reply));
        }
        let spec = decision.rule.and_then(|r| meta.approval(r));
        let timeout_ms = spec.map_or(apr::DEFAULT_TIMEOUT_MS, |s| s.timeout_ms);
        let rule_name = decision
            .rule
            .and_then(|r| meta.rule(r))
            .map_or("", |r| r.name)
            .to_string();
        // What resolved to what, when a path the call resolves to asked for
        // the approval (crate::symlinks::note): the person sees the call as
        // sent in its arguments and the target here.
        let message = format!("{}{note}", decision.message(tool));
        let with_mode = elicit::takes_mode(self.peer().protocol.as_deref());
        let request = elicit::request(
            &eid,
            &elicit::Question {
                server: meta.server,
                tool,
                message: &message,
                rule: &rule_name,
                arguments: call.arguments().as_bytes(),
            },
            with_mode,
        );
        let asking = Asking {
            call: raw.to_vec(),
            raw_id: raw_id.to_vec(),
            key,
            surface,
            tool: tool.to_string(),
            rule: decision.rule,
            rule_name,
            message: decision.message,
            meta,
            deadline: Instant::now() + Duration::from_millis(timeout_ms),
            timeout_ms,
        };
        self.log.info(format_args!(
            "asking the user to approve {}: {message} (elicitation {eid}, for up to {})",
            tool,
            show_ms(timeout_ms)
        ));
        self.approval_event(&asking, "elicited", &eid, &message);
        self.asking().insert(eid, asking);
        extra.for_call.push(ForCall {
            call_id: raw_id.to_vec(),
            message: request,
            last: false,
        });
        (false, None)
    }

    /// The client answered elicitation `eid` (message `raw`): the held call
    /// is decided again as approved and forwarded, or answered with a
    /// denial. An answer to no elicitation this session waits for (forged,
    /// replayed, late) is dropped.
    fn elicitation_answered(&self, raw: &[u8], eid: String, extra: &mut Extra) {
        let Some(a) = self.asking().remove(&eid) else {
            self.log.warn(format_args!(
                "dropped the client's answer to {eid:?}: no elicitation of this session waits for it (forged, replayed or too late)"
            ));
            return;
        };
        {
            let mut pending = self.pending();
            if pending
                .get(&a.key)
                .is_some_and(|p| matches!(&p.kind, Kind::Asking(e) if *e == eid))
            {
                pending.remove(&a.key);
            }
        }
        let verdict = elicit::verdict(raw);
        let Some(why) = verdict.why() else {
            self.log.info(format_args!(
                "elicitation {eid} granted: the user approved {}; decided again as approved",
                a.tool
            ));
            self.approval_event(&a, "granted", &eid, "");
            let mut inner = Extra::default();
            let decided = match Envelope::parse(&a.call) {
                Ok(env) if a.surface == Surface::Tool => {
                    self.tools_call(&env, Wait::Yes, &mut inner, true)
                }
                Ok(env) => self.surface_request(&env, a.surface, Wait::Yes, &mut inner, true),
                Err(_) => None,
            };
            let (forward, reply) = decided.unwrap_or_else(|| {
                (
                    false,
                    Some(respond::refusal(Some(&a.raw_id), RejectKind::Internal)),
                )
            });
            if forward {
                extra.forward.push(a.call);
            }
            if let Some(r) = reply {
                extra.for_call.push(ForCall {
                    call_id: a.raw_id,
                    message: r,
                    last: true,
                });
            }
            return;
        };
        let stage = verdict.stage();
        self.log.info(format_args!(
            "elicitation {eid} {stage}: refused {} ({why})",
            a.tool
        ));
        self.approval_event(&a, stage, &eid, &why);
        let message = declined_result(&a, &eid, stage, &why);
        extra.for_call.push(ForCall {
            call_id: a.raw_id,
            message,
            last: true,
        });
    }

    /// Calls whose user did not answer in time: each gets a denial, and its
    /// elicitation a `notifications/cancelled`. Transports call this
    /// periodically (every 250 ms).
    pub fn expire_asking(&self) -> Vec<ForCall> {
        let now = Instant::now();
        let lapsed: Vec<(String, Asking)> = {
            let mut asking = self.asking();
            let ids: Vec<String> = asking
                .iter()
                .filter(|(_, a)| a.deadline <= now)
                .map(|(id, _)| id.clone())
                .collect();
            ids.into_iter()
                .filter_map(|id| asking.remove(&id).map(|a| (id, a)))
                .collect()
        };
        let mut out = Vec::new();
        for (eid, a) in lapsed {
            {
                let mut pending = self.pending();
                if pending
                    .get(&a.key)
                    .is_some_and(|p| matches!(&p.kind, Kind::Asking(e) if *e == eid))
                {
                    pending.remove(&a.key);
                }
            }
            let why = format!("no answer within {}", show_ms(a.timeout_ms));
            self.log.info(format_args!(
                "elicitation {eid} timed out: refused {} ({why})",
                a.tool
            ));
            self.approval_event(&a, "timed_out", &eid, &why);
            out.push(ForCall {
                call_id: a.raw_id.clone(),
                message: elicit::cancelled(&eid, "the approval timed out"),
                last: false,
            });
            out.push(ForCall {
                call_id: a.raw_id.clone(),
                message: declined_result(&a, &eid, "timed_out", &why),
                last: true,
            });
        }
        out
    }

    /// A transport cannot deliver the elicitation for held call `call_id`
    /// (`why`): the call is refused (the answer returned) and the
    /// elicitation forgotten. None when no call with that id is held.
    pub fn withdraw(&self, call_id: &[u8], why: &str) -> Option<Vec<u8>> {
        let key = id_key_of_raw(call_id)?;
        let eid = {
            let mut pending = self.pending();
            let Some(Kind::Asking(eid)) = pending.get(&key).map(|p| &p.kind) else {
                return None;
            };
            let eid = eid.clone();
            pending.remove(&key);
            eid
        };
        let a = self.asking().remove(&eid)?;
        self.log.warn(format_args!("refused {}: {why}", a.tool));
        self.approval_event(&a, "declined", &eid, why);
        Some(declined_result(&a, &eid, "failed", why))
    }

    /// A decision-log `approval` line about elicitation `eid`.
    fn approval_event(&self, a: &Asking, stage: &'static str, eid: &str, message: &str) {
        if let Some(m) = &self.metrics {
            m.approval(stage, 1);
        }
        self.record(|| Event::Approval {
            at: UnixMillis::now(),
            tool: a.tool.clone(),
            stage,
            id: eid.to_string(),
            rule: a.rule_name.clone(),
            by: if stage == "granted" || stage == "declined" || stage == "cancelled" {
                "client".to_string()
            } else {
                String::new()
            },
            message: message.to_string(),
            session: Some(self.session),
            principal: self.principal.clone(),
        });
    }

    /// Looks up (or creates) the approval record of a call `decision` holds.
    /// Every failure refuses the call (fail closed, whatever the fail mode).
    /// `method`: None for a `tools/call`, else the resource or prompt
    /// request's method (part of the fingerprint); `tool`: what the records
    /// and the log name (the tool, or `resource:URI` / `prompt:NAME`);
    /// `note`: appended to the message the approver reads (what a path
    /// argument resolved to, when that asked for the approval).
    #[allow(clippy::too_many_arguments)]
    fn hold(
        &self,
        call: &portcullis_core::call::ToolCall<'_>,
        method: Option<&'static str>,
        tool: &str,
        meta: &'static portcullis_core::policy::PolicyMeta,
        decision: &portcullis_core::policy::Decision,
        note: &str,
        now: UnixMillis,
    ) -> Held {
        let rule = decision
            .rule
            .and_then(|r| meta.rule(r))
            .map_or("", |r| r.name);
        let timeout_ms = decision
            .rule
            .and_then(|r| meta.approval(r))
            .map_or(apr::DEFAULT_TIMEOUT_MS, |s| s.timeout_ms);
        let arguments = call.arguments().as_bytes();
        if arguments.len() > apr::MAX_ARGUMENT_BYTES {
            self.log.warn(format_args!(
                "refused {}: its arguments ({} bytes) are too large to hold for approval",
                tool,
                arguments.len()
            ));
            return Held::Refused(format!(
                "the arguments are too large to hold for approval ({} bytes; at most {})",
                arguments.len(),
                apr::MAX_ARGUMENT_BYTES
            ));
        }
        let req = NewRequest {
            fingerprint: apr::fingerprint_on(
                meta.server,
                method,
                call,
                rule,
                self.principal.as_deref(),
            ),
            server: meta.server.to_string(),
            tool: tool.to_string(),
            arguments: String::from_utf8_lossy(arguments).into_owned(),
            rule: rule.to_string(),
            message: format!("{}{note}", decision.message(tool)),
            sub: self
                .principal
                .as_ref()
                .map_or(String::new(), |p| p.sub().to_string()),
            iss: self
                .principal
                .as_ref()
                .map_or(String::new(), |p| p.iss().to_string()),
            timeout_ms,
            dedupe_ms: meta.approval_config.and_then(|c| c.dedupe_window_ms),
        };
        let resolved = apr::new_id().and_then(|id| self.approvals.resolve(req, id, now));
        let (resolution, expired) = match resolved {
            Ok(r) => r,
            Err(e) => {
                self.log.warn(format_args!(
                    "approval state unavailable ({}); refused {}",
                    e.0, tool
                ));
                return Held::Refused("approval state unavailable".into());
            }
        };
        if let Some(m) = &self.metrics {
            m.approval("expired", expired as u64);
        }
        // One decision-log line per request found lapsed (`status` counts
        // them); the stores report how many, not which.
        for _ in 0..expired {
            self.record(|| Event::Approval {
                at: now,
                tool: tool.to_string(),
                stage: "expired",
                id: String::new(),
                rule: rule.to_string(),
                by: String::new(),
                message: String::new(),
                session: Some(self.session),
                principal: self.principal.clone(),
            });
        }
        let event = |stage: &'static str, r: &Record, by: &str, message: &str| Event::Approval {
            at: now,
            tool: r.tool.clone(),
            stage,
            id: r.id.clone(),
            rule: r.rule.clone(),
            by: by.to_string(),
            message: message.to_string(),
            session: Some(self.session),
            principal: self.principal.clone(),
        };
        match resolution {
            Resolution::Granted(r) => Held::Granted(r),
            Resolution::Denied(r) => {
                if let Some(m) = &self.metrics {
                    m.approval("declined", 1);
                }
                self.record(|| event("declined", &r, &r.decided_by, &r.reason));
                Held::Denied(r)
            }
            Resolution::Pending { record, new } => {
                if new {
                    if let Some(m) = &self.metrics {
                        m.approval("requested", 1);
                    }
                    self.record(|| event("requested", &record, "", &record.message));
                    if let Some(w) = &self.webhook {
                        w.announce(&record);
                    }
                }
                Held::Pending(record)
            }
        }
    }

    /// A held call refused for `why` (never forwarded).
    fn approval_refusal(
        &self,
        id: &[u8],
        tool: &str,
        decision: &portcullis_core::policy::Decision,
        why: &str,
    ) -> Vec<u8> {
        apr::refused_result(id, tool, decision, self.policy().meta(), why)
    }

    /// Gives a consumed approval back (the call it admitted was not
    /// forwarded, or the upstream failed it), and says so.
    fn restore_approval(&self, g: &Granted, why: &str) {
        restore(
            self.approvals.as_ref(),
            g,
            why,
            self.log,
            self.metrics.as_deref(),
            self.audit.as_ref(),
            self.session,
            self.principal.clone(),
        );
    }

    /// [`Session::restore_approval`] off the event loop when the store does
    /// I/O (called from the relay of server answers).
    fn restore_later(&self, g: Granted) {
        let handle = tokio::runtime::Handle::try_current();
        match handle {
            Ok(h) if self.approvals.may_block() => {
                let (store, log, metrics, audit, session, principal) = (
                    self.approvals.clone(),
                    self.log,
                    self.metrics.clone(),
                    self.audit.clone(),
                    self.session,
                    self.principal.clone(),
                );
                h.spawn_blocking(move || {
                    restore(
                        store.as_ref(),
                        &g,
                        "the upstream answered with an error",
                        log,
                        metrics.as_deref(),
                        audit.as_ref(),
                        session,
                        principal,
                    )
                });
            }
            _ => self.restore_approval(&g, "the upstream answered with an error"),
        }
    }

    /// Builds and queues a decision-log event, only when there is a log.
    fn record(&self, ev: impl FnOnce() -> Event) {
        if let Some(a) = &self.audit {
            a.record(ev());
        }
    }

    /// Handles one line from the server.
    pub fn from_server<'a>(&self, line: &'a [u8]) -> Outcome<'a> {
        let trimmed = trim(line);
        if trimmed.is_empty() {
            return Outcome::default();
        }
        let lenient = Strictness {
            max_depth: 1024,
            ..Strictness::LENIENT
        };
        if trimmed[0] != b'[' {
            // One pass at memory speed: well-formedness, and the members of
            // the envelope and of `result` (unambiguous) a list filter needs.
            let outline = match scan_answer(trimmed) {
                Ok(Scan::Plain(outline)) => Some(outline),
                Ok(Scan::Ambiguous) => {
                    self.log.debug(format_args!(
                        "an answer from the server has ambiguous members"
                    ));
                    None
                }
                // Read the strict way (escaped or non-ASCII keys in the
                // envelope or `result`, many members, not an object).
                Ok(Scan::Undecided) => match validate(trimmed, SERVER_ANSWER) {
                    Ok(()) => None,
                    Err(e) if validate(trimmed, lenient).is_ok() => {
                        self.log.debug(format_args!(
                            "an answer from the server has ambiguous members ({e})"
                        ));
                        None
                    }
                    Err(e) => {
                        self.log.warn(format_args!(
                            "dropped a line from the server that is not JSON ({e})"
                        ));
                        return Outcome::default();
                    }
                },
                Err(e) => {
                    // Only protocol messages may reach the client's stdout.
                    self.log.warn(format_args!(
                        "dropped a line from the server that is not JSON ({e})"
                    ));
                    return Outcome::default();
                }
            };
            return match self.server_message(trimmed, outline.as_ref()) {
                Answer::Forward => Outcome::forward(Cow::Borrowed(trimmed)),
                Answer::Replace(bytes) => Outcome::forward(Cow::Owned(bytes)),
                Answer::Drop => Outcome::default(),
                Answer::Refused(errors) => Outcome {
                    forward: errors.into_iter().map(Cow::Owned).collect(),
                    ..Outcome::default()
                },
                Answer::Back(error) => Outcome {
                    reply: vec![error],
                    ..Outcome::default()
                },
            };
        }
        if let Err(e) = validate(trimmed, lenient) {
            self.log.warn(format_args!(
                "dropped a line from the server that is not JSON ({e})"
            ));
            return Outcome::default();
        }
        let Val::Array(items) = Value::from_validated(trimmed).val() else {
            return Outcome::default();
        };
        let mut parts: Vec<Cow<'a, [u8]>> = Vec::new();
        let mut back = Vec::new();
        let mut changed = false;
        for item in items.iter() {
            match self.server_message(item.as_bytes(), None) {
                Answer::Forward => parts.push(Cow::Borrowed(item.as_bytes())),
                Answer::Replace(b) => {
                    changed = true;
                    parts.push(Cow::Owned(b));
                }
                Answer::Drop => changed = true,
                Answer::Refused(errors) => {
                    changed = true;
                    parts.extend(errors.into_iter().map(Cow::Owned));
                }
                Answer::Back(error) => {
                    changed = true;
                    back.push(error);
                }
            }
        }
        if !changed {
            return Outcome::forward(Cow::Borrowed(trimmed));
        }
        let mut out = Outcome {
            reply: back,
            ..Outcome::default()
        };
        if !parts.is_empty() {
            out.forward.push(Cow::Owned(join_array(
                &parts.iter().map(|p| p.as_ref()).collect::<Vec<_>>(),
            )));
        }
        out
    }

    fn server_message(&self, raw: &[u8], outline: Option<&AnswerOutline>) -> Answer {
        // A Plain outline has an unambiguous envelope (the scanner said so);
        // any other text is well-formed here and its envelope is read now.
        if outline.is_none()
            && let Some(ids) = ambiguous_answer_envelope(raw)
        {
            return Answer::Refused(self.refuse_answer(&ids));
        }
        let env = match outline {
            Some(o) => Envelope::from_answer(raw, o),
            None => Envelope::parse_lenient(raw),
        };
        let Ok(env) = env else {
            // Well-formed, but not an envelope the proxy can read (a
            // `method` that is not a string, an `id` of another type, not
            // an object): a client may still read it as an answer (Python's
            // SDK takes `{"id":1,"method":null,"result":...}` as one), which
            // would pass every check unread. Never forwarded; the requests
            // it may name get an error, as for an ambiguous envelope.
            self.log.warn(format_args!(
                "refused a message from the server that is not a JSON-RPC message"
            ));
            let ids = portcullis_core::jsonrpc::answer_ids(raw);
            return Answer::Refused(self.refuse_answer(&ids));
        };
        if let Some(method) = env.method {
            if env.result.is_some() || env.error.is_some() {
                // A request (or notification) and an answer at once:
                // readers differ in which they take it for.
                self.log.warn(format_args!(
                    "refused a message from the server that has both `method` and `result` or `error`"
                ));
                let ids: Vec<Value<'_>> = env.id.into_iter().collect();
                return Answer::Refused(self.refuse_answer(&ids));
            }
            return self.server_initiated(raw, method, env.id, env.params); // a request or notification
        }
        // An answer is a result or an error, never both: clients differ in
        // which they read (Python's SDK raises the error, TypeScript's drops
        // the answer), so a server could carry in one what the rules
        // checked in the other. Refused like any ambiguous envelope.
        if env.result.is_some() && env.error.is_some_and(|e| !e.is_null()) {
            let ids: Vec<Value<'_>> = env.id.into_iter().collect();
            return Answer::Refused(self.refuse_answer(&ids));
        }
        // Only an answer to a request in flight reaches the client. One to
        // an id the proxy has no request for (answered already, answered
        // by the proxy, or not read from the client yet: a server can guess
        // the id a client will use next) would reach the client unchecked,
        // with no list filter or result rule applied. JSON-RPC's answer to
        // a request the server could not read (an error, `id` null) names
        // no request and is passed on.
        let pending = env.id.and_then(IdKey::of).and_then(|key| {
            let p = self.pending().remove(&key)?;
            Some((key, p))
        });
        let Some((key, p)) = pending else {
            if env.id.is_none_or(|i| i.is_null())
                && env.result.is_none()
                && let Some(error) = env.error.filter(|e| !e.is_null())
            {
                // Its text comes from the server too (a client logs it).
                return self.check_unasked(raw, "error that names no request", error);
            }
            self.log.warn(format_args!(
                "dropped an answer from the server: no request with its id is in flight (already answered, answered by the proxy, or not sent by the client yet)"
            ));
            return Answer::Drop;
        };
        if let Kind::Asking(eid) = &p.kind {
            // The server never got this call: an answer to it is not one.
            self.log.warn(format_args!(
                "dropped an answer from the server to a call it never got (held for approval, elicitation {eid})"
            ));
            self.pending().insert(key, p);
            return Answer::Drop;
        }
        if let Some(m) = &self.metrics
            && !matches!(p.kind, Kind::Abandoned)
        {
            m.upstream_latency(matches!(p.kind, Kind::Call(_)), p.since.elapsed());
        }
        let paid = p.paid;
        // The result rule first: an idempotent replay gets what the client got.
        // An error answer's text comes from the server too (a tool that
        // fails may quote the secret it read): checked the same way.
        let answer = env.result.or(env.error.filter(|e| !e.is_null()));
        let checked = match (&p.results, answer) {
            (Some(w), Some(answer)) if !matches!(p.kind, Kind::Abandoned) => {
                self.check_result(w, raw, answer, &p.raw_id)
            }
            _ => None,
        };
        if let Some(c) = &p.idem {
            self.settle_idem(c, Some(checked.as_deref().unwrap_or(raw)));
        }
        if let Some(g) = p.approval
            && env.error.is_some_and(|e| !e.is_null())
        {
            self.restore_later(*g);
        }
        match p.kind {
            Kind::Call(ticket) => {
                if let Some(paid) = paid {
                    if env.error.is_some_and(|e| !e.is_null()) {
                        self.counters.rollback(&ticket);
                    } else {
                        self.counters.commit(&ticket);
                    }
                    return match (self.paid_answer(&env, paid, &p.raw_id), checked) {
                        (Answer::Forward, Some(bytes)) => Answer::Replace(bytes),
                        (answer, _) => answer,
                    };
                }
                if env.error.is_some_and(|e| !e.is_null()) {
                    self.counters.rollback(&ticket);
                } else {
                    self.counters.commit(&ticket);
                }
                checked.map_or(Answer::Forward, Answer::Replace)
            }
            Kind::List => match self.filter_list(raw, outline) {
                Ok(None) => Answer::Forward,
                Ok(Some(bytes)) => Answer::Replace(bytes),
                Err(e) => {
                    self.log
                        .warn(format_args!("refused an upstream tools/list answer: {e}"));
                    Answer::Replace(respond::error(
                        Some(&p.raw_id),
                        UPSTREAM_BAD_ANSWER,
                        &format!("the upstream tools/list answer was refused by the proxy: {e}"),
                    ))
                }
            },
            Kind::Other => checked.map_or(Answer::Forward, Answer::Replace),
            Kind::Asking(_) => Answer::Forward,
            Kind::Initialize => {
                let version = env
                    .result
                    .and_then(|r| match r.val() {
                        Val::Object(o) => o.get("protocolVersion"),
                        _ => None,
                    })
                    .and_then(|v| match v.val() {
                        Val::Str(s) => Some(s.chars().collect::<String>()),
                        _ => None,
                    });
                self.peer().protocol = version;
                Answer::Forward
            }
            Kind::SurfaceList(surface, array, key, method) => {
                let policy = self.policy();
                let principal = self.principal.as_deref();
                // With symlink resolution, a listed `file://` resource is
                // shown only if its target would be (crate::symlinks).
                let links = self.resolve_symlinks && array == "resources";
                match surfaces::filter_list(raw, outline, surface, array, key, |n| {
                    !policy.is_listed_on(surface, n, principal)
                        || (links
                            && n.starts_with("file:")
                            && !self.target_listed(policy, n, principal))
                }) {
                    Ok(None) => Answer::Forward,
                    Ok(Some(bytes)) => Answer::Replace(bytes),
                    Err(e) => {
                        self.log
                            .warn(format_args!("refused an upstream {method} answer: {e}"));
                        Answer::Replace(respond::error(
                            Some(&p.raw_id),
                            UPSTREAM_BAD_ANSWER,
                            &format!("the upstream {method} answer was refused by the proxy: {e}"),
                        ))
                    }
                }
            }
            Kind::Abandoned => Answer::Drop,
        }
    }

    /// A server message whose envelope two readers could read differently
    /// (an envelope member in another letter case, or twice: see
    /// [`ambiguous_answer_envelope`]) is never forwarded. Every request in
    /// flight that one of its `id` members may name is answered with
    /// [`UPSTREAM_BAD_ANSWER`], so no client waits for an answer that will
    /// not come: with one id that is the request it answers; with several
    /// (`"id":3,...,"id":4`, `"id":4,"Id":3`) the proxy cannot tell which,
    /// and the server broke the protocol for all of them. The server did
    /// answer, so the calls count as made (counters and payment holds
    /// committed, a consumed approval stays consumed); an idempotency
    /// record is released, as after any error answer.
    fn refuse_answer(&self, ids: &[Value<'_>]) -> Vec<Vec<u8>> {
        let mut errors = Vec::new();
        let mut named = Vec::new();
        for id in ids {
            let Some(key) = IdKey::of(*id) else { continue };
            if named.contains(&key) {
                continue;
            }
            named.push(key.clone());
            let mut pending = self.pending();
            let Some(p) = pending.remove(&key) else {
                continue;
            };
            if let Kind::Asking(eid) = &p.kind {
                // The server never got this call: this is no answer to it.
                self.log.warn(format_args!(
                    "dropped an ambiguous answer from the server naming a call it never got (held for approval, elicitation {eid})"
                ));
                pending.insert(key, p);
                continue;
            }
            drop(pending);
            if matches!(p.kind, Kind::Abandoned) {
                continue; // answered by the proxy already
            }
            if let Some(m) = &self.metrics {
                m.upstream_latency(matches!(p.kind, Kind::Call(_)), p.since.elapsed());
            }
            if let Kind::Call(ticket) = &p.kind {
                self.counters.commit(ticket);
            }
            if let Some(h) = p.paid.and_then(|mut paid| paid.claimed.take()) {
                let price = format!(
                    "{} {}",
                    portcullis_core::spend::format(h.amount),
                    h.currency.code
                );
                let budgets = rule_names(h.meta, &h.reserved.rules);
                let tool = h.tool.clone();
                h.commit();
                self.record(|| Event::Payment {
                    at: UnixMillis::now(),
                    tool,
                    stage: "committed",
                    price,
                    budgets,
                    message: AMBIGUOUS_ANSWER.to_string(),
                    session: Some(self.session),
                    principal: self.principal.clone(),
                });
            }
            if let Some(c) = &p.idem {
                self.settle_idem(c, None);
            }
            errors.push(respond::error(
                Some(&p.raw_id),
                UPSTREAM_BAD_ANSWER,
                AMBIGUOUS_ANSWER,
            ));
        }
        self.log.warn(format_args!(
            "dropped an answer from the server whose envelope is ambiguous (a member such as id or result in another letter case, or twice); answered {} request(s) in flight it may name with error {UPSTREAM_BAD_ANSWER}",
            errors.len()
        ));
        errors
    }

    /// A `resources/read`, `resources/subscribe` or `prompts/get` of a
    /// surface the policy governs: decided like a tool call (the resource
    /// by its normalised URI, the prompt by name and arguments), refused
    /// with a JSON-RPC error, or forwarded with its reservations.
    /// An approval rule holds it as it holds a tool call (docs/approval.md):
    /// the client asked in band, or an operator's record consulted; never
    /// forwarded until approved, then decided again as approved
    /// (`approved`: the user approved it in band).
    fn surface_request(
        &self,
        env: &Envelope<'_>,
        surface: Surface,
        wait: Wait,
        extra: &mut Extra,
        approved: bool,
    ) -> Option<(bool, Option<Vec<u8>>)> {
        let id = env.id.expect("a request");
        let key = match self.free_id(id) {
            Ok(key) => key,
            Err(reply) => return Some((false, Some(reply))),
        };
        let now = UnixMillis::now();
        let policy = self.policy();
        let meta = policy.meta();
        let record = |name: &str, verdict: Verdict| {
            self.record(|| Event::ToolCall {
                at: now,
                digest: Some(meta.digest),
                tool: format!("{}:{name}", surface.name()),
                verdict,
                arguments: None,
                session: Some(self.session),
                principal: self.principal.clone(),
            });
        };
        let bad_params = |message: &'static str| {
            record(
                "",
                Verdict::Rejected {
                    code: surfaces::INVALID_PARAMS,
                    message,
                },
            );
            Some((
                false,
                Some(respond::error(
                    Some(id.as_bytes()),
                    surfaces::INVALID_PARAMS,
                    message,
                )),
            ))
        };
        let req = match surfaces::request(surface, env.params) {
            Ok(r) => r,
            Err(surfaces::RequestError::BadParams(m)) => return bad_params(m),
            Err(surfaces::RequestError::Uri(_)) => return bad_params("bad URI"),
        };
        let mut buf = [0u8; portcullis_core::uri::MAX_URI_LEN];
        let name: &str = if surface == Surface::Resource {
            match surfaces::normalized(&req.name, &mut buf) {
                Ok(n) => n,
                Err(surfaces::RequestError::Uri(e)) => {
                    let reply = surfaces::bad_uri(id.as_bytes(), &req.name, &e);
                    self.log.info(format_args!(
                        "denied resource {:?}{}: {e}",
                        req.name,
                        crate::log::Caller(self.principal.as_deref()),
                    ));
                    record(
                        &req.name,
                        Verdict::Rejected {
                            code: surfaces::POLICY_DENIED,
                            message: "the resource URI cannot be normalised",
                        },
                    );
                    return Some((false, Some(reply)));
                }
                Err(surfaces::RequestError::BadParams(m)) => return bad_params(m),
            }
        } else {
            &req.name
        };
        let Some(call) = surfaces::call(surface, name, req.arguments) else {
            return bad_params("params.arguments must be a JSON object");
        };
        let envf = |counters| Env {
            counters,
            now,
            session: self.session,
            fail_mode: self.fail_mode,
            principal: self.principal.as_deref(),
        };
        let decide = |env: &Env<'_>, ticket: &mut Ticket| {
            if approved {
                policy.decide_approved(&call, env, ticket)
            } else {
                policy.decide(&call, env, ticket)
            }
        };
        let mut ticket = Ticket::EMPTY;
        let decision = match wait {
            Wait::Yes => decide(&envf(self.counters.as_ref()), &mut ticket),
            Wait::No => {
                let view = NoWait::new(self.counters.as_ref());
                let d = decide(&envf(&view), &mut ticket);
                if view.waited() {
                    return None;
                }
                d
            }
        };
        // A local `file://` URI is decided on the path it resolves to too
        // (crate::symlinks): a denial there is the decision, on that URI.
        let resolved_denial;
        let mut target = None;
        let resolve = self.resolved(
            surface,
            name,
            &req.name,
            &decision,
            &mut ticket,
            wait,
            approved,
        );
        let (mut decision, name) = match resolve {
            Resolve::Keep => (decision, name),
            Resolve::Target(real) => {
                target = Some(real);
                (decision, name)
            }
            Resolve::Wait => {
                self.counters.rollback(&ticket);
                return None;
            }
            Resolve::Denied(real, d) => {
                self.counters.rollback(&ticket);
                ticket.clear();
                resolved_denial = real;
                (d, resolved_denial.as_str())
            }
            Resolve::Unresolvable(e) => {
                self.counters.rollback(&ticket);
                let message = format!(
                    "{}Resource {} cannot be resolved on the filesystem: {e}",
                    crate::respond::DENY_PREFIX,
                    portcullis_core::policy::go_quote(name)
                );
                self.log.info(format_args!(
                    "denied resource {name}{}: {e}",
                    crate::log::Caller(self.principal.as_deref()),
                ));
                record(
                    name,
                    Verdict::Rejected {
                        code: surfaces::POLICY_DENIED,
                        message: "the resource path cannot be resolved",
                    },
                );
                let reply = respond::error(Some(id.as_bytes()), surfaces::POLICY_DENIED, &message);
                return Some((false, Some(reply)));
            }
        };
        let method = match surface {
            Surface::Prompt => "prompts/get",
            _ if env.method_is("resources/subscribe") => "resources/subscribe",
            _ => "resources/read",
        };
        // Held for approval: asked in band, or the operator's records
        // consulted (approved: consumed now, decided again as approved).
        let mut held = None;
        let mut ask = false;
        let mut granted = GrantGuard {
            session: self,
            granted: None,
        };
        // What the approval records, the log and the user are shown.
        let shown = if decision.effect() == Effect::Approve {
            format!("{}:{name}", surface.name())
        } else {
            String::new()
        };
        if decision.effect() == Effect::Approve {
            if wait == Wait::No {
                return None; // nothing reserved: held off the event loop
            }
            let channels = decision
                .rule
                .and_then(|r| meta.approval(r))
                .map_or(Channels::BOTH, |s| s.channels);
            if channels.client && self.client_can_elicit() {
                ask = true;
            } else if !channels.operator {
                held = Some(Held::Refused(
                    "this rule asks the user through the MCP client, and this client cannot ask: it declared no elicitation capability with form mode at initialize"
                        .into(),
                ));
            } else {
                match self.hold(&call, Some(method), &shown, meta, &decision, "", now) {
                    Held::Granted(record) => {
                        let again = policy.decide_approved(
                            &call,
                            &Env {
                                counters: self.counters.as_ref(),
                                now,
                                session: self.session,
                                fail_mode: self.fail_mode,
                                principal: self.principal.as_deref(),
                            },
                            &mut ticket,
                        );
                        // The approved read's symlink target is decided (and
                        // counted) as approved too.
                        let mut again = again;
                        if again.effect() == Effect::Allow {
                            let sent = &req.name;
                            match self.resolved(
                                surface,
                                name,
                                sent,
                                &again,
                                &mut ticket,
                                wait,
                                true,
                            ) {
                                Resolve::Keep | Resolve::Wait => {}
                                Resolve::Target(real) => target = Some(real),
                                Resolve::Denied(_, d) => {
                                    self.counters.rollback(&ticket);
                                    ticket.clear();
                                    again = d;
                                }
                                Resolve::Unresolvable(e) => {
                                    self.counters.rollback(&ticket);
                                    let _ = self.approvals.restore(&record.id);
                                    let message = format!(
                                        "{}Resource {} cannot be resolved on the filesystem: {e}",
                                        crate::respond::DENY_PREFIX,
                                        portcullis_core::policy::go_quote(name)
                                    );
                                    let reply = respond::error(
                                        Some(id.as_bytes()),
                                        surfaces::POLICY_DENIED,
                                        &message,
                                    );
                                    return Some((false, Some(reply)));
                                }
                            }
                        }
                        granted.granted = Some(self.granted(record, &shown, now));
                        decision = again;
                    }
                    other => held = Some(other),
                }
            }
        }
        if let Some(m) = &self.metrics {
            // By method and the matching block's pattern (bounded labels:
            // never the URI or name the client sent).
            m.surface_decided(
                meta,
                method,
                policy.block_on(surface, name),
                decision.outcome,
                decision.rule.map(|r| r.0),
            );
        }
        record(
            name,
            Verdict::Decided {
                outcome: decision.outcome,
                rule: decision.rule.and_then(|r| meta.rule(r)),
                message: decision.message_on(surface, name).into_owned(),
            },
        );
        if decision.effect() == Effect::Approve {
            if ask {
                return Some(self.ask(
                    env.raw,
                    surface,
                    &shown,
                    &call,
                    id.as_bytes(),
                    key,
                    meta,
                    &decision,
                    "",
                    extra,
                ));
            }
            let message = decision.message_on(surface, name);
            if self.intercept_approval_errors
                && let Some(Held::Pending(r)) = &held
            {
                // `--approval-errors intercept`: Intercept's error, as for tools.
                return Some((false, Some(apr::intercept_error(id.as_bytes(), &shown, r))));
            }
            let (text, approval) = match held {
                Some(Held::Pending(r)) => {
                    let expires = r.expires.to_rfc3339();
                    self.log.info(format_args!(
                        "approval required for {shown}: {message} (approval {}, expires {expires})",
                        r.id
                    ));
                    (
                        format!(
                            "{}{message} (approval {}, expires {expires})",
                            respond::APPROVAL_PREFIX,
                            r.id
                        ),
                        Some(serde_json::json!({
                            "id": r.id,
                            "status": "pending",
                            "expires": expires,
                            "rule": r.rule,
                            "instructions": surfaces::approval_instructions(&r.id, surface),
                            "approve_command": format!("portcullis approvals approve {}", r.id),
                        })),
                    )
                }
                Some(Held::Denied(r)) => {
                    self.log.info(format_args!(
                        "refused {shown}: approval {} was denied by {}",
                        r.id, r.decided_by
                    ));
                    let reason = if r.reason.is_empty() {
                        String::new()
                    } else {
                        format!(": {}", r.reason)
                    };
                    (
                        format!(
                            "{}{message} (approval {} denied by {}{reason})",
                            respond::DENY_PREFIX,
                            r.id,
                            r.decided_by
                        ),
                        Some(serde_json::json!({
                            "id": r.id,
                            "status": "denied",
                            "expires": r.expires.to_rfc3339(),
                            "rule": r.rule,
                            "decided_by": r.decided_by,
                            "reason": r.reason,
                        })),
                    )
                }
                Some(Held::Refused(why)) => {
                    (format!("{}{message} ({why})", respond::DENY_PREFIX), None)
                }
                Some(Held::Granted(_)) | None => (
                    format!(
                        "{}{message} (approval state unavailable)",
                        respond::DENY_PREFIX
                    ),
                    None,
                ),
            };
            return Some((
                false,
                Some(surfaces::approval_error(
                    id.as_bytes(),
                    surface,
                    name,
                    &decision,
                    meta,
                    text,
                    approval,
                )),
            ));
        }
        if decision.effect() != Effect::Allow {
            self.log.info(format_args!(
                "denied {} {name}{}: {}",
                surface.name(),
                crate::log::Caller(self.principal.as_deref()),
                decision.message_on(surface, name)
            ));
            return Some((
                false,
                Some(surfaces::denial(
                    id.as_bytes(),
                    surface,
                    name,
                    &decision,
                    meta,
                )),
            ));
        }
        // A read's answer still goes through the result rule naming its URI.
        let watch = if env.method_is("resources/read") {
            self.resource_watch(env, Some(target.as_deref()))
                .map(|w| (w, key.clone()))
        } else {
            None
        };
        let later = key.clone();
        let registered = if ticket.is_empty() {
            self.register(key, id.as_bytes(), Kind::Other)
        } else {
            self.register_call(key, id.as_bytes(), ticket, None, None)
        };
        Some(match registered {
            Ok(()) => {
                if let Some((w, k)) = watch
                    && let Some(p) = self.pending().get_mut(&k)
                {
                    p.results = Some(w);
                }
                // Given back if the upstream answers with an error.
                if let Some(g) = granted.granted.take()
                    && let Some(p) = self.pending().get_mut(&later)
                {
                    p.approval = Some(Box::new(g));
                }
                (true, None)
            }
            Err(reply) => (false, Some(reply)),
        })
    }

    /// A consumed approval: logged, counted and recorded as granted; the
    /// grant to give back if the upstream answers with an error.
    fn granted(&self, record: Record, shown: &str, now: UnixMillis) -> Granted {
        self.log.info(format_args!(
            "approval {} granted: {shown} decided again as approved",
            record.id
        ));
        if let Some(m) = &self.metrics {
            m.approval("granted", 1);
        }
        self.record(|| Event::Approval {
            at: now,
            tool: record.tool.clone(),
            stage: "granted",
            id: record.id.clone(),
            rule: record.rule.clone(),
            by: String::new(),
            message: String::new(),
            session: Some(self.session),
            principal: self.principal.clone(),
        });
        Granted {
            id: record.id,
            tool: record.tool,
            rule: record.rule,
        }
    }

    /// For an allowed (or approval-held) read of a local `file://` URI when
    /// the server is this proxy's child: the decision on the path it
    /// resolves to ([`crate::symlinks`]), when that one denies or asks for
    /// an approval the URI as sent did not. `name` is the normalised URI
    /// (what the first decision read), `sent` the URI as the client sent it
    /// (its path is walked as the server would open it). Limits count the
    /// read once each, as sent or as resolved ([`Session::decide_target`]).
    /// `ticket` holds the first decision's reservations (the caller's).
    #[allow(clippy::too_many_arguments)]
    fn resolved(
        &self,
        surface: Surface,
        name: &str,
        sent: &str,
        decision: &portcullis_core::policy::Decision,
        ticket: &mut Ticket,
        wait: Wait,
        approved: bool,
    ) -> Resolve {
        use crate::symlinks::Resolved;
        if surface != Surface::Resource
            || !self.resolve_symlinks
            || !matches!(decision.effect(), Effect::Allow | Effect::Approve)
            || !name.starts_with("file:")
        {
            return Resolve::Keep;
        }
        let real = match crate::symlinks::resolve(sent) {
            Resolved::Same => return Resolve::Keep,
            Resolved::Unresolvable(e) => return Resolve::Unresolvable(e),
            Resolved::Other(real) => real,
        };
        let Some(call) = surfaces::call(surface, &real, b"{}") else {
            return Resolve::Keep;
        };
        match self.decide_target(&call, decision, ticket, wait, approved, UnixMillis::now()) {
            Target::Wait => Resolve::Wait,
            Target::Stands => Resolve::Target(real),
            Target::Decided(d) => Resolve::Denied(real, d),
            Target::Full => Resolve::Unresolvable(TOO_MANY_LIMITS.into()),
        }
    }

    /// For an allowed (or approval-held) tool call when the server is this
    /// proxy's child: the decision on its `path()` arguments resolved
    /// through symlinks ([`crate::symlinks::resolve_call`]), when that one
    /// denies or asks for an approval the call as sent did not. Limits
    /// count the call once each, as sent or as resolved
    /// ([`Session::decide_target`]).
    fn resolved_call(
        &self,
        call: &portcullis_core::ToolCall<'_>,
        decision: &portcullis_core::policy::Decision,
        ticket: &mut Ticket,
        wait: Wait,
        approved: bool,
        now: UnixMillis,
    ) -> ResolveCall {
        use crate::symlinks::CallResolved;
        let policy = self.policy();
        let mut slots: Vec<Vec<String>> = Vec::new();
        policy.path_args(call.name(), &mut |a| {
            if !slots.iter().any(|s| s.iter().eq(a.iter())) {
                slots.push(a.iter().map(|s| s.to_string()).collect());
            }
        });
        if slots.is_empty() {
            return ResolveCall::Keep;
        }
        let (args, rewrites) = match crate::symlinks::resolve_call(call, &slots) {
            CallResolved::Same => return ResolveCall::Keep,
            CallResolved::Unresolvable(slot, sent, why) => {
                return ResolveCall::Unresolvable(format!(
                    "Tool {}: {slot} {} cannot be resolved on the filesystem: {why}",
                    portcullis_core::policy::go_quote(call.name()),
                    portcullis_core::policy::go_quote(&sent),
                ));
            }
            CallResolved::Other(args, rewrites) => (args, rewrites),
        };
        let Ok(resolved) = portcullis_core::ToolCall::new(
            call.name(),
            &args,
            portcullis_core::json::Strictness::STRICT,
        ) else {
            return ResolveCall::Unresolvable(format!(
                "Tool {}: its resolved arguments are not valid JSON",
                portcullis_core::policy::go_quote(call.name())
            ));
        };
        match self.decide_target(&resolved, decision, ticket, wait, approved, now) {
            Target::Wait => ResolveCall::Wait,
            Target::Stands => ResolveCall::Keep,
            Target::Decided(d) => ResolveCall::Decided(d, crate::symlinks::note(&rewrites)),
            Target::Full => ResolveCall::Unresolvable(format!(
                "Tool {}: {TOO_MANY_LIMITS}",
                portcullis_core::policy::go_quote(call.name())
            )),
        }
    }

    /// The decision on what a request resolves to through symlinks (a
    /// resource's target, a tool call's resolved path arguments), given
    /// `decision` on the request as sent. The target is decided against the
    /// counters through [`portcullis_core::counters::Except`]: a limit the
    /// first decision reserved is not reserved again (the request counts
    /// once against it), and a limit only the target's rules carry is
    /// reserved too, into `ticket`, the first decision's ([`Target::Stands`]), so one
    /// commit or rollback covers both. A request held for approval has
    /// reserved nothing yet, and its target reserves nothing either
    /// ([`portcullis_core::counters::Except::everything`]): both are counted
    /// when the approved request is decided again. A request a
    /// person approved is decided on its target as approved too (the
    /// target's denials and limits still apply).
    fn decide_target(
        &self,
        target: &portcullis_core::ToolCall<'_>,
        decision: &portcullis_core::policy::Decision,
        ticket: &mut Ticket,
        wait: Wait,
        approved: bool,
        now: UnixMillis,
    ) -> Target {
        use portcullis_core::counters::Except;
        let policy = self.policy();
        // The target's own reservations, joined to `ticket` when both allow.
        let mut own = Ticket::EMPTY;
        let decide = |counters: &dyn Counters, own: &mut Ticket| {
            let env = Env {
                counters,
                now,
                session: self.session,
                fail_mode: self.fail_mode,
                principal: self.principal.as_deref(),
            };
            if approved {
                policy.decide_approved(target, &env, own)
            } else {
                policy.decide(target, &env, own)
            }
        };
        // A call held for approval reserves nothing until it is approved,
        // on its target neither.
        let held = decision.effect() == Effect::Approve;
        fn view<'v>(counters: &'v dyn Counters, ticket: &'v Ticket, held: bool) -> Except<'v> {
            if held {
                Except::everything(counters)
            } else {
                Except::new(counters, ticket)
            }
        }
        let except = |counters, ticket| view(counters, ticket, held);
        let d = match wait {
            Wait::Yes => decide(&except(self.counters.as_ref(), ticket), &mut own),
            Wait::No => {
                let view = NoWait::new(self.counters.as_ref());
                let d = decide(&except(&view, ticket), &mut own);
                if view.waited() {
                    return Target::Wait;
                }
                d
            }
        };
        match (d.effect(), decision.effect()) {
            (Effect::Allow, Effect::Allow) => {
                if ticket.absorb(&own) {
                    Target::Stands
                } else {
                    self.counters.rollback(&own);
                    Target::Full
                }
            }
            (Effect::Allow, _) => {
                self.counters.rollback(&own);
                Target::Stands
            }
            (Effect::Approve, Effect::Approve) => Target::Stands,
            _ => Target::Decided(d),
        }
    }

    /// For a `resources/list` entry naming a normalised `file://` URI when
    /// the server is this proxy's child: false when the URI resolves through
    /// symlinks ([`crate::symlinks::resolve`]) to one the list would not
    /// show or the policy denies, or cannot be resolved (fail closed). A
    /// target refused only by a limit, or held for approval, is shown (it
    /// could be read); a decision that would wait on the counter store
    /// drops it (this runs on the event loop). Nothing is reserved.
    fn target_listed(
        &self,
        policy: &dyn Policy,
        uri: &str,
        principal: Option<&portcullis_core::Principal>,
    ) -> bool {
        use crate::symlinks::Resolved;
        use portcullis_core::policy::Outcome;
        let real = match crate::symlinks::resolve(uri) {
            Resolved::Same => return true,
            Resolved::Unresolvable(_) => return false,
            Resolved::Other(real) => real,
        };
        if !policy.is_listed_on(Surface::Resource, &real, principal) {
            return false;
        }
        let Some(call) = surfaces::call(Surface::Resource, &real, b"{}") else {
            return false;
        };
        let view = NoWait::new(self.counters.as_ref());
        // Listing reserves nothing (nor leaves a rollback queued).
        let nothing = portcullis_core::counters::Except::everything(&view);
        let mut ticket = Ticket::EMPTY;
        let d = policy.decide(
            &call,
            &Env {
                counters: &nothing,
                now: UnixMillis::now(),
                session: self.session,
                fail_mode: self.fail_mode,
                principal,
            },
            &mut ticket,
        );
        if view.waited() {
            return false;
        }
        match d.effect() {
            Effect::Allow => {
                self.counters.rollback(&ticket);
                true
            }
            Effect::Approve => true,
            Effect::Deny => d.outcome == Outcome::Limit,
        }
    }

    /// The key of a new request's id, or the refusal of an id that is not
    /// a string or number or is still in flight.
    fn free_id(&self, id: Value<'_>) -> Result<IdKey, Vec<u8>> {
        let key = IdKey::of_request(id).map_err(|why| refuse_id(id, why))?;
        if self
            .pending()
            .get(&key)
            .is_some_and(|p| !matches!(p.kind, Kind::Abandoned))
        {
            return Err(respond::refusal(
                Some(id.as_bytes()),
                RejectKind::IdInFlight,
            ));
        }
        Ok(key)
    }

    /// A `tools/list` answer without the tools hidden from this session's
    /// caller (one policy for the whole list; `hide` rules may depend on
    /// the principal, as they do for the calls themselves).
    fn filter_list(
        &self,
        raw: &[u8],
        outline: Option<&AnswerOutline>,
    ) -> Result<Option<Vec<u8>>, FilterError> {
        let policy = self.policy();
        let principal = self.principal.as_deref();
        let hidden = |t: &str| {
            if let Some(m) = &self.metrics {
                m.register_tool(t);
            }
            policy.is_hidden(t, principal)
        };
        match outline {
            Some(o) => filter_scanned(raw, o, hidden),
            None => filter_tools_list(raw, hidden),
        }
    }

    /// Answers and cancels requests older than `timeout`, rolling back their counters.
    pub fn expire(&self, timeout: Duration) -> Expired {
        let mut out = Expired::default();
        let now = Instant::now();
        let mut pending = self.pending();
        pending.retain(|_, p| {
            let age = now.duration_since(p.since);
            if matches!(p.kind, Kind::Abandoned) {
                // Keep the tombstone a while, so a late answer is still recognised.
                let keep = age < timeout * 10;
                if !keep && let Some(c) = p.idem.take() {
                    // Cancelled by the client and never answered: forget it.
                    self.settle_idem(&c, None);
                }
                return keep;
            }
            if age < timeout || matches!(p.kind, Kind::Asking(_)) {
                // A call held for approval waits for the user, not the
                // upstream: its own deadline applies (expire_asking).
                return true;
            }
            if let Kind::Call(ticket) = &p.kind {
                self.counters.rollback(ticket);
            }
            if let Some(c) = p.idem.take() {
                self.settle_idem(&c, None);
            }
            out.to_client.push(respond::error(
                Some(&p.raw_id),
                UPSTREAM_TIMEOUT,
                &format!("the upstream did not answer within {} s", timeout.as_secs_f64()),
            ));
            let mut cancel = b"{\"jsonrpc\":\"2.0\",\"method\":\"notifications/cancelled\",\"params\":{\"requestId\":".to_vec();
            cancel.extend_from_slice(&p.raw_id);
            cancel.extend_from_slice(b",\"reason\":\"timed out at the proxy\"}}");
            out.to_server.push(cancel);
            p.kind = Kind::Abandoned;
            p.since = now;
            true
        });
        out
    }

    /// A transport could not deliver request `raw_id` (the raw JSON of its id)
    /// or lost its answer: if it is still waiting for one, it is settled as a
    /// failure (counters rolled back) and the error answer for the client is
    /// returned. None when the request was answered, cancelled or is unknown.
    pub fn fail_pending(&self, raw_id: &[u8], code: i32, message: &str) -> Option<Vec<u8>> {
        let key = id_key_of_raw(raw_id)?;
        let mut pending = self.pending();
        if pending
            .get(&key)
            .is_none_or(|p| matches!(p.kind, Kind::Abandoned | Kind::Asking(_)))
        {
            return None;
        }
        let p = pending.remove(&key)?;
        if let Kind::Call(ticket) = &p.kind {
            self.counters.rollback(ticket);
        }
        if let Some(c) = &p.idem {
            self.settle_idem(c, None);
        }
        Some(respond::error(Some(&p.raw_id), code, message))
    }

    /// True while request `raw_id` waits for its answer.
    pub fn is_pending(&self, raw_id: &[u8]) -> bool {
        id_key_of_raw(raw_id).is_some_and(|key| {
            self.pending()
                .get(&key)
                .is_some_and(|p| !matches!(p.kind, Kind::Abandoned))
        })
    }

    /// The upstream is gone: every request in flight gets an error and its counters back.
    pub fn upstream_gone(&self, why: &str) -> Vec<Vec<u8>> {
        let mut pending = self.pending();
        let mut out = Vec::new();
        for (_, p) in pending.drain() {
            if let Some(c) = &p.idem {
                self.settle_idem(c, None);
            }
            match p.kind {
                Kind::Abandoned => continue,
                Kind::Call(ticket) => self.counters.rollback(&ticket),
                Kind::Asking(eid) => {
                    self.asking().remove(&eid);
                }
                Kind::List | Kind::SurfaceList(..) | Kind::Other | Kind::Initialize => {}
            }
            out.push(respond::error(Some(&p.raw_id), UPSTREAM_GONE, why));
        }
        out
    }
}

/// The answer to a call held for in-band approval and not approved:
/// `isError: true`, text `[APPROVAL DECLINED] <message> (<why>)`, and in
/// `_meta["dev.portcullis/approval"]` the channel, status and elicitation id.
fn declined_result(a: &Asking, eid: &str, status: &str, why: &str) -> Vec<u8> {
    let decision = a.decision();
    let text = format!(
        "{}{} ({why})",
        elicit::DECLINED_PREFIX,
        decision.message(&a.tool)
    );
    let extra = serde_json::json!({
        "channel": "client",
        "status": status,
        "elicitation": eid,
        "rule": a.rule_name,
    });
    if a.surface != Surface::Tool {
        // `resource:URI` / `prompt:NAME`: the request names its target.
        let name = a.tool.split_once(':').map_or(a.tool.as_str(), |(_, n)| n);
        return surfaces::approval_error(
            &a.raw_id,
            a.surface,
            name,
            &decision,
            a.meta,
            text,
            Some(extra),
        );
    }
    apr::answer(&a.raw_id, &a.tool, &decision, a.meta, text, Some(extra))
}

/// A duration in milliseconds as people write it: `1s`, `10m`, `1500ms`.
fn show_ms(ms: u64) -> String {
    match ms {
        0 => "0s".into(),
        ms if ms % 3_600_000 == 0 => format!("{}h", ms / 3_600_000),
        ms if ms % 60_000 == 0 => format!("{}m", ms / 60_000),
        ms if ms % 1000 == 0 => format!("{}s", ms / 1000),
        ms => format!("{ms}ms"),
    }
}

/// The names of budget rules, comma-separated, for the decision log.
/// Gives approval `g` back (consumed -> approved) and records it.
#[allow(clippy::too_many_arguments)]
fn restore(
    store: &dyn ApprovalStore,
    g: &Granted,
    why: &str,
    log: Log,
    metrics: Option<&Metrics>,
    audit: Option<&AuditLog>,
    session: u64,
    principal: Option<Arc<portcullis_core::Principal>>,
) {
    match store.restore(&g.id) {
        Ok(_) => {
            log.info(format_args!(
                "approval {} restored for {}: {why}",
                g.id, g.tool
            ));
            if let Some(m) = metrics {
                m.approval("restored", 1);
            }
            if let Some(a) = audit {
                a.record(Event::Approval {
                    at: UnixMillis::now(),
                    tool: g.tool.clone(),
                    stage: "restored",
                    id: g.id.clone(),
                    rule: g.rule.clone(),
                    by: String::new(),
                    message: why.to_string(),
                    session: Some(session),
                    principal,
                });
            }
        }
        Err(e) => log.warn(format_args!(
            "could not restore approval {} ({}); {why}, and the approval stays used",
            g.id, e.0
        )),
    }
}

/// Restores a consumed approval when the call it admitted is dropped before
/// it was forwarded (refused by a limit, a duplicate, a payment, an id in flight).
struct GrantGuard<'s> {
    session: &'s Session,
    granted: Option<Granted>,
}

impl Drop for GrantGuard<'_> {
    fn drop(&mut self) {
        if let Some(g) = self.granted.take() {
            self.session
                .restore_approval(&g, "the approved call was refused before it was forwarded");
        }
    }
}

fn rule_names(
    meta: &portcullis_core::policy::PolicyMeta,
    rules: &[portcullis_core::policy::RuleId],
) -> String {
    rules
        .iter()
        .filter_map(|r| meta.rule(*r).map(|i| i.name))
        .collect::<Vec<_>>()
        .join(", ")
}

/// The refusal of a request whose id cannot be keyed ([`IdKey::of_request`]):
/// with the id when it is a string or a number (the client can tell which
/// request it was), `null` otherwise.
fn refuse_id(id: Value<'_>, why: RejectKind) -> Vec<u8> {
    let readable = matches!(id.val(), Val::Str(_) | Val::Num(_));
    respond::refusal(readable.then(|| id.as_bytes()), why)
}

/// The key of a raw id (its JSON text), if it is a valid JSON string or number.
fn id_key_of_raw(raw: &[u8]) -> Option<IdKey> {
    validate(raw, Strictness::LENIENT).ok()?;
    IdKey::of(Value::from_validated(raw))
}

impl Duplicate {
    /// `replayed`, `refused` or `unavailable` (metrics, decision log).
    fn result(&self) -> &'static str {
        match self {
            Duplicate::Replay(_) => "replayed",
            Duplicate::Refuse(_) => "refused",
            Duplicate::Unavailable => "unavailable",
        }
    }
}

/// Why a call does not reach the server because of its idempotency window.
enum Duplicate {
    /// The first call's answer, to replay.
    Replay(Vec<u8>),
    /// Refused.
    Refuse(Refusal),
    /// The record could not be reached (fail mode closed).
    Unavailable,
}

enum Answer {
    Forward,
    Replace(Vec<u8>),
    Drop,
    /// Not forwarded: these errors for the client instead (none, one, or
    /// one per request the message may answer).
    Refused(Vec<Vec<u8>>),
    /// A server request withheld: never forwarded; this error answers it
    /// (back to the server), so the server does not wait for it.
    Back(Vec<u8>),
}

fn trim(b: &[u8]) -> &[u8] {
    let start = b
        .iter()
        .position(|c| !c.is_ascii_whitespace())
        .unwrap_or(b.len());
    let end = b
        .iter()
        .rposition(|c| !c.is_ascii_whitespace())
        .map_or(start, |e| e + 1);
    &b[start..end.max(start)]
}

/// The JSON array of `parts` (each one JSON text): a batch of messages.
pub(crate) fn join_array<P: AsRef<[u8]>>(parts: &[P]) -> Vec<u8> {
    let mut out = Vec::with_capacity(parts.iter().map(|p| p.as_ref().len() + 1).sum::<usize>() + 2);
    out.push(b'[');
    for (i, p) in parts.iter().enumerate() {
        if i > 0 {
            out.push(b',');
        }
        out.extend_from_slice(p.as_ref());
    }
    out.push(b']');
    out
}

#[cfg(test)]
mod tests {
    use super::*;
    use portcullis_core::call::ToolCall;
    use portcullis_core::counters::{
        Calendar, CounterRef, CounterSpec, MemoryCounters, Scope, Window,
    };
    use portcullis_core::policy::{Decision, Limits, PolicyMeta, RuleId, RuleInfo, RuleKind};

    /// Hides `secret`; allows one call per minute to anything else.
    struct OnePerMinute;

    static RULES: [RuleInfo; 1] = [RuleInfo {
        name: "one per minute",
        label: "test",
        kind: RuleKind::Rule,
        file: "test",
        line: 1,
        column: 1,
    }];
    static COUNTERS: [CounterSpec; 1] = [CounterSpec::new(
        "test/*.c",
        Window::Calendar(Calendar::Minute),
        Scope::Global,
    )];
    static META: PolicyMeta = PolicyMeta {
        server: "test",
        file: "test",
        dialect: "test",
        digest: "0000000000000000",
        rules: &RULES,
        counters: &COUNTERS,
        idempotency: &[],
        approvals: &[],
        approval_config: None,
    };

    impl Policy for OnePerMinute {
        fn meta(&self) -> &PolicyMeta {
            &META
        }
        fn is_hidden(&self, tool: &str, _: Option<&portcullis_core::Principal>) -> bool {
            tool == "secret"
        }
        fn decide(&self, call: &ToolCall<'_>, env: &Env<'_>, ticket: &mut Ticket) -> Decision {
            ticket.clear();
            if self.is_hidden(call.name(), env.principal) {
                return Decision::deny(portcullis_core::policy::Outcome::Hidden, RuleId(0), "");
            }
            let mut l: Limits = Limits::new();
            l.push(
                RuleId(0),
                CounterRef {
                    spec: &COUNTERS[0],
                    partition: 0,
                },
                1,
                1,
                "full",
            );
            l.finish(env, ticket)
        }
    }

    static POLICY: OnePerMinute = OnePerMinute;

    fn session() -> Session {
        Session::new(
            &POLICY,
            Arc::new(MemoryCounters::new()),
            1,
            FailMode::Closed,
            None,
            Log {
                level: super::super::log::Level::Error,
            },
        )
    }

    fn call(id: &str) -> String {
        format!(
            r#"{{"jsonrpc":"2.0","id":{id},"method":"tools/call","params":{{"name":"t","arguments":{{}}}}}}"#
        )
    }

    /// Holds every call of `held` for approval; approved, it is limited to one a minute.
    struct HeldPolicy;

    static HELD_RULES: [RuleInfo; 1] = [RuleInfo {
        name: "needs a human",
        label: "test",
        kind: RuleKind::Rule,
        file: "test",
        line: 1,
        column: 1,
    }];
    static HELD_META: PolicyMeta = PolicyMeta {
        server: "test",
        file: "test",
        dialect: "test",
        digest: "0000000000000000",
        rules: &HELD_RULES,
        counters: &COUNTERS,
        idempotency: &[],
        approvals: &[],
        approval_config: None,
    };

    impl Policy for HeldPolicy {
        fn meta(&self) -> &PolicyMeta {
            &HELD_META
        }
        fn is_hidden(&self, _: &str, _: Option<&portcullis_core::Principal>) -> bool {
            false
        }
        fn decide(&self, call: &ToolCall<'_>, env: &Env<'_>, ticket: &mut Ticket) -> Decision {
            if call.name() == "held" {
                ticket.clear();
                return Decision::approve(RuleId(0), "A person must say yes");
            }
            self.decide_approved(call, env, ticket)
        }
        fn decide_approved(
            &self,
            _: &ToolCall<'_>,
            env: &Env<'_>,
            ticket: &mut Ticket,
        ) -> Decision {
            ticket.clear();
            let mut l: Limits = Limits::new();
            l.push(
                RuleId(0),
                CounterRef {
                    spec: &COUNTERS[0],
                    partition: 0,
                },
                1,
                1,
                "one approved call a minute",
            );
            l.finish(env, ticket)
        }
    }

    static HELD: HeldPolicy = HeldPolicy;

    fn held_session(store: Arc<dyn ApprovalStore>) -> Session {
        Session::new(
            &HELD,
            Arc::new(MemoryCounters::new()),
            1,
            FailMode::Closed,
            None,
            Log {
                level: super::super::log::Level::Error,
            },
        )
        .with_approvals(store)
    }

    fn held_call(id: u32, args: &str) -> String {
        format!(
            r#"{{"jsonrpc":"2.0","id":{id},"method":"tools/call","params":{{"name":"held","arguments":{args}}}}}"#
        )
    }

    /// The approval id of a pending answer.
    fn pending_id(reply: &[u8]) -> String {
        let v: serde_json::Value = serde_json::from_slice(reply).unwrap();
        let text = v["result"]["content"][0]["text"].as_str().unwrap();
        assert!(
            text.starts_with("[APPROVAL REQUIRED] A person must say yes (approval apr_"),
            "{text}"
        );
        v["result"]["_meta"][apr::META_KEY]["id"]
            .as_str()
            .unwrap()
            .to_string()
    }

    /// A held session whose client declared `elicitation`.
    fn eliciting_session() -> Session {
        let s = held_session(Arc::new(apr::NoApprovals));
        let init = br#"{"jsonrpc":"2.0","id":0,"method":"initialize","params":{"protocolVersion":"2025-11-25","capabilities":{"elicitation":{"form":{}}}}}"#;
        assert_eq!(s.from_client(init).forward.len(), 1);
        assert!(s.client_can_elicit());
        let answer = br#"{"jsonrpc":"2.0","id":0,"result":{"protocolVersion":"2025-11-25","capabilities":{}}}"#;
        assert_eq!(s.from_server(answer).forward.len(), 1);
        s
    }

    fn feed(s: &Session, line: String) -> Outcome<'static> {
        s.from_client(line.as_bytes()).into_owned()
    }

    /// The elicitation request a held call produced, and its id.
    fn asked(out: &Outcome<'_>, call_id: &[u8]) -> (serde_json::Value, String) {
        assert!(out.forward.is_empty() && out.reply.is_empty(), "{out:?}");
        assert_eq!(out.for_call.len(), 1, "{out:?}");
        assert_eq!(out.for_call[0].call_id, call_id);
        assert!(!out.for_call[0].last);
        let v: serde_json::Value = serde_json::from_slice(&out.for_call[0].message).unwrap();
        let id = v["id"].as_str().unwrap().to_string();
        (v, id)
    }

    fn accept(eid: &str, approve: bool) -> String {
        format!(
            r#"{{"jsonrpc":"2.0","id":"{eid}","result":{{"action":"accept","content":{{"approve":{approve}}}}}}}"#
        )
    }

    #[test]
    fn an_approved_elicitation_forwards_the_call_unchanged_and_reserves_then() {
        let s = eliciting_session();
        let line = held_call(1, r#"{"x":1}"#);
        let out = s.from_client(line.as_bytes());
        let (request, eid) = asked(&out, b"1");
        assert_eq!(request["method"], "elicitation/create");
        assert_eq!(request["params"]["mode"], "form", "negotiated 2025-11-25");
        assert_eq!(s.in_flight(), 1, "the held call is in flight");
        // Its id is taken while it waits.
        let again = s.from_client(line.as_bytes());
        assert_eq!(error_of(&again.reply[0]), -32600);
        // The server cannot answer a call it never got.
        let forged = s.from_server(br#"{"jsonrpc":"2.0","id":1,"result":{"content":[]}}"#);
        assert!(forged.forward.is_empty());
        // Approved: the original bytes go upstream; the answer is the server's.
        let out = feed(&s, accept(&eid, true));
        assert_eq!(out.forward.len(), 1);
        assert_eq!(&*out.forward[0], line.as_bytes());
        assert!(out.reply.is_empty() && out.for_call.is_empty(), "{out:?}");
        // A replayed answer: dropped.
        let out = feed(&s, accept(&eid, true));
        assert!(out.forward.is_empty() && out.reply.is_empty() && out.for_call.is_empty());
        let done = s.from_server(br#"{"jsonrpc":"2.0","id":1,"result":{"content":[]}}"#);
        assert_eq!(done.forward.len(), 1);
        assert_eq!(s.in_flight(), 0);
        // The approved call used the minute's unit: the next approval is refused by the limit.
        let out = feed(&s, held_call(2, r#"{"x":2}"#));
        let (_, eid) = asked(&out, b"2");
        let out = feed(&s, accept(&eid, true));
        assert!(out.forward.is_empty(), "{out:?}");
        assert_eq!(out.for_call.len(), 1);
        assert!(out.for_call[0].last);
        let text = String::from_utf8(out.for_call[0].message.clone()).unwrap();
        assert!(text.contains("one approved call a minute"), "{text}");
    }

    #[test]
    fn a_refused_or_withdrawn_elicitation_forwards_nothing_and_reserves_nothing() {
        let s = eliciting_session();
        let out = feed(&s, held_call(1, r#"{"x":1}"#));
        let (_, eid) = asked(&out, b"1");
        let out = feed(&s, accept(&eid, false));
        assert!(out.forward.is_empty());
        let v: serde_json::Value = serde_json::from_slice(&out.for_call[0].message).unwrap();
        assert_eq!(v["id"], 1);
        assert_eq!(
            v["result"]["content"][0]["text"],
            "[APPROVAL DECLINED] A person must say yes (the user answered no)"
        );
        assert_eq!(v["result"]["_meta"][apr::META_KEY]["status"], "declined");
        assert_eq!(s.in_flight(), 0);
        // A transport that cannot deliver the question withdraws it.
        let out = feed(&s, held_call(2, r#"{"x":1}"#));
        let (_, eid) = asked(&out, b"2");
        let refused = s.withdraw(b"2", "no stream").unwrap();
        let v: serde_json::Value = serde_json::from_slice(&refused).unwrap();
        assert_eq!(
            v["result"]["content"][0]["text"],
            "[APPROVAL DECLINED] A person must say yes (no stream)"
        );
        assert_eq!(s.withdraw(b"2", "again"), None);
        assert!(feed(&s, accept(&eid, true)).forward.is_empty());
        // No unit was used: an approval now passes the limit.
        let out = feed(&s, held_call(3, r#"{"x":1}"#));
        let (_, eid) = asked(&out, b"3");
        assert_eq!(feed(&s, accept(&eid, true)).forward.len(), 1);
    }

    #[test]
    fn a_client_without_elicitation_or_with_url_mode_only_gets_the_operator_flow() {
        for caps in [r#"{}"#, r#"{"elicitation":{"url":{}}}"#] {
            let s = held_session(Arc::new(apr::MemoryApprovals::new()));
            let init = format!(
                r#"{{"jsonrpc":"2.0","id":0,"method":"initialize","params":{{"protocolVersion":"2025-11-25","capabilities":{caps}}}}}"#
            );
            s.from_client(init.as_bytes());
            assert!(!s.client_can_elicit(), "{caps}");
            let out = feed(&s, held_call(1, r#"{"x":1}"#));
            assert!(out.for_call.is_empty());
            pending_id(&out.reply[0]);
        }
    }

    #[test]
    fn an_upstream_error_gives_the_approval_back_and_a_result_keeps_it_used() {
        let store = Arc::new(apr::MemoryApprovals::new());
        let s = held_session(store.clone());
        let line = held_call(1, r#"{"x":1}"#);
        let out = s.from_client(line.as_bytes());
        assert!(out.forward.is_empty());
        let id = pending_id(&out.reply[0]);
        store
            .decide(&id, true, "op", "", UnixMillis::now())
            .unwrap();
        // Forwarded; the upstream fails it: the approval is back.
        assert_eq!(
            s.from_client(held_call(2, r#"{"x":1}"#).as_bytes())
                .forward
                .len(),
            1
        );
        assert_eq!(
            store.get(&id, UnixMillis::now()).unwrap().unwrap().status,
            apr::Status::Consumed
        );
        s.from_server(br#"{"jsonrpc":"2.0","id":2,"error":{"code":-32603,"message":"boom"}}"#);
        assert_eq!(
            store.get(&id, UnixMillis::now()).unwrap().unwrap().status,
            apr::Status::Approved
        );
        // The retry is forwarded again (the failed one gave its counter unit back too).
        assert_eq!(
            s.from_client(held_call(3, r#"{"x":1}"#).as_bytes())
                .forward
                .len(),
            1
        );
        s.from_server(br#"{"jsonrpc":"2.0","id":3,"result":{"content":[]}}"#);
        assert_eq!(
            store.get(&id, UnixMillis::now()).unwrap().unwrap().status,
            apr::Status::Consumed
        );
    }

    #[test]
    fn an_approved_call_a_limit_refuses_keeps_its_approval() {
        let store = Arc::new(apr::MemoryApprovals::new());
        let s = held_session(store.clone());
        // The limit's one unit used by an approved call of other arguments.
        let first = pending_id(&s.from_client(held_call(1, "{}").as_bytes()).reply[0]);
        store
            .decide(&first, true, "op", "", UnixMillis::now())
            .unwrap();
        assert_eq!(
            s.from_client(held_call(2, "{}").as_bytes()).forward.len(),
            1
        );
        let id = pending_id(&s.from_client(held_call(3, r#"{"y":2}"#).as_bytes()).reply[0]);
        store
            .decide(&id, true, "op", "", UnixMillis::now())
            .unwrap();
        let line = held_call(4, r#"{"y":2}"#);
        let out = s.from_client(line.as_bytes());
        assert!(out.forward.is_empty());
        let reply = String::from_utf8(out.reply[0].clone()).unwrap();
        assert!(reply.contains("one approved call a minute"), "{reply}");
        assert_eq!(
            store.get(&id, UnixMillis::now()).unwrap().unwrap().status,
            apr::Status::Approved
        );
    }

    #[test]
    fn oversized_arguments_and_a_failed_store_refuse_without_forwarding() {
        let store = Arc::new(apr::MemoryApprovals::new());
        let s = held_session(store.clone());
        let big = format!(r#"{{"blob":"{}"}}"#, "x".repeat(apr::MAX_ARGUMENT_BYTES));
        let line = held_call(1, &big);
        let out = s.from_client(line.as_bytes());
        assert!(out.forward.is_empty());
        let reply = String::from_utf8(out.reply[0].clone()).unwrap();
        assert!(reply.contains("[POLICY DENIED] A person must say yes (the arguments are too large to hold for approval"), "{reply}");
        assert!(store.list(UnixMillis::now()).unwrap().is_empty());

        let s = held_session(Arc::new(apr::NoApprovals));
        let line = held_call(1, "{}");
        let out = s.from_client(line.as_bytes());
        assert!(out.forward.is_empty());
        let reply = String::from_utf8(out.reply[0].clone()).unwrap();
        assert!(
            reply.contains("[POLICY DENIED] A person must say yes (approval state unavailable)"),
            "{reply}"
        );
    }

    #[test]
    fn answers_match_requests_by_json_value() {
        let s = session();
        assert_eq!(
            s.from_client(br#"{"jsonrpc":"2.0","id":1,"method":"tools/list"}"#)
                .forward
                .len(),
            1
        );
        // The upstream echoes the id as 1.0: still the tools/list, still filtered.
        let out = s.from_server(
            br#"{"jsonrpc":"2.0","id":1.0,"result":{"tools":[{"name":"secret"},{"name":"t"}]}}"#,
        );
        assert_eq!(
            out.forward[0].as_ref(),
            br#"{"jsonrpc":"2.0","id":1.0,"result":{"tools":[{"name":"t"}]}}"#
        );
        assert_eq!(s.in_flight(), 0);
    }

    #[test]
    fn an_error_answer_rolls_back_and_a_result_commits() {
        let s = session();
        assert_eq!(s.from_client(call("7").as_bytes()).forward.len(), 1);
        // Over the limit while the first is in flight.
        assert!(
            s.from_client(call("8").as_bytes()).reply[0]
                .starts_with(b"{\"jsonrpc\":\"2.0\",\"id\":8,\"result\":{\"content\"")
        );
        // The upstream fails call 7 (id spelled 7e0): its unit comes back.
        s.from_server(br#"{"jsonrpc":"2.0","id":7e0,"error":{"code":-32603,"message":"boom"}}"#);
        assert_eq!(s.from_client(call("9").as_bytes()).forward.len(), 1);
        // A tool-level error (isError result) is a success at the JSON-RPC level: the unit stays.
        s.from_server(br#"{"jsonrpc":"2.0","id":9,"result":{"content":[],"isError":true}}"#);
        assert!(!s.from_client(call("10").as_bytes()).reply.is_empty());
    }

    #[test]
    fn string_and_number_ids_are_different_requests() {
        let s = session();
        s.from_client(br#"{"jsonrpc":"2.0","id":"1","method":"ping"}"#);
        assert!(
            s.from_client(br#"{"jsonrpc":"2.0","id":1,"method":"ping"}"#)
                .reply
                .is_empty()
        );
        assert_eq!(
            error_of(
                &s.from_client(br#"{"jsonrpc":"2.0","id":"1","method":"ping"}"#)
                    .reply[0]
            ),
            -32600
        );
    }

    /// review5: an answer whose only result member is spelled `Result`
    /// is not filtered (names are read exactly) yet Go's encoding/json
    /// (case-insensitive member names) reads it as the result: a hidden tool
    /// reaches a Go client.
    /// review6: an answer with both `result` and a non-null `error` is
    /// refused (the request gets -32603), whatever either holds: a client
    /// that reads the error would otherwise see text no rule checked.
    #[test]
    fn an_answer_with_both_result_and_error_is_refused() {
        let s = session();
        s.from_client(br#"{"jsonrpc":"2.0","id":3,"method":"tools/list"}"#);
        let out = s.from_server(
            br#"{"jsonrpc":"2.0","id":3,"result":{"tools":[]},"error":{"code":1,"message":"ghp_16C7e42F292c6912E7710c838347Ae178B4a"}}"#,
        );
        assert_eq!(out.forward.len(), 1);
        let text = String::from_utf8_lossy(&out.forward[0]).into_owned();
        assert!(!text.contains("ghp_"), "forwarded: {text}");
        assert!(text.contains("-32603"), "{text}");
        // A null error beside a result is the usual answer.
        s.from_client(br#"{"jsonrpc":"2.0","id":4,"method":"tools/list"}"#);
        let out = s.from_server(br#"{"jsonrpc":"2.0","id":4,"result":{"tools":[]},"error":null}"#);
        let text = String::from_utf8_lossy(&out.forward[0]).into_owned();
        assert!(text.contains("\"result\""), "{text}");
    }

    #[test]
    fn review5_case_variant_result_is_not_forwarded_unfiltered() {
        let s = session();
        s.from_client(br#"{"jsonrpc":"2.0","id":3,"method":"tools/list"}"#);
        let out = s.from_server(
            br#"{"jsonrpc":"2.0","id":3,"Result":{"tools":[{"name":"t"},{"name":"secret"}]}}"#,
        );
        let text = String::from_utf8_lossy(&out.forward[0]).into_owned();
        assert!(!text.contains("secret"), "forwarded: {text}");
    }

    /// review5: same, with the id spelled `ID`: the answer matches no
    /// pending request and is forwarded as it came.
    #[test]
    fn review5_case_variant_id_is_not_forwarded_unfiltered() {
        let s = session();
        s.from_client(br#"{"jsonrpc":"2.0","id":3,"method":"tools/list"}"#);
        let out = s.from_server(
            br#"{"jsonrpc":"2.0","ID":3,"result":{"tools":[{"name":"t"},{"name":"secret"}]}}"#,
        );
        let text = String::from_utf8_lossy(out.forward.first().map(|f| &f[..]).unwrap_or(b""))
            .into_owned();
        assert!(!text.contains("secret"), "forwarded: {text}");
    }

    /// review5: an answer with two ids (duplicate, or case variants Go
    /// reads as one member) is read last-wins, matches no pending request
    /// and is forwarded as it came: a client reading the other id (first
    /// wins; Go, whose `Id` overrides `id`) gets an unfiltered list.
    #[test]
    fn review5_ambiguous_ids_are_not_forwarded_unfiltered() {
        let mut leaked = Vec::new();
        for answer in [
            &br#"{"jsonrpc":"2.0","id":3,"result":{"tools":[{"name":"secret"}]},"id":4}"#[..],
            br#"{"jsonrpc":"2.0","id":4,"Id":3,"result":{"tools":[{"name":"secret"}]}}"#,
        ] {
            let s = session();
            s.from_client(br#"{"jsonrpc":"2.0","id":3,"method":"tools/list"}"#);
            let out = s.from_server(answer);
            let text = String::from_utf8_lossy(out.forward.first().map(|f| &f[..]).unwrap_or(b""))
                .into_owned();
            if text.contains("secret") {
                leaked.push(text);
            }
        }
        assert!(leaked.is_empty(), "forwarded: {leaked:#?}");
    }

    /// The JSON of one message.
    fn json(bytes: &[u8]) -> serde_json::Value {
        serde_json::from_slice(bytes).expect("JSON")
    }

    #[test]
    fn an_ambiguous_envelope_answers_the_request_it_names_with_an_error() {
        for answer in [
            &br#"{"jsonrpc":"2.0","id":3,"Result":{"tools":[{"name":"secret"}]}}"#[..],
            br#"{"jsonrpc":"2.0","ID":3,"result":{"tools":[{"name":"secret"}]}}"#,
            br#"{"jsonrpc":"2.0","id":3,"Id":3,"result":{"tools":[{"name":"secret"}]}}"#,
            br#"{"jsonrpc":"2.0","id":3,"result":{"tools":[{"name":"secret"}]},"Error":null}"#,
            br#"{"Jsonrpc":"2.0","id":3,"result":{"tools":[{"name":"secret"}]}}"#,
            br#"{"jsonrpc":"2.0","id":3,"result":{"tools":[{"name":"secret"}]},"METHOD":"x"}"#,
            // Read by the strict validator (escaped, non-ASCII, many members).
            br#"{"jsonrpc":"2.0","\u0069d":3,"R\u0065sult":{"tools":[{"name":"secret"}]}}"#,
            "{\"jsonrpc\":\"2.0\",\"id\":3,\"re\u{17f}ult\":{\"tools\":[{\"name\":\"secret\"}]}}"
                .as_bytes(),
            "{\"jsonrpc\":\"2.0\",\"\u{130}d\":3,\"result\":{\"tools\":[{\"name\":\"secret\"}]}}"
                .as_bytes(),
            br#"{"a":1,"b":2,"c":3,"d":4,"e":5,"f":6,"g":7,"h":8,"i":9,"j":10,"k":11,"l":12,"m":13,"n":14,"o":15,"p":16,"q":17,"id":3,"RESULT":{"tools":[{"name":"secret"}]}}"#,
        ] {
            let s = session();
            s.from_client(br#"{"jsonrpc":"2.0","id":3,"method":"tools/list"}"#);
            let out = s.from_server(answer);
            let shown = String::from_utf8_lossy(answer).into_owned();
            assert_eq!(out.forward.len(), 1, "{shown}");
            let v = json(&out.forward[0]);
            assert_eq!(v["id"], 3, "{shown}");
            assert_eq!(v["error"]["code"], UPSTREAM_BAD_ANSWER, "{shown}");
            assert_eq!(v["error"]["message"], AMBIGUOUS_ANSWER, "{shown}");
            assert_eq!(s.in_flight(), 0, "{shown}");
            // The request is answered: nothing is left waiting.
            assert!(s.upstream_gone("gone").is_empty());
        }
    }

    #[test]
    fn an_answer_with_ambiguous_ids_answers_every_request_they_name() {
        let s = session();
        for id in [3, 4, 5] {
            s.from_client(
                format!(r#"{{"jsonrpc":"2.0","id":{id},"method":"tools/list"}}"#).as_bytes(),
            );
        }
        let out = s
            .from_server(br#"{"jsonrpc":"2.0","id":3,"result":{"tools":[]},"ID":4,"iD":3,"Id":9}"#);
        let ids: Vec<_> = out.forward.iter().map(|f| json(f)["id"].clone()).collect();
        assert_eq!(ids, [3, 4]);
        assert!(
            out.forward
                .iter()
                .all(|f| error_of(f) == UPSTREAM_BAD_ANSWER)
        );
        assert_eq!(s.in_flight(), 1, "5 is not named: still waiting");
        // No id at all, or none in flight: nothing for the client.
        assert!(
            s.from_server(br#"{"jsonrpc":"2.0","Result":{}}"#)
                .forward
                .is_empty()
        );
        assert!(
            s.from_server(br#"{"jsonrpc":"2.0","ID":77,"result":{}}"#)
                .forward
                .is_empty()
        );
        // A server request or notification with an ambiguous envelope is dropped too.
        assert!(
            s.from_server(
                br#"{"jsonrpc":"2.0","method":"notifications/tools/list_changed","Params":{}}"#
            )
            .forward
            .is_empty()
        );
        assert_eq!(s.in_flight(), 1);
    }

    #[test]
    fn an_ambiguous_answer_to_a_call_counts_the_call() {
        let s = session();
        s.from_client(call("5").as_bytes());
        let out = s.from_server(br#"{"jsonrpc":"2.0","id":5,"Result":{"content":[]}}"#);
        assert_eq!(error_of(&out.forward[0]), UPSTREAM_BAD_ANSWER);
        // The server answered: the call was made, its unit stays used.
        let six = call("6");
        let again = s.from_client(six.as_bytes());
        assert!(again.forward.is_empty(), "over the limit of one a minute");
        let text = String::from_utf8_lossy(&again.reply[0]).into_owned();
        assert!(text.contains("POLICY DENIED"), "{text}");
    }

    #[test]
    fn an_ambiguous_answer_in_a_batch_is_replaced_by_its_error() {
        let s = session();
        s.from_client(br#"{"jsonrpc":"2.0","id":1,"method":"tools/list"}"#);
        s.from_client(br#"{"jsonrpc":"2.0","id":2,"method":"ping"}"#);
        let out = s.from_server(
            br#"[{"jsonrpc":"2.0","id":1,"Result":{"tools":[{"name":"secret"}]}},{"jsonrpc":"2.0","id":2,"result":{}}]"#,
        );
        let v = json(&out.forward[0]);
        assert_eq!(v[0]["id"], 1);
        assert_eq!(v[0]["error"]["code"], UPSTREAM_BAD_ANSWER);
        assert_eq!(
            v[1],
            serde_json::json!({"jsonrpc":"2.0","id":2,"result":{}})
        );
    }

    /// Request ids the proxy cannot key exactly are refused (-32600) with
    /// the id as written; answers are matched as a U+FFFD-decoding client
    /// would match them.
    #[test]
    fn ids_without_an_exact_key_are_refused_and_answers_read_as_clients_do() {
        let s = session();
        let lone = "request id string holds a lone UTF-16 surrogate";
        let huge = "request id number has an exponent too large to compare exactly";
        for (id, message) in [
            (r#""\ud800""#, lone),
            (r#""a\udc00""#, lone),
            ("1e1099511627777", huge),
            ("-1E-1099511627776", huge),
            ("1e549755813888", huge),
        ] {
            for request in [
                format!(r#"{{"jsonrpc":"2.0","id":{id},"method":"tools/list"}}"#),
                call(id),
            ] {
                let out = s.from_client(request.as_bytes());
                assert!(out.forward.is_empty(), "{request}");
                // Read as text: serde_json refuses a lone surrogate.
                assert_eq!(error_of(&out.reply[0]), -32600, "{request}");
                let reply = String::from_utf8_lossy(&out.reply[0]).into_owned();
                assert!(
                    reply.contains(&format!(r#""message":"{message}""#)),
                    "{reply}"
                );
                assert!(reply.contains(&format!(r#""id":{id}"#)), "{reply}");
            }
        }
        assert_eq!(s.in_flight(), 0);
        // A real U+FFFD, written or escaped, and a pair are fine ids; an
        // answer naming one as a U+FFFD-decoding reader would is its answer,
        // and filtered as such.
        for (id, answer_id) in [
            (r#""\ufffd""#, r#""\ud800""#),
            ("\"\u{fffd}\"", r#""\udfff""#),
            (r#""\ud83d\ude00""#, "\"\u{1f600}\""),
        ] {
            let request = format!(r#"{{"jsonrpc":"2.0","id":{id},"method":"tools/list"}}"#);
            assert_eq!(s.from_client(request.as_bytes()).forward.len(), 1, "{id}");
            let answer = format!(
                r#"{{"jsonrpc":"2.0","id":{answer_id},"result":{{"tools":[{{"name":"t"}},{{"name":"secret"}}]}}}}"#
            );
            let out = s.from_server(answer.as_bytes());
            let text = String::from_utf8_lossy(&out.forward[0]).into_owned();
            assert!(
                !text.contains("secret") && text.contains(r#""name":"t""#),
                "{text}"
            );
            assert_eq!(s.in_flight(), 0, "{id}");
        }
        // Under the bound: ordinary ids, compared exactly.
        s.from_client(br#"{"jsonrpc":"2.0","id":1e549755813887,"method":"tools/list"}"#);
        s.from_client(br#"{"jsonrpc":"2.0","id":10e549755813887,"method":"tools/list"}"#);
        assert_eq!(s.in_flight(), 2);
        s.from_server(br#"{"jsonrpc":"2.0","id":1e1099511627777,"result":{"tools":[]}}"#);
        assert_eq!(s.in_flight(), 2, "an answer past the clamp names neither");
        s.from_server(br#"{"jsonrpc":"2.0","id":100e549755813886,"result":{"tools":[]}}"#);
        assert_eq!(s.in_flight(), 1, "the same value, spelled otherwise");
    }

    #[test]
    fn an_unfilterable_list_answer_is_replaced_by_an_error() {
        let s = session();
        s.from_client(br#"{"jsonrpc":"2.0","id":3,"method":"tools/list"}"#);
        let out = s.from_server(br#"{"jsonrpc":"2.0","id":3,"result":{"tools":[{"name":"t"}],"tools":[{"name":"secret"}]}}"#);
        assert_eq!(error_of(&out.forward[0]), UPSTREAM_BAD_ANSWER);
    }

    #[test]
    fn a_cancelled_request_gets_no_answer_and_keeps_its_units() {
        let s = session();
        s.from_client(call("5").as_bytes());
        let cancel = br#"{"jsonrpc":"2.0","method":"notifications/cancelled","params":{"requestId":5,"reason":"user"}}"#;
        assert_eq!(
            s.from_client(cancel).forward.len(),
            1,
            "the cancellation is forwarded"
        );
        assert_eq!(s.in_flight(), 0);
        assert!(
            s.from_server(br#"{"jsonrpc":"2.0","id":5,"result":{}}"#)
                .forward
                .is_empty(),
            "a late answer is dropped"
        );
        assert!(s.upstream_gone("gone").is_empty(), "nothing left to answer");
        assert!(
            !s.from_client(call("6").as_bytes()).reply.is_empty(),
            "the unit stayed used"
        );
    }

    #[test]
    fn expired_requests_are_answered_cancelled_and_rolled_back() {
        let s = session();
        s.from_client(call("\"slow\"").as_bytes());
        std::thread::sleep(Duration::from_millis(20));
        let e = s.expire(Duration::from_millis(10));
        assert_eq!(error_of(&e.to_client[0]), UPSTREAM_TIMEOUT);
        assert_eq!(
            e.to_server[0],
            br#"{"jsonrpc":"2.0","method":"notifications/cancelled","params":{"requestId":"slow","reason":"timed out at the proxy"}}"#
        );
        // The late answer is dropped (the client already has one), and the unit is back.
        assert!(
            s.from_server(br#"{"jsonrpc":"2.0","id":"slow","result":{}}"#)
                .forward
                .is_empty()
        );
        assert_eq!(s.from_client(call("2").as_bytes()).forward.len(), 1);
    }

    /// A paid retry whose id turns out to be in flight when it is
    /// registered (two requests of one session racing) is refused, and the
    /// reservation its credential claimed is released at once: the retry
    /// never reached the server, so nothing was paid.
    #[test]
    fn a_paid_retry_refused_at_registration_releases_its_reservation_at_once() {
        use portcullis_core::spend::{Budget, Budgets, WindowBudget};
        let counters = Arc::new(MemoryCounters::new());
        let s = Session::new(
            &POLICY,
            counters.clone(),
            1,
            FailMode::Closed,
            None,
            Log {
                level: super::super::log::Level::Error,
            },
        );
        // Id 7 is in flight.
        let ping = br#"{"jsonrpc":"2.0","id":7,"method":"ping"}"#;
        assert_eq!(s.from_client(ping).forward.len(), 1);
        let mut budgets = Budgets::new();
        budgets.push(Budget {
            rule: RuleId(0),
            currency: Some("usd"),
            per_call: None,
            window: Some(WindowBudget {
                counter: CounterRef {
                    spec: &COUNTERS[0],
                    partition: 0,
                },
                max: 1_000_000,
            }),
            message: "",
            no_partition: None,
        });
        let price = crate::mpp::Price {
            amount: 400_000,
            currency: portcullis_core::spend::currency("usd").unwrap(),
            ids: vec!["ch-1".into()],
        };
        let now = UnixMillis::now();
        let reserved = crate::mpp::reserve(
            "t",
            &budgets,
            &price,
            counters.as_ref(),
            now,
            FailMode::Closed,
            &META,
        )
        .unwrap();
        let ticket = reserved.ticket;
        let spent = || -> u64 {
            ticket
                .iter()
                .map(|r| counters.read(r.counter, now).unwrap())
                .sum()
        };
        assert_eq!(spent(), 400_000, "the challenge's price is reserved");
        let paid = Paid {
            tool: "t".into(),
            budgets,
            meta: &META,
            claimed: Some(crate::mpp::Hold {
                tool: "t".into(),
                reserved,
                amount: price.amount,
                currency: price.currency,
                challenge_ids: price.ids.clone(),
                counters: counters.clone(),
                meta: &META,
                metrics: None,
                deadline: Instant::now() + Duration::from_secs(300),
            }),
        };
        let refused = s.register_call(
            id_key_of_raw(b"7").expect("a number"),
            b"7",
            Ticket::default(),
            Some(Box::new(paid)),
            None,
        );
        let reply = refused.expect_err("id 7 is in flight");
        assert_eq!(error_of(&reply), -32600);
        assert_eq!(spent(), 0, "released, not kept until the payment timeout");
        // The ping is still the request in flight under id 7.
        assert_eq!(s.in_flight(), 1);
    }

    fn error_of(bytes: &[u8]) -> i32 {
        let text = String::from_utf8_lossy(bytes);
        let i = text.find("\"code\":").expect("an error") + 7;
        text[i..].split([',', '}']).next().unwrap().parse().unwrap()
    }
}
