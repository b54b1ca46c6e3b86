//! The operator's decisions on approval requests (issue 13), shared by
//! `portcullis approvals approve|deny` and the proxy's opt-in admin HTTP API
//! (`--admin-api ADDR`): one function per action ([`decide`], [`list`],
//! [`show`]), the same errors, the same decision-log line ([`event`]).
//!
//! The API: `GET /approvals` (pending; `?all=1` every record), `GET
//! /approvals/{id}`, `POST /approvals/{id}/approve` and `POST
//! /approvals/{id}/deny` with an optional JSON body `{"reason": "...", "by":
//! "..."}`; Intercept's names (`GET /pending`, `GET /pending/{id}`, `POST
//! /approve/{id}`, `POST /deny/{id}`) route to the same handlers. Every
//! request needs `Authorization: Bearer <token>` (compared in constant time);
//! answers are JSON.

use std::convert::Infallible;
use std::sync::Arc;
use std::time::Duration;

use bytes::Bytes;
use http_body_util::{BodyExt, Full, Limited};
use hyper::body::Incoming;
use hyper::header::{CONTENT_TYPE, HeaderValue, WWW_AUTHENTICATE};
use hyper::{Method, Request, Response, StatusCode};

use crate::approvals::{ApprovalStore, DecideError, Record, Status, is_id};
use crate::audit::{AuditLog, Event};
use crate::log::Log;
use crate::metrics::Metrics;
use portcullis_core::counters::UnixMillis;

/// Largest request body the API reads (a reason and a name).
pub const MAX_BODY_BYTES: usize = 16 * 1024;

/// Longest `by` accepted (a person's or a system's name).
pub const MAX_BY_CHARS: usize = 200;

/// Most requests served at once.
const MAX_CONNECTIONS: usize = 64;

/// Why an operator's action failed, with what to do about it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum ActionError {
    /// Not `apr_` and 32 hex digits.
    Malformed(String),
    /// No record has this id.
    Unknown(String),
    /// The record cannot be decided (already decided, used or expired).
    NotPending {
        /// The id.
        id: String,
        /// Where it stands.
        status: Status,
        /// approve or deny.
        verb: &'static str,
    },
    /// The store failed.
    State(String),
}

impl ActionError {
    /// The message (`error: ...` on the command line, `error` in the API).
    pub fn message(&self) -> String {
        match self {
            ActionError::Malformed(id) => format!("{id:?} is not an approval id"),
            ActionError::Unknown(id) => format!("no approval request {id}"),
            ActionError::NotPending { id, status, verb } => {
                format!("cannot {verb} {id}: {}", DecideError::NotPending(*status))
            }
            ActionError::State(e) => format!("approval state unavailable: {e}"),
        }
    }

    /// What to do about it ("" when nothing helps).
    pub fn help(&self) -> &'static str {
        match self {
            ActionError::Malformed(_) => {
                "approval ids look like apr_ followed by 32 hex digits, as the refused call's answer names them"
            }
            ActionError::Unknown(_) => {
                "list them with `portcullis approvals list --all` (same --state-dir and --state-prefix as the proxies)"
            }
            ActionError::NotPending { .. } => {
                "only a pending request can be decided; an expired one is asked again when the agent retries"
            }
            ActionError::State(_) => "",
        }
    }

    /// The HTTP status the API answers it with.
    pub fn status(&self) -> StatusCode {
        match self {
            ActionError::Malformed(_) => StatusCode::BAD_REQUEST,
            ActionError::Unknown(_) => StatusCode::NOT_FOUND,
            ActionError::NotPending { .. } => StatusCode::CONFLICT,
            ActionError::State(_) => StatusCode::SERVICE_UNAVAILABLE,
        }
    }
}

/// The record `id` (any status).
pub fn show(store: &dyn ApprovalStore, id: &str, now: UnixMillis) -> Result<Record, ActionError> {
    match store.get(id, now) {
        Ok(Some(r)) => Ok(r),
        Ok(None) if is_id(id) => Err(ActionError::Unknown(id.to_string())),
        Ok(None) => Err(ActionError::Malformed(id.to_string())),
        Err(e) => Err(ActionError::State(e.0)),
    }
}

/// The pending records (every record with `all`), newest first.
pub fn list(
    store: &dyn ApprovalStore,
    all: bool,
    now: UnixMillis,
) -> Result<Vec<Record>, ActionError> {
    let records = store.list(now).map_err(|e| ActionError::State(e.0))?;
    Ok(records
        .into_iter()
        .filter(|r| all || r.status_at(now) == Status::Pending)
        .collect())
}

/// A person's decision on pending request `id`: approved (`approve`) or
/// denied, by `by`, for `reason`.
pub fn decide(
    store: &dyn ApprovalStore,
    id: &str,
    approve: bool,
    by: &str,
    reason: &str,
    now: UnixMillis,
) -> Result<Record, ActionError> {
    if !is_id(id) {
        return Err(ActionError::Malformed(id.to_string()));
    }
    let verb = if approve { "approve" } else { "deny" };
    store
        .decide(id, approve, by, reason, now)
        .map_err(|e| match e {
            DecideError::Unknown => ActionError::Unknown(id.to_string()),
            DecideError::NotPending(status) => ActionError::NotPending {
                id: id.to_string(),
                status,
                verb,
            },
            DecideError::State(e) => ActionError::State(e.0),
        })
}

/// The decision-log line of a person's decision (`approved` or `denied`).
pub fn event(r: &Record, approve: bool, by: &str, reason: &str, now: UnixMillis) -> Event {
    Event::Approval {
        at: now,
        tool: r.tool.clone(),
        stage: if approve { "approved" } else { "denied" },
        id: r.id.clone(),
        rule: r.rule.clone(),
        by: by.to_string(),
        message: reason.to_string(),
        session: None,
        principal: None,
    }
}

/// What a decision means, in a sentence.
pub fn decided_text(r: &Record, approve: bool, reason: &str) -> String {
    if approve {
        format!(
            "Approved {} ({}/{}, rule {:?}) until {}: the identical call is forwarded once when the agent retries.",
            r.id,
            r.server,
            r.tool,
            r.rule,
            r.expires.to_rfc3339()
        )
    } else {
        format!(
            "Denied {} ({}/{}, rule {:?}){}: the agent's identical retries are refused until {}.",
            r.id,
            r.server,
            r.tool,
            r.rule,
            if reason.is_empty() {
                String::new()
            } else {
                format!(": {reason}")
            },
            r.expires.to_rfc3339()
        )
    }
}

/// A record as JSON (`portcullis approvals show --json` and the API).
pub fn record_json(r: &Record, now: UnixMillis) -> serde_json::Value {
    let arguments: serde_json::Value =
        serde_json::from_str(&r.arguments).unwrap_or_else(|_| r.arguments.clone().into());
    serde_json::json!({
        "id": r.id,
        "status": r.status_at(now).as_str(),
        "server": r.server,
        "tool": r.tool,
        "arguments": arguments,
        "rule": r.rule,
        "message": r.message,
        "sub": r.sub,
        "iss": r.iss,
        "created": r.created.to_rfc3339(),
        "expires": r.expires.to_rfc3339(),
        "decided_by": r.decided_by,
        "reason": r.reason,
        "fingerprint": r.fingerprint,
    })
}

/// The bearer token of the admin API (`--admin-token-*`): a
/// [`BearerToken`](crate::http::server::BearerToken), only its SHA-256 kept.
#[derive(Clone)]
pub struct AdminToken(crate::http::server::BearerToken);

impl std::fmt::Debug for AdminToken {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("AdminToken(<hidden>)")
    }
}

impl AdminToken {
    /// A token from its secret (surrounding whitespace removed). Err: too
    /// short, or characters a header cannot carry.
    pub fn new(secret: &str) -> Result<AdminToken, String> {
        crate::http::server::BearerToken::new(secret, "admin token").map(AdminToken)
    }

    /// True when `authorization` (the header's value) is `Bearer <this token>`.
    pub fn accepts(&self, authorization: Option<&[u8]>) -> bool {
        self.0.accepts(authorization)
    }
}

/// What the admin API serves from.
pub struct AdminApi {
    /// The proxy's approval records.
    pub store: Arc<dyn ApprovalStore>,
    /// The bearer token.
    pub token: AdminToken,
    /// The proxy's decision log.
    pub audit: Option<AuditLog>,
    /// The proxy's metrics.
    pub metrics: Option<Arc<Metrics>>,
    /// The proxy's log.
    pub log: Log,
}

type Answer = Response<Full<Bytes>>;

fn json(status: StatusCode, v: &serde_json::Value) -> Answer {
    let mut body = serde_json::to_vec_pretty(v).unwrap_or_default();
    body.push(b'\n');
    let mut r = Response::new(Full::new(Bytes::from(body)));
    *r.status_mut() = status;
    r.headers_mut()
        .insert(CONTENT_TYPE, HeaderValue::from_static("application/json"));
    r.headers_mut().insert(
        hyper::header::CACHE_CONTROL,
        HeaderValue::from_static("no-store"),
    );
    r
}

fn error(status: StatusCode, message: &str, help: &str) -> Answer {
    let mut v = serde_json::json!({ "error": message });
    if !help.is_empty() {
        v["help"] = help.into();
    }
    json(status, &v)
}

fn action_error(e: &ActionError) -> Answer {
    error(e.status(), &e.message(), e.help())
}

/// What a route asks for.
#[derive(Debug, PartialEq, Eq)]
enum Route<'a> {
    List,
    Show(&'a str),
    Decide(&'a str, bool),
}

/// The route of `method` `path`; Err: the status (404, 405) and the message.
fn route<'a>(method: &Method, path: &'a str) -> Result<Route<'a>, (StatusCode, &'static str)> {
    let segments: Vec<&str> = path.trim_start_matches('/').split('/').collect();
    let (want, route) = match segments.as_slice() {
        ["approvals"] | ["pending"] => (Method::GET, Route::List),
        ["approvals", id] | ["pending", id] if !id.is_empty() => (Method::GET, Route::Show(id)),
        ["approvals", id, "approve"] | ["approve", id] if !id.is_empty() => {
            (Method::POST, Route::Decide(id, true))
        }
        ["approvals", id, "deny"] | ["deny", id] if !id.is_empty() => {
            (Method::POST, Route::Decide(id, false))
        }
        _ => {
            return Err((
                StatusCode::NOT_FOUND,
                "no such route: GET /approvals, GET /approvals/{id}, POST /approvals/{id}/approve, POST /approvals/{id}/deny",
            ));
        }
    };
    if *method != want {
        return Err((
            StatusCode::METHOD_NOT_ALLOWED,
            if want == Method::GET {
                "this route answers GET"
            } else {
                "this route answers POST"
            },
        ));
    }
    Ok(route)
}

/// The optional body of a decision: `{"reason": "...", "by": "..."}`.
fn decision_body(bytes: &[u8]) -> Result<(String, Option<String>), String> {
    if bytes.iter().all(u8::is_ascii_whitespace) {
        return Ok((String::new(), None));
    }
    let v: serde_json::Value =
        serde_json::from_slice(bytes).map_err(|e| format!("the body is not JSON: {e}"))?;
    let Some(o) = v.as_object() else {
        return Err(
            "the body must be a JSON object: {\"reason\": \"...\", \"by\": \"...\"}".into(),
        );
    };
    let mut reason = String::new();
    let mut by = None;
    for (k, v) in o {
        match (k.as_str(), v) {
            ("reason", serde_json::Value::String(s)) => reason = s.clone(),
            ("by", serde_json::Value::String(s)) => {
                let s = s.trim();
                if s.is_empty()
                    || s.chars().count() > MAX_BY_CHARS
                    || s.chars().any(char::is_control)
                {
                    return Err(format!(
                        "\"by\" must be a name of 1 to {MAX_BY_CHARS} characters without control characters"
                    ));
                }
                by = Some(s.to_string());
            }
            ("reason" | "by", _) => return Err(format!("\"{k}\" must be a string")),
            _ => {
                return Err(format!(
                    "unknown key \"{k}\": the body takes \"reason\" and \"by\""
                ));
            }
        }
    }
    Ok((reason, by))
}

impl AdminApi {
    async fn store<T: Send + 'static>(
        &self,
        f: impl FnOnce(&dyn ApprovalStore) -> T + Send + 'static,
    ) -> T {
        let store = self.store.clone();
        if !store.may_block() {
            return f(store.as_ref());
        }
        match tokio::task::spawn_blocking(move || f(store.as_ref())).await {
            Ok(t) => t,
            Err(e) => std::panic::resume_unwind(e.into_panic()),
        }
    }

    /// Answers one request.
    pub async fn handle(self: Arc<Self>, req: Request<Incoming>) -> Answer {
        if !self.token.accepts(
            req.headers()
                .get(hyper::header::AUTHORIZATION)
                .map(HeaderValue::as_bytes),
        ) {
            self.log.warn(format_args!(
                "admin API: {} {} refused: no or a wrong bearer token",
                req.method(),
                req.uri().path()
            ));
            let mut r = error(
                StatusCode::UNAUTHORIZED,
                "the admin API needs `Authorization: Bearer <token>` with the proxy's admin token",
                "the token is the one given to the proxy with --admin-token-env or --admin-token-file",
            );
            r.headers_mut().insert(
                WWW_AUTHENTICATE,
                HeaderValue::from_static("Bearer realm=\"portcullis-admin\""),
            );
            return r;
        }
        let method = req.method().clone();
        let path = req.uri().path().to_string();
        let all = req
            .uri()
            .query()
            .is_some_and(|q| q.split('&').any(|kv| kv == "all=1" || kv == "all=true"));
        let route = match route(&method, &path) {
            Ok(r) => r,
            Err((status, message)) => return error(status, message, ""),
        };
        let now = UnixMillis::now();
        match route {
            Route::List => match self.store(move |s| list(s, all, now)).await {
                Ok(records) => json(
                    StatusCode::OK,
                    &serde_json::Value::Array(
                        records.iter().map(|r| record_json(r, now)).collect(),
                    ),
                ),
                Err(e) => action_error(&e),
            },
            Route::Show(id) => {
                let id = id.to_string();
                match self.store(move |s| show(s, &id, now)).await {
                    Ok(r) => json(StatusCode::OK, &record_json(&r, now)),
                    Err(e) => action_error(&e),
                }
            }
            Route::Decide(id, approve) => {
                let id = id.to_string();
                let bytes = match Limited::new(req.into_body(), MAX_BODY_BYTES)
                    .collect()
                    .await
                {
                    Ok(b) => b.to_bytes(),
                    Err(e) => {
                        let too_large = e
                            .downcast_ref::<http_body_util::LengthLimitError>()
                            .is_some();
                        return if too_large {
                            error(
                                StatusCode::PAYLOAD_TOO_LARGE,
                                &format!("the body is larger than {MAX_BODY_BYTES} bytes"),
                                "send {\"reason\": \"...\", \"by\": \"...\"}",
                            )
                        } else {
                            error(StatusCode::BAD_REQUEST, "the body could not be read", "")
                        };
                    }
                };
                let (reason, by) = match decision_body(&bytes) {
                    Ok(b) => b,
                    Err(e) => {
                        return error(
                            StatusCode::BAD_REQUEST,
                            &e,
                            "the body is optional: {\"reason\": \"...\", \"by\": \"...\"}",
                        );
                    }
                };
                let by = by.unwrap_or_else(|| "admin-api".to_string());
                let (b, r) = (by.clone(), reason.clone());
                match self
                    .store(move |s| decide(s, &id, approve, &b, &r, now))
                    .await
                {
                    Ok(rec) => {
                        self.log.info(format_args!(
                            "admin API: approval {} {} by {}{}",
                            rec.id,
                            if approve { "approved" } else { "denied" },
                            by,
                            if reason.is_empty() {
                                String::new()
                            } else {
                                format!(": {reason}")
                            }
                        ));
                        if let Some(a) = &self.audit {
                            a.record(event(&rec, approve, &by, &reason, now));
                        }
                        if let Some(m) = &self.metrics {
                            m.approval(if approve { "approved" } else { "denied" }, 1);
                        }
                        json(
                            StatusCode::OK,
                            &serde_json::json!({
                                "approval": record_json(&rec, now),
                                "message": decided_text(&rec, approve, &reason),
                            }),
                        )
                    }
                    Err(e) => action_error(&e),
                }
            }
        }
    }
}

/// Serves the admin API on `listener` until the process exits.
pub async fn serve(listener: tokio::net::TcpListener, api: Arc<AdminApi>) {
    let slots = Arc::new(tokio::sync::Semaphore::new(MAX_CONNECTIONS));
    loop {
        let Ok((stream, _)) = listener.accept().await else {
            tokio::time::sleep(Duration::from_millis(50)).await;
            continue;
        };
        let Ok(slot) = slots.clone().try_acquire_owned() else {
            drop(stream);
            continue;
        };
        let api = api.clone();
        tokio::spawn(async move {
            let _slot = slot;
            let service = hyper::service::service_fn(move |req| {
                let api = api.clone();
                async move { Ok::<_, Infallible>(api.handle(req).await) }
            });
            let conn = hyper::server::conn::http1::Builder::new()
                .header_read_timeout(Duration::from_secs(10))
                .timer(hyper_util::rt::TokioTimer::new())
                .serve_connection(hyper_util::rt::TokioIo::new(stream), service);
            // No connection is held longer than a minute.
            let _ = tokio::time::timeout(Duration::from_secs(60), conn).await;
        });
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn routes_are_the_documented_ones_and_intercepts() {
        let id = "apr_0123456789abcdef0123456789abcdef";
        assert_eq!(route(&Method::GET, "/approvals"), Ok(Route::List));
        assert_eq!(route(&Method::GET, "/pending"), Ok(Route::List));
        assert_eq!(
            route(&Method::GET, &format!("/approvals/{id}")),
            Ok(Route::Show(id))
        );
        assert_eq!(
            route(&Method::POST, &format!("/approvals/{id}/approve")),
            Ok(Route::Decide(id, true))
        );
        assert_eq!(
            route(&Method::POST, &format!("/deny/{id}")),
            Ok(Route::Decide(id, false))
        );
        assert_eq!(
            route(&Method::GET, &format!("/approvals/{id}/approve")).map_err(|e| e.0),
            Err(StatusCode::METHOD_NOT_ALLOWED)
        );
        assert_eq!(
            route(&Method::GET, "/approvals/").map_err(|e| e.0),
            Err(StatusCode::NOT_FOUND)
        );
        assert_eq!(
            route(&Method::GET, "/metrics").map_err(|e| e.0),
            Err(StatusCode::NOT_FOUND)
        );
    }

    #[test]
    fn decision_bodies_are_optional_and_strict() {
        assert_eq!(decision_body(b""), Ok((String::new(), None)));
        assert_eq!(
            decision_body(br#"{"reason":"freeze","by":"alice"}"#),
            Ok(("freeze".into(), Some("alice".into())))
        );
        assert!(decision_body(b"[1]").unwrap_err().contains("JSON object"));
        assert!(
            decision_body(br#"{"why":"x"}"#)
                .unwrap_err()
                .contains("unknown key \"why\"")
        );
        assert!(
            decision_body(br#"{"by":""}"#)
                .unwrap_err()
                .contains("\"by\"")
        );
        assert!(
            decision_body(br#"{"reason":1}"#)
                .unwrap_err()
                .contains("must be a string")
        );
        assert!(decision_body(b"{").unwrap_err().contains("not JSON"));
    }

    #[test]
    fn the_token_is_compared_exactly() {
        assert!(AdminToken::new("short").is_err());
        assert!(AdminToken::new("has a space in it!!").is_err());
        let t = AdminToken::new("0123456789abcdef0123").unwrap();
        assert!(t.accepts(Some(b"Bearer 0123456789abcdef0123")));
        assert!(t.accepts(Some(b"bearer 0123456789abcdef0123")));
        assert!(!t.accepts(Some(b"Bearer 0123456789abcdef012")));
        assert!(!t.accepts(Some(b"Basic 0123456789abcdef0123")));
        assert!(!t.accepts(None));
    }

    #[test]
    fn decisions_share_the_cli_errors() {
        let store = crate::approvals::MemoryApprovals::new();
        let now = UnixMillis(1_000);
        let e = decide(&store, "forged", true, "a", "", now).unwrap_err();
        assert_eq!(e.status(), StatusCode::BAD_REQUEST);
        assert_eq!(e.message(), "\"forged\" is not an approval id");
        let id = "apr_0123456789abcdef0123456789abcdef";
        let e = decide(&store, id, true, "a", "", now).unwrap_err();
        assert_eq!(e.status(), StatusCode::NOT_FOUND);
        assert_eq!(e.message(), format!("no approval request {id}"));
    }
}
