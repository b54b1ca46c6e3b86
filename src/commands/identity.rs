//! Who calls through a proxy that validates no token: the local user
//! running it (`sub` = the OS user name, `iss` = `local`), or the claims of
//! `--principal-claims FILE` (development builds). Built once per process;
//! every session of the process lends it to its decisions (see
//! docs/cli.md, "Who is calling").

#[cfg(feature = "dynamic")]
use std::path::Path;

use portcullis_core::Principal;
#[cfg(feature = "dynamic")]
use portcullis_core::json::{self, Strictness};

/// The name of the user running this process: the system's user database
/// entry for the real uid (getpwuid_r), else `$USER`, else the uid in
/// decimal.
pub fn local_user_name() -> String {
    let uid = nix::unistd::getuid();
    if let Ok(Some(user)) = nix::unistd::User::from_uid(uid)
        && !user.name.is_empty()
    {
        return user.name;
    }
    match std::env::var("USER") {
        Ok(name) if !name.is_empty() => name,
        _ => uid.as_raw().to_string(),
    }
}

/// The local user's principal: claims `{"sub":<name>,"iss":"local"}`,
/// built by [`Principal::local`] (the name JSON-escaped, whatever it holds).
pub fn local_principal() -> Principal {
    Principal::local(&local_user_name())
}

/// What a claims file should hold, for error messages.
#[cfg(feature = "dynamic")]
const CLAIMS_HELP: &str = "the file holds one JSON object of claims with `sub` and `iss` strings, e.g. {\"sub\": \"alice\", \"iss\": \"https://idp.example.com\", \"groups\": [\"finance\"]}";

/// The principal of `--principal-claims FILE`. Err: the rendered error
/// (`error: ...`, the file, line and column with the source line and a
/// caret, and a help line), ready for stderr.
#[cfg(feature = "dynamic")]
pub fn principal_from_file(path: &Path) -> Result<Principal, String> {
    let name = path.display();
    let bytes = std::fs::read(path).map_err(|e| {
        format!(
            "error: cannot read the --principal-claims file {name}: {e}\n  = help: {CLAIMS_HELP}\n"
        )
    })?;
    if let Err(e) = json::validate(&bytes, Strictness::STRICT) {
        return Err(positioned(
            path,
            &bytes,
            e.offset,
            &format!(
                "the --principal-claims file is not one JSON object: {}",
                e.kind()
            ),
        ));
    }
    let start = bytes
        .iter()
        .position(|b| !b.is_ascii_whitespace())
        .unwrap_or(0);
    let principal = Principal::from_claims(bytes.clone()).map_err(|kind| {
        positioned(
            path,
            &bytes,
            start,
            &format!("the --principal-claims file makes no principal: {kind}"),
        )
    })?;
    for (claim, value) in [("sub", principal.sub()), ("iss", principal.iss())] {
        if value.is_empty() {
            let at = principal.claim(claim).map_or(start, |v| {
                start + offset_in(principal.claims().as_bytes(), v.as_bytes())
            });
            return Err(positioned(
                path,
                &bytes,
                at,
                &format!("the --principal-claims file has an empty `{claim}`"),
            ));
        }
    }
    Ok(principal)
}

/// Where `part` (a slice of `whole`) starts in `whole`.
#[cfg(feature = "dynamic")]
fn offset_in(whole: &[u8], part: &[u8]) -> usize {
    (part.as_ptr() as usize)
        .checked_sub(whole.as_ptr() as usize)
        .filter(|o| *o <= whole.len())
        .unwrap_or(0)
}

/// `error: MESSAGE`, then `--> FILE:LINE:COL`, the line and a caret under
/// the byte at `offset` (columns count characters, from 1), and the help.
#[cfg(feature = "dynamic")]
fn positioned(path: &Path, bytes: &[u8], offset: usize, message: &str) -> String {
    let offset = offset.min(bytes.len());
    let line_start = bytes[..offset]
        .iter()
        .rposition(|&b| b == b'\n')
        .map_or(0, |i| i + 1);
    let line_no = bytes[..line_start].iter().filter(|&&b| b == b'\n').count() + 1;
    let line_end = bytes[offset..]
        .iter()
        .position(|&b| b == b'\n')
        .map_or(bytes.len(), |i| offset + i);
    let before = String::from_utf8_lossy(&bytes[line_start..offset]);
    let col = before.chars().count() + 1;
    let text = String::from_utf8_lossy(&bytes[line_start..line_end]);
    let text = portcullis_proxy::log::printable(text.trim_end_matches('\r'));
    let indent: String = before
        .chars()
        .map(|c| if c == '\t' { '\t' } else { ' ' })
        .collect();
    let gutter = " ".repeat(line_no.to_string().len());
    format!(
        "error: {message}\n{gutter}--> {}:{line_no}:{col}\n{gutter} |\n{line_no} | {text}\n{gutter} | {indent}^\n{gutter} = help: {CLAIMS_HELP}\n",
        path.display()
    )
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_local_principal_escapes_any_name() {
        for name in [
            "alice",
            "bob \"the\" builder",
            "back\\slash",
            "new\nline\u{1}",
        ] {
            let p = Principal::local(name);
            assert_eq!((p.sub(), p.iss()), (name, "local"));
            assert!(p.scopes().is_empty());
        }
        let me = local_principal();
        assert!(!me.sub().is_empty());
        assert_eq!(me.iss(), "local");
    }

    #[test]
    #[cfg(feature = "dynamic")]
    fn errors_point_at_the_line_and_column() {
        let dir = std::env::temp_dir().join(format!("portcullis-claims-{}", std::process::id()));
        std::fs::create_dir_all(&dir).unwrap();
        let file = dir.join("c.json");
        std::fs::write(
            &file,
            "{\n  \"sub\": \"a\",\n  \"iss\": \"i\",\n  \"sub\": \"b\"\n}\n",
        )
        .unwrap();
        let err = principal_from_file(&file).unwrap_err();
        assert!(
            err.starts_with(
                "error: the --principal-claims file is not one JSON object: duplicate object key\n"
            ),
            "{err}"
        );
        assert!(
            err.contains(&format!("--> {}:4:3\n", file.display())),
            "{err}"
        );
        assert!(err.contains("4 |   \"sub\": \"b\"\n  |   ^\n"), "{err}");
        std::fs::write(&file, "{\"sub\": \"\", \"iss\": \"i\"}").unwrap();
        let err = principal_from_file(&file).unwrap_err();
        assert!(err.contains("empty `sub`"), "{err}");
        assert!(err.contains(":1:9\n"), "{err}");
        std::fs::write(
            &file,
            "{\"sub\": \"a\", \"iss\": \"i\", \"groups\": [\"x\"]}",
        )
        .unwrap();
        let p = principal_from_file(&file).unwrap();
        assert_eq!((p.sub(), p.iss()), ("a", "i"));
        let _ = std::fs::remove_dir_all(&dir);
    }
}
