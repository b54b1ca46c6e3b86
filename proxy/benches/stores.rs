//! What one rate-limited call costs each counter store, without the proxy
//! around it: `cargo bench -p portcullis-proxy --features sqlite --bench stores`.
//!
//! Each iteration reserves one unit of one global counter (a sliding minute
//! with a limit nobody reaches), as a call under the load tool's
//! `fusionauth-biglimit` policy does.

use std::hint::black_box;
use std::sync::Arc;

use criterion::{Criterion, criterion_group, criterion_main};
use portcullis_core::counters::{
    CounterRef, CounterSpec, Counters, MemoryCounters, ReserveRequest, Scope, Ticket, UnixMillis,
    Window,
};
use portcullis_proxy::log::{Level, Log};
use portcullis_proxy::state::Store;
use portcullis_proxy::state::sqlite::SqliteStore;

static SPEC: CounterSpec = CounterSpec::new(
    "bench/global.calls",
    Window::Sliding { millis: 60_000 },
    Scope::Global,
);

fn reserve_one(store: &dyn Counters) {
    let requests = [ReserveRequest {
        counter: CounterRef {
            spec: &SPEC,
            partition: 0,
        },
        amount: 1,
        limit: 1_000_000_000_000,
    }];
    let mut ticket = Ticket::EMPTY;
    let outcome = store
        .reserve(&requests, UnixMillis::now(), &mut ticket)
        .expect("store available");
    black_box(outcome);
}

fn stores(c: &mut Criterion) {
    let mut group = c.benchmark_group("reserve one counter");
    let memory = MemoryCounters::new();
    group.bench_function("memory", |b| b.iter(|| reserve_one(&memory)));

    let dir = std::env::temp_dir().join(format!("portcullis-bench-stores-{}", std::process::id()));
    let _ = std::fs::remove_dir_all(&dir);
    let sqlite = Store::new(
        Arc::new(SqliteStore::open(&dir, "").expect("open the SQLite store")),
        dir.display().to_string(),
        Log {
            level: Level::Error,
        },
    )
    .expect("store");
    group.bench_function("sqlite", |b| b.iter(|| reserve_one(&sqlite)));
    group.finish();
    drop(sqlite);
    let _ = std::fs::remove_dir_all(&dir);
}

criterion_group!(benches, stores);
criterion_main!(benches);
