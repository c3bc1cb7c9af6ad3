//! Scoped keys for consumer namespaces (`backuprepo.io/scoped-credentials`), the Kubernetes
//! side of [`backuprepo_core::scoping`]: observe the consumers and the tool-config Secrets,
//! let the core plan, then make, rotate, widen, retire and revoke keys on the storage (its IAM
//! API, through the repository's own key, which stays in the controller) and write each key
//! into its namespace's Secret. `status.scopedCredentials` records every key by namespace,
//! user and key ID; never a secret.
//!
//! A namespace whose key cannot be made gets nothing: its consumers keep waiting, and the
//! `ScopedCredentials` condition and events on the repository and the consumers say why.

use std::collections::{BTreeMap, BTreeSet};
use std::time::Duration;

use backuprepo_api::constants::{
    condition_type, BACKUP_REPO_DIGEST_ANNOTATION, IS_TOOL_CONFIG_LABEL, ROTATE_KEYS_ANNOTATION,
};
use backuprepo_api::{BackupRepo, BackupRepoStatus, ScopedCredential, StorageProvider};
use backuprepo_catalog::render::RenderedToolConfig;
use backuprepo_core::scoping::{self, Observed, Step};
use backuprepo_transfer::storage::Scope;
use backuprepo_transfer::Storage;
use k8s_openapi::api::core::v1::Secret;
use kube::api::{DynamicObject, ListParams, Patch, PatchParams, PostParams};
use kube::{Api, Resource, ResourceExt};
use serde_json::{json, Value};

use crate::context::Context;
use crate::error::{is_conflict, Error, Result};
use crate::namespaces::{config_patch, merge_patch_if_present, revoke_patch, tool_config_secret};
use crate::resources::{
    backup_resource, is_active_consumer, list_consumers, owned_by, repo_selector, restore_resource,
    status_merge_patch, waits_for_preparation,
};

/// Reason of the events and condition when a namespace could not get its key.
pub const SCOPING_FAILED: &str = "ScopingFailed";

/// How soon a failed step is tried again.
const RETRY: Duration = Duration::from_secs(60);

/// What the rest of the reconcile needs to know.
#[derive(Debug, Default)]
pub struct Scoped {
    /// Scoping is on: consumer namespaces get only the Secrets made here.
    pub enabled: bool,
    /// Namespaces whose Secret holds their scoped key now.
    pub ready: BTreeSet<String>,
    /// When a rotation or retirement falls due.
    pub wake: Option<Duration>,
}

/// The consumers of the repository, as scoping sees them.
struct Consumers {
    seen: Observed,
    /// Waiting consumers by namespace (for events when their namespace cannot get a key).
    waiting: BTreeMap<String, Vec<DynamicObject>>,
}

/// Keep the scoped keys of `repo` in line (see the module doc). `status` is the status as
/// written this pass; `digest` the checked one; `config` the repository's own tool config.
pub async fn sync(
    ctx: &Context,
    repo: &BackupRepo,
    provider: Option<&StorageProvider>,
    status: &BackupRepoStatus,
    config: &RenderedToolConfig,
    digest: &str,
) -> Result<Scoped> {
    let enabled = repo.scopes_credentials(ctx.config.scoping.by_default);
    let mut records = status.scoped_credentials.clone();
    if !enabled && records.is_empty() {
        return Ok(Scoped::default());
    }
    let Some(secret_name) = status.tool_config_secret_name.clone() else {
        return Ok(Scoped::default());
    };
    let consumers = observe(ctx, repo, enabled, &records, digest).await?;
    let now = ctx.now();
    let steps = scoping::plan(&records, &consumers.seen, &now, &ctx.config.scoping);
    let mut failed: Vec<(String, String)> = Vec::new();
    if !steps.is_empty() {
        let run = Run {
            ctx,
            repo,
            config,
            digest,
            secret_name: &secret_name,
            path_prefix: repo.spec.path_prefix.as_deref().unwrap_or_default(),
        };
        let storage = provider
            .ok_or_else(|| "the storage provider is gone".to_string())
            .and_then(|p| p.key_scoping().map(|e| e.map(str::to_string)))
            .and_then(|iam| {
                Storage::open(&config.config, "", None)
                    .map(|s| (s, iam))
                    .map_err(|e| e.to_string())
            });
        // One event per reason and pass: the recorder folds repeats of a reason on one
        // object into a series that keeps the first note only.
        let mut notes: BTreeMap<&'static str, Vec<String>> = BTreeMap::new();
        for step in steps {
            let ns = step.namespace().to_string();
            let outcome = match &storage {
                Ok((s, iam)) => run.step(s, iam.as_deref(), &step, &mut records).await,
                Err(why) => Err(why.clone()),
            };
            match outcome {
                Ok((reason, note)) => notes.entry(reason).or_default().push(note),
                Err(why) => {
                    let note = format!("namespace {ns}: {why}");
                    for c in consumers.waiting.get(&ns).into_iter().flatten() {
                        let ar = if c.types.as_ref().is_some_and(|t| t.kind == "Restore") {
                            restore_resource()
                        } else {
                            backup_resource()
                        };
                        ctx.event(
                            &crate::namespaces::consumer_ref(c, &ar),
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
    write_status(ctx, repo, status, enabled, &records, &failed).await?;
    if consumers.seen.rotate_requested && failed.is_empty() {
        let api: Api<BackupRepo> = Api::all(ctx.client.clone());
        let patch = json!({"metadata": {"annotations": {ROTATE_KEYS_ANNOTATION: null}}});
        api.patch(repo.name(), &PatchParams::default(), &Patch::Merge(&patch))
            .await
            .map_err(Error::kube("remove the rotate-keys annotation"))?;
    }
    let ready = records
        .iter()
        .map(|r| r.namespace.clone())
        .filter(|ns| !failed.iter().any(|(f, _)| f == ns))
        .collect();
    // A namespace that could not get its key is tried again within a minute.
    let retry = (!failed.is_empty()).then_some(RETRY);
    let wake = scoping::wake(&records, &ctx.now(), &ctx.config.scoping);
    Ok(Scoped {
        enabled,
        ready,
        wake: [wake, retry].into_iter().flatten().min(),
    })
}

/// Consumers, Secrets and the allow-list, as [`Observed`].
async fn observe(
    ctx: &Context,
    repo: &BackupRepo,
    enabled: bool,
    records: &[ScopedCredential],
    digest: &str,
) -> Result<Consumers> {
    let selector = repo_selector(repo.name());
    let mut seen = Observed {
        enabled,
        rotate_requested: repo.annotations().contains_key(ROTATE_KEYS_ANNOTATION),
        ..Observed::default()
    };
    let mut waiting: BTreeMap<String, Vec<DynamicObject>> = BTreeMap::new();
    let path_prefix = repo.spec.path_prefix.as_deref().unwrap_or_default();
    for (ar, restore) in [(backup_resource(), false), (restore_resource(), true)] {
        for c in list_consumers(&ctx.client, &ar, &selector).await? {
            let Some(ns) = c.namespace() else { continue };
            seen.present.insert(ns.clone());
            if !is_active_consumer(&c) {
                continue;
            }
            if waits_for_preparation(&c) && ctx.config.allows_namespace(repo, &ns) {
                seen.waiting.insert(ns.clone());
                waiting.entry(ns.clone()).or_default().push(c.clone());
            }
            if restore {
                for p in restore_reads(ctx, &c, &ns, path_prefix).await? {
                    seen.reads.entry(ns.clone()).or_default().insert(p);
                }
            }
        }
    }
    let all: Api<Secret> = Api::all(ctx.client.clone());
    let secrets = all
        .list(&ListParams::default().labels(&format!("{selector},{IS_TOOL_CONFIG_LABEL}=true")))
        .await
        .map_err(Error::kube("list tool-config secrets"))?;
    for s in secrets
        .items
        .iter()
        .filter(|s| owned_by(s.metadata.owner_references.as_ref(), repo))
    {
        let Some(ns) = s.metadata.namespace.clone() else {
            continue;
        };
        let current = s
            .metadata
            .annotations
            .as_ref()
            .and_then(|a| a.get(BACKUP_REPO_DIGEST_ANNOTATION));
        if current.map(String::as_str) != Some(digest) {
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
    Ok(Consumers { seen, waiting })
}

/// The paths an unfinished Restore in `ns` reads in another namespace: its Backup's
/// `status.path` and `status.kopiaRepoPath`, each only when inside that Backup's namespace.
async fn restore_reads(
    ctx: &Context,
    restore: &DynamicObject,
    ns: &str,
    path_prefix: &str,
) -> Result<Vec<String>> {
    let spec = &restore.data["spec"]["backup"];
    let phase = restore.data["status"]["phase"].as_str().unwrap_or_default();
    let (Some(name), Some(bns)) = (spec["name"].as_str(), spec["namespace"].as_str()) else {
        return Ok(Vec::new());
    };
    if bns == ns || matches!(phase, "Completed" | "Failed") {
        return Ok(Vec::new());
    }
    // A list by name: the controller may list Backups, it has no need to `get` them.
    let api: Api<DynamicObject> = Api::namespaced_with(ctx.client.clone(), bns, &backup_resource());
    let found = api
        .list(&ListParams::default().fields(&format!("metadata.name={name}")))
        .await
        .map_err(Error::kube(format!("list backups in {bns}")))?;
    let Some(backup) = found
        .items
        .into_iter()
        .find(|b| b.metadata.name.as_deref() == Some(name))
    else {
        return Ok(Vec::new());
    };
    Ok(["path", "kopiaRepoPath"]
        .iter()
        .filter_map(|f| backup.data["status"][*f].as_str())
        .filter_map(|p| scoping::read_path(path_prefix, bns, p))
        .collect())
}

/// Record the keys and the condition in status, when they changed.
async fn write_status(
    ctx: &Context,
    repo: &BackupRepo,
    written: &BackupRepoStatus,
    enabled: bool,
    records: &[ScopedCredential],
    failed: &[(String, String)],
) -> Result<()> {
    let mut status = written.clone();
    status.scoped_credentials = records.to_vec();
    let now = ctx.now();
    match scoping::condition(enabled, records, failed) {
        Some((s, reason, message)) => backuprepo_core::conditions::set(
            &mut status.conditions,
            condition_type::SCOPED_CREDENTIALS,
            s,
            reason,
            message,
            repo.metadata.generation,
            &now,
        ),
        None => backuprepo_core::conditions::remove(
            &mut status.conditions,
            condition_type::SCOPED_CREDENTIALS,
        ),
    }
    if &status == written {
        return Ok(());
    }
    let api: Api<BackupRepo> = Api::all(ctx.client.clone());
    let patch = status_merge_patch(Some(written), &status);
    api.patch_status(repo.name(), &PatchParams::default(), &Patch::Merge(&patch))
        .await
        .map_err(Error::kube("patch status"))?;
    Ok(())
}

/// What one pass needs to carry steps out.
struct Run<'a> {
    ctx: &'a Context,
    repo: &'a BackupRepo,
    config: &'a RenderedToolConfig,
    digest: &'a str,
    secret_name: &'a str,
    path_prefix: &'a str,
}

/// An event's reason and note.
type Note = (&'static str, String);

impl Run<'_> {
    fn scope(&self, ns: &str, read: &[String]) -> Scope {
        Scope {
            write: vec![scoping::own_path(self.path_prefix, ns)],
            read: read.to_vec(),
        }
    }

    /// Carry out one step and record it; `Err` says why it could not be done.
    async fn step(
        &self,
        storage: &Storage,
        iam: Option<&str>,
        step: &Step,
        records: &mut Vec<ScopedCredential>,
    ) -> std::result::Result<Note, String> {
        let now = self.ctx.now();
        let record = |ns: &str| records.iter().find(|r| r.namespace == ns).cloned();
        match step {
            Step::Issue { namespace, read } => {
                let ns = namespace.as_str();
                let user = scoping::user_name(
                    self.repo.name(),
                    self.repo.metadata.uid.as_deref().unwrap_or_default(),
                    ns,
                );
                self.writable(ns).await?;
                // A user of this name is this repository's, for this namespace: one left by
                // an interrupted pass is replaced, not kept.
                storage
                    .revoke(&user, iam)
                    .await
                    .map_err(|e| e.to_string())?;
                let key = storage
                    .scoped_user(&user, &self.scope(ns, read), iam)
                    .await
                    .map_err(|e| e.to_string())?;
                if let Err(why) = self
                    .write_key(ns, &key.access_key_id, &key.secret_access_key)
                    .await
                {
                    let _ = storage.revoke(&user, iam).await;
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
                let Some(r) = record(ns) else {
                    return Err("no key recorded".into());
                };
                self.writable(ns).await?;
                // Keys still retiring from an earlier rotation go first: storages allow two
                // keys per user.
                for k in &r.retiring {
                    storage
                        .delete_scoped_key(&r.user, &k.access_key_id, iam)
                        .await
                        .map_err(|e| e.to_string())?;
                    scoping::retired(records, ns, &k.access_key_id);
                }
                let key = storage
                    .scoped_key(&r.user, iam)
                    .await
                    .map_err(|e| e.to_string())?;
                if let Err(why) = self
                    .write_key(ns, &key.access_key_id, &key.secret_access_key)
                    .await
                {
                    let _ = storage
                        .delete_scoped_key(&r.user, &key.access_key_id, iam)
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
                let Some(r) = record(ns) else {
                    return Err("no key recorded".into());
                };
                storage
                    .rescope(&r.user, &self.scope(ns, read), iam)
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
                let Some(r) = record(namespace) else {
                    return Err("no key recorded".into());
                };
                storage
                    .delete_scoped_key(&r.user, access_key_id, iam)
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
                // The Secret first: the key leaves the namespace even if the storage fails.
                let patch = if *restore_config {
                    config_patch(self.config, self.digest)
                } else {
                    revoke_patch(self.repo, ns, why)
                };
                self.patch_secret(ns, &patch).await?;
                if let Some(r) = record(ns) {
                    storage
                        .revoke(&r.user, iam)
                        .await
                        .map_err(|e| e.to_string())?;
                }
                scoping::revoked(records, ns);
                Ok((
                    "ScopedKeyRevoked",
                    format!("namespace {ns}'s key was revoked: {why}"),
                ))
            }
            Step::Withdraw { namespace } => {
                let why = "it held the repository's own key and scoped credentials are on";
                self.patch_secret(namespace, &revoke_patch(self.repo, namespace, why))
                    .await?;
                Ok((
                    "ToolConfigWithdrawn",
                    format!("namespace {namespace}'s tool-config Secret was withdrawn: {why}"),
                ))
            }
        }
    }

    fn secrets(&self, ns: &str) -> Api<Secret> {
        Api::namespaced(self.ctx.client.clone(), ns)
    }

    /// Fail unless the namespace's Secret is absent or this repository's.
    async fn writable(&self, ns: &str) -> std::result::Result<(), String> {
        let name = self.secret_name;
        let withdrawn = format!(
            "revoked-{}",
            self.repo.metadata.uid.as_deref().unwrap_or_default()
        );
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
            Ok(Some(s)) if !owned_by(s.metadata.owner_references.as_ref(), self.repo) => Err(format!(
                "Secret {ns}/{name} exists and is not owned by backup repository {}; the controller does not write into it. Delete it so the controller can create its own",
                self.repo.name()
            )),
            Ok(_) => Ok(()),
            Err(e) => Err(format!("cannot read Secret {ns}/{name}: {e}")),
        }
    }

    /// Put a key into the namespace's Secret: create it, or replace the config of ours.
    async fn write_key(&self, ns: &str, id: &str, secret: &str) -> std::result::Result<(), String> {
        let cfg = self
            .config
            .clone()
            .with_key(id, secret)
            .map_err(|e| e.to_string())?;
        let object = tool_config_secret(self.repo, self.secret_name, ns, &cfg, self.digest);
        match self
            .secrets(ns)
            .create(&PostParams::default(), &object)
            .await
        {
            Ok(_) => Ok(()),
            Err(e) if is_conflict(&e) => {
                self.writable(ns).await?;
                self.patch_secret(ns, &config_patch(&cfg, self.digest))
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
    let records = repo
        .status
        .as_ref()
        .map(|s| s.scoped_credentials.clone())
        .unwrap_or_default();
    if records.is_empty() {
        return Ok(0);
    }
    let users = || {
        records
            .iter()
            .map(|r| r.user.as_str())
            .collect::<Vec<_>>()
            .join(", ")
    };
    let (Some(p), Some(cfg)) = (provider, config) else {
        return Err(format!(
            "the repository's provider or credential is gone, so its scoped keys cannot be revoked; delete these users on the storage: {}",
            users()
        ));
    };
    let iam = p.key_scoping()?;
    let storage = Storage::open(&cfg.config, "", None).map_err(|e| e.to_string())?;
    for r in &records {
        storage
            .revoke(&r.user, iam)
            .await
            .map_err(|e| format!("revoking {}'s key (user {}): {e}", r.namespace, r.user))?;
    }
    Ok(records.len())
}
