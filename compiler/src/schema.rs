//! Rule paths checked against the tools a server says it has.
//!
//! `portcullis scan -o github.yaml` saves the server's tool definitions, as
//! received from `tools/list`, in `github.tools.json` beside the policy.
//! [`check`] reads every `args.a.b` path a tool's rules use (conditions,
//! `len(...)`, summed amounts, `by args.x` partitions) and warns when the
//! tool's `inputSchema` has no such parameter: a misspelt path makes a
//! condition silently never hold. Paths are followed through `properties`
//! (nested objects' too, and the branches of `allOf` / `anyOf` / `oneOf`);
//! where a schema does not say which members an object has
//! (`additionalProperties`, `patternProperties`, `$ref`, no `properties` on
//! a nested object), the path is accepted. Wildcard rules (`*`) are not
//! checked: they apply to tools with different parameters.

use std::collections::BTreeSet;

use portcullis_core::json::{Strictness, Val, Value, validate};

use crate::ir::{Amount, ArgPath, NamePattern, Operand, Partition, ServerPolicy};
use crate::source::{Diagnostic, Span};

/// One tool definition from a `*.tools.json` file.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ToolSchema {
    /// The tool's name.
    pub name: String,
    /// Its `inputSchema`, as JSON text (None when the definition has none).
    pub input_schema: Option<String>,
}

/// Reads a `*.tools.json` file: a JSON array of MCP tool definitions
/// (objects with a string `name` and an `inputSchema`). Entries without a
/// string name are skipped.
pub fn parse_tools_json(text: &str) -> Result<Vec<ToolSchema>, String> {
    validate(text.as_bytes(), Strictness::LENIENT).map_err(|e| format!("not JSON: {e}"))?;
    let Val::Array(items) = Value::from_validated(text.as_bytes()).val() else {
        return Err("expected a JSON array of tool definitions".into());
    };
    let mut out = Vec::new();
    for item in items.iter() {
        let Val::Object(o) = item.val() else {
            continue;
        };
        let Some(Val::Str(name)) = o.get("name").map(|n| n.val()) else {
            continue;
        };
        out.push(ToolSchema {
            name: name.chars().collect(),
            input_schema: o
                .get("inputSchema")
                .map(|s| String::from_utf8_lossy(s.as_bytes()).into_owned()),
        });
    }
    Ok(out)
}

/// Warnings for every argument path a tool's rules use that its schema
/// lacks. `file_name` (e.g. `github.tools.json`) is named in the messages.
pub fn check(policy: &ServerPolicy, tools: &[ToolSchema], file_name: &str) -> Vec<Diagnostic> {
    let mut out = Vec::new();
    let mut seen: BTreeSet<(usize, usize, u32, String)> = BTreeSet::new();
    for block in &policy.tools {
        for pattern in &block.patterns {
            if matches!(pattern, NamePattern::All) {
                continue;
            }
            for tool in tools.iter().filter(|t| pattern.matches(&t.name)) {
                let Some(schema_text) = &tool.input_schema else {
                    continue;
                };
                if validate(schema_text.as_bytes(), Strictness::LENIENT).is_err() {
                    continue;
                }
                let schema = Value::from_validated(schema_text.as_bytes());
                for &rule in &block.rules {
                    for path in rule_paths(policy, rule) {
                        let span = path.loc.0;
                        let key = (span.start, span.end, span.file.0, tool.name.clone());
                        if seen.contains(&key) {
                            continue;
                        }
                        if let Some(help) = missing(schema, path, &tool.name) {
                            seen.insert(key);
                            out.push(
                                Diagnostic::warning(
                                    format!(
                                        "`{}` is not a parameter of tool `{}` (per {file_name})",
                                        path.display(),
                                        tool.name
                                    ),
                                    span,
                                )
                                .with_help(help),
                            );
                        }
                    }
                }
            }
        }
    }
    // A tool name the server does not have: a typo, or a tool it dropped.
    let names: Vec<&str> = tools.iter().map(|t| t.name.as_str()).collect();
    let patterns = policy
        .tools
        .iter()
        .flat_map(|b| {
            b.patterns
                .iter()
                .map(move |p| (p, b.loc.0, "has rules for"))
        })
        .chain(policy.hidden.iter().map(|h| (&h.pattern, h.loc.0, "hides")));
    for (pattern, span, what) in patterns {
        // Only exact names: a glob that matches nothing (`hide delete_*` in a
        // baseline shared by many servers) is a defence, not a typo.
        if !matches!(pattern, NamePattern::Exact(_))
            || tools.iter().any(|t| pattern.matches(&t.name))
        {
            continue;
        }
        let help = match crate::source::did_you_mean(pattern.text(), &names) {
            Some(n) => format!(
                "did you mean `{n}`? (the policy {what} a tool the server does not list; run `portcullis scan` again if the server changed)"
            ),
            None => format!(
                "the policy {what} a tool the server does not list; check the name, or run `portcullis scan` again if the server changed"
            ),
        };
        out.push(
            Diagnostic::warning(
                format!(
                    "no tool of the server matches `{}` (per {file_name})",
                    pattern.text()
                ),
                span,
            )
            .with_help(help),
        );
    }
    out.sort_by_key(|d| d.span.unwrap_or_default());
    out
}

/// Every argument path one rule reads (principal paths are not arguments:
/// no tool schema describes them).
pub(crate) fn rule_paths(policy: &ServerPolicy, id: crate::ir::RuleId) -> Vec<&ArgPath> {
    let mut paths = every_path(policy, id);
    paths.retain(|p| !p.is_principal());
    paths
}

fn every_path(policy: &ServerPolicy, id: crate::ir::RuleId) -> Vec<&ArgPath> {
    let rule = policy.rule(id);
    let mut paths = Vec::new();
    if let Some(check) = &rule.check {
        for test in check.deny_when.tests() {
            for operand in test.operands() {
                if let Operand::Arg(p) | Operand::Len(p) = operand {
                    paths.push(p);
                }
            }
        }
    }
    // An approval condition's paths are checked like a deny rule's.
    if let Some(approve) = &rule.approve {
        for test in approve.when.tests() {
            for operand in test.operands() {
                if let Operand::Arg(p) | Operand::Len(p) = operand {
                    paths.push(p);
                }
            }
        }
    }
    if let Some(limit) = &rule.limit {
        if let Amount::Arg { path, .. } = &limit.amount {
            paths.push(path);
        }
        if let Partition::Arg(p) = &policy.counter(limit.counter).partition {
            paths.push(p);
        }
    }
    paths
}

/// What a schema says about one member name.
enum Lookup<'a> {
    /// The member's schemas (several through `anyOf` and the like).
    Found(Vec<Value<'a>>),
    /// No such member: the members it has, or what it is instead of an object.
    Missing {
        known: Vec<String>,
        not_object: Option<String>,
    },
    /// The schema does not list its members.
    Unknown,
}

/// None when `path` exists in `schema` (or cannot be ruled out); otherwise the help text.
fn missing(schema: Value<'_>, path: &ArgPath, tool: &str) -> Option<String> {
    let mut current = vec![schema];
    for (i, seg) in path.segments.iter().enumerate() {
        let mut found = Vec::new();
        let mut known: Vec<String> = Vec::new();
        let mut not_object = None;
        for s in &current {
            match member(*s, seg, i == 0, 0) {
                Lookup::Found(v) => found.extend(v),
                Lookup::Unknown => return None,
                Lookup::Missing {
                    known: k,
                    not_object: n,
                } => {
                    known.extend(k);
                    not_object = not_object.or(n);
                }
            }
        }
        if !found.is_empty() {
            current = found;
            continue;
        }
        let mut names: Vec<String> = Vec::new();
        for k in known {
            if !names.contains(&k) {
                names.push(k);
            }
        }
        let list = names
            .iter()
            .map(|n| format!("`{n}`"))
            .collect::<Vec<_>>()
            .join(", ");
        let parent = format!("args.{}", path.segments[..i].join("."));
        return Some(match (i, not_object, names.is_empty()) {
            (0, _, true) => format!("`{tool}` takes no parameters"),
            (0, _, false) => format!("the parameters of `{tool}` are {list}"),
            (_, Some(kind), _) => format!("`{parent}` is {kind}: it has no members"),
            (_, None, true) => format!("`{parent}` has no members"),
            (_, None, false) => format!("the members of `{parent}` are {list}"),
        });
    }
    None
}

fn member<'a>(schema: Value<'a>, key: &str, top: bool, depth: u32) -> Lookup<'a> {
    let Val::Object(o) = schema.val() else {
        return Lookup::Unknown; // `true`, or not a schema at all
    };
    if depth > 32 {
        return Lookup::Unknown;
    }
    let mut found = Vec::new();
    let mut known = Vec::new();
    let mut unknown = false;
    let mut listed = false;
    if let Some(Val::Object(props)) = o.get("properties").map(|p| p.val()) {
        listed = true;
        for (k, v) in props.members() {
            let name: String = k.chars().collect();
            if name == key {
                found.push(v);
            }
            known.push(name);
        }
    }
    for combinator in ["allOf", "anyOf", "oneOf"] {
        if let Some(Val::Array(branches)) = o.get(combinator).map(|b| b.val()) {
            for branch in branches.iter() {
                listed = true;
                match member(branch, key, top, depth + 1) {
                    Lookup::Found(v) => found.extend(v),
                    Lookup::Missing { known: k, .. } => known.extend(k),
                    Lookup::Unknown => unknown = true,
                }
            }
        }
    }
    if !found.is_empty() {
        return Lookup::Found(found);
    }
    if unknown || o.get("$ref").is_some() || o.get("patternProperties").is_some() {
        return Lookup::Unknown;
    }
    if let Some(extra) = o.get("additionalProperties")
        && !matches!(extra.val(), Val::Bool(false))
    {
        return Lookup::Unknown;
    }
    if listed {
        return Lookup::Missing {
            known,
            not_object: None,
        };
    }
    // No member list at all: decided by the type.
    let types: Vec<String> = match o.get("type").map(|t| t.val()) {
        Some(Val::Str(t)) => vec![t.chars().collect()],
        Some(Val::Array(ts)) => ts
            .iter()
            .filter_map(|t| match t.val() {
                Val::Str(s) => Some(s.chars().collect()),
                _ => None,
            })
            .collect(),
        _ => Vec::new(),
    };
    if !types.is_empty() && !types.iter().any(|t| t == "object") {
        let kind = types.join(" or ");
        let article = if kind.starts_with(['a', 'e', 'i', 'o', 'u']) {
            "an"
        } else {
            "a"
        };
        return Lookup::Missing {
            known: Vec::new(),
            not_object: Some(format!("{article} {kind}")),
        };
    }
    if top && !types.is_empty() {
        // `{"type": "object"}` as a whole input schema: a tool without parameters.
        return Lookup::Missing {
            known: Vec::new(),
            not_object: None,
        };
    }
    Lookup::Unknown
}

/// A span-less warning about the schema file itself (unreadable, not JSON).
pub fn file_warning(message: impl Into<String>) -> Diagnostic {
    let mut d = Diagnostic::warning(message, Span::default());
    d.span = None;
    d
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::{Input, compile};

    fn policy(text: &str) -> ServerPolicy {
        let out = compile(&[Input {
            server: "s".into(),
            path: "s.policy".into(),
            text: text.into(),
        }]);
        assert!(out.is_ok(), "{}", out.render());
        out.policies.into_iter().next().unwrap()
    }

    const TOOLS: &str = r#"[
      {"name":"echo","inputSchema":{"type":"object","properties":{"message":{"type":"string"},
        "opts":{"type":"object","properties":{"depth":{"type":"integer"}}},
        "free":{"type":"object"},"s":{"type":"string"}},"required":["message"]}},
      {"name":"none","inputSchema":{"type":"object"}},
      {"name":"open","inputSchema":{"type":"object","properties":{},"additionalProperties":true}},
      {"name":"alt","inputSchema":{"anyOf":[{"properties":{"a":{}}},{"properties":{"b":{}}}]}}
    ]"#;

    fn warnings(rules: &str) -> Vec<String> {
        let p = policy(&format!("server s {{\n{rules}\n}}\n"));
        let tools = parse_tools_json(TOOLS).unwrap();
        check(&p, &tools, "s.tools.json")
            .into_iter()
            .map(|d| format!("{} | {}", d.message, d.help.unwrap_or_default()))
            .collect()
    }

    /// Principal paths are the caller's claims, not tool parameters: no
    /// schema describes them, so none is checked against one (an argument
    /// path beside them still is).
    #[test]
    fn principal_paths_are_not_schema_paths() {
        assert!(
            warnings(
                r#"tool echo {
                     deny "x" when principal.sub == "a" or principal.claims.message.depth > 2
                     deny "y" unless "admins" in principal.groups
                     limit 3 per hour by principal.sub
                   }"#
            )
            .is_empty()
        );
        let w = warnings(
            r#"tool echo { deny "x" when principal.groups contains "a" and args.nope == 1 }"#,
        );
        assert_eq!(w.len(), 1, "{w:?}");
        assert!(w[0].starts_with("`args.nope` is not a parameter"), "{w:?}");
    }

    #[test]
    fn known_paths_pass() {
        assert!(
            warnings(
                r#"tool echo { deny "x" when args.message == "a" or args.opts.depth > 2 or args.free.anything == 1 }
                   tool open { deny "x" when args.whatever == 1 }
                   tool alt { deny "x" when args.a == 1 or args.b == 2 }
                   tool * { deny "x" when args.zzz == 1 }"#
            )
            .is_empty()
        );
    }

    #[test]
    fn a_tool_the_server_does_not_list_warns_once_without_path_warnings() {
        assert_eq!(
            warnings(r#"tool unknown_tool { deny "x" when args.zzz == 1 }"#),
            [
                "no tool of the server matches `unknown_tool` (per s.tools.json) | the policy has rules for a tool the server does not list; check the name, or run `portcullis scan` again if the server changed"
            ]
        );
        let w = warnings("tool ech { }\nhide opne");
        assert_eq!(w.len(), 2, "{w:?}");
        assert!(
            w[0].contains("`ech`") && w[0].contains("did you mean `echo`?"),
            "{w:?}"
        );
        assert!(
            w[1].contains("`opne`") && w[1].contains("did you mean `open`?"),
            "{w:?}"
        );
        // A glob that matches nothing is a defence (a shared baseline), not a typo.
        assert!(warnings("hide delete_*, *_admin\ntool zz_* { }").is_empty());
    }

    #[test]
    fn unknown_paths_warn() {
        let w = warnings(
            r#"tool echo { deny "x" when args.nope == 1 or args.opts.nope == 2 or args.s.x == 3 }
               tool none { limit 5 per hour by args.user }
               tool e* { deny "y" when len(args.mesage) > 3 }
               tool alt { deny "x" when args.c == 1 }"#,
        );
        assert_eq!(w.len(), 6, "{w:#?}");
        assert_eq!(
            w[0],
            "`args.nope` is not a parameter of tool `echo` (per s.tools.json) | the parameters of `echo` are `message`, `opts`, `free`, `s`"
        );
        assert!(
            w[1].contains("the members of `args.opts` are `depth`"),
            "{}",
            w[1]
        );
        assert!(
            w[2].contains("`args.s` is a string: it has no members"),
            "{}",
            w[2]
        );
        assert!(w[3].contains("`none` takes no parameters"), "{}", w[3]);
        assert!(
            w[4].contains("`args.mesage`") && w[4].contains("tool `echo`"),
            "{}",
            w[4]
        );
        assert!(w[5].contains("are `a`, `b`"), "{}", w[5]);
    }

    #[test]
    fn approval_conditions_are_checked_too() {
        let w = warnings(r#"tool echo { approve "ask" when args.mesage == "x" }"#);
        assert_eq!(w.len(), 1, "{w:#?}");
        assert!(
            w[0].starts_with("`args.mesage` is not a parameter of tool `echo`"),
            "{}",
            w[0]
        );
        assert!(warnings(r#"tool echo { approve "ask" when args.message == "x" }"#).is_empty());
    }

    #[test]
    fn bad_files_are_errors() {
        assert!(parse_tools_json("{").is_err());
        assert!(parse_tools_json("{}").is_err());
        assert_eq!(parse_tools_json(r#"[1, {"name": 2}]"#).unwrap(), vec![]);
    }
}
