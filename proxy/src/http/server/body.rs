//! Request bodies and headers (size limit, what the client accepts) and
//! the responses the endpoint gives: JSON, JSON-RPC errors with an HTTP
//! status, and SSE streams fed by a channel.

use std::convert::Infallible;
use std::pin::Pin;
use std::task::{Context, Poll};

use bytes::Bytes;
use http_body_util::combinators::BoxBody;
use http_body_util::{BodyExt, Full};
use hyper::body::{Frame, Incoming};
use hyper::header::{HeaderName, HeaderValue};
use hyper::{Request, Response, StatusCode};
use tokio::sync::mpsc;

use super::Server;
use crate::http::sse;
use crate::respond;
use crate::session::join_array;
use portcullis_core::jsonrpc::INVALID_REQUEST;

pub(super) type Body = BoxBody<Bytes, Infallible>;

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

pub(super) fn empty(status: StatusCode) -> Response<Body> {
    let mut r = Response::new(full(Bytes::new()));
    *r.status_mut() = status;
    r
}

/// An HTTP error with a JSON-RPC error body (what the SDK servers send).
pub(super) fn http_error(status: StatusCode, code: i32, message: &str) -> Response<Body> {
    let mut r = Response::new(full(respond::error(None, code, message)));
    *r.status_mut() = status;
    r.headers_mut().insert(
        hyper::header::CONTENT_TYPE,
        HeaderValue::from_static("application/json"),
    );
    r
}

pub(super) fn json_response(body: Vec<u8>) -> Response<Body> {
    let mut r = Response::new(full(body));
    r.headers_mut().insert(
        hyper::header::CONTENT_TYPE,
        HeaderValue::from_static("application/json"),
    );
    r
}

/// An SSE response of `rx`'s messages (`framed`: they are events already).
pub(super) fn event_stream(rx: mpsc::Receiver<Bytes>, framed: bool) -> Response<Body> {
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

pub(super) fn header<'a>(req: &'a Request<Incoming>, name: &HeaderName) -> Option<&'a str> {
    req.headers().get(name).and_then(|v| v.to_str().ok())
}

/// A protocol version (`YYYY-MM-DD`) of 2025-11-25 or later, whose clients
/// take an SSE event with empty data (a priming event).
pub(super) fn takes_priming_event(version: &str) -> bool {
    let b = version.as_bytes();
    let is_date = b.len() == 10
        && b.iter().enumerate().all(|(i, c)| match i {
            4 | 7 => *c == b'-',
            _ => c.is_ascii_digit(),
        });
    is_date && version >= "2025-11-25"
}

pub(super) fn accepts_sse(req: &Request<Incoming>) -> bool {
    match header(req, &hyper::header::ACCEPT) {
        None => true,
        Some(a) => a.split(',').any(|t| {
            let t = t.split(';').next().unwrap_or("").trim();
            t == "text/event-stream" || t == "*/*" || t == "text/*"
        }),
    }
}

impl Server {
    /// Refuses a POST by its headers, before its body is read: a
    /// `Content-Length` over --max-message-size (413), a `Content-Type` that
    /// is not JSON (415).
    pub(super) fn check_body_headers(&self, req: &Request<Incoming>) -> Result<(), Response<Body>> {
        let max = self.opts.max_message_bytes;
        if req
            .headers()
            .get(hyper::header::CONTENT_LENGTH)
            .and_then(|v| v.to_str().ok()?.parse::<u64>().ok())
            .is_some_and(|n| n > max as u64)
        {
            return Err(too_large(max));
        }
        if let Some(ct) = header(req, &hyper::header::CONTENT_TYPE) {
            let t = ct.split(';').next().unwrap_or("").trim();
            if !t.eq_ignore_ascii_case("application/json") {
                return Err(http_error(
                    StatusCode::UNSUPPORTED_MEDIA_TYPE,
                    INVALID_REQUEST,
                    "Unsupported Media Type: Content-Type must be application/json",
                ));
            }
        }
        Ok(())
    }

    /// Reads a request body of at most --max-message-size bytes.
    pub(super) async fn read_body(&self, body: Incoming) -> Result<Bytes, Response<Body>> {
        let max = self.opts.max_message_bytes;
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
                    return Err(too_large(max));
                }
                out.extend_from_slice(&d);
            }
        }
        Ok(Bytes::from(out))
    }
}

/// 413, for a body over --max-message-size (`max` bytes).
fn too_large(max: usize) -> Response<Body> {
    http_error(
        StatusCode::PAYLOAD_TOO_LARGE,
        INVALID_REQUEST,
        &format!("Payload Too Large: the limit is {max} bytes (--max-message-size)"),
    )
}

/// The JSON answer to a POST: 202 without answers, the one answer, or a
/// batch of them.
pub(super) fn answers_response(mut answers: Vec<Vec<u8>>) -> Response<Body> {
    match answers.len() {
        0 => empty(StatusCode::ACCEPTED),
        1 => json_response(answers.pop().expect("one")),
        _ => json_response(join_array(&answers)),
    }
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
}
