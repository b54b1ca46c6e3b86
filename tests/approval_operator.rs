//! Human approval, the operator flow (issue 13): the real binary in front of
//! the real server-everything (every byte it receives tapped), a client
//! without `elicitation`, approval requests in a SQLite `--state-dir`, and
//! `portcullis approvals` deciding them from another process.

mod common;

use std::path::Path;
use std::process::Command;
use std::time::Duration;

use common::{Proxy, is_denial, portcullis, root, temp_dir};

fn policy(dir: &Path, timeout: &str) -> String {
    let p = dir.join("everything.policy");
    std::fs::write(
        &p,
        format!(
            r#"server everything {{
  tool get-sum {{
    deny "No negative sums" when args.a < 0
    approve "Sums over 100 need a human" when args.a > 100 via operator timeout {timeout}
  }}
}}
"#
        ),
    )
    .unwrap();
    p.display().to_string()
}

fn approvals(state: &Path, args: &[&str]) -> (i32, String, String) {
    let out = Command::new(portcullis())
        .arg("approvals")
        .args(args)
        .arg("--state-dir")
        .arg(state)
        .current_dir(root())
        .output()
        .expect("run portcullis approvals");
    (
        out.status.code().unwrap_or(-1),
        String::from_utf8_lossy(&out.stdout).into_owned(),
        String::from_utf8_lossy(&out.stderr).into_owned(),
    )
}

fn proxy(name: &str, policy: &str, state: &Path, log: &Path) -> Proxy {
    let mut p = Proxy::everything(
        name,
        &[
            "-c",
            policy,
            "--state-dir",
            state.to_str().unwrap(),
            "--audit-log",
            log.to_str().unwrap(),
            "--log-level",
            "error",
        ],
    );
    p.initialize();
    p
}

/// The approval id an `[APPROVAL REQUIRED]` answer names.
fn approval_id(answer: &str) -> String {
    assert!(answer.contains("\"isError\":true"), "{answer}");
    assert!(
        answer.contains("[APPROVAL REQUIRED] Sums over 100 need a human (approval apr_"),
        "{answer}"
    );
    let v: serde_json::Value = serde_json::from_str(answer).unwrap();
    let meta = &v["result"]["_meta"]["dev.portcullis/approval"];
    let id = meta["id"].as_str().unwrap().to_string();
    assert_eq!(id.len(), 36, "{id}");
    assert_eq!(meta["status"], "pending");
    let text = v["result"]["content"][0]["text"].as_str().unwrap();
    let expires = meta["expires"].as_str().unwrap();
    assert!(
        text.ends_with(&format!("(approval {id}, expires {expires})")),
        "{text}"
    );
    assert!(
        meta["instructions"]
            .as_str()
            .unwrap()
            .contains(&format!("portcullis approvals approve {id}")),
        "{meta}"
    );
    id
}

fn calls(p: &Proxy) -> Vec<String> {
    p.server_received()
        .into_iter()
        .filter(|l| l.contains("\"tools/call\""))
        .collect()
}

#[test]
fn refused_with_an_id_approved_from_another_process_then_forwarded_exactly_once() {
    let dir = temp_dir("approval-operator");
    let policy = policy(&dir, "10m");
    let state = dir.join("state");
    let log = dir.join("decisions.jsonl");
    let mut p = proxy("approval-operator-proxy", &policy, &state, &log);

    // Held: refused with an id; the identical call while pending gets the same id.
    let id = approval_id(&p.call(1, "get-sum", r#"{"a":500,"b":1}"#));
    let again = approval_id(&p.call(2, "get-sum", r#"{"b":1, "a":500}"#));
    assert_eq!(again, id, "an identical pending call reuses its request");
    assert!(calls(&p).is_empty(), "the server never saw a held call");

    // The operator sees it, with its arguments.
    let (code, out, err) = approvals(&state, &["list"]);
    assert_eq!(code, 0, "{err}");
    assert!(out.contains(&id) && out.contains("pending"), "{out}");
    assert!(out.contains("everything/get-sum"), "{out}");
    let (code, out, err) = approvals(&state, &["show", &id, "--json"]);
    assert_eq!(code, 0, "{err}");
    let shown: serde_json::Value = serde_json::from_str(&out).unwrap();
    assert_eq!(shown["arguments"]["a"], 500);
    assert_eq!(shown["rule"], "Sums over 100 need a human");
    assert_eq!(shown["status"], "pending");

    // Approved from another process, with the decision logged.
    let (code, out, err) = approvals(
        &state,
        &[
            "approve",
            &id,
            "--by",
            "ops-alice",
            "--audit-log",
            log.to_str().unwrap(),
        ],
    );
    assert_eq!(code, 0, "{err}");
    assert!(out.contains(&format!("Approved {id}")), "{out}");
    // Deciding it again is an error.
    let (code, _, err) = approvals(&state, &["deny", &id]);
    assert_eq!(code, 1);
    assert!(err.contains("already approved"), "{err}");

    // The identical retry (keys in another order) is forwarded: the real sum.
    let ok = p.call(3, "get-sum", r#"{"b":1,"a":500}"#);
    assert!(!ok.contains("\"isError\":true"), "{ok}");
    assert!(ok.contains("501"), "{ok}");
    assert_eq!(calls(&p).len(), 1);
    // A second retry is asked again: a new request.
    let second = approval_id(&p.call(4, "get-sum", r#"{"a":500,"b":1}"#));
    assert_ne!(second, id);
    // Changed arguments after approval: asked again.
    let changed = approval_id(&p.call(5, "get-sum", r#"{"a":501,"b":1}"#));
    assert_ne!(changed, second);
    assert_eq!(calls(&p).len(), 1, "{:#?}", calls(&p));
    let (_, out, _) = approvals(&state, &["show", &id]);
    assert!(out.contains("status     consumed"), "{out}");

    // Denied with a reason: the retry is refused with it, and stays refused.
    let (code, _, err) = approvals(
        &state,
        &[
            "deny",
            &changed,
            "--reason",
            "not this week",
            "--audit-log",
            log.to_str().unwrap(),
        ],
    );
    assert_eq!(code, 0, "{err}");
    for n in [6, 7] {
        let refused = p.call(n, "get-sum", r#"{"a":501,"b":1}"#);
        assert!(is_denial(&refused), "{refused}");
        assert!(refused.contains("not this week"), "{refused}");
        assert!(refused.contains(&changed), "{refused}");
    }
    assert_eq!(calls(&p).len(), 1);

    // Unknown and malformed ids are clear errors.
    let (code, _, err) = approvals(&state, &["approve", "apr_0123456789abcdef0123456789abcdef"]);
    assert_eq!(code, 1);
    assert!(err.contains("no approval request apr_0123"), "{err}");
    let (code, _, err) = approvals(&state, &["approve", "forged"]);
    assert_eq!(code, 1);
    assert!(err.contains("is not an approval id"), "{err}");
    let (code, out, _) = approvals(&state, &["list", "--all", "--json"]);
    assert_eq!(code, 0);
    let all: Vec<serde_json::Value> = serde_json::from_str(&out).unwrap();
    assert_eq!(all.len(), 3, "{out}");

    let (_, stderr) = p.finish();
    let text = std::fs::read_to_string(&log).unwrap();
    let stages: Vec<String> = text
        .lines()
        .map(|l| serde_json::from_str::<serde_json::Value>(l).unwrap())
        .filter(|v| v["type"] == "approval")
        .map(|v| v["stage"].as_str().unwrap().to_string())
        .collect();
    assert_eq!(
        stages,
        [
            "requested",
            "approved",
            "granted",
            "requested",
            "requested",
            "denied",
            "declined",
            "declined"
        ],
        "{text}\n{stderr}"
    );
    assert!(text.contains("\"decided_by\":\"ops-alice\""), "{text}");
    let (code, out, _) = Command::new(portcullis())
        .args(["status", "--audit-log", log.to_str().unwrap()])
        .output()
        .map(|o| {
            (
                o.status.code(),
                String::from_utf8_lossy(&o.stdout).into_owned(),
                (),
            )
        })
        .unwrap();
    assert_eq!(code, Some(0));
    assert!(
        out.contains("Approvals: 1 approved, 2 declined, 1 denied, 1 granted, 3 requested"),
        "{out}"
    );
}

#[test]
fn an_expired_request_cannot_be_approved_and_an_unused_approval_lapses() {
    let dir = temp_dir("approval-expiry");
    let policy = policy(&dir, "1s");
    let state = dir.join("state");
    let log = dir.join("decisions.jsonl");
    let mut p = proxy("approval-expiry-proxy", &policy, &state, &log);

    let id = approval_id(&p.call(1, "get-sum", r#"{"a":500,"b":1}"#));
    std::thread::sleep(Duration::from_millis(1200));
    let (code, _, err) = approvals(&state, &["approve", &id]);
    assert_eq!(code, 1);
    assert!(err.contains("has expired"), "{err}");
    // Approved in time, but not used in time: the late retry is asked again.
    let id2 = approval_id(&p.call(2, "get-sum", r#"{"a":500,"b":1}"#));
    assert_ne!(id2, id);
    let (code, _, err) = approvals(&state, &["approve", &id2]);
    assert_eq!(code, 0, "{err}");
    std::thread::sleep(Duration::from_millis(1200));
    let id3 = approval_id(&p.call(3, "get-sum", r#"{"a":500,"b":1}"#));
    assert_ne!(id3, id2);
    assert!(calls(&p).is_empty(), "{:#?}", calls(&p));
    // The held calls already marked the lapsed ones; the last lapses now.
    let (code, out, _) = approvals(&state, &["expire"]);
    assert_eq!(code, 0);
    assert_eq!(out.trim(), "0 approval requests expired.", "{out}");
    std::thread::sleep(Duration::from_millis(1100));
    let (_, out, _) = approvals(&state, &["expire"]);
    assert_eq!(out.trim(), "1 approval request expired.", "{out}");
    let (_, out, _) = approvals(&state, &["show", &id3]);
    assert!(out.contains("status     expired"), "{out}");
    let (_, out, _) = approvals(&state, &["show", &id2]);
    assert!(out.contains("status     expired"), "{out}");
    p.finish();
}

#[test]
fn two_proxies_sharing_a_state_dir_race_to_consume_one_approval_and_one_wins() {
    let dir = temp_dir("approval-race");
    let policy = policy(&dir, "10m");
    let state = dir.join("state");
    let log = dir.join("decisions.jsonl");
    let mut a = proxy("approval-race-a", &policy, &state, &log);
    let mut b = proxy("approval-race-b", &policy, &state, &log);

    // Asked on one proxy, the identical call on the other names the same request.
    let id = approval_id(&a.call(1, "get-sum", r#"{"a":500,"b":2}"#));
    assert_eq!(approval_id(&b.call(1, "get-sum", r#"{"a":500,"b":2}"#)), id);
    let (code, _, err) = approvals(&state, &["approve", &id]);
    assert_eq!(code, 0, "{err}");

    // Both retry at once.
    let line = r#"{"jsonrpc":"2.0","id":2,"method":"tools/call","params":{"name":"get-sum","arguments":{"a":500,"b":2}}}"#;
    a.send(line);
    b.send(line);
    let answers = [a.response("2"), b.response("2")];
    let forwarded = answers
        .iter()
        .filter(|r| !r.contains("\"isError\":true"))
        .count();
    assert_eq!(forwarded, 1, "{answers:#?}");
    let asked: Vec<&String> = answers
        .iter()
        .filter(|r| r.contains("[APPROVAL REQUIRED]"))
        .collect();
    assert_eq!(asked.len(), 1, "{answers:#?}");
    assert_ne!(approval_id(asked[0]), id);
    assert_eq!(calls(&a).len() + calls(&b).len(), 1);
    a.finish();
    b.finish();
}

#[test]
fn intercepts_dedupe_window_bounds_how_long_a_pending_request_is_reused() {
    let dir = temp_dir("approval-dedupe");
    let policy = dir.join("everything.yaml");
    std::fs::write(
        &policy,
        r#"version: "1"
approvals:
  dedupe_window: 1s
tools:
  get-sum:
    rules:
      - name: "big sums"
        action: "require_approval"
        conditions:
          - path: "args.a"
            op: "gt"
            value: 100
        on_deny: "Sums over 100 need a human"
        approval_timeout: "10m"
"#,
    )
    .unwrap();
    let state = dir.join("state");
    let log = dir.join("decisions.jsonl");
    let mut p = proxy(
        "approval-dedupe-proxy",
        policy.to_str().unwrap(),
        &state,
        &log,
    );
    let first = approval_id(&p.call(1, "get-sum", r#"{"a":500,"b":1}"#));
    assert_eq!(
        approval_id(&p.call(2, "get-sum", r#"{"a":500,"b":1}"#)),
        first
    );
    std::thread::sleep(Duration::from_millis(1100));
    let second = approval_id(&p.call(3, "get-sum", r#"{"a":500,"b":1}"#));
    assert_ne!(second, first, "past the window: a new request");
    // The first is still pending and can be approved; the retry uses it once.
    let (code, _, err) = approvals(&state, &["approve", &first]);
    assert_eq!(code, 0, "{err}");
    let ok = p.call(4, "get-sum", r#"{"a":500,"b":1}"#);
    assert!(
        ok.contains("501") && !ok.contains("\"isError\":true"),
        "{ok}"
    );
    assert_eq!(calls(&p).len(), 1);
    p.finish();
}
