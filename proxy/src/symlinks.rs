//! Symlinks of `file://` resources (docs/surfaces.md, "Symlinks"): when the
//! proxy starts the server itself (`-- CMD`, over stdio or as per-session
//! children over HTTP), the server reads the same filesystem the proxy
//! sees, so the proxy can ask the filesystem what a `file://` URI really
//! names. A read is then decided on the URI as sent (normalised) and on the
//! path it resolves to (`std::fs::canonicalize`): denied if either is.
//!
//! This is I/O on the decision path (a `stat` per path component), done
//! only for `resources/read` and `resources/subscribe` of `file://` URIs
//! with a local authority, only when the policy governs resources; never
//! for `--upstream URL`, whose server may see another filesystem.

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
/// escapes normalisation keeps (`%25`, `%3F`, `%23`) decoded.
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
            .replace("%25", "%"),
    )
}

/// A path as the normalised `file://` URI that names it (`%`, `?` and `#`
/// escaped as normalisation keeps them); None when the path is not UTF-8
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
            c => uri.push(c),
        }
    }
    if trailing_slash && !uri.ends_with('/') {
        uri.push('/');
    }
    normalize(&uri).ok()
}

/// Resolves `uri` (normalised) on this machine's filesystem.
pub fn resolve(uri: &str) -> Resolved {
    let Some(path) = local_path(uri) else {
        return Resolved::Same;
    };
    match std::fs::canonicalize(&path) {
        Ok(real) => match file_uri(&real, path.ends_with('/')) {
            Some(r) if r == uri => Resolved::Same,
            Some(r) => Resolved::Other(r),
            None => Resolved::Unresolvable(format!(
                "it resolves to a path no URI names ({})",
                real.display()
            )),
        },
        Err(e) if e.kind() == ErrorKind::NotFound => Resolved::Same,
        Err(e) => Resolved::Unresolvable(e.to_string()),
    }
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
