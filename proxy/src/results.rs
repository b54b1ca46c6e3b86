//! Result rules in the proxy: the answer of a watched request (a `tools/call`,
//! or a `resources/read` a rule names) is checked before the client sees it
//! (docs/results.md). The scanning itself is `portcullis_core::results`.

use portcullis_core::json::push_json_str;
use portcullis_core::policy::PolicyMeta;
use portcullis_core::results::{Count, Refusal, ResultRule, ResultSpec, Target};
use portcullis_core::secrets::Action;

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

/// True when some result rule of `policy` names resources by URI: only
/// then can a read's symlink target have a result rule of its own.
pub fn names_resources(policy: &dyn portcullis_core::policy::Policy) -> bool {
    policy
        .result_rules()
        .iter()
        .any(|r| matches!(r.spec.target, Target::Resource(_)))
}

/// The normalised `file://` URI a read's URI resolves to through symlinks
/// ([`crate::symlinks::resolve`]), when it is another one. A URI that cannot
/// be normalised or resolved gives None: its request was refused already
/// when the policy governs resources; otherwise (result rules only) the
/// rule of the URI as sent applies.
pub fn target_of(uri: &str) -> Option<String> {
    match crate::symlinks::resolve(uri) {
        crate::symlinks::Resolved::Other(real) => Some(real),
        _ => None,
    }
}

/// Combined rules, made once per pair (see [`both`]): a few per policy
/// load, kept for the life of the process like a reloaded policy's strings.
static COMBINED: std::sync::Mutex<Vec<((usize, usize), &'static ResultRule)>> =
    std::sync::Mutex::new(Vec::new());

/// The result rule of a read decided on two URIs, as sent and its symlink
/// target (docs/surfaces.md, "Symlinks"): either one when only one has a
/// rule or both have the same; else both at once: the answer is denied if
/// either would deny it (secrets, patterns, the smaller size cap), and the
/// redactions of both are made. The denial message is the target's (else
/// the sent URI's); the rule is named `<sent> + <target>`.
pub fn both(
    sent: Option<&'static ResultRule>,
    target: Option<&'static ResultRule>,
) -> Option<&'static ResultRule> {
    let (a, b) = match (sent, target) {
        (Some(a), Some(b)) if !std::ptr::eq(a, b) => (a, b),
        (a, b) => return a.or(b),
    };
    let key = (
        a as *const ResultRule as usize,
        b as *const ResultRule as usize,
    );
    let mut made = COMBINED.lock().unwrap_or_else(|e| e.into_inner());
    if let Some((_, r)) = made.iter().find(|(k, _)| *k == key) {
        return Some(r);
    }
    let (x, y) = (&a.spec, &b.spec);
    let secrets = match (x.secrets, y.secrets) {
        (None, None) => None,
        (Some(Action::Deny), _) | (_, Some(Action::Deny)) => Some(Action::Deny),
        _ => Some(Action::Redact),
    };
    let patterns: Vec<_> = x.patterns.iter().chain(y.patterns).copied().collect();
    let max_bytes = match (x.max_bytes, y.max_bytes) {
        (Some(m), Some(n)) => Some(m.min(n)),
        (m, n) => m.or(n),
    };
    let rule: &'static ResultRule = Box::leak(Box::new(ResultRule::new(ResultSpec {
        name: Box::leak(format!("{} + {}", x.name, y.name).into_boxed_str()),
        target: y.target,
        secrets,
        patterns: Box::leak(patterns.into_boxed_slice()),
        max_bytes,
        message: if y.message.is_empty() {
            x.message
        } else {
            y.message
        },
        file: y.file,
        line: y.line,
        column: y.column,
    })));
    made.push((key, rule));
    Some(rule)
}
