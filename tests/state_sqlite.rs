//! `--state-dir`: counters in SQLite, with the real binary and the real
//! `@modelcontextprotocol/server-everything`. A limit holds across a restart
//! of the proxy, and two proxies sharing the directory never admit more
//! than the limit between them.

mod common;

use std::path::{Path, PathBuf};

use common::{Proxy, is_denial, temp_dir};

/// A policy with a global (not per-session) limit on `echo` in a sliding
/// two-day window: no calendar boundary can reset it during a test.
fn limited_policy(dir: &Path, limit: u32) -> PathBuf {
    let path = dir.join("limited.policy");
    std::fs::write(
        &path,
        format!(
            "server limited {{\n  tool echo {{\n    limit {limit} per 2d -> \"At most {limit} echoes per two days\"\n  }}\n}}\n"
        ),
    )
    .unwrap();
    path
}

fn echo(p: &mut Proxy, id: u64) -> String {
    p.call(id, "echo", &format!(r#"{{"message":"hello {id}"}}"#))
}

fn proxy(name: &str, policy: &Path, state: &Path) -> Proxy {
    let (policy, state) = (policy.display().to_string(), state.display().to_string());
    let mut p = Proxy::everything(
        name,
        &["-c", &policy, "--state-dir", &state, "--log-level", "warn"],
    );
    p.initialize();
    p
}

#[test]
fn a_limit_holds_across_a_restart_of_the_proxy() {
    let dir = temp_dir("sqlite-restart");
    let policy = limited_policy(&dir, 5);
    let state = dir.join("state");

    let mut first = proxy("sqlite-restart-1", &policy, &state);
    for id in 1..=3 {
        let r = echo(&mut first, id);
        assert!(r.contains(&format!("hello {id}")), "allowed: {r}");
    }
    let (code, err) = first.finish();
    assert_eq!(code, 0, "{err}");
    assert!(
        state.join("portcullis-counters.sqlite").exists(),
        "the database is in --state-dir"
    );

    // A new process, a new agent session: the global counter is still at 3.
    let mut second = proxy("sqlite-restart-2", &policy, &state);
    for id in 4..=5 {
        let r = echo(&mut second, id);
        assert!(r.contains(&format!("hello {id}")), "allowed: {r}");
    }
    let denied = echo(&mut second, 6);
    assert!(is_denial(&denied), "{denied}");
    assert!(denied.contains("At most 5 echoes per two days"), "{denied}");
    assert!(
        !second
            .server_received()
            .iter()
            .any(|l| l.contains("hello 6")),
        "a denied call never reaches the server"
    );
    let (code, err) = second.finish();
    assert_eq!(code, 0, "{err}");
}

#[test]
fn two_proxies_sharing_the_directory_admit_exactly_the_limit() {
    let dir = temp_dir("sqlite-race");
    let limit = 10;
    let policy = limited_policy(&dir, limit);
    let state = dir.join("state");
    let mut proxies = [
        proxy("sqlite-race-a", &policy, &state),
        proxy("sqlite-race-b", &policy, &state),
    ];
    // Both write all their calls at once, then read the answers.
    let per_proxy = 9u64;
    let answers: Vec<Vec<String>> = std::thread::scope(|s| {
        let handles: Vec<_> = proxies
            .iter_mut()
            .enumerate()
            .map(|(n, p)| {
                s.spawn(move || {
                    let ids: Vec<u64> = (0..per_proxy).map(|i| 100 * (n as u64 + 1) + i).collect();
                    for id in &ids {
                        p.send(&format!(
                            r#"{{"jsonrpc":"2.0","id":{id},"method":"tools/call","params":{{"name":"echo","arguments":{{"message":"race {id}"}}}}}}"#
                        ));
                    }
                    ids.iter().map(|id| p.response(&id.to_string())).collect::<Vec<_>>()
                })
            })
            .collect();
        handles.into_iter().map(|h| h.join().unwrap()).collect()
    });
    let all: Vec<&String> = answers.iter().flatten().collect();
    let allowed = all.iter().filter(|a| a.contains("race ")).count();
    let denied = all.iter().filter(|a| is_denial(a)).count();
    assert_eq!(allowed, limit as usize, "{all:#?}");
    assert_eq!(denied, 2 * per_proxy as usize - limit as usize, "{all:#?}");
    for p in proxies {
        let (code, err) = p.finish();
        assert_eq!(code, 0, "{err}");
    }
}

#[test]
fn an_unusable_state_dir_is_a_clear_start_up_error() {
    let dir = temp_dir("sqlite-bad");
    let file = dir.join("not-a-dir");
    std::fs::write(&file, "x").unwrap();
    let out = std::process::Command::new(common::portcullis())
        .args(["--server", "everything", "--state-dir"])
        .arg(&file)
        .args(["--", "true"])
        .output()
        .unwrap();
    let err = String::from_utf8_lossy(&out.stderr);
    assert_eq!(out.status.code(), Some(1), "{err}");
    assert!(
        err.contains("error: cannot create the state directory"),
        "{err}"
    );
    assert!(err.contains(&file.display().to_string()), "{err}");
    assert!(out.stdout.is_empty());
}

/// Another process holding SQLite's write lock (as `sqlite3` in a shell, a
/// backup, a stuck proxy would), in a `python3` process of its own.
struct LockHolder(std::process::Child);

impl LockHolder {
    fn hold(db: &Path) -> LockHolder {
        use std::io::BufRead;
        let mut child = std::process::Command::new("python3")
            .args([
                "-c",
                "import sqlite3, sys\n\
                 c = sqlite3.connect(sys.argv[1], isolation_level=None)\n\
                 c.execute('BEGIN IMMEDIATE')\n\
                 print('locked', flush=True)\n\
                 sys.stdin.readline()\n\
                 c.execute('COMMIT')\n",
            ])
            .arg(db)
            .stdin(std::process::Stdio::piped())
            .stdout(std::process::Stdio::piped())
            .spawn()
            .expect("python3 runs");
        let mut line = String::new();
        std::io::BufReader::new(child.stdout.as_mut().unwrap())
            .read_line(&mut line)
            .unwrap();
        assert_eq!(line.trim(), "locked");
        LockHolder(child)
    }

    fn release(mut self) {
        use std::io::Write;
        let mut stdin = self.0.stdin.take().unwrap();
        stdin.write_all(b"commit\n").unwrap();
        drop(stdin);
        assert!(self.0.wait().unwrap().success());
    }
}

/// The proxy decides a rate-limited call on its event loop when SQLite's
/// lock is free, and off it when another process holds the lock: the call
/// then waits for the lock (up to the 5 s busy timeout) and is decided; past
/// the timeout it is denied fail-closed with the state message and never
/// reaches the server; the proxy keeps serving.
#[test]
fn a_lock_held_by_another_process_is_waited_for_then_fails_closed() {
    let dir = temp_dir("sqlite-lock");
    let policy = limited_policy(&dir, 10);
    let state = dir.join("state");
    let db = state.join("portcullis-counters.sqlite");
    let mut p = proxy("sqlite-lock-proxy", &policy, &state);
    assert!(echo(&mut p, 1).contains("hello 1"));

    let holder = LockHolder::hold(&db);
    p.send(r#"{"jsonrpc":"2.0","id":2,"method":"tools/call","params":{"name":"echo","arguments":{"message":"hello 2"}}}"#);
    assert_eq!(
        p.next_line(std::time::Duration::from_millis(700)),
        None,
        "no decision while another process holds the lock"
    );
    assert!(
        !p.server_received().iter().any(|l| l.contains("hello 2")),
        "nothing forwarded unchecked"
    );
    holder.release();
    let r = p.response("2");
    assert!(r.contains("hello 2"), "decided once the lock is free: {r}");

    // Held past the busy timeout: denied, with the state message.
    let holder = LockHolder::hold(&db);
    let denied = echo(&mut p, 3);
    assert!(is_denial(&denied), "{denied}");
    assert!(denied.contains("Policy state unavailable"), "{denied}");
    assert!(
        !p.server_received().iter().any(|l| l.contains("hello 3")),
        "a call that could not be counted never reaches the server"
    );
    holder.release();
    assert!(echo(&mut p, 4).contains("hello 4"), "serving again");
    let (code, err) = p.finish();
    assert_eq!(code, 0, "{err}");
    assert!(
        err.contains("database is locked"),
        "the store's failure is logged: {err}"
    );

    // Exactly the three allowed calls were counted.
    let counted = std::process::Command::new("python3")
        .args([
            "-c",
            "import sqlite3, sys\n\
             print(sqlite3.connect(sys.argv[1]).execute('SELECT SUM(value) FROM counters').fetchone()[0])\n",
        ])
        .arg(&db)
        .output()
        .unwrap();
    assert_eq!(String::from_utf8_lossy(&counted.stdout).trim(), "3");
}

/// Proxies started at the same instant on a fresh `--state-dir` (an MCP
/// client starting all its servers at once): every one comes up and serves,
/// none fails with "database is locked" while another creates the schema or
/// switches the file to WAL, and together they admit exactly the limit.
/// Before the fix most rounds lost all but one proxy.
#[test]
fn proxies_started_together_on_a_fresh_directory_all_come_up() {
    const PROXIES: usize = 6;
    const ROUNDS: usize = 10;
    const LIMIT: u32 = 10;
    let dir = temp_dir("sqlite-start");
    let policy = limited_policy(&dir, LIMIT).display().to_string();
    for round in 0..ROUNDS {
        let state = dir.join(format!("state-{round}")).display().to_string();
        let args = ["-c", &policy, "--state-dir", &state, "--log-level", "warn"];
        // Spawned back to back (a fork and exec each), so they all open the
        // new database within a millisecond or two of each other.
        let proxies: Vec<Proxy> = (0..PROXIES)
            .map(|n| Proxy::everything(&format!("sqlite-start-{round}-{n}"), &args))
            .collect();
        let outcomes: Vec<(Vec<String>, i32, String)> = std::thread::scope(|s| {
            let handles: Vec<_> = proxies
                .into_iter()
                .enumerate()
                .map(|(n, mut p)| {
                    s.spawn(move || {
                        p.send(r#"{"jsonrpc":"2.0","id":"init","method":"initialize","params":{"protocolVersion":"2025-06-18","capabilities":{},"clientInfo":{"name":"portcullis-tests","version":"1"}}}"#);
                        // A proxy that could not start exits: no line; its stderr says why.
                        if p.next_line(std::time::Duration::from_secs(30)).is_none() {
                            let (code, err) = p.finish();
                            return (Vec::new(), code, err);
                        }
                        p.send(r#"{"jsonrpc":"2.0","method":"notifications/initialized"}"#);
                        let answers = (0..2u64).map(|i| echo(&mut p, 10 * n as u64 + i)).collect();
                        let (code, err) = p.finish();
                        (answers, code, err)
                    })
                })
                .collect();
            handles.into_iter().map(|h| h.join().unwrap()).collect()
        });
        for (answers, code, err) in &outcomes {
            assert_eq!(*code, 0, "round {round}: a proxy failed: {err}");
            assert_eq!(answers.len(), 2, "round {round}: {err}");
        }
        // Every call counted exactly once across the six processes.
        let all: Vec<&String> = outcomes.iter().flat_map(|o| &o.0).collect();
        let allowed = all.iter().filter(|a| a.contains("hello ")).count();
        let denied = all.iter().filter(|a| is_denial(a)).count();
        assert_eq!(allowed, LIMIT as usize, "round {round}: {all:#?}");
        assert_eq!(
            denied,
            2 * PROXIES - LIMIT as usize,
            "round {round}: {all:#?}"
        );
    }
}

/// The deterministic form of the start-up race: another connection holds
/// the write lock of a new, not yet WAL database (as a proxy starting a
/// moment earlier does while it switches the file to WAL). SQLite fails the
/// switch at once, without its busy handler; the proxy waits for the lock
/// instead (bounded by the 5 s busy timeout), then comes up and serves. Held
/// past the timeout, start-up fails with an error that says so.
#[test]
fn a_new_database_locked_by_another_process_is_waited_for_at_start_up() {
    let dir = temp_dir("sqlite-start-lock");
    let policy = limited_policy(&dir, 10);

    let state = dir.join("state-released");
    std::fs::create_dir_all(&state).unwrap();
    let holder = LockHolder::hold(&state.join("portcullis-counters.sqlite"));
    let (policy_arg, state_arg) = (policy.display().to_string(), state.display().to_string());
    let mut p = Proxy::everything(
        "sqlite-start-lock-proxy",
        &[
            "-c",
            &policy_arg,
            "--state-dir",
            &state_arg,
            "--log-level",
            "warn",
        ],
    );
    std::thread::sleep(std::time::Duration::from_millis(1000));
    assert!(
        p.child.try_wait().unwrap().is_none(),
        "still waiting for the lock, not failed"
    );
    holder.release();
    p.initialize();
    assert!(echo(&mut p, 1).contains("hello 1"), "serving");
    let (code, err) = p.finish();
    assert_eq!(code, 0, "{err}");

    let state = dir.join("state-held");
    std::fs::create_dir_all(&state).unwrap();
    let holder = LockHolder::hold(&state.join("portcullis-counters.sqlite"));
    let started = std::time::Instant::now();
    let out = std::process::Command::new(common::portcullis())
        .args(["-c", &policy_arg, "--state-dir"])
        .arg(&state)
        .args(["--", "true"])
        .stdin(std::process::Stdio::null())
        .output()
        .unwrap();
    let waited = started.elapsed();
    holder.release();
    let err = String::from_utf8_lossy(&out.stderr);
    assert_eq!(out.status.code(), Some(1), "{err}");
    assert!(
        err.contains("still locked by another connection after 5 s")
            && err.contains("database is locked"),
        "{err}"
    );
    assert!(
        waited >= std::time::Duration::from_secs(5),
        "waited the busy timeout: {waited:?}"
    );
}

/// A per-argument limit on an object argument, end to end with the real
/// binary and a real SQLite file: the object rewritten (spacing, key order,
/// escapes, number spelling), even by a restarted proxy, is the same value
/// and gets no fresh budget; another object does. The counter is stored
/// under a 128-bit argument partition (32 hex digits).
#[test]
fn a_reformatted_object_argument_gets_no_fresh_budget_across_proxies() {
    let dir = temp_dir("sqlite-partition");
    let policy = dir.join("limited.policy");
    std::fs::write(
        &policy,
        "server limited {\n  tool echo {\n    limit 2 per 2d by args.account -> \"At most 2 echoes per account\"\n  }\n}\n",
    )
    .unwrap();
    let state = dir.join("state");
    let call = |p: &mut Proxy, id: u64, account: &str| {
        p.call(
            id,
            "echo",
            &format!(r#"{{"message":"call {id}","account":{account}}}"#),
        )
    };
    let reached = |p: &Proxy, id: u64| {
        p.server_received()
            .iter()
            .any(|l| l.contains(&format!("call {id}\"")))
    };

    let mut first = proxy("sqlite-partition-1", &policy, &state);
    call(
        &mut first,
        1,
        r#"{"org":"acme","ids":[1,2],"tier":{"n":3}}"#,
    );
    call(
        &mut first,
        2,
        r#"{ "tier" : { "n" : 3e0 } , "ids" : [ 1 , 2.0 ] , "org" : "acme" }"#,
    );
    assert!(reached(&first, 1) && reached(&first, 2), "two allowed");
    let (code, err) = first.finish();
    assert_eq!(code, 0, "{err}");

    let mut second = proxy("sqlite-partition-2", &policy, &state);
    let denied = call(
        &mut second,
        3,
        "{\"ids\":[10e-1,2],\t \"\\u006frg\":\"\\u0061cme\",\t\"tier\":{\"n\":300e-2}}",
    );
    assert!(is_denial(&denied), "the same account, respelled: {denied}");
    assert!(denied.contains("At most 2 echoes per account"), "{denied}");
    assert!(
        !reached(&second, 3),
        "a denied call never reaches the server"
    );
    call(
        &mut second,
        4,
        r#"{"org":"acme","ids":[2,1],"tier":{"n":3}}"#,
    );
    assert!(reached(&second, 4), "another account (array order counts)");
    let (code, err) = second.finish();
    assert_eq!(code, 0, "{err}");

    let keys = std::process::Command::new("python3")
        .args([
            "-c",
            "import sqlite3, sys\n\
             for (k,) in sqlite3.connect(sys.argv[1]).execute('SELECT DISTINCT key FROM counters ORDER BY key'): print(k)\n",
        ])
        .arg(state.join("portcullis-counters.sqlite"))
        .output()
        .unwrap();
    let keys = String::from_utf8_lossy(&keys.stdout);
    let partitions: Vec<&str> = keys.lines().filter_map(|k| k.rsplit('#').next()).collect();
    assert_eq!(partitions.len(), 2, "two accounts: {keys}");
    for p in partitions {
        assert!(
            p.len() == 32 && p.chars().all(|c| c.is_ascii_hexdigit()) && p.as_bytes()[0] >= b'8',
            "a 128-bit argument partition: {keys}"
        );
    }
}
