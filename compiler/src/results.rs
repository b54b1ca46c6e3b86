//! Result rules in the IR: what a policy does to the answers coming back from
//! the server (`results:` in the YAML dialects, `results { ... }` in the
//! policy language; docs/results.md). Every dialect lowers to
//! [`ResultRule`]s; the proxy applies them with `portcullis_core::results`.

use crate::ir::Loc;
use crate::source::Span;

pub use portcullis_core::secrets::Action;

/// What a result rule applies to.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Target {
    /// Every answer.
    All,
    /// Answers of tools whose names match the glob.
    Tool(String),
    /// `resources/read` answers for URIs matching the glob.
    Resource(String),
}

impl Target {
    /// How `explain` and messages name it.
    pub fn describe(&self) -> String {
        match self {
            Target::All => "every answer".into(),
            Target::Tool(t) => format!("tool {t}"),
            Target::Resource(r) => format!("resource {r}"),
        }
    }
}

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
pub fn merge(rules: &mut [ResultRule]) {
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
                    Target::Resource(u) => T::Resource(leak(u)),
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
/// `Policy` methods (`result_rules`, and `result_rule` as a `match` on the
/// tool name: exact names, then globs in order, then the catch-all rule).
/// Both empty for a policy without result rules (the trait's defaults).
pub fn codegen(
    policy: &crate::ir::ServerPolicy,
    sources: &crate::source::SourceMap,
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
            Target::Resource(u) => {
                let u = Literal::string(u);
                quote!(ResultTarget::Resource(#u))
            }
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
    let methods = quote! {
        fn result_rules(&self) -> &[ResultRule] {
            &RESULTS
        }

        #lookup
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
