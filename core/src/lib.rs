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
//! - [`scan`]: the byte classifier every JSON scanner uses (SSE2, SWAR fallback).
//! - [`replay`]: calls replayed on fresh counters, for policy tests.
//! - [`principal`]: who is calling (claims of a validated token), read without allocating.
//! - [`spend`]: exact money and the budgets on paid tools (MPP).
//! - [`secrets`], [`results`]: result rules, secret scanning and redaction of answers.
//! - [`uri`]: resource URIs normalised before rules match them, URI globs.
//!
//! The proxy that enforces decisions (transports, sessions, counter stores
//! that persist, audit, metrics) is the `portcullis-proxy` crate on top.

#![warn(missing_docs)]
#![forbid(unsafe_code)]

/// Declares an error-kind enum from one list of rows, `Kind => "message"`:
/// the enum (`#[non_exhaustive]`, like `regex_syntax::ast::ErrorKind`),
/// `ALL` (every kind, in order), `message()` and a `Display` that writes it.
/// One row per kind, so no kind lacks a message or is missing from `ALL`,
/// and callers match on kinds, never on the text.
#[macro_export]
macro_rules! error_kinds {
    (
        $(#[$meta:meta])*
        pub enum $name:ident {
            $($(#[doc = $doc:literal])* $kind:ident => $message:literal,)*
        }
    ) => {
        $(#[$meta])*
        #[non_exhaustive]
        #[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
        pub enum $name {
            $($(#[doc = $doc])* $kind,)*
        }

        impl $name {
            /// Every kind, in declaration order (for table tests).
            pub const ALL: &'static [$name] = &[$($name::$kind),*];

            /// What is wrong, for people: lowercase, no trailing period.
            pub const fn message(self) -> &'static str {
                match self {
                    $($name::$kind => $message,)*
                }
            }
        }

        impl ::std::fmt::Display for $name {
            fn fmt(&self, f: &mut ::std::fmt::Formatter<'_>) -> ::std::fmt::Result {
                f.write_str(self.message())
            }
        }
    };
}

pub mod call;
pub mod counters;
pub mod fnv;
pub mod idempotency;
pub mod json;
pub mod jsonrpc;
pub mod ops;
pub mod path;
pub mod policy;
pub mod principal;
pub mod regex;
pub mod replay;
pub mod results;
pub mod scan;
pub mod secrets;
pub mod spend;
pub mod structural;
pub mod uri;

pub use call::{Surface, ToolCall};
pub use counters::{Counters, MemoryCounters, Ticket, UnixMillis};
pub use policy::{Decision, Effect, Env, Outcome, Policy, PolicyMeta, RuleId, RuleInfo};
pub use principal::Principal;

/// What generated policy code uses; one import keeps the generated files short.
pub mod prelude {
    pub use crate::call::{Surface, ToolCall};
    pub use crate::counters::{Calendar, CounterRef, CounterSpec, Scope, Ticket, Window};
    pub use crate::idempotency::{IdempotencyMode, IdempotencySpec};
    pub use crate::json::{JStr, Num, Val, num_from_u64};
    pub use crate::ops;
    pub use crate::policy::{
        ApprovalConfig, ApprovalSpec, Channels, Decision, Env, Limits, Outcome, Policy, PolicyMeta,
        RuleId, RuleInfo, RuleKind,
    };
    pub use crate::principal::{self, Principal, PrincipalField};
    pub use crate::regex::{Aligned, EmbeddedRegex};
    pub use crate::results::{
        ResultPattern, ResultRule, ResultSpec, Target as ResultTarget,
        UriPattern as ResultUriPattern,
    };
    pub use crate::secrets::Action as ResultAction;
    pub use crate::spend::{Budget, Budgets, WindowBudget};
    pub use crate::uri::{MAX_URI_LEN, normalize_into, uri_glob_match};
}
