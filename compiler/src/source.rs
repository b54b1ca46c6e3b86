//! Source files, spans and diagnostics.
//!
//! Every IR node keeps a [`Span`] so any later pass can point at the policy
//! text. A [`Diagnostic`] renders like rustc's: the message, `--> file:line:col`,
//! the source line with carets under the span, extra labelled spans, and a help text.

use std::fmt::{self, Write as _};

/// Index of a file in a [`SourceMap`].
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash, Default)]
pub struct FileId(pub u32);

/// A byte range in one source file. Spans never take part in IR equality.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash, Default)]
pub struct Span {
    /// The file.
    pub file: FileId,
    /// First byte.
    pub start: usize,
    /// One past the last byte.
    pub end: usize,
}

impl Span {
    /// A span from `start` to `end` in `file`.
    pub fn new(file: FileId, start: usize, end: usize) -> Span {
        Span {
            file,
            start,
            end: end.max(start),
        }
    }

    /// The smallest span covering both.
    pub fn to(self, other: Span) -> Span {
        Span::new(
            self.file,
            self.start.min(other.start),
            self.end.max(other.end),
        )
    }
}

/// One policy source file.
#[derive(Debug, Clone)]
pub struct SourceFile {
    /// The path as shown in diagnostics and rule tables.
    pub name: String,
    /// The text.
    pub text: String,
    line_starts: Vec<usize>,
}

impl SourceFile {
    /// A file from its display name and text.
    pub fn new(name: impl Into<String>, text: impl Into<String>) -> SourceFile {
        let text = text.into();
        let mut line_starts = vec![0];
        line_starts.extend(text.match_indices('\n').map(|(i, _)| i + 1));
        SourceFile {
            name: name.into(),
            text,
            line_starts,
        }
    }

    /// 1-based line and column (in characters) of byte offset `pos`.
    pub fn line_col(&self, pos: usize) -> (u32, u32) {
        let pos = pos.min(self.text.len());
        let line = self.line_starts.partition_point(|&s| s <= pos) - 1;
        let start = self.line_starts[line];
        let col = self.text.get(start..pos).map_or(0, |s| s.chars().count());
        (line as u32 + 1, col as u32 + 1)
    }

    /// The text of 1-based line `line`, without its newline.
    pub fn line_text(&self, line: u32) -> &str {
        let i = (line as usize).saturating_sub(1);
        let start = self.line_starts.get(i).copied().unwrap_or(self.text.len());
        let end = self
            .line_starts
            .get(i + 1)
            .map_or(self.text.len(), |e| e - 1);
        self.text
            .get(start..end.max(start))
            .unwrap_or("")
            .trim_end_matches('\r')
    }
}

/// All files of one compilation.
#[derive(Debug, Clone, Default)]
pub struct SourceMap {
    files: Vec<SourceFile>,
}

impl SourceMap {
    /// An empty map.
    pub fn new() -> SourceMap {
        SourceMap::default()
    }

    /// Adds a file and returns its id.
    pub fn add(&mut self, file: SourceFile) -> FileId {
        self.files.push(file);
        FileId(self.files.len() as u32 - 1)
    }

    /// The file with this id.
    pub fn file(&self, id: FileId) -> &SourceFile {
        &self.files[id.0 as usize]
    }

    /// All files, in the order they were added.
    pub fn files(&self) -> impl Iterator<Item = (FileId, &SourceFile)> {
        self.files
            .iter()
            .enumerate()
            .map(|(i, f)| (FileId(i as u32), f))
    }

    /// `file:line:col` of a span's start.
    pub fn location(&self, span: Span) -> String {
        let f = self.file(span.file);
        let (l, c) = f.line_col(span.start);
        format!("{}:{l}:{c}", f.name)
    }
}

/// How bad a diagnostic is.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub enum Severity {
    /// The policy does not compile.
    Error,
    /// The policy compiles, but probably does not do what its author meant.
    Warning,
}

/// Where a diagnostic's message comes from, so callers can tell Intercept's
/// own validation texts from Portcullis's stricter checks.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum Origin {
    /// A message Intercept itself produces for this input, text unchanged.
    Intercept,
    /// A check Intercept does not make (strict YAML, unsafe semantics, lints).
    Portcullis,
}

/// A secondary span with its own short message.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Label {
    /// Where.
    pub span: Span,
    /// What about it.
    pub message: String,
}

/// A problem in a policy, with where it is and how to fix it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Diagnostic {
    /// Error or warning.
    pub severity: Severity,
    /// Intercept's text or ours.
    pub origin: Origin,
    /// The primary message (lowercase start, no trailing period, unless it is Intercept's text).
    pub message: String,
    /// The primary location.
    pub span: Option<Span>,
    /// Other locations worth showing.
    pub labels: Vec<Label>,
    /// How to fix it.
    pub help: Option<String>,
}

impl Diagnostic {
    /// An error with Intercept's message text.
    pub fn intercept(message: impl Into<String>, span: Span) -> Diagnostic {
        Diagnostic {
            severity: Severity::Error,
            origin: Origin::Intercept,
            message: message.into(),
            span: Some(span),
            labels: Vec::new(),
            help: None,
        }
    }

    /// An error found by a Portcullis check.
    pub fn error(message: impl Into<String>, span: Span) -> Diagnostic {
        Diagnostic {
            origin: Origin::Portcullis,
            ..Diagnostic::intercept(message, span)
        }
    }

    /// A warning.
    pub fn warning(message: impl Into<String>, span: Span) -> Diagnostic {
        Diagnostic {
            severity: Severity::Warning,
            ..Diagnostic::error(message, span)
        }
    }

    /// Adds a help text.
    pub fn with_help(mut self, help: impl Into<String>) -> Diagnostic {
        self.help = Some(help.into());
        self
    }

    /// Adds a labelled secondary span.
    pub fn with_label(mut self, span: Span, message: impl Into<String>) -> Diagnostic {
        self.labels.push(Label {
            span,
            message: message.into(),
        });
        self
    }

    /// True for errors.
    pub fn is_error(&self) -> bool {
        self.severity == Severity::Error
    }

    /// Renders the diagnostic against its sources (plain text, no colour).
    pub fn render(&self, map: &SourceMap) -> String {
        let mut out = String::new();
        let kind = match self.severity {
            Severity::Error => "error",
            Severity::Warning => "warning",
        };
        let _ = writeln!(out, "{kind}: {}", self.message);
        let mut spans: Vec<(Span, Option<&str>, bool)> = Vec::new();
        if let Some(s) = self.span {
            spans.push((s, None, true));
        }
        for l in &self.labels {
            spans.push((l.span, Some(&l.message), false));
        }
        let gutter = spans
            .iter()
            .map(|(s, _, _)| map.file(s.file).line_col(s.start).0.to_string().len())
            .max()
            .unwrap_or(1);
        let pad = " ".repeat(gutter);
        for (i, (span, label, primary)) in spans.iter().enumerate() {
            let file = map.file(span.file);
            let (line, col) = file.line_col(span.start);
            let arrow = if i == 0 { "-->" } else { ":::" };
            let _ = writeln!(out, "{pad}{arrow} {}:{line}:{col}", file.name);
            let text = file.line_text(line);
            let _ = writeln!(out, "{pad} |");
            let _ = writeln!(out, "{line:>gutter$} | {text}");
            let (end_line, end_col) = file.line_col(span.end);
            let width = if end_line == line {
                (end_col.saturating_sub(col)).max(1) as usize
            } else {
                (text.chars().count() + 1)
                    .saturating_sub(col as usize)
                    .max(1)
            };
            let mark = if *primary { "^" } else { "-" };
            let indent: String = text
                .chars()
                .take(col as usize - 1)
                .map(|c| if c == '\t' { '\t' } else { ' ' })
                .collect();
            let _ = write!(out, "{pad} | {indent}{}", mark.repeat(width));
            if let Some(l) = label {
                let _ = write!(out, " {l}");
            }
            out.push('\n');
        }
        if let Some(help) = &self.help {
            if !spans.is_empty() {
                let _ = writeln!(out, "{pad} |");
            }
            let _ = writeln!(out, "{pad} = help: {help}");
        }
        out
    }
}

/// A set of diagnostics from one run; errors first is NOT implied: order is the order found.
#[derive(Debug, Clone, Default)]
pub struct Diagnostics(pub Vec<Diagnostic>);

impl Diagnostics {
    /// Adds one.
    pub fn push(&mut self, d: Diagnostic) {
        self.0.push(d);
    }

    /// True if any is an error.
    pub fn has_errors(&self) -> bool {
        self.0.iter().any(Diagnostic::is_error)
    }

    /// Number of errors.
    pub fn error_count(&self) -> usize {
        self.0.iter().filter(|d| d.is_error()).count()
    }

    /// Renders all of them, separated by blank lines.
    pub fn render(&self, map: &SourceMap) -> String {
        let mut out = String::new();
        for (i, d) in self.0.iter().enumerate() {
            if i > 0 {
                out.push('\n');
            }
            out.push_str(&d.render(map));
        }
        out
    }
}

impl fmt::Display for Severity {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(match self {
            Severity::Error => "error",
            Severity::Warning => "warning",
        })
    }
}

/// The closest candidate to `word` by edit distance, if close enough to be a likely typo.
pub fn did_you_mean<'a>(word: &str, candidates: &[&'a str]) -> Option<&'a str> {
    let norm = |s: &str| s.to_ascii_lowercase().replace('-', "_");
    let w = norm(word);
    candidates
        .iter()
        .map(|c| (edit_distance(&w, &norm(c)), *c))
        .filter(|(d, c)| *d <= (c.len().max(3) / 3).max(1) + usize::from(w.len() > 5))
        .min_by_key(|(d, _)| *d)
        .map(|(_, c)| c)
}

/// Optimal-string-alignment distance: insertions, deletions, substitutions
/// and transpositions of neighbours (`deyn` is one edit from `deny`).
fn edit_distance(a: &str, b: &str) -> usize {
    let a: Vec<char> = a.chars().collect();
    let b: Vec<char> = b.chars().collect();
    let mut d = vec![vec![0usize; b.len() + 1]; a.len() + 1];
    for (i, row) in d.iter_mut().enumerate() {
        row[0] = i;
    }
    for (j, cell) in d[0].iter_mut().enumerate() {
        *cell = j;
    }
    for i in 1..=a.len() {
        for j in 1..=b.len() {
            let cost = usize::from(a[i - 1] != b[j - 1]);
            d[i][j] = (d[i - 1][j] + 1)
                .min(d[i][j - 1] + 1)
                .min(d[i - 1][j - 1] + cost);
            if i > 1 && j > 1 && a[i - 1] == b[j - 2] && a[i - 2] == b[j - 1] {
                d[i][j] = d[i][j].min(d[i - 2][j - 2] + 1);
            }
        }
    }
    d[a.len()][b.len()]
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn renders_with_caret_and_help() {
        let mut map = SourceMap::new();
        let f = map.add(SourceFile::new("p.yaml", "version: \"1\"\ndefualt: deny\n"));
        let d = Diagnostic::error("unknown key `defualt`", Span::new(f, 13, 20))
            .with_help("did you mean `default`?");
        assert_eq!(
            d.render(&map),
            "error: unknown key `defualt`\n --> p.yaml:2:1\n  |\n2 | defualt: deny\n  | ^^^^^^^\n  |\n  = help: did you mean `default`?\n"
        );
    }

    #[test]
    fn suggests_close_words_only() {
        assert_eq!(
            did_you_mean("defualt", &["default", "tools"]),
            Some("default")
        );
        assert_eq!(
            did_you_mean("on-deny", &["on_deny", "name"]),
            Some("on_deny")
        );
        assert_eq!(did_you_mean("zzz", &["default", "tools"]), None);
        assert_eq!(
            did_you_mean("deyn", &["allow", "deny", "limit"]),
            Some("deny")
        );
    }

    #[test]
    fn columns_count_characters() {
        let f = SourceFile::new("x", "é: 1\n  ab");
        assert_eq!(f.line_col(2), (1, 2));
        assert_eq!(f.line_col(8), (2, 3));
    }
}
