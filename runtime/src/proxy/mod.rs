//! The enforcing MCP proxy.
//!
//! - [`session`]: transport-independent enforcement (decisions, requests in
//!   flight, counters commit/rollback, `tools/list` filtering, strictness);
//! - [`stdio`]: the stdio transport to a child process;
//! - [`respond`]: denials and JSON-RPC errors;
//! - [`audit`]: the decision log;
//! - [`metrics`]: Prometheus metrics;
//! - [`lines`]: bounded newline framing;
//! - [`log`]: stderr logging.

pub mod audit;
pub mod http;
pub mod lines;
pub mod log;
pub mod metrics;
pub mod respond;
pub mod session;
pub mod stdio;

/// Default limit on one message in either direction (16 MiB).
pub const DEFAULT_MAX_MESSAGE_BYTES: usize = 16 << 20;

/// Environment variables that hold the proxy's own secrets (the Redis DSN,
/// the local endpoint's client token). A server process the proxy starts
/// inherits the proxy's environment (servers take their credentials from
/// it) except these: they are not the server's business.
pub const PROXY_SECRETS: &[&str] = &["PORTCULLIS_STATE_DSN", "PORTCULLIS_CLIENT_TOKEN"];

/// A random 64-bit session id from the OS's randomness (via std's hasher seeds).
pub fn random_session_id() -> u64 {
    use std::hash::{BuildHasher, Hasher};
    let mut h = std::collections::hash_map::RandomState::new().build_hasher();
    h.write_u128(
        std::time::SystemTime::now()
            .duration_since(std::time::UNIX_EPOCH)
            .map_or(0, |d| d.as_nanos()),
    );
    h.write_u32(std::process::id());
    h.finish()
}
