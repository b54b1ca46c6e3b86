//! Portcullis run time: everything the proxy needs to enforce a compiled
//! policy, and nothing that parses policies.
//!
//! - [`json`]: zero-allocation views over message bytes, exact numbers.
//! - [`jsonrpc`]: strict reading of JSON-RPC envelopes and `tools/call`.
//! - [`call`]: the borrowed [`ToolCall`] a policy decides on.
//! - [`ops`]: the semantic primitives of every operator, shared by generated
//!   code and the reference evaluator.
//! - [`counters`]: the [`Counters`] host trait, windows, the in-memory store.
//! - [`policy`]: the [`Policy`] trait and [`Decision`].
//! - [`regex`]: regexes embedded as build-time DFAs.
//! - [`replay`]: calls replayed on fresh counters, for policy tests.
//! - [`state`]: counter stores that persist and are shared (SQLite, Redis).

#![warn(missing_docs)]

pub mod call;
pub mod counters;
pub mod filter;
pub mod json;
pub mod jsonrpc;
pub mod ops;
pub mod policy;
pub mod proxy;
pub mod regex;
pub mod replay;
pub mod state;

pub use call::ToolCall;
pub use counters::{Counters, MemoryCounters, UnixMillis};
pub use policy::{Decision, Effect, Env, Outcome, Policy, PolicyMeta, RuleId, RuleInfo};

/// What generated policy code uses; one import keeps the generated files short.
pub mod prelude {
    pub use crate::call::ToolCall;
    pub use crate::counters::{Calendar, CounterRef, CounterSpec, Scope, Window};
    pub use crate::json::{JStr, Num, Val, num_from_u64};
    pub use crate::ops;
    pub use crate::policy::{
        Decision, Env, Limits, Outcome, Policy, PolicyMeta, RuleId, RuleInfo, RuleKind,
    };
    pub use crate::regex::{Aligned, EmbeddedRegex};
}
