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
use crate::json::{
    JStr, JsonErrorKind, MemberIndex, Outline, Strictness, Val, Value, validate,
    validate_outline_into,
};

/// JSON-RPC: the text is not JSON.
pub const PARSE_ERROR: i32 = -32700;
/// JSON-RPC: the JSON is not a valid request.
pub const INVALID_REQUEST: i32 = -32600;
/// JSON-RPC: the request's params are invalid.
pub const INVALID_PARAMS: i32 = -32602;
/// JSON-RPC: the proxy itself failed (not the upstream, not the request).
pub const INTERNAL_ERROR: i32 = -32603;

crate::error_kinds! {
    /// Why the proxy answers a client's message with a JSON-RPC error instead
    /// of forwarding it. The error's `message` is [`RejectKind::message`] and
    /// its code [`RejectKind::code`]: both follow from the kind alone.
    pub enum RejectKind {
        /// Not exactly one JSON value (invalid UTF-8, trailing data, not JSON).
        NotJson => "parse error: not a single valid JSON value",
        /// Two members of the message with the same name.
        DuplicateMember => "duplicate member in message",
        /// Two members of the message whose names differ only in letter case.
        CaseVariantMembers => "message members differ only in letter case",
        /// Arrays and objects nested deeper than the strict limit.
        TooDeep => "message nested too deeply",
        /// JSON, but not an object.
        NotAnObject => "message must be a JSON object",
        /// A lone member name in another letter case (`"METHOD"`, `"Params"`):
        /// Go's encoding/json would read it as that member.
        MemberInAnotherCase => "message member name in another letter case",
        /// `method` is not a string.
        MethodNotString => "method must be a string",
        /// No method, and not a response either.
        NotAMessage => "message is neither a request, a notification nor a response",
        /// A request id that is neither a string nor a number.
        BadId => "request id must be a string or a number",
        /// A number id written with an exponent of 2^39 or more in magnitude: it cannot
        /// be compared exactly, so two different ids could be taken for one.
        IdExponentTooLarge => "request id number has an exponent too large to compare exactly",
        /// A string id holding a lone UTF-16 surrogate escape (`"\ud800"`):
        /// readers decode it to U+FFFD, so it could be taken for another id.
        IdLoneSurrogate => "request id string holds a lone UTF-16 surrogate",
        /// A request id already used by a request still waiting for its answer.
        IdInFlight => "request id is already used by a request in flight",
        /// A batch (JSON array) with no element.
        EmptyBatch => "empty batch",
        /// [`parse_tool_call`] given another method.
        NotToolsCall => "not a tools/call request",
        /// A `tools/call` notification (no id, or an id that is not a string or number).
        CallWithoutId => "tools/call must be a request with a string or number id",
        /// A `tools/call` without params.
        CallWithoutParams => "tools/call needs params",
        /// `tools/call` params that are not JSON.
        ParamsNotJson => "tools/call params are not valid JSON",
        /// The same key twice in `tools/call` params or arguments.
        DuplicateParamsKey => "duplicate key in tools/call params or arguments",
        /// Keys differing only in letter case in `tools/call` params or arguments.
        CaseVariantParamsKeys => "keys differing only in letter case in tools/call params or arguments",
        /// `tools/call` params `"Name"` or `"ARGUMENTS"` without the exact member:
        /// a Go server would read it as the name or the arguments.
        ParamsMemberInAnotherCase => "tools/call params member name in another letter case",
        /// `tools/call` arguments nested deeper than the strict limit.
        ArgumentsTooDeep => "tools/call arguments nested too deeply",
        /// `tools/call` params that are not an object.
        ParamsNotObject => "tools/call params must be an object",
        /// A `tools/call` name that is not a string.
        NameNotString => "tools/call name must be a string",
        /// `tools/call` arguments that are neither an object nor null.
        ArgumentsNotObject => "tools/call arguments must be an object",
        /// A `tools/call` without a name.
        CallWithoutName => "tools/call needs a tool name",
        /// The proxy failed while deciding (a bug, not the request's fault).
        Internal => "internal error while deciding the message",
    }
}

impl RejectKind {
    /// The JSON-RPC error code a client gets for this kind: the one table.
    pub const fn code(self) -> i32 {
        use RejectKind::*;
        match self {
            NotJson => PARSE_ERROR,
            DuplicateMember | CaseVariantMembers | MemberInAnotherCase | TooDeep | NotAnObject
            | MethodNotString | NotAMessage | BadId | IdExponentTooLarge | IdLoneSurrogate
            | IdInFlight | EmptyBatch | NotToolsCall | CallWithoutId => INVALID_REQUEST,
            CallWithoutParams
            | ParamsNotJson
            | DuplicateParamsKey
            | CaseVariantParamsKeys
            | ParamsMemberInAnotherCase
            | ArgumentsTooDeep
            | ParamsNotObject
            | NameNotString
            | ArgumentsNotObject
            | CallWithoutName => INVALID_PARAMS,
            Internal => INTERNAL_ERROR,
        }
    }

    /// The refusal of a message whose text failed the JSON reader with `e`.
    pub const fn of_message(e: JsonErrorKind) -> RejectKind {
        match JsonFault::of(e) {
            JsonFault::Duplicate => RejectKind::DuplicateMember,
            JsonFault::CaseVariant => RejectKind::CaseVariantMembers,
            JsonFault::Depth => RejectKind::TooDeep,
            JsonFault::Syntax => RejectKind::NotJson,
        }
    }

    /// The refusal of a `tools/call` whose params failed the strict reader with `e`.
    pub const fn of_params(e: JsonErrorKind) -> RejectKind {
        match JsonFault::of(e) {
            JsonFault::Duplicate => RejectKind::DuplicateParamsKey,
            JsonFault::CaseVariant => RejectKind::CaseVariantParamsKeys,
            JsonFault::Depth => RejectKind::ArgumentsTooDeep,
            JsonFault::Syntax => RejectKind::ParamsNotJson,
        }
    }
}

/// The JSON reader's errors as refusals see them: ambiguous (two kinds),
/// too deep, or not JSON at all.
enum JsonFault {
    Duplicate,
    CaseVariant,
    Depth,
    Syntax,
}

impl JsonFault {
    /// Exhaustive, so a new reader error needs a decision here.
    const fn of(e: JsonErrorKind) -> JsonFault {
        use JsonErrorKind::*;
        match e {
            DuplicateKey => JsonFault::Duplicate,
            CaseVariantKeys => JsonFault::CaseVariant,
            TooDeep => JsonFault::Depth,
            TrailingData
            | InvalidLiteral
            | ExpectedValue
            | UnexpectedEnd
            | ExpectedArraySeparator
            | ExpectedKey
            | ExpectedColon
            | ExpectedObjectSeparator
            | InvalidUtf8
            | ControlCharacter
            | UnterminatedString
            | InvalidUnicodeEscape
            | InvalidEscape
            | InvalidNumber => JsonFault::Syntax,
        }
    }
}

/// A message the proxy answers with a JSON-RPC error instead of forwarding.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Rejection<'a> {
    kind: RejectKind,
    /// The request's id, when it could be read unambiguously.
    pub id: Option<Value<'a>>,
}

impl<'a> Rejection<'a> {
    /// A refusal of `kind`, answered with `id` (None: `"id": null`).
    pub const fn new(kind: RejectKind, id: Option<Value<'a>>) -> Rejection<'a> {
        Rejection { kind, id }
    }

    /// What is wrong.
    pub const fn kind(&self) -> RejectKind {
        self.kind
    }

    /// The JSON-RPC error code (from the kind).
    pub const fn code(&self) -> i32 {
        self.kind.code()
    }

    /// The error's `message` (from the kind).
    pub const fn message(&self) -> &'static str {
        self.kind.message()
    }
}

impl std::fmt::Display for Rejection<'_> {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "{} ({})", self.kind, self.code())
    }
}

impl std::error::Error for Rejection<'_> {}

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
    /// `params._meta` (MCP's request metadata: a payment credential).
    meta: Option<Value<'a>>,
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

/// True when `k` could be read as the member `name` (lowercase ASCII) by
/// a reader matching names case-insensitively: spelled exactly, in another
/// ASCII case, or with a character whose lower or upper case is a letter
/// of `name` (`ſ` for `s`, the Kelvin sign for `k`, `İ` and `ı` for `i`:
/// Go's `encoding/json` folds a name with `ToUpper(ToLower(c))`, which
/// takes `İ` to `I` where Unicode full case folding does not).
pub fn may_read_as(k: &JStr<'_>, name: &str) -> bool {
    let mut want = name.bytes();
    for c in k.chars() {
        let Some(a) = want.next() else {
            return false;
        };
        let is = |c: char| c.to_ascii_lowercase() == char::from(a);
        let matches = if c.is_ascii() {
            is(c)
        } else {
            let lower = c.to_lowercase().next();
            let upper = c.to_uppercase().next();
            [
                lower,
                upper,
                lower.and_then(|l| l.to_uppercase().next()),
                upper.and_then(|u| u.to_lowercase().next()),
            ]
            .into_iter()
            .flatten()
            .any(is)
        };
        if !matches {
            return false;
        }
    }
    want.next().is_none()
}

/// The envelope of a server's answer (a well-formed JSON text), when two
/// readers could read it differently: a member named like `jsonrpc`, `id`,
/// `method`, `params`, `result` or `error` but not spelled exactly
/// (`"Result"`, `"ID"`, `"reſult"`), or one of them twice (`"id"` and
/// `"id"`, or `"id"` and `"Id"`). Returns the values of every member that
/// may be read as `id` (the requests the answer may be meant for), or None
/// when the envelope is unambiguous (or the text is not an object).
///
/// Member names are compared after their escapes are decoded: `"r\u0065sult"`
/// is `result`, spelled exactly. The proxy reads answers with names as
/// written, while a client decoding case-insensitively (Go's
/// `encoding/json`) or keeping the first of two members would read such an
/// answer as another one: a list it did not filter, or an answer to another
/// request.
pub fn ambiguous_answer_envelope(raw: &[u8]) -> Option<Vec<Value<'_>>> {
    let Val::Object(obj) = Value::from_validated(raw).val() else {
        return None;
    };
    let mut seen = [false; MEMBERS.len()];
    let mut ambiguous = false;
    let mut ids = Vec::new();
    for (k, v) in obj.members() {
        let Some(i) = MEMBERS.iter().position(|m| may_read_as(&k, m)) else {
            continue;
        };
        ambiguous |= seen[i] || !k.eq_str(MEMBERS[i]);
        seen[i] = true;
        if MEMBERS[i] == "id" {
            ids.push(v);
        }
    }
    ambiguous.then_some(ids)
}

/// Every member of a server's message (a well-formed JSON text) that a
/// reader may take as its `id`, in any spelling [`ambiguous_answer_envelope`]
/// considers: the requests a message the proxy cannot read as an envelope
/// (a `method` that is not a string, say) may answer. Empty when the text
/// is not an object.
pub fn answer_ids(raw: &[u8]) -> Vec<Value<'_>> {
    let Val::Object(obj) = Value::from_validated(raw).val() else {
        return Vec::new();
    };
    obj.members()
        .filter(|(k, _)| may_read_as(k, "id"))
        .map(|(_, v)| v)
        .collect()
}

thread_local! {
    /// The outline of the last message [`Envelope::parse`] read on this
    /// thread: a few KiB, which a fresh one would have to initialise for
    /// every message. It also holds the index of a `tools/call`'s arguments,
    /// which [`Envelope::tool_call`] copies once into the call, rather than
    /// every envelope carrying it (and copying it each time it is moved).
    static OUTLINE: std::cell::RefCell<Outline> =
        const { std::cell::RefCell::new(Outline::new()) };
}

fn first_byte(raw: &[u8]) -> Option<u8> {
    raw.iter().copied().find(|b| !b.is_ascii_whitespace())
}

impl<'a> Envelope<'a> {
    /// Reads one message (a JSON object) strictly: well-formed JSON, and no
    /// duplicate or case-variant members at the top level. `tools/call`
    /// messages get their stricter checks in [`Envelope::tool_call`].
    pub fn parse(raw: &'a [u8]) -> Result<Envelope<'a>, Rejection<'a>> {
        OUTLINE.with(|cell| match cell.try_borrow_mut() {
            Ok(mut outline) => Self::parse_with(raw, &mut outline),
            // Never re-entered in practice; a fresh outline does as well.
            Err(_) => Self::parse_with(raw, &mut Outline::new()),
        })
    }

    /// [`Envelope::parse`] with `outline` to fill (whatever it held before).
    fn parse_with(raw: &'a [u8], outline: &mut Outline) -> Result<Envelope<'a>, Rejection<'a>> {
        // One strict pass covers the common case (a well-formed tools/call)
        // and outlines the members a reader needs; only a message with
        // ambiguous keys below the top level is read twice.
        match validate_outline_into(raw, Strictness::STRICT, outline) {
            Ok(()) if outline.is_complete() && first_byte(raw) == Some(b'{') => {
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
                        meta: None,
                        variant: false,
                    };
                    for m in outline.children(params) {
                        let k = m.key(raw);
                        if k.eq_str("name") {
                            parts.name = Some(m.value(raw));
                        } else if k.eq_str("arguments") {
                            parts.arguments = Some(m.value(raw));
                        } else if k.eq_str("_meta") {
                            parts.meta = Some(m.value(raw));
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
            Err(e) if e.kind().is_ambiguous_key() => match validate(raw, Strictness::ENVELOPE) {
                Ok(()) => Self::read_validated(raw, Names::Strict),
                Err(e) => Err(Rejection::new(
                    RejectKind::of_message(e.kind()),
                    unambiguous_id(raw),
                )),
            },
            Err(e) => Err(Rejection::new(
                RejectKind::of_message(e.kind()),
                unambiguous_id(raw),
            )),
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

    /// Reads a server's answer from the outline [`crate::structural::scan_answer`]
    /// made of it ([`crate::structural::Scan::Plain`]): member names exactly
    /// as written, no second pass over the text.
    pub fn from_answer(
        raw: &'a [u8],
        outline: &crate::structural::AnswerOutline,
    ) -> Result<Envelope<'a>, Rejection<'a>> {
        Self::from_members(raw, outline.top(raw), Names::Exact)
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
        .map_err(|e| Rejection::new(RejectKind::of_message(e.kind()), None))?;
        Self::read_validated(raw, Names::Exact)
    }

    /// Reads the members of a message already validated as JSON (duplicate
    /// and case checks are the caller's business).
    fn read_validated(raw: &'a [u8], names: Names) -> Result<Envelope<'a>, Rejection<'a>> {
        let Val::Object(obj) = Value::from_validated(raw).val() else {
            return Err(Rejection::new(RejectKind::NotAnObject, None));
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
            return Err(Rejection::new(
                RejectKind::MemberInAnotherCase,
                env.request_id(),
            ));
        }
        if bad_method {
            return Err(Rejection::new(
                RejectKind::MethodNotString,
                env.request_id(),
            ));
        }
        Ok(env)
    }

    /// True when `method` is exactly `m` (after escapes are decoded).
    pub fn method_is(&self, m: &str) -> bool {
        self.method.is_some_and(|s| s.eq_str(m))
    }

    /// `params._meta` when `params` is an object that has it: found while
    /// validating when the message was outlined, else by walking `params`.
    pub fn params_meta(&self) -> Option<Value<'a>> {
        match self.call {
            Some(parts) => parts.meta,
            None => match self.params?.val() {
                Val::Object(p) => p.get("_meta"),
                _ => None,
            },
        }
    }

    /// The id if it is a valid request id (a string or a number).
    pub fn request_id(&self) -> Option<Value<'a>> {
        // What `Value::val` reads as a string or a number, told by the first
        // byte as `val` tells it, without parsing the number (a call asks
        // for its id several times).
        self.id.filter(|v| {
            !matches!(
                v.as_bytes().first(),
                None | Some(b'n' | b't' | b'f' | b'[' | b'{')
            )
        })
    }

    /// The `tools/call` in this message, under the strict rules: params an
    /// object with no duplicate or case-variant members, a string `name`,
    /// `arguments` absent, null or an object with no duplicate or
    /// case-variant keys at any depth, and an id (a `tools/call`
    /// notification cannot be answered, so it is refused).
    pub fn tool_call(&self) -> Result<ToolCall<'a>, Rejection<'a>> {
        let id = self.request_id();
        let reject = |kind| Rejection::new(kind, id);
        if id.is_none() {
            return Err(reject(RejectKind::CallWithoutId));
        }
        let Some(params) = self.params else {
            return Err(reject(RejectKind::CallWithoutParams));
        };
        // Strict over the whole params: its own members and every level of the arguments.
        if !self.strict
            && let Err(e) = validate(params.as_bytes(), Strictness::STRICT)
        {
            return Err(reject(RejectKind::of_params(e.kind())));
        }
        let Val::Object(p) = params.val() else {
            return Err(reject(RejectKind::ParamsNotObject));
        };
        let (name_value, args_value, outlined, variant) = match self.call {
            Some(parts) => (parts.name, parts.arguments, true, parts.variant),
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
                (n, a, false, variant)
            }
        };
        if variant {
            // A Go server would read `"Name"` or `"ARGUMENTS"` as the name or the arguments.
            return Err(reject(RejectKind::ParamsMemberInAnotherCase));
        }
        let name = match name_value.map(|v| v.val()) {
            None => None,
            Some(Val::Str(s)) => Some(match s.as_plain() {
                Some(plain) => Cow::Borrowed(plain),
                None => Cow::Owned(s.chars().collect()),
            }),
            Some(_) => return Err(reject(RejectKind::NameNotString)),
        };
        let arguments = match args_value.map(|v| v.val()) {
            None | Some(Val::Null) => None,
            Some(Val::Object(o)) => Some(o),
            Some(_) => {
                return Err(reject(RejectKind::ArgumentsNotObject));
            }
        };
        let Some(name) = name else {
            return Err(reject(RejectKind::CallWithoutName));
        };
        // The index the validator made of these arguments, when this
        // envelope was the last outlined on this thread (else they are walked).
        let index = match arguments {
            Some(o) if outlined => {
                let at = o.as_bytes().as_ptr() as usize - self.raw.as_ptr() as usize;
                let span = (at, at + o.as_bytes().len());
                OUTLINE.with(|cell| {
                    cell.try_borrow().map_or(MemberIndex::NONE, |outline| {
                        outline.arguments_of(self.raw, span)
                    })
                })
            }
            _ => MemberIndex::NONE,
        };
        Ok(ToolCall::from_parts(name, arguments, index))
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
        return Err(Rejection::new(RejectKind::NotToolsCall, env.request_id()));
    }
    env.tool_call()
}

impl From<CallError> for Rejection<'static> {
    fn from(e: CallError) -> Self {
        let kind = match e {
            CallError::Json(j) => RejectKind::of_message(j.kind()),
            CallError::NotAnObject => RejectKind::ArgumentsNotObject,
        };
        Rejection::new(kind, None)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn reject(line: &str) -> (i32, &'static str) {
        let r = parse_tool_call(line.as_bytes()).unwrap_err();
        (r.code(), r.message())
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
        assert_eq!(parse_tool_call(bad_utf8).unwrap_err().code(), PARSE_ERROR);
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
            assert_eq!(r.code(), INVALID_REQUEST, "{line}");
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
    fn answer_envelopes_readable_two_ways_are_ambiguous() {
        let ids = |raw: &str| {
            validate(raw.as_bytes(), Strictness::LENIENT).unwrap();
            ambiguous_answer_envelope(raw.as_bytes())
                .map(|v| v.iter().map(|v| v.as_bytes().to_vec()).collect::<Vec<_>>())
        };
        let none: Option<Vec<Vec<u8>>> = None;
        assert_eq!(ids(r#"{"jsonrpc":"2.0","id":1,"result":{}}"#), none);
        assert_eq!(ids(r#"{"jsonrpc":"2.0","id":1,"error":{}}"#), none);
        assert_eq!(ids(r#"{"method":"x","params":{}}"#), none);
        assert_eq!(ids(r#"[1]"#), none);
        // Escapes are decoded: spelled exactly.
        assert_eq!(ids(r#"{"\u0069d":1,"r\u0065sult":{}}"#), none);
        // Other names, and case variants deeper down, do not count.
        assert_eq!(
            ids(r#"{"id":1,"result":{"ID":2},"Results":3,"ids":4}"#),
            none
        );
        for (raw, want) in [
            (r#"{"id":1,"Result":{}}"#, &[&b"1"[..]][..]),
            (r#"{"ID":1,"result":{}}"#, &[b"1"]),
            (r#"{"id":3,"result":{},"id":4}"#, &[b"3", b"4"]),
            (r#"{"id":4,"Id":3,"result":{}}"#, &[b"4", b"3"]),
            (r#"{"id":"a","ERROR":{}}"#, &[br#""a""#]),
            (r#"{"result":{},"JSONRPC":"2.0"}"#, &[]),
            (r#"{"id":1,"result":{},"Method":"x"}"#, &[b"1"]),
            (r#"{"id":1,"result":{},"paramS":{}}"#, &[b"1"]),
            // Characters Go folds to an envelope name's letters.
            ("{\"id\":1,\"re\u{17f}ult\":{}}", &[b"1"]),
            ("{\"\u{130}d\":1,\"result\":{}}", &[b"1"]),
            ("{\"\u{131}D\":1,\"result\":{}}", &[b"1"]),
            (r#"{"id":1,"result":{},"re\u017fult":{}}"#, &[b"1"]),
            (r#"{"\u0049d":1,"result":{}}"#, &[b"1"]),
        ] {
            assert_eq!(
                ids(raw),
                Some(want.iter().map(|w| w.to_vec()).collect()),
                "{raw}"
            );
        }
    }

    /// Every refusal with its code and message, written out independently of
    /// the table: a reword, or a kind moved to another code, fails here
    /// (and changes what clients see, so it must be deliberate).
    #[test]
    fn every_refusal_kind_has_its_code_and_message() {
        use RejectKind::*;
        // An exhaustive match: a new kind does not build without its row.
        let pinned = |k: RejectKind| -> (i32, &str) {
            match k {
                NotJson => (-32700, "parse error: not a single valid JSON value"),
                DuplicateMember => (-32600, "duplicate member in message"),
                CaseVariantMembers => (-32600, "message members differ only in letter case"),
                TooDeep => (-32600, "message nested too deeply"),
                NotAnObject => (-32600, "message must be a JSON object"),
                MemberInAnotherCase => (-32600, "message member name in another letter case"),
                MethodNotString => (-32600, "method must be a string"),
                NotAMessage => (
                    -32600,
                    "message is neither a request, a notification nor a response",
                ),
                BadId => (-32600, "request id must be a string or a number"),
                IdExponentTooLarge => (
                    -32600,
                    "request id number has an exponent too large to compare exactly",
                ),
                IdLoneSurrogate => (-32600, "request id string holds a lone UTF-16 surrogate"),
                IdInFlight => (-32600, "request id is already used by a request in flight"),
                EmptyBatch => (-32600, "empty batch"),
                NotToolsCall => (-32600, "not a tools/call request"),
                CallWithoutId => (
                    -32600,
                    "tools/call must be a request with a string or number id",
                ),
                CallWithoutParams => (-32602, "tools/call needs params"),
                ParamsNotJson => (-32602, "tools/call params are not valid JSON"),
                DuplicateParamsKey => (-32602, "duplicate key in tools/call params or arguments"),
                CaseVariantParamsKeys => (
                    -32602,
                    "keys differing only in letter case in tools/call params or arguments",
                ),
                ParamsMemberInAnotherCase => (
                    -32602,
                    "tools/call params member name in another letter case",
                ),
                ArgumentsTooDeep => (-32602, "tools/call arguments nested too deeply"),
                ParamsNotObject => (-32602, "tools/call params must be an object"),
                NameNotString => (-32602, "tools/call name must be a string"),
                ArgumentsNotObject => (-32602, "tools/call arguments must be an object"),
                CallWithoutName => (-32602, "tools/call needs a tool name"),
                Internal => (-32603, "internal error while deciding the message"),
            }
        };
        assert_eq!(RejectKind::ALL.len(), 26);
        for &k in RejectKind::ALL {
            assert_eq!((k.code(), k.message()), pinned(k), "{k:?}");
            let r = Rejection::new(k, None);
            assert_eq!(
                (r.code(), r.message(), r.kind()),
                (k.code(), k.message(), k)
            );
        }
    }

    /// Every error of the JSON reader, and the refusal it becomes in the
    /// envelope and in `tools/call` params: ambiguity and depth are invalid
    /// requests or params, anything else is not JSON.
    #[test]
    fn every_json_error_becomes_its_refusal() {
        for &e in JsonErrorKind::ALL {
            let (message, params) = match e {
                JsonErrorKind::DuplicateKey => {
                    (RejectKind::DuplicateMember, RejectKind::DuplicateParamsKey)
                }
                JsonErrorKind::CaseVariantKeys => (
                    RejectKind::CaseVariantMembers,
                    RejectKind::CaseVariantParamsKeys,
                ),
                JsonErrorKind::TooDeep => (RejectKind::TooDeep, RejectKind::ArgumentsTooDeep),
                _ => (RejectKind::NotJson, RejectKind::ParamsNotJson),
            };
            assert_eq!(RejectKind::of_message(e), message, "{e:?}");
            assert_eq!(RejectKind::of_params(e), params, "{e:?}");
            assert_eq!(
                RejectKind::of_message(e).code() == PARSE_ERROR,
                !e.is_ambiguous_key() && e != JsonErrorKind::TooDeep,
                "{e:?}"
            );
        }
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

    #[test]
    fn params_meta_is_found_with_or_without_the_outline() {
        let meta = br#"{"cred":{"challenge":{"id":"c1"}}}"#;
        let line = format!(
            r#"{{"jsonrpc":"2.0","id":1,"method":"tools/call","params":{{"name":"t","arguments":{{"a":[1,{{"b":2}}]}},"_m\u0065ta":{}}}}}"#,
            std::str::from_utf8(meta).unwrap()
        );
        let outlined = Envelope::parse(line.as_bytes()).unwrap();
        assert!(outlined.call.is_some(), "read from the outline");
        assert_eq!(
            outlined.params_meta().map(|v| v.as_bytes()),
            Some(&meta[..])
        );
        // More top-level members than an outline holds: params is walked.
        let extra: String = (0..20).map(|i| format!(r#""x{i}":{i},"#)).collect();
        let walked_line = line.replacen('{', &format!("{{{extra}"), 1);
        let walked = Envelope::parse(walked_line.as_bytes()).unwrap();
        assert!(walked.call.is_none(), "walked");
        assert_eq!(walked.params_meta().map(|v| v.as_bytes()), Some(&meta[..]));
        let none = Envelope::parse(
            br#"{"jsonrpc":"2.0","id":1,"method":"tools/call","params":{"name":"t"}}"#,
        )
        .unwrap();
        assert_eq!(none.params_meta(), None);
    }

    #[test]
    fn a_call_reads_its_own_arguments_whatever_was_parsed_since() {
        // The index of the arguments lives in the thread's outline, which
        // the next message overwrites: an envelope read earlier must still
        // get its own arguments (the text it was made of is checked).
        let a = br#"{"jsonrpc":"2.0","id":1,"method":"tools/call","params":{"name":"t","arguments":{"k":"first","n":1}}}"#;
        let b = br#"{"jsonrpc":"2.0","id":2,"method":"tools/call","params":{"name":"t","arguments":{"k":"other","n":2}}}"#;
        let b_copy = b.to_vec();
        let env_a = Envelope::parse(a).unwrap();
        let env_b = Envelope::parse(b).unwrap();
        let _ = Envelope::parse(&b_copy).unwrap(); // the same bytes elsewhere
        for (env, k, n) in [(env_a, "first", "1"), (env_b, "other", "2")] {
            let call = env.tool_call().unwrap();
            let got: Vec<(String, Vec<u8>)> = call
                .arg_members()
                .map(|(key, v)| (key.chars().collect(), v.as_bytes().to_vec()))
                .collect();
            assert_eq!(
                got,
                vec![
                    ("k".to_string(), format!("\"{k}\"").into_bytes()),
                    ("n".to_string(), n.as_bytes().to_vec()),
                ]
            );
        }
    }

    #[test]
    fn request_ids_are_strings_and_numbers_as_values_read_them() {
        for id in [
            "1", "-1", "0", "1.5e3", "-0.0", r#""a""#, r#""""#, "null", "true", "false", "[1]",
            "{}",
        ] {
            let line = format!(r#"{{"jsonrpc":"2.0","id":{id},"method":"ping"}}"#);
            let env = Envelope::parse(line.as_bytes()).unwrap();
            let by_value = matches!(env.id.unwrap().val(), Val::Str(_) | Val::Num(_));
            assert_eq!(env.request_id().is_some(), by_value, "{id}");
        }
    }
}
