//! Carrying out idempotency windows in a session: the JSON the proxy writes
//! for a replayed answer and for a refused duplicate, and how a server's
//! answer is judged (remembered or not).
//!
//! The decision names the window ([`portcullis_core::policy::Decision::idempotency`]);
//! [`crate::session::Session`] claims the key in the store, forwards the
//! first call, and uses these helpers for the rest.

use std::time::Duration;

use portcullis_core::idempotency::IdempotencySpec;
use portcullis_core::json::{Strictness, Val, Value, push_json_str, validate};
use portcullis_core::policy::PolicyMeta;

use crate::respond::{DENY_PREFIX, META_KEY};

/// The `_meta` key a replayed answer carries.
pub const REPLAY_META_KEY: &str = "portcullis/idempotent-replay";

/// How long an identical call waits for one in flight before it is refused.
pub const MAX_WAIT: Duration = Duration::from_secs(30);

/// How often a waiting call looks at the store again.
pub const POLL: Duration = Duration::from_millis(10);

/// How long an in-flight claim holds its key when its proxy never settles
/// it (the process died): then the next identical call is forwarded.
pub const LEASE_MS: u64 = 10 * 60 * 1000;

/// True when a server's answer to a `tools/call` is a success worth
/// remembering: a `result` that is not `isError: true`. A JSON-RPC error, an
/// error result or anything unreadable is a failure, and failures are not
/// remembered (the next identical call is forwarded).
pub fn is_success(answer: &[u8]) -> bool {
    if validate(answer, Strictness::LENIENT).is_err() {
        return false;
    }
    let Val::Object(o) = Value::from_validated(answer).val() else {
        return false;
    };
    if o.get("error").is_some_and(|e| !e.is_null()) {
        return false;
    }
    match o.get("result").map(|r| r.val()) {
        Some(Val::Object(r)) => !matches!(r.get("isError").map(|v| v.val()), Some(Val::Bool(true))),
        _ => false,
    }
}

/// Offset of `inner` inside `outer` (a sub-slice of it).
fn offset(outer: &[u8], inner: &[u8]) -> usize {
    inner.as_ptr() as usize - outer.as_ptr() as usize
}

/// The stored answer `stored` (a whole JSON-RPC success) for the request
/// with id `id` (raw JSON): the id replaced, and
/// `result._meta["portcullis/idempotent-replay"]` added, saying the answer
/// is a replay and of which call. None when `stored` is not such an answer.
pub fn replay(
    stored: &[u8],
    id: &[u8],
    server: &str,
    tool: &str,
    spec: &IdempotencySpec,
) -> Option<Vec<u8>> {
    validate(stored, Strictness::LENIENT).ok()?;
    let Val::Object(top) = Value::from_validated(stored).val() else {
        return None;
    };
    let original_id = top.get("id")?;
    let Val::Object(result) = top.get("result")?.val() else {
        return None;
    };
    let mut info = Vec::with_capacity(160);
    push_json_str(&mut info, REPLAY_META_KEY);
    info.extend_from_slice(b":{\"original_id\":");
    info.extend_from_slice(original_id.as_bytes());
    info.extend_from_slice(b",\"server\":");
    push_json_str(&mut info, server);
    info.extend_from_slice(b",\"tool\":");
    push_json_str(&mut info, tool);
    info.extend_from_slice(format!(",\"window_ms\":{}}}", spec.window_ms).as_bytes());

    let rb = result.as_bytes();
    let mut new_result = Vec::with_capacity(rb.len() + info.len() + 16);
    match result.get("_meta").map(|m| (m, m.val())) {
        Some((m, Val::Object(mo))) => {
            // Into the existing `_meta`, right after its `{`.
            let at = offset(rb, m.as_bytes()) + 1;
            new_result.extend_from_slice(&rb[..at]);
            new_result.extend_from_slice(&info);
            if !mo.is_empty() {
                new_result.push(b',');
            }
            new_result.extend_from_slice(&rb[at..]);
        }
        Some(_) => return None, // a `_meta` that is not an object: not MCP
        None => {
            new_result.extend_from_slice(b"{\"_meta\":{");
            new_result.extend_from_slice(&info);
            new_result.push(b'}');
            if !result.is_empty() {
                new_result.push(b',');
            }
            new_result.extend_from_slice(&rb[1..]);
        }
    }
    let mut out = Vec::with_capacity(new_result.len() + id.len() + 32);
    out.extend_from_slice(b"{\"jsonrpc\":\"2.0\",\"id\":");
    out.extend_from_slice(id);
    out.extend_from_slice(b",\"result\":");
    out.extend_from_slice(&new_result);
    out.push(b'}');
    Some(out)
}

/// Why a duplicate was refused.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Refusal {
    /// The policy says `refuse`.
    Policy,
    /// Replay was wanted but the first answer was too large to keep.
    TooLarge,
    /// The identical call in flight did not finish within [`MAX_WAIT`].
    StillInFlight,
}

/// The denial for a refused duplicate: an `isError` result the model can
/// read, with the rule and `outcome: "duplicate"` in `_meta`.
pub fn refusal(
    id: &[u8],
    tool: &str,
    spec: &IdempotencySpec,
    meta: &PolicyMeta,
    why: Refusal,
) -> Vec<u8> {
    let text = match why {
        Refusal::Policy => spec.message.to_string(),
        Refusal::TooLarge => format!("{} (its answer was too large to replay)", spec.message),
        Refusal::StillInFlight => {
            format!("{} (an identical call is still in progress)", spec.message)
        }
    };
    let mut out = Vec::with_capacity(256 + text.len());
    out.extend_from_slice(b"{\"jsonrpc\":\"2.0\",\"id\":");
    out.extend_from_slice(id);
    out.extend_from_slice(b",\"result\":{\"content\":[{\"type\":\"text\",\"text\":");
    push_json_str(&mut out, &format!("{DENY_PREFIX}{text}"));
    out.extend_from_slice(b"}],\"isError\":true,\"_meta\":{");
    push_json_str(&mut out, META_KEY);
    out.extend_from_slice(b":{\"server\":");
    push_json_str(&mut out, meta.server);
    out.extend_from_slice(b",\"tool\":");
    push_json_str(&mut out, tool);
    out.extend_from_slice(b",\"outcome\":\"duplicate\"");
    if let Some(rule) = meta.rule(spec.rule) {
        out.extend_from_slice(b",\"rule\":");
        push_json_str(&mut out, rule.name);
        out.extend_from_slice(b",\"rule_label\":");
        push_json_str(&mut out, rule.label);
        out.extend_from_slice(b",\"source\":");
        push_json_str(
            &mut out,
            &format!("{}:{}:{}", rule.file, rule.line, rule.column),
        );
    }
    out.extend_from_slice(b",\"idempotency\":{\"mode\":");
    push_json_str(&mut out, spec.mode.name());
    out.extend_from_slice(format!(",\"window_ms\":{}}}", spec.window_ms).as_bytes());
    out.extend_from_slice(b",\"policy_digest\":");
    push_json_str(&mut out, meta.digest);
    out.extend_from_slice(b"}}}}");
    out
}

#[cfg(test)]
mod tests {
    use super::*;
    use portcullis_core::idempotency::IdempotencyMode;
    use portcullis_core::policy::RuleId;

    static SPEC: IdempotencySpec = IdempotencySpec {
        rule: RuleId(0),
        window_ms: 5000,
        mode: IdempotencyMode::Replay,
        by: &[],
        message: "dup",
    };

    #[test]
    fn replays_rewrite_the_id_and_mark_meta() {
        let stored =
            br#"{"jsonrpc":"2.0","id":1,"result":{"content":[{"type":"text","text":"Echo: hi"}]}}"#;
        let out = replay(stored, b"\"b\"", "srv", "echo", &SPEC).unwrap();
        let s = String::from_utf8(out.clone()).unwrap();
        validate(&out, Strictness::STRICT).unwrap();
        assert!(s.starts_with(r#"{"jsonrpc":"2.0","id":"b","result":{"_meta":{"portcullis/idempotent-replay":{"original_id":1,"#), "{s}");
        assert!(s.contains(r#""text":"Echo: hi""#));
        // An existing `_meta` keeps its members.
        let stored = br#"{"id":7,"jsonrpc":"2.0","result":{"_meta":{"k":1},"content":[]}}"#;
        let out = replay(stored, b"8", "srv", "echo", &SPEC).unwrap();
        validate(&out, Strictness::STRICT).unwrap();
        let s = String::from_utf8(out).unwrap();
        assert!(s.contains(r#""_meta":{"portcullis/idempotent-replay":{"original_id":7,"server":"srv","tool":"echo","window_ms":5000},"k":1}"#), "{s}");
        // Empty result and empty _meta.
        for stored in [
            &br#"{"jsonrpc":"2.0","id":1,"result":{}}"#[..],
            br#"{"jsonrpc":"2.0","id":1,"result":{"_meta":{}}}"#,
        ] {
            validate(
                &replay(stored, b"2", "s", "t", &SPEC).unwrap(),
                Strictness::STRICT,
            )
            .unwrap();
        }
        assert!(
            replay(
                br#"{"jsonrpc":"2.0","id":1,"error":{"code":1,"message":"x"}}"#,
                b"2",
                "s",
                "t",
                &SPEC
            )
            .is_none()
        );
    }

    #[test]
    fn only_successes_are_remembered() {
        assert!(is_success(
            br#"{"jsonrpc":"2.0","id":1,"result":{"content":[]}}"#
        ));
        assert!(is_success(
            br#"{"jsonrpc":"2.0","id":1,"result":{"isError":false}}"#
        ));
        assert!(!is_success(
            br#"{"jsonrpc":"2.0","id":1,"result":{"isError":true}}"#
        ));
        assert!(!is_success(
            br#"{"jsonrpc":"2.0","id":1,"error":{"code":-1,"message":"x"}}"#
        ));
        assert!(!is_success(b"nonsense"));
    }
}
