//! Approval records of the operator flow (issue 13): a call an approval rule
//! holds is stored as a pending request, keyed by its fingerprint; a person
//! approves or denies it (`portcullis approvals`), and the agent's identical
//! retry consumes the approval exactly once.
//!
//! Records live beside the counters: in memory ([`MemoryApprovals`], one
//! process only) or in the SQLite file of `--state-dir` (shared by every
//! proxy and by the `portcullis approvals` command).
//!
//! A record moves `pending -> approved | denied | expired` (a person, or its
//! timeout) and `approved -> consumed` (the retry that is forwarded), back
//! `consumed -> approved` when the upstream answered that retry with an
//! error ([`ApprovalStore::restore`]).

use sha2::{Digest, Sha256};

use portcullis_core::Principal;
use portcullis_core::call::ToolCall;
use portcullis_core::counters::{StateError, UnixMillis};
use portcullis_core::json::Val;
use portcullis_core::policy::{Decision, PolicyMeta};

/// Arguments larger than this are never stored: such a call is refused.
pub const MAX_ARGUMENT_BYTES: usize = 64 * 1024;

/// A rule without a timeout (policies compiled before approval timeouts): 15 minutes.
pub const DEFAULT_TIMEOUT_MS: u64 = 15 * 60 * 1000;

/// The `_meta` key of the approval details in answers to held calls.
pub const META_KEY: &str = "dev.portcullis/approval";

/// At most this many records in memory; decided and expired ones go first.
pub const MEMORY_MAX_RECORDS: usize = 10_000;

/// Where a record stands.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Status {
    /// Waiting for a person.
    Pending,
    /// Approved, not yet used by a retry.
    Approved,
    /// Declined by a person.
    Denied,
    /// Used by the retry that was forwarded.
    Consumed,
    /// Its timeout passed before it was decided or used.
    Expired,
}

impl Status {
    /// The stored and displayed name.
    pub fn as_str(self) -> &'static str {
        match self {
            Status::Pending => "pending",
            Status::Approved => "approved",
            Status::Denied => "denied",
            Status::Consumed => "consumed",
            Status::Expired => "expired",
        }
    }

    /// The status named `s`.
    pub fn parse(s: &str) -> Option<Status> {
        Some(match s {
            "pending" => Status::Pending,
            "approved" => Status::Approved,
            "denied" => Status::Denied,
            "consumed" => Status::Consumed,
            "expired" => Status::Expired,
            _ => return None,
        })
    }
}

/// One approval request.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Record {
    /// `apr_` and 32 hex digits (128 random bits).
    pub id: String,
    /// [`fingerprint`], 64 hex digits.
    pub fingerprint: String,
    /// The server (policy) name.
    pub server: String,
    /// The tool.
    pub tool: String,
    /// The call's arguments as JSON, as the client sent them.
    pub arguments: String,
    /// The approval rule's name.
    pub rule: String,
    /// The rule's message.
    pub message: String,
    /// The caller's `sub`, `iss` ("" when unknown).
    pub sub: String,
    /// See `sub`.
    pub iss: String,
    /// When it was requested.
    pub created: UnixMillis,
    /// When it lapses (created + the rule's timeout).
    pub expires: UnixMillis,
    /// Where it stands.
    pub status: Status,
    /// Who decided it ("" while undecided).
    pub decided_by: String,
    /// The reason given with the decision ("" when none).
    pub reason: String,
}

impl Record {
    /// The status as of `now`: a pending or approved record past its expiry is expired.
    pub fn status_at(&self, now: UnixMillis) -> Status {
        match self.status {
            Status::Pending | Status::Approved if now >= self.expires => Status::Expired,
            s => s,
        }
    }
}

/// A new request's fields, before it has an id.
#[derive(Debug, Clone)]
pub struct NewRequest {
    /// See [`Record::fingerprint`].
    pub fingerprint: String,
    /// See [`Record::server`].
    pub server: String,
    /// See [`Record::tool`].
    pub tool: String,
    /// See [`Record::arguments`].
    pub arguments: String,
    /// See [`Record::rule`].
    pub rule: String,
    /// See [`Record::message`].
    pub message: String,
    /// See [`Record::sub`].
    pub sub: String,
    /// See [`Record::iss`].
    pub iss: String,
    /// The rule's timeout.
    pub timeout_ms: u64,
    /// Intercept's `dedupe_window`: an identical call reuses a pending
    /// request only this long after it was created (None: while it is pending).
    pub dedupe_ms: Option<u64>,
}

impl NewRequest {
    /// True when pending request `r` may answer this identical call at `now`.
    pub fn reuses(&self, r: &Record, now: UnixMillis) -> bool {
        self.dedupe_ms.is_none_or(|d| {
            now.0
                < r.created
                    .0
                    .saturating_add(i64::try_from(d).unwrap_or(i64::MAX))
        })
    }
}

impl NewRequest {
    /// The record it becomes, created `now` with `id`.
    pub fn into_record(self, id: String, now: UnixMillis) -> Record {
        let timeout = i64::try_from(self.timeout_ms).unwrap_or(i64::MAX);
        Record {
            id,
            fingerprint: self.fingerprint,
            server: self.server,
            tool: self.tool,
            arguments: self.arguments,
            rule: self.rule,
            message: self.message,
            sub: self.sub,
            iss: self.iss,
            created: now,
            expires: UnixMillis(now.0.saturating_add(timeout)),
            status: Status::Pending,
            decided_by: String::new(),
            reason: String::new(),
        }
    }
}

/// What the store says about a held call.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Resolution {
    /// An approval for this fingerprint was consumed by this call: forward it.
    Granted(Record),
    /// A person denied this very call and the denial still stands.
    Denied(Record),
    /// Waiting for a person (`new`: created by this call, else an identical
    /// earlier call's request).
    Pending {
        /// The request.
        record: Record,
        /// Created now.
        new: bool,
    },
}

/// Why a person's decision was not recorded.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum DecideError {
    /// No record has this id.
    Unknown,
    /// The record is not pending any more (decided, consumed or expired).
    NotPending(Status),
    /// The store failed.
    State(StateError),
}

impl std::fmt::Display for DecideError {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            DecideError::Unknown => f.write_str("no approval request has this id"),
            DecideError::NotPending(Status::Expired) => {
                f.write_str("the approval request has expired")
            }
            DecideError::NotPending(s) => {
                write!(f, "the approval request is already {}", s.as_str())
            }
            DecideError::State(e) => write!(f, "approval state unavailable: {}", e.0),
        }
    }
}

impl From<StateError> for DecideError {
    fn from(e: StateError) -> Self {
        DecideError::State(e)
    }
}

/// A place approval records are kept.
pub trait ApprovalStore: Send + Sync {
    /// For a call an approval rule holds, in one atomic step (across
    /// processes for shared stores): expires stale records of `req`'s
    /// fingerprint; consumes an approved one (approved -> consumed, exactly
    /// once); else reports a standing denial; else returns the pending
    /// request, creating it (with `new_id`) when there is none. With it, the
    /// number of records this step found lapsed and marked expired.
    fn resolve(
        &self,
        req: NewRequest,
        new_id: String,
        now: UnixMillis,
    ) -> Result<(Resolution, usize), StateError>;

    /// Gives a consumed approval back (consumed -> approved): the upstream
    /// failed the forwarded call. A record in another state is left alone.
    fn restore(&self, id: &str) -> Result<bool, StateError>;

    /// The record `id`, with its status as of `now`.
    fn get(&self, id: &str, now: UnixMillis) -> Result<Option<Record>, StateError>;

    /// Every record, newest first, statuses as of `now`.
    fn list(&self, now: UnixMillis) -> Result<Vec<Record>, StateError>;

    /// A person's decision on a pending, unexpired record.
    fn decide(
        &self,
        id: &str,
        approve: bool,
        by: &str,
        reason: &str,
        now: UnixMillis,
    ) -> Result<Record, DecideError>;

    /// Marks pending and approved records past their expiry expired; the
    /// number marked.
    fn sweep(&self, now: UnixMillis) -> Result<usize, StateError>;

    /// True when a call may wait on I/O (decided off the event loop then).
    fn may_block(&self) -> bool {
        false
    }
}

/// A new approval id: `apr_` and 128 random bits in hex.
pub fn new_id() -> Result<String, StateError> {
    let mut b = [0u8; 16];
    getrandom::fill(&mut b)
        .map_err(|e| StateError(format!("no randomness for an approval id: {e}")))?;
    let mut s = String::with_capacity(36);
    s.push_str("apr_");
    for x in b {
        s.push_str(&format!("{x:02x}"));
    }
    Ok(s)
}

/// True for a well-formed approval id (`apr_` and 32 lowercase hex digits).
pub fn is_id(s: &str) -> bool {
    s.strip_prefix("apr_").is_some_and(|h| {
        h.len() == 32
            && h.bytes()
                .all(|b| b.is_ascii_digit() || (b'a'..=b'f').contains(&b))
    })
}

/// The fingerprint of a held call: SHA-256 over the server, the tool, the
/// canonical arguments ([`portcullis_core::ops::partition_of`]: key order,
/// whitespace and number spelling do not matter), the rule, and the caller's
/// issuer and subject; 64 hex digits. Every part is length-prefixed.
pub fn fingerprint(
    server: &str,
    call: &ToolCall<'_>,
    rule: &str,
    caller: Option<&Principal>,
) -> String {
    fingerprint_on(server, None, call, rule, caller)
}

/// [`fingerprint`] of a request on any surface: `method` is None for a
/// `tools/call` (its fingerprint unchanged), else the request's method
/// (`resources/read`, `resources/subscribe`, `prompts/get`), so approving a
/// read never admits a subscription, nor a prompt a tool of the same name.
/// `call.name()` is the normalised URI or the prompt name; a prompt's
/// arguments count as a tool's do.
pub fn fingerprint_on(
    server: &str,
    method: Option<&str>,
    call: &ToolCall<'_>,
    rule: &str,
    caller: Option<&Principal>,
) -> String {
    let mut h = Sha256::new();
    h.update(b"portcullis-approval-v1");
    let mut part = |s: &[u8]| {
        h.update((s.len() as u64).to_le_bytes());
        h.update(s);
    };
    if let Some(m) = method {
        part(b"\0method");
        part(m.as_bytes());
    }
    part(server.as_bytes());
    part(call.name().as_bytes());
    part(&portcullis_core::ops::partition_of(Some(Val::Object(call.arguments()))).to_be_bytes());
    part(rule.as_bytes());
    match caller {
        None => part(b"\0no caller"),
        Some(p) => {
            part(p.iss().as_bytes());
            part(p.sub().as_bytes());
        }
    }
    h.finalize().iter().map(|b| format!("{b:02x}")).collect()
}

/// [`respond::denial`](crate::respond::denial)'s answer with its text
/// replaced and `extra` under [`META_KEY`] in `_meta`.
pub(crate) fn answer(
    id: &[u8],
    tool: &str,
    decision: &Decision,
    meta: &PolicyMeta,
    text: String,
    extra: Option<serde_json::Value>,
) -> Vec<u8> {
    let base = crate::respond::denial(id, tool, decision, meta);
    let Ok(mut v) = serde_json::from_slice::<serde_json::Value>(&base) else {
        return base;
    };
    if let Some(result) = v.get_mut("result") {
        result["content"] = serde_json::json!([{"type": "text", "text": text}]);
        if let Some(extra) = extra {
            result["_meta"][META_KEY] = extra;
        }
    }
    serde_json::to_vec(&v).unwrap_or(base)
}

/// The answer to a held call waiting for a person: `isError: true`, text
/// `[APPROVAL REQUIRED] <message> (approval <id>, expires <RFC 3339>)`, and
/// in `_meta["dev.portcullis/approval"]` the id, status, expiry and what to do.
pub fn pending_result(
    id: &[u8],
    tool: &str,
    decision: &Decision,
    meta: &PolicyMeta,
    r: &Record,
) -> Vec<u8> {
    let expires = r.expires.to_rfc3339();
    let text = format!(
        "{}{} (approval {}, expires {expires})",
        crate::respond::APPROVAL_PREFIX,
        r.message,
        r.id
    );
    let extra = serde_json::json!({
        "id": r.id,
        "status": "pending",
        "expires": expires,
        "rule": r.rule,
        "instructions": format!(
            "A person must approve this call: `portcullis approvals approve {id}` (or deny it: `portcullis approvals deny {id} --reason TEXT`). Then retry the identical call (same tool and arguments): it is forwarded once.",
            id = r.id
        ),
        "approve_command": format!("portcullis approvals approve {}", r.id),
    });
    answer(id, tool, decision, meta, text, Some(extra))
}

/// Intercept's JSON-RPC error code for a call held for approval.
pub const INTERCEPT_APPROVAL_CODE: i32 = -32003;

/// Intercept's prefix of an approval rule's message.
pub const INTERCEPT_APPROVAL_PREFIX: &str = "[INTERCEPT APPROVAL REQUIRED] ";

/// The answer to a held call waiting for a person, as Intercept gives it
/// (`--approval-errors intercept`): a JSON-RPC error `-32003`, message
/// `[INTERCEPT APPROVAL REQUIRED] <message>`, and in `data` the fields
/// Intercept's pull request #3 names: `approval_id`, `tool`, `expiry`
/// (RFC 3339), `retryable` (true) and `human_instructions`.
pub fn intercept_error(id: &[u8], tool: &str, r: &Record) -> Vec<u8> {
    let id: serde_json::Value = serde_json::from_slice(id).unwrap_or(serde_json::Value::Null);
    let v = serde_json::json!({
        "jsonrpc": "2.0",
        "id": id,
        "error": {
            "code": INTERCEPT_APPROVAL_CODE,
            "message": format!("{INTERCEPT_APPROVAL_PREFIX}{}", r.message),
            "data": {
                "approval_id": r.id,
                "tool": tool,
                "expiry": r.expires.to_rfc3339(),
                "retryable": true,
                "human_instructions": format!(
                    "A person must approve this call: `portcullis approvals approve {id}` (or deny it: `portcullis approvals deny {id} --reason TEXT`). Then retry the identical call (same tool and arguments): it is forwarded once.",
                    id = r.id
                ),
            }
        }
    });
    serde_json::to_vec(&v).unwrap_or_default()
}

/// The answer to a held call a person denied: `isError: true`, text
/// `[POLICY DENIED] <message> (approval <id> denied by <who>[: <reason>])`.
pub fn denied_result(
    id: &[u8],
    tool: &str,
    decision: &Decision,
    meta: &PolicyMeta,
    r: &Record,
) -> Vec<u8> {
    let reason = if r.reason.is_empty() {
        String::new()
    } else {
        format!(": {}", r.reason)
    };
    let text = format!(
        "{}{} (approval {} denied by {}{reason})",
        crate::respond::DENY_PREFIX,
        r.message,
        r.id,
        r.decided_by
    );
    let extra = serde_json::json!({
        "id": r.id,
        "status": "denied",
        "expires": r.expires.to_rfc3339(),
        "rule": r.rule,
        "decided_by": r.decided_by,
        "reason": r.reason,
    });
    answer(id, tool, decision, meta, text, Some(extra))
}

/// The answer to a held call that could not be held (`why`): `isError:
/// true`, text `[POLICY DENIED] <message> (<why>)`. Never forwarded.
pub fn refused_result(
    id: &[u8],
    tool: &str,
    decision: &Decision,
    meta: &PolicyMeta,
    why: &str,
) -> Vec<u8> {
    let text = format!(
        "{}{} ({why})",
        crate::respond::DENY_PREFIX,
        decision.message(tool)
    );
    answer(id, tool, decision, meta, text, None)
}

/// A store that keeps no approval records: every held call is refused as
/// "approval state unavailable" (fail closed). For library users that want
/// no operator flow, and to model a failed store.
#[derive(Debug, Default, Clone, Copy)]
pub struct NoApprovals;

impl NoApprovals {
    fn error() -> StateError {
        StateError("this store keeps no approval records".into())
    }
}

impl ApprovalStore for NoApprovals {
    fn resolve(
        &self,
        _: NewRequest,
        _: String,
        _: UnixMillis,
    ) -> Result<(Resolution, usize), StateError> {
        Err(NoApprovals::error())
    }
    fn restore(&self, _: &str) -> Result<bool, StateError> {
        Err(NoApprovals::error())
    }
    fn get(&self, _: &str, _: UnixMillis) -> Result<Option<Record>, StateError> {
        Err(NoApprovals::error())
    }
    fn list(&self, _: UnixMillis) -> Result<Vec<Record>, StateError> {
        Err(NoApprovals::error())
    }
    fn decide(
        &self,
        _: &str,
        _: bool,
        _: &str,
        _: &str,
        _: UnixMillis,
    ) -> Result<Record, DecideError> {
        Err(DecideError::State(NoApprovals::error()))
    }
    fn sweep(&self, _: UnixMillis) -> Result<usize, StateError> {
        Err(NoApprovals::error())
    }
}

/// Approval records in this process's memory.
#[derive(Debug, Default)]
pub struct MemoryApprovals {
    records: std::sync::Mutex<Vec<Record>>,
}

impl MemoryApprovals {
    /// An empty store.
    pub fn new() -> MemoryApprovals {
        MemoryApprovals::default()
    }

    fn records(&self) -> std::sync::MutexGuard<'_, Vec<Record>> {
        // Every critical section leaves the vector consistent.
        self.records.lock().unwrap_or_else(|e| e.into_inner())
    }
}

fn expire_all<'a>(records: impl Iterator<Item = &'a mut Record>, now: UnixMillis) -> usize {
    let mut n = 0;
    for r in records {
        if r.status_at(now) == Status::Expired && r.status != Status::Expired {
            r.status = Status::Expired;
            n += 1;
        }
    }
    n
}

impl ApprovalStore for MemoryApprovals {
    fn resolve(
        &self,
        req: NewRequest,
        new_id: String,
        now: UnixMillis,
    ) -> Result<(Resolution, usize), StateError> {
        let mut records = self.records();
        let expired = expire_all(
            records
                .iter_mut()
                .filter(|r| r.fingerprint == req.fingerprint),
            now,
        );
        let fp = req.fingerprint.clone();
        let of = |s: Status| {
            let fp = fp.as_str();
            move |r: &&mut Record| r.fingerprint == fp && r.status == s
        };
        if let Some(r) = records.iter_mut().rev().find(of(Status::Approved)) {
            r.status = Status::Consumed;
            return Ok((Resolution::Granted(r.clone()), expired));
        }
        if let Some(r) = records.iter_mut().rev().find(of(Status::Denied))
            && now < r.expires
        {
            return Ok((Resolution::Denied(r.clone()), expired));
        }
        if let Some(r) = records.iter_mut().rev().find(of(Status::Pending))
            && req.reuses(r, now)
        {
            return Ok((
                Resolution::Pending {
                    record: r.clone(),
                    new: false,
                },
                expired,
            ));
        }
        if records.len() >= MEMORY_MAX_RECORDS {
            // Forget settled records, oldest first; never a pending or approved one.
            expire_all(records.iter_mut(), now);
            records.retain(|r| matches!(r.status, Status::Pending | Status::Approved));
            if records.len() >= MEMORY_MAX_RECORDS {
                return Err(StateError(format!(
                    "{MEMORY_MAX_RECORDS} approval requests are waiting; decide some first"
                )));
            }
        }
        let record = req.into_record(new_id, now);
        records.push(record.clone());
        Ok((Resolution::Pending { record, new: true }, expired))
    }

    fn restore(&self, id: &str) -> Result<bool, StateError> {
        let mut records = self.records();
        Ok(match records.iter_mut().find(|r| r.id == id) {
            Some(r) if r.status == Status::Consumed => {
                r.status = Status::Approved;
                true
            }
            _ => false,
        })
    }

    fn get(&self, id: &str, now: UnixMillis) -> Result<Option<Record>, StateError> {
        let mut records = self.records();
        expire_all(records.iter_mut(), now);
        Ok(records.iter().find(|r| r.id == id).cloned())
    }

    fn list(&self, now: UnixMillis) -> Result<Vec<Record>, StateError> {
        let mut records = self.records();
        expire_all(records.iter_mut(), now);
        Ok(records.iter().rev().cloned().collect())
    }

    fn decide(
        &self,
        id: &str,
        approve: bool,
        by: &str,
        reason: &str,
        now: UnixMillis,
    ) -> Result<Record, DecideError> {
        let mut records = self.records();
        expire_all(records.iter_mut(), now);
        let r = records
            .iter_mut()
            .find(|r| r.id == id)
            .ok_or(DecideError::Unknown)?;
        if r.status != Status::Pending {
            return Err(DecideError::NotPending(r.status));
        }
        r.status = if approve {
            Status::Approved
        } else {
            Status::Denied
        };
        r.decided_by = by.to_string();
        r.reason = reason.to_string();
        Ok(r.clone())
    }

    fn sweep(&self, now: UnixMillis) -> Result<usize, StateError> {
        Ok(expire_all(self.records().iter_mut(), now))
    }
}

/// One suite every store passes.
#[doc(hidden)]
pub mod conformance {
    use super::*;

    /// A request for `tool` with `args`, timing out after `timeout_ms`.
    pub fn request(tool: &str, args: &str, timeout_ms: u64) -> NewRequest {
        NewRequest {
            fingerprint: format!("fp-{tool}-{args}"),
            server: "srv".into(),
            tool: tool.into(),
            arguments: args.into(),
            rule: "needs a human".into(),
            message: "A person must say yes".into(),
            sub: "alice".into(),
            iss: "local".into(),
            timeout_ms,
            dedupe_ms: None,
        }
    }

    fn pending(r: Resolution) -> (Record, bool) {
        match r {
            Resolution::Pending { record, new } => (record, new),
            other => panic!("expected pending, got {other:?}"),
        }
    }

    /// Runs every check against `store` (which must be empty).
    pub fn run(store: &dyn ApprovalStore) {
        let t0 = UnixMillis(1_000_000);
        let at = |ms: i64| UnixMillis(t0.0 + ms);
        let id = || new_id().unwrap();
        let resolve = |req, id, now| store.resolve(req, id, now).map(|(r, _)| r);

        // A new request, then the identical call while pending: the same id.
        let (a, new) = pending(resolve(request("t", "{}", 1000), id(), t0).unwrap());
        assert!(new);
        assert!(is_id(&a.id), "{}", a.id);
        assert_eq!(a.status, Status::Pending);
        assert_eq!(a.expires, at(1000));
        let (again, new) = pending(resolve(request("t", "{}", 1000), id(), at(10)).unwrap());
        assert!(!new);
        assert_eq!(again.id, a.id);
        // Other arguments: another request.
        let (b, _) = pending(resolve(request("t", "{\"x\":1}", 1000), id(), at(10)).unwrap());
        assert_ne!(b.id, a.id);

        // Unknown ids and decisions.
        assert_eq!(
            store.decide("apr_nope", true, "op", "", at(20)),
            Err(DecideError::Unknown)
        );
        let approved = store
            .decide(&a.id, true, "op", "looks fine", at(20))
            .unwrap();
        assert_eq!(approved.status, Status::Approved);
        assert_eq!(approved.decided_by, "op");
        assert_eq!(approved.reason, "looks fine");
        assert_eq!(
            store.decide(&a.id, false, "op", "", at(21)),
            Err(DecideError::NotPending(Status::Approved))
        );

        // The retry consumes it exactly once; the next one asks again.
        match resolve(request("t", "{}", 1000), id(), at(30)).unwrap() {
            Resolution::Granted(r) => {
                assert_eq!(r.id, a.id);
                assert_eq!(r.status, Status::Consumed);
            }
            other => panic!("expected granted, got {other:?}"),
        }
        let (c, new) = pending(resolve(request("t", "{}", 1000), id(), at(31)).unwrap());
        assert!(new);
        assert_ne!(c.id, a.id);
        assert_eq!(
            store.get(&a.id, at(31)).unwrap().unwrap().status,
            Status::Consumed
        );

        // Restored after an upstream failure: the next retry is granted again.
        assert!(store.restore(&a.id).unwrap());
        assert!(!store.restore(&a.id).unwrap(), "only a consumed record");
        assert!(matches!(
            resolve(request("t", "{}", 1000), id(), at(40)).unwrap(),
            Resolution::Granted(r) if r.id == a.id
        ));

        // A denial stands for identical retries until the request's expiry.
        let denied = store
            .decide(&b.id, false, "op", "not today", at(50))
            .unwrap();
        assert_eq!(denied.status, Status::Denied);
        match resolve(request("t", "{\"x\":1}", 1000), id(), at(60)).unwrap() {
            Resolution::Denied(r) => assert_eq!(r.reason, "not today"),
            other => panic!("expected denied, got {other:?}"),
        }
        let (_, new) = pending(resolve(request("t", "{\"x\":1}", 1000), id(), at(2000)).unwrap());
        assert!(new, "after its expiry a denial no longer answers");

        // Expiry: a pending request cannot be approved after its timeout,
        // and an approval not used in time is not granted.
        assert_eq!(
            store.decide(&c.id, true, "op", "", at(1031)),
            Err(DecideError::NotPending(Status::Expired))
        );
        assert_eq!(
            store.get(&c.id, at(1031)).unwrap().unwrap().status,
            Status::Expired
        );
        let (d, _) = pending(resolve(request("late", "{}", 100), id(), at(3000)).unwrap());
        store.decide(&d.id, true, "op", "", at(3010)).unwrap();
        let (e, new) = pending(resolve(request("late", "{}", 100), id(), at(3100)).unwrap());
        assert!(new);
        assert_ne!(e.id, d.id);
        assert_eq!(
            store.get(&d.id, at(3100)).unwrap().unwrap().status,
            Status::Expired
        );

        // Sweep marks what lapsed; list shows everything, newest first.
        assert!(store.sweep(at(10_000)).unwrap() >= 1);
        assert_eq!(store.sweep(at(10_000)).unwrap(), 0);
        let all = store.list(at(10_000)).unwrap();
        assert!(all.len() >= 6);
        assert!(all.windows(2).all(|w| w[0].created >= w[1].created));
        assert!(all.iter().all(|r| r.status != Status::Pending));
        assert_eq!(store.get("apr_unknown", at(1)).unwrap(), None);

        // A dedupe window: reused within it, a new request after it; the
        // older one can still be approved and is consumed by the retry.
        let windowed = || NewRequest {
            dedupe_ms: Some(100),
            ..request("w", "{}", 10_000)
        };
        let (f, _) = pending(resolve(windowed(), id(), at(20_000)).unwrap());
        let (same, new) = pending(resolve(windowed(), id(), at(20_050)).unwrap());
        assert!(!new);
        assert_eq!(same.id, f.id);
        let (g, new) = pending(resolve(windowed(), id(), at(20_150)).unwrap());
        assert!(new);
        assert_ne!(g.id, f.id);
        store.decide(&f.id, true, "op", "", at(20_200)).unwrap();
        assert!(matches!(
            resolve(windowed(), id(), at(20_210)).unwrap(),
            Resolution::Granted(r) if r.id == f.id
        ));
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn memory_store_passes_the_suite() {
        conformance::run(&MemoryApprovals::new());
    }

    #[test]
    fn fingerprints_follow_canonical_arguments_rule_and_caller() {
        let fp = |tool: &str, args: &str, rule: &str, caller: Option<&Principal>| {
            let call = ToolCall::new(
                tool,
                args.as_bytes(),
                portcullis_core::json::Strictness::STRICT,
            )
            .unwrap();
            fingerprint("srv", &call, rule, caller)
        };
        let a = fp("t", r#"{"n":100,"m":"hi"}"#, "r", None);
        assert_eq!(a.len(), 64);
        assert_eq!(a, fp("t", r#"{ "m" : "hi", "n": 1e2 }"#, "r", None));
        assert_ne!(a, fp("t", r#"{"n":101,"m":"hi"}"#, "r", None));
        assert_ne!(a, fp("u", r#"{"n":100,"m":"hi"}"#, "r", None));
        assert_ne!(a, fp("t", r#"{"n":100,"m":"hi"}"#, "other rule", None));
        let alice = Principal::local("alice");
        let bob = Principal::local("bob");
        let with_alice = fp("t", r#"{"n":100,"m":"hi"}"#, "r", Some(&alice));
        assert_ne!(a, with_alice);
        assert_ne!(
            with_alice,
            fp("t", r#"{"n":100,"m":"hi"}"#, "r", Some(&bob))
        );
    }

    #[test]
    fn ids_are_random_and_well_formed() {
        let (a, b) = (new_id().unwrap(), new_id().unwrap());
        assert_ne!(a, b);
        assert!(is_id(&a) && is_id(&b));
        assert_eq!(a.len(), 36);
        assert!(!is_id("apr_123"));
        assert!(!is_id("xyz_0123456789abcdef0123456789abcdef"));
    }
}
