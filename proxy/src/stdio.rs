//! The stdio transport: the client speaks on our stdin/stdout, the MCP server
//! is a child process speaking on its stdin/stdout.
//!
//! Four tasks relay concurrently (a fast call overtakes a slow one): client
//! reader, server reader, and one writer per output so lines never interleave.
//! Lifecycle: SIGINT/SIGTERM are forwarded to the child's process group (a
//! second signal kills it); when the client closes stdin, the child's stdin is
//! closed and the child gets a grace period, then SIGTERM, then SIGKILL; when
//! the child exits, requests still in flight get a JSON-RPC error, leftover
//! processes of its group are terminated, and Portcullis exits with the
//! child's exit code (128 + signal number if it was killed). Starting the
//! child and the grace -> SIGTERM -> SIGKILL escalation are [`super::child`]'s.

use std::ffi::OsString;
use std::sync::Arc;
use std::time::Duration;

use nix::sys::signal::Signal;
use tokio::io::{AsyncRead, AsyncWrite, AsyncWriteExt, BufReader, BufWriter};
use tokio::sync::mpsc;

use super::child;
use super::lines::{Line, LineReader};
use super::log::Log;
use super::respond;
use super::session::Session;
use portcullis_core::jsonrpc::INVALID_REQUEST;

/// How the stdio proxy runs its child.
#[derive(Debug, Clone)]
pub struct StdioOptions {
    /// The MCP server command and its arguments.
    pub command: Vec<OsString>,
    /// Longest message accepted in either direction.
    pub max_message_bytes: usize,
    /// Answer (and roll back) a request the server has not answered in this time.
    pub upstream_timeout: Option<Duration>,
    /// After the client closes stdin: how long the child may take to exit before SIGTERM.
    pub grace: Duration,
}

/// Our stdin as an event-loop pipe when it is one. tokio's `stdin()` does
/// every read on a helper thread (a hand-off per line, measured at ~35 us of
/// added latency per call); a pipe set non-blocking is read by the event
/// loop itself. A terminal or a file falls back to `stdin()`.
pub(crate) fn client_input() -> Box<dyn AsyncRead + Unpin + Send> {
    use std::os::fd::AsFd;
    match std::io::stdin()
        .as_fd()
        .try_clone_to_owned()
        .and_then(tokio::net::unix::pipe::Receiver::from_owned_fd)
    {
        Ok(pipe) => Box::new(pipe),
        Err(_) => Box::new(tokio::io::stdin()),
    }
}

/// Our stdout as an event-loop pipe when it is one (see [`client_input`]).
pub(crate) fn client_output() -> Box<dyn AsyncWrite + Unpin + Send> {
    use std::os::fd::AsFd;
    match std::io::stdout()
        .as_fd()
        .try_clone_to_owned()
        .and_then(tokio::net::unix::pipe::Sender::from_owned_fd)
    {
        Ok(pipe) => Box::new(pipe),
        Err(_) => Box::new(tokio::io::stdout()),
    }
}

async fn write_line(out: &mut (impl AsyncWrite + Unpin), line: &[u8]) -> std::io::Result<()> {
    out.write_all(line).await?;
    out.write_all(b"\n").await
}

/// Runs the proxy until the child exits; returns the exit code to use.
pub async fn run(session: Arc<Session>, opts: StdioOptions, log: Log) -> std::io::Result<i32> {
    let (mut child, group) = child::spawn(&opts.command)?;
    log.info(format_args!(
        "started {} (pid {}), enforcing policy `{}` (sha256:{})",
        opts.command[0].to_string_lossy(),
        child.id().unwrap_or(0),
        session.policy().meta().server,
        &session.policy().meta().digest[..16]
    ));
    let child_in = child.stdin.take().expect("stdin is piped");
    let child_out = child.stdout.take().expect("stdout is piped");

    // Two tasks, one per direction. Each owns its reader and its writer, so a
    // forwarded message is read, checked and written without a hand-off; the
    // client side passes its own answers (denials, errors) to the server side,
    // which is the only writer of our stdout.
    let (replies, mut replies_rx) = mpsc::channel::<Vec<u8>>(1024);
    // The proxy's own answers to server requests (one it withheld from the
    // client): the client side is the only writer of the server's stdin.
    let (to_child, mut to_child_rx) = mpsc::channel::<Vec<u8>>(64);
    let (client_closed_tx, client_closed) = tokio::sync::oneshot::channel::<()>();
    let (child_eof_tx, child_eof) = tokio::sync::oneshot::channel::<()>();
    let max = opts.max_message_bytes;

    let client_side = {
        let (session, replies) = (session.clone(), replies.clone());
        let timeout = opts.upstream_timeout;
        tokio::spawn(async move {
            let mut lines =
                LineReader::new(BufReader::with_capacity(64 * 1024, client_input()), max);
            let mut to_server = BufWriter::with_capacity(64 * 1024, child_in);
            // Also the clock of calls held while the client asks its user.
            let period = timeout.map_or(Duration::from_millis(250), |t| {
                Duration::from_millis(250).min(t)
            });
            let mut tick = tokio::time::interval(period);
            loop {
                tokio::select! {
                    biased;
                    line = lines.next() => match line {
                        Ok(Line::Message(line)) => {
                            // A decision that would wait on the counter store runs on
                            // a blocking thread; this task waits for it (client messages
                            // keep their order) while the server side keeps relaying.
                            {
                                let out = match session.from_client_now(&line) {
                                    Some(out) => out,
                                    None => {
                                        // What was forwarded before it must not wait for it.
                                        if to_server.flush().await.is_err() {
                                            break;
                                        }
                                        session.clone().from_client_blocking(line.clone()).await
                                    }
                                };
                                for f in out.forward {
                                    if write_line(&mut to_server, &f).await.is_err() {
                                        break;
                                    }
                                }
                                for r in out.reply {
                                    let _ = replies.send(r).await;
                                }
                                // One output: messages about held calls go out in order.
                                for m in out.for_call {
                                    let _ = replies.send(m.message).await;
                                }
                            }
                            lines.recycle(line);
                        }
                        Ok(Line::TooLong(n)) => {
                            log.warn(format_args!("refused a {n}-byte message from the client (limit {max})"));
                            let msg = format!("message of {n} bytes exceeds the proxy's limit of {max} bytes");
                            let _ = replies.send(respond::error(None, INVALID_REQUEST, &msg)).await;
                        }
                        Ok(Line::Eof) | Err(_) => break,
                    },
                    Some(answer) = to_child_rx.recv() => {
                        if write_line(&mut to_server, &answer).await.is_err() {
                            break;
                        }
                    }
                    _ = tick.tick() => {
                        if let Some(t) = timeout {
                            let expired = session.expire(t);
                            for r in expired.to_client {
                                log.warn(format_args!("a request timed out after {t:?}; answered with an error"));
                                let _ = replies.send(r).await;
                            }
                            for c in expired.to_server {
                                let _ = write_line(&mut to_server, &c).await;
                            }
                        }
                        for m in session.expire_asking() {
                            let _ = replies.send(m.message).await;
                        }
                    }
                }
                // Flush once nothing more is waiting: one write per burst.
                if lines.buffered() == 0 && to_server.flush().await.is_err() {
                    break;
                }
            }
            let _ = to_server.flush().await;
            let _ = to_server.shutdown().await;
            let _ = client_closed_tx.send(());
        })
    };

    let server_side = {
        let session = session.clone();
        tokio::spawn(async move {
            let mut lines = LineReader::new(BufReader::with_capacity(64 * 1024, child_out), max);
            let mut to_client = BufWriter::with_capacity(64 * 1024, client_output());
            let (mut child_open, mut replies_open) = (true, true);
            let mut child_eof_tx = Some(child_eof_tx);
            while child_open || replies_open {
                let written = tokio::select! {
                    biased;
                    line = lines.next(), if child_open => match line {
                        Ok(Line::Message(line)) => {
                            let mut ok = true;
                            let crate::session::Outcome { forward, reply, .. } = session.from_server(&line);
                            for f in forward {
                                ok &= write_line(&mut to_client, &f).await.is_ok();
                            }
                            for r in reply {
                                let _ = to_child.send(r).await;
                            }
                            lines.recycle(line);
                            ok
                        }
                        Ok(Line::TooLong(n)) => {
                            log.warn(format_args!("dropped a {n}-byte message from the server (limit {max})"));
                            true
                        }
                        Ok(Line::Eof) | Err(_) => {
                            child_open = false;
                            if let Some(tx) = child_eof_tx.take() {
                                let _ = tx.send(());
                            }
                            true
                        }
                    },
                    reply = replies_rx.recv(), if replies_open => match reply {
                        Some(r) => write_line(&mut to_client, &r).await.is_ok(),
                        None => {
                            replies_open = false;
                            true
                        }
                    },
                };
                if !written {
                    break; // the client is gone
                }
                if (!child_open || lines.buffered() == 0)
                    && replies_rx.is_empty()
                    && to_client.flush().await.is_err()
                {
                    break;
                }
            }
            let _ = to_client.flush().await;
        })
    };

    let mut sigint = tokio::signal::unix::signal(tokio::signal::unix::SignalKind::interrupt())?;
    let mut sigterm = tokio::signal::unix::signal(tokio::signal::unix::SignalKind::terminate())?;
    let mut signals_seen = 0u32;
    let exit = child::supervise(
        &mut child,
        group,
        async {
            let _ = client_closed.await;
            log.info(format_args!("client closed stdin"));
        },
        opts.grace,
        log,
    );
    tokio::pin!(exit);
    let status = loop {
        tokio::select! {
            status = &mut exit => break status?,
            _ = sigint.recv() => {
                signals_seen += 1;
                group.signal(if signals_seen > 1 { Signal::SIGKILL } else { Signal::SIGINT }, log);
            }
            _ = sigterm.recv() => {
                signals_seen += 1;
                group.signal(if signals_seen > 1 { Signal::SIGKILL } else { Signal::SIGTERM }, log);
            }
        }
    };
    // What the server wrote before exiting still reaches the client (a
    // grandchild may hold the pipe open: do not wait for it for long).
    let _ = tokio::time::timeout(Duration::from_secs(2), child_eof).await;
    // Nothing may outlive the server in its process group.
    group.signal(Signal::SIGTERM, log);
    let code = match (
        status.code(),
        std::os::unix::process::ExitStatusExt::signal(&status),
    ) {
        (Some(c), _) => c,
        (None, Some(s)) => 128 + s,
        (None, None) => 1,
    };
    let why = format!("the upstream MCP server exited (status {code}) before answering");
    for r in session.upstream_gone(&why) {
        let _ = replies.send(r).await;
    }
    log.info(format_args!("the server exited with status {code}"));
    client_side.abort();
    drop(replies);
    let mut server_side = server_side;
    if tokio::time::timeout(Duration::from_secs(5), &mut server_side)
        .await
        .is_err()
    {
        server_side.abort();
    }
    Ok(code)
}
