//! Filesystem paths in tool arguments, as `path(args.x)` conditions see them.
//!
//! A policy writes `path(args.path) matches "/srv/secret/**"`; the call's
//! argument is normalised lexically first, the way a server resolving the
//! path would read it, so `/srv/public/../secret/key`, `/srv//secret/key`
//! and `/srv/./secret/key` all meet the rule written for
//! `/srv/secret/key`. The steps:
//!
//! 1. the path must be absolute (start with `/`);
//! 2. empty segments (duplicate slashes) and `.` segments are dropped, `..`
//!    segments resolved; a `..` above the root is refused;
//! 3. a trailing `/` is dropped (`/srv/secret/` is `/srv/secret`), except
//!    for the root `/` itself;
//! 4. a control character (`U+0000`..`U+001F`, `U+007F`) is refused.
//!
//! Percent-escapes are NOT decoded: filesystems do not decode them, so
//! `/srv/%73ecret` names a file of that name, not `/srv/secret`. A
//! backslash is an ordinary character (POSIX paths).
//!
//! A path that cannot be normalised (relative, above the root, a control
//! character, longer than [`MAX_PATH_LEN`]) or an argument that is not a
//! string is *invalid*: the test then takes the value the compiler chose
//! for it, the one that makes the rule refuse the call (fail closed: a
//! `deny ... when path(...) ...` denies, an `allow when path(...) ...`
//! does not allow). An absent (or null) argument is missing, like for
//! every other test: the test is false.
//!
//! Symlinks are not resolved here (that needs the filesystem, and this
//! runs in generated code with no I/O).
//!
//! Normalising writes into a stack buffer; the decision path allocates nothing.

use std::fmt;

use crate::json::Val;
use crate::uri::uri_glob_match;

crate::error_kinds! {
    /// Why a path could not be normalised.
    pub enum PathErrorKind {
        /// Not starting with `/`.
        Relative => "the path is not absolute (it does not start with `/`)",
        /// `..` climbing above the root.
        AboveRoot => "a `..` segment climbs above the root",
        /// A control character.
        ControlChar => "the path holds a control character",
        /// Longer than the buffer.
        TooLong => "the path is longer than the proxy accepts",
    }
}

/// A path that could not be normalised, and where (byte offset in the input).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct PathError {
    /// What is wrong.
    pub kind: PathErrorKind,
    /// Byte offset in the input.
    pub at: usize,
}

impl fmt::Display for PathError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{} (at byte {})", self.kind, self.at)
    }
}

impl std::error::Error for PathError {}

/// Longest path argument a `path()` condition normalises (its stack
/// buffer); a longer one is invalid.
pub const MAX_PATH_LEN: usize = 4096;

/// How a `path()` condition compares the normalised path with its pattern.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub enum PathOp {
    /// `matches "GLOB"`: `*` within a segment, `**` across segments; a
    /// pattern ending in `/**` also matches the directory itself.
    Glob,
    /// `== "/x"`: exactly this path.
    Eq,
    /// `starts_with "/x"`: this path or anything under it (by whole
    /// segments: `/srv/secret` does not start `/srv/secretive`).
    Under,
}

impl PathOp {
    /// The policy language's word for it.
    pub fn dsl(self) -> &'static str {
        match self {
            PathOp::Glob => "matches",
            PathOp::Eq => "==",
            PathOp::Under => "starts_with",
        }
    }

    /// True when the normalised `path` meets `pattern` (itself normalised).
    pub fn matches(self, pattern: &str, path: &str) -> bool {
        match self {
            PathOp::Eq => path == pattern,
            PathOp::Under => {
                pattern == "/"
                    || path
                        .strip_prefix(pattern)
                        .is_some_and(|rest| rest.is_empty() || rest.starts_with('/'))
            }
            PathOp::Glob => {
                uri_glob_match(pattern, path)
                    || pattern
                        .strip_suffix("/**")
                        .is_some_and(|dir| !dir.is_empty() && dir == path)
            }
        }
    }
}

fn err(kind: PathErrorKind, at: usize) -> PathError {
    PathError { kind, at }
}

/// Normalises `path` into `buf` (see the module documentation) and returns
/// the normalised text, a prefix of `buf`. A buffer as long as the input
/// always suffices; a shorter one may end in [`PathErrorKind::TooLong`].
pub fn normalize_into<'b>(path: &str, buf: &'b mut [u8]) -> Result<&'b str, PathError> {
    let s = path.as_bytes();
    if let Some(at) = s.iter().position(|&b| b < 0x20 || b == 0x7f) {
        return Err(err(PathErrorKind::ControlChar, at));
    }
    if s.first() != Some(&b'/') {
        return Err(err(PathErrorKind::Relative, 0));
    }
    let mut len = 0usize;
    let mut i = 1;
    while i <= s.len() {
        let end = s[i..]
            .iter()
            .position(|&b| b == b'/')
            .map_or(s.len(), |p| i + p);
        match &s[i..end] {
            b"" | b"." => {}
            b".." => {
                if len == 0 {
                    return Err(err(PathErrorKind::AboveRoot, i));
                }
                len = buf[..len].iter().rposition(|&b| b == b'/').unwrap_or(0);
            }
            seg => {
                if len + 1 + seg.len() > buf.len() {
                    return Err(err(PathErrorKind::TooLong, i));
                }
                buf[len] = b'/';
                buf[len + 1..len + 1 + seg.len()].copy_from_slice(seg);
                len += 1 + seg.len();
            }
        }
        i = end + 1;
    }
    if len == 0 {
        if buf.is_empty() {
            return Err(err(PathErrorKind::TooLong, 0));
        }
        buf[0] = b'/';
        len = 1;
    }
    // Whole segments of valid UTF-8 split only at `/`, so this never fails.
    std::str::from_utf8(&buf[..len]).map_err(|_| err(PathErrorKind::TooLong, 0))
}

/// Normalises `path` into a new string (for the compiler and tests; the
/// decision path uses [`normalize_into`] with a stack buffer).
pub fn normalize(path: &str) -> Result<String, PathError> {
    let mut buf = vec![0u8; path.len().max(1)];
    normalize_into(path, &mut buf).map(str::to_owned)
}

/// A `path()` test: `v` (an argument) normalised and compared with
/// `pattern` by `op`. Missing (absent or null): false. Not a string, or a
/// string that cannot be normalised: `invalid` (the compiler passes the
/// value that makes the enclosing rule refuse the call). No allocation.
pub fn test(v: Option<Val<'_>>, op: PathOp, pattern: &str, invalid: bool) -> bool {
    match v {
        None | Some(Val::Null) => false,
        Some(Val::Str(s)) => s.with_str(|s| {
            if s.len() > MAX_PATH_LEN {
                return invalid;
            }
            let mut buf = [0u8; MAX_PATH_LEN];
            match normalize_into(s, &mut buf) {
                Ok(p) => op.matches(pattern, p),
                Err(_) => invalid,
            }
        }),
        Some(_) => invalid,
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::json::JStr;

    fn n(s: &str) -> Result<String, PathErrorKind> {
        normalize(s).map_err(|e| e.kind)
    }

    #[test]
    fn normalises_what_a_server_would_resolve() {
        for (input, want) in [
            ("/srv/secret/key", "/srv/secret/key"),
            ("/srv/public/../secret/key", "/srv/secret/key"),
            ("/srv//secret///key", "/srv/secret/key"),
            ("/srv/./secret/./key", "/srv/secret/key"),
            ("//srv/secret", "/srv/secret"),
            ("/srv/secret/", "/srv/secret"),
            ("/srv/secret/.", "/srv/secret"),
            ("/srv/secret/x/..", "/srv/secret"),
            ("/", "/"),
            ("//", "/"),
            ("/a/..", "/"),
            ("/srv/%73ecret", "/srv/%73ecret"),
            ("/srv/%2e%2e/etc", "/srv/%2e%2e/etc"),
            ("/srv/...", "/srv/..."),
            ("/srv/a\\..\\b", "/srv/a\\..\\b"),
            ("/caf\u{e9}/x", "/caf\u{e9}/x"),
        ] {
            assert_eq!(n(input).as_deref(), Ok(want), "{input}");
        }
    }

    #[test]
    fn refuses_what_cannot_be_normalised() {
        for (input, kind) in [
            ("", PathErrorKind::Relative),
            ("srv/secret", PathErrorKind::Relative),
            ("./srv", PathErrorKind::Relative),
            ("../etc/passwd", PathErrorKind::Relative),
            ("/..", PathErrorKind::AboveRoot),
            ("/srv/../../etc", PathErrorKind::AboveRoot),
            ("/srv/sec\0ret", PathErrorKind::ControlChar),
            ("/srv/sec\nret", PathErrorKind::ControlChar),
            ("srv\u{7f}", PathErrorKind::ControlChar),
        ] {
            assert_eq!(n(input), Err(kind), "{input:?}");
        }
        let mut buf = [0u8; 4];
        assert_eq!(
            normalize_into("/srv/secret", &mut buf).map_err(|e| e.kind),
            Err(PathErrorKind::TooLong)
        );
    }

    #[test]
    fn ops_compare_whole_segments() {
        assert!(PathOp::Glob.matches("/srv/secret/**", "/srv/secret/a/b"));
        assert!(PathOp::Glob.matches("/srv/secret/**", "/srv/secret"));
        assert!(!PathOp::Glob.matches("/srv/secret/**", "/srv/secretive"));
        assert!(PathOp::Glob.matches("/srv/*/key", "/srv/secret/key"));
        assert!(!PathOp::Glob.matches("/srv/*/key", "/srv/a/b/key"));
        assert!(PathOp::Glob.matches("/**", "/"));
        assert!(PathOp::Glob.matches("/**/*.pem", "/etc/ssl/a.pem"));
        assert!(PathOp::Eq.matches("/srv/secret", "/srv/secret"));
        assert!(!PathOp::Eq.matches("/srv/secret", "/srv/secret/x"));
        assert!(PathOp::Under.matches("/srv/secret", "/srv/secret"));
        assert!(PathOp::Under.matches("/srv/secret", "/srv/secret/x"));
        assert!(!PathOp::Under.matches("/srv/secret", "/srv/secretive"));
        assert!(PathOp::Under.matches("/", "/anything"));
    }

    #[test]
    fn tests_fail_closed_on_invalid_paths_and_miss_on_absent_ones() {
        let s = |t: &'static str| Some(Val::Str(JStr::plain(t)));
        let glob = |v, invalid| test(v, PathOp::Glob, "/srv/secret/**", invalid);
        assert!(glob(s("/srv/public/../secret/key"), false));
        assert!(glob(s("/srv//secret/key"), false));
        assert!(!glob(s("/srv/public/key"), true));
        for bad in ["secret/key", "/../srv/secret", "/srv/\0"] {
            assert!(glob(s(bad), true), "{bad:?}");
            assert!(!glob(s(bad), false), "{bad:?}");
        }
        assert!(glob(Some(Val::Bool(true)), true));
        assert!(!glob(Some(Val::Bool(true)), false));
        assert!(!glob(None, true));
        assert!(!glob(Some(Val::Null), true));
        let long = format!("/{}", "a".repeat(MAX_PATH_LEN));
        assert!(!test(
            Some(Val::Str(JStr::plain(&long))),
            PathOp::Glob,
            "/**",
            false
        ));
    }

    /// Lexical resolution, written as plainly as possible.
    fn oracle(p: &str) -> Option<String> {
        if !p.starts_with('/') {
            return None;
        }
        let mut stack: Vec<&str> = Vec::new();
        for seg in p.split('/') {
            match seg {
                "" | "." => {}
                ".." => {
                    stack.pop()?;
                }
                s => stack.push(s),
            }
        }
        Some(format!("/{}", stack.join("/")))
    }

    proptest::proptest! {
        #[test]
        fn normalising_matches_its_oracle(p in "(/|a|b|\\.)*") {
            proptest::prop_assert_eq!(normalize(&p).ok(), oracle(&p));
        }

        #[test]
        fn normalising_is_idempotent_and_never_longer(p in "(/|a|b|\\.|%2e)*") {
            if let Ok(once) = normalize(&p) {
                proptest::prop_assert!(once.len() <= p.len().max(1));
                proptest::prop_assert_eq!(normalize(&once), Ok(once.clone()));
                proptest::prop_assert!(!once.contains("//"));
                for seg in once.split('/').skip(1) {
                    proptest::prop_assert!(seg != "." && seg != "..");
                }
            }
        }
    }
}
