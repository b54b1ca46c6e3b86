//! The routing of a single ordered upstream output (a child process, or a
//! legacy HTTP+SSE upstream) to the client's streams: an answer to the POST
//! of its request, a progress notification to the POST that carried its
//! token, anything else to the GET stream, else to a POST stream a client
//! reads, else queued for the next stream that opens.

use std::collections::HashMap;
use std::sync::{Arc, Mutex};

use bytes::Bytes;
use tokio::sync::mpsc;

use crate::http::lock;
use crate::http::relay::{Sent, Sink};
use crate::log::Log;
use crate::session::IdKey;
use portcullis_core::json::{Val, Value};
use portcullis_core::jsonrpc::Envelope;

/// Routes the messages of a single ordered upstream output to the client's streams.
#[derive(Default)]
pub(super) struct Router {
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
pub(super) type Attached = Arc<std::sync::atomic::AtomicBool>;

/// Server messages kept for the next client stream, at most.
pub(super) const MAX_QUEUED: usize = 1024;

fn key(raw: &[u8]) -> Option<IdKey> {
    portcullis_core::json::validate(raw, portcullis_core::json::Strictness::LENIENT).ok()?;
    IdKey::of(Value::from_validated(raw))
}

impl Router {
    /// A request goes out: its answer (and progress) will go to `sink`.
    /// Returns the queued server messages, which now have a stream.
    pub(super) fn expect(&self, sent: &Sent, sink: &Sink, attached: &Attached) -> Vec<Bytes> {
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
    pub(super) fn forget(&self, raw_id: &[u8]) {
        let Some(id) = key(raw_id) else { return };
        let mut r = lock(&self.inner);
        if let Some((_, _, Some(t))) = r.by_id.remove(&id) {
            r.by_token.remove(&t);
        }
    }

    /// The client's GET stream opened (or closed); returns the queued messages.
    pub(super) fn set_get(&self, sink: Option<Sink>) -> Vec<Bytes> {
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

    pub(super) async fn route(&self, msg: Bytes, log: Log) {
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
pub(super) fn router_input(router: Arc<Router>, log: Log) -> Sink {
    let (tx, mut rx) = mpsc::channel::<Bytes>(256);
    tokio::spawn(async move {
        while let Some(m) = rx.recv().await {
            router.route(m, log).await;
        }
    });
    tx
}

#[cfg(test)]
mod tests {
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
                crate::log::Log {
                    level: crate::log::Level::Error,
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
}
