//! `portcullis demo`: one real MCP session, through this binary's proxy and
//! its embedded policy, against a real MCP server (by default
//! `npx -y @modelcontextprotocol/server-everything`), printing every decision.
//!
//! It is an ordinary MCP client: it starts `portcullis --server NAME -- CMD`
//! as its server, exactly as Claude Code or any other client would, so what
//! it shows is what an agent gets.

use std::collections::HashMap;
use std::ffi::OsString;
use std::io::{BufRead, BufReader, Write};
use std::process::{Child, ChildStdin, Command, Stdio};
use std::sync::mpsc;
use std::time::{Duration, Instant};

use portcullis_core::json::{Strictness, Val, Value, validate};

use crate::cli::DemoArgs;

struct Client {
    child: Child,
    stdin: ChildStdin,
    responses: mpsc::Receiver<(String, String)>,
    stash: HashMap<String, String>,
    next_id: u64,
}

fn json_get<'a>(v: Value<'a>, path: &[&str]) -> Option<Value<'a>> {
    let mut cur = v;
    for seg in path {
        let Val::Object(o) = cur.val() else {
            return None;
        };
        cur = o.get(seg)?;
    }
    Some(cur)
}

fn as_string(v: Option<Value<'_>>) -> Option<String> {
    match v?.val() {
        Val::Str(s) => Some(s.chars().collect()),
        _ => None,
    }
}

impl Client {
    fn start(proxy_args: &[OsString]) -> std::io::Result<Client> {
        let exe = std::env::current_exe()?;
        let mut child = Command::new(exe)
            .args(proxy_args)
            .stdin(Stdio::piped())
            .stdout(Stdio::piped())
            .stderr(Stdio::inherit())
            .spawn()?;
        let stdin = child.stdin.take().expect("piped");
        let stdout = child.stdout.take().expect("piped");
        let (tx, rx) = mpsc::channel();
        std::thread::spawn(move || {
            for line in BufReader::new(stdout).lines() {
                let Ok(line) = line else { break };
                if validate(line.as_bytes(), Strictness::LENIENT).is_err() {
                    continue;
                }
                let v = Value::from_validated(line.as_bytes());
                let is_response = json_get(v, &["method"]).is_none();
                if let (true, Some(id)) = (is_response, json_get(v, &["id"])) {
                    let key = String::from_utf8_lossy(id.as_bytes()).into_owned();
                    if tx.send((key, line.clone())).is_err() {
                        break;
                    }
                }
            }
        });
        Ok(Client {
            child,
            stdin,
            responses: rx,
            stash: HashMap::new(),
            next_id: 1,
        })
    }

    fn send(&mut self, method: &str, params: &str) -> std::io::Result<String> {
        let id = self.next_id;
        self.next_id += 1;
        writeln!(
            self.stdin,
            r#"{{"jsonrpc":"2.0","id":{id},"method":"{method}","params":{params}}}"#
        )?;
        self.stdin.flush()?;
        Ok(id.to_string())
    }

    fn notify(&mut self, method: &str) -> std::io::Result<()> {
        writeln!(self.stdin, r#"{{"jsonrpc":"2.0","method":"{method}"}}"#)?;
        self.stdin.flush()
    }

    fn wait(&mut self, id: &str, timeout: Duration) -> Result<String, String> {
        if let Some(r) = self.stash.remove(id) {
            return Ok(r);
        }
        let deadline = Instant::now() + timeout;
        loop {
            let left = deadline.saturating_duration_since(Instant::now());
            match self.responses.recv_timeout(left) {
                Ok((key, line)) if key == id => return Ok(line),
                Ok((key, line)) => {
                    self.stash.insert(key, line);
                }
                Err(_) => return Err(format!("no answer to request {id} within {timeout:?}")),
            }
        }
    }

    fn request(&mut self, method: &str, params: &str) -> Result<String, String> {
        let id = self.send(method, params).map_err(|e| e.to_string())?;
        self.wait(&id, Duration::from_secs(120))
    }
}

/// What a call came back as.
struct Shown {
    denied: bool,
    text: String,
    rule: Option<String>,
}

fn show(line: &str) -> Shown {
    let v = Value::from_validated(line.as_bytes());
    if let Some(msg) = as_string(json_get(v, &["error", "message"])) {
        return Shown {
            denied: true,
            text: format!("JSON-RPC error: {msg}"),
            rule: None,
        };
    }
    let is_error = matches!(
        json_get(v, &["result", "isError"]).map(|b| b.val()),
        Some(Val::Bool(true))
    );
    let text = match json_get(v, &["result", "content"]).map(|c| c.val()) {
        Some(Val::Array(items)) => items
            .iter()
            .filter_map(|i| as_string(json_get(i, &["text"])))
            .collect::<Vec<_>>()
            .join(" "),
        _ => String::new(),
    };
    let meta = json_get(v, &["result", "_meta", "dev.portcullis/decision"]);
    let rule = meta.and_then(|m| {
        let name = as_string(json_get(m, &["rule"]))?;
        let source = as_string(json_get(m, &["source"])).unwrap_or_default();
        Some(format!("rule \"{name}\" at {source}"))
    });
    let denied = is_error && text.starts_with("[POLICY DENIED]");
    Shown { denied, text, rule }
}

fn one_line(s: &str, max: usize) -> String {
    let flat: String = s
        .chars()
        .map(|c| if c.is_control() { ' ' } else { c })
        .collect();
    if flat.chars().count() > max {
        format!("{}…", flat.chars().take(max - 1).collect::<String>())
    } else {
        flat
    }
}

/// Runs the demo; 0 when every decision was the one the policy prescribes.
pub fn run(args: &DemoArgs) -> i32 {
    let command: Vec<OsString> = if args.command.is_empty() {
        ["npx", "-y", "@modelcontextprotocol/server-everything"]
            .iter()
            .map(OsString::from)
            .collect()
    } else {
        args.command.clone()
    };
    let Some(policy) = crate::embedded::POLICIES
        .iter()
        .find(|p| p.meta().server == args.server)
    else {
        eprintln!("error: no embedded policy `{}`", args.server);
        return 1;
    };
    let meta = policy.meta();
    let shown_cmd = command
        .iter()
        .map(|c| c.to_string_lossy())
        .collect::<Vec<_>>()
        .join(" ");
    println!(
        "Portcullis demo: policy `{}` ({}, {}, sha256:{})",
        meta.server,
        meta.dialect,
        meta.file,
        &meta.digest[..16]
    );
    println!("                 in front of: {shown_cmd}\n");
    let mut proxy_args: Vec<OsString> = ["--server", &args.server, "--log-level", "warn", "--"]
        .iter()
        .map(OsString::from)
        .collect();
    proxy_args.extend(command);
    let mut client = match Client::start(&proxy_args) {
        Ok(c) => c,
        Err(e) => {
            eprintln!("error: cannot start the proxy: {e}");
            return 1;
        }
    };
    let mut failures = 0;
    let result = (|| -> Result<(), String> {
        let init = client.request(
            "initialize",
            r#"{"protocolVersion":"2025-06-18","capabilities":{},"clientInfo":{"name":"portcullis-demo","version":"1"}}"#,
        )?;
        let v = Value::from_validated(init.as_bytes());
        let server =
            as_string(json_get(v, &["result", "serverInfo", "name"])).unwrap_or_else(|| "?".into());
        client
            .notify("notifications/initialized")
            .map_err(|e| e.to_string())?;
        println!("initialize: connected to `{server}`");
        let mut visible = Vec::new();
        let mut cursor: Option<String> = None;
        loop {
            let params = match &cursor {
                Some(c) => format!(r#"{{"cursor":"{c}"}}"#),
                None => "{}".into(),
            };
            let page = client.request("tools/list", &params)?;
            let v = Value::from_validated(page.as_bytes());
            if let Some(Val::Array(tools)) = json_get(v, &["result", "tools"]).map(|t| t.val()) {
                visible.extend(
                    tools
                        .iter()
                        .filter_map(|t| as_string(json_get(t, &["name"]))),
                );
            }
            cursor = as_string(json_get(v, &["result", "nextCursor"]));
            if cursor.is_none() {
                break;
            }
        }
        let hidden: Vec<&str> = ["get-env"]
            .into_iter()
            .filter(|t| policy.is_hidden(t, None))
            .collect();
        println!(
            "tools/list: {} tools visible; hidden by policy: {}",
            visible.len(),
            hidden.join(", ")
        );
        for h in &hidden {
            if visible.iter().any(|v| v == h) {
                println!("  UNEXPECTED: hidden tool {h} is listed");
                failures += 1;
            }
        }
        println!();
        let calls: [(&str, &str, bool); 7] = [
            ("echo", r#"{"message":"Hello from Portcullis"}"#, false),
            ("get-sum", r#"{"a":2,"b":3}"#, false),
            ("get-sum", r#"{"a":5000,"b":1}"#, true),
            ("echo", r#"{"message":"line one\nline two"}"#, true),
            (
                "gzip-file-as-resource",
                r#"{"name":"x.gz","data":"https://example.com/"}"#,
                true,
            ),
            ("get-env", r#"{}"#, true),
            ("get-tiny-image", r#"{}"#, false),
        ];
        for (tool, arguments, expect_deny) in calls {
            let line = client.request(
                "tools/call",
                &format!(r#"{{"name":"{tool}","arguments":{arguments}}}"#),
            )?;
            failures += usize::from(report(tool, arguments, &show(&line), expect_deny));
        }
        // Four long operations at once: they run concurrently, and the policy's 3-per-minute limit denies one.
        let arguments = r#"{"duration":1,"steps":2}"#;
        let ids: Vec<String> = (0..4)
            .map(|_| {
                client.send(
                    "tools/call",
                    &format!(
                        r#"{{"name":"trigger-long-running-operation","arguments":{arguments}}}"#
                    ),
                )
            })
            .collect::<Result<_, _>>()
            .map_err(|e| e.to_string())?;
        let started = Instant::now();
        let mut denied = 0;
        for id in ids {
            let line = client.wait(&id, Duration::from_secs(60))?;
            let s = show(&line);
            denied += usize::from(s.denied);
            report("trigger-long-running-operation", arguments, &s, s.denied);
        }
        println!(
            "  (four concurrent calls answered in {:.1} s; {denied} denied by the rate limit)",
            started.elapsed().as_secs_f64()
        );
        if denied != 1 {
            failures += 1;
        }
        Ok(())
    })();
    drop(client.stdin);
    let _ = client.child.wait();
    match result {
        Err(e) => {
            eprintln!("\nerror: {e}");
            1
        }
        Ok(()) if failures > 0 => {
            eprintln!("\n{failures} decision(s) differed from the policy");
            1
        }
        Ok(()) => {
            println!("\nEvery decision matched the policy. Denied calls never reached the server.");
            0
        }
    }
}

/// Prints one call; returns true if the outcome was not the expected one.
fn report(tool: &str, arguments: &str, s: &Shown, expect_deny: bool) -> bool {
    let verdict = if s.denied { "DENY " } else { "ALLOW" };
    println!("  {verdict}  {tool} {}", one_line(arguments, 60));
    println!("         -> {}", one_line(&s.text, 100));
    if let Some(r) = &s.rule {
        println!("            ({r})");
    }
    if s.denied != expect_deny {
        println!(
            "         UNEXPECTED: expected {}",
            if expect_deny { "a denial" } else { "an allow" }
        );
        return true;
    }
    false
}
