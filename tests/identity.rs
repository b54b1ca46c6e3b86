//! Who is calling, without a token (issue 14): over stdio the real binary's
//! decision log names the OS user running it (`iss` = `local`), or the
//! claims of `--principal-claims FILE`; `portcullis status` counts calls per
//! caller; a hostile `sub` is escaped in the log, cut in stderr, and in no
//! metric label; unusable claims files stop the start with exit 2 and a
//! positioned error, before any server starts. (Token callers over HTTP:
//! tests/oauth.rs.)

mod common;

use std::io::Write;
use std::path::Path;
use std::process::Command;
use std::time::Duration;

use common::{Proxy, free_port, is_denial, scrape};

/// The decision log's `tool_call` lines, parsed (each must be one JSON object).
fn tool_calls(log: &Path) -> Vec<serde_json::Value> {
    assert!(common::wait_for_file(log, Duration::from_secs(10)));
    std::fs::read_to_string(log)
        .unwrap()
        .lines()
        .map(|l| {
            serde_json::from_str::<serde_json::Value>(l).unwrap_or_else(|e| panic!("{e}: {l}"))
        })
        .filter(|v| v["type"] == "tool_call")
        .collect()
}

/// The name the system's user database gives this process's uid.
fn os_user() -> String {
    nix::unistd::User::from_uid(nix::unistd::getuid())
        .unwrap()
        .expect("the test runs as a user with a passwd entry")
        .name
}

fn status_json(log: &Path) -> serde_json::Value {
    let out = Command::new(common::portcullis())
        .args(["status", "--json", "--audit-log"])
        .arg(log)
        .output()
        .unwrap();
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    serde_json::from_slice(&out.stdout).unwrap()
}

#[test]
fn over_stdio_the_decision_log_names_the_local_user() {
    let dir = common::temp_dir("identity-local");
    let log = dir.join("decisions.jsonl");
    let mut p = Proxy::everything(
        "identity-local",
        &[
            "--server",
            "everything",
            "--audit-log",
            log.to_str().unwrap(),
        ],
    );
    p.initialize();
    assert!(!is_denial(&p.call(1, "echo", r#"{"message":"hi"}"#)));
    assert!(is_denial(&p.call(2, "get-sum", r#"{"a":5000,"b":1}"#)));
    let (code, stderr) = p.finish();
    assert_eq!(code, 0, "{stderr}");
    let user = os_user();
    let calls = tool_calls(&log);
    assert_eq!(calls.len(), 2, "{calls:?}");
    for c in &calls {
        assert_eq!(c["sub"], user.as_str(), "{c}");
        assert_eq!(c["iss"], "local", "{c}");
    }
    assert!(
        stderr.contains(&format!("denied get-sum for {user:?} (iss \"local\")")),
        "{stderr}"
    );
    let s = status_json(&log);
    assert_eq!(
        s["callers"],
        serde_json::json!([{"sub": user, "iss": "local", "calls": 2, "denied": 1}]),
        "{s}"
    );
    assert_eq!(s["last_denials"][0]["sub"], user.as_str(), "{s}");
    let _ = std::fs::remove_dir_all(&dir);
}

#[test]
fn principal_claims_replace_the_local_user_and_only_sub_and_iss_are_logged() {
    let dir = common::temp_dir("identity-claims");
    let log = dir.join("decisions.jsonl");
    let claims = dir.join("claims.json");
    std::fs::write(
        &claims,
        r#"{
  "sub": "ci-agent-7",
  "iss": "https://idp.test/realms/mcp",
  "scope": "mcp:tools",
  "groups": ["finance"],
  "email": "secret-address@example.com"
}
"#,
    )
    .unwrap();
    let mut p = Proxy::everything(
        "identity-claims",
        &[
            "--server",
            "everything",
            "--audit-log",
            log.to_str().unwrap(),
            "--principal-claims",
            claims.to_str().unwrap(),
        ],
    );
    p.initialize();
    assert!(!is_denial(&p.call(1, "echo", r#"{"message":"hi"}"#)));
    let (code, stderr) = p.finish();
    assert_eq!(code, 0, "{stderr}");
    let calls = tool_calls(&log);
    assert_eq!(calls.len(), 1);
    assert_eq!(calls[0]["sub"], "ci-agent-7");
    assert_eq!(calls[0]["iss"], "https://idp.test/realms/mcp");
    let text = std::fs::read_to_string(&log).unwrap();
    for other in ["finance", "secret-address", "mcp:tools", &os_user()] {
        assert!(!text.contains(other), "{other} in {text}");
    }
    let _ = std::fs::remove_dir_all(&dir);
}

#[test]
fn a_hostile_sub_is_escaped_in_the_log_cut_in_stderr_and_in_no_metric_label() {
    let dir = common::temp_dir("identity-hostile");
    let log = dir.join("decisions.jsonl");
    let claims = dir.join("claims.json");
    let hostile = format!(
        "HOSTILE\"}} injected=\"1\",\n# HELP fake\r\nportcullis_calls_total{{x=\"y\"}} 99\\\u{1b}[2J\u{2028}{}",
        "Z".repeat(10_000)
    );
    std::fs::write(
        &claims,
        serde_json::json!({"sub": hostile, "iss": "local\"\nHOSTILE-ISS"}).to_string(),
    )
    .unwrap();
    let port = free_port();
    let metrics = format!("127.0.0.1:{port}");
    let mut p = Proxy::everything(
        "identity-hostile",
        &[
            "--server",
            "everything",
            "--audit-log",
            log.to_str().unwrap(),
            "--principal-claims",
            claims.to_str().unwrap(),
            "--metrics",
            &metrics,
        ],
    );
    p.initialize();
    p.send(r#"{"jsonrpc":"2.0","id":"list","method":"tools/list"}"#);
    p.response("\"list\"");
    assert!(!is_denial(&p.call(1, "echo", r#"{"message":"hi"}"#)));
    assert!(is_denial(&p.call(2, "get-sum", r#"{"a":5000,"b":1}"#)));
    let body = scrape(port);
    assert!(
        body.contains(
            "portcullis_calls_total{server=\"everything\",tool=\"echo\",effect=\"allow\"} 1"
        ),
        "{body}"
    );
    for needle in ["HOSTILE", "ZZZZ", "injected", "fake"] {
        assert!(!body.contains(needle), "{needle} in the metrics:\n{body}");
    }
    for line in body.lines().filter(|l| !l.starts_with('#')) {
        let labels = line.split_once('{').map_or("", |(_, rest)| rest);
        for key in labels.split(',').filter_map(|kv| kv.split_once('=')) {
            assert!(
                [
                    "server",
                    "tool",
                    "effect",
                    "rule",
                    "rule_label",
                    "source",
                    "outcome",
                    "result",
                    "event",
                    "method",
                    "le",
                    "policy_digest"
                ]
                .contains(&key.0),
                "an unexpected label {key:?} in {line}"
            );
        }
    }
    let (code, stderr) = p.finish();
    assert_eq!(code, 0, "{stderr}");
    let calls = tool_calls(&log);
    assert_eq!(calls.len(), 2);
    for c in &calls {
        assert_eq!(c["sub"], hostile.as_str(), "the sub round-trips exactly");
        assert_eq!(c["iss"], "local\"\nHOSTILE-ISS");
    }
    let text = std::fs::read_to_string(&log).unwrap();
    assert_eq!(
        text.lines().count(),
        text.matches("\"type\":").count(),
        "one line per event: newlines in the sub are escaped"
    );
    assert!(!text.contains('\u{1b}') && !text.contains('\u{2028}'));
    let denied = stderr
        .lines()
        .find(|l| l.contains("denied get-sum"))
        .unwrap_or_else(|| panic!("{stderr}"));
    assert!(denied.len() < 400, "the caller is cut in stderr: {denied}");
    assert!(!stderr.contains('\u{1b}'), "no terminal escapes: {stderr}");
    let _ = std::fs::remove_dir_all(&dir);
}

#[test]
fn unusable_claims_files_stop_the_start_with_exit_2_and_a_position() {
    let dir = common::temp_dir("identity-bad");
    let started = dir.join("server-started");
    let run = |args: &[&str]| {
        let out = Command::new(common::portcullis())
            .args(["--server", "everything"])
            .args(args)
            .args(["--", "sh", "-c", "touch \"$0\"", started.to_str().unwrap()])
            .output()
            .unwrap();
        (
            out.status.code(),
            String::from_utf8_lossy(&out.stderr).into_owned(),
        )
    };
    let file = dir.join("claims.json");
    let f = file.to_str().unwrap();
    let cases: [(&str, &str, &str); 7] = [
        (
            "sub: alice\n",
            "not one JSON object: expected a JSON value",
            ":1:1",
        ),
        (
            "{\n  \"sub\": \"alice\",\n  \"iss\": \"local\"\n",
            "not one JSON object: expected ',' or '}' in object",
            ":4:1",
        ),
        (
            "{\n  \"sub\": \"alice\",\n  \"iss\": \"local\",\n  \"sub\": \"root\"\n}\n",
            "not one JSON object: duplicate object key",
            ":4:3",
        ),
        (
            "{\"sub\": \"alice\", \"Sub\": \"root\", \"iss\": \"local\"}",
            "object keys differ only in letter case",
            ":1:",
        ),
        (
            "\n  {\"iss\": \"local\"}",
            "the claims have no `sub` string",
            ":2:3",
        ),
        ("[\"alice\"]", "the claims are not a JSON object", ":1:1"),
        (
            "{\"sub\": \"alice\", \"iss\": \"\"}",
            "an empty `iss`",
            ":1:25",
        ),
    ];
    for (text, message, position) in cases {
        std::fs::write(&file, text).unwrap();
        let (code, err) = run(&["--principal-claims", f]);
        assert_eq!(code, Some(2), "{text:?}: {err}");
        assert!(err.contains(message), "{text:?}: {err}");
        assert!(
            err.contains(&format!("--> {f}{position}")),
            "{text:?}: {err}"
        );
        assert!(
            err.contains("= help: the file holds one JSON object"),
            "{err}"
        );
    }
    let (code, err) = run(&[
        "--principal-claims",
        dir.join("missing.json").to_str().unwrap(),
    ]);
    assert_eq!(code, Some(2), "{err}");
    assert!(
        err.contains(&format!(
            "cannot read the --principal-claims file {}",
            dir.join("missing.json").display()
        )),
        "{err}"
    );
    // A token decides who calls: the flag is refused with the JWT flags.
    std::fs::write(&file, r#"{"sub":"alice","iss":"local"}"#).unwrap();
    let (code, err) = run(&[
        "--transport",
        "http",
        "--port",
        "0",
        "--principal-claims",
        f,
        "--jwks-file",
        f,
        "--issuer",
        "https://idp.test",
    ]);
    assert_eq!(code, Some(2), "{err}");
    assert!(
        err.contains("'--principal-claims <FILE>' cannot be used with '--jwks-file <FILE>'"),
        "{err}"
    );
    assert!(!started.exists(), "no server was started");
    let _ = std::fs::remove_dir_all(&dir);
}

/// `portcullis --audit-log LOG -- cat` run as a uid without a passwd entry
/// (setuid as root, else in a user namespace), with `user` as `$USER` or
/// none; one call; the `sub` its decision-log line names.
fn sub_of_a_uid_without_a_name(user: Option<&str>) -> String {
    use std::os::unix::fs::PermissionsExt;
    use std::os::unix::process::CommandExt;
    const UID: u32 = 54_321;
    assert!(
        nix::unistd::User::from_uid(UID.into()).unwrap().is_none(),
        "uid {UID} has no passwd entry here"
    );
    let dir = common::temp_dir("identity-uid");
    std::fs::set_permissions(&dir, std::fs::Permissions::from_mode(0o777)).unwrap();
    let log = dir.join("decisions.jsonl");
    let mut cmd = if nix::unistd::geteuid().is_root() {
        let mut c = Command::new(common::portcullis());
        c.uid(UID).gid(UID);
        c
    } else {
        let mut c = Command::new("unshare");
        c.arg(format!("--map-user={UID}"))
            .arg(format!("--map-group={UID}"))
            .arg(common::portcullis());
        c
    };
    cmd.args(["--server", "everything", "--audit-log"])
        .arg(&log)
        .args(["--", "cat"])
        .env_remove("USER")
        .stdin(std::process::Stdio::piped())
        .stdout(std::process::Stdio::null())
        .stderr(std::process::Stdio::piped());
    if let Some(u) = user {
        cmd.env("USER", u);
    }
    let mut child = cmd.spawn().unwrap();
    child
        .stdin
        .take()
        .unwrap()
        .write_all(br#"{"jsonrpc":"2.0","id":1,"method":"tools/call","params":{"name":"echo","arguments":{"message":"x"}}}
"#)
        .unwrap();
    let out = child.wait_with_output().unwrap();
    assert_eq!(
        out.status.code(),
        Some(0),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    let calls = tool_calls(&log);
    assert_eq!(calls.len(), 1, "{calls:?}");
    assert_eq!(calls[0]["iss"], "local");
    let _ = std::fs::remove_dir_all(&dir);
    calls[0]["sub"].as_str().unwrap().to_string()
}

#[test]
fn a_uid_without_a_passwd_entry_is_named_by_user_else_by_number() {
    assert_eq!(sub_of_a_uid_without_a_name(Some("builder")), "builder");
    assert_eq!(sub_of_a_uid_without_a_name(None), "54321");
}
