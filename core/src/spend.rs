//! Budgets on paid tools (MPP): exact money, currencies, and the budgets a
//! policy puts on a tool.
//!
//! Money is never a float. Every amount, in a policy or in a payment
//! challenge, is held as an integer count of *micro-units* of its currency
//! ([`SCALE`] = 6 decimal places: `0.50` USD is 500 000). An amount with
//! more precision than that, or larger than `u64`, cannot be represented
//! exactly: the compiler rejects it in a policy and the proxy denies a
//! challenge that carries it.
//!
//! A decision stays synchronous and allocation-free: [`crate::Policy::spend`]
//! fills a fixed-size [`Budgets`] with the budgets that apply to a call. The
//! proxy checks a challenge's price against them when the server answers
//! `-32042` (payment required).

use crate::counters::{CounterRef, MAX_RESERVATIONS, ReserveOutcome, ReserveRequest, Ticket};
use crate::policy::{Env, FailMode, PolicyMeta, RuleId};

/// Decimal places every amount is scaled to: amounts are integer micro-units.
pub const SCALE: u32 = 6;

/// One unit of a currency in micro-units (`10^SCALE`).
pub const UNIT: u64 = 1_000_000;

/// The most budgets one call can have (the same bound as reservations).
pub const MAX_BUDGETS: usize = crate::counters::MAX_RESERVATIONS;

crate::error_kinds! {
    /// Why an amount cannot be read exactly.
    pub enum MoneyError {
        /// No digits, or a character that is not a digit or one `.`.
        Syntax => "not a plain decimal amount (digits with an optional `.` and fraction)",
        /// More than six decimal places that are not zeros.
        TooPrecise => "more precise than a millionth of a unit, so not exactly representable",
        /// Above `u64::MAX` micro-units.
        TooLarge => "too large to represent exactly",
        /// A base-unit amount with a leading zero, or a scale above 18.
        BaseUnits => "not an integer count of base units",
    }
}

/// Parses a decimal amount of whole units, `50`, `0.50`, `12.345678`, into
/// micro-units. No sign, no exponent, no separators: a policy or a challenge
/// that says something else is not read at all.
pub fn parse_decimal(text: &str) -> Result<u64, MoneyError> {
    let (int, frac) = match text.split_once('.') {
        Some((i, f)) => (i, Some(f)),
        None => (text, None),
    };
    let digits = |s: &str| !s.is_empty() && s.bytes().all(|b| b.is_ascii_digit());
    if !digits(int) || frac.is_some_and(|f| !digits(f)) {
        return Err(MoneyError::Syntax);
    }
    let frac = frac.unwrap_or("");
    // Digits past the sixth must all be zeros to be exact.
    let (kept, dropped) = frac.split_at(frac.len().min(SCALE as usize));
    if dropped.bytes().any(|b| b != b'0') {
        return Err(MoneyError::TooPrecise);
    }
    let mut v: u64 = 0;
    for b in int.bytes().chain(kept.bytes()) {
        v = v
            .checked_mul(10)
            .and_then(|v| v.checked_add(u64::from(b - b'0')))
            .ok_or(MoneyError::TooLarge)?;
    }
    for _ in kept.len()..SCALE as usize {
        v = v.checked_mul(10).ok_or(MoneyError::TooLarge)?;
    }
    Ok(v)
}

/// Reads an integer count of base units (`"1500"` with `decimals` 2 is
/// 15.00) into micro-units: how MPP challenges state their price.
pub fn from_base_units(digits: &str, decimals: u32) -> Result<u64, MoneyError> {
    if digits.is_empty() || !digits.bytes().all(|b| b.is_ascii_digit()) {
        return Err(MoneyError::Syntax);
    }
    if (digits.len() > 1 && digits.starts_with('0')) || decimals > 18 {
        return Err(MoneyError::BaseUnits);
    }
    let d = decimals as usize;
    // More decimals than we keep: the extra low digits must be zeros.
    let cut = d.saturating_sub(SCALE as usize);
    let (high, low) = if digits.len() > cut {
        digits.split_at(digits.len() - cut)
    } else {
        ("0", digits)
    };
    if low.bytes().any(|b| b != b'0') {
        return Err(MoneyError::TooPrecise);
    }
    let mut v: u64 = 0;
    for b in high.bytes() {
        v = v
            .checked_mul(10)
            .and_then(|v| v.checked_add(u64::from(b - b'0')))
            .ok_or(MoneyError::TooLarge)?;
    }
    // Fewer decimals than we keep: scale up.
    for _ in d..SCALE as usize {
        v = v.checked_mul(10).ok_or(MoneyError::TooLarge)?;
    }
    Ok(v)
}

/// Writes micro-units as a decimal with at least two places: `0.50`, `12.345678`.
pub fn format(micros: u64) -> String {
    let int = micros / UNIT;
    let mut frac = format!("{:06}", micros % UNIT);
    while frac.len() > 2 && frac.ends_with('0') {
        frac.pop();
    }
    format!("{int}.{frac}")
}

/// A currency the proxy knows: its code (lowercase), how many decimals its
/// base unit has, and a fixed tag that separates its counters from other
/// currencies' in storage (never reuse or renumber a tag).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Currency {
    /// Lowercase code, as in MPP challenges (`usd`, `usdc`).
    pub code: &'static str,
    /// Decimal places of the base unit challenges count in (`usd`: 2, cents).
    pub decimals: u32,
    /// Storage tag, stable across releases.
    pub tag: u16,
}

/// Every currency a challenge may use. ISO 4217 minor units for fiat
/// (Stripe's charges count in them); 6 for the dollar stablecoins. A
/// challenge in any other currency (a token contract address, a typo) is
/// denied: the proxy cannot tell what it costs.
pub const CURRENCIES: &[Currency] = &[
    Currency {
        code: "usd",
        decimals: 2,
        tag: 1,
    },
    Currency {
        code: "eur",
        decimals: 2,
        tag: 2,
    },
    Currency {
        code: "gbp",
        decimals: 2,
        tag: 3,
    },
    Currency {
        code: "chf",
        decimals: 2,
        tag: 4,
    },
    Currency {
        code: "cad",
        decimals: 2,
        tag: 5,
    },
    Currency {
        code: "aud",
        decimals: 2,
        tag: 6,
    },
    Currency {
        code: "jpy",
        decimals: 0,
        tag: 7,
    },
    Currency {
        code: "usdc",
        decimals: 6,
        tag: 8,
    },
    Currency {
        code: "usdt",
        decimals: 6,
        tag: 9,
    },
    Currency {
        code: "pyusd",
        decimals: 6,
        tag: 10,
    },
];

/// The known currency with this code (ASCII case-insensitive).
pub fn currency(code: &str) -> Option<&'static Currency> {
    CURRENCIES
        .iter()
        .find(|c| c.code.eq_ignore_ascii_case(code))
}

/// The counter partition of a budget's spend in one currency: the budget's
/// own partition (global, session, argument) with the currency's tag in bits
/// 96..112, so `usd` and `eur` spend never add up in one counter.
pub fn currency_partition(base: u128, currency: &Currency) -> u128 {
    base ^ (u128::from(currency.tag) << 96)
}

/// A spend budget on a window: a counter (its partition not yet mixed with
/// the currency) and the most it may reach, in micro-units.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct WindowBudget {
    /// The counter, partitioned like any limit (`by session`, `by args.x`).
    pub counter: CounterRef,
    /// Highest total in the window, micro-units.
    pub max: u64,
}

/// One budget that applies to a call.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Budget {
    /// The rule that sets it (its name is the budget's name).
    pub rule: RuleId,
    /// Only this currency (lowercase code); `None`: every currency, each
    /// counted separately (Intercept's `spend:` names no currency).
    pub currency: Option<&'static str>,
    /// The most one call may cost, micro-units.
    pub per_call: Option<u64>,
    /// The most the window may add up to.
    pub window: Option<WindowBudget>,
    /// The denial message when a price breaks this budget ("" for the default).
    pub message: &'static str,
    /// Set when the window counts per a principal path (`by principal.sub`)
    /// this caller has no value for: the window has no counter, and any
    /// price this budget covers is refused with this text (fail closed, as
    /// a per-caller limit denies a call without the value).
    pub no_partition: Option<&'static str>,
}

impl Budget {
    /// True when a price in `currency` is governed by this budget.
    pub fn covers(&self, currency: &Currency) -> bool {
        self.currency.is_none_or(|c| c == currency.code)
    }
}

/// The budgets of one call, in rule order: a fixed array, so filling it
/// allocates nothing.
#[derive(Debug, Clone, Copy)]
pub struct Budgets {
    len: usize,
    items: [Option<Budget>; MAX_BUDGETS],
}

impl Default for Budgets {
    fn default() -> Self {
        Budgets::new()
    }
}

impl Budgets {
    /// No budgets.
    pub const fn new() -> Budgets {
        Budgets {
            len: 0,
            items: [None; MAX_BUDGETS],
        }
    }

    /// Adds one. The compiler rejects policies with more budgets per call
    /// than fit, so a full table here is a compiler bug.
    pub fn push(&mut self, b: Budget) {
        debug_assert!(self.len < MAX_BUDGETS, "too many budgets for one call");
        if self.len < MAX_BUDGETS {
            self.items[self.len] = Some(b);
            self.len += 1;
        }
    }

    /// The budgets, in order.
    pub fn iter(&self) -> impl Iterator<Item = &Budget> {
        self.items[..self.len].iter().flatten()
    }

    /// True when no budget applies (the call is not metered).
    pub fn is_empty(&self) -> bool {
        self.len == 0
    }

    /// How many.
    pub fn len(&self) -> usize {
        self.len
    }
}

/// Why a price was refused: the budget (its rule) and the text for the model.
#[derive(Debug, Clone)]
pub struct Refusal {
    /// The budget's rule; None when the challenge itself was unreadable.
    pub rule: Option<RuleId>,
    /// The denial message (without the `[POLICY DENIED]` prefix).
    pub message: String,
    /// `_meta` outcome: `spend` (a budget), `bad_challenge`, `state_unavailable`.
    pub outcome: &'static str,
}

/// A price checked and reserved against every applicable budget.
#[derive(Debug, Clone)]
pub struct Reserved {
    /// The reservations on the budgets' windows.
    pub ticket: Ticket,
    /// The budgets (rules) that governed the price.
    pub rules: Vec<RuleId>,
}

/// Checks a price of `amount` micro-units of `cur` against `budgets` and reserves it on every windowed one at
/// once (all or nothing, atomic in the store, shared with every proxy using
/// it). Budgets in another currency do not apply, but a price no budget
/// covers is refused: the policy metered the tool, and this currency was
/// never given a budget.
pub fn reserve(
    tool: &str,
    budgets: &Budgets,
    amount: u64,
    cur: &'static Currency,
    env: &Env<'_>,
    meta: &PolicyMeta,
) -> Result<Reserved, Refusal> {
    let asked = format!("{} {}", format(amount), cur.code);
    let name = |r: RuleId| meta.rule(r).map_or("", |i| i.name);
    let refuse = |b: &Budget, why: String| Refusal {
        rule: Some(b.rule),
        message: if b.message.is_empty() {
            format!(
                "Spend budget {:?} exceeded: {tool} asks {asked}; {why}",
                name(b.rule)
            )
        } else {
            b.message.to_string()
        },
        outcome: "spend",
    };
    let mut rules = Vec::new();
    let mut requests = [ReserveRequest {
        counter: CounterRef {
            spec: &crate::counters::UNUSED_COUNTER,
            partition: 0,
        },
        amount: 0,
        limit: 0,
    }; MAX_RESERVATIONS];
    let mut owners = Vec::new();
    for b in budgets.iter().filter(|b| b.covers(cur)) {
        rules.push(b.rule);
        if let Some(why) = b.no_partition {
            return Err(Refusal {
                rule: Some(b.rule),
                message: format!("Payment for {tool} refused: it asks {asked}; {why}"),
                outcome: "spend",
            });
        }
        if let Some(max) = b.per_call
            && amount > max
        {
            return Err(refuse(
                b,
                format!("at most {} {} per call", format(max), cur.code),
            ));
        }
        if let Some(w) = b.window
            && owners.len() < MAX_RESERVATIONS
        {
            requests[owners.len()] = ReserveRequest {
                counter: CounterRef {
                    spec: w.counter.spec,
                    partition: currency_partition(w.counter.partition, cur),
                },
                amount,
                limit: w.max,
            };
            owners.push(*b);
        }
    }
    if rules.is_empty() {
        return Err(Refusal {
            rule: budgets.iter().next().map(|b| b.rule),
            message: format!(
                "Payment for {tool} refused: it asks {asked}, and no budget of this tool is in {}",
                cur.code
            ),
            outcome: "spend",
        });
    }
    let mut ticket = Ticket::EMPTY;
    if owners.is_empty() {
        return Ok(Reserved { ticket, rules });
    }
    match env
        .counters
        .reserve(&requests[..owners.len()], env.now, &mut ticket)
    {
        Ok(ReserveOutcome::Reserved) => Ok(Reserved { ticket, rules }),
        Ok(ReserveOutcome::Refused { index }) => {
            let b = owners[index.min(owners.len() - 1)];
            let w = b.window.expect("a windowed budget");
            let window = w.counter.spec.window.storage_name();
            Err(refuse(
                &b,
                format!(
                    "at most {} {} per {window}, and that would go over",
                    format(w.max),
                    cur.code
                ),
            ))
        }
        Err(_) if env.fail_mode == FailMode::Open => Ok(Reserved {
            ticket: Ticket::EMPTY,
            rules,
        }),
        Err(e) => Err(Refusal {
            rule: owners.first().map(|b| b.rule),
            message: format!("Payment for {tool} refused: the spend store is unavailable ({e})"),
            outcome: "state_unavailable",
        }),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn decimals_are_exact_micro_units() {
        assert_eq!(parse_decimal("0.50"), Ok(500_000));
        assert_eq!(parse_decimal("50"), Ok(50 * UNIT));
        assert_eq!(parse_decimal("50.00"), Ok(50 * UNIT));
        assert_eq!(parse_decimal("0.000001"), Ok(1));
        assert_eq!(parse_decimal("1.5000000000"), Ok(1_500_000));
        assert_eq!(parse_decimal("0.0000001"), Err(MoneyError::TooPrecise));
        for bad in [
            "", ".5", "5.", "-1", "1e2", "1,5", " 1", "0x10", "1.2.3", "½",
        ] {
            assert_eq!(parse_decimal(bad), Err(MoneyError::Syntax), "{bad:?}");
        }
        assert_eq!(parse_decimal("18446744073709.551615"), Ok(u64::MAX));
        assert_eq!(
            parse_decimal("18446744073709.551616"),
            Err(MoneyError::TooLarge)
        );
    }

    #[test]
    fn base_units_scale_by_their_decimals() {
        assert_eq!(from_base_units("50", 2), Ok(500_000));
        assert_eq!(from_base_units("1000000", 6), Ok(UNIT));
        assert_eq!(from_base_units("7", 0), Ok(7 * UNIT));
        assert_eq!(from_base_units("1000000000000", 12), Ok(UNIT));
        assert_eq!(from_base_units("1", 12), Err(MoneyError::TooPrecise));
        assert_eq!(from_base_units("0", 2), Ok(0));
        assert_eq!(from_base_units("050", 2), Err(MoneyError::BaseUnits));
        assert_eq!(from_base_units("5.0", 2), Err(MoneyError::Syntax));
        assert_eq!(from_base_units("-5", 2), Err(MoneyError::Syntax));
        assert_eq!(from_base_units("1", 19), Err(MoneyError::BaseUnits));
        assert_eq!(
            from_base_units("99999999999999999999999", 2),
            Err(MoneyError::TooLarge)
        );
    }

    #[test]
    fn formatting_keeps_two_places_and_every_significant_digit() {
        assert_eq!(format(500_000), "0.50");
        assert_eq!(format(50 * UNIT), "50.00");
        assert_eq!(format(1), "0.000001");
        assert_eq!(format(1_230_000), "1.23");
    }

    #[test]
    fn currencies_have_distinct_tags_and_partitions() {
        let mut tags: Vec<u16> = CURRENCIES.iter().map(|c| c.tag).collect();
        tags.sort_unstable();
        tags.dedup();
        assert_eq!(tags.len(), CURRENCIES.len());
        let (usd, eur) = (currency("USD").unwrap(), currency("eur").unwrap());
        assert_ne!(currency_partition(0, usd), currency_partition(0, eur));
        assert_ne!(currency_partition(0, usd), 0);
        assert!(currency("0x20c0000000000000000000000000000000000000").is_none());
    }

    /// A budget whose window counts per a principal path the caller lacks
    /// refuses every price it covers, naming why, and reserves nothing
    /// anywhere (not even on a sibling budget); a price in a currency it
    /// does not cover is not its business.
    #[test]
    fn a_budget_without_its_callers_partition_refuses_and_reserves_nothing() {
        use crate::counters::{Calendar, CounterSpec, Counters, MemoryCounters, Scope, Window};
        use crate::policy::{RuleInfo, RuleKind};
        static RULES: [RuleInfo; 2] = [
            RuleInfo {
                name: "shared",
                label: "t.shared",
                kind: RuleKind::Rule,
                file: "t",
                line: 1,
                column: 1,
            },
            RuleInfo {
                name: "per caller",
                label: "t.per_caller",
                kind: RuleKind::Rule,
                file: "t",
                line: 2,
                column: 1,
            },
        ];
        static COUNTERS: [CounterSpec; 1] = [CounterSpec::new(
            "t/shared.spend",
            Window::Calendar(Calendar::Day),
            Scope::Global,
        )];
        static META: PolicyMeta = PolicyMeta {
            server: "t",
            file: "t",
            dialect: "dsl",
            digest: "0000000000000000",
            rules: &RULES,
            counters: &COUNTERS,
            idempotency: &[],
            approvals: &[],
            approval_config: None,
        };
        let store = MemoryCounters::new();
        let env = Env::new(&store);
        let shared = Budget {
            rule: RuleId(0),
            currency: None,
            per_call: None,
            window: Some(WindowBudget {
                counter: CounterRef {
                    spec: &COUNTERS[0],
                    partition: 0,
                },
                max: 10 * UNIT,
            }),
            message: "",
            no_partition: None,
        };
        let mut budgets = Budgets::new();
        budgets.push(shared);
        budgets.push(Budget {
            rule: RuleId(1),
            currency: Some("usd"),
            per_call: None,
            window: None,
            message: "",
            no_partition: Some("the budget counts per principal.sub and the caller has none"),
        });
        let usd = currency("usd").unwrap();
        let r = reserve("pay", &budgets, UNIT, usd, &env, &META).unwrap_err();
        assert_eq!(r.rule, Some(RuleId(1)));
        assert_eq!(r.outcome, "spend");
        assert_eq!(
            r.message,
            "Payment for pay refused: it asks 1.00 usd; the budget counts per principal.sub and the caller has none"
        );
        let counter = CounterRef {
            spec: &COUNTERS[0],
            partition: currency_partition(0, usd),
        };
        assert_eq!(store.read(counter, env.now).unwrap(), 0, "nothing reserved");
        // In euros only the shared budget applies, and it reserves.
        let eur = currency("eur").unwrap();
        let ok = reserve("pay", &budgets, UNIT, eur, &env, &META).unwrap();
        assert_eq!(ok.rules, vec![RuleId(0)]);
    }
}
