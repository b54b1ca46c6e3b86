//! Newline-delimited framing with a size limit that loses nothing else.

use tokio::io::{AsyncBufRead, AsyncBufReadExt};

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

/// Reads newline-delimited messages of at most `max` bytes each. A longer
/// line is skipped up to its newline and reported, and reading continues.
pub struct LineReader<R> {
    inner: R,
    max: usize,
}

impl<R: AsyncBufRead + Unpin> LineReader<R> {
    /// A reader with a per-line limit.
    pub fn new(inner: R, max: usize) -> LineReader<R> {
        LineReader { inner, max }
    }

    /// The next line.
    pub async fn next(&mut self) -> std::io::Result<Line> {
        let mut buf = Vec::new();
        let mut dropped = 0usize;
        loop {
            let chunk = self.inner.fill_buf().await?;
            if chunk.is_empty() {
                return Ok(if dropped > 0 {
                    Line::TooLong(dropped)
                } else if buf.is_empty() {
                    Line::Eof
                } else {
                    Line::Message(buf)
                });
            }
            let (take, done) = match memchr::memchr(b'\n', chunk) {
                Some(i) => (i, true),
                None => (chunk.len(), false),
            };
            if dropped == 0 && buf.len() + take <= self.max {
                buf.extend_from_slice(&chunk[..take]);
            } else {
                dropped += buf.len() + take;
                buf = Vec::new();
            }
            self.inner.consume(take + usize::from(done));
            if done {
                return Ok(if dropped > 0 {
                    Line::TooLong(dropped)
                } else {
                    Line::Message(buf)
                });
            }
        }
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
}
