#![allow(clippy::unwrap_used, clippy::expect_used)]
//! BackupRepo::validate and helpers.

use std::collections::BTreeMap;

use backuprepo_api::constants::IS_DEFAULT_REPO_ANNOTATION;
use backuprepo_api::k8s_openapi::api::core::v1::SecretReference;
use backuprepo_api::k8s_openapi::apimachinery::pkg::api::resource::Quantity;
use backuprepo_api::{AccessMethod, BackupRepo, BackupRepoSpec, FieldError, PvReclaimPolicy};

fn repo(name: &str) -> BackupRepo {
    BackupRepo::new(
        name,
        BackupRepoSpec {
            storage_provider_ref: "s3".into(),
            access_method: None,
            volume_capacity: Some(Quantity("100Gi".into())),
            pv_reclaim_policy: PvReclaimPolicy::Retain,
            config: BTreeMap::from([("bucket".into(), "b".into())]),
            credential: Some(SecretReference {
                name: Some("cred".into()),
                namespace: Some("kb-system".into()),
            }),
            path_prefix: Some("team-a/backups/".into()),
            allowed_namespaces: Some(vec!["default".into(), "db-1".into()]),
        },
    )
}

fn errors(r: &BackupRepo) -> Vec<FieldError> {
    r.validate().expect_err("expected validation errors")
}

fn only_error(r: &BackupRepo) -> FieldError {
    let mut e = errors(r);
    assert_eq!(e.len(), 1, "{e:?}");
    e.remove(0)
}

#[test]
fn valid_repo_passes() {
    repo("my-repo").validate().unwrap();
    let mut r = repo("a.b-c");
    r.spec.path_prefix = Some(String::new());
    r.spec.volume_capacity = None;
    r.spec.credential = None;
    r.spec.allowed_namespaces = None;
    r.validate().unwrap();
}

#[test]
fn bad_path_prefix() {
    let mut r = repo("my-repo");
    r.spec.path_prefix = Some("/backups//my repo".into());
    let e = only_error(&r);
    assert_eq!(e.field, "spec.pathPrefix");
    let shown = e.to_string();
    assert!(shown.starts_with("spec.pathPrefix: "), "{shown}");
    assert!(shown.contains("^([a-zA-Z0-9-_]+/?)*$"), "{shown}");
    assert!(shown.contains("\"backups/my-repo\""), "{shown}");
}

#[test]
fn bad_volume_capacity() {
    let mut r = repo("my-repo");
    for bad in ["10GB", "Gi", "1 Gi", "ten"] {
        r.spec.volume_capacity = Some(Quantity(bad.into()));
        let e = only_error(&r);
        assert_eq!(e.field, "spec.volumeCapacity");
        assert!(e.message.contains(bad), "{e}");
        assert!(e.message.contains("100Gi"), "{e}");
    }
    for non_positive in ["0", "-1Gi"] {
        r.spec.volume_capacity = Some(Quantity(non_positive.into()));
        let e = only_error(&r);
        assert!(e.message.contains("greater than zero"), "{e}");
    }
    for ok in ["1", "1.5Gi", "500M", "1e9", "2Ti"] {
        r.spec.volume_capacity = Some(Quantity(ok.into()));
        r.validate().unwrap();
    }
}

#[test]
fn bad_names() {
    let e = only_error(&repo("My_Repo"));
    assert_eq!(e.field, "metadata.name");
    assert!(e.message.contains("DNS-1123"), "{e}");
    assert!(e.message.contains("\"my-repo\""), "{e}");

    let e = only_error(&repo(""));
    assert_eq!(e.to_string(), "metadata.name: must not be empty");

    let e = only_error(&repo(&"r".repeat(64)));
    assert!(e.message.contains("63"), "{e}");

    let mut r = repo("my-repo");
    r.metadata.name = None;
    assert_eq!(only_error(&r).field, "metadata.name");
}

#[test]
fn empty_provider_ref() {
    let mut r = repo("my-repo");
    r.spec.storage_provider_ref = String::new();
    assert_eq!(only_error(&r).field, "spec.storageProviderRef");
}

#[test]
fn bad_allowed_namespaces() {
    let mut r = repo("my-repo");
    r.spec.allowed_namespaces = Some(vec!["ok".into(), "Not_OK".into(), String::new()]);
    let e = errors(&r);
    let fields: Vec<&str> = e.iter().map(|e| e.field.as_str()).collect();
    assert_eq!(
        fields,
        ["spec.allowedNamespaces[1]", "spec.allowedNamespaces[2]"]
    );
}

#[test]
fn incomplete_credential() {
    let mut r = repo("my-repo");
    r.spec.credential = Some(SecretReference::default());
    let e = errors(&r);
    let fields: Vec<&str> = e.iter().map(|e| e.field.as_str()).collect();
    assert_eq!(
        fields,
        ["spec.credential.name", "spec.credential.namespace"]
    );
    assert!(!r.uses_credential());
}

#[test]
fn all_errors_are_reported() {
    let mut r = repo("Bad Name");
    r.spec.storage_provider_ref = String::new();
    r.spec.path_prefix = Some("/x".into());
    r.spec.volume_capacity = Some(Quantity("lots".into()));
    assert_eq!(errors(&r).len(), 4);
}

#[test]
fn helpers() {
    let mut r = repo("my-repo");
    assert_eq!(r.access_method(), AccessMethod::Mount);
    r.spec.access_method = Some(AccessMethod::Tool);
    assert_eq!(r.access_method(), AccessMethod::Tool);
    assert!(!r.is_default());
    r.metadata.annotations = Some(BTreeMap::from([(
        IS_DEFAULT_REPO_ANNOTATION.to_owned(),
        "false".to_owned(),
    )]));
    assert!(!r.is_default());
    r.metadata.annotations = Some(BTreeMap::from([(
        IS_DEFAULT_REPO_ANNOTATION.to_owned(),
        "true".to_owned(),
    )]));
    assert!(r.is_default());
    assert!(r.uses_credential());
    assert!(r.allows_namespace("db-1"));
    assert!(!r.allows_namespace("other"));
    r.spec.allowed_namespaces = None;
    assert!(r.allows_namespace("other"));
}
