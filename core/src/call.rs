//! The borrowed view of one `tools/call`: a tool name and its arguments.

use std::borrow::Cow;
use std::fmt;

use crate::json::{JsonError, Object, Strictness, Val, Value, validate};

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
        let arguments = Self::arguments_from(arguments, strictness)?;
        Ok(ToolCall {
            surface: Surface::Tool,
            name: Cow::Borrowed(name),
            arguments,
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

    /// Validates raw argument text into an object view.
    pub(crate) fn arguments_from(
        raw: &'a [u8],
        strictness: Strictness,
    ) -> Result<Object<'a>, CallError> {
        if raw.iter().all(u8::is_ascii_whitespace) {
            return Ok(Self::no_arguments());
        }
        validate(raw, strictness).map_err(CallError::Json)?;
        match Value::from_validated(raw).val() {
            Val::Object(o) => Ok(o),
            Val::Null => Ok(Self::no_arguments()),
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
    pub(crate) fn from_parts(name: Cow<'a, str>, arguments: Option<Object<'a>>) -> ToolCall<'a> {
        ToolCall {
            surface: Surface::Tool,
            name,
            arguments: arguments.unwrap_or_else(Self::no_arguments),
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

    /// The value at `path` (`["recipient", "email"]` for `args.recipient.email`):
    /// each segment selects a member of an object whose key equals it under
    /// case folding ([`Object::get_folded`]: what a Go server reads as that
    /// field), the last such member winning. None when a member is absent or a step is not an object.
    pub fn arg(&self, path: &[&str]) -> Option<Val<'a>> {
        let mut current = Val::Object(self.arguments);
        for seg in path {
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
