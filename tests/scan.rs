//! `portcullis scan`: the real binary against the real server-everything
//! (stdio and Streamable HTTP) and a scripted server with hostile names and
//! descriptions; the scaffold writer on its own; and the schema warnings
//! `portcullis validate` gives from the saved `*.tools.json`.

mod common;

#[path = "../src/commands/scan/scaffold.rs"]
#[allow(dead_code)]
mod scaffold;

use std::collections::BTreeSet;
use std::io::{BufRead, BufReader, Write};
use std::path::Path;
use std::process::{Child, Command, Stdio};
use std::sync::mpsc;
use std::time::Duration;

use common::{free_port, portcullis, root, server_everything, temp_dir};
use portcullis_compiler::syntax::yaml::{self, NodeValue};
use portcullis_compiler::{Input, compile, ir::NamePattern, load_file, source::FileId};

/// A child process killed (and reaped) when the test ends, whatever happens.
struct Guard(Child);

impl Drop for Guard {
    fn drop(&mut self) {
        let _ = self.0.kill();
        let _ = self.0.wait();
    }
}

/// Runs `portcullis ARGS`; (exit code, stdout, stderr).
fn run(args: &[&str]) -> (i32, String, String) {
    let out = Command::new(portcullis())
        .args(args)
        .current_dir(root())
        .stdin(Stdio::null())
        .output()
        .expect("run portcullis");
    (
        out.status.code().unwrap_or(-1),
        String::from_utf8(out.stdout).unwrap(),
        String::from_utf8(out.stderr).unwrap(),
    )
}

/// The tool names server-everything lists, asked directly (every page).
fn direct_tool_names() -> BTreeSet<String> {
    let mut child = Guard(
        Command::new("node")
            .arg(server_everything())
            .stdin(Stdio::piped())
            .stdout(Stdio::piped())
            .stderr(Stdio::null())
            .spawn()
            .expect("start node"),
    );
    let stdout = child.0.stdout.take().unwrap();
    let (tx, rx) = mpsc::channel();
    std::thread::spawn(move || {
        for line in BufReader::new(stdout).lines() {
            let Ok(line) = line else { break };
            if tx.send(line).is_err() {
                break;
            }
        }
    });
    let mut stdin = child.0.stdin.take().unwrap();
    let ask = |stdin: &mut std::process::ChildStdin,
               id: u64,
               method: &str,
               params: serde_json::Value|
     -> serde_json::Value {
        let msg =
            serde_json::json!({"jsonrpc": "2.0", "id": id, "method": method, "params": params});
        writeln!(stdin, "{msg}").unwrap();
        loop {
            let line = rx
                .recv_timeout(Duration::from_secs(30))
                .expect("server-everything answers");
            let v: serde_json::Value = match serde_json::from_str(&line) {
                Ok(v) => v,
                Err(_) => continue,
            };
            if v["id"] == id && v.get("method").is_none() {
                return v["result"].clone();
            }
        }
    };
    ask(
        &mut stdin,
        1,
        "initialize",
        serde_json::json!({"protocolVersion": "2025-06-18", "capabilities": {}, "clientInfo": {"name": "t", "version": "1"}}),
    );
    writeln!(
        stdin,
        r#"{{"jsonrpc":"2.0","method":"notifications/initialized"}}"#
    )
    .unwrap();
    let mut names = BTreeSet::new();
    let mut cursor: Option<serde_json::Value> = None;
    for id in 2..50 {
        let params = match &cursor {
            Some(c) => serde_json::json!({ "cursor": c }),
            None => serde_json::json!({}),
        };
        let r = ask(&mut stdin, id, "tools/list", params);
        for t in r["tools"].as_array().unwrap() {
            names.insert(t["name"].as_str().unwrap().to_string());
        }
        cursor = r.get("nextCursor").filter(|c| !c.is_null()).cloned();
        if cursor.is_none() {
            break;
        }
    }
    names
}

/// The tool names of a YAML scaffold, read back by the policy YAML parser.
fn yaml_tool_names(text: &str) -> Vec<String> {
    let root = yaml::parse(FileId(0), text)
        .unwrap_or_else(|e| panic!("{e:?}\n{text}"))
        .unwrap();
    match &root.get("tools").unwrap().value {
        NodeValue::Map(entries) => entries.iter().map(|(k, _)| k.text.clone()).collect(),
        other => panic!("tools is not a mapping: {other:?}"),
    }
}

/// Compiles one policy file; the exact tool names of its blocks.
fn compiled_tool_names(path: &Path) -> BTreeSet<String> {
    let out = compile(&[load_file(path, None).unwrap()]);
    assert!(out.is_ok(), "{}", out.render());
    assert!(out.diagnostics.0.is_empty(), "{}", out.render());
    let policy = &out.policies[0];
    policy
        .tools
        .iter()
        .flat_map(|t| &t.patterns)
        .map(|p| match p {
            NamePattern::Exact(n) => n.clone(),
            other => panic!("not an exact name: {other:?}"),
        })
        .collect()
}

/// The tool names in a saved `*.tools.json`.
fn schema_file_names(path: &Path) -> BTreeSet<String> {
    let v: serde_json::Value =
        serde_json::from_str(&std::fs::read_to_string(path).unwrap()).unwrap();
    v.as_array()
        .unwrap()
        .iter()
        .map(|t| t["name"].as_str().unwrap().to_string())
        .collect()
}

/// `scan -o FILE -- node server-everything`: the scaffold, validated and compiled.
fn scan_everything(file: &Path, extra: &[&str]) -> String {
    let server = server_everything();
    let mut args = vec!["scan", "--timeout", "30", "-o", file.to_str().unwrap()];
    args.extend(extra);
    args.extend(["--", "node", server.to_str().unwrap()]);
    let (code, out, err) = run(&args);
    assert_eq!(code, 0, "{err}");
    assert!(out.is_empty(), "with -o nothing goes to stdout: {out}");
    assert!(err.contains("scan: `mcp-servers/everything`"), "{err}");
    std::fs::read_to_string(file).unwrap()
}

fn assert_valid(file: &Path) {
    let (code, out, err) = run(&["validate", "--deny-warnings", file.to_str().unwrap()]);
    assert_eq!(code, 0, "{out}{err}");
    assert!(out.contains("Policy file is valid."), "{out}");
}

const KNOWN: [&str; 4] = [
    "echo",
    "get-sum",
    "get-env",
    "trigger-long-running-operation",
];

#[test]
fn scans_server_everything_over_stdio_to_yaml() {
    let expected = direct_tool_names();
    for k in KNOWN {
        assert!(expected.contains(k), "{k} missing from {expected:?}");
    }
    let dir = temp_dir("scan-yaml");
    let file = dir.join("everything.yaml");
    let text = scan_everything(&file, &[]);

    let listed: Vec<String> = yaml_tool_names(&text);
    assert_eq!(listed.len(), expected.len(), "{text}");
    assert_eq!(listed.iter().cloned().collect::<BTreeSet<_>>(), expected);
    assert_eq!(compiled_tool_names(&file), expected);
    assert_valid(&file);

    // The Intercept v1 frame and the comments.
    assert!(text.contains("\nversion: \"1\"\n"), "{text}");
    assert!(
        text.contains("\ndescription: \"Policy for mcp-servers/everything\"\n"),
        "{text}"
    );
    assert!(text.contains("\ndefault: allow\n"), "{text}");
    assert!(text.starts_with("# Policy scaffold for the MCP server `mcp-servers/everything`"));
    assert!(text.contains("  # Echoes back the input string\n  # Parameters: message (string, required)\n  echo:\n    rules: []\n"), "{text}");
    assert!(
        text.contains("  # Parameters: a (number, required), b (number, required)\n  get-sum:\n"),
        "{text}"
    );
    assert!(text.contains("  # ==== Read ("), "{text}");
    assert!(text.contains("  # \"*\":\n  #   rules:\n"), "{text}");
    assert!(text.contains("  #       rate_limit: 60/minute\n"), "{text}");
    for line in text.lines() {
        assert!(
            line.starts_with('#') || line.trim_start().starts_with('#') || line.len() <= 100,
            "{line}"
        );
    }
    // Within a group, sorted by name.
    let read_group: Vec<&str> = text
        .split("# ==== Read (")
        .nth(1)
        .unwrap()
        .split("# ====")
        .next()
        .unwrap()
        .lines()
        .filter(|l| {
            l.starts_with("  ") && !l.starts_with("   ") && l.ends_with(':') && !l.contains('#')
        })
        .collect();
    let mut sorted = read_group.clone();
    sorted.sort();
    assert_eq!(read_group, sorted);

    // The definitions as received, beside the policy.
    let schemas = dir.join("everything.tools.json");
    assert_eq!(schema_file_names(&schemas), expected);
    let _ = std::fs::remove_dir_all(&dir);
}

#[test]
fn scans_server_everything_over_stdio_to_the_policy_language() {
    let expected = direct_tool_names();
    let dir = temp_dir("scan-dsl");
    // --format dsl explicitly, and inferred from the extension.
    for (name, extra) in [
        ("everything.policy", &["--format", "dsl"][..]),
        ("other.policy", &[][..]),
    ] {
        let file = dir.join(name);
        let text = scan_everything(&file, extra);
        let stem = name.trim_end_matches(".policy");
        assert!(
            text.contains(&format!(
                "server {stem} \"Policy for mcp-servers/everything\" {{\n  default allow\n"
            )),
            "{text}"
        );
        assert!(text.contains("  tool echo {}\n"), "{text}");
        assert!(
            text.contains("  // Parameters: message (string, required)\n"),
            "{text}"
        );
        assert!(text.contains("  // tool * {\n"), "{text}");
        assert_eq!(compiled_tool_names(&file), expected);
        assert_valid(&file);
        let (code, _, err) = run(&["fmt", "--check", file.to_str().unwrap()]);
        assert_eq!(code, 0, "the scaffold is in the canonical layout: {err}");
        assert_eq!(
            schema_file_names(&dir.join(format!("{stem}.tools.json"))),
            expected
        );
    }
    // Without -o: stdout, and the server name from the server's own name.
    let server = server_everything();
    let (code, out, err) = run(&[
        "scan",
        "--format",
        "dsl",
        "--",
        "node",
        server.to_str().unwrap(),
    ]);
    assert_eq!(code, 0, "{err}");
    assert!(
        out.contains("server mcp-servers_everything \"Policy for mcp-servers/everything\" {"),
        "{out}"
    );
    let _ = std::fs::remove_dir_all(&dir);
}

#[test]
fn scans_server_everything_over_streamable_http() {
    let expected = direct_tool_names();
    let port = free_port();
    let mut server = Guard(
        Command::new("node")
            .arg(server_everything())
            .arg("streamableHttp")
            .env("PORT", port.to_string())
            .stdin(Stdio::null())
            .stdout(Stdio::null())
            .stderr(Stdio::piped())
            .spawn()
            .expect("start node"),
    );
    // It says so on stderr once it listens.
    let stderr = server.0.stderr.take().unwrap();
    let (tx, rx) = mpsc::channel();
    std::thread::spawn(move || {
        for line in BufReader::new(stderr).lines() {
            let Ok(line) = line else { break };
            let _ = tx.send(line);
        }
    });
    loop {
        let line = rx
            .recv_timeout(Duration::from_secs(30))
            .expect("server-everything starts listening");
        if line.contains("listening on port") {
            break;
        }
    }
    let dir = temp_dir("scan-http");
    let file = dir.join("everything.yaml");
    let url = format!("http://127.0.0.1:{port}/mcp");
    let (code, out, err) = run(&[
        "scan",
        "--timeout",
        "30",
        "--upstream",
        &url,
        "--header",
        "X-Test: portcullis",
        "-o",
        file.to_str().unwrap(),
    ]);
    assert_eq!(code, 0, "{out}{err}");
    let text = std::fs::read_to_string(&file).unwrap();
    assert!(
        text.contains(&format!("from {url} (Streamable HTTP)")),
        "{text}"
    );
    assert_eq!(
        yaml_tool_names(&text).into_iter().collect::<BTreeSet<_>>(),
        expected
    );
    assert_eq!(compiled_tool_names(&file), expected);
    assert_eq!(
        schema_file_names(&dir.join("everything.tools.json")),
        expected
    );
    assert_valid(&file);

    // A wrong path is a clear error, not a hang.
    let (code, _, err) = run(&[
        "scan",
        "--timeout",
        "10",
        "--upstream",
        &format!("http://127.0.0.1:{port}/nope"),
    ]);
    assert_eq!(code, 1);
    assert!(err.starts_with("error: initialize to "), "{err}");
    assert!(err.contains("HTTP 404"), "{err}");
    let _ = server.0.kill();
    let _ = server.0.wait();
    let _ = std::fs::remove_dir_all(&dir);
}

/// Names YAML would not read back as themselves without quotes, and others.
const HOSTILE: [&str; 10] = [
    "null",
    "true",
    "017",
    "~",
    "a b",
    "*",
    "1e3",
    "yes",
    "2026-01-01",
    "x\"y",
];

const MORE: [&str; 24] = [
    "NULL",
    "Off",
    "N",
    "0x1F",
    ".5",
    "-1",
    "+1",
    ".inf",
    "a: b",
    "#c",
    "[x]",
    "{y}",
    "&a",
    "!t",
    "|",
    ">",
    "@x",
    "%x",
    "'q'",
    "back\\slash",
    "tab\there",
    "é",
    "tool",
    "plain_name-1.2",
];

fn definition(name: &str) -> String {
    serde_json::json!({
        "name": name,
        "description": "Line one\nline two\u{2028}# evil: true\r\n\u{202e}txt\u{0} end",
        "inputSchema": {"type": "object", "properties": {"q": {"type": "string"}}, "required": ["q"]}
    })
    .to_string()
}

fn options(format: scaffold::Format, stem: &str) -> scaffold::Options {
    scaffold::Options {
        format,
        server: scaffold::ServerInfo {
            name: "weird \"server\"\n# x: y".into(),
            version: "1\n2".into(),
            title: Some("Title\r\n: z".into()),
        },
        stem: stem.into(),
        file_name: None,
        schemas_file: None,
        via: "`x` (stdio)\n# y".into(),
        date: "2026-01-01".into(),
        surfaces: scaffold::Surfaces {
            resources: vec!["file:///a\n# evil: true".into()],
            templates: vec!["file:///{x}\n}\n// evil".into()],
            prompts: vec![("p\"\n# z".into(), vec!["a\n# b".into()])],
        },
    }
}

fn compile_text(path: &str, text: &str) -> portcullis_compiler::Output {
    compile(&[Input {
        server: path.split('.').next().unwrap().into(),
        path: path.into(),
        text: text.into(),
    }])
}

#[test]
fn the_yaml_writer_quotes_every_name_that_needs_it() {
    let names: Vec<&str> = HOSTILE.iter().chain(&MORE).copied().collect();
    let tools: Vec<scaffold::ToolInfo> = names
        .iter()
        .map(|n| scaffold::tool_info(definition(n).as_bytes()).unwrap())
        .collect();
    let text = scaffold::write(&options(scaffold::Format::Yaml, "weird"), &tools);

    // Read back by the policy YAML parser: exactly these names, nothing else.
    let back: BTreeSet<String> = yaml_tool_names(&text).into_iter().collect();
    let want: BTreeSet<String> = names.iter().map(|s| s.to_string()).collect();
    assert_eq!(back, want, "{text}");
    for n in HOSTILE {
        assert!(
            text.contains(&format!("\n  {}:\n", scaffold::yaml_quote(n))),
            "{n}: {text}"
        );
    }
    assert!(text.contains("\n  plain_name-1.2:\n"), "{text}");
    assert!(text.contains("\n  tool:\n"), "{text}");
    assert!(
        text.contains("\ndescription: \"Policy for weird \\\"server\\\"\\n# x: y\"\n"),
        "{text}"
    );
    // Descriptions stay inside their comments.
    assert!(
        text.contains("  # Line one line two # evil: true txt end\n"),
        "{text}"
    );
    assert!(!text.contains('\r') && !text.contains('\u{2028}') && !text.contains('\u{202e}'));
    for line in text.lines() {
        let t = line.trim_start();
        assert!(
            t.is_empty()
                || t.starts_with('#')
                || t.starts_with("rules: []")
                || t.starts_with("version:")
                || t.starts_with("description:")
                || t.starts_with("default:")
                || t.starts_with("tools:")
                || line.starts_with("  ") && line.ends_with(':'),
            "unexpected line {line:?}"
        );
    }
    // It compiles: every name is a tool, except `*`, the wildcard.
    let out = compile_text("weird.yaml", &text);
    assert!(out.is_ok(), "{}\n{text}", out.render());
    let policy = &out.policies[0];
    let compiled: BTreeSet<String> = policy
        .tools
        .iter()
        .flat_map(|t| &t.patterns)
        .map(|p| p.text().to_string())
        .collect();
    let mut without_star = want.clone();
    without_star.remove("*");
    assert_eq!(compiled, without_star);
    // No example `"*"` entry to uncomment when a tool is literally called `*`.
    assert!(!text.contains("# \"*\":"), "{text}");
}

#[test]
fn the_policy_language_writer_quotes_names_too() {
    // `*` is a glob in the policy language, so names with it are left out here.
    let names: Vec<&str> = HOSTILE
        .iter()
        .chain(&MORE)
        .copied()
        .filter(|n| !n.contains('*'))
        .collect();
    let tools: Vec<scaffold::ToolInfo> = names
        .iter()
        .map(|n| scaffold::tool_info(definition(n).as_bytes()).unwrap())
        .collect();
    let text = scaffold::write(&options(scaffold::Format::Dsl, "weird"), &tools);
    let out = compile_text("weird.policy", &text);
    assert!(out.is_ok(), "{}\n{text}", out.render());
    let compiled: BTreeSet<String> = out.policies[0]
        .tools
        .iter()
        .flat_map(|t| &t.patterns)
        .map(|p| match p {
            NamePattern::Exact(n) => n.clone(),
            other => panic!("{other:?}"),
        })
        .collect();
    assert_eq!(compiled, names.iter().map(|s| s.to_string()).collect());
    assert!(
        text.contains("  tool \"tool\" {}\n"),
        "keywords are quoted: {text}"
    );
    assert!(text.contains("  tool plain_name-1.2 {}\n"), "{text}");
    assert!(
        text.contains("  // Line one line two # evil: true txt end\n"),
        "{text}"
    );
}

#[test]
fn groups_follow_annotations_then_names() {
    let tool = |name: &str, annotations: serde_json::Value| {
        let def = serde_json::json!({"name": name, "inputSchema": {"type": "object"}, "annotations": annotations});
        scaffold::tool_info(def.to_string().as_bytes()).unwrap()
    };
    use scaffold::Risk::*;
    let none = serde_json::json!({});
    assert_eq!(tool("get_user", none.clone()).risk, Read);
    assert_eq!(tool("listRepos", none.clone()).risk, Read);
    assert_eq!(tool("search-issues", none.clone()).risk, Read);
    assert_eq!(tool("create_issue", none.clone()).risk, Write);
    assert_eq!(tool("frobnicate", none.clone()).risk, Write);
    assert_eq!(tool("delete_repository", none.clone()).risk, Destructive);
    assert_eq!(tool("deleteUser", none.clone()).risk, Destructive);
    assert_eq!(tool("token.revoke", none.clone()).risk, Destructive);
    assert_eq!(tool("get_and_purge", none.clone()).risk, Destructive);
    // Annotations first.
    assert_eq!(
        tool("delete_x", serde_json::json!({"readOnlyHint": true})).risk,
        Read
    );
    assert_eq!(
        tool("get_x", serde_json::json!({"destructiveHint": true})).risk,
        Destructive
    );
    assert_eq!(
        tool(
            "delete_x",
            serde_json::json!({"readOnlyHint": false, "destructiveHint": false})
        )
        .risk,
        Write
    );
    assert!(!tool("get_x", none).annotated);
}

/// A scripted stdio server: weird names over three pages, with a
/// notification, a ping request and a non-JSON line in between.
const FAKE_SERVER: &str = r#"
const readline = require('readline');
const names = JSON.parse(process.argv[2]);
const out = (m) => process.stdout.write(JSON.stringify(m) + '\n');
readline.createInterface({ input: process.stdin }).on('line', (line) => {
  const m = JSON.parse(line);
  if (m.id === undefined || m.method === undefined) return;
  if (m.method === 'initialize') {
    out({ jsonrpc: '2.0', id: m.id, result: { protocolVersion: '2025-06-18', capabilities: { tools: {} },
          serverInfo: { name: 'fake "srv"\n# x', version: '0.1' } } });
  } else if (m.method === 'tools/list') {
    process.stdout.write('not json at all\n');
    out({ jsonrpc: '2.0', method: 'notifications/message', params: { level: 'info', data: 'hi' } });
    out({ jsonrpc: '2.0', id: 'srv-1', method: 'ping' });
    const start = m.params && m.params.cursor ? parseInt(m.params.cursor, 10) : 0;
    const tools = names.slice(start, start + 4).map((n) => ({ name: n,
      description: 'About ' + n + '\nsecond line',
      inputSchema: { type: 'object', properties: { q: { type: 'string' } } },
      annotations: n === 'nuke' ? { destructiveHint: true } : undefined }));
    const result = { tools };
    if (start + 4 < names.length) result.nextCursor = String(start + 4);
    out({ jsonrpc: '2.0', id: m.id, result });
  } else {
    out({ jsonrpc: '2.0', id: m.id, error: { code: -32601, message: 'no' } });
  }
});
"#;

#[test]
fn scans_a_server_with_hostile_names_over_several_pages() {
    let dir = temp_dir("scan-fake");
    let script = dir.join("fake.cjs");
    std::fs::write(&script, FAKE_SERVER).unwrap();
    let names: Vec<&str> = HOSTILE
        .iter()
        .chain(["nuke", "get_it"].iter())
        .copied()
        .collect();
    let names_json = serde_json::to_string(&names).unwrap();
    let file = dir.join("fake.yaml");
    let (code, out, err) = run(&[
        "scan",
        "--timeout",
        "20",
        "-o",
        file.to_str().unwrap(),
        "--",
        "node",
        script.to_str().unwrap(),
        &names_json,
    ]);
    assert_eq!(code, 0, "{out}{err}");
    assert!(
        err.contains("12 tools (1 read, 10 write, 1 destructive)"),
        "{err}"
    );
    let text = std::fs::read_to_string(&file).unwrap();
    let back: BTreeSet<String> = yaml_tool_names(&text).into_iter().collect();
    assert_eq!(
        back,
        names.iter().map(|s| s.to_string()).collect(),
        "{text}"
    );
    assert!(
        text.contains("# ==== Destructive (1): tools that delete"),
        "{text}"
    );
    assert!(text.contains("  # About get_it second line\n"), "{text}");
    let (code, out, err) = run(&["validate", file.to_str().unwrap()]);
    assert_eq!(code, 0, "{out}{err}");
    assert_eq!(schema_file_names(&dir.join("fake.tools.json")).len(), 12);
    let _ = std::fs::remove_dir_all(&dir);
}

#[test]
fn scan_fails_clearly() {
    // A server that never answers: a timeout, not a hang.
    let started = std::time::Instant::now();
    let (code, _, err) = run(&["scan", "--timeout", "1", "--", "sleep", "30"]);
    assert_eq!(code, 1);
    assert!(
        err.contains("error: `sleep` did not answer initialize within 1 s"),
        "{err}"
    );
    assert!(started.elapsed() < Duration::from_secs(15));
    // A server that exits.
    let (code, _, err) = run(&["scan", "--", "false"]);
    assert_eq!(code, 1);
    assert!(
        err.contains("error: `false` exited before answering initialize (exit status: 1)"),
        "{err}"
    );
    // A command that does not exist.
    let (code, _, err) = run(&["scan", "--", "/nonexistent/server"]);
    assert_eq!(code, 1);
    assert!(
        err.starts_with("error: cannot start `/nonexistent/server`"),
        "{err}"
    );
    // Nothing listens.
    let (code, _, err) = run(&[
        "scan",
        "--timeout",
        "5",
        "--upstream",
        &format!("http://127.0.0.1:{}/mcp", free_port()),
    ]);
    assert_eq!(code, 1);
    assert!(
        err.starts_with("error: initialize to http://127.0.0.1:"),
        "{err}"
    );
    // Files named unlike policies.
    let (code, _, err) = run(&["scan", "-o", "/tmp/x.json", "--", "true"]);
    assert_eq!(code, 1);
    assert!(err.contains("is named NAME.yaml"), "{err}");
    let (code, _, err) = run(&["scan", "--format", "dsl", "-o", "/tmp/x.yaml", "--", "true"]);
    assert_eq!(code, 1);
    assert!(err.contains("is named NAME.policy"), "{err}");
    let (code, _, err) = run(&["scan", "--header", "A: b", "--", "true"]);
    assert_eq!(code, 1, "{err}");
}

#[test]
fn validate_warns_about_paths_that_are_not_parameters() {
    let dir = temp_dir("scan-schema");
    let file = dir.join("everything.yaml");
    scan_everything(&file, &[]);
    std::fs::write(
        &file,
        r#"version: "1"
tools:
  echo:
    rules:
      - name: "no nope"
        conditions:
          - path: args.nope
            op: neq
            value: "x"
      - name: "short messages"
        conditions:
          - path: args.message
            op: regex
            value: "^.{0,100}$"
"#,
    )
    .unwrap();
    let path = file.to_str().unwrap();
    let (code, out, err) = run(&["validate", path]);
    assert_eq!(code, 0, "a warning does not fail validate: {out}{err}");
    assert!(
        err.contains(
            "warning: `args.nope` is not a parameter of tool `echo` (per everything.tools.json)"
        ),
        "{err}"
    );
    assert!(
        err.contains(&format!(" --> {path}:7:19\n")),
        "the path's span: {err}"
    );
    assert!(
        err.contains("= help: the parameters of `echo` are `message`"),
        "{err}"
    );
    assert!(!err.contains("args.message"), "{err}");
    assert_eq!(err.matches("warning:").count(), 1, "{err}");
    let (code, _, _) = run(&["validate", "--deny-warnings", path]);
    assert_eq!(code, 1);

    // The same in the policy language, and a nested path.
    let dsl = dir.join("everything.policy");
    std::fs::write(
        &dsl,
        "server everything {\n  tool echo {\n    deny \"no\" when args.message == \"x\" or args.message.deep == 1\n  }\n  tool get-sum {\n    deny \"big\" when args.a > 10 or args.c > 1\n  }\n}\n",
    )
    .unwrap();
    let (code, out, err) = run(&["validate", dsl.to_str().unwrap()]);
    assert_eq!(code, 0, "{out}{err}");
    assert!(
        err.contains("`args.message.deep` is not a parameter of tool `echo`"),
        "{err}"
    );
    assert!(
        err.contains("`args.message` is a string: it has no members"),
        "{err}"
    );
    assert!(
        err.contains("`args.c` is not a parameter of tool `get-sum`"),
        "{err}"
    );
    assert_eq!(err.matches("warning:").count(), 2, "{err}");

    // A tool or hide entry the server does not list: a typo, with the likely name.
    std::fs::write(
        &file,
        "version: \"1\"\nhide:\n  - get-envv\ntools:\n  get-summ:\n    rules:\n      - name: limit\n        rate_limit: 5/minute\n",
    )
    .unwrap();
    let (code, out, err) = run(&["validate", path]);
    assert_eq!(code, 0, "{out}{err}");
    assert!(
        err.contains(
            "warning: no tool of the server matches `get-summ` (per everything.tools.json)"
        ),
        "{err}"
    );
    assert!(err.contains(&format!(" --> {path}:5:3\n")), "{err}");
    assert!(err.contains("= help: did you mean `get-sum`?"), "{err}");
    assert!(
        err.contains("warning: no tool of the server matches `get-envv`"),
        "{err}"
    );
    assert!(err.contains("did you mean `get-env`?"), "{err}");

    // An unreadable schema file is a warning too, not an error.
    std::fs::write(dir.join("everything.tools.json"), "{not json").unwrap();
    let (code, _, err) = run(&["validate", path]);
    assert_eq!(code, 0, "{err}");
    assert!(err.contains("cannot read the tool schemas"), "{err}");
    let _ = std::fs::remove_dir_all(&dir);
}

/// An HTTP server that answers `initialize` with headers and half a body,
/// then stalls: scan reports the timeout (ureq's own, which reaches the body
/// reader as an `io::Error` of kind `Other`), not an unexplained read error.
#[test]
fn scan_reports_a_body_that_stalls_as_a_timeout() {
    use std::io::Read;
    let listener = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
    let port = listener.local_addr().unwrap().port();
    std::thread::spawn(move || {
        let Ok((mut conn, _)) = listener.accept() else {
            return;
        };
        let mut request = [0u8; 4096];
        let _ = conn.read(&mut request);
        let _ = conn.write_all(
            b"HTTP/1.1 200 OK\r\nContent-Type: application/json\r\nContent-Length: 200\r\n\r\n{\"jsonrpc\":\"2.0\",",
        );
        let _ = conn.flush();
        std::thread::sleep(Duration::from_secs(20));
    });
    let started = std::time::Instant::now();
    let (code, _, err) = run(&[
        "scan",
        "--timeout",
        "1",
        "--upstream",
        &format!("http://127.0.0.1:{port}/mcp"),
    ]);
    assert_eq!(code, 1, "{err}");
    assert!(
        err.contains(&format!(
            "error: http://127.0.0.1:{port}/mcp did not answer initialize within 1 s"
        )),
        "{err}"
    );
    assert!(started.elapsed() < Duration::from_secs(15));
}

/// Uncomments the scaffold's result rules: every comment line from the
/// `Answers:` heading on (DSL: up to the server block's end).
fn uncomment_results(text: &str, marker: &str) -> String {
    let mut inside = false;
    text.lines()
        .map(|l| {
            let t = l.trim_start();
            if t.starts_with(&format!("{marker} Answers:")) {
                inside = true;
                return format!("{l}\n");
            }
            match t.strip_prefix(&format!("{marker} ")) {
                Some(rest) if inside => {
                    let indent = &l[..l.len() - t.len()];
                    format!("{indent}{rest}\n")
                }
                _ => format!("{l}\n"),
            }
        })
        .collect()
}

/// The commented `results` scaffold (docs/results.md): a catch-all rule,
/// `deny secrets` for the read tools and one for the resources by scheme
/// and authority; uncommented, it compiles in both formats, hostile names
/// and URIs included.
#[test]
fn the_results_scaffold_compiles_when_uncommented() {
    use portcullis_compiler::results::Target;
    let names = ["get \"x\"\n# evil: true", "list a b", "read_file", "get_*"];
    let tools: Vec<scaffold::ToolInfo> = names
        .iter()
        .map(|n| scaffold::tool_info(definition(n).as_bytes()).unwrap())
        .collect();
    for (format, path, marker) in [
        (scaffold::Format::Yaml, "weird.yaml", "#"),
        (scaffold::Format::Dsl, "weird.policy", "//"),
    ] {
        let mut opts = options(format, "weird");
        opts.surfaces
            .resources
            .push("DEMO://Resource.Host/static/x.md".into());
        let text = scaffold::write(&opts, &tools);
        assert!(
            text.contains(&format!("{marker} Answers: result rules")),
            "{text}"
        );
        // Commented, the scaffold has no result rules.
        let out = compile_text(path, &text);
        assert!(out.is_ok(), "{}\n{text}", out.render());
        assert!(out.policies[0].results.is_empty());
        let uncommented = uncomment_results(&text, marker);
        let out = compile_text(path, &uncommented);
        assert!(out.is_ok(), "{}\n{uncommented}", out.render());
        let targets: Vec<Target> = out.policies[0]
            .results
            .iter()
            .map(|r| r.target.clone())
            .collect();
        // `get_*` is a glob in the policy language: left out there.
        let mut want = vec![Target::All];
        for n in ["get \"x\"\n# evil: true", "list a b", "read_file", "get_*"] {
            if format == scaffold::Format::Yaml || !n.contains('*') {
                want.push(Target::Tool(n.into()));
            }
        }
        want.push(Target::Resource(NamePattern::UriGlob("file:///**".into())));
        want.push(Target::Resource(NamePattern::UriGlob(
            "demo://resource.host/**".into(),
        )));
        want.push(Target::Unnormalised);
        let sorted = |mut v: Vec<Target>| {
            v.sort_by_key(|t| format!("{t:?}"));
            v
        };
        assert_eq!(sorted(targets), sorted(want), "{uncommented}");
    }
}
