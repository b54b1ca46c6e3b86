//! The approval webhook (issue 13): every new approval request is announced
//! with an HMAC-SHA256-signed POST to the policy's `approvals` webhook URL.
//!
//! Never on the call path: [`Webhook::announce`] only puts the record on a
//! bounded queue ([`QUEUE`]; a full queue drops it, with a log line and
//! `portcullis_approval_webhook_total{result="dropped"}`). A background task
//! sends each request (at most [`IN_FLIGHT`] at once), each attempt bounded
//! by [`ATTEMPT_TIMEOUT`], retried with exponential backoff on network
//! errors, timeouts and 5xx answers ([`ATTEMPTS`] in all).

use std::sync::Arc;
use std::time::Duration;

use bytes::Bytes;
use http_body_util::{BodyExt, Full};
use hyper::header::{CONTENT_TYPE, HeaderValue, USER_AGENT};
use sha2::{Digest, Sha256};
use tokio::sync::mpsc;

use crate::approvals::Record;
use crate::log::Log;
use crate::metrics::Metrics;

/// Requests waiting to be sent at most.
pub const QUEUE: usize = 1024;
/// Deliveries at once at most.
pub const IN_FLIGHT: usize = 8;
/// Each attempt's bound (connect, send, answer).
pub const ATTEMPT_TIMEOUT: Duration = Duration::from_secs(5);
/// Attempts per request.
pub const ATTEMPTS: u32 = 3;
/// The first retry's delay; doubled for each further one.
pub const BACKOFF: Duration = Duration::from_millis(500);
/// The signature header: `sha256=<hex HMAC-SHA256 of the body>`.
pub const SIGNATURE_HEADER: &str = "x-portcullis-signature";
/// Arguments larger than this are sent as `null` with `arguments_truncated: true`.
pub const MAX_ARGUMENT_BYTES: usize = 16 * 1024;

/// HMAC-SHA256 (RFC 2104) of `message` under `key`.
pub fn hmac_sha256(key: &[u8], message: &[u8]) -> [u8; 32] {
    const BLOCK: usize = 64;
    let mut k = [0u8; BLOCK];
    if key.len() > BLOCK {
        k[..32].copy_from_slice(&Sha256::digest(key));
    } else {
        k[..key.len()].copy_from_slice(key);
    }
    let mut inner = Sha256::new();
    inner.update(k.map(|b| b ^ 0x36));
    inner.update(message);
    let mut outer = Sha256::new();
    outer.update(k.map(|b| b ^ 0x5c));
    outer.update(inner.finalize());
    outer.finalize().into()
}

/// The signature header's value for `body`: `sha256=` and the hex HMAC.
pub fn signature(secret: &[u8], body: &[u8]) -> String {
    let mut s = String::with_capacity(71);
    s.push_str("sha256=");
    for b in hmac_sha256(secret, body) {
        s.push_str(&format!("{b:02x}"));
    }
    s
}

/// Checks a webhook URL: `https://`, or `http://` to a loopback host (as
/// `--jwks-url`). Err: why.
pub fn check_url(url: &str) -> Result<hyper::Uri, String> {
    let scheme = url.split_once("://").map_or("", |(s, _)| s);
    let https = scheme.eq_ignore_ascii_case("https");
    if !https && !scheme.eq_ignore_ascii_case("http") {
        return Err(format!(
            "the approval webhook URL `{url}` is not an https:// URL"
        ));
    }
    let uri: hyper::Uri = url
        .parse()
        .map_err(|e| format!("the approval webhook URL `{url}` is not a URL: {e}"))?;
    let Some(host) = uri.host().filter(|h| !h.is_empty()) else {
        return Err(format!("the approval webhook URL `{url}` names no host"));
    };
    let bare = host.trim_start_matches('[').trim_end_matches(']');
    let loopback = bare.eq_ignore_ascii_case("localhost")
        || bare
            .parse::<std::net::IpAddr>()
            .is_ok_and(|ip| ip.is_loopback());
    if https || loopback {
        return Ok(uri);
    }
    Err(format!(
        "the approval webhook URL `{url}` is plain http:// to {host}, which is not a loopback address: anyone on the path could read the requests (arguments included) and forge answers"
    ))
}

/// The webhook's body for record `r` (the exact bytes signed).
pub fn payload(r: &Record) -> Vec<u8> {
    let (arguments, truncated) = if r.arguments.len() > MAX_ARGUMENT_BYTES {
        (serde_json::Value::Null, true)
    } else {
        (
            serde_json::from_str(&r.arguments).unwrap_or_else(|_| r.arguments.clone().into()),
            false,
        )
    };
    let v = serde_json::json!({
        "event": "approval.requested",
        "id": r.id,
        "server": r.server,
        "tool": r.tool,
        "arguments": arguments,
        "arguments_truncated": truncated,
        "rule": r.rule,
        "message": r.message,
        "caller": {"sub": r.sub, "iss": r.iss},
        "created": r.created.to_rfc3339(),
        "expires": r.expires.to_rfc3339(),
    });
    serde_json::to_vec(&v).unwrap_or_default()
}

/// Where the webhook goes and how it is signed.
#[derive(Clone)]
pub struct WebhookConfig {
    /// The URL (checked by [`check_url`]).
    pub url: hyper::Uri,
    /// The HMAC key (None: requests go unsigned).
    pub secret: Option<Vec<u8>>,
}

impl std::fmt::Debug for WebhookConfig {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("WebhookConfig")
            .field("url", &self.url)
            .field("signed", &self.secret.is_some())
            .finish()
    }
}

impl WebhookConfig {
    /// The policy's webhook, its secret read from the environment (`env`
    /// looks a variable up). Ok(None): no webhook. Err: the message and
    /// the help.
    pub fn from_policy(
        meta: &portcullis_core::policy::PolicyMeta,
        env: impl Fn(&str) -> Option<String>,
    ) -> Result<Option<WebhookConfig>, (String, String)> {
        let Some(c) = meta.approval_config else {
            return Ok(None);
        };
        let Some(url) = c.webhook_url else {
            return Ok(None);
        };
        let url = check_url(url).map_err(|e| {
            (
                e,
                "use an https:// URL (http:// only to 127.0.0.1, ::1 or localhost)".to_string(),
            )
        })?;
        let secret = match (c.secret_env, c.secret) {
            (Some(name), _) => match env(name) {
                Some(s) if !s.is_empty() => Some(s.into_bytes()),
                _ => {
                    return Err((
                        format!(
                            "the approval webhook's secret_env names {name}, which is not set (or empty) in the proxy's environment"
                        ),
                        format!(
                            "set {name} to the webhook's HMAC secret (the receiver checks X-Portcullis-Signature with it)"
                        ),
                    ));
                }
            },
            (None, Some(s)) => Some(s.as_bytes().to_vec()),
            (None, None) => None,
        };
        Ok(Some(WebhookConfig { url, secret }))
    }
}

/// The sending side of the webhook's queue (cheap to clone).
#[derive(Clone)]
pub struct Webhook {
    tx: mpsc::Sender<Record>,
    metrics: Option<Arc<Metrics>>,
    log: Log,
}

impl std::fmt::Debug for Webhook {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("Webhook")
    }
}

impl Webhook {
    /// Queues record `r`'s announcement; never waits. A full queue drops it.
    pub fn announce(&self, r: &Record) {
        match self.tx.try_send(r.clone()) {
            Ok(()) => {}
            Err(mpsc::error::TrySendError::Full(r)) => {
                self.log.warn(format_args!(
                    "approval webhook: the queue is full ({QUEUE} requests waiting); approval {} is not announced",
                    r.id
                ));
                if let Some(m) = &self.metrics {
                    m.webhook("dropped");
                }
            }
            Err(mpsc::error::TrySendError::Closed(r)) => {
                self.log.warn(format_args!(
                    "approval webhook: the sender has stopped; approval {} is not announced",
                    r.id
                ));
                if let Some(m) = &self.metrics {
                    m.webhook("dropped");
                }
            }
        }
    }

    /// A webhook and its background task (spawn it on the proxy's runtime).
    pub fn start(
        config: WebhookConfig,
        metrics: Option<Arc<Metrics>>,
        log: Log,
    ) -> (
        Webhook,
        impl std::future::Future<Output = ()> + Send + 'static,
    ) {
        let (tx, rx) = mpsc::channel(QUEUE);
        let hook = Webhook {
            tx,
            metrics: metrics.clone(),
            log,
        };
        (hook, run(rx, Arc::new(config), metrics, log))
    }
}

/// What one attempt came to.
enum Attempt {
    Delivered,
    /// A 4xx answer: not retried.
    Rejected(u16),
    /// Retried: a network error, a timeout, a 5xx.
    Failed(String),
}

async fn attempt(
    client: &crate::http::upstream::HttpClient,
    cfg: &WebhookConfig,
    body: &Bytes,
) -> Attempt {
    let mut req = hyper::Request::post(cfg.url.clone())
        .header(CONTENT_TYPE, HeaderValue::from_static("application/json"))
        .header(
            USER_AGENT,
            HeaderValue::from_static(concat!("portcullis/", env!("CARGO_PKG_VERSION"))),
        )
        .header("x-portcullis-event", "approval.requested");
    if let Some(secret) = &cfg.secret {
        req = req.header(SIGNATURE_HEADER, signature(secret, body));
    }
    let Ok(req) = req.body(Full::new(body.clone())) else {
        return Attempt::Failed("the request could not be built".into());
    };
    let sent = tokio::time::timeout(ATTEMPT_TIMEOUT, async {
        let resp = client.request(req).await.map_err(|e| e.to_string())?;
        let status = resp.status();
        // Read (a bounded part of) the answer so the connection can be reused.
        let _ = http_body_util::Limited::new(resp.into_body(), 64 * 1024)
            .collect()
            .await;
        Ok::<_, String>(status)
    })
    .await;
    match sent {
        Err(_) => Attempt::Failed(format!("no answer within {}s", ATTEMPT_TIMEOUT.as_secs())),
        Ok(Err(e)) => Attempt::Failed(e),
        Ok(Ok(s)) if s.is_success() => Attempt::Delivered,
        Ok(Ok(s)) if s.is_server_error() => Attempt::Failed(format!("HTTP {}", s.as_u16())),
        Ok(Ok(s)) => Attempt::Rejected(s.as_u16()),
    }
}

async fn deliver(
    client: crate::http::upstream::HttpClient,
    cfg: Arc<WebhookConfig>,
    r: Record,
    metrics: Option<Arc<Metrics>>,
    log: Log,
) {
    let body = Bytes::from(payload(&r));
    let mut delay = BACKOFF;
    let mut why = String::new();
    for n in 1..=ATTEMPTS {
        match attempt(&client, &cfg, &body).await {
            Attempt::Delivered => {
                log.debug(format_args!(
                    "approval webhook: approval {} announced",
                    r.id
                ));
                if let Some(m) = &metrics {
                    m.webhook("delivered");
                }
                return;
            }
            Attempt::Rejected(status) => {
                log.warn(format_args!(
                    "approval webhook: {} answered HTTP {status} for approval {} (not retried)",
                    cfg.url, r.id
                ));
                if let Some(m) = &metrics {
                    m.webhook("rejected");
                }
                return;
            }
            Attempt::Failed(e) => why = e,
        }
        if n < ATTEMPTS {
            tokio::time::sleep(delay).await;
            delay *= 2;
        }
    }
    log.warn(format_args!(
        "approval webhook: approval {} not announced to {} after {ATTEMPTS} attempts: {why}",
        r.id, cfg.url
    ));
    if let Some(m) = &metrics {
        m.webhook("failed");
    }
}

async fn run(
    mut rx: mpsc::Receiver<Record>,
    cfg: Arc<WebhookConfig>,
    metrics: Option<Arc<Metrics>>,
    log: Log,
) {
    let client = crate::http::upstream::client(ATTEMPT_TIMEOUT);
    let slots = Arc::new(tokio::sync::Semaphore::new(IN_FLIGHT));
    while let Some(r) = rx.recv().await {
        let Ok(slot) = slots.clone().acquire_owned().await else {
            return;
        };
        let (client, cfg, metrics) = (client.clone(), cfg.clone(), metrics.clone());
        tokio::spawn(async move {
            let _slot = slot;
            deliver(client, cfg, r, metrics, log).await;
        });
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn hex(b: &[u8]) -> String {
        b.iter().map(|x| format!("{x:02x}")).collect()
    }

    #[test]
    fn hmac_matches_rfc_4231() {
        // Test case 1.
        assert_eq!(
            hex(&hmac_sha256(&[0x0b; 20], b"Hi There")),
            "b0344c61d8db38535ca8afceaf0bf12b881dc200c9833da726e9376c2e32cff7"
        );
        // Test case 2.
        assert_eq!(
            hex(&hmac_sha256(b"Jefe", b"what do ya want for nothing?")),
            "5bdcc146bf60754e6a042426089575c75a003f089d2739839dec58b964ec3843"
        );
        // Test case 6: a key longer than the block.
        assert_eq!(
            hex(&hmac_sha256(
                &[0xaa; 131],
                b"Test Using Larger Than Block-Size Key - Hash Key First"
            )),
            "60e431591ee0b67f0d8a26aacbf5b77f8e0bc6213728c5140546040f0ee37f54"
        );
        assert!(signature(b"Jefe", b"what do ya want for nothing?").starts_with("sha256=5bdcc1"));
    }

    use portcullis_core::counters::UnixMillis;
    use portcullis_core::policy::{ApprovalConfig, PolicyMeta};

    static HOOK: ApprovalConfig = ApprovalConfig {
        webhook_url: Some("http://127.0.0.1:9/hook"),
        secret_env: Some("HOOK_SECRET"),
        secret: None,
        dedupe_window_ms: None,
    };
    static META: PolicyMeta = PolicyMeta {
        server: "s",
        file: "p.yaml",
        dialect: "intercept-v1",
        digest: "abc",
        rules: &[],
        counters: &[],
        idempotency: &[],
        approvals: &[],
        approval_config: Some(&HOOK),
    };

    fn record(arguments: String) -> Record {
        crate::approvals::NewRequest {
            fingerprint: "f".repeat(64),
            server: "s".into(),
            tool: "t".into(),
            arguments,
            rule: "r".into(),
            message: "m".into(),
            sub: "alice".into(),
            iss: "local".into(),
            timeout_ms: 60_000,
            dedupe_ms: None,
        }
        .into_record("apr_0123456789abcdef0123456789abcdef".into(), UnixMillis(0))
    }

    #[test]
    fn a_full_queue_drops_and_counts_without_waiting() {
        let metrics = Arc::new(Metrics::new(&META));
        let (tx, _rx) = mpsc::channel(1);
        let hook = Webhook {
            tx,
            metrics: Some(metrics.clone()),
            log: Log {
                level: crate::log::Level::Error,
            },
        };
        let r = record("{}".into());
        hook.announce(&r);
        hook.announce(&r);
        hook.announce(&r);
        let text = metrics.render();
        assert!(
            text.contains("portcullis_approval_webhook_total{server=\"s\",result=\"dropped\"} 2"),
            "{text}"
        );
    }

    #[test]
    fn the_payload_bounds_the_arguments_and_the_secret_comes_from_the_environment() {
        let v: serde_json::Value =
            serde_json::from_slice(&payload(&record(r#"{"a":1}"#.into()))).unwrap();
        assert_eq!(v["arguments"], serde_json::json!({"a": 1}));
        assert_eq!(v["arguments_truncated"], false);
        assert_eq!(
            v["caller"],
            serde_json::json!({"sub": "alice", "iss": "local"})
        );
        let big = format!(r#"{{"a":"{}"}}"#, "x".repeat(MAX_ARGUMENT_BYTES));
        let v: serde_json::Value = serde_json::from_slice(&payload(&record(big))).unwrap();
        assert_eq!(v["arguments"], serde_json::Value::Null);
        assert_eq!(v["arguments_truncated"], true);

        let c = WebhookConfig::from_policy(&META, |n| (n == "HOOK_SECRET").then(|| "k".into()))
            .unwrap()
            .unwrap();
        assert_eq!(c.secret.as_deref(), Some(&b"k"[..]));
        assert_eq!(c.url, "http://127.0.0.1:9/hook");
        let (msg, help) = WebhookConfig::from_policy(&META, |_| None).unwrap_err();
        assert!(msg.contains("HOOK_SECRET, which is not set"), "{msg}");
        assert!(help.contains("X-Portcullis-Signature"), "{help}");
    }

    #[test]
    fn webhook_urls_are_https_or_loopback() {
        assert!(check_url("https://hooks.example.com/a").is_ok());
        assert!(check_url("http://127.0.0.1:9/a").is_ok());
        assert!(check_url("http://localhost/a").is_ok());
        assert!(check_url("http://[::1]:8/a").is_ok());
        let e = check_url("http://hooks.example.com/a").unwrap_err();
        assert!(e.contains("not a loopback address"), "{e}");
        assert!(
            check_url("ftp://x/")
                .unwrap_err()
                .contains("not an https:// URL")
        );
    }
}
