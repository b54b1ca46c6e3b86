//! Symlinks of `file://` resources (docs/surfaces.md, "Symlinks"): when the
//! proxy starts the server itself (`-- CMD`, over stdio or as per-session
//! children over HTTP), the server reads the same filesystem the proxy
//! sees, so the proxy can ask the filesystem what a `file://` URI really
//! names. A read is then decided on the URI as sent (normalised) and on the
//! path it resolves to: the path as sent walked the way the kernel opens it
//! (a `..` after a symlink applies to the link's target, as `realpath`
//! and `open(2)` apply it), denied if either is.
//!
//! Tool calls get the same for the arguments `path()` conditions read
//! ([`resolve_call`]): a call is decided again on the resolved values.
//!
//! This is I/O on the decision path (a `stat` per path component), done
//! only for `resources/read` and `resources/subscribe` of `file://` URIs
//! with a local authority, only when the policy governs resources, and for
//! the `path()` arguments of a tool call the first decision allows; never
//! for `--upstream URL`, whose server may see another filesystem. It runs
//! where the decision runs, on the event loop unless the decision itself
//! may block: a few `lstat`s on a local filesystem cost less than the hop
//! to the blocking pool would, and the proxy's filesystem is the one the
//! server it started reads (a hung network mount would hang that server
//! too).

use std::io::ErrorKind;

use portcullis_core::uri::normalize;

/// What the filesystem says a normalised `file://` URI names.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Resolved {
    /// Nothing to add: not a local `file://` URI, a path that does not
    /// exist (the server cannot read it either), or a path without links.
    Same,
    /// The path resolves elsewhere: its normalised `file://` URI.
    Other(String),
    /// Resolving failed otherwise (permissions, a loop, a file where a
    /// directory was expected, a target that is not UTF-8): fail closed.
    Unresolvable(String),
}

/// The local filesystem path of a normalised `file://` URI (authority empty
/// or `localhost`; the query and fragment are not part of it): the
/// escapes normalisation keeps (`%25`, `%3F`, `%23`, `%5C`) decoded.
fn local_path(uri: &str) -> Option<String> {
    let rest = uri.strip_prefix("file://")?;
    let slash = rest.find('/')?;
    if !matches!(&rest[..slash], "" | "localhost") {
        return None;
    }
    let path = &rest[slash..];
    let path = &path[..path.find(['?', '#']).unwrap_or(path.len())];
    Some(
        path.replace("%3F", "?")
            .replace("%23", "#")
            .replace("%5C", "\\")
            .replace("%25", "%"),
    )
}

/// A path as the normalised `file://` URI that names it (`%`, `?`, `#` and
/// `\\` escaped as normalisation keeps them); None when the path is not UTF-8
/// or holds a control character (no URI the policy reads names it).
fn file_uri(path: &std::path::Path, trailing_slash: bool) -> Option<String> {
    let p = path.to_str()?;
    if p.bytes().any(|b| b < 0x20 || b == 0x7f) {
        return None;
    }
    let mut uri = String::with_capacity(p.len() + 8);
    uri.push_str("file://");
    for c in p.chars() {
        match c {
            '%' => uri.push_str("%25"),
            '?' => uri.push_str("%3F"),
            '#' => uri.push_str("%23"),
            '\\' => uri.push_str("%5C"),
            c => uri.push(c),
        }
    }
    if trailing_slash && !uri.ends_with('/') {
        uri.push('/');
    }
    normalize(&uri).ok()
}

/// The local path a `file://` URI names as a server that takes the URI
/// apart and opens its path reads it: scheme `file:` (any case), authority
/// empty or `localhost`, the path up to the query or fragment with every
/// percent-escape decoded, `.` and `..` as written (the kernel applies a
/// `..` to the directory a symlink led to, not to the link). None when the
/// URI is not such a URI or does not decode to UTF-8.
fn sent_path(uri: &str) -> Option<String> {
    let scheme = uri.get(..5)?;
    if !scheme.eq_ignore_ascii_case("file:") {
        return None;
    }
    let rest = &uri[5..];
    let rest = match rest.strip_prefix("//") {
        Some(r) => {
            let slash = r.find(['/', '?', '#']).unwrap_or(r.len());
            if !(r[..slash].is_empty() || r[..slash].eq_ignore_ascii_case("localhost")) {
                return None;
            }
            &r[slash..]
        }
        None => rest,
    };
    let path = &rest[..rest.find(['?', '#']).unwrap_or(rest.len())];
    let b = path.as_bytes();
    let mut out = Vec::with_capacity(b.len());
    let mut i = 0;
    while i < b.len() {
        let hex = |c: u8| (c as char).to_digit(16);
        match (
            b[i],
            b.get(i + 1).copied().and_then(hex),
            b.get(i + 2).copied().and_then(hex),
        ) {
            (b'%', Some(h), Some(l)) => {
                out.push((h * 16 + l) as u8);
                i += 3;
            }
            (c, _, _) => {
                out.push(c);
                i += 1;
            }
        }
    }
    String::from_utf8(out).ok()
}

/// Resolves a read of `uri` (the URI as sent) on this machine's
/// filesystem: its path is walked as the server's `open(2)` would walk it
/// (links followed, a `..` applied to where a link led) and the
/// result compared with the URI's normalisation, which the first decision
/// read. A path that does not exist resolves as far as it exists, the rest
/// appended.
pub fn resolve(uri: &str) -> Resolved {
    let Ok(normalised) = normalize(uri) else {
        // Refused before any resolving (the request) or not a resource
        // URI the policy names (a listed entry): nothing to add.
        return Resolved::Same;
    };
    let (Some(lexical), Some(sent)) = (local_path(&normalised), sent_path(uri)) else {
        return Resolved::Same;
    };
    let real = match walk_both(&sent, &lexical) {
        Ok(real) => real,
        Err(e) => return Resolved::Unresolvable(e),
    };
    match file_uri(&real, lexical.ends_with('/')) {
        Some(r) if r == normalised => Resolved::Same,
        Some(r) => Resolved::Other(r),
        None => Resolved::Unresolvable(format!(
            "it resolves to a path no URI names ({})",
            real.display()
        )),
    }
}

/// Most symlinks followed resolving one path (Linux's own limit, `ELOOP`).
const MAX_LINKS: usize = 40;

/// Walks the absolute `path` component by component as the kernel does
/// when a server opens it as given: empty and `.` components skipped, a
/// symlink replaced by its target (a dangling one too: writing through it
/// creates the target), and a `..` applied to the directory reached so far,
/// so `public/link/../key.txt` with `link -> ../secret/sub` is
/// `secret/key.txt`, where `open(2)` and `realpath` land, not the lexical
/// `public/key.txt`. Once a component does not exist, the rest is appended
/// as written (`write_file` of a new file), a `..` there undoing the
/// missing component before it. Refused: a loop (more than 40 links), a
/// permission error, a file with more after it. A `..` at the root stays
/// at the root, as in the kernel.
fn walk(path: &str) -> Result<std::path::PathBuf, String> {
    use std::path::{Component, Path, PathBuf};
    // What is left to walk, outermost component last (popped first).
    let mut todo: Vec<std::ffi::OsString> = path
        .split('/')
        .rev()
        .filter(|c| !c.is_empty() && *c != ".")
        .map(Into::into)
        .collect();
    let mut real = PathBuf::from("/");
    let mut links = 0;
    while let Some(name) = todo.pop() {
        if name == ".." {
            real.pop();
            continue;
        }
        let next = real.join(&name);
        match std::fs::symlink_metadata(&next) {
            Ok(m) if m.file_type().is_symlink() => {
                links += 1;
                if links > MAX_LINKS {
                    return Err(format!(
                        "too many levels of symbolic links at {}",
                        next.display()
                    ));
                }
                let target = std::fs::read_link(&next).map_err(|e| e.to_string())?;
                if target.is_absolute() {
                    real = PathBuf::from("/");
                }
                todo.extend(
                    Path::new(&target)
                        .components()
                        .rev()
                        .filter_map(|c| match c {
                            Component::Normal(n) => Some(n.to_os_string()),
                            Component::ParentDir => Some("..".into()),
                            _ => None,
                        }),
                );
            }
            Ok(m) => {
                if !m.is_dir() && !todo.is_empty() {
                    return Err(format!("{} is not a directory", next.display()));
                }
                real = next;
            }
            Err(e) if e.kind() == ErrorKind::NotFound => {
                // A name that is not there may be another Unicode spelling
                // of one that is: @modelcontextprotocol/server-filesystem
                // then reads the entry whose NFC form is the name's (and on
                // through it, links included). Walk on through that entry;
                // two candidates are refused.
                if let Some(entry) = nfc_equal_entry(&real, &name)? {
                    todo.push(entry);
                    continue;
                }
                // Nothing more exists: the rest is created as written. A
                // `..` here undoes a component that does not exist (no link
                // to see through): the kernel refuses such a path, servers
                // that normalise first read it so.
                real = next;
                while let Some(rest) = todo.pop() {
                    if rest == ".." {
                        real.pop();
                    } else {
                        real.push(rest);
                    }
                }
            }
            Err(e) => return Err(format!("{}: {e}", next.display())),
        }
    }
    Ok(real)
}

/// Walks `sent` (as the kernel opens it) and `lexical` (its lexical
/// normalisation, what a server that normalises first, like Node's
/// `path.resolve` + `fs.realpath`, opens): the same file, or an error. A
/// `..` after a symlink (or after a missing component followed by a link)
/// makes them differ: `public/link/../x` with `link -> ../other/inner` is
/// `other/x` to `open(2)` and `public/x` (itself perhaps a link) to a
/// normalising server. Which one a server reads is its own business, so
/// such a path is refused rather than decided on one of them.
fn walk_both(sent: &str, lexical: &str) -> Result<std::path::PathBuf, String> {
    let kernel = walk(sent)?;
    if sent == lexical {
        return Ok(kernel);
    }
    let normalised = walk(lexical)?;
    if kernel != normalised {
        return Err(format!(
            "it names two files: {} as the kernel opens it, {} once normalised (a `..` after a symbolic link)",
            kernel.display(),
            normalised.display()
        ));
    }
    Ok(kernel)
}

/// The entry of `dir` whose name's NFC form is `name`'s, when `name` is
/// not ASCII and is not itself there (checked by the caller): None when no
/// entry is, an error when more than one is (or the directory cannot be
/// read). Names that are not UTF-8 never match.
fn nfc_equal_entry(
    dir: &std::path::Path,
    name: &std::ffi::OsStr,
) -> Result<Option<std::ffi::OsString>, String> {
    use unicode_normalization::UnicodeNormalization;
    let Some(name) = name.to_str().filter(|n| !n.is_ascii()) else {
        return Ok(None);
    };
    let want: String = name.nfc().collect();
    let entries = match std::fs::read_dir(dir) {
        Ok(entries) => entries,
        Err(e) if e.kind() == ErrorKind::NotFound => return Ok(None),
        Err(e) => return Err(format!("{}: {e}", dir.display())),
    };
    let mut found = None;
    for entry in entries {
        let entry = entry.map_err(|e| format!("{}: {e}", dir.display()))?;
        let file_name = entry.file_name();
        let Some(other) = file_name.to_str() else {
            continue;
        };
        // The name itself (listed, yet not found by lstat: a race) is no
        // other spelling; walking it again would loop.
        if other.is_ascii() || other == name || !other.nfc().eq(want.chars()) {
            continue;
        }
        if found.is_some() {
            return Err(format!(
                "{} has more than one entry spelling {name:?} in Unicode",
                dir.display()
            ));
        }
        found = Some(file_name);
    }
    Ok(found)
}

/// Resolves a path argument of a tool call (a `path()` slot, see
/// [`portcullis_core::policy::Policy::path_args`]) on this machine's
/// filesystem as the server's `open(2)` of the value as sent would
/// (the private `walk`): every symlink followed, a `..` applied to where a link led,
/// and for a path that does not exist yet the missing rest appended. So
/// `write_file` of `/root/public/link/new.txt`, `link -> ../secret`, is
/// `/root/secret/new.txt`, and `/root/public/link/../key.txt`,
/// `link -> ../secret/sub`, is `/root/secret/key.txt`.
///
/// `Same` when the result is the value as sent; `Unresolvable` for a path
/// that cannot be normalised (relative, a NUL or other control character,
/// `..` above the root), one whose `..` follows a link (it names two files,
/// see `walk_both`), a loop (more than 40 links), a permission error, a component that
/// is a file with more after it, or a target that is not UTF-8: the call is
/// refused.
pub fn resolve_path(path: &str) -> Resolved {
    let lexical = match portcullis_core::path::normalize(path) {
        Ok(p) => p,
        Err(e) => return Resolved::Unresolvable(e.kind.to_string()),
    };
    let real = match walk_both(path, &lexical) {
        Ok(real) => real,
        Err(e) => return Resolved::Unresolvable(e),
    };
    let Some(text) = real.to_str() else {
        return Resolved::Unresolvable(format!(
            "it resolves to a path that is not UTF-8 ({})",
            real.display()
        ));
    };
    if text.bytes().any(|b| b < 0x20 || b == 0x7f) {
        return Resolved::Unresolvable(format!(
            "it resolves to a path with a control character ({})",
            real.display()
        ));
    }
    // Compared with the value as sent, not its normalisation: a spelling
    // (`//`, `./`) is decided again on the one path it names, so a limit
    // `by args.path` counts every spelling of a file against that file.
    if text == path {
        Resolved::Same
    } else {
        Resolved::Other(text.to_string())
    }
}

/// One path argument a call is decided on again, resolved.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Rewrite {
    /// The argument as policies write it (`args.path`).
    pub slot: String,
    /// The value as sent (decoded).
    pub sent: String,
    /// What it resolves to.
    pub resolved: String,
    /// Where the string's body (between its quotes) is in the arguments text.
    pub span: std::ops::Range<usize>,
}

/// What resolving a tool call's path arguments found.
#[derive(Debug)]
pub enum CallResolved {
    /// No argument resolves elsewhere.
    Same,
    /// Some do: the arguments text with those values rewritten (each
    /// string's body replaced, JSON-escaped; keys as sent), and what was
    /// rewritten.
    Other(Vec<u8>, Vec<Rewrite>),
    /// An argument cannot be resolved (which, the value, why): fail closed.
    Unresolvable(String, String, String),
}

/// Resolves the string arguments `slots` names (see
/// [`portcullis_core::policy::Policy::path_args`]) in `call`; an argument
/// that is absent or not a string is left to the decision (its `path()`
/// tests already refuse it or read it as missing).
pub fn resolve_call(call: &portcullis_core::ToolCall<'_>, slots: &[Vec<String>]) -> CallResolved {
    use portcullis_core::json::Val;
    let args = call.arguments().as_bytes();
    let mut rewrites: Vec<Rewrite> = Vec::new();
    for slot in slots {
        let segs: Vec<&str> = slot.iter().map(String::as_str).collect();
        let Some(Val::Str(s)) = call.arg(&segs) else {
            continue;
        };
        let raw = s.raw_bytes();
        let start = (raw.as_ptr() as usize).wrapping_sub(args.as_ptr() as usize);
        if start > args.len() || args.len() - start < raw.len() {
            // Not inside the arguments text (cannot happen for a parsed call).
            return CallResolved::Unresolvable(
                format!("args.{}", slot.join(".")),
                String::new(),
                "the argument is not where it was read".into(),
            );
        }
        let sent: String = s.chars().collect();
        let slot_name = format!("args.{}", slot.join("."));
        match resolve_path(&sent) {
            Resolved::Same => {}
            Resolved::Unresolvable(why) => {
                return CallResolved::Unresolvable(slot_name, sent, why);
            }
            Resolved::Other(resolved) => {
                if !rewrites.iter().any(|r| r.span.start == start) {
                    rewrites.push(Rewrite {
                        slot: slot_name,
                        sent,
                        resolved,
                        span: start..start + raw.len(),
                    });
                }
            }
        }
    }
    if rewrites.is_empty() {
        return CallResolved::Same;
    }
    rewrites.sort_by_key(|r| r.span.start);
    let mut out = Vec::with_capacity(args.len() + 64);
    let mut at = 0;
    for r in &rewrites {
        out.extend_from_slice(&args[at..r.span.start]);
        // push_json_str writes the quotes too; the body goes between the sent ones.
        let mut quoted = Vec::with_capacity(r.resolved.len() + 2);
        portcullis_core::json::push_json_str(&mut quoted, &r.resolved);
        out.extend_from_slice(&quoted[1..quoted.len() - 1]);
        at = r.span.end;
    }
    out.extend_from_slice(&args[at..]);
    CallResolved::Other(out, rewrites)
}

/// What a refusal decided on resolved arguments says after the rule's
/// message: ` (args.path "/root/public/link/x" resolves to "/root/secret/x")`.
pub fn note(rewrites: &[Rewrite]) -> String {
    let parts: Vec<String> = rewrites
        .iter()
        .map(|r| {
            format!(
                "{} {} resolves to {}",
                r.slot,
                portcullis_core::policy::go_quote(&r.sent),
                portcullis_core::policy::go_quote(&r.resolved)
            )
        })
        .collect();
    format!(" ({})", parts.join("; "))
}

/// The refusal of a tool call denied on its resolved arguments: the rule's
/// message and what resolved to what ([`note`]), as an `isError` result like
/// every denial (`respond::denial`), the decision in `_meta`.
pub fn denial(
    id: &[u8],
    tool: &str,
    decision: &portcullis_core::policy::Decision,
    meta: &portcullis_core::policy::PolicyMeta,
    note: &str,
) -> Vec<u8> {
    use portcullis_core::json::push_json_str;
    let mut out = Vec::with_capacity(320);
    out.extend_from_slice(b"{\"jsonrpc\":\"2.0\",\"id\":");
    out.extend_from_slice(id);
    out.extend_from_slice(b",\"result\":{\"content\":[{\"type\":\"text\",\"text\":");
    let text = format!(
        "{}{}{note}",
        crate::respond::DENY_PREFIX,
        decision.message(tool)
    );
    push_json_str(&mut out, &text);
    out.extend_from_slice(b"}],\"isError\":true,\"_meta\":{");
    crate::respond::push_decision_meta(&mut out, meta, "tool", tool, decision);
    out.extend_from_slice(b"}}}");
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    fn dir(name: &str) -> std::path::PathBuf {
        let d =
            std::env::temp_dir().join(format!("portcullis-symlinks-{name}-{}", std::process::id()));
        let _ = std::fs::remove_dir_all(&d);
        std::fs::create_dir_all(&d).unwrap();
        std::fs::canonicalize(&d).unwrap()
    }

    fn uri(p: &std::path::Path) -> String {
        file_uri(p, false).unwrap()
    }

    #[test]
    fn links_resolve_to_their_targets() {
        let d = dir("links");
        std::fs::create_dir_all(d.join("secret")).unwrap();
        std::fs::create_dir_all(d.join("public")).unwrap();
        std::fs::write(d.join("secret/key.txt"), "k").unwrap();
        std::fs::write(d.join("public/a 100%.txt"), "a").unwrap();
        std::os::unix::fs::symlink("../secret", d.join("public/dir")).unwrap();
        std::os::unix::fs::symlink("../secret/key.txt", d.join("public/key")).unwrap();
        let target = uri(&d.join("secret/key.txt"));
        assert_eq!(
            resolve(&uri(&d.join("public/key"))),
            Resolved::Other(target.clone())
        );
        assert_eq!(
            resolve(&format!("{}/key.txt", uri(&d.join("public/dir")))),
            Resolved::Other(target.clone())
        );
        // A directory keeps its trailing slash.
        assert_eq!(
            resolve(&format!("{}/", uri(&d.join("public/dir")))),
            Resolved::Other(format!("{}/", uri(&d.join("secret"))))
        );
        // No link on the way, or nothing there: nothing to add.
        assert_eq!(resolve(&target), Resolved::Same);
        let escaped = uri(&d.join("public/a 100%.txt"));
        assert!(escaped.ends_with("/a 100%25.txt"), "{escaped}");
        assert_eq!(resolve(&escaped), Resolved::Same);
        assert_eq!(resolve(&format!("{target}.missing")), Resolved::Same);
        // Not a local file URI.
        assert_eq!(resolve("file://example.com/etc/passwd"), Resolved::Same);
        assert_eq!(resolve("https://example.com/x"), Resolved::Same);
        // A path through a file fails closed.
        assert!(matches!(
            resolve(&format!("{target}/x")),
            Resolved::Unresolvable(_)
        ));
        // So does a loop.
        std::os::unix::fs::symlink("loop", d.join("loop")).unwrap();
        assert!(matches!(
            resolve(&uri(&d.join("loop"))),
            Resolved::Unresolvable(_)
        ));
        let _ = std::fs::remove_dir_all(&d);
    }

    /// `..` after a symlinked directory (found in review): the kernel (and
    /// `realpath`) apply it to the link's target: `public/link/../key.txt`,
    /// `link -> ../secret/sub`, opens `secret/key.txt`, a server that
    /// normalises first the lexical `public/key.txt`.
    #[test]
    fn a_dotdot_after_a_link_is_applied_to_the_target() {
        let d = dir("dotdot");
        let root = d.to_str().unwrap().to_string();
        std::fs::create_dir_all(d.join("secret/sub")).unwrap();
        std::fs::create_dir_all(d.join("public")).unwrap();
        std::fs::write(d.join("secret/key.txt"), "k").unwrap();
        std::os::unix::fs::symlink("../secret/sub", d.join("public/link")).unwrap();
        let sent = format!("{root}/public/link/../key.txt");
        // What the server's open(2) reaches.
        let real = std::fs::canonicalize(&sent).unwrap();
        assert_eq!(real, d.join("secret/key.txt"));
        // A server that normalises first reads `public/key.txt` (missing
        // here): two files, refused.
        match resolve_path(&sent) {
            Resolved::Unresolvable(e) => assert!(e.contains("names two files"), "{e}"),
            other => panic!("{sent:?} opens {real:?}: {other:?}"),
        }
        // When both readings reach one file (`public/key.txt` a link to
        // it), the call is decided again on that file.
        std::os::unix::fs::symlink("../secret/key.txt", d.join("public/key.txt")).unwrap();
        let got = resolve_path(&sent);
        let _ = std::fs::remove_dir_all(&d);
        assert_eq!(got, Resolved::Other(format!("{root}/secret/key.txt")));
    }

    /// The same walks for `file://` reads: a URI's path is opened as sent
    /// by a server that takes it apart (no URL normalisation), so a `..`
    /// (or `%2e%2e`) after a link applies to the link's target; a server
    /// that normalises first reads the lexical path. Refused when the two
    /// differ, decided on the one file when they agree.
    #[test]
    fn a_uri_dotdot_after_a_link_is_applied_to_the_target() {
        let d = dir("uri-dotdot");
        std::fs::create_dir_all(d.join("secret/sub")).unwrap();
        std::fs::create_dir_all(d.join("public")).unwrap();
        std::fs::write(d.join("secret/key.txt"), "k").unwrap();
        std::os::unix::fs::symlink("../secret/sub", d.join("public/link")).unwrap();
        let link = uri(&d.join("public/link"));
        let target = Resolved::Other(uri(&d.join("secret/key.txt")));
        // Normalised first, `public/key.txt` (missing): two files, refused.
        assert!(
            matches!(resolve(&format!("{link}/../key.txt")), Resolved::Unresolvable(e) if e.contains("names two files"))
        );
        std::os::unix::fs::symlink("../secret/key.txt", d.join("public/key.txt")).unwrap();
        for sent in [
            format!("{link}/../key.txt"),
            format!("{link}/%2e%2E/key.txt"),
            format!("{link}/./../key.txt"),
            format!("{link}//../key.txt"),
            format!(
                "FILE://LocalHost{}",
                format!("{link}/../key.txt").trim_start_matches("file://")
            ),
        ] {
            assert_eq!(resolve(&sent), target, "{sent}");
        }
        // Without a link before it, `..` is what normalisation made of it.
        assert_eq!(
            resolve(&format!("{}/sub/../key.txt", uri(&d.join("secret")))),
            Resolved::Same
        );
        let _ = std::fs::remove_dir_all(&d);
    }

    /// A name that is missing but NFC-equal to an entry is walked through
    /// that entry (as server-filesystem reads it); two such entries are
    /// refused.
    #[test]
    fn another_unicode_spelling_is_walked_through_the_entry_it_names() {
        let d = dir("nfc");
        let root = d.to_str().unwrap().to_string();
        std::fs::create_dir_all(d.join("s\u{e9}cret")).unwrap();
        std::fs::write(d.join("s\u{e9}cret/key.txt"), "k").unwrap();
        assert_eq!(
            resolve_path(&format!("{root}/se\u{301}cret/key.txt")),
            Resolved::Other(format!("{root}/s\u{e9}cret/key.txt"))
        );
        // A new file under another spelling lands in the existing directory.
        assert_eq!(
            resolve_path(&format!("{root}/se\u{301}cret/new.txt")),
            Resolved::Other(format!("{root}/s\u{e9}cret/new.txt"))
        );
        // Two entries spelling one name (NFC and a third form): refused.
        std::fs::create_dir_all(d.join("A\u{30a}")).unwrap();
        std::fs::create_dir_all(d.join("\u{c5}")).unwrap();
        assert!(matches!(
            resolve_path(&format!("{root}/\u{212b}/x")),
            Resolved::Unresolvable(e) if e.contains("more than one entry")
        ));
        let _ = std::fs::remove_dir_all(&d);
    }

    #[test]
    fn path_arguments_resolve_through_links_even_when_missing() {
        let d = dir("args");
        let root = d.to_str().unwrap().to_string();
        std::fs::create_dir_all(d.join("secret")).unwrap();
        std::fs::create_dir_all(d.join("public")).unwrap();
        std::fs::write(d.join("secret/key.txt"), "k").unwrap();
        std::os::unix::fs::symlink("../secret", d.join("public/link")).unwrap();
        std::os::unix::fs::symlink(d.join("secret/new.txt"), d.join("public/dangling")).unwrap();
        let other = |p: &str| Resolved::Other(format!("{root}/{p}"));
        // An existing file through a linked directory.
        assert_eq!(
            resolve_path(&format!("{root}/public/link/key.txt")),
            other("secret/key.txt")
        );
        // A missing tail under a link: the existing part resolved, the rest appended.
        assert_eq!(
            resolve_path(&format!("{root}/public/link/newdir/new.txt")),
            other("secret/newdir/new.txt")
        );
        // A dangling link: writing through it creates its target.
        assert_eq!(
            resolve_path(&format!("{root}/public/dangling")),
            other("secret/new.txt")
        );
        // Lexical spellings without links are decided again on the path
        // they name (a limit by the path counts every spelling once).
        assert_eq!(
            resolve_path(&format!("{root}/public//./x/../a.txt")),
            other("public/a.txt")
        );
        assert_eq!(
            resolve_path(&format!("{root}/public/missing/a.txt")),
            Resolved::Same
        );
        // A loop, a path through a file, NUL, relative: fail closed.
        std::os::unix::fs::symlink("loop", d.join("public/loop")).unwrap();
        for bad in [
            format!("{root}/public/loop"),
            format!("{root}/public/loop/new.txt"),
            format!("{root}/secret/key.txt/x"),
            format!("{root}/public/a\u{0}b"),
            "relative/path".to_string(),
        ] {
            assert!(
                matches!(resolve_path(&bad), Resolved::Unresolvable(_)),
                "{bad:?}: {:?}",
                resolve_path(&bad)
            );
        }
        let _ = std::fs::remove_dir_all(&d);
    }

    #[test]
    fn resolved_arguments_are_rewritten_in_place_as_valid_json() {
        let d = dir("rewrite");
        let root = d.to_str().unwrap().to_string();
        std::fs::create_dir_all(d.join("se\"cret")).unwrap();
        std::fs::create_dir_all(d.join("public")).unwrap();
        std::os::unix::fs::symlink("../se\"cret", d.join("public/link")).unwrap();
        let sent = format!("{root}/public/link/new.txt");
        let mut args = Vec::new();
        args.extend_from_slice(b"{\"PATH\": ");
        portcullis_core::json::push_json_str(&mut args, &sent);
        args.extend_from_slice(b", \"other\": {\"path\": \"/x\"}, \"n\": 1}");
        let call = portcullis_core::ToolCall::new(
            "write_file",
            &args,
            portcullis_core::json::Strictness::STRICT,
        )
        .unwrap();
        let slots = vec![
            vec!["path".to_string()],
            vec!["other".into(), "path".into()],
        ];
        let CallResolved::Other(out, rewrites) = resolve_call(&call, &slots) else {
            panic!("resolved elsewhere")
        };
        assert_eq!(rewrites.len(), 1);
        assert_eq!(rewrites[0].slot, "args.path");
        let v: serde_json::Value = serde_json::from_slice(&out).expect("valid JSON");
        // The key as sent, the value resolved (its quote escaped), the rest untouched.
        assert_eq!(v["PATH"], format!("{root}/se\"cret/new.txt"));
        assert_eq!(v["other"]["path"], "/x");
        assert_eq!(v["n"], 1);
        assert!(
            note(&rewrites).contains("resolves to"),
            "{}",
            note(&rewrites)
        );
        let _ = std::fs::remove_dir_all(&d);
    }

    #[test]
    fn local_paths_decode_what_normalisation_keeps_escaped() {
        assert_eq!(
            local_path("file:///a%25b%3Fc%23d?q#f").as_deref(),
            Some("/a%b?c#d")
        );
        assert_eq!(local_path("file://localhost/etc").as_deref(), Some("/etc"));
        assert_eq!(local_path("file://host/etc"), None);
        assert_eq!(local_path("file:relative"), None);
    }
}
