//! Request ids as the proxy keeps them: compared by JSON value, and held
//! without a heap allocation when they are of the common form (small
//! numbers, short strings). A forwarded call used to allocate twice for its
//! id (the key and the raw text kept for the answer); ids of up to
//! [`INLINE`] bytes now allocate nothing.

use std::borrow::Borrow;
use std::fmt;
use std::hash::{Hash, Hasher};
use std::ops::Deref;

use portcullis_core::json::{Val, Value};
use portcullis_core::jsonrpc::RejectKind;

/// A request id written with an exponent this large or larger in magnitude
/// (2^39) is refused: exponents are clamped at 2^40 while parsing, so
/// numbers past the clamp are not compared exactly; under 2^39 (and with
/// fewer than 2^38 digits, far more than any message holds) a request id's
/// value is always exact and never equal to a clamped number.
pub const MAX_REQUEST_EXPONENT: i64 = 1 << 39;

/// Bytes kept inline up to this length, on the heap beyond it.
pub const INLINE: usize = 30;

/// A short byte string: inline up to [`INLINE`] bytes, boxed beyond.
#[derive(Clone)]
pub struct SmallBytes(Repr);

#[derive(Clone)]
enum Repr {
    Inline(u8, [u8; INLINE]),
    Heap(Box<[u8]>),
}

impl SmallBytes {
    /// An empty string.
    pub const fn new() -> SmallBytes {
        SmallBytes(Repr::Inline(0, [0; INLINE]))
    }

    /// Appends bytes, moving to the heap only when they no longer fit inline.
    pub fn extend_from_slice(&mut self, more: &[u8]) {
        match &mut self.0 {
            Repr::Inline(len, buf) if usize::from(*len) + more.len() <= INLINE => {
                let at = usize::from(*len);
                buf[at..at + more.len()].copy_from_slice(more);
                *len += more.len() as u8; // at most INLINE
            }
            Repr::Inline(len, buf) => {
                let mut v = Vec::with_capacity(usize::from(*len) + more.len());
                v.extend_from_slice(&buf[..usize::from(*len)]);
                v.extend_from_slice(more);
                self.0 = Repr::Heap(v.into_boxed_slice());
            }
            Repr::Heap(b) => {
                let mut v = std::mem::take(b).into_vec();
                v.extend_from_slice(more);
                *b = v.into_boxed_slice();
            }
        }
    }

    /// Appends one byte.
    pub fn push(&mut self, b: u8) {
        match &mut self.0 {
            Repr::Inline(len, buf) if usize::from(*len) < INLINE => {
                buf[usize::from(*len)] = b;
                *len += 1;
            }
            _ => self.extend_from_slice(&[b]),
        }
    }

    /// True when the bytes are held inline (no allocation).
    pub fn is_inline(&self) -> bool {
        matches!(self.0, Repr::Inline(..))
    }
}

impl Default for SmallBytes {
    fn default() -> SmallBytes {
        SmallBytes::new()
    }
}

impl From<&[u8]> for SmallBytes {
    fn from(b: &[u8]) -> SmallBytes {
        let mut s = SmallBytes::new();
        s.extend_from_slice(b);
        s
    }
}

impl Deref for SmallBytes {
    type Target = [u8];
    fn deref(&self) -> &[u8] {
        match &self.0 {
            Repr::Inline(len, buf) => &buf[..usize::from(*len)],
            Repr::Heap(b) => b,
        }
    }
}

impl AsRef<[u8]> for SmallBytes {
    fn as_ref(&self) -> &[u8] {
        self
    }
}

impl Borrow<[u8]> for SmallBytes {
    fn borrow(&self) -> &[u8] {
        self
    }
}

impl PartialEq for SmallBytes {
    fn eq(&self, other: &SmallBytes) -> bool {
        **self == **other
    }
}

impl Eq for SmallBytes {}

impl Hash for SmallBytes {
    fn hash<H: Hasher>(&self, state: &mut H) {
        (**self).hash(state);
    }
}

impl fmt::Debug for SmallBytes {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{:?}", String::from_utf8_lossy(self))
    }
}

/// Decoded text: a [`SmallBytes`] that is always UTF-8.
#[derive(Clone, PartialEq, Eq, Hash, Default)]
pub struct SmallStr(SmallBytes);

impl SmallStr {
    /// Appends text.
    pub fn push_str(&mut self, s: &str) {
        self.0.extend_from_slice(s.as_bytes());
    }

    /// True when the text is held inline (no allocation).
    pub fn is_inline(&self) -> bool {
        self.0.is_inline()
    }
}

impl From<&str> for SmallStr {
    fn from(s: &str) -> SmallStr {
        let mut t = SmallStr::default();
        t.push_str(s);
        t
    }
}

impl From<SmallStr> for String {
    fn from(s: SmallStr) -> String {
        s.to_string()
    }
}

impl Deref for SmallStr {
    type Target = str;
    fn deref(&self) -> &str {
        // Only ever built from `&str` (push_str, From<&str>).
        std::str::from_utf8(&self.0).unwrap_or_default()
    }
}

impl fmt::Debug for SmallStr {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        fmt::Debug::fmt(&**self, f)
    }
}

impl fmt::Display for SmallStr {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self)
    }
}

/// A request id compared by JSON value: `1`, `1.0` and `1e0` are one id;
/// `"1"` is another.
///
/// Two kinds of id have no exact key and are refused in requests
/// ([`IdKey::of_request`]): a number written with an exponent of 2^39 or
/// more in magnitude ([`MAX_REQUEST_EXPONENT`]; exponents are clamped at
/// 2^40 while parsing, so `1e1099511627776` and `1e1099511627777` would be
/// one id), and a string
/// holding a lone UTF-16 surrogate escape (it decodes to U+FFFD, so
/// `"\ud800"`, `"\udc00"` and `"\ufffd"` would be one id). Two requests in
/// flight therefore never share a key. Answers are keyed by
/// [`IdKey::of`], which reads such ids as a reader decoding lone surrogates
/// to U+FFFD (Go) does: an answer to `"\ud800"` is taken for the answer to
/// the request `"\ufffd"`, as such a client would take it, and filtered as
/// that answer.
#[derive(Debug, Clone, PartialEq, Eq, Hash)]
pub enum IdKey {
    /// A number, as its canonical bytes (one spelling per value:
    /// `portcullis_core::json::Num::canonical`).
    Num(SmallBytes),
    /// A string, decoded.
    Str(SmallStr),
}

impl IdKey {
    /// The key of a new request's id, or why the request is refused
    /// (-32600): not a string or a number, a number written with an
    /// exponent of 2^39 or more in magnitude, a string with a lone
    /// surrogate escape.
    pub fn of_request(v: Value<'_>) -> Result<IdKey, RejectKind> {
        if let Some(key) = IdKey::plain_integer(v.as_bytes()) {
            return Ok(key);
        }
        match v.val() {
            Val::Num(n) if n.written_exponent().abs() >= MAX_REQUEST_EXPONENT => {
                Err(RejectKind::IdExponentTooLarge)
            }
            Val::Str(s) if s.has_lone_surrogate() => Err(RejectKind::IdLoneSurrogate),
            val => IdKey::of_val(val).ok_or(RejectKind::BadId),
        }
    }

    /// The key of an id as an answer (or a cancellation) names it; None
    /// unless it is a string or a number, or a number past the exponent
    /// clamp. Lone surrogates read as U+FFFD (as Go reads them).
    pub fn of(v: Value<'_>) -> Option<IdKey> {
        IdKey::plain_integer(v.as_bytes()).or_else(|| IdKey::of_val(v.val()))
    }

    /// The key of an id written as a plain non-negative integer (`17`, the
    /// commonest id), built from its digits without parsing it as a number:
    /// the bytes [`Num::canonical`](portcullis_core::json::Num::canonical)
    /// gives (`0`; or the digits without trailing zeros, `e`, and the
    /// exponent `E` of value = 0.digits x 10^E, here the number of digits,
    /// as eight little-endian bytes), so `170`, `170.0` and `1.7e2` are
    /// still one id. None for any other spelling.
    fn plain_integer(raw: &[u8]) -> Option<IdKey> {
        if raw.is_empty() || raw.len() > 19 || !raw.iter().all(u8::is_ascii_digit) {
            return None;
        }
        if raw[0] == b'0' {
            // JSON allows no leading zero: this is the number 0.
            return (raw.len() == 1).then(|| IdKey::Num(SmallBytes::from(&b"0"[..])));
        }
        let significant = raw.iter().rposition(|&d| d != b'0').map_or(0, |i| i + 1);
        let mut key = SmallBytes::from(&raw[..significant]);
        key.push(b'e');
        key.extend_from_slice(&(raw.len() as i64).to_le_bytes());
        Some(IdKey::Num(key))
    }

    /// [`IdKey::of`] of a value already read (a number is parsed once).
    fn of_val(v: Val<'_>) -> Option<IdKey> {
        match v {
            // Past the clamp the value is not known exactly, and it cannot
            // equal a request's id (those have exponents under 2^39, and
            // fewer digits than 2^38): it names no request.
            Val::Num(n) if n.exponent_clamped() => None,
            Val::Num(n) => {
                let mut key = SmallBytes::new();
                n.canonical(|b| key.push(b));
                Some(IdKey::Num(key))
            }
            Val::Str(s) => Some(IdKey::Str(match s.as_plain() {
                Some(plain) => SmallStr::from(plain),
                None => {
                    let mut key = SmallStr::default();
                    let mut utf8 = [0u8; 4];
                    for c in s.chars() {
                        key.push_str(c.encode_utf8(&mut utf8));
                    }
                    key
                }
            })),
            _ => None,
        }
    }

    /// True when the key is held inline (no allocation).
    pub fn is_inline(&self) -> bool {
        match self {
            IdKey::Num(b) => b.is_inline(),
            IdKey::Str(s) => s.is_inline(),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use portcullis_core::json::Value;

    fn key(raw: &str) -> IdKey {
        IdKey::of(Value::from_validated(raw.as_bytes())).expect("a number or a string")
    }

    #[test]
    fn ids_compare_by_json_value() {
        assert_eq!(key("1"), key("1.0"));
        assert_eq!(key("1"), key("1e0"));
        assert_eq!(key("100"), key("1e2"));
        assert_eq!(key("0"), key("-0"));
        assert_ne!(key("1"), key("\"1\""));
        assert_ne!(key("1"), key("-1"));
        assert_ne!(key("10"), key("1"));
        assert_ne!(key("12"), key("21"));
        assert_eq!(key("\"a\\u0062\""), key("\"ab\""));
        assert_eq!(key("\"\\u00e9\""), key("\"é\""));
        assert!(IdKey::of(Value::from_validated(b"null")).is_none());
        assert!(IdKey::of(Value::from_validated(b"true")).is_none());
    }

    #[test]
    fn plain_integers_key_as_their_parsed_numbers_do() {
        let mut ids: Vec<String> = (0..2000u64).map(|i| i.to_string()).collect();
        for d in 1..=19 {
            for lead in ["1", "9", "10", "12", "90"] {
                let mut n = lead.to_string();
                while n.len() < d {
                    n.push(if n.len() % 3 == 0 { '0' } else { '7' });
                }
                ids.push(n.clone());
                ids.push(format!(
                    "{}{}",
                    lead,
                    "0".repeat(d.saturating_sub(lead.len()))
                ));
            }
        }
        ids.push(u64::MAX.to_string());
        for id in &ids {
            let v = Value::from_validated(id.as_bytes());
            let parsed = IdKey::of_val(v.val()).expect("a number");
            assert_eq!(IdKey::of(v), Some(parsed.clone()), "{id}");
            assert_eq!(IdKey::of_request(v), Ok(parsed), "{id}");
        }
        // Other spellings still meet the plain one.
        assert_eq!(key("170"), key("170.0"));
        assert_eq!(key("170"), key("1.7e2"));
        assert!(IdKey::plain_integer(b"-1").is_none());
        assert!(IdKey::plain_integer(b"1.5").is_none());
        assert!(IdKey::plain_integer(b"").is_none());
    }

    fn request_key(raw: &str) -> Result<IdKey, RejectKind> {
        IdKey::of_request(Value::from_validated(raw.as_bytes()))
    }

    /// Two different request ids never share a key: each is keyed exactly
    /// or refused.
    fn assert_distinct_or_refused(a: &str, b: &str, refusal: RejectKind) {
        match (request_key(a), request_key(b)) {
            (Ok(ka), Ok(kb)) => assert_ne!(ka, kb, "{a} {b}"),
            (ka, kb) => {
                for (raw, k) in [(a, ka), (b, kb)] {
                    if let Err(e) = k {
                        assert_eq!(e, refusal, "{raw}");
                    }
                }
            }
        }
    }

    /// review5: different JSON ids must not share a key. Exponents are
    /// clamped at 2^40 when parsed (both would become 1e(2^40)): request
    /// ids with exponents of 2^39 or more are refused.
    #[test]
    fn review5_huge_exponents_are_different_ids() {
        assert_distinct_or_refused(
            "1e1099511627776",
            "1e1099511627777",
            RejectKind::IdExponentTooLarge,
        );
        for huge in [
            "1e1099511627776",
            "1E+1099511627777",
            "-2.5e-99999999999999999999",
        ] {
            assert_eq!(request_key(huge), Err(RejectKind::IdExponentTooLarge));
        }
        assert_eq!(
            request_key("1e549755813888"),
            Err(RejectKind::IdExponentTooLarge)
        );
        // Under the bound: keyed, and exactly.
        assert_ne!(request_key("1e549755813887"), request_key("1e549755813886"));
        assert_eq!(
            request_key("10e549755813886"),
            request_key("1e549755813887")
        );
        assert!(request_key("-1e-549755813887").is_ok());
        // An answer past the clamp names no request.
        assert!(IdKey::of(Value::from_validated(b"1e1099511627777")).is_none());
        assert!(IdKey::of(Value::from_validated(b"1e1099511627775")).is_some());
        assert_eq!(request_key("7").unwrap(), key("7"));
        assert_eq!(request_key("null"), Err(RejectKind::BadId));
    }

    /// review5: lone surrogates all decode to U+FFFD, so three different
    /// strings (and a real U+FFFD) would be one id: such request ids are
    /// refused; a real U+FFFD (written or escaped) and a pair are keyed.
    #[test]
    fn review5_lone_surrogates_are_different_ids() {
        assert_distinct_or_refused("\"\\ud800\"", "\"\\udc00\"", RejectKind::IdLoneSurrogate);
        assert_distinct_or_refused("\"\\ud800\"", "\"\u{fffd}\"", RejectKind::IdLoneSurrogate);
        for lone in ["\"\\ud800\"", "\"\\udc00\"", "\"a\\uD800\\u0041\""] {
            assert_eq!(
                request_key(lone),
                Err(RejectKind::IdLoneSurrogate),
                "{lone}"
            );
        }
        assert_eq!(request_key("\"\u{fffd}\""), request_key("\"\\ufffd\""));
        assert!(request_key("\"\u{fffd}\"").is_ok());
        assert_eq!(
            request_key("\"\\ud83d\\ude00\"").unwrap(),
            key("\"\u{1f600}\"")
        );
        // An answer's id is read as a U+FFFD-decoding client reads it.
        assert_eq!(key("\"\\ud800\""), key("\"\u{fffd}\""));
    }

    #[test]
    fn common_ids_are_inline_and_long_ones_intact() {
        for raw in [
            "0",
            "7",
            "123456789",
            "-42",
            "18446744073709551615",
            "\"req-1\"",
        ] {
            assert!(key(raw).is_inline(), "{raw}");
        }
        let long = format!("\"{}\"", "x".repeat(100));
        let k = key(&long);
        assert!(!k.is_inline());
        assert_eq!(k, IdKey::Str(SmallStr::from("x".repeat(100).as_str())));
        assert_ne!(k, key(&format!("\"{}\"", "x".repeat(99))));
        // A number with many digits: on the heap, still compared by value.
        let digits = "9".repeat(60);
        assert!(!key(&digits).is_inline());
        assert_eq!(key(&digits), key(&format!("{digits}.000")));
    }

    #[test]
    fn small_bytes_grow_past_inline() {
        let mut b = SmallBytes::new();
        for i in 0..40u8 {
            b.push(i);
            assert_eq!(b.len(), usize::from(i) + 1);
            assert_eq!(b.is_inline(), usize::from(i) < INLINE);
        }
        assert_eq!(&*b, &(0..40).collect::<Vec<u8>>()[..]);
        assert_eq!(SmallBytes::from(&b"abc"[..]), SmallBytes::from(&b"abc"[..]));
    }
}
