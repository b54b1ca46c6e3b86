//! Resources and prompts under policy (docs/surfaces.md), end to end: the
//! real binary (`-c` policy files in the policy language) in front of the
//! real `@modelcontextprotocol/server-filesystem` and `server-everything`,
//! driven over raw stdio pipes; a tap records what reached each server.

mod common;

use common::Proxy;
use serde_json::Value;

fn json(line: &str) -> Value {
    serde_json::from_str(line).unwrap_or_else(|e| panic!("not JSON ({e}): {line}"))
}

fn request(p: &mut Proxy, id: u64, method: &str, params: Value) -> Value {
    let line = serde_json::json!({"jsonrpc": "2.0", "id": id, "method": method, "params": params});
    p.send(&line.to_string());
    json(&p.response(&id.to_string()))
}

fn server_filesystem() -> std::path::PathBuf {
    let p = common::root()
        .join(".deps/node_modules/@modelcontextprotocol/server-filesystem/dist/index.js");
    assert!(
        p.exists(),
        "{} is missing: run scripts/deps to install @modelcontextprotocol/server-filesystem",
        p.display()
    );
    p
}

/// A denied path is refused as a tool call (a `path()` condition: the
/// argument normalised lexically) and as `resources/read`, however it is
/// spelled; a symlink into the denied directory is refused on its target
/// (the proxy started the server, so it resolves path arguments).
#[test]
fn filesystem_denied_paths_are_refused_as_tools_and_as_resources() {
    let dir = common::temp_dir("surfaces-fs");
    let root = dir.join("root");
    std::fs::create_dir_all(root.join("public")).unwrap();
    std::fs::create_dir_all(root.join("secret")).unwrap();
    std::fs::write(root.join("public/readme.txt"), "hello").unwrap();
    std::fs::write(root.join("secret/key.txt"), "TOPSECRET").unwrap();
    std::os::unix::fs::symlink(root.join("secret"), root.join("public/link")).unwrap();
    let root = std::fs::canonicalize(&root).unwrap();
    let r = root.display().to_string();
    let policy = dir.join("filesystem.policy");
    std::fs::write(
        &policy,
        format!(
            r#"server filesystem {{
  tool read_text_file, read_file, read_media_file, list_directory {{
    deny "Secret files are off limits" when path(args.path) matches "{r}/secret/**"
  }}
  resource "file://{r}/secret/**" {{
    deny "Secret files are off limits"
  }}
  hide resource "file://{r}/secret/**"
}}
"#
        ),
    )
    .unwrap();
    let tap = dir.join("server-received.jsonl");
    let tap_sh = common::root().join("tests/e2e/tap.sh");
    let fs = server_filesystem();
    let mut p = Proxy::command(
        "surfaces-fs-proxy",
        &[
            "-c",
            &policy.display().to_string(),
            "--",
            &tap_sh.display().to_string(),
            &tap.display().to_string(),
            "node",
            &fs.display().to_string(),
            // The server's allowed root: the public directory only.
            &root.join("public").display().to_string(),
        ],
    );
    p.initialize();
    let mut id = 10;
    let mut next = || {
        id += 1;
        id
    };
    // Tool calls: the path as written and every spelling the server would
    // resolve to it (`..`, `//`, `./`, a trailing `/`, the directory
    // itself) are refused by policy; so is a path that cannot be
    // normalised (relative, `..` above the root, a NUL): fail closed.
    for (tool, path) in [
        ("read_text_file", format!("{r}/secret/key.txt")),
        ("read_text_file", format!("{r}/public/../secret/key.txt")),
        ("read_text_file", format!("{r}//secret///key.txt")),
        ("read_text_file", format!("{r}/./secret/./key.txt")),
        (
            "read_text_file",
            format!("{r}/public/x/../../secret/key.txt"),
        ),
        ("read_file", format!("{r}/public/..//./secret/key.txt")),
        ("list_directory", format!("{r}/secret/")),
        ("list_directory", format!("{r}/public/..//secret")),
        ("read_text_file", "secret/key.txt".to_string()),
        ("read_text_file", format!("/..{r}/secret/key.txt")),
        ("read_text_file", format!("{r}/public/readme.txt\u{0}")),
    ] {
        let v = request(
            &mut p,
            next(),
            "tools/call",
            serde_json::json!({"name": tool, "arguments": {"path": path}}),
        );
        let text = v["result"]["content"][0]["text"]
            .as_str()
            .unwrap_or_default();
        assert_eq!(v["result"]["isError"], true, "{v}");
        assert_eq!(text, "[POLICY DENIED] Secret files are off limits", "{v}");
    }
    // The symlink: the proxy started the server, so it resolves the path
    // argument (docs/surfaces.md, "Symlinks in tool arguments") and the
    // policy refuses the link's target, naming it; the server never sees it.
    let v = request(
        &mut p,
        next(),
        "tools/call",
        serde_json::json!({"name": "read_text_file", "arguments": {"path": format!("{r}/public/link/key.txt")}}),
    );
    let text = v.to_string();
    assert!(!text.contains("TOPSECRET"), "{v}");
    assert_eq!(
        v["result"]["content"][0]["text"],
        format!(
            "[POLICY DENIED] Secret files are off limits (args.path \"{r}/public/link/key.txt\" resolves to \"{r}/secret/key.txt\")"
        ),
        "the policy refuses the link's target: {v}"
    );
    // The allowed file is read.
    let v = request(
        &mut p,
        next(),
        "tools/call",
        serde_json::json!({"name": "read_text_file", "arguments": {"path": format!("{r}/public/readme.txt")}}),
    );
    assert_eq!(v["result"]["content"][0]["text"], "hello", "{v}");

    // resources/read, in every spelling that means the secret file.
    for uri in [
        format!("file://{r}/secret/key.txt"),
        format!("FILE://{r}/secret/key.txt"),
        format!("file://{r}//secret/./key.txt"),
        format!("file://{r}/public/../secret/key.txt"),
        format!("file://{r}/%73ecret/key.txt"),
    ] {
        let v = request(
            &mut p,
            next(),
            "resources/read",
            serde_json::json!({"uri": uri}),
        );
        assert_eq!(v["error"]["code"], -32002, "hidden: not found ({uri}): {v}");
        let message = v["error"]["message"].as_str().unwrap();
        assert!(
            message.starts_with("[POLICY DENIED] Resource \"file://"),
            "{message}"
        );
        assert!(
            message.ends_with("/secret/key.txt\" is hidden by policy"),
            "{message}"
        );
        assert_eq!(
            v["error"]["data"]["dev.portcullis/decision"]["outcome"],
            "hidden"
        );
    }
    // Not normalisable: an encoded slash, `..` above the root.
    for uri in [
        format!("file://{r}/secret%2Fkey.txt"),
        "file:///../etc/passwd".to_string(),
    ] {
        let v = request(
            &mut p,
            next(),
            "resources/read",
            serde_json::json!({"uri": uri}),
        );
        assert_eq!(v["error"]["code"], -32003, "{v}");
        assert!(
            v["error"]["message"]
                .as_str()
                .unwrap()
                .contains("cannot be normalised"),
            "{v}"
        );
    }
    // An allowed URI is forwarded (this server has no resources: it answers
    // that the method is not found).
    let allowed = request(
        &mut p,
        next(),
        "resources/read",
        serde_json::json!({"uri": format!("file://{r}/public/readme.txt")}),
    );
    assert_eq!(allowed["error"]["code"], -32601, "{allowed}");
    // Read once the server has exited: `tee` writes each chunk to the server
    // before the file, so an answer can come back before its line is logged.
    let (code, _) = p.finish();
    assert_eq!(code, 0);
    let received = std::fs::read_to_string(&tap).unwrap_or_default();
    assert!(!received.contains("TOPSECRET"));
    // Only the allowed file reached the server as a tool call.
    let calls: Vec<&str> = received
        .lines()
        .filter(|l| l.contains("\"tools/call\""))
        .collect();
    assert_eq!(calls.len(), 1, "{calls:?}");
    assert!(calls.iter().all(|l| !l.contains("secret")), "{calls:?}");
    let reads: Vec<&str> = received
        .lines()
        .filter(|l| l.contains("\"resources/read\""))
        .collect();
    assert_eq!(
        reads.len(),
        1,
        "only the allowed read reached the server: {reads:?}"
    );
    assert!(reads[0].contains("/public/readme.txt"));
}

/// server-everything: its resources and templates lists without what the
/// policy hides, a hidden resource refused when read anyway, `prompts/get`
/// with denied arguments refused, `prompts/list` filtered.
#[test]
fn everything_lists_are_filtered_and_prompts_decided_by_arguments() {
    let dir = common::temp_dir("surfaces-everything");
    let policy = dir.join("everything.policy");
    std::fs::write(
        &policy,
        r#"server everything {
  hide resource "demo://resource/static/document/architecture.md"
  hide resource "demo://resource/dynamic/blob/**"
  resource "demo://resource/dynamic/text/*" {
    deny "Dynamic text is off limits"
  }
  prompt args-prompt {
    deny "Not that city" when args.city == "Paris"
  }
  hide prompt "resource-prompt"
}
"#,
    )
    .unwrap();
    let policy = policy.display().to_string();
    let mut p = Proxy::everything("surfaces-everything-proxy", &["-c", &policy]);
    p.initialize();
    // Every page (this server answers in one page; a cursor is kept as sent).
    let mut uris = Vec::new();
    let mut cursor: Option<String> = None;
    for page in 0..10 {
        let params = match &cursor {
            Some(c) => serde_json::json!({"cursor": c}),
            None => serde_json::json!({}),
        };
        let v = request(&mut p, 100 + page, "resources/list", params);
        for r in v["result"]["resources"].as_array().expect("resources") {
            uris.push(r["uri"].as_str().unwrap().to_string());
        }
        match v["result"]["nextCursor"].as_str() {
            Some(c) => cursor = Some(c.to_string()),
            None => break,
        }
    }
    assert!(
        uris.iter()
            .any(|u| u.starts_with("demo://resource/static/document/")),
        "{uris:?}"
    );
    assert!(
        !uris.iter().any(|u| u.ends_with("/architecture.md")),
        "the hidden resource is listed: {uris:?}"
    );
    let v = request(
        &mut p,
        200,
        "resources/templates/list",
        serde_json::json!({}),
    );
    let templates: Vec<&str> = v["result"]["resourceTemplates"]
        .as_array()
        .expect("templates")
        .iter()
        .map(|t| t["uriTemplate"].as_str().unwrap())
        .collect();
    assert!(
        templates.iter().any(|t| t.contains("/dynamic/text/")),
        "{templates:?}"
    );
    assert!(
        !templates.iter().any(|t| t.contains("/dynamic/blob/")),
        "{templates:?}"
    );
    // Hidden, read anyway: refused; a denied template instance: refused
    // with the rule's message; an allowed document: read.
    let v = request(
        &mut p,
        201,
        "resources/read",
        serde_json::json!({"uri": "demo://resource/static/document/architecture.md"}),
    );
    assert_eq!(v["error"]["code"], -32002, "{v}");
    let v = request(
        &mut p,
        202,
        "resources/read",
        serde_json::json!({"uri": "demo://resource/dynamic/text/1"}),
    );
    assert_eq!(v["error"]["code"], -32003, "{v}");
    assert_eq!(
        v["error"]["message"],
        "[POLICY DENIED] Dynamic text is off limits"
    );
    // Subscribing is decided like reading.
    let v = request(
        &mut p,
        204,
        "resources/subscribe",
        serde_json::json!({"uri": "demo://resource/dynamic/text/2"}),
    );
    assert_eq!(v["error"]["code"], -32003, "{v}");
    let allowed = uris
        .iter()
        .find(|u| u.starts_with("demo://resource/static/document/"))
        .unwrap()
        .clone();
    let v = request(
        &mut p,
        203,
        "resources/read",
        serde_json::json!({"uri": allowed}),
    );
    assert!(v["result"]["contents"][0]["text"].is_string(), "{v}");
    // Prompts: by arguments, and the list without the hidden one.
    let v = request(
        &mut p,
        300,
        "prompts/get",
        serde_json::json!({"name": "args-prompt", "arguments": {"city": "Paris"}}),
    );
    assert_eq!(v["error"]["code"], -32003, "{v}");
    assert_eq!(v["error"]["message"], "[POLICY DENIED] Not that city");
    let v = request(
        &mut p,
        301,
        "prompts/get",
        serde_json::json!({"name": "args-prompt", "arguments": {"city": "Berlin"}}),
    );
    assert!(v["result"]["messages"].is_array(), "{v}");
    let v = request(&mut p, 302, "prompts/list", serde_json::json!({}));
    let names: Vec<&str> = v["result"]["prompts"]
        .as_array()
        .expect("prompts")
        .iter()
        .map(|t| t["name"].as_str().unwrap())
        .collect();
    assert!(
        names.contains(&"args-prompt") && names.contains(&"simple-prompt"),
        "{names:?}"
    );
    assert!(!names.contains(&"resource-prompt"), "{names:?}");
    let received = p.server_received();
    assert!(
        !received
            .iter()
            .any(|l| l.contains("Paris") || l.contains("/dynamic/text/1")),
        "a denied request reached the server"
    );
    let (code, _) = p.finish();
    assert_eq!(code, 0);
}

/// `explain` shows a path() test with the path it compared: normalised, or
/// why it could not be and that the rule refuses the call.
#[test]
fn explain_shows_paths_as_compared() {
    let policy = common::root().join("tests/fixtures/paths/paths-dsl.policy");
    let run = |args: &str| {
        let out = std::process::Command::new(common::portcullis())
            .arg("explain")
            .arg("-c")
            .arg(&policy)
            .args(["--tool", "read_file", "--args", args])
            .output()
            .unwrap();
        String::from_utf8_lossy(&out.stdout).into_owned()
    };
    let out = run(r#"{"path": "/srv/public/../secret//key"}"#);
    assert!(
        out.contains(r#"path(args.path) matches "/srv/secret/**"  true   args.path = "/srv/public/../secret//key" (normalised /srv/secret/key)"#),
        "{out}"
    );
    assert!(
        out.contains("[POLICY DENIED] secrets are off limits"),
        "{out}"
    );
    let out = run(r#"{"path": "secret/key"}"#);
    assert!(
        out.contains("(cannot be normalised: the path is not absolute (it does not start with `/`); the rule refuses the call)"),
        "{out}"
    );
    assert!(
        out.contains("[POLICY DENIED] secrets are off limits"),
        "{out}"
    );
    let out = run(r#"{"path": "/srv/public/a.txt"}"#);
    assert!(out.contains("(normalised /srv/public/a.txt)"), "{out}");
    assert!(out.contains("result   ALLOW"), "{out}");
}

/// `explain --resource` and `--prompt` show how the policy decides, on the
/// normalised URI; a URI that cannot be normalised is an error with help.
#[test]
fn explain_covers_resources_and_prompts() {
    let policy = common::root().join("tests/fixtures/surfaces/surfaces-dsl.policy");
    let run = |args: &[&str]| {
        let out = std::process::Command::new(common::portcullis())
            .arg("explain")
            .arg("-c")
            .arg(&policy)
            .args(args)
            .output()
            .unwrap();
        (
            String::from_utf8_lossy(&out.stdout).into_owned(),
            String::from_utf8_lossy(&out.stderr).into_owned(),
        )
    };
    let (out, _) = run(&["--resource", "FILE:///tmp/../etc//passwd"]);
    assert!(out.contains("read     file:///etc/passwd"), "{out}");
    assert!(out.contains("listed   by resource file:///etc/**"), "{out}");
    assert!(
        out.contains("[POLICY DENIED] System files are off limits"),
        "{out}"
    );
    let (out, _) = run(&["--prompt", "deploy", "--args", r#"{"env":"prod"}"#]);
    assert!(out.contains("args.env == \"prod\"  true"), "{out}");
    assert!(
        out.contains("[POLICY DENIED] No production deploys from an agent"),
        "{out}"
    );
    let (out, _) = run(&["--resource", "file:///root/.ssh/id"]);
    assert!(out.contains("hidden   by hide resource[0]"), "{out}");
    let (_, err) = run(&["--resource", "file:///a%2Fb"]);
    assert!(err.contains("cannot be normalised"), "{err}");
    assert!(err.contains("docs/surfaces.md"), "{err}");
}

/// Tests as data: `resource:` and `prompt:` calls, with coverage.
#[test]
fn policy_tests_cover_resources_and_prompts() {
    let file = common::root().join("tests/fixtures/surfaces/surfaces-dsl.test.yaml");
    let out = std::process::Command::new(common::portcullis())
        .args(["test", "--coverage", "--min-coverage", "100"])
        .arg(&file)
        .output()
        .unwrap();
    let text = String::from_utf8_lossy(&out.stdout);
    assert!(
        out.status.success(),
        "{text}\n{}",
        String::from_utf8_lossy(&out.stderr)
    );
    assert!(
        text.contains("test result: ok. 6 passed; 0 failed"),
        "{text}"
    );
    assert!(text.contains("(100.0%)"), "{text}");
    // A wrong expectation names the request.
    let dir = common::temp_dir("surfaces-test-data");
    std::fs::copy(
        common::root().join("tests/fixtures/surfaces/surfaces-dsl.policy"),
        dir.join("surfaces-dsl.policy"),
    )
    .unwrap();
    std::fs::write(
        dir.join("surfaces-dsl.test.yaml"),
        "cases:\n  - name: wrong\n    calls:\n      - {resource: \"file:///etc/passwd\", expect: allow}\n",
    )
    .unwrap();
    let out = std::process::Command::new(common::portcullis())
        .arg("test")
        .arg(dir.join("surfaces-dsl.test.yaml"))
        .output()
        .unwrap();
    let text = String::from_utf8_lossy(&out.stdout);
    assert!(!out.status.success());
    assert!(text.contains("file:///etc/passwd"), "{text}");
    assert!(text.contains("System files are off limits"), "{text}");
}

/// `translate` carries `resources:` and `prompts:` over: the translation of
/// the Intercept fixture passes the fixture's tests too.
#[test]
fn translate_carries_resources_and_prompts_over() {
    let fixtures = common::root().join("tests/fixtures/surfaces");
    let out = std::process::Command::new(common::portcullis())
        .arg("translate")
        .arg(fixtures.join("surfaces-intercept.yaml"))
        .output()
        .unwrap();
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    let text = String::from_utf8(out.stdout).unwrap();
    assert!(text.contains("resource \"file:///etc/**\" {"), "{text}");
    assert!(text.contains("resource /\\.env$/ {"), "{text}");
    assert!(text.contains("hide prompt secret_*"), "{text}");
    let dir = common::temp_dir("surfaces-translate");
    std::fs::write(dir.join("surfaces-intercept.policy"), &text).unwrap();
    std::fs::copy(
        fixtures.join("surfaces-intercept.test.yaml"),
        dir.join("surfaces-intercept.test.yaml"),
    )
    .unwrap();
    for file in [
        fixtures.join("surfaces-intercept.test.yaml"),
        dir.join("surfaces-intercept.test.yaml"),
    ] {
        let out = std::process::Command::new(common::portcullis())
            .arg("test")
            .arg(&file)
            .output()
            .unwrap();
        let report = String::from_utf8_lossy(&out.stdout);
        assert!(out.status.success(), "{}: {report}", file.display());
        assert!(report.contains("3 passed; 0 failed"), "{report}");
    }
}

/// Over Streamable HTTP, with the official MCP SDK client: the HTTP
/// endpoint shares the session code, so lists are filtered and requests
/// decided exactly as over stdio, and the SDK surfaces the refusals as
/// errors with their codes.
#[test]
fn the_sdk_client_over_http_sees_the_same_policy() {
    let dir = common::temp_dir("surfaces-http");
    let policy = dir.join("everything.policy");
    std::fs::write(
        &policy,
        r#"server everything {
  hide resource "demo://resource/static/document/architecture.md"
  hide resource "demo://resource/dynamic/blob/**"
  resource "demo://resource/dynamic/text/*" {
    deny "Dynamic text is off limits"
  }
  prompt args-prompt {
    deny "Not that city" when args.city == "Paris"
  }
  hide prompt "resource-prompt"
}
"#,
    )
    .unwrap();
    let everything = common::server_everything();
    let (proxy, url) = common::http_endpoint(&[
        "-c",
        policy.to_str().unwrap(),
        "--",
        "node",
        everything.to_str().unwrap(),
    ]);
    let v = common::sdk_client("sdk_surfaces_client.mjs", &url);
    let strings = |k: &str| -> Vec<String> {
        v[k].as_array()
            .unwrap_or_else(|| panic!("{k}: {v}"))
            .iter()
            .map(|s| s.as_str().unwrap().to_string())
            .collect()
    };
    let resources = strings("resources");
    assert!(!resources.is_empty());
    assert!(
        !resources.iter().any(|u| u.ends_with("/architecture.md")),
        "{resources:?}"
    );
    let templates = strings("templates");
    assert!(
        templates.iter().any(|t| t.contains("/dynamic/text/")),
        "{templates:?}"
    );
    assert!(
        !templates.iter().any(|t| t.contains("/dynamic/blob/")),
        "{templates:?}"
    );
    let prompts = strings("prompts");
    assert!(prompts.contains(&"args-prompt".to_string()), "{prompts:?}");
    assert!(
        !prompts.contains(&"resource-prompt".to_string()),
        "{prompts:?}"
    );
    assert_eq!(v["hiddenRead"]["error"]["code"], -32002, "{v}");
    assert_eq!(v["deniedRead"]["error"]["code"], -32003, "{v}");
    assert!(
        v["deniedRead"]["error"]["message"]
            .as_str()
            .unwrap()
            .contains("[POLICY DENIED] Dynamic text is off limits"),
        "{v}"
    );
    // The same URI, spelled otherwise: case, `.`/`..`, `//`, `%31` for `1`.
    assert_eq!(v["encodedRead"]["error"]["code"], -32003, "{v}");
    assert!(v["allowedRead"]["result"]["contents"].is_array(), "{v}");
    assert_eq!(v["deniedPrompt"]["error"]["code"], -32003, "{v}");
    assert!(v["allowedPrompt"]["result"]["messages"].is_array(), "{v}");
    drop(proxy);
}

/// `scan` lists the server's resources, templates and prompts as commented
/// scaffolds; uncommented, they compile.
#[test]
fn scan_scaffolds_resources_and_prompts() {
    let dir = common::temp_dir("surfaces-scan");
    let out = std::process::Command::new(common::portcullis())
        .args(["scan", "--format", "dsl", "--", "node"])
        .arg(common::server_everything())
        .output()
        .unwrap();
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    let text = String::from_utf8(out.stdout).unwrap();
    assert!(
        text.contains("// resource \"demo://resource/static/document/architecture.md\" { }"),
        "{text}"
    );
    assert!(
        text.contains(
            "// resource \"demo://resource/dynamic/text/*\" { }  // template demo://resource/dynamic/text/{resourceId}"
        ),
        "{text}"
    );
    assert!(
        text.contains("// prompt \"args-prompt\" { }  // arguments: args.city, args.state"),
        "{text}"
    );
    // The commented result rules: the resources by scheme and authority.
    assert!(
        text.contains(
            "  // results for resource \"demo://resource/**\" {\n  //   deny secrets\n  // }\n"
        ),
        "{text}"
    );
    let uncommented: String = text
        .lines()
        .map(|l| {
            let t = l.trim_start();
            match t.strip_prefix("// ") {
                Some(rest) if rest.starts_with("resource \"") || rest.starts_with("prompt \"") => {
                    format!("  {rest}\n")
                }
                _ => format!("{l}\n"),
            }
        })
        .collect();
    let stem = uncommented
        .lines()
        .find_map(|l| l.strip_prefix("server "))
        .and_then(|l| l.split_whitespace().next())
        .unwrap()
        .to_string();
    let file = dir.join(format!("{stem}.policy"));
    std::fs::write(&file, &uncommented).unwrap();
    let v = std::process::Command::new(common::portcullis())
        .arg("validate")
        .arg(&file)
        .output()
        .unwrap();
    assert!(
        v.status.success(),
        "{}\n{uncommented}",
        String::from_utf8_lossy(&v.stderr)
    );
}

/// Bad resource and prompt rules get positioned errors with help, in every
/// language.
#[test]
fn bad_resource_and_prompt_rules_are_positioned_errors() {
    let dir = common::temp_dir("surfaces-errors");
    let cases: [(&str, &str, &[&str]); 8] = [
        (
            "a.policy",
            "server a {\n  resource \"FILE:///etc/./passwd\" {\n    deny \"x\"\n  }\n  resource \"file:///srv/**\" {\n    deny \"y\" when args.path == \"z\"\n  }\n  prompt p {\n    once per 10m\n  }\n}\n",
            &[
                "a.policy:2:12",
                "the resource URI `FILE:///etc/./passwd` is not normalised",
                "write `file:///etc/passwd`",
                "a.policy:6:19",
                "`args.path`: a resource request has no arguments",
                "a.policy:9:5",
                "an idempotency window applies to tool calls only, not to a prompt",
            ],
        ),
        (
            "b.yaml",
            "version: \"1\"\nresources:\n  \"file:///etc/**\":\n    match: glb\n    rule: []\n",
            &[
                "b.yaml:4:12",
                "resources.file:///etc/**.match must be `exact`, `glob` or `regex`",
                "b.yaml:5:5",
                "unknown key `rule` in resource `file:///etc/**`",
                "did you mean `rules`?",
            ],
        ),
        (
            "c.yaml",
            "tools: {}\nprompts:\n  deploy:\n    hide: maybe\n",
            &[
                "c.yaml:4:11",
                "prompts.deploy.hide must be `true`, `false` or a condition",
            ],
        ),
        (
            "e.yaml",
            "version: \"1\"\nresources:\n  default: maybe\nprompts:\n  default: deny\n  deploy:\n    hide:\n      when: [{path: args.env, op: eq, value: prod}]\n      unless: [{path: principal.sub, op: eq, value: root}]\n",
            &[
                "e.yaml:3:12",
                "resources.default must be `allow` or `deny`, got \"maybe\"",
                "a resource named `default` is a mapping",
                "e.yaml:9:7",
                "prompts.deploy.hide: give `when` or `unless`, not both",
            ],
        ),
        (
            "f.yaml",
            "tools: {}\nresources:\n  \"file:///srv/**\":\n    hide:\n      when: [{path: args.path, op: eq, value: x}]\n        \n",
            &[
                "f.yaml:5:21",
                "a hide condition may only read principal paths, got \"args.path\"",
            ],
        ),
        (
            "h.yaml",
            "tools: {}\nprompts:\n  default: [deny]\n  other:\n    hide: {when: []}\n",
            &[
                "h.yaml:3:12",
                "prompts.default must be `allow` or `deny`, found a list",
                "h.yaml:5:18",
                "prompts.other.hide.when: needs at least one condition",
            ],
        ),
        (
            "g.policy",
            "server g {\n  hide prompt \"debug-*\" when args.x == 1\n}\n",
            &[
                "g.policy:2:30",
                "a hide condition may only read principal paths, not `args.x`",
            ],
        ),
        (
            "d.policy",
            "server d {\n  resource /(unclosed/ {\n    deny \"x\"\n  }\n}\n",
            &["d.policy:2:12", "invalid regex `(unclosed`"],
        ),
    ];
    for (name, text, wants) in cases {
        let file = dir.join(name);
        std::fs::write(&file, text).unwrap();
        let out = std::process::Command::new(common::portcullis())
            .arg("validate")
            .arg(&file)
            .output()
            .unwrap();
        let err = String::from_utf8_lossy(&out.stderr);
        assert!(!out.status.success(), "{name}: accepted\n{err}");
        for want in wants {
            assert!(err.contains(want), "{name}: no `{want}` in\n{err}");
        }
    }
}

/// `default: deny` in YAML and per-caller hides of resources and prompts,
/// as tests as data in both forms, and approval rules on them, with full
/// coverage (the hide conditions count).
#[test]
fn allow_lists_and_per_caller_hides_pass_their_tests_as_data() {
    for (file, passed) in [
        ("surfaces-allowlist.test.yaml", 2),
        ("surfaces-allowlist-intercept.test.yaml", 2),
        ("surfaces-approval.test.yaml", 3),
    ] {
        let out = std::process::Command::new(common::portcullis())
            .args(["test", "--coverage", "--min-coverage", "100"])
            .arg(common::root().join("tests/fixtures/surfaces").join(file))
            .output()
            .unwrap();
        let text = String::from_utf8_lossy(&out.stdout);
        assert!(
            out.status.success(),
            "{file}: {text}\n{}",
            String::from_utf8_lossy(&out.stderr)
        );
        assert!(
            text.contains(&format!("test result: ok. {passed} passed; 0 failed")),
            "{text}"
        );
    }
}

/// The names in a list answer's `array`, by `key`, over every page.
fn list_all(p: &mut Proxy, id: u64, method: &str, array: &str, key: &str) -> Vec<String> {
    let mut names = Vec::new();
    let mut cursor: Option<String> = None;
    for page in 0..10 {
        let params = match &cursor {
            Some(c) => serde_json::json!({"cursor": c}),
            None => serde_json::json!({}),
        };
        let v = request(p, id + page, method, params);
        for e in v["result"][array]
            .as_array()
            .unwrap_or_else(|| panic!("{v}"))
        {
            names.push(e[key].as_str().unwrap().to_string());
        }
        match v["result"]["nextCursor"].as_str() {
            Some(c) => cursor = Some(c.to_string()),
            None => break,
        }
    }
    names
}

/// server-everything behind an allow-list with per-caller hides, for two
/// callers (`--principal-claims`): each session's lists show what that
/// caller could be permitted (every page), and requests are decided alike.
#[test]
fn everything_allow_lists_and_per_caller_hides_per_session() {
    let dir = common::temp_dir("surfaces-views");
    let policy = dir.join("everything.policy");
    std::fs::write(
        &policy,
        r#"server everything {
  default resource deny
  default prompt deny
  resource "demo://resource/static/document/*" {}
  resource "demo://resource/static/document/architecture.md" {
    deny "Not this document"
  }
  resource "demo://resource/dynamic/text/*" {}
  hide resource "demo://resource/dynamic/text/**" unless "admins" in principal.claims.groups
  prompt simple-prompt, args-prompt {}
  hide prompt args-prompt when principal.sub != "root"
}
"#,
    )
    .unwrap();
    for (who, claims) in [
        (
            "root",
            r#"{"iss":"https://idp.test","sub":"root","groups":["admins"]}"#,
        ),
        (
            "alice",
            r#"{"iss":"https://idp.test","sub":"alice","groups":["staff"]}"#,
        ),
    ] {
        let admin = who == "root";
        let claims_file = dir.join(format!("{who}.json"));
        std::fs::write(&claims_file, claims).unwrap();
        let mut p = Proxy::everything(
            &format!("surfaces-views-{who}"),
            &[
                "-c",
                policy.to_str().unwrap(),
                "--principal-claims",
                claims_file.to_str().unwrap(),
            ],
        );
        p.initialize();
        let uris = list_all(&mut p, 100, "resources/list", "resources", "uri");
        assert!(!uris.is_empty(), "{who}: nothing listed");
        assert!(
            uris.iter()
                .all(|u| u.starts_with("demo://resource/static/document/")
                    && !u.ends_with("/architecture.md")),
            "{who}: {uris:?}"
        );
        let templates = list_all(
            &mut p,
            200,
            "resources/templates/list",
            "resourceTemplates",
            "uriTemplate",
        );
        assert_eq!(
            templates
                .iter()
                .any(|t| t.starts_with("demo://resource/dynamic/text/")),
            admin,
            "{who}: {templates:?}"
        );
        assert!(
            !templates.iter().any(|t| t.contains("/dynamic/blob/")),
            "{who}: a template no block lists: {templates:?}"
        );
        let mut prompts = list_all(&mut p, 300, "prompts/list", "prompts", "name");
        prompts.sort();
        let want: &[&str] = if admin {
            &["args-prompt", "simple-prompt"]
        } else {
            &["simple-prompt"]
        };
        assert_eq!(prompts, want, "{who}");
        // Requests: as the lists say.
        let v = request(
            &mut p,
            400,
            "resources/read",
            serde_json::json!({"uri": "demo://resource/static/document/architecture.md"}),
        );
        assert_eq!(v["error"]["code"], -32003, "{v}");
        let v = request(
            &mut p,
            401,
            "resources/read",
            serde_json::json!({"uri": "demo://resource/dynamic/text/1"}),
        );
        if admin {
            assert!(v["result"]["contents"].is_array(), "{v}");
        } else {
            assert_eq!(v["error"]["code"], -32002, "{v}");
        }
        let v = request(
            &mut p,
            402,
            "resources/read",
            serde_json::json!({"uri": "demo://resource/dynamic/blob/1"}),
        );
        assert_eq!(v["error"]["code"], -32003, "{v}");
        assert!(
            v["error"]["message"]
                .as_str()
                .unwrap()
                .contains("is not permitted by policy"),
            "{v}"
        );
        let v = request(
            &mut p,
            403,
            "prompts/get",
            serde_json::json!({"name": "args-prompt", "arguments": {"city": "Rome"}}),
        );
        if admin {
            assert!(v["result"]["messages"].is_array(), "{v}");
        } else {
            assert_eq!(v["error"]["code"], -32003, "{v}");
            assert!(
                v["error"]["message"].as_str().unwrap().contains("hidden"),
                "{v}"
            );
        }
        let (code, stderr) = p.finish();
        assert_eq!(code, 0, "{stderr}");
    }
}

/// `explain` shows a per-caller hide of a resource for the caller given
/// with `--claims`, and an approval rule on a resource.
#[test]
fn explain_shows_per_caller_hides_and_approvals_of_resources() {
    let fixtures = common::root().join("tests/fixtures/surfaces");
    let run = |file: &str, args: &[&str]| {
        let out = std::process::Command::new(common::portcullis())
            .arg("explain")
            .arg("-c")
            .arg(fixtures.join(file))
            .args(args)
            .output()
            .unwrap();
        String::from_utf8_lossy(&out.stdout).into_owned()
    };
    let uri = "file:///srv/admin/k";
    let out = run(
        "surfaces-allowlist.policy",
        &[
            "--resource",
            uri,
            "--claims",
            r#"{"sub":"alice","iss":"x","groups":["staff"]}"#,
        ],
    );
    assert!(out.contains("hidden   by hide resource[0]"), "{out}");
    assert!(
        out.contains(r#"Resource "file:///srv/admin/k" is hidden by policy"#),
        "{out}"
    );
    let out = run(
        "surfaces-allowlist.policy",
        &[
            "--resource",
            uri,
            "--claims",
            r#"{"sub":"root","iss":"x","groups":["admins"]}"#,
        ],
    );
    assert!(out.contains("does not hide it from this caller"), "{out}");
    assert!(out.contains("result   ALLOW"), "{out}");
    let out = run(
        "surfaces-approval.policy",
        &["--resource", "file:///srv/finance/q3.csv"],
    );
    assert!(
        out.contains(r#"APPROVAL REQUIRED by rule "Finance files need a human""#),
        "{out}"
    );
    assert!(
        out.contains("ask: an operator (out of band); timeout 1h"),
        "{out}"
    );
}
