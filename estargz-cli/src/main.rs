//! `estargz`: convert tar layers to eStargz and inspect the numbers an image needs.
//!
//! Exit codes: 0 success, 1 failure (malformed input, I/O), 2 usage.

mod cmd_convert;
mod cmd_digest;
mod output;

use clap::{Parser, Subcommand};
use std::process::ExitCode;

#[derive(Parser)]
#[command(
    name = "estargz",
    version,
    about = "eStargz toolkit: lossless tar → eStargz conversion and layer digests"
)]
struct Cli {
    #[command(subcommand)]
    command: Command,
}

#[derive(Subcommand)]
enum Command {
    Convert(cmd_convert::Args),
    Digest(cmd_digest::Args),
}

/// An error in how the command was called (exit code 2), as opposed to a
/// failure while doing the work (exit code 1).
#[derive(Debug)]
pub struct UsageError(pub String);

impl std::fmt::Display for UsageError {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(&self.0)
    }
}

impl std::error::Error for UsageError {}

fn main() -> ExitCode {
    let cli = Cli::parse();
    let result = match cli.command {
        Command::Convert(args) => cmd_convert::run(args),
        Command::Digest(args) => cmd_digest::run(args),
    };
    match result {
        Ok(()) => ExitCode::SUCCESS,
        Err(err) => {
            eprintln!("estargz: error: {err:#}");
            if err.downcast_ref::<UsageError>().is_some() {
                ExitCode::from(2)
            } else {
                ExitCode::from(1)
            }
        }
    }
}
