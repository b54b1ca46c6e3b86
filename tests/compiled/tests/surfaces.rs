//! Resources and prompts (docs/surfaces.md): the same policy in the policy
//! language and in Intercept's YAML decides `resources/read` by normalised
//! URI and `prompts/get` by name and arguments; generated code and the
//! reference evaluator agree on random requests; deciding allocates nothing.

use portcullis_compiled::{compiled, repo_path};
use portcullis_compiler::eval::Evaluator;
use portcullis_compiler::{compile, load_dir};
use portcullis_core::Principal;
use portcullis_core::call::{Surface, ToolCall};
use portcullis_core::counters::{Counters, MemoryCounters, Ticket, UnixMillis};
use portcullis_core::json::Strictness;
use portcullis_core::policy::{Env, FailMode, Outcome, Policy};
use portcullis_core::uri::normalize;
use proptest::prelude::*;
use proptest::test_runner::{Config, TestRunner};

const SERVERS: [&str; 3] = ["surfaces-dsl", "surfaces-intercept", "surfaces-catalogue"];

fn env(counters: &MemoryCounters, now: i64) -> Env<'_> {
    Env {
        counters,
        now: UnixMillis(now),
        session: 1,
        fail_mode: FailMode::Closed,
        principal: None,
    }
}

fn who(claims: &str) -> Principal {
    Principal::from_claims(claims.as_bytes().to_vec()).expect("valid claims")
}

/// The callers the fixtures' conditional hides tell apart.
fn callers() -> [Option<Principal>; 4] {
    [
        None,
        Some(who(
            r#"{"iss":"https://idp.example","sub":"root","groups":["admins"]}"#,
        )),
        Some(who(
            r#"{"iss":"https://idp.example","sub":"alice","groups":["staff"]}"#,
        )),
        Some(who(
            r#"{"iss":"https://idp.example","sub":"bob","groups":"admins"}"#,
        )),
    ]
}

/// Decides a resource read as the proxy does: normalise, then decide.
fn read(p: &dyn Policy, uri: &str, env: &Env<'_>) -> (Outcome, String) {
    let Ok(n) = normalize(uri) else {
        return (Outcome::Check, "unnormalisable".into());
    };
    let call = ToolCall::on(Surface::Resource, &n, b"{}", Strictness::STRICT).unwrap();
    let mut ticket = Ticket::EMPTY;
    let d = p.decide(&call, env, &mut ticket);
    (d.outcome, d.message_on(Surface::Resource, &n).into_owned())
}

fn prompt(p: &dyn Policy, name: &str, args: &str, env: &Env<'_>) -> (Outcome, String) {
    let call = ToolCall::on(Surface::Prompt, name, args.as_bytes(), Strictness::STRICT).unwrap();
    let d = p.decide(&call, env, &mut Ticket::default());
    (d.outcome, d.message_on(Surface::Prompt, name).into_owned())
}

#[test]
fn both_languages_decide_resources_and_prompts_alike() {
    for server in SERVERS {
        let p = compiled(server).expect("compiled");
        assert!(p.governs(Surface::Resource) && p.governs(Surface::Prompt));
        let mem = MemoryCounters::new();
        let e = env(&mem, 1_768_474_800_000);
        let denied = |(o, m): (Outcome, String), want: &str| {
            assert_eq!(o, Outcome::Check, "{server}: {m}");
            assert_eq!(m, want, "{server}");
        };
        for uri in [
            "file:///etc/passwd",
            "FILE:///etc//shadow",
            "file:///tmp/../etc/passwd",
            "file:///%65tc/passwd",
            "file:///srv/./../etc/hosts",
        ] {
            denied(read(p, uri, &e), "System files are off limits");
        }
        denied(
            read(p, "file:///srv/app/.env", &e),
            "Environment files hold secrets",
        );
        denied(
            read(p, "demo://resource/static/document/architecture.md", &e),
            "Not this document",
        );
        for uri in [
            "file:///srv/app/main.rs",
            "file:///etcetera",
            "demo://resource/static/document/other.md",
        ] {
            assert_eq!(read(p, uri, &e).0, Outcome::Allowed, "{server} {uri}");
        }
        // Hidden: denied when read anyway, and reported hidden for lists.
        let (o, m) = read(p, "file:///root/.ssh/id_ed25519", &e);
        assert_eq!(o, Outcome::Hidden);
        assert_eq!(
            m,
            r#"Resource "file:///root/.ssh/id_ed25519" is hidden by policy"#
        );
        assert!(p.is_hidden_on(Surface::Resource, "file:///root/x", None));
        assert!(!p.is_hidden_on(Surface::Resource, "file:///srv/x", None));
        assert!(
            !p.is_hidden("file:///root/x", None),
            "a resource hide does not hide a tool"
        );
        // A rate limit on a resource glob (one segment only).
        for _ in 0..3 {
            let (o, _) = read(p, "file:///srv/data/a.csv", &e);
            assert_eq!(o, Outcome::Allowed);
        }
        let call_ticketed = read(p, "file:///srv/data/b.csv", &e);
        // MemoryCounters reserve on decide; three were reserved above.
        assert_eq!(call_ticketed.0, Outcome::Limit, "{server}");
        assert_eq!(call_ticketed.1, "Too many reads of the data directory");
        assert_eq!(
            read(p, "file:///srv/data/deeper/c.csv", &e).0,
            Outcome::Allowed
        );
        // Prompts by name and arguments.
        denied(
            prompt(p, "deploy", r#"{"env":"prod","service":"api"}"#, &e),
            "No production deploys from an agent",
        );
        // The catalogue form has no conditions: its deploy rule denies every request.
        let staging = prompt(p, "deploy", r#"{"env":"staging","service":"api"}"#, &e).0;
        if server == "surfaces-catalogue" {
            assert_eq!(staging, Outcome::Check);
        } else {
            assert_eq!(staging, Outcome::Allowed);
        }
        assert_eq!(
            prompt(p, "other", r#"{"env":"prod"}"#, &e).0,
            Outcome::Allowed
        );
        assert_eq!(prompt(p, "secret_admin", "{}", &e).0, Outcome::Hidden);
        assert!(p.is_hidden_on(Surface::Prompt, "secret_x", None));
        // A tool is still a tool: the prompt's rules do not apply to it.
        let tool = ToolCall::new("deploy", br#"{"env":"prod"}"#, Strictness::STRICT).unwrap();
        assert_eq!(
            p.decide(&tool, &e, &mut Ticket::default()).outcome,
            Outcome::Allowed
        );
    }
    // The policy language's extra rules.
    let dsl = compiled("surfaces-dsl").unwrap();
    let mem = MemoryCounters::new();
    let e = env(&mem, 1_768_474_800_000);
    assert_eq!(
        prompt(dsl, "deploy_web", r#"{"env":"dev"}"#, &e),
        (Outcome::Check, "Say which service".into())
    );
    let tool = ToolCall::new(
        "read_file",
        br#"{"path":"/etc/passwd"}"#,
        Strictness::STRICT,
    )
    .unwrap();
    assert_eq!(
        dsl.decide(&tool, &e, &mut Ticket::default()).outcome,
        Outcome::Check
    );
}

/// URIs and names near the fixtures' patterns, and arguments near their conditions.
fn request() -> impl Strategy<Value = (bool, String, String)> {
    let uri_parts = prop::sample::select(vec![
        "file://",
        "FILE://",
        "demo://",
        "/etc",
        "/srv",
        "/data",
        "/root",
        "/.ssh",
        "/..",
        "/.",
        "//",
        "/%65tc",
        "/%2e%2e",
        "/%2F",
        "/a.csv",
        "/.env",
        "/resource/static/document",
        "/architecture.md",
        "/admin",
        "/private",
        "/x",
    ]);
    let names = prop::sample::select(vec![
        "deploy",
        "deploy_web",
        "deploy_",
        "simple-prompt",
        "secret_x",
        "secret",
        "other",
        "debug-dump",
        "args-prompt",
        "",
    ]);
    let args = prop::sample::select(vec![
        "{}",
        r#"{"env":"prod"}"#,
        r#"{"env":"prod","service":"a"}"#,
        r#"{"ENV":"prod"}"#,
        r#"{"env":"dev","service":null}"#,
        r#"{"env":1}"#,
        r#"{"city":"Paris"}"#,
        r#"{"city":"Berlin"}"#,
    ]);
    (
        any::<bool>(),
        prop::collection::vec(uri_parts, 1..6).prop_map(|v| v.concat()),
        (names, args),
    )
        .prop_map(|(res, uri, (name, args))| {
            if res {
                (true, uri, String::new())
            } else {
                (false, name.to_string(), args.to_string())
            }
        })
}

#[test]
fn generated_code_and_evaluator_agree_on_resources_and_prompts() {
    let inputs = load_dir(
        &repo_path("tests/fixtures/surfaces"),
        Some("tests/fixtures/surfaces"),
    )
    .unwrap();
    let set = compile(&inputs)
        .into_set()
        .unwrap_or_else(|o| panic!("{}", o.render()));
    for ir in &set.servers {
        let native = compiled(&ir.name).unwrap();
        let evaluator = Evaluator::new(ir.clone(), &set.sources);
        assert_eq!(
            native.governs(Surface::Resource),
            evaluator.governs(Surface::Resource)
        );
        assert_eq!(
            native.governs(Surface::Prompt),
            evaluator.governs(Surface::Prompt)
        );
        let mut runner = TestRunner::new(Config {
            cases: 256,
            failure_persistence: None,
            ..Config::default()
        });
        runner
            .run(
                &prop::collection::vec((request(), 0..4usize), 1..12),
                |reqs| {
                    let (ma, mb) = (MemoryCounters::new(), MemoryCounters::new());
                    let callers = callers();
                    for (i, ((res, name, args), who)) in reqs.iter().enumerate() {
                        let now = 1_768_474_800_000 + i as i64 * 7_000;
                        let caller = callers[*who].as_ref();
                        let (mut ea, mut eb) = (env(&ma, now), env(&mb, now));
                        ea.principal = caller;
                        eb.principal = caller;
                        let (a, b) = if *res {
                            let (Ok(n1), Ok(n2)) = (normalize(name), normalize(name)) else {
                                continue;
                            };
                            prop_assert_eq!(
                                native.is_hidden_on(Surface::Resource, &n1, caller),
                                evaluator.is_hidden_on(Surface::Resource, &n2, caller)
                            );
                            prop_assert_eq!(
                                native.is_listed_on(Surface::Resource, &n1, caller),
                                evaluator.is_listed_on(Surface::Resource, &n2, caller)
                            );
                            prop_assert_eq!(
                                native.block_on(Surface::Resource, &n1),
                                evaluator.block_on(Surface::Resource, &n2)
                            );
                            (read(native, name, &ea), read(&evaluator, name, &eb))
                        } else {
                            prop_assert_eq!(
                                native.is_hidden_on(Surface::Prompt, name, caller),
                                evaluator.is_hidden_on(Surface::Prompt, name, caller)
                            );
                            prop_assert_eq!(
                                native.is_listed_on(Surface::Prompt, name, caller),
                                evaluator.is_listed_on(Surface::Prompt, name, caller)
                            );
                            prop_assert_eq!(
                                native.block_on(Surface::Prompt, name),
                                evaluator.block_on(Surface::Prompt, name)
                            );
                            (
                                prompt(native, name, args, &ea),
                                prompt(&evaluator, name, args, &eb),
                            )
                        };
                        prop_assert_eq!(a, b, "{} {} {}", res, name, args);
                    }
                    Ok(())
                },
            )
            .unwrap_or_else(|e| panic!("{}: {e}", ir.name));
    }
}

/// `default resource deny` / `default prompt deny` (YAML: `default: deny`
/// in `resources:` / `prompts:`): an allow-list; conditional hides per caller.
#[test]
fn a_default_deny_posture_allow_lists_resources_and_prompts() {
    for server in [
        "surfaces-allowlist",
        "surfaces-allowlist-intercept",
        "surfaces-allowlist-catalogue",
    ] {
        let p = compiled(server).expect("compiled");
        let mem = MemoryCounters::new();
        let e = env(&mem, 1_768_474_800_000);
        assert_eq!(
            read(p, "file:///srv/data/a.csv", &e).0,
            Outcome::Allowed,
            "{server}"
        );
        assert_eq!(
            read(p, "file:///srv/private/key", &e),
            (Outcome::Check, "Private files are off limits".into()),
            "{server}"
        );
        assert_eq!(
            read(p, "file:///srv/../etc/passwd", &e),
            (
                Outcome::NotPermitted,
                r#"Resource "file:///etc/passwd" is not permitted by policy"#.into()
            ),
            "{server}"
        );
        assert_eq!(
            prompt(p, "simple-prompt", "{}", &e).0,
            Outcome::Allowed,
            "{server}"
        );
        let berlin = prompt(p, "args-prompt", r#"{"city":"Berlin"}"#, &e).0;
        if server.ends_with("catalogue") {
            assert_eq!(
                berlin,
                Outcome::Check,
                "{server}: no conditions in the catalogue"
            );
        } else {
            assert_eq!(berlin, Outcome::Allowed, "{server}");
        }
        assert_eq!(
            prompt(p, "args-prompt", r#"{"city":"Paris"}"#, &e),
            (Outcome::Check, "Not that city".into()),
            "{server}"
        );
        assert_eq!(
            prompt(p, "other", "{}", &e),
            (
                Outcome::NotPermitted,
                r#"Prompt "other" is not permitted by policy"#.into()
            ),
            "{server}"
        );
        // Tools keep their own (allow) posture.
        let tool = ToolCall::new("anything", b"{}", Strictness::STRICT).unwrap();
        assert_eq!(
            p.decide(&tool, &e, &mut Ticket::default()).outcome,
            Outcome::Allowed,
            "{server}"
        );

        // Conditional hides: per caller, in lists and when requested.
        let [_, root, alice, bob] = callers();
        for (caller, admin_hidden, debug_hidden) in [
            (root.as_ref(), false, false),
            (alice.as_ref(), true, true),
            (bob.as_ref(), false, true),
        ] {
            let mut e = env(&mem, 1_768_474_800_000);
            e.principal = caller;
            let sub = caller.map(|c| c.sub().to_string());
            assert_eq!(
                p.is_hidden_on(Surface::Resource, "file:///srv/admin/keys", caller),
                admin_hidden,
                "{server} {sub:?}"
            );
            assert_eq!(
                read(p, "file:///srv/admin/keys", &e),
                if admin_hidden {
                    (
                        Outcome::Hidden,
                        r#"Resource "file:///srv/admin/keys" is hidden by policy"#.into(),
                    )
                } else {
                    (Outcome::Allowed, String::new())
                },
                "{server} {sub:?}"
            );
            assert!(!p.is_hidden_on(Surface::Resource, "file:///srv/a", caller));
            assert_eq!(
                p.is_hidden_on(Surface::Prompt, "debug-dump", caller),
                debug_hidden,
                "{server} {sub:?}"
            );
            assert_eq!(
                prompt(p, "debug-dump", "{}", &e).0,
                if debug_hidden {
                    Outcome::Hidden
                } else {
                    Outcome::Allowed
                },
                "{server} {sub:?}"
            );
            // A prompt hide is not a tool hide.
            assert!(!p.is_hidden("debug-dump", caller));
        }
    }
}

/// `portcullis translate` keeps a YAML block's `default: deny` and its
/// conditional hides: the translation decides every request of the
/// allow-list fixtures like the original, for every caller.
#[test]
fn translations_keep_surface_postures_and_conditional_hides() {
    use portcullis_compiler::Input;
    use portcullis_compiler::translate::translate;
    for file in [
        "surfaces-allowlist-intercept.yaml",
        "surfaces-allowlist-catalogue.yaml",
    ] {
        let path = format!("tests/fixtures/surfaces/{file}");
        let input = Input {
            server: "s".into(),
            path: path.clone(),
            text: std::fs::read_to_string(repo_path(&path)).unwrap(),
        };
        let set = compile(std::slice::from_ref(&input))
            .into_set()
            .unwrap_or_else(|o| panic!("{}", o.render()));
        let text = translate(&set.servers[0]).unwrap_or_else(|e| panic!("{file}: {e}"));
        for want in [
            "default resource deny",
            "default prompt deny",
            r#"hide resource "file:///srv/admin/**" when not (principal.claims.groups contains "admins")"#,
            r#"hide prompt debug-* when principal.sub != "root""#,
        ] {
            assert!(text.contains(want), "{file}: no `{want}` in\n{text}");
        }
        // Canonical already: the formatter leaves it as it is.
        let parsed =
            portcullis_compiler::syntax::dsl::parse(portcullis_compiler::source::FileId(0), &text)
                .unwrap_or_else(|d| panic!("{d:#?}\n{text}"));
        assert_eq!(
            portcullis_compiler::syntax::dsl_fmt::format(&parsed, &text),
            text,
            "{file}: fmt changed the translation"
        );
        let dsl = Input {
            server: "s".into(),
            path: "s.policy".into(),
            text: text.clone(),
        };
        let dsl_set = compile(std::slice::from_ref(&dsl))
            .into_set()
            .unwrap_or_else(|o| panic!("{}\n{text}", o.render()));
        let a = Evaluator::new(set.servers[0].clone(), &set.sources);
        let b = Evaluator::new(dsl_set.servers[0].clone(), &dsl_set.sources);
        let mem = MemoryCounters::new();
        for caller in callers().iter().map(Option::as_ref) {
            let mut e = env(&mem, 1_768_474_800_000);
            e.principal = caller;
            for uri in [
                "file:///srv/a",
                "file:///srv/admin/x",
                "file:///srv/private/k",
                "file:///etc/passwd",
                "demo://x",
            ] {
                assert_eq!(read(&a, uri, &e), read(&b, uri, &e), "{file} {uri}");
                assert_eq!(
                    a.is_hidden_on(Surface::Resource, uri, caller),
                    b.is_hidden_on(Surface::Resource, uri, caller)
                );
            }
            for (name, args) in [
                ("simple-prompt", "{}"),
                ("debug-x", "{}"),
                ("args-x", r#"{"city":"Paris"}"#),
                ("args-x", r#"{"city":"Rome"}"#),
                ("other", "{}"),
            ] {
                assert_eq!(
                    prompt(&a, name, args, &e),
                    prompt(&b, name, args, &e),
                    "{file} {name}"
                );
                assert_eq!(
                    a.is_hidden_on(Surface::Prompt, name, caller),
                    b.is_hidden_on(Surface::Prompt, name, caller)
                );
            }
        }
    }
}

/// Under `default resource deny` / `default prompt deny` a list shows only
/// what a request could be permitted for: an entry some block matches and
/// no matching block denies unconditionally (and not hidden from the
/// caller). Templates are matched by their text. Without that posture a
/// list shows everything not hidden.
#[test]
fn lists_under_default_deny_show_what_could_be_permitted() {
    let [_, root, alice, _] = callers();
    for server in [
        "surfaces-allowlist",
        "surfaces-allowlist-intercept",
        "surfaces-allowlist-catalogue",
    ] {
        let p = compiled(server).expect("compiled");
        let listed = |s, n: &str, c: Option<&Principal>| p.is_listed_on(s, n, c);
        for caller in [None, root.as_ref(), alice.as_ref()] {
            assert!(
                listed(Surface::Resource, "file:///srv/a.txt", caller),
                "{server}"
            );
            assert!(
                listed(Surface::Resource, "file:///srv/{name}", caller),
                "{server}: a template under a glob"
            );
            assert!(
                !listed(Surface::Resource, "file:///srv/private/key", caller),
                "{server}: denied always"
            );
            assert!(
                !listed(Surface::Resource, "file:///srv/private/{name}", caller),
                "{server}"
            );
            assert!(
                !listed(Surface::Resource, "file:///etc/passwd", caller),
                "{server}: listed by no block"
            );
            assert!(
                !listed(Surface::Resource, "demo://x/{id}", caller),
                "{server}"
            );
            assert!(listed(Surface::Prompt, "simple-prompt", caller), "{server}");
            assert!(!listed(Surface::Prompt, "other", caller), "{server}");
            // A tool's listing is its own.
            assert!(listed(Surface::Tool, "other", caller), "{server}");
        }
        // A conditional deny may let a request through: listed (except in
        // the catalogue, whose `args-*` rule denies every request).
        assert_eq!(
            listed(Surface::Prompt, "args-prompt", None),
            !server.ends_with("catalogue"),
            "{server}"
        );
        // Per caller: hidden from some, listed for others.
        assert!(listed(
            Surface::Resource,
            "file:///srv/admin/k",
            root.as_ref()
        ));
        assert!(!listed(
            Surface::Resource,
            "file:///srv/admin/k",
            alice.as_ref()
        ));
        assert!(listed(Surface::Prompt, "debug-dump", root.as_ref()));
        assert!(!listed(Surface::Prompt, "debug-dump", alice.as_ref()));
    }
    // The block a request matches, as the policy writes it (metrics labels).
    let p = compiled("surfaces-allowlist").unwrap();
    assert_eq!(
        p.block_on(Surface::Resource, "file:///srv/private/k"),
        Some("file:///srv/**")
    );
    assert_eq!(p.block_on(Surface::Resource, "file:///etc/passwd"), None);
    assert_eq!(p.block_on(Surface::Prompt, "args-x"), Some("args-*"));
    assert_eq!(p.block_on(Surface::Tool, "args-x"), None);
    // The default allow posture: everything not hidden is listed, denied or not.
    let p = compiled("surfaces-dsl").expect("compiled");
    assert!(p.is_listed_on(Surface::Resource, "file:///etc/passwd", None));
    assert!(p.is_listed_on(Surface::Resource, "file:///anything", None));
    assert!(!p.is_listed_on(Surface::Resource, "file:///root/x", None));
}

/// Approval rules on resources and prompts: held (nothing reserved), and
/// decided again as approved (limits then reserved), alike in generated
/// code and the evaluator.
#[test]
fn approval_rules_hold_resources_and_prompts() {
    use portcullis_core::policy::Effect;
    let inputs = load_dir(
        &repo_path("tests/fixtures/surfaces"),
        Some("tests/fixtures/surfaces"),
    )
    .unwrap();
    let set = compile(&inputs)
        .into_set()
        .unwrap_or_else(|o| panic!("{}", o.render()));
    let ir = set
        .servers
        .iter()
        .find(|s| s.name == "surfaces-approval")
        .unwrap();
    let evaluator = Evaluator::new(ir.clone(), &set.sources);
    let native = compiled("surfaces-approval").unwrap();
    for p in [native, &evaluator as &dyn Policy] {
        let mem = MemoryCounters::new();
        let e = env(&mem, 1_768_474_800_000);
        let call = ToolCall::on(
            Surface::Resource,
            "file:///srv/finance/q3.csv",
            b"{}",
            Strictness::STRICT,
        )
        .unwrap();
        let mut ticket = Ticket::EMPTY;
        let d = p.decide(&call, &e, &mut ticket);
        assert_eq!(d.effect(), Effect::Approve);
        assert_eq!(d.message, "Finance files need a human");
        assert!(ticket.is_empty(), "held: nothing reserved");
        let spec = p.meta().approval(d.rule.unwrap()).unwrap();
        assert!(spec.channels.operator && !spec.channels.client);
        assert_eq!(spec.timeout_ms, 3_600_000);
        // Approved: decided again, the limit counts.
        for _ in 0..2 {
            let mut ticket = Ticket::EMPTY;
            let d = p.decide_approved(&call, &e, &mut ticket);
            assert_eq!(d.outcome, Outcome::Allowed);
            mem.commit(&ticket);
        }
        assert_eq!(
            p.decide_approved(&call, &e, &mut Ticket::default()).outcome,
            Outcome::Limit
        );
        // A full limit refuses at once: nobody is asked about it.
        assert_eq!(
            p.decide(&call, &e, &mut Ticket::default()).outcome,
            Outcome::Limit
        );
        // The deny rule comes first.
        let intern = who(r#"{"iss":"https://idp.example","sub":"intern"}"#);
        let mut ie = env(&mem, 1_768_474_800_000);
        ie.principal = Some(&intern);
        assert_eq!(
            p.decide(&call, &ie, &mut Ticket::default()).outcome,
            Outcome::Check
        );
        // Prompts by arguments.
        let prod = ToolCall::on(
            Surface::Prompt,
            "deploy_web",
            br#"{"env":"prod"}"#,
            Strictness::STRICT,
        )
        .unwrap();
        assert_eq!(
            p.decide(&prod, &e, &mut Ticket::default()).effect(),
            Effect::Approve
        );
        assert_eq!(
            p.decide_approved(&prod, &e, &mut Ticket::default()).outcome,
            Outcome::Allowed
        );
        let dev = ToolCall::on(
            Surface::Prompt,
            "deploy_web",
            br#"{"env":"dev"}"#,
            Strictness::STRICT,
        )
        .unwrap();
        assert_eq!(
            p.decide(&dev, &e, &mut Ticket::default()).outcome,
            Outcome::Allowed
        );
    }
}
