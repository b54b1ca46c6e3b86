//! A session served by a command: its own child process (started and
//! supervised by [`crate::child`]), a writer task for its stdin, and
//! a reader of its stdout whose messages go through the session to the
//! [`Router`](super::router::Router).

use std::ffi::OsString;
use std::sync::{Arc, Mutex};

use bytes::Bytes;
use nix::sys::signal::Signal;
use tokio::io::{AsyncWriteExt, BufReader, BufWriter};
use tokio::sync::mpsc;

use super::Server;
use super::router::Router;
use super::sessions::ChildHandle;
use crate::child;
use crate::lines::{Line, LineReader, write_lines};
use crate::session::Session;

impl Server {
    /// Starts the session's child process and its relay tasks.
    pub(super) fn spawn_child(
        self: &Arc<Self>,
        cmd: &[OsString],
        session: Arc<Session>,
        router: Arc<Router>,
        id: String,
    ) -> Result<ChildHandle, String> {
        let (mut child, group) = child::spawn(cmd).map_err(|e| e.to_string())?;
        let log = self.log;
        let pid = child.id().unwrap_or(0);
        log.info(format_args!(
            "session {}: started {} (pid {pid})",
            &id[..8],
            cmd[0].to_string_lossy()
        ));
        let child_in = child.stdin.take().expect("piped");
        let child_out = child.stdout.take().expect("piped");
        let max = self.opts.max_message_bytes;

        let (stdin_tx, mut stdin_rx) = mpsc::channel::<Bytes>(256);
        tokio::spawn(async move {
            let mut w = BufWriter::with_capacity(64 * 1024, child_in);
            write_lines(&mut stdin_rx, &mut w).await;
            let _ = w.shutdown().await;
        });

        let (exited_tx, exited_rx) = tokio::sync::watch::channel(false);
        let (stop_tx, stop_rx) = tokio::sync::oneshot::channel::<()>();
        let server = self.clone();
        let sess = session.clone();
        let r = router.clone();
        let to_child = stdin_tx.downgrade();
        let grace = self.opts.grace;
        tokio::spawn(async move {
            let mut lines = LineReader::new(BufReader::with_capacity(64 * 1024, child_out), max);
            let reader = async {
                loop {
                    match lines.next().await {
                        Ok(Line::Message(line)) => {
                            let out = sess.from_server(&line);
                            for f in out.forward {
                                r.route(Bytes::copy_from_slice(&f), log).await;
                            }
                            // The proxy's answers to server requests it withheld.
                            // (A weak sender: ending the session still closes stdin.)
                            for a in out.reply {
                                if let Some(tx) = to_child.upgrade() {
                                    let _ = tx.send(Bytes::from(a)).await;
                                }
                            }
                        }
                        Ok(Line::TooLong(n)) => log.warn(format_args!(
                            "dropped a {n}-byte message from the server (limit {max})"
                        )),
                        Ok(Line::Eof) | Err(_) => break,
                    }
                }
            };
            let supervise = async {
                // Ending the session closes stdin, then fires `stop`.
                let status = child::supervise(
                    &mut child,
                    group,
                    async {
                        let _ = stop_rx.await;
                    },
                    grace,
                    log,
                )
                .await;
                // Nothing may outlive the server in its process group.
                let _ = group.try_signal(Signal::SIGTERM);
                status
            };
            let (_, status) = tokio::join!(
                async {
                    reader.await;
                },
                supervise
            );
            let code = status.ok().and_then(|s| s.code());
            log.info(format_args!(
                "session {}: the server exited (status {})",
                &id[..8],
                code.map_or("signal".to_string(), |c| c.to_string())
            ));
            for e in
                sess.upstream_gone("the MCP server process of this session exited before answering")
            {
                r.route(Bytes::from(e), log).await;
            }
            server.remove(&id);
            let _ = exited_tx.send(true);
        });
        Ok(ChildHandle {
            stdin: Mutex::new(Some(stdin_tx)),
            stop: Mutex::new(Some(stop_tx)),
            exited: exited_rx,
        })
    }
}
