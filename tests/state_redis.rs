//! `--state-dsn redis://...`: counters in a real `redis-server` (Debian's
//! package, installed by scripts/deps), which each test starts on a free
//! loopback port with a temporary directory and stops at the end. Real
//! binary, real `@modelcontextprotocol/server-everything`.

mod common;

use std::io::{Read, Write};
use std::net::{TcpListener, TcpStream};
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::sync::Arc;
use std::time::{Duration, Instant};

use common::{Proxy, free_port, is_denial, temp_dir};
use portcullis_proxy::log::{Level, Log};
use portcullis_proxy::state::redis::{RedisOptions, RedisStore};
use portcullis_proxy::state::{Store, conformance};

const STATE_UNAVAILABLE: &str = "Policy state unavailable";

/// A `redis-server` of our own.
struct Redis {
    child: Option<Child>,
    port: u16,
    dir: PathBuf,
    extra: Vec<String>,
}

fn find_program(name: &str) -> PathBuf {
    let path = std::env::var_os("PATH").unwrap_or_default();
    std::env::split_paths(&path)
        .chain([PathBuf::from("/usr/bin"), PathBuf::from("/usr/sbin")])
        .map(|d| d.join(name))
        .find(|p| p.is_file())
        .unwrap_or_else(|| {
            panic!("{name} is missing: run scripts/deps (CI does) to install Debian's redis-server")
        })
}

impl Redis {
    fn start(name: &str, extra: &[&str]) -> Redis {
        let mut r = Redis {
            child: None,
            port: free_port(),
            dir: temp_dir(name),
            extra: extra.iter().map(|s| s.to_string()).collect(),
        };
        r.spawn();
        r
    }

    fn spawn(&mut self) {
        let child = Command::new(find_program("redis-server"))
            // `-::1`: IPv6 loopback too where there is one (`localhost` may resolve to it).
            .args(["--port", &self.port.to_string(), "--bind", "127.0.0.1 -::1"])
            .args(["--save", "", "--appendonly", "no"])
            .arg("--dir")
            .arg(&self.dir)
            .args(&self.extra)
            .stdin(Stdio::null())
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .spawn()
            .expect("start redis-server");
        self.child = Some(child);
        // Ready when it answers (PONG, or NOAUTH with a password).
        let deadline = Instant::now() + Duration::from_secs(20);
        loop {
            if let Ok(mut s) = TcpStream::connect(("127.0.0.1", self.port)) {
                let _ = s.set_read_timeout(Some(Duration::from_secs(2)));
                let mut buf = [0u8; 64];
                if s.write_all(b"PING\r\n").is_ok() && s.read(&mut buf).is_ok_and(|n| n > 0) {
                    return;
                }
            }
            assert!(Instant::now() < deadline, "redis-server did not start");
            std::thread::sleep(Duration::from_millis(20));
        }
    }

    fn stop(&mut self) {
        if let Some(mut c) = self.child.take() {
            let _ = c.kill();
            let _ = c.wait();
        }
    }

    fn dsn(&self) -> String {
        format!("redis://127.0.0.1:{}/0", self.port)
    }

    /// `redis-cli -p PORT ARGS...`, its output.
    fn cli(&self, args: &[&str]) -> String {
        let out = Command::new(find_program("redis-cli"))
            .args(["-p", &self.port.to_string()])
            .args(args)
            .output()
            .expect("run redis-cli");
        String::from_utf8_lossy(&out.stdout).into_owned()
    }
}

impl Drop for Redis {
    fn drop(&mut self) {
        self.stop();
        let _ = std::fs::remove_dir_all(&self.dir);
    }
}

/// `echo` limited globally in a sliding two-day window (no calendar
/// boundary during a test), every call limited by `tool *` too (two
/// counters per echo), `get-sum` and `trigger-long-running-operation` free.
fn policy(dir: &Path, limit: u32) -> String {
    let path = dir.join("limited.policy");
    std::fs::write(
        &path,
        format!(
            r#"server limited {{
  tool echo {{
    limit {limit} per 2d -> "At most {limit} echoes per two days"
  }}
  tool get-sum, trigger-long-running-operation {{ }}
  tool echo, get-tiny-image {{
    limit 100000 per 2d -> "Too many calls"
  }}
}}
"#
        ),
    )
    .unwrap();
    path.display().to_string()
}

fn proxy(name: &str, policy: &str, dsn: &str, extra: &[&str]) -> Proxy {
    let mut args = vec!["-c", policy, "--state-dsn", dsn];
    if !extra.contains(&"--log-level") {
        args.extend(["--log-level", "warn"]);
    }
    args.extend(extra);
    let mut p = Proxy::everything(name, &args);
    p.initialize();
    p
}

fn echo(p: &mut Proxy, id: u64) -> String {
    p.call(id, "echo", &format!(r#"{{"message":"hello {id}"}}"#))
}

fn allowed(answer: &str, id: u64) -> bool {
    answer.contains(&format!("hello {id}")) && !is_denial(answer)
}

#[test]
fn the_redis_store_passes_the_conformance_suite() {
    let redis = Redis::start("redis-conformance", &[]);
    let n = std::sync::atomic::AtomicUsize::new(0);
    conformance::run_all(
        &|| {
            let i = n.fetch_add(1, std::sync::atomic::Ordering::Relaxed);
            let backend = RedisStore::open(&redis.dsn(), &format!("conformance{i}:")).unwrap();
            Store::new(
                Arc::new(backend),
                "redis".into(),
                Log {
                    level: Level::Error,
                },
            )
            .unwrap()
        },
        &|s: &Store| s.flush(),
    );
    // Keys expire: every key the suite wrote has a TTL.
    let keys = redis.cli(&["--scan", "--pattern", "conformance*"]);
    assert!(!keys.trim().is_empty());
    for key in keys.lines() {
        let ttl: i64 = redis.cli(&["pttl", key]).trim().parse().unwrap();
        assert!(ttl > 0, "{key} has no expiry ({ttl})");
    }
}

/// Every proxy writes `per_proxy` echo calls at once, then reads the
/// answers: together they admit exactly `limit`, and every other call is
/// denied by the limit's own message (not by anything else).
fn race_echoes(proxies: &mut [Proxy], per_proxy: u64, limit: u32) {
    let answers: Vec<String> = std::thread::scope(|s| {
        let handles: Vec<_> = proxies
            .iter_mut()
            .enumerate()
            .map(|(n, p)| {
                s.spawn(move || {
                    let ids: Vec<u64> = (0..per_proxy).map(|i| 100 * (n as u64 + 1) + i).collect();
                    for id in &ids {
                        p.send(&format!(
                            r#"{{"jsonrpc":"2.0","id":{id},"method":"tools/call","params":{{"name":"echo","arguments":{{"message":"hello {id}"}}}}}}"#
                        ));
                    }
                    ids.iter()
                        .map(|id| p.response(&id.to_string()))
                        .collect::<Vec<_>>()
                })
            })
            .collect();
        handles
            .into_iter()
            .flat_map(|h| h.join().unwrap())
            .collect()
    });
    let admitted = answers.iter().filter(|a| !is_denial(a)).count();
    let limited = answers
        .iter()
        .filter(|a| a.contains(&format!("At most {limit} echoes")))
        .count();
    assert_eq!(admitted, limit as usize, "{answers:#?}");
    assert_eq!(
        limited,
        proxies.len() * per_proxy as usize - limit as usize,
        "{answers:#?}"
    );
}

#[test]
fn four_proxies_racing_one_limit_admit_exactly_the_limit() {
    let redis = Redis::start("redis-race", &[]);
    let dir = temp_dir("redis-race-policy");
    let limit = 10;
    let policy = policy(&dir, limit);
    let dsn = redis.dsn();
    let mut proxies: Vec<Proxy> = (0..4)
        .map(|i| {
            proxy(
                &format!("redis-race-{i}"),
                &policy,
                &dsn,
                &["--state-prefix", "race:"],
            )
        })
        .collect();
    race_echoes(&mut proxies, 6, limit);
    // The prefix is on every key, in the key form of earlier versions (a
    // single Redis needs no hash tag): counters and reservation markers.
    let keys = redis.cli(&["--scan"]);
    assert!(
        keys.lines().all(|k| k.starts_with("race:limited/")),
        "{keys}"
    );
    assert_eq!(
        keys.lines().filter(|k| !k.contains(":op:")).count(),
        2,
        "{keys}"
    );
    for p in proxies {
        let (code, err) = p.finish();
        assert_eq!(code, 0, "{err}");
    }
}

#[test]
fn a_reservation_is_one_round_trip_whatever_the_number_of_counters() {
    let redis = Redis::start("redis-round-trips", &[]);
    let dir = temp_dir("redis-round-trips-policy");
    let policy = policy(&dir, 1000);
    let mut p = proxy("redis-round-trips", &policy, &redis.dsn(), &[]);
    // Warm: the first call may find the script cache empty (it is loaded at start-up).
    assert!(allowed(&echo(&mut p, 1), 1));
    redis.cli(&["config", "resetstat"]);
    let calls = 20;
    for id in 2..2 + calls {
        assert!(allowed(&echo(&mut p, id), id)); // two counters each
    }
    // A call without counters costs no command at all.
    let sum = p.call(99, "get-sum", r#"{"a":1,"b":2}"#);
    assert!(sum.contains('3') && !is_denial(&sum), "{sum}");
    let stats = redis.cli(&["info", "commandstats"]);
    let calls_of = |cmd: &str| -> u64 {
        stats
            .lines()
            .find_map(|l| l.strip_prefix(&format!("cmdstat_{cmd}:calls=")))
            .map_or(0, |rest| rest.split(',').next().unwrap().parse().unwrap())
    };
    assert_eq!(calls_of("evalsha"), calls, "{stats}");
    assert_eq!(calls_of("eval"), 0, "{stats}");
    // Everything else Redis ran was run by the script, or by this test.
    // (`get`/`set`: the reservation's marker, which makes a resent script count once.)
    let script_commands = [
        "hgetall", "hincrby", "pttl", "pexpire", "hdel", "hget", "evalsha", "get", "set",
    ];
    for line in stats.lines().filter(|l| l.starts_with("cmdstat_")) {
        let cmd = line["cmdstat_".len()..].split(':').next().unwrap();
        assert!(
            script_commands.contains(&cmd) || cmd == "info" || cmd == "config|resetstat",
            "a command outside the script: {line}"
        );
    }
    let (code, err) = p.finish();
    assert_eq!(code, 0, "{err}");
}

#[test]
fn redis_down_denies_with_state_unavailable_or_allows_when_open_and_recovers() {
    let mut redis = Redis::start("redis-outage", &[]);
    let dir = temp_dir("redis-outage-policy");
    let policy = policy(&dir, 1000);
    let dsn = redis.dsn();
    let mut closed = proxy("redis-outage-closed", &policy, &dsn, &[]);
    let mut open = proxy(
        "redis-outage-open",
        &policy,
        &dsn,
        &["--state-fail-mode", "open"],
    );
    assert!(allowed(&echo(&mut closed, 1), 1));
    assert!(allowed(&echo(&mut open, 1), 1));

    redis.stop();
    for id in 2..5 {
        let r = echo(&mut closed, id);
        assert!(is_denial(&r), "fail-closed denies: {r}");
        assert!(r.contains(STATE_UNAVAILABLE), "{r}");
        assert!(
            !r.contains("[POLICY DENIED] At most"),
            "not a misleading rate-limit message: {r}"
        );
        let r = echo(&mut open, id);
        assert!(allowed(&r, id), "fail-open allows: {r}");
    }
    assert!(
        !closed
            .server_received()
            .iter()
            .any(|l| l.contains("hello 2")),
        "a call denied for want of state never reaches the server"
    );
    // Calls that need no counter never touch the store: still served.
    let sum = closed.call(50, "get-sum", r#"{"a":2,"b":3}"#);
    assert!(sum.contains('5') && !is_denial(&sum), "{sum}");

    // Same port, empty Redis (no scripts cached): service comes back by itself.
    redis.spawn();
    let deadline = Instant::now() + Duration::from_secs(30);
    let mut id = 100;
    loop {
        id += 1;
        let r = echo(&mut closed, id);
        if allowed(&r, id) {
            break;
        }
        assert!(r.contains(STATE_UNAVAILABLE), "{r}");
        assert!(
            Instant::now() < deadline,
            "no recovery after Redis came back: {r}"
        );
        std::thread::sleep(Duration::from_millis(100));
    }
    // The open proxy counts again too: its calls show up in Redis.
    id += 1;
    assert!(allowed(&echo(&mut open, id), id));
    let keys = redis.cli(&["--scan"]);
    assert!(keys.contains("limited/echo."), "{keys}");

    for p in [closed, open] {
        let (code, err) = p.finish();
        assert_eq!(code, 0, "{err}");
        assert!(
            err.contains("is unavailable") && err.contains("available again"),
            "the outage is logged once each way: {err}"
        );
    }
}

#[test]
fn the_event_loop_keeps_relaying_while_a_decision_waits_on_redis() {
    let redis = Redis::start("redis-loop", &[]);
    let dir = temp_dir("redis-loop-policy");
    let policy = policy(&dir, 1000);
    let mut p = proxy("redis-loop", &policy, &redis.dsn(), &[]);
    assert!(allowed(&echo(&mut p, 1), 1));
    // A long operation reporting progress every 100 ms.
    p.send(r#"{"jsonrpc":"2.0","id":2,"method":"tools/call","params":{"name":"trigger-long-running-operation","arguments":{"duration":4,"steps":40},"_meta":{"progressToken":"p2"}}}"#);
    let deadline = Instant::now() + Duration::from_secs(30);
    while !p
        .next_line(Duration::from_secs(30))
        .is_some_and(|l| l.contains("notifications/progress"))
    {
        assert!(Instant::now() < deadline, "no progress at all");
    }
    // Redis stops answering for 2 s: the next echo's decision waits (until
    // the store's I/O timeout), and meanwhile the server's progress must
    // still reach the client.
    assert_eq!(redis.cli(&["client", "pause", "2000", "ALL"]).trim(), "OK");
    p.send(r#"{"jsonrpc":"2.0","id":3,"method":"tools/call","params":{"name":"echo","arguments":{"message":"hello 3"}}}"#);
    let mut progress_meanwhile = 0;
    let answer = loop {
        let line = p
            .next_line(Duration::from_secs(30))
            .expect("the echo is answered");
        if line.contains("\"id\":3") {
            break line;
        }
        if line.contains("notifications/progress") {
            progress_meanwhile += 1;
        }
    };
    assert!(
        progress_meanwhile > 0,
        "no server message was relayed while the decision waited: {answer}"
    );
    // Whatever the outcome (allowed late, or denied at the I/O timeout), never a rate-limit message.
    assert!(
        allowed(&answer, 3) || answer.contains(STATE_UNAVAILABLE),
        "{answer}"
    );
    let done = p.response("2");
    assert!(done.contains("Long running operation completed"), "{done}");
    let (code, err) = p.finish();
    assert_eq!(code, 0, "{err}");
}

#[test]
fn the_dsn_password_is_never_printed() {
    let secret = "pw-Secr3t-4242";
    let mut redis = Redis::start("redis-password", &["--requirepass", secret]);
    let dir = temp_dir("redis-password-policy");
    let policy = policy(&dir, 1000);
    let dsn = format!("redis://:{secret}@127.0.0.1:{}/0", redis.port);
    let audit = dir.join("audit.jsonl");
    let audit_arg = audit.display().to_string();
    let mut p = proxy(
        "redis-password",
        &policy,
        &dsn,
        &["--log-level", "debug", "--audit-log", &audit_arg],
    );
    let mut stdout = vec![echo(&mut p, 1)];
    assert!(allowed(&stdout[0], 1), "{}", stdout[0]);
    redis.stop(); // errors get logged too
    stdout.push(echo(&mut p, 2));
    assert!(stdout[1].contains(STATE_UNAVAILABLE), "{}", stdout[1]);
    stdout.append(&mut p.seen);
    let (code, err) = p.finish();
    assert_eq!(code, 0, "{err}");
    assert!(
        err.contains(&format!("redis://:***@127.0.0.1:{}/0", redis.port)),
        "the store is named, redacted: {err}"
    );
    assert!(err.contains("is unavailable"), "{err}");
    let audit_text = std::fs::read_to_string(&audit).unwrap();
    assert!(audit_text.contains("\"tool\":\"echo\""), "{audit_text}");
    for (what, text) in [
        ("stderr", err.as_str()),
        ("audit log", audit_text.as_str()),
        ("stdout", &stdout.join("\n")),
    ] {
        assert!(
            !text.contains(secret),
            "the password is in the {what}: {text}"
        );
    }

    // The DSN from the environment (PORTCULLIS_STATE_DSN): the store works,
    // and the password is not in the process's command line, which every
    // local user can read (/proc/PID/cmdline, ps).
    redis.spawn();
    let mut p = Proxy::everything_env(
        "redis-password-env",
        &["-c", &policy, "--log-level", "info"],
        &[("PORTCULLIS_STATE_DSN", &dsn)],
    );
    p.initialize();
    let answer = echo(&mut p, 3);
    assert!(allowed(&answer, 3), "{answer}");
    let cmdline = std::fs::read(format!("/proc/{}/cmdline", p.child.id())).unwrap();
    let cmdline = String::from_utf8_lossy(&cmdline).replace('\0', " ");
    assert!(cmdline.contains("portcullis"), "{cmdline}");
    assert!(!cmdline.contains(secret), "{cmdline}");
    // The server process inherits the proxy's environment, but not the DSN.
    let pid = p.child.id();
    let children = std::fs::read_to_string(format!("/proc/{pid}/task/{pid}/children")).unwrap();
    let server = children
        .split_whitespace()
        .next()
        .expect("the server process");
    let environ = std::fs::read(format!("/proc/{server}/environ")).unwrap();
    let environ = String::from_utf8_lossy(&environ);
    assert!(environ.contains("PATH="), "the environment is passed on");
    assert!(
        !environ.contains("PORTCULLIS_STATE_DSN") && !environ.contains(secret),
        "the proxy's secret is not passed to the server"
    );
    let (code, err) = p.finish();
    assert_eq!(code, 0, "{err}");
    assert!(
        err.contains(&format!(
            "counters in redis redis://:***@127.0.0.1:{}/0",
            redis.port
        )),
        "{err}"
    );
    assert!(!err.contains(secret), "{err}");

    // Start-up errors: a wrong password, a DSN that does not parse.
    for (bad, secret) in [
        (
            format!("redis://:wrong-Pw-777@127.0.0.1:{}/0", redis.port),
            "wrong-Pw-777",
        ),
        (
            format!("redis://user:other-Pw-888@127.0.0.1:{}/notadb", redis.port),
            "other-Pw-888",
        ),
        (
            format!("http://u:third-Pw-999@127.0.0.1:{}", redis.port),
            "third-Pw-999",
        ),
    ] {
        let out = Command::new(common::portcullis())
            .args(["-c", &policy, "--state-dsn", &bad, "--", "true"])
            .output()
            .unwrap();
        let err = String::from_utf8_lossy(&out.stderr);
        assert_eq!(out.status.code(), Some(1), "{err}");
        assert!(err.starts_with("error: "), "{err}");
        assert!(
            err.contains(":***@127.0.0.1"),
            "the DSN is named, redacted: {err}"
        );
        assert!(!err.contains(secret), "{err}");
        assert!(out.stdout.is_empty());
    }
}

#[test]
fn redis_down_at_start_up_is_a_clear_error() {
    let port = free_port();
    let out = Command::new(common::portcullis())
        .args(["--server", "everything", "--state-dsn"])
        .arg(format!("redis://127.0.0.1:{port}/0"))
        .args(["--", "true"])
        .output()
        .unwrap();
    let err = String::from_utf8_lossy(&out.stderr);
    assert_eq!(out.status.code(), Some(1), "{err}");
    assert!(
        err.contains(&format!(
            "error: cannot reach Redis at redis://127.0.0.1:{port}/0"
        )),
        "{err}"
    );
}

// ---------------------------------------------------------------- Resent scripts

static RESENT: portcullis_core::counters::CounterSpec = portcullis_core::counters::CounterSpec::new(
    "resent/_global.calls",
    portcullis_core::counters::Window::Sliding {
        millis: 172_800_000,
    },
    portcullis_core::counters::Scope::Global,
);

/// A client library may send a script again after a timeout or a dropped
/// connection (the cluster client does, up to 3 times) although the first
/// one ran: the reservation must not count twice, and above all the
/// rollback must not give back twice (that would take the units of other
/// admitted calls: over-admission).
#[test]
fn a_reservation_or_rollback_sent_twice_counts_once() {
    use portcullis_core::counters::{
        CounterRef, ReserveOutcome, ReserveRequest, Ticket, UnixMillis,
    };
    use portcullis_proxy::state::Backend;
    use portcullis_proxy::state::redis::{OP_MARKER_TTL, RESERVE, ROLLBACK, op_key, redis_key};
    let redis = Redis::start("redis-resent", &[]);
    let store = RedisStore::open(&redis.dsn(), "resent:").unwrap();
    let counter = CounterRef {
        spec: &RESENT,
        partition: 0,
    };
    let limit = 2;
    let one = [ReserveRequest {
        counter,
        amount: 1,
        limit,
    }];
    let now = UnixMillis::now();
    let reserve = |ticket: &mut Ticket| store.reserve(&one, now, ticket).unwrap();
    let (mut a, mut b) = (Ticket::EMPTY, Ticket::EMPTY);
    assert_eq!(reserve(&mut a), ReserveOutcome::Reserved);
    assert_eq!(reserve(&mut b), ReserveOutcome::Reserved);
    assert_eq!(store.read(counter, now).unwrap(), 2);
    // A's rollback delivered twice: one unit back, B's stays counted.
    store.rollback(&a).unwrap();
    store.rollback(&a).unwrap();
    assert_eq!(store.read(counter, now).unwrap(), 1);
    let mut c = Ticket::EMPTY;
    assert_eq!(reserve(&mut c), ReserveOutcome::Reserved);
    assert_eq!(
        reserve(&mut Ticket::default()),
        ReserveOutcome::Refused { index: 0 },
        "A's second rollback took B's unit"
    );

    // The scripts themselves, as a resending client sends them: the same
    // EVAL twice (same marker) counts once, and answers the same.
    let key = redis_key("raw:", counter, false);
    let ttl = OP_MARKER_TTL.as_millis().to_string();
    let (oldest, current) = RESENT.window.live_buckets(now);
    let (oldest, current) = (oldest.to_string(), current.to_string());
    let op = op_key(&key, "0123", 'r');
    let eval_reserve = |limit: &str| {
        redis
            .cli(&[
                "eval", RESERVE, "2", &key, &op, &oldest, &current, &current, "3", limit, "60000",
                &ttl,
            ])
            .trim()
            .to_string()
    };
    assert_eq!(eval_reserve("10"), "-1");
    // Resent: the first run's answer, even though the limit would now refuse it.
    assert_eq!(eval_reserve("4"), "-1");
    assert_eq!(redis.cli(&["hget", &key, &current]).trim(), "3");
    let back = op_key(&key, "0123", 'b');
    let eval_rollback = || {
        redis
            .cli(&["eval", ROLLBACK, "2", &key, &back, &current, "2", &ttl])
            .trim()
            .to_string()
    };
    assert_eq!(eval_rollback(), "0");
    assert_eq!(eval_rollback(), "1", "the second run is recognised");
    assert_eq!(redis.cli(&["hget", &key, &current]).trim(), "1");
    // The markers expire.
    let pttl: i64 = redis.cli(&["pttl", &back]).trim().parse().unwrap();
    assert!(
        pttl > 0 && pttl <= OP_MARKER_TTL.as_millis() as i64,
        "{pttl}"
    );
}

// ---------------------------------------------------------------- TLS

/// `openssl ARGS...` in `dir`, which must succeed.
fn openssl(dir: &Path, args: &[&str]) {
    let out = Command::new(find_program("openssl"))
        .current_dir(dir)
        .args(args)
        .output()
        .expect("run openssl");
    assert!(
        out.status.success(),
        "openssl {args:?}: {}",
        String::from_utf8_lossy(&out.stderr)
    );
}

/// A test CA `<name>.crt`/`<name>.key` in `dir` (P-256: fast to make).
fn make_ca(dir: &Path, name: &str) {
    openssl(
        dir,
        &[
            "req",
            "-x509",
            "-newkey",
            "ec",
            "-pkeyopt",
            "ec_paramgen_curve:prime256v1",
            "-nodes",
            "-keyout",
            &format!("{name}.key"),
            "-out",
            &format!("{name}.crt"),
            "-days",
            "2",
            "-subj",
            &format!("/CN={name}"),
            "-addext",
            "basicConstraints=critical,CA:TRUE",
            "-addext",
            "keyUsage=critical,keyCertSign,cRLSign",
        ],
    );
}

/// A leaf certificate `<name>.crt`/`<name>.key` signed by CA `ca`, for `san`
/// (e.g. `IP:127.0.0.1`), usable by a server and a client.
fn make_cert(dir: &Path, ca: &str, name: &str, san: &str) {
    std::fs::write(
        dir.join(format!("{name}.ext")),
        format!(
            "subjectAltName={san}\nbasicConstraints=CA:FALSE\nkeyUsage=digitalSignature\nextendedKeyUsage=serverAuth,clientAuth\n"
        ),
    )
    .unwrap();
    openssl(
        dir,
        &[
            "req",
            "-newkey",
            "ec",
            "-pkeyopt",
            "ec_paramgen_curve:prime256v1",
            "-nodes",
            "-keyout",
            &format!("{name}.key"),
            "-out",
            &format!("{name}.csr"),
            "-subj",
            &format!("/CN={name}"),
        ],
    );
    openssl(
        dir,
        &[
            "x509",
            "-req",
            "-in",
            &format!("{name}.csr"),
            "-CA",
            &format!("{ca}.crt"),
            "-CAkey",
            &format!("{ca}.key"),
            "-CAcreateserial",
            "-days",
            "2",
            "-out",
            &format!("{name}.crt"),
            "-extfile",
            &format!("{name}.ext"),
        ],
    );
}

/// Certificates for the TLS tests: CA `ca` signs `server` (127.0.0.1 only)
/// and `client`; CA `other` signs nothing we use.
fn test_pki(name: &str) -> PathBuf {
    let dir = temp_dir(name);
    make_ca(&dir, "ca");
    make_ca(&dir, "other");
    make_cert(&dir, "ca", "server", "IP:127.0.0.1");
    make_cert(&dir, "ca", "client", "DNS:portcullis-client");
    dir
}

/// A redis-server with TLS on a second port (the plain one stays for the test's redis-cli).
fn tls_redis(name: &str, pki: &Path, auth_clients: bool, extra: &[&str]) -> (Redis, u16) {
    let tls_port = free_port().to_string();
    let file = |f: &str| pki.join(f).display().to_string();
    let mut args = vec![
        "--tls-port".to_string(),
        tls_port.clone(),
        "--tls-cert-file".into(),
        file("server.crt"),
        "--tls-key-file".into(),
        file("server.key"),
        "--tls-ca-cert-file".into(),
        file("ca.crt"),
        "--tls-auth-clients".into(),
        if auth_clients { "yes" } else { "no" }.into(),
    ];
    args.extend(extra.iter().map(|s| s.to_string()));
    let args: Vec<&str> = args.iter().map(String::as_str).collect();
    (Redis::start(name, &args), tls_port.parse().unwrap())
}

/// `portcullis` started with `args`, expected to refuse to start: its stderr.
fn start_up_error(args: &[&str]) -> String {
    let out = Command::new(common::portcullis())
        .args(args)
        .args(["--", "true"])
        .output()
        .unwrap();
    let err = String::from_utf8_lossy(&out.stderr).into_owned();
    assert_eq!(out.status.code(), Some(1), "{err}");
    assert!(err.starts_with("error: "), "{err}");
    assert!(out.stdout.is_empty());
    err
}

#[test]
fn rediss_verifies_the_server_against_state_ca_and_refuses_an_untrusted_or_misnamed_one() {
    let secret = "tls-Pw-5150";
    let pki = test_pki("redis-tls-pki");
    let (redis, tls_port) = tls_redis("redis-tls", &pki, false, &["--requirepass", secret]);
    let dir = temp_dir("redis-tls-policy");
    let policy = policy(&dir, 1000);
    let ca = pki.join("ca.crt").display().to_string();
    let other = pki.join("other.crt").display().to_string();
    let dsn = format!("rediss://:{secret}@127.0.0.1:{tls_port}/0");

    // Trusted CA, right name: counters work over TLS.
    let mut p = proxy(
        "redis-tls",
        &policy,
        &dsn,
        &["--state-ca", &ca, "--log-level", "info"],
    );
    assert!(allowed(&echo(&mut p, 1), 1));
    let keys = redis.cli(&["-a", secret, "--no-auth-warning", "--scan"]);
    assert!(keys.contains("limited/echo."), "{keys}");
    let (code, err) = p.finish();
    assert_eq!(code, 0, "{err}");
    assert!(
        err.contains(&format!(
            "counters in redis rediss://:***@127.0.0.1:{tls_port}/0"
        )),
        "{err}"
    );
    assert!(!err.contains(secret), "{err}");

    // Refused at start-up, the password never printed: the test CA is not
    // among the built-in roots; another CA; a name the certificate does not
    // have (it names 127.0.0.1 only); plain text to the TLS port.
    let misnamed = format!("rediss://:{secret}@localhost:{tls_port}/0");
    let plain = format!("redis://:{secret}@127.0.0.1:{tls_port}/0");
    for (args, why) in [
        (
            vec!["--state-dsn", &dsn],
            "invalid peer certificate: UnknownIssuer",
        ),
        (
            vec!["--state-dsn", &dsn, "--state-ca", &other],
            "invalid peer certificate: UnknownIssuer",
        ),
        (
            vec!["--state-dsn", &misnamed, "--state-ca", &ca],
            "certificate not valid for name \"localhost\"",
        ),
        (vec!["--state-dsn", &plain], "cannot reach Redis"),
    ] {
        let mut all = vec!["-c", &policy];
        all.extend(args);
        let err = start_up_error(&all);
        assert!(err.contains("cannot reach Redis at "), "{err}");
        assert!(err.contains(why), "{why}: {err}");
        assert!(err.contains(":***@"), "{err}");
        assert!(!err.contains(secret), "{err}");
    }
    // The CA flag means TLS: with redis:// it is an error, not ignored.
    let err = start_up_error(&["-c", &policy, "--state-dsn", &plain, "--state-ca", &ca]);
    assert!(err.contains("write rediss://"), "{err}");
    assert!(!err.contains(secret), "{err}");
}

#[test]
fn a_redis_requiring_client_certificates_accepts_state_client_cert() {
    let pki = test_pki("redis-mtls-pki");
    let (redis, tls_port) = tls_redis("redis-mtls", &pki, true, &[]);
    let dir = temp_dir("redis-mtls-policy");
    let policy = policy(&dir, 1000);
    let file = |f: &str| pki.join(f).display().to_string();
    let dsn = format!("rediss://127.0.0.1:{tls_port}/0");

    // Without a client certificate the server ends the handshake.
    let err = start_up_error(&[
        "-c",
        &policy,
        "--state-dsn",
        &dsn,
        "--state-ca",
        &file("ca.crt"),
    ]);
    assert!(err.contains("cannot reach Redis at "), "{err}");

    let (cert, key) = (file("client.crt"), file("client.key"));
    let mut p = proxy(
        "redis-mtls",
        &policy,
        &dsn,
        &[
            "--state-ca",
            &file("ca.crt"),
            "--state-client-cert",
            &cert,
            "--state-client-key",
            &key,
        ],
    );
    assert!(allowed(&echo(&mut p, 1), 1));
    assert!(redis.cli(&["--scan"]).contains("limited/echo."));
    let (code, err) = p.finish();
    assert_eq!(code, 0, "{err}");

    // The store itself (as the conformance suite uses it) over mutual TLS.
    let store = RedisStore::open_with(
        &dsn,
        "mtls:",
        &RedisOptions {
            ca: Some(pki.join("ca.crt")),
            client_cert: Some(pki.join("client.crt")),
            client_key: Some(pki.join("client.key")),
            min_replicas: 0,
        },
    );
    assert!(store.is_ok(), "{:?}", store.err());
}

// ---------------------------------------------------------------- Cluster

/// A free port whose cluster bus port (+10000) is free too.
fn free_cluster_port() -> u16 {
    loop {
        let p = free_port();
        if p < 55_000 && TcpListener::bind(("127.0.0.1", p + 10_000)).is_ok() {
            return p;
        }
    }
}

/// Three masters (`--cluster-enabled yes`), joined by `redis-cli --cluster
/// create` with no replicas, answering once every node says `cluster_state:ok`.
fn redis_cluster(name: &str) -> Vec<Redis> {
    redis_cluster_with(name, None)
}

/// [`redis_cluster`], with TLS on every node (clients and the cluster bus)
/// when `pki` is given: each node's cluster port is then its TLS port, and
/// its plain port stays for the test's redis-cli. Returns the nodes and the
/// ports clients use.
fn redis_cluster_with(name: &str, pki: Option<&Path>) -> Vec<Redis> {
    let nodes: Vec<Redis> = (0..3)
        .map(|i| {
            let mut extra: Vec<String> = [
                "--cluster-enabled",
                "yes",
                "--cluster-config-file",
                "nodes.conf",
            ]
            .map(String::from)
            .to_vec();
            let port = free_cluster_port();
            if let Some(pki) = pki {
                let file = |f: &str| pki.join(f).display().to_string();
                extra.extend([
                    "--tls-port".into(),
                    port.to_string(),
                    "--tls-cluster".into(),
                    "yes".into(),
                    "--tls-cert-file".into(),
                    file("server.crt"),
                    "--tls-key-file".into(),
                    file("server.key"),
                    "--tls-ca-cert-file".into(),
                    file("ca.crt"),
                    "--tls-auth-clients".into(),
                    "optional".into(),
                ]);
            }
            let mut r = Redis {
                child: None,
                // With TLS, `port` is the TLS one and the plain one is any free port.
                port: if pki.is_some() { free_port() } else { port },
                dir: temp_dir(&format!("{name}-{i}")),
                extra,
            };
            r.spawn();
            r
        })
        .collect();
    let addrs: Vec<String> = nodes
        .iter()
        .map(|n| format!("127.0.0.1:{}", cluster_port(n)))
        .collect();
    let mut create = Command::new(find_program("redis-cli"));
    if let Some(pki) = pki {
        create.arg("--tls").arg("--cacert").arg(pki.join("ca.crt"));
    }
    let out = create
        .arg("--cluster")
        .arg("create")
        .args(&addrs)
        .args(["--cluster-replicas", "0", "--cluster-yes"])
        .output()
        .expect("run redis-cli --cluster create");
    assert!(
        out.status.success(),
        "{}{}",
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    );
    let deadline = Instant::now() + Duration::from_secs(30);
    while !nodes
        .iter()
        .all(|n| n.cli(&["cluster", "info"]).contains("cluster_state:ok"))
    {
        assert!(Instant::now() < deadline, "the cluster did not form");
        std::thread::sleep(Duration::from_millis(50));
    }
    nodes
}

/// The port a cluster node announces: its TLS port when it has one.
fn cluster_port(n: &Redis) -> u16 {
    n.extra
        .iter()
        .position(|a| a == "--tls-port")
        .map_or(n.port, |i| n.extra[i + 1].parse().unwrap())
}

#[test]
fn three_proxies_racing_one_limit_on_a_three_master_cluster_admit_exactly_the_limit() {
    let nodes = redis_cluster("redis-cluster");
    let dir = temp_dir("redis-cluster-policy");
    let limit = 10;
    let policy = policy(&dir, limit);
    // Each proxy knows a different seed node (or two): the client learns the
    // slots from any of them and follows MOVED to the owner.
    let seeds = [
        format!("redis+cluster://127.0.0.1:{}", nodes[0].port),
        format!("redis+cluster://127.0.0.1:{}/", nodes[1].port),
        format!(
            "redis+cluster://127.0.0.1:{},127.0.0.1:{}/0",
            nodes[2].port, nodes[0].port
        ),
    ];
    let mut proxies: Vec<Proxy> = seeds
        .iter()
        .enumerate()
        .map(|(i, dsn)| {
            proxy(
                &format!("redis-cluster-{i}"),
                &policy,
                dsn,
                &["--state-prefix", "c:"],
            )
        })
        .collect();
    race_echoes(&mut proxies, 7, limit);
    // Both counters of the decision (echo's and `tool *`'s) are on one
    // master, in the slot of the hash tag `{limited}`.
    let slot = nodes[0].cli(&["cluster", "keyslot", "{limited}"]);
    let holders: Vec<Vec<String>> = nodes
        .iter()
        .map(|n| n.cli(&["--scan"]).lines().map(str::to_string).collect())
        .collect();
    let holding: Vec<&Vec<String>> = holders.iter().filter(|k| !k.is_empty()).collect();
    assert_eq!(holding.len(), 1, "{holders:?}");
    // The two counters, and the markers of the reservations of the last minute.
    assert_eq!(
        holding[0].iter().filter(|k| !k.contains(":op:")).count(),
        2,
        "{holders:?}"
    );
    for key in holding[0] {
        assert!(key.starts_with("c:{limited}/"), "{key}");
        assert_eq!(nodes[0].cli(&["cluster", "keyslot", key]), slot, "{key}");
    }
    for p in proxies {
        let (code, err) = p.finish();
        assert_eq!(code, 0, "{err}");
    }

    // The store on the cluster behaves as every store does.
    let dsn = format!("redis+cluster://127.0.0.1:{}", nodes[1].port);
    let n = std::sync::atomic::AtomicUsize::new(0);
    conformance::run_all(
        &|| {
            let i = n.fetch_add(1, std::sync::atomic::Ordering::Relaxed);
            let backend = RedisStore::open(&dsn, &format!("conformance{i}:")).unwrap();
            Store::new(
                Arc::new(backend),
                "redis cluster".into(),
                Log {
                    level: Level::Error,
                },
            )
            .unwrap()
        },
        &|s: &Store| s.flush(),
    );
}

// ---------------------------------------------------------------- Failover

/// A TCP forwarder on a loopback port: to `target` (which the test may
/// switch, like a managed Redis endpoint whose DNS name follows the master),
/// or into a black hole (`cut`: bytes read are dropped either way, like a
/// network partition that keeps the connection open).
struct Forwarder {
    port: u16,
    target: Arc<std::sync::atomic::AtomicU16>,
    cut: Arc<std::sync::atomic::AtomicBool>,
}

impl Forwarder {
    fn start(target: u16) -> Forwarder {
        use std::sync::atomic::{AtomicBool, AtomicU16, Ordering};
        let listener = TcpListener::bind("127.0.0.1:0").unwrap();
        let port = listener.local_addr().unwrap().port();
        let target = Arc::new(AtomicU16::new(target));
        let cut = Arc::new(AtomicBool::new(false));
        let (t, c) = (target.clone(), cut.clone());
        // Runs until the test process ends (a blocked accept costs nothing).
        std::thread::spawn(move || {
            for down in listener.incoming().flatten() {
                let Ok(up) = TcpStream::connect(("127.0.0.1", t.load(Ordering::SeqCst))) else {
                    continue; // dropped: the client sees its connection closed
                };
                for (mut from, mut to) in [
                    (down.try_clone().unwrap(), up.try_clone().unwrap()),
                    (up, down),
                ] {
                    let cut = c.clone();
                    std::thread::spawn(move || {
                        let mut buf = [0u8; 16 * 1024];
                        loop {
                            match from.read(&mut buf) {
                                Ok(0) | Err(_) => break,
                                Ok(_) if cut.load(Ordering::SeqCst) => {}
                                Ok(n) => {
                                    if to.write_all(&buf[..n]).is_err() {
                                        break;
                                    }
                                }
                            }
                        }
                        // One side ended: end both, as a proxy would.
                        let _ = from.shutdown(std::net::Shutdown::Both);
                        let _ = to.shutdown(std::net::Shutdown::Both);
                    });
                }
            }
        });
        Forwarder { port, target, cut }
    }
}

#[test]
fn a_failover_mid_run_with_state_min_replicas_admits_no_more_than_the_limit() {
    use std::sync::atomic::Ordering;
    // Full syncs start at once (Redis 7 waits 5 s for more replicas by default).
    let sync_now = ["--repl-diskless-sync-delay", "0"];
    let master = Redis::start("redis-failover-master", &sync_now);
    // The replica reaches its master through a link the test can cut.
    let link = Forwarder::start(master.port);
    let replica = Redis::start(
        "redis-failover-replica",
        &[
            "--replicaof",
            "127.0.0.1",
            &link.port.to_string(),
            sync_now[0],
            sync_now[1],
        ],
    );
    let deadline = Instant::now() + Duration::from_secs(30);
    while !replica
        .cli(&["info", "replication"])
        .contains("master_link_status:up")
    {
        assert!(Instant::now() < deadline, "the replica did not sync");
        std::thread::sleep(Duration::from_millis(50));
    }
    // The proxy knows only the endpoint, which follows the master.
    let endpoint = Forwarder::start(master.port);
    let dir = temp_dir("redis-failover-policy");
    let limit = 10;
    let policy = policy(&dir, limit);
    let dsn = format!("redis://127.0.0.1:{}/0", endpoint.port);
    let mut p = proxy(
        "redis-failover",
        &policy,
        &dsn,
        &["--state-min-replicas", "1"],
    );
    // Three admissions while the replica follows (on a loaded machine a
    // WAIT may time out now and then: that call is denied, not counted).
    let mut admitted = 0;
    let mut id = 0;
    while admitted < 3 {
        id += 1;
        let r = echo(&mut p, id);
        if allowed(&r, id) {
            admitted += 1;
        } else {
            assert!(r.contains(STATE_UNAVAILABLE), "{r}");
        }
    }
    // Partition: the master's writes no longer reach the replica. A
    // reservation the replica did not acknowledge is not an admission.
    link.cut.store(true, Ordering::SeqCst);
    for id in 50..53 {
        let r = echo(&mut p, id);
        if allowed(&r, id) {
            admitted += 1;
        } else {
            assert!(r.contains(STATE_UNAVAILABLE), "{r}");
        }
    }
    // The master dies with writes the replica never got; the replica is
    // promoted and the endpoint follows it.
    drop(master);
    assert_eq!(replica.cli(&["replicaof", "no", "one"]).trim(), "OK");
    endpoint.target.store(replica.port, Ordering::SeqCst);
    // Until a replica of the new master acknowledges, reservations fail
    // (closed: denied); then the old master's replacement syncs.
    let r = echo(&mut p, 99);
    if allowed(&r, 99) {
        admitted += 1;
    } else {
        assert!(r.contains(STATE_UNAVAILABLE), "{r}");
    }
    let _new_replica = Redis::start(
        "redis-failover-new-replica",
        &["--replicaof", "127.0.0.1", &replica.port.to_string()],
    );
    let deadline = Instant::now() + Duration::from_secs(30);
    id = 100;
    loop {
        id += 1;
        let r = echo(&mut p, id);
        if allowed(&r, id) {
            admitted += 1;
        } else if r.contains(&format!("[POLICY DENIED] At most {limit} echoes")) {
            break;
        } else {
            assert!(r.contains(STATE_UNAVAILABLE), "{r}");
            assert!(
                Instant::now() < deadline,
                "no recovery after the failover: {r}"
            );
            std::thread::sleep(Duration::from_millis(50));
        }
    }
    assert_eq!(
        admitted, limit,
        "admitted calls over the failover (never more than the limit)"
    );
    let (code, err) = p.finish();
    assert_eq!(code, 0, "{err}");
    assert!(err.contains("replicas acknowledged"), "{err}");
}

/// Calls whose reservation the replica did not acknowledge are denied and
/// their units given back: once the replica is back, exactly `limit` calls
/// are admitted (not `limit - 3`).
#[test]
fn a_reservation_the_replicas_did_not_acknowledge_is_given_back() {
    let sync_now = ["--repl-diskless-sync-delay", "0"];
    let master = Redis::start("redis-giveback-master", &sync_now);
    let port = master.port.to_string();
    let replica = Redis::start(
        "redis-giveback-replica",
        &["--replicaof", "127.0.0.1", &port, sync_now[0], sync_now[1]],
    );
    let synced = || {
        let deadline = Instant::now() + Duration::from_secs(30);
        while !replica
            .cli(&["info", "replication"])
            .contains("master_link_status:up")
            || master.cli(&["wait", "1", "1000"]).trim() != "1"
        {
            assert!(Instant::now() < deadline, "the replica did not sync");
            std::thread::sleep(Duration::from_millis(50));
        }
    };
    synced();
    let dir = temp_dir("redis-giveback-policy");
    let limit = 5;
    let policy = policy(&dir, limit);
    let mut p = proxy(
        "redis-giveback",
        &policy,
        &master.dsn(),
        &["--state-min-replicas", "1"],
    );
    // The replica link is cut: WAIT 1 falls short, every call is denied.
    assert_eq!(replica.cli(&["replicaof", "no", "one"]).trim(), "OK");
    let deadline = Instant::now() + Duration::from_secs(10);
    while !master
        .cli(&["info", "replication"])
        .contains("connected_slaves:0")
    {
        assert!(
            Instant::now() < deadline,
            "the master still sees its replica"
        );
        std::thread::sleep(Duration::from_millis(20));
    }
    for id in 1..=3 {
        let r = echo(&mut p, id);
        assert!(r.contains(STATE_UNAVAILABLE), "{r}");
    }
    // The link is back: the 3 denied calls hold no units.
    assert_eq!(replica.cli(&["replicaof", "127.0.0.1", &port]).trim(), "OK");
    synced();
    let mut admitted = 0;
    let deadline = Instant::now() + Duration::from_secs(30);
    for id in 10.. {
        let r = echo(&mut p, id);
        if allowed(&r, id) {
            admitted += 1;
        } else if r.contains(&format!("[POLICY DENIED] At most {limit} echoes")) {
            break;
        } else {
            // A WAIT that timed out on a loaded machine: denied, given back too.
            assert!(r.contains(STATE_UNAVAILABLE), "{r}");
            assert!(Instant::now() < deadline, "{r}");
        }
    }
    assert_eq!(admitted, limit, "the 3 denied calls were given back");
    let (code, err) = p.finish();
    assert_eq!(code, 0, "{err}");
    assert!(err.contains("0 of 1 replicas acknowledged"), "{err}");
}

#[test]
fn state_min_replicas_with_fail_mode_open_is_refused() {
    let dir = temp_dir("redis-replicas-open-policy");
    let policy = policy(&dir, 1);
    // Refused before any connection: no Redis needed.
    let err = start_up_error(&[
        "-c",
        &policy,
        "--state-dsn",
        "redis://127.0.0.1:1/0",
        "--state-min-replicas",
        "1",
        "--state-fail-mode",
        "open",
    ]);
    assert!(
        err.contains("--state-min-replicas needs --state-fail-mode closed"),
        "{err}"
    );
}

#[test]
fn a_cluster_over_tls_works_with_state_ca_and_a_seed_with_another_ca_is_refused() {
    let pki = test_pki("redis-cluster-tls-pki");
    let nodes = redis_cluster_with("redis-cluster-tls", Some(&pki));
    let dir = temp_dir("redis-cluster-tls-policy");
    let limit = 3;
    let policy = policy(&dir, limit);
    let ca = pki.join("ca.crt").display().to_string();
    let dsn = format!("rediss+cluster://127.0.0.1:{}", cluster_port(&nodes[0]));
    let mut p = proxy("redis-cluster-tls", &policy, &dsn, &["--state-ca", &ca]);
    for id in 1..=limit as u64 {
        let r = echo(&mut p, id);
        assert!(allowed(&r, id), "{r}");
    }
    let r = echo(&mut p, 9);
    assert!(
        r.contains(&format!("[POLICY DENIED] At most {limit} echoes")),
        "{r}"
    );
    let (code, err) = p.finish();
    assert_eq!(code, 0, "{err}");
    // The counters are in the cluster (on the shard of `{limited}`).
    let keys: String = nodes.iter().map(|n| n.cli(&["--scan"])).collect();
    assert!(keys.contains("{limited}/echo."), "{keys}");
    // Another CA: refused at start-up.
    let other = pki.join("other.crt").display().to_string();
    let err = start_up_error(&["-c", &policy, "--state-dsn", &dsn, "--state-ca", &other]);
    assert!(err.contains("cannot reach Redis at "), "{err}");
}

#[test]
fn approval_records_pass_the_suite_in_a_real_redis_and_one_racer_consumes() {
    use portcullis_core::counters::UnixMillis;
    use portcullis_proxy::approvals::{self, ApprovalStore, Resolution};
    let mut redis = Redis::start("redis-approvals", &[]);
    let open = |prefix: &str| {
        RedisStore::open_with(&redis.dsn(), prefix, &RedisOptions::default()).expect("open")
    };
    approvals::conformance::run(&open("suite:"));
    // Two proxies (two stores) on one Redis race to consume one approval.
    let (one, two) = (open("race:"), open("race:"));
    let now = UnixMillis::now();
    let req = || approvals::conformance::request("t", "{}", 60_000);
    let (Resolution::Pending { record, .. }, _) = one
        .resolve(req(), approvals::new_id().unwrap(), now)
        .unwrap()
    else {
        panic!("pending expected")
    };
    assert!(open("other:").get(&record.id, now).unwrap().is_none());
    two.decide(&record.id, true, "op", "", now).unwrap();
    let results = std::thread::scope(|s| {
        let a = s.spawn(|| one.resolve(req(), approvals::new_id().unwrap(), now));
        let b = s.spawn(|| two.resolve(req(), approvals::new_id().unwrap(), now));
        [a.join().unwrap().unwrap().0, b.join().unwrap().unwrap().0]
    });
    let granted = results
        .iter()
        .filter(|r| matches!(r, Resolution::Granted(_)))
        .count();
    assert_eq!(granted, 1, "{results:#?}");
    redis.stop();
}

#[test]
fn two_proxies_sharing_redis_race_to_consume_one_approval_decided_with_state_dsn() {
    let mut redis = Redis::start("redis-approval-race", &[]);
    let dir = temp_dir("redis-approval-race");
    let policy = dir.join("everything.policy");
    std::fs::write(
        &policy,
        r#"server everything {
  tool get-sum {
    approve "Sums over 100 need a human" when args.a > 100 via operator timeout 10m
  }
}
"#,
    )
    .unwrap();
    let args = [
        "-c",
        policy.to_str().unwrap(),
        "--state-dsn",
        &redis.dsn(),
        "--log-level",
        "error",
    ];
    let mut a = Proxy::everything("redis-approval-a", &args);
    let mut b = Proxy::everything("redis-approval-b", &args);
    a.initialize();
    b.initialize();
    let id_of = |answer: &str| {
        assert!(answer.contains("[APPROVAL REQUIRED]"), "{answer}");
        let v: serde_json::Value = serde_json::from_str(answer).unwrap();
        v["result"]["_meta"]["dev.portcullis/approval"]["id"]
            .as_str()
            .unwrap()
            .to_string()
    };
    let id = id_of(&a.call(1, "get-sum", r#"{"a":500,"b":2}"#));
    assert_eq!(id_of(&b.call(1, "get-sum", r#"{"b":2,"a":500}"#)), id);
    let approvals = |args: &[&str]| {
        let out = Command::new(common::portcullis())
            .arg("approvals")
            .args(args)
            .args(["--state-dsn", &redis.dsn()])
            .output()
            .unwrap();
        (
            out.status.code(),
            String::from_utf8_lossy(&out.stdout).into_owned(),
            String::from_utf8_lossy(&out.stderr).into_owned(),
        )
    };
    let (code, out, err) = approvals(&["list"]);
    assert_eq!(code, Some(0), "{err}");
    assert!(out.contains(&id) && out.contains("pending"), "{out}");
    let (code, _, err) = approvals(&["approve", &id]);
    assert_eq!(code, Some(0), "{err}");
    let line = r#"{"jsonrpc":"2.0","id":2,"method":"tools/call","params":{"name":"get-sum","arguments":{"a":500,"b":2}}}"#;
    a.send(line);
    b.send(line);
    let answers = [a.response("2"), b.response("2")];
    let forwarded: Vec<&String> = answers
        .iter()
        .filter(|r| !r.contains("\"isError\":true"))
        .collect();
    assert_eq!(forwarded.len(), 1, "{answers:#?}");
    assert!(forwarded[0].contains("502"), "{answers:#?}");
    let tools_calls = |p: &Proxy| {
        p.server_received()
            .iter()
            .filter(|l| l.contains("\"tools/call\""))
            .count()
    };
    assert_eq!(tools_calls(&a) + tools_calls(&b), 1);
    let (_, out, _) = approvals(&["show", &id, "--json"]);
    assert!(out.contains("\"status\": \"consumed\""), "{out}");
    let (code, _, err) = approvals(&["approve", &id]);
    assert_eq!(code, Some(1));
    assert!(err.contains("already consumed"), "{err}");
    a.finish();
    b.finish();
    redis.stop();
}
