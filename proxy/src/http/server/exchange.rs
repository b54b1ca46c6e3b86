//! One POSTed body of a session: its messages checked by the session and
//! sent upstream, and the answers given back as JSON or as a (resumable)
//! SSE stream.

use std::sync::Arc;

use bytes::Bytes;
use hyper::Response;
use tokio::sync::mpsc;

use super::Server;
use super::body::{Body, answers_response, event_stream};
use super::router::Attached;
use super::sessions::{Down, To, Up};
use crate::http::lock;
use crate::http::relay::{Sent, Sink, fail_pending, negotiated_version};
use crate::http::upstream::{Answer, Failure};
use crate::session::UPSTREAM_GONE;
use portcullis_core::jsonrpc::Envelope;

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
        let mut replies = out.reply;
        // Calls held for in-band approval: what the proxy says about a call
        // held by an earlier POST goes on that POST's stream, and a call the
        // user approved goes upstream with it (its answer comes there).
        let (approved, msgs): (Vec<_>, Vec<_>) = msgs
            .into_iter()
            .partition(|(_, s)| s.raw_id.as_deref().is_some_and(|id| down.is_held(id)));
        let mut asked = Vec::new();
        for m in out.for_call {
            if down.is_held(&m.call_id) {
                down.send_held(m, self.log);
            } else if reply.sse {
                asked.push(m);
            } else if !m.last {
                // A client that takes JSON only cannot get the question.
                let why =
                    "the client cannot be asked: its POST accepts no text/event-stream answer";
                replies.extend(down.session.withdraw(&m.call_id, why));
            }
        }
        for (m, s) in approved {
            let Some((held, held_attached)) = s.raw_id.as_deref().and_then(|id| down.take_held(id))
            else {
                continue;
            };
            let _ = self.deliver(down, m, &s, &held, &held_attached).await;
        }
        let requests = msgs.iter().filter(|(_, s)| s.raw_id.is_some()).count();
        let (sink, rx) = mpsc::channel::<Bytes>(64.max(replies.len() + asked.len() + 1));
        // Set before the requests go out: a server request the upstream sends
        // at once may be routed to this stream (a JSON-only client's is never
        // chosen: it would drop anything but answers).
        let attached = Attached::new(std::sync::atomic::AtomicBool::new(reply.sse));
        if requests == 0 && asked.is_empty() {
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
            return answers_response(answers);
        }
        // One request to an HTTP upstream that answers with JSON: answer with
        // JSON too (what the client would get directly), without a stream.
        if let (Up::Http(link), true, [(m, sent)]) = (
            &down.up,
            replies.is_empty() && asked.is_empty(),
            msgs.as_slice(),
        ) {
            match link.up.post(m.clone(), sent.initialize).await {
                Ok(Answer::Json(body)) => {
                    let mut out = down.session.from_server(&body);
                    // The proxy's answers to server requests it withheld.
                    for a in std::mem::take(&mut out.reply) {
                        let up = link.up.clone();
                        tokio::spawn(async move {
                            let _ = up.post(Bytes::from(a), false).await;
                        });
                    }
                    let single = out.forward.len() == 1;
                    if single
                        && sent.initialize
                        && let Some(v) = negotiated_version(&out.forward[0])
                    {
                        link.up.set_protocol(&v);
                    }
                    let forwarded: Vec<Vec<u8>> = out.forward.iter().map(|f| f.to_vec()).collect();
                    drop(out);
                    // Still pending now: the one JSON answer there will be did not answer it.
                    let unanswered = sent.raw_id.as_deref().and_then(|id| {
                        down.session.fail_pending(
                            id,
                            UPSTREAM_GONE,
                            "the upstream's JSON answer did not answer the request",
                        )
                    });
                    if single {
                        return answers_response(forwarded.into_iter().chain(unanswered).collect());
                    }
                    for f in forwarded.into_iter().chain(unanswered) {
                        let _ = sink.try_send(Bytes::from(f));
                    }
                }
                Ok(answer) => down.relay(link, answer, sent, &sink),
                Err(Failure::SessionGone) => return self.upstream_ended(down, link),
                Err(f) => link.failed(sent, &f, &sink).await,
            }
            drop(sink);
            return self.stream_or_json(down, rx, reply, attached).await;
        }
        for r in replies {
            let _ = sink.try_send(Bytes::from(r));
        }
        // The question goes on this POST's stream, which stays open (held)
        // until the call is answered.
        for m in asked {
            if m.last {
                down.take_held(&m.call_id);
            } else {
                down.hold(&m.call_id, &sink, &attached);
            }
            let _ = sink.try_send(Bytes::from(m.message));
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
        answers_response(answers)
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
                Err(Failure::SessionGone) => Err(self.upstream_ended(down, link)),
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
                            fail_pending(
                                &down.session,
                                id,
                                UPSTREAM_GONE,
                                "the MCP server process of this session has exited",
                                sink,
                            )
                            .await;
                        }
                    }
                }
                Ok(())
            }
        }
    }
}
