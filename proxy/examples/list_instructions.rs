//! What the proxy does with one `tools/list` answer (read it, then filter
//! it), repeated N times, for counting instructions under callgrind:
//!
//!   valgrind --tool=callgrind --callgrind-out-file=/dev/null \
//!     target/release/examples/list_instructions ANSWER_FILE N
//!
//! run with N and with 0; the difference divided by N is one answer's
//! count (`scripts/bench-list-instructions` does this). ANSWER_FILE holds one
//! answer line, e.g. the load server's 310-tool answer; one tool in 62 is
//! hidden (5 of 310, as the benchmark policy hides).

use portcullis_core::structural::{Scan, scan_answer};
use portcullis_proxy::filter::filter_scanned;
use std::hint::black_box;

fn main() {
    let args: Vec<String> = std::env::args().collect();
    let [_, file, n] = &args[..] else {
        eprintln!("usage: list_instructions ANSWER_FILE N");
        std::process::exit(2);
    };
    let n: usize = n.parse().expect("N is a number");
    let answer = std::fs::read(file).expect("the answer file is readable");
    let answer = answer.trim_ascii();
    let v: serde_json::Value = serde_json::from_slice(answer).expect("the answer is JSON");
    let hidden: Vec<String> = v["result"]["tools"]
        .as_array()
        .expect("a tools/list answer")
        .iter()
        .step_by(62)
        .map(|t| t["name"].as_str().unwrap_or_default().to_string())
        .collect();
    let mut total = 0;
    for _ in 0..n {
        let Ok(Scan::Plain(outline)) = scan_answer(black_box(answer)) else {
            panic!("the answer is read by the fast path");
        };
        let out = filter_scanned(answer, &outline, |t| hidden.iter().any(|h| h == t))
            .expect("the answer is filtered");
        total += out.map_or(0, |o| o.len());
    }
    black_box(total);
}
