//! The calls both decision benchmarks use (`decision`, timed by criterion,
//! and `instructions`, counted under callgrind): the policy, the kinds of
//! call of the round-robin mix, the raw 1 KiB line, the two engines.

use std::hint::black_box;

use portcullis_compiled::{compiled, repo_path};
use portcullis_compiler::eval::Evaluator;
use portcullis_compiler::{compile, load_file};
use portcullis_core::call::ToolCall;
use portcullis_core::counters::{MemoryCounters, Ticket, UnixMillis};
use portcullis_core::policy::{Env, FailMode, Outcome, Policy};

pub const POLICY: &str = "benches/policies/fusionauth.yaml";

/// 2026-01-01T00:00:30Z: a fixed clock, mid-minute, so every counter stays in one window.
pub const NOW: UnixMillis = UnixMillis(1_767_225_630_000);

/// One kind of call: a benchmark id, the tool, its arguments, the expected outcome.
pub struct Kind {
    pub id: &'static str,
    pub tool: &'static str,
    pub args: &'static str,
    pub expect: Outcome,
}

pub const KINDS: &[Kind] = &[
    // A listed tool without rules: only the global "*" rate limit applies.
    Kind {
        id: "allow",
        tool: "retrieveUser",
        args: r#"{"userId":"00000000-0000-0000-0000-000000000001"}"#,
        expect: Outcome::Allowed,
    },
    // The same, for the tools that sort first and last among the 310 (the
    // generated code dispatches on the name with one `match`).
    Kind {
        id: "allow_first",
        tool: "addUserToFamily",
        args: r#"{"familyId":"00000000-0000-0000-0000-0000000000f1","userId":"u-1"}"#,
        expect: Outcome::Allowed,
    },
    Kind {
        id: "allow_last",
        tool: "verifyRegistration",
        args: r#"{"verificationId":"YkQY5Gsyo4RlfmDciBGRmvfj3RmatUqrbjoIZ19fmw4"}"#,
        expect: Outcome::Allowed,
    },
    // delete*: an unconditional deny.
    Kind {
        id: "deny",
        tool: "deleteUser",
        args: r#"{"userId":"00000000-0000-0000-0000-000000000001"}"#,
        expect: Outcome::Check,
    },
    // A numeric bound (args.numberOfResults lte 100).
    Kind {
        id: "condition",
        tool: "searchUsers",
        args: r#"{"queryString":"email:*@example.com","numberOfResults":25,"startRow":0}"#,
        expect: Outcome::Allowed,
    },
    // A regex on args.email.
    Kind {
        id: "regex",
        tool: "createUser",
        args: r#"{"email":"jane.doe@example.com","firstName":"Jane","lastName":"Doe"}"#,
        expect: Outcome::Allowed,
    },
    // `in` a list of key algorithms.
    Kind {
        id: "in_list",
        tool: "createKey",
        args: r#"{"algorithm":"ES256","name":"signing key","length":256}"#,
        expect: Outcome::Allowed,
    },
    // import*: its own 30/minute limit plus the global one (two counters).
    Kind {
        id: "rate_limited",
        tool: "importUsers",
        args: r#"{"users":[{"email":"a@example.com"},{"email":"b@example.com"}],"validateDbConstraints":true}"#,
        expect: Outcome::Allowed,
    },
    // A spend-cap-like counter: a state read for the condition, then a reservation of args.recipientCount.
    Kind {
        id: "spend_cap",
        tool: "sendEmail",
        args: r#"{"emailTemplateId":"00000000-0000-0000-0000-0000000000e1","recipientCount":3}"#,
        expect: Outcome::Allowed,
    },
    // A hidden tool.
    Kind {
        id: "hidden",
        tool: "retrieveAPIKey",
        args: r#"{"keyId":"k1"}"#,
        expect: Outcome::Hidden,
    },
    // A tool the policy does not list (`default: deny`).
    Kind {
        id: "unknown",
        tool: "retrieveCatPictures",
        args: r#"{"count":3}"#,
        expect: Outcome::NotPermitted,
    },
];

/// A realistic `tools/call` line of about 1 KiB: a FusionAuth createUser with
/// nested objects, arrays, numbers, booleans and strings.
pub const RAW_LINE: &str = concat!(
    r#"{"jsonrpc":"2.0","id":4217,"method":"tools/call","params":{"name":"createUser","arguments":{"#,
    r#""email":"jane.doe@example.com","#,
    r#""applicationId":"3c219e58-ed0e-4b18-ad48-f4f92793ae32","#,
    r#""tenantId":"a1b2c3d4-e5f6-4789-8abc-def012345678","#,
    r#""sendSetPasswordEmail":false,"skipVerification":true,"disableDomainBlock":false,"#,
    r#""user":{"firstName":"Jane","lastName":"Doe","username":"jdoe","birthDate":"1990-04-12","#,
    r#""mobilePhone":"+1 303 555 0199","preferredLanguages":["en","fr"],"timezone":"America/Denver","#,
    r#""data":{"department":"Engineering","costCenter":4410,"manager":{"id":"u-1029"},"#,
    r#""tags":["beta","early-access","sso"]}},"#,
    r#""registration":{"applicationId":"3c219e58-ed0e-4b18-ad48-f4f92793ae32","#,
    r#""roles":["admin","user","auditor"],"data":{"plan":"enterprise","seats":25}},"#,
    r#""memberships":[{"groupId":"5f0c8e8a-0d7f-4a7e-9d1c-0b6f6b2f9a11"}],"#,
    r#""eventInfo":{"ipAddress":"203.0.113.42","userAgent":"AgentRuntime/1.4"},"#,
    r#""requestedAt":1767225630000,"locale":"en-US","twoFactorEnabled":false,"weight":0.75,"#,
    r#""comment":"Provisioned by the onboarding agent \u2014 ticket #88213"}}}"#
);

pub fn evaluator() -> Evaluator {
    let input = load_file(&repo_path(POLICY), Some(POLICY.to_string())).expect("read the policy");
    let set = compile(&[input])
        .into_set()
        .unwrap_or_else(|o| panic!("{POLICY} does not compile:\n{}", o.render()));
    let ir = set.servers[0].clone();
    Evaluator::new(ir, &set.sources)
}

pub fn env(counters: &MemoryCounters) -> Env<'_> {
    Env {
        counters,
        now: NOW,
        session: 1,
        fail_mode: FailMode::Closed,
        principal: None,
    }
}

/// One decision as every benchmark times it: decide, then give back what an
/// allowed call reserved, so no limit ever fills.
#[inline(always)]
pub fn decide_and_rollback(policy: &dyn Policy, call: &ToolCall<'_>, env: &Env<'_>) -> Outcome {
    let mut ticket = Ticket::EMPTY;
    let decision = policy.decide(black_box(call), env, &mut ticket);
    if decision.outcome == Outcome::Allowed {
        env.counters.rollback(&ticket);
    }
    black_box(decision).outcome
}

/// The two engines: the generated code and the evaluator (leaked, so both are `&'static`
/// and both are called through one `dyn Policy` indirection).
pub fn engines() -> [(&'static str, &'static dyn Policy); 2] {
    let generated =
        compiled("fusionauth").expect("build.rs compiled benches/policies/fusionauth.yaml");
    let evaluator: &'static Evaluator = Box::leak(Box::new(evaluator()));
    [("generated", generated), ("evaluator", evaluator)]
}
