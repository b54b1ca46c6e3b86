//! MCP over HTTP: the Streamable HTTP client of an upstream server (and the
//! legacy HTTP+SSE one), the stdio-to-HTTP transport (`--upstream URL`), and
//! the local Streamable HTTP endpoint (`--transport http`).

pub mod relay;
pub mod resume;
pub mod server;
pub mod sse;
pub mod stdio_client;
pub mod upstream;

/// Locks `m`, also after a panic elsewhere: every critical section of the
/// HTTP transports leaves its state consistent, so a poisoned lock is usable.
fn lock<T>(m: &std::sync::Mutex<T>) -> std::sync::MutexGuard<'_, T> {
    m.lock().unwrap_or_else(|e| e.into_inner())
}
