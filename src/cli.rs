//! The command line (clap). Flags match Intercept's where they overlap.

use std::path::PathBuf;

use clap::{Args, Parser, Subcommand};

/// Portcullis: policy enforcement for MCP servers, compiled into the binary.
#[derive(Debug, Parser)]
#[command(name = "portcullis", args_conflicts_with_subcommands = true)]
pub struct Cli {
    /// What to do (no subcommand: run the proxy).
    #[command(subcommand)]
    pub command: Option<Command>,
}

/// Subcommands.
#[derive(Debug, Subcommand)]
pub enum Command {
    /// Check policy files and print every problem with its location (exit 1 on error).
    Validate(ValidateArgs),
    /// List the policies compiled into this binary: environment, servers, digests.
    Policies,
}

/// `portcullis validate`.
#[derive(Debug, Args)]
pub struct ValidateArgs {
    /// A policy file (Intercept's flag).
    #[arg(short = 'c', long = "config", value_name = "FILE")]
    pub config: Option<PathBuf>,
    /// Policy files or directories of policy files.
    #[arg(value_name = "FILE|DIR")]
    pub paths: Vec<PathBuf>,
    /// Treat warnings as errors.
    #[arg(long)]
    pub deny_warnings: bool,
}
