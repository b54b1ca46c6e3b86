//! The only JSON the proxy writes itself: denials and JSON-RPC errors.

use portcullis_core::json::push_json_str;
use portcullis_core::jsonrpc::RejectKind;
use portcullis_core::policy::{Decision, Outcome, PolicyMeta};

/// The text in front of every denial message.
pub const DENY_PREFIX: &str = "[POLICY DENIED] ";

/// The text in front of the message of a call an approval rule holds.
pub const APPROVAL_PREFIX: &str = "[APPROVAL REQUIRED] ";

/// The `_meta` key under which a denial names its server, rule and policy.
pub const META_KEY: &str = "dev.portcullis/decision";

/// The lowercase name of an outcome, as written in `_meta` and the audit log.
pub fn outcome_name(o: Outcome) -> &'static str {
    match o {
        Outcome::Allowed => "allowed",
        Outcome::Hidden => "hidden",
        Outcome::NotPermitted => "not_permitted",
        Outcome::Check => "rule",
        Outcome::Limit => "limit",
        Outcome::BadAmount => "bad_amount",
        Outcome::StateUnavailable => "state_unavailable",
        Outcome::ApprovalRequired => "approval_required",
    }
}

/// The JSON-RPC result for a denied call: an `isError` tool result the
/// model can read, echoing the request's id bytes, with the deciding rule in `_meta`.
///
/// A call an approval rule holds is answered the same way, its text
/// prefixed `[APPROVAL REQUIRED]` instead (the base of the operator flow's
/// and the in-band flow's results, which replace the text).
pub fn denial(id: &[u8], tool: &str, decision: &Decision, meta: &PolicyMeta) -> Vec<u8> {
    let mut out = Vec::with_capacity(256);
    out.extend_from_slice(b"{\"jsonrpc\":\"2.0\",\"id\":");
    out.extend_from_slice(id);
    out.extend_from_slice(b",\"result\":{\"content\":[{\"type\":\"text\",\"text\":");
    let prefix = if decision.outcome == Outcome::ApprovalRequired {
        APPROVAL_PREFIX
    } else {
        DENY_PREFIX
    };
    let text = format!("{prefix}{}", decision.message(tool));
    push_json_str(&mut out, &text);
    out.extend_from_slice(b"}],\"isError\":true,\"_meta\":{");
    push_decision_meta(&mut out, meta, "tool", tool, decision);
    out.extend_from_slice(b"}}}");
    out
}

/// `"dev.portcullis/decision":{"server":..,"<what>":<name>,"outcome":..,
/// "rule":..,"rule_label":..,"source":..,"policy_digest":..}`: the decision
/// a refusal carries (in a result's `_meta` or an error's `data`).
pub fn push_decision_meta(
    out: &mut Vec<u8>,
    meta: &PolicyMeta,
    what: &str,
    name: &str,
    decision: &Decision,
) {
    push_json_str(out, META_KEY);
    out.extend_from_slice(b":{\"server\":");
    push_json_str(out, meta.server);
    out.extend_from_slice(b",\"");
    out.extend_from_slice(what.as_bytes());
    out.extend_from_slice(b"\":");
    push_json_str(out, name);
    out.extend_from_slice(b",\"outcome\":");
    push_json_str(out, outcome_name(decision.outcome));
    if let Some(rule) = decision.rule.and_then(|r| meta.rule(r)) {
        out.extend_from_slice(b",\"rule\":");
        push_json_str(out, rule.name);
        out.extend_from_slice(b",\"rule_label\":");
        push_json_str(out, rule.label);
        out.extend_from_slice(b",\"source\":");
        push_json_str(out, &format!("{}:{}:{}", rule.file, rule.line, rule.column));
    }
    out.extend_from_slice(b",\"policy_digest\":");
    push_json_str(out, meta.digest);
    out.push(b'}');
}

/// The JSON-RPC error answering a refused client message: code and message
/// from its kind. `id` is the raw id bytes, or None for `null`.
pub fn refusal(id: Option<&[u8]>, kind: RejectKind) -> Vec<u8> {
    error(id, kind.code(), kind.message())
}

/// A JSON-RPC error response. `id` is the raw id bytes, or None for `null`.
pub fn error(id: Option<&[u8]>, code: i32, message: &str) -> Vec<u8> {
    let mut out = Vec::with_capacity(96 + message.len());
    out.extend_from_slice(b"{\"jsonrpc\":\"2.0\",\"id\":");
    out.extend_from_slice(id.unwrap_or(b"null"));
    out.extend_from_slice(format!(",\"error\":{{\"code\":{code},\"message\":").as_bytes());
    push_json_str(&mut out, message);
    out.extend_from_slice(b"}}");
    out
}

#[cfg(test)]
mod tests {
    use super::*;
    use portcullis_core::json::{Strictness, validate};

    #[test]
    fn strings_are_escaped() {
        let mut out = Vec::new();
        push_json_str(&mut out, "a\"b\\c\nd\u{1}é\u{2028}");
        assert_eq!(
            String::from_utf8(out).unwrap(),
            r#""a\"b\\c\nd\u0001é\u2028""#
        );
    }

    #[test]
    fn errors_are_valid_json() {
        let e = error(Some(b"\"x\""), -32602, "tools/call name must be a string");
        assert_eq!(
            String::from_utf8(e.clone()).unwrap(),
            r#"{"jsonrpc":"2.0","id":"x","error":{"code":-32602,"message":"tools/call name must be a string"}}"#
        );
        validate(&e, Strictness::STRICT).unwrap();
        validate(&error(None, -32700, "parse error"), Strictness::STRICT).unwrap();
    }
}
