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

use super::kubectl::Kind;
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

/// The files `-f` names: a file, `-`, or a directory's `.yaml`, `.yml` and `.json` files in
/// name order (not recursive, as kubectl without `-R`).
fn manifest_files(given: &str) -> Result<Vec<String>> {
    let path = std::path::Path::new(given);
    if given == "-" || !path.is_dir() {
        return Ok(vec![given.to_string()]);
    }
    let mut files: Vec<String> = std::fs::read_dir(path)
        .with_context(|| format!("cannot read the directory {given}"))?
        .filter_map(|e| e.ok())
        .map(|e| e.path())
        .filter(|p| {
            p.is_file()
                && p.extension()
                    .is_some_and(|x| x == "yaml" || x == "yml" || x == "json")
        })
        .map(|p| p.display().to_string())
        .collect();
    files.sort();
    if files.is_empty() {
        bail!("{given}: no .yaml, .yml or .json files in the directory");
    }
    Ok(files)
}

/// Parse the multi-document manifests of every `-f`, printing unknown-field warnings (with
/// the file they are in when there are several).
pub fn read_documents(given: &[String]) -> Result<Vec<Document>> {
    let files: Vec<String> = given
        .iter()
        .map(|g| manifest_files(g))
        .collect::<Result<Vec<_>>>()?
        .concat();
    let mut docs = Vec::new();
    for file in &files {
        let text = read_input(file)?;
        let parsed = parse_documents(&text).map_err(|e| match files.len() {
            1 => anyhow!("{e}"),
            _ => anyhow!("{file}: {e}"),
        })?;
        for p in &parsed {
            for w in &p.warnings {
                let at = if files.len() > 1 {
                    format!("{file}: ")
                } else {
                    String::new()
                };
                eprintln!(
                    "Warning: {at}document {} ({} {}): {w}",
                    p.index,
                    p.doc.kind(),
                    p.doc.name()
                );
            }
        }
        docs.extend(parsed.into_iter().map(|p| p.doc));
    }
    if docs.is_empty() {
        bail!("no objects passed to apply");
    }
    Ok(docs)
}

/// `apply -f FILE|DIR|-...`: check every document of every file, write them all (Secrets,
/// providers, repositories), then report the repositories the store reconciled in-process
/// that are not Ready.
pub async fn apply<S: RepoStore>(store: &S, files: &[String]) -> Result<()> {
    apply_documents(store, read_documents(files)?).await
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

/// Each of `names` found by `find`; a missing one is kubectl's "not found" unless
/// `ignore_not_found` (then it is left out).
async fn each<T, F, Fut>(names: &[String], ignore_not_found: bool, find: F) -> Result<Vec<T>>
where
    F: Fn(String) -> Fut,
    Fut: std::future::Future<Output = Result<T>>,
{
    let mut out = Vec::new();
    for n in names {
        match find(n.clone()).await {
            Ok(x) => out.push(x),
            Err(e) if ignore_not_found && e.downcast_ref::<NotFound>().is_some() => {}
            Err(e) => return Err(kubectl_not_found(e)),
        }
    }
    Ok(out)
}

/// `get KIND [NAME...] [-o FORMAT]` (kubectl get). `namespace`: of Secrets (every namespace
/// when `None`).
pub async fn get<S: RepoStore>(
    store: &S,
    kind: Kind,
    names: &[String],
    output: &str,
    ignore_not_found: bool,
    namespace: Option<&str>,
) -> Result<()> {
    let single = names.len() == 1;
    // Only names that do not exist, and --ignore-not-found: kubectl prints nothing.
    let quiet = |n: usize| n == 0 && !names.is_empty();
    match kind {
        Kind::Repo => {
            let repos = match names {
                [] => store.current_all().await?,
                _ => {
                    each(names, ignore_not_found, |n| async move {
                        store.current(&n).await
                    })
                    .await?
                }
            };
            if quiet(repos.len()) {
                return Ok(());
            }
            print_get_repos(&repos, output, single)
        }
        Kind::Provider => {
            let providers = match names {
                [] => store.providers().await?,
                _ => {
                    each(names, ignore_not_found, |n| async move {
                        store.provider(&n).await
                    })
                    .await?
                }
            };
            if quiet(providers.len()) {
                return Ok(());
            }
            print_get_providers(&providers, output, single)
        }
        Kind::Secret => {
            super::kubectl::get_secrets(store, names, namespace, output, ignore_not_found).await
        }
    }
}

/// `kubectl get backuprepo` output (the CRD's printer columns).
fn print_get_repos(repos: &[BackupRepo], output: &str, single: bool) -> Result<()> {
    if print_objects(repos, output, super::REPO_RESOURCE, single)? {
        return Ok(());
    }
    if repos.is_empty() {
        eprintln!("No resources found");
        return Ok(());
    }
    let wide = output == "wide";
    let rows: Vec<Vec<String>> = repos
        .iter()
        .map(|r| {
            let mut row = vec![
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
            ];
            if wide {
                row.extend(repos::wide_cells(r));
            }
            row
        })
        .collect();
    let mut columns = vec![
        "NAME",
        "STATUS",
        "STORAGEPROVIDER",
        "ACCESSMETHOD",
        "DEFAULT",
        "AGE",
    ];
    if wide {
        columns.extend(repos::WIDE_COLUMNS);
    }
    print!("{}", table(&columns, &rows));
    Ok(())
}

/// `kubectl get storageprovider` output.
fn print_get_providers(providers: &[StorageProvider], output: &str, single: bool) -> Result<()> {
    if print_objects(providers, output, super::PROVIDER_RESOURCE, single)? {
        return Ok(());
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
/// `annotate backuprepo NAME K=V...` or `annotate backuprepo/NAME K=V...`.
pub async fn annotate<S: RepoStore>(store: &S, args: &[String], overwrite: bool) -> Result<()> {
    let (kind, rest) = match args.first() {
        Some(first) if first.contains('/') => {
            (Kind::parse(first.split('/').next().unwrap_or(""))?, {
                let name = first
                    .split_once('/')
                    .map(|(_, n)| n.to_string())
                    .unwrap_or_default();
                std::iter::once(name)
                    .chain(args[1..].iter().cloned())
                    .collect::<Vec<_>>()
            })
        }
        Some(first) => (Kind::parse(first)?, args[1..].to_vec()),
        None => bail!("you must specify the type of resource, e.g. backuprepo"),
    };
    if kind != Kind::Repo {
        bail!("annotate supports backuprepo objects only");
    }
    let Some((name, changes)) = rest.split_first() else {
        bail!("name the repository: `backuprepo annotate backuprepo NAME KEY=VALUE`");
    };
    if changes.is_empty() {
        bail!("give at least one annotation: KEY=VALUE to set, KEY- to remove");
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
