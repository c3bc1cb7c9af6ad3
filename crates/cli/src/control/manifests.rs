//! The seed's kubectl flows on the local store: `apply -f`, `get`, `annotate`, `secret create`
//! (for `kubectl create secret generic`), and `install -f values.yaml` (the chart's
//! `backupRepo:` block).
//!
//! `apply` is all-or-nothing: every document is parsed and checked (schema, names, immutable
//! provider reference, a single default) before anything is written, so a bad manifest leaves
//! the store as it was.

use std::collections::{BTreeMap, BTreeSet};
use std::io::Read;

use anyhow::{anyhow, bail, Context as _, Result};
use backuprepo_api::constants::{
    message, BACKUP_REPO_DIGEST_ANNOTATION, IS_DEFAULT_REPO_ANNOTATION,
    NEED_UPDATE_TOOL_CONFIG_ANNOTATION,
};
use backuprepo_api::k8s_openapi::api::core::v1::Secret;
use backuprepo_api::{parse_documents, secret_data, BackupRepo, Document, StorageProvider};
use backuprepo_catalog::template::Template;
use backuprepo_local::now;

use super::{phase_str, print_objects, repos, table, Ctx};

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

pub fn apply_file(ctx: &Ctx, file: &str) -> Result<()> {
    apply(ctx, read_documents(file)?)
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

/// The checks that need no store: schema, names, templates, Secret data.
pub fn check_documents(docs: &[Document]) -> Result<()> {
    for d in docs {
        match d {
            Document::BackupRepo(r) => {
                if let Err(errs) = r.validate() {
                    let lines: Vec<String> = errs.iter().map(|e| e.to_string()).collect();
                    bail!("BackupRepo {:?} is invalid: {}", r.name(), lines.join("; "));
                }
            }
            Document::StorageProvider(p) => check_provider(p)?,
            Document::Secret(s) => {
                if s.metadata.name.as_deref().unwrap_or_default().is_empty() {
                    bail!("a Secret has no metadata.name");
                }
                secret_data(s).map_err(|e| anyhow!("{e}"))?;
            }
        }
    }
    Ok(())
}

/// The checks against the repositories that exist: the provider reference is immutable, and
/// at most one repository is the default once the documents are applied.
pub fn check_against(existing: &[BackupRepo], docs: &[Document]) -> Result<()> {
    let mut after: BTreeMap<String, bool> = existing
        .iter()
        .map(|r| (r.name().to_string(), r.is_default()))
        .collect();
    for d in docs {
        if let Document::BackupRepo(r) = d {
            if let Some(old) = existing.iter().find(|o| o.name() == r.name()) {
                if old.spec.storage_provider_ref != r.spec.storage_provider_ref {
                    bail!(
                        "BackupRepo {:?}: spec.storageProviderRef: {}; delete and re-create the repository to change its provider",
                        r.name(),
                        message::STORAGE_PROVIDER_REF_IMMUTABLE
                    );
                }
            }
            after.insert(r.name().to_string(), r.is_default());
        }
    }
    let defaults: Vec<&String> = after.iter().filter(|(_, d)| **d).map(|(n, _)| n).collect();
    if defaults.len() > 1 {
        bail!(
            "only one backup repository can be the default, these would be: {}; set the annotation {IS_DEFAULT_REPO_ANNOTATION}=\"false\" on all but one",
            defaults.iter().map(|s| s.as_str()).collect::<Vec<_>>().join(", ")
        );
    }
    Ok(())
}

/// Check every document, then write them all (Secrets, providers, repositories), then
/// reconcile the repositories they affect.
pub fn apply(ctx: &Ctx, docs: Vec<Document>) -> Result<()> {
    // 1. Checks that need no store.
    check_documents(&docs)?;
    let mut lines = Vec::new();
    let mut touched_repos = BTreeSet::new();
    {
        let lock = ctx.store().lock()?;
        // 2. Checks against the store, under the lock.
        let existing = ctx.store().repos()?;
        check_against(&existing, &docs)?;

        // 3. Write.
        let now = now();
        for d in docs.iter().filter(|d| matches!(d, Document::Secret(_))) {
            if let Document::Secret(s) = d {
                let mut s = s.clone();
                if s.metadata.namespace.is_none() {
                    s.metadata.namespace = Some("default".into());
                }
                let ns = s.metadata.namespace.clone().unwrap_or_default();
                let name = s.metadata.name.clone().unwrap_or_default();
                let old = ctx.store().secret(&ns, &name)?;
                let same = old
                    .as_ref()
                    .is_some_and(|o| secret_data(o).ok() == secret_data(&s).ok());
                s.metadata.resource_version = None;
                if let Some(o) = &old {
                    s.metadata.owner_references = o.metadata.owner_references.clone();
                }
                if !same {
                    ctx.store().put_secret(&lock, s, &now)?;
                }
                lines.push(format!("secret/{name} {}", verb(old.is_some(), same)));
                for r in &existing {
                    if r.credential_key()
                        .ok()
                        .flatten()
                        .is_some_and(|(cns, cname)| cname == *name && cns == *ns)
                    {
                        touched_repos.insert(r.name().to_string());
                    }
                }
            }
        }
        for d in &docs {
            if let Document::StorageProvider(p) = d {
                let old = ctx.store().provider(p.name())?;
                let same = old.as_ref().is_some_and(|o| o.spec == p.spec);
                let mut p = p.clone();
                p.metadata.resource_version = None;
                if !same {
                    ctx.store().put_provider(&lock, p.clone(), &now)?;
                }
                lines.push(format!(
                    "storageprovider.dataprotection.kubeblocks.io/{} {}",
                    p.name(),
                    verb(old.is_some(), same)
                ));
                for r in existing
                    .iter()
                    .filter(|r| r.spec.storage_provider_ref == p.name())
                {
                    touched_repos.insert(r.name().to_string());
                }
            }
        }
        for d in &docs {
            if let Document::BackupRepo(r) = d {
                let old = existing.iter().find(|o| o.name() == r.name());
                let mut new = r.clone();
                new.metadata.resource_version = None;
                new.status = None;
                let mut same = false;
                if let Some(o) = old {
                    // Keep what the controller owns: status and its annotations.
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
                if !same {
                    ctx.store().put_repo(&lock, new, &now)?;
                }
                lines.push(format!(
                    "backuprepo.dataprotection.kubeblocks.io/{} {}",
                    r.name(),
                    verb(old.is_some(), same)
                ));
                touched_repos.insert(r.name().to_string());
            }
        }
    }
    for l in &lines {
        println!("{l}");
    }
    // 4. Reconcile what changed, as the controller would; report repositories that failed.
    for name in touched_repos {
        let r = ctx.reconcile(&name, false)?;
        if r.phase() != Some(backuprepo_api::BackupRepoPhase::Ready) {
            eprintln!(
                "Warning: backuprepo {name} is {}: {}",
                phase_str(&r),
                repos::failure_message(&r)
            );
        }
    }
    Ok(())
}

pub fn verb(existed: bool, same: bool) -> &'static str {
    match (existed, same) {
        (false, _) => "created",
        (true, true) => "unchanged",
        (true, false) => "configured",
    }
}

/// A provider's templates must parse and its schema must be an object schema.
fn check_provider(p: &StorageProvider) -> Result<()> {
    let s = &p.spec;
    for (field, t) in [
        ("csiDriverSecretTemplate", &s.csi_driver_secret_template),
        ("storageClassTemplate", &s.storage_class_template),
        (
            "persistentVolumeClaimTemplate",
            &s.persistent_volume_claim_template,
        ),
        ("datasafedConfigTemplate", &s.datasafed_config_template),
    ] {
        if let Some(t) = t {
            Template::parse(t).map_err(|e| {
                anyhow!(
                    "StorageProvider {:?}: spec.{field} does not parse: {e}",
                    p.name()
                )
            })?;
        }
    }
    if let Some(schema) = s.open_api_v3_schema() {
        if !schema.is_object() || schema.get("properties").is_some_and(|p| !p.is_object()) {
            bail!(
                "StorageProvider {:?}: spec.parametersSchema.openAPIV3Schema must be an object schema with `properties`",
                p.name()
            );
        }
    }
    Ok(())
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

fn age(t: Option<&backuprepo_api::k8s_openapi::apimachinery::pkg::apis::meta::v1::Time>) -> String {
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

pub fn get(ctx: &Ctx, kind: &str, name: Option<&str>, output: &str) -> Result<()> {
    match kind_of(kind)? {
        "backuprepo" => {
            let repos: Vec<BackupRepo> = match name {
                Some(n) => {
                    if ctx.store().repo(n)?.is_none() {
                        bail!("backuprepos.dataprotection.kubeblocks.io {n:?} not found");
                    }
                    vec![ctx.reconcile(n, false)?]
                }
                None => ctx.repos()?,
            };
            print_get_repos(&repos, output, name.is_some())?;
        }
        _ => {
            let providers: Vec<StorageProvider> = match name {
                Some(n) => vec![ctx.store().provider(n)?.ok_or_else(|| {
                    anyhow!("storageproviders.dataprotection.kubeblocks.io {n:?} not found")
                })?],
                None => ctx.store().providers()?,
            };
            print_get_providers(&providers, output, name.is_some())?;
        }
    }
    Ok(())
}

/// `kubectl get backuprepo` output (the CRD's printer columns).
pub fn print_get_repos(repos: &[BackupRepo], output: &str, single: bool) -> Result<()> {
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
    print!(
        "{}",
        table(
            &[
                "NAME",
                "STATUS",
                "STORAGEPROVIDER",
                "ACCESSMETHOD",
                "DEFAULT",
                "AGE"
            ],
            &rows
        )
    );
    Ok(())
}

/// `kubectl get storageprovider` output.
pub fn print_get_providers(
    providers: &[StorageProvider],
    output: &str,
    single: bool,
) -> Result<()> {
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
pub fn annotate(
    ctx: &Ctx,
    kind: &str,
    name: &str,
    changes: &[String],
    overwrite: bool,
) -> Result<()> {
    if kind_of(kind)? != "backuprepo" {
        bail!("annotate supports backuprepo objects only");
    }
    {
        let lock = ctx.store().lock()?;
        let mut repo = ctx.store().repo(name)?.ok_or_else(|| {
            anyhow!("backuprepos.dataprotection.kubeblocks.io {name:?} not found")
        })?;
        annotate_in_place(&mut repo, changes, overwrite)?;
        if repo.is_default() {
            let all = ctx.store().repos()?;
            backuprepo_core::defaults::check_single_default(&all, name).map_err(|e| anyhow!(e))?;
        }
        ctx.store().put_repo(&lock, repo, &now())?;
    }
    println!("backuprepo.dataprotection.kubeblocks.io/{name} annotated");
    ctx.reconcile(name, false)?;
    Ok(())
}

/// Apply kubectl-style annotation changes (`key=value`, `key-`) to a repository; returns the
/// changes as a merge-patch map (`null` for removals).
pub fn annotate_in_place(
    repo: &mut BackupRepo,
    changes: &[String],
    overwrite: bool,
) -> Result<serde_json::Map<String, serde_json::Value>> {
    if changes.is_empty() {
        bail!("at least one annotation update is required, e.g. {IS_DEFAULT_REPO_ANNOTATION}=true");
    }
    let mut patch = serde_json::Map::new();
    let ann = repo.metadata.annotations.get_or_insert_with(BTreeMap::new);
    for c in changes {
        if let Some(key) = c.strip_suffix('-').filter(|k| !k.contains('=')) {
            ann.remove(key);
            patch.insert(key.to_string(), serde_json::Value::Null);
            continue;
        }
        let (k, v) = c
            .split_once('=')
            .ok_or_else(|| anyhow!("invalid annotation {c:?}: expected key=value or key-"))?;
        if let Some(old) = ann.get(k) {
            if old != v && !overwrite {
                bail!("--overwrite is false but found the following declared annotation(s): '{k}' already has a value ({old})");
            }
        }
        ann.insert(k.to_string(), v.to_string());
        patch.insert(k.to_string(), serde_json::Value::String(v.to_string()));
    }
    Ok(patch)
}

/// The Secret of `secret create` (kubectl create secret generic).
pub fn literal_secret(name: &str, namespace: &str, literals: &[String]) -> Result<Secret> {
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
pub fn create_secret(ctx: &Ctx, name: &str, namespace: &str, literals: &[String]) -> Result<()> {
    let s = literal_secret(name, namespace, literals)?;
    {
        let lock = ctx.store().lock()?;
        if ctx.store().secret(namespace, name)?.is_some() {
            bail!("secrets {name:?} already exists in namespace {namespace}; delete it first or use `apply`");
        }
        ctx.store().put_secret(&lock, s, &now())?;
    }
    println!("secret/{name} created");
    Ok(())
}

/// `install -f values.yaml`: the chart's `backupRepo:` block becomes a Secret and a
/// BackupRepo (as KubeBlocks' Helm chart renders them), applied to the local store.
pub fn install(ctx: &Ctx, file: &str) -> Result<()> {
    match values_documents(file, super::SECRET_NAMESPACE)? {
        None => Ok(()),
        Some(docs) => apply(ctx, docs),
    }
}

/// The Secret and BackupRepo of a values file's `backupRepo:` block (`None`, with a note,
/// when it asks for none).
pub fn values_documents(file: &str, namespace: &str) -> Result<Option<Vec<Document>>> {
    let text = read_input(file)?;
    match backuprepo_deploy::backup_repo_from_values(&text, namespace)
        .map_err(|e| anyhow!("{file}: {e}"))?
    {
        None => {
            println!("{file}: backupRepo.create is not true or backupRepo.storageProvider is empty: no backup repository to install");
            Ok(None)
        }
        Some((secret, repo)) => Ok(Some(vec![
            Document::Secret(secret),
            Document::BackupRepo(repo),
        ])),
    }
}
