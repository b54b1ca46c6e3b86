//! `portcullis`: the binary. Parses the command line and runs one command.

mod cli;
mod commands;
mod embedded;

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
        Some(Command::Validate(args)) => commands::validate::run(&args),
        Some(Command::Policies) => commands::policies::run(),
        None => {
            let _ = Cli::command().version(version).print_help();
            0
        }
    };
    std::process::exit(code);
}
