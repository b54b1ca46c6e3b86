//! The HTTP transports against hostile and broken peers: scripted HTTP
//! upstreams (HTML error pages, unreachable ports, expired sessions,
//! multi-MiB SSE events), the local endpoint's refusals (Origin, size,
//! sessions), and a legacy HTTP+SSE upstream (the real server-everything in
//! its `sse` mode).

mod common;

use std::io::{BufRead, BufReader, Read, Write};
use std::net::{TcpListener, TcpStream};
use std::process::{Command, Stdio};
use std::sync::mpsc;
use std::sync::{Arc, Mutex};
use std::time::Duration;

use common::{
    ACCEPT, Guard, INIT, JSON, Proxy, error_code, http, http_endpoint, is_denial, send_request,
};

/// One request as the scripted upstream saw it.
#[derive(Debug, Clone)]
struct Req {
    method: String,
    headers: Vec<(String, String)>,
    body: String,
}

impl Req {
    fn header(&self, name: &str) -> Option<&str> {
        self.headers
            .iter()
            .find(|(k, _)| k.eq_ignore_ascii_case(name))
            .map(|(_, v)| v.as_str())
    }
}

/// A scripted HTTP/1.1 server on a free loopback port: every request is
/// recorded and answered by `answer` (raw bytes; the connection is closed).
struct Upstream {
    port: u16,
    seen: Arc<Mutex<Vec<Req>>>,
}

impl Upstream {
    fn start(answer: impl Fn(&Req) -> Vec<u8> + Send + Sync + 'static) -> Upstream {
        let listener = TcpListener::bind("127.0.0.1:0").unwrap();
        let port = listener.local_addr().unwrap().port();
        let seen = Arc::new(Mutex::new(Vec::new()));
        let answer = Arc::new(answer);
        let s = seen.clone();
        std::thread::spawn(move || {
            for conn in listener.incoming() {
                let Ok(conn) = conn else { break };
                let (s, answer) = (s.clone(), answer.clone());
                std::thread::spawn(move || serve(conn, &s, &*answer));
            }
        });
        Upstream { port, seen }
    }

    fn url(&self) -> String {
        format!("http://127.0.0.1:{}/mcp", self.port)
    }

    fn seen(&self) -> Vec<Req> {
        self.seen.lock().unwrap().clone()
    }
}

fn serve(conn: TcpStream, seen: &Mutex<Vec<Req>>, answer: &(dyn Fn(&Req) -> Vec<u8> + Sync)) {
    let mut r = BufReader::new(conn.try_clone().unwrap());
    let mut w = conn;
    // One request per connection: every answer closes it.
    {
        let mut line = String::new();
        if r.read_line(&mut line).unwrap_or(0) == 0 {
            return;
        }
        let method = line.split(' ').next().unwrap_or("").to_string();
        let mut headers = Vec::new();
        loop {
            let mut h = String::new();
            if r.read_line(&mut h).unwrap_or(0) == 0 {
                return;
            }
            let h = h.trim_end();
            if h.is_empty() {
                break;
            }
            if let Some((k, v)) = h.split_once(':') {
                headers.push((k.trim().to_string(), v.trim().to_string()));
            }
        }
        let len: usize = headers
            .iter()
            .find(|(k, _)| k.eq_ignore_ascii_case("content-length"))
            .and_then(|(_, v)| v.parse().ok())
            .unwrap_or(0);
        let mut body = vec![0; len];
        if r.read_exact(&mut body).is_err() {
            return;
        }
        let req = Req {
            method,
            headers,
            body: String::from_utf8_lossy(&body).into_owned(),
        };
        seen.lock().unwrap().push(req.clone());
        let _ = w.write_all(&answer(&req));
        let _ = w.flush();
    }
}

fn response(status: &str, headers: &[(&str, &str)], body: &[u8]) -> Vec<u8> {
    let mut out = format!(
        "HTTP/1.1 {status}\r\nConnection: close\r\nContent-Length: {}\r\n",
        body.len()
    );
    for (k, v) in headers {
        out.push_str(&format!("{k}: {v}\r\n"));
    }
    out.push_str("\r\n");
    let mut out = out.into_bytes();
    out.extend_from_slice(body);
    out
}

/// The JSON-RPC id of a request body, as raw JSON.
fn id_of(body: &str) -> String {
    let v: serde_json::Value = serde_json::from_str(body).unwrap_or_default();
    v["id"].to_string()
}

fn method_of(body: &str) -> String {
    let v: serde_json::Value = serde_json::from_str(body).unwrap_or_default();
    v["method"].as_str().unwrap_or("").to_string()
}

/// A policy file allowing one `t` call per minute and hiding `secret`.
fn one_per_minute(dir: &std::path::Path) -> String {
    let p = dir.join("limit.yaml");
    std::fs::write(
        &p,
        "tools:\n  t:\n    rules:\n      - action: allow\n        rate_limit:\n          max: 1\n          window: 60\n  secret:\n    rules:\n      - action: deny\n        reason: \"no\"\n",
    )
    .unwrap();
    p.display().to_string()
}

fn call_t(id: u64) -> String {
    format!(
        r#"{{"jsonrpc":"2.0","id":{id},"method":"tools/call","params":{{"name":"t","arguments":{{}}}}}}"#
    )
}

#[test]
fn an_html_error_page_becomes_a_json_rpc_error_and_the_counters_roll_back() {
    let up = Upstream::start(|_| {
        response(
            "502 Bad Gateway",
            &[("Content-Type", "text/html")],
            b"<html><head><title>502 Bad Gateway</title></head><body><h1>502 Bad Gateway</h1><hr>nginx</body></html>",
        )
    });
    let dir = common::temp_dir("http-502-policy");
    let policy = one_per_minute(&dir);
    let mut p = Proxy::command("http-502", &["-c", &policy, "--upstream", &up.url()]);
    p.send(INIT);
    let r = p.response("1");
    assert_eq!(error_code(&r), Some(-32000), "{r}");
    assert!(
        r.contains("HTTP 502 Bad Gateway") && r.contains("nginx"),
        "{r}"
    );
    assert!(!r.contains('<'), "HTML reached the client: {r}");
    // The limit is 1 per minute: every failed call gives its unit back.
    for id in 2..5 {
        p.send(&call_t(id));
        let r = p.response(&id.to_string());
        assert_eq!(error_code(&r), Some(-32000), "call {id}: {r}");
        assert!(
            !is_denial(&r),
            "call {id} was denied: the unit of a failed call was kept: {r}"
        );
    }
    let calls = up
        .seen()
        .iter()
        .filter(|r| r.body.contains("tools/call"))
        .count();
    assert_eq!(calls, 3);
    for l in &p.seen {
        assert!(!l.contains('<'), "HTML reached the client: {l}");
    }
    let (code, err) = p.finish();
    assert_eq!(code, 0, "{err}");
}

#[test]
fn an_unreachable_upstream_gives_errors_and_the_proxy_keeps_serving() {
    let port = TcpListener::bind("127.0.0.1:0")
        .unwrap()
        .local_addr()
        .unwrap()
        .port();
    let dir = common::temp_dir("http-unreachable-policy");
    let policy = one_per_minute(&dir);
    let url = format!("http://127.0.0.1:{port}/mcp");
    let mut p = Proxy::command("http-unreachable", &["-c", &policy, "--upstream", &url]);
    p.send(INIT);
    let r = p.response("1");
    assert_eq!(error_code(&r), Some(-32000), "{r}");
    assert!(r.contains("cannot reach the upstream"), "{r}");
    // Still enforcing and answering.
    p.send(r#"{"jsonrpc":"2.0","id":2,"method":"tools/call","params":{"name":"secret","arguments":{}}}"#);
    assert!(is_denial(&p.response("2")));
    p.send(&call_t(3));
    assert_eq!(error_code(&p.response("3")), Some(-32000));
    p.send(&call_t(4));
    let r = p.response("4");
    assert!(!is_denial(&r), "the failed call kept its unit: {r}");
    let (code, err) = p.finish();
    assert_eq!(code, 0, "{err}");
    assert!(err.contains("cannot reach the upstream"), "{err}");
}

/// An upstream that keeps sessions: initialize gets `Mcp-Session-Id: s1`;
/// afterwards it answers 404 (the session expired).
fn expiring_upstream() -> Upstream {
    Upstream::start(|req| {
        if method_of(&req.body) == "initialize" {
            let body = format!(
                r#"{{"jsonrpc":"2.0","id":{},"result":{{"protocolVersion":"2025-06-18","capabilities":{{}},"serverInfo":{{"name":"x","version":"1"}}}}}}"#,
                id_of(&req.body)
            );
            return response(
                "200 OK",
                &[
                    ("Content-Type", "application/json"),
                    ("Mcp-Session-Id", "s1"),
                ],
                body.as_bytes(),
            );
        }
        response(
            "404 Not Found",
            &[("Content-Type", "text/plain")],
            b"no such session",
        )
    })
}

#[test]
fn an_expired_upstream_session_is_reported_clearly() {
    let up = expiring_upstream();
    let mut p = Proxy::command(
        "http-expired",
        &["--server", "everything", "--upstream", &up.url()],
    );
    p.send(INIT);
    assert!(
        p.response("1")
            .contains("\"protocolVersion\":\"2025-06-18\"")
    );
    p.send(r#"{"jsonrpc":"2.0","id":2,"method":"tools/list"}"#);
    let r = p.response("2");
    assert_eq!(error_code(&r), Some(-32000), "{r}");
    assert!(r.contains("ended the MCP session"), "{r}");
    let seen = up.seen();
    let list = seen.iter().find(|r| r.body.contains("tools/list")).unwrap();
    assert_eq!(list.header("mcp-session-id"), Some("s1"));
    assert_eq!(list.header("mcp-protocol-version"), Some("2025-06-18"));
    p.finish();
}

/// An upstream whose tools/call answer is an SSE stream with one event of `size` bytes of text.
fn big_event_upstream(size: usize) -> Upstream {
    Upstream::start(move |req| {
        let m = method_of(&req.body);
        let id = id_of(&req.body);
        if m == "initialize" {
            let body = format!(
                r#"{{"jsonrpc":"2.0","id":{id},"result":{{"protocolVersion":"2025-06-18","capabilities":{{}},"serverInfo":{{"name":"x","version":"1"}}}}}}"#
            );
            return response(
                "200 OK",
                &[
                    ("Content-Type", "application/json"),
                    ("Mcp-Session-Id", "big"),
                ],
                body.as_bytes(),
            );
        }
        if m == "tools/call" {
            let text = "x".repeat(size);
            let mut body = Vec::new();
            body.extend_from_slice(b": a comment first\n\nevent: message\nid: e1\ndata: ");
            body.extend_from_slice(
                format!(r#"{{"jsonrpc":"2.0","id":{id},"result":{{"content":[{{"type":"text","text":"{text}"}}]}}}}"#)
                    .as_bytes(),
            );
            body.extend_from_slice(b"\n\n");
            return response("200 OK", &[("Content-Type", "text/event-stream")], &body);
        }
        if req.method == "GET" {
            return response("405 Method Not Allowed", &[], b"");
        }
        response("202 Accepted", &[], b"")
    })
}

#[test]
fn a_multi_mib_sse_event_is_relayed_whole_to_a_stdio_client() {
    let size = 6 << 20;
    let up = big_event_upstream(size);
    let mut p = Proxy::command(
        "http-big",
        &["--server", "everything", "--upstream", &up.url()],
    );
    p.send(INIT);
    p.response("1");
    p.send(r#"{"jsonrpc":"2.0","id":2,"method":"tools/call","params":{"name":"echo","arguments":{"message":"big"}}}"#);
    let r = p.response("2");
    let v: serde_json::Value = serde_json::from_str(&r).expect("one JSON line");
    assert_eq!(
        v["result"]["content"][0]["text"].as_str().unwrap().len(),
        size
    );
    p.finish();
}

/// What `conn` carried (raw: head and chunk sizes included) up to the
/// first read that contains `until`, or up to its end.
fn read_until(conn: &mut TcpStream, until: &str) -> String {
    let mut seen = Vec::new();
    let mut buf = [0u8; 4096];
    loop {
        let n = conn.read(&mut buf).unwrap_or(0);
        seen.extend_from_slice(&buf[..n]);
        let text = String::from_utf8_lossy(&seen).into_owned();
        if n == 0 || text.contains(until) {
            return text;
        }
    }
}

#[test]
fn the_local_endpoint_refuses_bad_origins_big_bodies_and_unknown_sessions() {
    let up = expiring_upstream();
    let (_p, url) = http_endpoint(&[
        "--server",
        "everything",
        "--max-message-size",
        "4096",
        "--upstream",
        &up.url(),
    ]);
    let init = INIT.as_bytes();
    for origin in [
        "http://evil.example",
        "null",
        "http://localhost.evil.example",
    ] {
        let (status, _, _) = http(&url, "POST", &[JSON, ACCEPT, ("Origin", origin)], init);
        assert_eq!(status, 403, "Origin {origin}");
    }
    let (status, _, _) = http(
        &url,
        "POST",
        &[JSON, ACCEPT, ("Origin", "http://localhost:6274")],
        init,
    );
    assert_eq!(status, 200, "a loopback origin is fine");
    let big = vec![b' '; 5000];
    let (status, _, body) = http(&url, "POST", &[JSON, ACCEPT], &big);
    assert_eq!(status, 413, "{}", String::from_utf8_lossy(&body));
    let (status, _, _) = http(
        &url,
        "POST",
        &[JSON, ACCEPT, ("Mcp-Session-Id", "0123456789abcdef")],
        b"{}",
    );
    assert_eq!(status, 404);
    let (status, _, _) = http(
        &url,
        "GET",
        &[("Accept", "text/event-stream"), ("Mcp-Session-Id", "nope")],
        b"",
    );
    assert_eq!(status, 404);
    let (status, _, _) = http(
        &url,
        "POST",
        &[JSON, ACCEPT],
        br#"{"jsonrpc":"2.0","id":1,"method":"ping"}"#,
    );
    assert_eq!(
        status, 400,
        "a request without a session id that is not initialize"
    );
    let (status, _, _) = http(&url, "DELETE", &[], b"");
    assert_eq!(status, 400);
    let (status, _, _) = http(
        &url,
        "POST",
        &[("Content-Type", "text/plain"), ACCEPT],
        init,
    );
    assert_eq!(status, 415);
    let (status, _, _) = http(
        &url.replace("/mcp", "/other"),
        "POST",
        &[JSON, ACCEPT],
        init,
    );
    assert_eq!(status, 404);
    let (status, _, _) = http(&url, "PUT", &[JSON], init);
    assert_eq!(status, 405);
}

#[test]
fn an_upstream_404_ends_the_client_session_with_404() {
    let up = expiring_upstream();
    let (_p, url) = http_endpoint(&["--server", "everything", "--upstream", &up.url()]);
    let (status, head, body) = http(&url, "POST", &[JSON, ACCEPT], INIT.as_bytes());
    assert_eq!(status, 200, "{}", String::from_utf8_lossy(&body));
    let sid = session_id(&head);
    assert_eq!(sid.len(), 32, "{sid}");
    assert_ne!(sid, "s1", "the upstream's session id is not handed out");
    let list = br#"{"jsonrpc":"2.0","id":2,"method":"tools/list"}"#;
    let (status, _, _) = http(
        &url,
        "POST",
        &[JSON, ACCEPT, ("Mcp-Session-Id", &sid)],
        list,
    );
    assert_eq!(
        status, 404,
        "the upstream ended the session: so does the proxy"
    );
    let (status, _, _) = http(
        &url,
        "POST",
        &[JSON, ACCEPT, ("Mcp-Session-Id", &sid)],
        list,
    );
    assert_eq!(status, 404);
}

#[test]
fn an_upstream_404_to_the_get_stream_ends_the_client_session_as_a_post_does() {
    let up = expiring_upstream();
    let (_p, url) = http_endpoint(&["--server", "everything", "--upstream", &up.url()]);
    let (status, head, body) = http(&url, "POST", &[JSON, ACCEPT], INIT.as_bytes());
    assert_eq!(status, 200, "{}", String::from_utf8_lossy(&body));
    let sid = session_id(&head);
    let (status, _, body) = http(
        &url,
        "GET",
        &[("Accept", "text/event-stream"), ("Mcp-Session-Id", &sid)],
        b"",
    );
    let body = String::from_utf8_lossy(&body);
    assert_eq!(status, 404, "{body}");
    // The same answer as a POST that finds the upstream session gone.
    assert!(
        body.contains(
            "Session not found: the upstream MCP server ended the session; initialize a new session"
        ),
        "{body}"
    );
    let list = br#"{"jsonrpc":"2.0","id":2,"method":"tools/list"}"#;
    let (status, _, body) = http(
        &url,
        "POST",
        &[JSON, ACCEPT, ("Mcp-Session-Id", &sid)],
        list,
    );
    assert_eq!(status, 404, "the session is gone");
    assert!(
        String::from_utf8_lossy(&body).contains("Session not found: initialize a new session"),
        "the proxy's own 404 (the upstream was not asked)"
    );
}

#[test]
fn a_multi_mib_sse_event_is_relayed_whole_to_an_http_client() {
    let size = 6 << 20;
    let up = big_event_upstream(size);
    let (_p, url) = http_endpoint(&["--server", "everything", "--upstream", &up.url()]);
    let (status, head, _) = http(&url, "POST", &[JSON, ACCEPT], INIT.as_bytes());
    assert_eq!(status, 200);
    let sid = session_id(&head);
    let call = br#"{"jsonrpc":"2.0","id":2,"method":"tools/call","params":{"name":"echo","arguments":{"message":"big"}}}"#;
    let (status, head, body) = http(
        &url,
        "POST",
        &[JSON, ACCEPT, ("Mcp-Session-Id", &sid)],
        call,
    );
    assert_eq!(status, 200);
    assert!(
        head.to_ascii_lowercase()
            .contains("content-type: text/event-stream"),
        "{head}"
    );
    let text = String::from_utf8(body).unwrap();
    let data = text
        .lines()
        .find_map(|l| l.strip_prefix("data: "))
        .expect("a data line");
    let v: serde_json::Value = serde_json::from_str(data).unwrap();
    assert_eq!(
        v["result"]["content"][0]["text"].as_str().unwrap().len(),
        size
    );
    // Denials come back as plain JSON.
    let denied = br#"{"jsonrpc":"2.0","id":3,"method":"tools/call","params":{"name":"get-env","arguments":{}}}"#;
    let (status, _, body) = http(
        &url,
        "POST",
        &[JSON, ACCEPT, ("Mcp-Session-Id", &sid)],
        denied,
    );
    assert_eq!(status, 200);
    assert!(is_denial(&String::from_utf8_lossy(&body)));
    // Notifications get 202.
    let note = br#"{"jsonrpc":"2.0","method":"notifications/initialized"}"#;
    let (status, _, _) = http(
        &url,
        "POST",
        &[JSON, ACCEPT, ("Mcp-Session-Id", &sid)],
        note,
    );
    assert_eq!(status, 202);
    let (status, _, _) = http(&url, "DELETE", &[("Mcp-Session-Id", &sid)], b"");
    assert_eq!(status, 200);
    let (status, _, _) = http(
        &url,
        "POST",
        &[JSON, ACCEPT, ("Mcp-Session-Id", &sid)],
        note,
    );
    assert_eq!(status, 404, "a deleted session is gone");
}

#[test]
fn a_legacy_sse_upstream_works() {
    let port = TcpListener::bind("127.0.0.1:0")
        .unwrap()
        .local_addr()
        .unwrap()
        .port();
    let mut server = Command::new("node")
        .arg(common::server_everything())
        .arg("sse")
        .env("PORT", port.to_string())
        .stdin(Stdio::null())
        .stdout(Stdio::null())
        .stderr(Stdio::piped())
        .spawn()
        .expect("start node");
    let err = server.stderr.take().unwrap();
    let _server = Guard(server);
    let (tx, rx) = mpsc::channel();
    std::thread::spawn(move || {
        for line in BufReader::new(err).lines() {
            let Ok(line) = line else { break };
            let _ = tx.send(line);
        }
    });
    loop {
        let line = rx
            .recv_timeout(Duration::from_secs(30))
            .expect("server-everything starts");
        if line.contains("running on port") {
            break;
        }
    }
    let url = format!("http://127.0.0.1:{port}/sse");
    let mut p = Proxy::command(
        "http-legacy",
        &["--server", "everything", "--upstream", &url],
    );
    let init = p.initialize();
    assert!(init.contains("mcp-servers/everything"), "{init}");
    p.send(r#"{"jsonrpc":"2.0","id":2,"method":"tools/list"}"#);
    let list = p.response("2");
    assert!(
        list.contains("\"echo\"") && !list.contains("\"get-env\""),
        "{list}"
    );
    let r = p.call(3, "echo", r#"{"message":"legacy"}"#);
    assert!(r.contains("Echo: legacy"), "{r}");
    assert!(is_denial(&p.call(4, "get-env", "{}")));
    let (code, err) = p.finish();
    assert_eq!(code, 0, "{err}");

    // The same legacy upstream behind the local Streamable HTTP endpoint.
    let (_p, endpoint_url) = http_endpoint(&["--server", "everything", "--upstream", &url]);
    let post = |sid: Option<&str>, body: &str| {
        let mut headers = vec![JSON, ACCEPT];
        if let Some(sid) = sid {
            headers.push(("Mcp-Session-Id", sid));
            headers.push(("MCP-Protocol-Version", "2025-06-18"));
        }
        let (status, head, body) = http(&endpoint_url, "POST", &headers, body.as_bytes());
        (status, head, String::from_utf8_lossy(&body).into_owned())
    };
    let (status, head, body) = post(None, INIT);
    assert_eq!(status, 200, "{body}");
    assert!(body.contains("mcp-servers/everything"), "{body}");
    let sid = session_id(&head);
    let (status, _, body) = post(
        Some(&sid),
        r#"{"jsonrpc":"2.0","method":"notifications/initialized"}"#,
    );
    assert_eq!(status, 202, "{body}");
    let (status, _, list) = post(
        Some(&sid),
        r#"{"jsonrpc":"2.0","id":2,"method":"tools/list"}"#,
    );
    assert_eq!(status, 200, "{list}");
    assert!(
        list.contains("\"echo\"") && !list.contains("\"get-env\""),
        "{list}"
    );
    let (_, _, r) = post(
        Some(&sid),
        r#"{"jsonrpc":"2.0","id":3,"method":"tools/call","params":{"name":"echo","arguments":{"message":"legacy over http"}}}"#,
    );
    assert!(r.contains("Echo: legacy over http"), "{r}");
    let (_, _, r) = post(
        Some(&sid),
        r#"{"jsonrpc":"2.0","id":4,"method":"tools/call","params":{"name":"get-env","arguments":{}}}"#,
    );
    assert!(r.contains("[POLICY DENIED]"), "{r}");
    let (status, _, _) = http(&endpoint_url, "DELETE", &[("Mcp-Session-Id", &sid)], b"");
    assert_eq!(status, 200);
}

/// The `Mcp-Session-Id` of a response head.
fn session_id(head: &str) -> String {
    head.lines()
        .find_map(|l| {
            l.to_ascii_lowercase()
                .strip_prefix("mcp-session-id: ")
                .map(str::to_string)
        })
        .expect("a session id")
}

/// An upstream that keeps its session `s1`: answers requests with an empty
/// result, notifications with 202, DELETE with 200, GET with 405.
fn keeping_upstream() -> Upstream {
    Upstream::start(|req| match req.method.as_str() {
        "POST" if method_of(&req.body) == "initialize" => {
            let body = format!(
                r#"{{"jsonrpc":"2.0","id":{},"result":{{"protocolVersion":"2025-06-18","capabilities":{{}},"serverInfo":{{"name":"x","version":"1"}}}}}}"#,
                id_of(&req.body)
            );
            response(
                "200 OK",
                &[
                    ("Content-Type", "application/json"),
                    ("Mcp-Session-Id", "s1"),
                ],
                body.as_bytes(),
            )
        }
        "POST" if req.body.contains("\"id\"") => {
            let body = format!(
                r#"{{"jsonrpc":"2.0","id":{},"result":{{}}}}"#,
                id_of(&req.body)
            );
            response(
                "200 OK",
                &[("Content-Type", "application/json")],
                body.as_bytes(),
            )
        }
        "POST" => response("202 Accepted", &[], b""),
        "DELETE" => response("200 OK", &[], b""),
        _ => response("405 Method Not Allowed", &[], b""),
    })
}

#[test]
fn an_idle_session_is_ended_and_its_upstream_session_deleted() {
    let up = keeping_upstream();
    let (_p, url) = http_endpoint(&[
        "--server",
        "everything",
        "--session-idle-timeout",
        "0.5",
        "--upstream",
        &up.url(),
    ]);
    let (status, head, _) = http(&url, "POST", &[JSON, ACCEPT], INIT.as_bytes());
    assert_eq!(status, 200);
    let sid = session_id(&head);
    let ping = |id: u32| {
        http(
            &url,
            "POST",
            &[JSON, ACCEPT, ("Mcp-Session-Id", &sid)],
            format!(r#"{{"jsonrpc":"2.0","id":{id},"method":"ping"}}"#).as_bytes(),
        )
        .0
    };
    // Used more often than the timeout: kept.
    for id in 2..6 {
        std::thread::sleep(Duration::from_millis(200));
        assert_eq!(ping(id), 200, "a session in use is kept");
    }
    assert!(
        !up.seen().iter().any(|r| r.method == "DELETE"),
        "not ended while in use"
    );
    // Idle for longer than the timeout (plus the 250 ms sweep): ended.
    std::thread::sleep(Duration::from_millis(1500));
    assert_eq!(ping(6), 404, "an idle session is gone");
    let deleted: Vec<Req> = up
        .seen()
        .into_iter()
        .filter(|r| r.method == "DELETE")
        .collect();
    assert_eq!(deleted.len(), 1, "{deleted:?}");
    assert_eq!(deleted[0].header("Mcp-Session-Id"), Some("s1"));
    assert!(
        !up.seen().iter().any(|r| r.body.contains("\"id\":6")),
        "nothing of the expired session reached the upstream"
    );
}

#[test]
fn a_client_token_is_required_when_set_and_never_reaches_the_upstream() {
    let up = keeping_upstream();
    let dir = common::temp_dir("http-client-token");
    let token_file = dir.join("token");
    let secret = "tok-7f3a9c1e5b2d4f6a8c0e";
    std::fs::write(&token_file, format!("{secret}\n")).unwrap();
    let (_p, url) = http_endpoint(&[
        "--server",
        "everything",
        "--client-token-file",
        &token_file.display().to_string(),
        "--upstream",
        &up.url(),
    ]);
    let bearer = format!("Bearer {secret}");
    for (what, auth) in [
        ("no header", None),
        ("a wrong token", Some("Bearer tok-0000000000000000000000")),
        ("another scheme", Some("Basic dXNlcjpwYXNz")),
    ] {
        let mut headers = vec![JSON, ACCEPT];
        if let Some(a) = auth {
            headers.push(("Authorization", a));
        }
        let (status, head, body) = http(&url, "POST", &headers, INIT.as_bytes());
        assert_eq!(status, 401, "{what}");
        assert!(
            head.to_ascii_lowercase()
                .contains("www-authenticate: bearer realm=\"portcullis\""),
            "{head}"
        );
        let body = String::from_utf8_lossy(&body);
        assert!(body.contains("Unauthorized"), "{body}");
        let (status, _, _) = http(&url, "GET", &[("Accept", "text/event-stream")], b"");
        assert_eq!(status, 401, "GET needs it too");
    }
    assert!(
        up.seen().is_empty(),
        "nothing unauthenticated reached the upstream"
    );

    let auth = ("Authorization", bearer.as_str());
    let (status, head, _) = http(&url, "POST", &[JSON, ACCEPT, auth], INIT.as_bytes());
    assert_eq!(status, 200);
    let sid = session_id(&head);
    let ping = br#"{"jsonrpc":"2.0","id":2,"method":"ping"}"#;
    let (status, _, _) = http(
        &url,
        "POST",
        &[JSON, ACCEPT, ("Mcp-Session-Id", &sid)],
        ping,
    );
    assert_eq!(status, 401, "every request, not only initialize");
    let (status, _, body) = http(
        &url,
        "POST",
        &[JSON, ACCEPT, auth, ("Mcp-Session-Id", &sid)],
        ping,
    );
    assert_eq!(status, 200, "{}", String::from_utf8_lossy(&body));
    let seen = up.seen();
    assert!(seen.iter().any(|r| r.body.contains("\"ping\"")));
    assert!(
        seen.iter().all(|r| r.header("Authorization").is_none()),
        "the client's credentials are the proxy's, not the upstream's: {seen:?}"
    );
}

#[test]
fn a_non_loopback_endpoint_needs_a_client_token() {
    let run = |args: &[&str], env: &[(&str, &str)]| {
        let out = Command::new(common::portcullis())
            .args([
                "--server",
                "everything",
                "--transport",
                "http",
                "--port",
                "0",
            ])
            .args(args)
            .envs(env.iter().copied())
            .args(["--", "true"])
            .stdin(Stdio::null())
            .output()
            .unwrap();
        (
            out.status.code(),
            String::from_utf8_lossy(&out.stderr).into_owned(),
        )
    };
    let (code, err) = run(&["--bind", "0.0.0.0"], &[]);
    assert_eq!(code, Some(1), "{err}");
    assert!(
        err.contains("error: refusing to serve an unauthenticated MCP endpoint on 0.0.0.0:0"),
        "{err}"
    );
    assert!(
        err.contains("--client-token-file"),
        "the fix is named: {err}"
    );

    let dir = common::temp_dir("http-token-errors");
    let short = dir.join("short");
    std::fs::write(&short, "abc\n").unwrap();
    let (code, err) = run(&["--client-token-file", &short.display().to_string()], &[]);
    assert_eq!(code, Some(1), "{err}");
    assert!(err.contains("at least 16 characters"), "{err}");
    assert!(err.contains(&short.display().to_string()), "{err}");
    assert!(!err.contains("abc"), "the secret is not printed: {err}");

    let (code, err) = run(
        &[
            "--client-token-file",
            &dir.join("missing").display().to_string(),
        ],
        &[],
    );
    assert_eq!(code, Some(1), "{err}");
    assert!(err.contains("cannot read the client token file"), "{err}");

    let (code, err) = run(
        &["--client-token-file", &short.display().to_string()],
        &[("PORTCULLIS_CLIENT_TOKEN", "0123456789abcdef0123")],
    );
    assert_eq!(code, Some(1), "{err}");
    assert!(
        err.contains("both --client-token-file and PORTCULLIS_CLIENT_TOKEN"),
        "{err}"
    );

    let out = Command::new(common::portcullis())
        .args([
            "--server",
            "everything",
            "--client-token-file",
            "x",
            "--",
            "true",
        ])
        .output()
        .unwrap();
    let err = String::from_utf8_lossy(&out.stderr);
    assert_eq!(out.status.code(), Some(1), "{err}");
    assert!(err.contains("require --transport http"), "{err}");

    // With a token from the environment, or explicitly unauthenticated, it serves.
    for (args, env) in [
        (
            &["--bind", "0.0.0.0"][..],
            &[("PORTCULLIS_CLIENT_TOKEN", "0123456789abcdef0123")][..],
        ),
        (
            &["--bind", "0.0.0.0", "--allow-unauthenticated"][..],
            &[][..],
        ),
    ] {
        let mut child = Command::new(common::portcullis())
            .args([
                "--server",
                "everything",
                "--transport",
                "http",
                "--port",
                "0",
            ])
            .args(["--log-level", "warn"])
            .args(args)
            .envs(env.iter().copied())
            .args(["--", "true"])
            .stdin(Stdio::null())
            .stderr(Stdio::piped())
            .spawn()
            .unwrap();
        let mut err = BufReader::new(child.stderr.take().unwrap());
        let _g = Guard(child);
        let mut line = String::new();
        while !line.contains("listening on") {
            line.clear();
            assert!(err.read_line(&mut line).unwrap() > 0, "{args:?}: no URL");
        }
        assert!(
            line.starts_with("portcullis: listening on http://0.0.0.0:"),
            "{args:?}: {line}"
        );
    }
}

/// POSTs `call` in session `sid` (with `MCP-Protocol-Version: version` if
/// given), reads up to the first read that contains `until`, drops the
/// connection; returns the id of the last event read.
fn first_event_then_disconnect(
    url: &str,
    sid: &str,
    version: Option<&str>,
    call: &[u8],
    until: &str,
) -> String {
    let mut headers = vec![JSON, ACCEPT, ("Mcp-Session-Id", sid)];
    headers.extend(version.map(|v| ("MCP-Protocol-Version", v)));
    let mut conn = send_request(url, "POST", &headers, call, Duration::from_secs(30));
    let text = read_until(&mut conn, until);
    assert!(text.contains(until), "the stream ended early: {text}");
    event_ids(&text).pop().expect("an event with an id")
}

/// A GET that stays open (an SSE stream): its status and what it carried
/// up to the first read that contains `until` (raw: chunk sizes included).
fn get_until(url: &str, headers: &[(&str, &str)], until: &str) -> (u16, String) {
    let mut conn = send_request(url, "GET", headers, b"", Duration::from_secs(30));
    let text = read_until(&mut conn, until);
    let status = text
        .split(' ')
        .nth(1)
        .and_then(|s| s.parse().ok())
        .unwrap_or(0);
    (status, text)
}

/// Initializes a session of the endpoint at `url` (and sends
/// `notifications/initialized`); returns its id.
fn initialized_session(url: &str) -> String {
    let (status, head, body) = http(url, "POST", &[JSON, ACCEPT], INIT.as_bytes());
    assert_eq!(status, 200, "{}", String::from_utf8_lossy(&body));
    let sid = session_id(&head);
    let (status, _, _) = http(
        url,
        "POST",
        &[JSON, ACCEPT, ("Mcp-Session-Id", &sid)],
        br#"{"jsonrpc":"2.0","method":"notifications/initialized"}"#,
    );
    assert_eq!(status, 202);
    sid
}

/// The `id:` values of the SSE events in `text`, in order.
fn event_ids(text: &str) -> Vec<String> {
    text.lines()
        .filter_map(|l| l.strip_prefix("id: "))
        .map(str::to_string)
        .collect()
}

/// A client whose POST stream breaks mid-call comes back with `GET` and
/// `Last-Event-ID` and gets the rest of that stream (progress, then the
/// answer), with no gap and no duplicate; the call went on meanwhile
/// (disconnection is not cancellation).
#[test]
fn a_broken_post_stream_is_resumed_with_last_event_id() {
    let server = common::server_everything().display().to_string();
    let (_p, url) = http_endpoint(&["--server", "everything", "--", "node", &server]);
    let sid = initialized_session(&url);
    let session = ("Mcp-Session-Id", sid.as_str());

    // A 2-second call with 4 progress steps; read its first message, then drop the connection.
    let call = br#"{"jsonrpc":"2.0","id":7,"method":"tools/call","params":{"name":"trigger-long-running-operation","arguments":{"duration":2,"steps":4},"_meta":{"progressToken":"p7"}}}"#;
    let first = first_event_then_disconnect(&url, &sid, None, call, "notifications/progress");

    // The call finishes while nobody listens; then the client comes back.
    std::thread::sleep(Duration::from_millis(2500));
    let (status, body) = get_until(
        &url,
        &[
            ("Accept", "text/event-stream"),
            session,
            ("Last-Event-ID", &first),
        ],
        "Long running operation completed",
    );
    assert_eq!(status, 200, "{body}");
    assert!(
        body.to_ascii_lowercase().contains("text/event-stream"),
        "{body}"
    );
    let ids = event_ids(&body);
    let (stream, seq) = first.split_once('-').unwrap();
    let seq: u64 = seq.parse().unwrap();
    let expected: Vec<String> = (seq + 1..=seq + ids.len() as u64)
        .map(|s| format!("{stream}-{s}"))
        .collect();
    assert_eq!(ids, expected, "the events after {first}, in order: {body}");
    assert!(
        body.contains("\"progress\":2") || body.contains("\"progress\":3"),
        "the progress sent while disconnected: {body}"
    );
    assert!(
        body.contains("\"id\":7") && body.contains("Long running operation completed"),
        "then the answer: {body}"
    );
    assert_eq!(
        body.matches("\"id\":7").count(),
        1,
        "the answer once: {body}"
    );

    // An id this session never handed out is refused clearly.
    let (status, _, body) = http(
        &url,
        "GET",
        &[
            ("Accept", "text/event-stream"),
            session,
            ("Last-Event-ID", "99-1"),
        ],
        b"",
    );
    assert_eq!(status, 400, "{}", String::from_utf8_lossy(&body));
}

/// A call without progress, from a 2025-11-25 client: its stream starts
/// with a priming event (an id, empty data), so a client whose connection
/// breaks before the answer can still resume and get the answer. Older
/// clients get no priming event (they would try to parse empty data).
#[test]
fn a_primed_stream_is_resumable_before_its_first_message() {
    let server = common::server_everything().display().to_string();
    let (_p, url) = http_endpoint(&["--server", "everything", "--", "node", &server]);
    let sid = initialized_session(&url);
    let session = ("Mcp-Session-Id", sid.as_str());
    let call = br#"{"jsonrpc":"2.0","id":8,"method":"tools/call","params":{"name":"trigger-long-running-operation","arguments":{"duration":1.5,"steps":1}}}"#;
    let first = first_event_then_disconnect(&url, &sid, Some("2025-11-25"), call, "data: \n");
    std::thread::sleep(Duration::from_millis(2000));
    let (status, body) = get_until(
        &url,
        &[
            ("Accept", "text/event-stream"),
            session,
            ("Last-Event-ID", &first),
        ],
        "Long running operation completed",
    );
    assert_eq!(status, 200, "{body}");
    assert!(
        body.contains("\"id\":8") && body.contains("Long running operation completed"),
        "the answer sent while disconnected: {body}"
    );

    // A 2025-06-18 client gets no priming event: the first event is the answer.
    let (_, _, body) = http(
        &url,
        "POST",
        &[
            JSON,
            ACCEPT,
            session,
            ("MCP-Protocol-Version", "2025-06-18"),
        ],
        br#"{"jsonrpc":"2.0","id":9,"method":"tools/call","params":{"name":"echo","arguments":{"message":"old"}}}"#,
    );
    let body = String::from_utf8_lossy(&body).into_owned();
    assert!(!body.contains("data: \n"), "{body}");
    assert!(
        body.starts_with("id: ") && body.contains("Echo: old"),
        "{body}"
    );
}

#[test]
fn an_unsupported_protocol_version_is_refused_with_400_as_the_sdk_server_does() {
    let server = common::server_everything().display().to_string();
    let (_p, url) = http_endpoint(&["--server", "everything", "--", "node", &server]);
    let sid = initialized_session(&url);
    let session = ("Mcp-Session-Id", sid.as_str());
    let list = br#"{"jsonrpc":"2.0","id":2,"method":"tools/list"}"#;
    let accept_sse = ("Accept", "text/event-stream");

    for good in ["2025-11-25", "2025-06-18", "2025-03-26", "2024-11-05"] {
        let version = ("MCP-Protocol-Version", good);
        let (status, _, body) = http(&url, "POST", &[JSON, ACCEPT, session, version], list);
        let body = String::from_utf8_lossy(&body);
        assert_eq!(status, 200, "{good}: {body}");
        assert!(body.contains("\"tools\""), "{good}: {body}");
    }
    // A future, a past and a made-up revision, and a well-formed date the
    // SDK never spoke: syntax alone no longer passes.
    for bad in ["2026-07-28", "2099-01-01", "2024-01-01", "latest"] {
        let version = ("MCP-Protocol-Version", bad);
        for (method, headers, body) in [
            ("POST", vec![JSON, ACCEPT, session, version], &list[..]),
            ("GET", vec![accept_sse, session, version], &b""[..]),
            ("DELETE", vec![session, version], &b""[..]),
        ] {
            let (status, head, body) = http(&url, method, &headers, body);
            let body = String::from_utf8_lossy(&body);
            assert_eq!(status, 400, "{method} with {bad}: {head}\n{body}");
            assert!(
                head.to_ascii_lowercase()
                    .contains("content-type: application/json"),
                "{head}"
            );
            assert!(
                body.starts_with(r#"{"jsonrpc":"2.0","id":null,"error":{"code":-32000,"#),
                "{body}"
            );
            assert!(
                body.contains(&format!("Unsupported protocol version: {bad} (supported versions: 2025-11-25, 2025-06-18, 2025-03-26, 2024-11-05, 2024-10-07)")),
                "{body}"
            );
        }
    }
    // Refused requests ended nothing: the session still works.
    let version = ("MCP-Protocol-Version", "2025-06-18");
    let (status, _, body) = http(&url, "POST", &[JSON, ACCEPT, session, version], list);
    assert_eq!(status, 200, "{}", String::from_utf8_lossy(&body));
    // `initialize` is held to its body, not to its header (as the SDK's server).
    let future = ("MCP-Protocol-Version", "2099-01-01");
    let (status, _, body) = http(&url, "POST", &[JSON, ACCEPT, future], INIT.as_bytes());
    assert_eq!(status, 200, "{}", String::from_utf8_lossy(&body));
}

#[test]
fn a_killed_endpoint_takes_its_session_servers_with_it() {
    // As in proxy_lifecycle: a real server led by a shell that would outlive it.
    let script = format!(
        "node '{}'; sleep 600",
        common::server_everything().display()
    );
    let (mut p, url) = http_endpoint(&["--server", "everything", "--", "sh", "-c", &script]);
    initialized_session(&url);
    initialized_session(&url);
    let proxy = p.0.id();
    let servers = common::children_of(proxy);
    assert_eq!(servers.len(), 2, "one server per session: {servers:?}");

    p.0.kill().unwrap(); // SIGKILL: no chance to clean up
    p.0.wait().unwrap();
    for server in servers {
        let left = common::wait_for_group_gone(server, Duration::from_secs(5));
        assert!(
            left.is_empty(),
            "still running 5 s after the proxy was killed: {left:?}"
        );
    }
}

/// `--header-env NAME`: the header comes from the environment (what
/// `portcullis init` writes for a remote server's headers), reaches the
/// upstream, and is nowhere in the process list; a variable unset or not
/// a header is a start-up error that never shows the value.
#[test]
fn a_header_from_the_environment_reaches_the_upstream_and_not_the_process_list() {
    let up = Upstream::start(|r| {
        let body = format!(
            r#"{{"jsonrpc":"2.0","id":{},"result":{{"protocolVersion":"2025-06-18","capabilities":{{}},"serverInfo":{{"name":"u","version":"1"}}}}}}"#,
            id_of(&r.body)
        );
        response(
            "200 OK",
            &[("Content-Type", "application/json")],
            body.as_bytes(),
        )
    });
    let url = up.url();
    let secret = "Bearer s3cr3t-from-env";
    let mut p = Proxy::command_env(
        "header-env",
        &[
            "--server",
            "everything",
            "--upstream",
            &url,
            "--header-env",
            "UPSTREAM_AUTH",
        ],
        &[("UPSTREAM_AUTH", &format!("Authorization: {secret}"))],
    );
    let cmdline = std::fs::read(format!("/proc/{}/cmdline", p.child.id())).unwrap();
    assert!(
        !String::from_utf8_lossy(&cmdline).contains("s3cr3t"),
        "{cmdline:?}"
    );
    p.send(INIT);
    let r = p.response("1");
    assert!(r.contains("\"result\""), "{r}");
    let seen = up.seen();
    assert!(!seen.is_empty());
    assert!(
        seen.iter()
            .all(|r| r.header("Authorization") == Some(secret)),
        "{seen:?}"
    );
    let (code, err) = p.finish();
    assert_eq!(code, 0, "{err}");

    for (env, needle) in [
        (None, "the environment variable `UPSTREAM_AUTH` is not set"),
        (
            Some("Bearer s3cr3t-without-a-name"),
            "the value of `UPSTREAM_AUTH` is not `Name: value`",
        ),
        (
            Some("Authorization: s3cr3t\u{7}bell"),
            "the value of `UPSTREAM_AUTH` is not `Name: value`",
        ),
    ] {
        let mut cmd = Command::new(common::portcullis());
        cmd.args(["--server", "everything", "--upstream", &url])
            .args(["--header-env", "UPSTREAM_AUTH"])
            .env_remove("UPSTREAM_AUTH")
            .stdin(Stdio::null());
        if let Some(v) = env {
            cmd.env("UPSTREAM_AUTH", v);
        }
        let out = cmd.output().unwrap();
        let err = String::from_utf8_lossy(&out.stderr);
        assert_eq!(out.status.code(), Some(1), "{err}");
        assert!(err.contains(needle), "{err}");
        assert!(!err.contains("s3cr3t"), "the value was shown: {err}");
    }
    // Without --upstream there is no header to send.
    let out = Command::new(common::portcullis())
        .args(["--server", "everything", "--header-env", "X", "--", "true"])
        .stdin(Stdio::null())
        .output()
        .unwrap();
    assert!(
        String::from_utf8_lossy(&out.stderr).contains("--header-env requires --upstream"),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
}
