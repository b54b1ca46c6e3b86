//! The table of client sessions: each one's enforcing session and upstream
//! (an HTTP session, a legacy SSE stream, or a child process), opening,
//! ending, and the sweep that times out requests and ends idle sessions.

use std::sync::{Arc, Mutex};
use std::time::Duration;

use bytes::Bytes;
use hyper::{Response, StatusCode};
use tokio::sync::mpsc;
use tokio::time::Instant;

use super::body::{Body, http_error, json_response};
use super::router::{Attached, Router, router_input};
use super::{Backend, Server};
use crate::http::lock;
use crate::http::relay::{Link, Sent, Sink};
use crate::http::resume::Streams;
use crate::http::upstream::Answer;
use crate::respond;
use crate::session::{ForCall, IdKey, Session, UPSTREAM_GONE};
use portcullis_core::jsonrpc::INTERNAL_ERROR;

/// One client MCP session.
pub(super) struct Down {
    pub(super) id: String,
    pub(super) session: Arc<Session>,
    pub(super) up: Up,
    /// The client's GET stream, if open.
    pub(super) get: Mutex<Option<Sink>>,
    /// The task relaying the upstream's GET stream to it (HTTP upstreams).
    pub(super) get_pump: Mutex<Option<tokio::task::JoinHandle<()>>>,
    /// Tasks relaying answers to POST streams (HTTP upstreams): ended with the session.
    pub(super) relays: Mutex<Vec<tokio::task::AbortHandle>>,
    /// The POST streams, kept for `Last-Event-ID`.
    pub(super) streams: Arc<Streams>,
    pub(super) last_seen: Mutex<Instant>,
    /// Who opened it (bearer JWTs): only the same caller may use it.
    pub(super) principal: Option<Arc<portcullis_core::Principal>>,
    /// Calls held while the client asks its user (in-band approval), by
    /// id: the stream of the POST that carried each, open until the call
    /// is answered (by the proxy, or by the upstream once forwarded).
    pub(super) held: Mutex<std::collections::HashMap<IdKey, (Sink, Attached)>>,
}

pub(super) enum Up {
    /// Streamable HTTP: answers keep their stream.
    Http(Link),
    /// One ordered output, routed.
    Routed { router: Arc<Router>, to: To },
}

pub(super) enum To {
    Legacy(Link, tokio::task::JoinHandle<()>),
    Child(ChildHandle),
}

pub(super) struct ChildHandle {
    /// Lines for the child's stdin; None once closed.
    pub(super) stdin: Mutex<Option<mpsc::Sender<Bytes>>>,
    /// Tells the supervisor to stop the child.
    pub(super) stop: Mutex<Option<tokio::sync::oneshot::Sender<()>>>,
    /// Completes when the child has exited.
    pub(super) exited: tokio::sync::watch::Receiver<bool>,
}

/// The key of a raw JSON id.
pub(super) fn id_key(raw: &[u8]) -> Option<IdKey> {
    portcullis_core::json::validate(raw, portcullis_core::json::Strictness::LENIENT).ok()?;
    IdKey::of(portcullis_core::json::Value::from_validated(raw))
}

impl Down {
    pub(super) fn touch(&self) {
        *lock(&self.last_seen) = Instant::now();
    }

    /// Whether call `raw_id` is held with a stream of its own.
    pub(super) fn is_held(&self, raw_id: &[u8]) -> bool {
        id_key(raw_id).is_some_and(|k| lock(&self.held).contains_key(&k))
    }

    /// Holds call `raw_id`'s stream open until the call is answered.
    pub(super) fn hold(&self, raw_id: &[u8], sink: &Sink, attached: &Attached) {
        if let Some(k) = id_key(raw_id) {
            lock(&self.held).insert(k, (sink.clone(), attached.clone()));
        }
    }

    /// The stream of held call `raw_id`, no longer held (its call goes upstream).
    pub(super) fn take_held(&self, raw_id: &[u8]) -> Option<(Sink, Attached)> {
        lock(&self.held).remove(&id_key(raw_id)?)
    }

    /// Sends a message about a held call on the call's stream (which ends
    /// after its last message). A call no stream holds: the GET stream if
    /// open, else the message is dropped (logged).
    pub(super) fn send_held(&self, m: ForCall, log: crate::log::Log) {
        let key = id_key(&m.call_id);
        let sink = {
            let mut held = lock(&self.held);
            match key {
                Some(k) if m.last => held.remove(&k).map(|(s, _)| s),
                Some(k) => held.get(&k).map(|(s, _)| s.clone()),
                None => None,
            }
        };
        let sink = sink.or_else(|| lock(&self.get).clone());
        match sink {
            Some(s) if s.try_send(Bytes::from(m.message)).is_ok() => {}
            _ => log.warn(format_args!(
                "session {}: dropped a message about held call {} (no stream open for it)",
                &self.id[..8],
                String::from_utf8_lossy(&m.call_id)
            )),
        }
    }

    /// Relays an upstream answer to a client stream, as a task of this session.
    pub(super) fn relay(&self, link: &Link, answer: Answer, sent: &Sent, sink: &Sink) {
        let (link, sink, sent) = (link.clone(), sink.clone(), sent.clone());
        let task = tokio::spawn(async move { link.relay(answer, &sent, &sink).await });
        let mut relays = lock(&self.relays);
        relays.retain(|h| !h.is_finished());
        relays.push(task.abort_handle());
    }
}

impl Server {
    /// Starts a session's upstream.
    pub(super) async fn open(
        self: &Arc<Self>,
        body: &[u8],
        first: &Sent,
        principal: Option<Arc<portcullis_core::Principal>>,
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
        let (session_no, id) = match (crate::random_session_id(), crate::random_http_session_id()) {
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
        // A token's caller replaces the process's (the local user, or
        // --principal-claims), which sessions without a token keep.
        let session = (self.factory)(session_no);
        let session = Arc::new(match &principal {
            Some(p) => session.with_principal(Some(p.clone())),
            None => session,
        });
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
            principal,
            held: Mutex::new(std::collections::HashMap::new()),
        });
        lock(&self.sessions).insert(id.clone(), down.clone());
        match &down.principal {
            Some(p) => self.log.info(format_args!(
                "session {} opened for {:?} (issuer {:?})",
                &id[..8],
                p.sub(),
                p.iss()
            )),
            None => self.log.info(format_args!("session {} opened", &id[..8])),
        }
        Ok(down)
    }

    pub(super) fn remove(&self, id: &str) {
        lock(&self.sessions).remove(id);
    }

    /// The upstream ended `down`'s MCP session (HTTP 404 for its id), seen
    /// by a POST or a GET: the client's session ends too, with the 404 a
    /// client of the upstream would get. Its pending requests will not be
    /// answered: their counters come back.
    pub(super) fn upstream_ended(&self, down: &Down, link: &Link) -> Response<Body> {
        link.log_session_gone(Some(&down.id[..8]));
        self.remove(&down.id);
        let _ = down.session.upstream_gone("the upstream ended the session");
        http_error(
            StatusCode::NOT_FOUND,
            UPSTREAM_GONE,
            "Session not found: the upstream MCP server ended the session; initialize a new session",
        )
    }

    /// Ends a session's upstream: DELETE for HTTP, stdin closed then signals for a child.
    pub(super) async fn end(&self, down: &Down, why: &str) {
        self.log
            .info(format_args!("session {} ended: {why}", &down.id[..8]));
        *lock(&down.get) = None;
        lock(&down.held).clear();
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

    /// Timeouts of requests to children, and idle sessions.
    pub(super) async fn sweep(self: &Arc<Self>) {
        if self.opts.client_token.is_some() || self.opts.oauth.is_some() {
            self.log_unauthorized(None);
        }
        let all: Vec<Arc<Down>> = lock(&self.sessions).values().cloned().collect();
        for d in all {
            for m in d.session.expire_asking() {
                d.send_held(m, self.log);
            }
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
}
