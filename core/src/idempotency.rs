//! Idempotency windows: what a decision tells the session, the record key,
//! and the store interface that shares records between proxies.
//!
//! The decision stays synchronous and allocation-free: it only names the
//! window that applies to an allowed call ([`crate::policy::Decision::idempotency`],
//! a `&'static` [`IdempotencySpec`]). The session carries it out: it derives
//! the [`IdemKey`] (caller, server, tool and canonical arguments), claims it in the
//! store, forwards the first call, and replays or refuses identical ones.

use sha2::{Digest, Sha256};

use crate::call::ToolCall;
use crate::counters::{StateError, UnixMillis};
use crate::json::Val;
use crate::ops;
use crate::policy::RuleId;
use crate::principal::Principal;

/// What happens to a call identical to one made within the window.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum IdempotencyMode {
    /// It gets the first call's answer again, without reaching the server.
    Replay,
    /// It is denied with the rule's message.
    Refuse,
}

impl IdempotencyMode {
    /// `replay` or `refuse`, as policies write it.
    pub const fn name(self) -> &'static str {
        match self {
            IdempotencyMode::Replay => "replay",
            IdempotencyMode::Refuse => "refuse",
        }
    }
}

/// One idempotency window of a compiled policy.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct IdempotencySpec {
    /// The rule that declares it.
    pub rule: RuleId,
    /// How long a completed call is remembered, in milliseconds.
    pub window_ms: u64,
    /// Replay or refuse.
    pub mode: IdempotencyMode,
    /// The argument paths that form the key (`by args.order_id`); empty:
    /// all the arguments.
    pub by: &'static [&'static [&'static str]],
    /// The denial message for a refused duplicate.
    pub message: &'static str,
}

/// The key of an idempotency record: 128 bits of SHA-256 over the caller
/// (when known), the server, the tool and the canonical arguments
/// ([`ops::partition_of`], so key order, whitespace and number spelling do
/// not matter).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub struct IdemKey(pub [u8; 16]);

impl IdemKey {
    /// The key of `call` on `server` under `spec`, made by `caller`.
    ///
    /// With a caller (a validated token's issuer and subject, or the local
    /// user `iss = local` of stdio and token-less HTTP sessions), the key is
    /// that caller's own: records are shared by every proxy of a
    /// deployment, and one user's identical call must never get another
    /// user's stored answer; an agent's retry may arrive on a new session.
    /// Without one (a decision with no principal) the key is
    /// deployment-wide.
    pub fn of(
        server: &str,
        caller: Option<&Principal>,
        call: &ToolCall<'_>,
        spec: &IdempotencySpec,
    ) -> IdemKey {
        let mut h = Sha256::new();
        // A tag first, so a key with a caller never equals one without.
        match caller {
            None => h.update([0]),
            Some(p) => {
                h.update([1]);
                for s in [p.iss(), p.sub()] {
                    h.update((s.len() as u64).to_le_bytes());
                    h.update(s.as_bytes());
                }
            }
        }
        // Length-prefixed, so no two (server, tool) pairs feed the same bytes.
        for s in [server, call.name()] {
            h.update((s.len() as u64).to_le_bytes());
            h.update(s.as_bytes());
        }
        if spec.by.is_empty() {
            h.update([0]);
            h.update(ops::partition_of(Some(Val::Object(call.arguments()))).to_be_bytes());
        } else {
            h.update([1]);
            for path in spec.by {
                h.update(ops::partition_of(call.arg(path)).to_be_bytes());
            }
        }
        let full = h.finalize();
        let mut out = [0; 16];
        out.copy_from_slice(&full[..16]);
        IdemKey(out)
    }

    /// 32 lowercase hex digits (storage keys, logs).
    pub fn hex(&self) -> String {
        self.0.iter().map(|b| format!("{b:02x}")).collect()
    }
}

/// Largest answer (bytes of the JSON-RPC message) kept for replay. A larger
/// successful answer is remembered without its body, and identical calls
/// within the window are refused instead of replayed.
pub const MAX_REPLAY_BYTES: usize = 64 * 1024;

/// What a claim found.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Claim {
    /// No live record: this caller now owns the key (in flight) and must
    /// [`IdempotencyStore::complete`] or [`IdempotencyStore::release`] it
    /// with this token.
    Mine(u64),
    /// An identical call is in flight (here or in another proxy).
    InFlight,
    /// An identical call completed within the window: its answer (the whole
    /// JSON-RPC message as the server sent it), or None when it was too
    /// large to keep.
    Done(Option<Vec<u8>>),
    /// The store is full (a bounded in-memory store): no record is kept,
    /// and the call is forwarded without one.
    Full,
}

/// Where idempotency records live: the counter store's backend (memory,
/// SQLite, Redis), so every proxy of a deployment shares them.
///
/// A claim is atomic: of two proxies claiming the same key at once, exactly
/// one gets [`Claim::Mine`]. Records expire: an in-flight one after its
/// lease (a proxy that died mid-call does not block the key for ever), a
/// completed one at the end of its window.
pub trait IdempotencyStore: Send + Sync {
    /// Claims `key` at `now` for `lease_ms`, or reports who holds it.
    fn claim(&self, key: &IdemKey, now: UnixMillis, lease_ms: u64) -> Result<Claim, StateError>;

    /// The call owning `key` (with `token`) succeeded: remember `answer`
    /// (None: too large to keep) until `expires`.
    fn complete(
        &self,
        key: &IdemKey,
        token: u64,
        answer: Option<&[u8]>,
        expires: UnixMillis,
    ) -> Result<(), StateError>;

    /// The call owning `key` failed or was abandoned: forget it, so the next
    /// identical call is forwarded.
    fn release(&self, key: &IdemKey, token: u64) -> Result<(), StateError>;
}

/// A fresh claim token: unique per process and call (a random start mixed
/// with a counter), so one proxy never completes another's claim.
pub fn new_token() -> u64 {
    use std::sync::atomic::{AtomicU64, Ordering};
    static NEXT: AtomicU64 = AtomicU64::new(0);
    let n = NEXT.fetch_add(1, Ordering::Relaxed);
    static SEED: std::sync::OnceLock<u64> = std::sync::OnceLock::new();
    let seed = *SEED.get_or_init(|| {
        use std::hash::{BuildHasher as _, Hasher as _};
        std::collections::hash_map::RandomState::new()
            .build_hasher()
            .finish()
    });
    // Never 0, which stores may use for "no owner".
    (seed ^ n.wrapping_mul(0x9E37_79B9_7F4A_7C15)).max(1)
}

/// Most records the in-memory store keeps at once (in flight or completed,
/// live or awaiting a sweep).
pub const MEMORY_MAX_RECORDS: usize = 100_000;

/// Most bytes of kept answers the in-memory store holds at once (each at
/// most [`MAX_REPLAY_BYTES`]).
pub const MEMORY_MAX_ANSWER_BYTES: usize = 256 * 1024 * 1024;

/// Idempotency records in memory (one proxy process).
///
/// Bounded: at [`MEMORY_MAX_RECORDS`] records or [`MEMORY_MAX_ANSWER_BYTES`]
/// of answers, once expired records are swept, a new key is not claimed
/// ([`Claim::Full`]): the call is forwarded without a record, so a flood of
/// distinct calls cannot exhaust the proxy's memory. Expired records are
/// swept on the schedule of the memory counters (when the map has doubled
/// since the last sweep), and when full, once the earliest record expires.
#[derive(Debug)]
pub struct MemoryIdempotency {
    records: std::sync::Mutex<MemRecords>,
    max_records: usize,
    max_bytes: usize,
}

impl Default for MemoryIdempotency {
    fn default() -> Self {
        MemoryIdempotency::with_capacity(MEMORY_MAX_RECORDS, MEMORY_MAX_ANSWER_BYTES)
    }
}

#[derive(Debug)]
struct MemRecords {
    map: std::collections::HashMap<IdemKey, MemRecord>,
    prune: crate::counters::PruneSchedule,
    /// Bytes of the answers in `map`.
    bytes: usize,
    /// No record expires before this (a lower bound): a full store has
    /// nothing to sweep until then.
    next_expiry: i64,
}

#[derive(Debug)]
enum MemRecord {
    InFlight { token: u64, until: i64 },
    Done { answer: Option<Vec<u8>>, until: i64 },
}

impl MemRecord {
    fn until(&self) -> i64 {
        match self {
            MemRecord::InFlight { until, .. } | MemRecord::Done { until, .. } => *until,
        }
    }

    fn bytes(&self) -> usize {
        match self {
            MemRecord::Done {
                answer: Some(a), ..
            } => a.len(),
            _ => 0,
        }
    }
}

impl MemRecords {
    /// Drops the records expired at `now`.
    fn sweep(&mut self, now: i64) {
        let (mut bytes, mut next) = (0, i64::MAX);
        self.map.retain(|_, r| {
            let live = r.until() > now;
            if live {
                bytes += r.bytes();
                next = next.min(r.until());
            }
            live
        });
        self.bytes = bytes;
        self.next_expiry = next;
        self.prune.swept(self.map.len());
    }
}

impl MemoryIdempotency {
    /// A store keeping at most `max_records` records and `max_bytes` bytes
    /// of answers (the default: [`MEMORY_MAX_RECORDS`],
    /// [`MEMORY_MAX_ANSWER_BYTES`]).
    pub fn with_capacity(max_records: usize, max_bytes: usize) -> MemoryIdempotency {
        MemoryIdempotency {
            records: std::sync::Mutex::new(MemRecords {
                map: Default::default(),
                prune: Default::default(),
                bytes: 0,
                next_expiry: i64::MAX,
            }),
            max_records,
            max_bytes,
        }
    }

    fn lock(&self) -> std::sync::MutexGuard<'_, MemRecords> {
        // Every critical section leaves the map consistent.
        self.records.lock().unwrap_or_else(|e| e.into_inner())
    }

    fn full(&self, r: &MemRecords) -> bool {
        r.map.len() >= self.max_records || r.bytes >= self.max_bytes
    }
}

impl IdempotencyStore for MemoryIdempotency {
    fn claim(&self, key: &IdemKey, now: UnixMillis, lease_ms: u64) -> Result<Claim, StateError> {
        let mut r = self.lock();
        if r.prune.due(r.map.len()) || (self.full(&r) && now.0 >= r.next_expiry) {
            r.sweep(now.0);
        }
        match r.map.get(key) {
            Some(MemRecord::InFlight { until, .. }) if *until > now.0 => {
                return Ok(Claim::InFlight);
            }
            Some(MemRecord::Done { answer, until }) if *until > now.0 => {
                return Ok(Claim::Done(answer.clone()));
            }
            // An expired record of this key is replaced: no growth.
            Some(_) => {}
            None if self.full(&r) => return Ok(Claim::Full),
            None => {}
        }
        let token = new_token();
        let until = now.0.saturating_add(lease_ms.min(i64::MAX as u64) as i64);
        if let Some(old) = r.map.insert(*key, MemRecord::InFlight { token, until }) {
            r.bytes -= old.bytes();
        }
        r.next_expiry = r.next_expiry.min(until);
        Ok(Claim::Mine(token))
    }

    fn complete(
        &self,
        key: &IdemKey,
        token: u64,
        answer: Option<&[u8]>,
        expires: UnixMillis,
    ) -> Result<(), StateError> {
        let mut r = self.lock();
        if matches!(r.map.get(key), Some(MemRecord::InFlight { token: t, .. }) if *t == token) {
            let done = MemRecord::Done {
                answer: answer.map(<[u8]>::to_vec),
                until: expires.0,
            };
            r.bytes += done.bytes();
            r.next_expiry = r.next_expiry.min(expires.0);
            r.map.insert(*key, done);
        }
        Ok(())
    }

    fn release(&self, key: &IdemKey, token: u64) -> Result<(), StateError> {
        let mut r = self.lock();
        if matches!(r.map.get(key), Some(MemRecord::InFlight { token: t, .. }) if *t == token) {
            r.map.remove(key);
        }
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::json::Strictness;

    static SPEC: IdempotencySpec = IdempotencySpec {
        rule: RuleId(0),
        window_ms: 1000,
        mode: IdempotencyMode::Replay,
        by: &[],
        message: "",
    };
    static BY_ORDER: IdempotencySpec = IdempotencySpec {
        by: &[&["order_id"]],
        ..SPEC
    };

    fn key(tool: &str, args: &str, spec: &IdempotencySpec) -> IdemKey {
        let call = ToolCall::new(tool, args.as_bytes(), Strictness::STRICT).unwrap();
        IdemKey::of("srv", None, &call, spec)
    }

    #[test]
    fn keys_follow_canonical_arguments() {
        let a = key("echo", r#"{"message":"hi","n":100}"#, &SPEC);
        assert_eq!(a, key("echo", r#"{ "n" : 1e2, "message":"hi" }"#, &SPEC));
        assert_ne!(a, key("echo", r#"{"message":"hi","n":101}"#, &SPEC));
        assert_ne!(a, key("add", r#"{"message":"hi","n":100}"#, &SPEC));
        let call =
            ToolCall::new("echo", br#"{"message":"hi","n":100}"#, Strictness::STRICT).unwrap();
        assert_ne!(a, IdemKey::of("other", None, &call, &SPEC));
        // `by`: only the named arguments count.
        assert_eq!(
            key("refund", r#"{"order_id":7,"note":"a"}"#, &BY_ORDER),
            key("refund", r#"{"order_id":7.0,"note":"b"}"#, &BY_ORDER)
        );
        assert_ne!(
            key("refund", r#"{"order_id":7}"#, &BY_ORDER),
            key("refund", r#"{"order_id":8}"#, &BY_ORDER)
        );
    }

    #[test]
    fn keys_belong_to_their_caller() {
        let principal = |iss: &str, sub: &str| {
            Principal::from_claims(format!(r#"{{"iss":"{iss}","sub":"{sub}"}}"#).into_bytes())
                .unwrap()
        };
        let call = ToolCall::new("echo", br#"{"message":"hi"}"#, Strictness::STRICT).unwrap();
        let of = |p: Option<&Principal>| IdemKey::of("srv", p, &call, &SPEC);
        let (alice, bob) = (
            principal("https://idp", "alice"),
            principal("https://idp", "bob"),
        );
        assert_eq!(
            of(Some(&alice)),
            of(Some(&principal("https://idp", "alice")))
        );
        assert_ne!(of(Some(&alice)), of(Some(&bob)));
        assert_ne!(of(Some(&alice)), of(None));
        // The issuer counts: one subject name at two issuers is two callers,
        // and the length prefixes keep ("ab","c") apart from ("a","bc").
        assert_ne!(
            of(Some(&alice)),
            of(Some(&principal("https://other", "alice")))
        );
        assert_ne!(
            of(Some(&principal("ab", "c"))),
            of(Some(&principal("a", "bc")))
        );
    }

    #[test]
    fn a_full_memory_store_refuses_to_remember_until_records_expire() {
        let key = |i: u32| {
            let mut k = [0; 16];
            k[..4].copy_from_slice(&i.to_le_bytes());
            IdemKey(k)
        };
        let s = MemoryIdempotency::with_capacity(3, 10);
        for i in 0..3 {
            assert!(matches!(
                s.claim(&key(i), UnixMillis(0), 100).unwrap(),
                Claim::Mine(_)
            ));
        }
        // Full: a new key is not remembered, the held ones still are.
        assert_eq!(s.claim(&key(3), UnixMillis(50), 100).unwrap(), Claim::Full);
        assert_eq!(
            s.claim(&key(0), UnixMillis(50), 100).unwrap(),
            Claim::InFlight
        );
        // Once the leases lapse, the sweep frees room.
        assert!(matches!(
            s.claim(&key(3), UnixMillis(100), 100).unwrap(),
            Claim::Mine(_)
        ));
        // The bytes of kept answers count too: 10 bytes fill this store.
        let Claim::Mine(t) = s.claim(&key(4), UnixMillis(100), 100).unwrap() else {
            panic!("room for a second record")
        };
        s.complete(&key(4), t, Some(b"0123456789"), UnixMillis(1000))
            .unwrap();
        assert_eq!(s.claim(&key(5), UnixMillis(101), 100).unwrap(), Claim::Full);
        assert_eq!(
            s.claim(&key(4), UnixMillis(101), 100).unwrap(),
            Claim::Done(Some(b"0123456789".to_vec()))
        );
        // When the answer expires its bytes are given back.
        assert!(matches!(
            s.claim(&key(5), UnixMillis(1000), 100).unwrap(),
            Claim::Mine(_)
        ));
    }

    #[test]
    fn memory_sweeps_are_amortised_not_per_claim() {
        // 3000 live records and then one expired one: a claim does not
        // sweep until the map has doubled since the last sweep.
        let s = MemoryIdempotency::default();
        let key = |i: u32| {
            let mut k = [0; 16];
            k[..4].copy_from_slice(&i.to_le_bytes());
            IdemKey(k)
        };
        for i in 0..3000 {
            s.claim(&key(i), UnixMillis(0), 1_000_000).unwrap();
        }
        // First sweep at 1024 (nothing expired) -> next at 2048 -> at 4096.
        assert!(!s.lock().prune.due(3000));
        s.claim(&key(9999), UnixMillis(0), 1).unwrap();
        // Expired but not yet swept: the map still holds it.
        s.claim(&key(10_000), UnixMillis(5), 1_000_000).unwrap();
        assert_eq!(s.lock().map.len(), 3002);
        for i in 3000..4094 {
            s.claim(&key(i), UnixMillis(5), 1_000_000).unwrap();
        }
        assert_eq!(s.lock().map.len(), 4096);
        // The 4096th record's claim sweeps: the expired one goes.
        s.claim(&key(20_000), UnixMillis(5), 1_000_000).unwrap();
        assert_eq!(s.lock().map.len(), 4096);
        assert!(!s.lock().map.contains_key(&key(9999)));
    }

    #[test]
    fn memory_claims_are_exclusive_and_expire() {
        let s = MemoryIdempotency::default();
        let k = IdemKey([1; 16]);
        let Claim::Mine(t) = s.claim(&k, UnixMillis(0), 100).unwrap() else {
            panic!("first claim")
        };
        assert_eq!(s.claim(&k, UnixMillis(10), 100).unwrap(), Claim::InFlight);
        // A foreign token cannot complete it.
        s.complete(&k, t ^ 1, Some(b"x"), UnixMillis(1000)).unwrap();
        assert_eq!(s.claim(&k, UnixMillis(20), 100).unwrap(), Claim::InFlight);
        s.complete(&k, t, Some(b"answer"), UnixMillis(1000))
            .unwrap();
        assert_eq!(
            s.claim(&k, UnixMillis(999), 100).unwrap(),
            Claim::Done(Some(b"answer".to_vec()))
        );
        assert!(matches!(
            s.claim(&k, UnixMillis(1000), 100).unwrap(),
            Claim::Mine(_)
        ));
        // A lapsed lease frees the key; a release frees it at once.
        let k2 = IdemKey([2; 16]);
        assert!(matches!(
            s.claim(&k2, UnixMillis(0), 100).unwrap(),
            Claim::Mine(_)
        ));
        let Claim::Mine(t2) = s.claim(&k2, UnixMillis(100), 100).unwrap() else {
            panic!("lease lapsed")
        };
        s.release(&k2, t2).unwrap();
        assert!(matches!(
            s.claim(&k2, UnixMillis(101), 100).unwrap(),
            Claim::Mine(_)
        ));
    }
}
