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
    /// With a caller (a validated token's issuer and subject), the key is
    /// that caller's own: records are shared by every proxy of a
    /// deployment, and one user's identical call must never get another
    /// user's stored answer. Without one (stdio, a shared client token) the
    /// key is deployment-wide: an agent's retry may arrive on a new session.
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

/// Idempotency records in memory (one proxy process).
#[derive(Debug, Default)]
pub struct MemoryIdempotency {
    records: std::sync::Mutex<std::collections::HashMap<IdemKey, MemRecord>>,
}

#[derive(Debug)]
enum MemRecord {
    InFlight { token: u64, until: i64 },
    Done { answer: Option<Vec<u8>>, until: i64 },
}

impl MemoryIdempotency {
    fn lock(&self) -> std::sync::MutexGuard<'_, std::collections::HashMap<IdemKey, MemRecord>> {
        // Every critical section leaves the map consistent.
        self.records.lock().unwrap_or_else(|e| e.into_inner())
    }
}

impl IdempotencyStore for MemoryIdempotency {
    fn claim(&self, key: &IdemKey, now: UnixMillis, lease_ms: u64) -> Result<Claim, StateError> {
        let mut map = self.lock();
        if map.len() > 1024 {
            map.retain(|_, r| match r {
                MemRecord::InFlight { until, .. } | MemRecord::Done { until, .. } => *until > now.0,
            });
        }
        match map.get(key) {
            Some(MemRecord::InFlight { until, .. }) if *until > now.0 => Ok(Claim::InFlight),
            Some(MemRecord::Done { answer, until }) if *until > now.0 => {
                Ok(Claim::Done(answer.clone()))
            }
            _ => {
                let token = new_token();
                let until = now.0.saturating_add(lease_ms.min(i64::MAX as u64) as i64);
                map.insert(*key, MemRecord::InFlight { token, until });
                Ok(Claim::Mine(token))
            }
        }
    }

    fn complete(
        &self,
        key: &IdemKey,
        token: u64,
        answer: Option<&[u8]>,
        expires: UnixMillis,
    ) -> Result<(), StateError> {
        let mut map = self.lock();
        if matches!(map.get(key), Some(MemRecord::InFlight { token: t, .. }) if *t == token) {
            map.insert(
                *key,
                MemRecord::Done {
                    answer: answer.map(<[u8]>::to_vec),
                    until: expires.0,
                },
            );
        }
        Ok(())
    }

    fn release(&self, key: &IdemKey, token: u64) -> Result<(), StateError> {
        let mut map = self.lock();
        if matches!(map.get(key), Some(MemRecord::InFlight { token: t, .. }) if *t == token) {
            map.remove(key);
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
