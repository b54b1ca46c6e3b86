//! Result rules in the IR: what a policy does to the answers coming back from
//! the server (`results:` in the YAML dialects, `results { ... }` in the
//! policy language; docs/results.md). Every dialect lowers to
//! [`ResultRule`]s; the proxy applies them with `portcullis_core::results`.

use crate::ir::{Loc, NamePattern};
use crate::source::Span;

pub use portcullis_core::secrets::Action;

/// What a result rule applies to.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Target {
    /// Every answer.
    All,
    /// Answers of tools whose names match the glob.
    Tool(String),
    /// `resources/read` answers for URIs the pattern matches (exact, URI
    /// glob or regex, on the normalised URI: as resource request rules).
    Resource(NamePattern),
    /// `resources/read` answers for a URI that cannot be normalised: made by
    /// [`merge`], the strictest combination of the rules that could apply.
    Unnormalised,
}

impl Target {
    /// How `explain` and messages name it.
    pub fn describe(&self) -> String {
        match self {
            Target::All => "every answer".into(),
            Target::Tool(t) => format!("tool {t}"),
            Target::Resource(r) => format!("resource {}", pattern_text(r)),
            Target::Unnormalised => "resources whose URI cannot be normalised".into(),
        }
    }
}

/// A resource pattern as the policy language writes it: a regex between
/// slashes, anything else as it is.
pub fn pattern_text(p: &NamePattern) -> String {
    match p {
        NamePattern::Regex { source, .. } => format!("/{source}/"),
        other => other.text().to_string(),
    }
}

/// The name of the rule [`merge`] makes for URIs that cannot be normalised.
pub const UNNORMALISED_RULE: &str = "results for unnormalised resource URIs";

/// One of a policy's own patterns.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Pattern {
    /// Its name (markers, logs, metrics).
    pub name: String,
    /// As written (RE2 syntax).
    pub source: String,
    /// Translated to Rust's regex dialect.
    pub translated: String,
    /// What a match does.
    pub action: Action,
    /// Where it is written.
    pub loc: Loc,
}

/// One result rule.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ResultRule {
    /// Where it sits, e.g. `results.tools.read_file`.
    pub name: String,
    /// What it applies to.
    pub target: Target,
    /// The built-in secret formats and what a match does.
    pub secrets: Option<Action>,
    /// The policy's own patterns.
    pub patterns: Vec<Pattern>,
    /// The largest answer in bytes (of the JSON `result`).
    pub max_bytes: Option<u64>,
    /// The message of a denied answer.
    pub message: Option<String>,
    /// Where it is written.
    pub loc: Loc,
}

impl ResultRule {
    /// An empty rule for `target`.
    pub fn new(name: String, target: Target, span: Span) -> ResultRule {
        ResultRule {
            name,
            target,
            secrets: None,
            patterns: Vec::new(),
            max_bytes: None,
            message: None,
            loc: Loc(span),
        }
    }

    /// One line for `explain`.
    pub fn summary(&self) -> String {
        let mut parts = Vec::new();
        if let Some(a) = self.secrets {
            parts.push(format!("{} secrets", a.name()));
        }
        for p in &self.patterns {
            parts.push(format!("{} /{}/ ({})", p.action.name(), p.source, p.name));
        }
        if let Some(m) = self.max_bytes {
            parts.push(format!("max {}", format_size(m)));
        }
        if parts.is_empty() {
            parts.push("nothing".into());
        }
        parts.join("; ")
    }
}

/// The catch-all rule's settings apply to the other rules where they say
/// nothing: its `secrets` action, its `max_bytes` and message, and its
/// patterns (before their own). One rule then decides each answer.
///
/// When some rule names resources, a last rule ([`Target::Unnormalised`])
/// is added for a `resources/read` whose URI cannot be normalised: no
/// pattern can be said to match or miss it, so it gets every rule that
/// could apply at once, the strictest of each setting (see [`strictest`]).
pub fn merge(rules: &mut Vec<ResultRule>) {
    rules.retain(|r| r.target != Target::Unnormalised);
    fill_in(rules);
    if let Some(r) = strictest(rules) {
        rules.push(r);
    }
}

/// The rule for URIs that cannot be normalised: the combination of every
/// resource rule and the catch-all rule (the rules one such URI could
/// get): `deny secrets` if any denies them, else `redact` if any redacts;
/// every pattern (one name kept once, deny over redact); the smallest
/// `max_bytes`; the message when they all say the same. None when no rule
/// names resources.
pub fn strictest(rules: &[ResultRule]) -> Option<ResultRule> {
    let first = rules
        .iter()
        .find(|r| matches!(r.target, Target::Resource(_)))?;
    let could: Vec<&ResultRule> = rules
        .iter()
        .filter(|r| matches!(r.target, Target::Resource(_) | Target::All))
        .collect();
    let mut out = ResultRule::new(UNNORMALISED_RULE.into(), Target::Unnormalised, first.loc.0);
    out.secrets = could
        .iter()
        .filter_map(|r| r.secrets)
        .max_by_key(|a| matches!(a, Action::Deny));
    out.max_bytes = could.iter().filter_map(|r| r.max_bytes).min();
    let messages: Vec<&Option<String>> = could.iter().map(|r| &r.message).collect();
    if messages.windows(2).all(|w| w[0] == w[1]) {
        out.message = messages.first().and_then(|m| (*m).clone());
    }
    for p in could.iter().flat_map(|r| &r.patterns) {
        match out
            .patterns
            .iter_mut()
            .find(|q| q.name == p.name && q.translated == p.translated)
        {
            Some(q) if p.action == Action::Deny => q.action = Action::Deny,
            Some(_) => {}
            None => out.patterns.push(p.clone()),
        }
    }
    Some(out)
}

fn fill_in(rules: &mut [ResultRule]) {
    let Some(all) = rules.iter().find(|r| r.target == Target::All).cloned() else {
        return;
    };
    for r in rules.iter_mut().filter(|r| r.target != Target::All) {
        r.secrets = r.secrets.or(all.secrets);
        r.max_bytes = r.max_bytes.or(all.max_bytes);
        if r.message.is_none() {
            r.message.clone_from(&all.message);
        }
        let own = std::mem::take(&mut r.patterns);
        let mut merged: Vec<Pattern> = all
            .patterns
            .iter()
            .filter(|p| !own.iter().any(|o| o.name == p.name))
            .cloned()
            .collect();
        merged.extend(own);
        r.patterns = merged;
    }
}

fn leak(s: &str) -> &'static str {
    Box::leak(s.to_string().into_boxed_str())
}

/// A resource pattern as the core matches it (leaked, for the evaluator).
fn core_pattern(p: &NamePattern) -> portcullis_core::results::UriPattern {
    use portcullis_core::results::UriPattern;
    match p {
        NamePattern::UriGlob(g) | NamePattern::Glob(g) => UriPattern::Glob(leak(g)),
        NamePattern::Regex { translated, .. } => UriPattern::Regex(Box::leak(Box::new(
            portcullis_core::regex::EmbeddedRegex::new(leak(translated), None),
        ))),
        NamePattern::Exact(e) => UriPattern::Exact(leak(e)),
        NamePattern::All => UriPattern::Glob("**"),
    }
}

/// The rules of `policy` as the core runs them, for a policy loaded at run
/// time (the reference evaluator): leaked, like the evaluator's rule texts.
pub fn to_core(
    policy: &crate::ir::ServerPolicy,
    sources: &crate::source::SourceMap,
) -> &'static [portcullis_core::results::ResultRule] {
    use portcullis_core::results::{ResultPattern, ResultRule as Core, ResultSpec, Target as T};
    let file = sources.file(policy.file);
    let rules: Vec<Core> = policy
        .results
        .iter()
        .map(|r| {
            let (line, column) = file.line_col(r.loc.0.start);
            let patterns: Vec<ResultPattern> = r
                .patterns
                .iter()
                .map(|p| ResultPattern {
                    name: leak(&p.name),
                    regex: leak(&p.translated),
                    action: p.action,
                })
                .collect();
            Core::new(ResultSpec {
                name: leak(&r.name),
                target: match &r.target {
                    Target::All => T::All,
                    Target::Tool(t) => T::Tool(leak(t)),
                    Target::Resource(p) => T::Resource(core_pattern(p)),
                    Target::Unnormalised => T::Unnormalised,
                },
                secrets: r.secrets,
                patterns: Box::leak(patterns.into_boxed_slice()),
                max_bytes: r.max_bytes,
                message: r.message.as_deref().map_or("", leak),
                file: leak(&file.name),
                line,
                column,
            })
        })
        .collect();
    Box::leak(rules.into_boxed_slice())
}

/// Generated code for a policy's result rules: the statics, and the
/// `Policy` methods (`result_rules`; `result_rule` as a `match` on the
/// tool name: exact names, then globs in order, then the catch-all rule;
/// `resource_result_rule` when a rule names resources: the URI normalised
/// into a stack buffer, then a `match` on exact URIs, then globs and
/// regexes in order, with `pattern_test`, the request rules' own test).
/// Both empty for a policy without result rules (the trait's defaults).
pub fn codegen(
    policy: &crate::ir::ServerPolicy,
    sources: &crate::source::SourceMap,
    pattern_test: &dyn Fn(
        &NamePattern,
        &proc_macro2::TokenStream,
    ) -> Option<proc_macro2::TokenStream>,
) -> (proc_macro2::TokenStream, proc_macro2::TokenStream) {
    use proc_macro2::Literal;
    use quote::{format_ident, quote};
    if policy.results.is_empty() {
        return (quote!(), quote!());
    }
    let file = sources.file(policy.file);
    let action = |a: Action| match a {
        Action::Redact => quote!(ResultAction::Redact),
        Action::Deny => quote!(ResultAction::Deny),
    };
    let opt_action = |a: Option<Action>| match a {
        Some(a) => {
            let a = action(a);
            quote!(Some(#a))
        }
        None => quote!(None),
    };
    let mut statics = Vec::new();
    let mut rules = Vec::new();
    for (i, r) in policy.results.iter().enumerate() {
        let (line, column) = file.line_col(r.loc.0.start);
        let pats = format_ident!("RESULT_PATTERNS_{}", i);
        let n = r.patterns.len();
        let items = r.patterns.iter().map(|p| {
            let (name, regex, a) = (
                Literal::string(&p.name),
                Literal::string(&p.translated),
                action(p.action),
            );
            quote!(ResultPattern { name: #name, regex: #regex, action: #a })
        });
        statics.push(quote!(static #pats: [ResultPattern; #n] = [#(#items),*];));
        let target = match &r.target {
            Target::All => quote!(ResultTarget::All),
            Target::Tool(t) => {
                let t = Literal::string(t);
                quote!(ResultTarget::Tool(#t))
            }
            Target::Resource(p) => {
                let text = Literal::string(p.text());
                match p {
                    NamePattern::Regex { translated, .. } => {
                        let t = Literal::string(translated);
                        let re = format_ident!("RESULT_RE_{}", i);
                        statics.push(
                            quote!(static #re: EmbeddedRegex = EmbeddedRegex::new(#t, None);),
                        );
                        quote!(ResultTarget::Resource(ResultUriPattern::Regex(&#re)))
                    }
                    NamePattern::Exact(_) => {
                        quote!(ResultTarget::Resource(ResultUriPattern::Exact(#text)))
                    }
                    _ => quote!(ResultTarget::Resource(ResultUriPattern::Glob(#text))),
                }
            }
            Target::Unnormalised => quote!(ResultTarget::Unnormalised),
        };
        let max = match r.max_bytes {
            Some(m) => quote!(Some(#m)),
            None => quote!(None),
        };
        let (name, message, fname) = (
            Literal::string(&r.name),
            Literal::string(r.message.as_deref().unwrap_or("")),
            Literal::string(&file.name),
        );
        let secrets = opt_action(r.secrets);
        rules.push(quote! {
            ResultRule::new(ResultSpec {
                name: #name,
                target: #target,
                secrets: #secrets,
                patterns: &#pats,
                max_bytes: #max,
                message: #message,
                file: #fname,
                line: #line,
                column: #column,
            })
        });
    }
    let n = rules.len();
    statics.push(quote!(static RESULTS: [ResultRule; #n] = [#(#rules),*];));
    // result_rule: the same choice as portcullis_core::results::for_tool.
    let mut seen: Vec<&str> = Vec::new();
    let mut arms = Vec::new();
    let mut globs = Vec::new();
    for (i, r) in policy.results.iter().enumerate() {
        let Target::Tool(t) = &r.target else { continue };
        if seen.contains(&t.as_str()) {
            continue;
        }
        seen.push(t);
        let lit = Literal::string(t);
        arms.push(quote!(#lit => Some(&RESULTS[#i]),));
        if t.contains('*') {
            globs.push(quote! {
                if ops::glob_match(#lit, tool) {
                    return Some(&RESULTS[#i]);
                }
            });
        }
    }
    let fallback = match policy.results.iter().position(|r| r.target == Target::All) {
        Some(i) => quote!(Some(&RESULTS[#i])),
        None => quote!(None),
    };
    let lookup = if arms.is_empty() {
        quote! {
            fn result_rule(&self, _tool: &str) -> Option<&ResultRule> {
                #fallback
            }
        }
    } else {
        quote! {
            fn result_rule(&self, tool: &str) -> Option<&ResultRule> {
                match tool {
                    #(#arms)*
                    _ => {
                        #(#globs)*
                        #fallback
                    }
                }
            }
        }
    };
    // resource_result_rule: the same choice as portcullis_core::results::for_resource.
    let mut seen_uris: Vec<&str> = Vec::new();
    let mut uri_arms = Vec::new();
    let mut uri_tests = Vec::new();
    let mut unnormalised = None;
    for (i, r) in policy.results.iter().enumerate() {
        match &r.target {
            // The first rule of an exact URI wins (a second is unreachable).
            Target::Resource(NamePattern::Exact(u)) if !seen_uris.contains(&u.as_str()) => {
                seen_uris.push(u);
                let lit = Literal::string(u);
                uri_arms.push(quote!(#lit => Some(&RESULTS[#i]),));
            }
            Target::Resource(NamePattern::Exact(_)) => {}
            Target::Resource(p) => {
                if let Some(test) = pattern_test(p, &quote!(uri)) {
                    uri_tests.push(quote! {
                        if #test {
                            return Some(&RESULTS[#i]);
                        }
                    });
                }
            }
            Target::Unnormalised => unnormalised = Some(i),
            _ => {}
        }
    }
    let resource_lookup = match unnormalised {
        None => quote!(),
        Some(u) => {
            let matched = if uri_arms.is_empty() {
                quote! {
                    #(#uri_tests)*
                    #fallback
                }
            } else {
                quote! {
                    match uri {
                        #(#uri_arms)*
                        _ => {
                            #(#uri_tests)*
                            #fallback
                        }
                    }
                }
            };
            quote! {
                fn resource_result_rule(&self, uri: &str) -> Option<&ResultRule> {
                    let mut buf = [0u8; MAX_URI_LEN];
                    let Ok(uri) = normalize_into(uri, &mut buf) else {
                        return Some(&RESULTS[#u]);
                    };
                    #matched
                }
            }
        }
    };
    let methods = quote! {
        fn result_rules(&self) -> &[ResultRule] {
            &RESULTS
        }

        #lookup

        #resource_lookup
    };
    (quote!(#(#statics)*), methods)
}

/// Help for a malformed size.
pub const SIZE_HELP: &str = "write a number of bytes, optionally with a unit: `65536`, `64 KiB`, `1 MiB`, `500 KB` (KiB/MiB are 1024-based, KB/MB 1000-based)";

/// A size such as `65536`, `64 KiB`, `1MiB`, `500 KB`.
pub fn parse_size(text: &str) -> Result<u64, String> {
    let t = text.trim();
    let digits = t.bytes().take_while(u8::is_ascii_digit).count();
    if digits == 0 {
        return Err(format!("invalid size {text:?}"));
    }
    let n: u64 = t[..digits]
        .parse()
        .map_err(|_| format!("size {text:?} is too large"))?;
    let unit = t[digits..].trim();
    let mult: u64 = match unit {
        "" | "B" | "bytes" => 1,
        "KiB" => 1024,
        "MiB" => 1024 * 1024,
        "GiB" => 1024 * 1024 * 1024,
        "KB" | "kB" => 1000,
        "MB" => 1_000_000,
        "GB" => 1_000_000_000,
        other => return Err(format!("unknown size unit {other:?} in {text:?}")),
    };
    let v = n
        .checked_mul(mult)
        .ok_or_else(|| format!("size {text:?} is too large"))?;
    if v == 0 {
        return Err("a maximum size of 0 bytes refuses every answer".into());
    }
    Ok(v)
}

/// A size for people: `64 KiB` when it is a whole number of KiB or MiB.
pub fn format_size(v: u64) -> String {
    const MIB: u64 = 1024 * 1024;
    if v >= MIB && v.is_multiple_of(MIB) {
        format!("{} MiB", v / MIB)
    } else if v >= 1024 && v.is_multiple_of(1024) {
        format!("{} KiB", v / 1024)
    } else {
        format!("{v} bytes")
    }
}

/// An action keyword (`redact`, `deny`).
pub fn parse_action(text: &str) -> Option<Action> {
    match text {
        "redact" => Some(Action::Redact),
        "deny" => Some(Action::Deny),
        _ => None,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn sizes_parse_with_units() {
        assert_eq!(parse_size("65536"), Ok(65536));
        assert_eq!(parse_size("64 KiB"), Ok(65536));
        assert_eq!(parse_size("1MiB"), Ok(1 << 20));
        assert_eq!(parse_size("500 KB"), Ok(500_000));
        assert!(parse_size("64 KiBs").is_err());
        assert!(parse_size("KiB").is_err());
        assert!(parse_size("0").is_err());
        assert!(parse_size("99999999999999999999").is_err());
        assert_eq!(format_size(65536), "64 KiB");
        assert_eq!(format_size(1 << 20), "1 MiB");
        assert_eq!(format_size(1000), "1000 bytes");
    }

    #[test]
    fn the_catch_all_rule_fills_in_the_others() {
        let span = Span::default();
        let mut all = ResultRule::new("results.all".into(), Target::All, span);
        all.secrets = Some(Action::Redact);
        all.max_bytes = Some(10);
        let mut tool = ResultRule::new("results.tools.x".into(), Target::Tool("x".into()), span);
        tool.secrets = Some(Action::Deny);
        let mut rules = vec![all, tool];
        merge(&mut rules);
        assert_eq!(rules[1].secrets, Some(Action::Deny));
        assert_eq!(rules[1].max_bytes, Some(10));
    }
}
