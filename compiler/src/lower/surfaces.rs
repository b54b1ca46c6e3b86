//! Resources and prompts: what every front end shares when it lowers a
//! `resource` or `prompt` block (patterns, and the rule kinds those
//! surfaces take). The blocks themselves are lowered by each dialect with
//! the machinery it uses for tools, then moved into
//! [`crate::ir::ServerPolicy::resources`] / [`crate::ir::ServerPolicy::prompts`].

use crate::ir::{Expr, NamePattern, Posture, RuleId, RuleKind, ServerPolicy, Surface};
use crate::lower::{PolicyBuilder, check_keys, map_entries, string_field};
use crate::source::{Diagnostic, Span};
use crate::syntax::yaml::{Key, Node, NodeValue};
use portcullis_core::uri::{MAX_GLOB_LEN, normalize};

/// How a resource key is matched (Intercept's and the catalogue's `match:`).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum MatchMode {
    /// Glob when the text holds `*`, else exact.
    Auto,
    /// Exactly this (normalised) URI or name.
    Exact,
    /// A glob.
    Glob,
    /// A regex (RE2 syntax, unanchored).
    Regex,
}

impl MatchMode {
    /// `exact`, `glob`, `regex`; None for anything else.
    pub fn parse(s: &str) -> Option<MatchMode> {
        match s {
            "exact" => Some(MatchMode::Exact),
            "glob" => Some(MatchMode::Glob),
            "regex" => Some(MatchMode::Regex),
            _ => None,
        }
    }
}

/// The pattern of a resource or prompt block written as `text`. A resource
/// URI must be written normalised (the proxy matches normalised URIs: an
/// exact URI written otherwise could never match), a glob must fit the
/// matcher, a regex must compile. Errors are reported at `span`.
pub fn pattern(
    surface: Surface,
    text: &str,
    mode: MatchMode,
    span: Span,
    b: &mut PolicyBuilder,
    diags: &mut Vec<Diagnostic>,
) -> NamePattern {
    let mode = match mode {
        MatchMode::Auto if text.contains('*') => MatchMode::Glob,
        MatchMode::Auto => MatchMode::Exact,
        m => m,
    };
    match (surface, mode) {
        (_, MatchMode::Regex) => match b.add_regex(text, "", span) {
            Ok(id) => {
                let r = b.policy.regex(id);
                NamePattern::Regex {
                    id,
                    source: text.to_string(),
                    translated: r.translated.clone(),
                }
            }
            Err(e) => {
                diags.push(
                    Diagnostic::error(format!("invalid regex `{text}`: {e}"), span)
                        .with_help("resource and prompt regexes use RE2 syntax, as conditions do; they match anywhere in the URI unless anchored with `^`/`$`"),
                );
                NamePattern::Exact(text.to_string())
            }
        },
        (Surface::Resource, mode) => resource_text_pattern(text, mode, span, diags),
        (_, MatchMode::Glob) => NamePattern::Glob(text.to_string()),
        _ => NamePattern::Exact(text.to_string()),
    }
}

/// A resource glob or exact URI, checked (see [`pattern`]).
fn resource_text_pattern(
    text: &str,
    mode: MatchMode,
    span: Span,
    diags: &mut Vec<Diagnostic>,
) -> NamePattern {
    match mode {
        MatchMode::Glob => {
            if text.len() > MAX_GLOB_LEN {
                diags.push(
                    Diagnostic::error(
                        format!("a resource glob is at most {MAX_GLOB_LEN} bytes"),
                        span,
                    )
                    .with_help("shorten the glob, or write a regex (`match: regex`)"),
                );
            }
            NamePattern::UriGlob(text.to_string())
        }
        _ => {
            match normalize(text) {
                Ok(n) if n == text => {}
                Ok(n) => diags.push(
                    Diagnostic::error(format!("the resource URI `{text}` is not normalised"), span)
                        .with_help(format!("requests are matched after normalisation (case of scheme and host, percent-decoding, `.`/`..`, duplicate slashes): write `{n}`")),
                ),
                Err(e) => diags.push(
                    Diagnostic::error(format!("`{text}` is not a URI the proxy can normalise: {}", e.kind), span)
                        .with_help("write a full URI with its scheme, e.g. `file:///etc/passwd`; such requests are denied anyway"),
                ),
            }
            NamePattern::Exact(text.to_string())
        }
    }
}

/// A resource pattern checked as [`pattern`] checks it, for a result rule
/// (`results for resource ...`, YAML `results.resources`), which the YAML
/// front ends read before a policy builder exists: a regex gets the id
/// [`UNREGISTERED`] until [`PolicyBuilder::finish`] registers it.
pub fn resource_pattern(
    text: &str,
    mode: MatchMode,
    span: Span,
    diags: &mut Vec<Diagnostic>,
) -> NamePattern {
    if mode == MatchMode::Regex {
        let checked = crate::regex::translate_go_with_flags(text, "")
            .and_then(|re| crate::regex::build_regex(&re).map(|_| re));
        return match checked {
            Ok(re) => NamePattern::Regex {
                id: UNREGISTERED,
                source: text.to_string(),
                translated: re.translated,
            },
            Err(e) => {
                diags.push(
                    Diagnostic::error(format!("invalid regex `{text}`: {e}"), span)
                        .with_help("resource regexes use RE2 syntax, as conditions do; they match anywhere in the normalised URI unless anchored with `^`/`$`"),
                );
                NamePattern::Exact(text.to_string())
            }
        };
    }
    let mode = match mode {
        MatchMode::Auto if text.contains('*') => MatchMode::Glob,
        MatchMode::Auto => MatchMode::Exact,
        m => m,
    };
    resource_text_pattern(text, mode, span, diags)
}

/// The regex id of a result rule's resource regex not yet registered.
pub const UNREGISTERED: crate::ir::RegexId = crate::ir::RegexId(u32::MAX);

/// True when `key: value` of a `resources:` / `prompts:` block (both YAML
/// forms) is the block's posture, `default: allow | deny`: the key
/// `default` with a scalar value (an entry, even one for a prompt named
/// `default`, is a mapping). The posture and its rule-table entry are set
/// on the surface; a value other than `allow` or `deny` is an error at it.
pub fn yaml_default(
    section: &str,
    surface: Surface,
    key: &Key,
    value: &Node,
    b: &mut PolicyBuilder,
    diags: &mut Vec<Diagnostic>,
) -> bool {
    if !is_default(key, value) {
        return false;
    }
    if let Some(posture) = default_posture(section, surface, value, diags) {
        set_default(section, surface, key.span, posture, b);
    }
    true
}

/// True when `key: value` is a block's `default:` (anything but a mapping
/// under `default`: an entry is a mapping).
pub fn is_default(key: &Key, value: &Node) -> bool {
    key.text == "default" && !matches!(value.value, NodeValue::Map(_))
}

/// The posture a block's `default:` value names; None (and an error at the
/// value) for anything but `allow` or `deny`.
pub fn default_posture(
    section: &str,
    surface: Surface,
    value: &Node,
    diags: &mut Vec<Diagnostic>,
) -> Option<Posture> {
    let help = format!(
        "`default: deny` refuses every {0} no entry lists (an allow-list); an entry for a {0} named `default` is a mapping (`default: {{rules: [...]}}`)",
        surface.name()
    );
    if !matches!(value.value, NodeValue::Scalar(_)) {
        diags.push(
            Diagnostic::error(
                format!(
                    "{section}.default must be `allow` or `deny`, found {}",
                    value.kind_name()
                ),
                value.span,
            )
            .with_help(help),
        );
        return None;
    }
    let s = string_field(value, &format!("{section}.default"), diags);
    match s.text.as_str() {
        "allow" => Some(Posture::Allow),
        "deny" => Some(Posture::Deny),
        other => {
            diags.push(
                Diagnostic::error(
                    format!(
                        "{section}.default must be `allow` or `deny`, got {}",
                        portcullis_core::policy::go_quote(other)
                    ),
                    s.span,
                )
                .with_help(help),
            );
            None
        }
    }
}

/// Sets the posture of `surface` and its rule-table entry (at `span`, the key).
pub fn set_default(
    section: &str,
    surface: Surface,
    span: Span,
    posture: Posture,
    b: &mut PolicyBuilder,
) {
    let rule = b.add_rule(
        "(default deny)".into(),
        format!("{section}.default"),
        RuleKind::DefaultDeny,
        span,
    );
    let rules = match surface {
        Surface::Resource => &mut b.policy.resources,
        _ => &mut b.policy.prompts,
    };
    rules.default = posture;
    rules.default_rule = Some(rule);
}

/// What an entry's `hide:` says (both YAML forms).
pub enum HideField<'n> {
    /// Not hidden (`hide: false`, or no `hide:`).
    No,
    /// Hidden from every caller (`hide: true`).
    Always,
    /// Hidden per caller: `hide: {when: [CONDITIONS]}` or
    /// `hide: {unless: [CONDITIONS]}` (the node, for [`hide_when`]).
    When(&'n Node),
}

/// Reads an entry's `hide:` value: `true`, `false`, or a mapping with
/// exactly one of `when` / `unless` (conditions on principal paths, as a
/// tool's conditional hide entry). Errors are positioned at the value.
pub fn hide_field<'n>(ctx: &str, node: &'n Node, diags: &mut Vec<Diagnostic>) -> HideField<'n> {
    if let NodeValue::Map(_) = node.value {
        let hctx = format!("{ctx}.hide");
        let Some(entries) = map_entries(node, &hctx, diags) else {
            return HideField::No;
        };
        check_keys(entries, &["when", "unless"], "a conditional hide", diags);
        let when = entries.iter().find(|(k, _)| k.text == "when");
        let unless = entries.iter().find(|(k, _)| k.text == "unless");
        match (when, unless) {
            (Some(_), Some((k, _))) => diags.push(
                Diagnostic::error(format!("{hctx}: give `when` or `unless`, not both"), k.span)
                    .with_help("`when`: hidden when every condition holds; `unless`: hidden unless every condition holds"),
            ),
            (None, None) => diags.push(
                Diagnostic::error(format!("{hctx}: a conditional hide needs `when` or `unless`"), node.span)
                    .with_help("write e.g. `hide: {unless: [{path: principal.claims.groups, op: contains, value: admins}]}`, or `hide: true` to hide it from every caller"),
            ),
            _ => {}
        }
        return HideField::When(node);
    }
    let h = string_field(node, "hide", diags);
    match h.text.as_str() {
        "true" => HideField::Always,
        "false" => HideField::No,
        _ => {
            diags.push(
                Diagnostic::error(format!("{ctx}.hide must be `true`, `false` or a condition"), h.span)
                    .with_help("`hide: true` removes matching entries from the list and denies reading them; `hide: {unless: [{path: principal.claims.groups, op: contains, value: admins}]}` does so per caller"),
            );
            HideField::No
        }
    }
}

/// The condition of a conditional `hide:` ([`HideField::When`]).
pub fn hide_when(
    node: &Node,
    ctx: &str,
    b: &mut PolicyBuilder,
    diags: &mut Vec<Diagnostic>,
) -> Option<Expr> {
    super::intercept::hide_condition(node, &format!("{ctx}.hide"), b, diags)
}

/// Reports rules of resource and prompt blocks that take effects those
/// surfaces do not have (spend budgets, idempotency windows).
pub fn check_rules(
    p: &ServerPolicy,
    sources_span: impl Fn(RuleId) -> Span,
    diags: &mut Vec<Diagnostic>,
) {
    for surface in [Surface::Resource, Surface::Prompt] {
        let Some(rules) = p.surface_rules(surface) else {
            continue;
        };
        for block in &rules.blocks {
            for &id in &block.rules {
                let r = p.rule(id);
                let what = if r.spend.is_some() {
                    Some("a spend budget")
                } else if r.idempotency.is_some() {
                    Some("an idempotency window")
                } else {
                    None
                };
                if let Some(what) = what {
                    diags.push(
                        Diagnostic::error(
                            format!("{what} applies to tool calls only, not to a {}", surface.name()),
                            sources_span(id),
                        )
                        .with_help(format!("{} rules deny, allow (conditions), ask for approval and rate-limit; see docs/surfaces.md", surface.name())),
                    );
                }
            }
        }
    }
}
