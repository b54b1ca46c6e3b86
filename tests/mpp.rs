//! Budgets on paid tools (MPP): the real binary in front of a small server
//! that charges the way draft-payment-transport-mcp says
//! (`tests/e2e/mpp_server.py`), with the counters in memory, in SQLite files
//! shared by two proxies, and in a real `redis-server` shared by two proxies.

mod common;

use std::io::{Read, Write};
use std::net::TcpListener;
use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};
use std::time::{Duration, Instant};

use common::{Guard, INIT, Proxy, Redis, error_code, header, is_denial, mcp_post, root, temp_dir};

/// Intercept's `spend:` block as its README shows it (with a smaller daily total).
const INTERCEPT_POLICY: &str = r#"version: "1"
description: "paid image generation"
tools:
  generate_image:
    rules:
      - name: "image budget"
        spend:
          per_call: 0.50
          daily: 1.00
"#;

/// The same budgets in the policy language, in euros this time.
const DSL_POLICY: &str = r#"server paid {
  tool generate_image {
    spend <= 0.50 eur per call
    spend <= 1 eur per day as image_budget -> "the image budget for today is spent"
  }
}
"#;

fn write_policy(dir: &Path, name: &str, text: &str) -> PathBuf {
    let p = dir.join(name);
    std::fs::write(&p, text).unwrap();
    p
}

/// A proxy with `policy` in front of the MPP server; `extra` flags before `--`.
fn proxy(name: &str, policy: &Path, extra: &[&str], server_log: &Path) -> Proxy {
    let mut args: Vec<String> = vec!["-c".into(), policy.display().to_string()];
    args.extend(extra.iter().map(|s| s.to_string()));
    args.extend([
        "--".into(),
        "env".into(),
        format!("MPP_LOG={}", server_log.display()),
        "python3".into(),
        root().join("tests/e2e/mpp_server.py").display().to_string(),
    ]);
    let refs: Vec<&str> = args.iter().map(String::as_str).collect();
    let mut p = Proxy::command(name, &refs);
    p.initialize();
    p
}

fn call(p: &mut Proxy, id: u64, args: &str) -> String {
    p.call(id, "generate_image", args)
}

/// The id of the (first) challenge in a passed-through `-32042` answer.
fn challenge_id(line: &str) -> String {
    let at = line
        .find("\"challenges\":[{\"id\":\"")
        .unwrap_or_else(|| panic!("no challenge in {line}"))
        + "\"challenges\":[{\"id\":\"".len();
    line[at..].split('"').next().unwrap().to_string()
}

/// The paid retry: the same call with the credential in `_meta`.
fn pay(p: &mut Proxy, id: u64, args: &str, challenge: &str) -> String {
    p.send(&format!(
        r#"{{"jsonrpc":"2.0","id":{id},"method":"tools/call","params":{{"name":"generate_image","arguments":{args},"_meta":{{"org.paymentauth/credential":{{"challenge":{{"id":"{challenge}"}},"payload":{{"spt":"spt_test"}}}}}}}}}}"#
    ));
    p.response(&id.to_string())
}

/// Asks for a price, sees the challenge passed through, pays it, sees the receipt.
fn buy(p: &mut Proxy, id: u64, price: &str) {
    let args = format!(r#"{{"price":"{price}"}}"#);
    let challenge = call(p, id, &args);
    assert_eq!(error_code(&challenge), Some(-32042), "{challenge}");
    let cid = challenge_id(&challenge);
    let paid = pay(p, id + 1, &args, &cid);
    assert!(paid.contains("paid result of generate_image"), "{paid}");
    assert!(paid.contains("org.paymentauth/receipt"), "{paid}");
}

fn assert_spend_denied(line: &str, needle: &str) {
    assert!(is_denial(line), "not a denial: {line}");
    assert!(line.contains("\"isError\":true"), "{line}");
    assert!(
        !line.contains("\"challenges\":"),
        "the client saw the challenge: {line}"
    );
    assert!(
        !line.contains("-32042"),
        "the client saw the challenge: {line}"
    );
    assert!(line.contains(needle), "{needle:?} not in {line}");
}

#[test]
fn within_budget_passes_the_challenge_and_the_receipt_commits_it() {
    let dir = temp_dir("mpp-within");
    let policy = write_policy(&dir, "paid.yaml", INTERCEPT_POLICY);
    let audit = dir.join("audit.jsonl");
    let server_log = dir.join("server.jsonl");
    let mut p = proxy(
        "mpp-within-proxy",
        &policy,
        &["--audit-log", audit.to_str().unwrap()],
        &server_log,
    );
    // 0.40 + 0.40 fit the daily 1.00; both are paid.
    buy(&mut p, 1, "40");
    buy(&mut p, 3, "40");
    // A third 0.40 would make 1.20: the wallet never sees that challenge.
    let third = call(&mut p, 5, r#"{"price":"40"}"#);
    assert_spend_denied(&third, "image budget");
    assert!(third.contains("per day"), "{third}");
    // Over per_call (0.60 > 0.50), whatever the daily total.
    let dear = call(&mut p, 6, r#"{"price":"60"}"#);
    assert_spend_denied(&dear, "at most 0.50 usd per call");
    let (code, _) = p.finish();
    assert_eq!(code, 0);
    let log = std::fs::read_to_string(&audit).unwrap();
    let payments: Vec<&str> = log
        .lines()
        .filter(|l| l.contains("\"type\":\"payment\""))
        .collect();
    let stages: Vec<&str> = payments
        .iter()
        .map(|l| {
            l.split("\"stage\":\"")
                .nth(1)
                .unwrap()
                .split('"')
                .next()
                .unwrap()
        })
        .collect();
    assert_eq!(
        stages,
        [
            "reserved",
            "committed",
            "reserved",
            "committed",
            "denied",
            "denied"
        ],
        "{log}"
    );
    assert!(
        payments[0].contains("\"price\":\"0.40 usd\""),
        "{}",
        payments[0]
    );
    assert!(
        payments[0].contains("\"budgets\":\"image budget\""),
        "{}",
        payments[0]
    );
    // `status` adds spend up per tool and budget, exactly.
    let out = Command::new(common::portcullis())
        .args(["status", "--json", "--audit-log"])
        .arg(&audit)
        .output()
        .unwrap();
    let text = String::from_utf8_lossy(&out.stdout);
    assert!(out.status.success(), "{text}");
    for needle in [
        "\"tool\": \"generate_image\"",
        "\"budgets\": \"image budget\"",
        "\"currency\": \"usd\"",
        "\"committed\": \"0.80\"",
        "\"reserved\": \"0.80\"",
        "\"unreadable_lines\": 0",
    ] {
        assert!(text.contains(needle), "{needle} not in {text}");
    }
}

#[test]
fn malformed_challenges_are_denied_and_never_reach_the_wallet() {
    let dir = temp_dir("mpp-malformed");
    let policy = write_policy(&dir, "paid.yaml", INTERCEPT_POLICY);
    let server_log = dir.join("server.jsonl");
    let mut p = proxy("mpp-malformed-proxy", &policy, &[], &server_log);
    let cases = [
        (
            r#"{"price":"40","shape":"number_amount"}"#,
            "amount cannot be read exactly",
        ),
        (
            r#"{"price":"40","shape":"fraction"}"#,
            "amount cannot be read exactly",
        ),
        (
            r#"{"price":"40","currency":"0x20c0000000000000000000000000000000000000"}"#,
            "currency is unknown",
        ),
        (
            r#"{"price":"40","shape":"no_currency"}"#,
            "lacks id, method",
        ),
        (
            r#"{"price":"40","shape":"conflicting"}"#,
            "ask different prices",
        ),
        (
            r#"{"price":"40","shape":"no_challenges"}"#,
            "has no challenges",
        ),
        (
            r#"{"price":"4000000000000000000000000"}"#,
            "amount cannot be read exactly",
        ),
    ];
    for (i, (args, why)) in cases.iter().enumerate() {
        let line = call(&mut p, 10 + i as u64, args);
        assert_spend_denied(&line, why);
        assert!(line.contains("bad_challenge"), "{line}");
    }
    // Two challenges for the same price (two payment methods) are one price.
    let two = call(&mut p, 30, r#"{"price":"40","shape":"two_same"}"#);
    assert_eq!(error_code(&two), Some(-32042), "{two}");
    // A credential for a challenge this proxy never passed on is refused
    // before the server can settle it.
    let forged = pay(&mut p, 31, r#"{"price":"40"}"#, "ch-forged");
    assert_spend_denied(&forged, "did not check against the budget");
    let (code, _) = p.finish();
    assert_eq!(code, 0);
    let received = std::fs::read_to_string(&server_log).unwrap();
    assert!(
        !received.contains("ch-forged"),
        "the forged credential reached the server"
    );
}

#[test]
fn an_abandoned_payment_is_released_after_the_timeout() {
    let dir = temp_dir("mpp-abandoned");
    let policy = write_policy(&dir, "paid.yaml", INTERCEPT_POLICY);
    let server_log = dir.join("server.jsonl");
    let mut p = proxy(
        "mpp-abandoned-proxy",
        &policy,
        &["--payment-timeout", "1"],
        &server_log,
    );
    // 0.50 reserved and never paid: another 0.50 still fits (1.00), a third does not.
    assert_eq!(
        error_code(&call(&mut p, 1, r#"{"price":"50"}"#)),
        Some(-32042)
    );
    assert_eq!(
        error_code(&call(&mut p, 2, r#"{"price":"50"}"#)),
        Some(-32042)
    );
    assert_spend_denied(&call(&mut p, 3, r#"{"price":"50"}"#), "image budget");
    // After the payment timeout both reservations are given back.
    std::thread::sleep(Duration::from_millis(1600));
    let again = call(&mut p, 4, r#"{"price":"50"}"#);
    assert_eq!(error_code(&again), Some(-32042), "{again}");
    // A credential for a released challenge is refused.
    let late = pay(&mut p, 5, r#"{"price":"50"}"#, "ch-released-never-issued");
    assert_spend_denied(&late, "did not check against the budget");
    let (code, _) = p.finish();
    assert_eq!(code, 0);
}

#[test]
fn the_policy_language_budget_is_per_currency() {
    let dir = temp_dir("mpp-dsl");
    let policy = write_policy(&dir, "paid.policy", DSL_POLICY);
    let server_log = dir.join("server.jsonl");
    let mut p = proxy("mpp-dsl-proxy", &policy, &[], &server_log);
    // A price in dollars has no budget here: refused.
    let usd = call(&mut p, 1, r#"{"price":"40","currency":"usd"}"#);
    assert_spend_denied(&usd, "no budget of this tool is in usd");
    // 0.60 eur breaks `spend <= 0.50 eur per call`.
    let dear = call(&mut p, 2, r#"{"price":"60","currency":"eur"}"#);
    assert_spend_denied(&dear, "at most 0.50 eur per call");
    for (id, price) in [(3, "50"), (5, "50")] {
        let args = format!(r#"{{"price":"{price}","currency":"eur"}}"#);
        let c = call(&mut p, id, &args);
        assert_eq!(error_code(&c), Some(-32042), "{c}");
        let cid = challenge_id(&c);
        assert!(pay(&mut p, id + 1, &args, &cid).contains("paid result"));
    }
    let over = call(&mut p, 7, r#"{"price":"1","currency":"eur"}"#);
    assert_spend_denied(&over, "the image budget for today is spent");
    let (code, _) = p.finish();
    assert_eq!(code, 0);
}

/// Two proxies sharing a store: what one spent counts for the other.
fn shared_daily_budget(name: &str, state: &[&str]) {
    let dir = temp_dir(name);
    let policy = write_policy(&dir, "paid.yaml", INTERCEPT_POLICY);
    let mut a = proxy(&format!("{name}-a"), &policy, state, &dir.join("a.jsonl"));
    let mut b = proxy(&format!("{name}-b"), &policy, state, &dir.join("b.jsonl"));
    buy(&mut a, 1, "50");
    buy(&mut b, 1, "40");
    // 0.90 spent between them: 0.20 more is over the daily 1.00, on either proxy.
    assert_spend_denied(&call(&mut a, 3, r#"{"price":"20"}"#), "image budget");
    assert_spend_denied(&call(&mut b, 3, r#"{"price":"20"}"#), "image budget");
    // 0.10 still fits.
    assert_eq!(
        error_code(&call(&mut b, 4, r#"{"price":"10"}"#)),
        Some(-32042)
    );
    assert_eq!(a.finish().0, 0);
    assert_eq!(b.finish().0, 0);
}

/// Budgets per caller: a daily image budget for each user, one per team,
/// in the policy language.
const PER_CALLER_POLICY: &str = r#"server paid {
  tool generate_image {
    spend <= $1 per day by principal.sub as user_budget -> "your image budget for today is spent"
    spend <= $5 per day by principal.claims.team as team_budget
  }
}
"#;

/// Per-caller budgets across proxies sharing a store: caller A (two
/// proxies, the same `--principal-claims`) spends 0.90 of its 1.00 split
/// over both and is then refused 0.20 on either; caller B, on a third
/// proxy, still has its whole 1.00; a caller without a team (the second
/// budget counts per team) cannot pay at all, and the challenge never
/// reaches the client.
fn per_caller_daily_budgets(name: &str, state: &[&str]) {
    let dir = temp_dir(name);
    let policy = write_policy(&dir, "paid.policy", PER_CALLER_POLICY);
    let claims = |file: &str, json: &str| {
        let p = dir.join(file);
        std::fs::write(&p, json).unwrap();
        p.display().to_string()
    };
    let alice = claims(
        "alice.json",
        r#"{"sub":"alice","iss":"https://idp.test","team":"studio"}"#,
    );
    let bob = claims(
        "bob.json",
        r#"{"sub":"bob","iss":"https://idp.test","team":"studio"}"#,
    );
    let loner = claims("loner.json", r#"{"sub":"carol","iss":"https://idp.test"}"#);
    fn with<'a>(state: &[&'a str], who: &'a str) -> Vec<&'a str> {
        let mut v = state.to_vec();
        v.extend(["--principal-claims", who]);
        v
    }
    let mut a1 = proxy(
        &format!("{name}-a1"),
        &policy,
        &with(state, &alice),
        &dir.join("a1.jsonl"),
    );
    let mut a2 = proxy(
        &format!("{name}-a2"),
        &policy,
        &with(state, &alice),
        &dir.join("a2.jsonl"),
    );
    let mut b = proxy(
        &format!("{name}-b"),
        &policy,
        &with(state, &bob),
        &dir.join("b.jsonl"),
    );
    let mut c = proxy(
        &format!("{name}-c"),
        &policy,
        &with(state, &loner),
        &dir.join("c.jsonl"),
    );
    buy(&mut a1, 1, "50");
    buy(&mut a2, 1, "40");
    // Alice has 0.10 left today, whichever proxy she asks.
    for p in [&mut a1, &mut a2] {
        assert_spend_denied(
            &call(p, 3, r#"{"price":"20"}"#),
            "your image budget for today is spent",
        );
    }
    // Bob's budget is his own: the whole 1.00, then nothing more.
    buy(&mut b, 1, "50");
    buy(&mut b, 3, "50");
    assert_spend_denied(
        &call(&mut b, 5, r#"{"price":"1"}"#),
        "your image budget for today is spent",
    );
    // Alice's 0.10 is still there.
    buy(&mut a2, 4, "10");
    // No team claim: the team budget has no counter for this caller.
    let denied = call(&mut c, 1, r#"{"price":"1"}"#);
    assert_spend_denied(
        &denied,
        "the budget counts per principal.claims.team and the caller has none",
    );
    assert!(denied.contains("\"rule\":\"team_budget\""), "{denied}");
    for p in [a1, a2, b, c] {
        let (code, err) = p.finish();
        assert_eq!(code, 0, "{err}");
    }
}

#[test]
fn callers_have_their_own_daily_budgets_across_proxies_in_sqlite() {
    let state = temp_dir("mpp-caller-sqlite-state");
    let s = state.display().to_string();
    per_caller_daily_budgets("mpp-caller-sqlite", &["--state-dir", &s]);
}

#[test]
fn callers_have_their_own_daily_budgets_across_proxies_in_redis() {
    let r = Redis::start("mpp-redis-data");
    let dsn = r.dsn();
    per_caller_daily_budgets("mpp-caller-redis", &["--state-dsn", &dsn]);
}

#[test]
fn two_proxies_share_the_daily_budget_in_sqlite() {
    let state = temp_dir("mpp-sqlite-state");
    let s = state.display().to_string();
    shared_daily_budget("mpp-sqlite", &["--state-dir", &s]);
}

/// Challenges passed on and never paid are released when their proxy exits
/// (stdin closed), before the shared store closes: a proxy started next on
/// the same store finds the whole budget, not one held until the payment
/// timeout (300 s here) of a proxy that is gone.
fn unpaid_reservations_are_released_at_exit(name: &str, state: &[&str]) {
    let dir = temp_dir(name);
    let policy = write_policy(&dir, "paid.yaml", INTERCEPT_POLICY);
    let mut a = proxy(&format!("{name}-a"), &policy, state, &dir.join("a.jsonl"));
    for id in [1, 2] {
        let c = call(&mut a, id, r#"{"price":"50"}"#);
        assert_eq!(error_code(&c), Some(-32042), "{c}");
    }
    // Both reserved: the daily 1.00 is taken while they wait.
    assert_spend_denied(&call(&mut a, 3, r#"{"price":"50"}"#), "image budget");
    let (code, err) = a.finish();
    assert_eq!(code, 0, "{err}");
    assert!(
        err.contains("released 2 reservation(s) of payment challenges never paid"),
        "{err}"
    );
    let mut b = proxy(&format!("{name}-b"), &policy, state, &dir.join("b.jsonl"));
    for id in [1, 2] {
        let c = call(&mut b, id, r#"{"price":"50"}"#);
        assert_eq!(
            error_code(&c),
            Some(-32042),
            "the first proxy's reservations outlived it: {c}"
        );
    }
    // The budget is still kept: b's own two reservations fill it.
    assert_spend_denied(&call(&mut b, 3, r#"{"price":"50"}"#), "image budget");
    assert_eq!(b.finish().0, 0);
}

#[test]
fn unpaid_reservations_are_released_at_exit_in_sqlite() {
    let state = temp_dir("mpp-exit-sqlite-state");
    let s = state.display().to_string();
    unpaid_reservations_are_released_at_exit("mpp-exit-sqlite", &["--state-dir", &s]);
}

#[test]
fn unpaid_reservations_are_released_at_exit_in_redis() {
    let r = Redis::start("mpp-redis-data");
    let dsn = r.dsn();
    unpaid_reservations_are_released_at_exit("mpp-exit-redis", &["--state-dsn", &dsn]);
}

/// One POST to the local endpoint on a new connection; (status, head, body).
/// The same at the exit of a proxy serving Streamable HTTP (ended by
/// SIGTERM): its unpaid challenges go back to the SQLite file before it
/// closes, and a proxy started next finds the whole budget.
#[test]
fn an_http_endpoint_releases_unpaid_reservations_when_it_stops() {
    use std::io::BufRead;
    let dir = temp_dir("mpp-exit-http");
    let state = temp_dir("mpp-exit-http-state");
    let policy = write_policy(&dir, "paid.yaml", INTERCEPT_POLICY);
    let child = Command::new(common::portcullis())
        .args(["--transport", "http", "--port", "0", "-c"])
        .arg(&policy)
        .arg("--state-dir")
        .arg(&state)
        .args(["--", "env"])
        .arg(format!("MPP_LOG={}", dir.join("server.jsonl").display()))
        .arg("python3")
        .arg(root().join("tests/e2e/mpp_server.py"))
        .stdin(Stdio::null())
        .stdout(Stdio::null())
        .stderr(Stdio::piped())
        .spawn()
        .unwrap();
    // Killed and reaped on every path, a failed assertion included.
    let mut p = Guard(child);
    let (tx, rx) = std::sync::mpsc::channel();
    let err = p.0.stderr.take().unwrap();
    std::thread::spawn(move || {
        for line in std::io::BufReader::new(err).lines() {
            let Ok(line) = line else { break };
            if tx.send(line).is_err() {
                break;
            }
        }
    });
    let deadline = Instant::now() + Duration::from_secs(30);
    let mut log = String::new();
    let url = loop {
        let Ok(line) = rx.recv_timeout(deadline.saturating_duration_since(Instant::now())) else {
            panic!("portcullis did not print its URL: {log}");
        };
        log.push_str(&line);
        log.push('\n');
        if let Some(url) = line.strip_prefix("portcullis: listening on ") {
            break url.trim().to_string();
        }
    };
    let (status, head, body) = mcp_post(&url, None, INIT);
    assert_eq!(status, 200, "{head}\n{body}");
    let sid = header(&head, "mcp-session-id").expect("a session id");
    let note = r#"{"jsonrpc":"2.0","method":"notifications/initialized"}"#;
    assert_eq!(mcp_post(&url, Some(&sid), note).0, 202);
    let call = |id: u64| {
        format!(
            r#"{{"jsonrpc":"2.0","id":{id},"method":"tools/call","params":{{"name":"generate_image","arguments":{{"price":"50"}}}}}}"#
        )
    };
    for id in [2, 3] {
        let (status, _, body) = mcp_post(&url, Some(&sid), &call(id));
        assert_eq!(status, 200, "{body}");
        assert!(
            body.contains("-32042"),
            "the challenge is passed on: {body}"
        );
    }
    let (_, _, body) = mcp_post(&url, Some(&sid), &call(4));
    assert!(
        body.contains("image budget"),
        "the budget is reserved: {body}"
    );
    nix::sys::signal::kill(
        nix::unistd::Pid::from_raw(p.0.id() as i32),
        nix::sys::signal::Signal::SIGTERM,
    )
    .unwrap();
    let deadline = Instant::now() + Duration::from_secs(20);
    let status = loop {
        if let Some(status) = p.0.try_wait().unwrap() {
            break status;
        }
        assert!(
            Instant::now() < deadline,
            "the endpoint did not stop on SIGTERM"
        );
        std::thread::sleep(Duration::from_millis(20));
    };
    assert_eq!(status.code(), Some(0));
    // Its last lines: until stderr closes (10 s at most).
    let mut rest = Vec::new();
    let deadline = Instant::now() + Duration::from_secs(10);
    while let Ok(line) = rx.recv_timeout(deadline.saturating_duration_since(Instant::now())) {
        rest.push(line);
    }
    assert!(
        rest.iter()
            .any(|l| l.contains("released 2 reservation(s) of payment challenges never paid")),
        "{rest:?}"
    );
    let s = state.display().to_string();
    let mut b = proxy(
        "mpp-exit-http-b",
        &policy,
        &["--state-dir", &s],
        &dir.join("b.jsonl"),
    );
    for id in [1, 2] {
        let c = b.call(id, "generate_image", r#"{"price":"50"}"#);
        assert_eq!(error_code(&c), Some(-32042), "reserved after exit: {c}");
    }
    assert_eq!(b.finish().0, 0);
}

#[test]
fn two_proxies_share_the_daily_budget_in_redis() {
    let r = Redis::start("mpp-redis-data");
    let dsn = r.dsn();
    shared_daily_budget("mpp-redis", &["--state-dsn", &dsn]);
}

/// A Streamable HTTP MPP server (one JSON answer per POST), charging 0.40 usd
/// for every `generate_image` until the credential names a challenge it issued.
fn http_mpp_upstream() -> (u16, std::sync::Arc<std::sync::Mutex<Vec<String>>>) {
    use std::io::BufRead;
    let listener = TcpListener::bind("127.0.0.1:0").unwrap();
    let port = listener.local_addr().unwrap().port();
    let seen = std::sync::Arc::new(std::sync::Mutex::new(Vec::<String>::new()));
    let s = seen.clone();
    std::thread::spawn(move || {
        let mut n = 0u32;
        for conn in listener.incoming() {
            let Ok(conn) = conn else { break };
            let mut r = std::io::BufReader::new(conn.try_clone().unwrap());
            let mut w = conn;
            let mut len = 0usize;
            let mut line = String::new();
            let _ = r.read_line(&mut line);
            loop {
                let mut h = String::new();
                if r.read_line(&mut h).unwrap_or(0) == 0 || h.trim().is_empty() {
                    break;
                }
                if let Some((k, v)) = h.split_once(':')
                    && k.trim().eq_ignore_ascii_case("content-length")
                {
                    len = v.trim().parse().unwrap_or(0);
                }
            }
            let mut body = vec![0; len];
            if r.read_exact(&mut body).is_err() {
                continue;
            }
            let body = String::from_utf8_lossy(&body).into_owned();
            s.lock().unwrap().push(body.clone());
            let id = body
                .split("\"id\":")
                .nth(1)
                .map(|x| x.split([',', '}']).next().unwrap().to_string());
            let answer = match id {
                None => None,
                Some(id) if body.contains("\"initialize\"") => Some(format!(
                    r#"{{"jsonrpc":"2.0","id":{id},"result":{{"protocolVersion":"2025-06-18","capabilities":{{"tools":{{}}}},"serverInfo":{{"name":"mpp-http","version":"1"}}}}}}"#
                )),
                Some(id) if body.contains("org.paymentauth/credential") => {
                    let cid = body
                        .split("\"challenge\":{\"id\":\"")
                        .nth(1)
                        .unwrap()
                        .split('"')
                        .next()
                        .unwrap();
                    Some(format!(
                        r#"{{"jsonrpc":"2.0","id":{id},"result":{{"content":[{{"type":"text","text":"paid result of generate_image"}}],"_meta":{{"org.paymentauth/receipt":{{"status":"success","challengeId":"{cid}","method":"stripe","reference":"pi_1","timestamp":"2026-01-01T00:00:00Z"}}}}}}}}"#
                    ))
                }
                Some(id) => {
                    n += 1;
                    Some(format!(
                        r#"{{"jsonrpc":"2.0","id":{id},"error":{{"code":-32042,"message":"Payment Required","data":{{"httpStatus":402,"challenges":[{{"id":"http-{n}","realm":"r","method":"stripe","intent":"charge","request":{{"amount":"40","currency":"usd","recipient":"acct_1"}}}}]}}}}}}"#
                    ))
                }
            };
            let resp = match answer {
                Some(b) => format!(
                    "HTTP/1.1 200 OK\r\nConnection: close\r\nContent-Type: application/json\r\nContent-Length: {}\r\n\r\n{b}",
                    b.len()
                ),
                None => {
                    "HTTP/1.1 202 Accepted\r\nConnection: close\r\nContent-Length: 0\r\n\r\n".into()
                }
            };
            let _ = w.write_all(resp.as_bytes());
        }
    });
    (port, seen)
}

#[test]
fn a_streamable_http_upstream_is_held_to_the_same_budgets() {
    let (port, seen) = http_mpp_upstream();
    let dir = temp_dir("mpp-http");
    let policy = write_policy(&dir, "paid.yaml", INTERCEPT_POLICY);
    let url = format!("http://127.0.0.1:{port}/mcp");
    let mut p = Proxy::command(
        "mpp-http-proxy",
        &["-c", policy.to_str().unwrap(), "--upstream", &url],
    );
    p.initialize();
    // 0.40 twice fits the daily 1.00 and is paid; the third is denied.
    for id in [1, 3] {
        let c = call(&mut p, id, "{}");
        assert_eq!(error_code(&c), Some(-32042), "{c}");
        let cid = challenge_id(&c);
        assert!(pay(&mut p, id + 1, "{}", &cid).contains("paid result"));
    }
    assert_spend_denied(&call(&mut p, 5, "{}"), "image budget");
    assert_spend_denied(
        &pay(&mut p, 6, "{}", "http-3"),
        "did not check against the budget",
    );
    assert_eq!(p.finish().0, 0);
    // The refused credential never reached the server.
    let credentials = seen
        .lock()
        .unwrap()
        .iter()
        .filter(|b| b.contains("org.paymentauth/credential"))
        .count();
    assert_eq!(credentials, 2);
}
