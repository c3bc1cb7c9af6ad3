#![allow(clippy::unwrap_used, clippy::expect_used)]
//! Generated CRDs and serialization.

use std::collections::BTreeMap;

use backuprepo_api::k8s_openapi::api::core::v1::SecretReference;
use backuprepo_api::kube::{CustomResourceExt, Resource};
use backuprepo_api::{
    constants, parse_documents, BackupRepo, BackupRepoPhase, BackupRepoSpec, BackupRepoStatus,
    Document, ProbeCheck, PvReclaimPolicy, StorageProvider,
};
use serde_json::{json, Value};

fn version_of(crd: &Value) -> &Value {
    &crd["spec"]["versions"][0]
}

#[test]
fn backup_repo_crd() {
    let crd = serde_json::to_value(BackupRepo::crd()).unwrap();
    assert_eq!(
        crd["metadata"]["name"],
        "backuprepos.dataprotection.kubeblocks.io"
    );
    assert_eq!(crd["spec"]["group"], constants::GROUP);
    assert_eq!(crd["spec"]["scope"], "Cluster");
    assert_eq!(crd["spec"]["names"]["kind"], "BackupRepo");
    assert_eq!(crd["spec"]["names"]["singular"], "backuprepo");
    assert_eq!(crd["spec"]["names"]["categories"], json!(["kubeblocks"]));
    let v = version_of(&crd);
    assert_eq!(v["name"], constants::VERSION);
    assert_eq!(v["subresources"]["status"], json!({}));
    assert_eq!(
        v["additionalPrinterColumns"],
        json!([
            {"name": "STATUS", "type": "string", "jsonPath": ".status.phase"},
            {"name": "STORAGEPROVIDER", "type": "string", "jsonPath": ".spec.storageProviderRef"},
            {"name": "ACCESSMETHOD", "type": "string", "jsonPath": ".spec.accessMethod"},
            {"name": "DEFAULT", "type": "boolean", "jsonPath": ".status.isDefault"},
            {"name": "AGE", "type": "date", "jsonPath": ".metadata.creationTimestamp"},
        ])
    );
    let spec = &v["schema"]["openAPIV3Schema"]["properties"]["spec"];
    let access = &spec["properties"]["accessMethod"];
    assert_eq!(access["default"], "Mount");
    assert_eq!(access["enum"], json!(["Mount", "Tool"]));
    assert_eq!(access["type"], "string");
    assert_eq!(
        spec["properties"]["pvReclaimPolicy"]["enum"],
        json!(["Delete", "Retain"])
    );
    assert_eq!(
        spec["properties"]["pathPrefix"]["pattern"],
        "^([a-zA-Z0-9-_]+/?)*$"
    );
    assert_eq!(
        spec["properties"]["volumeCapacity"]["x-kubernetes-int-or-string"],
        true
    );
    assert_eq!(
        spec["properties"]["credential"]["x-kubernetes-map-type"],
        "atomic"
    );
    assert_eq!(
        spec["properties"]["storageProviderRef"]["x-kubernetes-validations"][0]["message"],
        "StorageProviderRef is immutable"
    );
    assert_eq!(
        spec["properties"]["config"]["additionalProperties"]["type"],
        "string"
    );
    assert_eq!(
        spec["properties"]["allowedNamespaces"]["items"]["type"],
        "string"
    );
    let mut required: Vec<&str> = spec["required"]
        .as_array()
        .unwrap()
        .iter()
        .map(|v| v.as_str().unwrap())
        .collect();
    required.sort();
    assert_eq!(required, ["pvReclaimPolicy", "storageProviderRef"]);

    let status = &v["schema"]["openAPIV3Schema"]["properties"]["status"]["properties"];
    for field in [
        "phase",
        "conditions",
        "observedGeneration",
        "generatedCSIDriverSecret",
        "generatedStorageClassName",
        "backupPVCName",
        "toolConfigSecretName",
        "isDefault",
        "lastCheckTime",
        "checks",
        "usage",
        "capabilities",
        "scopedCredentials",
    ] {
        assert!(status.get(field).is_some(), "status.{field} missing");
    }
    // New fields are in status only; spec stays KubeBlocks' (kubeblocks_crd_compat.rs).
    let usage = &status["usage"]["properties"];
    for field in [
        "totalBytes",
        "objectCount",
        "measuredAt",
        "byPrefix",
        "partial",
        "resumeAfter",
    ] {
        assert!(usage.get(field).is_some(), "status.usage.{field} missing");
    }
    assert_eq!(
        status["phase"]["enum"],
        json!(["PreChecking", "Failed", "Ready", "Deleting"])
    );
    // The text form too, as `kubectl apply` would see it.
    let yaml = serde_yaml_ng::to_string(&BackupRepo::crd()).unwrap();
    assert!(yaml.contains("default: Mount"), "{yaml}");
}

#[test]
fn storage_provider_crd() {
    let crd = serde_json::to_value(StorageProvider::crd()).unwrap();
    assert_eq!(
        crd["metadata"]["name"],
        "storageproviders.dataprotection.kubeblocks.io"
    );
    assert_eq!(crd["spec"]["scope"], "Cluster");
    assert_eq!(crd["spec"]["names"]["categories"], json!(["kubeblocks"]));
    let v = version_of(&crd);
    assert_eq!(
        v["additionalPrinterColumns"],
        json!([
            {"name": "STATUS", "type": "string", "jsonPath": ".status.phase"},
            {"name": "CSIDRIVER", "type": "string", "jsonPath": ".spec.csiDriverName"},
            {"name": "AGE", "type": "date", "jsonPath": ".metadata.creationTimestamp"},
        ])
    );
    let spec = &v["schema"]["openAPIV3Schema"]["properties"]["spec"]["properties"];
    let schema = &spec["parametersSchema"]["properties"]["openAPIV3Schema"];
    assert_eq!(schema["type"], "object");
    assert_eq!(schema["x-kubernetes-preserve-unknown-fields"], true);
    assert_eq!(
        spec["parametersSchema"]["properties"]["credentialFields"]["items"]["type"],
        "string"
    );
    for f in [
        "csiDriverName",
        "csiDriverSecretTemplate",
        "storageClassTemplate",
        "persistentVolumeClaimTemplate",
        "datasafedConfigTemplate",
    ] {
        assert_eq!(spec[f]["type"], "string", "{f}");
    }
    let status = &v["schema"]["openAPIV3Schema"]["properties"]["status"]["properties"];
    assert_eq!(status["phase"]["enum"], json!(["NotReady", "Ready"]));
}

#[test]
fn resource_identity() {
    assert_eq!(BackupRepo::api_version(&()), constants::API_VERSION);
    assert_eq!(BackupRepo::kind(&()), "BackupRepo");
    assert_eq!(BackupRepo::plural(&()), "backuprepos");
    assert_eq!(StorageProvider::plural(&()), "storageproviders");
}

#[test]
fn serialization_omits_empty_fields() {
    let repo = BackupRepo::new(
        "my-repo",
        BackupRepoSpec {
            storage_provider_ref: "s3".into(),
            access_method: None,
            volume_capacity: None,
            pv_reclaim_policy: PvReclaimPolicy::Delete,
            config: BTreeMap::new(),
            credential: None,
            path_prefix: None,
            allowed_namespaces: None,
        },
    );
    let json = serde_json::to_value(&repo).unwrap();
    assert_eq!(
        json,
        json!({
            "apiVersion": "dataprotection.kubeblocks.io/v1alpha1",
            "kind": "BackupRepo",
            "metadata": {"name": "my-repo"},
            "spec": {"storageProviderRef": "s3", "pvReclaimPolicy": "Delete"}
        })
    );

    let mut with_status = repo.clone();
    with_status.status = Some(BackupRepoStatus::default());
    let json = serde_json::to_value(&with_status).unwrap();
    assert_eq!(json["status"], json!({}));
}

#[test]
fn full_round_trip_through_yaml() {
    let yaml = r#"
apiVersion: dataprotection.kubeblocks.io/v1alpha1
kind: BackupRepo
metadata:
  name: my-repo
  annotations:
    dataprotection.kubeblocks.io/is-default-repo: "true"
spec:
  storageProviderRef: s3
  accessMethod: Tool
  volumeCapacity: 100Gi
  pvReclaimPolicy: Retain
  config:
    bucket: b
  credential:
    name: cred
    namespace: kb-system
  pathPrefix: team-a
  allowedNamespaces: [default]
status:
  phase: Ready
  isDefault: true
  observedGeneration: 3
  generatedCSIDriverSecret:
    name: secret-my-repo-bcdfgh
    namespace: kb-system
  generatedStorageClassName: sc-my-repo-bcdfgh
  backupPVCName: pvc-my-repo-bcdfgh
  toolConfigSecretName: tool-config-my-repo-bcdfgh
  lastCheckTime: "2026-01-02T03:04:05Z"
  checks:
  - operation: push
    result: Passed
    durationMs: 12
  - operation: pull
    result: Failed
    message: boom
  conditions:
  - type: PreCheckPassed
    status: "True"
    reason: PreCheckPassed
    message: ""
    lastTransitionTime: "2026-01-02T03:04:05Z"
    observedGeneration: 3
"#;
    let docs = parse_documents(yaml).unwrap();
    assert!(docs[0].warnings.is_empty(), "{:?}", docs[0].warnings);
    let Document::BackupRepo(repo) = &docs[0].doc else {
        panic!()
    };
    let status = repo.status.as_ref().unwrap();
    assert_eq!(repo.phase(), Some(BackupRepoPhase::Ready));
    assert_eq!(
        status.generated_csi_driver_secret,
        Some(SecretReference {
            name: Some("secret-my-repo-bcdfgh".into()),
            namespace: Some("kb-system".into())
        })
    );
    assert_eq!(
        status.checks[0],
        ProbeCheck {
            operation: "push".into(),
            result: constants::probe_result::PASSED.into(),
            message: None,
            duration_ms: Some(12)
        }
    );
    assert_eq!(
        status.conditions[0].type_,
        constants::condition_type::PRE_CHECK_PASSED
    );

    let text = serde_yaml_ng::to_string(repo).unwrap();
    let again = parse_documents(&text).unwrap();
    assert!(again[0].warnings.is_empty());
    assert_eq!(again[0].doc, docs[0].doc);

    let json = serde_json::to_value(repo).unwrap();
    assert_eq!(
        json["status"]["generatedCSIDriverSecret"]["name"],
        "secret-my-repo-bcdfgh"
    );
    assert_eq!(json["status"]["backupPVCName"], "pvc-my-repo-bcdfgh");
    assert_eq!(
        json["status"]["checks"][1],
        json!({"operation": "pull", "result": "Failed", "message": "boom"})
    );
    assert_eq!(json["spec"]["volumeCapacity"], "100Gi");
}
