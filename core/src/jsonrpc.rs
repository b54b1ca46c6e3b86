//! Reading JSON-RPC messages strictly, without copying them.
//!
//! The proxy forwards the original bytes of every message it allows, so a
//! message must mean exactly one thing to every parser on the way. Anything
//! two parsers could read differently is refused here: duplicate members,
//! members that differ only in letter case (Go's `encoding/json` matches them
//! case-insensitively, the last one winning), invalid UTF-8, trailing data,
//! and, for `tools/call`, any of those anywhere in the arguments.

use std::borrow::Cow;

use crate::call::{CallError, ToolCall};
use crate::json::{JStr, JsonError, Outline, Strictness, Val, Value, validate, validate_outline};

/// JSON-RPC: the text is not JSON.
pub const PARSE_ERROR: i32 = -32700;
/// JSON-RPC: the JSON is not a valid request.
pub const INVALID_REQUEST: i32 = -32600;
/// JSON-RPC: the request's params are invalid.
pub const INVALID_PARAMS: i32 = -32602;
/// JSON-RPC: the proxy itself failed (not the upstream, not the request).
pub const INTERNAL_ERROR: i32 = -32603;

/// A message the proxy answers with a JSON-RPC error instead of forwarding.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Rejection<'a> {
    /// JSON-RPC error code.
    pub code: i32,
    /// What is wrong, for the error's `message`.
    pub message: &'static str,
    /// The request's id, when it could be read unambiguously.
    pub id: Option<Value<'a>>,
}

impl Rejection<'_> {
    fn new(code: i32, message: &'static str) -> Rejection<'static> {
        Rejection {
            code,
            message,
            id: None,
        }
    }
}

/// The members of one JSON-RPC message, as borrowed views.
#[derive(Debug, Clone, Copy)]
pub struct Envelope<'a> {
    /// The whole message.
    pub raw: &'a [u8],
    /// `id` (requests and responses).
    pub id: Option<Value<'a>>,
    /// `method` (requests and notifications).
    pub method: Option<JStr<'a>>,
    /// `params`.
    pub params: Option<Value<'a>>,
    /// `result` (responses).
    pub result: Option<Value<'a>>,
    /// `error` (responses).
    pub error: Option<Value<'a>>,
    /// The whole message passed the strict key checks at every depth, so a
    /// `tools/call` needs no second pass over its params.
    strict: bool,
    /// `params.name` and `params.arguments`, found while validating.
    call: Option<CallParts<'a>>,
}

/// The members of `params` a `tools/call` needs, located during validation.
#[derive(Debug, Clone, Copy)]
struct CallParts<'a> {
    name: Option<Value<'a>>,
    arguments: Option<Value<'a>>,
    /// A member spelled like `name` or `arguments` in another letter case.
    variant: bool,
}

/// How [`Envelope::from_members`] treats a member whose name is one of
/// [`MEMBERS`] in another letter case (`"METHOD"`, `"Params"`, `"ID"`).
#[derive(Clone, Copy, PartialEq, Eq)]
enum Names {
    /// Refuse the message: Go's encoding/json (and so Go MCP servers) matches
    /// member names in any letter case, so `{"id":1,"result":{},"METHOD":
    /// "tools/call","params":...}` is an answer here and a tool call there.
    Strict,
    /// Ignore it (messages from the server, which the proxy does not police).
    Exact,
}

/// True when `k` is `name` in another letter case (under Unicode case
/// folding, as Go folds `ſ` to `s` and the Kelvin sign to `k`).
fn case_variant(k: &JStr<'_>, name: &str) -> bool {
    !k.eq_str(name) && k.eq_folded(&JStr::plain(name))
}

const MEMBERS: [&str; 6] = ["jsonrpc", "id", "method", "params", "result", "error"];

fn first_byte(raw: &[u8]) -> Option<u8> {
    raw.iter().copied().find(|b| !b.is_ascii_whitespace())
}

fn is_key_error(e: &JsonError) -> bool {
    matches!(
        e.reason,
        "duplicate object key" | "object keys differ only in letter case"
    )
}

fn json_rejection(e: JsonError) -> Rejection<'static> {
    match e.reason {
        "duplicate object key" => Rejection::new(INVALID_REQUEST, "duplicate member in message"),
        "object keys differ only in letter case" => Rejection::new(
            INVALID_REQUEST,
            "message members differ only in letter case",
        ),
        "nesting too deep" => Rejection::new(INVALID_REQUEST, "message nested too deeply"),
        _ => Rejection::new(PARSE_ERROR, "parse error: not a single valid JSON value"),
    }
}

impl<'a> Envelope<'a> {
    /// Reads one message (a JSON object) strictly: well-formed JSON, and no
    /// duplicate or case-variant members at the top level. `tools/call`
    /// messages get their stricter checks in [`Envelope::tool_call`].
    pub fn parse(raw: &'a [u8]) -> Result<Envelope<'a>, Rejection<'a>> {
        // One strict pass covers the common case (a well-formed tools/call)
        // and outlines the members a reader needs; only a message with
        // ambiguous keys below the top level is read twice.
        match validate_outline(raw, Strictness::STRICT) {
            Ok(outline) if outline.is_complete() && first_byte(raw) == Some(b'{') => {
                let top = outline.top();
                let mut env = Self::from_members(
                    raw,
                    top.iter().map(|m| (m.key(raw), m.value(raw))),
                    Names::Strict,
                )?;
                env.strict = true;
                if let Some(params) = top.iter().rposition(|m| m.key(raw).eq_str("params")) {
                    let mut parts = CallParts {
                        name: None,
                        arguments: None,
                        variant: false,
                    };
                    for m in outline.children(params) {
                        let k = m.key(raw);
                        if k.eq_str("name") {
                            parts.name = Some(m.value(raw));
                        } else if k.eq_str("arguments") {
                            parts.arguments = Some(m.value(raw));
                        } else if case_variant(&k, "name") || case_variant(&k, "arguments") {
                            parts.variant = true;
                        }
                    }
                    env.call = Some(parts);
                }
                Ok(env)
            }
            Ok(_) => {
                let mut env = Self::read_validated(raw, Names::Strict)?;
                env.strict = true;
                Ok(env)
            }
            Err(e) if is_key_error(&e) => match validate(raw, Strictness::ENVELOPE) {
                Ok(()) => Self::read_validated(raw, Names::Strict),
                Err(e) => Err(Rejection {
                    id: unambiguous_id(raw),
                    ..json_rejection(e)
                }),
            },
            Err(e) => Err(Rejection {
                id: unambiguous_id(raw),
                ..json_rejection(e)
            }),
        }
    }

    /// The envelope of a text already validated with an outline (the proxy's
    /// reading of server answers): no second pass.
    pub fn from_outline(raw: &'a [u8], outline: &Outline) -> Result<Envelope<'a>, Rejection<'a>> {
        if !outline.is_complete() || first_byte(raw) != Some(b'{') {
            return Self::read_validated(raw, Names::Exact);
        }
        Self::from_members(
            raw,
            outline.top().iter().map(|m| (m.key(raw), m.value(raw))),
            Names::Exact,
        )
    }

    /// Reads a message from a peer the proxy does not police (the server):
    /// well-formed JSON is enough, and with duplicate members the last wins.
    pub fn parse_lenient(raw: &'a [u8]) -> Result<Envelope<'a>, Rejection<'a>> {
        validate(
            raw,
            Strictness {
                max_depth: 1024,
                ..Strictness::LENIENT
            },
        )
        .map_err(json_rejection)?;
        Self::read_validated(raw, Names::Exact)
    }

    /// Reads the members of a message already validated as JSON (duplicate
    /// and case checks are the caller's business).
    fn read_validated(raw: &'a [u8], names: Names) -> Result<Envelope<'a>, Rejection<'a>> {
        let Val::Object(obj) = Value::from_validated(raw).val() else {
            return Err(Rejection::new(
                INVALID_REQUEST,
                "message must be a JSON object",
            ));
        };
        Self::from_members(raw, obj.members(), names)
    }

    fn from_members(
        raw: &'a [u8],
        members: impl Iterator<Item = (JStr<'a>, Value<'a>)>,
        names: Names,
    ) -> Result<Envelope<'a>, Rejection<'a>> {
        let mut env = Envelope {
            raw,
            id: None,
            method: None,
            params: None,
            result: None,
            error: None,
            strict: false,
            call: None,
        };
        let mut bad_method = false;
        let mut variant = false;
        for (k, v) in members {
            let Some(name) = MEMBERS.iter().find(|m| k.eq_str(m)) else {
                variant |= names == Names::Strict && MEMBERS.iter().any(|m| case_variant(&k, m));
                continue;
            };
            match *name {
                "id" => env.id = Some(v),
                "params" => env.params = Some(v),
                "result" => env.result = Some(v),
                "error" => env.error = Some(v),
                "method" => match v.val() {
                    Val::Str(s) => env.method = Some(s),
                    _ => bad_method = true,
                },
                _ => {}
            }
        }
        if variant {
            return Err(Rejection {
                id: env.request_id(),
                ..Rejection::new(
                    INVALID_REQUEST,
                    "message member name in another letter case",
                )
            });
        }
        if bad_method {
            return Err(Rejection {
                id: env.request_id(),
                ..Rejection::new(INVALID_REQUEST, "method must be a string")
            });
        }
        Ok(env)
    }

    /// True when `method` is exactly `m` (after escapes are decoded).
    pub fn method_is(&self, m: &str) -> bool {
        self.method.is_some_and(|s| s.eq_str(m))
    }

    /// The id if it is a valid request id (a string or a number).
    pub fn request_id(&self) -> Option<Value<'a>> {
        self.id
            .filter(|v| matches!(v.val(), Val::Str(_) | Val::Num(_)))
    }

    /// The `tools/call` in this message, under the strict rules: params an
    /// object with no duplicate or case-variant members, a string `name`,
    /// `arguments` absent, null or an object with no duplicate or
    /// case-variant keys at any depth, and an id (a `tools/call`
    /// notification cannot be answered, so it is refused).
    pub fn tool_call(&self) -> Result<ToolCall<'a>, Rejection<'a>> {
        let id = self.request_id();
        let reject = |code, message| Rejection { code, message, id };
        if id.is_none() {
            return Err(reject(
                INVALID_REQUEST,
                "tools/call must be a request with a string or number id",
            ));
        }
        let Some(params) = self.params else {
            return Err(reject(INVALID_PARAMS, "tools/call needs params"));
        };
        // Strict over the whole params: its own members and every level of the arguments.
        if !self.strict
            && let Err(e) = validate(params.as_bytes(), Strictness::STRICT)
        {
            let message = match e.reason {
                "duplicate object key" => "duplicate key in tools/call params or arguments",
                "object keys differ only in letter case" => {
                    "keys differing only in letter case in tools/call params or arguments"
                }
                "nesting too deep" => "tools/call arguments nested too deeply",
                _ => "tools/call params are not valid JSON",
            };
            return Err(reject(INVALID_PARAMS, message));
        }
        let Val::Object(p) = params.val() else {
            return Err(reject(
                INVALID_PARAMS,
                "tools/call params must be an object",
            ));
        };
        let (name_value, args_value, variant) = match self.call {
            Some(parts) => (parts.name, parts.arguments, parts.variant),
            None => {
                let (mut n, mut a, mut variant) = (None, None, false);
                for (k, v) in p.members() {
                    if k.eq_str("name") {
                        n = Some(v);
                    } else if k.eq_str("arguments") {
                        a = Some(v);
                    } else {
                        variant |= case_variant(&k, "name") || case_variant(&k, "arguments");
                    }
                }
                (n, a, variant)
            }
        };
        if variant {
            // A Go server would read `"Name"` or `"ARGUMENTS"` as the name or the arguments.
            return Err(reject(
                INVALID_PARAMS,
                "tools/call params member name in another letter case",
            ));
        }
        let name = match name_value.map(|v| v.val()) {
            None => None,
            Some(Val::Str(s)) => Some(match s.as_plain() {
                Some(plain) => Cow::Borrowed(plain),
                None => Cow::Owned(s.chars().collect()),
            }),
            Some(_) => return Err(reject(INVALID_PARAMS, "tools/call name must be a string")),
        };
        let arguments = match args_value.map(|v| v.val()) {
            None | Some(Val::Null) => None,
            Some(Val::Object(o)) => Some(o),
            Some(_) => {
                return Err(reject(
                    INVALID_PARAMS,
                    "tools/call arguments must be an object",
                ));
            }
        };
        let Some(name) = name else {
            return Err(reject(INVALID_PARAMS, "tools/call needs a tool name"));
        };
        Ok(ToolCall::from_parts(name, arguments))
    }
}

/// The id of a message refused for ambiguous members, when the id itself is
/// not ambiguous (exactly one member named `id` in any letter case, a string
/// or a number), so the refusal can be matched to the request.
fn unambiguous_id(raw: &[u8]) -> Option<Value<'_>> {
    validate(
        raw,
        Strictness {
            max_depth: 1024,
            ..Strictness::LENIENT
        },
    )
    .ok()?;
    let Val::Object(o) = Value::from_validated(raw).val() else {
        return None;
    };
    let mut ids = o.members().filter(|(k, _)| k.eq_folded(&JStr::plain("id")));
    let (_, id) = ids.next()?;
    if ids.next().is_some() {
        return None;
    }
    matches!(id.val(), Val::Str(_) | Val::Num(_)).then_some(id)
}

/// Reads a `tools/call` request line strictly (envelope and params); a
/// message that is not a `tools/call` is rejected too. For tests, benches and tools.
pub fn parse_tool_call(raw: &[u8]) -> Result<ToolCall<'_>, Rejection<'_>> {
    let env = Envelope::parse(raw)?;
    if !env.method_is("tools/call") {
        return Err(Rejection {
            id: env.request_id(),
            ..Rejection::new(INVALID_REQUEST, "not a tools/call request")
        });
    }
    env.tool_call()
}

impl From<CallError> for Rejection<'static> {
    fn from(e: CallError) -> Self {
        match e {
            CallError::Json(j) => json_rejection(j),
            CallError::NotAnObject => {
                Rejection::new(INVALID_PARAMS, "tools/call arguments must be an object")
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn reject(line: &str) -> (i32, &'static str) {
        let r = parse_tool_call(line.as_bytes()).unwrap_err();
        (r.code, r.message)
    }

    #[test]
    fn reads_a_plain_call() {
        let line = br#"{"jsonrpc":"2.0","id":1,"method":"tools/call","params":{"name":"delete\u005frepo","arguments":{"a":[1,{"b":2}]}}}"#;
        let call = parse_tool_call(line).unwrap();
        assert_eq!(call.name(), "delete_repo");
        assert!(call.arg(&["a"]).is_some());
    }

    #[test]
    fn refuses_every_ambiguity() {
        let cases = [
            (
                r#"{"jsonrpc":"2.0","id":1,"method":"tools/call","params":{"name":"delete_repo","Name":"read_file"}}"#,
                INVALID_PARAMS,
            ),
            (
                r#"{"jsonrpc":"2.0","id":2,"method":"tools/call","METHOD":"ping","params":{"name":"x"}}"#,
                INVALID_REQUEST,
            ),
            (
                r#"{"jsonrpc":"2.0","id":4,"method":"tools/call","params":{"name":"a"},"Params":{"name":"b"}}"#,
                INVALID_REQUEST,
            ),
            (
                r#"{"jsonrpc":"2.0","id":4,"method":"tools/call","method":"tools/call","params":{"name":"a"}}"#,
                INVALID_REQUEST,
            ),
            (
                r#"{"jsonrpc":"2.0","id":1,"method":"tools/call","params":{"name":"t","arguments":{"x":{"k":1,"K":2}}}}"#,
                INVALID_PARAMS,
            ),
            (
                r#"{"jsonrpc":"2.0","id":1,"method":"tools/call","params":{"name":"t","arguments":{"m":1,"m":2}}}"#,
                INVALID_PARAMS,
            ),
            (
                r#"{"jsonrpc":"2.0","id":1,"method":"tools/call","params":{"name":"t","arguments":"x"}}"#,
                INVALID_PARAMS,
            ),
            (
                r#"{"jsonrpc":"2.0","id":1,"method":"tools/call","params":{"name":"t","arguments":[1]}}"#,
                INVALID_PARAMS,
            ),
            (
                r#"{"jsonrpc":"2.0","id":3,"method":"tools/call","params":{"name":5}}"#,
                INVALID_PARAMS,
            ),
            (
                r#"{"jsonrpc":"2.0","id":4,"method":"tools/call"}"#,
                INVALID_PARAMS,
            ),
            (
                r#"{"jsonrpc":"2.0","id":1,"method":"tools/call","params":null}"#,
                INVALID_PARAMS,
            ),
            (
                r#"{"jsonrpc":"2.0","method":"tools/call","params":{"name":"t"}}"#,
                INVALID_REQUEST,
            ),
            (
                r#"{"jsonrpc":"2.0","id":null,"method":"tools/call","params":{"name":"t"}}"#,
                INVALID_REQUEST,
            ),
            (
                r#"{"jsonrpc":"2.0","id":1,"method":"tools/call","params":{"name":"t"}} {}"#,
                PARSE_ERROR,
            ),
            (
                "\u{feff}{\"jsonrpc\":\"2.0\",\"id\":1,\"method\":\"tools/call\",\"params\":{\"name\":\"t\"}}",
                PARSE_ERROR,
            ),
            ("not json", PARSE_ERROR),
        ];
        for (line, code) in cases {
            assert_eq!(reject(line).0, code, "{line}");
        }
        let bad_utf8 = b"{\"jsonrpc\":\"2.0\",\"id\":1,\"method\":\"tools/call\",\"params\":{\"name\":\"t\xff\"}}";
        assert_eq!(parse_tool_call(bad_utf8).unwrap_err().code, PARSE_ERROR);
        let deep = format!(
            r#"{{"jsonrpc":"2.0","id":1,"method":"tools/call","params":{{"name":"t","arguments":{{"x":{}1{}}}}}}}"#,
            "[".repeat(200),
            "]".repeat(200)
        );
        assert_eq!(reject(&deep).0, INVALID_REQUEST);
    }

    /// Found with the `proxy` fuzz target's Go-reader oracle: a member name
    /// in another letter case, even without its exact twin, is read by Go's
    /// encoding/json as that member, so the message means something else there.
    #[test]
    fn refuses_member_names_in_another_letter_case() {
        let envelope = [
            // An answer here, a tools/call of a hidden tool for a Go server.
            r#"{"jsonrpc":"2.0","id":1,"result":{},"METHOD":"tools/call","params":{"name":"drop"}}"#,
            r#"{"jsonrpc":"2.0","id":1,"error":{},"Method":"tools/call","PARAMS":{"name":"drop"}}"#,
            r#"{"jsonrpc":"2.0","ID":1,"method":"ping"}"#,
            r#"{"jsonrpc":"2.0","id":1,"method":"ping","Params":{}}"#,
            r#"{"JSONRPC":"2.0","id":1,"method":"ping"}"#,
            // Unicode folding, as Go's: long s is s.
            r#"{"jsonrpc":"2.0","id":1,"method":"tools/call","paramſ":{"name":"t"}}"#,
        ];
        for line in envelope {
            let r = Envelope::parse(line.as_bytes()).unwrap_err();
            assert_eq!(r.code, INVALID_REQUEST, "{line}");
        }
        let params = [
            r#"{"jsonrpc":"2.0","id":1,"method":"tools/call","params":{"name":"pay","Arguments":{"amount":900}}}"#,
            r#"{"jsonrpc":"2.0","id":1,"method":"tools/call","params":{"NAME":"drop"}}"#,
            r#"{"jsonrpc":"2.0","id":1,"method":"tools/call","params":{"name":"t","argumentſ":{}}}"#,
        ];
        for line in params {
            assert_eq!(reject(line).0, INVALID_PARAMS, "{line}");
        }
        // Other members, and members of other levels, are the server's business.
        assert!(
            parse_tool_call(
                br#"{"jsonrpc":"2.0","id":1,"method":"tools/call","params":{"name":"t","_meta":{},"arguments":{"Name":1}},"x":1}"#
            )
            .is_ok()
        );
        // The server is not policed: its answers are read as they are.
        let answer = Envelope::parse_lenient(br#"{"jsonrpc":"2.0","id":1,"Result":{}}"#).unwrap();
        assert!(answer.id.is_some() && answer.result.is_none());
    }

    #[test]
    fn other_methods_are_only_checked_at_the_top() {
        let env = Envelope::parse(
            br#"{"jsonrpc":"2.0","id":1,"method":"resources/read","params":{"a":1,"a":2}}"#,
        )
        .unwrap();
        assert!(env.method_is("resources/read"));
        assert!(
            Envelope::parse(br#"{"jsonrpc":"2.0","id":1,"method":"ping","Method":"tools/call"}"#)
                .is_err()
        );
    }

    #[test]
    fn rejections_keep_a_readable_id() {
        let r = parse_tool_call(
            br#"{"jsonrpc":"2.0","id":"abc","method":"tools/call","params":{"name":5}}"#,
        )
        .unwrap_err();
        assert_eq!(r.id.map(|v| v.as_bytes()), Some(&br#""abc""#[..]));
    }
}
