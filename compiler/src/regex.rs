//! Go (RE2) regular expressions, evaluated with Rust engines.
//!
//! Policies written for PolicyLayer Intercept carry regexes with Go `regexp` (RE2) semantics.
//! We evaluate them with two engines that must agree with Go and with each other:
//! `regex::Regex` (the reference interpreter) and a dense DFA from `regex-automata` that is
//! built and serialised at build time, embedded in generated code and loaded zero-copy.
//! Matching is always Go's `MatchString`: an unanchored "is there a match anywhere" test.
//!
//! # Approach
//!
//! The Go pattern is scanned with Go's own lexical rules (mirroring `regexp/syntax/parse.go`)
//! and every escape, bracket class, flag group and counted repetition is re-emitted in a
//! canonical Rust spelling. Scanning ourselves, rather than parsing with regex-syntax and
//! patching its AST, is deliberate: several Go spellings *parse* in regex-syntax but mean
//! something else there (`[a&&b]`, `[a[b]`, `a{,3}`, `a{01}`, `\<`, `\b{start}`,
//! `(?P<a[0]>x)`), so the Rust parser must never see the original text. Structure (groups,
//! alternation, placement of repetition operators) is then validated by regex-syntax, plus
//! Go's extra rules: no stacked repetition operators (`a**`) and at most 1000 copies of
//! anything via nested counted repetition.
//!
//! # Go semantics reproduced
//!
//! - `\d`, `\w`, `\s`, `\b`, `\B` and their negations are ASCII-only. Go's `\s` is
//!   `[\t\n\f\r ]` (no `\v`). `\b`/`\B` become `(?-u:\b)`/`(?-u:\B)`, which dense DFAs support;
//!   a pattern using `\B` is also anchored to advance whole characters (see
//!   [`translate_go_with_flags`]), because `(?-u:\B)` alone also holds inside a character.
//! - `(?i)\w` also matches `ſ` (U+017F) and `K` (U+212A), as in Go, because the ASCII class is
//!   emitted in Unicode mode and case-folded like Go's `appendFoldedClass`.
//! - Bracket classes: `[` inside a class is a literal, `&&`/`--`/`~~` are literals, `]` first is
//!   a literal, `-` is a literal unless it forms a range, POSIX `[:name:]` and `[:^name:]`.
//! - `{` that does not start a valid `{n}`, `{n,}` or `{n,m}` (no leading zeros) is a literal;
//!   counts above 1000 are errors.
//! - Escapes: octal (`\0`, `\012`, `\101`), `\xHH`, `\x{H..}`, `\a\f\n\r\t\v`, any escaped
//!   ASCII punctuation (including `\<`, `\>`, `\_`). `\1`..`\9`, `\u`, `\e`, `\Z`, `\C` and
//!   other letters are errors, as in Go.
//! - `\Q...\E` (not supported by regex-syntax) becomes escaped literals.
//! - `\pX`, `\p{Name}`, `\p{^Name}`, `\PX`: general categories and scripts (emitted as explicit
//!   `gc=`/`sc=` so regex-syntax never resolves them to a binary property), plus `Any`,
//!   `Assigned` and `ASCII`. Go's `\p{C}` excludes unassigned code points (unlike Unicode's
//!   `C`), and `\p{Cs}` (surrogates) can never match a valid string.
//! - Flag groups `(?imsU-imsU)` and `(?imsU-imsU:...)` with Go's rules (repeats allowed, `(?)`
//!   is a no-op); other flags such as `x`, `u`, `R` are errors.
//! - Look-around and backreferences are errors.
//! - `(?i)` uses Unicode simple case folding in both Go and Rust; the orbits agree.
//! - `.` excludes only `\n`; `^`/`$` are text anchors unless `(?m)`; `$` never matches before a
//!   final newline. These defaults are the same in both dialects.
//!
//! # Known residual differences
//!
//! - Unicode tables come from regex-syntax (its Unicode version), not from Go's `unicode`
//!   package, so code points assigned in one version but not the other may classify differently.
//! - Unicode class names are matched loosely (case, `_`, `-` and spaces ignored; aliases such
//!   as `Latn` accepted), like recent Go releases; older Go releases reject some of these.
//! - Go applies a repetition operator that follows a flag group to the atom before the group
//!   (`a(?i)*` is `a*`); the flags are moved after the operator. If that moves a `(?U)` past
//!   the operator, its greediness differs from Go's, which never changes whether a pattern
//!   matches. A second operator separated from the first only by a flag group or an empty
//!   `\Q\E` (`a+(?i)?`, Go's `(?:a+)?`) is rejected, although Go accepts it.
//! - Capture names that regex-syntax cannot keep (starting with a digit, or repeated, both legal
//!   in Go) become unnamed groups; names never affect whether a pattern matches.

use std::collections::HashSet;
use std::fmt;
use std::fmt::Write as _;
use std::ops::Range;

use ::regex_automata::Input;
use ::regex_automata::dfa::{Automaton, StartKind, dense};
use ::regex_syntax::ast::{self, Ast, RepetitionKind, RepetitionRange};

/// A Go (RE2) pattern translated to the Rust regex dialect with identical match semantics.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct GoRegex {
    /// The pattern exactly as written in the policy (without any DSL flags); error spans index
    /// into this string.
    pub source: String,
    /// The equivalent pattern for `regex::Regex` and `regex-automata` (default syntax options).
    pub translated: String,
}

/// Errors carry a short, lowercase, human message without trailing period, e.g.
/// "look-around is not supported (RE2 syntax)", "backreferences are not supported (RE2 syntax)",
/// "unclosed character class", "repetition count exceeds 1000", plus the byte offset range in the
/// ORIGINAL pattern where known (for diagnostics with a caret).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct RegexError {
    /// Short lowercase message without trailing period.
    pub message: String,
    /// Byte range in the original pattern, when the error can be located there.
    pub span: Option<Range<usize>>,
}

impl RegexError {
    fn new(message: impl Into<String>, span: Option<Range<usize>>) -> Self {
        RegexError {
            message: message.into(),
            span,
        }
    }

    fn at(message: impl Into<String>, span: Range<usize>) -> Self {
        RegexError::new(message, Some(span))
    }
}

impl fmt::Display for RegexError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.message)
    }
}

impl std::error::Error for RegexError {}

/// Go's limit on a counted repetition, and on the product of nested counted repetitions.
const MAX_REPEAT: u64 = 1000;

/// A class that matches nothing. Used where Go names only surrogate code points, which can
/// never be decoded from a Go string or occur in a Rust `&str`.
const EMPTY_CLASS: &str = r"[^\x{0}-\x{10FFFF}]";

const LOOKAROUND: &str = "look-around is not supported (RE2 syntax)";
const BACKREFERENCE: &str = "backreferences are not supported (RE2 syntax)";
const UNCLOSED_CLASS: &str = "unclosed character class";
const INVALID_ESCAPE: &str = "invalid escape sequence";
const REPEAT_TOO_BIG: &str = "repetition count exceeds 1000";

/// Go's POSIX class names (`[:name:]` and `[:^name:]`); regex-syntax defines the same sets.
const POSIX_CLASSES: [&str; 14] = [
    "alnum", "alpha", "ascii", "blank", "cntrl", "digit", "graph", "lower", "print", "punct",
    "space", "upper", "word", "xdigit",
];

/// Translates a Go (RE2) pattern into the Rust regex dialect; see the module docs for details.
pub fn translate_go(pattern: &str) -> Result<GoRegex, RegexError> {
    translate_go_with_flags(pattern, "")
}

/// Extra flags from a DSL literal like /fraud/i: 'i', 'm', 's' (others -> error). Prepends (?flags).
///
/// `source` stays the pattern as written, so error spans index into `pattern`.
pub fn translate_go_with_flags(pattern: &str, flags: &str) -> Result<GoRegex, RegexError> {
    let mut prefix = String::new();
    for c in flags.chars() {
        match c {
            'i' | 'm' | 's' => {
                if !prefix.contains(c) {
                    prefix.push(c);
                }
            }
            _ => {
                return Err(RegexError::new(
                    format!("unsupported regex flag '{c}'"),
                    None,
                ));
            }
        }
    }

    let mut t = Translator::new(pattern);
    if !prefix.is_empty() {
        t.out.push(&format!("(?{prefix})"), 0..0);
    }
    t.run()?;
    // Validate before any wrapping so that structural errors point at the user's text.
    validate(&t.out, pattern.len())?;

    let out = if t.ascii_not_word_boundary {
        // `(?-u:\B)` also holds *inside* a multi-byte character (between two non-ASCII bytes),
        // where Go never looks. Both engines discard such empty matches, but an earliest-match
        // search that stops at one and restarts later can lose a real match that began earlier
        // (e.g. `\B|aéb` on "aéb"). Anchoring at the start and advancing one whole character
        // at a time keeps every candidate position on a character boundary, exactly like Go.
        let end = pattern.len();
        let mut w = Out::default();
        w.push(r"\A(?s:.)*?(?:", 0..0);
        w.append(t.out);
        w.push(")", end..end);
        validate(&w, end)?;
        w
    } else {
        t.out
    };
    Ok(GoRegex {
        source: pattern.to_string(),
        translated: out.text,
    })
}

/// Build a regex::Regex for the translated pattern (reference engine).
///
/// Uses default `regex` options, which are also the options `build_dfa_bytes` parses with.
pub fn build_regex(re: &GoRegex) -> Result<::regex::Regex, RegexError> {
    ::regex::Regex::new(&re.translated).map_err(|e| match e {
        ::regex::Error::CompiledTooBig(limit) => RegexError::new(
            format!("regex is too large to compile (limit {limit} bytes)"),
            None,
        ),
        other => RegexError::new(format!("cannot compile regex: {other}"), None),
    })
}

/// Build a dense DFA for unanchored is-match search and serialise it for the given endianness
/// (little_endian = true for x86_64). Returns None if the DFA would exceed `size_limit` bytes
/// (callers fall back to regex::Regex at run time).
///
/// The DFA has only an unanchored start state and the default leftmost-first match kind, and
/// is not minimised (minimisation costs several times the build time and barely shrinks these
/// DFAs). Search it with [`dfa_is_match`] (an earliest-match search). The returned bytes carry
/// no alignment padding; see [`load_dfa`] for how to embed them.
pub fn build_dfa_bytes(
    re: &GoRegex,
    little_endian: bool,
    size_limit: usize,
) -> Result<Option<Vec<u8>>, RegexError> {
    let config = dense::Config::new()
        .minimize(false)
        .start_kind(StartKind::Unanchored)
        .dfa_size_limit(Some(size_limit));
    let dfa = match dense::Builder::new()
        .configure(config)
        .build(&re.translated)
    {
        Ok(dfa) => dfa,
        Err(e) if e.is_size_limit_exceeded() => return Ok(None),
        Err(e) => return Err(RegexError::new(format!("cannot build DFA: {e}"), None)),
    };
    let (mut bytes, padding) = if little_endian {
        dfa.to_bytes_little_endian()
    } else {
        dfa.to_bytes_big_endian()
    };
    // The padding only aligns this particular Vec; the embedding wrapper aligns the copy.
    bytes.drain(..padding);
    Ok((bytes.len() <= size_limit).then_some(bytes))
}

/// Loads a DFA serialised by [`build_dfa_bytes`] without copying.
///
/// `bytes` must be in the native endianness and must start at a 4-byte aligned address, or
/// `DFA::from_bytes` rejects it. Generated code embeds the bytes with
/// `#[repr(C)] struct Aligned<B: ?Sized> { _align: [u32; 0], bytes: B }`, e.g.
/// `static DFA: &Aligned<[u8]> = &Aligned { _align: [], bytes: *include_bytes!("re0.dfa") };`
/// and passes `&DFA.bytes`.
pub fn load_dfa(bytes: &[u8]) -> Result<dense::DFA<&[u32]>, RegexError> {
    dense::DFA::from_bytes(bytes)
        .map(|(dfa, _)| dfa)
        .map_err(|e| RegexError::new(format!("invalid serialized DFA: {e}"), None))
}

/// Go's `MatchString` on a DFA from [`load_dfa`]: is there a match anywhere in `haystack`.
///
/// Errors only if the search gives up, which DFAs built by [`build_dfa_bytes`] never do (they
/// have no quit bytes because they contain no Unicode word boundaries).
pub fn dfa_is_match<A: Automaton>(dfa: &A, haystack: &str) -> Result<bool, RegexError> {
    dfa.try_search_fwd(&Input::new(haystack).earliest(true))
        .map(|m| m.is_some())
        .map_err(|e| RegexError::new(format!("DFA search failed: {e}"), None))
}

/// Translated text plus, for every output byte, the span of the source token it came from,
/// so errors found by regex-syntax in the translation can be reported in the original.
#[derive(Default)]
struct Out {
    text: String,
    origin: Vec<Range<usize>>,
}

impl Out {
    fn push(&mut self, s: &str, from: Range<usize>) {
        self.text.push_str(s);
        self.origin.extend(std::iter::repeat_n(from, s.len()));
    }

    fn append(&mut self, other: Out) {
        self.text.push_str(&other.text);
        self.origin.extend(other.origin);
    }

    fn map_span(&self, span: &ast::Span, pattern_len: usize) -> Range<usize> {
        let (s, e) = (span.start.offset, span.end.offset);
        match self.origin.get(s) {
            // regex-syntax reports some errors (e.g. a dangling `*`) as an empty span at the
            // offending token; widen it to that token.
            Some(first) if e <= s => first.clone(),
            Some(first) => {
                let end = self.origin.get(e - 1).map_or(pattern_len, |r| r.end);
                first.start..end.max(first.start)
            }
            None => pattern_len..pattern_len,
        }
    }
}

/// A set of characters as Rust class items (valid inside `[...]`), possibly negated.
struct Set {
    items: String,
    negated: bool,
}

impl Set {
    fn new(items: impl Into<String>, negated: bool) -> Self {
        Set {
            items: items.into(),
            negated,
        }
    }

    /// The set as a standalone class.
    fn standalone(&self) -> String {
        format!("[{}{}]", if self.negated { "^" } else { "" }, self.items)
    }

    /// The set as items inside an enclosing class (negation needs a nested class).
    fn nested(&self) -> String {
        if self.negated {
            self.standalone()
        } else {
            self.items.clone()
        }
    }
}

/// Go's Perl classes, which are ASCII-only regardless of Unicode mode.
fn perl_class(c: char) -> Option<Set> {
    let (items, negated) = match c {
        'd' => ("0-9", false),
        'D' => ("0-9", true),
        's' => (r"\t\n\f\r ", false),
        'S' => (r"\t\n\f\r ", true),
        'w' => ("0-9A-Za-z_", false),
        'W' => ("0-9A-Za-z_", true),
        _ => return None,
    };
    Some(Set::new(items, negated))
}

/// Rust class items for a Go Unicode class name, plus whether they must be negated to mean it.
fn unicode_items(name: &str) -> Option<(String, bool)> {
    if name.is_empty()
        || !name
            .chars()
            .all(|c| c.is_ascii_alphanumeric() || matches!(c, '_' | '-' | ' '))
    {
        return None;
    }
    let loose: String = name
        .chars()
        .filter(|c| !matches!(c, '_' | '-' | ' '))
        .map(|c| c.to_ascii_lowercase())
        .collect();
    let items = match loose.as_str() {
        "any" => (r"\p{Any}".to_string(), false),
        "assigned" => (r"\p{gc=Cn}".to_string(), true),
        "ascii" => (r"\x00-\x7F".to_string(), false),
        // Go's C table lists Cc, Cf, Co and Cs but not unassigned code points (Cn).
        "c" | "other" => (r"\p{gc=Cc}\p{gc=Cf}\p{gc=Co}".to_string(), false),
        "cs" | "surrogate" => (EMPTY_CLASS.to_string(), false),
        // Go tries categories, then scripts. Spelling out gc=/sc= stops regex-syntax from
        // resolving a name to a binary property first (its order for bare names).
        _ => ["gc", "sc"]
            .iter()
            .map(|kind| format!(r"\p{{{kind}={name}}}"))
            .find(|p| ::regex_syntax::Parser::new().parse(p).is_ok())
            .map(|p| (p, false))?,
    };
    Some(items)
}

/// Appends `c` as a literal valid both outside and inside a Rust bracket class.
fn push_literal(out: &mut String, c: char) {
    if ::regex_syntax::is_meta_character(c) {
        out.push('\\');
        out.push(c);
    } else if c == ' ' || !(c.is_control() || c.is_whitespace()) {
        out.push(c);
    } else {
        let _ = write!(out, r"\x{{{:X}}}", c as u32);
    }
}

/// A Go literal code point in Rust syntax. Go allows surrogate code points in escapes; they
/// can never match a string, so they become a class matching nothing.
fn literal(cp: u32) -> String {
    let mut s = String::new();
    match char::from_u32(cp) {
        Some(c) => push_literal(&mut s, c),
        None => s.push_str(EMPTY_CLASS),
    }
    s
}

/// A Go class range `lo-hi` (lo <= hi) as Rust class items, with unmatchable surrogates clipped.
fn class_range(lo: u32, hi: u32) -> String {
    let surrogate = 0xD800..=0xDFFF;
    let lo = if surrogate.contains(&lo) { 0xE000 } else { lo };
    let hi = if surrogate.contains(&hi) { 0xD7FF } else { hi };
    match (char::from_u32(lo), char::from_u32(hi)) {
        (Some(l), Some(h)) if l == h => literal(lo),
        (Some(l), Some(h)) if l < h => format!("{}-{}", literal(lo), literal(hi)),
        _ => EMPTY_CLASS.to_string(),
    }
}

/// Go's `parseInt`: decimal digits without leading zeros. Saturates instead of Go's overflow
/// marker; anything above 1000 is rejected by the caller either way.
fn parse_int(b: &[u8], i: usize) -> Option<(u64, usize)> {
    if !b.get(i).is_some_and(u8::is_ascii_digit) {
        return None;
    }
    if b[i] == b'0' && b.get(i + 1).is_some_and(u8::is_ascii_digit) {
        return None;
    }
    let mut j = i;
    let mut n: u64 = 0;
    while let Some(&d) = b.get(j).filter(|d| d.is_ascii_digit()) {
        n = n.saturating_mul(10).saturating_add(u64::from(d - b'0'));
        j += 1;
    }
    Some((n, j))
}

/// Go's `parseRepeat` at `b[i] == b'{'`: `(min, max (None = unbounded), end)`, or None when
/// the brace is not a repetition (Go then treats `{` as a literal).
fn parse_repeat(b: &[u8], i: usize) -> Option<(u64, Option<u64>, usize)> {
    let (min, mut j) = parse_int(b, i + 1)?;
    let max = if *b.get(j)? == b',' {
        j += 1;
        if *b.get(j)? == b'}' {
            None
        } else {
            let (max, k) = parse_int(b, j)?;
            j = k;
            Some(max)
        }
    } else {
        Some(min)
    };
    (b.get(j) == Some(&b'}')).then_some((min, max, j + 1))
}

/// Scans a Go pattern and emits the equivalent Rust pattern.
struct Translator<'p> {
    pat: &'p str,
    out: Out,
    names: HashSet<&'p str>,
    /// Whether `\B` was used (see the wrapping in `translate_go_with_flags`).
    ascii_not_word_boundary: bool,
    /// Flag-only groups like `(?i)` not yet emitted. Go applies a repetition operator that
    /// follows them to the atom before them (`a(?i)*` is `a*`), which regex-syntax rejects,
    /// so they are emitted after any such operator, just before the next atom. Moving flags
    /// past an operator changes no atom they apply to.
    pending_flags: Out,
    /// The last thing emitted was a repetition operator.
    after_repetition: bool,
    /// A flag-only group or empty `\Q\E` came after the last emitted token (Go then starts
    /// a new repetition rather than extending the previous operator).
    separated: bool,
}

impl<'p> Translator<'p> {
    fn new(pat: &'p str) -> Self {
        Translator {
            pat,
            out: Out::default(),
            names: HashSet::new(),
            ascii_not_word_boundary: false,
            pending_flags: Out::default(),
            after_repetition: false,
            separated: false,
        }
    }

    fn char_at(&self, i: usize) -> Option<char> {
        self.pat.get(i..).and_then(|s| s.chars().next())
    }

    /// Go's top-level parse loop, minus the structure, which regex-syntax checks afterwards.
    fn run(&mut self) -> Result<(), RegexError> {
        let mut i = 0;
        while let Some(c) = self.char_at(i) {
            i = match c {
                '(' if self.pat[i..].starts_with("(?") => self.group_open(i)?,
                '*' | '+' | '?' => {
                    // A directly following `?` makes the operator non-greedy (part of it).
                    let end = if self.pat[i + 1..].starts_with('?') {
                        i + 2
                    } else {
                        i + 1
                    };
                    self.repetition(&self.pat[i..end], i..end)?;
                    end
                }
                '(' | ')' | '|' | '^' | '$' | '.' => {
                    self.atom(c.encode_utf8(&mut [0; 4]), i..i + 1);
                    i + 1
                }
                '[' => self.class(i)?,
                '{' => self.brace(i)?,
                '\\' => self.escape(i)?,
                _ => {
                    let end = i + c.len_utf8();
                    self.atom(&literal(c as u32), i..end);
                    end
                }
            };
        }
        self.flush_flags();
        Ok(())
    }

    /// Emits anything except a repetition operator or a flag-only group.
    fn atom(&mut self, s: &str, from: Range<usize>) {
        self.flush_flags();
        self.out.push(s, from);
        self.after_repetition = false;
        self.separated = false;
    }

    /// Emits a repetition operator (with its non-greedy `?`, if any).
    fn repetition(&mut self, s: &str, from: Range<usize>) -> Result<(), RegexError> {
        if self.after_repetition && self.separated {
            // Go reads `a+(?i)?` or `a+\Q\E?` as `(?:a+)?`; emitting the operators side by
            // side would instead read as a non-greedy `+?` (or be rejected), so refuse.
            return Err(RegexError::at(
                "repetition of a repetition is not supported",
                from,
            ));
        }
        self.out.push(s, from);
        self.after_repetition = true;
        self.separated = false;
        Ok(())
    }

    fn flush_flags(&mut self) {
        let pending = std::mem::take(&mut self.pending_flags);
        self.out.append(pending);
    }

    /// A backslash outside a class, in Go's order: assertions and `\Q`, Unicode classes,
    /// Perl classes, then single-character escapes.
    fn escape(&mut self, i: usize) -> Result<usize, RegexError> {
        let Some(c) = self.char_at(i + 1) else {
            return Err(RegexError::at("trailing backslash", i..i + 1));
        };
        let end = i + 1 + c.len_utf8();
        let fixed = match c {
            'A' => Some(r"\A"),
            'z' => Some(r"\z"),
            // Go's word boundaries are ASCII; regex-syntax's `\b` would be Unicode-aware
            // (which dense DFAs also cannot build).
            'b' => Some(r"(?-u:\b)"),
            'B' => {
                self.ascii_not_word_boundary = true;
                Some(r"(?-u:\B)")
            }
            'C' => return Err(RegexError::at(r"\C (any byte) is not supported", i..end)),
            'Q' => return Ok(self.quote(i)),
            _ => None,
        };
        if let Some(s) = fixed {
            self.atom(s, i..end);
            return Ok(end);
        }
        if c == 'p' || c == 'P' {
            let (set, end) = self.unicode_class(i)?;
            self.atom(&set.standalone(), i..end);
            return Ok(end);
        }
        if let Some(set) = perl_class(c) {
            self.atom(&set.standalone(), i..end);
            return Ok(end);
        }
        let (cp, end) = self.escaped_char(i)?;
        self.atom(&literal(cp), i..end);
        Ok(end)
    }

    /// `\Q...\E` (or to the end of the pattern): every character is a literal.
    fn quote(&mut self, i: usize) -> usize {
        let body = i + 2;
        let (body_end, next) = match self.pat[body..].find(r"\E") {
            Some(k) => (body + k, body + k + 2),
            None => (self.pat.len(), self.pat.len()),
        };
        if body == body_end {
            // Like a flag group, an empty quote separates an atom from its operator.
            self.separated = true;
        }
        for (k, c) in self.pat[body..body_end].char_indices() {
            let at = body + k;
            self.atom(&literal(c as u32), at..at + c.len_utf8());
        }
        next
    }

    /// Go's `parseEscape` at `pat[i] == '\\'`: a single code point (possibly a surrogate).
    fn escaped_char(&self, i: usize) -> Result<(u32, usize), RegexError> {
        let Some(c) = self.char_at(i + 1) else {
            return Err(RegexError::at("trailing backslash", i..i + 1));
        };
        let mut p = i + 1 + c.len_utf8();
        let invalid = |end: usize| RegexError::at(INVALID_ESCAPE, i..end);
        let is_octal = |p: usize| matches!(self.pat.as_bytes().get(p), Some(b'0'..=b'7'));
        let cp = match c {
            // A lone non-zero digit is a backreference in Perl; Go rejects it.
            '8' | '9' => return Err(RegexError::at(BACKREFERENCE, i..p)),
            '1'..='7' if !is_octal(p) => return Err(RegexError::at(BACKREFERENCE, i..p)),
            '0'..='7' => {
                let mut r = c as u32 - '0' as u32;
                for _ in 1..3 {
                    if !is_octal(p) {
                        break;
                    }
                    r = r * 8 + u32::from(self.pat.as_bytes()[p] - b'0');
                    p += 1;
                }
                r
            }
            'x' => {
                let Some(c2) = self.char_at(p) else {
                    return Err(invalid(p));
                };
                p += c2.len_utf8();
                if c2 == '{' {
                    let mut r: u32 = 0;
                    let mut digits = 0;
                    loop {
                        let Some(d) = self.char_at(p) else {
                            return Err(invalid(p));
                        };
                        p += d.len_utf8();
                        if d == '}' {
                            break;
                        }
                        let Some(v) = d.to_digit(16) else {
                            return Err(invalid(p));
                        };
                        r = r * 16 + v;
                        if r > 0x10FFFF {
                            return Err(invalid(p));
                        }
                        digits += 1;
                    }
                    if digits == 0 {
                        return Err(invalid(p));
                    }
                    r
                } else {
                    let Some(c3) = self.char_at(p) else {
                        return Err(invalid(p));
                    };
                    p += c3.len_utf8();
                    match (c2.to_digit(16), c3.to_digit(16)) {
                        (Some(x), Some(y)) => x * 16 + y,
                        _ => return Err(invalid(p)),
                    }
                }
            }
            'a' => 0x07,
            'f' => 0x0C,
            'n' => 0x0A,
            'r' => 0x0D,
            't' => 0x09,
            'v' => 0x0B,
            c if c.is_ascii() && !c.is_ascii_alphanumeric() => c as u32,
            _ => return Err(invalid(p)),
        };
        Ok((cp, p))
    }

    /// Go's `parseUnicodeClass` at `pat[i..]` starting with `\p` or `\P`.
    fn unicode_class(&self, i: usize) -> Result<(Set, usize), RegexError> {
        let mut negated = self.pat.as_bytes()[i + 1] == b'P';
        let t = i + 2;
        let Some(c) = self.char_at(t) else {
            return Err(RegexError::at("unknown unicode class", i..t));
        };
        let (name, end) = if c != '{' {
            (&self.pat[t..t + c.len_utf8()], t + c.len_utf8())
        } else {
            match self.pat[t..].find('}') {
                Some(k) => (&self.pat[t + 1..t + k], t + k + 1),
                None => {
                    return Err(RegexError::at("unclosed unicode class", i..self.pat.len()));
                }
            }
        };
        let name = match name.strip_prefix('^') {
            Some(rest) => {
                negated = !negated;
                rest
            }
            None => name,
        };
        let Some((items, invert)) = unicode_items(name) else {
            return Err(RegexError::at("unknown unicode class", i..end));
        };
        Ok((Set::new(items, negated != invert), end))
    }

    /// Go's `parseClass` at `pat[i] == '['`.
    fn class(&mut self, i: usize) -> Result<usize, RegexError> {
        let len = self.pat.len();
        let mut p = i + 1;
        let negated = self.pat[p..].starts_with('^');
        if negated {
            p += 1;
        }
        let mut items = String::new();
        // `]` (and `-`) are literals in first position.
        let mut first = true;
        loop {
            let rest = &self.pat[p..];
            if rest.is_empty() {
                return Err(RegexError::at(UNCLOSED_CLASS, i..len));
            }
            if rest.starts_with(']') && !first {
                break;
            }
            first = false;

            // Like Go, `[:` followed by any later `:]` must be a valid POSIX class.
            if rest.len() > 2
                && rest.starts_with("[:")
                && let Some(k) = rest[2..].find(":]")
            {
                let whole = &rest[..k + 4];
                let name = &whole[2..k + 2];
                if !POSIX_CLASSES.contains(&name.strip_prefix('^').unwrap_or(name)) {
                    return Err(RegexError::at(
                        "unknown POSIX character class",
                        p..p + whole.len(),
                    ));
                }
                items.push_str(whole);
                p += whole.len();
                continue;
            }
            if rest.starts_with(r"\p") || rest.starts_with(r"\P") {
                let (set, end) = self.unicode_class(p)?;
                items.push_str(&set.nested());
                p = end;
                continue;
            }
            if let Some(set) = rest
                .strip_prefix('\\')
                .and_then(|r| r.chars().next())
                .and_then(perl_class)
            {
                items.push_str(&set.nested());
                p += 2;
                continue;
            }

            let start = p;
            let (lo, next) = self.class_char(p, i)?;
            p = next;
            let mut hi = lo;
            // `[a-]` means a or `-`; otherwise `x-y` is a range.
            let b = self.pat.as_bytes();
            if p + 2 <= b.len() && b[p] == b'-' && b[p + 1] != b']' {
                let (h, next) = self.class_char(p + 1, i)?;
                p = next;
                hi = h;
                if hi < lo {
                    return Err(RegexError::at("invalid character class range", start..p));
                }
            }
            items.push_str(&class_range(lo, hi));
        }
        p += 1;
        self.atom(&Set::new(items, negated).standalone(), i..p);
        Ok(p)
    }

    /// Go's `parseClassChar`: a literal or escaped character inside a class.
    fn class_char(&self, p: usize, class_start: usize) -> Result<(u32, usize), RegexError> {
        match self.char_at(p) {
            None => Err(RegexError::at(UNCLOSED_CLASS, class_start..self.pat.len())),
            Some('\\') => self.escaped_char(p),
            Some(c) => Ok((c as u32, p + c.len_utf8())),
        }
    }

    /// A `{` outside a class: a counted repetition if Go can parse one, else a literal.
    fn brace(&mut self, i: usize) -> Result<usize, RegexError> {
        let Some((min, max, end)) = parse_repeat(self.pat.as_bytes(), i) else {
            self.atom(r"\{", i..i + 1);
            return Ok(i + 1);
        };
        if min > MAX_REPEAT || max.is_some_and(|m| m > MAX_REPEAT) {
            return Err(RegexError::at(REPEAT_TOO_BIG, i..end));
        }
        // A directly following `?` makes the operator non-greedy (part of it).
        let lazy = self.pat[end..].starts_with('?');
        let text = match max {
            None => format!("{{{min},}}"),
            Some(m) if m < min => {
                return Err(RegexError::at(
                    "invalid repetition range (min exceeds max)",
                    i..end,
                ));
            }
            Some(m) if m == min => format!("{{{min}}}"),
            Some(m) => format!("{{{min},{m}}}"),
        };
        let (text, end) = if lazy {
            (text + "?", end + 1)
        } else {
            (text, end)
        };
        self.repetition(&text, i..end)?;
        Ok(end)
    }

    /// Go's `parsePerlFlags` at `pat[i..]` starting with `(?`: named groups and flag groups.
    fn group_open(&mut self, i: usize) -> Result<usize, RegexError> {
        let rest = &self.pat[i..];
        for prefix in ["(?=", "(?!", "(?<=", "(?<!"] {
            if rest.starts_with(prefix) {
                return Err(RegexError::at(LOOKAROUND, i..i + prefix.len()));
            }
        }

        let name_at = if rest.len() > 4 && rest.starts_with("(?P<") {
            Some(4)
        } else if rest.len() > 3 && rest.starts_with("(?<") {
            Some(3)
        } else {
            None
        };
        if let Some(k) = name_at {
            let Some(gt) = rest.find('>') else {
                return Err(RegexError::at("invalid named capture", i..self.pat.len()));
            };
            let end = i + gt + 1;
            let name = &rest[k..gt];
            if name.is_empty() || !name.bytes().all(|b| b.is_ascii_alphanumeric() || b == b'_') {
                return Err(RegexError::at("invalid capture group name", i..end));
            }
            // regex-syntax rejects names starting with a digit and duplicate names, which Go
            // accepts; such groups stay capturing (same numbering) but lose the name.
            let keep = !name.starts_with(|c: char| c.is_ascii_digit()) && self.names.insert(name);
            let open = if keep {
                format!("(?P<{name}>")
            } else {
                "(".to_string()
            };
            self.atom(&open, i..end);
            return Ok(end);
        }

        let (mut on, mut off) = (String::new(), String::new());
        let (mut negated, mut saw_flag) = (false, false);
        let mut p = i + 2;
        while let Some(c) = self.char_at(p) {
            p += c.len_utf8();
            match c {
                'i' | 'm' | 's' | 'U' => {
                    let set = if negated { &mut off } else { &mut on };
                    if !set.contains(c) {
                        set.push(c);
                    }
                    saw_flag = true;
                }
                '-' if !negated => {
                    negated = true;
                    saw_flag = false;
                }
                ':' | ')' if !negated || saw_flag => {
                    // Go applies the set flags, then the cleared ones; regex-syntax forbids a
                    // flag on both sides, so drop it from the set side.
                    on.retain(|f| !off.contains(f));
                    let text = if on.is_empty() && off.is_empty() {
                        // `(?)` changes nothing and opens nothing.
                        if c == ':' {
                            "(?:".to_string()
                        } else {
                            String::new()
                        }
                    } else if off.is_empty() {
                        format!("(?{on}{c}")
                    } else {
                        format!("(?{on}-{off}{c}")
                    };
                    if c == ':' {
                        self.atom(&text, i..p);
                    } else {
                        self.pending_flags.push(&text, i..p);
                        self.separated = true;
                    }
                    return Ok(p);
                }
                c if c.is_ascii_alphabetic() && c != 'P' => {
                    return Err(RegexError::at(
                        format!("unsupported flag '{c}' (RE2 syntax)"),
                        i..p,
                    ));
                }
                _ => break,
            }
        }
        Err(RegexError::at("invalid or unsupported group syntax", i..p))
    }
}

/// Checks the translated pattern with regex-syntax (structure, Unicode names) and Go's extra
/// repetition rules, mapping error spans back to the original pattern.
fn validate(out: &Out, pattern_len: usize) -> Result<(), RegexError> {
    let ast = ast::parse::Parser::new().parse(&out.text).map_err(|e| {
        RegexError::new(
            lowercase_first(e.kind().to_string()),
            Some(out.map_span(e.span(), pattern_len)),
        )
    })?;
    check_repetitions(&ast, out, pattern_len)?;
    ::regex_syntax::hir::translate::Translator::new()
        .translate(&out.text, &ast)
        .map_err(|e| {
            use ::regex_syntax::hir::ErrorKind as K;
            let message = match e.kind() {
                K::UnicodePropertyNotFound | K::UnicodePropertyValueNotFound => {
                    "unknown unicode class".to_string()
                }
                kind => lowercase_first(kind.to_string()),
            };
            RegexError::new(message, Some(out.map_span(e.span(), pattern_len)))
        })?;
    Ok(())
}

fn lowercase_first(s: String) -> String {
    let mut chars = s.chars();
    match chars.next() {
        Some(c) => c.to_lowercase().chain(chars).collect(),
        None => s,
    }
}

/// Go rejects stacked repetition operators (`a**`, `a{2}{3}`, `a*??`) and counted repetitions
/// whose nesting yields more than 1000 copies (`(a{100}){11}`).
fn check_repetitions(ast: &Ast, out: &Out, pattern_len: usize) -> Result<(), RegexError> {
    match ast {
        Ast::Repetition(rep) => {
            let span = || Some(out.map_span(&rep.op.span, pattern_len));
            if matches!(*rep.ast, Ast::Repetition(_)) {
                return Err(RegexError::new(
                    "invalid nested repetition operator",
                    span(),
                ));
            }
            if let Some((min, max)) = counted(&rep.op.kind) {
                // Go only re-checks nesting when this repetition can copy its operand.
                if (min >= 2 || max.is_some_and(|m| m >= 2)) && !repeat_is_valid(ast, MAX_REPEAT) {
                    return Err(RegexError::new(REPEAT_TOO_BIG, span()));
                }
            }
            check_repetitions(&rep.ast, out, pattern_len)
        }
        Ast::Group(g) => check_repetitions(&g.ast, out, pattern_len),
        Ast::Alternation(a) => a
            .asts
            .iter()
            .try_for_each(|a| check_repetitions(a, out, pattern_len)),
        Ast::Concat(c) => c
            .asts
            .iter()
            .try_for_each(|a| check_repetitions(a, out, pattern_len)),
        _ => Ok(()),
    }
}

/// `(min, max)` of a counted repetition (`max` None = unbounded); None for `*`, `+`, `?`.
fn counted(kind: &RepetitionKind) -> Option<(u64, Option<u64>)> {
    match kind {
        RepetitionKind::Range(RepetitionRange::Exactly(n)) => {
            Some(((*n).into(), Some((*n).into())))
        }
        RepetitionKind::Range(RepetitionRange::AtLeast(n)) => Some(((*n).into(), None)),
        RepetitionKind::Range(RepetitionRange::Bounded(m, n)) => {
            Some(((*m).into(), Some((*n).into())))
        }
        _ => None,
    }
}

/// Go's `repeatIsValid`: the product of nested counted repetitions stays within `n`.
fn repeat_is_valid(ast: &Ast, n: u64) -> bool {
    match ast {
        Ast::Repetition(rep) => {
            let mut n = n;
            if let Some((min, max)) = counted(&rep.op.kind) {
                if max == Some(0) {
                    return true;
                }
                let m = max.unwrap_or(min);
                if m > n {
                    return false;
                }
                // Go divides only by a non-zero count.
                if let Some(q) = n.checked_div(m) {
                    n = q;
                }
            }
            repeat_is_valid(&rep.ast, n)
        }
        Ast::Group(g) => repeat_is_valid(&g.ast, n),
        Ast::Alternation(a) => a.asts.iter().all(|a| repeat_is_valid(a, n)),
        Ast::Concat(c) => c.asts.iter().all(|a| repeat_is_valid(a, n)),
        _ => true,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const DFA_LIMIT: usize = 16 << 20;

    /// A copy of `bytes` that starts at a 4-byte aligned address, as `DFA::from_bytes` needs.
    struct AlignedCopy {
        buf: Vec<u8>,
        start: usize,
        len: usize,
    }

    impl AlignedCopy {
        fn new(bytes: &[u8]) -> Self {
            let mut buf = vec![0u8; bytes.len() + 3];
            let start = buf.as_ptr().align_offset(4);
            buf[start..start + bytes.len()].copy_from_slice(bytes);
            AlignedCopy {
                buf,
                start,
                len: bytes.len(),
            }
        }

        fn bytes(&self) -> &[u8] {
            &self.buf[self.start..self.start + self.len]
        }
    }

    /// Both engines built from `pattern`, answering Go's MatchString.
    struct Engines {
        re: GoRegex,
        regex: ::regex::Regex,
        dfa: AlignedCopy,
    }

    impl Engines {
        fn new(pattern: &str) -> Self {
            Self::with_flags(pattern, "")
        }

        fn with_flags(pattern: &str, flags: &str) -> Self {
            let re = translate_go_with_flags(pattern, flags)
                .unwrap_or_else(|e| panic!("{pattern:?}: {e:?}"));
            let regex = build_regex(&re).unwrap_or_else(|e| panic!("{pattern:?}: {e:?}"));
            let bytes = build_dfa_bytes(&re, cfg!(target_endian = "little"), DFA_LIMIT)
                .unwrap_or_else(|e| panic!("{pattern:?}: {e:?}"))
                .unwrap_or_else(|| panic!("{pattern:?}: DFA over size limit"));
            Engines {
                re,
                regex,
                dfa: AlignedCopy::new(&bytes),
            }
        }

        /// The shared answer; panics if the engines disagree.
        fn is_match(&self, hay: &str) -> bool {
            let by_regex = self.regex.is_match(hay);
            let dfa = load_dfa(self.dfa.bytes()).expect("load DFA");
            let by_dfa = dfa_is_match(&dfa, hay).expect("DFA search");
            assert_eq!(
                by_regex, by_dfa,
                "engines disagree on {:?} (translated {:?}) vs {hay:?}",
                self.re.source, self.re.translated
            );
            by_regex
        }
    }

    fn check_table(cases: &[(&str, &str, bool)]) {
        let mut failures = Vec::new();
        for &(pattern, hay, expected) in cases {
            let engines = Engines::new(pattern);
            if engines.is_match(hay) != expected {
                failures.push(format!(
                    "{pattern:?} (translated {:?}) vs {hay:?}: expected {expected}",
                    engines.re.translated
                ));
            }
        }
        assert!(failures.is_empty(), "mismatches:\n{}", failures.join("\n"));
    }

    fn error_of(pattern: &str) -> RegexError {
        match translate_go(pattern) {
            Ok(re) => panic!("{pattern:?} unexpectedly translated to {:?}", re.translated),
            Err(e) => e,
        }
    }

    #[test]
    fn perl_classes_are_ascii() {
        check_table(&[
            (r"^\w+$", "héllo", false),
            (r"^\w+$", "hello", true),
            (r"^\w+$", "hello_42", true),
            (r"\d+", "٣", false),
            (r"\d+", "x7", true),
            (r"\s", "\u{a0}", false),
            (r"\s", "\x0b", false),
            (r"\s", "\x0c", true),
            (r"\s", "a b", true),
            (r"\s", "\u{2003}", false),
            (r"[\d]", "5", true),
            (r"[\d]", "٣", false),
            (r"[\d_]", "_", true),
            (r"[^\s]", " ", false),
            (r"[^\s]", "\u{a0}", true),
            (r"[^\s]", "\x0b", true),
            (r"\D", "٣", true),
            (r"\D", "123", false),
            (r"\W", "é", true),
            (r"\W", "abc_1", false),
            (r"\S", "\u{a0}", true),
            (r"\S", " \t\n\r\x0c", false),
            (r"[\W]", "é", true),
            (r"[^\W]", "é", false),
            (r"[^\W]", "a", true),
            (r"[^\D]", "٣", false),
            (r"[\D\d]", "\n", true),
            (r"[\d-z]", "-", true),
            // Go folds \w under (?i): ſ (U+017F) and the Kelvin sign join the class.
            (r"(?i)\w", "ſ", true),
            (r"(?i)\w", "\u{212A}", true),
            (r"(?i)\W", "ſ", false),
            (r"\w", "ſ", false),
            (r"(?i)[^\w]", "ſ", false),
        ]);
    }

    #[test]
    fn word_boundaries_are_ascii() {
        check_table(&[
            (r"\bfoo\b", "éfooé", true),
            (r"\bfoo\b", "xfoo", false),
            (r"\bfoo\b", "a foo b", true),
            (r"\bfoo\b", "foo_", false),
            (r"foo\B", "fooé", false),
            (r"foo\B", "foox", true),
            (r"\B", "", true),
            (r"\B", "a", false),
            (r"\B", "é", true),
            (r"\B", "aéb", false),
            (r"\B|aéb", "aéb", true),
            (r"(?i)\Bx", "AX", true),
            (r"\b", "é", false),
            (r"\b", "a", true),
        ]);
    }

    #[test]
    fn flags_anchors_and_dot() {
        check_table(&[
            (r"(?i)^main$", "MAIN", true),
            (r"^main$", "MAIN", false),
            (r"^foo$", "bar\nfoo", false),
            (r"(?m)^foo$", "bar\nfoo", true),
            (r"(?m)^foo$", "foo\nbar", true),
            (r"^foo$", "foo\n", false),
            (r"^a.b$", "a\nb", false),
            (r"(?s)^a.b$", "a\nb", true),
            (r"^a.b$", "aéb", true),
            (r"^feat/", "fix/feat/x", false),
            (r"^feat/", "feat/x", true),
            (r"@example\.com$", "bob@example.com", true),
            (r"@example\.com$", "bob@example.com.evil", false),
            (r"@example\.com$", "bob@exampleXcom", false),
            (r"\Aab\z", "ab", true),
            (r"\Aab\z", "ab\n", false),
            (r"a(?i:B)c", "abc", true),
            (r"a(?i:B)c", "aBC", false),
            (r"(?i)a(?-i)b", "Ab", true),
            (r"(?i)a(?-i)b", "AB", false),
            (r"(?ii)a", "A", true),
            (r"(?i-i)a", "A", false),
            (r"(?)a", "a", true),
            // Go repeats the atom before a flag group.
            (r"^a(?i)*b$", "aaaB", true),
            (r"^a(?i)*b$", "B", true),
            (r"^a(?i)*b$", "AB", false),
            (r"^a(?i)(?s)+.$", "aa\n", true),
            (r"^a(?i)\Q\E{2}$", "aa", true),
            (r"a(?i)|b", "B", true),
            (r"^a(?i)*?b$", "aB", true),
            (r"^a(?i){2}?b$", "aaB", true),
            (r"(?U)^a+?$", "aaa", true),
            (r"^a+?b$", "aaab", true),
            (r"(?i)straße", "STRASSE", false),
            (r"(?i)k", "\u{212A}", true),
            (r"x*", "", true),
            ("", "anything", true),
            (r"^$", "", true),
        ]);
    }

    #[test]
    fn classes_use_go_syntax() {
        check_table(&[
            (r"[[:alpha:]]+", "abc", true),
            (r"[[:alpha:]]+", "é", false),
            (r"[[:^alpha:]]", "é", true),
            (r"[[:^alpha:]]", "ab", false),
            (r"[[:space:]]", "\x0b", true),
            (r"[[:word:][:punct:]]", "!", true),
            (r"(?i)[[:upper:]]", "a", true),
            // Top-level `[:alpha:]` is an ordinary class of `:alph` in Go.
            (r"[:alpha:]", "p", true),
            (r"[:alpha:]", "b", false),
            // `&&`, `--`, `~~` and `[` are literals inside Go classes.
            (r"[a&&b]", "&", true),
            (r"[a&&b]", "b", true),
            // `-` after a range starts another range: here `-` to `0`.
            (r"[a-c--0]", "/", true),
            (r"[a-c--0]", "d", false),
            (r"[+--]", ",", true),
            (r"[~~]", "~", true),
            (r"[[]", "[", true),
            (r"[a[b]", "[", true),
            (r"[]a]", "]", true),
            (r"[^]a]", "]", false),
            (r"[^]a]", "b", true),
            (r"[a-]", "-", true),
            (r"[-a]", "-", true),
            (r"[a-c-e]", "d", false),
            (r"[a-c-e]", "e", true),
            (r"[\]]", "]", true),
            (r"[\-]", "-", true),
            (r"[\x41-\x43]", "B", true),
            (r"[^a]", "\n", true),
            (r"[^\n]", "\n", false),
            (r"(?i)[a-c]", "B", true),
            (r"(?i)[^a-c]", "B", false),
            (r"[\p{Greek}\d]", "7", true),
            (r"[\p{Greek}\d]", "α", true),
            (r"[^\p{Greek}]", "α", false),
            (r"[\P{Greek}]", "a", true),
        ]);
    }

    #[test]
    fn unicode_classes() {
        check_table(&[
            (r"\pL", "é", true),
            (r"\pL", "1", false),
            (r"\PL", "é", false),
            (r"\p{L}", "ß", true),
            (r"\p{^L}", "é", false),
            (r"\P{^L}", "é", true),
            (r"\p{Lu}", "É", true),
            (r"\p{Lu}", "é", false),
            (r"(?i)\p{Lu}", "é", true),
            (r"\p{Greek}", "α", true),
            (r"\p{Greek}", "a", false),
            (r"\p{Han}", "漢", true),
            (r"\p{Sc}", "€", true),
            (r"\pN", "٣", true),
            (r"\p{Nd}", "٣", true),
            // Go's C omits unassigned code points.
            (r"\p{C}", "\u{378}", false),
            (r"\p{C}", "\u{7}", true),
            (r"\pC", "\u{200B}", true),
            (r"\PC", "\u{378}", true),
            (r"\p{Cs}", "a\u{FFFD}", false),
            (r"\P{Cs}", "a", true),
            (r"\p{Any}", "\n", true),
            (r"\P{Any}", "a", false),
            (r"\p{ASCII}", "é", false),
            (r"\p{ASCII}", "e", true),
            (r"\p{Assigned}", "\u{378}", false),
            (r"\p{Assigned}", "a", true),
        ]);
    }

    #[test]
    fn repetition_and_braces() {
        check_table(&[
            (r"^a{2,3}$", "a", false),
            (r"^a{2,3}$", "aa", true),
            (r"^a{2,3}$", "aaa", true),
            (r"^a{2,3}$", "aaaa", false),
            (r"^a{2}$", "aa", true),
            (r"^a{2,}$", "aaaaa", true),
            (r"^a{0}b$", "b", true),
            (r"^(?:a{2}){3}$", "aaaaaa", true),
            (r"^a{1000}$", &"a".repeat(1000), true),
            // Braces that are not repetitions are literals in Go.
            (r"a{,3}", "a{,3}", true),
            (r"a{,3}", "aaa", false),
            (r"a{01}", "a{01}", true),
            (r"a{01}", "a", false),
            (r"x{", "x{", true),
            (r"x{y}", "x{y}", true),
            (r"^{}$", "{}", true),
            (r"a{2", "a{2", true),
            (r"a{2,x}", "a{2,x}", true),
            (r"a}", "a}", true),
        ]);
    }

    #[test]
    fn escapes_and_quoting() {
        check_table(&[
            (r"\Qa.b\E", "a.b", true),
            (r"\Qa.b\E", "axb", false),
            (r"\Qa.b", "a.b", true),
            (r"^x\Q*\E+$", "x**", true),
            (r"^x\Q*\E+$", "x", false),
            (r"^\Q\E$", "", true),
            (r"^a\Q\E+$", "aa", true),
            (r"\Q[\d]\E", r"[\d]", true),
            (r"\Q(?=\1\E", r"(?=\1", true),
            (r"\x41", "A", true),
            (r"\x{1F600}", "😀", true),
            (r"\101", "A", true),
            (r"\0", "\0", true),
            (r"\012", "\n", true),
            (r"\08", "\u{0}8", true),
            (r"\<a\>", "<a>", true),
            (r"\_", "_", true),
            (r"\#", "#", true),
            (r"\ ", " ", true),
            (r"\t\n\r\f\v\a", "\t\n\r\x0c\x0b\x07", true),
            (r"\x{D800}", "\u{FFFD}", false),
            (r"a|\x{D800}", "a", true),
            (r"[\x{D7FF}-\x{E000}]", "\u{E000}", true),
            (r"[\x{D800}-\x{DFFF}]", "\u{FFFD}", false),
            (r"(?P<user>\w+)@", "me@", true),
            (r"(?<user>\w+)@", "me@", true),
            (r"(?P<1st>a)(?P<x>b)(?P<x>c)", "abc", true),
            (r"\$\^\.\*", "$^.*", true),
        ]);
    }

    #[test]
    fn dsl_flags() {
        assert!(Engines::with_flags("fraud", "i").is_match("FRAUD"));
        assert!(!Engines::new("fraud").is_match("FRAUD"));
        assert!(Engines::with_flags("^b$", "m").is_match("a\nb"));
        assert!(Engines::with_flags("a.b", "s").is_match("a\nb"));
        assert!(Engines::with_flags("^a|b$", "im").is_match("x\nA"));
        assert!(Engines::with_flags(r"\Bx", "i").is_match("AX"));
        let re = translate_go_with_flags("fraud", "ii").unwrap();
        assert_eq!(re.source, "fraud");
        assert_eq!(re.translated, "(?i)fraud");
        let err = translate_go_with_flags("fraud", "x").unwrap_err();
        assert_eq!(err.message, "unsupported regex flag 'x'");
        assert_eq!(err.span, None);
        // Spans still index into the pattern as written.
        assert_eq!(
            translate_go_with_flags("ab)", "i").unwrap_err().span,
            Some(2..3)
        );
    }

    #[test]
    fn translations_are_canonical() {
        let t = |p: &str| translate_go(p).unwrap().translated;
        assert_eq!(t(r"^\w+$"), "^[0-9A-Za-z_]+$");
        assert_eq!(t(r"\bfoo\b"), r"(?-u:\b)foo(?-u:\b)");
        assert_eq!(t(r"[^\s\d]"), r"[^\t\n\f\r 0-9]");
        assert_eq!(t(r"[\S]"), r"[[^\t\n\f\r ]]");
        assert_eq!(t(r"\Qa.b\E"), r"a\.b");
        assert_eq!(t(r"a{,3}"), r"a\{,3\}");
        assert_eq!(t(r"[a&&b]"), r"[a\&\&b]");
        assert_eq!(t(r"\pL"), r"[\p{gc=L}]");
        assert_eq!(t(r"(?i-s:x)"), r"(?i-s:x)");
        assert_eq!(t(r"(?P<n>x)"), r"(?P<n>x)");
        assert_eq!(t(r"\B"), r"\A(?s:.)*?(?:(?-u:\B))");
        assert_eq!(t(r"a(?i)(?-s)*?b"), r"a*?(?i)(?-s)b");
    }

    #[test]
    fn errors() {
        let cases: &[(&str, &str)] = &[
            (r"[invalid(", "unclosed character class"),
            (r"(?=a)b", "look-around is not supported (RE2 syntax)"),
            (r"(?!a)b", "look-around is not supported (RE2 syntax)"),
            (r"(?<=a)b", "look-around is not supported (RE2 syntax)"),
            (r"(?<!a)b", "look-around is not supported (RE2 syntax)"),
            (r"(a)\1", "backreferences are not supported (RE2 syntax)"),
            (r"(a)[\1]", "backreferences are not supported (RE2 syntax)"),
            (r"\9", "backreferences are not supported (RE2 syntax)"),
            (r"a{1001}", "repetition count exceeds 1000"),
            (r"a{2,1001}", "repetition count exceeds 1000"),
            (r"a{99999999999999999999}", "repetition count exceeds 1000"),
            (r"(a{100}){11}", "repetition count exceeds 1000"),
            (r"((a{10}){10}){11}", "repetition count exceeds 1000"),
            (r"a{3,2}", "invalid repetition range (min exceeds max)"),
            (r"\C", r"\C (any byte) is not supported"),
            (r"a**", "invalid nested repetition operator"),
            (r"a{2}{3}", "invalid nested repetition operator"),
            (r"a*??", "invalid nested repetition operator"),
            (r"\", "trailing backslash"),
            (r"\e", "invalid escape sequence"),
            (r"\u0041", "invalid escape sequence"),
            (r"\Z", "invalid escape sequence"),
            (r"\x{110000}", "invalid escape sequence"),
            (r"\x{}", "invalid escape sequence"),
            (r"\xG0", "invalid escape sequence"),
            (r"[\b]", "invalid escape sequence"),
            (r"[\Qa\E]", "invalid escape sequence"),
            (r"[z-a]", "invalid character class range"),
            (r"[[:foo:]]", "unknown POSIX character class"),
            (r"[]", "unclosed character class"),
            (r"[^]", "unclosed character class"),
            (r"\p{Foo}", "unknown unicode class"),
            (r"\pé", "unknown unicode class"),
            (r"\p{Greek", "unclosed unicode class"),
            (r"\p", "unknown unicode class"),
            (r"(?x)a b", "unsupported flag 'x' (RE2 syntax)"),
            (r"(?u)a", "unsupported flag 'u' (RE2 syntax)"),
            (r"(?i-)a", "invalid or unsupported group syntax"),
            (r"(?-)a", "invalid or unsupported group syntax"),
            (r"(?P=n)", "invalid or unsupported group syntax"),
            (r"(?#c)", "invalid or unsupported group syntax"),
            (r"(?P<a.b>x)", "invalid capture group name"),
            (r"(?P<>x)", "invalid capture group name"),
            (r"(?P<x", "invalid named capture"),
            (r"(ab", "unclosed group"),
            (r"ab)", "unopened group"),
            (r"*a", "repetition operator missing expression"),
            (r"a|*", "repetition operator missing expression"),
            (r"(?i)*a", "repetition operator missing expression"),
            (r"a+(?i)?", "repetition of a repetition is not supported"),
            (r"a+(?)?", "repetition of a repetition is not supported"),
            (r"a+\Q\E?", "repetition of a repetition is not supported"),
            (
                r"a{2}(?s){3}",
                "repetition of a repetition is not supported",
            ),
            (r"a|(?i)+", "repetition operator missing expression"),
            (r"a(?i)*+", "invalid nested repetition operator"),
        ];
        let mut failures = Vec::new();
        for &(pattern, message) in cases {
            match translate_go(pattern) {
                Err(e) if e.message == message => {}
                other => failures.push(format!("{pattern:?}: expected {message:?}, got {other:?}")),
            }
        }
        assert!(failures.is_empty(), "{}", failures.join("\n"));
    }

    #[test]
    fn error_spans_point_into_the_original_pattern() {
        assert_eq!(error_of(r"[invalid(").span, Some(0..9));
        assert_eq!(error_of(r"x(?=a)b").span, Some(1..4));
        assert_eq!(error_of(r"(a)\1").span, Some(3..5));
        assert_eq!(error_of(r"a{1001}").span, Some(1..7));
        assert_eq!(error_of(r"ab\C").span, Some(2..4));
        assert_eq!(error_of(r"é(?=x)").span, Some(2..5));
        assert_eq!(error_of(r"[b-a]").span, Some(1..4));
        assert_eq!(error_of(r"\p{Nope}x").span, Some(0..8));
        // Errors found by regex-syntax in the translation are mapped back, even when the
        // translation is longer than the original (`\w` grew to `[0-9A-Za-z_]`).
        assert_eq!(error_of(r"\w\w)").span, Some(4..5));
        assert_eq!(error_of(r"\d(\w").span, Some(2..3));
        assert_eq!(error_of(r"\Qab\E**").span, Some(7..8));
        assert_eq!(error_of(r"\s(x{100}){11}").span, Some(10..14));
        let e = error_of(r"\w|*");
        assert_eq!(e.span, Some(3..4));
        assert_eq!(&r"\w|*"[e.span.unwrap()], "*");
    }

    #[test]
    fn dfa_size_limit_and_endianness() {
        let re = translate_go(r"\w{50}[a-z]{50}\pL").unwrap();
        assert_eq!(build_dfa_bytes(&re, true, 1000).unwrap(), None);

        let re = translate_go(r"^feat/").unwrap();
        let little = build_dfa_bytes(&re, true, DFA_LIMIT).unwrap().unwrap();
        let big = build_dfa_bytes(&re, false, DFA_LIMIT).unwrap().unwrap();
        assert_eq!(little.len(), big.len());
        let (native, foreign) = if cfg!(target_endian = "little") {
            (little, big)
        } else {
            (big, little)
        };
        assert!(load_dfa(AlignedCopy::new(&native).bytes()).is_ok());
        assert!(load_dfa(AlignedCopy::new(&foreign).bytes()).is_err());

        // from_bytes insists on 4-byte alignment.
        let copy = AlignedCopy::new(&[&[0u8][..], &native[..]].concat());
        assert!(load_dfa(&copy.bytes()[1..]).is_err());
    }

    /// The wrapper generated code uses to embed DFA bytes (see `load_dfa`).
    #[repr(C)]
    struct Aligned<B: ?Sized> {
        _align: [u32; 0],
        bytes: B,
    }

    #[test]
    fn aligned_wrapper_aligns_embedded_bytes() {
        static EMBEDDED: &Aligned<[u8]> = &Aligned {
            _align: [],
            bytes: *b"0123456789",
        };
        assert_eq!(EMBEDDED.bytes.as_ptr().align_offset(4), 0);
        assert_eq!(&EMBEDDED.bytes, b"0123456789");
    }

    #[test]
    fn build_regex_reports_size_errors() {
        let re = translate_go(r"(?:\pL{1000}){1}\pL{1000}").unwrap();
        let err = build_regex(&re).unwrap_err();
        assert!(err.message.starts_with("regex is too large"), "{err:?}");
    }
}
