//! Symlinks (docs/surfaces.md, "Symlinks"): when the proxy starts the server
//! itself, a `file://` read is decided on the URI as sent and on the path
//! it resolves to. The real `@modelcontextprotocol/server-filesystem`, whose
//! allowed root holds both the link and its target (so the server itself
//! would follow the link), behind the real binary over stdio and Streamable
//! HTTP; `--no-resolve-symlinks` and `--upstream` leave links alone.

mod common;

use std::io::{BufRead, BufReader, Read, Write};
use std::net::{TcpListener, TcpStream};
use std::path::PathBuf;
use std::process::{Command, Stdio};
use std::time::Duration;

use common::{Proxy, root};
use serde_json::{Value, json};

fn server_filesystem() -> PathBuf {
    let p = root().join(".deps/node_modules/@modelcontextprotocol/server-filesystem/dist/index.js");
    assert!(
        p.exists(),
        "{} is missing: run scripts/deps to install @modelcontextprotocol/server-filesystem",
        p.display()
    );
    p
}

/// A tree with a secret, links into it from the public side, and a link
/// loop; the policy denying the secret directory. Returns (dir, root, policy).
fn tree(name: &str) -> (PathBuf, String, String) {
    let dir = common::temp_dir(name);
    let root = dir.join("root");
    std::fs::create_dir_all(root.join("public")).unwrap();
    std::fs::create_dir_all(root.join("secret")).unwrap();
    std::fs::write(root.join("public/readme.txt"), "hello").unwrap();
    std::fs::write(root.join("secret/key.txt"), "TOPSECRET").unwrap();
    std::os::unix::fs::symlink("../secret", root.join("public/link")).unwrap();
    std::os::unix::fs::symlink("../secret/key.txt", root.join("public/keylink")).unwrap();
    std::os::unix::fs::symlink("loop", root.join("public/loop")).unwrap();
    let root = std::fs::canonicalize(&root).unwrap().display().to_string();
    let policy = dir.join("filesystem.policy");
    std::fs::write(
        &policy,
        format!(
            "server filesystem {{\n  resource \"file://{root}/secret/**\" {{\n    deny \"Secret files are off limits\"\n  }}\n}}\n"
        ),
    )
    .unwrap();
    (dir, root, policy.display().to_string())
}

fn read(p: &mut Proxy, id: u64, uri: &str) -> Value {
    p.send(
        &json!({"jsonrpc":"2.0","id":id,"method":"resources/read","params":{"uri":uri}})
            .to_string(),
    );
    serde_json::from_str(&p.response(&id.to_string())).unwrap()
}

fn message(v: &Value) -> &str {
    v["error"]["message"].as_str().unwrap_or_default()
}

/// Over stdio: links into the secret directory are refused, a link loop
/// fails closed, plain public files are forwarded (this server has no
/// resources: it answers that the method is not found), and nothing the
/// policy refused reached the server.
#[test]
fn reads_through_symlinks_are_decided_on_their_targets() {
    let (dir, r, policy) = tree("symlinks-stdio");
    let tap = dir.join("server-received.jsonl");
    let audit = dir.join("audit.jsonl");
    let mut p = Proxy::command(
        "symlinks-stdio-proxy",
        &[
            "-c",
            &policy,
            "--audit-log",
            audit.to_str().unwrap(),
            "--",
            root().join("tests/e2e/tap.sh").to_str().unwrap(),
            tap.to_str().unwrap(),
            "node",
            server_filesystem().to_str().unwrap(),
            // The server's root holds the links and their target.
            &r,
        ],
    );
    p.initialize();
    for (id, uri) in [
        (1, format!("file://{r}/public/keylink")),
        (2, format!("file://{r}/public/link/key.txt")),
        (3, format!("FILE://{r}/public/./link//key.txt")),
        (4, format!("file://{r}/public/link/")),
    ] {
        let v = read(&mut p, id, &uri);
        assert_eq!(v["error"]["code"], -32003, "{uri}: {v}");
        assert_eq!(
            message(&v),
            "[POLICY DENIED] Secret files are off limits",
            "{uri}: {v}"
        );
        // The decision names the resolved resource and the rule.
        let d = &v["error"]["data"]["dev.portcullis/decision"];
        assert!(
            d["resource"]
                .as_str()
                .unwrap()
                .starts_with(&format!("file://{r}/secret")),
            "{v}"
        );
        assert_eq!(
            d["rule_label"],
            format!("resource file://{r}/secret/** rule 1"),
            "{v}"
        );
    }
    // A loop cannot be resolved: refused, never forwarded.
    let v = read(&mut p, 5, &format!("file://{r}/public/loop"));
    assert_eq!(v["error"]["code"], -32003, "{v}");
    assert!(
        message(&v).contains("cannot be resolved on the filesystem"),
        "{v}"
    );
    // What resolves to itself, or to nothing, goes on.
    for (id, uri) in [
        (6, format!("file://{r}/public/readme.txt")),
        (7, format!("file://{r}/public/missing.txt")),
    ] {
        let v = read(&mut p, id, &uri);
        assert_eq!(v["error"]["code"], -32601, "forwarded: {uri}: {v}");
    }
    // As a subscription too.
    p.send(&json!({"jsonrpc":"2.0","id":8,"method":"resources/subscribe","params":{"uri":format!("file://{r}/public/keylink")}}).to_string());
    let v: Value = serde_json::from_str(&p.response("8")).unwrap();
    assert_eq!(v["error"]["code"], -32003, "{v}");
    let (code, _) = p.finish();
    assert_eq!(code, 0);
    let received = std::fs::read_to_string(&tap).unwrap_or_default();
    let reads: Vec<&str> = received
        .lines()
        .filter(|l| l.contains("\"resources/"))
        .collect();
    assert_eq!(reads.len(), 2, "only the two forwarded reads: {reads:?}");
    assert!(
        !received.contains("keylink") && !received.contains("/link"),
        "{received}"
    );
    // The decision log records the denial on the resolved URI, and the
    // loop as a rejection.
    let log = std::fs::read_to_string(&audit).unwrap();
    let lines: Vec<Value> = log
        .lines()
        .map(|l| serde_json::from_str(l).unwrap())
        .collect();
    let denied = lines
        .iter()
        .filter(|l| l["tool"] == format!("resource:file://{r}/secret/key.txt"))
        .count();
    assert_eq!(denied, 4, "three reads and a subscription: {log}");
    assert!(
        lines
            .iter()
            .any(|l| l["tool"] == format!("resource:file://{r}/public/loop")),
        "{log}"
    );
}

/// `--no-resolve-symlinks`: the read is decided on the URI as sent only.
#[test]
fn the_opt_out_leaves_links_to_the_server() {
    let (_dir, r, policy) = tree("symlinks-off");
    let mut p = Proxy::command(
        "symlinks-off-proxy",
        &[
            "-c",
            &policy,
            "--no-resolve-symlinks",
            "--",
            "node",
            server_filesystem().to_str().unwrap(),
            &r,
        ],
    );
    p.initialize();
    let v = read(&mut p, 1, &format!("file://{r}/public/keylink"));
    assert_eq!(v["error"]["code"], -32601, "forwarded: {v}");
    // The URI as sent is still decided.
    let v = read(&mut p, 2, &format!("file://{r}/secret/key.txt"));
    assert_eq!(v["error"]["code"], -32003, "{v}");
    p.finish();
}

/// An approval rule on the link's side does not hold a read whose target
/// is denied: the target's denial is the decision (nobody is asked to
/// approve a read the policy refuses), while a public file is held for
/// approval as the rule says.
#[test]
fn an_approval_rule_does_not_cover_a_link_to_a_denied_target() {
    let (dir, r, _) = tree("symlinks-approval");
    let dir = dir.join("approval");
    std::fs::create_dir_all(&dir).unwrap();
    let policy = dir.join("filesystem.policy");
    std::fs::write(
        &policy,
        format!(
            "server filesystem {{\n  resource \"file://{r}/public/**\" {{\n    approve \"Reading public files needs a person\"\n  }}\n  resource \"file://{r}/secret/**\" {{\n    deny \"Secret files are off limits\"\n  }}\n}}\n"
        ),
    )
    .unwrap();
    let state = dir.join("state");
    let mut p = Proxy::command(
        "symlinks-approval-proxy",
        &[
            "-c",
            policy.to_str().unwrap(),
            "--state-dir",
            state.to_str().unwrap(),
            "--",
            "node",
            server_filesystem().to_str().unwrap(),
            &r,
        ],
    );
    p.initialize();
    let v = read(&mut p, 1, &format!("file://{r}/public/keylink"));
    assert_eq!(v["error"]["code"], -32003, "{v}");
    assert_eq!(
        message(&v),
        "[POLICY DENIED] Secret files are off limits",
        "{v}"
    );
    // Nobody is asked: no approval record.
    assert!(
        v["error"]["data"]["dev.portcullis/approval"].is_null(),
        "{v}"
    );
    let v = read(&mut p, 2, &format!("file://{r}/public/readme.txt"));
    assert_eq!(v["error"]["code"], -32003, "{v}");
    assert!(
        message(&v).starts_with("[APPROVAL REQUIRED] Reading public files needs a person"),
        "{v}"
    );
    p.finish();
}

/// Kills the process when dropped.
struct Guard(std::process::Child);

impl Drop for Guard {
    fn drop(&mut self) {
        let _ = self.0.kill();
        let _ = self.0.wait();
    }
}

/// `portcullis --transport http ARGS`: the guard and the endpoint URL.
fn endpoint(args: &[&str]) -> (Guard, String) {
    let mut child = Command::new(common::portcullis())
        .args(["--transport", "http", "--port", "0"])
        .args(args)
        .current_dir(root())
        .stdin(Stdio::null())
        .stdout(Stdio::null())
        .stderr(Stdio::piped())
        .spawn()
        .expect("start portcullis");
    let err = child.stderr.take().unwrap();
    let guard = Guard(child);
    let mut lines = BufReader::new(err).lines();
    loop {
        let line = lines.next().expect("portcullis prints its URL").unwrap();
        if let Some(url) = line.strip_prefix("portcullis: listening on ") {
            let url = url.trim().to_string();
            std::thread::spawn(move || for _ in lines {});
            return (guard, url);
        }
    }
}

/// One POST on its own connection: (head, body).
fn post(url: &str, session: Option<&str>, body: &str) -> (String, String) {
    let rest = url.strip_prefix("http://").unwrap();
    let (authority, path) = rest.split_at(rest.find('/').unwrap());
    let mut s = TcpStream::connect(authority).unwrap();
    s.set_read_timeout(Some(Duration::from_secs(60))).unwrap();
    let mut req = format!(
        "POST {path} HTTP/1.1\r\nHost: {authority}\r\nConnection: close\r\nContent-Type: application/json\r\nAccept: application/json, text/event-stream\r\nContent-Length: {}\r\n",
        body.len()
    );
    if let Some(sid) = session {
        req.push_str(&format!("Mcp-Session-Id: {sid}\r\n"));
    }
    req.push_str("\r\n");
    req.push_str(body);
    s.write_all(req.as_bytes()).unwrap();
    let mut out = Vec::new();
    let _ = s.read_to_end(&mut out);
    let text = String::from_utf8_lossy(&out).into_owned();
    let (head, body) = text.split_once("\r\n\r\n").expect("a response");
    (head.to_string(), body.to_string())
}

/// The JSON-RPC message in a response body (plain, chunked or SSE).
fn message_of(body: &str) -> Value {
    body.lines()
        .filter_map(|l| l.strip_prefix("data: ").or(Some(l)))
        .find_map(|l| {
            serde_json::from_str::<Value>(l.trim())
                .ok()
                .filter(|v| v.is_object())
        })
        .unwrap_or_else(|| panic!("no message in {body}"))
}

fn http_read(url: &str, sid: &str, id: u64, uri: &str) -> Value {
    let body = json!({"jsonrpc":"2.0","id":id,"method":"resources/read","params":{"uri":uri}});
    message_of(&post(url, Some(sid), &body.to_string()).1)
}

fn http_session(url: &str) -> String {
    let init = r#"{"jsonrpc":"2.0","id":0,"method":"initialize","params":{"protocolVersion":"2025-06-18","capabilities":{},"clientInfo":{"name":"t","version":"1"}}}"#;
    let (head, _) = post(url, None, init);
    let sid = head
        .lines()
        .find_map(|l| {
            l.to_ascii_lowercase()
                .strip_prefix("mcp-session-id: ")
                .map(str::to_string)
        })
        .expect("a session id");
    post(
        url,
        Some(&sid),
        r#"{"jsonrpc":"2.0","method":"notifications/initialized"}"#,
    );
    sid
}

/// Over Streamable HTTP, the server a per-session child: the same.
#[test]
fn per_session_children_over_http_resolve_links_too() {
    let (_dir, r, policy) = tree("symlinks-http");
    let fs = server_filesystem();
    let (_proxy, url) = endpoint(&["-c", &policy, "--", "node", fs.to_str().unwrap(), &r]);
    let sid = http_session(&url);
    let v = http_read(&url, &sid, 1, &format!("file://{r}/public/link/key.txt"));
    assert_eq!(v["error"]["code"], -32003, "{v}");
    assert_eq!(
        message(&v),
        "[POLICY DENIED] Secret files are off limits",
        "{v}"
    );
    let v = http_read(&url, &sid, 2, &format!("file://{r}/public/readme.txt"));
    assert_eq!(v["error"]["code"], -32601, "forwarded: {v}");
}

/// `--upstream URL`: the server may see another filesystem; links are not
/// resolved (the read of a link is forwarded: server-everything answers
/// it does not know the resource).
#[test]
fn an_upstream_url_is_not_resolved() {
    let (_dir, r, policy) = tree("symlinks-upstream");
    let port = TcpListener::bind("127.0.0.1:0")
        .unwrap()
        .local_addr()
        .unwrap()
        .port();
    let mut child = Command::new("node")
        .arg(common::server_everything())
        .arg("streamableHttp")
        .env("PORT", port.to_string())
        .current_dir(root())
        .stdin(Stdio::null())
        .stdout(Stdio::null())
        .stderr(Stdio::piped())
        .spawn()
        .unwrap();
    let err = child.stderr.take().unwrap();
    let _server = Guard(child);
    let mut lines = BufReader::new(err).lines();
    while !lines
        .next()
        .expect("server-everything exited")
        .unwrap()
        .contains("listening on port")
    {}
    std::thread::spawn(move || for _ in lines {});
    let upstream = format!("http://127.0.0.1:{port}/mcp");
    let mut p = Proxy::command(
        "symlinks-upstream-proxy",
        &["-c", &policy, "--upstream", &upstream],
    );
    p.initialize();
    let v = read(&mut p, 1, &format!("file://{r}/public/keylink"));
    assert!(v["error"].is_object(), "{v}");
    assert!(!message(&v).contains("POLICY DENIED"), "forwarded: {v}");
    let v = read(&mut p, 2, &format!("file://{r}/secret/key.txt"));
    assert_eq!(v["error"]["code"], -32003, "{v}");
    p.finish();
}
