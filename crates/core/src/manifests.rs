//! The rules of `apply` and `annotate`, for both stores: what a document must be before
//! anything is written, what it may change in the repositories that exist, and how kubectl's
//! annotation changes read.

use std::collections::BTreeMap;

use anyhow::{anyhow, bail, Result};
use backuprepo_api::constants::{message, IS_DEFAULT_REPO_ANNOTATION};
use backuprepo_api::{secret_data, BackupRepo, Document, StorageProvider};
use backuprepo_catalog::template::Template;

/// The checks that need no store: schema, names, templates, Secret data.
pub fn check_documents(docs: &[Document]) -> Result<()> {
    if docs.is_empty() {
        bail!("no objects passed to apply");
    }
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
            crate::defaults::check_read_only_default(r).map_err(|e| anyhow!(e))?;
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

/// kubectl's word for what an apply did to one object.
pub fn verb(existed: bool, same: bool) -> &'static str {
    match (existed, same) {
        (false, _) => "created",
        (true, true) => "unchanged",
        (true, false) => "configured",
    }
}

/// Apply kubectl-style annotation changes (`key=value`, `key-`) to a repository; returns the
/// changes (`None` for removals), e.g. for a merge patch.
pub fn annotate(
    repo: &mut BackupRepo,
    changes: &[String],
    overwrite: bool,
) -> Result<BTreeMap<String, Option<String>>> {
    if changes.is_empty() {
        bail!("at least one annotation update is required, e.g. {IS_DEFAULT_REPO_ANNOTATION}=true");
    }
    let mut out = BTreeMap::new();
    let ann = repo.metadata.annotations.get_or_insert_with(BTreeMap::new);
    for c in changes {
        if let Some(key) = c.strip_suffix('-').filter(|k| !k.contains('=')) {
            ann.remove(key);
            out.insert(key.to_string(), None);
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
        out.insert(k.to_string(), Some(v.to_string()));
    }
    crate::defaults::check_read_only_default(repo).map_err(|e| anyhow!(e))?;
    Ok(out)
}

/// Set or remove the default-repository annotation.
pub fn set_default(repo: &mut BackupRepo, default: bool) {
    let ann = repo.metadata.annotations.get_or_insert_with(BTreeMap::new);
    if default {
        ann.insert(IS_DEFAULT_REPO_ANNOTATION.into(), "true".into());
    } else {
        ann.remove(IS_DEFAULT_REPO_ANNOTATION);
    }
}
