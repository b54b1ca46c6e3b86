//! `portcullis ui` in a real browser: Debian's Chromium driven by
//! playwright-core (tests/ui/browser.js), against the real binary serving a
//! copy of the default policy, a real scan of server-everything and the
//! decision log of a real proxy run; and (tests/ui/catalogue.js) against
//! the catalogue-form policy directory a real `portcullis init` wrote.
//! Needs `scripts/deps` (chromium, playwright-core in .deps/browser,
//! server-everything); fails, never skips, when they are missing.

mod common;

use std::io::{BufRead, BufReader, Read, Write};
use std::net::TcpStream;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::time::Duration;

use common::Proxy;

/// Stops the ui server when the test ends, however it ends.
struct Served(Child);

impl Drop for Served {
    fn drop(&mut self) {
        let _ = self.0.kill();
        let _ = self.0.wait();
    }
}

/// `portcullis ui ARGS`, and the URL it printed.
fn serve(args: &[&str]) -> (Served, String) {
    let mut child = Command::new(common::portcullis())
        .arg("ui")
        .args(args)
        .current_dir(common::root())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .expect("start portcullis ui");
    let mut line = String::new();
    BufReader::new(child.stdout.take().unwrap())
        .read_line(&mut line)
        .expect("read the URL");
    let url = line
        .trim()
        .strip_prefix("portcullis ui: ")
        .unwrap_or_else(|| panic!("no URL printed: {line:?}"))
        .to_string();
    (Served(child), url)
}

/// One raw HTTP/1.1 request; returns the status code.
fn status_of(url: &str, req: &str) -> u16 {
    request(url, req).0
}

/// One raw HTTP/1.1 request (`{host}` replaced); returns the status code and the whole response.
fn request(url: &str, request: &str) -> (u16, String) {
    let addr = url
        .strip_prefix("http://")
        .and_then(|r| r.split('/').next())
        .unwrap();
    let mut s = TcpStream::connect(addr).unwrap();
    s.set_read_timeout(Some(Duration::from_secs(5))).unwrap();
    let request = request.replace("{host}", addr);
    s.write_all(request.as_bytes()).unwrap();
    let mut response = String::new();
    let _ = s.read_to_string(&mut response);
    let code = response
        .split(' ')
        .nth(1)
        .and_then(|c| c.parse().ok())
        .unwrap_or_else(|| panic!("no status line: {response:?}"));
    (code, response)
}

/// A JSON POST with the token in its header.
fn post_json(url: &str, path: &str, body: &str) -> (u16, String) {
    let token = url.split("token=").nth(1).unwrap();
    request(
        url,
        &format!(
            "POST {path} HTTP/1.1\r\nHost: {{host}}\r\nX-Portcullis-Token: {token}\r\nContent-Type: application/json\r\nContent-Length: {}\r\nConnection: close\r\n\r\n{body}",
            body.len()
        ),
    )
}

fn validate(dir: &Path) -> (bool, String) {
    let out = Command::new(common::portcullis())
        .arg("validate")
        .arg(dir)
        .output()
        .unwrap();
    (
        out.status.success(),
        String::from_utf8_lossy(&out.stdout).into_owned() + &String::from_utf8_lossy(&out.stderr),
    )
}

/// A policy directory: the default policy, its tests, and a real scan of
/// server-everything saved where `portcullis init` saves it.
fn policy_dir() -> PathBuf {
    let dir = common::temp_dir("ui");
    let pol = dir.join("policies");
    std::fs::create_dir_all(pol.join(".scan")).unwrap();
    for f in ["everything.yaml", "everything.test.yaml"] {
        std::fs::copy(common::root().join("policies/default").join(f), pol.join(f)).unwrap();
    }
    let scan = dir.join("scan/everything.yaml");
    std::fs::create_dir_all(scan.parent().unwrap()).unwrap();
    let out = Command::new(common::portcullis())
        .args(["scan", "-o"])
        .arg(&scan)
        .arg("--")
        .arg("node")
        .arg(common::server_everything())
        .output()
        .unwrap();
    assert!(
        out.status.success(),
        "scan: {}",
        String::from_utf8_lossy(&out.stderr)
    );
    std::fs::copy(
        dir.join("scan/everything.tools.json"),
        pol.join(".scan/everything.json"),
    )
    .unwrap();
    pol
}

#[test]
fn the_page_in_a_real_browser() {
    let pol = policy_dir();
    let policy = pol.join("everything.yaml");
    let original = std::fs::read_to_string(&policy).unwrap();

    // A real proxy run with a decision log: one allowed call, one denial.
    let log = pol.parent().unwrap().join("decisions.jsonl");
    let mut proxy = Proxy::everything(
        "ui-proxy",
        &[
            "-c",
            policy.to_str().unwrap(),
            "--audit-log",
            log.to_str().unwrap(),
        ],
    );
    proxy.initialize();
    assert!(!common::is_denial(&proxy.call(
        1,
        "echo",
        r#"{"message":"hi"}"#
    )));
    assert!(common::is_denial(&proxy.call(
        2,
        "gzip-file-as-resource",
        r#"{"name":"x","data":"https://example.com"}"#
    )));
    let (code, err) = proxy.finish();
    assert_eq!(code, 0, "{err}");

    let (_served, url) = serve(&[
        "--policy-dir",
        pol.to_str().unwrap(),
        "--audit-log",
        log.to_str().unwrap(),
        "--port",
        "0",
    ]);
    assert!(url.starts_with("http://127.0.0.1:"), "{url}");
    let token = url.split("token=").nth(1).unwrap();
    assert_eq!(token.len(), 32, "128 bits, in hex");

    // Without the token, or with it only in the URL for a change: refused.
    assert_eq!(
        status_of(
            &url,
            "GET / HTTP/1.1\r\nHost: {host}\r\nConnection: close\r\n\r\n"
        ),
        401
    );
    assert_eq!(
        status_of(
            &url,
            &format!(
                "GET /api/servers?token={token} HTTP/1.1\r\nHost: {{host}}\r\nConnection: close\r\n\r\n"
            )
        ),
        200
    );
    let body = r#"{"server":"everything","tool":"echo","effect":"deny"}"#;
    let post = |headers: &str| {
        status_of(
            &url,
            &format!(
                "POST /api/save?token={token} HTTP/1.1\r\nHost: {{host}}\r\nContent-Type: application/json\r\n{headers}Content-Length: {}\r\nConnection: close\r\n\r\n{body}",
                body.len()
            ),
        )
    };
    assert_eq!(
        post(""),
        401,
        "the token in the URL does not authorise a change"
    );
    assert_eq!(
        post(&format!(
            "X-Portcullis-Token: {token}\r\nOrigin: http://evil.example\r\n"
        )),
        403,
        "another origin"
    );
    assert_eq!(
        status_of(
            &url,
            &format!(
                "GET /?token={token} HTTP/1.1\r\nHost: rebound.example\r\nConnection: close\r\n\r\n"
            )
        ),
        403,
        "a Host that is not the loopback address (DNS rebinding)"
    );
    assert_eq!(std::fs::read_to_string(&policy).unwrap(), original);

    // The browser.
    let seen = browse("browser.js", &url);
    assert_eq!(seen["before"], "allow");
    assert_eq!(seen["after"], "deny");
    assert_eq!(
        seen["groups"],
        serde_json::json!(["read (9)", "write (4)"]),
        "grouped by the scan's risk"
    );
    assert!(
        seen["echo_rule"]
            .as_str()
            .unwrap()
            .ends_with("everything.yaml:33:9"),
        "{seen}"
    );
    assert!(
        seen["description"]
            .as_str()
            .unwrap()
            .contains("Echoes back the input string")
            && seen["description"]
                .as_str()
                .unwrap()
                .contains("message: string (required)"),
        "{seen}"
    );
    assert!(
        seen["validate"].as_str().unwrap().contains("valid"),
        "{seen}"
    );
    assert!(seen["tests"].as_str().unwrap().contains("ok"), "{seen}");
    assert!(
        seen["diff_added"]
            .as_array()
            .unwrap()
            .iter()
            .any(|l| l == "+   toggle-simulated-logging:"),
        "{seen}"
    );
    assert!(
        seen["invalid_validate"]
            .as_str()
            .unwrap()
            .contains("rate_limit count must be a positive integer"),
        "{seen}"
    );
    assert_eq!(seen["invalid_save_disabled"], true);
    assert_eq!(seen["invalid_save"]["status"], 422);
    assert!(
        seen["denial"]
            .as_str()
            .unwrap()
            .contains("no remote fetches"),
        "{seen}"
    );
    assert_eq!(seen["denied_total"], "1");
    assert!(seen["bars"].as_u64().unwrap() >= 1, "{seen}");
    assert_eq!(seen["no_token"], serde_json::json!([401, 401]));
    assert_eq!(
        seen["errors"],
        serde_json::json!([]),
        "no errors in the page"
    );
    assert_eq!(
        seen["script_errors"],
        serde_json::json!([]),
        "no script errors"
    );

    // On disk: exactly the new entry, appended; every other byte as it was;
    // the invalid edit changed nothing; the directory validates.
    let saved = std::fs::read_to_string(&policy).unwrap();
    assert_eq!(
        saved,
        format!(
            "{original}\n  toggle-simulated-logging:\n    rules:\n      - name: \"deny toggle-simulated-logging\"\n        action: deny\n        on_deny: \"toggle-simulated-logging is denied by policy\"\n"
        )
    );
    let (ok, report) = validate(&pol);
    assert!(ok, "{report}");
}

#[test]
fn a_non_loopback_bind_needs_allow_remote() {
    let out = Command::new(common::portcullis())
        .args(["ui", "--bind", "0.0.0.0", "--policy-dir"])
        .arg(common::root().join("policies/default"))
        .output()
        .unwrap();
    assert_eq!(out.status.code(), Some(2));
    let err = String::from_utf8_lossy(&out.stderr);
    assert!(
        err.contains("not a loopback address") && err.contains("--allow-remote"),
        "{err}"
    );
}

#[test]
fn a_policy_language_edit_goes_through_the_formatter() {
    let dir = common::temp_dir("ui-dsl");
    for f in ["github.policy", "github.test.yaml", "org-baseline.policy"] {
        std::fs::copy(
            common::root().join("policies/examples").join(f),
            dir.join(f),
        )
        .unwrap();
    }
    let policy = dir.join("github.policy");
    let original = std::fs::read_to_string(&policy).unwrap();
    let (_served, url) = serve(&["--policy-dir", dir.to_str().unwrap()]);

    // A tool that shares its block cannot be edited alone: refused, nothing written.
    let (code, body) = post_json(
        &url,
        "/api/save",
        r#"{"server":"github","tool":"create_issue","effect":"deny"}"#,
    );
    assert_eq!(code, 422, "{body}");
    assert!(
        body.contains("shares a block with add_issue_comment"),
        "{body}"
    );
    assert_eq!(std::fs::read_to_string(&policy).unwrap(), original);

    // An invalid limit: the compiler's diagnostic, nothing written.
    let (code, body) = post_json(
        &url,
        "/api/save",
        r#"{"server":"github","tool":"create_repository","effect":"limit","max":"ten","window":"hour"}"#,
    );
    assert_eq!(code, 422, "{body}");
    assert!(
        body.contains("github.policy:"),
        "a diagnostic with its location: {body}"
    );
    assert_eq!(std::fs::read_to_string(&policy).unwrap(), original);

    // A valid one: the block is replaced, every comment stays, the file is
    // canonically formatted and the directory validates.
    let (code, body) = post_json(
        &url,
        "/api/save",
        r#"{"server":"github","tool":"create_repository","effect":"limit","max":"5","window":"hour","accept_failing_tests":true}"#,
    );
    assert_eq!(code, 200, "{body}");
    let saved = std::fs::read_to_string(&policy).unwrap();
    assert_eq!(
        saved,
        original.replace(
            "    allow when args.private == true else \"New repositories must be private\"\n",
            "    limit 5 per hour\n"
        )
    );
    let fmt = Command::new(common::portcullis())
        .args(["fmt", "--check"])
        .arg(&policy)
        .output()
        .unwrap();
    assert!(
        fmt.status.success(),
        "{}",
        String::from_utf8_lossy(&fmt.stderr)
    );
    let (ok, report) = validate(&dir);
    assert!(ok, "{report}");
}

/// `node tests/ui/SCRIPT URL`: what the script saw (its last stdout line).
fn browse(script: &str, url: &str) -> serde_json::Value {
    let out = Command::new("node")
        .arg(common::root().join("tests/ui").join(script))
        .arg(url)
        .env(
            "NODE_PATH",
            common::root().join(".deps/browser/node_modules"),
        )
        .output()
        .expect("run node");
    let stdout = String::from_utf8_lossy(&out.stdout);
    assert!(
        out.status.success(),
        "the browser script failed (run scripts/deps for chromium and playwright-core):\n{stdout}\n{}",
        String::from_utf8_lossy(&out.stderr)
    );
    serde_json::from_str(stdout.lines().last().unwrap()).unwrap()
}

/// The adoption path: `portcullis init` on a client configuration pointing
/// at the real server-everything writes the catalogue-form policy and its
/// saved scan; `portcullis ui` over that directory shows the tools by risk
/// with the scan's descriptions, edits one (allow -> deny) in that entry
/// only, and refuses an invalid limit with the compiler's diagnostic.
#[test]
fn init_then_the_page() {
    let t = common::temp_dir("ui-init");
    let (home, xdg, project) = (t.join("home"), t.join("xdg"), t.join("project"));
    std::fs::create_dir_all(home.join(".cursor")).unwrap();
    std::fs::create_dir_all(&xdg).unwrap();
    std::fs::create_dir_all(&project).unwrap();
    std::fs::write(
        home.join(".cursor/mcp.json"),
        format!(
            "{{\"mcpServers\": {{\"everything\": {{\"command\": \"node\", \"args\": [{}]}}}}}}",
            serde_json::to_string(&common::server_everything()).unwrap()
        ),
    )
    .unwrap();
    let out = Command::new(common::portcullis())
        .args(["init", "--client", "cursor"])
        .current_dir(&project)
        .env("HOME", &home)
        .env("XDG_CONFIG_HOME", &xdg)
        .stdin(Stdio::null())
        .output()
        .unwrap();
    assert!(
        out.status.success(),
        "init: {}{}",
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    );
    let pol = project.join("policies/default");
    let policy = pol.join("everything.yaml");
    let original = std::fs::read_to_string(&policy).unwrap();
    assert!(
        original.contains("\ndefault: deny\n") && !original.contains("version:"),
        "init writes the catalogue form:\n{original}"
    );
    assert!(pol.join(".scan/everything.json").is_file());

    let (_served, url) = serve(&["--policy-dir", pol.to_str().unwrap(), "--port", "0"]);
    let seen = browse("catalogue.js", &url);
    let text = |k: &str| seen[k].as_str().unwrap_or_default().to_string();

    // What the page showed.
    assert!(text("meta").contains("catalogue"), "{seen}");
    assert_eq!(seen["edit_enabled"], true, "{seen}");
    assert_eq!(
        seen["groups"],
        serde_json::json!(["read (9)", "write (4)"]),
        "grouped by the scan's risk"
    );
    assert_eq!(seen["write_effect"], "limit 30/60s (sliding)", "{seen}");
    assert!(
        text("description").contains("Echoes back the input string")
            && text("description").contains("message: string (required)"),
        "the saved scan's description and parameters: {seen}"
    );
    assert!(text("validate").contains("valid"), "{seen}");
    assert!(
        text("tests").contains("FAIL  read tools are allowed")
            && text("tests").contains("got       deny: echo is off for this team"),
        "init's tests pin echo as allowed: they fail, and say why: {seen}"
    );
    assert!(text("preview_status").contains("tests fail"), "{seen}");
    assert_eq!(seen["save_label"], "Save anyway", "{seen}");
    assert_eq!(seen["after"], "deny", "{seen}");
    assert!(
        text("after_rule").contains("everything.yaml:"),
        "the rule and its file:line: {seen}"
    );
    assert_eq!(seen["prefilled"], serde_json::json!(["30", "minute"]));
    assert!(
        text("invalid_validate").contains("rate_limit max must be a whole number"),
        "{seen}"
    );
    assert!(
        text("invalid_validate").contains("everything.yaml:"),
        "{seen}"
    );
    assert_eq!(seen["invalid_save_disabled"], true);
    assert_eq!(seen["invalid_save"]["status"], 422);
    assert_eq!(seen["script_errors"], serde_json::json!([]));

    // On disk: only echo's entry changed (init's comments, blank lines and
    // every other entry byte for byte); the invalid limit wrote nothing;
    // `portcullis validate` accepts the directory.
    let saved = std::fs::read_to_string(&policy).unwrap();
    let entry = "  echo:\n    rules:\n      - action: allow\n";
    assert_eq!(original.matches(entry).count(), 1);
    assert_eq!(
        saved,
        original.replace(
            entry,
            "  echo:\n    rules:\n      - action: deny\n        reason: \"echo is off for this team\"\n"
        )
    );
    let (ok, report) = validate(&pol);
    assert!(ok, "{report}");
    let _ = std::fs::remove_dir_all(&t);
}
