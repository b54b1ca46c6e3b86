//! Logging to stderr (stdout carries only protocol messages).

use std::fmt::Arguments;
use std::io::Write;

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
            let mut err = std::io::stderr().lock();
            let _ = writeln!(err, "portcullis {tag}: {args}");
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
