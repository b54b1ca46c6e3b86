//! The sample policies' behaviour as insta decision tables, the way an
//! organisation snapshot-tests its own policies (see the README). The
//! embedded policy is the compiled one; the policy-language samples, which
//! this build does not embed, run on the reference evaluator.

use portcullis::testing::{call, decision_table, prompt, resource};
use portcullis_compiler::eval::Evaluator;

fn evaluator(path: &str) -> Evaluator {
    let inputs = portcullis_compiler::load_file_with_includes(&common_root().join(path)).unwrap();
    let set = portcullis_compiler::compile(&inputs)
        .into_set()
        .unwrap_or_else(|o| panic!("{}", o.render()));
    let ir = set.servers.into_iter().next().unwrap();
    Evaluator::new(ir, &set.sources)
}

fn common_root() -> std::path::PathBuf {
    std::path::PathBuf::from(env!("CARGO_MANIFEST_DIR"))
}

#[test]
fn everything_policy() {
    let policy =
        portcullis::embedded::policy("everything").expect("the default policy is embedded");
    let calls = [
        call("echo", r#"{"message": "hello"}"#),
        call("echo", r#"{"message": "two\nlines"}"#),
        call("get-sum", r#"{"a": 1000, "b": 1000}"#),
        call("get-sum", r#"{"a": 1001, "b": 1}"#),
        call("get-sum", r#"{"a": "5", "b": 1}"#),
        call("get-env", "{}"),
        call(
            "gzip-file-as-resource",
            r#"{"name": "x", "data": "https://example.com"}"#,
        ),
        call("trigger-long-running-operation", "{}"),
        call("trigger-long-running-operation", "{}").upstream_error(),
        call("trigger-long-running-operation", "{}"),
        call("trigger-long-running-operation", "{}"),
        call("trigger-long-running-operation", "{}"),
        call("trigger-long-running-operation", "{}").at("2026-01-15T10:31:00Z"),
        call("get-tiny-image", "{}"),
        call("echo", r#"{"message": "a", "message": "b"}"#),
    ];
    let compiled = decision_table(policy, &calls);
    // The evaluator of the same source decides every row the same way.
    assert_eq!(
        compiled,
        decision_table(&evaluator("policies/default/everything.yaml"), &calls)
    );
    insta::assert_yaml_snapshot!(compiled);
}

#[test]
fn stripe_policy() {
    let mut calls = vec![
        call(
            "create_charge",
            r#"{"amount": 50000, "currency": "usd", "customer": "cus_1"}"#,
        ),
        call(
            "create_charge",
            r#"{"amount": 50001, "currency": "usd", "customer": "cus_1"}"#,
        ),
        call(
            "create_charge",
            r#"{"amount": 0, "currency": "usd", "customer": "cus_1"}"#,
        ),
        call(
            "create_charge",
            r#"{"amount": 10.5, "currency": "usd", "customer": "cus_1"}"#,
        ),
        call(
            "create_charge",
            r#"{"amount": "100", "currency": "usd", "customer": "cus_1"}"#,
        ),
        call(
            "create_charge",
            r#"{"amount": 100, "currency": "gbp", "customer": "cus_1"}"#,
        ),
        call(
            "create_refund",
            r#"{"amount": 10000, "reason": "duplicate"}"#,
        ),
        call(
            "create_refund",
            r#"{"amount": 100, "reason": "Chargeback dispute"}"#,
        ),
        call("list_customers", "{}"),
        call("update_customer", "{}"),
        call("delete_customer", "{}"),
        call("create_webhook", "{}"),
    ];
    // The daily cap: 19 more charges of $500 from other customers reach $10,000.
    for i in 0..19 {
        let customer = format!("cus_{}", 10 + i / 9);
        calls.push(call(
            "create_charge",
            &format!(r#"{{"amount": 50000, "currency": "eur", "customer": "{customer}"}}"#),
        ));
    }
    calls.push(call(
        "create_charge",
        r#"{"amount": 1, "currency": "usd", "customer": "cus_2"}"#,
    ));
    calls.push(
        call(
            "create_charge",
            r#"{"amount": 1, "currency": "usd", "customer": "cus_2"}"#,
        )
        .at("2026-01-16T00:00:00Z"),
    );
    insta::assert_yaml_snapshot!(decision_table(
        &evaluator("policies/examples/stripe.policy"),
        &calls
    ));
}

#[test]
fn github_policy() {
    let mut calls = vec![
        call("create_repository", r#"{"name": "x", "private": true}"#),
        call("create_repository", r#"{"name": "x", "private": "true"}"#),
        call(
            "merge_pull_request",
            r#"{"merge_method": "merge", "base": "main"}"#,
        ),
        call(
            "merge_pull_request",
            r#"{"merge_method": "squash", "base": "release/2.0"}"#,
        ),
        call("push_files", r#"{"branch": "main", "path": "README.md"}"#),
        call(
            "push_files",
            r#"{"branch": "fix", "path": ".github/workflows/ci.yml"}"#,
        ),
        call("push_files", r#"{"branch": "fix", "path": "README.md"}"#),
        call("delete_repository", "{}"),
    ];
    for _ in 0..8 {
        calls.push(call(
            "merge_pull_request",
            r#"{"merge_method": "rebase", "base": "main"}"#,
        ));
    }
    calls.push(call(
        "push_files",
        r#"{"branch": "fix", "path": "README.md"}"#,
    ));
    insta::assert_yaml_snapshot!(decision_table(
        &evaluator("policies/examples/github.policy"),
        &calls
    ));
}

/// Decisions that depend on the caller: who may refund, per-caller budgets,
/// per-caller tool views (the fixture in tests/fixtures/principal).
#[test]
fn principal_policy() {
    const ALICE: &str = r#"{"sub":"alice","iss":"https://idp.example","groups":["finance"]}"#;
    const BOB: &str = r#"{"sub":"bob","iss":"https://idp.example","groups":["staff"]}"#;
    const ROOT: &str = r#"{"sub":"root","iss":"https://idp.example","groups":["admins"]}"#;
    let calls = [
        call("create_refund", r#"{"amount": 500}"#).as_caller(ALICE),
        call("create_refund", r#"{"amount": 500}"#).as_caller(BOB),
        call("create_refund", r#"{"amount": 500}"#),
        call("create_refund", r#"{"amount": 20000}"#).as_caller(ALICE),
        call("create_refund", r#"{"amount": 1}"#).as_caller(ALICE),
        call("create_refund", r#"{"amount": 1}"#).as_caller(ALICE),
        call("create_refund", r#"{"amount": 1}"#).as_caller(ALICE),
        call("admin_reset", "{}").as_caller(ROOT),
        call("admin_reset", "{}").as_caller(BOB),
        call("get_report", "{}")
            .as_caller(r#"{"sub":"dan","iss":"i","org":{"region":"eu","team":"t1"}}"#),
        call("get_report", "{}").as_caller(r#"{"sub":"fay","iss":"i","org":{"region":"eu"}}"#),
    ];
    insta::assert_yaml_snapshot!(decision_table(
        &evaluator("tests/fixtures/principal/finance.policy"),
        &calls
    ));
}

/// Resources and prompts (docs/surfaces.md): the same fixture in the three
/// languages decides every row alike (rule names aside; the catalogue form
/// has no conditions, so its `deploy` prompt denies every request).
#[test]
fn resources_and_prompts_policy() {
    let calls = [
        resource("file:///etc/passwd"),
        resource("FILE:///tmp/../etc//shadow"),
        resource("file:///%65tc/hosts"),
        resource("file:///etc%2Fpasswd"),
        resource("file:///etcetera"),
        resource("file:///srv/app/.env"),
        resource("demo://resource/static/document/architecture.md"),
        resource("file:///root/.ssh/id_ed25519"),
        resource("file:///srv/data/a.csv"),
        resource("file:///srv/data/b.csv").upstream_error(),
        resource("file:///srv/data/b.csv"),
        resource("file:///srv/data/c.csv"),
        resource("file:///srv/data/d.csv"),
        resource("file:///srv/data/deeper/e.csv"),
        prompt("deploy", r#"{"env": "prod", "service": "api"}"#),
        prompt("secret_admin", "{}"),
        prompt("simple-prompt", "{}"),
        prompt("simple-prompt", "{}"),
        prompt("simple-prompt", "{}"),
    ];
    let dsl = decision_table(
        &evaluator("tests/fixtures/surfaces/surfaces-dsl.policy"),
        &calls,
    );
    let outcome = |t: &portcullis::testing::DecisionTable| {
        t.rows
            .iter()
            .map(|r| (r.call.clone(), r.effect, r.message.clone()))
            .collect::<Vec<_>>()
    };
    for other in [
        "tests/fixtures/surfaces/surfaces-intercept.yaml",
        "tests/fixtures/surfaces/surfaces-catalogue.yaml",
    ] {
        assert_eq!(
            outcome(&dsl),
            outcome(&decision_table(&evaluator(other), &calls)),
            "{other}"
        );
    }
    insta::assert_yaml_snapshot!(dsl);
}

/// Result rules (docs/results.md): each allowed tool call and resource read
/// names the rule that checks its answer, and an answer given to the row
/// shows what that rule does. The three languages agree (rule names aside).
#[test]
fn result_rules_policy() {
    let token =
        r#"{"content":[{"type":"text","text":"ghp_16C7e42F292c6912E7710c838347Ae178B4a"}]}"#;
    let calls = [
        call("echo", r#"{"message": "hi"}"#).answer(token),
        call("read_file", r#"{"path": "/tmp/x"}"#).answer(token),
        call("read_file", r#"{"path": "/tmp/x"}"#)
            .answer(r#"{"content":[{"type":"text","text":"EMP-123456"}]}"#),
        call("read_dir", "{}").answer(r#"{"content":[{"type":"text","text":"a short listing"}]}"#),
        call("read_dir", "{}"),
        resource("file:///etc/passwd").answer(
            r#"{"contents":[{"uri":"file:///etc/passwd","text":"sk_live_4eC39HqLyjWDarjtT1zdp7dc"}]}"#,
        ),
        resource("FILE:///tmp/../etc//passwd"),
        resource("file:///etc/ssl/private/key.pem"),
        resource("file:///srv/data/deeper/report.csv"),
        resource("file:///srv/app/config.json"),
        resource("file:///home/ann/.env"),
        resource("file:///etc%2Fpasswd").answer(
            r#"{"contents":[{"uri":"file:///etc%2Fpasswd","text":"AKIAIOSFODNN7EXAMPLE"}]}"#,
        ),
    ];
    let dsl = decision_table(
        &evaluator("tests/fixtures/results/results-dsl.policy"),
        &calls,
    );
    let outcome = |t: &portcullis::testing::DecisionTable| {
        t.rows
            .iter()
            .map(|r| {
                (
                    r.call.clone(),
                    r.effect,
                    r.results.is_some(),
                    r.answer.clone(),
                )
            })
            .collect::<Vec<_>>()
    };
    for other in [
        "tests/fixtures/results/results-intercept.yaml",
        "tests/fixtures/results/results-catalogue.yaml",
    ] {
        let table = decision_table(&evaluator(other), &calls);
        // What the rules do is the same; their names differ by language
        // (`results for read_file` against `results.tools.read_file`), and
        // so do messages that name the rule.
        let strip = |a: &Option<String>| {
            a.as_deref()
                .map(|s| s.split(" (results").next().unwrap_or(s).to_string())
        };
        let mine: Vec<_> = outcome(&dsl)
            .into_iter()
            .map(|(c, e, r, a)| (c, e, r, strip(&a)))
            .collect();
        let theirs: Vec<_> = outcome(&table)
            .into_iter()
            .map(|(c, e, r, a)| (c, e, r, strip(&a)))
            .collect();
        assert_eq!(mine, theirs, "{other}");
    }
    insta::assert_yaml_snapshot!(dsl);
}

/// path() conditions on tool arguments (docs/policy-language.md, "Paths in
/// arguments"): every spelling a server resolves to a denied path is
/// denied, a path that cannot be normalised or is not a string fails
/// closed, and the three languages agree (rule names aside); the compiled
/// fixtures agree with the evaluator in tests/compiled's differential test.
#[test]
fn path_conditions_policy() {
    let calls = [
        call("read_file", r#"{"path": "/srv/public/a.txt"}"#),
        call("read_file", r#"{"path": "/srv/secret/key"}"#),
        call("read_file", r#"{"path": "/srv/public/../secret/key"}"#),
        call("read_file", r#"{"path": "/srv//secret///key"}"#),
        call("read_file", r#"{"path": "/srv/./secret/./key"}"#),
        call("read_file", r#"{"path": "/srv/secret/"}"#),
        call("read_file", r#"{"path": "/srv/secret"}"#),
        call("read_file", r#"{"path": "/srv/secretive/a"}"#),
        call("read_file", r#"{"path": "\/srv\/\u0073ecret\/key"}"#),
        call("read_file", r#"{"path": "/srv/%73ecret/key"}"#),
        call("read_file", r#"{"path": "/srv/keys/root.pem"}"#),
        call("read_file", r#"{"path": "/srv/keys/x/../root.pem/"}"#),
        call("read_file", r#"{"path": "/srv/keys/deploy.key"}"#),
        call("read_file", r#"{"path": "/srv/keys/a/deploy.key"}"#),
        call("read_file", r#"{"path": "/srv/../etc/passwd"}"#),
        call("read_file", r#"{"path": "/srvx/a"}"#),
        call("read_file", r#"{"path": "srv/public/a.txt"}"#),
        call("read_file", r#"{"path": "/../srv/public/a.txt"}"#),
        call("read_file", r#"{"path": "/srv/public/a\u0000.txt"}"#),
        call("read_file", r#"{"path": 42}"#),
        call("read_file", r#"{"path": ["/srv/public/a.txt"]}"#),
        call("read_file", r#"{"Path": "/srv/secret/key"}"#),
        call(
            "move_file",
            r#"{"source": "/srv/a.txt", "destination": "/srv/b.txt"}"#,
        ),
        call(
            "move_file",
            r#"{"source": "/srv/a.txt", "destination": "/srv/../tmp/b.txt"}"#,
        ),
        call(
            "move_file",
            r#"{"source": "/srv/a.pem", "destination": "/srv/keys/../b.pem"}"#,
        ),
        call(
            "move_file",
            r#"{"source": "/srv/a.pem", "destination": "b.pem"}"#,
        ),
    ];
    let dsl = decision_table(&evaluator("tests/fixtures/paths/paths-dsl.policy"), &calls);
    let outcome = |t: &portcullis::testing::DecisionTable| {
        t.rows
            .iter()
            .map(|r| (r.call.clone(), r.effect, r.message.clone()))
            .collect::<Vec<_>>()
    };
    for other in [
        "tests/fixtures/paths/paths-intercept.yaml",
        "tests/fixtures/paths/paths-catalogue.yaml",
    ] {
        assert_eq!(
            outcome(&dsl),
            outcome(&decision_table(&evaluator(other), &calls)),
            "{other}"
        );
    }
    insta::assert_yaml_snapshot!(dsl);
}
