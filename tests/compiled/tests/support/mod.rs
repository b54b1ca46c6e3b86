//! Random tool calls shaped by a policy (its tools, argument paths and
//! constants), shared by the differential tests.
#![allow(dead_code)]

use std::sync::Arc;

use portcullis_compiled::repo_path;
use portcullis_compiler::ir::{
    Amount, ArgPath, Const, NamePattern, Operand, Partition, PrincipalField, Root, ServerPolicy,
};
use portcullis_compiler::source::FileId;
use portcullis_compiler::syntax::yaml::{self, NodeValue};
use portcullis_compiler::{Input, compile, load_dir};
use proptest::prelude::*;

/// A JSON value to serialise (keys kept raw so escapes and duplicates can be written).
#[derive(Debug, Clone)]
pub enum J {
    Null,
    Bool(bool),
    Num(String),
    Str(String, bool),
    Arr(Vec<J>),
    Obj(Vec<(String, J)>),
}

fn escape(s: &str, unicode: bool) -> String {
    let mut out = String::new();
    for c in s.chars() {
        match c {
            '"' => out.push_str("\\\""),
            '\\' => out.push_str("\\\\"),
            '\n' => out.push_str("\\n"),
            c if (c as u32) < 0x20 => out.push_str(&format!("\\u{:04x}", c as u32)),
            c if unicode && c.is_ascii_alphabetic() => {
                out.push_str(&format!("\\u{:04x}", c as u32))
            }
            c => out.push(c),
        }
    }
    out
}

impl J {
    fn write(&self, out: &mut String) {
        match self {
            J::Null => out.push_str("null"),
            J::Bool(b) => out.push_str(if *b { "true" } else { "false" }),
            J::Num(n) => out.push_str(n),
            J::Str(s, u) => {
                out.push('"');
                out.push_str(&escape(s, *u));
                out.push('"');
            }
            J::Arr(items) => {
                out.push('[');
                for (i, v) in items.iter().enumerate() {
                    if i > 0 {
                        out.push(',');
                    }
                    v.write(out);
                }
                out.push(']');
            }
            J::Obj(members) => {
                out.push('{');
                for (i, (k, v)) in members.iter().enumerate() {
                    if i > 0 {
                        out.push(',');
                    }
                    out.push('"');
                    out.push_str(k);
                    out.push_str("\":");
                    v.write(out);
                }
                out.push('}');
            }
        }
    }

    /// Sets `value` at `path` replacing what was there (no repeated keys:
    /// token claims are read strictly).
    fn replace(&mut self, path: &[String], value: J) {
        let J::Obj(members) = self else { return };
        let Some((first, rest)) = path.split_first() else {
            return;
        };
        let key = escape(first, false);
        let slot = match members.iter().position(|(k, _)| *k == key) {
            Some(i) => &mut members[i].1,
            None => {
                members.push((key, J::Null));
                &mut members.last_mut().expect("pushed").1
            }
        };
        if rest.is_empty() {
            *slot = value;
        } else {
            if !matches!(slot, J::Obj(_)) {
                *slot = J::Obj(Vec::new());
            }
            slot.replace(rest, value);
        }
    }

    /// Sets `value` at `path`, creating objects on the way (replacing non-objects).
    fn set(&mut self, path: &[String], value: J) {
        let J::Obj(members) = self else { return };
        let Some((first, rest)) = path.split_first() else {
            return;
        };
        let key = escape(first, false);
        if rest.is_empty() {
            members.push((key, value));
            return;
        }
        if let Some((_, child)) = members.iter_mut().rev().find(|(k, _)| *k == key) {
            if !matches!(child, J::Obj(_)) {
                *child = J::Obj(Vec::new());
            }
            child.set(rest, value);
        } else {
            let mut child = J::Obj(Vec::new());
            child.set(rest, value);
            members.push((key, child));
        }
    }
}

/// What random calls for one policy are made of.
pub struct Shape {
    pub tools: Vec<String>,
    pub paths: Vec<Vec<String>>,
    pub constants: Vec<J>,
    /// Claim paths (`principal.claims.*`) the policy reads.
    pub claims: Vec<Vec<String>>,
}

pub fn shape(p: &ServerPolicy) -> Shape {
    let mut tools: Vec<String> = vec![
        "unknown_tool".into(),
        "*".into(),
        String::new(),
        "Delete".into(),
    ];
    for t in &p.tools {
        for pat in &t.patterns {
            tools.push(match pat {
                NamePattern::Exact(n) => n.clone(),
                NamePattern::Glob(g) | NamePattern::UriGlob(g) => g.replace('*', "x"),
                NamePattern::All => "any".into(),
                // Tool blocks have no regex patterns (resource blocks do).
                NamePattern::Regex { source, .. } => source.clone(),
            });
        }
    }
    for h in &p.hidden {
        tools.push(h.pattern.text().replace('*', "y"));
    }
    let mut paths: Vec<Vec<String>> = Vec::new();
    let mut claims: Vec<Vec<String>> = Vec::new();
    let mut constants = vec![J::Num("0".into())];
    let mut add_path = |a: &ArgPath| {
        let list = match a.root {
            Root::Args => &mut paths,
            Root::Principal(PrincipalField::Claims) => &mut claims,
            Root::Principal(_) => return,
        };
        if !list.contains(&a.segments) {
            list.push(a.segments.clone());
        }
    };
    let hide_conditions = p.hidden.iter().filter_map(|h| h.when.as_ref());
    let rule_conditions = p.rules.iter().flat_map(|r| {
        r.check
            .iter()
            .map(|c| &c.deny_when)
            .chain(r.approve.iter().map(|a| &a.when))
    });
    for e in hide_conditions.chain(rule_conditions) {
        for t in e.tests() {
            for o in t.operands() {
                if let Operand::Const(Const::Str(s)) = o {
                    constants.push(J::Str(s.clone(), false));
                }
            }
        }
    }
    for h in &p.hidden {
        for t in h.when.iter().flat_map(|e| e.tests()) {
            for o in t.operands() {
                if let Operand::Arg(a) | Operand::Len(a) = o {
                    add_path(a);
                }
            }
        }
    }
    for r in &p.rules {
        // The tests of checks and of approval conditions.
        let conditions = r
            .check
            .iter()
            .map(|c| &c.deny_when)
            .chain(r.approve.iter().map(|a| &a.when));
        for e in conditions {
            for t in e.tests() {
                for o in t.operands() {
                    match o {
                        Operand::Arg(a) | Operand::Len(a) => add_path(a),
                        Operand::Const(Const::Num(n)) => constants.push(J::Num(n.text.clone())),
                        Operand::Const(Const::Str(s)) => constants.push(J::Str(s.clone(), false)),
                        _ => {}
                    }
                }
                // path(): spellings of the pattern a server resolves alike
                // (`..`, `//`, `./`, a trailing `/`), and ones that cannot be
                // normalised (relative, above the root, a control character).
                if let portcullis_compiler::ir::TestKind::Path { pattern, .. } = &t.kind {
                    let plain = pattern.replace("**", "a/b").replace('*', "c");
                    let dir = plain.rsplit_once('/').map_or("", |(d, _)| d).to_string();
                    for s in [
                        plain.clone(),
                        format!("{plain}/"),
                        format!("/x/..{plain}"),
                        format!("/{plain}"),
                        plain.replacen('/', "/./", 2),
                        format!("{dir}/../{}", plain.trim_start_matches('/')),
                        plain.trim_start_matches('/').to_string(),
                        format!("/..{plain}"),
                        format!("{plain}\u{0}"),
                        format!("{plain}x"),
                        dir,
                    ] {
                        // Also with letters JSON-escaped (`\u0073`), which decode alike.
                        constants.push(J::Str(s.clone(), true));
                        constants.push(J::Str(s, false));
                    }
                }
                if let portcullis_compiler::ir::TestKind::In { list, .. } = &t.kind {
                    for c in list {
                        match c {
                            Const::Num(n) => constants.push(J::Num(n.text.clone())),
                            Const::Str(s) => constants.push(J::Str(s.clone(), false)),
                            _ => {}
                        }
                    }
                }
            }
        }
        if let Some(l) = &r.limit {
            if let Amount::Arg { path, .. } = &l.amount {
                add_path(path);
            }
            if let Partition::Arg(path) = &p.counter(l.counter).partition {
                add_path(path);
            }
            constants.push(J::Num(l.max.to_string()));
            constants.push(J::Num((l.max + 1).to_string()));
        }
        // A spend window per argument or per claim: random calls and
        // callers carry it (or lack it) too.
        if let Some((c, _)) = r.spend.as_ref().and_then(|s| s.window)
            && let Partition::Arg(path) = &p.counter(c).partition
        {
            add_path(path);
        }
    }
    if paths.is_empty() {
        paths.push(vec!["x".into()]);
    }
    Shape {
        tools,
        paths,
        constants,
        claims,
    }
}

fn value(constants: Arc<Vec<J>>) -> impl Strategy<Value = J> {
    let pick = (0..constants.len()).prop_map(move |i| constants[i].clone());
    let leaf = prop_oneof![
        Just(J::Null),
        any::<bool>().prop_map(J::Bool),
        (-1000i64..1000).prop_map(|n| J::Num(n.to_string())),
        prop::sample::select(vec![
            "1e400",
            "-0",
            "0.5",
            "2.9",
            "1e19",
            "9007199254740993",
            "-100",
            "1.0",
            "5e-1",
            "100000000000000000000000"
        ])
        .prop_map(|s| J::Num(s.to_string())),
        pick.clone(),
        pick,
        ("[a-zA-Z0-9 _/@.\\n-]{0,10}", any::<bool>()).prop_map(|(s, u)| J::Str(s, u)),
        Just(J::Str("é\u{1F600}\u{1}".into(), false)),
    ];
    leaf.prop_recursive(2, 10, 3, |inner| {
        prop_oneof![
            prop::collection::vec(inner.clone(), 0..3).prop_map(J::Arr),
            prop::collection::vec(("[a-c]{1,2}", inner), 0..3).prop_map(J::Obj),
        ]
    })
}

#[derive(Debug, Clone)]
pub struct Call {
    pub tool: usize,
    pub args: String,
    /// The caller's token claims (JSON), or None for an unknown caller.
    pub claims: Option<String>,
    pub advance_ms: i64,
    pub upstream: u8,
}

pub fn calls(shape: &Shape) -> impl Strategy<Value = Vec<Call>> {
    let constants = Arc::new(shape.constants.clone());
    let paths = shape.paths.clone();
    let npaths = paths.len();
    let args = (
        prop::collection::vec(
            (0..npaths, value(constants.clone()), any::<bool>(), 0u8..8),
            0..5,
        ),
        any::<u8>(),
    )
        .prop_map(move |(sets, noise)| {
            let mut obj = J::Obj(Vec::new());
            for (i, v, escaped, case) in sets {
                let mut path: Vec<String> =
                    paths[i].iter().map(|s| case_variant(s, case)).collect();
                if escaped && noise % 3 == 0 {
                    // The top-level key with its letters \u-escaped: the same member to every parser.
                    let mut wrapped = J::Obj(Vec::new());
                    wrapped.set(&path, v);
                    if let (J::Obj(mut m), J::Obj(members)) = (wrapped, &mut obj)
                        && let Some((_, val)) = m.pop()
                    {
                        members.push((escape(&path[0], true), val));
                    }
                    continue;
                }
                if noise % 7 == 0 {
                    path.push("deeper".into());
                }
                obj.set(&path, v);
            }
            if noise % 5 == 0
                && let J::Obj(m) = &mut obj
            {
                m.push(("noise".into(), J::Arr(vec![J::Null])));
            }
            let mut s = String::new();
            obj.write(&mut s);
            s
        });
    let claim_paths = shape.claims.clone();
    let strings: Vec<String> = shape
        .constants
        .iter()
        .filter_map(|c| match c {
            J::Str(s, _) => Some(s.clone()),
            _ => None,
        })
        .chain(["x".to_string()])
        .collect();
    let nclaims = claim_paths.len().max(1);
    // Each claim the policy reads is present most of the time, usually one
    // of the policy's own constants (alone, or in a list as group claims
    // are), so the random callers reach the rules that test them.
    let pick = {
        let constants = constants.clone();
        (0..constants.len()).prop_map(move |i| constants[i].clone())
    };
    let claim_value = prop_oneof![
        3 => pick.clone(),
        2 => pick.prop_map(|c| J::Arr(vec![c, J::Str("other".into(), false)])),
        1 => value(constants.clone()),
    ];
    let principal = prop::option::weighted(
        0.8,
        (
            0usize..3,
            prop::collection::vec(prop::option::weighted(0.75, claim_value), nclaims),
            prop::collection::vec(prop::sample::select(strings.clone()), 0..3),
            prop::sample::select(strings),
        ),
    )
    .prop_map(move |p| {
        let (sub, values, scopes, iss) = p?;
        let mut obj = J::Obj(Vec::new());
        for (path, v) in claim_paths.iter().zip(values) {
            if let Some(v) = v {
                obj.replace(path, v);
            }
        }
        obj.replace(
            &["sub".to_string()],
            J::Str(["alice", "bob", "carol"][sub].into(), false),
        );
        obj.replace(&["iss".to_string()], J::Str(iss, false));
        obj.replace(&["scope".to_string()], J::Str(scopes.join(" "), false));
        let mut s = String::new();
        obj.write(&mut s);
        Some(s)
    });
    prop::collection::vec(
        (0..shape.tools.len(), args, principal, 0i64..120_000, 0u8..4).prop_map(
            |(tool, args, claims, advance_ms, upstream)| Call {
                tool,
                args,
                claims,
                advance_ms,
                upstream,
            },
        ),
        1..10,
    )
}

/// `key` as a server matching keys in any letter case would still read it
/// (Go's encoding/json): unchanged, upper case, capitalised, or with `s` and
/// `k` written as `ſ` (U+017F) and the Kelvin sign (U+212A).
pub fn case_variant(key: &str, case: u8) -> String {
    match case {
        4 => key.to_uppercase(),
        5 => {
            let mut c = key.chars();
            c.next()
                .map(|f| f.to_uppercase().chain(c).collect())
                .unwrap_or_default()
        }
        6 => key
            .chars()
            .map(|c| match c {
                's' => '\u{17f}',
                'k' => '\u{212a}',
                c => c,
            })
            .collect(),
        7 => key
            .chars()
            .enumerate()
            .map(|(i, c)| {
                if i % 2 == 1 {
                    c.to_ascii_uppercase()
                } else {
                    c
                }
            })
            .collect(),
        _ => key.to_string(),
    }
}

/// The same inputs the crate's build script compiles.
pub fn inputs() -> Vec<Input> {
    let src =
        std::fs::read_to_string(repo_path("tests/conformance/intercept-conformance.yaml")).unwrap();
    let root = yaml::parse(FileId(0), &src).unwrap().unwrap();
    let NodeValue::Seq(cases) = &root.get("cases").unwrap().value else {
        panic!()
    };
    let mut inputs: Vec<Input> = cases
        .iter()
        .map(|c| {
            let id = c.get("id").unwrap().scalar().unwrap().text.clone();
            Input {
                path: format!("conformance/{id}.yaml"),
                text: c.get("policy").unwrap().scalar().unwrap().text.clone(),
                server: id,
            }
        })
        .filter(|i| compile(std::slice::from_ref(i)).is_ok())
        .collect();
    inputs.extend(load_dir(&repo_path("tests/corpus/intercept/servers"), Some("corpus")).unwrap());
    inputs.extend(load_dir(&repo_path("benches/policies"), Some("benches/policies")).unwrap());
    inputs.extend(
        load_dir(
            &repo_path("tests/fixtures/catalogue"),
            Some("tests/fixtures/catalogue"),
        )
        .unwrap(),
    );
    inputs.extend(
        load_dir(
            &repo_path("tests/fixtures/argcase"),
            Some("tests/fixtures/argcase"),
        )
        .unwrap(),
    );
    // Approval rules in every dialect.
    inputs.extend(
        load_dir(
            &repo_path("tests/fixtures/approval"),
            Some("tests/fixtures/approval"),
        )
        .unwrap(),
    );
    inputs.extend(
        load_dir(
            &repo_path("tests/fixtures/principal"),
            Some("tests/fixtures/principal"),
        )
        .unwrap(),
    );
    inputs.extend(
        load_dir(
            &repo_path("tests/fixtures/paths"),
            Some("tests/fixtures/paths"),
        )
        .unwrap(),
    );
    inputs
}

/// The budget fixtures (MPP), compiled by the build script too. Not in
/// [`inputs`]: Intercept's currency-less `spend:` has no policy-language
/// form, so `translate` refuses them.
pub fn spend_inputs() -> Vec<Input> {
    load_dir(
        &repo_path("tests/fixtures/spend"),
        Some("tests/fixtures/spend"),
    )
    .unwrap()
}

/// Two engines' budgets for one call agree field by field; counter specs
/// by key and window (the engines hold them in different statics).
pub fn same_budgets(
    a: &portcullis_core::spend::Budgets,
    b: &portcullis_core::spend::Budgets,
) -> bool {
    a.len() == b.len()
        && a.iter().zip(b.iter()).all(|(x, y)| {
            x.rule == y.rule
                && x.currency == y.currency
                && x.per_call == y.per_call
                && x.message == y.message
                && x.no_partition == y.no_partition
                && match (x.window, y.window) {
                    (None, None) => true,
                    (Some(v), Some(w)) => {
                        v.max == w.max
                            && v.counter.partition == w.counter.partition
                            && v.counter.spec.key == w.counter.spec.key
                            && v.counter.spec.window == w.counter.spec.window
                            && v.counter.spec.scope == w.counter.spec.scope
                    }
                    _ => false,
                }
        })
}
