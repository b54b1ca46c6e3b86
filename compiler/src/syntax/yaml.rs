//! YAML front end, first stage: text to a span-annotated node tree, plus
//! strict typing of scalars.
//!
//! Built on `saphyr-parser`'s event stream (a maintained YAML 1.2 parser that
//! reports a position for every event) rather than a serde deserialiser, so
//! that every key and value keeps its span and every problem in a file is
//! reported in one run. The tree rejects what a policy has no use for and
//! what makes YAML ambiguous: duplicate keys, anchors and aliases, tags,
//! complex keys and multiple documents.

use saphyr_parser::{Event, Parser, ScalarStyle};

use crate::ir::Number;
use crate::source::{Diagnostic, FileId, Span};

/// A YAML node with its span.
#[derive(Debug, Clone)]
pub struct Node {
    /// What it is.
    pub value: NodeValue,
    /// Where it is.
    pub span: Span,
}

/// The three kinds of YAML node.
#[derive(Debug, Clone)]
pub enum NodeValue {
    /// A scalar.
    Scalar(Scalar),
    /// A sequence.
    Seq(Vec<Node>),
    /// A mapping with scalar keys, in source order, without duplicates.
    Map(Vec<(Key, Node)>),
}

/// A mapping key.
#[derive(Debug, Clone)]
pub struct Key {
    /// Its text.
    pub text: String,
    /// Where it is.
    pub span: Span,
}

/// A scalar's text and how it was written.
#[derive(Debug, Clone)]
pub struct Scalar {
    /// The value after YAML unescaping / folding.
    pub text: String,
    /// How it was written.
    pub style: Style,
}

/// How a scalar was written.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Style {
    /// Unquoted: subject to typing.
    Plain,
    /// `'...'` or `"..."`: always a string.
    Quoted,
    /// `|` or `>`: always a string.
    Block,
}

impl Node {
    /// The node as a scalar, if it is one.
    pub fn scalar(&self) -> Option<&Scalar> {
        match &self.value {
            NodeValue::Scalar(s) => Some(s),
            _ => None,
        }
    }

    /// True for a plain `null`, `~` or empty scalar.
    pub fn is_null(&self) -> bool {
        self.scalar()
            .is_some_and(|s| s.style == Style::Plain && is_null_text(&s.text))
    }

    /// The kind of node, for messages.
    pub fn kind_name(&self) -> &'static str {
        match &self.value {
            NodeValue::Scalar(_) if self.is_null() => "null",
            NodeValue::Scalar(_) => "a scalar",
            NodeValue::Seq(_) => "a list",
            NodeValue::Map(_) => "a mapping",
        }
    }

    /// The entry for `key`, if this is a mapping that has it.
    pub fn get(&self, key: &str) -> Option<&Node> {
        match &self.value {
            NodeValue::Map(entries) => entries.iter().find(|(k, _)| k.text == key).map(|(_, v)| v),
            _ => None,
        }
    }
}

fn is_null_text(t: &str) -> bool {
    matches!(t, "" | "~" | "null" | "Null" | "NULL")
}

/// Parses a YAML document. `Ok(None)` for an empty file (no document).
///
/// A syntax error is returned alone (the parser cannot continue past it);
/// structural problems (duplicate keys, aliases, tags, ...) are all collected.
pub fn parse(file: FileId, text: &str) -> Result<Option<Node>, Vec<Diagnostic>> {
    let offsets = CharOffsets::new(text);
    let mut b = Builder {
        parser: Parser::new_from_str(text),
        file,
        offsets,
        diags: Vec::new(),
    };
    let root = b.document()?;
    if b.diags.is_empty() {
        Ok(root)
    } else {
        Err(b.diags)
    }
}

/// Maps saphyr's character indices to byte offsets.
struct CharOffsets(Vec<usize>);

impl CharOffsets {
    fn new(text: &str) -> CharOffsets {
        let mut v: Vec<usize> = text.char_indices().map(|(i, _)| i).collect();
        v.push(text.len());
        CharOffsets(v)
    }

    fn byte(&self, char_index: usize) -> usize {
        self.0
            .get(char_index)
            .copied()
            .unwrap_or_else(|| *self.0.last().unwrap_or(&0))
    }
}

struct Builder<'a> {
    parser: Parser<'a, saphyr_parser::StrInput<'a>>,
    file: FileId,
    offsets: CharOffsets,
    diags: Vec<Diagnostic>,
}

type Ev<'a> = (Event<'a>, saphyr_parser::Span);

impl<'a> Builder<'a> {
    fn span(&self, s: saphyr_parser::Span) -> Span {
        Span::new(
            self.file,
            self.offsets.byte(s.start.index()),
            self.offsets.byte(s.end.index()),
        )
    }

    fn next(&mut self) -> Result<Ev<'a>, Vec<Diagnostic>> {
        match self.parser.next_event() {
            Some(Ok(ev)) => Ok(ev),
            Some(Err(e)) => {
                let pos = self.offsets.byte(e.marker().index());
                let span = Span::new(self.file, pos, pos + 1);
                let line = e.marker().line();
                Err(vec![
                    Diagnostic::intercept(
                        format!("parsing config file: yaml: line {line}: {}", e.info()),
                        span,
                    )
                    .with_help(
                        "fix the YAML syntax here; quoted strings and [lists] must be closed",
                    ),
                ])
            }
            None => Err(vec![Diagnostic::intercept(
                "parsing config file: yaml: unexpected end of input",
                Span::new(self.file, 0, 0),
            )]),
        }
    }

    fn document(&mut self) -> Result<Option<Node>, Vec<Diagnostic>> {
        let mut root = None;
        loop {
            let (ev, span) = self.next()?;
            match ev {
                Event::StreamStart | Event::DocumentEnd | Event::Nothing => {}
                Event::StreamEnd => return Ok(root),
                Event::DocumentStart(_) => {
                    let (ev, s) = self.next()?;
                    let node = self.node(ev, s)?;
                    if root.is_some() {
                        self.diags.push(
                            Diagnostic::error(
                                "a policy file holds one YAML document",
                                self.span(span),
                            )
                            .with_help("remove the `---` and the document after it, or put it in its own file"),
                        );
                    } else {
                        root = Some(node);
                    }
                }
                _ => {
                    let node = self.node(ev, span)?;
                    root.get_or_insert(node);
                }
            }
        }
    }

    fn check_props(&mut self, anchor: usize, tag: bool, span: Span) {
        if anchor != 0 {
            self.diags.push(
                Diagnostic::error("YAML anchors are not supported in policies", span)
                    .with_help("write the value out in full; anchors and aliases make a policy harder to review"),
            );
        }
        if tag {
            self.diags.push(
                Diagnostic::error("YAML tags are not supported in policies", span)
                    .with_help("remove the `!tag`; quote the value if it must be a string"),
            );
        }
    }

    fn node(&mut self, ev: Event<'a>, s: saphyr_parser::Span) -> Result<Node, Vec<Diagnostic>> {
        let span = self.span(s);
        match ev {
            Event::Scalar(text, style, anchor, tag) => {
                self.check_props(anchor, tag.is_some(), span);
                let style = match style {
                    ScalarStyle::Plain => Style::Plain,
                    ScalarStyle::SingleQuoted | ScalarStyle::DoubleQuoted => Style::Quoted,
                    _ => Style::Block,
                };
                Ok(Node {
                    value: NodeValue::Scalar(Scalar {
                        text: text.into_owned(),
                        style,
                    }),
                    span,
                })
            }
            Event::SequenceStart(anchor, tag) => {
                self.check_props(anchor, tag.is_some(), span);
                let mut items = Vec::new();
                let mut end = span;
                loop {
                    let (ev, s) = self.next()?;
                    if let Event::SequenceEnd = ev {
                        end = end.to(self.span(s));
                        break;
                    }
                    let item = self.node(ev, s)?;
                    end = end.to(item.span);
                    items.push(item);
                }
                Ok(Node {
                    value: NodeValue::Seq(items),
                    span: Span::new(self.file, span.start, end.end),
                })
            }
            Event::MappingStart(anchor, tag) => {
                self.check_props(anchor, tag.is_some(), span);
                let mut entries: Vec<(Key, Node)> = Vec::new();
                let mut end = span.end;
                loop {
                    let (ev, s) = self.next()?;
                    if let Event::MappingEnd = ev {
                        break;
                    }
                    let key_node = self.node(ev, s)?;
                    let (kev, ks) = self.next()?;
                    let value = self.node(kev, ks)?;
                    end = end.max(value.span.end).max(key_node.span.end);
                    let Some(key) = key_node.scalar() else {
                        self.diags.push(
                            Diagnostic::error("mapping keys must be plain names", key_node.span)
                                .with_help("use a string as the key"),
                        );
                        continue;
                    };
                    let key = Key {
                        text: key.text.clone(),
                        span: key_node.span,
                    };
                    if let Some((first, _)) = entries.iter().find(|(k, _)| k.text == key.text) {
                        let line = first.span;
                        self.diags.push(
                            Diagnostic::intercept(
                                format!(
                                    "parsing config file: yaml: mapping key {} already defined",
                                    portcullis_core::policy::go_quote(&key.text)
                                ),
                                key.span,
                            )
                            .with_label(line, "first defined here")
                            .with_help("remove one of the two entries; YAML parsers disagree on which one wins"),
                        );
                        continue;
                    }
                    entries.push((key, value));
                }
                Ok(Node {
                    value: NodeValue::Map(entries),
                    span: Span::new(self.file, span.start, end),
                })
            }
            Event::Alias(_) => {
                self.diags.push(
                    Diagnostic::error("YAML aliases are not supported in policies", span)
                        .with_help("write the value out in full"),
                );
                Ok(Node {
                    value: NodeValue::Scalar(Scalar {
                        text: String::new(),
                        style: Style::Plain,
                    }),
                    span,
                })
            }
            other => Err(vec![Diagnostic::intercept(
                format!("parsing config file: yaml: unexpected {other:?}"),
                span,
            )]),
        }
    }
}

// ---------------------------------------------------------------------------
// Scalar typing.

/// A condition value with explicit, portable typing.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Typed {
    /// `null`, `~`, empty.
    Null,
    /// `true` / `false` (also `True`, `TRUE`, ...).
    Bool(bool),
    /// A finite number, normalised to JSON syntax.
    Num(Number),
    /// A string.
    Str(String),
    /// A list (of nodes, typed on demand).
    List,
    /// A mapping.
    Map,
}

/// Types a value node. Plain scalars that YAML 1.1 (Go's yaml.v3, which
/// Intercept uses) and YAML 1.2 read differently, or that look like one thing
/// and are another, are errors with a fix: unquoted dates, leading-zero
/// integers (octal in Intercept), `1_000`, `0b101`, `yes`/`no`/`on`/`off`, `.inf`, `.nan`.
pub fn typed(node: &Node) -> Result<Typed, Diagnostic> {
    let s = match &node.value {
        NodeValue::Seq(_) => return Ok(Typed::List),
        NodeValue::Map(_) => return Ok(Typed::Map),
        NodeValue::Scalar(s) => s,
    };
    if s.style != Style::Plain {
        return Ok(Typed::Str(s.text.clone()));
    }
    let t = s.text.as_str();
    if is_null_text(t) {
        return Ok(Typed::Null);
    }
    match t {
        "true" | "True" | "TRUE" => return Ok(Typed::Bool(true)),
        "false" | "False" | "FALSE" => return Ok(Typed::Bool(false)),
        _ => {}
    }
    let ambiguous = |why: &str, fix: String| {
        Diagnostic::error(format!("ambiguous value `{t}`: {why}"), node.span).with_help(fix)
    };
    let lower = t.to_ascii_lowercase();
    if matches!(lower.as_str(), "yes" | "no" | "on" | "off" | "y" | "n") {
        return Err(ambiguous(
            "YAML 1.1 reads it as a boolean, YAML 1.2 as a string",
            format!("write \"{t}\" for the string, or true / false for a boolean"),
        ));
    }
    if matches!(lower.trim_start_matches(['+', '-']), ".inf" | ".nan") {
        return Err(
            Diagnostic::error(format!("`{t}` is not a finite number"), node.span).with_help(
                format!("use a finite number, or write \"{t}\" for the string"),
            ),
        );
    }
    if looks_like_date(t) {
        return Err(ambiguous(
            "an unquoted date is a timestamp in YAML 1.1 and never equals the string",
            format!("write \"{t}\" to compare with the string"),
        ));
    }
    let body = t.strip_prefix(['+', '-']).unwrap_or(t);
    let neg = t.starts_with('-');
    if let Some(hex) = body.strip_prefix("0x")
        && let Ok(v) = u128::from_str_radix(hex, 16)
    {
        return Ok(Typed::Num(signed(neg, v.to_string())));
    }
    if let Some(oct) = body.strip_prefix("0o")
        && let Ok(v) = u128::from_str_radix(oct, 8)
    {
        return Ok(Typed::Num(signed(neg, v.to_string())));
    }
    if body.starts_with("0b") && body.len() > 2 && body[2..].bytes().all(|b| b == b'0' || b == b'1')
    {
        return Err(ambiguous(
            "YAML 1.1 reads it as a binary integer, YAML 1.2 as a string",
            format!(
                "write {} for the number, or \"{t}\" for the string",
                u128::from_str_radix(&body[2..], 2).unwrap_or(0)
            ),
        ));
    }
    if body.contains('_')
        && body.replace('_', "").parse::<f64>().is_ok()
        && body.starts_with(|c: char| c.is_ascii_digit())
    {
        let plain = t.replace('_', "");
        return Err(ambiguous(
            "YAML 1.1 ignores the underscores, YAML 1.2 reads a string",
            format!("write {plain} for the number, or \"{t}\" for the string"),
        ));
    }
    if !body.is_empty() && body.bytes().all(|b| b.is_ascii_digit()) {
        if body.len() > 1 && body.starts_with('0') {
            let octal = u128::from_str_radix(body, 8).ok();
            return Err(ambiguous(
                "a leading zero makes it octal in YAML 1.1 (Intercept reads 017 as 15)",
                match octal {
                    Some(o) => format!(
                        "write {} for decimal, {o} for what Intercept reads, or \"{t}\" for the string",
                        body.trim_start_matches('0').to_string()
                            + if body.trim_start_matches('0').is_empty() {
                                "0"
                            } else {
                                ""
                            }
                    ),
                    None => format!(
                        "write {} for decimal, or \"{t}\" for the string",
                        body.trim_start_matches('0')
                    ),
                },
            ));
        }
        return Ok(Typed::Num(signed(neg, body.to_string())));
    }
    if let Some(n) = yaml_float(body) {
        return Ok(Typed::Num(signed(neg, n)));
    }
    Ok(Typed::Str(t.to_string()))
}

fn signed(neg: bool, digits: String) -> Number {
    let text = if neg && digits.trim_start_matches(['0', '.']).is_empty() {
        digits
    } else if neg {
        format!("-{digits}")
    } else {
        digits
    };
    Number::parse(&text).unwrap_or_else(|| Number::from_u64(0))
}

/// YAML float syntax (`1.5`, `.5`, `5.`, `1e3`, `1.5E-3`) to JSON number text.
fn yaml_float(body: &str) -> Option<String> {
    let (mant, exp) = match body.find(['e', 'E']) {
        Some(i) => (&body[..i], Some(&body[i + 1..])),
        None => (body, None),
    };
    let (int, frac) = match mant.find('.') {
        Some(i) => (&mant[..i], &mant[i + 1..]),
        None => (mant, ""),
    };
    if int.is_empty() && frac.is_empty() {
        return None;
    }
    if !int.bytes().all(|b| b.is_ascii_digit()) || !frac.bytes().all(|b| b.is_ascii_digit()) {
        return None;
    }
    if !mant.contains('.') && exp.is_none() {
        return None; // plain integers are handled by the caller
    }
    let mut out = String::new();
    let int = int.trim_start_matches('0');
    out.push_str(if int.is_empty() { "0" } else { int });
    if !frac.is_empty() {
        out.push('.');
        out.push_str(frac);
    }
    if let Some(e) = exp {
        let digits = e.strip_prefix(['+', '-']).unwrap_or(e);
        if digits.is_empty() || !digits.bytes().all(|b| b.is_ascii_digit()) {
            return None;
        }
        out.push('e');
        out.push_str(e);
    }
    Number::parse(&out).map(|_| out)
}

/// `2026-01-01`, `2026-1-1`, `2026-01-01T10:00:00Z`, ...: what YAML 1.1 types as a timestamp.
fn looks_like_date(t: &str) -> bool {
    let b = t.as_bytes();
    if b.len() < 8 || !b[..4].iter().all(u8::is_ascii_digit) || b[4] != b'-' {
        return false;
    }
    let rest = &t[5..];
    let mut parts = rest.splitn(2, '-');
    let month = parts.next().unwrap_or("");
    let day_and_time = parts.next().unwrap_or("");
    let day: String = day_and_time
        .chars()
        .take_while(char::is_ascii_digit)
        .collect();
    (1..=2).contains(&month.len())
        && month.bytes().all(|c| c.is_ascii_digit())
        && (1..=2).contains(&day.len())
}

#[cfg(test)]
mod tests {
    use super::*;

    fn parse_ok(text: &str) -> Node {
        parse(FileId(0), text).unwrap().unwrap()
    }

    fn typed_of(v: &str) -> Result<Typed, String> {
        let n = parse_ok(&format!("v: {v}\n"));
        typed(n.get("v").unwrap()).map_err(|d| d.message)
    }

    fn num(s: &str) -> Typed {
        Typed::Num(Number::parse(s).unwrap())
    }

    #[test]
    fn scalars_type_portably() {
        assert_eq!(typed_of("5"), Ok(num("5")));
        assert_eq!(typed_of("-5"), Ok(num("-5")));
        assert_eq!(typed_of("+5"), Ok(num("5")));
        assert_eq!(typed_of("0"), Ok(num("0")));
        assert_eq!(typed_of("99.5"), Ok(num("99.5")));
        assert_eq!(typed_of(".5"), Ok(num("0.5")));
        assert_eq!(typed_of("5."), Ok(num("5")));
        assert_eq!(typed_of("1e3"), Ok(num("1e3")));
        assert_eq!(typed_of("0x1F"), Ok(num("31")));
        assert_eq!(typed_of("0o17"), Ok(num("15")));
        assert_eq!(typed_of("9007199254740993"), Ok(num("9007199254740993")));
        assert_eq!(typed_of("\"5\""), Ok(Typed::Str("5".into())));
        assert_eq!(typed_of("True"), Ok(Typed::Bool(true)));
        assert_eq!(typed_of("~"), Ok(Typed::Null));
        assert_eq!(typed_of("main"), Ok(Typed::Str("main".into())));
        assert_eq!(
            typed_of("'2026-01-01'"),
            Ok(Typed::Str("2026-01-01".into()))
        );
        assert_eq!(typed_of("[1]"), Ok(Typed::List));
    }

    #[test]
    fn ambiguous_scalars_are_errors() {
        for v in [
            "017",
            "2026-01-01",
            "1_000",
            "yes",
            "Off",
            "0b101",
            ".inf",
            "-.Inf",
            ".nan",
        ] {
            assert!(typed_of(v).is_err(), "{v} accepted");
        }
        assert!(typed_of("017").unwrap_err().contains("octal"));
    }

    #[test]
    fn duplicate_keys_aliases_and_tags_are_rejected() {
        let e = parse(FileId(0), "a: 1\nb: 2\na: 3\n").unwrap_err();
        assert_eq!(e.len(), 1);
        assert!(
            e[0].message.contains(r#"mapping key "a" already defined"#),
            "{}",
            e[0].message
        );
        assert_eq!(e[0].labels.len(), 1);
        assert_eq!(parse(FileId(0), "a: &x 1\nb: *x\n").unwrap_err().len(), 2);
        assert_eq!(parse(FileId(0), "a: !!str 1\n").unwrap_err().len(), 1);
        assert_eq!(parse(FileId(0), "a: 1\n---\nb: 2\n").unwrap_err().len(), 1);
    }

    #[test]
    fn syntax_errors_carry_line() {
        let e = parse(
            FileId(0),
            "version: \"1\"\ntools:\n  t:\n    rules:\n      - name: \"unclosed\n",
        )
        .unwrap_err();
        assert!(
            e[0].message.starts_with("parsing config file: "),
            "{}",
            e[0].message
        );
        assert!(e[0].message.contains("line 5"), "{}", e[0].message);
    }

    #[test]
    fn spans_are_bytes() {
        let text = "é: x\nkey: value\n";
        let n = parse_ok(text);
        let v = n.get("key").unwrap();
        assert_eq!(&text[v.span.start..v.span.end], "value");
    }

    #[test]
    fn empty_file_has_no_document() {
        assert!(parse(FileId(0), "").unwrap().is_none());
        assert!(parse(FileId(0), "# just a comment\n").unwrap().is_none());
    }
}
