//! Shared helpers of the integration tests of `backuprepo-local`: private temporary
//! directories, object builders and the real-server environment (BR_* variables written by
//! `scripts/test-servers.sh start`; BR_REQUIRE_SERVERS=1 turns a missing server into a failure).

#![allow(dead_code, clippy::unwrap_used, clippy::expect_used)]

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicUsize, Ordering};

use backuprepo_api::k8s_openapi::api::core::v1::{Secret, SecretReference};
use backuprepo_api::k8s_openapi::apimachinery::pkg::apis::meta::v1::{Condition, ObjectMeta};
use backuprepo_api::{AccessMethod, BackupRepo, BackupRepoSpec, PvReclaimPolicy};

/// A directory removed on drop (no `tempfile` dependency in this crate).
pub struct TempDir(PathBuf);

impl TempDir {
    pub fn new(tag: &str) -> TempDir {
        static N: AtomicUsize = AtomicUsize::new(0);
        let p = std::env::temp_dir().join(format!(
            "br-local-test-{tag}-{}-{}",
            std::process::id(),
            N.fetch_add(1, Ordering::SeqCst)
        ));
        let _ = std::fs::remove_dir_all(&p);
        std::fs::create_dir_all(&p).unwrap();
        TempDir(p)
    }

    pub fn path(&self) -> &Path {
        &self.0
    }
}

impl Drop for TempDir {
    fn drop(&mut self) {
        let _ = std::fs::remove_dir_all(&self.0);
    }
}

/// A Tool-access repository of `provider` with `config`.
pub fn repo(name: &str, provider: &str, config: &[(&str, &str)]) -> BackupRepo {
    BackupRepo::new(
        name,
        BackupRepoSpec {
            storage_provider_ref: provider.to_string(),
            access_method: Some(AccessMethod::Tool),
            volume_capacity: None,
            pv_reclaim_policy: PvReclaimPolicy::Retain,
            config: config
                .iter()
                .map(|(k, v)| (k.to_string(), v.to_string()))
                .collect(),
            credential: None,
            path_prefix: None,
            allowed_namespaces: None,
        },
    )
}

/// A `local` provider repository rooted at `path`.
pub fn local_repo(name: &str, path: &Path) -> BackupRepo {
    repo(name, "local", &[("path", &path.display().to_string())])
}

pub fn with_credential(mut r: BackupRepo, namespace: &str, name: &str) -> BackupRepo {
    r.spec.credential = Some(SecretReference {
        name: Some(name.to_string()),
        namespace: Some(namespace.to_string()),
    });
    r
}

/// A Secret given through `stringData`, as users write them.
pub fn secret(namespace: Option<&str>, name: &str, string_data: &[(&str, &str)]) -> Secret {
    Secret {
        metadata: ObjectMeta {
            name: Some(name.to_string()),
            namespace: namespace.map(str::to_string),
            ..ObjectMeta::default()
        },
        string_data: Some(
            string_data
                .iter()
                .map(|(k, v)| (k.to_string(), v.to_string()))
                .collect::<BTreeMap<_, _>>(),
        ),
        ..Secret::default()
    }
}

pub fn condition<'a>(r: &'a BackupRepo, type_: &str) -> &'a Condition {
    r.status
        .as_ref()
        .and_then(|s| s.conditions.iter().find(|c| c.type_ == type_))
        .unwrap_or_else(|| panic!("no condition {type_} in {:#?}", r.status))
}

pub fn annotation<'a>(r: &'a BackupRepo, key: &str) -> Option<&'a str> {
    r.metadata
        .annotations
        .as_ref()
        .and_then(|a| a.get(key))
        .map(String::as_str)
}

pub fn rv(r: &BackupRepo) -> u64 {
    r.metadata
        .resource_version
        .as_deref()
        .expect("resourceVersion set")
        .parse()
        .expect("numeric resourceVersion")
}

#[cfg(unix)]
pub fn mode(p: &Path) -> u32 {
    use std::os::unix::fs::PermissionsExt;
    std::fs::metadata(p)
        .unwrap_or_else(|e| panic!("{}: {e}", p.display()))
        .permissions()
        .mode()
        & 0o777
}

/// Every regular file under `dir`, relative to it, sorted.
pub fn files_under(dir: &Path) -> Vec<String> {
    fn walk(base: &Path, dir: &Path, out: &mut Vec<String>) {
        let Ok(rd) = std::fs::read_dir(dir) else {
            return;
        };
        for e in rd {
            let p = e.unwrap().path();
            if p.is_dir() {
                walk(base, &p, out);
            } else {
                out.push(p.strip_prefix(base).unwrap().display().to_string());
            }
        }
    }
    let mut out = Vec::new();
    walk(dir, dir, &mut out);
    out.sort();
    out
}

fn var(name: &str) -> Option<String> {
    std::env::var(name).ok().filter(|v| !v.is_empty())
}

/// The real S3 server (SeaweedFS) of `scripts/test-servers.sh`.
pub struct S3Env {
    pub endpoint: String,
    pub bucket: String,
    pub access_key: String,
    pub secret_key: String,
}

/// The S3 server from the environment; `None` (skip) when not configured, a panic when
/// BR_REQUIRE_SERVERS is set.
pub fn s3_env() -> Option<S3Env> {
    let env = (|| {
        Some(S3Env {
            endpoint: var("BR_S3_ENDPOINT")?,
            bucket: var("BR_S3_BUCKET")?,
            access_key: var("BR_S3_ACCESS_KEY")?,
            secret_key: var("BR_S3_SECRET_KEY")?,
        })
    })();
    if env.is_none() {
        if var("BR_REQUIRE_SERVERS").is_some() {
            panic!("the S3 server is required (BR_REQUIRE_SERVERS) but BR_S3_ENDPOINT, BR_S3_BUCKET, BR_S3_ACCESS_KEY and BR_S3_SECRET_KEY are not all set; run scripts/test-servers.sh start DIR and source DIR/env");
        }
        eprintln!("skipping: no S3 server; start one with scripts/test-servers.sh and source its env file");
    }
    env
}
