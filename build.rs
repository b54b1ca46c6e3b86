//! Compiles the environment's policies into `$OUT_DIR/policies.rs`.
//!
//! `PORTCULLIS_POLICY_DIR=/abs/dir` compiles that directory; otherwise
//! `policies/$PORTCULLIS_ENV/` (default `policies/default/`). A policy error
//! fails the build with the same diagnostic `portcullis validate` prints.

use std::path::PathBuf;

use portcullis_compiler::codegen::{self, Options};

fn main() {
    println!("cargo:rerun-if-env-changed=PORTCULLIS_ENV");
    println!("cargo:rerun-if-env-changed=PORTCULLIS_POLICY_DIR");
    let manifest =
        PathBuf::from(std::env::var("CARGO_MANIFEST_DIR").expect("cargo sets CARGO_MANIFEST_DIR"));
    let env_name = std::env::var("PORTCULLIS_ENV")
        .ok()
        .filter(|e| !e.is_empty());
    let (env, dir, display) = match std::env::var("PORTCULLIS_POLICY_DIR")
        .ok()
        .filter(|d| !d.is_empty())
    {
        Some(d) => {
            let dir = PathBuf::from(&d);
            let name = env_name.unwrap_or_else(|| {
                dir.file_name()
                    .and_then(|n| n.to_str())
                    .unwrap_or("custom")
                    .to_string()
            });
            (name, dir, d)
        }
        None => {
            let name = env_name.unwrap_or_else(|| "default".to_string());
            let dir = manifest.join("policies").join(&name);
            (name.clone(), dir, format!("policies/{name}"))
        }
    };
    if !dir.is_dir() {
        eprintln!(
            "error: policy directory {} does not exist\n  = help: create it, or set PORTCULLIS_ENV / PORTCULLIS_POLICY_DIR to an existing one",
            dir.display()
        );
        std::process::exit(1);
    }
    println!("cargo:rerun-if-changed={}", dir.display());
    let inputs = match portcullis_compiler::load_dir(&dir, Some(&display)) {
        Ok(i) => i,
        Err(e) => {
            eprintln!("error: reading {}: {e}", dir.display());
            std::process::exit(1);
        }
    };
    for entry in std::fs::read_dir(&dir).into_iter().flatten().flatten() {
        println!("cargo:rerun-if-changed={}", entry.path().display());
    }
    let output = portcullis_compiler::compile(&inputs);
    for d in output.diagnostics.0.iter().filter(|d| !d.is_error()) {
        for line in d.render(&output.sources).lines() {
            println!("cargo:warning={line}");
        }
    }
    let set = match output.into_set() {
        Ok(set) => set,
        Err(output) => {
            eprintln!("{}", output.render());
            eprintln!(
                "error: {} policy error(s) in {}; the binary was not built",
                output.diagnostics.error_count(),
                dir.display()
            );
            std::process::exit(1);
        }
    };
    let little_endian = std::env::var("CARGO_CFG_TARGET_ENDIAN").map_or(true, |e| e == "little");
    let generated = codegen::generate(
        &set,
        &Options {
            env: env.clone(),
            little_endian,
            embed_dfas: true,
        },
    );
    let out = PathBuf::from(std::env::var("OUT_DIR").expect("cargo sets OUT_DIR"));
    for (name, bytes) in &generated.blobs {
        std::fs::write(out.join(name), bytes).expect("write DFA");
    }
    std::fs::write(out.join("policies.rs"), &generated.rust).expect("write policies.rs");
}
