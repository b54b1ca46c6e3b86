//! The MCP client side of `portcullis scan`: `initialize`,
//! `notifications/initialized`, then every page of `tools/list`, over
//! stdio (a child process) or Streamable HTTP. Every step has a deadline;
//! a failure is an error message, never a hang.

use std::ffi::OsString;
use std::io::{BufRead, BufReader, Read, Write};
use std::process::{Child, ChildStdin};
use std::sync::mpsc::{self, RecvTimeoutError};
use std::time::{Duration, Instant};

use portcullis_core::json::{Strictness, Val, Value, validate};
use portcullis_proxy::child::Group;

/// The protocol version scan asks for.
pub const PROTOCOL_VERSION: &str = "2025-06-18";

/// Pages of `tools/list` read at most.
pub const MAX_PAGES: usize = 100;

/// What a scan found.
#[derive(Debug)]
pub struct Scanned {
    /// `serverInfo.name`.
    pub name: String,
    /// `serverInfo.version`.
    pub version: String,
    /// `serverInfo.title`.
    pub title: Option<String>,
    /// Each tool definition, as received (one JSON object each), duplicates removed.
    pub tools: Vec<Vec<u8>>,
    /// What else the server offers (when it declares the capability).
    pub surfaces: super::scaffold::Surfaces,
}

/// Every page of a list method: the `key` string of each entry of `array`
/// (and, for prompts, its arguments' names). Pages are read until no
/// `nextCursor`, at most [`MAX_PAGES`].
fn list_all(
    t: &mut dyn Transport,
    first_id: u64,
    method: &str,
    array: &str,
    key: &str,
) -> Result<Vec<(String, Vec<String>)>, String> {
    let mut out: Vec<(String, Vec<String>)> = Vec::new();
    let mut cursor: Option<Vec<u8>> = None;
    for page in 0..MAX_PAGES {
        let params = match &cursor {
            Some(c) => format!(r#"{{"cursor":{}}}"#, String::from_utf8_lossy(c)),
            None => "{}".into(),
        };
        let res = result(method, &t.request(first_id + page as u64, method, &params)?)?;
        let Val::Object(res) = Value::from_validated(&res).val() else {
            unreachable!("checked by result()")
        };
        let Some(Val::Array(list)) = res.get(array).map(|l| l.val()) else {
            return Err(format!("the answer to {method} has no `{array}` array"));
        };
        for item in list.iter() {
            let Val::Object(o) = item.val() else { continue };
            let Some(name) = get_string(&o, key) else {
                continue;
            };
            let args = match o.get("arguments").map(|a| a.val()) {
                Some(Val::Array(a)) => a
                    .iter()
                    .filter_map(|x| match x.val() {
                        Val::Object(xo) => get_string(&xo, "name"),
                        _ => None,
                    })
                    .collect(),
                _ => Vec::new(),
            };
            if !out.iter().any(|(n, _)| *n == name) {
                out.push((name, args));
            }
        }
        cursor = match res.get("nextCursor") {
            Some(c) if matches!(c.val(), Val::Str(s) if s.char_len() > 0) => {
                Some(c.as_bytes().to_vec())
            }
            _ => None,
        };
        if cursor.is_none() {
            return Ok(out);
        }
    }
    Err(format!(
        "the server still had more after {MAX_PAGES} pages of {method} (a cursor loop?)"
    ))
}

/// One way of exchanging JSON-RPC messages with a server.
pub trait Transport {
    /// Sends a request and returns the response with the same id (a whole JSON-RPC message).
    fn request(&mut self, id: u64, method: &str, params: &str) -> Result<Vec<u8>, String>;
    /// Sends a notification.
    fn notify(&mut self, method: &str) -> Result<(), String>;
}

fn message(id: Option<u64>, method: &str, params: Option<&str>) -> Vec<u8> {
    let mut m = String::from(r#"{"jsonrpc":"2.0","#);
    if let Some(id) = id {
        m.push_str(&format!(r#""id":{id},"#));
    }
    m.push_str(&format!(r#""method":"{method}""#));
    if let Some(p) = params {
        m.push_str(&format!(r#","params":{p}"#));
    }
    m.push('}');
    m.into_bytes()
}

/// What one incoming message is.
enum Incoming {
    /// The answer to request `id` (its raw id text).
    Response(String),
    /// A request from the server: its raw id and method.
    Request(String, String),
    /// A notification, or anything unreadable.
    Other,
}

fn classify(msg: &[u8]) -> Incoming {
    if validate(msg, Strictness::LENIENT).is_err() {
        return Incoming::Other;
    }
    let Val::Object(o) = Value::from_validated(msg).val() else {
        return Incoming::Other;
    };
    let id = o
        .get("id")
        .map(|v| String::from_utf8_lossy(v.as_bytes()).into_owned());
    match (o.get("method").map(|m| m.val()), id) {
        (Some(Val::Str(m)), Some(id)) => Incoming::Request(id, m.chars().collect()),
        (None, Some(id)) => Incoming::Response(id),
        _ => Incoming::Other,
    }
}

/// The answer scan gives to a server's request: `ping` is answered, anything else is not supported.
fn answer(id: &str, method: &str) -> Vec<u8> {
    if method == "ping" {
        format!(r#"{{"jsonrpc":"2.0","id":{id},"result":{{}}}}"#).into_bytes()
    } else {
        format!(
            r#"{{"jsonrpc":"2.0","id":{id},"error":{{"code":-32601,"message":"portcullis scan does not support {method}"}}}}"#,
            method = method.replace(['"', '\\'], "")
        )
        .into_bytes()
    }
}

/// The `result` of a response, as owned JSON text, or the server's error.
fn result(method: &str, response: &[u8]) -> Result<Vec<u8>, String> {
    validate(response, Strictness::LENIENT)
        .map_err(|e| format!("the answer to {method} is not JSON: {e}"))?;
    let Val::Object(o) = Value::from_validated(response).val() else {
        return Err(format!("the answer to {method} is not a JSON-RPC message"));
    };
    if let Some(err) = o.get("error") {
        let (code, text) = match err.val() {
            Val::Object(e) => (
                e.get("code")
                    .map(|c| String::from_utf8_lossy(c.as_bytes()).into_owned())
                    .unwrap_or_else(|| "?".into()),
                match e.get("message").map(|m| m.val()) {
                    Some(Val::Str(s)) => s.chars().collect(),
                    _ => String::new(),
                },
            ),
            _ => ("?".into(), String::new()),
        };
        return Err(format!(
            "the server answered {method} with error {code}: {}",
            super::scaffold::one_line(&text)
        ));
    }
    match o.get("result") {
        Some(r) if matches!(r.val(), Val::Object(_)) => Ok(r.as_bytes().to_vec()),
        _ => Err(format!("the answer to {method} has no result object")),
    }
}

fn get_string(o: &portcullis_core::json::Object<'_>, key: &str) -> Option<String> {
    match o.get(key)?.val() {
        Val::Str(s) => Some(s.chars().collect()),
        _ => None,
    }
}

/// initialize, notifications/initialized, every page of tools/list.
pub fn scan(t: &mut dyn Transport) -> Result<Scanned, String> {
    let params = format!(
        r#"{{"protocolVersion":"{PROTOCOL_VERSION}","capabilities":{{}},"clientInfo":{{"name":"portcullis-scan","version":"{}"}}}}"#,
        env!("CARGO_PKG_VERSION")
    );
    let init = result("initialize", &t.request(1, "initialize", &params)?)?;
    let Val::Object(init) = Value::from_validated(&init).val() else {
        unreachable!("checked by result()")
    };
    let info = match init.get("serverInfo").map(|i| i.val()) {
        Some(Val::Object(i)) => Some(i),
        _ => None,
    };
    let name = info
        .and_then(|i| get_string(&i, "name"))
        .unwrap_or_else(|| "unknown".into());
    let version = info
        .and_then(|i| get_string(&i, "version"))
        .unwrap_or_default();
    let title = info.and_then(|i| get_string(&i, "title"));
    let capability = |name: &str| match init.get("capabilities").map(|c| c.val()) {
        Some(Val::Object(c)) => c.get(name).is_some(),
        _ => false,
    };
    let (has_resources, has_prompts) = (capability("resources"), capability("prompts"));
    t.notify("notifications/initialized")?;

    let mut tools: Vec<Vec<u8>> = Vec::new();
    let mut names: Vec<String> = Vec::new();
    let mut cursor: Option<Vec<u8>> = None;
    for page in 0..=MAX_PAGES {
        if page == MAX_PAGES {
            return Err(format!(
                "the server still had more tools after {MAX_PAGES} pages of tools/list (a cursor loop?)"
            ));
        }
        let params = match &cursor {
            Some(c) => format!(r#"{{"cursor":{}}}"#, String::from_utf8_lossy(c)),
            None => "{}".into(),
        };
        let id = 2 + page as u64;
        let res = result("tools/list", &t.request(id, "tools/list", &params)?)?;
        let Val::Object(res) = Value::from_validated(&res).val() else {
            unreachable!("checked by result()")
        };
        let Some(Val::Array(list)) = res.get("tools").map(|l| l.val()) else {
            return Err("the answer to tools/list has no `tools` array".into());
        };
        for tool in list.iter() {
            let name = match tool.val() {
                Val::Object(o) => get_string(&o, "name"),
                _ => None,
            };
            let Some(name) = name else {
                eprintln!("warning: skipping a tool definition without a string `name`");
                continue;
            };
            if names.contains(&name) {
                eprintln!("warning: the server listed tool `{name}` twice; keeping the first");
                continue;
            }
            names.push(name);
            tools.push(tool.as_bytes().to_vec());
        }
        cursor = match res.get("nextCursor") {
            Some(c) if matches!(c.val(), Val::Str(s) if s.char_len() > 0) => {
                Some(c.as_bytes().to_vec())
            }
            _ => None,
        };
        if cursor.is_none() {
            break;
        }
    }
    // Resources and prompts: listed when the server offers them; a failure
    // here is a warning (the tools scaffold is still written).
    let mut surfaces = super::scaffold::Surfaces::default();
    let mut list = |id: u64, method: &str, array: &str, key: &str| {
        list_all(t, id, method, array, key).unwrap_or_else(|e| {
            eprintln!("warning: {e}; the scaffold lists none");
            Vec::new()
        })
    };
    if has_resources {
        surfaces.resources = list(1000, "resources/list", "resources", "uri")
            .into_iter()
            .map(|(u, _)| u)
            .collect();
        surfaces.templates = list(
            2000,
            "resources/templates/list",
            "resourceTemplates",
            "uriTemplate",
        )
        .into_iter()
        .map(|(u, _)| u)
        .collect();
    }
    if has_prompts {
        surfaces.prompts = list(3000, "prompts/list", "prompts", "name");
    }
    Ok(Scanned {
        name,
        version,
        title,
        tools,
        surfaces,
    })
}

fn secs(d: Duration) -> String {
    format!("{} s", d.as_secs_f64())
}

/// Whether reading an HTTP body failed for lack of time: the socket's own
/// timeout (`TimedOut`), or ureq's global one, which reaches a body reader
/// wrapped in an `io::Error` of kind `Other`. Decided by kinds, not by the
/// error's text.
fn is_timeout(e: &std::io::Error) -> bool {
    e.kind() == std::io::ErrorKind::TimedOut
        || e.get_ref()
            .and_then(|inner| inner.downcast_ref::<ureq::Error>())
            .is_some_and(|u| matches!(u, ureq::Error::Timeout(_)))
}

// ---------------------------------------------------------------------------
// stdio

/// A server started as a child process, in its own process group; stopped
/// (stdin closed, then SIGTERM, then SIGKILL to the group) when dropped.
pub struct StdioServer {
    child: Child,
    stdin: Option<ChildStdin>,
    lines: mpsc::Receiver<Vec<u8>>,
    timeout: Duration,
    program: String,
}

impl StdioServer {
    /// Starts `command` with stdin and stdout piped, stderr inherited.
    pub fn start(command: &[OsString], timeout: Duration) -> Result<StdioServer, String> {
        Self::start_with_env(command, &[], timeout)
    }

    /// Starts `command` with these variables added to its environment (an
    /// MCP client's `env` for the server, as `portcullis init` scans it).
    pub fn start_with_env(
        command: &[OsString],
        env: &[(String, String)],
        timeout: Duration,
    ) -> Result<StdioServer, String> {
        let program = command[0].to_string_lossy().into_owned();
        // Started as the proxy starts servers: without the proxy's secrets,
        // in a process group of its own, killed if `scan` dies.
        let mut child = portcullis_proxy::child::command(command)
            .envs(env.iter().map(|(k, v)| (k, v)))
            .spawn()
            .map_err(|e| format!("cannot start `{program}`: {e}"))?;
        let stdin = child.stdin.take();
        let stdout = child.stdout.take().expect("piped");
        let (tx, rx) = mpsc::channel();
        std::thread::spawn(move || {
            let mut reader = BufReader::new(stdout);
            loop {
                let mut line = Vec::new();
                match reader.read_until(b'\n', &mut line) {
                    Ok(0) | Err(_) => break,
                    Ok(_) => {
                        if tx.send(line).is_err() {
                            break;
                        }
                    }
                }
            }
        });
        Ok(StdioServer {
            child,
            stdin,
            lines: rx,
            timeout,
            program,
        })
    }

    fn write(&mut self, msg: &[u8], method: &str) -> Result<(), String> {
        let stdin = self.stdin.as_mut().expect("open until drop");
        let written = stdin
            .write_all(msg)
            .and_then(|_| stdin.write_all(b"\n"))
            .and_then(|_| stdin.flush());
        match written {
            Ok(()) => Ok(()),
            Err(e) => Err(self
                .exited(method)
                .unwrap_or_else(|| format!("cannot write to `{}`: {e}", self.program))),
        }
    }

    /// "`cmd` exited before answering METHOD (exit status: 1)", if it has exited.
    fn exited(&mut self, method: &str) -> Option<String> {
        let deadline = Instant::now() + Duration::from_millis(500);
        loop {
            if let Ok(Some(status)) = self.child.try_wait() {
                return Some(format!(
                    "`{}` exited before answering {method} ({status})",
                    self.program
                ));
            }
            if Instant::now() >= deadline {
                return None;
            }
            std::thread::sleep(Duration::from_millis(10));
        }
    }

    fn stop(&mut self) {
        use nix::sys::signal::Signal;
        self.stdin = None; // EOF: a well-behaved server exits now
        let group = Group::of(self.child.id());
        let wait = |child: &mut Child, limit: Duration| {
            let deadline = Instant::now() + limit;
            loop {
                if let Ok(Some(_)) = child.try_wait() {
                    return true;
                }
                if Instant::now() >= deadline {
                    return false;
                }
                std::thread::sleep(Duration::from_millis(20));
            }
        };
        // The proxy's escalation (child::supervise), blocking and with
        // shorter waits: a scan is interactive.
        if !wait(&mut self.child, Duration::from_secs(2)) {
            let _ = group.try_signal(Signal::SIGTERM);
            if !wait(&mut self.child, Duration::from_secs(2)) {
                let _ = group.try_signal(Signal::SIGKILL);
                let _ = self.child.kill();
                let _ = self.child.wait();
            }
        }
        // Whatever the server started in its group and left behind.
        let _ = group.try_signal(Signal::SIGKILL);
    }
}

impl Drop for StdioServer {
    fn drop(&mut self) {
        self.stop();
    }
}

impl Transport for StdioServer {
    fn request(&mut self, id: u64, method: &str, params: &str) -> Result<Vec<u8>, String> {
        self.write(&message(Some(id), method, Some(params)), method)?;
        let want = id.to_string();
        let deadline = Instant::now() + self.timeout;
        loop {
            let left = deadline.saturating_duration_since(Instant::now());
            match self.lines.recv_timeout(left) {
                Ok(line) => match classify(&line) {
                    Incoming::Response(rid) if rid == want => return Ok(line),
                    Incoming::Request(rid, m) => self.write(&answer(&rid, &m), method)?,
                    _ => {}
                },
                Err(RecvTimeoutError::Timeout) => {
                    return Err(format!(
                        "`{}` did not answer {method} within {}",
                        self.program,
                        secs(self.timeout)
                    ));
                }
                Err(RecvTimeoutError::Disconnected) => {
                    return Err(self.exited(method).unwrap_or_else(|| {
                        format!(
                            "`{}` closed its stdout before answering {method}",
                            self.program
                        )
                    }));
                }
            }
        }
    }

    fn notify(&mut self, method: &str) -> Result<(), String> {
        self.write(&message(None, method, None), method)
    }
}

// ---------------------------------------------------------------------------
// Streamable HTTP

/// A remote server over Streamable HTTP; its session is deleted when dropped.
pub struct Http {
    agent: ureq::Agent,
    url: String,
    headers: Vec<(String, String)>,
    session: Option<String>,
    protocol: Option<String>,
    timeout: Duration,
}

/// `Name: value` to a pair; an error names the flag's bad value.
pub fn parse_header(h: &str) -> Result<(String, String), String> {
    let bad = || format!("--header `{h}` is not `Name: value`");
    let (name, value) = h.split_once(':').ok_or_else(bad)?;
    let name = name.trim();
    let token = |c: char| c.is_ascii_alphanumeric() || "!#$%&'*+-.^_`|~".contains(c);
    if name.is_empty() || !name.chars().all(token) {
        return Err(bad());
    }
    let value = value.trim();
    if value.chars().any(|c| c.is_control() && c != '\t') {
        return Err(format!(
            "--header `{name}`: the value has a control character"
        ));
    }
    Ok((name.to_string(), value.to_string()))
}

impl Http {
    /// A client for `url` (not contacted yet).
    pub fn new(
        url: &str,
        headers: Vec<(String, String)>,
        timeout: Duration,
    ) -> Result<Http, String> {
        if !(url.starts_with("http://") || url.starts_with("https://")) {
            return Err(format!(
                "--upstream `{url}` is not an http:// or https:// URL"
            ));
        }
        let config = ureq::Agent::config_builder()
            .timeout_global(Some(timeout))
            .http_status_as_error(false)
            .max_redirects(0)
            .build();
        Ok(Http {
            agent: config.into(),
            url: url.to_string(),
            headers,
            session: None,
            protocol: None,
            timeout,
        })
    }

    fn post(&self, body: &[u8]) -> Result<ureq::http::Response<ureq::Body>, ureq::Error> {
        let mut req = self
            .agent
            .post(&self.url)
            .header("Content-Type", "application/json")
            .header("Accept", "application/json, text/event-stream");
        for (k, v) in &self.headers {
            req = req.header(k.as_str(), v.as_str());
        }
        if let Some(s) = &self.session {
            req = req.header("Mcp-Session-Id", s.as_str());
        }
        if let Some(p) = &self.protocol {
            req = req.header("MCP-Protocol-Version", p.as_str());
        }
        req.send(body)
    }

    fn describe(&self, what: &str, e: ureq::Error) -> String {
        match e {
            ureq::Error::Timeout(_) => format!(
                "{} did not answer {what} within {}",
                self.url,
                secs(self.timeout)
            ),
            e => format!("{what} to {} failed: {e}", self.url),
        }
    }

    /// The error for a response that is not a success.
    fn status_error(&self, what: &str, mut resp: ureq::http::Response<ureq::Body>) -> String {
        let status = resp.status();
        let mut body = Vec::new();
        let _ = resp
            .body_mut()
            .as_reader()
            .take(4096)
            .read_to_end(&mut body);
        let text = super::scaffold::one_line(&String::from_utf8_lossy(&body));
        let text: String = text.chars().take(300).collect();
        let hint = match status.as_u16() {
            401 | 403 => " (does it need --header \"Authorization: Bearer ...\"?)",
            404 if self.session.is_some() => " (the server ended the session)",
            404 | 405 => " (is this the MCP endpoint? it is often /mcp)",
            _ => "",
        };
        format!(
            "{what} to {}: HTTP {status}{hint}{}",
            self.url,
            if text.is_empty() {
                String::new()
            } else {
                format!(": {text}")
            }
        )
    }

    /// Handles one message from the server; Some when it is the response wanted.
    fn incoming(&self, msg: &[u8], want: &str) -> Option<Vec<u8>> {
        let msg = msg.trim_ascii();
        if msg.starts_with(b"[") {
            // A batch (older servers): look inside.
            if validate(msg, Strictness::LENIENT).is_ok()
                && let Val::Array(items) = Value::from_validated(msg).val()
            {
                for item in items.iter() {
                    if let Some(r) = self.incoming(item.as_bytes(), want) {
                        return Some(r);
                    }
                }
            }
            return None;
        }
        match classify(msg) {
            Incoming::Response(id) if id == want => Some(msg.to_vec()),
            Incoming::Request(id, method) => {
                // Best effort: the answer goes back as its own POST.
                if let Ok(mut r) = self.post(&answer(&id, &method)) {
                    let _ = std::io::copy(&mut r.body_mut().as_reader(), &mut std::io::sink());
                }
                None
            }
            _ => None,
        }
    }

    /// Reads an SSE stream until the response with id `want`.
    fn read_events(&self, body: impl Read, want: &str, method: &str) -> Result<Vec<u8>, String> {
        let mut reader = BufReader::new(body);
        let mut data: Vec<u8> = Vec::new();
        let mut has_data = false;
        let mut event = String::new();
        loop {
            let mut line = Vec::new();
            let n = reader
                .read_until(b'\n', &mut line)
                .map_err(|e| self.read_error(method, e))?;
            let end = n == 0;
            while line.last().is_some_and(|&b| b == b'\n' || b == b'\r') {
                line.pop();
            }
            if line.is_empty() {
                // End of an event (or of the stream).
                if has_data
                    && (event.is_empty() || event == "message")
                    && let Some(r) = self.incoming(&data, want)
                {
                    return Ok(r);
                }
                data.clear();
                has_data = false;
                event.clear();
                if end {
                    return Err(format!(
                        "{} closed the event stream without answering {method}",
                        self.url
                    ));
                }
                continue;
            }
            if line.starts_with(b":") {
                continue;
            }
            let (field, value) = match line.iter().position(|&b| b == b':') {
                Some(i) => {
                    let v = &line[i + 1..];
                    (&line[..i], v.strip_prefix(b" ").unwrap_or(v))
                }
                None => (&line[..], &b""[..]),
            };
            match field {
                b"data" => {
                    if has_data {
                        data.push(b'\n');
                    }
                    data.extend_from_slice(value);
                    has_data = true;
                }
                b"event" => event = String::from_utf8_lossy(value).into_owned(),
                _ => {}
            }
        }
    }

    fn read_error(&self, method: &str, e: std::io::Error) -> String {
        if is_timeout(&e) {
            format!(
                "{} did not answer {method} within {}",
                self.url,
                secs(self.timeout)
            )
        } else {
            format!("reading the answer to {method} from {}: {e}", self.url)
        }
    }

    /// DELETEs the session (best effort).
    fn close(&mut self) {
        let Some(session) = self.session.take() else {
            return;
        };
        let mut req = self.agent.delete(&self.url);
        for (k, v) in &self.headers {
            req = req.header(k.as_str(), v.as_str());
        }
        req = req.header("Mcp-Session-Id", session.as_str());
        if let Some(p) = &self.protocol {
            req = req.header("MCP-Protocol-Version", p.as_str());
        }
        if let Ok(mut r) = req.call() {
            let _ = std::io::copy(&mut r.body_mut().as_reader(), &mut std::io::sink());
        }
    }
}

impl Drop for Http {
    fn drop(&mut self) {
        self.close();
    }
}

impl Transport for Http {
    fn request(&mut self, id: u64, method: &str, params: &str) -> Result<Vec<u8>, String> {
        let resp = self
            .post(&message(Some(id), method, Some(params)))
            .map_err(|e| self.describe(method, e))?;
        if !resp.status().is_success() {
            return Err(self.status_error(method, resp));
        }
        if method == "initialize" {
            self.session = resp
                .headers()
                .get("mcp-session-id")
                .and_then(|v| v.to_str().ok())
                .map(str::to_string);
        }
        let content_type = resp
            .headers()
            .get("content-type")
            .and_then(|v| v.to_str().ok())
            .unwrap_or("")
            .to_ascii_lowercase();
        let want = id.to_string();
        let mut body = resp.into_body();
        let answer = if content_type.starts_with("text/event-stream") {
            self.read_events(body.as_reader(), &want, method)?
        } else {
            let mut bytes = Vec::new();
            body.as_reader()
                .read_to_end(&mut bytes)
                .map_err(|e| self.read_error(method, e))?;
            self.incoming(&bytes, &want).ok_or_else(|| {
                format!(
                    "the HTTP answer to {method} from {} is not its JSON-RPC response",
                    self.url
                )
            })?
        };
        if method == "initialize"
            && validate(&answer, Strictness::LENIENT).is_ok()
            && let Val::Object(o) = Value::from_validated(&answer).val()
            && let Some(Val::Object(r)) = o.get("result").map(|r| r.val())
        {
            self.protocol = get_string(&r, "protocolVersion");
        }
        Ok(answer)
    }

    fn notify(&mut self, method: &str) -> Result<(), String> {
        let mut resp = self
            .post(&message(None, method, None))
            .map_err(|e| self.describe(method, e))?;
        if !resp.status().is_success() {
            return Err(self.status_error(method, resp));
        }
        let _ = std::io::copy(&mut resp.body_mut().as_reader(), &mut std::io::sink());
        Ok(())
    }
}
