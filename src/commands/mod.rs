//! One module per subcommand; `run` is the proxy (no subcommand).

pub mod approvals;
pub mod demo;
pub mod explain;
pub mod fmt;
pub mod identity;
pub mod init;
pub mod oauth;
pub mod policies;
pub mod run;
pub mod scan;
pub mod status;
pub mod test;
pub mod translate;
pub mod ui;
pub mod validate;
