//! The local store behind the control-plane commands ([`RepoStore`]): each write is one
//! transaction under the store's lock, from the first read to the last write; repositories are
//! reconciled in-process right after a change ([`RepoStore::settle`]).

use std::collections::{BTreeMap, BTreeSet};
use std::time::Duration;

use anyhow::{anyhow, bail, Result};
use backuprepo_api::constants::{
    BACKUP_REPO_DIGEST_ANNOTATION, NEED_UPDATE_TOOL_CONFIG_ANNOTATION,
};
use backuprepo_api::k8s_openapi::api::core::v1::{Secret, SecretReference};
use backuprepo_api::{
    random_suffix, secret_data, BackupRepo, BackupRepoPhase, Document, StorageProvider,
};
use backuprepo_core::manifests::{self, verb};
use backuprepo_core::store::{
    already_exists, credential_missing, credential_secret, credential_to_update, merge_credentials,
    owned_by_repo, owns, secret_exists, Applied, Deletion, InstallRequest, NewRepo, NotFound,
    RepoStore, RepoUpdate,
};
use backuprepo_core::{defaults, Settings};
use backuprepo_transfer::config::ToolConfig;
use backuprepo_transfer::Storage;

use crate::store::Lock;
use crate::{now, Engine, Store};

/// Namespace of the credential Secrets `create` makes (kbcli uses the KubeBlocks namespace).
pub const SECRET_NAMESPACE: &str = "kb-system";

/// The local store as a [`RepoStore`].
#[derive(Debug, Clone)]
pub struct LocalStore {
    pub engine: Engine,
}

impl LocalStore {
    pub fn new(engine: Engine) -> LocalStore {
        LocalStore { engine }
    }

    fn store(&self) -> &Store {
        &self.engine.store
    }

    fn stored(&self, name: &str) -> Result<BackupRepo> {
        self.store().repo(name)?.ok_or_else(|| NotFound::repo(name))
    }

    /// A name for a repository created without one (`backuprepo-xxxxx`), free in the store.
    fn generated_name(&self) -> Result<String> {
        loop {
            let n = format!("backuprepo-{}", &random_suffix()[..5]);
            if self.store().repo(&n)?.is_none() {
                return Ok(n);
            }
        }
    }

    /// The checks of `create` that need the store; the name the repository gets.
    fn admit_locked(&self, _lock: &Lock, new: &NewRepo) -> Result<String> {
        let name = match new.repo.metadata.name.clone() {
            Some(n) => {
                if self.store().repo(&n)?.is_some() {
                    return Err(already_exists(&n));
                }
                n
            }
            None => self.generated_name()?,
        };
        if new.make_default {
            defaults::check_single_default(&self.store().repos()?, &name)
                .map_err(|e| anyhow!(e))?;
        }
        Ok(name)
    }

    /// Files and bytes under a Ready repository's path; `None` when they cannot be read.
    async fn stat(&self, repo: &BackupRepo) -> Option<(u64, u64)> {
        if repo.phase() != Some(BackupRepoPhase::Ready) {
            return None;
        }
        let cfg = ToolConfig::load(&self.store().tool_config_path(repo.name()).ok()?).ok()?;
        let storage =
            Storage::open(&cfg, repo.spec.path_prefix.as_deref().unwrap_or(""), None).ok()?;
        let stat = storage.stat("").await.ok()?;
        Some((stat.files, stat.total_size))
    }
}

/// One `apply` under the store's lock: what it wrote (kubectl's lines) and which repositories
/// the writes affect.
struct ApplyTxn<'a> {
    store: &'a Store,
    lock: &'a Lock,
    /// The repositories before the apply.
    existing: Vec<BackupRepo>,
    out: Applied,
    touched: BTreeSet<String>,
}

impl ApplyTxn<'_> {
    /// Write a Secret; the repositories that use it are touched.
    fn secret(&mut self, s: &Secret) -> Result<()> {
        let mut s = s.clone();
        let ns = s
            .metadata
            .namespace
            .get_or_insert_with(|| "default".into())
            .clone();
        let name = s.metadata.name.clone().unwrap_or_default();
        let old = self.store.secret(&ns, &name)?;
        let same = old
            .as_ref()
            .is_some_and(|o| secret_data(o).ok() == secret_data(&s).ok());
        s.metadata.resource_version = None;
        if let Some(o) = &old {
            s.metadata.owner_references = o.metadata.owner_references.clone();
        }
        if !same {
            self.store.put_secret(self.lock, s, &now())?;
        }
        self.out
            .lines
            .push(format!("secret/{name} {}", verb(old.is_some(), same)));
        for r in &self.existing {
            if r.credential_key()
                .ok()
                .flatten()
                .is_some_and(|(cns, cname)| cname == name && cns == ns)
            {
                self.touched.insert(r.name().to_string());
            }
        }
        Ok(())
    }

    /// Write a provider; the repositories on it are touched.
    fn provider(&mut self, p: &StorageProvider) -> Result<()> {
        let old = self.store.provider(p.name())?;
        let same = old.as_ref().is_some_and(|o| o.spec == p.spec);
        let mut p = p.clone();
        p.metadata.resource_version = None;
        if !same {
            self.store.put_provider(self.lock, p.clone(), &now())?;
        }
        self.out.lines.push(format!(
            "storageprovider.dataprotection.kubeblocks.io/{} {}",
            p.name(),
            verb(old.is_some(), same)
        ));
        for r in self
            .existing
            .iter()
            .filter(|r| r.spec.storage_provider_ref == p.name())
        {
            self.touched.insert(r.name().to_string());
        }
        Ok(())
    }

    /// Write a repository, keeping what the reconcile owns (status and its annotations).
    fn repo(&mut self, r: &BackupRepo) -> Result<()> {
        let old = self.existing.iter().find(|o| o.name() == r.name());
        let mut new = r.clone();
        new.metadata.resource_version = None;
        new.status = None;
        let mut same = false;
        if let Some(o) = old {
            new.status = o.status.clone();
            let ann = new.metadata.annotations.get_or_insert_with(BTreeMap::new);
            for k in [
                BACKUP_REPO_DIGEST_ANNOTATION,
                NEED_UPDATE_TOOL_CONFIG_ANNOTATION,
            ] {
                if let Some(v) = o.metadata.annotations.as_ref().and_then(|a| a.get(k)) {
                    ann.entry(k.to_string()).or_insert_with(|| v.clone());
                }
            }
            if ann.is_empty() {
                new.metadata.annotations = None;
            }
            same = o.spec == new.spec
                && o.metadata.annotations == new.metadata.annotations
                && o.metadata.labels == new.metadata.labels;
        }
        let existed = old.is_some();
        if !same {
            self.store.put_repo(self.lock, new, &now())?;
        }
        self.out.lines.push(format!(
            "backuprepo.dataprotection.kubeblocks.io/{} {}",
            r.name(),
            verb(existed, same)
        ));
        self.touched.insert(r.name().to_string());
        Ok(())
    }
}

impl RepoStore for LocalStore {
    const USERS: &'static str = "backup file(s)";
    const USERS_COLUMN: &'static str = "FILES";

    async fn provider(&self, name: &str) -> Result<StorageProvider> {
        self.store()
            .provider(name)?
            .ok_or_else(|| NotFound::provider(name))
    }

    async fn providers(&self) -> Result<Vec<StorageProvider>> {
        Ok(self.store().providers()?)
    }

    async fn repo(&self, name: &str) -> Result<BackupRepo> {
        self.stored(name)
    }

    async fn repos(&self) -> Result<Vec<BackupRepo>> {
        Ok(self.store().repos()?)
    }

    async fn current(&self, name: &str) -> Result<BackupRepo> {
        self.stored(name)?;
        Ok(self.engine.reconcile(name, false).await?)
    }

    async fn current_all(&self) -> Result<Vec<BackupRepo>> {
        Ok(self.engine.reconcile_all().await?)
    }

    async fn settle(&self, names: &[String]) -> Result<Vec<BackupRepo>> {
        let mut out = Vec::new();
        for n in names {
            out.push(self.engine.reconcile(n, false).await?);
        }
        Ok(out)
    }

    /// Objects and bytes under each repository's path: listed now when `live`, else as the
    /// last measurement recorded them (`status.usage`).
    async fn usage(
        &self,
        repos: &[BackupRepo],
        live: bool,
    ) -> Result<BTreeMap<String, (u64, u64)>> {
        let mut out = BTreeMap::new();
        for r in repos {
            let u = if live {
                self.stat(r).await
            } else {
                r.status
                    .as_ref()
                    .and_then(|s| s.usage.as_ref())
                    .map(|u| (u.object_count, u.total_bytes))
            };
            if let Some(u) = u {
                out.insert(r.name().to_string(), u);
            }
        }
        Ok(out)
    }

    async fn create(&self, new: NewRepo) -> Result<String> {
        let lock = self.store().lock()?;
        let name = self.admit_locked(&lock, &new)?;
        let NewRepo {
            mut repo, secret, ..
        } = new;
        repo.metadata.name = Some(name.clone());
        let now = now();
        let mut secret_name = None;
        if !secret.is_empty() {
            let n = format!("kb-backuprepo-{}", &random_suffix()[..5]);
            self.store().put_secret(
                &lock,
                credential_secret(&n, SECRET_NAMESPACE, &secret),
                &now,
            )?;
            repo.spec.credential = Some(SecretReference {
                name: Some(n.clone()),
                namespace: Some(SECRET_NAMESPACE.into()),
            });
            secret_name = Some(n);
        }
        let stored = match self.store().put_repo(&lock, repo, &now) {
            Ok(r) => r,
            Err(e) => {
                // Roll back the secret: nothing is left half-created.
                if let Some(n) = &secret_name {
                    self.store().delete_secret(&lock, SECRET_NAMESPACE, n).ok();
                }
                return Err(e.into());
            }
        };
        // The secret belongs to the repository: deleting the repository deletes it.
        if let Some(n) = &secret_name {
            if let Some(mut s) = self.store().secret(SECRET_NAMESPACE, n)? {
                s.metadata.owner_references = Some(vec![owned_by_repo(&stored)]);
                self.store().put_secret(&lock, s, &now)?;
            }
        }
        Ok(name)
    }

    async fn admit(&self, new: &NewRepo) -> Result<String> {
        if new.repo.metadata.name.is_none() {
            return Ok("dry-run".into());
        }
        let lock = self.store().lock()?;
        self.admit_locked(&lock, new)
    }

    fn check_settings(&self) -> (Settings, Duration) {
        (self.engine.settings.clone(), self.engine.probe_timeout)
    }

    async fn update(&self, repo: &BackupRepo, update: &RepoUpdate<'_>) -> Result<()> {
        let name = repo.name();
        let lock = self.store().lock()?;
        let mut repo = self.stored(name)?;
        if !update.secret.is_empty() {
            let (ns, sname) = credential_to_update(&repo)?;
            let old = self
                .store()
                .secret(&ns, &sname)?
                .ok_or_else(|| credential_missing(name, &ns, &sname))?;
            let new = merge_credentials(old, &update.secret);
            (update.check)(&repo, &secret_data(&new)?)?;
            self.store().put_secret(&lock, new, &now())?;
        }
        if let Some(d) = update.default {
            if d {
                defaults::check_single_default(&self.store().repos()?, name)
                    .map_err(|e| anyhow!(e))?;
            }
            manifests::set_default(&mut repo, d);
            self.store().put_repo(&lock, repo, &now())?;
        }
        Ok(())
    }

    async fn delete(&self, repo: &BackupRepo, _users: u64) -> Result<Deletion> {
        let lock = self.store().lock()?;
        // The credential Secret `create` made (owned by the repository) goes with it.
        if let Ok(Some((ns, sname))) = repo.credential_key() {
            if let Some(s) = self.store().secret(&ns, &sname)? {
                if owns(repo, &s) {
                    self.store().delete_secret(&lock, &ns, &sname)?;
                }
            }
        }
        self.store().delete_repo(&lock, repo.name())?;
        Ok(Deletion::Deleted)
    }

    async fn check(&self, name: &str) -> Result<BackupRepo> {
        self.stored(name)?;
        Ok(self.engine.reconcile(name, true).await?)
    }

    async fn check_all(&self) -> Result<Vec<BackupRepo>> {
        let mut checked = Vec::new();
        for r in self.store().repos()? {
            checked.push(self.engine.reconcile(r.name(), true).await?);
        }
        Ok(checked)
    }

    async fn apply(&self, docs: Vec<Document>) -> Result<Applied> {
        let lock = self.store().lock()?;
        let existing = self.store().repos()?;
        manifests::check_against(&existing, &docs)?;
        let mut txn = ApplyTxn {
            store: self.store(),
            lock: &lock,
            existing,
            out: Applied::default(),
            touched: BTreeSet::new(),
        };
        // Secrets, then providers, then repositories: what a repository refers to comes first.
        for d in &docs {
            if let Document::Secret(s) = d {
                txn.secret(s)?;
            }
        }
        for d in &docs {
            if let Document::StorageProvider(p) = d {
                txn.provider(p)?;
            }
        }
        for d in &docs {
            if let Document::BackupRepo(r) = d {
                txn.repo(r)?;
            }
        }
        let mut out = txn.out;
        out.repos = txn.touched.into_iter().collect();
        Ok(out)
    }

    async fn annotate(&self, name: &str, changes: &[String], overwrite: bool) -> Result<()> {
        let lock = self.store().lock()?;
        let mut repo = self.stored(name)?;
        manifests::annotate(&mut repo, changes, overwrite)?;
        if repo.is_default() {
            defaults::check_single_default(&self.store().repos()?, name).map_err(|e| anyhow!(e))?;
        }
        self.store().put_repo(&lock, repo, &now())?;
        Ok(())
    }

    async fn create_secret(&self, secret: Secret) -> Result<()> {
        let ns = secret.metadata.namespace.clone().unwrap_or_default();
        let name = secret.metadata.name.clone().unwrap_or_default();
        let lock = self.store().lock()?;
        if self.store().secret(&ns, &name)?.is_some() {
            return Err(secret_exists(&ns, &name));
        }
        self.store().put_secret(&lock, secret, &now())?;
        Ok(())
    }

    async fn secrets(&self, namespace: Option<&str>) -> Result<Vec<Secret>> {
        Ok(self.store().secrets(namespace)?)
    }

    async fn delete_secret(&self, namespace: &str, name: &str) -> Result<bool> {
        let lock = self.store().lock()?;
        Ok(self.store().delete_secret(&lock, namespace, name)?)
    }

    async fn install(&self, request: InstallRequest) -> Result<Applied> {
        if request.namespace.is_some() || request.image.is_some() {
            bail!("--namespace and --image are for Kubernetes: add --print, or --store kube");
        }
        let Some(values) = request.values else {
            bail!("pass -f values.yaml (or --print for the Kubernetes manifests)");
        };
        match backuprepo_deploy::backup_repo_from_values(&values, SECRET_NAMESPACE)? {
            None => Ok(Applied {
                lines: vec!["backupRepo.create is not true or backupRepo.storageProvider is empty: no backup repository to install".into()],
                repos: Vec::new(),
            }),
            Some((secret, repo)) => {
                let docs = vec![Document::Secret(secret), Document::BackupRepo(repo)];
                manifests::check_documents(&docs)?;
                self.apply(docs).await
            }
        }
    }

    async fn tool_config(&self, repo: &BackupRepo) -> Result<String> {
        let path = self.store().tool_config_path(repo.name())?;
        std::fs::read_to_string(&path).map_err(|e| {
            anyhow!(
                "the tool config of {} cannot be read ({e}); run `backuprepo check {}`",
                repo.name(),
                repo.name()
            )
        })
    }

    async fn account_write(&self, name: &str, rel: &str, objects: i64, bytes: i64) -> Result<()> {
        let lock = self.store().lock()?;
        let mut repo = self.stored(name)?;
        // Never measured yet: the first check measures it all.
        let Some(usage) = repo.status.as_mut().and_then(|s| s.usage.as_mut()) else {
            return Ok(());
        };
        backuprepo_transfer::storage::account(usage, rel, objects, bytes);
        self.store().put_repo(&lock, repo, &now())?;
        Ok(())
    }

    fn replicates_here(&self) -> bool {
        true
    }

    async fn set_replication(
        &self,
        name: &str,
        status: backuprepo_api::ReplicationStatus,
    ) -> Result<()> {
        let lock = self.store().lock()?;
        let mut repo = self.stored(name)?;
        repo.status.get_or_insert_with(Default::default).replication = Some(status);
        self.store().put_repo(&lock, repo, &now())?;
        Ok(())
    }
}
