//! Per-namespace preparation (spec §2.8) and deletion (§2.9), scripted against a mocked API
//! server.
#![allow(clippy::unwrap_used, clippy::expect_used)]

mod common;

use std::sync::Arc;
use std::time::Duration;

use backuprepo_api::constants::{BACKUP_REPO_DIGEST_ANNOTATION, FINALIZER};
use backuprepo_api::BackupRepo;
use backuprepo_operator::{reconcile_repo, Action};
use common::*;
use k8s_openapi::api::core::v1::Secret;
use serde_json::{json, Value};

const BACKUPS: &str = "/apis/dataprotection.kubeblocks.io/v1alpha1/backups";
const RESTORES: &str = "/apis/dataprotection.kubeblocks.io/v1alpha1/restores";
const WAIT_SELECTOR: &str = "labelSelector=dataprotection.kubeblocks.io/backup-repo-name=r1,dataprotection.kubeblocks.io/wait-repo-preparation=true";
const REPO_SELECTOR: &str = "labelSelector=dataprotection.kubeblocks.io/backup-repo-name=r1";

fn provider_get() -> Step {
    step(
        "GET",
        format!("{SP_PATH}/local"),
        200,
        to_value(&local_provider()),
    )
}

async fn run(
    repo: &BackupRepo,
    script: Vec<Step>,
) -> (Result<Action, backuprepo_operator::Error>, Vec<Seen>) {
    let (client, task) = scripted(script);
    let res = reconcile_repo(context(client), Arc::new(repo.clone())).await;
    (res, task.await.unwrap())
}

async fn ready_repo(path: &str, edit: impl FnOnce(&mut BackupRepo)) -> BackupRepo {
    let mut repo = tool_repo(path);
    edit(&mut repo);
    let script = vec![
        provider_get(),
        step(
            "PATCH",
            format!("{REPO_PATH}/r1/status"),
            200,
            to_value(&repo),
        ),
        step("POST", EVENTS_DEFAULT, 201, Value::Null),
        step("GET", "/api/v1/secrets", 200, list("SecretList", vec![])),
        step("PATCH", format!("{REPO_PATH}/r1"), 200, to_value(&repo)),
        step("GET", BACKUPS, 200, list("BackupList", vec![])),
        step("GET", RESTORES, 200, list("RestoreList", vec![])),
    ];
    let (res, seen) = run(&repo, script).await;
    res.unwrap();
    apply_writes(&repo, &seen)
}

fn backup(ns: &str, name: &str, labels: Value, phase: &str) -> Value {
    json!({
        "apiVersion": "dataprotection.kubeblocks.io/v1alpha1", "kind": "Backup",
        "metadata": {"name": name, "namespace": ns, "uid": format!("uid-{name}"), "labels": labels},
        "spec": {"backupPolicyName": "p", "backupMethod": "m"},
        "status": {"phase": phase}
    })
}

fn waiting(ns: &str, name: &str) -> Value {
    backup(
        ns,
        name,
        json!({"dataprotection.kubeblocks.io/backup-repo-name": "r1",
               "dataprotection.kubeblocks.io/wait-repo-preparation": "true"}),
        "New",
    )
}

#[tokio::test]
async fn waiting_backup_gets_tool_config_secret_then_label_removed() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().to_str().unwrap().to_string();
    let repo = ready_repo(&path, |_| {}).await;
    let digest = repo.metadata.annotations.as_ref().unwrap()[BACKUP_REPO_DIGEST_ANNOTATION].clone();
    let script = vec![
        provider_get(),
        step(
            "GET",
            BACKUPS,
            200,
            list("BackupList", vec![waiting("ns1", "b1")]),
        )
        .query(WAIT_SELECTOR),
        step(
            "GET",
            "/api/v1/namespaces/ns1/secrets/tool-config-r1-abcdef",
            404,
            not_found("secret"),
        ),
        step("POST", "/api/v1/namespaces/ns1/secrets", 201, Value::Null),
        step(
            "PATCH",
            "/apis/dataprotection.kubeblocks.io/v1alpha1/namespaces/ns1/backups/b1",
            200,
            waiting("ns1", "b1"),
        ),
        step("GET", RESTORES, 200, list("RestoreList", vec![])).query(WAIT_SELECTOR),
    ];
    let (res, seen) = run(&repo, script).await;
    assert_eq!(res.unwrap(), Action::requeue(Duration::from_secs(1800)));

    let secret: Secret = serde_json::from_value(seen[3].body.clone()).unwrap();
    assert_eq!(
        secret.metadata.name.as_deref(),
        Some("tool-config-r1-abcdef")
    );
    assert_eq!(secret.metadata.namespace.as_deref(), Some("ns1"));
    assert_eq!(
        serde_json::to_value(&secret.metadata.labels).unwrap(),
        json!({"dataprotection.kubeblocks.io/backup-repo-name": "r1",
               "dataprotection.kubeblocks.io/is-tool-config": "true"})
    );
    assert_eq!(
        secret.metadata.annotations.as_ref().unwrap()[BACKUP_REPO_DIGEST_ANNOTATION],
        digest
    );
    assert_eq!(
        serde_json::to_value(&secret.metadata.owner_references).unwrap(),
        json!([{"apiVersion": "dataprotection.kubeblocks.io/v1alpha1", "kind": "BackupRepo",
                "name": "r1", "uid": "0123456789-uid-r1", "controller": true, "blockOwnerDeletion": true}])
    );
    let conf = String::from_utf8(secret.data.unwrap()["datasafed.conf"].0.clone()).unwrap();
    assert_eq!(
        conf.trim(),
        format!("[storage]\ntype = local\nroot = {path}")
    );
    assert_eq!(seen[4].content_type, "application/merge-patch+json");
    assert_eq!(
        seen[4].body,
        json!({"metadata": {"labels": {"dataprotection.kubeblocks.io/wait-repo-preparation": null}}})
    );
}

#[tokio::test]
async fn existing_secret_is_kept_and_failed_backups_are_skipped() {
    let dir = tempfile::tempdir().unwrap();
    let repo = ready_repo(dir.path().to_str().unwrap(), |_| {}).await;
    let failed = backup(
        "ns3",
        "b3",
        json!({"dataprotection.kubeblocks.io/backup-repo-name": "r1",
               "dataprotection.kubeblocks.io/wait-repo-preparation": "true"}),
        "Failed",
    );
    let restore = json!({
        "apiVersion": "dataprotection.kubeblocks.io/v1alpha1", "kind": "Restore",
        "metadata": {"name": "rs1", "namespace": "ns1", "labels": {
            "dataprotection.kubeblocks.io/backup-repo-name": "r1",
            "dataprotection.kubeblocks.io/wait-repo-preparation": "true"}}
    });
    let script = vec![
        provider_get(),
        step("GET", BACKUPS, 200, list("BackupList", vec![failed])),
        step(
            "GET",
            RESTORES,
            200,
            list("RestoreList", vec![restore.clone()]),
        ),
        step(
            "GET",
            "/api/v1/namespaces/ns1/secrets/tool-config-r1-abcdef",
            200,
            json!({"apiVersion":"v1","kind":"Secret","metadata":{"name":"tool-config-r1-abcdef","namespace":"ns1",
                "ownerReferences": [{"apiVersion": "dataprotection.kubeblocks.io/v1alpha1", "kind": "BackupRepo",
                    "name": "r1", "uid": "0123456789-uid-r1", "controller": true}]}}),
        ),
        step(
            "PATCH",
            "/apis/dataprotection.kubeblocks.io/v1alpha1/namespaces/ns1/restores/rs1",
            200,
            restore,
        ),
    ];
    let (res, _) = run(&repo, script).await;
    res.unwrap();
}

/// A Secret of the tool config's name that the repository does not own (planted by someone
/// who can write Secrets in the consumer's namespace) is not taken for the tool config: the
/// consumer keeps waiting, the Secret is neither used nor overwritten, and an event says why.
#[tokio::test]
async fn planted_secret_of_the_same_name_is_not_used() {
    let dir = tempfile::tempdir().unwrap();
    let repo = ready_repo(dir.path().to_str().unwrap(), |_| {}).await;
    let script = vec![
        provider_get(),
        step(
            "GET",
            BACKUPS,
            200,
            list("BackupList", vec![waiting("ns1", "b1")]),
        ),
        step(
            "GET",
            "/api/v1/namespaces/ns1/secrets/tool-config-r1-abcdef",
            200,
            json!({"apiVersion":"v1","kind":"Secret","metadata":{"name":"tool-config-r1-abcdef","namespace":"ns1",
                "labels": {"dataprotection.kubeblocks.io/backup-repo-name": "r1"}},
                "data": {"datasafed.conf": "W3N0b3JhZ2VdCnR5cGUgPSBzMwo="}}),
        ),
        step("POST", EVENTS_DEFAULT, 201, Value::Null),
        step("GET", RESTORES, 200, list("RestoreList", vec![])),
    ];
    let (res, seen) = run(&repo, script).await;
    res.unwrap();
    let ev = &seen[3].body;
    assert_eq!(ev["type"], "Warning");
    assert_eq!(ev["reason"], "ObjectNotOwned");
    let note = ev["note"].as_str().unwrap();
    assert!(
        note.contains("tool-config secret ns1/tool-config-r1-abcdef exists and is not owned by backup repository r1"),
        "{note}"
    );
}

#[tokio::test]
async fn namespace_outside_allow_list_gets_nothing_and_an_explanation() {
    let dir = tempfile::tempdir().unwrap();
    let repo = ready_repo(dir.path().to_str().unwrap(), |r| {
        r.spec.allowed_namespaces = Some(vec!["ns1".into()]);
    })
    .await;
    let script = vec![
        provider_get(),
        // With an allow-list, the owned tool-config Secrets are listed on every pass, so
        // those of a namespace taken off the list are withdrawn.
        step("GET", "/api/v1/secrets", 200, list("SecretList", vec![])),
        step(
            "GET",
            BACKUPS,
            200,
            list("BackupList", vec![waiting("ns2", "b2")]),
        )
        .query(WAIT_SELECTOR),
        step(
            "POST",
            "/apis/events.k8s.io/v1/namespaces/ns2/events",
            201,
            Value::Null,
        ),
        step("POST", EVENTS_DEFAULT, 201, Value::Null),
        step("GET", RESTORES, 200, list("RestoreList", vec![])),
    ];
    let (res, seen) = run(&repo, script).await;
    res.unwrap();
    for ev in [&seen[3].body, &seen[4].body] {
        assert_eq!(ev["type"], "Warning");
        assert_eq!(ev["reason"], "NamespaceNotAllowed");
        let note = ev["note"].as_str().unwrap();
        assert!(
            note.contains("namespace ns2 is not in spec.allowedNamespaces"),
            "{note}"
        );
        assert!(note.contains("Backup ns2/b2 keeps waiting"), "{note}");
    }
    assert_eq!(seen[3].body["regarding"]["kind"], "Backup");
    assert_eq!(seen[3].body["regarding"]["name"], "b2");
    assert_eq!(seen[4].body["regarding"]["kind"], "BackupRepo");
}

#[tokio::test]
async fn deletion_waits_for_backups_then_removes_the_finalizer() {
    let dir = tempfile::tempdir().unwrap();
    let mut repo = ready_repo(dir.path().to_str().unwrap(), |_| {}).await;
    repo.metadata.deletion_timestamp = Some(at(NOW - 5));
    repo.metadata.resource_version = Some("7".into());
    let used = backup(
        "ns1",
        "b1",
        json!({"dataprotection.kubeblocks.io/backup-repo-name": "r1"}),
        "Completed",
    );
    let script = vec![
        step("POST", EVENTS_DEFAULT, 201, Value::Null),
        step("GET", BACKUPS, 200, list("BackupList", vec![used])).query(REPO_SELECTOR),
        step(
            "PATCH",
            format!("{REPO_PATH}/r1/status"),
            200,
            to_value(&repo),
        ),
    ];
    let (res, seen) = run(&repo, script).await;
    assert_eq!(res.unwrap(), Action::requeue(Duration::from_secs(60)));
    assert_eq!(seen[0].body["reason"], "DeletingCR");
    assert_eq!(seen[0].body["note"], "Deleting backuprepo: r1");
    assert!(!seen[1].query.contains("wait-repo-preparation"));
    let status = &seen[2].body["status"];
    assert_eq!(status["phase"], "Deleting");
    let c = condition(status, "DerivedObjectsDeleted");
    assert_eq!(c["status"], "False");
    assert_eq!(c["reason"], "HaveAssociatedBackups");
    assert_eq!(
        c["message"],
        "some backups still refer to this repo (1 backup(s))"
    );
    // Other conditions are kept.
    assert_eq!(condition(status, "PreCheckPassed")["status"], "True");

    // The backup is gone (a failed one does not count): PVCs deleted (none), status, finalizer.
    let deleting = apply_writes(&repo, &seen);
    let failed = backup(
        "ns1",
        "b9",
        json!({"dataprotection.kubeblocks.io/backup-repo-name": "r1"}),
        "Failed",
    );
    let script = vec![
        step("GET", BACKUPS, 200, list("BackupList", vec![failed])),
        step(
            "GET",
            "/api/v1/persistentvolumeclaims",
            200,
            list("PersistentVolumeClaimList", vec![]),
        )
        .query(REPO_SELECTOR),
        step(
            "PATCH",
            format!("{REPO_PATH}/r1/status"),
            200,
            to_value(&repo),
        ),
        step("PATCH", format!("{REPO_PATH}/r1"), 200, to_value(&repo)),
        step("POST", EVENTS_DEFAULT, 201, Value::Null),
    ];
    let (res, seen) = run(&deleting, script).await;
    assert_eq!(res.unwrap(), Action::await_change());
    let c = condition(&seen[2].body["status"], "DerivedObjectsDeleted");
    assert_eq!(
        (c["status"].as_str(), c["reason"].as_str()),
        (Some("True"), Some("DerivedObjectsDeleted"))
    );
    assert_eq!(
        seen[3].body,
        json!({"metadata": {"finalizers": [], "resourceVersion": "7"}})
    );
    assert_eq!(seen[4].body["reason"], "DeletedCR");
    let _ = FINALIZER;
}

#[tokio::test]
async fn deletion_waits_for_residual_pvcs() {
    let dir = tempfile::tempdir().unwrap();
    let mut repo = ready_repo(dir.path().to_str().unwrap(), |_| {}).await;
    repo.metadata.deletion_timestamp = Some(at(NOW - 5));
    repo.status.as_mut().unwrap().phase = Some(backuprepo_api::BackupRepoPhase::Deleting);
    let pvc = json!({"apiVersion":"v1","kind":"PersistentVolumeClaim",
        "metadata":{"name":"pvc-r1-abcdef","namespace":"ns1",
            "labels":{"dataprotection.kubeblocks.io/backup-repo-name":"r1"},
            "ownerReferences":[{"apiVersion":"dataprotection.kubeblocks.io/v1alpha1","kind":"BackupRepo","name":"r1","uid":"0123456789-uid-r1","controller":true}]}});
    let script = vec![
        step("GET", BACKUPS, 200, list("BackupList", vec![])),
        step(
            "GET",
            "/api/v1/persistentvolumeclaims",
            200,
            list("PersistentVolumeClaimList", vec![pvc.clone()]),
        ),
        step(
            "DELETE",
            "/api/v1/namespaces/ns1/persistentvolumeclaims/pvc-r1-abcdef",
            200,
            pvc.clone(),
        ),
        step(
            "GET",
            "/api/v1/namespaces/ns1/persistentvolumeclaims/pvc-r1-abcdef",
            200,
            pvc,
        ),
        step(
            "PATCH",
            format!("{REPO_PATH}/r1/status"),
            200,
            to_value(&repo),
        ),
    ];
    let (res, seen) = run(&repo, script).await;
    assert_eq!(res.unwrap(), Action::requeue(Duration::from_secs(60)));
    assert_eq!(seen[2].body["propagationPolicy"], "Background");
    let c = condition(&seen[4].body["status"], "DerivedObjectsDeleted");
    assert_eq!(
        (c["status"].as_str(), c["reason"].as_str()),
        (Some("False"), Some("HaveResidualPVCs"))
    );
}
