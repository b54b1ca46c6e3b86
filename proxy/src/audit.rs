//! The decision log (`--audit-log FILE`): one JSON line per decision,
//! naming the caller by `sub` and `iss` (never the token or other claims).
//!
//! Events are handed to a writer thread through a channel, so hashing,
//! formatting and file I/O stay off the decision path. Argument values are
//! never written: only the sha256 of their canonical form (keys sorted,
//! whitespace removed, strings and numbers in one spelling per value).

use std::io::Write;
use std::path::Path;
use std::sync::{Arc, mpsc};

use sha2::{Digest, Sha256};

use super::respond::outcome_name;
use portcullis_core::Principal;
use portcullis_core::counters::UnixMillis;
use portcullis_core::json::push_json_str;
use portcullis_core::json::{Val, Value};
use portcullis_core::policy::{Outcome, RuleInfo};

/// What happened to one `tools/call`.
#[derive(Debug, Clone)]
pub enum Verdict {
    /// The policy decided.
    Decided {
        /// Why.
        outcome: Outcome,
        /// The deciding rule.
        rule: Option<&'static RuleInfo>,
        /// The denial message ("" for an allow).
        message: String,
    },
    /// The policy allowed the call, but an identical one was made within
    /// its idempotency window: answered without reaching the server.
    Duplicate {
        /// `replayed`, `refused` or `unavailable` (the record store failed).
        result: &'static str,
        /// The rule declaring the window.
        rule: Option<&'static RuleInfo>,
    },
    /// The message was refused before evaluation (malformed or ambiguous).
    Rejected {
        /// The JSON-RPC error code sent back.
        code: i32,
        /// Why.
        message: &'static str,
    },
}

/// One entry of the decision log.
#[derive(Debug, Clone)]
pub enum Event {
    /// The proxy started.
    Startup {
        /// What it wraps (command basename or URL).
        upstream: String,
        /// This process's [`process_start`], when the system tells it.
        process_start: Option<String>,
    },
    /// A decision.
    ToolCall {
        /// When.
        at: UnixMillis,
        /// The digest of the policy that decided (a reload may swap it
        /// between the decision and the write); `None` for a call refused
        /// before any policy saw it.
        digest: Option<&'static str>,
        /// The tool ("" when unreadable).
        tool: String,
        /// The verdict.
        verdict: Verdict,
        /// The raw arguments, hashed by the writer.
        arguments: Option<Vec<u8>>,
        /// The MCP session it belongs to, when the log serves several (HTTP endpoint).
        session: Option<u64>,
        /// Who called: the line names its `sub` and `iss`, nothing else of it.
        principal: Option<Arc<Principal>>,
    },
    /// A policy reload (`-c FILE` in development builds).
    Reload {
        /// The new policy's digest when it was applied; `None` when rejected.
        digest: Option<&'static str>,
        /// Why it was rejected (the diagnostics), or "" when applied.
        message: String,
    },
    /// A price on a paid tool (MPP): checked against the budgets and
    /// `reserved` (the challenge went to the client) or `denied` (replaced by
    /// a denial); then `committed` by the paid retry's success or `released`
    /// by its failure.
    Payment {
        /// When.
        at: UnixMillis,
        /// The tool.
        tool: String,
        /// `reserved`, `denied`, `committed` or `released`.
        stage: &'static str,
        /// `0.50 usd` ("" when the challenge was unreadable).
        price: String,
        /// The budgets (rule names) that governed it, comma-separated.
        budgets: String,
        /// Why it was denied ("" otherwise).
        message: String,
        /// The MCP session.
        session: Option<u64>,
        /// Who called: the line names its `sub` and `iss`, nothing else of it.
        principal: Option<Arc<Principal>>,
    },
    /// A step of the operator approval flow: `requested` (a new pending
    /// record), `granted` (an approval consumed by the retry that is
    /// forwarded), `restored` (given back: the upstream failed that retry),
    /// `declined` (a retry refused because a person denied it); and, written
    /// by `portcullis approvals`, `approved` and `denied`.
    Approval {
        /// When.
        at: UnixMillis,
        /// The tool.
        tool: String,
        /// See above.
        stage: &'static str,
        /// The approval id.
        id: String,
        /// The approval rule's name.
        rule: String,
        /// Who decided (`approved`, `denied`); "" otherwise.
        by: String,
        /// The reason given, or the rule's message on `requested`.
        message: String,
        /// The MCP session (None when written by the CLI).
        session: Option<u64>,
        /// Who called.
        principal: Option<Arc<Principal>>,
    },
    /// A result rule acted on an answer (docs/results.md): secrets redacted,
    /// or the answer withheld (a deny pattern matched, or it was too large).
    /// Names the patterns and how often they matched; never what matched.
    Result {
        /// When.
        at: UnixMillis,
        /// The tool, or the resource URI of a `resources/read`.
        tool: String,
        /// The result rule (`results.tools.read_file`).
        rule: &'static str,
        /// `redact` or `deny`.
        action: &'static str,
        /// Pattern name, its action, and its match count.
        findings: Vec<portcullis_core::results::Count>,
        /// The session.
        session: Option<u64>,
        /// Who called.
        principal: Option<Arc<Principal>>,
    },
    /// The proxy is exiting.
    Shutdown {
        /// The exit code it will return.
        exit_code: i32,
    },
}

/// When process `pid` started, as `<boot id>/<start time in clock ticks
/// since boot>` (Linux `/proc`): unique for a process across pid reuse and
/// reboots, so `status` can tell the proxy that wrote a log from a process
/// that got its pid later. None where `/proc` does not say.
pub fn process_start(pid: u32) -> Option<String> {
    let boot = std::fs::read_to_string("/proc/sys/kernel/random/boot_id").ok()?;
    let stat = std::fs::read_to_string(format!("/proc/{pid}/stat")).ok()?;
    // `pid (comm) state ...`: comm may hold spaces and parentheses; field 22
    // (start time) is the 20th after the last `)`.
    let after = &stat[stat.rfind(')')? + 1..];
    let start = after.split_whitespace().nth(19)?;
    start.parse::<u64>().ok()?;
    Some(format!("{}/{start}", boot.trim()))
}

/// Sends events to the writer thread.
#[derive(Clone)]
pub struct AuditLog {
    tx: mpsc::Sender<Event>,
}

/// Facts written on every line.
#[derive(Debug, Clone)]
pub struct Identity {
    /// Server name.
    pub server: &'static str,
    /// Policy digest.
    pub digest: &'static str,
    /// This process.
    pub pid: u32,
    /// The agent session (hex).
    pub session: String,
}

impl AuditLog {
    /// Opens (appends to) `path` and starts the writer thread.
    pub fn open(
        path: &Path,
        identity: Identity,
    ) -> std::io::Result<(AuditLog, std::thread::JoinHandle<()>)> {
        let file = std::fs::OpenOptions::new()
            .create(true)
            .append(true)
            .open(path)?;
        let (tx, rx) = mpsc::channel::<Event>();
        let handle = std::thread::Builder::new()
            .name("audit-log".into())
            .spawn(move || {
                let mut identity = identity;
                let mut w = std::io::BufWriter::new(file);
                while let Ok(ev) = rx.recv() {
                    // A failing disk must not stop enforcement; the proxy keeps serving.
                    let _ = w.write_all(&render_next(&mut identity, &ev));
                    // Drain what else is queued, then flush once: a burst is one write.
                    while let Ok(next) = rx.try_recv() {
                        let _ = w.write_all(&render_next(&mut identity, &next));
                    }
                    let _ = w.flush();
                }
                let _ = w.flush();
            })?;
        Ok((AuditLog { tx }, handle))
    }

    /// Queues an event (never blocks).
    pub fn record(&self, ev: Event) {
        let _ = self.tx.send(ev);
    }
}

/// Renders `ev`; an applied reload changes the digest on its line and on every later line.
fn render_next(id: &mut Identity, ev: &Event) -> Vec<u8> {
    if let Event::Reload {
        digest: Some(d), ..
    } = ev
    {
        id.digest = d;
    }
    render(id, ev)
}

/// One log line (with its newline).
pub fn render(id: &Identity, ev: &Event) -> Vec<u8> {
    let mut out = Vec::with_capacity(256);
    out.extend_from_slice(b"{\"ts\":");
    let ts = match ev {
        Event::ToolCall { at, .. }
        | Event::Payment { at, .. }
        | Event::Approval { at, .. }
        | Event::Result { at, .. } => *at,
        _ => UnixMillis::now(),
    };
    push_json_str(&mut out, &ts.to_rfc3339());
    let kind = match ev {
        Event::Startup { .. } => "startup",
        Event::ToolCall { .. } => "tool_call",
        Event::Payment { .. } => "payment",
        Event::Approval { .. } => "approval",
        Event::Result { .. } => "result",
        Event::Shutdown { .. } => "shutdown",
        Event::Reload { .. } => "config_reload",
    };
    out.extend_from_slice(b",\"type\":");
    push_json_str(&mut out, kind);
    out.extend_from_slice(format!(",\"pid\":{},\"session\":", id.pid).as_bytes());
    match ev {
        Event::ToolCall {
            session: Some(s), ..
        }
        | Event::Payment {
            session: Some(s), ..
        }
        | Event::Approval {
            session: Some(s), ..
        }
        | Event::Result {
            session: Some(s), ..
        } => push_json_str(&mut out, &format!("{s:016x}")),
        _ => push_json_str(&mut out, &id.session),
    }
    // The caller, by subject and issuer only: never the token, never other
    // claims (they can be personal data, and a log outlives a session).
    if let Event::ToolCall {
        principal: Some(p), ..
    }
    | Event::Payment {
        principal: Some(p), ..
    }
    | Event::Approval {
        principal: Some(p), ..
    }
    | Event::Result {
        principal: Some(p), ..
    } = ev
    {
        out.extend_from_slice(b",\"sub\":");
        push_json_str(&mut out, p.sub());
        out.extend_from_slice(b",\"iss\":");
        push_json_str(&mut out, p.iss());
    }
    out.extend_from_slice(b",\"server\":");
    push_json_str(&mut out, id.server);
    out.extend_from_slice(b",\"policy_digest\":");
    let digest = match ev {
        Event::ToolCall {
            digest: Some(d), ..
        } => d,
        _ => id.digest,
    };
    push_json_str(&mut out, digest);
    match ev {
        Event::Startup {
            upstream,
            process_start,
        } => {
            out.extend_from_slice(b",\"upstream\":");
            push_json_str(&mut out, upstream);
            if let Some(p) = process_start {
                out.extend_from_slice(b",\"process_start\":");
                push_json_str(&mut out, p);
            }
        }
        Event::Shutdown { exit_code } => {
            out.extend_from_slice(format!(",\"exit_code\":{exit_code}").as_bytes());
        }
        Event::Payment {
            tool,
            stage,
            price,
            budgets,
            message,
            ..
        } => {
            for (k, v) in [
                ("tool", tool.as_str()),
                ("stage", stage),
                ("price", price),
                ("budgets", budgets),
                ("message", message),
            ] {
                if !v.is_empty() || k == "tool" || k == "stage" {
                    out.extend_from_slice(format!(",\"{k}\":").as_bytes());
                    push_json_str(&mut out, v);
                }
            }
        }
        Event::Approval {
            tool,
            stage,
            id,
            rule,
            by,
            message,
            ..
        } => {
            for (k, v) in [
                ("tool", tool.as_str()),
                ("stage", stage),
                ("approval_id", id),
                ("rule", rule),
                ("decided_by", by),
                ("message", message),
            ] {
                if !v.is_empty() || k == "tool" || k == "stage" {
                    out.extend_from_slice(format!(",\"{k}\":").as_bytes());
                    push_json_str(&mut out, v);
                }
            }
        }
        Event::Result {
            tool,
            rule,
            action,
            findings,
            ..
        } => {
            out.extend_from_slice(b",\"tool\":");
            push_json_str(&mut out, tool);
            out.extend_from_slice(b",\"rule\":");
            push_json_str(&mut out, rule);
            out.extend_from_slice(b",\"action\":");
            push_json_str(&mut out, action);
            out.extend_from_slice(b",\"findings\":[");
            for (i, f) in findings.iter().enumerate() {
                if i > 0 {
                    out.push(b',');
                }
                out.extend_from_slice(b"{\"pattern\":");
                push_json_str(&mut out, f.name);
                out.extend_from_slice(b",\"action\":");
                push_json_str(&mut out, f.action.name());
                out.extend_from_slice(format!(",\"count\":{}}}", f.count).as_bytes());
            }
            out.push(b']');
        }
        Event::Reload { digest, message } => {
            out.extend_from_slice(b",\"status\":");
            push_json_str(
                &mut out,
                if digest.is_some() {
                    "success"
                } else {
                    "failure"
                },
            );
            if !message.is_empty() {
                out.extend_from_slice(b",\"message\":");
                push_json_str(&mut out, message);
            }
        }
        Event::ToolCall {
            tool,
            verdict,
            arguments,
            ..
        } => {
            out.extend_from_slice(b",\"tool\":");
            push_json_str(&mut out, tool);
            match verdict {
                Verdict::Decided {
                    outcome,
                    rule,
                    message,
                } => {
                    let effect = match outcome {
                        Outcome::Allowed => "allow",
                        Outcome::ApprovalRequired => "approve",
                        _ => "deny",
                    };
                    out.extend_from_slice(b",\"effect\":");
                    push_json_str(&mut out, effect);
                    out.extend_from_slice(b",\"outcome\":");
                    push_json_str(&mut out, outcome_name(*outcome));
                    if let Some(r) = rule {
                        out.extend_from_slice(b",\"rule\":");
                        push_json_str(&mut out, r.name);
                        out.extend_from_slice(b",\"rule_label\":");
                        push_json_str(&mut out, r.label);
                        out.extend_from_slice(b",\"source\":");
                        push_json_str(&mut out, &format!("{}:{}:{}", r.file, r.line, r.column));
                    }
                    if !message.is_empty() {
                        out.extend_from_slice(b",\"message\":");
                        push_json_str(&mut out, message);
                    }
                }
                Verdict::Duplicate { result, rule } => {
                    // A replay answers the caller (allow); a refusal denies.
                    let effect = if *result == "replayed" {
                        "allow"
                    } else {
                        "deny"
                    };
                    out.extend_from_slice(b",\"effect\":");
                    push_json_str(&mut out, effect);
                    out.extend_from_slice(b",\"outcome\":\"duplicate\",\"idempotency\":");
                    push_json_str(&mut out, result);
                    if let Some(r) = rule {
                        out.extend_from_slice(b",\"rule\":");
                        push_json_str(&mut out, r.name);
                        out.extend_from_slice(b",\"rule_label\":");
                        push_json_str(&mut out, r.label);
                        out.extend_from_slice(b",\"source\":");
                        push_json_str(&mut out, &format!("{}:{}:{}", r.file, r.line, r.column));
                    }
                }
                Verdict::Rejected { code, message } => {
                    out.extend_from_slice(b",\"effect\":\"deny\",\"outcome\":\"rejected\"");
                    out.extend_from_slice(format!(",\"code\":{code},\"message\":").as_bytes());
                    push_json_str(&mut out, message);
                }
            }
            if let Some(args) = arguments {
                out.extend_from_slice(b",\"args_sha256\":");
                push_json_str(&mut out, &args_sha256(args));
            }
        }
    }
    out.extend_from_slice(b"}\n");
    out
}

/// sha256 (hex) of the canonical form of a validated JSON value.
pub fn args_sha256(raw: &[u8]) -> String {
    let mut canon = Vec::with_capacity(raw.len());
    canonical(Value::from_validated(raw), &mut canon);
    Sha256::digest(&canon)
        .iter()
        .map(|b| format!("{b:02x}"))
        .collect()
}

/// Writes a canonical form: object keys sorted (by code point), no
/// whitespace, strings minimally escaped, numbers as `digits[e<exp>]`.
pub fn canonical(v: Value<'_>, out: &mut Vec<u8>) {
    match v.val() {
        Val::Null => out.extend_from_slice(b"null"),
        Val::Bool(b) => out.extend_from_slice(if b { b"true" } else { b"false" }),
        Val::Num(n) => out.extend_from_slice(n.canonical_text().as_bytes()),
        Val::Str(s) => push_json_str(out, &s.chars().collect::<String>()),
        Val::Array(a) => {
            out.push(b'[');
            for (i, item) in a.iter().enumerate() {
                if i > 0 {
                    out.push(b',');
                }
                canonical(item, out);
            }
            out.push(b']');
        }
        Val::Object(o) => {
            let mut members: Vec<(String, Value<'_>)> =
                o.members().map(|(k, v)| (k.chars().collect(), v)).collect();
            members.sort_by(|a, b| a.0.cmp(&b.0));
            out.push(b'{');
            for (i, (k, v)) in members.into_iter().enumerate() {
                if i > 0 {
                    out.push(b',');
                }
                push_json_str(out, &k);
                out.push(b':');
                canonical(v, out);
            }
            out.push(b'}');
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn canonical_form_ignores_spelling() {
        let a = br#"{ "b": [1e3, "x\u0041"], "a": {"z": null, "y": true} }"#;
        let b = br#"{"a":{"y":true,"z":null},"b":[1000,"xA"]}"#;
        assert_eq!(args_sha256(a), args_sha256(b));
        assert_ne!(
            args_sha256(a),
            args_sha256(br#"{"a":{"y":true,"z":null},"b":[1001,"xA"]}"#)
        );
        let mut out = Vec::new();
        canonical(Value::from_validated(a), &mut out);
        assert_eq!(
            String::from_utf8(out).unwrap(),
            r#"{"a":{"y":true,"z":null},"b":[1e3,"xA"]}"#
        );
    }

    #[test]
    fn lines_never_carry_argument_values() {
        let id = Identity {
            server: "s",
            digest: "d",
            pid: 1,
            session: "ab".into(),
        };
        let line = render(
            &id,
            &Event::ToolCall {
                at: UnixMillis(0),
                digest: Some("d2"),
                tool: "pay".into(),
                verdict: Verdict::Decided {
                    outcome: Outcome::Allowed,
                    rule: None,
                    message: String::new(),
                },
                arguments: Some(br#"{"card":"4111111111111111"}"#.to_vec()),
                session: None,
                principal: None,
            },
        );
        let text = String::from_utf8(line).unwrap();
        assert!(!text.contains("4111"), "{text}");
        assert!(text.starts_with(r#"{"ts":"1970-01-01T00:00:00.000Z","type":"tool_call","pid":1,"session":"ab","server":"s","policy_digest":"d2","tool":"pay","effect":"allow","outcome":"allowed","args_sha256":""#), "{text}");
        assert!(text.ends_with("\"}\n"));
    }

    #[test]
    fn lines_name_the_caller_by_sub_and_iss_only_escaped() {
        let id = Identity {
            server: "s",
            digest: "d",
            pid: 1,
            session: "ab".into(),
        };
        let hostile = format!("a\"b\\c\nd\u{1b}[2J\u{2028}{}", "x".repeat(10_000));
        let mut claims = br#"{"sub":"#.to_vec();
        push_json_str(&mut claims, &hostile);
        claims.extend_from_slice(br#","iss":"https://idp\"x","groups":["finance"],"email":"a@b"}"#);
        let p = Arc::new(Principal::from_claims(claims).unwrap());
        let events = [
            Event::ToolCall {
                at: UnixMillis(0),
                digest: Some("d"),
                tool: "pay".into(),
                verdict: Verdict::Rejected {
                    code: -32602,
                    message: "bad",
                },
                arguments: None,
                session: Some(7),
                principal: Some(p.clone()),
            },
            Event::Payment {
                at: UnixMillis(0),
                tool: "pay".into(),
                stage: "reserved",
                price: "1 usd".into(),
                budgets: "b".into(),
                message: String::new(),
                session: Some(7),
                principal: Some(p.clone()),
            },
        ];
        for ev in &events {
            let line = render(&id, ev);
            assert_eq!(line.iter().filter(|&&b| b == b'\n').count(), 1, "one line");
            let v: serde_json::Value = serde_json::from_slice(&line).unwrap();
            assert_eq!(v["sub"], hostile.as_str());
            assert_eq!(v["iss"], "https://idp\"x");
            let text = String::from_utf8(line).unwrap();
            assert!(!text.contains("finance") && !text.contains("a@b"), "{text}");
        }
    }
}
