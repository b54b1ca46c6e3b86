//! The policy language front end, first stage: text to a span-annotated AST.
//!
//! The grammar is `grammar/policy.pest`. pest stops at the first syntax
//! error, so the parser recovers by itself: it reports the error, blanks the
//! statement that holds it (keeping every byte position) and parses again,
//! so one run reports every broken statement.

use pest::Parser as _;
use pest::iterators::Pair;

use crate::ir::{Calendar, CmpOp, Number};
use crate::source::{Diagnostic, FileId, Span, did_you_mean};

mod grammar {
    //! The pest parser generated from `grammar/policy.pest`.
    #![allow(missing_docs)]
    #[derive(pest_derive::Parser)]
    #[grammar = "../grammar/policy.pest"]
    pub struct Grammar;
}

use grammar::{Grammar, Rule};

/// A value with its span.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Spanned<T> {
    /// The value.
    pub value: T,
    /// Where.
    pub span: Span,
}

/// A parsed `.policy` file.
#[derive(Debug, Clone)]
pub struct File {
    /// `server NAME "description" { ... }`, or None for a fragment (a file to include).
    pub server: Option<ServerHead>,
    /// Its items, in order.
    pub items: Vec<Item>,
    /// The whole file.
    pub span: Span,
    /// Problems in values found while building the tree (a window out of
    /// range, a bad escape): errors, but the file is still lowered so that
    /// every problem is reported in one run.
    pub problems: Vec<Diagnostic>,
}

/// The head of a `server` block.
#[derive(Debug, Clone)]
pub struct ServerHead {
    /// The server's name.
    pub name: Spanned<String>,
    /// Its description.
    pub description: Option<Spanned<String>>,
}

/// An allow/deny posture.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Posture {
    /// `default allow`
    Allow,
    /// `default deny`
    Deny,
}

/// A top-level statement.
#[derive(Debug, Clone)]
pub enum Item {
    /// `default allow|deny`
    Default(Spanned<Posture>),
    /// `hide a, b, "c*" [when E | unless E]`: `(unless?, condition)` makes
    /// the hide depend on the caller (E reads principal paths only).
    Hide(Vec<Pattern>, Option<Box<(bool, Expr)>>, Span),
    /// `include "file.policy"`
    Include(Spanned<String>),
    /// `tool a, b { rules }`
    Tool(ToolBlock),
    /// `results [for ...] { ... }`: what happens to answers (docs/results.md).
    Results(ResultsBlock),
    /// `resource "URI" { rules }`, `prompt NAME { rules }`, `hide resource "URI"`.
    Surface(SurfaceBlock),
}

/// A resource or prompt block, or hide.
#[derive(Debug, Clone)]
pub struct SurfaceBlock {
    /// Resources or prompts.
    pub surface: crate::ir::Surface,
    /// `hide resource ...` / `hide prompt ...` (no rules).
    pub hide: bool,
    /// The patterns; `true`: a regex literal (`/.../`).
    pub patterns: Vec<(Pattern, bool)>,
    /// The rules, in order (the same as a tool block's).
    pub rules: Vec<PolicyRule>,
    /// `default resource allow|deny` (no patterns, no rules): the posture.
    pub default: Option<Posture>,
    /// A hide's `when E` (false) or `unless E` (true): hidden per caller.
    pub condition: Option<Box<(bool, Expr)>>,
    /// The header.
    pub span: Span,
}

/// `results [for TOOLS | for resource "URI"] { STATEMENTS }`
#[derive(Debug, Clone)]
pub struct ResultsBlock {
    /// What it applies to.
    pub target: ResultsFor,
    /// Its statements, in order.
    pub stmts: Vec<ResultStmt>,
    /// The header (`results ...`).
    pub span: Span,
}

/// The target of a `results` block.
#[derive(Debug, Clone)]
pub enum ResultsFor {
    /// No `for`: every answer.
    All,
    /// `for a, b*`: tools.
    Tools(Vec<Pattern>),
    /// `for resource "file:///etc/**", /\.env$/`: resource patterns, as a
    /// `resource` block takes them (`true`: a regex literal).
    Resources(Vec<(Pattern, bool)>),
}

/// A statement of a `results` block.
#[derive(Debug, Clone)]
pub enum ResultStmt {
    /// `redact secrets` / `deny secrets ["message"]`
    Secrets {
        /// What a match does.
        action: crate::results::Action,
        /// The message of a withheld answer.
        message: Option<Spanned<String>>,
        /// Where.
        span: Span,
    },
    /// `redact /RE/flags as NAME`
    Pattern {
        /// What a match does.
        action: crate::results::Action,
        /// Pattern and flags.
        regex: Spanned<(String, String)>,
        /// Its name.
        name: Spanned<String>,
        /// Where.
        span: Span,
    },
    /// `max 64 KiB`
    Max(Spanned<String>),
}

impl ResultStmt {
    /// Where the statement is.
    pub fn span(&self) -> Span {
        match self {
            ResultStmt::Secrets { span, .. } | ResultStmt::Pattern { span, .. } => *span,
            ResultStmt::Max(m) => m.span,
        }
    }
}

/// A tool name or glob (`*` matches any run of characters).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Pattern {
    /// The text (unquoted).
    pub text: String,
    /// Written as a string literal.
    pub quoted: bool,
    /// Where.
    pub span: Span,
}

/// `tool PATTERNS { RULES }`
#[derive(Debug, Clone)]
pub struct ToolBlock {
    /// The patterns.
    pub patterns: Vec<Pattern>,
    /// The rules, in order.
    pub rules: Vec<PolicyRule>,
    /// The header (`tool ...`).
    pub span: Span,
}

/// One rule.
#[derive(Debug, Clone)]
pub enum PolicyRule {
    /// `deny MSG [when E | unless E]`
    Deny {
        /// The denial message.
        message: Spanned<String>,
        /// `(unless?, condition)`; None denies every call.
        condition: Option<(bool, Expr)>,
        /// The whole rule.
        span: Span,
    },
    /// `allow when E else MSG`
    Allow {
        /// The condition that must hold.
        condition: Expr,
        /// The denial message when it does not.
        message: Spanned<String>,
        /// The whole rule.
        span: Span,
    },
    /// `approve MSG [when E] [via CHANNELS] [timeout DURATION]`
    Approve(ApproveRule),
    /// `limit ...`
    Limit(Limit),
    /// `spend <= ...`
    Spend(SpendRule),
    /// `once per ...`: an idempotency window.
    Once(Once),
}

/// `approve MSG [when E] [via client | operator] [timeout DURATION]`: hold
/// the call for a person's approval.
#[derive(Debug, Clone)]
pub struct ApproveRule {
    /// What the person is asked.
    pub message: Spanned<String>,
    /// The condition under which approval is needed; None: every call.
    pub condition: Option<Expr>,
    /// `via ...`: who may be asked, as written (None: both).
    pub via: Option<Spanned<Vec<String>>>,
    /// `timeout ...`: as written (checked when lowering).
    pub timeout: Option<Spanned<String>>,
    /// The whole rule.
    pub span: Span,
}

/// `spend <= MONEY per call|WINDOW [by ...] [as NAME] [-> MSG]`: a budget on
/// what a paid tool (MPP) charges.
#[derive(Debug, Clone)]
pub struct SpendRule {
    /// The amount as written (`0.50`), and its value in micro-units
    /// (None when it cannot be represented exactly: reported when lowered).
    pub amount: Spanned<String>,
    /// Lowercase currency code as written (`$` is `usd`).
    pub currency: Spanned<String>,
    /// True when written with `$`.
    pub dollars: bool,
    /// `per call`: None; otherwise the window.
    pub window: Option<Spanned<WindowSpec>>,
    /// The partition.
    pub by: Option<By>,
    /// `as NAME`: the counter's name.
    pub name: Option<Spanned<String>>,
    /// `-> MSG`
    pub message: Option<Spanned<String>>,
    /// The whole rule.
    pub span: Span,
}

/// `once per 5m [by args.a, ...] [replay | refuse] [-> MSG]`
#[derive(Debug, Clone)]
pub struct Once {
    /// The window as written (checked when lowering).
    pub window: Spanned<String>,
    /// `by args.a, args.b`: the arguments that form the key (none: all).
    pub by: Vec<Path>,
    /// `replay` (the default) or `refuse`, as written.
    pub mode: Option<Spanned<String>>,
    /// `-> MSG`: the refusal message.
    pub message: Option<Spanned<String>>,
    /// The whole rule.
    pub span: Span,
}

impl PolicyRule {
    /// The rule's span.
    pub fn span(&self) -> Span {
        match self {
            PolicyRule::Deny { span, .. } | PolicyRule::Allow { span, .. } => *span,
            PolicyRule::Approve(a) => a.span,
            PolicyRule::Limit(l) => l.span,
            PolicyRule::Spend(s) => s.span,
            PolicyRule::Once(o) => o.span,
        }
    }
}

/// What one call adds to a limit's counter.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Amount {
    /// `limit N per W`: one per call.
    One,
    /// `sum(args.path)`
    Path(Path),
    /// `sum(N)`: N per call.
    Const(Spanned<u64>),
}

/// A window.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum WindowSpec {
    /// `per minute|hour|day`
    Calendar(Calendar),
    /// `per 90s|15m|1h|2d`, in seconds.
    Sliding(u64),
}

/// Who shares a limit.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum By {
    /// `by session`
    Session,
    /// `by args.path`
    Path(Path),
}

/// `limit ...`
#[derive(Debug, Clone)]
pub struct Limit {
    /// What a call adds.
    pub amount: Amount,
    /// The highest total.
    pub max: Spanned<u64>,
    /// The window.
    pub window: Spanned<WindowSpec>,
    /// The partition.
    pub by: Option<By>,
    /// `as NAME`: the counter's name, for `count(...)`.
    pub name: Option<Spanned<String>>,
    /// `-> MSG`
    pub message: Option<Spanned<String>>,
    /// `missing MSG`: the denial when the summed argument is absent or not a number.
    pub missing: Option<Spanned<String>>,
    /// `invalid MSG`: the denial when it is negative, fractional or too large.
    pub invalid: Option<Spanned<String>>,
    /// The whole rule.
    pub span: Span,
}

/// `args.a.b` or `principal.a.b`
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Path {
    /// Written `principal.…` (the segments follow `principal.`).
    pub principal: bool,
    /// Member names.
    pub segments: Vec<String>,
    /// Where.
    pub span: Span,
}

/// A boolean expression.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Expr {
    /// `a or b or ...`
    Or(Vec<Expr>),
    /// `a and b and ...`
    And(Vec<Expr>),
    /// `not e`
    Not(Box<Expr>),
    /// `true` / `false`
    Bool(bool),
    /// A test.
    Test(Test),
}

/// One test.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Test {
    /// What.
    pub kind: TestKind,
    /// Where.
    pub span: Span,
}

/// The tests.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum TestKind {
    /// `a OP b`
    Cmp(Operand, CmpOp, Operand),
    /// `a in [..]` / `a not in [..]`
    In(Operand, Vec<Literal>, bool),
    /// `a in PATH` / `a not in PATH`: membership in an array (or substring
    /// of a string) read from a path, e.g. `"finance" in principal.groups`;
    /// the same test as `PATH contains a`.
    Member(Operand, Path, bool),
    /// `a matches /re/flags`
    Matches(Operand, Spanned<(String, String)>),
    /// `a contains b`
    Contains(Operand, Operand),
    /// `a starts_with b`
    StartsWith(Operand, Operand),
    /// `a ends_with b`
    EndsWith(Operand, Operand),
    /// `exists(args.x)`
    Exists(Path),
    /// `path(args.x) matches "/srv/**"` (also `==`, `starts_with`): the
    /// argument normalised as a filesystem path.
    Path(Path, crate::ir::PathOp, Spanned<String>),
}

/// Something a test reads.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Operand {
    /// `args.x`
    Path(Path),
    /// A constant.
    Literal(Literal, Span),
    /// `len(args.x)`
    Len(Path),
    /// `count("tool", "name")`: a named limit's counter.
    Count(Spanned<String>, Spanned<String>),
}

/// A constant.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Literal {
    /// `null`
    Null,
    /// `true` / `false`
    Bool(bool),
    /// A number (exact).
    Num(Number),
    /// A string.
    Str(String),
}

// ---------------------------------------------------------------------------
// Parsing with recovery.

/// Words that start a statement; a broken statement is blanked up to the next one.
const STATEMENT_STARTS: [&str; 13] = [
    "server", "default", "hide", "include", "tool", "deny", "allow", "approve", "limit", "spend",
    "results", "redact", "max",
];

/// Keywords, for did-you-mean suggestions.
const KEYWORDS: [&str; 50] = [
    "results",
    "for",
    "resource",
    "redact",
    "secrets",
    "max",
    "prompt",
    "allow",
    "and",
    "approve",
    "as",
    "by",
    "call",
    "client",
    "contains",
    "count",
    "default",
    "deny",
    "else",
    "ends_with",
    "exists",
    "false",
    "hide",
    "in",
    "include",
    "invalid",
    "len",
    "limit",
    "matches",
    "missing",
    "not",
    "null",
    "once",
    "operator",
    "or",
    "path",
    "per",
    "refuse",
    "replay",
    "server",
    "session",
    "spend",
    "starts_with",
    "sum",
    "timeout",
    "tool",
    "true",
    "unless",
    "via",
    "when",
];

/// Parses a `.policy` file, reporting every syntax error (up to 50).
pub fn parse(file: FileId, text: &str) -> Result<File, Vec<Diagnostic>> {
    let mut work = text.to_string();
    let mut errors: Vec<Diagnostic> = Vec::new();
    loop {
        match Grammar::parse(Rule::file, &work) {
            Ok(mut pairs) => {
                if !errors.is_empty() {
                    return Err(errors);
                }
                let pair = pairs.next().expect("a file");
                let b = Build { file, text };
                return b.file(pair);
            }
            Err(e) => {
                let pos = match e.location {
                    pest::error::InputLocation::Pos(p) => p,
                    pest::error::InputLocation::Span((s, _)) => s,
                };
                errors.push(syntax_error(file, text, pos, &e));
                if errors.len() >= 50 || !blank_statement(&mut work, pos) {
                    return Err(errors);
                }
            }
        }
    }
}

fn describe(r: &Rule) -> String {
    let name = format!("{r:?}");
    if let Some(kw) = name.strip_prefix("kw_") {
        return format!("`{kw}`");
    }
    match r {
        Rule::EOI => "the end of the file".into(),
        Rule::string => "a string".into(),
        Rule::name | Rule::glob | Rule::pattern => "a name".into(),
        Rule::integer => "a whole number".into(),
        Rule::number | Rule::literal => "a value".into(),
        Rule::window => "a window (minute, hour, day, or 90s, 15m, 1h, 2d)".into(),
        Rule::path => "a path (args.name or principal.name)".into(),
        Rule::path_root => "a path (args.name or principal.name)".into(),
        Rule::operand => "a value or a path (args.name, principal.name)".into(),
        Rule::expr | Rule::test | Rule::or_expr | Rule::and_expr | Rule::not_expr => {
            "a condition".into()
        }
        Rule::cmp_op => "a comparison (==, !=, <, <=, >, >=)".into(),
        Rule::path_op => "`matches`, `==` or `starts_with` and a path in quotes".into(),
        Rule::regex => "a regex (/.../flags)".into(),
        Rule::list => "a list ([...])".into(),
        Rule::message => "`->`".into(),
        Rule::posture => "`allow` or `deny`".into(),
        Rule::server => "`server`".into(),
        Rule::items
        | Rule::default_decl
        | Rule::hide_decl
        | Rule::include_decl
        | Rule::tool_block
        | Rule::surface_block
        | Rule::surface_default
        | Rule::surface_hide
        | Rule::results_block => {
            "a statement (`default`, `hide`, `include`, `tool`, `resource`, `prompt`, `results`)".into()
        }
        Rule::surface_kw => "`resource`, `prompt`".into(),
        Rule::surface_pattern => "a URI, name or regex".into(),
        Rule::result_secrets | Rule::result_pattern | Rule::result_max | Rule::result_action => {
            "a results statement (`redact secrets`, `deny secrets`, `redact /re/ as name`, `max 64 KiB`)".into()
        }
        Rule::size_unit => "a size unit (KiB, MiB, KB, MB, bytes)".into(),
        Rule::deny_rule
        | Rule::allow_rule
        | Rule::approve_rule
        | Rule::limit_rule
        | Rule::spend_rule
        | Rule::once_rule => "a rule (`deny`, `allow`, `approve`, `limit`, `spend`, `once`)".into(),
        Rule::channel => "`client` or `operator`".into(),
        Rule::duration => "a duration (30s, 15m, 1h)".into(),
        Rule::money => "an amount (`$0.50` or `0.50 eur`)".into(),
        other => format!("{other:?}").replace('_', " "),
    }
}

fn syntax_error(file: FileId, text: &str, pos: usize, e: &pest::error::Error<Rule>) -> Diagnostic {
    let word: String = text[pos.min(text.len())..]
        .chars()
        .take_while(|c| c.is_ascii_alphanumeric() || *c == '_')
        .collect();
    let found = if pos >= text.len() {
        "the end of the file".to_string()
    } else if word.is_empty() {
        format!("`{}`", text[pos..].chars().next().unwrap_or(' '))
    } else {
        format!("`{word}`")
    };
    let (expected, suggestions): (Vec<String>, Vec<&str>) = match &e.variant {
        pest::error::ErrorVariant::ParsingError { positives, .. } => {
            let mut names: Vec<String> = positives.iter().map(describe).collect();
            names.sort();
            names.dedup();
            let kws: Vec<&str> = positives
                .iter()
                .filter_map(|r| {
                    let n = format!("{r:?}");
                    KEYWORDS.iter().copied().find(|k| n == format!("kw_{k}"))
                })
                .collect();
            (names, kws)
        }
        pest::error::ErrorVariant::CustomError { message } => (vec![message.clone()], Vec::new()),
    };
    if found == "`\"`" && expected.iter().any(|e| e == "a string") {
        let end = text[pos..].find('\n').map_or(text.len(), |e| pos + e);
        return Diagnostic::error("unterminated string", Span::new(file, pos, end))
            .with_help("close the string with `\"` on the same line (write a line break as \\n)");
    }
    let message = match expected.len() {
        0 => format!("unexpected {found}"),
        1 => format!("expected {}, found {found}", expected[0]),
        _ => {
            let (last, rest) = expected.split_last().expect("non-empty");
            format!("expected {} or {last}, found {found}", rest.join(", "))
        }
    };
    let candidates: Vec<&str> = if suggestions.is_empty() {
        KEYWORDS.to_vec()
    } else {
        suggestions
    };
    let help = match did_you_mean(&word, &candidates)
        .filter(|_| !word.is_empty() && !KEYWORDS.contains(&word.as_str()))
    {
        Some(k) => format!("did you mean `{k}`?"),
        None => "see docs/policy-language.md for the syntax".to_string(),
    };
    let end = (pos + word.len().max(1)).min(text.len());
    Diagnostic::error(message, Span::new(file, pos, end)).with_help(help)
}

/// Blanks (with spaces, keeping newlines) the statement that holds `pos`:
/// from the start of its line back to the line that starts a statement, and
/// forward to the next line that starts one. False when nothing changed.
fn blank_statement(work: &mut String, pos: usize) -> bool {
    let starts_statement = |line: &str| {
        let t = line.trim_start();
        STATEMENT_STARTS.iter().any(|k| {
            t.starts_with(k)
                && !t[k.len()..].starts_with(|c: char| c.is_ascii_alphanumeric() || c == '_')
        }) || t.starts_with('}')
    };
    let lines: Vec<(usize, &str)> = work
        .split_inclusive('\n')
        .scan(0, |off, l| {
            let start = *off;
            *off += l.len();
            Some((start, l))
        })
        .collect();
    let Some(mut i) = lines.iter().rposition(|(s, _)| *s <= pos) else {
        return false;
    };
    // An error at a line's first word (a misspelt keyword) is its own
    // statement; otherwise walk back to the line that starts the statement.
    let (line_start, line) = lines[i];
    let first_word = line_start + (line.len() - line.trim_start().len());
    // An error at a closing brace belongs to the statement before it (one that
    // ends too early, e.g. `deny "x" when args.a >`): blank that statement and
    // keep the brace, so the block still closes and nothing cascades.
    if pos == first_word && line.trim_start().starts_with('}') && i > 0 {
        let end = line_start;
        let mut k = i - 1;
        while k > 0 && !starts_statement(lines[k].1) {
            k -= 1;
        }
        let first = lines[k].1.trim_start();
        let opens_block =
            (first.starts_with("tool") || first.starts_with("server")) && first.contains('{');
        if !opens_block && !first.starts_with('}') {
            let from = lines[k].0;
            if from < end && !work[from..end].chars().all(char::is_whitespace) {
                blank(work, from, end);
                return true;
            }
        }
    }
    if pos > first_word {
        while i > 0 && !starts_statement(lines[i].1) {
            i -= 1;
        }
    }
    let from = lines[i].0;
    let mut j = i + 1;
    while j < lines.len() && !starts_statement(lines[j].1) {
        j += 1;
    }
    // A block header (`tool ... {`, `server ... {`) takes its whole block.
    let first = lines[i].1.trim_start();
    let to = if (first.starts_with("tool") || first.starts_with("server")) && first.contains('{') {
        block_end(work, from).unwrap_or(work.len())
    } else {
        lines.get(j).map_or(work.len(), |(s, _)| *s)
    };
    if to <= from || work[from..to].chars().all(char::is_whitespace) {
        return false;
    }
    blank(work, from, to);
    true
}

/// Replaces `work[from..to]` by spaces, keeping line breaks and byte
/// positions (a multi-byte character becomes as many spaces as bytes).
fn blank(work: &mut String, from: usize, to: usize) {
    let blanked: String = work[from..to]
        .chars()
        .map(|c| {
            if c == '\n' {
                "\n".to_string()
            } else {
                " ".repeat(c.len_utf8())
            }
        })
        .collect();
    work.replace_range(from..to, &blanked);
}

/// End of the `{ ... }` block that opens after `from` (naive brace matching, outside strings).
fn block_end(text: &str, from: usize) -> Option<usize> {
    let mut depth = 0usize;
    let mut in_str = false;
    let bytes = text.as_bytes();
    let mut i = from;
    while i < bytes.len() {
        match bytes[i] {
            b'\\' if in_str => i += 1,
            b'"' => in_str = !in_str,
            b'{' if !in_str => depth += 1,
            b'}' if !in_str => {
                depth = depth.checked_sub(1)?;
                if depth == 0 {
                    return Some(i + 1);
                }
            }
            _ => {}
        }
        i += 1;
    }
    None
}

struct Build<'t> {
    file: FileId,
    text: &'t str,
}

impl Build<'_> {
    fn span(&self, p: &Pair<'_, Rule>) -> Span {
        let s = p.as_span();
        Span::new(self.file, s.start(), s.end())
    }

    fn file(&self, pair: Pair<'_, Rule>) -> Result<File, Vec<Diagnostic>> {
        let span = Span::new(self.file, 0, self.text.len());
        let mut diags = Vec::new();
        let mut out = File {
            server: None,
            items: Vec::new(),
            span,
            problems: Vec::new(),
        };
        for p in pair.into_inner() {
            match p.as_rule() {
                Rule::server => {
                    let mut inner = p.into_inner();
                    inner.next(); // kw_server
                    let name = inner.next().expect("a name");
                    let mut head = ServerHead {
                        name: Spanned {
                            value: name.as_str().to_string(),
                            span: self.span(&name),
                        },
                        description: None,
                    };
                    for q in inner {
                        match q.as_rule() {
                            Rule::string => head.description = Some(self.string(&q, &mut diags)),
                            Rule::items => out.items = self.items(q, &mut diags),
                            _ => {}
                        }
                    }
                    out.server = Some(head);
                }
                Rule::items => out.items = self.items(p, &mut diags),
                _ => {}
            }
        }
        out.problems = diags;
        Ok(out)
    }

    fn items(&self, pair: Pair<'_, Rule>, diags: &mut Vec<Diagnostic>) -> Vec<Item> {
        let mut items = Vec::new();
        for p in pair.into_inner() {
            let span = self.span(&p);
            match p.as_rule() {
                Rule::default_decl => {
                    let posture = p.into_inner().nth(1).expect("a posture");
                    let value = if posture.as_str() == "deny" {
                        Posture::Deny
                    } else {
                        Posture::Allow
                    };
                    items.push(Item::Default(Spanned {
                        value,
                        span: self.span(&posture),
                    }));
                }
                Rule::hide_decl => {
                    let mut pats = Vec::new();
                    let mut condition = None;
                    for q in p.into_inner() {
                        match q.as_rule() {
                            Rule::pattern => pats.push(self.pattern(q, diags)),
                            Rule::when_clause | Rule::unless_clause => {
                                let unless = q.as_rule() == Rule::unless_clause;
                                let e = q.into_inner().nth(1).expect("an expression");
                                condition = Some(Box::new((unless, self.expr(e, diags))));
                            }
                            _ => {}
                        }
                    }
                    items.push(Item::Hide(pats, condition, span));
                }
                Rule::surface_default => {
                    let mut surface = crate::ir::Surface::Resource;
                    let mut posture = Posture::Allow;
                    for q in p.into_inner() {
                        match q.as_rule() {
                            Rule::surface_kw if q.as_str() == "prompt" => {
                                surface = crate::ir::Surface::Prompt;
                            }
                            Rule::posture if q.as_str() == "deny" => posture = Posture::Deny,
                            _ => {}
                        }
                    }
                    items.push(Item::Surface(SurfaceBlock {
                        surface,
                        hide: false,
                        patterns: Vec::new(),
                        rules: Vec::new(),
                        default: Some(posture),
                        condition: None,
                        span,
                    }));
                }
                Rule::surface_block | Rule::surface_hide => {
                    let hide = p.as_rule() == Rule::surface_hide;
                    let mut surface = crate::ir::Surface::Resource;
                    let mut patterns = Vec::new();
                    let mut rules = Vec::new();
                    let mut condition = None;
                    let mut header_end = span.start;
                    for q in p.into_inner() {
                        match q.as_rule() {
                            Rule::when_clause | Rule::unless_clause => {
                                header_end = q.as_span().end();
                                let unless = q.as_rule() == Rule::unless_clause;
                                let e = q.into_inner().nth(1).expect("an expression");
                                condition = Some(Box::new((unless, self.expr(e, diags))));
                            }
                            Rule::surface_kw if q.as_str() == "prompt" => {
                                surface = crate::ir::Surface::Prompt;
                            }
                            Rule::surface_pattern => {
                                header_end = q.as_span().end();
                                patterns.push(self.surface_pattern(q, diags));
                            }
                            Rule::deny_rule
                            | Rule::allow_rule
                            | Rule::approve_rule
                            | Rule::limit_rule
                            | Rule::spend_rule
                            | Rule::once_rule => {
                                if let Some(r) = self.rule(q, diags) {
                                    rules.push(r);
                                }
                            }
                            _ => {}
                        }
                    }
                    items.push(Item::Surface(SurfaceBlock {
                        surface,
                        hide,
                        patterns,
                        rules,
                        default: None,
                        condition,
                        span: Span::new(self.file, span.start, header_end),
                    }));
                }
                Rule::include_decl => {
                    let s = p.into_inner().nth(1).expect("a string");
                    items.push(Item::Include(self.string(&s, diags)));
                }
                Rule::tool_block => {
                    let mut patterns = Vec::new();
                    let mut rules = Vec::new();
                    let mut header_end = span.start;
                    for q in p.into_inner() {
                        match q.as_rule() {
                            Rule::pattern => {
                                header_end = q.as_span().end();
                                patterns.push(self.pattern(q, diags));
                            }
                            Rule::deny_rule
                            | Rule::allow_rule
                            | Rule::approve_rule
                            | Rule::limit_rule
                            | Rule::spend_rule
                            | Rule::once_rule => {
                                if let Some(r) = self.rule(q, diags) {
                                    rules.push(r);
                                }
                            }
                            _ => {}
                        }
                    }
                    items.push(Item::Tool(ToolBlock {
                        patterns,
                        rules,
                        span: Span::new(self.file, span.start, header_end),
                    }));
                }
                Rule::results_block => items.push(Item::Results(self.results_block(p, diags))),
                _ => {}
            }
        }
        items
    }

    /// A resource or prompt pattern: a string, a glob or a regex literal
    /// (`true`); a regex takes no flags.
    fn surface_pattern(&self, q: Pair<'_, Rule>, diags: &mut Vec<Diagnostic>) -> (Pattern, bool) {
        let inner = q.into_inner().next().expect("a pattern");
        let pspan = self.span(&inner);
        let (text, quoted, regex) = match inner.as_rule() {
            Rule::string => (self.string(&inner, diags).value, true, false),
            Rule::regex => {
                let mut parts = inner.into_inner();
                let body = parts
                    .next()
                    .map(|b| b.as_str().replace("\\/", "/"))
                    .unwrap_or_default();
                if let Some(f) = parts.next().filter(|f| !f.as_str().is_empty()) {
                    diags.push(
                        Diagnostic::error(
                            "a resource or prompt regex takes no flags",
                            self.span(&f),
                        )
                        .with_help("write flags inside the pattern, e.g. `(?i)`"),
                    );
                }
                (body, false, true)
            }
            _ => (inner.as_str().to_string(), false, false),
        };
        (
            Pattern {
                text,
                quoted,
                span: pspan,
            },
            regex,
        )
    }

    fn results_block(&self, p: Pair<'_, Rule>, diags: &mut Vec<Diagnostic>) -> ResultsBlock {
        let span = self.span(&p);
        let mut target = ResultsFor::All;
        let mut stmts = Vec::new();
        let mut header_end = span.start + "results".len();
        for q in p.into_inner() {
            let qspan = self.span(&q);
            match q.as_rule() {
                Rule::results_for => {
                    header_end = qspan.end;
                    let mut pats = Vec::new();
                    let mut uris = Vec::new();
                    for r in q.into_inner() {
                        match r.as_rule() {
                            Rule::surface_pattern => uris.push(self.surface_pattern(r, diags)),
                            Rule::pattern => pats.push(self.pattern(r, diags)),
                            _ => {}
                        }
                    }
                    if !pats.is_empty() {
                        target = ResultsFor::Tools(pats);
                    }
                    if !uris.is_empty() {
                        target = ResultsFor::Resources(uris);
                    }
                }
                Rule::result_secrets | Rule::result_pattern => {
                    let rule = q.as_rule();
                    let mut inner = q.into_inner();
                    let action = match inner.next().map(|a| a.as_str().to_string()) {
                        Some(a) if a == "deny" => crate::results::Action::Deny,
                        _ => crate::results::Action::Redact,
                    };
                    if rule == Rule::result_secrets {
                        let message = inner
                            .find(|r| r.as_rule() == Rule::string)
                            .map(|s| self.string(&s, diags));
                        stmts.push(ResultStmt::Secrets {
                            action,
                            message,
                            span: qspan,
                        });
                        continue;
                    }
                    let re = inner.next().expect("a regex");
                    let rspan = self.span(&re);
                    let mut parts = re.into_inner();
                    let body = parts
                        .next()
                        .map(|b| b.as_str().replace("\\/", "/"))
                        .unwrap_or_default();
                    let flags = parts
                        .next()
                        .map(|f| f.as_str().to_string())
                        .unwrap_or_default();
                    let name = inner.find(|r| r.as_rule() == Rule::name).expect("a name");
                    stmts.push(ResultStmt::Pattern {
                        action,
                        regex: Spanned {
                            value: (body, flags),
                            span: rspan,
                        },
                        name: Spanned {
                            value: name.as_str().to_string(),
                            span: self.span(&name),
                        },
                        span: qspan,
                    });
                }
                Rule::result_max => {
                    let text = q
                        .into_inner()
                        .skip(1)
                        .map(|r| r.as_str())
                        .collect::<Vec<_>>()
                        .join(" ");
                    stmts.push(ResultStmt::Max(Spanned {
                        value: text,
                        span: qspan,
                    }));
                }
                _ => {}
            }
        }
        ResultsBlock {
            target,
            stmts,
            span: Span::new(self.file, span.start, header_end),
        }
    }

    fn pattern(&self, p: Pair<'_, Rule>, diags: &mut Vec<Diagnostic>) -> Pattern {
        let inner = p.into_inner().next().expect("a pattern");
        let span = self.span(&inner);
        match inner.as_rule() {
            Rule::string => Pattern {
                text: self.string(&inner, diags).value,
                quoted: true,
                span,
            },
            _ => Pattern {
                text: inner.as_str().to_string(),
                quoted: false,
                span,
            },
        }
    }

    fn string(&self, p: &Pair<'_, Rule>, diags: &mut Vec<Diagnostic>) -> Spanned<String> {
        let span = self.span(p);
        let raw = p.as_str();
        let inner = &raw[1..raw.len() - 1];
        match unescape(inner) {
            Ok(s) => Spanned { value: s, span },
            Err(msg) => {
                diags.push(
                    Diagnostic::error(msg, span)
                        .with_help("escapes are \\\" \\\\ \\/ \\n \\r \\t \\uXXXX"),
                );
                Spanned {
                    value: String::new(),
                    span,
                }
            }
        }
    }

    fn integer(&self, p: &Pair<'_, Rule>, diags: &mut Vec<Diagnostic>) -> Spanned<u64> {
        let span = self.span(p);
        match p.as_str().parse::<u64>() {
            Ok(v) if v <= i64::MAX as u64 => Spanned { value: v, span },
            _ => {
                diags.push(
                    Diagnostic::error("number too large", span)
                        .with_help("counters hold whole numbers up to 9223372036854775807"),
                );
                Spanned { value: 0, span }
            }
        }
    }

    fn rule(&self, p: Pair<'_, Rule>, diags: &mut Vec<Diagnostic>) -> Option<PolicyRule> {
        let span = self.span(&p);
        match p.as_rule() {
            Rule::deny_rule => {
                let mut inner = p.into_inner();
                inner.next(); // kw_deny
                let message = self.string(&inner.next()?, diags);
                let condition = inner.next().map(|c| {
                    let unless = c.as_rule() == Rule::unless_clause;
                    let e = c.into_inner().nth(1).expect("an expression");
                    (unless, self.expr(e, diags))
                });
                Some(PolicyRule::Deny {
                    message,
                    condition,
                    span,
                })
            }
            Rule::allow_rule => {
                let mut inner = p
                    .into_inner()
                    .filter(|q| matches!(q.as_rule(), Rule::expr | Rule::string));
                let condition = self.expr(inner.next()?, diags);
                let message = self.string(&inner.next()?, diags);
                Some(PolicyRule::Allow {
                    condition,
                    message,
                    span,
                })
            }
            Rule::approve_rule => {
                let mut rule = ApproveRule {
                    message: Spanned {
                        value: String::new(),
                        span,
                    },
                    condition: None,
                    via: None,
                    timeout: None,
                    span,
                };
                for q in p.into_inner() {
                    match q.as_rule() {
                        Rule::string => rule.message = self.string(&q, diags),
                        Rule::when_clause => {
                            let e = q.into_inner().nth(1)?;
                            rule.condition = Some(self.expr(e, diags));
                        }
                        Rule::via_clause => {
                            let vspan = self.span(&q);
                            let channels = q
                                .into_inner()
                                .filter(|c| c.as_rule() == Rule::channel)
                                .map(|c| c.as_str().to_string())
                                .collect();
                            rule.via = Some(Spanned {
                                value: channels,
                                span: vspan,
                            });
                        }
                        Rule::timeout_clause => {
                            let d = q.into_inner().nth(1)?;
                            rule.timeout = Some(Spanned {
                                value: d.as_str().to_string(),
                                span: self.span(&d),
                            });
                        }
                        _ => {}
                    }
                }
                Some(PolicyRule::Approve(rule))
            }
            Rule::limit_rule => {
                let mut limit = Limit {
                    amount: Amount::One,
                    max: Spanned { value: 0, span },
                    window: Spanned {
                        value: WindowSpec::Calendar(Calendar::Minute),
                        span,
                    },
                    by: None,
                    name: None,
                    message: None,
                    missing: None,
                    invalid: None,
                    span,
                };
                for q in p.into_inner() {
                    match q.as_rule() {
                        Rule::count_limit => {
                            limit.max = self.integer(&q.into_inner().next()?, diags);
                        }
                        Rule::sum_limit => {
                            let mut inner = q
                                .into_inner()
                                .filter(|r| matches!(r.as_rule(), Rule::path | Rule::integer));
                            let of = inner.next()?;
                            limit.amount = match of.as_rule() {
                                Rule::path => Amount::Path(self.path(of)),
                                _ => Amount::Const(self.integer(&of, diags)),
                            };
                            limit.max = self.integer(&inner.next()?, diags);
                        }
                        Rule::window => {
                            limit.window = self.window(&q, diags);
                        }
                        Rule::by_clause => {
                            let target = q.into_inner().nth(1)?;
                            limit.by = Some(if target.as_rule() == Rule::path {
                                By::Path(self.path(target))
                            } else {
                                By::Session
                            });
                        }
                        Rule::as_clause => {
                            let n = q.into_inner().nth(1)?;
                            limit.name = Some(Spanned {
                                value: n.as_str().to_string(),
                                span: self.span(&n),
                            });
                        }
                        Rule::message => {
                            limit.message = Some(self.string(&q.into_inner().next()?, diags))
                        }
                        Rule::missing_clause => {
                            limit.missing = Some(self.string(&q.into_inner().nth(1)?, diags))
                        }
                        Rule::invalid_clause => {
                            limit.invalid = Some(self.string(&q.into_inner().nth(1)?, diags))
                        }
                        _ => {}
                    }
                }
                Some(PolicyRule::Limit(limit))
            }
            Rule::spend_rule => {
                let mut rule = SpendRule {
                    amount: Spanned {
                        value: String::new(),
                        span,
                    },
                    currency: Spanned {
                        value: "usd".into(),
                        span,
                    },
                    dollars: true,
                    window: None,
                    by: None,
                    name: None,
                    message: None,
                    span,
                };
                for q in p.into_inner() {
                    match q.as_rule() {
                        Rule::money => {
                            let m = q.into_inner().next()?;
                            rule.dollars = m.as_rule() == Rule::dollars;
                            for part in m.into_inner() {
                                let value = part.as_str().to_string();
                                let pspan = self.span(&part);
                                match part.as_rule() {
                                    Rule::decimal => rule.amount = Spanned { value, span: pspan },
                                    Rule::currency_code => {
                                        rule.currency = Spanned {
                                            value: value.to_ascii_lowercase(),
                                            span: pspan,
                                        }
                                    }
                                    _ => {}
                                }
                            }
                        }
                        Rule::window => rule.window = Some(self.window(&q, diags)),
                        Rule::by_clause => {
                            let target = q.into_inner().nth(1)?;
                            rule.by = Some(if target.as_rule() == Rule::path {
                                By::Path(self.path(target))
                            } else {
                                By::Session
                            });
                        }
                        Rule::as_clause => {
                            let n = q.into_inner().nth(1)?;
                            rule.name = Some(Spanned {
                                value: n.as_str().to_string(),
                                span: self.span(&n),
                            });
                        }
                        Rule::message => {
                            rule.message = Some(self.string(&q.into_inner().next()?, diags))
                        }
                        _ => {}
                    }
                }
                Some(PolicyRule::Spend(rule))
            }
            Rule::once_rule => {
                let mut once = Once {
                    window: Spanned {
                        value: String::new(),
                        span,
                    },
                    by: Vec::new(),
                    mode: None,
                    message: None,
                    span,
                };
                for q in p.into_inner() {
                    match q.as_rule() {
                        Rule::duration => {
                            once.window = Spanned {
                                value: q.as_str().to_string(),
                                span: self.span(&q),
                            };
                        }
                        Rule::once_by => {
                            once.by = q
                                .into_inner()
                                .filter(|r| r.as_rule() == Rule::path)
                                .map(|r| self.path(r))
                                .collect();
                        }
                        Rule::once_mode => {
                            once.mode = Some(Spanned {
                                value: q.as_str().to_string(),
                                span: self.span(&q),
                            });
                        }
                        Rule::message => {
                            once.message = Some(self.string(&q.into_inner().next()?, diags))
                        }
                        _ => {}
                    }
                }
                Some(PolicyRule::Once(once))
            }
            _ => None,
        }
    }

    fn window(&self, q: &Pair<'_, Rule>, diags: &mut Vec<Diagnostic>) -> Spanned<WindowSpec> {
        let wspan = self.span(q);
        let t = q.as_str();
        let value = match t {
            "minute" => WindowSpec::Calendar(Calendar::Minute),
            "hour" => WindowSpec::Calendar(Calendar::Hour),
            "day" => WindowSpec::Calendar(Calendar::Day),
            _ => {
                let (n, unit) = t.split_at(t.len() - 1);
                let mult = match unit {
                    "s" => 1,
                    "m" => 60,
                    "h" => 3600,
                    _ => 86_400,
                };
                match n.parse::<u64>().ok().and_then(|n| n.checked_mul(mult)) {
                    Some(secs) if (1..=366 * 86_400).contains(&secs) => WindowSpec::Sliding(secs),
                    _ => {
                        diags.push(
                            Diagnostic::error(format!("window `{t}` is out of range"), wspan)
                                .with_help("a sliding window lasts from 1s to 366d"),
                        );
                        WindowSpec::Sliding(1)
                    }
                }
            }
        };
        Spanned { value, span: wspan }
    }

    fn path(&self, p: Pair<'_, Rule>) -> Path {
        let span = self.span(&p);
        let mut inner = p.into_inner();
        let principal = inner.next().expect("a path root").as_str() == "principal";
        let segments = inner
            .map(|seg| {
                let inner = seg.into_inner().next().expect("a segment");
                match inner.as_rule() {
                    Rule::string => {
                        let raw = inner.as_str();
                        unescape(&raw[1..raw.len() - 1]).unwrap_or_default()
                    }
                    _ => inner.as_str().to_string(),
                }
            })
            .collect();
        Path {
            principal,
            segments,
            span,
        }
    }

    fn expr(&self, p: Pair<'_, Rule>, diags: &mut Vec<Diagnostic>) -> Expr {
        match p.as_rule() {
            Rule::expr => self.expr(p.into_inner().next().expect("an or-expression"), diags),
            Rule::or_expr | Rule::and_expr => {
                let is_or = p.as_rule() == Rule::or_expr;
                let parts: Vec<Expr> = p
                    .into_inner()
                    .filter(|q| !matches!(q.as_rule(), Rule::kw_or | Rule::kw_and))
                    .map(|q| self.expr(q, diags))
                    .collect();
                if parts.len() == 1 {
                    parts.into_iter().next().expect("one part")
                } else if is_or {
                    Expr::Or(parts)
                } else {
                    Expr::And(parts)
                }
            }
            Rule::not_expr => self.expr(
                p.into_inner().next().expect("a negation or a primary"),
                diags,
            ),
            Rule::negation => {
                let inner = p.into_inner().nth(1).expect("an operand of not");
                Expr::Not(Box::new(self.expr(inner, diags)))
            }
            Rule::test => self.test(p, diags),
            _ => Expr::Bool(false),
        }
    }

    fn test(&self, p: Pair<'_, Rule>, diags: &mut Vec<Diagnostic>) -> Expr {
        let span = self.span(&p);
        let parts: Vec<Pair<'_, Rule>> = p.into_inner().collect();
        let first = &parts[0];
        let kind = match first.as_rule() {
            Rule::boolean => return Expr::Bool(first.as_str() == "true"),
            Rule::exists_test => {
                let path = first.clone().into_inner().nth(1).expect("a path");
                TestKind::Exists(self.path(path))
            }
            Rule::path_test => {
                let inner: Vec<Pair<'_, Rule>> = first.clone().into_inner().collect();
                let op = match inner[2].as_str() {
                    "==" => crate::ir::PathOp::Eq,
                    "matches" => crate::ir::PathOp::Glob,
                    _ => crate::ir::PathOp::Under,
                };
                TestKind::Path(
                    self.path(inner[1].clone()),
                    op,
                    self.string(&inner[3], diags),
                )
            }
            _ => {
                let lhs = self.operand(first.clone(), diags);
                match parts[1].as_rule() {
                    Rule::cmp_op => {
                        let op = match parts[1].as_str() {
                            "==" => CmpOp::Eq,
                            "!=" => CmpOp::Ne,
                            "<" => CmpOp::Lt,
                            "<=" => CmpOp::Le,
                            ">" => CmpOp::Gt,
                            _ => CmpOp::Ge,
                        };
                        TestKind::Cmp(lhs, op, self.operand(parts[2].clone(), diags))
                    }
                    Rule::kw_not | Rule::kw_in => {
                        let negated = parts[1].as_rule() == Rule::kw_not;
                        let target = parts[if negated { 3 } else { 2 }].clone();
                        if target.as_rule() == Rule::path {
                            TestKind::Member(lhs, self.path(target), negated)
                        } else {
                            TestKind::In(lhs, self.list(target, diags), negated)
                        }
                    }
                    Rule::kw_matches => {
                        let re = parts[2].clone();
                        let rspan = self.span(&re);
                        let mut inner = re.into_inner();
                        let body = inner
                            .next()
                            .map(|b| b.as_str().replace("\\/", "/"))
                            .unwrap_or_default();
                        let flags = inner
                            .next()
                            .map(|f| f.as_str().to_string())
                            .unwrap_or_default();
                        TestKind::Matches(
                            lhs,
                            Spanned {
                                value: (body, flags),
                                span: rspan,
                            },
                        )
                    }
                    Rule::kw_contains => {
                        TestKind::Contains(lhs, self.operand(parts[2].clone(), diags))
                    }
                    Rule::kw_starts_with => {
                        TestKind::StartsWith(lhs, self.operand(parts[2].clone(), diags))
                    }
                    _ => TestKind::EndsWith(lhs, self.operand(parts[2].clone(), diags)),
                }
            }
        };
        Expr::Test(Test { kind, span })
    }

    fn operand(&self, p: Pair<'_, Rule>, diags: &mut Vec<Diagnostic>) -> Operand {
        let inner = p.into_inner().next().expect("an operand");
        let span = self.span(&inner);
        match inner.as_rule() {
            Rule::path => Operand::Path(self.path(inner)),
            Rule::len_call => Operand::Len(self.path(inner.into_inner().nth(1).expect("a path"))),
            Rule::count_call => {
                let mut strings = inner.into_inner().filter(|q| q.as_rule() == Rule::string);
                let tool = self.string(&strings.next().expect("a tool"), diags);
                let name = self.string(&strings.next().expect("a name"), diags);
                Operand::Count(tool, name)
            }
            _ => Operand::Literal(self.literal(inner, diags), span),
        }
    }

    fn list(&self, p: Pair<'_, Rule>, diags: &mut Vec<Diagnostic>) -> Vec<Literal> {
        p.into_inner().map(|q| self.literal(q, diags)).collect()
    }

    fn literal(&self, p: Pair<'_, Rule>, diags: &mut Vec<Diagnostic>) -> Literal {
        let inner = if p.as_rule() == Rule::literal {
            p.into_inner().next().expect("a literal")
        } else {
            p
        };
        match inner.as_rule() {
            Rule::string => Literal::Str(self.string(&inner, diags).value),
            Rule::number => {
                Literal::Num(Number::parse(inner.as_str()).unwrap_or_else(|| Number::from_u64(0)))
            }
            Rule::boolean => Literal::Bool(inner.as_str() == "true"),
            _ => Literal::Null,
        }
    }
}

/// Decodes the escapes of a string literal (JSON's set).
pub fn unescape(s: &str) -> Result<String, String> {
    let mut out = String::with_capacity(s.len());
    let mut chars = s.chars();
    while let Some(c) = chars.next() {
        if c != '\\' {
            out.push(c);
            continue;
        }
        match chars.next() {
            Some('"') => out.push('"'),
            Some('\\') => out.push('\\'),
            Some('/') => out.push('/'),
            Some('n') => out.push('\n'),
            Some('r') => out.push('\r'),
            Some('t') => out.push('\t'),
            Some('u') => {
                let hex: String = chars.by_ref().take(4).collect();
                let c = u32::from_str_radix(&hex, 16)
                    .ok()
                    .and_then(char::from_u32)
                    .ok_or_else(|| format!("invalid escape `\\u{hex}`"))?;
                out.push(c);
            }
            Some(other) => return Err(format!("invalid escape `\\{other}`")),
            None => return Err("a string cannot end with `\\`".into()),
        }
    }
    Ok(out)
}

#[cfg(test)]
mod tests {
    use super::*;

    const STRIPE: &str = include_str!("../../../tests/fixtures/dsl/stripe.policy");

    #[test]
    fn the_issue_example_parses() {
        let f = parse(FileId(0), STRIPE).unwrap_or_else(|d| panic!("{d:#?}"));
        let head = f.server.unwrap();
        assert_eq!(head.name.value, "stripe");
        assert_eq!(head.description.unwrap().value, "Stripe MCP server");
        assert_eq!(f.items.len(), 6);
        let Item::Tool(charge) = &f.items[2] else {
            panic!()
        };
        assert_eq!(charge.rules.len(), 4);
        let PolicyRule::Limit(l) = &charge.rules[3] else {
            panic!()
        };
        assert_eq!(l.max.value, 10);
        assert_eq!(l.window.value, WindowSpec::Sliding(3600));
        assert!(matches!(&l.by, Some(By::Path(p)) if p.segments == ["customer"]));
        let Item::Tool(refunds) = &f.items[3] else {
            panic!()
        };
        assert_eq!(refunds.patterns.len(), 2);
        let PolicyRule::Allow {
            condition: Expr::And(parts),
            ..
        } = &refunds.rules[0]
        else {
            panic!("{:?}", refunds.rules[0])
        };
        assert!(matches!(&parts[1], Expr::Not(_)));
    }

    #[test]
    fn every_broken_statement_is_reported() {
        let text = "server s {\n  tool a {\n    deyn \"x\" when args.a > 1\n    allow when args.b == 2 else \"y\"\n    limit ten per minute\n  }\n}\n";
        let errs = parse(FileId(0), text).unwrap_err();
        assert_eq!(errs.len(), 2, "{errs:#?}");
        assert!(
            errs[0].message.contains("found `deyn`"),
            "{}",
            errs[0].message
        );
        assert_eq!(errs[0].help.as_deref(), Some("did you mean `deny`?"));
        assert!(
            errs[1].message.contains("found `ten`"),
            "{}",
            errs[1].message
        );
    }

    #[test]
    fn a_statement_cut_short_before_a_brace_is_one_error() {
        // The brace closes the block after the broken rule: no cascade of
        // errors at the following braces and at the end of the file.
        let text = "server s {\n  tool a {\n    deny \"x\" when args.a >\n  }\n  tool b {\n    deny \"y\" whn args.b\n  }\n}\n";
        let errs = parse(FileId(0), text).unwrap_err();
        assert_eq!(errs.len(), 2, "{errs:#?}");
        assert!(errs[0].message.contains("found `}`"), "{}", errs[0].message);
        assert!(
            errs[1].message.contains("found `whn`"),
            "{}",
            errs[1].message
        );
        assert_eq!(errs[1].help.as_deref(), Some("did you mean `when`?"));
    }

    #[test]
    fn every_keyword_of_the_grammar_can_be_suggested() {
        let grammar = include_str!("../../../grammar/policy.pest");
        for line in grammar.lines() {
            if let Some(rest) = line.strip_prefix("kw_") {
                let kw = rest.split_whitespace().next().unwrap();
                assert!(KEYWORDS.contains(&kw), "`{kw}` is missing from KEYWORDS");
            }
        }
    }
}
