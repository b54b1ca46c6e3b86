//! The edits `portcullis ui` makes to a policy file: one tool's effect
//! (allow, deny, a rate limit, hidden), as text in, text out.
//!
//! Both YAML forms (Intercept v1 and the catalogue form `portcullis init`
//! writes) are edited surgically, line by line: only the tool's own entry
//! under `tools:` and its `hide:` item change; every comment (init's tool
//! descriptions and parameters included), blank line and key order
//! elsewhere stays byte for byte. The policy
//! language is edited by span (the parser's), then the whole file goes
//! through the formatter (`dsl_fmt`), which keeps comments, so the file
//! stays `portcullis fmt --check` clean. Nothing here decides whether the
//! result is valid: the caller compiles it (`validate`) before saving.

use portcullis_compiler::source::FileId;
use portcullis_compiler::syntax::dsl::{self, Item, Pattern};
use portcullis_compiler::syntax::dsl_fmt;

use crate::commands::scan::scaffold::{yaml_key, yaml_quote};

/// What a tool should do after the edit.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Effect {
    /// No rules of its own (wildcard rules still apply).
    Allow,
    /// Denied, unconditionally, with this message (None: the default
    /// `<tool> is denied by policy`).
    Deny(Option<String>),
    /// At most `max` calls per `window` (`minute`, `hour` or `day`; the
    /// catalogue form writes these as a sliding window of 60, 3600 or
    /// 86400 seconds, its only kind).
    /// `max` is passed through as typed, so that a bad value reaches the
    /// compiler and the page shows the compiler's diagnostic.
    Limit {
        /// Calls per window, as typed.
        max: String,
        /// `minute`, `hour` or `day`.
        window: String,
    },
    /// Removed from `tools/list` and refused.
    Hidden,
}

/// The file's language.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Language {
    /// Intercept v1 YAML.
    Yaml,
    /// The catalogue YAML form (`action`, `reason`, `rate_limit: {max, window}`).
    Catalogue,
    /// The policy language.
    Dsl,
}

/// `text` with `tool` set to `effect`, or why it cannot be edited here.
pub fn apply(text: &str, lang: Language, tool: &str, effect: &Effect) -> Result<String, String> {
    if let Effect::Limit { window, .. } = effect
        && !matches!(window.as_str(), "minute" | "hour" | "day")
    {
        return Err(format!("`{window}` is not a window: minute, hour or day"));
    }
    match lang {
        Language::Yaml | Language::Catalogue => yaml(text, lang, tool, effect),
        Language::Dsl => policy(text, tool, effect),
    }
}

// ---------------------------------------------------------------- YAML

/// Leading spaces of a line.
fn indent(line: &str) -> usize {
    line.len() - line.trim_start_matches(' ').len()
}

/// Blank or a comment: no content.
fn is_blank(line: &str) -> bool {
    let t = line.trim();
    t.is_empty() || t.starts_with('#')
}

/// The key of a block-mapping line (`name:`, `"na:me":`, `'x': ...`), unquoted.
fn yaml_line_key(line: &str) -> Option<String> {
    let t = line.trim_start();
    if let Some(rest) = t.strip_prefix('"') {
        let mut out = String::new();
        let mut chars = rest.chars();
        while let Some(c) = chars.next() {
            match c {
                '"' => {
                    return chars.as_str().trim_start().starts_with(':').then_some(out);
                }
                '\\' => match chars.next()? {
                    'n' => out.push('\n'),
                    't' => out.push('\t'),
                    'r' => out.push('\r'),
                    'u' => {
                        let hex: String = chars.by_ref().take(4).collect();
                        out.push(char::from_u32(u32::from_str_radix(&hex, 16).ok()?)?);
                    }
                    c => out.push(c),
                },
                c => out.push(c),
            }
        }
        None
    } else if let Some(rest) = t.strip_prefix('\'') {
        let end = rest.replace("''", "\u{0}").find('\'')?;
        let key = rest.replace("''", "\u{0}")[..end].replace('\u{0}', "'");
        Some(key)
    } else {
        let end = t.find(": ").or_else(|| t.strip_suffix(':').map(str::len))?;
        Some(t[..end].trim_end().to_string())
    }
}

/// Index of the top-level line `key:` (column 0), if any.
fn top_key(lines: &[&str], key: &str) -> Option<usize> {
    lines
        .iter()
        .position(|l| indent(l) == 0 && !is_blank(l) && yaml_line_key(l).as_deref() == Some(key))
}

/// The value on a `key: value` line, comments aside.
fn inline_value(line: &str) -> &str {
    let v = line.split_once(':').map_or("", |(_, v)| v);
    // A `#` after a space starts a comment (names here never hold one).
    v.split(" #").next().unwrap_or(v).trim()
}

/// The last line of the block that starts at `start` (the lines after it
/// indented deeper; trailing blank and comment lines excluded).
fn block_end(lines: &[&str], start: usize, own_indent: usize) -> usize {
    let mut last = start;
    for (j, l) in lines.iter().enumerate().skip(start + 1) {
        if l.trim().is_empty() {
            continue;
        }
        if indent(l) > own_indent {
            last = j;
        } else {
            break;
        }
    }
    last
}

/// The message of a deny: the one typed, or the default.
fn deny_message(tool: &str, reason: &Option<String>) -> String {
    reason
        .as_deref()
        .map(str::trim)
        .filter(|r| !r.is_empty())
        .map_or_else(|| format!("{tool} is denied by policy"), str::to_string)
}

/// `max` as written in YAML: a plain integer as is, anything else quoted
/// (so that no input can change the file's structure; the compiler then
/// reports the bad value).
fn yaml_number(max: &str) -> String {
    let m = max.trim();
    let digits = m.strip_prefix('-').unwrap_or(m);
    if !digits.is_empty() && digits.bytes().all(|b| b.is_ascii_digit()) {
        m.to_string()
    } else {
        yaml_quote(m)
    }
}

fn yaml_rules(lang: Language, tool: &str, effect: &Effect, ind: &str) -> String {
    let i2 = format!("{ind}  ");
    let i3 = format!("{ind}    ");
    if lang == Language::Catalogue {
        // The shapes `portcullis init` writes: a listed tool is allowed
        // even under `default: deny`, so "allow" is an explicit allow rule.
        let i4 = format!("{ind}      ");
        return match effect {
            Effect::Allow | Effect::Hidden => format!("{ind}rules:\n{i2}- action: allow\n"),
            Effect::Deny(reason) => format!(
                "{ind}rules:\n{i2}- action: deny\n{i3}reason: {}\n",
                yaml_quote(&deny_message(tool, reason))
            ),
            Effect::Limit { max, window } => {
                let seconds = match window.as_str() {
                    "hour" => 3600,
                    "day" => 86400,
                    _ => 60,
                };
                format!(
                    "{ind}rules:\n{i2}- action: allow\n{i3}rate_limit:\n{i4}max: {}\n{i4}window: {seconds}\n",
                    yaml_number(max)
                )
            }
        };
    }
    match effect {
        Effect::Allow | Effect::Hidden => format!("{ind}rules: []\n"),
        Effect::Deny(reason) => format!(
            "{ind}rules:\n{i2}- name: {}\n{i3}action: deny\n{i3}on_deny: {}\n",
            yaml_quote(&format!("deny {tool}")),
            yaml_quote(&deny_message(tool, reason))
        ),
        Effect::Limit { max, window } => {
            let value = format!("{}/{window}", max.trim());
            let shown = if max.trim().bytes().all(|b| b.is_ascii_digit()) && !max.trim().is_empty()
            {
                value
            } else {
                yaml_quote(&value)
            };
            format!(
                "{ind}rules:\n{i2}- name: {}\n{i3}rate_limit: {shown}\n",
                yaml_quote(&format!("{tool} rate limit"))
            )
        }
    }
}

fn yaml(text: &str, lang: Language, tool: &str, effect: &Effect) -> Result<String, String> {
    let mut lines: Vec<String> = text.lines().map(str::to_string).collect();
    let view = |lines: &[String]| -> Vec<String> { lines.to_vec() };
    // 1. The hide list.
    yaml_hide(&mut lines, tool, *effect == Effect::Hidden)?;
    // 2. The tool's entry (a hidden tool keeps its entry as it is).
    if *effect != Effect::Hidden {
        let snapshot = view(&lines);
        let refs: Vec<&str> = snapshot.iter().map(String::as_str).collect();
        let tools = match top_key(&refs, "tools") {
            Some(t) => t,
            None => {
                lines.push("tools:".to_string());
                lines.len() - 1
            }
        };
        let snapshot = view(&lines);
        let refs: Vec<&str> = snapshot.iter().map(String::as_str).collect();
        // An empty flow map (`init` writes `tools: {}` for a server without
        // tools) becomes a block, its comment kept.
        if inline_value(refs[tools]) == "{}" {
            lines[tools] = refs[tools].replacen(" {}", "", 1);
            return yaml(&(lines.join("\n") + "\n"), lang, tool, effect).map(|out| {
                if text.ends_with('\n') || text.is_empty() {
                    out
                } else {
                    out.trim_end_matches('\n').to_string()
                }
            });
        }
        if !inline_value(refs[tools]).is_empty() {
            return Err(
                "`tools:` is written on one line (flow style): edit this file by hand".to_string(),
            );
        }
        let end_of_tools = block_end(&refs, tools, 0);
        // The entries' indentation: the first content line under `tools:`.
        let entry_indent = (tools + 1..=end_of_tools)
            .map(|j| refs[j])
            .find(|l| !is_blank(l))
            .map_or(2, indent);
        let ind = " ".repeat(entry_indent + 2);
        let found = (tools + 1..=end_of_tools).find(|&j| {
            let l = refs[j];
            !is_blank(l) && indent(l) == entry_indent && yaml_line_key(l).as_deref() == Some(tool)
        });
        let new_entry = format!(
            "{}{}:\n{}",
            " ".repeat(entry_indent),
            yaml_key(tool),
            yaml_rules(lang, tool, effect, &ind)
        );
        let new_lines: Vec<String> = new_entry.lines().map(str::to_string).collect();
        match found {
            Some(j) => {
                let end = block_end(&refs, j, entry_indent);
                lines.splice(j..=end, new_lines);
            }
            None => {
                // After the last entry, separated by a blank line as scaffolds are.
                let mut insert = vec![String::new()];
                insert.extend(new_lines);
                if end_of_tools == tools {
                    insert.remove(0);
                }
                lines.splice(end_of_tools + 1..end_of_tools + 1, insert);
            }
        }
    }
    let mut out = lines.join("\n");
    if text.ends_with('\n') || text.is_empty() {
        out.push('\n');
    }
    Ok(out)
}

/// Adds `tool` to `hide:` or removes it; true if it was listed.
fn yaml_hide(lines: &mut Vec<String>, tool: &str, hide: bool) -> Result<bool, String> {
    let snapshot = lines.clone();
    let refs: Vec<&str> = snapshot.iter().map(String::as_str).collect();
    let Some(h) = top_key(&refs, "hide") else {
        if hide {
            let at = top_key(&refs, "tools").unwrap_or(lines.len());
            lines.splice(
                at..at,
                [
                    "hide:".to_string(),
                    format!("  - {}", yaml_key(tool)),
                    String::new(),
                ],
            );
        }
        return Ok(false);
    };
    let value = inline_value(refs[h]);
    if !value.is_empty() {
        // Flow style on one line: `hide: [a, "b"]`.
        let inner = value
            .strip_prefix('[')
            .and_then(|v| v.strip_suffix(']'))
            .ok_or_else(|| {
                "`hide:` is neither a list nor a `[...]` on one line: edit this file by hand"
                    .to_string()
            })?;
        let mut items: Vec<String> = inner
            .split(',')
            .map(|i| i.trim())
            .filter(|i| !i.is_empty())
            .map(unquote)
            .collect();
        let was = items.iter().any(|i| i == tool);
        if was && !hide && items.iter().any(|i| i == "*") {
            return Err("every tool is hidden (`hide: [\"*\"]`): edit this file by hand".into());
        }
        if hide && !was {
            items.push(tool.to_string());
        }
        if !hide {
            items.retain(|i| i != tool);
        }
        let shown: Vec<String> = items.iter().map(|i| yaml_key(i)).collect();
        let comment = refs[h]
            .split_once(" #")
            .map(|(_, c)| format!(" #{c}"))
            .unwrap_or_default();
        lines[h] = format!("hide: [{}]{comment}", shown.join(", "));
        return Ok(was);
    }
    let end = block_end(&refs, h, 0);
    let mut was = false;
    let mut last_item = h;
    let mut item_indent = 2;
    let mut remove = Vec::new();
    for (j, line) in refs.iter().enumerate().take(end + 1).skip(h + 1) {
        let t = line.trim_start();
        if let Some(item) = t.strip_prefix("- ") {
            last_item = j;
            item_indent = indent(line);
            let item = item.split(" #").next().unwrap_or(item).trim();
            if unquote(item) == tool {
                was = true;
                remove.push(j);
            }
        }
    }
    if hide && !was {
        lines.insert(
            last_item + 1,
            format!("{}- {}", " ".repeat(item_indent), yaml_key(tool)),
        );
    } else if !hide {
        for j in remove.into_iter().rev() {
            lines.remove(j);
        }
        // An emptied list stays a list.
        let snapshot = lines.clone();
        let refs: Vec<&str> = snapshot.iter().map(String::as_str).collect();
        if block_end(&refs, h, 0) == h {
            lines[h] = "hide: []".to_string();
        }
    }
    Ok(was)
}

/// A YAML scalar as written in a list, unquoted.
fn unquote(s: &str) -> String {
    if s.len() >= 2 && s.starts_with('"') && s.ends_with('"') {
        serde_json::from_str::<String>(s).unwrap_or_else(|_| s[1..s.len() - 1].to_string())
    } else if s.len() >= 2 && s.starts_with('\'') && s.ends_with('\'') {
        s[1..s.len() - 1].replace("''", "'")
    } else {
        s.to_string()
    }
}

// ---------------------------------------------------- the policy language

/// True for a pattern naming exactly `tool` (an unquoted `*` is a glob).
fn is_tool(p: &Pattern, tool: &str) -> bool {
    p.text == tool && (p.quoted || !p.text.contains('*'))
}

fn dsl_rules(tool: &str, effect: &Effect) -> Result<String, String> {
    Ok(match effect {
        Effect::Allow | Effect::Hidden => String::new(),
        Effect::Deny(reason) => {
            format!("  deny {}\n", dsl_fmt::string(&deny_message(tool, reason)))
        }
        Effect::Limit { max, window } => {
            let max = max.trim();
            // Anything else could change the file's structure; a bad number
            // of this shape still reaches the compiler for its diagnostic.
            if max.is_empty()
                || !max
                    .chars()
                    .all(|c| c.is_ascii_alphanumeric() || matches!(c, '.' | '-' | '+' | '_'))
            {
                return Err(format!("`{max}` is not a number of calls"));
            }
            format!("  limit {max} per {window}\n")
        }
    })
}

fn policy(text: &str, tool: &str, effect: &Effect) -> Result<String, String> {
    let parse = |t: &str| {
        dsl::parse(FileId(0), t).map_err(|d| {
            d.first().map_or_else(
                || "the file does not parse".to_string(),
                |d| d.message.clone(),
            )
        })
    };
    let file = parse(text)?;
    if file.server.is_none() {
        return Err("a fragment (no `server` block): edit it by hand".into());
    }
    let mut edits: Vec<(usize, usize, String)> = Vec::new();
    // The hide items.
    let mut was_hidden = false;
    for item in &file.items {
        // Conditional hides (per caller) are edited by hand.
        if let Item::Hide(patterns, None, span) = item
            && patterns.iter().any(|p| is_tool(p, tool))
        {
            was_hidden = true;
            if *effect != Effect::Hidden {
                let rest: Vec<String> = patterns
                    .iter()
                    .filter(|p| !is_tool(p, tool))
                    .map(dsl_fmt::pattern)
                    .collect();
                let new = if rest.is_empty() {
                    String::new()
                } else {
                    format!("hide {}", rest.join(", "))
                };
                // The grammar's span runs on over the comments after the
                // item; they belong to what follows and stay.
                edits.push((span.start, content_end(text, span.start, span.end), new));
            }
        }
    }
    let block = file.items.iter().find_map(|i| match i {
        Item::Tool(b) if b.patterns.iter().any(|p| is_tool(p, tool)) => Some(b),
        _ => None,
    });
    if let Some(b) = block
        && b.patterns.len() > 1
        && *effect != Effect::Hidden
    {
        let others: Vec<String> = b
            .patterns
            .iter()
            .filter(|p| !is_tool(p, tool))
            .map(|p| p.text.clone())
            .collect();
        return Err(format!(
            "`{tool}` shares a block with {}: edit this file by hand (split the block first)",
            others.join(", ")
        ));
    }
    // Where a new item goes: before the server block's closing brace.
    // (the last line that starts with `}`: a `}` in a trailing comment is not it).
    let mut close = None;
    let mut at = 0;
    for line in text.split_inclusive('\n') {
        if line.trim_start().starts_with('}') {
            close = Some(at + line.len() - line.trim_start().len());
        }
        at += line.len();
    }
    let close = close
        .ok_or_else(|| "no closing `}` of the server block on a line of its own".to_string())?;
    if *effect == Effect::Hidden && !was_hidden {
        let at = block.map_or(close, |b| line_start(text, b.span.start));
        edits.push((
            at,
            at,
            format!("  hide {}\n", dsl_fmt::pattern(&plain(tool))),
        ));
    }
    if *effect != Effect::Hidden {
        let new_block = format!(
            "tool {} {{\n{}}}",
            dsl_fmt::pattern(&plain(tool)),
            dsl_rules(tool, effect)?
        );
        match block {
            Some(b) => {
                let head_end = b.patterns.last().map_or(b.span.start, |p| p.span.end);
                let open = text[head_end..]
                    .find('{')
                    .map(|i| head_end + i)
                    .ok_or("a tool block without `{`")?;
                let after = b.rules.last().map_or(open + 1, |r| r.span().end);
                let end = closing_brace(text, after).ok_or("a tool block without `}`")?;
                edits.push((b.span.start, end + 1, new_block));
            }
            None => edits.push((close, close, format!("\n  {new_block}\n"))),
        }
    }
    edits.sort_by_key(|e| std::cmp::Reverse(e.0));
    let mut out = text.to_string();
    for (start, end, new) in edits {
        out.replace_range(start..end, &new);
    }
    // The canonical layout (comments kept); a result that does not parse is
    // returned as is, for the compiler to report.
    Ok(match dsl::parse(FileId(0), &out) {
        Ok(f) => dsl_fmt::format(&f, &out),
        Err(_) => out,
    })
}

fn plain(tool: &str) -> Pattern {
    Pattern {
        text: tool.to_string(),
        quoted: false,
        span: Default::default(),
    }
}

fn line_start(text: &str, at: usize) -> usize {
    text[..at].rfind('\n').map_or(0, |i| i + 1)
}

/// The end of the code in `start..end`: trailing blanks and `//` comments excluded.
fn content_end(text: &str, start: usize, end: usize) -> usize {
    let b = text.as_bytes();
    let (mut i, mut last, mut in_string) = (start, start, false);
    while i < end.min(b.len()) {
        match b[i] {
            b'\\' if in_string => i += 1,
            b'"' => in_string = !in_string,
            b'/' if !in_string && b.get(i + 1) == Some(&b'/') => {
                i = text[i..].find('\n').map_or(b.len(), |n| i + n);
                continue;
            }
            _ => {}
        }
        if !b[i].is_ascii_whitespace() {
            last = i + 1;
        }
        i += 1;
    }
    last
}

/// The first `}` at or after `from`, skipping blanks and `//` comments.
fn closing_brace(text: &str, from: usize) -> Option<usize> {
    let b = text.as_bytes();
    let mut i = from;
    while i < b.len() {
        match b[i] {
            b'}' => return Some(i),
            b'/' if b.get(i + 1) == Some(&b'/') => {
                i = text[i..].find('\n').map_or(b.len(), |n| i + n);
            }
            c if c.is_ascii_whitespace() => i += 1,
            _ => return None,
        }
    }
    None
}

// ------------------------------------------------------------------ diff

/// One line of a diff: `' '`, `'-'` or `'+'`, and the text.
pub type DiffLine = (char, String);

/// The lines that differ, with up to three lines of context around each
/// change (`None` marks skipped unchanged lines).
pub fn diff(old: &str, new: &str) -> Vec<Option<DiffLine>> {
    let a: Vec<&str> = old.lines().collect();
    let b: Vec<&str> = new.lines().collect();
    let prefix = a.iter().zip(&b).take_while(|(x, y)| x == y).count();
    let suffix = a[prefix..]
        .iter()
        .rev()
        .zip(b[prefix..].iter().rev())
        .take_while(|(x, y)| x == y)
        .count();
    let (ma, mb) = (&a[prefix..a.len() - suffix], &b[prefix..b.len() - suffix]);
    // LCS over the changed middle (small for one tool's edit).
    let (n, m) = (ma.len(), mb.len());
    let mut all: Vec<DiffLine> = a[..prefix].iter().map(|l| (' ', l.to_string())).collect();
    if n * m <= 4_000_000 {
        let mut t = vec![0u32; (n + 1) * (m + 1)];
        for i in (0..n).rev() {
            for j in (0..m).rev() {
                t[i * (m + 1) + j] = if ma[i] == mb[j] {
                    t[(i + 1) * (m + 1) + j + 1] + 1
                } else {
                    t[(i + 1) * (m + 1) + j].max(t[i * (m + 1) + j + 1])
                };
            }
        }
        let (mut i, mut j) = (0, 0);
        while i < n || j < m {
            if i < n && j < m && ma[i] == mb[j] {
                all.push((' ', ma[i].to_string()));
                i += 1;
                j += 1;
            } else if i < n && (j == m || t[(i + 1) * (m + 1) + j] >= t[i * (m + 1) + j + 1]) {
                all.push(('-', ma[i].to_string()));
                i += 1;
            } else {
                all.push(('+', mb[j].to_string()));
                j += 1;
            }
        }
    } else {
        all.extend(ma.iter().map(|l| ('-', l.to_string())));
        all.extend(mb.iter().map(|l| ('+', l.to_string())));
    }
    all.extend(a[a.len() - suffix..].iter().map(|l| (' ', l.to_string())));
    let changed: Vec<usize> = (0..all.len()).filter(|&k| all[k].0 != ' ').collect();
    let near = |k: usize| changed.iter().any(|&c| c.abs_diff(k) <= 3);
    let mut out = Vec::new();
    for (k, line) in all.into_iter().enumerate() {
        if line.0 != ' ' || near(k) {
            out.push(Some(line));
        } else if out.last().is_some_and(Option::is_some) {
            out.push(None);
        }
    }
    if out.last().is_some_and(Option::is_none) {
        out.pop();
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    const YAML: &str = r#"# A policy.
version: "1"
default: allow
hide:
  - get-env

tools:
  # Echoes.
  echo:
    rules: []   # nothing yet

  # Adds.
  get-sum:
    rules:
      - name: "small"
        conditions:
          - path: args.a
            op: lte
            value: 10
"#;

    #[test]
    fn yaml_deny_replaces_only_the_entry() {
        let out = apply(YAML, Language::Yaml, "echo", &Effect::Deny(None)).unwrap();
        assert_eq!(
            out,
            YAML.replace(
                "  echo:\n    rules: []   # nothing yet\n",
                "  echo:\n    rules:\n      - name: \"deny echo\"\n        action: deny\n        on_deny: \"echo is denied by policy\"\n"
            )
        );
    }

    #[test]
    fn yaml_a_new_tool_goes_after_the_last_entry() {
        let out = apply(
            YAML,
            Language::Yaml,
            "add",
            &Effect::Limit {
                max: "5".into(),
                window: "hour".into(),
            },
        )
        .unwrap();
        assert!(out.starts_with(YAML), "{out}");
        assert_eq!(
            &out[YAML.len()..],
            "\n  add:\n    rules:\n      - name: \"add rate limit\"\n        rate_limit: 5/hour\n"
        );
    }

    #[test]
    fn yaml_hide_and_unhide() {
        let hidden = apply(YAML, Language::Yaml, "echo", &Effect::Hidden).unwrap();
        assert_eq!(
            hidden,
            YAML.replace("  - get-env\n", "  - get-env\n  - echo\n")
        );
        let shown = apply(YAML, Language::Yaml, "get-env", &Effect::Allow).unwrap();
        assert!(shown.contains("hide: []\n"), "{shown}");
        assert!(shown.ends_with("\n  get-env:\n    rules: []\n"), "{shown}");
        let flow = "hide: [a, \"b\"]\ntools:\n  a:\n    rules: []\n";
        assert_eq!(
            apply(flow, Language::Yaml, "a", &Effect::Allow).unwrap(),
            "hide: [b]\ntools:\n  a:\n    rules: []\n"
        );
    }

    #[test]
    fn yaml_a_bad_limit_is_quoted_for_the_compiler() {
        let out = apply(
            YAML,
            Language::Yaml,
            "echo",
            &Effect::Limit {
                max: "x: y".into(),
                window: "minute".into(),
            },
        )
        .unwrap();
        assert!(out.contains("rate_limit: \"x: y/minute\"\n"), "{out}");
    }

    /// What `portcullis init` writes (abridged): the catalogue form, each
    /// tool's description and parameters as comments above its entry.
    const CATALOGUE: &str = r#"# Policy for the MCP server `everything` 2.0.0: 3 tools.
# Written by `portcullis init` on 2026-12-04 from
#   .mcp.json.

description: "Policy for everything (portcullis init)"
default: deny
tools:

  # Read (1)

  # Echoes back the input.
  # Parameters: message (string, required)
  echo:
    rules:
      - action: allow

  # Write (1)

  # Sets a value.
  # Parameters: key (string, required), value (string)
  set-value:
    rules:
      - action: allow
        rate_limit:
          max: 30
          window: 60

  # Destructive (1)

  # Deletes everything.
  # Parameters: none
  delete-all:
    rules:
      - action: deny
        reason: "delete-all is destructive: allow it by hand if you must"
"#;

    #[test]
    fn catalogue_allow_to_deny_changes_only_the_entry() {
        let out = apply(CATALOGUE, Language::Catalogue, "echo", &Effect::Deny(None)).unwrap();
        assert_eq!(
            out,
            CATALOGUE.replace(
                "  echo:\n    rules:\n      - action: allow\n",
                "  echo:\n    rules:\n      - action: deny\n        reason: \"echo is denied by policy\"\n"
            )
        );
        let out = apply(
            CATALOGUE,
            Language::Catalogue,
            "echo",
            &Effect::Deny(Some("Ask \"ops\" first".into())),
        )
        .unwrap();
        assert!(
            out.contains(
                "      - action: deny\n        reason: \"Ask \\\"ops\\\" first\"\n\n  # Write (1)\n"
            ),
            "{out}"
        );
    }

    #[test]
    fn catalogue_limit_allow_and_hidden() {
        let limit = |max: &str, window: &str| Effect::Limit {
            max: max.into(),
            window: window.into(),
        };
        // deny -> limit: the catalogue's rate_limit, the window in seconds.
        let out = apply(
            CATALOGUE,
            Language::Catalogue,
            "delete-all",
            &limit("5", "hour"),
        )
        .unwrap();
        assert_eq!(
            out,
            CATALOGUE.replace(
                "      - action: deny\n        reason: \"delete-all is destructive: allow it by hand if you must\"\n",
                "      - action: allow\n        rate_limit:\n          max: 5\n          window: 3600\n"
            )
        );
        // limit -> allow: the comments above and below stay.
        let out = apply(CATALOGUE, Language::Catalogue, "set-value", &Effect::Allow).unwrap();
        assert_eq!(
            out,
            CATALOGUE.replace(
                "      - action: allow\n        rate_limit:\n          max: 30\n          window: 60\n",
                "      - action: allow\n"
            )
        );
        // A bad max is quoted: it reaches the compiler, not the structure.
        let out = apply(
            CATALOGUE,
            Language::Catalogue,
            "echo",
            &limit("1\n}", "day"),
        )
        .unwrap();
        assert!(
            out.contains("          max: \"1\\n}\"\n          window: 86400\n"),
            "{out}"
        );
        // hidden: the catalogue's top-level `hide`, the entry kept.
        let out = apply(CATALOGUE, Language::Catalogue, "echo", &Effect::Hidden).unwrap();
        assert_eq!(
            out,
            CATALOGUE.replace(
                "default: deny\ntools:\n",
                "default: deny\nhide:\n  - echo\n\ntools:\n"
            )
        );
        let back = apply(&out, Language::Catalogue, "echo", &Effect::Allow).unwrap();
        assert_eq!(
            back,
            CATALOGUE.replace(
                "default: deny\ntools:\n",
                "default: deny\nhide: []\n\ntools:\n"
            )
        );
    }

    #[test]
    fn catalogue_an_empty_flow_tools_map_becomes_a_block() {
        let text = "# none yet\ndefault: deny\ntools: {}  # init found no tools\n";
        assert_eq!(
            apply(text, Language::Catalogue, "echo", &Effect::Allow).unwrap(),
            "# none yet\ndefault: deny\ntools:  # init found no tools\n  echo:\n    rules:\n      - action: allow\n"
        );
        assert!(apply("tools: {a: {}}\n", Language::Catalogue, "a", &Effect::Allow).is_err());
    }

    #[test]
    fn catalogue_edits_compile_as_catalogue() {
        use portcullis_compiler::ir::Dialect;
        for effect in [
            Effect::Allow,
            Effect::Deny(Some("no".into())),
            Effect::Hidden,
            Effect::Limit {
                max: "7".into(),
                window: "day".into(),
            },
        ] {
            let text = apply(CATALOGUE, Language::Catalogue, "echo", &effect).unwrap();
            let out = portcullis_compiler::compile(&[portcullis_compiler::Input {
                server: "everything".into(),
                path: "everything.yaml".into(),
                text: text.clone(),
            }]);
            assert!(
                !out.diagnostics.has_errors(),
                "{effect:?}: {}\n{text}",
                out.render()
            );
            assert_eq!(out.policies[0].dialect, Dialect::Catalogue, "{effect:?}");
        }
        // A zero max is the compiler's to refuse, with its diagnostic.
        let text = apply(
            CATALOGUE,
            Language::Catalogue,
            "echo",
            &Effect::Limit {
                max: "0".into(),
                window: "minute".into(),
            },
        )
        .unwrap();
        let out = portcullis_compiler::compile(&[portcullis_compiler::Input {
            server: "everything".into(),
            path: "everything.yaml".into(),
            text,
        }]);
        assert!(
            out.render()
                .contains("rate_limit max must be a whole number"),
            "{}",
            out.render()
        );
    }

    const DSL: &str = "// Top.\nserver s {\n  default allow\n  hide get-env\n\n  // Echoes.\n  tool echo {\n    limit 3 per minute\n  }\n}\n";

    #[test]
    fn dsl_edits_keep_comments_and_format() {
        let out = apply(DSL, Language::Dsl, "echo", &Effect::Deny(None)).unwrap();
        assert_eq!(
            out,
            DSL.replace(
                "    limit 3 per minute\n",
                "    deny \"echo is denied by policy\"\n"
            )
        );
        let out = apply(
            DSL,
            Language::Dsl,
            "get-env",
            &Effect::Limit {
                max: "7".into(),
                window: "day".into(),
            },
        )
        .unwrap();
        assert!(!out.contains("hide"), "{out}");
        assert!(
            out.contains("  tool get-env {\n    limit 7 per day\n  }\n}\n"),
            "{out}"
        );
        assert!(out.contains("// Echoes."), "{out}");
        assert!(
            apply(
                DSL,
                Language::Dsl,
                "echo",
                &Effect::Limit {
                    max: "1 }".into(),
                    window: "day".into()
                }
            )
            .is_err()
        );
    }

    #[test]
    fn dsl_a_new_tool_goes_inside_the_server_block() {
        let text = format!("{DSL}// trailing note }}\n");
        let out = apply(&text, Language::Dsl, "add", &Effect::Deny(None)).unwrap();
        assert!(
            out.contains(
                "  tool add {\n    deny \"add is denied by policy\"\n  }\n}\n// trailing note }\n"
            ),
            "{out}"
        );
    }

    #[test]
    fn a_diff_shows_changes_with_context() {
        let d = diff("a\nb\nc\nd\ne\nf\ng\nh\ni\n", "a\nb\nc\nd\nE\nf\ng\nh\ni\n");
        let shown: Vec<String> = d
            .iter()
            .map(|l| l.as_ref().map_or("...".into(), |(k, t)| format!("{k}{t}")))
            .collect();
        assert_eq!(shown, [" b", " c", " d", "-e", "+E", " f", " g", " h"]);
    }
}
