//! The policy language's reference example (issue: the Stripe policy),
//! compiled to native code and run by the evaluator, driven call by call.

use portcullis_compiled::{compiled_dsl, repo_path};
use portcullis_compiler::eval::Evaluator;
use portcullis_compiler::{compile, load_dir};
use portcullis_core::call::ToolCall;
use portcullis_core::counters::{Counters, MemoryCounters, Ticket, UnixMillis};
use portcullis_core::json::Strictness;
use portcullis_core::policy::{Effect, Env, FailMode, Outcome, Policy};

fn engines() -> Vec<(&'static str, Box<dyn Policy>)> {
    let inputs = load_dir(&repo_path("tests/fixtures/dsl"), Some("tests/fixtures/dsl")).unwrap();
    let set = compile(&inputs)
        .into_set()
        .unwrap_or_else(|o| panic!("{}", o.render()));
    let ir = set
        .servers
        .iter()
        .find(|s| s.name == "stripe")
        .unwrap()
        .clone();
    assert_eq!(ir.dialect.name(), "dsl");
    vec![
        ("evaluator", Box::new(Evaluator::new(ir, &set.sources))),
        ("generated", Box::new(compiled_dsl("stripe").unwrap())),
    ]
}

struct Run<'p> {
    policy: &'p dyn Policy,
    counters: MemoryCounters,
    now: i64,
}

impl Run<'_> {
    fn call(&self, tool: &str, args: &str) -> (Effect, Outcome, String) {
        let call = ToolCall::new(tool, args.as_bytes(), Strictness::STRICT).unwrap();
        let env = Env {
            counters: &self.counters,
            now: UnixMillis(self.now),
            session: 1,
            fail_mode: FailMode::Closed,
            principal: None,
        };
        let mut ticket = Ticket::EMPTY;
        let d = self.policy.decide(&call, &env, &mut ticket);
        if d.effect() == Effect::Allow {
            self.counters.commit(&ticket);
        }
        (d.effect(), d.outcome, d.message(tool).into_owned())
    }
}

#[test]
fn the_stripe_example_behaves_as_specified() {
    for (engine, policy) in engines() {
        let start = UnixMillis::parse_rfc3339("2026-05-04T09:00:00Z").unwrap().0;
        let mut run = Run {
            policy: policy.as_ref(),
            counters: MemoryCounters::new(),
            now: start,
        };
        let deny = |r: (Effect, Outcome, String), msg: &str| {
            assert_eq!(
                r.0,
                Effect::Deny,
                "{engine}: expected a denial `{msg}`, got {r:?}"
            );
            assert_eq!(r.2, msg, "{engine}");
        };
        // A 60000 charge: over the single-charge cap.
        deny(
            run.call(
                "create_charge",
                r#"{"amount":60000,"currency":"usd","customer":"c1"}"#,
            ),
            "Single charge cannot exceed $500.00",
        );
        // A GBP charge.
        deny(
            run.call(
                "create_charge",
                r#"{"amount":100,"currency":"gbp","customer":"c1"}"#,
            ),
            "Only USD and EUR charges are permitted",
        );
        // Ten charges for c1 in an hour (one a minute, so the 60/minute limit stays clear) ...
        for i in 0..10 {
            run.now = start + 60_000 * (i + 1);
            let r = run.call(
                "create_charge",
                r#"{"amount":1000,"currency":"usd","customer":"c1"}"#,
            );
            assert_eq!(
                r.0,
                Effect::Allow,
                "{engine}: charge {} for c1: {r:?}",
                i + 1
            );
        }
        // ... the eleventh is denied, while c2 still may.
        run.now = start + 60_000 * 11;
        deny(
            run.call(
                "create_charge",
                r#"{"amount":1000,"currency":"eur","customer":"c1"}"#,
            ),
            "At most 10 charges per customer per hour",
        );
        assert_eq!(
            run.call(
                "create_charge",
                r#"{"amount":1000,"currency":"eur","customer":"c2"}"#
            )
            .0,
            Effect::Allow,
            "{engine}: c2"
        );
        // Hidden tools, by name and by glob.
        for tool in ["delete_customer", "delete_product", "stripe_webhook"] {
            assert!(
                policy.is_hidden(tool, None),
                "{engine}: {tool} should be hidden"
            );
            deny(
                run.call(tool, "{}"),
                &format!("Tool \"{tool}\" is hidden by policy"),
            );
        }
        // default deny, and a glob block that lists tools.
        deny(
            run.call("update_subscription", "{}"),
            "Tool \"update_subscription\" is not permitted by policy",
        );
        assert_eq!(
            run.call("list_customers", "{}").0,
            Effect::Allow,
            "{engine}: list_customers"
        );
        // Refunds and payouts.
        assert_eq!(
            run.call("create_refund", r#"{"amount":500,"reason":"duplicate"}"#)
                .0,
            Effect::Allow,
            "{engine}"
        );
        deny(
            run.call(
                "create_refund",
                r#"{"amount":500,"reason":"suspected FRAUD"}"#,
            ),
            "Refunds over $100.00 need a human",
        );
        deny(
            run.call("create_refund", r#"{"amount":20000,"reason":"duplicate"}"#),
            "Refunds over $100.00 need a human",
        );
        assert_eq!(
            run.call("create_payout", r#"{"amount":100,"reason":"weekly"}"#)
                .0,
            Effect::Allow,
            "{engine}"
        );
        // The 61st call in a minute.
        run.now = start + 3_600_000 * 2;
        for i in 0..60 {
            assert_eq!(
                run.call("list_customers", "{}").0,
                Effect::Allow,
                "{engine}: call {} of the minute",
                i + 1
            );
        }
        deny(
            run.call("list_customers", "{}"),
            "Rate limit: 60 tool calls per minute",
        );
        // The daily spend cap adds up amounts (calendar day): 1,000,000 in cents.
        run.now = start + 86_400_000;
        let mut total = 0;
        for i in 0..40 {
            run.now += 60_000;
            let customer = format!("spender{i}");
            let r = run.call(
                "create_charge",
                &format!(r#"{{"amount":50000,"currency":"usd","customer":"{customer}"}}"#),
            );
            if r.0 == Effect::Allow {
                total += 50000;
            } else {
                assert_eq!(r.2, "Daily spending cap of $10,000.00 reached", "{engine}");
            }
        }
        assert_eq!(total, 1_000_000, "{engine}: exactly the cap");
    }
}

/// `by args.customer` with an object value: rewriting the object (spaces,
/// key order, escapes, number spelling) is the same customer, so it gets no
/// fresh budget; a different object is a different customer. Both engines.
#[test]
fn a_reformatted_object_argument_gets_no_fresh_budget() {
    let spellings = [
        r#"{"id":"c1","tier":2,"tags":["a",{"k":1}]}"#,
        r#"{ "id" : "c1" , "tier" : 2 , "tags" : [ "a" , { "k" : 1 } ] }"#,
        r#"{"tags":[ "a",{"k":1.0}],"tier":2e0,"id":"c1"}"#,
        r#"{"tier":20e-1,"tags":["\u0061",{"\u006b":10e-1}],"id":"\u0063\u0031"}"#,
    ];
    for (engine, policy) in engines() {
        let start = UnixMillis::parse_rfc3339("2026-05-04T09:00:00Z").unwrap().0;
        let mut run = Run {
            policy: policy.as_ref(),
            counters: MemoryCounters::new(),
            now: start,
        };
        let charge =
            |customer: &str| format!(r#"{{"amount":1000,"currency":"usd","customer":{customer}}}"#);
        for i in 0..10 {
            run.now = start + 60_000 * (i + 1);
            let customer = spellings[i as usize % spellings.len()];
            let r = run.call("create_charge", &charge(customer));
            assert_eq!(
                r.0,
                Effect::Allow,
                "{engine}: charge {} ({customer}): {r:?}",
                i + 1
            );
        }
        run.now = start + 60_000 * 11;
        for customer in spellings {
            let r = run.call("create_charge", &charge(customer));
            assert_eq!(
                (r.0, r.2.as_str()),
                (Effect::Deny, "At most 10 charges per customer per hour"),
                "{engine}: {customer} is the same customer"
            );
        }
        for other in [
            r#"{"id":"c2","tier":2,"tags":["a",{"k":1}]}"#,
            r#"{"id":"c1","tier":2,"tags":[{"k":1},"a"]}"#,
            r#"{"id":"c1","tier":2,"tags":["a",{"k":[1]}]}"#,
        ] {
            let r = run.call("create_charge", &charge(other));
            assert_eq!(
                r.0,
                Effect::Allow,
                "{engine}: {other} is another customer: {r:?}"
            );
        }
    }
}
