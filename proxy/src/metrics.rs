//! Prometheus metrics (`--metrics ADDR`).
//!
//! Recording is a few relaxed atomic additions, after one read-locked hash
//! lookup of the tool name; nothing on the decision path allocates. Label
//! sets are bounded whatever the agent sends: tool names are registered
//! only from the server's `tools/list` answers (at most [`MAX_TOOLS`]), and
//! any other name is counted as `tool="(other)"`; rules come from the
//! policy's rule table.
//!
//! Families:
//! - `portcullis_calls_total{server,tool,effect}`: `tools/call` decisions.
//! - `portcullis_surface_requests_total{server,method,block,effect}`:
//!   `resources/read`, `resources/subscribe` and `prompts/get` decisions, by
//!   the pattern of the first policy block matching the request
//!   (`(unmatched)` when none does).
//! - `portcullis_denials_total{server,rule,rule_label,source,outcome}`: denials
//!   by deciding rule (tool calls, resources and prompts); malformed calls as `outcome="rejected"` and `rule=""`.
//! - `portcullis_state_errors_total{server}`: calls denied (fail-closed) or
//!   allowed unchecked (fail-open) because the counter store failed.
//! - `portcullis_idempotent_duplicates_total{server,result}`: identical calls
//!   answered by an idempotency window (`replayed`, `refused`, `unavailable`).
//! - `portcullis_upstream_latency_seconds{server,method}`: a histogram of the
//!   time from forwarding a request to its answer (`tools/call` or `other`).
//! - `portcullis_policy_info{server,policy_digest}`: 1 for the policy enforced now.

use std::collections::HashMap;
use std::fmt::Write as _;
use std::sync::RwLock;
use std::sync::atomic::{AtomicU64, Ordering::Relaxed};
use std::time::Duration;

use portcullis_core::counters::SeededState;
use portcullis_core::policy::{Effect, Outcome, PolicyMeta};

/// Scrape connections served at once; more are closed at once.
pub const MAX_SCRAPES: usize = 8;

/// At most this many distinct tool names get their own series.
pub const MAX_TOOLS: usize = 4096;

/// Upper bounds of the latency histogram buckets, in seconds.
pub const LATENCY_BUCKETS: [f64; 14] = [
    0.000_1, 0.000_25, 0.000_5, 0.001, 0.002_5, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 1.0, 5.0, 30.0,
];

/// Outcome kinds counted per rule (every [`Outcome`] but `Allowed`, plus rejected).
const KINDS: usize = 8;

/// The column of approval requests (rendered as `portcullis_approval_requests_total`).
const APPROVAL_KIND: usize = 6;

/// The column of a denial's outcome (allowed calls are counted per tool only).
fn kind(o: Outcome) -> usize {
    match o {
        Outcome::Check | Outcome::Allowed => 0,
        Outcome::Hidden => 1,
        Outcome::NotPermitted => 2,
        Outcome::Limit => 3,
        Outcome::BadAmount => 4,
        Outcome::StateUnavailable => 5,
        Outcome::ApprovalRequired => APPROVAL_KIND,
    }
}

/// The `result` label of `portcullis_idempotent_duplicates_total`.
const IDEMPOTENCY_RESULTS: [&str; 3] = ["replayed", "refused", "unavailable"];

const KIND_NAMES: [&str; KINDS] = [
    "rule",
    "hidden",
    "not_permitted",
    "limit",
    "bad_amount",
    "state_unavailable",
    "approval_required",
    "rejected",
];

#[derive(Default)]
struct ToolCounts {
    allowed: AtomicU64,
    denied: AtomicU64,
    /// Held for approval (answered with a pending approval request).
    approval: AtomicU64,
}

struct Histogram {
    buckets: [AtomicU64; LATENCY_BUCKETS.len()],
    count: AtomicU64,
    sum_nanos: AtomicU64,
}

impl Histogram {
    fn new() -> Histogram {
        Histogram {
            buckets: std::array::from_fn(|_| AtomicU64::new(0)),
            count: AtomicU64::new(0),
            sum_nanos: AtomicU64::new(0),
        }
    }

    fn observe(&self, d: Duration) {
        let secs = d.as_secs_f64();
        if let Some(i) = LATENCY_BUCKETS.iter().position(|b| secs <= *b) {
            self.buckets[i].fetch_add(1, Relaxed);
        }
        self.count.fetch_add(1, Relaxed);
        self.sum_nanos
            .fetch_add(u64::try_from(d.as_nanos()).unwrap_or(u64::MAX), Relaxed);
    }
}

/// The denial counters of one policy (a reload adds one; old series stay).
struct RuleTable {
    meta: &'static PolicyMeta,
    /// `rules.len() * KINDS`, indexed by rule id then kind.
    counts: Box<[AtomicU64]>,
}

/// What grows (rarely, off the decision path): registered tools and rule tables.
#[derive(Default)]
struct Registry {
    /// Tool name -> slot in `tool_counts` (1-based; 0 is `(other)`).
    tools: HashMap<Box<str>, usize, SeededState>,
    /// Names by slot - 1.
    names: Vec<Box<str>>,
    /// One per policy enforced so far; the last is the current one.
    tables: Vec<RuleTable>,
}

/// Micro-units by (tool, budget, currency, stage).
type SpendTotals = std::collections::BTreeMap<(String, String, &'static str, &'static str), u64>;

/// The events of `portcullis_approvals_total`.
pub const APPROVAL_EVENTS: [&str; 7] = [
    "requested",
    "granted",
    "restored",
    "declined",
    "expired",
    "approved",
    "denied",
];

/// The results of `portcullis_approval_webhook_total`.
pub const WEBHOOK_RESULTS: [&str; 4] = ["delivered", "rejected", "failed", "dropped"];

/// Metrics of one proxy process.
pub struct Metrics {
    server: &'static str,
    registry: RwLock<Registry>,
    /// Slot 0 is `(other)`; slot i the i-th registered tool. Allocated once.
    tool_counts: Box<[ToolCounts]>,
    rejected: AtomicU64,
    state_errors: AtomicU64,
    /// Duplicates answered by an idempotency window: replayed, refused,
    /// unavailable (the record could not be reached).
    idempotency: [AtomicU64; 3],
    /// Operator-flow approval events, by [`APPROVAL_EVENTS`].
    approval_events: [AtomicU64; 7],
    /// Webhook deliveries, by [`WEBHOOK_RESULTS`].
    webhook: [AtomicU64; 4],
    latency_call: Histogram,
    latency_other: Histogram,
    /// Spend on paid tools (MPP), micro-units, by (tool, budget, currency, stage).
    spend: std::sync::Mutex<SpendTotals>,
    /// Result-rule findings by (pattern name, action): names come from the
    /// built-in set and the policy, never from answers.
    findings: std::sync::Mutex<std::collections::BTreeMap<(&'static str, &'static str), u64>>,
    /// Resource and prompt decisions by (method, block pattern, effect:
    /// 0 allow, 1 deny, 2 approve); every label from the policy or a fixed set.
    surfaces: std::sync::Mutex<SurfaceCounts>,
}

/// Counts by (method, block pattern, effect).
type SurfaceCounts = std::collections::BTreeMap<(&'static str, &'static str, u8), u64>;

impl Metrics {
    /// Metrics for a proxy enforcing `policy`.
    pub fn new(policy: &'static PolicyMeta) -> Metrics {
        let m = Metrics {
            server: policy.server,
            registry: RwLock::new(Registry::default()),
            tool_counts: (0..=MAX_TOOLS).map(|_| ToolCounts::default()).collect(),
            rejected: AtomicU64::new(0),
            state_errors: AtomicU64::new(0),
            idempotency: std::array::from_fn(|_| AtomicU64::new(0)),
            approval_events: std::array::from_fn(|_| AtomicU64::new(0)),
            webhook: std::array::from_fn(|_| AtomicU64::new(0)),
            latency_call: Histogram::new(),
            latency_other: Histogram::new(),
            spend: Default::default(),
            findings: Default::default(),
            surfaces: Default::default(),
        };
        m.policy(policy);
        m
    }

    /// A (new) policy is enforced from now on: its rules get counters.
    pub fn policy(&self, meta: &'static PolicyMeta) {
        let mut r = self.registry.write().unwrap_or_else(|e| e.into_inner());
        if r.tables.last().is_some_and(|t| std::ptr::eq(t.meta, meta)) {
            return;
        }
        r.tables.push(RuleTable {
            meta,
            counts: (0..meta.rules.len() * KINDS)
                .map(|_| AtomicU64::new(0))
                .collect(),
        });
    }

    /// A tool the server lists gets its own series (not on the decision path).
    pub fn register_tool(&self, name: &str) {
        if self.read().tools.contains_key(name) {
            return;
        }
        let mut r = self.registry.write().unwrap_or_else(|e| e.into_inner());
        if r.tools.len() >= MAX_TOOLS || r.tools.contains_key(name) {
            return;
        }
        let slot = r.tools.len() + 1;
        r.tools.insert(name.into(), slot);
        r.names.push(name.into());
    }

    /// One decision on `tool` by the policy `meta`. Allocation-free.
    pub fn decided(
        &self,
        meta: &'static PolicyMeta,
        tool: &str,
        outcome: Outcome,
        rule: Option<u32>,
    ) {
        let r = self.read();
        let counts = &self.tool_counts[r.tools.get(tool).copied().unwrap_or(0)];
        if outcome == Outcome::Allowed {
            counts.allowed.fetch_add(1, Relaxed);
            if rule.is_some() {
                // Allowed unchecked: the store failed under the open fail mode.
                self.state_errors.fetch_add(1, Relaxed);
            }
            return;
        }
        if outcome == Outcome::ApprovalRequired {
            counts.approval.fetch_add(1, Relaxed);
        } else {
            counts.denied.fetch_add(1, Relaxed);
        }
        if outcome == Outcome::StateUnavailable {
            self.state_errors.fetch_add(1, Relaxed);
        }
        Metrics::count_rule(&r, meta, outcome, rule);
    }

    /// A denial (or approval request) by `rule` of the policy `meta`, in
    /// the per-rule series.
    fn count_rule(r: &Registry, meta: &'static PolicyMeta, outcome: Outcome, rule: Option<u32>) {
        let Some(rule) = rule else { return };
        if let Some(t) = r.tables.iter().rev().find(|t| std::ptr::eq(t.meta, meta))
            && let Some(c) = t.counts.get(rule as usize * KINDS + kind(outcome))
        {
            c.fetch_add(1, Relaxed);
        }
    }

    /// One decision on a `resources/read`, `resources/subscribe` or
    /// `prompts/get` (`method`) by the policy `meta`: counted by method and
    /// `block`, the pattern of the first policy block matching the request
    /// as the policy writes it (None: `(unmatched)`), and, for a denial, in
    /// the per-rule series as tool denials are. Labels come from the
    /// policy and a fixed set of methods, never from the request.
    pub fn surface_decided(
        &self,
        meta: &'static PolicyMeta,
        method: &'static str,
        block: Option<&'static str>,
        outcome: Outcome,
        rule: Option<u32>,
    ) {
        let effect = match outcome {
            Outcome::Allowed => 0,
            Outcome::ApprovalRequired => 2,
            _ => 1,
        };
        {
            let mut m = self.surfaces.lock().unwrap_or_else(|e| e.into_inner());
            *m.entry((method, block.unwrap_or("(unmatched)"), effect))
                .or_default() += 1;
        }
        if outcome == Outcome::StateUnavailable || (outcome == Outcome::Allowed && rule.is_some()) {
            self.state_errors.fetch_add(1, Relaxed);
        }
        if outcome != Outcome::Allowed {
            Metrics::count_rule(&self.read(), meta, outcome, rule);
        }
    }

    fn read(&self) -> std::sync::RwLockReadGuard<'_, Registry> {
        // Every write leaves the registry consistent, so a poisoned lock is usable.
        self.registry.read().unwrap_or_else(|e| e.into_inner())
    }

    /// A duplicate call answered by an idempotency window without reaching
    /// the server: `replayed`, `refused` or `unavailable`.
    pub fn idempotency(&self, result: &str) {
        if let Some(i) = IDEMPOTENCY_RESULTS.iter().position(|r| *r == result) {
            self.idempotency[i].fetch_add(1, Relaxed);
        }
    }

    /// An event of the operator approval flow: `requested` (a new pending
    /// record), `granted` (an approval consumed by the retry that is
    /// forwarded), `restored` (given back after an upstream error),
    /// `declined` (a retry refused because a person denied it) or `expired`
    /// (records found lapsed); `n` of them.
    pub fn approval(&self, event: &str, n: u64) {
        if let Some(i) = APPROVAL_EVENTS.iter().position(|e| *e == event) {
            self.approval_events[i].fetch_add(n, Relaxed);
        }
    }

    /// Counts one webhook delivery's `result` (one of [`WEBHOOK_RESULTS`]).
    pub fn webhook(&self, result: &str) {
        if let Some(i) = WEBHOOK_RESULTS.iter().position(|e| *e == result) {
            self.webhook[i].fetch_add(1, Relaxed);
        }
    }

    /// A `tools/call` refused before evaluation (malformed or ambiguous).
    pub fn rejected(&self) {
        self.tool_counts[0].denied.fetch_add(1, Relaxed);
        self.rejected.fetch_add(1, Relaxed);
    }

    /// A price on a paid tool (MPP) reached `stage` (`reserved`, `committed`,
    /// `released`, `denied`), once per budget (rule) that governs it, in
    /// micro-units of `currency`. Off the decision path (a payment is rare).
    pub fn spend(
        &self,
        meta: &'static PolicyMeta,
        tool: &str,
        rules: &[portcullis_core::policy::RuleId],
        currency: &'static str,
        stage: &'static str,
        micros: u64,
    ) {
        let mut m = self.spend.lock().unwrap_or_else(|e| e.into_inner());
        let names: Vec<&str> = if rules.is_empty() {
            vec![""]
        } else {
            rules
                .iter()
                .map(|r| meta.rule(*r).map_or("", |i| i.name))
                .collect()
        };
        for name in names {
            let v = m
                .entry((tool.to_string(), name.to_string(), currency, stage))
                .or_default();
            *v = v.saturating_add(micros);
        }
    }

    /// A result rule acted on an answer: `n` matches of pattern `rule`
    /// (or `max-bytes`) with `action`. Off the clean path.
    pub fn result_findings(&self, rule: &'static str, action: &'static str, n: u64) {
        let mut m = self.findings.lock().unwrap_or_else(|e| e.into_inner());
        *m.entry((rule, action)).or_default() += n;
    }

    /// The upstream answered a request after `d`.
    pub fn upstream_latency(&self, tools_call: bool, d: Duration) {
        if tools_call {
            self.latency_call.observe(d)
        } else {
            self.latency_other.observe(d)
        }
    }

    /// The Prometheus text exposition (version 0.0.4).
    pub fn render(&self) -> String {
        let mut out = String::with_capacity(4096);
        let server = escape(self.server);
        out.push_str("# HELP portcullis_calls_total tools/call decisions.\n# TYPE portcullis_calls_total counter\n");
        let registry = self.read();
        let mut rows: Vec<(&str, &ToolCounts)> = vec![("(other)", &self.tool_counts[0])];
        for (i, n) in registry.names.iter().enumerate() {
            rows.push((n, &self.tool_counts[i + 1]));
        }
        rows.sort_by(|a, b| a.0.cmp(b.0));
        for (tool, c) in rows {
            for (effect, v) in [
                (Effect::Allow, c.allowed.load(Relaxed)),
                (Effect::Deny, c.denied.load(Relaxed)),
                (Effect::Approve, c.approval.load(Relaxed)),
            ] {
                if v > 0 {
                    let effect = match effect {
                        Effect::Allow => "allow",
                        Effect::Deny => "deny",
                        Effect::Approve => "approve",
                    };
                    let _ = writeln!(
                        out,
                        "portcullis_calls_total{{server=\"{server}\",tool=\"{}\",effect=\"{effect}\"}} {v}",
                        escape(tool)
                    );
                }
            }
        }
        out.push_str("# HELP portcullis_surface_requests_total resources/read, resources/subscribe and prompts/get decisions, by the pattern of the first policy block matching the request ((unmatched): none).\n# TYPE portcullis_surface_requests_total counter\n");
        for (&(method, block, effect), v) in self
            .surfaces
            .lock()
            .unwrap_or_else(|e| e.into_inner())
            .iter()
        {
            let effect = ["allow", "deny", "approve"][usize::from(effect.min(2))];
            let _ = writeln!(
                out,
                "portcullis_surface_requests_total{{server=\"{server}\",method=\"{method}\",block=\"{}\",effect=\"{effect}\"}} {v}",
                escape(block)
            );
        }
        out.push_str("# HELP portcullis_denials_total Denied tools/call by deciding rule.\n# TYPE portcullis_denials_total counter\n");
        let rejected = self.rejected.load(Relaxed);
        if rejected > 0 {
            let _ = writeln!(
                out,
                "portcullis_denials_total{{server=\"{server}\",rule=\"\",rule_label=\"\",source=\"\",outcome=\"rejected\"}} {rejected}"
            );
        }
        // Series are summed by label set: after a reload the same rule (same
        // name, label and place) has counts in two tables, and Prometheus
        // must see one sample per series.
        let mut denials: std::collections::BTreeMap<String, u64> =
            std::collections::BTreeMap::new();
        let mut approvals: std::collections::BTreeMap<String, u64> =
            std::collections::BTreeMap::new();
        for t in &registry.tables {
            for (i, rule) in t.meta.rules.iter().enumerate() {
                for (k, name) in KIND_NAMES.iter().enumerate().take(KINDS - 1) {
                    let v = t.counts[i * KINDS + k].load(Relaxed);
                    if v > 0 {
                        let labels = format!(
                            "server=\"{server}\",rule=\"{}\",rule_label=\"{}\",source=\"{}:{}:{}\",outcome=\"{name}\"",
                            escape(rule.name),
                            escape(rule.label),
                            escape(rule.file),
                            rule.line,
                            rule.column
                        );
                        if k == APPROVAL_KIND {
                            *approvals.entry(labels).or_default() += v;
                        } else {
                            *denials.entry(labels).or_default() += v;
                        }
                    }
                }
            }
        }
        for (labels, v) in denials {
            let _ = writeln!(out, "portcullis_denials_total{{{labels}}} {v}");
        }
        out.push_str("# HELP portcullis_approval_requests_total Calls an approval rule held for a person's approval, by rule.\n# TYPE portcullis_approval_requests_total counter\n");
        for (labels, v) in approvals {
            let _ = writeln!(out, "portcullis_approval_requests_total{{{labels}}} {v}");
        }
        out.push_str("# HELP portcullis_approvals_total Operator approval flow: requests created, approvals granted (consumed by a forwarded retry), restored after an upstream error, retries declined by a person's denial, requests expired, requests approved and denied through the admin API.\n# TYPE portcullis_approvals_total counter\n");
        for (event, n) in APPROVAL_EVENTS.iter().zip(&self.approval_events) {
            let _ = writeln!(
                out,
                "portcullis_approvals_total{{server=\"{server}\",event=\"{event}\"}} {}",
                n.load(Relaxed)
            );
        }
        out.push_str("# HELP portcullis_approval_webhook_total Approval webhook deliveries: delivered (2xx), rejected (4xx, not retried), failed (every attempt failed), dropped (the queue was full).\n# TYPE portcullis_approval_webhook_total counter\n");
        for (result, n) in WEBHOOK_RESULTS.iter().zip(&self.webhook) {
            let _ = writeln!(
                out,
                "portcullis_approval_webhook_total{{server=\"{server}\",result=\"{result}\"}} {}",
                n.load(Relaxed)
            );
        }
        out.push_str("# HELP portcullis_state_errors_total Calls decided while the counter store failed.\n# TYPE portcullis_state_errors_total counter\n");
        let _ = writeln!(
            out,
            "portcullis_state_errors_total{{server=\"{server}\"}} {}",
            self.state_errors.load(Relaxed)
        );
        out.push_str("# HELP portcullis_idempotent_duplicates_total Identical calls answered by an idempotency window without reaching the server.\n# TYPE portcullis_idempotent_duplicates_total counter\n");
        for (result, n) in IDEMPOTENCY_RESULTS.iter().zip(&self.idempotency) {
            let _ = writeln!(
                out,
                "portcullis_idempotent_duplicates_total{{server=\"{server}\",result=\"{result}\"}} {}",
                n.load(Relaxed)
            );
        }
        out.push_str("# HELP portcullis_result_findings_total Secret-pattern matches and size refusals in answers, by pattern (built-in or the policy's) and action.\n# TYPE portcullis_result_findings_total counter\n");
        for ((rule, action), n) in self
            .findings
            .lock()
            .unwrap_or_else(|e| e.into_inner())
            .iter()
        {
            let _ = writeln!(
                out,
                "portcullis_result_findings_total{{server=\"{server}\",rule=\"{}\",action=\"{action}\"}} {n}",
                escape(rule)
            );
        }
        out.push_str("# HELP portcullis_upstream_latency_seconds Time from forwarding a request to the upstream's answer.\n# TYPE portcullis_upstream_latency_seconds histogram\n");
        for (method, h) in [
            ("tools/call", &self.latency_call),
            ("other", &self.latency_other),
        ] {
            let mut cumulative = 0;
            for (b, le) in h.buckets.iter().zip(LATENCY_BUCKETS) {
                cumulative += b.load(Relaxed);
                let _ = writeln!(
                    out,
                    "portcullis_upstream_latency_seconds_bucket{{server=\"{server}\",method=\"{method}\",le=\"{le}\"}} {cumulative}"
                );
            }
            let count = h.count.load(Relaxed);
            let _ = writeln!(
                out,
                "portcullis_upstream_latency_seconds_bucket{{server=\"{server}\",method=\"{method}\",le=\"+Inf\"}} {count}"
            );
            let _ = writeln!(
                out,
                "portcullis_upstream_latency_seconds_sum{{server=\"{server}\",method=\"{method}\"}} {}",
                h.sum_nanos.load(Relaxed) as f64 / 1e9
            );
            let _ = writeln!(
                out,
                "portcullis_upstream_latency_seconds_count{{server=\"{server}\",method=\"{method}\"}} {count}"
            );
        }
        out.push_str("# HELP portcullis_spend_micros_total Prices of paid tools (MPP) in millionths of their currency, by budget and stage (reserved, committed, released, denied).\n# TYPE portcullis_spend_micros_total counter\n");
        for ((tool, budget, currency, stage), v) in
            self.spend.lock().unwrap_or_else(|e| e.into_inner()).iter()
        {
            let _ = writeln!(
                out,
                "portcullis_spend_micros_total{{server=\"{server}\",tool=\"{}\",budget=\"{}\",currency=\"{currency}\",stage=\"{stage}\"}} {v}",
                escape(tool),
                escape(budget)
            );
        }
        out.push_str("# HELP portcullis_policy_info The policy enforced now.\n# TYPE portcullis_policy_info gauge\n");
        if let Some(t) = registry.tables.last() {
            let _ = writeln!(
                out,
                "portcullis_policy_info{{server=\"{server}\",policy_digest=\"{}\"}} 1",
                escape(t.meta.digest)
            );
        }
        out
    }
}

/// Serves `GET /metrics` (Prometheus text) on `listener` until the process
/// exits. Each connection gets one answer and is closed; requests are read
/// with a size limit and a timeout, so a slow or hostile client cannot hold
/// the proxy.
pub async fn serve(listener: tokio::net::TcpListener, metrics: std::sync::Arc<Metrics>) {
    use tokio::io::{AsyncReadExt, AsyncWriteExt};
    // At most this many scrapes at once: idle connections cannot pile up
    // file descriptors the proxy needs (a scraper opens one at a time).
    let slots = std::sync::Arc::new(tokio::sync::Semaphore::new(MAX_SCRAPES));
    loop {
        let Ok((mut conn, _)) = listener.accept().await else {
            tokio::time::sleep(Duration::from_millis(50)).await;
            continue;
        };
        let Ok(slot) = slots.clone().try_acquire_owned() else {
            drop(conn);
            continue;
        };
        let metrics = metrics.clone();
        tokio::spawn(async move {
            let _slot = slot;
            let mut buf = Vec::with_capacity(1024);
            let read = tokio::time::timeout(Duration::from_secs(5), async {
                let mut chunk = [0u8; 1024];
                while !buf.windows(4).any(|w| w == b"\r\n\r\n") && buf.len() < 16 * 1024 {
                    match conn.read(&mut chunk).await {
                        Ok(0) | Err(_) => return false,
                        Ok(n) => buf.extend_from_slice(&chunk[..n]),
                    }
                }
                true
            })
            .await;
            if !matches!(read, Ok(true)) {
                return;
            }
            let line = buf.split(|&b| b == b'\r').next().unwrap_or_default();
            let mut parts = line.split(|&b| b == b' ');
            let (method, path) = (
                parts.next().unwrap_or_default(),
                parts.next().unwrap_or_default(),
            );
            let path = path.split(|&b| b == b'?').next().unwrap_or_default();
            let (status, kind, body) = match (method, path) {
                (b"GET", b"/metrics") => (
                    "200 OK",
                    "text/plain; version=0.0.4; charset=utf-8",
                    metrics.render(),
                ),
                (b"GET", _) => (
                    "404 Not Found",
                    "text/plain; charset=utf-8",
                    "not found: try /metrics\n".to_string(),
                ),
                _ => (
                    "405 Method Not Allowed",
                    "text/plain; charset=utf-8",
                    "only GET /metrics\n".to_string(),
                ),
            };
            let head = format!(
                "HTTP/1.1 {status}\r\ncontent-type: {kind}\r\ncontent-length: {}\r\nconnection: close\r\n\r\n",
                body.len()
            );
            // A client that does not read gets 5 s, then the connection is dropped.
            let _ = tokio::time::timeout(Duration::from_secs(5), async {
                conn.write_all(head.as_bytes()).await?;
                conn.write_all(body.as_bytes()).await?;
                conn.shutdown().await
            })
            .await;
        });
    }
}

/// A label value escaped for the text format (`\`, `"` and newline).
fn escape(s: &str) -> String {
    let mut out = String::with_capacity(s.len());
    for c in s.chars() {
        match c {
            '\\' => out.push_str("\\\\"),
            '"' => out.push_str("\\\""),
            '\n' => out.push_str("\\n"),
            c => out.push(c),
        }
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;
    use portcullis_core::policy::{RuleInfo, RuleKind};

    static RULES: [RuleInfo; 1] = [RuleInfo {
        name: "small \"sums\"",
        label: "tools.get-sum.rules[0]",
        file: "p.yaml",
        line: 3,
        column: 5,
        kind: RuleKind::Rule,
    }];
    static META: PolicyMeta = PolicyMeta {
        server: "s",
        file: "p.yaml",
        dialect: "intercept-v1",
        digest: "abc",
        rules: &RULES,
        counters: &[],
        idempotency: &[],
        approvals: &[],
        approval_config: None,
    };

    #[test]
    fn counts_by_tool_effect_and_rule_with_bounded_labels() {
        let m = Metrics::new(&META);
        m.register_tool("get-sum");
        m.decided(&META, "get-sum", Outcome::Allowed, None);
        m.decided(&META, "get-sum", Outcome::Check, Some(0));
        m.decided(&META, "random-name-from-an-agent", Outcome::Allowed, None);
        m.rejected();
        // Allowed unchecked (fail-open store failure) and denied for it (fail-closed).
        m.decided(&META, "get-sum", Outcome::Allowed, Some(0));
        m.decided(&META, "get-sum", Outcome::StateUnavailable, Some(0));
        m.upstream_latency(true, Duration::from_micros(300));
        let text = m.render();
        for line in [
            "portcullis_calls_total{server=\"s\",tool=\"get-sum\",effect=\"allow\"} 2",
            "portcullis_calls_total{server=\"s\",tool=\"get-sum\",effect=\"deny\"} 2",
            "portcullis_state_errors_total{server=\"s\"} 2",
            "portcullis_calls_total{server=\"s\",tool=\"(other)\",effect=\"allow\"} 1",
            "portcullis_calls_total{server=\"s\",tool=\"(other)\",effect=\"deny\"} 1",
            "portcullis_denials_total{server=\"s\",rule=\"small \\\"sums\\\"\",rule_label=\"tools.get-sum.rules[0]\",source=\"p.yaml:3:5\",outcome=\"rule\"} 1",
            "portcullis_denials_total{server=\"s\",rule=\"\",rule_label=\"\",source=\"\",outcome=\"rejected\"} 1",
            "portcullis_upstream_latency_seconds_bucket{server=\"s\",method=\"tools/call\",le=\"0.00025\"} 0",
            "portcullis_upstream_latency_seconds_bucket{server=\"s\",method=\"tools/call\",le=\"0.0005\"} 1",
            "portcullis_upstream_latency_seconds_count{server=\"s\",method=\"tools/call\"} 1",
            "portcullis_policy_info{server=\"s\",policy_digest=\"abc\"} 1",
        ] {
            assert!(text.contains(line), "missing {line} in\n{text}");
        }
        assert!(!text.contains("random-name"), "{text}");
    }

    #[test]
    fn a_reloaded_rule_is_one_series() {
        static META2: PolicyMeta = PolicyMeta {
            server: "s",
            file: "p.yaml",
            dialect: "intercept-v1",
            digest: "def",
            rules: &RULES,
            counters: &[],
            idempotency: &[],
            approvals: &[],
            approval_config: None,
        };
        let m = Metrics::new(&META);
        m.decided(&META, "x", Outcome::Check, Some(0));
        m.policy(&META2);
        m.decided(&META2, "x", Outcome::Check, Some(0));
        m.decided(&META2, "x", Outcome::Check, Some(0));
        let text = m.render();
        let lines: Vec<&str> = text
            .lines()
            .filter(|l| l.starts_with("portcullis_denials_total{"))
            .collect();
        assert_eq!(lines.len(), 1, "{text}");
        assert!(lines[0].ends_with("} 3"), "{text}");
        assert!(text.contains("policy_digest=\"def\"} 1"), "{text}");
    }

    #[test]
    fn the_tool_table_is_bounded() {
        let m = Metrics::new(&META);
        for i in 0..MAX_TOOLS + 10 {
            m.register_tool(&format!("t{i}"));
        }
        assert_eq!(m.read().tools.len(), MAX_TOOLS);
        m.decided(
            &META,
            &format!("t{}", MAX_TOOLS + 5),
            Outcome::Allowed,
            None,
        );
        assert_eq!(m.tool_counts[0].allowed.load(Relaxed), 1);
    }
}
