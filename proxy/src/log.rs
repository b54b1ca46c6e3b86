//! Logging to stderr (stdout carries only protocol messages).

use std::borrow::Cow;
use std::fmt::Arguments;
use std::io::Write;

/// `s` made safe for a terminal: control characters (C0 but tab, DEL, C1)
/// and the invisible format characters that reorder or hide text (bidi
/// overrides and isolates, zero-width marks) are written as `\u{XXXX}`.
/// Tool names, arguments and messages come from the agent or the server; an
/// operator's terminal must not run their escape sequences.
pub fn printable(s: &str) -> Cow<'_, str> {
    fn unsafe_char(c: char) -> bool {
        (c.is_control() && c != '\t')
            || matches!(
                c,
                '\u{200b}'..='\u{200f}'
                    | '\u{202a}'..='\u{202e}'
                    | '\u{2066}'..='\u{2069}'
                    | '\u{061c}'
                    | '\u{feff}'
            )
    }
    if !s.chars().any(unsafe_char) {
        return Cow::Borrowed(s);
    }
    let mut out = String::with_capacity(s.len() + 8);
    for c in s.chars() {
        if unsafe_char(c) {
            out.push_str(&format!("\\u{{{:04x}}}", c as u32));
        } else {
            out.push(c);
        }
    }
    Cow::Owned(out)
}

/// ` for "SUB" (iss "ISS")`: the caller in a log line, each part quoted
/// (Rust string escapes) and cut to 64 characters; nothing without a caller.
/// The decision log names the caller in full (see [`crate::audit`]).
pub struct Caller<'a>(pub Option<&'a portcullis_core::Principal>);

impl std::fmt::Display for Caller<'_> {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        let Some(p) = self.0 else {
            return Ok(());
        };
        let cut = |s: &str| -> String {
            if s.chars().count() <= 64 {
                format!("{s:?}")
            } else {
                format!("{:?}…", s.chars().take(63).collect::<String>())
            }
        };
        write!(f, " for {} (iss {})", cut(p.sub()), cut(p.iss()))
    }
}

/// How much to log.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord)]
pub enum Level {
    /// Failures only.
    Error,
    /// Also refused messages and recoverable problems.
    Warn,
    /// Also denials and lifecycle events (the default).
    Info,
    /// Everything.
    Debug,
}

impl Level {
    /// Parses `error`, `warn`, `info` or `debug`.
    pub fn parse(s: &str) -> Option<Level> {
        match s {
            "error" => Some(Level::Error),
            "warn" | "warning" => Some(Level::Warn),
            "info" => Some(Level::Info),
            "debug" => Some(Level::Debug),
            _ => None,
        }
    }
}

/// A stderr logger with a level.
#[derive(Debug, Clone, Copy)]
pub struct Log {
    /// The most verbose level written.
    pub level: Level,
}

impl Log {
    fn write(&self, level: Level, tag: &str, args: Arguments<'_>) {
        if level <= self.level {
            // Log lines quote tool names and messages from the peers: one line each, no escapes.
            let text = match args.as_str() {
                Some(s) => Cow::Borrowed(s),
                None => Cow::Owned(args.to_string()),
            };
            let mut err = std::io::stderr().lock();
            let _ = writeln!(err, "portcullis {tag}: {}", printable(&text));
        }
    }

    /// An error.
    pub fn error(&self, args: Arguments<'_>) {
        self.write(Level::Error, "error", args);
    }

    /// A warning.
    pub fn warn(&self, args: Arguments<'_>) {
        self.write(Level::Warn, "warn", args);
    }

    /// Information.
    pub fn info(&self, args: Arguments<'_>) {
        self.write(Level::Info, "info", args);
    }

    /// Detail.
    pub fn debug(&self, args: Arguments<'_>) {
        self.write(Level::Debug, "debug", args);
    }
}

#[cfg(test)]
mod tests {
    use super::{Caller, printable};
    use portcullis_core::Principal;

    #[test]
    fn a_caller_is_quoted_and_cut() {
        assert_eq!(Caller(None).to_string(), "");
        let p = Principal::local("al\"ice\n");
        assert_eq!(
            Caller(Some(&p)).to_string(),
            r#" for "al\"ice\n" (iss "local")"#
        );
        let long = Principal::local(&"x".repeat(10_000));
        let line = Caller(Some(&long)).to_string();
        assert!(line.len() < 100, "{line}");
    }

    #[test]
    fn escapes_what_a_terminal_would_run() {
        assert_eq!(printable("get-sum"), "get-sum");
        assert_eq!(printable("tab\tok"), "tab\tok");
        assert_eq!(
            printable("\u{1b}[2J\u{1b}]0;owned\u{7}\nx\u{202e}y\u{9b}"),
            "\\u{001b}[2J\\u{001b}]0;owned\\u{0007}\\u{000a}x\\u{202e}y\\u{009b}"
        );
    }
}
