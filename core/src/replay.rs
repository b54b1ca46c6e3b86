//! Replaying calls against a policy as the proxy would, for tests: fresh
//! in-memory counters, a clock the caller moves, and each allowed call's
//! reservations committed, or rolled back when the upstream is said to fail.
//! `portcullis test`, its coverage and `portcullis::testing::decision_table`
//! all replay through this.

use crate::call::{CallError, ToolCall};
use crate::counters::{Counters, MemoryCounters, UnixMillis};
use crate::json::Strictness;
use crate::policy::{Decision, Effect, Env, FailMode, Policy};

/// The clock at a replay's first call unless the caller sets one.
pub const DEFAULT_CLOCK: &str = "2026-01-15T10:30:00Z";

/// A sequence of calls on fresh counters, in one agent session.
pub struct Replay {
    counters: MemoryCounters,
    now: UnixMillis,
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
            now: start,
        }
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
        self.call_with(tool, args, upstream_error, |call, env| {
            policy.decide(call, env)
        })
    }

    /// Like [`Replay::call`], with the decision made by `decide` (e.g. a
    /// tracing evaluator).
    pub fn call_with(
        &mut self,
        tool: &str,
        args: &str,
        upstream_error: bool,
        decide: impl FnOnce(&ToolCall<'_>, &Env<'_>) -> Decision,
    ) -> Result<Decision, CallError> {
        let call = ToolCall::new(tool, args.as_bytes(), Strictness::STRICT)?;
        let env = Env {
            counters: &self.counters,
            now: self.now,
            session: 1,
            fail_mode: FailMode::Closed,
        };
        let d = decide(&call, &env);
        if d.effect() == Effect::Allow {
            if upstream_error {
                self.counters.rollback(&d.ticket);
            } else {
                self.counters.commit(&d.ticket);
            }
        }
        Ok(d)
    }
}
