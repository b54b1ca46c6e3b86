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

/// A stable 64-bit key for a per-argument counter partition (FNV-1a over a
/// canonical form: `1e3` and `1000` share a partition, `"a\u0062"` and `"ab"` too).
/// A missing argument has its own partition.
pub fn partition_of(a: Option<Val<'_>>) -> u64 {
    let mut h = Fnv64::new();
    match a {
        None => h.byte(0),
        Some(Val::Null) => h.byte(1),
        Some(Val::Bool(b)) => {
            h.byte(2);
            h.byte(u8::from(b));
        }
        Some(Val::Num(n)) => {
            h.byte(3);
            n.canonical(|b| h.byte(b));
        }
        Some(Val::Str(s)) => {
            h.byte(4);
            for c in s.chars() {
                for b in (c as u32).to_le_bytes() {
                    h.byte(b);
                }
            }
        }
        Some(Val::Array(x)) => {
            h.byte(5);
            x.as_bytes().iter().for_each(|&b| h.byte(b));
        }
        Some(Val::Object(o)) => {
            h.byte(6);
            o.as_bytes().iter().for_each(|&b| h.byte(b));
        }
    }
    // Never 0: 0 is the partition of unpartitioned counters.
    h.0.max(1)
}

struct Fnv64(u64);

impl Fnv64 {
    fn new() -> Fnv64 {
        Fnv64(0xcbf2_9ce4_8422_2325)
    }
    fn byte(&mut self, b: u8) {
        self.0 ^= u64::from(b);
        self.0 = self.0.wrapping_mul(0x0000_0100_0000_01b3);
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

    #[test]
    fn partitions_follow_values_not_spelling() {
        assert_eq!(partition_of(Some(v("1e3"))), partition_of(Some(v("1000"))));
        assert_eq!(
            partition_of(Some(v("\"a\\u0062\""))),
            partition_of(Some(v("\"ab\"")))
        );
        assert_ne!(
            partition_of(Some(v("\"c1\""))),
            partition_of(Some(v("\"c2\"")))
        );
        assert_ne!(partition_of(Some(v("1"))), partition_of(Some(v("\"1\""))));
        assert_ne!(partition_of(None), 0);
    }
}
