//! What `portcullis ui` shows and does with a policy directory: the servers,
//! their tools grouped by risk with each tool's effect and rules, and the
//! preview (diff, `validate`, the policy's tests) and save of an edit.

use std::path::{Path, PathBuf};

use portcullis_compiler::Input;
use portcullis_compiler::ir::{Amount, Dialect, Expr, Posture, ServerPolicy};
use portcullis_compiler::policy_tests::{TestSource, run_suite};
use portcullis_core::counters::{Calendar, Window};
use serde_json::{Value, json};

use super::edit::{self, Effect, Language};
use crate::commands::scan::scaffold::{self, Risk, ToolInfo};

/// The policy files of `dir`, with `replace` = (path, text) standing in for one of them.
fn inputs(dir: &Path, replace: Option<(&Path, &str)>) -> Result<Vec<Input>, String> {
    let mut inputs = portcullis_compiler::load_dir(dir, None)
        .map_err(|e| format!("reading {}: {e}", dir.display()))?;
    if let Some((path, text)) = replace {
        let shown = path.display().to_string();
        match inputs.iter_mut().find(|i| i.path == shown) {
            Some(i) => i.text = text.to_string(),
            None => return Err(format!("{shown} is not a policy file of {}", dir.display())),
        }
    }
    Ok(inputs)
}

/// The tools a saved scan lists: `.scan/<server>.json` (written by
/// `portcullis init`) or `<server>.tools.json` (by `portcullis scan -o`).
/// Either holds a `tools/list` result: a JSON array of tools, an object
/// with `tools`, or a whole JSON-RPC response with `result.tools`; a tool
/// entry with a `definition` object (init's `portcullis-scan/1` format) is
/// read from that definition.
pub fn saved_scan(dir: &Path, server: &str) -> Vec<ToolInfo> {
    for path in [
        dir.join(".scan").join(format!("{server}.json")),
        dir.join(format!("{server}.tools.json")),
    ] {
        let Ok(text) = std::fs::read_to_string(&path) else {
            continue;
        };
        let Ok(v) = serde_json::from_str::<Value>(&text) else {
            continue;
        };
        let tools = v
            .as_array()
            .or_else(|| v.get("tools").and_then(Value::as_array))
            .or_else(|| v.pointer("/result/tools").and_then(Value::as_array));
        if let Some(tools) = tools {
            return tools
                .iter()
                .map(|t| t.get("definition").filter(|d| d.is_object()).unwrap_or(t))
                .filter_map(|t| scaffold::tool_info(&serde_json::to_vec(t).ok()?))
                .collect();
        }
    }
    Vec::new()
}

fn risk_name(r: Risk) -> &'static str {
    match r {
        Risk::Read => "read",
        Risk::Write => "write",
        Risk::Destructive => "destructive",
    }
}

fn window_name(w: &Window) -> String {
    match w {
        Window::Calendar(Calendar::Minute) => "minute".into(),
        Window::Calendar(Calendar::Hour) => "hour".into(),
        Window::Calendar(Calendar::Day) => "day".into(),
        Window::Sliding { millis } => format!("{}s (sliding)", millis / 1000),
    }
}

/// The editor's choice (`minute`, `hour`, `day`) a window corresponds to,
/// if any: the catalogue form's sliding 60, 3600 and 86400 seconds are
/// what the page writes for them.
fn edit_window(w: &Window) -> Option<&'static str> {
    match w {
        Window::Calendar(Calendar::Minute) | Window::Sliding { millis: 60_000 } => Some("minute"),
        Window::Calendar(Calendar::Hour) | Window::Sliding { millis: 3_600_000 } => Some("hour"),
        Window::Calendar(Calendar::Day) | Window::Sliding { millis: 86_400_000 } => Some("day"),
        Window::Sliding { .. } => None,
    }
}

fn expr_text(p: &ServerPolicy, e: &Expr) -> String {
    match e {
        Expr::Bool(b) => b.to_string(),
        Expr::Test(t) => portcullis_compiler::explain::describe_test(p, t),
        Expr::Not(e) => format!("not ({})", expr_text(p, e)),
        Expr::And(v) | Expr::Or(v) => {
            let sep = if matches!(e, Expr::And(_)) {
                " and "
            } else {
                " or "
            };
            v.iter()
                .map(|e| expr_text(p, e))
                .collect::<Vec<_>>()
                .join(sep)
        }
    }
}

/// One tool as the page shows it.
fn tool_view(
    p: &ServerPolicy,
    sources: &portcullis_compiler::source::SourceMap,
    name: &str,
    info: Option<&ToolInfo>,
) -> Value {
    let at = |id| sources.location(p.rule(id).loc.0);
    let mut rules = Vec::new();
    let mut effect = "allow";
    let mut limit = Value::Null;
    let mut conditional = false;
    if let Some(h) = p.hidden_by(name) {
        effect = "hidden";
        rules.push(json!({"name": p.rule(h.rule).label, "where": at(h.rule), "text": format!("hidden by `{}`", h.pattern.text())}));
    } else {
        let own: Vec<_> = p
            .blocks_for(name)
            .flat_map(|b| b.rules.iter().copied())
            .collect();
        if own.is_empty() && p.default == Posture::Deny {
            effect = "deny";
            rules.push(json!({"name": "default deny", "where": at(p.default_rule), "text": "not listed; the default is deny"}));
        }
        for (inherited, id) in own
            .iter()
            .map(|id| (false, *id))
            .chain(p.wildcard.iter().map(|id| (true, *id)))
        {
            let r = p.rule(id);
            let mut text = Vec::new();
            if let Some(c) = &r.check {
                match &c.deny_when {
                    Expr::Bool(true) => {
                        text.push("denies every call".to_string());
                        effect = "deny";
                    }
                    Expr::Not(inner) => {
                        text.push(format!("allows when {}", expr_text(p, inner)));
                        conditional |= !inherited;
                    }
                    e => {
                        text.push(format!("denies when {}", expr_text(p, e)));
                        conditional |= !inherited;
                    }
                }
            }
            if let Some(a) = &r.approve {
                // Shown as a condition on the tool: it is callable once a person approves.
                text.push(match &a.when {
                    Expr::Bool(true) => format!("needs approval: {}", a.message),
                    e => format!("needs approval when {}: {}", expr_text(p, e), a.message),
                });
                conditional |= !inherited;
            }
            if let Some(l) = &r.limit {
                let c = p.counter(l.counter);
                let per = match &l.amount {
                    Amount::Const(1) => format!("{} calls", l.max),
                    Amount::Const(n) => format!("{} units ({n} a call)", l.max),
                    Amount::Arg { path, .. } => format!("{} of {}", l.max, path.display()),
                };
                text.push(format!("at most {per} per {}", window_name(&c.window)));
                if !inherited && effect == "allow" && limit.is_null() {
                    effect = "limit";
                    limit = json!({"max": l.max, "window": window_name(&c.window), "edit_window": edit_window(&c.window)});
                }
            }
            rules.push(json!({
                "name": r.name,
                "where": at(id),
                "text": text.join("; "),
                "inherited": inherited,
            }));
        }
    }
    let risk = info.map_or_else(|| scaffold::risk_by_name(name), |t| t.risk);
    json!({
        "name": name,
        "effect": effect,
        "conditional": conditional,
        "limit": limit,
        "rules": rules,
        "risk": risk_name(risk),
        "scanned": info.is_some(),
        "annotated": info.is_some_and(|t| t.annotated),
        "description": info.map(|t| t.description.clone()),
        "params": info.map(|t| t.params.iter().map(|p| json!({"name": p.name, "type": p.kind, "required": p.required})).collect::<Vec<_>>()),
    })
}

/// The policy file of `server` in `dir`.
fn policy_path(dir: &Path, server: &str) -> Option<PathBuf> {
    portcullis_compiler::POLICY_EXTENSIONS
        .iter()
        .map(|ext| dir.join(format!("{server}.{ext}")))
        .find(|p| p.is_file())
}

/// Every server of `dir` and its tools, grouped by risk.
pub fn servers(dir: &Path) -> Value {
    let inputs = match inputs(dir, None) {
        Ok(i) => i,
        Err(e) => return json!({"dir": dir.display().to_string(), "servers": [], "error": e}),
    };
    let output = portcullis_compiler::compile(&inputs);
    let diagnostics = if output.diagnostics.0.is_empty() {
        None
    } else {
        Some(output.render())
    };
    let mut servers = Vec::new();
    for p in &output.policies {
        let scanned = saved_scan(dir, &p.name);
        let mut names: Vec<String> = scanned.iter().map(|t| t.name.clone()).collect();
        for pattern in p
            .tools
            .iter()
            .flat_map(|b| &b.patterns)
            .chain(p.hidden.iter().map(|h| &h.pattern))
        {
            if let portcullis_compiler::ir::NamePattern::Exact(n) = pattern {
                names.push(n.clone());
            }
        }
        names.sort();
        names.dedup();
        let mut groups: Vec<(Risk, Vec<Value>)> = Vec::new();
        for risk in [Risk::Read, Risk::Write, Risk::Destructive] {
            let tools: Vec<Value> = names
                .iter()
                .map(|n| (n, scanned.iter().find(|t| &t.name == n)))
                .filter(|(n, info)| {
                    info.map_or_else(|| scaffold::risk_by_name(n), |t| t.risk) == risk
                })
                .map(|(n, info)| tool_view(p, &output.sources, n, info))
                .collect();
            if !tools.is_empty() {
                groups.push((risk, tools));
            }
        }
        servers.push(json!({
            "name": p.name,
            "file": p.path,
            "dialect": p.dialect.name(),
            "default": if p.default == Posture::Allow { "allow" } else { "deny" },
            "digest": p.digest,
            "scan": !scanned.is_empty(),
            "groups": groups.into_iter().map(|(r, t)| json!({"risk": risk_name(r), "tools": t})).collect::<Vec<_>>(),
        }));
    }
    json!({"dir": dir.display().to_string(), "servers": servers, "diagnostics": diagnostics})
}

/// An edit the page asks for.
#[derive(Debug, serde::Deserialize)]
pub struct Change {
    /// The server (policy file stem).
    pub server: String,
    /// The tool.
    pub tool: String,
    /// `allow`, `deny`, `limit` or `hidden`.
    pub effect: String,
    /// With `limit`: calls per window, as typed.
    #[serde(default)]
    pub max: String,
    /// With `limit`: `minute`, `hour` or `day`.
    #[serde(default)]
    pub window: String,
    /// With `deny`: the message the agent sees (empty: `<tool> is denied by policy`).
    #[serde(default)]
    pub reason: String,
    /// With a save: the policy's digest the preview was made from.
    #[serde(default)]
    pub digest: Option<String>,
    /// With a save: write even though the policy's tests fail.
    #[serde(default)]
    pub accept_failing_tests: bool,
}

/// What an edit would do: the new text and the report the page shows.
pub struct Preview {
    /// The file to write.
    pub path: PathBuf,
    /// Its new text.
    pub text: String,
    /// True when `validate` found no error.
    pub valid: bool,
    /// True when the policy's tests pass (or there are none).
    pub tests_pass: bool,
    /// The digest of the file the edit was made to.
    pub digest: String,
    /// The report (diff, validate, tests) as JSON.
    pub report: Value,
}

/// Makes the edit in memory, then validates the directory with it and runs the policy's tests.
pub fn preview(dir: &Path, change: &Change) -> Result<Preview, String> {
    let effect = match change.effect.as_str() {
        "allow" => Effect::Allow,
        "deny" => Effect::Deny(Some(change.reason.clone()).filter(|r| !r.trim().is_empty())),
        "hidden" => Effect::Hidden,
        "limit" => Effect::Limit {
            max: change.max.clone(),
            window: if change.window.is_empty() {
                "minute".into()
            } else {
                change.window.clone()
            },
        },
        e => {
            return Err(format!(
                "`{e}` is not an effect: allow, deny, limit or hidden"
            ));
        }
    };
    let path = policy_path(dir, &change.server).ok_or_else(|| {
        format!(
            "no policy file for server `{}` in {}",
            change.server,
            dir.display()
        )
    })?;
    let old =
        std::fs::read_to_string(&path).map_err(|e| format!("reading {}: {e}", path.display()))?;
    let current = portcullis_compiler::compile(&inputs(dir, None)?);
    let ir = current
        .policies
        .iter()
        .find(|p| p.name == change.server)
        .ok_or_else(|| {
            format!(
                "the policy of `{}` does not compile now; fix it first:\n{}",
                change.server,
                current.render()
            )
        })?;
    let lang = match ir.dialect {
        Dialect::InterceptV1 => Language::Yaml,
        Dialect::Dsl => Language::Dsl,
        Dialect::Catalogue => Language::Catalogue,
    };
    if let Some(h) = ir.hidden_by(&change.tool)
        && effect != Effect::Hidden
        && !matches!(&h.pattern, portcullis_compiler::ir::NamePattern::Exact(_))
    {
        return Err(format!(
            "`{}` is hidden by the pattern `{}` ({}): edit the file by hand",
            change.tool,
            h.pattern.text(),
            current.sources.location(h.loc.0)
        ));
    }
    let text = edit::apply(&old, lang, &change.tool, &effect)?;
    // validate: the whole directory with the edit, as the build will see it.
    let output = portcullis_compiler::compile(&inputs(dir, Some((&path, &text)))?);
    let mut diagnostics = output.diagnostics.clone();
    diagnostics
        .0
        .extend(crate::commands::validate::schema_warnings(&output.policies));
    let valid =
        !diagnostics.has_errors() && output.policies.iter().any(|p| p.name == change.server);
    let validate_text = if diagnostics.0.is_empty() {
        format!("{}: valid", path.display())
    } else {
        diagnostics.render(&output.sources)
    };
    // The policy's tests, against the reference evaluator.
    let test_file = portcullis_compiler::TEST_FILE_SUFFIXES
        .iter()
        .map(|suffix| dir.join(format!("{}{suffix}", change.server)))
        .find(|p| p.is_file());
    let mut tests = json!({"present": false, "ok": true, "text": "no tests (write <server>.test.yaml beside the policy)"});
    let mut tests_pass = true;
    if let Some(t) = &test_file
        && valid
        && let Ok(set) = output.into_set()
    {
        let source = TestSource {
            path: t.display().to_string(),
            text: std::fs::read_to_string(t)
                .map_err(|e| format!("reading {}: {e}", t.display()))?,
        };
        let r = run_suite(&set, &[source], &|_| None, false);
        tests_pass = r.ok();
        tests = json!({"present": true, "ok": tests_pass, "passed": r.passed, "failed": r.failed, "text": r.text});
    }
    let diff: Vec<Value> = edit::diff(&old, &text)
        .into_iter()
        .map(|l| match l {
            Some((k, t)) => json!([k.to_string(), t]),
            None => json!(["…", ""]),
        })
        .collect();
    let report = json!({
        "server": change.server,
        "tool": change.tool,
        "file": path.display().to_string(),
        "digest": ir.digest,
        "changed": old != text,
        "diff": diff,
        "validate": {"ok": valid, "text": validate_text},
        "tests": tests,
    });
    Ok(Preview {
        path,
        text,
        valid,
        tests_pass,
        digest: ir.digest.clone(),
        report,
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_saved_scan_in_each_shape() {
        let dir = std::env::temp_dir().join(format!("portcullis-ui-scan-{}", std::process::id()));
        std::fs::create_dir_all(dir.join(".scan")).unwrap();
        let tool = r#"{"name":"wipe","description":"Wipes it","inputSchema":{"type":"object","properties":{"id":{"type":"string"}},"required":["id"]},"annotations":{"readOnlyHint":true}}"#;
        let check = |what: &str| {
            let t = saved_scan(&dir, "s");
            assert_eq!(t.len(), 1, "{what}");
            assert_eq!(t[0].description, "Wipes it", "{what}");
            assert_eq!(
                t[0].risk,
                Risk::Read,
                "{what}: the annotation, not the name"
            );
            assert_eq!(t[0].params[0].name, "id", "{what}");
        };
        std::fs::write(dir.join("s.tools.json"), format!("[{tool}]")).unwrap();
        check("scan -o's <server>.tools.json");
        let init = format!(
            r#"{{"format":"portcullis-scan/1","server":"s","tools":[{{"name":"wipe","risk":"destructive","definition":{tool}}}]}}"#
        );
        std::fs::write(dir.join(".scan/s.json"), init).unwrap();
        check("init's .scan/<server>.json");
        std::fs::write(
            dir.join(".scan/s.json"),
            format!(r#"{{"jsonrpc":"2.0","id":1,"result":{{"tools":[{tool}]}}}}"#),
        )
        .unwrap();
        check("a tools/list response");
        let _ = std::fs::remove_dir_all(&dir);
    }
}
