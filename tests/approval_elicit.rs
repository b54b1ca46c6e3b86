//! Human approval in band (issue 13): the proxy asks the MCP client's user
//! with `elicitation/create`. The real binary in front of the real
//! server-everything (every byte it receives tapped), over stdio and
//! Streamable HTTP, with the official TypeScript SDK client and an
//! elicitation handler; and raw JSON lines on the binary's stdin for what
//! no well-behaved client sends (forged and malformed answers, cancellation).

mod common;

use std::ffi::OsStr;

use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};

use std::time::{Duration, Instant};

use common::{
    Guard, Out, Proxy, Terminated, is_denial, root, server_everything, start_until, temp_dir,
};

const MINUTE: Duration = Duration::from_secs(60);

const MESSAGE: &str = "Sums over 100 need a human";

fn policy(dir: &Path, via: &str, timeout: &str) -> String {
    let p = dir.join("everything.policy");
    std::fs::write(
        &p,
        format!(
            r#"server everything {{
  tool get-sum {{
    deny "No negative sums" when args.a < 0
    approve "{MESSAGE}" when args.a > 100 via {via} timeout {timeout}
  }}
}}
"#
        ),
    )
    .unwrap();
    p.display().to_string()
}

/// The `a` argument of every `tools/call` of get-sum the server received
/// (lines of tap.sh: messages; of http_tap.mjs: requests with a `body`).
fn calls_received(tap: &str) -> Vec<i64> {
    tap.lines()
        .filter_map(|l| serde_json::from_str::<serde_json::Value>(l).ok())
        .map(|v| {
            if v.get("body").is_some() {
                v["body"].clone()
            } else {
                v
            }
        })
        .filter(|v| v["method"] == "tools/call")
        .map(|v| v["params"]["arguments"]["a"].as_i64().unwrap())
        .collect()
}

/// Runs tests/e2e/sdk_elicit.mjs with `env`; its JSON report.
fn sdk_client(env: &[(&str, String)]) -> serde_json::Value {
    let out = Command::new("node")
        .arg(root().join("tests/e2e/sdk_elicit.mjs"))
        .current_dir(root())
        .envs(env.iter().map(|(k, v)| (*k, v.as_str())))
        .stdin(Stdio::null())
        .output()
        .expect("node (scripts/deps installs it)");
    assert!(
        out.status.success(),
        "the SDK client failed: {}",
        String::from_utf8_lossy(&out.stderr)
    );
    serde_json::from_slice(&out.stdout)
        .unwrap_or_else(|e| panic!("{e}: {}", String::from_utf8_lossy(&out.stdout)))
}

/// What both transports must show.
fn check_report(report: &serde_json::Value, tap: &str) {
    let steps = report["steps"].as_array().unwrap();
    let step = |name: &str| {
        steps
            .iter()
            .find(|s| s["name"] == name)
            .unwrap_or_else(|| panic!("no step {name}: {report}"))
    };
    // Not matching the rule's condition: no prompt, the real answer.
    let s = step("unmatched");
    assert_eq!(s["prompts"], 0, "{s}");
    assert_eq!(s["isError"], false, "{s}");
    assert!(s["text"].as_str().unwrap().contains('3'), "{s}");
    // Accepted: one prompt, the server's real sum.
    let s = step("accept");
    assert_eq!(s["prompts"], 1, "{s}");
    assert_eq!(s["isError"], false, "{s}");
    assert!(s["text"].as_str().unwrap().contains("501"), "{s}");
    // Every refusal: a denial naming what happened.
    for (name, why) in [
        ("refuse", "the user answered no"),
        ("decline", "the user declined"),
        ("cancel", "the user dismissed the request"),
        ("timeout", "no answer within 1s"),
    ] {
        let s = step(name);
        assert_eq!(s["prompts"], 1, "{s}");
        assert_eq!(s["isError"], true, "{s}");
        assert_eq!(
            s["text"],
            format!("[APPROVAL DECLINED] {MESSAGE} ({why})"),
            "{s}"
        );
        let approval = &s["meta"]["dev.portcullis/approval"];
        assert_eq!(approval["channel"], "client", "{s}");
        assert!(
            approval["elicitation"]
                .as_str()
                .unwrap()
                .starts_with("portcullis-elicit-"),
            "{s}"
        );
        assert_eq!(
            s["meta"]["dev.portcullis/decision"]["outcome"],
            "approval_required"
        );
    }
    let timeout = step("timeout");
    let ms = timeout["ms"].as_u64().unwrap();
    assert!((900..5000).contains(&ms), "timed out after {ms} ms");
    assert_eq!(
        step("timeout")["meta"]["dev.portcullis/approval"]["status"],
        "timed_out"
    );
    let s = step("after");
    assert_eq!(s["isError"], false, "{s}");
    assert!(s["text"].as_str().unwrap().contains('4'), "{s}");

    // What the user was asked, exactly.
    let asked = report["asked"].as_array().unwrap();
    assert_eq!(asked.len(), 5, "{report}");
    let first = &asked[0];
    assert_eq!(
        first["message"],
        format!(
            "Approve a call of everything/get-sum?\n\n{MESSAGE}\n\nArguments:\n{{\n  \"a\": 500,\n  \"b\": 1\n}}\n\nRule: {MESSAGE}"
        ),
        "{first}"
    );
    assert_eq!(
        first["requestedSchema"]["required"],
        serde_json::json!(["approve"])
    );
    assert_eq!(
        first["requestedSchema"]["properties"]["approve"]["type"],
        "boolean"
    );
    // The SDK negotiates 2025-11-25 with server-everything: form mode is named.
    assert_eq!(first["mode"], "form", "{first}");

    // The server got the unmatched calls and the accepted one, once each; no other.
    assert_eq!(calls_received(tap), vec![1, 500, 2], "{tap}");

    // A client without elicitation: the operator flow's refusal with an id.
    let plain = &report["withoutElicitation"];
    assert_eq!(plain["isError"], true, "{plain}");
    let text = plain["text"].as_str().unwrap();
    assert!(
        text.starts_with(&format!("[APPROVAL REQUIRED] {MESSAGE} (approval apr_")),
        "{text}"
    );
    assert_eq!(
        plain["meta"]["dev.portcullis/approval"]["status"],
        "pending"
    );
}

#[test]
fn the_sdk_client_is_asked_over_stdio_and_only_an_approved_call_reaches_the_server() {
    let dir = temp_dir("approval-elicit-stdio");
    let policy = policy(&dir, "client | operator", "1s");
    let tap = dir.join("server-received.jsonl");
    let audit = dir.join("decisions.jsonl");
    let report = sdk_client(&[
        ("TRANSPORT", "stdio".into()),
        ("CAPABILITY", "{}".into()),
        ("PORTCULLIS_BIN", common::portcullis().display().to_string()),
        ("POLICY", policy),
        ("SERVER_JS", server_everything().display().to_string()),
        (
            "TAP_SH",
            root().join("tests/e2e/tap.sh").display().to_string(),
        ),
        ("TAP_LOG", tap.display().to_string()),
        ("AUDIT_LOG", audit.display().to_string()),
    ]);
    check_report(&report, &std::fs::read_to_string(&tap).unwrap_or_default());

    // The decision log: one approval line per step, in order.
    let log = std::fs::read_to_string(&audit).unwrap();
    let approvals: Vec<serde_json::Value> = log
        .lines()
        .map(|l| serde_json::from_str::<serde_json::Value>(l).unwrap())
        .filter(|v| v["type"] == "approval")
        .collect();
    let stages: Vec<&str> = approvals
        .iter()
        .map(|v| v["stage"].as_str().unwrap())
        .collect();
    assert_eq!(
        stages,
        [
            "elicited",
            "granted",
            "elicited",
            "declined",
            "elicited",
            "declined",
            "elicited",
            "cancelled",
            "elicited",
            "timed_out",
            // The second session (no elicitation): the operator flow.
            "requested",
        ],
        "{log}"
    );
    let elicited = &approvals[0];
    assert_eq!(elicited["tool"], "get-sum");
    assert_eq!(elicited["rule"], MESSAGE);
    assert!(
        elicited["approval_id"]
            .as_str()
            .unwrap()
            .starts_with("portcullis-elicit-")
    );
    assert_eq!(approvals[1]["approval_id"], elicited["approval_id"]);
    assert_eq!(approvals[1]["decided_by"], "client");
    assert_eq!(approvals[3]["message"], "the user answered no");
    // The accepted call was decided again as approved and forwarded: an allow line.
    let tool_calls: Vec<serde_json::Value> = log
        .lines()
        .map(|l| serde_json::from_str::<serde_json::Value>(l).unwrap())
        .filter(|v| v["type"] == "tool_call")
        .collect();
    let held = tool_calls
        .iter()
        .find(|v| v["effect"] == "approve")
        .unwrap()["args_sha256"]
        .clone();
    let calls: Vec<&serde_json::Value> = tool_calls
        .iter()
        .filter(|v| v["args_sha256"] == held)
        .collect();
    let effects: Vec<&str> = calls
        .iter()
        .map(|v| v["effect"].as_str().unwrap_or("?"))
        .collect();
    assert_eq!(effects, ["approve", "allow"], "{log}");
}

/// `portcullis --transport http --port 0 -c POLICY -- tap.sh TAP node server-everything`.
struct Endpoint {
    _proxy: Terminated,
    url: String,
    tap: PathBuf,
}

impl Endpoint {
    fn start(dir: &Path, policy: &str) -> Endpoint {
        Endpoint::start_with(dir, policy, None)
    }

    /// With `upstream` (an HTTP MCP server's URL, its own tap) instead of
    /// a tapped child process.
    fn start_with(dir: &Path, policy: &str, upstream: Option<&str>) -> Endpoint {
        let tap = dir.join("server-received.jsonl");
        let (tap_sh, server) = (root().join("tests/e2e/tap.sh"), server_everything());
        let mut args: Vec<&OsStr> = ["-c", policy, "--log-level", "info"]
            .map(OsStr::new)
            .to_vec();
        match upstream {
            Some(u) => args.extend([OsStr::new("--upstream"), OsStr::new(u)]),
            None => args.extend([
                OsStr::new("--"),
                tap_sh.as_os_str(),
                tap.as_os_str(),
                OsStr::new("node"),
                server.as_os_str(),
            ]),
        }
        let (child, url) = common::start_http_endpoint(&args);
        Endpoint {
            _proxy: Terminated(child),
            url,
            tap,
        }
    }
}

#[test]
fn the_sdk_client_is_asked_over_streamable_http_on_the_stream_of_its_call() {
    let dir = temp_dir("approval-elicit-http");
    let policy = policy(&dir, "client | operator", "1s");
    let p = Endpoint::start(&dir, &policy);
    let report = sdk_client(&[
        ("TRANSPORT", "http".into()),
        ("CAPABILITY", r#"{"form":{}}"#.into()),
        ("PROXY_URL", p.url.clone()),
    ]);
    // tee may write the tap file after the server already answered.
    let deadline = Instant::now() + Duration::from_secs(5);
    let tap = loop {
        let tap = std::fs::read_to_string(&p.tap).unwrap_or_default();
        if calls_received(&tap).len() >= 3 || Instant::now() >= deadline {
            break tap;
        }
        std::thread::sleep(Duration::from_millis(20));
    };
    check_report(&report, &tap);
}

// Raw JSON lines on the binary's stdin: what no well-behaved client sends.

/// With a SQLite `--state-dir`: decisions may wait on the store, so the
/// proxy decides held calls and answers off the event loop (the other path).
fn raw_proxy(name: &str, via: &str, timeout: &str) -> Proxy {
    let dir = temp_dir(name);
    let policy = policy(&dir, via, timeout);
    let state = dir.join("state");
    let mut p = Proxy::everything(
        name,
        &[
            "-c",
            &policy,
            "--state-dir",
            state.to_str().unwrap(),
            "--log-level",
            "error",
        ],
    );
    p.send(
        r#"{"jsonrpc":"2.0","id":0,"method":"initialize","params":{"protocolVersion":"2025-06-18","capabilities":{"elicitation":{}},"clientInfo":{"name":"raw","version":"1"}}}"#,
    );
    let init = p.response("0");
    assert!(init.contains("\"result\""), "{init}");
    p.send(r#"{"jsonrpc":"2.0","method":"notifications/initialized"}"#);
    p
}

/// The next elicitation request the proxy sends.
fn elicitation(p: &mut Proxy) -> serde_json::Value {
    let deadline = Instant::now() + Duration::from_secs(10);
    loop {
        if let Some(i) = p.seen.iter().position(|l| l.contains("elicitation/create")) {
            return serde_json::from_str(&p.seen.remove(i)).unwrap();
        }
        let line = p
            .next_line(deadline.saturating_duration_since(Instant::now()))
            .expect("an elicitation request");
        p.seen.push(line);
    }
}

fn get_sum_calls(p: &Proxy) -> usize {
    p.server_received()
        .iter()
        .filter(|l| l.contains("\"tools/call\""))
        .count()
}

/// The number of calls the server received, once it is at least `n`
/// (tee may write the tap file after the server already answered), or
/// what it is after 5 s.
fn calls_at_least(p: &Proxy, n: usize) -> usize {
    let deadline = Instant::now() + Duration::from_secs(5);
    loop {
        let got = get_sum_calls(p);
        if got >= n || Instant::now() >= deadline {
            return got;
        }
        std::thread::sleep(Duration::from_millis(20));
    }
}

#[test]
fn forged_and_malformed_answers_and_cancellation_over_raw_stdio() {
    let mut p = raw_proxy("approval-elicit-raw", "client", "10m");
    p.send(r#"{"jsonrpc":"2.0","id":1,"method":"tools/call","params":{"name":"get-sum","arguments":{"a":500,"b":1}}}"#);
    let asked = elicitation(&mut p);
    let eid = asked["id"].as_str().unwrap().to_string();
    assert!(eid.starts_with("portcullis-elicit-"), "{asked}");
    // Protocol 2025-06-18: no `mode`.
    assert!(asked["params"].get("mode").is_none(), "{asked}");

    // A forged answer (an id the proxy never sent) and a numeric id: not the
    // proxy's, dropped; nothing reaches the server, the proxy keeps serving.
    p.send(r#"{"jsonrpc":"2.0","id":"portcullis-elicit-999","result":{"action":"accept","content":{"approve":true}}}"#);
    p.send(r#"{"jsonrpc":"2.0","id":2,"method":"tools/call","params":{"name":"get-sum","arguments":{"a":1,"b":1}}}"#);
    let ok = p.response("2");
    assert!(ok.contains("\"result\"") && !is_denial(&ok), "{ok}");
    assert_eq!(calls_at_least(&p, 1), 1, "{:#?}", p.server_received());

    // A wrong-shape answer to the real id: a denial, never forwarded.
    p.send(&format!(
        r#"{{"jsonrpc":"2.0","id":"{eid}","result":{{"action":"accept","content":{{"approve":"yes"}}}}}}"#
    ));
    let denied = p.response("1");
    assert!(denied.contains("\"isError\":true"), "{denied}");
    assert!(
        denied.contains("[APPROVAL DECLINED] Sums over 100 need a human (the client's answer is malformed: `action` is accept but `content.approve` is not a boolean)"),
        "{denied}"
    );
    // Replaying the (now settled) answer: dropped, nothing forwarded.
    p.send(&format!(
        r#"{{"jsonrpc":"2.0","id":"{eid}","result":{{"action":"accept","content":{{"approve":true}}}}}}"#
    ));

    // Cancelling the held call withdraws the elicitation: the client gets
    // notifications/cancelled for it, the call gets no answer, nothing forwarded.
    p.send(r#"{"jsonrpc":"2.0","id":3,"method":"tools/call","params":{"name":"get-sum","arguments":{"a":700,"b":1}}}"#);
    let asked = elicitation(&mut p);
    let eid3 = asked["id"].as_str().unwrap().to_string();
    assert_ne!(eid3, eid);
    p.send(r#"{"jsonrpc":"2.0","method":"notifications/cancelled","params":{"requestId":3,"reason":"changed my mind"}}"#);
    let deadline = Instant::now() + Duration::from_secs(10);
    let withdrawn = loop {
        let line = p
            .next_line(deadline.saturating_duration_since(Instant::now()))
            .expect("notifications/cancelled for the elicitation");
        if line.contains("notifications/cancelled") {
            break line;
        }
        p.seen.push(line);
    };
    let v: serde_json::Value = serde_json::from_str(&withdrawn).unwrap();
    assert_eq!(v["params"]["requestId"], eid3.as_str(), "{withdrawn}");
    // A late answer to the withdrawn elicitation: dropped.
    p.send(&format!(
        r#"{{"jsonrpc":"2.0","id":"{eid3}","result":{{"action":"accept","content":{{"approve":true}}}}}}"#
    ));
    // The proxy keeps serving; the id of the withdrawn call is free again.
    p.send(r#"{"jsonrpc":"2.0","id":3,"method":"tools/call","params":{"name":"get-sum","arguments":{"a":3,"b":1}}}"#);
    let ok = p.response("3");
    assert!(ok.contains("\"result\"") && !is_denial(&ok), "{ok}");

    // The server got the two unmatched calls; no held call, no cancellation.
    assert_eq!(calls_at_least(&p, 2), 2, "{:#?}", p.server_received());
    let received = p.server_received();
    assert!(
        !received
            .iter()
            .any(|l| l.contains("notifications/cancelled") || l.contains("portcullis-elicit")),
        "{received:#?}"
    );
    // The held call 1 was answered once (the denial above), the withdrawn
    // call 3 never (its id's first answer is the later call's result).
    assert!(
        !p.seen.iter().any(|l| l.contains("\"id\":1,")),
        "no second answer: {:#?}",
        p.seen
    );
    let (_, stderr) = p.finish();
    assert!(
        stderr.is_empty() || !stderr.contains("panicked"),
        "{stderr}"
    );
}

#[test]
fn a_client_only_rule_refuses_a_client_that_cannot_ask() {
    let dir = temp_dir("approval-elicit-noask");
    let policy = policy(&dir, "client", "10m");
    let mut p = Proxy::everything(
        "approval-elicit-noask",
        &["-c", &policy, "--log-level", "error"],
    );
    p.initialize();
    let refused = p.call(1, "get-sum", r#"{"a":500,"b":1}"#);
    assert!(is_denial(&refused), "{refused}");
    assert!(
        refused.contains("[POLICY DENIED] Sums over 100 need a human (this rule asks the user through the MCP client, and this client cannot ask: it declared no elicitation capability with form mode at initialize)"),
        "{refused}"
    );
    assert!(!refused.contains("apr_"), "no operator request: {refused}");
    assert_eq!(get_sum_calls(&p), 0);
    p.finish();
}

#[test]
fn forged_and_malformed_answers_cancellation_and_json_only_posts_over_raw_http() {
    let dir = temp_dir("approval-elicit-http-raw");
    let policy = policy(&dir, "client | operator", "10m");
    let p = Endpoint::start(&dir, &policy);
    let out = Command::new("node")
        .arg(root().join("tests/e2e/http_elicit_raw.mjs"))
        .current_dir(root())
        .env("PROXY_URL", &p.url)
        .stdin(Stdio::null())
        .output()
        .expect("node (scripts/deps installs it)");
    assert!(
        out.status.success(),
        "the raw client failed: {}",
        String::from_utf8_lossy(&out.stderr)
    );
    let seen: serde_json::Value = serde_json::from_slice(&out.stdout)
        .unwrap_or_else(|e| panic!("{e}: {}", String::from_utf8_lossy(&out.stdout)));

    // The held call's POST is an event stream whose first message is the question.
    assert_eq!(seen["heldContentType"], "text/event-stream", "{seen}");
    let question = &seen["question"];
    assert_eq!(question["method"], "elicitation/create", "{seen}");
    assert_eq!(question["params"]["mode"], "form", "{seen}");
    let eid = question["id"].as_str().unwrap();
    assert!(eid.starts_with("portcullis-elicit-"), "{seen}");
    // Forged, withdrawn-then-late and malformed answers are accepted as
    // messages (202) and consumed by the proxy.
    for k in ["forgedStatus", "cancelStatus", "lateStatus", "badStatus"] {
        assert_eq!(seen[k], 202, "{k}: {seen}");
    }
    // Cancelling the call withdraws the question on its stream, which then ends.
    assert_eq!(
        seen["withdrawn"]["method"], "notifications/cancelled",
        "{seen}"
    );
    assert_eq!(seen["withdrawn"]["params"]["requestId"], eid, "{seen}");
    assert_eq!(seen["afterWithdrawn"]["done"], true, "{seen}");
    // A wrong-shape answer: a denial for the held call on its stream, which ends.
    let bad = &seen["badAnswer"];
    assert_eq!(bad["id"], 2, "{seen}");
    assert_eq!(bad["result"]["isError"], true, "{seen}");
    assert_eq!(
        bad["result"]["content"][0]["text"],
        "[APPROVAL DECLINED] Sums over 100 need a human (the client's answer is malformed: `action` is \"maybe\", not accept, decline or cancel)"
    );
    assert_eq!(seen["afterBad"]["done"], true, "{seen}");
    // A JSON-only POST: refused at once, as JSON.
    assert_eq!(seen["jsonOnlyContentType"], "application/json", "{seen}");
    let j = &seen["jsonOnly"];
    assert_eq!(j["id"], 3, "{seen}");
    assert_eq!(
        j["result"]["content"][0]["text"],
        "[APPROVAL DECLINED] Sums over 100 need a human (the client cannot be asked: its POST accepts no text/event-stream answer)"
    );
    assert_eq!(
        j["result"]["_meta"]["dev.portcullis/approval"]["status"],
        "failed"
    );
    assert!(
        seen["ok"]["result"]["content"][0]["text"]
            .as_str()
            .unwrap()
            .contains('3'),
        "{seen}"
    );
    // The server got the one unmatched call; no held call, no cancellation,
    // no elicitation answer.
    let deadline = Instant::now() + Duration::from_secs(5);
    let tap = loop {
        let tap = std::fs::read_to_string(&p.tap).unwrap_or_default();
        if !calls_received(&tap).is_empty() || Instant::now() >= deadline {
            break tap;
        }
        std::thread::sleep(Duration::from_millis(20));
    };
    assert_eq!(calls_received(&tap), vec![2], "{tap}");
    assert!(
        !tap.contains("notifications/cancelled") && !tap.contains("portcullis-elicit"),
        "{tap}"
    );
}

/// server-everything over Streamable HTTP behind a recording reverse proxy
/// (tests/e2e/http_tap.mjs writing `tap`): the URL to use as `--upstream`.
fn http_everything(tap: &Path) -> (Guard, Guard, String) {
    let port = common::free_port();
    let mut cmd = Command::new("node");
    cmd.arg(server_everything())
        .arg("streamableHttp")
        .env("PORT", port.to_string());
    let (server, _) = start_until(cmd, Out::Stderr, "listening on port", MINUTE);
    let mut cmd = Command::new("node");
    cmd.arg(root().join("tests/e2e/http_tap.mjs"))
        .env("TARGET", format!("http://127.0.0.1:{port}"))
        .env("TAP_LOG", tap);
    let (tapper, line) = start_until(cmd, Out::Stdout, "listening on", MINUTE);
    let tap_port = line.trim().rsplit(' ').next().unwrap().to_string();
    (
        Guard(server),
        Guard(tapper),
        format!("http://127.0.0.1:{tap_port}/mcp"),
    )
}

/// Reads `tap` once it has at least `n` calls (or after 5 s).
fn tap_with(tap: &Path, n: usize) -> String {
    let deadline = Instant::now() + Duration::from_secs(5);
    loop {
        let text = std::fs::read_to_string(tap).unwrap_or_default();
        if calls_received(&text).len() >= n || Instant::now() >= deadline {
            return text;
        }
        std::thread::sleep(Duration::from_millis(20));
    }
}

#[test]
fn the_sdk_client_is_asked_in_front_of_an_http_upstream_over_stdio_and_streamable_http() {
    let dir = temp_dir("approval-elicit-upstream");
    let policy = policy(&dir, "client | operator", "1s");

    // A stdio client, the server over HTTP (`portcullis --upstream URL`).
    let tap = dir.join("upstream-stdio.jsonl");
    let (_server, _tapper, upstream) = http_everything(&tap);
    let report = sdk_client(&[
        ("TRANSPORT", "stdio".into()),
        ("CAPABILITY", "{}".into()),
        ("PORTCULLIS_BIN", common::portcullis().display().to_string()),
        ("POLICY", policy.clone()),
        ("UPSTREAM", upstream),
        ("AUDIT_LOG", dir.join("stdio.jsonl").display().to_string()),
    ]);
    check_report(&report, &tap_with(&tap, 3));

    // A Streamable HTTP client, the server over HTTP (the held call's
    // stream carries the upstream's answer once approved).
    let tap = dir.join("upstream-http.jsonl");
    let (_server, _tapper, upstream) = http_everything(&tap);
    let sub = dir.join("http");
    std::fs::create_dir_all(&sub).unwrap();
    let p = Endpoint::start_with(&sub, &policy, Some(&upstream));
    let report = sdk_client(&[
        ("TRANSPORT", "http".into()),
        ("CAPABILITY", "{}".into()),
        ("PROXY_URL", p.url.clone()),
    ]);
    check_report(&report, &tap_with(&tap, 3));
}

/// Resources and prompts held for approval over Streamable HTTP, with the
/// official SDK client: its user is asked on the stream of the request;
/// accepted, the read is forwarded; declined, the prompt is refused with
/// -32003; a client that cannot ask gets the operator flow's pending
/// approval in the error's data. Only the approved read reaches the server.
#[test]
fn the_sdk_client_is_asked_about_resources_and_prompts_over_streamable_http() {
    let dir = temp_dir("approval-elicit-surfaces-http");
    let policy = dir.join("everything.policy");
    std::fs::write(
        &policy,
        r#"server everything {
  resource "demo://resource/static/document/*" {
    approve "Documents need a human" via client | operator timeout 10m
  }
  prompt args-prompt {
    approve "Paris needs a human" when args.city == "Paris" timeout 10m
  }
}
"#,
    )
    .unwrap();
    let p = Endpoint::start(&dir, policy.to_str().unwrap());
    let doc = "demo://resource/static/document/architecture.md";
    let out = Command::new("node")
        .arg(root().join("tests/e2e/sdk_elicit_surfaces.mjs"))
        .current_dir(root())
        .env("PROXY_URL", &p.url)
        .env("RESOURCE", doc)
        .stdin(Stdio::null())
        .output()
        .expect("node (scripts/deps installs it)");
    assert!(
        out.status.success(),
        "the SDK client failed: {}",
        String::from_utf8_lossy(&out.stderr)
    );
    let r: serde_json::Value = serde_json::from_slice(&out.stdout)
        .unwrap_or_else(|e| panic!("{e}: {}", String::from_utf8_lossy(&out.stdout)));
    // Asked twice, naming what is requested.
    let asked = r["asked"].as_array().unwrap();
    assert_eq!(asked.len(), 2, "{r}");
    assert!(
        asked[0]["message"]
            .as_str()
            .unwrap()
            .contains(&format!("everything/resource:{doc}")),
        "{r}"
    );
    assert!(
        asked[1]["message"]
            .as_str()
            .unwrap()
            .contains("everything/prompt:args-prompt"),
        "{r}"
    );
    // Accepted: the document itself.
    assert!(r["read"]["contents"][0]["text"].is_string(), "{r}");
    // Declined: refused as a JSON-RPC error.
    assert_eq!(r["prompt"]["error"]["code"], -32003, "{r}");
    assert!(
        r["prompt"]["error"]["message"]
            .as_str()
            .unwrap()
            .contains("[APPROVAL DECLINED] Paris needs a human (the user declined)"),
        "{r}"
    );
    // Without elicitation: the operator flow, an approval id in `data`.
    assert_eq!(r["plain"]["error"]["code"], -32003, "{r}");
    let a = &r["plain"]["error"]["data"]["dev.portcullis/approval"];
    assert_eq!(a["status"], "pending", "{r}");
    assert!(a["id"].as_str().unwrap().starts_with("apr_"), "{r}");
    // The server got the approved read only.
    let deadline = Instant::now() + Duration::from_secs(5);
    let tap = loop {
        let tap = std::fs::read_to_string(&p.tap).unwrap_or_default();
        if tap.contains("resources/read") || Instant::now() >= deadline {
            break tap;
        }
        std::thread::sleep(Duration::from_millis(20));
    };
    assert_eq!(tap.matches("\"resources/read\"").count(), 1, "{tap}");
    assert!(!tap.contains("Paris"), "{tap}");
}
