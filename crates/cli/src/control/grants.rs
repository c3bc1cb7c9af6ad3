//! `backuprepo grant | revoke | grants`: keys limited to a prefix of a repository, made on its
//! storage, recorded with the repository (annotation `backuprepo.io/grants`: name, prefix,
//! access, created, the storage's user and key ID; never a secret), and revoked with it.

use std::io::Write;

use anyhow::{anyhow, bail, Result};
use backuprepo_api::BackupRepo;
use backuprepo_core::store::RepoStore;
use serde::{Deserialize, Serialize};

use super::{data, table};

/// The annotation that records a repository's grants.
pub const GRANTS_ANNOTATION: &str = "backuprepo.io/grants";

#[derive(Debug, Clone, Serialize, Deserialize, PartialEq, Eq)]
#[serde(rename_all = "camelCase")]
pub struct Grant {
    pub name: String,
    pub prefix: String,
    /// `read-write` or `read-only`.
    pub access: String,
    pub created: String,
    /// The user on the storage, and its key ID (not secret).
    pub user: String,
    pub access_key_id: String,
}

/// The grants recorded on a repository.
pub fn recorded(repo: &BackupRepo) -> Result<Vec<Grant>> {
    match repo
        .metadata
        .annotations
        .as_ref()
        .and_then(|a| a.get(GRANTS_ANNOTATION))
    {
        None => Ok(Vec::new()),
        Some(v) => serde_json::from_str(v).map_err(|e| {
            anyhow!(
                "the annotation {GRANTS_ANNOTATION} of {} is not a list of grants ({e}); fix or remove it",
                repo.name()
            )
        }),
    }
}

/// The storage user of grant `name` of `repo`, as this code derives it: `revoke` and `delete`
/// delete only such users, never the one a (possibly edited) record names.
fn grant_user(repo: &BackupRepo, name: &str) -> String {
    let uid = repo.metadata.uid.as_deref().unwrap_or_default();
    backuprepo_core::scoping::grant_user_name(repo.name(), uid, name)
}

/// The IAM endpoint the repository's provider declares (`spec.scopedCredentials`; `None`:
/// the S3 endpoint), or why the provider cannot make grants.
async fn iam_endpoint<S: RepoStore>(store: &S, repo: &BackupRepo) -> Result<Option<String>> {
    let provider = store.provider(&repo.spec.storage_provider_ref).await?;
    match provider.key_scoping() {
        Ok(e) => Ok(e.map(str::to_string)),
        Err(why) => bail!("{why}; nothing was created"),
    }
}

async fn record<S: RepoStore>(store: &S, repo: &str, grants: &[Grant]) -> Result<()> {
    let change = if grants.is_empty() {
        format!("{GRANTS_ANNOTATION}-")
    } else {
        format!("{GRANTS_ANNOTATION}={}", serde_json::to_string(grants)?)
    };
    store.annotate(repo, &[change], true).await
}

/// `grant REPO --prefix PREFIX [--read-only] [--name NAME] [-o FILE]`.
pub async fn grant<S: RepoStore>(
    store: &S,
    repo_name: &str,
    prefix: &str,
    read_only: bool,
    name: Option<String>,
    output: Option<String>,
) -> Result<()> {
    let repo = data::ready_repo(store, Some(repo_name)).await?;
    let iam = iam_endpoint(store, &repo).await?;
    let mut grants = recorded(&repo)?;
    let name = name.unwrap_or_else(|| {
        let base: String = prefix
            .chars()
            .map(|c| {
                if c.is_ascii_alphanumeric() {
                    c.to_ascii_lowercase()
                } else {
                    '-'
                }
            })
            .collect();
        format!(
            "{}-{}",
            base.trim_matches('-'),
            &backuprepo_api::random_suffix()[..5]
        )
    });
    if grants.iter().any(|g| g.name == name) {
        bail!("repository {repo_name} already has a grant named {name:?}; see `backuprepo grants {repo_name}`");
    }
    let path = match output.as_deref() {
        Some("-") => None,
        Some(p) => Some(std::path::PathBuf::from(p)),
        None => Some(std::path::PathBuf::from(format!("{name}.conf"))),
    };
    if let Some(p) = &path {
        if p.exists() {
            bail!(
                "{} exists; choose another file with -o (nothing was created)",
                p.display()
            );
        }
    }
    let (_, storage) = data::open(store, &repo).await?;
    // Unique on the storage, which other repositories (and clusters) may share: derived
    // from the repository's UID, and derived again (never read back) when it is revoked.
    let user = grant_user(&repo, &name);
    let granted = storage
        .grant(&user, prefix, read_only, iam.as_deref())
        .await
        .map_err(|e| anyhow!("{e}"))?;
    grants.push(Grant {
        name: name.clone(),
        prefix: prefix.trim_matches('/').to_string(),
        access: if read_only { "read-only" } else { "read-write" }.to_string(),
        created: backuprepo_local::now().0.to_string(),
        user: user.clone(),
        access_key_id: granted.key.access_key_id.clone(),
    });
    // Recorded with the repository, or undone: nothing half-created.
    let written = async {
        record(store, repo_name, &grants).await?;
        match &path {
            None => {
                print!("{}", granted.config);
                Ok(())
            }
            Some(p) => write_0600(p, &granted.config),
        }
    }
    .await;
    if let Err(e) = written {
        let _ = storage.revoke(&user, iam.as_deref()).await;
        grants.pop();
        let _ = record(store, repo_name, &grants).await;
        return Err(e.context("the grant was revoked again"));
    }
    if let Some(p) = &path {
        println!(
            "grant {name} created: {} access to {}/ of {repo_name}; its datasafed config is in {} (mode 0600)",
            if read_only { "read-only" } else { "read-write" },
            prefix.trim_matches('/'),
            p.display()
        );
    }
    Ok(())
}

fn write_0600(path: &std::path::Path, text: &str) -> Result<()> {
    use std::os::unix::fs::OpenOptionsExt;
    let mut f = std::fs::OpenOptions::new()
        .write(true)
        .create_new(true)
        .mode(0o600)
        .open(path)
        .map_err(|e| anyhow!("cannot write {}: {e}", path.display()))?;
    f.write_all(text.as_bytes())
        .map_err(|e| anyhow!("cannot write {}: {e}", path.display()))
}

/// `revoke REPO NAME`.
pub async fn revoke<S: RepoStore>(store: &S, repo_name: &str, name: &str) -> Result<()> {
    let repo = store.repo(repo_name).await?;
    let mut grants = recorded(&repo)?;
    let Some(i) = grants.iter().position(|g| g.name == name) else {
        bail!("repository {repo_name} has no grant named {name:?}; see `backuprepo grants {repo_name}`");
    };
    let iam = iam_endpoint(store, &repo).await?;
    let (_, storage) = data::open(store, &repo).await?;
    let g = grants.remove(i);
    storage
        .revoke(&grant_user(&repo, &g.name), iam.as_deref())
        .await
        .map_err(|e| anyhow!("{e}"))?;
    record(store, repo_name, &grants).await?;
    println!("grant {name} revoked: its key no longer works");
    Ok(())
}

/// Revoke every grant of a repository (before it is deleted).
pub async fn revoke_all<S: RepoStore>(store: &S, repo: &BackupRepo) -> Result<usize> {
    let grants = recorded(repo)?;
    if grants.is_empty() {
        return Ok(0);
    }
    let iam = iam_endpoint(store, repo).await?;
    let (_, storage) = data::open(store, repo).await?;
    for g in &grants {
        storage
            .revoke(&grant_user(repo, &g.name), iam.as_deref())
            .await
            .map_err(|e| anyhow!("revoking grant {}: {e}", g.name))?;
    }
    Ok(grants.len())
}

/// `grants REPO`: name, prefix, access, created; never a secret.
pub async fn list<S: RepoStore>(store: &S, repo_name: &str) -> Result<()> {
    let repo = store.repo(repo_name).await?;
    let rows: Vec<Vec<String>> = recorded(&repo)?
        .into_iter()
        .map(|g| vec![g.name, format!("{}/", g.prefix), g.access, g.created])
        .collect();
    if rows.is_empty() {
        println!("No grants on {repo_name}.");
        return Ok(());
    }
    print!("{}", table(&["NAME", "PREFIX", "ACCESS", "CREATED"], &rows));
    Ok(())
}

/// `rotate-keys REPO`: ask the controller to replace the scoped keys of the repository's
/// consumer namespaces (annotation `backuprepo.io/rotate-keys`, removed once done).
pub async fn rotate_keys<S: RepoStore>(store: &S, repo_name: &str) -> Result<()> {
    use backuprepo_api::constants::{ROTATE_KEYS_ANNOTATION, SCOPED_CREDENTIALS_ANNOTATION};
    let repo = store.repo(repo_name).await?;
    let keys = repo
        .status
        .as_ref()
        .map(|s| s.scoped_credentials.len())
        .unwrap_or_default();
    if keys == 0 {
        bail!(
            "repository {repo_name} has no scoped keys to rotate: on Kubernetes the controller makes one per consumer namespace when the repository is annotated {SCOPED_CREDENTIALS_ANNOTATION}=true (see `backuprepo describe {repo_name}`)"
        );
    }
    let stamp = backuprepo_local::now().0.to_string();
    store
        .annotate(
            repo_name,
            &[format!("{ROTATE_KEYS_ANNOTATION}={stamp}")],
            true,
        )
        .await?;
    println!(
        "rotation of the {keys} scoped key(s) of {repo_name} requested: the controller writes new keys into the namespaces' Secrets and removes {ROTATE_KEYS_ANNOTATION} when done; the old keys keep working for the grace period"
    );
    Ok(())
}
