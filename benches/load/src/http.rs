//! The HTTP side of the load tool, standard library only:
//!
//! - `mcp-load http-server`: the fast MCP server of `server.rs` behind a
//!   minimal Streamable HTTP endpoint (HTTP/1.1 keep-alive, one thread per
//!   connection, JSON answers, 202 for notifications, 405 for GET);
//! - `mcp-load run-http`: serial `tools/call` round trips against it
//!   directly (an HTTP client), through `mcp-load http-forward` (the
//!   cheapest hyper-to-hyper forwarder, `forward.rs`), through `portcullis
//!   --transport http --upstream` (the same HTTP client; Portcullis answers
//!   with an SSE stream, as for any client that accepts one), and through
//!   `portcullis --upstream` (the client on stdio); the CPU the forwarder and
//!   the proxy spend per call is read from /proc.

use std::ffi::OsString;
use std::io::{self, BufRead, BufReader, BufWriter, Read, Write};
use std::net::{TcpListener, TcpStream};
use std::path::PathBuf;
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

use crate::json::{contains, member};
use crate::procfs::{self, Sample};
use crate::run::{self, Stats};
use crate::server::Server;

/// Serves MCP over HTTP on `port` (0: any) until killed; prints `listening on PORT`.
pub fn serve(server: Server, port: u16) -> io::Result<()> {
    let listener = TcpListener::bind(("127.0.0.1", port))?;
    println!("listening on {}", listener.local_addr()?.port());
    io::stdout().flush()?;
    let server = std::sync::Arc::new(server);
    for conn in listener.incoming() {
        let conn = conn?;
        let server = server.clone();
        std::thread::spawn(move || {
            let _ = connection(&server, conn);
        });
    }
    Ok(())
}

fn connection(server: &Server, conn: TcpStream) -> io::Result<()> {
    conn.set_nodelay(true)?;
    let mut r = BufReader::with_capacity(64 * 1024, conn.try_clone()?);
    let mut w = BufWriter::with_capacity(256 * 1024, conn);
    let mut body = Vec::new();
    let mut answer = Vec::with_capacity(256 * 1024);
    loop {
        let Some(req) = read_head(&mut r)? else {
            return Ok(());
        };
        body.resize(req.content_length, 0);
        r.read_exact(&mut body)?;
        match req.method.as_str() {
            "POST" => {
                answer.clear();
                if server.answer(&body, &mut answer)? {
                    let init = contains(&body, b"\"initialize\"");
                    let trimmed = answer.strip_suffix(b"\n").unwrap_or(&answer);
                    write!(
                        w,
                        "HTTP/1.1 200 OK\r\nContent-Type: application/json\r\nContent-Length: {}\r\n{}\r\n",
                        trimmed.len(),
                        if init { "Mcp-Session-Id: load\r\n" } else { "" }
                    )?;
                    w.write_all(trimmed)?;
                } else {
                    w.write_all(b"HTTP/1.1 202 Accepted\r\nContent-Length: 0\r\n\r\n")?;
                }
            }
            "DELETE" => w.write_all(b"HTTP/1.1 200 OK\r\nContent-Length: 0\r\n\r\n")?,
            _ => w.write_all(b"HTTP/1.1 405 Method Not Allowed\r\nContent-Length: 0\r\n\r\n")?,
        }
        w.flush()?;
    }
}

struct Head {
    method: String,
    status: u16,
    content_length: usize,
    chunked: bool,
    session: Option<String>,
}

/// Reads a request or response head; None at a clean end of stream.
fn read_head(r: &mut impl BufRead) -> io::Result<Option<Head>> {
    let mut line = String::new();
    if r.read_line(&mut line)? == 0 {
        return Ok(None);
    }
    let mut parts = line.split_whitespace();
    let first = parts.next().unwrap_or("").to_string();
    let status = parts.next().and_then(|s| s.parse().ok()).unwrap_or(0);
    let mut head = Head {
        method: first,
        status,
        content_length: 0,
        chunked: false,
        session: None,
    };
    loop {
        line.clear();
        if r.read_line(&mut line)? == 0 {
            return Err(io::Error::new(
                io::ErrorKind::UnexpectedEof,
                "truncated HTTP head",
            ));
        }
        let l = line.trim_end();
        if l.is_empty() {
            return Ok(Some(head));
        }
        let Some((k, v)) = l.split_once(':') else {
            continue;
        };
        let v = v.trim();
        if k.eq_ignore_ascii_case("content-length") {
            head.content_length = v.parse().unwrap_or(0);
        } else if k.eq_ignore_ascii_case("transfer-encoding") {
            head.chunked = v.eq_ignore_ascii_case("chunked");
        } else if k.eq_ignore_ascii_case("mcp-session-id") {
            head.session = Some(v.to_string());
        }
    }
}

/// A keep-alive HTTP/1.1 client of one MCP endpoint.
struct Client {
    host: String,
    path: String,
    r: BufReader<TcpStream>,
    w: BufWriter<TcpStream>,
    session: Option<String>,
    body: Vec<u8>,
}

impl Client {
    fn connect(url: &str) -> io::Result<Client> {
        let rest = url
            .strip_prefix("http://")
            .ok_or_else(|| io::Error::other(format!("not an http:// URL: {url}")))?;
        let (host, path) = rest.split_at(rest.find('/').unwrap_or(rest.len()));
        let conn = TcpStream::connect(host)?;
        conn.set_nodelay(true)?;
        Ok(Client {
            host: host.to_string(),
            path: if path.is_empty() {
                "/".into()
            } else {
                path.to_string()
            },
            r: BufReader::with_capacity(256 * 1024, conn.try_clone()?),
            w: BufWriter::with_capacity(64 * 1024, conn),
            session: None,
            body: Vec::with_capacity(256 * 1024),
        })
    }

    /// POSTs one message; returns the status. The answer's body (JSON, or
    /// the whole SSE stream) is in `self.body`.
    fn post(&mut self, msg: &[u8]) -> io::Result<u16> {
        write!(
            self.w,
            "POST {} HTTP/1.1\r\nHost: {}\r\nContent-Type: application/json\r\nAccept: application/json, text/event-stream\r\nContent-Length: {}\r\n",
            self.path,
            self.host,
            msg.len()
        )?;
        if let Some(s) = &self.session {
            write!(
                self.w,
                "Mcp-Session-Id: {s}\r\nMCP-Protocol-Version: 2025-06-18\r\n"
            )?;
        }
        self.w.write_all(b"\r\n")?;
        self.w.write_all(msg)?;
        self.w.flush()?;
        let head = read_head(&mut self.r)?
            .ok_or_else(|| io::Error::new(io::ErrorKind::UnexpectedEof, "connection closed"))?;
        if let Some(s) = head.session {
            self.session = Some(s);
        }
        self.body.clear();
        if head.chunked {
            let mut line = String::new();
            loop {
                line.clear();
                self.r.read_line(&mut line)?;
                let n = usize::from_str_radix(line.trim(), 16)
                    .map_err(|_| io::Error::other(format!("bad chunk size {line:?}")))?;
                let start = self.body.len();
                self.body.resize(start + n, 0);
                self.r.read_exact(&mut self.body[start..])?;
                let mut crlf = [0u8; 2];
                self.r.read_exact(&mut crlf)?;
                if n == 0 {
                    break;
                }
            }
        } else {
            self.body.resize(head.content_length, 0);
            self.r.read_exact(&mut self.body)?;
        }
        Ok(head.status)
    }
}

const INITIALIZE: &[u8] = b"{\"jsonrpc\":\"2.0\",\"id\":0,\"method\":\"initialize\",\"params\":{\"protocolVersion\":\"2025-06-18\",\"capabilities\":{},\"clientInfo\":{\"name\":\"mcp-load\",\"version\":\"0.1.0\"}}}";
const INITIALIZED: &[u8] = b"{\"jsonrpc\":\"2.0\",\"method\":\"notifications/initialized\"}";

fn call(id: u64, tail: &[u8]) -> Vec<u8> {
    let mut req = format!("{{\"jsonrpc\":\"2.0\",\"id\":{id}").into_bytes();
    req.extend_from_slice(tail.strip_suffix(b"\n").unwrap_or(tail));
    req
}

/// One session's latencies and the CPU the measured process spent per call.
pub struct Session {
    pub stats: Stats,
    /// CPU time (user + system) of the forwarder or proxy per call, in µs.
    pub cpu_us: Option<f64>,
}

/// CPU µs per call of `pid` between `before` and now.
fn cpu_per_call(pid: Option<u32>, before: Sample, calls: usize) -> Option<f64> {
    let pid = pid?;
    let ticks = Sample::of(pid).since(&before).cpu_ticks;
    Some(ticks as f64 * 1e6 / procfs::clock_ticks() as f64 / calls.max(1) as f64)
}

/// Serial round trips over HTTP against `url`; `pid` is the process whose
/// CPU is measured (None for the server itself).
fn http_session(
    url: &str,
    pid: Option<u32>,
    warmup: usize,
    calls: usize,
    tail: &[u8],
) -> io::Result<Session> {
    let mut c = Client::connect(url)?;
    if c.post(INITIALIZE)? != 200 || !contains(&c.body, b"protocolVersion") {
        return Err(io::Error::other(format!(
            "initialize failed at {url}: {}",
            String::from_utf8_lossy(&c.body)
        )));
    }
    c.post(INITIALIZED)?;
    let mut lat = Vec::with_capacity(calls);
    let mut before = Sample::default();
    for i in 0..warmup + calls {
        if i == warmup {
            before = pid.map(Sample::of).unwrap_or_default();
        }
        let req = call(i as u64 + 1, tail);
        let t0 = Instant::now();
        let status = c.post(&req)?;
        let dt = t0.elapsed();
        if status != 200 || !contains(&c.body, b"\"text\":\"ok\"") {
            return Err(io::Error::other(format!(
                "call {i} failed ({status}): {}",
                String::from_utf8_lossy(&c.body[..c.body.len().min(300)])
            )));
        }
        if i >= warmup {
            lat.push(dt.as_nanos() as u64);
        }
    }
    let cpu_us = cpu_per_call(pid, before, calls);
    Ok(Session {
        stats: run::stats(lat),
        cpu_us,
    })
}

/// Serial round trips on the stdio of `cmd` (`portcullis --upstream URL`).
fn stdio_session(
    cmd: &[OsString],
    warmup: usize,
    calls: usize,
    tail: &[u8],
) -> io::Result<Session> {
    let mut child = Command::new(&cmd[0])
        .args(&cmd[1..])
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .stderr(Stdio::inherit())
        .spawn()?;
    let mut w = BufWriter::new(child.stdin.take().expect("piped"));
    let mut r = BufReader::with_capacity(256 * 1024, child.stdout.take().expect("piped"));
    let mut line = Vec::with_capacity(4096);
    w.write_all(INITIALIZE)?;
    w.write_all(b"\n")?;
    w.flush()?;
    r.read_until(b'\n', &mut line)?;
    if !contains(&line, b"protocolVersion") {
        return Err(io::Error::other(format!(
            "initialize failed: {}",
            String::from_utf8_lossy(&line)
        )));
    }
    w.write_all(INITIALIZED)?;
    w.write_all(b"\n")?;
    w.flush()?;
    let mut lat = Vec::with_capacity(calls);
    let pid = Some(child.id());
    let mut before = Sample::default();
    for i in 0..warmup + calls {
        if i == warmup {
            before = Sample::of(child.id());
        }
        let mut req = call(i as u64 + 1, tail);
        req.push(b'\n');
        let t0 = Instant::now();
        w.write_all(&req)?;
        w.flush()?;
        line.clear();
        if r.read_until(b'\n', &mut line)? == 0 {
            return Err(io::Error::other("the proxy closed its stdout"));
        }
        let dt = t0.elapsed();
        let want = (i + 1).to_string();
        if member(&line, b"id") != Some(want.as_bytes()) || !contains(&line, b"\"text\":\"ok\"") {
            return Err(io::Error::other(format!(
                "call {i} failed: {}",
                String::from_utf8_lossy(&line[..line.len().min(300)])
            )));
        }
        if i >= warmup {
            lat.push(dt.as_nanos() as u64);
        }
    }
    let cpu_us = cpu_per_call(pid, before, calls);
    drop(w);
    child.wait()?;
    Ok(Session {
        stats: run::stats(lat),
        cpu_us,
    })
}

/// A child process killed when dropped.
struct Killed(Child);

impl Drop for Killed {
    fn drop(&mut self) {
        let _ = self.0.kill();
        let _ = self.0.wait();
    }
}

/// Starts `cmd`, waits for a line containing `marker` on stdout (or stderr),
/// returns the child and that line.
fn start(cmd: &mut Command, on_stderr: bool, marker: &str) -> io::Result<(Killed, String)> {
    if on_stderr {
        cmd.stderr(Stdio::piped()).stdout(Stdio::null());
    } else {
        cmd.stdout(Stdio::piped()).stderr(Stdio::inherit());
    }
    let mut child = cmd.stdin(Stdio::null()).spawn()?;
    let out: Box<dyn Read + Send> = if on_stderr {
        Box::new(child.stderr.take().expect("piped"))
    } else {
        Box::new(child.stdout.take().expect("piped"))
    };
    let child = Killed(child);
    let mut lines = BufReader::new(out).lines();
    let deadline = Instant::now() + Duration::from_secs(30);
    while Instant::now() < deadline {
        match lines.next() {
            Some(Ok(l)) if l.contains(marker) => {
                // Keep draining, so the child never blocks on a full pipe.
                std::thread::spawn(move || for _ in lines {});
                return Ok((child, l));
            }
            Some(Ok(_)) => continue,
            _ => break,
        }
    }
    Err(io::Error::other(format!("no `{marker}` line from {cmd:?}")))
}

/// Options of `mcp-load run-http`.
pub struct Options {
    pub proxy: PathBuf,
    pub server: String,
    pub tools: usize,
    pub tool: String,
    pub arguments: String,
    pub calls: usize,
    pub warmup: usize,
    pub rounds: usize,
}

/// Every round's sessions, per path.
pub struct Report {
    pub direct: Vec<Session>,
    pub via_forward: Vec<Session>,
    pub via_http: Vec<Session>,
    pub via_stdio: Vec<Session>,
}

/// Runs every measurement: rounds alternate direct, HTTP proxy, stdio proxy.
pub fn run(o: &Options) -> io::Result<Report> {
    let exe = std::env::current_exe()?;
    let (_server, line) = start(
        Command::new(&exe).args(["http-server", "--tools", &o.tools.to_string()]),
        false,
        "listening on",
    )?;
    let port = line.trim().rsplit(' ').next().unwrap_or("0").to_string();
    let upstream = format!("http://127.0.0.1:{port}/mcp");
    let (_proxy, line) = start(
        Command::new(&o.proxy).args([
            "--server",
            &o.server,
            "--log-level",
            "error",
            "--transport",
            "http",
            "--port",
            "0",
            "--upstream",
            &upstream,
        ]),
        true,
        "listening on",
    )?;
    let proxy_url = line
        .split_whitespace()
        .find(|w| w.starts_with("http://"))
        .unwrap_or("")
        .to_string();
    let proxy_pid = Some(_proxy.0.id());
    let (forwarder, line) = start(
        Command::new(&exe).args(["http-forward", "--upstream", &upstream]),
        false,
        "listening on",
    )?;
    let forward_port = line.trim().rsplit(' ').next().unwrap_or("0").to_string();
    let forward_url = format!("http://127.0.0.1:{forward_port}/mcp");
    let forward_pid = Some(forwarder.0.id());
    let stdio_cmd: Vec<OsString> = vec![
        o.proxy.clone().into_os_string(),
        "--server".into(),
        o.server.clone().into(),
        "--log-level".into(),
        "error".into(),
        "--upstream".into(),
        upstream.clone().into(),
    ];
    let tail = run::call_tail(&o.tool, &o.arguments);
    let mut rep = Report {
        direct: Vec::new(),
        via_forward: Vec::new(),
        via_http: Vec::new(),
        via_stdio: Vec::new(),
    };
    for round in 0..o.rounds {
        eprintln!("mcp-load: round {} of {}...", round + 1, o.rounds);
        rep.direct
            .push(http_session(&upstream, None, o.warmup, o.calls, &tail)?);
        rep.via_forward.push(http_session(
            &forward_url,
            forward_pid,
            o.warmup,
            o.calls,
            &tail,
        )?);
        rep.via_http.push(http_session(
            &proxy_url, proxy_pid, o.warmup, o.calls, &tail,
        )?);
        rep.via_stdio
            .push(stdio_session(&stdio_cmd, o.warmup, o.calls, &tail)?);
    }
    Ok(rep)
}

/// Picks one percentile.
type Pick = fn(&Stats) -> u64;

fn median(v: &[Session], pick: Pick) -> f64 {
    let mut x: Vec<u64> = v.iter().map(|s| pick(&s.stats)).collect();
    x.sort_unstable();
    x.get(x.len() / 2).copied().unwrap_or(0) as f64 / 1e3
}

/// The median over rounds of the CPU per call, or None when not measured.
fn median_cpu(v: &[Session]) -> Option<f64> {
    let mut x: Vec<f64> = v.iter().filter_map(|s| s.cpu_us).collect();
    x.sort_unstable_by(f64::total_cmp);
    x.get(x.len() / 2).copied()
}

/// The human-readable table.
pub fn table(o: &Options, r: &Report) -> String {
    let mut s = String::new();
    let mut w = |line: String| {
        s.push_str(&line);
        s.push('\n');
    };
    w("mcp-load run-http: Portcullis over HTTP vs a direct HTTP connection to the same MCP server".into());
    w(format!(
        "  proxy      {} --server {}",
        o.proxy.display(),
        o.server
    ));
    w(format!(
        "  server     mcp-load http-server --tools {} (HTTP/1.1 keep-alive, JSON answers)",
        o.tools
    ));
    w(format!(
        "  call       tools/call {} with {} bytes of arguments, {} serial calls after {} warm-up, {} rounds (median of the rounds' percentiles)",
        o.tool,
        o.arguments.len(),
        o.calls,
        o.warmup,
        o.rounds
    ));
    w(String::new());
    w(format!(
        "  {:<8} {:>8} {:>12} {:>8} {:>12} {:>8} {:>12} {:>8}",
        "(us)", "direct", "hyper", "added", "--transport", "added", "stdio client", "added"
    ));
    w(format!(
        "  {:<8} {:>8} {:>12} {:>8} {:>12} {:>8} {:>12} {:>8}",
        "", "HTTP", "forwarder", "", "http", "", "--upstream", ""
    ));
    let rows: [(&str, Pick); 4] = [
        ("p50", |s| s.p50),
        ("p90", |s| s.p90),
        ("p99", |s| s.p99),
        ("p99.9", |s| s.p999),
    ];
    for (name, f) in rows {
        let d = median(&r.direct, f);
        let fw = median(&r.via_forward, f);
        let h = median(&r.via_http, f);
        let st = median(&r.via_stdio, f);
        w(format!(
            "  {name:<8} {d:>8.1} {fw:>12.1} {:>+8.1} {h:>12.1} {:>+8.1} {st:>12.1} {:>+8.1}",
            fw - d,
            h - d,
            st - d
        ));
    }
    let cpu = |v: &[Session]| median_cpu(v).map_or("-".into(), |c| format!("{c:.1}"));
    w(format!(
        "  {:<8} {:>8} {:>12} {:>8} {:>12} {:>8} {:>12} {:>8}",
        "CPU/call",
        "",
        cpu(&r.via_forward),
        "",
        cpu(&r.via_http),
        "",
        cpu(&r.via_stdio),
        ""
    ));
    w("  (CPU/call: user + system time of the forwarder or proxy process per call, from /proc/PID/stat)".into());
    let added = median(&r.via_http, |s| s.p50) - median(&r.direct, |s| s.p50);
    let over_forwarder = median(&r.via_http, |s| s.p50) - median(&r.via_forward, |s| s.p50);
    w(String::new());
    w(format!(
        "goal: HTTP added p50 <= 50 us: [{}] {added:+.1} us (--transport http --upstream); {over_forwarder:+.1} us over the hyper forwarder",
        if added <= 50.0 { "met" } else { "MISSED" }
    ));
    s
}
