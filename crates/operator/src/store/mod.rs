//! Kubernetes behind the control-plane commands ([`RepoStore`], `--store kube`), with kbcli's
//! behaviour on the API server (spec §4): credential Secrets in the install namespace, rolled
//! back when the repository cannot be created; the controller does the checking, so `check`
//! asks it (annotation `backuprepo.io/check-requested`) and waits for its answer.
//! Writes ([`apply`]): server-side apply of manifests and of the install.

mod apply;

pub use apply::{install_options, resource_for};

/// Which cluster `--store kube` talks to: kubectl's `--kubeconfig` and `--context` (the
/// current context of `$KUBECONFIG` or `~/.kube/config` when both are unset).
#[derive(Debug, Clone, Default)]
pub struct Target {
    pub kubeconfig: Option<std::path::PathBuf>,
    pub context: Option<String>,
}

use std::collections::BTreeMap;
use std::time::{Duration, Instant};

use anyhow::{anyhow, bail, Result};
use backuprepo_api::constants::{
    BACKUP_REPO_NAME_LABEL, CHECK_REQUESTED_ANNOTATION, GROUP, IS_DEFAULT_REPO_ANNOTATION, VERSION,
};
use backuprepo_api::{secret_data, BackupRepo, Document, StorageProvider};
use backuprepo_core::store::{
    already_exists, credential_missing, credential_secret, credential_to_update, merge_credentials,
    owned_by_repo, secret_exists, Applied, Deletion, InstallRequest, NewRepo, NotFound, RepoStore,
    RepoUpdate,
};
use backuprepo_core::{defaults, env, manifests, Settings};
use k8s_openapi::api::core::v1::{Secret, SecretReference};
use kube::api::{
    ApiResource, DeleteParams, DynamicObject, GroupVersionKind, ListParams, Patch, PatchParams,
    PostParams,
};
use kube::{Api, Client, ResourceExt};
use serde_json::{json, Value};

/// Field manager of our server-side applies and writes.
const FIELD_MANAGER: &str = "backuprepo";

/// The cluster of a kubeconfig context (or the in-cluster service account) as a store.
#[derive(Clone)]
pub struct KubeStore {
    pub client: Client,
    /// Where `create` puts credential Secrets (kbcli: the KubeBlocks namespace), and the
    /// default namespace of `install`.
    pub namespace: String,
    /// How long `check` and `install` wait for the controller / the API server.
    pub wait: Duration,
    /// How often they look.
    pub poll: Duration,
    /// Upper bound of the storage probe of `create --dry-run` (run from this machine).
    pub probe_timeout: Duration,
}

impl std::fmt::Debug for KubeStore {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("KubeStore")
            .field("namespace", &self.namespace)
            .field("wait", &self.wait)
            .finish_non_exhaustive()
    }
}

/// `kube::Error` with what we were doing, and the server's own words when it answered.
pub(crate) fn api_err(what: impl Into<String>) -> impl FnOnce(kube::Error) -> anyhow::Error {
    let what = what.into();
    move |e| {
        match e {
        kube::Error::Api(s) => anyhow!("cannot {what}: {} ({} {})", s.message, s.code, s.reason),
        kube::Error::SerdeError(e) => anyhow!(
            "cannot {what}: the API server's answer does not fit backuprepo's types ({e}); are the CRDs current? `backuprepo crds | kubectl apply -f -`"
        ),
        other => anyhow!(
            "cannot {what}: {other}; is the API server of the current kubeconfig context reachable?"
        ),
    }
    }
}

fn is_status(e: &kube::Error, code: u16) -> bool {
    matches!(e, kube::Error::Api(s) if s.code == code)
}

impl KubeStore {
    /// A store on `client`; waits and probe bound from the environment
    /// (`BACKUPREPO_WAIT_TIMEOUT`, default 120 s; `BACKUPREPO_PROBE_TIMEOUT`, default 60 s).
    pub fn new(client: Client, namespace: String) -> Result<KubeStore> {
        let get = |k: &str| std::env::var(k).ok();
        Ok(KubeStore {
            client,
            namespace,
            wait: env::seconds(&get, "BACKUPREPO_WAIT_TIMEOUT")
                .map_err(|e| anyhow!(e))?
                .unwrap_or(Duration::from_secs(120)),
            poll: Duration::from_secs(1),
            probe_timeout: env::seconds(&get, "BACKUPREPO_PROBE_TIMEOUT")
                .map_err(|e| anyhow!(e))?
                .unwrap_or(Duration::from_secs(60))
                .max(Duration::from_secs(1)),
        })
    }

    /// Connect with the current kubeconfig context (or the in-cluster service account).
    pub async fn connect(namespace: String) -> Result<KubeStore> {
        Self::connect_to(namespace, &Target::default()).await
    }

    /// As [`KubeStore::connect`], with kubectl's `--kubeconfig` and `--context`.
    pub async fn connect_to(namespace: String, target: &Target) -> Result<KubeStore> {
        let client = match (&target.kubeconfig, &target.context) {
            (None, None) => Client::try_default().await.map_err(|e| {
                anyhow!("--store kube: cannot find a cluster (kubeconfig or in-cluster service account): {e}; check `kubectl config current-context`")
            })?,
            (path, context) => {
                let options = kube::config::KubeConfigOptions {
                    context: context.clone(),
                    ..Default::default()
                };
                let config = match path {
                    Some(p) => {
                        let file = kube::config::Kubeconfig::read_from(p).map_err(|e| {
                            anyhow!("--kubeconfig {}: cannot read it: {e}", p.display())
                        })?;
                        kube::Config::from_custom_kubeconfig(file, &options).await
                    }
                    None => kube::Config::from_kubeconfig(&options).await,
                }
                .map_err(|e| {
                    anyhow!(
                        "--store kube: cannot use the kubeconfig{}: {e}; see `kubectl config get-contexts`",
                        context.as_deref().map(|c| format!(" context {c:?}")).unwrap_or_default()
                    )
                })?;
                Client::try_from(config).map_err(|e| anyhow!("--store kube: {e}"))?
            }
        };
        KubeStore::new(client, namespace)
    }

    fn repos_api(&self) -> Api<BackupRepo> {
        Api::all(self.client.clone())
    }

    fn secrets(&self, namespace: &str) -> Api<Secret> {
        Api::namespaced(self.client.clone(), namespace)
    }

    /// Backups per repository, counted as kbcli does: every Backup labelled with the
    /// repository, and the total size of the Completed ones. `None` when the cluster has no
    /// Backup resource (KubeBlocks' data protection is not installed).
    pub async fn backups(
        &self,
        repo: Option<&str>,
    ) -> Result<Option<BTreeMap<String, (u64, u64)>>> {
        let gvk = GroupVersionKind::gvk(GROUP, VERSION, "Backup");
        let ar = ApiResource::from_gvk_with_plural(&gvk, "backups");
        let api: Api<DynamicObject> = Api::all_with(self.client.clone(), &ar);
        let selector = match repo {
            Some(r) => format!("{BACKUP_REPO_NAME_LABEL}={r}"),
            None => BACKUP_REPO_NAME_LABEL.to_string(),
        };
        let list = match api.list(&ListParams::default().labels(&selector)).await {
            Ok(l) => l,
            Err(e) if is_status(&e, 404) => return Ok(None),
            Err(e) => return Err(api_err("list backups")(e)),
        };
        let mut out: BTreeMap<String, (u64, u64)> = BTreeMap::new();
        for b in &list.items {
            let Some(name) = b.labels().get(BACKUP_REPO_NAME_LABEL) else {
                continue;
            };
            let entry = out.entry(name.clone()).or_default();
            entry.0 += 1;
            let status = &b.data["status"];
            if status["phase"] == "Completed" {
                let size = status["totalSize"].as_str().unwrap_or("0");
                match backuprepo_transfer::size::parse_bytes(size) {
                    Some(n) => entry.1 += n,
                    None => tracing::warn!(
                        backup = %format!("{}/{}", b.namespace().unwrap_or_default(), b.name_any()),
                        "totalSize {size:?} is not a size; not counted"
                    ),
                }
            }
        }
        Ok(Some(out))
    }

    /// `create` and its dry run: the same requests, the dry run asks the server not to store.
    async fn create_repo(&self, new: &NewRepo, dry_run: bool) -> Result<BackupRepo> {
        let mut repo = new.repo.clone();
        let repos = self.repos_api();
        let secrets = self.secrets(&self.namespace);
        if let Some(n) = repo.metadata.name.as_deref() {
            if repos
                .get_opt(n)
                .await
                .map_err(api_err(format!("get backuprepo {n}")))?
                .is_some()
            {
                return Err(already_exists(n));
            }
        }
        if new.make_default {
            let name = repo.metadata.name.clone().unwrap_or_default();
            defaults::check_single_default(&self.repos().await?, &name).map_err(|e| anyhow!(e))?;
        }
        let pp = PostParams {
            dry_run,
            field_manager: Some(FIELD_MANAGER.into()),
        };
        let mut secret_name = None;
        if !new.secret.is_empty() {
            let mut s = credential_secret("", &self.namespace, &new.secret);
            s.metadata.name = None;
            s.metadata.generate_name = Some("kb-backuprepo-".into());
            let created = secrets.create(&pp, &s).await.map_err(api_err(format!(
                "create the credential secret in namespace {}",
                self.namespace
            )))?;
            secret_name = created.metadata.name.clone();
            repo.spec.credential = Some(SecretReference {
                name: secret_name.clone(),
                namespace: Some(self.namespace.clone()),
            });
        }
        if repo.metadata.name.is_none() {
            repo.metadata.generate_name = Some("backuprepo-".into());
        }
        let created = match repos.create(&pp, &repo).await {
            Ok(r) => r,
            Err(e) => {
                // Roll back: no credential Secret is left without its repository.
                if let (Some(n), false) = (&secret_name, dry_run) {
                    if let Err(d) = secrets.delete(n, &DeleteParams::default()).await {
                        tracing::warn!(
                            "cannot remove the credential secret {}/{n}: {d}; delete it with kubectl",
                            self.namespace
                        );
                    }
                }
                return Err(api_err("create the backup repository")(e));
            }
        };
        if let (Some(n), false) = (&secret_name, dry_run) {
            // The secret goes with the repository (garbage collection); best effort, as kbcli.
            let patch = json!({"metadata": {"ownerReferences": [owned_by_repo(&created)]}});
            if let Err(e) = secrets
                .patch(n, &PatchParams::default(), &Patch::Merge(&patch))
                .await
            {
                tracing::warn!(
                    "cannot make the credential secret {}/{n} owned by the repository: {e}",
                    self.namespace
                );
            }
        }
        Ok(created)
    }

    /// Ask the controller to check these repositories now, and wait for its answers.
    async fn request_checks(&self, names: &[String]) -> Result<Vec<BackupRepo>> {
        let api = self.repos_api();
        let stamp = backuprepo_api::k8s_openapi::jiff::Timestamp::now().to_string();
        let patch = json!({"metadata": {"annotations": {CHECK_REQUESTED_ANNOTATION: stamp}}});
        for n in names {
            api.patch(n, &PatchParams::default(), &Patch::Merge(&patch))
                .await
                .map_err(api_err(format!("request a check of backuprepo {n}")))?;
        }
        let deadline = Instant::now() + self.wait;
        let mut answered = BTreeMap::new();
        while answered.len() < names.len() {
            tokio::time::sleep(self.poll).await;
            for n in names {
                if answered.contains_key(n) {
                    continue;
                }
                let r = self.repo(n).await?;
                if !r.annotations().contains_key(CHECK_REQUESTED_ANNOTATION) {
                    answered.insert(n.clone(), r);
                }
            }
            if answered.len() < names.len() && Instant::now() >= deadline {
                let waiting: Vec<&str> = names
                    .iter()
                    .filter(|n| !answered.contains_key(*n))
                    .map(String::as_str)
                    .collect();
                bail!(
                    "the controller did not answer within {}s for: {}; is it running? `kubectl get deployment -A -l app.kubernetes.io/name={}` (BACKUPREPO_WAIT_TIMEOUT sets the wait)",
                    self.wait.as_secs(),
                    waiting.join(", "),
                    backuprepo_deploy::CONTROLLER_NAME,
                );
            }
        }
        Ok(names.iter().filter_map(|n| answered.remove(n)).collect())
    }
}

impl RepoStore for KubeStore {
    const USERS: &'static str = "backup(s)";
    const USERS_COLUMN: &'static str = "BACKUPS";

    async fn provider(&self, name: &str) -> Result<StorageProvider> {
        Api::<StorageProvider>::all(self.client.clone())
            .get_opt(name)
            .await
            .map_err(api_err(format!("get storageprovider {name}")))?
            .ok_or_else(|| NotFound::provider(name))
    }

    async fn providers(&self) -> Result<Vec<StorageProvider>> {
        Ok(Api::<StorageProvider>::all(self.client.clone())
            .list(&ListParams::default())
            .await
            .map_err(api_err("list storageproviders"))?
            .items)
    }

    async fn repo(&self, name: &str) -> Result<BackupRepo> {
        self.repos_api()
            .get_opt(name)
            .await
            .map_err(api_err(format!("get backuprepo {name}")))?
            .ok_or_else(|| NotFound::repo(name))
    }

    async fn repos(&self) -> Result<Vec<BackupRepo>> {
        Ok(self
            .repos_api()
            .list(&ListParams::default())
            .await
            .map_err(api_err("list backuprepos"))?
            .items)
    }

    async fn current(&self, name: &str) -> Result<BackupRepo> {
        self.repo(name).await
    }

    async fn current_all(&self) -> Result<Vec<BackupRepo>> {
        self.repos().await
    }

    async fn settle(&self, _names: &[String]) -> Result<Vec<BackupRepo>> {
        // The controller reconciles on its own; `check` waits for it when asked.
        Ok(Vec::new())
    }

    /// Backups by their repository label: always counted now (a list request).
    async fn usage(
        &self,
        repos: &[BackupRepo],
        _live: bool,
    ) -> Result<BTreeMap<String, (u64, u64)>> {
        let counted = match repos {
            [] => return Ok(BTreeMap::new()),
            [one] => self.backups(Some(one.name())).await?,
            _ => self.backups(None).await?,
        };
        // With a Backup resource, a repository no Backup names holds none.
        Ok(match counted {
            None => BTreeMap::new(),
            Some(mut map) => repos
                .iter()
                .map(|r| {
                    let n = r.name().to_string();
                    let u = map.remove(&n).unwrap_or_default();
                    (n, u)
                })
                .collect(),
        })
    }

    async fn create(&self, new: NewRepo) -> Result<String> {
        Ok(self.create_repo(&new, false).await?.name_any())
    }

    async fn admit(&self, new: &NewRepo) -> Result<String> {
        Ok(self.create_repo(new, true).await?.name_any())
    }

    fn check_settings(&self) -> (Settings, Duration) {
        (Settings::default(), self.probe_timeout)
    }

    async fn update(&self, repo: &BackupRepo, update: &RepoUpdate<'_>) -> Result<()> {
        let name = repo.name();
        if !update.secret.is_empty() {
            let (ns, sname) = credential_to_update(repo)?;
            let api = self.secrets(&ns);
            let old = api
                .get_opt(&sname)
                .await
                .map_err(api_err(format!("get secret {ns}/{sname}")))?
                .ok_or_else(|| credential_missing(name, &ns, &sname))?;
            let new = merge_credentials(old.clone(), &update.secret);
            (update.check)(repo, &secret_data(&new)?)?;
            if new.data != old.data {
                let patch = json!({"data": new.data});
                api.patch(&sname, &PatchParams::default(), &Patch::Merge(&patch))
                    .await
                    .map_err(api_err(format!("update secret {ns}/{sname}")))?;
            }
        }
        if let Some(d) = update.default {
            if d {
                defaults::check_single_default(&self.repos().await?, name)
                    .map_err(|e| anyhow!(e))?;
            }
            if repo.is_default() != d {
                let value = if d { json!("true") } else { Value::Null };
                let patch =
                    json!({"metadata": {"annotations": {IS_DEFAULT_REPO_ANNOTATION: value}}});
                self.repos_api()
                    .patch(name, &PatchParams::default(), &Patch::Merge(&patch))
                    .await
                    .map_err(api_err(format!("update backuprepo {name}")))?;
            }
        }
        Ok(())
    }

    async fn delete(&self, repo: &BackupRepo, users: u64) -> Result<Deletion> {
        let name = repo.name();
        self.repos_api()
            .delete(name, &DeleteParams::default())
            .await
            .map_err(api_err(format!("delete backuprepo {name}")))?;
        // The controller's finalizer keeps the repository while Backups refer to it.
        Ok(if users > 0 {
            Deletion::Pending
        } else {
            Deletion::Deleted
        })
    }

    async fn check(&self, name: &str) -> Result<BackupRepo> {
        self.repo(name).await?;
        let mut answered = self.request_checks(&[name.to_string()]).await?;
        answered.pop().ok_or_else(|| NotFound::repo(name))
    }

    async fn check_all(&self) -> Result<Vec<BackupRepo>> {
        let names: Vec<String> = self
            .repos()
            .await?
            .iter()
            .map(|r| r.name().to_string())
            .collect();
        self.request_checks(&names).await
    }

    async fn apply(&self, docs: Vec<Document>) -> Result<Applied> {
        apply::documents(self, docs).await
    }

    async fn annotate(&self, name: &str, changes: &[String], overwrite: bool) -> Result<()> {
        let mut repo = self.repo(name).await?;
        let changed = manifests::annotate(&mut repo, changes, overwrite)?;
        if repo.is_default() {
            defaults::check_single_default(&self.repos().await?, name).map_err(|e| anyhow!(e))?;
        }
        // Guarded by the resourceVersion read above: a concurrent change fails with 409.
        let patch = json!({"metadata": {
            "annotations": changed,
            "resourceVersion": repo.metadata.resource_version,
        }});
        self.repos_api()
            .patch(name, &PatchParams::default(), &Patch::Merge(&patch))
            .await
            .map_err(api_err(format!("annotate backuprepo {name}")))?;
        Ok(())
    }

    async fn create_secret(&self, secret: Secret) -> Result<()> {
        let ns = secret.metadata.namespace.clone().unwrap_or_default();
        let name = secret.metadata.name.clone().unwrap_or_default();
        let pp = PostParams {
            dry_run: false,
            field_manager: Some(FIELD_MANAGER.into()),
        };
        match self.secrets(&ns).create(&pp, &secret).await {
            Ok(_) => Ok(()),
            Err(e) if is_status(&e, 409) => Err(secret_exists(&ns, &name)),
            Err(e) => Err(api_err(format!("create secret {ns}/{name}"))(e)),
        }
    }

    async fn install(&self, request: InstallRequest) -> Result<Applied> {
        apply::install(self, request).await
    }

    async fn tool_config(&self, _repo: &BackupRepo) -> Result<String> {
        bail!(
            "the data verbs (push, pull, list --repo, stat, rm) read the local store; in a cluster, backup jobs use `datasafed` with the repository's tool-config Secret (or run them on the machine with --store local)"
        )
    }

    async fn secrets(&self, namespace: Option<&str>) -> Result<Vec<Secret>> {
        let api: Api<Secret> = match namespace {
            Some(ns) => self.secrets(ns),
            None => Api::all(self.client.clone()),
        };
        let list = api
            .list(&kube::api::ListParams::default())
            .await
            .map_err(api_err("list secrets".to_string()))?;
        Ok(list.items)
    }

    async fn delete_secret(&self, namespace: &str, name: &str) -> Result<bool> {
        match self
            .secrets(namespace)
            .delete(name, &kube::api::DeleteParams::default())
            .await
        {
            Ok(_) => Ok(true),
            Err(e) if is_status(&e, 404) => Ok(false),
            Err(e) => Err(api_err(format!("delete secret {namespace}/{name}"))(e)),
        }
    }

    async fn account_write(&self, _: &str, _: &str, _: i64, _: i64) -> Result<()> {
        Ok(())
    }

    fn replicates_here(&self) -> bool {
        false
    }

    async fn set_replication(
        &self,
        name: &str,
        status: backuprepo_api::ReplicationStatus,
    ) -> Result<()> {
        let current = self.repo(name).await?;
        let prev = current.status.as_ref().and_then(|s| s.replication.as_ref());
        let patch = crate::resources::replication_patch(prev, &status);
        self.repos_api()
            .patch_status(name, &PatchParams::default(), &Patch::Merge(&patch))
            .await?;
        Ok(())
    }
}
