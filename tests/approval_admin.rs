//! Human approval, the operator's tools inside the proxy (issue 13): the
//! admin HTTP API (`--admin-api`), the signed webhook announcing new
//! requests, and Intercept's `-32003` answers (`--approval-errors
//! intercept`). The real binary in front of the real server-everything
//! (every byte it receives tapped), requests in a SQLite `--state-dir`.

mod common;

use std::io::{BufRead, BufReader, Read, Write};
use std::net::{TcpListener, TcpStream};
use std::path::Path;
use std::process::Command;
use std::sync::mpsc;
use std::time::{Duration, Instant};

use common::{Proxy, free_port, portcullis, root, temp_dir};

const TOKEN: &str = "admin-token-0123456789abcdef";
const SECRET: &str = "webhook-secret-for-the-test";

/// Intercept's YAML: sums over 100 need a person; `webhook` adds the block.
fn policy(dir: &Path, webhook: Option<&str>) -> String {
    let p = dir.join("everything.yaml");
    let block = match webhook {
        Some(url) => format!(
            "approvals:\n  notify:\n    webhook:\n      url: {url}\n      secret_env: HOOK_SECRET\n"
        ),
        None => String::new(),
    };
    std::fs::write(
        &p,
        format!(
            r#"version: "1"
{block}tools:
  get-sum:
    rules:
      - name: "big sums"
        action: "require_approval"
        conditions:
          - path: "args.a"
            op: "gt"
            value: 100
        on_deny: "Sums over 100 need a human"
        approval_timeout: "10m"
"#
        ),
    )
    .unwrap();
    p.display().to_string()
}

/// One HTTP/1.1 request to the admin API: (status, headers, body).
fn http(
    port: u16,
    method: &str,
    path: &str,
    token: Option<&str>,
    body: &str,
) -> (u16, String, String) {
    let mut s = TcpStream::connect(("127.0.0.1", port)).unwrap();
    s.set_read_timeout(Some(Duration::from_secs(10))).unwrap();
    let auth = token.map_or(String::new(), |t| format!("authorization: Bearer {t}\r\n"));
    write!(
        s,
        "{method} {path} HTTP/1.1\r\nhost: 127.0.0.1\r\n{auth}content-type: application/json\r\ncontent-length: {}\r\nconnection: close\r\n\r\n{body}",
        body.len()
    )
    .unwrap();
    let mut out = String::new();
    s.read_to_string(&mut out).unwrap();
    let (head, body) = out.split_once("\r\n\r\n").unwrap();
    let status = head.split(' ').nth(1).unwrap().parse().unwrap();
    (status, head.to_ascii_lowercase(), body.to_string())
}

fn wait_listening(port: u16) {
    let deadline = Instant::now() + Duration::from_secs(20);
    while TcpStream::connect(("127.0.0.1", port)).is_err() {
        assert!(Instant::now() < deadline, "nothing listens on {port}");
        std::thread::sleep(Duration::from_millis(50));
    }
}

fn proxy(name: &str, policy: &str, dir: &Path, extra: &[&str], env: &[(&str, &str)]) -> Proxy {
    let state = dir.join("state");
    let log = dir.join("decisions.jsonl");
    let mut args = vec![
        "-c",
        policy,
        "--state-dir",
        state.to_str().unwrap(),
        "--audit-log",
        log.to_str().unwrap(),
        "--log-level",
        "error",
    ];
    args.extend_from_slice(extra);
    let mut p = Proxy::everything_env(name, &args, env);
    p.initialize();
    p
}

fn pending_id(answer: &str) -> String {
    assert!(
        answer.contains("[APPROVAL REQUIRED] Sums over 100 need a human (approval apr_"),
        "{answer}"
    );
    let v: serde_json::Value = serde_json::from_str(answer).unwrap();
    v["result"]["_meta"]["dev.portcullis/approval"]["id"]
        .as_str()
        .unwrap()
        .to_string()
}

fn calls(p: &Proxy) -> usize {
    p.server_received()
        .iter()
        .filter(|l| l.contains("\"tools/call\""))
        .count()
}

#[test]
fn the_admin_api_approves_with_the_token_and_the_retry_passes_once() {
    let dir = temp_dir("approval-admin");
    let policy = policy(&dir, None);
    let port = free_port();
    let addr = format!("127.0.0.1:{port}");
    let mut p = proxy(
        "approval-admin-proxy",
        &policy,
        &dir,
        &["--admin-api", &addr, "--admin-token-env", "ADMIN_TOKEN"],
        &[("ADMIN_TOKEN", TOKEN)],
    );
    wait_listening(port);
    let id = pending_id(&p.call(1, "get-sum", r#"{"a":500,"b":1}"#));
    let approve = format!("/approvals/{id}/approve");

    // Without the token, or with a wrong one: 401, and nothing is decided.
    for token in [None, Some("admin-token-0123456789abcdeX"), Some("")] {
        for (method, path) in [("GET", "/approvals"), ("POST", approve.as_str())] {
            let (status, head, body) = http(port, method, path, token, "");
            assert_eq!(status, 401, "{method} {path} {token:?}: {body}");
            assert!(
                head.contains("www-authenticate: bearer realm=\"portcullis-admin\""),
                "{head}"
            );
            assert!(body.contains("Authorization: Bearer"), "{body}");
        }
    }
    let (status, _, body) = http(port, "GET", &format!("/approvals/{id}"), Some(TOKEN), "");
    assert_eq!(status, 200, "{body}");
    let shown: serde_json::Value = serde_json::from_str(&body).unwrap();
    assert_eq!(shown["status"], "pending", "nothing was decided: {body}");
    assert_eq!(shown["arguments"]["a"], 500);
    let held = p.call(2, "get-sum", r#"{"a":500,"b":1}"#);
    assert_eq!(pending_id(&held), id, "still pending");

    // Listing: the pending request, under both names.
    for path in ["/approvals", "/pending", "/approvals?all=1"] {
        let (status, _, body) = http(port, "GET", path, Some(TOKEN), "");
        assert_eq!(status, 200, "{body}");
        let list: Vec<serde_json::Value> = serde_json::from_str(&body).unwrap();
        assert_eq!(list.len(), 1, "{body}");
        assert_eq!(list[0]["id"], id.as_str());
    }

    // Bad requests: malformed id 400, unknown id 404, bad body 400, wrong method 405.
    let (status, _, body) = http(port, "POST", "/approvals/forged/approve", Some(TOKEN), "");
    assert_eq!(status, 400, "{body}");
    assert!(
        body.contains("\"forged\\\" is not an approval id"),
        "{body}"
    );
    let unknown = "apr_0123456789abcdef0123456789abcdef";
    let (status, _, body) = http(
        port,
        "POST",
        &format!("/approvals/{unknown}/deny"),
        Some(TOKEN),
        "",
    );
    assert_eq!(status, 404, "{body}");
    assert!(
        body.contains(&format!("no approval request {unknown}")),
        "{body}"
    );
    let (status, _, body) = http(port, "POST", &approve, Some(TOKEN), r#"{"reason": 5}"#);
    assert_eq!(status, 400, "{body}");
    assert!(body.contains("\\\"reason\\\" must be a string"), "{body}");
    let (status, _, body) = http(port, "POST", &approve, Some(TOKEN), "{not json");
    assert_eq!(status, 400, "{body}");
    let big = format!(r#"{{"reason": "{}"}}"#, "x".repeat(20_000));
    let (status, _, body) = http(port, "POST", &approve, Some(TOKEN), &big);
    assert_eq!(status, 413, "{body}");
    let (status, _, _) = http(port, "GET", &approve, Some(TOKEN), "");
    assert_eq!(status, 405);
    assert_eq!(calls(&p), 0, "nothing forwarded meanwhile");

    // Approved by the API: the retry passes once.
    let (status, _, body) = http(
        port,
        "POST",
        &approve,
        Some(TOKEN),
        r#"{"reason": "checked", "by": "ops-bob"}"#,
    );
    assert_eq!(status, 200, "{body}");
    let decided: serde_json::Value = serde_json::from_str(&body).unwrap();
    assert_eq!(decided["approval"]["status"], "approved");
    assert_eq!(decided["approval"]["decided_by"], "ops-bob");
    assert!(
        decided["message"]
            .as_str()
            .unwrap()
            .starts_with(&format!("Approved {id} (everything/get-sum")),
        "{body}"
    );
    // Deciding again: 409, as the CLI's "already approved".
    let (status, _, body) = http(port, "POST", &format!("/deny/{id}"), Some(TOKEN), "");
    assert_eq!(status, 409, "{body}");
    assert!(body.contains("already approved"), "{body}");

    let ok = p.call(3, "get-sum", r#"{"b":1,"a":500}"#);
    assert!(
        ok.contains("501") && !ok.contains("\"isError\":true"),
        "{ok}"
    );
    assert_eq!(calls(&p), 1);
    let again = pending_id(&p.call(4, "get-sum", r#"{"a":500,"b":1}"#));
    assert_ne!(again, id, "a second retry is asked again");
    assert_eq!(calls(&p), 1);

    // Denied by the API (Intercept's path): the retry is refused with the reason.
    let (status, _, body) = http(
        port,
        "POST",
        &format!("/deny/{again}"),
        Some(TOKEN),
        r#"{"reason":"not now"}"#,
    );
    assert_eq!(status, 200, "{body}");
    let refused = p.call(5, "get-sum", r#"{"a":500,"b":1}"#);
    assert!(
        refused.contains(&format!("(approval {again} denied by admin-api: not now)")),
        "{refused}"
    );
    assert_eq!(calls(&p), 1);

    p.finish();
    // One decision-log line per decision, as `portcullis approvals` writes.
    let log = std::fs::read_to_string(dir.join("decisions.jsonl")).unwrap();
    let decisions: Vec<serde_json::Value> = log
        .lines()
        .map(|l| serde_json::from_str::<serde_json::Value>(l).unwrap())
        .filter(|v| v["type"] == "approval" && (v["stage"] == "approved" || v["stage"] == "denied"))
        .collect();
    assert_eq!(decisions.len(), 2, "{log}");
    assert_eq!(decisions[0]["stage"], "approved");
    assert_eq!(decisions[0]["decided_by"], "ops-bob");
    assert_eq!(decisions[0]["approval_id"], id.as_str());
    assert_eq!(decisions[1]["stage"], "denied");
    assert_eq!(decisions[1]["decided_by"], "admin-api");
}

/// `portcullis -c POLICY ARGS -- true`: the exit code and stderr (start-up errors).
fn start(policy: &str, args: &[&str], env: &[(&str, &str)]) -> (i32, String) {
    let out = Command::new(portcullis())
        .arg("-c")
        .arg(policy)
        .args(args)
        .args(["--", "true"])
        .envs(env.iter().copied())
        .env_remove("ADMIN_TOKEN_UNSET")
        .current_dir(root())
        .output()
        .unwrap();
    (
        out.status.code().unwrap_or(-1),
        String::from_utf8_lossy(&out.stderr).into_owned(),
    )
}

#[test]
fn the_admin_api_and_the_webhook_refuse_to_start_unsafely() {
    let dir = temp_dir("approval-admin-start");
    let plain = policy(&dir, None);
    let env = [("ADMIN_TOKEN", TOKEN)];
    // A non-loopback bind without --admin-api-allow-remote.
    let (code, err) = start(
        &plain,
        &[
            "--admin-api",
            "0.0.0.0:0",
            "--admin-token-env",
            "ADMIN_TOKEN",
        ],
        &env,
    );
    assert_eq!(code, 2, "{err}");
    assert!(
        err.contains("refusing to serve the admin API on 0.0.0.0:0: it is not a loopback address"),
        "{err}"
    );
    assert!(err.contains("--admin-api-allow-remote"), "{err}");
    // No token configured, an unset variable, a short token.
    let (code, err) = start(&plain, &["--admin-api", "127.0.0.1:0"], &env);
    assert_eq!(code, 2, "{err}");
    assert!(err.contains("--admin-api needs a bearer token"), "{err}");
    let (code, err) = start(
        &plain,
        &[
            "--admin-api",
            "127.0.0.1:0",
            "--admin-token-env",
            "ADMIN_TOKEN_UNSET",
        ],
        &env,
    );
    assert_eq!(code, 2, "{err}");
    assert!(err.contains("ADMIN_TOKEN_UNSET, which is not set"), "{err}");
    let (code, err) = start(
        &plain,
        &["--admin-api", "127.0.0.1:0", "--admin-token-env", "SHORT"],
        &[("SHORT", "abc")],
    );
    assert_eq!(code, 2, "{err}");
    assert!(err.contains("at least 16 characters"), "{err}");
    // The webhook's secret_env must be set; plain http only to loopback.
    let hooked = policy(&dir, Some("http://127.0.0.1:9/hook"));
    let (code, err) = start(&hooked, &[], &[]);
    assert_eq!(code, 2, "{err}");
    assert!(
        err.contains("secret_env names HOOK_SECRET, which is not set"),
        "{err}"
    );
    let remote = dir.join("remote");
    std::fs::create_dir_all(&remote).unwrap();
    let remote = policy(&remote, Some("http://hooks.example.com/hook"));
    let (code, err) = start(&remote, &[], &[("HOOK_SECRET", SECRET)]);
    assert_eq!(code, 2, "{err}");
    assert!(err.contains("not a loopback address"), "{err}");
}

/// A webhook receiver: each request's headers and body, answered 200.
fn receiver() -> (u16, mpsc::Receiver<(String, Vec<u8>)>) {
    let l = TcpListener::bind("127.0.0.1:0").unwrap();
    let port = l.local_addr().unwrap().port();
    let (tx, rx) = mpsc::channel();
    std::thread::spawn(move || {
        for conn in l.incoming() {
            let Ok(conn) = conn else { continue };
            let mut r = BufReader::new(conn);
            let mut head = String::new();
            let mut len = 0usize;
            loop {
                let mut line = String::new();
                if r.read_line(&mut line).unwrap_or(0) == 0 {
                    break;
                }
                if line == "\r\n" {
                    break;
                }
                if let Some(v) = line.to_ascii_lowercase().strip_prefix("content-length:") {
                    len = v.trim().parse().unwrap();
                }
                head.push_str(&line);
            }
            let mut body = vec![0; len];
            r.read_exact(&mut body).unwrap();
            let mut conn = r.into_inner();
            let _ = conn.write_all(b"HTTP/1.1 200 OK\r\ncontent-length: 0\r\n\r\n");
            if tx.send((head, body)).is_err() {
                return;
            }
        }
    });
    (port, rx)
}

/// HMAC-SHA256 of `body` with `key`, by the openssl CLI (an implementation
/// independent of the proxy's).
fn openssl_hmac(key: &str, body: &[u8]) -> String {
    let mut child = Command::new("openssl")
        .args(["dgst", "-sha256", "-hmac", key, "-r"])
        .stdin(std::process::Stdio::piped())
        .stdout(std::process::Stdio::piped())
        .spawn()
        .expect("openssl");
    child.stdin.take().unwrap().write_all(body).unwrap();
    let out = child.wait_with_output().unwrap();
    String::from_utf8(out.stdout)
        .unwrap()
        .split_whitespace()
        .next()
        .unwrap()
        .to_string()
}

#[test]
fn the_webhook_gets_each_new_request_signed_once() {
    let dir = temp_dir("approval-webhook");
    let (port, rx) = receiver();
    let policy = policy(&dir, Some(&format!("http://127.0.0.1:{port}/hook")));
    let mut p = proxy(
        "approval-webhook-proxy",
        &policy,
        &dir,
        &[],
        &[("HOOK_SECRET", SECRET)],
    );
    let id = pending_id(&p.call(1, "get-sum", r#"{"a":500,"b":1}"#));
    let (head, body) = rx
        .recv_timeout(Duration::from_secs(15))
        .expect("a webhook POST");
    assert!(head.starts_with("POST /hook HTTP/1.1\r\n"), "{head}");
    let lower = head.to_ascii_lowercase();
    assert!(lower.contains("content-type: application/json"), "{head}");
    let signature = lower
        .lines()
        .find_map(|l| l.strip_prefix("x-portcullis-signature: "))
        .expect("a signature header")
        .trim()
        .to_string();
    assert_eq!(signature, format!("sha256={}", openssl_hmac(SECRET, &body)));
    assert_ne!(
        signature,
        format!("sha256={}", openssl_hmac("another secret", &body))
    );
    let v: serde_json::Value = serde_json::from_slice(&body).unwrap();
    assert_eq!(v["event"], "approval.requested");
    assert_eq!(v["id"], id.as_str());
    assert_eq!(v["server"], "everything");
    assert_eq!(v["tool"], "get-sum");
    assert_eq!(v["arguments"], serde_json::json!({"a": 500, "b": 1}));
    assert_eq!(v["rule"], "big sums");
    assert_eq!(v["message"], "Sums over 100 need a human");
    assert!(v["caller"]["sub"].is_string(), "{v}");
    assert!(v["created"].as_str().unwrap().ends_with('Z'), "{v}");
    assert!(v["expires"].as_str().unwrap() > v["created"].as_str().unwrap());

    // The identical call reuses the request: no second announcement.
    assert_eq!(pending_id(&p.call(2, "get-sum", r#"{"a":500,"b":1}"#)), id);
    // Other arguments: a new request, announced.
    let other = pending_id(&p.call(3, "get-sum", r#"{"a":600,"b":1}"#));
    let (_, body) = rx
        .recv_timeout(Duration::from_secs(15))
        .expect("a second POST");
    let v: serde_json::Value = serde_json::from_slice(&body).unwrap();
    assert_eq!(v["id"], other.as_str());
    assert!(
        rx.recv_timeout(Duration::from_millis(500)).is_err(),
        "one POST per new request"
    );
    assert_eq!(calls(&p), 0);
    p.finish();
}

#[test]
fn a_dead_or_slow_webhook_never_delays_the_refusal() {
    // Dead: nothing listens on the port.
    let dead = free_port();
    // Slow: accepts and answers nothing for 10 s.
    let slow = TcpListener::bind("127.0.0.1:0").unwrap();
    let slow_port = slow.local_addr().unwrap().port();
    std::thread::spawn(move || {
        let mut held = Vec::new();
        for c in slow.incoming().flatten() {
            held.push(c);
            std::thread::sleep(Duration::from_secs(10));
        }
    });
    // Rejecting: answers 400 at once (not retried).
    let rejects = TcpListener::bind("127.0.0.1:0").unwrap();
    let rejects_port = rejects.local_addr().unwrap().port();
    std::thread::spawn(move || {
        for mut c in rejects.incoming().flatten() {
            let mut buf = [0u8; 4096];
            let _ = c.read(&mut buf);
            let _ = c.write_all(
                b"HTTP/1.1 400 Bad Request\r\ncontent-length: 0\r\nconnection: close\r\n\r\n",
            );
        }
    });
    for (name, port, result) in [
        ("dead", dead, Some("failed")),
        ("slow", slow_port, None),
        ("rejects", rejects_port, Some("rejected")),
    ] {
        let dir = temp_dir(&format!("approval-webhook-{name}"));
        let policy = policy(&dir, Some(&format!("http://127.0.0.1:{port}/hook")));
        let metrics = free_port();
        let metrics_addr = format!("127.0.0.1:{metrics}");
        let mut p = proxy(
            &format!("approval-webhook-{name}-proxy"),
            &policy,
            &dir,
            &["--metrics", &metrics_addr],
            &[("HOOK_SECRET", SECRET)],
        );
        for n in 1..=3u64 {
            let started = Instant::now();
            let answer = p.call(n, "get-sum", &format!(r#"{{"a":{},"b":1}}"#, 500 + n));
            let took = started.elapsed();
            pending_id(&answer);
            assert!(
                took < Duration::from_secs(3),
                "{name} webhook: the refusal took {took:?}"
            );
        }
        assert_eq!(calls(&p), 0);
        // Each of the three requests ends as expected, in the background.
        if let Some(result) = result {
            wait_listening(metrics);
            let label = format!("result=\"{result}\"");
            let deadline = Instant::now() + Duration::from_secs(15);
            while metric(metrics, "portcullis_approval_webhook_total", &label) < 3 {
                assert!(Instant::now() < deadline, "{name}: not 3 {result}");
                std::thread::sleep(Duration::from_millis(100));
            }
            assert_eq!(
                metric(
                    metrics,
                    "portcullis_approval_webhook_total",
                    "result=\"delivered\""
                ),
                0
            );
        }
        p.finish();
    }
}

#[test]
fn intercepts_answer_is_a_json_rpc_error_32003() {
    let dir = temp_dir("approval-intercept-errors");
    let policy = policy(&dir, None);
    let mut p = proxy(
        "approval-intercept-errors-proxy",
        &policy,
        &dir,
        &["--approval-errors", "intercept"],
        &[],
    );
    let answer = p.call(7, "get-sum", r#"{"a":500,"b":1}"#);
    let v: serde_json::Value = serde_json::from_str(&answer).unwrap();
    let data = &v["error"]["data"];
    let id = data["approval_id"].as_str().unwrap().to_string();
    let expiry = data["expiry"].as_str().unwrap().to_string();
    assert!(id.starts_with("apr_") && id.len() == 36, "{answer}");
    assert!(expiry.ends_with('Z'), "{answer}");
    assert_eq!(
        v,
        serde_json::json!({
            "jsonrpc": "2.0",
            "id": 7,
            "error": {
                "code": -32003,
                "message": "[INTERCEPT APPROVAL REQUIRED] Sums over 100 need a human",
                "data": {
                    "approval_id": id,
                    "tool": "get-sum",
                    "expiry": expiry,
                    "retryable": true,
                    "human_instructions": format!("A person must approve this call: `portcullis approvals approve {id}` (or deny it: `portcullis approvals deny {id} --reason TEXT`). Then retry the identical call (same tool and arguments): it is forwarded once."),
                }
            }
        })
    );
    // Approved, the retry passes as in the default mode.
    let out = Command::new(portcullis())
        .args(["approvals", "approve", &id, "--state-dir"])
        .arg(dir.join("state"))
        .output()
        .unwrap();
    assert!(out.status.success(), "{out:?}");
    let ok = p.call(8, "get-sum", r#"{"a":500,"b":1}"#);
    assert!(ok.contains("501") && !ok.contains("\"error\""), "{ok}");
    // A call no rule holds is answered as always.
    let small = p.call(9, "get-sum", r#"{"a":5,"b":1}"#);
    assert!(
        small.contains("\"result\"") && small.contains('6'),
        "{small}"
    );
    assert_eq!(calls(&p), 2);
    p.finish();
}

/// `portcullis_approvals_total{event}` and `portcullis_approval_webhook_total{result}`.
fn metric(port: u16, name: &str, label: &str) -> u64 {
    let (status, _, body) = http(port, "GET", "/metrics", None, "");
    assert_eq!(status, 200);
    let needle = format!("{name}{{server=\"everything\",{label}}} ");
    body.lines()
        .find_map(|l| l.strip_prefix(needle.as_str()))
        .unwrap_or_else(|| panic!("no {needle} in\n{body}"))
        .parse()
        .unwrap()
}

#[test]
fn requests_grants_declines_expiries_and_webhooks_are_counted() {
    let dir = temp_dir("approval-admin-metrics");
    let (hook, rx) = receiver();
    let p = dir.join("everything.yaml");
    std::fs::write(
        &p,
        format!(
            r#"version: "1"
approvals:
  notify:
    webhook:
      url: http://127.0.0.1:{hook}/hook
      secret_env: HOOK_SECRET
tools:
  get-sum:
    rules:
      - name: "big sums"
        action: "require_approval"
        conditions:
          - path: "args.a"
            op: "gt"
            value: 100
        on_deny: "Sums over 100 need a human"
      - name: "big b"
        action: "require_approval"
        conditions:
          - path: "args.b"
            op: "gt"
            value: 100
        on_deny: "Big b needs a human"
        approval_timeout: "1s"
"#
        ),
    )
    .unwrap();
    let (admin, metrics) = (free_port(), free_port());
    let (admin_addr, metrics_addr) = (format!("127.0.0.1:{admin}"), format!("127.0.0.1:{metrics}"));
    let mut p = proxy(
        "approval-admin-metrics-proxy",
        p.to_str().unwrap(),
        &dir,
        &[
            "--admin-api",
            &admin_addr,
            "--admin-token-env",
            "ADMIN_TOKEN",
            "--metrics",
            &metrics_addr,
        ],
        &[("ADMIN_TOKEN", TOKEN), ("HOOK_SECRET", SECRET)],
    );
    wait_listening(admin);
    wait_listening(metrics);
    let events = |e: &str| {
        metric(
            metrics,
            "portcullis_approvals_total",
            &format!("event=\"{e}\""),
        )
    };
    for e in [
        "requested",
        "granted",
        "declined",
        "expired",
        "approved",
        "denied",
        "restored",
    ] {
        assert_eq!(events(e), 0, "{e}");
    }
    // Requested, approved, granted.
    let id = pending_id(&p.call(1, "get-sum", r#"{"a":500,"b":1}"#));
    let (status, _, _) = http(
        admin,
        "POST",
        &format!("/approvals/{id}/approve"),
        Some(TOKEN),
        "",
    );
    assert_eq!(status, 200);
    assert!(p.call(2, "get-sum", r#"{"a":500,"b":1}"#).contains("501"));
    // Requested, denied, declined.
    let id = pending_id(&p.call(3, "get-sum", r#"{"a":700,"b":1}"#));
    let (status, _, _) = http(
        admin,
        "POST",
        &format!("/approvals/{id}/deny"),
        Some(TOKEN),
        "",
    );
    assert_eq!(status, 200);
    assert!(
        p.call(4, "get-sum", r#"{"a":700,"b":1}"#)
            .contains("denied by admin-api")
    );
    // Requested, then expired: the identical call after the 1 s timeout.
    let v = p.call(5, "get-sum", r#"{"a":1,"b":500}"#);
    assert!(v.contains("[APPROVAL REQUIRED] Big b needs a human"), "{v}");
    std::thread::sleep(Duration::from_millis(1200));
    let v = p.call(6, "get-sum", r#"{"a":1,"b":500}"#);
    assert!(v.contains("[APPROVAL REQUIRED] Big b needs a human"), "{v}");
    for (e, n) in [
        ("requested", 4),
        ("approved", 1),
        ("granted", 1),
        ("denied", 1),
        ("declined", 1),
        ("expired", 1),
        ("restored", 0),
    ] {
        assert_eq!(events(e), n, "{e}");
    }
    // Four new requests, four deliveries.
    for _ in 0..4 {
        rx.recv_timeout(Duration::from_secs(15))
            .expect("a webhook POST");
    }
    let deadline = Instant::now() + Duration::from_secs(10);
    while metric(
        metrics,
        "portcullis_approval_webhook_total",
        "result=\"delivered\"",
    ) < 4
    {
        assert!(Instant::now() < deadline, "deliveries not counted");
        std::thread::sleep(Duration::from_millis(50));
    }
    for r in ["rejected", "failed", "dropped"] {
        assert_eq!(
            metric(
                metrics,
                "portcullis_approval_webhook_total",
                &format!("result=\"{r}\"")
            ),
            0,
            "{r}"
        );
    }
    p.finish();
    // `status` shows the same counts from the decision log.
    let out = Command::new(portcullis())
        .arg("status")
        .arg("--audit-log")
        .arg(dir.join("decisions.jsonl"))
        .output()
        .unwrap();
    let out = String::from_utf8_lossy(&out.stdout);
    assert!(
        out.contains(
            "Approvals: 1 approved, 1 declined, 1 denied, 1 expired, 1 granted, 4 requested"
        ),
        "{out}"
    );
}

/// A proxy process, ended with SIGTERM (its sessions' servers with it).
struct Running(std::process::Child);

impl Drop for Running {
    fn drop(&mut self) {
        let pid = nix::unistd::Pid::from_raw(self.0.id() as i32);
        let _ = nix::sys::signal::kill(pid, nix::sys::signal::Signal::SIGTERM);
        let deadline = Instant::now() + Duration::from_secs(10);
        while Instant::now() < deadline {
            if let Ok(Some(_)) = self.0.try_wait() {
                return;
            }
            std::thread::sleep(Duration::from_millis(20));
        }
        let _ = self.0.kill();
        let _ = self.0.wait();
    }
}

/// One MCP message POSTed to the Streamable HTTP endpoint: (status, session
/// id header, the JSON-RPC answer whose id is `id`, from JSON or SSE).
fn mcp(port: u16, sid: Option<&str>, body: &str, id: Option<u64>) -> (u16, Option<String>, String) {
    let mut s = TcpStream::connect(("127.0.0.1", port)).unwrap();
    s.set_read_timeout(Some(Duration::from_secs(20))).unwrap();
    let sid_h = sid.map_or(String::new(), |s| format!("mcp-session-id: {s}\r\n"));
    write!(
        s,
        "POST /mcp HTTP/1.1\r\nhost: 127.0.0.1:{port}\r\naccept: application/json, text/event-stream\r\ncontent-type: application/json\r\nmcp-protocol-version: 2025-06-18\r\n{sid_h}content-length: {}\r\nconnection: close\r\n\r\n{body}",
        body.len()
    )
    .unwrap();
    let mut r = BufReader::new(s);
    let mut status_line = String::new();
    r.read_line(&mut status_line).unwrap();
    let status: u16 = status_line.split(' ').nth(1).unwrap().parse().unwrap();
    let mut session = None;
    loop {
        let mut line = String::new();
        if r.read_line(&mut line).unwrap() == 0 || line == "\r\n" {
            break;
        }
        if let Some(v) = line.to_ascii_lowercase().strip_prefix("mcp-session-id:") {
            // Header values keep their case: take it from the original line.
            session = Some(line[line.len() - v.len()..].trim().to_string());
        }
    }
    let Some(id) = id else {
        return (status, session, String::new());
    };
    // The answer: a JSON body, or the SSE event carrying it (chunked or not).
    let needle = format!("\"id\":{id}");
    let mut answer = String::new();
    for line in r.lines() {
        let Ok(line) = line else { break };
        let line = line.strip_prefix("data: ").unwrap_or(&line);
        if line.starts_with('{') && line.contains(&needle) {
            answer = line.to_string();
            break;
        }
    }
    (status, session, answer)
}

#[test]
fn the_operator_flow_over_streamable_http() {
    let dir = temp_dir("approval-admin-http");
    let policy = policy(&dir, None);
    let port = free_port();
    let state = dir.join("state");
    let tap = dir.join("server-received.jsonl");
    let child = Command::new(portcullis())
        .args([
            "-c",
            &policy,
            "--transport",
            "http",
            "--port",
            &port.to_string(),
        ])
        .arg("--state-dir")
        .arg(&state)
        .args(["--log-level", "error", "--"])
        .arg(root().join("tests/e2e/tap.sh"))
        .arg(&tap)
        .arg("node")
        .arg(common::server_everything())
        .current_dir(root())
        .stdin(std::process::Stdio::null())
        .stdout(std::process::Stdio::null())
        .spawn()
        .unwrap();
    let _running = Running(child);
    wait_listening(port);
    let (status, sid, init) = mcp(
        port,
        None,
        r#"{"jsonrpc":"2.0","id":0,"method":"initialize","params":{"protocolVersion":"2025-06-18","capabilities":{},"clientInfo":{"name":"approval-test","version":"1"}}}"#,
        Some(0),
    );
    assert_eq!(status, 200, "{init}");
    let sid = sid.expect("a session id");
    let (status, _, _) = mcp(
        port,
        Some(&sid),
        r#"{"jsonrpc":"2.0","method":"notifications/initialized"}"#,
        None,
    );
    assert_eq!(status, 202);
    let call = |n: u64, args: &str| {
        let (status, _, answer) = mcp(
            port,
            Some(&sid),
            &format!(
                r#"{{"jsonrpc":"2.0","id":{n},"method":"tools/call","params":{{"name":"get-sum","arguments":{args}}}}}"#
            ),
            Some(n),
        );
        assert_eq!(status, 200, "{answer}");
        answer
    };
    let http_calls = || {
        std::fs::read_to_string(&tap)
            .unwrap_or_default()
            .lines()
            .filter(|l| l.contains("\"tools/call\""))
            .count()
    };
    let id = pending_id(&call(1, r#"{"a":500,"b":1}"#));
    assert_eq!(http_calls(), 0, "held: never forwarded");
    let out = Command::new(portcullis())
        .args(["approvals", "approve", &id, "--state-dir"])
        .arg(&state)
        .output()
        .unwrap();
    assert!(out.status.success(), "{out:?}");
    let ok = call(2, r#"{"b":1,"a":500}"#);
    assert!(
        ok.contains("501") && !ok.contains("\"isError\":true"),
        "{ok}"
    );
    assert_eq!(http_calls(), 1);
    let again = pending_id(&call(3, r#"{"a":500,"b":1}"#));
    assert_ne!(again, id, "the approval was used once");
    assert_eq!(http_calls(), 1);
}
