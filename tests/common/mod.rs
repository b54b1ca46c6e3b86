//! Shared helpers for the end-to-end tests: the real binary, the real
//! `@modelcontextprotocol/server-everything`, real pipes.
#![allow(dead_code)]

use std::collections::HashMap;
use std::ffi::OsStr;
use std::io::{BufRead, BufReader, Write};
use std::path::{Path, PathBuf};
use std::process::{Child, ChildStdin, Command, Stdio};
use std::sync::mpsc;
use std::time::{Duration, Instant};

/// The repository root.
pub fn root() -> PathBuf {
    PathBuf::from(env!("CARGO_MANIFEST_DIR"))
}

/// The portcullis binary under test.
pub fn portcullis() -> PathBuf {
    PathBuf::from(env!("CARGO_BIN_EXE_portcullis"))
}

/// server-everything's entry point, installed by `scripts/deps`. Fails (never skips) when missing.
pub fn server_everything() -> PathBuf {
    let p = root().join(".deps/node_modules/@modelcontextprotocol/server-everything/dist/index.js");
    assert!(
        p.exists(),
        "{} is missing: run scripts/deps (CI does) to install @modelcontextprotocol/server-everything",
        p.display()
    );
    p
}

/// A fresh temporary directory for one test: unique per call, also when
/// two calls in one process pass the same name.
pub fn temp_dir(name: &str) -> PathBuf {
    static NEXT: std::sync::atomic::AtomicU64 = std::sync::atomic::AtomicU64::new(0);
    let d = std::env::temp_dir().join(format!(
        "portcullis-{name}-{}-{}",
        std::process::id(),
        NEXT.fetch_add(1, std::sync::atomic::Ordering::Relaxed)
    ));
    let _ = std::fs::remove_dir_all(&d);
    std::fs::create_dir_all(&d).unwrap();
    d
}

/// The proxy wrapping server-everything, with every byte the server receives recorded.
pub struct Proxy {
    pub child: Child,
    stdin: Option<ChildStdin>,
    lines: mpsc::Receiver<String>,
    /// Lines received but not yet claimed.
    pub seen: Vec<String>,
    /// What the server received.
    pub tap: PathBuf,
    pub dir: PathBuf,
}

impl Proxy {
    /// `portcullis ARGS -- tap.sh LOG node server-everything`.
    pub fn everything(name: &str, args: &[&str]) -> Proxy {
        Proxy::everything_env(name, args, &[])
    }

    /// [`Proxy::everything`] with these environment variables set.
    pub fn everything_env(name: &str, args: &[&str], env: &[(&str, &str)]) -> Proxy {
        let dir = temp_dir(name);
        let tap = dir.join("server-received.jsonl");
        let server = server_everything();
        let mut cmd: Vec<String> = args.iter().map(|s| s.to_string()).collect();
        cmd.extend([
            "--".into(),
            root().join("tests/e2e/tap.sh").display().to_string(),
            tap.display().to_string(),
            "node".into(),
            server.display().to_string(),
        ]);
        Proxy::spawn(&cmd, env, dir, tap)
    }

    /// `portcullis ARGS` (ARGS include `-- CMD`).
    pub fn command(name: &str, args: &[&str]) -> Proxy {
        let dir = temp_dir(name);
        let tap = dir.join("unused");
        Proxy::spawn(
            &args.iter().map(|s| s.to_string()).collect::<Vec<_>>(),
            &[],
            dir,
            tap,
        )
    }

    /// [`Proxy::command`] with these environment variables set.
    pub fn command_env(name: &str, args: &[&str], env: &[(&str, &str)]) -> Proxy {
        let dir = temp_dir(name);
        let tap = dir.join("unused");
        Proxy::spawn(
            &args.iter().map(|s| s.to_string()).collect::<Vec<_>>(),
            env,
            dir,
            tap,
        )
    }

    fn spawn(args: &[String], env: &[(&str, &str)], dir: PathBuf, tap: PathBuf) -> Proxy {
        let mut child = Command::new(portcullis())
            .args(args)
            .envs(env.iter().copied())
            .current_dir(root())
            .stdin(Stdio::piped())
            .stdout(Stdio::piped())
            .stderr(Stdio::piped())
            .spawn()
            .expect("start portcullis");
        let stdout = child.stdout.take().unwrap();
        let (tx, rx) = mpsc::channel();
        std::thread::spawn(move || {
            for line in BufReader::new(stdout).lines() {
                let Ok(line) = line else { break };
                if tx.send(line).is_err() {
                    break;
                }
            }
        });
        let stdin = child.stdin.take();
        Proxy {
            child,
            stdin,
            lines: rx,
            seen: Vec::new(),
            tap,
            dir,
        }
    }

    /// Sends one raw line (a newline is added).
    pub fn send_raw(&mut self, bytes: &[u8]) {
        let stdin = self.stdin.as_mut().expect("stdin open");
        stdin.write_all(bytes).unwrap();
        stdin.write_all(b"\n").unwrap();
        stdin.flush().unwrap();
    }

    /// Sends one line.
    pub fn send(&mut self, line: &str) {
        self.send_raw(line.as_bytes());
    }

    /// Closes the proxy's stdin (the client goes away).
    pub fn close_stdin(&mut self) {
        self.stdin = None;
    }

    /// The next line from the proxy.
    pub fn next_line(&mut self, timeout: Duration) -> Option<String> {
        self.lines.recv_timeout(timeout).ok()
    }

    /// Waits for the line whose `"id"` is `id` (raw JSON, e.g. `7` or `"a"`), keeping others.
    pub fn response(&mut self, id: &str) -> String {
        let needle = format!("\"id\":{id},");
        let needle_end = format!("\"id\":{id}}}");
        if let Some(i) = self
            .seen
            .iter()
            .position(|l| l.contains(&needle) || l.contains(&needle_end))
        {
            return self.seen.remove(i);
        }
        let deadline = Instant::now() + Duration::from_secs(30);
        loop {
            let left = deadline.saturating_duration_since(Instant::now());
            let line = self
                .lines
                .recv_timeout(left)
                .unwrap_or_else(|_| panic!("no response with id {id}; seen: {:#?}", self.seen));
            if line.contains(&needle) || line.contains(&needle_end) {
                return line;
            }
            self.seen.push(line);
        }
    }

    /// initialize + notifications/initialized; returns the initialize response.
    pub fn initialize(&mut self) -> String {
        self.send(r#"{"jsonrpc":"2.0","id":"init","method":"initialize","params":{"protocolVersion":"2025-06-18","capabilities":{},"clientInfo":{"name":"portcullis-tests","version":"1"}}}"#);
        let r = self.response("\"init\"");
        self.send(r#"{"jsonrpc":"2.0","method":"notifications/initialized"}"#);
        r
    }

    /// A tools/call line.
    pub fn call(&mut self, id: u64, tool: &str, args: &str) -> String {
        self.send(&format!(r#"{{"jsonrpc":"2.0","id":{id},"method":"tools/call","params":{{"name":"{tool}","arguments":{args}}}}}"#));
        self.response(&id.to_string())
    }

    /// Closes stdin and waits for the exit code.
    pub fn finish(mut self) -> (i32, String) {
        self.close_stdin();
        let deadline = Instant::now() + Duration::from_secs(20);
        loop {
            if let Some(status) = self.child.try_wait().unwrap() {
                let mut err = String::new();
                let _ =
                    std::io::Read::read_to_string(self.child.stderr.as_mut().unwrap(), &mut err);
                return (status.code().unwrap_or(-1), err);
            }
            assert!(
                Instant::now() < deadline,
                "the proxy did not exit after stdin closed"
            );
            std::thread::sleep(Duration::from_millis(20));
        }
    }

    /// Everything the server received so far, one message per line.
    pub fn server_received(&self) -> Vec<String> {
        std::fs::read_to_string(&self.tap)
            .unwrap_or_default()
            .lines()
            .map(str::to_string)
            .collect()
    }
}

/// True if `line` is a denial produced by the proxy.
pub fn is_denial(line: &str) -> bool {
    line.contains("\"isError\":true") && line.contains("[POLICY DENIED]")
}

/// The JSON-RPC error code in `line`, if it is an error.
pub fn error_code(line: &str) -> Option<i64> {
    let i = line.find("\"error\":{\"code\":")? + "\"error\":{\"code\":".len();
    line[i..].split([',', '}']).next()?.parse().ok()
}

/// Counts map.
pub fn count<'a>(items: impl Iterator<Item = &'a str>) -> HashMap<&'a str, usize> {
    let mut m = HashMap::new();
    for i in items {
        *m.entry(i).or_default() += 1;
    }
    m
}

/// Waits until `path` exists and is non-empty.
pub fn wait_for_file(path: &Path, timeout: Duration) -> bool {
    let deadline = Instant::now() + timeout;
    while Instant::now() < deadline {
        if std::fs::metadata(path)
            .map(|m| m.len() > 0)
            .unwrap_or(false)
        {
            return true;
        }
        std::thread::sleep(Duration::from_millis(20));
    }
    false
}

/// The `(pid, state, parent pid, process group)` of every process in
/// /proc (state: `R`, `S`, `Z`, ...).
fn processes() -> Vec<(u32, char, u32, u32)> {
    let mut out = Vec::new();
    for e in std::fs::read_dir("/proc").unwrap().flatten() {
        let Ok(pid) = e.file_name().to_string_lossy().parse::<u32>() else {
            continue;
        };
        let Ok(stat) = std::fs::read_to_string(e.path().join("stat")) else {
            continue; // gone meanwhile
        };
        // `pid (comm) state ppid pgrp ...`: comm may hold spaces and parentheses.
        let Some(rest) = stat.rfind(')').map(|i| &stat[i + 2..]) else {
            continue;
        };
        let f: Vec<&str> = rest.split(' ').collect();
        let (Some(state), Ok(ppid), Ok(pgrp)) = (
            f[0].chars().next(),
            f[1].parse::<u32>(),
            f[2].parse::<u32>(),
        ) else {
            continue;
        };
        out.push((pid, state, ppid, pgrp));
    }
    out
}

/// The live (not zombie) children of process `pid`.
pub fn children_of(pid: u32) -> Vec<u32> {
    processes()
        .into_iter()
        .filter(|p| p.2 == pid && p.1 != 'Z')
        .map(|p| p.0)
        .collect()
}

/// The live (not zombie) processes of process group `pgid`.
pub fn group_members(pgid: u32) -> Vec<u32> {
    processes()
        .into_iter()
        .filter(|p| p.3 == pgid && p.1 != 'Z')
        .map(|p| p.0)
        .collect()
}

/// Waits up to `timeout` for `pid`'s first live child.
pub fn wait_for_child(pid: u32, timeout: Duration) -> Option<u32> {
    let deadline = Instant::now() + timeout;
    loop {
        if let Some(&c) = children_of(pid).first() {
            return Some(c);
        }
        if Instant::now() >= deadline {
            return None;
        }
        std::thread::sleep(Duration::from_millis(20));
    }
}

/// Waits up to `timeout` for process group `pgid` to have no live member;
/// returns those still alive then (and SIGKILLs them, so that a failing
/// test leaves nothing behind).
pub fn wait_for_group_gone(pgid: u32, timeout: Duration) -> Vec<u32> {
    let deadline = Instant::now() + timeout;
    loop {
        let left = group_members(pgid);
        if left.is_empty() {
            return left;
        }
        if Instant::now() >= deadline {
            let _ = nix::sys::signal::killpg(
                nix::unistd::Pid::from_raw(pgid as i32),
                nix::sys::signal::Signal::SIGKILL,
            );
            return left;
        }
        std::thread::sleep(Duration::from_millis(20));
    }
}

/// Kills the process when dropped.
pub struct Guard(pub Child);

impl Drop for Guard {
    fn drop(&mut self) {
        let _ = self.0.kill();
        let _ = self.0.wait();
    }
}

/// Which output of a started process [`start_until`] reads.
#[derive(Clone, Copy)]
pub enum Out {
    Stdout,
    Stderr,
}

/// Starts `cmd` in the repository root (stdin null, the other output
/// null) and waits up to `within` for a line of `out` containing `ready`;
/// returns the process and that line (the rest of `out` is drained). When
/// no such line comes, the process is killed and the test fails with what
/// it printed.
pub fn start_until(cmd: Command, out: Out, ready: &str, within: Duration) -> (Child, String) {
    let (child, line, rest) = start_reading(cmd, out, ready, within);
    std::thread::spawn(move || for _ in rest {});
    (child, line)
}

/// [`start_until`], with the lines of `out` after the ready one kept in
/// the returned receiver (read it, or the process may block on a full
/// pipe).
pub fn start_reading(
    mut cmd: Command,
    out: Out,
    ready: &str,
    within: Duration,
) -> (Child, String, mpsc::Receiver<String>) {
    match out {
        Out::Stderr => cmd.stderr(Stdio::piped()).stdout(Stdio::null()),
        Out::Stdout => cmd.stdout(Stdio::piped()).stderr(Stdio::null()),
    };
    let mut child = cmd
        .current_dir(root())
        .stdin(Stdio::null())
        .spawn()
        .unwrap_or_else(|e| panic!("start {cmd:?}: {e}"));
    let read: Box<dyn std::io::Read + Send> = match out {
        Out::Stderr => Box::new(child.stderr.take().unwrap()),
        Out::Stdout => Box::new(child.stdout.take().unwrap()),
    };
    let (tx, rx) = mpsc::channel();
    std::thread::spawn(move || {
        for line in BufReader::new(read).lines() {
            let Ok(line) = line else { break };
            if tx.send(line).is_err() {
                break;
            }
        }
    });
    let deadline = Instant::now() + within;
    let mut seen = String::new();
    loop {
        let Ok(line) = rx.recv_timeout(deadline.saturating_duration_since(Instant::now())) else {
            let _ = child.kill();
            let _ = child.wait();
            panic!("no `{ready}` line from {cmd:?}; it printed:\n{seen}");
        };
        if line.contains(ready) {
            return (child, line, rx);
        }
        seen.push_str(&line);
        seen.push('\n');
    }
}

/// Starts `portcullis --transport http --port 0 ARGS`; the process and the
/// endpoint URL it prints (within 30 s).
pub fn start_http_endpoint(args: &[&OsStr]) -> (Child, String) {
    let mut cmd = Command::new(portcullis());
    cmd.args(["--transport", "http", "--port", "0"]).args(args);
    let (child, line) = start_until(cmd, Out::Stderr, LISTENING, Duration::from_secs(30));
    let url = line.split_once(LISTENING).unwrap().1.trim().to_string();
    (child, url)
}

const LISTENING: &str = "portcullis: listening on ";

/// [`start_http_endpoint`], killed when dropped.
pub fn http_endpoint(args: &[&str]) -> (Guard, String) {
    let args: Vec<&OsStr> = args.iter().map(OsStr::new).collect();
    let (child, url) = start_http_endpoint(&args);
    (Guard(child), url)
}

/// A proxy stopped as in service when dropped: SIGTERM, up to 10 s to
/// exit, then killed.
pub struct Terminated(pub Child);

impl Drop for Terminated {
    fn drop(&mut self) {
        let _ = nix::sys::signal::kill(
            nix::unistd::Pid::from_raw(self.0.id() as i32),
            nix::sys::signal::Signal::SIGTERM,
        );
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

/// A redis-server of its own on a free port (no persistence, its files in
/// a temporary directory): killed, reaped and its directory removed when
/// dropped.
pub struct Redis {
    child: Child,
    pub port: u16,
    dir: PathBuf,
}

impl Redis {
    /// Starts it and waits (up to 20 s) until it answers `PING`.
    pub fn start(name: &str) -> Redis {
        use std::io::Read;
        let port = free_port();
        let dir = temp_dir(name);
        let program = ["/usr/bin/redis-server", "/usr/sbin/redis-server"]
            .into_iter()
            .find(|p| Path::new(p).is_file())
            .unwrap_or("redis-server");
        let child = Command::new(program)
            .args(["--port", &port.to_string(), "--bind", "127.0.0.1"])
            .args(["--save", "", "--appendonly", "no", "--dir"])
            .arg(&dir)
            .stdin(Stdio::null())
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .spawn()
            .expect("redis-server is missing: run scripts/deps");
        // Owned at once, so it is killed and reaped on every path (Drop).
        let redis = Redis { child, port, dir };
        let deadline = Instant::now() + Duration::from_secs(20);
        loop {
            if let Ok(mut s) = std::net::TcpStream::connect(("127.0.0.1", port)) {
                let mut buf = [0u8; 16];
                if s.write_all(b"PING\r\n").is_ok() && s.read(&mut buf).is_ok_and(|n| n > 0) {
                    return redis;
                }
            }
            assert!(Instant::now() < deadline, "redis-server did not start");
            std::thread::sleep(Duration::from_millis(20));
        }
    }

    /// `redis://127.0.0.1:PORT/0`.
    pub fn dsn(&self) -> String {
        format!("redis://127.0.0.1:{}/0", self.port)
    }
}

impl Drop for Redis {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
        let _ = std::fs::remove_dir_all(&self.dir);
    }
}

/// A TCP port free on 127.0.0.1 when asked.
pub fn free_port() -> u16 {
    std::net::TcpListener::bind("127.0.0.1:0")
        .unwrap()
        .local_addr()
        .unwrap()
        .port()
}

/// `GET PATH` on 127.0.0.1:`port` once something listens there (within
/// 10 s): (head, body).
pub fn http_get_when_up(port: u16, path: &str) -> (String, String) {
    use std::io::Read;
    let deadline = Instant::now() + Duration::from_secs(10);
    let mut conn = loop {
        match std::net::TcpStream::connect(("127.0.0.1", port)) {
            Ok(c) => break c,
            Err(e) => {
                assert!(Instant::now() < deadline, "127.0.0.1:{port}: {e}");
                std::thread::sleep(Duration::from_millis(50));
            }
        }
    };
    write!(conn, "GET {path} HTTP/1.1\r\nHost: x\r\n\r\n").unwrap();
    let mut out = String::new();
    conn.read_to_string(&mut out).unwrap();
    let (head, body) = out.split_once("\r\n\r\n").unwrap();
    (head.to_string(), body.to_string())
}

/// The Prometheus metrics served on `port` (`GET /metrics`, 200).
pub fn scrape(port: u16) -> String {
    let (head, body) = http_get_when_up(port, "/metrics");
    assert!(head.starts_with("HTTP/1.1 200"), "{head}");
    body
}

/// server-everything over Streamable HTTP (it answers a POST with an SSE
/// stream): it and its URL.
pub fn everything_http() -> (Guard, String) {
    let port = std::net::TcpListener::bind("127.0.0.1:0")
        .unwrap()
        .local_addr()
        .unwrap()
        .port();
    let mut child = Command::new("node")
        .arg(server_everything())
        .arg("streamableHttp")
        .env("PORT", port.to_string())
        .current_dir(root())
        .stdin(Stdio::null())
        .stdout(Stdio::null())
        .stderr(Stdio::piped())
        .spawn()
        .unwrap();
    let err = child.stderr.take().unwrap();
    let server = Guard(child);
    let mut lines = BufReader::new(err).lines();
    loop {
        let l = lines.next().expect("server-everything exited").unwrap();
        if l.contains("listening on port") {
            break;
        }
    }
    std::thread::spawn(move || for _ in lines {});
    (server, format!("http://127.0.0.1:{port}/mcp"))
}

/// `Content-Type: application/json`.
pub const JSON: (&str, &str) = ("Content-Type", "application/json");
/// The `Accept` header of a Streamable HTTP client.
pub const ACCEPT: (&str, &str) = ("Accept", "application/json, text/event-stream");
/// An `initialize` request (id 1).
pub const INIT: &str = r#"{"jsonrpc":"2.0","id":1,"method":"initialize","params":{"protocolVersion":"2025-06-18","capabilities":{},"clientInfo":{"name":"t","version":"1"}}}"#;

/// Writes one request on a new connection (reads time out after
/// `timeout`) and returns the connection.
pub fn send_request(
    url: &str,
    method: &str,
    headers: &[(&str, &str)],
    body: &[u8],
    timeout: Duration,
) -> std::net::TcpStream {
    let rest = url.strip_prefix("http://").unwrap();
    let (authority, path) = rest.split_at(rest.find('/').unwrap());
    let mut s = std::net::TcpStream::connect(authority).unwrap();
    s.set_read_timeout(Some(timeout)).unwrap();
    let mut req = format!(
        "{method} {path} HTTP/1.1\r\nHost: {authority}\r\nContent-Length: {}\r\n",
        body.len()
    );
    for (k, v) in headers {
        req.push_str(&format!("{k}: {v}\r\n"));
    }
    req.push_str("\r\n");
    s.write_all(req.as_bytes()).unwrap();
    let _ = s.write_all(body);
    s
}

/// One HTTP/1.1 request on its own connection (`Connection: close`):
/// (status, head, body), a chunked body decoded.
pub fn http(
    url: &str,
    method: &str,
    headers: &[(&str, &str)],
    body: &[u8],
) -> (u16, String, Vec<u8>) {
    use std::io::Read;
    let mut all = vec![("Connection", "close")];
    all.extend_from_slice(headers);
    let mut s = send_request(url, method, &all, body, Duration::from_secs(60));
    let mut out = Vec::new();
    let _ = s.read_to_end(&mut out);
    let split = out
        .windows(4)
        .position(|w| w == b"\r\n\r\n")
        .expect("a response");
    let head = String::from_utf8_lossy(&out[..split]).into_owned();
    let status = head.split(' ').nth(1).unwrap().parse().unwrap();
    let mut body = out[split + 4..].to_vec();
    if header(&head, "transfer-encoding").is_some_and(|v| v.eq_ignore_ascii_case("chunked")) {
        body = dechunk(&body);
    }
    (status, head, body)
}

/// [`http`] with the body as text (invalid UTF-8 replaced).
pub fn http_text(
    url: &str,
    method: &str,
    headers: &[(&str, &str)],
    body: &[u8],
) -> (u16, String, String) {
    let (status, head, body) = http(url, method, headers, body);
    (status, head, String::from_utf8_lossy(&body).into_owned())
}

/// One MCP POST (`Mcp-Session-Id` when `session`): (status, head, body).
pub fn mcp_post(url: &str, session: Option<&str>, body: &str) -> (u16, String, String) {
    let mut h = vec![JSON, ACCEPT];
    if let Some(sid) = session {
        h.push(("Mcp-Session-Id", sid));
    }
    http_text(url, "POST", &h, body.as_bytes())
}

/// [`mcp_post`] without the status: (head, body).
pub fn http_post(url: &str, session: Option<&str>, body: &str) -> (String, String) {
    let (_, head, body) = mcp_post(url, session, body);
    (head, body)
}

/// A chunked HTTP/1.1 body decoded.
pub fn dechunk(mut b: &[u8]) -> Vec<u8> {
    let mut out = Vec::new();
    while let Some(i) = b.windows(2).position(|w| w == b"\r\n") {
        let n = usize::from_str_radix(std::str::from_utf8(&b[..i]).unwrap().trim(), 16).unwrap();
        if n == 0 {
            break;
        }
        out.extend_from_slice(&b[i + 2..i + 2 + n]);
        b = &b[i + 2 + n + 2..];
    }
    out
}

/// The value of header `name` (any case) in a response head.
pub fn header(head: &str, name: &str) -> Option<String> {
    head.lines().find_map(|l| {
        let (k, v) = l.split_once(':')?;
        k.eq_ignore_ascii_case(name).then(|| v.trim().to_string())
    })
}

/// The JSON-RPC message in a response body: plain JSON, or the data of an
/// SSE event.
pub fn message_of(body: &str) -> serde_json::Value {
    body.lines()
        .filter_map(|l| l.strip_prefix("data: ").or(Some(l)))
        .find_map(|l| {
            serde_json::from_str::<serde_json::Value>(l.trim())
                .ok()
                .filter(|v| v.is_object())
        })
        .unwrap_or_else(|| panic!("no message in {body}"))
}

/// Runs a Node client of tests/e2e (`script`) against the endpoint at
/// `url` (`PROXY_URL`); it must succeed, and its output is JSON.
pub fn sdk_client(script: &str, url: &str) -> serde_json::Value {
    let out = Command::new("node")
        .arg(root().join("tests/e2e").join(script))
        .current_dir(root())
        .env("PROXY_URL", url)
        .output()
        .expect("node runs");
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    let text = String::from_utf8_lossy(&out.stdout);
    serde_json::from_str(text.trim()).unwrap_or_else(|e| panic!("not JSON ({e}): {text}"))
}
