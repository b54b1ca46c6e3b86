//! `portcullis scan`: connect to a live MCP server (a command over stdio,
//! or `--upstream URL` over Streamable HTTP), list its tools, and write a
//! policy scaffold: every tool, grouped by risk, with its description and
//! parameters as comments, in Intercept v1 YAML or the policy language.
//! With `-o FILE` the tool definitions are saved beside it as
//! `<stem>.tools.json`, which `portcullis validate` then checks rule paths
//! against.

use crate::cli::ScanArgs;

#[cfg(feature = "dynamic")]
pub(crate) mod mcp;
#[cfg(feature = "dynamic")]
pub mod scaffold;

#[cfg(feature = "dynamic")]
fn fail(msg: &str, help: &str) -> i32 {
    eprintln!("error: {msg}");
    if !help.is_empty() {
        eprintln!("  = help: {help}");
    }
    1
}

/// The server's name as a policy server name (a file stem): `[A-Za-z0-9_.-]`.
#[cfg(feature = "dynamic")]
pub(crate) fn sanitise(name: &str) -> String {
    let mut out = String::new();
    for c in name.chars() {
        if c.is_ascii_alphanumeric() || matches!(c, '-' | '_' | '.') {
            out.push(c);
        } else if !out.ends_with('_') {
            out.push('_');
        }
    }
    let out: String = out
        .trim_matches(|c| c == '_' || c == '.')
        .chars()
        .take(100)
        .collect();
    if out.is_empty() { "server".into() } else { out }
}

/// An URL as shown in the scaffold: no credentials, no query.
#[cfg(feature = "dynamic")]
pub(crate) fn shown_url(url: &str) -> String {
    let url = url.split(['?', '#']).next().unwrap_or(url);
    match url.split_once("://") {
        Some((scheme, rest)) => {
            let (authority, path) = match rest.find('/') {
                Some(i) => rest.split_at(i),
                None => (rest, ""),
            };
            let host = authority.rsplit('@').next().unwrap_or(authority);
            format!("{scheme}://{host}{path}")
        }
        None => url.to_string(),
    }
}

/// Scans the server and writes the scaffold; 0 on success, 1 on any failure.
#[cfg(feature = "dynamic")]
pub fn run(args: &ScanArgs) -> i32 {
    use std::time::Duration;

    use crate::cli::ScanFormat;
    use scaffold::Format;

    if !(args.timeout.is_finite() && args.timeout > 0.0 && args.timeout < 1e9) {
        return fail(
            &format!(
                "--timeout {} is not a positive number of seconds",
                args.timeout
            ),
            "",
        );
    }
    let timeout = Duration::from_secs_f64(args.timeout);

    // The file, its format and the server name it implies.
    let ext = args
        .output
        .as_ref()
        .map(|o| o.extension().and_then(|e| e.to_str()).unwrap_or_default());
    let format = match (args.format, ext) {
        (Some(ScanFormat::Dsl), _) | (None, Some("policy")) => Format::Dsl,
        _ => Format::Yaml,
    };
    let mut stem = None;
    if let Some(out) = &args.output {
        let fits = match format {
            Format::Yaml => matches!(ext, Some("yaml" | "yml")),
            Format::Dsl => ext == Some("policy"),
        };
        if !fits {
            let want = match format {
                Format::Yaml => "NAME.yaml",
                Format::Dsl => "NAME.policy",
            };
            return fail(
                &format!(
                    "-o {}: a {} policy file is named {want}",
                    out.display(),
                    match format {
                        Format::Yaml => "YAML",
                        Format::Dsl => "policy-language",
                    }
                ),
                "the file's stem is the server name, its extension the language (.yaml, .yml or .policy)",
            );
        }
        let s = out
            .file_stem()
            .and_then(|s| s.to_str())
            .unwrap_or_default()
            .to_string();
        if !portcullis_compiler::valid_server_name(&s) {
            return fail(
                &format!("-o {}: `{s}` is not a valid server name", out.display()),
                "name the file with letters, digits, `-`, `_` or `.` (the stem is the server name)",
            );
        }
        stem = Some(s);
    }

    if !args.header_env.is_empty() && args.upstream.is_none() {
        return fail(
            "--header-env requires --upstream",
            "headers are for a remote server; a command gets its settings from its arguments or environment",
        );
    }
    if !args.header.is_empty() && args.upstream.is_none() {
        return fail(
            "--header requires --upstream",
            "headers are for a remote server; a command gets its settings from its arguments or environment",
        );
    }

    // Connect and list.
    let (scanned, via) = if let Some(url) = &args.upstream {
        if !args.command.is_empty() {
            return fail(
                "give either --upstream URL or a command after `--`, not both",
                "",
            );
        }
        let headers =
            match crate::cli::upstream_headers(&args.header, &args.header_env, mcp::parse_header) {
                Ok(h) => h,
                Err((e, help)) => return fail(&e, help),
            };
        let mut http = match mcp::Http::new(url, headers, timeout) {
            Ok(h) => h,
            Err(e) => return fail(&e, ""),
        };
        (
            mcp::scan(&mut http),
            format!("{} (Streamable HTTP)", shown_url(url)),
        )
    } else if !args.command.is_empty() {
        let program = std::path::Path::new(&args.command[0])
            .file_name()
            .map(|n| n.to_string_lossy().into_owned())
            .unwrap_or_default();
        let mut server = match mcp::StdioServer::start(&args.command, timeout) {
            Ok(s) => s,
            Err(e) => return fail(&e, "check the command after `--`"),
        };
        (mcp::scan(&mut server), format!("`{program}` (stdio)"))
    } else {
        return fail(
            "nothing to scan",
            "portcullis scan -- CMD ARGS..., or portcullis scan --upstream URL",
        );
    };
    let scanned = match scanned {
        Ok(s) => s,
        Err(e) => return fail(&e, ""),
    };

    let tools: Vec<scaffold::ToolInfo> = scanned
        .tools
        .iter()
        .filter_map(|raw| scaffold::tool_info(raw))
        .collect();
    let file_name = args
        .output
        .as_ref()
        .and_then(|o| o.file_name())
        .map(|n| n.to_string_lossy().into_owned());
    let schemas_path = args.output.as_ref().map(|o| o.with_extension("tools.json"));
    let opts = scaffold::Options {
        format,
        server: scaffold::ServerInfo {
            name: scanned.name.clone(),
            version: scanned.version.clone(),
            title: scanned.title.clone(),
        },
        stem: stem.unwrap_or_else(|| sanitise(&scanned.name)),
        file_name,
        schemas_file: schemas_path
            .as_ref()
            .and_then(|p| p.file_name())
            .map(|n| n.to_string_lossy().into_owned()),
        via,
        date: portcullis_core::UnixMillis::now().to_rfc3339()[..10].to_string(),
        surfaces: scanned.surfaces.clone(),
    };
    let text = scaffold::write(&opts, &tools);

    let count = |r: scaffold::Risk| tools.iter().filter(|t| t.risk == r).count();
    let summary = format!(
        "scan: `{}` {}: {} tool{} ({} read, {} write, {} destructive)",
        scaffold::one_line(&scanned.name),
        scaffold::one_line(&scanned.version),
        tools.len(),
        if tools.len() == 1 { "" } else { "s" },
        count(scaffold::Risk::Read),
        count(scaffold::Risk::Write),
        count(scaffold::Risk::Destructive),
    );
    match (&args.output, &schemas_path) {
        (Some(out), Some(schemas)) => {
            if let Err(e) = std::fs::write(schemas, scaffold::tools_json(&scanned.tools)) {
                return fail(&format!("writing {}: {e}", schemas.display()), "");
            }
            if let Err(e) = std::fs::write(out, &text) {
                return fail(&format!("writing {}: {e}", out.display()), "");
            }
            eprintln!(
                "{summary}\nwrote {} and {}",
                out.display(),
                schemas.display()
            );
        }
        _ => {
            use std::io::Write;
            let mut stdout = std::io::stdout().lock();
            if let Err(e) = stdout
                .write_all(text.as_bytes())
                .and_then(|_| stdout.flush())
            {
                return fail(&format!("writing to stdout: {e}"), "");
            }
            eprintln!("{summary}\n(with -o FILE the tool schemas are saved beside the policy too)");
        }
    }
    0
}

/// Without the `dynamic` feature this binary has no policy writer.
#[cfg(not(feature = "dynamic"))]
pub fn run(_: &ScanArgs) -> i32 {
    eprintln!(
        "error: this is a hardened build: it cannot scan servers or write policies\n  = help: scan with a development build (default features)"
    );
    2
}
