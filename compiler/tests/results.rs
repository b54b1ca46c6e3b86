//! Result rules (`results:`; docs/results.md): the three dialects lower to
//! the same rules, the evaluator serves them, and bad input gets positioned
//! errors.

use portcullis_compiler::eval::Evaluator;
use portcullis_compiler::results::{Action, ResultRule, Target};
use portcullis_compiler::{Input, Output, compile};
use portcullis_core::Policy;
use portcullis_core::results::{Verdict, check};

fn compile_one(path: &str, text: &str) -> Output {
    compile(&[Input {
        server: "s".into(),
        path: path.into(),
        text: text.into(),
    }])
}

/// What a rule says: target, secrets, patterns (name, regex, action), size, message.
type Shape = (
    Target,
    Option<Action>,
    Vec<(String, String, Action)>,
    Option<u64>,
    Option<String>,
);

/// What the rules say, without names and places (which differ by dialect).
fn shape(rules: &[ResultRule]) -> Vec<Shape> {
    rules
        .iter()
        .map(|r| {
            (
                r.target.clone(),
                r.secrets,
                r.patterns
                    .iter()
                    .map(|p| (p.name.clone(), p.translated.clone(), p.action))
                    .collect(),
                r.max_bytes,
                r.message.clone(),
            )
        })
        .collect()
}

fn rules(path: &str, text: &str) -> Vec<ResultRule> {
    let out = compile_one(path, text);
    let set = out.into_set().unwrap_or_else(|o| panic!("{}", o.render()));
    set.servers[0].results.clone()
}

fn errors(path: &str, text: &str) -> String {
    let out = compile_one(path, text);
    assert!(!out.is_ok(), "expected errors for {text}");
    out.render()
}

const INTERCEPT: &str = r#"version: "1"
description: results
default: allow
tools:
  echo:
    rules: []
results:
  all:
    redact: secrets
    max_bytes: 1 MiB
  tools:
    read_file:
      deny: secrets
      max_bytes: 64 KiB
      message: "read_file answers may not carry secrets"
      patterns:
        - name: employee-id
          regex: "EMP-[0-9]{6}"
          action: redact
  resources:
    "file:///etc/*":
      deny: secrets
"#;

const CATALOGUE: &str = r#"description: results
default: allow
tools:
  echo: {}
results:
  all:
    redact: secrets
    max_bytes: 1048576
  tools:
    read_file:
      deny: secrets
      max_bytes: 65536
      message: "read_file answers may not carry secrets"
      patterns:
        - {name: employee-id, regex: "EMP-[0-9]{6}", action: redact}
  resources:
    "file:///etc/*":
      deny: secrets
"#;

const DSL: &str = r#"server s {
  results {
    redact secrets
    max 1 MiB
  }

  results for read_file {
    deny secrets "read_file answers may not carry secrets"; max 64 KiB
    redact /EMP-[0-9]{6}/ as employee-id
  }

  results for resource "file:///etc/*" {
    deny secrets
  }
}
"#;

#[test]
fn every_dialect_lowers_to_the_same_rules() {
    let intercept = rules("s.yaml", INTERCEPT);
    let catalogue = rules(
        "s.yaml",
        &CATALOGUE.replace("echo: {}", "echo: {rules: []}"),
    );
    let dsl = rules("s.policy", DSL);
    assert_eq!(shape(&intercept), shape(&dsl));
    assert_eq!(shape(&catalogue), shape(&dsl));
    let s = shape(&dsl);
    assert_eq!(s.len(), 4);
    // A URI that cannot be normalised gets the strictest combination of the
    // resource rules and the catch-all rule.
    assert_eq!(s[3].0, Target::Unnormalised);
    assert_eq!(s[3].1, Some(Action::Deny));
    assert_eq!(s[3].3, Some(1 << 20));
    // The catch-all rule filled in what the others left out.
    assert_eq!(s[2].3, Some(1 << 20));
    assert_eq!(s[2].1, Some(Action::Deny));
    assert_eq!(s[1].3, Some(64 * 1024));
    assert_eq!(
        dsl[1].summary(),
        "deny secrets; redact /EMP-[0-9]{6}/ (employee-id); max 64 KiB"
    );
}

#[test]
fn the_evaluator_picks_and_applies_the_rules() {
    let out = compile_one("s.policy", DSL);
    let sources = out.sources.clone();
    let set = out.into_set().unwrap_or_else(|o| panic!("{}", o.render()));
    let ev = Evaluator::new(set.servers[0].clone(), &sources);
    let read = ev.result_rule("read_file").expect("a rule for read_file");
    assert_eq!(read.spec.name, "results for read_file");
    assert_eq!(ev.result_rule("echo").map(|r| r.spec.name), Some("results"));
    assert_eq!(
        ev.resource_result_rule("file:///etc/passwd")
            .map(|r| r.spec.name),
        Some("results for resource file:///etc/*")
    );
    let msg =
        br#"{"jsonrpc":"2.0","id":1,"result":{"content":[{"type":"text","text":"EMP-123456"}]}}"#;
    portcullis_core::json::validate(msg, portcullis_core::json::Strictness::LENIENT).unwrap();
    let Verdict::Redacted { bytes, .. } = check(read, msg) else {
        panic!("not redacted")
    };
    assert!(
        String::from_utf8(bytes)
            .unwrap()
            .contains("[REDACTED:employee-id]")
    );
    let msg = br#"{"jsonrpc":"2.0","id":1,"result":{"content":[{"type":"text","text":"ghp_16C7e42F292c6912E7710c838347Ae178B4a"}]}}"#;
    assert!(matches!(check(read, msg), Verdict::Denied { .. }));
    assert!(matches!(
        check(ev.result_rule("echo").unwrap(), msg),
        Verdict::Redacted { .. }
    ));
}

#[test]
fn bad_result_rules_get_positioned_errors() {
    let e = errors(
        "s.yaml",
        r#"version: "1"
results:
  tools:
    read_file:
      deny: secret
      max_byte: 10
      patterns:
        - {name: "bad name", regex: "(?<=x)", action: mask}
  everything: {}
"#,
    );
    for want in [
        "s.yaml:5:13",
        "expected `secrets`",
        "s.yaml:6:7",
        "unknown key `max_byte`",
        "did you mean `max_bytes`",
        "unknown key `everything` in the results block",
        "expected `redact` or `deny`, found \"mask\"",
        "look-around is not supported",
    ] {
        assert!(e.contains(want), "missing {want:?} in:\n{e}");
    }
    let e = errors(
        "s.policy",
        "server s {\n  results for x {\n    redact /(/ as broken\n    max 64 KiB\n  }\n  results for x { deny secrets }\n}\n",
    );
    for want in [
        "s.policy:3:12",
        "invalid regex /(/",
        "results for x is set twice",
    ] {
        assert!(e.contains(want), "missing {want:?} in:\n{e}");
    }
    // A syntax error names what may come there.
    let e = errors("s.policy", "server s {\n  results { max 64 KiBs }\n}\n");
    assert!(
        e.contains("s.policy:2:20") && e.contains("a size unit (KiB, MiB, KB, MB, bytes)"),
        "{e}"
    );
    let e = errors("s.policy", "server s {\n  results { max 0 }\n}\n");
    assert!(e.contains("refuses every answer"), "{e}");
}

#[test]
fn resource_patterns_are_checked_as_request_rules_check_them() {
    // Written unnormalised: it could never match; the help gives the form.
    let e = errors(
        "s.policy",
        "server s {\n  results for resource \"FILE:///etc/./passwd\", /(/ {\n    deny secrets\n  }\n}\n",
    );
    for want in [
        "s.policy:2:24",
        "the resource URI `FILE:///etc/./passwd` is not normalised",
        "write `file:///etc/passwd`",
        "s.policy:2:48",
        "invalid regex `(`",
    ] {
        assert!(e.contains(want), "missing {want:?} in:\n{e}");
    }
    let e = errors(
        "s.yaml",
        r#"version: "1"
results:
  resources:
    "file:///srv//data/x":
      deny: secrets
    "file:///%2e%2e/etc":
      deny: secrets
    "x":
      match: fuzzy
  tools:
    echo:
      match: regex
"#,
    );
    for want in [
        "s.yaml:4:5",
        "write `file:///srv/data/x`",
        "s.yaml:6:5",
        "is not a URI the proxy can normalise",
        "s.yaml:9:14",
        "expected `exact`, `glob` or `regex`, found \"fuzzy\"",
        "s.yaml:12:7",
        "unknown key `match`",
    ] {
        assert!(e.contains(want), "missing {want:?} in:\n{e}");
    }
    // The three forms, each once; a resource named twice is an error.
    let r = rules(
        "s.policy",
        "server s {\n  results for resource \"file:///etc/passwd\", \"file:///srv/**\", /\\.env$/ {\n    deny secrets\n  }\n}\n",
    );
    let names: Vec<&str> = r.iter().map(|r| r.name.as_str()).collect();
    assert_eq!(
        names,
        [
            "results for resource file:///etc/passwd",
            "results for resource file:///srv/**",
            "results for resource /\\.env$/",
            "results for unnormalised resource URIs",
        ]
    );
    let e = errors(
        "s.policy",
        "server s {\n  results for resource /a/ { deny secrets }\n  results for resource /a/ { max 10 }\n}\n",
    );
    assert!(e.contains("results for resource /a/ is set twice"), "{e}");
}

#[test]
fn the_formatter_keeps_results_blocks() {
    use portcullis_compiler::source::FileId;
    use portcullis_compiler::syntax::{dsl, dsl_fmt};
    let file = dsl::parse(FileId(0), DSL).unwrap_or_else(|e| panic!("{e:?}"));
    let formatted = dsl_fmt::format(&file, DSL);
    assert!(formatted.contains("  results for read_file {\n    deny secrets \"read_file answers may not carry secrets\"\n    max 64 KiB\n    redact /EMP-[0-9]{6}/ as employee-id\n  }\n"), "{formatted}");
    assert!(
        formatted.contains("  results for resource \"file:///etc/*\" {\n    deny secrets\n  }\n"),
        "{formatted}"
    );
    let text =
        "server s {\n  results for resource \"file:///a/**\", /\\.env$/ { deny secrets }\n}\n";
    let uris = dsl_fmt::format(&dsl::parse(FileId(0), text).unwrap(), text);
    assert!(
        uris.contains(
            "  results for resource \"file:///a/**\", /\\.env$/ {\n    deny secrets\n  }\n"
        ),
        "{uris}"
    );
    // Formatting is stable and the result lowers to the same rules.
    let again = dsl_fmt::format(&dsl::parse(FileId(0), &formatted).unwrap(), &formatted);
    assert_eq!(again, formatted);
    assert_eq!(
        shape(&rules("s.policy", &formatted)),
        shape(&rules("s.policy", DSL))
    );
}

#[test]
fn translate_writes_result_rules_in_the_policy_language() {
    let yaml = rules("s.yaml", INTERCEPT);
    let out = compile_one("s.yaml", INTERCEPT);
    let set = out.into_set().unwrap();
    let text = portcullis_compiler::translate::translate(&set.servers[0]).unwrap();
    assert!(
        text.contains("  results for read_file {\n    deny secrets \"read_file answers may not carry secrets\"\n    redact /EMP-[0-9]{6}/ as employee-id\n    max 64 KiB\n  }\n"),
        "{text}"
    );
    // The translation lowers to the same rules.
    assert_eq!(shape(&rules("s.policy", &text)), shape(&yaml));
}
