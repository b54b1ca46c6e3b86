//! Resource URIs as policies see them: normalised before any rule matches.
//!
//! A resource rule is written against the normalised form of a URI, and a
//! `resources/read` is decided on the normalised form of the URI the agent
//! sent, so `file:///etc/../etc/./passwd`, `FILE:///etc//passwd` and
//! `file:///%65tc/passwd` all meet the rule written for
//! `file:///etc/passwd`. The steps, in order:
//!
//! 1. the scheme (required) is lower-cased;
//! 2. in an authority (`//user@host:port`), the host is lower-cased. A
//!    `file:` URI is written one way, `file:///path`: `file:/path` and
//!    `file://localhost/path` (RFC 8089's other spellings of the same
//!    local file) become `file:///path`; a `file:` URI naming another host
//!    (a server may ignore the host and read its own file) or a relative
//!    path is refused. A literal `\` before the query of a `file:`,
//!    `http(s):`, `ws(s):` or `ftp:` URI is refused: WHATWG URL parsers
//!    (Node's `URL`, browsers) read it as `/`, so `public\..\secret` would
//!    name another path than the rules saw (an escaped one, `%5C`, is a
//!    character of a file name there and stays escaped);
//! 3. the path's percent-escapes are decoded, except `%25` (`%`), `%3F`
//!    (`?`) and `%23` (`#`), which stay escaped (upper-case hex) so the
//!    result reads as the same URI; an escaped `/` (`%2F`) is refused, since
//!    a server may decode it into a separator the rules never saw, and so is
//!    a decoded control character (`%00`..`%1F`, `%7F`) or bytes that are not
//!    UTF-8 once decoded;
//! 4. empty segments (duplicate slashes) are dropped, `.` segments removed
//!    and `..` segments resolved; a `..` above the root is refused;
//! 5. the query and fragment are kept as written (control characters refused).
//!
//! A URI beginning or ending with a space is refused too: WHATWG parsers
//! strip those, so `file:///etc/passwd ` names `/etc/passwd` to them.
//!
//! A URI that cannot be normalised is denied by the proxy, never forwarded.
//! Normalising writes into a caller's buffer at most two bytes longer than
//! the input (only `file:/path` grows, by the `//`), so the decision path
//! allocates nothing.

use std::fmt;

crate::error_kinds! {
    /// Why a URI could not be normalised.
    pub enum UriErrorKind {
        /// No `scheme:` prefix.
        NoScheme => "the URI has no scheme (`file:`, `https:`, ...)",
        /// A `%` not followed by two hex digits.
        BadPercent => "a `%` is not followed by two hexadecimal digits",
        /// `%2F` in the path.
        EncodedSlash => "the path holds an encoded `/` (`%2F`), which servers may decode into a separator",
        /// A control character, literal or encoded.
        ControlChar => "the URI holds a control character",
        /// `..` climbing above the root.
        AboveRoot => "a `..` segment climbs above the root",
        /// Decoded bytes that are not UTF-8.
        NotUtf8 => "the decoded path is not UTF-8",
        /// A `file:` URI naming a host other than `localhost`.
        FileHost => "a `file:` URI names a host other than `localhost`, whose path a server may read as its own",
        /// A `file:` URI whose path is not absolute.
        FileRelative => "a `file:` URI's path must be absolute (`file:///path`)",
        /// A literal `\` in a URI URL parsers read it as `/` in.
        Backslash => "the URI holds a `\\` before its query, which URL parsers read as `/` in `file:`, `http(s):`, `ws(s):` and `ftp:` URIs",
        /// A space at either end.
        EdgeSpace => "the URI begins or ends with a space, which URL parsers strip",
        /// Longer than the buffer.
        TooLong => "the URI is longer than the proxy accepts",
    }
}

/// A URI that could not be normalised, and where (byte offset in the input).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct UriError {
    /// What is wrong.
    pub kind: UriErrorKind,
    /// Byte offset in the input.
    pub at: usize,
}

impl fmt::Display for UriError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{} (at byte {})", self.kind, self.at)
    }
}

impl std::error::Error for UriError {}

/// Longest URI the proxy normalises (its stack buffer); longer ones are denied.
pub const MAX_URI_LEN: usize = 8192;

struct Out<'b> {
    buf: &'b mut [u8],
    len: usize,
}

impl Out<'_> {
    fn push(&mut self, b: u8, at: usize) -> Result<(), UriError> {
        if self.len >= self.buf.len() {
            return Err(UriError {
                kind: UriErrorKind::TooLong,
                at,
            });
        }
        self.buf[self.len] = b;
        self.len += 1;
        Ok(())
    }

    fn push_escaped(&mut self, b: u8, at: usize) -> Result<(), UriError> {
        const HEX: &[u8; 16] = b"0123456789ABCDEF";
        self.push(b'%', at)?;
        self.push(HEX[usize::from(b >> 4)], at)?;
        self.push(HEX[usize::from(b & 15)], at)
    }
}

fn hex(b: u8) -> Option<u8> {
    match b {
        b'0'..=b'9' => Some(b - b'0'),
        b'a'..=b'f' => Some(b - b'a' + 10),
        b'A'..=b'F' => Some(b - b'A' + 10),
        _ => None,
    }
}

fn err(kind: UriErrorKind, at: usize) -> UriError {
    UriError { kind, at }
}

fn is_control(b: u8) -> bool {
    b < 0x20 || b == 0x7f
}

/// Normalises `uri` into `buf` (see the module documentation) and returns
/// the normalised text, a prefix of `buf`. A buffer two bytes longer than
/// the input always suffices; a shorter one may end in
/// [`UriErrorKind::TooLong`].
pub fn normalize_into<'b>(uri: &str, buf: &'b mut [u8]) -> Result<&'b str, UriError> {
    let s = uri.as_bytes();
    // WHATWG parsers strip leading and trailing spaces (controls are
    // refused below): `file:///secret/key ` is `file:///secret/key` to Node.
    if s.first() == Some(&b' ') {
        return Err(err(UriErrorKind::EdgeSpace, 0));
    }
    if s.last() == Some(&b' ') {
        return Err(err(UriErrorKind::EdgeSpace, s.len() - 1));
    }
    let mut out = Out { buf, len: 0 };
    // 1. The scheme.
    let colon = s.iter().position(|&b| b == b':');
    let scheme_ok = colon.is_some_and(|c| {
        c > 0
            && s[0].is_ascii_alphabetic()
            && s[1..c]
                .iter()
                .all(|b| b.is_ascii_alphanumeric() || matches!(b, b'+' | b'-' | b'.'))
    });
    let Some(colon) = colon.filter(|_| scheme_ok) else {
        return Err(err(UriErrorKind::NoScheme, 0));
    };
    for (i, &b) in s[..=colon].iter().enumerate() {
        out.push(b.to_ascii_lowercase(), i)?;
    }
    let mut i = colon + 1;
    let scheme = &out.buf[..colon];
    let file = scheme == b"file";
    let special = matches!(
        scheme,
        b"file" | b"http" | b"https" | b"ws" | b"wss" | b"ftp"
    );
    if special {
        let end = s[i..]
            .iter()
            .position(|&b| matches!(b, b'?' | b'#'))
            .map_or(s.len(), |p| i + p);
        if let Some(at) = s[i..end].iter().position(|&b| b == b'\\') {
            return Err(err(UriErrorKind::Backslash, i + at));
        }
    }
    // 2. The authority.
    if file {
        // `file:///p`, `file://localhost/p` and `file:/p` name one file.
        out.push(b'/', i)?;
        out.push(b'/', i)?;
        if s[i..].starts_with(b"//") {
            let end = s[i + 2..]
                .iter()
                .position(|&b| matches!(b, b'/' | b'?' | b'#'))
                .map_or(s.len(), |p| i + 2 + p);
            let host = &s[i + 2..end];
            if !(host.is_empty() || host.eq_ignore_ascii_case(b"localhost")) {
                return Err(err(UriErrorKind::FileHost, i + 2));
            }
            i = end;
        }
        if s.get(i) != Some(&b'/') {
            return Err(err(UriErrorKind::FileRelative, i));
        }
    } else if s[i..].starts_with(b"//") {
        out.push(b'/', i)?;
        out.push(b'/', i + 1)?;
        i += 2;
        let end = s[i..]
            .iter()
            .position(|&b| matches!(b, b'/' | b'?' | b'#'))
            .map_or(s.len(), |p| i + p);
        let host_from = s[i..end]
            .iter()
            .rposition(|&b| b == b'@')
            .map_or(i, |p| i + p + 1);
        for (j, &b) in s.iter().enumerate().take(end).skip(i) {
            if is_control(b) {
                return Err(err(UriErrorKind::ControlChar, j));
            }
            if b == b'%' && !(j + 2 < s.len() && hex(s[j + 1]).is_some() && hex(s[j + 2]).is_some())
            {
                return Err(err(UriErrorKind::BadPercent, j));
            }
            out.push(
                if j >= host_from {
                    b.to_ascii_lowercase()
                } else {
                    b
                },
                j,
            )?;
        }
        i = end;
    }
    // 3 and 4. The path, segment by segment.
    let path_end = s[i..]
        .iter()
        .position(|&b| matches!(b, b'?' | b'#'))
        .map_or(s.len(), |p| i + p);
    let path_start = out.len;
    let absolute = s.get(i) == Some(&b'/');
    if absolute {
        i += 1;
    }
    // Where the path's segments begin in `out` (after the leading `/`).
    if absolute {
        out.push(b'/', i)?;
    }
    let root = out.len;
    let mut trailing_dir = false;
    if absolute || i < path_end {
        loop {
            let seg_end = s[i..path_end]
                .iter()
                .position(|&b| b == b'/')
                .map_or(path_end, |p| i + p);
            let seg_out = out.len;
            if out.len > root {
                out.push(b'/', i)?;
            }
            let body = out.len;
            let mut j = i;
            while j < seg_end {
                let b = s[j];
                if is_control(b) {
                    return Err(err(UriErrorKind::ControlChar, j));
                }
                if b == b'%' {
                    let (Some(h), Some(l)) = (
                        s.get(j + 1).copied().and_then(hex),
                        s.get(j + 2).copied().and_then(hex),
                    ) else {
                        return Err(err(UriErrorKind::BadPercent, j));
                    };
                    match (h << 4) | l {
                        b'/' => return Err(err(UriErrorKind::EncodedSlash, j)),
                        d @ (b'%' | b'?' | b'#') => out.push_escaped(d, j)?,
                        b'\\' if special => out.push_escaped(b'\\', j)?,
                        d if is_control(d) => return Err(err(UriErrorKind::ControlChar, j)),
                        d => out.push(d, j)?,
                    }
                    j += 3;
                } else {
                    out.push(b, j)?;
                    j += 1;
                }
            }
            match &out.buf[body..out.len] {
                b"" | b"." => {
                    out.len = seg_out;
                    trailing_dir = true;
                }
                b".." => {
                    // Drop the previous segment and its separator.
                    out.len = seg_out;
                    if out.len == root {
                        return Err(err(UriErrorKind::AboveRoot, i));
                    }
                    out.len = out.buf[root..out.len]
                        .iter()
                        .rposition(|&b| b == b'/')
                        .map_or(root, |p| root + p);
                    trailing_dir = true;
                }
                _ => trailing_dir = false,
            }
            if seg_end == path_end {
                break;
            }
            i = seg_end + 1;
        }
    }
    if trailing_dir && out.len > root {
        out.push(b'/', path_end)?;
    }
    if std::str::from_utf8(&out.buf[path_start..out.len]).is_err() {
        return Err(err(UriErrorKind::NotUtf8, path_start));
    }
    // 5. Query and fragment, as written.
    for (j, &b) in s.iter().enumerate().skip(path_end) {
        if is_control(b) {
            return Err(err(UriErrorKind::ControlChar, j));
        }
        out.push(b, j)?;
    }
    let len = out.len;
    let buf = out.buf;
    std::str::from_utf8(&buf[..len]).map_err(|_| err(UriErrorKind::NotUtf8, 0))
}

/// Normalises `uri` into a new string (for the compiler and tests; the
/// proxy uses [`normalize_into`] with a stack buffer).
pub fn normalize(uri: &str) -> Result<String, UriError> {
    let mut buf = vec![0u8; uri.len() + 2];
    normalize_into(uri, &mut buf).map(str::to_owned)
}

/// True when `uri` matches `pattern`, a URI glob: `*` matches any run of
/// characters other than `/`, `**` any run at all; every other byte
/// matches itself. Patterns are at most [`MAX_GLOB_LEN`] bytes (the compiler
/// checks); a longer one matches nothing. No allocation: the matcher runs
/// the pattern as a set of positions (a bit set) over the URI's bytes.
pub fn uri_glob_match(pattern: &str, uri: &str) -> bool {
    let p = pattern.as_bytes();
    if p.len() > MAX_GLOB_LEN {
        return false;
    }
    // Fast paths (the common `scheme://dir/**` and `scheme://dir/*` shapes
    // decide here): the literal text before the first star must start the
    // URI and the literal text after the last star must end it.
    let u = uri.as_bytes();
    let Some(first) = p.iter().position(|&b| b == b'*') else {
        return p == u;
    };
    let last = p.iter().rposition(|&b| b == b'*').unwrap_or(first);
    let (prefix, suffix) = (&p[..first], &p[last + 1..]);
    if u.len() < prefix.len() + suffix.len() || !u.starts_with(prefix) || !u.ends_with(suffix) {
        return false;
    }
    if suffix.is_empty() {
        let middle = &p[first..];
        if middle == b"**" {
            return true;
        }
        if middle == b"*" {
            return !u[prefix.len()..].contains(&b'/');
        }
    }
    glob_states(p, u)
}

/// [`uri_glob_match`] in general: the pattern run as a set of positions.
fn glob_states(p: &[u8], uri: &[u8]) -> bool {
    // State k: "p[..k] matched". Closure: a star may match nothing.
    let close = |mut set: u128| {
        let mut k = 0;
        while k < p.len() {
            if set & (1 << k) != 0 && p[k] == b'*' {
                let width = if p.get(k + 1) == Some(&b'*') { 2 } else { 1 };
                set |= 1 << (k + width);
            }
            k += 1;
        }
        set
    };
    let mut set = close(1);
    for &c in uri {
        let mut next: u128 = 0;
        let mut k = 0;
        while k < p.len() {
            if set & (1 << k) != 0 {
                if p[k] == b'*' {
                    let double = p.get(k + 1) == Some(&b'*');
                    if double || c != b'/' {
                        next |= 1 << k;
                    }
                } else if p[k] == c {
                    next |= 1 << (k + 1);
                }
            }
            // The second `*` of `**` is never a state of its own.
            k += if p[k] == b'*' && p.get(k + 1) == Some(&b'*') {
                2
            } else {
                1
            };
        }
        set = close(next);
        if set == 0 {
            return false;
        }
    }
    set & (1 << p.len()) != 0
}

/// Longest URI glob pattern, in bytes.
pub const MAX_GLOB_LEN: usize = 126;

#[cfg(test)]
mod tests {
    use super::*;

    fn n(s: &str) -> Result<String, UriErrorKind> {
        normalize(s).map_err(|e| e.kind)
    }

    #[test]
    fn normalises_what_a_server_would_resolve() {
        let cases = [
            ("file:///etc/passwd", "file:///etc/passwd"),
            ("FILE:///etc/passwd", "file:///etc/passwd"),
            ("file:///etc//passwd", "file:///etc/passwd"),
            ("file:///etc/./passwd", "file:///etc/passwd"),
            ("file:///tmp/../etc/passwd", "file:///etc/passwd"),
            ("file:///tmp/x/../../etc/passwd", "file:///etc/passwd"),
            ("file:///%65tc/passwd", "file:///etc/passwd"),
            ("file:///tmp/%2e%2e/etc/passwd", "file:///etc/passwd"),
            ("HTTPS://Example.COM/A/b", "https://example.com/A/b"),
            (
                "https://User@Example.COM:8080/x",
                "https://User@example.com:8080/x",
            ),
            ("https://example.com", "https://example.com"),
            ("file:///etc/", "file:///etc/"),
            ("file:///etc/.", "file:///etc/"),
            ("file:///etc/x/..", "file:///etc/"),
            ("file:///", "file:///"),
            ("file:///a%25b", "file:///a%25b"),
            ("file:///a%3fb?q=%2F", "file:///a%3Fb?q=%2F"),
            ("file:///caf%C3%A9", "file:///café"),
            ("test://static/resource/1", "test://static/resource/1"),
            (
                "demo://resource/static/document/a.md",
                "demo://resource/static/document/a.md",
            ),
            ("urn:isbn:0451450523", "urn:isbn:0451450523"),
            ("file:/etc/passwd", "file:///etc/passwd"),
            ("file://localhost/etc/passwd", "file:///etc/passwd"),
            ("FILE://LocalHost/etc/passwd", "file:///etc/passwd"),
            ("file:////etc//passwd", "file:///etc/passwd"),
            ("file:/", "file:///"),
            ("file:///a?q=\\", "file:///a?q=\\"),
            (
                "https://example.com/a?b=\\#\\",
                "https://example.com/a?b=\\#\\",
            ),
            ("demo://x/a\\b", "demo://x/a\\b"),
            ("file:///a%5cb", "file:///a%5Cb"),
            ("demo://x/a%5cb", "demo://x/a\\b"),
            ("mailto:a@b.c", "mailto:a@b.c"),
        ];
        for (input, want) in cases {
            assert_eq!(n(input).as_deref(), Ok(want), "{input}");
        }
    }

    #[test]
    fn refuses_what_cannot_be_normalised() {
        let cases = [
            ("/etc/passwd", UriErrorKind::NoScheme),
            ("file://example.com/etc/passwd", UriErrorKind::FileHost),
            ("file:///etc/passwd ", UriErrorKind::EdgeSpace),
            (" file:///etc/passwd", UriErrorKind::EdgeSpace),
            ("file:///etc/passwd?x ", UriErrorKind::EdgeSpace),
            ("file://user@localhost/etc/passwd", UriErrorKind::FileHost),
            ("file://localhost:80/etc/passwd", UriErrorKind::FileHost),
            ("file:etc/passwd", UriErrorKind::FileRelative),
            ("file:", UriErrorKind::FileRelative),
            ("file://localhost", UriErrorKind::FileRelative),
            ("file://", UriErrorKind::FileRelative),
            ("file:?x", UriErrorKind::FileRelative),
            (
                "file:///srv/public\\..\\secret/key",
                UriErrorKind::Backslash,
            ),
            ("HTTPS://example.com/a\\..\\admin", UriErrorKind::Backslash),
            ("https://example.com\\evil.com/", UriErrorKind::Backslash),
            ("1file:///x", UriErrorKind::NoScheme),
            ("file:///%2e%2e/etc", UriErrorKind::AboveRoot),
            ("file:///../etc/passwd", UriErrorKind::AboveRoot),
            ("file:///a/../../b", UriErrorKind::AboveRoot),
            ("file:///etc%2Fpasswd", UriErrorKind::EncodedSlash),
            ("file:///etc%2fpasswd", UriErrorKind::EncodedSlash),
            ("file:///etc/pass%00wd", UriErrorKind::ControlChar),
            ("file:///etc/pass\nwd", UriErrorKind::ControlChar),
            ("file:///etc/%zz", UriErrorKind::BadPercent),
            ("file:///etc/%2", UriErrorKind::BadPercent),
            ("file:///%ff", UriErrorKind::NotUtf8),
            ("rel:../x", UriErrorKind::AboveRoot),
        ];
        for (input, kind) in cases {
            assert_eq!(n(input), Err(kind), "{input}");
        }
    }

    #[test]
    fn a_short_buffer_is_too_long_never_a_panic() {
        let mut buf = [0u8; 8];
        assert_eq!(
            normalize_into("file:///etc/passwd", &mut buf).map_err(|e| e.kind),
            Err(UriErrorKind::TooLong)
        );
    }

    #[test]
    fn globs_match_within_and_across_segments() {
        assert!(uri_glob_match("file:///etc/**", "file:///etc/passwd"));
        assert!(uri_glob_match(
            "file:///etc/**",
            "file:///etc/ssh/sshd_config"
        ));
        assert!(!uri_glob_match("file:///etc/**", "file:///etcetera"));
        assert!(uri_glob_match("file:///etc/*", "file:///etc/passwd"));
        assert!(!uri_glob_match(
            "file:///etc/*",
            "file:///etc/ssh/sshd_config"
        ));
        assert!(uri_glob_match(
            "file:///home/*/.ssh/**",
            "file:///home/ann/.ssh/id_ed25519"
        ));
        assert!(!uri_glob_match(
            "file:///home/*/.ssh/**",
            "file:///home/ann/x/.ssh/id"
        ));
        assert!(uri_glob_match("**.env", "file:///srv/app/.env"));
        assert!(uri_glob_match("*://**", "https://example.com/x"));
        assert!(!uri_glob_match("a*b", "ab/"));
        assert!(!uri_glob_match("ab*ba", "aba"), "prefix and suffix overlap");
        assert!(uri_glob_match("ab*ba", "abba"));
        assert!(uri_glob_match("exact", "exact"));
        assert!(!uri_glob_match("exact", "exact2"));
        assert!(uri_glob_match("**", ""));
        assert!(uri_glob_match("a*b*c", "aXbYc"));
        assert!(!uri_glob_match("a*b*c", "aX/bYc"));
        let long = "*".repeat(MAX_GLOB_LEN + 1);
        assert!(!uri_glob_match(&long, "x"));
    }

    /// The meaning of a URI glob, written as plainly as possible.
    fn glob_oracle(p: &[u8], s: &[u8]) -> bool {
        match p {
            [] => s.is_empty(),
            [b'*', b'*', rest @ ..] => (0..=s.len()).any(|i| glob_oracle(rest, &s[i..])),
            [b'*', rest @ ..] => (0..=s.len())
                .take_while(|&i| i == 0 || s[i - 1] != b'/')
                .any(|i| glob_oracle(rest, &s[i..])),
            [c, rest @ ..] => s.first() == Some(c) && glob_oracle(rest, &s[1..]),
        }
    }

    proptest::proptest! {
        #[test]
        fn glob_matches_its_oracle(p in "[ab/*]{0,8}", s in "[ab/]{0,10}") {
            proptest::prop_assert_eq!(uri_glob_match(&p, &s), glob_oracle(p.as_bytes(), s.as_bytes()));
        }

        /// Normalising is idempotent, at most two bytes longer than its
        /// input, and its result has no `.`/`..`/empty segment in the path.
        #[test]
        fn normalising_is_idempotent(
            scheme in "(file:|file://|file:///|file://localhost/|demo://|demo:///)",
            path in "(/|[a-c]|\\.|%2e|%41|%25|%2F|%5c|\\\\|%zz)*",
        ) {
            let uri = format!("{scheme}{path}");
            if let Ok(once) = normalize(&uri) {
                proptest::prop_assert!(once.len() <= uri.len() + 2);
                let twice = normalize(&once);
                proptest::prop_assert_eq!(twice.as_deref(), Ok(once.as_str()));
                let p = once.trim_start_matches("file://").trim_start_matches("demo://");
                for seg in p.split('/').skip(1) {
                    proptest::prop_assert!(seg != "." && seg != "..");
                }
                proptest::prop_assert!(!p.contains("//"));
            }
        }
    }

    proptest::proptest! {
        /// The fast paths decide as the general matcher does.
        #[test]
        fn fast_paths_agree_with_the_general_matcher(
            pattern in "[ab/*]{0,8}",
            uri in "[ab/]{0,10}",
        ) {
            proptest::prop_assert_eq!(
                uri_glob_match(&pattern, &uri),
                glob_states(pattern.as_bytes(), uri.as_bytes()),
                "{} {}", pattern, uri
            );
        }
    }
}
