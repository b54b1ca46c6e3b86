//! The semantic primitives of every policy operator.
//!
//! Generated code and the reference evaluator call these same functions, so
//! they cannot disagree on a detail. Operands are `Option<Val>`: `None` means
//! the argument path does not resolve. Every test on a missing operand is
//! false except [`exists`]; that includes [`ne`] and [`not_one_of`], as in
//! Intercept.
//!
//! Value semantics (Portcullis's, documented in `docs/policy-yaml.md`):
//! - equality is typed: null = null, bool = bool, string = string (exact, after
//!   JSON escapes are decoded), number = number (exact decimal value, so
//!   `1e6` = `1000000`);
//! - the one coercion: a string whose whole text is a JSON number equals that
//!   number (`"5"` = `5`, `"1000000"` = `1e6`), whichever side is the
//!   argument; nothing else is stringified (no `true` = `"true"`, no
//!   `null` = `"<nil>"`);
//! - arrays and objects are never equal to anything;
//! - ordering compares numbers with numbers and strings with strings
//!   (by code point); any other pair is false.

use std::cmp::Ordering;

use sha2::{Digest, Sha256};

use crate::json::{JStr, Num, Val};

/// Exact, typed equality of two present values (see the module docs).
pub fn equal(a: Val<'_>, b: Val<'_>) -> bool {
    match (a, b) {
        (Val::Null, Val::Null) => true,
        (Val::Bool(x), Val::Bool(y)) => x == y,
        (Val::Num(x), Val::Num(y)) => x.cmp_num(&y) == Ordering::Equal,
        (Val::Str(x), Val::Str(y)) => x.eq_jstr(&y),
        (Val::Num(n), Val::Str(s)) | (Val::Str(s), Val::Num(n)) => numeric_string_eq(s, n),
        _ => false,
    }
}

fn numeric_string_eq(s: JStr<'_>, n: Num<'_>) -> bool {
    s.with_str(|text| Num::parse(text.as_bytes()).is_some_and(|m| m.cmp_num(&n) == Ordering::Equal))
}

/// `eq`: present and equal.
pub fn eq(a: Option<Val<'_>>, b: Val<'_>) -> bool {
    a.is_some_and(|a| equal(a, b))
}

/// `neq`: present and not equal (a missing value fails, as in Intercept).
pub fn ne(a: Option<Val<'_>>, b: Val<'_>) -> bool {
    a.is_some_and(|a| !equal(a, b))
}

/// `in`: present and equal to some element.
pub fn one_of(a: Option<Val<'_>>, list: &[Val<'_>]) -> bool {
    a.is_some_and(|a| list.iter().any(|&b| equal(a, b)))
}

/// `not_in`: present and equal to no element (a missing value fails).
pub fn not_one_of(a: Option<Val<'_>>, list: &[Val<'_>]) -> bool {
    a.is_some_and(|a| !list.iter().any(|&b| equal(a, b)))
}

/// Ordering of two values of the same comparable type: number with number,
/// string with string. Anything else has no order.
pub fn order(a: Option<Val<'_>>, b: Option<Val<'_>>) -> Option<Ordering> {
    match (a?, b?) {
        (Val::Num(x), Val::Num(y)) => Some(x.cmp_num(&y)),
        (Val::Str(x), Val::Str(y)) => Some(x.chars().cmp(y.chars())),
        _ => None,
    }
}

/// `lt`
pub fn lt(a: Option<Val<'_>>, b: Option<Val<'_>>) -> bool {
    order(a, b) == Some(Ordering::Less)
}

/// `lte`
pub fn le(a: Option<Val<'_>>, b: Option<Val<'_>>) -> bool {
    matches!(order(a, b), Some(Ordering::Less | Ordering::Equal))
}

/// `gt`
pub fn gt(a: Option<Val<'_>>, b: Option<Val<'_>>) -> bool {
    order(a, b) == Some(Ordering::Greater)
}

/// `gte`
pub fn ge(a: Option<Val<'_>>, b: Option<Val<'_>>) -> bool {
    matches!(order(a, b), Some(Ordering::Greater | Ordering::Equal))
}

/// Equality of two operands that may both come from the call (`args.a == args.b`).
pub fn eq2(a: Option<Val<'_>>, b: Option<Val<'_>>) -> bool {
    matches!((a, b), (Some(a), Some(b)) if equal(a, b))
}

/// Inequality of two operands that may both come from the call; false if either is missing.
pub fn ne2(a: Option<Val<'_>>, b: Option<Val<'_>>) -> bool {
    matches!((a, b), (Some(a), Some(b)) if !equal(a, b))
}

/// `contains`: substring of a string (case-sensitive; `""` is in every string),
/// or an array element equal to `b`. Anything else fails.
pub fn contains(a: Option<Val<'_>>, b: Option<Val<'_>>) -> bool {
    match (a, b) {
        (Some(Val::Str(hay)), Some(Val::Str(needle))) => {
            with_two(hay, needle, |h, n| h.contains(n))
        }
        (Some(Val::Array(items)), Some(b)) => items.iter().any(|v| equal(v.val(), b)),
        _ => false,
    }
}

/// `starts_with` on strings.
pub fn starts_with(a: Option<Val<'_>>, b: Option<Val<'_>>) -> bool {
    match (a, b) {
        (Some(Val::Str(s)), Some(Val::Str(p))) => with_two(s, p, |s, p| s.starts_with(p)),
        _ => false,
    }
}

/// `ends_with` on strings.
pub fn ends_with(a: Option<Val<'_>>, b: Option<Val<'_>>) -> bool {
    match (a, b) {
        (Some(Val::Str(s)), Some(Val::Str(p))) => with_two(s, p, |s, p| s.ends_with(p)),
        _ => false,
    }
}

fn with_two<R>(a: JStr<'_>, b: JStr<'_>, f: impl FnOnce(&str, &str) -> R) -> R {
    match (a.as_plain(), b.as_plain()) {
        (Some(x), Some(y)) => f(x, y),
        (Some(x), None) => b.with_str(|y| f(x, y)),
        (None, Some(y)) => a.with_str(|x| f(x, y)),
        // Both escaped: rare enough that a fresh String for one side is fine.
        (None, None) => {
            let y: String = b.chars().collect();
            a.with_str(|x| f(x, &y))
        }
    }
}

/// `exists: true`: the path resolves to a non-null value. (`exists: false` is its negation.)
pub fn exists(a: Option<Val<'_>>) -> bool {
    a.is_some_and(|v| !matches!(v, Val::Null))
}

/// `matches`: the string has a match for the regex anywhere (unanchored).
/// Non-strings fail.
pub fn matches(a: Option<Val<'_>>, is_match: impl FnOnce(&str) -> bool) -> bool {
    match a {
        Some(Val::Str(s)) => s.with_str(is_match),
        _ => false,
    }
}

/// `len(...)`: characters of a string, elements of an array, members of an object.
pub fn len(a: Option<Val<'_>>) -> Option<u64> {
    match a? {
        Val::Str(s) => Some(s.char_len() as u64),
        Val::Array(x) => Some(x.len() as u64),
        Val::Object(o) => Some(o.len() as u64),
        _ => None,
    }
}

/// Glob match of a tool name: `*` matches any run of characters (including
/// none); every other character matches itself.
pub fn glob_match(pattern: &str, name: &str) -> bool {
    let (p, n) = (pattern.as_bytes(), name.as_bytes());
    let (mut pi, mut ni) = (0, 0);
    let mut star: Option<(usize, usize)> = None;
    while ni < n.len() {
        if pi < p.len() && p[pi] == b'*' {
            star = Some((pi, ni));
            pi += 1;
        } else if pi < p.len() && p[pi] == n[ni] {
            pi += 1;
            ni += 1;
        } else if let Some((sp, sn)) = star {
            pi = sp + 1;
            ni = sn + 1;
            star = Some((sp, sn + 1));
        } else {
            return false;
        }
    }
    p[pi..].iter().all(|&c| c == b'*')
}

/// Why an amount for a counter could not be used.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum AmountFault {
    /// The path does not resolve, or the value is not a number.
    Missing,
    /// A number, but negative, fractional, or above [`MAX_AMOUNT`].
    Invalid,
}

/// Largest amount one call may add to a counter (what SQLite and Redis integers hold).
pub const MAX_AMOUNT: u64 = i64::MAX as u64;

/// The amount a call adds to a spend counter: a whole number in `0..=MAX_AMOUNT`.
///
/// Intercept truncates `2.9` to 2, counts `0.5` as free, lets negative
/// amounts refund quota and wraps `1e19` to a huge negative number; all of
/// those are [`AmountFault::Invalid`] here.
pub fn amount(a: Option<Val<'_>>) -> Result<u64, AmountFault> {
    match a {
        Some(Val::Num(n)) => match n.to_u64_exact() {
            Some(v) if v <= MAX_AMOUNT => Ok(v),
            _ => Err(AmountFault::Invalid),
        },
        _ => Err(AmountFault::Missing),
    }
}

/// Set in every argument partition: they print as 32 hex digits in storage
/// keys and never meet 0 (counters every caller shares) or a session id
/// (below 2^64).
pub const ARG_PARTITION: u128 = 1 << 127;

/// Objects with at most this many members are canonicalised on the stack;
/// larger ones (absurd as tool arguments) sort their member digests in a
/// heap buffer: still correct, but that decision allocates.
pub const INLINE_MEMBERS: usize = 32;

/// The counter partition of a per-argument limit (`by args.x`): SHA-256 of
/// the value's canonical form, truncated to 128 bits, with [`ARG_PARTITION`]
/// set. A missing argument has its own partition.
///
/// Canonical form: equal values share a partition whatever their spelling.
/// Numbers by exact value (`1e2` = `100`), strings by code points after JSON
/// escapes (`"a\u0062"` = `"ab"`), arrays element by element in order,
/// objects as the sorted multiset of their members' digests (key order and
/// whitespace are irrelevant), recursively. Distinct types stay distinct
/// (`1` is not `"1"`, `[1]` is not `1`).
///
/// Why a cryptographic hash: the values are chosen by the agent, and with a
/// fast unkeyed hash it could search offline for a value that lands in
/// another customer's partition and exhaust that budget. Aiming at a given
/// partition here is a second preimage of truncated SHA-256 (2^127 work),
/// and unlike a keyed hash it needs no key shared between the proxies of a
/// deployment: every store and process agrees by construction. Costs one
/// SHA-256 over the value (plus one per object member) per partitioned
/// counter, with no allocation (objects of more than [`INLINE_MEMBERS`]
/// members aside).
pub fn partition_of(a: Option<Val<'_>>) -> u128 {
    let mut h = Canon::new();
    match a {
        None => h.byte(0),
        Some(v) => h.value(v),
    }
    u128::from_be_bytes(h.digest()) | ARG_PARTITION
}

/// The counter partition of one caller (`by principal.sub`): the canonical
/// form of the array `[iss, sub]`, hashed as [`partition_of`] hashes, since
/// a subject is unique only within its issuer (two identity providers may
/// both have an `alice`).
pub fn partition_of_caller(iss: &str, sub: &str) -> u128 {
    let mut h = Canon::new();
    h.byte(ARRAY);
    h.value(Val::Str(crate::json::JStr::plain(iss)));
    h.value(Val::Str(crate::json::JStr::plain(sub)));
    h.byte(END);
    u128::from_be_bytes(h.digest()) | ARG_PARTITION
}

/// Type tags of the canonical form (0 is a missing argument).
const NULL: u8 = 1;
const BOOL: u8 = 2;
const NUM: u8 = 3;
const STR: u8 = 4;
const ARRAY: u8 = 5;
const OBJECT: u8 = 6;
/// Ends an array: no value starts with it.
const END: u8 = 0xff;

/// Streams a value's canonical form into SHA-256 through a block buffer.
/// Every encoding is self-delimiting, so a sequence of them is unambiguous:
/// a number's canonical form is `0` or ends in a fixed-width exponent,
/// a string ends with `u32::MAX` (no code point), an array with [`END`],
/// an object is a count and fixed-width digests.
struct Canon {
    sha: Sha256,
    buf: [u8; 64],
    len: usize,
}

impl Canon {
    fn new() -> Canon {
        Canon {
            sha: Sha256::new(),
            buf: [0; 64],
            len: 0,
        }
    }

    fn byte(&mut self, b: u8) {
        if self.len == self.buf.len() {
            self.sha.update(self.buf);
            self.len = 0;
        }
        self.buf[self.len] = b;
        self.len += 1;
    }

    fn bytes(&mut self, bytes: &[u8]) {
        bytes.iter().for_each(|&b| self.byte(b));
    }

    /// The first 128 bits of the SHA-256 of everything fed.
    fn digest(mut self) -> [u8; 16] {
        self.sha.update(&self.buf[..self.len]);
        let full = self.sha.finalize();
        let mut out = [0; 16];
        out.copy_from_slice(&full[..16]);
        out
    }

    fn string(&mut self, s: JStr<'_>) {
        for c in s.chars() {
            self.bytes(&(c as u32).to_le_bytes());
        }
        self.bytes(&u32::MAX.to_le_bytes());
    }

    fn value(&mut self, v: Val<'_>) {
        match v {
            Val::Null => self.byte(NULL),
            Val::Bool(b) => self.bytes(&[BOOL, u8::from(b)]),
            Val::Num(n) => {
                self.byte(NUM);
                n.canonical(|b| self.byte(b));
            }
            Val::Str(s) => {
                self.byte(STR);
                self.string(s);
            }
            Val::Array(x) => {
                self.byte(ARRAY);
                x.iter().for_each(|e| self.value(e.val()));
                self.byte(END);
            }
            Val::Object(o) => {
                self.byte(OBJECT);
                // Each member hashed on its own, the digests sorted: the
                // same bytes in whatever order the members were written.
                let n = o.len();
                let mut inline = [[0u8; 16]; INLINE_MEMBERS];
                let mut spilled = Vec::new();
                let digests: &mut [[u8; 16]] = if n <= INLINE_MEMBERS {
                    &mut inline[..n]
                } else {
                    spilled.resize(n, [0u8; 16]);
                    &mut spilled
                };
                for (d, (key, value)) in digests.iter_mut().zip(o.members()) {
                    let mut m = Canon::new();
                    m.string(key);
                    m.value(value.val());
                    *d = m.digest();
                }
                digests.sort_unstable();
                self.bytes(&(n as u64).to_le_bytes());
                digests.iter().for_each(|d| self.bytes(d));
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::json::{Strictness, Value, validate};

    fn v(text: &str) -> Val<'_> {
        validate(text.as_bytes(), Strictness::LENIENT).unwrap();
        Value::from_validated(text.as_bytes()).val()
    }

    #[test]
    fn equality_is_typed_with_one_numeric_string_coercion() {
        assert!(equal(v("5"), v("\"5\"")));
        assert!(equal(v("\"1000000\""), v("1e6")));
        assert!(equal(v("1000000"), v("\"1000000\"")));
        assert!(!equal(v("\"5 \""), v("5")));
        assert!(!equal(v("\"+5\""), v("5")));
        assert!(!equal(v("true"), v("\"true\"")));
        assert!(!equal(v("null"), v("\"<nil>\"")));
        assert!(equal(v("null"), v("null")));
        assert!(!equal(v("[\"a\",\"b\"]"), v("\"[a b]\"")));
        assert!(!equal(v("[1]"), v("[1]")));
        assert!(equal(v("\"a\\u0062\""), v("\"ab\"")));
        // A policy constant is decoded text: its backslash is a character, not an escape.
        let windows = Val::Str(JStr::plain("C:\\Windows"));
        assert!(equal(windows, v(r#""C:\\Windows""#)));
        assert!(equal(v(r#""C:\u005cWindows""#), windows));
        assert!(!equal(windows, v(r#""C:\\\\Windows""#)));
        assert!(one_of(
            Some(v(r#""a\\b""#)),
            &[Val::Str(JStr::plain("a\\b"))]
        ));
    }

    #[test]
    fn missing_fails_everything_but_exists() {
        let five = v("5");
        assert!(!eq(None, five));
        assert!(!ne(None, five));
        assert!(!one_of(None, &[five]));
        assert!(!not_one_of(None, &[five]));
        assert!(!lt(None, Some(five)));
        assert!(!exists(None));
        assert!(!exists(Some(v("null"))));
        assert!(exists(Some(v("\"\""))));
        assert!(exists(Some(v("0"))));
    }

    #[test]
    fn ordering_needs_matching_types() {
        assert!(lt(Some(v("9007199254740992")), Some(v("9007199254740993"))));
        assert!(!lt(Some(v("\"1\"")), Some(v("2"))));
        assert!(le(Some(v("99.5")), Some(v("99.5"))));
        assert!(lt(Some(v("\"abc\"")), Some(v("\"abd\""))));
        assert!(!gt(Some(v("true")), Some(v("false"))));
    }

    #[test]
    fn contains_substring_and_elements() {
        assert!(contains(Some(v("\"/tmp/x\"")), Some(v("\"/tmp\""))));
        assert!(contains(Some(v("\"\"")), Some(v("\"\""))));
        assert!(!contains(Some(v("\"1234\"")), Some(v("4"))));
        assert!(contains(Some(v("[\"2\"]")), Some(v("2"))));
        assert!(contains(Some(v("[1,2]")), Some(v("2.0"))));
        assert!(!contains(Some(v("{\"k\":1}")), Some(v("\"k\""))));
        assert!(contains(Some(v("\"a\\nb\"")), Some(v("\"\\n\""))));
        assert!(starts_with(Some(v("\"feat/x\"")), Some(v("\"feat/\""))));
        assert!(ends_with(
            Some(v("\"a@example.com\"")),
            Some(v("\"@example.com\""))
        ));
    }

    #[test]
    fn globs_match_names() {
        assert!(glob_match("list_*", "list_customers"));
        assert!(glob_match("list_*", "list_"));
        assert!(!glob_match("list_*", "xlist_a"));
        assert!(glob_match("*_webhook", "stripe_webhook"));
        assert!(glob_match("*", ""));
        assert!(glob_match("a*b*c", "axxbyyc"));
        assert!(!glob_match("a*b*c", "axxbyy"));
        assert!(glob_match("exact", "exact"));
        assert!(!glob_match("exact", "exactly"));
    }

    #[test]
    fn amounts_are_whole_and_non_negative() {
        assert_eq!(amount(Some(v("600"))), Ok(600));
        assert_eq!(amount(Some(v("6e2"))), Ok(600));
        assert_eq!(amount(Some(v("0"))), Ok(0));
        assert_eq!(amount(Some(v("2.9"))), Err(AmountFault::Invalid));
        assert_eq!(amount(Some(v("-100"))), Err(AmountFault::Invalid));
        assert_eq!(amount(Some(v("1e19"))), Err(AmountFault::Invalid));
        assert_eq!(amount(Some(v("\"100\""))), Err(AmountFault::Missing));
        assert_eq!(amount(None), Err(AmountFault::Missing));
    }

    fn p(text: &str) -> u128 {
        partition_of(Some(v(text)))
    }

    #[test]
    fn partitions_follow_values_not_spelling() {
        assert_eq!(p("1e3"), p("1000"));
        assert_eq!(p("1e2"), p("100.0"));
        assert_eq!(p("\"a\\u0062\""), p("\"ab\""));
        assert_ne!(p("\"c1\""), p("\"c2\""));
        assert_ne!(p("1"), p("\"1\""));
        assert_ne!(partition_of(None), p("null"));
        // Never 0 (shared counters) nor a session id (below 2^64).
        for x in [partition_of(None), p("0"), p("{}"), p("[]")] {
            assert!(x & ARG_PARTITION != 0 && x > u128::from(u64::MAX));
        }
    }

    #[test]
    fn arrays_and_objects_are_partitioned_by_canonical_value() {
        // Whitespace, key order, escapes and number spelling, at any depth.
        let same = [
            r#"{"a":1,"b":[true,null,"x"]}"#,
            r#"{ "a" : 1 , "b" : [ true , null , "x" ] }"#,
            r#"{"b":[true,null,"\u0078"],"a":1e0}"#,
            "{\n\t\"b\": [true, null, \"x\"],\r\n \"\\u0061\": 10e-1\n}",
        ];
        for s in same {
            assert_eq!(p(s), p(same[0]), "{s}");
        }
        assert_eq!(
            p(r#"{"o":{"y":2,"x":{"q":[1,{"k":"v","j":0}]}}}"#),
            p(r#"{"o":{"x":{"q":[1.0,{"j":0e5,"k":"v"}]},"y":2}}"#)
        );
        assert_eq!(p("[1, 2]"), p("[1,2]"));
        assert_eq!(p("[ ]"), p("[]"));
        assert_eq!(p("{ }"), p("{}"));

        // Different values, different partitions.
        let distinct = [
            "[1,2]",
            "[2,1]",
            "[1]",
            "[[1]]",
            "[1,[2]]",
            "[[1],2]",
            "[]",
            "[[]]",
            "{}",
            r#"{"a":[1]}"#,
            r#"{"a":1}"#,
            r#"{"a":"1"}"#,
            r#"{"b":1}"#,
            r#"{"a":1,"b":2}"#,
            r#"{"a":2,"b":1}"#,
            r#"{"a":{"b":1}}"#,
            r#"{"ab":1}"#,
            r#"{"a":null}"#,
            r#"["a",1]"#,
            r#"["a1"]"#,
            r#"["a","1"]"#,
            r#"[{"a":1}]"#,
            "[null]",
            "[\"\"]",
            "1",
            "\"[1,2]\"",
            "null",
            "true",
            "false",
        ];
        for (i, x) in distinct.iter().enumerate() {
            for y in &distinct[i + 1..] {
                assert_ne!(p(x), p(y), "{x} vs {y}");
            }
        }
    }

    #[test]
    fn large_objects_are_canonical_too() {
        // Past the inline buffer: the heap fallback sorts the same way.
        let members: Vec<String> = (0..INLINE_MEMBERS + 5)
            .map(|i| format!("\"k{i}\":{i}"))
            .collect();
        let forward = format!("{{{}}}", members.join(","));
        let backward = format!(
            "{{{}}}",
            members
                .iter()
                .rev()
                .cloned()
                .collect::<Vec<_>>()
                .join(" , ")
        );
        assert_eq!(p(&forward), p(&backward));
        let changed = forward.replace("\"k3\":3", "\"k3\":4");
        assert_ne!(p(&forward), p(&changed));
    }
}
