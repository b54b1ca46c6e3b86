//! Paging and `list_changed` against a real MCP server (docs/surfaces.md,
//! "Lists"): tests/e2e/paged_server.mjs, on the official TypeScript SDK,
//! pages 25 resources 10 at a time and 12 prompts 5 at a time, has two
//! resource templates, and announces `notifications/resources/list_changed`
//! when its tool adds a resource. Behind the real binary, over stdio and
//! Streamable HTTP (with the SDK client): every page is filtered, each
//! `nextCursor` is the server's own, no page is lost, the list is filtered
//! again after a change, and a hidden resource is refused when read anyway.

mod common;

use common::{Proxy, root};
use serde_json::{Value, json};

const POLICY: &str = r#"server paged {
  hide resource "paged://items/private/**"
  hide prompt "private_*"
}
"#;

fn policy(dir: &std::path::Path) -> String {
    let path = dir.join("paged.policy");
    std::fs::write(&path, POLICY).unwrap();
    path.display().to_string()
}

fn server() -> String {
    root()
        .join("tests/e2e/paged_server.mjs")
        .display()
        .to_string()
}

fn request(p: &mut Proxy, id: u64, method: &str, params: Value) -> Value {
    p.send(&json!({"jsonrpc":"2.0","id":id,"method":method,"params":params}).to_string());
    serde_json::from_str(&p.response(&id.to_string())).unwrap()
}

/// The server's resources in order (`added` first, as it adds them), and
/// the pages the filtered client must see: the public entries of each page
/// of 10, with the server's cursors (`c:<offset>:<generation>`).
fn expected_pages(added: &[&str], generation: u32) -> Vec<(Vec<String>, Option<String>)> {
    let mut all: Vec<String> = added.iter().map(|s| s.to_string()).collect();
    for i in 1..=25 {
        let kind = if i % 4 == 0 { "private" } else { "public" };
        all.push(format!("paged://items/{kind}/{i:02}"));
    }
    all.chunks(10)
        .enumerate()
        .map(|(n, chunk)| {
            let visible = chunk
                .iter()
                .filter(|u| u.contains("/public/"))
                .cloned()
                .collect();
            let next =
                (10 * (n + 1) < all.len()).then(|| format!("c:{}:{generation}", 10 * (n + 1)));
            (visible, next)
        })
        .collect()
}

fn expected_prompt_pages() -> Vec<(Vec<String>, Option<String>)> {
    let all: Vec<String> = (1..=12)
        .map(|i| {
            if i % 3 == 0 {
                format!("private_{i:02}")
            } else {
                format!("prompt_{i:02}")
            }
        })
        .collect();
    all.chunks(5)
        .enumerate()
        .map(|(n, chunk)| {
            let visible = chunk
                .iter()
                .filter(|p| p.starts_with("prompt_"))
                .cloned()
                .collect();
            let next = (5 * (n + 1) < all.len()).then(|| format!("c:{}:1", 5 * (n + 1)));
            (visible, next)
        })
        .collect()
}

/// Every page of a list over stdio: (entries' `name` members, nextCursor).
fn stdio_pages(
    p: &mut Proxy,
    id: &mut u64,
    method: &str,
    array: &str,
    name: &str,
) -> Vec<(Vec<String>, Option<String>)> {
    let mut out = Vec::new();
    let mut cursor: Option<String> = None;
    loop {
        *id += 1;
        let params = match &cursor {
            Some(c) => json!({"cursor": c}),
            None => json!({}),
        };
        let page = request(p, *id, method, params);
        let entries = page["result"][array]
            .as_array()
            .unwrap_or_else(|| panic!("{page}"))
            .iter()
            .map(|e| e[name].as_str().unwrap().to_string())
            .collect();
        cursor = page["result"]["nextCursor"].as_str().map(str::to_string);
        out.push((entries, cursor.clone()));
        if cursor.is_none() {
            return out;
        }
    }
}

#[test]
fn every_page_is_filtered_over_stdio_and_again_after_list_changed() {
    let dir = common::temp_dir("paging-stdio");
    let policy = policy(&dir);
    let mut p = Proxy::command(
        "paging-stdio",
        &[
            "-c",
            &policy,
            "--log-level",
            "warn",
            "--",
            "node",
            &server(),
        ],
    );
    p.initialize();
    let mut id = 0;
    assert_eq!(
        stdio_pages(&mut p, &mut id, "resources/list", "resources", "uri"),
        expected_pages(&[], 1)
    );
    assert_eq!(
        stdio_pages(&mut p, &mut id, "prompts/list", "prompts", "name"),
        expected_prompt_pages()
    );
    let templates = request(&mut p, 100, "resources/templates/list", json!({}));
    assert_eq!(
        templates["result"]["resourceTemplates"],
        json!([{"uriTemplate": "paged://items/public/{id}", "name": "public item"}])
    );
    // A hidden resource read anyway: "not found" for this caller, in any spelling.
    for (i, uri) in [
        "paged://items/private/04",
        "PAGED://items/public/../private//04",
    ]
    .into_iter()
    .enumerate()
    {
        let r = request(
            &mut p,
            200 + i as u64,
            "resources/read",
            json!({"uri": uri}),
        );
        assert_eq!(r["error"]["code"], -32002, "{uri}: {r}");
    }
    // An encoded slash the server would decode into private/04: cannot be normalised.
    let r = request(
        &mut p,
        210,
        "resources/read",
        json!({"uri": "paged://items/public%2F..%2Fprivate/04"}),
    );
    assert_eq!(r["error"]["code"], -32003, "{r}");
    assert!(
        r["error"]["message"]
            .as_str()
            .unwrap()
            .contains("cannot be normalised"),
        "{r}"
    );
    let r = request(
        &mut p,
        211,
        "resources/read",
        json!({"uri": "paged://items/public/01"}),
    );
    assert_eq!(
        r["result"]["contents"][0]["text"],
        "public paged://items/public/01"
    );
    let r = request(&mut p, 212, "prompts/get", json!({"name": "private_03"}));
    assert_eq!(r["error"]["code"], -32003, "{r}");
    // The server adds a resource and announces it: the notification is
    // forwarded, and the next listing is filtered again.
    for (i, (kind, rid)) in [("private", "p1"), ("public", "n1")]
        .into_iter()
        .enumerate()
    {
        let r = p.call(
            300 + i as u64,
            "add_resource",
            &format!(r#"{{"kind":"{kind}","id":"{rid}"}}"#),
        );
        assert!(r.contains("added paged://items/"), "{r}");
    }
    let announced = p
        .seen
        .iter()
        .filter(|l| l.contains("notifications/resources/list_changed"))
        .count();
    assert_eq!(announced, 2, "{:#?}", p.seen);
    let after = stdio_pages(&mut p, &mut id, "resources/list", "resources", "uri");
    assert_eq!(
        after,
        expected_pages(&["paged://items/public/n1", "paged://items/private/p1"], 3)
    );
    assert!(after[0].0.contains(&"paged://items/public/n1".to_string()));
    let r = request(
        &mut p,
        400,
        "resources/read",
        json!({"uri": "paged://items/private/p1"}),
    );
    assert_eq!(r["error"]["code"], -32002, "{r}");
    let (code, _) = p.finish();
    assert_eq!(code, 0);
}

#[test]
fn the_sdk_client_over_http_pages_through_filtered_lists() {
    let dir = common::temp_dir("paging-http");
    let policy = policy(&dir);
    let server = server();
    let (proxy, url) = common::http_endpoint(&["-c", &policy, "--", "node", &server]);
    let v = common::sdk_client("sdk_paging_client.mjs", &url);
    let pages = |k: &str| -> Vec<(Vec<String>, Option<String>)> {
        v[k].as_array()
            .unwrap_or_else(|| panic!("{k}: {v}"))
            .iter()
            .map(|p| {
                (
                    p["entries"]
                        .as_array()
                        .unwrap()
                        .iter()
                        .map(|e| e.as_str().unwrap().to_string())
                        .collect(),
                    p["nextCursor"].as_str().map(str::to_string),
                )
            })
            .collect()
    };
    assert_eq!(pages("resources"), expected_pages(&[], 1));
    assert_eq!(pages("prompts"), expected_prompt_pages());
    assert_eq!(v["templates"], json!(["paged://items/public/{id}"]));
    assert_eq!(v["hiddenRead"]["error"]["code"], -32002, "{v}");
    assert_eq!(v["respeltRead"]["error"]["code"], -32002, "{v}");
    assert_eq!(v["encodedRead"]["error"]["code"], -32003, "{v}");
    assert_eq!(
        v["publicRead"]["result"]["contents"][0]["text"],
        "public paged://items/public/01"
    );
    assert_eq!(v["hiddenPrompt"]["error"]["code"], -32003, "{v}");
    assert!(v["prompt"]["result"]["messages"].is_array(), "{v}");
    assert_eq!(v["changed"], 2, "{v}");
    assert_eq!(
        pages("resourcesAfter"),
        expected_pages(&["paged://items/public/n1", "paged://items/private/p1"], 3)
    );
    assert_eq!(v["addedHiddenRead"]["error"]["code"], -32002, "{v}");
    assert_eq!(
        v["addedRead"]["result"]["contents"][0]["text"],
        "public paged://items/public/n1"
    );
    drop(proxy);
}
