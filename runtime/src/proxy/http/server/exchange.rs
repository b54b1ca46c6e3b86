//! One POSTed body of a session: its messages checked by the session and
//! sent upstream, and the answers given back as JSON or as a (resumable)
//! SSE stream.

use std::sync::Arc;

use bytes::Bytes;
use hyper::{Response, StatusCode};
use tokio::sync::mpsc;

use super::Server;
use super::body::{Body, empty, event_stream, http_error, join_array, json_response};
use super::router::Attached;
use super::sessions::{Down, To, Up};
use crate::jsonrpc::Envelope;
use crate::proxy::http::lock;
use crate::proxy::http::relay::{Sent, Sink};
use crate::proxy::http::upstream::{Answer, Failure};
use crate::proxy::session::UPSTREAM_GONE;

/// How a POST holding requests is answered.
#[derive(Debug, Clone, Copy)]
pub(super) struct Reply {
    /// The client accepts an SSE stream (else: JSON).
    pub(super) sse: bool,
    /// Its protocol version (2025-11-25 or later) takes a priming event.
    pub(super) prime: bool,
}

impl Server {
    /// One POSTed body of an existing (or just created) session.
    pub(super) async fn exchange(
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
                            && let Some(v) = crate::proxy::http::relay::negotiated_version(f)
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
}
