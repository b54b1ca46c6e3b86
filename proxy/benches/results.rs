//! What a result rule adds to an answer (docs/results.md):
//! `cargo bench -p portcullis-proxy --bench results`.
//!
//! - `clean 100 KiB text`: a `tools/call` answer with 100 KiB of text (prose,
//!   code, JSON; newlines and quotes escaped as JSON has them) checked against
//!   `redact secrets`: the figure issue 15 bounds (under 50 µs), no allocation;
//! - `clean 100 KiB, no escapes`: the same without escapes (scanned in place);
//! - `clean 100 KiB structuredContent`: 1,000 small string values;
//! - `one secret in 100 KiB`: the redaction path (rewrite and `_meta` note).

use std::hint::black_box;

use criterion::{Criterion, Throughput, criterion_group, criterion_main};
use portcullis_core::json::{Strictness, push_json_str, validate};
use portcullis_core::json::{Val, Value};
use portcullis_core::results::{ResultRule, ResultSpec, Target, Verdict, check, check_result};
use portcullis_core::secrets::Action;

const SIZE: usize = 100 * 1024;

/// Clean text: the kind of thing a file read or a search returns.
fn corpus(escapes: bool) -> String {
    let lines = [
        "The quick brown fox jumps over the lazy dog; 0123456789 times.",
        "fn main() { let token_count = items.iter().filter(|x| x.ok).count(); }",
        "{\"id\": 42, \"name\": \"widget\", \"price\": 19.99, \"tags\": [\"a\", \"b\"]}",
        "See https://example.com/docs/getting-started#install for details.",
        "password policy: at least twelve characters, rotated every ninety days",
        "2026-12-05T13:00:00Z INFO request served in 12ms status=200 path=/api/v1",
    ];
    let mut s = String::with_capacity(SIZE + 128);
    let mut i = 0;
    while s.len() < SIZE {
        s.push_str(lines[i % lines.len()]);
        s.push(if escapes { '\n' } else { ' ' });
        i += 1;
    }
    if !escapes {
        s = s.replace('"', "'");
    }
    s.truncate(SIZE);
    s
}

fn answer(text: &str) -> Vec<u8> {
    let mut out =
        br#"{"jsonrpc":"2.0","id":1,"result":{"content":[{"type":"text","text":"#.to_vec();
    push_json_str(&mut out, text);
    out.extend_from_slice(b"}]}}");
    validate(&out, Strictness::LENIENT).unwrap();
    out
}

fn structured() -> Vec<u8> {
    let mut out =
        br#"{"jsonrpc":"2.0","id":1,"result":{"content":[],"structuredContent":{"rows":["#.to_vec();
    let mut i = 0;
    while out.len() < SIZE {
        if i > 0 {
            out.push(b',');
        }
        out.extend_from_slice(
            format!(r#"{{"id":{i},"name":"customer {i}","email":"c{i}@example.com","plan":"pro","note":"renewed on time"}}"#)
                .as_bytes(),
        );
        i += 1;
    }
    out.extend_from_slice(b"]}}}");
    validate(&out, Strictness::LENIENT).unwrap();
    out
}

static RULE: ResultRule = ResultRule::new(ResultSpec {
    name: "results",
    target: Target::All,
    secrets: Some(Action::Redact),
    patterns: &[],
    max_bytes: Some(1 << 20),
    message: "",
    file: "bench.yaml",
    line: 1,
    column: 1,
});

fn bench(c: &mut Criterion) {
    RULE.warm();
    let escaped = answer(&corpus(true));
    let plain = answer(&corpus(false));
    let rows = structured();
    let mut dirty_text = corpus(true);
    dirty_text.replace_range(
        SIZE / 2..SIZE / 2 + 40,
        "ghp_16C7e42F292c6912E7710c838347Ae178B4a",
    );
    let dirty = answer(&dirty_text);
    for (what, msg) in [(&escaped, "escaped"), (&plain, "plain"), (&rows, "rows")] {
        assert_eq!(check(&RULE, what), Verdict::Pass, "{msg}");
    }
    assert!(matches!(check(&RULE, &dirty), Verdict::Redacted { .. }));

    // The proxy has the `result` from validating the message (its outline).
    let result = |m: &'static [u8]| {
        let Val::Object(o) = Value::from_validated(m).val() else {
            unreachable!()
        };
        o.get("result").unwrap()
    };
    let (escaped, plain, rows, dirty): (
        &'static [u8],
        &'static [u8],
        &'static [u8],
        &'static [u8],
    ) = (escaped.leak(), plain.leak(), rows.leak(), dirty.leak());
    let (re, rp, rr, rd) = (result(escaped), result(plain), result(rows), result(dirty));
    let mut g = c.benchmark_group("results");
    g.throughput(Throughput::Bytes(SIZE as u64));
    g.bench_function("clean 100 KiB text", |b| {
        b.iter(|| check_result(&RULE, escaped, black_box(re)))
    });
    g.bench_function("clean 100 KiB, no escapes", |b| {
        b.iter(|| check_result(&RULE, plain, black_box(rp)))
    });
    g.bench_function("clean 100 KiB structuredContent", |b| {
        b.iter(|| check_result(&RULE, rows, black_box(rr)))
    });
    g.bench_function("one secret in 100 KiB", |b| {
        b.iter(|| check_result(&RULE, dirty, black_box(rd)))
    });
    g.finish();
}

criterion_group!(benches, bench);
criterion_main!(benches);
