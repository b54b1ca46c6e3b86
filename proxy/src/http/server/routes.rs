//! Method and path dispatch of `/mcp` and what each method does to the
//! session table: POST (opens a session with `initialize`), GET (the
//! standalone stream, or `Last-Event-ID` resumption), DELETE; the headers of
//! the MCP transport and the status codes of refusals.

use std::sync::Arc;
use std::time::Duration;

use bytes::Bytes;
use hyper::body::Incoming;
use hyper::header::{HeaderName, HeaderValue};
use hyper::{Method, Request, Response, StatusCode};
use tokio::sync::mpsc;

use super::Server;
use super::body::{
    Body, accepts_sse, empty, event_stream, header, http_error, takes_priming_event,
};
use super::exchange::Reply;
use super::oauth::may_use;
use super::router::MAX_QUEUED;
use super::sessions::{Down, Up};
use crate::SUPPORTED_PROTOCOL_VERSIONS;
use crate::http::lock;
use crate::http::relay::Sent;
use crate::http::resume::NotResumable;
use crate::http::upstream::Failure;
use crate::session::UPSTREAM_GONE;
use portcullis_core::Principal;
use portcullis_core::jsonrpc::INVALID_REQUEST;

const MCP_SESSION_ID: HeaderName = HeaderName::from_static("mcp-session-id");
const MCP_PROTOCOL_VERSION: HeaderName = HeaderName::from_static("mcp-protocol-version");
const LAST_EVENT_ID: HeaderName = HeaderName::from_static("last-event-id");

/// JSON-RPC's implementation-defined server error: the code the SDK's server
/// gives a refused `MCP-Protocol-Version`.
const SERVER_ERROR: i32 = -32000;

impl Server {
    pub(super) async fn handle(self: &Arc<Self>, mut req: Request<Incoming>) -> Response<Body> {
        if let Some(r) = self.protected_resource_metadata(&req) {
            return r;
        }
        if req.uri().path() != "/mcp" {
            return http_error(
                StatusCode::NOT_FOUND,
                INVALID_REQUEST,
                "Not Found: the MCP endpoint is /mcp",
            );
        }
        if let Err(r) = self.admit(&req) {
            return r;
        }
        match self.authenticate(&req).await {
            Ok(Some(principal)) => {
                req.extensions_mut().insert(principal);
            }
            Ok(None) => {}
            Err(r) => return r,
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
        let caller = req.extensions().get::<Arc<Principal>>().map(|p| &**p);
        match lock(&self.sessions)
            .get(id)
            // Another caller's session does not exist for this one: the
            // same 404 as an unknown id (no oracle for others' session ids).
            .filter(|d| may_use(d.principal.as_deref(), caller))
        {
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

    pub(super) async fn post(self: &Arc<Self>, req: Request<Incoming>) -> Response<Body> {
        if let Err(r) = self.check_body_headers(&req) {
            return r;
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
        let principal = req.extensions().get::<Arc<Principal>>().cloned();
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
                match self.open(&body, &first, principal).await {
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

    pub(super) async fn get(self: &Arc<Self>, req: Request<Incoming>) -> Response<Body> {
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
                Err(Failure::SessionGone) => return self.upstream_ended(&down, link),
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

    pub(super) async fn delete(self: &Arc<Self>, req: Request<Incoming>) -> Response<Body> {
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
