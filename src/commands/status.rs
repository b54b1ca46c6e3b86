//! `portcullis status`: what the proxies writing these decision logs did.
//!
//! Reads every line of the logs (`--audit-log` of the proxy; see
//! docs/cli.md, "The decision log"), groups them by instance (one proxy
//! process: pid + session), and prints instances, totals, the deny rate,
//! calls per minute over the last five minutes, the rules that denied most,
//! the last ten denials and, when lines name them, the calls and denials per
//! caller (`sub`, `iss`). Lines that are not decision-log JSON (a
//! partial last line of a log being written) are counted and skipped.

use std::collections::BTreeMap;
use std::path::PathBuf;

use portcullis_core::counters::UnixMillis;
use portcullis_proxy::audit::process_start;
use portcullis_proxy::log::printable;
use serde::Serialize;
use serde_json::Value;

use crate::cli::StatusArgs;

/// Prints the report; 0 on success (also when there is no data), 1 when a log cannot be read.
pub fn run(args: &StatusArgs) -> i32 {
    let now = match &args.now {
        None => UnixMillis::now(),
        Some(t) => match UnixMillis::parse_rfc3339(t) {
            Some(t) => t,
            None => {
                eprintln!(
                    "error: `{t}` is not an RFC 3339 time\n  = help: e.g. --now 2026-11-26T10:00:00Z"
                );
                return 1;
            }
        },
    };
    let report = match load(&args.audit_logs, now) {
        Ok(r) => r,
        Err(e) => {
            eprintln!("error: {e}");
            return 1;
        }
    };
    let summary = report.summary(&process_exists);
    if args.json {
        println!(
            "{}",
            serde_json::to_string_pretty(&summary).expect("a summary serialises")
        );
    } else {
        print!("{}", render(&summary));
    }
    0
}

/// Every line of the logs at `paths` (files, or directories of `*.jsonl`),
/// read as of `now`: what `status` prints and `portcullis ui` shows.
pub(crate) fn load(paths: &[PathBuf], now: UnixMillis) -> Result<Report, String> {
    let files = log_files(paths)?;
    let mut report = Report::new(now);
    for f in &files {
        let text = std::fs::read(f).map_err(|e| format!("reading {}: {e}", f.display()))?;
        report.files.push(f.display().to_string());
        for line in text.split(|&b| b == b'\n').filter(|l| !l.is_empty()) {
            report.add(line);
        }
    }
    Ok(report)
}

/// The files to read: each FILE, and the `*.jsonl` files of each DIR, sorted.
fn log_files(paths: &[PathBuf]) -> Result<Vec<PathBuf>, String> {
    let mut out = Vec::new();
    for p in paths {
        if p.is_dir() {
            let mut found: Vec<PathBuf> = std::fs::read_dir(p)
                .map_err(|e| format!("reading {}: {e}", p.display()))?
                .filter_map(|e| e.ok().map(|e| e.path()))
                .filter(|f| f.is_file() && f.extension().is_some_and(|x| x == "jsonl"))
                .collect();
            found.sort();
            out.extend(found);
        } else if p.is_file() {
            out.push(p.clone());
        } else {
            return Err(format!(
                "{}: no such file or directory\n  = help: pass the file the proxy's --audit-log writes, or its directory",
                p.display()
            ));
        }
    }
    Ok(out)
}

/// True when the process that wrote the log still runs: a process with
/// this pid exists and, when the log recorded the writer's
/// [`process_start`] and the system tells the live one's, they are equal
/// (a process that reused the pid, after a restart or in another
/// container's pid 1, is not the proxy). The report says "running" only
/// when the log has no `shutdown` line for the instance either.
pub(crate) fn process_exists(pid: u32, started: Option<&str>) -> bool {
    if let (Some(logged), Some(live)) = (started, process_start(pid)) {
        return logged == live;
    }
    let Ok(pid) = i32::try_from(pid) else {
        return false;
    };
    if pid <= 0 {
        return false;
    }
    match nix::sys::signal::kill(nix::unistd::Pid::from_raw(pid), None) {
        Ok(()) => true,
        // It exists but belongs to someone else.
        Err(e) => e == nix::errno::Errno::EPERM,
    }
}

#[derive(Debug, Default)]
struct Instance {
    pid: u32,
    session: String,
    server: String,
    digest: String,
    upstream: String,
    started: Option<i64>,
    /// The writer's `process_start`, from its `startup` line.
    process_start: Option<String>,
    last_seen: i64,
    exit_code: Option<i64>,
    calls: u64,
    denied: u64,
}

/// One denial in the log.
#[derive(Debug, Clone, Serialize)]
pub(crate) struct Denial {
    time: String,
    /// When, in Unix milliseconds.
    #[serde(skip)]
    pub(crate) at: i64,
    server: String,
    tool: String,
    outcome: String,
    /// The rule's name (or `(outcome)` when no rule decided).
    pub(crate) rule: String,
    source: String,
    message: String,
    /// The caller's `sub` and `iss` (absent from logs of older versions).
    #[serde(skip_serializing_if = "String::is_empty")]
    sub: String,
    #[serde(skip_serializing_if = "String::is_empty")]
    iss: String,
}

/// The logs, read: see [`load`].
pub(crate) struct Report {
    now: UnixMillis,
    files: Vec<String>,
    unreadable: u64,
    instances: BTreeMap<(String, u32), Instance>,
    calls: u64,
    denied: u64,
    rejected: u64,
    /// Calls an approval rule held (`effect: approve`): neither allowed nor denied.
    approval_required: u64,
    /// (minute start ms) -> calls; the report shows the last five minutes up to `now`.
    pub(crate) minutes: BTreeMap<i64, u64>,
    /// (rule, source) -> denials.
    rules: BTreeMap<(String, String), u64>,
    /// Every denial, in log order.
    pub(crate) denials: Vec<Denial>,
    first: Option<i64>,
    last: Option<i64>,
    /// (iss, sub) -> (calls, denials): decisions per caller, from lines
    /// that name one.
    callers: BTreeMap<(String, String), (u64, u64)>,
    /// Paid tools (MPP): (tool, budgets, currency) -> micro-units per stage
    /// (committed, reserved, released, denied). Exact integers, no floats.
    spend: BTreeMap<(String, String, String), [u64; 4]>,
    /// Operator approval flow (`type: approval` lines): stage -> count.
    approvals: BTreeMap<String, u64>,
    /// Answers changed by result rules (`type: result` lines): action
    /// (`redact`, `deny`) -> count.
    results: BTreeMap<String, u64>,
}

/// The decision log's payment stages, in the order `status` shows them.
const SPEND_STAGES: [&str; 4] = ["committed", "reserved", "released", "denied"];

impl Report {
    fn new(now: UnixMillis) -> Report {
        Report {
            now,
            files: Vec::new(),
            unreadable: 0,
            instances: BTreeMap::new(),
            calls: 0,
            denied: 0,
            rejected: 0,
            approval_required: 0,
            minutes: BTreeMap::new(),
            rules: BTreeMap::new(),
            denials: Vec::new(),
            first: None,
            last: None,
            callers: BTreeMap::new(),
            spend: BTreeMap::new(),
            approvals: BTreeMap::new(),
            results: BTreeMap::new(),
        }
    }

    fn add(&mut self, line: &[u8]) {
        let Ok(v) = serde_json::from_slice::<Value>(line) else {
            self.unreadable += 1;
            return;
        };
        let s = |k: &str| v.get(k).and_then(Value::as_str).unwrap_or("").to_string();
        let (Some(at), Some(pid)) = (
            v.get("ts")
                .and_then(Value::as_str)
                .and_then(UnixMillis::parse_rfc3339),
            v.get("pid")
                .and_then(Value::as_u64)
                .and_then(|p| u32::try_from(p).ok()),
        ) else {
            self.unreadable += 1;
            return;
        };
        let at = at.0;
        let kind = s("type");
        if kind == "payment" {
            // `price` is `0.40 usd`; an unreadable one counts as nothing.
            let price = s("price");
            let (amount, currency) = price.split_once(' ').unwrap_or(("", ""));
            let micros = portcullis_core::spend::parse_decimal(amount).unwrap_or(0);
            if let Some(i) = SPEND_STAGES.iter().position(|x| *x == s("stage")) {
                let e = self
                    .spend
                    .entry((s("tool"), s("budgets"), currency.to_string()))
                    .or_default();
                e[i] = e[i].saturating_add(micros);
            }
            return;
        }
        if kind == "approval" {
            *self.approvals.entry(s("stage")).or_default() += 1;
            return;
        }
        if kind == "result" {
            *self.results.entry(s("action")).or_default() += 1;
            return;
        }
        if !matches!(
            kind.as_str(),
            "startup" | "tool_call" | "shutdown" | "config_reload"
        ) {
            self.unreadable += 1;
            return;
        }
        self.first = Some(self.first.map_or(at, |f| f.min(at)));
        self.last = Some(self.last.map_or(at, |l| l.max(at)));
        let inst = self
            .instances
            .entry((s("session"), pid))
            .or_insert_with(|| Instance {
                pid,
                session: s("session"),
                server: s("server"),
                digest: s("policy_digest"),
                last_seen: at,
                ..Instance::default()
            });
        inst.last_seen = inst.last_seen.max(at);
        match kind.as_str() {
            "startup" => {
                inst.started = Some(at);
                inst.upstream = s("upstream");
                inst.process_start = v
                    .get("process_start")
                    .and_then(Value::as_str)
                    .map(str::to_string);
            }
            "shutdown" => inst.exit_code = v.get("exit_code").and_then(Value::as_i64),
            // An applied reload: the instance enforces the new digest from here on.
            "config_reload" => {
                if s("status") == "success" {
                    inst.digest = s("policy_digest");
                }
            }
            _ => {
                inst.calls += 1;
                self.calls += 1;
                let (sub, iss) = (s("sub"), s("iss"));
                let caller = (!sub.is_empty() || !iss.is_empty())
                    .then(|| self.callers.entry((iss.clone(), sub.clone())).or_default());
                let denied = s("effect") == "deny";
                if let Some(c) = caller {
                    c.0 += 1;
                    c.1 += u64::from(denied);
                }
                *self
                    .minutes
                    .entry(at.div_euclid(60_000) * 60_000)
                    .or_default() += 1;
                if s("effect") == "approve" {
                    self.approval_required += 1;
                }
                if denied {
                    inst.denied += 1;
                    self.denied += 1;
                    let outcome = s("outcome");
                    if outcome == "rejected" {
                        self.rejected += 1;
                    }
                    let rule = match (s("rule"), outcome.as_str()) {
                        (r, _) if !r.is_empty() => r,
                        (_, "rejected") => format!(
                            "(malformed call, JSON-RPC {})",
                            v.get("code").and_then(Value::as_i64).unwrap_or(0)
                        ),
                        (_, o) => format!("({o})"),
                    };
                    let source = s("source");
                    *self
                        .rules
                        .entry((rule.clone(), source.clone()))
                        .or_default() += 1;
                    self.denials.push(Denial {
                        time: UnixMillis(at).to_rfc3339(),
                        at,
                        server: inst.server.clone(),
                        tool: s("tool"),
                        outcome,
                        rule,
                        source,
                        message: s("message"),
                        sub,
                        iss,
                    });
                }
            }
        }
    }

    /// What `status` reports; `exists` tells whether a logging process still runs.
    pub(crate) fn summary(mut self, exists: &dyn Fn(u32, Option<&str>) -> bool) -> Summary {
        let mut instances: Vec<InstanceSummary> = self
            .instances
            .values()
            .map(|i| InstanceSummary {
                pid: i.pid,
                session: i.session.clone(),
                server: i.server.clone(),
                policy_digest: i.digest.clone(),
                upstream: i.upstream.clone(),
                state: match i.exit_code {
                    Some(code) => format!("exited ({code})"),
                    None if exists(i.pid, i.process_start.as_deref()) => "running".to_string(),
                    None => "gone".to_string(),
                },
                started: i.started.map(|t| UnixMillis(t).to_rfc3339()),
                last_seen: UnixMillis(i.last_seen).to_rfc3339(),
                calls: i.calls,
                denied: i.denied,
            })
            .collect();
        instances.sort_by(|a, b| {
            b.last_seen
                .cmp(&a.last_seen)
                .then(a.pid.cmp(&b.pid))
                .then(a.session.cmp(&b.session))
        });
        let minute_now = self.now.0.div_euclid(60_000) * 60_000;
        let per_minute = (0..5)
            .rev()
            .map(|k| {
                let start = minute_now - k * 60_000;
                MinuteSummary {
                    minute: UnixMillis(start).to_rfc3339(),
                    calls: self.minutes.get(&start).copied().unwrap_or(0),
                }
            })
            .collect();
        let mut rules: Vec<RuleSummary> = self
            .rules
            .iter()
            .map(|((rule, source), n)| RuleSummary {
                rule: rule.clone(),
                source: source.clone(),
                denials: *n,
            })
            .collect();
        rules.sort_by(|a, b| b.denials.cmp(&a.denials).then(a.rule.cmp(&b.rule)));
        rules.truncate(10);
        let mut callers: Vec<CallerSummary> = self
            .callers
            .iter()
            .map(|((iss, sub), (calls, denied))| CallerSummary {
                sub: sub.clone(),
                iss: iss.clone(),
                calls: *calls,
                denied: *denied,
            })
            .collect();
        callers.sort_by(|a, b| {
            b.calls
                .cmp(&a.calls)
                .then_with(|| (&a.iss, &a.sub).cmp(&(&b.iss, &b.sub)))
        });
        self.denials.sort_by_key(|d| d.at);
        let last_denials = self
            .denials
            .split_off(self.denials.len().saturating_sub(10));
        Summary {
            now: self.now.to_rfc3339(),
            files: self.files,
            unreadable_lines: self.unreadable,
            first: self.first.map(|t| UnixMillis(t).to_rfc3339()),
            last: self.last.map(|t| UnixMillis(t).to_rfc3339()),
            instances,
            calls: self.calls,
            allowed: self.calls - self.denied - self.approval_required,
            denied: self.denied,
            rejected: self.rejected,
            approval_required: self.approval_required,
            approvals: self.approvals,
            results: self.results,
            deny_rate: if self.calls == 0 {
                0.0
            } else {
                self.denied as f64 / self.calls as f64
            },
            calls_per_minute: per_minute,
            top_denying_rules: rules,
            callers,
            last_denials,
            spend: self
                .spend
                .iter()
                .map(|((tool, budgets, currency), v)| SpendSummary {
                    tool: tool.clone(),
                    budgets: budgets.clone(),
                    currency: currency.clone(),
                    committed: portcullis_core::spend::format(v[0]),
                    reserved: portcullis_core::spend::format(v[1]),
                    released: portcullis_core::spend::format(v[2]),
                    denied: portcullis_core::spend::format(v[3]),
                })
                .collect(),
        }
    }
}

/// Spend on one paid tool under one set of budgets, in one currency: exact
/// decimals (strings, never floats).
#[derive(Debug, Serialize)]
struct SpendSummary {
    tool: String,
    budgets: String,
    currency: String,
    committed: String,
    reserved: String,
    released: String,
    denied: String,
}

fn is_zero(n: &u64) -> bool {
    *n == 0
}

/// The report `status --json` prints.
#[derive(Debug, Serialize)]
pub(crate) struct Summary {
    now: String,
    files: Vec<String>,
    unreadable_lines: u64,
    first: Option<String>,
    last: Option<String>,
    instances: Vec<InstanceSummary>,
    calls: u64,
    allowed: u64,
    denied: u64,
    rejected: u64,
    /// Held by an approval rule (omitted when none were).
    #[serde(skip_serializing_if = "is_zero")]
    approval_required: u64,
    /// Operator approval flow events by stage (`requested`, `granted`,
    /// `restored`, `declined`; `approved`, `denied` by `portcullis
    /// approvals`); omitted when none.
    #[serde(skip_serializing_if = "BTreeMap::is_empty")]
    approvals: BTreeMap<String, u64>,
    /// Answers changed by result rules, by action (`redact`, `deny`);
    /// omitted when none were.
    #[serde(skip_serializing_if = "BTreeMap::is_empty")]
    results: BTreeMap<String, u64>,
    deny_rate: f64,
    calls_per_minute: Vec<MinuteSummary>,
    top_denying_rules: Vec<RuleSummary>,
    /// Decisions per caller (`sub`, `iss`), most calls first; absent when no
    /// line names a caller (logs of older versions).
    #[serde(skip_serializing_if = "Vec::is_empty")]
    callers: Vec<CallerSummary>,
    last_denials: Vec<Denial>,
    spend: Vec<SpendSummary>,
}

#[derive(Debug, Serialize)]
struct InstanceSummary {
    pid: u32,
    session: String,
    server: String,
    policy_digest: String,
    upstream: String,
    state: String,
    started: Option<String>,
    last_seen: String,
    calls: u64,
    denied: u64,
}

#[derive(Debug, Serialize)]
struct CallerSummary {
    sub: String,
    iss: String,
    calls: u64,
    denied: u64,
}

#[derive(Debug, Serialize)]
struct MinuteSummary {
    minute: String,
    calls: u64,
}

#[derive(Debug, Serialize)]
struct RuleSummary {
    rule: String,
    source: String,
    denials: u64,
}

/// `2026-11-26T10:00:00.000Z` as `2026-11-26 10:00:00`.
fn short_time(t: &str) -> String {
    t.get(..19).unwrap_or(t).replace('T', " ")
}

/// Left-aligned columns, two spaces apart; the last column is not padded.
fn table(head: &[&str], rows: &[Vec<String>], right: &[bool]) -> String {
    let n = head.len();
    let mut widths: Vec<usize> = head.iter().map(|h| h.chars().count()).collect();
    for r in rows {
        for (w, c) in widths.iter_mut().zip(r) {
            *w = (*w).max(c.chars().count());
        }
    }
    let mut out = String::new();
    let line = |cells: Vec<&str>, out: &mut String| {
        let mut l = String::from("  ");
        for (i, c) in cells.iter().enumerate() {
            let pad = widths[i].saturating_sub(c.chars().count());
            if i + 1 == n {
                if right[i] {
                    l.push_str(&" ".repeat(pad));
                }
                l.push_str(c);
            } else if right[i] {
                l.push_str(&" ".repeat(pad));
                l.push_str(c);
                l.push_str("  ");
            } else {
                l.push_str(c);
                l.push_str(&" ".repeat(pad + 2));
            }
        }
        out.push_str(l.trim_end());
        out.push('\n');
    };
    line(head.to_vec(), &mut out);
    for r in rows {
        line(r.iter().map(String::as_str).collect(), &mut out);
    }
    out
}

/// A cell from the log (agent- or server-chosen text): escaped, then cut to `max` characters.
fn truncate(s: &str, max: usize) -> String {
    let s = printable(s);
    if s.chars().count() <= max {
        s.to_string()
    } else {
        let cut: String = s.chars().take(max - 1).collect();
        format!("{cut}…")
    }
}

fn render(s: &Summary) -> String {
    let mut out = String::new();
    let files = match s.files.len() {
        1 => s.files[0].clone(),
        n => format!("{n} files"),
    };
    if s.files.is_empty() {
        out.push_str("No decision logs found: the directory holds no *.jsonl file.\n");
        out.push_str("Start the proxy with --audit-log FILE to record its decisions.\n");
        return out;
    }
    if s.instances.is_empty() {
        out.push_str(&format!("No decisions recorded in {files}"));
        if s.unreadable_lines > 0 {
            out.push_str(&format!(
                " ({} line(s) are not decision-log entries)",
                s.unreadable_lines
            ));
        }
        out.push_str(".\nStart the proxy with --audit-log FILE to record its decisions.\n");
        return out;
    }
    out.push_str(&format!(
        "Decision log: {files}, {} to {} UTC (as of {} UTC)\n",
        short_time(s.first.as_deref().unwrap_or("")),
        short_time(s.last.as_deref().unwrap_or("")),
        short_time(&s.now)
    ));
    if s.unreadable_lines > 0 {
        out.push_str(&format!(
            "  {} line(s) skipped: not decision-log entries\n",
            s.unreadable_lines
        ));
    }
    out.push_str(&format!("\nInstances ({})\n", s.instances.len()));
    let rows: Vec<Vec<String>> = s
        .instances
        .iter()
        .map(|i| {
            vec![
                i.pid.to_string(),
                truncate(&i.server, 40),
                format!("sha256:{}", i.policy_digest.get(..12).unwrap_or("")),
                i.state.clone(),
                i.started
                    .as_deref()
                    .map_or_else(|| "-".to_string(), short_time),
                short_time(&i.last_seen),
                i.calls.to_string(),
                i.denied.to_string(),
            ]
        })
        .collect();
    out.push_str(&table(
        &[
            "PID",
            "SERVER",
            "POLICY",
            "STATE",
            "STARTED",
            "LAST SEEN",
            "CALLS",
            "DENIED",
        ],
        &rows,
        &[true, false, false, false, false, false, true, true],
    ));
    out.push_str(&format!(
        "\nCalls: {} total, {} allowed, {} denied ({:.1}%), of which {} malformed\n",
        s.calls,
        s.allowed,
        s.denied,
        s.deny_rate * 100.0,
        s.rejected
    ));
    if s.approval_required > 0 {
        out.push_str(&format!("Held for approval: {}\n", s.approval_required));
    }
    if !s.approvals.is_empty() {
        let parts: Vec<String> = s
            .approvals
            .iter()
            .map(|(k, v)| format!("{v} {k}"))
            .collect();
        out.push_str(&format!("Approvals: {}\n", parts.join(", ")));
    }
    if !s.results.is_empty() {
        let n = |k: &str| s.results.get(k).copied().unwrap_or(0);
        out.push_str(&format!(
            "Answers changed by result rules: {} redacted, {} withheld\n",
            n("redact"),
            n("deny")
        ));
    }
    let per_minute: Vec<String> = s
        .calls_per_minute
        .iter()
        .map(|m| format!("{} {}", m.minute.get(11..16).unwrap_or(""), m.calls))
        .collect();
    out.push_str(&format!(
        "Calls per minute, last 5 minutes: {}\n",
        per_minute.join("  ")
    ));
    if !s.callers.is_empty() {
        let shown = s.callers.len().min(10);
        out.push_str(&format!(
            "\nCallers ({}{})\n",
            s.callers.len(),
            if shown < s.callers.len() {
                format!(", the {shown} with most calls")
            } else {
                String::new()
            }
        ));
        let rows: Vec<Vec<String>> = s.callers[..shown]
            .iter()
            .map(|c| {
                vec![
                    c.calls.to_string(),
                    c.denied.to_string(),
                    truncate(&c.sub, 40),
                    truncate(&c.iss, 60),
                ]
            })
            .collect();
        out.push_str(&table(
            &["CALLS", "DENIED", "SUB", "ISS"],
            &rows,
            &[true, true, false, false],
        ));
    }
    if s.top_denying_rules.is_empty() {
        out.push_str("\nNo denials.\n");
        return out;
    }
    out.push_str("\nTop denying rules\n");
    let rows: Vec<Vec<String>> = s
        .top_denying_rules
        .iter()
        .map(|r| {
            vec![
                r.denials.to_string(),
                truncate(&r.rule, 48),
                truncate(&r.source, 80),
            ]
        })
        .collect();
    out.push_str(&table(
        &["DENIALS", "RULE", "SOURCE"],
        &rows,
        &[true, false, false],
    ));
    out.push_str(&format!("\nLast {} denials\n", s.last_denials.len()));
    // The caller's column only when some line names one (older logs do not).
    let callers = s.last_denials.iter().any(|d| !d.sub.is_empty());
    let rows: Vec<Vec<String>> = s
        .last_denials
        .iter()
        .rev()
        .map(|d| {
            let mut row = vec![short_time(&d.time)];
            if callers {
                row.push(if d.sub.is_empty() {
                    "-".to_string()
                } else {
                    truncate(&d.sub, 24)
                });
            }
            row.extend([
                if d.tool.is_empty() {
                    "-".to_string()
                } else {
                    truncate(&d.tool, 32)
                },
                truncate(&d.rule, 36),
                truncate(&d.message, 60),
            ]);
            row
        })
        .collect();
    let head: &[&str] = if callers {
        &["TIME", "CALLER", "TOOL", "RULE", "MESSAGE"]
    } else {
        &["TIME", "TOOL", "RULE", "MESSAGE"]
    };
    out.push_str(&table(head, &rows, &vec![false; head.len()]));
    if !s.spend.is_empty() {
        out.push_str(
            "\nSpend on paid tools (reserved includes what was later committed or released)\n",
        );
        let rows: Vec<Vec<String>> = s
            .spend
            .iter()
            .map(|x| {
                vec![
                    truncate(&x.tool, 32),
                    truncate(&x.budgets, 36),
                    x.currency.clone(),
                    x.committed.clone(),
                    x.reserved.clone(),
                    x.released.clone(),
                    x.denied.clone(),
                ]
            })
            .collect();
        out.push_str(&table(
            &[
                "TOOL",
                "BUDGETS",
                "CURRENCY",
                "COMMITTED",
                "RESERVED",
                "RELEASED",
                "DENIED",
            ],
            &rows,
            &[false, false, false, true, true, true, true],
        ));
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn tables_align_and_trim() {
        let t = table(
            &["A", "BB"],
            &[
                vec!["1".into(), "x".into()],
                vec!["100".into(), "yy".into()],
            ],
            &[true, false],
        );
        assert_eq!(t, "    A  BB\n    1  x\n  100  yy\n");
    }

    #[test]
    fn partial_and_foreign_lines_are_skipped() {
        let mut r = Report::new(UnixMillis(0));
        r.add(b"{\"ts\":\"2026-11-26T10:00:00.000Z\",\"type\":\"tool_call\",\"pid\":1");
        r.add(b"not json");
        r.add(b"{\"hello\":1}");
        assert_eq!(r.unreadable, 3);
        assert!(r.instances.is_empty());
    }

    #[test]
    fn calls_and_denials_are_counted_per_caller() {
        let mut r = Report::new(UnixMillis(0));
        for (sub, iss, effect) in [
            ("alice", "local", "allow"),
            ("alice", "local", "deny"),
            ("alice", "https://idp", "allow"),
            ("bob\"\n", "https://idp", "deny"),
        ] {
            let mut line = serde_json::json!({"ts":"2026-11-26T10:00:00.000Z","type":"tool_call","pid":1,"session":"a","server":"s","policy_digest":"d","tool":"t","effect":effect,"outcome":"allowed"});
            line["sub"] = sub.into();
            line["iss"] = iss.into();
            r.add(line.to_string().as_bytes());
        }
        // A line of an older version names no caller.
        r.add(br#"{"ts":"2026-11-26T10:00:00.000Z","type":"tool_call","pid":1,"session":"a","server":"s","policy_digest":"d","tool":"t","effect":"allow","outcome":"allowed"}"#);
        r.files.push("log.jsonl".into());
        let s = r.summary(&|_, _| false);
        let callers: Vec<(&str, &str, u64, u64)> = s
            .callers
            .iter()
            .map(|c| (c.sub.as_str(), c.iss.as_str(), c.calls, c.denied))
            .collect();
        assert_eq!(
            callers,
            [
                ("alice", "local", 2, 1),
                ("alice", "https://idp", 1, 0),
                ("bob\"\n", "https://idp", 1, 1)
            ]
        );
        assert_eq!(s.calls, 5);
        let text = render(&s);
        assert!(text.contains("Callers (3)"), "{text}");
        assert!(text.contains("  TIME                 CALLER  "), "{text}");
        assert!(
            text.contains("bob\"\\u{000a}"),
            "escaped for the terminal: {text}"
        );
        assert_eq!(s.last_denials[1].sub, "bob\"\n");
    }

    #[test]
    fn an_instance_without_shutdown_is_running_only_while_its_pid_exists() {
        let mut r = Report::new(UnixMillis(0));
        r.add(br#"{"ts":"2026-11-26T10:00:00.000Z","type":"startup","pid":7,"session":"a","server":"s","policy_digest":"d","upstream":"x"}"#);
        r.add(br#"{"ts":"2026-11-26T10:00:00.000Z","type":"startup","pid":8,"session":"b","server":"s","policy_digest":"d","upstream":"x"}"#);
        r.add(br#"{"ts":"2026-11-26T10:00:01.000Z","type":"shutdown","pid":8,"session":"b","server":"s","policy_digest":"d","exit_code":3}"#);
        let s = r.summary(&|pid, _| pid == 7 || pid == 8);
        let states: Vec<(u32, &str)> = s
            .instances
            .iter()
            .map(|i| (i.pid, i.state.as_str()))
            .collect();
        assert_eq!(states, [(8, "exited (3)"), (7, "running")]);
        let mut r = Report::new(UnixMillis(0));
        r.add(br#"{"ts":"2026-11-26T10:00:00.000Z","type":"startup","pid":7,"session":"a","server":"s","policy_digest":"d","upstream":"x"}"#);
        assert_eq!(r.summary(&|_, _| false).instances[0].state, "gone");
    }

    #[test]
    fn a_reused_pid_is_not_the_proxy_that_wrote_the_log() {
        let me = std::process::id();
        let mine = process_start(me).expect("Linux /proc");
        assert!(process_exists(me, Some(&mine)), "this process, same start");
        let other = format!("{}/1", mine.split('/').next().unwrap());
        assert!(
            !process_exists(me, Some(&other)),
            "same pid, another start time: another process"
        );
        assert!(process_exists(me, None), "old logs: judged by pid");
        let line = format!(
            r#"{{"ts":"2026-11-26T10:00:00.000Z","type":"startup","pid":{me},"session":"a","server":"s","policy_digest":"d","upstream":"x","process_start":"{other}"}}"#
        );
        let mut r = Report::new(UnixMillis(0));
        r.add(line.as_bytes());
        assert_eq!(r.summary(&process_exists).instances[0].state, "gone");
    }
}
