//! The `results:` block of the YAML dialects (an Intercept v1 extension,
//! also the catalogue form's): what happens to answers (docs/results.md).
//!
//! ```yaml
//! results:
//!   all:                       # every answer
//!     redact: secrets
//!     max_bytes: 1 MiB
//!   tools:
//!     read_file:               # a tool name or glob
//!       deny: secrets
//!       max_bytes: 64 KiB
//!       message: "read_file answers may not carry secrets"
//!       patterns:
//!         - name: employee-id
//!           regex: "EMP-[0-9]{6}"
//!           action: redact
//!   resources:
//!     "file:///etc/**":        # a resources/read URI: exact, glob or (match: regex) regex,
//!       deny: secrets          # on the normalised URI, as resource request rules
//! ```
//!
//! Unknown keys are errors everywhere in the block.

use super::{Str, check_keys, get, map_entries, seq_items, string_field};
use crate::ir::Loc;
use crate::results::{Action, Pattern, ResultRule, SIZE_HELP, Target, parse_action, parse_size};
use crate::source::Diagnostic;
use crate::syntax::yaml::Node;

const RULE_KEYS: &[&str] = &["redact", "deny", "patterns", "max_bytes", "message"];

/// Decodes the block into rules (catch-all first, then tools, then resources).
pub fn decode_block(node: &Node, diags: &mut Vec<Diagnostic>) -> Vec<ResultRule> {
    let mut out = Vec::new();
    let Some(entries) = map_entries(node, "results", diags) else {
        return out;
    };
    check_keys(
        entries,
        &["all", "tools", "resources"],
        "the results block",
        diags,
    );
    if let Some(n) = get(entries, "all") {
        out.extend(rule(n, "results.all".into(), Target::All, diags));
    }
    for (key, target) in [("tools", true), ("resources", false)] {
        let Some(n) = get(entries, key) else {
            continue;
        };
        for (k, v) in map_entries(n, &format!("results.{key}"), diags).unwrap_or(&[]) {
            if k.text.is_empty() {
                diags.push(Diagnostic::error(
                    format!("results.{key}: an empty name"),
                    k.span,
                ));
                continue;
            }
            let t = if target {
                Target::Tool(k.text.clone())
            } else {
                Target::Resource(resource_key(k, v, diags))
            };
            out.extend(rule(v, format!("results.{key}.{}", k.text), t, diags));
        }
    }
    out
}

/// The pattern of a `results.resources` key: its `match:` (`exact`, `glob`,
/// `regex`; by default a glob when the key holds `*`), checked as a
/// resource request rule's (a URI written unnormalised is an error).
fn resource_key(
    k: &crate::syntax::yaml::Key,
    v: &Node,
    diags: &mut Vec<Diagnostic>,
) -> crate::ir::NamePattern {
    use super::surfaces::{MatchMode, resource_pattern};
    let mut mode = MatchMode::Auto;
    if let crate::syntax::yaml::NodeValue::Map(entries) = &v.value
        && let Some(m) = get(entries, "match")
    {
        let s = string_field(m, &format!("results.resources.{}.match", k.text), diags);
        match MatchMode::parse(&s.text) {
            Some(m) => mode = m,
            None => diags.push(
                Diagnostic::error(
                    format!(
                        "results.resources.{}.match: expected `exact`, `glob` or `regex`, found {:?}",
                        k.text, s.text
                    ),
                    s.span,
                )
                .with_help("resource patterns match as in resource rules: exact URI, URI glob (`*` within a segment, `**` across) or regex"),
            ),
        }
    }
    resource_pattern(&k.text, mode, k.span, diags)
}

fn rule(
    node: &Node,
    name: String,
    target: Target,
    diags: &mut Vec<Diagnostic>,
) -> Option<ResultRule> {
    let entries = map_entries(node, &name, diags)?;
    let resource = matches!(target, Target::Resource(_));
    let mut keys = RULE_KEYS.to_vec();
    if resource {
        keys.push("match");
    }
    check_keys(entries, &keys, &format!("the result rule {name}"), diags);
    let mut r = ResultRule::new(name.clone(), target, node.span);
    for action in ["redact", "deny"] {
        let Some(v) = get(entries, action) else {
            continue;
        };
        let s = string_field(v, &format!("{name}.{action}"), diags);
        if s.text != "secrets" {
            diags.push(
                Diagnostic::error(
                    format!("{name}.{action}: expected `secrets`, found {:?}", s.text),
                    s.span,
                )
                .with_help("`secrets` is the built-in set (docs/results.md); write your own patterns under `patterns:`"),
            );
            continue;
        }
        if r.secrets.is_some() {
            diags.push(
                Diagnostic::error(
                    format!("{name}: both `redact: secrets` and `deny: secrets`"),
                    s.span,
                )
                .with_help(
                    "keep one: deny withholds the whole answer, redact replaces each secret",
                ),
            );
        }
        r.secrets = parse_action(action);
    }
    if let Some(v) = get(entries, "max_bytes") {
        let s = string_field(v, &format!("{name}.max_bytes"), diags);
        match parse_size(&s.text) {
            Ok(n) => r.max_bytes = Some(n),
            Err(e) => diags.push(
                Diagnostic::error(format!("{name}.max_bytes: {e}"), s.span).with_help(SIZE_HELP),
            ),
        }
    }
    if let Some(v) = get(entries, "message") {
        let s = string_field(v, &format!("{name}.message"), diags);
        r.message = Some(s.text);
    }
    if let Some(v) = get(entries, "patterns") {
        for (i, item) in seq_items(v, &format!("{name}.patterns"), diags)
            .unwrap_or(&[])
            .iter()
            .enumerate()
        {
            let what = format!("{name}.patterns[{i}]");
            if let Some(p) = pattern(item, &what, diags) {
                if r.patterns.iter().any(|q| q.name == p.name) {
                    diags.push(Diagnostic::error(
                        format!("{what}: a second pattern named {:?}", p.name),
                        p.loc.0,
                    ));
                }
                r.patterns.push(p);
            }
        }
    }
    Some(r)
}

fn pattern(node: &Node, what: &str, diags: &mut Vec<Diagnostic>) -> Option<Pattern> {
    let entries = map_entries(node, what, diags)?;
    check_keys(
        entries,
        &["name", "regex", "action"],
        &format!("the pattern {what}"),
        diags,
    );
    let field = |key: &str, diags: &mut Vec<Diagnostic>| -> Option<Str> {
        match get(entries, key) {
            Some(v) => Some(string_field(v, &format!("{what}.{key}"), diags)),
            None => {
                diags.push(
                    Diagnostic::error(format!("{what}: `{key}` is required"), node.span).with_help(
                        "a pattern has a name, a regex (RE2 syntax) and an action (redact or deny)",
                    ),
                );
                None
            }
        }
    };
    let name = field("name", diags);
    let regex = field("regex", diags);
    let action = field("action", diags);
    let (name, regex, action) = (name?, regex?, action?);
    let action_value: Option<Action> = parse_action(&action.text);
    if action_value.is_none() {
        diags.push(
            Diagnostic::error(
                format!(
                    "{what}.action: expected `redact` or `deny`, found {:?}",
                    action.text
                ),
                action.span,
            )
            .with_help(
                "redact replaces each match with [REDACTED:name]; deny withholds the answer",
            ),
        );
    }
    let translated = translated(&regex, what, diags)?;
    check_name(&name, what, diags);
    Some(Pattern {
        name: name.text,
        source: regex.text,
        translated,
        action: action_value?,
        loc: Loc(node.span),
    })
}

/// A pattern name is a label in markers and metrics: letters, digits, `-` and `_`.
pub fn check_name(name: &Str, what: &str, diags: &mut Vec<Diagnostic>) {
    let ok = !name.text.is_empty()
        && name.text.len() <= 64
        && name
            .text
            .bytes()
            .all(|b| b.is_ascii_alphanumeric() || b == b'-' || b == b'_');
    if !ok {
        diags.push(
            Diagnostic::error(format!("{what}: invalid pattern name {:?}", name.text), name.span)
                .with_help("a pattern name is 1 to 64 letters, digits, `-` or `_` (it appears in markers and metric labels)"),
        );
    }
}

/// The pattern translated from RE2 and compiled once, or a positioned error.
pub fn translated(regex: &Str, what: &str, diags: &mut Vec<Diagnostic>) -> Option<String> {
    let checked = crate::regex::translate_go(&regex.text)
        .and_then(|re| crate::regex::build_regex(&re).map(|_| re));
    match checked {
        Ok(re) if re.translated.is_empty() => {
            diags.push(Diagnostic::error(
                format!("{what}.regex: an empty pattern matches everywhere"),
                regex.span,
            ));
            None
        }
        Ok(re) => Some(re.translated),
        Err(e) => {
            diags.push(
                Diagnostic::error(format!("{what}.regex: {e}"), regex.span).with_help(
                    "patterns use RE2 syntax, as in conditions (no look-around, no backreferences)",
                ),
            );
            None
        }
    }
}

/// A policy-language `results` block: one rule per target it names (a tool
/// list gives one rule per pattern), appended to `out`. A target set twice
/// is an error.
pub fn lower_dsl(
    block: &crate::syntax::dsl::ResultsBlock,
    out: &mut Vec<ResultRule>,
    diags: &mut Vec<Diagnostic>,
) {
    use crate::syntax::dsl::{ResultStmt, ResultsFor};
    let targets: Vec<(String, Target, crate::source::Span)> = match &block.target {
        ResultsFor::All => vec![("results".into(), Target::All, block.span)],
        ResultsFor::Tools(pats) => pats
            .iter()
            .map(|p| {
                (
                    format!("results for {}", p.text),
                    Target::Tool(p.text.clone()),
                    p.span,
                )
            })
            .collect(),
        ResultsFor::Resources(pats) => pats
            .iter()
            .map(|(p, regex)| {
                let mode = if *regex {
                    super::surfaces::MatchMode::Regex
                } else {
                    super::surfaces::MatchMode::Auto
                };
                let pattern = super::surfaces::resource_pattern(&p.text, mode, p.span, diags);
                (
                    format!(
                        "results for resource {}",
                        crate::results::pattern_text(&pattern)
                    ),
                    Target::Resource(pattern),
                    p.span,
                )
            })
            .collect(),
    };
    let mut rule = ResultRule::new(String::new(), Target::All, block.span);
    for s in &block.stmts {
        match s {
            ResultStmt::Secrets {
                action,
                message,
                span,
            } => {
                if rule.secrets.is_some() {
                    diags.push(
                        Diagnostic::error("`secrets` is set twice in this results block", *span)
                            .with_help("keep one: `deny secrets` withholds the answer, `redact secrets` replaces each secret"),
                    );
                }
                rule.secrets = Some(*action);
                if let Some(m) = message {
                    rule.message = Some(m.value.clone());
                }
            }
            ResultStmt::Pattern {
                action,
                regex,
                name,
                span,
            } => {
                let what = format!("pattern {}", name.value);
                let (source, flags) = &regex.value;
                let checked = crate::regex::translate_go_with_flags(source, flags)
                    .and_then(|re| crate::regex::build_regex(&re).map(|_| re));
                let translated = match checked {
                    Ok(re) => re.translated,
                    Err(e) => {
                        diags.push(
                            Diagnostic::error(format!("invalid regex /{source}/{flags}: {}", e.message), regex.span)
                                .with_help("patterns use RE2 syntax (no look-around, no backreferences); flags are i, m, s"),
                        );
                        continue;
                    }
                };
                check_name(
                    &Str {
                        text: name.value.clone(),
                        span: name.span,
                    },
                    &what,
                    diags,
                );
                if rule.patterns.iter().any(|p| p.name == name.value) {
                    diags.push(Diagnostic::error(
                        format!(
                            "a second pattern named {:?} in this results block",
                            name.value
                        ),
                        name.span,
                    ));
                }
                rule.patterns.push(Pattern {
                    name: name.value.clone(),
                    source: source.clone(),
                    translated,
                    action: *action,
                    loc: Loc(*span),
                });
            }
            ResultStmt::Max(m) => {
                if rule.max_bytes.is_some() {
                    diags.push(Diagnostic::error(
                        "`max` is set twice in this results block",
                        m.span,
                    ));
                }
                match parse_size(&m.value) {
                    Ok(n) => rule.max_bytes = Some(n),
                    Err(e) => diags.push(Diagnostic::error(e, m.span).with_help(SIZE_HELP)),
                }
            }
        }
    }
    for (name, target, span) in targets {
        if let Some(first) = out.iter().find(|r| r.target == target) {
            diags.push(
                Diagnostic::error(format!("{name} is set twice"), span)
                    .with_label(first.loc.0, "first set here")
                    .with_help("merge the two results blocks into one"),
            );
            continue;
        }
        let mut r = rule.clone();
        r.name = name;
        r.target = target;
        r.loc = Loc(span);
        out.push(r);
    }
}
