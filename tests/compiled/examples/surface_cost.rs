//! Instruction counts for README Performance: what resource and prompt
//! rules cost a `tools/call` that is not one of them. Run under callgrind
//! with two iteration counts; the difference divided by the difference in
//! iterations is the cost of one iteration, fixed costs (start-up,
//! compiling nothing, building the lines) cancelling out:
//!
//! ```sh
//! cargo build --release -p portcullis-compiled --example surface_cost
//! for s in fusionauth-plain fusionauth-rules; do for n in 1000 7000; do
//!   valgrind --tool=callgrind --callgrind-out-file=/dev/null \
//!     target/release/examples/surface_cost decide $s $n 2>&1 | grep refs
//! done; done
//! ```
//!
//! Modes: `read SERVER N` decides N reads of `file:///etc/passwd`;
//! `decide SERVER N` decides N rounds of three tool calls (an
//! allowed one with the global limit, a denied one, a regex condition),
//! rolling back each reservation; `proxy SERVER N` hands N `tools/call`
//! lines and their answers to a proxy session (the stdio and Streamable
//! HTTP transports' shared handling); `lines SERVER N` only builds those
//! lines (subtract it from `proxy`).

use std::sync::Arc;

use portcullis_compiled::compiled;
use portcullis_core::call::ToolCall;
use portcullis_core::counters::{Counters, MemoryCounters, Ticket, UnixMillis};
use portcullis_core::json::Strictness;
use portcullis_core::policy::{Env, FailMode};
use portcullis_proxy::log::{Level, Log};
use portcullis_proxy::session::Session;

const CALLS: &[(&str, &str)] = &[
    (
        "retrieveUser",
        r#"{"userId":"00000000-0000-0000-0000-000000000001"}"#,
    ),
    (
        "deleteUser",
        r#"{"userId":"00000000-0000-0000-0000-000000000001"}"#,
    ),
    (
        "createUser",
        r#"{"email":"jane.doe@example.com","firstName":"Jane","lastName":"Doe"}"#,
    ),
];

fn lines(n: usize) -> Vec<(String, String)> {
    (0..n)
        .map(|i| {
            let (tool, args) = CALLS[i % CALLS.len()];
            (
                format!(
                    r#"{{"jsonrpc":"2.0","id":{i},"method":"tools/call","params":{{"name":"{tool}","arguments":{args}}}}}"#
                ),
                format!(
                    r#"{{"jsonrpc":"2.0","id":{i},"result":{{"content":[{{"type":"text","text":"ok"}}]}}}}"#
                ),
            )
        })
        .collect()
}

fn main() {
    let args: Vec<String> = std::env::args().collect();
    let [_, mode, server, n] = args.as_slice() else {
        eprintln!("usage: surface_cost decide|read|proxy|lines SERVER N");
        std::process::exit(2);
    };
    let n: usize = n.parse().expect("N is a number");
    let policy = compiled(server).expect("a server compiled by build.rs");
    let mut sink = 0usize;
    match mode.as_str() {
        "decide" => {
            let calls: Vec<ToolCall<'_>> = CALLS
                .iter()
                .map(|(t, a)| ToolCall::new(t, a.as_bytes(), Strictness::STRICT).unwrap())
                .collect();
            let counters = MemoryCounters::new();
            let env = Env {
                counters: &counters,
                now: UnixMillis(1_767_225_630_000),
                session: 1,
                fail_mode: FailMode::Closed,
                principal: None,
            };
            for _ in 0..n {
                for call in &calls {
                    let mut ticket = Ticket::EMPTY;
                    let d = policy.decide(std::hint::black_box(call), &env, &mut ticket);
                    counters.rollback(&ticket);
                    sink += d.outcome as usize;
                }
            }
        }
        "read" => {
            // A resource read (for where its time goes).
            let call = ToolCall::on(
                portcullis_core::call::Surface::Resource,
                "file:///etc/passwd",
                b"{}",
                Strictness::STRICT,
            )
            .unwrap();
            let counters = MemoryCounters::new();
            let env = Env {
                counters: &counters,
                now: UnixMillis(1_767_225_630_000),
                session: 1,
                fail_mode: FailMode::Closed,
                principal: None,
            };
            for _ in 0..n {
                let mut ticket = Ticket::EMPTY;
                let d = policy.decide(std::hint::black_box(&call), &env, &mut ticket);
                counters.rollback(&ticket);
                sink += d.outcome as usize;
            }
        }
        "proxy" | "lines" => {
            let lines = lines(n);
            if mode == "proxy" {
                let session = Session::new(
                    policy,
                    Arc::new(MemoryCounters::new()),
                    1,
                    FailMode::Closed,
                    None,
                    Log {
                        level: Level::Error,
                    },
                );
                for (request, answer) in &lines {
                    sink += session.from_client(request.as_bytes()).forward.len();
                    sink += session.from_server(answer.as_bytes()).forward.len();
                }
            }
            sink += lines.len();
        }
        other => panic!("unknown mode {other}"),
    }
    println!("{sink}");
}
