//! Idempotency windows end to end: the real binary in front of the real
//! `server-everything`, whose input is tapped, so "reached the server once"
//! is counted on what the server actually received.

mod common;

use std::ffi::OsStr;
use std::io::{Read, Write};
use std::net::TcpStream;
use std::path::{Path, PathBuf};
use std::process::{Child, Command};
use std::time::{Duration, Instant};

use common::{Proxy, Redis, is_denial, temp_dir};

/// `tools/call`s of `tool` the server received.
fn calls_received(p: &Proxy, tool: &str) -> usize {
    let needle = format!("\"name\":\"{tool}\"");
    p.server_received()
        .iter()
        .filter(|l| l.contains("\"tools/call\"") && l.contains(&needle))
        .count()
}

/// Asserts the server received `want` calls of `tool`. The tap (`tee`)
/// may write its file after the server has read the line, so the count is
/// polled for a while, then checked again a little later (an extra call
/// would show up then).
fn assert_received(p: &Proxy, tool: &str, want: usize) {
    let deadline = Instant::now() + Duration::from_secs(3);
    while calls_received(p, tool) < want && Instant::now() < deadline {
        std::thread::sleep(Duration::from_millis(20));
    }
    std::thread::sleep(Duration::from_millis(100));
    assert_eq!(calls_received(p, tool), want, "{:#?}", p.server_received());
}

fn write(dir: &Path, name: &str, text: &str) -> String {
    let path = dir.join(name);
    std::fs::write(&path, text).unwrap();
    path.display().to_string()
}

fn proxy(name: &str, policy: &str, extra: &[&str]) -> Proxy {
    let mut args = vec!["-c", policy, "--log-level", "warn"];
    args.extend_from_slice(extra);
    let mut p = Proxy::everything(name, &args);
    p.initialize();
    p
}

/// The text of the first content item of a tool result.
fn text(line: &str) -> String {
    let at = line.find("\"text\":\"").expect("a text content") + 8;
    let rest = &line[at..];
    rest[..rest.find('"').unwrap()].to_string()
}

/// Replay in the catalogue form: a window of 1 s on `echo`.
const CATALOGUE: &str =
    "tools:\n  echo:\n    rules:\n      - action: allow\n        idempotency: { window: 1500ms }\n";

#[test]
fn a_duplicate_within_the_window_is_replayed_without_reaching_the_server() {
    let dir = temp_dir("idem-replay");
    let policy = write(&dir, "everything.yaml", CATALOGUE);
    let mut p = proxy("idem-replay", &policy, &[]);
    let first = p.call(1, "echo", r#"{"message":"refund 100","n":100}"#);
    assert!(!is_denial(&first), "{first}");
    assert!(text(&first).contains("refund 100"), "{first}");
    // Reordered keys, other whitespace, `1e2` for `100`: the same call.
    let second = p.call(2, "echo", r#"{ "n" : 1e2, "message" : "refund 100" }"#);
    assert!(second.contains("\"id\":2,"), "{second}");
    assert!(
        second.contains("\"portcullis/idempotent-replay\":{\"original_id\":1,"),
        "{second}"
    );
    assert_eq!(text(&first), text(&second));
    assert_received(&p, "echo", 1);
    // Another value is another call.
    let other = p.call(3, "echo", r#"{"message":"refund 100","n":101}"#);
    assert!(!other.contains("idempotent-replay"), "{other}");
    assert_received(&p, "echo", 2);
    // After the window the same call passes again.
    std::thread::sleep(Duration::from_millis(1700));
    let later = p.call(4, "echo", r#"{"message":"refund 100","n":100}"#);
    assert!(!later.contains("idempotent-replay"), "{later}");
    assert_received(&p, "echo", 3);
    let (code, err) = p.finish();
    assert_eq!(code, 0, "{err}");
}

#[test]
fn a_failed_first_call_is_not_remembered() {
    let dir = temp_dir("idem-failed");
    let policy = write(&dir, "everything.yaml", CATALOGUE);
    let mut p = proxy("idem-failed", &policy, &[]);
    // `echo` without its `message` fails at the server (an error answer).
    let a = p.call(1, "echo", r#"{"nope":1}"#);
    let b = p.call(2, "echo", r#"{"nope":1}"#);
    assert!(!b.contains("idempotent-replay"), "{a}\n{b}");
    assert_received(&p, "echo", 2);
}

#[test]
fn intercept_idempotency_window_refuses_a_duplicate_as_documented() {
    let dir = temp_dir("idem-intercept");
    let policy = write(
        &dir,
        "everything.yaml",
        "version: \"1\"\ntools:\n  echo:\n    rules:\n      - name: \"no duplicate echoes\"\n        idempotency_window: 5m\n        on_deny: \"This exact echo was sent in the last 5 minutes\"\n",
    );
    let log = dir.join("decisions.jsonl");
    let log_arg = log.display().to_string();
    let mut p = proxy("idem-intercept", &policy, &["--audit-log", &log_arg]);
    let first = p.call(1, "echo", r#"{"message":"once"}"#);
    assert!(!is_denial(&first), "{first}");
    let second = p.call(2, "echo", r#"{"message":"once"}"#);
    assert!(is_denial(&second), "{second}");
    assert!(
        second.contains("[POLICY DENIED] This exact echo was sent in the last 5 minutes"),
        "{second}"
    );
    assert!(second.contains("\"outcome\":\"duplicate\""), "{second}");
    assert_received(&p, "echo", 1);
    // A different message is not a duplicate.
    let third = p.call(3, "echo", r#"{"message":"twice"}"#);
    assert!(!is_denial(&third), "{third}");
    let (code, err) = p.finish();
    assert_eq!(code, 0, "{err}");
    // The decision log records the refusal as a duplicate, by the rule.
    let decisions = std::fs::read_to_string(&log).unwrap();
    let dup: Vec<&str> = decisions
        .lines()
        .filter(|l| l.contains("\"outcome\":\"duplicate\""))
        .collect();
    assert_eq!(dup.len(), 1, "{decisions}");
    assert!(dup[0].contains("\"idempotency\":\"refused\""), "{}", dup[0]);
    assert!(
        dup[0].contains("\"rule\":\"no duplicate echoes\""),
        "{}",
        dup[0]
    );
}

#[test]
fn malformed_windows_are_positioned_errors_with_a_fix() {
    let dir = temp_dir("idem-validate");
    let policy = write(
        &dir,
        "everything.yaml",
        "version: \"1\"\ntools:\n  echo:\n    rules:\n      - name: \"dup\"\n        idempotency_window: 5 minutes\n",
    );
    let out = Command::new(common::portcullis())
        .args(["validate", "-c", &policy])
        .output()
        .unwrap();
    let err =
        String::from_utf8_lossy(&out.stderr).into_owned() + &String::from_utf8_lossy(&out.stdout);
    assert_eq!(out.status.code(), Some(1), "{err}");
    assert!(
        err.contains("idempotency_window must be a duration"),
        "{err}"
    );
    assert!(err.contains(":6:"), "positioned at line 6: {err}");
    assert!(err.contains("5m"), "with a fix: {err}");
    // And a valid one validates.
    let good = write(
        &dir,
        "good.yaml",
        "version: \"1\"\ntools:\n  echo:\n    rules:\n      - name: \"dup\"\n        idempotency_window: 1h30m\n",
    );
    let out = Command::new(common::portcullis())
        .args(["validate", "-c", &good])
        .output()
        .unwrap();
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
}

/// Two proxies sharing a store get the same call at the same moment: the
/// servers behind them receive it once between them, and both callers get
/// the same answer.
fn race(name: &str, store: &[&str]) {
    let dir = temp_dir(name);
    // A slow tool, so the second call arrives while the first is in flight.
    let policy = write(
        &dir,
        "everything.yaml",
        "tools:\n  trigger-long-running-operation:\n    rules:\n      - action: allow\n        idempotency: { window: 1m }\n",
    );
    let mut a = proxy(&format!("{name}-a"), &policy, store);
    let mut b = proxy(&format!("{name}-b"), &policy, store);
    let call = r#"{"jsonrpc":"2.0","id":7,"method":"tools/call","params":{"name":"trigger-long-running-operation","arguments":{"duration":1,"steps":2}}}"#;
    a.send(call);
    b.send(call);
    let (ra, rb) = (a.response("7"), b.response("7"));
    assert!(!is_denial(&ra) && !is_denial(&rb), "{ra}\n{rb}");
    let total = || {
        calls_received(&a, "trigger-long-running-operation")
            + calls_received(&b, "trigger-long-running-operation")
    };
    // The tap may lag the server (see `assert_received`).
    let deadline = Instant::now() + Duration::from_secs(3);
    while total() < 1 && Instant::now() < deadline {
        std::thread::sleep(Duration::from_millis(20));
    }
    std::thread::sleep(Duration::from_millis(100));
    let total = total();
    assert_eq!(total, 1, "{ra}\n{rb}");
    assert_eq!(text(&ra), text(&rb));
    assert!(
        ra.contains("idempotent-replay") != rb.contains("idempotent-replay"),
        "exactly one is a replay:\n{ra}\n{rb}"
    );
}

#[test]
fn concurrent_duplicates_from_two_proxies_sharing_sqlite_reach_the_server_once() {
    let state = temp_dir("idem-sqlite-state");
    race(
        "idem-sqlite",
        &["--state-dir", &state.display().to_string()],
    );
}

#[test]
fn concurrent_duplicates_from_two_proxies_sharing_redis_reach_the_server_once() {
    let redis = Redis::start("idem-redis");
    let port = redis.port;
    race(
        "idem-redis",
        &["--state-dsn", &format!("redis://127.0.0.1:{port}/0")],
    );
}

#[test]
fn the_language_says_once_per_with_by_and_refuse() {
    let dir = temp_dir("idem-dsl");
    let policy = write(
        &dir,
        "everything.policy",
        "server everything {\n  tool echo {\n    once per 1m by args.message refuse -> \"Already echoed\"\n  }\n}\n",
    );
    let mut p = proxy("idem-dsl", &policy, &[]);
    let first = p.call(1, "echo", r#"{"message":"a","extra":1}"#);
    assert!(!is_denial(&first), "{first}");
    // Only `message` forms the key: another `extra` is still a duplicate.
    let second = p.call(2, "echo", r#"{"message":"a","extra":2}"#);
    assert!(
        second.contains("[POLICY DENIED] Already echoed"),
        "{second}"
    );
    assert_received(&p, "echo", 1);
    let third = p.call(3, "echo", r#"{"message":"b"}"#);
    assert!(!is_denial(&third), "{third}");
    assert_received(&p, "echo", 2);

    let bad = write(
        &dir,
        "bad.policy",
        "server bad {\n  tool echo {\n    once per 5minutes\n  }\n}\n",
    );
    let out = Command::new(common::portcullis())
        .args(["validate", "-c", &bad])
        .output()
        .unwrap();
    let err =
        String::from_utf8_lossy(&out.stderr).into_owned() + &String::from_utf8_lossy(&out.stdout);
    assert_eq!(out.status.code(), Some(1), "{err}");
    assert!(err.contains("`once per` needs a duration"), "{err}");
    assert!(err.contains(":3:14"), "positioned at the duration: {err}");
    assert!(err.contains("`5m`"), "with a fix: {err}");
}

#[test]
fn explain_shows_the_window() {
    let policy = common::root().join("tests/fixtures/dsl/refunds.policy");
    let out = Command::new(common::portcullis())
        .args(["explain", "-c"])
        .arg(&policy)
        .args([
            "--tool",
            "create_refund",
            "--args",
            r#"{"order_id":"o1","amount":5}"#,
        ])
        .output()
        .unwrap();
    let text =
        String::from_utf8_lossy(&out.stdout).into_owned() + &String::from_utf8_lossy(&out.stderr);
    assert!(out.status.success(), "{text}");
    assert!(text.contains("idempotency window 5m (replay)"), "{text}");
    assert!(text.contains("key: the tool and args.order_id"), "{text}");
    assert!(
        text.contains("per caller (the token's iss + sub, or the local user)"),
        "{text}"
    );
}

/// One HTTP/1.1 request with `Connection: close`; (status head, body).
fn http_post(url: &str, headers: &[(&str, &str)], body: &str) -> (String, String) {
    let rest = url.strip_prefix("http://").unwrap();
    let (authority, path) = rest.split_at(rest.find('/').unwrap());
    let mut s = TcpStream::connect(authority).unwrap();
    s.set_read_timeout(Some(Duration::from_secs(30))).unwrap();
    let mut req = format!(
        "POST {path} HTTP/1.1\r\nHost: {authority}\r\nConnection: close\r\nContent-Type: application/json\r\nAccept: application/json, text/event-stream\r\nContent-Length: {}\r\n",
        body.len()
    );
    for (k, v) in headers {
        req.push_str(&format!("{k}: {v}\r\n"));
    }
    req.push_str("\r\n");
    s.write_all(req.as_bytes()).unwrap();
    s.write_all(body.as_bytes()).unwrap();
    let mut out = Vec::new();
    let _ = s.read_to_end(&mut out);
    let out = String::from_utf8_lossy(&out).into_owned();
    let split = out.find("\r\n\r\n").expect("a response");
    (out[..split].to_string(), out[split + 4..].to_string())
}

/// An MCP session on the local HTTP endpoint: its `Mcp-Session-Id`.
fn http_session(url: &str, headers: &[(&str, &str)]) -> String {
    let (head, _) = http_post(
        url,
        headers,
        r#"{"jsonrpc":"2.0","id":0,"method":"initialize","params":{"protocolVersion":"2025-06-18","capabilities":{},"clientInfo":{"name":"t","version":"1"}}}"#,
    );
    let sid = head
        .lines()
        .find_map(|l| {
            let (k, v) = l.split_once(':')?;
            k.eq_ignore_ascii_case("mcp-session-id")
                .then(|| v.trim().to_string())
        })
        .expect("a session id");
    let mut with_sid = headers.to_vec();
    with_sid.push(("Mcp-Session-Id", &sid));
    http_post(
        url,
        &with_sid,
        r#"{"jsonrpc":"2.0","method":"notifications/initialized"}"#,
    );
    sid
}

/// `portcullis --transport http --port 0 -c POLICY EXTRA -- tap.sh TAP
/// node server-everything`: the child and its URL. The tap is `dir/server-received.jsonl`.
fn http_endpoint(dir: &Path, policy: &str, extra: &[&str]) -> (Child, String) {
    let tap = dir.join("server-received.jsonl");
    let (tap_sh, server) = (
        common::root().join("tests/e2e/tap.sh"),
        common::server_everything(),
    );
    let first = ["-c", policy, "--log-level", "info"];
    let mut args: Vec<&OsStr> = first.iter().chain(extra).map(OsStr::new).collect();
    args.extend([
        OsStr::new("--"),
        tap_sh.as_os_str(),
        tap.as_os_str(),
        OsStr::new("node"),
        server.as_os_str(),
    ]);
    common::start_http_endpoint(&args)
}

/// `echo` calls the server behind [`http_endpoint`] received.
fn http_echoes(dir: &Path) -> usize {
    // The tap may lag the server (see `assert_received`).
    std::thread::sleep(Duration::from_millis(200));
    std::fs::read_to_string(dir.join("server-received.jsonl"))
        .unwrap_or_default()
        .lines()
        .filter(|l| l.contains("\"tools/call\"") && l.contains("\"echo\""))
        .count()
}

fn http_echo(id: u64) -> String {
    format!(
        r#"{{"jsonrpc":"2.0","id":{id},"method":"tools/call","params":{{"name":"echo","arguments":{{"message":"over http"}}}}}}"#
    )
}

#[test]
fn streamable_http_sessions_share_the_window() {
    let dir = temp_dir("idem-http");
    let policy = write(
        &dir,
        "everything.yaml",
        CATALOGUE.replace("1500ms", "1m").as_str(),
    );
    let (mut child, url) = http_endpoint(&dir, &policy, &[]);
    let (a, b) = (http_session(&url, &[]), http_session(&url, &[]));
    let (_, first) = http_post(&url, &[("Mcp-Session-Id", &a)], &http_echo(1));
    let (_, second) = http_post(&url, &[("Mcp-Session-Id", &b)], &http_echo(2));
    let echoes = http_echoes(&dir);
    let _ = child.kill();
    let _ = child.wait();
    assert!(
        first.contains("over http") && !first.contains("idempotent-replay"),
        "{first}"
    );
    assert!(
        second.contains("\"id\":2,") && second.contains("idempotent-replay"),
        "{second}"
    );
    assert!(second.contains("over http"), "{second}");
    assert_eq!(echoes, 1);
}

/// A bearer token for `sub`, signed with a P-256 key made by the openssl
/// CLI; and the JWKS file that holds the key's public half.
struct Signer {
    key: Vec<u8>,
    jwks: PathBuf,
}

const ISSUER: &str = "https://idp.test/realms/mcp";
const AUDIENCE: &str = "https://mcp.test/mcp";

impl Signer {
    fn new(dir: &Path) -> Signer {
        use base64::Engine;
        let pem = dir.join("ec.pem");
        let openssl = |args: &[&str]| {
            let out = Command::new("openssl")
                .args(args)
                .output()
                .expect("the openssl CLI (scripts/deps installs it)");
            assert!(out.status.success(), "openssl {args:?}");
            out.stdout
        };
        let p = pem.to_str().unwrap();
        openssl(&[
            "genpkey",
            "-algorithm",
            "EC",
            "-pkeyopt",
            "ec_paramgen_curve:P-256",
            "-out",
            p,
        ]);
        // The DER public key ends with the uncompressed point 04 || x || y.
        let der = openssl(&["pkey", "-in", p, "-pubout", "-outform", "DER"]);
        let point = &der[der.len() - 65..];
        let b64 = |b: &[u8]| base64::engine::general_purpose::URL_SAFE_NO_PAD.encode(b);
        let jwks = dir.join("jwks.json");
        std::fs::write(
            &jwks,
            format!(
                r#"{{"keys":[{{"kty":"EC","kid":"ec1","crv":"P-256","x":"{}","y":"{}"}}]}}"#,
                b64(&point[1..33]),
                b64(&point[33..])
            ),
        )
        .unwrap();
        Signer {
            key: std::fs::read(&pem).unwrap(),
            jwks,
        }
    }

    fn token(&self, sub: &str) -> String {
        let now = std::time::SystemTime::now()
            .duration_since(std::time::UNIX_EPOCH)
            .unwrap()
            .as_secs();
        let claims = serde_json::json!({
            "iss": ISSUER, "sub": sub, "aud": AUDIENCE,
            "iat": now, "nbf": now - 5, "exp": now + 600,
        });
        let mut header = jsonwebtoken::Header::new(jsonwebtoken::Algorithm::ES256);
        header.kid = Some("ec1".into());
        let key = jsonwebtoken::EncodingKey::from_ec_pem(&self.key).unwrap();
        jsonwebtoken::encode(&header, &claims, &key).unwrap()
    }
}

#[test]
fn with_oauth_each_principal_has_its_own_window() {
    let dir = temp_dir("idem-oauth");
    let policy = write(
        &dir,
        "everything.yaml",
        CATALOGUE.replace("1500ms", "1m").as_str(),
    );
    let signer = Signer::new(&dir);
    let jwks = signer.jwks.display().to_string();
    let (mut child, url) = http_endpoint(
        &dir,
        &policy,
        &[
            "--jwks-file",
            &jwks,
            "--issuer",
            ISSUER,
            "--audience",
            AUDIENCE,
            "--resource-url",
            AUDIENCE,
        ],
    );
    let (alice, bob) = (
        format!("Bearer {}", signer.token("alice")),
        format!("Bearer {}", signer.token("bob")),
    );
    let post = |auth: &str, id: u64| {
        let sid = http_session(&url, &[("Authorization", auth)]);
        http_post(
            &url,
            &[("Authorization", auth), ("Mcp-Session-Id", &sid)],
            &http_echo(id),
        )
        .1
    };
    let a1 = post(&alice, 1);
    // Bob's identical call must not get Alice's stored answer.
    let b1 = post(&bob, 2);
    let after_bob = http_echoes(&dir);
    // Alice again, on a new session: her own retry is replayed.
    let a2 = post(&alice, 3);
    let after_retry = http_echoes(&dir);
    let _ = child.kill();
    let _ = child.wait();
    assert!(
        a1.contains("over http") && !a1.contains("idempotent-replay"),
        "{a1}"
    );
    assert!(
        b1.contains("over http") && !b1.contains("idempotent-replay"),
        "{b1}"
    );
    assert_eq!(after_bob, 2, "both principals reach the server");
    assert!(
        a2.contains("\"id\":3,") && a2.contains("idempotent-replay"),
        "{a2}"
    );
    assert_eq!(after_retry, 2, "the retry does not reach the server");
}

#[test]
fn reusing_a_cancelled_calls_id_releases_its_claim() {
    let dir = temp_dir("idem-cancel-reuse");
    let policy = write(
        &dir,
        "everything.yaml",
        "tools:\n  trigger-long-running-operation:\n    rules:\n      - action: allow\n        idempotency: { window: 1m }\n  echo:\n    rules:\n      - action: allow\n",
    );
    let mut p = proxy("idem-cancel-reuse", &policy, &[]);
    let slow = |id: u64| {
        format!(
            r#"{{"jsonrpc":"2.0","id":{id},"method":"tools/call","params":{{"name":"trigger-long-running-operation","arguments":{{"duration":1,"steps":1}}}}}}"#
        )
    };
    // The first call claims the key, then the client cancels it ...
    p.send(&slow(7));
    p.send(r#"{"jsonrpc":"2.0","method":"notifications/cancelled","params":{"requestId":7,"reason":"user"}}"#);
    // ... and reuses its id for another call, which replaces the tombstone.
    // (server-everything answers only one of the two calls with id 7,
    // whichever; the cancelled one has run its course after 1.5 s.)
    p.send(r#"{"jsonrpc":"2.0","id":7,"method":"tools/call","params":{"name":"echo","arguments":{"message":"reused"}}}"#);
    let _ = p.response("7");
    std::thread::sleep(Duration::from_millis(1500));
    // The identical call is forwarded at once: the cancelled claim was
    // released, not left in flight for its 10-minute lease (which made it
    // wait 30 s and be refused as still in progress).
    p.send(&slow(8));
    let started = Instant::now();
    let answer = loop {
        let line = p
            .next_line(Duration::from_secs(10).saturating_sub(started.elapsed()))
            .expect(
                "no answer to the identical call within 10 s: it waits for the cancelled claim",
            );
        if line.contains("\"id\":8,") || line.contains("\"id\":8}") {
            break line;
        }
    };
    assert!(!is_denial(&answer), "{answer}");
    assert!(!answer.contains("idempotent-replay"), "{answer}");
    assert_received(&p, "trigger-long-running-operation", 2);
}
