//! Human approval of resources and prompts (docs/surfaces.md, approval.md):
//! the real binary in front of the real server-everything (every byte it
//! receives tapped). `resources/read`, `resources/subscribe` and
//! `prompts/get` an approval rule catches are held (never forwarded),
//! answered with JSON-RPC error -32003 carrying the approval in `data`,
//! decided by an operator from another process (`portcullis approvals`) or
//! by the client's user (`elicitation/create`), and forwarded once approved.

mod common;

use std::path::Path;
use std::process::Command;
use std::time::{Duration, Instant};

use common::{Proxy, portcullis, root, temp_dir};
use serde_json::{Value, json};

const DOC: &str = "demo://resource/static/document/architecture.md";

fn policy(dir: &Path, via: &str) -> String {
    let p = dir.join("everything.policy");
    std::fs::write(
        &p,
        format!(
            r#"server everything {{
  resource "demo://resource/static/document/*" {{
    approve "Documents need a human" via {via} timeout 10m
  }}
  prompt args-prompt {{
    deny "Not Berlin" when args.city == "Berlin"
    approve "Paris needs a human" when args.city == "Paris" via {via} timeout 10m
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

fn request(p: &mut Proxy, id: u64, method: &str, params: Value) -> Value {
    let line = json!({"jsonrpc": "2.0", "id": id, "method": method, "params": params});
    p.send(&line.to_string());
    let answer = p.response(&id.to_string());
    serde_json::from_str(&answer).unwrap_or_else(|e| panic!("{e}: {answer}"))
}

/// The pending approval an answer carries: its id, after checking the
/// error's code, message and data.
fn pending(v: &Value, message: &str) -> String {
    assert_eq!(v["error"]["code"], -32003, "{v}");
    let data = &v["error"]["data"];
    let a = &data["dev.portcullis/approval"];
    assert_eq!(a["status"], "pending", "{v}");
    let id = a["id"].as_str().unwrap().to_string();
    assert!(id.starts_with("apr_") && id.len() == 36, "{id}");
    let expires = a["expires"].as_str().unwrap();
    assert_eq!(
        v["error"]["message"],
        format!("[APPROVAL REQUIRED] {message} (approval {id}, expires {expires})"),
        "{v}"
    );
    assert_eq!(
        a["approve_command"],
        format!("portcullis approvals approve {id}")
    );
    assert!(
        a["instructions"]
            .as_str()
            .unwrap()
            .contains("retry the identical request"),
        "{v}"
    );
    // The decision beside it, as for any refused resource or prompt request.
    assert_eq!(
        data["dev.portcullis/decision"]["outcome"], "approval_required",
        "{v}"
    );
    id
}

/// Requests of `method` the server received.
fn received(p: &Proxy, method: &str) -> usize {
    let needle = format!("\"method\":\"{method}\"");
    p.server_received()
        .iter()
        .filter(|l| l.contains(&needle))
        .count()
}

fn received_at_least(p: &Proxy, method: &str, n: usize) -> usize {
    let deadline = Instant::now() + Duration::from_secs(5);
    loop {
        let got = received(p, method);
        if got >= n || Instant::now() >= deadline {
            return got;
        }
        std::thread::sleep(Duration::from_millis(20));
    }
}

#[test]
fn resources_and_prompts_are_held_for_an_operator_then_forwarded_once() {
    let dir = temp_dir("approval-surfaces-operator");
    let policy = policy(&dir, "operator");
    let state = dir.join("state");
    let log = dir.join("decisions.jsonl");
    let mut p = Proxy::everything(
        "approval-surfaces-operator-proxy",
        &[
            "-c",
            &policy,
            "--state-dir",
            state.to_str().unwrap(),
            "--audit-log",
            log.to_str().unwrap(),
            "--log-level",
            "error",
        ],
    );
    p.initialize();

    // Held, and the identical request while pending gets the same id.
    let id = pending(
        &request(&mut p, 1, "resources/read", json!({"uri": DOC})),
        "Documents need a human",
    );
    let again = pending(
        &request(&mut p, 2, "resources/read", json!({"uri": DOC})),
        "Documents need a human",
    );
    assert_eq!(again, id);
    // The fingerprint covers the method: a subscription is its own request.
    let sub = pending(
        &request(&mut p, 3, "resources/subscribe", json!({"uri": DOC})),
        "Documents need a human",
    );
    assert_ne!(sub, id);
    assert_eq!(
        received(&p, "resources/read"),
        0,
        "a held read reached the server"
    );
    assert_eq!(received(&p, "resources/subscribe"), 0);

    // The operator sees it, named by its URI.
    let (code, out, err) = approvals(&state, &["list"]);
    assert_eq!(code, 0, "{err}");
    assert!(
        out.contains(&id) && out.contains(&format!("resource:{DOC}")),
        "{out}"
    );
    let (code, out, err) = approvals(&state, &["approve", &id, "--by", "ops-alice"]);
    assert_eq!(code, 0, "{err}");
    assert!(out.contains(&format!("Approved {id}")), "{out}");

    // The identical retry (spelt otherwise: the same normalised URI) is
    // decided again as approved and forwarded: the document.
    let spelt = "DEMO://resource/static/./document/architecture.md";
    let ok = request(&mut p, 4, "resources/read", json!({"uri": spelt}));
    assert!(ok["result"]["contents"][0]["text"].is_string(), "{ok}");
    assert_eq!(received_at_least(&p, "resources/read", 1), 1);
    // Consumed: the next read is asked again.
    let next = pending(
        &request(&mut p, 5, "resources/read", json!({"uri": DOC})),
        "Documents need a human",
    );
    assert_ne!(next, id);
    // The approved read did not approve the subscription.
    let still = pending(
        &request(&mut p, 6, "resources/subscribe", json!({"uri": DOC})),
        "Documents need a human",
    );
    assert_eq!(still, sub);

    // A prompt: held by its arguments; denied by the operator with a reason.
    let paris = json!({"name": "args-prompt", "arguments": {"city": "Paris"}});
    let pid = pending(
        &request(&mut p, 7, "prompts/get", paris.clone()),
        "Paris needs a human",
    );
    let (code, _, err) = approvals(&state, &["deny", &pid, "--reason", "not today"]);
    assert_eq!(code, 0, "{err}");
    let refused = request(&mut p, 8, "prompts/get", paris.clone());
    assert_eq!(refused["error"]["code"], -32003, "{refused}");
    assert_eq!(
        refused["error"]["message"],
        format!(
            "[POLICY DENIED] Paris needs a human (approval {pid} denied by {}: not today)",
            refused["error"]["data"]["dev.portcullis/approval"]["decided_by"]
                .as_str()
                .unwrap()
        ),
        "{refused}"
    );
    assert_eq!(
        refused["error"]["data"]["dev.portcullis/approval"]["status"],
        "denied"
    );
    // Other arguments: a deny rule first, else no approval needed.
    let berlin = request(
        &mut p,
        9,
        "prompts/get",
        json!({"name": "args-prompt", "arguments": {"city": "Berlin"}}),
    );
    assert_eq!(
        berlin["error"]["message"], "[POLICY DENIED] Not Berlin",
        "{berlin}"
    );
    let rome = request(
        &mut p,
        10,
        "prompts/get",
        json!({"name": "args-prompt", "arguments": {"city": "Rome"}}),
    );
    assert!(rome["result"]["messages"].is_array(), "{rome}");
    assert_eq!(
        received_at_least(&p, "prompts/get", 1),
        1,
        "only Rome reached the server"
    );
    assert!(
        !p.server_received()
            .iter()
            .any(|l| l.contains("Paris") || l.contains("Berlin")),
        "a held or denied prompt reached the server"
    );

    let (code, stderr) = p.finish();
    assert_eq!(code, 0, "{stderr}");
    let text = std::fs::read_to_string(&log).unwrap();
    let stages: Vec<(String, String)> = text
        .lines()
        .map(|l| serde_json::from_str::<Value>(l).unwrap())
        .filter(|v| v["type"] == "approval")
        .map(|v| {
            (
                v["stage"].as_str().unwrap().to_string(),
                v["tool"].as_str().unwrap().to_string(),
            )
        })
        .collect();
    let r = format!("resource:{DOC}");
    let want: Vec<(String, String)> = [
        ("requested", r.as_str()),
        ("requested", r.as_str()),
        ("granted", r.as_str()),
        ("requested", r.as_str()),
        ("requested", "prompt:args-prompt"),
        ("declined", "prompt:args-prompt"),
    ]
    .iter()
    .map(|(a, b)| (a.to_string(), b.to_string()))
    .collect();
    assert_eq!(stages, want, "{text}");
}

/// A client with the `elicitation` capability over raw stdio: its user is
/// asked; accepted, the held request is forwarded; declined, refused.
#[test]
fn resources_and_prompts_are_asked_in_band_over_stdio() {
    let dir = temp_dir("approval-surfaces-elicit");
    let policy = policy(&dir, "client");
    let mut p = Proxy::everything(
        "approval-surfaces-elicit-proxy",
        &["-c", &policy, "--log-level", "error"],
    );
    p.send(
        r#"{"jsonrpc":"2.0","id":0,"method":"initialize","params":{"protocolVersion":"2025-06-18","capabilities":{"elicitation":{}},"clientInfo":{"name":"raw","version":"1"}}}"#,
    );
    let init = p.response("0");
    assert!(init.contains("\"result\""), "{init}");
    p.send(r#"{"jsonrpc":"2.0","method":"notifications/initialized"}"#);

    let ask = |p: &mut Proxy| -> Value {
        let deadline = Instant::now() + Duration::from_secs(10);
        loop {
            if let Some(i) = p.seen.iter().position(|l| l.contains("elicitation/create")) {
                return serde_json::from_str(&p.seen.remove(i)).unwrap();
            }
            let line = p
                .next_line(deadline.saturating_duration_since(Instant::now()))
                .expect("an elicitation request");
            p.seen.push(line);
        }
    };
    // A read: asked, accepted, forwarded once.
    p.send(
        &json!({"jsonrpc":"2.0","id":1,"method":"resources/read","params":{"uri": DOC}})
            .to_string(),
    );
    let q = ask(&mut p);
    let text = q["params"]["message"].as_str().unwrap();
    assert!(
        text.contains(&format!("everything/resource:{DOC}"))
            && text.contains("Documents need a human"),
        "{q}"
    );
    assert_eq!(
        received(&p, "resources/read"),
        0,
        "forwarded before the user answered"
    );
    let eid = q["id"].as_str().unwrap();
    p.send(&format!(
        r#"{{"jsonrpc":"2.0","id":"{eid}","result":{{"action":"accept","content":{{"approve":true}}}}}}"#
    ));
    let ok: Value = serde_json::from_str(&p.response("1")).unwrap();
    assert!(ok["result"]["contents"][0]["text"].is_string(), "{ok}");
    assert_eq!(received_at_least(&p, "resources/read", 1), 1);

    // A prompt: asked, declined: refused with -32003, never forwarded.
    p.send(&json!({"jsonrpc":"2.0","id":2,"method":"prompts/get","params":{"name":"args-prompt","arguments":{"city":"Paris"}}}).to_string());
    let q = ask(&mut p);
    assert!(
        q["params"]["message"]
            .as_str()
            .unwrap()
            .contains("\"city\": \"Paris\""),
        "{q}"
    );
    let eid = q["id"].as_str().unwrap();
    p.send(&format!(
        r#"{{"jsonrpc":"2.0","id":"{eid}","result":{{"action":"decline"}}}}"#
    ));
    let no: Value = serde_json::from_str(&p.response("2")).unwrap();
    assert_eq!(no["error"]["code"], -32003, "{no}");
    assert!(
        no["error"]["message"]
            .as_str()
            .unwrap()
            .starts_with("[APPROVAL DECLINED] Paris needs a human"),
        "{no}"
    );
    assert_eq!(
        no["error"]["data"]["dev.portcullis/approval"]["channel"],
        "client"
    );
    assert_eq!(
        no["error"]["data"]["dev.portcullis/approval"]["status"],
        "declined"
    );
    assert_eq!(received(&p, "prompts/get"), 0);
    let (code, stderr) = p.finish();
    assert_eq!(code, 0, "{stderr}");
}

/// A client that cannot ask (no `elicitation`): a rule that asks the
/// client only refuses the request, never forwards it.
#[test]
fn a_client_only_rule_refuses_a_resource_when_the_client_cannot_ask() {
    let dir = temp_dir("approval-surfaces-noask");
    let policy = policy(&dir, "client");
    let mut p = Proxy::everything("approval-surfaces-noask-proxy", &["-c", &policy]);
    p.initialize();
    let v = request(&mut p, 1, "resources/read", json!({"uri": DOC}));
    assert_eq!(v["error"]["code"], -32003, "{v}");
    assert!(
        v["error"]["message"]
            .as_str()
            .unwrap()
            .contains("this client cannot ask"),
        "{v}"
    );
    assert_eq!(received(&p, "resources/read"), 0);
    let (code, stderr) = p.finish();
    assert_eq!(code, 0, "{stderr}");
}

/// `--approval-errors intercept`: a held resource request gets Intercept's
/// error, as a held tool call does.
#[test]
fn intercepts_error_format_for_a_held_resource() {
    let dir = temp_dir("approval-surfaces-intercept");
    let policy = policy(&dir, "operator");
    let mut p = Proxy::everything(
        "approval-surfaces-intercept-proxy",
        &["-c", &policy, "--approval-errors", "intercept"],
    );
    p.initialize();
    let v = request(&mut p, 1, "resources/read", json!({"uri": DOC}));
    assert_eq!(v["error"]["code"], -32003, "{v}");
    assert_eq!(
        v["error"]["message"],
        "[INTERCEPT APPROVAL REQUIRED] Documents need a human"
    );
    let data = &v["error"]["data"];
    assert_eq!(data["tool"], format!("resource:{DOC}"), "{v}");
    assert!(
        data["approval_id"].as_str().unwrap().starts_with("apr_"),
        "{v}"
    );
    assert_eq!(data["retryable"], true);
    assert_eq!(received(&p, "resources/read"), 0);
    let (code, stderr) = p.finish();
    assert_eq!(code, 0, "{stderr}");
}
