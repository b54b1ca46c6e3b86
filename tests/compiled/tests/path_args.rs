//! `Policy::path_args`: the arguments `path()` conditions read, per tool,
//! which the proxy resolves through symlinks when it started the server
//! itself (docs/surfaces.md, "Symlinks"). Generated code and the reference
//! evaluator name the same ones: exact names, glob blocks, nested
//! arguments, approval conditions and `tool *` rules.

mod support;

use portcullis_compiled::compiled;
use portcullis_compiler::compile;
use portcullis_compiler::eval::Evaluator;
use portcullis_core::policy::Policy;

fn named(p: &dyn Policy, tool: &str) -> Vec<String> {
    let mut v: Vec<String> = Vec::new();
    p.path_args(tool, &mut |a| v.push(a.join(".")));
    v.sort();
    v.dedup();
    v
}

#[test]
fn generated_code_and_evaluator_name_the_same_path_arguments() {
    let set = compile(&support::inputs())
        .into_set()
        .unwrap_or_else(|o| panic!("{}", o.render()));
    let cases: &[(&str, &str, &[&str])] = &[
        ("paths-dsl", "read_file", &["path"]),
        ("paths-dsl", "write_file", &["path"]),
        ("paths-dsl", "move_file", &["destination", "source"]),
        ("paths-dsl", "list_directory", &[]),
        ("paths-intercept", "read_file", &["path"]),
        ("paths-globs", "fs_read", &["path", "target.path"]),
        ("paths-globs", "fs_copy", &["path", "source", "target.path"]),
        ("paths-globs", "archive_keys", &["path", "source"]),
        ("paths-globs", "other", &["path"]),
        // A policy without path() conditions names none.
        ("fusionauth", "create_user", &[]),
    ];
    for (server, tool, want) in cases {
        let ir = set
            .servers
            .iter()
            .find(|s| s.name == *server)
            .unwrap_or_else(|| panic!("{server} not in the set"));
        let native = compiled(server).unwrap_or_else(|| panic!("{server} not compiled"));
        let evaluator = Evaluator::new(ir.clone(), &set.sources);
        let want: Vec<String> = want.iter().map(|s| s.to_string()).collect();
        assert_eq!(named(native, tool), want, "generated {server} {tool}");
        assert_eq!(named(&evaluator, tool), want, "evaluator {server} {tool}");
    }
}
