//! The repository-store interface: what the control-plane commands need from the place where
//! repositories live. Two stores implement it: the local store of `backuprepo` (files under
//! one home, reconciled in-process; `backuprepo-local`) and Kubernetes (the API server, where
//! the controller reconciles; `backuprepo-operator`). Every command is written once over it.
//!
//! Each write is one method, so each store keeps its own transaction: the local store holds
//! its lock from the first read to the last write; Kubernetes relies on the API server
//! (generated names, resourceVersion guards, server-side dry runs). The rules both need are
//! the pure functions of this crate ([`crate::defaults`], [`crate::manifests`]) and of `api`.

use std::collections::BTreeMap;
use std::time::Duration;

use backuprepo_api::k8s_openapi::api::core::v1::Secret;
use backuprepo_api::k8s_openapi::apimachinery::pkg::apis::meta::v1::OwnerReference;
use backuprepo_api::k8s_openapi::ByteString;
use backuprepo_api::{BackupRepo, Document, StorageProvider};

use crate::Settings;

pub type Result<T, E = anyhow::Error> = std::result::Result<T, E>;

/// A repository `create` would store, checked against its provider; nothing stored yet.
#[derive(Clone)]
pub struct NewRepo {
    /// The repository; `metadata.name` is the given name, or `None` to generate one.
    pub repo: BackupRepo,
    /// Credential values: they go into a Secret the repository references and owns.
    pub secret: BTreeMap<String, String>,
    /// Whether the repository is to be the default (refused while another one is).
    pub make_default: bool,
}

// Debug shows which credential keys are given, never their values.
impl std::fmt::Debug for NewRepo {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("NewRepo")
            .field("repo", &self.repo)
            .field("credential_keys", &self.secret.keys().collect::<Vec<_>>())
            .field("make_default", &self.make_default)
            .finish()
    }
}

/// The checks a store runs on merged credential data before it writes it.
pub type CredentialCheck<'a> =
    dyn Fn(&BackupRepo, &BTreeMap<String, String>) -> Result<()> + Sync + 'a;

/// What `update` changes: credential values, and the default flag.
pub struct RepoUpdate<'a> {
    /// Credential values given (merged into the repository's credential Secret).
    pub secret: BTreeMap<String, String>,
    /// `Some(true)`: make it the default; `Some(false)`: remove that; `None`: unchanged.
    pub default: Option<bool>,
    /// Checks the merged credential data with the repository (the provider's schema).
    pub check: &'a CredentialCheck<'a>,
}

impl std::fmt::Debug for RepoUpdate<'_> {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("RepoUpdate")
            .field("credential_keys", &self.secret.keys().collect::<Vec<_>>())
            .field("default", &self.default)
            .finish_non_exhaustive()
    }
}

/// What `install` was asked for.
#[derive(Clone, Default)]
pub struct InstallRequest {
    /// The text of a KubeBlocks values file (only `backupRepo:` is read).
    pub values: Option<String>,
    /// Kubernetes: the controller's namespace (default: the store's namespace).
    pub namespace: Option<String>,
    /// Kubernetes: the controller's image.
    pub image: Option<String>,
    /// Kubernetes: the namespaces repositories without `spec.allowedNamespaces` serve
    /// (`a,b`, or `*` for every namespace; default every namespace).
    pub allowed_namespaces: Option<String>,
    /// Kubernetes: add the PrometheusRule and the Grafana dashboard.
    pub monitoring: bool,
}

// Debug leaves out the values file: it can hold credentials.
impl std::fmt::Debug for InstallRequest {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("InstallRequest")
            .field("values", &self.values.as_ref().map(|_| "<values file>"))
            .field("namespace", &self.namespace)
            .field("image", &self.image)
            .field("monitoring", &self.monitoring)
            .finish()
    }
}

/// What an apply (or install) did.
#[derive(Debug, Default)]
pub struct Applied {
    /// kubectl's lines: `kind/name created|configured|unchanged`.
    pub lines: Vec<String>,
    /// Repositories whose reconcile the change affects (see [`RepoStore::settle`]).
    pub repos: Vec<String>,
}

/// How a delete ended.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Deletion {
    /// The repository is gone.
    Deleted,
    /// The store keeps it (phase Deleting) until its backups are gone (Kubernetes' finalizer).
    Pending,
}

/// An object the store does not have. Commands tell it apart from other failures
/// (`get` prints kubectl's message for it).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct NotFound {
    /// `backuprepo` or `storageprovider`.
    pub kind: &'static str,
    pub name: String,
}

impl std::fmt::Display for NotFound {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self.kind {
            "storageprovider" => write!(
                f,
                "storage provider {:?} is not found; see `backuprepo list-storage-provider`",
                self.name
            ),
            _ => write!(f, "backup repository {:?} is not found", self.name),
        }
    }
}

impl std::error::Error for NotFound {}

impl NotFound {
    pub fn repo(name: &str) -> anyhow::Error {
        NotFound {
            kind: "backuprepo",
            name: name.to_string(),
        }
        .into()
    }

    pub fn provider(name: &str) -> anyhow::Error {
        NotFound {
            kind: "storageprovider",
            name: name.to_string(),
        }
        .into()
    }
}

/// Where repositories live. Async: the Kubernetes store talks to the API server, the local
/// store probes storage; the binary runs the commands on one runtime. Not object-safe on
/// purpose: commands are generic over the store.
#[allow(async_fn_in_trait)] // used within this workspace, on one runtime; no Send bound needed
pub trait RepoStore {
    /// What counts as a repository's users in [`RepoStore::usage`], for messages
    /// (`backup(s)`: Backup objects; `backup file(s)`: files in the storage).
    const USERS: &'static str;
    /// The `list` column of those users: kbcli's `BACKUPS` (Backup objects) on Kubernetes,
    /// `FILES` on the local store (there are no Backup objects there).
    const USERS_COLUMN: &'static str;

    /// A storage provider; [`NotFound`] when there is none of that name.
    async fn provider(&self, name: &str) -> Result<StorageProvider>;
    async fn providers(&self) -> Result<Vec<StorageProvider>>;
    /// A repository as stored; [`NotFound`] when there is none of that name.
    async fn repo(&self, name: &str) -> Result<BackupRepo>;
    /// Every repository as stored.
    async fn repos(&self) -> Result<Vec<BackupRepo>>;
    /// A repository as it is now: the local store reconciles it first (a re-check that is due
    /// runs); in Kubernetes, as the controller left it.
    async fn current(&self, name: &str) -> Result<BackupRepo>;
    /// Every repository as it is now (see [`RepoStore::current`]).
    async fn current_all(&self) -> Result<Vec<BackupRepo>>;
    /// After a change: reconcile these repositories where the store does it in-process and
    /// return them; nothing where a controller does it (Kubernetes).
    async fn settle(&self, names: &[String]) -> Result<Vec<BackupRepo>>;
    /// (users, bytes) per repository name, for those the store can tell; absent: unknown.
    /// `live`: count now (before a delete), else what is recorded may do (`list`, `describe`:
    /// the local store then reads `status.usage` and never scans the storage).
    async fn usage(&self, repos: &[BackupRepo], live: bool)
        -> Result<BTreeMap<String, (u64, u64)>>;

    /// Store a new repository (and its credential Secret); returns its name. Refused when the
    /// name is taken or a second default would result; nothing is left half-created.
    async fn create(&self, new: NewRepo) -> Result<String>;
    /// Everything [`RepoStore::create`] checks, nothing stored (Kubernetes: the API server's
    /// dry run); returns the name the repository would get.
    async fn admit(&self, new: &NewRepo) -> Result<String>;
    /// The settings and probe bound of checks run from this process (`create --dry-run`).
    fn check_settings(&self) -> (Settings, Duration);
    /// Change `repo` (as read by the caller; the local store reads it again under its lock).
    async fn update(&self, repo: &BackupRepo, update: &RepoUpdate<'_>) -> Result<()>;
    /// Delete the repository (and the credential Secret it owns). `users` is what
    /// [`RepoStore::usage`] counted; the caller decided that deleting is allowed.
    async fn delete(&self, repo: &BackupRepo, users: u64) -> Result<Deletion>;
    /// Check the repository against its storage now, and return its state after the check.
    async fn check(&self, name: &str) -> Result<BackupRepo>;
    /// [`RepoStore::check`] of every repository.
    async fn check_all(&self) -> Result<Vec<BackupRepo>>;
    /// Write checked documents (Secrets, then providers, then repositories), all or nothing
    /// as far as the store allows. The caller ran [`crate::manifests::check_documents`].
    async fn apply(&self, docs: Vec<Document>) -> Result<Applied>;
    /// Set or remove annotations (`key=value`, `key-`), refusing a second default.
    async fn annotate(&self, name: &str, changes: &[String], overwrite: bool) -> Result<()>;
    /// Create a Secret; refused when one of that name exists.
    async fn create_secret(&self, secret: Secret) -> Result<()>;
    /// The Secrets of `namespace` (every namespace when `None`).
    async fn secrets(&self, namespace: Option<&str>) -> Result<Vec<Secret>>;
    /// Delete a Secret; `false` when there was none.
    async fn delete_secret(&self, namespace: &str, name: &str) -> Result<bool>;
    /// Install what the request asks for (local store: the values file's repository;
    /// Kubernetes: the operator and everything it needs).
    async fn install(&self, request: InstallRequest) -> Result<Applied>;
    /// The rendered tool config of a Ready repository (for the data verbs).
    async fn tool_config(&self, repo: &BackupRepo) -> Result<String>;
    /// Our own write (`backuprepo push`, `rm`) changed what `repo` holds by `objects` and
    /// `bytes` under `rel` (a path in the repository): keep its recorded usage current without
    /// a listing. The local store records it; on Kubernetes `BACKUPS` counts Backup objects
    /// and the controller measures the bytes after each check, so nothing is recorded there.
    async fn account_write(&self, repo: &str, rel: &str, objects: i64, bytes: i64) -> Result<()>;
    /// Whether this process keeps the copies of `backuprepo.io/replicate-to` (`check --all`):
    /// the local store does; on Kubernetes the controller does.
    fn replicates_here(&self) -> bool;
    /// Record a replication run (or refusal) in the repository's `status.replication`.
    async fn set_replication(
        &self,
        repo: &str,
        status: backuprepo_api::ReplicationStatus,
    ) -> Result<()>;
}

/// The Opaque Secret holding a repository's credential values.
pub fn credential_secret(name: &str, namespace: &str, data: &BTreeMap<String, String>) -> Secret {
    let mut s = Secret::default();
    s.metadata.name = Some(name.to_string());
    s.metadata.namespace = Some(namespace.to_string());
    s.type_ = Some("Opaque".into());
    s.data = Some(
        data.iter()
            .map(|(k, v)| (k.clone(), ByteString(v.clone().into_bytes())))
            .collect(),
    );
    s
}

/// `secret` with `values` merged into its data.
pub fn merge_credentials(mut secret: Secret, values: &BTreeMap<String, String>) -> Secret {
    let data = secret.data.get_or_insert_with(BTreeMap::new);
    for (k, v) in values {
        data.insert(k.clone(), ByteString(v.clone().into_bytes()));
    }
    secret
}

/// The non-controller ownerReference that makes a credential Secret go with its repository.
pub fn owned_by_repo(repo: &BackupRepo) -> OwnerReference {
    OwnerReference {
        api_version: backuprepo_api::constants::API_VERSION.into(),
        kind: "BackupRepo".into(),
        name: repo.name().to_string(),
        uid: repo.metadata.uid.clone().unwrap_or_default(),
        ..Default::default()
    }
}

/// Whether `secret` is owned by `repo` (made by `create`, so it goes with the repository).
pub fn owns(repo: &BackupRepo, secret: &Secret) -> bool {
    let uid = repo.metadata.uid.as_deref().unwrap_or_default();
    !uid.is_empty()
        && secret
            .metadata
            .owner_references
            .as_ref()
            .is_some_and(|o| o.iter().any(|o| o.uid == uid))
}

/// Where the repository's credential Secret is, for `update`: (namespace, name).
pub fn credential_to_update(repo: &BackupRepo) -> Result<(String, String)> {
    match repo.credential_key() {
        Ok(Some(key)) => Ok(key),
        Err(why) => anyhow::bail!("spec.credential.namespace {why}"),
        Ok(None) => anyhow::bail!(
            "backup repository {:?} has no credential secret to update",
            repo.name()
        ),
    }
}

/// The error of `update` when the repository's credential Secret is gone.
pub fn credential_missing(repo: &str, namespace: &str, name: &str) -> anyhow::Error {
    anyhow::anyhow!(
        "the credential secret {namespace}/{name} of backup repository {repo:?} is missing"
    )
}

/// The error of `create` when the name is taken (kbcli's words).
pub fn already_exists(name: &str) -> anyhow::Error {
    anyhow::anyhow!("BackupRepo {name:?} is already exists")
}

/// The error of `secret create` when the Secret exists.
pub fn secret_exists(namespace: &str, name: &str) -> anyhow::Error {
    anyhow::anyhow!(
        "secrets {name:?} already exists in namespace {namespace}; delete it first or use `apply`"
    )
}
