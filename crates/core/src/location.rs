//! Where a repository's data lives, from its spec: a storage (the service and its bucket,
//! container, host or directory) and a path in it. Two repositories whose paths nest on the
//! same storage count each other's files, and one blocks the other's deletion, so `create` and
//! `apply` warn about it on every store ([`overlapping`]).

use backuprepo_api::BackupRepo;

/// A repository's storage and path, as its spec names them.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Location {
    /// The storage: `s3://ENDPOINT/BUCKET`, `azureblob://ACCOUNT/CONTAINER`, `ftp://HOST:PORT`,
    /// `nfs://SERVER/SHARE`, or `file://` for a local directory.
    pub storage: String,
    /// The path in it, without leading or trailing `/`.
    pub path: String,
}

impl std::fmt::Display for Location {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match (self.storage.as_str(), self.path.as_str()) {
            ("file://", p) => write!(f, "/{p}"),
            (s, "") => write!(f, "{s}"),
            (s, p) => write!(f, "{s}/{p}"),
        }
    }
}

/// The components of a path, without empty ones.
fn parts(p: &str) -> impl Iterator<Item = &str> {
    p.split('/').filter(|c| !c.is_empty() && *c != ".")
}

fn join(a: &str, b: &str) -> String {
    parts(a).chain(parts(b)).collect::<Vec<_>>().join("/")
}

/// Where `repo`'s data lives; `None` where the spec does not say (a `pvc` repository gets a
/// volume of its own).
pub fn of(repo: &BackupRepo) -> Option<Location> {
    let c = &repo.spec.config;
    let get = |k: &str| c.get(k).map(|v| v.trim()).filter(|v| !v.is_empty());
    let prefix = repo.spec.path_prefix.as_deref().unwrap_or("");
    let at = |storage: String, path: &str| Location {
        storage,
        path: join(path, prefix),
    };
    if let Some(bucket) = get("bucket") {
        // The endpoint names the service; without one, the region does (AWS, and the
        // providers that derive the endpoint from it).
        let service = get("endpoint")
            .map(|e| {
                e.trim_start_matches("https://")
                    .trim_start_matches("http://")
                    .trim_end_matches('/')
                    .to_ascii_lowercase()
            })
            .or_else(|| get("region").map(|r| format!("{}:{r}", repo.spec.storage_provider_ref)))
            .unwrap_or_else(|| repo.spec.storage_provider_ref.clone());
        return Some(at(format!("s3://{service}/{bucket}"), ""));
    }
    if let Some(container) = get("container") {
        let account = get("endpoint").or(get("accountName")).unwrap_or_default();
        return Some(at(format!("azureblob://{account}/{container}"), ""));
    }
    if let Some(host) = get("ftpHost") {
        let port = get("ftpPort").unwrap_or("21");
        return Some(at(format!("ftp://{host}:{port}"), ""));
    }
    if let Some(server) = get("nfsServer") {
        let share = get("nfsShare").unwrap_or_default();
        return Some(at(
            format!("nfs://{server}/{}", share.trim_matches('/')),
            get("nfsSubDir").unwrap_or_default(),
        ));
    }
    get("path").map(|p| at("file://".into(), p))
}

/// Whether one path is the other or lies under it, component by component.
fn nested(a: &str, b: &str) -> bool {
    let (a, b): (Vec<&str>, Vec<&str>) = (parts(a).collect(), parts(b).collect());
    let n = a.len().min(b.len());
    a[..n] == b[..n]
}

/// The repositories among `others` (not `repo` itself) whose data location contains, or is
/// contained in, `repo`'s, with the sentence that says so.
pub fn overlapping<'a>(
    repo: &BackupRepo,
    others: impl IntoIterator<Item = &'a BackupRepo>,
) -> Vec<String> {
    let Some(mine) = of(repo) else {
        return Vec::new();
    };
    let mut out = Vec::new();
    for other in others {
        if other.name() == repo.name() {
            continue;
        }
        let Some(theirs) = of(other) else {
            continue;
        };
        if theirs.storage != mine.storage || !nested(&mine.path, &theirs.path) {
            continue;
        }
        let how = match (parts(&mine.path).count(), parts(&theirs.path).count()) {
            (a, b) if a == b => "the same location as",
            (a, b) if a < b => "a location that contains that of",
            _ => "a location inside that of",
        };
        out.push(format!(
            "backuprepo {} ({mine}) has {how} backuprepo {} ({theirs}): each counts the other's files, and one blocks the other's deletion; give one of them another spec.pathPrefix (--path-prefix)",
            repo.name(),
            other.name()
        ));
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    fn repo(name: &str, provider: &str, config: &[(&str, &str)], prefix: &str) -> BackupRepo {
        let mut r: BackupRepo = serde_json::from_value(serde_json::json!({
            "apiVersion": "dataprotection.kubeblocks.io/v1alpha1",
            "kind": "BackupRepo",
            "metadata": {"name": name},
            "spec": {"storageProviderRef": provider, "pvReclaimPolicy": "Retain"}
        }))
        .unwrap();
        r.spec.config = config
            .iter()
            .map(|(k, v)| (k.to_string(), v.to_string()))
            .collect();
        if !prefix.is_empty() {
            r.spec.path_prefix = Some(prefix.into());
        }
        r
    }

    #[test]
    fn nested_paths_on_one_storage_overlap() {
        let s3 = |n: &str, ep: &str, b: &str, p: &str| {
            repo(n, "minio", &[("bucket", b), ("endpoint", ep)], p)
        };
        let a = s3("a", "http://127.0.0.1:9000", "backups", "");
        let b = s3("b", "http://127.0.0.1:9000/", "backups", "team-b");
        let c = s3("c", "http://127.0.0.1:9000", "backups", "team-bb");
        let d = s3("d", "http://10.0.0.1:9000", "backups", "");
        let e = s3("e", "http://127.0.0.1:9000", "other", "");
        let found = overlapping(&a, [&b, &c, &d, &e]);
        assert_eq!(found.len(), 2, "{found:?}");
        assert!(found[0].contains(
            "a location that contains that of backuprepo b (s3://127.0.0.1:9000/backups/team-b)"
        ));
        // Prefixes are compared by component: team-b does not contain team-bb.
        assert!(overlapping(&b, [&c]).is_empty());
        assert!(overlapping(&b, [&a])[0].contains("a location inside that of backuprepo a"));
        assert!(overlapping(&a, [&a]).is_empty());

        let l1 = repo("l1", "local", &[("path", "/var/backups/")], "");
        let l2 = repo("l2", "local", &[("path", "/var/backups")], "");
        let l3 = repo("l3", "local", &[("path", "/var/backups2")], "");
        assert!(overlapping(&l1, [&l2])[0]
            .contains("the same location as backuprepo l2 (/var/backups)"));
        assert!(overlapping(&l1, [&l3]).is_empty());
        let pvc = repo("p", "pvc", &[("storageClassName", "x")], "");
        assert_eq!(of(&pvc), None);
    }
}
