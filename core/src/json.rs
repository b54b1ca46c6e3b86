//! Zero-allocation JSON views over the raw bytes of a message.
//!
//! The proxy never builds a DOM for a message it forwards. It validates the
//! bytes once ([`validate`]), then hands out borrowed views ([`Value`],
//! [`JStr`], [`Num`]) that point into the original buffer. Numbers keep their
//! decimal text and compare exactly, so `9007199254740993` is not rounded to
//! a float and `1e6 == 1000000`.
//!
//! Views are only created over bytes that passed [`validate`]; the walking
//! functions still bounds-check everything and degrade to "missing" rather
//! than panic, so a logic error can never crash the decision path.

use std::cmp::Ordering;
use std::fmt;

use crate::fnv::Fnv;
use crate::scan;

crate::error_kinds! {
    /// What is wrong with a JSON text. Callers decide by the kind (a refusal's
    /// JSON-RPC code, whether a text is merely ambiguous), never by the
    /// message, which is derived from it: rewording one changes no behaviour.
    pub enum JsonErrorKind {
        /// Something follows the value.
        TrailingData => "trailing data after the JSON value",
        /// A word that is not `true`, `false` or `null`.
        InvalidLiteral => "invalid literal",
        /// A byte that cannot start a value.
        ExpectedValue => "expected a JSON value",
        /// The text ends where a value should be.
        UnexpectedEnd => "unexpected end of input",
        /// Arrays and objects nested deeper than [`Strictness::max_depth`].
        TooDeep => "nesting too deep",
        /// An array element followed by something else than `,` or `]`.
        ExpectedArraySeparator => "expected ',' or ']' in array",
        /// An object member that does not start with a string.
        ExpectedKey => "expected a string key in object",
        /// A key not followed by `:`.
        ExpectedColon => "expected ':' after object key",
        /// An object member followed by something else than `,` or `}`.
        ExpectedObjectSeparator => "expected ',' or '}' in object",
        /// The same key twice in one object (parsers disagree on which wins).
        DuplicateKey => "duplicate object key",
        /// Two keys of one object equal under Unicode case folding.
        CaseVariantKeys => "object keys differ only in letter case",
        /// A string that is not UTF-8.
        InvalidUtf8 => "invalid UTF-8 in string",
        /// A raw byte below 0x20 in a string.
        ControlCharacter => "control character in string",
        /// A string with no closing quote.
        UnterminatedString => "unterminated string",
        /// `\u` not followed by four hex digits.
        InvalidUnicodeEscape => "invalid \\u escape",
        /// A backslash followed by a letter JSON does not define.
        InvalidEscape => "invalid escape",
        /// A number outside JSON's grammar (`01`, `1.`, `.5`, `1e`).
        InvalidNumber => "invalid number",
    }
}

impl JsonErrorKind {
    /// True for the kinds that make a well-formed text ambiguous (duplicate
    /// or case-variant keys), as opposed to not JSON at all.
    pub const fn is_ambiguous_key(self) -> bool {
        matches!(
            self,
            JsonErrorKind::DuplicateKey | JsonErrorKind::CaseVariantKeys
        )
    }
}

/// Why a JSON text was rejected, and where. Kinds are plain values and
/// messages static, so rejecting allocates nothing.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct JsonError {
    /// Byte offset where the problem was found.
    pub offset: usize,
    kind: JsonErrorKind,
}

impl JsonError {
    /// What is wrong.
    pub const fn kind(&self) -> JsonErrorKind {
        self.kind
    }
}

impl fmt::Display for JsonError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{} at byte {}", self.kind, self.offset)
    }
}

impl std::error::Error for JsonError {}

/// How strictly [`validate`] reads a JSON text.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Strictness {
    /// Deepest nesting of arrays and objects accepted.
    pub max_depth: u32,
    /// Reject an object that has the same key twice (parsers disagree on which one wins).
    pub reject_duplicate_keys: bool,
    /// Reject an object with two keys equal under Unicode case folding
    /// (Go's `encoding/json` matches struct fields case-insensitively).
    pub reject_case_variant_keys: bool,
    /// Key checks apply to objects nested at most this deep (the outermost object is depth 1).
    pub key_check_depth: u32,
}

impl Strictness {
    /// What the proxy applies to a `tools/call`: no duplicates, no case variants, anywhere.
    pub const STRICT: Strictness = Strictness {
        max_depth: 128,
        reject_duplicate_keys: true,
        reject_case_variant_keys: true,
        key_check_depth: u32::MAX,
    };
    /// Key checks on the outermost object only (a JSON-RPC envelope).
    pub const ENVELOPE: Strictness = Strictness {
        key_check_depth: 1,
        ..Strictness::STRICT
    };
    /// Well-formedness only (duplicate keys allowed; the last one wins on lookup).
    pub const LENIENT: Strictness = Strictness {
        max_depth: 128,
        reject_duplicate_keys: false,
        reject_case_variant_keys: false,
        key_check_depth: 0,
    };
}

/// Validates that `bytes` is exactly one JSON value (surrounding whitespace allowed), under `strictness`.
///
/// Checks RFC 8259 grammar, UTF-8 (including inside strings), escapes,
/// nesting depth and, if asked, duplicate and case-variant object keys.
/// Allocation-free after the first call on a thread (a reusable scratch
/// buffer holds key fingerprints for objects with many keys).
pub fn validate(bytes: &[u8], strictness: Strictness) -> Result<(), JsonError> {
    Validator::new(bytes, strictness, None).run()
}

/// Like [`validate`], and records where the members of the outermost object
/// and of the objects directly inside it are, so a reader of JSON-RPC finds
/// `method`, `params`, `name` and `arguments` without walking the text again;
/// the members of `params.arguments` (both keys spelled without escapes) are
/// indexed too ([`Outline::arguments`]), for the decision on a `tools/call`.
pub fn validate_outline(bytes: &[u8], strictness: Strictness) -> Result<Outline, JsonError> {
    let mut outline = Outline::EMPTY;
    validate_outline_into(bytes, strictness, &mut outline)?;
    Ok(outline)
}

/// [`validate_outline`] into `outline` (which it resets): no copy of the
/// outline, a few KiB, on the way out.
pub fn validate_outline_into(
    bytes: &[u8],
    strictness: Strictness,
    outline: &mut Outline,
) -> Result<(), JsonError> {
    outline.reset();
    outline.text = (bytes.as_ptr() as usize, bytes.len());
    let mut v = Validator::new(bytes, strictness, Some(outline));
    v.index_on_path(&[b"params", b"arguments"]);
    v.run()
}

/// Like [`validate`], and indexes the members of the value when it is an
/// object ([`MemberIndex`]): what a call's arguments are read with.
pub fn validate_indexed(bytes: &[u8], strictness: Strictness) -> Result<MemberIndex, JsonError> {
    let mut v = Validator::new(bytes, strictness, None);
    v.index_on_path(&[]);
    v.run()?;
    Ok(v.index.unwrap_or(MemberIndex::NONE))
}

/// Most members a [`MemberIndex`] holds; the members of a larger object are
/// found by walking its text, as without an index.
pub const MEMBER_INDEX_CAPACITY: usize = 16;

/// Where the members of one object are (key and value of each, in document
/// order, duplicates included), recorded by the validator as it passes them,
/// so that reading an argument does not walk the text a second time,
/// skipping every nested value byte by byte. Fixed capacity, inline: no heap.
///
/// An index describes the object at one span of one text; a reader uses it
/// only for the object at exactly that span ([`MemberIndex::members`]),
/// else walks, so a stale or foreign index can cost time, never a wrong member.
#[derive(Clone, Copy)]
pub struct MemberIndex {
    /// Offsets of the object's `{` and of the byte after its `}` in the validated text.
    span: (usize, usize),
    /// Members recorded, at most [`MEMBER_INDEX_CAPACITY`].
    len: u8,
    /// Every member of the object is recorded (false: none is, or too many).
    complete: bool,
    entries: [IndexEntry; MEMBER_INDEX_CAPACITY],
}

/// One member: offsets from the object's `{`, in 16 bits (eight bytes an
/// entry keep the table, copied with every call, small): an object of 64 KiB
/// or more, or a key of 16 KiB or more, is not indexed, and is walked.
#[derive(Clone, Copy)]
struct IndexEntry {
    key: u16,
    /// Key length; [`ESCAPED_KEY`] set when the key has escapes, [`ASCII_KEY`]
    /// when it is plain ASCII.
    key_len: u16,
    value: u16,
    value_len: u16,
}

const ESCAPED_KEY: u16 = 1 << 15;
/// Set in [`IndexEntry::key_len`] when the key is all ASCII with no escapes.
const ASCII_KEY: u16 = 1 << 14;

impl fmt::Debug for MemberIndex {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("MemberIndex")
            .field("span", &self.span)
            .field("len", &self.len)
            .field("complete", &self.complete)
            .finish()
    }
}

impl MemberIndex {
    /// No index: every reader walks the text.
    pub const NONE: MemberIndex = MemberIndex {
        span: (0, 0),
        len: 0,
        complete: false,
        entries: [IndexEntry {
            key: 0,
            key_len: 0,
            value: 0,
            value_len: 0,
        }; MEMBER_INDEX_CAPACITY],
    };

    /// Whether the index holds every member of the object at `span`
    /// (offsets of its first and past its last byte in the validated text).
    pub fn describes(&self, span: (usize, usize)) -> bool {
        self.complete && self.span == span
    }

    /// The index moved to describe the same object inside a slice of the
    /// text starting `from` bytes later (offsets are relative to the object,
    /// only the span moves).
    pub fn rebased(mut self, from: usize) -> MemberIndex {
        match (self.span.0.checked_sub(from), self.span.1.checked_sub(from)) {
            (Some(a), Some(b)) => self.span = (a, b),
            _ => self.complete = false,
        }
        self
    }

    /// An index of no members, complete, for the object at `span` (`{}`).
    pub const fn empty(span: (usize, usize)) -> MemberIndex {
        MemberIndex {
            span,
            complete: true,
            ..MemberIndex::NONE
        }
    }

    /// The members of `object`, whose `{` is at offset `at` of the validated
    /// text the index was made from: read from the index when it describes
    /// that object, else walked ([`Object::members`]). The same members,
    /// in the same order, either way.
    pub fn members<'a, 'i>(&'i self, object: Object<'a>, at: usize) -> MembersOf<'a, 'i> {
        if self.describes((at, at + object.raw.len())) {
            MembersOf(Source::Indexed {
                raw: object.raw,
                entries: self.entries[..usize::from(self.len)].iter(),
            })
        } else {
            MembersOf(Source::Walked(object.members()))
        }
    }

    /// Starts recording the object whose `{` is at `at` (a later object on
    /// the same path, which only lenient reading allows, replaces it).
    fn start(&mut self, at: usize) {
        self.span = (at, at);
        self.len = 0;
        self.complete = true;
    }

    /// Records one member (absolute offsets). Offsets are stored relative
    /// to the object's `{` as u32; an object too long for them is marked
    /// incomplete when it ends ([`MemberIndex::end`]), before any use.
    #[inline]
    fn push(&mut self, key: (usize, usize), kind: (bool, bool), value: (usize, usize)) {
        let (escaped, ascii) = kind;
        let base = self.span.0;
        let rel = |x: usize| (x - base) as u16;
        let key_len = key.1 - key.0;
        match self.entries.get_mut(usize::from(self.len)) {
            Some(e) if key_len < usize::from(ASCII_KEY) => {
                *e = IndexEntry {
                    key: rel(key.0),
                    key_len: key_len as u16
                        | if escaped { ESCAPED_KEY } else { 0 }
                        | if ascii && !escaped { ASCII_KEY } else { 0 },
                    value: rel(value.0),
                    value_len: (value.1 - value.0) as u16,
                };
                self.len += 1;
            }
            _ => self.complete = false,
        }
    }

    /// The object ends at `end` (the byte after its `}`); offsets recorded
    /// in 16 bits are exact only if it is shorter than 64 KiB.
    fn end(&mut self, end: usize) {
        self.span.1 = end;
        if end - self.span.0 > usize::from(u16::MAX) {
            self.complete = false;
        }
    }
}

/// The members of an object, from its [`MemberIndex`] or by walking its text.
pub struct MembersOf<'a, 'i>(Source<'a, 'i>);

enum Source<'a, 'i> {
    Indexed {
        raw: &'a [u8],
        entries: std::slice::Iter<'i, IndexEntry>,
    },
    Walked(Members<'a>),
}

impl<'a> Iterator for MembersOf<'a, '_> {
    type Item = (JStr<'a>, Value<'a>);

    #[inline]
    fn next(&mut self) -> Option<Self::Item> {
        match &mut self.0 {
            Source::Indexed { raw, entries } => {
                let e = entries.next()?;
                let k0 = usize::from(e.key);
                let k1 = k0 + usize::from(e.key_len & !(ESCAPED_KEY | ASCII_KEY));
                let v0 = usize::from(e.value);
                let v1 = v0 + usize::from(e.value_len);
                match (raw.get(k0..k1), raw.get(v0..v1)) {
                    (Some(k), Some(v)) => Some((
                        JStr {
                            raw: k,
                            escaped: e.key_len & ESCAPED_KEY != 0,
                            ascii: e.key_len & ASCII_KEY != 0,
                        },
                        Value { raw: v },
                    )),
                    _ => None,
                }
            }
            Source::Walked(m) => m.next(),
        }
    }
}

/// One object member found by [`validate_outline`]: byte ranges of its key
/// (between the quotes) and of its value.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Member {
    /// For members of a nested object: the index of the outer member holding it.
    pub parent: usize,
    /// Key range, without quotes.
    pub key: (usize, usize),
    /// Whether the key has escapes.
    pub key_escaped: bool,
    /// Value range.
    pub value: (usize, usize),
}

const OUTLINE_TOP: usize = 16;
const OUTLINE_NESTED: usize = 32;

/// The members of the two outermost object levels of a validated text.
#[derive(Debug, Clone, Copy)]
pub struct Outline {
    top: [Member; OUTLINE_TOP],
    top_len: usize,
    nested: [Member; OUTLINE_NESTED],
    nested_len: usize,
    complete: bool,
    arguments: MemberIndex,
    /// Address and length of the text the outline was made of: what
    /// [`Outline::arguments_of`] checks before it hands out the index.
    text: (usize, usize),
}

const NO_MEMBER: Member = Member {
    parent: 0,
    key: (0, 0),
    key_escaped: false,
    value: (0, 0),
};

impl Outline {
    const EMPTY: Outline = Outline {
        top: [NO_MEMBER; OUTLINE_TOP],
        top_len: 0,
        nested: [NO_MEMBER; OUTLINE_NESTED],
        nested_len: 0,
        complete: true,
        arguments: MemberIndex::NONE,
        text: (0, 0),
    };

    /// An empty outline, to fill with [`validate_outline_into`].
    pub const fn new() -> Outline {
        Outline::EMPTY
    }

    /// Empties the outline (only its counts and flags: entries past the
    /// counts are never read).
    fn reset(&mut self) {
        self.top_len = 0;
        self.nested_len = 0;
        self.complete = true;
        self.arguments.len = 0;
        self.arguments.complete = false;
    }

    /// False when there were more members than an outline holds; callers
    /// then walk the text instead.
    pub fn is_complete(&self) -> bool {
        self.complete
    }

    /// Members of the outermost object, in order.
    pub fn top(&self) -> &[Member] {
        &self.top[..self.top_len]
    }

    /// The index of `params.arguments` when both keys are spelled without
    /// escapes and it is an object ([`MemberIndex::NONE`] otherwise); a
    /// reader checks that it [`describes`](MemberIndex::describes) the
    /// arguments it chose.
    pub fn arguments(&self) -> &MemberIndex {
        &self.arguments
    }

    /// The index of the object at `span` of `text` (its `{` and the byte
    /// after its `}`), moved to offsets from the `{` ([`MemberIndex::rebased`]),
    /// when this outline was made of `text` (the same bytes at the same
    /// address: a text borrowed for as long as the caller holds it cannot
    /// change meanwhile) and its index describes exactly that object;
    /// [`MemberIndex::NONE`] otherwise (a reader then walks the object).
    pub fn arguments_of(&self, text: &[u8], span: (usize, usize)) -> MemberIndex {
        if self.text == (text.as_ptr() as usize, text.len()) && self.arguments.describes(span) {
            self.arguments.rebased(span.0)
        } else {
            MemberIndex::NONE
        }
    }

    /// Members of the object that is the value of top member `parent`.
    pub fn children(&self, parent: usize) -> impl Iterator<Item = &Member> {
        self.nested[..self.nested_len]
            .iter()
            .filter(move |m| m.parent == parent)
    }
}

impl Default for Outline {
    fn default() -> Self {
        Outline::EMPTY
    }
}

impl Member {
    /// The key as a string view into `bytes`.
    pub fn key<'a>(&self, bytes: &'a [u8]) -> JStr<'a> {
        JStr {
            raw: &bytes[self.key.0..self.key.1],
            escaped: self.key_escaped,
            ascii: false,
        }
    }

    /// The value as a view into `bytes`.
    pub fn value<'a>(&self, bytes: &'a [u8]) -> Value<'a> {
        Value {
            raw: &bytes[self.value.0..self.value.1],
        }
    }
}

/// The validator stopped at an error, which it recorded in
/// [`Validator::error`]. A zero-sized error keeps every step's result
/// (`Result<usize, Stop>`, the position after what it read) in two
/// registers: the position is a local of each step, passed in and handed
/// back, never stored in the validator and read back after each store.
#[derive(Debug, Clone, Copy)]
struct Stop;

/// Where a step of the validator ended (the byte after what it read).
type At = Result<usize, Stop>;

struct Validator<'a, 'o> {
    b: &'a [u8],
    strictness: Strictness,
    /// Written in place (an outline is a few KiB: no copies).
    outline: Option<&'o mut Outline>,
    /// While inside the value of top member N: N.
    parent: Option<usize>,
    /// The keys leading to the object to index (`[]`: the outermost value).
    index_path: &'static [&'static [u8]],
    /// The depth of the object to index (`index_path.len() + 1`; 0: none is
    /// wanted), so that deeper members cost one comparison.
    index_depth: u32,
    /// How many keys of `index_path` the members enclosing the current
    /// position matched, outermost first.
    index_on: usize,
    /// The index when there is no outline to hold it.
    index: Option<MemberIndex>,
    /// The error a [`Stop`] stands for.
    error: JsonError,
    /// (escaped, all ASCII) of the last string [`Validator::string_general`] read.
    general_kind: (bool, bool),
}

/// The position of the first byte at or after `p` that is not JSON
/// whitespace, and that byte (0 at the end of the text; a 0 byte inside
/// the text is told from the end by the position). Requests are mostly
/// compact: the common case is one byte above `' '`, looked at once.
#[inline(always)]
fn token(b: &[u8], p: usize) -> (usize, u8) {
    match b.get(p) {
        Some(&c) if c > b' ' => (p, c),
        _ => ws_run(b, p),
    }
}

/// [`token`] past a run of whitespace.
#[inline(never)]
fn ws_run(b: &[u8], mut p: usize) -> (usize, u8) {
    while let Some(&c) = b.get(p) {
        if !matches!(c, b' ' | b'\t' | b'\n' | b'\r') {
            return (p, c);
        }
        p += 1;
    }
    (p, 0)
}

impl<'a, 'o> Validator<'a, 'o> {
    fn new(
        b: &'a [u8],
        strictness: Strictness,
        outline: Option<&'o mut Outline>,
    ) -> Validator<'a, 'o> {
        Validator {
            b,
            strictness,
            outline,
            parent: None,
            index_path: &[],
            index_depth: 0,
            index_on: 0,
            index: None,
            error: JsonError {
                offset: 0,
                kind: JsonErrorKind::UnexpectedEnd,
            },
            general_kind: (false, true),
        }
    }

    /// Indexes the members of the object at `path`.
    fn index_on_path(&mut self, path: &'static [&'static [u8]]) {
        self.index_path = path;
        self.index_depth = path.len() as u32 + 1;
    }

    /// Where the index being recorded lives: in the outline, if any.
    fn index_mut(&mut self) -> &mut MemberIndex {
        match &mut self.outline {
            Some(o) => &mut o.arguments,
            None => self.index.get_or_insert(MemberIndex::NONE),
        }
    }

    fn run(&mut self) -> Result<(), JsonError> {
        let b = self.b;
        let (p, c) = token(b, 0);
        let end = self.value(p, c, 0).and_then(|p| {
            let (p, _) = token(b, p);
            if p == b.len() {
                Ok(p)
            } else {
                Err(self.fail(p, JsonErrorKind::TrailingData))
            }
        });
        match end {
            Ok(_) => Ok(()),
            Err(Stop) => Err(self.error),
        }
    }

    fn record(&mut self, depth: u32, member: Member) {
        let Some(o) = self.outline.as_deref_mut() else {
            return;
        };
        match depth {
            1 if o.top_len < OUTLINE_TOP => {
                o.top[o.top_len] = member;
                o.top_len += 1;
            }
            2 if self.parent.is_some() && o.nested_len < OUTLINE_NESTED => {
                o.nested[o.nested_len] = Member {
                    parent: self.parent.unwrap_or(0),
                    ..member
                };
                o.nested_len += 1;
            }
            1 | 2 => o.complete = false,
            _ => {}
        }
    }

    /// Records the error `kind` at offset `at` and stops.
    #[cold]
    #[inline(never)]
    fn fail(&mut self, at: usize, kind: JsonErrorKind) -> Stop {
        self.error = JsonError { offset: at, kind };
        Stop
    }

    /// The literal `word` at `p`.
    fn lit(&mut self, p: usize, word: &'static [u8]) -> At {
        if self.b.get(p..).is_some_and(|rest| rest.starts_with(word)) {
            Ok(p + word.len())
        } else {
            Err(self.fail(p, JsonErrorKind::InvalidLiteral))
        }
    }

    /// The value starting at `p`, whose first byte is `c` ([`token`]).
    fn value(&mut self, p: usize, c: u8, depth: u32) -> At {
        match c {
            b'{' => self.object(p, depth + 1),
            b'[' => self.array(p, depth + 1),
            b'"' => self.string(p),
            b't' => self.lit(p, b"true"),
            b'f' => self.lit(p, b"false"),
            b'n' => self.lit(p, b"null"),
            b'-' | b'0'..=b'9' => self.number(p),
            _ if p < self.b.len() => Err(self.fail(p, JsonErrorKind::ExpectedValue)),
            _ => Err(self.fail(p, JsonErrorKind::UnexpectedEnd)),
        }
    }

    fn array(&mut self, p: usize, depth: u32) -> At {
        if depth > self.strictness.max_depth {
            return Err(self.fail(p, JsonErrorKind::TooDeep));
        }
        let b = self.b;
        let (mut p, mut c) = token(b, p + 1);
        if c == b']' {
            return Ok(p + 1);
        }
        loop {
            p = if c == b'"' {
                self.string(p)?
            } else {
                self.value(p, c, depth)?
            };
            let (q, sep) = token(b, p);
            match sep {
                b',' => (p, c) = token(b, q + 1),
                b']' => return Ok(q + 1),
                _ => return Err(self.fail(q, JsonErrorKind::ExpectedArraySeparator)),
            }
        }
    }

    fn object(&mut self, p: usize, depth: u32) -> At {
        if depth > self.strictness.max_depth {
            return Err(self.fail(p, JsonErrorKind::TooDeep));
        }
        let check_keys = depth <= self.strictness.key_check_depth
            && (self.strictness.reject_duplicate_keys || self.strictness.reject_case_variant_keys);
        let target = depth == self.index_depth && self.index_on == self.index_path.len();
        if target {
            self.index_mut().start(p);
        }
        if !check_keys {
            return self.object_members(p, depth, None, target);
        }
        let mut keys = KeySet::new();
        let end = self.object_members(p, depth, Some(&mut keys), target)?;
        if keys.suspect || always_exact() {
            self.check_keys_exactly(p, end)
        } else {
            Ok(end) // no two keys share a folded signature, so none can clash
        }
    }

    /// The exact duplicate and case-variant check of the object at
    /// `start..end` (validated, so its members can be walked), run
    /// when its [`KeySet`] cannot rule a clash out: its keys are read
    /// again, and checked pairwise when they are at most [`SMALL_KEYS`]
    /// plain ASCII keys, by sorted fingerprints otherwise. Which clash is
    /// reported, and at which offset, is what it was before the key set
    /// stood in front of this check. Returns `end`.
    #[inline(never)]
    fn check_keys_exactly(&mut self, start: usize, end: usize) -> At {
        let object = Object {
            raw: &self.b[start..end],
        };
        let base = self.b.as_ptr() as usize;
        let mut keys = SmallKeys::new();
        for (key, _) in object.members() {
            let key_start = key.raw.as_ptr() as usize - base;
            let key_end = key_start + key.raw.len();
            let plain = !key.escaped && key.raw.is_ascii();
            // (Offsets past 4 GiB take the general path.)
            if !keys.spilled && plain && keys.len < SMALL_KEYS && key_end <= u32::MAX as usize {
                keys.add(key_start, key_end, key_sig(key.raw));
            } else {
                if !keys.spilled {
                    // Too many keys, or a key needing Unicode folding: hash them all.
                    keys.mark = KEYS.with(|k| k.borrow().len());
                    keys.spilled = true;
                    for i in 0..keys.len {
                        let (s0, s1) = keys.list[i];
                        self.push_key(s0 as usize, s1 as usize, false);
                    }
                }
                self.push_key(key_start, key_end, key.escaped);
            }
        }
        let result = if keys.spilled {
            self.check_keys(keys.mark)
        } else if keys.sig_clash {
            self.check_small_keys(&keys)
        } else {
            Ok(())
        };
        if keys.spilled {
            KEYS.with(|k| k.borrow_mut().truncate(keys.mark));
        }
        match result {
            Ok(()) => Ok(end),
            Err(e) => Err(self.fail(e.offset, e.kind)),
        }
    }

    /// Pairwise check of a few plain ASCII keys: no hashing, no sorting.
    /// (Two ASCII keys are equal under Unicode case folding exactly when they
    /// are equal ignoring ASCII case.)
    /// Keys are compared by [`key_sig`] first, which differs for most pairs.
    fn check_small_keys(&self, keys: &SmallKeys) -> Result<(), JsonError> {
        let list = &keys.list[..keys.len];
        let sigs = &keys.sigs[..keys.len];
        for (i, (&(a0, a1), &sa)) in list.iter().zip(sigs).enumerate() {
            let a = &self.b[a0 as usize..a1 as usize];
            for (&(b0, b1), &sb) in list[i + 1..].iter().zip(&sigs[i + 1..]) {
                if sa != sb {
                    continue;
                }
                let (b0, b1) = (b0 as usize, b1 as usize);
                let b = &self.b[b0..b1];
                if a.len() != b.len() || !a.eq_ignore_ascii_case(b) {
                    continue;
                }
                let offset = b0 - 1;
                if a == b {
                    if self.strictness.reject_duplicate_keys {
                        return Err(JsonError {
                            offset,
                            kind: JsonErrorKind::DuplicateKey,
                        });
                    }
                } else if self.strictness.reject_case_variant_keys {
                    return Err(JsonError {
                        offset,
                        kind: JsonErrorKind::CaseVariantKeys,
                    });
                }
            }
        }
        Ok(())
    }

    /// The members of an object at `depth`, its `{` at `p`; `target`:
    /// the object [`Validator::index`] records.
    fn object_members(
        &mut self,
        p: usize,
        depth: u32,
        mut keys: Option<&mut KeySet>,
        target: bool,
    ) -> At {
        let b = self.b;
        let (mut p, mut c) = token(b, p + 1);
        if c == b'}' {
            let end = p + 1;
            if target {
                self.index_mut().end(end);
            }
            return Ok(end);
        }
        loop {
            if c != b'"' {
                return Err(self.fail(p, JsonErrorKind::ExpectedKey));
            }
            let key_start = p + 1;
            let (after, has_escape, ascii) = self.string_kind(p)?;
            let key_end = after - 1;
            if let Some(keys) = keys.as_deref_mut() {
                if !has_escape && ascii {
                    keys.add(folded_sig(b, key_start, key_end));
                } else {
                    // A key needing Unicode folding: the exact check decides.
                    keys.suspect = true;
                }
            }
            let (q, colon) = token(b, after);
            if colon != b':' {
                return Err(self.fail(q, JsonErrorKind::ExpectedColon));
            }
            let (v, vc) = token(b, q + 1);
            p = if depth <= 2 || depth < self.index_depth {
                // The two outer levels (outlined) and the objects on the path
                // to the one indexed: the bookkeeping, out of the loop that
                // reads every deeper member.
                self.tracked_value(
                    v,
                    vc,
                    depth,
                    (key_start, key_end),
                    (has_escape, ascii),
                    target,
                )?
            } else if target {
                // A member of the object indexed (deeper than the outline,
                // at the end of the path): its span recorded, nothing else.
                let end = if vc == b'"' {
                    self.string(v)?
                } else {
                    self.value(v, vc, depth)?
                };
                self.index_mut()
                    .push((key_start, key_end), (has_escape, ascii), (v, end));
                end
            } else if vc == b'"' {
                // The commonest member value, read here rather than in a call.
                self.string(v)?
            } else {
                self.value(v, vc, depth)?
            };
            let (q, sep) = token(b, p);
            match sep {
                b',' => (p, c) = token(b, q + 1),
                b'}' => {
                    let end = q + 1;
                    if target {
                        self.index_mut().end(end);
                    }
                    return Ok(end);
                }
                _ => return Err(self.fail(q, JsonErrorKind::ExpectedObjectSeparator)),
            }
        }
    }

    /// The value (at `p`, first byte `c`) of a member at depth 1 or 2, or on
    /// the path to the object to index: recorded in the outline, followed
    /// along the path, indexed when the member is the `target` object's.
    #[inline(never)]
    fn tracked_value(
        &mut self,
        p: usize,
        c: u8,
        depth: u32,
        key: (usize, usize),
        kind: (bool, bool),
        target: bool,
    ) -> At {
        let escaped = kind.0;
        let outer = self.parent;
        if depth == 1 && self.outline.is_some() {
            self.parent = self.outline.as_ref().map(|o| o.top_len);
        }
        // On the way to the object to index: the member whose key (with no
        // escapes) is the next key of the path.
        let on_path = depth < self.index_depth
            && self.index_on + 1 == depth as usize
            && !escaped
            && self
                .index_path
                .get(self.index_on)
                .is_some_and(|k| self.b[key.0..key.1] == **k);
        if on_path {
            self.index_on += 1;
        }
        let end = self.value(p, c, depth)?;
        if on_path {
            self.index_on -= 1;
        }
        let value = (p, end);
        if target {
            self.index_mut().push(key, kind, value);
        }
        if depth == 1 {
            self.parent = outer;
        }
        if self.outline.is_some() && depth <= 2 {
            self.record(
                depth,
                Member {
                    parent: 0,
                    key,
                    key_escaped: escaped,
                    value,
                },
            );
        }
        Ok(end)
    }

    fn push_key(&self, start: usize, end: usize, escaped: bool) {
        // The string scanner has validated UTF-8 for this range.
        let key = JStr {
            raw: &self.b[start..end],
            escaped,
            ascii: false,
        };
        let (folded, exact) = key_hashes(&key);
        let fp = KeyPrint {
            folded,
            exact,
            start,
            end,
            escaped,
        };
        KEYS.with(|k| k.borrow_mut().push(fp));
    }

    /// Checks the keys recorded since `mark` (this object's keys only: nested
    /// objects truncate their own entries before returning).
    fn check_keys(&mut self, mark: usize) -> Result<(), JsonError> {
        KEYS.with(|k| {
            let mut keys = k.borrow_mut();
            let seg = &mut keys[mark..];
            if seg.len() < 2 {
                return Ok(());
            }
            seg.sort_unstable_by_key(|p| (p.folded, p.start));
            for pair in seg.windows(2) {
                let (a, b) = (&pair[0], &pair[1]);
                if a.folded != b.folded {
                    continue;
                }
                let ka = self.key_at(a);
                let kb = self.key_at(b);
                if !ka.eq_folded(&kb) {
                    continue; // hash collision, not a real clash
                }
                let exact = a.exact == b.exact && ka.eq_jstr(&kb);
                if exact && self.strictness.reject_duplicate_keys {
                    return Err(JsonError {
                        offset: a.start.max(b.start) - 1,
                        kind: JsonErrorKind::DuplicateKey,
                    });
                }
                if !exact && self.strictness.reject_case_variant_keys {
                    return Err(JsonError {
                        offset: a.start.max(b.start) - 1,
                        kind: JsonErrorKind::CaseVariantKeys,
                    });
                }
            }
            Ok(())
        })
    }

    fn key_at(&self, p: &KeyPrint) -> JStr<'a> {
        JStr {
            raw: &self.b[p.start..p.end],
            escaped: p.escaped,
            ascii: false,
        }
    }

    /// The string whose opening quote is at `p`: the position after its
    /// closing quote.
    #[inline(always)]
    fn string(&mut self, p: usize) -> At {
        self.string_kind(p).map(|(end, _, _)| end)
    }

    /// [`Validator::string`], and whether the string held escapes and whether
    /// its bytes are all ASCII (known from the scan, so a key is not read
    /// again to find out).
    ///
    /// The body's end is found by the shared scanner
    /// ([`scan::next_string_special`]: the next quote, backslash or control
    /// byte, 16 bytes at a time); when that is the closing quote and the
    /// body is plain ASCII ([`all_ascii`], a word at a time) the string is
    /// read. Any other string (an escape, a non-ASCII or control byte, no
    /// closing quote) is read again from its start by
    /// [`Validator::string_general`], which gives the same answer and the
    /// same error it always gave.
    #[inline(always)]
    fn string_kind(&mut self, p: usize) -> Result<(usize, bool, bool), Stop> {
        let b = self.b;
        if let Some(end) = plain_ascii_end(b, p + 1) {
            return Ok((end + 1, false, true));
        }
        let end = self.string_general(p)?;
        let (escaped, ascii) = self.general_kind;
        Ok((end, escaped, ascii))
    }

    /// [`Validator::string_kind`] for any string (opening quote at `p`):
    /// escapes checked one by one, runs of non-ASCII bytes checked as UTF-8;
    /// (escaped, all ASCII) left in [`Validator::general_kind`].
    #[inline(never)]
    fn string_general(&mut self, p: usize) -> At {
        let b = self.b;
        let mut p = p + 1;
        let mut escaped = false;
        let mut all_ascii = true;
        loop {
            let start = p;
            let (i, ascii) = scan_plain(&b[start..]);
            let end = start + i;
            // Pure ASCII needs no UTF-8 check; std's validator is SIMD-fast otherwise.
            if !ascii && let Err(e) = std::str::from_utf8(&b[start..end]) {
                return Err(self.fail(start + e.valid_up_to(), JsonErrorKind::InvalidUtf8));
            }
            all_ascii &= ascii;
            p = end;
            match b.get(end) {
                Some(b'"') => {
                    self.general_kind = (escaped, all_ascii);
                    return Ok(end + 1);
                }
                Some(b'\\') => {
                    escaped = true;
                    p = self.escape(p)?;
                }
                Some(_) => return Err(self.fail(p, JsonErrorKind::ControlCharacter)),
                None => return Err(self.fail(p, JsonErrorKind::UnterminatedString)),
            }
        }
    }

    /// The escape whose backslash is at `p`.
    fn escape(&mut self, p: usize) -> At {
        match self.b.get(p + 1) {
            Some(b'"' | b'\\' | b'/' | b'b' | b'f' | b'n' | b'r' | b't') => Ok(p + 2),
            Some(b'u') => match self.b.get(p + 2..p + 6) {
                Some(h) if h.iter().all(u8::is_ascii_hexdigit) => Ok(p + 6),
                _ => Err(self.fail(p, JsonErrorKind::InvalidUnicodeEscape)),
            },
            _ => Err(self.fail(p, JsonErrorKind::InvalidEscape)),
        }
    }

    /// The number starting at `p`.
    fn number(&mut self, start: usize) -> At {
        let b = self.b;
        let digits = |mut p: usize| {
            while let Some(b'0'..=b'9') = b.get(p) {
                p += 1;
            }
            p
        };
        let mut p = start;
        if b.get(p) == Some(&b'-') {
            p += 1;
        }
        p = match b.get(p) {
            Some(b'0') => p + 1,
            Some(b'1'..=b'9') => digits(p + 1),
            _ => return Err(self.fail(p, JsonErrorKind::InvalidNumber)),
        };
        if b.get(p) == Some(&b'.') {
            let d = p + 1;
            p = digits(d);
            if p == d {
                return Err(self.fail(p, JsonErrorKind::InvalidNumber));
            }
        }
        if let Some(b'e' | b'E') = b.get(p) {
            p += 1;
            if let Some(b'+' | b'-') = b.get(p) {
                p += 1;
            }
            let d = p;
            p = digits(d);
            if p == d {
                return Err(self.fail(p, JsonErrorKind::InvalidNumber));
            }
        }
        debug_assert!(p > start);
        Ok(p)
    }
}

/// The high bit of every byte of `w` (little-endian) that is a quote, a
/// backslash, a control byte (< 0x20) or not ASCII, exact up to and including
/// the lowest such byte (bytes above it may be flagged wrongly).
///
/// Below the lowest special byte every byte is ASCII in 0x20..=0x7f, not a
/// quote nor a backslash, so none of the three subtractions borrows from it
/// and none sets its high bit; the lowest special byte sets it: a quote or a
/// backslash makes its xor zero, which wraps to 0xff; a control byte wraps
/// below 0x20; a non-ASCII byte has it already. (On ASCII bytes the usual
/// zero-byte test's `& !v` is always true, so it is left out: nine
/// operations a word instead of eighteen.)
#[inline(always)]
fn special_bytes(w: u64) -> u64 {
    const LO: u64 = 0x0101_0101_0101_0101;
    const HI: u64 = 0x8080_8080_8080_8080;
    ((w ^ (LO * u64::from(b'"'))).wrapping_sub(LO)
        | (w ^ (LO * u64::from(b'\\'))).wrapping_sub(LO)
        | w.wrapping_sub(LO * 0x20)
        | w)
        & HI
}

/// Words of a string [`plain_ascii_end`] reads a word at a time before
/// the shared scanner takes over.
const SWAR_WORDS: usize = 8;

/// True when every byte of `s` is ASCII: its words (the last one
/// overlapping the one before) or'ed together, for the short bodies of
/// most strings a few operations (`<[u8]>::is_ascii` goes bytewise below a
/// word, and most keys are shorter).
#[inline(always)]
fn all_ascii(s: &[u8]) -> bool {
    const HI: u64 = 0x8080_8080_8080_8080;
    let word = |at: usize| {
        s.get(at..at + 8)
            .and_then(|w| w.first_chunk::<8>())
            .map_or(0, |w| u64::from_le_bytes(*w))
    };
    let n = s.len();
    if n >= 8 {
        let mut acc = word(n - 8);
        let mut i = 0;
        while i + 8 < n {
            acc |= word(i);
            i += 8;
        }
        acc & HI == 0
    } else if n >= 4 {
        let half = |at: usize| {
            s.get(at..at + 4)
                .and_then(|w| w.first_chunk::<4>())
                .map_or(0, |w| u32::from_le_bytes(*w))
        };
        (half(0) | half(n - 4)) & 0x8080_8080 == 0
    } else {
        s.iter().fold(0, |acc, &c| acc | c) < 0x80
    }
}

/// The offset of the closing quote of the string whose first byte (after
/// the opening quote) is at `p`, when the whole string is plain ASCII
/// without escapes; `None` for any other string (the caller then reads it
/// the general way), and possibly for a plain one near the end of the
/// text. The first [`SWAR_WORDS`] words are read here eight bytes at a
/// time with the position in a register ([`special_bytes`]: most strings of
/// a request end there); a longer string's rest goes to the shared scanner
/// ([`scan::next_string_special`], 16 bytes at a time) and its bytes are
/// then checked to be ASCII ([`all_ascii`]). Measured on the 1 KiB
/// `tools/call` line (callgrind, `parse_tool_call`): the scanner from the
/// first byte 14,553 instructions, after 1, 2, 3, 5 or 8 words 14,386,
/// 14,270, 13,893, 13,845, 13,812; words alone (no scanner) 14,171. Short
/// strings are cheaper a word at a time, long ones 16 bytes at a time.
#[inline(always)]
fn plain_ascii_end(b: &[u8], mut p: usize) -> Option<usize> {
    for _ in 0..SWAR_WORDS {
        let w = u64::from_le_bytes(*b.get(p..)?.first_chunk::<8>()?);
        let special = special_bytes(w);
        if special != 0 {
            let at = p + (special.trailing_zeros() / 8) as usize;
            return (b.get(at) == Some(&b'"')).then_some(at);
        }
        p += 8;
    }
    let end = scan::next_string_special(b, p);
    (b.get(end) == Some(&b'"') && all_ascii(b.get(p..end)?)).then_some(end)
}

/// Length of the run of plain string bytes at the start of `b` (up to the
/// first quote, backslash or control byte), and whether it is all ASCII.
///
/// Eight bytes at a time (SWAR): the first word holding a quote, a
/// backslash, a control byte or a non-ASCII byte stops the scan, and the
/// lowest flagged byte of that word is exactly the first such byte (the
/// zero-byte tests can flag bytes above a true hit, never below one), so a
/// short string costs a word or two and no bytewise loop. The last partial
/// word is padded with quotes, which stop the scan at the end of `b`. Only a
/// string with non-ASCII bytes continues bytewise (its UTF-8 is then checked
/// by the caller).
///
/// The crate's one hand-written scanner: reading views of validated text
/// only looks for `"` and `\` (memchr), but validation must also stop at
/// every control byte (a range, which memchr cannot search for) and learn
/// whether the run needs a UTF-8 check, in the same pass.
fn scan_plain(b: &[u8]) -> (usize, bool) {
    let mut i = 0;
    let at = loop {
        let w = match b.get(i..i + 8) {
            Some(word) => u64::from_le_bytes(word.try_into().unwrap_or([b'"'; 8])),
            None => {
                let mut word = [b'"'; 8];
                let rest = &b[i.min(b.len())..];
                word[..rest.len()].copy_from_slice(rest);
                u64::from_le_bytes(word)
            }
        };
        let special = special_bytes(w);
        if special != 0 {
            break (i + (special.trailing_zeros() / 8) as usize).min(b.len());
        }
        i += 8;
    };
    if b.get(at).is_none_or(|&c| c < 0x80) {
        return (at, true);
    }
    let mut i = at;
    while let Some(&c) = b.get(i) {
        if c == b'"' || c == b'\\' || c < 0x20 {
            break;
        }
        i += 1;
    }
    (i, false)
}

/// (case-folded, exact) hashes of a key; the ASCII fast path gives the same
/// values as the general path would.
fn key_hashes(key: &JStr<'_>) -> (u64, u64) {
    if !key.escaped && key.raw.is_ascii() {
        let (mut folded, mut exact) = (Fnv::new(), Fnv::new());
        for &b in key.raw {
            folded = folded.write(u64::from(b.to_ascii_lowercase()));
            exact = exact.write(u64::from(b));
        }
        return (folded.finish(), exact.finish());
    }
    (key.fold_hash(), key.exact_hash())
}

/// A signature of a plain ASCII key, equal for keys equal ignoring ASCII
/// case (its length and its first, middle and last bytes, lowercased), so
/// the pairwise check compares whole keys only when signatures match.
fn key_sig(key: &[u8]) -> u64 {
    let at = |i: usize| u64::from(key.get(i).map_or(0, u8::to_ascii_lowercase));
    let n = key.len();
    (n as u64) | at(0) << 32 | at(n / 2) << 40 | at(n.wrapping_sub(1)) << 48
}

/// A 64-bit signature of a plain ASCII key, equal for keys equal ignoring
/// ASCII case: its length, its first eight bytes and its last eight, mixed,
/// with bit 0x20 of every byte set. (Setting it lowercases letters, and
/// also maps `@[\\]^_` onto `` `{|}~`` and DEL: keys that differ only there
/// share a signature and get the exact check, which tells them apart. It is
/// two operations a word where lowercasing letters alone takes six.) Keys
/// are `b[start..end]`, a validated string.
#[inline(always)]
fn folded_sig(b: &[u8], start: usize, end: usize) -> u64 {
    let fold = |w: u64| w | 0x2020_2020_2020_2020;
    let word = |at: usize| match b.get(at..at + 8) {
        Some(w) => u64::from_le_bytes(w.try_into().unwrap_or([0; 8])),
        None => {
            let mut w = [0; 8];
            let rest = b.get(at..).unwrap_or(&[]);
            w[..rest.len()].copy_from_slice(rest);
            u64::from_le_bytes(w)
        }
    };
    let n = end - start;
    let first = if n >= 8 {
        fold(word(start))
    } else {
        fold(word(start)) & ((1u64 << (8 * n)) - 1)
    };
    let last = if n > 8 { word(end - 8) } else { 0 };
    let mixed = first ^ fold(last).rotate_left(29) ^ (n as u64);
    mixed.wrapping_mul(0x9e37_79b9_7f4a_7c15) ^ (mixed >> 31)
}

#[cfg(test)]
thread_local! {
    /// Tests set it to run the exact key check on every object: the
    /// behaviour before [`KeySet`], which the fast path must reproduce.
    static ALWAYS_EXACT: std::cell::Cell<bool> = const { std::cell::Cell::new(false) };
}

#[cfg(test)]
fn always_exact() -> bool {
    ALWAYS_EXACT.with(std::cell::Cell::get)
}

#[cfg(not(test))]
#[inline(always)]
const fn always_exact() -> bool {
    false
}

/// Most keys of one object whose signatures [`KeySet`] keeps.
const KEY_SET: usize = 16;

/// The keys of one object being validated, as [`folded_sig`] signatures: two
/// keys equal ignoring case (duplicates or case variants) have the same
/// signature, so when no two signatures are equal no two keys clash, and the
/// object needs no other check; otherwise (two equal signatures, a key with
/// escapes or non-ASCII bytes, more than [`KEY_SET`] keys) it is `suspect`
/// and [`Validator::check_keys_exactly`] decides. A new key's signature is
/// compared with the earlier ones only when its bit in a 64-bit Bloom
/// filter was already set. Small (136 bytes), on the stack, nothing to
/// record but the signature: no pairwise comparison of keys, no copy of
/// offsets.
struct KeySet {
    seen: u64,
    len: usize,
    sigs: [u64; KEY_SET],
    suspect: bool,
}

impl KeySet {
    #[inline(always)]
    fn new() -> KeySet {
        KeySet {
            seen: 0,
            len: 0,
            sigs: [0; KEY_SET],
            suspect: false,
        }
    }

    #[inline(always)]
    fn add(&mut self, sig: u64) {
        let bit = 1u64 << (sig >> 58);
        if self.seen & bit != 0 && self.sigs[..self.len.min(KEY_SET)].contains(&sig) {
            self.suspect = true;
        }
        self.seen |= bit;
        match self.sigs.get_mut(self.len) {
            Some(slot) => {
                *slot = sig;
                self.len += 1;
            }
            None => self.suspect = true,
        }
    }
}

/// Objects with at most this many plain ASCII keys are checked pairwise.
const SMALL_KEYS: usize = 20;

/// The keys of one object being validated: on the stack while few and plain,
/// spilled to the thread-local fingerprint list otherwise.
struct SmallKeys {
    /// Start and end of each key, in 32 bits: the list is written afresh
    /// for every object, and its size is most of what that costs.
    list: [(u32, u32); SMALL_KEYS],
    /// [`key_sig`] of each key in `list`.
    sigs: [u64; SMALL_KEYS],
    /// One bit per signature seen (a 64-bit Bloom filter), so that a new key
    /// is compared with the earlier ones only when its bit was already set.
    seen: u64,
    /// Two keys share a signature: the pairwise check must run.
    sig_clash: bool,
    len: usize,
    spilled: bool,
    mark: usize,
}

impl SmallKeys {
    /// Records a plain ASCII key (there is room: `len < SMALL_KEYS`).
    #[inline]
    fn add(&mut self, start: usize, end: usize, sig: u64) {
        let bit = 1u64 << (sig.wrapping_mul(0x9e37_79b9_7f4a_7c15) >> 58);
        if self.seen & bit != 0 && self.sigs[..self.len].contains(&sig) {
            self.sig_clash = true;
        }
        self.seen |= bit;
        self.list[self.len] = (start as u32, end as u32);
        self.sigs[self.len] = sig;
        self.len += 1;
    }

    fn new() -> SmallKeys {
        SmallKeys {
            list: [(0, 0); SMALL_KEYS],
            sigs: [0; SMALL_KEYS],
            seen: 0,
            sig_clash: false,
            len: 0,
            spilled: false,
            mark: 0,
        }
    }
}

/// Fingerprint of one object key, kept while the object is being validated.
#[derive(Clone, Copy)]
struct KeyPrint {
    folded: u64,
    exact: u64,
    start: usize,
    end: usize,
    escaped: bool,
}

thread_local! {
    /// Reusable stack of key fingerprints; grows to the largest object seen, then stays.
    static KEYS: std::cell::RefCell<Vec<KeyPrint>> = const { std::cell::RefCell::new(Vec::new()) };
}

// ---------------------------------------------------------------------------
// Borrowed views over validated JSON.

/// One JSON value inside a validated text: `raw` starts at the value's first byte.
#[derive(Clone, Copy, PartialEq, Eq)]
pub struct Value<'a> {
    raw: &'a [u8],
}

impl fmt::Debug for Value<'_> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "Value({})", String::from_utf8_lossy(self.as_bytes()))
    }
}

/// What a [`Value`] is; also the operand type of every policy operator.
#[derive(Debug, Clone, Copy)]
pub enum Val<'a> {
    /// `null`
    Null,
    /// `true` / `false`
    Bool(bool),
    /// A number, kept as its exact decimal text.
    Num(Num<'a>),
    /// A string (possibly with escapes).
    Str(JStr<'a>),
    /// An array.
    Array(Array<'a>),
    /// An object.
    Object(Object<'a>),
}

impl<'a> Value<'a> {
    /// Reads the first value of a validated text (leading whitespace skipped).
    ///
    /// Callers must have run [`validate`] on `bytes`; on anything else the
    /// result is a well-defined but unspecified value, never a panic.
    pub fn from_validated(bytes: &'a [u8]) -> Value<'a> {
        let start = skip_ws(bytes, 0);
        let end = skip_value(bytes, start);
        Value {
            raw: &bytes[start..end],
        }
    }

    /// The value that is exactly `raw`, a span a validating pass recorded
    /// (no walk to find its end, unlike [`Value::from_validated`]): for
    /// `core::structural`'s answer outline. Same contract: on anything but
    /// one validated value, well-defined but unspecified, never a panic.
    pub fn from_validated_span(raw: &'a [u8]) -> Value<'a> {
        Value { raw }
    }

    /// The exact bytes of this value.
    pub fn as_bytes(&self) -> &'a [u8] {
        self.raw
    }

    /// Classifies the value.
    pub fn val(&self) -> Val<'a> {
        match self.raw.first() {
            Some(b'n') => Val::Null,
            Some(b't') => Val::Bool(true),
            Some(b'f') => Val::Bool(false),
            Some(b'"') => {
                let inner = &self.raw[1..self.raw.len().saturating_sub(1).max(1)];
                Val::Str(JStr::from_body(inner))
            }
            Some(b'[') => Val::Array(Array { raw: self.raw }),
            Some(b'{') => Val::Object(Object { raw: self.raw }),
            Some(_) => Val::Num(Num::parse(self.raw).unwrap_or(Num::ZERO)),
            None => Val::Null,
        }
    }

    /// True for `null`.
    pub fn is_null(&self) -> bool {
        self.raw.first() == Some(&b'n')
    }
}

/// A JSON object inside a validated text.
#[derive(Debug, Clone, Copy)]
pub struct Object<'a> {
    raw: &'a [u8],
}

impl<'a> Object<'a> {
    /// Members in document order (duplicates included).
    pub fn members(&self) -> Members<'a> {
        Members {
            raw: self.raw,
            pos: 1,
        }
    }

    /// The value of `key`; with duplicate keys the last one wins, as in Go, JavaScript and Python.
    pub fn get(&self, key: &str) -> Option<Value<'a>> {
        let mut found = None;
        for (k, v) in self.members() {
            if k.eq_str(key) {
                found = Some(v);
            }
        }
        found
    }

    /// The value of the member whose key equals `key` under case folding
    /// ([`JStr::eq_folded`]: `AMOUNT`, `Amount`, `amounſ` and `\u0041mount`
    /// all select `amount`), the last one winning. This is how policy
    /// argument paths read arguments: a server in Go (encoding/json) matches
    /// struct fields in any letter case, so an exact lookup would let
    /// `{"AMOUNT": 5000}` past `args.amount > 100`. The strict reader refuses
    /// objects with two such keys, so under it the answer is unambiguous.
    pub fn get_folded(&self, key: &str) -> Option<Value<'a>> {
        let key = JStr::plain(key);
        let mut found = None;
        for (k, v) in self.members() {
            if k.eq_folded(&key) {
                found = Some(v);
            }
        }
        found
    }

    /// The exact bytes of this object.
    pub fn as_bytes(&self) -> &'a [u8] {
        self.raw
    }

    /// Number of members (duplicates counted).
    pub fn len(&self) -> usize {
        self.members().count()
    }

    /// True when the object has no members.
    pub fn is_empty(&self) -> bool {
        self.members().next().is_none()
    }
}

/// Iterator over an object's members.
pub struct Members<'a> {
    raw: &'a [u8],
    pos: usize,
}

impl<'a> Iterator for Members<'a> {
    type Item = (JStr<'a>, Value<'a>);

    fn next(&mut self) -> Option<Self::Item> {
        let b = self.raw;
        let mut p = skip_ws(b, self.pos);
        if b.get(p) == Some(&b',') {
            p = skip_ws(b, p + 1);
        }
        if b.get(p) != Some(&b'"') {
            self.pos = b.len();
            return None;
        }
        let kend = skip_string(b, p);
        let key_inner = b.get(p + 1..kend.saturating_sub(1))?;
        let key = JStr::from_body(key_inner);
        p = skip_ws(b, kend);
        if b.get(p) != Some(&b':') {
            self.pos = b.len();
            return None;
        }
        p = skip_ws(b, p + 1);
        let vend = skip_value(b, p);
        if vend <= p {
            self.pos = b.len();
            return None;
        }
        self.pos = vend;
        Some((key, Value { raw: &b[p..vend] }))
    }
}

/// A JSON array inside a validated text.
#[derive(Debug, Clone, Copy)]
pub struct Array<'a> {
    raw: &'a [u8],
}

impl<'a> Array<'a> {
    /// Elements in order.
    pub fn iter(&self) -> Elements<'a> {
        Elements {
            raw: self.raw,
            pos: 1,
        }
    }

    /// Number of elements.
    pub fn len(&self) -> usize {
        self.iter().count()
    }

    /// The exact bytes of this array.
    pub fn as_bytes(&self) -> &'a [u8] {
        self.raw
    }

    /// True when the array has no elements.
    pub fn is_empty(&self) -> bool {
        self.iter().next().is_none()
    }
}

/// Iterator over an array's elements.
pub struct Elements<'a> {
    raw: &'a [u8],
    pos: usize,
}

impl<'a> Iterator for Elements<'a> {
    type Item = Value<'a>;

    fn next(&mut self) -> Option<Value<'a>> {
        let b = self.raw;
        let mut p = skip_ws(b, self.pos);
        if b.get(p) == Some(&b',') {
            p = skip_ws(b, p + 1);
        }
        match b.get(p) {
            None | Some(b']') => {
                self.pos = b.len();
                return None;
            }
            _ => {}
        }
        let end = skip_value(b, p);
        if end <= p {
            self.pos = b.len();
            return None;
        }
        self.pos = end;
        Some(Value { raw: &b[p..end] })
    }
}

fn skip_ws(b: &[u8], mut p: usize) -> usize {
    while let Some(b' ' | b'\t' | b'\n' | b'\r') = b.get(p) {
        p += 1;
    }
    p
}

/// End (exclusive) of the string starting at the quote at `p`. The text
/// was validated, so only `"` and `\` matter: a plain two-byte search.
fn skip_string(b: &[u8], p: usize) -> usize {
    let mut i = p + 1;
    while let Some(k) = b
        .get(i..)
        .and_then(|rest| memchr::memchr2(b'"', b'\\', rest))
    {
        if b[i + k] == b'"' {
            return i + k + 1;
        }
        i += k + 2; // the backslash and the byte it escapes
    }
    b.len()
}

/// Offset of the first `"`, `{`, `[`, `}` or `]` in validated text `b` (or
/// its length), eight bytes at a time. OR-ing 0x20 into every byte maps `[`
/// onto `{` and `]` onto `}`, so three byte tests find all five; the other
/// bytes that map onto them (0x02, 0x5B/0x5D's and 0x7B/0x7D's own) are
/// either the brackets themselves or control bytes, which validated JSON
/// never holds outside strings. The walk over a container (a tool's
/// `inputSchema` in a `tools/list` answer) was bytewise before, the largest
/// cost of filtering a `tools/list` answer.
fn structural(b: &[u8]) -> usize {
    const LO: u64 = 0x0101_0101_0101_0101;
    const HI: u64 = 0x8080_8080_8080_8080;
    let has_zero = |v: u64| v.wrapping_sub(LO) & !v & HI;
    let mut i = 0;
    while let Some(word) = b.get(i..i + 8) {
        let w = u64::from_le_bytes(word.try_into().unwrap_or([0; 8])) | (LO * 0x20);
        let hit = has_zero(w ^ (LO * u64::from(b'"')))
            | has_zero(w ^ (LO * u64::from(b'{')))
            | has_zero(w ^ (LO * u64::from(b'}')));
        if hit != 0 {
            return i + (hit.trailing_zeros() / 8) as usize;
        }
        i += 8;
    }
    while let Some(&c) = b.get(i) {
        if matches!(c, b'"' | b'{' | b'[' | b'}' | b']') {
            break;
        }
        i += 1;
    }
    i
}

/// End (exclusive) of the value starting at `p`, for validated input.
fn skip_value(b: &[u8], p: usize) -> usize {
    match b.get(p) {
        None => p,
        Some(b'"') => skip_string(b, p),
        Some(b'{' | b'[') => {
            let mut depth = 0usize;
            let mut i = p;
            while i < b.len() {
                i += structural(&b[i..]);
                match b.get(i) {
                    Some(b'"') => {
                        i = skip_string(b, i);
                        continue;
                    }
                    Some(b'{' | b'[') => depth += 1,
                    Some(_) => {
                        depth -= 1;
                        if depth == 0 {
                            return i + 1;
                        }
                    }
                    None => break,
                }
                i += 1;
            }
            b.len()
        }
        Some(_) => {
            let mut i = p;
            while let Some(c) = b.get(i) {
                if matches!(c, b',' | b'}' | b']' | b' ' | b'\t' | b'\n' | b'\r') {
                    break;
                }
                i += 1;
            }
            i
        }
    }
}

// ---------------------------------------------------------------------------
// Strings.

/// A JSON string's contents as written between the quotes (escapes not yet decoded).
///
/// Held as bytes: every `JStr` is built over text that [`validate`] checked
/// as UTF-8 (or over a `&str`), so the bytes are only converted to `&str`
/// (a cheap check, never failing in practice) where a `&str` is needed.
#[derive(Clone, Copy)]
pub struct JStr<'a> {
    raw: &'a [u8],
    /// `raw` is JSON text with backslash escapes. When false it is the
    /// decoded text itself, and a backslash in it is just a backslash (a
    /// policy constant such as `"C:\\Windows"` is held that way).
    escaped: bool,
    /// `raw` is known to be all ASCII with no escapes (the validator saw
    /// it: a key read from a [`MemberIndex`]); false when not known.
    ascii: bool,
}

impl fmt::Debug for JStr<'_> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{:?}", self.chars().collect::<String>())
    }
}

impl<'a> JStr<'a> {
    /// A string that is already decoded (policy constants, member names): a
    /// backslash in `s` stands for itself, it starts no escape.
    pub const fn plain(s: &'a str) -> JStr<'a> {
        JStr {
            raw: s.as_bytes(),
            escaped: false,
            ascii: false,
        }
    }

    /// A view over the body of a validated JSON string.
    fn from_body(raw: &'a [u8]) -> JStr<'a> {
        JStr {
            raw,
            escaped: memchr::memchr(b'\\', raw).is_some(),
            ascii: false,
        }
    }

    fn text(&self) -> &'a str {
        std::str::from_utf8(self.raw).unwrap_or("")
    }

    /// The decoded text when it has no escapes: the zero-copy case.
    pub fn as_plain(&self) -> Option<&'a str> {
        (!self.escaped).then(|| self.text())
    }

    /// The bytes exactly as written between the quotes.
    pub fn raw_bytes(&self) -> &'a [u8] {
        self.raw
    }

    /// True when an escape in the text is a lone UTF-16 surrogate
    /// (`"\ud800"`, a `\udc00` not after a high surrogate): decoded, it
    /// becomes U+FFFD like any other, so it cannot be told apart by its
    /// characters.
    pub fn has_lone_surrogate(&self) -> bool {
        if !self.escaped {
            return false;
        }
        let hex4 = |at: usize| -> Option<u32> {
            let h = self.raw.get(at..at + 4)?;
            h.iter()
                .try_fold(0u32, |v, &c| Some(v * 16 + (c as char).to_digit(16)?))
        };
        let mut i = 0;
        while let Some(at) = memchr::memchr(b'\\', &self.raw[i..]) {
            let at = i + at;
            if self.raw.get(at + 1) != Some(&b'u') {
                i = at + 2;
                continue;
            }
            let Some(unit) = hex4(at + 2) else {
                return true;
            };
            i = at + 6;
            if (0xdc00..0xe000).contains(&unit) {
                return true; // a low surrogate with no high one before it
            }
            if (0xd800..0xdc00).contains(&unit) {
                let low = (self.raw.get(i..i + 2) == Some(&b"\\u"[..]))
                    .then(|| hex4(i + 2))
                    .flatten();
                if !low.is_some_and(|l| (0xdc00..0xe000).contains(&l)) {
                    return true;
                }
                i += 6;
            }
        }
        false
    }

    /// Decoded characters (escapes resolved; a lone surrogate becomes U+FFFD, as in Go).
    pub fn chars(&self) -> Chars<'a> {
        Chars {
            s: self.raw,
            pos: 0,
            escapes: self.escaped,
        }
    }

    /// Calls `f` with the decoded text: borrowed when there are no escapes,
    /// otherwise decoded into a reused thread-local buffer (no allocation after warm-up).
    pub fn with_str<R>(&self, f: impl FnOnce(&str) -> R) -> R {
        if !self.escaped {
            return f(self.text());
        }
        DECODE.with(|buf| match buf.try_borrow_mut() {
            Ok(mut buf) => {
                buf.clear();
                buf.extend(self.chars());
                f(&buf)
            }
            // Re-entrant use (never happens in the decision path): fall back to a fresh string.
            Err(_) => f(&self.chars().collect::<String>()),
        })
    }

    /// Calls `f` with the decoded text as bytes (for matching object keys
    /// against byte-string literals without a UTF-8 check).
    pub fn with_bytes<R>(&self, f: impl FnOnce(&[u8]) -> R) -> R {
        if !self.escaped {
            return f(self.raw);
        }
        self.with_str(|s| f(s.as_bytes()))
    }

    /// Equality of the decoded text with `s`.
    pub fn eq_str(&self, s: &str) -> bool {
        if !self.escaped {
            return self.raw == s.as_bytes();
        }
        self.chars().eq(s.chars())
    }

    /// Equality of two decoded texts.
    pub fn eq_jstr(&self, other: &JStr<'_>) -> bool {
        match (self.escaped, other.escaped) {
            (false, false) => self.raw == other.raw,
            _ => self.chars().eq(other.chars()),
        }
    }

    /// Number of decoded characters (Unicode scalar values).
    pub fn char_len(&self) -> usize {
        if self.escaped {
            self.chars().count()
        } else {
            // Valid UTF-8: count the bytes that start a character.
            self.raw.iter().filter(|&&b| (b & 0xc0) != 0x80).count()
        }
    }

    fn folded_chars(&self) -> impl Iterator<Item = char> + 'a {
        self.chars()
            .flat_map(char::to_uppercase)
            .flat_map(char::to_lowercase)
    }

    /// Equality under Unicode case folding (upper-then-lower, so `ſ`, `s` and `S` are one key).
    pub fn eq_folded(&self, other: &JStr<'_>) -> bool {
        self.folded_chars().eq(other.folded_chars())
    }

    /// Writes the case-folded decoded text (the folding of [`JStr::eq_folded`],
    /// escapes resolved) into `buf` as UTF-8 and returns the written part, or
    /// None when it does not fit.
    ///
    /// This is how policy argument paths match object keys: the generated
    /// code folds each key into a stack buffer as long as the longest folded
    /// policy key and compares bytes, so a key that cannot match is given up
    /// after at most `buf.len() + 1` characters, and nothing is allocated.
    /// Two keys of one object are never equal under this folding once the
    /// strict reader has accepted it, so a folded lookup is unambiguous.
    pub fn fold_into<'b>(&self, buf: &'b mut [u8]) -> Option<&'b [u8]> {
        if self.ascii {
            // Known plain ASCII (a key the validator indexed): its folding
            // is exactly as long, so a longer key is given up at once.
            let out = buf.get_mut(..self.raw.len())?;
            for (o, c) in out.iter_mut().zip(self.raw) {
                *o = c.to_ascii_lowercase();
            }
            return Some(out);
        }
        if !self.escaped {
            // Unescaped text folds to at least a quarter of its bytes (a
            // character is at most four bytes and folds to at least one),
            // so a key that long cannot fit.
            if self.raw.len() / 4 > buf.len() {
                return None;
            }
            // Fast path: plain ASCII folds to ASCII lowercase, byte for byte.
            let mut n = 0;
            for &c in self.raw {
                if c >= 0x80 {
                    return self.fold_slow(buf);
                }
                *buf.get_mut(n)? = c.to_ascii_lowercase();
                n += 1;
            }
            return Some(&buf[..n]);
        }
        self.fold_slow(buf)
    }

    /// The case-folded decoded text, as [`JStr::fold_into`] writes it: what
    /// a policy's argument path segment is compiled to.
    pub fn folded(&self) -> String {
        self.folded_chars().collect()
    }

    fn fold_slow<'b>(&self, buf: &'b mut [u8]) -> Option<&'b [u8]> {
        let mut n = 0;
        // Every character folds to at least one, so this stops after at
        // most `buf.len() + 1` characters however long the key is.
        for c in self.folded_chars() {
            let end = n + c.len_utf8();
            c.encode_utf8(buf.get_mut(n..end)?);
            n = end;
        }
        Some(&buf[..n])
    }

    fn fold_hash(&self) -> u64 {
        self.folded_chars()
            .fold(Fnv::new(), |h, c| h.write(u64::from(c)))
            .finish()
    }

    fn exact_hash(&self) -> u64 {
        self.chars()
            .fold(Fnv::new(), |h, c| h.write(u64::from(c)))
            .finish()
    }
}

thread_local! {
    static DECODE: std::cell::RefCell<String> = const { std::cell::RefCell::new(String::new()) };
}

/// Decoding iterator over a JSON string body.
pub struct Chars<'a> {
    s: &'a [u8],
    pos: usize,
    /// Whether a backslash starts an escape (JSON text) or is a character (decoded text).
    escapes: bool,
}

impl Chars<'_> {
    fn hex4(&self, at: usize) -> Option<u32> {
        let h = self.s.get(at..at + 4)?;
        let mut v = 0u32;
        for &c in h {
            v = v * 16 + (c as char).to_digit(16)?;
        }
        Some(v)
    }
}

impl Iterator for Chars<'_> {
    type Item = char;

    fn next(&mut self) -> Option<char> {
        let b = *self.s.get(self.pos)?;
        if b < 0x80 && (b != b'\\' || !self.escapes) {
            self.pos += 1;
            return Some(char::from(b));
        }
        if b >= 0x80 {
            // Decode one UTF-8 scalar from the validated text.
            let len = match b {
                0x00..=0x7f => 1,
                0xc0..=0xdf => 2,
                0xe0..=0xef => 3,
                _ => 4,
            };
            let end = (self.pos + len).min(self.s.len());
            let c = std::str::from_utf8(&self.s[self.pos..end])
                .ok()
                .and_then(|s| s.chars().next())
                .unwrap_or('\u{fffd}');
            self.pos = end;
            return Some(c);
        }
        let esc = self.s.get(self.pos + 1).copied().unwrap_or(b'\\');
        self.pos += 2;
        Some(match esc {
            b'"' => '"',
            b'\\' => '\\',
            b'/' => '/',
            b'b' => '\u{8}',
            b'f' => '\u{c}',
            b'n' => '\n',
            b'r' => '\r',
            b't' => '\t',
            b'u' => {
                let Some(hi) = self.hex4(self.pos) else {
                    return Some('\u{fffd}');
                };
                self.pos += 4;
                if (0xd800..0xdc00).contains(&hi) {
                    // A high surrogate needs a following \uDC00..\uDFFF.
                    if self.s.get(self.pos) == Some(&b'\\')
                        && self.s.get(self.pos + 1) == Some(&b'u')
                        && let Some(lo) = self.hex4(self.pos + 2)
                        && (0xdc00..0xe000).contains(&lo)
                    {
                        self.pos += 6;
                        let c = 0x10000 + ((hi - 0xd800) << 10) + (lo - 0xdc00);
                        return Some(char::from_u32(c).unwrap_or('\u{fffd}'));
                    }
                    '\u{fffd}'
                } else {
                    char::from_u32(hi).unwrap_or('\u{fffd}')
                }
            }
            _ => '\u{fffd}',
        })
    }
}

// ---------------------------------------------------------------------------
// Numbers.

/// A JSON (or policy) number kept as exact decimal text: `-? int . frac e exp`.
///
/// Comparison is exact for every finite decimal: no float rounding, so
/// `9007199254740993 > 9007199254740992` and `1e6 == 1000000 == 1000000.0`.
#[derive(Clone, Copy)]
pub struct Num<'a> {
    neg: bool,
    int: &'a [u8],
    frac: &'a [u8],
    exp: i64,
}

impl fmt::Debug for Num<'_> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(
            f,
            "{}{}",
            if self.neg { "-" } else { "" },
            String::from_utf8_lossy(self.int)
        )?;
        if !self.frac.is_empty() {
            write!(f, ".{}", String::from_utf8_lossy(self.frac))?;
        }
        if self.exp != 0 {
            write!(f, "e{}", self.exp)?;
        }
        Ok(())
    }
}

/// Exponents are clamped to this magnitude so digit-position arithmetic cannot overflow;
/// numbers beyond 10^(2^40) are indistinguishable from each other, which no policy can observe.
const EXP_CLAMP: i64 = 1 << 40;

impl<'a> Num<'a> {
    /// Zero.
    pub const ZERO: Num<'static> = Num {
        neg: false,
        int: b"0",
        frac: b"",
        exp: 0,
    };

    /// A number from its parts (used by generated code for policy constants).
    pub const fn from_parts(neg: bool, int: &'a [u8], frac: &'a [u8], exp: i64) -> Num<'a> {
        Num {
            neg,
            int,
            frac,
            exp,
        }
    }

    /// Parses strict JSON number syntax. Returns None for anything else
    /// (leading `+`, leading zeros, hex, spaces, `.5`, `NaN`, ...).
    pub fn parse(text: &'a [u8]) -> Option<Num<'a>> {
        let mut p = 0;
        let neg = text.first() == Some(&b'-');
        if neg {
            p = 1;
        }
        let int_start = p;
        match text.get(p) {
            Some(b'0') => p += 1,
            Some(b'1'..=b'9') => {
                while let Some(b'0'..=b'9') = text.get(p) {
                    p += 1;
                }
            }
            _ => return None,
        }
        let int = &text[int_start..p];
        let mut frac: &[u8] = b"";
        if text.get(p) == Some(&b'.') {
            let s = p + 1;
            p = s;
            while let Some(b'0'..=b'9') = text.get(p) {
                p += 1;
            }
            if p == s {
                return None;
            }
            frac = &text[s..p];
        }
        let mut exp: i64 = 0;
        if let Some(b'e' | b'E') = text.get(p) {
            p += 1;
            let eneg = match text.get(p) {
                Some(b'-') => {
                    p += 1;
                    true
                }
                Some(b'+') => {
                    p += 1;
                    false
                }
                _ => false,
            };
            let s = p;
            while let Some(d @ b'0'..=b'9') = text.get(p) {
                exp = (exp * 10 + i64::from(d - b'0')).min(EXP_CLAMP);
                p += 1;
            }
            if p == s {
                return None;
            }
            if eneg {
                exp = -exp;
            }
        }
        (p == text.len()).then_some(Num {
            neg,
            int,
            frac,
            exp,
        })
    }

    fn digit(&self, i: usize) -> u8 {
        if i < self.int.len() {
            self.int[i]
        } else {
            self.frac.get(i - self.int.len()).copied().unwrap_or(b'0')
        }
    }

    /// (first significant digit index, one past the last, decimal exponent E) with
    /// value = 0.d1d2... * 10^E; None for zero.
    fn norm(&self) -> Option<(usize, usize, i64)> {
        let total = self.int.len() + self.frac.len();
        let first = (0..total).find(|&i| self.digit(i) != b'0')?;
        let last = (0..total).rev().find(|&i| self.digit(i) != b'0')?;
        let e = self.int.len() as i64 - first as i64 + self.exp;
        Some((first, last + 1, e))
    }

    /// True when the exponent as written is at least 2^40 in magnitude:
    /// it was clamped while parsing, so this number may compare equal to
    /// a different one (`1e1099511627776` and `1e1099511627777`).
    pub fn exponent_clamped(&self) -> bool {
        self.exp.abs() >= EXP_CLAMP
    }

    /// The exponent as written (`e` part, 0 without one), clamped to
    /// ±2^40.
    pub fn written_exponent(&self) -> i64 {
        self.exp
    }

    /// True when the value is zero (`0`, `-0.0`, `0e5`, ...).
    pub fn is_zero(&self) -> bool {
        self.norm().is_none()
    }

    /// True when the value is negative (and not zero).
    pub fn is_negative(&self) -> bool {
        self.neg && !self.is_zero()
    }

    /// Exact three-way comparison of two numbers.
    pub fn cmp_num(&self, other: &Num<'_>) -> Ordering {
        let (a, b) = (self.norm(), other.norm());
        let sign = |n: &Num<'_>, z: bool| -> i8 {
            if z {
                0
            } else if n.neg {
                -1
            } else {
                1
            }
        };
        let (sa, sb) = (sign(self, a.is_none()), sign(other, b.is_none()));
        if sa != sb {
            return sa.cmp(&sb);
        }
        let (Some((fa, la, ea)), Some((fb, lb, eb))) = (a, b) else {
            return Ordering::Equal; // both zero
        };
        let mag = ea.cmp(&eb).then_with(|| {
            let (na, nb) = (la - fa, lb - fb);
            for i in 0..na.min(nb) {
                let c = self.digit(fa + i).cmp(&other.digit(fb + i));
                if c != Ordering::Equal {
                    return c;
                }
            }
            na.cmp(&nb)
        });
        if sa < 0 { mag.reverse() } else { mag }
    }

    /// The value as a u64 if it is a whole number in `0..=u64::MAX` (`3`, `3.0`, `3e0`, `300e-2`).
    pub fn to_u64_exact(&self) -> Option<u64> {
        let Some((first, end, e)) = self.norm() else {
            return Some(0);
        };
        if self.neg {
            return None;
        }
        let ndigits = (end - first) as i64;
        if e < ndigits || e > 20 {
            return None; // has a fractional part, or is far too large
        }
        let mut v: u64 = 0;
        for i in 0..e as usize {
            let d = if i < ndigits as usize {
                self.digit(first + i) - b'0'
            } else {
                0
            };
            v = v.checked_mul(10)?.checked_add(u64::from(d))?;
        }
        Some(v)
    }

    /// Feeds a canonical byte form of the value to `out`: equal values give
    /// equal bytes whatever their spelling (used to key counter partitions).
    pub fn canonical(&self, mut out: impl FnMut(u8)) {
        match self.norm() {
            None => out(b'0'),
            Some((first, end, e)) => {
                if self.neg {
                    out(b'-');
                }
                for i in first..end {
                    out(self.digit(i));
                }
                out(b'e');
                e.to_le_bytes().into_iter().for_each(out);
            }
        }
    }

    /// The value as `digits[e<exp>]` (value = digits x 10^exp, no leading or
    /// trailing zeros in `digits`): one spelling per value, for hashing.
    pub fn canonical_text(&self) -> String {
        match self.norm() {
            None => "0".to_string(),
            Some((first, end, e)) => {
                // Sign, digits and a short exponent: one allocation.
                let mut s = String::with_capacity(end - first + 8);
                if self.neg {
                    s.push('-');
                }
                for i in first..end {
                    s.push(self.digit(i) as char);
                }
                let exp = e - (end - first) as i64;
                if exp != 0 {
                    s.push('e');
                    s.push_str(&exp.to_string());
                }
                s
            }
        }
    }

    /// True when the value has no fractional part.
    pub fn is_integer(&self) -> bool {
        match self.norm() {
            None => true,
            Some((first, end, e)) => e >= (end - first) as i64,
        }
    }
}

/// Formats `v` into `buf` and returns the number view over it (for comparing counters with constants).
pub fn num_from_u64(v: u64, buf: &mut [u8; 20]) -> Num<'_> {
    let mut i = buf.len();
    let mut n = v;
    loop {
        i -= 1;
        buf[i] = b'0' + (n % 10) as u8;
        n /= 10;
        if n == 0 {
            break;
        }
    }
    Num {
        neg: false,
        int: &buf[i..],
        frac: b"",
        exp: 0,
    }
}

/// Appends `s` as a JSON string literal (escaping what JSON requires, and
/// U+2028/U+2029, which JavaScript readers of a line treat as line ends).
pub fn push_json_str(out: &mut Vec<u8>, s: &str) {
    out.push(b'"');
    for c in s.chars() {
        match c {
            '"' => out.extend_from_slice(b"\\\""),
            '\\' => out.extend_from_slice(b"\\\\"),
            '\n' => out.extend_from_slice(b"\\n"),
            '\r' => out.extend_from_slice(b"\\r"),
            '\t' => out.extend_from_slice(b"\\t"),
            c if (c as u32) < 0x20 || c == '\u{2028}' || c == '\u{2029}' => {
                out.extend_from_slice(format!("\\u{:04x}", c as u32).as_bytes());
            }
            c => {
                let mut buf = [0u8; 4];
                out.extend_from_slice(c.encode_utf8(&mut buf).as_bytes());
            }
        }
    }
    out.push(b'"');
}

#[cfg(test)]
mod tests {
    use super::*;

    fn n(s: &str) -> Num<'_> {
        Num::parse(s.as_bytes()).unwrap_or_else(|| panic!("not a number: {s}"))
    }

    #[test]
    fn numbers_compare_exactly() {
        assert_eq!(n("1e6").cmp_num(&n("1000000")), Ordering::Equal);
        assert_eq!(n("1000000.000").cmp_num(&n("1e6")), Ordering::Equal);
        assert_eq!(
            n("9007199254740993").cmp_num(&n("9007199254740992")),
            Ordering::Greater
        );
        assert_eq!(n("-0").cmp_num(&n("0.0e10")), Ordering::Equal);
        assert_eq!(n("-1").cmp_num(&n("0")), Ordering::Less);
        assert_eq!(n("-2").cmp_num(&n("-10")), Ordering::Greater);
        assert_eq!(n("99.5").cmp_num(&n("99.51")), Ordering::Less);
        assert_eq!(n("0.001").cmp_num(&n("1e-3")), Ordering::Equal);
        assert_eq!(n("123.45e2").cmp_num(&n("12345")), Ordering::Equal);
        assert_eq!(
            n("1e-99999999999999999999").cmp_num(&n("0")),
            Ordering::Greater
        );
        assert_eq!(
            n("1e99999999999999").cmp_num(&n("1e99999999999998")),
            Ordering::Equal
        ); // clamped
    }

    #[test]
    fn numbers_reject_non_json_syntax() {
        for bad in [
            "+1", "01", ".5", "5.", "0x10", "1_000", " 1", "1 ", "NaN", "", "-", "1e",
        ] {
            assert!(Num::parse(bad.as_bytes()).is_none(), "{bad:?} parsed");
        }
    }

    #[test]
    fn canonical_text_is_one_spelling_per_value() {
        assert_eq!(n("1000000").canonical_text(), "1e6");
        assert_eq!(n("1e6").canonical_text(), "1e6");
        assert_eq!(n("12").canonical_text(), "12");
        assert_eq!(n("0.50").canonical_text(), "5e-1");
        assert_eq!(n("-0.0").canonical_text(), "0");
        assert_eq!(n("-12.5").canonical_text(), "-125e-1");
    }

    #[test]
    fn whole_numbers_convert_exactly() {
        assert_eq!(n("3").to_u64_exact(), Some(3));
        assert_eq!(n("3.0").to_u64_exact(), Some(3));
        assert_eq!(n("300e-2").to_u64_exact(), Some(3));
        assert_eq!(n("0.5").to_u64_exact(), None);
        assert_eq!(n("-1").to_u64_exact(), None);
        assert_eq!(n("-0").to_u64_exact(), Some(0));
        assert_eq!(n("1e19").to_u64_exact(), Some(10_000_000_000_000_000_000));
        assert_eq!(n("1e20").to_u64_exact(), None);
        assert_eq!(n("18446744073709551615").to_u64_exact(), Some(u64::MAX));
        assert_eq!(n("18446744073709551616").to_u64_exact(), None);
    }

    #[test]
    fn validate_accepts_and_rejects() {
        let ok = [
            r#"{}"#,
            r#" {"a": [1, 2.5e-3, true, false, null, "x\n\u00e9"]} "#,
            r#"[]"#,
            r#""\ud83d\ude00""#,
        ];
        for s in ok {
            validate(s.as_bytes(), Strictness::STRICT).unwrap_or_else(|e| panic!("{s}: {e}"));
        }
        use JsonErrorKind::*;
        let bad = [
            (r#"{"a":1} x"#, TrailingData),
            (r#"{"a":1,}"#, ExpectedKey),
            (r#"{"a":01}"#, ExpectedObjectSeparator),
            (r#"[1 2]"#, ExpectedArraySeparator),
            (r#"{"a" 1}"#, ExpectedColon),
            (r#"{"a":tru}"#, InvalidLiteral),
            (r#"{"a":}"#, ExpectedValue),
            (r#"{"a":"#, UnexpectedEnd),
            (r#"{"a":"b"#, UnterminatedString),
            (r#"{"a":1.}"#, InvalidNumber),
            (r#"{"a":"\x"}"#, InvalidEscape),
            (r#"{"a":"\u12"}"#, InvalidUnicodeEscape),
            ("{\"a\":\"\t\"}", ControlCharacter),
            (r#"{"a":1,"a":2}"#, DuplicateKey),
            (r#"{"a":{"b":1,"B":2}}"#, CaseVariantKeys),
            (r#"{"n\u0061me":1,"name":2}"#, DuplicateKey),
            (r#"{"ſ":1,"S":2}"#, CaseVariantKeys),
            (r#"{"K":1,"k":2}"#, CaseVariantKeys),
        ];
        for (s, kind) in bad {
            let e = validate(s.as_bytes(), Strictness::STRICT).unwrap_err();
            assert_eq!(e.kind(), kind, "{s}");
        }
        assert_eq!(
            validate(b"{\"a\":\"\xff\"}", Strictness::STRICT).map_err(|e| e.kind()),
            Err(InvalidUtf8)
        );
        assert!(validate(r#"{"a":1,"a":2}"#.as_bytes(), Strictness::LENIENT).is_ok());
        let deep = "[".repeat(129) + &"]".repeat(129);
        assert_eq!(
            validate(deep.as_bytes(), Strictness::STRICT)
                .unwrap_err()
                .kind(),
            TooDeep
        );
        let ok_deep = "[".repeat(128) + &"]".repeat(128);
        assert!(validate(ok_deep.as_bytes(), Strictness::STRICT).is_ok());
    }

    /// The messages people read in logs and errors, one per kind.
    #[test]
    fn every_json_error_kind_has_its_message() {
        let messages: Vec<String> = JsonErrorKind::ALL.iter().map(|k| k.to_string()).collect();
        assert_eq!(
            messages,
            [
                "trailing data after the JSON value",
                "invalid literal",
                "expected a JSON value",
                "unexpected end of input",
                "nesting too deep",
                "expected ',' or ']' in array",
                "expected a string key in object",
                "expected ':' after object key",
                "expected ',' or '}' in object",
                "duplicate object key",
                "object keys differ only in letter case",
                "invalid UTF-8 in string",
                "control character in string",
                "unterminated string",
                "invalid \\u escape",
                "invalid escape",
                "invalid number",
            ]
        );
        let e = validate(b"[1,]", Strictness::STRICT).unwrap_err();
        assert_eq!(e.to_string(), "expected a JSON value at byte 3");
    }

    #[test]
    fn plain_scan_stops_at_every_special_byte() {
        for special in [b'"', b'\\', 0x00, 0x1f, b'\n'] {
            for at in 0..20 {
                let mut v = vec![b'a'; 24];
                v[at] = special;
                assert_eq!(scan_plain(&v), (at, true), "byte {special:#x} at {at}");
            }
        }
        let text = "abcdefghé klmnopqrstuvwxyz\"".as_bytes();
        assert_eq!(scan_plain(text), (text.len() - 1, false));
        assert_eq!(scan_plain(b"0123456789abcdef"), (16, true));
    }

    #[test]
    fn views_find_escapes_and_string_ends_at_every_offset() {
        for at in 0..40 {
            let body = format!("{}\\\"{}", "a".repeat(at), "b".repeat(40 - at));
            let text = format!(r#"{{"k":"{body}","z":1}}"#);
            validate(text.as_bytes(), Strictness::STRICT).unwrap();
            let Val::Object(o) = Value::from_validated(text.as_bytes()).val() else {
                panic!("{text}")
            };
            let Some(Val::Str(k)) = o.get("k").map(|v| v.val()) else {
                panic!("{text}")
            };
            assert!(k.as_plain().is_none(), "an escape at {at}");
            assert_eq!(k.char_len(), 41, "{text}");
            assert!(
                o.get("z").is_some(),
                "the string ends where it does: {text}"
            );
            let plain = format!(r#"{{"k":"{}","z":1}}"#, "a".repeat(at));
            let Val::Object(o) = Value::from_validated(plain.as_bytes()).val() else {
                panic!("{plain}")
            };
            let Some(Val::Str(k)) = o.get("k").map(|v| v.val()) else {
                panic!("{plain}")
            };
            assert_eq!(k.as_plain(), Some("a".repeat(at).as_str()));
        }
    }

    /// Keys that clash in every way the strict reading knows: duplicates,
    /// ASCII case variants, escaped spellings, Unicode case variants (the
    /// Kelvin sign folds to `k`, `ſ` to `s`), long keys that share their
    /// first and last eight bytes, keys around eight bytes long.
    const KEYS: &[&str] = &[
        "a",
        "A",
        "b",
        "k",
        "K",
        "\\u004b",
        "\u{212a}",
        "s",
        "\u{17f}",
        "S",
        "ab",
        "aB",
        "é",
        "É",
        "\\u00e9",
        "name",
        "NAME",
        "Name",
        "abcdefgh",
        "ABCDEFGH",
        "abcdefghi",
        "abcdefghI",
        "0123456789-middle-abcdefgh",
        "0123456789-MIDDLE-abcdefgh",
        "0123456789-other--abcdefgh",
        "x\\ny",
        "x\\nY",
        "",
        "\\\"",
        "\\u0000",
    ];

    /// A random JSON text: objects of 0 to 24 members (across the key
    /// set's and the pairwise check's capacities) with keys from [`KEYS`],
    /// arrays, strings with escapes, non-ASCII and lone surrogates, numbers,
    /// literals, random whitespace.
    fn json_text() -> impl proptest::strategy::Strategy<Value = String> {
        use proptest::prelude::*;
        let ws = prop::sample::select(vec!["", "", "", " ", "\n\t ", "\r"]);
        let leaf = prop_oneof![
            prop::sample::select(vec![
                "0",
                "-1",
                "12.5e-3",
                "1E+2",
                "true",
                "false",
                "null",
                "\"\"",
                "\"plain text\"",
                "\"a longer plain ASCII string\"",
                "\"caf\u{e9} \u{2014} \u{1f600}\"",
                "\"esc \\\" \\\\ \\/ \\b \\u00e9 \\ud83d\\ude00\"",
                "\"lone \\ud800\"",
                "\"tab\\there\"",
            ])
            .prop_map(str::to_string),
            "[a-zA-Z0-9 ]{0,20}".prop_map(|t| format!("\"{t}\"")),
        ];
        leaf.prop_recursive(5, 120, 24, move |inner| {
            let ws = ws.clone();
            prop_oneof![
                prop::collection::vec((inner.clone(), ws.clone()), 0..6).prop_map(|items| {
                    let body: Vec<String> = items
                        .into_iter()
                        .map(|(v, w)| format!("{w}{v}{w}"))
                        .collect();
                    format!("[{}]", body.join(","))
                }),
                prop::collection::vec((prop::sample::select(KEYS), inner, ws), 0..25).prop_map(
                    |members| {
                        let body: Vec<String> = members
                            .into_iter()
                            .map(|(k, v, w)| format!("{w}\"{k}\"{w}:{w}{v}{w}"))
                            .collect();
                        format!("{{{}}}", body.join(","))
                    }
                ),
            ]
        })
    }

    fn with_exact<R>(f: impl FnOnce() -> R) -> R {
        ALWAYS_EXACT.with(|c| c.set(true));
        let r = f();
        ALWAYS_EXACT.with(|c| c.set(false));
        r
    }

    proptest::proptest! {
        #![proptest_config(proptest::prelude::ProptestConfig::with_cases(2000))]

        /// The key set decides every object exactly as the check it stands
        /// in front of (every object checked exactly, as before it): the
        /// same result, the same error kind at the same offset, at every
        /// depth, for every strictness, on texts full of clashing keys.
        #[test]
        fn key_checks_match_the_exact_check(text in json_text()) {
            for s in [Strictness::STRICT, Strictness::ENVELOPE, Strictness::LENIENT] {
                let fast = validate(text.as_bytes(), s);
                let exact = with_exact(|| validate(text.as_bytes(), s));
                proptest::prop_assert_eq!(fast, exact);
                let outlined = validate_outline(text.as_bytes(), s).map(|_| ());
                proptest::prop_assert_eq!(outlined, exact);
            }
        }

        /// Acceptance agrees with serde_json on generated texts and on the
        /// same texts with one byte changed: what serde_json refuses is
        /// refused, except lone surrogates (decoded to U+FFFD, as Go does);
        /// what it accepts is accepted, except ambiguous keys under the
        /// strict reading.
        #[test]
        fn acceptance_matches_serde_json(
            text in json_text(),
            at in proptest::prelude::any::<proptest::sample::Index>(),
            byte in proptest::prelude::any::<u8>(),
            mutate in proptest::prelude::any::<bool>(),
        ) {
            let mut bytes = text.into_bytes();
            if mutate && !bytes.is_empty() {
                let i = at.index(bytes.len());
                bytes[i] = byte;
            }
            let theirs = serde_json::from_slice::<serde_json::Value>(&bytes);
            for s in [Strictness::STRICT, Strictness::LENIENT] {
                let ours = validate(&bytes, s);
                match (&ours, &theirs) {
                    (Ok(()), Err(e)) => {
                        let m = e.to_string();
                        proptest::prop_assert!(
                            m.starts_with("lone leading surrogate")
                                || m.starts_with("unexpected end of hex escape")
                                || m.starts_with("invalid unicode code point")
                                || m.starts_with("number out of range"),
                            "accepted what serde_json refuses ({e}): {:?}",
                            String::from_utf8_lossy(&bytes)
                        );
                    }
                    (Err(e), Ok(_)) => {
                        proptest::prop_assert!(
                            e.kind().is_ambiguous_key() && s == Strictness::STRICT,
                            "refused what serde_json accepts ({e}): {:?}",
                            String::from_utf8_lossy(&bytes)
                        );
                    }
                    _ => {}
                }
            }
        }
    }

    #[test]
    fn special_bytes_flag_exactly_the_first_special_byte() {
        // Every byte value at every position of a word of plain ASCII (with
        // a second special byte above it, which may or may not be flagged):
        // the lowest flagged byte is the first special one, or none is.
        let special = |c: u8| c == b'"' || c == b'\\' || !(0x20..0x80).contains(&c);
        for at in 0..8 {
            for c in 0..=255u8 {
                for above in [b'x', b'"', 0x00, 0xff] {
                    let mut word = [b'a'; 8];
                    word[at] = c;
                    if at < 7 {
                        word[7] = above;
                    }
                    let first = word.iter().position(|&c| special(c));
                    let flagged = special_bytes(u64::from_le_bytes(word));
                    let lowest = (flagged != 0).then(|| (flagged.trailing_zeros() / 8) as usize);
                    assert_eq!(lowest, first, "{word:?}");
                }
            }
        }
        // The fast path takes a plain string and refuses every other (past
        // SWAR_WORDS words the shared scanner and the ASCII check decide).
        for len in (0..24).chain(8 * SWAR_WORDS - 3..8 * SWAR_WORDS + 40) {
            for c in 0..=255u8 {
                let mut v = vec![b'y'; len];
                v.push(c);
                v.extend_from_slice(b"zzzzzzzz\"");
                let got = plain_ascii_end(&v, 0);
                let want = (c == b'"')
                    .then_some(len)
                    .or_else(|| (!special(c)).then(|| v.len() - 1));
                // Near the end of the text the fast path may give up
                // (`None`); it never gives a wrong end.
                if let Some(end) = got {
                    assert_eq!(Some(end), want, "{c:#x} after {len}");
                } else {
                    assert!(
                        want.is_none() || v.len() - want.unwrap_or(0) <= 16,
                        "{c:#x} after {len}"
                    );
                }
            }
        }
    }

    #[test]
    fn plain_scan_is_exact_at_every_length_and_word_position() {
        // The bytewise definition the word-at-a-time scan must agree with.
        let reference = |b: &[u8]| {
            let i = b
                .iter()
                .position(|&c| c == b'"' || c == b'\\' || c < 0x20)
                .unwrap_or(b.len());
            (i, b[..i].is_ascii())
        };
        for len in 0..20 {
            for at in 0..=len {
                for special in [b'"', b'\\', 0x01, 0x80, 0xc3, 0xff] {
                    let mut v = vec![b'x'; len];
                    if at < len {
                        v[at] = special;
                    }
                    assert_eq!(
                        scan_plain(&v),
                        reference(&v),
                        "{special:#x} at {at} of {len}"
                    );
                }
            }
        }
    }

    #[test]
    fn every_clashing_pair_of_a_small_object_is_found() {
        let names = [
            "id",
            "name",
            "email",
            "applicationId",
            "tenantId",
            "x",
            "roles",
            "data",
        ];
        for n in 2..=names.len() {
            for i in 0..n {
                for j in i + 1..n {
                    for (variant, reason) in [
                        (names[i].to_string(), JsonErrorKind::DuplicateKey),
                        (names[i].to_uppercase(), JsonErrorKind::CaseVariantKeys),
                    ] {
                        let keys: Vec<String> = (0..n)
                            .map(|k| {
                                if k == j {
                                    variant.clone()
                                } else {
                                    names[k].to_string()
                                }
                            })
                            .collect();
                        let body: Vec<String> = keys.iter().map(|k| format!("\"{k}\":1")).collect();
                        let text = format!("{{{}}}", body.join(","));
                        if names[i].to_uppercase() == names[i]
                            && reason != JsonErrorKind::DuplicateKey
                        {
                            continue;
                        }
                        let e = validate(text.as_bytes(), Strictness::STRICT).unwrap_err();
                        assert_eq!(e.kind(), reason, "{text}");
                    }
                }
            }
            let body: Vec<String> = names[..n].iter().map(|k| format!("\"{k}\":1")).collect();
            let text = format!("{{{}}}", body.join(","));
            assert!(
                validate(text.as_bytes(), Strictness::STRICT).is_ok(),
                "{text}"
            );
        }
    }

    #[test]
    fn skipping_a_value_ends_exactly_where_it_ends() {
        // Strings, escapes and brackets at every offset within a word.
        for pad in 0..10 {
            let p = "x".repeat(pad);
            for text in [
                format!(r#"{{"{p}":[1,{{"a{p}":"b\"}}{p}]"}},2],"z":"\\"}}"#),
                format!(r#"[[],{{}},"{p}]",[{{"{p}":{{}}}}],"}}",{p:?},true]"#),
                format!(r#""{p}\"{p}\\""#),
                format!(r#"{{"{p}é":"ü{p}[","k":[1.5e3,null]}}"#),
            ] {
                validate(text.as_bytes(), Strictness::LENIENT)
                    .unwrap_or_else(|e| panic!("{text}: {e}"));
                let wrapped = format!("{text} ,1]");
                assert_eq!(skip_value(wrapped.as_bytes(), 0), text.len(), "{text}");
            }
        }
    }

    #[test]
    fn key_hashes_agree_between_fast_and_general_paths() {
        for k in ["name", "Name", "NAME", "a_b-c", ""] {
            let plain = JStr::plain(k);
            assert_eq!(
                key_hashes(&plain),
                (plain.fold_hash(), plain.exact_hash()),
                "{k}"
            );
        }
        // A non-ASCII key folding onto an ASCII one lands in the same bucket.
        assert_eq!(
            key_hashes(&JStr::plain("\u{17f}")).0,
            key_hashes(&JStr::plain("S")).0
        );
        assert_eq!(
            key_hashes(&JStr::plain("\u{212a}")).0,
            key_hashes(&JStr::plain("k")).0
        );
    }

    #[test]
    fn outlines_find_the_two_outer_levels() {
        let text = br#" {"id": 1, "params": {"name": "t", "arguments": {"a": {"deep": 1}}}, "x": [ {"no": 1} ] } "#;
        let o = validate_outline(text, Strictness::STRICT).unwrap();
        assert!(o.is_complete());
        let keys: Vec<String> = o
            .top()
            .iter()
            .map(|m| m.key(text).chars().collect())
            .collect();
        assert_eq!(keys, ["id", "params", "x"]);
        let params: Vec<(String, &[u8])> = o
            .children(1)
            .map(|m| (m.key(text).chars().collect(), m.value(text).as_bytes()))
            .collect();
        assert_eq!(
            params,
            [
                ("name".to_string(), &br#""t""#[..]),
                ("arguments".to_string(), &br#"{"a": {"deep": 1}}"#[..])
            ]
        );
        assert_eq!(
            o.children(2).count(),
            0,
            "objects inside arrays are not outlined"
        );
        let many = format!(
            "{{{}}}",
            (0..20)
                .map(|i| format!("\"k{i}\":{i}"))
                .collect::<Vec<_>>()
                .join(",")
        );
        assert!(
            !validate_outline(many.as_bytes(), Strictness::STRICT)
                .unwrap()
                .is_complete()
        );
    }

    /// The index gives exactly the members a walk gives, and only for the
    /// object it was made from.
    #[test]
    fn indexed_members_are_the_walked_members() {
        let many: String = format!(
            "{{{}}}",
            (0..MEMBER_INDEX_CAPACITY + 1)
                .map(|i| format!("\"k{i}\":{i}"))
                .collect::<Vec<_>>()
                .join(",")
        );
        // Around the 16-bit limits: an object of 64 KiB and more, a 16 KiB key.
        let big = |n: usize| format!("{{\"a\":1,\"s\":\"{}\",\"z\":2}}", "x".repeat(n));
        let (small, large) = (big(65_000), big(65_535));
        let long_key = format!("{{\"{}\":1,\"b\":2}}", "k".repeat(16_384));
        let texts: Vec<&[u8]> = vec![
            small.as_bytes(),
            large.as_bytes(),
            long_key.as_bytes(),
            b"{}",
            b"  { }  ",
            br#"{"a":1}"#,
            br#" { "a" : [1, {"b": 2}] , "c\u0041" :"x\"y", "d":{"e":{}} , "f": null } "#,
            br#"{"a":1,"a":2}"#,
            many.as_bytes(),
        ];
        for text in texts {
            let index = validate_indexed(text, Strictness::LENIENT).unwrap();
            let at = text.len() - text.trim_ascii_start().len();
            let Val::Object(o) = Value::from_validated(text).val() else {
                panic!("an object")
            };
            let walked: Vec<_> = o.members().map(|(k, v)| (k.raw_bytes(), v)).collect();
            let indexed: Vec<_> = index
                .members(o, at)
                .map(|(k, v)| (k.raw_bytes(), v))
                .collect();
            assert_eq!(indexed, walked, "{}", String::from_utf8_lossy(text));
            let fits = walked.len() <= MEMBER_INDEX_CAPACITY
                && o.as_bytes().len() <= usize::from(u16::MAX)
                && walked.iter().all(|(k, _)| k.len() < 16_384);
            assert_eq!(index.describes((at, at + o.as_bytes().len())), fits);
            // Escaped keys keep their escapes.
            for ((k, _), (w, _)) in index.members(o, at).zip(o.members()) {
                assert!(k.eq_jstr(&w));
            }
            // Elsewhere in the text the index does not apply.
            assert!(!index.describes((at + 1, at + o.as_bytes().len())));
        }
        // Not an object: nothing indexed.
        assert!(
            !validate_indexed(b"[1]", Strictness::STRICT)
                .unwrap()
                .describes((0, 3))
        );
    }

    /// An outline indexes `params.arguments` only when both keys are spelled
    /// plainly and the arguments are an object.
    #[test]
    fn outlines_index_the_arguments_of_a_call() {
        let cases: [(&[u8], bool); 5] = [
            (
                br#"{"id":1,"params":{"name":"t","arguments":{"a":1,"b":[2]}}}"#,
                true,
            ),
            (br#"{"params":{"arguments":[{"a":1}]},"id":1}"#, false),
            (br#"{"params":{"\u0061rguments":{"a":1}}}"#, false),
            (br#"{"params":[{"arguments":{"a":1}}]}"#, false),
            (br#"{"x":{"params":{"arguments":{"a":1}}}}"#, false),
        ];
        for (text, indexed) in cases {
            let outline = validate_outline(text, Strictness::STRICT).unwrap();
            let start = text.windows(6).position(|w| w == br#"{"a":1"#).unwrap_or(0);
            let Val::Object(o) = Value::from_validated(&text[start..]).val() else {
                assert!(!indexed);
                continue;
            };
            let span = (start, start + o.as_bytes().len());
            assert_eq!(outline.arguments().describes(span), indexed);
            if indexed {
                let keys: Vec<_> = outline
                    .arguments()
                    .members(o, start)
                    .map(|(k, _)| k.raw_bytes())
                    .collect();
                assert_eq!(keys, [&b"a"[..], b"b"]);
            }
        }
    }

    /// Keys read from an index (known ASCII) and walked keys fold alike, into
    /// every buffer size; long non-ASCII keys are only given up when they
    /// cannot fit.
    #[test]
    fn indexed_keys_fold_like_walked_keys() {
        let text = "{\"Amount\":1,\"a\\u0042\":2,\"\u{212a}\u{212a}\u{212a}\u{212a}\":3,\"ID\":4}";
        let index = validate_indexed(text.as_bytes(), Strictness::STRICT).unwrap();
        let Val::Object(o) = Value::from_validated(text.as_bytes()).val() else {
            panic!("an object")
        };
        for size in 0..10 {
            for ((k, _), (w, _)) in index.members(o, 0).zip(o.members()) {
                let (mut a, mut b) = (vec![0u8; size], vec![0u8; size]);
                let (fa, fw) = (k.fold_into(&mut a), w.fold_into(&mut b));
                assert_eq!(fa, fw, "{k:?} into {size} bytes");
                let folded = w.folded();
                assert_eq!(fw, (folded.len() <= size).then_some(folded.as_bytes()));
            }
        }
    }

    #[test]
    fn many_keys_are_checked_for_duplicates() {
        let mut s = String::from("{");
        for i in 0..500 {
            s.push_str(&format!("\"k{i}\":{i},"));
        }
        s.push_str("\"K77\":1}");
        let e = validate(s.as_bytes(), Strictness::STRICT).unwrap_err();
        assert_eq!(e.kind(), JsonErrorKind::CaseVariantKeys);
        let ok = s.replace("\"K77\"", "\"k500\"");
        assert!(validate(ok.as_bytes(), Strictness::STRICT).is_ok());
    }

    #[test]
    fn views_walk_validated_text() {
        let text = br#"{"a": {"b": [1, "two", {"c": null}]}, "s": "x\"y", "a": 5}"#;
        validate(text, Strictness::LENIENT).unwrap();
        let Val::Object(o) = Value::from_validated(text).val() else {
            panic!()
        };
        assert_eq!(o.len(), 3);
        let Val::Num(five) = o.get("a").unwrap().val() else {
            panic!("last duplicate wins")
        };
        assert_eq!(five.to_u64_exact(), Some(5));
        let Val::Str(s) = o.get("s").unwrap().val() else {
            panic!()
        };
        assert!(s.eq_str("x\"y"));
        let first_a = o.members().next().unwrap().1;
        let Val::Object(inner) = first_a.val() else {
            panic!()
        };
        let Val::Array(arr) = inner.get("b").unwrap().val() else {
            panic!()
        };
        assert_eq!(arr.len(), 3);
        let third = arr.iter().nth(2).unwrap();
        assert_eq!(third.as_bytes(), br#"{"c": null}"#);
    }

    #[test]
    fn string_escapes_decode() {
        let s = JStr::from_body(br#"a\u005fb\n\ud83d\ude00\ud800x"#);
        assert_eq!(s.chars().collect::<String>(), "a_b\n😀\u{fffd}x");
        assert!(JStr::from_body(br#"delete\u005frepo"#).eq_str("delete_repo"));
        s.with_str(|d| assert_eq!(d, "a_b\n😀\u{fffd}x"));
    }

    #[test]
    fn lone_surrogates_are_told_from_pairs() {
        for lone in [
            r#"\ud800"#,
            r#"\udc00"#,
            r#"\uDBFF"#,
            r#"a\ud800b"#,
            r#"\ud800\ud800\udc00"#,
            r#"\ud83d\ude00\udc00"#,
            r#"\ud800\n"#,
            r#"\\\ud800"#,
        ] {
            assert!(
                JStr::from_body(lone.as_bytes()).has_lone_surrogate(),
                "{lone}"
            );
        }
        for fine in [
            r#"\ud83d\ude00"#,
            r#"\ufffd"#,
            "\u{fffd}",
            r#"\\ud800"#,
            r#"\u0041\n\"\\"#,
            "plain",
        ] {
            assert!(
                !JStr::from_body(fine.as_bytes()).has_lone_surrogate(),
                "{fine}"
            );
        }
        // A decoded string has no escapes at all.
        assert!(!JStr::plain(r#"\ud800"#).has_lone_surrogate());
    }

    #[test]
    fn clamped_exponents_are_told() {
        assert!(!n("1e1099511627775").exponent_clamped());
        assert!(n("1e1099511627776").exponent_clamped());
        assert!(n("1e1099511627777").exponent_clamped());
        assert!(n("-5E-99999999999999999999").exponent_clamped());
        assert!(!n("1e-1099511627775").exponent_clamped());
        assert!(!n("123.5e3").exponent_clamped());
        assert_eq!(n("123.5e-3").written_exponent(), -3);
        assert_eq!(n("1e99999999999999").written_exponent(), 1 << 40);
    }

    #[test]
    fn counters_format_as_numbers() {
        let mut buf = [0u8; 20];
        assert_eq!(num_from_u64(0, &mut buf).cmp_num(&n("0")), Ordering::Equal);
        let mut buf = [0u8; 20];
        assert_eq!(
            num_from_u64(u64::MAX, &mut buf).cmp_num(&n("18446744073709551615")),
            Ordering::Equal
        );
    }

    /// Found by the `json` fuzz target: decoded text given to `JStr::plain`
    /// had its backslashes read as escapes again.
    #[test]
    fn plain_text_backslashes_are_characters() {
        let plain = JStr::plain(r"a\nb\u0041\");
        assert_eq!(plain.chars().collect::<String>(), r"a\nb\u0041\");
        assert_eq!(plain.char_len(), 11);
        let json = br#""a\\nb\\u0041\\""#;
        validate(json, Strictness::STRICT).unwrap();
        let Val::Str(s) = Value::from_validated(json).val() else {
            panic!("a string")
        };
        assert!(s.eq_jstr(&plain) && plain.eq_jstr(&s));
        assert!(s.eq_folded(&plain) && plain.eq_folded(&s));
        assert_eq!(plain.fold_hash(), s.fold_hash());
    }

    fn key(json: &'static [u8]) -> JStr<'static> {
        validate(json, Strictness::LENIENT).unwrap();
        let Val::Str(s) = Value::from_validated(json).val() else {
            panic!("a string")
        };
        s
    }

    /// Policy paths match keys as a Go server reads them: any letter case,
    /// `ſ` for `s`, the Kelvin sign for `k`, escapes decoded first.
    #[test]
    fn fold_into_matches_eq_folded() {
        let mut buf = [0u8; 8];
        for json in [
            &br#""AMOUNT""#[..],
            br#""Amount""#,
            br#""amount""#,
            br#""\u0041\u004d\u004f\u0055\u004e\u0054""#,
            br#""\u0041MOUNT""#,
            br#""\u0061mount""#,
        ] {
            assert_eq!(key(json).fold_into(&mut buf), Some(&b"amount"[..]));
        }
        assert_eq!(
            key("\"taſ\u{212a}\"".as_bytes()).fold_into(&mut buf),
            Some(&b"task"[..])
        );
        assert_eq!(
            key(br#""ta\u017f\u212A""#).fold_into(&mut buf),
            Some(&b"task"[..])
        );
        // Too long to match anything the buffer was sized for: given up, not truncated.
        assert_eq!(key(br#""amountAmount""#).fold_into(&mut buf), None);
        assert_eq!(key("\"amountſſſ\"".as_bytes()).fold_into(&mut buf), None);
        assert_eq!(key(br#""""#).fold_into(&mut buf), Some(&b""[..]));
        // Agrees with eq_folded and folded() on non-ASCII text.
        for (a, b) in [("STRAẞE", "straße"), ("ǅ", "ǆ"), ("Σ", "ς")] {
            let (a, b) = (JStr::plain(a), JStr::plain(b));
            let mut x = [0u8; 32];
            let mut y = [0u8; 32];
            assert_eq!(a.eq_folded(&b), a.fold_into(&mut x) == b.fold_into(&mut y));
            assert_eq!(a.fold_into(&mut x).unwrap(), a.folded().as_bytes());
        }
    }

    #[test]
    fn get_folded_reads_any_case_last_wins() {
        let json = br#"{"AMOUNT": 1, "other": 2, "\u0061mount": 3, "x": {"ID": 4}}"#;
        validate(json, Strictness::LENIENT).unwrap();
        let Val::Object(o) = Value::from_validated(json).val() else {
            panic!("an object")
        };
        assert_eq!(o.get_folded("amount").unwrap().as_bytes(), b"3");
        assert_eq!(o.get_folded("Amount").unwrap().as_bytes(), b"3");
        assert!(o.get("amount").is_some() && o.get("AMOUNT").is_some());
        assert!(o.get_folded("amoun").is_none());
        let Val::Object(x) = o.get_folded("X").unwrap().val() else {
            panic!("an object")
        };
        assert_eq!(x.get_folded("id").unwrap().as_bytes(), b"4");
    }
}
