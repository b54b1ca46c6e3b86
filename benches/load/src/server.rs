//! `mcp-load server`: a minimal, fast stdio MCP server. Single thread,
//! buffered stdout, one flush per response.

use std::io::{self, BufRead, Write};

use crate::json::{member, str_contents};

/// What the server answers.
pub struct Server {
    /// `,"result":{"tools":[...]}}\n`: everything after the id of a `tools/list` answer.
    list_tail: Vec<u8>,
}

const CALL_TAIL: &[u8] = b",\"result\":{\"content\":[{\"type\":\"text\",\"text\":\"ok\"}]}}\n";
const HEAD: &[u8] = b"{\"jsonrpc\":\"2.0\",\"id\":";

impl Server {
    /// A server listing these tools.
    pub fn new(tools_array: &str) -> Server {
        let mut list_tail = b",\"result\":{\"tools\":".to_vec();
        list_tail.extend_from_slice(tools_array.as_bytes());
        list_tail.extend_from_slice(b"}}\n");
        Server { list_tail }
    }

    /// Writes the answer to one message (nothing for notifications and responses).
    /// Returns true when something was written.
    pub fn answer(&self, msg: &[u8], out: &mut impl Write) -> io::Result<bool> {
        let Some(method) = member(msg, b"method").and_then(str_contents) else {
            return Ok(false); // a response, or not an object
        };
        let Some(id) = member(msg, b"id") else {
            return Ok(false); // a notification
        };
        out.write_all(HEAD)?;
        out.write_all(id)?;
        match method {
            b"tools/call" => out.write_all(CALL_TAIL)?,
            b"tools/list" => out.write_all(&self.list_tail)?,
            b"initialize" => {
                let version = member(msg, b"params")
                    .and_then(|p| member(p, b"protocolVersion"))
                    .filter(|v| v.starts_with(b"\""))
                    .unwrap_or(b"\"2025-06-18\"");
                out.write_all(b",\"result\":{\"protocolVersion\":")?;
                out.write_all(version)?;
                out.write_all(
                    b",\"capabilities\":{\"tools\":{}},\"serverInfo\":{\"name\":\"mcp-load\",\"version\":\"",
                )?;
                out.write_all(env!("CARGO_PKG_VERSION").as_bytes())?;
                out.write_all(b"\"}}}\n")?;
            }
            b"ping" => out.write_all(b",\"result\":{}}\n")?,
            _ => {
                out.write_all(b",\"error\":{\"code\":-32601,\"message\":\"method not found\"}}\n")?
            }
        }
        Ok(true)
    }

    /// Serves stdin/stdout until stdin closes.
    pub fn serve(&self) -> io::Result<()> {
        let stdin = io::stdin();
        let mut input = io::BufReader::with_capacity(64 * 1024, stdin.lock());
        let stdout = io::stdout();
        let mut out = io::BufWriter::with_capacity(256 * 1024, stdout.lock());
        let mut line = Vec::with_capacity(4096);
        loop {
            line.clear();
            if input.read_until(b'\n', &mut line)? == 0 {
                return Ok(());
            }
            if self.answer(&line, &mut out)? {
                out.flush()?;
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn answer(s: &Server, msg: &str) -> String {
        let mut out = Vec::new();
        s.answer(msg.as_bytes(), &mut out).unwrap();
        String::from_utf8(out).unwrap()
    }

    #[test]
    fn answers_echo_the_id() {
        let s = Server::new(r#"[{"name":"a"}]"#);
        assert_eq!(
            answer(
                &s,
                r#"{"jsonrpc":"2.0","id":"x","method":"tools/call","params":{"name":"a"}}"#
            ),
            "{\"jsonrpc\":\"2.0\",\"id\":\"x\",\"result\":{\"content\":[{\"type\":\"text\",\"text\":\"ok\"}]}}\n"
        );
        assert_eq!(
            answer(&s, r#"{"jsonrpc":"2.0","id":3,"method":"tools/list"}"#),
            "{\"jsonrpc\":\"2.0\",\"id\":3,\"result\":{\"tools\":[{\"name\":\"a\"}]}}\n"
        );
        assert!(
            answer(
                &s,
                r#"{"jsonrpc":"2.0","id":0,"method":"initialize","params":{"protocolVersion":"2025-03-26"}}"#
            )
            .contains("\"protocolVersion\":\"2025-03-26\",\"capabilities\":{\"tools\":{}}")
        );
        assert_eq!(
            answer(
                &s,
                r#"{"jsonrpc":"2.0","method":"notifications/initialized"}"#
            ),
            ""
        );
    }
}
