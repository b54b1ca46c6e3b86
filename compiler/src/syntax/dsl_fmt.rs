//! The canonical printer of the policy language: `portcullis fmt`, and the
//! back end of `portcullis translate`.
//!
//! Layout: two-space indentation, one statement or rule per line, a blank
//! line between tool blocks, names quoted only when they must be, the
//! fewest parentheses that keep the meaning, windows in their largest exact
//! unit. Comments are kept: each goes before the statement or rule that
//! follows it, or stays at the end of its line.

use crate::ir::CmpOp;
use crate::syntax::dsl::{
    Amount, By, Expr, File, Item, Limit, Literal, Operand, Path, Pattern, PolicyRule, SpendRule,
    Test, TestKind, WindowSpec,
};

/// A comment in the source: its byte range and text (with `//` or `/* */`).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Comment {
    /// First byte.
    pub start: usize,
    /// One past the last byte.
    pub end: usize,
    /// The text.
    pub text: String,
}

/// Every comment of a policy-language text (strings and regex literals skipped).
pub fn comments(text: &str) -> Vec<Comment> {
    let b = text.as_bytes();
    let mut out = Vec::new();
    let mut i = 0;
    while i < b.len() {
        match b[i] {
            b'"' => {
                i += 1;
                while i < b.len() && b[i] != b'"' && b[i] != b'\n' {
                    i += if b[i] == b'\\' { 2 } else { 1 };
                }
                i += 1;
            }
            b'/' if b.get(i + 1) == Some(&b'/') => {
                let end = text[i..].find('\n').map_or(b.len(), |e| i + e);
                out.push(Comment {
                    start: i,
                    end,
                    text: text[i..end].trim_end().to_string(),
                });
                i = end;
            }
            b'/' if b.get(i + 1) == Some(&b'*') => {
                let end = text[i + 2..].find("*/").map_or(b.len(), |e| i + 2 + e + 2);
                out.push(Comment {
                    start: i,
                    end,
                    text: text[i..end].to_string(),
                });
                i = end;
            }
            b'/' => {
                // A regex literal: skip to its closing slash.
                i += 1;
                while i < b.len() && b[i] != b'/' && b[i] != b'\n' {
                    i += if b[i] == b'\\' { 2 } else { 1 };
                }
                i += 1;
            }
            _ => i += 1,
        }
    }
    out
}

/// Formats a parsed file; `source` is the text it was parsed from (for comments),
/// or "" when there is none (translation).
pub fn format(file: &File, source: &str) -> String {
    let mut p = Printer {
        out: String::new(),
        comments: comments(source),
        next: 0,
        source,
    };
    p.file(file);
    p.out
}

struct Printer<'s> {
    out: String,
    comments: Vec<Comment>,
    next: usize,
    source: &'s str,
}

impl Printer<'_> {
    /// Keeps one blank line where the source had one or more before `pos`
    /// (paragraphs of comments and statements stay apart).
    fn blank_line_before(&mut self, pos: usize) {
        let before = &self.source[..pos.min(self.source.len())];
        let gap_start = before.trim_end().len();
        if before[gap_start..].matches('\n').count() >= 2
            && !self.out.is_empty()
            && !self.out.ends_with("\n\n")
            && !self.out.ends_with("{\n")
        {
            self.out.push('\n');
        }
    }

    /// Writes the comments that start before `pos`, each on its own line.
    fn comments_before(&mut self, pos: usize, indent: &str) {
        while self.next < self.comments.len() && self.comments[self.next].start < pos {
            let start = self.comments[self.next].start;
            self.blank_line_before(start);
            let c = &self.comments[self.next];
            for line in c.text.lines() {
                self.out.push_str(indent);
                self.out.push_str(line.trim_start());
                self.out.push('\n');
            }
            self.next += 1;
        }
    }

    /// The end of a span's content: spans from the grammar can include the
    /// whitespace and comments that follow them.
    fn content_end(&self, start: usize, end: usize) -> usize {
        let b = self.source.as_bytes();
        let mut e = end.min(b.len());
        while e > start {
            if b[e - 1].is_ascii_whitespace() {
                e -= 1;
            } else if let Some(c) = self.comments.iter().find(|c| c.start < e && e <= c.end) {
                e = c.start;
            } else {
                break;
            }
        }
        e
    }

    /// Position of the last `}` outside comments (a server block's end).
    fn last_brace(&self) -> usize {
        self.source
            .rmatch_indices('}')
            .map(|(i, _)| i)
            .find(|&i| !self.comments.iter().any(|c| c.start <= i && i < c.end))
            .unwrap_or(usize::MAX)
    }

    /// Appends the comment that starts on the same line after `end`, if any.
    fn trailing(&mut self, end: usize) {
        if self.next < self.comments.len() {
            let c = &self.comments[self.next];
            let between = self.source.get(end..c.start).unwrap_or("\n");
            // Only whitespace between the end and the comment: it belongs to this line's last token.
            if c.start >= end
                && between.trim().is_empty()
                && !between.contains('\n')
                && !c.text.contains('\n')
            {
                self.out.push_str("  ");
                self.out.push_str(&c.text);
                self.next += 1;
            }
        }
        self.out.push('\n');
    }

    fn file(&mut self, f: &File) {
        match &f.server {
            Some(head) => {
                self.comments_before(head.name.span.start, "");
                self.out.push_str("server ");
                self.out.push_str(&name(&head.name.value));
                if let Some(d) = &head.description {
                    self.out.push(' ');
                    self.out.push_str(&string(&d.value));
                }
                self.out.push_str(" {");
                self.trailing(
                    head.description
                        .as_ref()
                        .map_or(head.name.span.end, |d| d.span.end),
                );
                self.items(&f.items, "  ");
                let close = self.last_brace();
                self.comments_before(close, "  ");
                self.out.push('}');
                self.trailing(close.saturating_add(1));
                self.comments_before(usize::MAX, "");
            }
            None => {
                self.items(&f.items, "");
                self.comments_before(usize::MAX, "");
            }
        }
    }

    fn items(&mut self, items: &[Item], indent: &str) {
        let mut previous_was_block = false;
        for (i, item) in items.iter().enumerate() {
            let is_block = matches!(item, Item::Tool(_) | Item::Results(_));
            if i > 0 && (is_block || previous_was_block) {
                self.out.push('\n');
            }
            previous_was_block = is_block;
            match item {
                Item::Default(p) => {
                    self.comments_before(p.span.start, indent);
                    self.blank_line_before(p.span.start);
                    self.out.push_str(indent);
                    self.out.push_str(match p.value {
                        crate::syntax::dsl::Posture::Allow => "default allow",
                        crate::syntax::dsl::Posture::Deny => "default deny",
                    });
                    self.trailing(p.span.end);
                }
                Item::Hide(patterns, condition, span) => {
                    self.comments_before(span.start, indent);
                    self.blank_line_before(span.start);
                    self.out.push_str(indent);
                    self.out.push_str("hide ");
                    self.out
                        .push_str(&patterns.iter().map(pattern).collect::<Vec<_>>().join(", "));
                    match condition.as_deref() {
                        None => {}
                        Some((false, e)) => self.out.push_str(&format!(" when {}", expr(e, 0))),
                        Some((true, e)) => self.out.push_str(&format!(" unless {}", expr(e, 0))),
                    }
                    self.trailing(span.end);
                }
                Item::Include(s) => {
                    self.comments_before(s.span.start, indent);
                    self.blank_line_before(s.span.start);
                    self.out.push_str(indent);
                    self.out.push_str("include ");
                    self.out.push_str(&string(&s.value));
                    self.trailing(s.span.end);
                }
                Item::Results(block) => {
                    self.comments_before(block.span.start, indent);
                    self.out.push_str(indent);
                    self.out.push_str("results");
                    match &block.target {
                        crate::syntax::dsl::ResultsFor::All => {}
                        crate::syntax::dsl::ResultsFor::Tools(pats) => {
                            self.out.push_str(" for ");
                            self.out
                                .push_str(&pats.iter().map(pattern).collect::<Vec<_>>().join(", "));
                        }
                        crate::syntax::dsl::ResultsFor::Resources(pats) => {
                            self.out.push_str(" for resource ");
                            self.out.push_str(&uri_patterns(pats));
                        }
                    }
                    let close = self.block_close(block.span.end);
                    self.out.push_str(" {");
                    self.trailing(block.span.end);
                    let inner = format!("{indent}  ");
                    for s in &block.stmts {
                        self.comments_before(s.span().start, &inner);
                        self.blank_line_before(s.span().start);
                        self.out.push_str(&inner);
                        self.out.push_str(&result_stmt(s));
                        let end = self.content_end(s.span().start, s.span().end);
                        self.trailing(end);
                    }
                    self.comments_before(close, &inner);
                    self.out.push_str(indent);
                    self.out.push_str("}\n");
                }
                Item::Surface(sb) if sb.default.is_some() => {
                    self.comments_before(sb.span.start, indent);
                    self.blank_line_before(sb.span.start);
                    self.out.push_str(indent);
                    self.out.push_str(&format!(
                        "default {} {}",
                        sb.surface.name(),
                        if sb.default == Some(crate::syntax::dsl::Posture::Deny) {
                            "deny"
                        } else {
                            "allow"
                        }
                    ));
                    self.trailing(sb.span.end);
                }
                Item::Surface(sb) if sb.hide => {
                    self.comments_before(sb.span.start, indent);
                    self.blank_line_before(sb.span.start);
                    self.out.push_str(indent);
                    self.out.push_str("hide ");
                    self.out.push_str(sb.surface.name());
                    self.out.push(' ');
                    self.out.push_str(&surface_patterns(sb));
                    match sb.condition.as_deref() {
                        None => {}
                        Some((false, e)) => self.out.push_str(&format!(" when {}", expr(e, 0))),
                        Some((true, e)) => self.out.push_str(&format!(" unless {}", expr(e, 0))),
                    }
                    self.trailing(sb.span.end);
                }
                Item::Tool(_) | Item::Surface(_) => {
                    let (block, head) = match item {
                        Item::Tool(block) => (
                            block.clone(),
                            "tool ".to_string()
                                + &block
                                    .patterns
                                    .iter()
                                    .map(pattern)
                                    .collect::<Vec<_>>()
                                    .join(", "),
                        ),
                        Item::Surface(sb) => (
                            crate::syntax::dsl::ToolBlock {
                                patterns: Vec::new(),
                                rules: sb.rules.clone(),
                                span: sb.span,
                            },
                            format!("{} {}", sb.surface.name(), surface_patterns(sb)),
                        ),
                        _ => unreachable!("a block"),
                    };
                    let block = &block;
                    self.comments_before(block.span.start, indent);
                    self.out.push_str(indent);
                    self.out.push_str(&head);
                    let close = self.block_close(block.span.end);
                    let has_inner_comments = self
                        .comments
                        .get(self.next)
                        .is_some_and(|c| c.start < close && c.start >= block.span.end);
                    if block.rules.is_empty() && !has_inner_comments {
                        self.out.push_str(" {}");
                        self.trailing(block.span.end);
                        continue;
                    }
                    self.out.push_str(" {");
                    self.trailing(block.span.end);
                    let inner = format!("{indent}  ");
                    for r in &block.rules {
                        self.comments_before(r.span().start, &inner);
                        self.blank_line_before(r.span().start);
                        self.out.push_str(&inner);
                        self.out.push_str(&wrap(&rule(r), &inner));
                        let end = self.content_end(r.span().start, r.span().end);
                        self.trailing(end);
                    }
                    // Comments after the last rule, before the block closes.
                    self.comments_before(close, &inner);
                    self.out.push_str(indent);
                    self.out.push_str("}\n");
                }
            }
        }
    }

    /// Position of the `}` closing the block whose header ends at `from`
    /// (braces in strings, regexes and comments do not count).
    fn block_close(&self, from: usize) -> usize {
        let b = self.source.as_bytes();
        let mut depth = 0usize;
        let mut i = from;
        while i < b.len() {
            if let Some(c) = self.comments.iter().find(|c| c.start == i) {
                i = c.end;
                continue;
            }
            match b[i] {
                b'"' => {
                    i += 1;
                    while i < b.len() && b[i] != b'"' {
                        i += if b[i] == b'\\' { 2 } else { 1 };
                    }
                }
                b'{' => depth += 1,
                b'}' => {
                    depth = depth.saturating_sub(1);
                    if depth == 0 {
                        return i;
                    }
                }
                _ => {}
            }
            i += 1;
        }
        usize::MAX
    }
}

/// Longest rule line before `allow ... else "..."` moves its `else` down.
const LINE_WIDTH: usize = 100;

/// Puts the `else` of a long `allow` rule on a continuation line.
fn wrap(rule: &str, indent: &str) -> String {
    if indent.len() + rule.len() <= LINE_WIDTH || !rule.starts_with("allow when ") {
        return rule.to_string();
    }
    match rule.rfind(" else \"") {
        Some(i) => format!("{}\n{indent}  {}", &rule[..i], &rule[i + 1..]),
        None => rule.to_string(),
    }
}

/// A name, quoted when it must be.
fn name(s: &str) -> String {
    if !s.is_empty()
        && s.bytes()
            .all(|c| c.is_ascii_alphanumeric() || matches!(c, b'_' | b'-' | b'.'))
    {
        s.to_string()
    } else {
        string(s)
    }
}

/// The patterns of a resource or prompt block as written: regexes as
/// `/.../`, URIs (which hold `:` and `/`) quoted.
fn surface_patterns(sb: &crate::syntax::dsl::SurfaceBlock) -> String {
    uri_patterns(&sb.patterns)
}

/// Resource or prompt patterns as written (see [`surface_patterns`]).
fn uri_patterns(patterns: &[(Pattern, bool)]) -> String {
    patterns
        .iter()
        .map(|(p, regex)| {
            if *regex {
                format!("/{}/", p.text.replace('/', "\\/"))
            } else {
                pattern(p)
            }
        })
        .collect::<Vec<_>>()
        .join(", ")
}

/// A tool pattern, quoted when it must be.
pub fn pattern(p: &Pattern) -> String {
    let s = &p.text;
    if !s.is_empty()
        && s.bytes()
            .all(|c| c.is_ascii_alphanumeric() || matches!(c, b'_' | b'-' | b'.' | b'*'))
        && !is_keyword(s)
    {
        s.to_string()
    } else {
        string(s)
    }
}

fn is_keyword(s: &str) -> bool {
    matches!(
        s,
        "tool"
            | "hide"
            | "default"
            | "include"
            | "server"
            | "deny"
            | "allow"
            | "limit"
            | "resource"
            | "prompt"
    )
}

/// One statement of a `results` block.
fn result_stmt(s: &crate::syntax::dsl::ResultStmt) -> String {
    use crate::syntax::dsl::ResultStmt;
    match s {
        ResultStmt::Secrets {
            action, message, ..
        } => match message {
            Some(m) => format!("{} secrets {}", action.name(), string(&m.value)),
            None => format!("{} secrets", action.name()),
        },
        ResultStmt::Pattern {
            action,
            regex,
            name,
            ..
        } => {
            let (body, flags) = &regex.value;
            format!(
                "{} /{}/{} as {}",
                action.name(),
                body.replace('/', "\\/"),
                flags,
                name.value
            )
        }
        ResultStmt::Max(m) => format!("max {}", m.value),
    }
}

/// A string literal with the escapes the grammar reads back.
pub fn string(s: &str) -> String {
    let mut out = String::with_capacity(s.len() + 2);
    out.push('"');
    for c in s.chars() {
        match c {
            '"' => out.push_str("\\\""),
            '\\' => out.push_str("\\\\"),
            '\n' => out.push_str("\\n"),
            '\r' => out.push_str("\\r"),
            '\t' => out.push_str("\\t"),
            c if (c as u32) < 0x20 || c == '\u{7f}' => {
                out.push_str(&format!("\\u{:04x}", c as u32))
            }
            c => out.push(c),
        }
    }
    out.push('"');
    out
}

fn path(p: &Path) -> String {
    let mut out = String::from(if p.principal { "principal" } else { "args" });
    for seg in &p.segments {
        out.push('.');
        if !seg.is_empty()
            && seg
                .bytes()
                .all(|c| c.is_ascii_alphanumeric() || matches!(c, b'_' | b'-'))
        {
            out.push_str(seg);
        } else {
            out.push_str(&string(seg));
        }
    }
    out
}

fn window(w: WindowSpec) -> String {
    match w {
        WindowSpec::Calendar(c) => c.name().to_string(),
        WindowSpec::Sliding(s) if s % 86_400 == 0 => format!("{}d", s / 86_400),
        WindowSpec::Sliding(s) if s % 3600 == 0 => format!("{}h", s / 3600),
        WindowSpec::Sliding(s) if s % 60 == 0 => format!("{}m", s / 60),
        WindowSpec::Sliding(s) => format!("{s}s"),
    }
}

/// One rule on one line.
pub fn rule(r: &PolicyRule) -> String {
    match r {
        PolicyRule::Deny {
            message, condition, ..
        } => match condition {
            None => format!("deny {}", string(&message.value)),
            Some((false, e)) => format!("deny {} when {}", string(&message.value), expr(e, 0)),
            Some((true, e)) => format!("deny {} unless {}", string(&message.value), expr(e, 0)),
        },
        PolicyRule::Allow {
            condition, message, ..
        } => {
            format!(
                "allow when {} else {}",
                expr(condition, 0),
                string(&message.value)
            )
        }
        PolicyRule::Approve(a) => {
            let mut out = format!("approve {}", string(&a.message.value));
            if let Some(e) = &a.condition {
                out.push_str(" when ");
                out.push_str(&expr(e, 0));
            }
            if let Some(v) = &a.via {
                out.push_str(" via ");
                out.push_str(&v.value.join(" | "));
            }
            if let Some(t) = &a.timeout {
                out.push_str(" timeout ");
                out.push_str(&t.value);
            }
            out
        }
        PolicyRule::Limit(l) => limit(l),
        PolicyRule::Spend(sp) => spend(sp),
        PolicyRule::Once(o) => {
            let mut out = format!("once per {}", o.window.value);
            if !o.by.is_empty() {
                out.push_str(" by ");
                out.push_str(&o.by.iter().map(path).collect::<Vec<_>>().join(", "));
            }
            if let Some(m) = &o.mode {
                out.push(' ');
                out.push_str(&m.value);
            }
            if let Some(m) = &o.message {
                out.push_str(" -> ");
                out.push_str(&string(&m.value));
            }
            out
        }
    }
}

/// What an unnamed spend budget adds up (`spend usd per day by session`):
/// its counter's name, so changing the amount or message keeps the total.
pub fn spend_identity(sp: &SpendRule) -> String {
    let mut out = format!("spend {}", sp.currency.value);
    if let Some(w) = &sp.window {
        out.push_str(" per ");
        out.push_str(&window(w.value));
    }
    by(&mut out, sp.by.as_ref());
    out
}

fn by(out: &mut String, b: Option<&By>) {
    match b {
        None => {}
        Some(By::Session) => out.push_str(" by session"),
        Some(By::Path(p)) => {
            out.push_str(" by ");
            out.push_str(&path(p));
        }
    }
}

fn spend(sp: &SpendRule) -> String {
    let mut out = if sp.dollars {
        format!("spend <= ${}", sp.amount.value)
    } else {
        format!("spend <= {} {}", sp.amount.value, sp.currency.value)
    };
    match &sp.window {
        None => out.push_str(" per call"),
        Some(w) => {
            out.push_str(" per ");
            out.push_str(&window(w.value));
        }
    }
    by(&mut out, sp.by.as_ref());
    if let Some(n) = &sp.name {
        out.push_str(" as ");
        out.push_str(&n.value);
    }
    if let Some(m) = &sp.message {
        out.push_str(" -> ");
        out.push_str(&string(&m.value));
    }
    out
}

/// What an unnamed limit counts, without its maximum or messages
/// (`count per 1h by args.customer`, `sum(args.amount) per day`): the name
/// of its counter, so editing the maximum, the message or other rules keeps
/// the count, and only a change of what is counted starts a new counter.
pub fn limit_identity(l: &Limit) -> String {
    let mut out = match &l.amount {
        Amount::One => "count".to_string(),
        Amount::Path(p) => format!("sum({})", path(p)),
        Amount::Const(k) => format!("sum({})", k.value),
    };
    out.push_str(" per ");
    out.push_str(&window(l.window.value));
    match &l.by {
        None => {}
        Some(By::Session) => out.push_str(" by session"),
        Some(By::Path(p)) => {
            out.push_str(" by ");
            out.push_str(&path(p));
        }
    }
    out
}

fn limit(l: &Limit) -> String {
    let mut out = String::from("limit ");
    match &l.amount {
        Amount::One => out.push_str(&l.max.value.to_string()),
        Amount::Path(p) => out.push_str(&format!("sum({}) <= {}", path(p), l.max.value)),
        Amount::Const(k) => out.push_str(&format!("sum({}) <= {}", k.value, l.max.value)),
    }
    out.push_str(" per ");
    out.push_str(&window(l.window.value));
    match &l.by {
        None => {}
        Some(By::Session) => out.push_str(" by session"),
        Some(By::Path(p)) => {
            out.push_str(" by ");
            out.push_str(&path(p));
        }
    }
    if let Some(n) = &l.name {
        out.push_str(" as ");
        out.push_str(&n.value);
    }
    if let Some(m) = &l.message {
        out.push_str(" -> ");
        out.push_str(&string(&m.value));
    }
    if let Some(m) = &l.missing {
        out.push_str(" missing ");
        out.push_str(&string(&m.value));
    }
    if let Some(m) = &l.invalid {
        out.push_str(" invalid ");
        out.push_str(&string(&m.value));
    }
    out
}

/// Precedence: 0 `or`, 1 `and`, 2 `not` and tests.
fn expr(e: &Expr, context: u8) -> String {
    match e {
        Expr::Bool(b) => b.to_string(),
        Expr::Or(items) => {
            let s = items
                .iter()
                .map(|i| expr(i, 1))
                .collect::<Vec<_>>()
                .join(" or ");
            if context > 0 { format!("({s})") } else { s }
        }
        Expr::And(items) => {
            let s = items
                .iter()
                .map(|i| expr(i, 2))
                .collect::<Vec<_>>()
                .join(" and ");
            if context > 1 { format!("({s})") } else { s }
        }
        Expr::Not(inner) => match inner.as_ref() {
            Expr::Bool(_)
            | Expr::Test(Test {
                kind: TestKind::Exists(_),
                ..
            })
            | Expr::Not(_) => {
                format!("not {}", expr(inner, 2))
            }
            Expr::Test(t) => format!("not ({})", test(t)),
            other => format!("not ({})", expr(other, 0)),
        },
        Expr::Test(t) => test(t),
    }
}

fn test(t: &Test) -> String {
    match &t.kind {
        TestKind::Cmp(l, op, r) => format!("{} {} {}", operand(l), cmp(*op), operand(r)),
        TestKind::In(l, list, negated) => format!(
            "{} {}in [{}]",
            operand(l),
            if *negated { "not " } else { "" },
            list.iter().map(literal).collect::<Vec<_>>().join(", ")
        ),
        TestKind::Matches(l, re) => {
            let (body, flags) = &re.value;
            format!(
                "{} matches /{}/{}",
                operand(l),
                body.replace('/', "\\/"),
                flags
            )
        }
        TestKind::Member(l, p, negated) => format!(
            "{} {}in {}",
            operand(l),
            if *negated { "not " } else { "" },
            path(p)
        ),
        TestKind::Contains(l, r) => format!("{} contains {}", operand(l), operand(r)),
        TestKind::StartsWith(l, r) => format!("{} starts_with {}", operand(l), operand(r)),
        TestKind::EndsWith(l, r) => format!("{} ends_with {}", operand(l), operand(r)),
        TestKind::Exists(p) => format!("exists({})", path(p)),
        TestKind::Path(p, op, pattern) => {
            format!("path({}) {} {}", path(p), op.dsl(), string(&pattern.value))
        }
    }
}

fn cmp(op: CmpOp) -> &'static str {
    op.symbol()
}

fn operand(o: &Operand) -> String {
    match o {
        Operand::Path(p) => path(p),
        Operand::Len(p) => format!("len({})", path(p)),
        Operand::Count(t, n) => format!("count({}, {})", string(&t.value), string(&n.value)),
        Operand::Literal(l, _) => literal(l),
    }
}

fn literal(l: &Literal) -> String {
    match l {
        Literal::Null => "null".into(),
        Literal::Bool(b) => b.to_string(),
        Literal::Num(n) => n.text.clone(),
        Literal::Str(s) => string(s),
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::source::FileId;
    use crate::syntax::dsl::parse;

    fn fmt(text: &str) -> String {
        format(
            &parse(FileId(0), text).unwrap_or_else(|d| panic!("{d:#?}")),
            text,
        )
    }

    #[test]
    fn the_example_is_canonical_after_one_pass() {
        let text = include_str!("../../../tests/fixtures/dsl/stripe.policy");
        let once = fmt(text);
        assert_eq!(fmt(&once), once, "idempotent");
        assert!(once.starts_with("// An organisation's Stripe policy.\nserver stripe \"Stripe MCP server\" {\n  default deny\n"), "{once}");
        assert!(
            once.contains("    allow when args.amount <= 10000 and not (args.reason matches /fraud/i)\n      else \"Refunds over $100.00 need a human\"\n"),
            "{once}"
        );
        assert!(once.contains("  tool list_* {}\n"), "{once}");
        assert!(
            once.contains("limit 10 per 1h by args.customer -> "),
            "{once}"
        );
    }

    #[test]
    fn comments_are_kept_where_they_were() {
        let text = "// head\nserver s { // after the brace\n  // before the tool\n  tool a {\n    // before the rule\n    deny \"x\" // trailing\n    // before the end\n  }\n  /* block */ tool b { }\n}\n// tail\n";
        let once = fmt(text);
        for c in [
            "// head",
            "// after the brace",
            "// before the tool",
            "// before the rule",
            "// trailing",
            "// before the end",
            "/* block */",
            "// tail",
        ] {
            assert!(once.contains(c), "lost {c:?}:\n{once}");
        }
        assert_eq!(fmt(&once), once);
        assert!(once.contains("    deny \"x\"  // trailing\n"), "{once}");
    }

    #[test]
    fn slashes_in_strings_and_regexes_are_not_comments() {
        let text = "server s {\n  tool a {\n    deny \"http://x\" when args.u matches /https?:\\/\\/evil/i\n  }\n}\n";
        assert!(comments(text).is_empty());
        let once = fmt(text);
        assert!(
            once.contains("deny \"http://x\" when args.u matches /https?:\\/\\/evil/i"),
            "{once}"
        );
    }
}
