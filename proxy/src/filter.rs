//! Removing hidden tools from `tools/list` results.
//!
//! Only the `tools` array is rewritten: every other byte of the response
//! (`nextCursor`, `_meta`, unknown members, number spellings, key order) is
//! copied unchanged, and so is every kept tool definition.

use portcullis_core::json::{JStr, Strictness, Val, Value, validate};
use portcullis_core::structural::{
    AnswerOutline, ListIndex, Scan, scan_answer, skip_valid_string, skip_valid_value,
};

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
/// client sees); deep nesting is fine (tool schemas nest). The fast reader
/// ([`portcullis_core::structural::scan_answer`]) applies the same rules;
/// this strict validator reads what it leaves undecided (escaped or
/// non-ASCII keys in the two outer levels, more than 16 members there).
pub const SERVER_ANSWER: Strictness = Strictness {
    key_check_depth: 2,
    max_depth: 1024,
    ..Strictness::STRICT
};

/// Reads a server's answer: `Ok(Some(outline))` for the common case,
/// `Ok(None)` for a well-formed answer the outline does not describe
/// (read it with [`Value`]), `Err` when it is malformed or ambiguous.
fn read_answer(response: &[u8]) -> Result<Option<AnswerOutline>, FilterError> {
    match scan_answer(response) {
        Ok(Scan::Plain(o)) => Ok(Some(o)),
        Ok(Scan::Ambiguous) => Err(FilterError(FilterErrorKind::AmbiguousMembers)),
        Err(_) => Err(FilterError(FilterErrorKind::NotJson)),
        Ok(Scan::Undecided) => match validate(response, SERVER_ANSWER) {
            Ok(()) => Ok(None),
            Err(e) if e.kind().is_ambiguous_key() => {
                Err(FilterError(FilterErrorKind::AmbiguousMembers))
            }
            Err(_) => Err(FilterError(FilterErrorKind::NotJson)),
        },
    }
}

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
    filter_member_list(response, None, "tools", "name", hidden)
}

/// [`filter_tools_list`] for a response already scanned
/// ([`Scan::Plain`]), with its outline: no second validation pass.
pub fn filter_scanned(
    response: &[u8],
    outline: &AnswerOutline,
    hidden: impl Fn(&str) -> bool,
) -> Result<Option<Vec<u8>>, FilterError> {
    filter_member_list(response, Some(outline), "tools", "name", hidden)
}

/// Filters any list answer the same way: the entries of `result.<array>`
/// whose `<key>` member is hidden are removed (`resources` by `uri`,
/// `resourceTemplates` by `uriTemplate`, `prompts` by `name`); `outline`
/// when the answer was already scanned ([`Scan::Plain`]).
pub fn filter_member_list(
    response: &[u8],
    outline: Option<&AnswerOutline>,
    array: &str,
    key: &str,
    hidden: impl Fn(&str) -> bool,
) -> Result<Option<Vec<u8>>, FilterError> {
    let read;
    let outline = match outline {
        Some(o) => Some(o),
        None => {
            read = read_answer(response)?;
            read.as_ref()
        }
    };
    let (error, result, items) = match outline {
        Some(o) => (
            o.get(response, "error"),
            o.get(response, "result"),
            o.result_get(response, array),
        ),
        None => {
            // Validated under SERVER_ANSWER: members are unambiguous.
            let Val::Object(top) = Value::from_validated(response).val() else {
                return Err(FilterError(FilterErrorKind::NotAnObject));
            };
            let result = top.get("result");
            let items = match result.map(|r| r.val()) {
                Some(Val::Object(r)) => r.get(array),
                _ => None,
            };
            (top.get("error"), result, items)
        }
    };
    if error.is_some_and(|e| !e.is_null()) {
        return Ok(None);
    }
    let Some(result) = result else {
        return Ok(None);
    };
    if result.as_bytes().first() != Some(&b'{') {
        return Err(FilterError(FilterErrorKind::ResultNotObject));
    }
    let Some(items) = items else {
        return Ok(None);
    };
    if items.as_bytes().first() != Some(&b'[') {
        return Err(FilterError(FilterErrorKind::ToolsNotArray));
    }
    let start = items.as_bytes().as_ptr() as usize - response.as_ptr() as usize;
    let end = start + items.as_bytes().len();
    // The scan recorded the entries (and each one's naming member): no walk.
    if let Some(list) = outline.and_then(|o| o.list(array))
        && list.key == key
        && list.span == (start as u32, end as u32)
    {
        return Ok(filter_indexed(response, list, &hidden));
    }
    Ok(filter_array(response, start, end, key, &hidden))
}

/// [`filter_array`] from the entries [`scan_answer`] recorded: each kept
/// entry's bytes copied as they are, a hidden one left out, no text walked
/// again (but for an entry with an escaped or non-ASCII key, read as
/// [`filter_array`] reads it). `None` when every entry is kept.
fn filter_indexed(
    response: &[u8],
    list: &ListIndex,
    hidden: &impl Fn(&str) -> bool,
) -> Option<Vec<u8>> {
    let mut kept = Kept::new(response, list.span.0 as usize);
    for e in &list.entries {
        let (entry, end) = (e.span.0 as usize, e.span.1 as usize);
        let keep = if !e.object {
            false
        } else if e.undecided {
            entry_visible(response, entry, list.key, hidden).1
        } else if e.ambiguous || e.name == (0, 0) {
            false
        } else {
            let name = &response[e.name.0 as usize..e.name.1 as usize];
            match name {
                // A string without escapes (the common case): its text as it is.
                [b'"', inner @ .., b'"'] if !inner.contains(&b'\\') => {
                    std::str::from_utf8(inner).is_ok_and(|n| !hidden(n))
                }
                _ => match Value::from_validated_span(name).val() {
                    Val::Str(n) => !n.with_str(hidden),
                    _ => false,
                },
            }
        };
        kept.entry(entry, end, keep);
    }
    kept.finish(list.span.1 as usize)
}

/// One walk over the array at `response[start..end]` (valid JSON): each
/// entry's members are read at their own level only (nested values are
/// skipped, eight bytes at a time), its `key` member found, and the entry
/// copied byte for byte when kept. `None` when every entry is kept.
fn filter_array(
    response: &[u8],
    start: usize,
    end: usize,
    key: &str,
    hidden: &impl Fn(&str) -> bool,
) -> Option<Vec<u8>> {
    let b = &response[..end];
    let mut kept = Kept::new(response, start);
    let mut i = ws(b, start + 1);
    if b.get(i) == Some(&b']') {
        return None;
    }
    loop {
        let entry = i;
        let keep = if b[i] == b'{' {
            let (next, keep) = entry_visible(b, i, key, hidden);
            i = next;
            keep
        } else {
            i = skip_valid_value(b, i);
            false
        };
        kept.entry(entry, i, keep);
        i = ws(b, i);
        match b.get(i) {
            Some(b',') => i = ws(b, i + 1),
            _ => break,
        }
    }
    kept.finish(end)
}

/// The filtered answer, built as the array's entries are judged in order:
/// nothing is copied until the first dropped entry (the kept entries
/// before it are the text's own prefix), then each kept entry's bytes as
/// they are.
struct Kept<'r> {
    response: &'r [u8],
    out: Option<Vec<u8>>,
    /// End of the text's own prefix (while nothing was dropped).
    prefix_end: usize,
    kept_any: bool,
}

impl<'r> Kept<'r> {
    /// For the array whose `[` is at `open`.
    fn new(response: &'r [u8], open: usize) -> Kept<'r> {
        Kept {
            response,
            out: None,
            prefix_end: open + 1,
            kept_any: false,
        }
    }

    /// The entry at `response[start..end]`, kept or not.
    fn entry(&mut self, start: usize, end: usize, keep: bool) {
        match (&mut self.out, keep) {
            (None, true) => self.prefix_end = end,
            (None, false) => {
                let mut o = Vec::with_capacity(self.response.len());
                o.extend_from_slice(&self.response[..self.prefix_end]);
                self.out = Some(o);
            }
            (Some(o), true) => {
                if self.kept_any {
                    o.push(b',');
                }
                o.extend_from_slice(&self.response[start..end]);
            }
            (Some(_), false) => {}
        }
        self.kept_any |= keep;
    }

    /// The answer, the array closed before `response[end..]` (`end`: one
    /// past its `]`); `None` when every entry was kept.
    fn finish(self, end: usize) -> Option<Vec<u8>> {
        let mut out = self.out?;
        out.push(b']');
        out.extend_from_slice(&self.response[end..]);
        Some(out)
    }
}

#[inline]
fn ws(b: &[u8], mut i: usize) -> usize {
    while i < b.len() && matches!(b[i], b' ' | b'\t' | b'\n' | b'\r') {
        i += 1;
    }
    i
}

/// Walks the members of the object at `i` (valid JSON): its end, and
/// whether it has exactly one member spelled `key` in any letter case,
/// spelled exactly so, whose value is a string not hidden.
fn entry_visible(b: &[u8], i: usize, key: &str, hidden: &impl Fn(&str) -> bool) -> (usize, bool) {
    let mut name: Option<(usize, usize)> = None;
    let mut ambiguous = false;
    let mut i = ws(b, i + 1);
    if b.get(i) == Some(&b'}') {
        return (i + 1, false);
    }
    loop {
        let key_end = skip_valid_string(b, i);
        let raw = &b[i + 1..key_end - 1];
        let (folds, exact) = if raw.is_ascii() && !raw.contains(&b'\\') {
            (
                raw.eq_ignore_ascii_case(key.as_bytes()),
                raw == key.as_bytes(),
            )
        } else {
            match Value::from_validated_span(&b[i..key_end]).val() {
                Val::Str(k) => (k.eq_folded(&JStr::plain(key)), k.eq_str(key)),
                _ => (false, false),
            }
        };
        i = ws(b, key_end);
        i = ws(b, i + 1); // the colon
        let value_end = skip_valid_value(b, i);
        if folds {
            ambiguous |= name.is_some() || !exact;
            name = Some((i, value_end));
        }
        i = ws(b, value_end);
        match b.get(i) {
            Some(b',') => i = ws(b, i + 1),
            _ => break,
        }
    }
    let end = i + 1;
    let visible = match name {
        Some((s, e)) if !ambiguous => match Value::from_validated_span(&b[s..e]).val() {
            Val::Str(n) => !n.with_str(hidden),
            _ => false,
        },
        _ => false,
    };
    (end, visible)
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;

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

    /// What the fast scanner leaves undecided goes through the strict
    /// validator, with the same outcomes.
    #[test]
    fn undecided_answers_are_read_strictly() {
        let escaped = br#"{"id":1,"result":{"t\u006fols":[{"name":"a"},{"name":"b"}]}}"#;
        let out = filter_tools_list(escaped, |n| n == "a").unwrap().unwrap();
        assert_eq!(out, br#"{"id":1,"result":{"t\u006fols":[{"name":"b"}]}}"#);
        let twice = br#"{"id":1,"result":{"tools":[{"name":"a"}],"\u0074ools":[]}}"#;
        assert_eq!(
            filter_tools_list(twice, |_| false).map_err(|e| e.kind()),
            Err(FilterErrorKind::AmbiguousMembers)
        );
        let many: String = (0..20).map(|i| format!("\"k{i}\":{i},")).collect();
        let many =
            format!(r#"{{{many}"id":1,"result":{{"tools":[{{"name":"a"}},{{"name":"b"}}]}}}}"#);
        let out = filter_tools_list(many.as_bytes(), |n| n == "b")
            .unwrap()
            .unwrap();
        assert!(out.ends_with(br#""result":{"tools":[{"name":"a"}]}}"#));
        assert_eq!(
            filter_tools_list(br#"{"id":1,"result":{"tools":[}}"#, |_| false).map_err(|e| e.kind()),
            Err(FilterErrorKind::NotJson)
        );
    }

    /// One tool entry, with spacing, escapes, nesting and `name` variants.
    fn entry() -> impl Strategy<Value = String> {
        let name = prop_oneof![
            Just(r#""name":"a""#.to_string()),
            Just(r#""name" : "b""#.to_string()),
            Just(r#""name":"c\u0022q""#.to_string()),
            Just(r#""n\u0061me":"a""#.to_string()),
            Just(r#""NAME":"d""#.to_string()),
            Just(r#""name":5"#.to_string()),
            Just(String::new()),
        ];
        let other = prop_oneof![
            Just(r##""description":"x ] } \" , { [""##.to_string()),
            Just(r#""inputSchema":{"type":"object","properties":{"name":{"type":"string"}},"x":[1,[2,{"name":"a"}]]}"#.to_string()),
            Just(r#""é":[ ]"#.to_string()),
            Just(r#""n":-1.5e3"#.to_string()),
        ];
        (
            name,
            prop::collection::vec(other, 0..3),
            prop::sample::select(vec!["", " ", "\n  "]),
        )
            .prop_map(|(n, others, sp)| {
                let mut m: Vec<String> = others;
                if !n.is_empty() {
                    let at = m.len() / 2;
                    m.insert(at, n);
                }
                format!("{{{sp}{}{sp}}}", m.join(&format!(",{sp}")))
            })
    }

    /// The answer filtered by walking its text ([`filter_array`], the path
    /// of answers the scan leaves undecided), for comparison with the
    /// entries the scan recorded ([`filter_indexed`]).
    fn walked(r: &[u8], hidden: impl Fn(&str) -> bool) -> Option<Vec<u8>> {
        let Ok(Scan::Plain(o)) = scan_answer(r) else {
            panic!("scanned as plain")
        };
        assert!(o.list("tools").is_some(), "the scan recorded the tools");
        let items = o.result_get(r, "tools").unwrap();
        let start = items.as_bytes().as_ptr() as usize - r.as_ptr() as usize;
        filter_array(r, start, start + items.as_bytes().len(), "name", &hidden)
    }

    fn visible(e: &serde_json::Value, hidden: &[&str]) -> bool {
        let Some(o) = e.as_object() else { return false };
        let names: Vec<_> = o
            .keys()
            .filter(|k| k.eq_ignore_ascii_case("name"))
            .collect();
        names == ["name"] && o["name"].as_str().is_some_and(|n| !hidden.contains(&n))
    }

    proptest::proptest! {
        #![proptest_config(proptest::prelude::ProptestConfig::with_cases(500))]
        #[test]
        fn keeps_the_bytes_of_kept_entries(
            entries in prop::collection::vec(prop_oneof![4 => entry(), 1 => Just("\"x\"".to_string()), 1 => Just("[{\"name\":\"a\"}]".to_string())], 0..8),
            sep in prop::sample::select(vec![",", " , ", ",\n"]),
            hidden in prop::sample::subsequence(vec!["a", "b", "c\"q", "d"], 0..4),
        ) {
            let r = format!(r#"{{"jsonrpc":"2.0","id":3,"result":{{"tools":[ {} ],"nextCursor":"n"}}}}"#, entries.join(sep));
            let out = filter_tools_list(r.as_bytes(), |n| hidden.contains(&n)).unwrap();
            prop_assert_eq!(&out, &walked(r.as_bytes(), |n| hidden.contains(&n)));
            let parsed: Vec<serde_json::Value> = entries.iter().map(|e| serde_json::from_str(e).unwrap()).collect();
            let kept: Vec<usize> = (0..entries.len()).filter(|&i| visible(&parsed[i], &hidden)).collect();
            let Some(out) = out else {
                prop_assert_eq!(kept.len(), entries.len());
                return Ok(());
            };
            prop_assert!(kept.len() < entries.len());
            let text = String::from_utf8(out).unwrap();
            let v: serde_json::Value = serde_json::from_str(&text).unwrap();
            prop_assert_eq!(v["result"]["nextCursor"].as_str(), Some("n"));
            let tools = v["result"]["tools"].as_array().unwrap();
            let want: Vec<&serde_json::Value> = kept.iter().map(|&i| &parsed[i]).collect();
            prop_assert_eq!(tools.iter().collect::<Vec<_>>(), want);
            // Each kept entry verbatim, in order; the text around the array unchanged.
            let mut at = 0;
            for &i in &kept {
                let found = text[at..].find(entries[i].as_str());
                prop_assert!(found.is_some(), "{} not in {}", entries[i], text);
                at += found.unwrap() + entries[i].len();
            }
            prop_assert!(text.starts_with(r#"{"jsonrpc":"2.0","id":3,"result":{"tools":["#), "{}", text);
            prop_assert!(text.ends_with(r#"],"nextCursor":"n"}}"#), "{}", text);
        }
    }

    /// review5: hidden entries are dropped whatever the spelling of `name`,
    /// and the answer's outer members are read unambiguously.
    #[test]
    fn review5_hidden_entries_never_slip_through() {
        let hidden = |n: &str| n == "secret";
        for entry in [
            r#"{"name":"secret"}"#,
            r#"{"name":"s\u0065cret"}"#,
            r#"{"name":"t","name":"secret"}"#,
            r#"{"name":"secret","name":"t"}"#,
            r#"{"name":"t","n\u0061me":"secret"}"#,
            r#"{"n\u0061me":"secret","name":"t"}"#,
            r#"{"name":"t","NAME":"secret"}"#,
            r#"{"Name":"secret"}"#,
            r#"{"nam\u0065":"secret"}"#,
            r#"{ "name" : "secret" , "x":{"name":"t"}}"#,
        ] {
            for (pre, post) in [("", ""), (r#"{"name":"a"},"#, ""), ("", r#",{"name":"b"}"#)] {
                let r = format!(
                    r#"{{"jsonrpc":"2.0","id":1,"result":{{"tools":[{pre}{entry}{post}],"nextCursor":"c"}}}}"#
                );
                let out = filter_tools_list(r.as_bytes(), hidden).unwrap();
                assert_eq!(out, walked(r.as_bytes(), hidden), "{r}");
                let out = out
                    .map(|o| String::from_utf8(o).unwrap())
                    .unwrap_or(r.clone());
                assert!(
                    !out.contains("secret") && !out.contains("s\\u0065cret"),
                    "{r} -> {out}"
                );
                let v: serde_json::Value = serde_json::from_str(&out).unwrap();
                assert_eq!(v["result"]["nextCursor"], "c", "{out}");
            }
        }
        // Ambiguous or escaped outer members are refused or read strictly.
        for r in [
            r#"{"id":1,"result":{"tools":[]},"result":{"tools":[{"name":"secret"}]}}"#,
            r#"{"id":1,"result":{"tools":[],"Tools":[{"name":"secret"}]}}"#,
            r#"{"id":1,"result":{"tools":[],"t\u006fols":[{"name":"secret"}]}}"#,
            r#"{"id":1,"result":{"tools":[]},"r\u0065sult":{"tools":[{"name":"secret"}]}}"#,
        ] {
            assert_eq!(
                filter_tools_list(r.as_bytes(), hidden).map_err(|e| e.kind()),
                Err(FilterErrorKind::AmbiguousMembers),
                "{r}"
            );
        }
        let r = r#"{"id":1,"r\u0065sult":{"t\u006fols":[{"name":"secret"},{"name":"a"}]}}"#;
        assert_eq!(
            filter_tools_list(r.as_bytes(), hidden).unwrap().unwrap(),
            br#"{"id":1,"r\u0065sult":{"t\u006fols":[{"name":"a"}]}}"#
        );
        // Malformed text is refused, never forwarded.
        for r in [
            "{\"id\":1,\"result\":{\"tools\":[{\"name\":\"a\u{1}\"}]}}",
            "{\"id\":1,\"result\":{\"tools\":[{\"name\":\"a\\x\"}]}}",
        ] {
            assert!(filter_tools_list(r.as_bytes(), hidden).is_err(), "{r:?}");
        }
        let bad_utf8 = b"{\"id\":1,\"result\":{\"tools\":[{\"name\":\"a\xff\"}]}}";
        assert!(filter_tools_list(bad_utf8, hidden).is_err());
    }
}
