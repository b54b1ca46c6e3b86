//! Counters: the state behind rate limits and spend caps.
//!
//! A decision reserves capacity on every counter its rules limit, all or
//! nothing, before the call is forwarded; the proxy later commits the
//! reservation (the upstream answered) or rolls it back (a JSON-RPC error, a
//! timeout, a dead upstream). Backends implement [`Counters`]; the in-memory
//! one ([`MemoryCounters`]) is the default.

use std::collections::HashMap;
use std::fmt;
use std::sync::Mutex;
use std::sync::atomic::{AtomicU64, Ordering};

use crate::fnv::Fnv;

/// Milliseconds since the Unix epoch, UTC.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub struct UnixMillis(pub i64);

impl UnixMillis {
    /// The current wall-clock time.
    pub fn now() -> UnixMillis {
        let d = std::time::SystemTime::now()
            .duration_since(std::time::UNIX_EPOCH)
            .unwrap_or_default();
        UnixMillis(i64::try_from(d.as_millis()).unwrap_or(i64::MAX))
    }
}

impl UnixMillis {
    /// Parses an RFC 3339 timestamp (`2026-01-15T10:30:00Z`, `...T23:30:00.5-02:00`).
    pub fn parse_rfc3339(s: &str) -> Option<UnixMillis> {
        let b = s.as_bytes();
        let num = |r: std::ops::Range<usize>| -> Option<i64> {
            let t = s.get(r)?;
            t.bytes()
                .all(|c| c.is_ascii_digit())
                .then(|| t.parse().ok())?
        };
        if b.len() < 20
            || b[4] != b'-'
            || b[7] != b'-'
            || !matches!(b[10], b'T' | b't' | b' ')
            || b[13] != b':'
            || b[16] != b':'
        {
            return None;
        }
        let (y, mo, d) = (num(0..4)?, num(5..7)?, num(8..10)?);
        let (h, mi, sec) = (num(11..13)?, num(14..16)?, num(17..19)?);
        if !(1..=12).contains(&mo) || !(1..=31).contains(&d) || h > 23 || mi > 59 || sec > 60 {
            return None;
        }
        let mut i = 19;
        let mut millis = 0i64;
        if b.get(i) == Some(&b'.') {
            i += 1;
            let start = i;
            while b.get(i).is_some_and(u8::is_ascii_digit) {
                i += 1;
            }
            if i == start {
                return None;
            }
            let frac = &s[start..i.min(start + 3)];
            millis = frac.parse::<i64>().ok()? * 10i64.pow(3 - frac.len() as u32);
        }
        let offset = match b.get(i)? {
            b'Z' | b'z' if i + 1 == b.len() => 0,
            sign @ (b'+' | b'-') if i + 6 == b.len() && b[i + 3] == b':' => {
                let m = num(i + 1..i + 3)? * 60 + num(i + 4..i + 6)?;
                if *sign == b'+' { m } else { -m }
            }
            _ => return None,
        };
        let days = days_from_civil(y, mo, d);
        let secs = days * 86_400 + h * 3600 + mi * 60 + sec - offset * 60;
        Some(UnixMillis(secs * 1000 + millis))
    }

    /// Formats as RFC 3339 UTC with milliseconds (`2026-01-15T10:30:00.000Z`).
    pub fn to_rfc3339(self) -> String {
        let secs = self.0.div_euclid(1000);
        let ms = self.0.rem_euclid(1000);
        let (days, rem) = (secs.div_euclid(86_400), secs.rem_euclid(86_400));
        let (y, m, d) = civil_from_days(days);
        format!(
            "{y:04}-{m:02}-{d:02}T{:02}:{:02}:{:02}.{ms:03}Z",
            rem / 3600,
            rem % 3600 / 60,
            rem % 60
        )
    }
}

/// Days since 1970-01-01 of a proleptic Gregorian date (Howard Hinnant's algorithm).
fn days_from_civil(y: i64, m: i64, d: i64) -> i64 {
    let y = if m <= 2 { y - 1 } else { y };
    let era = y.div_euclid(400);
    let yoe = y - era * 400;
    let mp = (m + 9) % 12;
    let doy = (153 * mp + 2) / 5 + d - 1;
    let doe = yoe * 365 + yoe / 4 - yoe / 100 + doy;
    era * 146_097 + doe - 719_468
}

/// The date of a day number (inverse of `days_from_civil`).
fn civil_from_days(z: i64) -> (i64, i64, i64) {
    let z = z + 719_468;
    let era = z.div_euclid(146_097);
    let doe = z - era * 146_097;
    let yoe = (doe - doe / 1460 + doe / 36_524 - doe / 146_096) / 365;
    let doy = doe - (365 * yoe + yoe / 4 - yoe / 100);
    let mp = (5 * doy + 2) / 153;
    let d = doy - (153 * mp + 2) / 5 + 1;
    let m = if mp < 10 { mp + 3 } else { mp - 9 };
    (yoe + era * 400 + i64::from(m <= 2), m, d)
}

/// A fixed bucket on the UTC calendar (Intercept's windows).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum Calendar {
    /// From :00 of the current minute.
    Minute,
    /// From :00:00 of the current hour.
    Hour,
    /// From UTC midnight.
    Day,
}

impl Calendar {
    /// Length in milliseconds.
    pub const fn millis(self) -> i64 {
        match self {
            Calendar::Minute => 60_000,
            Calendar::Hour => 3_600_000,
            Calendar::Day => 86_400_000,
        }
    }

    /// The number of the window `millis` (milliseconds since the epoch)
    /// falls in: `millis.div_euclid(self.millis())`, written with constant
    /// divisors, which compile to a multiplication instead of a 64-bit
    /// division (tens of cycles, and every reservation and rollback needs
    /// its window).
    pub const fn window_of(self, millis: i64) -> i64 {
        match self {
            Calendar::Minute => millis.div_euclid(60_000),
            Calendar::Hour => millis.div_euclid(3_600_000),
            Calendar::Day => millis.div_euclid(86_400_000),
        }
    }

    /// The lowercase name used in policies and messages.
    pub const fn name(self) -> &'static str {
        match self {
            Calendar::Minute => "minute",
            Calendar::Hour => "hour",
            Calendar::Day => "day",
        }
    }
}

/// How a counter forgets.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum Window {
    /// Resets at each UTC calendar boundary; up to 2N can pass around a boundary.
    Calendar(Calendar),
    /// Counts the last `millis` milliseconds, in [`SLIDING_SLOTS`] slots.
    ///
    /// Never admits more than the limit within any `millis`-long interval;
    /// a unit can keep counting for up to one slot (1/60 of the window) longer.
    Sliding {
        /// Window length.
        millis: u64,
    },
}

/// Resolution of sliding windows: a window is split into this many slots.
pub const SLIDING_SLOTS: i64 = 60;
/// Ring size: one more slot than the window spans, so a unit is never forgotten early.
const RING: usize = SLIDING_SLOTS as usize + 1;

impl Window {
    fn slot_len(millis: u64) -> i64 {
        let m = i64::try_from(millis).unwrap_or(i64::MAX).max(1);
        (m + SLIDING_SLOTS - 1) / SLIDING_SLOTS
    }

    /// The bucket a reservation made at `now` lands in: the window start for
    /// calendar windows, the slot number for sliding ones.
    pub fn bucket(self, now: UnixMillis) -> i64 {
        match self {
            Window::Calendar(c) => c.window_of(now.0) * c.millis(),
            Window::Sliding { millis } => now.0.div_euclid(Self::slot_len(millis)),
        }
    }

    /// Number of slots before the current one that still count (sliding windows).
    fn span(millis: u64) -> i64 {
        let m = i64::try_from(millis).unwrap_or(i64::MAX).max(1);
        let len = Self::slot_len(millis);
        (m + len - 1) / len
    }

    /// The buckets whose units count at `now`, as an inclusive range
    /// `(oldest, current)`: the current window for calendar windows, the
    /// current slot and the [`SLIDING_SLOTS`] before it for sliding ones.
    /// Every store computes a counter's value as the sum of these buckets.
    pub fn live_buckets(self, now: UnixMillis) -> (i64, i64) {
        let bucket = self.bucket(now);
        match self {
            Window::Calendar(_) => (bucket, bucket),
            Window::Sliding { millis } => (bucket.saturating_sub(Self::span(millis)), bucket),
        }
    }

    /// When units added to `bucket` stop counting (milliseconds since the
    /// epoch): stores may forget the bucket from then on.
    pub fn bucket_expiry(self, bucket: i64) -> i64 {
        match self {
            Window::Calendar(c) => bucket.saturating_add(c.millis()),
            Window::Sliding { millis } => bucket
                .saturating_add(Self::span(millis))
                .saturating_add(1)
                .saturating_mul(Self::slot_len(millis)),
        }
    }

    /// A short, stable name for storage keys: `minute`, `hour`, `day`, or
    /// `<millis>ms` for a sliding window. Part of a stored counter's key, so a
    /// policy that changes a counter's window starts it afresh.
    pub fn storage_name(self) -> std::borrow::Cow<'static, str> {
        match self {
            Window::Calendar(c) => std::borrow::Cow::Borrowed(c.name()),
            Window::Sliding { millis } => std::borrow::Cow::Owned(format!("{millis}ms")),
        }
    }
}

/// Who shares a counter.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum Scope {
    /// One counter for every caller of this proxy (Intercept).
    Global,
    /// One counter per agent session.
    Session,
    /// One counter per distinct value of an argument.
    Argument,
    /// One counter per distinct value of a principal path (`by principal.sub`).
    Principal,
}

/// A counter declared by a policy. Generated code holds these in statics.
#[derive(Debug, PartialEq, Eq, Hash)]
pub struct CounterSpec {
    /// Stable storage key, `<server>/<scope>.<counter>`; the same across builds and reloads.
    pub key: &'static str,
    /// [`counter_id`] of the key and window, computed once (at compile time
    /// for generated code).
    pub id: u64,
    /// How the counter forgets.
    pub window: Window,
    /// Who shares it.
    pub scope: Scope,
}

impl CounterSpec {
    /// A counter spec; usable in statics.
    pub const fn new(key: &'static str, window: Window, scope: Scope) -> CounterSpec {
        CounterSpec {
            key,
            id: counter_id(key, window),
            window,
            scope,
        }
    }
}

/// A stable 64-bit id of a counter key (FNV-1a), so stores index counters
/// without hashing their names on every call. Equal keys, equal ids, in
/// every build and process.
pub const fn key_id(key: &str) -> u64 {
    Fnv::new().bytes(key.as_bytes()).finish()
}

/// The id under which stores keep a counter: its key and its window. A
/// reload that keeps both keeps the count (raising a limit from 5 to 10 per
/// hour keeps what was counted); one that changes the window starts a fresh
/// counter, since counts of one window mean nothing in another (and a
/// sliding-window cell read as a calendar one would read 0 for ever).
pub const fn counter_id(key: &str, window: Window) -> u64 {
    let salt: u64 = match window {
        Window::Calendar(Calendar::Minute) => 1,
        Window::Calendar(Calendar::Hour) => 2,
        Window::Calendar(Calendar::Day) => 3,
        Window::Sliding { millis } => 4 ^ (millis << 3),
    };
    key_id(key) ^ salt.wrapping_mul(0x9e37_79b9_7f4a_7c15)
}

/// One counter of one call: which counter, which partition (0 for global counters).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct CounterRef {
    /// The counter.
    pub spec: &'static CounterSpec,
    /// 0 for counters every caller shares; the session id (below 2^64) for
    /// `by session`; [`crate::ops::partition_of`] (top bit set) for `by args.x`.
    pub partition: u128,
}

/// A request to add `amount` to a counter if the result stays within `limit`.
#[derive(Debug, Clone, Copy)]
pub struct ReserveRequest {
    /// Which counter.
    pub counter: CounterRef,
    /// Units this call adds.
    pub amount: u64,
    /// Highest value the counter may reach.
    pub limit: u64,
}

/// A reservation that was made and can be rolled back.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Reservation {
    /// Which counter.
    pub counter: CounterRef,
    /// Units added.
    pub amount: u64,
    /// The bucket they were added to (see [`Window::bucket`]); rollback never touches a later bucket.
    pub bucket: i64,
}

/// Most counters one call can reserve; the compiler rejects policies that could need more.
pub const MAX_RESERVATIONS: usize = 8;

/// Fills unused slots of fixed-size reservation arrays; never stored.
pub static UNUSED_COUNTER: CounterSpec =
    CounterSpec::new("", Window::Calendar(Calendar::Minute), Scope::Global);

/// One entry of a [`Ticket`]: a [`Reservation`] stored in 40 bytes. The
/// partition is kept as two words, not a `u128`, whose 16-byte alignment
/// would pad every entry (and the ticket) by 8 bytes; a caller's ticket is
/// written on every decision that reserves.
#[derive(Clone, Copy)]
struct Entry {
    spec: &'static CounterSpec,
    partition: [u64; 2],
    amount: u64,
    bucket: i64,
}

impl Entry {
    #[inline]
    fn new(r: Reservation) -> Entry {
        Entry {
            spec: r.counter.spec,
            partition: [
                r.counter.partition as u64,
                (r.counter.partition >> 64) as u64,
            ],
            amount: r.amount,
            bucket: r.bucket,
        }
    }

    #[inline]
    fn get(&self) -> Reservation {
        Reservation {
            counter: CounterRef {
                spec: self.spec,
                partition: u128::from(self.partition[0]) | (u128::from(self.partition[1]) << 64),
            },
            amount: self.amount,
            bucket: self.bucket,
        }
    }
}

/// The reservations of one call: fixed capacity, no allocation.
#[derive(Clone, Copy)]
pub struct Ticket {
    len: u8,
    /// The store's id for this reservation (0: none); see [`Ticket::op`].
    op: u64,
    /// The first `len` are `Some`. Options (a null counter pointer for
    /// None) so that an empty ticket, which every decision starts from, is
    /// written as one word per entry rather than copied whole.
    entries: [Option<Entry>; MAX_RESERVATIONS],
}

impl Default for Ticket {
    fn default() -> Self {
        Ticket::EMPTY
    }
}

/// Tickets are equal when they hold the same reservations and id (entries
/// past the length are never read, so a cleared ticket equals an empty one).
impl PartialEq for Ticket {
    fn eq(&self, other: &Ticket) -> bool {
        self.op == other.op && self.iter().eq(other.iter())
    }
}

impl Eq for Ticket {}

impl fmt::Debug for Ticket {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_list().entries(self.iter()).finish()
    }
}

impl Ticket {
    /// No reservations.
    pub const EMPTY: Ticket = Ticket {
        len: 0,
        op: 0,
        entries: [None; MAX_RESERVATIONS],
    };

    /// Adds a reservation; returns false when full.
    pub fn push(&mut self, r: Reservation) -> bool {
        let i = usize::from(self.len);
        if i >= MAX_RESERVATIONS {
            return false;
        }
        self.entries[i] = Some(Entry::new(r));
        self.len += 1;
        true
    }

    /// Empties the ticket (what [`Ticket::EMPTY`] holds, without rewriting
    /// every entry: a decision clears its ticket in place).
    pub fn clear(&mut self) {
        self.len = 0;
        self.op = 0;
    }

    /// The reservations, in order.
    pub fn iter(&self) -> impl Iterator<Item = Reservation> + '_ {
        self.entries[..usize::from(self.len)]
            .iter()
            .flatten()
            .map(Entry::get)
    }

    /// True when nothing was reserved.
    pub fn is_empty(&self) -> bool {
        self.len == 0
    }

    /// An id the store gave this reservation (0: none). A networked store
    /// (Redis) sends it with the rollback so that a rollback delivered twice
    /// (a client library resending after a timeout) gives the units back once.
    pub fn op(&self) -> u64 {
        self.op
    }

    /// Sets [`Ticket::op`].
    pub fn set_op(&mut self, op: u64) {
        self.op = op;
    }

    /// Appends `other`'s reservations (made on the same store, for the same
    /// call: see [`Except`]) so that one commit or rollback covers both.
    /// The store's id stays this ticket's (or becomes `other`'s when this
    /// one has none): a rollback is one operation over every entry. False,
    /// with nothing appended, when both do not fit.
    pub fn absorb(&mut self, other: &Ticket) -> bool {
        if usize::from(self.len) + usize::from(other.len) > MAX_RESERVATIONS {
            return false;
        }
        for r in other.iter() {
            self.push(r);
        }
        if self.op == 0 {
            self.op = other.op;
        }
        true
    }

    /// True when this ticket holds a reservation of `counter`.
    pub fn holds(&self, counter: CounterRef) -> bool {
        self.iter().any(|r| {
            r.counter.partition == counter.partition && r.counter.spec.id == counter.spec.id
        })
    }
}

/// The outcome of [`Counters::reserve`].
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum ReserveOutcome {
    /// Every request was added; the ticket holds them.
    Reserved,
    /// Nothing was added: request `index` (the first in order) would exceed its limit.
    Refused {
        /// Index into the requests.
        index: usize,
    },
}

/// The counter store could not answer (database down, ...).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct StateError(pub String);

impl fmt::Display for StateError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "policy state unavailable: {}", self.0)
    }
}

impl std::error::Error for StateError {}

/// A counter store. Implementations must make `reserve` atomic over the
/// whole batch: concurrent calls racing a limit never overshoot it.
pub trait Counters: Send + Sync {
    /// The counter's value in the current window (0 when absent or expired).
    fn read(&self, counter: CounterRef, now: UnixMillis) -> Result<u64, StateError>;

    /// Adds every request's amount, or none of them. On success the
    /// reservations are appended to `ticket`.
    fn reserve(
        &self,
        requests: &[ReserveRequest],
        now: UnixMillis,
        ticket: &mut Ticket,
    ) -> Result<ReserveOutcome, StateError>;

    /// The call went through: keep the reservation. (Stores that hold
    /// reservations provisionally finalise them here.)
    fn commit(&self, ticket: &Ticket) {
        let _ = ticket;
    }

    /// The call failed upstream: give the units back (never below zero, never
    /// to a later window than the one they were taken from).
    fn rollback(&self, ticket: &Ticket);

    /// True when `read` and `reserve` may wait on I/O (a file lock, the
    /// network). The proxy then decides calls that need counters off its
    /// event loop, so other messages keep flowing meanwhile. `rollback` must
    /// never wait: a store that does I/O queues it.
    fn may_block(&self) -> bool {
        false
    }

    /// [`Counters::read`], but `Ok(None)` instead of waiting (another
    /// process holds the store's lock, the answer needs a network round
    /// trip). The proxy tries this on its event loop first and hands the
    /// decision to a blocking thread only when it gets `None`. Stores that
    /// never wait answer at once (the default).
    fn try_read(&self, counter: CounterRef, now: UnixMillis) -> Result<Option<u64>, StateError> {
        self.read(counter, now).map(Some)
    }

    /// [`Counters::reserve`], but `Ok(None)`, having added nothing, instead
    /// of waiting. See [`Counters::try_read`].
    fn try_reserve(
        &self,
        requests: &[ReserveRequest],
        now: UnixMillis,
        ticket: &mut Ticket,
    ) -> Result<Option<ReserveOutcome>, StateError> {
        self.reserve(requests, now, ticket).map(Some)
    }

    /// The idempotency records kept beside these counters (same backend,
    /// shared the same way); None for a store that keeps none, and the
    /// proxy then treats a call with an idempotency window as needing
    /// state it cannot reach (the fail mode decides).
    fn idempotency(&self) -> Option<&dyn crate::idempotency::IdempotencyStore> {
        None
    }
}

/// A view of a store for a decision on the proxy's event loop: reads and
/// reservations use [`Counters::try_read`] and [`Counters::try_reserve`], and
/// when the store would have to wait, they fail and [`NoWait::waited`]
/// turns true. The decision is then void (nothing was reserved) and is taken
/// again, against the store itself, on a thread that may wait.
pub struct NoWait<'a> {
    inner: &'a dyn Counters,
    would_wait: std::sync::atomic::AtomicBool,
}

impl<'a> NoWait<'a> {
    /// A view of `inner`.
    pub fn new(inner: &'a dyn Counters) -> NoWait<'a> {
        NoWait {
            inner,
            would_wait: std::sync::atomic::AtomicBool::new(false),
        }
    }

    /// True when a read or reservation would have had to wait: the decision
    /// taken through this view must be discarded.
    pub fn waited(&self) -> bool {
        self.would_wait.load(std::sync::atomic::Ordering::Relaxed)
    }

    fn wait(&self) -> StateError {
        self.would_wait
            .store(true, std::sync::atomic::Ordering::Relaxed);
        StateError(String::new())
    }
}

impl Counters for NoWait<'_> {
    fn read(&self, counter: CounterRef, now: UnixMillis) -> Result<u64, StateError> {
        if self.waited() {
            return Err(StateError(String::new()));
        }
        match self.inner.try_read(counter, now)? {
            Some(v) => Ok(v),
            None => Err(self.wait()),
        }
    }

    fn reserve(
        &self,
        requests: &[ReserveRequest],
        now: UnixMillis,
        ticket: &mut Ticket,
    ) -> Result<ReserveOutcome, StateError> {
        if self.waited() {
            return Err(StateError(String::new()));
        }
        match self.inner.try_reserve(requests, now, ticket)? {
            Some(outcome) => Ok(outcome),
            None => Err(self.wait()),
        }
    }

    fn commit(&self, ticket: &Ticket) {
        self.inner.commit(ticket);
    }

    fn rollback(&self, ticket: &Ticket) {
        self.inner.rollback(ticket);
    }
}

/// A view of a store for deciding a call a second time, on what it
/// resolves to (a symlink's target: see the proxy's `symlinks` module),
/// after the first decision reserved `held`: a reservation of a counter
/// `held` already holds is not made again (the call counts once against
/// it, and the first decision already found room), every other one is made
/// as usual into the second decision's ticket, which the caller then
/// [`Ticket::absorb`]s into the first. So a limit both decisions share
/// counts the call once, and a limit only the second carries counts it
/// too. Reads, commits and rollbacks go to the store as they are.
pub struct Except<'a> {
    inner: &'a dyn Counters,
    held: &'a Ticket,
    /// Leave out every reservation (see [`Except::everything`]).
    all: bool,
}

impl<'a> Except<'a> {
    /// A view of `inner` that leaves out what `held` reserved.
    pub fn new(inner: &'a dyn Counters, held: &'a Ticket) -> Except<'a> {
        Except {
            inner,
            held,
            all: false,
        }
    }

    /// A view of `inner` that reserves nothing (every reservation answers
    /// as made, none is): for deciding the target of a call held for
    /// approval, which counts nothing until it is approved. Reads still go
    /// to the store. (Reserving and rolling back instead would leave the
    /// units counted until a store that queues rollbacks applies them.)
    pub fn everything(inner: &'a dyn Counters) -> Except<'a> {
        static NONE: Ticket = Ticket::EMPTY;
        Except {
            inner,
            held: &NONE,
            all: true,
        }
    }

    /// Calls `reserve` with the requests `held` does not cover (their
    /// indices mapped back on a refusal); nothing to reserve is reserved.
    fn filtered(
        &self,
        requests: &[ReserveRequest],
        reserve: impl FnOnce(&[ReserveRequest]) -> Result<Option<ReserveOutcome>, StateError>,
    ) -> Result<Option<ReserveOutcome>, StateError> {
        if requests.len() > MAX_RESERVATIONS {
            // The compiler rejects policies that could need more.
            return Err(StateError("too many reservations for one call".into()));
        }
        let unused = ReserveRequest {
            counter: CounterRef {
                spec: &UNUSED_COUNTER,
                partition: 0,
            },
            amount: 0,
            limit: 0,
        };
        let mut kept = [unused; MAX_RESERVATIONS];
        let mut from = [0usize; MAX_RESERVATIONS];
        let mut n = 0;
        for (i, r) in requests.iter().enumerate() {
            if !self.all && !self.held.holds(r.counter) {
                kept[n] = *r;
                from[n] = i;
                n += 1;
            }
        }
        if n == 0 {
            return Ok(Some(ReserveOutcome::Reserved));
        }
        Ok(reserve(&kept[..n])?.map(|o| match o {
            ReserveOutcome::Refused { index } => ReserveOutcome::Refused {
                index: from[index.min(n - 1)],
            },
            ReserveOutcome::Reserved => ReserveOutcome::Reserved,
        }))
    }
}

impl Counters for Except<'_> {
    fn read(&self, counter: CounterRef, now: UnixMillis) -> Result<u64, StateError> {
        self.inner.read(counter, now)
    }

    fn reserve(
        &self,
        requests: &[ReserveRequest],
        now: UnixMillis,
        ticket: &mut Ticket,
    ) -> Result<ReserveOutcome, StateError> {
        // The store's `reserve` always answers (Some).
        self.filtered(requests, |r| self.inner.reserve(r, now, ticket).map(Some))
            .map(|o| o.unwrap_or(ReserveOutcome::Reserved))
    }

    fn commit(&self, ticket: &Ticket) {
        self.inner.commit(ticket);
    }

    fn rollback(&self, ticket: &Ticket) {
        self.inner.rollback(ticket);
    }

    fn may_block(&self) -> bool {
        self.inner.may_block()
    }

    fn try_read(&self, counter: CounterRef, now: UnixMillis) -> Result<Option<u64>, StateError> {
        self.inner.try_read(counter, now)
    }

    fn try_reserve(
        &self,
        requests: &[ReserveRequest],
        now: UnixMillis,
        ticket: &mut Ticket,
    ) -> Result<Option<ReserveOutcome>, StateError> {
        self.filtered(requests, |r| self.inner.try_reserve(r, now, ticket))
    }

    fn idempotency(&self) -> Option<&dyn crate::idempotency::IdempotencyStore> {
        self.inner.idempotency()
    }
}

// ---------------------------------------------------------------------------
// In-memory store.

#[derive(Debug)]
enum Cell {
    Calendar { start: i64, value: u64 },
    Sliding { ring: Box<[(i64, u64); RING]> },
}

impl Cell {
    fn new(window: Window) -> Cell {
        match window {
            Window::Calendar(_) => Cell::Calendar {
                start: i64::MIN,
                value: 0,
            },
            Window::Sliding { .. } => Cell::Sliding {
                ring: Box::new([(i64::MIN, 0); RING]),
            },
        }
    }

    fn value(&self, window: Window, now: UnixMillis) -> u64 {
        let bucket = window.bucket(now);
        match (self, window) {
            (Cell::Calendar { start, value }, _) => {
                if *start == bucket {
                    *value
                } else {
                    0
                }
            }
            (Cell::Sliding { ring }, Window::Sliding { millis }) => {
                let oldest = bucket - Window::span(millis);
                ring.iter()
                    .filter(|(slot, _)| (oldest..=bucket).contains(slot))
                    .fold(0u64, |acc, (_, v)| acc.saturating_add(*v))
            }
            (Cell::Sliding { .. }, Window::Calendar(_)) => 0,
        }
    }

    fn add(&mut self, bucket: i64, amount: u64) {
        match self {
            Cell::Calendar { start, value } => {
                if *start != bucket {
                    *start = bucket;
                    *value = 0;
                }
                *value = value.saturating_add(amount);
            }
            Cell::Sliding { ring } => {
                let e = &mut ring[bucket.rem_euclid(RING as i64) as usize];
                if e.0 != bucket {
                    *e = (bucket, 0);
                }
                e.1 = e.1.saturating_add(amount);
            }
        }
    }

    fn remove(&mut self, bucket: i64, amount: u64) {
        match self {
            Cell::Calendar { start, value } => {
                if *start == bucket {
                    *value = value.saturating_sub(amount);
                }
            }
            Cell::Sliding { ring } => {
                let e = &mut ring[bucket.rem_euclid(RING as i64) as usize];
                if e.0 == bucket {
                    e.1 = e.1.saturating_sub(amount);
                }
            }
        }
    }

    fn is_stale(&self, window: Window, now: UnixMillis) -> bool {
        self.value(window, now) == 0
    }
}

/// (counter id, partition).
type CellKey = (u64, u128);

/// A keyed, fast hasher for cell keys. Partitions are derived from
/// caller-chosen values, so the seed is random per process: nobody can
/// aim many partitions at one bucket.
#[derive(Debug, Clone, Copy)]
pub struct SeededState(u64);

impl Default for SeededState {
    fn default() -> Self {
        use std::hash::{BuildHasher as _, Hasher as _};
        SeededState(
            std::collections::hash_map::RandomState::new()
                .build_hasher()
                .finish()
                | 1,
        )
    }
}

impl std::hash::BuildHasher for SeededState {
    type Hasher = Mixer;
    fn build_hasher(&self) -> Mixer {
        Mixer(self.0)
    }
}

/// Folded-multiply mixing of 64-bit words (as in wyhash / foldhash).
pub struct Mixer(u64);

impl std::hash::Hasher for Mixer {
    fn write(&mut self, bytes: &[u8]) {
        for chunk in bytes.chunks(8) {
            let mut w = [0u8; 8];
            w[..chunk.len()].copy_from_slice(chunk);
            self.write_u64(u64::from_le_bytes(w));
        }
    }
    fn write_u64(&mut self, v: u64) {
        let m = u128::from(self.0 ^ v) * 0x9e37_79b9_7f4a_7c15_u128;
        self.0 = (m as u64) ^ ((m >> 64) as u64);
    }
    fn write_u128(&mut self, v: u128) {
        self.write_u64(v as u64);
        self.write_u64((v >> 64) as u64);
    }
    fn finish(&self) -> u64 {
        self.0
    }
}

/// Counters in this process's memory (the default backend).
///
/// Counters every caller shares (partition 0) with a calendar window, such as
/// a global rate limit, which nearly every call reserves, live in a small
/// lock-free table of [`FastSlot`]s: one atomic word each, reserved with one
/// compare-and-swap, no lock and no hashing (a mutex and a hash map cost
/// about 50 ns per call; this costs a few). Every other counter lives in a
/// hash map behind one mutex, which makes its batch reservation trivially
/// atomic; cells are created there on first use (the only allocation) and
/// stale ones are pruned as the map grows.
#[derive(Debug)]
pub struct MemoryCounters {
    fast: Box<[FastSlot; FAST_SLOTS]>,
    cells: Mutex<Cells>,
    idempotency: crate::idempotency::MemoryIdempotency,
}

impl Default for MemoryCounters {
    fn default() -> Self {
        MemoryCounters {
            fast: Box::new(std::array::from_fn(|_| FastSlot::default())),
            cells: Mutex::default(),
            idempotency: Default::default(),
        }
    }
}

/// Slots of the lock-free table. A counter takes the first free slot of its
/// probe sequence on first use and keeps it for the life of the store, so
/// it is always found in the same place; a counter that finds its first
/// [`FAST_PROBES`] slots taken by others lives in the map instead, for good
/// (slots are never freed, so the same probe always gives the same answer).
const FAST_SLOTS: usize = 256;
/// Slots probed per lookup.
const FAST_PROBES: usize = 16;
/// Bits of a slot's word that hold the value; the rest hold the window.
const VALUE_BITS: u32 = 40;
/// The highest value a lock-free counter holds: about 1.1 * 10^12 units per
/// window. A limit above it acts as this value (a reservation that would
/// take the counter past it is refused), which no rate limit reaches in
/// practice (18 billion calls a second for a per-minute limit).
const VALUE_MAX: u64 = (1 << VALUE_BITS) - 1;
/// Bits of the window number kept beside the value.
const WINDOW_BITS: u32 = 64 - VALUE_BITS;

/// One counter of the lock-free table: its [`CounterSpec::id`] (0: free)
/// and one word holding the window number (low 24 bits of window start /
/// window length) and the value (low 40 bits). A value read in another
/// window than its own reads 0 and is replaced by the next reservation,
/// exactly as a map cell's. Keeping 24 bits of the window number means a
/// value untouched for exactly 2^24 windows (32 years for a per-minute
/// window) would read as current; no process lives that long.
#[derive(Debug, Default)]
struct FastSlot {
    id: AtomicU64,
    word: AtomicU64,
}

/// The window number of a calendar bucket (its start), as kept in a slot.
fn window_number(window: Window, bucket: i64) -> u64 {
    let n = match window {
        Window::Calendar(c) => c.window_of(bucket),
        // Never stored in a slot (see `fast_eligible`); any number works.
        Window::Sliding { .. } => bucket,
    };
    (n as u64) & ((1 << WINDOW_BITS) - 1)
}

/// The bucket a lock-free (calendar) counter reserves in at `now` and its
/// window number as a slot keeps it, from one division by a constant
/// ([`Window::bucket`] then [`window_number`] would take two).
fn fast_window(window: Window, now: UnixMillis) -> (i64, u64) {
    match window {
        Window::Calendar(c) => {
            let n = c.window_of(now.0);
            (n * c.millis(), (n as u64) & ((1 << WINDOW_BITS) - 1))
        }
        // Never stored in a slot (see `fast_eligible`).
        Window::Sliding { .. } => {
            let bucket = window.bucket(now);
            (bucket, window_number(window, bucket))
        }
    }
}

/// The value a slot's word holds for window number `n`.
fn value_in(word: u64, n: u64) -> u64 {
    if word >> VALUE_BITS == n {
        word & VALUE_MAX
    } else {
        0
    }
}

/// Counters the lock-free table holds: shared by every caller (partition 0),
/// calendar window. (Sliding windows need a ring of slots; partitioned
/// counters are unbounded in number.)
fn fast_eligible(c: CounterRef) -> bool {
    c.partition == 0 && c.spec.id != 0 && matches!(c.spec.window, Window::Calendar(_))
}

impl FastSlot {
    /// Adds `amount` in window `n` if the result stays within `limit`.
    fn reserve(&self, n: u64, amount: u64, limit: u64) -> bool {
        let limit = limit.min(VALUE_MAX);
        let mut word = self.word.load(Ordering::Relaxed);
        loop {
            let next = match value_in(word, n).checked_add(amount) {
                Some(v) if v <= limit => (n << VALUE_BITS) | v,
                _ => return false,
            };
            // AcqRel/Acquire: a reservation is ordered with the ones it
            // races, as under the map's mutex.
            match self
                .word
                .compare_exchange_weak(word, next, Ordering::AcqRel, Ordering::Acquire)
            {
                Ok(_) => return true,
                Err(w) => word = w,
            }
        }
    }

    /// Takes `amount` back from window `n` (never below zero; nothing when
    /// the slot has moved on to another window).
    fn give_back(&self, n: u64, amount: u64) {
        let _ = self
            .word
            .fetch_update(Ordering::AcqRel, Ordering::Acquire, |word| {
                (word >> VALUE_BITS == n)
                    .then(|| (n << VALUE_BITS) | (word & VALUE_MAX).saturating_sub(amount))
            });
    }
}

#[derive(Debug, Default)]
struct Cells {
    map: HashMap<CellKey, (Window, Cell), SeededState>,
    prune: PruneSchedule,
}

/// When an in-memory map of expiring entries is swept: once it has grown to
/// twice its size after the last sweep (and to at least 1024 entries), so a
/// sweep's cost is spread over the insertions that grew the map, instead of
/// scanning it on every insertion. Shared by the memory counters and the
/// memory idempotency records.
#[derive(Debug, Default)]
pub(crate) struct PruneSchedule {
    at: usize,
}

impl PruneSchedule {
    /// True when a map of `len` entries is due for a sweep.
    pub(crate) fn due(&self, len: usize) -> bool {
        len >= self.at.max(1024)
    }

    /// A sweep left `len` entries: the next one is due at twice that.
    pub(crate) fn swept(&mut self, len: usize) {
        self.at = len.saturating_mul(2);
    }
}

impl MemoryCounters {
    /// An empty store.
    pub fn new() -> MemoryCounters {
        MemoryCounters::default()
    }

    fn lock(&self) -> std::sync::MutexGuard<'_, Cells> {
        // A panic while holding the lock cannot leave a cell half-written
        // (every update is a single assignment), so a poisoned lock is safe to reuse.
        self.cells.lock().unwrap_or_else(|e| e.into_inner())
    }

    /// The slot of `c` in the lock-free table, taking a free one when `claim`
    /// (None: `c` lives in the map).
    fn slot(&self, c: CounterRef, claim: bool) -> Option<&FastSlot> {
        if !fast_eligible(c) {
            return None;
        }
        let id = c.spec.id;
        let start = (id ^ (id >> 32)) as usize;
        for i in 0..FAST_PROBES {
            let slot = &self.fast[(start + i) % FAST_SLOTS];
            let mut held = slot.id.load(Ordering::Acquire);
            if held == 0 {
                if !claim {
                    return None; // never reserved, so not in the map either: reads 0
                }
                // Two threads claiming at once: one wins, the other sees the
                // winner's id (the same id, or another counter's: probe on).
                held = match slot
                    .id
                    .compare_exchange(0, id, Ordering::AcqRel, Ordering::Acquire)
                {
                    Ok(_) => id,
                    Err(other) => other,
                };
            }
            if held == id {
                return Some(slot);
            }
        }
        None
    }
}

impl Cells {
    fn add(&mut self, c: CounterRef, bucket: i64, amount: u64, now: UnixMillis) {
        let key = (c.spec.id, c.partition);
        if let Some((_, cell)) = self.map.get_mut(&key) {
            cell.add(bucket, amount);
            return;
        }
        // A new cell: the only allocation. Prune expired cells as the map grows.
        if self.prune.due(self.map.len()) {
            self.map.retain(|_, (w, cell)| !cell.is_stale(*w, now));
            self.prune.swept(self.map.len());
        }
        let mut cell = Cell::new(c.spec.window);
        cell.add(bucket, amount);
        self.map.insert(key, (c.spec.window, cell));
    }
}

impl Counters for MemoryCounters {
    fn idempotency(&self) -> Option<&dyn crate::idempotency::IdempotencyStore> {
        Some(&self.idempotency)
    }

    fn read(&self, counter: CounterRef, now: UnixMillis) -> Result<u64, StateError> {
        if let Some(slot) = self.slot(counter, false) {
            let n = window_number(counter.spec.window, counter.spec.window.bucket(now));
            return Ok(value_in(slot.word.load(Ordering::Acquire), n));
        }
        let cells = self.lock();
        Ok(cells
            .map
            .get(&(counter.spec.id, counter.partition))
            .map_or(0, |(_, cell)| cell.value(counter.spec.window, now)))
    }

    fn reserve(
        &self,
        requests: &[ReserveRequest],
        now: UnixMillis,
        ticket: &mut Ticket,
    ) -> Result<ReserveOutcome, StateError> {
        if let [r] = requests
            && let Some(slot) = self.slot(r.counter, true)
        {
            // One lock-free counter (a global limit), the common case: one
            // compare-and-swap, no lock.
            let (bucket, n) = fast_window(r.counter.spec.window, now);
            if r.amount > 0 && !slot.reserve(n, r.amount, r.limit) {
                return Ok(ReserveOutcome::Refused { index: 0 });
            }
            ticket.push(Reservation {
                counter: r.counter,
                amount: r.amount,
                bucket,
            });
            return Ok(ReserveOutcome::Reserved);
        }
        if let [r] = requests {
            let mut cells = self.lock();
            // One counter, the common case: one lookup.
            let bucket = r.counter.spec.window.bucket(now);
            if r.amount > 0 {
                let key = (r.counter.spec.id, r.counter.partition);
                match cells.map.get_mut(&key) {
                    Some((_, cell)) => {
                        match cell.value(r.counter.spec.window, now).checked_add(r.amount) {
                            Some(v) if v <= r.limit => cell.add(bucket, r.amount),
                            _ => return Ok(ReserveOutcome::Refused { index: 0 }),
                        }
                    }
                    None if r.amount > r.limit => return Ok(ReserveOutcome::Refused { index: 0 }),
                    None => cells.add(r.counter, bucket, r.amount, now),
                }
            }
            ticket.push(Reservation {
                counter: r.counter,
                amount: r.amount,
                bucket,
            });
            return Ok(ReserveOutcome::Reserved);
        }
        // The map's lock, taken at the first counter that lives in the map
        // and held to the end (a batch of lock-free counters takes none).
        let mut guard = None;
        // A batch, in order. Lock-free counters are reserved as they come
        // (their compare-and-swap checks the limit, earlier requests of the
        // batch included) and given back if a later request is refused; map
        // counters are checked under the lock, which keeps them still, and
        // added once everything fits. Nothing is ever admitted over a limit;
        // a concurrent call may see a lock-free counter's units for the
        // instant before they are given back and be refused, which errs
        // toward refusing, as a security limit should.
        // Each request goes into the ticket as it is checked (its bucket
        // computed once); a refusal gives back what the lock-free ones took
        // and leaves the ticket as it came.
        let start = ticket.len;
        let refuse = |ticket: &mut Ticket, index: usize| {
            for t in ticket.iter().skip(usize::from(start)) {
                if t.amount > 0
                    && let Some(slot) = self.slot(t.counter, false)
                {
                    slot.give_back(window_number(t.counter.spec.window, t.bucket), t.amount);
                }
            }
            ticket.len = start;
            Ok(ReserveOutcome::Refused { index })
        };
        for (index, r) in requests.iter().enumerate() {
            let bucket;
            // Adding nothing always fits, as in Intercept.
            if r.amount == 0 {
                bucket = r.counter.spec.window.bucket(now);
            } else {
                if let Some(slot) = self.slot(r.counter, true) {
                    let (b, n) = fast_window(r.counter.spec.window, now);
                    bucket = b;
                    if !slot.reserve(n, r.amount, r.limit) {
                        return refuse(ticket, index);
                    }
                } else {
                    bucket = r.counter.spec.window.bucket(now);
                    let cells = guard.get_or_insert_with(|| self.lock());
                    let stored = cells
                        .map
                        .get(&(r.counter.spec.id, r.counter.partition))
                        .map_or(0, |(_, cell)| cell.value(r.counter.spec.window, now));
                    // Earlier requests of this batch on the same counter count too.
                    let pending = requests[..index]
                        .iter()
                        .filter(|e| {
                            e.counter.spec.id == r.counter.spec.id
                                && e.counter.partition == r.counter.partition
                        })
                        .fold(0u64, |acc, e| acc.saturating_add(e.amount));
                    match stored
                        .checked_add(pending)
                        .and_then(|v| v.checked_add(r.amount))
                    {
                        Some(v) if v <= r.limit => {}
                        _ => return refuse(ticket, index),
                    }
                }
            }
            ticket.push(Reservation {
                counter: r.counter,
                amount: r.amount,
                bucket,
            });
        }
        // Everything fits: add the map counters (lock-free ones are done).
        if let Some(cells) = guard.as_mut() {
            for r in ticket.iter().skip(usize::from(start)) {
                if r.amount > 0 && self.slot(r.counter, false).is_none() {
                    cells.add(r.counter, r.bucket, r.amount, now);
                }
            }
        }
        Ok(ReserveOutcome::Reserved)
    }

    fn rollback(&self, ticket: &Ticket) {
        let mut cells = None;
        for r in ticket.iter() {
            if let Some(slot) = self.slot(r.counter, false) {
                slot.give_back(window_number(r.counter.spec.window, r.bucket), r.amount);
                continue;
            }
            let cells = cells.get_or_insert_with(|| self.lock());
            if let Some((_, cell)) = cells.map.get_mut(&(r.counter.spec.id, r.counter.partition)) {
                cell.remove(r.bucket, r.amount);
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    static MINUTE: CounterSpec =
        CounterSpec::new("s/t.c", Window::Calendar(Calendar::Minute), Scope::Global);
    static SLIDE: CounterSpec = CounterSpec::new(
        "s/t.slide",
        Window::Sliding { millis: 60_000 },
        Scope::Session,
    );

    /// The constant-divisor window numbers are the divisions they replace,
    /// at boundaries, before the epoch and at the extremes.
    #[test]
    fn window_numbers_are_euclidean_divisions() {
        for c in [Calendar::Minute, Calendar::Hour, Calendar::Day] {
            let m = c.millis();
            for base in [0, 1_767_225_630_000, -m * 7, i64::MAX - m, i64::MIN + m] {
                for d in [-m - 1, -m, -1, 0, 1, m - 1, m, m + 1] {
                    let t = base.saturating_add(d);
                    assert_eq!(c.window_of(t), t.div_euclid(m), "{c:?} at {t}");
                    // The lock-free store's one-division shortcut gives the
                    // bucket and slot window number of the two-step path
                    // (at real times: a bucket start near i64::MIN overflows).
                    if t.unsigned_abs() > 1 << 60 {
                        continue;
                    }
                    let w = Window::Calendar(c);
                    let bucket = w.bucket(UnixMillis(t));
                    assert_eq!(
                        fast_window(w, UnixMillis(t)),
                        (bucket, window_number(w, bucket)),
                        "{c:?} at {t}"
                    );
                }
            }
        }
    }

    fn req(spec: &'static CounterSpec, amount: u64, limit: u64) -> ReserveRequest {
        ReserveRequest {
            counter: CounterRef { spec, partition: 0 },
            amount,
            limit,
        }
    }

    #[test]
    fn rfc3339_round_trips() {
        let t = UnixMillis::parse_rfc3339("2026-01-15T10:30:00Z").unwrap();
        assert_eq!(t, UnixMillis(1_768_473_000_000));
        assert_eq!(t.to_rfc3339(), "2026-01-15T10:30:00.000Z");
        assert_eq!(
            UnixMillis::parse_rfc3339("2026-01-15T23:30:00-02:00")
                .unwrap()
                .to_rfc3339(),
            "2026-01-16T01:30:00.000Z"
        );
        assert_eq!(
            UnixMillis::parse_rfc3339("2026-01-15T10:30:59.999Z")
                .unwrap()
                .0
                % 1000,
            999
        );
        assert_eq!(
            UnixMillis::parse_rfc3339("2026-01-15T10:31:00.5Z")
                .unwrap()
                .0
                % 1000,
            500
        );
        assert!(UnixMillis::parse_rfc3339("2026-13-15T10:30:00Z").is_none());
        assert!(UnixMillis::parse_rfc3339("2026-01-15 10:30").is_none());
        assert_eq!(UnixMillis(0).to_rfc3339(), "1970-01-01T00:00:00.000Z");
        assert_eq!(
            UnixMillis::parse_rfc3339("2000-02-29T00:00:00Z")
                .unwrap()
                .to_rfc3339(),
            "2000-02-29T00:00:00.000Z"
        );
    }

    #[test]
    fn calendar_window_resets_at_the_boundary() {
        let m = MemoryCounters::new();
        let t = |s: i64| UnixMillis(1_768_473_000_000 + s * 1000); // 10:30:00Z on 2026-01-15
        let mut tk = Ticket::EMPTY;
        assert_eq!(
            m.reserve(&[req(&MINUTE, 1, 2)], t(58), &mut tk),
            Ok(ReserveOutcome::Reserved)
        );
        assert_eq!(
            m.reserve(&[req(&MINUTE, 1, 2)], t(59), &mut tk),
            Ok(ReserveOutcome::Reserved)
        );
        assert_eq!(
            m.reserve(&[req(&MINUTE, 1, 2)], t(59), &mut Ticket::default()),
            Ok(ReserveOutcome::Refused { index: 0 })
        );
        assert_eq!(
            m.reserve(&[req(&MINUTE, 1, 2)], t(60), &mut tk),
            Ok(ReserveOutcome::Reserved)
        );
        assert_eq!(
            m.read(
                CounterRef {
                    spec: &MINUTE,
                    partition: 0
                },
                t(61)
            ),
            Ok(1)
        );
    }

    #[test]
    fn sliding_window_never_over_admits() {
        let m = MemoryCounters::new();
        let mut admitted: Vec<i64> = Vec::new();
        // One attempt every 700 ms for ten minutes against 30 per 60 s.
        for i in 0..860 {
            let now = 1_000_000 + i * 700;
            let mut tk = Ticket::EMPTY;
            if m.reserve(&[req(&SLIDE, 1, 30)], UnixMillis(now), &mut tk)
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
            assert!(in_window <= 30, "{in_window} admitted within 60 s of {t}");
        }
        // And it does admit again once the window has passed: well over 30 in ten minutes.
        assert!(admitted.len() >= 30 * 9, "only {} admitted", admitted.len());
    }

    #[test]
    fn batch_is_all_or_nothing_and_rollback_restores() {
        let m = MemoryCounters::new();
        let now = UnixMillis(0);
        let mut tk = Ticket::EMPTY;
        let batch = [req(&MINUTE, 1, 1), req(&SLIDE, 1, 1)];
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
        m.rollback(&tk);
        assert_eq!(m.read(batch[0].counter, now), Ok(0));
        assert_eq!(m.read(batch[1].counter, now), Ok(0));
        assert_eq!(
            m.reserve(&batch, now, &mut tk2),
            Ok(ReserveOutcome::Reserved)
        );
    }

    #[test]
    fn a_counter_whose_window_changes_is_a_new_counter() {
        // A reload from `2 per 1h` (sliding) to `2 per hour` (calendar): the
        // calendar limit must count from zero and then hold, never read the
        // sliding cell as 0 for ever.
        static SLIDING_HOUR: CounterSpec = CounterSpec::new(
            "s/t.limit",
            Window::Sliding { millis: 3_600_000 },
            Scope::Global,
        );
        static CALENDAR_HOUR: CounterSpec =
            CounterSpec::new("s/t.limit", Window::Calendar(Calendar::Hour), Scope::Global);
        assert_ne!(SLIDING_HOUR.id, CALENDAR_HOUR.id);
        let c = MemoryCounters::new();
        let now = UnixMillis::parse_rfc3339("2026-01-15T10:30:00Z").unwrap();
        let mut t = Ticket::default();
        for _ in 0..2 {
            assert!(matches!(
                c.reserve(&[req(&SLIDING_HOUR, 1, 2)], now, &mut t),
                Ok(ReserveOutcome::Reserved)
            ));
        }
        let mut outcomes = Vec::new();
        for _ in 0..3 {
            outcomes.push(matches!(
                c.reserve(&[req(&CALENDAR_HOUR, 1, 2)], now, &mut t),
                Ok(ReserveOutcome::Reserved)
            ));
        }
        assert_eq!(outcomes, [true, true, false]);
        // Raising the limit keeps the count: same key, same window, same id.
        assert_eq!(
            CounterSpec::new(
                "s/t.limit",
                Window::Calendar(Calendar::Hour),
                Scope::Session
            )
            .id,
            CALENDAR_HOUR.id
        );
    }

    #[test]
    fn absorbing_a_ticket_appends_it_whole_or_not_at_all() {
        let r = |partition| Reservation {
            counter: CounterRef {
                spec: &MINUTE,
                partition,
            },
            amount: 1,
            bucket: 0,
        };
        let mut a = Ticket::EMPTY;
        let mut b = Ticket::EMPTY;
        for p in 0..5 {
            assert!(a.push(r(p)));
        }
        for p in 5..8 {
            assert!(b.push(r(p)));
        }
        b.set_op(9);
        assert!(a.holds(r(4).counter) && !a.holds(r(5).counter));
        assert!(a.absorb(&b));
        assert_eq!(a.iter().count(), 8);
        assert_eq!(a.op(), 9, "an id-less ticket takes the other's id");
        assert!(a.holds(r(7).counter));
        let before = a;
        let mut one = Ticket::EMPTY;
        assert!(one.push(r(8)));
        assert!(!a.absorb(&one), "nine do not fit");
        assert_eq!(a, before, "nothing appended");
    }

    #[test]
    fn rollback_never_touches_a_later_window() {
        let m = MemoryCounters::new();
        let mut old = Ticket::EMPTY;
        m.reserve(&[req(&MINUTE, 1, 5)], UnixMillis(59_999), &mut old)
            .unwrap();
        let mut new = Ticket::EMPTY;
        m.reserve(&[req(&MINUTE, 1, 5)], UnixMillis(60_000), &mut new)
            .unwrap();
        m.rollback(&old);
        assert_eq!(
            m.read(
                CounterRef {
                    spec: &MINUTE,
                    partition: 0
                },
                UnixMillis(60_001)
            ),
            Ok(1)
        );
    }

    #[test]
    fn concurrent_reservations_never_overshoot() {
        let m = std::sync::Arc::new(MemoryCounters::new());
        let admitted = std::sync::atomic::AtomicU64::new(0);
        std::thread::scope(|s| {
            for _ in 0..8 {
                s.spawn(|| {
                    for _ in 0..1000 {
                        let mut tk = Ticket::EMPTY;
                        if m.reserve(&[req(&MINUTE, 1, 100)], UnixMillis(5), &mut tk)
                            == Ok(ReserveOutcome::Reserved)
                        {
                            admitted.fetch_add(1, std::sync::atomic::Ordering::Relaxed);
                        }
                    }
                });
            }
        });
        assert_eq!(admitted.into_inner(), 100);
    }

    #[test]
    fn a_refused_batch_gives_back_its_lock_free_units() {
        // MINUTE (global, calendar) is lock-free; SLIDE lives in the map.
        let m = MemoryCounters::new();
        let mut tk = Ticket::EMPTY;
        let batch = [req(&MINUTE, 3, 10), req(&SLIDE, 5, 4)];
        assert_eq!(
            m.reserve(&batch, UnixMillis(5), &mut tk),
            Ok(ReserveOutcome::Refused { index: 1 })
        );
        assert!(tk.is_empty());
        let global = CounterRef {
            spec: &MINUTE,
            partition: 0,
        };
        assert_eq!(m.read(global, UnixMillis(5)), Ok(0));
        // The same counter twice in one batch counts both requests.
        let twice = [req(&MINUTE, 6, 10), req(&MINUTE, 6, 10)];
        assert_eq!(
            m.reserve(&twice, UnixMillis(5), &mut tk),
            Ok(ReserveOutcome::Refused { index: 1 })
        );
        assert_eq!(m.read(global, UnixMillis(5)), Ok(0));
        let fits = [req(&MINUTE, 4, 10), req(&SLIDE, 4, 4), req(&MINUTE, 6, 10)];
        assert_eq!(
            m.reserve(&fits, UnixMillis(5), &mut tk),
            Ok(ReserveOutcome::Reserved)
        );
        assert_eq!(m.read(global, UnixMillis(5)), Ok(10));
        // A refused batch leaves a ticket that already held reservations as it was.
        let before = tk;
        assert_eq!(
            m.reserve(&twice, UnixMillis(5), &mut tk),
            Ok(ReserveOutcome::Refused { index: 0 })
        );
        assert!(tk == before && tk.iter().count() == 3);
        assert_eq!(m.read(global, UnixMillis(5)), Ok(10));
        m.rollback(&tk);
        assert_eq!(m.read(global, UnixMillis(5)), Ok(0));
    }

    #[test]
    fn more_global_counters_than_lock_free_slots_all_count_exactly() {
        // 2x the table: some counters find their probe full and live in the
        // map; each must still count on its own, to its limit, in its window.
        let specs: Vec<&'static CounterSpec> = (0..2 * FAST_SLOTS)
            .map(|i| {
                let key: &'static str = Box::leak(format!("s/t.c{i}").into_boxed_str());
                &*Box::leak(Box::new(CounterSpec::new(
                    key,
                    Window::Calendar(Calendar::Minute),
                    Scope::Global,
                )))
            })
            .collect();
        let m = MemoryCounters::new();
        for (i, spec) in specs.iter().enumerate() {
            let limit = 1 + (i as u64 % 3);
            for _ in 0..limit {
                let mut tk = Ticket::EMPTY;
                assert_eq!(
                    m.reserve(&[req(spec, 1, limit)], UnixMillis(5), &mut tk),
                    Ok(ReserveOutcome::Reserved)
                );
            }
            let mut tk = Ticket::EMPTY;
            assert_eq!(
                m.reserve(&[req(spec, 1, limit)], UnixMillis(5), &mut tk),
                Ok(ReserveOutcome::Refused { index: 0 }),
                "counter {i}"
            );
        }
        for (i, spec) in specs.iter().enumerate() {
            let c = CounterRef { spec, partition: 0 };
            assert_eq!(m.read(c, UnixMillis(5)), Ok(1 + (i as u64 % 3)));
            assert_eq!(m.read(c, UnixMillis(60_005)), Ok(0), "next minute");
        }
        assert!(!m.lock().map.is_empty(), "the map took the overflow");
    }
}
