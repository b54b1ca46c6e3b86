//! Result rules in the proxy: the answer of a watched request (a `tools/call`,
//! or a `resources/read` a rule names) is checked before the client sees it
//! (docs/results.md). The scanning itself is `portcullis_core::results`.

use portcullis_core::json::push_json_str;
use portcullis_core::policy::PolicyMeta;
use portcullis_core::results::{Count, Refusal, ResultRule};

use crate::respond::DENY_PREFIX;

/// The `_meta` key of a withheld answer.
pub const META_KEY: &str = "dev.portcullis/result";

/// The JSON-RPC error code of a withheld `resources/read` answer (a
/// `resources/read` result has no `isError`; an implementation-defined
/// server error, as JSON-RPC reserves -32000 to -32099 for).
pub const RESOURCE_WITHHELD: i32 = -32003;

/// A request whose answer a result rule checks.
#[derive(Debug)]
pub struct Watch {
    /// The rule.
    pub rule: &'static ResultRule,
    /// The tool name, or the resource URI.
    pub what: String,
    /// A `resources/read` (withheld with a JSON-RPC error), not a `tools/call`.
    pub resource: bool,
}

/// What replaces a withheld answer: for a `tools/call`, an `isError`
/// result with the rule's message for the agent, and the rule and what was
/// found (names and counts only) in `_meta`; for a `resources/read`, a
/// JSON-RPC error ([`RESOURCE_WITHHELD`]) with the same in `data`.
pub fn withheld(
    id: &[u8],
    watch: &Watch,
    why: &Refusal,
    counts: &[Count],
    meta: &PolicyMeta,
) -> Vec<u8> {
    let rule = watch.rule;
    let text = format!("{DENY_PREFIX}{}", why.message(rule, &watch.what));
    let mut out = Vec::with_capacity(320);
    out.extend_from_slice(b"{\"jsonrpc\":\"2.0\",\"id\":");
    out.extend_from_slice(id);
    if watch.resource {
        out.extend_from_slice(
            format!(",\"error\":{{\"code\":{RESOURCE_WITHHELD},\"message\":").as_bytes(),
        );
        push_json_str(&mut out, &text);
        out.extend_from_slice(b",\"data\":{");
    } else {
        out.extend_from_slice(b",\"result\":{\"content\":[{\"type\":\"text\",\"text\":");
        push_json_str(&mut out, &text);
        out.extend_from_slice(b"}],\"isError\":true,\"_meta\":{");
    }
    push_json_str(&mut out, META_KEY);
    out.extend_from_slice(b":{\"server\":");
    push_json_str(&mut out, meta.server);
    out.extend_from_slice(b",\"rule\":");
    push_json_str(&mut out, rule.spec.name);
    out.extend_from_slice(b",\"source\":");
    push_json_str(&mut out, &rule.source());
    out.extend_from_slice(b",\"findings\":[");
    for (i, c) in counts.iter().enumerate() {
        if i > 0 {
            out.push(b',');
        }
        out.extend_from_slice(b"{\"rule\":");
        push_json_str(&mut out, c.name);
        out.extend_from_slice(b",\"action\":");
        push_json_str(&mut out, c.action.name());
        out.extend_from_slice(format!(",\"count\":{}}}", c.count).as_bytes());
    }
    out.extend_from_slice(b"],\"policy_digest\":");
    push_json_str(&mut out, meta.digest);
    out.extend_from_slice(b"}}}}");
    out
}
