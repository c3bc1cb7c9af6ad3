//! Shell completion and man pages, from the same clap definitions as the commands.
//!
//! `backuprepo completion bash|zsh|fish|powershell|elvish` prints a script that asks the
//! binary itself for candidates at each TAB (clap_complete's dynamic engine, through
//! `BACKUPREPO_COMPLETE`), so flags follow the binary and repository names come from the
//! local store as it is (`--repo <TAB>`, `describe <TAB>`, `create --provider=<TAB>`).
//! `backuprepo man [--out DIR]` writes man pages (clap_mangen).

use std::ffi::OsStr;
use std::io::Write;
use std::path::Path;

use anyhow::{anyhow, Context as _, Result};
use clap::CommandFactory;
use clap_complete::engine::CompletionCandidate;
use clap_complete::env::Shells;

use crate::args::Cli;

/// The variable that turns a run of the binary into a completion request.
pub const VAR: &str = "BACKUPREPO_COMPLETE";

/// Answer a completion request and exit, when this run is one (`BACKUPREPO_COMPLETE` set);
/// otherwise return at once.
pub fn answer_if_asked() {
    clap_complete::CompleteEnv::with_factory(Cli::command)
        .var(VAR)
        .complete();
}

/// `completion SHELL`: the shell's registration script.
pub fn script(shell: &str) -> Result<()> {
    let shells = Shells::builtins();
    let completer = shells.completer(shell).ok_or_else(|| {
        let names: Vec<&str> = shells.names().collect();
        anyhow!("unknown shell {shell:?}: use {}", names.join(", "))
    })?;
    // The script calls this binary back; by its path, so it works before it is on PATH.
    let exe = std::env::current_exe().context("cannot find this binary's path")?;
    let mut out = Vec::new();
    completer
        .write_registration(
            VAR,
            "backuprepo",
            "backuprepo",
            &exe.to_string_lossy(),
            &mut out,
        )
        .context("cannot write the completion script")?;
    std::io::stdout()
        .write_all(&out)
        .context("cannot write the completion script")
}

/// The local store's names (repositories, applied providers), read without creating a store.
fn stored() -> (Vec<String>, Vec<String>) {
    let home = std::env::var_os("BACKUPREPO_HOME")
        .filter(|h| !h.is_empty())
        .map(std::path::PathBuf::from)
        .or_else(|| crate::control::home(None).ok());
    match home {
        Some(h) => backuprepo_local::Store::names_at(&h),
        None => (Vec::new(), Vec::new()),
    }
}

/// Candidates for a repository name.
pub fn repos() -> Vec<CompletionCandidate> {
    stored()
        .0
        .into_iter()
        .map(CompletionCandidate::new)
        .collect()
}

/// Candidates in `create`'s raw arguments: `--provider=NAME` (built-in and applied providers).
pub fn create_args(current: &OsStr) -> Vec<CompletionCandidate> {
    let current = current.to_string_lossy();
    let Some(typed) = current.strip_prefix("--provider=") else {
        return Vec::new();
    };
    let mut names: Vec<String> = backuprepo_catalog::builtin::all()
        .map(|all| all.iter().map(|p| p.name().to_string()).collect())
        .unwrap_or_default();
    names.extend(stored().1);
    names.sort();
    names.dedup();
    names
        .into_iter()
        .filter(|n| n.starts_with(typed))
        .map(|n| CompletionCandidate::new(format!("--provider={n}")))
        .collect()
}

/// `man [--out DIR]`: `backuprepo.1` on stdout, or one page per command in DIR.
pub fn man(out: Option<&Path>) -> Result<()> {
    let cmd = Cli::command();
    let Some(dir) = out else {
        let mut buf = Vec::new();
        clap_mangen::Man::new(cmd).render(&mut buf)?;
        return std::io::stdout()
            .write_all(&buf)
            .context("cannot write the man page");
    };
    std::fs::create_dir_all(dir).with_context(|| format!("cannot create {}", dir.display()))?;
    let mut pages = vec![("backuprepo".to_string(), cmd.clone())];
    for sub in cmd.get_subcommands().filter(|s| !s.is_hide_set()) {
        let name = format!("backuprepo-{}", sub.get_name());
        pages.push((name.clone(), sub.clone().name(name)));
    }
    for (name, page) in pages {
        let path = dir.join(format!("{name}.1"));
        let mut buf = Vec::new();
        clap_mangen::Man::new(page).render(&mut buf)?;
        std::fs::write(&path, buf).with_context(|| format!("cannot write {}", path.display()))?;
        println!("{}", path.display());
    }
    Ok(())
}
