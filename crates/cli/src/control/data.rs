//! `backuprepo push|pull|list|stat|rm --repo NAME ...`: the datasafed verbs against a
//! repository by name (the default one when `--repo` is omitted), with its rendered tool
//! config and path prefix. Refused unless the repository is Ready.

use anyhow::{anyhow, bail, Result};
use backuprepo_api::{BackupRepo, BackupRepoPhase};
use backuprepo_core::defaults;
use backuprepo_transfer::config::ToolConfig;

use super::{phase_str, repos, Ctx};
use crate::datasafed::{self, Verb};

/// The repository to use, reconciled (so a due re-check runs first) and Ready.
fn ready_repo(ctx: &Ctx, name: Option<&str>) -> Result<BackupRepo> {
    let repo = match name {
        Some(n) => {
            if ctx.store().repo(n)?.is_none() {
                bail!("backup repository {n:?} is not found; see `backuprepo list`");
            }
            ctx.reconcile(n, false)?
        }
        None => {
            let all = ctx.repos()?;
            defaults::default_repo(&all)
                .map_err(|e| anyhow!("{e}; or name one with --repo"))?
                .clone()
        }
    };
    if repo.phase() != Some(BackupRepoPhase::Ready) {
        bail!(
            "the backup repository {} is not ready (phase {}): {}; see `backuprepo describe {}`",
            repo.name(),
            phase_str(&repo),
            repos::failure_message(&repo),
            repo.name()
        );
    }
    Ok(repo)
}

pub fn run(ctx: &Ctx, repo: Option<&str>, verb: Verb) -> Result<()> {
    let repo = ready_repo(ctx, repo)?;
    let path = ctx.store().tool_config_path(repo.name())?;
    let cfg = ToolConfig::load(&path).map_err(|e| {
        anyhow!(
            "the tool config of {} cannot be loaded ({e}); run `backuprepo check {}`",
            repo.name(),
            repo.name()
        )
    })?;
    let storage = datasafed::storage_for(&cfg, repo.spec.path_prefix.as_deref().unwrap_or(""))?;
    let r = ctx.rt.block_on(datasafed::run_verb(&cfg, &storage, verb));
    r.map_err(|e| anyhow!("{e}"))
}
