//! Counter stores that outlive the process and can be shared: SQLite
//! (`--state-dir`, [`sqlite`]) and Redis (`--state-dsn`, [`redis`]).
//!
//! Both keep the in-memory store's model exactly: a counter is a set of
//! buckets (the window start for calendar windows, the slot number for
//! sliding ones, see [`Window::bucket`](portcullis_core::counters::Window::bucket)),
//! its value is the sum of the buckets [`Window::live_buckets`] names, a
//! reservation adds to the current bucket after checking every request of
//! the call at once, and a rollback subtracts from the very bucket the units
//! were added to, never below zero. So calendar and sliding windows behave
//! the same whichever store holds them ([`conformance`] runs one suite
//! against every store).
//!
//! A backend ([`Backend`]) does blocking I/O. [`Store`] turns it into a
//! [`Counters`]: it says so ([`Counters::may_block`]), so the proxy decides
//! a call off its event loop whenever the backend cannot answer at once
//! ([`Backend::try_reserve`]: SQLite tries its lock without waiting; Redis
//! always needs a round trip), hands rollbacks and housekeeping
//! ([`Backend::maintain`]) to a worker thread (a rollback is called from the
//! relay of server answers and must not wait on a database), and logs when
//! the store becomes unavailable and available again.
//!
//! [`Window::live_buckets`]: portcullis_core::counters::Window::live_buckets

use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex, mpsc};

use crate::log::Log;
use portcullis_core::counters::{
    CounterRef, Counters, ReserveOutcome, ReserveRequest, StateError, Ticket, UnixMillis,
};
use portcullis_core::idempotency::IdempotencyStore;

#[doc(hidden)]
pub mod conformance;
pub mod idempotency;
#[cfg(feature = "redis")]
pub mod redis;
#[cfg(feature = "sqlite")]
pub mod sqlite;

/// A counter store that does blocking I/O. Same contract as [`Counters`],
/// except that a rollback can fail (it is retried by nobody: the units stay
/// counted until their window ends, which errs on the side of denying).
pub trait Backend: Send + Sync + 'static {
    /// The counter's value in the current window.
    fn read(&self, counter: CounterRef, now: UnixMillis) -> Result<u64, StateError>;
    /// Adds every request's amount, or none of them, atomically across
    /// processes sharing the store.
    fn reserve(
        &self,
        requests: &[ReserveRequest],
        now: UnixMillis,
        ticket: &mut Ticket,
    ) -> Result<ReserveOutcome, StateError>;
    /// Gives the units of `ticket` back.
    fn rollback(&self, ticket: &Ticket) -> Result<(), StateError>;

    /// [`Backend::read`] if it can answer without waiting, `Ok(None)`
    /// otherwise (the default: always wait, off the event loop).
    fn try_read(&self, counter: CounterRef, now: UnixMillis) -> Result<Option<u64>, StateError> {
        let _ = (counter, now);
        Ok(None)
    }

    /// [`Backend::reserve`] if it can be done without waiting, `Ok(None)`
    /// having added nothing otherwise (the default: always wait).
    fn try_reserve(
        &self,
        requests: &[ReserveRequest],
        now: UnixMillis,
        ticket: &mut Ticket,
    ) -> Result<Option<ReserveOutcome>, StateError> {
        let _ = (requests, now, ticket);
        Ok(None)
    }

    /// True when [`Backend::maintain`] should run soon. Asked after every
    /// reservation: must be cheap.
    fn maintenance_due(&self, now: UnixMillis) -> bool {
        let _ = now;
        false
    }

    /// Housekeeping that may take long (deleting expired counters, moving
    /// SQLite's log into the database), run on the store's worker thread so
    /// that no decision waits for it.
    fn maintain(&self, now: UnixMillis) -> Result<(), StateError> {
        let _ = now;
        Ok(())
    }

    /// The idempotency records this backend keeps (see [`idempotency`]);
    /// None keeps none.
    fn idempotency(&self) -> Option<&dyn IdempotencyStore> {
        None
    }
}

enum Job {
    Rollback(Box<Ticket>),
    Maintain,
    /// Answered once every job queued before it is done.
    Flush(mpsc::Sender<()>),
    /// Settles an idempotency record (from the relay of server answers,
    /// which must not wait on the store).
    Idem(idempotency::Settle),
}

/// A [`Backend`] as the proxy's [`Counters`].
pub struct Store {
    backend: Arc<dyn Backend>,
    jobs: Mutex<Option<mpsc::Sender<Job>>>,
    worker: Mutex<Option<std::thread::JoinHandle<()>>>,
    available: Arc<AtomicBool>,
    /// A [`Job::Maintain`] is queued or running.
    maintaining: Arc<AtomicBool>,
    what: String,
    log: Log,
}

impl std::fmt::Debug for Store {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Store").field("what", &self.what).finish()
    }
}

impl Store {
    /// Wraps `backend`; `what` names it in logs (with any password redacted).
    pub fn new(backend: Arc<dyn Backend>, what: String, log: Log) -> std::io::Result<Store> {
        let (tx, rx) = mpsc::channel::<Job>();
        let available = Arc::new(AtomicBool::new(true));
        let maintaining = Arc::new(AtomicBool::new(false));
        let worker = {
            let (backend, available, maintaining, what) = (
                backend.clone(),
                available.clone(),
                maintaining.clone(),
                what.clone(),
            );
            std::thread::Builder::new()
                .name("counter-rollback".into())
                .spawn(move || {
                    while let Ok(job) = rx.recv() {
                        match job {
                            Job::Rollback(ticket) => {
                                let r = backend.rollback(&ticket);
                                health(&available, &what, log, r.as_ref().err());
                                if let Err(e) = r {
                                    log.warn(format_args!(
                                        "could not give back counter units of a failed call ({e}); they stay counted until their window ends"
                                    ));
                                }
                            }
                            Job::Maintain => {
                                let r = backend.maintain(UnixMillis::now());
                                maintaining.store(false, Ordering::Relaxed);
                                if let Err(e) = r {
                                    log.warn(format_args!("counter store housekeeping failed ({e}); it is retried later"));
                                }
                            }
                            Job::Flush(done) => {
                                let _ = done.send(());
                            }
                            Job::Idem(settle) => {
                                if let Some(store) = backend.idempotency() {
                                    let r = settle.apply(store);
                                    health(&available, &what, log, r.as_ref().err());
                                    if let Err(e) = r {
                                        log.warn(format_args!(
                                            "could not settle an idempotency record ({e}); it lapses with its lease"
                                        ));
                                    }
                                }
                            }
                        }
                    }
                })?
        };
        Ok(Store {
            backend,
            jobs: Mutex::new(Some(tx)),
            worker: Mutex::new(Some(worker)),
            available,
            maintaining,
            what,
            log,
        })
    }

    /// What the store is, for logs (password redacted).
    pub fn describe(&self) -> &str {
        &self.what
    }

    fn jobs(&self) -> std::sync::MutexGuard<'_, Option<mpsc::Sender<Job>>> {
        // Every critical section is a single send or take: never inconsistent.
        self.jobs.lock().unwrap_or_else(|e| e.into_inner())
    }

    /// Waits until every rollback queued so far has been applied.
    pub fn flush(&self) {
        let (tx, rx) = mpsc::channel();
        let sent = self
            .jobs()
            .as_ref()
            .is_some_and(|jobs| jobs.send(Job::Flush(tx)).is_ok());
        if sent {
            let _ = rx.recv();
        }
    }

    /// Applies the queued rollbacks and stops the worker (at exit: units of
    /// calls that failed must be back in a store that outlives the process).
    pub fn close(&self) {
        drop(self.jobs().take());
        let worker = self.worker.lock().unwrap_or_else(|e| e.into_inner()).take();
        if let Some(w) = worker {
            let _ = w.join();
        }
    }

    fn health<T>(&self, r: &Result<T, StateError>) {
        health(&self.available, &self.what, self.log, r.as_ref().err());
    }

    /// After a reservation: queues the backend's housekeeping when it is due
    /// and not queued already.
    fn maintain_if_due(&self, now: UnixMillis) {
        if self.backend.maintenance_due(now) && !self.maintaining.swap(true, Ordering::Relaxed) {
            let queued = self
                .jobs()
                .as_ref()
                .is_some_and(|jobs| jobs.send(Job::Maintain).is_ok());
            if !queued {
                self.maintaining.store(false, Ordering::Relaxed);
            }
        }
    }

    /// Amounts of 0 always fit: nothing to ask the store. Some(Reserved) then.
    fn reserve_nothing(
        requests: &[ReserveRequest],
        now: UnixMillis,
        ticket: &mut Ticket,
    ) -> Option<ReserveOutcome> {
        if !requests.iter().all(|r| r.amount == 0) {
            return None;
        }
        for r in requests {
            ticket.push(portcullis_core::counters::Reservation {
                counter: r.counter,
                amount: 0,
                bucket: r.counter.spec.window.bucket(now),
            });
        }
        Some(ReserveOutcome::Reserved)
    }
}

/// Logs transitions only: one line when the store fails, one when it is back.
fn health(available: &AtomicBool, what: &str, log: Log, error: Option<&StateError>) {
    match error {
        Some(e) => {
            if available.swap(false, Ordering::Relaxed) {
                log.warn(format_args!(
                    "counter store {what} is unavailable ({}); calls that need a counter follow --state-fail-mode until it is back",
                    e.0
                ));
            }
        }
        None => {
            if !available.swap(true, Ordering::Relaxed) {
                log.warn(format_args!("counter store {what} is available again"));
            }
        }
    }
}

impl Counters for Store {
    fn read(&self, counter: CounterRef, now: UnixMillis) -> Result<u64, StateError> {
        let r = self.backend.read(counter, now);
        self.health(&r);
        r
    }

    fn reserve(
        &self,
        requests: &[ReserveRequest],
        now: UnixMillis,
        ticket: &mut Ticket,
    ) -> Result<ReserveOutcome, StateError> {
        if let Some(nothing) = Store::reserve_nothing(requests, now, ticket) {
            return Ok(nothing);
        }
        let r = self.backend.reserve(requests, now, ticket);
        self.health(&r);
        if r.is_ok() {
            self.maintain_if_due(now);
        }
        r
    }

    fn try_read(&self, counter: CounterRef, now: UnixMillis) -> Result<Option<u64>, StateError> {
        let r = self.backend.try_read(counter, now);
        if !matches!(r, Ok(None)) {
            self.health(&r);
        }
        r
    }

    fn try_reserve(
        &self,
        requests: &[ReserveRequest],
        now: UnixMillis,
        ticket: &mut Ticket,
    ) -> Result<Option<ReserveOutcome>, StateError> {
        if let Some(nothing) = Store::reserve_nothing(requests, now, ticket) {
            return Ok(Some(nothing));
        }
        let r = self.backend.try_reserve(requests, now, ticket);
        if !matches!(r, Ok(None)) {
            self.health(&r);
        }
        if matches!(r, Ok(Some(_))) {
            self.maintain_if_due(now);
        }
        r
    }

    fn rollback(&self, ticket: &Ticket) {
        if ticket.iter().all(|r| r.amount == 0) {
            return;
        }
        if let Some(jobs) = self.jobs().as_ref() {
            let _ = jobs.send(Job::Rollback(Box::new(*ticket)));
        }
    }

    fn may_block(&self) -> bool {
        true
    }

    fn idempotency(&self) -> Option<&dyn IdempotencyStore> {
        self.backend
            .idempotency()
            .map(|_| self as &dyn IdempotencyStore)
    }
}

impl Drop for Store {
    fn drop(&mut self) {
        self.close();
    }
}

/// The storage key of one counter: `<prefix><counter key>#<window>#<partition>`,
/// e.g. `prod:everything/_global.rate#minute#0000000000000000`. The counter
/// key is the policy's (`<server>/<scope>.<counter>`); the window name is
/// [`Window::storage_name`](portcullis_core::counters::Window::storage_name); the
/// partition is 16 hex digits for 0 (counters every caller shares) and
/// session ids, 32 for per-argument partitions ([`portcullis_core::ops::partition_of`]
/// sets their top bit), so the keys of the first two kept their form when
/// argument partitions widened from 64 to 128 bits.
pub fn storage_key(prefix: &str, counter: CounterRef) -> String {
    format!(
        "{prefix}{}#{}#{:016x}",
        counter.spec.key,
        counter.spec.window.storage_name(),
        counter.partition
    )
}

/// `dsn` with the password of its user-info replaced by `***`, for logs and
/// errors: `redis://user:secret@host:6379/0` -> `redis://user:***@host:6379/0`.
/// Anything between `://` and the last `@` before the host is user-info; a
/// DSN that cannot be split is hidden whole rather than risk a leak.
pub fn redact_dsn(dsn: &str) -> String {
    let Some(scheme_end) = dsn.find("://") else {
        return if dsn.contains('@') || dsn.contains(':') {
            "<unparseable DSN hidden>".to_string()
        } else {
            dsn.to_string()
        };
    };
    let rest = &dsn[scheme_end + 3..];
    // The authority ends at the first '/', '?' or '#' after the last '@'
    // (a password may contain '/', '?' or '#' only percent-encoded, but be
    // safe: take the last '@' anywhere before the path as the separator).
    let Some(at) = rest.rfind('@') else {
        return dsn.to_string();
    };
    let userinfo = &rest[..at];
    let shown = match userinfo.find(':') {
        Some(colon) => format!("{}:***", &userinfo[..colon]),
        None if userinfo.is_empty() => String::new(),
        // `redis://secret@host`: redis-rs reads a lone user-info as a user
        // name, but people write passwords there; hide it too.
        None => "***".to_string(),
    };
    format!("{}://{shown}@{}", &dsn[..scheme_end], &rest[at + 1..])
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn dsn_passwords_are_redacted() {
        assert_eq!(
            redact_dsn("redis://user:s3cret@127.0.0.1:6379/0"),
            "redis://user:***@127.0.0.1:6379/0"
        );
        assert_eq!(
            redact_dsn("redis://:s3cret@localhost/2"),
            "redis://:***@localhost/2"
        );
        assert_eq!(
            redact_dsn("redis://s3cret@localhost"),
            "redis://***@localhost"
        );
        assert_eq!(
            redact_dsn("redis://u:p@ss/w?rd#x@host:1/0"),
            "redis://u:***@host:1/0"
        );
        assert_eq!(
            redact_dsn("redis://127.0.0.1:6379/0"),
            "redis://127.0.0.1:6379/0"
        );
        assert!(!redact_dsn("user:s3cret@host").contains("s3cret"));
    }

    #[test]
    fn storage_keys_name_counter_window_and_partition() {
        use portcullis_core::counters::{Calendar, CounterSpec, Scope, Window};
        static C: CounterSpec = CounterSpec::new(
            "srv/_global.rate",
            Window::Calendar(Calendar::Minute),
            Scope::Global,
        );
        static S: CounterSpec = CounterSpec::new(
            "srv/t.c",
            Window::Sliding { millis: 90_000 },
            Scope::Session,
        );
        assert_eq!(
            storage_key(
                "p:",
                CounterRef {
                    spec: &C,
                    partition: 0
                }
            ),
            "p:srv/_global.rate#minute#0000000000000000"
        );
        assert_eq!(
            storage_key(
                "",
                CounterRef {
                    spec: &S,
                    partition: 0xab
                }
            ),
            "srv/t.c#90000ms#00000000000000ab"
        );
        // An argument partition: 128 bits, top bit set, 32 hex digits.
        assert_eq!(
            storage_key(
                "",
                CounterRef {
                    spec: &S,
                    partition: portcullis_core::ops::ARG_PARTITION | 0xab
                }
            ),
            "srv/t.c#90000ms#800000000000000000000000000000ab"
        );
    }
}
