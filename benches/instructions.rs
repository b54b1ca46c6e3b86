//! The decision benchmarks' calls (`benches/calls.rs`), repeated a given
//! number of times, for counting instructions under callgrind: wall-clock
//! times on a shared 2-core VM move more between runs than a change does,
//! instruction counts do not. `scripts/bench-instructions` runs every
//! measure twice (0 and N repetitions, the same set-up) and prints the
//! difference divided by N: the instructions of one repetition.
//!
//! `instructions MEASURE N`, MEASURE one of:
//! - `parse`: the raw 1 KiB `tools/call` line read strictly (`parse_tool_call`);
//! - `raw/generated`, `raw/evaluator`: that line read and decided (and an
//!   allowed call's reservations rolled back, as the criterion bench does);
//! - `mix/generated`, `mix/evaluator`: the round-robin mix of every kind of
//!   call, pre-built, decided and rolled back;
//! - `decide/generated/KIND`, `decide/evaluator/KIND`: one kind of call.

use std::hint::black_box;

use portcullis_core::call::ToolCall;
use portcullis_core::counters::MemoryCounters;
use portcullis_core::json::Strictness;
use portcullis_core::jsonrpc::parse_tool_call;

#[path = "calls.rs"]
#[allow(dead_code)]
mod calls;
use calls::{KINDS, RAW_LINE, decide_and_rollback, engines, env};

fn main() {
    let args: Vec<String> = std::env::args().collect();
    let (Some(measure), Some(n)) = (
        args.get(1),
        args.get(2).and_then(|n| n.parse::<usize>().ok()),
    ) else {
        eprintln!("usage: instructions MEASURE N (see benches/instructions.rs)");
        std::process::exit(2);
    };
    let parts: Vec<&str> = measure.split('/').collect();
    let engines = engines();
    let engine = |name: &str| {
        engines
            .iter()
            .find(|(n, _)| *n == name)
            .unwrap_or_else(|| panic!("no engine {name}"))
            .1
    };
    let calls: Vec<ToolCall<'static>> = KINDS
        .iter()
        .map(|k| ToolCall::new(k.tool, k.args.as_bytes(), Strictness::STRICT).expect(k.id))
        .collect();
    let counters = MemoryCounters::new();
    let env = env(&counters);
    let raw = RAW_LINE.as_bytes();
    match parts.as_slice() {
        ["parse"] => {
            for _ in 0..n {
                let call = parse_tool_call(black_box(raw)).expect("valid");
                black_box(call.arguments().as_bytes().len());
            }
        }
        ["raw", name] => {
            let policy = engine(name);
            for _ in 0..n {
                let call = parse_tool_call(black_box(raw)).expect("valid");
                black_box(decide_and_rollback(policy, &call, &env));
            }
        }
        ["mix", name] => {
            let policy = engine(name);
            let mut i = 0;
            for _ in 0..n {
                i = if i + 1 == calls.len() { 0 } else { i + 1 };
                black_box(decide_and_rollback(policy, &calls[i], &env));
            }
        }
        ["decide", name, kind] => {
            let policy = engine(name);
            let at = KINDS
                .iter()
                .position(|k| k.id == *kind)
                .unwrap_or_else(|| panic!("no kind {kind}"));
            for _ in 0..n {
                black_box(decide_and_rollback(policy, &calls[at], &env));
            }
        }
        _ => panic!("unknown measure {measure} (see benches/instructions.rs)"),
    }
}
