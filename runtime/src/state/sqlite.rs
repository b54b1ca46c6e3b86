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
//! [`Window::bucket`]: crate::counters::Window::bucket

use std::path::{Path, PathBuf};
use std::sync::Mutex;
use std::time::Duration;

use rusqlite::{Connection, OptionalExtension, TransactionBehavior, params};

use super::{Backend, storage_key};
use crate::counters::{CounterRef, ReserveOutcome, ReserveRequest, StateError, Ticket, UnixMillis};

/// The database file inside `--state-dir`.
pub const FILE_NAME: &str = "portcullis-counters.sqlite";

/// How long a reservation waits for another process's write lock.
pub const BUSY_TIMEOUT: Duration = Duration::from_secs(5);

/// Schema version in `PRAGMA user_version`.
const SCHEMA_VERSION: i64 = 1;

/// Delete expired rows at most this often.
const PRUNE_EVERY_MS: i64 = 60_000;

/// SQLite integers are i64.
const MAX_EXACT: u64 = i64::MAX as u64;

/// A SQLite counter store.
pub struct SqliteStore {
    conn: Mutex<Db>,
    path: PathBuf,
    prefix: String,
}

struct Db {
    conn: Connection,
    next_prune: i64,
}

fn err(e: rusqlite::Error) -> StateError {
    StateError(format!("sqlite: {e}"))
}

impl SqliteStore {
    /// Opens (creating it and the directory if needed) the store in `dir`.
    /// `prefix` goes in front of every key.
    pub fn open(dir: &Path, prefix: &str) -> Result<SqliteStore, String> {
        std::fs::create_dir_all(dir)
            .map_err(|e| format!("cannot create the state directory {}: {e}", dir.display()))?;
        let path = dir.join(FILE_NAME);
        let fail = |e: rusqlite::Error| {
            format!("cannot open the counter database {}: {e}", path.display())
        };
        let conn = Connection::open(&path).map_err(fail)?;
        conn.busy_timeout(BUSY_TIMEOUT).map_err(fail)?;
        // WAL: readers do not block the writer, and a commit is an append.
        let mode: String = conn
            .query_row("PRAGMA journal_mode=WAL", [], |r| r.get(0))
            .map_err(fail)?;
        if !mode.eq_ignore_ascii_case("wal") {
            return Err(format!(
                "the counter database {} cannot use WAL mode (journal mode {mode}); is the directory on a network file system?",
                path.display()
            ));
        }
        conn.execute_batch("PRAGMA synchronous=NORMAL;")
            .map_err(fail)?;
        let mut db = Db {
            conn,
            next_prune: 0,
        };
        {
            let tx = db
                .conn
                .transaction_with_behavior(TransactionBehavior::Immediate)
                .map_err(fail)?;
            let version: i64 = tx
                .query_row("PRAGMA user_version", [], |r| r.get(0))
                .map_err(fail)?;
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
                    .map_err(fail)?;
                }
                SCHEMA_VERSION => {}
                v => {
                    return Err(format!(
                        "the counter database {} has schema version {v}, newer than this Portcullis knows ({SCHEMA_VERSION})",
                        path.display()
                    ));
                }
            }
            tx.commit().map_err(fail)?;
        }
        let store = SqliteStore {
            conn: Mutex::new(db),
            path,
            prefix: prefix.to_string(),
        };
        store.db().prune(UnixMillis::now().0).map_err(|e| {
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

    fn db(&self) -> std::sync::MutexGuard<'_, Db> {
        // A panic mid-transaction drops the transaction (rolled back): the
        // connection is consistent, so a poisoned lock is safe to reuse.
        self.conn.lock().unwrap_or_else(|e| e.into_inner())
    }
}

impl Db {
    fn prune(&mut self, now: i64) -> Result<(), StateError> {
        if now < self.next_prune {
            return Ok(());
        }
        self.next_prune = now.saturating_add(PRUNE_EVERY_MS);
        self.conn
            .prepare_cached("DELETE FROM counters WHERE expires <= ?1")
            .and_then(|mut s| s.execute([now]))
            .map_err(err)?;
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

impl Backend for SqliteStore {
    fn read(&self, counter: CounterRef, now: UnixMillis) -> Result<u64, StateError> {
        let key = storage_key(&self.prefix, counter);
        value(&self.db().conn, &key, counter, now).map_err(err)
    }

    fn reserve(
        &self,
        requests: &[ReserveRequest],
        now: UnixMillis,
        ticket: &mut Ticket,
    ) -> Result<ReserveOutcome, StateError> {
        let keys: Vec<String> = requests
            .iter()
            .map(|r| storage_key(&self.prefix, r.counter))
            .collect();
        let mut db = self.db();
        let outcome = {
            let tx = db
                .conn
                .transaction_with_behavior(TransactionBehavior::Immediate)
                .map_err(err)?;
            // Check everything first (values are read inside the write lock).
            let mut totals: Vec<Option<u64>> = vec![None; requests.len()];
            let mut refused = None;
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
                    None => value(&tx, &keys[i], r.counter, now).map_err(err)?,
                };
                let limit = r.limit.min(MAX_EXACT);
                match before.checked_add(r.amount) {
                    Some(v) if v <= limit => totals[i] = Some(v),
                    _ => {
                        refused = Some(i);
                        break;
                    }
                }
            }
            match refused {
                Some(index) => ReserveOutcome::Refused { index },
                None => {
                    {
                        let mut add = tx
                            .prepare_cached(
                                "INSERT INTO counters (key, bucket, value, expires) VALUES (?1, ?2, ?3, ?4)
                                 ON CONFLICT (key, bucket) DO UPDATE SET value = value + excluded.value",
                            )
                            .map_err(err)?;
                        for (r, key) in requests.iter().zip(&keys) {
                            if r.amount == 0 {
                                continue;
                            }
                            let window = r.counter.spec.window;
                            let bucket = window.bucket(now);
                            // Checked above: amount <= limit <= i64::MAX.
                            let amount = i64::try_from(r.amount).unwrap_or(i64::MAX);
                            add.execute(params![key, bucket, amount, window.bucket_expiry(bucket)])
                                .map_err(err)?;
                        }
                    }
                    tx.commit().map_err(err)?;
                    ReserveOutcome::Reserved
                }
            }
            // A refusal drops `tx`: rolled back, nothing written.
        };
        if outcome == ReserveOutcome::Reserved {
            for r in requests {
                ticket.push(crate::counters::Reservation {
                    counter: r.counter,
                    amount: r.amount,
                    bucket: r.counter.spec.window.bucket(now),
                });
            }
            // Housekeeping after the commit, outside the reservation's transaction.
            db.prune(now.0)?;
        }
        Ok(outcome)
    }

    fn rollback(&self, ticket: &Ticket) -> Result<(), StateError> {
        let mut db = self.db();
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
        tx.commit().map_err(err)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::counters::{Calendar, CounterSpec, Scope, Window};
    use crate::proxy::log::{Level, Log};
    use crate::state::{Store, conformance};
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
        conformance::run_all(&crate::counters::MemoryCounters::new, &|_| {});
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
                .conn
                .query_row("SELECT COUNT(*) FROM counters", [], |r| r.get(0))
                .unwrap()
        };
        assert_eq!(rows(&s), 2);
        {
            let mut db = s.db();
            db.next_prune = 0;
            db.prune(UnixMillis::now().0).unwrap();
        }
        assert_eq!(rows(&s), 1, "the row of 1970 is gone, today's stays");
        let _ = std::fs::remove_dir_all(&dir);
    }

    #[test]
    fn a_store_error_is_a_state_error() {
        let dir = temp_dir("broken");
        let s = SqliteStore::open(&dir, "").unwrap();
        s.db().conn.execute_batch("DROP TABLE counters").unwrap();
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
}
