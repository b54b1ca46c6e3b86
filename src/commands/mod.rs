//! One module per subcommand.

pub mod policies;
pub mod validate;
