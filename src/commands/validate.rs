//! `portcullis validate`: diagnostics with file, line, column and a fix.

use crate::cli::ValidateArgs;

/// Validates the given files and directories; 0 when valid, 1 otherwise.
#[cfg(feature = "dynamic")]
pub fn run(args: &ValidateArgs) -> i32 {
    let mut paths: Vec<&std::path::Path> = args.paths.iter().map(|p| p.as_path()).collect();
    if let Some(c) = &args.config {
        paths.insert(0, c);
    }
    if paths.is_empty() {
        eprintln!(
            "error: nothing to validate\n  = help: portcullis validate -c policy.yaml, or name files or directories"
        );
        return 2;
    }
    let mut inputs = Vec::new();
    for p in &paths {
        let loaded = if p.is_dir() {
            portcullis_compiler::load_dir(p, None)
        } else {
            portcullis_compiler::load_file_with_includes(p)
        };
        match loaded {
            Ok(mut i) => inputs.append(&mut i),
            Err(e) => {
                eprintln!("error: reading {}: {e}", p.display());
                return 1;
            }
        }
    }
    let output = portcullis_compiler::compile(&inputs);
    if !output.diagnostics.0.is_empty() {
        eprintln!("{}", output.render());
    }
    let errors = output.diagnostics.error_count();
    let warnings = output.diagnostics.0.len() - errors;
    if errors > 0 || (args.deny_warnings && warnings > 0) {
        eprintln!(
            "error: policy validation failed with {errors} error(s){}",
            if warnings > 0 {
                format!(" and {warnings} warning(s)")
            } else {
                String::new()
            }
        );
        return 1;
    }
    for p in &output.policies {
        let rules = p
            .rules
            .iter()
            .filter(|r| r.kind == portcullis_runtime::policy::RuleKind::Rule)
            .count();
        println!(
            "{}: valid ({} policy for server `{}`, {} tool{}, {} rule{})",
            p.path,
            p.dialect.name(),
            p.name,
            p.tools.len(),
            if p.tools.len() == 1 { "" } else { "s" },
            rules,
            if rules == 1 { "" } else { "s" }
        );
    }
    if output.policies.len() == 1 && paths.len() == 1 && warnings == 0 {
        println!("Policy file is valid.");
    }
    0
}

/// Without the `dynamic` feature this binary links no policy parser.
#[cfg(not(feature = "dynamic"))]
pub fn run(_: &ValidateArgs) -> i32 {
    eprintln!(
        "error: this is a hardened build: it cannot read policy files at run time\n  = help: validate with a development build (default features)"
    );
    2
}
