//! Server processes the proxy starts: the stdio transport's `-- CMD`, one per
//! MCP session of the HTTP endpoint, and `portcullis scan`'s. One way to start
//! them and one way to stop them.
//!
//! Start ([`command`], [`spawn`]): the proxy's environment minus
//! [`PROXY_SECRETS`](super::PROXY_SECRETS); stdin and stdout piped, stderr
//! inherited; a process group of its own, so that signals reach the server
//! and whatever it starts (and not the proxy twice); and a parent-death
//! signal (SIGKILL), so that a proxy killed without a chance to clean up
//! (SIGKILL, OOM killer) does not leave its server running.
//!
//! Stop ([`supervise`]): the caller closes the server's stdin (a
//! well-behaved MCP server exits on EOF), the server gets a grace period,
//! then SIGTERM to its group, [`TERM_GRACE`] later SIGKILL.
//!
//! The parent-death signal fires when the *thread* that forked the child
//! exits, not only when the process does. Every server is started by the
//! thread that calls [`spawn`] or [`command`]`.spawn()`: in the proxy that is
//! the one thread of its current-thread tokio runtime, the main thread
//! (`src/commands/run.rs` builds no other runtime; callers are async tasks on
//! it, never `spawn_blocking`, whose threads exit when idle); in `scan` it is
//! the main thread too. Both live as long as the process.
//!
//! Only the server itself gets the signal: processes it started in its group
//! are not the proxy's children. When the proxy dies they see EOF on the
//! pipes they share with it; servers that start helpers should stop them
//! then (a graceful stop signals the whole group).

use std::ffi::OsString;
use std::future::Future;
use std::process::{ExitStatus, Stdio};
use std::time::Duration;

use nix::errno::Errno;
use nix::sys::signal::{Signal, killpg};
use nix::unistd::Pid;

use super::log::Log;

/// How long a server has to exit after SIGTERM before SIGKILL.
pub const TERM_GRACE: Duration = Duration::from_secs(5);

/// A server's process group (its pid: it leads a group of its own).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Group(Pid);

impl Group {
    /// The group led by process `pid`.
    pub fn of(pid: u32) -> Group {
        Group(Pid::from_raw(pid as i32))
    }

    /// Sends `sig` to every process of the group; a group that is gone
    /// already (ESRCH) is not an error.
    pub fn try_signal(self, sig: Signal) -> nix::Result<()> {
        match killpg(self.0, sig) {
            Err(Errno::ESRCH) => Ok(()),
            r => r,
        }
    }

    /// [`Group::try_signal`], logged.
    pub fn signal(self, sig: Signal, log: Log) {
        match self.try_signal(sig) {
            Ok(()) => log.debug(format_args!(
                "sent {sig} to the server's process group {}",
                self.0
            )),
            Err(e) => log.warn(format_args!(
                "could not send {sig} to process group {}: {e}",
                self.0
            )),
        }
    }
}

/// `argv` as a server process: see the module documentation (environment,
/// pipes, process group, parent-death signal). `argv` must not be empty.
// The crate denies unsafe code; this function's one block (pre_exec) carries its SAFETY proof.
#[allow(unsafe_code)]
pub fn command(argv: &[OsString]) -> std::process::Command {
    use std::os::unix::process::CommandExt;
    let mut cmd = std::process::Command::new(&argv[0]);
    for var in super::PROXY_SECRETS {
        cmd.env_remove(var);
    }
    cmd.args(&argv[1..])
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .stderr(Stdio::inherit())
        .process_group(0);
    // Read before the fork: after it, in the child, a changed parent pid
    // means the proxy died before the parent-death signal was armed.
    let parent = std::process::id();
    // SAFETY: the closure runs in the child between fork and exec, where only
    // async-signal-safe operations are allowed (the forking process may have
    // had other threads holding locks, e.g. the allocator's). It makes two
    // system calls, prctl(PR_SET_PDEATHSIG) and getppid(), through nix's thin
    // wrappers (a libc call and a read of errno, no lock, no allocation);
    // compares two integers; and builds an io::Error from an errno code
    // (`from_raw_os_error`: a plain value, no allocation). It touches no
    // memory shared with the parent besides the copied `parent` integer.
    unsafe {
        cmd.pre_exec(move || {
            nix::sys::prctl::set_pdeathsig(Signal::SIGKILL)?;
            // The proxy died between fork and prctl: the signal will never
            // come (the child was re-parented). Do not start the server.
            if nix::unistd::getppid().as_raw() as u32 != parent {
                return Err(Errno::ESRCH.into());
            }
            Ok(())
        });
    }
    cmd
}

/// Starts `argv` as a server process (see [`command`]) under tokio, killed
/// if dropped. Call it from the runtime's own thread (module documentation).
/// The error names the program.
pub fn spawn(argv: &[OsString]) -> std::io::Result<(tokio::process::Child, Group)> {
    let Some(program) = argv.first() else {
        return Err(std::io::Error::new(
            std::io::ErrorKind::InvalidInput,
            "no server command given after --",
        ));
    };
    // The parent-death signal is bound to this thread (module documentation):
    // on a current-thread runtime it is the thread that runs the runtime.
    debug_assert!(
        tokio::runtime::Handle::try_current()
            .is_ok_and(|h| h.runtime_flavor() == tokio::runtime::RuntimeFlavor::CurrentThread),
        "server processes are started from a current-thread runtime"
    );
    let mut cmd = tokio::process::Command::from(command(argv));
    cmd.kill_on_drop(true);
    let child = cmd.spawn().map_err(|e| {
        std::io::Error::new(
            e.kind(),
            format!("cannot start {}: {e}", program.to_string_lossy()),
        )
    })?;
    let pid = child.id().unwrap_or(0);
    Ok((child, Group::of(pid)))
}

/// Waits for the server to exit. Once `stop` completes (the caller has
/// closed the server's stdin by then), the server has `grace` to exit, then
/// its group gets SIGTERM, [`TERM_GRACE`] later SIGKILL. Signals the caller
/// sends to the group meanwhile (it has the [`Group`]) do not restart these
/// clocks.
pub async fn supervise(
    child: &mut tokio::process::Child,
    group: Group,
    stop: impl Future<Output = ()>,
    grace: Duration,
    log: Log,
) -> std::io::Result<ExitStatus> {
    tokio::select! {
        status = child.wait() => return status,
        () = stop => {}
    }
    log.info(format_args!(
        "waiting up to {grace:?} for the server to exit"
    ));
    if let Ok(status) = tokio::time::timeout(grace, child.wait()).await {
        return status;
    }
    log.warn(format_args!(
        "the server did not exit in time; sending SIGTERM"
    ));
    group.signal(Signal::SIGTERM, log);
    if let Ok(status) = tokio::time::timeout(TERM_GRACE, child.wait()).await {
        return status;
    }
    log.warn(format_args!(
        "the server did not exit {TERM_GRACE:?} after SIGTERM; sending SIGKILL"
    ));
    group.signal(Signal::SIGKILL, log);
    child.wait().await
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::time::Instant;

    fn argv(args: &[&str]) -> Vec<OsString> {
        args.iter().map(OsString::from).collect()
    }

    #[tokio::test]
    async fn a_server_that_ignores_eof_and_sigterm_is_killed_after_both_graces() {
        // `trap '' TERM` ignores SIGTERM; `sleep` does not read stdin.
        let (mut child, group) = spawn(&argv(&["sh", "-c", "trap '' TERM; sleep 60"])).unwrap();
        let t = Instant::now();
        let log = Log {
            level: crate::log::Level::Error,
        };
        let status = supervise(&mut child, group, async {}, Duration::from_millis(200), log)
            .await
            .unwrap();
        let took = t.elapsed();
        assert_eq!(
            std::os::unix::process::ExitStatusExt::signal(&status),
            Some(9),
            "{status:?}"
        );
        assert!(took >= TERM_GRACE, "{took:?}");
        assert!(took < TERM_GRACE + Duration::from_secs(3), "{took:?}");
    }

    #[tokio::test]
    async fn a_server_that_exits_on_eof_is_not_signalled() {
        let (mut child, group) = spawn(&argv(&["cat"])).unwrap();
        drop(child.stdin.take());
        let log = Log {
            level: crate::log::Level::Error,
        };
        let status = supervise(&mut child, group, async {}, Duration::from_secs(10), log)
            .await
            .unwrap();
        assert_eq!(status.code(), Some(0));
    }

    #[test]
    fn a_server_leads_a_process_group_of_its_own() {
        let out = command(&argv(&["sh", "-c", "echo $$; cut -d' ' -f5 /proc/$$/stat"]))
            .output()
            .unwrap();
        let text = String::from_utf8(out.stdout).unwrap();
        let lines: Vec<&str> = text.lines().collect();
        assert_eq!(lines.len(), 2, "{text}");
        assert_eq!(lines[0], lines[1], "pid and process group: {text}");
        assert_ne!(
            lines[1],
            std::process::id().to_string(),
            "not the test's group"
        );
    }
}
