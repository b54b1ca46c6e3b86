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
//! then the live ones, without a gap or a duplicate. A client that resumes
//! replaces the previous connection at once, even one that stopped reading
//! without closing (a half-open TCP connection): the pump stops waiting on
//! it.
//!
//! For clients of protocol 2025-11-25 and later, a stream starts with a
//! priming event (an id and empty data), so that a client whose connection
//! breaks before the first message still has an id to resume from. Older
//! clients do not get one: they would try to parse the empty data.
//!
//! A resumed stream that has ended stays open, empty, until the stream is
//! pushed out or the session ends (as the reference SDK server does): the
//! official client reconnects whenever a stream ends without a result, and
//! an immediately closed stream would make it retry and report an error.
//!
//! The standalone GET stream is not kept: its events carry no ids (a client
//! reopens it without `Last-Event-ID`), and server messages that find no
//! open stream are queued for the next one by the router instead.

use std::collections::VecDeque;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex};

use bytes::Bytes;
use tokio::sync::{mpsc, watch};

use super::{lock, sse};

/// Events kept per MCP session for resumption, in bytes (at least the
/// newest event is always kept).
pub const MAX_BYTES: usize = 4 << 20;

/// Streams kept per MCP session; the oldest ended ones go first.
pub const MAX_STREAMS: usize = 32;

/// Events queued for a client that reads slowly, per stream.
const CLIENT_QUEUE: usize = 64;

/// A client whose queue stays full this long has stopped reading (a
/// half-open connection): it is let go, and may resume.
pub const SEND_TIMEOUT: std::time::Duration = std::time::Duration::from_secs(10);

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
    /// Bumped when a resuming client replaces `client`.
    replaced: watch::Sender<u64>,
    /// Shared with the router: does a client read this stream now?
    attached: Arc<AtomicBool>,
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
    /// reads (framed events). `prime`: start with a priming event (clients
    /// of 2025-11-25 and later). `attached` is kept true while a client
    /// reads the stream (the router sends server messages of no particular
    /// request only to streams someone reads). The pump runs until every
    /// producer is gone.
    pub fn open(
        self: &Arc<Self>,
        rx: mpsc::Receiver<Bytes>,
        prime: bool,
        attached: Arc<AtomicBool>,
    ) -> mpsc::Receiver<Bytes> {
        let (client, body) = mpsc::channel(CLIENT_QUEUE);
        attached.store(true, Ordering::Relaxed);
        let stream = {
            let mut inner = lock(&self.inner);
            inner.next_stream += 1;
            let stream = inner.next_stream;
            inner.logs.push_back(StreamLog {
                stream,
                first_seq: 1,
                events: VecDeque::new(),
                client: Some(client.clone()),
                replaced: watch::Sender::new(0),
                attached,
                ended: false,
            });
            if prime {
                // Room for it in the fresh queue: it cannot fail.
                if let Some((event, _)) = inner.record(stream, sse::priming) {
                    let _ = client.try_send(event);
                }
            }
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
        // The previous connection, if any, is done with: the pump stops
        // waiting on it (it may be half-open and never read again).
        log.replaced.send_modify(|g| *g += 1);
        log.attached.store(!log.ended, Ordering::Relaxed);
        // Live: the pump sends the next events here. Ended: kept open, empty,
        // until the stream is pushed out or the session ends.
        log.client = Some(client);
        Ok((body, lost))
    }

    /// Records each message of `stream`, then hands it to the connected
    /// client. Notices a client that leaves while the stream is quiet (so
    /// the router stops choosing this stream at once), a client replaced by
    /// a resuming one, and a client that stops reading: after
    /// [`SEND_TIMEOUT`] with its queue full it is let go (its body ends once
    /// it has read what is queued; it resumes from its last id, nothing is
    /// lost), so a half-open connection never holds up the session.
    async fn pump(self: Arc<Self>, stream: u64, mut rx: mpsc::Receiver<Bytes>) {
        let Some(mut replaced) = lock(&self.inner)
            .log(stream)
            .map(|l| l.replaced.subscribe())
        else {
            return;
        };
        loop {
            let client = {
                let mut inner = lock(&self.inner);
                replaced.borrow_and_update();
                inner.log(stream).and_then(|l| l.client.clone())
            };
            let msg = tokio::select! {
                msg = rx.recv() => msg,
                () = closed(client.as_ref()) => {
                    self.detach(stream, client.as_ref());
                    continue;
                }
                // Another client: look again (an error: the stream was pushed out).
                changed = replaced.changed() => {
                    if changed.is_err() {
                        return;
                    }
                    continue;
                }
            };
            let Some(msg) = msg else { break };
            let (event, client) = {
                let mut inner = lock(&self.inner);
                let Some(recorded) = inner.record(stream, |id| sse::frame_with_id(&msg, id)) else {
                    return; // the stream was pushed out: nobody can read it any more
                };
                // A resume after this point replays the event: `changed` tells.
                replaced.borrow_and_update();
                recorded
            };
            let Some(client) = client else { continue };
            tokio::select! {
                sent = client.send(event) => {
                    if sent.is_err() {
                        // The client went away; keep recording for its return.
                        self.detach(stream, Some(&client));
                    }
                }
                // A resumed client got this event in its replay.
                changed = replaced.changed() => {
                    if changed.is_err() {
                        return;
                    }
                }
                () = tokio::time::sleep(SEND_TIMEOUT) => self.detach(stream, Some(&client)),
            }
        }
        if let Some(log) = lock(&self.inner).log(stream) {
            log.ended = true;
            log.attached.store(false, Ordering::Relaxed);
            log.client = None; // the body ends once it has read what is queued
        }
    }

    /// `client` no longer reads the stream (if it is still the stream's client).
    fn detach(&self, stream: u64, client: Option<&mpsc::Sender<Bytes>>) {
        let Some(client) = client else { return };
        if let Some(log) = lock(&self.inner).log(stream)
            && log.client.as_ref().is_some_and(|c| c.same_channel(client))
        {
            log.client = None;
            log.attached.store(false, Ordering::Relaxed);
        }
    }
}

/// Completes when `client`'s body is dropped (never without a client).
async fn closed(client: Option<&mpsc::Sender<Bytes>>) {
    match client {
        Some(c) => c.closed().await,
        None => std::future::pending().await,
    }
}

impl Inner {
    fn log(&mut self, stream: u64) -> Option<&mut StreamLog> {
        self.logs.iter_mut().find(|l| l.stream == stream)
    }

    /// Frames the stream's next event (`frame` gets its id) and keeps it;
    /// returns the event and the client to send it to.
    fn record(
        &mut self,
        stream: u64,
        frame: impl FnOnce(&str) -> Bytes,
    ) -> Option<(Bytes, Option<mpsc::Sender<Bytes>>)> {
        let log = self.log(stream)?;
        let event = frame(&format!("{stream}-{}", log.next_seq()));
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
            // Ended streams nobody holds go first, then ended ones a resumed
            // client still holds open (its body ends; a reconnection gets 400).
            let ended = self
                .logs
                .iter()
                .position(|l| l.ended && l.client.is_none())
                .or_else(|| self.logs.iter().position(|l| l.ended));
            if let Some(i) = ended {
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
        let event = tokio::time::timeout(std::time::Duration::from_secs(5), body.recv())
            .await
            .expect("an event within 5 s")
            .expect("an event");
        String::from_utf8(event.to_vec()).unwrap()
    }

    fn open(
        streams: &Arc<Streams>,
        prime: bool,
    ) -> (mpsc::Sender<Bytes>, mpsc::Receiver<Bytes>, Arc<AtomicBool>) {
        let (tx, rx) = mpsc::channel(8);
        let attached = Arc::new(AtomicBool::new(false));
        let body = streams.open(rx, prime, attached.clone());
        (tx, body, attached)
    }

    #[tokio::test]
    async fn a_client_that_comes_back_gets_the_rest_without_gaps_or_duplicates() {
        let streams = Arc::new(Streams::default());
        let (tx, mut body, attached) = open(&streams, false);
        assert!(attached.load(Ordering::Relaxed));
        tx.send(Bytes::from_static(b"{\"a\":1}")).await.unwrap();
        let first = next(&mut body).await;
        assert_eq!(first, "id: 1-1\nevent: message\ndata: {\"a\":1}\n\n");
        // The client goes away; the call goes on.
        drop(body);
        tx.send(Bytes::from_static(b"{\"a\":2}")).await.unwrap();
        tx.send(Bytes::from_static(b"{\"a\":3}")).await.unwrap();
        settle().await;
        assert!(!attached.load(Ordering::Relaxed), "nobody reads it now");
        let (mut body, lost) = streams.resume("1-1").unwrap();
        assert_eq!(lost, 0);
        assert!(attached.load(Ordering::Relaxed));
        assert!(next(&mut body).await.contains("id: 1-2\n"));
        assert!(next(&mut body).await.contains("id: 1-3\n"));
        tx.send(Bytes::from_static(b"{\"a\":4}")).await.unwrap();
        assert!(next(&mut body).await.contains("id: 1-4\n"), "then live");
        drop(tx);
        assert_eq!(body.recv().await, None, "ends with the stream");
        assert!(!attached.load(Ordering::Relaxed));
        // Resuming an ended stream replays what followed, then stays open, empty.
        let (mut body, _) = streams.resume("1-3").unwrap();
        assert!(next(&mut body).await.contains("data: {\"a\":4}\n"));
        settle().await;
        assert!(matches!(
            body.try_recv(),
            Err(mpsc::error::TryRecvError::Empty)
        ));
        assert_eq!(streams.resume("1-9").unwrap_err(), NotResumable::Unknown);
        assert_eq!(streams.resume("2-0").unwrap_err(), NotResumable::Unknown);
        assert_eq!(streams.resume("x").unwrap_err(), NotResumable::Malformed);
    }

    #[tokio::test]
    async fn a_primed_stream_can_be_resumed_before_its_first_message() {
        let streams = Arc::new(Streams::default());
        let (tx, mut body, _) = open(&streams, true);
        assert_eq!(next(&mut body).await, "id: 1-1\ndata: \n\n");
        drop(body); // broken before the answer
        tx.send(Bytes::from_static(b"{\"result\":{}}"))
            .await
            .unwrap();
        drop(tx);
        settle().await;
        let (mut body, _) = streams.resume("1-1").unwrap();
        assert_eq!(
            next(&mut body).await,
            "id: 1-2\nevent: message\ndata: {\"result\":{}}\n\n"
        );
    }

    #[tokio::test]
    async fn a_client_that_stopped_reading_does_not_hold_up_its_successor() {
        let streams = Arc::new(Streams::default());
        let (tx, stalled, _) = open(&streams, false);
        // The old connection is half-open: its body is never read again.
        for i in 0..CLIENT_QUEUE + 3 {
            tx.send(Bytes::from(format!("{{\"n\":{i}}}")))
                .await
                .unwrap();
        }
        settle().await;
        let (mut body, _) = streams.resume("1-2").unwrap();
        let mut got = Vec::new();
        while got.len() < CLIENT_QUEUE + 1 {
            got.push(next(&mut body).await);
        }
        assert!(got[0].contains("id: 1-3\n"), "{}", got[0]);
        tx.send(Bytes::from_static(b"{\"n\":\"live\"}"))
            .await
            .unwrap();
        let live = next(&mut body).await;
        assert!(live.contains("\"live\""), "the pump goes on: {live}");
        drop(stalled);
    }

    #[tokio::test]
    async fn old_streams_and_events_are_pushed_out_within_the_limits() {
        let streams = Arc::new(Streams::default());
        for _ in 0..MAX_STREAMS + 5 {
            let (tx, body, _) = open(&streams, false);
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
        let (tx, body, _) = open(&streams, false);
        drop(body);
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

    #[tokio::test]
    async fn a_client_that_leaves_a_quiet_stream_is_noticed_at_once() {
        let streams = Arc::new(Streams::default());
        let (_tx, body, attached) = open(&streams, false);
        settle().await;
        assert!(attached.load(Ordering::Relaxed));
        drop(body); // no event was sent since
        settle().await;
        assert!(
            !attached.load(Ordering::Relaxed),
            "the router stops choosing this stream"
        );
    }

    #[tokio::test(start_paused = true)]
    async fn a_client_that_stops_reading_is_let_go_and_nothing_is_lost() {
        let streams = Arc::new(Streams::default());
        let (tx, mut stalled, attached) = open(&streams, false);
        // Producers never block for longer than SEND_TIMEOUT: the time is
        // paused and advances by itself while everything waits.
        for i in 0..CLIENT_QUEUE + 10 {
            tx.send(Bytes::from(format!("{{\"n\":{i}}}")))
                .await
                .unwrap();
        }
        settle().await;
        tokio::time::sleep(SEND_TIMEOUT * 2).await;
        assert!(!attached.load(Ordering::Relaxed), "let go");
        // Its body ends after what was queued; the rest waits for a resume.
        let mut got = 0;
        while stalled.recv().await.is_some() {
            got += 1;
        }
        assert_eq!(got, CLIENT_QUEUE);
        let (mut body, lost) = streams.resume(&format!("1-{CLIENT_QUEUE}")).unwrap();
        assert_eq!(lost, 0);
        assert!(
            next(&mut body)
                .await
                .contains(&format!("id: 1-{}\n", CLIENT_QUEUE + 1))
        );
    }
}
