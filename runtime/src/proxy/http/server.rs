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

use std::collections::HashMap;
use std::convert::Infallible;
use std::ffi::OsString;
use std::net::SocketAddr;
use std::pin::Pin;
use std::sync::{Arc, Mutex};
use std::task::{Context, Poll};
use std::time::Duration;

use bytes::Bytes;
use http_body_util::combinators::BoxBody;
use http_body_util::{BodyExt, Full};
use hyper::body::{Frame, Incoming};
use hyper::header::{HeaderName, HeaderValue};
use hyper::{Method, Request, Response, StatusCode};
use nix::sys::signal::Signal;
use tokio::io::{AsyncWriteExt, BufReader, BufWriter};
use tokio::sync::mpsc;
use tokio::time::Instant;

use super::lock;
use super::relay::{Link, Sent, Sink};
use super::resume::{NotResumable, Streams};
use super::sse;
use super::stdio_client::UpstreamOptions;
use super::upstream::{self, Answer, Failure, HttpClient};
use crate::json::{Val, Value};
use crate::jsonrpc::{Envelope, INTERNAL_ERROR, INVALID_REQUEST};
use crate::proxy::SUPPORTED_PROTOCOL_VERSIONS;
use crate::proxy::child;
use crate::proxy::lines::{Line, LineReader};
use crate::proxy::log::Log;
use crate::proxy::respond;
use crate::proxy::session::{IdKey, Session, UPSTREAM_GONE};

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
}

/// The secret clients of the endpoint present. Only its SHA-256 is kept;
/// a presented token is hashed and the digests compared in constant time,
/// so neither the comparison's duration nor the token's length tells an
/// attacker anything.
#[derive(Clone)]
pub struct ClientToken([u8; 32]);

impl std::fmt::Debug for ClientToken {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("ClientToken(<hidden>)")
    }
}

impl ClientToken {
    /// Shortest secret accepted.
    pub const MIN_LEN: usize = 16;

    /// A token from its secret (surrounding whitespace removed). Err: the
    /// secret is too short or holds characters a header cannot carry.
    pub fn new(secret: &str) -> Result<ClientToken, String> {
        let secret = secret.trim();
        if secret.len() < Self::MIN_LEN {
            return Err(format!(
                "the client token must be at least {} characters long (it has {})",
                Self::MIN_LEN,
                secret.len()
            ));
        }
        if !secret.bytes().all(|b| b.is_ascii_graphic()) {
            return Err(
                "the client token must be printable ASCII without spaces (it travels in an HTTP header)"
                    .into(),
            );
        }
        Ok(ClientToken(Self::digest(secret.as_bytes())))
    }

    fn digest(bytes: &[u8]) -> [u8; 32] {
        use sha2::Digest;
        sha2::Sha256::digest(bytes).into()
    }

    /// True when `authorization` (the header's value) is `Bearer <this token>`.
    pub fn accepts(&self, authorization: Option<&[u8]>) -> bool {
        let Some(value) = authorization else {
            return false;
        };
        // The scheme is case-insensitive (RFC 9110 §11.1); one space follows it.
        let Some(presented) = value
            .get(..7)
            .filter(|scheme| scheme.eq_ignore_ascii_case(b"bearer "))
            .map(|_| &value[7..])
        else {
            return false;
        };
        let digest = Self::digest(presented);
        // Constant time: every byte is compared whatever the first difference.
        digest
            .iter()
            .zip(self.0.iter())
            .fold(0u8, |acc, (a, b)| acc | (a ^ b))
            == 0
    }
}

/// Makes the enforcing session for a new MCP session (its `per session` id).
pub type SessionFactory = Box<dyn Fn(u64) -> Session + Send + Sync>;

type Body = BoxBody<Bytes, Infallible>;

const MCP_SESSION_ID: HeaderName = HeaderName::from_static("mcp-session-id");
const MCP_PROTOCOL_VERSION: HeaderName = HeaderName::from_static("mcp-protocol-version");
const LAST_EVENT_ID: HeaderName = HeaderName::from_static("last-event-id");

/// JSON-RPC's implementation-defined server error: the code the SDK's server
/// gives a refused `MCP-Protocol-Version`.
const SERVER_ERROR: i32 = -32000;

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

/// Refusals for a missing or wrong client token are logged at most this often.
const UNAUTHORIZED_LOG_EVERY: Duration = Duration::from_secs(10);

/// One client MCP session.
struct Down {
    id: String,
    session: Arc<Session>,
    up: Up,
    /// The client's GET stream, if open.
    get: Mutex<Option<Sink>>,
    /// The task relaying the upstream's GET stream to it (HTTP upstreams).
    get_pump: Mutex<Option<tokio::task::JoinHandle<()>>>,
    /// Tasks relaying answers to POST streams (HTTP upstreams): ended with the session.
    relays: Mutex<Vec<tokio::task::AbortHandle>>,
    /// The POST streams, kept for `Last-Event-ID`.
    streams: Arc<Streams>,
    last_seen: Mutex<Instant>,
}

enum Up {
    /// Streamable HTTP: answers keep their stream.
    Http(Link),
    /// One ordered output, routed.
    Routed { router: Arc<Router>, to: To },
}

enum To {
    Legacy(Link, tokio::task::JoinHandle<()>),
    Child(ChildHandle),
}

struct ChildHandle {
    /// Lines for the child's stdin; None once closed.
    stdin: Mutex<Option<mpsc::Sender<Bytes>>>,
    /// Tells the supervisor to stop the child.
    stop: Mutex<Option<tokio::sync::oneshot::Sender<()>>>,
    /// Completes when the child has exited.
    exited: tokio::sync::watch::Receiver<bool>,
}

impl Down {
    fn touch(&self) {
        *lock(&self.last_seen) = Instant::now();
    }

    /// Relays an upstream answer to a client stream, as a task of this session.
    fn relay(&self, link: &Link, answer: Answer, sent: &Sent, sink: &Sink) {
        let (link, sink, sent) = (link.clone(), sink.clone(), sent.clone());
        let task = tokio::spawn(async move { link.relay(answer, &sent, &sink).await });
        let mut relays = lock(&self.relays);
        relays.retain(|h| !h.is_finished());
        relays.push(task.abort_handle());
    }
}

// ---------------------------------------------------------------- routing

/// Routes the messages of a single ordered upstream output to the client's streams.
#[derive(Default)]
struct Router {
    inner: Mutex<Routes>,
}

#[derive(Default)]
struct Routes {
    /// Requests waiting for their answer: the POST stream it goes to
    /// (and whether a client reads that stream now), and its progress token.
    by_id: HashMap<IdKey, (Sink, Attached, Option<IdKey>)>,
    /// Progress tokens of requests in flight.
    by_token: HashMap<IdKey, Sink>,
    /// The client's GET stream.
    get: Option<Sink>,
    /// Server messages no open stream could carry yet (for the next one that opens).
    queued: std::collections::VecDeque<Bytes>,
}

/// Whether a client reads a POST stream now (kept by its [`Streams`] pump).
type Attached = Arc<std::sync::atomic::AtomicBool>;

/// How a POST holding requests is answered.
#[derive(Debug, Clone, Copy)]
struct Reply {
    /// The client accepts an SSE stream (else: JSON).
    sse: bool,
    /// Its protocol version (2025-11-25 or later) takes a priming event.
    prime: bool,
}

/// Server messages kept for the next client stream, at most.
const MAX_QUEUED: usize = 1024;

fn key(raw: &[u8]) -> Option<IdKey> {
    crate::json::validate(raw, crate::json::Strictness::LENIENT).ok()?;
    IdKey::of(Value::from_validated(raw))
}

impl Router {
    /// A request goes out: its answer (and progress) will go to `sink`.
    /// Returns the queued server messages, which now have a stream.
    fn expect(&self, sent: &Sent, sink: &Sink, attached: &Attached) -> Vec<Bytes> {
        let Some(id) = sent.raw_id.as_deref().and_then(key) else {
            return Vec::new();
        };
        let token = sent.progress_token.as_deref().and_then(key);
        let mut r = lock(&self.inner);
        if let Some(t) = &token {
            r.by_token.insert(t.clone(), sink.clone());
        }
        r.by_id.insert(id, (sink.clone(), attached.clone(), token));
        // Queued server messages go to a stream a client reads, not to a
        // JSON-only answer (which keeps answers only).
        if attached.load(std::sync::atomic::Ordering::Relaxed) {
            r.queued.drain(..).collect()
        } else {
            Vec::new()
        }
    }

    /// The client cancelled a request: it expects no answer, its stream can end.
    fn forget(&self, raw_id: &[u8]) {
        let Some(id) = key(raw_id) else { return };
        let mut r = lock(&self.inner);
        if let Some((_, _, Some(t))) = r.by_id.remove(&id) {
            r.by_token.remove(&t);
        }
    }

    /// The client's GET stream opened (or closed); returns the queued messages.
    fn set_get(&self, sink: Option<Sink>) -> Vec<Bytes> {
        let mut r = lock(&self.inner);
        r.get = sink;
        if r.get.is_some() {
            r.queued.drain(..).collect()
        } else {
            Vec::new()
        }
    }

    /// Where one message goes.
    fn target(&self, msg: &[u8]) -> Option<Sink> {
        let env = Envelope::parse_lenient(msg).ok();
        let mut r = lock(&self.inner);
        if let Some(env) = env {
            if env.method.is_none() {
                if let Some(id) = env.id.and_then(IdKey::of)
                    && let Some((sink, _, token)) = r.by_id.remove(&id)
                {
                    if let Some(t) = token {
                        r.by_token.remove(&t);
                    }
                    return Some(sink);
                }
            } else if env.method_is("notifications/progress")
                && let Some(Val::Object(p)) = env.params.map(|p| p.val())
                && let Some(t) = p.get("progressToken").and_then(IdKey::of)
                && let Some(sink) = r.by_token.get(&t)
                && !sink.is_closed()
            {
                return Some(sink.clone());
            }
        }
        if let Some(g) = r.get.as_ref().filter(|g| !g.is_closed()) {
            return Some(g.clone());
        }
        // A POST stream still open that a client reads (a stream whose client
        // left is still recorded for its return, but this message is not its
        // business: it waits for the next stream instead).
        r.by_id
            .values()
            .find(|(s, a, _)| !s.is_closed() && a.load(std::sync::atomic::Ordering::Relaxed))
            .map(|(s, _, _)| s.clone())
    }

    async fn route(&self, msg: Bytes, log: Log) {
        match self.target(&msg) {
            Some(sink) => {
                let _ = sink.send(msg).await;
            }
            None => {
                let mut r = lock(&self.inner);
                if r.queued.len() < MAX_QUEUED {
                    r.queued.push_back(msg);
                } else {
                    log.warn(format_args!(
                        "dropped a server message: no client stream has been open to carry it (GET the endpoint to receive server messages)"
                    ));
                }
            }
        }
    }
}

/// A channel of routed messages and the task that routes them.
fn router_input(router: Arc<Router>, log: Log) -> Sink {
    let (tx, mut rx) = mpsc::channel::<Bytes>(256);
    tokio::spawn(async move {
        while let Some(m) = rx.recv().await {
            router.route(m, log).await;
        }
    });
    tx
}

// ---------------------------------------------------------------- bodies

/// An SSE response body fed by a channel of messages.
struct EventBody {
    rx: mpsc::Receiver<Bytes>,
    /// The messages are SSE events already (with ids, from [`Streams`]).
    framed: bool,
}

impl hyper::body::Body for EventBody {
    type Data = Bytes;
    type Error = Infallible;

    fn poll_frame(
        mut self: Pin<&mut Self>,
        cx: &mut Context<'_>,
    ) -> Poll<Option<Result<Frame<Bytes>, Infallible>>> {
        let framed = self.framed;
        self.rx
            .poll_recv(cx)
            .map(|m| m.map(|m| Ok(Frame::data(if framed { m } else { sse::frame(&m) }))))
    }
}

fn full(b: impl Into<Bytes>) -> Body {
    Full::new(b.into()).boxed()
}

fn empty(status: StatusCode) -> Response<Body> {
    let mut r = Response::new(full(Bytes::new()));
    *r.status_mut() = status;
    r
}

/// An HTTP error with a JSON-RPC error body (what the SDK servers send).
fn http_error(status: StatusCode, code: i32, message: &str) -> Response<Body> {
    let mut r = Response::new(full(respond::error(None, code, message)));
    *r.status_mut() = status;
    r.headers_mut().insert(
        hyper::header::CONTENT_TYPE,
        HeaderValue::from_static("application/json"),
    );
    r
}

fn json_response(body: Vec<u8>) -> Response<Body> {
    let mut r = Response::new(full(body));
    r.headers_mut().insert(
        hyper::header::CONTENT_TYPE,
        HeaderValue::from_static("application/json"),
    );
    r
}

/// An SSE response of `rx`'s messages (`framed`: they are events already).
fn event_stream(rx: mpsc::Receiver<Bytes>, framed: bool) -> Response<Body> {
    let mut r = Response::new(EventBody { rx, framed }.boxed());
    let h = r.headers_mut();
    h.insert(
        hyper::header::CONTENT_TYPE,
        HeaderValue::from_static("text/event-stream"),
    );
    h.insert(
        hyper::header::CACHE_CONTROL,
        HeaderValue::from_static("no-cache, no-transform"),
    );
    h.insert(
        HeaderName::from_static("x-accel-buffering"),
        HeaderValue::from_static("no"),
    );
    r
}

// ---------------------------------------------------------------- checks

/// True for an `Origin` the endpoint accepts: a loopback host (any scheme
/// and port) or one of `allowed` exactly. `null` and anything else are refused.
pub fn origin_allowed(origin: &str, allowed: &[String]) -> bool {
    if allowed.iter().any(|a| a.eq_ignore_ascii_case(origin)) {
        return true;
    }
    let Some((scheme, rest)) = origin.split_once("://") else {
        return false;
    };
    if !matches!(scheme, "http" | "https") || rest.contains('/') {
        return false;
    }
    is_loopback_host(rest)
}

/// `host[:port]` names the loopback interface.
fn is_loopback_host(authority: &str) -> bool {
    let host = if let Some(v6) = authority.strip_prefix('[') {
        match v6.split_once(']') {
            Some((h, rest)) if rest.is_empty() || rest.starts_with(':') => h,
            _ => return false,
        }
    } else {
        authority.rsplit_once(':').map_or(authority, |(h, _)| h)
    };
    let host = host.to_ascii_lowercase();
    host == "localhost"
        || host.ends_with(".localhost")
        || host
            .parse::<std::net::IpAddr>()
            .is_ok_and(|ip| ip.is_loopback())
}

fn header<'a>(req: &'a Request<Incoming>, name: &HeaderName) -> Option<&'a str> {
    req.headers().get(name).and_then(|v| v.to_str().ok())
}

/// A protocol version (`YYYY-MM-DD`) of 2025-11-25 or later, whose clients
/// take an SSE event with empty data (a priming event).
fn takes_priming_event(version: &str) -> bool {
    let b = version.as_bytes();
    let is_date = b.len() == 10
        && b.iter().enumerate().all(|(i, c)| match i {
            4 | 7 => *c == b'-',
            _ => c.is_ascii_digit(),
        });
    is_date && version >= "2025-11-25"
}

fn accepts_sse(req: &Request<Incoming>) -> bool {
    match header(req, &hyper::header::ACCEPT) {
        None => true,
        Some(a) => a.split(',').any(|t| {
            let t = t.split(';').next().unwrap_or("").trim();
            t == "text/event-stream" || t == "*/*" || t == "text/*"
        }),
    }
}

// ---------------------------------------------------------------- the server

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

impl Server {
    async fn handle(self: &Arc<Self>, req: Request<Incoming>) -> Response<Body> {
        if req.uri().path() != "/mcp" {
            return http_error(
                StatusCode::NOT_FOUND,
                INVALID_REQUEST,
                "Not Found: the MCP endpoint is /mcp",
            );
        }
        if let Some(origin) = req.headers().get(hyper::header::ORIGIN) {
            let ok = origin
                .to_str()
                .is_ok_and(|o| origin_allowed(o, &self.opts.allowed_origins));
            if !ok {
                self.log.warn(format_args!(
                    "refused a request from origin {origin:?} (403); allow it with --allow-origin"
                ));
                return http_error(
                    StatusCode::FORBIDDEN,
                    INVALID_REQUEST,
                    "Forbidden: origin not allowed",
                );
            }
        }
        if self.loopback
            && let Some(host) = header(&req, &hyper::header::HOST)
            && !is_loopback_host(host)
        {
            return http_error(
                StatusCode::FORBIDDEN,
                INVALID_REQUEST,
                "Forbidden: the Host header does not name this loopback endpoint",
            );
        }
        if let Some(token) = &self.opts.client_token {
            let authorization = req
                .headers()
                .get(hyper::header::AUTHORIZATION)
                .map(HeaderValue::as_bytes);
            if !token.accepts(authorization) {
                // Anyone who reaches the port can send these: log a count,
                // at most every UNAUTHORIZED_LOG_EVERY, not a line each.
                self.unauthorized
                    .fetch_add(1, std::sync::atomic::Ordering::Relaxed);
                self.log_unauthorized(Some(if authorization.is_some() {
                    "wrong token"
                } else {
                    "no Authorization header"
                }));
                let mut r = http_error(
                    StatusCode::UNAUTHORIZED,
                    INVALID_REQUEST,
                    "Unauthorized: send Authorization: Bearer <the proxy's client token>",
                );
                r.headers_mut().insert(
                    hyper::header::WWW_AUTHENTICATE,
                    HeaderValue::from_static("Bearer realm=\"portcullis\""),
                );
                return r;
            }
        }
        // The version rides on every request of a session (the one that
        // `initialize` negotiated in its body). `initialize` itself is not
        // held to its header, as the SDK's server does not hold it.
        if req.headers().contains_key(&MCP_SESSION_ID)
            && let Err(r) = check_protocol_version(&req)
        {
            return r;
        }
        match *req.method() {
            Method::POST => self.post(req).await,
            Method::GET => self.get(req).await,
            Method::DELETE => self.delete(req).await,
            _ => {
                let mut r = http_error(
                    StatusCode::METHOD_NOT_ALLOWED,
                    INVALID_REQUEST,
                    "Method Not Allowed: use POST, GET or DELETE",
                );
                r.headers_mut().insert(
                    hyper::header::ALLOW,
                    HeaderValue::from_static("GET, POST, DELETE"),
                );
                r
            }
        }
    }

    /// The session a request names: Err is the response to give.
    fn session_of(&self, req: &Request<Incoming>) -> Result<Arc<Down>, Response<Body>> {
        let Some(id) = header(req, &MCP_SESSION_ID) else {
            return Err(http_error(
                StatusCode::BAD_REQUEST,
                INVALID_REQUEST,
                "Bad Request: Mcp-Session-Id header is required",
            ));
        };
        match lock(&self.sessions).get(id) {
            Some(d) => {
                d.touch();
                Ok(d.clone())
            }
            None => Err(http_error(
                StatusCode::NOT_FOUND,
                UPSTREAM_GONE,
                "Session not found: initialize a new session",
            )),
        }
    }

    async fn read_body(&self, body: Incoming) -> Result<Bytes, Response<Body>> {
        let max = self.opts.max_message_bytes;
        let too_big = || {
            http_error(
                StatusCode::PAYLOAD_TOO_LARGE,
                INVALID_REQUEST,
                &format!("Payload Too Large: the limit is {max} bytes (--max-message-size)"),
            )
        };
        let mut body = body;
        let mut out = Vec::new();
        while let Some(frame) = body.frame().await {
            let Ok(frame) = frame else {
                return Err(http_error(
                    StatusCode::BAD_REQUEST,
                    INVALID_REQUEST,
                    "Bad Request: body read failed",
                ));
            };
            if let Ok(d) = frame.into_data() {
                if out.len() + d.len() > max {
                    return Err(too_big());
                }
                out.extend_from_slice(&d);
            }
        }
        Ok(Bytes::from(out))
    }

    async fn post(self: &Arc<Self>, req: Request<Incoming>) -> Response<Body> {
        let max = self.opts.max_message_bytes as u64;
        if req
            .headers()
            .get(hyper::header::CONTENT_LENGTH)
            .and_then(|v| v.to_str().ok()?.parse::<u64>().ok())
            .is_some_and(|n| n > max)
        {
            return http_error(
                StatusCode::PAYLOAD_TOO_LARGE,
                INVALID_REQUEST,
                &format!("Payload Too Large: the limit is {max} bytes (--max-message-size)"),
            );
        }
        if let Some(ct) = header(&req, &hyper::header::CONTENT_TYPE) {
            let t = ct.split(';').next().unwrap_or("").trim();
            if !t.eq_ignore_ascii_case("application/json") {
                return http_error(
                    StatusCode::UNSUPPORTED_MEDIA_TYPE,
                    INVALID_REQUEST,
                    "Unsupported Media Type: Content-Type must be application/json",
                );
            }
        }
        let reply = Reply {
            sse: accepts_sse(&req),
            prime: header(&req, &MCP_PROTOCOL_VERSION).is_some_and(takes_priming_event),
        };
        let named = header(&req, &MCP_SESSION_ID).is_some();
        let existing = if named {
            match self.session_of(&req) {
                Ok(d) => Some(d),
                Err(r) => return r,
            }
        } else {
            None
        };
        let body = match self.read_body(req.into_body()).await {
            Ok(b) => b,
            Err(r) => return r,
        };
        let (down, created) = match existing {
            Some(d) => (d, false),
            None => {
                let first = Sent::of(&body);
                if !first.initialize {
                    return http_error(
                        StatusCode::BAD_REQUEST,
                        INVALID_REQUEST,
                        "Bad Request: Mcp-Session-Id header is required (only initialize starts a session)",
                    );
                }
                match self.open(&body, &first).await {
                    Ok(d) => (d, true),
                    Err(r) => return r,
                }
            }
        };
        let mut resp = self.exchange(&down, body, reply).await;
        if created {
            if resp.status().is_success() {
                if let Ok(v) = HeaderValue::from_str(&down.id) {
                    resp.headers_mut().insert(MCP_SESSION_ID, v);
                }
            } else {
                self.remove(&down.id);
                self.end(&down, "initialize failed").await;
            }
        }
        resp
    }

    /// Starts a session's upstream.
    async fn open(
        self: &Arc<Self>,
        body: &[u8],
        first: &Sent,
    ) -> Result<Arc<Down>, Response<Body>> {
        if lock(&self.sessions).len() >= self.opts.max_sessions {
            self.log.warn(format_args!(
                "refused a new session: {} sessions are open (the limit)",
                self.opts.max_sessions
            ));
            return Err(http_error(
                StatusCode::SERVICE_UNAVAILABLE,
                UPSTREAM_GONE,
                "Service Unavailable: too many MCP sessions are open",
            ));
        }
        let _ = body;
        let (session_no, id) = match (
            crate::proxy::random_session_id(),
            crate::proxy::random_http_session_id(),
        ) {
            (Ok(n), Ok(id)) => (n, id),
            (Err(e), _) | (_, Err(e)) => {
                self.log.warn(format_args!(
                    "refused a new session: no random session id ({e})"
                ));
                return Err(http_error(
                    StatusCode::INTERNAL_SERVER_ERROR,
                    INTERNAL_ERROR,
                    "Internal Server Error: cannot make a session id",
                ));
            }
        };
        let session = Arc::new((self.factory)(session_no));
        let fail = |why: String| {
            self.log.warn(format_args!("cannot start a session: {why}"));
            let id = first.raw_id.as_deref();
            json_response(respond::error(id, UPSTREAM_GONE, &why))
        };
        let up = match &self.opts.backend {
            Backend::Url(u) => {
                let client = self.client.clone().expect("a client for URL upstreams");
                let link = Link {
                    session: session.clone(),
                    up: Arc::new(u.upstream(client)),
                    log: self.log,
                    request_timeout: self.opts.request_timeout,
                };
                if u.legacy {
                    let router = Arc::new(Router::default());
                    let mut stream = match link.up.connect_legacy().await {
                        Ok(s) => s,
                        Err(f) => return Err(fail(f.describe(link.up.url()))),
                    };
                    let input = router_input(router.clone(), self.log);
                    let l = link.clone();
                    let pump = tokio::spawn(async move {
                        let (mut last, mut retry) = (None, Duration::ZERO);
                        l.pump(&mut stream, None, &input, &mut last, &mut retry)
                            .await;
                        for e in l.session.upstream_gone(
                            "the upstream MCP server closed its SSE stream before answering",
                        ) {
                            let _ = input.send(Bytes::from(e)).await;
                        }
                    });
                    Up::Routed {
                        router,
                        to: To::Legacy(link, pump),
                    }
                } else {
                    Up::Http(link)
                }
            }
            Backend::Command(cmd) => {
                let router = Arc::new(Router::default());
                match self.spawn_child(cmd, session.clone(), router.clone(), id.clone()) {
                    Ok(h) => Up::Routed {
                        router,
                        to: To::Child(h),
                    },
                    Err(e) => return Err(fail(e)),
                }
            }
        };
        let down = Arc::new(Down {
            id: id.clone(),
            session,
            up,
            get: Mutex::new(None),
            get_pump: Mutex::new(None),
            relays: Mutex::new(Vec::new()),
            streams: Arc::new(Streams::default()),
            last_seen: Mutex::new(Instant::now()),
        });
        lock(&self.sessions).insert(id.clone(), down.clone());
        self.log.info(format_args!("session {} opened", &id[..8]));
        Ok(down)
    }

    /// One POSTed body of an existing (or just created) session.
    async fn exchange(
        self: &Arc<Self>,
        down: &Arc<Down>,
        body: Bytes,
        reply: Reply,
    ) -> Response<Body> {
        // A decision that would wait on the counter store (SQLite's lock held
        // elsewhere, Redis) runs on a blocking thread; this request's task
        // waits, the others go on.
        let out = match down.session.from_client_now(&body) {
            Some(out) => out,
            None => {
                down.session
                    .clone()
                    .from_client_blocking(body.to_vec())
                    .await
            }
        };
        let msgs: Vec<(Bytes, Sent)> = out
            .forward
            .iter()
            .map(|f| {
                let b = Bytes::copy_from_slice(f);
                let s = Sent::of(&b);
                (b, s)
            })
            .collect();
        let replies = out.reply;
        let requests = msgs.iter().filter(|(_, s)| s.raw_id.is_some()).count();
        let (sink, rx) = mpsc::channel::<Bytes>(64.max(replies.len() + 1));
        // Set before the requests go out: a server request the upstream sends
        // at once may be routed to this stream (a JSON-only client's is never
        // chosen: it would drop anything but answers).
        let attached = Attached::new(std::sync::atomic::AtomicBool::new(reply.sse));
        if requests == 0 {
            // Notifications and responses: delivered before the 202, in order.
            for (m, s) in msgs {
                if let Err(r) = self.deliver(down, m, &s, &sink, &attached).await {
                    return r;
                }
            }
            drop(sink);
            let mut rx = rx;
            let mut answers = replies;
            while let Ok(m) = rx.try_recv() {
                answers.push(m.to_vec());
            }
            return match answers.len() {
                0 => empty(StatusCode::ACCEPTED),
                1 => json_response(answers.pop().expect("one")),
                _ => json_response(join_array(&answers)),
            };
        }
        // One request to an HTTP upstream that answers with JSON: answer with
        // JSON too (what the client would get directly), without a stream.
        if let (Up::Http(link), true, [(m, sent)]) = (&down.up, replies.is_empty(), msgs.as_slice())
        {
            match link.up.post(m.clone(), sent.initialize).await {
                Ok(Answer::Json(body)) => {
                    let out = down.session.from_server(&body);
                    if out.forward.len() == 1 {
                        let f = &out.forward[0];
                        if sent.initialize
                            && let Some(v) = super::relay::negotiated_version(f)
                        {
                            link.up.set_protocol(&v);
                        }
                        let bytes = f.to_vec();
                        drop(out);
                        if let Some(id) = &sent.raw_id
                            && let Some(err) = down.session.fail_pending(
                                id,
                                UPSTREAM_GONE,
                                "the upstream's JSON answer did not answer the request",
                            )
                        {
                            return json_response(join_array(&[bytes, err]));
                        }
                        return json_response(bytes);
                    }
                    let forwarded: Vec<Bytes> = out
                        .forward
                        .iter()
                        .map(|f| Bytes::copy_from_slice(f))
                        .collect();
                    drop(out);
                    for f in forwarded {
                        let _ = sink.try_send(f);
                    }
                    if let Some(id) = &sent.raw_id
                        && let Some(err) = down.session.fail_pending(
                            id,
                            UPSTREAM_GONE,
                            "the upstream's JSON answer did not answer the request",
                        )
                    {
                        let _ = sink.try_send(Bytes::from(err));
                    }
                }
                Ok(answer) => down.relay(link, answer, sent, &sink),
                Err(Failure::SessionGone) => {
                    self.remove(&down.id);
                    down.session.upstream_gone("the upstream ended the session");
                    return http_error(
                        StatusCode::NOT_FOUND,
                        UPSTREAM_GONE,
                        "Session not found: the upstream MCP server ended the session; initialize a new session",
                    );
                }
                Err(f) => link.failed(sent, &f, &sink).await,
            }
            drop(sink);
            return self.stream_or_json(down, rx, reply, attached).await;
        }
        for r in replies {
            let _ = sink.try_send(Bytes::from(r));
        }
        for (m, s) in msgs {
            if let Err(r) = self.deliver(down, m, &s, &sink, &attached).await {
                return r;
            }
        }
        drop(sink);
        self.stream_or_json(down, rx, reply, attached).await
    }

    /// The answer to a POST of requests: the stream (resumable, see
    /// [`Streams`]), or (for a client that takes JSON only) its answers once
    /// all are in.
    async fn stream_or_json(
        &self,
        down: &Down,
        rx: mpsc::Receiver<Bytes>,
        reply: Reply,
        attached: Attached,
    ) -> Response<Body> {
        if reply.sse {
            return event_stream(down.streams.open(rx, reply.prime, attached), true);
        }
        let mut rx = rx;
        let mut answers = Vec::new();
        while let Some(m) = rx.recv().await {
            let is_answer = Envelope::parse_lenient(&m).is_ok_and(|e| e.method.is_none());
            if is_answer {
                answers.push(m.to_vec());
            } else {
                self.log.debug(format_args!(
                    "dropped a server message for a client that accepts only JSON answers"
                ));
            }
        }
        match answers.len() {
            0 => empty(StatusCode::ACCEPTED),
            1 => json_response(answers.pop().expect("one")),
            _ => json_response(join_array(&answers)),
        }
    }

    /// Sends one message upstream; answers go to `sink`. Err: the response
    /// the client gets instead (the upstream ended the session).
    async fn deliver(
        &self,
        down: &Arc<Down>,
        msg: Bytes,
        sent: &Sent,
        sink: &Sink,
        attached: &Attached,
    ) -> Result<(), Response<Body>> {
        match &down.up {
            Up::Http(link) => match link.up.post(msg, sent.initialize).await {
                Ok(answer) => {
                    if sent.raw_id.is_some() || !matches!(answer, Answer::Accepted) {
                        down.relay(link, answer, sent, sink);
                    }
                    Ok(())
                }
                Err(Failure::SessionGone) => {
                    self.log.warn(format_args!(
                        "session {}: {}",
                        &down.id[..8],
                        Failure::SessionGone.describe(link.up.url())
                    ));
                    self.remove(&down.id);
                    down.session.upstream_gone("the upstream ended the session");
                    Err(http_error(
                        StatusCode::NOT_FOUND,
                        UPSTREAM_GONE,
                        "Session not found: the upstream MCP server ended the session; initialize a new session",
                    ))
                }
                Err(f) => {
                    link.failed(sent, &f, sink).await;
                    Ok(())
                }
            },
            Up::Routed { router, to } => {
                for m in router.expect(sent, sink, attached) {
                    let _ = sink.send(m).await;
                }
                if let Some(c) = &sent.cancels {
                    router.forget(c);
                }
                match to {
                    To::Legacy(link, _) => {
                        if let Err(f) = link.up.post(msg, false).await {
                            router.forget(sent.raw_id.as_deref().unwrap_or_default());
                            link.failed(sent, &f, sink).await;
                        }
                    }
                    To::Child(h) => {
                        let tx = lock(&h.stdin).clone();
                        let ok = match tx {
                            Some(tx) => tx.send(msg).await.is_ok(),
                            None => false,
                        };
                        if !ok && let Some(id) = &sent.raw_id {
                            router.forget(id);
                            if let Some(e) = down.session.fail_pending(
                                id,
                                UPSTREAM_GONE,
                                "the MCP server process of this session has exited",
                            ) {
                                let _ = sink.send(Bytes::from(e)).await;
                            }
                        }
                    }
                }
                Ok(())
            }
        }
    }

    async fn get(self: &Arc<Self>, req: Request<Incoming>) -> Response<Body> {
        if !accepts_sse(&req) {
            return http_error(
                StatusCode::NOT_ACCEPTABLE,
                INVALID_REQUEST,
                "Not Acceptable: the GET stream is text/event-stream",
            );
        }
        let down = match self.session_of(&req) {
            Ok(d) => d,
            Err(r) => return r,
        };
        if let Some(last) = header(&req, &LAST_EVENT_ID) {
            // The rest of a POST stream whose connection broke.
            return match down.streams.resume(last) {
                Ok((body, lost)) => {
                    if lost > 0 {
                        self.log.warn(format_args!(
                            "session {}: resumed after event {last}; {lost} older event(s) were no longer kept",
                            &down.id[..8]
                        ));
                    }
                    event_stream(body, true)
                }
                Err(e) => http_error(
                    StatusCode::BAD_REQUEST,
                    INVALID_REQUEST,
                    match e {
                        NotResumable::Malformed => {
                            "Bad Request: Last-Event-ID is not an event id of this endpoint"
                        }
                        NotResumable::Unknown => {
                            "Bad Request: Last-Event-ID names no stream this session still keeps"
                        }
                    },
                ),
            };
        }
        let (sink, rx) = mpsc::channel::<Bytes>(MAX_QUEUED + 64);
        match &down.up {
            Up::Http(link) => match link.up.get(None).await {
                Ok(Some(mut stream)) => {
                    let link = link.clone();
                    let s = sink.clone();
                    let pump = tokio::spawn(async move {
                        let (mut last, mut retry) = (None, Duration::ZERO);
                        link.pump(&mut stream, None, &s, &mut last, &mut retry)
                            .await;
                    });
                    if let Some(old) = lock(&down.get_pump).replace(pump) {
                        old.abort();
                    }
                }
                Ok(None) => {
                    return http_error(
                        StatusCode::METHOD_NOT_ALLOWED,
                        INVALID_REQUEST,
                        "Method Not Allowed: the upstream offers no GET stream",
                    );
                }
                Err(Failure::SessionGone) => {
                    self.remove(&down.id);
                    return http_error(
                        StatusCode::NOT_FOUND,
                        UPSTREAM_GONE,
                        "Session not found: the upstream ended the session",
                    );
                }
                Err(f) => {
                    return http_error(
                        StatusCode::BAD_GATEWAY,
                        UPSTREAM_GONE,
                        &f.describe(link.up.url()),
                    );
                }
            },
            Up::Routed { router, .. } => {
                for m in router.set_get(Some(sink.clone())) {
                    let _ = sink.try_send(m);
                }
            }
        }
        *lock(&down.get) = Some(sink);
        event_stream(rx, false)
    }

    async fn delete(self: &Arc<Self>, req: Request<Incoming>) -> Response<Body> {
        let down = match self.session_of(&req) {
            Ok(d) => d,
            Err(r) => return r,
        };
        self.remove(&down.id);
        let why = "the client ended the session";
        match &down.up {
            // The upstream session ends before the answer, as if the client talked to it.
            Up::Http(_) => self.end(&down, why).await,
            // A child may take its grace period to exit: that goes on in the background.
            Up::Routed { .. } => {
                let server = self.clone();
                tokio::spawn(async move { server.end(&down, why).await });
            }
        }
        empty(StatusCode::OK)
    }

    fn remove(&self, id: &str) {
        lock(&self.sessions).remove(id);
    }

    /// Ends a session's upstream: DELETE for HTTP, stdin closed then signals for a child.
    async fn end(&self, down: &Down, why: &str) {
        self.log
            .info(format_args!("session {} ended: {why}", &down.id[..8]));
        *lock(&down.get) = None;
        if let Some(pump) = lock(&down.get_pump).take() {
            pump.abort();
        }
        // The client's POST streams end with the session (as they do directly).
        for r in lock(&down.relays).drain(..) {
            r.abort();
        }
        // Nobody will read these answers any more; the counters come back.
        let _ = down.session.upstream_gone(why);
        match &down.up {
            Up::Http(link) => {
                if let Ok(Err(f)) =
                    tokio::time::timeout(Duration::from_secs(5), link.up.delete()).await
                {
                    self.log.debug(format_args!(
                        "ending the upstream session: {}",
                        f.describe(link.up.url())
                    ));
                }
            }
            Up::Routed { router, to } => {
                let _ = router.set_get(None);
                match to {
                    To::Legacy(_, pump) => pump.abort(),
                    To::Child(h) => {
                        lock(&h.stdin).take();
                        if let Some(stop) = lock(&h.stop).take() {
                            let _ = stop.send(());
                        }
                        let mut exited = h.exited.clone();
                        let _ = tokio::time::timeout(
                            self.opts.grace + Duration::from_secs(6),
                            exited.wait_for(|e| *e),
                        )
                        .await;
                    }
                }
            }
        }
    }

    /// Logs the refusals for a missing or wrong client token counted since
    /// the last line, if UNAUTHORIZED_LOG_EVERY has passed (`latest`: what
    /// the latest one lacked; None from the sweep, which flushes a burst
    /// that stopped).
    fn log_unauthorized(&self, latest: Option<&str>) {
        let mut last = lock(&self.unauthorized_logged);
        if last.is_some_and(|t| t.elapsed() < UNAUTHORIZED_LOG_EVERY) {
            return;
        }
        let n = self
            .unauthorized
            .swap(0, std::sync::atomic::Ordering::Relaxed);
        if n == 0 {
            return;
        }
        *last = Some(Instant::now());
        match latest {
            Some(why) => self.log.warn(format_args!(
                "refused {n} request(s) without the right client token (401; the latest: {why})"
            )),
            None => self.log.warn(format_args!(
                "refused {n} more request(s) without the right client token (401)"
            )),
        }
    }

    /// Timeouts of requests to children, and idle sessions.
    async fn sweep(self: &Arc<Self>) {
        if self.opts.client_token.is_some() {
            self.log_unauthorized(None);
        }
        let all: Vec<Arc<Down>> = lock(&self.sessions).values().cloned().collect();
        for d in all {
            if let (
                Some(t),
                Up::Routed {
                    router,
                    to: To::Child(h),
                },
            ) = (self.opts.request_timeout, &d.up)
            {
                let expired = d.session.expire(t);
                for e in expired.to_client {
                    self.log.warn(format_args!(
                        "a request timed out after {t:?}; answered with an error"
                    ));
                    router.route(Bytes::from(e), self.log).await;
                }
                let tx = lock(&h.stdin).clone();
                if let Some(tx) = tx {
                    for c in expired.to_server {
                        let _ = tx.send(Bytes::from(c)).await;
                    }
                }
            }
            let idle = lock(&d.last_seen).elapsed();
            let streaming = lock(&d.get).as_ref().is_some_and(|g| !g.is_closed());
            if idle > self.opts.idle_timeout && !streaming && d.session.in_flight() == 0 {
                self.remove(&d.id);
                let server = self.clone();
                tokio::spawn(async move { server.end(&d, "idle").await });
            }
        }
    }

    /// Starts the session's child process and its relay tasks.
    fn spawn_child(
        self: &Arc<Self>,
        cmd: &[OsString],
        session: Arc<Session>,
        router: Arc<Router>,
        id: String,
    ) -> Result<ChildHandle, String> {
        let (mut child, group) = child::spawn(cmd).map_err(|e| e.to_string())?;
        let log = self.log;
        let pid = child.id().unwrap_or(0);
        log.info(format_args!(
            "session {}: started {} (pid {pid})",
            &id[..8],
            cmd[0].to_string_lossy()
        ));
        let child_in = child.stdin.take().expect("piped");
        let child_out = child.stdout.take().expect("piped");
        let max = self.opts.max_message_bytes;

        let (stdin_tx, mut stdin_rx) = mpsc::channel::<Bytes>(256);
        tokio::spawn(async move {
            let mut w = BufWriter::with_capacity(64 * 1024, child_in);
            while let Some(m) = stdin_rx.recv().await {
                if w.write_all(&m).await.is_err() || w.write_all(b"\n").await.is_err() {
                    break;
                }
                if stdin_rx.is_empty() && w.flush().await.is_err() {
                    break;
                }
            }
            let _ = w.flush().await;
            let _ = w.shutdown().await;
        });

        let (exited_tx, exited_rx) = tokio::sync::watch::channel(false);
        let (stop_tx, stop_rx) = tokio::sync::oneshot::channel::<()>();
        let server = self.clone();
        let sess = session.clone();
        let r = router.clone();
        let grace = self.opts.grace;
        tokio::spawn(async move {
            let mut lines = LineReader::new(BufReader::with_capacity(64 * 1024, child_out), max);
            let reader = async {
                loop {
                    match lines.next().await {
                        Ok(Line::Message(line)) => {
                            let out = sess.from_server(&line);
                            for f in out.forward {
                                r.route(Bytes::copy_from_slice(&f), log).await;
                            }
                        }
                        Ok(Line::TooLong(n)) => log.warn(format_args!(
                            "dropped a {n}-byte message from the server (limit {max})"
                        )),
                        Ok(Line::Eof) | Err(_) => break,
                    }
                }
            };
            let supervise = async {
                // Ending the session closes stdin, then fires `stop`.
                let status = child::supervise(
                    &mut child,
                    group,
                    async {
                        let _ = stop_rx.await;
                    },
                    grace,
                    log,
                )
                .await;
                // Nothing may outlive the server in its process group.
                let _ = group.try_signal(Signal::SIGTERM);
                status
            };
            let (_, status) = tokio::join!(
                async {
                    reader.await;
                },
                supervise
            );
            let code = status.ok().and_then(|s| s.code());
            log.info(format_args!(
                "session {}: the server exited (status {})",
                &id[..8],
                code.map_or("signal".to_string(), |c| c.to_string())
            ));
            for e in
                sess.upstream_gone("the MCP server process of this session exited before answering")
            {
                r.route(Bytes::from(e), log).await;
            }
            server.remove(&id);
            let _ = exited_tx.send(true);
        });
        Ok(ChildHandle {
            stdin: Mutex::new(Some(stdin_tx)),
            stop: Mutex::new(Some(stop_tx)),
            exited: exited_rx,
        })
    }
}

/// Every `MCP-Protocol-Version` header of `req` names a version of
/// [`SUPPORTED_PROTOCOL_VERSIONS`] (none: the client means the version it
/// negotiated); Err is the 400 to answer, worded as the SDK's server words it.
fn check_protocol_version(req: &Request<Incoming>) -> Result<(), Response<Body>> {
    let supported = |v: &HeaderValue| {
        v.to_str()
            .is_ok_and(|v| SUPPORTED_PROTOCOL_VERSIONS.contains(&v))
    };
    let Some(bad) = req
        .headers()
        .get_all(&MCP_PROTOCOL_VERSION)
        .iter()
        .find(|v| !supported(v))
    else {
        return Ok(());
    };
    // Echo what was sent (visible ASCII only, shortened): it says what the
    // client got wrong, and it is escaped into the JSON body.
    let shown = match bad.to_str() {
        Ok(s) if s.len() <= 64 => s,
        Ok(_) => "(too long)",
        Err(_) => "(not visible ASCII)",
    };
    Err(http_error(
        StatusCode::BAD_REQUEST,
        SERVER_ERROR,
        &format!(
            "Bad Request: Unsupported protocol version: {shown} (supported versions: {})",
            SUPPORTED_PROTOCOL_VERSIONS.join(", ")
        ),
    ))
}

fn join_array(parts: &[Vec<u8>]) -> Vec<u8> {
    let mut out = vec![b'['];
    for (i, p) in parts.iter().enumerate() {
        if i > 0 {
            out.push(b',');
        }
        out.extend_from_slice(p);
    }
    out.push(b']');
    out
}

#[cfg(test)]
mod tests {
    #[test]
    fn only_2025_11_25_and_later_dates_take_a_priming_event() {
        use super::takes_priming_event;
        for v in ["2025-11-25", "2026-07-28", "2099-01-01"] {
            assert!(takes_priming_event(v), "{v}");
        }
        for v in [
            "2025-06-18",
            "2024-11-05",
            "latest",
            "v2",
            "DRAFT-2026",
            "2025-11-25x",
            "9999",
            "",
        ] {
            assert!(!takes_priming_event(v), "{v}");
        }
    }

    #[tokio::test]
    async fn queued_server_messages_are_not_handed_to_a_json_only_answer() {
        use super::{Attached, Router, Sent};
        let router = Router::default();
        let request = bytes::Bytes::from_static(
            br#"{"jsonrpc":"2.0","id":"s1","method":"sampling/createMessage","params":{}}"#,
        );
        router
            .route(
                request,
                crate::proxy::log::Log {
                    level: crate::proxy::log::Level::Error,
                },
            )
            .await;
        let (sink, _rx) = tokio::sync::mpsc::channel(4);
        let call = |id: u32| {
            Sent::of(
                format!(
                    r#"{{"jsonrpc":"2.0","id":{id},"method":"tools/call","params":{{"name":"t"}}}}"#
                )
                .as_bytes(),
            )
        };
        let json_only = Attached::default();
        assert!(
            router.expect(&call(1), &sink, &json_only).is_empty(),
            "kept queued"
        );
        let sse = Attached::new(std::sync::atomic::AtomicBool::new(true));
        assert_eq!(
            router.expect(&call(2), &sink, &sse).len(),
            1,
            "handed to a stream a client reads"
        );
    }

    #[tokio::test]
    async fn server_messages_go_only_to_streams_a_client_reads() {
        use super::{Attached, Router, Sent};
        use std::sync::atomic::Ordering;
        let router = Router::default();
        let (left_sink, _left_rx) = tokio::sync::mpsc::channel(4);
        let (read_sink, _read_rx) = tokio::sync::mpsc::channel(4);
        let (left, read) = (Attached::default(), Attached::default());
        let call = |id: u32| {
            Sent::of(
                format!(
                    r#"{{"jsonrpc":"2.0","id":{id},"method":"tools/call","params":{{"name":"t"}}}}"#
                )
                .as_bytes(),
            )
        };
        router.expect(&call(1), &left_sink, &left);
        router.expect(&call(2), &read_sink, &read);
        left.store(false, Ordering::Relaxed); // its client went away (still recorded)
        read.store(true, Ordering::Relaxed);
        let request =
            br#"{"jsonrpc":"2.0","id":"s1","method":"sampling/createMessage","params":{}}"#;
        let to = router.target(request).expect("a stream someone reads");
        assert!(to.same_channel(&read_sink));
        read.store(false, Ordering::Relaxed);
        assert!(
            router.target(request).is_none(),
            "nobody reads: queued for the next stream instead"
        );
        // An answer still goes to its own stream, read or not (it is recorded there).
        let answer = br#"{"jsonrpc":"2.0","id":1,"result":{}}"#;
        assert!(
            router
                .target(answer)
                .expect("its stream")
                .same_channel(&left_sink)
        );
    }

    #[test]
    fn client_tokens_are_checked_exactly() {
        use super::ClientToken;
        let t = ClientToken::new("  s3cret-s3cret-s3cret\n").unwrap();
        assert!(t.accepts(Some(b"Bearer s3cret-s3cret-s3cret")));
        assert!(
            t.accepts(Some(b"bearer s3cret-s3cret-s3cret")),
            "the scheme is case-insensitive"
        );
        for wrong in [
            &b"Bearer s3cret-s3cret-s3cre"[..],
            b"Bearer s3cret-s3cret-s3cretX",
            b"Bearer S3CRET-S3CRET-S3CRET",
            b"Bearer  s3cret-s3cret-s3cret",
            b"Basic s3cret-s3cret-s3cret",
            b"s3cret-s3cret-s3cret",
            b"Bearer",
            b"",
        ] {
            assert!(
                !t.accepts(Some(wrong)),
                "{}",
                String::from_utf8_lossy(wrong)
            );
        }
        assert!(!t.accepts(None));
        assert!(
            ClientToken::new("short")
                .unwrap_err()
                .contains("at least 16")
        );
        assert!(ClientToken::new("with a space inside it").is_err());
        assert_eq!(format!("{t:?}"), "ClientToken(<hidden>)");
    }

    use super::*;

    #[test]
    fn only_loopback_origins_pass_unless_allowed() {
        for o in [
            "http://localhost",
            "http://localhost:6274",
            "https://127.0.0.1:8443",
            "http://[::1]:3000",
            "http://app.localhost:1",
        ] {
            assert!(origin_allowed(o, &[]), "{o}");
        }
        for o in [
            "null",
            "http://evil.example",
            "http://localhost.evil.example",
            "http://127.0.0.1.evil.example",
            "file://",
            "http://localhost/path",
            "ftp://localhost",
        ] {
            assert!(!origin_allowed(o, &[]), "{o}");
        }
        assert!(origin_allowed(
            "https://app.example.com",
            &["https://app.example.com".into()]
        ));
    }
}
