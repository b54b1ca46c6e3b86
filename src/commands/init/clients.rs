//! Where each MCP client keeps its server configuration, what a server
//! entry looks like, and the surgical edit that makes an entry run its
//! server through Portcullis.
//!
//! Locations (Linux; macOS where it differs), `~` being `$HOME` and
//! `$XDG_CONFIG_HOME` defaulting to `~/.config`:
//!
//! | client | file | servers under |
//! |---|---|---|
//! | `claude-desktop` | `$XDG_CONFIG_HOME/Claude/claude_desktop_config.json` (macOS: `~/Library/Application Support/Claude/claude_desktop_config.json`) | `mcpServers` |
//! | `claude-code` | `<project>/.mcp.json`; `~/.claude.json` | `mcpServers`; also `projects.<dir>.mcpServers` in `~/.claude.json` |
//! | `cursor` | `~/.cursor/mcp.json`; `<project>/.cursor/mcp.json` | `mcpServers` |
//! | `vscode` | `<project>/.vscode/mcp.json`; `$XDG_CONFIG_HOME/Code/User/mcp.json` (macOS: `~/Library/Application Support/Code/User/mcp.json`) | `servers` |
//! | `windsurf` | `~/.codeium/windsurf/mcp_config.json` | `mcpServers` |

use std::path::{Path, PathBuf};

use super::jsonc::{self, Kind, Member, Value};

/// One configuration file a client may have.
#[derive(Debug, Clone)]
pub struct Location {
    /// The client (one of [`CLIENTS`]).
    pub client: &'static str,
    /// The file.
    pub path: PathBuf,
    /// The key holding the servers: `servers` (VS Code) or `mcpServers`.
    pub key: &'static str,
    /// Also look under `projects.*.<key>` (Claude Code's `~/.claude.json`).
    pub per_project: bool,
}

/// Every location of the clients named in `only` (all when empty), for
/// this home, XDG config directory and project.
pub fn locations(home: &Path, xdg: &Path, project: &Path, only: &[String]) -> Vec<Location> {
    let mac = cfg!(target_os = "macos");
    let app_support = home.join("Library/Application Support");
    let mut all = vec![
        (
            "claude-desktop",
            if mac {
                app_support.join("Claude/claude_desktop_config.json")
            } else {
                xdg.join("Claude/claude_desktop_config.json")
            },
            "mcpServers",
            false,
        ),
        (
            "claude-code",
            project.join(".mcp.json"),
            "mcpServers",
            false,
        ),
        ("claude-code", home.join(".claude.json"), "mcpServers", true),
        ("cursor", home.join(".cursor/mcp.json"), "mcpServers", false),
        (
            "cursor",
            project.join(".cursor/mcp.json"),
            "mcpServers",
            false,
        ),
        ("vscode", project.join(".vscode/mcp.json"), "servers", false),
        (
            "vscode",
            if mac {
                app_support.join("Code/User/mcp.json")
            } else {
                xdg.join("Code/User/mcp.json")
            },
            "servers",
            false,
        ),
        (
            "windsurf",
            home.join(".codeium/windsurf/mcp_config.json"),
            "mcpServers",
            false,
        ),
    ];
    all.retain(|(c, ..)| only.is_empty() || only.iter().any(|o| o == c));
    // One file can be two locations only if HOME is the project: keep the first.
    let mut seen = Vec::new();
    all.into_iter()
        .filter(|(_, p, ..)| {
            let fresh = !seen.contains(p);
            seen.push(p.clone());
            fresh
        })
        .map(|(client, path, key, per_project)| Location {
            client,
            path,
            key,
            per_project,
        })
        .collect()
}

/// How a server is reached.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Target {
    /// A command over stdio: program, arguments, environment.
    Stdio {
        /// The command and its arguments.
        argv: Vec<String>,
        /// The `env` the client sets.
        env: Vec<(String, String)>,
    },
    /// A remote server.
    Http {
        /// The URL.
        url: String,
        /// Headers, name and value (the value is never printed).
        headers: Vec<(String, String)>,
    },
}

/// One server entry of a configuration file.
#[derive(Debug, Clone)]
pub struct Entry {
    /// Its key in the file.
    pub name: String,
    /// Where it is, for messages (`mcpServers.github`, `projects./x.mcpServers.github`).
    pub at: String,
    /// The server (for an entry already wrapped: the original command after `--`).
    pub target: Target,
    /// The entry already runs through Portcullis (`portcullis... --server N -- CMD`).
    pub wrapped: bool,
    /// Why it cannot be rewritten (shown, and the entry is left alone).
    pub unsupported: Option<String>,
}

/// The server entries of one parsed file.
pub fn entries(doc: &Value, loc: &Location) -> Vec<Entry> {
    let mut out = Vec::new();
    let mut tables: Vec<(String, &Value)> = Vec::new();
    if let Some(m) = doc.get(loc.key) {
        tables.push((loc.key.to_string(), &m.value));
    }
    if loc.per_project
        && let Some(p) = doc.get("projects")
        && let Kind::Object(projects) = &p.value.kind
    {
        for proj in projects {
            if let Some(m) = proj.value.get(loc.key) {
                tables.push((format!("projects.{}.{}", proj.key, loc.key), &m.value));
            }
        }
    }
    for (at, table) in tables {
        let Kind::Object(servers) = &table.kind else {
            continue;
        };
        for m in servers {
            out.push(entry(m, &at));
        }
    }
    out
}

fn strings(v: &Value) -> Option<Vec<String>> {
    match &v.kind {
        Kind::Array(items) => items
            .iter()
            .map(|i| match &i.kind {
                Kind::Str(s) => Some(s.clone()),
                _ => None,
            })
            .collect(),
        _ => None,
    }
}

fn string_map(v: &Value) -> Option<Vec<(String, String)>> {
    match &v.kind {
        Kind::Object(ms) => ms
            .iter()
            .map(|m| match &m.value.kind {
                Kind::Str(s) => Some((m.key.clone(), s.clone())),
                _ => None,
            })
            .collect(),
        _ => None,
    }
}

/// True for `portcullis`, `/x/portcullis`, `portcullis-prod`, `dist/portcullis-default`.
fn is_portcullis(program: &str) -> bool {
    Path::new(program)
        .file_name()
        .and_then(|n| n.to_str())
        .is_some_and(|n| n.starts_with("portcullis"))
}

fn entry(m: &Member, at: &str) -> Entry {
    let v = &m.value;
    let mut e = Entry {
        name: m.key.clone(),
        at: format!("{at}.{}", m.key),
        target: Target::Stdio {
            argv: Vec::new(),
            env: Vec::new(),
        },
        wrapped: false,
        unsupported: None,
    };
    if !matches!(v.kind, Kind::Object(_)) {
        e.unsupported = Some("the entry is not an object".into());
        return e;
    }
    if let Some(command) = v.get_str("command") {
        let args = match v.get("args") {
            None => Some(Vec::new()),
            Some(a) => strings(&a.value),
        };
        let Some(args) = args else {
            e.unsupported = Some("`args` is not a list of strings".into());
            return e;
        };
        let env = match v.get("env") {
            None => Some(Vec::new()),
            Some(a) => string_map(&a.value),
        };
        let Some(env) = env else {
            e.unsupported = Some("`env` is not an object of strings".into());
            return e;
        };
        let mut argv = vec![command.to_string()];
        argv.extend(args);
        let policy_flag = argv
            .iter()
            .any(|a| matches!(a.as_str(), "--server" | "-c" | "--config"));
        if is_portcullis(command)
            && policy_flag
            && let Some(dash) = argv.iter().position(|a| a == "--")
        {
            e.wrapped = true;
            argv.drain(..=dash);
        } else if is_portcullis(command) && argv.iter().any(|a| a == "--upstream") {
            e.wrapped = true;
            let url = argv
                .iter()
                .position(|a| a == "--upstream")
                .and_then(|i| argv.get(i + 1))
                .cloned()
                .unwrap_or_default();
            e.target = Target::Http {
                url,
                headers: Vec::new(),
            };
            return e;
        }
        e.target = Target::Stdio { argv, env };
        return e;
    }
    let url = v.get_str("url").or_else(|| v.get_str("serverUrl"));
    let Some(url) = url else {
        e.unsupported = Some("neither `command` nor `url`".into());
        return e;
    };
    let headers = match v.get("headers") {
        None => Some(Vec::new()),
        Some(h) => string_map(&h.value),
    };
    let Some(headers) = headers else {
        e.unsupported = Some("`headers` is not an object of strings".into());
        return e;
    };
    // The headers move into `env` when the entry is rewritten.
    if v.get("env")
        .is_some_and(|env| string_map(&env.value).is_none())
    {
        e.unsupported = Some("`env` is not an object of strings".into());
        return e;
    }
    e.target = Target::Http {
        url: url.to_string(),
        headers,
    };
    e
}

/// The indentation of the line holding byte `at`, if only blanks precede it there.
fn indent_at(text: &str, at: usize) -> Option<&str> {
    let line_start = text[..at].rfind('\n').map_or(0, |i| i + 1);
    let ind = &text[line_start..at];
    ind.chars().all(|c| c == ' ' || c == '\t').then_some(ind)
}

/// The edits that make the server entry `m` run through `portcullis`,
/// whose first arguments (the policy to enforce) are `lead`.
fn wrap_edits(
    text: &str,
    m: &Member,
    portcullis: &str,
    lead: &[String],
) -> Vec<(usize, usize, String)> {
    let v = &m.value;
    let mut edits = Vec::new();
    if let Some(cmd) = v.get("command") {
        let Kind::Str(command) = &cmd.value.kind else {
            return edits;
        };
        edits.push((cmd.value.start, cmd.value.end, jsonc::quote(portcullis)));
        let mut prefix: Vec<String> = lead.iter().map(|s| jsonc::quote(s)).collect();
        prefix.push(jsonc::quote("--"));
        prefix.push(jsonc::quote(command));
        match v.get("args").map(|a| &a.value) {
            Some(
                arr @ Value {
                    kind: Kind::Array(items),
                    ..
                },
            ) => match items.first() {
                None => edits.push((arr.start, arr.end, format!("[{}]", prefix.join(", ")))),
                Some(first) => {
                    let gap = &text[arr.start + 1..first.start];
                    let sep = match indent_at(text, first.start) {
                        Some(ind) if gap.contains('\n') => format!("\n{ind}"),
                        _ => " ".to_string(),
                    };
                    let mut ins = String::new();
                    for p in prefix {
                        ins.push_str(&p);
                        ins.push(',');
                        ins.push_str(&sep);
                    }
                    edits.push((first.start, first.start, ins));
                }
            },
            _ => {
                let sep = match indent_at(text, cmd.key_start) {
                    Some(ind) if text[v.start..cmd.key_start].contains('\n') => {
                        format!(",\n{ind}")
                    }
                    _ => ", ".to_string(),
                };
                edits.push((
                    cmd.value.end,
                    cmd.value.end,
                    format!("{sep}\"args\": [{}]", prefix.join(", ")),
                ));
            }
        }
        return edits;
    }
    // A remote server: the entry becomes a command, `portcullis --upstream URL`.
    let Kind::Object(members) = &v.kind else {
        return edits;
    };
    let Some(url_i) = members
        .iter()
        .position(|m| m.key == "url" || m.key == "serverUrl")
    else {
        return edits;
    };
    let url = &members[url_i];
    let Kind::Str(url_text) = &url.value.kind else {
        return edits;
    };
    let mut args: Vec<String> = lead.iter().map(|s| jsonc::quote(s)).collect();
    args.push(jsonc::quote("--upstream"));
    args.push(jsonc::quote(url_text));
    // Headers (credentials, as a rule) go to the proxy through its
    // environment (`--header-env VAR`), which only its user can read, not
    // as arguments, which every user of the machine sees in the process
    // list. The client sets that environment from the entry's `env`.
    let env = members
        .iter()
        .find(|m| m.key == "env")
        .and_then(|m| match &m.value.kind {
            Kind::Object(ms) => Some((&m.value, ms)),
            _ => None,
        });
    let mut taken: Vec<String> = env
        .map(|(_, ms)| ms.iter().map(|m| m.key.clone()).collect())
        .unwrap_or_default();
    let mut vars = Vec::new();
    let mut removed = None;
    if let Some(hi) = members.iter().position(|m| m.key == "headers") {
        if let Kind::Object(hs) = &members[hi].value.kind {
            for h in hs {
                if let Kind::Str(val) = &h.value.kind {
                    let var = header_var(&h.key, &mut taken);
                    args.push(jsonc::quote("--header-env"));
                    args.push(jsonc::quote(&var));
                    vars.push(format!(
                        "{}: {}",
                        jsonc::quote(&var),
                        jsonc::quote(&format!("{}: {val}", h.key))
                    ));
                }
            }
        }
        removed = Some(hi);
    }
    let mut entry = format!(
        "\"command\": {}, \"args\": [{}]",
        jsonc::quote(portcullis),
        args.join(", ")
    );
    match env {
        _ if vars.is_empty() => {}
        None => entry.push_str(&format!(", \"env\": {{{}}}", vars.join(", "))),
        Some((_, ms)) if !ms.is_empty() => {
            let at = ms[0].key_start;
            edits.push((at, at, format!("{}, ", vars.join(", "))));
        }
        Some((value, _)) => {
            edits.push((value.start, value.end, format!("{{{}}}", vars.join(", "))))
        }
    }
    edits.push((url.key_start, url.value.end, entry));
    if let Some(t) = members.iter().find(|m| m.key == "type") {
        edits.push((t.value.start, t.value.end, jsonc::quote("stdio")));
    }
    if let Some(hi) = removed {
        // Remove the `headers` member and one comma next to it.
        let h = &members[hi];
        if let Some(next) = members.get(hi + 1) {
            edits.push((h.key_start, next.key_start, String::new()));
        } else if hi > 0 {
            edits.push((members[hi - 1].value.end, h.value.end, String::new()));
        }
    }
    edits
}

/// The environment variable that carries header `name` to the proxy
/// (`--header-env`): `PORTCULLIS_HEADER_` and the name in capitals, other
/// characters as `_`; `_2`, `_3`... when `taken` has it (the entry's own
/// `env`, the headers before it).
fn header_var(name: &str, taken: &mut Vec<String>) -> String {
    let base: String = "PORTCULLIS_HEADER_"
        .chars()
        .chain(name.chars().map(|c| {
            if c.is_ascii_alphanumeric() {
                c.to_ascii_uppercase()
            } else {
                '_'
            }
        }))
        .collect();
    let mut var = base.clone();
    let mut n = 1;
    while taken.contains(&var) {
        n += 1;
        var = format!("{base}_{n}");
    }
    taken.push(var.clone());
    var
}

/// The file's text with every entry for which `wrap` gives the policy
/// arguments (`--server NAME`, `-c FILE`) run through Portcullis. Entries
/// already wrapped are left alone.
pub fn rewrite(
    text: &str,
    loc: &Location,
    portcullis: &str,
    wrap: &dyn Fn(&Entry) -> Option<Vec<String>>,
) -> Result<String, jsonc::Error> {
    let doc = jsonc::parse(text)?;
    let mut tables: Vec<(String, &Value)> = Vec::new();
    if let Some(m) = doc.get(loc.key) {
        tables.push((loc.key.to_string(), &m.value));
    }
    if loc.per_project
        && let Some(p) = doc.get("projects")
        && let Kind::Object(projects) = &p.value.kind
    {
        for proj in projects {
            if let Some(m) = proj.value.get(loc.key) {
                tables.push((format!("projects.{}.{}", proj.key, loc.key), &m.value));
            }
        }
    }
    let mut edits = Vec::new();
    for (at, table) in tables {
        let Kind::Object(servers) = &table.kind else {
            continue;
        };
        for m in servers {
            let e = entry(m, &at);
            if e.wrapped || e.unsupported.is_some() {
                continue;
            }
            if let Some(lead) = wrap(&e) {
                edits.extend(wrap_edits(text, m, portcullis, &lead));
            }
        }
    }
    Ok(jsonc::apply(text, edits))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn loc(key: &'static str) -> Location {
        Location {
            client: "cursor",
            path: PathBuf::from("x"),
            key,
            per_project: true,
        }
    }

    fn wrap_all(text: &str, key: &'static str) -> String {
        rewrite(text, &loc(key), "/bin/portcullis", &|e| {
            Some(vec!["--server".into(), e.name.clone()])
        })
        .unwrap()
    }

    #[test]
    fn stdio_multiline_args_keep_layout_and_comments() {
        let text = "{\n  // mine\n  \"mcpServers\": {\n    \"fs\": {\n      \"command\": \"npx\",\n      \"args\": [\n        \"-y\", // pkg\n        \"x\"\n      ],\n      \"env\": {\"A\": \"1\"}\n    }\n  },\n  \"other\": 1\n}\n";
        let out = wrap_all(text, "mcpServers");
        assert_eq!(
            out,
            "{\n  // mine\n  \"mcpServers\": {\n    \"fs\": {\n      \"command\": \"/bin/portcullis\",\n      \"args\": [\n        \"--server\",\n        \"fs\",\n        \"--\",\n        \"npx\",\n        \"-y\", // pkg\n        \"x\"\n      ],\n      \"env\": {\"A\": \"1\"}\n    }\n  },\n  \"other\": 1\n}\n"
        );
        // Idempotent: the wrapped entry is recognised and left alone.
        assert_eq!(wrap_all(&out, "mcpServers"), out);
        let doc = jsonc::parse(&out).unwrap();
        let e = entries(&doc, &loc("mcpServers"));
        assert!(e[0].wrapped);
        assert_eq!(
            e[0].target,
            Target::Stdio {
                argv: vec!["npx".into(), "-y".into(), "x".into()],
                env: vec![("A".into(), "1".into())]
            }
        );
    }

    #[test]
    fn stdio_without_args_and_inline() {
        let text = "{\"mcpServers\": {\"a\": {\"command\": \"srv\"}, \"b\": {\"command\": \"s\", \"args\": []}}}";
        assert_eq!(
            wrap_all(text, "mcpServers"),
            "{\"mcpServers\": {\"a\": {\"command\": \"/bin/portcullis\", \"args\": [\"--server\", \"a\", \"--\", \"srv\"]}, \"b\": {\"command\": \"/bin/portcullis\", \"args\": [\"--server\", \"b\", \"--\", \"s\"]}}}"
        );
    }

    #[test]
    fn http_becomes_upstream_and_headers_move() {
        let text = "{\n  \"servers\": {\n    \"r\": {\n      \"type\": \"http\",\n      \"url\": \"https://h/mcp\",\n      \"headers\": {\"Authorization\": \"Bearer t\"}\n    }\n  }\n}";
        let out = wrap_all(text, "servers");
        assert_eq!(
            out,
            "{\n  \"servers\": {\n    \"r\": {\n      \"type\": \"stdio\",\n      \"command\": \"/bin/portcullis\", \"args\": [\"--server\", \"r\", \"--upstream\", \"https://h/mcp\", \"--header-env\", \"PORTCULLIS_HEADER_AUTHORIZATION\"], \"env\": {\"PORTCULLIS_HEADER_AUTHORIZATION\": \"Authorization: Bearer t\"}\n    }\n  }\n}"
        );
        let doc = jsonc::parse(&out).unwrap();
        assert!(entries(&doc, &loc("servers"))[0].wrapped);
    }

    #[test]
    fn headers_join_an_env_the_entry_has_and_never_collide() {
        let text = "{\"mcpServers\": {\"r\": {\"url\": \"https://h/mcp\", \"env\": {\"PORTCULLIS_HEADER_X_A\": \"1\"}, \"headers\": {\"X-A\": \"a\", \"X_A\": \"b\"}}, \"e\": {\"url\": \"https://e/mcp\", \"env\": {}, \"headers\": {\"K\": \"v\"}}}}";
        let out = wrap_all(text, "mcpServers");
        assert_eq!(
            out,
            "{\"mcpServers\": {\"r\": {\"command\": \"/bin/portcullis\", \"args\": [\"--server\", \"r\", \"--upstream\", \"https://h/mcp\", \"--header-env\", \"PORTCULLIS_HEADER_X_A_2\", \"--header-env\", \"PORTCULLIS_HEADER_X_A_3\"], \"env\": {\"PORTCULLIS_HEADER_X_A_2\": \"X-A: a\", \"PORTCULLIS_HEADER_X_A_3\": \"X_A: b\", \"PORTCULLIS_HEADER_X_A\": \"1\"}}, \"e\": {\"command\": \"/bin/portcullis\", \"args\": [\"--server\", \"e\", \"--upstream\", \"https://e/mcp\", \"--header-env\", \"PORTCULLIS_HEADER_K\"], \"env\": {\"PORTCULLIS_HEADER_K\": \"K: v\"}}}}"
        );
        let doc = jsonc::parse(&out).unwrap();
        assert!(entries(&doc, &loc("mcpServers")).iter().all(|e| e.wrapped));
        // An `env` that is not an object of strings: the entry is left alone.
        let text = "{\"mcpServers\": {\"r\": {\"url\": \"https://h/mcp\", \"env\": [1], \"headers\": {\"K\": \"v\"}}}}";
        let doc = jsonc::parse(text).unwrap();
        assert!(entries(&doc, &loc("mcpServers"))[0].unsupported.is_some());
    }

    #[test]
    fn claude_json_projects() {
        let text = "{\"projects\": {\"/p\": {\"mcpServers\": {\"a\": {\"command\": \"x\"}}}}}";
        let doc = jsonc::parse(text).unwrap();
        let e = entries(&doc, &loc("mcpServers"));
        assert_eq!(e[0].at, "projects./p.mcpServers.a");
    }
}
