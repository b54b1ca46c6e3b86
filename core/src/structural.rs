//! Reading a server's answer at memory speed: well-formedness and the two
//! outer levels, nothing more.
//!
//! An answer from the MCP server only has to be well-formed JSON whose
//! envelope (`id`, `result`, `error`) and `result` members are unambiguous
//! (no member twice in any letter case, no envelope member such as
//! `"Result"` in another case: a case-insensitive reader would read it as
//! the real one): the proxy finds the `id` it sent, and for a list the
//! array to filter.
//! The strict request validator ([`crate::json::validate`]) also fingerprints
//! every key at every depth; [`scan_answer`] checks the grammar of the whole
//! text (UTF-8, strings and their escapes, numbers, literals, nesting) and
//! keeps keys only for the two outermost object levels.
//!
//! The text is read 64 bytes at a time on bitmaps ([`crate::scan`],
//! simdjson's stage 1 with SSE2): quotes, backslashes, control bytes,
//! structurals and scalar bytes; the bytes inside strings by a prefix XOR
//! of the unescaped quotes. Only tokens are then visited (structurals
//! outside strings, opening quotes, the first byte of each number or
//! literal), each with one table lookup for the grammar; the outer levels'
//! members and the entries of a list array (`tools`, `resources`,
//! `resourceTemplates`, `prompts`, with each entry's naming member) are
//! recorded on the way, so the list filters walk no text again. This is
//! written here rather than taken from simd-json or sonic-rs because the
//! proxy needs exactly serde_json's acceptance (lone surrogates refused,
//! any number spelling accepted whatever its magnitude) plus the positions
//! of the outer members and list entries, and both crates either parse into
//! a tape the proxy would walk again or need `unsafe` and target features.
//!
//! Accepts exactly what `serde_json::from_slice::<serde_json::Value>`
//! accepts, with three deliberate differences (tested), all three shared
//! with the strict validator's reading of answers (`SERVER_ANSWER`):
//! - nesting up to 1024 levels (serde_json stops at 128): tool schemas nest;
//! - numbers out of `f64`'s range (`1e400`) are accepted (serde_json refuses
//!   them): the proxy forwards number bytes unchanged and never reads them;
//! - a lone UTF-16 surrogate escape (`"\ud800"`) is accepted (serde_json
//!   refuses the text): readers decode it to U+FFFD as Go does, and a Node
//!   server's `JSON.stringify` writes one for a string cut inside a pair.

use crate::json::{JStr, Value};
use crate::scan::{StringTracker, classify64_tokens, next_of};

/// Deepest nesting of arrays and objects accepted (as `SERVER_ANSWER`).
pub const MAX_DEPTH: usize = 1024;

/// How many members an outline holds per level; an object at depth 1 or 2
/// with more is [`Scan::Undecided`] (the caller reads it the slow way).
pub const OUTLINE_MEMBERS: usize = 16;

/// A text that is not one well-formed JSON value.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Malformed {
    /// Offset of the first byte found wrong (or the length, at a premature end).
    pub at: usize,
}

impl std::fmt::Display for Malformed {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "not well-formed JSON (byte {})", self.at)
    }
}

impl std::error::Error for Malformed {}

/// What [`scan_answer`] found in a well-formed text.
// The outline (about 520 bytes) is returned by value once per answer:
// boxing it would put a heap allocation on every answer instead.
#[allow(clippy::large_enum_variant)]
#[derive(Debug, Clone)]
pub enum Scan {
    /// An object whose members at depth 1 and 2 have plain ASCII keys
    /// (no escapes), at most [`OUTLINE_MEMBERS`] per object, no two equal
    /// or equal in another letter case: the outline of the envelope and of
    /// `result`.
    Plain(AnswerOutline),
    /// Two keys of one object at depth 1 or 2 are equal, or equal in another
    /// letter case, or a key of the envelope is the name of an envelope
    /// member in another letter case (`"Result"`, `"ID"`); the text is
    /// well-formed. Whether the envelope itself is ambiguous is
    /// [`crate::jsonrpc::ambiguous_answer_envelope`]'s to say.
    Ambiguous,
    /// Not a case this scanner decides (not an object, a key at depth 1 or
    /// 2 with escapes or non-ASCII bytes, too many members): the caller
    /// reads the text with the strict validator. Well-formedness is not
    /// established.
    Undecided,
}

/// Byte ranges of a member: key (between its quotes) and value.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
struct Span {
    key: (u32, u32),
    value: (u32, u32),
}

/// The members of the outermost object and of its `result` member (when an
/// object), as [`scan_answer`] found them.
#[derive(Debug, Clone)]
pub struct AnswerOutline {
    top: [Span; OUTLINE_MEMBERS],
    top_len: usize,
    result: [Span; OUTLINE_MEMBERS],
    result_len: usize,
    list: Option<ListIndex>,
}

impl AnswerOutline {
    fn key<'a>(raw: &'a [u8], s: &Span) -> &'a [u8] {
        &raw[s.key.0 as usize..s.key.1 as usize]
    }

    fn value<'a>(raw: &'a [u8], s: &Span) -> Value<'a> {
        Value::from_validated_span(&raw[s.value.0 as usize..s.value.1 as usize])
    }

    /// The outermost members, as (key, value) views into `raw` (the text scanned).
    pub fn top<'s, 'a: 's>(
        &'s self,
        raw: &'a [u8],
    ) -> impl Iterator<Item = (JStr<'a>, Value<'a>)> + 's {
        self.top[..self.top_len].iter().map(move |s| {
            // Keys of a Plain outline are ASCII: never empty by mistake.
            let k = std::str::from_utf8(Self::key(raw, s)).unwrap_or_default();
            (JStr::plain(k), Self::value(raw, s))
        })
    }

    /// The outermost member spelled exactly `name`.
    pub fn get<'a>(&self, raw: &'a [u8], name: &str) -> Option<Value<'a>> {
        self.top[..self.top_len]
            .iter()
            .find(|s| Self::key(raw, s) == name.as_bytes())
            .map(|s| Self::value(raw, s))
    }

    /// The entries of `result`'s list array, when it is `array` (`tools`,
    /// `resources`, `resourceTemplates` or `prompts`, spelled exactly).
    pub fn list(&self, array: &str) -> Option<&ListIndex> {
        self.list.as_ref().filter(|l| l.array == array)
    }

    /// The member of `result` spelled exactly `name` (`None` when `result`
    /// is absent or not an object).
    pub fn result_get<'a>(&self, raw: &'a [u8], name: &str) -> Option<Value<'a>> {
        self.result[..self.result_len]
            .iter()
            .find(|s| Self::key(raw, s) == name.as_bytes())
            .map(|s| Self::value(raw, s))
    }
}

/// Offset of the first `"` or `\` at or after `i`, in text known to be
/// valid (`b.len()` if none), 16 bytes at a time ([`crate::scan`]).
#[inline(always)]
pub fn next_quote_or_backslash(b: &[u8], i: usize) -> usize {
    next_of(b, i, |m| m.quote | m.backslash)
}

/// Offset of the first `"`, `[`, `]`, `{` or `}` at or after `i`
/// (`b.len()` if none), 16 bytes at a time ([`crate::scan`]; the `,` and
/// `:` the structural class also holds are stepped over).
#[inline(always)]
pub fn next_structural(b: &[u8], mut i: usize) -> usize {
    loop {
        i = next_of(b, i, |m| m.quote | m.structural);
        match b.get(i) {
            Some(b',' | b':') => i += 1,
            _ => return i,
        }
    }
}

/// The end (after the closing quote) of the valid string whose opening
/// quote is at `i`.
#[inline(always)]
pub fn skip_valid_string(b: &[u8], i: usize) -> usize {
    let mut j = i + 1;
    loop {
        j = next_quote_or_backslash(b, j);
        match b.get(j) {
            Some(b'"') => return j + 1,
            Some(_) => j += 2,
            None => return b.len(),
        }
    }
}

/// The end of the valid JSON value that starts at `i` (no leading space).
pub fn skip_valid_value(b: &[u8], i: usize) -> usize {
    match b.get(i) {
        Some(b'"') => skip_valid_string(b, i),
        Some(b'{' | b'[') => {
            let mut depth = 0usize;
            let mut j = i;
            loop {
                j = next_structural(b, j);
                match b.get(j) {
                    Some(b'"') => j = skip_valid_string(b, j),
                    Some(b'{' | b'[') => {
                        depth += 1;
                        j += 1;
                    }
                    Some(_) => {
                        depth -= 1;
                        j += 1;
                        if depth == 0 {
                            return j;
                        }
                    }
                    None => return b.len(),
                }
            }
        }
        Some(_) => {
            let mut j = i;
            while j < b.len() && !matches!(b[j], b',' | b'}' | b']' | b' ' | b'\t' | b'\n' | b'\r')
            {
                j += 1;
            }
            j
        }
        None => i,
    }
}

#[inline(always)]
fn ws(b: &[u8], mut i: usize) -> usize {
    while i < b.len() && matches!(b[i], b' ' | b'\t' | b'\n' | b'\r') {
        i += 1;
    }
    i
}

fn hex4(b: &[u8], i: usize) -> Result<u32, Malformed> {
    let Some(digits) = b.get(i..i + 4) else {
        return Err(Malformed { at: b.len() });
    };
    let mut n = 0u32;
    for (k, &c) in digits.iter().enumerate() {
        let d = match c {
            b'0'..=b'9' => c - b'0',
            b'a'..=b'f' => c - b'a' + 10,
            b'A'..=b'F' => c - b'A' + 10,
            _ => return Err(Malformed { at: i + k }),
        };
        n = n * 16 + d as u32;
    }
    Ok(n)
}

/// The end of the number starting at `i` (RFC 8259 grammar).
#[inline(always)]
fn number(b: &[u8], mut i: usize) -> Result<usize, Malformed> {
    let digits = |b: &[u8], mut i: usize| -> usize {
        while i < b.len() && b[i].is_ascii_digit() {
            i += 1;
        }
        i
    };
    if b.get(i) == Some(&b'-') {
        i += 1;
    }
    match b.get(i) {
        Some(b'0') => i += 1,
        Some(b'1'..=b'9') => i = digits(b, i + 1),
        _ => return Err(Malformed { at: i.min(b.len()) }),
    }
    if b.get(i) == Some(&b'.') {
        let j = digits(b, i + 1);
        if j == i + 1 {
            return Err(Malformed { at: j.min(b.len()) });
        }
        i = j;
    }
    if matches!(b.get(i), Some(b'e' | b'E')) {
        i += 1;
        if matches!(b.get(i), Some(b'+' | b'-')) {
            i += 1;
        }
        let j = digits(b, i);
        if j == i {
            return Err(Malformed { at: j.min(b.len()) });
        }
        i = j;
    }
    Ok(i)
}

/// Keys of one object at depth 1 or 2, for the ambiguity check.
struct Keys {
    spans: [Span; OUTLINE_MEMBERS],
    len: usize,
}

impl Keys {
    const EMPTY: Keys = Keys {
        spans: [Span {
            key: (0, 0),
            value: (0, 0),
        }; OUTLINE_MEMBERS],
        len: 0,
    };

    /// Adds a plain key; `Some(true)` when it repeats one (in any ASCII
    /// case), `None` when the object has too many members.
    fn add(&mut self, b: &[u8], key: (usize, usize)) -> Option<bool> {
        let k = &b[key.0..key.1];
        let dup = self.spans[..self.len]
            .iter()
            .any(|s| b[s.key.0 as usize..s.key.1 as usize].eq_ignore_ascii_case(k));
        if self.len == OUTLINE_MEMBERS {
            return None;
        }
        self.spans[self.len] = Span {
            key: (key.0 as u32, key.1 as u32),
            value: (0, 0),
        };
        self.len += 1;
        Some(dup)
    }

    fn end_value(&mut self, start: usize, end: usize) {
        if let Some(s) = self.len.checked_sub(1).map(|i| &mut self.spans[i]) {
            s.value = (start as u32, end as u32);
        }
    }
}

/// Token classes ([`CLASS`]): what a token's first byte is.
const SCALAR: u8 = 0;
const QUOTE: u8 = 1;
const COLON: u8 = 2;
const COMMA: u8 = 3;
const OPEN_OBJECT: u8 = 4;
const OPEN_ARRAY: u8 = 5;
const CLOSE_OBJECT: u8 = 6;
const CLOSE_ARRAY: u8 = 7;

/// The class of each byte that starts a token (scalar for the rest).
const CLASS: [u8; 256] = {
    let mut t = [SCALAR; 256];
    t[b'"' as usize] = QUOTE;
    t[b':' as usize] = COLON;
    t[b',' as usize] = COMMA;
    t[b'{' as usize] = OPEN_OBJECT;
    t[b'[' as usize] = OPEN_ARRAY;
    t[b'}' as usize] = CLOSE_OBJECT;
    t[b']' as usize] = CLOSE_ARRAY;
    t
};

/// Grammar states: what the next token may be.
/// A value in an object (after `:`).
const VALUE_IN_OBJECT: u8 = 0;
/// A value in an array (after `,`).
const VALUE_IN_ARRAY: u8 = 1;
/// A value or `]` (after `[`).
const VALUE_OR_CLOSE: u8 = 2;
/// A key (after `,` in an object).
const KEY: u8 = 3;
/// A key or `}` (after `{`).
const KEY_OR_CLOSE: u8 = 4;
/// `:` after a key.
const WANT_COLON: u8 = 5;
/// `,` or `}` after a member's value.
const NEXT_IN_OBJECT: u8 = 6;
/// `,` or `]` after an element.
const NEXT_IN_ARRAY: u8 = 7;
/// The outermost value (always an object here).
const START: u8 = 8;
/// The outermost value is complete: no token may follow.
const DONE: u8 = 9;
/// Not a valid token here.
const ERR: u8 = 0xff;
/// A closer where one may come: the state is the parent's `NEXT_IN_*`.
const POP: u8 = 10;

/// The state after a token of each class, in each state.
const TRANSITION: [[u8; 8]; 16] = {
    let mut t = [[ERR; 8]; 16];
    let mut s = 0;
    while s < 10 {
        let s8 = s as u8;
        let value = s8 == VALUE_IN_OBJECT || s8 == VALUE_IN_ARRAY || s8 == VALUE_OR_CLOSE;
        if value || s8 == START {
            t[s][OPEN_OBJECT as usize] = KEY_OR_CLOSE;
            t[s][OPEN_ARRAY as usize] = VALUE_OR_CLOSE;
        }
        if value {
            let next = if s8 == VALUE_IN_OBJECT {
                NEXT_IN_OBJECT
            } else {
                NEXT_IN_ARRAY
            };
            t[s][QUOTE as usize] = next;
            t[s][SCALAR as usize] = next;
        }
        s += 1;
    }
    t[KEY as usize][QUOTE as usize] = WANT_COLON;
    t[KEY_OR_CLOSE as usize][QUOTE as usize] = WANT_COLON;
    t[KEY_OR_CLOSE as usize][CLOSE_OBJECT as usize] = POP;
    t[WANT_COLON as usize][COLON as usize] = VALUE_IN_OBJECT;
    t[NEXT_IN_OBJECT as usize][COMMA as usize] = KEY;
    t[NEXT_IN_OBJECT as usize][CLOSE_OBJECT as usize] = POP;
    t[NEXT_IN_ARRAY as usize][COMMA as usize] = VALUE_IN_ARRAY;
    t[NEXT_IN_ARRAY as usize][CLOSE_ARRAY as usize] = POP;
    t[VALUE_OR_CLOSE as usize][CLOSE_ARRAY as usize] = POP;
    t
};

/// [`TRANSITION`] by state and byte in one lookup: `class << 4 | next`,
/// or [`ERR`].
const STEP: [u8; 16 * 256] = {
    let mut t = [ERR; 16 * 256];
    let mut s = 0;
    while s < 16 {
        let mut c = 0;
        while c < 256 {
            let class = CLASS[c];
            let next = TRANSITION[s][class as usize];
            if next != ERR {
                t[s << 8 | c] = class << 4 | next;
            }
            c += 1;
        }
        s += 1;
    }
    t
};

/// Scans one answer (the whole text; surrounding whitespace allowed): `Err`
/// when it is not one well-formed JSON value, otherwise what it is.
///
/// One pass over the bytes, 64 at a time ([`crate::scan`]): each block is
/// classified into bitmasks (quotes, backslashes, control bytes, `{}[],:`,
/// whitespace), the bytes inside strings found by a prefix XOR of the
/// unescaped quotes (odd backslash runs carried across blocks, as simdjson's
/// stage 1), and only the tokens are then visited, by `trailing_zeros`: the
/// structurals outside strings, opening quotes and the first byte of each
/// scalar. The grammar is checked per token; numbers and literals are read
/// where they start (their end must be whitespace, a structural or a quote);
/// a raw control byte in a string, or outside one other than `\t\n\r`, is
/// refused from the masks; escapes are checked only where a backslash
/// is; UTF-8 by `std::str::from_utf8` once, from the first block that has
/// a byte above 0x7f (an all-ASCII answer needs no UTF-8 check).
///
/// The entries of a list array in `result` (`tools`, `resources`,
/// `resourceTemplates`, `prompts`) are recorded in the same pass with the
/// span of their naming member ([`ListIndex`]), so a list filter walks no
/// text again; that index is the only allocation (none for other answers).
pub fn scan_answer(b: &[u8]) -> Result<Scan, Malformed> {
    if b.len() >= u32::MAX as usize {
        return Ok(Scan::Undecided);
    }
    if b.get(ws(b, 0)) != Some(&b'{') {
        // Arrays (batches) and bare values are read the slow way.
        return Ok(Scan::Undecided);
    }
    let mut state = START;
    let mut depth = 0usize;
    // One bit per open container: 1 for an object.
    let mut stack = [0u64; MAX_DEPTH / 64];
    // The opening quote of the last string (the key, at a `:`).
    let mut key_start = 0usize;
    let mut rec = Recorder::new();
    let mut tracker = StringTracker::new();
    // 1 when the previous block ended in a scalar byte.
    let mut other_carry = 0u64;
    // The first block with a byte above 0x7f (UTF-8 is checked from there).
    let mut non_ascii_from = None;
    // After the last backslash or non-ASCII byte seen (0: none): a key
    // starting at or after it is plain ASCII without escapes.
    let mut special_end = 0usize;
    let mut base = 0usize;
    while base < b.len() {
        let block: [u8; 64] = match b.get(base..base + 64) {
            Some(c) => c.try_into().expect("64 bytes"),
            None => {
                // The last block, padded with spaces (no tokens, no errors).
                let mut pad = [b' '; 64];
                pad[..b.len() - base].copy_from_slice(&b[base..]);
                pad
            }
        };
        let m = classify64_tokens(&block);
        let (escaped, quotes, in_str) = tracker.strings(m.quote, m.backslash);
        if m.non_ascii != 0 && non_ascii_from.is_none() {
            non_ascii_from = Some(base);
        }
        let special = m.non_ascii | m.backslash;
        if special != 0 {
            special_end = base + 64 - special.leading_zeros() as usize;
        }
        // Raw control bytes: none in strings; outside, only `\t\n\r`
        // (whitespace; rare in one-line answers, so checked one by one).
        if m.control != 0 {
            let bad = m.control & in_str;
            if bad != 0 {
                return Err(Malformed {
                    at: base + bad.trailing_zeros() as usize,
                });
            }
            let mut outside = m.control & !in_str;
            while outside != 0 {
                let at = base + outside.trailing_zeros() as usize;
                if !matches!(b[at], b'\t' | b'\n' | b'\r') {
                    return Err(Malformed { at });
                }
                outside &= outside - 1;
            }
        }
        // Escapes: the backslashes that are not themselves escaped.
        let mut esc = m.backslash & !escaped & in_str;
        while esc != 0 {
            escape(b, base + esc.trailing_zeros() as usize)?;
            esc &= esc - 1;
        }
        let other = m.scalar & !in_str;
        let scalar_starts = other & !((other << 1) | other_carry);
        other_carry = other >> 63;
        let mut tokens = (m.structural & !in_str) | (quotes & in_str) | scalar_starts;
        while tokens != 0 {
            let k = tokens.trailing_zeros() as usize;
            let at = base + k;
            tokens &= tokens - 1;
            let step = STEP[(state as usize & 15) << 8 | block[k & 63] as usize];
            if step == ERR {
                return Err(Malformed { at });
            }
            let (class, next) = (step >> 4, step & 15);
            if class < OPEN_OBJECT {
                // A string, a scalar, `:` or `,`.
                if depth <= 4 {
                    match class {
                        COLON
                            if rec.key_ends(b, depth, key_start, at, special_end <= key_start) =>
                        {
                            return Ok(Scan::Undecided);
                        }
                        COLON => {}
                        COMMA => rec.value_ends(b, depth, at),
                        _ if depth == 3 && next == NEXT_IN_ARRAY => rec.value_starts(at, false),
                        _ => {}
                    }
                }
                if class == SCALAR {
                    scalar(b, at)?;
                }
                key_start = at;
                state = next;
            } else if class < CLOSE_OBJECT {
                if depth == MAX_DEPTH {
                    return Err(Malformed { at });
                }
                let obj = class == OPEN_OBJECT;
                if depth == 3 {
                    rec.value_starts(at, obj);
                }
                let bit = 1u64 << (depth % 64);
                if obj {
                    stack[depth / 64] |= bit;
                } else {
                    stack[depth / 64] &= !bit;
                }
                depth += 1;
                if depth <= 3 {
                    rec.opened(b, depth, obj, at);
                }
                state = next;
            } else {
                if depth <= 4 {
                    if state >= NEXT_IN_OBJECT {
                        rec.value_ends(b, depth, at);
                    }
                    rec.closed(depth, at);
                }
                depth -= 1;
                state = if depth == 0 {
                    DONE
                } else {
                    let d = depth - 1;
                    if stack[d / 64] >> (d % 64) & 1 == 1 {
                        NEXT_IN_OBJECT
                    } else {
                        NEXT_IN_ARRAY
                    }
                };
            }
        }
        base += 64;
    }
    if state != DONE || tracker.in_string() {
        return Err(Malformed { at: b.len() });
    }
    if let Some(from) = non_ascii_from
        && let Err(e) = std::str::from_utf8(&b[from..])
    {
        return Err(Malformed {
            at: from + e.valid_up_to(),
        });
    }
    Ok(rec.finish())
}

/// Checks the number or literal starting at `at`: its run of bytes must end
/// where its grammar does (at whitespace, a structural, a quote or the end).
#[inline]
fn scalar(b: &[u8], at: usize) -> Result<(), Malformed> {
    let end = match b[at] {
        b'-' | b'0'..=b'9' => number(b, at)?,
        c @ (b't' | b'f' | b'n') => {
            let lit: &[u8] = match c {
                b't' => b"true",
                b'f' => b"false",
                _ => b"null",
            };
            if b.get(at..at + lit.len()) != Some(lit) {
                return Err(Malformed { at });
            }
            at + lit.len()
        }
        _ => return Err(Malformed { at }),
    };
    match b.get(end) {
        None
        | Some(b' ' | b'\t' | b'\n' | b'\r' | b'"' | b',' | b':' | b'[' | b']' | b'{' | b'}') => {
            Ok(())
        }
        Some(_) => Err(Malformed { at: end }),
    }
}

/// Checks the escape whose backslash is at `i` (in a string).
#[inline]
fn escape(b: &[u8], i: usize) -> Result<(), Malformed> {
    match b.get(i + 1) {
        Some(b'"' | b'\\' | b'/' | b'b' | b'f' | b'n' | b'r' | b't') => Ok(()),
        // Any four hex digits, a lone surrogate too: the strict validator
        // accepts it (readers decode it to U+FFFD, as Go does), and Node
        // servers write one (`JSON.stringify` escapes a lone surrogate).
        Some(b'u') => hex4(b, i + 2).map(|_| ()),
        Some(_) => Err(Malformed { at: i + 1 }),
        None => Err(Malformed { at: b.len() }),
    }
}

/// The offset after the last non-whitespace byte before `i`.
#[inline(always)]
fn rws(b: &[u8], mut i: usize) -> usize {
    while i > 0 && matches!(b[i - 1], b' ' | b'\t' | b'\n' | b'\r') {
        i -= 1;
    }
    i
}

/// The names of the list arrays in `result`, and the member naming each entry.
const LISTS: [(&[u8], &[u8]); 4] = [
    (b"tools", b"name"),
    (b"resources", b"uri"),
    (b"resourceTemplates", b"uriTemplate"),
    (b"prompts", b"name"),
];

/// One entry of a list array, as [`scan_answer`] found it.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct ListEntry {
    /// Byte range of the entry's value.
    pub span: (u32, u32),
    /// Byte range of the value of its naming member, when it has exactly
    /// one, spelled exactly (`(0, 0)` otherwise).
    pub name: (u32, u32),
    /// The entry is an object.
    pub object: bool,
    /// The naming member appears twice, or in another letter case.
    pub ambiguous: bool,
    /// A key of the entry has escapes or non-ASCII bytes: the entry must be
    /// read the slow way (its name may be spelled with escapes).
    pub undecided: bool,
}

/// The entries of the first list array of `result` (`tools`, `resources`,
/// `resourceTemplates` or `prompts`), recorded while scanning.
#[derive(Debug, Clone, Default)]
pub struct ListIndex {
    /// The array's member name (`tools`...).
    pub array: &'static str,
    /// The member naming each entry (`name`, `uri`, `uriTemplate`).
    pub key: &'static str,
    /// Byte range of the array, `[` to `]` included.
    pub span: (u32, u32),
    /// Its entries, in order.
    pub entries: Vec<ListEntry>,
}

/// What the scan keeps of the outer levels, told by the token walk at
/// depths 1 to 4 only: the keys of the envelope and of `result` (for the
/// ambiguity checks and the outline), their value spans, and the entries of
/// a list array.
struct Recorder {
    top: Keys,
    second: Keys,
    result: Keys,
    /// The depth-2 object open now is the value of `result`.
    in_result: bool,
    result_seen: bool,
    ambiguous: bool,
    /// Where the value of the current member at depth 1 / 2 started.
    value_start: [usize; 3],
    /// The list array being recorded (open at depth 3) and its naming key.
    list: Option<ListIndex>,
    recording: bool,
    want_key: &'static [u8],
    /// Where the value of the current entry's naming member started (when
    /// the member being read at depth 4 is it).
    name_start: Option<usize>,
}

impl Recorder {
    fn new() -> Recorder {
        Recorder {
            top: Keys::EMPTY,
            second: Keys::EMPTY,
            result: Keys::EMPTY,
            in_result: false,
            result_seen: false,
            ambiguous: false,
            value_start: [0; 3],
            list: None,
            recording: false,
            want_key: b"",
            name_start: None,
        }
    }

    /// The entry being recorded.
    #[inline(always)]
    fn entry(&mut self) -> Option<&mut ListEntry> {
        self.list.as_mut().and_then(|l| l.entries.last_mut())
    }

    /// A value starts at `at` in a container at depth 3: in the list being
    /// recorded, a new entry.
    #[inline(always)]
    fn value_starts(&mut self, at: usize, object: bool) {
        if self.recording
            && let Some(l) = self.list.as_mut()
        {
            l.entries.push(ListEntry {
                span: (at as u32, 0),
                object,
                ..ListEntry::default()
            });
        }
    }

    /// A container opened at `at`; `depth` (1 to 3) counts it.
    #[inline(always)]
    fn opened(&mut self, b: &[u8], depth: usize, obj: bool, at: usize) {
        if obj && depth == 2 {
            self.second.len = 0;
            let top = &self.top;
            self.in_result = !self.result_seen
                && top.len > 0
                && &b[top.spans[top.len - 1].key.0 as usize..top.spans[top.len - 1].key.1 as usize]
                    == b"result";
            if self.in_result {
                self.result_seen = true;
            }
        }
        if !obj && depth == 3 && self.in_result && self.list.is_none() {
            let s = &self.second.spans[self.second.len - 1];
            let name = &b[s.key.0 as usize..s.key.1 as usize];
            if let Some((array, key)) = LISTS.iter().find(|(a, _)| *a == name) {
                self.list = Some(ListIndex {
                    array: std::str::from_utf8(array).unwrap_or_default(),
                    key: std::str::from_utf8(key).unwrap_or_default(),
                    span: (at as u32, 0),
                    entries: Vec::with_capacity(b.len() / 256 + 1),
                });
                self.recording = true;
                self.want_key = key;
            }
        }
    }

    /// The container at `depth` (1 to 4) closed at `at`.
    #[inline(always)]
    fn closed(&mut self, depth: usize, at: usize) {
        if depth == 2 {
            self.in_result = false;
        }
        if depth == 3 && self.recording {
            self.recording = false;
            if let Some(l) = self.list.as_mut() {
                l.span.1 = at as u32 + 1;
            }
        }
    }

    /// The key whose opening quote is at `key_start` ends before the colon
    /// at `colon` (only whitespace between: no token came in between), in
    /// an object at `depth` (1 to 4); `known_plain` when no backslash or
    /// non-ASCII byte comes after its opening quote in the blocks read so
    /// far. True when the scan cannot decide
    /// (an escaped or non-ASCII key at depth 1 or 2, too many members).
    #[inline(always)]
    fn key_ends(
        &mut self,
        b: &[u8],
        depth: usize,
        key_start: usize,
        colon: usize,
        known_plain: bool,
    ) -> bool {
        if depth == 3 || (depth == 4 && !self.recording) {
            return false;
        }
        let key = (key_start + 1, rws(b, colon) - 1);
        let k = &b[key.0..key.1];
        let plain = known_plain || k.iter().all(|&c| c != b'\\' && c < 0x80);
        if depth == 4 {
            let want = self.want_key;
            let found = plain && k.eq_ignore_ascii_case(want);
            if let Some(e) = self.entry() {
                if !plain {
                    e.undecided = true;
                } else if found {
                    e.ambiguous |= e.name != (0, 0) || k != want;
                    e.name = (1, 1); // "seen", until the value ends
                }
            }
            if found {
                self.name_start = Some(ws(b, colon + 1));
            }
            return false;
        }
        if !plain {
            return true;
        }
        let keys = if depth == 1 {
            self.ambiguous |= envelope_variant(k);
            &mut self.top
        } else {
            &mut self.second
        };
        match keys.add(b, key) {
            None => return true,
            Some(dup) => self.ambiguous |= dup,
        }
        self.value_start[depth] = ws(b, colon + 1);
        false
    }

    /// The value before the `,` or closer at `at`, in a container at
    /// `depth` (1 to 4), ended.
    #[inline(always)]
    fn value_ends(&mut self, b: &[u8], depth: usize, at: usize) {
        match depth {
            1 => self.top.end_value(self.value_start[1], rws(b, at)),
            2 => {
                self.second.end_value(self.value_start[2], rws(b, at));
                if self.in_result {
                    let n = self.second.len;
                    self.result.spans[..n].copy_from_slice(&self.second.spans[..n]);
                    self.result.len = n;
                }
            }
            3 if self.recording => {
                let end = rws(b, at) as u32;
                if let Some(e) = self.entry() {
                    e.span.1 = end;
                }
            }
            4 if self.recording => {
                if let Some(start) = self.name_start.take() {
                    let end = rws(b, at) as u32;
                    if let Some(e) = self.entry() {
                        e.name = (start as u32, end);
                    }
                }
            }
            _ => {}
        }
    }

    fn finish(self) -> Scan {
        if self.ambiguous {
            return Scan::Ambiguous;
        }
        Scan::Plain(AnswerOutline {
            top: self.top.spans,
            top_len: self.top.len,
            result: self.result.spans,
            result_len: if self.result_seen { self.result.len } else { 0 },
            list: self.list.filter(|l| l.span.1 != 0),
        })
    }
}

/// True when `k`, a plain ASCII key of the envelope, is the name of an
/// envelope member (`jsonrpc`, `id`, `method`, `params`, `result`,
/// `error`) in another letter case: a reader matching names
/// case-insensitively (Go's `encoding/json`) takes it for that member.
/// Only keys of those lengths are compared (the check for non-ASCII and
/// escaped names is [`crate::jsonrpc::ambiguous_answer_envelope`]'s).
#[inline(always)]
fn envelope_variant(k: &[u8]) -> bool {
    let names: &[&[u8]] = match k.len() {
        2 => &[b"id"],
        5 => &[b"error"],
        6 => &[b"result", b"method", b"params"],
        7 => &[b"jsonrpc"],
        _ => return false,
    };
    names.iter().any(|n| k != *n && k.eq_ignore_ascii_case(n))
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;

    fn serde_accepts(b: &[u8]) -> bool {
        serde_json::from_slice::<serde_json::Value>(b).is_ok()
    }

    /// serde_json refuses the text for one of the documented differences.
    fn serde_differs(b: &[u8]) -> bool {
        serde_json::from_slice::<serde_json::Value>(b).is_err_and(|e| {
            let m = e.to_string();
            m.starts_with("number out of range")
                || m.starts_with("recursion limit exceeded")
                || m.starts_with("lone leading surrogate")
                || m.starts_with("unexpected end of hex escape")
        })
    }

    /// The well-formedness the strict validator gives answers.
    fn strict_accepts(b: &[u8]) -> bool {
        let s = crate::json::Strictness {
            max_depth: 1024,
            ..crate::json::Strictness::LENIENT
        };
        crate::json::validate(b, s).is_ok()
    }

    /// Well-formedness as this scanner decides it, for any text: an
    /// undecided text is wrapped so the scanner decides it.
    fn accepts(b: &[u8]) -> bool {
        if b.iter().all(|c| b" \t\r\n".contains(c)) {
            return false;
        }
        match scan_answer(b) {
            Ok(Scan::Plain(_) | Scan::Ambiguous) => true,
            Err(_) => false,
            Ok(Scan::Undecided) => {
                let mut w = b"{\"v\":[".to_vec();
                w.extend_from_slice(b);
                w.extend_from_slice(b"]}");
                match scan_answer(&w) {
                    Ok(Scan::Plain(_) | Scan::Ambiguous) => true,
                    Err(_) => false,
                    Ok(Scan::Undecided) => panic!("undecided twice"),
                }
            }
        }
    }

    const SAMPLES: &[&str] = &[
        r#"{"jsonrpc":"2.0","id":1,"result":{"tools":[{"name":"a","description":"é ü \u00e9 \ud83d\ude00 \n"}]}}"#,
        r#"{"a":[1,-0,0.5,1e5,1E+5,-1.25e-7,true,false,null,"",{}, []]}"#,
        r#"  {"a" : { "b" : [ ] } }  "#,
        "{}",
        "[]",
        "\"x\"",
        "12",
        r#"{"a":01}"#,
        r#"{"a":1.}"#,
        r#"{"a":.5}"#,
        r#"{"a":-}"#,
        r#"{"a":1e}"#,
        r#"{"a":+1}"#,
        r#"{"a":tru}"#,
        r#"{"a":nul}"#,
        r#"{"a":"\x"}"#,
        r#"{"a":"\u12"}"#,
        r#"{"a":"\uDBFF\uDFFF"}"#,
        "{\"a\":\"\t\"}",
        "{\"a\":\"\u{7f}\"}",
        r#"{"a":1,}"#,
        r#"{"a":1 "b":2}"#,
        r#"{"a" 1}"#,
        r#"{"a":[1,]}"#,
        r#"{"a":[1 2]}"#,
        r#"{"a":[}"#,
        r#"{"a":{]}"#,
        r#"{"a":1}}"#,
        r#"{"a":1} x"#,
        r#"{1:2}"#,
        r#"{"a":'x'}"#,
        "{\"a\":\"\u{a0}\"}",
        "",
        "   ",
    ];

    #[test]
    fn agrees_with_serde_json_on_samples() {
        for s in SAMPLES {
            assert_eq!(accepts(s.as_bytes()), serde_accepts(s.as_bytes()), "{s}");
            assert_eq!(accepts(s.as_bytes()), strict_accepts(s.as_bytes()), "{s}");
        }
    }

    #[test]
    fn bad_utf8_is_refused_everywhere() {
        for bad in [
            &b"\xff"[..],
            b"\xc0\x80",
            b"\xc3",
            b"\xe0\x80\x80",
            b"\xed\xa0\x80", // an encoded surrogate
            b"\xf4\x90\x80\x80",
            b"\xf0\x9f\x98",
            b"\x80",
        ] {
            let mut t = b"{\"a\":\"ok ".to_vec();
            t.extend_from_slice(bad);
            t.extend_from_slice(b" ok\"}");
            assert!(!accepts(&t), "{t:?}");
            assert!(!serde_accepts(&t), "{t:?}");
        }
        assert!(accepts("{\"a\":\"\u{10ffff}\u{800}\u{80}\"}".as_bytes()));
    }

    /// The two deliberate differences from serde_json.
    #[test]
    fn deliberate_differences() {
        let deep = format!("{{\"a\":{}{}}}", "[".repeat(200), "]".repeat(200));
        assert!(accepts(deep.as_bytes()));
        assert!(!serde_accepts(deep.as_bytes()));
        let too_deep = format!("{{\"a\":{}{}}}", "[".repeat(1024), "]".repeat(1024));
        assert!(!accepts(too_deep.as_bytes()));
        assert!(accepts(br#"{"a":1e400}"#));
        assert!(!serde_accepts(br#"{"a":1e400}"#));
        for lone in [
            &br#"{"a":"\ud800"}"#[..],
            br#"{"a":"\udc00"}"#,
            br#"{"a":"\ud800\u0041"}"#,
            br#"{"a":"\ud800x"}"#,
            br#"{"a":"\ud800\ud800\udc00"}"#,
        ] {
            assert!(accepts(lone), "{lone:?}");
            assert!(!serde_accepts(lone), "{lone:?}");
        }
        assert!(!accepts(br#"{"a":"\ud80"}"#));
        assert!(!accepts(br#"{"a":"\ud80g"}"#));
    }

    #[test]
    fn outlines_and_ambiguity() {
        let t = br#"{"jsonrpc":"2.0","id":7,"result":{"tools":[{"name":"x"}],"nextCursor":"c"},"error":null}"#;
        let Ok(Scan::Plain(o)) = scan_answer(t) else {
            panic!()
        };
        assert_eq!(o.get(t, "id").unwrap().as_bytes(), b"7");
        assert_eq!(o.get(t, "error").unwrap().as_bytes(), b"null");
        assert_eq!(
            o.result_get(t, "tools").unwrap().as_bytes(),
            br#"[{"name":"x"}]"#
        );
        assert_eq!(o.result_get(t, "nextCursor").unwrap().as_bytes(), br#""c""#);
        let keys: Vec<String> = o.top(t).map(|(k, _)| k.folded()).collect();
        assert_eq!(keys, ["jsonrpc", "id", "result", "error"]);
        for amb in [
            &br#"{"id":1,"id":2,"result":{}}"#[..],
            br#"{"id":1,"ID":2,"result":{}}"#,
            br#"{"id":1,"result":{},"Result":{}}"#,
            br#"{"id":1,"result":{"tools":[],"TOOLS":[{"name":"x"}]}}"#,
            br#"{"id":1,"error":{"code":1,"code":2}}"#,
        ] {
            assert!(matches!(scan_answer(amb), Ok(Scan::Ambiguous)), "{amb:?}");
        }
        // Depth 3 and below: well-formedness only.
        assert!(matches!(
            scan_answer(br#"{"id":1,"result":{"tools":[{"name":"a","name":"b"}]}}"#),
            Ok(Scan::Plain(_))
        ));
        // An ambiguous but malformed text is malformed.
        assert!(scan_answer(br#"{"id":1,"id":2,"result":{}"#).is_err());
        for undecided in [
            &br#"{"\u0069d":1}"#[..],
            "{\"ïd\":1}".as_bytes(),
            br#"{"result":{"\"":1}}"#,
            br#"[{"id":1}]"#,
        ] {
            assert!(matches!(scan_answer(undecided), Ok(Scan::Undecided)));
        }
        let many: String = (0..17).map(|i| format!("\"k{i}\":{i},")).collect();
        let many = format!("{{{}\"id\":1}}", many);
        assert!(matches!(scan_answer(many.as_bytes()), Ok(Scan::Undecided)));
    }

    #[test]
    fn every_truncation_of_a_valid_answer_is_refused() {
        let t = r#"{"jsonrpc":"2.0","id":1,"result":{"tools":[{"name":"a","description":"é \u00e9 \ud83d\ude00","inputSchema":{"type":"object","properties":{"n":{"type":"number","minimum":-1.5e3}},"required":["n"]}}],"x":[true,false,null]}}"#;
        for cut in 0..t.len() {
            let b = &t.as_bytes()[..cut];
            assert_eq!(accepts(b), serde_accepts(b), "cut at {cut}");
        }
        assert!(accepts(t.as_bytes()));
    }

    /// Random JSON-ish texts built from pieces that are often valid.
    fn text() -> impl Strategy<Value = String> {
        let leaf = prop_oneof![
            Just("0".to_string()),
            Just("-12.5e+3".to_string()),
            Just("1E400".to_string()),
            Just("01".to_string()),
            Just("true".to_string()),
            Just("null".to_string()),
            Just("nul".to_string()),
            "\"([a-zA-Z é\\u{1F600}]|\\\\[\"\\\\/bfnrtx]|\\\\u[0-9a-fA-FdD]{4}){0,6}\"",
        ];
        leaf.prop_recursive(4, 40, 6, |inner| {
            prop_oneof![
                prop::collection::vec(inner.clone(), 0..5)
                    .prop_map(|v| format!("[{}]", v.join(","))),
                prop::collection::vec(("[a-cA-C]{1,2}", inner), 0..5).prop_map(|v| {
                    let m: Vec<String> = v
                        .into_iter()
                        .map(|(k, v)| format!("\"{k}\": {v}"))
                        .collect();
                    format!("{{{}}}", m.join(" ,"))
                }),
            ]
        })
    }

    proptest! {
        #![proptest_config(ProptestConfig::with_cases(2000))]
        #[test]
        fn agrees_with_serde_json(t in text(), cut in any::<prop::sample::Index>(), flip in any::<(prop::sample::Index, u8)>()) {
            let t = format!("{{\"id\":1,\"result\":{t}}}");
            let b = t.as_bytes();
            let mut m = b.to_vec();
            let at = flip.0.index(m.len());
            m[at] = flip.1;
            let c = &b[..cut.index(b.len() + 1)];
            for t in [b, c, &m[..]] {
                // Always as the strict validator reads answers; as serde_json
                // but for the documented differences.
                prop_assert_eq!(accepts(t), strict_accepts(t), "{:?}", String::from_utf8_lossy(t));
                if !serde_differs(t) {
                    prop_assert_eq!(accepts(t), serde_accepts(t), "{:?}", String::from_utf8_lossy(t));
                }
            }
        }
    }

    /// Backslash runs, quotes, control bytes and bad escapes at every
    /// offset around the 64-byte block boundaries the scan works in.
    #[test]
    fn escapes_and_specials_across_block_boundaries() {
        let pieces: &[&[u8]] = &[
            br#"\\"#,
            br#"\""#,
            br#"\\\""#,
            br#"\\\\"#,
            br#"\u00e9"#,
            br#"\uD83D\uDE00"#,
            b"\\",
            b"\\x",
            b"\\u12",
            b"\x01",
            b"\t",
            b"\x7f",
            "é".as_bytes(),
            b"\xe9",
            b"\"",
            b"\",\"b\":\"",
            b"\"}",
        ];
        for pad in 0..140 {
            for piece in pieces {
                let mut t = b"{\"id\":1,\"result\":{\"a\":\"".to_vec();
                t.extend(std::iter::repeat_n(b'x', pad));
                t.extend_from_slice(piece);
                t.extend_from_slice(b"y\"},\"z\":[1,{\"k\":null}]}");
                assert_eq!(
                    accepts(&t),
                    serde_accepts(&t),
                    "{:?}",
                    String::from_utf8_lossy(&t)
                );
            }
        }
    }

    /// Nesting up to [`MAX_DEPTH`] is accepted, one more level refused.
    #[test]
    fn nesting_to_the_limit() {
        let arrays = |n: usize| format!("{{\"a\":{}{}}}", "[".repeat(n - 1), "]".repeat(n - 1));
        assert!(accepts(arrays(MAX_DEPTH).as_bytes()));
        assert!(!accepts(arrays(MAX_DEPTH + 1).as_bytes()));
        let objects = |n: usize| format!("{}1{}", "{\"a\":".repeat(n), "}".repeat(n));
        assert!(accepts(objects(MAX_DEPTH).as_bytes()));
        assert!(!accepts(objects(MAX_DEPTH + 1).as_bytes()));
    }

    /// Number spellings, literals and what may follow them.
    #[test]
    fn scalars_agree_with_serde_json() {
        for v in [
            "-",
            "01",
            "1.",
            "1e",
            "1e+",
            "-0",
            "-01",
            "0.0e0",
            "1E-0",
            ".1",
            "+1",
            "1.5.2",
            "1e5e5",
            "0x10",
            "Infinity",
            "NaN",
            "-Infinity",
            "true",
            "truee",
            "tru",
            "nul",
            "null1",
            "false",
            "fals",
            "1true",
            "1 2",
            "1\"a\"",
            "\"a\"1",
            "\"a\" \"b\"",
            "1,",
            "[1]x",
            "1/",
            "\\",
            "-a",
            "1\u{b}",
            "1\u{c}",
            "1\u{0}",
        ] {
            let t = format!("{{\"id\":1,\"result\":{{\"v\":{v}}}}}");
            assert_eq!(accepts(t.as_bytes()), serde_accepts(t.as_bytes()), "{t}");
            let t = format!("{{\"id\":1,\"result\":[{v}]}}");
            assert_eq!(accepts(t.as_bytes()), serde_accepts(t.as_bytes()), "{t}");
        }
    }

    /// The entries of a list array, as the filters read them.
    #[test]
    fn list_entries_are_recorded() {
        let t = br#"{"id":1,"result":{"nextCursor":"c","tools":[ {"name":"a","x":{"name":"no"}} , "s", {"Name":"b"},{"name":"c","name":"d"},{"n\u0061me":"e"},{"d":[{"name":"f"}],"name" : "g" }],"x":[{"name":"h"}]}}"#;
        let Ok(Scan::Plain(o)) = scan_answer(t) else {
            panic!()
        };
        assert!(o.list("prompts").is_none());
        let l = o.list("tools").unwrap();
        assert_eq!(l.key, "name");
        let span = |s: (u32, u32)| std::str::from_utf8(&t[s.0 as usize..s.1 as usize]).unwrap();
        assert_eq!(
            span(l.span).as_bytes(),
            o.result_get(t, "tools").unwrap().as_bytes()
        );
        let got: Vec<(&str, &str, bool, bool, bool)> = l
            .entries
            .iter()
            .map(|e| {
                (
                    span(e.span),
                    span(e.name),
                    e.object,
                    e.ambiguous,
                    e.undecided,
                )
            })
            .collect();
        assert_eq!(
            got,
            [
                (
                    r#"{"name":"a","x":{"name":"no"}}"#,
                    r#""a""#,
                    true,
                    false,
                    false
                ),
                (r#""s""#, "", false, false, false),
                (r#"{"Name":"b"}"#, r#""b""#, true, true, false),
                (r#"{"name":"c","name":"d"}"#, r#""d""#, true, true, false),
                (r#"{"n\u0061me":"e"}"#, "", true, false, true),
                (
                    r#"{"d":[{"name":"f"}],"name" : "g" }"#,
                    r#""g""#,
                    true,
                    false,
                    false
                ),
            ]
        );
        for (array, key) in [
            ("resources", "uri"),
            ("resourceTemplates", "uriTemplate"),
            ("prompts", "name"),
        ] {
            let t = format!(r#"{{"id":1,"result":{{"{array}":[{{"{key}":"v"}}]}}}}"#);
            let Ok(Scan::Plain(o)) = scan_answer(t.as_bytes()) else {
                panic!()
            };
            let l = o.list(array).unwrap();
            assert_eq!((l.key, l.entries.len()), (key, 1));
        }
        // Not under `result`: nothing recorded.
        let t = br#"{"id":1,"error":{"tools":[{"name":"a"}]}}"#;
        let Ok(Scan::Plain(o)) = scan_answer(t) else {
            panic!()
        };
        assert!(o.list("tools").is_none());
    }

    #[test]
    fn envelope_members_in_another_case_are_ambiguous() {
        for amb in [
            r#"{"jsonrpc":"2.0","id":1,"Result":{"tools":[]}}"#,
            r#"{"ID":1,"result":{}}"#,
            r#"{"id":1,"ERROR":{"code":1}}"#,
            r#"{"Jsonrpc":"2.0","id":1,"result":{}}"#,
            r#"{"id":1,"Method":"x"}"#,
            r#"{"id":1,"result":{},"PARAMS":{}}"#,
            r#"{"id":1,"result":{},"id":2}"#,
            r#"{"id":1,"Id":1,"result":{}}"#,
        ] {
            assert!(
                matches!(scan_answer(amb.as_bytes()), Ok(Scan::Ambiguous)),
                "{amb}"
            );
        }
        // Other names, and envelope names deeper down, are read as written.
        for plain in [
            r#"{"id":1,"result":{"ID":1,"Result":2,"Error":3}}"#,
            r#"{"id":1,"Results":{},"ids":1,"i":2,"Errors":3,"paramss":4}"#,
            r#"{"id":1,"result":{"tools":[{"ID":1,"Method":2}]},"Tools":1}"#,
        ] {
            assert!(
                matches!(scan_answer(plain.as_bytes()), Ok(Scan::Plain(_))),
                "{plain}"
            );
        }
    }

    /// review5: the scanner decides ambiguity and well-formedness as the
    /// strict validator under SERVER_ANSWER does (what it replaced).
    fn review5_text() -> impl Strategy<Value = String> {
        let key = prop::sample::select(vec![
            "id",
            "ID",
            "Id",
            "result",
            "Result",
            "error",
            "tools",
            "Tools",
            "name",
            "NAME",
            "t\\u006fols",
            "r\\u0065sult",
            "\u{212a}",
            "k",
            "K",
            "a",
            "a",
            // Envelope members in another case, or spelled with a character
            // a case-insensitive reader folds to one of their letters.
            "Error",
            "ERROR",
            "jsonrpc",
            "JSONRPC",
            "method",
            "Method",
            "params",
            "PARAMS",
            "re\u{17f}ult",
            "\u{130}d",
            "\u{131}d",
            "R\\u0065sult",
            "i\\u0064",
            "iD",
        ]);
        let leaf = prop::sample::select(vec![
            "1",
            "\"x\"",
            "null",
            "[]",
            "{}",
            "\"\\ud800\"",
            "1e400",
            "\"\\u0000\"",
        ])
        .prop_map(str::to_string);
        leaf.prop_recursive(4, 64, 6, move |inner| {
            prop_oneof![
                prop::collection::vec(inner.clone(), 0..4)
                    .prop_map(|v| format!("[{}]", v.join(","))),
                prop::collection::vec((key.clone(), inner), 0..6).prop_map(|m| {
                    let body: Vec<String> =
                        m.into_iter().map(|(k, v)| format!("\"{k}\":{v}")).collect();
                    format!("{{{}}}", body.join(","))
                }),
            ]
        })
        .prop_filter("an object", |t| t.starts_with('{'))
    }

    proptest! {
        #![proptest_config(ProptestConfig::with_cases(3000))]
        #[test]
        fn review5_scan_agrees_with_server_answer(t in review5_text()) {
            let strict = crate::json::validate(t.as_bytes(), crate::json::Strictness {
                key_check_depth: 2,
                max_depth: 1024,
                ..crate::json::Strictness::STRICT
            });
            // The envelope, read from the decoded names (well-formed text only).
            let envelope = strict.as_ref().is_ok_and(|()| {
                crate::jsonrpc::ambiguous_answer_envelope(t.as_bytes()).is_some()
            });
            match scan_answer(t.as_bytes()) {
                Ok(Scan::Plain(_)) => prop_assert!(strict.is_ok() && !envelope, "{t}: {strict:?}"),
                Ok(Scan::Ambiguous) => prop_assert!(
                    envelope || strict.as_ref().is_err_and(|e| e.kind().is_ambiguous_key()),
                    "{t}: {strict:?}"
                ),
                Ok(Scan::Undecided) => {}
                Err(_) => prop_assert!(strict.as_ref().is_err_and(|e| !e.kind().is_ambiguous_key()), "{t}: {strict:?}"),
            }
        }
    }
}
