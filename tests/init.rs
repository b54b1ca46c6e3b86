//! `portcullis init` against fixture configurations of every client format,
//! written into a temporary HOME, XDG config directory and project, pointing
//! at the real server-everything and server-filesystem: the dry run writes
//! nothing; init writes policies that validate and whose tests pass,
//! rewrites the configurations surgically (comments kept), skips a server
//! that cannot start and refuses a file it cannot parse; the rewritten
//! configuration starts a real MCP session through Portcullis that enforces
//! the written policy; a second run changes nothing; `--undo` restores
//! every file byte for byte.

mod common;

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};

use common::{Proxy, is_denial, portcullis, root, server_everything, temp_dir};

fn server_filesystem() -> PathBuf {
    let p = root().join(".deps/node_modules/@modelcontextprotocol/server-filesystem/dist/index.js");
    assert!(
        p.exists(),
        "{} is missing: run scripts/deps (CI does) to install @modelcontextprotocol/server-filesystem",
        p.display()
    );
    p
}

struct Fixture {
    home: PathBuf,
    xdg: PathBuf,
    project: PathBuf,
}

impl Fixture {
    /// Runs `portcullis ARGS` in the project with the fixture HOME; (exit code, stdout, stderr).
    fn run(&self, args: &[&str]) -> (i32, String, String) {
        let out = Command::new(portcullis())
            .args(args)
            .current_dir(&self.project)
            .env("HOME", &self.home)
            .env("XDG_CONFIG_HOME", &self.xdg)
            .stdin(Stdio::null())
            .output()
            .expect("run portcullis");
        (
            out.status.code().unwrap_or(-1),
            String::from_utf8_lossy(&out.stdout).into_owned(),
            String::from_utf8_lossy(&out.stderr).into_owned(),
        )
    }
}

/// Every file under `dir` (recursively) with its bytes.
fn snapshot(dir: &Path) -> BTreeMap<PathBuf, Vec<u8>> {
    let mut out = BTreeMap::new();
    let mut stack = vec![dir.to_path_buf()];
    while let Some(d) = stack.pop() {
        for e in std::fs::read_dir(&d).unwrap() {
            let p = e.unwrap().path();
            if p.is_dir() {
                stack.push(p);
            } else {
                out.insert(p.clone(), std::fs::read(&p).unwrap());
            }
        }
    }
    out
}

fn write(path: &Path, text: &str) {
    std::fs::create_dir_all(path.parent().unwrap()).unwrap();
    std::fs::write(path, text).unwrap();
}

#[test]
fn init_scans_writes_policies_rewrites_configs_and_undoes() {
    let t = temp_dir("init");
    let f = Fixture {
        home: t.join("home"),
        xdg: t.join("xdg"),
        project: t.join("project"),
    };
    std::fs::create_dir_all(&f.project).unwrap();
    let everything = server_everything().display().to_string();
    let filesystem = server_filesystem().display().to_string();
    let project = f.project.display().to_string();
    let q = |s: &str| serde_json::to_string(s).unwrap();
    // A port nothing listens on: the remote server cannot be reached.
    let closed = {
        let l = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
        l.local_addr().unwrap().port()
    };

    // One fixture per client format.
    let desktop = f.xdg.join("Claude/claude_desktop_config.json");
    write(
        &desktop,
        &format!(
            "{{\n  \"mcpServers\": {{\n    \"everything\": {{\n      \"command\": \"node\",\n      \"args\": [{}]\n    }}\n  }},\n  \"globalShortcut\": \"Ctrl+Space\"\n}}\n",
            q(&everything)
        ),
    );
    let claude_code_project = f.project.join(".mcp.json");
    write(
        &claude_code_project,
        &format!(
            "{{\n  \"mcpServers\": {{\n    \"fs\": {{\n      \"type\": \"stdio\",\n      \"command\": \"node\",\n      \"args\": [\n        {},\n        {}\n      ],\n      \"env\": {{\"FS_NOTE\": \"kept\"}}\n    }}\n  }}\n}}\n",
            q(&filesystem),
            q(&project)
        ),
    );
    let claude_code_user = f.home.join(".claude.json");
    write(
        &claude_code_user,
        &format!(
            "{{\"numStartups\": 3, \"projects\": {{{}: {{\"allowedTools\": [], \"mcpServers\": {{\"broken\": {{\"command\": \"/nonexistent/mcp-server\", \"args\": []}}}}}}}}}}\n",
            q(&project)
        ),
    );
    let cursor_user = f.home.join(".cursor/mcp.json");
    write(
        &cursor_user,
        &format!(
            "{{\n  \"mcpServers\": {{\n    \"remote\": {{\n      \"url\": \"http://127.0.0.1:{closed}/mcp\",\n      \"headers\": {{\"Authorization\": \"Bearer s3cr3t-header-value\"}}\n    }}\n  }}\n}}\n"
        ),
    );
    // Unparsable: a missing comma on line 4.
    let cursor_project = f.project.join(".cursor/mcp.json");
    write(
        &cursor_project,
        "{\n  \"mcpServers\": {\n    \"a\": {\"command\": \"x\"}\n    \"b\": {\"command\": \"y\"}\n  }\n}\n",
    );
    let vscode = f.project.join(".vscode/mcp.json");
    write(
        &vscode,
        &format!(
            "{{\n  // Servers of this workspace.\n  \"inputs\": [],\n  \"servers\": {{\n    \"everything\": {{\n      \"type\": \"stdio\",\n      \"command\": \"node\",\n      \"args\": [{}], /* the reference server */\n    }},\n  }},\n}}\n",
            q(&everything)
        ),
    );
    let windsurf = f.home.join(".codeium/windsurf/mcp_config.json");
    write(
        &windsurf,
        &format!(
            "{{\n  \"mcpServers\": {{\n    \"fs\": {{\n      \"command\": \"node\",\n      \"args\": [{}, {}]\n    }}\n  }}\n}}\n",
            q(&filesystem),
            q(&project)
        ),
    );
    let home_before = snapshot(&f.home);
    let xdg_before = snapshot(&f.xdg);
    let project_before = snapshot(&f.project);
    let bin = portcullis().display().to_string();

    // --dry-run: the servers and a diff, nothing written.
    let (code, out, err) = f.run(&["init", "--dry-run", "--portcullis", &bin]);
    assert_eq!(
        code, 1,
        "the unparsable file makes the run fail\n{out}\n{err}"
    );
    for name in ["everything", "fs", "broken", "remote"] {
        assert!(out.contains(name), "{name} not listed:\n{out}");
    }
    assert!(out.contains("(headers: Authorization)"), "{out}");
    assert!(
        !out.contains("s3cr3t") && !err.contains("s3cr3t"),
        "a header value was printed:\n{out}\n{err}"
    );
    assert!(
        out.contains(&format!("+      \"command\": {},", q(&bin)))
            && out.contains("\"--server\", \"everything\", \"--\", \"node\""),
        "no diff:\n{out}"
    );
    assert!(out.contains("nothing was written"), "{out}");
    assert_eq!(snapshot(&f.home), home_before);
    assert_eq!(snapshot(&f.xdg), xdg_before);
    assert_eq!(
        snapshot(&f.project),
        project_before,
        "--dry-run wrote something"
    );

    // init, the clients starting a development build with the policy files.
    let (code, out, err) = f.run(&[
        "init",
        "--portcullis",
        &bin,
        "--policy-files",
        "--timeout",
        "20",
    ]);
    assert_eq!(
        code, 1,
        "the unparsable file makes the run fail\n{out}\n{err}"
    );
    let line = format!("{}:4:5:", cursor_project.display());
    assert!(
        err.contains(&line) && err.contains("left untouched"),
        "{err}"
    );
    assert!(err.contains("skipped broken"), "{err}");
    assert!(err.contains("skipped remote"), "{err}");
    assert!(!out.contains("s3cr3t") && !err.contains("s3cr3t"));

    // The files that could not be used are byte for byte as they were.
    for p in [&cursor_project, &cursor_user, &claude_code_user] {
        let before = home_before
            .get(p)
            .or_else(|| project_before.get(p))
            .unwrap();
        assert_eq!(
            &std::fs::read(p).unwrap(),
            before,
            "{} changed",
            p.display()
        );
        assert!(!Path::new(&format!("{}.portcullis-backup", p.display())).exists());
    }

    // The policies, their tests, the tool schemas and the saved scans.
    let dir = f.project.join("policies/default");
    for file in [
        "everything.yaml",
        "everything.test.yaml",
        "everything.tools.json",
        ".scan/everything.json",
        "fs.yaml",
        "fs.test.yaml",
        "fs.tools.json",
        ".scan/fs.json",
    ] {
        assert!(dir.join(file).is_file(), "{file} missing; {out}\n{err}");
    }
    assert!(!dir.join("broken.yaml").exists() && !dir.join("remote.yaml").exists());
    let fs_policy = std::fs::read_to_string(dir.join("fs.yaml")).unwrap();
    assert!(fs_policy.contains("default: deny"), "{fs_policy}");
    let scan: serde_json::Value =
        serde_json::from_str(&std::fs::read_to_string(dir.join(".scan/fs.json")).unwrap()).unwrap();
    assert_eq!(scan["format"], "portcullis-scan/1");
    assert_eq!(scan["server"], "fs");
    let tools = scan["tools"].as_array().unwrap();
    let tool = |n: &str| tools.iter().find(|t| t["name"] == n).unwrap();
    assert_eq!(tool("write_file")["effect"], "deny");
    assert_eq!(tool("write_file")["risk"], "destructive");
    assert_eq!(tool("read_text_file")["effect"], "allow");
    assert_eq!(tool("create_directory")["effect"], "limit");
    assert!(tool("read_text_file")["definition"]["inputSchema"]["properties"]["path"].is_object());

    let (code, vout, verr) = f.run(&["validate", "--deny-warnings", "policies/default"]);
    assert_eq!(code, 0, "{vout}\n{verr}");
    let (code, tout, terr) = f.run(&["test", "policies/default"]);
    assert_eq!(code, 0, "{tout}\n{terr}");
    assert!(
        tout.contains("ok    destructive tools are denied")
            && tout.contains("ok    write tools: 30 calls per 60 seconds"),
        "{tout}"
    );

    // The rewritten configurations: every other key and comment kept.
    let desktop_new = std::fs::read_to_string(&desktop).unwrap();
    let desktop_json: serde_json::Value = serde_json::from_str(&desktop_new).unwrap();
    assert_eq!(desktop_json["globalShortcut"], "Ctrl+Space");
    let vscode_new = std::fs::read_to_string(&vscode).unwrap();
    assert!(
        vscode_new.contains("// Servers of this workspace.")
            && vscode_new.contains("/* the reference server */")
    );
    assert!(
        vscode_new.contains(&format!("\"command\": {},", q(&bin))),
        "{vscode_new}"
    );
    let windsurf_new = std::fs::read_to_string(&windsurf).unwrap();
    assert!(windsurf_new.contains("\"-c\""), "{windsurf_new}");
    for p in [&desktop, &claude_code_project, &vscode, &windsurf] {
        assert!(
            Path::new(&format!("{}.portcullis-backup", p.display())).is_file(),
            "no backup of {}",
            p.display()
        );
    }

    // A real MCP session through the rewritten Claude Code entry.
    let cc: serde_json::Value =
        serde_json::from_str(&std::fs::read_to_string(&claude_code_project).unwrap()).unwrap();
    let entry = &cc["mcpServers"]["fs"];
    assert_eq!(entry["command"], bin.as_str());
    assert_eq!(entry["env"]["FS_NOTE"], "kept");
    let args: Vec<String> = entry["args"]
        .as_array()
        .unwrap()
        .iter()
        .map(|a| a.as_str().unwrap().to_string())
        .collect();
    assert_eq!(
        args[..2],
        ["-c".to_string(), dir.join("fs.yaml").display().to_string()]
    );
    assert_eq!(args[2..], ["--", "node", &filesystem, &project]);
    let arg_refs: Vec<&str> = args.iter().map(String::as_str).collect();
    let mut proxy = Proxy::command("init-session", &arg_refs);
    let init = proxy.initialize();
    assert!(init.contains("\"result\""), "{init}");
    proxy.send(r#"{"jsonrpc":"2.0","id":2,"method":"tools/list"}"#);
    let list = proxy.response("2");
    assert!(
        list.contains("\"write_file\"") && list.contains("\"list_allowed_directories\""),
        "{list}"
    );
    let allowed = proxy.call(3, "list_allowed_directories", "{}");
    assert!(
        !is_denial(&allowed) && allowed.contains(&project),
        "{allowed}"
    );
    let target = f.project.join("written-by-agent.txt");
    let denied = proxy.call(
        4,
        "write_file",
        &format!(
            r#"{{"path":{},"content":"x"}}"#,
            q(&target.display().to_string())
        ),
    );
    assert!(
        is_denial(&denied) && denied.contains("can delete or overwrite"),
        "{denied}"
    );
    let (_, _) = proxy.finish();
    assert!(!target.exists(), "the denied call reached the server");

    // A second run changes nothing (no double wrapping, policies kept).
    let home_after = snapshot(&f.home);
    let xdg_after = snapshot(&f.xdg);
    let project_after = snapshot(&f.project);
    let (_, out2, err2) = f.run(&[
        "init",
        "--portcullis",
        &bin,
        "--policy-files",
        "--timeout",
        "5",
    ]);
    assert!(
        out2.contains("kept") && out2.contains("already through portcullis"),
        "{out2}\n{err2}"
    );
    assert_eq!(snapshot(&f.xdg), xdg_after);
    assert_eq!(snapshot(&f.home), home_after);
    assert_eq!(
        snapshot(&f.project),
        project_after,
        "a second init changed files"
    );

    // --undo: every configuration byte for byte as it was; the policies stay.
    let (code, out, err) = f.run(&["init", "--undo"]);
    assert_eq!(code, 0, "{out}\n{err}");
    assert_eq!(snapshot(&f.home), home_before);
    assert_eq!(snapshot(&f.xdg), xdg_before);
    let mut project_now = snapshot(&f.project);
    project_now.retain(|p, _| !p.starts_with(f.project.join("policies")));
    assert_eq!(project_now, project_before, "--undo left a difference");
    let _ = std::fs::remove_dir_all(&t);
}

/// The default rewrite, `--server NAME`, starts the server through the
/// policy compiled into the binary the configuration names (here the test
/// binary, which embeds policies/default/everything.yaml: get-env hidden).
#[test]
fn init_default_rewrite_runs_the_embedded_policy() {
    let t = temp_dir("init-server");
    let f = Fixture {
        home: t.join("home"),
        xdg: t.join("xdg"),
        project: t.join("project"),
    };
    std::fs::create_dir_all(&f.project).unwrap();
    let everything = server_everything().display().to_string();
    let config = f.home.join(".cursor/mcp.json");
    write(
        &config,
        &format!(
            "{{\"mcpServers\": {{\"everything\": {{\"command\": \"node\", \"args\": [{}]}}}}}}",
            serde_json::to_string(&everything).unwrap()
        ),
    );
    let bin = portcullis().display().to_string();
    let (code, out, err) = f.run(&["init", "--client", "cursor", "--portcullis", &bin]);
    assert_eq!(code, 0, "{out}\n{err}");
    let cfg: serde_json::Value =
        serde_json::from_str(&std::fs::read_to_string(&config).unwrap()).unwrap();
    let entry = &cfg["mcpServers"]["everything"];
    assert_eq!(entry["command"], bin.as_str());
    let args: Vec<&str> = entry["args"]
        .as_array()
        .unwrap()
        .iter()
        .map(|a| a.as_str().unwrap())
        .collect();
    assert_eq!(args, ["--server", "everything", "--", "node", &everything]);
    let mut proxy = Proxy::command("init-server-session", &args);
    proxy.initialize();
    proxy.send(r#"{"jsonrpc":"2.0","id":2,"method":"tools/list"}"#);
    let list = proxy.response("2");
    assert!(
        list.contains("\"echo\"") && !list.contains("\"get-env\""),
        "{list}"
    );
    let echo = proxy.call(3, "echo", r#"{"message":"hi"}"#);
    assert!(!is_denial(&echo) && echo.contains("hi"), "{echo}");
    let env = proxy.call(4, "get-env", "{}");
    assert!(is_denial(&env), "{env}");
    proxy.finish();
    let _ = std::fs::remove_dir_all(&t);
}

/// Review 7 (F4): `init --dry-run` masked header values by their decoded
/// text only, so a value written with an escape showed in clear.
#[test]
fn dry_run_masks_header_values_that_have_escapes() {
    let t = temp_dir("init-dry-run-escapes");
    let f = Fixture {
        home: t.join("home"),
        xdg: t.join("xdg"),
        project: t.join("project"),
    };
    std::fs::create_dir_all(&f.home).unwrap();
    std::fs::create_dir_all(&f.xdg).unwrap();
    write(
        &f.project.join(".cursor/mcp.json"),
        r##"{"mcpServers": {
  "q": {"url": "https://h.example/mcp", "headers": {"Authorization": "Bearer s3cr3t\"quoted"}},
  "b": {"url": "https://h.example/mcp", "headers": {"X-Api-Key": "s3cr3t\\back"}},
  "u": {"url": "https://h.example/mcp", "headers": {"X-Other": "s3cr3t\u0041esc"}}
}}
"##,
    );
    let bin = portcullis().display().to_string();
    let (_, out, err) = f.run(&[
        "init",
        "--dry-run",
        "--client",
        "cursor",
        "--portcullis",
        &bin,
    ]);
    assert!(
        out.contains("PORTCULLIS_HEADER_AUTHORIZATION"),
        "no diff:\n{out}\n{err}"
    );
    assert!(
        !out.contains("s3cr3t") && !err.contains("s3cr3t"),
        "a header value was printed:\n{out}\n{err}"
    );
}
