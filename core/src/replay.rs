//! Replaying calls against a policy as the proxy would, for tests: fresh
//! in-memory counters, a clock the caller moves, and each allowed call's
//! reservations committed, or rolled back when the upstream is said to fail.
//! `portcullis test`, its coverage and `portcullis::testing::decision_table`
//! all replay through this.
//!
//! [`Replay::exchange`] also plays what the proxy does after the decision:
//! an identical call within an idempotency window is replayed or refused
//! (the same key and in-memory store the proxy uses), and a price the server
//! asks is checked and reserved against the tool's spend budgets
//! ([`crate::spend::reserve`], the proxy's own check), then committed as a
//! paid call or rolled back when the upstream fails.

use crate::call::{CallError, ToolCall};
use crate::counters::{Counters, MemoryCounters, Ticket, UnixMillis};
use crate::idempotency::{Claim, IdemKey, IdempotencyMode, IdempotencyStore, MemoryIdempotency};
use crate::json::Strictness;
use crate::policy::{Decision, Effect, Env, FailMode, Policy, RuleId};
use crate::spend::{Budgets, Currency, Refusal};

/// The clock at a replay's first call unless the caller sets one.
pub const DEFAULT_CLOCK: &str = "2026-01-15T10:30:00Z";

/// A sequence of calls on fresh counters, in one agent session.
pub struct Replay {
    counters: MemoryCounters,
    idempotency: MemoryIdempotency,
    now: UnixMillis,
    principal: Option<crate::Principal>,
}

/// What the upstream server is said to do with a forwarded call.
#[derive(Debug, Clone, Copy, Default)]
pub struct Upstream {
    /// It answers with a JSON-RPC error (nothing is committed or remembered).
    pub error: bool,
    /// It asks this price first (MPP `-32042`): micro-units of a currency.
    pub price: Option<(u64, &'static Currency)>,
}

/// What a call came to once the proxy's part after the decision is played.
#[derive(Debug, Clone)]
pub enum Replayed {
    /// The policy's decision: an allowed call reached the server (and, when
    /// it had a price, paid it), a denied one did not.
    Decided {
        /// The decision.
        decision: Box<Decision>,
        /// The budgets (rules) that governed its price, if it had one.
        budgets: Vec<RuleId>,
    },
    /// An identical call within the window: the first call's answer again.
    Replayed {
        /// The rule that declares the window.
        rule: RuleId,
    },
    /// An identical call within a `refuse` window.
    Duplicate {
        /// The rule that declares the window.
        rule: RuleId,
        /// Its denial message.
        message: &'static str,
    },
    /// The price broke a spend budget (or no budget covers its currency).
    Spend(Refusal),
}

impl Default for Replay {
    fn default() -> Self {
        Replay::new(UnixMillis::parse_rfc3339(DEFAULT_CLOCK).expect("the default clock parses"))
    }
}

impl Replay {
    /// Fresh counters, the clock at `start`.
    pub fn new(start: UnixMillis) -> Replay {
        Replay {
            counters: MemoryCounters::new(),
            idempotency: MemoryIdempotency::default(),
            now: start,
            principal: None,
        }
    }

    /// The caller of this call and the ones after it (None: unknown, its
    /// `principal.*` paths read as missing).
    pub fn set_principal(&mut self, principal: Option<crate::Principal>) {
        self.principal = principal;
    }

    /// Moves the clock (for this call and the ones after it).
    pub fn set_clock(&mut self, at: UnixMillis) {
        self.now = at;
    }

    /// Decides one call with `policy`, then commits its reservations, or
    /// rolls them back when `upstream_error`. Arguments are parsed as
    /// strictly as the proxy parses them.
    pub fn call(
        &mut self,
        policy: &dyn Policy,
        tool: &str,
        args: &str,
        upstream_error: bool,
    ) -> Result<Decision, CallError> {
        self.call_with(tool, args, upstream_error, |call, env, ticket| {
            policy.decide(call, env, ticket)
        })
    }

    /// Like [`Replay::call`], with the decision made by `decide` (e.g. a
    /// tracing evaluator).
    pub fn call_with(
        &mut self,
        tool: &str,
        args: &str,
        upstream_error: bool,
        decide: impl FnOnce(&ToolCall<'_>, &Env<'_>, &mut Ticket) -> Decision,
    ) -> Result<Decision, CallError> {
        let call = ToolCall::new(tool, args.as_bytes(), Strictness::STRICT)?;
        let env = Env {
            counters: &self.counters,
            now: self.now,
            session: 1,
            fail_mode: FailMode::Closed,
            principal: self.principal.as_ref(),
        };
        let mut ticket = Ticket::EMPTY;
        let d = decide(&call, &env, &mut ticket);
        if d.effect() == Effect::Allow {
            if upstream_error {
                self.counters.rollback(&ticket);
            } else {
                self.counters.commit(&ticket);
            }
        }
        Ok(d)
    }

    /// Decides one call with `decide` (which must decide as `policy` does,
    /// e.g. its tracing evaluator), then plays the rest of the exchange as
    /// the proxy does: the idempotency claim (a duplicate is replayed or
    /// refused and its reservations rolled back), the price against the
    /// budgets of `policy`, and the upstream's answer (success commits the
    /// call's counters, its spend and its idempotency record; an error rolls
    /// them back and forgets the record).
    pub fn exchange(
        &mut self,
        policy: &dyn Policy,
        tool: &str,
        args: &str,
        upstream: Upstream,
        decide: impl FnOnce(&ToolCall<'_>, &Env<'_>, &mut Ticket) -> Decision,
    ) -> Result<Replayed, CallError> {
        self.exchange_on(
            policy,
            crate::call::Surface::Tool,
            tool,
            args,
            upstream,
            decide,
        )
    }

    /// [`Replay::exchange`] for a request on any surface (a resource read by
    /// its normalised URI, a prompt request with its arguments).
    pub fn exchange_on(
        &mut self,
        policy: &dyn Policy,
        surface: crate::call::Surface,
        tool: &str,
        args: &str,
        upstream: Upstream,
        decide: impl FnOnce(&ToolCall<'_>, &Env<'_>, &mut Ticket) -> Decision,
    ) -> Result<Replayed, CallError> {
        let call = ToolCall::on(surface, tool, args.as_bytes(), Strictness::STRICT)?;
        let env = Env {
            counters: &self.counters,
            now: self.now,
            session: 1,
            fail_mode: FailMode::Closed,
            principal: self.principal.as_ref(),
        };
        let mut ticket = Ticket::EMPTY;
        let d = decide(&call, &env, &mut ticket);
        // A denied call, or one held for approval, never reaches the server.
        if d.effect() != Effect::Allow {
            return Ok(Replayed::Decided {
                decision: Box::new(d),
                budgets: Vec::new(),
            });
        }
        let claim = match d.idempotency {
            None => None,
            Some(spec) => {
                let key = IdemKey::of(policy.meta().server, self.principal.as_ref(), &call, spec);
                // Calls replay one after another: nothing is ever in flight.
                match self.idempotency.claim(&key, self.now, u64::MAX) {
                    Ok(Claim::Mine(token)) => Some((key, token, spec)),
                    // As the proxy does: forwarded without a record.
                    Ok(Claim::Full) => None,
                    // Calls replay one after another and the memory store
                    // never fails: anything else is a completed identical call.
                    _ => {
                        self.counters.rollback(&ticket);
                        return Ok(match spec.mode {
                            IdempotencyMode::Replay => Replayed::Replayed { rule: spec.rule },
                            IdempotencyMode::Refuse => Replayed::Duplicate {
                                rule: spec.rule,
                                message: spec.message,
                            },
                        });
                    }
                }
            }
        };
        let mut spent = None;
        if let Some((amount, currency)) = upstream.price {
            let mut budgets = Budgets::new();
            policy.spend(&call, &env, &mut budgets);
            // A tool without budgets is not metered: its price is the wallet's business.
            if !budgets.is_empty() {
                match crate::spend::reserve(tool, &budgets, amount, currency, &env, policy.meta()) {
                    Ok(r) => spent = Some(r),
                    Err(refusal) => {
                        self.counters.rollback(&ticket);
                        if let Some((key, token, _)) = &claim {
                            let _ = self.idempotency.release(key, *token);
                        }
                        return Ok(Replayed::Spend(refusal));
                    }
                }
            }
        }
        let tickets = std::iter::once(&ticket).chain(spent.as_ref().map(|r| &r.ticket));
        if upstream.error {
            tickets.for_each(|t| self.counters.rollback(t));
            if let Some((key, token, _)) = &claim {
                let _ = self.idempotency.release(key, *token);
            }
        } else {
            tickets.for_each(|t| self.counters.commit(t));
            if let Some((key, token, spec)) = &claim {
                let expires = UnixMillis(
                    self.now
                        .0
                        .saturating_add(spec.window_ms.min(i64::MAX as u64) as i64),
                );
                let _ = self.idempotency.complete(key, *token, Some(b"{}"), expires);
            }
        }
        Ok(Replayed::Decided {
            decision: Box::new(d),
            budgets: spent.map(|r| r.rules).unwrap_or_default(),
        })
    }
}
