//! `portcullis fmt [--check] FILES`: the canonical layout of policy-language files.

use crate::cli::FmtArgs;

/// Formats (or checks) each file; 1 when a file does not parse or, with `--check`, is not formatted.
#[cfg(feature = "dynamic")]
pub fn run(args: &FmtArgs) -> i32 {
    use portcullis_compiler::source::{FileId, SourceFile, SourceMap};
    use portcullis_compiler::syntax::{dsl, dsl_fmt};
    let mut code = 0;
    for path in &args.files {
        let text = match std::fs::read_to_string(path) {
            Ok(t) => t,
            Err(e) => {
                eprintln!("error: reading {}: {e}", path.display());
                code = 1;
                continue;
            }
        };
        let parsed = match dsl::parse(FileId(0), &text) {
            Ok(f) => f,
            Err(diags) => {
                let mut map = SourceMap::new();
                map.add(SourceFile::new(path.display().to_string(), text.as_str()));
                for d in diags {
                    eprintln!("{}", d.render(&map));
                }
                code = 1;
                continue;
            }
        };
        let formatted = dsl_fmt::format(&parsed, &text);
        if formatted == text {
            continue;
        }
        if args.check {
            println!("{}: not formatted", path.display());
            code = 1;
        } else if let Err(e) = std::fs::write(path, formatted) {
            eprintln!("error: writing {}: {e}", path.display());
            code = 1;
        } else {
            println!("{}: formatted", path.display());
        }
    }
    code
}

/// Without the `dynamic` feature this binary links no policy parser.
#[cfg(not(feature = "dynamic"))]
pub fn run(_: &FmtArgs) -> i32 {
    eprintln!(
        "error: this is a hardened build: it has no policy parser\n  = help: use a development build (default features)"
    );
    2
}
