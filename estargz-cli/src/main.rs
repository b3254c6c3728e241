//! `estargz`: convert tar layers to eStargz and inspect the numbers an image needs.
//!
//! Exit codes: 0 success, 1 failure (malformed input, I/O), 2 usage.

// Only `mapped` (a read-only memory map of the input) opts out.
#![deny(unsafe_code)]

mod cmd_cat;
mod cmd_completions;
mod cmd_convert;
mod cmd_convert_image;
mod cmd_digest;
mod cmd_info;
mod cmd_ls;
mod cmd_mount;
mod cmd_unpack;
mod cmd_verify;
mod input;
mod mapped;
mod output;
mod partial;
mod place;
mod prefetch;
mod progress;

use clap::{Parser, Subcommand};
use std::process::ExitCode;

#[derive(Parser)]
#[command(
    name = "estargz",
    version = concat!(env!("CARGO_PKG_VERSION"), " (", env!("ESTARGZ_CODECS"), ")"),
    about = "eStargz toolkit: lossless tar → eStargz conversion and layer digests"
)]
pub struct Cli {
    #[command(subcommand)]
    command: Command,
}

#[derive(Subcommand)]
enum Command {
    Convert(cmd_convert::Args),
    ConvertImage(cmd_convert_image::Args),
    Verify(cmd_verify::Args),
    Unpack(cmd_unpack::Args),
    Ls(cmd_ls::Args),
    Cat(cmd_cat::Args),
    Mount(cmd_mount::Args),
    Info(cmd_info::Args),
    Digest(cmd_digest::Args),
    Completions(cmd_completions::CompletionArgs),
    Man(cmd_completions::ManArgs),
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

/// A failure whose details were already printed: only a summary line follows.
#[derive(Debug)]
pub struct Reported(pub String);

impl std::fmt::Display for Reported {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(&self.0)
    }
}

impl std::error::Error for Reported {}

fn main() -> ExitCode {
    let cli = Cli::parse();
    // `mount` handles its own signals: they unmount, and SIGUSR1 reports.
    if !matches!(cli.command, Command::Mount(_)) {
        output::remove_partial_outputs_on_signal();
    }
    let result = match cli.command {
        Command::Convert(args) => cmd_convert::run(args),
        Command::ConvertImage(args) => cmd_convert_image::run(args),
        Command::Verify(args) => cmd_verify::run(args),
        Command::Unpack(args) => cmd_unpack::run(args),
        Command::Ls(args) => cmd_ls::run(args),
        Command::Cat(args) => cmd_cat::run(args),
        Command::Mount(args) => cmd_mount::run(args),
        Command::Info(args) => cmd_info::run(args),
        Command::Digest(args) => cmd_digest::run(args),
        Command::Completions(args) => cmd_completions::completions(args),
        Command::Man(args) => cmd_completions::man(args),
    };
    match result {
        Ok(()) => ExitCode::SUCCESS,
        // `estargz ls … | head`: the reader had what it wanted.
        Err(err) if output::reader_gone(&err) => ExitCode::SUCCESS,
        Err(_) if output::interrupted() => {
            // The signal handler is removing the outputs and exits with 130.
            loop {
                std::thread::park();
            }
        }
        Err(err) => {
            eprintln!("estargz: error: {}", describe(&err));
            if err.downcast_ref::<UsageError>().is_some() {
                ExitCode::from(2)
            } else {
                ExitCode::from(1)
            }
        }
    }
}

/// The error and its causes joined by ": ", as `{:#}` prints them, except
/// that a cause the text before it already ends with is left out: some
/// library errors print their io cause and also expose it as `source()`,
/// which printed "Is a directory (os error 21): Is a directory (os error 21)".
fn describe(err: &anyhow::Error) -> String {
    let mut text = String::new();
    for cause in err.chain() {
        let part = cause.to_string();
        if text.is_empty() {
            text = part;
        } else if !text.ends_with(&part) {
            text.push_str(": ");
            text.push_str(&part);
        }
    }
    text
}

#[cfg(test)]
mod tests {
    use super::describe;
    use anyhow::Context;

    #[test]
    fn a_cause_already_printed_is_not_repeated() {
        let io = std::io::Error::other("Is a directory");
        let lib = estargz_core::Error::Read {
            offset: 0,
            source: io,
        };
        let err = Err::<(), _>(lib).context("converting d").unwrap_err();
        let text = describe(&err);
        assert_eq!(text.matches("Is a directory").count(), 1, "{text}");
        assert!(text.starts_with("converting d: "), "{text}");
        assert!(text.contains("byte 0"), "{text}");

        // Distinct causes all stay.
        let err = Err::<(), _>(std::io::Error::other("disk full"))
            .context("writing out.esgz")
            .context("converting layer.tar")
            .unwrap_err();
        assert_eq!(
            describe(&err),
            "converting layer.tar: writing out.esgz: disk full"
        );
    }
}
