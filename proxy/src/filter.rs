//! Removing hidden tools from `tools/list` results.
//!
//! Only the `tools` array is rewritten: every other byte of the response
//! (`nextCursor`, `_meta`, unknown members, number spellings, key order) is
//! copied unchanged, and so is every kept tool definition.

use portcullis_core::json::{JStr, Outline, Strictness, Val, Value, validate_outline};

portcullis_core::error_kinds! {
    /// What is wrong with a `tools/list` response the proxy cannot filter.
    pub enum FilterErrorKind {
        /// Duplicate or case-variant members where they decide what the client sees.
        AmbiguousMembers => "tools/list response has ambiguous members",
        /// Not exactly one JSON value.
        NotJson => "tools/list response is not valid JSON",
        /// JSON, but not an object.
        NotAnObject => "tools/list response is not a JSON object",
        /// `result` is not an object.
        ResultNotObject => "tools/list result is not an object",
        /// `result.tools` is not an array.
        ToolsNotArray => "tools/list result.tools is not an array",
    }
}

/// Why a `tools/list` response could not be filtered. The proxy must not
/// forward such a response (it may list hidden tools): it answers the client
/// with an error instead (`session::UPSTREAM_BAD_ANSWER` whatever the kind:
/// the fault is the server's).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct FilterError(FilterErrorKind);

impl FilterError {
    /// What is wrong.
    pub const fn kind(&self) -> FilterErrorKind {
        self.0
    }
}

impl std::fmt::Display for FilterError {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        std::fmt::Display::fmt(&self.0, f)
    }
}

impl std::error::Error for FilterError {}

/// How strictly a server's answer is read: well-formed, and unambiguous
/// members in the envelope and in `result` (what decides which tools a
/// client sees); deep nesting is fine (tool schemas nest).
pub const SERVER_ANSWER: Strictness = Strictness {
    key_check_depth: 2,
    max_depth: 1024,
    ..Strictness::STRICT
};

/// Filters one `tools/list` response.
///
/// - `Ok(None)`: forward the original bytes (nothing hidden, or an error response);
/// - `Ok(Some(bytes))`: forward these instead;
/// - `Err(_)`: the response is ambiguous or malformed; do not forward it.
///
/// A tool entry whose `name` is missing, not a string, or ambiguous
/// (duplicate or case-variant `name` keys) is dropped: it cannot be shown to be visible.
pub fn filter_tools_list(
    response: &[u8],
    hidden: impl Fn(&str) -> bool,
) -> Result<Option<Vec<u8>>, FilterError> {
    let outline = validate_outline(response, SERVER_ANSWER).map_err(|e| {
        FilterError(if e.kind().is_ambiguous_key() {
            FilterErrorKind::AmbiguousMembers
        } else {
            FilterErrorKind::NotJson
        })
    })?;
    filter_outlined(response, &outline, hidden)
}

/// [`filter_tools_list`] for a response already validated under
/// [`SERVER_ANSWER`], with its outline: no second validation pass.
pub fn filter_outlined(
    response: &[u8],
    outline: &Outline,
    hidden: impl Fn(&str) -> bool,
) -> Result<Option<Vec<u8>>, FilterError> {
    filter_array(response, outline, "tools", "name", hidden)
}

/// Filters any list answer the same way: the entries of `result.<array>`
/// whose `<key>` member is hidden are removed (`resources` by `uri`,
/// `resourceTemplates` by `uriTemplate`, `prompts` by `name`); `outline`
/// when the answer was already validated under [`SERVER_ANSWER`].
pub fn filter_member_list(
    response: &[u8],
    outline: Option<&Outline>,
    array: &str,
    key: &str,
    hidden: impl Fn(&str) -> bool,
) -> Result<Option<Vec<u8>>, FilterError> {
    match outline {
        Some(o) => filter_array(response, o, array, key, hidden),
        None => {
            let o = validate_outline(response, SERVER_ANSWER).map_err(|e| {
                FilterError(if e.kind().is_ambiguous_key() {
                    FilterErrorKind::AmbiguousMembers
                } else {
                    FilterErrorKind::NotJson
                })
            })?;
            filter_array(response, &o, array, key, hidden)
        }
    }
}

fn filter_array(
    response: &[u8],
    outline: &Outline,
    array: &str,
    key: &str,
    hidden: impl Fn(&str) -> bool,
) -> Result<Option<Vec<u8>>, FilterError> {
    let (error, result, tools) = if outline.is_complete() {
        let top = outline.top();
        let find = |name: &str| top.iter().position(|m| m.key(response).eq_str(name));
        let error = find("error").map(|i| top[i].value(response));
        let result = find("result");
        let tools = result.and_then(|r| {
            outline
                .children(r)
                .find(|m| m.key(response).eq_str(array))
                .map(|m| m.value(response))
        });
        (error, result.map(|r| top[r].value(response)), tools)
    } else {
        let Val::Object(top) = Value::from_validated(response).val() else {
            return Err(FilterError(FilterErrorKind::NotAnObject));
        };
        let result = top.get("result");
        let tools = match result.map(|r| r.val()) {
            Some(Val::Object(r)) => r.get(array),
            _ => None,
        };
        (top.get("error"), result, tools)
    };
    if error.is_some_and(|e| !e.is_null()) {
        return Ok(None);
    }
    let Some(result) = result else {
        return Ok(None);
    };
    if !matches!(result.val(), Val::Object(_)) {
        return Err(FilterError(FilterErrorKind::ResultNotObject));
    }
    let Some(tools) = tools else {
        return Ok(None);
    };
    let Val::Array(items) = tools.val() else {
        return Err(FilterError(FilterErrorKind::ToolsNotArray));
    };
    let keep = |item: &Value<'_>| -> bool {
        let Val::Object(o) = item.val() else {
            return false;
        };
        // Exactly one member spelled `name` in any letter case, spelled exactly so.
        let mut name = None;
        for (k, v) in o.members() {
            let raw = k.raw_bytes();
            let folds_to_name = if raw.is_ascii() {
                raw.eq_ignore_ascii_case(key.as_bytes())
            } else {
                k.eq_folded(&JStr::plain(key))
            };
            if folds_to_name {
                if name.is_some() || !k.eq_str(key) {
                    return false;
                }
                name = Some(v);
            }
        }
        match name.map(|n| n.val()) {
            Some(Val::Str(name)) => !name.with_str(&hidden),
            _ => false,
        }
    };
    let mut total = 0;
    let kept: Vec<Value<'_>> = items.iter().inspect(|_| total += 1).filter(keep).collect();
    if kept.len() == total {
        return Ok(None);
    }
    // Splice: bytes before the array, the kept elements, bytes after it.
    let start = tools.as_bytes().as_ptr() as usize - response.as_ptr() as usize;
    let end = start + tools.as_bytes().len();
    let mut out = Vec::with_capacity(response.len());
    out.extend_from_slice(&response[..start]);
    out.push(b'[');
    for (i, v) in kept.iter().enumerate() {
        if i > 0 {
            out.push(b',');
        }
        out.extend_from_slice(v.as_bytes());
    }
    out.push(b']');
    out.extend_from_slice(&response[end..]);
    Ok(Some(out))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn names(bytes: &[u8]) -> Vec<String> {
        let Val::Object(top) = Value::from_validated(bytes).val() else {
            panic!()
        };
        let Some(Val::Object(r)) = top.get("result").map(|v| v.val()) else {
            panic!()
        };
        let Some(Val::Array(a)) = r.get("tools").map(|v| v.val()) else {
            panic!()
        };
        a.iter()
            .map(|t| match t.val() {
                Val::Object(o) => {
                    String::from_utf8_lossy(o.get("name").unwrap().as_bytes()).into_owned()
                }
                _ => panic!(),
            })
            .collect()
    }

    #[test]
    fn hides_and_keeps_everything_else() {
        let r = br#"{"jsonrpc":"2.0","id":7,"result":{"tools":[{"name":"read_file","description":"r"},{"name":"delete_file"},{"name":"write_file"}],"nextCursor":"page-2","_meta":{"x":1.50}}}"#;
        let out = filter_tools_list(r, |n| n == "delete_file")
            .unwrap()
            .unwrap();
        assert_eq!(
            String::from_utf8(out).unwrap(),
            r#"{"jsonrpc":"2.0","id":7,"result":{"tools":[{"name":"read_file","description":"r"},{"name":"write_file"}],"nextCursor":"page-2","_meta":{"x":1.50}}}"#
        );
    }

    #[test]
    fn untouched_when_nothing_is_hidden() {
        let r = br#"{"jsonrpc":"2.0","id":7,"result":{"tools":[{"name":"a"}],"_meta":{"x":1}}}"#;
        assert_eq!(filter_tools_list(r, |_| false), Ok(None));
        let e = br#"{"jsonrpc":"2.0","id":7,"error":{"code":-32602,"message":"bad cursor"}}"#;
        assert_eq!(filter_tools_list(e, |_| true), Ok(None));
    }

    #[test]
    fn drops_entries_it_cannot_read_and_empties_pages() {
        let r = br#"{"jsonrpc":"2.0","id":7,"result":{"tools":[{"name":"a"},{"name":5},{"name":"b"},{"name":"c","Name":"a"},"x"],"_meta":{"x":1}}}"#;
        let out = filter_tools_list(r, |n| n == "a").unwrap().unwrap();
        assert_eq!(names(&out), vec!["\"b\""]);
        let all = filter_tools_list(
            br#"{"id":1,"result":{"tools":[{"name":"a"}],"nextCursor":"n"}}"#,
            |_| true,
        )
        .unwrap()
        .unwrap();
        assert_eq!(all, br#"{"id":1,"result":{"tools":[],"nextCursor":"n"}}"#);
    }

    #[test]
    fn refuses_ambiguous_responses() {
        use FilterErrorKind::*;
        for (r, kind) in [
            (
                &br#"{"id":1,"result":{"tools":[{"name":"a"}]},"Result":{"tools":[]}}"#[..],
                AmbiguousMembers,
            ),
            (
                br#"{"id":1,"result":{"tools":[{"name":"a"}],"tools":[]}}"#,
                AmbiguousMembers,
            ),
            (
                br#"{"id":1,"result":{"tools":{"name":"a"}}}"#,
                ToolsNotArray,
            ),
            (br#"{"id":1,"result":[]}"#, ResultNotObject),
            (b"not json", NotJson),
        ] {
            assert_eq!(
                filter_tools_list(r, |_| false).map_err(|e| e.kind()),
                Err(kind),
                "{}",
                String::from_utf8_lossy(r)
            );
        }
        let messages: Vec<String> = FilterErrorKind::ALL.iter().map(|k| k.to_string()).collect();
        assert_eq!(
            messages,
            [
                "tools/list response has ambiguous members",
                "tools/list response is not valid JSON",
                "tools/list response is not a JSON object",
                "tools/list result is not an object",
                "tools/list result.tools is not an array",
            ]
        );
    }
}
