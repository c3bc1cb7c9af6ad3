//! kubectl's ways of naming objects (`KIND NAME...`, `KIND/NAME...`), and the Secrets that
//! `apply` and `secret create` make: `get`, `describe` and `delete` of them. A Secret's values
//! are never printed: `-o yaml|json` shows each key with its size instead, and `delete`
//! refuses a Secret a repository still uses unless `--force`.

use std::collections::BTreeMap;

use anyhow::{bail, Result};
use backuprepo_api::k8s_openapi::api::core::v1::Secret;
use backuprepo_api::BackupRepo;
use backuprepo_core::store::RepoStore;

use super::{manifests::age, print_objects, table};

/// The kinds the commands know.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Kind {
    Repo,
    Provider,
    Secret,
}

impl Kind {
    pub fn parse(kind: &str) -> Result<Kind> {
        let k = kind.to_ascii_lowercase();
        let k = k
            .strip_suffix(".dataprotection.kubeblocks.io")
            .unwrap_or(&k);
        Ok(match k {
            "backuprepo" | "backuprepos" => Kind::Repo,
            "storageprovider" | "storageproviders" | "sp" => Kind::Provider,
            "secret" | "secrets" => Kind::Secret,
            other => bail!(
                "the server doesn't have a resource type {other:?}; use backuprepo, storageprovider or secret"
            ),
        })
    }
}

/// `KIND [NAME...]` or `KIND/NAME [KIND/NAME...]` (one kind per command), as kubectl reads
/// them. `default`: the kind when the first word is a name (`delete NAME`).
pub fn targets(args: &[String], default: Option<Kind>) -> Result<(Kind, Vec<String>)> {
    let Some(first) = args.first() else {
        bail!("you must specify the type of resource, e.g. backuprepo");
    };
    if first.contains('/') {
        let mut kind = None;
        let mut names = Vec::new();
        for a in args {
            let Some((k, n)) = a.split_once('/') else {
                bail!("there is no need to specify a resource type as a separate argument when passing arguments in resource/name form ({a:?})");
            };
            let k = Kind::parse(k)?;
            if kind.is_some_and(|x| x != k) {
                bail!("one kind per command: {args:?}");
            }
            kind = Some(k);
            names.push(n.to_string());
        }
        return Ok((kind.unwrap_or(Kind::Repo), names));
    }
    match (Kind::parse(first), default) {
        (Ok(k), _) => Ok((k, args[1..].to_vec())),
        (Err(_), Some(k)) => Ok((k, args.to_vec())),
        (Err(e), None) => Err(e),
    }
}

/// The repositories that use each Secret, by `namespace/name`.
fn users(repos: &[BackupRepo]) -> BTreeMap<String, Vec<String>> {
    let mut out: BTreeMap<String, Vec<String>> = BTreeMap::new();
    for r in repos {
        if let Some(c) = &r.spec.credential {
            let key = format!(
                "{}/{}",
                c.namespace.as_deref().unwrap_or_default(),
                c.name.as_deref().unwrap_or_default()
            );
            out.entry(key).or_default().push(r.name().to_string());
        }
    }
    out
}

fn id(s: &Secret) -> String {
    format!(
        "{}/{}",
        s.metadata.namespace.as_deref().unwrap_or_default(),
        s.metadata.name.as_deref().unwrap_or_default()
    )
}

/// The Secret as shown: each value replaced by its size, as readable `stringData`, never the
/// value (and never base64 that could be mistaken for it), nor kubectl's copy of it.
fn redacted(s: &Secret) -> Secret {
    let mut out = s.clone();
    // `kubectl apply` keeps the whole applied object, values included, in an annotation.
    if let Some(a) = out.metadata.annotations.as_mut() {
        if let Some(v) = a.get_mut("kubectl.kubernetes.io/last-applied-configuration") {
            *v = "<redacted: it holds the Secret's values>".into();
        }
    }
    out.data = None;
    out.string_data = s.data.as_ref().map(|d| {
        d.iter()
            .map(|(k, v)| (k.clone(), format!("<redacted: {} bytes>", v.0.len())))
            .collect()
    });
    out
}

/// The Secrets asked for: by name in `namespace`, or all of `namespace` (every namespace when
/// `None`). Missing names are errors unless `ignore_not_found`.
async fn select<S: RepoStore>(
    store: &S,
    names: &[String],
    namespace: Option<&str>,
    ignore_not_found: bool,
) -> Result<Vec<Secret>> {
    let all = store.secrets(namespace).await?;
    if names.is_empty() {
        return Ok(all);
    }
    let mut out = Vec::new();
    for n in names {
        match all.iter().find(|s| s.metadata.name.as_deref() == Some(n)) {
            Some(s) => out.push(s.clone()),
            None if ignore_not_found => {}
            None => bail!(
                "secrets {n:?} not found in namespace {:?}; see `backuprepo get secrets`",
                namespace.unwrap_or_default()
            ),
        }
    }
    Ok(out)
}

/// `get secret [NAME...] [-n NS] [-o ...]`.
pub async fn get_secrets<S: RepoStore>(
    store: &S,
    names: &[String],
    namespace: Option<&str>,
    output: &str,
    ignore_not_found: bool,
) -> Result<()> {
    let secrets = select(store, names, namespace, ignore_not_found).await?;
    let shown: Vec<Secret> = secrets.iter().map(redacted).collect();
    if print_objects(&shown, output, "secret", names.len() == 1)? {
        return Ok(());
    }
    if secrets.is_empty() {
        if !ignore_not_found {
            eprintln!("No resources found");
        }
        return Ok(());
    }
    let used = users(&store.repos().await?);
    let rows: Vec<Vec<String>> = secrets
        .iter()
        .map(|s| {
            vec![
                s.metadata.namespace.clone().unwrap_or_default(),
                s.metadata.name.clone().unwrap_or_default(),
                s.type_.clone().unwrap_or_else(|| "Opaque".into()),
                s.data.as_ref().map(|d| d.len()).unwrap_or(0).to_string(),
                age(s.metadata.creation_timestamp.as_ref()),
                used.get(&id(s)).map(|v| v.join(",")).unwrap_or_default(),
            ]
        })
        .collect();
    let header = ["NAMESPACE", "NAME", "TYPE", "DATA", "AGE", "USED-BY"];
    print!("{}", table(&header, &rows));
    Ok(())
}

/// `describe secret NAME... [-n NS]`: kubectl's layout, sizes instead of values.
pub async fn describe_secrets<S: RepoStore>(
    store: &S,
    names: &[String],
    namespace: Option<&str>,
) -> Result<()> {
    let secrets = select(store, names, namespace, false).await?;
    let used = users(&store.repos().await?);
    for (i, s) in secrets.iter().enumerate() {
        if i > 0 {
            println!();
        }
        println!(
            "Name:         {}",
            s.metadata.name.as_deref().unwrap_or_default()
        );
        println!(
            "Namespace:    {}",
            s.metadata.namespace.as_deref().unwrap_or_default()
        );
        println!("Type:         {}", s.type_.as_deref().unwrap_or("Opaque"));
        if let Some(repos) = used.get(&id(s)) {
            let names: Vec<String> = repos.iter().map(|r| format!("backuprepo/{r}")).collect();
            println!("Used by:      {}", names.join(", "));
        }
        println!("\nData\n====");
        for (k, v) in s.data.iter().flatten() {
            println!("{k}:  {} bytes", v.0.len());
        }
    }
    Ok(())
}

/// `delete secret NAME... [-n NS] [--force] [--ignore-not-found]`.
pub async fn delete_secrets<S: RepoStore>(
    store: &S,
    names: &[String],
    namespace: &str,
    force: bool,
    ignore_not_found: bool,
) -> Result<()> {
    if names.is_empty() {
        bail!("name the Secret to delete: `backuprepo delete secret NAME -n NAMESPACE`");
    }
    // Every refusal before any delete: a missing Secret, then one a repository uses.
    let existing = store.secrets(Some(namespace)).await?;
    let mut found = Vec::new();
    for n in names {
        if existing
            .iter()
            .any(|s| s.metadata.name.as_deref() == Some(n))
        {
            found.push(n);
        } else if !ignore_not_found {
            bail!("secrets {n:?} not found in namespace {namespace:?}; nothing was deleted");
        }
    }
    let used = users(&store.repos().await?);
    for n in &found {
        if let (Some(repos), false) = (used.get(&format!("{namespace}/{n}")), force) {
            bail!(
                "secret {namespace}/{n} is the credential of backuprepo {}; nothing was deleted. Delete the repository first, or pass --force (its next check then fails)",
                repos.join(", ")
            );
        }
    }
    for n in found {
        if store.delete_secret(namespace, n).await? {
            println!("secret \"{n}\" deleted");
        }
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    fn v(args: &[&str]) -> Vec<String> {
        args.iter().map(|s| s.to_string()).collect()
    }

    #[test]
    fn kubectl_names() {
        assert_eq!(
            targets(&v(&["backuprepo", "a", "b"]), None).unwrap(),
            (Kind::Repo, v(&["a", "b"]))
        );
        assert_eq!(
            targets(&v(&["backuprepo/a", "backuprepos/b"]), None).unwrap(),
            (Kind::Repo, v(&["a", "b"]))
        );
        assert_eq!(
            targets(&v(&["secrets"]), None).unwrap(),
            (Kind::Secret, vec![])
        );
        assert_eq!(
            targets(&v(&["a", "b"]), Some(Kind::Repo)).unwrap(),
            (Kind::Repo, v(&["a", "b"]))
        );
        assert!(targets(&v(&["backuprepo/a", "secret/b"]), None).is_err());
        assert!(targets(&v(&["backuprepo/a", "b"]), None).is_err());
        assert!(targets(&v(&["pods"]), None)
            .unwrap_err()
            .to_string()
            .contains("doesn't have a resource type \"pods\""));
        assert_eq!(
            targets(
                &v(&["storageproviders.dataprotection.kubeblocks.io", "s3"]),
                None
            )
            .unwrap(),
            (Kind::Provider, v(&["s3"]))
        );
    }
}
