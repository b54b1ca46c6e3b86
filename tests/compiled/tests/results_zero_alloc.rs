//! A clean answer checked by a result rule allocates nothing after warm-up
//! (docs/results.md): the prescan over the raw `result`, with common escapes
//! and with `\u` escapes (decoded into a reused buffer), text and
//! `structuredContent`, counted by a global allocator (its own test binary;
//! only the counting test's own thread is counted); and so does picking the
//! result rule of a `resources/read` (the URI normalised on the stack).

use std::alloc::{GlobalAlloc, Layout, System};
use std::cell::Cell;
use std::sync::atomic::{AtomicUsize, Ordering};

use portcullis_compiled::compiled;
use portcullis_core::json::{Strictness, Val, Value, validate};
use portcullis_core::results::{Verdict, check_result};

struct Counting;

static ALLOCATIONS: AtomicUsize = AtomicUsize::new(0);
thread_local! {
    /// Set while the current thread's allocations are counted (a const
    /// thread-local without a destructor: reading it never allocates).
    static ON: Cell<bool> = const { Cell::new(false) };
}

/// True while this thread's allocations are counted.
fn counting() -> bool {
    ON.try_with(Cell::get).unwrap_or(false)
}

/// Starts or stops counting this thread's allocations.
fn count(on: bool) {
    ON.with(|c| c.set(on));
}

// SAFETY: every method forwards to `System`, which upholds `GlobalAlloc`'s
// contract; the only addition is an atomic counter increment, which neither
// allocates nor touches the returned memory.
unsafe impl GlobalAlloc for Counting {
    unsafe fn alloc(&self, layout: Layout) -> *mut u8 {
        if counting() {
            ALLOCATIONS.fetch_add(1, Ordering::Relaxed);
        }
        // SAFETY: same layout contract as our caller's.
        unsafe { System.alloc(layout) }
    }
    unsafe fn dealloc(&self, ptr: *mut u8, layout: Layout) {
        // SAFETY: `ptr` came from `System.alloc` with this layout.
        unsafe { System.dealloc(ptr, layout) }
    }
    unsafe fn realloc(&self, ptr: *mut u8, layout: Layout, new_size: usize) -> *mut u8 {
        if counting() {
            ALLOCATIONS.fetch_add(1, Ordering::Relaxed);
        }
        // SAFETY: `ptr` came from `System` with `layout`; forwarded unchanged.
        unsafe { System.realloc(ptr, layout, new_size) }
    }
}

#[global_allocator]
static GLOBAL: Counting = Counting;

#[test]
fn clean_answers_are_checked_without_allocating() {
    let policy = compiled("results-intercept").expect("compiled");
    let rule = policy.result_rule("echo").expect("the catch-all rule");
    let answers: Vec<String> = vec![
        r#"{"jsonrpc":"2.0","id":1,"result":{"content":[{"type":"text","text":"Echo: hello"}]}}"#.into(),
        format!(
            r#"{{"jsonrpc":"2.0","id":2,"result":{{"content":[{{"type":"text","text":"{}"}}]}}}}"#,
            "line with \\\"quotes\\\" and a tab\\t\\n".repeat(500)
        ),
        format!(
            r#"{{"jsonrpc":"2.0","id":3,"result":{{"content":[{{"type":"text","text":"{}"}}]}}}}"#,
            "caf\\u00e9 and a slash \\/ ".repeat(500)
        ),
        r#"{"jsonrpc":"2.0","id":4,"result":{"content":[],"structuredContent":{"rows":[{"id":1,"name":"a"},{"id":2,"name":"b","tags":["x","y"]}]},"isError":false}}"#.into(),
    ];
    let checked: Vec<(&str, Value<'_>)> = answers
        .iter()
        .map(|a| {
            validate(a.as_bytes(), Strictness::LENIENT).expect("valid JSON");
            let Val::Object(o) = Value::from_validated(a.as_bytes()).val() else {
                panic!("not an object")
            };
            (a.as_str(), o.get("result").expect("a result"))
        })
        .collect();
    // Warm-up: the scanner is built, the decoding buffer grows, the regex caches fill.
    for (a, r) in &checked {
        assert_eq!(check_result(rule, a.as_bytes(), *r), Verdict::Pass, "{a}");
    }
    ALLOCATIONS.store(0, Ordering::Relaxed);
    count(true);
    let mut passed = 0;
    for _ in 0..500 {
        for (a, r) in &checked {
            passed += usize::from(check_result(rule, a.as_bytes(), *r) == Verdict::Pass);
        }
    }
    count(false);
    assert_eq!(passed, 500 * checked.len());
    assert_eq!(ALLOCATIONS.load(Ordering::Relaxed), 0);
}

/// Picking the result rule of a `resources/read` normalises the URI in a
/// stack buffer and matches exact URIs, globs and regexes without allocating.
#[test]
fn resource_rules_are_picked_without_allocating() {
    for server in ["results-intercept", "results-catalogue", "results-dsl"] {
        let policy = compiled(server).expect("compiled");
        let uris = [
            "file:///etc/passwd",
            "FILE:///tmp/../etc//passwd",
            "file:///%65tc/ssl/key.pem",
            "file:///srv/app/config.json",
            "file:///home/ann/.env",
            "file:///etc%2Fpasswd",
            "https://example.com/x",
        ];
        // Warm-up: the regexes' engines load.
        for u in uris {
            assert!(policy.resource_result_rule(u).is_some(), "{server}: {u}");
        }
        ALLOCATIONS.store(0, Ordering::Relaxed);
        count(true);
        let mut found = 0;
        for _ in 0..200 {
            for u in uris {
                found += usize::from(policy.resource_result_rule(u).is_some());
            }
        }
        count(false);
        assert_eq!(found, 200 * uris.len());
        assert_eq!(ALLOCATIONS.load(Ordering::Relaxed), 0, "{server}");
    }
}
