//! A JSON-with-comments reader that keeps the byte span of every value, so
//! `portcullis init` can edit a client's configuration surgically: only the
//! spans it changes are rewritten, every other byte (comments, layout, key
//! order, other keys) stays as it was.
//!
//! It accepts what the MCP clients' files may hold: JSON, plus `//` and
//! `/* */` comments and trailing commas (VS Code's JSONC), and a leading
//! byte-order mark. Anything else, and a duplicate key in an object (which
//! clients resolve differently), is an error with line and column: init
//! never edits a file it cannot read unambiguously.

/// A value and where it is in the text (`start..end`, bytes).
#[derive(Debug, Clone)]
pub struct Value {
    /// First byte of the value.
    pub start: usize,
    /// One past its last byte.
    pub end: usize,
    /// What it is.
    pub kind: Kind,
}

/// One object member.
#[derive(Debug, Clone)]
pub struct Member {
    /// The key, decoded.
    pub key: String,
    /// First byte of the key's opening quote.
    pub key_start: usize,
    /// The value.
    pub value: Value,
}

/// The kinds of value.
#[derive(Debug, Clone)]
pub enum Kind {
    /// An object, members in file order.
    Object(Vec<Member>),
    /// An array.
    Array(Vec<Value>),
    /// A string, decoded.
    Str(String),
    /// A number, `true`, `false` or `null` (init never needs their value).
    Scalar,
}

impl Value {
    /// The member `key` of an object.
    pub fn get(&self, key: &str) -> Option<&Member> {
        match &self.kind {
            Kind::Object(m) => m.iter().find(|m| m.key == key),
            _ => None,
        }
    }

    /// The string value of member `key`.
    pub fn get_str(&self, key: &str) -> Option<&str> {
        match &self.get(key)?.value.kind {
            Kind::Str(s) => Some(s),
            _ => None,
        }
    }
}

/// A parse error: the message and its 1-based line and column.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Error {
    /// What is wrong.
    pub message: String,
    /// Line, from 1.
    pub line: usize,
    /// Column (characters), from 1.
    pub col: usize,
}

/// Line and column (1-based, in characters) of byte `at` of `text`.
pub fn line_col(text: &str, at: usize) -> (usize, usize) {
    let before = &text[..at.min(text.len())];
    let line = before.matches('\n').count() + 1;
    let col = before.rsplit('\n').next().unwrap_or("").chars().count() + 1;
    (line, col)
}

/// Parses a whole document: one value, nothing after it but blanks and comments.
pub fn parse(text: &str) -> Result<Value, Error> {
    let mut p = Parser {
        text,
        b: text.as_bytes(),
        i: 0,
        depth: 0,
    };
    if text.starts_with('\u{feff}') {
        p.i = 3;
    }
    p.blank()?;
    let v = p.value()?;
    p.blank()?;
    if p.i < p.b.len() {
        return Err(p.err("unexpected text after the JSON value"));
    }
    Ok(v)
}

struct Parser<'a> {
    text: &'a str,
    b: &'a [u8],
    i: usize,
    depth: usize,
}

impl Parser<'_> {
    fn err(&self, msg: &str) -> Error {
        self.err_at(self.i, msg)
    }

    fn err_at(&self, at: usize, msg: &str) -> Error {
        let (line, col) = line_col(self.text, at);
        Error {
            message: msg.to_string(),
            line,
            col,
        }
    }

    /// Skips whitespace and comments.
    fn blank(&mut self) -> Result<(), Error> {
        loop {
            match self.b.get(self.i) {
                Some(b' ' | b'\t' | b'\n' | b'\r') => self.i += 1,
                Some(b'/') if self.b.get(self.i + 1) == Some(&b'/') => {
                    while self.i < self.b.len() && self.b[self.i] != b'\n' {
                        self.i += 1;
                    }
                }
                Some(b'/') if self.b.get(self.i + 1) == Some(&b'*') => {
                    let start = self.i;
                    match self.text[self.i + 2..].find("*/") {
                        Some(n) => self.i += 2 + n + 2,
                        None => return Err(self.err_at(start, "unterminated /* comment")),
                    }
                }
                _ => return Ok(()),
            }
        }
    }

    fn value(&mut self) -> Result<Value, Error> {
        let start = self.i;
        let kind = match self.b.get(self.i) {
            None => return Err(self.err("unexpected end of file: expected a value")),
            Some(b'{') => self.nested(|p| p.object())?,
            Some(b'[') => self.nested(|p| p.array())?,
            Some(b'"') => Kind::Str(self.string()?),
            Some(b't') => self.word("true")?,
            Some(b'f') => self.word("false")?,
            Some(b'n') => self.word("null")?,
            Some(b'-' | b'0'..=b'9') => self.number()?,
            Some(_) => {
                return Err(self
                    .err("expected a value (object, array, string, number, true, false or null)"));
            }
        };
        Ok(Value {
            start,
            end: self.i,
            kind,
        })
    }

    fn nested(&mut self, f: impl FnOnce(&mut Self) -> Result<Kind, Error>) -> Result<Kind, Error> {
        self.depth += 1;
        if self.depth > 128 {
            return Err(self.err("nested more than 128 levels deep"));
        }
        let k = f(self);
        self.depth -= 1;
        k
    }

    fn object(&mut self) -> Result<Kind, Error> {
        self.i += 1; // {
        let mut members: Vec<Member> = Vec::new();
        loop {
            self.blank()?;
            match self.b.get(self.i) {
                Some(b'}') => {
                    self.i += 1;
                    return Ok(Kind::Object(members));
                }
                Some(b'"') => {}
                None => return Err(self.err("unexpected end of file: expected `}`")),
                Some(_) => return Err(self.err("expected a key in double quotes or `}`")),
            }
            let key_start = self.i;
            let key = self.string()?;
            if members.iter().any(|m| m.key == key) {
                return Err(self.err_at(
                    key_start,
                    &format!("duplicate key \"{key}\" (clients disagree on which one counts)"),
                ));
            }
            self.blank()?;
            if self.b.get(self.i) != Some(&b':') {
                return Err(self.err("expected `:` after the key"));
            }
            self.i += 1;
            self.blank()?;
            let value = self.value()?;
            members.push(Member {
                key,
                key_start,
                value,
            });
            self.blank()?;
            match self.b.get(self.i) {
                Some(b',') => self.i += 1,
                Some(b'}') => {}
                None => return Err(self.err("unexpected end of file: expected `,` or `}`")),
                Some(_) => return Err(self.err("expected `,` or `}`")),
            }
        }
    }

    fn array(&mut self) -> Result<Kind, Error> {
        self.i += 1; // [
        let mut items = Vec::new();
        loop {
            self.blank()?;
            match self.b.get(self.i) {
                Some(b']') => {
                    self.i += 1;
                    return Ok(Kind::Array(items));
                }
                None => return Err(self.err("unexpected end of file: expected `]`")),
                _ => {}
            }
            items.push(self.value()?);
            self.blank()?;
            match self.b.get(self.i) {
                Some(b',') => self.i += 1,
                Some(b']') => {}
                None => return Err(self.err("unexpected end of file: expected `,` or `]`")),
                Some(_) => return Err(self.err("expected `,` or `]`")),
            }
        }
    }

    fn word(&mut self, w: &str) -> Result<Kind, Error> {
        if self.text[self.i..].starts_with(w) {
            self.i += w.len();
            Ok(Kind::Scalar)
        } else {
            Err(self.err("expected a value (object, array, string, number, true, false or null)"))
        }
    }

    fn number(&mut self) -> Result<Kind, Error> {
        let start = self.i;
        while self.i < self.b.len()
            && matches!(
                self.b[self.i],
                b'-' | b'+' | b'.' | b'e' | b'E' | b'0'..=b'9'
            )
        {
            self.i += 1;
        }
        let text = &self.text[start..self.i];
        if text.parse::<f64>().is_err() || text.starts_with('+') {
            return Err(self.err_at(start, &format!("`{text}` is not a JSON number")));
        }
        Ok(Kind::Scalar)
    }

    fn string(&mut self) -> Result<String, Error> {
        let start = self.i;
        self.i += 1; // "
        let mut out = String::new();
        loop {
            let Some(&c) = self.b.get(self.i) else {
                return Err(self.err_at(start, "unterminated string"));
            };
            match c {
                b'"' => {
                    self.i += 1;
                    return Ok(out);
                }
                b'\\' => {
                    let esc = self.b.get(self.i + 1).copied();
                    self.i += 2;
                    match esc {
                        Some(b'"') => out.push('"'),
                        Some(b'\\') => out.push('\\'),
                        Some(b'/') => out.push('/'),
                        Some(b'b') => out.push('\u{8}'),
                        Some(b'f') => out.push('\u{c}'),
                        Some(b'n') => out.push('\n'),
                        Some(b'r') => out.push('\r'),
                        Some(b't') => out.push('\t'),
                        Some(b'u') => {
                            let hi = self.hex4()?;
                            let c = if (0xd800..0xdc00).contains(&hi)
                                && self.text[self.i..].starts_with("\\u")
                            {
                                self.i += 2;
                                let lo = self.hex4()?;
                                char::from_u32(
                                    0x10000 + ((hi - 0xd800) << 10) + (lo.wrapping_sub(0xdc00)),
                                )
                            } else {
                                char::from_u32(hi)
                            };
                            out.push(c.unwrap_or('\u{fffd}'));
                        }
                        _ => return Err(self.err_at(self.i - 2, "invalid escape in a string")),
                    }
                }
                0..=0x1f => {
                    return Err(self.err("a control character in a string (write it as an escape)"));
                }
                _ => {
                    let ch = self.text[self.i..].chars().next().expect("in bounds");
                    out.push(ch);
                    self.i += ch.len_utf8();
                }
            }
        }
    }

    fn hex4(&mut self) -> Result<u32, Error> {
        let digits = self.text.get(self.i..self.i + 4).unwrap_or("");
        match u32::from_str_radix(digits, 16) {
            Ok(v) if digits.len() == 4 => {
                self.i += 4;
                Ok(v)
            }
            _ => Err(self.err("expected four hex digits after \\u")),
        }
    }
}

/// A JSON string literal for `s`.
pub fn quote(s: &str) -> String {
    serde_json::to_string(s).expect("a string serialises")
}

/// Applies non-overlapping edits (`start..end` replaced by text) to `text`.
pub fn apply(text: &str, mut edits: Vec<(usize, usize, String)>) -> String {
    edits.sort_by_key(|e| e.0);
    let mut out = String::with_capacity(text.len() + 256);
    let mut at = 0;
    for (start, end, new) in edits {
        out.push_str(&text[at..start]);
        out.push_str(&new);
        at = end;
    }
    out.push_str(&text[at..]);
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn comments_trailing_commas_and_spans() {
        let text = "// c\n{\n  /* x */ \"a\": [1, \"b\",], // t\n  \"c\": {\"d\": \"\\u00e9\\ud83d\\ude00\"},\n}\n";
        let v = parse(text).unwrap();
        let a = &v.get("a").unwrap().value;
        assert_eq!(&text[a.start..a.end], "[1, \"b\",]");
        let c = &v.get("c").unwrap().value;
        assert_eq!(c.get_str("d"), Some("é😀"));
    }

    #[test]
    fn errors_have_line_and_column() {
        let e = parse("{\n  \"a\": 1\n  \"b\": 2\n}").unwrap_err();
        assert_eq!((e.line, e.col), (3, 3), "{e:?}");
        let e = parse("{\"a\": 1, \"a\": 2}").unwrap_err();
        assert!(e.message.contains("duplicate key"), "{e:?}");
        assert!(parse("{\"a\": tru}").is_err());
        assert!(parse("{} x").is_err());
        assert!(parse("{\"a\": 01x}").is_err());
    }
}
