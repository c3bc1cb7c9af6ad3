//! `backuprepo`: one binary. Run as `datasafed` (by name, e.g. a symlink) it is a drop-in for
//! KubeBlocks' transfer tool; `backuprepo datasafed <verb>` is the same face.

mod datasafed;
mod progress;

use std::process::ExitCode;

use clap::{Parser, Subcommand};

/// backuprepo: the BackupRepo control plane and data path.
#[derive(Debug, Parser)]
#[command(name = "backuprepo", version, about, propagate_version = true)]
struct Cli {
    #[command(subcommand)]
    command: Command,
}

#[derive(Debug, Subcommand)]
enum Command {
    /// The datasafed-compatible transfer tool (push, pull, list, stat, rm, ...).
    Datasafed(datasafed::Args),
}

fn main() -> ExitCode {
    let argv0 = std::env::args_os().next().unwrap_or_default();
    let name = std::path::Path::new(&argv0)
        .file_name()
        .map(|n| n.to_string_lossy().into_owned())
        .unwrap_or_default();
    if name == "datasafed" {
        let args = datasafed::Args::parse_from(std::env::args_os());
        return datasafed::main(args);
    }
    match Cli::parse().command {
        Command::Datasafed(args) => datasafed::main(args),
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use clap::CommandFactory;

    #[test]
    fn clap_definitions_are_consistent() {
        Cli::command().debug_assert();
        datasafed::Args::command().debug_assert();
    }
}
