//! BackupRepo reconcile for Tool access, scripted against a mocked API server: every request
//! (verb, path, selector) and every body written is asserted. The probe is real: the `local`
//! provider on a temporary directory.
#![allow(clippy::unwrap_used, clippy::expect_used)]

mod common;

use std::sync::Arc;
use std::time::Duration;

use backuprepo_api::constants::{
    BACKUP_REPO_DIGEST_ANNOTATION, CHECK_REQUESTED_ANNOTATION, FINALIZER,
    NEED_UPDATE_TOOL_CONFIG_ANNOTATION,
};
use backuprepo_api::BackupRepo;
use backuprepo_operator::{reconcile_repo, Action, ErrorClass};
use common::*;
use k8s_openapi::ByteString;
use kube::ResourceExt;
use serde_json::{json, Value};

const BACKUPS: &str = "/apis/dataprotection.kubeblocks.io/v1alpha1/backups";
const RESTORES: &str = "/apis/dataprotection.kubeblocks.io/v1alpha1/restores";
const WAIT_SELECTOR: &str = "labelSelector=dataprotection.kubeblocks.io/backup-repo-name=r1,dataprotection.kubeblocks.io/wait-repo-preparation=true";
const TOOL_SECRETS_SELECTOR: &str = "labelSelector=dataprotection.kubeblocks.io/backup-repo-name=r1,dataprotection.kubeblocks.io/is-tool-config=true";

fn provider_get() -> Step {
    step(
        "GET",
        format!("{SP_PATH}/local"),
        200,
        to_value(&local_provider()),
    )
}

fn repo_resp(repo: &BackupRepo) -> Value {
    to_value(repo)
}

/// The requests of a Ready repository's consumer pass with no consumer waiting.
fn no_consumers() -> Vec<Step> {
    vec![
        step("GET", BACKUPS, 200, list("BackupList", vec![])).query(WAIT_SELECTOR),
        step("GET", RESTORES, 200, list("RestoreList", vec![])).query(WAIT_SELECTOR),
    ]
}

async fn run(
    repo: &BackupRepo,
    script: Vec<Step>,
) -> (Result<Action, backuprepo_operator::Error>, Vec<Seen>) {
    let (client, task) = scripted(script);
    let ctx = context(client);
    let res = reconcile_repo(ctx, Arc::new(repo.clone())).await;
    (res, task.await.unwrap())
}

/// A Ready repository, as the controller leaves it after its first pass.
async fn ready_repo(path: &str, edit: impl FnOnce(&mut BackupRepo)) -> BackupRepo {
    let mut repo = tool_repo(path);
    edit(&mut repo);
    let mut script = vec![
        provider_get(),
        step(
            "PATCH",
            format!("{REPO_PATH}/r1/status"),
            200,
            repo_resp(&repo),
        ),
        step("POST", EVENTS_DEFAULT, 201, Value::Null),
        step("GET", "/api/v1/secrets", 200, list("SecretList", vec![])),
        step("PATCH", format!("{REPO_PATH}/r1"), 200, repo_resp(&repo)),
    ];
    script.extend(no_consumers());
    let (res, seen) = run(&repo, script).await;
    res.unwrap();
    let ready = apply_writes(&repo, &seen);
    assert_eq!(ready.phase().unwrap().as_str(), "Ready");
    ready
}

fn digest_of(repo: &BackupRepo) -> String {
    repo.metadata.annotations.as_ref().unwrap()[BACKUP_REPO_DIGEST_ANNOTATION].clone()
}

#[tokio::test]
async fn new_tool_repo_gets_finalizer_probe_status_and_digest() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().to_str().unwrap().to_string();
    let mut repo = tool_repo(&path);
    repo.metadata.finalizers = None;
    let mut script = vec![
        step("PATCH", format!("{REPO_PATH}/r1"), 200, repo_resp(&repo)),
        provider_get(),
        step(
            "PATCH",
            format!("{REPO_PATH}/r1/status"),
            200,
            repo_resp(&repo),
        ),
        step("POST", EVENTS_DEFAULT, 201, Value::Null),
        step("GET", "/api/v1/secrets", 200, list("SecretList", vec![]))
            .query(TOOL_SECRETS_SELECTOR),
        step("PATCH", format!("{REPO_PATH}/r1"), 200, repo_resp(&repo)),
    ];
    script.extend(no_consumers());
    let (res, seen) = run(&repo, script).await;
    // The next check of a Ready repository is due after the re-check interval (30 min).
    assert_eq!(res.unwrap(), Action::requeue(Duration::from_secs(1800)));

    // Finalizer: merge patch guarded by the resourceVersion.
    assert_eq!(seen[0].content_type, "application/merge-patch+json");
    assert_eq!(
        seen[0].body,
        json!({"metadata": {"finalizers": [FINALIZER], "resourceVersion": "1"}})
    );
    // Status: Ready, every condition True, names allocated, each probe operation recorded.
    let status = &seen[2].body["status"];
    assert_eq!(seen[2].content_type, "application/merge-patch+json");
    assert_eq!(status["phase"], "Ready");
    for (t, r) in [
        ("StorageProviderReady", "StorageProviderReady"),
        ("ParametersChecked", "ParametersChecked"),
        // Tool access makes no StorageClass or CSI secret.
        ("StorageClassCreated", "Skipped"),
        ("PVCTemplateChecked", "Skipped"),
        ("PreCheckPassed", "PreCheckPassed"),
    ] {
        let c = condition(status, t);
        assert_eq!(
            (c["status"].as_str(), c["reason"].as_str()),
            (Some("True"), Some(r)),
            "{c:#}"
        );
        assert_eq!(c["lastTransitionTime"], "2023-11-14T22:13:20Z");
        assert_eq!(c["observedGeneration"], 1);
    }
    assert_eq!(status["toolConfigSecretName"], "tool-config-r1-abcdef");
    assert_eq!(status["backupPVCName"], "pvc-r1-abcdef");
    assert_eq!(status["isDefault"], false);
    assert_eq!(status["observedGeneration"], 1);
    assert_eq!(status["lastCheckTime"], "2023-11-14T22:13:20Z");
    let checks = status["checks"].as_array().unwrap();
    assert!(checks.len() >= 5, "{checks:#?}");
    assert!(
        checks.iter().all(|c| c["result"] != "Failed"),
        "{checks:#?}"
    );
    assert!(checks
        .iter()
        .any(|c| c["operation"] == "put" && c["result"] == "Passed"));
    // Event with the reason.
    assert_eq!(seen[3].body["reason"], "PreCheckPassed");
    assert_eq!(seen[3].body["type"], "Normal");
    assert_eq!(seen[3].body["regarding"]["kind"], "BackupRepo");
    // Annotations after the status: the digest, and tool configs already up to date.
    let ann = seen[5].body["metadata"]["annotations"].as_object().unwrap();
    assert_eq!(ann.len(), 2);
    assert_eq!(
        ann[BACKUP_REPO_DIGEST_ANNOTATION].as_str().unwrap().len(),
        32
    );
    assert_eq!(ann[NEED_UPDATE_TOOL_CONFIG_ANNOTATION], "false");
    // The probe cleaned up after itself: no file is left.
    fn files(d: &std::path::Path) -> usize {
        std::fs::read_dir(d)
            .unwrap()
            .map(|e| e.unwrap().path())
            .map(|p| if p.is_dir() { files(&p) } else { 1 })
            .sum()
    }
    assert_eq!(files(dir.path()), 0);
}

#[tokio::test]
async fn ready_repo_reconciled_again_writes_nothing() {
    let dir = tempfile::tempdir().unwrap();
    let repo = ready_repo(dir.path().to_str().unwrap(), |_| {}).await;
    let mut script = vec![provider_get()];
    script.extend(no_consumers());
    let (res, _) = run(&repo, script).await;
    assert_eq!(res.unwrap(), Action::requeue(Duration::from_secs(1800)));
}

#[tokio::test]
async fn requested_check_probes_now_and_is_answered() {
    let dir = tempfile::tempdir().unwrap();
    let mut repo = ready_repo(dir.path().to_str().unwrap(), |_| {}).await;
    // Checked 10 s ago: no re-check is due, only the request makes one.
    repo.status.as_mut().unwrap().last_check_time = Some(at(NOW - 10));
    repo.metadata
        .annotations
        .get_or_insert_with(Default::default)
        .insert(
            CHECK_REQUESTED_ANNOTATION.into(),
            "2023-11-14T22:13:19Z".into(),
        );
    let mut script = vec![
        provider_get(),
        step(
            "PATCH",
            format!("{REPO_PATH}/r1/status"),
            200,
            repo_resp(&repo),
        ),
        step("PATCH", format!("{REPO_PATH}/r1"), 200, repo_resp(&repo)),
    ];
    script.extend(no_consumers());
    let (res, seen) = run(&repo, script).await;
    assert_eq!(res.unwrap(), Action::requeue(Duration::from_secs(1800)));
    assert_eq!(
        seen[1].body["status"]["lastCheckTime"],
        "2023-11-14T22:13:20Z"
    );
    // The request is answered: its annotation goes, nothing else changes.
    assert_eq!(
        seen[2].body,
        json!({"metadata": {"annotations": {CHECK_REQUESTED_ANNOTATION: null}}})
    );
    let after = apply_writes(&repo, &seen);
    assert!(!after.annotations().contains_key(CHECK_REQUESTED_ANNOTATION));

    // A repository that cannot be checked (provider gone) answers too, so nobody waits.
    let script = vec![
        step("GET", format!("{SP_PATH}/local"), 404, not_found("local")),
        step(
            "PATCH",
            format!("{REPO_PATH}/r1/status"),
            200,
            repo_resp(&repo),
        ),
        step("PATCH", format!("{REPO_PATH}/r1"), 200, repo_resp(&repo)),
    ];
    let (_, seen) = run(&repo, script).await;
    assert_eq!(seen[1].body["status"]["phase"], "Failed");
    assert_eq!(
        seen[2].body["metadata"]["annotations"][CHECK_REQUESTED_ANNOTATION],
        Value::Null
    );
    assert!(seen[2].body["metadata"]["annotations"]
        .as_object()
        .unwrap()
        .contains_key(CHECK_REQUESTED_ANNOTATION));
}

#[tokio::test]
async fn provider_missing_fails_and_waits_for_a_change() {
    let repo = tool_repo("/tmp/x");
    let script = vec![
        step(
            "GET",
            format!("{SP_PATH}/local"),
            404,
            not_found("storageproviders \"local\""),
        ),
        step(
            "PATCH",
            format!("{REPO_PATH}/r1/status"),
            200,
            repo_resp(&repo),
        ),
    ];
    let (res, seen) = run(&repo, script).await;
    assert_eq!(res.unwrap(), Action::await_change());
    let status = &seen[1].body["status"];
    assert_eq!(status["phase"], "Failed");
    let c = condition(status, "StorageProviderReady");
    assert_eq!(c["status"], "False");
    assert_eq!(c["reason"], "StorageProviderNotFound");
    assert!(c["message"]
        .as_str()
        .unwrap()
        .contains("\"local\" not found"));
    assert_eq!(status["conditions"].as_array().unwrap().len(), 1);
}

#[tokio::test]
async fn provider_not_supporting_tool_is_invalid() {
    let repo = tool_repo("/tmp/x");
    let mut p = local_provider();
    p.spec.datasafed_config_template = None;
    p.spec.storage_class_template = Some("x".into());
    let script = vec![
        step("GET", format!("{SP_PATH}/local"), 200, to_value(&p)),
        step(
            "PATCH",
            format!("{REPO_PATH}/r1/status"),
            200,
            repo_resp(&repo),
        ),
    ];
    let (res, seen) = run(&repo, script).await;
    assert_eq!(res.unwrap(), Action::await_change());
    let c = condition(&seen[1].body["status"], "StorageProviderReady");
    assert_eq!(c["reason"], "InvalidStorageProvider");
    let m = c["message"].as_str().unwrap();
    assert!(
        m.starts_with("DatasafedConfigTemplate is empty: ")
            && m.ends_with("set spec.accessMethod: Mount"),
        "{m}"
    );
}

#[tokio::test]
async fn missing_credential_secret() {
    let mut repo = tool_repo("/tmp/x");
    repo.spec.credential = Some(k8s_openapi::api::core::v1::SecretReference {
        name: Some("creds".into()),
        namespace: Some("ns0".into()),
    });
    let script = vec![
        provider_get(),
        step(
            "GET",
            "/api/v1/namespaces/ns0/secrets/creds",
            404,
            not_found("secrets \"creds\""),
        ),
        step(
            "PATCH",
            format!("{REPO_PATH}/r1/status"),
            200,
            repo_resp(&repo),
        ),
    ];
    let (res, seen) = run(&repo, script).await;
    assert_eq!(res.unwrap(), Action::await_change());
    let status = &seen[2].body["status"];
    assert_eq!(status["phase"], "Failed");
    let c = condition(status, "ParametersChecked");
    assert_eq!(c["status"], "False");
    assert_eq!(c["reason"], "CredentialSecretNotFound");
    assert!(c["message"].as_str().unwrap().contains("ns0/creds"));
}

#[tokio::test]
async fn bad_parameters() {
    let repo = tool_repo("relative/path");
    let script = vec![
        provider_get(),
        step(
            "PATCH",
            format!("{REPO_PATH}/r1/status"),
            200,
            repo_resp(&repo),
        ),
    ];
    let (res, seen) = run(&repo, script).await;
    assert_eq!(res.unwrap(), Action::await_change());
    let c = condition(&seen[1].body["status"], "ParametersChecked");
    assert_eq!(c["status"], "False");
    assert_eq!(c["reason"], "InvalidParameters");
    assert!(c["message"].as_str().unwrap().contains("path"), "{c:#}");
}

#[tokio::test]
async fn server_error_is_transient() {
    let repo = tool_repo("/tmp/x");
    let script = vec![step(
        "GET",
        format!("{SP_PATH}/local"),
        503,
        json!({"kind":"Status","apiVersion":"v1","status":"Failure","message":"unavailable","reason":"ServiceUnavailable","code":503}),
    )];
    let (res, _) = run(&repo, script).await;
    let err = res.unwrap_err();
    assert_eq!(err.class(), ErrorClass::Transient);
    assert!(
        err.to_string().contains("get storage provider local"),
        "{err}"
    );
}

#[tokio::test]
async fn probe_failure_then_recovery() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("not-yet").to_str().unwrap().to_string();
    let repo = tool_repo(&path);
    let script = vec![
        provider_get(),
        step(
            "PATCH",
            format!("{REPO_PATH}/r1/status"),
            200,
            repo_resp(&repo),
        ),
        step("POST", EVENTS_DEFAULT, 201, Value::Null),
        step("PATCH", format!("{REPO_PATH}/r1"), 200, repo_resp(&repo)),
    ];
    let (res, seen) = run(&repo, script).await;
    // A failed check is retried every minute (so it recovers by itself).
    assert_eq!(res.unwrap(), Action::requeue(Duration::from_secs(60)));
    let status = &seen[1].body["status"];
    assert_eq!(status["phase"], "Failed");
    let c = condition(status, "PreCheckPassed");
    assert_eq!(c["status"], "False");
    assert_eq!(c["reason"], "PreCheckFailed");
    let msg = c["message"].as_str().unwrap();
    assert!(msg.contains("not-yet"), "{msg}");
    assert!(status["checks"]
        .as_array()
        .unwrap()
        .iter()
        .any(|c| c["result"] == "Failed"));
    assert_eq!(seen[2].body["type"], "Warning");
    assert_eq!(seen[2].body["reason"], "PreCheckFailed");
    // Not Ready: tool configs wait for a config that passes.
    assert_eq!(
        seen[3].body["metadata"]["annotations"][NEED_UPDATE_TOOL_CONFIG_ANNOTATION],
        "true"
    );
    let failed = apply_writes(&repo, &seen);
    let digest = digest_of(&failed);

    // Within the minute: nothing is written, the retry is scheduled for the remainder.
    // (The stored check time is NOW; the clock is fixed at NOW.)
    let (res, _) = run(&failed, vec![provider_get()]).await;
    assert_eq!(res.unwrap(), Action::requeue(Duration::from_secs(60)));

    // The directory appears; a minute later the check passes, and the tool-config Secret that
    // a consumer got earlier (old digest) is re-rendered.
    std::fs::create_dir(&path).unwrap();
    let mut failed = failed;
    failed.status.as_mut().unwrap().last_check_time = Some(at(NOW - 61));
    let old_secret = json!({
        "apiVersion": "v1", "kind": "Secret",
        "metadata": {"name": "tool-config-r1-abcdef", "namespace": "ns1",
                     "annotations": {BACKUP_REPO_DIGEST_ANNOTATION: "stale"},
                     // Made by the controller: owned by the repository.
                     "ownerReferences": [{"apiVersion": "dataprotection.kubeblocks.io/v1alpha1",
                         "kind": "BackupRepo", "name": "r1", "uid": "0123456789-uid-r1",
                         "controller": true}]},
        "data": {"datasafed.conf": "b2xk"}
    });
    let mut script = vec![
        provider_get(),
        step(
            "PATCH",
            format!("{REPO_PATH}/r1/status"),
            200,
            repo_resp(&failed),
        ),
        step("POST", EVENTS_DEFAULT, 201, Value::Null),
        step(
            "GET",
            "/api/v1/secrets",
            200,
            list("SecretList", vec![old_secret.clone()]),
        )
        .query(TOOL_SECRETS_SELECTOR),
        step(
            "PATCH",
            "/api/v1/namespaces/ns1/secrets/tool-config-r1-abcdef",
            200,
            old_secret,
        ),
        step("PATCH", format!("{REPO_PATH}/r1"), 200, repo_resp(&failed)),
    ];
    script.extend(no_consumers());
    let (res, seen) = run(&failed, script).await;
    assert_eq!(res.unwrap(), Action::requeue(Duration::from_secs(1800)));
    let status = &seen[1].body["status"];
    assert_eq!(status["phase"], "Ready");
    let c = condition(status, "PreCheckPassed");
    assert_eq!(
        (c["status"].as_str(), c["message"].as_str()),
        (Some("True"), Some(""))
    );
    assert_eq!(c["lastTransitionTime"], "2023-11-14T22:13:20Z");
    assert_eq!(seen[2].body["reason"], "PreCheckPassed");
    let secret_patch = &seen[4].body;
    assert_eq!(
        secret_patch["metadata"]["annotations"][BACKUP_REPO_DIGEST_ANNOTATION],
        digest.as_str()
    );
    let data: ByteString =
        serde_json::from_value(secret_patch["data"]["datasafed.conf"].clone()).unwrap();
    let text = String::from_utf8(data.0).unwrap();
    assert!(
        text.contains("type = local") && text.contains(&path),
        "{text}"
    );
    // Only the flag changes: the digest is the same.
    assert_eq!(
        seen[5].body,
        json!({"metadata": {"annotations": {NEED_UPDATE_TOOL_CONFIG_ANNOTATION: "false"}}})
    );
}

#[tokio::test]
async fn credential_change_changes_digest_and_probes_again() {
    let dir = tempfile::tempdir().unwrap();
    let dir2 = tempfile::tempdir().unwrap();
    let path2 = dir2.path().to_str().unwrap().to_string();
    // The repository takes its path from the credential Secret (its data become parameters).
    let cred = |repo: &mut BackupRepo| {
        repo.spec.config.clear();
        repo.spec.credential = Some(k8s_openapi::api::core::v1::SecretReference {
            name: Some("creds".into()),
            namespace: Some("ns0".into()),
        });
    };
    let secret = |p: &str| {
        json!({"apiVersion":"v1","kind":"Secret","metadata":{"name":"creds","namespace":"ns0"},
               "data":{"path": to_value(&ByteString(p.as_bytes().to_vec()))}})
    };
    let path1 = dir.path().to_str().unwrap().to_string();
    let mut repo = tool_repo(&path1);
    cred(&mut repo);
    let mut script = vec![
        provider_get(),
        step(
            "GET",
            "/api/v1/namespaces/ns0/secrets/creds",
            200,
            secret(&path1),
        ),
        step(
            "PATCH",
            format!("{REPO_PATH}/r1/status"),
            200,
            repo_resp(&repo),
        ),
        step("POST", EVENTS_DEFAULT, 201, Value::Null),
        step("GET", "/api/v1/secrets", 200, list("SecretList", vec![])),
        step("PATCH", format!("{REPO_PATH}/r1"), 200, repo_resp(&repo)),
    ];
    script.extend(no_consumers());
    let (res, seen) = run(&repo, script).await;
    res.unwrap();
    let ready = apply_writes(&repo, &seen);
    let digest1 = digest_of(&ready);

    // Same Secret: nothing to do.
    let mut script = vec![
        provider_get(),
        step(
            "GET",
            "/api/v1/namespaces/ns0/secrets/creds",
            200,
            secret(&path1),
        ),
    ];
    script.extend(no_consumers());
    let (res, _) = run(&ready, script).await;
    res.unwrap();

    // The Secret changes: new digest, a new probe (against the new directory), status with
    // the new check time, annotations with the new digest.
    let mut ready = ready;
    ready.status.as_mut().unwrap().last_check_time = Some(at(NOW - 10));
    let mut script = vec![
        provider_get(),
        step(
            "GET",
            "/api/v1/namespaces/ns0/secrets/creds",
            200,
            secret(&path2),
        ),
        step(
            "PATCH",
            format!("{REPO_PATH}/r1/status"),
            200,
            repo_resp(&ready),
        ),
        step("GET", "/api/v1/secrets", 200, list("SecretList", vec![])),
        step("PATCH", format!("{REPO_PATH}/r1"), 200, repo_resp(&ready)),
    ];
    script.extend(no_consumers());
    let (res, seen) = run(&ready, script).await;
    res.unwrap();
    let status = &seen[2].body["status"];
    assert_eq!(status["phase"], "Ready");
    assert_eq!(status["lastCheckTime"], "2023-11-14T22:13:20Z");
    let ann = &seen[4].body["metadata"]["annotations"];
    let digest2 = ann[BACKUP_REPO_DIGEST_ANNOTATION].as_str().unwrap();
    assert_ne!(digest2, digest1);
    // The tool configs were re-rendered in the same pass: the flag stays "false".
    assert_eq!(ann.as_object().unwrap().len(), 1, "{ann:#}");
}
