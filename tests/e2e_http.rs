//! End to end over HTTP with the official MCP TypeScript SDK client
//! (`tests/e2e/sdk_http_client.mjs`): the real server-everything in its
//! Streamable HTTP mode, directly and through Portcullis three ways:
//! `--upstream URL` (the client on stdio), `--transport http --upstream URL`,
//! and `--transport http -- CMD` (a child process per session). Recording
//! taps show what reached the server (`tests/e2e/http_tap.mjs` in front of
//! the HTTP server, `tests/e2e/tap.sh` in front of the child).
//!
//! The script runs once (about 40 s) and every test below inspects its output.
//! Missing node or server-everything is a failure, never a skip.

mod common;

use std::io::Read;
use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};
use std::sync::OnceLock;
use std::sync::mpsc;
use std::time::{Duration, Instant};

use common::{Out, Terminated, free_port, start_reading, start_until};
use serde_json::Value;

const MINUTE: Duration = Duration::from_secs(60);

/// The URL a `portcullis --transport http` prints.
fn proxy_url(line: &str) -> String {
    line.split_whitespace()
        .find(|w| w.starts_with("http://"))
        .unwrap_or_else(|| panic!("no URL in {line:?}"))
        .to_string()
}

fn tap(target: &str, log: &Path) -> (Terminated, String) {
    let mut cmd = Command::new("node");
    cmd.arg(common::root().join("tests/e2e/http_tap.mjs"))
        .env("TARGET", target)
        .env("TAP_LOG", log);
    let (g, line) = start_until(cmd, Out::Stdout, "listening on", MINUTE);
    let port = line.trim().rsplit(' ').next().unwrap();
    (Terminated(g), format!("http://127.0.0.1:{port}/mcp"))
}

struct Run {
    out: Value,
    /// Requests the server received from `--upstream` (stdio client).
    tap_upstream: Vec<Value>,
    /// Requests the server received from `--transport http --upstream`.
    tap_http: Vec<Value>,
    /// Messages the child of `--transport http -- CMD` received.
    tap_child: Vec<Value>,
    /// Audit logs: the stdio one, the two HTTP proxies'.
    audit: [String; 3],
    /// stderr of the two HTTP proxies.
    proxy_stderr: [String; 2],
}

static RUN: OnceLock<Result<Run, String>> = OnceLock::new();

fn run() -> &'static Run {
    let r = RUN.get_or_init(|| {
        std::panic::catch_unwind(run_script).map_err(|p| {
            p.downcast_ref::<String>()
                .cloned()
                .or_else(|| p.downcast_ref::<&str>().map(|s| s.to_string()))
                .unwrap_or_else(|| "the SDK client run panicked".into())
        })
    });
    match r {
        Ok(run) => run,
        Err(e) => panic!("{e}"),
    }
}

fn read_jsonl(path: &Path) -> Vec<Value> {
    std::fs::read_to_string(path)
        .unwrap_or_else(|e| panic!("no tap log {}: {e}", path.display()))
        .lines()
        .filter(|l| !l.trim().is_empty())
        .map(|l| serde_json::from_str(l).unwrap_or_else(|e| panic!("not JSON ({e}): {l}")))
        .collect()
}

fn run_script() -> Run {
    let server = common::server_everything();
    let dir = common::temp_dir("e2e-http");
    let port = free_port();
    let mut cmd = Command::new("node");
    cmd.arg(&server)
        .arg("streamableHttp")
        .env("PORT", port.to_string());
    let _server = Terminated(start_until(cmd, Out::Stderr, "listening on port", MINUTE).0);
    let direct = format!("http://127.0.0.1:{port}/mcp");

    let tap_upstream_log = dir.join("tap-upstream.jsonl");
    let tap_http_log = dir.join("tap-http.jsonl");
    let tap_child_log = dir.join("tap-child.jsonl");
    let (_tap_a, tap_a) = tap(&format!("http://127.0.0.1:{port}"), &tap_upstream_log);
    let (_tap_b, tap_b) = tap(&format!("http://127.0.0.1:{port}"), &tap_http_log);

    let audit: [PathBuf; 3] = [
        dir.join("audit-upstream.jsonl"),
        dir.join("audit-http.jsonl"),
        dir.join("audit-child.jsonl"),
    ];
    let mut cmd = Command::new(common::portcullis());
    cmd.args([
        "--server",
        "everything",
        "--transport",
        "http",
        "--port",
        "0",
    ])
    .arg("--audit-log")
    .arg(&audit[1])
    .args(["--upstream", &tap_b]);
    let (http_proxy, line, http_err) = start_reading(cmd, Out::Stderr, "listening on", MINUTE);
    let http_proxy = Terminated(http_proxy);
    let http_url = proxy_url(&line);
    let mut cmd = Command::new(common::portcullis());
    cmd.args([
        "--server",
        "everything",
        "--transport",
        "http",
        "--port",
        "0",
    ])
    .arg("--audit-log")
    .arg(&audit[2])
    .arg("--")
    .arg(common::root().join("tests/e2e/tap.sh"))
    .arg(&tap_child_log)
    .arg("node")
    .arg(&server);
    let (child_proxy, line, child_err) = start_reading(cmd, Out::Stderr, "listening on", MINUTE);
    let child_proxy = Terminated(child_proxy);
    let child_url = proxy_url(&line);

    let mut node = Command::new("node")
        .arg(common::root().join("tests/e2e/sdk_http_client.mjs"))
        .current_dir(common::root())
        .env("PORTCULLIS_BIN", common::portcullis())
        .env("DIRECT_URL", &direct)
        .env("TAP_URL", &tap_a)
        .env("AUDIT_LOG", &audit[0])
        .env("HTTP_PROXY_URL", &http_url)
        .env("CHILD_PROXY_URL", &child_url)
        .stdin(Stdio::null())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .expect("start node tests/e2e/sdk_http_client.mjs");
    let read_all = |mut r: Box<dyn Read + Send>| {
        std::thread::spawn(move || {
            let mut s = String::new();
            let _ = r.read_to_string(&mut s);
            s
        })
    };
    let stdout = read_all(Box::new(node.stdout.take().unwrap()));
    let stderr = read_all(Box::new(node.stderr.take().unwrap()));
    let deadline = Instant::now() + Duration::from_secs(300);
    let status = loop {
        if let Some(s) = node.try_wait().unwrap() {
            break s;
        }
        if Instant::now() > deadline {
            let _ = node.kill();
            let _ = node.wait();
            panic!("the SDK client script did not finish within 300 s");
        }
        std::thread::sleep(Duration::from_millis(50));
    };
    let stdout = stdout.join().unwrap();
    let stderr = stderr.join().unwrap();
    assert!(
        status.success(),
        "the SDK client script failed ({status}):\n{stderr}\n{stdout}"
    );
    // Stop the HTTP proxies (SIGTERM: they end their sessions and exit).
    drop(http_proxy);
    drop(child_proxy);
    let drain = |rx: mpsc::Receiver<String>| rx.try_iter().collect::<Vec<_>>().join("\n");
    let proxy_stderr = [drain(http_err), drain(child_err)];
    let out: Value = serde_json::from_str(stdout.trim()).unwrap_or_else(|e| {
        panic!("script output is not one JSON object ({e}):\n{stdout}\n{stderr}")
    });
    for side in SIDES.iter().chain(["direct"].iter()) {
        assert!(
            out[side]["connectError"].is_null(),
            "{side} session could not connect: {}\n{stderr}",
            out[side]
        );
    }
    let read = |p: &Path| std::fs::read_to_string(p).unwrap_or_default();
    let run = Run {
        out,
        tap_upstream: read_jsonl(&tap_upstream_log),
        tap_http: read_jsonl(&tap_http_log),
        tap_child: read_jsonl(&tap_child_log),
        audit: [read(&audit[0]), read(&audit[1]), read(&audit[2])],
        proxy_stderr,
    };
    let _ = std::fs::remove_dir_all(&dir);
    run
}

/// The three proxied sessions.
const SIDES: [&str; 3] = ["upstream", "http", "child"];

fn result<'a>(step: &'a Value, what: &str) -> &'a Value {
    assert!(step["error"].is_null(), "{what} failed: {}", step["error"]);
    let r = &step["result"];
    assert!(r.is_object(), "{what}: no result in {step}");
    r
}

fn text(r: &Value) -> &str {
    r["content"][0]["text"]
        .as_str()
        .unwrap_or_else(|| panic!("no text content in {r}"))
}

/// The JSON-RPC messages a side's server received (POST bodies or child lines).
fn received<'a>(run: &'a Run, side: &str) -> Vec<&'a Value> {
    match side {
        "upstream" => run.tap_upstream.iter().map(|r| &r["body"]).collect(),
        "http" => run.tap_http.iter().map(|r| &r["body"]).collect(),
        "child" => run.tap_child.iter().collect(),
        _ => unreachable!(),
    }
}

#[test]
fn initialize_is_identical_direct_and_proxied() {
    let run = run();
    let d = &run.out["direct"];
    assert_eq!(d["serverInfo"]["name"], "mcp-servers/everything", "{d}");
    for side in SIDES {
        let p = &run.out[side];
        for key in [
            "serverInfo",
            "serverCapabilities",
            "protocolVersion",
            "instructions",
            "initializeResult",
        ] {
            assert!(!d[key].is_null(), "direct {key} missing");
            assert_eq!(d[key], p[key], "{side}: {key} differs through the proxy");
        }
    }
}

#[test]
fn tools_list_is_identical_minus_the_hidden_tool() {
    let run = run();
    let direct = result(&run.out["direct"]["tools"], "direct tools/list")["tools"]
        .as_array()
        .unwrap();
    assert!(direct.iter().any(|t| t["name"] == "get-env"));
    assert!(
        direct
            .iter()
            .any(|t| t["name"] == "trigger-sampling-request")
    );
    let expected: Vec<&Value> = direct.iter().filter(|t| t["name"] != "get-env").collect();
    for side in SIDES {
        let proxied = result(&run.out[side]["tools"], "tools/list")["tools"]
            .as_array()
            .unwrap();
        assert_eq!(
            proxied.iter().collect::<Vec<_>>(),
            expected,
            "{side}: the tool list differs"
        );
    }
}

#[test]
fn allowed_calls_are_answered_exactly_as_directly() {
    let run = run();
    let d = &run.out["direct"];
    for side in SIDES {
        let p = &run.out[side];
        for key in ["echo", "getSum", "unknownTool", "afterCancel", "sampling"] {
            assert_eq!(
                result(&d[key], key),
                result(&p[key], key),
                "{side}: {key} differs through the proxy"
            );
        }
        assert_eq!(text(result(&p["echo"], "echo")), "Echo: hello e2e");
        // The sampling request travelled on the call's own stream while the
        // call was pending, and the client's answer got through.
        assert!(
            text(result(&p["sampling"], "sampling")).contains("sampled by the e2e client"),
            "{side}: {}",
            p["sampling"]
        );
    }
}

#[test]
fn denied_calls_are_answered_by_the_proxy_and_never_reach_the_server() {
    let run = run();
    for side in SIDES {
        let denied = &run.out[side]["denied"];
        for (key, msg) in [
            ("getSumLarge", "get-sum is limited to operands up to 1000"),
            ("gzip", "gzip-file-as-resource can fetch arbitrary URLs"),
            ("getEnv", "Tool \"get-env\" is hidden by policy"),
        ] {
            let r = result(&denied[key], key);
            assert_eq!(r["isError"], true, "{side} {key}: {r}");
            let t = text(r);
            assert!(
                t.starts_with("[POLICY DENIED] ") && t.contains(msg),
                "{side} {key}: {t}"
            );
        }
        let calls: Vec<&Value> = received(run, side)
            .into_iter()
            .filter(|m| m["method"] == "tools/call")
            .collect();
        assert!(
            calls.iter().any(|c| c["params"]["name"] == "echo"),
            "{side}: the tap saw no call at all: {calls:?}"
        );
        for c in &calls {
            let name = c["params"]["name"].as_str().unwrap();
            assert!(
                name != "get-env" && name != "gzip-file-as-resource",
                "{side}: a denied call reached the server: {c}"
            );
            if name == "get-sum" {
                assert!(
                    c["params"]["arguments"]["a"].as_f64().unwrap() <= 1000.0,
                    "{c}"
                );
            }
        }
    }
}

#[test]
fn progress_notifications_arrive_through_the_proxy() {
    let run = run();
    let d = &run.out["direct"]["progress"];
    for side in SIDES {
        let p = &run.out[side]["progress"];
        assert!(
            text(result(&p["call"], "long-running")).contains("Long running operation completed"),
            "{side}: {p}"
        );
        // The last notification may race the result (directly too), so counts may differ by one.
        let (pc, dc) = (p["count"].as_u64().unwrap(), d["count"].as_u64().unwrap());
        assert!(
            pc >= 1 && pc + 1 >= dc,
            "{side}: {pc} progress notifications, {dc} directly"
        );
        let values: Vec<f64> = p["values"]
            .as_array()
            .unwrap()
            .iter()
            .map(|v| v["progress"].as_f64().unwrap())
            .collect();
        assert!(values.windows(2).all(|w| w[0] < w[1]), "{side}: {values:?}");
    }
}

#[test]
fn a_fast_call_overtakes_a_slow_one() {
    let run = run();
    for side in SIDES.iter().chain(["direct"].iter()) {
        let o = &run.out[side]["overlap"];
        assert_eq!(o["firstFinished"], "fast", "{side}: {o}");
        assert_eq!(
            text(result(&o["fast"], "fast echo")),
            "Echo: overtake",
            "{side}"
        );
    }
}

#[test]
fn cancellation_reaches_the_server_and_the_session_goes_on() {
    let run = run();
    for side in SIDES {
        let p = &run.out[side];
        assert!(p["cancel"]["error"].is_object(), "{side}: {}", p["cancel"]);
        assert_eq!(p["receivedAfterCancel"], Value::Array(vec![]), "{side}");
        let sent = &p["cancelledSent"][0]["params"]["requestId"];
        assert!(
            received(run, side)
                .iter()
                .any(|m| m["method"] == "notifications/cancelled"
                    && &m["params"]["requestId"] == sent),
            "{side}: notifications/cancelled did not reach the server"
        );
    }
}

#[test]
fn roots_list_is_requested_and_answered_through_the_proxy() {
    let run = run();
    for side in SIDES {
        let p = &run.out[side];
        assert!(p["rootsRequests"].as_u64().unwrap() >= 1, "{side}: {p}");
        assert!(
            received(run, side).iter().any(|m| m["method"].is_null()
                && m["result"]["roots"][0]["uri"] == "file:///tmp/portcullis-e2e-root"),
            "{side}: the roots/list answer did not reach the server"
        );
    }
}

#[test]
fn sessions_end_with_delete_upstream() {
    let run = run();
    for (side, tap) in [("upstream", &run.tap_upstream), ("http", &run.tap_http)] {
        let sessions: Vec<&Value> = tap
            .iter()
            .filter(|r| r["method"] == "POST")
            .filter_map(|r| r["session"].as_str().map(|_| &r["session"]))
            .collect();
        let session = sessions
            .first()
            .unwrap_or_else(|| panic!("{side}: no request carried a session id"));
        assert!(
            sessions.iter().all(|s| s == session),
            "{side}: one upstream session expected"
        );
        // The MCP-Protocol-Version header travelled too (checked by server-everything,
        // which refuses unsupported versions), and the session was ended.
        assert!(
            tap.iter()
                .any(|r| r["method"] == "DELETE" && &r["session"] == *session),
            "{side}: the upstream session was not deleted: {tap:?}"
        );
        assert!(
            tap.iter().any(|r| r["method"] == "GET"),
            "{side}: the GET stream was never opened"
        );
    }
    for side in ["http", "child"] {
        assert_eq!(
            run.out[side]["terminated"],
            serde_json::json!({"ok": true}),
            "{side}: DELETE of the proxy's session failed"
        );
    }
    assert_eq!(
        run.out["upstream"]["exit"]["code"], 0,
        "{}",
        run.out["upstream"]["exit"]
    );
}

#[test]
fn every_decision_is_audited() {
    let run = run();
    for (i, side) in SIDES.iter().enumerate() {
        let lines: Vec<Value> = run.audit[i]
            .lines()
            .map(|l| serde_json::from_str(l).unwrap())
            .collect();
        let decisions = lines.iter().filter(|l| l["type"] == "tool_call").count();
        let calls = run.out[side]["calls"].as_array().unwrap().len();
        assert_eq!(decisions, calls, "{side}:\n{}", run.audit[i]);
        assert!(
            !run.audit[i].contains("hello e2e"),
            "{side}: an argument value in the audit log"
        );
        // Each line names the MCP session (one per proxy here).
        let sessions: std::collections::BTreeSet<&str> = lines
            .iter()
            .filter(|l| l["type"] == "tool_call")
            .map(|l| l["session"].as_str().unwrap())
            .collect();
        assert_eq!(sessions.len(), 1, "{side}: {sessions:?}");
        assert!(
            sessions.iter().all(|s| s.len() == 16),
            "{side}: {sessions:?}"
        );
    }
}

#[test]
fn the_proxied_sessions_are_clean() {
    let run = run();
    let stderrs = [
        run.out["upstream"]["stderr"].as_str().unwrap_or_default(),
        &run.proxy_stderr[0],
        &run.proxy_stderr[1],
    ];
    for (side, stderr) in SIDES.iter().zip(stderrs) {
        let warnings: Vec<&str> = stderr
            .lines()
            .filter(|l| l.starts_with("portcullis warn") || l.starts_with("portcullis error"))
            .collect();
        assert!(warnings.is_empty(), "{side}: {warnings:?}\n{stderr}");
        // What the SDK client reports against the real server directly is
        // not the proxy's doing: e.g. the cancelled call's stream, primed
        // with an event id (2025-11-25), ends at DELETE without a result, so
        // the client tries to resume it and reports the attempt aborted by
        // its own close(). A proxied side may report those, nothing else.
        let direct: Vec<&str> = run.out["direct"]["clientErrors"]
            .as_array()
            .unwrap()
            .iter()
            .filter_map(Value::as_str)
            .collect();
        let errors: Vec<&Value> = run.out[side]["clientErrors"]
            .as_array()
            .unwrap()
            .iter()
            .filter(|e| {
                !e.as_str().is_some_and(|e| {
                    e.starts_with("Received a progress notification for an unknown token")
                        || direct.contains(&e)
                })
            })
            .collect();
        assert!(
            errors.is_empty(),
            "{side}: the SDK client reported errors: {errors:?}"
        );
    }
}
