//! The control-plane commands against a Kubernetes cluster (`--store kube`): the same parsing,
//! checks and output as on the local store, with kbcli's behaviour on the API server
//! (spec §4): credential Secrets in the install namespace, rolled back when the repository
//! cannot be created; the controller does the checking, so `check` asks it (annotation
//! `backuprepo.io/check-requested`) and waits for its answer.

use std::collections::BTreeMap;
use std::future::Future;
use std::time::{Duration, Instant};

use anyhow::{anyhow, bail, Context as _, Result};
use backuprepo_api::constants::{
    BACKUP_REPO_NAME_LABEL, CHECK_REQUESTED_ANNOTATION, GROUP, IS_DEFAULT_REPO_ANNOTATION, VERSION,
};
use backuprepo_api::k8s_openapi::api::core::v1::{Secret, SecretReference};
use backuprepo_api::{BackupRepo, BackupRepoPhase, Document, StorageProvider};
use backuprepo_core::{defaults, Settings};
use kube::api::{
    ApiResource, DeleteParams, DynamicObject, GroupVersionKind, ListParams, Patch, PatchParams,
    PostParams,
};
use kube::{Api, Client, ResourceExt};
use serde_json::{json, Value};

use super::create::{self, CreatePlan};
use super::{confirm_name, manifests, repos};

/// Field manager of our server-side applies and writes.
const FIELD_MANAGER: &str = "backuprepo";

/// A connection to the cluster of the current kubeconfig context.
pub struct Cluster {
    pub client: Client,
    pub rt: tokio::runtime::Runtime,
    /// Where `create` puts credential Secrets (kbcli: the KubeBlocks namespace).
    pub namespace: String,
    /// How long `check` and `install` wait for the controller / the API server.
    pub wait: Duration,
    /// How often they look.
    pub poll: Duration,
    /// Upper bound of the storage probe of `create --dry-run` (run from this machine).
    pub probe_timeout: Duration,
}

/// `kube::Error` with what we were doing, and the server's own words when it answered.
fn api_err(what: impl Into<String>) -> impl FnOnce(kube::Error) -> anyhow::Error {
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

impl Cluster {
    /// Connect with the current kubeconfig context (or the in-cluster service account).
    pub fn connect(namespace: String) -> Result<Cluster> {
        let rt = tokio::runtime::Builder::new_multi_thread()
            .worker_threads(2)
            .enable_all()
            .build()
            .context("cannot start the runtime")?;
        let client = rt.block_on(Client::try_default()).map_err(|e| {
            anyhow!("--store kube: cannot find a cluster (kubeconfig or in-cluster service account): {e}; check `kubectl config current-context`")
        })?;
        let secs = |name: &str, default: u64| -> Result<Duration> {
            Ok(Duration::from_secs(
                super::env_seconds(name)?.unwrap_or(default),
            ))
        };
        Ok(Cluster {
            client,
            rt,
            namespace,
            wait: secs("BACKUPREPO_WAIT_TIMEOUT", 120)?,
            poll: Duration::from_secs(1),
            probe_timeout: secs("BACKUPREPO_PROBE_TIMEOUT", 60)?.max(Duration::from_secs(1)),
        })
    }

    fn block<F: Future>(&self, f: F) -> F::Output {
        self.rt.block_on(f)
    }

    fn repos_api(&self) -> Api<BackupRepo> {
        Api::all(self.client.clone())
    }

    fn secrets(&self, namespace: &str) -> Api<Secret> {
        Api::namespaced(self.client.clone(), namespace)
    }

    async fn repo(&self, name: &str) -> Result<BackupRepo> {
        self.repos_api()
            .get_opt(name)
            .await
            .map_err(api_err(format!("get backuprepo {name}")))?
            .ok_or_else(|| create::repo_not_found(name))
    }

    async fn repos(&self) -> Result<Vec<BackupRepo>> {
        Ok(self
            .repos_api()
            .list(&ListParams::default())
            .await
            .map_err(api_err("list backuprepos"))?
            .items)
    }

    async fn provider(&self, name: &str) -> Result<StorageProvider> {
        Api::<StorageProvider>::all(self.client.clone())
            .get_opt(name)
            .await
            .map_err(api_err(format!("get storageprovider {name}")))?
            .ok_or_else(|| create::provider_not_found(name))
    }

    async fn providers(&self) -> Result<Vec<StorageProvider>> {
        Ok(Api::<StorageProvider>::all(self.client.clone())
            .list(&ListParams::default())
            .await
            .map_err(api_err("list storageproviders"))?
            .items)
    }

    /// Backups per repository, counted as kbcli does: every Backup labelled with the
    /// repository, and the total size of the Completed ones. `None` when the cluster has no
    /// Backup resource (KubeBlocks' data protection is not installed).
    async fn usage(&self, repo: Option<&str>) -> Result<Option<BTreeMap<String, (u64, u64)>>> {
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
                match parse_bytes(size) {
                    Some(n) => entry.1 += n,
                    None => eprintln!(
                        "Warning: backup {}/{}: totalSize {size:?} is not a size; not counted",
                        b.namespace().unwrap_or_default(),
                        b.name_any()
                    ),
                }
            }
        }
        Ok(Some(out))
    }

    async fn usage_of(&self, repo: &str) -> Result<Option<(u64, u64)>> {
        Ok(self
            .usage(Some(repo))
            .await?
            .map(|m| m.get(repo).copied().unwrap_or_default()))
    }
}

/// A size as Backups record it: bytes, or a number with an SI or IEC unit (`1.5 GB`, `10Mi`).
pub fn parse_bytes(s: &str) -> Option<u64> {
    let s = s.trim();
    let split = s
        .find(|c: char| !(c.is_ascii_digit() || c == '.'))
        .unwrap_or(s.len());
    let (num, unit) = s.split_at(split);
    let n: f64 = num.parse().ok()?;
    let unit = unit.trim().to_ascii_lowercase();
    let unit = unit.trim_end_matches('b');
    let mult: f64 = match unit {
        "" => 1.0,
        "k" => 1e3,
        "m" => 1e6,
        "g" => 1e9,
        "t" => 1e12,
        "p" => 1e15,
        "ki" => 1024.0,
        "mi" => 1024f64.powi(2),
        "gi" => 1024f64.powi(3),
        "ti" => 1024f64.powi(4),
        "pi" => 1024f64.powi(5),
        _ => return None,
    };
    Some((n * mult).round() as u64)
}

pub fn create(cl: &Cluster, args: Vec<String>) -> Result<()> {
    let Some(plan) = create::plan_create(args, |n| cl.block(cl.provider(n)))? else {
        return Ok(());
    };
    let CreatePlan {
        mut repo,
        secret,
        make_default,
        dry_run,
    } = plan;
    let repos = cl.repos_api();
    let secrets = cl.secrets(&cl.namespace);
    cl.block(async {
        if let Some(n) = repo.metadata.name.as_deref() {
            if repos
                .get_opt(n)
                .await
                .map_err(api_err(format!("get backuprepo {n}")))?
                .is_some()
            {
                bail!("BackupRepo {n:?} is already exists");
            }
        }
        if make_default {
            let name = repo.metadata.name.clone().unwrap_or_default();
            defaults::check_single_default(&cl.repos().await?, &name).map_err(|e| anyhow!(e))?;
        }
        let pp = PostParams {
            dry_run,
            field_manager: Some(FIELD_MANAGER.into()),
        };
        let mut secret_name = None;
        if !secret.is_empty() {
            let mut s = create::credential_secret("", &cl.namespace, &secret);
            s.metadata.name = None;
            s.metadata.generate_name = Some("kb-backuprepo-".into());
            let created = secrets
                .create(&pp, &s)
                .await
                .map_err(api_err(format!(
                    "create the credential secret in namespace {}",
                    cl.namespace
                )))?;
            secret_name = created.metadata.name.clone();
            repo.spec.credential = Some(SecretReference {
                name: secret_name.clone(),
                namespace: Some(cl.namespace.clone()),
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
                        eprintln!(
                            "Warning: cannot remove the credential secret {}/{n}: {d}; delete it with kubectl",
                            cl.namespace
                        );
                    }
                }
                return Err(api_err("create the backup repository")(e));
            }
        };
        let name = created.name_any();
        if dry_run {
            println!("backup repo {name:?} passes the API server's checks (server dry run).");
            let provider = cl.provider(&repo.spec.storage_provider_ref).await?;
            repo.metadata.name = Some(name);
            let checked = backuprepo_local::check_unstored(
                &Settings::default(),
                cl.probe_timeout,
                repo,
                Some(&provider),
                secret,
            )
            .await;
            return repos::dry_run_verdict(&checked);
        }
        if let Some(n) = &secret_name {
            // The secret goes with the repository (garbage collection); best effort, as kbcli.
            let patch = json!({"metadata": {"ownerReferences": [create::owned_by_repo(&created)]}});
            if let Err(e) = secrets
                .patch(n, &PatchParams::default(), &Patch::Merge(&patch))
                .await
            {
                eprintln!("Warning: cannot make the credential secret {}/{n} owned by the repository: {e}", cl.namespace);
            }
        }
        println!("Successfully create backup repo {name:?}.");
        Ok(())
    })
}

pub fn update(cl: &Cluster, args: Vec<String>) -> Result<()> {
    let Some(name) = create::update_target(&args)? else {
        return Ok(());
    };
    let repo = cl.block(cl.repo(&name))?;
    let provider = cl.block(cl.provider(&repo.spec.storage_provider_ref))?;
    let Some(plan) = create::plan_update(provider, args)? else {
        return Ok(());
    };
    cl.block(async {
        if !plan.secret.is_empty() {
            let (ns, sname) = plan.secret_ref(&repo)?;
            let api = cl.secrets(&ns);
            let old = api
                .get_opt(&sname)
                .await
                .map_err(api_err(format!("get secret {ns}/{sname}")))?
                .ok_or_else(|| {
                    anyhow!("the credential secret {ns}/{sname} of backup repository {name:?} is missing")
                })?;
            let new = plan.merge(&repo, old.clone())?;
            if new.data != old.data {
                let patch = json!({"data": new.data});
                api.patch(&sname, &PatchParams::default(), &Patch::Merge(&patch))
                    .await
                    .map_err(api_err(format!("update secret {ns}/{sname}")))?;
            }
        }
        if let Some(d) = plan.default {
            if d {
                defaults::check_single_default(&cl.repos().await?, &name)
                    .map_err(|e| anyhow!(e))?;
            }
            if repo.is_default() != d {
                let value = if d { json!("true") } else { Value::Null };
                let patch = json!({"metadata": {"annotations": {IS_DEFAULT_REPO_ANNOTATION: value}}});
                cl.repos_api()
                    .patch(&name, &PatchParams::default(), &Patch::Merge(&patch))
                    .await
                    .map_err(api_err(format!("update backuprepo {name}")))?;
            }
        }
        println!("Updated.");
        Ok(())
    })
}

pub fn list(cl: &Cluster, output: &str) -> Result<()> {
    let (repos, usage) = cl.block(async {
        let repos = cl.repos().await?;
        let usage = if matches!(output, "table" | "wide") && !repos.is_empty() {
            cl.usage(None).await?
        } else {
            None
        };
        anyhow::Ok((repos, usage))
    })?;
    repos::print_list(repos, output, |r| {
        usage
            .as_ref()
            .map(|u| u.get(r.name()).copied().unwrap_or_default())
    })
}

pub fn describe(cl: &Cluster, names: &[String]) -> Result<()> {
    if names.is_empty() {
        bail!("must specify a backuprepo name");
    }
    for name in names {
        let (r, usage) = cl.block(async {
            let r = cl.repo(name).await?;
            anyhow::Ok((r, cl.usage_of(name).await?))
        })?;
        print!("{}", repos::describe_text(&r, usage));
        if names.len() > 1 {
            println!();
        }
    }
    Ok(())
}

pub fn delete(cl: &Cluster, name: &str, force: bool, yes: bool) -> Result<()> {
    let (_, usage) = cl.block(async {
        let r = cl.repo(name).await?;
        anyhow::Ok((r, cl.usage_of(name).await?))
    })?;
    let backups = usage.map(|(n, _)| n).unwrap_or(0);
    if backups > 0 && !force {
        return Err(repos::still_in_use(backups, "backup(s)"));
    }
    confirm_name(name, yes)?;
    cl.block(cl.repos_api().delete(name, &DeleteParams::default()))
        .map_err(api_err(format!("delete backuprepo {name}")))?;
    if backups > 0 {
        println!("BackupRepo {name} is being deleted: the controller keeps it (phase Deleting) until its {backups} backup(s) are deleted");
    } else {
        println!("BackupRepo {name} deleted");
    }
    Ok(())
}

pub fn list_providers(cl: &Cluster, output: &str) -> Result<()> {
    repos::print_providers(cl.block(cl.providers())?, output)
}

/// Ask the controller to check these repositories now, and wait for its answers.
fn request_checks(cl: &Cluster, names: &[String]) -> Result<Vec<BackupRepo>> {
    cl.block(async {
        let api = cl.repos_api();
        let stamp = backuprepo_local::now().0.to_string();
        let patch = json!({"metadata": {"annotations": {CHECK_REQUESTED_ANNOTATION: stamp}}});
        for n in names {
            api.patch(n, &PatchParams::default(), &Patch::Merge(&patch))
                .await
                .map_err(api_err(format!("request a check of backuprepo {n}")))?;
        }
        let deadline = Instant::now() + cl.wait;
        let mut answered = BTreeMap::new();
        while answered.len() < names.len() {
            tokio::time::sleep(cl.poll).await;
            for n in names {
                if answered.contains_key(n) {
                    continue;
                }
                let r = cl.repo(n).await?;
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
                    cl.wait.as_secs(),
                    waiting.join(", "),
                    backuprepo_deploy::CONTROLLER_NAME,
                );
            }
        }
        Ok(names.iter().filter_map(|n| answered.remove(n)).collect())
    })
}

pub fn check(cl: &Cluster, name: &str) -> Result<()> {
    cl.block(cl.repo(name))?;
    for r in request_checks(cl, &[name.to_string()])? {
        repos::print_check(&r);
        if r.phase() != Some(BackupRepoPhase::Ready) {
            bail!("backup repository {name:?} did not pass its check");
        }
    }
    Ok(())
}

pub fn check_all(cl: &Cluster) -> Result<()> {
    let names: Vec<String> = cl
        .block(cl.repos())?
        .iter()
        .map(|r| r.name().to_string())
        .collect();
    repos::report_checks(&request_checks(cl, &names)?)
}

pub fn watch(cl: &Cluster, secs: u64) -> Result<()> {
    repos::watch_with(&cl.rt, secs, || cl.block(cl.repos()))
}

/// The API resource of a kind we write.
fn resource_for(api_version: &str, kind: &str) -> Result<(ApiResource, bool)> {
    let (plural, namespaced) = match kind {
        "Namespace" => ("namespaces", false),
        "CustomResourceDefinition" => ("customresourcedefinitions", false),
        "StorageProvider" => ("storageproviders", false),
        "BackupRepo" => ("backuprepos", false),
        "ClusterRole" => ("clusterroles", false),
        "ClusterRoleBinding" => ("clusterrolebindings", false),
        "ValidatingAdmissionPolicy" => ("validatingadmissionpolicies", false),
        "ValidatingAdmissionPolicyBinding" => ("validatingadmissionpolicybindings", false),
        "ServiceAccount" => ("serviceaccounts", true),
        "Role" => ("roles", true),
        "RoleBinding" => ("rolebindings", true),
        "Deployment" => ("deployments", true),
        "Service" => ("services", true),
        "Secret" => ("secrets", true),
        "ConfigMap" => ("configmaps", true),
        other => bail!("cannot apply a {other}: not a kind backuprepo installs"),
    };
    let (group, version) = api_version.split_once('/').unwrap_or(("", api_version));
    let gvk = GroupVersionKind::gvk(group, version, kind);
    Ok((ApiResource::from_gvk_with_plural(&gvk, plural), namespaced))
}

/// One object to server-side apply: what the user declares, without server-owned fields.
struct Applied {
    value: Value,
    api: Api<DynamicObject>,
    label: String,
    name: String,
}

fn applied(cl: &Cluster, mut value: Value) -> Result<Applied> {
    let api_version = value["apiVersion"].as_str().unwrap_or_default().to_string();
    let kind = value["kind"].as_str().unwrap_or_default().to_string();
    let (ar, namespaced) = resource_for(&api_version, &kind)?;
    if let Some(obj) = value.as_object_mut() {
        obj.remove("status");
    }
    if let Some(meta) = value["metadata"].as_object_mut() {
        for k in [
            "resourceVersion",
            "uid",
            "creationTimestamp",
            "managedFields",
            "generation",
        ] {
            meta.remove(k);
        }
    }
    let name = value["metadata"]["name"]
        .as_str()
        .unwrap_or_default()
        .to_string();
    if name.is_empty() {
        bail!("a {kind} has no metadata.name");
    }
    let api = if namespaced {
        let ns = match value["metadata"]["namespace"].as_str() {
            Some(ns) => ns.to_string(),
            None => {
                let ns = cl.client.default_namespace().to_string();
                value["metadata"]["namespace"] = json!(ns);
                ns
            }
        };
        Api::namespaced_with(cl.client.clone(), &ns, &ar)
    } else {
        Api::all_with(cl.client.clone(), &ar)
    };
    let label = if ar.group.is_empty() {
        format!("{}/{name}", kind.to_ascii_lowercase())
    } else {
        format!("{}.{}/{name}", kind.to_ascii_lowercase(), ar.group)
    };
    Ok(Applied {
        value,
        api,
        label,
        name,
    })
}

/// Server-side apply every object, and with `dry_run_first`, all of them as a dry run before
/// (a refusal of any leaves the cluster as it was). Prints kubectl's
/// created/configured/unchanged lines.
async fn apply_all(objects: &[Applied], dry_run_first: bool) -> Result<()> {
    let mut before = Vec::new();
    for o in objects {
        let old = o
            .api
            .get_opt(&o.name)
            .await
            .map_err(api_err(format!("get {}", o.label)))?;
        before.push(old.and_then(|o| o.metadata.resource_version));
    }
    let dry = PatchParams::apply(FIELD_MANAGER).force().dry_run();
    for o in objects.iter().filter(|_| dry_run_first) {
        o.api
            .patch(&o.name, &dry, &Patch::Apply(&o.value))
            .await
            .map_err(api_err(format!(
                "apply {} (dry run; nothing was changed)",
                o.label
            )))?;
    }
    let params = PatchParams::apply(FIELD_MANAGER).force();
    for (o, old) in objects.iter().zip(before) {
        let new = o
            .api
            .patch(&o.name, &params, &Patch::Apply(&o.value))
            .await
            .map_err(api_err(format!("apply {}", o.label)))?;
        let same = old.is_some() && old == new.metadata.resource_version;
        println!("{} {}", o.label, manifests::verb(old.is_some(), same));
    }
    Ok(())
}

/// `apply -f`: the local checks, the checks against the cluster's repositories, then a
/// server-side apply of Secrets, providers and repositories in that order.
pub fn apply(cl: &Cluster, docs: Vec<Document>) -> Result<()> {
    if docs.is_empty() {
        bail!("no objects passed to apply");
    }
    manifests::check_documents(&docs)?;
    let existing = cl.block(cl.repos())?;
    manifests::check_against(&existing, &docs)?;
    let mut objects = Vec::new();
    for rank in 0..3 {
        for d in &docs {
            let v = match (rank, d) {
                (0, Document::Secret(s)) => serde_json::to_value(s)?,
                (1, Document::StorageProvider(p)) => serde_json::to_value(p)?,
                (2, Document::BackupRepo(r)) => serde_json::to_value(r)?,
                _ => continue,
            };
            objects.push(applied(cl, v)?);
        }
    }
    cl.block(apply_all(&objects, true))
}

pub fn get(cl: &Cluster, kind: &str, name: Option<&str>, output: &str) -> Result<()> {
    match manifests::kind_of(kind)? {
        "backuprepo" => {
            let repos = match name {
                Some(n) => vec![cl.block(cl.repo(n)).map_err(|_| {
                    anyhow!("backuprepos.dataprotection.kubeblocks.io {n:?} not found")
                })?],
                None => cl.block(cl.repos())?,
            };
            manifests::print_get_repos(&repos, output, name.is_some())
        }
        _ => {
            let providers = match name {
                Some(n) => vec![cl.block(cl.provider(n)).map_err(|_| {
                    anyhow!("storageproviders.dataprotection.kubeblocks.io {n:?} not found")
                })?],
                None => cl.block(cl.providers())?,
            };
            manifests::print_get_providers(&providers, output, name.is_some())
        }
    }
}

pub fn annotate(
    cl: &Cluster,
    kind: &str,
    name: &str,
    changes: &[String],
    overwrite: bool,
) -> Result<()> {
    if manifests::kind_of(kind)? != "backuprepo" {
        bail!("annotate supports backuprepo objects only");
    }
    cl.block(async {
        let mut repo = cl.repo(name).await?;
        let changed = manifests::annotate_in_place(&mut repo, changes, overwrite)?;
        if repo.is_default() {
            defaults::check_single_default(&cl.repos().await?, name).map_err(|e| anyhow!(e))?;
        }
        // Guarded by the resourceVersion read above: a concurrent change fails with 409.
        let patch = json!({"metadata": {
            "annotations": changed,
            "resourceVersion": repo.metadata.resource_version,
        }});
        cl.repos_api()
            .patch(name, &PatchParams::default(), &Patch::Merge(&patch))
            .await
            .map_err(api_err(format!("annotate backuprepo {name}")))?;
        println!("backuprepo.dataprotection.kubeblocks.io/{name} annotated");
        Ok(())
    })
}

pub fn create_secret(cl: &Cluster, name: &str, namespace: &str, literals: &[String]) -> Result<()> {
    let s = manifests::literal_secret(name, namespace, literals)?;
    let pp = PostParams {
        dry_run: false,
        field_manager: Some(FIELD_MANAGER.into()),
    };
    match cl.block(cl.secrets(namespace).create(&pp, &s)) {
        Ok(_) => {
            println!("secret/{name} created");
            Ok(())
        }
        Err(e) if is_status(&e, 409) => bail!(
            "secrets {name:?} already exists in namespace {namespace}; delete it first or use `apply`"
        ),
        Err(e) => Err(api_err(format!("create secret {namespace}/{name}"))(e)),
    }
}

/// `install` on a cluster: the CRDs, then (once they are Established) everything else of
/// `install --print`, by server-side apply.
pub fn install(cl: &Cluster, opts: &backuprepo_deploy::InstallOptions) -> Result<()> {
    let values = backuprepo_deploy::install_manifests(opts)?;
    let (crds, rest): (Vec<Value>, Vec<Value>) = values
        .into_iter()
        .partition(|v| v["kind"] == "CustomResourceDefinition");
    let crds: Vec<Applied> = crds
        .into_iter()
        .map(|v| applied(cl, v))
        .collect::<Result<_>>()?;
    let rest: Vec<Applied> = rest
        .into_iter()
        .map(|v| applied(cl, v))
        .collect::<Result<_>>()?;
    cl.block(async {
        // The namespace is created by this apply: a dry run of what goes in it would fail.
        apply_all(&crds, false).await?;
        let deadline = Instant::now() + cl.wait;
        for crd in &crds {
            loop {
                let obj = crd
                    .api
                    .get(&crd.name)
                    .await
                    .map_err(api_err(format!("get {}", crd.label)))?;
                let established = obj.data["status"]["conditions"]
                    .as_array()
                    .is_some_and(|cs| {
                        cs.iter()
                            .any(|c| c["type"] == "Established" && c["status"] == "True")
                    });
                if established {
                    break;
                }
                if Instant::now() >= deadline {
                    bail!(
                        "{} is not Established after {}s; see `kubectl describe crd {}`",
                        crd.label,
                        cl.wait.as_secs(),
                        crd.name
                    );
                }
                tokio::time::sleep(cl.poll).await;
            }
        }
        apply_all(&rest, false).await
    })
}

#[cfg(test)]
mod tests;
