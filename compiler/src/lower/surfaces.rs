//! Resources and prompts: what every front end shares when it lowers a
//! `resource` or `prompt` block (patterns, and the rule kinds those
//! surfaces take). The blocks themselves are lowered by each dialect with
//! the machinery it uses for tools, then moved into
//! [`crate::ir::ServerPolicy::resources`] / [`crate::ir::ServerPolicy::prompts`].

use crate::ir::{NamePattern, RuleId, ServerPolicy, Surface};
use crate::lower::PolicyBuilder;
use crate::source::{Diagnostic, Span};
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

/// Reports rules of resource and prompt blocks that take effects those
/// surfaces do not have (spend budgets, idempotency windows, approvals).
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
                } else if r.approve.is_some() {
                    Some("an approval")
                } else {
                    None
                };
                if let Some(what) = what {
                    diags.push(
                        Diagnostic::error(
                            format!("{what} applies to tool calls only, not to a {}", surface.name()),
                            sources_span(id),
                        )
                        .with_help(format!("{} rules deny, allow (conditions) and rate-limit; see docs/surfaces.md", surface.name())),
                    );
                }
            }
        }
    }
}
