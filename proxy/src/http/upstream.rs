//! The client side of MCP over HTTP: a Streamable HTTP upstream (one POST
//! per message; the answer is JSON or an SSE stream; a GET stream for the
//! server's own messages; `Mcp-Session-Id` and `MCP-Protocol-Version` kept;
//! DELETE at the end), and a legacy HTTP+SSE upstream (GET stream with an
//! `endpoint` event, messages POSTed to that endpoint).

use std::sync::Mutex;
use std::time::Duration;

use bytes::Bytes;
use http_body_util::{BodyExt, Full};
use hyper::header::{HeaderName, HeaderValue};
use hyper::{Method, Request, StatusCode, Uri};
use hyper_util::client::legacy::Client;
use hyper_util::client::legacy::connect::HttpConnector;
use hyper_util::rt::TokioExecutor;

use super::sse;

/// A URL (re-exported for the command line).
pub use hyper::Uri as Url;

/// The HTTP client every upstream uses: keep-alive pooled connections,
/// http and https (rustls with the webpki roots), no redirects.
pub type HttpClient = Client<hyper_rustls::HttpsConnector<HttpConnector>, Full<Bytes>>;

/// A client for upstream requests; `connect_timeout` bounds each TCP connect.
pub fn client(connect_timeout: Duration) -> HttpClient {
    let mut http = HttpConnector::new();
    http.enforce_http(false);
    http.set_nodelay(true);
    http.set_connect_timeout(Some(connect_timeout));
    let https = hyper_rustls::HttpsConnectorBuilder::new()
        .with_webpki_roots()
        .https_or_http()
        .enable_http1()
        .wrap_connector(http);
    Client::builder(TokioExecutor::new())
        .pool_idle_timeout(Duration::from_secs(60))
        .build(https)
}

/// `Name: value` (a `--header` flag) to a header; the error names the bad value.
pub fn parse_header(h: &str) -> Result<(HeaderName, HeaderValue), String> {
    let bad = || format!("--header `{h}` is not `Name: value`");
    let (name, value) = h.split_once(':').ok_or_else(bad)?;
    let name = HeaderName::from_bytes(name.trim().as_bytes()).map_err(|_| bad())?;
    let value = HeaderValue::from_str(value.trim())
        .map_err(|_| format!("--header `{name}`: the value has a control character"))?;
    Ok((name, value))
}

/// Why an HTTP exchange with the upstream failed.
#[derive(Debug)]
pub enum Failure {
    /// No connection (refused, DNS, TLS, reset) or the request could not be sent.
    Connect(String),
    /// No response headers in time.
    Timeout(Duration),
    /// A status that is not a success; `text` is a one-line excerpt of the body.
    Status {
        /// The status.
        status: StatusCode,
        /// The start of the body, made printable.
        text: String,
    },
    /// The upstream ended the MCP session (404 for a request carrying its session id).
    SessionGone,
    /// A success status whose body is not an MCP answer (HTML, wrong type, too big).
    BadAnswer(String),
}

impl Failure {
    /// A message for the client, naming the upstream.
    pub fn describe(&self, url: &Uri) -> String {
        match self {
            Failure::Connect(e) => format!("cannot reach the upstream MCP server {url}: {e}"),
            Failure::Timeout(d) => format!(
                "the upstream MCP server {url} sent no response within {} s",
                d.as_secs_f64()
            ),
            Failure::Status { status, text } => {
                let hint = match status.as_u16() {
                    401 | 403 => " (does it need --header \"Authorization: Bearer ...\"?)",
                    404 | 405 => " (is this the MCP endpoint? it is often /mcp)",
                    _ => "",
                };
                if text.is_empty() {
                    format!("the upstream MCP server {url} answered HTTP {status}{hint}")
                } else {
                    format!("the upstream MCP server {url} answered HTTP {status}{hint}: {text}")
                }
            }
            Failure::SessionGone => format!(
                "the upstream MCP server {url} ended the MCP session (HTTP 404 for its session id); the client must initialize again"
            ),
            Failure::BadAnswer(e) => {
                format!("the upstream MCP server {url} sent an unusable answer: {e}")
            }
        }
    }
}

/// The answer to a POST.
pub enum Answer {
    /// 202 (or a success without a body): nothing to relay.
    Accepted,
    /// One JSON body.
    Json(Bytes),
    /// An SSE stream of messages.
    Stream(sse::Stream),
}

/// What an upstream session remembers between requests.
#[derive(Debug, Default)]
struct State {
    session: Option<HeaderValue>,
    protocol: Option<HeaderValue>,
    /// Legacy HTTP+SSE: where messages are POSTed.
    endpoint: Option<Uri>,
}

/// One MCP session with a Streamable HTTP (or legacy HTTP+SSE) server.
pub struct Upstream {
    client: HttpClient,
    url: Uri,
    headers: Vec<(HeaderName, HeaderValue)>,
    state: Mutex<State>,
    /// Longest message (JSON body or SSE event) accepted.
    pub max: usize,
    /// How long to wait for response headers.
    pub timeout: Duration,
}

const ACCEPT_BOTH: HeaderValue = HeaderValue::from_static("application/json, text/event-stream");
const EVENT_STREAM: HeaderValue = HeaderValue::from_static("text/event-stream");
const JSON: HeaderValue = HeaderValue::from_static("application/json");

fn mcp_session_id() -> HeaderName {
    HeaderName::from_static("mcp-session-id")
}

fn protocol_version() -> HeaderName {
    HeaderName::from_static("mcp-protocol-version")
}

impl Upstream {
    /// A session with the server at `url` (not contacted yet).
    pub fn new(
        client: HttpClient,
        url: Uri,
        headers: Vec<(HeaderName, HeaderValue)>,
        max: usize,
        timeout: Duration,
    ) -> Upstream {
        Upstream {
            client,
            url,
            headers,
            state: Mutex::new(State::default()),
            max,
            timeout,
        }
    }

    /// The server's URL.
    pub fn url(&self) -> &Uri {
        &self.url
    }

    fn state(&self) -> std::sync::MutexGuard<'_, State> {
        self.state.lock().unwrap_or_else(|e| e.into_inner())
    }

    /// The upstream's session id, if it gave one.
    pub fn session_id(&self) -> Option<HeaderValue> {
        self.state().session.clone()
    }

    /// Records the protocol version the session negotiated (sent on every later request).
    pub fn set_protocol(&self, version: &str) {
        if let Ok(v) = HeaderValue::from_str(version) {
            self.state().protocol = Some(v);
        }
    }

    /// Legacy HTTP+SSE (connected): answers arrive on the GET stream, not on POSTs.
    pub fn is_legacy(&self) -> bool {
        self.state().endpoint.is_some()
    }

    /// Forgets the session (a new `initialize` starts another).
    pub fn reset(&self) {
        let mut s = self.state();
        s.session = None;
        s.protocol = None;
    }

    fn request(
        &self,
        method: Method,
        uri: &Uri,
        accept: HeaderValue,
    ) -> hyper::http::request::Builder {
        let mut b = Request::builder()
            .method(method)
            .uri(uri.clone())
            .header(hyper::header::ACCEPT, accept);
        for (k, v) in &self.headers {
            b = b.header(k, v);
        }
        let s = self.state();
        if let Some(id) = &s.session {
            b = b.header(mcp_session_id(), id);
        }
        if let Some(p) = &s.protocol {
            b = b.header(protocol_version(), p);
        }
        b
    }

    async fn send(
        &self,
        req: Request<Full<Bytes>>,
    ) -> Result<hyper::Response<hyper::body::Incoming>, Failure> {
        match tokio::time::timeout(self.timeout, self.client.request(req)).await {
            Err(_) => Err(Failure::Timeout(self.timeout)),
            Ok(Err(e)) => Err(Failure::Connect(error_chain(&e))),
            Ok(Ok(r)) => Ok(r),
        }
    }

    /// POSTs one message. For `initialize`, the session is reset first and
    /// the new session id is taken from the answer.
    pub async fn post(&self, msg: Bytes, initialize: bool) -> Result<Answer, Failure> {
        if initialize {
            self.reset();
        }
        let endpoint = self.state().endpoint.clone();
        let legacy = endpoint.is_some();
        let uri = endpoint.unwrap_or_else(|| self.url.clone());
        let had_session = self.state().session.is_some();
        let req = self
            .request(Method::POST, &uri, ACCEPT_BOTH)
            .header(hyper::header::CONTENT_TYPE, JSON)
            .body(Full::new(msg))
            .map_err(|e| Failure::Connect(e.to_string()))?;
        let resp = self.send(req).await?;
        let status = resp.status();
        if !status.is_success() {
            if status == StatusCode::NOT_FOUND && had_session && !initialize {
                return Err(Failure::SessionGone);
            }
            return Err(status_failure(resp).await);
        }
        if initialize && let Some(id) = resp.headers().get(mcp_session_id()) {
            self.state().session = Some(id.clone());
        }
        if legacy {
            // The answer travels on the GET stream.
            drain(resp.into_body()).await;
            return Ok(Answer::Accepted);
        }
        self.answer(resp).await
    }

    async fn answer(
        &self,
        resp: hyper::Response<hyper::body::Incoming>,
    ) -> Result<Answer, Failure> {
        let status = resp.status();
        let ctype = content_type(&resp);
        if status == StatusCode::ACCEPTED || status == StatusCode::NO_CONTENT {
            drain(resp.into_body()).await;
            return Ok(Answer::Accepted);
        }
        match ctype.as_str() {
            "text/event-stream" => Ok(Answer::Stream(sse::Stream::new(resp.into_body(), self.max))),
            "application/json" => {
                let body = read_limited(resp.into_body(), self.max).await?;
                if body.iter().all(u8::is_ascii_whitespace) {
                    return Ok(Answer::Accepted);
                }
                Ok(Answer::Json(body))
            }
            "" if resp
                .headers()
                .get(hyper::header::CONTENT_LENGTH)
                .is_some_and(|l| l == "0") =>
            {
                Ok(Answer::Accepted)
            }
            other => {
                let text = excerpt(resp.into_body()).await;
                Err(Failure::BadAnswer(format!(
                    "HTTP {status} with content type `{}`{}",
                    if other.is_empty() { "none" } else { other },
                    if text.is_empty() {
                        String::new()
                    } else {
                        format!(": {text}")
                    }
                )))
            }
        }
    }

    /// Opens the GET stream: the standalone stream of server messages, or
    /// (with `last_event_id`) the resumption of a stream that broke.
    /// `Ok(None)` when the server offers none (405).
    pub async fn get(&self, last_event_id: Option<&str>) -> Result<Option<sse::Stream>, Failure> {
        let had_session = self.state().session.is_some();
        let mut b = self.request(Method::GET, &self.url, EVENT_STREAM);
        if let Some(id) = last_event_id
            && let Ok(v) = HeaderValue::from_str(id)
        {
            b = b.header(HeaderName::from_static("last-event-id"), v);
        }
        let req = b
            .body(Full::new(Bytes::new()))
            .map_err(|e| Failure::Connect(e.to_string()))?;
        let resp = self.send(req).await?;
        let status = resp.status();
        if status == StatusCode::METHOD_NOT_ALLOWED {
            drain(resp.into_body()).await;
            return Ok(None);
        }
        if status == StatusCode::NOT_FOUND && had_session {
            return Err(Failure::SessionGone);
        }
        if !status.is_success() {
            return Err(status_failure(resp).await);
        }
        if content_type(&resp) != "text/event-stream" {
            let ct = content_type(&resp);
            return Err(Failure::BadAnswer(format!(
                "the GET stream has content type `{ct}`, not text/event-stream"
            )));
        }
        Ok(Some(sse::Stream::new(resp.into_body(), self.max)))
    }

    /// Ends the session (DELETE with its id); a no-op without one. Best effort.
    pub async fn delete(&self) -> Result<(), Failure> {
        if self.state().session.is_none() {
            return Ok(());
        }
        let req = self
            .request(Method::DELETE, &self.url, ACCEPT_BOTH)
            .body(Full::new(Bytes::new()))
            .map_err(|e| Failure::Connect(e.to_string()))?;
        let resp = self.send(req).await?;
        let status = resp.status();
        drain(resp.into_body()).await;
        self.reset();
        if status.is_success() || status == StatusCode::METHOD_NOT_ALLOWED {
            Ok(())
        } else {
            Err(Failure::Status {
                status,
                text: String::new(),
            })
        }
    }

    /// Legacy HTTP+SSE: opens the GET stream and waits for its `endpoint`
    /// event; later POSTs go there. Returns the stream (messages follow on it).
    pub async fn connect_legacy(&self) -> Result<sse::Stream, Failure> {
        let req = self
            .request(Method::GET, &self.url, EVENT_STREAM)
            .body(Full::new(Bytes::new()))
            .map_err(|e| Failure::Connect(e.to_string()))?;
        let resp = self.send(req).await?;
        if !resp.status().is_success() {
            return Err(status_failure(resp).await);
        }
        if content_type(&resp) != "text/event-stream" {
            let ct = content_type(&resp);
            return Err(Failure::BadAnswer(format!(
                "the legacy SSE endpoint answered with content type `{ct}`, not text/event-stream"
            )));
        }
        let mut stream = sse::Stream::new(resp.into_body(), self.max);
        let first = tokio::time::timeout(self.timeout, async {
            loop {
                match stream.next().await {
                    Ok(Some(sse::Item::Event(e))) if e.kind == "endpoint" => return Ok(e.data),
                    Ok(Some(_)) => continue,
                    Ok(None) => {
                        return Err("the stream ended before its `endpoint` event".to_string());
                    }
                    Err(e) => return Err(error_chain(&e)),
                }
            }
        })
        .await
        .map_err(|_| Failure::Timeout(self.timeout))?
        .map_err(Failure::BadAnswer)?;
        let endpoint = resolve(&self.url, &String::from_utf8_lossy(&first))
            .ok_or_else(|| Failure::BadAnswer("the `endpoint` event is not a URL".into()))?;
        // Only the server's own origin: an endpoint elsewhere would send the
        // client's messages (and the --header credentials) to another host.
        if endpoint.authority() != self.url.authority() || endpoint.scheme() != self.url.scheme() {
            return Err(Failure::BadAnswer(format!(
                "the `endpoint` event points to another origin ({endpoint})"
            )));
        }
        self.state().endpoint = Some(endpoint);
        Ok(stream)
    }
}

/// Resolves an `endpoint` event's URI against the SSE URL.
fn resolve(base: &Uri, reference: &str) -> Option<Uri> {
    let reference = reference.trim();
    if reference.starts_with("http://") || reference.starts_with("https://") {
        return reference.parse().ok();
    }
    let path_and_query = if reference.starts_with('/') {
        reference.to_string()
    } else {
        let base_path = base.path();
        let dir = &base_path[..base_path.rfind('/').map_or(0, |i| i + 1)];
        format!("{dir}{reference}")
    };
    Uri::builder()
        .scheme(base.scheme()?.clone())
        .authority(base.authority()?.clone())
        .path_and_query(path_and_query)
        .build()
        .ok()
}

fn content_type<B>(resp: &hyper::Response<B>) -> String {
    resp.headers()
        .get(hyper::header::CONTENT_TYPE)
        .and_then(|v| v.to_str().ok())
        .and_then(|v| v.split(';').next())
        .unwrap_or("")
        .trim()
        .to_ascii_lowercase()
}

/// A std error with its sources, on one line.
pub fn error_chain(e: &(dyn std::error::Error + 'static)) -> String {
    let mut s = e.to_string();
    let mut cur = e.source();
    while let Some(c) = cur {
        let t = c.to_string();
        if !s.contains(&t) {
            s.push_str(": ");
            s.push_str(&t);
        }
        cur = c.source();
    }
    s
}

async fn drain(mut body: hyper::body::Incoming) {
    // Bounded: a misbehaving server cannot keep us reading.
    let _ = tokio::time::timeout(Duration::from_secs(5), async {
        let mut n = 0usize;
        while let Some(Ok(f)) = body.frame().await {
            n += f.data_ref().map_or(0, |d| d.len());
            if n > 1 << 20 {
                break;
            }
        }
    })
    .await;
}

async fn read_limited(mut body: hyper::body::Incoming, max: usize) -> Result<Bytes, Failure> {
    let mut out = Vec::new();
    while let Some(frame) = body.frame().await {
        let frame = frame.map_err(|e| Failure::Connect(error_chain(&e)))?;
        if let Ok(d) = frame.into_data() {
            if out.len() + d.len() > max {
                return Err(Failure::BadAnswer(format!(
                    "a JSON answer larger than the limit of {max} bytes"
                )));
            }
            out.extend_from_slice(&d);
        }
    }
    Ok(Bytes::from(out))
}

/// The first few hundred bytes of a body as one printable line (HTML tags removed).
async fn excerpt(mut body: hyper::body::Incoming) -> String {
    let mut buf = Vec::new();
    let _ = tokio::time::timeout(Duration::from_secs(2), async {
        while let Some(Ok(f)) = body.frame().await {
            if let Ok(d) = f.into_data() {
                buf.extend_from_slice(&d);
            }
            if buf.len() >= 4096 {
                break;
            }
        }
    })
    .await;
    buf.truncate(4096);
    let text = String::from_utf8_lossy(&buf);
    let mut plain = String::new();
    let mut in_tag = false;
    for c in text.chars() {
        match c {
            '<' => in_tag = true,
            '>' if in_tag => {
                in_tag = false;
                plain.push(' ');
            }
            _ if in_tag => {}
            c if c.is_control() => plain.push(' '),
            c => plain.push(c),
        }
    }
    let words: Vec<&str> = plain.split_whitespace().collect();
    let mut line = words.join(" ");
    if line.chars().count() > 200 {
        line = line.chars().take(200).collect::<String>() + "...";
    }
    line
}

async fn status_failure(resp: hyper::Response<hyper::body::Incoming>) -> Failure {
    let status = resp.status();
    Failure::Status {
        status,
        text: excerpt(resp.into_body()).await,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn endpoints_resolve_against_the_sse_url() {
        let base: Uri = "http://127.0.0.1:3001/sse".parse().unwrap();
        assert_eq!(
            resolve(&base, "/message?sessionId=abc")
                .unwrap()
                .to_string(),
            "http://127.0.0.1:3001/message?sessionId=abc"
        );
        assert_eq!(
            resolve(&base, "messages?x=1").unwrap().to_string(),
            "http://127.0.0.1:3001/messages?x=1"
        );
        assert_eq!(
            resolve(&base, "http://other:1/m").unwrap().to_string(),
            "http://other:1/m"
        );
    }

    #[test]
    fn headers_parse() {
        let (k, v) = parse_header("Authorization:  Bearer x ").unwrap();
        assert_eq!(
            (k.as_str(), v.to_str().unwrap()),
            ("authorization", "Bearer x")
        );
        assert!(parse_header("no colon").is_err());
        assert!(parse_header("Bad Name: v").is_err());
    }
}
