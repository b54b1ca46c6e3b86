//! `--metrics ADDR`: the real binary in front of the real server-everything,
//! a scripted session, then a scrape over real TCP: the counts are exactly
//! the calls made, by tool, effect and rule.

mod common;

use common::{Proxy, free_port, http_get_when_up, is_denial};

#[test]
fn a_scrape_shows_exactly_the_calls_made() {
    let port = free_port();
    let addr = format!("127.0.0.1:{port}");
    let mut p = Proxy::everything("metrics", &["--metrics", &addr]);
    p.initialize();
    p.send(r#"{"jsonrpc":"2.0","id":"list","method":"tools/list"}"#);
    let list = p.response("\"list\"");
    assert!(
        list.contains("get-sum") && !list.contains("get-env"),
        "{list}"
    );
    let mut id = 0;
    let mut call = |p: &mut Proxy, tool: &str, args: &str| {
        id += 1;
        p.call(id, tool, args)
    };
    for _ in 0..2 {
        assert!(!is_denial(&call(&mut p, "echo", r#"{"message":"hi"}"#)));
    }
    assert!(!is_denial(&call(&mut p, "get-sum", r#"{"a":1,"b":2}"#)));
    for _ in 0..3 {
        assert!(is_denial(&call(&mut p, "get-sum", r#"{"a":5000,"b":2}"#)));
    }
    assert!(is_denial(&call(&mut p, "get-env", "{}")));
    // A tool name the server never listed: counted as "(other)", whatever the agent invents.
    call(&mut p, "invented-tool-name", "{}");
    // A malformed call: refused before the policy.
    p.send(r#"{"jsonrpc":"2.0","id":99,"method":"tools/call","params":{"name":"echo","arguments":{"message":"a","message":"b"}}}"#);
    p.response("99");

    let (head, body) = http_get_when_up(port, "/metrics");
    assert!(head.starts_with("HTTP/1.1 200 OK"), "{head}");
    assert!(
        head.contains("content-type: text/plain; version=0.0.4"),
        "{head}"
    );
    let series = |name: &str| -> Vec<&str> {
        body.lines()
            .filter(|l| l.starts_with(name) && !l.starts_with('#'))
            .collect()
    };
    assert_eq!(
        series("portcullis_calls_total"),
        [
            r#"portcullis_calls_total{server="everything",tool="(other)",effect="allow"} 1"#,
            r#"portcullis_calls_total{server="everything",tool="(other)",effect="deny"} 1"#,
            r#"portcullis_calls_total{server="everything",tool="echo",effect="allow"} 2"#,
            r#"portcullis_calls_total{server="everything",tool="get-env",effect="deny"} 1"#,
            r#"portcullis_calls_total{server="everything",tool="get-sum",effect="allow"} 1"#,
            r#"portcullis_calls_total{server="everything",tool="get-sum",effect="deny"} 3"#,
        ],
        "{body}"
    );
    assert_eq!(
        series("portcullis_denials_total"),
        [
            r#"portcullis_denials_total{server="everything",rule="",rule_label="",source="",outcome="rejected"} 1"#,
            r#"portcullis_denials_total{server="everything",rule="(hidden)",rule_label="hide[0]",source="policies/default/everything.yaml:10:5",outcome="hidden"} 1"#,
            r#"portcullis_denials_total{server="everything",rule="small sums only",rule_label="tools.get-sum.rules[0]",source="policies/default/everything.yaml:21:9",outcome="rule"} 3"#,
        ],
        "{body}"
    );
    // Forwarded calls: 2 echo + 1 get-sum + 1 invented; tools/list and initialize are "other".
    assert!(
        body.contains(r#"portcullis_upstream_latency_seconds_count{server="everything",method="tools/call"} 4"#),
        "{body}"
    );
    assert!(
        body.contains(
            r#"portcullis_upstream_latency_seconds_count{server="everything",method="other"} 2"#
        ),
        "{body}"
    );
    assert!(
        body.contains(r#"portcullis_state_errors_total{server="everything"} 0"#),
        "{body}"
    );
    assert!(
        body.contains("portcullis_policy_info{server=\"everything\",policy_digest=\""),
        "{body}"
    );

    let (head, _) = http_get_when_up(port, "/other");
    assert!(head.starts_with("HTTP/1.1 404"), "{head}");
    let (code, err) = p.finish();
    assert_eq!(code, 0, "{err}");
    assert!(
        err.contains(&format!("metrics at http://{addr}/metrics")),
        "{err}"
    );
}

/// Resource and prompt decisions count by method and the pattern of the
/// first policy block matching the request, `(unmatched)` when none does:
/// never the URI or name the client sent, whatever it holds.
#[test]
fn resource_and_prompt_decisions_have_bounded_labels() {
    let dir = common::temp_dir("metrics-surfaces");
    let policy = dir.join("everything.policy");
    std::fs::write(
        &policy,
        r#"server everything {
  resource "demo://resource/static/document/architecture.md" {
    deny "Not this document"
  }
  resource "demo://resource/static/document/*" {}
  prompt args-prompt {
    deny "Not that city" when args.city == "Paris"
  }
}
"#,
    )
    .unwrap();
    let port = free_port();
    let addr = format!("127.0.0.1:{port}");
    let mut p = Proxy::everything(
        "metrics-surfaces",
        &["-c", policy.to_str().unwrap(), "--metrics", &addr],
    );
    p.initialize();
    let mut id = 0;
    let mut request = |p: &mut Proxy, method: &str, params: serde_json::Value| {
        id += 1;
        let line =
            serde_json::json!({"jsonrpc": "2.0", "id": id, "method": method, "params": params});
        p.send(&line.to_string());
        let v: serde_json::Value = serde_json::from_str(&p.response(&id.to_string())).unwrap();
        v
    };
    let doc = "demo://resource/static/document/architecture.md";
    let v = request(&mut p, "resources/read", serde_json::json!({"uri": doc}));
    assert_eq!(v["error"]["code"], -32003, "{v}");
    for _ in 0..2 {
        let v = request(
            &mut p,
            "resources/read",
            serde_json::json!({"uri": "demo://resource/static/document/extension.md"}),
        );
        assert!(
            v.get("error").is_none() || v["error"]["code"] != -32003,
            "{v}"
        );
    }
    request(
        &mut p,
        "resources/subscribe",
        serde_json::json!({"uri": "demo://resource/static/document/extension.md"}),
    );
    // A client-chosen URI and prompt name: counted as (unmatched).
    request(
        &mut p,
        "resources/read",
        serde_json::json!({"uri": "demo://invented/\"label\"/x"}),
    );
    request(
        &mut p,
        "prompts/get",
        serde_json::json!({"name": "invented\"prompt", "arguments": {}}),
    );
    let v = request(
        &mut p,
        "prompts/get",
        serde_json::json!({"name": "args-prompt", "arguments": {"city": "Paris"}}),
    );
    assert_eq!(v["error"]["code"], -32003, "{v}");
    let v = request(
        &mut p,
        "prompts/get",
        serde_json::json!({"name": "args-prompt", "arguments": {"city": "Rome"}}),
    );
    assert!(v["result"]["messages"].is_array(), "{v}");

    let (_, body) = http_get_when_up(port, "/metrics");
    let series = |name: &str| -> Vec<&str> {
        body.lines()
            .filter(|l| l.starts_with(name) && !l.starts_with('#'))
            .collect()
    };
    assert_eq!(
        series("portcullis_surface_requests_total"),
        [
            r#"portcullis_surface_requests_total{server="everything",method="prompts/get",block="(unmatched)",effect="allow"} 1"#,
            r#"portcullis_surface_requests_total{server="everything",method="prompts/get",block="args-prompt",effect="allow"} 1"#,
            r#"portcullis_surface_requests_total{server="everything",method="prompts/get",block="args-prompt",effect="deny"} 1"#,
            r#"portcullis_surface_requests_total{server="everything",method="resources/read",block="(unmatched)",effect="allow"} 1"#,
            r#"portcullis_surface_requests_total{server="everything",method="resources/read",block="demo://resource/static/document/*",effect="allow"} 2"#,
            r#"portcullis_surface_requests_total{server="everything",method="resources/read",block="demo://resource/static/document/architecture.md",effect="deny"} 1"#,
            r#"portcullis_surface_requests_total{server="everything",method="resources/subscribe",block="demo://resource/static/document/*",effect="allow"} 1"#,
        ],
        "{body}"
    );
    // Tool series are the tools' alone; the deciding rules as for tools.
    assert!(series("portcullis_calls_total").is_empty(), "{body}");
    let denials = series("portcullis_denials_total");
    let src = policy.display().to_string();
    assert_eq!(
        denials,
        [
            format!(
                r#"portcullis_denials_total{{server="everything",rule="Not that city",rule_label="prompt args-prompt rule 1",source="{src}:7:5",outcome="rule"}} 1"#
            ),
            format!(
                r#"portcullis_denials_total{{server="everything",rule="Not this document",rule_label="resource demo://resource/static/document/architecture.md rule 1",source="{src}:3:5",outcome="rule"}} 1"#
            ),
        ],
        "{body}"
    );
    for client_chosen in ["invented", "Paris", "Rome", "extension.md"] {
        assert!(!body.contains(client_chosen), "{client_chosen} in\n{body}");
    }
    let (code, err) = p.finish();
    assert_eq!(code, 0, "{err}");
}
