//! Surface syntax: source text to trees that keep every span.

pub mod dsl;
pub mod yaml;
