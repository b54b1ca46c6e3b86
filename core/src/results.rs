//! Result rules: what a policy does to the answers coming back from the
//! server (`results:` in a policy; `docs/results.md`).
//!
//! A [`ResultRule`] says, for a tool, a resource or every answer, whether the
//! built-in secret formats are redacted or denied, which of the policy's own
//! patterns apply, and how large an answer may be. [`check`] applies one rule
//! to one JSON-RPC answer: every string value under `result` is scanned
//! decoded (a secret written with JSON escapes such as `\u002d` or `\/` is
//! found as well), base64 payloads (`blob`, and the `data` of image and
//! audio content) are not. A clean answer allocates nothing and is passed on
//! as it came, byte for byte.

use std::fmt::Write as _;
use std::sync::OnceLock;

use crate::json::{JStr, Object, Val, Value, push_json_str};
use crate::secrets::{Action, Scanner};

/// The `_meta` key of the redaction note.
pub const REDACTIONS_KEY: &str = "dev.portcullis/redactions";

/// The rule name findings of a size refusal carry.
pub const MAX_BYTES_RULE: &str = "max-bytes";

/// What a result rule applies to.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Target {
    /// Every answer to a `tools/call` (and to a `resources/read`).
    All,
    /// Answers of the tools whose names match the glob (`*` is any run).
    Tool(&'static str),
    /// Answers of `resources/read` for URIs the pattern matches: the URI
    /// normalised ([`crate::uri`]) and matched as resource *request* rules
    /// match it.
    Resource(UriPattern),
    /// Answers of `resources/read` for a URI that cannot be normalised (so
    /// no pattern can be said to match or miss it): the compiler's
    /// combination of every rule that could apply, the strictest of each
    /// setting (docs/results.md). Present when some rule names resources.
    Unnormalised,
}

/// A resource pattern of a result rule: the three forms resource request
/// rules take, matched against the normalised URI.
#[derive(Clone, Copy)]
pub enum UriPattern {
    /// Exactly this (normalised) URI.
    Exact(&'static str),
    /// A URI glob ([`crate::uri::uri_glob_match`]: `*` within a segment, `**` across).
    Glob(&'static str),
    /// A regex (RE2 semantics, unanchored).
    Regex(&'static crate::regex::EmbeddedRegex),
}

impl UriPattern {
    /// True when the normalised `uri` matches.
    pub fn matches(&self, uri: &str) -> bool {
        match self {
            UriPattern::Exact(e) => *e == uri,
            UriPattern::Glob(g) => crate::uri::uri_glob_match(g, uri),
            UriPattern::Regex(r) => r.is_match(uri),
        }
    }

    /// The pattern as the compiler wrote it (a regex in Rust's dialect).
    pub fn text(&self) -> &'static str {
        match self {
            UriPattern::Exact(s) | UriPattern::Glob(s) => s,
            UriPattern::Regex(r) => r.pattern,
        }
    }
}

impl PartialEq for UriPattern {
    fn eq(&self, other: &UriPattern) -> bool {
        std::mem::discriminant(self) == std::mem::discriminant(other) && self.text() == other.text()
    }
}

impl Eq for UriPattern {}

impl std::fmt::Debug for UriPattern {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            UriPattern::Exact(s) => write!(f, "Exact({s:?})"),
            UriPattern::Glob(s) => write!(f, "Glob({s:?})"),
            UriPattern::Regex(r) => write!(f, "Regex({:?})", r.pattern),
        }
    }
}

/// One of a policy's own patterns.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct ResultPattern {
    /// Its name (markers, `_meta`, logs, metrics).
    pub name: &'static str,
    /// The pattern in Rust's regex dialect (translated from RE2).
    pub regex: &'static str,
    /// What a match does.
    pub action: Action,
}

/// What a result rule says, as the policy wrote it (after the catch-all
/// rule's settings were merged into per-tool and per-resource rules).
#[derive(Debug, Clone, Copy)]
pub struct ResultSpec {
    /// Where it sits in the policy, e.g. `results.tools.read_file`.
    pub name: &'static str,
    /// What it applies to.
    pub target: Target,
    /// The built-in secret formats, and what a match does.
    pub secrets: Option<Action>,
    /// The policy's own patterns.
    pub patterns: &'static [ResultPattern],
    /// The largest answer, in bytes of the JSON `result`.
    pub max_bytes: Option<u64>,
    /// The message of a denied answer (without `[POLICY DENIED]`); empty for the default.
    pub message: &'static str,
    /// Source file.
    pub file: &'static str,
    /// 1-based line.
    pub line: u32,
    /// 1-based column.
    pub column: u32,
}

/// A result rule of a compiled policy; its scanner is built on first use.
#[derive(Debug)]
pub struct ResultRule {
    /// What the policy says.
    pub spec: ResultSpec,
    scanner: OnceLock<Option<Scanner>>,
}

impl ResultRule {
    /// A rule (generated code builds these as statics).
    pub const fn new(spec: ResultSpec) -> ResultRule {
        ResultRule {
            spec,
            scanner: OnceLock::new(),
        }
    }

    /// The scanner for this rule's secrets and patterns; None when it scans
    /// nothing (or, a build defect, when its patterns do not compile: the
    /// compiler checked them, so this does not happen).
    pub fn scanner(&self) -> Option<&Scanner> {
        self.scanner
            .get_or_init(|| {
                if self.spec.secrets.is_none() && self.spec.patterns.is_empty() {
                    return None;
                }
                let own: Vec<_> = self
                    .spec
                    .patterns
                    .iter()
                    .map(|p| (p.name, p.regex, p.action))
                    .collect();
                Scanner::new(self.spec.secrets, &own).ok()
            })
            .as_ref()
    }

    /// Builds the scanner now (so the first answer does not pay for it).
    pub fn warm(&self) {
        let _ = self.scanner();
    }

    /// `source` for logs: `file:line:col`.
    pub fn source(&self) -> String {
        format!("{}:{}:{}", self.spec.file, self.spec.line, self.spec.column)
    }
}

/// The rule for `tool` among `rules`: the first whose glob names it exactly,
/// else the first glob matching it, else the catch-all rule.
pub fn for_tool<'r>(rules: &'r [ResultRule], tool: &str) -> Option<&'r ResultRule> {
    pick(rules, tool, |t| match t {
        Target::Tool(g) => Some(g),
        _ => None,
    })
}

/// The rule for a `resources/read` of `uri` (as the client sent it): None
/// unless some rule names resources. The URI is normalised as for resource
/// request rules ([`crate::uri::normalize_into`], into a stack buffer: no
/// allocation); then the first rule whose pattern is exactly that URI, else
/// the first (in policy order) whose glob or regex matches it, else the
/// catch-all rule. A URI that cannot be normalised gets the
/// [`Target::Unnormalised`] rule (the strictest combination of the rules).
pub fn for_resource<'r>(rules: &'r [ResultRule], uri: &str) -> Option<&'r ResultRule> {
    if !rules
        .iter()
        .any(|r| matches!(r.spec.target, Target::Resource(_)))
    {
        return None;
    }
    let mut buf = [0u8; crate::uri::MAX_URI_LEN];
    let Ok(uri) = crate::uri::normalize_into(uri, &mut buf) else {
        return rules
            .iter()
            .find(|r| r.spec.target == Target::Unnormalised)
            .or_else(|| rules.iter().find(|r| r.spec.target == Target::All));
    };
    let patterns = || {
        rules.iter().filter_map(|r| match r.spec.target {
            Target::Resource(p) => Some((p, r)),
            _ => None,
        })
    };
    patterns()
        .find(|(p, _)| matches!(p, UriPattern::Exact(e) if *e == uri))
        .or_else(|| patterns().find(|(p, _)| !matches!(p, UriPattern::Exact(_)) && p.matches(uri)))
        .map(|(_, r)| r)
        .or_else(|| catch_all(rules))
}

/// The catch-all rule (`all:` in YAML, `results { }` in the policy
/// language), if the policy has one: it also checks what the server sends
/// on its own (requests and notifications).
pub fn catch_all(rules: &[ResultRule]) -> Option<&ResultRule> {
    rules.iter().find(|r| r.spec.target == Target::All)
}

fn pick<'r>(
    rules: &'r [ResultRule],
    name: &str,
    glob: impl Fn(Target) -> Option<&'static str>,
) -> Option<&'r ResultRule> {
    let globs = || {
        rules
            .iter()
            .filter_map(|r| glob(r.spec.target).map(|g| (g, r)))
    };
    globs()
        .find(|(g, _)| *g == name)
        .or_else(|| globs().find(|(g, _)| crate::ops::glob_match(g, name)))
        .map(|(_, r)| r)
        .or_else(|| catch_all(rules))
}

/// How often one pattern matched in an answer.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Count {
    /// The pattern's name (built-in or the policy's; [`MAX_BYTES_RULE`] for a size refusal).
    pub name: &'static str,
    /// What its matches did.
    pub action: Action,
    /// How many matches.
    pub count: u32,
}

/// Why an answer was withheld.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Refusal {
    /// A pattern whose action is deny matched (the first one found).
    Secret(&'static str),
    /// The `result` is larger than the rule allows.
    TooLarge {
        /// Its size in bytes.
        size: usize,
        /// The rule's maximum.
        max: u64,
    },
}

/// What happens to an answer.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Verdict {
    /// Nothing matched: pass it on as it came.
    Pass,
    /// Matches were redacted: pass on these bytes instead.
    Redacted {
        /// The answer with every match replaced and the `_meta` note added.
        bytes: Vec<u8>,
        /// What was found.
        counts: Vec<Count>,
    },
    /// Withheld: the proxy answers with an `isError` result.
    Denied {
        /// Why.
        why: Refusal,
        /// What was found (redact matches included).
        counts: Vec<Count>,
    },
}

impl Refusal {
    /// The agent-facing text (without `[POLICY DENIED]`).
    pub fn message(&self, rule: &ResultRule, what: &str) -> String {
        match self {
            Refusal::TooLarge { size, max } => format!(
                "the answer from {what} is {size} bytes, more than the {max} bytes the policy allows ({})",
                rule.spec.name
            ),
            Refusal::Secret(name) if rule.spec.message.is_empty() => {
                format!("the answer from {what} was withheld: it holds a secret ({name})")
            }
            Refusal::Secret(name) => format!("{} ({name})", rule.spec.message),
        }
    }
}

/// Appends `raw` (JSON text) to `out` with every backslash escape decoded
/// (`\\uXXXX` with surrogate pairs; a lone surrogate or a bad escape becomes
/// U+FFFD, as `JStr` decodes). Runs without escapes are copied whole.
pub fn unescape_into(raw: &[u8], out: &mut Vec<u8>) {
    let hex4 = |at: usize| -> Option<u32> {
        let h = raw.get(at..at + 4)?;
        u32::from_str_radix(std::str::from_utf8(h).ok()?, 16).ok()
    };
    let push = |out: &mut Vec<u8>, c: u32| {
        let c = char::from_u32(c).unwrap_or('\u{fffd}');
        let mut b = [0u8; 4];
        out.extend_from_slice(c.encode_utf8(&mut b).as_bytes());
    };
    let mut at = 0;
    while let Some(i) = memchr::memchr(b'\\', &raw[at..]) {
        out.extend_from_slice(&raw[at..at + i]);
        let p = at + i;
        let esc = raw.get(p + 1).copied().unwrap_or(b'\\');
        at = p + 2;
        let b = match esc {
            b'"' => b'"',
            b'\\' => b'\\',
            b'/' => b'/',
            b'b' => 8,
            b'f' => 12,
            b'n' => b'\n',
            b'r' => b'\r',
            b't' => b'\t',
            b'u' => {
                let Some(hi) = hex4(p + 2) else {
                    push(out, 0xfffd);
                    continue;
                };
                at = p + 6;
                if (0xd800..0xdc00).contains(&hi) {
                    if raw.get(at) == Some(&b'\\')
                        && raw.get(at + 1) == Some(&b'u')
                        && let Some(lo) = hex4(at + 2)
                        && (0xdc00..0xe000).contains(&lo)
                    {
                        at += 6;
                        push(out, 0x10000 + ((hi - 0xd800) << 10) + (lo - 0xdc00));
                    } else {
                        push(out, 0xfffd);
                    }
                } else {
                    push(out, hi);
                }
                continue;
            }
            _ => {
                push(out, 0xfffd);
                continue;
            }
        };
        out.push(b);
    }
    out.extend_from_slice(&raw[at.min(raw.len())..]);
}

thread_local! {
    /// The decoded text of the answer being prescanned (reused: no allocation after warm-up).
    static PRESCAN: std::cell::RefCell<Vec<u8>> = const { std::cell::RefCell::new(Vec::new()) };
}

/// The fast, allocation-free first pass: one scan over the whole `result`
/// text (its escapes decoded into a reused buffer when it has any). Every
/// match the precise walk can find is found here too (each decoded string
/// appears whole in this text, between JSON punctuation that no built-in
/// pattern crosses), so nothing here means nothing there; a hit here (in a
/// base64 payload, say) only sends the answer to the precise walk.
fn prescan(scanner: &Scanner, raw: &[u8]) -> bool {
    if memchr::memchr(b'\\', raw).is_none() {
        return scanner.is_match(raw);
    }
    if let Some(found) = scanner.raw_is_match(raw) {
        return found;
    }
    PRESCAN.with(|buf| match buf.try_borrow_mut() {
        Ok(mut buf) => {
            buf.clear();
            unescape_into(raw, &mut buf);
            scanner.is_match(&buf)
        }
        Err(_) => true,
    })
}

/// One string to rewrite: its bytes in the message (quotes included) and its new text.
struct Edit {
    start: usize,
    end: usize,
    text: Vec<u8>,
}

struct Walk<'s> {
    scanner: &'s Scanner,
    base: usize,
    counts: Vec<u32>,
    deny: Option<usize>,
    edits: Vec<Edit>,
    decoded: Vec<u8>,
}

impl Walk<'_> {
    fn value(&mut self, v: Value<'_>) {
        match v.val() {
            Val::Str(s) => self.string(s, None),
            Val::Array(a) => a.iter().for_each(|e| self.value(e)),
            Val::Object(o) => self.object(o),
            _ => {}
        }
    }

    fn object(&mut self, o: Object<'_>) {
        let media = o.get("type").is_some_and(
            |t| matches!(t.val(), Val::Str(s) if s.eq_str("image") || s.eq_str("audio")),
        );
        for (k, v) in o.members() {
            // base64 payloads are not decoded (docs/results.md).
            if (k.eq_str("blob") || (media && k.eq_str("data"))) && matches!(v.val(), Val::Str(_)) {
                continue;
            }
            match v.val() {
                Val::Str(s) => self.string(s, Some(k)),
                _ => self.value(v),
            }
        }
    }

    /// Scans one string; `key`: the member name it is the value of.
    fn string(&mut self, s: JStr<'_>, key: Option<JStr<'_>>) {
        let raw = s.raw_bytes();
        let start = (raw.as_ptr() as usize).saturating_sub(self.base + 1);
        let end = start + raw.len() + 2;
        let scanner = self.scanner;
        let (counts, deny, edits) = (&mut self.counts, &mut self.deny, &mut self.edits);
        let text: &str = if memchr::memchr(b'\\', raw).is_none() {
            std::str::from_utf8(raw).unwrap_or("")
        } else {
            self.decoded.clear();
            unescape_into(raw, &mut self.decoded);
            std::str::from_utf8(&self.decoded).unwrap_or("")
        };
        {
            let mut out: Option<Vec<u8>> = None;
            let mut done = 0;
            let mut plain = String::new();
            let mut found_here = false;
            scanner.scan(text.as_bytes(), |f| {
                found_here = true;
                let e = scanner.entries()[f.entry];
                if counts.is_empty() {
                    counts.resize(scanner.entries().len(), 0);
                }
                counts[f.entry] += 1;
                match e.action {
                    Action::Deny => {
                        deny.get_or_insert(f.entry);
                    }
                    Action::Redact => {
                        out.get_or_insert_with(Vec::new);
                        plain.push_str(&text[done..f.start]);
                        let _ = write!(plain, "[REDACTED:{}]", e.name);
                        done = f.end;
                    }
                }
            });
            // A value under a key naming a secret (`"password": "..."`),
            // when nothing in it matched already.
            let keyed = (!found_here)
                .then(|| key.and_then(|k| k.with_str(|k| scanner.keyed_secret(k, text))))
                .flatten();
            if let Some(entry) = keyed {
                if counts.is_empty() {
                    counts.resize(scanner.entries().len(), 0);
                }
                counts[entry] += 1;
                match scanner.entries()[entry].action {
                    Action::Deny => {
                        deny.get_or_insert(entry);
                    }
                    Action::Redact => {
                        out = Some(Vec::new());
                        let _ = write!(plain, "[REDACTED:{}]", scanner.entries()[entry].name);
                        done = text.len();
                    }
                }
            }
            if let Some(mut o) = out {
                plain.push_str(&text[done..]);
                push_json_str(&mut o, &plain);
                edits.push(Edit {
                    start,
                    end,
                    text: o,
                });
            }
        }
    }
}

/// Applies `rule` to `message`, one validated JSON-RPC answer: its
/// `result`, or its `error` object (message and data: a failing tool may
/// quote what it read), the same way.
pub fn check(rule: &ResultRule, message: &[u8]) -> Verdict {
    let Val::Object(envelope) = Value::from_validated(message).val() else {
        return Verdict::Pass;
    };
    match envelope.get("result").or(envelope.get("error")) {
        Some(answer) => check_result(rule, message, answer),
        None => Verdict::Pass,
    }
}

/// [`check`] with the answer's `result` (or `error` object) already found
/// (the proxy has it from validating the message: no second pass to find
/// it). `result` must lie inside `message`. A redaction's note goes into
/// its `_meta` (of the error object too: JSON-RPC's `data` belongs to the
/// server).
pub fn check_result(rule: &ResultRule, message: &[u8], result: Value<'_>) -> Verdict {
    // MCP's results and params are objects; another value (a string, an
    // array) is malformed, but its text still reaches the client (an SDK
    // rejecting it logs it): checked the same, redacted with no note.
    let object = match result.val() {
        Val::Object(r) => Some(r),
        _ => None,
    };
    if let Some(max) = rule.spec.max_bytes {
        let size = result.as_bytes().len();
        if size as u64 > max {
            return Verdict::Denied {
                why: Refusal::TooLarge { size, max },
                counts: vec![Count {
                    name: MAX_BYTES_RULE,
                    action: Action::Deny,
                    count: 1,
                }],
            };
        }
    }
    let Some(scanner) = rule.scanner() else {
        return Verdict::Pass;
    };
    if !prescan(scanner, result.as_bytes()) {
        return Verdict::Pass;
    }
    let mut walk = Walk {
        scanner,
        base: message.as_ptr() as usize,
        counts: Vec::new(),
        deny: None,
        edits: Vec::new(),
        decoded: Vec::new(),
    };
    match object {
        Some(r) => walk.object(r),
        None => walk.value(result),
    }
    if walk.counts.is_empty() {
        return Verdict::Pass;
    }
    let counts: Vec<Count> = walk
        .counts
        .iter()
        .enumerate()
        .filter(|(_, c)| **c > 0)
        .map(|(i, &count)| Count {
            name: scanner.entries()[i].name,
            action: scanner.entries()[i].action,
            count,
        })
        .collect();
    if let Some(d) = walk.deny {
        return Verdict::Denied {
            why: Refusal::Secret(scanner.entries()[d].name),
            counts,
        };
    }
    let base = walk.base;
    let offset = |b: &[u8]| (b.as_ptr() as usize).saturating_sub(base);
    // The note: into `result._meta` when it is an object, else a new `_meta`.
    let mut note = Vec::with_capacity(64);
    push_json_str(&mut note, REDACTIONS_KEY);
    note.extend_from_slice(b":[");
    for (i, c) in counts.iter().enumerate() {
        if i > 0 {
            note.push(b',');
        }
        note.extend_from_slice(b"{\"rule\":");
        push_json_str(&mut note, c.name);
        let _ = write!(
            Sink(&mut note),
            ",\"action\":\"{}\",\"count\":{}}}",
            c.action.name(),
            c.count
        );
    }
    note.push(b']');
    let mut edits = walk.edits;
    match object.map(|r| (r, r.get("_meta").map(|m| m.val()))) {
        None => {} // not an object: nowhere to put a note
        Some((_, Some(Val::Object(m)))) => {
            let at = offset(m.as_bytes()) + 1;
            if !m.is_empty() {
                note.push(b',');
            }
            edits.push(Edit {
                start: at,
                end: at,
                text: note,
            });
        }
        Some((_, Some(_))) => {} // a `_meta` that is not an object: no note rather than a duplicate key
        Some((r, None)) => {
            let at = offset(r.as_bytes()) + 1;
            let mut text = b"\"_meta\":{".to_vec();
            text.extend_from_slice(&note);
            text.push(b'}');
            if !r.is_empty() {
                text.push(b',');
            }
            edits.push(Edit {
                start: at,
                end: at,
                text,
            });
        }
    }
    edits.sort_by_key(|e| (e.start, e.end));
    let mut bytes = Vec::with_capacity(message.len() + 64);
    let mut done = 0;
    for e in &edits {
        bytes.extend_from_slice(&message[done..e.start]);
        bytes.extend_from_slice(&e.text);
        done = e.end;
    }
    bytes.extend_from_slice(&message[done..]);
    Verdict::Redacted { bytes, counts }
}

/// `fmt::Write` into a byte vector.
struct Sink<'a>(&'a mut Vec<u8>);

impl std::fmt::Write for Sink<'_> {
    fn write_str(&mut self, s: &str) -> std::fmt::Result {
        self.0.extend_from_slice(s.as_bytes());
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::json::{Strictness, validate};

    static OWN: [ResultPattern; 1] = [ResultPattern {
        name: "employee-id",
        regex: r"EMP-[0-9]{6}",
        action: Action::Deny,
    }];

    fn spec(secrets: Option<Action>, max: Option<u64>) -> ResultSpec {
        ResultSpec {
            name: "results",
            target: Target::All,
            secrets,
            patterns: &[],
            max_bytes: max,
            message: "",
            file: "p.yaml",
            line: 1,
            column: 1,
        }
    }

    fn run(rule: &ResultRule, msg: &str) -> Verdict {
        validate(msg.as_bytes(), Strictness::LENIENT).expect("valid JSON");
        check(rule, msg.as_bytes())
    }

    fn redacted(v: Verdict) -> (String, Vec<Count>) {
        match v {
            Verdict::Redacted { bytes, counts } => {
                let s = String::from_utf8(bytes).expect("utf-8");
                validate(s.as_bytes(), Strictness::LENIENT).expect("still JSON");
                (s, counts)
            }
            other => panic!("not redacted: {other:?}"),
        }
    }

    #[test]
    fn a_clean_answer_passes() {
        let rule = ResultRule::new(spec(Some(Action::Redact), Some(1000)));
        assert_eq!(
            run(
                &rule,
                r#"{"jsonrpc":"2.0","id":1,"result":{"content":[{"type":"text","text":"hello\nworld"}]}}"#
            ),
            Verdict::Pass
        );
        assert_eq!(
            run(
                &rule,
                r#"{"jsonrpc":"2.0","id":1,"error":{"code":1,"message":"no such file"}}"#
            ),
            Verdict::Pass
        );
    }

    #[test]
    fn an_error_answer_is_checked_like_a_result() {
        let rule = ResultRule::new(spec(Some(Action::Redact), None));
        let (s, counts) = redacted(run(
            &rule,
            r#"{"jsonrpc":"2.0","id":1,"error":{"code":-32000,"message":"bad key AKIAIOSFODNN7EXAMPLE","data":{"k":"AKIAIOSFODNN7EXAMPLE"}}}"#,
        ));
        assert_eq!(
            s,
            r#"{"jsonrpc":"2.0","id":1,"error":{"_meta":{"dev.portcullis/redactions":[{"rule":"aws-access-key-id","action":"redact","count":2}]},"code":-32000,"message":"bad key [REDACTED:aws-access-key-id]","data":{"k":"[REDACTED:aws-access-key-id]"}}}"#
        );
        assert_eq!(counts.len(), 1);
        let deny = ResultRule::new(spec(Some(Action::Deny), None));
        assert!(matches!(
            run(
                &deny,
                r#"{"jsonrpc":"2.0","id":1,"error":{"code":1,"message":"AKIAIOSFODNN7EXAMPLE"}}"#
            ),
            Verdict::Denied { .. }
        ));
        assert_eq!(
            run(
                &deny,
                r#"{"jsonrpc":"2.0","id":1,"error":{"code":1,"message":"clean"}}"#
            ),
            Verdict::Pass
        );
    }

    #[test]
    fn text_is_redacted_with_a_note() {
        let rule = ResultRule::new(spec(Some(Action::Redact), None));
        let (s, counts) = redacted(run(
            &rule,
            r#"{"jsonrpc":"2.0","id":1,"result":{"content":[{"type":"text","text":"a AKIAIOSFODNN7EXAMPLE b \"AKIAIOSFODNN7EXAMPLF\""}],"isError":false}}"#,
        ));
        assert_eq!(
            s,
            r#"{"jsonrpc":"2.0","id":1,"result":{"_meta":{"dev.portcullis/redactions":[{"rule":"aws-access-key-id","action":"redact","count":2}]},"content":[{"type":"text","text":"a [REDACTED:aws-access-key-id] b \"[REDACTED:aws-access-key-id]\""}],"isError":false}}"#
        );
        assert_eq!(counts.len(), 1);
    }

    #[test]
    fn escaped_secrets_are_found_and_meta_is_extended() {
        let rule = ResultRule::new(spec(Some(Action::Redact), None));
        // `\u002d` is '-', `\/` is '/': the AWS secret key and the GitHub token are escaped.
        let (s, _) = redacted(run(
            &rule,
            r#"{"jsonrpc":"2.0","id":"x","result":{"_meta":{"k":1},"content":[],"structuredContent":{"env":{"AWS_SECRET_ACCESS_KEY":"x","line":"aws_secret_access_key=wJalrXUtnFEMI\/K7MDENG\/bPxRfiCYEXAMPLEKEY"},"t":["gh\u0070_16C7e42F292c6912E7710c838347Ae178B4a"]}}}"#,
        ));
        assert_eq!(
            s,
            r#"{"jsonrpc":"2.0","id":"x","result":{"_meta":{"dev.portcullis/redactions":[{"rule":"aws-secret-access-key","action":"redact","count":1},{"rule":"github-token","action":"redact","count":1}],"k":1},"content":[],"structuredContent":{"env":{"AWS_SECRET_ACCESS_KEY":"x","line":"[REDACTED:aws-secret-access-key]"},"t":["[REDACTED:github-token]"]}}}"#
        );
    }

    #[test]
    fn embedded_resources_are_scanned_and_blobs_are_not() {
        let rule = ResultRule::new(spec(Some(Action::Deny), None));
        let v = run(
            &rule,
            r#"{"jsonrpc":"2.0","id":1,"result":{"content":[{"type":"resource","resource":{"uri":"file:///k","text":"sk_live_4eC39HqLyjWDarjtT1zdp7dc"}}]}}"#,
        );
        assert_eq!(
            v,
            Verdict::Denied {
                why: Refusal::Secret("stripe-key"),
                counts: vec![Count {
                    name: "stripe-key",
                    action: Action::Deny,
                    count: 1
                }]
            }
        );
        assert_eq!(
            run(
                &rule,
                r#"{"jsonrpc":"2.0","id":1,"result":{"content":[{"type":"resource","resource":{"uri":"file:///k","blob":"sk_live_4eC39HqLyjWDarjtT1zdp7dc"}},{"type":"image","data":"sk_live_4eC39HqLyjWDarjtT1zdp7dc","mimeType":"image/png"}]}}"#,
            ),
            Verdict::Pass
        );
    }

    #[test]
    fn deny_wins_over_redact_and_size_is_checked_first() {
        let rule = ResultRule::new(ResultSpec {
            patterns: &OWN,
            ..spec(Some(Action::Redact), None)
        });
        let v = run(
            &rule,
            r#"{"jsonrpc":"2.0","id":1,"result":{"content":[{"type":"text","text":"AKIAIOSFODNN7EXAMPLE EMP-123456"}]}}"#,
        );
        let Verdict::Denied { why, counts } = v else {
            panic!("not denied: {v:?}")
        };
        assert_eq!(why, Refusal::Secret("employee-id"));
        assert_eq!(counts.len(), 2);
        let rule = ResultRule::new(spec(Some(Action::Redact), Some(20)));
        let v = run(
            &rule,
            r#"{"jsonrpc":"2.0","id":1,"result":{"content":[{"type":"text","text":"0123456789"}]}}"#,
        );
        let Verdict::Denied { why, .. } = v else {
            panic!("not denied: {v:?}")
        };
        assert_eq!(why, Refusal::TooLarge { size: 49, max: 20 });
        assert_eq!(
            why.message(&rule, "read_file"),
            "the answer from read_file is 49 bytes, more than the 20 bytes the policy allows (results)"
        );
    }

    #[test]
    fn a_random_value_under_a_secret_key_is_redacted() {
        let rule = ResultRule::new(spec(Some(Action::Redact), None));
        let (s, counts) = redacted(run(
            &rule,
            r#"{"jsonrpc":"2.0","id":1,"result":{"content":[],"structuredContent":{"db":{"host":"db.internal","password":"9f8B3kLq7ZxW2mN5vR1tY6uP","token":"short","apiKey":"aaaaaaaaaaaaaaaaaaaaaaaa"}}}}"#,
        ));
        assert_eq!(
            s,
            r#"{"jsonrpc":"2.0","id":1,"result":{"_meta":{"dev.portcullis/redactions":[{"rule":"secret-assignment","action":"redact","count":1}]},"content":[],"structuredContent":{"db":{"host":"db.internal","password":"[REDACTED:secret-assignment]","token":"short","apiKey":"aaaaaaaaaaaaaaaaaaaaaaaa"}}}}"#
        );
        assert_eq!(counts.len(), 1);
        // Without the built-ins, keys mean nothing.
        static OWN_ONLY: [ResultPattern; 1] = [ResultPattern {
            name: "x",
            regex: "zzz",
            action: Action::Redact,
        }];
        let own = ResultRule::new(ResultSpec {
            patterns: &OWN_ONLY,
            ..spec(None, None)
        });
        assert_eq!(
            run(
                &own,
                r#"{"jsonrpc":"2.0","id":1,"result":{"structuredContent":{"password":"9f8B3kLq7ZxW2mN5vR1tY6uP"}}}"#
            ),
            Verdict::Pass
        );
    }

    #[test]
    fn unescaping_decodes_as_json_strings_do() {
        for body in [
            r#"plain"#,
            r#"a\nb\t\"q\" \/ \\ end"#,
            r#"\u0041\u00e9\u20ac \ud83d\ude00 lone \ud83d x \udc00"#,
            r#"gh\u0070_ \u002d\u002D"#,
            r#"caf\u00e9 déjà vu"#,
        ] {
            let json = format!("\"{body}\"");
            validate(json.as_bytes(), Strictness::LENIENT).expect("valid");
            let Val::Str(s) = Value::from_validated(json.as_bytes()).val() else {
                panic!("not a string")
            };
            let mut out = Vec::new();
            unescape_into(body.as_bytes(), &mut out);
            assert_eq!(
                String::from_utf8(out).unwrap(),
                s.chars().collect::<String>(),
                "{body}"
            );
        }
    }

    #[test]
    fn rules_are_picked_exact_then_glob_then_catch_all() {
        static ETC_RE: crate::regex::EmbeddedRegex =
            crate::regex::EmbeddedRegex::new(r"\.env$", None);
        let rules = [
            ResultRule::new(spec(None, Some(1))),
            ResultRule::new(ResultSpec {
                target: Target::Tool("read_*"),
                ..spec(None, Some(2))
            }),
            ResultRule::new(ResultSpec {
                target: Target::Tool("read_file"),
                ..spec(None, Some(3))
            }),
            ResultRule::new(ResultSpec {
                target: Target::Resource(UriPattern::Glob("file:///etc/*")),
                ..spec(None, Some(4))
            }),
            ResultRule::new(ResultSpec {
                target: Target::Resource(UriPattern::Regex(&ETC_RE)),
                ..spec(None, Some(5))
            }),
            ResultRule::new(ResultSpec {
                target: Target::Resource(UriPattern::Exact("file:///etc/app/.env")),
                ..spec(None, Some(6))
            }),
            ResultRule::new(ResultSpec {
                target: Target::Unnormalised,
                ..spec(None, Some(1))
            }),
        ];
        let max = |r: Option<&ResultRule>| r.and_then(|r| r.spec.max_bytes);
        assert_eq!(max(for_tool(&rules, "read_file")), Some(3));
        assert_eq!(max(for_tool(&rules, "read_dir")), Some(2));
        assert_eq!(max(for_tool(&rules, "echo")), Some(1));
        assert_eq!(max(for_resource(&rules, "file:///etc/passwd")), Some(4));
        // Normalised first, as request rules see it.
        assert_eq!(
            max(for_resource(&rules, "FILE:///tmp/../etc//passwd")),
            Some(4)
        );
        assert_eq!(max(for_resource(&rules, "file:///%65tc/passwd")), Some(4));
        // `*` stays within a segment.
        assert_eq!(
            max(for_resource(&rules, "file:///etc/ssl/key.pem")),
            Some(1)
        );
        assert_eq!(max(for_resource(&rules, "file:///srv/.env")), Some(5));
        // The exact URI wins over a glob or regex listed before it.
        assert_eq!(max(for_resource(&rules, "file:///etc/app/./.env")), Some(6));
        assert_eq!(max(for_resource(&rules, "file:///home/x")), Some(1));
        // Not normalisable: the Unnormalised rule.
        let unnorm = for_resource(&rules, "file:///etc%2Fpasswd").map(|r| r.spec.target);
        assert_eq!(unnorm, Some(Target::Unnormalised));
        assert_eq!(max(for_resource(&rules[..3], "file:///etc/passwd")), None);
        assert_eq!(max(for_tool(&rules[1..], "echo")), None);
    }

    proptest::proptest! {
        /// Whatever spelling a client sends, the result rule is the one the
        /// normalised URI gets: the same semantics as request rules.
        #[test]
        fn a_spelling_gets_the_rule_of_its_normal_form(path in "(/|etc|ssl|a|\\.|\\.\\.|%2e|%65)*") {
            let rules = [
                ResultRule::new(spec(None, Some(1))),
                ResultRule::new(ResultSpec {
                    target: Target::Resource(UriPattern::Glob("file:///etc/*")),
                    ..spec(None, Some(2))
                }),
                ResultRule::new(ResultSpec {
                    target: Target::Resource(UriPattern::Glob("file:///etc/ssl/**")),
                    ..spec(None, Some(3))
                }),
                ResultRule::new(ResultSpec {
                    target: Target::Unnormalised,
                    ..spec(None, Some(4))
                }),
            ];
            let uri = format!("file://{path}");
            let got = for_resource(&rules, &uri).and_then(|r| r.spec.max_bytes);
            let want = match crate::uri::normalize(&uri) {
                Err(_) => Some(4),
                Ok(n) if crate::uri::uri_glob_match("file:///etc/*", &n) => Some(2),
                Ok(n) if crate::uri::uri_glob_match("file:///etc/ssl/**", &n) => Some(3),
                Ok(_) => Some(1),
            };
            proptest::prop_assert_eq!(got, want);
        }
    }
}
