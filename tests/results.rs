//! Result rules end to end (docs/results.md): the real binary in front of the
//! real `@modelcontextprotocol/server-everything` (and a small server on the
//! real MCP SDK for `structuredContent`), over real pipes. Each built-in
//! secret format echoed back is redacted (or the answer withheld, as the
//! policy says); a clean 1 MiB answer passes byte for byte; a too-large
//! answer is refused; the decision log and metrics name the patterns, never
//! the secrets.

mod common;

use std::io::{BufRead, BufReader, Write};
use std::net::TcpListener;
use std::process::{Command, Stdio};

use common::{
    Proxy, everything_http, http_endpoint, http_post, message_of, root, scrape, server_everything,
};
use portcullis_core::secrets::{Action, BUILTINS, Scanner};
use serde_json::{Value, json};

fn write(dir: &std::path::Path, name: &str, text: &str) -> String {
    let path = dir.join(name);
    std::fs::write(&path, text).unwrap();
    path.display().to_string()
}

fn call_line(id: u64, tool: &str, args: Value) -> String {
    json!({"jsonrpc":"2.0","id":id,"method":"tools/call","params":{"name":tool,"arguments":args}})
        .to_string()
}

fn call(p: &mut Proxy, id: u64, tool: &str, args: Value) -> Value {
    p.send(&call_line(id, tool, args));
    serde_json::from_str(&p.response(&id.to_string())).unwrap()
}

/// The exact secret the built-in `name` finds in `text`.
fn secret_in(text: &str) -> String {
    let s = Scanner::new(Some(Action::Redact), &[]).unwrap();
    let mut out = Vec::new();
    s.scan(text.as_bytes(), |f| {
        out.push(text[f.start..f.end].to_string())
    });
    assert_eq!(out.len(), 1, "{text}");
    out.remove(0)
}

fn text_of(answer: &Value) -> String {
    answer["result"]["content"][0]["text"]
        .as_str()
        .unwrap_or_else(|| panic!("no text in {answer}"))
        .to_string()
}

const POLICY: &str = r#"version: "1"
description: result rules over server-everything
default: allow
tools: {}
results:
  all:
    redact: secrets
  tools:
    get-env:
      deny: secrets
      message: "get-env answers may not carry credentials"
    get-sum:
      max_bytes: 32
"#;

#[test]
fn every_builtin_format_is_redacted_and_the_log_names_only_patterns() {
    let dir = common::temp_dir("results-redact");
    let policy = write(&dir, "everything.yaml", POLICY);
    let audit = dir.join("audit.jsonl");
    let port = TcpListener::bind("127.0.0.1:0")
        .unwrap()
        .local_addr()
        .unwrap()
        .port();
    let metrics = format!("127.0.0.1:{port}");
    let mut p = Proxy::everything_env(
        "results-redact",
        &[
            "-c",
            &policy,
            "--audit-log",
            audit.to_str().unwrap(),
            "--metrics",
            &metrics,
            "--log-level",
            "warn",
        ],
        &[("GITHUB_TOKEN", "ghp_16C7e42F292c6912E7710c838347Ae178B4a")],
    );
    p.initialize();
    let mut secrets = Vec::new();
    for (i, b) in BUILTINS.iter().enumerate() {
        let secret = secret_in(b.example);
        let answer = call(&mut p, i as u64 + 1, "echo", json!({"message": b.example}));
        let text = text_of(&answer);
        assert!(
            text.contains(&format!("[REDACTED:{}]", b.name)) && !text.contains(&secret),
            "{}: {text}",
            b.name
        );
        assert_eq!(
            answer["result"]["_meta"]["dev.portcullis/redactions"],
            json!([{"rule": b.name, "action": "redact", "count": 1}]),
            "{answer}"
        );
        secrets.push(secret);
    }
    // The environment holds a GitHub token: get-env's rule withholds the answer.
    let env = call(&mut p, 100, "get-env", json!({}));
    assert_eq!(env["result"]["isError"], json!(true), "{env}");
    assert_eq!(
        text_of(&env),
        "[POLICY DENIED] get-env answers may not carry credentials (github-token)"
    );
    let meta = &env["result"]["_meta"]["dev.portcullis/result"];
    assert_eq!(meta["rule"], json!("results.tools.get-env"));
    assert!(
        meta["source"].as_str().unwrap().ends_with(":10:7"),
        "{meta}"
    );
    assert!(!env.to_string().contains("ghp_16C7e42F"), "{env}");
    // A clean answer passes untouched; get-sum's answers may be 64 bytes at most.
    let clean = call(&mut p, 101, "echo", json!({"message": "nothing to see"}));
    assert_eq!(text_of(&clean), "Echo: nothing to see");
    assert!(clean["result"].get("_meta").is_none(), "{clean}");
    let sum = call(&mut p, 102, "get-sum", json!({"a": 1, "b": 2}));
    assert_eq!(sum["result"]["isError"], json!(true), "{sum}");
    assert!(
        text_of(&sum).contains("more than the 32 bytes the policy allows (results.tools.get-sum)"),
        "{sum}"
    );

    let body = scrape(port);
    assert!(
        body.contains(r#"portcullis_result_findings_total{server="everything",rule="github-token",action="redact"} 1"#)
            && body.contains(r#"portcullis_result_findings_total{server="everything",rule="github-token",action="deny"} 1"#)
            && body.contains(r#"portcullis_result_findings_total{server="everything",rule="max-bytes",action="deny"} 1"#),
        "{body}"
    );
    let (code, _) = p.finish();
    assert_eq!(code, 0);
    let log = std::fs::read_to_string(&audit).unwrap();
    let results: Vec<Value> = log
        .lines()
        .map(|l| serde_json::from_str::<Value>(l).unwrap())
        .filter(|e| e["type"] == "result")
        .collect();
    assert_eq!(results.len(), BUILTINS.len() + 2, "{log}");
    assert_eq!(results[0]["tool"], json!("echo"));
    assert_eq!(results[0]["rule"], json!("results.all"));
    assert_eq!(results[0]["action"], json!("redact"));
    assert_eq!(
        results[BUILTINS.len()]["findings"],
        json!([{"pattern": "github-token", "action": "deny", "count": 1}])
    );
    for s in &secrets {
        assert!(!log.contains(s.as_str()), "the log holds a secret: {s}");
    }
    assert!(!log.contains("ghp_16C7e42F"));
    // `portcullis status` counts them.
    let (code, out) = portcullis(&["status", "--audit-log", audit.to_str().unwrap()]);
    assert_eq!(code, 0, "{out}");
    assert!(
        out.contains(&format!(
            "Answers changed by result rules: {} redacted, 2 withheld",
            BUILTINS.len()
        )) && !out.contains("skipped"),
        "{out}"
    );
}

#[test]
fn deny_withholds_every_format_and_escaped_secrets_are_found() {
    let dir = common::temp_dir("results-deny");
    let policy = write(
        &dir,
        "everything.policy",
        "server everything {\n  results for echo {\n    deny secrets\n  }\n}\n",
    );
    let mut p = Proxy::everything("results-deny", &["-c", &policy, "--log-level", "warn"]);
    p.initialize();
    for (i, b) in BUILTINS.iter().enumerate() {
        let answer = call(&mut p, i as u64 + 1, "echo", json!({"message": b.example}));
        assert_eq!(answer["result"]["isError"], json!(true), "{answer}");
        assert_eq!(
            text_of(&answer),
            format!(
                "[POLICY DENIED] the answer from echo was withheld: it holds a secret ({})",
                b.name
            )
        );
    }
    // The server escapes what it sends as JSON requires; a secret written
    // with escapes it keeps (`\/` in a key's base64) is still found.
    let escaped = r#"{"jsonrpc":"2.0","id":50,"method":"tools/call","params":{"name":"echo","arguments":{"message":"aws_secret_access_key = wJalrXUtnFEMI\/K7MDENG\/bPxRfiCYEXAMPLEKEY"}}}"#;
    p.send(escaped);
    let answer: Value = serde_json::from_str(&p.response("50")).unwrap();
    assert_eq!(answer["result"]["isError"], json!(true), "{answer}");
    p.finish();
}

#[test]
fn a_secret_in_structured_content_is_redacted_there_and_in_the_text() {
    let dir = common::temp_dir("results-structured");
    let policy = write(
        &dir,
        "structured.yaml",
        "version: \"1\"\nresults:\n  tools:\n    lookup:\n      redact: secrets\n",
    );
    let server = root().join("tests/e2e/structured_server.mjs");
    let mut p = Proxy::command_env(
        "results-structured",
        &[
            "-c",
            &policy,
            "--log-level",
            "warn",
            "--",
            "node",
            server.to_str().unwrap(),
        ],
        &[("LOOKUP_SECRET", "sk_live_4eC39HqLyjWDarjtT1zdp7dc")],
    );
    p.initialize();
    let answer = call(&mut p, 1, "lookup", json!({"service": "billing"}));
    let r = &answer["result"];
    assert_eq!(
        r["structuredContent"]["config"]["token"],
        json!("[REDACTED:stripe-key]"),
        "{answer}"
    );
    assert_eq!(
        r["structuredContent"]["config"]["url"],
        json!("https://billing.example.com/")
    );
    assert!(
        text_of(&answer).contains(r#"\"token\":\"[REDACTED:stripe-key]\""#)
            || text_of(&answer).contains(r#""token":"[REDACTED:stripe-key]""#),
        "{answer}"
    );
    assert!(!answer.to_string().contains("sk_live_4eC39"), "{answer}");
    assert_eq!(
        r["_meta"]["dev.portcullis/redactions"],
        json!([{"rule": "stripe-key", "action": "redact", "count": 2}])
    );
    p.finish();
}

/// The answer line server-everything writes for `line`, run directly.
fn direct_answer(line: &str) -> String {
    let mut child = Command::new("node")
        .arg(server_everything())
        .current_dir(root())
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .stderr(Stdio::null())
        .spawn()
        .unwrap();
    let mut stdin = child.stdin.take().unwrap();
    writeln!(stdin, r#"{{"jsonrpc":"2.0","id":"init","method":"initialize","params":{{"protocolVersion":"2025-06-18","capabilities":{{}},"clientInfo":{{"name":"portcullis-tests","version":"1"}}}}}}"#).unwrap();
    writeln!(
        stdin,
        r#"{{"jsonrpc":"2.0","method":"notifications/initialized"}}"#
    )
    .unwrap();
    writeln!(stdin, "{line}").unwrap();
    let mut out = String::new();
    for l in BufReader::new(child.stdout.take().unwrap()).lines() {
        let l = l.unwrap();
        if l.contains(r#""id":7"#) {
            out = l;
            break;
        }
    }
    drop(stdin);
    let _ = child.kill();
    let _ = child.wait();
    out
}

#[test]
fn a_clean_mebibyte_passes_byte_for_byte_and_a_size_limit_refuses() {
    let dir = common::temp_dir("results-large");
    let policy = write(
        &dir,
        "everything.policy",
        "server everything {\n  results { redact secrets }\n  results for get-sum { max 40 }\n}\n",
    );
    // 1 MiB of clean text, with the escapes JSON needs on every line.
    let line = "the quick brown fox \"jumps\" over\tthe lazy dog 0123456789\n";
    let message: String = line.repeat((1 << 20) / line.len() + 1);
    let request = call_line(7, "echo", json!({"message": message}));
    let direct = direct_answer(&request);
    assert!(direct.len() > 1 << 20, "{}", direct.len());
    let mut p = Proxy::everything("results-large", &["-c", &policy, "--log-level", "warn"]);
    p.initialize();
    p.send(&request);
    let proxied = p.response("7");
    assert!(proxied == direct, "the clean answer changed on its way");
    // max 40: get-sum's answer is larger.
    let sum = call(&mut p, 8, "get-sum", json!({"a": 1, "b": 2}));
    assert_eq!(sum["result"]["isError"], json!(true), "{sum}");
    assert!(
        text_of(&sum).starts_with("[POLICY DENIED] the answer from get-sum is "),
        "{sum}"
    );
    p.finish();
}

#[test]
fn answers_over_streamable_http_sse_are_checked_too() {
    let (_server, url) = everything_http();
    let dir = common::temp_dir("results-http");
    let policy = write(
        &dir,
        "everything.policy",
        "server everything {\n  results { redact secrets }\n  results for get-env { deny secrets }\n}\n",
    );
    let mut p = Proxy::command(
        "results-http",
        &["-c", &policy, "--log-level", "warn", "--upstream", &url],
    );
    p.initialize();
    let answer = call(
        &mut p,
        1,
        "echo",
        json!({"message": "token xoxb-17653672481-19874698323-pdFZKVeTuE8sk7oOcBrzbqgy"}),
    );
    assert_eq!(
        text_of(&answer),
        "Echo: token [REDACTED:slack-token]",
        "{answer}"
    );
    let clean = call(&mut p, 2, "echo", json!({"message": "hello"}));
    assert_eq!(text_of(&clean), "Echo: hello");
    p.finish();
}

fn portcullis(args: &[&str]) -> (i32, String) {
    let out = Command::new(common::portcullis())
        .args(args)
        .current_dir(root())
        .output()
        .unwrap();
    (
        out.status.code().unwrap_or(-1),
        String::from_utf8_lossy(&out.stdout).into_owned() + &String::from_utf8_lossy(&out.stderr),
    )
}

#[test]
fn tests_as_data_and_explain_cover_result_rules() {
    let (code, out) = portcullis(&["test", "tests/fixtures/results"]);
    assert_eq!(code, 0, "{out}");
    assert!(out.contains("test result: ok. 4 passed; 0 failed"), "{out}");
    // Coverage counts the result rules a `result:` case exercised: all of
    // the tested policy's (resource rules included; the derived rule for
    // unnormalised URIs is left out), none of the two policies without a
    // test file.
    let (_, out) = portcullis(&["test", "--coverage", "tests/fixtures/results"]);
    assert!(
        out.contains("coverage: 7 of 21 rules and conditions evaluated")
            && out.contains("results-intercept.yaml:29:7  result rule results.resources.\\.env$ never checked an answer")
            && out.contains("results-intercept.yaml:14:7  result rule results.tools.read_file never checked an answer")
            && !out.contains("results-dsl.policy:"),
        "{out}"
    );
    let (code, out) = portcullis(&[
        "explain",
        "-c",
        "tests/fixtures/results/results-dsl.policy",
        "--tool",
        "read_file",
    ]);
    assert_eq!(code, 0, "{out}");
    assert!(
        out.contains("answer   checked by results for read_file (tests/fixtures/results/results-dsl.policy:8:15): deny secrets; redact /EMP-[0-9]{6}/ (employee-id); max 64 KiB"),
        "{out}"
    );
    // A resource's answer: the rule of the normalised URI; a URI that cannot
    // be normalised (forwarded: the policy has no resource request rules)
    // gets the strictest combination.
    let (code, out) = portcullis(&[
        "explain",
        "-c",
        "tests/fixtures/results/results-dsl.policy",
        "--resource",
        "FILE:///tmp/../etc/passwd",
    ]);
    assert_eq!(code, 0, "{out}");
    assert!(
        out.contains("answer   checked by results for resource file:///etc/* (tests/fixtures/results/results-dsl.policy:20:24): deny secrets; max 1 MiB"),
        "{out}"
    );
    let (code, out) = portcullis(&[
        "explain",
        "-c",
        "tests/fixtures/results/results-dsl.policy",
        "--resource",
        "file:///etc%2Fpasswd",
    ]);
    assert_eq!(code, 0, "{out}");
    assert!(
        out.contains("cannot be normalised")
            && out.contains("answer   checked by results for unnormalised resource URIs (tests/fixtures/results/results-dsl.policy:20:24): deny secrets; max 512 bytes"),
        "{out}"
    );
    // A test expecting the wrong thing fails with both sides shown.
    let dir = common::temp_dir("results-test-fail");
    std::fs::copy(
        root().join("tests/fixtures/results/results-dsl.policy"),
        dir.join("results-dsl.policy"),
    )
    .unwrap();
    write(
        &dir,
        "results-dsl.test.yaml",
        "cases:\n  - name: wrong\n    calls:\n      - tool: echo\n        result: {content: [{type: text, text: \"AKIAIOSFODNN7EXAMPLE\"}]}\n        expect: pass\n",
    );
    let (code, out) = portcullis(&["test", dir.to_str().unwrap()]);
    assert_ne!(code, 0, "{out}");
    assert!(
        out.contains("expected  pass")
            && out.contains("got       redact (by results: aws-access-key-id x1)"),
        "{out}"
    );
}

#[test]
fn resources_read_answers_are_checked_when_a_rule_names_resources() {
    let dir = common::temp_dir("results-resources");
    let policy = write(
        &dir,
        "everything.yaml",
        r#"version: "1"
results:
  resources:
    "demo://resource/static/document/*":
      max_bytes: 100
    "demo://resource/*":        # `*` stays within one segment: no resource below
      max_bytes: 10
    'dynamic/text/[0-9]+$':
      match: regex
      patterns:
        - {name: resource-id, regex: "Resource [0-9]+", action: redact}
"#,
    );
    let mut p = Proxy::everything("results-resources", &["-c", &policy, "--log-level", "warn"]);
    p.initialize();
    let read = |p: &mut Proxy, id: u64, uri: &str| -> Value {
        p.send(
            &json!({"jsonrpc":"2.0","id":id,"method":"resources/read","params":{"uri":uri}})
                .to_string(),
        );
        serde_json::from_str(&p.response(&id.to_string())).unwrap()
    };
    // A document larger than 100 bytes: withheld with a JSON-RPC error.
    let doc = read(&mut p, 1, "demo://resource/static/document/features.md");
    assert_eq!(doc["error"]["code"], json!(-32003), "{doc}");
    let message = doc["error"]["message"].as_str().unwrap();
    assert!(
        message.starts_with("[POLICY DENIED] the answer from demo://resource/static/document/features.md is ")
            && message.ends_with("bytes, more than the 100 bytes the policy allows (results.resources.demo://resource/static/document/*)"),
        "{doc}"
    );
    assert_eq!(
        doc["error"]["data"]["dev.portcullis/result"]["findings"],
        json!([{"rule": "max-bytes", "action": "deny", "count": 1}])
    );
    // A dynamic text resource: the regex's rule redacts (the one-segment
    // glob `demo://resource/*` does not reach it).
    let text = read(&mut p, 2, "demo://resource/dynamic/text/1");
    let t = text["result"]["contents"][0]["text"].as_str().unwrap();
    assert!(
        t.contains("[REDACTED:resource-id]") && !t.contains("Resource 1"),
        "{text}"
    );
    // Tool answers are not checked: no rule names tools or every answer.
    let echo = call(&mut p, 3, "echo", json!({"message": "Resource 7"}));
    assert_eq!(text_of(&echo), "Echo: Resource 7");
    p.finish();
}

#[test]
fn an_idempotent_replay_replays_the_redacted_answer() {
    let dir = common::temp_dir("results-replay");
    let policy = write(
        &dir,
        "everything.policy",
        "server everything {\n  tool echo {\n    once per 1m replay\n  }\n  results { redact secrets }\n}\n",
    );
    let mut p = Proxy::everything("results-replay", &["-c", &policy, "--log-level", "warn"]);
    p.initialize();
    let args = json!({"message": "sk_live_4eC39HqLyjWDarjtT1zdp7dc"});
    let first = call(&mut p, 1, "echo", args.clone());
    let second = call(&mut p, 2, "echo", args);
    assert_eq!(text_of(&first), "Echo: [REDACTED:stripe-key]", "{first}");
    assert_eq!(text_of(&second), "Echo: [REDACTED:stripe-key]", "{second}");
    assert!(!second.to_string().contains("sk_live_"), "{second}");
    // The server saw the call once.
    let calls = p
        .server_received()
        .iter()
        .filter(|l| l.contains("tools/call"))
        .count();
    assert_eq!(calls, 1);
    p.finish();
}

#[test]
fn an_http_client_gets_redacted_answers_from_an_http_upstream() {
    // Both sides over Streamable HTTP: the upstream answers with SSE, and so
    // does the proxy to its client.
    let (_server, upstream) = everything_http();
    let dir = common::temp_dir("results-http-both");
    let policy = write(
        &dir,
        "everything.policy",
        "server everything {\n  results { redact secrets }\n}\n",
    );
    let (_proxy, url) = http_endpoint(&[
        "-c",
        &policy,
        "--log-level",
        "warn",
        "--upstream",
        &upstream,
    ]);
    let init = r#"{"jsonrpc":"2.0","id":1,"method":"initialize","params":{"protocolVersion":"2025-06-18","capabilities":{},"clientInfo":{"name":"t","version":"1"}}}"#;
    let (head, _) = http_post(&url, None, init);
    let sid = head
        .lines()
        .find_map(|l| {
            l.to_ascii_lowercase()
                .strip_prefix("mcp-session-id: ")
                .map(str::to_string)
        })
        .expect("a session id");
    http_post(
        &url,
        Some(&sid),
        r#"{"jsonrpc":"2.0","method":"notifications/initialized"}"#,
    );
    let (head, body) = http_post(
        &url,
        Some(&sid),
        &call_line(
            2,
            "echo",
            json!({"message": "key AIzaSyDdI0hCZtE6vySjMm-WEfRq3CPzqKqqsHI"}),
        ),
    );
    assert!(
        head.to_ascii_lowercase()
            .contains("content-type: text/event-stream"),
        "{head}"
    );
    let answer = message_of(&body);
    assert_eq!(
        text_of(&answer),
        "Echo: key [REDACTED:gcp-api-key]",
        "{body}"
    );
    let (_, body) = http_post(
        &url,
        Some(&sid),
        &call_line(3, "echo", json!({"message": "clean"})),
    );
    assert_eq!(text_of(&message_of(&body)), "Echo: clean");
}

/// A read the request policy decides (a `resources:` block governs the
/// surface) still has its answer checked by the result rule naming its URI.
#[test]
fn a_resource_read_decided_by_policy_still_has_its_answer_checked() {
    let dir = common::temp_dir("results-governed-resources");
    let policy = write(
        &dir,
        "everything.yaml",
        r#"version: "1"
resources:
  "demo://resource/static/document/*":
    rules:
      - name: no documents
        action: deny
        on_deny: "Documents are off limits"
results:
  resources:
    "demo://resource/dynamic/text/*":
      patterns:
        - {name: resource-id, regex: "Resource [0-9]+", action: redact}
"#,
    );
    let mut p = Proxy::everything(
        "results-governed-resources",
        &["-c", &policy, "--log-level", "warn"],
    );
    p.initialize();
    let read = |p: &mut Proxy, id: u64, uri: &str| -> Value {
        p.send(
            &json!({"jsonrpc":"2.0","id":id,"method":"resources/read","params":{"uri":uri}})
                .to_string(),
        );
        serde_json::from_str(&p.response(&id.to_string())).unwrap()
    };
    // The request rule refuses a document before the server sees it.
    let doc = read(&mut p, 1, "demo://resource/static/document/features.md");
    assert_eq!(doc["error"]["code"], json!(-32003), "{doc}");
    assert!(
        doc["error"]["message"]
            .as_str()
            .unwrap()
            .contains("Documents are off limits"),
        "{doc}"
    );
    // An allowed read is forwarded, and its answer redacted by the result rule.
    let text = read(&mut p, 2, "demo://resource/dynamic/text/1");
    let t = text["result"]["contents"][0]["text"].as_str().unwrap();
    assert!(
        t.contains("[REDACTED:resource-id]") && !t.contains("Resource 1"),
        "{text}"
    );
    p.finish();
}

/// The policy of the spelling tests: result rules on resources, and no
/// resource request rules (so every read is forwarded, even one whose URI
/// cannot be normalised, and its answer is what the rules decide on).
const SPELLINGS_POLICY: &str = r#"server paged {
  results for resource "paged://items/private/*" {
    deny secrets "private items may not carry secrets"
  }
  results for resource "paged://items/public/*" {
    max 1 KiB
  }
}
"#;

/// Reads through a URI spelt as a client may spell it: tests/e2e/paged_server.mjs
/// resolves each (case, `..`, `//`, percent-escapes, even an encoded `/`)
/// to the private item it names, which holds a token.
const SPELLINGS: [(&str, &str); 5] = [
    ("paged://items/public/01", "pass"),
    ("paged://items/private/04", "rule"),
    ("PAGED://Items/public/../private//04", "rule"),
    ("paged://items/%70rivate/04", "rule"),
    ("paged://items/public%2F..%2Fprivate/04", "strictest"),
];

fn check_spelling(uri: &str, want: &str, answer: &Value) {
    match want {
        "pass" => assert_eq!(
            answer["result"]["contents"][0]["text"], "public paged://items/public/01",
            "{uri}: {answer}"
        ),
        "rule" => {
            assert_eq!(answer["error"]["code"], -32003, "{uri}: {answer}");
            assert_eq!(
                answer["error"]["message"],
                "[POLICY DENIED] private items may not carry secrets (github-token)",
                "{uri}: {answer}"
            );
            assert_eq!(
                answer["error"]["data"]["dev.portcullis/result"]["rule"],
                "results for resource paged://items/private/*",
                "{uri}"
            );
        }
        _ => {
            // No pattern can say whether it names a private item: the
            // strictest combination of the rules withholds the token.
            assert_eq!(answer["error"]["code"], -32003, "{uri}: {answer}");
            assert_eq!(
                answer["error"]["data"]["dev.portcullis/result"]["rule"],
                "results for unnormalised resource URIs",
                "{uri}: {answer}"
            );
            assert!(
                !answer.to_string().contains("ghp_"),
                "the token leaked: {answer}"
            );
        }
    }
}

/// Result rules match the URI normalised, as request rules do: a spelling
/// the server resolves to the same item gets the same rule, and one that
/// cannot be normalised gets the strictest combination. Over stdio.
#[test]
fn resource_answers_get_the_rule_of_the_normalised_uri_over_stdio() {
    let dir = common::temp_dir("results-spellings");
    let policy = write(&dir, "paged.policy", SPELLINGS_POLICY);
    let server = root().join("tests/e2e/paged_server.mjs");
    let mut p = Proxy::command(
        "results-spellings",
        &[
            "-c",
            &policy,
            "--log-level",
            "warn",
            "--",
            "node",
            server.to_str().unwrap(),
        ],
    );
    p.initialize();
    for (i, (uri, want)) in SPELLINGS.into_iter().enumerate() {
        let id = i as u64 + 1;
        p.send(
            &json!({"jsonrpc":"2.0","id":id,"method":"resources/read","params":{"uri":uri}})
                .to_string(),
        );
        let answer: Value = serde_json::from_str(&p.response(&id.to_string())).unwrap();
        check_spelling(uri, want, &answer);
    }
    p.finish();
}

/// The same over Streamable HTTP (the server a per-session child).
#[test]
fn resource_answers_get_the_rule_of_the_normalised_uri_over_http() {
    let dir = common::temp_dir("results-spellings-http");
    let policy = write(&dir, "paged.policy", SPELLINGS_POLICY);
    let server = root().join("tests/e2e/paged_server.mjs");
    let (_proxy, url) = http_endpoint(&[
        "-c",
        &policy,
        "--log-level",
        "warn",
        "--",
        "node",
        server.to_str().unwrap(),
    ]);
    let init = r#"{"jsonrpc":"2.0","id":0,"method":"initialize","params":{"protocolVersion":"2025-06-18","capabilities":{},"clientInfo":{"name":"t","version":"1"}}}"#;
    let (head, _) = http_post(&url, None, init);
    let sid = head
        .lines()
        .find_map(|l| {
            l.to_ascii_lowercase()
                .strip_prefix("mcp-session-id: ")
                .map(str::to_string)
        })
        .expect("a session id");
    http_post(
        &url,
        Some(&sid),
        r#"{"jsonrpc":"2.0","method":"notifications/initialized"}"#,
    );
    for (i, (uri, want)) in SPELLINGS.into_iter().enumerate() {
        let body =
            json!({"jsonrpc":"2.0","id":i + 1,"method":"resources/read","params":{"uri":uri}});
        let (_, answer) = http_post(&url, Some(&sid), &body.to_string());
        check_spelling(uri, want, &message_of(&answer));
    }
}

/// An error answer's text comes from the server too: a tool that fails may
/// quote the secret it read in `error.message` or `error.data`. Both are
/// checked like a result (a server that answers with errors, in Python,
/// behind the real binary): redacted in place with the note in the error's
/// `_meta`, or withheld (the agent gets the rule's message as an `isError`
/// result) when the rule denies.
#[test]
fn error_answers_are_checked_like_results() {
    let dir = common::temp_dir("results-errors");
    let aws = secret_in(
        BUILTINS
            .iter()
            .find(|b| b.name == "aws-access-key-id")
            .unwrap()
            .example,
    );
    let server = write(
        &dir,
        "failing_server.py",
        &format!(
            r#"import json, sys
for line in sys.stdin:
    m = json.loads(line)
    if "id" not in m:
        continue
    if m["method"] == "initialize":
        out = {{"result": {{"protocolVersion": "2025-06-18", "capabilities": {{"tools": {{}}}}, "serverInfo": {{"name": "failing", "version": "1"}}}}}}
    else:
        out = {{"error": {{"code": -32000, "message": "could not parse config: key {aws} is invalid", "data": {{"line": "id={aws}", "n": 3}}}}}}
    out.update({{"jsonrpc": "2.0", "id": m["id"]}})
    print(json.dumps(out, separators=(",", ":")), flush=True)
"#
        ),
    );
    for (action, n) in [("redact", 1), ("deny", 2)] {
        let sub = dir.join(action);
        std::fs::create_dir_all(&sub).unwrap();
        let policy = write(
            &sub,
            "failing.policy",
            &format!("server failing {{\n  results for load {{\n    {action} secrets\n  }}\n}}\n"),
        );
        let mut p = Proxy::command(
            &format!("results-errors-{action}"),
            &["-c", &policy, "--", "python3", &server],
        );
        p.initialize();
        let answer = call(&mut p, n, "load", json!({}));
        assert!(!answer.to_string().contains(&aws), "{action}: {answer}");
        if action == "redact" {
            assert_eq!(answer["error"]["code"], -32000, "{answer}");
            assert_eq!(
                answer["error"]["message"],
                "could not parse config: key [REDACTED:aws-access-key-id] is invalid",
                "{answer}"
            );
            assert_eq!(
                answer["error"]["data"]["line"],
                "id=[REDACTED:aws-access-key-id]"
            );
            assert_eq!(
                answer["error"]["_meta"]["dev.portcullis/redactions"][0]["count"], 2,
                "{answer}"
            );
        } else {
            assert_eq!(answer["result"]["isError"], json!(true), "{answer}");
            assert_eq!(
                text_of(&answer),
                "[POLICY DENIED] the answer from load was withheld: it holds a secret (aws-access-key-id)"
            );
        }
        p.finish();
    }
}

/// Found in review: an answer holding both `result` and `error` had only its
/// `result` checked by result rules, and was forwarded; the official Python
/// SDK client reads such an answer as the error (its text: the secret).
/// Such an answer is refused (-32603), whatever the order or a null result.
#[test]
fn an_answer_with_both_result_and_error_does_not_carry_a_secret_past_result_rules() {
    let dir = common::temp_dir("results-both-members");
    std::fs::write(
        dir.join("errs.policy"),
        "server errs {\n  results {\n    deny secrets\n  }\n  results for resource \"https://x.example/**\" {\n    deny secrets\n  }\n}\n",
    )
    .unwrap();
    let server = dir.join("errs.py");
    std::fs::write(
        &server,
        r#"import json, sys
TOK = "ghp_" + "A1b2C3d4E5f6G7h8I9j0K1l2M3n4O5p6Q7r8"
for line in sys.stdin:
    m = json.loads(line)
    if "id" not in m:
        continue
    i = m["id"]
    if m["method"] == "initialize":
        out = {"jsonrpc": "2.0", "id": i, "result": {"protocolVersion": "2025-06-18", "capabilities": {"tools": {}, "resources": {}}, "serverInfo": {"name": "errs", "version": "1"}}}
        print(json.dumps(out, separators=(",", ":")), flush=True)
        continue
    mode = m["params"]["arguments"]["mode"] if m["method"] == "tools/call" else m["params"]["uri"].rsplit("/", 1)[1]
    err = json.dumps({"code": -32000, "message": "bad key " + TOK}, separators=(",", ":"))
    res = '{"content":[{"type":"text","text":"ok"}]}' if mode == "both" else "null"
    if mode == "errfirst":
        print('{"jsonrpc":"2.0","id":%s,"error":%s,"result":null}' % (json.dumps(i), err), flush=True)
    else:
        print('{"jsonrpc":"2.0","id":%s,"result":%s,"error":%s}' % (json.dumps(i), res, err), flush=True)
"#,
    )
    .unwrap();
    let policy = dir.join("errs.policy");
    let mut p = Proxy::command(
        "results-both-members-proxy",
        &[
            "-c",
            policy.to_str().unwrap(),
            "--",
            "python3",
            server.to_str().unwrap(),
        ],
    );
    p.initialize();
    for (id, mode) in [(1u64, "both"), (2, "nullresult"), (3, "errfirst")] {
        let line = p.call(id, "t", &json!({ "mode": mode }).to_string());
        assert!(!line.contains("ghp_A1b2"), "tools/call {mode}: {line}");
    }
    for (id, mode) in [(11u64, "both"), (12, "nullresult"), (13, "errfirst")] {
        p.send(
            &json!({"jsonrpc":"2.0","id":id,"method":"resources/read","params":{"uri":format!("https://x.example/{mode}")}})
                .to_string(),
        );
        let line = p.response(&id.to_string());
        assert!(!line.contains("ghp_A1b2"), "resources/read {mode}: {line}");
    }
    p.finish();
}

/// Runs a Python MCP server (named `name`) that answers every `tools/call`
/// with "done" after sending `before` (Python statements calling
/// `send(obj)`; `TOK` is a GitHub token) behind the real binary, once per
/// policy `results` block in `rules` (`("redact", "results {\n redact
/// secrets\n}")`): per block, every line the client got around its call,
/// and the proxy's stderr.
fn server_sends(name: &str, before: &str, rules: &[(&str, &str)]) -> Vec<(Vec<String>, String)> {
    let dir = common::temp_dir(name);
    let server = write(
        &dir,
        "server.py",
        &format!(
            r#"import json, sys
TOK = "ghp_" + "A1b2C3d4E5f6G7h8I9j0K1l2M3n4O5p6Q7r8"
def send(o):
    print(json.dumps(o, separators=(",", ":")), flush=True)
for line in sys.stdin:
    m = json.loads(line)
    if "id" not in m:
        continue
    i = m["id"]
    if m["method"] == "initialize":
        send({{"jsonrpc": "2.0", "id": i, "result": {{"protocolVersion": "2025-06-18", "capabilities": {{"tools": {{}}, "logging": {{}}}}, "serverInfo": {{"name": "s", "version": "1"}}}}}})
        continue
{}
    send({{"jsonrpc": "2.0", "id": i, "result": {{"content": [{{"type": "text", "text": "done"}}]}}}})
"#,
            before
                .lines()
                .map(|l| format!("    {l}\n"))
                .collect::<String>()
                .trim_end()
        ),
    );
    rules
        .iter()
        .map(|(label, block)| {
            let sub = dir.join(label);
            std::fs::create_dir_all(&sub).unwrap();
            let policy = write(&sub, "s.policy", &format!("server s {{\n{block}\n}}\n"));
            let mut p = Proxy::command(
                &format!("{name}-{label}"),
                &["-c", &policy, "--", "python3", &server],
            );
            p.initialize();
            let answer = call(&mut p, 1, "t", json!({}));
            assert_eq!(text_of(&answer), "done", "{label}: {answer}");
            let mut lines = p.seen.clone();
            while let Some(l) = p.next_line(std::time::Duration::from_millis(300)) {
                lines.push(l);
            }
            let (_, err) = p.finish();
            (lines, err)
        })
        .collect()
}

const REDACT_ALL: (&str, &str) = ("redact", "results {\n  redact secrets\n}");
const DENY_ALL: (&str, &str) = ("deny", "results {\n  deny secrets\n}");

/// What the server sends on its own is checked by the catch-all result
/// rule too (a server in Python behind the real binary): a secret in a
/// `sampling/createMessage` request (which goes to the model) or a log
/// notification is redacted in place (the note in `params._meta`), or the
/// message is withheld when the rule denies; a clean notification passes
/// byte for byte, and a policy without a catch-all rule changes nothing.
#[test]
fn server_requests_and_notifications_are_checked_by_the_catch_all_rule() {
    let runs = server_sends(
        "results-server-initiated",
        r#"send({"jsonrpc": "2.0", "method": "notifications/message", "params": {"level": "info", "data": "read config with key " + TOK}})
send({"jsonrpc": "2.0", "id": "s1", "method": "sampling/createMessage", "params": {"messages": [{"role": "user", "content": {"type": "text", "text": "summarise: token=" + TOK}}], "maxTokens": 10}})
send({"jsonrpc": "2.0", "method": "notifications/progress", "params": {"progressToken": 1, "progress": 1, "message": "half way"}})"#,
        &[
            REDACT_ALL,
            DENY_ALL,
            ("none", "results for other {\n  deny secrets\n}"),
        ],
    );
    let clean_progress = r#"{"jsonrpc":"2.0","method":"notifications/progress","params":{"progressToken":1,"progress":1,"message":"half way"}}"#;
    for ((lines, err), action) in runs.iter().zip(["redact", "deny", "none"]) {
        let find = |method: &str| {
            lines
                .iter()
                .map(|l| serde_json::from_str::<Value>(l).unwrap())
                .find(|v| v["method"] == method)
        };
        assert!(
            lines.iter().any(|l| l == clean_progress),
            "{action}: a clean notification passes byte for byte: {lines:?}"
        );
        let (log, sampling) = (
            find("notifications/message"),
            find("sampling/createMessage"),
        );
        match action {
            "redact" => {
                let (log, sampling) = (log.expect("log"), sampling.expect("sampling"));
                assert_eq!(
                    log["params"]["data"],
                    "read config with key [REDACTED:github-token]"
                );
                assert_eq!(
                    sampling["params"]["messages"][0]["content"]["text"],
                    "summarise: token=[REDACTED:github-token]"
                );
                assert_eq!(
                    sampling["params"]["_meta"]["dev.portcullis/redactions"][0]["count"], 1,
                    "{sampling}"
                );
            }
            "deny" => {
                assert!(log.is_none() && sampling.is_none(), "{lines:?}");
                assert!(
                    err.contains("withheld a sampling/createMessage from the server"),
                    "{err}"
                );
                assert!(!err.contains("ghp_A1b2"), "{err}");
            }
            _ => assert!(log.is_some() && sampling.is_some(), "{lines:?}"),
        }
        if action != "none" {
            assert!(
                lines.iter().all(|l| !l.contains("ghp_A1b2")),
                "{action}: {lines:?}"
            );
        }
    }
}

/// Review 7 (F2): `params` (and a `result`) that is not an object is
/// malformed MCP, but its text reaches the client all the same: checked.
#[test]
fn server_messages_whose_params_are_not_an_object_are_checked_too() {
    let runs = server_sends(
        "results-params-not-object",
        r#"send({"jsonrpc": "2.0", "method": "notifications/message", "params": ["read config with key " + TOK]})
send({"jsonrpc": "2.0", "method": "notifications/message", "params": "read config with key " + TOK})
send({"jsonrpc": "2.0", "id": "s1", "method": "sampling/createMessage", "params": ["summarise: token=" + TOK]})"#,
        &[REDACT_ALL, DENY_ALL],
    );
    for (lines, _) in &runs {
        assert!(lines.iter().all(|l| !l.contains("ghp_A1b2")), "{lines:?}");
    }
    let redacted = &runs[0].0;
    assert!(
        redacted
            .iter()
            .any(|l| l.contains(r#""params":"read config with key [REDACTED:github-token]""#)),
        "{redacted:?}"
    );
}

/// Review 7 (F3): an error that names no request (`id` null or none) is
/// forwarded, checked by the catch-all rule.
#[test]
fn errors_naming_no_request_are_checked_by_the_catch_all_rule() {
    let runs = server_sends(
        "results-id-null-error",
        r#"send({"jsonrpc": "2.0", "id": None, "error": {"code": -32700, "message": "parse error near " + TOK}})
send({"jsonrpc": "2.0", "error": {"code": -32000, "message": "no id " + TOK}})"#,
        &[REDACT_ALL, DENY_ALL],
    );
    for (lines, _) in &runs {
        assert!(lines.iter().all(|l| !l.contains("ghp_A1b2")), "{lines:?}");
    }
    assert!(
        runs[0]
            .0
            .iter()
            .any(|l| l.contains("parse error near [REDACTED:github-token]")),
        "still forwarded, redacted: {:?}",
        runs[0].0
    );
    assert!(
        runs[1].0.iter().all(|l| !l.contains("-32700")),
        "withheld: {:?}",
        runs[1].0
    );
}

/// Review 7 (F5): a server request withheld from the client is answered
/// to the server with an error, so the call that sent it ends at once
/// instead of waiting for the upstream timeout. The server (Python)
/// passes the error it got on in its result.
#[test]
fn a_withheld_server_request_is_answered_to_the_server_so_the_call_ends() {
    let dir = common::temp_dir("results-withheld-request");
    let server = write(
        &dir,
        "asks.py",
        r##"import json, sys
TOK = "ghp_" + "A1b2C3d4E5f6G7h8I9j0K1l2M3n4O5p6Q7r8"
call = None
def dumps(o):
    return json.dumps(o, separators=(",", ":"))
for line in sys.stdin:
    m = json.loads(line)
    if m.get("method") == "initialize":
        print(dumps({"jsonrpc": "2.0", "id": m["id"], "result": {"protocolVersion": "2025-06-18", "capabilities": {"tools": {}}, "serverInfo": {"name": "asks", "version": "1"}}}), flush=True)
    elif m.get("method") == "tools/call":
        call = m["id"]
        print(dumps({"jsonrpc": "2.0", "id": "s1", "method": "sampling/createMessage", "params": {"messages": [{"role": "user", "content": {"type": "text", "text": "t " + TOK}}], "maxTokens": 5}}), flush=True)
    elif m.get("id") == "s1" and "method" not in m:
        e = m.get("error") or {}
        text = "sampling failed: %s %s" % (e.get("code"), e.get("message")) if e else "sampled"
        print(dumps({"jsonrpc": "2.0", "id": call, "result": {"content": [{"type": "text", "text": text}]}}), flush=True)
"##,
    );
    let policy = write(
        &dir,
        "asks.policy",
        "server asks {\n  results {\n    deny secrets\n  }\n}\n",
    );
    let mut p = Proxy::command(
        "results-withheld-request",
        &[
            "-c",
            &policy,
            "--upstream-timeout",
            "20",
            "--",
            "python3",
            &server,
        ],
    );
    p.initialize();
    let answer = call(&mut p, 1, "t", json!({}));
    assert_eq!(
        text_of(&answer),
        "sampling failed: -32003 [POLICY DENIED] the sampling/createMessage request was withheld by the proxy's result rules",
        "{answer}"
    );
    assert!(!p.seen.iter().any(|l| l.contains("ghp_A1b2")));
    p.finish();
}
