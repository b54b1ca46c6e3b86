//! Lowering: surface syntax (with spans) to the typed IR, one module per dialect.
//!
//! Front ends share [`PolicyBuilder`], which owns the rule table, counters and
//! regexes of the policy being built, and a few helpers for reading YAML
//! mappings strictly.

pub mod approval;
pub mod catalogue;
pub mod dsl;
pub mod idempotency;
pub mod intercept;
pub mod results;
pub mod surfaces;

use crate::ir::{
    CounterId, Dialect, Hide, Loc, NamePattern, Posture, Regex, RegexId, Rule, RuleId, RuleKind,
    ServerPolicy,
};
use crate::source::{Diagnostic, FileId, Span, did_you_mean};
use crate::syntax::yaml::{Key, Node, NodeValue, Style};

/// Accumulates the tables of one server policy.
pub struct PolicyBuilder {
    /// The policy so far (tables are appended to).
    pub policy: ServerPolicy,
}

impl PolicyBuilder {
    /// A builder for server `name` from `file`.
    pub fn new(name: &str, file: FileId, path: &str, dialect: Dialect, digest: String) -> Self {
        PolicyBuilder {
            policy: ServerPolicy {
                name: name.to_string(),
                file,
                path: path.to_string(),
                dialect,
                description: None,
                default: Posture::Allow,
                default_rule: RuleId(0),
                hidden: Vec::new(),
                tools: Vec::new(),
                wildcard: Vec::new(),
                rules: Vec::new(),
                counters: Vec::new(),
                regexes: Vec::new(),
                digest,
                approvals: None,
                results: Vec::new(),
                resources: Default::default(),
                prompts: Default::default(),
            },
        }
    }

    /// A YAML `hide` entry (both dialects): `"*"` hides every tool, any
    /// other text the tool of that exact name; `index` names it `hide[index]`.
    pub fn add_hide(&mut self, index: usize, name: &str, span: Span) {
        let rule = self.add_rule(
            "(hidden)".into(),
            format!("hide[{index}]"),
            RuleKind::Hide,
            span,
        );
        let pattern = if name == "*" {
            NamePattern::All
        } else {
            NamePattern::Exact(name.to_owned())
        };
        self.policy.hidden.push(Hide {
            pattern,
            when: None,
            rule,
            loc: Loc(span),
        });
    }

    /// Appends a rule-table entry and returns its id.
    pub fn add_rule(&mut self, name: String, label: String, kind: RuleKind, span: Span) -> RuleId {
        let id = RuleId(self.policy.rules.len() as u32);
        self.policy.rules.push(Rule {
            id,
            name,
            label,
            kind,
            check: None,
            limit: None,
            spend: None,
            idempotency: None,
            approve: None,
            loc: Loc(span),
        });
        id
    }

    /// The rule with this id, for filling in its phases.
    pub fn rule_mut(&mut self, id: RuleId) -> &mut Rule {
        &mut self.policy.rules[id.0 as usize]
    }

    /// Appends a counter and returns its id.
    pub fn add_counter(&mut self, mut counter: crate::ir::Counter) -> CounterId {
        let id = CounterId(self.policy.counters.len() as u32);
        counter.id = id;
        self.policy.counters.push(counter);
        id
    }

    /// Translates and adds a regex (Go/RE2 syntax; `flags` from a DSL literal),
    /// reusing an identical one. On error returns the message and the span inside the pattern.
    pub fn add_regex(
        &mut self,
        source: &str,
        flags: &str,
        span: Span,
    ) -> Result<RegexId, crate::regex::RegexError> {
        let re = crate::regex::translate_go_with_flags(source, flags)?;
        crate::regex::build_regex(&re)?;
        Ok(self.add_translated_regex(re, flags, span))
    }

    /// Adds a regex already translated (and built once, so known valid),
    /// reusing an identical one; `re.source` is the pattern as written.
    pub fn add_translated_regex(
        &mut self,
        re: crate::regex::GoRegex,
        flags: &str,
        span: Span,
    ) -> RegexId {
        if let Some(existing) = self
            .policy
            .regexes
            .iter()
            .find(|r| r.translated == re.translated)
        {
            return existing.id;
        }
        let id = RegexId(self.policy.regexes.len() as u32);
        self.policy.regexes.push(Regex {
            id,
            source: re.source,
            flags: flags.to_string(),
            translated: re.translated,
            loc: Loc(span),
        });
        id
    }

    /// The finished policy.
    pub fn finish(mut self) -> ServerPolicy {
        // Result rules' resource regexes join the policy's regexes (the
        // generated code tests them as request rules do).
        let mut results = std::mem::take(&mut self.policy.results);
        for r in &mut results {
            if let crate::results::Target::Resource(NamePattern::Regex {
                id,
                source,
                translated,
            }) = &mut r.target
                && *id == surfaces::UNREGISTERED
            {
                let re = crate::regex::GoRegex {
                    source: source.clone(),
                    translated: translated.clone(),
                };
                *id = self.add_translated_regex(re, "", r.loc.0);
            }
        }
        self.policy.results = results;
        crate::results::merge(&mut self.policy.results);
        crate::ir::fail_closed_paths(&mut self.policy);
        self.policy
    }
}

/// A string-valued field with its span.
#[derive(Debug, Clone, Default)]
pub struct Str {
    /// The text.
    pub text: String,
    /// Where (the value, or the key when the value is absent).
    pub span: Span,
}

/// Reads a mapping's entries, reporting every key not in `allowed`.
/// `context` names the mapping in messages (`rule`, `condition`, ...).
pub fn check_keys(
    entries: &[(Key, Node)],
    allowed: &[&str],
    context: &str,
    diags: &mut Vec<Diagnostic>,
) {
    for (k, _) in entries {
        if allowed.contains(&k.text.as_str()) {
            continue;
        }
        let help = match did_you_mean(&k.text, allowed) {
            Some(s) => format!(
                "did you mean `{s}`? (unknown keys are errors: Intercept silently ignores them, so a typo would change the policy)"
            ),
            None => format!("allowed keys here: {}", allowed.join(", ")),
        };
        diags.push(
            Diagnostic::error(format!("unknown key `{}` in {context}", k.text), k.span)
                .with_help(help),
        );
    }
}

/// The entries of a mapping node, or a type error. A null node is an empty mapping.
pub fn map_entries<'n>(
    node: &'n Node,
    context: &str,
    diags: &mut Vec<Diagnostic>,
) -> Option<&'n [(Key, Node)]> {
    match &node.value {
        NodeValue::Map(e) => Some(e),
        _ if node.is_null() => Some(&[]),
        _ => {
            diags.push(
                Diagnostic::intercept(
                    format!(
                        "parsing config file: {context} must be a mapping, found {}",
                        node.kind_name()
                    ),
                    node.span,
                )
                .with_help(format!("write {context} as `key: value` lines")),
            );
            None
        }
    }
}

/// The items of a sequence node, or a type error. A null node is an empty list.
pub fn seq_items<'n>(
    node: &'n Node,
    context: &str,
    diags: &mut Vec<Diagnostic>,
) -> Option<&'n [Node]> {
    match &node.value {
        NodeValue::Seq(items) => Some(items),
        _ if node.is_null() => Some(&[]),
        _ => {
            diags.push(
                Diagnostic::intercept(
                    format!(
                        "parsing config file: {context} must be a list, found {}",
                        node.kind_name()
                    ),
                    node.span,
                )
                .with_help(format!("write {context} as `- item` lines or `[a, b]`")),
            );
            None
        }
    }
}

/// A string field: any scalar's source text (Intercept keeps `1.0` as "1.0"),
/// null as "". A list or mapping is a type error.
pub fn string_field(node: &Node, context: &str, diags: &mut Vec<Diagnostic>) -> Str {
    match &node.value {
        NodeValue::Scalar(s) => Str {
            text: if s.style == Style::Plain && node.is_null() {
                String::new()
            } else {
                s.text.clone()
            },
            span: node.span,
        },
        _ => {
            diags.push(
                Diagnostic::intercept(
                    format!(
                        "parsing config file: {context} must be a string, found {}",
                        node.kind_name()
                    ),
                    node.span,
                )
                .with_help("write a single value here"),
            );
            Str {
                text: String::new(),
                span: node.span,
            }
        }
    }
}

/// The entry for `key` in `entries`.
pub fn get<'n>(entries: &'n [(Key, Node)], key: &str) -> Option<&'n Node> {
    entries.iter().find(|(k, _)| k.text == key).map(|(_, v)| v)
}

/// The span of the key `key` in `entries`.
pub fn key_span(entries: &[(Key, Node)], key: &str) -> Option<Span> {
    entries
        .iter()
        .find(|(k, _)| k.text == key)
        .map(|(k, _)| k.span)
}
