//! Per-namespace preparation (spec §2.8): a Backup or Restore labelled
//! `wait-repo-preparation=true` asks for the repository's tool-config Secret (Tool) or backup
//! PVC (Mount) in its namespace. The repository creates it there, if its allow-list
//! (`spec.allowedNamespaces`, all namespaces when absent) permits, then removes the label.
//! A namespace outside the list gets nothing: the consumer keeps waiting, and an event on it
//! and on the repository says why.

use std::collections::{BTreeMap, BTreeSet};

use backuprepo_api::constants::{
    BACKUP_REPO_DIGEST_ANNOTATION, IS_TOOL_CONFIG_LABEL, TOOL_CONFIG_SECRET_KEY,
    WAIT_REPO_PREPARATION_LABEL,
};
use backuprepo_api::{AccessMethod, BackupRepo};
use backuprepo_catalog::render::RenderedToolConfig;
use backuprepo_core::Output;
use k8s_openapi::api::core::v1::{
    ObjectReference, PersistentVolumeClaim, PersistentVolumeClaimSpec, Secret,
    VolumeResourceRequirements,
};
use k8s_openapi::apimachinery::pkg::apis::meta::v1::ObjectMeta;
use k8s_openapi::ByteString;
use kube::api::{ApiResource, DynamicObject, ListParams, Patch, PatchParams, PostParams};
use kube::{Api, Resource};
use serde_json::json;

use crate::context::Context;
use crate::error::{is_conflict, is_not_found, Error, Result};
use crate::repo::derived_labels;
use crate::resources::{
    backup_resource, is_active_consumer, list_consumers, owned_by, owner_ref, repo_selector,
    restore_resource, waits_for_preparation,
};
use crate::scoped::{Scoped, REPOSITORY_KEY_SHARED};

/// Reason of the event explaining that a namespace is not in the allow-list.
pub const NAMESPACE_NOT_ALLOWED: &str = "NamespaceNotAllowed";
/// Reason of the event explaining that a consumer namespace holds an object of the name the
/// repository would create, which the repository does not own.
pub const NOT_OWNED: &str = "ObjectNotOwned";

fn tool_config_labels(repo: &BackupRepo) -> BTreeMap<String, String> {
    let mut l = derived_labels(repo);
    l.insert(IS_TOOL_CONFIG_LABEL.into(), "true".into());
    l
}

/// The tool-config Secret of `repo` in `namespace`.
pub fn tool_config_secret(
    repo: &BackupRepo,
    name: &str,
    namespace: &str,
    cfg: &RenderedToolConfig,
    digest: &str,
) -> Secret {
    Secret {
        metadata: ObjectMeta {
            name: Some(name.to_string()),
            namespace: Some(namespace.to_string()),
            labels: Some(tool_config_labels(repo)),
            annotations: Some(BTreeMap::from([(
                BACKUP_REPO_DIGEST_ANNOTATION.to_string(),
                digest.to_string(),
            )])),
            owner_references: Some(vec![owner_ref(repo)]),
            ..ObjectMeta::default()
        },
        data: Some(BTreeMap::from([(
            TOOL_CONFIG_SECRET_KEY.to_string(),
            ByteString(cfg.text().as_bytes().to_vec()),
        )])),
        ..Secret::default()
    }
}

/// Annotation on a tool-config Secret whose credentials were withdrawn, saying why.
pub const REVOKED_ANNOTATION: &str = "backuprepo.io/revoked";

/// Whether the repository has tool-config Secrets to keep in line: it hands them out (Tool),
/// and either a new config must reach them or some namespace may have lost its permission.
pub fn needs_tool_config_sync(ctx: &Context, repo: &BackupRepo, update: bool) -> bool {
    repo.access_method() == AccessMethod::Tool
        && (update
            || repo.spec.allowed_namespaces.is_some()
            || ctx.config.default_allowed_namespaces.is_some())
}

/// Keep the tool-config Secrets this repository owns in line with it (KubeBlocks'
/// `updateToolConfigSecrets`, restricted):
///
/// - only Secrets whose ownerReference carries this repository's UID are touched; a Secret
///   someone else labelled like ours is never patched, so it never receives credentials;
/// - in a namespace that is no longer allowed, the Secret is revoked: its data is removed at
///   once, and its ownerReference is pointed at a repository UID that cannot exist, so the
///   garbage collector deletes it (the controller holds no `delete` on Secrets);
/// - with `update` (a new config passed its check), allowed Secrets with another digest get
///   the new config.
pub async fn sync_tool_config_secrets(
    ctx: &Context,
    repo: &BackupRepo,
    update: Option<(&RenderedToolConfig, &str)>,
) -> Result<()> {
    for s in owned_tool_config_secrets(ctx, repo).await? {
        let (Some(ns), Some(n)) = (&s.metadata.namespace, &s.metadata.name) else {
            continue;
        };
        let patch = if !ctx.config.allows_namespace(repo, ns) {
            revoke_patch(
                repo,
                ns,
                &format!("namespace {ns} is no longer allowed by the repository"),
            )
        } else if let Some((cfg, digest)) = update {
            let current = s
                .metadata
                .annotations
                .as_ref()
                .and_then(|a| a.get(BACKUP_REPO_DIGEST_ANNOTATION));
            if current.map(String::as_str) == Some(digest) {
                continue;
            }
            config_patch(repo, cfg, digest)
        } else {
            continue;
        };
        let api: Api<Secret> = Api::namespaced(ctx.client.clone(), ns);
        merge_patch_if_present(&api, n, &patch)
            .await
            .map_err(Error::kube(format!("update tool-config secret {ns}/{n}")))?;
    }
    Ok(())
}

/// The merge patch that gives a tool-config Secret the config of `digest` (and its labels
/// back, should someone have removed them).
pub(crate) fn config_patch(
    repo: &BackupRepo,
    cfg: &RenderedToolConfig,
    digest: &str,
) -> serde_json::Value {
    json!({
        "metadata": {
            "labels": tool_config_labels(repo),
            "annotations": { BACKUP_REPO_DIGEST_ANNOTATION: digest, REVOKED_ANNOTATION: null },
        },
        "data": { TOOL_CONFIG_SECRET_KEY: ByteString(cfg.text().as_bytes().to_vec()) },
    })
}

/// A merge patch of an object that may be gone meanwhile (gone is fine).
pub(crate) async fn merge_patch_if_present<K>(
    api: &Api<K>,
    name: &str,
    patch: &serde_json::Value,
) -> Result<(), kube::Error>
where
    K: Clone + serde::de::DeserializeOwned + std::fmt::Debug,
{
    match api
        .patch(name, &PatchParams::default(), &Patch::Merge(patch))
        .await
    {
        Err(e) if !is_not_found(&e) => Err(e),
        _ => Ok(()),
    }
}

/// The owner UID a withdrawn object is handed to the garbage collector with: a repository
/// UID that cannot exist.
pub(crate) fn withdrawn_uid(repo: &BackupRepo) -> String {
    format!(
        "revoked-{}",
        repo.metadata.uid.as_deref().unwrap_or_default()
    )
}

/// Why the controller leaves `what` `ns/name` alone: someone else's object has its name.
pub(crate) fn not_owned(repo: &BackupRepo, what: &str, ns: &str, name: &str) -> String {
    format!(
        "{what} {ns}/{name} exists and is not owned by backup repository {}; the controller \
         does not use or overwrite it. Delete it so the controller can create its own",
        repo.name()
    )
}

/// The tool-config Secrets, in every namespace, that this repository owns (by UID).
pub(crate) async fn owned_tool_config_secrets(
    ctx: &Context,
    repo: &BackupRepo,
) -> Result<Vec<Secret>> {
    let all: Api<Secret> = Api::all(ctx.client.clone());
    let selector = format!("{},{IS_TOOL_CONFIG_LABEL}=true", repo_selector(repo.name()));
    let list = all
        .list(&ListParams::default().labels(&selector))
        .await
        .map_err(Error::kube("list tool-config secrets"))?;
    Ok(list
        .items
        .into_iter()
        .filter(|s| owned_by(s.metadata.owner_references.as_ref(), repo))
        .collect())
}

/// The merge patch that withdraws a tool-config Secret from `ns`: no data, a note saying why,
/// and a sole owner that does not exist, which the garbage collector acts on by deleting it.
pub(crate) fn revoke_patch(repo: &BackupRepo, ns: &str, why: &str) -> serde_json::Value {
    json!({
        "metadata": {
            "annotations": {
                REVOKED_ANNOTATION: format!(
                    "withdrawn from namespace {ns} by backup repository {}: {why}", repo.name()
                ),
                BACKUP_REPO_DIGEST_ANNOTATION: null,
            },
            "ownerReferences": [{
                "apiVersion": BackupRepo::api_version(&()),
                "kind": BackupRepo::kind(&()),
                "name": repo.name(),
                "uid": withdrawn_uid(repo),
            }],
        },
        "data": null,
    })
}

pub(crate) fn consumer_ref(o: &DynamicObject, ar: &ApiResource) -> ObjectReference {
    ObjectReference {
        api_version: Some(ar.api_version.clone()),
        kind: Some(ar.kind.clone()),
        name: o.metadata.name.clone(),
        namespace: o.metadata.namespace.clone(),
        uid: o.metadata.uid.clone(),
        ..ObjectReference::default()
    }
}

/// Prepare the namespaces of the Backups and Restores waiting for this repository. Every
/// consumer is attempted; the first error is returned (the rest still ran).
pub async fn prepare_consumers(
    ctx: &Context,
    repo: &BackupRepo,
    out: &Output,
    digest: &str,
    scoped: &Scoped,
) -> Result<()> {
    let selector = format!(
        "{},{WAIT_REPO_PREPARATION_LABEL}=true",
        repo_selector(repo.name())
    );
    let mut prepared: BTreeSet<String> = BTreeSet::new();
    let mut refused: BTreeSet<String> = BTreeSet::new();
    let mut first_error: Option<Error> = None;
    for ar in [backup_resource(), restore_resource()] {
        // The scoped-key pass listed every consumer already: its waiting ones are these.
        let items = match scoped.consumers(&ar) {
            Some(all) => all
                .iter()
                .filter(|i| waits_for_preparation(i))
                .cloned()
                .collect(),
            None => list_consumers(&ctx.client, &ar, &selector).await?,
        };
        for item in items.iter().filter(|i| is_active_consumer(i)) {
            let (Some(ns), Some(n)) = (&item.metadata.namespace, &item.metadata.name) else {
                continue;
            };
            if !ctx.config.allows_namespace(repo, ns) {
                let note = format!(
                    "namespace {ns} is not in spec.allowedNamespaces of backup repository {}; {} {ns}/{n} keeps waiting until the repository allows it",
                    repo.name(),
                    ar.kind
                );
                ctx.event(
                    &consumer_ref(item, &ar),
                    true,
                    NAMESPACE_NOT_ALLOWED,
                    "Prepare",
                    &note,
                )
                .await;
                if refused.insert(ns.clone()) {
                    ctx.event(
                        &repo.object_ref(&()),
                        true,
                        NAMESPACE_NOT_ALLOWED,
                        "Prepare",
                        &note,
                    )
                    .await;
                }
                continue;
            }
            if !prepared.contains(ns) {
                match prepare_namespace(ctx, repo, out, ns, digest, scoped).await {
                    Ok(true) => {
                        prepared.insert(ns.clone());
                    }
                    Ok(false) => continue,
                    Err(e) => {
                        first_error.get_or_insert(e);
                        continue;
                    }
                }
            }
            let api: Api<DynamicObject> = Api::namespaced_with(ctx.client.clone(), ns, &ar);
            let patch = json!({ "metadata": { "labels": { WAIT_REPO_PREPARATION_LABEL: null } } });
            if let Err(e) = merge_patch_if_present(&api, n, &patch).await {
                first_error.get_or_insert(Error::kube(format!(
                    "remove the wait label of {} {ns}/{n}",
                    ar.kind
                ))(e));
            }
        }
    }
    match first_error {
        Some(e) => Err(e),
        None => Ok(()),
    }
}

/// Create-if-absent of the namespace's tool-config Secret (Tool) or backup PVC (Mount).
/// `Ok(false)`: an object of that name exists and is not this repository's (someone planted
/// it, or it is being revoked); the consumer keeps waiting and an event says why. With scoped
/// keys, the Secret is the one [`crate::scoped::sync`] made, or there is none yet.
async fn prepare_namespace(
    ctx: &Context,
    repo: &BackupRepo,
    out: &Output,
    ns: &str,
    digest: &str,
    scoped: &Scoped,
) -> Result<bool> {
    match repo.access_method() {
        AccessMethod::Tool if scoped.enabled => Ok(scoped.ready.contains(ns)),
        AccessMethod::Tool => {
            let (Some(name), Some(cfg)) = (&out.status.tool_config_secret_name, &out.tool_config)
            else {
                return Ok(true);
            };
            let secret = tool_config_secret(repo, name, ns, cfg, digest);
            let made = ensure_owned(ctx, repo, ns, name, "tool-config secret", secret).await?;
            if let (Made::Created, Some(why)) = (made, &scoped.shared) {
                let note = format!(
                    "namespace {ns} now holds the repository's own storage key (tool-config secret {ns}/{name}): whoever can read Secrets or run a Backup there can read and delete every namespace's backups in this repository. Why: {why}"
                );
                ctx.event(
                    &repo.object_ref(&()),
                    true,
                    REPOSITORY_KEY_SHARED,
                    "Prepare",
                    note,
                )
                .await;
            }
            Ok(made != Made::NotOwned)
        }
        AccessMethod::Mount => {
            let Some(name) = &out.status.backup_pvc_name else {
                return Ok(true);
            };
            let sc = out
                .status
                .generated_storage_class_name
                .clone()
                .unwrap_or_default();
            let pvc = repo_pvc(repo, out.pvc.as_ref(), name, ns, &sc, digest);
            Ok(ensure_owned(ctx, repo, ns, name, "PVC", pvc).await? != Made::NotOwned)
        }
    }
}

/// What [`ensure_owned`] found or did.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Made {
    Created,
    Existing,
    /// Someone else's object has the name (an event says so).
    NotOwned,
}

/// Create `object` unless `ns/name` exists. An existing object counts only when this
/// repository owns it (by UID).
async fn ensure_owned<K>(
    ctx: &Context,
    repo: &BackupRepo,
    ns: &str,
    name: &str,
    what: &str,
    object: K,
) -> Result<Made>
where
    K: Resource<Scope = kube::core::NamespaceResourceScope, DynamicType = ()>
        + Clone
        + serde::Serialize
        + serde::de::DeserializeOwned
        + std::fmt::Debug,
{
    let api: Api<K> = Api::namespaced(ctx.client.clone(), ns);
    let existing = api
        .get_opt(name)
        .await
        .map_err(Error::kube(format!("get {what} {ns}/{name}")))?;
    if let Some(e) = existing {
        if owned_by(e.meta().owner_references.as_ref(), repo) {
            return Ok(Made::Existing);
        }
        let note = not_owned(repo, what, ns, name);
        ctx.event(&repo.object_ref(&()), true, NOT_OWNED, "Prepare", &note)
            .await;
        return Ok(Made::NotOwned);
    }
    match api.create(&PostParams::default(), &object).await {
        Ok(_) => Ok(Made::Created),
        Err(e) if is_conflict(&e) => Ok(Made::Existing),
        Err(e) => Err(Error::kube(format!("create {what} {ns}/{name}"))(e)),
    }
}

/// `createRepoPVC`: the rendered template (or a claim on the generated StorageClass) with the
/// name, namespace, label, digest and owner forced, and KubeBlocks' defaults.
pub fn repo_pvc(
    repo: &BackupRepo,
    template: Option<&PersistentVolumeClaim>,
    name: &str,
    ns: &str,
    storage_class: &str,
    digest: &str,
) -> PersistentVolumeClaim {
    let mut pvc = template.cloned().unwrap_or_else(|| PersistentVolumeClaim {
        spec: Some(PersistentVolumeClaimSpec {
            storage_class_name: Some(storage_class.to_string()),
            ..PersistentVolumeClaimSpec::default()
        }),
        ..PersistentVolumeClaim::default()
    });
    pvc.metadata.name = Some(name.to_string());
    pvc.metadata.namespace = Some(ns.to_string());
    pvc.metadata
        .labels
        .get_or_insert_with(BTreeMap::new)
        .extend(derived_labels(repo));
    pvc.metadata
        .annotations
        .get_or_insert_with(BTreeMap::new)
        .insert(BACKUP_REPO_DIGEST_ANNOTATION.into(), digest.into());
    pvc.metadata.owner_references = Some(vec![owner_ref(repo)]);
    let spec = pvc
        .spec
        .get_or_insert_with(PersistentVolumeClaimSpec::default);
    if spec.access_modes.as_ref().is_none_or(|m| m.is_empty()) {
        spec.access_modes = Some(vec!["ReadWriteMany".into()]);
    }
    if spec.volume_mode.is_none() {
        spec.volume_mode = Some("Filesystem".into());
    }
    let has_request = spec
        .resources
        .as_ref()
        .and_then(|r| r.requests.as_ref())
        .and_then(|r| r.get("storage"))
        .is_some_and(|q| !q.0.is_empty() && q.0 != "0");
    if !has_request {
        if let Some(cap) = &repo.spec.volume_capacity {
            spec.resources
                .get_or_insert_with(VolumeResourceRequirements::default)
                .requests
                .get_or_insert_with(BTreeMap::new)
                .insert("storage".into(), cap.clone());
        }
    }
    pvc
}
