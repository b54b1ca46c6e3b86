//! Regexes embedded by the compiler: a dense DFA serialised at build time, or
//! (for patterns whose DFA would be too large) the pattern itself, compiled on
//! first use.

use std::sync::OnceLock;

use regex_automata::Input;
use regex_automata::dfa::Automaton;
use regex_automata::dfa::dense::DFA;

/// Bytes aligned for [`DFA::from_bytes`], which needs 4-byte alignment.
/// Generated code wraps `include_bytes!` in this.
#[repr(C)]
pub struct Aligned<B: ?Sized> {
    /// Forces the alignment of `u32`.
    pub _align: [u32; 0],
    /// The serialised DFA.
    pub bytes: B,
}

enum Engine {
    Dfa(Box<DFA<&'static [u32]>>),
    Regex(regex::Regex),
    /// The embedded bytes did not load and the pattern did not compile:
    /// a build defect; such a regex matches nothing (so a condition that
    /// needs it fails, which denies for `evaluate` rules).
    Broken,
}

/// A regex embedded in a compiled policy. Matching is unanchored (Go's `MatchString`).
pub struct EmbeddedRegex {
    /// The pattern in Rust's regex dialect (already translated from Go's).
    pub pattern: &'static str,
    dfa: Option<&'static [u8]>,
    engine: OnceLock<Engine>,
}

impl EmbeddedRegex {
    /// A regex from its translated pattern and, if the compiler built one, its DFA bytes
    /// (serialised for the target's endianness, 4-byte aligned).
    pub const fn new(pattern: &'static str, dfa: Option<&'static [u8]>) -> EmbeddedRegex {
        EmbeddedRegex {
            pattern,
            dfa,
            engine: OnceLock::new(),
        }
    }

    fn engine(&self) -> &Engine {
        self.engine.get_or_init(|| {
            if let Some(Ok((dfa, _))) = self.dfa.map(DFA::from_bytes) {
                return Engine::Dfa(Box::new(dfa));
            }
            regex::Regex::new(self.pattern).map_or(Engine::Broken, Engine::Regex)
        })
    }

    /// Loads the engine now (so the first call does not pay for it).
    pub fn warm(&self) {
        let _ = self.engine();
    }

    /// True when `hay` contains a match.
    pub fn is_match(&self, hay: &str) -> bool {
        match self.engine() {
            Engine::Dfa(dfa) => match dfa.try_search_fwd(&Input::new(hay).earliest(true)) {
                Ok(m) => m.is_some(),
                // A DFA can give up on some inputs (it never does for the
                // patterns we build, which avoid Unicode word boundaries);
                // the pattern is the source of truth.
                Err(_) => regex::Regex::new(self.pattern).is_ok_and(|r| r.is_match(hay)),
            },
            Engine::Regex(r) => r.is_match(hay),
            Engine::Broken => false,
        }
    }
}
