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
    let mut output = portcullis_compiler::compile(&inputs);
    for d in schema_warnings(&output.policies) {
        output.diagnostics.push(d);
    }
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
    // A directory that holds no server policy builds no binary (build.rs
    // stops with the same message); validating it must not look like success.
    if output.policies.is_empty() && paths.iter().all(|p| p.is_dir()) {
        let shown: Vec<String> = paths.iter().map(|p| p.display().to_string()).collect();
        let tests: Vec<String> = paths
            .iter()
            .filter_map(|p| std::fs::read_dir(p).ok())
            .flatten()
            .filter_map(|e| e.ok().map(|e| e.path().display().to_string()))
            .filter(|p| portcullis_compiler::is_test_file(p))
            .collect();
        let tests: Vec<&str> = tests.iter().map(String::as_str).collect();
        if let Some((message, help)) =
            portcullis_compiler::no_policy_error(&shown.join(", "), &inputs, &tests, 0)
        {
            eprintln!("error: {message}\n  = help: {help}");
            return 1;
        }
    }
    for p in &output.policies {
        let rules = p
            .rules
            .iter()
            .filter(|r| r.kind == portcullis_core::policy::RuleKind::Rule)
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

/// Warnings for rule paths that are not parameters of their tool, per the
/// `<server>.tools.json` that `portcullis scan -o` saved beside a policy.
#[cfg(feature = "dynamic")]
pub(crate) fn schema_warnings(
    policies: &[portcullis_compiler::ir::ServerPolicy],
) -> Vec<portcullis_compiler::source::Diagnostic> {
    use portcullis_compiler::schema;
    let mut out = Vec::new();
    for p in policies {
        let file_name = format!("{}.tools.json", p.name);
        let path = std::path::Path::new(&p.path).with_file_name(&file_name);
        if !path.is_file() {
            continue;
        }
        let tools = std::fs::read_to_string(&path)
            .map_err(|e| e.to_string())
            .and_then(|text| schema::parse_tools_json(&text));
        match tools {
            Ok(tools) => out.extend(schema::check(p, &tools, &file_name)),
            Err(e) => out.push(
                schema::file_warning(format!(
                    "{}: cannot read the tool schemas: {e}",
                    path.display()
                ))
                .with_help("regenerate it with `portcullis scan -o FILE`, or delete it"),
            ),
        }
    }
    out
}

/// Without the `dynamic` feature this binary links no policy parser.
#[cfg(not(feature = "dynamic"))]
pub fn run(_: &ValidateArgs) -> i32 {
    eprintln!(
        "error: this is a hardened build: it cannot read policy files at run time\n  = help: validate with a development build (default features)"
    );
    2
}
