//! Counters in Redis (`--state-dsn redis://[user:pass@]host:port/db`),
//! shared by every proxy that uses the same server and prefix.
//!
//! Each counter is one hash at [`storage_key`]: field = bucket (see
//! [`Window::bucket`]), value = units. A reservation is one `EVALSHA` of
//! [`RESERVE`] whatever the number of counters of the call: the script sums
//! the live buckets of every counter, and adds to all of them or to none
//! (Redis runs a script atomically, so proxies racing one limit never
//! overshoot it). A rollback is one `EVALSHA` of [`ROLLBACK`]. When Redis
//! has lost its script cache (a restart), the `NOSCRIPT` answer is followed
//! by one `EVAL`, which caches it again. Keys expire (`PEXPIRE`) when their
//! newest bucket stops counting, plus a second.
//!
//! Timeouts are short ([`CONNECT_TIMEOUT`], [`IO_TIMEOUT`]) so a dead Redis
//! costs a call at most a fraction of a second; after a failed connection
//! the store does not try again for [`RETRY_AFTER`], and then reconnects by
//! itself. Lua computes in doubles: counters are exact up to 2^53 - 1;
//! larger limits are lowered to that and larger amounts refused.
//!
//! [`Window::bucket`]: crate::counters::Window::bucket

use std::sync::Mutex;
use std::time::{Duration, Instant};

use redis::{Connection, RedisError};

use super::{Backend, redact_dsn, storage_key};
use crate::counters::{CounterRef, ReserveOutcome, ReserveRequest, StateError, Ticket, UnixMillis};

/// Longest wait for a TCP connection (and the AUTH/SELECT handshake).
pub const CONNECT_TIMEOUT: Duration = Duration::from_millis(300);
/// Longest wait for one answer.
pub const IO_TIMEOUT: Duration = Duration::from_millis(500);
/// After a failed connection, calls fail at once for this long before the next attempt.
pub const RETRY_AFTER: Duration = Duration::from_millis(200);

/// Keys live this much longer than their newest bucket (clocks of proxies differ a little).
const EXPIRY_MARGIN_MS: i64 = 1_000;

/// Largest value Lua's doubles hold exactly.
const MAX_EXACT: u64 = (1 << 53) - 1;

/// The reservation script. `KEYS[i]`: counter i; `ARGV`: six per counter:
/// oldest live bucket, current bucket, bucket to add to, amount, limit,
/// key TTL in ms. Returns -1 when every amount was added, else the 0-based
/// index of the first request that does not fit (and nothing was added).
pub const RESERVE: &str = r#"-- portcullis reserve v1
local n = #KEYS
local total = {}
local stale = {}
for i = 1, n do
  local a = (i - 1) * 6
  if tonumber(ARGV[a + 4]) > 0 then
    local k = KEYS[i]
    local v = total[k]
    if v == nil then
      v = 0
      local oldest, current = tonumber(ARGV[a + 1]), tonumber(ARGV[a + 2])
      local old = {}
      local h = redis.call('HGETALL', k)
      for j = 1, #h, 2 do
        local b = tonumber(h[j])
        if b == nil or b < oldest then
          old[#old + 1] = h[j]
        elseif b <= current then
          v = v + tonumber(h[j + 1])
        end
      end
      stale[k] = old
    end
    v = v + tonumber(ARGV[a + 4])
    if v > tonumber(ARGV[a + 5]) then
      return i - 1
    end
    total[k] = v
  end
end
for i = 1, n do
  local a = (i - 1) * 6
  if tonumber(ARGV[a + 4]) > 0 then
    local k = KEYS[i]
    local old = stale[k]
    if old ~= nil and #old > 0 then
      for j = 1, #old, 100 do
        redis.call('HDEL', k, unpack(old, j, math.min(j + 99, #old)))
      end
      stale[k] = {}
    end
    redis.call('HINCRBY', k, ARGV[a + 3], ARGV[a + 4])
    if redis.call('PTTL', k) < tonumber(ARGV[a + 6]) then
      redis.call('PEXPIRE', k, ARGV[a + 6])
    end
  end
end
return -1
"#;

/// The rollback script. `KEYS[i]`: counter i; `ARGV[2i-1]`: the bucket its
/// units went to; `ARGV[2i]`: the amount. Only that bucket changes (never a
/// later window), and never below zero; an expired key stays absent.
pub const ROLLBACK: &str = r#"-- portcullis rollback v1
for i = 1, #KEYS do
  local k, b = KEYS[i], ARGV[2 * i - 1]
  local v = tonumber(redis.call('HGET', k, b))
  if v ~= nil then
    if v <= tonumber(ARGV[2 * i]) then
      redis.call('HDEL', k, b)
    else
      redis.call('HINCRBY', k, b, '-' .. ARGV[2 * i])
    end
  end
end
return 0
"#;

struct Script {
    source: &'static str,
    sha: String,
}

impl Script {
    fn new(source: &'static str) -> Script {
        Script {
            source,
            sha: redis::Script::new(source).get_hash().to_string(),
        }
    }

    /// EVALSHA; on NOSCRIPT (Redis restarted or flushed its scripts), EVAL.
    fn run<T: redis::FromRedisValue>(
        &self,
        con: &mut Connection,
        keys: &[String],
        args: &[String],
    ) -> redis::RedisResult<T> {
        let call = |verb: &str, body: &str| {
            let mut c = redis::cmd(verb);
            c.arg(body).arg(keys.len()).arg(keys).arg(args);
            c
        };
        match call("EVALSHA", &self.sha).query(con) {
            Err(e) if e.kind() == redis::ErrorKind::Server(redis::ServerErrorKind::NoScript) => {
                call("EVAL", self.source).query(con)
            }
            r => r,
        }
    }
}

/// A Redis counter store.
pub struct RedisStore {
    client: redis::Client,
    shown: String,
    password: Option<String>,
    prefix: String,
    pool: Mutex<Vec<Connection>>,
    retry_at: Mutex<Option<Instant>>,
    reserve: Script,
    rollback: Script,
}

impl RedisStore {
    /// Connects to `dsn` (it must answer: a wrong address or password is a
    /// start-up error, not a stream of denials), and loads the scripts.
    /// Error texts show the DSN with its password redacted.
    pub fn open(dsn: &str, prefix: &str) -> Result<RedisStore, String> {
        let shown = redact_dsn(dsn);
        if !(dsn.starts_with("redis://") || dsn.starts_with("valkey://")) {
            return Err(format!(
                "--state-dsn {shown}: expected redis://[user:password@]host[:port][/db] (TLS is not supported)"
            ));
        }
        // redis-rs's URL errors are fixed texts ("Invalid database number"), never the URL.
        let client = redis::Client::open(dsn)
            .map_err(|e| format!("--state-dsn {shown}: not a valid Redis URL: {e}"))?;
        let password = client
            .get_connection_info()
            .redis_settings()
            .password()
            .map(str::to_string);
        let store = RedisStore {
            client,
            shown,
            password,
            prefix: prefix.to_string(),
            pool: Mutex::new(Vec::new()),
            retry_at: Mutex::new(None),
            reserve: Script::new(RESERVE),
            rollback: Script::new(ROLLBACK),
        };
        let mut con = store
            .connect()
            .map_err(|e| format!("cannot reach Redis at {}: {e}", store.shown))?;
        for s in [&store.reserve, &store.rollback] {
            redis::cmd("SCRIPT")
                .arg("LOAD")
                .arg(s.source)
                .query::<String>(&mut con)
                .map_err(|e| {
                    format!(
                        "Redis at {} refused the scripts: {}",
                        store.shown,
                        store.scrub(&e)
                    )
                })?;
        }
        store.pool().push(con);
        Ok(store)
    }

    /// The DSN with its password redacted.
    pub fn describe(&self) -> &str {
        &self.shown
    }

    fn pool(&self) -> std::sync::MutexGuard<'_, Vec<Connection>> {
        // Push and pop only: never inconsistent.
        self.pool.lock().unwrap_or_else(|e| e.into_inner())
    }

    /// An error's text, with the password cut out should a server or library ever echo it.
    fn scrub(&self, e: &RedisError) -> String {
        let text = e.to_string();
        match &self.password {
            Some(p) if !p.is_empty() => text.replace(p.as_str(), "***"),
            _ => text,
        }
    }

    /// A new connection, or why not (password scrubbed).
    fn connect(&self) -> Result<Connection, String> {
        {
            let retry_at = self.retry_at.lock().unwrap_or_else(|e| e.into_inner());
            if retry_at.is_some_and(|t| Instant::now() < t) {
                return Err("not reachable a moment ago; retrying shortly".into());
            }
        }
        let con = self
            .client
            .get_connection_with_timeout(CONNECT_TIMEOUT)
            .and_then(|c| {
                c.set_read_timeout(Some(IO_TIMEOUT))?;
                c.set_write_timeout(Some(IO_TIMEOUT))?;
                Ok(c)
            });
        let mut retry_at = self.retry_at.lock().unwrap_or_else(|e| e.into_inner());
        match con {
            Ok(c) => {
                *retry_at = None;
                Ok(c)
            }
            Err(e) => {
                *retry_at = Some(Instant::now() + RETRY_AFTER);
                Err(self.scrub(&e))
            }
        }
    }

    fn failure(&self, why: &str) -> StateError {
        StateError(format!("redis: {why}"))
    }

    /// Runs `f` on a pooled connection (or a new one). A pooled connection
    /// that turns out dead (Redis restarted since) is replaced once; a
    /// timeout is not retried (the script may have run).
    fn with_connection<T>(
        &self,
        f: impl Fn(&mut Connection) -> redis::RedisResult<T>,
    ) -> Result<T, StateError> {
        let pooled = self.pool().pop();
        let fresh = pooled.is_none();
        let mut con = match pooled {
            Some(c) => c,
            None => self.connect().map_err(|e| self.failure(&e))?,
        };
        let r = match f(&mut con) {
            Err(e) if !fresh && e.is_connection_dropped() && !e.is_timeout() => {
                con = self.connect().map_err(|e| self.failure(&e))?;
                f(&mut con)
            }
            r => r,
        };
        match r {
            Ok(v) => {
                self.pool().push(con);
                Ok(v)
            }
            // The connection is dropped: its state is unknown.
            Err(e) => Err(StateError(format!(
                "redis {}: {}",
                self.shown,
                self.scrub(&e)
            ))),
        }
    }
}

impl Backend for RedisStore {
    fn read(&self, counter: CounterRef, now: UnixMillis) -> Result<u64, StateError> {
        let key = storage_key(&self.prefix, counter);
        let (oldest, current) = counter.spec.window.live_buckets(now);
        let fields: Vec<(String, String)> = self.with_connection(|c| {
            redis::cmd("HGETALL")
                .arg(&key)
                .query::<Vec<(String, String)>>(c)
        })?;
        Ok(fields
            .iter()
            .filter(|(b, _)| {
                b.parse::<i64>()
                    .is_ok_and(|b| (oldest..=current).contains(&b))
            })
            .fold(0u64, |acc, (_, v)| {
                acc.saturating_add(v.parse().unwrap_or(0))
            }))
    }

    fn reserve(
        &self,
        requests: &[ReserveRequest],
        now: UnixMillis,
        ticket: &mut Ticket,
    ) -> Result<ReserveOutcome, StateError> {
        let mut keys = Vec::with_capacity(requests.len());
        let mut args = Vec::with_capacity(requests.len() * 6);
        for r in requests {
            let window = r.counter.spec.window;
            let (oldest, current) = window.live_buckets(now);
            let ttl = window
                .bucket_expiry(current)
                .saturating_sub(now.0)
                .saturating_add(EXPIRY_MARGIN_MS)
                .max(EXPIRY_MARGIN_MS);
            keys.push(storage_key(&self.prefix, r.counter));
            args.extend([
                oldest.to_string(),
                current.to_string(),
                current.to_string(),
                r.amount.min(MAX_EXACT + 1).to_string(),
                r.limit.min(MAX_EXACT).to_string(),
                ttl.to_string(),
            ]);
        }
        let refused: i64 = self.with_connection(|c| self.reserve.run(c, &keys, &args))?;
        if refused >= 0 {
            return Ok(ReserveOutcome::Refused {
                index: usize::try_from(refused).unwrap_or(0),
            });
        }
        for r in requests {
            ticket.push(crate::counters::Reservation {
                counter: r.counter,
                amount: r.amount,
                bucket: r.counter.spec.window.bucket(now),
            });
        }
        Ok(ReserveOutcome::Reserved)
    }

    fn rollback(&self, ticket: &Ticket) -> Result<(), StateError> {
        let mut keys = Vec::new();
        let mut args = Vec::new();
        for r in ticket.iter().filter(|r| r.amount > 0) {
            keys.push(storage_key(&self.prefix, r.counter));
            args.push(r.bucket.to_string());
            args.push(r.amount.min(MAX_EXACT + 1).to_string());
        }
        if keys.is_empty() {
            return Ok(());
        }
        self.with_connection(|c| self.rollback.run::<i64>(c, &keys, &args))
            .map(|_| ())
    }
}
