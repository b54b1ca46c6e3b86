//! Newline-delimited framing with a size limit that loses nothing else.

use bytes::Bytes;
use tokio::io::{AsyncBufRead, AsyncBufReadExt, AsyncWrite, AsyncWriteExt};
use tokio::sync::mpsc;

/// One read from a line stream.
#[derive(Debug, PartialEq, Eq)]
pub enum Line {
    /// A complete line, without its newline.
    Message(Vec<u8>),
    /// A line longer than the limit; its bytes were discarded up to its newline.
    TooLong(usize),
    /// End of stream (a final line without a newline is still returned first).
    Eof,
}

/// Writes each message of `rx` as a line to `out` until `rx` closes or a
/// write fails, flushing whenever no other message waits (a burst goes out
/// in few writes, a lone message at once), and once more at the end.
pub(crate) async fn write_lines<W: AsyncWrite + Unpin>(
    rx: &mut mpsc::Receiver<Bytes>,
    out: &mut W,
) {
    while let Some(m) = rx.recv().await {
        if out.write_all(&m).await.is_err() || out.write_all(b"\n").await.is_err() {
            break;
        }
        if rx.is_empty() && out.flush().await.is_err() {
            break;
        }
    }
    let _ = out.flush().await;
}

/// Largest line buffer [`LineReader::recycle`] keeps for reuse.
pub const KEEP: usize = 64 * 1024;

/// Reads newline-delimited messages of at most `max` bytes each. A longer
/// line is skipped up to its newline and reported, and reading continues.
///
/// Cancel-safe: a partly read line is kept in the reader, so `next` can be
/// raced in `tokio::select!` without losing bytes.
pub struct LineReader<R> {
    inner: R,
    max: usize,
    partial: Vec<u8>,
    dropped: usize,
}

impl<R: AsyncBufRead + Unpin> LineReader<R> {
    /// A reader with a per-line limit.
    pub fn new(inner: R, max: usize) -> LineReader<R> {
        LineReader {
            inner,
            max,
            partial: Vec::new(),
            dropped: 0,
        }
    }

    /// Gives back a line's buffer once it has been handled: the next line
    /// is read into it, so a stream of lines allocates nothing per line.
    /// A buffer larger than [`KEEP`] is dropped instead (one large message
    /// must not keep its memory for the rest of the session).
    pub fn recycle(&mut self, mut line: Vec<u8>) {
        if self.partial.is_empty()
            && self.partial.capacity() < line.capacity()
            && line.capacity() <= KEEP
        {
            line.clear();
            self.partial = line;
        }
    }

    /// The next line.
    pub async fn next(&mut self) -> std::io::Result<Line> {
        loop {
            let chunk = self.inner.fill_buf().await?;
            if chunk.is_empty() {
                let line = if self.dropped > 0 {
                    Line::TooLong(self.dropped)
                } else if self.partial.is_empty() {
                    Line::Eof
                } else {
                    Line::Message(std::mem::take(&mut self.partial))
                };
                self.dropped = 0;
                return Ok(line);
            }
            let (take, done) = match memchr::memchr(b'\n', chunk) {
                Some(i) => (i, true),
                None => (chunk.len(), false),
            };
            if self.dropped == 0 && self.partial.len() + take <= self.max {
                self.partial.extend_from_slice(&chunk[..take]);
            } else {
                self.dropped += self.partial.len() + take;
                self.partial = Vec::new();
            }
            self.inner.consume(take + usize::from(done));
            if done {
                let line = if self.dropped > 0 {
                    Line::TooLong(std::mem::take(&mut self.dropped))
                } else {
                    Line::Message(std::mem::take(&mut self.partial))
                };
                return Ok(line);
            }
        }
    }
}

impl<R: tokio::io::AsyncRead> LineReader<tokio::io::BufReader<R>> {
    /// Bytes already read from the source and not yet returned (0 means the
    /// next line needs a read: a good moment to flush what was written).
    pub fn buffered(&self) -> usize {
        self.inner.buffer().len()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[tokio::test]
    async fn long_lines_are_skipped_and_reading_goes_on() {
        let input: &[u8] = b"{\"a\":1}\n0123456789abcdef\n{\"b\":2}\nlast";
        let mut r = LineReader::new(tokio::io::BufReader::with_capacity(4, input), 10);
        assert_eq!(
            r.next().await.unwrap(),
            Line::Message(b"{\"a\":1}".to_vec())
        );
        assert_eq!(r.next().await.unwrap(), Line::TooLong(16));
        assert_eq!(
            r.next().await.unwrap(),
            Line::Message(b"{\"b\":2}".to_vec())
        );
        assert_eq!(r.next().await.unwrap(), Line::Message(b"last".to_vec()));
        assert_eq!(r.next().await.unwrap(), Line::Eof);
    }

    #[tokio::test]
    async fn a_cancelled_read_loses_nothing() {
        let (mut tx, rx) = tokio::io::duplex(64);
        let mut r = LineReader::new(tokio::io::BufReader::new(rx), 1024);
        use tokio::io::AsyncWriteExt;
        tx.write_all(b"{\"half\":").await.unwrap();
        // The read is cancelled after consuming half a line.
        let timed_out = tokio::time::timeout(std::time::Duration::from_millis(20), r.next()).await;
        assert!(timed_out.is_err());
        tx.write_all(b"1}\n").await.unwrap();
        assert_eq!(
            r.next().await.unwrap(),
            Line::Message(b"{\"half\":1}".to_vec())
        );
    }
}
