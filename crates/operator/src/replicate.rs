//! `backuprepo.io/replicate-to` on Kubernetes: after a repository's reconcile, when a run is
//! due ([`backuprepo_core::replication::decide`]), the controller copies what the destination
//! lacks and records the run in `status.replication`.
//!
//! Where it runs: in the controller's own worker child (the sandbox that runs checks, without
//! Kubernetes credentials and with only the two repositories' configs), at most [`MAX_RUNS`] at
//! once, each within the copy's memory budget (under 64 MiB). Not a Job: a Job would need an
//! image and both repositories' keys in a pod of some namespace, where the controller already
//! holds them, and its progress would come back only through its logs. A run blocks only this
//! repository's reconcile; others go on.

use std::time::Duration;

use backuprepo_api::ReplicationRun as Run;
use backuprepo_api::{BackupRepo, BackupRepoStatus};
use backuprepo_catalog::render::RenderedToolConfig;
use backuprepo_core::replication::{self, Decision};
use kube::api::{Api, Patch, PatchParams};
use kube::ResourceExt;

use crate::context::Context;
use crate::error::{Error, Result};
use crate::repo::{get_provider, with_input};

/// Replication runs at once per controller.
pub const MAX_RUNS: usize = 2;

/// The longest run before its worker is stopped (the next run resumes where it stopped).
const RUN_LIMIT: Duration = Duration::from_secs(6 * 3600);

/// After `repo`'s reconcile (its new `status`; `own` the config it hands out): refuse, wait or
/// run. Returns when the next run is due.
pub async fn after_reconcile(
    ctx: &Context,
    api: &Api<BackupRepo>,
    repo: &BackupRepo,
    status: &BackupRepoStatus,
    own: Option<&RenderedToolConfig>,
) -> Result<Option<Duration>> {
    let mut src = repo.clone();
    src.status = Some(status.clone());
    let dst = match replication::destination(repo) {
        None => None,
        Some(to) => api
            .get_opt(&to)
            .await
            .map_err(Error::kube(format!("get backup repository {to}")))?,
    };
    let prev = status.replication.as_ref();
    let (record, wait) = match replication::decide(&src, dst.as_ref(), &ctx.now()) {
        None => return Ok(None),
        Some(Decision::Wait(d)) => return Ok(Some(d)),
        Some(Decision::Refused { to, why, retry }) => {
            (replication::refused(prev, &to, &why), retry)
        }
        Some(Decision::Due(want)) => {
            let Some(dst) = dst else { return Ok(None) };
            let _permit = ctx.replications.acquire().await.ok();
            let started = ctx.now();
            let run = run(ctx, repo, own, &dst).await;
            match &run.error {
                Some(e) => {
                    tracing::warn!(repo = repo.name_any(), to = %want.to, error = %e, "replication failed")
                }
                None => tracing::info!(
                    repo = repo.name_any(),
                    to = %want.to,
                    objects = run.copied_objects,
                    bytes = run.copied_bytes,
                    "replicated"
                ),
            }
            let every = match run.error {
                None => want.every,
                Some(_) => want.every.min(replication::RETRY),
            };
            (
                replication::record(prev, &want.to, started, &run),
                Some(every),
            )
        }
    };
    ctx.metrics.set_replication(&repo.name_any(), &record);
    if prev != Some(&record) {
        let patch = crate::resources::replication_patch(prev, &record);
        api.patch_status(
            &repo.name_any(),
            &PatchParams::default(),
            &Patch::Merge(&patch),
        )
        .await
        .map_err(Error::kube("patch status.replication"))?;
    }
    Ok(wait)
}

/// One run: both configs (the destination's as it hands it out: read-only or retention
/// included), their endpoints checked, then the copy in the worker.
async fn run(
    ctx: &Context,
    src: &BackupRepo,
    own: Option<&RenderedToolConfig>,
    dst: &BackupRepo,
) -> Run {
    let failed = |e: String| Run {
        error: Some(e),
        ..Run::default()
    };
    let Some(source) = own else {
        return failed(format!(
            "the tool config of {} is not rendered",
            src.name_any()
        ));
    };
    let dest = match handed_out_config(ctx, dst).await {
        Ok(Some(c)) => c,
        Ok(None) => {
            return failed(format!(
                "the tool config of {} does not render; see `backuprepo describe {}`",
                dst.name_any(),
                dst.name_any()
            ))
        }
        Err(e) => return failed(e.to_string()),
    };
    if !ctx.config.allow_internal_endpoints {
        for c in [source, &dest] {
            if let Err(why) =
                backuprepo_transfer::endpoint::check(&c.config.backend, &ctx.config.refused_hosts)
                    .await
            {
                return failed(why);
            }
        }
    }
    let prefix = |r: &BackupRepo| r.spec.path_prefix.clone().unwrap_or_default();
    match &ctx.config.probe_worker {
        None => {
            // In this process (tests): on a blocking thread of its own, as the copy's callbacks
            // are not `Send`.
            let (s, d) = (source.config.clone(), dest.config.clone());
            let (sp, dp) = (prefix(src), prefix(dst));
            let rt = tokio::runtime::Handle::current();
            match tokio::task::spawn_blocking(move || {
                rt.block_on(backuprepo_transfer::storage::replicate(&s, &sp, &d, &dp))
            })
            .await
            {
                Ok(done) => done,
                Err(e) => failed(format!("the copy stopped: {e}")),
            }
        }
        Some(exe) => {
            let job = crate::probe_worker::Job::Replicate(crate::probe_worker::ReplicateRequest {
                source: source.text().to_string(),
                source_prefix: prefix(src),
                destination: dest.text().to_string(),
                destination_prefix: prefix(dst),
                refused_hosts: (!ctx.config.allow_internal_endpoints)
                    .then(|| ctx.config.refused_hosts.clone()),
            });
            match crate::probe_worker::run(exe, &job, RUN_LIMIT).await {
                Ok(r) => match (r.replicated, r.error) {
                    (Some(done), _) => done,
                    (None, e) => failed(e.unwrap_or_else(|| "the worker gave no result".into())),
                },
                Err(e) => failed(e),
            }
        }
    }
}

/// The config a repository hands out now (what its reconcile renders, read-only or retention
/// included), without checking it.
async fn handed_out_config(ctx: &Context, repo: &BackupRepo) -> Result<Option<RenderedToolConfig>> {
    let provider = get_provider(ctx, &repo.spec.storage_provider_ref).await?;
    with_input(ctx, repo, provider.as_ref(), |i| {
        backuprepo_core::reconcile(i).tool_config
    })
    .await
}
