//! `portcullis --upstream URL`: the client speaks stdio, the server
//! Streamable HTTP (or legacy HTTP+SSE).
//!
//! One task reads the client's lines and checks each with the session; every
//! message that may pass is POSTed by its own task, so a slow call never
//! blocks another, and a server request arriving on one answer stream is
//! answered by the client with a POST that goes out at once (no head-of-line
//! blocking). Only `initialize` and `notifications/initialized` are sent
//! before the next line is read, up to their response headers: the session
//! id comes with the first, and the second must precede everything else.
//! One writer task owns stdout, so messages never interleave.

use std::sync::Arc;
use std::time::Duration;

use bytes::Bytes;
use tokio::io::{BufReader, BufWriter};
use tokio::sync::mpsc;
use tokio::task::JoinSet;

use super::relay::{Link, Sent};
use super::upstream::{self, Upstream};
use crate::lines::{Line, LineReader, write_lines};
use crate::log::Log;
use crate::respond;
use crate::session::Session;
use crate::stdio::{client_input, client_output};
use portcullis_core::jsonrpc::INVALID_REQUEST;

/// An HTTP upstream.
#[derive(Debug, Clone)]
pub struct UpstreamOptions {
    /// The MCP endpoint (Streamable HTTP) or SSE endpoint (legacy).
    pub url: hyper::Uri,
    /// Headers sent with every request (`--header`).
    pub headers: Vec<(hyper::header::HeaderName, hyper::header::HeaderValue)>,
    /// The legacy HTTP+SSE transport (GET stream + `endpoint` event).
    pub legacy: bool,
    /// Longest message accepted in either direction.
    pub max_message_bytes: usize,
    /// Answer (and roll back) a request not answered in this time.
    pub request_timeout: Option<Duration>,
    /// Bound on each TCP (and TLS) connect.
    pub connect_timeout: Duration,
    /// After the client closes stdin: how long answers still in flight may take.
    pub grace: Duration,
}

impl UpstreamOptions {
    /// A session with this upstream.
    pub fn upstream(&self, client: upstream::HttpClient) -> Upstream {
        Upstream::new(
            client,
            self.url.clone(),
            self.headers.clone(),
            self.max_message_bytes,
            // A JSON answer's headers come with the answer: wait as long as for the answer.
            self.request_timeout
                .unwrap_or(Duration::from_secs(365 * 24 * 3600)),
        )
    }
}

/// Runs until the client closes stdin (or a signal); returns the exit code.
pub async fn run(session: Arc<Session>, opts: UpstreamOptions, log: Log) -> std::io::Result<i32> {
    let up = Arc::new(opts.upstream(upstream::client(opts.connect_timeout)));
    let link = Link {
        session: session.clone(),
        up: up.clone(),
        log,
        request_timeout: opts.request_timeout,
    };
    log.info(format_args!(
        "relaying to {} ({}), enforcing policy `{}` (sha256:{})",
        opts.url,
        if opts.legacy {
            "legacy HTTP+SSE"
        } else {
            "Streamable HTTP"
        },
        session.policy().meta().server,
        &session.policy().meta().digest[..16]
    ));

    // The only writer of stdout.
    let (out_tx, mut out_rx) = mpsc::channel::<Bytes>(1024);
    let writer = tokio::spawn(async move {
        let mut out = BufWriter::with_capacity(64 * 1024, client_output());
        write_lines(&mut out_rx, &mut out).await;
    });

    let max = opts.max_message_bytes;
    let mut lines = LineReader::new(BufReader::with_capacity(64 * 1024, client_input()), max);
    let mut tasks: JoinSet<()> = JoinSet::new();
    let mut listening = false;
    let mut background: Vec<tokio::task::JoinHandle<()>> = Vec::new();
    // Legacy transport: the GET stream that carries every server message.
    let (legacy_gone_tx, mut legacy_gone) = mpsc::channel::<()>(1);
    let mut legacy_connected = false;
    let mut sigint = tokio::signal::unix::signal(tokio::signal::unix::SignalKind::interrupt())?;
    let mut sigterm = tokio::signal::unix::signal(tokio::signal::unix::SignalKind::terminate())?;
    let mut code = 0;
    // Set when the client closed stdin: answers in flight may still come until then.
    let mut closing: Option<tokio::time::Instant> = None;
    let mut legacy_tick = tokio::time::interval(Duration::from_millis(250));
    loop {
        tokio::select! {
            biased;
            _ = sigint.recv() => { code = 130; break; }
            _ = sigterm.recv() => { code = 143; break; }
            _ = legacy_gone.recv() => {
                log.error(format_args!("the upstream closed its SSE stream; the session is over"));
                for r in session.upstream_gone("the upstream MCP server closed its SSE stream before answering") {
                    let _ = out_tx.send(Bytes::from(r)).await;
                }
                code = 1;
                break;
            }
            Some(done) = tasks.join_next(), if !tasks.is_empty() => {
                if let Err(e) = done && e.is_panic() {
                    log.error(format_args!("a relay task failed: {e}"));
                }
            }
            // Legacy upstreams answer on the shared stream: requests time out here.
            // Also the clock of calls held while the client asks its user.
            _ = legacy_tick.tick() => {
                if let (true, Some(t)) = (opts.legacy, opts.request_timeout) {
                    let expired = session.expire(t);
                    for r in expired.to_client {
                        log.warn(format_args!("a request timed out after {t:?}; answered with an error"));
                        let _ = out_tx.send(Bytes::from(r)).await;
                    }
                    for c in expired.to_server {
                        let up = up.clone();
                        tokio::spawn(async move { let _ = up.post(Bytes::from(c), false).await; });
                    }
                }
                for m in session.expire_asking() {
                    let _ = out_tx.send(Bytes::from(m.message)).await;
                }
            }
            _ = tokio::time::sleep(Duration::from_millis(20)), if closing.is_some() => {
                if session.in_flight() == 0 || closing.is_some_and(|d| tokio::time::Instant::now() >= d) {
                    break;
                }
            }
            line = lines.next(), if closing.is_none() => match line {
                Ok(Line::Message(line)) => {
                    // A decision that would wait on the counter store runs on a
                    // blocking thread; client messages keep their order, answers
                    // keep flowing.
                    let out = match session.from_client_now(&line) {
                        Some(out) => out,
                        None => session.clone().from_client_blocking(line.clone()).await,
                    };
                    for r in out.reply {
                        let _ = out_tx.send(Bytes::from(r)).await;
                    }
                    for m in out.for_call {
                        let _ = out_tx.send(Bytes::from(m.message)).await;
                    }
                    for f in out.forward {
                        let msg = Bytes::copy_from_slice(&f);
                        let sent = Sent::of(&msg);
                        if opts.legacy && !legacy_connected {
                            match up.connect_legacy().await {
                                Ok(mut stream) => {
                                    legacy_connected = true;
                                    let (link, sink, gone) = (link.clone(), out_tx.clone(), legacy_gone_tx.clone());
                                    background.push(tokio::spawn(async move {
                                        let (mut last, mut retry) = (None, Duration::ZERO);
                                        if link.pump(&mut stream, None, &sink, &mut last, &mut retry).await {
                                            let _ = gone.send(()).await;
                                        }
                                    }));
                                }
                                Err(f) => {
                                    link.failed(&sent, &f, &out_tx).await;
                                    continue;
                                }
                            }
                        }
                        if sent.initialize || sent.initialized {
                            // In order: wait for the response headers before reading on.
                            let answer = link.post(msg, &sent, &out_tx).await;
                            if sent.initialized && answer.is_some() && !listening && !opts.legacy {
                                listening = true;
                                let (link, sink) = (link.clone(), out_tx.clone());
                                background.push(tokio::spawn(async move { link.listen(sink).await }));
                            }
                            if let Some(answer) = answer {
                                let (link, sink) = (link.clone(), out_tx.clone());
                                tasks.spawn(async move { link.relay(answer, &sent, &sink).await });
                            }
                        } else {
                            let (link, sink) = (link.clone(), out_tx.clone());
                            tasks.spawn(async move {
                                if let Some(answer) = link.post(msg, &sent, &sink).await {
                                    link.relay(answer, &sent, &sink).await;
                                }
                            });
                        }
                    }
                }
                Ok(Line::TooLong(n)) => {
                    log.warn(format_args!("refused a {n}-byte message from the client (limit {max})"));
                    let msg = format!("message of {n} bytes exceeds the proxy's limit of {max} bytes");
                    let _ = out_tx.send(Bytes::from(respond::error(None, INVALID_REQUEST, &msg))).await;
                }
                Ok(Line::Eof) | Err(_) => {
                    log.info(format_args!("client closed stdin; waiting up to {:?} for answers in flight", opts.grace));
                    closing = Some(tokio::time::Instant::now() + opts.grace);
                }
            },
        }
    }
    tasks.abort_all();
    for b in &background {
        b.abort();
    }
    for r in session.upstream_gone("the proxy is shutting down") {
        let _ = out_tx.send(Bytes::from(r)).await;
    }
    // End the upstream session (best effort, bounded).
    match tokio::time::timeout(Duration::from_secs(5), up.delete()).await {
        Ok(Ok(())) => {}
        Ok(Err(f)) => log.warn(format_args!(
            "could not end the upstream session: {}",
            f.describe(up.url())
        )),
        Err(_) => log.warn(format_args!(
            "the upstream did not confirm the end of the session within 5 s"
        )),
    }
    drop(out_tx);
    drop(link);
    let _ = tokio::time::timeout(Duration::from_secs(5), writer).await;
    Ok(code)
}
