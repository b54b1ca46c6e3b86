//! Loading a policy file at run time (`-c FILE`, development builds) and
//! reloading it when it changes.
//!
//! The file and the fragments it includes are polled every 250 ms: their
//! resolved path (so a Kubernetes-style `..data` symlink swap is seen),
//! device, inode, size and modification time. A change is applied once the
//! files have been stable for one more poll (editors write in steps). A
//! valid new policy is enforced from the next message on; an invalid one is
//! rejected with its full diagnostics on stderr and in the decision log, and
//! the old policy stays in force. Counters are keyed by name, so they
//! survive a reload (a limit raised from 5 to 10 per hour keeps its count).
//! Compiled-in policies never reload: the artifact is the policy.

use std::os::unix::fs::MetadataExt;
use std::path::{Path, PathBuf};
use std::sync::{Arc, mpsc};
use std::time::Duration;

use portcullis_compiler::eval::Evaluator;
use portcullis_core::Policy;
use portcullis_proxy::audit::{AuditLog, Event};
use portcullis_proxy::log::Log;
use portcullis_proxy::metrics::Metrics;
use portcullis_proxy::session::PolicySlot;

/// How often the files are looked at.
const POLL: Duration = Duration::from_millis(250);

/// A policy read from a file, with every file it was read from.
pub struct Loaded {
    /// The policy, for the life of the process (a reload leaks the old one
    /// on purpose: calls decided by it may still be in flight; a policy is
    /// a few KiB and reloads are human-paced).
    pub policy: &'static dyn Policy,
    /// The file and the fragments it includes.
    pub files: Vec<PathBuf>,
    /// Their stamps; the main file's taken before it was read, so an edit
    /// made while it was being compiled is seen by the next poll.
    pub stamps: Vec<Option<Stamp>>,
}

/// Why a policy file could not be loaded.
pub struct LoadError {
    /// The rendered diagnostics (may be empty).
    pub diagnostics: String,
    /// One line saying what failed.
    pub message: String,
}

/// Reads, compiles and checks `path`; warnings are printed on stderr.
pub fn load(path: &Path) -> Result<Loaded, LoadError> {
    let before = stamp(path);
    let inputs = portcullis_compiler::load_file_with_includes(path).map_err(|e| LoadError {
        diagnostics: String::new(),
        message: format!("reading {}: {e}", path.display()),
    })?;
    let files: Vec<PathBuf> = inputs.iter().map(|i| PathBuf::from(&i.path)).collect();
    // Fragments are stamped after reading: an edit of one during the compile
    // is seen only with the next change (fragments change rarely).
    let mut file_stamps = stamps(&files);
    if let Some(main) = file_stamps.first_mut() {
        *main = before;
    }
    let output = portcullis_compiler::compile(&inputs);
    let rendered = output.render();
    let set = output.into_set().map_err(|o| LoadError {
        diagnostics: rendered.clone(),
        message: format!(
            "config validation failed with {} error(s)",
            o.diagnostics.error_count()
        ),
    })?;
    if !rendered.trim().is_empty() {
        eprintln!("{rendered}");
    }
    let ir = set.servers.into_iter().next().ok_or_else(|| LoadError {
        diagnostics: String::new(),
        message: "the file holds no server policy".to_string(),
    })?;
    let evaluator = Evaluator::new(ir, &set.sources);
    Ok(Loaded {
        policy: Box::leak(Box::new(evaluator)),
        files,
        stamps: file_stamps,
    })
}

/// What identifies a file's current content without reading it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Stamp {
    resolved: Option<PathBuf>,
    dev: u64,
    ino: u64,
    len: u64,
    mtime_ns: i128,
}

fn stamp(path: &Path) -> Option<Stamp> {
    let m = std::fs::metadata(path).ok()?;
    Some(Stamp {
        resolved: std::fs::canonicalize(path).ok(),
        dev: m.dev(),
        ino: m.ino(),
        len: m.len(),
        mtime_ns: i128::from(m.mtime()) * 1_000_000_000 + i128::from(m.mtime_nsec()),
    })
}

fn stamps(files: &[PathBuf]) -> Vec<Option<Stamp>> {
    files.iter().map(|f| stamp(f)).collect()
}

/// The watching thread; dropping it stops the thread (within one poll) and
/// waits for it, so it releases the session and the decision log.
pub struct Watcher {
    stop: Option<mpsc::Sender<()>>,
    thread: Option<std::thread::JoinHandle<()>>,
}

impl Drop for Watcher {
    fn drop(&mut self) {
        self.stop = None;
        if let Some(t) = self.thread.take() {
            let _ = t.join();
        }
    }
}

/// Watches `path` on a background thread and swaps the process's policy
/// when the file changes to a valid policy.
pub fn watch(
    path: PathBuf,
    loaded: &Loaded,
    slot: Arc<PolicySlot>,
    metrics: Option<Arc<Metrics>>,
    audit: Option<AuditLog>,
    log: Log,
) -> Watcher {
    let shown = path.display().to_string();
    let (files, first_stamps) = (loaded.files.clone(), loaded.stamps.clone());
    let (stop, stopped) = mpsc::channel::<()>();
    // Sleeps one poll; false once the watcher is dropped.
    let tick = move || {
        matches!(
            stopped.recv_timeout(POLL),
            Err(mpsc::RecvTimeoutError::Timeout)
        )
    };
    let spawned = std::thread::Builder::new()
        .name("policy-reload".into())
        .spawn(move || {
            let mut files = files;
            let mut seen = first_stamps;
            while tick() {
                let now = stamps(&files);
                if now == seen {
                    continue;
                }
                // Wait until the files stop changing (an editor's write, a rename, a swap).
                let mut settled = now;
                loop {
                    if !tick() {
                        return;
                    }
                    let again = stamps(&files);
                    if again == settled {
                        break;
                    }
                    settled = again;
                }
                seen = settled;
                if seen.iter().any(Option::is_none) && stamp(&path).is_none() {
                    // Removed, or mid-swap: wait for it to come back.
                    continue;
                }
                match load(&path) {
                    Ok(loaded) => {
                        // The include set may have changed with the file.
                        files = loaded.files.clone();
                        seen = loaded.stamps.clone();
                        let old = slot.get().meta().digest;
                        let new = loaded.policy.meta().digest;
                        if old == new {
                            continue;
                        }
                        slot.replace(loaded.policy, metrics.as_deref());
                        log.info(format_args!(
                            "policy reloaded from {} (sha256:{} -> sha256:{})",
                            path.display(),
                            &old[..16.min(old.len())],
                            &new[..16.min(new.len())]
                        ));
                        if let Some(a) = &audit {
                            a.record(Event::Reload {
                                digest: Some(new),
                                message: String::new(),
                            });
                        }
                    }
                    Err(e) => {
                        if !e.diagnostics.trim().is_empty() {
                            eprintln!("{}", e.diagnostics);
                        }
                        log.warn(format_args!(
                            "policy reload from {} rejected ({}); the previous policy stays in force",
                            path.display(),
                            e.message
                        ));
                        if let Some(a) = &audit {
                            a.record(Event::Reload {
                                digest: None,
                                message: format!("{}\n{}", e.message, e.diagnostics).trim_end().to_string(),
                            });
                        }
                    }
                }
            }
        });
    match spawned {
        Ok(thread) => Watcher {
            stop: Some(stop),
            thread: Some(thread),
        },
        Err(e) => {
            log.warn(format_args!("cannot watch {shown} for changes: {e}"));
            Watcher {
                stop: None,
                thread: None,
            }
        }
    }
}
