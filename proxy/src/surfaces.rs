//! Resources and prompts under policy (docs/surfaces.md): reading the
//! request (`resources/read`, `resources/subscribe` by URI, `prompts/get` by
//! name and arguments), the refusal a client gets, and filtering
//! `resources/list`, `resources/templates/list` and `prompts/list`.
//!
//! The session (stdio and HTTP alike) calls these only when the policy
//! governs the surface ([`portcullis_core::Policy::governs`]): a policy
//! without `resource` or `prompt` rules leaves those requests as they were.

use portcullis_core::call::{Surface, ToolCall};
use portcullis_core::json::{Strictness, Val, push_json_str};
use portcullis_core::policy::{Decision, Outcome, PolicyMeta};
use portcullis_core::structural::AnswerOutline;
use portcullis_core::uri::{MAX_URI_LEN, UriError, normalize_into};

use crate::filter::FilterError;
use crate::respond::DENY_PREFIX;

/// The JSON-RPC error code of a resource or prompt request the policy
/// denies (a server error code, in the range JSON-RPC leaves to
/// implementations; `data` carries the decision as a tool denial's `_meta` does).
pub const POLICY_DENIED: i32 = -32003;

/// The code for a hidden resource: MCP's "resource not found", since for
/// this caller it does not exist.
pub const RESOURCE_NOT_FOUND: i32 = -32002;

/// Invalid params (JSON-RPC), for a request without a readable URI or name.
pub const INVALID_PARAMS: i32 = -32602;

/// The surface a method is on, when it is one the policy decides.
pub fn decided_surface(method: &str) -> Option<Surface> {
    match method {
        "resources/read" | "resources/subscribe" => Some(Surface::Resource),
        "prompts/get" => Some(Surface::Prompt),
        _ => None,
    }
}

/// A list method the policy filters: the surface, the result's array and
/// the member of each entry that names it.
pub fn filtered_list(method: &str) -> Option<(Surface, &'static str, &'static str)> {
    match method {
        "resources/list" => Some((Surface::Resource, "resources", "uri")),
        "resources/templates/list" => Some((Surface::Resource, "resourceTemplates", "uriTemplate")),
        "prompts/list" => Some((Surface::Prompt, "prompts", "name")),
        _ => None,
    }
}

/// Why a request could not be decided.
#[derive(Debug)]
pub enum RequestError {
    /// No `params.uri` / `params.name` string, or `arguments` not an object.
    BadParams(&'static str),
    /// The URI cannot be normalised: denied.
    Uri(UriError),
}

/// The URI or name of a request, and its raw arguments (prompts).
pub struct Request<'a> {
    /// The URI as sent, or the prompt name.
    pub name: std::borrow::Cow<'a, str>,
    /// A prompt's `arguments` (raw JSON), `{}` otherwise.
    pub arguments: &'a [u8],
}

/// Reads the request's target from its `params`.
pub fn request<'a>(
    surface: Surface,
    params: Option<portcullis_core::json::Value<'a>>,
) -> Result<Request<'a>, RequestError> {
    let Some(Val::Object(p)) = params.map(|v| v.val()) else {
        return Err(RequestError::BadParams("params must be an object"));
    };
    let (key, what) = match surface {
        Surface::Resource => ("uri", "params.uri must be a string"),
        _ => ("name", "params.name must be a string"),
    };
    let Some(Val::Str(s)) = p.get(key).map(|v| v.val()) else {
        return Err(RequestError::BadParams(what));
    };
    let name = match s.as_plain() {
        Some(t) => std::borrow::Cow::Borrowed(t),
        None => std::borrow::Cow::Owned(s.chars().collect()),
    };
    let arguments = match p.get("arguments") {
        None => &b"{}"[..],
        Some(v) if surface == Surface::Prompt => match v.val() {
            Val::Object(_) | Val::Null => v.as_bytes(),
            _ => {
                return Err(RequestError::BadParams(
                    "params.arguments must be an object",
                ));
            }
        },
        Some(_) => &b"{}"[..],
    };
    Ok(Request { name, arguments })
}

/// Normalises a resource URI into `buf` ([`portcullis_core::uri`]).
pub fn normalized<'b>(uri: &str, buf: &'b mut [u8; MAX_URI_LEN]) -> Result<&'b str, RequestError> {
    normalize_into(uri, buf).map_err(RequestError::Uri)
}

/// The call the policy decides.
pub fn call<'a>(surface: Surface, name: &'a str, arguments: &'a [u8]) -> Option<ToolCall<'a>> {
    ToolCall::on(surface, name, arguments, Strictness::STRICT).ok()
}

/// The JSON-RPC error answering a denied resource or prompt request: the
/// message as a tool denial's text (`[POLICY DENIED] ...`), the decision in
/// `data` under the same key as a tool denial's `_meta`.
pub fn denial(
    id: &[u8],
    surface: Surface,
    name: &str,
    decision: &Decision,
    meta: &PolicyMeta,
) -> Vec<u8> {
    let code = if surface == Surface::Resource && decision.outcome == Outcome::Hidden {
        RESOURCE_NOT_FOUND
    } else {
        POLICY_DENIED
    };
    let mut out = Vec::with_capacity(256);
    out.extend_from_slice(b"{\"jsonrpc\":\"2.0\",\"id\":");
    out.extend_from_slice(id);
    out.extend_from_slice(format!(",\"error\":{{\"code\":{code},\"message\":").as_bytes());
    push_json_str(
        &mut out,
        &format!("{DENY_PREFIX}{}", decision.message_on(surface, name)),
    );
    out.extend_from_slice(b",\"data\":{");
    crate::respond::push_decision_meta(&mut out, meta, surface.name(), name, decision);
    out.extend_from_slice(b"}}}");
    out
}

/// A resource or prompt request an approval rule holds (or a person
/// denied, or that could not be held), answered as a JSON-RPC error
/// [`POLICY_DENIED`] whose message is `text` and whose `data` carries the
/// decision (as [`denial`]) and, under the approval `_meta` key of tool
/// answers, `approval` (id, status, expiry, rule, command).
pub fn approval_error(
    id: &[u8],
    surface: Surface,
    name: &str,
    decision: &Decision,
    meta: &PolicyMeta,
    text: String,
    approval: Option<serde_json::Value>,
) -> Vec<u8> {
    let base = denial(id, surface, name, decision, meta);
    let Ok(mut v) = serde_json::from_slice::<serde_json::Value>(&base) else {
        return base;
    };
    v["error"]["message"] = serde_json::Value::String(text);
    if let Some(a) = approval {
        v["error"]["data"][crate::approvals::META_KEY] = a;
    }
    serde_json::to_vec(&v).unwrap_or(base)
}

/// What the approval of a held resource or prompt request asks an
/// operator to do.
pub fn approval_instructions(id: &str, surface: Surface) -> String {
    let what = match surface {
        Surface::Prompt => "same prompt and arguments",
        _ => "same method and URI",
    };
    format!(
        "A person must approve this request: `portcullis approvals approve {id}` (or deny it: `portcullis approvals deny {id} --reason TEXT`). Then retry the identical request ({what}): it is forwarded once."
    )
}

/// The refusal of a URI that cannot be normalised.
pub fn bad_uri(id: &[u8], uri: &str, e: &UriError) -> Vec<u8> {
    crate::respond::error(
        Some(id),
        POLICY_DENIED,
        &format!(
            "{DENY_PREFIX}Resource {} cannot be normalised: {}",
            portcullis_core::policy::go_quote(uri),
            e.kind
        ),
    )
}

/// Filters one list answer: entries of `array` whose `key` member is hidden
/// (resources by their normalised URI; a URI that cannot be normalised is
/// hidden too, since reading it would be denied) are removed, every other
/// byte kept (`nextCursor` included).
pub fn filter_list(
    raw: &[u8],
    outline: Option<&AnswerOutline>,
    surface: Surface,
    array: &str,
    key: &str,
    hidden: impl Fn(&str) -> bool,
) -> Result<Option<Vec<u8>>, FilterError> {
    let is_hidden = |name: &str| match surface {
        Surface::Resource => {
            let mut buf = [0u8; MAX_URI_LEN];
            match normalize_into(name, &mut buf) {
                Ok(n) => hidden(n),
                Err(_) => true,
            }
        }
        _ => hidden(name),
    };
    crate::filter::filter_member_list(raw, outline, array, key, is_hidden)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn list_pages_keep_their_cursor_and_hide_by_normalised_uri() {
        let page = br#"{"jsonrpc":"2.0","id":4,"result":{"resources":[{"uri":"file:///etc/passwd","name":"p"},{"uri":"FILE:///tmp/../etc/shadow","name":"s"},{"uri":"file:///srv/a","name":"a"},{"uri":"file:///x%2Fy","name":"bad"}],"nextCursor":"page-3"}}"#;
        let out = filter_list(page, None, Surface::Resource, "resources", "uri", |u| {
            u.starts_with("file:///etc/")
        })
        .unwrap()
        .unwrap();
        assert_eq!(
            std::str::from_utf8(&out).unwrap(),
            r#"{"jsonrpc":"2.0","id":4,"result":{"resources":[{"uri":"file:///srv/a","name":"a"}],"nextCursor":"page-3"}}"#
        );
        let prompts = br#"{"jsonrpc":"2.0","id":5,"result":{"prompts":[{"name":"deploy"},{"name":"secret_x"}]}}"#;
        let out = filter_list(prompts, None, Surface::Prompt, "prompts", "name", |n| {
            n.starts_with("secret_")
        })
        .unwrap()
        .unwrap();
        assert_eq!(
            std::str::from_utf8(&out).unwrap(),
            r#"{"jsonrpc":"2.0","id":5,"result":{"prompts":[{"name":"deploy"}]}}"#
        );
        // Nothing hidden: the bytes are forwarded as they came.
        assert!(
            filter_list(prompts, None, Surface::Prompt, "prompts", "name", |_| false)
                .unwrap()
                .is_none()
        );
    }

    #[test]
    fn requests_name_their_target() {
        let v = portcullis_core::json::Value::from_validated(br#"{"uri":"file:///a\u0062"}"#);
        let r = request(Surface::Resource, Some(v)).ok().unwrap();
        assert_eq!(r.name, "file:///ab");
        let v = portcullis_core::json::Value::from_validated(br#"{"name":"p","arguments":[1]}"#);
        assert!(matches!(
            request(Surface::Prompt, Some(v)),
            Err(RequestError::BadParams(
                "params.arguments must be an object"
            ))
        ));
        assert!(matches!(
            request(Surface::Resource, None),
            Err(RequestError::BadParams(_))
        ));
        assert_eq!(
            decided_surface("resources/subscribe"),
            Some(Surface::Resource)
        );
        assert_eq!(decided_surface("resources/unsubscribe"), None);
    }
}
