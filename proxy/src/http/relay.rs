//! Relaying between one enforcing [`Session`] and one HTTP [`Upstream`]:
//! a message from the client is POSTed, and whatever the upstream answers
//! (a JSON body, or SSE events as they arrive) goes through
//! [`Session::from_server`] to a [`Sink`]: our stdout, or the HTTP stream of
//! the client's POST. Every failure of an HTTP exchange becomes a JSON-RPC
//! error for the request it carried (its counters rolled back by the session).

use std::sync::Arc;
use std::time::Duration;

use bytes::Bytes;
use tokio::sync::mpsc;
use tokio::time::Instant;

use super::sse;
use super::upstream::{Answer, Failure, Upstream};
use crate::log::Log;
use crate::session::{Session, UPSTREAM_BAD_ANSWER, UPSTREAM_GONE, UPSTREAM_TIMEOUT};
use portcullis_core::json::Val;
use portcullis_core::jsonrpc::Envelope;

/// Where messages for the client go (one message per item, no framing).
pub type Sink = mpsc::Sender<Bytes>;

/// What a message sent to the upstream is, read from its envelope.
#[derive(Debug, Clone, Default)]
pub struct Sent {
    /// The raw id of a request (None for notifications and responses).
    pub raw_id: Option<Vec<u8>>,
    /// An `initialize` request.
    pub initialize: bool,
    /// `notifications/initialized`.
    pub initialized: bool,
    /// `notifications/cancelled`: the raw id of the request it cancels.
    pub cancels: Option<Vec<u8>>,
    /// The raw `params._meta.progressToken` of a request.
    pub progress_token: Option<Vec<u8>>,
}

impl Sent {
    /// Reads what the proxy needs from a message it forwards.
    pub fn of(msg: &[u8]) -> Sent {
        let Ok(env) = Envelope::parse_lenient(msg) else {
            return Sent::default();
        };
        let mut s = Sent::default();
        if env.method.is_none() {
            return s;
        }
        let params = match env.params.map(|p| p.val()) {
            Some(Val::Object(o)) => Some(o),
            _ => None,
        };
        match env.request_id() {
            Some(id) => {
                s.raw_id = Some(id.as_bytes().to_vec());
                s.initialize = env.method_is("initialize");
                s.progress_token = params
                    .and_then(|p| p.get("_meta"))
                    .and_then(|m| match m.val() {
                        Val::Object(m) => m.get("progressToken"),
                        _ => None,
                    })
                    .map(|t| t.as_bytes().to_vec());
            }
            None => {
                s.initialized = env.method_is("notifications/initialized");
                if env.method_is("notifications/cancelled") {
                    s.cancels = params
                        .and_then(|p| p.get("requestId"))
                        .map(|v| v.as_bytes().to_vec());
                }
            }
        }
        s
    }
}

/// `result.protocolVersion` of an `initialize` answer.
pub fn negotiated_version(msg: &[u8]) -> Option<String> {
    let env = Envelope::parse_lenient(msg).ok()?;
    if env.method.is_some() {
        return None;
    }
    let Val::Object(r) = env.result?.val() else {
        return None;
    };
    match r.get("protocolVersion")?.val() {
        Val::Str(s) => Some(s.chars().collect()),
        _ => None,
    }
}

/// Answers the request `raw_id` with an error on `sink` if `session` still
/// waits for its answer (its counters roll back); true if it did.
pub(crate) async fn fail_pending(
    session: &Session,
    raw_id: &[u8],
    code: i32,
    why: &str,
    sink: &Sink,
) -> bool {
    match session.fail_pending(raw_id, code, why) {
        Some(err) => {
            let _ = sink.send(Bytes::from(err)).await;
            true
        }
        None => false,
    }
}

/// A session and its upstream.
#[derive(Clone)]
pub struct Link {
    /// Enforcement.
    pub session: Arc<Session>,
    /// The server.
    pub up: Arc<Upstream>,
    /// Logging.
    pub log: Log,
    /// Answer (and roll back) a request not answered in this time.
    pub request_timeout: Option<Duration>,
}

impl Link {
    /// POSTs `msg`; on failure, answers the request it carried (if any) on `sink`.
    pub async fn post(&self, msg: Bytes, sent: &Sent, sink: &Sink) -> Option<Answer> {
        match self.up.post(msg, sent.initialize).await {
            Ok(a) => Some(a),
            Err(f) => {
                self.failed(sent, &f, sink).await;
                None
            }
        }
    }

    /// Reports a failed exchange: a JSON-RPC error for the request, or a log line.
    pub async fn failed(&self, sent: &Sent, f: &Failure, sink: &Sink) {
        let why = f.describe(self.up.url());
        let code = match f {
            Failure::Timeout(_) => UPSTREAM_TIMEOUT,
            Failure::BadAnswer(_) => UPSTREAM_BAD_ANSWER,
            _ => UPSTREAM_GONE,
        };
        match &sent.raw_id {
            Some(id) => {
                self.log.warn(format_args!("{why}"));
                fail_pending(&self.session, id, code, &why, sink).await;
            }
            None => self
                .log
                .warn(format_args!("a message was not delivered: {why}")),
        }
    }

    /// Passes one upstream message through the session to `sink`; false when the sink is gone.
    pub async fn from_server(&self, msg: &[u8], sent: Option<&Sent>, sink: &Sink) -> bool {
        let out = self.session.from_server(msg);
        // The proxy's answers to server requests it withheld from the client.
        for a in out.reply {
            let up = self.up.clone();
            tokio::spawn(async move {
                let _ = up.post(Bytes::from(a), false).await;
            });
        }
        for f in out.forward {
            if sent.is_some_and(|s| s.initialize)
                && let Some(v) = negotiated_version(&f)
            {
                self.up.set_protocol(&v);
            }
            if sink.send(Bytes::copy_from_slice(&f)).await.is_err() {
                return false;
            }
        }
        true
    }

    /// Relays the answer to one POST to `sink`, resuming a broken SSE stream
    /// (GET with `Last-Event-ID`) while its request is unanswered, and
    /// answering the request with an error if its answer never comes.
    pub async fn relay(&self, answer: Answer, sent: &Sent, sink: &Sink) {
        if matches!(answer, Answer::Accepted) && self.up.is_legacy() {
            return; // the answer comes on the SSE stream
        }
        let deadline = self.request_timeout.map(|t| Instant::now() + t);
        let work = self.relay_inner(answer, sent, sink);
        let timed_out = match deadline {
            Some(d) => tokio::time::timeout_at(d, work).await.is_err(),
            None => {
                work.await;
                false
            }
        };
        if let Some(id) = &sent.raw_id {
            let (code, why) = if timed_out {
                let t = self.request_timeout.unwrap_or_default().as_secs_f64();
                self.cancel_upstream(id);
                (
                    UPSTREAM_TIMEOUT,
                    format!("the upstream did not answer within {t} s"),
                )
            } else {
                (
                    UPSTREAM_GONE,
                    format!(
                        "the upstream MCP server {} closed the answer's stream before answering",
                        self.up.url()
                    ),
                )
            };
            if fail_pending(&self.session, id, code, &why, sink).await {
                self.log.warn(format_args!("{why}"));
            }
        }
    }

    /// Logs that the upstream ended the MCP session (HTTP 404 for its
    /// session id); `client_session` names the client's session where the
    /// proxy serves several. What follows is the transport's: the stdio
    /// client's requests each get an error until it initializes again, the
    /// HTTP endpoint's client gets a 404 for its session.
    pub(crate) fn log_session_gone(&self, client_session: Option<&str>) {
        let why = Failure::SessionGone.describe(self.up.url());
        match client_session {
            Some(s) => self.log.warn(format_args!("session {s}: {why}")),
            None => self.log.warn(format_args!("{why}")),
        }
    }

    /// Tells the upstream that the proxy gave up on a request.
    fn cancel_upstream(&self, raw_id: &[u8]) {
        let mut cancel = b"{\"jsonrpc\":\"2.0\",\"method\":\"notifications/cancelled\",\"params\":{\"requestId\":".to_vec();
        cancel.extend_from_slice(raw_id);
        cancel.extend_from_slice(b",\"reason\":\"timed out at the proxy\"}}");
        let up = self.up.clone();
        tokio::spawn(async move {
            let _ = up.post(Bytes::from(cancel), false).await;
        });
    }

    async fn relay_inner(&self, answer: Answer, sent: &Sent, sink: &Sink) {
        match answer {
            Answer::Accepted => {}
            Answer::Json(body) => {
                self.from_server(&body, Some(sent), sink).await;
            }
            Answer::Stream(stream) => {
                let mut stream = stream;
                let mut last_id: Option<String> = None;
                let mut retry = Duration::from_millis(500);
                let mut resumes = 0u32;
                loop {
                    if !self
                        .pump(&mut stream, Some(sent), sink, &mut last_id, &mut retry)
                        .await
                    {
                        return; // the client is gone
                    }
                    let waiting = sent
                        .raw_id
                        .as_deref()
                        .is_some_and(|id| self.session.is_pending(id));
                    let Some(last) = last_id.clone().filter(|_| waiting && resumes < 5) else {
                        return;
                    };
                    resumes += 1;
                    tokio::time::sleep(retry).await;
                    match self.up.get(Some(&last)).await {
                        Ok(Some(s)) => stream = s,
                        Ok(None) | Err(_) => return,
                    }
                }
            }
        }
    }

    /// Relays one SSE stream until it ends; false when the sink is gone.
    pub async fn pump(
        &self,
        stream: &mut sse::Stream,
        sent: Option<&Sent>,
        sink: &Sink,
        last_id: &mut Option<String>,
        retry: &mut Duration,
    ) -> bool {
        loop {
            match stream.next().await {
                Ok(Some(sse::Item::Event(e))) => {
                    if let Some(id) = e.id {
                        *last_id = Some(id);
                    }
                    if let Some(ms) = e.retry {
                        *retry = Duration::from_millis(ms.clamp(10, 30_000));
                    }
                    if (e.kind.is_empty() || e.kind == "message")
                        && !e.data.iter().all(u8::is_ascii_whitespace)
                        && !self.from_server(&e.data, sent, sink).await
                    {
                        return false;
                    }
                }
                Ok(Some(sse::Item::TooLong(n))) => self.log.warn(format_args!(
                    "dropped a {n}-byte event from the upstream (limit {})",
                    self.up.max
                )),
                Ok(None) => return !sink.is_closed(),
                Err(e) => {
                    self.log.debug(format_args!(
                        "an event stream from the upstream broke: {}",
                        super::upstream::error_chain(&e)
                    ));
                    return !sink.is_closed();
                }
            }
        }
    }

    /// The standalone GET stream: server messages to `sink` until the sink
    /// closes or the upstream refuses (405) or ends the session. Reconnects
    /// (with `Last-Event-ID`) when the stream breaks.
    pub async fn listen(&self, sink: Sink) {
        let mut last_id: Option<String> = None;
        let mut retry = Duration::from_millis(500);
        let mut failures = 0u32;
        loop {
            if sink.is_closed() {
                return;
            }
            match self.up.get(last_id.as_deref()).await {
                Ok(None) => {
                    self.log.debug(format_args!(
                        "the upstream offers no GET stream (405); server messages arrive on POST answers only"
                    ));
                    return;
                }
                Ok(Some(mut stream)) => {
                    failures = 0;
                    if !self
                        .pump(&mut stream, None, &sink, &mut last_id, &mut retry)
                        .await
                    {
                        return;
                    }
                    tokio::time::sleep(retry).await;
                }
                Err(Failure::SessionGone) => {
                    self.log_session_gone(None);
                    return;
                }
                Err(f) => {
                    failures += 1;
                    let wait = Duration::from_millis(500 * 2u64.pow(failures.min(6)));
                    self.log.debug(format_args!(
                        "the GET stream failed ({}); retrying in {wait:?}",
                        f.describe(self.up.url())
                    ));
                    tokio::time::sleep(wait).await;
                }
            }
        }
    }
}
