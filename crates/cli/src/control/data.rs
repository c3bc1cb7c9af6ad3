//! `backuprepo push|pull|list|stat|rm --repo NAME ...`: the datasafed verbs against a
//! repository by name (the default one when `--repo` is omitted), with its rendered tool
//! config and path prefix. Refused unless the repository is Ready.

use std::collections::HashMap;

use anyhow::{anyhow, bail, Result};
use backuprepo_api::{BackupRepo, BackupRepoPhase};
use backuprepo_core::defaults;
use backuprepo_core::store::{NotFound, RepoStore};
use backuprepo_transfer::config::ToolConfig;
use backuprepo_transfer::storage::{Copied, CopyOptions};

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
    let (cfg, mut storage) = open(store, &repo).await?;
    // A push changes the recorded usage by what it added or replaced: one look at the
    // target before and after (only when there is a recorded usage to keep current).
    let pushed = match &verb {
        Verb::Push { rpath, .. } if recorded(&repo) => Some((
            rpath.clone(),
            storage.stored_size(rpath).await.ok().flatten(),
        )),
        _ => None,
    };
    datasafed::run_verb(&cfg, &mut storage, verb)
        .await
        .map_err(|e| anyhow!("{e}"))?;
    if let Some((rpath, before)) = pushed {
        if let Ok(Some(after)) = storage.stored_size(&rpath).await {
            let objects = i64::from(before.is_none());
            let bytes = after as i64 - before.unwrap_or(0) as i64;
            store
                .account_write(repo.name(), &rpath, objects, bytes)
                .await?;
        }
    }
    Ok(())
}

/// Whether the repository has a recorded usage (`status.usage`) to keep current.
fn recorded(repo: &BackupRepo) -> bool {
    repo.status.as_ref().is_some_and(|s| s.usage.is_some())
}

/// The repository's tool config.
pub(super) async fn config<S: RepoStore>(store: &S, repo: &BackupRepo) -> Result<ToolConfig> {
    let text = store.tool_config(repo).await?;
    ToolConfig::parse(&text).map_err(|e| {
        anyhow!(
            "the tool config of {} cannot be loaded ({e}); run `backuprepo check {}`",
            repo.name(),
            repo.name()
        )
    })
}

/// The repository's tool config and its storage under the repository's path.
pub(super) async fn open<S: RepoStore>(
    store: &S,
    repo: &BackupRepo,
) -> Result<(ToolConfig, backuprepo_transfer::storage::Storage)> {
    let cfg = config(store, repo).await?;
    let storage = datasafed::storage_for(&cfg, repo.spec.path_prefix.as_deref().unwrap_or(""))?;
    Ok((cfg, storage))
}

/// The repository's storage without encryption: objects as stored (`.enc` included), for
/// what counts or moves stored bytes (`rm`'s usage accounting, `copy`).
async fn raw<S: RepoStore>(store: &S, repo: &BackupRepo) -> Result<backuprepo_transfer::Storage> {
    let cfg = config(store, repo).await?;
    backuprepo_transfer::Storage::open(&cfg, repo.spec.path_prefix.as_deref().unwrap_or(""), None)
        .map_err(|e| anyhow!("{e}"))
}

/// `backuprepo rm [-r] [--ignore-not-found] --repo NAME RPATH`, as kubectl users expect it: a
/// missing path is an error naming it (quiet with `--ignore-not-found`), a directory needs
/// `-r`, and what was removed is said. (The datasafed face keeps datasafed's rule: removing a
/// missing object succeeds, which KubeBlocks' deletion scripts rely on.)
pub async fn rm<S: RepoStore>(
    store: &S,
    repo: Option<&str>,
    rpath: &str,
    recursive: bool,
    ignore_not_found: bool,
) -> Result<()> {
    use backuprepo_transfer::list::ListOptions;
    let repo = ready_repo(store, repo).await?;
    let (_, storage) = open(store, &repo).await?;
    let mut entries = Vec::new();
    let listed = storage
        .list(rpath, &ListOptions::default(), &mut |e| {
            entries.push(e.clone())
        })
        .await;
    let wanted = rpath.trim_matches('/');
    let missing = match listed {
        Err(backuprepo_transfer::Error::DirNotFound) => true,
        Err(e) => return Err(anyhow!("{e}")),
        Ok(()) => entries.is_empty() && !wanted.is_empty(),
    };
    if missing {
        if ignore_not_found {
            return Ok(());
        }
        bail!(
            "{rpath}: not found in repository {}; nothing was removed (see `backuprepo list --repo {} -r`; --ignore-not-found makes this quiet)",
            repo.name(),
            repo.name()
        );
    }
    let is_object = !rpath.ends_with('/')
        && entries.len() == 1
        && !entries[0].is_dir
        && entries[0].path.trim_matches('/') == wanted;
    if !is_object && !recursive {
        bail!("{rpath}: is a directory; use -r to remove it and everything under it (nothing was removed)");
    }
    // What the removal takes from the recorded usage, in stored objects and bytes (all of
    // them under a directory, whatever the encryption setting shows).
    let removed = match (recorded(&repo), is_object) {
        (false, _) => None,
        (true, true) => storage
            .stored_size(rpath)
            .await
            .ok()
            .flatten()
            .map(|b| (1, b)),
        (true, false) => raw(store, &repo)
            .await?
            .stat(rpath)
            .await
            .ok()
            .map(|s| (s.files, s.total_size)),
    };
    storage
        .remove(rpath, !is_object)
        .await
        .map_err(|e| anyhow!("{e}"))?;
    if let Some((objects, bytes)) = removed {
        store
            .account_write(repo.name(), rpath, -(objects as i64), -(bytes as i64))
            .await?;
    }
    match is_object {
        true => println!("removed {rpath}"),
        false => println!("removed {}/ and everything under it", wanted),
    }
    Ok(())
}

/// `copy SRC DST [PREFIX]`: both repositories Ready, their storages opened without
/// encryption so objects move as stored; a progress bar over the bytes to copy, a line per
/// object removed or kept, and a summary line. The destination's recorded usage follows.
pub async fn copy<S: RepoStore>(
    store: &S,
    src: &str,
    dst: &str,
    opts: &CopyOptions,
    dry_run: bool,
) -> Result<()> {
    if src == dst {
        bail!("copy: the source and the destination are the same repository ({src})");
    }
    let (from, to) = (
        ready_repo(store, Some(src)).await?,
        ready_repo(store, Some(dst)).await?,
    );
    let (source, dest) = (raw(store, &from).await?, raw(store, &to).await?.for_copy());
    let started = std::time::Instant::now();
    let plan = source
        .plan_copy(&dest, opts)
        .await
        .map_err(|e| anyhow!("copy {src} → {dst}: {e}"))?;
    if dry_run {
        for (path, size) in &plan.copy {
            println!("would copy {path} ({size} bytes)");
        }
        if opts.delete_extra {
            for (path, _) in &plan.extra {
                println!("would remove {path} (not at {src}), unless it is under retention");
            }
        }
        println!(
            "would copy {} object(s), {} bytes; {} already at {dst}",
            plan.copy.len(),
            plan.bytes(),
            plan.skip.len()
        );
        return Ok(());
    }
    // The destination's usage: objects added, bytes added or replaced, by top-level prefix.
    let before: HashMap<&str, u64> = plan
        .replaced
        .iter()
        .map(|(p, s)| (p.as_str(), *s))
        .collect();
    let mut usage: HashMap<String, (i64, i64)> = HashMap::new();
    let mut on_object = |path: &str, what: &Copied| {
        let top = match path.split_once('/') {
            Some((top, _)) => format!("{top}/"),
            None => String::new(),
        };
        let old = before.get(path).copied();
        let (objects, bytes) = match what {
            Copied::Copied(size) => (
                i64::from(old.is_none()),
                *size as i64 - old.unwrap_or(0) as i64,
            ),
            Copied::Deleted(size) => (-1, -(*size as i64)),
            Copied::Kept(why) => {
                println!("kept {path}: {why}");
                return;
            }
            Copied::Skipped(_) => return,
        };
        if matches!(what, Copied::Deleted(_)) {
            println!("removed {path} (not at {src})");
        }
        let e = usage.entry(top).or_default();
        e.0 += objects;
        e.1 += bytes;
    };
    let label = format!("copy {src} → {dst}");
    let ran = crate::progress::Progress::track(&label, Some(plan.bytes()), |counter| {
        source.run_copy(&dest, &plan, opts, counter, &mut on_object)
    })
    .await;
    if recorded(&to) {
        for (top, (objects, bytes)) in &usage {
            store
                .account_write(to.name(), top, *objects, *bytes)
                .await?;
        }
    }
    let summary = ran.map_err(|e| anyhow!("copy {src} → {dst}: {e}"))?;
    let secs = started.elapsed().as_secs_f64().max(0.001);
    let removed = match opts.delete_extra {
        true => format!(
            ", removed {} (kept {} under retention)",
            summary.deleted, summary.kept
        ),
        false => String::new(),
    };
    println!(
        "copied {} object(s), {} bytes, skipped {} already at {dst}{removed}, in {secs:.1} s ({:.1} MB/s)",
        summary.copied,
        summary.bytes,
        summary.skipped,
        summary.bytes as f64 / secs / 1e6
    );
    Ok(())
}
