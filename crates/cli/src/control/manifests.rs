//! The seed's kubectl flows, over the store: `apply -f`, `get`, `annotate`, `secret create`
//! (for `kubectl create secret generic`), and `install` (local store: the chart's
//! `backupRepo:` block; Kubernetes: the operator).
//!
//! `apply` checks every document (schema, names, templates; then, in the store, the immutable
//! provider reference and a single default) before anything is written, so a bad manifest
//! leaves the store as it was.

use std::io::Read;

use anyhow::{anyhow, bail, Context as _, Result};
use backuprepo_api::k8s_openapi::api::core::v1::Secret;
use backuprepo_api::{parse_documents, BackupRepo, BackupRepoPhase, Document, StorageProvider};
use backuprepo_core::manifests::check_documents;
use backuprepo_core::store::{Applied, InstallRequest, NotFound, RepoStore};
use backuprepo_local::now;

use super::{phase_str, print_objects, repos, table};

pub fn read_input(file: &str) -> Result<String> {
    if file == "-" {
        let mut s = String::new();
        std::io::stdin()
            .read_to_string(&mut s)
            .context("cannot read the manifest from stdin")?;
        return Ok(s);
    }
    std::fs::read_to_string(file).with_context(|| format!("cannot read {file}"))
}

/// Parse a multi-document manifest, printing unknown-field warnings.
pub fn read_documents(file: &str) -> Result<Vec<Document>> {
    let text = read_input(file)?;
    let parsed = parse_documents(&text).map_err(|e| anyhow!("{e}"))?;
    if parsed.is_empty() {
        bail!("no objects passed to apply");
    }
    for p in &parsed {
        for w in &p.warnings {
            eprintln!(
                "Warning: document {} ({} {}): {w}",
                p.index,
                p.doc.kind(),
                p.doc.name()
            );
        }
    }
    Ok(parsed.into_iter().map(|p| p.doc).collect())
}

/// `apply -f FILE`: check every document, write them all (Secrets, providers, repositories),
/// then report the repositories the store reconciled in-process that are not Ready.
pub async fn apply<S: RepoStore>(store: &S, file: &str) -> Result<()> {
    apply_documents(store, read_documents(file)?).await
}

/// [`apply`] of parsed documents.
pub async fn apply_documents<S: RepoStore>(store: &S, docs: Vec<Document>) -> Result<()> {
    check_documents(&docs)?;
    warn_unknown_config(store, &docs).await;
    let repos: Vec<BackupRepo> = docs
        .iter()
        .filter_map(|d| match d {
            Document::BackupRepo(r) => Some(r.clone()),
            _ => None,
        })
        .collect();
    if !repos.is_empty() {
        super::warn_overlaps(&repos, &store.repos().await?);
    }
    let applied = store.apply(docs).await?;
    report_applied(store, applied).await
}

/// Warn, as for unknown fields, about keys of a BackupRepo's `spec.config` that its provider
/// (applied in the same file, or in the store) does not declare: templates never read them, so
/// a typo would otherwise go unnoticed until a check fails.
async fn warn_unknown_config<S: RepoStore>(store: &S, docs: &[Document]) {
    for doc in docs {
        let Document::BackupRepo(repo) = doc else {
            continue;
        };
        let wanted = &repo.spec.storage_provider_ref;
        let in_file = docs.iter().find_map(|d| match d {
            Document::StorageProvider(p) if p.name() == wanted => Some(p.clone()),
            _ => None,
        });
        let provider = match in_file {
            Some(p) => p,
            None => match store.provider(wanted).await {
                Ok(p) => p,
                Err(_) => continue, // the check names a missing provider
            },
        };
        let Some(schema) = provider.spec.open_api_v3_schema() else {
            continue;
        };
        for (key, near) in backuprepo_catalog::params::unknown_keys(schema, repo.spec.config.keys())
        {
            let hint = match near {
                Some(n) => format!("did you mean {n:?}?"),
                None => {
                    let declared: Vec<&str> = schema
                        .get("properties")
                        .and_then(|p| p.as_object())
                        .map(|p| p.keys().map(String::as_str).collect())
                        .unwrap_or_default();
                    format!("its parameters are: {}", declared.join(", "))
                }
            };
            eprintln!(
                "Warning: BackupRepo {}: spec.config.{key} is not a parameter of storage provider {wanted:?}, and is ignored; {hint}",
                repo.name()
            );
        }
    }
}

/// Print kubectl's lines, then settle what changed and warn about what is not Ready.
async fn report_applied<S: RepoStore>(store: &S, applied: Applied) -> Result<()> {
    for l in &applied.lines {
        println!("{l}");
    }
    for r in store.settle(&applied.repos).await? {
        if r.phase() != Some(BackupRepoPhase::Ready) {
            eprintln!(
                "Warning: backuprepo {} is {}: {}",
                r.name(),
                phase_str(&r),
                repos::failure_message(&r)
            );
        }
    }
    Ok(())
}

/// kubectl's message for a missing object; other errors as they are.
fn kubectl_not_found(e: anyhow::Error) -> anyhow::Error {
    match e.downcast_ref::<NotFound>() {
        Some(nf) => anyhow!(
            "{}s.dataprotection.kubeblocks.io {:?} not found",
            nf.kind,
            nf.name
        ),
        None => e,
    }
}

pub fn kind_of(kind: &str) -> Result<&'static str> {
    match kind.to_ascii_lowercase().as_str() {
        "backuprepo"
        | "backuprepos"
        | "backuprepo.dataprotection.kubeblocks.io"
        | "backuprepos.dataprotection.kubeblocks.io" => Ok("backuprepo"),
        "storageprovider"
        | "storageproviders"
        | "storageprovider.dataprotection.kubeblocks.io"
        | "storageproviders.dataprotection.kubeblocks.io" => Ok("storageprovider"),
        other => bail!(
            "the server doesn't have a resource type {other:?}; use backuprepo or storageprovider"
        ),
    }
}

pub(crate) fn age(
    t: Option<&backuprepo_api::k8s_openapi::apimachinery::pkg::apis::meta::v1::Time>,
) -> String {
    let Some(t) = t else {
        return "<unknown>".into();
    };
    let secs = (now().0.as_second() - t.0.as_second()).max(0);
    match secs {
        s if s < 120 => format!("{s}s"),
        s if s < 7200 => format!("{}m", s / 60),
        s if s < 172_800 => format!("{}h", s / 3600),
        s => format!("{}d", s / 86400),
    }
}

/// `get backuprepo|storageprovider [NAME] [-o FORMAT]` (kubectl get).
pub async fn get<S: RepoStore>(
    store: &S,
    kind: &str,
    name: Option<&str>,
    output: &str,
) -> Result<()> {
    match kind_of(kind)? {
        "backuprepo" => {
            let repos: Vec<BackupRepo> = match name {
                Some(n) => vec![store.current(n).await.map_err(kubectl_not_found)?],
                None => store.current_all().await?,
            };
            print_get_repos(&repos, output, name.is_some())
        }
        _ => {
            let providers: Vec<StorageProvider> = match name {
                Some(n) => vec![store.provider(n).await.map_err(kubectl_not_found)?],
                None => store.providers().await?,
            };
            print_get_providers(&providers, output, name.is_some())
        }
    }
}

/// `kubectl get backuprepo` output (the CRD's printer columns).
fn print_get_repos(repos: &[BackupRepo], output: &str, single: bool) -> Result<()> {
    if output != "table" && output != "wide" {
        return print_objects(repos, output, single);
    }
    if repos.is_empty() {
        eprintln!("No resources found");
        return Ok(());
    }
    let rows: Vec<Vec<String>> = repos
        .iter()
        .map(|r| {
            vec![
                r.name().to_string(),
                phase_str(r).to_string(),
                r.spec.storage_provider_ref.clone(),
                r.spec
                    .access_method
                    .map(|m| m.as_str().to_string())
                    .unwrap_or_default(),
                r.status
                    .as_ref()
                    .and_then(|s| s.is_default)
                    .map(|d| d.to_string())
                    .unwrap_or_default(),
                age(r.metadata.creation_timestamp.as_ref()),
            ]
        })
        .collect();
    const COLUMNS: &[&str] = &[
        "NAME",
        "STATUS",
        "STORAGEPROVIDER",
        "ACCESSMETHOD",
        "DEFAULT",
        "AGE",
    ];
    print!("{}", table(COLUMNS, &rows));
    Ok(())
}

/// `kubectl get storageprovider` output.
fn print_get_providers(providers: &[StorageProvider], output: &str, single: bool) -> Result<()> {
    if output != "table" && output != "wide" {
        return print_objects(providers, output, single);
    }
    let rows: Vec<Vec<String>> = providers
        .iter()
        .map(|p| {
            vec![
                p.name().to_string(),
                super::provider_phase(p),
                p.spec.csi_driver_name.clone().unwrap_or_default(),
                p.metadata
                    .creation_timestamp
                    .as_ref()
                    .map(|_| age(p.metadata.creation_timestamp.as_ref()))
                    .unwrap_or_else(|| "built-in".into()),
            ]
        })
        .collect();
    print!("{}", table(&["NAME", "STATUS", "CSIDRIVER", "AGE"], &rows));
    Ok(())
}

/// `annotate backuprepo NAME key=value ... [key-] --overwrite`.
pub async fn annotate<S: RepoStore>(
    store: &S,
    kind: &str,
    name: &str,
    changes: &[String],
    overwrite: bool,
) -> Result<()> {
    if kind_of(kind)? != "backuprepo" {
        bail!("annotate supports backuprepo objects only");
    }
    store
        .annotate(name, changes, overwrite)
        .await
        .map_err(kubectl_not_found)?;
    println!("backuprepo.dataprotection.kubeblocks.io/{name} annotated");
    store.settle(&[name.to_string()]).await?;
    Ok(())
}

/// The Secret of `secret create` (kubectl create secret generic).
fn literal_secret(name: &str, namespace: &str, literals: &[String]) -> Result<Secret> {
    let data = super::literal_pairs(literals)?;
    if data.is_empty() {
        bail!("no data: pass --from-literal KEY=VALUE");
    }
    let mut s = Secret::default();
    s.metadata.name = Some(name.into());
    s.metadata.namespace = Some(namespace.into());
    s.type_ = Some("Opaque".into());
    s.string_data = Some(data);
    Ok(s)
}

/// `secret create NAME -n NS --from-literal k=v ...` (kubectl create secret generic).
pub async fn create_secret<S: RepoStore>(
    store: &S,
    name: &str,
    namespace: &str,
    literals: &[String],
) -> Result<()> {
    store
        .create_secret(literal_secret(name, namespace, literals)?)
        .await?;
    println!("secret/{name} created");
    Ok(())
}

/// `install [-f values.yaml] [--namespace NS] [--image IMAGE]` on the store.
pub async fn install<S: RepoStore>(
    store: &S,
    file: Option<&str>,
    request: InstallRequest,
) -> Result<()> {
    let applied = store.install(request).await.map_err(|e| match file {
        Some(f) if e.downcast_ref::<backuprepo_deploy::DeployError>().is_some() => {
            anyhow!("{f}: {e}")
        }
        _ => e,
    })?;
    report_applied(store, applied).await
}
