//! Portcullis proxy: enforces compiled policies between an MCP client and
//! an MCP server. The decisions themselves come from `portcullis-core`
//! (generated policies or the reference evaluator); this crate carries them
//! out over real transports and keeps the state they need.
//!
//! - [`session`]: transport-independent enforcement (decisions, requests in
//!   flight, counters commit/rollback, `tools/list` filtering, strictness);
//! - [`stdio`]: the stdio transport to a child process;
//! - [`http`]: Streamable HTTP (upstream client, local endpoint, legacy SSE);
//! - [`jwt`]: bearer JWTs of the local endpoint (JWKS, validation, cache);
//! - [`elicit`]: human approval in band (`elicitation/create`);
//! - [`child`]: starting and stopping server processes (stdio, HTTP, scan);
//! - [`filter`]: `tools/list` answers with hidden tools removed;
//! - [`surfaces`]: resources and prompts (requests decided, lists filtered);
//! - [`symlinks`]: paths and `file://` URIs resolved as the server's
//!   filesystem opens them, for a second decision on their target;
//! - [`results`]: result rules on answers (secrets, sizes);
//! - [`id`]: JSON-RPC request ids as keys of requests in flight;
//! - [`respond`]: denials and JSON-RPC errors;
//! - [`approvals`], [`webhook`], [`admin`]: approval records, their
//!   notifications and the operator's HTTP API;
//! - [`idempotency`]: duplicate calls within a window;
//! - [`state`]: counter stores that persist and are shared (SQLite, Redis);
//! - [`audit`]: the decision log;
//! - [`metrics`]: Prometheus metrics;
//! - [`mpp`]: budgets on paid tools (MPP `-32042` challenges);
//! - [`lines`]: bounded newline framing;
//! - [`log`]: stderr logging.

#![warn(missing_docs)]
// One `unsafe` block, allowed where it stands with its proof: `child::command` (pre_exec).
#![deny(unsafe_code)]

pub mod admin;
pub mod approvals;
pub mod audit;
pub mod child;
pub mod elicit;
pub mod filter;
pub mod http;
pub mod id;
pub mod idempotency;
pub mod jwt;
pub mod lines;
pub mod log;
pub mod metrics;
pub mod mpp;
pub mod respond;
pub mod results;
pub mod session;
pub mod state;
pub mod stdio;
pub mod surfaces;
pub mod symlinks;
pub mod webhook;

/// Default limit on one message in either direction (16 MiB).
pub const DEFAULT_MAX_MESSAGE_BYTES: usize = 16 << 20;

/// Environment variables that hold the proxy's own secrets (the Redis DSN,
/// the local endpoint's client token). A server process the proxy starts
/// inherits the proxy's environment (servers take their credentials from
/// it) except these: they are not the server's business.
pub const PROXY_SECRETS: &[&str] = &["PORTCULLIS_STATE_DSN", "PORTCULLIS_CLIENT_TOKEN"];

/// The MCP protocol revisions the proxy speaks on its HTTP endpoint, newest
/// first: the session-based ones, those of the reference TypeScript SDK
/// (1.32, `SUPPORTED_PROTOCOL_VERSIONS`) behind server-everything. A request
/// of an MCP session whose `MCP-Protocol-Version` header names anything else
/// is refused with 400, as the SDK's server refuses it.
pub const SUPPORTED_PROTOCOL_VERSIONS: &[&str] = &[
    "2025-11-25",
    "2025-06-18",
    "2025-03-26",
    "2024-11-05",
    "2024-10-07",
];

/// A random 64-bit session number from the OS's CSPRNG: it partitions
/// per-session counters and names the session in the audit log. It is not
/// secret (it is written to the log, and a client can neither choose nor
/// present it); what a client presents is the HTTP session id of
/// [`random_http_session_id`].
pub fn random_session_id() -> Result<u64, getrandom::Error> {
    getrandom::u64()
}

/// A new `Mcp-Session-Id` for the local HTTP endpoint: 128 bits from the OS's
/// CSPRNG (the MCP specification asks for a cryptographically secure id),
/// as 32 lowercase hex digits. Whoever knows it can act in that session, so
/// it must be unguessable: no time, pid or counter goes into it. An error
/// (no entropy source) refuses the session rather than minting a weak id.
pub fn random_http_session_id() -> Result<String, getrandom::Error> {
    let mut bytes = [0u8; 16];
    getrandom::fill(&mut bytes)?;
    Ok(bytes.iter().map(|b| format!("{b:02x}")).collect())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn http_session_ids_are_128_random_bits_in_hex() {
        let ids: std::collections::HashSet<String> = (0..1000)
            .map(|_| random_http_session_id().unwrap())
            .collect();
        assert_eq!(ids.len(), 1000, "ids repeat");
        for id in &ids {
            assert_eq!(id.len(), 32, "{id}");
            assert!(
                id.bytes()
                    .all(|b| b.is_ascii_digit() || (b'a'..=b'f').contains(&b)),
                "{id}"
            );
        }
        // Every bit position takes both values: no fixed or derived bits
        // (in 1000 uniform ids, a given bit is constant with chance 2^-999).
        let (mut ones, mut zeros) = (0u128, 0u128);
        for id in &ids {
            let v = u128::from_str_radix(id, 16).unwrap();
            ones |= v;
            zeros |= !v;
        }
        assert_eq!((ones, zeros), (u128::MAX, u128::MAX));
    }
}
