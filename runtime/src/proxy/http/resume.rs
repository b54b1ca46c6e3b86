//! Resumable answer streams of the local Streamable HTTP endpoint.
//!
//! A POST holding requests is answered with an SSE stream. If the client's
//! connection breaks before the answer (a proxy in between timed out, a
//! laptop changed networks), disconnection is not cancellation: the call
//! goes on, and the client may come back with `GET` and `Last-Event-ID` to
//! get the rest of that stream (`spec/mcp-proxy.md` section 11). So every
//! event of a POST stream gets an id, `<stream>-<seq>`, unique in its MCP
//! session, and is kept here until the stream has ended and newer streams
//! push it out ([`MAX_BYTES`], [`MAX_STREAMS`]).
//!
//! Each stream has a pump task between its producers (the relays of
//! upstream answers, the router of a child's output) and the client's
//! response body. The pump records each message before it hands it to the
//! client, so a message that arrives while no client is connected is kept,
//! and a client that resumes gets exactly the events after the one it names,
//! then the live ones, without a gap or a duplicate.
//!
//! The standalone GET stream is not kept: its events carry no ids (a client
//! reopens it without `Last-Event-ID`), and server messages that find no
//! open stream are queued for the next one by the router instead.

use std::collections::VecDeque;
use std::sync::{Arc, Mutex};

use bytes::Bytes;
use tokio::sync::mpsc;

use super::sse;

/// Events kept per MCP session for resumption, in bytes (at least the
/// newest event is always kept).
pub const MAX_BYTES: usize = 4 << 20;

/// Streams kept per MCP session; the oldest ended ones go first.
pub const MAX_STREAMS: usize = 32;

/// Events queued for a client that reads slowly, per stream.
const CLIENT_QUEUE: usize = 64;

/// The resumable streams of one MCP session.
#[derive(Default)]
pub struct Streams {
    inner: Mutex<Inner>,
}

#[derive(Default)]
struct Inner {
    next_stream: u64,
    logs: VecDeque<StreamLog>,
    bytes: usize,
}

struct StreamLog {
    stream: u64,
    /// Sequence number of `events[0]`.
    first_seq: u64,
    /// Framed events (`id:`, `event:`, `data:` lines), oldest first.
    events: VecDeque<Bytes>,
    /// The connected client's body, if any.
    client: Option<mpsc::Sender<Bytes>>,
    /// Every producer is gone: nothing more will come.
    ended: bool,
}

impl StreamLog {
    fn next_seq(&self) -> u64 {
        self.first_seq + self.events.len() as u64
    }
}

/// Why a `Last-Event-ID` cannot be resumed.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum NotResumable {
    /// Not an id this endpoint hands out (`<stream>-<seq>`).
    Malformed,
    /// No such stream in this session (never, or pushed out since).
    Unknown,
}

impl Streams {
    /// A new stream fed by `rx`; returns what the client's response body
    /// reads (framed events). The pump runs until every producer is gone.
    pub fn open(self: &Arc<Self>, rx: mpsc::Receiver<Bytes>) -> mpsc::Receiver<Bytes> {
        let (client, body) = mpsc::channel(CLIENT_QUEUE);
        let stream = {
            let mut inner = lock(&self.inner);
            inner.next_stream += 1;
            let stream = inner.next_stream;
            inner.logs.push_back(StreamLog {
                stream,
                first_seq: 1,
                events: VecDeque::new(),
                client: Some(client),
                ended: false,
            });
            inner.evict(stream);
            stream
        };
        tokio::spawn(self.clone().pump(stream, rx));
        body
    }

    /// `GET` with `Last-Event-ID: <stream>-<seq>`: a body that replays the
    /// stream's events after `seq`, then carries the live ones (and ends
    /// with the stream). A client still connected to that stream is
    /// replaced. Events pushed out already are skipped (the caller is told
    /// how many through the returned count).
    pub fn resume(
        &self,
        last_event_id: &str,
    ) -> Result<(mpsc::Receiver<Bytes>, u64), NotResumable> {
        let (stream, seq) = parse_id(last_event_id).ok_or(NotResumable::Malformed)?;
        let mut inner = lock(&self.inner);
        let log = inner
            .logs
            .iter_mut()
            .find(|l| l.stream == stream)
            .ok_or(NotResumable::Unknown)?;
        if seq >= log.next_seq() {
            return Err(NotResumable::Unknown); // an id from the future
        }
        let from = seq + 1;
        let lost = log.first_seq.saturating_sub(from);
        let skip = usize::try_from(from.saturating_sub(log.first_seq)).unwrap_or(usize::MAX);
        let replay: Vec<Bytes> = log.events.iter().skip(skip).cloned().collect();
        let (client, body) = mpsc::channel(replay.len() + CLIENT_QUEUE);
        for e in replay {
            // Capacity was made for all of them.
            let _ = client.try_send(e);
        }
        if !log.ended {
            log.client = Some(client);
        }
        // An ended stream: `client` drops here, the body ends after the replay.
        Ok((body, lost))
    }

    /// Records each message of `stream`, then hands it to the connected client.
    async fn pump(self: Arc<Self>, stream: u64, mut rx: mpsc::Receiver<Bytes>) {
        while let Some(msg) = rx.recv().await {
            let Some((event, client)) = lock(&self.inner).record(stream, &msg) else {
                return; // the stream was pushed out: nobody can read it any more
            };
            if let Some(client) = client
                && client.send(event).await.is_err()
            {
                // The client went away; keep recording for its return.
                if let Some(log) = lock(&self.inner).log(stream)
                    && log.client.as_ref().is_some_and(|c| c.same_channel(&client))
                {
                    log.client = None;
                }
            }
        }
        if let Some(log) = lock(&self.inner).log(stream) {
            log.ended = true;
            log.client = None; // the body ends once it has read what is queued
        }
    }
}

impl Inner {
    fn log(&mut self, stream: u64) -> Option<&mut StreamLog> {
        self.logs.iter_mut().find(|l| l.stream == stream)
    }

    /// Frames `msg` with the stream's next id and keeps it; returns the
    /// event and the client to send it to.
    fn record(&mut self, stream: u64, msg: &[u8]) -> Option<(Bytes, Option<mpsc::Sender<Bytes>>)> {
        let log = self.log(stream)?;
        let event = sse::frame_with_id(msg, &format!("{stream}-{}", log.next_seq()));
        log.events.push_back(event.clone());
        let client = log.client.clone();
        self.bytes += event.len();
        self.evict(stream);
        Some((event, client))
    }

    /// Keeps within [`MAX_STREAMS`] and [`MAX_BYTES`]: drops ended streams,
    /// oldest first, then the oldest events of the oldest streams; never a
    /// live stream (its call is still going on; there are only as many as
    /// calls in flight) and never the newest event of `current`.
    fn evict(&mut self, current: u64) {
        while self.logs.len() > MAX_STREAMS || self.bytes > MAX_BYTES {
            if let Some(i) = self.logs.iter().position(|l| l.ended) {
                let gone = self.logs.remove(i).expect("in range");
                self.bytes -= gone.events.iter().map(Bytes::len).sum::<usize>();
                continue;
            }
            if self.bytes <= MAX_BYTES {
                return; // more streams than kept usually, but all live
            }
            let Some(log) = self
                .logs
                .iter_mut()
                .find(|l| l.events.len() > usize::from(l.stream == current))
            else {
                return; // only the newest event is left: keep it
            };
            let old = log.events.pop_front().expect("not empty");
            log.first_seq += 1;
            self.bytes -= old.len();
        }
    }
}

fn parse_id(id: &str) -> Option<(u64, u64)> {
    let (stream, seq) = id.trim().split_once('-')?;
    Some((stream.parse().ok()?, seq.parse().ok()?))
}

fn lock<T>(m: &Mutex<T>) -> std::sync::MutexGuard<'_, T> {
    // Every critical section leaves the streams consistent.
    m.lock().unwrap_or_else(|e| e.into_inner())
}

#[cfg(test)]
mod tests {
    use super::*;

    /// Lets the pumps run.
    async fn settle() {
        for _ in 0..16 {
            tokio::task::yield_now().await;
        }
    }

    async fn next(body: &mut mpsc::Receiver<Bytes>) -> String {
        String::from_utf8(body.recv().await.expect("an event").to_vec()).unwrap()
    }

    #[tokio::test]
    async fn a_client_that_comes_back_gets_the_rest_without_gaps_or_duplicates() {
        let streams = Arc::new(Streams::default());
        let (tx, rx) = mpsc::channel(8);
        let mut body = streams.open(rx);
        tx.send(Bytes::from_static(b"{\"a\":1}")).await.unwrap();
        let first = next(&mut body).await;
        assert_eq!(first, "id: 1-1\nevent: message\ndata: {\"a\":1}\n\n");
        // The client goes away; the call goes on.
        drop(body);
        tx.send(Bytes::from_static(b"{\"a\":2}")).await.unwrap();
        tx.send(Bytes::from_static(b"{\"a\":3}")).await.unwrap();
        settle().await;
        let (mut body, lost) = streams.resume("1-1").unwrap();
        assert_eq!(lost, 0);
        assert!(next(&mut body).await.contains("id: 1-2\n"));
        assert!(next(&mut body).await.contains("id: 1-3\n"));
        tx.send(Bytes::from_static(b"{\"a\":4}")).await.unwrap();
        assert!(next(&mut body).await.contains("id: 1-4\n"), "then live");
        drop(tx);
        assert_eq!(body.recv().await, None, "ends with the stream");
        // Resuming an ended stream replays what followed, then ends.
        let (mut body, _) = streams.resume("1-3").unwrap();
        assert!(next(&mut body).await.contains("data: {\"a\":4}\n"));
        assert_eq!(body.recv().await, None);
        assert_eq!(streams.resume("1-9").unwrap_err(), NotResumable::Unknown);
        assert_eq!(streams.resume("2-0").unwrap_err(), NotResumable::Unknown);
        assert_eq!(streams.resume("x").unwrap_err(), NotResumable::Malformed);
    }

    #[tokio::test]
    async fn old_streams_and_events_are_pushed_out_within_the_limits() {
        let streams = Arc::new(Streams::default());
        for _ in 0..MAX_STREAMS + 5 {
            let (tx, rx) = mpsc::channel(1);
            let body = streams.open(rx);
            tx.send(Bytes::from_static(b"{}")).await.unwrap();
            drop(tx);
            drop(body);
        }
        settle().await;
        let kept = lock(&streams.inner).logs.len();
        assert!(kept <= MAX_STREAMS, "{kept}");
        assert_eq!(streams.resume("1-0").unwrap_err(), NotResumable::Unknown);
        let newest = (MAX_STREAMS + 5) as u64;
        assert!(streams.resume(&format!("{newest}-0")).is_ok());

        // One live stream larger than the budget: its oldest events go.
        let (tx, rx) = mpsc::channel(1);
        drop(streams.open(rx));
        let big = Bytes::from(vec![b'x'; MAX_BYTES / 3]);
        for _ in 0..5 {
            tx.send(big.clone()).await.unwrap();
        }
        settle().await;
        let inner = lock(&streams.inner);
        assert!(inner.bytes <= MAX_BYTES + MAX_BYTES / 3, "{}", inner.bytes);
        let log = inner.logs.back().unwrap();
        assert!(log.first_seq > 1, "the oldest events were pushed out");
    }
}
