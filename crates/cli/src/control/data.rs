//! `backuprepo push|pull|list|stat|rm --repo NAME ...`: the datasafed verbs against a
//! repository by name (the default one when `--repo` is omitted), with its rendered tool
//! config and path prefix. Refused unless the repository is Ready.

use anyhow::{anyhow, bail, Result};
use backuprepo_api::{BackupRepo, BackupRepoPhase};
use backuprepo_core::defaults;
use backuprepo_core::store::{NotFound, RepoStore};
use backuprepo_transfer::config::ToolConfig;

use super::{phase_str, repos};
use crate::datasafed::{self, Verb};

/// The repository to use, as it is now (so a due re-check runs first), and Ready.
pub(super) async fn ready_repo<S: RepoStore>(store: &S, name: Option<&str>) -> Result<BackupRepo> {
    let repo = match name {
        Some(n) => store
            .current(n)
            .await
            .map_err(|e| match e.downcast_ref::<NotFound>() {
                Some(_) => anyhow!("backup repository {n:?} is not found; see `backuprepo list`"),
                None => e,
            })?,
        None => {
            let all = store.current_all().await?;
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

pub async fn run<S: RepoStore>(store: &S, repo: Option<&str>, verb: Verb) -> Result<()> {
    let repo = ready_repo(store, repo).await?;
    let (cfg, storage) = open(store, &repo).await?;
    datasafed::run_verb(&cfg, &storage, verb)
        .await
        .map_err(|e| anyhow!("{e}"))
}

/// The repository's tool config and its storage under the repository's path.
pub(super) async fn open<S: RepoStore>(
    store: &S,
    repo: &BackupRepo,
) -> Result<(ToolConfig, backuprepo_transfer::storage::Storage)> {
    let text = store.tool_config(repo).await?;
    let cfg = ToolConfig::parse(&text).map_err(|e| {
        anyhow!(
            "the tool config of {} cannot be loaded ({e}); run `backuprepo check {}`",
            repo.name(),
            repo.name()
        )
    })?;
    let storage = datasafed::storage_for(&cfg, repo.spec.path_prefix.as_deref().unwrap_or(""))?;
    Ok((cfg, storage))
}
