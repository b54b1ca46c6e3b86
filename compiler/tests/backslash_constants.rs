//! A string constant with a backslash in it (`"C:\\Windows"`) is compared as
//! the text it stands for. Found by the `json` fuzz target's oracle: policy
//! constants are held as already-decoded `JStr::plain` text, and decoding
//! read their backslashes as JSON escapes again (`\W` became U+FFFD), so
//! `==`, `in` and ordering against such a constant never matched and a deny
//! rule on it let every call through.

use portcullis_compiler::Input;
use portcullis_compiler::eval::Evaluator;
use portcullis_core::json::Strictness;
use portcullis_core::{Effect, Env, MemoryCounters, Policy, Ticket, ToolCall};

fn evaluator() -> Evaluator {
    let text = r#"
server srv {
  tool t {
    deny "no system directory" when args.p == "C:\\Windows"
    deny "no listed share" when args.q in ["\\\\host\\share", "x"]
    deny "nothing sorting before a backslash path" when args.r < "a\\b"
  }
}
"#;
    let set = portcullis_compiler::compile(&[Input {
        server: "srv".into(),
        path: "srv.policy".into(),
        text: text.into(),
    }])
    .into_set()
    .unwrap_or_else(|o| panic!("{}", o.render()));
    let ir = set.servers[0].clone();
    Evaluator::new(ir, &set.sources)
}

fn effect(ev: &Evaluator, args: &str) -> Effect {
    let call = ToolCall::new("t", args.as_bytes(), Strictness::STRICT).unwrap();
    let counters = MemoryCounters::new();
    ev.decide(&call, &Env::new(&counters), &mut Ticket::default())
        .effect()
}

#[test]
fn backslashes_in_constants_are_characters() {
    let ev = evaluator();
    assert_eq!(effect(&ev, r#"{"p":"C:\\Windows"}"#), Effect::Deny);
    assert_eq!(effect(&ev, r#"{"p":"C:\u005cWindows"}"#), Effect::Deny);
    assert_eq!(effect(&ev, r#"{"p":"C:\\Windows\\x"}"#), Effect::Allow);
    assert_eq!(effect(&ev, r#"{"q":"\\\\host\\share"}"#), Effect::Deny);
    assert_eq!(effect(&ev, r#"{"q":"\\host\\share"}"#), Effect::Allow);
    // "a\\" < "a\\b" (a prefix), while "a]" sorts after "a\\b".
    assert_eq!(effect(&ev, r#"{"r":"a\\"}"#), Effect::Deny);
    assert_eq!(effect(&ev, r#"{"r":"a]"}"#), Effect::Allow);
}
