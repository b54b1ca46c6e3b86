//! The Portcullis policy compiler.
//!
//! The pipeline, one module per pass:
//! [`source`] (files, spans, diagnostics) -> [`syntax`] (surface trees with
//! spans) -> [`lower`] (to the typed IR in [`ir`]) -> [`check`] (semantic
//! checks) -> [`eval`] (reference evaluator) and [`codegen`] (IR to Rust).
//! [`regex`] translates Go/RE2 patterns for both back ends; [`translate`]
//! writes any compiled policy in the policy language; [`schema`] checks rule
//! paths against the tool schemas `portcullis scan` saved. [`explain`] and
//! [`policy_tests`] run the evaluator with a tracer: `portcullis explain`,
//! `portcullis test` and its coverage.

#![warn(missing_docs)]
#![forbid(unsafe_code)]

pub mod check;
pub mod codegen;
pub mod eval;
pub mod explain;
pub mod ir;
pub mod lower;
pub mod policy_tests;
pub mod regex;
pub mod results;
pub mod schema;
pub mod source;
pub mod syntax;
pub mod translate;

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};

use sha2::{Digest, Sha256};

use crate::ir::{Dialect, PolicySet, ServerPolicy};
use crate::lower::PolicyBuilder;
use crate::source::{Diagnostic, Diagnostics, SourceFile, SourceMap, Span};

/// One policy source: a server name, a display path and the text.
#[derive(Debug, Clone)]
pub struct Input {
    /// Server name (the file stem).
    pub server: String,
    /// Path as shown in diagnostics and rule tables.
    pub path: String,
    /// The policy text.
    pub text: String,
}

/// The result of compiling a set of sources: the policies that lowered
/// cleanly and every diagnostic.
#[derive(Debug)]
pub struct Output {
    /// The sources, for rendering diagnostics.
    pub sources: SourceMap,
    /// Policies, sorted by server name (only those without errors).
    pub policies: Vec<ServerPolicy>,
    /// Errors and warnings, in a deterministic order.
    pub diagnostics: Diagnostics,
    /// sha256 over the sorted (name, text) pairs of all sources.
    pub digest: String,
}

impl Output {
    /// True when nothing is an error.
    pub fn is_ok(&self) -> bool {
        !self.diagnostics.has_errors()
    }

    /// The policy set, if there were no errors.
    pub fn into_set(self) -> Result<PolicySet, Output> {
        if self.is_ok() {
            Ok(PolicySet {
                servers: self.policies,
                sources: self.sources,
                digest: self.digest,
            })
        } else {
            Err(self)
        }
    }

    /// Every diagnostic, rendered.
    pub fn render(&self) -> String {
        self.diagnostics.render(&self.sources)
    }
}

/// A policy file and, for a policy-language file, the fragments it
/// `include`s (looked up beside it, recursively), ready for [`compile`].
pub fn load_file_with_includes(path: &Path) -> std::io::Result<Vec<Input>> {
    let mut inputs = vec![load_file(path, None)?];
    let dir = path.parent().unwrap_or_else(|| Path::new("."));
    let mut i = 0;
    while i < inputs.len() {
        if inputs[i].path.ends_with(".policy")
            && let Ok(file) = syntax::dsl::parse(source::FileId(0), &inputs[i].text)
        {
            for item in &file.items {
                if let syntax::dsl::Item::Include(name) = item {
                    let p = dir.join(&name.value);
                    if p.is_file() && !inputs.iter().any(|x| file_name(&x.path) == name.value) {
                        inputs.push(load_file(&p, None)?);
                    }
                }
            }
        }
        i += 1;
    }
    Ok(inputs)
}

/// File extensions that hold a server policy.
pub const POLICY_EXTENSIONS: [&str; 3] = ["yaml", "yml", "policy"];

/// How the names of policy test files end (`<server>.test.yaml`).
pub const TEST_FILE_SUFFIXES: [&str; 2] = [".test.yaml", ".test.yml"];

/// True for `*.test.yaml` / `*.test.yml` (policy tests, not policies).
pub fn is_test_file(name: &str) -> bool {
    TEST_FILE_SUFFIXES.iter().any(|s| name.ends_with(s))
}

/// The server policies in `dir` (not recursive), sorted by file name.
/// `display_prefix` replaces `dir` in the paths shown to users.
pub fn load_dir(dir: &Path, display_prefix: Option<&str>) -> std::io::Result<Vec<Input>> {
    let mut paths: Vec<PathBuf> = std::fs::read_dir(dir)?
        .filter_map(|e| e.ok().map(|e| e.path()))
        .filter(|p| p.is_file() && is_policy_path(p))
        .collect();
    paths.sort();
    paths
        .into_iter()
        .map(|p| {
            let file_name = p.file_name().and_then(|n| n.to_str()).unwrap_or_default();
            let display = match display_prefix {
                Some(prefix) => format!("{}/{file_name}", prefix.trim_end_matches('/')),
                None => p.display().to_string(),
            };
            load_file(&p, Some(display))
        })
        .collect()
}

/// The error for a policy directory that yields no server policy, or None
/// when it yields at least one. A binary built from such a directory would
/// enforce nothing (and its policy table would be empty), so the build stops
/// with this, naming what the directory does hold: nothing, only policy
/// tests, or only policy-language fragments. `dir` is the directory as shown,
/// `inputs` its policy files, `tests` its `*.test.yaml` paths and `servers`
/// how many server policies compiled. Returns (message, help).
pub fn no_policy_error(
    dir: &str,
    inputs: &[Input],
    tests: &[&str],
    servers: usize,
) -> Option<(String, String)> {
    if servers > 0 {
        return None;
    }
    let names =
        |paths: &mut dyn Iterator<Item = &str>| paths.map(file_name).collect::<Vec<_>>().join(", ");
    let elsewhere = "or set PORTCULLIS_ENV (policies/<env>/) or PORTCULLIS_POLICY_DIR to a directory that has one";
    Some(if !inputs.is_empty() {
        (
            format!(
                "no server policy in {dir}: {} only hold{} fragments (policy-language files without a `server` block, which enforce nothing on their own)",
                names(&mut inputs.iter().map(|i| i.path.as_str())),
                if inputs.len() == 1 { "s" } else { "" }
            ),
            format!(
                "add a `<server>.policy` with `server <name> {{ ... }}` that includes them, or a `<server>.yaml`, {elsewhere}"
            ),
        )
    } else if !tests.is_empty() {
        (
            format!(
                "no policy files in {dir}, only policy tests ({})",
                names(&mut tests.iter().copied())
            ),
            format!(
                "add the policy they test beside them (`<server>.yaml` for `<server>.test.yaml`), {elsewhere}"
            ),
        )
    } else {
        (
            format!("no policy files in {dir}"),
            format!(
                "add `<server>.yaml` (or `.yml`, `.policy`), one file per MCP server named after it, {elsewhere}"
            ),
        )
    })
}

/// True for a file that holds a server policy.
pub fn is_policy_path(p: &Path) -> bool {
    let name = p.file_name().and_then(|n| n.to_str()).unwrap_or_default();
    let ext = p.extension().and_then(|e| e.to_str()).unwrap_or_default();
    POLICY_EXTENSIONS.contains(&ext) && !is_test_file(name) && !name.starts_with('.')
}

/// One policy file; the server name is its stem.
pub fn load_file(path: &Path, display: Option<String>) -> std::io::Result<Input> {
    let bytes = std::fs::read(path)?;
    let text = String::from_utf8(bytes).map_err(|e| {
        std::io::Error::new(
            std::io::ErrorKind::InvalidData,
            format!(
                "{}: not UTF-8 (byte {})",
                path.display(),
                e.utf8_error().valid_up_to()
            ),
        )
    })?;
    let server = path
        .file_stem()
        .and_then(|s| s.to_str())
        .unwrap_or_default()
        .to_string();
    Ok(Input {
        server,
        path: display.unwrap_or_else(|| path.display().to_string()),
        text,
    })
}

fn sha256_hex(parts: &[&[u8]]) -> String {
    let mut h = Sha256::new();
    for p in parts {
        h.update(p);
    }
    h.finalize().iter().map(|b| format!("{b:02x}")).collect()
}

/// True for a server name Portcullis accepts (it becomes a Rust module name
/// after mangling, and a CLI argument): ASCII letters, digits, `-`, `_`, `.`.
pub fn valid_server_name(name: &str) -> bool {
    !name.is_empty()
        && name.len() <= 128
        && name
            .bytes()
            .all(|b| b.is_ascii_alphanumeric() || matches!(b, b'-' | b'_' | b'.'))
}

/// Compiles every input: parse, lower, check. Inputs are processed in server-name order.
pub fn compile(inputs: &[Input]) -> Output {
    let mut sorted: Vec<&Input> = inputs.iter().collect();
    sorted.sort_by(|a, b| a.server.cmp(&b.server).then(a.path.cmp(&b.path)));
    let mut parts: Vec<&[u8]> = Vec::new();
    for i in &sorted {
        parts.extend([i.server.as_bytes(), b"\0", i.text.as_bytes(), b"\0"]);
    }
    let digest = sha256_hex(&parts);
    let mut sources = SourceMap::new();
    let mut diagnostics = Diagnostics::default();
    let mut policies = Vec::new();

    // Policy-language files are parsed first: a file without a `server`
    // block is a fragment for `include`, not a server policy.
    let files: Vec<source::FileId> = sorted
        .iter()
        .map(|i| sources.add(SourceFile::new(&i.path, i.text.as_str())))
        .collect();
    let mut parsed: Vec<Option<Result<syntax::dsl::File, Vec<Diagnostic>>>> = Vec::new();
    for (input, &file) in sorted.iter().zip(&files) {
        parsed.push(is_dsl(input).then(|| syntax::dsl::parse(file, &input.text)));
    }
    let fragments: BTreeMap<&str, &syntax::dsl::File> = sorted
        .iter()
        .zip(&parsed)
        .filter_map(|(input, p)| match p {
            Some(Ok(f)) => Some((file_name(&input.path), f)),
            _ => None,
        })
        .collect();
    let lookup = |name: &str| fragments.get(name).copied();

    let mut previous: Option<(&str, Span)> = None;
    for ((input, &file), parse) in sorted.iter().zip(&files).zip(&parsed) {
        let whole = Span::new(file, 0, 0);
        let mut diags = Vec::new();
        let dsl_file = match parse {
            Some(Err(errors)) => {
                diags.extend(errors.iter().cloned());
                diags.into_iter().for_each(|d| diagnostics.push(d));
                continue;
            }
            Some(Ok(f)) if f.server.is_none() => {
                // A fragment: its own problems are reported here, once.
                f.problems.iter().cloned().for_each(|d| diagnostics.push(d));
                continue;
            }
            Some(Ok(f)) => {
                diags.extend(f.problems.iter().cloned());
                Some(f)
            }
            None => None,
        };
        if let Some((prev, prev_span)) = previous
            && prev == input.server
        {
            diagnostics.push(
                Diagnostic::error(format!("two policies for server `{}`", input.server), whole)
                    .with_label(prev_span, "the other one")
                    .with_help("a server has one policy file; remove or rename one of them"),
            );
            continue;
        }
        previous = Some((&input.server, whole));
        if !valid_server_name(&input.server) {
            diagnostics.push(
                Diagnostic::error(format!("`{}` is not a valid server name", input.server), whole)
                    .with_help("name the file with letters, digits, `-`, `_` or `.` (the stem is the server name)"),
            );
            continue;
        }
        let policy = match dsl_file {
            Some(f) => {
                let b = PolicyBuilder::new(
                    &input.server,
                    file,
                    &input.path,
                    Dialect::Dsl,
                    sha256_hex(&[input.text.as_bytes()]),
                );
                lower::dsl::lower(f, &lookup, b, &mut diags)
            }
            None => compile_yaml(input, file, &mut diags),
        };
        if let Some(policy) = policy {
            diags.extend(check::check(&policy));
            if !diags.iter().any(Diagnostic::is_error) {
                policies.push(policy);
            }
        }
        diags.into_iter().for_each(|d| diagnostics.push(d));
    }
    Output {
        sources,
        policies,
        diagnostics,
        digest,
    }
}

fn is_dsl(input: &Input) -> bool {
    input.path.ends_with(".policy")
}

fn file_name(path: &str) -> &str {
    path.rsplit(['/', '\\']).next().unwrap_or(path)
}

fn compile_yaml(
    input: &Input,
    file: source::FileId,
    diags: &mut Vec<Diagnostic>,
) -> Option<ServerPolicy> {
    let digest = sha256_hex(&[input.text.as_bytes()]);
    let whole = Span::new(file, 0, 0);
    let root = match syntax::yaml::parse(file, &input.text) {
        Ok(root) => root,
        Err(errors) => {
            diags.extend(errors);
            return None;
        }
    };
    let is_intercept = match &root {
        None => true,
        Some(r) => {
            r.get("version").is_some() || !matches!(r.value, syntax::yaml::NodeValue::Map(_))
        }
    };
    if is_intercept {
        let b = PolicyBuilder::new(
            &input.server,
            file,
            &input.path,
            Dialect::InterceptV1,
            digest,
        );
        lower::intercept::lower(root.as_ref(), b, whole, diags)
    } else {
        let b = PolicyBuilder::new(&input.server, file, &input.path, Dialect::Catalogue, digest);
        lower::catalogue::lower(root.as_ref()?, b, diags)
    }
}
