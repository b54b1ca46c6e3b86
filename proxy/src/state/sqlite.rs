//! Counters in a SQLite file (`--state-dir DIR`): they survive restarts, and
//! every proxy process that shares the directory shares them.
//!
//! One table, one row per (counter, bucket):
//!
//! ```sql
//! counters(key TEXT, bucket INTEGER, value INTEGER, expires INTEGER,
//!          PRIMARY KEY (key, bucket)) WITHOUT ROWID
//! ```
//!
//! `key` is [`storage_key`]; `bucket` is [`Window::bucket`]; `expires` (ms
//! since the epoch) is when the bucket stops counting, after which the row
//! is deleted. A reservation is one `BEGIN IMMEDIATE` transaction that sums
//! the live buckets of every requested counter, and adds to all of them or
//! to none: SQLite's write lock makes it atomic across processes. WAL mode
//! with `synchronous=NORMAL`: a commit appends to the log without an fsync
//! (a power cut may lose the last commits, never corrupt the file); readers
//! never block the writer.
//!
//! The proxy first tries a reservation on its event loop without waiting
//! ([`Backend::try_reserve`]): the connection's mutex and SQLite's write lock
//! are only tried (busy timeout 0), and when another process or thread holds
//! either, the call is decided again on a thread that may wait (busy timeout
//! [`BUSY_TIMEOUT`]). Checkpoints (moving the log into the database, with
//! fsyncs) never run inside a reservation: automatic checkpoints are off
//! below [`AUTOCHECKPOINT_BACKSTOP`] pages, and the store's worker thread
//! runs one every [`CHECKPOINT_EVERY`] commits ([`Backend::maintain`]),
//! along with the deletion of expired rows.
//!
//! [`Window::bucket`]: portcullis_core::counters::Window::bucket

use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicI64, AtomicU32, Ordering};
use std::sync::{Mutex, MutexGuard, TryLockError};
use std::time::{Duration, Instant};

use rusqlite::{Connection, ErrorCode, OptionalExtension, TransactionBehavior, params};

use super::{Backend, storage_key};
use portcullis_core::counters::{
    CounterRef, ReserveOutcome, ReserveRequest, StateError, Ticket, UnixMillis,
};

/// The database file inside `--state-dir`.
pub const FILE_NAME: &str = "portcullis-counters.sqlite";

/// How long a reservation waits for another process's write lock.
pub const BUSY_TIMEOUT: Duration = Duration::from_secs(5);

/// Schema version in `PRAGMA user_version`.
const SCHEMA_VERSION: i64 = 1;

/// Delete expired rows at most this often.
const PRUNE_EVERY_MS: i64 = 60_000;

/// The worker checkpoints the log after this many commits (SQLite's own
/// default is every 1000 pages; a reservation writes about one).
pub const CHECKPOINT_EVERY: u32 = 1000;

/// Should the worker fall behind, a commit checkpoints by itself once the
/// log holds this many pages (about 40 MiB).
pub const AUTOCHECKPOINT_BACKSTOP: u32 = 10_000;

/// SQLite integers are i64.
const MAX_EXACT: u64 = i64::MAX as u64;

/// A SQLite counter store.
pub struct SqliteStore {
    conn: Mutex<Db>,
    path: PathBuf,
    prefix: String,
    /// Commits since the last checkpoint.
    commits: AtomicU32,
    /// When expired rows are next deleted (ms since the epoch).
    next_prune: AtomicI64,
}

struct Db {
    conn: Connection,
    /// The connection's busy timeout is [`BUSY_TIMEOUT`] (else 0).
    waits: bool,
}

/// Another connection holds the lock (SQLITE_BUSY, SQLITE_LOCKED).
fn is_busy(e: &rusqlite::Error) -> bool {
    matches!(
        e.sqlite_error_code(),
        Some(ErrorCode::DatabaseBusy | ErrorCode::DatabaseLocked)
    )
}

fn err(e: rusqlite::Error) -> StateError {
    StateError(format!("sqlite: {e}"))
}

/// Why one attempt at opening the database failed.
enum Opening {
    /// SQLite failed at this step (retried while it is SQLITE_BUSY).
    Sqlite(&'static str, rusqlite::Error),
    /// The file cannot be used (not WAL, a newer schema): never retried.
    Refused(String),
}

/// One attempt: connect, switch to WAL, create the schema if it is missing,
/// waiting at most `wait` for a lock held elsewhere.
fn open_db(path: &Path, wait: Duration) -> Result<Db, Opening> {
    let at = |step: &'static str| move |e: rusqlite::Error| Opening::Sqlite(step, e);
    let conn = Connection::open(path).map_err(at("opening the file"))?;
    conn.busy_timeout(wait)
        .map_err(at("setting the busy timeout"))?;
    // WAL: readers do not block the writer, and a commit is an append.
    let mode: String = conn
        .query_row("PRAGMA journal_mode=WAL", [], |r| r.get(0))
        .map_err(at("switching to WAL"))?;
    if !mode.eq_ignore_ascii_case("wal") {
        return Err(Opening::Refused(format!(
            "the counter database {} cannot use WAL mode (journal mode {mode}); is the directory on a network file system?",
            path.display()
        )));
    }
    conn.execute_batch(&format!(
        "PRAGMA synchronous=NORMAL; PRAGMA wal_autocheckpoint={AUTOCHECKPOINT_BACKSTOP};"
    ))
    .map_err(at("setting pragmas"))?;
    let mut db = Db { conn, waits: true };
    let tx = db
        .conn
        .transaction_with_behavior(TransactionBehavior::Immediate)
        .map_err(at("locking to create the schema"))?;
    let version: i64 = tx
        .query_row("PRAGMA user_version", [], |r| r.get(0))
        .map_err(at("reading the schema version"))?;
    match version {
        0 => {
            tx.execute_batch(
                "CREATE TABLE IF NOT EXISTS counters (
                     key TEXT NOT NULL,
                     bucket INTEGER NOT NULL,
                     value INTEGER NOT NULL,
                     expires INTEGER NOT NULL,
                     PRIMARY KEY (key, bucket)
                 ) WITHOUT ROWID;
                 CREATE INDEX IF NOT EXISTS counters_expires ON counters (expires);
                 PRAGMA user_version = 1;",
            )
            .map_err(at("creating the schema"))?;
        }
        SCHEMA_VERSION => {}
        v => {
            return Err(Opening::Refused(format!(
                "the counter database {} has schema version {v}, newer than this Portcullis knows ({SCHEMA_VERSION})",
                path.display()
            )));
        }
    }
    tx.commit().map_err(at("creating the schema"))?;
    // From now on every wait is the full busy timeout (what `waits` says).
    db.conn
        .busy_timeout(BUSY_TIMEOUT)
        .map_err(at("setting the busy timeout"))?;
    Ok(db)
}

impl SqliteStore {
    /// Opens (creating it and the directory if needed) the store in `dir`.
    /// `prefix` goes in front of every key.
    ///
    /// Proxies started together on a new directory race to create the file,
    /// switch it to WAL and create the schema. SQLite does not call the busy
    /// handler at every step of that (switching the journal mode, for one,
    /// fails at once with SQLITE_BUSY while another connection has the file
    /// open), so the whole sequence is retried, on a fresh connection, until
    /// it succeeds or [`BUSY_TIMEOUT`] has passed. Every step is idempotent
    /// (`journal_mode=WAL` on a WAL file, the schema created in one
    /// `BEGIN IMMEDIATE` transaction only while `user_version` is 0), so
    /// retrying after another process finished it is safe.
    pub fn open(dir: &Path, prefix: &str) -> Result<SqliteStore, String> {
        std::fs::create_dir_all(dir)
            .map_err(|e| format!("cannot create the state directory {}: {e}", dir.display()))?;
        let path = dir.join(FILE_NAME);
        let started = Instant::now();
        let mut pause = Duration::from_millis(1);
        let db = loop {
            // Each attempt waits in SQLite's busy handler only for what is
            // left of the budget, so start-up gives up after BUSY_TIMEOUT in all.
            let left = BUSY_TIMEOUT.saturating_sub(started.elapsed());
            match open_db(&path, left) {
                Ok(db) => break db,
                Err(Opening::Sqlite(_, e)) if is_busy(&e) && started.elapsed() < BUSY_TIMEOUT => {
                    // Jittered, growing pauses: racing processes do not retry in lockstep.
                    let jitter = Duration::from_micros(u64::from(std::process::id() % 997));
                    std::thread::sleep(pause + jitter);
                    pause = (pause * 2).min(Duration::from_millis(50));
                }
                Err(Opening::Sqlite(step, e)) if is_busy(&e) => {
                    return Err(format!(
                        "cannot open the counter database {}: still locked by another connection after {} s ({step}): {e}",
                        path.display(),
                        BUSY_TIMEOUT.as_secs()
                    ));
                }
                Err(Opening::Sqlite(step, e)) => {
                    return Err(format!(
                        "cannot open the counter database {} ({step}): {e}",
                        path.display()
                    ));
                }
                Err(Opening::Refused(message)) => return Err(message),
            }
        };
        let store = SqliteStore {
            conn: Mutex::new(db),
            path,
            prefix: prefix.to_string(),
            commits: AtomicU32::new(0),
            next_prune: AtomicI64::new(0),
        };
        store.maintain(UnixMillis::now()).map_err(|e| {
            format!(
                "cannot open the counter database {}: {}",
                store.path.display(),
                e.0
            )
        })?;
        Ok(store)
    }

    /// The database file.
    pub fn path(&self) -> &Path {
        &self.path
    }

    /// The connection, waiting for it and then for SQLite's lock.
    fn db(&self) -> Result<MutexGuard<'_, Db>, StateError> {
        // A panic mid-transaction drops the transaction (rolled back): the
        // connection is consistent, so a poisoned lock is safe to reuse.
        let mut db = self.conn.lock().unwrap_or_else(|e| e.into_inner());
        db.wait(true).map_err(err)?;
        Ok(db)
    }

    /// The connection if nobody holds it, set to fail at once (not wait)
    /// when another connection holds SQLite's lock.
    fn db_now(&self) -> Result<Option<MutexGuard<'_, Db>>, StateError> {
        let mut db = match self.conn.try_lock() {
            Ok(db) => db,
            Err(TryLockError::Poisoned(e)) => e.into_inner(),
            Err(TryLockError::WouldBlock) => return Ok(None),
        };
        db.wait(false).map_err(err)?;
        Ok(Some(db))
    }

    fn committed(&self) {
        self.commits.fetch_add(1, Ordering::Relaxed);
    }
}

impl Db {
    fn wait(&mut self, wait: bool) -> rusqlite::Result<()> {
        if self.waits != wait {
            self.conn
                .busy_timeout(if wait { BUSY_TIMEOUT } else { Duration::ZERO })?;
            self.waits = wait;
        }
        Ok(())
    }
}

fn value(
    conn: &Connection,
    key: &str,
    counter: CounterRef,
    now: UnixMillis,
) -> rusqlite::Result<u64> {
    let (oldest, current) = counter.spec.window.live_buckets(now);
    let sum: Option<i64> = conn
        .prepare_cached(
            "SELECT SUM(value) FROM counters WHERE key = ?1 AND bucket BETWEEN ?2 AND ?3",
        )?
        .query_row(params![key, oldest, current], |r| r.get(0))
        .optional()?
        .flatten();
    Ok(u64::try_from(sum.unwrap_or(0)).unwrap_or(0))
}

impl SqliteStore {
    /// After a reservation's transaction: the ticket, and the commit count.
    fn settle(
        &self,
        outcome: ReserveOutcome,
        requests: &[ReserveRequest],
        now: UnixMillis,
        ticket: &mut Ticket,
    ) {
        if outcome == ReserveOutcome::Reserved {
            for r in requests {
                ticket.push(portcullis_core::counters::Reservation {
                    counter: r.counter,
                    amount: r.amount,
                    bucket: r.counter.spec.window.bucket(now),
                });
            }
            self.committed();
        }
    }
}

/// One reservation: a `BEGIN IMMEDIATE` transaction that adds every request
/// or, refusing one, none (dropping the transaction rolls it back). Fails
/// with SQLITE_BUSY, having added nothing, when the lock is held elsewhere
/// past the connection's busy timeout.
fn reserve(
    conn: &mut Connection,
    prefix: &str,
    requests: &[ReserveRequest],
    now: UnixMillis,
) -> rusqlite::Result<ReserveOutcome> {
    let keys: Vec<String> = requests
        .iter()
        .map(|r| storage_key(prefix, r.counter))
        .collect();
    let tx = conn.transaction_with_behavior(TransactionBehavior::Immediate)?;
    // Check everything first (values are read inside the write lock).
    let mut totals: Vec<Option<u64>> = vec![None; requests.len()];
    for (i, r) in requests.iter().enumerate() {
        if r.amount == 0 {
            continue; // adding nothing always fits
        }
        // An earlier request of this call on the same counter: continue from its total.
        let before = match (0..i)
            .rev()
            .find(|&j| keys[j] == keys[i] && totals[j].is_some())
        {
            Some(j) => totals[j].unwrap_or(0),
            None => value(&tx, &keys[i], r.counter, now)?,
        };
        let limit = r.limit.min(MAX_EXACT);
        match before.checked_add(r.amount) {
            Some(v) if v <= limit => totals[i] = Some(v),
            _ => return Ok(ReserveOutcome::Refused { index: i }),
        }
    }
    {
        let mut add = tx.prepare_cached(
            "INSERT INTO counters (key, bucket, value, expires) VALUES (?1, ?2, ?3, ?4)
             ON CONFLICT (key, bucket) DO UPDATE SET value = value + excluded.value",
        )?;
        for (r, key) in requests.iter().zip(&keys) {
            if r.amount == 0 {
                continue;
            }
            let window = r.counter.spec.window;
            let bucket = window.bucket(now);
            // Checked above: amount <= limit <= i64::MAX.
            let amount = i64::try_from(r.amount).unwrap_or(i64::MAX);
            add.execute(params![key, bucket, amount, window.bucket_expiry(bucket)])?;
        }
    }
    tx.commit()?;
    Ok(ReserveOutcome::Reserved)
}

impl Backend for SqliteStore {
    fn read(&self, counter: CounterRef, now: UnixMillis) -> Result<u64, StateError> {
        let key = storage_key(&self.prefix, counter);
        value(&self.db()?.conn, &key, counter, now).map_err(err)
    }

    fn reserve(
        &self,
        requests: &[ReserveRequest],
        now: UnixMillis,
        ticket: &mut Ticket,
    ) -> Result<ReserveOutcome, StateError> {
        let mut db = self.db()?;
        let outcome = reserve(&mut db.conn, &self.prefix, requests, now).map_err(err)?;
        self.settle(outcome, requests, now, ticket);
        Ok(outcome)
    }

    fn try_read(&self, counter: CounterRef, now: UnixMillis) -> Result<Option<u64>, StateError> {
        let Some(db) = self.db_now()? else {
            return Ok(None);
        };
        let key = storage_key(&self.prefix, counter);
        match value(&db.conn, &key, counter, now) {
            Ok(v) => Ok(Some(v)),
            Err(e) if is_busy(&e) => Ok(None),
            Err(e) => Err(err(e)),
        }
    }

    fn try_reserve(
        &self,
        requests: &[ReserveRequest],
        now: UnixMillis,
        ticket: &mut Ticket,
    ) -> Result<Option<ReserveOutcome>, StateError> {
        let Some(mut db) = self.db_now()? else {
            return Ok(None);
        };
        match reserve(&mut db.conn, &self.prefix, requests, now) {
            Ok(outcome) => {
                self.settle(outcome, requests, now, ticket);
                Ok(Some(outcome))
            }
            // The transaction was rolled back: nothing was added.
            Err(e) if is_busy(&e) => Ok(None),
            Err(e) => Err(err(e)),
        }
    }

    fn maintenance_due(&self, now: UnixMillis) -> bool {
        self.commits.load(Ordering::Relaxed) >= CHECKPOINT_EVERY
            || now.0 >= self.next_prune.load(Ordering::Relaxed)
    }

    fn maintain(&self, now: UnixMillis) -> Result<(), StateError> {
        let db = self.db()?;
        if now.0 >= self.next_prune.load(Ordering::Relaxed) {
            self.next_prune
                .store(now.0.saturating_add(PRUNE_EVERY_MS), Ordering::Relaxed);
            db.conn
                .prepare_cached("DELETE FROM counters WHERE expires <= ?1")
                .and_then(|mut s| s.execute([now.0]))
                .map_err(err)?;
        }
        self.commits.store(0, Ordering::Relaxed);
        // PASSIVE: copies what no reader still needs, never waits for readers
        // or blocks writers of other processes.
        db.conn
            .query_row("PRAGMA wal_checkpoint(PASSIVE)", [], |_| Ok(()))
            .map_err(err)
    }

    fn idempotency(&self) -> Option<&dyn portcullis_core::idempotency::IdempotencyStore> {
        Some(self)
    }

    fn rollback(&self, ticket: &Ticket) -> Result<(), StateError> {
        let mut db = self.db()?;
        let tx = db
            .conn
            .transaction_with_behavior(TransactionBehavior::Immediate)
            .map_err(err)?;
        {
            // Only the bucket the units went to: never a later window; never below 0.
            let mut sub = tx
                .prepare_cached(
                    "UPDATE counters SET value = MAX(value - ?3, 0) WHERE key = ?1 AND bucket = ?2",
                )
                .map_err(err)?;
            for r in ticket.iter().filter(|r| r.amount > 0) {
                let key = storage_key(&self.prefix, r.counter);
                let amount = i64::try_from(r.amount).unwrap_or(i64::MAX);
                sub.execute(params![key, r.bucket, amount]).map_err(err)?;
            }
        }
        tx.commit().map_err(err)?;
        self.committed();
        Ok(())
    }
}

/// Idempotency records: one row per key in table `idempotency` (created on
/// first use; the counters' schema is unchanged). A claim is one
/// `BEGIN IMMEDIATE` transaction, so of two processes claiming one key,
/// one inserts the in-flight row and the other sees it.
impl portcullis_core::idempotency::IdempotencyStore for SqliteStore {
    fn claim(
        &self,
        key: &portcullis_core::idempotency::IdemKey,
        now: UnixMillis,
        lease_ms: u64,
    ) -> Result<portcullis_core::idempotency::Claim, StateError> {
        use portcullis_core::idempotency::{Claim, new_token};
        let k = format!("{}idem#{}", self.prefix, key.hex());
        let mut db = self.db()?;
        let tx = db
            .conn
            .transaction_with_behavior(TransactionBehavior::Immediate)
            .map_err(err)?;
        tx.execute_batch(
            "CREATE TABLE IF NOT EXISTS idempotency (
                 key TEXT PRIMARY KEY,
                 token INTEGER NOT NULL,
                 done INTEGER NOT NULL,
                 answer BLOB,
                 until INTEGER NOT NULL
             ) WITHOUT ROWID;
             CREATE INDEX IF NOT EXISTS idempotency_until ON idempotency (until);",
        )
        .map_err(err)?;
        // Expired records go first (in flight past their lease, done past their window).
        tx.prepare_cached("DELETE FROM idempotency WHERE until <= ?1")
            .and_then(|mut s| s.execute([now.0]))
            .map_err(err)?;
        let row: Option<(i64, Option<Vec<u8>>)> = tx
            .prepare_cached("SELECT done, answer FROM idempotency WHERE key = ?1")
            .and_then(|mut s| s.query_row([&k], |r| Ok((r.get(0)?, r.get(1)?))).optional())
            .map_err(err)?;
        let claim = match row {
            Some((0, _)) => Claim::InFlight,
            Some((_, answer)) => Claim::Done(answer),
            None => {
                let token = new_token();
                let until = now.0.saturating_add(lease_ms.min(MAX_EXACT) as i64);
                tx.prepare_cached(
                    "INSERT INTO idempotency (key, token, done, answer, until) VALUES (?1, ?2, 0, NULL, ?3)",
                )
                .and_then(|mut s| s.execute(params![k, token as i64, until]))
                .map_err(err)?;
                Claim::Mine(token)
            }
        };
        tx.commit().map_err(err)?;
        self.committed();
        Ok(claim)
    }

    fn complete(
        &self,
        key: &portcullis_core::idempotency::IdemKey,
        token: u64,
        answer: Option<&[u8]>,
        expires: UnixMillis,
    ) -> Result<(), StateError> {
        let k = format!("{}idem#{}", self.prefix, key.hex());
        let db = self.db()?;
        db.conn
            .prepare_cached(
                "UPDATE idempotency SET done = 1, answer = ?3, until = ?4 WHERE key = ?1 AND token = ?2 AND done = 0",
            )
            .and_then(|mut s| s.execute(params![k, token as i64, answer, expires.0]))
            .map_err(err)?;
        self.committed();
        Ok(())
    }

    fn release(
        &self,
        key: &portcullis_core::idempotency::IdemKey,
        token: u64,
    ) -> Result<(), StateError> {
        let k = format!("{}idem#{}", self.prefix, key.hex());
        let db = self.db()?;
        db.conn
            .prepare_cached("DELETE FROM idempotency WHERE key = ?1 AND token = ?2 AND done = 0")
            .and_then(|mut s| s.execute(params![k, token as i64]))
            .map_err(err)?;
        self.committed();
        Ok(())
    }
}

/// Approval records (see [`crate::approvals`]): one row per request in table
/// `approvals` (created on first use; the counters' schema is unchanged),
/// `ns` the key prefix. Resolving a held call, deciding and restoring are
/// each one `BEGIN IMMEDIATE` transaction: of two proxies consuming one
/// approval, one sees it approved and marks it consumed, the other sees it
/// consumed.
mod approval_rows {
    use super::*;
    use crate::approvals::{ApprovalStore, DecideError, NewRequest, Record, Resolution, Status};

    const SCHEMA: &str = "CREATE TABLE IF NOT EXISTS approvals (
             ns TEXT NOT NULL,
             id TEXT NOT NULL,
             fingerprint TEXT NOT NULL,
             server TEXT NOT NULL,
             tool TEXT NOT NULL,
             arguments TEXT NOT NULL,
             rule TEXT NOT NULL,
             message TEXT NOT NULL,
             sub TEXT NOT NULL,
             iss TEXT NOT NULL,
             created INTEGER NOT NULL,
             expires INTEGER NOT NULL,
             status TEXT NOT NULL,
             decided_by TEXT NOT NULL,
             reason TEXT NOT NULL,
             PRIMARY KEY (ns, id)
         ) WITHOUT ROWID;
         CREATE INDEX IF NOT EXISTS approvals_fingerprint ON approvals (ns, fingerprint, status);
         CREATE INDEX IF NOT EXISTS approvals_expires ON approvals (expires);";

    /// Records are deleted this long after their expiry (kept for `list --all`, `show`).
    pub const RETAIN_MS: i64 = 7 * 24 * 3600 * 1000;

    const COLUMNS: &str = "id, fingerprint, server, tool, arguments, rule, message, sub, iss, created, expires, status, decided_by, reason";

    fn row(r: &rusqlite::Row<'_>) -> rusqlite::Result<Record> {
        let status: String = r.get(11)?;
        Ok(Record {
            id: r.get(0)?,
            fingerprint: r.get(1)?,
            server: r.get(2)?,
            tool: r.get(3)?,
            arguments: r.get(4)?,
            rule: r.get(5)?,
            message: r.get(6)?,
            sub: r.get(7)?,
            iss: r.get(8)?,
            created: UnixMillis(r.get(9)?),
            expires: UnixMillis(r.get(10)?),
            status: Status::parse(&status).unwrap_or(Status::Expired),
            decided_by: r.get(12)?,
            reason: r.get(13)?,
        })
    }

    /// Marks lapsed pending and approved rows expired (all of them, or those
    /// of one fingerprint).
    fn expire(
        tx: &rusqlite::Transaction<'_>,
        ns: &str,
        fingerprint: Option<&str>,
        now: UnixMillis,
    ) -> rusqlite::Result<usize> {
        tx.prepare_cached(
            "UPDATE approvals SET status = 'expired'
             WHERE ns = ?1 AND (?2 IS NULL OR fingerprint = ?2)
               AND status IN ('pending', 'approved') AND expires <= ?3",
        )?
        .execute(params![ns, fingerprint, now.0])
    }

    fn find(
        tx: &rusqlite::Transaction<'_>,
        ns: &str,
        fingerprint: &str,
        status: Status,
    ) -> rusqlite::Result<Option<Record>> {
        tx.prepare_cached(&format!(
            "SELECT {COLUMNS} FROM approvals WHERE ns = ?1 AND fingerprint = ?2 AND status = ?3
             ORDER BY created DESC LIMIT 1"
        ))?
        .query_row(params![ns, fingerprint, status.as_str()], row)
        .optional()
    }

    fn by_id(
        tx: &rusqlite::Transaction<'_>,
        ns: &str,
        id: &str,
    ) -> rusqlite::Result<Option<Record>> {
        tx.prepare_cached(&format!(
            "SELECT {COLUMNS} FROM approvals WHERE ns = ?1 AND id = ?2"
        ))?
        .query_row(params![ns, id], row)
        .optional()
    }

    fn set_status(
        tx: &rusqlite::Transaction<'_>,
        ns: &str,
        id: &str,
        status: Status,
    ) -> rusqlite::Result<usize> {
        tx.prepare_cached("UPDATE approvals SET status = ?3 WHERE ns = ?1 AND id = ?2")?
            .execute(params![ns, id, status.as_str()])
    }

    impl SqliteStore {
        /// Runs `f` in one immediate transaction on a schema that exists.
        fn approvals_tx<T>(
            &self,
            f: impl FnOnce(&rusqlite::Transaction<'_>) -> rusqlite::Result<T>,
        ) -> Result<T, StateError> {
            let mut db = self.db()?;
            let tx = db
                .conn
                .transaction_with_behavior(TransactionBehavior::Immediate)
                .map_err(err)?;
            tx.execute_batch(SCHEMA).map_err(err)?;
            let out = f(&tx).map_err(err)?;
            tx.commit().map_err(err)?;
            self.committed();
            Ok(out)
        }
    }

    impl ApprovalStore for SqliteStore {
        fn resolve(
            &self,
            req: NewRequest,
            new_id: String,
            now: UnixMillis,
        ) -> Result<(Resolution, usize), StateError> {
            let ns = self.prefix.clone();
            self.approvals_tx(|tx| {
                let expired = expire(tx, &ns, Some(&req.fingerprint), now)?;
                if let Some(mut r) = find(tx, &ns, &req.fingerprint, Status::Approved)? {
                    set_status(tx, &ns, &r.id, Status::Consumed)?;
                    r.status = Status::Consumed;
                    return Ok((Resolution::Granted(r), expired));
                }
                if let Some(r) = find(tx, &ns, &req.fingerprint, Status::Denied)?
                    && now < r.expires
                {
                    return Ok((Resolution::Denied(r), expired));
                }
                if let Some(record) = find(tx, &ns, &req.fingerprint, Status::Pending)?
                    && req.reuses(&record, now)
                {
                    return Ok((Resolution::Pending { record, new: false }, expired));
                }
                // A new request: records long past their expiry go first.
                tx.prepare_cached("DELETE FROM approvals WHERE expires < ?1")?
                    .execute(params![now.0.saturating_sub(RETAIN_MS)])?;
                let r = req.into_record(new_id, now);
                tx.prepare_cached(&format!(
                    "INSERT INTO approvals ({COLUMNS}, ns) VALUES (?1, ?2, ?3, ?4, ?5, ?6, ?7, ?8, ?9, ?10, ?11, ?12, ?13, ?14, ?15)"
                ))?
                .execute(params![
                    r.id,
                    r.fingerprint,
                    r.server,
                    r.tool,
                    r.arguments,
                    r.rule,
                    r.message,
                    r.sub,
                    r.iss,
                    r.created.0,
                    r.expires.0,
                    r.status.as_str(),
                    r.decided_by,
                    r.reason,
                    ns
                ])?;
                Ok((
                    Resolution::Pending {
                        record: r,
                        new: true,
                    },
                    expired,
                ))
            })
        }

        fn restore(&self, id: &str) -> Result<bool, StateError> {
            let ns = self.prefix.clone();
            self.approvals_tx(|tx| {
                Ok(tx
                    .prepare_cached(
                        "UPDATE approvals SET status = 'approved' WHERE ns = ?1 AND id = ?2 AND status = 'consumed'",
                    )?
                    .execute(params![ns, id])?
                    == 1)
            })
        }

        fn get(&self, id: &str, now: UnixMillis) -> Result<Option<Record>, StateError> {
            let ns = self.prefix.clone();
            self.approvals_tx(|tx| {
                expire(tx, &ns, None, now)?;
                by_id(tx, &ns, id)
            })
        }

        fn list(&self, now: UnixMillis) -> Result<Vec<Record>, StateError> {
            let ns = self.prefix.clone();
            self.approvals_tx(|tx| {
                expire(tx, &ns, None, now)?;
                let mut s = tx.prepare_cached(&format!(
                    "SELECT {COLUMNS} FROM approvals WHERE ns = ?1 ORDER BY created DESC, id"
                ))?;
                let rows = s.query_map(params![ns], row)?;
                rows.collect()
            })
        }

        fn decide(
            &self,
            id: &str,
            approve: bool,
            by: &str,
            reason: &str,
            now: UnixMillis,
        ) -> Result<Record, DecideError> {
            let ns = self.prefix.clone();
            self.approvals_tx(|tx| {
                expire(tx, &ns, None, now)?;
                let Some(mut r) = by_id(tx, &ns, id)? else {
                    return Ok(Err(DecideError::Unknown));
                };
                if r.status != Status::Pending {
                    return Ok(Err(DecideError::NotPending(r.status)));
                }
                r.status = if approve {
                    Status::Approved
                } else {
                    Status::Denied
                };
                r.decided_by = by.to_string();
                r.reason = reason.to_string();
                tx.prepare_cached(
                    "UPDATE approvals SET status = ?3, decided_by = ?4, reason = ?5
                     WHERE ns = ?1 AND id = ?2 AND status = 'pending'",
                )?
                .execute(params![ns, id, r.status.as_str(), by, reason])?;
                Ok(Ok(r))
            })?
        }

        fn sweep(&self, now: UnixMillis) -> Result<usize, StateError> {
            let ns = self.prefix.clone();
            self.approvals_tx(|tx| expire(tx, &ns, None, now))
        }

        fn may_block(&self) -> bool {
            true
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::log::{Level, Log};
    use crate::state::{Store, conformance};
    use portcullis_core::counters::{Calendar, CounterSpec, Counters, Scope, Window};
    use std::sync::Arc;

    fn temp_dir(name: &str) -> PathBuf {
        let d = std::env::temp_dir().join(format!(
            "portcullis-sqlite-{name}-{}-{:?}",
            std::process::id(),
            std::thread::current().id()
        ));
        let _ = std::fs::remove_dir_all(&d);
        d
    }

    fn store(dir: &Path) -> Store {
        let backend = SqliteStore::open(dir, "").expect("open");
        Store::new(
            Arc::new(backend),
            dir.display().to_string(),
            Log {
                level: Level::Error,
            },
        )
        .expect("store")
    }

    #[test]
    fn approval_records_pass_the_suite_and_are_shared_between_connections() {
        use crate::approvals::{ApprovalStore, Resolution, conformance};
        let dir = temp_dir("approvals");
        conformance::run(&SqliteStore::open(&dir.join("a"), "").expect("open"));
        // Records a week past their expiry are deleted when a new request comes.
        let old = SqliteStore::open(&dir.join("c"), "").expect("open");
        let t0 = UnixMillis(1_000_000);
        let (Resolution::Pending { record, .. }, _) = old
            .resolve(
                conformance::request("t", "{}", 1000),
                crate::approvals::new_id().unwrap(),
                t0,
            )
            .unwrap()
        else {
            panic!("pending expected")
        };
        let later = UnixMillis(t0.0 + 1000 + approval_rows::RETAIN_MS);
        assert!(
            old.get(&record.id, later).unwrap().is_some(),
            "kept for a week"
        );
        old.resolve(
            conformance::request("u", "{}", 1000),
            crate::approvals::new_id().unwrap(),
            UnixMillis(later.0 + 1),
        )
        .unwrap();
        assert!(
            old.get(&record.id, later).unwrap().is_none(),
            "then deleted"
        );
        // Two connections (two proxies) on one file, and prefixes apart.
        let one = SqliteStore::open(&dir.join("b"), "p:").expect("open");
        let two = SqliteStore::open(&dir.join("b"), "p:").expect("open");
        let other = SqliteStore::open(&dir.join("b"), "q:").expect("open");
        let now = UnixMillis::now();
        let id = crate::approvals::new_id().unwrap();
        let Resolution::Pending { record, .. } = one
            .resolve(conformance::request("t", "{}", 60_000), id.clone(), now)
            .unwrap()
            .0
        else {
            panic!("pending expected")
        };
        assert_eq!(record.id, id);
        assert!(other.get(&id, now).unwrap().is_none());
        two.decide(&id, true, "op", "", now).unwrap();
        // Racing consumers: exactly one is granted.
        let granted = std::thread::scope(|s| {
            let a = s.spawn(|| {
                one.resolve(
                    conformance::request("t", "{}", 60_000),
                    crate::approvals::new_id().unwrap(),
                    now,
                )
            });
            let b = s.spawn(|| {
                two.resolve(
                    conformance::request("t", "{}", 60_000),
                    crate::approvals::new_id().unwrap(),
                    now,
                )
            });
            [a.join().unwrap().unwrap().0, b.join().unwrap().unwrap().0]
        });
        assert_eq!(
            granted
                .iter()
                .filter(|r| matches!(r, Resolution::Granted(_)))
                .count(),
            1,
            "{granted:?}"
        );
        let _ = std::fs::remove_dir_all(&dir);
    }

    #[test]
    fn behaves_like_the_memory_store() {
        let dir = temp_dir("conformance");
        let n = std::sync::atomic::AtomicUsize::new(0);
        conformance::run_all(
            &|| {
                let i = n.fetch_add(1, std::sync::atomic::Ordering::Relaxed);
                store(&dir.join(i.to_string()))
            },
            &|s: &Store| s.flush(),
        );
        let _ = std::fs::remove_dir_all(&dir);
    }

    #[test]
    fn memory_store_passes_the_same_suite() {
        conformance::run_all(&portcullis_core::counters::MemoryCounters::new, &|_| {});
    }

    static DAILY: CounterSpec =
        CounterSpec::new("s/t.daily", Window::Calendar(Calendar::Day), Scope::Global);

    #[test]
    fn counters_survive_reopening_and_prefixes_separate_them() {
        let dir = temp_dir("reopen");
        let c = CounterRef {
            spec: &DAILY,
            partition: 0,
        };
        let now = UnixMillis::now();
        let r = [ReserveRequest {
            counter: c,
            amount: 2,
            limit: 3,
        }];
        {
            let s = SqliteStore::open(&dir, "a:").unwrap();
            assert_eq!(
                s.reserve(&r, now, &mut Ticket::default()),
                Ok(ReserveOutcome::Reserved)
            );
        }
        let s = SqliteStore::open(&dir, "a:").unwrap();
        assert_eq!(s.read(c, now), Ok(2));
        assert_eq!(
            s.reserve(&r, now, &mut Ticket::default()),
            Ok(ReserveOutcome::Refused { index: 0 })
        );
        let other = SqliteStore::open(&dir, "b:").unwrap();
        assert_eq!(other.read(c, now), Ok(0));
        let _ = std::fs::remove_dir_all(&dir);
    }

    #[test]
    fn two_connections_racing_never_overshoot() {
        // Two stores on one file: as two processes would (each its own connection).
        let dir = temp_dir("race");
        let a = SqliteStore::open(&dir, "").unwrap();
        let b = SqliteStore::open(&dir, "").unwrap();
        let c = CounterRef {
            spec: &DAILY,
            partition: 1,
        };
        let admitted = std::sync::atomic::AtomicU64::new(0);
        std::thread::scope(|s| {
            for store in [&a, &b, &a, &b] {
                let admitted = &admitted;
                s.spawn(move || {
                    for _ in 0..60 {
                        let r = [ReserveRequest {
                            counter: c,
                            amount: 1,
                            limit: 100,
                        }];
                        if store.reserve(&r, UnixMillis::now(), &mut Ticket::default())
                            == Ok(ReserveOutcome::Reserved)
                        {
                            admitted.fetch_add(1, std::sync::atomic::Ordering::Relaxed);
                        }
                    }
                });
            }
        });
        assert_eq!(admitted.into_inner(), 100);
        let _ = std::fs::remove_dir_all(&dir);
    }

    #[test]
    fn expired_rows_are_pruned() {
        let dir = temp_dir("prune");
        let s = SqliteStore::open(&dir, "").unwrap();
        let c = CounterRef {
            spec: &DAILY,
            partition: 2,
        };
        let r = [ReserveRequest {
            counter: c,
            amount: 1,
            limit: 3,
        }];
        s.reserve(&r, UnixMillis(0), &mut Ticket::default())
            .unwrap();
        s.reserve(&r, UnixMillis::now(), &mut Ticket::default())
            .unwrap();
        let rows = |s: &SqliteStore| -> i64 {
            s.db()
                .unwrap()
                .conn
                .query_row("SELECT COUNT(*) FROM counters", [], |r| r.get(0))
                .unwrap()
        };
        assert_eq!(rows(&s), 2);
        let now = UnixMillis::now();
        assert!(
            !s.maintenance_due(now),
            "opening pruned; the next prune is a minute away"
        );
        s.maintain(now).unwrap();
        assert_eq!(rows(&s), 2, "not due: nothing deleted");
        s.next_prune.store(0, Ordering::Relaxed);
        assert!(s.maintenance_due(now));
        s.maintain(now).unwrap();
        assert_eq!(rows(&s), 1, "the row of 1970 is gone, today's stays");
        assert!(!s.maintenance_due(now));
        let _ = std::fs::remove_dir_all(&dir);
    }

    #[test]
    fn a_store_error_is_a_state_error() {
        let dir = temp_dir("broken");
        let s = SqliteStore::open(&dir, "").unwrap();
        s.db()
            .unwrap()
            .conn
            .execute_batch("DROP TABLE counters")
            .unwrap();
        let c = CounterRef {
            spec: &DAILY,
            partition: 0,
        };
        let e = s
            .reserve(
                &[ReserveRequest {
                    counter: c,
                    amount: 1,
                    limit: 3,
                }],
                UnixMillis::now(),
                &mut Ticket::default(),
            )
            .unwrap_err();
        assert!(
            e.to_string()
                .starts_with("policy state unavailable: sqlite:"),
            "{e}"
        );
        let _ = std::fs::remove_dir_all(&dir);
    }

    fn one(partition: u128) -> [ReserveRequest; 1] {
        [ReserveRequest {
            counter: CounterRef {
                spec: &DAILY,
                partition,
            },
            amount: 1,
            limit: 10,
        }]
    }

    #[test]
    fn trying_never_waits_for_a_lock_held_elsewhere_and_adds_nothing() {
        let dir = temp_dir("try");
        let s = SqliteStore::open(&dir, "").unwrap();
        let c = one(3)[0].counter;
        let now = UnixMillis::now();
        let mut ticket = Ticket::default();
        assert_eq!(
            s.try_reserve(&one(3), now, &mut ticket),
            Ok(Some(ReserveOutcome::Reserved))
        );
        assert_eq!(ticket.iter().count(), 1);

        // Another process (here: another connection) holds the write lock.
        let other = Connection::open(dir.join(FILE_NAME)).unwrap();
        other.execute_batch("BEGIN IMMEDIATE").unwrap();
        let started = std::time::Instant::now();
        let mut ticket = Ticket::default();
        assert_eq!(s.try_reserve(&one(3), now, &mut ticket), Ok(None));
        assert!(ticket.is_empty(), "nothing reserved");
        assert!(
            started.elapsed() < BUSY_TIMEOUT,
            "gave up instead of waiting for the busy timeout"
        );
        // Readers are not blocked by a writer in WAL mode.
        assert_eq!(s.try_read(c, now), Ok(Some(1)));
        other.execute_batch("COMMIT").unwrap();
        assert_eq!(
            s.try_reserve(&one(3), now, &mut ticket),
            Ok(Some(ReserveOutcome::Reserved))
        );
        assert_eq!(s.read(c, now), Ok(2), "the refused try added nothing");

        // This process's connection busy on another thread: no wait either.
        let held = s.db().unwrap();
        std::thread::scope(|scope| {
            scope.spawn(|| {
                assert_eq!(
                    s.try_reserve(&one(3), now, &mut Ticket::default()),
                    Ok(None)
                );
                assert_eq!(s.try_read(c, now), Ok(None));
            });
        });
        drop(held);
        // And the waiting path waits for the lock, then succeeds.
        let other = Connection::open(dir.join(FILE_NAME)).unwrap();
        other.execute_batch("BEGIN IMMEDIATE").unwrap();
        std::thread::scope(|scope| {
            let waiting = scope.spawn(|| s.reserve(&one(3), now, &mut Ticket::default()));
            std::thread::sleep(Duration::from_millis(200));
            assert!(!waiting.is_finished(), "waits while the lock is held");
            other.execute_batch("COMMIT").unwrap();
            assert_eq!(waiting.join().unwrap(), Ok(ReserveOutcome::Reserved));
        });
        assert_eq!(s.read(c, now), Ok(3));
        let _ = std::fs::remove_dir_all(&dir);
    }

    #[test]
    fn the_worker_checkpoints_the_log_so_reservations_never_do() {
        let dir = temp_dir("checkpoint");
        let s = store(&dir);
        let calls = CHECKPOINT_EVERY + CHECKPOINT_EVERY / 2;
        for i in 0..calls {
            let r = [ReserveRequest {
                counter: CounterRef {
                    spec: &DAILY,
                    partition: 4,
                },
                amount: 1,
                limit: u64::MAX,
            }];
            let now = UnixMillis::now();
            let outcome = match s.try_reserve(&r, now, &mut Ticket::default()) {
                // The worker holds the connection while it checkpoints.
                Ok(None) => s.reserve(&r, now, &mut Ticket::default()),
                other => other.map(|o| o.expect("Some")),
            };
            assert_eq!(outcome, Ok(ReserveOutcome::Reserved), "call {i}");
        }
        s.flush(); // the checkpoint queued at commit CHECKPOINT_EVERY has run
        // What the database file itself holds, without its log: only what a
        // checkpoint moved there. Without the worker's, nothing (automatic
        // checkpoints start at 10,000 pages); with it, at least the first
        // CHECKPOINT_EVERY reservations.
        let copy = dir.join("copy.sqlite");
        std::fs::copy(dir.join(FILE_NAME), &copy).unwrap();
        let in_file: i64 = Connection::open(&copy)
            .unwrap()
            .query_row("SELECT COALESCE(SUM(value), 0) FROM counters", [], |r| {
                r.get(0)
            })
            .unwrap();
        assert!(
            in_file >= i64::from(CHECKPOINT_EVERY) && in_file <= i64::from(calls),
            "{in_file} of {calls} reservations checkpointed into the database file"
        );
        let _ = std::fs::remove_dir_all(&dir);
    }
}
