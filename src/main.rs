//! `portcullis`: the binary. Parses the command line and runs one command.

#![forbid(unsafe_code)]

mod cli;
mod commands;
#[cfg(feature = "dynamic")]
mod reload;

use portcullis::embedded;

use clap::{CommandFactory, FromArgMatches};

use crate::cli::{Cli, Command};

fn main() {
    let version: &'static str = Box::leak(embedded::version_line().into_boxed_str());
    let matches = Cli::command().version(version).get_matches();
    let cli = match Cli::from_arg_matches(&matches) {
        Ok(c) => c,
        Err(e) => e.exit(),
    };
    let code = match cli.command {
        Some(Command::Validate(ref args)) => commands::validate::run(args),
        Some(Command::Policies) => commands::policies::run(),
        Some(Command::Status(ref args)) => commands::status::run(args),
        Some(Command::Demo(ref args)) => commands::demo::run(args),
        Some(Command::Fmt(ref args)) => commands::fmt::run(args),
        Some(Command::Translate(ref args)) => commands::translate::run(args),
        Some(Command::Test(ref args)) => commands::test::run(args),
        Some(Command::Explain(ref args)) => commands::explain::run(args),
        Some(Command::Scan(ref args)) => commands::scan::run(args),
        Some(Command::Init(ref args)) => commands::init::run(args),
        Some(Command::Ui(ref args)) => commands::ui::run(args),
        Some(Command::Approvals(ref args)) => commands::approvals::run(args),
        None if cli.server_command.is_empty() && std::env::args_os().len() == 1 => {
            // No arguments at all: help, as Intercept does.
            let _ = Cli::command().version(version).print_help();
            0
        }
        None => commands::run::run(cli),
    };
    std::process::exit(code);
}
