//! Portcullis decision core: what a compiled policy and the reference
//! evaluator need to decide a call, and nothing else. No async runtime, no
//! network, no C: generated policies, the compiler run by `build.rs` and
//! the decision tests link only this crate.
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
//!
//! The proxy that enforces decisions (transports, sessions, counter stores
//! that persist, audit, metrics) is the `portcullis-proxy` crate on top.

#![warn(missing_docs)]
#![forbid(unsafe_code)]

pub mod call;
pub mod counters;
pub mod fnv;
pub mod json;
pub mod jsonrpc;
pub mod ops;
pub mod policy;
pub mod regex;
pub mod replay;

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
