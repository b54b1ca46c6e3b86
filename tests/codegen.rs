//! Golden output: the generated code for sample policies and the rendered
//! diagnostics for invalid ones are insta snapshots, so every change to code
//! generation or to an error message is reviewed as a diff.

use std::path::Path;

use portcullis_compiler::codegen::{Options, generate};
use portcullis_compiler::{Input, compile, load_file};

fn input(path: &str) -> Input {
    let root = Path::new(env!("CARGO_MANIFEST_DIR"));
    load_file(&root.join(path), Some(path.to_string())).unwrap()
}

fn generated(path: &str) -> String {
    let set = compile(&[input(path)])
        .into_set()
        .unwrap_or_else(|o| panic!("{}", o.render()));
    let g = generate(
        &set,
        &Options {
            env: "snapshot".into(),
            little_endian: true,
            embed_dfas: true,
        },
    );
    g.rust
}

fn rendered(path: &str) -> String {
    let out = compile(&[input(path)]);
    assert!(!out.is_ok(), "{path} should not compile");
    out.render()
}

#[test]
fn generated_code_for_the_default_policy() {
    insta::assert_snapshot!(generated("policies/default/everything.yaml"));
}

#[test]
fn generated_code_for_intercepts_stripe_fixture() {
    insta::assert_snapshot!(generated(
        "tests/corpus/intercept/servers/valid_policy.yaml"
    ));
}

#[test]
fn generated_code_for_a_default_deny_policy() {
    insta::assert_snapshot!(generated(
        "tests/corpus/intercept/servers/default_deny_policy.yaml"
    ));
}

#[test]
fn generated_code_for_the_catalogue_form() {
    insta::assert_snapshot!(generated(
        "tests/fixtures/catalogue/fusionauth-catalogue.yaml"
    ));
}

/// Principal paths read through `env.principal` into locals named after
/// them, per-caller hides, limits per `principal.sub` failing closed.
#[test]
fn generated_code_for_a_policy_that_reads_the_caller() {
    insta::assert_snapshot!(generated("tests/fixtures/principal/finance.policy"));
}

#[test]
fn diagnostics_for_intercepts_invalid_schema() {
    let out = compile(&[input("tests/corpus/intercept/invalid/invalid_schema.yaml")]);
    // Intercept reports 15 errors for this fixture; Portcullis reports the same 15, in the same order.
    let intercept: Vec<&str> = out
        .diagnostics
        .0
        .iter()
        .filter(|d| d.origin == portcullis_compiler::source::Origin::Intercept)
        .map(|d| d.message.as_str())
        .collect();
    assert_eq!(intercept.len(), 15, "{intercept:#?}");
    insta::assert_snapshot!(out.render());
}

#[test]
fn diagnostics_for_intercepts_invalid_yaml() {
    let text = rendered("tests/corpus/intercept/invalid/invalid_policy.yaml");
    assert!(text.contains("invalid_policy.yaml:"), "{text}");
    insta::assert_snapshot!(text);
}

#[test]
fn diagnostics_for_strictness_and_semantic_checks() {
    insta::assert_snapshot!(rendered("tests/fixtures/invalid/mistakes.yaml"));
}

#[test]
fn same_sources_give_the_same_code() {
    assert_eq!(
        generated("tests/corpus/intercept/servers/valid_policy.yaml"),
        generated("tests/corpus/intercept/servers/valid_policy.yaml")
    );
}

#[test]
fn diagnostics_for_policies_that_cannot_mean_what_they_say() {
    insta::assert_snapshot!(rendered("tests/fixtures/invalid/semantics.yaml"));
}
