//! The borrowed view of one `tools/call`: a tool name and its arguments.

use std::borrow::Cow;
use std::fmt;

use crate::json::{
    JStr, JsonError, MemberIndex, MembersOf, Object, Strictness, Val, Value, validate_indexed,
};

/// Which MCP surface a request is on: a policy decides tool calls,
/// resource reads and prompt requests with the same machinery, each
/// against its own blocks (`tool`, `resource`, `prompt`).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Default)]
pub enum Surface {
    /// `tools/call`: the name is the tool's.
    #[default]
    Tool,
    /// `resources/read`, `resources/subscribe`: the name is the URI, normalised
    /// ([`crate::uri`]); there are no arguments.
    Resource,
    /// `prompts/get`: the name is the prompt's, the arguments its `arguments`.
    Prompt,
}

impl Surface {
    /// `tool`, `resource` or `prompt`.
    pub fn name(self) -> &'static str {
        match self {
            Surface::Tool => "tool",
            Surface::Resource => "resource",
            Surface::Prompt => "prompt",
        }
    }

    /// `Tool`, `Resource` or `Prompt`, for messages.
    pub fn title(self) -> &'static str {
        match self {
            Surface::Tool => "Tool",
            Surface::Resource => "Resource",
            Surface::Prompt => "Prompt",
        }
    }
}

/// One tool call as a policy sees it. Borrowed from the message bytes; the
/// arguments have been validated, so every lookup is well defined.
#[derive(Clone)]
pub struct ToolCall<'a> {
    surface: Surface,
    name: Cow<'a, str>,
    arguments: Object<'a>,
    /// Where the arguments' members are, recorded while they were validated
    /// (offsets relative to the arguments' `{`), so a decision reads them
    /// without walking the text again ([`ToolCall::arg_members`]).
    index: MemberIndex,
}

impl fmt::Debug for ToolCall<'_> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("ToolCall")
            .field("surface", &self.surface)
            .field("name", &self.name)
            .field(
                "arguments",
                &String::from_utf8_lossy(self.arguments.as_bytes()),
            )
            .finish()
    }
}

/// Why a tool call could not be built. The variants are the kinds (the JSON
/// one carries the reader's [`JsonError`], itself with a kind); the message
/// and a refusal's JSON-RPC code follow from them (`jsonrpc::Rejection`).
#[non_exhaustive]
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum CallError {
    /// The arguments are not well-formed (or not unambiguous) JSON.
    Json(JsonError),
    /// The arguments are JSON but not an object.
    NotAnObject,
}

impl fmt::Display for CallError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            CallError::Json(e) => write!(f, "arguments: {e}"),
            CallError::NotAnObject => f.write_str("arguments must be a JSON object"),
        }
    }
}

impl std::error::Error for CallError {}

const NO_ARGUMENTS: &[u8] = b"{}";

impl<'a> ToolCall<'a> {
    /// A call of `name` with `arguments` (raw JSON text of an object; empty
    /// text or `null` mean no arguments), validated under `strictness`.
    pub fn new(
        name: &'a str,
        arguments: &'a [u8],
        strictness: Strictness,
    ) -> Result<ToolCall<'a>, CallError> {
        let (arguments, index) = Self::arguments_from(arguments, strictness)?;
        Ok(ToolCall {
            surface: Surface::Tool,
            name: Cow::Borrowed(name),
            arguments,
            index,
        })
    }

    /// A request on `surface`: a resource's normalised URI (no arguments),
    /// or a prompt's name and its `arguments`.
    pub fn on(
        surface: Surface,
        name: &'a str,
        arguments: &'a [u8],
        strictness: Strictness,
    ) -> Result<ToolCall<'a>, CallError> {
        let mut call = Self::new(name, arguments, strictness)?;
        call.surface = surface;
        Ok(call)
    }

    /// This call on another surface.
    pub fn with_surface(mut self, surface: Surface) -> ToolCall<'a> {
        self.surface = surface;
        self
    }

    /// Validates raw argument text into an object view and the index of its members.
    pub(crate) fn arguments_from(
        raw: &'a [u8],
        strictness: Strictness,
    ) -> Result<(Object<'a>, MemberIndex), CallError> {
        if raw.iter().all(u8::is_ascii_whitespace) {
            return Ok((Self::no_arguments(), MemberIndex::empty((0, 2))));
        }
        let index = validate_indexed(raw, strictness).map_err(CallError::Json)?;
        let value = Value::from_validated(raw);
        match value.val() {
            Val::Object(o) => {
                // The object starts after any leading whitespace.
                let at = raw.len() - raw.trim_ascii_start().len();
                Ok((o, index.rebased(at)))
            }
            Val::Null => Ok((Self::no_arguments(), MemberIndex::empty((0, 2)))),
            _ => Err(CallError::NotAnObject),
        }
    }

    fn no_arguments() -> Object<'a> {
        match Value::<'a>::from_validated(NO_ARGUMENTS).val() {
            Val::Object(o) => o,
            _ => unreachable!("`{{}}` is an object"),
        }
    }

    /// Builds a call from parts the JSON-RPC reader has already validated.
    /// `index`: the arguments' members as the validator found them, offsets
    /// relative to the arguments' first byte (or [`MemberIndex::NONE`]).
    pub(crate) fn from_parts(
        name: Cow<'a, str>,
        arguments: Option<Object<'a>>,
        index: MemberIndex,
    ) -> ToolCall<'a> {
        match arguments {
            Some(arguments) => ToolCall {
                surface: Surface::Tool,
                name,
                arguments,
                index,
            },
            None => ToolCall {
                surface: Surface::Tool,
                name,
                arguments: Self::no_arguments(),
                index: MemberIndex::empty((0, 2)),
            },
        }
    }

    /// The surface this request is on.
    pub fn surface(&self) -> Surface {
        self.surface
    }

    /// The tool name, JSON escapes decoded.
    pub fn name(&self) -> &str {
        &self.name
    }

    /// The arguments object (`{}` when the call had none).
    pub fn arguments(&self) -> Object<'a> {
        self.arguments
    }

    /// The arguments' members in document order (duplicates included), as
    /// [`Object::members`] walks them, read from where the validator found
    /// them when it recorded them (at most
    /// [`MEMBER_INDEX_CAPACITY`](crate::json::MEMBER_INDEX_CAPACITY) members):
    /// how generated code and the evaluator read arguments.
    #[inline]
    pub fn arg_members(&self) -> MembersOf<'a, '_> {
        self.index.members(self.arguments, 0)
    }

    /// The value at `path` (`["recipient", "email"]` for `args.recipient.email`):
    /// each segment selects a member of an object whose key equals it under
    /// case folding ([`Object::get_folded`]: what a Go server reads as that
    /// field), the last such member winning. None when a member is absent or a step is not an object.
    pub fn arg(&self, path: &[&str]) -> Option<Val<'a>> {
        let Some((first, rest)) = path.split_first() else {
            return Some(Val::Object(self.arguments));
        };
        let key = JStr::plain(first);
        let mut current = self
            .arg_members()
            .filter(|(k, _)| k.eq_folded(&key))
            .last()?
            .1
            .val();
        for seg in rest {
            let Val::Object(o) = current else {
                return None;
            };
            current = o.get_folded(seg)?.val();
        }
        Some(current)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// `args.amount` must see what a Go server reads as `amount`:
    /// `AMOUNT`, `Amount`, `\u0041MOUNT`, nested `Customer.ID` alike.
    #[test]
    fn paths_match_keys_in_any_letter_case() {
        for raw in [
            &br#"{"AMOUNT": 5000}"#[..],
            br#"{"Amount": 5000}"#,
            br#"{"\u0041MOUNT": 5000}"#,
        ] {
            let call = ToolCall::new("pay", raw, Strictness::STRICT).unwrap();
            assert!(matches!(call.arg(&["amount"]), Some(Val::Num(_))));
        }
        let raw = "{\"Customer\": {\"ID\": \"c1\", \"taſ\u{212a}\": 1}}".as_bytes();
        let call = ToolCall::new("pay", raw, Strictness::STRICT).unwrap();
        assert!(matches!(call.arg(&["customer", "id"]), Some(Val::Str(s)) if s.eq_str("c1")));
        assert!(call.arg(&["customer", "task"]).is_some());
    }

    /// A call read from a JSON-RPC line and one built from its arguments
    /// read the same members whether indexed or walked.
    #[test]
    fn indexed_and_walked_arguments_agree() {
        let line = br#"{"jsonrpc":"2.0","id":1,"method":"tools/call","params":{"arguments": {"Amount": 5, "to": {"iban": "x"}, "n\u0061me": "q"},"name":"pay"}}"#;
        let from_line = crate::jsonrpc::parse_tool_call(line).unwrap();
        let args = br#" {"Amount": 5, "to": {"iban": "x"}, "n\u0061me": "q"}"#;
        let built = ToolCall::new("pay", args, Strictness::STRICT).unwrap();
        for call in [&from_line, &built] {
            let indexed: Vec<_> = call
                .arg_members()
                .map(|(k, v)| (k.raw_bytes(), v))
                .collect();
            let walked: Vec<_> = call
                .arguments()
                .members()
                .map(|(k, v)| (k.raw_bytes(), v))
                .collect();
            assert_eq!(indexed, walked);
            assert_eq!(indexed.len(), 3);
            assert!(matches!(call.arg(&["amount"]), Some(Val::Num(_))));
            assert!(matches!(call.arg(&["name"]), Some(Val::Str(s)) if s.eq_str("q")));
            assert!(matches!(call.arg(&["to", "IBAN"]), Some(Val::Str(s)) if s.eq_str("x")));
        }
    }

    #[test]
    fn paths_walk_objects_only() {
        let raw = br#"{"recipient": {"email": "a@example.com"}, "items": [{"x": 1}], "a.b": 1}"#;
        let call = ToolCall::new("send", raw, Strictness::STRICT).unwrap();
        assert!(
            matches!(call.arg(&["recipient", "email"]), Some(Val::Str(s)) if s.eq_str("a@example.com"))
        );
        assert!(call.arg(&["items", "0"]).is_none());
        assert!(call.arg(&["a", "b"]).is_none());
        assert!(call.arg(&["recipient", "email", "x"]).is_none());
        assert!(matches!(call.arg(&[]), Some(Val::Object(_))));
    }

    #[test]
    fn arguments_must_be_an_object() {
        assert_eq!(
            ToolCall::new("t", b"[1]", Strictness::STRICT).unwrap_err(),
            CallError::NotAnObject
        );
        assert_eq!(
            ToolCall::new("t", b"\"x\"", Strictness::STRICT).unwrap_err(),
            CallError::NotAnObject
        );
        assert!(
            ToolCall::new("t", b"", Strictness::STRICT)
                .unwrap()
                .arguments()
                .is_empty()
        );
        assert!(
            ToolCall::new("t", b"null", Strictness::STRICT)
                .unwrap()
                .arguments()
                .is_empty()
        );
        assert!(matches!(
            ToolCall::new("t", br#"{"a":1,"a":2}"#, Strictness::STRICT),
            Err(CallError::Json(_))
        ));
    }
}
