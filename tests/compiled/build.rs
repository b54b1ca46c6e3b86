//! Compiles every policy the tests and benchmarks need into one generated module:
//! the conformance cases whose policies Portcullis accepts, Intercept's corpus,
//! and the benchmark policies.

use std::path::{Path, PathBuf};

use portcullis_compiler::codegen::{self, Options};
use portcullis_compiler::source::FileId;
use portcullis_compiler::syntax::yaml::{self, NodeValue};
use portcullis_compiler::{Input, compile, load_dir};

fn conformance_inputs(path: &Path) -> Vec<Input> {
    let text = std::fs::read_to_string(path).expect("read conformance cases");
    let root = yaml::parse(FileId(0), &text)
        .expect("conformance file parses")
        .expect("conformance file is not empty");
    let Some(NodeValue::Seq(cases)) = root.get("cases").map(|c| &c.value) else {
        panic!("no cases")
    };
    let mut inputs = Vec::new();
    for case in cases {
        let id = case
            .get("id")
            .and_then(|n| n.scalar())
            .expect("case id")
            .text
            .clone();
        let policy = case
            .get("policy")
            .and_then(|n| n.scalar())
            .expect("case policy")
            .text
            .clone();
        let input = Input {
            server: id.clone(),
            path: format!("conformance/{id}.yaml"),
            text: policy,
        };
        // Only cases whose policy Portcullis accepts become compiled servers.
        if compile(std::slice::from_ref(&input)).is_ok() {
            inputs.push(input);
        }
    }
    inputs
}

fn main() {
    let manifest = PathBuf::from(std::env::var("CARGO_MANIFEST_DIR").unwrap());
    let root = manifest.join("../..");
    let cases = root.join("tests/conformance/intercept-conformance.yaml");
    let corpus = root.join("tests/corpus/intercept/servers");
    let benches = root.join("benches/policies");
    let fixtures = root.join("tests/fixtures/catalogue");
    for p in [&cases, &corpus, &benches, &fixtures] {
        println!("cargo:rerun-if-changed={}", p.display());
    }
    let mut inputs = conformance_inputs(&cases);
    inputs.extend(load_dir(&corpus, Some("corpus")).expect("read corpus"));
    inputs.extend(load_dir(&benches, Some("benches/policies")).expect("read bench policies"));
    inputs.extend(load_dir(&fixtures, Some("tests/fixtures/catalogue")).expect("read fixtures"));
    // Argument keys in any letter case (both front ends).
    let argcase = root.join("tests/fixtures/argcase");
    println!("cargo:rerun-if-changed={}", argcase.display());
    inputs.extend(load_dir(&argcase, Some("tests/fixtures/argcase")).expect("read fixtures"));
    // Budgets on paid tools (MPP) in every dialect.
    let spend = root.join("tests/fixtures/spend");
    println!("cargo:rerun-if-changed={}", spend.display());
    inputs.extend(load_dir(&spend, Some("tests/fixtures/spend")).expect("read fixtures"));
    // Approval rules in every dialect.
    let approval = root.join("tests/fixtures/approval");
    println!("cargo:rerun-if-changed={}", approval.display());
    inputs.extend(load_dir(&approval, Some("tests/fixtures/approval")).expect("read fixtures"));
    // Policies that read the caller (principal paths, per-caller hides and limits).
    let principal = root.join("tests/fixtures/principal");
    println!("cargo:rerun-if-changed={}", principal.display());
    inputs.extend(load_dir(&principal, Some("tests/fixtures/principal")).expect("read fixtures"));
    // Result rules in every dialect.
    let results = root.join("tests/fixtures/results");
    println!("cargo:rerun-if-changed={}", results.display());
    inputs.extend(load_dir(&results, Some("tests/fixtures/results")).expect("read fixtures"));
    // Resources and prompts under policy, in every language.
    let surfaces = root.join("tests/fixtures/surfaces");
    println!("cargo:rerun-if-changed={}", surfaces.display());
    inputs.extend(load_dir(&surfaces, Some("tests/fixtures/surfaces")).expect("read fixtures"));
    // The benchmark policy as written and with resource and prompt rules
    // besides its tools (benches/surfaces.rs: a tools/call costs the same
    // with and without them). Names and paths of one length, so denial
    // answers (which name them) are the same size in both.
    let fusionauth = std::fs::read_to_string(benches.join("fusionauth.yaml"))
        .expect("read the benchmark policy");
    for (server, extra) in [
        ("fusionauth-plain", ""),
        ("fusionauth-rules", SURFACE_RULES),
    ] {
        inputs.push(Input {
            server: server.into(),
            path: format!("benches/policies/{server}.yaml"),
            text: fusionauth.clone() + extra,
        });
    }
    // path() conditions on tool arguments, in both languages.
    let paths = root.join("tests/fixtures/paths");
    println!("cargo:rerun-if-changed={}", paths.display());
    inputs.extend(load_dir(&paths, Some("tests/fixtures/paths")).expect("read fixtures"));
    let output = compile(&inputs);
    let set = match output.into_set() {
        Ok(set) => set,
        Err(o) => panic!("policies do not compile:\n{}", o.render()),
    };
    write_set(&set, "policies.rs");
    // The policy-language fixtures (their server names repeat corpus names, e.g. `stripe`).
    let dsl = root.join("tests/fixtures/dsl");
    println!("cargo:rerun-if-changed={}", dsl.display());
    let output = compile(&load_dir(&dsl, Some("tests/fixtures/dsl")).expect("read DSL fixtures"));
    match output.into_set() {
        Ok(set) => write_set(&set, "dsl_policies.rs"),
        Err(o) => panic!("DSL fixtures do not compile:\n{}", o.render()),
    }
}

/// Resource and prompt rules appended to the FusionAuth benchmark policy:
/// hides, globs, a regex, an exact URI, a limit, a condition on prompt
/// arguments and an approval.
const SURFACE_RULES: &str = r#"
resources:
  "file:///etc/**":
    rules:
      - name: no system files
        action: deny
        on_deny: "System files are off limits"
  '\.env$':
    match: regex
    rules:
      - name: no env files
        action: deny
        on_deny: "Environment files hold secrets"
  "file:///srv/data/*":
    rules:
      - name: data reads
        rate_limit: 100/minute
        on_deny: "Too many reads of the data directory"
  "fusionauth://tenants/**":
    rules:
      - name: tenant exports
        action: require_approval
        on_deny: "Tenant data needs a human"
  "fusionauth://keys/signing":
    hide: true
prompts:
  "admin_*":
    hide: true
  deploy:
    rules:
      - name: no prod deploys
        conditions:
          - {path: args.env, op: neq, value: prod}
        on_deny: "No production deploys from an agent"
"#;

fn write_set(set: &portcullis_compiler::ir::PolicySet, file: &str) {
    let generated = codegen::generate(
        set,
        &Options {
            env: "tests".into(),
            little_endian: std::env::var("CARGO_CFG_TARGET_ENDIAN").map_or(true, |e| e == "little"),
            embed_dfas: true,
        },
    );
    let out = PathBuf::from(std::env::var("OUT_DIR").unwrap());
    for (name, bytes) in &generated.blobs {
        std::fs::write(out.join(name), bytes).unwrap();
    }
    std::fs::write(out.join(file), &generated.rust).unwrap();
}
