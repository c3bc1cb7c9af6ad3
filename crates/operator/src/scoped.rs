//! Scoped keys for consumer namespaces (`backuprepo.io/scoped-credentials`), the Kubernetes
//! side of [`backuprepo_core::scoping`]: observe the consumers and the tool-config Secrets,
//! let the core plan, then make, rotate, widen, retire and revoke keys on the storage (its IAM
//! API, through the repository's own key, which stays in the controller) and write each key
//! into its namespace's Secret. `status.scopedCredentials` records every key by namespace,
//! user and key ID, written after each step; never a secret.
//!
//! A namespace whose key cannot be made gets nothing: its consumers keep waiting, and the
//! `ScopedCredentials` condition and events on the repository and the consumers say why.
//!
//! What a namespace's users control is never trusted: the storage user of a namespace is
//! computed from the repository's UID and the namespace (not read back from anywhere), only
//! the Secret of the repository's name that the repository owns is written, and a Restore may
//! read another namespace's Backup only when that Backup names the Restore's namespace in
//! `backuprepo.io/restore-namespaces`.

use std::collections::{BTreeMap, BTreeSet};
use std::time::Duration;

use backuprepo_api::constants::{
    condition_type, BACKUP_REPO_DIGEST_ANNOTATION, BACKUP_REPO_NAME_LABEL, ROTATE_KEYS_ANNOTATION,
    SCOPED_CREDENTIALS_ANNOTATION,
};
use backuprepo_api::{BackupRepo, BackupRepoStatus, ScopedCredential, StorageProvider};
use backuprepo_catalog::render::RenderedToolConfig;
use backuprepo_core::key_mode::KeyMode;
use backuprepo_core::scoping::{self, Observed, Step};
use backuprepo_transfer::storage::Scope;
use backuprepo_transfer::Storage;
use k8s_openapi::api::core::v1::Secret;
use k8s_openapi::apimachinery::pkg::apis::meta::v1::Time;
use kube::api::{DynamicObject, ListParams, Patch, PatchParams, PostParams};
use kube::{Api, Resource, ResourceExt};
use serde_json::{json, Value};

use crate::context::Context;
use crate::error::{is_conflict, Error, Result};
use crate::namespaces::{
    config_patch, consumer_ref, merge_patch_if_present, not_owned, owned_tool_config_secrets,
    revoke_patch, tool_config_secret, withdrawn_uid, REVOKED_ANNOTATION,
};
use crate::resources::{
    backup_resource, is_active_consumer, list_consumers, owned_by, repo_selector, restore_resource,
    status_merge_patch, waits_for_preparation,
};

/// Reason of the events and condition when a namespace could not get its key.
pub const SCOPING_FAILED: &str = "ScopingFailed";
/// Reason of the condition, and of the warning event when a namespace first gets the
/// repository's own key, where the default (`auto`) could not scope keys.
pub const REPOSITORY_KEY_SHARED: &str = "RepositoryKeyShared";
/// Reason of the event on a Restore whose Backup in another namespace does not allow it.
pub const RESTORE_NOT_ALLOWED: &str = "CrossNamespaceRestoreNotAllowed";
/// Annotation on a Backup naming the namespaces (comma-separated, or `*`) whose Restores may
/// read it when keys are scoped.
pub const RESTORE_NAMESPACES_ANNOTATION: &str = "backuprepo.io/restore-namespaces";

/// How soon a failed step is tried again (never sooner).
const RETRY: Duration = Duration::from_secs(60);

/// What the rest of the reconcile needs to know.
#[derive(Debug, Default)]
pub struct Scoped {
    /// Scoping is on: consumer namespaces get only the Secrets made here.
    pub enabled: bool,
    /// Scoping is off or cannot work: why namespaces get the repository's own key.
    pub shared: Option<String>,
    /// Namespaces whose Secret holds their scoped key now.
    pub ready: BTreeSet<String>,
    /// When a rotation or retirement falls due, or a failed step is tried again.
    pub wake: Option<Duration>,
    /// Every Backup and Restore of the repository, as this pass listed them (by kind).
    listed: Vec<(String, Vec<DynamicObject>)>,
}

impl Scoped {
    /// The consumers of kind `ar` this pass listed, if it listed them.
    pub fn consumers(&self, ar: &kube::api::ApiResource) -> Option<&[DynamicObject]> {
        self.listed
            .iter()
            .find(|(kind, _)| *kind == ar.kind)
            .map(|(_, items)| items.as_slice())
    }
}

/// Where the pass stands: the repository's own config (`None`: it does not render, so
/// nothing can be done on the storage), the digest it was checked with, and whether it is
/// Ready.
pub struct Own<'a> {
    pub config: Option<&'a RenderedToolConfig>,
    pub digest: Option<&'a str>,
    pub ready: bool,
}

/// Keep the scoped keys of `repo` in line (see the module doc) under `mode` (see
/// [`crate::key_mode::decide`]). `status` is the status as written this pass.
pub async fn sync(
    ctx: &Context,
    repo: &BackupRepo,
    provider: Option<&StorageProvider>,
    status: &BackupRepoStatus,
    own: Own<'_>,
    mode: &KeyMode,
) -> Result<Scoped> {
    let enabled = mode.is_scoped();
    let shared = shared_why(mode);
    let mut records = status.scoped_credentials.clone();
    if *mode == KeyMode::Off && records.is_empty() {
        // Off, as in KubeBlocks: nothing to keep in line, no condition.
        write_status(ctx, repo, status, &records, Some(None)).await?;
        return Ok(Scoped::default());
    }
    let Some(secret_name) = status.tool_config_secret_name.clone() else {
        return Ok(Scoped {
            enabled,
            shared,
            ..Scoped::default()
        });
    };
    let now = ctx.now();
    let stamp = repo
        .annotations()
        .get(ROTATE_KEYS_ANNOTATION)
        .map(|v| scoping::rotation_stamp(v, &now));
    let (seen, waiting, listed) = observe(ctx, repo, enabled, &records, &own, &secret_name).await?;
    let seen = Observed {
        rotate_before: stamp.clone().map(|s| s.unwrap_or_else(|now| now)),
        ..seen
    };
    let steps = scoping::plan(&records, &seen, &now, &ctx.config.scoping);
    let mut failed: Vec<(String, String)> = Vec::new();
    let mut written = status.clone();
    if !steps.is_empty() {
        let run = Run {
            ctx,
            repo,
            own: &own,
            secret_name: &secret_name,
            path_prefix: repo.spec.path_prefix.as_deref().unwrap_or_default(),
        };
        let storage = storage(provider, own.config);
        // One event per reason and pass: the recorder folds repeats of a reason on one
        // object into a series that keeps the first note only.
        let mut notes: BTreeMap<&'static str, Vec<String>> = BTreeMap::new();
        for step in steps {
            let ns = step.namespace().to_string();
            match run.step(&storage, &step, &mut records).await {
                Ok((reason, note)) => {
                    notes.entry(reason).or_default().push(note);
                    // Recorded at once: a key on the storage is never left unrecorded by a
                    // later failure in the same pass.
                    written = write_status(ctx, repo, &written, &records, None).await?;
                }
                Err(why) => {
                    let note = format!("namespace {ns}: {why}");
                    for c in waiting.get(&ns).into_iter().flatten() {
                        ctx.event(
                            &consumer_ref(c, &kind_of(c)),
                            true,
                            SCOPING_FAILED,
                            "Prepare",
                            format!(
                                "{note}; it keeps waiting for a key limited to its namespace (it never gets the repository's own key)"
                            ),
                        )
                        .await;
                    }
                    notes.entry(SCOPING_FAILED).or_default().push(note);
                    failed.push((ns, why));
                }
            }
        }
        for (reason, list) in notes {
            let warning = reason == SCOPING_FAILED;
            ctx.event(
                &repo.object_ref(&()),
                warning,
                reason,
                "Scope",
                list.join("; "),
            )
            .await;
        }
    }
    ctx.metrics
        .set_scoped(repo.name(), records.len(), failed.len());
    let condition = match (mode, records.is_empty()) {
        (KeyMode::Scoped { note: Some(note) }, _) => scoping::condition(true, &records, &failed)
            .map(|(s, r, m)| (s, r, format!("{note}. {m}"))),
        (KeyMode::Scoped { note: None }, _) | (_, false) => {
            scoping::condition(enabled, &records, &failed)
        }
        (_, true) => shared_condition(mode, &seen.holding),
    };
    write_status(ctx, repo, &written, &records, Some(condition)).await?;
    if let Some(stamp) = stamp {
        answer_rotation(ctx, repo, &records, stamp).await?;
    }
    let ready = records
        .iter()
        .map(|r| r.namespace.clone())
        .filter(|ns| !failed.iter().any(|(f, _)| f == ns))
        .collect();
    let wake = scoping::wake(&records, &ctx.now(), &ctx.config.scoping);
    Ok(Scoped {
        enabled,
        shared,
        ready,
        listed,
        // A failed step is due again at once by the plan; it is tried again after RETRY.
        wake: match failed.is_empty() {
            true => wake,
            false => Some(wake.unwrap_or(RETRY).max(RETRY)),
        },
    })
}

/// Why the default could not scope keys, under which namespaces get the repository's own
/// key with a warning; `None` when keys are scoped or scoping is off.
fn shared_why(mode: &KeyMode) -> Option<String> {
    match mode {
        KeyMode::Shared { why } => Some(format!("keys cannot be scoped on this storage: {why}")),
        _ => None,
    }
}

/// The `ScopedCredentials` condition while namespaces get the repository's own key: why,
/// and which namespaces hold it.
fn shared_condition(
    mode: &KeyMode,
    holding: &BTreeSet<String>,
) -> Option<(&'static str, &'static str, String)> {
    let why = shared_why(mode)?;
    let held = match holding.len() {
        0 => "no namespace holds it yet".to_string(),
        n => format!(
            "{n} namespace(s) hold it: {}",
            holding.iter().cloned().collect::<Vec<_>>().join(", ")
        ),
    };
    Some((
        "False",
        REPOSITORY_KEY_SHARED,
        format!("{why}; consumer namespaces get the repository's own key, as in KubeBlocks ({held}). Make the storage's IAM accept the repository's key, or annotate the repository {SCOPED_CREDENTIALS_ANNOTATION}=true to make consumers wait for a scoped key, or =false to accept the shared key"),
    ))
}

/// The storage to make keys on, with its IAM endpoint, or why there is none.
pub(crate) fn storage(
    provider: Option<&StorageProvider>,
    config: Option<&RenderedToolConfig>,
) -> std::result::Result<(Storage, Option<String>), String> {
    let provider = provider.ok_or("the storage provider is gone")?;
    let config = config.ok_or("the repository's config does not render")?;
    let iam = provider.key_scoping()?.map(str::to_string);
    let storage = Storage::open(&config.config, "", None).map_err(|e| e.to_string())?;
    Ok((storage, iam))
}

/// Remove `backuprepo.io/rotate-keys` once every key is newer than the request; a value that
/// is not a time becomes the time it was first seen, so the request is answered once.
async fn answer_rotation(
    ctx: &Context,
    repo: &BackupRepo,
    records: &[ScopedCredential],
    stamp: std::result::Result<Time, Time>,
) -> Result<()> {
    let value = match &stamp {
        Ok(t) if scoping::rotated_since(records, t) => Value::Null,
        Err(t) if scoping::rotated_since(records, t) => Value::Null,
        Ok(_) => return Ok(()),
        Err(t) => Value::String(t.0.to_string()),
    };
    let api: Api<BackupRepo> = Api::all(ctx.client.clone());
    let patch = json!({"metadata": {"annotations": {ROTATE_KEYS_ANNOTATION: value}}});
    api.patch(repo.name(), &PatchParams::default(), &Patch::Merge(&patch))
        .await
        .map_err(Error::kube("answer the rotate-keys annotation"))?;
    Ok(())
}

fn kind_of(c: &DynamicObject) -> kube::api::ApiResource {
    match c.types.as_ref().is_some_and(|t| t.kind == "Restore") {
        true => restore_resource(),
        false => backup_resource(),
    }
}

/// Consumers, Secrets and the allow-list, as [`Observed`]; and the waiting consumers by
/// namespace (for events when their namespace cannot get a key).
async fn observe(
    ctx: &Context,
    repo: &BackupRepo,
    enabled: bool,
    records: &[ScopedCredential],
    own: &Own<'_>,
    secret_name: &str,
) -> Result<(
    Observed,
    BTreeMap<String, Vec<DynamicObject>>,
    Vec<(String, Vec<DynamicObject>)>,
)> {
    let selector = repo_selector(repo.name());
    let mut seen = Observed {
        enabled,
        ready: own.ready,
        mount: repo.access_method() == backuprepo_api::AccessMethod::Mount,
        ..Observed::default()
    };
    let mut waiting: BTreeMap<String, Vec<DynamicObject>> = BTreeMap::new();
    let mut listed = Vec::new();
    for (ar, restore) in [(backup_resource(), false), (restore_resource(), true)] {
        let items = list_consumers(&ctx.client, &ar, &selector).await?;
        for c in &items {
            let Some(ns) = c.namespace() else { continue };
            seen.present.insert(ns.clone());
            if !is_active_consumer(c) {
                continue;
            }
            if waits_for_preparation(c) && ctx.config.allows_namespace(repo, &ns) {
                seen.waiting.insert(ns.clone());
                waiting.entry(ns.clone()).or_default().push(c.clone());
            }
            if restore && enabled {
                for p in restore_reads(ctx, repo, c, &ns).await {
                    seen.reads.entry(ns.clone()).or_default().insert(p);
                }
            }
        }
        listed.push((ar.kind, items));
    }
    for s in owned_tool_config_secrets(ctx, repo)
        .await?
        .iter()
        .filter(|s| s.metadata.name.as_deref() == Some(secret_name))
    {
        let Some(ns) = s.metadata.namespace.clone() else {
            continue;
        };
        let current = s
            .metadata
            .annotations
            .as_ref()
            .and_then(|a| a.get(BACKUP_REPO_DIGEST_ANNOTATION));
        if current.map(String::as_str) != own.digest {
            seen.stale.insert(ns.clone());
        }
        seen.holding.insert(ns);
    }
    let known: BTreeSet<String> = seen
        .present
        .iter()
        .chain(&seen.holding)
        .cloned()
        .chain(records.iter().map(|r| r.namespace.clone()))
        .collect();
    seen.refused = known
        .into_iter()
        .filter(|ns| !ctx.config.allows_namespace(repo, ns))
        .collect();
    Ok((seen, waiting, listed))
}

/// The paths an unfinished Restore in `ns` may read in another namespace: its Backup's
/// `status.path` and `status.kopiaRepoPath`, when that Backup is stored in this repository,
/// names `ns` in `backuprepo.io/restore-namespaces`, and the paths lie inside the Backup's
/// namespace. Otherwise none, and an event on the Restore says why.
async fn restore_reads(
    ctx: &Context,
    repo: &BackupRepo,
    restore: &DynamicObject,
    ns: &str,
) -> Vec<String> {
    let spec = &restore.data["spec"]["backup"];
    let phase = restore.data["status"]["phase"].as_str().unwrap_or_default();
    let (Some(name), Some(bns)) = (spec["name"].as_str(), spec["namespace"].as_str()) else {
        return Vec::new();
    };
    if bns == ns || matches!(phase, "Completed" | "Failed") {
        return Vec::new();
    }
    let refuse = |why: String| async move {
        ctx.event(
            &consumer_ref(restore, &restore_resource()),
            true,
            RESTORE_NOT_ALLOWED,
            "Prepare",
            format!(
                "{why}; the namespace's key cannot read backup {bns}/{name} of repository {}",
                repo.name()
            ),
        )
        .await;
        Vec::new()
    };
    // A list by name: the controller may list Backups, it has no need to `get` them.
    let api: Api<DynamicObject> = Api::namespaced_with(ctx.client.clone(), bns, &backup_resource());
    let found = match api
        .list(&ListParams::default().fields(&format!("metadata.name={name}")))
        .await
    {
        Ok(list) => list
            .items
            .into_iter()
            .find(|b| b.metadata.name.as_deref() == Some(name)),
        Err(e) => return refuse(format!("cannot look up backup {bns}/{name}: {e}")).await,
    };
    let Some(backup) = found else {
        return refuse(format!("backup {bns}/{name} does not exist")).await;
    };
    if backup
        .labels()
        .get(BACKUP_REPO_NAME_LABEL)
        .map(String::as_str)
        != Some(repo.name())
    {
        return refuse(format!(
            "backup {bns}/{name} is not stored in this repository"
        ))
        .await;
    }
    let allowed = backup
        .annotations()
        .get(RESTORE_NAMESPACES_ANNOTATION)
        .is_some_and(|v| v.split(',').map(str::trim).any(|n| n == ns || n == "*"));
    if !allowed {
        return refuse(format!(
            "backup {bns}/{name} does not allow Restores from namespace {ns}: annotate it with {RESTORE_NAMESPACES_ANNOTATION}: \"{ns}\" (whoever may edit Backups in {bns} decides)"
        ))
        .await;
    }
    // A kopia repository is shared by every backup of its namespace: reading one backup
    // would mean reading them all, so no scoped key is widened to it.
    if backup.data["status"]["kopiaRepoPath"]
        .as_str()
        .is_some_and(|p| !p.is_empty())
    {
        return refuse(format!(
            "backup {bns}/{name} is stored in a kopia repository (status.kopiaRepoPath), which every backup of namespace {bns} shares; a key limited to one backup cannot read it. Restore it in namespace {bns}, or annotate the repository {SCOPED_CREDENTIALS_ANNOTATION}=false"
        ))
        .await;
    }
    let path_prefix = repo.spec.path_prefix.as_deref().unwrap_or_default();
    backup.data["status"]["path"]
        .as_str()
        .and_then(|p| scoping::read_path(path_prefix, bns, p))
        .into_iter()
        .collect()
}

/// Record the keys (and with `condition`, the `ScopedCredentials` condition) in status, when
/// they changed; the status as written.
async fn write_status(
    ctx: &Context,
    repo: &BackupRepo,
    written: &BackupRepoStatus,
    records: &[ScopedCredential],
    condition: Option<Option<(&'static str, &'static str, String)>>,
) -> Result<BackupRepoStatus> {
    let mut status = written.clone();
    status.scoped_credentials = records.to_vec();
    match condition {
        Some(Some((s, reason, message))) => backuprepo_core::conditions::set(
            &mut status.conditions,
            condition_type::SCOPED_CREDENTIALS,
            s,
            reason,
            message,
            repo.metadata.generation,
            &ctx.now(),
        ),
        Some(None) => backuprepo_core::conditions::remove(
            &mut status.conditions,
            condition_type::SCOPED_CREDENTIALS,
        ),
        None => {}
    }
    if &status != written {
        let api: Api<BackupRepo> = Api::all(ctx.client.clone());
        let patch = status_merge_patch(Some(written), &status);
        api.patch_status(repo.name(), &PatchParams::default(), &Patch::Merge(&patch))
            .await
            .map_err(Error::kube("patch status"))?;
    }
    Ok(status)
}

/// What one pass needs to carry steps out.
struct Run<'a> {
    ctx: &'a Context,
    repo: &'a BackupRepo,
    own: &'a Own<'a>,
    secret_name: &'a str,
    path_prefix: &'a str,
}

/// An event's reason and note.
type Note = (&'static str, String);

type Storing = std::result::Result<(Storage, Option<String>), String>;

impl Run<'_> {
    /// What the namespace's key may reach: its own path (read-only when the repository is)
    /// and `read`.
    fn scope(&self, ns: &str, read: &[String]) -> Scope {
        let own = scoping::own_path(self.path_prefix, ns);
        match self.repo.is_read_only() {
            true => Scope {
                read: std::iter::once(own).chain(read.iter().cloned()).collect(),
                ..Scope::default()
            },
            false => Scope {
                write: vec![own],
                read: read.to_vec(),
                ..Scope::default()
            },
        }
    }

    /// The namespace's user on the storage, from the repository alone.
    fn user(&self, ns: &str) -> String {
        let uid = self.repo.metadata.uid.as_deref().unwrap_or_default();
        scoping::user_name(self.repo.name(), uid, ns)
    }

    fn config(&self) -> std::result::Result<(&RenderedToolConfig, &str), String> {
        match (self.own.config, self.own.digest) {
            (Some(c), Some(d)) => Ok((c, d)),
            _ => Err("the repository's config has not passed a check".into()),
        }
    }

    /// Carry out one step and record it; `Err` says why it could not be done.
    async fn step(
        &self,
        storage: &Storing,
        step: &Step,
        records: &mut Vec<ScopedCredential>,
    ) -> std::result::Result<Note, String> {
        let now = self.ctx.now();
        let store = || storage.as_ref().map_err(String::clone);
        let record = |ns: &str| records.iter().find(|r| r.namespace == ns).cloned();
        match step {
            Step::Issue { namespace, read } => {
                let ns = namespace.as_str();
                let user = self.user(ns);
                // A Secret of ours holding the repository's own key loses it first.
                if self.ours(ns).await?.is_some() {
                    self.strip(ns).await?;
                }
                let (s, iam) = store()?;
                // The user of this name is this repository's, for this namespace: one left by
                // an interrupted pass is replaced, not kept.
                s.revoke(&user, iam.as_deref())
                    .await
                    .map_err(|e| e.to_string())?;
                let key = s
                    .scoped_user(&user, &self.scope(ns, read), iam.as_deref())
                    .await
                    .map_err(|e| e.to_string())?;
                if let Err(why) = self
                    .write_key(ns, &key.access_key_id, &key.secret_access_key)
                    .await
                {
                    let _ = s.revoke(&user, iam.as_deref()).await;
                    return Err(why);
                }
                scoping::issued(records, ns, &user, &key.access_key_id, read.clone(), &now);
                Ok((
                    "ScopedKeyIssued",
                    format!(
                        "namespace {ns} got key {} of storage user {user}, limited to {}/",
                        key.access_key_id,
                        scoping::own_path(self.path_prefix, ns)
                    ),
                ))
            }
            Step::Rotate { namespace, why } => {
                let ns = namespace.as_str();
                let r = record(ns).ok_or("no key recorded")?;
                let user = self.user(ns);
                let (s, iam) = store()?;
                self.ours(ns).await?;
                // Keys still retiring from an earlier rotation go first: storages allow two
                // keys per user.
                for k in &r.retiring {
                    s.delete_scoped_key(&user, &k.access_key_id, iam.as_deref())
                        .await
                        .map_err(|e| e.to_string())?;
                    scoping::retired(records, ns, &k.access_key_id);
                }
                // The policy is written again: a new config (e.g. the repository turned
                // read-only) may change what the key may do.
                s.rescope(&user, &self.scope(ns, &r.read_paths), iam.as_deref())
                    .await
                    .map_err(|e| e.to_string())?;
                let key = s
                    .scoped_key(&user, iam.as_deref())
                    .await
                    .map_err(|e| e.to_string())?;
                if let Err(why) = self
                    .write_key(ns, &key.access_key_id, &key.secret_access_key)
                    .await
                {
                    let _ = s
                        .delete_scoped_key(&user, &key.access_key_id, iam.as_deref())
                        .await;
                    return Err(why);
                }
                let grace = self.ctx.config.scoping.grace;
                scoping::rotated(records, ns, &key.access_key_id, &now, grace);
                Ok((
                    "ScopedKeyRotated",
                    format!(
                        "namespace {ns} got key {} ({why}); key {} keeps working for {}s",
                        key.access_key_id,
                        r.access_key_id,
                        grace.as_secs()
                    ),
                ))
            }
            Step::Rescope { namespace, read } => {
                let ns = namespace.as_str();
                let (s, iam) = store()?;
                s.rescope(&self.user(ns), &self.scope(ns, read), iam.as_deref())
                    .await
                    .map_err(|e| e.to_string())?;
                scoping::rescoped(records, ns, read.clone());
                Ok((
                    "ScopedKeyRescoped",
                    match read.is_empty() {
                        true => format!("namespace {ns}'s key reaches its own path only"),
                        false => format!(
                            "namespace {ns}'s key may also read {} (Restores of other namespaces' backups)",
                            read.join(", ")
                        ),
                    },
                ))
            }
            Step::Retire {
                namespace,
                access_key_id,
            } => {
                let (s, iam) = store()?;
                s.delete_scoped_key(&self.user(namespace), access_key_id, iam.as_deref())
                    .await
                    .map_err(|e| e.to_string())?;
                scoping::retired(records, namespace, access_key_id);
                Ok((
                    "ScopedKeyRetired",
                    format!("namespace {namespace}: replaced key {access_key_id} deleted"),
                ))
            }
            Step::Revoke {
                namespace,
                why,
                restore_config,
            } => {
                let ns = namespace.as_str();
                // The Secret first, if it is ours: the key leaves the namespace even if the
                // storage fails.
                if self.ours(ns).await.ok().flatten().is_some() {
                    let patch = match restore_config {
                        true => {
                            let (cfg, digest) = self.config()?;
                            config_patch(self.repo, cfg, digest)
                        }
                        false => revoke_patch(self.repo, ns, why),
                    };
                    self.patch_secret(ns, &patch).await?;
                }
                let (s, iam) = store()?;
                s.revoke(&self.user(ns), iam.as_deref())
                    .await
                    .map_err(|e| e.to_string())?;
                scoping::revoked(records, ns);
                Ok((
                    "ScopedKeyRevoked",
                    format!("namespace {ns}'s key was revoked: {why}"),
                ))
            }
            Step::Withdraw { namespace } => {
                let why = "it held the repository's own key and scoped credentials are on";
                if self.ours(namespace).await?.is_some() {
                    self.patch_secret(namespace, &revoke_patch(self.repo, namespace, why))
                        .await?;
                }
                Ok((
                    "ToolConfigWithdrawn",
                    format!("namespace {namespace}'s tool-config Secret was withdrawn: {why}"),
                ))
            }
            Step::Strip { namespace } => {
                if self.ours(namespace).await?.is_some() {
                    self.strip(namespace).await?;
                }
                Ok((
                    "ToolConfigWithdrawn",
                    format!(
                        "namespace {namespace}'s tool-config Secret lost the repository's own key; it gets a scoped key once the repository is Ready"
                    ),
                ))
            }
        }
    }

    fn secrets(&self, ns: &str) -> Api<Secret> {
        Api::namespaced(self.ctx.client.clone(), ns)
    }

    /// The namespace's Secret of the repository's name when the repository owns it; `None`
    /// when there is none; an error when someone else's (or a withdrawn one) is there.
    async fn ours(&self, ns: &str) -> std::result::Result<Option<Secret>, String> {
        let name = self.secret_name;
        let withdrawn = withdrawn_uid(self.repo);
        match self.secrets(ns).get_opt(name).await {
            Ok(Some(s))
                if s.metadata
                    .owner_references
                    .iter()
                    .flatten()
                    .any(|o| o.uid == withdrawn) =>
            {
                Err(format!(
                    "Secret {ns}/{name} was withdrawn and the garbage collector has not deleted it yet; a new key follows once it is gone"
                ))
            }
            Ok(Some(s)) if !owned_by(s.metadata.owner_references.as_ref(), self.repo) => {
                Err(not_owned(self.repo, "Secret", ns, name))
            }
            Ok(found) => Ok(found),
            Err(e) => Err(format!("cannot read Secret {ns}/{name}: {e}")),
        }
    }

    /// Remove the data of the namespace's Secret, keeping the Secret (and its ownership).
    async fn strip(&self, ns: &str) -> std::result::Result<(), String> {
        let patch = json!({
            "metadata": {"annotations": {
                REVOKED_ANNOTATION: "the repository's own key was removed: keys are scoped",
                BACKUP_REPO_DIGEST_ANNOTATION: null,
            }},
            "data": null,
        });
        self.patch_secret(ns, &patch).await
    }

    /// Put a key into the namespace's Secret: create it, or replace the config of ours.
    async fn write_key(&self, ns: &str, id: &str, secret: &str) -> std::result::Result<(), String> {
        let (own, digest) = self.config()?;
        let cfg = own
            .clone()
            .with_key(id, secret)
            .map_err(|e| e.to_string())?;
        let object = tool_config_secret(self.repo, self.secret_name, ns, &cfg, digest);
        match self
            .secrets(ns)
            .create(&PostParams::default(), &object)
            .await
        {
            Ok(_) => Ok(()),
            Err(e) if is_conflict(&e) => {
                self.ours(ns).await?;
                self.patch_secret(ns, &config_patch(self.repo, &cfg, digest))
                    .await
            }
            Err(e) => Err(format!(
                "cannot create Secret {ns}/{}: {e}",
                self.secret_name
            )),
        }
    }

    async fn patch_secret(&self, ns: &str, patch: &Value) -> std::result::Result<(), String> {
        merge_patch_if_present(&self.secrets(ns), self.secret_name, patch)
            .await
            .map_err(|e| format!("cannot update Secret {ns}/{}: {e}", self.secret_name))
    }
}

/// Revoke every scoped key of a repository being deleted. Without its config (provider or
/// credential gone) nothing can be revoked: the users are named in the returned note so an
/// administrator can remove them.
pub async fn revoke_all(
    repo: &BackupRepo,
    provider: Option<&StorageProvider>,
    config: Option<&RenderedToolConfig>,
) -> std::result::Result<usize, String> {
    let uid = repo.metadata.uid.as_deref().unwrap_or_default();
    let users: Vec<(String, String)> = repo
        .status
        .as_ref()
        .map(|s| s.scoped_credentials.as_slice())
        .unwrap_or_default()
        .iter()
        .map(|r| {
            (
                r.namespace.clone(),
                scoping::user_name(repo.name(), uid, &r.namespace),
            )
        })
        .collect();
    if users.is_empty() {
        return Ok(0);
    }
    let (storage, iam) = storage(provider, config).map_err(|why| {
        let names: Vec<&str> = users.iter().map(|(_, u)| u.as_str()).collect();
        format!(
            "{why}, so the repository's scoped keys cannot be revoked; delete these users on the storage: {}",
            names.join(", ")
        )
    })?;
    for (ns, user) in &users {
        storage
            .revoke(user, iam.as_deref())
            .await
            .map_err(|e| format!("revoking {ns}'s key (user {user}): {e}"))?;
    }
    Ok(users.len())
}
