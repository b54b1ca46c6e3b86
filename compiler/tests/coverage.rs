//! Test coverage is exact per condition, across a policy and the fragments
//! it includes (their conditions may sit at the same byte offsets).

use portcullis_compiler::Input;
use portcullis_compiler::policy_tests::{TestSource, run_suite};

#[test]
fn a_fragment_condition_at_the_main_files_offsets_is_covered_on_its_own() {
    let main = "server srv {\n  include \"frag.policy\"\n  tool a {\n    deny \"A\" when args.q == 1\n  }\n}\n";
    let target = main.find("args.q").unwrap();
    let body = "tool b {\n  deny \"B\" when args.z == 9\n}\n";
    let in_body = body.find("args.z").unwrap();
    // Pad the fragment with a comment so `args.z` starts where `args.q` does.
    let pad = target - in_body - "// \n".len();
    let frag = format!("// {}\n{body}", "x".repeat(pad));
    assert_eq!(frag.find("args.z"), Some(target));
    let inputs = [
        Input {
            server: "srv".into(),
            path: "srv.policy".into(),
            text: main.into(),
        },
        Input {
            server: "frag".into(),
            path: "frag.policy".into(),
            text: frag,
        },
    ];
    let set = portcullis_compiler::compile(&inputs)
        .into_set()
        .unwrap_or_else(|o| panic!("{}", o.render()));
    let tests = [TestSource {
        path: "srv.test.yaml".into(),
        text:
            "cases:\n  - name: a only\n    calls:\n      - {tool: a, args: {q: 2}, expect: allow}\n"
                .into(),
    }];
    let report = run_suite(&set, &tests, &|_| None, true);
    assert!(report.ok(), "{}", report.text);
    let c = report.coverage.expect("coverage");
    // Rules A and B, conditions q and z: A and its condition were evaluated.
    assert_eq!((c.covered, c.total), (2, 4), "{:#?}", c.uncovered);
    assert!(
        c.uncovered
            .iter()
            .any(|l| l.starts_with("frag.policy:3:3  rule \"B\"")),
        "{:#?}",
        c.uncovered
    );
    assert!(
        c.uncovered
            .iter()
            .any(|l| l.contains("condition `args.z == 9` of rule \"B\"")),
        "{:#?}",
        c.uncovered
    );
}
