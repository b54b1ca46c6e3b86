//! Result rules (docs/results.md) compiled to native code: the generated
//! `result_rule` (a `match` on the tool name) picks what the evaluator picks,
//! in every dialect, and the rules do the same to the same answers.

use portcullis_compiled::{compiled, repo_path};
use portcullis_compiler::eval::Evaluator;
use portcullis_compiler::{compile, load_file};
use portcullis_core::json::{Strictness, validate};
use portcullis_core::policy::Policy;
use portcullis_core::results::{Verdict, check};

const SERVERS: [(&str, &str); 3] = [
    (
        "results-intercept",
        "tests/fixtures/results/results-intercept.yaml",
    ),
    (
        "results-catalogue",
        "tests/fixtures/results/results-catalogue.yaml",
    ),
    ("results-dsl", "tests/fixtures/results/results-dsl.policy"),
];

fn evaluator(path: &str) -> Evaluator {
    let input = load_file(&repo_path(path), None).unwrap();
    let set = compile(&[input])
        .into_set()
        .unwrap_or_else(|o| panic!("{}", o.render()));
    Evaluator::new(set.servers[0].clone(), &set.sources)
}

/// What a rule does, without its name (names differ by dialect).
fn shape(p: &dyn Policy, tool: &str) -> Option<(Option<&'static str>, Option<u64>, usize)> {
    p.result_rule(tool).map(|r| {
        (
            r.spec.secrets.map(|a| a.name()),
            r.spec.max_bytes,
            r.spec.patterns.len(),
        )
    })
}

/// Resource URIs as clients send them: rules see them normalised.
const URIS: [&str; 13] = [
    "file:///etc/passwd",
    "FILE:///etc//passwd",
    "file:///tmp/../etc/./passwd",
    "file:///%65tc/passwd",
    "file:///etc/ssl/private/key.pem",
    "file:///srv/data/report.csv",
    "file:///srv/a/b/c/d",
    "file:///home/ann/.env",
    "file:///srv/app/config.json",
    "file:///srv/app/../app/config.json",
    "file:///etc%2Fpasswd",
    "file:///../etc/passwd",
    "https://x",
];

/// What a resource's rule does (secrets action, max bytes).
fn resource_shape(p: &dyn Policy, uri: &str) -> Option<(Option<&'static str>, Option<u64>)> {
    p.resource_result_rule(uri)
        .map(|r| (r.spec.secrets.map(|a| a.name()), r.spec.max_bytes))
}

#[test]
fn generated_code_picks_the_rules_the_evaluator_picks() {
    let tools = [
        "echo",
        "read_file",
        "read_dir",
        "read_",
        "readfile",
        "",
        "*",
        "read_*",
    ];
    let mut shapes = Vec::new();
    let mut uri_shapes = Vec::new();
    for (server, path) in SERVERS {
        let ev = evaluator(path);
        let native = compiled(server).unwrap_or_else(|| panic!("{server} is not compiled"));
        // The catch-all rule, two tool rules, four resource rules, and the derived rule for
        // URIs that cannot be normalised.
        assert_eq!(native.result_rules().len(), 8, "{server}");
        for tool in tools {
            assert_eq!(
                native.result_rule(tool).map(|r| r.spec.name),
                ev.result_rule(tool).map(|r| r.spec.name),
                "{server}: {tool:?}"
            );
        }
        for uri in URIS {
            assert_eq!(
                native.resource_result_rule(uri).map(|r| r.spec.name),
                ev.resource_result_rule(uri).map(|r| r.spec.name),
                "{server}: {uri}"
            );
        }
        shapes.push(tools.map(|t| shape(native, t)));
        uri_shapes.push(URIS.map(|u| resource_shape(native, u)));
    }
    assert_eq!(uri_shapes[0], uri_shapes[1]);
    assert_eq!(uri_shapes[0], uri_shapes[2]);
    let want = [
        // file:///etc/passwd, and spellings of it: the `file:///etc/*` rule.
        (Some("deny"), Some(1 << 20)),
        (Some("deny"), Some(1 << 20)),
        (Some("deny"), Some(1 << 20)),
        (Some("deny"), Some(1 << 20)),
        // `*` does not cross `/`: the catch-all rule.
        (Some("redact"), Some(1 << 20)),
        // file:///srv/**, at any depth.
        (Some("redact"), Some(4096)),
        (Some("redact"), Some(4096)),
        // The regex, and the exact URI (before the glob listed earlier).
        (Some("deny"), Some(512)),
        (Some("redact"), Some(1 << 20)),
        (Some("redact"), Some(1 << 20)),
        // Cannot be normalised: the strictest of everything.
        (Some("deny"), Some(512)),
        (Some("deny"), Some(512)),
        (Some("redact"), Some(1 << 20)),
    ];
    assert_eq!(uri_shapes[0], want.map(Some));
    // The three dialects say the same thing.
    assert_eq!(shapes[0], shapes[1]);
    assert_eq!(shapes[0], shapes[2]);
    assert_eq!(
        shapes[0][1],
        Some((Some("deny"), Some(64 * 1024), 1)),
        "read_file: its own deny and size, the catch-all's nothing else"
    );
    assert_eq!(shapes[0][2], Some((Some("redact"), Some(128), 0)));
}

#[test]
fn generated_and_evaluated_rules_treat_answers_alike() {
    let answers = [
        r#"{"jsonrpc":"2.0","id":1,"result":{"content":[{"type":"text","text":"Echo: hi"}]}}"#,
        r#"{"jsonrpc":"2.0","id":1,"result":{"content":[{"type":"text","text":"EMP-123456 AKIAIOSFODNN7EXAMPLE"}]}}"#,
        r#"{"jsonrpc":"2.0","id":1,"result":{"content":[],"structuredContent":{"k":"xoxb-17653672481-19874698323-pdFZKVeTuE8sk7oOcBrzbqgy"}}}"#,
        r#"{"jsonrpc":"2.0","id":1,"error":{"code":1,"message":"sk_live_4eC39HqLyjWDarjtT1zdp7dc"}}"#,
    ];
    for (server, path) in SERVERS {
        let ev = evaluator(path);
        let native = compiled(server).unwrap();
        for tool in ["echo", "read_file", "read_dir"] {
            for a in answers {
                validate(a.as_bytes(), Strictness::LENIENT).unwrap();
                let n = check(native.result_rule(tool).unwrap(), a.as_bytes());
                let e = check(ev.result_rule(tool).unwrap(), a.as_bytes());
                // Messages name the rule, whose name differs by dialect: compare what happened.
                let kind = |v: &Verdict| match v {
                    Verdict::Pass => "pass".to_string(),
                    Verdict::Redacted { bytes, .. } => String::from_utf8_lossy(bytes).into_owned(),
                    Verdict::Denied { counts, .. } => format!("deny {counts:?}"),
                };
                assert_eq!(kind(&n), kind(&e), "{server} {tool} {a}");
            }
        }
    }
}
