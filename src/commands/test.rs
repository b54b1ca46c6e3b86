//! `portcullis test`: policy tests as data, against the compiled policies
//! and the reference evaluator, with coverage.

use crate::cli::TestArgs;

/// Runs the tests; 0 when all pass (and coverage is high enough), 1 otherwise.
#[cfg(feature = "dynamic")]
pub fn run(args: &TestArgs) -> i32 {
    use portcullis_compiler::policy_tests::{SuiteReport, run_suite};

    use crate::embedded;

    let with_coverage = args.coverage || args.min_coverage.is_some();
    let mut report = SuiteReport::default();
    let mut files = 0;
    if args.paths.is_empty() {
        if embedded::TEST_FILES.is_empty() {
            eprintln!(
                "error: no policy tests in this build (env {})\n  = help: write `<server>.test.yaml` beside the policy and rebuild, or name test files: portcullis test DIR|FILE...",
                embedded::ENV
            );
            return 1;
        }
        let set = match embedded::source_set() {
            Ok(set) => set,
            Err(e) => {
                eprintln!("error: the embedded policy sources do not compile again:\n{e}");
                return 1;
            }
        };
        let tests: Vec<_> = embedded::TEST_FILES
            .iter()
            .map(
                |(path, text)| portcullis_compiler::policy_tests::TestSource {
                    path: path.to_string(),
                    text: text.to_string(),
                },
            )
            .collect();
        files = tests.len();
        report = run_suite(&set, &tests, &embedded::policy, with_coverage);
    } else {
        for group in match on_disk::groups(&args.paths) {
            Ok(g) => g,
            Err(e) => {
                eprintln!("error: {e}");
                return 1;
            }
        } {
            files += group.tests.len();
            let output = portcullis_compiler::compile(&group.inputs);
            let set = match output.into_set() {
                Ok(set) => set,
                Err(o) => {
                    eprintln!("{}", o.render());
                    report.errors += 1;
                    continue;
                }
            };
            report.merge(run_suite(
                &set,
                &group.tests,
                &embedded::policy,
                with_coverage,
            ));
        }
    }
    if files == 0 {
        eprintln!(
            "error: no test files in {}\n  = help: a test file is named `<server>.test.yaml` and sits beside the policy",
            args.paths
                .iter()
                .map(|p| p.display().to_string())
                .collect::<Vec<_>>()
                .join(", ")
        );
        return 1;
    }
    print!("{}", report.text);
    let mut code = i32::from(!report.ok());
    if let Some(c) = &report.coverage {
        println!();
        println!(
            "coverage: {} of {} rules and conditions evaluated ({:.1}%)",
            c.covered,
            c.total,
            c.percent()
        );
        for line in &c.uncovered {
            println!("  not covered  {line}");
        }
        if let Some(min) = args.min_coverage
            && c.percent() < min
        {
            println!("coverage {:.1}% is below the minimum {min}%", c.percent());
            code = 1;
        }
    }
    println!();
    println!(
        "test result: {}. {} passed; {} failed; {} file(s){}",
        if code == 0 { "ok" } else { "FAILED" },
        report.passed,
        report.failed,
        files,
        if report.errors > 0 {
            format!("; {} could not be read", report.errors)
        } else {
            String::new()
        }
    );
    code
}

/// Without the `dynamic` feature this binary links no test runner.
#[cfg(not(feature = "dynamic"))]
pub fn run(_: &TestArgs) -> i32 {
    eprintln!(
        "error: this is a hardened build: it cannot run policy tests\n  = help: run them with a development build, or at build time with PORTCULLIS_TEST_ON_BUILD=1"
    );
    2
}

/// Test files named on the command line, grouped with their policies.
#[cfg(feature = "dynamic")]
mod on_disk {
    use std::collections::BTreeMap;
    use std::path::{Path, PathBuf};

    use portcullis_compiler::Input;
    use portcullis_compiler::policy_tests::{TestSource, server_of};

    /// The test files of one directory and the policies they need.
    pub struct Group {
        pub inputs: Vec<Input>,
        pub tests: Vec<TestSource>,
    }

    fn is_test(p: &Path) -> bool {
        p.file_name()
            .and_then(|n| n.to_str())
            .is_some_and(portcullis_compiler::is_test_file)
    }

    /// A directory: every policy and test file in it. A file: that test
    /// file and the policy beside it (`<server>.yaml`, `.yml` or `.policy`).
    pub fn groups(paths: &[PathBuf]) -> Result<Vec<Group>, String> {
        // dir -> (policy files, test files)
        let mut dirs: BTreeMap<PathBuf, (Vec<PathBuf>, Vec<PathBuf>)> = BTreeMap::new();
        for p in paths {
            if p.is_dir() {
                let entry = dirs.entry(p.clone()).or_default();
                let mut names: Vec<PathBuf> = std::fs::read_dir(p)
                    .map_err(|e| format!("reading {}: {e}", p.display()))?
                    .filter_map(|e| e.ok().map(|e| e.path()))
                    .filter(|f| f.is_file())
                    .collect();
                names.sort();
                for f in names {
                    if is_test(&f) {
                        entry.1.push(f);
                    } else if portcullis_compiler::is_policy_path(&f) {
                        entry.0.push(f);
                    }
                }
            } else if p.is_file() {
                if !is_test(p) {
                    return Err(format!(
                        "{} is not a test file\n  = help: test files are named `<server>.test.yaml`",
                        p.display()
                    ));
                }
                let dir = p.parent().map_or_else(PathBuf::new, Path::to_path_buf);
                let server = server_of(p.to_str().unwrap_or_default()).to_string();
                let policy = portcullis_compiler::POLICY_EXTENSIONS
                    .iter()
                    .map(|ext| dir.join(format!("{server}.{ext}")))
                    .find(|f| f.is_file())
                    .ok_or_else(|| {
                        format!(
                            "no policy beside {}\n  = help: a test file `{server}.test.yaml` tests `{server}.yaml` or `{server}.policy` in the same directory",
                            p.display()
                        )
                    })?;
                let entry = dirs.entry(dir).or_default();
                entry.0.push(policy);
                entry.1.push(p.clone());
            } else {
                return Err(format!("{}: no such file or directory", p.display()));
            }
        }
        let mut groups = Vec::new();
        for (_, (mut policies, mut tests)) in dirs {
            policies.sort();
            policies.dedup();
            tests.sort();
            tests.dedup();
            let mut inputs: Vec<Input> = Vec::new();
            for p in &policies {
                for i in portcullis_compiler::load_file_with_includes(p)
                    .map_err(|e| format!("reading {}: {e}", p.display()))?
                {
                    if !inputs.iter().any(|x| x.path == i.path) {
                        inputs.push(i);
                    }
                }
            }
            let tests = tests
                .iter()
                .map(|t| {
                    Ok(TestSource {
                        path: t.display().to_string(),
                        text: std::fs::read_to_string(t)
                            .map_err(|e| format!("reading {}: {e}", t.display()))?,
                    })
                })
                .collect::<Result<Vec<_>, String>>()?;
            groups.push(Group { inputs, tests });
        }
        Ok(groups)
    }
}
