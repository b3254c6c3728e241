//! `estargz completions` and `estargz man`: shell completions and the man
//! page, generated from the same clap definitions that parse the arguments,
//! so they always list the flags that really exist.

use anyhow::{Context, Result};
use clap::CommandFactory;
use clap_complete::Shell;
use std::io::Write;

/// Print a shell completion script on stdout.
///
/// For example: `estargz completions bash > /etc/bash_completion.d/estargz`.
#[derive(clap::Args)]
pub struct CompletionArgs {
    /// The shell to complete for.
    shell: Shell,
}

/// Print the man page (roff) on stdout: `estargz man > estargz.1`.
#[derive(clap::Args)]
pub struct ManArgs {}

pub fn completions(args: CompletionArgs) -> Result<()> {
    let mut cmd = crate::Cli::command();
    let mut out = Vec::new();
    clap_complete::generate(args.shell, &mut cmd, "estargz", &mut out);
    write_stdout(&out)
}

pub fn man(_: ManArgs) -> Result<()> {
    let cmd = crate::Cli::command();
    let mut out = Vec::new();
    clap_mangen::Man::new(cmd.clone())
        .render(&mut out)
        .context("rendering the man page")?;
    // One page for the whole tool: each subcommand follows as a section.
    for sub in cmd.get_subcommands().filter(|s| !s.is_hide_set()) {
        let sub = sub.clone().bin_name(format!("estargz {}", sub.get_name()));
        let man = clap_mangen::Man::new(sub.clone());
        writeln!(out, ".SH \"ESTARGZ {}\"", sub.get_name().to_uppercase())?;
        man.render_synopsis_section(&mut out)?;
        man.render_description_section(&mut out)?;
        man.render_options_section(&mut out)?;
    }
    write_stdout(&out)
}

fn write_stdout(bytes: &[u8]) -> Result<()> {
    let mut stdout = std::io::stdout().lock();
    stdout.write_all(bytes).context("writing to stdout")?;
    stdout.flush().context("writing to stdout")
}
