//! MCP over HTTP: the Streamable HTTP client of an upstream server (and the
//! legacy HTTP+SSE one), the stdio-to-HTTP transport (`--upstream URL`), and
//! the local Streamable HTTP endpoint (`--transport http`).

pub mod relay;
pub mod resume;
pub mod server;
pub mod sse;
pub mod stdio_client;
pub mod upstream;
