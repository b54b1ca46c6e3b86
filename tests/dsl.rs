//! The policy language through the real binary and as snapshots: the
//! diagnostics for broken policies, the generated code for the reference
//! example, `fmt`, `translate`, and the sample policies.

use std::path::Path;
use std::process::Command;

use portcullis_compiler::codegen::{Options, generate};
use portcullis_compiler::{Input, compile, load_file};

fn input(path: &str) -> Input {
    load_file(
        &Path::new(env!("CARGO_MANIFEST_DIR")).join(path),
        Some(path.to_string()),
    )
    .unwrap()
}

fn portcullis(args: &[&str]) -> (i32, String, String) {
    let out = Command::new(env!("CARGO_BIN_EXE_portcullis"))
        .args(args)
        .current_dir(env!("CARGO_MANIFEST_DIR"))
        .output()
        .unwrap();
    (
        out.status.code().unwrap_or(-1),
        String::from_utf8(out.stdout).unwrap(),
        String::from_utf8(out.stderr).unwrap(),
    )
}

#[test]
fn syntax_errors_are_all_reported_with_suggestions() {
    let out = compile(&[input("tests/fixtures/dsl-invalid/syntax.policy")]);
    assert_eq!(out.diagnostics.error_count(), 4, "{}", out.render());
    insta::assert_snapshot!(out.render());
}

#[test]
fn semantic_errors_are_all_reported() {
    let out = compile(&[input("tests/fixtures/dsl-invalid/semantics.policy")]);
    insta::assert_snapshot!(out.render());
}

#[test]
fn generated_code_for_the_reference_example() {
    let set = compile(&[input("tests/fixtures/dsl/stripe.policy")])
        .into_set()
        .unwrap_or_else(|o| panic!("{}", o.render()));
    insta::assert_snapshot!(
        generate(
            &set,
            &Options {
                env: "snapshot".into(),
                little_endian: true,
                embed_dfas: true
            }
        )
        .rust
    );
}

#[test]
fn the_sample_policies_validate_and_are_formatted() {
    let (code, out, err) = portcullis(&["validate", "policies/examples"]);
    assert_eq!(code, 0, "{err}");
    assert!(
        out.contains("policies/examples/stripe.policy: valid (dsl policy for server `stripe`"),
        "{out}"
    );
    assert!(
        out.contains("policies/examples/github.policy: valid (dsl policy for server `github`"),
        "{out}"
    );
    assert!(
        !out.contains("org-baseline"),
        "a fragment is not a server: {out}"
    );
    let (code, out, _) = portcullis(&[
        "fmt",
        "--check",
        "policies/examples/stripe.policy",
        "policies/examples/github.policy",
        "policies/examples/org-baseline.policy",
    ]);
    assert_eq!(code, 0, "{out}");
    // A single file that includes a fragment validates on its own (the fragment is found beside it).
    let (code, _, err) = portcullis(&["validate", "-c", "policies/examples/github.policy"]);
    assert_eq!(code, 0, "{err}");
}

#[test]
fn fmt_checks_and_rewrites() {
    let dir = std::env::temp_dir().join(format!("portcullis-fmt-{}", std::process::id()));
    std::fs::create_dir_all(&dir).unwrap();
    let file = dir.join("messy.policy");
    std::fs::write(
        &file,
        "server messy{default deny\n tool a,b{deny \"x\" when args.n>1 // why\n}}\n",
    )
    .unwrap();
    let f = file.to_str().unwrap();
    let (code, out, _) = portcullis(&["fmt", "--check", f]);
    assert_eq!(
        (code, out.trim_end()),
        (1, format!("{f}: not formatted").as_str())
    );
    let (code, _, err) = portcullis(&["fmt", f]);
    assert_eq!(code, 0, "{err}");
    assert_eq!(
        std::fs::read_to_string(&file).unwrap(),
        "server messy {\n  default deny\n\n  tool a, b {\n    deny \"x\" when args.n > 1  // why\n  }\n}\n"
    );
    assert_eq!(portcullis(&["fmt", "--check", f]).0, 0);
    std::fs::write(&file, "server messy { tool a { deyn \"x\" } }\n").unwrap();
    let (code, _, err) = portcullis(&["fmt", f]);
    assert_eq!(code, 1);
    assert!(err.contains("did you mean `deny`?"), "{err}");
}

#[test]
fn translate_writes_a_policy_that_validates() {
    let (code, out, err) = portcullis(&[
        "translate",
        "tests/corpus/intercept/servers/valid_policy.yaml",
    ]);
    assert_eq!(code, 0, "{err}");
    assert!(
        out.contains("server valid_policy \"Stripe MCP server policies\" {"),
        "{out}"
    );
    let dir = std::env::temp_dir().join(format!("portcullis-tr-{}", std::process::id()));
    std::fs::create_dir_all(&dir).unwrap();
    let file = dir.join("valid_policy.policy");
    std::fs::write(&file, &out).unwrap();
    let (code, _, err) = portcullis(&["validate", "-c", file.to_str().unwrap()]);
    assert_eq!(code, 0, "{err}");
    let (code, _, err) = portcullis(&[
        "translate",
        "tests/corpus/intercept/invalid/invalid_schema.yaml",
    ]);
    assert_eq!(code, 1);
    assert!(err.contains("version must be \"1\""), "{err}");
}
