//! Hostile input through the real proxy in front of the real server-everything:
//! every message two parsers could read differently is refused with a
//! JSON-RPC error or a denial, never reaches the server (the tap records
//! what the server received), and the proxy keeps serving.

mod common;

use common::{Proxy, error_code, is_denial};

/// (id, line, expected JSON-RPC error code or None for a policy denial).
fn hostile() -> Vec<(u64, String, Option<i64>)> {
    let call = |id: u64, params: &str| {
        format!(r#"{{"jsonrpc":"2.0","id":{id},"method":"tools/call","params":{params}}}"#)
    };
    let deep = format!(
        r#"{{"name":"echo","arguments":{{"message":"x","deep":{}1{}}}}}"#,
        "[".repeat(200),
        "]".repeat(200)
    );
    vec![
        // Go matches "Name" case-insensitively and the last one wins: which tool runs?
        (101, call(101, r#"{"name":"gzip-file-as-resource","Name":"echo","arguments":{}}"#), Some(-32602)),
        // A case-variant method key could hide the tools/call from a case-insensitive reader.
        (102, r#"{"jsonrpc":"2.0","id":102,"method":"tools/call","METHOD":"ping","params":{"name":"gzip-file-as-resource"}}"#.to_string(), Some(-32600)),
        (103, r#"{"jsonrpc":"2.0","id":103,"method":"tools/call","params":{"name":"echo","arguments":{"message":"a"}},"Params":{"name":"gzip-file-as-resource"}}"#.to_string(), Some(-32600)),
        (104, r#"{"jsonrpc":"2.0","id":104,"method":"ping","method":"tools/call","params":{"name":"gzip-file-as-resource"}}"#.to_string(), Some(-32600)),
        (105, call(105, r#"{"name":"echo","name":"gzip-file-as-resource"}"#), Some(-32602)),
        // Arguments: duplicates (which value does the server read?), case variants, deep duplicates.
        (106, call(106, r#"{"name":"get-sum","arguments":{"a":1,"b":1,"a":5000}}"#), Some(-32602)),
        (107, call(107, r#"{"name":"get-sum","arguments":{"a":1,"A":5000,"b":1}}"#), Some(-32602)),
        (108, call(108, r#"{"name":"echo","arguments":{"message":"m","x":{"k":1,"K":2}}}"#), Some(-32602)),
        (109, call(109, r#"{"name":"echo","arguments":"{\"message\":\"m\"}"}"#), Some(-32602)),
        (110, call(110, r#"{"name":"echo","arguments":["message"]}"#), Some(-32602)),
        (111, call(111, r#"{"name":5,"arguments":{}}"#), Some(-32602)),
        (112, call(112, "null"), Some(-32602)),
        (113, r#"{"jsonrpc":"2.0","id":113,"method":"tools/call"}"#.to_string(), Some(-32602)),
        (114, call(114, &deep), Some(-32600)),
        // Trailing data after the message.
        (115, format!("{} {{\"jsonrpc\":\"2.0\",\"id\":1150,\"method\":\"tools/call\",\"params\":{{\"name\":\"gzip-file-as-resource\"}}}}", call(115, r#"{"name":"echo","arguments":{"message":"m"}}"#)), Some(-32700)),
        // A member name in another letter case, alone: Go reads "METHOD" as method, "Arguments" as arguments.
        (121, r#"{"jsonrpc":"2.0","id":121,"result":{},"METHOD":"tools/call","params":{"name":"gzip-file-as-resource"}}"#.to_string(), Some(-32600)),
        (122, call(122, r#"{"name":"echo","Arguments":{"message":"m"}}"#), Some(-32602)),
        // Policy denials still apply to well-formed calls.
        (116, call(116, r#"{"name":"gzip-file-as-resource","arguments":{"name":"x","data":"https://example.com"}}"#), None),
        (117, call(117, r#"{"name":"get-env","arguments":{}}"#), None),
        (118, call(118, r#"{"name":"get-\u0065nv","arguments":{}}"#), None),
    ]
}

#[test]
fn hostile_messages_never_reach_the_server_and_the_proxy_keeps_serving() {
    let mut p = Proxy::everything(
        "hostile",
        &["--server", "everything", "--log-level", "error"],
    );
    p.initialize();
    for (id, line, expected) in hostile() {
        p.send(&line);
        let id_text = if id == 115 {
            "null".to_string()
        } else {
            id.to_string()
        };
        let answer = p.response(&id_text);
        match expected {
            Some(code) => assert_eq!(error_code(&answer), Some(code), "{line}\n-> {answer}"),
            None => assert!(is_denial(&answer), "{line}\n-> {answer}"),
        }
    }
    // Invalid UTF-8 inside a string: parse error, not forwarded.
    p.send_raw(b"{\"jsonrpc\":\"2.0\",\"id\":120,\"method\":\"tools/call\",\"params\":{\"name\":\"gzip-file-as-resource\xff\"}}");
    assert_eq!(error_code(&p.response("null")), Some(-32700));
    // Not JSON at all: -32700, not forwarded.
    p.send("this is not json {");
    assert_eq!(error_code(&p.response("null")), Some(-32700));
    // A tools/call notification cannot be answered by the server: refused.
    p.send(r#"{"jsonrpc":"2.0","method":"tools/call","params":{"name":"gzip-file-as-resource"}}"#);
    assert_eq!(error_code(&p.response("null")), Some(-32600));
    // A batch: every element is checked; the allowed one is forwarded, the denied one answered here.
    p.send(r#"[{"jsonrpc":"2.0","id":130,"method":"tools/call","params":{"name":"echo","arguments":{"message":"from a batch"}}},{"jsonrpc":"2.0","id":131,"method":"tools/call","params":{"name":"gzip-file-as-resource","arguments":{}}}]"#);
    let denied = p.response("131");
    assert!(is_denial(&denied), "{denied}");
    let allowed = p.response("130");
    assert!(allowed.contains("Echo: from a batch"), "{allowed}");
    // An empty batch is an invalid request.
    p.send("[]");
    assert_eq!(error_code(&p.response("null")), Some(-32600));
    // After all of that, the proxy still serves.
    let ok = p.call(140, "echo", r#"{"message":"still serving"}"#);
    assert!(ok.contains("Echo: still serving"), "{ok}");

    let received = p.server_received();
    let (code, stderr) = p.finish();
    assert_eq!(code, 0, "{stderr}");
    assert!(
        received.iter().any(|l| l.contains("still serving")),
        "the tap recorded nothing: {received:#?}"
    );
    for line in &received {
        assert!(
            !line.contains("gzip-file-as-resource"),
            "a forbidden call reached the server: {line}"
        );
        assert!(
            !line.contains("get-env") && !line.contains("get-\\u0065nv"),
            "a hidden tool reached the server: {line}"
        );
        assert!(
            !line.contains("5000"),
            "an ambiguous argument reached the server: {line}"
        );
        for id in 101..=122 {
            assert!(
                !line.contains(&format!("\"id\":{id},")),
                "request {id} reached the server: {line}"
            );
        }
    }
}

#[test]
fn oversize_messages_are_refused_and_the_stream_goes_on() {
    let mut p = Proxy::everything(
        "oversize",
        &[
            "--server",
            "everything",
            "--max-message-size",
            "4096",
            "--log-level",
            "error",
        ],
    );
    p.initialize();
    let big = format!(
        r#"{{"jsonrpc":"2.0","id":7,"method":"tools/call","params":{{"name":"echo","arguments":{{"message":"{}"}}}}}}"#,
        "x".repeat(10_000)
    );
    p.send(&big);
    let answer = p.response("null");
    assert_eq!(error_code(&answer), Some(-32600), "{answer}");
    assert!(
        answer.contains("exceeds the proxy's limit of 4096 bytes"),
        "{answer}"
    );
    let ok = p.call(8, "echo", r#"{"message":"after the big one"}"#);
    assert!(ok.contains("after the big one"), "{ok}");
    let received = p.server_received();
    assert!(
        !received.iter().any(|l| l.contains("xxxxxxxxxx")),
        "the oversize message reached the server"
    );
    assert_eq!(p.finish().0, 0);
}

#[test]
fn large_messages_pass_untouched() {
    // 3 MiB in, 3 MiB echoed back: well under the 16 MiB default, far over Go's 64 KiB scanner.
    let mut p = Proxy::everything("large", &["--server", "everything", "--log-level", "error"]);
    p.initialize();
    let payload = "é".repeat(1_500_000);
    let answer = p.call(9, "echo", &format!(r#"{{"message":"{payload}"}}"#));
    assert!(
        answer.contains(&payload),
        "the large echo did not come back intact ({} bytes)",
        answer.len()
    );
    assert_eq!(p.finish().0, 0);
}

#[test]
fn a_request_id_in_flight_cannot_be_reused() {
    let mut p = Proxy::everything("reuse", &["--server", "everything", "--log-level", "error"]);
    p.initialize();
    p.send(r#"{"jsonrpc":"2.0","id":50,"method":"tools/call","params":{"name":"trigger-long-running-operation","arguments":{"duration":1,"steps":1}}}"#);
    // Same id as a number of another spelling: the same request id by JSON value.
    p.send(r#"{"jsonrpc":"2.0","id":50.0,"method":"tools/call","params":{"name":"echo","arguments":{"message":"second"}}}"#);
    let refused = p.response("50.0");
    assert_eq!(error_code(&refused), Some(-32600), "{refused}");
    let first = p.response("50");
    assert!(
        first.contains("Long running operation completed"),
        "{first}"
    );
    // Once answered, the id is free again.
    let again = p.call(50, "echo", r#"{"message":"reused after completion"}"#);
    assert!(again.contains("reused after completion"), "{again}");
    let received = p.server_received();
    assert!(
        !received.iter().any(|l| l.contains("\"second\"")),
        "the duplicate-id request reached the server"
    );
    assert_eq!(p.finish().0, 0);
}

/// Argument keys in another letter case: server-everything is JavaScript
/// (exact keys), but a server in Go reads `"A"` as the field `a`, so the
/// policy must too. Through the real binary, with both engines: the policy
/// compiled into it (generated code) and a policy loaded with `-c` (the
/// reference evaluator).
#[test]
fn argument_keys_are_read_in_any_letter_case() {
    // Compiled in: get-sum allows `args.a <= 1000 and args.b <= 1000`.
    let mut p = Proxy::everything(
        "argcase-compiled",
        &["--server", "everything", "--log-level", "error"],
    );
    p.initialize();
    for (id, args) in [
        (201, r#"{"A": 5000, "b": 1}"#),
        (202, r#"{"\u0041": 5000, "B": 1}"#),
    ] {
        let answer = p.call(id, "get-sum", args);
        assert!(
            is_denial(&answer) && answer.contains("limited to operands up to 1000"),
            "{args} -> {answer}"
        );
    }
    // Within the limits in any letter case: the policy reads both operands,
    // so the call is no longer refused as missing them; it is forwarded.
    let answer = p.call(203, "get-sum", r#"{"A": 2, "\u0062": 3}"#);
    assert!(!is_denial(&answer), "{answer}");
    let received = p.server_received().join("\n");
    assert!(received.contains("\"id\":203"), "{received}");
    assert!(!received.contains("\"id\":201") && !received.contains("\"id\":202"));
    assert_eq!(p.finish().0, 0);

    // Loaded at run time: the bypass form, a deny rule that passes a missing argument.
    let dir = common::temp_dir("argcase-policy");
    let policy = dir.join("everything.policy");
    std::fs::write(
        &policy,
        r#"server everything "argcase" {
  default allow
  tool get-sum {
    deny "too much" when args.a > 1000
    deny "no debug" when exists(args.debug.task)
  }
}
"#,
    )
    .unwrap();
    let mut p = Proxy::everything(
        "argcase-dynamic",
        &["-c", policy.to_str().unwrap(), "--log-level", "error"],
    );
    p.initialize();
    for (id, args, message) in [
        (211, r#"{"A": 5000, "b": 1}"#, "too much"),
        (212, r#"{"\u0041": 5000, "b": 1}"#, "too much"),
        (
            213,
            r#"{"a": 1, "b": 1, "DEBUG": {"ta\u017f\u212a": 1}}"#,
            "no debug",
        ),
        (
            214,
            "{\"a\": 1, \"b\": 1, \"Debug\": {\"TA\u{17f}\u{212a}\": 1}}",
            "no debug",
        ),
    ] {
        let answer = p.call(id, "get-sum", args);
        assert!(
            is_denial(&answer) && answer.contains(message),
            "{args} -> {answer}"
        );
    }
    let answer = p.call(215, "get-sum", r#"{"a": 2, "b": 3}"#);
    assert!(
        answer.contains("\"result\"") && !is_denial(&answer),
        "{answer}"
    );
    let received = p.server_received().join("\n");
    assert!(received.contains("\"id\":215"), "{received}");
    for id in 211..=214 {
        assert!(
            !received.contains(&format!("\"id\":{id}")),
            "{id} reached the server: {received}"
        );
    }
    assert_eq!(p.finish().0, 0);
}

/// An upstream answer whose envelope a case-insensitive or first-wins
/// reader reads differently (`"Result"`, `"ID"`, `"id"` twice) is never
/// forwarded, through the real binary over stdio: the client gets error
/// -32603 for the request it names, never the hidden tool.
#[test]
fn ambiguous_upstream_answers_never_show_a_hidden_tool() {
    let dir = common::temp_dir("ambiguous-answers");
    let server = dir.join("server.py");
    std::fs::write(
        &server,
        r#"import json, sys
def dumps(o):
    return json.dumps(o, separators=(",", ":"))
tools = {"tools": [{"name": "visible", "inputSchema": {"type": "object"}}, {"name": "secret", "inputSchema": {"type": "object"}}]}
for line in sys.stdin:
    m = json.loads(line)
    if "id" not in m:
        continue
    i = m["id"]
    if m["method"] == "initialize":
        out = dumps({"jsonrpc": "2.0", "id": i, "result": {"protocolVersion": "2025-06-18", "capabilities": {"tools": {}}, "serverInfo": {"name": "fake", "version": "1"}}})
    elif i == 1:
        out = dumps({"jsonrpc": "2.0", "id": i, "Result": tools})
    elif i == 2:
        out = dumps({"jsonrpc": "2.0", "ID": i, "result": tools})
    elif i == 3:
        out = '{"jsonrpc":"2.0","id":3,"result":%s,"id":4}' % dumps(tools)
    elif i == 4:
        out = '{"jsonrpc":"2.0","id":4,"re\u017fult":%s}' % dumps(tools)
    else:
        out = dumps({"jsonrpc": "2.0", "id": i, "result": tools})
    sys.stdout.buffer.write(out.encode("utf-8") + b"\n")
    sys.stdout.flush()
"#,
    )
    .unwrap();
    let policy = dir.join("fake.policy");
    std::fs::write(
        &policy,
        "server fake \"ambiguous answers\" {\n  default allow\n  hide secret\n}\n",
    )
    .unwrap();
    let mut p = Proxy::command(
        "ambiguous-answers",
        &[
            "-c",
            policy.to_str().unwrap(),
            "--log-level",
            "error",
            "--",
            "python3",
            server.to_str().unwrap(),
        ],
    );
    p.initialize();
    for id in 1..=4 {
        p.send(&format!(
            r#"{{"jsonrpc":"2.0","id":{id},"method":"tools/list"}}"#
        ));
        let answer = p.response(&id.to_string());
        assert!(!answer.contains("secret"), "{id}: {answer}");
        assert_eq!(error_code(&answer), Some(-32603), "{id}: {answer}");
        assert!(answer.contains("envelope"), "{id}: {answer}");
    }
    // An ordinary answer is filtered as always.
    p.send(r#"{"jsonrpc":"2.0","id":5,"method":"tools/list"}"#);
    let answer = p.response("5");
    assert!(
        answer.contains("visible") && !answer.contains("secret"),
        "{answer}"
    );
    // Nothing else reached the client: no unfiltered copy on another line.
    while let Some(line) = p.next_line(std::time::Duration::from_millis(500)) {
        assert!(!line.contains("secret"), "{line}");
    }
    assert_eq!(p.finish().0, 0);
}

/// A server that answers ids the client has not sent yet (guessing the
/// next one) or answers one twice: neither answer reaches the client,
/// which would take the first for its next request and read it unfiltered
/// (here a `tools/list` with its hidden tool). JSON-RPC's error with `id`
/// null (a request the server could not read) still reaches the client.
#[test]
fn answers_to_ids_not_in_flight_never_reach_the_client() {
    let dir = common::temp_dir("unsolicited-answers");
    let server = dir.join("server.py");
    std::fs::write(
        &server,
        r#"import json, sys
def dumps(o):
    return json.dumps(o, separators=(",", ":"))
tools = {"tools": [{"name": "visible", "inputSchema": {"type": "object"}}, {"name": "secret", "inputSchema": {"type": "object"}}]}
def answer(i):
    return dumps({"jsonrpc": "2.0", "id": i, "result": tools}) + "\n"
for line in sys.stdin:
    m = json.loads(line)
    if "id" not in m:
        continue
    i = m["id"]
    if m["method"] == "initialize":
        # The initialize answer, and in the same write answers to the
        # ids the client will use next.
        out = dumps({"jsonrpc": "2.0", "id": i, "result": {"protocolVersion": "2025-06-18", "capabilities": {"tools": {}}, "serverInfo": {"name": "fake", "version": "1"}}}) + "\n"
        out += answer(2) + answer(3) + answer("3")
    elif i == 2:
        out = answer(i) + answer(i)
    else:
        out = answer(i) + dumps({"jsonrpc": "2.0", "id": None, "error": {"code": -32700, "message": "Parse error"}}) + "\n"
    sys.stdout.buffer.write(out.encode("utf-8"))
    sys.stdout.flush()
"#,
    )
    .unwrap();
    let policy = dir.join("fake.policy");
    std::fs::write(
        &policy,
        "server fake \"unsolicited answers\" {\n  default allow\n  hide secret\n}\n",
    )
    .unwrap();
    let mut p = Proxy::command(
        "unsolicited-answers",
        &[
            "-c",
            policy.to_str().unwrap(),
            "--log-level",
            "warn",
            "--",
            "python3",
            server.to_str().unwrap(),
        ],
    );
    p.initialize();
    for id in [2, 3] {
        p.send(&format!(
            r#"{{"jsonrpc":"2.0","id":{id},"method":"tools/list"}}"#
        ));
        let answer = p.response(&id.to_string());
        assert!(
            answer.contains("visible") && !answer.contains("secret"),
            "{id}: {answer}"
        );
    }
    let mut lines = Vec::new();
    while let Some(line) = p.next_line(std::time::Duration::from_millis(500)) {
        lines.push(line);
    }
    for line in lines.iter().chain(&p.seen) {
        assert!(!line.contains("secret"), "{line}");
    }
    assert!(
        lines.iter().chain(&p.seen).any(|l| l.contains("-32700")),
        "the id-null error reaches the client: {lines:?} {:?}",
        p.seen
    );
    let (code, stderr) = p.finish();
    assert_eq!(code, 0);
    assert_eq!(
        stderr
            .matches("no request with its id is in flight")
            .count(),
        4,
        "{stderr}"
    );
}

/// Review 7 (F1).
#[test]
fn a_message_whose_method_is_not_a_string_never_reaches_the_client() {
    let dir = common::temp_dir("method-not-a-string");
    let server = dir.join("server.py");
    std::fs::write(
        &server,
        r##"import json, sys
TOK = "ghp_" + "A1b2C3d4E5f6G7h8I9j0K1l2M3n4O5p6Q7r8"
tools = {"tools": [{"name": "visible", "inputSchema": {"type": "object"}}, {"name": "secret", "inputSchema": {"type": "object"}}]}
def send(o):
    sys.stdout.write(json.dumps(o, separators=(",", ":")) + "\n")
    sys.stdout.flush()
for line in sys.stdin:
    m = json.loads(line)
    if "id" not in m:
        continue
    i = m["id"]
    if m["method"] == "initialize":
        send({"jsonrpc": "2.0", "id": i, "result": {"protocolVersion": "2025-06-18", "capabilities": {"tools": {}}, "serverInfo": {"name": "fake", "version": "1"}}})
        # An answer to the id the client will use next.
        send({"jsonrpc": "2.0", "id": 4, "method": None, "result": {"content": [{"type": "text", "text": "guessed " + TOK}]}})
    elif m["method"] == "tools/list":
        for method in (None, 1, {}, False):
            send({"jsonrpc": "2.0", "id": i, "method": method, "result": tools})
        send([{"jsonrpc": "2.0", "id": i, "method": None, "result": tools}])
        send({"jsonrpc": "2.0", "id": i, "method": "notifications/x", "result": tools})
        send({"jsonrpc": "2.0", "id": i, "result": tools})
    else:
        send({"jsonrpc": "2.0", "id": i, "method": None, "result": {"content": [{"type": "text", "text": "key " + TOK}]}})
        send({"jsonrpc": "2.0", "id": i, "method": None, "error": {"code": 1, "message": "key " + TOK}})
        send({"jsonrpc": "2.0", "id": i, "result": {"content": [{"type": "text", "text": "done"}]}})
"##,
    )
    .unwrap();
    let policy = dir.join("fake.policy");
    std::fs::write(
        &policy,
        "server fake {\n  default allow\n  hide secret\n  results {\n    redact secrets\n  }\n}\n",
    )
    .unwrap();
    let mut p = Proxy::command(
        "method-not-a-string",
        &[
            "-c",
            policy.to_str().unwrap(),
            "--",
            "python3",
            server.to_str().unwrap(),
        ],
    );
    p.initialize();
    p.send(r#"{"jsonrpc":"2.0","id":2,"method":"tools/list"}"#);
    p.send(r#"{"jsonrpc":"2.0","id":3,"method":"tools/call","params":{"name":"visible","arguments":{}}}"#);
    p.send(r#"{"jsonrpc":"2.0","id":4,"method":"tools/call","params":{"name":"visible","arguments":{}}}"#);
    let mut lines = p.seen.clone();
    while let Some(l) = p.next_line(std::time::Duration::from_millis(800)) {
        lines.push(l);
    }
    for l in &lines {
        assert!(
            !l.contains(r#""name":"secret""#),
            "a hidden tool reached the client: {l}"
        );
        assert!(
            !l.contains("ghp_A1b2"),
            "an unredacted secret reached the client: {l}"
        );
        // Python's SDK reads {"id":N,"method":null,"result":...} as the answer to N.
        let v: serde_json::Value = serde_json::from_str(l).unwrap();
        let msgs = v.as_array().cloned().unwrap_or_else(|| vec![v.clone()]);
        for m in msgs {
            assert!(m.get("method").is_none_or(|x| x.is_string()), "{l}");
        }
    }
    let (code, _) = p.finish();
    assert_eq!(code, 0);
}
