//! Zero heap allocations per decision after warm-up, counted by a global
//! allocator over 12,000 mixed calls from raw JSON-RPC lines: allows,
//! denials, regexes, counters (reserve, commit, rollback), hidden and unknown
//! tools, wrongly typed and malformed arguments, keys in another letter case
//! or escaped (folded on the stack), decisions and hides that read the
//! caller's claims (with and without a caller), calls held for approval and
//! calls decided as approved (`decide_approved`); each decision also recorded
//! in the Prometheus metrics (`--metrics`), as the proxy does.
//!
//! Every test runs twice: on the generated code and on the reference
//! evaluator (`-c FILE`), whose decisions, budgets, hides and `path()`
//! arguments are prepared when the policy is loaded and allocate nothing
//! either.

mod support;

use std::alloc::{GlobalAlloc, Layout, System};
use std::sync::atomic::{AtomicBool, AtomicUsize, Ordering};

use portcullis_compiled::{compiled, compiled_dsl, repo_path};
use portcullis_compiler::eval::Evaluator;
use portcullis_compiler::{compile, load_dir};
use portcullis_core::Principal;
use portcullis_core::counters::{Counters, MemoryCounters, Ticket, UnixMillis};
use portcullis_core::jsonrpc::parse_tool_call;
use portcullis_core::policy::{Effect, Env, FailMode, Outcome, Policy};
use portcullis_proxy::metrics::Metrics;

struct Counting;

static ALLOCATIONS: AtomicUsize = AtomicUsize::new(0);
static COUNTING: AtomicBool = AtomicBool::new(false);

// SAFETY: every method forwards to `System`, which upholds `GlobalAlloc`'s
// contract; the only addition is an atomic counter increment, which neither
// allocates nor touches the returned memory.
unsafe impl GlobalAlloc for Counting {
    unsafe fn alloc(&self, layout: Layout) -> *mut u8 {
        if COUNTING.load(Ordering::Relaxed) && measured() {
            ALLOCATIONS.fetch_add(1, Ordering::Relaxed);
        }
        // SAFETY: same layout contract as our caller's.
        unsafe { System.alloc(layout) }
    }
    unsafe fn dealloc(&self, ptr: *mut u8, layout: Layout) {
        // SAFETY: `ptr` came from `System.alloc` with this layout.
        unsafe { System.dealloc(ptr, layout) }
    }
    unsafe fn realloc(&self, ptr: *mut u8, layout: Layout, new_size: usize) -> *mut u8 {
        if COUNTING.load(Ordering::Relaxed) && measured() {
            ALLOCATIONS.fetch_add(1, Ordering::Relaxed);
        }
        // SAFETY: `ptr` came from `System` with `layout`; forwarded unchanged.
        unsafe { System.realloc(ptr, layout, new_size) }
    }
}

#[global_allocator]
static GLOBAL: Counting = Counting;

thread_local! {
    /// True on a test's own thread: only its allocations are counted, not
    /// the test harness's (it prints other tests' results meanwhile).
    static MEASURED: std::cell::Cell<bool> = const { std::cell::Cell::new(false) };
}

fn measured() -> bool {
    MEASURED.try_with(|m| m.get()).unwrap_or(false)
}

/// The allocation counter is global: tests run one at a time, so one test's
/// set-up never counts against another's measured loop, and each counts
/// its own thread only.
static SERIAL: std::sync::Mutex<()> = std::sync::Mutex::new(());

fn serial() -> std::sync::MutexGuard<'static, ()> {
    MEASURED.with(|m| m.set(true));
    SERIAL.lock().unwrap_or_else(|e| e.into_inner())
}

/// The reference evaluators of every fixture the generated code is built
/// from (`tests/compiled/build.rs`), by server name: the policy files, and
/// the DSL fixtures apart (their names repeat others').
struct Evaluators {
    files: std::collections::HashMap<String, &'static dyn Policy>,
    dsl: std::collections::HashMap<String, &'static dyn Policy>,
}

impl Evaluators {
    fn load() -> Evaluators {
        let build = |inputs: Vec<portcullis_compiler::Input>| {
            let set = compile(&inputs)
                .into_set()
                .unwrap_or_else(|o| panic!("{}", o.render()));
            set.servers
                .iter()
                .map(|ir| {
                    let ev: &'static Evaluator =
                        Box::leak(Box::new(Evaluator::new(ir.clone(), &set.sources)));
                    (ir.name.clone(), ev as &'static dyn Policy)
                })
                .collect()
        };
        let mut files = support::inputs();
        files.extend(support::spend_inputs());
        for dir in ["surfaces", "results"] {
            let rel = format!("tests/fixtures/{dir}");
            files.extend(load_dir(&repo_path(&rel), Some(&rel)).unwrap());
        }
        let dsl = load_dir(&repo_path("tests/fixtures/dsl"), Some("tests/fixtures/dsl")).unwrap();
        Evaluators {
            files: build(files),
            dsl: build(dsl),
        }
    }

    fn file(&self, server: &str) -> Option<&'static dyn Policy> {
        self.files.get(server).copied()
    }

    fn dsl(&self, server: &str) -> Option<&'static dyn Policy> {
        self.dsl.get(server).copied()
    }
}

fn line(id: usize, tool: &str, args: &str) -> String {
    format!(
        r#"{{"jsonrpc":"2.0","id":{id},"method":"tools/call","params":{{"name":"{tool}","arguments":{args}}}}}"#
    )
}

#[test]
fn decisions_do_not_allocate() {
    decisions_do_not_allocate_in(compiled, compiled_dsl);
}

#[test]
fn evaluator_decisions_do_not_allocate() {
    let ev = Evaluators::load();
    decisions_do_not_allocate_in(|s| ev.file(s), |s| ev.dsl(s));
}

fn decisions_do_not_allocate_in(
    compiled: impl Fn(&str) -> Option<&'static dyn Policy>,
    compiled_dsl: impl Fn(&str) -> Option<&'static dyn Policy>,
) {
    let _serial = serial();
    let stripe = compiled("fixture-valid-policy-stripe").expect("compiled");
    let regex = compiled("op-regex-flags-and-lines").expect("compiled");
    let nested = compiled("path-nested").expect("compiled");
    let hidden = compiled("rl-default-deny-and-hidden-calls-not-counted").expect("compiled");
    let dsl_stripe = compiled_dsl("stripe").expect("compiled");
    let refunds = compiled_dsl("refunds").expect("compiled");
    let approval = compiled("approval-intercept").expect("compiled");
    let approval_dsl = compiled("approval-dsl").expect("compiled");
    let mut everything: Vec<(&dyn Policy, String)> = vec![
        (
            stripe,
            line(1, "create_charge", r#"{"amount": 100, "currency": "usd"}"#),
        ),
        (
            stripe,
            line(
                2,
                "create_charge",
                r#"{"amount": 60000, "currency": "usd"}"#,
            ),
        ),
        (
            stripe,
            line(
                3,
                "create_charge",
                r#"{"amount": "100", "currency": ["usd"]}"#,
            ),
        ),
        (
            stripe,
            line(20, "create_charge", r#"{"amount": -5, "currency": "usd"}"#),
        ),
        (
            stripe,
            line(
                4,
                "create_charge",
                r#"{"amount": 1e400, "currency": "eur", "x": {"y": [1, {"z": null}]}}"#,
            ),
        ),
        (stripe, line(5, "create_refund", r#"{"amount": 100}"#)),
        (stripe, line(6, "delete_customer", r#"{}"#)),
        (stripe, line(7, "create_issue", r#"{"title": "t"}"#)),
        (stripe, line(8, "some_unknown_tool", r#"{"a": 1}"#)),
        (
            stripe,
            line(
                9,
                "create_charge",
                r#"{"amount": 100, "amount": 200, "currency": "usd"}"#,
            ),
        ),
        (stripe, line(10, "create_charge", r#"[1, 2]"#)),
        (
            stripe,
            line(11, "create_charge", r#"{"amount": 100, "currency": "usd""#),
        ),
        (regex, line(12, "ci", r#"{"s": "MAIN"}"#)),
        (regex, line(13, "lines", r#"{"s": "bar\nfoo"}"#)),
        (regex, line(14, "dot", r#"{"s": "a\u00e9b"}"#)),
        (
            nested,
            line(15, "send", r#"{"recipient": {"email": "a@example.com"}}"#),
        ),
        (
            nested,
            line(16, "send", r#"{"recipient": "a@example.com"}"#),
        ),
        // Per-argument limits on object and array values (canonicalised,
        // keys sorted, on the stack).
        (
            dsl_stripe,
            line(
                21,
                "create_charge",
                r#"{"amount": 100, "currency": "usd", "customer": {"id": "c1", "tags": ["a", {"k": 1}]}}"#,
            ),
        ),
        (
            dsl_stripe,
            line(
                22,
                "create_charge",
                r#"{"amount": 100, "currency": "usd", "customer": { "tags" : [ "\u0061", {"k": 1e0} ], "id": "c1" }}"#,
            ),
        ),
        (
            dsl_stripe,
            line(
                23,
                "create_charge",
                r#"{"amount": 100, "currency": "eur", "customer": [1, "c2", null, {"z": {}, "a": []}]}"#,
            ),
        ),
        // Keys in another letter case, escaped, with `ſ`/Kelvin sign, nested,
        // and too long to match: folded on the stack.
        (
            dsl_stripe,
            line(
                24,
                "create_charge",
                r#"{"AMOUNT": 60000, "Currency": "usd", "CUSTOMER": {"ID": "c1"}}"#,
            ),
        ),
        (
            dsl_stripe,
            line(
                25,
                "create_charge",
                r#"{"\u0041mount": 100, "\u0063urrency": "usd", "customer_with_a_long_name": 1}"#,
            ),
        ),
        (
            dsl_stripe,
            line(
                26,
                "create_charge",
                "{\"amount\": 100, \"currency\": \"usd\", \"\u{17f}\u{212a}\": 1, \"cu\u{17f}tomer\": \"c3\"}",
            ),
        ),
        // Tools with idempotency windows: the decision names the window.
        (
            refunds,
            line(
                27,
                "create_refund",
                r#"{"order_id": {"b": 1, "a": [2]}, "amount": 5}"#,
            ),
        ),
        (
            refunds,
            line(28, "send_email", r#"{"to": "a@example.com"}"#),
        ),
        (refunds, line(29, "other", r#"{}"#)),
        // Approval rules: asked, denied first, passed; every tool's.
        (
            approval,
            line(30, "create_charge", r#"{"amount": 60000, "customer": "c"}"#),
        ),
        (
            approval,
            line(
                31,
                "create_charge",
                r#"{"amount": 60000, "customer": "cus_blocked"}"#,
            ),
        ),
        (
            approval,
            line(32, "create_charge", r#"{"amount": 6, "customer": "c"}"#),
        ),
        (approval, line(33, "anything", r#"{"count": 100}"#)),
        (
            approval_dsl,
            line(34, "create_refund", r#"{"amount": 100001, "reason": "r"}"#),
        ),
        (
            approval_dsl,
            line(35, "export_users", r#"{"rows": 5, "format": "raw"}"#),
        ),
        (hidden, line(17, "secret", r#"{}"#)),
        (hidden, line(18, "unlisted", r#"{}"#)),
        (hidden, line(19, "ok", r#"{}"#)),
    ];
    // Decisions that read the caller: claims, nested claims and scopes, a
    // per-caller hide and limits per `principal.sub` and per nested claim,
    // with and without a principal (missing claims fail closed).
    let admin = Principal::from_claims(
        br#"{"sub":"root","iss":"https://idp.example","groups":["admins","finance"],"scope":"refunds:large","org":{"region":"eu","team":"t1"},"email_verified":true}"#.to_vec(),
    )
    .unwrap();
    let staff = Principal::from_claims(
        br#"{"sub":"bob","iss":"https://idp.example","groups":["staff"],"org":{"region":"us"}}"#
            .to_vec(),
    )
    .unwrap();
    let finance = compiled("finance").expect("compiled");
    let hr = compiled("hr").expect("compiled");
    let mut callers: Vec<Option<&Principal>> = vec![None; everything.len()];
    for (i, (policy, tool, args, caller)) in [
        (
            finance,
            "create_refund",
            r#"{"amount": 20000}"#,
            Some(&admin),
        ),
        (finance, "create_refund", r#"{"amount": 5}"#, Some(&staff)),
        (finance, "create_refund", r#"{"amount": 5}"#, None),
        (finance, "get_report", r#"{}"#, Some(&admin)),
        (finance, "get_report", r#"{}"#, Some(&staff)),
        (finance, "admin_reset", r#"{}"#, Some(&admin)),
        (finance, "admin_reset", r#"{}"#, Some(&staff)),
        (finance, "list_refunds", r#"{}"#, Some(&admin)),
        (finance, "list_refunds", r#"{}"#, None),
        (hr, "get_employee", r#"{}"#, Some(&admin)),
        (hr, "update_salary", r#"{}"#, Some(&staff)),
        (hr, "export_payroll", r#"{}"#, None),
    ]
    .into_iter()
    .enumerate()
    {
        everything.push((policy, line(100 + i, tool, args)));
        callers.push(caller);
    }
    let counters = MemoryCounters::new();
    // One metrics registry with every policy's rule table, and some tools
    // registered as a tools/list answer would (the rest count as "(other)").
    let metrics = Metrics::new(stripe.meta());
    for p in [
        regex,
        nested,
        hidden,
        dsl_stripe,
        refunds,
        finance,
        hr,
        approval,
        approval_dsl,
    ] {
        metrics.policy(p.meta());
    }
    for tool in ["create_charge", "create_refund", "ci", "send", "secret"] {
        metrics.register_tool(tool);
    }
    let start = UnixMillis::parse_rfc3339("2026-01-15T10:30:00Z").unwrap();
    let mut outcomes = std::collections::BTreeMap::new();
    let mut run = |round: usize, record: bool| {
        for (i, (policy, raw)) in everything.iter().enumerate() {
            let policy: &dyn Policy = *policy;
            let env = Env {
                counters: &counters,
                // Crosses minute, hour and day boundaries as the rounds go on.
                now: UnixMillis(start.0 + (round as i64) * 7_919),
                session: 1,
                fail_mode: FailMode::Closed,
                principal: callers[i],
            };
            match parse_tool_call(raw.as_bytes()) {
                Ok(call) => {
                    // The per-caller tools/list view, as the proxy filters it.
                    if policy.is_hidden(call.name(), env.principal) && record {
                        outcomes
                            .entry("hidden from this caller's list".to_string())
                            .and_modify(|n| *n += 1)
                            .or_insert(1usize);
                    }
                    // Every third round decides the calls as approved by a person.
                    let mut ticket = Ticket::EMPTY;
                    let d = if round % 3 == 2 {
                        policy.decide_approved(&call, &env, &mut ticket)
                    } else {
                        policy.decide(&call, &env, &mut ticket)
                    };
                    metrics.decided(policy.meta(), call.name(), d.outcome, d.rule.map(|r| r.0));
                    metrics.upstream_latency(true, std::time::Duration::from_micros(i as u64 * 37));
                    if d.effect() == Effect::Allow {
                        if (round + i).is_multiple_of(3) {
                            counters.rollback(&ticket);
                        } else {
                            counters.commit(&ticket);
                        }
                    }
                    if record && d.idempotency.is_some() {
                        outcomes
                            .entry("idempotency window".to_string())
                            .and_modify(|n| *n += 1)
                            .or_insert(1usize);
                    }
                    if record {
                        outcomes
                            .entry(format!("{:?}", d.outcome))
                            .and_modify(|n| *n += 1)
                            .or_insert(1usize);
                    }
                }
                Err(r) => {
                    metrics.rejected();
                    if record {
                        outcomes
                            .entry(format!("rejected {}", r.code()))
                            .and_modify(|n| *n += 1)
                            .or_insert(1usize);
                    }
                }
            }
        }
    };
    // Warm-up: thread-local buffers, counter cells, lazily loaded regex DFAs.
    for round in 0..50 {
        run(round, false);
    }
    ALLOCATIONS.store(0, Ordering::SeqCst);
    COUNTING.store(true, Ordering::SeqCst);
    let rounds = 12_000 / everything.len() + 1;
    for round in 50..50 + rounds {
        run(round, false);
    }
    COUNTING.store(false, Ordering::SeqCst);
    let allocations = ALLOCATIONS.load(Ordering::SeqCst);
    // The mix really covers every kind of outcome (counted outside the measured loop).
    for round in 50 + rounds..80 + rounds {
        run(round, true);
    }
    for kind in [
        format!("{:?}", Outcome::Limit),
        format!("{:?}", Outcome::BadAmount),
        format!("{:?}", Outcome::Allowed),
        format!("{:?}", Outcome::Check),
        format!("{:?}", Outcome::Hidden),
        format!("{:?}", Outcome::NotPermitted),
        format!("{:?}", Outcome::ApprovalRequired),
        "rejected -32602".to_string(),
        "idempotency window".to_string(),
        "hidden from this caller's list".to_string(),
    ] {
        assert!(
            outcomes.contains_key(&kind),
            "the mix never produced {kind}: {outcomes:?}"
        );
    }
    let text = metrics.render();
    assert!(
        text.contains("tool=\"create_charge\",effect=\"deny\"}"),
        "{text}"
    );
    assert!(text.contains("outcome=\"limit\"}"), "{text}");
    assert!(
        text.contains("tool=\"create_charge\",effect=\"approve\"}"),
        "{text}"
    );
    assert!(
        text.contains("portcullis_approval_requests_total{server=")
            && text.contains("rule=\"large charge approval\""),
        "{text}"
    );
    assert_eq!(
        allocations,
        0,
        "{allocations} allocations in {} decisions",
        rounds * everything.len()
    );
}

/// The budgets of a paid tool (MPP) are found without allocating either,
/// partitions by session and by argument included.
#[test]
fn spend_budgets_do_not_allocate() {
    spend_budgets_do_not_allocate_in(compiled);
}

#[test]
fn evaluator_spend_budgets_do_not_allocate() {
    let ev = Evaluators::load();
    spend_budgets_do_not_allocate_in(|s| ev.file(s));
}

fn spend_budgets_do_not_allocate_in(compiled: impl Fn(&str) -> Option<&'static dyn Policy>) {
    let _serial = serial();
    use portcullis_core::spend::Budgets;
    let counters = MemoryCounters::new();
    let lines: Vec<(String, &'static dyn Policy)> = [
        ("paid-intercept", "generate_image", r#"{"prompt":"a cat"}"#),
        ("paid-intercept", "anything", r#"{}"#),
        ("paid-catalogue", "generate_image", r#"{}"#),
        ("paid-dsl", "generate_image", r#"{"project":"apollo"}"#),
        (
            "paid-dsl",
            "render_video",
            r#"{"project":{"id":7,"tags":["a","b"]}}"#,
        ),
        ("paid-dsl", "translate", r#"{}"#),
        ("paid-caller", "generate_image", r#"{}"#),
        ("paid-caller", "render_video", r#"{}"#),
        ("paid-caller-catalogue", "generate_image", r#"{}"#),
        ("paid-caller-intercept", "generate_image", r#"{}"#),
    ]
    .into_iter()
    .enumerate()
    .map(|(i, (server, tool, args))| {
        (
            line(i, tool, args),
            compiled(server).expect("a compiled fixture"),
        )
    })
    .collect();
    // Per-caller budgets are found with a caller, with one lacking the
    // claim, and with none (the budget then carries its refusal).
    let alice = portcullis_core::Principal::from_claims(
        br#"{"sub":"alice","iss":"https://idp.example","team":"studio"}"#.to_vec(),
    )
    .unwrap();
    let bob = portcullis_core::Principal::from_claims(
        br#"{"sub":"bob","iss":"https://idp.example"}"#.to_vec(),
    )
    .unwrap();
    let callers = [None, Some(&alice), Some(&bob)];
    let mut found = 0usize;
    let mut run = || {
        for caller in callers {
            for (l, policy) in &lines {
                let call = parse_tool_call(l.as_bytes()).expect("a tools/call");
                let env = Env {
                    counters: &counters,
                    now: UnixMillis(1_700_000_000_000),
                    session: 42,
                    fail_mode: FailMode::Closed,
                    principal: caller,
                };
                let mut out = Budgets::new();
                policy.spend(&call, &env, &mut out);
                found += out.len();
            }
        }
    };
    run();
    ALLOCATIONS.store(0, Ordering::SeqCst);
    COUNTING.store(true, Ordering::SeqCst);
    for _ in 0..2000 {
        run();
    }
    COUNTING.store(false, Ordering::SeqCst);
    assert_eq!(ALLOCATIONS.load(Ordering::SeqCst), 0);
    // 2 + 1 + 1 + 3 + 3 + 0 + 2 + 1 + 1 + 1 budgets per caller, three callers.
    assert_eq!(found, 2001 * 15 * 3);
}

/// Resources and prompts (docs/surfaces.md): normalising a URI into a stack
/// buffer, deciding the read (exact, glob, regex, hidden, rate-limited) and
/// deciding a prompt with its arguments allocate nothing, in both languages.
#[test]
fn resource_and_prompt_decisions_do_not_allocate() {
    resource_and_prompt_decisions_do_not_allocate_in(compiled);
}

#[test]
fn evaluator_resource_and_prompt_decisions_do_not_allocate() {
    let ev = Evaluators::load();
    resource_and_prompt_decisions_do_not_allocate_in(|s| ev.file(s));
}

fn resource_and_prompt_decisions_do_not_allocate_in(
    compiled: impl Fn(&str) -> Option<&'static dyn Policy>,
) {
    let _serial = serial();
    use portcullis_core::call::{Surface, ToolCall};
    use portcullis_core::json::Strictness;
    use portcullis_core::uri::{MAX_URI_LEN, normalize_into};
    let uris = [
        "file:///etc/passwd",
        "FILE:///tmp/../etc//shadow",
        "file:///%65tc/hosts",
        "file:///srv/app/.env",
        "file:///srv/data/a.csv",
        "file:///root/.ssh/id_ed25519",
        "demo://resource/static/document/architecture.md",
        "file:///srv/app/main.rs",
        "file:///../escape",
    ];
    let prompts = [
        ("deploy", r#"{"env":"prod","service":"api"}"#),
        ("deploy_web", r#"{"env":"dev"}"#),
        ("simple-prompt", "{}"),
        ("secret_admin", "{}"),
        ("other", r#"{"env":"prod"}"#),
    ];
    for server in ["surfaces-dsl", "surfaces-intercept", "surfaces-catalogue"] {
        let policy = compiled(server).expect("compiled");
        let counters = MemoryCounters::new();
        let run = |count: bool| {
            COUNTING.store(count, Ordering::SeqCst);
            let mut denied = 0;
            for round in 0..200u32 {
                let env = Env {
                    counters: &counters,
                    now: UnixMillis(1_768_474_800_000 + i64::from(round) * 1000),
                    session: 1,
                    fail_mode: FailMode::Closed,
                    principal: None,
                };
                for uri in uris {
                    let mut buf = [0u8; MAX_URI_LEN];
                    let Ok(n) = normalize_into(uri, &mut buf) else {
                        denied += 1;
                        continue;
                    };
                    let call = ToolCall::on(Surface::Resource, n, b"{}", Strictness::STRICT)
                        .expect("a call");
                    let hidden = policy.is_hidden_on(Surface::Resource, n, None);
                    let mut ticket = Ticket::EMPTY;
                    let d = policy.decide(&call, &env, &mut ticket);
                    if d.effect() == Effect::Allow {
                        counters.commit(&ticket);
                    } else {
                        denied += 1;
                    }
                    assert!(!hidden || d.outcome == Outcome::Hidden);
                }
                for (name, args) in prompts {
                    let call =
                        ToolCall::on(Surface::Prompt, name, args.as_bytes(), Strictness::STRICT)
                            .expect("a call");
                    let mut ticket = Ticket::EMPTY;
                    let d = policy.decide(&call, &env, &mut ticket);
                    if d.effect() == Effect::Allow {
                        counters.commit(&ticket);
                    } else {
                        denied += 1;
                    }
                }
            }
            COUNTING.store(false, Ordering::SeqCst);
            denied
        };
        run(false);
        ALLOCATIONS.store(0, Ordering::SeqCst);
        let denied = run(true);
        assert!(
            denied > 1000,
            "{server}: the denials were exercised ({denied})"
        );
        assert_eq!(
            ALLOCATIONS.load(Ordering::SeqCst),
            0,
            "{server}: resource and prompt decisions allocated"
        );
    }
}

/// path() conditions (docs/policy-language.md, "Paths"): normalising a path
/// argument on the stack and comparing it (glob, equality, prefix by
/// segments), including escaped, non-normalisable and wrongly typed
/// arguments, allocates nothing, in both languages.
#[test]
fn path_decisions_do_not_allocate() {
    path_decisions_do_not_allocate_in(compiled);
}

#[test]
fn evaluator_path_decisions_do_not_allocate() {
    let ev = Evaluators::load();
    path_decisions_do_not_allocate_in(|s| ev.file(s));
}

fn path_decisions_do_not_allocate_in(compiled: impl Fn(&str) -> Option<&'static dyn Policy>) {
    let _serial = serial();
    let args = [
        ("read_file", r#"{"path":"/srv/secret/key"}"#),
        ("read_file", r#"{"path":"/srv/public/../secret//key"}"#),
        ("read_file", r#"{"path":"/srv/./public/./a.txt"}"#),
        ("read_file", r#"{"path":"\/srv\/\u0073ecret\/key"}"#),
        ("read_file", r#"{"path":"/srv/keys/root.pem/"}"#),
        ("read_file", r#"{"path":"srv/secret/key"}"#),
        ("read_file", r#"{"path":"/../srv/secret"}"#),
        ("read_file", r#"{"path":"/srv/a\u0000b"}"#),
        ("read_file", r#"{"path":42}"#),
        ("read_file", r#"{"PATH":"/etc/passwd"}"#),
        ("read_file", "{}"),
        (
            "move_file",
            r#"{"source":"/srv/vault/a","destination":"/tmp/a"}"#,
        ),
        (
            "move_file",
            r#"{"source":"/srv/vault/a","destination":"/srv/vault/../x.pem"}"#,
        ),
    ];
    for server in ["paths-dsl", "paths-intercept"] {
        let policy = compiled(server).expect("compiled");
        let counters = MemoryCounters::new();
        let lines: Vec<String> = args
            .iter()
            .enumerate()
            .map(|(i, (tool, a))| line(i, tool, a))
            .collect();
        let run = |count: bool| {
            COUNTING.store(count, Ordering::SeqCst);
            let mut denied = 0;
            let mut named = 0usize;
            for round in 0..500u32 {
                let env = Env {
                    counters: &counters,
                    now: UnixMillis(1_768_474_800_000 + i64::from(round) * 1000),
                    session: 1,
                    fail_mode: FailMode::Closed,
                    principal: None,
                };
                for l in &lines {
                    let call = parse_tool_call(l.as_bytes()).expect("a tools/call");
                    let mut ticket = Ticket::EMPTY;
                    let d = policy.decide(&call, &env, &mut ticket);
                    if d.effect() == Effect::Allow {
                        counters.commit(&ticket);
                    } else {
                        denied += 1;
                    }
                    // The arguments the proxy resolves through symlinks.
                    policy.path_args(call.name(), &mut |a| named += a.len());
                }
            }
            COUNTING.store(false, Ordering::SeqCst);
            (denied, named)
        };
        let warm = run(false);
        ALLOCATIONS.store(0, Ordering::SeqCst);
        let (denied, named) = run(true);
        assert_eq!(ALLOCATIONS.load(Ordering::SeqCst), 0, "{server}");
        assert_eq!((denied, named), warm, "{server}");
        assert!(denied >= 500 * 8, "{server}: {denied} denials");
        // One argument per read_file call, two per move_file call.
        assert_eq!(named, 500 * (11 + 2 * 2), "{server}");
    }
}
