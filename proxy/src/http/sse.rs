//! Server-sent events: an incremental parser with a size limit (events of
//! many MiB work; only an event larger than the limit is skipped), and the
//! framing the local endpoint writes.

use bytes::Bytes;
use http_body_util::BodyExt;

/// One dispatched event.
#[derive(Debug, Default, PartialEq, Eq)]
pub struct Event {
    /// `event:` (empty means `message`).
    pub kind: String,
    /// The `data:` lines joined with `\n`.
    pub data: Vec<u8>,
    /// `id:` of this event, if it had one.
    pub id: Option<String>,
    /// `retry:` in milliseconds, if given.
    pub retry: Option<u64>,
}

/// What the parser yields.
#[derive(Debug, PartialEq, Eq)]
pub enum Item {
    /// A complete event.
    Event(Event),
    /// An event whose data exceeded the limit (bytes seen); it was discarded.
    TooLong(usize),
}

/// An incremental SSE parser (WHATWG rules: lines end in CRLF, LF or CR;
/// `:` starts a comment; an empty line dispatches).
#[derive(Debug)]
pub struct Parser {
    max: usize,
    /// Bytes of the current, incomplete line.
    line: Vec<u8>,
    /// The line overflowed the limit: skip to its end.
    skipping_line: bool,
    /// The previous chunk ended with CR: a leading LF belongs to it.
    after_cr: bool,
    cur: Event,
    has_data: bool,
    /// Data bytes of the current event discarded for size (0: none).
    dropped: usize,
    ready: std::collections::VecDeque<Item>,
}

impl Parser {
    /// A parser accepting events of at most `max` data bytes.
    pub fn new(max: usize) -> Parser {
        Parser {
            max,
            line: Vec::new(),
            skipping_line: false,
            after_cr: false,
            cur: Event::default(),
            has_data: false,
            dropped: 0,
            ready: std::collections::VecDeque::new(),
        }
    }

    /// Adds bytes from the stream.
    pub fn feed(&mut self, mut chunk: &[u8]) {
        if self.after_cr && chunk.first() == Some(&b'\n') {
            chunk = &chunk[1..];
        }
        self.after_cr = false;
        while !chunk.is_empty() {
            match memchr::memchr2(b'\n', b'\r', chunk) {
                Some(i) => {
                    self.push_part(&chunk[..i]);
                    self.end_line();
                    let crlf = chunk[i] == b'\r';
                    chunk = &chunk[i + 1..];
                    if crlf {
                        if chunk.first() == Some(&b'\n') {
                            chunk = &chunk[1..];
                        } else if chunk.is_empty() {
                            self.after_cr = true;
                        }
                    }
                }
                None => {
                    self.push_part(chunk);
                    chunk = &[];
                }
            }
        }
    }

    /// The stream ended: an incomplete event is discarded (per the standard).
    pub fn finish(&mut self) {
        self.line.clear();
        self.skipping_line = false;
    }

    /// The next complete item, if any.
    pub fn next_item(&mut self) -> Option<Item> {
        self.ready.pop_front()
    }

    fn push_part(&mut self, part: &[u8]) {
        if self.skipping_line {
            self.dropped += part.len();
            return;
        }
        // A field name and a few bytes of syntax on top of the data limit.
        if self.line.len() + part.len() > self.max.saturating_add(64) {
            self.dropped += self.line.len() + part.len();
            self.line = Vec::new();
            self.skipping_line = true;
            return;
        }
        self.line.extend_from_slice(part);
    }

    fn end_line(&mut self) {
        if self.skipping_line {
            self.skipping_line = false;
            self.has_data = true;
            return;
        }
        let line = std::mem::take(&mut self.line);
        if line.is_empty() {
            self.dispatch();
            return;
        }
        if line[0] == b':' {
            return; // a comment (keep-alive)
        }
        let (field, value) = match memchr::memchr(b':', &line) {
            Some(i) => {
                let v = &line[i + 1..];
                (&line[..i], v.strip_prefix(b" ").unwrap_or(v))
            }
            None => (&line[..], &[][..]),
        };
        match field {
            b"data" => {
                if self.dropped > 0 {
                    self.dropped += value.len();
                } else if self.cur.data.len() + value.len() + 1 > self.max.saturating_add(1) {
                    self.dropped = self.cur.data.len() + value.len();
                    self.cur.data = Vec::new();
                } else {
                    if self.has_data {
                        self.cur.data.push(b'\n');
                    }
                    self.cur.data.extend_from_slice(value);
                }
                self.has_data = true;
            }
            b"event" => self.cur.kind = String::from_utf8_lossy(value).into_owned(),
            b"id" if !value.contains(&0) => {
                self.cur.id = Some(String::from_utf8_lossy(value).into_owned());
            }
            b"retry" => {
                if let Some(ms) = std::str::from_utf8(value).ok().and_then(|s| s.parse().ok()) {
                    self.cur.retry = Some(ms);
                }
            }
            _ => {}
        }
    }

    fn dispatch(&mut self) {
        let ev = std::mem::take(&mut self.cur);
        let had_data = std::mem::take(&mut self.has_data);
        if self.dropped > 0 {
            self.ready
                .push_back(Item::TooLong(std::mem::take(&mut self.dropped)));
        } else if had_data || ev.id.is_some() || ev.retry.is_some() {
            self.ready.push_back(Item::Event(ev));
        }
    }
}

/// An SSE response body being read event by event.
pub struct Stream {
    body: hyper::body::Incoming,
    parser: Parser,
    done: bool,
}

impl Stream {
    /// Reads `body` as SSE with events of at most `max` bytes.
    pub fn new(body: hyper::body::Incoming, max: usize) -> Stream {
        Stream {
            body,
            parser: Parser::new(max),
            done: false,
        }
    }

    /// The next item; None at the end of the stream.
    pub async fn next(&mut self) -> Result<Option<Item>, hyper::Error> {
        loop {
            if let Some(item) = self.parser.next_item() {
                return Ok(Some(item));
            }
            if self.done {
                return Ok(None);
            }
            match self.body.frame().await {
                Some(Ok(frame)) => {
                    if let Ok(data) = frame.into_data() {
                        self.parser.feed(&data);
                    }
                }
                Some(Err(e)) => {
                    self.done = true;
                    return Err(e);
                }
                None => {
                    self.parser.finish();
                    self.done = true;
                }
            }
        }
    }
}

/// One message as an SSE `message` event. JSON-RPC messages have no raw
/// newlines, but any CR/LF is split into `data:` lines, so the frame is valid.
pub fn frame(msg: &[u8]) -> Bytes {
    frame_with_id(msg, "")
}

/// A priming event: an id and empty data (Streamable HTTP 2025-11-25), so
/// that a client can resume a stream before its first message.
pub fn priming(id: &str) -> Bytes {
    Bytes::from(format!("id: {id}\ndata: \n\n"))
}

/// [`frame`] with an `id:` line first (none when `id` is empty), for a
/// client to resume after with `Last-Event-ID`.
pub fn frame_with_id(msg: &[u8], id: &str) -> Bytes {
    let mut out = Vec::with_capacity(msg.len() + 32 + id.len());
    if !id.is_empty() {
        out.extend_from_slice(b"id: ");
        out.extend_from_slice(id.as_bytes());
        out.push(b'\n');
    }
    out.extend_from_slice(b"event: message\n");
    for line in msg.split(|&b| b == b'\n') {
        let line = line.strip_suffix(b"\r").unwrap_or(line);
        out.extend_from_slice(b"data: ");
        out.extend_from_slice(line);
        out.push(b'\n');
    }
    out.push(b'\n');
    Bytes::from(out)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn events(p: &mut Parser) -> Vec<Item> {
        std::iter::from_fn(|| p.next_item()).collect()
    }

    fn ev(kind: &str, data: &str, id: Option<&str>) -> Item {
        Item::Event(Event {
            kind: kind.into(),
            data: data.as_bytes().to_vec(),
            id: id.map(str::to_string),
            retry: None,
        })
    }

    #[test]
    fn parses_fields_comments_and_line_endings() {
        let mut p = Parser::new(1024);
        p.feed(b": keep-alive\r\nevent: endpoint\r\ndata: /messages?s=1\r\n\r\nid: 7\ndata:{\"a\"\ndata: :1}\n\n");
        assert_eq!(
            events(&mut p),
            vec![
                ev("endpoint", "/messages?s=1", None),
                ev("", "{\"a\"\n:1}", Some("7"))
            ]
        );
    }

    #[test]
    fn any_chunking_gives_the_same_events() {
        let text =
            b"id: 1\r\ndata: {\"x\":1}\r\n\r\nretry: 50\r\n\r\nevent: message\rdata: two\r\r";
        let mut whole = Parser::new(1024);
        whole.feed(text);
        let want = events(&mut whole);
        assert_eq!(want.len(), 3, "{want:?}");
        for size in 1..text.len() {
            let mut p = Parser::new(1024);
            for c in text.chunks(size) {
                p.feed(c);
            }
            assert_eq!(events(&mut p), want, "chunks of {size}");
        }
    }

    #[test]
    fn big_events_work_and_oversize_ones_are_skipped() {
        let big = "x".repeat(5 << 20);
        let mut p = Parser::new(6 << 20);
        let text = format!("data: {big}\n\ndata: {big}{big}\n\ndata: small\n\n");
        for c in text.as_bytes().chunks(64 * 1024) {
            p.feed(c);
        }
        let got = events(&mut p);
        assert_eq!(got.len(), 3);
        assert!(matches!(&got[0], Item::Event(e) if e.data.len() == 5 << 20));
        assert!(matches!(got[1], Item::TooLong(n) if n >= 10 << 20));
        assert_eq!(got[2], ev("", "small", None));
    }

    #[test]
    fn frames_parse_back() {
        let mut p = Parser::new(1024);
        p.feed(&frame(b"{\"jsonrpc\":\"2.0\"}"));
        assert_eq!(
            events(&mut p),
            vec![ev("message", "{\"jsonrpc\":\"2.0\"}", None)]
        );
    }
}
