//! BackupRepo reconcile for Mount access, scripted against a mocked API server: CSI secret,
//! StorageClass (create-only), the pre-check PVC and Job, and a failed Job's logs gathered
//! into the condition.
#![allow(clippy::unwrap_used, clippy::expect_used)]

mod common;

use std::sync::Arc;
use std::time::Duration;

use backuprepo_api::constants::{BACKUP_REPO_DIGEST_ANNOTATION, FINALIZER};
use backuprepo_api::{BackupRepo, StorageProvider};
use backuprepo_operator::{reconcile_repo, Action};
use common::*;
use k8s_openapi::api::batch::v1::Job;
use k8s_openapi::api::core::v1::{PersistentVolumeClaim, Secret};
use k8s_openapi::api::storage::v1::StorageClass;
use serde_json::{json, Value};

const NS: &str = "kb-system";
const PRE: &str = "pre-check-01234567-r1";

fn provider() -> StorageProvider {
    serde_json::from_value(json!({
        "apiVersion": "dataprotection.kubeblocks.io/v1alpha1", "kind": "StorageProvider",
        "metadata": {"name": "csi-x"},
        "spec": {
            "csiDriverName": "csi.example.com",
            "csiDriverSecretTemplate": "bucket: {{ index .Parameters \"bucket\" }}\n",
            "storageClassTemplate": "provisioner: csi.example.com\nparameters:\n  bucket: {{ index .Parameters \"bucket\" }}\n  csi.storage.k8s.io/node-publish-secret-name: {{ .CSIDriverSecretRef.Name }}\n  csi.storage.k8s.io/node-publish-secret-namespace: {{ .CSIDriverSecretRef.Namespace }}\n",
            "parametersSchema": {"openAPIV3Schema": {"type": "object",
                "properties": {"bucket": {"type": "string"}}, "required": ["bucket"]}}
        },
        "status": {"phase": "Ready", "conditions": [{"type": "CSIDriverInstalled", "status": "True",
            "reason": "CSIDriverObjectFound", "message": "", "lastTransitionTime": "2023-01-01T00:00:00Z"}]}
    }))
    .unwrap()
}

fn mount_repo() -> BackupRepo {
    serde_json::from_value(json!({
        "apiVersion": "dataprotection.kubeblocks.io/v1alpha1", "kind": "BackupRepo",
        "metadata": {"name": "r1", "uid": "0123456789-uid-r1", "resourceVersion": "1", "generation": 1,
                     "finalizers": [FINALIZER]},
        "spec": {"storageProviderRef": "csi-x", "accessMethod": "Mount", "pvReclaimPolicy": "Retain",
                 "volumeCapacity": "10Gi", "config": {"bucket": "b1"}}
    }))
    .unwrap()
}

async fn run(
    repo: &BackupRepo,
    script: Vec<Step>,
) -> (Result<Action, backuprepo_operator::Error>, Vec<Seen>) {
    let (client, task) = scripted(script);
    let res = reconcile_repo(context(client), Arc::new(repo.clone())).await;
    (res, task.await.unwrap())
}

#[tokio::test]
async fn mount_repo_prepares_storage_runs_pre_check_and_reports_job_logs() {
    let repo = mount_repo();
    let sp = format!("{SP_PATH}/csi-x");
    let script = vec![
        step("GET", &sp, 200, to_value(&provider())),
        step(
            "GET",
            format!("/api/v1/namespaces/{NS}/secrets/secret-r1-abcdef"),
            404,
            not_found("secret"),
        ),
        step(
            "POST",
            format!("/api/v1/namespaces/{NS}/secrets"),
            201,
            Value::Null,
        ),
        step(
            "GET",
            "/apis/storage.k8s.io/v1/storageclasses/sc-r1-abcdef",
            404,
            not_found("sc"),
        ),
        step(
            "POST",
            "/apis/storage.k8s.io/v1/storageclasses",
            201,
            Value::Null,
        ),
        step(
            "GET",
            format!("/apis/batch/v1/namespaces/{NS}/jobs/{PRE}"),
            404,
            not_found("job"),
        ),
        step(
            "GET",
            format!("/api/v1/namespaces/{NS}/persistentvolumeclaims/{PRE}"),
            404,
            not_found("pvc"),
        ),
        step(
            "POST",
            format!("/api/v1/namespaces/{NS}/persistentvolumeclaims"),
            201,
            Value::Null,
        ),
        step(
            "POST",
            format!("/apis/batch/v1/namespaces/{NS}/jobs"),
            201,
            Value::Null,
        ),
        step(
            "PATCH",
            format!("{REPO_PATH}/r1/status"),
            200,
            to_value(&repo),
        ),
        step("PATCH", format!("{REPO_PATH}/r1"), 200, to_value(&repo)),
    ];
    let (res, seen) = run(&repo, script).await;
    // The Job watch wakes the repository when the Job ends; a minute is the safety net.
    assert_eq!(res.unwrap(), Action::requeue(Duration::from_secs(60)));

    let owner = json!([{"apiVersion": "dataprotection.kubeblocks.io/v1alpha1", "kind": "BackupRepo",
        "name": "r1", "uid": "0123456789-uid-r1", "controller": true, "blockOwnerDeletion": true}]);
    let csi: Secret = serde_json::from_value(seen[2].body.clone()).unwrap();
    assert_eq!(csi.data.unwrap()["bucket"].0, b"b1");
    assert_eq!(to_value(&csi.metadata.owner_references), owner);
    let digest = csi.metadata.annotations.unwrap()[BACKUP_REPO_DIGEST_ANNOTATION].clone();

    let sc: StorageClass = serde_json::from_value(seen[4].body.clone()).unwrap();
    assert_eq!(sc.metadata.name.as_deref(), Some("sc-r1-abcdef"));
    assert_eq!(sc.provisioner, "csi.example.com");
    assert_eq!(sc.volume_binding_mode.as_deref(), Some("Immediate"));
    assert_eq!(sc.reclaim_policy.as_deref(), Some("Retain"));
    let params = sc.parameters.unwrap();
    assert_eq!(
        params["csi.storage.k8s.io/node-publish-secret-name"],
        "secret-r1-abcdef"
    );
    assert_eq!(
        params["csi.storage.k8s.io/node-publish-secret-namespace"],
        NS
    );
    assert_eq!(
        to_value(&sc.metadata.labels),
        json!({"dataprotection.kubeblocks.io/backup-repo-name": "r1"})
    );

    let pvc: PersistentVolumeClaim = serde_json::from_value(seen[7].body.clone()).unwrap();
    let spec = pvc.spec.unwrap();
    assert_eq!(spec.storage_class_name.as_deref(), Some("sc-r1-abcdef"));
    assert_eq!(
        spec.access_modes.unwrap(),
        vec!["ReadWriteMany".to_string()]
    );
    assert_eq!(
        spec.resources.unwrap().requests.unwrap()["storage"].0,
        "10Gi"
    );

    let job: Job = serde_json::from_value(seen[8].body.clone()).unwrap();
    assert_eq!(job.metadata.name.as_deref(), Some(PRE));
    let jspec = job.spec.unwrap();
    assert_eq!(jspec.backoff_limit, Some(2));
    let pod = jspec.template.spec.unwrap();
    assert_eq!(pod.restart_policy.as_deref(), Some("Never"));
    assert_eq!(pod.containers[0].name, "pre-check");
    assert_eq!(
        pod.volumes.unwrap()[0]
            .persistent_volume_claim
            .as_ref()
            .unwrap()
            .claim_name,
        PRE
    );

    let status = &seen[9].body["status"];
    assert_eq!(status["phase"], "PreChecking");
    assert_eq!(status["generatedStorageClassName"], "sc-r1-abcdef");
    assert_eq!(
        status["generatedCSIDriverSecret"],
        json!({"name": "secret-r1-abcdef", "namespace": NS})
    );
    assert_eq!(condition(status, "PreCheckPassed")["status"], "Unknown");
    assert_eq!(
        seen[10].body["metadata"]["annotations"][BACKUP_REPO_DIGEST_ANNOTATION],
        digest.as_str()
    );

    // The Job failed: its pod's log goes into the condition; the pre-check objects are deleted.
    let checking = apply_writes(&repo, &seen);
    let mut failed_job = job_with_digest(&digest);
    failed_job["status"] = json!({"conditions": [{"type": "Failed", "status": "True",
        "reason": "BackoffLimitExceeded", "message": "Job has reached the specified backoff limit"}]});
    failed_job["metadata"]["uid"] = json!("uid-job");
    let csi_existing = json!({"apiVersion":"v1","kind":"Secret","metadata":{"name":"secret-r1-abcdef","namespace":NS,
        "annotations":{BACKUP_REPO_DIGEST_ANNOTATION: digest},
        "ownerReferences":[{"apiVersion":"dataprotection.kubeblocks.io/v1alpha1","kind":"BackupRepo",
            "name":"r1","uid":"0123456789-uid-r1","controller":true}]}});
    let pods = list(
        "PodList",
        vec![
            json!({"apiVersion":"v1","kind":"Pod","metadata":{"name":"p-old","namespace":NS,"creationTimestamp":"2023-11-14T22:00:00Z"},"status":{"phase":"Failed"}}),
            json!({"apiVersion":"v1","kind":"Pod","metadata":{"name":"p-new","namespace":NS,"uid":"uid-p-new","creationTimestamp":"2023-11-14T22:05:00Z"},"status":{"phase":"Failed"}}),
        ],
    );
    let script = vec![
        step("GET", &sp, 200, to_value(&provider())),
        step(
            "GET",
            format!("/api/v1/namespaces/{NS}/secrets/secret-r1-abcdef"),
            200,
            csi_existing,
        ),
        step(
            "GET",
            "/apis/storage.k8s.io/v1/storageclasses/sc-r1-abcdef",
            200,
            seen[4].body.clone(),
        ),
        step(
            "GET",
            format!("/apis/batch/v1/namespaces/{NS}/jobs/{PRE}"),
            200,
            failed_job,
        ),
        step("GET", format!("/api/v1/namespaces/{NS}/pods"), 200, pods)
            .query(&format!("labelSelector=job-name={PRE}")),
        step(
            "GET",
            format!("/api/v1/namespaces/{NS}/pods/p-new/log"),
            200,
            Value::String(
                "+ echo pre-check\nsh: can't create /backup/precheck.txt: Permission denied\n"
                    .into(),
            ),
        )
        .query("container=pre-check")
        .query("limitBytes=4096"),
        // Then the events of the newest pod, the PVC and the Job.
        step(
            "GET",
            format!("/api/v1/namespaces/{NS}/persistentvolumeclaims/{PRE}"),
            200,
            json!({"apiVersion":"v1","kind":"PersistentVolumeClaim",
                   "metadata":{"name":PRE,"namespace":NS,"uid":"uid-pvc"}}),
        ),
        step("GET", format!("/api/v1/namespaces/{NS}/events"), 200, list("EventList", vec![
            json!({"metadata":{"name":"e1","namespace":NS},"involvedObject":{"kind":"Pod","name":"p-new"},
                   "type":"Warning","reason":"FailedMount","message":"MountVolume.SetUp failed for volume \"pvc\"",
                   "lastTimestamp":"2023-11-14T22:12:20Z","source":{"component":"kubelet"}}),
        ]))
        .query("fieldSelector=involvedObject.uid=uid-p-new"),
        step("GET", format!("/api/v1/namespaces/{NS}/events"), 200, list("EventList", vec![]))
            .query("fieldSelector=involvedObject.uid=uid-pvc"),
        step("GET", format!("/api/v1/namespaces/{NS}/events"), 200, list("EventList", vec![
            json!({"metadata":{"name":"e2","namespace":NS},"involvedObject":{"kind":"Job","name":PRE},
                   "type":"Normal","reason":"SuccessfulCreate","message":"Created pod: p-new",
                   "lastTimestamp":"2023-11-14T22:05:00Z","source":{"component":"job-controller"}}),
        ]))
        .query("fieldSelector=involvedObject.uid=uid-job"),
        step(
            "PATCH",
            format!("{REPO_PATH}/r1/status"),
            200,
            to_value(&repo),
        ),
        step("POST", EVENTS_DEFAULT, 201, Value::Null),
        step(
            "DELETE",
            format!("/apis/batch/v1/namespaces/{NS}/jobs/{PRE}"),
            200,
            json!({"kind":"Status","apiVersion":"v1","status":"Success"}),
        ),
        step(
            "DELETE",
            format!("/api/v1/namespaces/{NS}/persistentvolumeclaims/{PRE}"),
            200,
            json!({"kind":"Status","apiVersion":"v1","status":"Success"}),
        ),
    ];
    let (res, seen2) = run(&checking, script).await;
    assert_eq!(res.unwrap(), Action::requeue(Duration::from_secs(60)));
    let status = &seen2[10].body["status"];
    assert_eq!(status["phase"], "Failed");
    let c = condition(status, "PreCheckPassed");
    assert_eq!(
        (c["status"].as_str(), c["reason"].as_str()),
        (Some("False"), Some("PreCheckFailed"))
    );
    assert_eq!(
        c["message"],
        "Pre-check job failed, information collected for diagnosis.\n\n\
         Job failure message: BackoffLimitExceeded:Job has reached the specified backoff limit\n\n\
         Logs from the pre-check job:\n  + echo pre-check\n  sh: can't create /backup/precheck.txt: Permission denied\n\n\
         Events from Pod/kb-system/p-new:\n  \
         Type     Reason       Age   From     Message\n  \
         ----     ------       ----  ----     -------\n  \
         Warning  FailedMount  60s   kubelet  MountVolume.SetUp failed for volume \"pvc\"\n\n\
         No events are available for PersistentVolumeClaim/kb-system/pre-check-01234567-r1.\n\n\
         Events from Job/kb-system/pre-check-01234567-r1:\n  \
         Type    Reason            Age   From            Message\n  \
         ----    ------            ----  ----            -------\n  \
         Normal  SuccessfulCreate  8m    job-controller  Created pod: p-new\n"
    );
    assert_eq!(seen2[11].body["reason"], "PreCheckFailed");
    assert_eq!(seen2[12].body["propagationPolicy"], "Background");
}

fn job_with_digest(digest: &str) -> Value {
    json!({"apiVersion":"batch/v1","kind":"Job",
        "metadata":{"name":PRE,"namespace":NS,"creationTimestamp":"2023-11-14T22:10:00Z",
                    "annotations":{BACKUP_REPO_DIGEST_ANNOTATION: digest}},
        "spec":{"template":{"spec":{"containers":[]}}}})
}

#[tokio::test]
async fn mount_needs_the_csi_driver() {
    let repo = mount_repo();
    let mut p = provider();
    p.status = None;
    let script = vec![
        step("GET", format!("{SP_PATH}/csi-x"), 200, to_value(&p)),
        step(
            "PATCH",
            format!("{REPO_PATH}/r1/status"),
            200,
            to_value(&repo),
        ),
    ];
    let (res, seen) = run(&repo, script).await;
    assert_eq!(res.unwrap(), Action::await_change());
    let c = condition(&seen[1].body["status"], "StorageProviderReady");
    assert_eq!(
        (c["reason"].as_str(), c["message"].as_str()),
        (
            Some("StorageProviderNotReady"),
            Some("CSI driver is not installed")
        )
    );
}

#[tokio::test]
async fn stale_pre_check_job_is_replaced() {
    let repo = mount_repo();
    let script = vec![
        step(
            "GET",
            format!("{SP_PATH}/csi-x"),
            200,
            to_value(&provider()),
        ),
        step(
            "GET",
            format!("/api/v1/namespaces/{NS}/secrets/secret-r1-abcdef"),
            404,
            not_found("secret"),
        ),
        step(
            "POST",
            format!("/api/v1/namespaces/{NS}/secrets"),
            201,
            Value::Null,
        ),
        step(
            "GET",
            "/apis/storage.k8s.io/v1/storageclasses/sc-r1-abcdef",
            404,
            not_found("sc"),
        ),
        step(
            "POST",
            "/apis/storage.k8s.io/v1/storageclasses",
            201,
            Value::Null,
        ),
        step(
            "GET",
            format!("/apis/batch/v1/namespaces/{NS}/jobs/{PRE}"),
            200,
            job_with_digest("old"),
        ),
        step(
            "DELETE",
            format!("/apis/batch/v1/namespaces/{NS}/jobs/{PRE}"),
            404,
            not_found("job"),
        ),
        step(
            "DELETE",
            format!("/api/v1/namespaces/{NS}/persistentvolumeclaims/{PRE}"),
            404,
            not_found("pvc"),
        ),
    ];
    let (res, _) = run(&repo, script).await;
    let err = res.unwrap_err();
    assert_eq!(err.class(), backuprepo_operator::ErrorClass::Transient);
    assert_eq!(
        err.to_string(),
        "pre-check job or PVC digest not match, try again"
    );
}

#[tokio::test]
async fn passed_pre_check_makes_it_ready_and_waiting_namespaces_get_the_pvc() {
    let repo = mount_repo();
    let sp = format!("{SP_PATH}/csi-x");
    // First pass (as above), to get the repository as the controller leaves it.
    let script = vec![
        step("GET", &sp, 200, to_value(&provider())),
        step(
            "GET",
            format!("/api/v1/namespaces/{NS}/secrets/secret-r1-abcdef"),
            404,
            not_found("secret"),
        ),
        step(
            "POST",
            format!("/api/v1/namespaces/{NS}/secrets"),
            201,
            Value::Null,
        ),
        step(
            "GET",
            "/apis/storage.k8s.io/v1/storageclasses/sc-r1-abcdef",
            404,
            not_found("sc"),
        ),
        step(
            "POST",
            "/apis/storage.k8s.io/v1/storageclasses",
            201,
            Value::Null,
        ),
        step(
            "GET",
            format!("/apis/batch/v1/namespaces/{NS}/jobs/{PRE}"),
            404,
            not_found("job"),
        ),
        step(
            "GET",
            format!("/api/v1/namespaces/{NS}/persistentvolumeclaims/{PRE}"),
            200,
            json!({"apiVersion":"v1","kind":"PersistentVolumeClaim","metadata":{"name":PRE}}),
        ),
        step(
            "POST",
            format!("/apis/batch/v1/namespaces/{NS}/jobs"),
            201,
            Value::Null,
        ),
        step(
            "PATCH",
            format!("{REPO_PATH}/r1/status"),
            200,
            to_value(&repo),
        ),
        step("PATCH", format!("{REPO_PATH}/r1"), 200, to_value(&repo)),
    ];
    let (res, seen) = run(&repo, script).await;
    res.unwrap();
    let checking = apply_writes(&repo, &seen);
    let digest =
        checking.metadata.annotations.as_ref().unwrap()[BACKUP_REPO_DIGEST_ANNOTATION].clone();

    let mut done = job_with_digest(&digest);
    done["status"] = json!({"conditions": [{"type": "Complete", "status": "True"}]});
    let csi_existing = json!({"apiVersion":"v1","kind":"Secret","metadata":{"name":"secret-r1-abcdef","namespace":NS,
        "annotations":{BACKUP_REPO_DIGEST_ANNOTATION: digest},
        "ownerReferences":[{"apiVersion":"dataprotection.kubeblocks.io/v1alpha1","kind":"BackupRepo",
            "name":"r1","uid":"0123456789-uid-r1","controller":true}]}});
    let waiting = json!({
        "apiVersion": "dataprotection.kubeblocks.io/v1alpha1", "kind": "Backup",
        "metadata": {"name": "b1", "namespace": "ns1", "labels": {
            "dataprotection.kubeblocks.io/backup-repo-name": "r1",
            "dataprotection.kubeblocks.io/wait-repo-preparation": "true"}}
    });
    let ok = json!({"kind":"Status","apiVersion":"v1","status":"Success"});
    let script = vec![
        step("GET", &sp, 200, to_value(&provider())),
        step(
            "GET",
            format!("/api/v1/namespaces/{NS}/secrets/secret-r1-abcdef"),
            200,
            csi_existing,
        ),
        step(
            "GET",
            "/apis/storage.k8s.io/v1/storageclasses/sc-r1-abcdef",
            200,
            seen[4].body.clone(),
        ),
        step(
            "GET",
            format!("/apis/batch/v1/namespaces/{NS}/jobs/{PRE}"),
            200,
            done,
        ),
        step(
            "PATCH",
            format!("{REPO_PATH}/r1/status"),
            200,
            to_value(&repo),
        ),
        step("POST", EVENTS_DEFAULT, 201, Value::Null),
        step(
            "DELETE",
            format!("/apis/batch/v1/namespaces/{NS}/jobs/{PRE}"),
            200,
            ok.clone(),
        ),
        step(
            "DELETE",
            format!("/api/v1/namespaces/{NS}/persistentvolumeclaims/{PRE}"),
            200,
            ok,
        ),
        step(
            "GET",
            "/apis/dataprotection.kubeblocks.io/v1alpha1/backups",
            200,
            list("BackupList", vec![waiting.clone()]),
        ),
        step(
            "GET",
            "/api/v1/namespaces/ns1/persistentvolumeclaims/pvc-r1-abcdef",
            404,
            not_found("pvc"),
        ),
        step(
            "POST",
            "/api/v1/namespaces/ns1/persistentvolumeclaims",
            201,
            Value::Null,
        ),
        step(
            "PATCH",
            "/apis/dataprotection.kubeblocks.io/v1alpha1/namespaces/ns1/backups/b1",
            200,
            waiting,
        ),
        step(
            "GET",
            "/apis/dataprotection.kubeblocks.io/v1alpha1/restores",
            200,
            list("RestoreList", vec![]),
        ),
    ];
    let (res, seen) = run(&checking, script).await;
    assert_eq!(res.unwrap(), Action::requeue(Duration::from_secs(1800)));
    let status = &seen[4].body["status"];
    assert_eq!(status["phase"], "Ready");
    assert_eq!(condition(status, "PreCheckPassed")["status"], "True");
    assert_eq!(seen[5].body["reason"], "PreCheckPassed");
    let pvc: PersistentVolumeClaim = serde_json::from_value(seen[10].body.clone()).unwrap();
    assert_eq!(pvc.metadata.name.as_deref(), Some("pvc-r1-abcdef"));
    assert_eq!(pvc.metadata.namespace.as_deref(), Some("ns1"));
    assert_eq!(
        pvc.metadata.owner_references.unwrap()[0].uid,
        "0123456789-uid-r1"
    );
    assert_eq!(
        pvc.spec.unwrap().storage_class_name.as_deref(),
        Some("sc-r1-abcdef")
    );
}
