//! Surface syntax: source text to trees that keep every span.

pub mod dsl;
pub mod dsl_fmt;
pub mod yaml;
