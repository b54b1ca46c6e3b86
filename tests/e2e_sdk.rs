//! End to end with the official MCP TypeScript SDK client
//! (`tests/e2e/sdk_client.mjs`): the same scenario runs against
//! server-everything directly and through Portcullis, and what the client
//! saw must be identical except where the policy says otherwise. The tap
//! (`tests/e2e/tap.sh`) shows what reached the server; the audit log shows
//! what was decided.
//!
//! The script runs once (about 15 s) and every test below inspects its output.
//! Missing node or server-everything is a failure, never a skip.

mod common;

use std::io::Read;
use std::process::{Command, Stdio};
use std::sync::OnceLock;
use std::time::{Duration, Instant};

use serde_json::Value;

/// What one run of the script produced.
struct Run {
    /// `{direct, proxied, expectedArgsSha256, totalMs}`.
    out: Value,
    /// Every message the server received in the proxied session (tap log), parsed.
    tap: Vec<Value>,
    /// The audit log, raw.
    audit: String,
}

impl Run {
    fn direct(&self) -> &Value {
        &self.out["direct"]
    }

    fn proxied(&self) -> &Value {
        &self.out["proxied"]
    }

    /// The `tools/call` requests the server received.
    fn tap_calls(&self) -> Vec<&Value> {
        self.tap
            .iter()
            .filter(|m| m["method"] == "tools/call")
            .collect()
    }

    /// The audit log's lines, parsed.
    fn audit_lines(&self) -> Vec<Value> {
        self.audit
            .lines()
            .map(|l| {
                serde_json::from_str(l)
                    .unwrap_or_else(|e| panic!("audit line is not JSON ({e}): {l}"))
            })
            .collect()
    }
}

static RUN: OnceLock<Result<Run, String>> = OnceLock::new();

/// Runs the script once per test binary; every test shares the result.
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

fn run_script() -> Run {
    let server = common::server_everything();
    let node = Command::new("node").arg("--version").output();
    assert!(
        node.as_ref().is_ok_and(|o| o.status.success()),
        "node is required for the end-to-end tests and could not be run: {node:?}"
    );
    let dir = common::temp_dir("e2e-sdk");
    let tap = dir.join("server-received.jsonl");
    let audit = dir.join("audit.jsonl");
    let script = common::root().join("tests/e2e/sdk_client.mjs");
    let mut child = Command::new("node")
        .arg(&script)
        .current_dir(common::root())
        .env("PORTCULLIS_BIN", common::portcullis())
        .env("SERVER_JS", &server)
        .env("TAP_SH", common::root().join("tests/e2e/tap.sh"))
        .env("TAP_LOG", &tap)
        .env("AUDIT_LOG", &audit)
        .stdin(Stdio::null())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .expect("start node tests/e2e/sdk_client.mjs");
    let read_all = |mut r: Box<dyn Read + Send>| {
        std::thread::spawn(move || {
            let mut s = String::new();
            let _ = r.read_to_string(&mut s);
            s
        })
    };
    let stdout = read_all(Box::new(child.stdout.take().unwrap()));
    let stderr = read_all(Box::new(child.stderr.take().unwrap()));
    let deadline = Instant::now() + Duration::from_secs(120);
    let status = loop {
        if let Some(s) = child.try_wait().unwrap() {
            break s;
        }
        if Instant::now() > deadline {
            let _ = child.kill();
            let _ = child.wait();
            panic!("the SDK client script did not finish within 120 s");
        }
        std::thread::sleep(Duration::from_millis(50));
    };
    let stdout = stdout.join().unwrap();
    let stderr = stderr.join().unwrap();
    assert!(
        status.success(),
        "the SDK client script failed ({status}):\n{stderr}\n{stdout}"
    );
    let out: Value = serde_json::from_str(stdout.trim()).unwrap_or_else(|e| {
        panic!("script output is not one JSON object ({e}):\n{stdout}\n{stderr}")
    });
    for side in ["direct", "proxied"] {
        assert!(
            out[side]["connectError"].is_null(),
            "{side} session could not connect: {}\n{stderr}",
            out[side]
        );
    }
    let tap_text = std::fs::read_to_string(&tap)
        .unwrap_or_else(|e| panic!("no tap log {}: {e}", tap.display()));
    let tap = tap_text
        .lines()
        .filter(|l| !l.trim().is_empty())
        .map(|l| {
            serde_json::from_str(l).unwrap_or_else(|e| {
                panic!("the server received a line that is not JSON ({e}): {l}")
            })
        })
        .collect();
    let audit = std::fs::read_to_string(&audit)
        .unwrap_or_else(|e| panic!("no audit log {}: {e}", audit.display()));
    let _ = std::fs::remove_dir_all(&dir);
    Run { out, tap, audit }
}

/// `{result: R}` -> R, failing with the recorded error otherwise.
fn result<'a>(step: &'a Value, what: &str) -> &'a Value {
    assert!(step["error"].is_null(), "{what} failed: {}", step["error"]);
    let r = &step["result"];
    assert!(r.is_object(), "{what}: no result in {step}");
    r
}

/// The first text content of a CallToolResult.
fn text(r: &Value) -> &str {
    r["content"][0]["text"]
        .as_str()
        .unwrap_or_else(|| panic!("no text content in {r}"))
}

fn tool_names(session: &Value) -> Vec<&str> {
    result(&session["tools"], "tools/list")["tools"]
        .as_array()
        .expect("tools is an array")
        .iter()
        .map(|t| t["name"].as_str().expect("tool name"))
        .collect()
}

#[test]
fn initialize_is_identical_direct_and_proxied() {
    let run = run();
    let (d, p) = (run.direct(), run.proxied());
    assert_eq!(
        d["serverInfo"]["name"], "mcp-servers/everything",
        "{}",
        d["serverInfo"]
    );
    for key in [
        "serverInfo",
        "serverCapabilities",
        "protocolVersion",
        "instructions",
    ] {
        assert!(!d[key].is_null(), "direct {key} missing");
        assert_eq!(d[key], p[key], "{key} differs through the proxy");
    }
    assert!(d["serverCapabilities"]["tools"].is_object());
    assert!(d["instructions"].as_str().is_some_and(|s| !s.is_empty()));
    assert_eq!(
        d["initializeResult"], p["initializeResult"],
        "the initialize result differs through the proxy"
    );
}

#[test]
fn tools_list_is_identical_minus_the_hidden_tool() {
    let run = run();
    let direct = result(&run.direct()["tools"], "direct tools/list")["tools"]
        .as_array()
        .unwrap();
    let proxied = result(&run.proxied()["tools"], "proxied tools/list")["tools"]
        .as_array()
        .unwrap();
    let names = tool_names(run.direct());
    // The client capabilities took effect: the conditional tools are listed.
    for t in [
        "get-env",
        "echo",
        "get-sum",
        "get-roots-list",
        "trigger-sampling-request",
        "trigger-elicitation-request",
    ] {
        assert!(
            names.contains(&t),
            "server-everything did not list {t}: {names:?}"
        );
    }
    let expected: Vec<&Value> = direct.iter().filter(|t| t["name"] != "get-env").collect();
    let got: Vec<&Value> = proxied.iter().collect();
    assert_eq!(expected.len() + 1, direct.len());
    assert_eq!(
        got.len(),
        expected.len(),
        "proxied tools: {:?}",
        tool_names(run.proxied())
    );
    for (e, g) in expected.iter().zip(&got) {
        assert_eq!(e, g, "tool definition changed through the proxy");
    }
    assert!(!tool_names(run.proxied()).contains(&"get-env"));
}

#[test]
fn allowed_calls_are_answered_identically() {
    let run = run();
    let (d, p) = (run.direct(), run.proxied());
    let echo = result(&p["echo"], "proxied echo");
    assert_eq!(text(echo), "Echo: hello e2e");
    assert_eq!(
        text(result(&p["getSum"], "proxied get-sum")),
        "The sum of 2 and 3 is 5."
    );
    assert_eq!(
        text(result(&p["afterCancel"], "proxied echo after cancel")),
        "Echo: after cancel"
    );
    for key in ["echo", "getSum", "afterCancel"] {
        assert_eq!(
            result(&d[key], key),
            result(&p[key], key),
            "{key} differs through the proxy"
        );
    }
    // An unknown tool is allowed by the default-allow policy and answered by the server.
    let unknown = result(&p["unknownTool"], "proxied no-such-tool");
    assert_eq!(unknown["isError"], true, "{unknown}");
    assert!(!text(unknown).starts_with("[POLICY DENIED]"), "{unknown}");
    assert!(unknown["_meta"].is_null(), "{unknown}");
    assert_eq!(result(&d["unknownTool"], "direct no-such-tool"), unknown);
    assert!(
        run.tap_calls()
            .iter()
            .any(|m| m["params"]["name"] == "no-such-tool"),
        "no-such-tool did not reach the server"
    );
}

#[test]
fn denied_calls_are_answered_by_the_proxy() {
    let run = run();
    let denied = &run.proxied()["denied"];
    let cases = [
        (
            "getSumLarge",
            "get-sum",
            "get-sum is limited to operands up to 1000",
            "small sums only",
            "rule",
        ),
        (
            "gzip",
            "gzip-file-as-resource",
            "gzip-file-as-resource can fetch arbitrary URLs; it is disabled by policy",
            "no remote fetches",
            "rule",
        ),
        (
            "getEnv",
            "get-env",
            "Tool \"get-env\" is hidden by policy",
            "(hidden)",
            "hidden",
        ),
    ];
    for (key, tool, message, rule, outcome) in cases {
        let r = result(&denied[key], key);
        assert_eq!(r["isError"], true, "{key}: {r}");
        assert_eq!(r["content"].as_array().map(Vec::len), Some(1), "{key}: {r}");
        assert_eq!(r["content"][0]["type"], "text");
        assert_eq!(text(r), format!("[POLICY DENIED] {message}"), "{key}");
        let decision = &r["_meta"]["dev.portcullis/decision"];
        assert_eq!(decision["server"], "everything", "{key}: {decision}");
        assert_eq!(decision["tool"], tool, "{key}: {decision}");
        assert_eq!(decision["rule"], rule, "{key}: {decision}");
        assert_eq!(decision["outcome"], outcome, "{key}: {decision}");
        assert!(
            decision["source"]
                .as_str()
                .is_some_and(|s| s.starts_with("policies/default/everything.yaml:")),
            "{key}: {decision}"
        );
        assert!(
            decision["policy_digest"]
                .as_str()
                .is_some_and(|s| s.len() == 64),
            "{key}: {decision}"
        );
    }
}

#[test]
fn denied_calls_never_reach_the_server() {
    let run = run();
    let calls = run.tap_calls();
    let names: Vec<&Value> = calls.iter().map(|m| &m["params"]["name"]).collect();
    // The tap works: the allowed calls are there.
    assert!(
        calls
            .iter()
            .any(|m| m["params"]["name"] == "echo"
                && m["params"]["arguments"]["message"] == "hello e2e"),
        "the allowed echo is not in the tap log: {names:?}"
    );
    assert!(
        calls
            .iter()
            .any(|m| m["params"]["name"] == "get-sum" && m["params"]["arguments"]["a"] == 2)
    );
    assert!(
        !calls
            .iter()
            .any(|m| m["params"]["name"] == "gzip-file-as-resource"),
        "gzip-file-as-resource reached the server"
    );
    assert!(
        !calls.iter().any(|m| m["params"]["name"] == "get-env"),
        "get-env reached the server"
    );
    assert!(
        !calls
            .iter()
            .any(|m| m["params"]["name"] == "get-sum" && m["params"]["arguments"]["a"] == 5000),
        "get-sum a=5000 reached the server"
    );
    // Exactly the allowed calls reached it, in order.
    let allowed: Vec<&Value> = run.proxied()["calls"]
        .as_array()
        .unwrap()
        .iter()
        .filter(|c| !expected_denied(c))
        .map(|c| &c["name"])
        .collect();
    assert_eq!(names, allowed);
}

#[test]
fn progress_notifications_pass_through() {
    let run = run();
    for side in [run.direct(), run.proxied()] {
        let progress = &side["progress"];
        let label = &side["label"];
        assert!(
            text(result(&progress["call"], "long-running operation"))
                .starts_with("Long running operation completed.")
        );
        // The SDK may drop the last notification when it arrives together with the result.
        assert!(
            progress["count"].as_u64().unwrap() >= 2,
            "{label}: {progress}"
        );
        let values = progress["values"].as_array().unwrap();
        let mut last = 0.0;
        for v in values {
            let n = v["progress"].as_f64().unwrap();
            assert!(n > last, "{label}: progress must increase: {progress}");
            last = n;
            assert_eq!(v["total"], 4, "{label}: {progress}");
        }
    }
}

#[test]
fn a_fast_call_overtakes_a_slow_one() {
    let run = run();
    let overlap = &run.proxied()["overlap"];
    assert_eq!(overlap["firstFinished"], "fast", "{overlap}");
    let (fast, slow) = (
        overlap["fastMs"].as_u64().unwrap(),
        overlap["slowMs"].as_u64().unwrap(),
    );
    assert!(fast < 1000 && slow >= 1900 && fast < slow, "{overlap}");
    assert_eq!(
        text(result(&overlap["fast"], "fast echo")),
        "Echo: overtake"
    );
    assert!(
        text(result(&overlap["slow"], "slow call"))
            .starts_with("Long running operation completed.")
    );
    assert_eq!(run.direct()["overlap"]["firstFinished"], "fast");
}

#[test]
fn cancellation_reaches_the_server() {
    let run = run();
    let p = run.proxied();
    let cancel = &p["cancel"];
    assert_eq!(cancel["aborted"], true, "{cancel}");
    assert!(
        cancel["unexpectedResult"].is_null(),
        "the cancelled call completed: {cancel}"
    );
    assert!(cancel["error"].is_object(), "{cancel}");
    let ms = cancel["elapsedMs"].as_u64().unwrap();
    assert!(
        (400..2000).contains(&ms),
        "the abort was not seen quickly: {cancel}"
    );
    let sent = p["cancelledSent"].as_array().unwrap();
    assert_eq!(sent.len(), 1, "the SDK sent {sent:?}");
    let id = &sent[0]["params"]["requestId"];
    let call = run
        .tap_calls()
        .into_iter()
        .find(|m| {
            m["params"]["name"] == "trigger-long-running-operation"
                && m["params"]["arguments"]["duration"] == 5
        })
        .expect("the cancelled call reached the server");
    assert_eq!(&call["id"], id);
    let cancels: Vec<&Value> = run
        .tap
        .iter()
        .filter(|m| m["method"] == "notifications/cancelled")
        .collect();
    assert!(
        cancels.iter().any(|m| &m["params"]["requestId"] == id),
        "notifications/cancelled did not reach the server: {cancels:?}"
    );
    // The session keeps working.
    assert_eq!(
        text(result(&p["afterCancel"], "echo after cancel")),
        "Echo: after cancel"
    );
}

/// MCP: the receiver of a cancellation does not answer the cancelled request.
/// Directly, the client gets nothing for it; through the proxy it must not either.
#[test]
fn a_cancelled_request_gets_no_answer() {
    let run = run();
    assert_eq!(
        run.direct()["receivedAfterCancel"],
        Value::Array(vec![]),
        "server-everything answered a cancelled request"
    );
    assert_eq!(
        run.proxied()["receivedAfterCancel"],
        Value::Array(vec![]),
        "the proxy answered a request the client had cancelled (it keeps it in flight after notifications/cancelled)"
    );
}

#[test]
fn roots_list_is_requested_and_answered_through_the_proxy() {
    let run = run();
    for side in [run.direct(), run.proxied()] {
        assert!(
            side["rootsRequests"].as_u64().unwrap() >= 1,
            "{}: roots/list never requested",
            side["label"]
        );
        assert!(
            side["serverRequests"]
                .as_array()
                .unwrap()
                .iter()
                .any(|m| m == "roots/list")
        );
    }
    let answered = run.tap.iter().any(|m| {
        m["method"].is_null() && m["result"]["roots"][0]["uri"] == "file:///tmp/portcullis-e2e-root"
    });
    assert!(answered, "the roots/list answer did not reach the server");
    // server-everything acknowledges the roots with a log message.
    let logs = run.proxied()["logMessages"].as_array().unwrap();
    assert!(
        logs.iter().any(|l| l["data"]
            .as_str()
            .is_some_and(|s| s.contains("1 root(s) received"))),
        "{logs:?}"
    );
}

/// The policy denies get-sum above 1000, gzip-file-as-resource and the hidden get-env.
fn expected_denied(call: &Value) -> bool {
    match call["name"].as_str().unwrap() {
        "gzip-file-as-resource" | "get-env" => true,
        "get-sum" => {
            call["arguments"]["a"].as_f64().unwrap() > 1000.0
                || call["arguments"]["b"].as_f64().unwrap() > 1000.0
        }
        _ => false,
    }
}

#[test]
fn the_audit_log_records_every_decision_without_values() {
    let run = run();
    let lines = run.audit_lines();
    assert_eq!(
        lines.first().map(|l| &l["type"]),
        Some(&Value::from("startup")),
        "{}",
        run.audit
    );
    assert_eq!(
        lines.last().map(|l| &l["type"]),
        Some(&Value::from("shutdown")),
        "{}",
        run.audit
    );
    let decisions: Vec<&Value> = lines.iter().filter(|l| l["type"] == "tool_call").collect();
    let calls = run.proxied()["calls"].as_array().unwrap();
    assert_eq!(
        decisions.len(),
        calls.len(),
        "one tool_call line per call:\n{}",
        run.audit
    );
    for (call, line) in calls.iter().zip(&decisions) {
        assert_eq!(line["tool"], call["name"], "{line}");
        let effect = if expected_denied(call) {
            "deny"
        } else {
            "allow"
        };
        assert_eq!(line["effect"], effect, "{call} -> {line}");
        assert_eq!(line["server"], "everything");
        let sha = line["args_sha256"]
            .as_str()
            .unwrap_or_else(|| panic!("no args_sha256: {line}"));
        assert!(
            sha.len() == 64 && sha.bytes().all(|b| b.is_ascii_hexdigit()),
            "{line}"
        );
        assert!(line["arguments"].is_null(), "{line}");
    }
    let expected = &run.out["expectedArgsSha256"];
    let echo = decisions.iter().find(|l| l["tool"] == "echo").unwrap();
    assert_eq!(echo["args_sha256"], expected["echoHelloE2e"], "{echo}");
    let get_env = decisions.iter().find(|l| l["tool"] == "get-env").unwrap();
    assert_eq!(get_env["args_sha256"], expected["empty"], "{get_env}");
    for (tool, rule) in [
        ("gzip-file-as-resource", "no remote fetches"),
        ("get-env", "(hidden)"),
    ] {
        let l = decisions.iter().find(|l| l["tool"] == tool).unwrap();
        assert_eq!(l["rule"], rule, "{l}");
    }
    let big_sum = decisions
        .iter()
        .find(|l| l["tool"] == "get-sum" && l["effect"] == "deny")
        .unwrap();
    assert_eq!(big_sum["rule"], "small sums only");
    assert_eq!(
        big_sum["message"],
        "get-sum is limited to operands up to 1000"
    );
    for value in [
        "hello e2e",
        "overtake",
        "after cancel",
        "example.com",
        "x.gz",
    ] {
        assert!(
            !run.audit.contains(value),
            "the audit log contains the argument value {value:?}"
        );
    }
}

/// A well-behaved session through the proxy: no warnings or errors on its stderr,
/// and the SDK client reported no protocol error other than the ones the
/// direct session also has (a progress notification racing its result).
#[test]
fn the_proxied_session_is_clean() {
    let run = run();
    let stderr = run.proxied()["stderr"].as_str().unwrap_or_default();
    let warnings: Vec<&str> = stderr
        .lines()
        .filter(|l| l.starts_with("portcullis warn") || l.starts_with("portcullis error"))
        .collect();
    assert!(warnings.is_empty(), "{warnings:?}\n{stderr}");
    let errors: Vec<&Value> = run.proxied()["clientErrors"]
        .as_array()
        .unwrap()
        .iter()
        .filter(|e| {
            !e.as_str().is_some_and(|e| {
                e.starts_with("Received a progress notification for an unknown token")
            })
        })
        .collect();
    assert!(
        errors.is_empty(),
        "the SDK client reported errors through the proxy: {errors:?}"
    );
}
