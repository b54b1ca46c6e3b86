//! Properties of the policy language's parser and formatter, on random
//! policies: the formatted text means the same as the AST it came from,
//! formatting is idempotent and keeps comments and meaning under layout
//! noise; and the parser never panics on any input (a fuzz run).

use portcullis_compiler::ir::{Calendar, CmpOp, Number, ServerPolicy};
use portcullis_compiler::lower::{PolicyBuilder, dsl as lower_dsl};
use portcullis_compiler::source::{FileId, Span};
use portcullis_compiler::syntax::dsl::{
    self, Amount, By, Expr, File, Item, Limit, Literal, Operand, Path, Pattern, PolicyRule,
    ServerHead, Spanned, Test, TestKind, WindowSpec,
};
use portcullis_compiler::syntax::dsl_fmt::format;
use portcullis_compiler::{Input, compile, ir::Dialect};
use proptest::prelude::*;

fn sp<T>(value: T) -> Spanned<T> {
    Spanned {
        value,
        span: Span::default(),
    }
}

fn text() -> impl Strategy<Value = String> {
    prop_oneof!["[a-zA-Z0-9 $.,!?_-]{0,16}", "[a-z\"\\\\\n\t/{}é😀]{0,8}"]
}

fn tool_name() -> impl Strategy<Value = String> {
    prop_oneof![
        "[a-z][a-z0-9_]{0,8}",
        "[a-z]{1,4}\\*",
        "[a-z]{1,3}\\.[a-z]{1,3}",
        "[A-Z][a-z -]{0,6}"
    ]
}

fn path() -> impl Strategy<Value = Path> {
    (
        any::<bool>(),
        prop::collection::vec(prop_oneof!["[a-z][a-z0-9_]{0,5}", "[a-z ]{0,4}"], 1..3),
    )
        .prop_map(|(principal, segments)| Path {
            principal,
            segments,
            span: Span::default(),
        })
}

fn literal() -> impl Strategy<Value = Literal> {
    prop_oneof![
        Just(Literal::Null),
        any::<bool>().prop_map(Literal::Bool),
        (-1_000_000i64..1_000_000)
            .prop_map(|n| Literal::Num(Number::parse(&n.to_string()).unwrap())),
        Just(Literal::Num(Number::parse("2.5e-3").unwrap())),
        text().prop_map(Literal::Str),
    ]
}

fn operand() -> impl Strategy<Value = Operand> {
    prop_oneof![
        3 => path().prop_map(Operand::Path),
        2 => literal().prop_map(|l| Operand::Literal(l, Span::default())),
        1 => path().prop_map(Operand::Len),
    ]
}

fn test() -> impl Strategy<Value = Expr> {
    let cmp = prop_oneof![
        Just(CmpOp::Eq),
        Just(CmpOp::Ne),
        Just(CmpOp::Lt),
        Just(CmpOp::Le),
        Just(CmpOp::Gt),
        Just(CmpOp::Ge)
    ];
    let kind = prop_oneof![
        (path(), cmp, operand()).prop_map(|(p, c, o)| TestKind::Cmp(Operand::Path(p), c, o)),
        (
            path(),
            prop::collection::vec(literal(), 0..3),
            any::<bool>()
        )
            .prop_map(|(p, l, n)| TestKind::In(Operand::Path(p), l, n)),
        (
            path(),
            prop_oneof![
                Just(("^a.b$", "")),
                Just(("fraud|x", "i")),
                Just(("a/b", "ms"))
            ]
        )
            .prop_map(|(p, (r, f))| TestKind::Matches(
                Operand::Path(p),
                sp((r.to_string(), f.to_string()))
            )),
        (path(), text()).prop_map(|(p, t)| TestKind::Contains(
            Operand::Path(p),
            Operand::Literal(Literal::Str(t), Span::default())
        )),
        (path(), text()).prop_map(|(p, t)| TestKind::StartsWith(
            Operand::Path(p),
            Operand::Literal(Literal::Str(t), Span::default())
        )),
        (path(), path()).prop_map(|(a, b)| TestKind::EndsWith(Operand::Path(a), Operand::Path(b))),
        path().prop_map(TestKind::Exists),
    ];
    kind.prop_map(|kind| {
        Expr::Test(Test {
            kind,
            span: Span::default(),
        })
    })
}

fn expr() -> impl Strategy<Value = Expr> {
    prop_oneof![4 => test(), 1 => any::<bool>().prop_map(Expr::Bool)].prop_recursive(
        3,
        12,
        3,
        |inner| {
            prop_oneof![
                prop::collection::vec(inner.clone(), 2..4).prop_map(Expr::Or),
                prop::collection::vec(inner.clone(), 2..4).prop_map(Expr::And),
                inner.prop_map(|e| Expr::Not(Box::new(e))),
            ]
        },
    )
}

fn window() -> impl Strategy<Value = WindowSpec> {
    prop_oneof![
        Just(WindowSpec::Calendar(Calendar::Minute)),
        Just(WindowSpec::Calendar(Calendar::Day)),
        (1u64..100_000).prop_map(WindowSpec::Sliding),
    ]
}

fn rule() -> impl Strategy<Value = PolicyRule> {
    let message = || text().prop_map(sp);
    prop_oneof![
        (message(), prop::option::of((any::<bool>(), expr()))).prop_map(|(message, condition)| {
            PolicyRule::Deny {
                message,
                condition,
                span: Span::default(),
            }
        }),
        (expr(), message()).prop_map(|(condition, message)| PolicyRule::Allow {
            condition,
            message,
            span: Span::default()
        }),
        (
            prop_oneof![
                Just(Amount::One),
                path().prop_map(Amount::Path),
                (1u64..9).prop_map(|k| Amount::Const(sp(k)))
            ],
            0u64..1_000_000,
            window(),
            prop_oneof![
                Just(None),
                Just(Some(By::Session)),
                path().prop_map(|p| Some(By::Path(p)))
            ],
            prop::option::of(message()),
        )
            .prop_map(|(amount, max, window, by, message)| {
                let sum = matches!(amount, Amount::Path(_));
                PolicyRule::Limit(Limit {
                    amount,
                    max: sp(max),
                    window: sp(window),
                    by,
                    name: None,
                    message,
                    missing: sum.then(|| sp("missing!".to_string())),
                    invalid: None,
                    span: Span::default(),
                })
            }),
    ]
}

fn file() -> impl Strategy<Value = File> {
    let block = (
        prop::collection::vec(tool_name(), 1..3),
        prop::collection::vec(rule(), 0..4),
    )
        .prop_map(|(names, rules)| {
            Item::Tool(dsl::ToolBlock {
                patterns: names
                    .into_iter()
                    .map(|text| Pattern {
                        text,
                        quoted: false,
                        span: Span::default(),
                    })
                    .collect(),
                rules,
                span: Span::default(),
            })
        });
    let items = (
        prop::option::of(any::<bool>()),
        prop::collection::vec(tool_name(), 0..3),
        prop::collection::vec(block, 0..4),
        prop::collection::vec(rule(), 0..3),
    )
        .prop_map(|(default, hide, mut blocks, wildcard)| {
            let mut items = Vec::new();
            if let Some(d) = default {
                items.push(Item::Default(sp(if d {
                    dsl::Posture::Deny
                } else {
                    dsl::Posture::Allow
                })));
            }
            if !hide.is_empty() {
                items.push(Item::Hide(
                    hide.into_iter()
                        .map(|text| Pattern {
                            text,
                            quoted: false,
                            span: Span::default(),
                        })
                        .collect(),
                    None,
                    Span::default(),
                ));
            }
            items.append(&mut blocks);
            if !wildcard.is_empty() {
                items.push(Item::Tool(dsl::ToolBlock {
                    patterns: vec![Pattern {
                        text: "*".into(),
                        quoted: false,
                        span: Span::default(),
                    }],
                    rules: wildcard,
                    span: Span::default(),
                }));
            }
            items
        });
    (items, prop::option::of(text())).prop_map(|(items, description)| File {
        server: Some(ServerHead {
            name: sp("srv".into()),
            description: description.map(sp),
        }),
        items,
        span: Span::default(),
        problems: Vec::new(),
    })
}

/// The IR of an AST (None if it has semantic errors), with the per-source fields blanked.
fn ir_of(f: &File) -> Option<ServerPolicy> {
    let b = PolicyBuilder::new("srv", FileId(0), "srv.policy", Dialect::Dsl, String::new());
    let mut diags = Vec::new();
    lower_dsl::lower(f, &|_| None, b, &mut diags)
}

fn ir_of_text(t: &str) -> Option<ServerPolicy> {
    let out = compile(&[Input {
        server: "srv".into(),
        path: "srv.policy".into(),
        text: t.into(),
    }]);
    let mut p = out.policies.into_iter().next()?;
    p.digest = String::new();
    Some(p)
}

proptest! {
    #![proptest_config(ProptestConfig { cases: 256, failure_persistence: None, ..ProptestConfig::default() })]

    #[test]
    fn formatted_text_means_the_ast_and_formatting_is_idempotent(ast in file()) {
        let t0 = format(&ast, "");
        let parsed = dsl::parse(FileId(0), &t0).map_err(|d| TestCaseError::fail(format!("{d:#?}\n{t0}")))?;
        prop_assert_eq!(format(&parsed, &t0), t0.clone(), "fmt(fmt(x)) == fmt(x)");
        // Same meaning: the IR of the AST equals the IR of its text.
        let (a, b) = (ir_of(&ast), ir_of(&parsed));
        prop_assert_eq!(a.is_some(), b.is_some());
        if let (Some(mut a), Some(mut b)) = (a, b) {
            a.digest = String::new();
            b.digest = String::new();
            prop_assert_eq!(a, b);
        }
    }

    #[test]
    fn layout_noise_and_comments_survive(ast in file(), noise in prop::collection::vec((0usize..200, 0u8..4), 0..12)) {
        let t0 = format(&ast, "");
        // Insert blank lines and comments between lines.
        let mut lines: Vec<String> = t0.lines().map(str::to_string).collect();
        for (at, kind) in noise {
            let i = at % (lines.len() + 1);
            let extra = match kind {
                0 => String::new(),
                1 => "   // a comment".to_string(),
                2 => "/* block */".to_string(),
                _ => "\t".to_string(),
            };
            lines.insert(i, extra);
        }
        let x = lines.join("\n") + "\n";
        let Ok(px) = dsl::parse(FileId(0), &x) else { return Ok(()) }; // a comment line inside a wrapped rule is fine to skip
        let fx = format(&px, &x);
        let pfx = dsl::parse(FileId(0), &fx).map_err(|d| TestCaseError::fail(format!("{d:#?}\n{fx}")))?;
        prop_assert_eq!(format(&pfx, &fx), fx.clone(), "idempotent with comments");
        prop_assert_eq!(x.matches("// a comment").count(), fx.matches("// a comment").count(), "comments kept");
        prop_assert_eq!(x.matches("/* block */").count(), fx.matches("/* block */").count(), "comments kept");
        prop_assert_eq!(ir_of_text(&x), ir_of_text(&fx), "same meaning");
    }
}

/// Pieces the fuzzer glues together: grammar tokens, near-misses and junk.
const TOKENS: &[&str] = &[
    "server",
    "srv",
    "{",
    "}",
    "tool",
    "*",
    "a_*",
    "hide",
    "default",
    "deny",
    "allow",
    "limit",
    "when",
    "unless",
    "else",
    "and",
    "or",
    "not",
    "(",
    ")",
    "args.x",
    "args.\"k y\"",
    "==",
    "!=",
    "<=",
    ">=",
    "<",
    ">",
    "in",
    "[",
    "]",
    ",",
    "matches",
    "/a+/i",
    "/(?=x)/",
    "contains",
    "starts_with",
    "exists(",
    "len(",
    "count(",
    "sum(",
    "per",
    "minute",
    "90s",
    "0d",
    "99999999999999999999d",
    "by",
    "session",
    "as",
    "->",
    "\"msg\"",
    "\"un\\qterminated",
    "\"",
    "missing",
    "invalid",
    "include",
    "\"x.policy\"",
    "1",
    "-2.5e3",
    "18446744073709551616",
    "null",
    "true",
    "// c\n",
    "/* c",
    "*/",
    "\n",
    " ",
    "é",
    "\u{0}",
    "deyn",
    "limt",
];

proptest! {
    #![proptest_config(ProptestConfig {
        cases: std::env::var("PORTCULLIS_FUZZ_CASES").ok().and_then(|v| v.parse().ok()).unwrap_or(3000),
        failure_persistence: None,
        ..ProptestConfig::default()
    })]

    /// A fuzz run: token soup and arbitrary text never panic the parser or the compiler.
    #[test]
    fn the_parser_never_panics(tokens in prop::collection::vec(prop_oneof![4 => prop::sample::select(TOKENS).prop_map(str::to_string), 1 => ".{0,6}"], 0..60)) {
        let text = tokens.join(" ");
        let _ = dsl::parse(FileId(0), &text);
        let _ = compile(&[Input { server: "srv".into(), path: "srv.policy".into(), text }]);
    }
}
