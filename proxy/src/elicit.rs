//! Human approval in band (issue 13): the `elicitation/create` request the
//! proxy sends a client that can ask its user, and how its answer is read.
//!
//! Everything here is pure (no state, no I/O); [`crate::session`] keeps the
//! pending elicitations and carries out what an answer means.

use serde_json::{Value, json};

/// Every elicitation id the proxy mints starts with this: a string
/// namespace of its own, so an id never collides with the ids the upstream
/// server uses for its own requests to the client (a client answer with
/// such an id is the proxy's, never forwarded).
pub const ID_PREFIX: &str = "portcullis-elicit-";

/// The arguments shown to the user are cut after this many bytes (of their
/// pretty-printed JSON), with a note saying so.
pub const MAX_SHOWN_ARGUMENT_BYTES: usize = 2048;

/// The first protocol revision whose `elicitation/create` carries `mode`.
pub const MODE_SINCE: &str = "2025-11-25";

/// The text in front of the result of a call the user did not approve.
pub const DECLINED_PREFIX: &str = "[APPROVAL DECLINED] ";

/// Whether an `initialize` request's `params` declare the `elicitation`
/// capability with form mode: `capabilities.elicitation` is an object that
/// is empty (before 2025-11-25 that meant form mode) or has a `form` key.
/// An object with only `url` supports URL mode, which the proxy does not use.
pub fn client_can_elicit(initialize_params: &Value) -> bool {
    let Some(Value::Object(e)) = initialize_params
        .get("capabilities")
        .and_then(|c| c.get("elicitation"))
    else {
        return false;
    };
    e.contains_key("form") || !e.contains_key("url")
}

/// Whether `elicitation/create` sent in protocol revision `version` carries
/// `mode: "form"` (2025-11-25 and later; revisions are dates, so they
/// compare as text).
pub fn takes_mode(version: Option<&str>) -> bool {
    version.is_some_and(|v| v.len() == MODE_SINCE.len() && v >= MODE_SINCE)
}

/// The elicitation id numbered `n`, as a JSON string.
pub fn id(n: u64) -> String {
    format!("{ID_PREFIX}{n}")
}

/// What the user is asked about: one call held by one approval rule.
#[derive(Debug, Clone, Copy)]
pub struct Question<'a> {
    /// The server (the policy's `server`).
    pub server: &'a str,
    /// The tool called.
    pub tool: &'a str,
    /// The rule's message.
    pub message: &'a str,
    /// The rule's name.
    pub rule: &'a str,
    /// The call's `arguments` (JSON text).
    pub arguments: &'a [u8],
}

/// The text of the elicitation: the tool, the rule's message, the
/// arguments (pretty, at most [`MAX_SHOWN_ARGUMENT_BYTES`]) and the rule.
pub fn text(q: &Question<'_>) -> String {
    let pretty = serde_json::from_slice::<Value>(q.arguments)
        .ok()
        .and_then(|v| serde_json::to_string_pretty(&v).ok())
        .unwrap_or_else(|| String::from_utf8_lossy(q.arguments).into_owned());
    let shown = if pretty.len() > MAX_SHOWN_ARGUMENT_BYTES {
        let mut end = MAX_SHOWN_ARGUMENT_BYTES;
        while !pretty.is_char_boundary(end) {
            end -= 1;
        }
        format!(
            "{}\n… ({} more bytes not shown)",
            &pretty[..end],
            pretty.len() - end
        )
    } else {
        pretty
    };
    format!(
        "Approve a call of {}/{}?\n\n{}\n\nArguments:\n{shown}\n\nRule: {}",
        q.server, q.tool, q.message, q.rule
    )
}

/// The `elicitation/create` request with id `id` (see [`id`]) asking about `q`.
pub fn request(id: &str, q: &Question<'_>, with_mode: bool) -> Vec<u8> {
    let mut params = json!({
        "message": text(q),
        "requestedSchema": {
            "type": "object",
            "properties": {
                "approve": {
                    "type": "boolean",
                    "title": "Approve this call",
                    "description": format!(
                        "Yes runs {} with the arguments shown; no refuses it.",
                        q.tool
                    ),
                },
            },
            "required": ["approve"],
        },
    });
    if with_mode {
        params["mode"] = json!("form");
    }
    let v = json!({
        "jsonrpc": "2.0",
        "id": id,
        "method": "elicitation/create",
        "params": params,
    });
    serde_json::to_vec(&v).expect("a JSON value serializes")
}

/// `notifications/cancelled` for the elicitation `id`: the proxy no longer
/// wants its answer.
pub fn cancelled(id: &str, reason: &str) -> Vec<u8> {
    let v = json!({
        "jsonrpc": "2.0",
        "method": "notifications/cancelled",
        "params": {"requestId": id, "reason": reason},
    });
    serde_json::to_vec(&v).expect("a JSON value serializes")
}

/// What the client's answer to an elicitation says.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Verdict {
    /// `action: accept` with `content.approve == true`: forward the call.
    Approved,
    /// `action: accept` with `approve` false.
    Refused,
    /// `action: decline`.
    Declined,
    /// `action: cancel`: the user dismissed the question.
    Cancelled,
    /// A JSON-RPC error answer: its message.
    Failed(String),
    /// Not an elicitation result: what is wrong with it.
    Malformed(String),
}

impl Verdict {
    /// The decision-log stage of a verdict that refuses the call.
    pub fn stage(&self) -> &'static str {
        match self {
            Verdict::Approved => "granted",
            Verdict::Cancelled => "cancelled",
            _ => "declined",
        }
    }

    /// Why the call was not forwarded, for the agent (None when approved).
    pub fn why(&self) -> Option<String> {
        Some(match self {
            Verdict::Approved => return None,
            Verdict::Refused => "the user answered no".into(),
            Verdict::Declined => "the user declined".into(),
            Verdict::Cancelled => "the user dismissed the request".into(),
            Verdict::Failed(m) => format!("the client could not ask its user: {m}"),
            Verdict::Malformed(m) => format!("the client's answer is malformed: {m}"),
        })
    }
}

/// Reads a JSON-RPC response (the client's answer to an elicitation).
pub fn verdict(raw: &[u8]) -> Verdict {
    let Ok(v) = serde_json::from_slice::<Value>(raw) else {
        return Verdict::Malformed("not JSON".into());
    };
    if let Some(e) = v.get("error").filter(|e| !e.is_null()) {
        let message = e
            .get("message")
            .and_then(Value::as_str)
            .unwrap_or("an error without a message");
        let code = e.get("code").and_then(Value::as_i64);
        return Verdict::Failed(match code {
            Some(c) => format!("{message} ({c})"),
            None => message.to_string(),
        });
    }
    let Some(result) = v.get("result").and_then(Value::as_object) else {
        return Verdict::Malformed("`result` is not an object".into());
    };
    match result.get("action").and_then(Value::as_str) {
        Some("accept") => {
            match result
                .get("content")
                .and_then(|c| c.get("approve"))
                .and_then(Value::as_bool)
            {
                Some(true) => Verdict::Approved,
                Some(false) => Verdict::Refused,
                None => Verdict::Malformed(
                    "`action` is accept but `content.approve` is not a boolean".into(),
                ),
            }
        }
        Some("decline") => Verdict::Declined,
        Some("cancel") => Verdict::Cancelled,
        Some(other) => Verdict::Malformed(format!(
            "`action` is {other:?}, not accept, decline or cancel"
        )),
        None => Verdict::Malformed("`action` is missing or not a string".into()),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn form_mode_is_an_empty_object_or_a_form_key() {
        let can = |s: &str| client_can_elicit(&serde_json::from_str(s).unwrap());
        assert!(can(r#"{"capabilities":{"elicitation":{}}}"#));
        assert!(can(r#"{"capabilities":{"elicitation":{"form":{}}}}"#));
        assert!(can(
            r#"{"capabilities":{"elicitation":{"form":{},"url":{}}}}"#
        ));
        assert!(!can(r#"{"capabilities":{"elicitation":{"url":{}}}}"#));
        assert!(!can(r#"{"capabilities":{"sampling":{}}}"#));
        assert!(!can(r#"{"capabilities":{"elicitation":true}}"#));
        assert!(!can(r#"{}"#));
    }

    #[test]
    fn mode_rides_from_2025_11_25_on() {
        assert!(takes_mode(Some("2025-11-25")));
        assert!(takes_mode(Some("2026-06-30")));
        assert!(!takes_mode(Some("2025-06-18")));
        assert!(!takes_mode(Some("2024-11-05")));
        assert!(!takes_mode(Some("garbage")));
        assert!(!takes_mode(None));
    }

    fn question(arguments: &[u8]) -> Question<'_> {
        Question {
            server: "everything",
            tool: "get-sum",
            message: "Sums over 100 need a human",
            rule: "Sums over 100 need a human",
            arguments,
        }
    }

    #[test]
    fn the_request_names_the_tool_message_arguments_and_rule() {
        let r = request(
            "portcullis-elicit-7",
            &question(br#"{"a":500,"b":1}"#),
            true,
        );
        let v: Value = serde_json::from_slice(&r).unwrap();
        assert_eq!(v["id"], "portcullis-elicit-7");
        assert_eq!(v["method"], "elicitation/create");
        assert_eq!(v["params"]["mode"], "form");
        assert_eq!(
            v["params"]["message"],
            "Approve a call of everything/get-sum?\n\nSums over 100 need a human\n\nArguments:\n{\n  \"a\": 500,\n  \"b\": 1\n}\n\nRule: Sums over 100 need a human"
        );
        let schema = &v["params"]["requestedSchema"];
        assert_eq!(schema["type"], "object");
        assert_eq!(schema["required"], json!(["approve"]));
        assert_eq!(schema["properties"]["approve"]["type"], "boolean");
        let without = request("x", &question(b"{}"), false);
        let v: Value = serde_json::from_slice(&without).unwrap();
        assert!(v["params"].get("mode").is_none(), "{v}");
    }

    #[test]
    fn long_arguments_are_cut_on_a_char_boundary() {
        let args = format!(r#"{{"text":"{}"}}"#, "é".repeat(3000));
        let t = text(&question(args.as_bytes()));
        assert!(t.contains("more bytes not shown)"), "{t}");
        assert!(t.len() < MAX_SHOWN_ARGUMENT_BYTES + 300, "{}", t.len());
        assert!(t.ends_with("Rule: Sums over 100 need a human"));
    }

    #[test]
    fn answers_are_read_strictly() {
        let v = |s: &str| verdict(s.as_bytes());
        assert_eq!(
            v(
                r#"{"jsonrpc":"2.0","id":"p","result":{"action":"accept","content":{"approve":true}}}"#
            ),
            Verdict::Approved
        );
        assert_eq!(
            v(
                r#"{"jsonrpc":"2.0","id":"p","result":{"action":"accept","content":{"approve":false}}}"#
            ),
            Verdict::Refused
        );
        assert_eq!(
            v(r#"{"jsonrpc":"2.0","id":"p","result":{"action":"decline"}}"#),
            Verdict::Declined
        );
        assert_eq!(
            v(r#"{"jsonrpc":"2.0","id":"p","result":{"action":"cancel"}}"#),
            Verdict::Cancelled
        );
        assert_eq!(
            v(r#"{"jsonrpc":"2.0","id":"p","error":{"code":-32601,"message":"no handler"}}"#),
            Verdict::Failed("no handler (-32601)".into())
        );
        for bad in [
            r#"{"jsonrpc":"2.0","id":"p","result":{"action":"accept","content":{"approve":"yes"}}}"#,
            r#"{"jsonrpc":"2.0","id":"p","result":{"action":"accept"}}"#,
            r#"{"jsonrpc":"2.0","id":"p","result":{"action":"maybe"}}"#,
            r#"{"jsonrpc":"2.0","id":"p","result":{}}"#,
            r#"{"jsonrpc":"2.0","id":"p","result":[1]}"#,
        ] {
            let got = v(bad);
            assert!(matches!(got, Verdict::Malformed(_)), "{bad}: {got:?}");
            assert_eq!(got.stage(), "declined");
            assert!(
                got.why()
                    .unwrap()
                    .starts_with("the client's answer is malformed")
            );
        }
        assert_eq!(Verdict::Cancelled.stage(), "cancelled");
        assert_eq!(Verdict::Approved.why(), None);
    }

    #[test]
    fn cancellation_names_the_elicitation() {
        let c = cancelled("portcullis-elicit-3", "the call was cancelled");
        let v: Value = serde_json::from_slice(&c).unwrap();
        assert_eq!(v["method"], "notifications/cancelled");
        assert_eq!(v["params"]["requestId"], "portcullis-elicit-3");
        assert!(v.get("id").is_none());
    }
}
