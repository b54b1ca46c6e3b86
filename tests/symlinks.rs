//! Symlinks (docs/surfaces.md, "Symlinks"): when the proxy starts the server
//! itself, a `file://` read is decided on the URI as sent and on the path
//! it resolves to. The real `@modelcontextprotocol/server-filesystem`, whose
//! allowed root holds both the link and its target (so the server itself
//! would follow the link), behind the real binary over stdio and Streamable
//! HTTP; `--no-resolve-symlinks` and `--upstream` leave links alone.

mod common;

use std::path::PathBuf;

use common::{Proxy, everything_http, http_endpoint, http_post, message_of, root};
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

/// A tool call held for approval because of where a path argument
/// resolves: the operator reads what resolved to what (the record's
/// message), not only the path as sent in the arguments.
#[test]
fn an_approval_asked_for_a_link_target_shows_the_target() {
    let (dir, r, _) = tree("symlinks-approval-note");
    let dir = dir.join("approval");
    std::fs::create_dir_all(&dir).unwrap();
    let policy = dir.join("filesystem.policy");
    std::fs::write(
        &policy,
        format!(
            "server filesystem {{\n  tool read_text_file {{\n    approve \"Secret reads need a person\" when path(args.path) matches \"{r}/secret/**\" via operator\n  }}\n}}\n"
        ),
    )
    .unwrap();
    let state = dir.join("state");
    let mut p = Proxy::command(
        "symlinks-approval-note-proxy",
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
    let args = json!({"path": format!("{r}/public/keylink")}).to_string();
    let v: Value = serde_json::from_str(&p.call(1, "read_text_file", &args)).unwrap();
    assert!(
        text_of(&v).starts_with("[APPROVAL REQUIRED] Secret reads need a person"),
        "{v}"
    );
    let out = std::process::Command::new(common::portcullis())
        .args(["approvals", "list", "--json", "--state-dir"])
        .arg(&state)
        .output()
        .unwrap();
    let listed = String::from_utf8_lossy(&out.stdout);
    assert!(out.status.success(), "{listed}");
    assert!(
        listed.contains(&format!(
            "Secret reads need a person (args.path \\\"{r}/public/keylink\\\" resolves to \\\"{r}/secret/key.txt\\\")"
        )),
        "{listed}"
    );
    p.finish();
}

fn http_read(url: &str, sid: &str, id: u64, uri: &str) -> Value {
    let body = json!({"jsonrpc":"2.0","id":id,"method":"resources/read","params":{"uri":uri}});
    message_of(&http_post(url, Some(sid), &body.to_string()).1)
}

fn http_session(url: &str) -> String {
    let init = r#"{"jsonrpc":"2.0","id":0,"method":"initialize","params":{"protocolVersion":"2025-06-18","capabilities":{},"clientInfo":{"name":"t","version":"1"}}}"#;
    let (head, _) = http_post(url, None, init);
    let sid = head
        .lines()
        .find_map(|l| {
            l.to_ascii_lowercase()
                .strip_prefix("mcp-session-id: ")
                .map(str::to_string)
        })
        .expect("a session id");
    http_post(
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
    let (_proxy, url) = http_endpoint(&["-c", &policy, "--", "node", fs.to_str().unwrap(), &r]);
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
    let (_server, upstream) = everything_http();
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

// --- Tool arguments: path() conditions decided on what the path resolves to.

/// The same rule twice: in the policy language and in Intercept YAML (an
/// Intercept condition says what must hold for the call to pass, so the
/// secret directory is refused with `path_not_glob`).
fn tool_policies(dir: &std::path::Path, r: &str) -> Vec<(&'static str, String)> {
    // Each in a directory of its own: a policy file is named for its server.
    std::fs::create_dir_all(dir.join("dsl")).unwrap();
    std::fs::create_dir_all(dir.join("intercept")).unwrap();
    let dsl = dir.join("dsl/filesystem.policy");
    std::fs::write(
        &dsl,
        format!(
            "server filesystem {{\n  tool read_text_file, write_file, create_directory {{\n    deny \"Secret files are off limits\" when path(args.path) matches \"{r}/secret/**\"\n  }}\n}}\n"
        ),
    )
    .unwrap();
    let yaml = dir.join("intercept/filesystem.yaml");
    let rule = format!(
        "    rules:\n      - name: \"no secrets\"\n        conditions:\n          - path: args.path\n            op: path_not_glob\n            value: \"{r}/secret/**\"\n        on_deny: \"Secret files are off limits\"\n"
    );
    std::fs::write(
        &yaml,
        format!(
            "version: \"1\"\ndescription: \"symlinks in tool arguments\"\ndefault: allow\ntools:\n  read_text_file:\n{rule}  write_file:\n{rule}  create_directory:\n{rule}"
        ),
    )
    .unwrap();
    vec![
        ("dsl", dsl.display().to_string()),
        ("intercept", yaml.display().to_string()),
    ]
}

fn text_of(v: &Value) -> &str {
    v["result"]["content"][0]["text"]
        .as_str()
        .unwrap_or_default()
}

/// Over stdio, in both languages: a read through a linked directory, a
/// write and a new directory through it (targets that do not exist yet)
/// are refused naming the resolved path, and never reach the server; a
/// link loop fails closed; a plain read works; the decision log records
/// the resolved path.
#[test]
fn tool_arguments_through_symlinks_are_decided_on_their_targets() {
    let (dir, r, _) = tree("symlinks-tools");
    for (lang, policy) in tool_policies(&dir, &r) {
        let tap = dir.join(format!("{lang}-server-received.jsonl"));
        let audit = dir.join(format!("{lang}-audit.jsonl"));
        let mut p = Proxy::command(
            &format!("symlinks-tools-{lang}"),
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
                &r,
            ],
        );
        p.initialize();
        let call = |p: &mut Proxy, id: u64, tool: &str, args: Value| -> Value {
            serde_json::from_str(&p.call(id, tool, &args.to_string())).unwrap()
        };
        // Refused on the resolved path, with the rule and what resolved to what.
        for (id, tool, args, resolved) in [
            (
                1,
                "read_text_file",
                json!({"path": format!("{r}/public/link/key.txt")}),
                format!("{r}/secret/key.txt"),
            ),
            (
                2,
                "read_text_file",
                json!({"path": format!("{r}/public/keylink")}),
                format!("{r}/secret/key.txt"),
            ),
            (
                3,
                "write_file",
                json!({"path": format!("{r}/public/link/new.txt"), "content": "leak"}),
                format!("{r}/secret/new.txt"),
            ),
            (
                4,
                "create_directory",
                json!({"path": format!("{r}/public/link/newdir/sub")}),
                format!("{r}/secret/newdir/sub"),
            ),
            // The key as the client spelled it (keys match case-insensitively).
            (
                5,
                "read_text_file",
                json!({"PATH": format!("{r}/public//link/./key.txt")}),
                format!("{r}/secret/key.txt"),
            ),
        ] {
            let v = call(&mut p, id, tool, args.clone());
            assert_eq!(v["result"]["isError"], true, "{lang} {args}: {v}");
            let text = text_of(&v);
            assert!(
                text.starts_with("[POLICY DENIED] Secret files are off limits ("),
                "{lang} {args}: {v}"
            );
            assert!(
                text.contains(&format!("resolves to \"{resolved}\"")),
                "{lang} {args}: {v}"
            );
            let d = &v["result"]["_meta"]["dev.portcullis/decision"];
            assert_eq!(d["tool"], tool, "{v}");
            assert!(d["rule"].is_string(), "{v}");
        }
        assert!(!std::path::Path::new(&format!("{r}/secret/new.txt")).exists());
        assert!(!std::path::Path::new(&format!("{r}/secret/newdir")).exists());
        // A loop cannot be resolved: a JSON-RPC refusal, never forwarded.
        let v = call(
            &mut p,
            6,
            "read_text_file",
            json!({"path": format!("{r}/public/loop")}),
        );
        assert_eq!(v["error"]["code"], -32003, "{lang}: {v}");
        assert!(
            message(&v).contains("cannot be resolved on the filesystem"),
            "{lang}: {v}"
        );
        // What resolves to itself is read as usual, and so is a new file
        // on the public side.
        let v = call(
            &mut p,
            7,
            "read_text_file",
            json!({"path": format!("{r}/public/readme.txt")}),
        );
        assert_eq!(text_of(&v), "hello", "{lang}: {v}");
        let v = call(
            &mut p,
            8,
            "write_file",
            json!({"path": format!("{r}/public/{lang}-new.txt"), "content": "ok"}),
        );
        assert!(v["result"]["isError"] != true, "{lang}: {v}");
        assert_eq!(
            std::fs::read_to_string(format!("{r}/public/{lang}-new.txt")).unwrap(),
            "ok"
        );
        let (code, _) = p.finish();
        assert_eq!(code, 0);
        let received = std::fs::read_to_string(&tap).unwrap_or_default();
        let calls: Vec<&str> = received
            .lines()
            .filter(|l| l.contains("\"tools/call\""))
            .collect();
        assert_eq!(
            calls.len(),
            2,
            "{lang}: only the two allowed calls: {calls:?}"
        );
        assert!(
            !received.contains("/public/link")
                && !received.contains("/public//link")
                && !received.contains("keylink")
                && !received.contains("/public/loop"),
            "{lang}: {received}"
        );
        // The decision log names the resolved path.
        let log = std::fs::read_to_string(&audit).unwrap();
        assert!(
            log.lines().any(|l| {
                let v: Value = serde_json::from_str(l).unwrap();
                v["tool"] == "write_file"
                    && v.to_string()
                        .contains(&format!("resolves to \\\"{r}/secret/new.txt\\\""))
            }),
            "{lang}: {log}"
        );
    }
}

/// `--no-resolve-symlinks`: tool arguments are decided lexically only, so
/// the read through the link reaches the server (the documented opt-out).
#[test]
fn the_opt_out_leaves_tool_argument_links_to_the_server() {
    let (dir, r, _) = tree("symlinks-tools-off");
    let (_, policy) = tool_policies(&dir, &r).remove(0);
    let mut p = Proxy::command(
        "symlinks-tools-off-proxy",
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
    let args = json!({"path": format!("{r}/public/link/key.txt")}).to_string();
    let v: Value = serde_json::from_str(&p.call(1, "read_text_file", &args)).unwrap();
    assert_eq!(text_of(&v), "TOPSECRET", "forwarded: {v}");
    // The path as sent is still decided.
    let args = json!({"path": format!("{r}/secret/key.txt")}).to_string();
    let v: Value = serde_json::from_str(&p.call(2, "read_text_file", &args)).unwrap();
    assert_eq!(v["result"]["isError"], true, "{v}");
    p.finish();
}

/// Over Streamable HTTP with per-session children: the same decisions.
#[test]
fn per_session_children_over_http_resolve_tool_arguments_too() {
    let (dir, r, _) = tree("symlinks-tools-http");
    let fs = server_filesystem();
    for (lang, policy) in tool_policies(&dir, &r) {
        let (_proxy, url) = http_endpoint(&["-c", &policy, "--", "node", fs.to_str().unwrap(), &r]);
        let sid = http_session(&url);
        let call = |id: u64, tool: &str, args: Value| -> Value {
            let body = json!({"jsonrpc":"2.0","id":id,"method":"tools/call","params":{"name":tool,"arguments":args}});
            message_of(&http_post(&url, Some(&sid), &body.to_string()).1)
        };
        let v = call(
            1,
            "read_text_file",
            json!({"path": format!("{r}/public/link/key.txt")}),
        );
        assert_eq!(v["result"]["isError"], true, "{lang}: {v}");
        assert!(text_of(&v).contains("resolves to"), "{lang}: {v}");
        let v = call(
            2,
            "write_file",
            json!({"path": format!("{r}/public/link/http.txt"), "content": "leak"}),
        );
        assert_eq!(v["result"]["isError"], true, "{lang}: {v}");
        assert!(!std::path::Path::new(&format!("{r}/secret/http.txt")).exists());
        let v = call(
            3,
            "read_text_file",
            json!({"path": format!("{r}/public/readme.txt")}),
        );
        assert_eq!(text_of(&v), "hello", "{lang}: {v}");
    }
}

/// Limits count a call once, as sent: the second decision on the resolved
/// arguments reserves nothing that stays (its reservation is rolled back).
/// Two reads through a link to an allowed file are allowed under
/// `limit 2 per minute`, the third is refused by the limit.
#[test]
fn a_resolved_call_counts_once_against_limits() {
    let (dir, r, _) = tree("symlinks-tools-limit");
    std::os::unix::fs::symlink("readme.txt", format!("{r}/public/alias")).unwrap();
    let dir = dir.join("limit");
    std::fs::create_dir_all(&dir).unwrap();
    let policy = dir.join("filesystem.policy");
    std::fs::write(
        &policy,
        format!(
            "server filesystem {{\n  tool read_text_file {{\n    deny \"Secret files are off limits\" when path(args.path) matches \"{r}/secret/**\"\n    limit 2 per minute -> \"Two reads a minute\"\n  }}\n}}\n"
        ),
    )
    .unwrap();
    let mut p = Proxy::command(
        "symlinks-tools-limit-proxy",
        &[
            "-c",
            policy.to_str().unwrap(),
            "--",
            "node",
            server_filesystem().to_str().unwrap(),
            &r,
        ],
    );
    p.initialize();
    let args = json!({"path": format!("{r}/public/alias")}).to_string();
    for id in 1..=2 {
        let v: Value = serde_json::from_str(&p.call(id, "read_text_file", &args)).unwrap();
        assert_eq!(text_of(&v), "hello", "call {id}: {v}");
    }
    let v: Value = serde_json::from_str(&p.call(3, "read_text_file", &args)).unwrap();
    assert_eq!(text_of(&v), "[POLICY DENIED] Two reads a minute", "{v}");
    p.finish();
}

/// A limit counted per path (`by args.path`) counts the call against the
/// path it resolves to as well: three links to one file share the target's
/// counter, so with `limit 2 per minute by args.path` the third read
/// through a new link is refused, and so is a read of the target itself
/// (each link's own counter had room). Before, the target's reservation
/// was given back and every new link was a fresh counter.
#[test]
fn a_limit_per_path_counts_the_target_through_every_link() {
    let (dir, r, _) = tree("symlinks-tools-limit-target");
    for alias in ["a1", "a2", "a3"] {
        std::os::unix::fs::symlink("readme.txt", format!("{r}/public/{alias}")).unwrap();
    }
    let dir = dir.join("limit");
    std::fs::create_dir_all(&dir).unwrap();
    let policy = dir.join("filesystem.policy");
    std::fs::write(
        &policy,
        format!(
            "server filesystem {{\n  tool read_text_file {{\n    deny \"Secret files are off limits\" when path(args.path) matches \"{r}/secret/**\"\n    limit 2 per minute by args.path -> \"Two reads of a file a minute\"\n  }}\n}}\n"
        ),
    )
    .unwrap();
    let mut p = Proxy::command(
        "symlinks-tools-limit-target-proxy",
        &[
            "-c",
            policy.to_str().unwrap(),
            "--",
            "node",
            server_filesystem().to_str().unwrap(),
            &r,
        ],
    );
    p.initialize();
    for (id, alias) in [(1, "a1"), (2, "a2")] {
        let args = json!({"path": format!("{r}/public/{alias}")}).to_string();
        let v: Value = serde_json::from_str(&p.call(id, "read_text_file", &args)).unwrap();
        assert_eq!(text_of(&v), "hello", "call {id}: {v}");
    }
    for (id, path) in [(3, "public/a3"), (4, "public/readme.txt")] {
        let args = json!({"path": format!("{r}/{path}")}).to_string();
        let v: Value = serde_json::from_str(&p.call(id, "read_text_file", &args)).unwrap();
        assert!(
            text_of(&v).starts_with("[POLICY DENIED] Two reads of a file a minute"),
            "call {id}: {v}"
        );
    }
    p.finish();
}

/// A limit only the target's resource block carries counts reads through a
/// link: with `limit 2 per minute` on `secret/**` alone, two reads through
/// `public/keylink` are answered, the third is refused with the target's
/// message, and a direct read of the target finds its counter full.
#[test]
fn a_limit_only_the_target_carries_counts_reads_through_a_link() {
    let (dir, r, _) = tree("symlinks-resources-limit-target");
    let dir = dir.join("limit");
    std::fs::create_dir_all(&dir).unwrap();
    let policy = dir.join("files.policy");
    std::fs::write(
        &policy,
        format!(
            "server files {{\n  resource \"file://{r}/secret/**\" {{\n    limit 2 per minute -> \"Two secret reads a minute\"\n  }}\n}}\n"
        ),
    )
    .unwrap();
    // In memory, and in SQLite (a store that may block: decided off the
    // event loop); Redis runs the same view in the store conformance suite.
    let state = dir.join("state");
    let server = file_resources_server();
    for store in [None, Some(state.to_str().unwrap())] {
        let mut args = vec!["-c", policy.to_str().unwrap()];
        if let Some(s) = store {
            args.extend(["--state-dir", s]);
        }
        args.extend(["--", "node", &server, &r]);
        let mut p = Proxy::command("symlinks-resources-limit-target-proxy", &args);
        p.initialize();
        for id in 1..=2 {
            let v = read(&mut p, id, &format!("file://{r}/public/keylink"));
            assert_eq!(
                v["result"]["contents"][0]["text"], "TOPSECRET",
                "{store:?} read {id}: {v}"
            );
        }
        for (id, uri) in [
            (3, format!("file://{r}/public/keylink")),
            (4, format!("file://{r}/secret/key.txt")),
        ] {
            let v = read(&mut p, id, &uri);
            assert_eq!(v["error"]["code"], -32003, "{store:?} {uri}: {v}");
            assert!(
                message(&v).contains("Two secret reads a minute"),
                "{store:?} {uri}: {v}"
            );
        }
        p.finish();
    }
}

// --- Result rules and lists by symlink target (a server with file resources).

/// A read through a link whose target falls under the same limited block
/// as the URI as sent counts once: with `limit 2 per minute`, the second
/// read through the link is answered (before, the second decision saw the
/// first one's own reservation and refused it), the third is refused.
#[test]
fn a_resolved_read_counts_once_against_limits() {
    let (dir, r, _) = tree("symlinks-resources-limit");
    let dir = dir.join("limit");
    std::fs::create_dir_all(&dir).unwrap();
    let policy = dir.join("files.policy");
    std::fs::write(
        &policy,
        format!(
            "server files {{\n  resource \"file://{r}/**\" {{\n    limit 2 per minute -> \"Two reads a minute\"\n  }}\n}}\n"
        ),
    )
    .unwrap();
    let mut p = Proxy::command(
        "symlinks-resources-limit-proxy",
        &[
            "-c",
            policy.to_str().unwrap(),
            "--",
            "node",
            &file_resources_server(),
            &r,
        ],
    );
    p.initialize();
    for id in 1..=2 {
        let v = read(&mut p, id, &format!("file://{r}/public/keylink"));
        assert_eq!(
            v["result"]["contents"][0]["text"], "TOPSECRET",
            "read {id}: {v}"
        );
    }
    let v = read(&mut p, 3, &format!("file://{r}/public/keylink"));
    assert_eq!(v["error"]["code"], -32003, "{v}");
    assert!(message(&v).contains("Two reads a minute"), "{v}");
    p.finish();
}

fn file_resources_server() -> String {
    root()
        .join("tests/e2e/file_resources_server.mjs")
        .display()
        .to_string()
}

/// A token (fake, GitHub's format) the built-in secret formats know.
const TOKEN: &str = "ghp_16C7e42F292c6912E7710c838347Ae178B4a";

/// Files whose targets have result rules: `secret/key.txt` (a redacted
/// word), `secret/token.txt` (a token: denied), `secret/both.txt` (words
/// both the link's and the target's rules redact), and public links to
/// each of them.
fn result_tree(name: &str) -> (PathBuf, String) {
    let (dir, r, _) = tree(name);
    std::fs::write(format!("{r}/secret/token.txt"), format!("token {TOKEN}")).unwrap();
    std::fs::write(format!("{r}/secret/both.txt"), "hello TOPSECRET").unwrap();
    std::os::unix::fs::symlink("../secret/token.txt", format!("{r}/public/tokenlink")).unwrap();
    std::os::unix::fs::symlink("../secret/both.txt", format!("{r}/public/bothlink")).unwrap();
    (dir, r)
}

/// The result rules of a read through a link are those of the URI as sent
/// and of its target together: the target's redaction and denial apply, and
/// with rules on both sides, the redactions of both. With resource request
/// rules (decided on both URIs) and with result rules alone.
#[test]
fn result_rules_of_a_link_target_apply_to_its_answer() {
    let (dir, r) = result_tree("symlinks-results");
    let results = format!(
        "  results for resource \"file://{r}/secret/*\" {{\n    redact /TOPSECRET/ as topsecret\n    deny secrets \"secret files may not carry tokens\"\n  }}\n  results for resource \"file://{r}/public/*\" {{\n    redact /hello/ as greeting\n  }}\n"
    );
    for (kind, extra) in [
        (
            "governed",
            format!("  resource \"file://{r}/nothing/**\" {{\n    deny \"nothing here\"\n  }}\n"),
        ),
        ("results-only", String::new()),
    ] {
        let d = dir.join(kind);
        std::fs::create_dir_all(&d).unwrap();
        let policy = d.join("files.policy");
        std::fs::write(&policy, format!("server files {{\n{extra}{results}}}\n")).unwrap();
        let mut p = Proxy::command(
            &format!("symlinks-results-{kind}"),
            &[
                "-c",
                policy.to_str().unwrap(),
                "--",
                "node",
                &file_resources_server(),
                &r,
            ],
        );
        p.initialize();
        let text = |v: &Value| {
            v["result"]["contents"][0]["text"]
                .as_str()
                .unwrap_or_default()
                .to_string()
        };
        // The target's redaction.
        let v = read(&mut p, 1, &format!("file://{r}/public/keylink"));
        assert_eq!(text(&v), "[REDACTED:topsecret]", "{kind}: {v}");
        // The target's denial.
        let v = read(&mut p, 2, &format!("file://{r}/public/tokenlink"));
        assert_eq!(v["error"]["code"], -32003, "{kind}: {v}");
        assert!(
            message(&v).starts_with("[POLICY DENIED] secret files may not carry tokens"),
            "{kind}: {v}"
        );
        assert!(!v.to_string().contains(TOKEN), "{kind}: {v}");
        // Both rules: both redactions, one note naming both patterns.
        let v = read(&mut p, 3, &format!("file://{r}/public/bothlink"));
        assert_eq!(
            text(&v),
            "[REDACTED:greeting] [REDACTED:topsecret]",
            "{kind}: {v}"
        );
        let notes = v["result"]["_meta"]["dev.portcullis/redactions"]
            .as_array()
            .unwrap_or_else(|| panic!("{kind}: a note: {v}"));
        let names: Vec<&str> = notes.iter().map(|n| n["rule"].as_str().unwrap()).collect();
        assert_eq!(names, ["greeting", "topsecret"], "{kind}: {v}");
        // A file without a link gets its own rule only.
        let v = read(&mut p, 4, &format!("file://{r}/public/readme.txt"));
        assert_eq!(text(&v), "[REDACTED:greeting]", "{kind}: {v}");
        p.finish();
    }
    // With --no-resolve-symlinks the URI as sent picks the rule: the
    // public side's (no token rule there: the opt-out's documented cost).
    let policy = dir.join("results-only/files.policy");
    let mut p = Proxy::command(
        "symlinks-results-off",
        &[
            "-c",
            policy.to_str().unwrap(),
            "--no-resolve-symlinks",
            "--",
            "node",
            &file_resources_server(),
            &r,
        ],
    );
    p.initialize();
    let v = read(&mut p, 1, &format!("file://{r}/public/keylink"));
    assert_eq!(v["result"]["contents"][0]["text"], "TOPSECRET", "{v}");
    p.finish();
}

/// `resources/list` by symlink target: a link whose target the policy
/// denies or hides, or that cannot be resolved, is dropped like a hidden
/// entry; `--no-resolve-symlinks` lists it.
#[test]
fn listed_links_are_filtered_by_their_targets() {
    let (dir, r, _) = tree("symlinks-list");
    std::fs::create_dir_all(format!("{r}/hidden")).unwrap();
    std::fs::write(format!("{r}/hidden/h.txt"), "h").unwrap();
    std::os::unix::fs::symlink("../hidden/h.txt", format!("{r}/public/hiddenlink")).unwrap();
    std::os::unix::fs::symlink("readme.txt", format!("{r}/public/alias")).unwrap();
    let d = dir.join("list");
    std::fs::create_dir_all(&d).unwrap();
    let policy = d.join("files.policy");
    std::fs::write(
        &policy,
        format!(
            "server files {{\n  hide resource \"file://{r}/hidden/**\"\n  resource \"file://{r}/secret/**\" {{\n    deny \"Secret files are off limits\"\n  }}\n}}\n"
        ),
    )
    .unwrap();
    let list = |extra: &[&str]| -> Vec<String> {
        let mut args = vec!["-c", policy.to_str().unwrap()];
        args.extend_from_slice(extra);
        let server = file_resources_server();
        args.extend_from_slice(&["--", "node", &server, &r]);
        let mut p = Proxy::command("symlinks-list-proxy", &args);
        p.initialize();
        p.send(r#"{"jsonrpc":"2.0","id":1,"method":"resources/list","params":{}}"#);
        let v: Value = serde_json::from_str(&p.response("1")).unwrap();
        p.finish();
        v["result"]["resources"]
            .as_array()
            .unwrap_or_else(|| panic!("a list: {v}"))
            .iter()
            .map(|e| {
                e["uri"]
                    .as_str()
                    .unwrap()
                    .trim_start_matches(&format!("file://{r}/"))
                    .to_string()
            })
            .collect()
    };
    let shown = list(&[]);
    for want in ["public/readme.txt", "public/alias", "secret/key.txt"] {
        // (An entry the policy denies is still listed under `default
        // resource allow`: only hides remove entries; the link to it does not.)
        assert!(shown.iter().any(|s| s == want), "{want} in {shown:?}");
    }
    for gone in [
        "public/keylink",
        "public/hiddenlink",
        "public/loop",
        "hidden/h.txt",
    ] {
        assert!(!shown.iter().any(|s| s == gone), "{gone} in {shown:?}");
    }
    let all = list(&["--no-resolve-symlinks"]);
    for want in ["public/keylink", "public/hiddenlink", "public/loop"] {
        assert!(all.iter().any(|s| s == want), "{want} in {all:?}");
    }
    assert!(!all.iter().any(|s| s == "hidden/h.txt"), "{all:?}");
}

/// A tiny MCP server in Python that opens what it is asked for as given:
/// `tools/call`'s `args.path` with `open`, a `resources/read` URI's path
/// taken apart by `urllib.parse` (percent-decoded, nothing normalised), as
/// a Python, Go or C server would. Written into `dir`; returns its path.
fn open_server(dir: &std::path::Path) -> PathBuf {
    let server = dir.join("open_server.py");
    std::fs::write(
        &server,
        r#"import json, sys, urllib.parse
for line in sys.stdin:
    m = json.loads(line)
    if "id" not in m:
        continue
    if m["method"] == "initialize":
        res = {"protocolVersion": "2025-06-18", "capabilities": {"tools": {}, "resources": {}}, "serverInfo": {"name": "open", "version": "1"}}
    elif m["method"] == "tools/call":
        try:
            text = open(m["params"]["arguments"]["path"]).read()
        except Exception as e:
            text = "error: %s" % e
        res = {"content": [{"type": "text", "text": text}]}
    elif m["method"] == "resources/read":
        uri = m["params"]["uri"]
        try:
            text = open(urllib.parse.unquote(urllib.parse.urlparse(uri).path)).read()
        except Exception as e:
            text = "error: %s" % e
        res = {"contents": [{"uri": uri, "mimeType": "text/plain", "text": text}]}
    else:
        res = {}
    print(json.dumps({"jsonrpc": "2.0", "id": m["id"], "result": res}, separators=(",", ":")), flush=True)
"#,
    )
    .unwrap();
    server
}

/// `..` after a linked directory (found in review): the kernel applies it
/// to the link's target (`public/sub/../key.txt`, `sub -> ../secret/inner`,
/// is `secret/key.txt`), so a server that opens paths and URIs as given
/// (Python's `open` here; Go's `os.Open`, C's `open(2)`) reads the secret.
/// The proxy walks the value as sent the same way, and sees that a server
/// normalising first would read another file (`public/key.txt`): the tool
/// call and the `resources/read` (also spelled with `%2e%2e`) are refused,
/// in both policy languages, and the secret never comes back.
#[test]
fn dotdot_after_a_link_is_decided_where_the_kernel_lands() {
    let (dir, r, resource_policy) = tree("dotdot-after-link");
    std::fs::create_dir_all(format!("{r}/secret/inner")).unwrap();
    std::os::unix::fs::symlink("../secret/inner", format!("{r}/public/sub")).unwrap();
    let server = open_server(&dir);
    let open_server = ["--", "python3", server.to_str().unwrap()];
    for (lang, policy) in tool_policies(&dir, &r) {
        let mut p = Proxy::command(
            &format!("dotdot-after-link-{lang}"),
            &[&["-c", policy.as_str()][..], &open_server[..]].concat(),
        );
        p.initialize();
        let args = json!({"path": format!("{r}/public/sub/../key.txt")});
        let v: Value =
            serde_json::from_str(&p.call(1, "read_text_file", &args.to_string())).unwrap();
        assert!(!v.to_string().contains("TOPSECRET"), "{lang} {args}: {v}");
        assert_eq!(v["error"]["code"], -32003, "{lang} {args}: {v}");
        assert!(
            message(&v).contains(&format!("{r}/secret/key.txt as the kernel opens it")),
            "{lang} {args}: {v}"
        );
    }
    let mut p = Proxy::command(
        "dotdot-after-link-resource",
        &[&["-c", resource_policy.as_str()][..], &open_server[..]].concat(),
    );
    p.initialize();
    // The server does read what the kernel reaches: a public file is
    // forwarded and answered.
    let v = read(&mut p, 1, &format!("file://{r}/public/readme.txt"));
    assert_eq!(v["result"]["contents"][0]["text"], "hello", "{v}");
    for (id, uri) in [
        (2, format!("file://{r}/public/sub/../key.txt")),
        (3, format!("file://{r}/public/sub/%2e%2e/key.txt")),
        (4, format!("file://{r}/public/sub/./../key.txt")),
    ] {
        let v = read(&mut p, id, &uri);
        assert_eq!(v["error"]["code"], -32003, "{uri}: {v}");
        assert!(message(&v).contains("names two files"), "{uri}: {v}");
        assert!(!v.to_string().contains("TOPSECRET"), "{uri}: {v}");
    }
}

/// The other spellings of a local `file:` URI (found in review): RFC 8089
/// names one file `file:///p`, `file:/p` and `file://localhost/p`, and a
/// server that takes the URI apart (Python's `urlparse` here) reads the
/// path of each. They are normalised to `file:///p`, so the rule written
/// for `file:///...` meets them with symlink resolution on or off; a
/// `file:` URI naming another host (whose path such a server reads as its
/// own) and a `\` (WHATWG parsers read it as `/`) are refused. Nothing
/// secret comes back.
#[test]
fn every_spelling_of_a_local_file_uri_meets_the_rule() {
    let (dir, r, policy) = tree("file-uri-spellings");
    let server = open_server(&dir);
    for opt in [None, Some("--no-resolve-symlinks")] {
        let mut args = vec!["-c", policy.as_str()];
        args.extend(opt);
        args.extend(["--", "python3", server.to_str().unwrap()]);
        let mut p = Proxy::command(&format!("file-uri-spellings-{opt:?}"), &args);
        p.initialize();
        let v = read(&mut p, 1, &format!("file:{r}/public/readme.txt"));
        assert_eq!(v["result"]["contents"][0]["text"], "hello", "{opt:?}: {v}");
        for (id, uri, why) in [
            (
                2,
                format!("file:{r}/secret/key.txt"),
                "Secret files are off limits",
            ),
            (
                3,
                format!("file://localhost{r}/secret/key.txt"),
                "Secret files are off limits",
            ),
            (
                4,
                format!("FILE://LOCALHOST{r}/secret/key.txt"),
                "Secret files are off limits",
            ),
            (
                5,
                format!("file://otherhost{r}/secret/key.txt"),
                "names a host other than `localhost`",
            ),
            (
                6,
                format!("file://{r}/public\\..\\secret/key.txt"),
                "URL parsers read as `/`",
            ),
        ] {
            let v = read(&mut p, id, &uri);
            assert_eq!(v["error"]["code"], -32003, "{opt:?} {uri}: {v}");
            assert!(message(&v).contains(why), "{opt:?} {uri}: {v}");
            assert!(!v.to_string().contains("TOPSECRET"), "{opt:?} {uri}: {v}");
        }
    }
}

/// Found in review: a `..` after a link is decided the kernel's way (a7bd979),
/// but a server that normalises first (server-filesystem: `path.resolve` +
/// `fs.realpath`; `new URL(uri).pathname` + open) reads the lexical path's
/// target: `public/link/../x`, `link -> ../other/inner`, `public/x ->
/// ../secret/key.txt`, is `other/x` for the kernel and `secret/key.txt`
/// for them. And `public/nothere/../keylink`: nothing is resolved after a
/// missing component, so the link after the `..` was never followed.
/// Both name two files (one per kind of server): refused, never forwarded.
#[test]
fn dotdot_is_decided_for_servers_that_normalise_first_too() {
    let (dir, r, resource_policy) = tree("dotdot-normalising-servers");
    std::fs::create_dir_all(format!("{r}/other/inner")).unwrap();
    std::fs::write(format!("{r}/other/x"), "harmless").unwrap();
    std::os::unix::fs::symlink("../other/inner", format!("{r}/public/sub")).unwrap();
    std::os::unix::fs::symlink("../secret/key.txt", format!("{r}/public/x")).unwrap();
    let sent = [
        format!("{r}/public/sub/../x"),
        format!("{r}/public/nothere/../keylink"),
    ];
    for (lang, policy) in tool_policies(&dir, &r) {
        let mut p = Proxy::command(
            &format!("dotdot-normalising-{lang}"),
            &[
                "-c",
                policy.as_str(),
                "--",
                "node",
                server_filesystem().to_str().unwrap(),
                &r,
            ],
        );
        p.initialize();
        for (id, path) in (1u64..).zip(&sent) {
            let args = json!({ "path": path }).to_string();
            let v: Value = serde_json::from_str(&p.call(id, "read_text_file", &args)).unwrap();
            assert!(!v.to_string().contains("TOPSECRET"), "{lang} {args}: {v}");
            assert_eq!(v["error"]["code"], -32003, "{lang} {args}: {v}");
            assert!(
                message(&v).contains("names two files"),
                "{lang} {args}: {v}"
            );
        }
        p.finish();
    }
    // The repo's resource server reads `new URL(uri).pathname` (`..`
    // resolved by WHATWG) and opens it.
    let mut p = Proxy::command(
        "dotdot-normalising-resource",
        &[
            "-c",
            resource_policy.as_str(),
            "--",
            "node",
            root()
                .join("tests/e2e/file_resources_server.mjs")
                .to_str()
                .unwrap(),
            &r,
        ],
    );
    p.initialize();
    for (id, uri) in [
        (1, format!("file://{r}/public/sub/../x")),
        (2, format!("file://{r}/public/sub/%2e%2e/x")),
        (3, format!("file://{r}/public/nothere/../keylink")),
    ] {
        let v = read(&mut p, id, &uri);
        assert!(!v.to_string().contains("TOPSECRET"), "{uri}: {v}");
        assert_eq!(v["error"]["code"], -32003, "{uri}: {v}");
        assert!(message(&v).contains("names two files"), "{uri}: {v}");
    }
    p.finish();
}

/// Found in review: with `limit 2 per minute by args.path`, the spellings
/// `//` and `./` of one file (no link) were partitions of their own: the
/// server opened the same file four times. Each spelling is now decided
/// again on the path it names.
#[test]
fn a_limit_per_path_counts_every_spelling_of_one_file() {
    let (dir, r, _) = tree("symlinks-limit-spellings");
    let dir = dir.join("limit");
    std::fs::create_dir_all(&dir).unwrap();
    let policy = dir.join("filesystem.policy");
    std::fs::write(
        &policy,
        format!(
            "server filesystem {{\n  tool read_text_file {{\n    deny \"Secret files are off limits\" when path(args.path) matches \"{r}/secret/**\"\n    limit 2 per minute by args.path -> \"Two reads of a file a minute\"\n  }}\n}}\n"
        ),
    )
    .unwrap();
    let mut p = Proxy::command(
        "symlinks-limit-spellings-proxy",
        &[
            "-c",
            policy.to_str().unwrap(),
            "--",
            "node",
            server_filesystem().to_str().unwrap(),
            &r,
        ],
    );
    p.initialize();
    for (id, path) in [(1, "public/readme.txt"), (2, "public//readme.txt")] {
        let args = json!({"path": format!("{r}/{path}")}).to_string();
        let v: Value = serde_json::from_str(&p.call(id, "read_text_file", &args)).unwrap();
        assert_eq!(text_of(&v), "hello", "call {id}: {v}");
    }
    for (id, path) in [(3, "public/./readme.txt"), (4, "public/readme.txt")] {
        let args = json!({"path": format!("{r}/{path}")}).to_string();
        let v: Value = serde_json::from_str(&p.call(id, "read_text_file", &args)).unwrap();
        assert!(
            text_of(&v).starts_with("[POLICY DENIED] Two reads of a file a minute"),
            "call {id}: {v}"
        );
    }
    p.finish();
}

/// Found in review: server-filesystem matches a component that does not exist
/// against the directory's entries by NFC (`resolveUnicodeEquivalentPath`)
/// and walks on through the match, links included. The NFD spelling of a
/// link's name was "missing" to the proxy, so the call was allowed and the
/// server read the secret through the link. The proxy now walks through
/// the NFC-equal entry as the server does.
#[test]
fn a_unicode_equivalent_spelling_of_a_link_is_resolved_as_the_server_does() {
    let (dir, r, _) = tree("symlinks-nfd");
    std::os::unix::fs::symlink("../secret", format!("{r}/public/l\u{ef}nk")).unwrap();
    for (lang, policy) in tool_policies(&dir, &r) {
        let mut p = Proxy::command(
            &format!("symlinks-nfd-{lang}"),
            &[
                "-c",
                policy.as_str(),
                "--",
                "node",
                server_filesystem().to_str().unwrap(),
                &r,
            ],
        );
        p.initialize();
        for (id, name) in [(1, "l\u{ef}nk"), (2, "li\u{308}nk")] {
            let args = json!({ "path": format!("{r}/public/{name}/key.txt") }).to_string();
            let v: Value = serde_json::from_str(&p.call(id, "read_text_file", &args)).unwrap();
            assert!(!v.to_string().contains("TOPSECRET"), "{lang} {args}: {v}");
        }
        p.finish();
    }
}

/// Found in review: an operator-approved call through a link was decided again
/// on the path as sent only, so the target's `by args.path` counter was
/// not reserved: the file was read twice in a minute under `limit 1`.
#[test]
fn an_approved_call_counts_its_links_target() {
    let (dir, r, _) = tree("symlinks-approved-target-limit");
    std::os::unix::fs::symlink("readme.txt", format!("{r}/public/a1")).unwrap();
    let server = open_server(&dir);
    let pdir = dir.join("approve");
    std::fs::create_dir_all(&pdir).unwrap();
    let policy = pdir.join("filesystem.policy");
    std::fs::write(
        &policy,
        format!(
            "server filesystem {{\n  tool read_text_file {{\n    deny \"Secret files are off limits\" when path(args.path) matches \"{r}/secret/**\"\n    approve \"aliases need a human\" when args.path matches /\\/public\\/a/ via operator\n    limit 1 per minute by args.path -> \"One read of a file a minute\"\n  }}\n}}\n"
        ),
    )
    .unwrap();
    let state = dir.join("state");
    let mut p = Proxy::command(
        "symlinks-approved-target-limit-proxy",
        &[
            "-c",
            policy.to_str().unwrap(),
            "--state-dir",
            state.to_str().unwrap(),
            "--",
            "python3",
            server.to_str().unwrap(),
        ],
    );
    p.initialize();
    let alias = json!({"path": format!("{r}/public/a1")}).to_string();
    let v: Value = serde_json::from_str(&p.call(1, "read_text_file", &alias)).unwrap();
    let apr = v["result"]["_meta"]["dev.portcullis/approval"]["id"]
        .as_str()
        .unwrap_or_else(|| panic!("held: {v}"))
        .to_string();
    let out = std::process::Command::new(common::portcullis())
        .args([
            "approvals",
            "approve",
            &apr,
            "--state-dir",
            state.to_str().unwrap(),
        ])
        .output()
        .unwrap();
    assert!(out.status.success(), "{out:?}");
    let v: Value = serde_json::from_str(&p.call(2, "read_text_file", &alias)).unwrap();
    assert_eq!(text_of(&v), "hello", "approved retry: {v}");
    // The approved read counted the target: a direct read is the second
    // read of readme.txt this minute.
    let direct = json!({"path": format!("{r}/public/readme.txt")}).to_string();
    let v: Value = serde_json::from_str(&p.call(3, "read_text_file", &direct)).unwrap();
    assert!(
        text_of(&v).starts_with("[POLICY DENIED] One read of a file a minute"),
        "{v}"
    );
    p.finish();
}

/// The same for `resources/read`: an operator-approved read through a link
/// counts against the limit only its target's block carries.
#[test]
fn an_approved_read_counts_its_links_target() {
    let (dir, r, _) = tree("symlinks-approved-read-limit");
    let pdir = dir.join("approve");
    std::fs::create_dir_all(&pdir).unwrap();
    let policy = pdir.join("files.policy");
    std::fs::write(
        &policy,
        format!(
            "server files {{\n  resource \"file://{r}/public/**\" {{\n    approve \"public reads need a human\" via operator\n  }}\n  resource \"file://{r}/secret/**\" {{\n    limit 1 per minute -> \"One secret read a minute\"\n  }}\n}}\n"
        ),
    )
    .unwrap();
    let state = dir.join("state");
    let server = file_resources_server();
    let mut p = Proxy::command(
        "symlinks-approved-read-limit-proxy",
        &[
            "-c",
            policy.to_str().unwrap(),
            "--state-dir",
            state.to_str().unwrap(),
            "--",
            "node",
            &server,
            &r,
        ],
    );
    p.initialize();
    let link = format!("file://{r}/public/keylink");
    let v = read(&mut p, 1, &link);
    let apr = v["error"]["data"]["dev.portcullis/approval"]["id"]
        .as_str()
        .unwrap_or_else(|| panic!("held: {v}"))
        .to_string();
    let out = std::process::Command::new(common::portcullis())
        .args([
            "approvals",
            "approve",
            &apr,
            "--state-dir",
            state.to_str().unwrap(),
        ])
        .output()
        .unwrap();
    assert!(out.status.success(), "{out:?}");
    let v = read(&mut p, 2, &link);
    assert_eq!(
        v["result"]["contents"][0]["text"], "TOPSECRET",
        "approved: {v}"
    );
    let v = read(&mut p, 3, &format!("file://{r}/secret/key.txt"));
    assert_eq!(v["error"]["code"], -32003, "{v}");
    assert!(message(&v).contains("One secret read a minute"), "{v}");
    p.finish();
}
