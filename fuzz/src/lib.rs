//! The checks behind Portcullis' fuzz targets, one function per target.
//!
//! Each function takes arbitrary bytes and panics when Portcullis misbehaves:
//! a panic inside Portcullis, or an oracle saying the answer is wrong. The
//! targets in `fuzz_targets/` (cargo-fuzz, nightly) call them; so does
//! `tests/fuzz_corpus.rs` in the main workspace (stable), which replays every
//! committed input under `fuzz/corpus/<target>/`, so the corpora and the
//! crashes found so far run with every `cargo test`. That test includes this
//! file with `#[path]`, so it must only use what the main package's
//! (dev-)dependencies provide: the runtime, the compiler and `serde_json`
//! (default features).

use std::sync::OnceLock;

use portcullis_compiler::eval::Evaluator;
use portcullis_compiler::source::{FileId, SourceFile, SourceMap};
use portcullis_compiler::syntax::{dsl, dsl_fmt};
use portcullis_compiler::{Input, compile};
use portcullis_core::counters::MemoryCounters;
use portcullis_core::json::{
    JStr, JsonError, JsonErrorKind, Num, Strictness, Val, Value, validate, validate_outline,
};
use portcullis_core::jsonrpc::{Envelope, parse_tool_call};
use portcullis_core::policy::FailMode;
use portcullis_core::structural::{Scan, scan_answer};
use portcullis_core::{Effect, Env, Policy, ToolCall, UnixMillis};
use portcullis_proxy::log::{Level, Log};
use portcullis_proxy::session::Session;
use serde_json::Value as Json;

/// Largest input worth a fuzz run (bigger ones only cost time); `scripts/fuzz` passes it as `-max_len`.
pub const MAX_LEN: usize = 4096;

// ---------------------------------------------------------------------------
// JSON reader against serde_json.

/// Where Portcullis' reader may reject what serde_json accepts (docs/cli.md:
/// duplicate and case-variant keys under the strict reading, nesting deeper
/// than 128 under any).
fn documented_stricter(e: &JsonError, s: Strictness) -> bool {
    match e.kind() {
        JsonErrorKind::TooDeep => true,
        JsonErrorKind::DuplicateKey => s.reject_duplicate_keys,
        JsonErrorKind::CaseVariantKeys => s.reject_case_variant_keys,
        _ => false,
    }
}

/// Where serde_json rejects what Portcullis accepts, and Portcullis is right
/// to: serde_json's own limits, not JSON's (RFC 8259 §6 and §8.2 allow both).
fn serde_limitation(e: &serde_json::Error) -> bool {
    let m = e.to_string();
    // Portcullis keeps numbers as exact decimal text; serde_json wants an f64.
    m.starts_with("number out of range")
        // serde_json stops at 128 levels too, counting one level differently.
        || m.starts_with("recursion limit exceeded")
        // A lone UTF-16 surrogate escape: Portcullis decodes it to U+FFFD as
        // Go does (documented in docs/cli.md); serde_json refuses the text.
        || m.starts_with("lone leading surrogate")
        || m.starts_with("unexpected end of hex escape")
        || m.starts_with("invalid unicode code point")
}

/// Portcullis' view of a validated value, converted to serde_json's model:
/// strings decoded by Portcullis, objects built member by member (the last
/// duplicate wins, as in serde_json), numbers converted by serde_json from
/// the exact text Portcullis delimited.
fn to_json(v: Value<'_>) -> Json {
    match v.val() {
        Val::Null => Json::Null,
        Val::Bool(b) => Json::Bool(b),
        Val::Num(n) => {
            check_num(n, v.as_bytes());
            serde_json::from_slice(v.as_bytes()).unwrap_or_else(|e| {
                panic!(
                    "number {:?} not a JSON number: {e}",
                    String::from_utf8_lossy(v.as_bytes())
                )
            })
        }
        Val::Str(s) => Json::String(check_str(s)),
        Val::Array(a) => Json::Array(a.iter().map(to_json).collect()),
        Val::Object(o) => {
            let mut map = serde_json::Map::new();
            // The raw text of each key's last member: lookups are compared by
            // text, not by converting the found value again (that doubled
            // the work per nesting level: 2^depth, a fuzzing timeout at
            // depth 35).
            let mut last = std::collections::HashMap::new();
            for (k, v) in o.members() {
                let key = check_str(k);
                last.insert(key.clone(), v.as_bytes());
                map.insert(key, to_json(v));
            }
            // Lookup by key agrees with the walk (the last duplicate wins).
            for (k, raw) in &last {
                let got = o.get(k).map(|v| v.as_bytes());
                assert_eq!(
                    got,
                    Some(*raw),
                    "Object::get({k:?}) disagrees with members()"
                );
            }
            Json::Object(map)
        }
    }
}

/// Decodes a string every way `JStr` offers and checks they agree.
fn check_str(s: JStr<'_>) -> String {
    let decoded: String = s.chars().collect();
    assert_eq!(
        s.char_len(),
        decoded.chars().count(),
        "char_len of {decoded:?}"
    );
    assert!(s.eq_str(&decoded), "eq_str of {decoded:?}");
    assert!(s.eq_jstr(&s), "eq_jstr of {decoded:?}");
    assert!(
        s.eq_folded(&JStr::plain(&decoded)),
        "eq_folded of {decoded:?}"
    );
    s.with_str(|t| assert_eq!(t, decoded, "with_str"));
    if let Some(plain) = s.as_plain() {
        assert_eq!(plain, decoded, "as_plain");
    }
    decoded
}

/// The exact-decimal number view: parses, round-trips through its canonical
/// text, and agrees with serde_json on integers.
fn check_num(n: Num<'_>, text: &[u8]) {
    let parsed = Num::parse(text).expect("a validated number parses");
    assert_eq!(parsed.cmp_num(&n), std::cmp::Ordering::Equal);
    if exponent_digits(text) > 12 {
        // Exponents are clamped at 2^40 (core/src/json.rs, EXP_CLAMP): beyond
        // that numbers are indistinguishable, so the canonical text (which
        // shifts the exponent by the digit count) need not parse back equal.
        // 12 digits keep every exponent and shift below 2^40 ≈ 1.1e12.
        return;
    }
    let canonical = n.canonical_text();
    let again = Num::parse(canonical.as_bytes())
        .unwrap_or_else(|| panic!("canonical text {canonical:?} does not parse"));
    assert_eq!(
        again.cmp_num(&n),
        std::cmp::Ordering::Equal,
        "canonical {canonical:?}"
    );
    if let Ok(serde_json::Value::Number(s)) = serde_json::from_slice::<Json>(text)
        && let Some(u) = s.as_u64()
    {
        assert_eq!(
            n.to_u64_exact(),
            Some(u),
            "to_u64_exact of {}",
            String::from_utf8_lossy(text)
        );
    }
}

/// Significant digits in a number text's exponent (0 without one).
fn exponent_digits(text: &[u8]) -> usize {
    let Some(e) = text.iter().position(|&c| c == b'e' || c == b'E') else {
        return 0;
    };
    let digits = text[e + 1..]
        .strip_prefix(b"-")
        .or_else(|| text[e + 1..].strip_prefix(b"+"));
    let digits = digits.unwrap_or(&text[e + 1..]);
    digits.iter().skip_while(|&&c| c == b'0').count()
}

/// The answer scanner (`core/src/structural.rs`) reads a server's answer
/// as the strict validator does under the proxy's answer strictness:
/// malformed for one is malformed for the other, an outline only for an
/// answer the validator finds unambiguous (and whose envelope has no
/// member in another letter case), ambiguity only where one of them finds it.
fn answer_scan(data: &[u8]) {
    let lenient = Strictness {
        max_depth: 1024,
        ..Strictness::LENIENT
    };
    let server = Strictness {
        key_check_depth: 2,
        max_depth: 1024,
        ..Strictness::STRICT
    };
    // An envelope member in another letter case is ambiguous too (the
    // validator does not know envelope names: the envelope reader does).
    let envelope = |data: &[u8]| {
        validate(data, lenient).is_ok()
            && portcullis_core::jsonrpc::ambiguous_answer_envelope(data).is_some()
    };
    match scan_answer(data) {
        Ok(Scan::Plain(_)) => {
            assert_eq!(validate(data, server), Ok(()), "scanned as plain");
            assert!(
                !envelope(data),
                "scanned as plain: the envelope is ambiguous"
            );
        }
        Ok(Scan::Ambiguous) => {
            assert_eq!(validate(data, lenient), Ok(()), "scanned as ambiguous");
            match validate(data, server) {
                Err(e) => assert!(e.kind().is_ambiguous_key(), "scanned as ambiguous: {e}"),
                Ok(()) => assert!(envelope(data), "scanned as ambiguous"),
            }
        }
        Ok(Scan::Undecided) => {}
        Err(e) => assert!(
            validate(data, lenient).is_err(),
            "the scanner refuses ({e}) what the validator accepts"
        ),
    }
}

/// Fuzz target `json`: the strict borrowed JSON reader (`core/src/json.rs`)
/// against serde_json. Same accept/reject except the documented differences
/// ([`documented_stricter`], [`serde_limitation`]); accepted texts have the
/// same value; the outlining pass agrees with the plain one.
pub fn json(data: &[u8]) {
    let theirs = serde_json::from_slice::<Json>(data);
    answer_scan(data);
    for s in [
        Strictness::LENIENT,
        Strictness::ENVELOPE,
        Strictness::STRICT,
    ] {
        let ours = validate(data, s);
        let outlined = validate_outline(data, s).map(|_| ());
        assert_eq!(ours, outlined, "validate and validate_outline disagree");
        match (&ours, &theirs) {
            (Ok(()), Ok(v)) => {
                let mine = to_json(Value::from_validated(data));
                assert_eq!(&mine, v, "same text, different values");
            }
            (Ok(()), Err(e)) => {
                assert!(
                    serde_limitation(e),
                    "Portcullis ({s:?}) accepts what serde_json rejects: {e}"
                );
                // Still walk the view: it must not panic.
                let _ = Value::from_validated(data).val();
            }
            (Err(e), Ok(_)) => {
                assert!(
                    documented_stricter(e, s),
                    "Portcullis ({s:?}) rejects valid JSON: {e}"
                );
            }
            (Err(_), Err(_)) => {}
        }
    }
}

// ---------------------------------------------------------------------------
// JSON-RPC envelope.

/// The value of `key` in a serde_json object as a reader matching keys
/// exactly (the last duplicate winning) or, with `fold`, as Go's
/// encoding/json does (any letter case, the last match winning).
fn member<'j>(obj: &'j serde_json::Map<String, Json>, key: &str, fold: bool) -> Option<&'j Json> {
    if !fold {
        return obj.get(key);
    }
    obj.iter()
        .filter(|(k, _)| JStr::plain(k).eq_folded(&JStr::plain(key)))
        .map(|(_, v)| v)
        .next_back()
}

/// Fuzz target `jsonrpc`: the JSON-RPC envelope reader. Every line of the
/// input is read: never a panic, and what it accepts is a JSON object whose
/// members are those serde_json sees, in any letter case a server might
/// match them in; a `tools/call` it accepts has the name and arguments
/// serde_json sees.
pub fn jsonrpc(data: &[u8]) {
    for line in data.split(|&b| b == b'\n') {
        check_envelope(line);
    }
}

fn check_envelope(line: &[u8]) {
    let Ok(env) = Envelope::parse(line) else {
        return;
    };
    let _ = Envelope::parse_lenient(line);
    let theirs = match serde_json::from_slice::<Json>(line) {
        Ok(v) => v,
        Err(e) if serde_limitation(&e) => return,
        Err(e) => panic!("envelope accepted, serde_json rejects: {e}"),
    };
    let Json::Object(obj) = &theirs else {
        panic!("envelope accepted a non-object: {theirs}");
    };
    let view = |v: Option<Value<'_>>| v.map(to_json);
    for fold in [false, true] {
        assert_eq!(
            view(env.id).as_ref(),
            member(obj, "id", fold),
            "id (fold {fold})"
        );
        assert_eq!(
            view(env.params).as_ref(),
            member(obj, "params", fold),
            "params (fold {fold})"
        );
        assert_eq!(
            view(env.result).as_ref(),
            member(obj, "result", fold),
            "result (fold {fold})"
        );
        assert_eq!(
            view(env.error).as_ref(),
            member(obj, "error", fold),
            "error (fold {fold})"
        );
        let method = env.method.map(|m| Json::String(check_str(m)));
        assert_eq!(
            method.as_ref(),
            member(obj, "method", fold),
            "method (fold {fold})"
        );
    }
    if let Ok(call) = env.tool_call() {
        let params = member(obj, "params", false)
            .and_then(Json::as_object)
            .expect("params");
        for fold in [false, true] {
            assert_eq!(
                member(params, "name", fold).and_then(Json::as_str),
                Some(call.name()),
                "tools/call name (fold {fold})"
            );
            let args = match member(params, "arguments", fold) {
                None | Some(Json::Null) => Json::Object(Default::default()),
                Some(a) => a.clone(),
            };
            let mine = to_json(Value::from_validated(call.arguments().as_bytes()));
            assert_eq!(mine, args, "tools/call arguments (fold {fold})");
        }
    }
}

// ---------------------------------------------------------------------------
// Policy front ends.

/// Compiles `text` as the policy file `path`: any diagnostics, never a panic;
/// a policy that compiles gets a reference evaluator and a rule table.
fn compile_source(path: &str, text: &str) {
    let input = Input {
        server: "fuzz".to_string(),
        path: path.to_string(),
        text: text.to_string(),
    };
    let output = compile(&[input]);
    let _ = output.render();
    if let Ok(set) = output.into_set() {
        for ir in set.servers {
            let ev = Evaluator::new(ir, &set.sources);
            let _ = ev.meta();
        }
    }
}

/// Fuzz target `yaml`: the YAML front end (both dialects: Intercept v1 and
/// the catalogue) through the compiler's public entry point.
pub fn yaml(data: &[u8]) {
    if let Ok(text) = std::str::from_utf8(data) {
        compile_source("fuzz.yaml", text);
    }
}

/// Fuzz target `dsl`: the policy language (pest grammar, lowering, checks)
/// through the compiler's entry point, and `portcullis fmt`: what parses
/// formats to text that parses again and is already formatted.
pub fn dsl(data: &[u8]) {
    let Ok(text) = std::str::from_utf8(data) else {
        return;
    };
    compile_source("fuzz.policy", text);
    if let Ok(file) = dsl::parse(FileId(0), text) {
        let formatted = dsl_fmt::format(&file, text);
        let again = dsl::parse(FileId(0), &formatted).unwrap_or_else(|d| {
            let mut map = SourceMap::new();
            map.add(SourceFile::new("formatted.policy", formatted.as_str()));
            let d: Vec<String> = d.iter().map(|d| d.render(&map)).collect();
            panic!(
                "formatted text does not parse:\n{formatted}\n{}",
                d.join("\n")
            )
        });
        assert_eq!(
            dsl_fmt::format(&again, &formatted),
            formatted,
            "fmt is not idempotent"
        );
    }
}

// ---------------------------------------------------------------------------
// The whole proxy.

/// The policy the `proxy` target enforces: default deny, hidden tools, deny
/// rules, an allow rule on a nested argument. No counters and no time
/// conditions, so decisions do not depend on the clock or on earlier calls
/// and the oracle can re-decide any forwarded call on its own.
pub const PROXY_POLICY: &str = r#"
server fuzz "fuzz target" {
  default deny
  hide secret_*, drop
  tool read_file {
    deny "no parent directories" when args.path matches /\.\./
    deny "not under /etc" when args.path starts_with "/etc"
  }
  tool pay {
    deny "too much" when args.amount > 100
    deny "usd or eur" unless args.currency in ["usd", "eur"]
  }
  tool send_mail {
    allow when args.to.domain == "example.com" else "internal mail only"
  }
  tool echo, list_*, secret_echo {}
}
"#;

fn proxy_policy() -> &'static Evaluator {
    static POLICY: OnceLock<&'static Evaluator> = OnceLock::new();
    POLICY.get_or_init(|| {
        let input = Input {
            server: "fuzz".to_string(),
            path: "fuzz.policy".to_string(),
            text: PROXY_POLICY.to_string(),
        };
        let output = compile(&[input]);
        let set = output.into_set().unwrap_or_else(|o| {
            panic!(
                "the proxy target's policy does not compile:\n{}",
                o.render()
            )
        });
        let ir = set.servers.into_iter().next().expect("one server");
        Box::leak(Box::new(Evaluator::new(ir, &set.sources)))
    })
}

/// Fuzz target `proxy`: a whole `Session` (what every transport drives) fed
/// arbitrary bytes, one message per line; a line starting with byte 0x01 comes
/// from the server instead (its answers settle requests and filter
/// `tools/list`). Never a panic, and for everything forwarded to the server:
/// - the strict envelope reader accepts it;
/// - if any reading of it is a `tools/call` (serde_json's exact keys, or Go's
///   encoding/json matching keys in any letter case, arguments included),
///   that reading's tool and arguments are allowed by the policy (re-decided by the reference
///   evaluator from serde_json's view, at a fixed time, with fresh counters).
pub fn proxy(data: &[u8]) {
    let policy = proxy_policy();
    let session = Session::new(
        policy,
        std::sync::Arc::new(MemoryCounters::new()),
        1,
        FailMode::Closed,
        None,
        Log {
            level: Level::Error,
        },
    );
    for line in data.split(|&b| b == b'\n') {
        if let Some(server_line) = line.strip_prefix(b"\x01") {
            let _ = session.from_server(server_line);
            continue;
        }
        let out = session.from_client(line);
        for forwarded in &out.forward {
            check_forwarded(policy, forwarded);
        }
    }
}

fn check_forwarded(policy: &Evaluator, msg: &[u8]) {
    let shown = || String::from_utf8_lossy(msg).into_owned();
    if let Err(r) = Envelope::parse(msg) {
        panic!(
            "forwarded a message the strict reader refuses ({}): {}",
            r.message(),
            shown()
        );
    }
    let theirs = match serde_json::from_slice::<Json>(msg) {
        Ok(v) => v,
        Err(e) if serde_limitation(&e) => {
            // serde_json cannot read it; Portcullis' own reading must still allow it.
            if let Ok(call) = parse_tool_call(msg) {
                assert_allowed(policy, call.name(), call.arguments().as_bytes(), msg);
            }
            return;
        }
        Err(e) => panic!("forwarded a message serde_json rejects ({e}): {}", shown()),
    };
    let Json::Object(obj) = &theirs else {
        panic!("forwarded a non-object: {}", shown());
    };
    for fold in [false, true] {
        if member(obj, "method", fold).and_then(Json::as_str) != Some("tools/call") {
            continue;
        }
        let params = member(obj, "params", fold).and_then(Json::as_object);
        let Some(name) = params
            .and_then(|p| member(p, "name", fold))
            .and_then(Json::as_str)
        else {
            continue; // no tool to run
        };
        let args = match params.and_then(|p| member(p, "arguments", fold)) {
            None | Some(Json::Null) => b"{}".to_vec(),
            // Go's reading: every key, at any depth, in the one letter case the
            // policy's paths are spelt in (`"AMOUNT"` is the field `amount`).
            Some(a) if fold => serde_json::to_vec(&fold_keys(a)).expect("serialise arguments"),
            Some(a) => serde_json::to_vec(a).expect("serialise arguments"),
        };
        assert_allowed(policy, name, &args, msg);
    }
}

/// `v` with every object key case-folded (the last of keys folding alike
/// wins, as in Go): how a server in Go, matching struct fields in any letter
/// case, sees arguments, spelt as the proxy target's policy spells its paths.
fn fold_keys(v: &Json) -> Json {
    match v {
        Json::Object(m) => {
            let mut out = serde_json::Map::new();
            for (k, v) in m {
                out.insert(JStr::plain(k).folded(), fold_keys(v));
            }
            Json::Object(out)
        }
        Json::Array(items) => Json::Array(items.iter().map(fold_keys).collect()),
        v => v.clone(),
    }
}

/// Fixed decision time of the `proxy` target's oracle (the policy has no time conditions).
const FIXED_NOW: UnixMillis = UnixMillis(1_767_225_600_000);

fn assert_allowed(policy: &Evaluator, name: &str, args: &[u8], msg: &[u8]) {
    let shown = || String::from_utf8_lossy(msg).into_owned();
    // Arguments the server would read but Portcullis could not are a bypass too.
    let call = ToolCall::new(name, args, Strictness::LENIENT).unwrap_or_else(|e| {
        panic!(
            "forwarded a call with unreadable arguments ({e}): {}",
            shown()
        )
    });
    let counters = MemoryCounters::new();
    let env = Env {
        counters: &counters,
        now: FIXED_NOW,
        session: 1,
        fail_mode: FailMode::Closed,
        principal: None,
    };
    let decision = policy.decide(&call, &env, &mut portcullis_core::Ticket::default());
    assert!(
        decision.effect() == Effect::Allow,
        "forwarded a call the policy denies ({:?}: {}): {}",
        decision.outcome,
        decision.message(name),
        shown()
    );
}
