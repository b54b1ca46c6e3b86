//! Counters in Redis (`--state-dsn redis://[user:pass@]host:port/db`),
//! shared by every proxy that uses the same server and prefix.
//!
//! `rediss://` is TLS (rustls): the server's certificate is checked against
//! the built-in Mozilla roots, or against [`RedisOptions::ca`] only, and its
//! name against the DSN's host; there is no way to turn the check off. A
//! client certificate is sent when [`RedisOptions::client_cert`] is set.
//! `redis+cluster://host:port,host:port` (`rediss+cluster://`) is a Redis
//! Cluster: the crate's cluster client follows `MOVED`/`ASK`. There every
//! key of one server policy carries the hash tag `{<server>}`
//! ([`redis_key`]), so the keys of one decision live in one slot and the
//! script stays atomic, while different servers spread over the shards (a
//! single Redis keeps the untagged key form of earlier versions).
//!
//! Both scripts are idempotent: each reservation has an id (random per
//! store, then counted), and each script first looks for its marker
//! ([`op_key`], in its counters' slot, living [`OP_MARKER_TTL`]). A script
//! that a client library sends again after a timeout or a dropped
//! connection (the cluster client does, up to 3 times; so does
//! [`RedisStore`] once on a dropped pooled connection) returns the first
//! run's answer: a reservation counts once and a rollback gives back once
//! (twice would take units of other admitted calls: over-admission).
//!
//! With [`RedisOptions::min_replicas`] N > 0, each reservation is followed,
//! in the same round trip, by `WAIT N`: a reservation that fewer than N
//! replicas acknowledged within [`REPLICA_WAIT`] is given back and is an
//! error (the proxy refuses `--state-fail-mode open` with it, so the call is
//! denied), so a replica promoted after the master died has counted every
//! admitted call.
//!
//! Each counter is one hash at [`redis_key`]: field = bucket (see
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
//! [`Window::bucket`]: portcullis_core::counters::Window::bucket

use std::path::{Path, PathBuf};
use std::sync::Mutex;
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::{Duration, Instant};

use redis::cluster::{ClusterClient, ClusterClientBuilder, ClusterConnection};
use redis::{
    ClientTlsConfig, Connection, ConnectionLike, IntoConnectionInfo, RedisError, TlsCertificates,
};
use rustls_pki_types::pem::PemObject;
use rustls_pki_types::{CertificateDer, PrivateKeyDer};

use super::{Backend, redact_dsn, storage_key};
use portcullis_core::counters::{
    CounterRef, ReserveOutcome, ReserveRequest, StateError, Ticket, UnixMillis,
};

/// Longest wait for a TCP connection (and the AUTH/SELECT handshake).
pub const CONNECT_TIMEOUT: Duration = Duration::from_millis(300);
/// Longest wait for one answer.
pub const IO_TIMEOUT: Duration = Duration::from_millis(500);
/// After a failed connection, calls fail at once for this long before the next attempt.
pub const RETRY_AFTER: Duration = Duration::from_millis(200);

/// Longest wait for replicas to acknowledge a reservation (`WAIT`), within [`IO_TIMEOUT`].
pub const REPLICA_WAIT: Duration = Duration::from_millis(250);

/// Keys live this much longer than their newest bucket (clocks of proxies differ a little).
const EXPIRY_MARGIN_MS: i64 = 1_000;

/// Largest value Lua's doubles hold exactly.
const MAX_EXACT: u64 = (1 << 53) - 1;

/// The reservation script. `KEYS[i]`, i <= n: counter i; `KEYS[n + 1]`:
/// this reservation's marker ([`op_key`]); `ARGV`: six per counter: oldest
/// live bucket, current bucket, bucket to add to, amount, limit, key TTL in
/// ms; then the marker's TTL in ms. Returns -1 when every amount was added,
/// else the 0-based index of the first request that does not fit (and
/// nothing was added). The answer is kept in the marker: the same
/// reservation run again (a client library resending after a timeout or a
/// dropped connection) changes nothing and returns the first run's answer.
pub const RESERVE: &str = r#"-- portcullis reserve v2
local n = #KEYS - 1
local op, op_ttl = KEYS[n + 1], ARGV[n * 6 + 1]
local done = redis.call('GET', op)
if done then
  return tonumber(done)
end
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
      redis.call('SET', op, i - 1, 'PX', op_ttl)
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
redis.call('SET', op, -1, 'PX', op_ttl)
return -1
"#;

/// The rollback script. `KEYS[i]`, i <= n: counter i; `KEYS[n + 1]`: the
/// rollback's marker ([`op_key`]); `ARGV[2i-1]`: the bucket counter i's
/// units went to; `ARGV[2i]`: the amount; `ARGV[2n+1]`: the marker's TTL in
/// ms. Only that bucket changes (never a later window), and never below
/// zero; an expired key stays absent. Returns 0, or 1 when the marker
/// exists: this rollback already ran and nothing changes (giving units back
/// twice would take those of other admitted calls).
pub const ROLLBACK: &str = r#"-- portcullis rollback v2
local n = #KEYS - 1
if not redis.call('SET', KEYS[n + 1], 1, 'NX', 'PX', ARGV[2 * n + 1]) then
  return 1
end
for i = 1, n do
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
        con: &mut dyn ConnectionLike,
        keys: &[String],
        args: &[String],
    ) -> redis::RedisResult<T> {
        match self.call("EVALSHA", keys, args).query(con) {
            Err(e) if is_noscript(&e) => self.call("EVAL", keys, args).query(con),
            r => r,
        }
    }

    /// [`Script::run`] followed, in the same round trip (a pipeline), by
    /// `WAIT replicas`: the script's answer and how many replicas have its writes.
    fn run_and_wait<T: redis::FromRedisValue>(
        &self,
        con: &mut dyn ConnectionLike,
        keys: &[String],
        args: &[String],
        replicas: u32,
    ) -> redis::RedisResult<(T, u32)> {
        let piped = |verb: &str| {
            let mut p = redis::pipe();
            p.add_command(self.call(verb, keys, args)).add_command({
                let mut w = redis::cmd("WAIT");
                w.arg(replicas).arg(REPLICA_WAIT.as_millis() as u64);
                w
            });
            p
        };
        match piped("EVALSHA").query(con) {
            Err(e) if is_noscript(&e) => piped("EVAL").query(con),
            r => r,
        }
    }

    fn call(&self, verb: &str, keys: &[String], args: &[String]) -> redis::Cmd {
        let mut c = redis::cmd(verb);
        c.arg(if verb == "EVAL" {
            self.source
        } else {
            self.sha.as_str()
        })
        .arg(keys.len())
        .arg(keys)
        .arg(args);
        c
    }
}

fn is_noscript(e: &RedisError) -> bool {
    e.kind() == redis::ErrorKind::Server(redis::ServerErrorKind::NoScript)
}

/// The Redis key of a counter. On a single Redis it is [`storage_key`],
/// `<prefix><server>/<scope>.<counter>#<window>#<partition>` (the form of
/// every earlier version: an upgrade keeps the counts, and old and new
/// proxies count together during a rolling upgrade). With `cluster`, the
/// server policy's name is a hash tag, `<prefix>{<server>}/...`: Redis
/// Cluster hashes only what is between the first `{` and the next `}`, and
/// every key of one server shares the text up to that `}` whatever the
/// prefix holds (except an empty tag `{}`, which [`RedisStore::open_with`]
/// refuses), so all counters of one decision (one server's policy) are in
/// one slot.
pub fn redis_key(prefix: &str, counter: CounterRef, cluster: bool) -> String {
    if !cluster {
        return storage_key(prefix, counter);
    }
    let key = storage_key("", counter);
    let (server, rest) = key.split_at(key.find('/').unwrap_or(0));
    format!("{prefix}{{{server}}}{rest}")
}

/// The marker of one reservation (`kind` `r`) or rollback (`b`): the key of
/// its first counter (hence in the same Redis Cluster slot) followed by
/// `:op:<id>:<kind>`. It lives [`OP_MARKER_TTL`]: a script sent again finds
/// it and does not count twice.
pub fn op_key(counter_key: &str, id: &str, kind: char) -> String {
    format!("{counter_key}:op:{id}:{kind}")
}

/// How long a reservation's or rollback's marker lives. A command is resent
/// within the client's retries (the cluster client: 3 retries of at most
/// [`IO_TIMEOUT`] each plus slot refreshes, a few seconds; the single-node
/// store: once, at once), so a minute is a wide margin, while the markers
/// cost Redis memory for at most a minute of calls (about 100 bytes each).
pub const OP_MARKER_TTL: Duration = Duration::from_secs(60);

/// How a [`RedisStore`] reaches Redis beyond its DSN (`portcullis run` flags).
#[derive(Debug, Clone, Default)]
pub struct RedisOptions {
    /// `--state-ca`: trust only this CA (PEM) for `rediss://`, instead of the built-in roots.
    pub ca: Option<PathBuf>,
    /// `--state-client-cert`: a client certificate chain (PEM) to present.
    pub client_cert: Option<PathBuf>,
    /// `--state-client-key`: its private key (PEM).
    pub client_key: Option<PathBuf>,
    /// `--state-min-replicas`: replicas that must acknowledge each reservation.
    pub min_replicas: u32,
}

enum Client {
    Single(redis::Client),
    Cluster(ClusterClient),
}

enum Con {
    Single(Connection),
    // Boxed: a cluster connection is several times a plain one's size.
    Cluster(Box<ClusterConnection>),
}

impl Con {
    fn get(&mut self) -> &mut dyn ConnectionLike {
        match self {
            Con::Single(c) => c,
            Con::Cluster(c) => &mut **c,
        }
    }
}

/// A DSN split for the cluster client: one URL per seed node, each with the
/// DSN's user-info. `None` when `dsn` is not a `+cluster` one.
fn cluster_nodes(dsn: &str, shown: &str) -> Result<Option<Vec<String>>, String> {
    let Some((scheme, rest)) = dsn.split_once("://") else {
        return Ok(None);
    };
    let Some(base) = scheme.strip_suffix("+cluster") else {
        return Ok(None);
    };
    let (userinfo, hosts) = match rest.rfind('@') {
        Some(at) => (&rest[..=at], &rest[at + 1..]),
        None => ("", rest),
    };
    let hosts = match hosts.split_once('/') {
        Some((h, "" | "0")) => h,
        Some(_) => {
            return Err(format!(
                "--state-dsn {shown}: a Redis Cluster has only database 0"
            ));
        }
        None => hosts,
    };
    let nodes: Vec<String> = hosts
        .split(',')
        .filter(|h| !h.is_empty())
        .map(|h| format!("{base}://{userinfo}{h}"))
        .collect();
    if nodes.is_empty() {
        return Err(format!("--state-dsn {shown}: no cluster node"));
    }
    Ok(Some(nodes))
}

fn read_pem(flag: &str, path: &Option<PathBuf>) -> Result<Option<Vec<u8>>, String> {
    path.as_ref()
        .map(|p| std::fs::read(p).map_err(|e| format!("{flag} {}: {e}", p.display())))
        .transpose()
}

/// Checks that a PEM file holds at least one certificate and nothing
/// malformed, so that a wrong file is named at start-up (an empty CA file
/// would otherwise be an empty trust store, whose only symptom is
/// `UnknownIssuer`).
fn check_certs(flag: &str, path: &Path, pem: &[u8]) -> Result<(), String> {
    let shown = path.display();
    let mut n = 0;
    for c in CertificateDer::pem_slice_iter(pem) {
        c.map_err(|e| format!("{flag} {shown}: not a PEM certificate file: {e}"))?;
        n += 1;
    }
    if n == 0 {
        return Err(format!("{flag} {shown}: no certificate in {shown}"));
    }
    Ok(())
}

/// Checks that a PEM file holds a private key.
fn check_key(flag: &str, path: &Path, pem: &[u8]) -> Result<(), String> {
    let shown = path.display();
    PrivateKeyDer::from_pem_slice(pem).map(drop).map_err(|e| {
        format!("{flag} {shown}: no private key (PKCS#8, PKCS#1 or SEC1 PEM) in {shown}: {e}")
    })
}

/// A warning when a private key file can be read by its group or others
/// (as ssh warns about an identity file), `None` otherwise.
fn key_permissions_warning(flag: &str, path: &Path) -> Option<String> {
    use std::os::unix::fs::PermissionsExt;
    let mode = std::fs::metadata(path).ok()?.permissions().mode();
    (mode & 0o077 != 0).then(|| {
        format!(
            "{flag} {}: the private key is accessible by other users (mode {:03o}); restrict it with chmod 600",
            path.display(),
            mode & 0o777
        )
    })
}

/// A Redis counter store.
pub struct RedisStore {
    client: Client,
    /// A Redis Cluster: keys carry the hash tag `{<server>}` ([`redis_key`]).
    cluster: bool,
    min_replicas: u32,
    /// Random per store: with [`RedisStore::op_next`], the ids of the
    /// reservation and rollback markers ([`op_key`]), unique across proxies.
    op_base: u64,
    op_next: AtomicU64,
    warnings: Vec<String>,
    shown: String,
    password: Option<String>,
    prefix: String,
    pool: Mutex<Vec<Con>>,
    retry_at: Mutex<Option<Instant>>,
    reserve: Script,
    rollback: Script,
}

impl RedisStore {
    /// [`RedisStore::open_with`] with default options (no TLS client
    /// certificate, built-in roots, no replica acknowledgement).
    pub fn open(dsn: &str, prefix: &str) -> Result<RedisStore, String> {
        RedisStore::open_with(dsn, prefix, &RedisOptions::default())
    }

    /// Connects to `dsn` (it must answer: a wrong address, password or
    /// certificate is a start-up error, not a stream of denials), and loads
    /// the scripts. Error texts show the DSN with its password redacted.
    pub fn open_with(dsn: &str, prefix: &str, opts: &RedisOptions) -> Result<RedisStore, String> {
        let shown = redact_dsn(dsn);
        let scheme = dsn.split_once("://").map_or("", |(s, _)| s);
        let base = scheme.strip_suffix("+cluster").unwrap_or(scheme);
        let tls = match base {
            "redis" | "valkey" => false,
            "rediss" | "valkeys" => true,
            _ => {
                return Err(format!(
                    "--state-dsn {shown}: expected redis://[user:password@]host[:port][/db], rediss://... (TLS) or redis+cluster://host:port[,host:port...] (rediss+cluster:// with TLS)"
                ));
            }
        };
        if dsn
            .rsplit_once('#')
            .is_some_and(|(_, f)| f.contains("insecure"))
        {
            return Err(format!(
                "--state-dsn {shown}: certificate verification cannot be turned off (#insecure); give the server's CA with --state-ca"
            ));
        }
        if !tls && (opts.ca.is_some() || opts.client_cert.is_some()) {
            return Err(format!(
                "--state-ca and --state-client-cert need TLS: write rediss:// instead of {scheme}:// in --state-dsn {shown}"
            ));
        }
        let nodes = cluster_nodes(dsn, &shown)?;
        // Redis Cluster hashes the whole key when its first `{` is followed
        // by `}`: the keys of one decision would then spread over slots.
        if nodes.is_some()
            && prefix
                .find('{')
                .is_some_and(|i| prefix[i + 1..].starts_with('}'))
        {
            return Err(format!(
                "--state-prefix {prefix}: an empty hash tag `{{}}` would put the counters of one call in different Redis Cluster slots"
            ));
        }
        let ca = read_pem("--state-ca", &opts.ca)?;
        if let (Some(path), Some(pem)) = (&opts.ca, &ca) {
            check_certs("--state-ca", path, pem)?;
        }
        let mut warnings = Vec::new();
        let client_tls = match (
            read_pem("--state-client-cert", &opts.client_cert)?,
            read_pem("--state-client-key", &opts.client_key)?,
        ) {
            (Some(client_cert), Some(client_key)) => {
                let (cert_path, key_path) = (
                    opts.client_cert.as_deref().unwrap_or(Path::new("")),
                    opts.client_key.as_deref().unwrap_or(Path::new("")),
                );
                check_certs("--state-client-cert", cert_path, &client_cert)?;
                check_key("--state-client-key", key_path, &client_key)?;
                warnings.extend(key_permissions_warning("--state-client-key", key_path));
                Some(ClientTlsConfig {
                    client_cert,
                    client_key,
                })
            }
            (None, None) => None,
            _ => {
                return Err("--state-client-cert and --state-client-key go together".to_string());
            }
        };
        let certs = (ca.is_some() || client_tls.is_some()).then_some(TlsCertificates {
            client_tls,
            root_cert: ca,
        });
        if nodes.is_some() && opts.min_replicas > 0 {
            return Err(format!(
                "--state-min-replicas is not supported with a Redis Cluster ({shown}): WAIT would not reach the shard that ran the script"
            ));
        }
        // redis-rs's URL errors are fixed texts ("Invalid database number"), never the URL.
        let invalid = |e: RedisError| format!("--state-dsn {shown}: not a valid Redis URL: {e}");
        // Building a client also parses the TLS files (checked above; what
        // is left is, e.g., a certificate rustls cannot use).
        let tls_files = [
            ("--state-ca", &opts.ca),
            ("--state-client-cert", &opts.client_cert),
            ("--state-client-key", &opts.client_key),
        ]
        .iter()
        .filter_map(|(flag, p)| p.as_ref().map(|p| format!("{flag} {}", p.display())))
        .collect::<Vec<_>>()
        .join(", ");
        let unusable = |e: RedisError| {
            if tls_files.is_empty() {
                invalid(e)
            } else {
                format!("--state-dsn {shown} with {tls_files}: {e}")
            }
        };
        let first = nodes.as_ref().map_or(dsn, |n| n[0].as_str());
        let password = first
            .into_connection_info()
            .map_err(invalid)?
            .redis_settings()
            .password()
            .map(str::to_string);
        let client = match nodes {
            Some(nodes) => {
                let mut b = ClusterClientBuilder::new(nodes)
                    .connection_timeout(CONNECT_TIMEOUT)
                    .response_timeout(IO_TIMEOUT)
                    // Redirections (MOVED/ASK) and a topology change; not a long outage.
                    .retries(3)
                    .max_retry_wait(100);
                if let Some(certs) = certs {
                    b = b.certs(certs);
                }
                Client::Cluster(b.build().map_err(unusable)?)
            }
            None => Client::Single(
                match certs {
                    Some(certs) => redis::Client::build_with_tls(dsn, certs),
                    None => redis::Client::open(dsn),
                }
                .map_err(unusable)?,
            ),
        };
        let op_base = getrandom::u64()
            .map_err(|e| format!("no random numbers from the operating system: {e}"))?;
        let store = RedisStore {
            cluster: matches!(client, Client::Cluster(_)),
            client,
            min_replicas: opts.min_replicas,
            op_base,
            op_next: AtomicU64::new(1),
            warnings,
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
                .query::<String>(con.get())
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

    /// What the operator should know about the set-up (a private key file
    /// readable by other users), for the proxy's log.
    pub fn warnings(&self) -> &[String] {
        &self.warnings
    }

    /// The marker id of operation `n` of this store: 32 hex digits.
    fn op_id(&self, n: u64) -> String {
        format!("{:016x}{n:016x}", self.op_base)
    }

    /// [`ROLLBACK`] of `ticket` over `con`: its keys and arguments.
    fn rollback_args(&self, ticket: &Ticket) -> Option<(Vec<String>, Vec<String>)> {
        let mut keys = Vec::new();
        let mut args = Vec::new();
        for r in ticket.iter().filter(|r| r.amount > 0) {
            keys.push(redis_key(&self.prefix, r.counter, self.cluster));
            args.push(r.bucket.to_string());
            args.push(r.amount.min(MAX_EXACT + 1).to_string());
        }
        let first = keys.first()?;
        // A ticket this store did not number (never the case) gets an id of
        // its own: its rollback cannot be recognised when sent twice.
        let n = match ticket.op() {
            0 => self.op_next.fetch_add(1, Ordering::Relaxed),
            n => n,
        };
        keys.push(op_key(first, &self.op_id(n), 'b'));
        args.push(OP_MARKER_TTL.as_millis().to_string());
        Some((keys, args))
    }

    fn pool(&self) -> std::sync::MutexGuard<'_, Vec<Con>> {
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
    fn connect(&self) -> Result<Con, String> {
        {
            let retry_at = self.retry_at.lock().unwrap_or_else(|e| e.into_inner());
            if retry_at.is_some_and(|t| Instant::now() < t) {
                return Err("not reachable a moment ago; retrying shortly".into());
            }
        }
        let con = match &self.client {
            Client::Single(client) => client
                .get_connection_with_timeout(CONNECT_TIMEOUT)
                .and_then(|c| {
                    c.set_read_timeout(Some(IO_TIMEOUT))?;
                    c.set_write_timeout(Some(IO_TIMEOUT))?;
                    Ok(Con::Single(c))
                }),
            Client::Cluster(client) => client.get_connection().map(|c| Con::Cluster(Box::new(c))),
        };
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
        f: impl Fn(&mut dyn ConnectionLike) -> redis::RedisResult<T>,
    ) -> Result<T, StateError> {
        let pooled = self.pool().pop();
        let fresh = pooled.is_none();
        let mut con = match pooled {
            Some(c) => c,
            None => self.connect().map_err(|e| self.failure(&e))?,
        };
        let r = match f(con.get()) {
            Err(e) if !fresh && e.is_connection_dropped() && !e.is_timeout() => {
                con = self.connect().map_err(|e| self.failure(&e))?;
                f(con.get())
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
        let key = redis_key(&self.prefix, counter, self.cluster);
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
            keys.push(redis_key(&self.prefix, r.counter, self.cluster));
            args.extend([
                oldest.to_string(),
                current.to_string(),
                current.to_string(),
                r.amount.min(MAX_EXACT + 1).to_string(),
                r.limit.min(MAX_EXACT).to_string(),
                ttl.to_string(),
            ]);
        }
        let n = self.op_next.fetch_add(1, Ordering::Relaxed);
        let Some(first) = keys.first() else {
            return Ok(ReserveOutcome::Reserved);
        };
        keys.push(op_key(first, &self.op_id(n), 'r'));
        args.push(OP_MARKER_TTL.as_millis().to_string());
        // The rollback of this very reservation, should WAIT fall short.
        let mut undo = Ticket::EMPTY;
        let refused: i64 = if self.min_replicas == 0 {
            self.with_connection(|c| self.reserve.run(c, &keys, &args))?
        } else {
            for r in requests {
                undo.push(portcullis_core::counters::Reservation {
                    counter: r.counter,
                    amount: r.amount,
                    bucket: r.counter.spec.window.bucket(now),
                });
            }
            undo.set_op(n);
            let (undo_keys, undo_args) = self.rollback_args(&undo).unwrap_or_default();
            self.with_connection(|c| {
                let (refused, acked): (i64, u32) =
                    self.reserve
                        .run_and_wait(c, &keys, &args, self.min_replicas)?;
                if refused < 0 && acked < self.min_replicas {
                    // Added on the master only: lost if it dies now, so not
                    // an admission. Given back at once on this connection,
                    // hence to this very server (after a failover, a
                    // rollback sent to the new master could take units of
                    // admitted calls); should that fail, they stay counted.
                    let _ = self.rollback.run::<i64>(c, &undo_keys, &undo_args);
                    return Ok(Err(acked));
                }
                Ok(Ok(refused))
            })?
            .map_err(|acked| {
                StateError(format!(
                    "redis {}: {acked} of {} replicas acknowledged the reservation within {} ms",
                    self.shown,
                    self.min_replicas,
                    REPLICA_WAIT.as_millis()
                ))
            })?
        };
        if refused >= 0 {
            return Ok(ReserveOutcome::Refused {
                index: usize::try_from(refused).unwrap_or(0),
            });
        }
        ticket.set_op(n);
        for r in requests {
            ticket.push(portcullis_core::counters::Reservation {
                counter: r.counter,
                amount: r.amount,
                bucket: r.counter.spec.window.bucket(now),
            });
        }
        Ok(ReserveOutcome::Reserved)
    }

    fn idempotency(&self) -> Option<&dyn portcullis_core::idempotency::IdempotencyStore> {
        Some(self)
    }

    fn rollback(&self, ticket: &Ticket) -> Result<(), StateError> {
        let Some((keys, args)) = self.rollback_args(ticket) else {
            return Ok(());
        };
        self.with_connection(|c| self.rollback.run::<i64>(c, &keys, &args))
            .map(|_| ())
    }
}

/// Claims an idempotency key: `{0}` claimed (in flight, with token ARGV[1],
/// for ARGV[2] ms), `{1}` in flight elsewhere, `{2}` done without a kept
/// answer, `{3, answer}` done. One key per script: fine on a cluster.
const IDEM_CLAIM: &str = r#"
local v = redis.call('HMGET', KEYS[1], 's', 'a')
if v[1] == 'i' then return {1} end
if v[1] == 'd' then
  if v[2] then return {3, v[2]} end
  return {2}
end
redis.call('HSET', KEYS[1], 's', 'i', 't', ARGV[1])
redis.call('PEXPIRE', KEYS[1], ARGV[2])
return {0}
"#;

/// Completes a claim still held with token ARGV[1]: done, answer ARGV[3]
/// when ARGV[2] is `1`, expiring at ARGV[4] (ms since the epoch).
const IDEM_COMPLETE: &str = r#"
local v = redis.call('HMGET', KEYS[1], 's', 't')
if v[1] ~= 'i' or v[2] ~= ARGV[1] then return 0 end
redis.call('DEL', KEYS[1])
if ARGV[2] == '1' then
  redis.call('HSET', KEYS[1], 's', 'd', 'a', ARGV[3])
else
  redis.call('HSET', KEYS[1], 's', 'd')
end
redis.call('PEXPIREAT', KEYS[1], ARGV[4])
return 1
"#;

/// Releases a claim still held with token ARGV[1].
const IDEM_RELEASE: &str = r#"
local v = redis.call('HMGET', KEYS[1], 's', 't')
if v[1] == 'i' and v[2] == ARGV[1] then redis.call('DEL', KEYS[1]) return 1 end
return 0
"#;

fn idem_script(
    cell: &'static std::sync::OnceLock<Script>,
    source: &'static str,
) -> &'static Script {
    cell.get_or_init(|| Script::new(source))
}

impl RedisStore {
    fn idem_key(&self, key: &portcullis_core::idempotency::IdemKey) -> String {
        format!("{}idem#{}", self.prefix, key.hex())
    }
}

/// Idempotency records: one hash per key (`<prefix>idem#<key>`), claimed,
/// completed and released by Lua scripts, so each step is atomic and of two
/// proxies claiming one key one wins; Redis expires the record with its
/// lease or window.
impl portcullis_core::idempotency::IdempotencyStore for RedisStore {
    fn claim(
        &self,
        key: &portcullis_core::idempotency::IdemKey,
        now: UnixMillis,
        lease_ms: u64,
    ) -> Result<portcullis_core::idempotency::Claim, StateError> {
        use portcullis_core::idempotency::{Claim, new_token};
        static S: std::sync::OnceLock<Script> = std::sync::OnceLock::new();
        let _ = now;
        let token = new_token();
        let keys = [self.idem_key(key)];
        let args = [token.to_string(), lease_ms.max(1).to_string()];
        let v: Vec<redis::Value> =
            self.with_connection(|c| idem_script(&S, IDEM_CLAIM).run(c, &keys, &args))?;
        let code = v.first().and_then(|c| match c {
            redis::Value::Int(i) => Some(*i),
            _ => None,
        });
        match code {
            Some(0) => Ok(Claim::Mine(token)),
            Some(1) => Ok(Claim::InFlight),
            Some(2) => Ok(Claim::Done(None)),
            Some(3) => match v.get(1) {
                Some(redis::Value::BulkString(b)) => Ok(Claim::Done(Some(b.clone()))),
                _ => Err(self.failure("an idempotency record without its answer")),
            },
            _ => Err(self.failure("an unexpected answer to the idempotency claim")),
        }
    }

    fn complete(
        &self,
        key: &portcullis_core::idempotency::IdemKey,
        token: u64,
        answer: Option<&[u8]>,
        expires: UnixMillis,
    ) -> Result<(), StateError> {
        static S: std::sync::OnceLock<Script> = std::sync::OnceLock::new();
        let keys = [self.idem_key(key)];
        let script = idem_script(&S, IDEM_COMPLETE);
        self.with_connection(|c| {
            let mut cmd = script.call("EVALSHA", &keys, &[]);
            cmd.arg(token.to_string())
                .arg(if answer.is_some() { "1" } else { "0" })
                .arg(answer.unwrap_or(b""))
                .arg(expires.0.to_string());
            match cmd.query::<i64>(c) {
                Err(e) if is_noscript(&e) => {
                    let mut cmd = script.call("EVAL", &keys, &[]);
                    cmd.arg(token.to_string())
                        .arg(if answer.is_some() { "1" } else { "0" })
                        .arg(answer.unwrap_or(b""))
                        .arg(expires.0.to_string());
                    cmd.query::<i64>(c)
                }
                r => r,
            }
        })
        .map(|_| ())
    }

    fn release(
        &self,
        key: &portcullis_core::idempotency::IdemKey,
        token: u64,
    ) -> Result<(), StateError> {
        static S: std::sync::OnceLock<Script> = std::sync::OnceLock::new();
        let keys = [self.idem_key(key)];
        let args = [token.to_string()];
        self.with_connection(|c| idem_script(&S, IDEM_RELEASE).run::<i64>(c, &keys, &args))
            .map(|_| ())
    }
}

/// Approval records (see [`crate::approvals`]) in Redis, every step one Lua
/// script on one key, so Redis Cluster routes it and each step is atomic:
/// `<prefix>apr#fp#<fingerprint>` holds the records of one fingerprint (a
/// JSON array, the newest last, at most [`APR_KEEP`]); `<prefix>apr#id#<id>`
/// names the fingerprint of an id; the set `<prefix>apr#index` lists the
/// fingerprints (for `list`). Keys lapse [`APR_RETAIN_MS`] after the newest
/// record's expiry.
mod approval_keys {
    use super::*;
    use crate::approvals::{ApprovalStore, DecideError, NewRequest, Record, Resolution, Status};

    /// Records kept per fingerprint.
    pub const APR_KEEP: usize = 16;
    /// How long records outlive their expiry (for `list --all`, `show`).
    pub const APR_RETAIN_MS: i64 = 7 * 24 * 3600 * 1000;

    /// Marks lapsed records expired (ARGV[1] = now); shared by every script.
    const EXPIRE_LUA: &str = r#"
local now = tonumber(ARGV[1])
local raw = redis.call('GET', KEYS[1])
local recs = {}
if raw then recs = cjson.decode(raw) end
local expired = 0
for _, r in ipairs(recs) do
  if (r.status == 'pending' or r.status == 'approved') and tonumber(r.expires) <= now then
    r.status = 'expired'
    expired = expired + 1
  end
end
local function save()
  local last = 0
  for _, r in ipairs(recs) do if tonumber(r.expires) > last then last = tonumber(r.expires) end end
  redis.call('SET', KEYS[1], cjson.encode(recs))
  -- Relative to the caller's clock (ARGV[1]), not Redis's.
  redis.call('PEXPIRE', KEYS[1], math.max(1, last - now + tonumber(ARGV[2])))
end
"#;

    fn resolve_lua() -> String {
        format!(
            r#"{EXPIRE_LUA}
local pick, kind = nil, nil
for i = #recs, 1, -1 do if recs[i].status == 'approved' then pick, kind = i, 'granted' break end end
if pick then recs[pick].status = 'consumed' end
if not pick then
  for i = #recs, 1, -1 do
    if recs[i].status == 'denied' and now < tonumber(recs[i].expires) then pick, kind = i, 'denied' break end
  end
end
if not pick then
  for i = #recs, 1, -1 do
    if recs[i].status == 'pending' then
      -- ARGV[4]: the dedupe window in ms ('' for none); only the newest pending counts.
      if ARGV[4] == '' or now < tonumber(recs[i].created) + tonumber(ARGV[4]) then pick, kind = i, 'pending' end
      break
    end
  end
end
if not pick then
  table.insert(recs, cjson.decode(ARGV[3]))
  while #recs > {APR_KEEP} do table.remove(recs, 1) end
  pick, kind = #recs, 'new'
end
save()
return {{kind, cjson.encode(recs[pick]), expired}}
"#
        )
    }

    fn decide_lua() -> String {
        format!(
            r#"{EXPIRE_LUA}
if #recs == 0 then return {{'unknown', ''}} end
for _, r in ipairs(recs) do
  if r.id == ARGV[3] then
    if r.status ~= 'pending' then save() return {{'not', r.status}} end
    r.status = ARGV[4]
    r.decided_by = ARGV[5]
    r.reason = ARGV[6]
    save()
    return {{'ok', cjson.encode(r)}}
  end
end
return {{'unknown', ''}}
"#
        )
    }

    fn restore_lua() -> String {
        format!(
            r#"{EXPIRE_LUA}
for _, r in ipairs(recs) do
  if r.id == ARGV[3] and r.status == 'consumed' then
    r.status = 'approved'
    save()
    return 1
  end
end
return 0
"#
        )
    }

    fn sweep_lua() -> String {
        format!(
            r#"{EXPIRE_LUA}
if #recs > 0 and expired > 0 then save() end
return expired
"#
        )
    }

    fn script(
        cell: &'static std::sync::OnceLock<Script>,
        source: fn() -> String,
    ) -> &'static Script {
        // Once per script (OnceLock): the source lives as long as the process.
        cell.get_or_init(|| Script::new(Box::leak(source().into_boxed_str())))
    }

    fn to_json(r: &Record) -> String {
        // Times as strings: Lua's cjson would print large integers in floating point.
        serde_json::json!({
            "id": r.id, "fingerprint": r.fingerprint, "server": r.server, "tool": r.tool,
            "arguments": r.arguments, "rule": r.rule, "message": r.message, "sub": r.sub,
            "iss": r.iss, "created": r.created.0.to_string(), "expires": r.expires.0.to_string(),
            "status": r.status.as_str(), "decided_by": r.decided_by, "reason": r.reason,
        })
        .to_string()
    }

    fn from_json(text: &str) -> Option<Record> {
        let v: serde_json::Value = serde_json::from_str(text).ok()?;
        let s = |k: &str| v[k].as_str().map(str::to_string);
        let t = |k: &str| match &v[k] {
            serde_json::Value::String(x) => x.parse::<i64>().ok(),
            serde_json::Value::Number(n) => n.as_i64(),
            _ => None,
        };
        Some(Record {
            id: s("id")?,
            fingerprint: s("fingerprint")?,
            server: s("server")?,
            tool: s("tool")?,
            arguments: s("arguments")?,
            rule: s("rule")?,
            message: s("message")?,
            sub: s("sub")?,
            iss: s("iss")?,
            created: UnixMillis(t("created")?),
            expires: UnixMillis(t("expires")?),
            status: Status::parse(&s("status")?)?,
            decided_by: s("decided_by")?,
            reason: s("reason")?,
        })
    }

    impl RedisStore {
        fn apr_fp_key(&self, fp: &str) -> String {
            format!("{}apr#fp#{fp}", self.prefix)
        }
        fn apr_id_key(&self, id: &str) -> String {
            format!("{}apr#id#{id}", self.prefix)
        }
        fn apr_index_key(&self) -> String {
            format!("{}apr#index", self.prefix)
        }

        fn fingerprint_of(&self, id: &str) -> Result<Option<String>, StateError> {
            let key = self.apr_id_key(id);
            self.with_connection(|c| redis::cmd("GET").arg(&key).query::<Option<String>>(c))
        }

        fn records_of(&self, fp: &str, now: UnixMillis) -> Result<Vec<Record>, StateError> {
            let key = self.apr_fp_key(fp);
            let raw: Option<String> =
                self.with_connection(|c| redis::cmd("GET").arg(&key).query(c))?;
            let Some(raw) = raw else {
                return Ok(Vec::new());
            };
            let v: Vec<serde_json::Value> = serde_json::from_str(&raw).unwrap_or_default();
            Ok(v.iter()
                .filter_map(|r| from_json(&r.to_string()))
                .map(|mut r| {
                    r.status = r.status_at(now);
                    r
                })
                .collect())
        }
    }

    impl ApprovalStore for RedisStore {
        fn resolve(
            &self,
            req: NewRequest,
            new_id: String,
            now: UnixMillis,
        ) -> Result<(Resolution, usize), StateError> {
            static S: std::sync::OnceLock<Script> = std::sync::OnceLock::new();
            let fp = req.fingerprint.clone();
            let dedupe = req.dedupe_ms.map_or(String::new(), |d| d.to_string());
            let record = req.into_record(new_id, now);
            let keys = [self.apr_fp_key(&fp)];
            let args = [
                now.0.to_string(),
                APR_RETAIN_MS.to_string(),
                to_json(&record),
                dedupe,
            ];
            let (kind, json, expired): (String, String, i64) =
                self.with_connection(|c| script(&S, resolve_lua).run(c, &keys, &args))?;
            let Some(r) = from_json(&json) else {
                return Err(self.failure("an unreadable approval record"));
            };
            if kind == "new" {
                let until = (r.expires.0 - now.0).max(0).saturating_add(APR_RETAIN_MS);
                let (id_key, index) = (self.apr_id_key(&r.id), self.apr_index_key());
                self.with_connection(|c| {
                    redis::cmd("SET")
                        .arg(&id_key)
                        .arg(&fp)
                        .arg("PX")
                        .arg(until)
                        .query::<()>(c)
                })?;
                self.with_connection(|c| redis::cmd("SADD").arg(&index).arg(&fp).query::<()>(c))?;
            }
            let expired = usize::try_from(expired).unwrap_or(0);
            Ok((
                match kind.as_str() {
                    "granted" => Resolution::Granted(r),
                    "denied" => Resolution::Denied(r),
                    "pending" => Resolution::Pending {
                        record: r,
                        new: false,
                    },
                    _ => Resolution::Pending {
                        record: r,
                        new: true,
                    },
                },
                expired,
            ))
        }

        fn restore(&self, id: &str) -> Result<bool, StateError> {
            static S: std::sync::OnceLock<Script> = std::sync::OnceLock::new();
            let Some(fp) = self.fingerprint_of(id)? else {
                return Ok(false);
            };
            let keys = [self.apr_fp_key(&fp)];
            let args = [
                UnixMillis::now().0.to_string(),
                APR_RETAIN_MS.to_string(),
                id.to_string(),
            ];
            let n: i64 = self.with_connection(|c| script(&S, restore_lua).run(c, &keys, &args))?;
            Ok(n == 1)
        }

        fn get(&self, id: &str, now: UnixMillis) -> Result<Option<Record>, StateError> {
            let Some(fp) = self.fingerprint_of(id)? else {
                return Ok(None);
            };
            Ok(self.records_of(&fp, now)?.into_iter().find(|r| r.id == id))
        }

        fn list(&self, now: UnixMillis) -> Result<Vec<Record>, StateError> {
            let index = self.apr_index_key();
            let fps: Vec<String> =
                self.with_connection(|c| redis::cmd("SMEMBERS").arg(&index).query(c))?;
            let mut all = Vec::new();
            for fp in fps {
                let recs = self.records_of(&fp, now)?;
                if recs.is_empty() {
                    // Lapsed: forget it in the index too.
                    self.with_connection(|c| {
                        redis::cmd("SREM").arg(&index).arg(&fp).query::<()>(c)
                    })?;
                }
                all.extend(recs);
            }
            all.sort_by(|a, b| b.created.cmp(&a.created).then(a.id.cmp(&b.id)));
            Ok(all)
        }

        fn decide(
            &self,
            id: &str,
            approve: bool,
            by: &str,
            reason: &str,
            now: UnixMillis,
        ) -> Result<Record, DecideError> {
            static S: std::sync::OnceLock<Script> = std::sync::OnceLock::new();
            let Some(fp) = self.fingerprint_of(id)? else {
                return Err(DecideError::Unknown);
            };
            let keys = [self.apr_fp_key(&fp)];
            let status = if approve {
                Status::Approved
            } else {
                Status::Denied
            };
            let args = [
                now.0.to_string(),
                APR_RETAIN_MS.to_string(),
                id.to_string(),
                status.as_str().to_string(),
                by.to_string(),
                reason.to_string(),
            ];
            let (kind, detail): (String, String) =
                self.with_connection(|c| script(&S, decide_lua).run(c, &keys, &args))?;
            match kind.as_str() {
                "ok" => from_json(&detail).ok_or_else(|| {
                    DecideError::State(self.failure("an unreadable approval record"))
                }),
                "not" => Err(DecideError::NotPending(
                    Status::parse(&detail).unwrap_or(Status::Expired),
                )),
                _ => Err(DecideError::Unknown),
            }
        }

        fn sweep(&self, now: UnixMillis) -> Result<usize, StateError> {
            static S: std::sync::OnceLock<Script> = std::sync::OnceLock::new();
            let index = self.apr_index_key();
            let fps: Vec<String> =
                self.with_connection(|c| redis::cmd("SMEMBERS").arg(&index).query(c))?;
            let mut n = 0;
            for fp in fps {
                let keys = [self.apr_fp_key(&fp)];
                let args = [now.0.to_string(), APR_RETAIN_MS.to_string()];
                let k: i64 =
                    self.with_connection(|c| script(&S, sweep_lua).run(c, &keys, &args))?;
                n += usize::try_from(k).unwrap_or(0);
            }
            Ok(n)
        }

        fn may_block(&self) -> bool {
            true
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use portcullis_core::counters::{Calendar, CounterSpec, Scope, Window};

    static A: CounterSpec = CounterSpec::new(
        "srv/_global.rate",
        Window::Calendar(Calendar::Minute),
        Scope::Global,
    );
    static B: CounterSpec = CounterSpec::new(
        "srv/t.c",
        Window::Sliding { millis: 90_000 },
        Scope::Session,
    );

    /// Redis Cluster's hash tag: between the first `{` and the next `}`, if not empty.
    fn hash_tag(key: &str) -> &str {
        if let Some(open) = key.find('{')
            && let Some(len) = key[open + 1..].find('}')
            && len > 0
        {
            return &key[open + 1..open + 1 + len];
        }
        key
    }

    #[test]
    fn keys_of_one_server_share_one_hash_tag_whatever_the_prefix() {
        let a = CounterRef {
            spec: &A,
            partition: 0,
        };
        let b = CounterRef {
            spec: &B,
            partition: 0xab,
        };
        assert_eq!(
            redis_key("p:", a, true),
            format!("p:{{srv}}{}", &storage_key("", a)["srv".len()..])
        );
        for prefix in ["", "p:", "{tenant}:", "a{b", "}x{", "{x}{}", "x{"] {
            let (ka, kb) = (redis_key(prefix, a, true), redis_key(prefix, b, true));
            assert_eq!(hash_tag(&ka), hash_tag(&kb), "{ka} {kb}");
            assert_ne!(hash_tag(&ka), ka, "{ka} has a tag");
            // A marker is in the slot of its counters.
            let op = op_key(&kb, "00ff", 'b');
            assert_eq!(hash_tag(&op), hash_tag(&ka), "{op}");
        }
    }

    #[test]
    fn a_single_redis_keeps_the_key_form_of_earlier_versions() {
        let b = CounterRef {
            spec: &B,
            partition: 0xab,
        };
        for prefix in ["", "p:", "a{}"] {
            assert_eq!(redis_key(prefix, b, false), storage_key(prefix, b));
        }
        assert!(!redis_key("p:", b, false).contains('{'));
    }

    #[test]
    fn cluster_dsns_name_every_seed_node_with_the_credentials() {
        assert_eq!(cluster_nodes("redis://h:1/0", "").unwrap(), None);
        assert_eq!(
            cluster_nodes("rediss+cluster://u:pw@h1:1,h2:2/", "").unwrap(),
            Some(vec![
                "rediss://u:pw@h1:1".to_string(),
                "rediss://u:pw@h2:2".to_string()
            ])
        );
        assert_eq!(
            cluster_nodes("redis+cluster://h1:1", "").unwrap(),
            Some(vec!["redis://h1:1".to_string()])
        );
        assert!(cluster_nodes("redis+cluster://h1:1/2", "x").is_err());
        assert!(cluster_nodes("redis+cluster://u:pw@/", "x").is_err());
    }

    #[test]
    fn options_that_cannot_apply_are_errors_before_any_connection() {
        let err = |dsn: &str, o: RedisOptions| RedisStore::open_with(dsn, "", &o).err().unwrap();
        let ca = RedisOptions {
            ca: Some("/nonexistent/ca.pem".into()),
            ..RedisOptions::default()
        };
        let e = err("redis://:pw-1@127.0.0.1:1/0", ca.clone());
        assert!(e.contains("write rediss://") && !e.contains("pw-1"), "{e}");
        let e = err("rediss://:pw-1@127.0.0.1:1/0", ca);
        assert!(e.contains("--state-ca /nonexistent/ca.pem"), "{e}");
        let replicas = RedisOptions {
            min_replicas: 1,
            ..RedisOptions::default()
        };
        let e = err("redis+cluster://:pw-1@127.0.0.1:1", replicas);
        assert!(
            e.contains("--state-min-replicas") && !e.contains("pw-1"),
            "{e}"
        );
        let e = RedisStore::open_with("redis+cluster://h:1", "a{}", &RedisOptions::default())
            .err()
            .unwrap();
        assert!(e.contains("empty hash tag"), "{e}");
        // A single Redis hashes nothing: such a prefix is fine (the
        // connection fails, not the prefix).
        let e = RedisStore::open_with("redis://127.0.0.1:1/0", "a{}", &RedisOptions::default())
            .err()
            .unwrap();
        assert!(e.contains("cannot reach Redis"), "{e}");
        let e = err(
            "rediss://:pw-1@127.0.0.1:1/0#insecure",
            RedisOptions::default(),
        );
        assert!(
            e.contains("cannot be turned off") && !e.contains("pw-1"),
            "{e}"
        );
        let e = err("http://:pw-1@127.0.0.1:1", RedisOptions::default());
        assert!(
            e.contains("expected redis://") && !e.contains("pw-1"),
            "{e}"
        );
    }

    /// A PEM block of `kind` (its body need not be valid DER: only the framing is read here).
    fn pem(kind: &str) -> String {
        format!("-----BEGIN {kind}-----\nMIIBAAAAAAAAAAAAAAAAAAAA\n-----END {kind}-----\n")
    }

    #[test]
    fn tls_files_without_what_their_flag_needs_are_named() {
        use std::os::unix::fs::PermissionsExt;
        let dir = std::env::temp_dir().join(format!("portcullis-redis-pem-{}", std::process::id()));
        std::fs::create_dir_all(&dir).unwrap();
        let file = |name: &str, text: &str| {
            let p = dir.join(name);
            std::fs::write(&p, text).unwrap();
            p
        };
        let empty = file("empty.pem", "");
        let key_only = file("key-only.pem", &pem("PRIVATE KEY"));
        let cert = file("cert.pem", &pem("CERTIFICATE"));
        let open = |o: RedisOptions| {
            RedisStore::open_with("rediss://:pw-1@127.0.0.1:1/0", "", &o)
                .err()
                .unwrap()
        };
        for ca in [&empty, &key_only] {
            let e = open(RedisOptions {
                ca: Some(ca.clone()),
                ..RedisOptions::default()
            });
            let shown = ca.display();
            assert_eq!(e, format!("--state-ca {shown}: no certificate in {shown}"));
        }
        let e = open(RedisOptions {
            ca: Some(file("garbage.pem", "-----BEGIN CERTIFICATE-----\n!!\n")),
            ..RedisOptions::default()
        });
        assert!(
            e.starts_with("--state-ca ") && e.contains("garbage.pem"),
            "{e}"
        );
        let e = open(RedisOptions {
            client_cert: Some(key_only.clone()),
            client_key: Some(key_only.clone()),
            ..RedisOptions::default()
        });
        assert!(
            e.starts_with("--state-client-cert ") && e.contains("no certificate in"),
            "{e}"
        );
        let e = open(RedisOptions {
            client_cert: Some(cert.clone()),
            client_key: Some(cert.clone()),
            ..RedisOptions::default()
        });
        assert!(
            e.starts_with("--state-client-key ") && e.contains("no private key"),
            "{e}"
        );
        // Readable by others: a warning (as ssh gives); 0600: none.
        std::fs::set_permissions(&key_only, std::fs::Permissions::from_mode(0o644)).unwrap();
        let w = key_permissions_warning("--state-client-key", &key_only).unwrap();
        assert!(w.contains("mode 644") && w.contains("key-only.pem"), "{w}");
        std::fs::set_permissions(&key_only, std::fs::Permissions::from_mode(0o600)).unwrap();
        assert_eq!(
            key_permissions_warning("--state-client-key", &key_only),
            None
        );
        std::fs::remove_dir_all(&dir).unwrap();
    }
}
