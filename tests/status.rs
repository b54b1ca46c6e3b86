//! `portcullis status` over decision logs: a recorded log (two real proxy
//! sessions with server-everything, plus a partial last line) as insta
//! snapshots, an empty directory, and a live proxy seen running then exited.

mod common;

use std::process::Command;
use std::time::Duration;

use common::Proxy;

fn status(args: &[&str]) -> (i32, String, String) {
    let out = Command::new(common::portcullis())
        .arg("status")
        .args(args)
        .current_dir(common::root())
        .output()
        .expect("run portcullis status");
    (
        out.status.code().unwrap_or(-1),
        String::from_utf8(out.stdout).unwrap(),
        String::from_utf8(out.stderr).unwrap(),
    )
}

#[test]
fn a_recorded_log_as_tables() {
    let (code, out, err) = status(&[
        "--audit-log",
        "tests/fixtures/audit",
        "--now",
        "2026-11-26T03:04:00Z",
    ]);
    assert_eq!(code, 0, "{err}");
    insta::assert_snapshot!(out);
}

#[test]
fn a_recorded_log_as_json() {
    let (code, out, err) = status(&[
        "--audit-log",
        "tests/fixtures/audit/agent-a.jsonl",
        "--audit-log",
        "tests/fixtures/audit/agent-b.jsonl",
        "--now",
        "2026-11-26T03:04:00Z",
        "--json",
    ]);
    assert_eq!(code, 0, "{err}");
    let v: serde_json::Value = serde_json::from_str(&out).expect("status --json prints JSON");
    assert_eq!(v["calls"], 16);
    assert_eq!(v["denied"], 10);
    assert_eq!(v["unreadable_lines"], 1);
    insta::assert_snapshot!(out);
}

#[test]
fn an_empty_directory_says_so() {
    let dir = common::temp_dir("status-empty");
    let (code, out, err) = status(&["--audit-log", dir.to_str().unwrap()]);
    assert_eq!(code, 0, "{err}");
    assert_eq!(
        out,
        "No decision logs found: the directory holds no *.jsonl file.\nStart the proxy with --audit-log FILE to record its decisions.\n"
    );
    std::fs::write(dir.join("empty.jsonl"), "").unwrap();
    let (code, out, _) = status(&["--audit-log", dir.to_str().unwrap()]);
    assert_eq!(code, 0);
    assert!(out.starts_with("No decisions recorded in "), "{out}");
    let (code, _, err) = status(&["--audit-log", dir.join("nope.jsonl").to_str().unwrap()]);
    assert_eq!(code, 1);
    assert!(err.contains("no such file or directory"), "{err}");
}

#[test]
fn a_live_proxy_is_running_until_it_exits() {
    let dir = common::temp_dir("status-live");
    let log = dir.join("live.jsonl");
    let log_arg = log.to_str().unwrap().to_string();
    let mut p = Proxy::everything("status-live-proxy", &["--audit-log", &log_arg]);
    p.initialize();
    p.call(1, "get-sum", r#"{"a":1,"b":2}"#);
    p.call(2, "get-sum", r#"{"a":5000,"b":2}"#);
    let pid = p.child.id();
    // The log is written by a background thread: wait for both decisions.
    let deadline = std::time::Instant::now() + Duration::from_secs(10);
    while std::fs::read_to_string(&log)
        .unwrap_or_default()
        .lines()
        .count()
        < 3
    {
        assert!(
            std::time::Instant::now() < deadline,
            "the decisions were not logged"
        );
        std::thread::sleep(Duration::from_millis(20));
    }
    let text = std::fs::read_to_string(&log).unwrap();
    let startup = text.lines().next().unwrap();
    assert!(
        startup.contains(r#""type":"startup""#) && startup.contains(r#""process_start":""#),
        "the writer's identity beyond its pid: {startup}"
    );
    let (code, out, err) = status(&["--audit-log", &log_arg]);
    assert_eq!(code, 0, "{err}");
    let row = out
        .lines()
        .find(|l| l.trim_start().starts_with(&pid.to_string()))
        .unwrap_or_else(|| panic!("no row for pid {pid}: {out}"));
    assert!(
        row.contains("everything") && row.contains("running"),
        "{row}"
    );
    assert!(
        out.contains("Calls: 2 total, 1 allowed, 1 denied (50.0%)"),
        "{out}"
    );
    assert!(out.contains("small sums only"), "{out}");
    let (code, _) = p.finish();
    assert_eq!(code, 0);
    let (_, out, _) = status(&["--audit-log", &log_arg, "--json"]);
    let v: serde_json::Value = serde_json::from_str(&out).unwrap();
    assert_eq!(v["instances"][0]["state"], "exited (0)");
    assert_eq!(v["instances"][0]["pid"], pid);
}
