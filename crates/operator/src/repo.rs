//! The BackupRepo reconciler (spec §2.5–§2.9): dereference (provider, credential Secret) →
//! the pure core → run the probe it asks for (Tool: in-process; Mount: a Job) → the core again
//! with the result → write status, annotations and derived objects, only what changed.
//!
//! Order of writes, chosen so a crash between two of them never makes a repository look
//! checked when it is not: status first (it carries the check of the new digest), then the
//! digest annotation. If the annotation write is lost, the next pass sees a changed digest and
//! checks again.

use std::collections::BTreeMap;
use std::sync::Arc;
use std::time::Duration;

use backuprepo_api::constants::{
    BACKUP_REPO_DIGEST_ANNOTATION, CHECK_REQUESTED_ANNOTATION, FINALIZER,
    NEED_UPDATE_TOOL_CONFIG_ANNOTATION,
};
use backuprepo_api::{secret_data, AccessMethod, BackupRepo, BackupRepoPhase, StorageProvider};
use backuprepo_core::deletion::{self, Observed};
use backuprepo_core::{reconcile_with_probe, Input, Output, ProbeRequest, Probed, SecretState};
use k8s_openapi::api::core::v1::{PersistentVolumeClaim, Secret};
use kube::api::{DeleteParams, ListParams, Patch, PatchParams};
use kube::runtime::controller::Action;
use kube::{Api, Resource, ResourceExt};
use serde_json::json;

use crate::context::Context;
use crate::error::{is_not_found, Error, Result};
use crate::resources::{
    annotations_patch, backup_resource, is_active_consumer, list_consumers, owned_by,
    repo_selector, status_merge_patch,
};
use crate::{key_mode, mount, namespaces, probe, scoped};

/// How often a repository blocked in deletion looks again (the Backup watch usually comes first).
const DELETION_RECHECK: Duration = Duration::from_secs(60);

/// Reconcile one BackupRepo. `Ok(action)` says when to look again; an error is classified by
/// [`Error::class`] and handled by the controller's error policy.
pub async fn reconcile_repo(ctx: Arc<Context>, repo: Arc<BackupRepo>) -> Result<Action> {
    ctx.metrics.reconciled("backuprepo");
    let api: Api<BackupRepo> = Api::all(ctx.client.clone());
    let has_finalizer = repo.finalizers().iter().any(|f| f == FINALIZER);
    if repo.metadata.deletion_timestamp.is_some() {
        if !has_finalizer {
            return Ok(Action::await_change());
        }
        return cleanup(&ctx, &api, &repo).await;
    }
    if !has_finalizer {
        set_finalizers(&api, &repo, true).await?;
    }
    apply(&ctx, &api, &repo).await
}

/// Add or remove our finalizer with a merge patch guarded by the resourceVersion (KubeBlocks'
/// optimistic lock): a concurrent change makes it fail with 409, retried with backoff.
async fn set_finalizers(api: &Api<BackupRepo>, repo: &BackupRepo, add: bool) -> Result<()> {
    let mut list: Vec<String> = repo
        .finalizers()
        .iter()
        .filter(|f| *f != FINALIZER)
        .cloned()
        .collect();
    if add {
        list.push(FINALIZER.to_string());
    }
    let patch = json!({
        "metadata": {
            "finalizers": list,
            "resourceVersion": repo.metadata.resource_version,
        }
    });
    api.patch(repo.name(), &PatchParams::default(), &Patch::Merge(&patch))
        .await
        .map_err(Error::kube(if add {
            "add finalizer"
        } else {
            "remove finalizer"
        }))?;
    Ok(())
}

pub(crate) async fn get_provider(ctx: &Context, name: &str) -> Result<Option<StorageProvider>> {
    if name.is_empty() {
        return Ok(None);
    }
    let api: Api<StorageProvider> = Api::all(ctx.client.clone());
    api.get_opt(name)
        .await
        .map_err(Error::kube(format!("get storage provider {name}")))
}

/// The credential Secret as the core wants it. A namespace credentials may not come from, a
/// NotFound and refusals (403) become part of the status; server and transport errors are
/// retried.
async fn secret_state(ctx: &Context, repo: &BackupRepo) -> Result<SecretState> {
    let (namespace, name) = match SecretState::to_read(repo) {
        Ok(key) => key,
        Err(state) => return Ok(state),
    };
    let name = name.as_str();
    if !ctx.config.reads_credentials_from(&namespace) {
        let allowed = ctx
            .config
            .credential_namespaces
            .as_deref()
            .unwrap_or_default()
            .join(", ");
        return Ok(SecretState::NotAllowed {
            fix: format!(
                "move the Secret to one of: {allowed}, or add {namespace} to \
                 BACKUPREPO_CREDENTIAL_NAMESPACES on the controller"
            ),
            namespace,
            name: name.to_string(),
        });
    }
    let api: Api<Secret> = Api::namespaced(ctx.client.clone(), &namespace);
    match api.get_opt(name).await {
        Ok(None) => Ok(SecretState::NotFound {
            namespace,
            name: name.to_string(),
        }),
        Ok(Some(s)) => Ok(match secret_data(&s) {
            Ok(d) => SecretState::Found(d),
            Err(e) => SecretState::Error(e.to_string()),
        }),
        Err(kube::Error::Api(s)) if s.code < 500 && s.code != 429 => {
            Ok(SecretState::Error(format!("{} ({})", s.message, s.code)))
        }
        Err(e) => Err(Error::kube(format!("get secret {namespace}/{name}"))(e)),
    }
}

/// The digest the repository is (or is being) checked with.
fn current_digest(repo: &BackupRepo, out: &Output) -> Option<String> {
    out.annotations
        .get(BACKUP_REPO_DIGEST_ANNOTATION)
        .or_else(|| {
            repo.metadata
                .annotations
                .as_ref()
                .and_then(|a| a.get(BACKUP_REPO_DIGEST_ANNOTATION))
        })
        .cloned()
}

async fn apply(ctx: &Context, api: &Api<BackupRepo>, repo: &BackupRepo) -> Result<Action> {
    let name = repo.name();
    let provider = get_provider(ctx, &repo.spec.storage_provider_ref).await?;
    let secret = secret_state(ctx, repo).await?;
    let suffix = ctx.suffix();
    let now = ctx.now();
    let check_requested = repo.annotations().contains_key(CHECK_REQUESTED_ANNOTATION);
    let input = Input {
        repo,
        provider: provider.as_ref(),
        secret,
        probe: None,
        force_check: check_requested,
        now: now.clone(),
        name_suffix: &suffix,
        settings: &ctx.config.settings,
    };
    // The digest the repository is checked with, as the first reconcile sees it.
    let mut digest = None;
    let digest_seen = &mut digest;
    let (out, probed) = reconcile_with_probe(input, |first| async move {
        *digest_seen = current_digest(repo, &first);
        // The CSI secret and StorageClass exist before anything mounts them (KubeBlocks step 6).
        if let (Some((sref, data)), Some(d)) = (&first.csi_secret, digest_seen.as_ref()) {
            mount::apply_csi_secret(ctx, repo, sref, data, d).await?;
        }
        if let Some(sc) = &first.storage_class {
            mount::apply_storage_class(ctx, repo, sc).await?;
        }
        let result = match first.probe.clone() {
            Some(ProbeRequest::Tool {
                digest,
                config,
                path_prefix,
            }) => {
                let previous = repo.status.as_ref().and_then(|s| s.usage.as_ref());
                Some(probe::run_tool(ctx, &digest, &config, &path_prefix, previous).await)
            }
            Some(ProbeRequest::Mount { digest }) => {
                let sc = first
                    .status
                    .generated_storage_class_name
                    .clone()
                    .unwrap_or_default();
                let csi = first.csi_secret.iter().flat_map(|(_, data)| data.clone());
                let params = first
                    .storage_class
                    .iter()
                    .flat_map(|c| c.parameters.clone());
                let settings = csi.chain(params.flatten()).collect();
                match probe::check_mount_endpoints(ctx, settings).await {
                    Err(why) => Some(probe::refused(ctx, &digest, &why)),
                    Ok(()) => mount::pre_check(ctx, repo, &digest, first.pvc.as_ref(), &sc).await?,
                }
            }
            None => None,
        };
        Ok::<_, Error>((first, result))
    })
    .await?;
    let checked = probed == Probed::Ran;
    let waiting_for_job = probed == Probed::Pending;
    let pre_check_finished = checked && repo.access_method() == AccessMethod::Mount;

    if out.status_changed(repo) {
        let patch = status_merge_patch(repo.status.as_ref(), &out.status);
        api.patch_status(name, &PatchParams::default(), &Patch::Merge(&patch))
            .await
            .map_err(Error::kube("patch status"))?;
    }
    ctx.metrics.set_phase(name, out.status.phase);
    // An unreadable threshold exports none (the alert cannot fire on a guess).
    let alert = repo
        .annotations()
        .get(backuprepo_api::constants::USAGE_ALERT_ANNOTATION)
        .and_then(|q| backuprepo_api::parse_quantity(q))
        .filter(|b| *b > 0.0)
        .map(|b| b as u64);
    ctx.metrics.set_usage_alert(name, alert);
    if let Some(u) = &out.status.usage {
        ctx.metrics.set_usage(name, u);
    }
    let reference = repo.object_ref(&());
    for e in &out.events {
        ctx.event(&reference, e.warning, &e.reason, "Check", &e.message)
            .await;
    }

    let ready = out.status.phase == Some(BackupRepoPhase::Ready);
    let mut annotations = out.annotations.clone();
    let mut result = Ok(());
    let need_update = annotations
        .get(NEED_UPDATE_TOOL_CONFIG_ANNOTATION)
        .or_else(|| {
            repo.metadata
                .annotations
                .as_ref()
                .and_then(|a| a.get(NEED_UPDATE_TOOL_CONFIG_ANNOTATION))
        })
        .is_some_and(|v| v == "true");
    // A new config reaches consumers once it passed its check; a withdrawn namespace loses
    // its copy whatever the phase.
    let update = match (ready && need_update, &out.tool_config, &digest) {
        (true, Some(cfg), Some(d)) => Some((cfg, d.as_str())),
        _ => None,
    };
    // With scoped keys, a new config reaches each namespace with a new key (scoped::sync).
    let mode = key_mode::decide(
        ctx,
        repo,
        provider.as_ref(),
        out.tool_config.as_ref(),
        digest.as_deref(),
        ready,
    )
    .await;
    let update = update.filter(|_| !mode.is_scoped());
    if namespaces::needs_tool_config_sync(ctx, repo, update.is_some()) {
        namespaces::sync_tool_config_secrets(ctx, repo, update).await?;
        if update.is_some() {
            annotations.insert(NEED_UPDATE_TOOL_CONFIG_ANNOTATION.into(), "false".into());
        }
    }
    // A requested check is answered once a check finished (or when none can run: the status
    // then says why), so `backuprepo check` stops waiting.
    let answered = (check_requested && (checked || !waiting_for_job && out.probe.is_none()))
        .then_some(CHECK_REQUESTED_ANNOTATION);
    if let Some(patch) = annotations_patch(
        repo.metadata.annotations.as_ref(),
        &annotations,
        answered.as_slice(),
    ) {
        api.patch(name, &PatchParams::default(), &Patch::Merge(&patch))
            .await
            .map_err(Error::kube("patch annotations"))?;
    }

    if pre_check_finished {
        mount::delete_pre_check(ctx, repo).await?;
    }
    // Scoped keys are taken away whatever the phase, and handed out only when Ready.
    let mut scoped = scoped::Scoped::default();
    let has_keys = !out.status.scoped_credentials.is_empty();
    if repo.access_method() == AccessMethod::Tool || has_keys {
        // Keys left from Tool access are revoked with the repository's own config, which a
        // Mount repository's reconcile does not render.
        let fallback = match (&out.tool_config, has_keys) {
            (None, true) => own_config(ctx, repo, provider.as_ref()).await?,
            _ => None,
        };
        let own = scoped::Own {
            config: out.tool_config.as_ref().or(fallback.as_ref()),
            digest: digest.as_deref(),
            ready,
        };
        scoped = scoped::sync(ctx, repo, provider.as_ref(), &out.status, own, &mode).await?;
    }
    if ready {
        if let Some(d) = &digest {
            result = namespaces::prepare_consumers(ctx, repo, &out, d, &scoped).await;
        }
    }
    result?;
    let copy =
        crate::replicate::after_reconcile(ctx, api, repo, &out.status, out.tool_config.as_ref())
            .await?;
    ctx.succeeded(&key(repo));
    let requeue = [out.requeue_after, scoped.wake, copy]
        .into_iter()
        .flatten()
        .min();
    Ok(if waiting_for_job {
        // The Job watch wakes us when it finishes; this is the safety net.
        Action::requeue(Duration::from_secs(60))
    } else {
        match requeue {
            Some(d) => Action::requeue(d),
            None => Action::await_change(),
        }
    })
}

/// The key of the per-object backoff counter.
pub fn key(repo: &BackupRepo) -> String {
    format!("backuprepo/{}", repo.name())
}

/// Deletion (spec §2.9). Derived objects carry a controller ownerReference, so the garbage
/// collector removes them with the repository; the finalizer only holds the repository while
/// backups still use it and while its PVCs are still mounted (what ownerReferences cannot do).
async fn cleanup(ctx: &Context, api: &Api<BackupRepo>, repo: &BackupRepo) -> Result<Action> {
    let name = repo.name();
    let reference = repo.object_ref(&());
    if repo.phase() != Some(BackupRepoPhase::Deleting) {
        ctx.event(
            &reference,
            false,
            "DeletingCR",
            "Delete",
            format!("Deleting backuprepo: {name}"),
        )
        .await;
    }
    let backups = list_consumers(&ctx.client, &backup_resource(), &repo_selector(name))
        .await?
        .iter()
        .filter(|b| is_active_consumer(b))
        .count();
    let residual_pvcs = if backups == 0 {
        delete_pvcs(ctx, repo).await?
    } else {
        0
    };
    let decision = deletion::decide(
        repo,
        Observed {
            backups,
            residual_pvcs,
        },
        &ctx.now(),
    );
    if repo.status.as_ref() != Some(&decision.status) {
        let patch = status_merge_patch(repo.status.as_ref(), &decision.status);
        api.patch_status(name, &PatchParams::default(), &Patch::Merge(&patch))
            .await
            .map_err(Error::kube("patch status"))?;
    }
    ctx.metrics.set_phase(name, decision.status.phase);
    if !decision.proceed {
        return Ok(Action::requeue(DELETION_RECHECK));
    }
    revoke_scoped_keys(ctx, repo).await?;
    set_finalizers(api, repo, false).await?;
    ctx.event(
        &reference,
        false,
        "DeletedCR",
        "Delete",
        format!("Deleted backuprepo: {name}"),
    )
    .await;
    ctx.metrics.remove_repo(name);
    ctx.succeeded(&key(repo));
    Ok(Action::await_change())
}

/// The repository's own tool config for revoking scoped keys, whatever its access method and
/// phase (see [`backuprepo_core::own_tool_config`]).
async fn own_config(
    ctx: &Context,
    repo: &BackupRepo,
    provider: Option<&StorageProvider>,
) -> Result<Option<backuprepo_catalog::render::RenderedToolConfig>> {
    with_input(ctx, repo, provider, |i| {
        backuprepo_core::own_tool_config(&i)
    })
    .await
}

/// `f` of the repository's reconcile input as it is now, without a probe (what it renders,
/// nothing checked).
pub(crate) async fn with_input<T>(
    ctx: &Context,
    repo: &BackupRepo,
    provider: Option<&StorageProvider>,
    f: impl FnOnce(Input<'_>) -> T,
) -> Result<T> {
    let secret = secret_state(ctx, repo).await?;
    let suffix = ctx.suffix();
    Ok(f(Input {
        repo,
        provider,
        secret,
        probe: None,
        force_check: false,
        now: ctx.now(),
        name_suffix: &suffix,
        settings: &ctx.config.settings,
    }))
}

/// Revoke the scoped keys of a repository being deleted, with its own config. A storage that
/// fails is retried (the error backs off); a repository whose provider or credential is gone
/// cannot revoke anything, so its deletion goes on and a Warning event names the users left.
async fn revoke_scoped_keys(ctx: &Context, repo: &BackupRepo) -> Result<()> {
    if repo
        .status
        .as_ref()
        .is_none_or(|s| s.scoped_credentials.is_empty())
    {
        return Ok(());
    }
    let provider = get_provider(ctx, &repo.spec.storage_provider_ref).await?;
    let own = own_config(ctx, repo, provider.as_ref()).await?;
    let reference = repo.object_ref(&());
    match scoped::revoke_all(repo, provider.as_ref(), own.as_ref()).await {
        Ok(n) => {
            ctx.event(
                &reference,
                false,
                "ScopedKeyRevoked",
                "Delete",
                format!("revoked the {n} scoped key(s) of the repository's consumer namespaces"),
            )
            .await;
            Ok(())
        }
        Err(why) if provider.is_none() || own.is_none() => {
            ctx.event(&reference, true, scoped::SCOPING_FAILED, "Delete", why)
                .await;
            Ok(())
        }
        Err(why) => Err(Error::Pending(format!(
            "{why}; deletion retries until the storage answers (to give up, delete the repository's credential Secret: its keys then stay on the storage)"
        ))),
    }
}

/// Delete the PVCs the repository made (labelled and owned) and count those still there
/// (a PVC in use stays until its pod is gone: `kubernetes.io/pvc-protection`).
async fn delete_pvcs(ctx: &Context, repo: &BackupRepo) -> Result<usize> {
    let all: Api<PersistentVolumeClaim> = Api::all(ctx.client.clone());
    let pvcs = all
        .list(&ListParams::default().labels(&repo_selector(repo.name())))
        .await
        .map_err(Error::kube("list derived PVCs"))?;
    let mut remaining = 0;
    for pvc in pvcs
        .items
        .iter()
        .filter(|p| owned_by(p.metadata.owner_references.as_ref(), repo))
    {
        let (Some(ns), Some(n)) = (&pvc.metadata.namespace, &pvc.metadata.name) else {
            continue;
        };
        let api: Api<PersistentVolumeClaim> = Api::namespaced(ctx.client.clone(), ns);
        if pvc.metadata.deletion_timestamp.is_none() {
            match api.delete(n, &DeleteParams::background()).await {
                Ok(_) => {}
                Err(e) if is_not_found(&e) => continue,
                Err(e) => return Err(Error::kube(format!("delete PVC {ns}/{n}"))(e)),
            }
        }
        if api
            .get_opt(n)
            .await
            .map_err(Error::kube(format!("get PVC {ns}/{n}")))?
            .is_some()
        {
            remaining += 1;
        }
    }
    Ok(remaining)
}

/// Labels of derived objects.
pub fn derived_labels(repo: &BackupRepo) -> BTreeMap<String, String> {
    BTreeMap::from([(
        backuprepo_api::constants::BACKUP_REPO_NAME_LABEL.to_string(),
        repo.name().to_string(),
    )])
}
