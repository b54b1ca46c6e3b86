//! `portcullis --transport http`: a local Streamable HTTP endpoint at `/mcp`
//! (POST, GET, DELETE) in front of an HTTP upstream or a command.
//!
//! Every MCP session of a client is its own enforcing [`Session`] (its own
//! `per session` counters; global counters are shared) and its own upstream:
//! a session with the HTTP upstream, or a child process of its own for a
//! command (a stdio MCP server serves exactly one session, and sessions must
//! not see each other's state). The session id the client gets is minted
//! here (128 random bits), never the upstream's.
//!
//! Messages from a Streamable HTTP upstream keep their stream: what arrives
//! on the answer to a POST goes to the client's POST, what arrives on the
//! upstream's GET stream to the client's GET stream. A child (or a legacy
//! HTTP+SSE upstream) has one ordered output, so its messages are routed:
//! an answer to the POST of its request, a progress notification to the POST
//! that carried its token, anything else (server requests, logging) to the
//! client's GET stream if open, else to a POST stream still open.

// `Err(Response)` is the answer to give: built once per refused request, not worth boxing.
#![allow(clippy::result_large_err)]

mod auth;
mod body;
mod command;
mod exchange;
mod oauth;
mod router;
mod routes;
mod sessions;

pub use auth::{BearerToken, ClientToken, origin_allowed};
pub use oauth::OAuth;

use std::collections::HashMap;
use std::convert::Infallible;
use std::ffi::OsString;
use std::net::SocketAddr;
use std::sync::{Arc, Mutex};
use std::time::Duration;

use tokio::time::Instant;

use crate::http::lock;
use crate::http::stdio_client::UpstreamOptions;
use crate::http::upstream::{self, HttpClient};
use crate::log::Log;
use crate::session::Session;
use sessions::Down;

/// What serves the sessions.
#[derive(Debug, Clone)]
pub enum Backend {
    /// A remote server (Streamable HTTP, or legacy HTTP+SSE).
    Url(UpstreamOptions),
    /// A stdio MCP server, one process per session.
    Command(Vec<OsString>),
}

/// How the endpoint runs.
#[derive(Debug, Clone)]
pub struct ServerOptions {
    /// Where to listen.
    pub addr: SocketAddr,
    /// The upstream.
    pub backend: Backend,
    /// Largest request body (and message either way), in bytes.
    pub max_message_bytes: usize,
    /// Answer (and roll back) a request not answered in this time.
    pub request_timeout: Option<Duration>,
    /// A session's child gets this long to exit after its stdin closes.
    pub grace: Duration,
    /// Origins allowed besides loopback ones (`scheme://host[:port]`).
    pub allowed_origins: Vec<String>,
    /// Most concurrent MCP sessions.
    pub max_sessions: usize,
    /// A session without any request for this long is ended.
    pub idle_timeout: Duration,
    /// The secret every request must carry as `Authorization: Bearer`;
    /// None: clients are not authenticated.
    pub client_token: Option<ClientToken>,
    /// Bearer JWTs (`--jwks-file`/`--jwks-url`): the endpoint is an OAuth
    /// resource server; None: no tokens are validated.
    pub oauth: Option<OAuth>,
}

/// Makes the enforcing session for a new MCP session (its `per session` id).
pub type SessionFactory = Box<dyn Fn(u64) -> Session + Send + Sync>;

/// The endpoint's state.
struct Server {
    opts: ServerOptions,
    factory: SessionFactory,
    client: Option<HttpClient>,
    sessions: Mutex<HashMap<String, Arc<Down>>>,
    log: Log,
    /// Loopback bind: the Host header must name loopback too (DNS rebinding).
    loopback: bool,
    /// Requests refused for a missing or wrong client token, not yet logged.
    unauthorized: std::sync::atomic::AtomicU64,
    /// When a refusal was last logged.
    unauthorized_logged: Mutex<Option<Instant>>,
}

/// Runs the endpoint until SIGINT or SIGTERM; returns the exit code.
pub async fn run(opts: ServerOptions, factory: SessionFactory, log: Log) -> std::io::Result<i32> {
    let listener = tokio::net::TcpListener::bind(opts.addr)
        .await
        .map_err(|e| {
            std::io::Error::new(e.kind(), format!("cannot listen on {}: {e}", opts.addr))
        })?;
    let local = listener.local_addr()?;
    let client = match &opts.backend {
        Backend::Url(u) => Some(upstream::client(u.connect_timeout)),
        Backend::Command(_) => None,
    };
    let loopback = local.ip().is_loopback();
    let mut opts = opts;
    if let Some(o) = &mut opts.oauth {
        o.resolve(local);
    }
    let server = Arc::new(Server {
        opts,
        factory,
        client,
        sessions: Mutex::new(HashMap::new()),
        log,
        loopback,
        unauthorized: std::sync::atomic::AtomicU64::new(0),
        unauthorized_logged: Mutex::new(None),
    });
    let host = match local {
        SocketAddr::V6(a) => format!("[{}]:{}", a.ip(), a.port()),
        SocketAddr::V4(a) => a.to_string(),
    };
    // Always printed: clients need the URL (with --port 0 the port is only known now).
    eprintln!("portcullis: listening on http://{host}/mcp");
    if let Some(o) = &server.opts.oauth {
        log.info(format_args!(
            "bearer tokens required: resource {}, metadata at {}",
            o.resource,
            o.metadata_url()
        ));
    }
    match &server.opts.backend {
        Backend::Url(u) => log.info(format_args!(
            "serving MCP sessions from {} ({})",
            u.url,
            if u.legacy {
                "legacy HTTP+SSE"
            } else {
                "Streamable HTTP"
            }
        )),
        Backend::Command(c) => log.info(format_args!(
            "serving each MCP session with its own `{}` process",
            c[0].to_string_lossy()
        )),
    }

    let sweeper = {
        let server = server.clone();
        tokio::spawn(async move {
            let mut tick = tokio::time::interval(Duration::from_millis(250));
            loop {
                tick.tick().await;
                server.sweep().await;
            }
        })
    };

    let mut sigint = tokio::signal::unix::signal(tokio::signal::unix::SignalKind::interrupt())?;
    let mut sigterm = tokio::signal::unix::signal(tokio::signal::unix::SignalKind::terminate())?;
    loop {
        tokio::select! {
            _ = sigint.recv() => break,
            _ = sigterm.recv() => break,
            conn = listener.accept() => {
                let (stream, _) = match conn {
                    Ok(c) => c,
                    Err(e) => {
                        log.warn(format_args!("accept failed: {e}"));
                        tokio::time::sleep(Duration::from_millis(50)).await;
                        continue;
                    }
                };
                let _ = stream.set_nodelay(true);
                let server = server.clone();
                tokio::spawn(async move {
                    let service = hyper::service::service_fn(move |req| {
                        let server = server.clone();
                        async move { Ok::<_, Infallible>(server.handle(req).await) }
                    });
                    let _ = hyper::server::conn::http1::Builder::new()
                        .serve_connection(hyper_util::rt::TokioIo::new(stream), service)
                        .await;
                });
            }
        }
    }
    log.info(format_args!("shutting down: ending every session"));
    sweeper.abort();
    let all: Vec<Arc<Down>> = lock(&server.sessions).drain().map(|(_, d)| d).collect();
    let ends = all.into_iter().map(|d| {
        let server = server.clone();
        async move { server.end(&d, "the proxy is shutting down").await }
    });
    let _ = tokio::time::timeout(
        server.opts.grace + Duration::from_secs(6),
        futures_join_all(ends),
    )
    .await;
    Ok(0)
}

/// Awaits every future (a tiny join_all without the futures crate).
async fn futures_join_all<F: std::future::Future<Output = ()> + Send + 'static>(
    fs: impl Iterator<Item = F>,
) {
    let mut set = tokio::task::JoinSet::new();
    for f in fs {
        set.spawn(f);
    }
    while set.join_next().await.is_some() {}
}
