//! What `portcullis init` writes for one scanned server: a policy in the
//! catalogue form with safe defaults by risk, the policy tests that pin
//! those defaults, and the saved scan the `ui` page reads.
//!
//! The risk of each tool comes from `scan`'s classifier
//! ([`scaffold::tool_info`]), and the comments above each tool are the
//! ones `scan` writes, so both commands describe tools the same way.

use crate::commands::scan::scaffold::{self, Risk, ToolInfo};

/// Calls a write tool may make per window, per agent session.
pub const WRITE_MAX: u32 = 30;
/// The window of that limit, in seconds.
pub const WRITE_WINDOW: u32 = 60;

/// What the scaffold says about where the server came from.
pub struct Origin<'a> {
    /// The policy's server name (the file stem).
    pub stem: &'a str,
    /// `serverInfo` from `initialize`.
    pub server: &'a scaffold::ServerInfo,
    /// The client and entry it was found in, e.g. `cursor, ~/.cursor/mcp.json, mcpServers.fs`.
    pub found_in: &'a str,
    /// Today, `YYYY-MM-DD`.
    pub date: &'a str,
}

/// The denial message of a destructive tool.
pub fn destructive_reason(tool: &str) -> String {
    format!("Tool \"{tool}\" can delete or overwrite: denied until a person allows it")
}

/// The denial message of the 31st write call within 60 seconds (the catalogue's default).
pub fn rate_message(tool: &str) -> String {
    format!(
        "Rate limit of {WRITE_MAX} calls to {tool} per {WRITE_WINDOW} seconds reached. Try again later."
    )
}

/// The effect init gives a tool of this risk: `allow`, `limit` or `deny`.
pub fn effect(risk: Risk) -> &'static str {
    match risk {
        Risk::Read => "allow",
        Risk::Write => "limit",
        Risk::Destructive => "deny",
    }
}

fn risk_name(risk: Risk) -> &'static str {
    match risk {
        Risk::Read => "read",
        Risk::Write => "write",
        Risk::Destructive => "destructive",
    }
}

/// The tools a policy can list by name (`*` is the wildcard, not a tool).
fn listable(tools: &[ToolInfo]) -> Vec<(Risk, Vec<&ToolInfo>)> {
    scaffold::grouped(tools)
        .into_iter()
        .map(|(r, g)| (r, g.into_iter().filter(|t| t.name != "*").collect()))
        .filter(|(_, g): &(Risk, Vec<&ToolInfo>)| !g.is_empty())
        .collect()
}

/// The policy: catalogue-form YAML, `default: deny`, every tool listed
/// with the effect of its risk.
pub fn policy_yaml(o: &Origin<'_>, tools: &[ToolInfo]) -> String {
    let n = tools.len();
    let annotated = tools.iter().filter(|t| t.annotated).count();
    let server = scaffold::one_line(&o.server.name);
    let mut out = String::new();
    let header = [
        format!(
            "Policy for the MCP server `{server}` {}: {n} tool{}.",
            scaffold::one_line(&o.server.version),
            if n == 1 { "" } else { "s" }
        ),
        format!("Written by `portcullis init` on {} from", o.date),
        format!("  {}.", scaffold::one_line(o.found_in)),
        String::new(),
        "Safe defaults by risk; review them before you build the artifact:".into(),
        "  - read tools are allowed;".into(),
        format!(
            "  - write tools are allowed {WRITE_MAX} calls per {WRITE_WINDOW} seconds per agent session;"
        ),
        "  - destructive tools are denied;".into(),
        "  - a tool the server adds later is denied (default: deny) until it".into(),
        "    is listed here.".into(),
        format!(
            "The server's annotations (readOnlyHint, destructiveHint) decided {annotated} of {n};"
        ),
        "the others are guessed from their names: review the groups.".into(),
        format!(
            "{}.test.yaml pins these defaults: change it with this file (portcullis test).",
            o.stem
        ),
        "The format is Portcullis' catalogue form (docs/policy-yaml.md).".into(),
    ];
    for l in header {
        scaffold::comment(&mut out, "", "#", &l);
    }
    out.push('\n');
    out.push_str(&format!(
        "description: {}\n",
        scaffold::yaml_quote(&format!("Policy for {} (portcullis init)", o.server.name))
    ));
    out.push_str("default: deny\n");
    let groups = listable(tools);
    if groups.is_empty() {
        out.push_str("tools: {}\n");
        return out;
    }
    out.push_str("tools:\n");
    for (risk, group) in &groups {
        out.push('\n');
        scaffold::comment(
            &mut out,
            "  ",
            "#",
            &scaffold::group_heading(*risk, group.len()),
        );
        for t in group {
            out.push('\n');
            for l in scaffold::tool_comments(t, scaffold::Format::Yaml) {
                scaffold::comment(&mut out, "  ", "#", &l);
            }
            out.push_str(&format!("  {}:\n    rules:\n", scaffold::yaml_key(&t.name)));
            match risk {
                Risk::Read => out.push_str("      - action: allow\n"),
                Risk::Write => out.push_str(&format!(
                    "      - action: allow\n        rate_limit:\n          max: {WRITE_MAX}\n          window: {WRITE_WINDOW}\n"
                )),
                Risk::Destructive => out.push_str(&format!(
                    "      - action: deny\n        reason: {}\n",
                    scaffold::yaml_quote(&destructive_reason(&t.name))
                )),
            }
        }
    }
    out
}

/// A tool name no server in its right mind has, for the "unlisted" case.
const UNLISTED: &str = "portcullis-init-unlisted-tool";

/// The tests pinning [`policy_yaml`]'s defaults: every read tool allowed,
/// every write tool allowed once and the first one limited, every
/// destructive tool denied, an unlisted tool denied.
pub fn tests_yaml(o: &Origin<'_>, tools: &[ToolInfo]) -> String {
    let q = scaffold::yaml_quote;
    let mut out = String::new();
    scaffold::comment(
        &mut out,
        "",
        "#",
        &format!(
            "Tests pinning the defaults `portcullis init` wrote into {}.yaml on {}:",
            o.stem, o.date
        ),
    );
    scaffold::comment(
        &mut out,
        "",
        "#",
        "change them together with the policy (docs/policy-testing.md).",
    );
    out.push_str("cases:\n");
    let groups = listable(tools);
    let of = |r: Risk| {
        groups
            .iter()
            .find(|(g, _)| *g == r)
            .map(|(_, ts)| ts.as_slice())
            .unwrap_or(&[])
    };
    let read = of(Risk::Read);
    if !read.is_empty() {
        out.push_str("  - name: read tools are allowed\n    calls:\n");
        for t in read {
            out.push_str(&format!(
                "      - {{tool: {}, expect: allow}}\n",
                q(&t.name)
            ));
        }
    }
    let write = of(Risk::Write);
    if let Some(first) = write.first() {
        out.push_str("  - name: write tools are allowed\n    calls:\n");
        for t in write {
            out.push_str(&format!(
                "      - {{tool: {}, expect: allow}}\n",
                q(&t.name)
            ));
        }
        out.push_str(&format!(
            "  - name: {}\n    calls:\n",
            q(&format!(
                "write tools: {WRITE_MAX} calls per {WRITE_WINDOW} seconds per session ({})",
                first.name
            ))
        ));
        for _ in 0..WRITE_MAX {
            out.push_str(&format!(
                "      - {{tool: {}, expect: allow}}\n",
                q(&first.name)
            ));
        }
        out.push_str(&format!(
            "      - tool: {}\n        expect: deny\n        message: {}\n",
            q(&first.name),
            q(&rate_message(&first.name))
        ));
        // Sliding windows keep 60 slots: a call frees one slot after the window.
        out.push_str(&format!(
            "      - {{tool: {}, at: \"2026-01-15T10:31:02Z\", expect: allow}}\n",
            q(&first.name)
        ));
    }
    let destructive = of(Risk::Destructive);
    if !destructive.is_empty() {
        out.push_str("  - name: destructive tools are denied\n    calls:\n");
        for t in destructive {
            out.push_str(&format!(
                "      - tool: {}\n        expect: deny\n        message: {}\n",
                q(&t.name),
                q(&destructive_reason(&t.name))
            ));
        }
    }
    if !tools.iter().any(|t| t.name == UNLISTED) {
        out.push_str(&format!(
            "  - name: a tool the policy does not list is denied\n    calls:\n      - tool: {UNLISTED}\n        expect: deny\n        message: {}\n",
            q(&format!("Tool \"{UNLISTED}\" is not permitted by policy"))
        ));
    }
    out
}

/// Where a scanned server came from, for the saved scan.
pub struct Source<'a> {
    /// The client.
    pub client: &'a str,
    /// The configuration file.
    pub file: &'a str,
    /// The entry in it (`mcpServers.fs`).
    pub entry: &'a str,
    /// `stdio` or `http`.
    pub transport: &'a str,
    /// The program (stdio; its arguments are not saved: they may hold secrets).
    pub program: Option<&'a str>,
    /// The URL without credentials or query (http).
    pub url: Option<String>,
}

/// The saved scan, `policies/<env>/.scan/<server>.json` (format
/// `portcullis-scan/1`, documented in docs/init.md).
pub fn scan_json(
    o: &Origin<'_>,
    src: &Source<'_>,
    scanned_at: &str,
    raw_tools: &[Vec<u8>],
) -> String {
    use serde_json::{Value, json};
    let mut tools = Vec::new();
    for raw in raw_tools {
        let Some(info) = scaffold::tool_info(raw) else {
            continue;
        };
        let definition: Value = serde_json::from_slice(raw).unwrap_or(Value::Null);
        tools.push(json!({
            "name": info.name,
            "risk": risk_name(info.risk),
            "annotated": info.annotated,
            "effect": if info.name == "*" { "deny" } else { effect(info.risk) },
            "definition": definition,
        }));
    }
    let doc = json!({
        "format": "portcullis-scan/1",
        "server": o.stem,
        "serverInfo": {
            "name": o.server.name,
            "version": o.server.version,
            "title": o.server.title,
        },
        "scannedAt": scanned_at,
        "source": {
            "client": src.client,
            "file": src.file,
            "entry": src.entry,
            "transport": src.transport,
            "program": src.program,
            "url": src.url,
        },
        "defaults": {
            "read": "allow",
            "write": {"effect": "limit", "max": WRITE_MAX, "window": WRITE_WINDOW, "per": "session"},
            "destructive": "deny",
            "unlisted": "deny",
        },
        "tools": tools,
    });
    let mut s = serde_json::to_string_pretty(&doc).expect("JSON values serialise");
    s.push('\n');
    s
}

#[cfg(test)]
mod tests {
    use super::*;

    /// A tool definition with this name and annotations.
    fn tool(name: &str, annotations: &str) -> ToolInfo {
        let raw = format!(
            r#"{{"name":{},"description":"d","inputSchema":{{"type":"object"}},"annotations":{annotations}}}"#,
            serde_json::to_string(name).unwrap()
        );
        scaffold::tool_info(raw.as_bytes()).unwrap()
    }

    /// Names YAML would misread unquoted, and `*`, still give a policy that
    /// validates and tests that pass (through the commands' own code).
    #[test]
    fn awkward_names_validate_and_their_tests_pass() {
        let tools = vec![
            tool("yes", r#"{"readOnlyHint":true}"#),
            tool("a b \"q\"", r#"{"readOnlyHint":true}"#),
            tool("null", r#"{"destructiveHint":false}"#),
            tool("017", r#"{"destructiveHint":false}"#),
            tool("delete.all", "{}"),
            tool("*", "{}"),
            tool("日本", r#"{"destructiveHint":true}"#),
        ];
        let server = scaffold::ServerInfo {
            name: "odd \"server\"".into(),
            version: "1".into(),
            title: None,
        };
        let o = Origin {
            stem: "odd",
            server: &server,
            found_in: "cursor ~/.cursor/mcp.json, mcpServers.odd",
            date: "2026-01-01",
        };
        let dir =
            std::env::temp_dir().join(format!("portcullis-init-policy-{}", std::process::id()));
        let _ = std::fs::remove_dir_all(&dir);
        std::fs::create_dir_all(&dir).unwrap();
        std::fs::write(dir.join("odd.yaml"), policy_yaml(&o, &tools)).unwrap();
        std::fs::write(dir.join("odd.test.yaml"), tests_yaml(&o, &tools)).unwrap();
        let validated = crate::commands::validate::run(&crate::cli::ValidateArgs {
            config: None,
            paths: vec![dir.clone()],
            deny_warnings: true,
        });
        let tested = crate::commands::test::run(&crate::cli::TestArgs {
            paths: vec![dir.clone()],
            coverage: false,
            min_coverage: None,
        });
        let policy = std::fs::read_to_string(dir.join("odd.yaml")).unwrap();
        let _ = std::fs::remove_dir_all(&dir);
        assert_eq!((validated, tested), (0, 0), "{policy}");
        assert!(
            !policy.contains("\n  \"*\":"),
            "`*` is not a tool:\n{policy}"
        );
    }
}
