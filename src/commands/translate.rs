//! `portcullis translate FILE.yaml`: a YAML policy in the policy language.

use crate::cli::TranslateArgs;

/// Translates one file; 1 when it does not compile or cannot be expressed.
#[cfg(feature = "dynamic")]
pub fn run(args: &TranslateArgs) -> i32 {
    let input = match portcullis_compiler::load_file(&args.file, None) {
        Ok(i) => i,
        Err(e) => {
            eprintln!("error: reading {}: {e}", args.file.display());
            return 1;
        }
    };
    let output = portcullis_compiler::compile(&[input]);
    if !output.diagnostics.0.is_empty() {
        eprintln!("{}", output.render());
    }
    let set = match output.into_set() {
        Ok(s) => s,
        Err(_) => return 1,
    };
    let Some(policy) = set.servers.first() else {
        eprintln!("error: {} holds no server policy", args.file.display());
        return 1;
    };
    match portcullis_compiler::translate::translate(policy) {
        Err(e) => {
            eprintln!(
                "error: {} cannot be written in the policy language: {e}",
                args.file.display()
            );
            1
        }
        Ok(text) => match &args.output {
            None => {
                print!("{text}");
                0
            }
            Some(out) => match std::fs::write(out, text) {
                Ok(()) => 0,
                Err(e) => {
                    eprintln!("error: writing {}: {e}", out.display());
                    1
                }
            },
        },
    }
}

/// Without the `dynamic` feature this binary links no policy parser.
#[cfg(not(feature = "dynamic"))]
pub fn run(_: &TranslateArgs) -> i32 {
    eprintln!(
        "error: this is a hardened build: it has no policy compiler\n  = help: use a development build (default features)"
    );
    2
}
