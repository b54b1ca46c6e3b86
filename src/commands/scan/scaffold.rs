//! The policy scaffold `portcullis scan` writes: every tool the server
//! listed, grouped by risk, with its description and parameters as
//! comments, in Intercept v1 YAML or the policy language.
//!
//! Everything here is pure (text in, text out) and depends only on the
//! runtime's JSON views and the compiler's printer, so `tests/scan.rs`
//! includes this file to test the writer on its own.

use portcullis_compiler::source::Span;
use portcullis_compiler::syntax::dsl::Pattern;
use portcullis_compiler::syntax::dsl_fmt;
use portcullis_core::json::{Strictness, Val, Value, validate};

/// Width of the text in comment lines.
const WIDTH: usize = 70;

/// Which language to write.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Format {
    /// Intercept v1 YAML.
    Yaml,
    /// The Portcullis policy language.
    Dsl,
}

/// How risky a tool is, for grouping.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord)]
pub enum Risk {
    /// Only reads.
    Read,
    /// Changes something.
    Write,
    /// Deletes, revokes or overwrites.
    Destructive,
}

/// One parameter of a tool.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Param {
    /// Its name.
    pub name: String,
    /// Its type, as a short text (`string`, `integer | null`, `array of string`).
    pub kind: String,
    /// Listed in `required`.
    pub required: bool,
}

/// What the scaffold shows of one tool.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ToolInfo {
    /// The name, exactly as the server spells it.
    pub name: String,
    /// The description, on one line (control characters removed).
    pub description: String,
    /// Parameters, required ones first.
    pub params: Vec<Param>,
    /// Its group.
    pub risk: Risk,
    /// True when the server's annotations decided the group (not the name).
    pub annotated: bool,
}

/// The server, from `initialize`.
#[derive(Debug, Clone, Default)]
pub struct ServerInfo {
    /// `serverInfo.name`.
    pub name: String,
    /// `serverInfo.version`.
    pub version: String,
    /// `serverInfo.title`, if any.
    pub title: Option<String>,
}

/// The server's resources, resource templates and prompts (when it offers
/// them), for commented `resource` / `prompt` scaffolds (docs/surfaces.md).
#[derive(Debug, Clone, Default)]
pub struct Surfaces {
    /// Resource URIs, in the order listed.
    pub resources: Vec<String>,
    /// Resource URI templates.
    pub templates: Vec<String>,
    /// Prompt names, with their arguments' names.
    pub prompts: Vec<(String, Vec<String>)>,
}

/// Everything the writer needs besides the tools.
#[derive(Debug, Clone)]
pub struct Options {
    /// Which language.
    pub format: Format,
    /// The server.
    pub server: ServerInfo,
    /// The policy's server name (the file stem): the DSL's `server NAME`.
    pub stem: String,
    /// The policy file's name, if it is written to a file.
    pub file_name: Option<String>,
    /// The tool-schema file's name, if one is written.
    pub schemas_file: Option<String>,
    /// How the server was reached, for the header (`stdio: node`, an URL).
    pub via: String,
    /// Today, `YYYY-MM-DD`.
    pub date: String,
    /// Resources and prompts the server listed.
    pub surfaces: Surfaces,
}

/// Commented examples for the server's resources and prompts: the lines of
/// a `resource`/`prompt` block per entry (policy language) or of the
/// `resources:`/`prompts:` blocks (YAML), to uncomment and fill in.
fn surface_lines(s: &Surfaces, format: Format) -> Vec<String> {
    let mut out = Vec::new();
    if s.resources.is_empty() && s.templates.is_empty() && s.prompts.is_empty() {
        return out;
    }
    out.push(format!(
        "Resources ({}, {} template{}) and prompts ({}): rules on reading them, see docs/surfaces.md (uncomment to use).",
        s.resources.len(),
        s.templates.len(),
        if s.templates.len() == 1 { "" } else { "s" },
        s.prompts.len()
    ));
    let templates = s.templates.iter().map(|t| {
        // A template's `{var}` parts become globs over one segment.
        let mut g = String::new();
        let mut inside = false;
        for c in t.chars() {
            match c {
                '{' => {
                    inside = true;
                    g.push('*');
                }
                '}' => inside = false,
                c if !inside => g.push(c),
                _ => {}
            }
        }
        (one_line(t), g)
    });
    match format {
        Format::Dsl => {
            for r in &s.resources {
                out.push(format!("resource {} {{ }}", dsl_fmt::string(r)));
            }
            for (t, g) in templates {
                out.push(format!(
                    "resource {} {{ }}  // template {t}",
                    dsl_fmt::string(&g)
                ));
            }
            for (p, args) in &s.prompts {
                let args = if args.is_empty() {
                    String::new()
                } else {
                    format!(
                        "  // arguments: {}",
                        args.iter()
                            .map(|a| format!("args.{}", one_line(a)))
                            .collect::<Vec<_>>()
                            .join(", ")
                    )
                };
                out.push(format!("prompt {} {{ }}{args}", dsl_fmt::string(p)));
            }
        }
        Format::Yaml => {
            if !s.resources.is_empty() || !s.templates.is_empty() {
                out.push("resources:".into());
                for r in &s.resources {
                    out.push(format!("  {}:", yaml_quote(r)));
                    out.push("    rules: []".into());
                }
                for (t, g) in templates {
                    out.push(format!("  {}:  # template {t}", yaml_quote(&g)));
                    out.push("    rules: []".into());
                }
            }
            if !s.prompts.is_empty() {
                out.push("prompts:".into());
                for (p, args) in &s.prompts {
                    let args = if args.is_empty() {
                        String::new()
                    } else {
                        format!(
                            "  # arguments: {}",
                            args.iter()
                                .map(|a| format!("args.{}", one_line(a)))
                                .collect::<Vec<_>>()
                                .join(", ")
                        )
                    };
                    out.push(format!("  {}:{args}", yaml_key(p)));
                    out.push("    rules: []".into());
                }
            }
        }
    }
    out
}

/// Commented result rules (docs/results.md): a catch-all rule redacting
/// secrets with a size cap, `deny secrets` for the read tools (their
/// answers carry the data), and one for the resources by scheme and
/// authority (`demo://resource/**`), to uncomment and adjust.
fn results_lines(tools: &[ToolInfo], s: &Surfaces, format: Format) -> Vec<String> {
    let reads: Vec<&str> = grouped(tools)
        .into_iter()
        .filter(|(risk, _)| *risk == Risk::Read)
        .flat_map(|(_, g)| g.into_iter().map(|t| t.name.as_str()))
        .filter(|n| format == Format::Yaml || !n.contains('*'))
        .collect();
    let mut prefixes: Vec<String> = Vec::new();
    for uri in s.resources.iter().chain(&s.templates) {
        if let Some(p) = resource_prefix(&one_line(uri))
            && !prefixes.contains(&p)
            && prefixes.len() < 5
        {
            prefixes.push(p);
        }
    }
    let mut out = vec![
        "Answers: result rules check what the server sends back (secrets, size), see docs/results.md (uncomment to use).".to_string(),
    ];
    match format {
        Format::Dsl => {
            out.extend(["results {", "  redact secrets", "  max 1 MiB", "}"].map(String::from));
            if !reads.is_empty() {
                // The read tools (their answers carry the data), a few per line.
                // Whole names per line (a quoted name may hold spaces).
                let mut list: Vec<String> = vec![String::new()];
                for n in reads.iter().map(|n| dsl_name(n)) {
                    let cur = list.last_mut().expect("a line");
                    if !cur.is_empty() && cur.chars().count() + n.chars().count() + 2 > WIDTH {
                        cur.push(',');
                        list.push(n);
                    } else {
                        if !cur.is_empty() {
                            cur.push_str(", ");
                        }
                        cur.push_str(&n);
                    }
                }
                let last = list.len() - 1;
                for (i, l) in list.iter().enumerate() {
                    let head = if i == 0 { "results for " } else { "    " };
                    let tail = if i == last { " {" } else { "" };
                    out.push(format!("{head}{l}{tail}"));
                }
                out.extend(
                    [
                        "  deny secrets  // the read tools: their answers carry the data",
                        "}",
                    ]
                    .map(String::from),
                );
            }
            for p in &prefixes {
                out.push(format!("results for resource {} {{", dsl_fmt::string(p)));
                out.extend(["  deny secrets", "}"].map(String::from));
            }
        }
        Format::Yaml => {
            out.extend(
                [
                    "results:",
                    "  all:",
                    "    redact: secrets",
                    "    max_bytes: 1 MiB",
                ]
                .map(String::from),
            );
            if !reads.is_empty() {
                out.push("  tools:  # read tools: their answers carry the data".into());
                for n in &reads {
                    out.push(format!("    {}:", yaml_key(n)));
                    out.push("      deny: secrets".into());
                }
            }
            if !prefixes.is_empty() {
                out.push("  resources:".into());
                for p in &prefixes {
                    out.push(format!("    {}:", yaml_quote(p)));
                    out.push("      deny: secrets".into());
                }
            }
        }
    }
    out
}

/// A glob over every resource of `uri`'s scheme and authority
/// (`demo://resource/**`, `file:///**`, `urn:**`), written as the
/// normalised URIs it must match (scheme and host lower-cased); None when
/// it has no scheme or would be longer than a resource glob may be.
fn resource_prefix(uri: &str) -> Option<String> {
    let colon = uri.find(':')?;
    let scheme = &uri[..colon];
    if scheme.is_empty()
        || !scheme
            .bytes()
            .all(|b| b.is_ascii_alphanumeric() || matches!(b, b'+' | b'-' | b'.'))
    {
        return None;
    }
    let rest = &uri[colon + 1..];
    let glob = match rest.strip_prefix("//") {
        Some(after) => {
            let end = after.find(['/', '?', '#']).unwrap_or(after.len());
            let authority = &after[..end];
            let authority = match authority.rfind('@') {
                Some(at) => format!(
                    "{}{}",
                    &authority[..=at],
                    authority[at + 1..].to_ascii_lowercase()
                ),
                None => authority.to_ascii_lowercase(),
            };
            format!("{}://{authority}/**", scheme.to_ascii_lowercase())
        }
        None => format!("{}:**", scheme.to_ascii_lowercase()),
    };
    (glob.len() <= 100 && !glob.contains('"')).then_some(glob)
}

/// Reads one tool definition (a JSON object). None without a string `name`.
pub fn tool_info(raw: &[u8]) -> Option<ToolInfo> {
    validate(raw, Strictness::LENIENT).ok()?;
    let Val::Object(o) = Value::from_validated(raw).val() else {
        return None;
    };
    let name = string(o.get("name"))?;
    let mut description = string(o.get("description")).unwrap_or_default();
    if description.trim().is_empty()
        && let Some(t) = string(o.get("title"))
    {
        description = t;
    }
    let mut params = Vec::new();
    if let Some(Val::Object(schema)) = o.get("inputSchema").map(|s| s.val()) {
        let required: Vec<String> = match schema.get("required").map(|r| r.val()) {
            Some(Val::Array(a)) => a.iter().filter_map(|v| string(Some(v))).collect(),
            _ => Vec::new(),
        };
        if let Some(Val::Object(props)) = schema.get("properties").map(|p| p.val()) {
            for (k, v) in props.members() {
                let name: String = k.chars().collect();
                params.push(Param {
                    required: required.contains(&name),
                    kind: type_of(v, 0),
                    name,
                });
            }
        }
        params.sort_by_key(|p| !p.required); // stable: schema order within each half
    }
    let annotations = match o.get("annotations").map(|a| a.val()) {
        Some(Val::Object(a)) => Some(a),
        _ => None,
    };
    let hint = |key: &str| match annotations.and_then(|a| a.get(key)).map(|v| v.val()) {
        Some(Val::Bool(b)) => Some(b),
        _ => None,
    };
    let (risk, annotated) = match (hint("readOnlyHint"), hint("destructiveHint")) {
        (Some(true), _) => (Risk::Read, true),
        (_, Some(true)) => (Risk::Destructive, true),
        (_, Some(false)) => (Risk::Write, true),
        _ => (risk_by_name(&name), false),
    };
    Some(ToolInfo {
        name,
        description: one_line(&description),
        params,
        risk,
        annotated,
    })
}

fn string(v: Option<Value<'_>>) -> Option<String> {
    match v?.val() {
        Val::Str(s) => Some(s.chars().collect()),
        _ => None,
    }
}

/// A parameter's type, shortly.
fn type_of(schema: Value<'_>, depth: u32) -> String {
    let Val::Object(o) = schema.val() else {
        return "any".into();
    };
    if depth > 4 {
        return "…".into();
    }
    if let Some(Val::Array(values)) = o.get("enum").map(|e| e.val())
        && values.len() <= 6
    {
        let shown: Vec<String> = values
            .iter()
            .map(|v| String::from_utf8_lossy(v.as_bytes()).into_owned())
            .collect();
        let text = shown.join(" | ");
        if text.chars().count() <= 60 {
            return one_line(&text);
        }
    }
    let mut types: Vec<String> = match o.get("type").map(|t| t.val()) {
        Some(Val::Str(t)) => vec![t.chars().collect()],
        Some(Val::Array(ts)) => ts.iter().filter_map(|t| string(Some(t))).collect(),
        _ => Vec::new(),
    };
    if types.is_empty() {
        for combinator in ["anyOf", "oneOf"] {
            if let Some(Val::Array(branches)) = o.get(combinator).map(|b| b.val()) {
                for b in branches.iter() {
                    let t = type_of(b, depth + 1);
                    if !types.contains(&t) {
                        types.push(t);
                    }
                }
            }
        }
    }
    if types.is_empty() {
        return "any".into();
    }
    let types: Vec<String> = types
        .into_iter()
        .map(|t| {
            if t == "array"
                && let Some(items) = o.get("items")
            {
                let inner = type_of(items, depth + 1);
                if inner != "any" {
                    return format!("array of {inner}");
                }
            }
            t
        })
        .collect();
    one_line(&types.join(" | "))
}

/// Verbs that only read.
const READ_VERBS: &[&str] = &[
    "get", "list", "read", "search", "fetch", "describe", "query", "find", "show", "view",
    "lookup", "retrieve", "browse", "inspect", "count", "head", "stat", "status", "info",
    "explain", "preview", "download", "check", "tail", "cat", "ls", "grep", "peek", "whoami",
    "ping", "echo",
];

/// Words that mark a tool that deletes, revokes or overwrites.
const DESTRUCTIVE_WORDS: &[&str] = &[
    "delete",
    "remove",
    "destroy",
    "drop",
    "purge",
    "revoke",
    "wipe",
    "erase",
    "truncate",
    "terminate",
    "kill",
    "uninstall",
    "unlink",
    "rm",
    "del",
    "clear",
    "reset",
    "flush",
    "nuke",
    "shred",
    "overwrite",
    "unpublish",
    "deprovision",
];

/// Verbs that change something (a name starting with one is a write).
const WRITE_VERBS: &[&str] = &[
    "create", "update", "set", "add", "put", "post", "send", "write", "edit", "modify", "patch",
    "insert", "upload", "run", "exec", "execute", "trigger", "start", "stop", "toggle", "move",
    "rename", "copy", "merge", "push", "publish", "deploy", "install", "enable", "disable",
    "invite", "assign", "close", "open", "import", "approve", "reject", "cancel", "submit",
    "commit", "apply", "restore", "make", "new", "save", "store", "schedule", "transfer", "charge",
    "pay", "refund", "grant", "fork", "archive",
];

/// Splits a tool name into lowercase words (`get_user`, `getUser`, `get-user`, `user.get`).
fn words(name: &str) -> Vec<String> {
    let mut out = Vec::new();
    let mut cur = String::new();
    let chars: Vec<char> = name.chars().collect();
    for (i, &c) in chars.iter().enumerate() {
        if !c.is_alphanumeric() {
            if !cur.is_empty() {
                out.push(std::mem::take(&mut cur));
            }
            continue;
        }
        let prev = i.checked_sub(1).map(|j| chars[j]);
        let next = chars.get(i + 1).copied();
        let boundary = c.is_uppercase()
            && prev.is_some_and(|p| {
                p.is_lowercase()
                    || p.is_ascii_digit()
                    || (p.is_uppercase() && next.is_some_and(char::is_lowercase))
            });
        if boundary && !cur.is_empty() {
            out.push(std::mem::take(&mut cur));
        }
        cur.extend(c.to_lowercase());
    }
    if !cur.is_empty() {
        out.push(cur);
    }
    out
}

/// The group of a tool without annotations, guessed from its name: any
/// destructive word makes it destructive; otherwise the first known verb
/// decides (a read verb: read; anything else: write).
pub fn risk_by_name(name: &str) -> Risk {
    let words = words(name);
    if words
        .iter()
        .any(|w| DESTRUCTIVE_WORDS.contains(&w.as_str()))
    {
        return Risk::Destructive;
    }
    for w in &words {
        if READ_VERBS.contains(&w.as_str()) {
            return Risk::Read;
        }
        if WRITE_VERBS.contains(&w.as_str()) {
            return Risk::Write;
        }
    }
    Risk::Write
}

/// Text from a server made safe for a comment line: no line breaks, no
/// control or bidirectional-override characters, whitespace collapsed.
pub fn one_line(s: &str) -> String {
    let mut out = String::with_capacity(s.len());
    for c in s.chars() {
        let blank = c.is_whitespace()
            || c.is_control()
            || matches!(
                c,
                '\u{2028}' | '\u{2029}' | '\u{feff}' | '\u{fffe}' | '\u{ffff}'
            );
        let invisible = matches!(
            c,
            '\u{200b}'..='\u{200f}' | '\u{202a}'..='\u{202e}' | '\u{2066}'..='\u{2069}' | '\u{061c}'
        );
        if invisible {
            continue;
        }
        if blank {
            if !out.is_empty() && !out.ends_with(' ') {
                out.push(' ');
            }
        } else {
            out.push(c);
        }
    }
    out.trim_end().to_string()
}

/// Words of `text` in lines of at most `width` characters (a longer word stands alone).
fn wrap(text: &str, width: usize) -> Vec<String> {
    let mut lines = Vec::new();
    let mut cur = String::new();
    for word in text.split(' ').filter(|w| !w.is_empty()) {
        let len = cur.chars().count();
        if len > 0 && len + 1 + word.chars().count() > width {
            lines.push(std::mem::take(&mut cur));
        }
        if !cur.is_empty() {
            cur.push(' ');
        }
        cur.push_str(word);
    }
    if !cur.is_empty() {
        lines.push(cur);
    }
    lines
}

/// True for a name YAML reads back, unquoted, as exactly this string (in
/// YAML 1.1 and 1.2 alike): `[A-Za-z_][A-Za-z0-9_.-]*`, but not a word
/// YAML 1.1 types as a null or a boolean.
fn yaml_plain(s: &str) -> bool {
    let b = s.as_bytes();
    let shape = !b.is_empty()
        && (b[0].is_ascii_alphabetic() || b[0] == b'_')
        && b[1..]
            .iter()
            .all(|&c| c.is_ascii_alphanumeric() || matches!(c, b'_' | b'.' | b'-'));
    shape
        && !matches!(
            s.to_ascii_lowercase().as_str(),
            "null" | "true" | "false" | "yes" | "no" | "on" | "off" | "y" | "n"
        )
}

/// A YAML double-quoted string with JSON-style escapes.
pub fn yaml_quote(s: &str) -> String {
    let mut out = String::with_capacity(s.len() + 2);
    out.push('"');
    for c in s.chars() {
        match c {
            '"' => out.push_str("\\\""),
            '\\' => out.push_str("\\\\"),
            '\n' => out.push_str("\\n"),
            '\r' => out.push_str("\\r"),
            '\t' => out.push_str("\\t"),
            c if c.is_control()
                || matches!(
                    c,
                    '\u{2028}' | '\u{2029}' | '\u{feff}' | '\u{fffe}' | '\u{ffff}'
                ) =>
            {
                out.push_str(&format!("\\u{:04X}", c as u32));
            }
            c => out.push(c),
        }
    }
    out.push('"');
    out
}

/// A tool name as a YAML mapping key: plain when that reads back the same, quoted otherwise.
pub fn yaml_key(name: &str) -> String {
    if yaml_plain(name) {
        name.to_string()
    } else {
        yaml_quote(name)
    }
}

/// A tool name as a policy-language pattern.
fn dsl_name(name: &str) -> String {
    dsl_fmt::pattern(&Pattern {
        text: name.to_string(),
        quoted: false,
        span: Span::default(),
    })
}

/// The comment lines of one tool (without the comment marker).
pub fn tool_comments(t: &ToolInfo, format: Format) -> Vec<String> {
    let mut lines = wrap(&t.description, WIDTH);
    let params = if t.params.is_empty() {
        "Parameters: none".to_string()
    } else {
        let shown: Vec<String> = t
            .params
            .iter()
            .map(|p| {
                let name = one_line(&p.name);
                if p.required {
                    format!("{name} ({}, required)", p.kind)
                } else {
                    format!("{name} ({})", p.kind)
                }
            })
            .collect();
        format!("Parameters: {}", shown.join(", "))
    };
    let mut params = wrap(&params, WIDTH).into_iter();
    lines.extend(params.next());
    lines.extend(params.map(|l| format!("  {l}")));
    if format == Format::Dsl && t.name.contains('*') {
        lines.push(
            "Note: `*` in a tool pattern is a glob: this block matches other names too.".into(),
        );
    }
    if t.name == "*" {
        lines.push("Note: a tool named `*`: here `*` means every tool.".into());
    }
    lines
}

/// The heading of a risk group.
pub fn group_heading(risk: Risk, n: usize) -> String {
    match risk {
        Risk::Read => format!("==== Read ({n}): tools that only read ===="),
        Risk::Write => format!("==== Write ({n}): tools that change something ===="),
        Risk::Destructive => {
            format!("==== Destructive ({n}): tools that delete, revoke or overwrite ====")
        }
    }
}

/// The header comment lines (without the comment marker).
fn header(opts: &Options, tools: &[ToolInfo]) -> Vec<String> {
    let ext = match opts.format {
        Format::Yaml => "yaml",
        Format::Dsl => "policy",
    };
    let file = opts
        .file_name
        .clone()
        .unwrap_or_else(|| format!("{}.{ext}", opts.stem));
    let server = one_line(&opts.server.name);
    let version = one_line(&opts.server.version);
    let title = opts
        .server
        .title
        .as_deref()
        .map(one_line)
        .filter(|t| !t.is_empty() && *t != server)
        .map(|t| format!(" ({t})"))
        .unwrap_or_default();
    let n = tools.len();
    let annotated = tools.iter().filter(|t| t.annotated).count();
    let mut h = vec![
        format!("Policy scaffold for the MCP server `{server}` {version}{title}."),
        format!(
            "Written by `portcullis scan` on {} from {}: {n} tool{}.",
            opts.date,
            one_line(&opts.via),
            if n == 1 { "" } else { "s" }
        ),
        String::new(),
        "Every tool is listed without rules and the default is allow, so this".into(),
        "policy restricts nothing yet. To make it restrict:".into(),
    ];
    match opts.format {
        Format::Yaml => h.extend([
            "  - add rules to the tools to restrict (conditions on args.*,".into(),
            "    rate_limit: N/minute|hour|day; see Portcullis' docs/policy-yaml.md);".into(),
            "  - hide tools agents must never see or call: `hide: [name]`;".into(),
            "  - or set `default: deny` and delete the tools agents must not call".into(),
            "    (a tool the server adds later is then denied too).".into(),
        ]),
        Format::Dsl => h.extend([
            "  - add rules to the tools to restrict (deny \"MSG\" when args.x > 5,".into(),
            "    limit 10 per hour; see Portcullis' docs/policy-language.md);".into(),
            "  - hide tools agents must never see or call: `hide name`;".into(),
            "  - or write `default deny` and delete the tools agents must not call".into(),
            "    (a tool the server adds later is then denied too).".into(),
        ]),
    }
    if opts.file_name.is_none() && opts.format == Format::Dsl {
        h.push(format!(
            "Save it as {file}: a policy's server name is its file name."
        ));
    }
    h.push(format!("Check it:    portcullis validate {file}"));
    h.push(format!(
        "Enforce it:  portcullis -c {file} -- <the server's command>"
    ));
    if let Some(schemas) = &opts.schemas_file {
        h.push(format!("The tool definitions are saved in {schemas}:"));
        h.push("`portcullis validate` warns about rule paths (args.x) that are".into());
        h.push("not parameters of their tool.".into());
    }
    h.push(String::new());
    h.push("Tools are grouped by risk: Read / Write / Destructive. The server's".into());
    h.push(format!(
        "annotations (readOnlyHint, destructiveHint) decided {annotated} of {n};"
    ));
    h.push("the others are guessed from their names: review the groups.".into());
    h
}

/// Tools by group, each group sorted by name; duplicates (by name) dropped.
pub fn grouped(tools: &[ToolInfo]) -> Vec<(Risk, Vec<&ToolInfo>)> {
    let mut sorted: Vec<&ToolInfo> = tools.iter().collect();
    sorted.sort_by(|a, b| a.risk.cmp(&b.risk).then_with(|| a.name.cmp(&b.name)));
    sorted.dedup_by(|a, b| a.name == b.name);
    let mut groups: Vec<(Risk, Vec<&ToolInfo>)> = Vec::new();
    for t in sorted {
        match groups.last_mut() {
            Some((r, v)) if *r == t.risk => v.push(t),
            _ => groups.push((t.risk, vec![t])),
        }
    }
    groups
}

/// Appends one comment line (`marker` and the text, indented).
pub fn comment(out: &mut String, indent: &str, marker: &str, line: &str) {
    out.push_str(indent);
    out.push_str(marker);
    if !line.is_empty() {
        out.push(' ');
        out.push_str(line);
    }
    out.push('\n');
}

/// The scaffold.
pub fn write(opts: &Options, tools: &[ToolInfo]) -> String {
    match opts.format {
        Format::Yaml => yaml(opts, tools),
        Format::Dsl => dsl(opts, tools),
    }
}

fn yaml(opts: &Options, tools: &[ToolInfo]) -> String {
    let mut out = String::new();
    for l in header(opts, tools) {
        comment(&mut out, "", "#", &l);
    }
    out.push('\n');
    out.push_str("version: \"1\"\n");
    out.push_str(&format!(
        "description: {}\n",
        yaml_quote(&format!("Policy for {}", opts.server.name))
    ));
    out.push_str("default: allow\n");
    let groups = grouped(tools);
    if groups.is_empty() {
        out.push_str("tools: {}\n");
    } else {
        out.push_str("tools:\n");
    }
    for (risk, group) in &groups {
        out.push('\n');
        comment(&mut out, "  ", "#", &group_heading(*risk, group.len()));
        for t in group {
            out.push('\n');
            for l in tool_comments(t, Format::Yaml) {
                comment(&mut out, "  ", "#", &l);
            }
            out.push_str(&format!("  {}:\n    rules: []\n", yaml_key(&t.name)));
        }
    }
    if !tools.iter().any(|t| t.name == "*") {
        let example = [
            "Example: a limit on every call, whatever the tool (uncomment to use).",
            "\"*\":",
            "  rules:",
            "    - name: \"global rate limit\"",
            "      rate_limit: 60/minute",
        ];
        if groups.is_empty() {
            // `tools: {}` cannot take entries: the example stands on its own.
            out.push('\n');
            comment(&mut out, "", "#", "Example (replace `tools: {}` above):");
            comment(&mut out, "", "#", "tools:");
            for l in &example[1..] {
                comment(&mut out, "", "#", &format!("  {l}"));
            }
        } else {
            out.push('\n');
            for l in example {
                comment(&mut out, "  ", "#", l);
            }
        }
    }
    let surfaces = surface_lines(&opts.surfaces, Format::Yaml);
    if !surfaces.is_empty() {
        out.push('\n');
        for l in &surfaces {
            comment(&mut out, "", "#", l);
        }
    }
    out.push('\n');
    for l in results_lines(tools, &opts.surfaces, Format::Yaml) {
        comment(&mut out, "", "#", &l);
    }
    out
}

fn dsl(opts: &Options, tools: &[ToolInfo]) -> String {
    let mut out = String::new();
    for l in header(opts, tools) {
        comment(&mut out, "", "//", &l);
    }
    out.push_str(&format!(
        "server {} {} {{\n  default allow\n",
        opts.stem,
        dsl_fmt::string(&format!("Policy for {}", opts.server.name))
    ));
    for (risk, group) in grouped(tools) {
        out.push('\n');
        comment(&mut out, "  ", "//", &group_heading(risk, group.len()));
        for t in group {
            out.push('\n');
            for l in tool_comments(t, Format::Dsl) {
                comment(&mut out, "  ", "//", &l);
            }
            out.push_str(&format!("  tool {} {{ }}\n", dsl_name(&t.name)));
        }
    }
    if !tools.iter().any(|t| t.name == "*") {
        out.push('\n');
        for l in [
            "Example: a limit on every call, whatever the tool (uncomment to use).",
            "tool * {",
            "  limit 60 per minute -> \"Rate limit: 60 tool calls per minute\"",
            "}",
        ] {
            comment(&mut out, "  ", "//", l);
        }
    }
    let surfaces = surface_lines(&opts.surfaces, Format::Dsl);
    if !surfaces.is_empty() {
        out.push('\n');
        for l in &surfaces {
            comment(&mut out, "  ", "//", l);
        }
    }
    out.push('\n');
    for l in results_lines(tools, &opts.surfaces, Format::Dsl) {
        comment(&mut out, "  ", "//", &l);
    }
    out.push_str("}\n");
    // The canonical layout, so that `portcullis fmt --check` accepts the file.
    match portcullis_compiler::syntax::dsl::parse(portcullis_compiler::source::FileId(0), &out) {
        Ok(file) => dsl_fmt::format(&file, &out),
        Err(_) => out,
    }
}

/// The tool definitions as a JSON array, every token as received, indented
/// two spaces per level.
pub fn tools_json(raw_tools: &[Vec<u8>]) -> String {
    let mut out = String::from("[");
    for (i, raw) in raw_tools.iter().enumerate() {
        out.push_str(if i == 0 { "\n  " } else { ",\n  " });
        indent_json(raw, 1, &mut out);
    }
    out.push_str(if raw_tools.is_empty() { "]\n" } else { "\n]\n" });
    out
}

/// Re-indents one validated JSON value; tokens are copied byte for byte.
fn indent_json(raw: &[u8], level: usize, out: &mut String) {
    let text = String::from_utf8_lossy(raw);
    let bytes = text.as_bytes();
    let mut depth = level;
    let mut i = 0;
    let newline = |out: &mut String, depth: usize| {
        out.push('\n');
        out.push_str(&"  ".repeat(depth));
    };
    while i < bytes.len() {
        let c = bytes[i];
        match c {
            b'"' => {
                let start = i;
                i += 1;
                while i < bytes.len() && bytes[i] != b'"' {
                    i += if bytes[i] == b'\\' { 2 } else { 1 };
                }
                i = (i + 1).min(bytes.len());
                out.push_str(&text[start..i]);
                continue;
            }
            b'{' | b'[' => {
                let close = if c == b'{' { b'}' } else { b']' };
                let mut j = i + 1;
                while j < bytes.len() && bytes[j].is_ascii_whitespace() {
                    j += 1;
                }
                out.push(c as char);
                if bytes.get(j) == Some(&close) {
                    out.push(close as char);
                    i = j + 1;
                    continue;
                }
                depth += 1;
                newline(out, depth);
            }
            b'}' | b']' => {
                depth = depth.saturating_sub(1);
                newline(out, depth);
                out.push(c as char);
            }
            b',' => {
                out.push(',');
                newline(out, depth);
            }
            b':' => out.push_str(": "),
            c if c.is_ascii_whitespace() => {}
            _ => {
                let start = i;
                while i < bytes.len()
                    && !matches!(bytes[i], b',' | b'}' | b']' | b':')
                    && !bytes[i].is_ascii_whitespace()
                {
                    i += 1;
                }
                out.push_str(&text[start..i]);
                continue;
            }
        }
        i += 1;
    }
}
