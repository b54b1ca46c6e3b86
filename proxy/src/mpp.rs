//! Budgets on paid tools: the Machine Payments Protocol over MCP
//! (IETF draft-payment-transport-mcp, "Payment Authentication Scheme:
//! JSON-RPC & MCP Transport").
//!
//! The protocol, as the proxy sees it:
//! 1. the client calls a paid tool; the server answers with the JSON-RPC
//!    error `-32042` (payment required) whose `data.challenges` lists one or
//!    more challenges `{id, realm, method, intent, request: {amount,
//!    currency, recipient, decimals?}, expires?}`, `amount` being an integer
//!    string of the currency's base units;
//! 2. the client's wallet pays one and retries the same call with the
//!    credential in `params._meta["org.paymentauth/credential"]`, whose
//!    `challenge.id` names the challenge paid;
//! 3. the server's success carries `_meta["org.paymentauth/receipt"]`
//!    (`{status, challengeId, method, reference, timestamp}`).
//!
//! The proxy reads the price from the challenge before the wallet sees it,
//! checks it against every budget the policy puts on the tool
//! ([`portcullis_core::Policy::spend`]) and atomically reserves it on the
//! counter stores every proxy of the deployment shares. Then it either
//! passes the challenge to the client, or replaces it with an `isError`
//! tool result naming the budget (the wallet never sees a price it may not
//! pay). The retry carrying the credential is matched to its reservation;
//! the answer to the retry settles it: a success commits it, an error
//! releases it; a challenge nobody pays for is released after
//! [`DEFAULT_TIMEOUT`] (`--payment-timeout`).
//!
//! Everything a challenge says must be read exactly, or the call is denied:
//! an amount that is not an integer string of base units, a currency the
//! proxy does not know, `decimals` that disagree with the currency, an
//! intent other than `charge`, an expired challenge, a missing field,
//! duplicate keys, or several challenges that ask different prices.

use std::collections::HashMap;
use std::sync::{Arc, Mutex, OnceLock};
use std::time::{Duration, Instant};

use portcullis_core::counters::{Counters, UnixMillis};
use portcullis_core::json::{Strictness, Val, Value, push_json_str, validate};
use portcullis_core::policy::{FailMode, PolicyMeta};
use portcullis_core::spend::{self, Budgets, Currency};

use crate::metrics::Metrics;
use crate::respond::{DENY_PREFIX, META_KEY};

/// The JSON-RPC error code of a payment challenge.
pub const PAYMENT_REQUIRED: i64 = -32042;
/// Where the client puts the credential of a paid retry (`params._meta`).
pub const CREDENTIAL_META: &str = "org.paymentauth/credential";
/// Where the server puts the receipt of a paid call (`result._meta`).
pub const RECEIPT_META: &str = "org.paymentauth/receipt";
/// How long a reserved challenge waits for its paid retry before the
/// reservation is released (`--payment-timeout`).
pub const DEFAULT_TIMEOUT: Duration = Duration::from_secs(300);

portcullis_core::error_kinds! {
    /// Why a payment challenge is refused without looking at a budget.
    pub enum ChallengeError {
        /// `data` or `data.challenges` is missing, not an object or array, or empty.
        NoChallenges => "the payment challenge has no challenges",
        /// Duplicate or case-variant keys anywhere in `data`.
        Ambiguous => "the payment challenge has duplicate keys",
        /// A required member is missing or has the wrong type.
        MissingField => "a payment challenge lacks id, method, intent, request.amount or request.currency",
        /// Not a one-off charge (a `session` deposit has no per-call price).
        Intent => "the payment challenge is not a one-off charge (intent \"charge\")",
        /// The amount is not an exact integer count of base units.
        Amount => "the payment challenge's amount cannot be read exactly",
        /// The currency is not one the proxy knows.
        Currency => "the payment challenge's currency is unknown",
        /// `decimals` disagrees with the currency's base unit.
        Decimals => "the payment challenge's decimals disagree with its currency",
        /// The challenge expired already.
        Expired => "the payment challenge has expired",
        /// Several challenges with different prices.
        Conflicting => "the payment challenges ask different prices",
    }
}

/// What a challenge asks for.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Price {
    /// Micro-units of `currency`.
    pub amount: u64,
    /// The currency.
    pub currency: &'static Currency,
    /// The ids of the challenges that ask it (any of them may be paid).
    pub ids: Vec<String>,
}

fn text(v: Option<Value<'_>>) -> Option<String> {
    match v?.val() {
        Val::Str(s) => Some(s.chars().collect()),
        _ => None,
    }
}

/// Reads the `error` of a `-32042` answer. `Ok(None)`: not a payment
/// challenge at all (MCP's URL elicitation shares the code: `data` with
/// `elicitations` and no `challenges`), to be passed on untouched.
pub fn read_challenges(error: Value<'_>, now: UnixMillis) -> Result<Option<Price>, ChallengeError> {
    let Val::Object(e) = error.val() else {
        return Err(ChallengeError::NoChallenges);
    };
    let Some(data) = e.get("data") else {
        return Err(ChallengeError::NoChallenges);
    };
    if validate(data.as_bytes(), Strictness::STRICT).is_err() {
        return Err(ChallengeError::Ambiguous);
    }
    let Val::Object(d) = data.val() else {
        return Err(ChallengeError::NoChallenges);
    };
    let Some(challenges) = d.get("challenges") else {
        if d.get("elicitations").is_some() {
            return Ok(None);
        }
        return Err(ChallengeError::NoChallenges);
    };
    let Val::Array(items) = challenges.val() else {
        return Err(ChallengeError::NoChallenges);
    };
    let mut price: Option<Price> = None;
    for c in items.iter() {
        let (amount, currency, id) = read_one(c, now)?;
        match &mut price {
            None => {
                price = Some(Price {
                    amount,
                    currency,
                    ids: vec![id],
                })
            }
            Some(p) if p.amount == amount && p.currency == currency => p.ids.push(id),
            Some(_) => return Err(ChallengeError::Conflicting),
        }
    }
    price.map(Some).ok_or(ChallengeError::NoChallenges)
}

fn read_one(
    c: Value<'_>,
    now: UnixMillis,
) -> Result<(u64, &'static Currency, String), ChallengeError> {
    let Val::Object(c) = c.val() else {
        return Err(ChallengeError::MissingField);
    };
    let id = text(c.get("id"))
        .filter(|s| !s.is_empty())
        .ok_or(ChallengeError::MissingField)?;
    text(c.get("method")).ok_or(ChallengeError::MissingField)?;
    let intent = text(c.get("intent")).ok_or(ChallengeError::MissingField)?;
    let Some(Val::Object(req)) = c.get("request").map(|r| r.val()) else {
        return Err(ChallengeError::MissingField);
    };
    if intent != "charge" {
        return Err(ChallengeError::Intent);
    }
    let amount = match req.get("amount").map(|a| a.val()) {
        None => return Err(ChallengeError::MissingField),
        Some(Val::Str(s)) => s.chars().collect::<String>(),
        Some(_) => return Err(ChallengeError::Amount),
    };
    let code = text(req.get("currency")).ok_or(ChallengeError::MissingField)?;
    let currency = spend::currency(&code).ok_or(ChallengeError::Currency)?;
    if let Some(d) = req.get("decimals") {
        let Val::Num(n) = d.val() else {
            return Err(ChallengeError::Decimals);
        };
        if n.to_u64_exact() != Some(u64::from(currency.decimals)) {
            return Err(ChallengeError::Decimals);
        }
    }
    if let Some(x) = c.get("expires") {
        let at = text(Some(x))
            .and_then(|s| UnixMillis::parse_rfc3339(&s))
            .ok_or(ChallengeError::MissingField)?;
        if at.0 <= now.0 {
            return Err(ChallengeError::Expired);
        }
    }
    let amount =
        spend::from_base_units(&amount, currency.decimals).map_err(|_| ChallengeError::Amount)?;
    Ok((amount, currency, id))
}

/// The challenge id a retry's credential names (`params._meta[CREDENTIAL_META].challenge.id`),
/// given `params._meta` (`Envelope::params_meta`: found while the request
/// was validated, so the arguments are not walked again to find it).
/// `Err(BadCredential)` when a credential is there but names no challenge.
pub fn credential_challenge(meta: Option<Value<'_>>) -> Result<Option<String>, BadCredential> {
    let Some(Val::Object(meta)) = meta.map(|m| m.val()) else {
        return Ok(None);
    };
    let Some(cred) = meta.get(CREDENTIAL_META) else {
        return Ok(None);
    };
    let Val::Object(cred) = cred.val() else {
        return Err(BadCredential);
    };
    let Some(Val::Object(ch)) = cred.get("challenge").map(|c| c.val()) else {
        return Err(BadCredential);
    };
    text(ch.get("id"))
        .filter(|s| !s.is_empty())
        .map(Some)
        .ok_or(BadCredential)
}

/// A payment credential that names no challenge.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct BadCredential;

/// The challenge id a success's receipt names, if it has one.
pub fn receipt_challenge(result: Option<Value<'_>>) -> Option<String> {
    let Val::Object(r) = result?.val() else {
        return None;
    };
    let Val::Object(meta) = r.get("_meta")?.val() else {
        return None;
    };
    let Val::Object(receipt) = meta.get(RECEIPT_META)?.val() else {
        return None;
    };
    text(receipt.get("challengeId"))
}

pub use portcullis_core::spend::{Refusal, Reserved};

/// The refusal of a challenge the proxy cannot read exactly.
pub fn unreadable(tool: &str, e: ChallengeError) -> Refusal {
    Refusal {
        rule: None,
        message: format!("Payment for {tool} refused: {e}"),
        outcome: "bad_challenge",
    }
}

/// Checks `price` against `budgets` and reserves it on every windowed one
/// ([`portcullis_core::spend::reserve`], the one implementation `portcullis
/// test` replays too).
pub fn reserve(
    tool: &str,
    budgets: &Budgets,
    price: &Price,
    counters: &dyn Counters,
    now: UnixMillis,
    fail_mode: FailMode,
    meta: &PolicyMeta,
) -> Result<Reserved, Refusal> {
    spend::reserve(
        tool,
        budgets,
        price.amount,
        price.currency,
        &portcullis_core::policy::Env {
            counters,
            now,
            // Budgets carry their partitions already; the session is unused.
            session: 0,
            fail_mode,
            principal: None,
        },
        meta,
    )
}

/// The `isError` tool result that replaces a refused challenge, echoing the
/// request id: the model reads why, the wallet sees no price.
pub fn denial(id: &[u8], tool: &str, refusal: &Refusal, meta: &PolicyMeta) -> Vec<u8> {
    let mut out = Vec::with_capacity(256);
    out.extend_from_slice(b"{\"jsonrpc\":\"2.0\",\"id\":");
    out.extend_from_slice(id);
    out.extend_from_slice(b",\"result\":{\"content\":[{\"type\":\"text\",\"text\":");
    push_json_str(&mut out, &format!("{DENY_PREFIX}{}", refusal.message));
    out.extend_from_slice(b"}],\"isError\":true,\"_meta\":{");
    push_json_str(&mut out, META_KEY);
    out.extend_from_slice(b":{\"server\":");
    push_json_str(&mut out, meta.server);
    out.extend_from_slice(b",\"tool\":");
    push_json_str(&mut out, tool);
    out.extend_from_slice(b",\"outcome\":");
    push_json_str(&mut out, refusal.outcome);
    if let Some(rule) = refusal.rule.and_then(|r| meta.rule(r)) {
        out.extend_from_slice(b",\"rule\":");
        push_json_str(&mut out, rule.name);
        out.extend_from_slice(b",\"rule_label\":");
        push_json_str(&mut out, rule.label);
    }
    out.extend_from_slice(b",\"policy_digest\":");
    push_json_str(&mut out, meta.digest);
    out.extend_from_slice(b"}}}}");
    out
}

/// A reservation waiting for the paid retry of its challenge.
pub struct Hold {
    /// The tool.
    pub tool: String,
    /// What it reserved.
    pub reserved: Reserved,
    /// The price.
    pub amount: u64,
    /// Its currency.
    pub currency: &'static Currency,
    /// The challenges it was reserved for (any one may be paid).
    pub challenge_ids: Vec<String>,
    /// The store it is reserved in.
    pub counters: Arc<dyn Counters>,
    /// The policy's tables (rule names for metrics).
    pub meta: &'static PolicyMeta,
    /// Where to count released spend.
    pub metrics: Option<Arc<Metrics>>,
    /// Released when no retry claimed it by then.
    pub deadline: Instant,
}

impl Hold {
    /// The payment failed or never happened: give the units back.
    pub fn release(self) {
        self.counters.rollback(&self.reserved.ticket);
        if let Some(m) = &self.metrics {
            m.spend(
                self.meta,
                &self.tool,
                &self.reserved.rules,
                self.currency.code,
                "released",
                self.amount,
            );
        }
    }

    /// The paid call succeeded: keep the units.
    pub fn commit(self) {
        self.counters.commit(&self.reserved.ticket);
        if let Some(m) = &self.metrics {
            m.spend(
                self.meta,
                &self.tool,
                &self.reserved.rules,
                self.currency.code,
                "committed",
                self.amount,
            );
        }
    }
}

/// One reservation shared by the ids of its challenges; taken once.
type SharedHold = Arc<Mutex<Option<Hold>>>;
/// Holds by (session, challenge id).
type Holds = HashMap<(u64, String), SharedHold>;

/// Challenges passed to clients and waiting for their paid retry, for the
/// whole process (every session), keyed by (session, challenge id): a
/// session can only claim the challenges it was given. A sweeper thread
/// releases those nobody claimed in time, so an abandoned payment does not
/// hold the shared budget of every proxy; at exit [`Payments::release_all`]
/// releases the rest before the counter store closes.
pub struct Payments {
    timeout: Mutex<Duration>,
    holds: Mutex<Holds>,
    sweeper: OnceLock<()>,
    /// Set by [`Payments::release_all`]: a later hold is released at once.
    /// Read and written under the `holds` lock.
    closed: std::sync::atomic::AtomicBool,
}

impl Payments {
    /// The process's registry.
    pub fn global() -> &'static Payments {
        static P: OnceLock<Payments> = OnceLock::new();
        P.get_or_init(|| Payments {
            timeout: Mutex::new(DEFAULT_TIMEOUT),
            holds: Mutex::new(HashMap::new()),
            sweeper: OnceLock::new(),
            closed: std::sync::atomic::AtomicBool::new(false),
        })
    }

    /// How long a challenge waits for its paid retry (`--payment-timeout`).
    pub fn set_timeout(&self, d: Duration) {
        *self.timeout.lock().unwrap_or_else(|e| e.into_inner()) = d;
    }

    /// The wait before an unclaimed reservation is released.
    pub fn timeout(&self) -> Duration {
        *self.timeout.lock().unwrap_or_else(|e| e.into_inner())
    }

    fn holds(&self) -> std::sync::MutexGuard<'_, Holds> {
        self.holds.lock().unwrap_or_else(|e| e.into_inner())
    }

    /// Keeps `hold` for its challenges `ids` (one reservation, whichever is paid).
    pub fn hold(&'static self, session: u64, ids: &[String], hold: Hold) {
        let shared = Arc::new(Mutex::new(Some(hold)));
        {
            let mut holds = self.holds();
            if self.closed.load(std::sync::atomic::Ordering::Relaxed) {
                // The proxy is exiting: nobody will pay it.
                drop(holds);
                if let Some(h) = shared.lock().unwrap_or_else(|e| e.into_inner()).take() {
                    h.release();
                }
                return;
            }
            for id in ids {
                // A server that reuses a challenge id replaces the old hold: release it.
                if let Some(old) = holds.insert((session, id.clone()), shared.clone())
                    && let Some(h) = old.lock().unwrap_or_else(|e| e.into_inner()).take()
                {
                    h.release();
                }
            }
        }
        self.sweeper.get_or_init(|| {
            let _ = std::thread::Builder::new()
                .name("mpp-sweeper".into())
                .spawn(move || {
                    loop {
                        std::thread::sleep(Duration::from_millis(200));
                        self.sweep(Instant::now());
                    }
                });
        });
    }

    /// Takes the hold of challenge `id` for a paid retry; None when the
    /// session was given no such challenge (or it was released).
    pub fn claim(&self, session: u64, id: &str) -> Option<Hold> {
        let shared = self.holds().remove(&(session, id.to_string()))?;
        // Its sibling ids (other methods for the same price) go too.
        self.holds().retain(|_, v| !Arc::ptr_eq(v, &shared));
        shared.lock().unwrap_or_else(|e| e.into_inner()).take()
    }

    /// Releases every hold past its deadline.
    pub fn sweep(&self, now: Instant) {
        let mut expired = Vec::new();
        let mut holds = self.holds();
        holds.retain(|_, v| {
            let mut h = v.lock().unwrap_or_else(|e| e.into_inner());
            match h.as_ref() {
                Some(x) if x.deadline <= now => {
                    expired.extend(h.take());
                    false
                }
                Some(_) => true,
                None => false,
            }
        });
        // Released before the lock is let go, so [`Payments::release_all`]
        // (which takes it) returns only once these are handed to the store.
        for h in expired {
            h.release();
        }
        drop(holds);
    }

    /// Releases every reservation still waiting for its paid retry, and any
    /// held later at once; the number released. For the exit, before the
    /// counter store closes: a challenge nobody can pay any more (this
    /// proxy is gone) must not keep its price counted in a shared store
    /// until its payment timeout. Paid retries in flight are not touched
    /// (they hold their reservation themselves).
    pub fn release_all(&self) -> usize {
        let mut holds = self.holds();
        self.closed
            .store(true, std::sync::atomic::Ordering::Relaxed);
        let mut released = 0;
        for (_, shared) in holds.drain() {
            // Sibling ids share one hold: taken (and released) once.
            if let Some(h) = shared.lock().unwrap_or_else(|e| e.into_inner()).take() {
                h.release();
                released += 1;
            }
        }
        drop(holds);
        released
    }

    /// Number of challenges waiting for a paid retry.
    pub fn waiting(&self) -> usize {
        self.holds().len()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn err(json: &str) -> Result<Option<Price>, ChallengeError> {
        portcullis_core::json::validate(json.as_bytes(), Strictness::LENIENT).unwrap();
        read_challenges(Value::from_validated(json.as_bytes()), UnixMillis(0))
    }

    fn challenge(id: &str, amount: &str, currency: &str) -> String {
        format!(
            r#"{{"id":"{id}","realm":"r","method":"stripe","intent":"charge","request":{{"amount":{amount},"currency":"{currency}","recipient":"acct_1"}}}}"#
        )
    }

    fn data(challenges: &[String]) -> String {
        format!(
            r#"{{"code":-32042,"message":"Payment Required","data":{{"httpStatus":402,"challenges":[{}]}}}}"#,
            challenges.join(",")
        )
    }

    #[test]
    fn a_charge_is_read_exactly_in_micro_units() {
        let p = err(&data(&[challenge("c1", "\"50\"", "usd")]))
            .unwrap()
            .unwrap();
        assert_eq!(
            (p.amount, p.currency.code, p.ids),
            (500_000, "usd", vec!["c1".to_string()])
        );
        let p = err(&data(&[challenge("c1", "\"1500000\"", "USDC")]))
            .unwrap()
            .unwrap();
        assert_eq!(p.amount, 1_500_000);
    }

    #[test]
    fn unreadable_challenges_are_refused() {
        let cases = [
            (data(&[challenge("c", "50", "usd")]), ChallengeError::Amount),
            (
                data(&[challenge("c", "\"0.5\"", "usd")]),
                ChallengeError::Amount,
            ),
            (
                data(&[challenge("c", "\"-5\"", "usd")]),
                ChallengeError::Amount,
            ),
            (
                data(&[challenge("c", "\"5\"", "0x20c0")]),
                ChallengeError::Currency,
            ),
            (
                data(&[challenge("", "\"5\"", "usd")]),
                ChallengeError::MissingField,
            ),
            (data(&[]), ChallengeError::NoChallenges),
            (
                data(&[
                    challenge("a", "\"5\"", "usd"),
                    challenge("b", "\"6\"", "usd"),
                ]),
                ChallengeError::Conflicting,
            ),
            (
                data(&[
                    challenge("a", "\"5\"", "usd"),
                    challenge("b", "\"5\"", "eur"),
                ]),
                ChallengeError::Conflicting,
            ),
            (
                r#"{"code":-32042,"message":"x"}"#.to_string(),
                ChallengeError::NoChallenges,
            ),
            (
                r#"{"code":-32042,"message":"x","data":{"challenges":[],"challenges":[]}}"#
                    .to_string(),
                ChallengeError::Ambiguous,
            ),
            (
                data(&[challenge("c", "\"5\"", "usd").replace("\"charge\"", "\"session\"")]),
                ChallengeError::Intent,
            ),
            (
                data(&[
                    challenge("c", "\"5\"", "usd").replace("\"recipient\"", "\"decimals\":6,\"r\"")
                ]),
                ChallengeError::Decimals,
            ),
        ];
        for (json, want) in cases {
            assert_eq!(err(&json), Err(want), "{json}");
        }
    }

    #[test]
    fn same_price_challenges_are_one_price_and_elicitation_is_not_a_payment() {
        let p = err(&data(&[
            challenge("a", "\"5\"", "usd"),
            challenge("b", "\"5\"", "usd"),
        ]))
        .unwrap()
        .unwrap();
        assert_eq!(p.ids, vec!["a".to_string(), "b".to_string()]);
        let url = r#"{"code":-32042,"message":"URL elicitation required","data":{"elicitations":[{"mode":"url","url":"https://x"}]}}"#;
        assert_eq!(err(url), Ok(None));
    }

    /// At exit every waiting reservation goes back (sibling ids of one
    /// challenge once), and one held after that is released at once.
    #[test]
    fn release_all_gives_every_waiting_reservation_back_and_later_ones_at_once() {
        use portcullis_core::counters::{
            Calendar, CounterRef, CounterSpec, MemoryCounters, Scope, Window,
        };
        use portcullis_core::policy::{RuleId, RuleInfo, RuleKind};
        use portcullis_core::spend::{Budget, WindowBudget};
        static RULES: [RuleInfo; 1] = [RuleInfo {
            name: "budget",
            label: "test",
            kind: RuleKind::Rule,
            file: "test",
            line: 1,
            column: 1,
        }];
        static COUNTERS: [CounterSpec; 1] = [CounterSpec::new(
            "test/t.spend",
            Window::Calendar(Calendar::Day),
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
        // A registry of its own (the process's one is for the proxy).
        let payments: &'static Payments = Box::leak(Box::new(Payments {
            timeout: Mutex::new(DEFAULT_TIMEOUT),
            holds: Mutex::new(HashMap::new()),
            sweeper: OnceLock::new(),
            closed: std::sync::atomic::AtomicBool::new(false),
        }));
        let counters: Arc<dyn Counters> = Arc::new(MemoryCounters::new());
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
                max: 10_000_000,
            }),
            message: "",
            no_partition: None,
        });
        let now = UnixMillis::now();
        let usd = spend::currency("usd").unwrap();
        let hold = |ids: &[&str]| {
            let price = Price {
                amount: 1_000_000,
                currency: usd,
                ids: ids.iter().map(|s| s.to_string()).collect(),
            };
            let reserved = reserve(
                "t",
                &budgets,
                &price,
                counters.as_ref(),
                now,
                FailMode::Closed,
                &META,
            )
            .unwrap();
            let counter = reserved.ticket.iter().next().unwrap().counter;
            payments.hold(
                1,
                &price.ids,
                Hold {
                    tool: "t".into(),
                    reserved,
                    amount: price.amount,
                    currency: usd,
                    challenge_ids: price.ids.clone(),
                    counters: counters.clone(),
                    meta: &META,
                    metrics: None,
                    deadline: Instant::now() + DEFAULT_TIMEOUT,
                },
            );
            counter
        };
        let counter = hold(&["a", "a-other-method"]);
        hold(&["b"]);
        let spent = || counters.read(counter, now).unwrap();
        assert_eq!(spent(), 2_000_000);
        assert_eq!(payments.waiting(), 3);
        assert_eq!(payments.release_all(), 2, "two reservations, three ids");
        assert_eq!(spent(), 0);
        assert_eq!(payments.waiting(), 0);
        assert!(payments.claim(1, "a").is_none(), "nothing left to pay");
        // Held after the exit began: released at once.
        hold(&["c"]);
        assert_eq!(spent(), 0);
        assert_eq!(payments.waiting(), 0);
    }

    #[test]
    fn expired_challenges_are_refused() {
        let c = challenge("c", "\"5\"", "usd").replace(
            "\"realm\"",
            "\"expires\":\"1970-01-01T00:00:01Z\",\"realm\"",
        );
        let json = data(&[c]);
        portcullis_core::json::validate(json.as_bytes(), Strictness::LENIENT).unwrap();
        let v = Value::from_validated(json.as_bytes());
        assert_eq!(
            read_challenges(v, UnixMillis(2000)),
            Err(ChallengeError::Expired)
        );
        assert!(read_challenges(v, UnixMillis(500)).unwrap().is_some());
    }
}
