//! One behaviour suite for every counter store: the in-memory store, SQLite
//! and Redis must give the same answers at the same simulated times. Called
//! by the stores' tests (Redis from the integration tests, which start a
//! real `redis-server`). Each function panics on a difference.
//!
//! `settle` waits until queued rollbacks are applied (stores that queue
//! them); `fresh` gives a store that holds no counters yet.

use std::sync::atomic::{AtomicU64, Ordering};

use portcullis_core::counters::{
    Calendar, CounterRef, CounterSpec, Counters, Except, ReserveOutcome, ReserveRequest, Scope,
    Ticket, UnixMillis, Window,
};

static MINUTE: CounterSpec = CounterSpec::new(
    "conformance/t.minute",
    Window::Calendar(Calendar::Minute),
    Scope::Global,
);
static DAY: CounterSpec = CounterSpec::new(
    "conformance/t.day",
    Window::Calendar(Calendar::Day),
    Scope::Global,
);
static SLIDE: CounterSpec = CounterSpec::new(
    "conformance/t.slide",
    Window::Sliding { millis: 60_000 },
    Scope::Session,
);

fn req(spec: &'static CounterSpec, partition: u128, amount: u64, limit: u64) -> ReserveRequest {
    ReserveRequest {
        counter: CounterRef { spec, partition },
        amount,
        limit,
    }
}

fn at(s: i64) -> UnixMillis {
    UnixMillis(1_768_473_000_000 + s * 1000) // 2026-01-15T10:30:00Z
}

/// Every check, each on a fresh store.
pub fn run_all<S: Counters>(fresh: &dyn Fn() -> S, settle: &dyn Fn(&S)) {
    calendar_window_resets_at_the_boundary(&fresh());
    sliding_window_never_over_admits(&fresh());
    batch_is_all_or_nothing_and_rollback_restores(&fresh(), settle);
    rollback_never_touches_a_later_window(&fresh(), settle);
    rollback_never_goes_below_zero(&fresh(), settle);
    partitions_are_separate_counters(&fresh());
    one_counter_twice_in_a_batch(&fresh());
    amounts_and_limits(&fresh());
    concurrent_reservations_never_overshoot(&fresh(), 4, 100);
    a_second_decision_reserves_only_what_the_first_did_not(&fresh(), settle);
}

/// A calendar window holds N until its UTC boundary, then starts at 0.
pub fn calendar_window_resets_at_the_boundary(m: &dyn Counters) {
    let mut tk = Ticket::EMPTY;
    let r = [req(&MINUTE, 0, 1, 2)];
    assert_eq!(m.reserve(&r, at(58), &mut tk), Ok(ReserveOutcome::Reserved));
    assert_eq!(m.reserve(&r, at(59), &mut tk), Ok(ReserveOutcome::Reserved));
    let mut refused = Ticket::EMPTY;
    assert_eq!(
        m.reserve(&r, at(59), &mut refused),
        Ok(ReserveOutcome::Refused { index: 0 })
    );
    assert!(refused.is_empty(), "a refusal reserves nothing");
    assert_eq!(m.read(r[0].counter, at(59)), Ok(2));
    assert_eq!(m.reserve(&r, at(60), &mut tk), Ok(ReserveOutcome::Reserved));
    assert_eq!(m.read(r[0].counter, at(61)), Ok(1));
    assert_eq!(tk.iter().count(), 3);
}

/// Never more than the limit within any window-long interval, and it admits again later.
pub fn sliding_window_never_over_admits(m: &dyn Counters) {
    let mut admitted: Vec<i64> = Vec::new();
    // One attempt every 1.7 s for ten minutes against 15 per 60 s.
    for i in 0..353 {
        let now = 1_000_000 + i * 1_700;
        let mut tk = Ticket::EMPTY;
        if m.reserve(&[req(&SLIDE, 7, 1, 15)], UnixMillis(now), &mut tk)
            == Ok(ReserveOutcome::Reserved)
        {
            admitted.push(now);
        }
    }
    for (i, &t) in admitted.iter().enumerate() {
        let in_window = admitted[i..]
            .iter()
            .take_while(|&&u| u < t + 60_000)
            .count();
        assert!(in_window <= 15, "{in_window} admitted within 60 s of {t}");
    }
    assert!(admitted.len() >= 15 * 9, "only {} admitted", admitted.len());
}

/// A call limited by two counters gets both or neither; a rollback gives both back.
pub fn batch_is_all_or_nothing_and_rollback_restores<S: Counters>(m: &S, settle: &dyn Fn(&S)) {
    let now = at(5);
    let batch = [req(&MINUTE, 0, 1, 1), req(&SLIDE, 3, 1, 1)];
    let mut tk = Ticket::EMPTY;
    assert_eq!(
        m.reserve(&batch, now, &mut tk),
        Ok(ReserveOutcome::Reserved)
    );
    let mut tk2 = Ticket::EMPTY;
    assert_eq!(
        m.reserve(&batch, now, &mut tk2),
        Ok(ReserveOutcome::Refused { index: 0 })
    );
    assert!(tk2.is_empty());
    // Only the second is full: refused at index 1, and the first is not taken.
    let other = [req(&DAY, 0, 1, 5), req(&SLIDE, 3, 1, 1)];
    assert_eq!(
        m.reserve(&other, now, &mut tk2),
        Ok(ReserveOutcome::Refused { index: 1 })
    );
    assert_eq!(m.read(other[0].counter, now), Ok(0));
    m.rollback(&tk);
    settle(m);
    assert_eq!(m.read(batch[0].counter, now), Ok(0));
    assert_eq!(m.read(batch[1].counter, now), Ok(0));
    assert_eq!(
        m.reserve(&batch, now, &mut tk2),
        Ok(ReserveOutcome::Reserved)
    );
}

/// Units taken in one window are never given back to the next.
pub fn rollback_never_touches_a_later_window<S: Counters>(m: &S, settle: &dyn Fn(&S)) {
    let r = [req(&MINUTE, 0, 1, 5)];
    let mut old = Ticket::EMPTY;
    m.reserve(&r, at(59), &mut old).unwrap();
    let mut new = Ticket::EMPTY;
    m.reserve(&r, at(60), &mut new).unwrap();
    m.rollback(&old);
    settle(m);
    assert_eq!(m.read(r[0].counter, at(61)), Ok(1));
    // Sliding: a slot's units come back only to that slot.
    let s = [req(&SLIDE, 9, 1, 2)];
    let mut first = Ticket::EMPTY;
    m.reserve(&s, UnixMillis(10_000), &mut first).unwrap();
    let mut second = Ticket::EMPTY;
    m.reserve(&s, UnixMillis(50_000), &mut second).unwrap();
    m.rollback(&first);
    m.rollback(&first); // twice: still never below zero, never into the other slot
    settle(m);
    assert_eq!(m.read(s[0].counter, UnixMillis(55_000)), Ok(1));
}

/// A rollback after the units expired, or twice, leaves 0, not a negative or wrapped value.
pub fn rollback_never_goes_below_zero<S: Counters>(m: &S, settle: &dyn Fn(&S)) {
    let r = [req(&DAY, 0, 4, 10)];
    let mut tk = Ticket::EMPTY;
    m.reserve(&r, at(0), &mut tk).unwrap();
    m.rollback(&tk);
    m.rollback(&tk);
    settle(m);
    assert_eq!(m.read(r[0].counter, at(1)), Ok(0));
    let mut again = Ticket::EMPTY;
    assert_eq!(
        m.reserve(&[req(&DAY, 0, 10, 10)], at(2), &mut again),
        Ok(ReserveOutcome::Reserved)
    );
    assert_eq!(
        m.reserve(&[req(&DAY, 0, 1, 10)], at(2), &mut Ticket::default()),
        Ok(ReserveOutcome::Refused { index: 0 })
    );
}

/// Partitions of one counter do not share units, over all 128 bits (an
/// argument partition and a session id with the same low 64 bits too).
pub fn partitions_are_separate_counters(m: &dyn Counters) {
    let mut tk = Ticket::EMPTY;
    let arg = portcullis_core::ops::ARG_PARTITION;
    for p in [1u128, 2, u128::from(u64::MAX), arg | 1, u128::MAX] {
        assert_eq!(
            m.reserve(&[req(&SLIDE, p, 2, 2)], at(0), &mut tk),
            Ok(ReserveOutcome::Reserved)
        );
    }
    assert_eq!(
        m.reserve(&[req(&SLIDE, 1, 1, 2)], at(0), &mut Ticket::default()),
        Ok(ReserveOutcome::Refused { index: 0 })
    );
    assert_eq!(
        m.read(
            CounterRef {
                spec: &SLIDE,
                partition: 4
            },
            at(0)
        ),
        Ok(0)
    );
}

/// Two requests on one counter in one call count together.
pub fn one_counter_twice_in_a_batch(m: &dyn Counters) {
    let both = [req(&MINUTE, 0, 2, 3), req(&MINUTE, 0, 2, 3)];
    assert_eq!(
        m.reserve(&both, at(0), &mut Ticket::default()),
        Ok(ReserveOutcome::Refused { index: 1 })
    );
    assert_eq!(m.read(both[0].counter, at(0)), Ok(0));
    let fits = [req(&MINUTE, 0, 1, 3), req(&MINUTE, 0, 2, 3)];
    assert_eq!(
        m.reserve(&fits, at(0), &mut Ticket::default()),
        Ok(ReserveOutcome::Reserved)
    );
    assert_eq!(m.read(both[0].counter, at(0)), Ok(3));
}

/// An amount of 0 always fits; an amount above the limit never does; big numbers stay exact.
pub fn amounts_and_limits(m: &dyn Counters) {
    let full = [req(&DAY, 5, 3, 3)];
    assert_eq!(
        m.reserve(&full, at(0), &mut Ticket::default()),
        Ok(ReserveOutcome::Reserved)
    );
    let mut tk = Ticket::EMPTY;
    assert_eq!(
        m.reserve(&[req(&DAY, 5, 0, 3)], at(0), &mut tk),
        Ok(ReserveOutcome::Reserved)
    );
    assert_eq!(tk.iter().count(), 1);
    assert_eq!(
        m.reserve(&[req(&DAY, 6, 11, 10)], at(0), &mut Ticket::default()),
        Ok(ReserveOutcome::Refused { index: 0 })
    );
    // A spend cap in cents: exact well beyond 32 bits.
    let cap = 1_000_000_000_000u64;
    let spend = [req(&DAY, 8, cap - 1, cap)];
    assert_eq!(
        m.reserve(&spend, at(0), &mut Ticket::default()),
        Ok(ReserveOutcome::Reserved)
    );
    assert_eq!(
        m.reserve(&[req(&DAY, 8, 2, cap)], at(0), &mut Ticket::default()),
        Ok(ReserveOutcome::Refused { index: 0 })
    );
    assert_eq!(
        m.reserve(&[req(&DAY, 8, 1, cap)], at(0), &mut Ticket::default()),
        Ok(ReserveOutcome::Reserved)
    );
    assert_eq!(m.read(spend[0].counter, at(0)), Ok(cap));
    // A limit beyond every store's exact range never lets the counter wrap.
    assert_eq!(
        m.reserve(
            &[req(&DAY, 9, u64::MAX, u64::MAX)],
            at(0),
            &mut Ticket::default()
        )
        .map(|o| o == ReserveOutcome::Reserved || o == ReserveOutcome::Refused { index: 0 }),
        Ok(true)
    );
}

/// Threads racing one limit get exactly the limit between them.
pub fn concurrent_reservations_never_overshoot(m: &dyn Counters, threads: usize, limit: u64) {
    let admitted = AtomicU64::new(0);
    std::thread::scope(|s| {
        for _ in 0..threads {
            s.spawn(|| {
                for _ in 0..(limit as usize * 2 / threads + 10) {
                    let mut tk = Ticket::EMPTY;
                    if m.reserve(&[req(&MINUTE, 42, 1, limit)], at(5), &mut tk)
                        == Ok(ReserveOutcome::Reserved)
                    {
                        admitted.fetch_add(1, Ordering::Relaxed);
                    }
                }
            });
        }
    });
    assert_eq!(admitted.into_inner(), limit);
}

/// A call decided again on its symlink target ([`Except`]): a counter the
/// first decision reserved is not reserved again, the others are, a
/// refusal names the request as the second decision listed it, and the two
/// tickets absorbed into one roll back together.
pub fn a_second_decision_reserves_only_what_the_first_did_not<S: Counters>(
    m: &S,
    settle: &dyn Fn(&S),
) {
    let shared = req(&MINUTE, 0, 1, 2);
    let target_only = req(&DAY, 7, 1, 1);
    let mut first = Ticket::EMPTY;
    assert_eq!(
        m.reserve(&[shared], at(0), &mut first),
        Ok(ReserveOutcome::Reserved)
    );
    let mut second = Ticket::EMPTY;
    assert_eq!(
        Except::new(m, &first).reserve(&[shared, target_only], at(0), &mut second),
        Ok(ReserveOutcome::Reserved)
    );
    assert_eq!(second.iter().count(), 1, "only the target's own counter");
    assert_eq!(
        m.read(shared.counter, at(1)),
        Ok(1),
        "the shared counter counts once"
    );
    assert_eq!(m.read(target_only.counter, at(1)), Ok(1));
    // The target-only counter is full now: a second call's second decision
    // is refused on it, and the index is the second decision's.
    let mut again = Ticket::EMPTY;
    assert_eq!(
        m.reserve(&[shared], at(2), &mut again),
        Ok(ReserveOutcome::Reserved)
    );
    let mut refused = Ticket::EMPTY;
    assert_eq!(
        Except::new(m, &again).reserve(&[shared, target_only], at(2), &mut refused),
        Ok(ReserveOutcome::Refused { index: 1 })
    );
    assert!(refused.is_empty());
    m.rollback(&again);
    // Only what the first decision held: nothing to reserve.
    let mut none = Ticket::EMPTY;
    assert_eq!(
        Except::new(m, &first).try_reserve(&[shared], at(3), &mut none),
        Ok(Some(ReserveOutcome::Reserved))
    );
    assert!(none.is_empty());
    // A call held for approval: its target reserves nothing at all.
    let mut held = Ticket::EMPTY;
    assert_eq!(
        Except::everything(m).reserve(&[shared, target_only], at(3), &mut held),
        Ok(ReserveOutcome::Reserved)
    );
    assert!(held.is_empty());
    assert_eq!(m.read(target_only.counter, at(3)), Ok(1), "nothing added");
    // One rollback gives back both decisions' units.
    assert!(first.absorb(&second));
    m.rollback(&first);
    settle(m);
    assert_eq!(m.read(shared.counter, at(4)), Ok(0));
    assert_eq!(m.read(target_only.counter, at(4)), Ok(0));
}
