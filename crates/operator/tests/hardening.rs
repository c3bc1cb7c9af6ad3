//! What a real cluster or a hostile user presents to the controller: the install's own
//! environment, Secrets planted with the repository's labels, namespaces taken off the
//! allow-list, credential references into other namespaces, probe endpoints on metadata
//! addresses, and the pre-check pod under the Pod Security "restricted" profile.
#![allow(clippy::unwrap_used, clippy::expect_used)]

mod common;

use std::sync::Arc;

use backuprepo_api::constants::{BACKUP_REPO_DIGEST_ANNOTATION, FINALIZER};
use backuprepo_api::BackupRepo;
use backuprepo_operator::{reconcile_repo, OperatorConfig};
use common::*;
use serde_json::{json, Value};

const NS: &str = "backuprepo-system";

fn secret(ns: &str, name: &str, data: Value) -> Value {
    json!({"apiVersion": "v1", "kind": "Secret",
           "metadata": {"name": name, "namespace": ns}, "data": data})
}

fn creds(ns: &str) -> Value {
    // base64 of "AKID" and "SUPERSECRET-do-not-print"
    secret(
        ns,
        "creds",
        json!({"accessKeyId": "QUtJRA==", "secretAccessKey": "U1VQRVJTRUNSRVQtZG8tbm90LXByaW50"}),
    )
}

/// A Tool repository of the built-in s3-compatible provider at `endpoint`.
fn s3_repo(endpoint: &str, cred_ns: &str) -> BackupRepo {
    serde_json::from_value(json!({
        "apiVersion": "dataprotection.kubeblocks.io/v1alpha1", "kind": "BackupRepo",
        "metadata": {"name": "r1", "uid": "0123456789-uid-r1", "resourceVersion": "1",
                     "generation": 1, "finalizers": [FINALIZER]},
        "spec": {"storageProviderRef": "s3-compatible", "accessMethod": "Tool",
                 "pvReclaimPolicy": "Retain",
                 "config": {"bucket": "backups", "endpoint": endpoint},
                 "credential": {"name": "creds", "namespace": cred_ns}}
    }))
    .unwrap()
}

/// An endpoint on 127.0.0.1 where nothing listens.
fn closed_endpoint() -> String {
    let port = std::net::TcpListener::bind("127.0.0.1:0")
        .unwrap()
        .local_addr()
        .unwrap()
        .port();
    format!("http://127.0.0.1:{port}")
}

async fn reconcile_in(
    cfg: OperatorConfig,
    repo: &BackupRepo,
    mut objects: Vec<Value>,
) -> (
    Result<backuprepo_operator::Action, backuprepo_operator::Error>,
    Vec<Seen>,
) {
    objects.push(to_value(repo));
    let (client, log, server) = by_rule(world(objects, ""));
    let res = reconcile_repo(context_with(client, cfg), Arc::new(repo.clone())).await;
    server.abort();
    let seen = log.lock().unwrap().clone();
    (res, seen)
}

fn status_written(seen: &[Seen]) -> &Value {
    &seen
        .iter()
        .find(|r| r.method == "PATCH" && r.path == format!("{REPO_PATH}/r1/status"))
        .unwrap_or_else(|| panic!("no status written: {seen:#?}"))
        .body["status"]
}

/// Defect 2: under the default install (its Deployment's env), a Tool repository of an
/// S3-family provider writes nothing outside the controller's namespace, creates no CSI
/// secret, and gets a status even though `kb-system` does not exist.
#[tokio::test]
async fn default_install_tool_repo_touches_only_the_controller_namespace() {
    let cfg = install_config(NS, &[("BACKUPREPO_PROBE_TIMEOUT", "10")]);
    assert_eq!(cfg.namespace, NS);
    let repo = s3_repo(&closed_endpoint(), NS);
    let objects = vec![to_value(&builtin_provider("s3-compatible")), creds(NS)];
    let (res, seen) = reconcile_in(cfg, &repo, objects).await;
    res.unwrap();
    for r in &seen {
        let ns = r
            .path
            .split("/namespaces/")
            .nth(1)
            .and_then(|rest| rest.split('/').next());
        match ns {
            None | Some(NS) => {}
            // Events about a cluster-scoped object go to `default` (the API's convention).
            Some("default") if r.path.ends_with("/events") => {}
            Some(other) => panic!("touched namespace {other}: {} {}", r.method, r.path),
        }
        assert!(
            !(r.path.contains("/secrets") && r.method != "GET"),
            "wrote a Secret: {} {}",
            r.method,
            r.path
        );
        assert!(!r.path.contains("storageclasses"), "{}", r.path);
    }
    let status = status_written(&seen);
    assert_eq!(status["phase"], "Failed", "{status:#}");
    assert!(
        status.get("generatedCSIDriverSecret").is_none(),
        "{status:#}"
    );
    let sc = condition(status, "StorageClassCreated");
    assert_eq!(
        (sc["status"].as_str(), sc["reason"].as_str()),
        (Some("True"), Some("Skipped"))
    );
}

/// Defect 2, the other half: with neither `CM_NAMESPACE` nor `POD_NAMESPACE`, KubeBlocks'
/// `kb-system` stays the default; `CM_NAMESPACE` still wins over `POD_NAMESPACE`.
#[test]
fn the_controller_namespace_comes_from_the_pod() {
    let get = |pairs: &'static [(&'static str, &'static str)]| {
        OperatorConfig::from_lookup(move |k| {
            pairs
                .iter()
                .find(|(n, _)| *n == k)
                .map(|(_, v)| v.to_string())
        })
        .unwrap()
    };
    assert_eq!(get(&[("POD_NAMESPACE", "ops")]).namespace, "ops");
    assert_eq!(get(&[("POD_NAMESPACE", "ops")]).settings.namespace, "ops");
    assert_eq!(
        get(&[("POD_NAMESPACE", "ops"), ("CM_NAMESPACE", "kb")]).namespace,
        "kb"
    );
    assert_eq!(get(&[]).namespace, "kb-system");
    // Credentials are read from the controller's namespace and kb-system only, by default.
    let c = get(&[("POD_NAMESPACE", "ops")]);
    assert!(c.reads_credentials_from("ops") && c.reads_credentials_from("kb-system"));
    assert!(!c.reads_credentials_from("default"));
    assert!(get(&[("BACKUPREPO_CREDENTIAL_NAMESPACES", "*")]).reads_credentials_from("any"));
    // The tools image is pinned.
    let latest = OperatorConfig::from_lookup(|k| {
        (k == "KUBEBLOCKS_TOOLS_IMAGE").then(|| "apecloud/kubeblocks-tools:latest".to_string())
    })
    .unwrap_err();
    assert!(latest.contains("not pinned"), "{latest}");
    let untagged = OperatorConfig::from_lookup(|k| {
        (k == "KUBEBLOCKS_TOOLS_IMAGE").then(|| "registry:5000/tools".to_string())
    })
    .unwrap_err();
    assert!(untagged.contains("not pinned"), "{untagged}");
    assert!(!OperatorConfig::default().tools_image.ends_with(":latest"));
    let bad = OperatorConfig::from_lookup(|k| {
        (k == "BACKUPREPO_REQUIRE_ALLOWED_NAMESPACES").then(|| "maybe".to_string())
    })
    .unwrap_err();
    assert!(
        bad.contains("BACKUPREPO_REQUIRE_ALLOWED_NAMESPACES"),
        "{bad}"
    );
}

/// Finding 5: a probe to the cloud's metadata service is refused before any traffic, with a
/// condition that says why and how to allow it.
#[tokio::test]
async fn probe_to_a_metadata_address_is_refused() {
    let cfg = install_config(NS, &[]);
    let repo = s3_repo("http://169.254.169.254/latest/meta-data", NS);
    let objects = vec![to_value(&builtin_provider("s3-compatible")), creds(NS)];
    let (res, seen) = reconcile_in(cfg, &repo, objects).await;
    res.unwrap();
    let status = status_written(&seen);
    assert_eq!(status["phase"], "Failed");
    let c = condition(status, "PreCheckPassed");
    let msg = c["message"].as_str().unwrap();
    assert!(msg.contains("metadata service"), "{msg}");
    assert!(msg.contains("BACKUPREPO_ALLOW_INTERNAL_ENDPOINTS"), "{msg}");
    // Only the endpoint check ran: no put/get/list reached the address.
    let ops: Vec<&str> = status["checks"]
        .as_array()
        .unwrap()
        .iter()
        .map(|c| c["operation"].as_str().unwrap())
        .collect();
    assert_eq!(ops, ["endpoint"]);
    let text = serde_json::to_string(&seen.iter().map(|s| &s.body).collect::<Vec<_>>()).unwrap();
    assert!(!text.contains("SUPERSECRET"), "a secret was written");

    // The API server (KUBERNETES_SERVICE_HOST) is refused too.
    let cfg = install_config(NS, &[("KUBERNETES_SERVICE_HOST", "127.0.0.1")]);
    let repo = s3_repo(&closed_endpoint(), NS);
    let objects = vec![to_value(&builtin_provider("s3-compatible")), creds(NS)];
    let (_, seen) = reconcile_in(cfg, &repo, objects).await;
    let msg = condition(status_written(&seen), "PreCheckPassed")["message"]
        .as_str()
        .unwrap()
        .to_string();
    assert!(msg.contains("API server"), "{msg}");
}

/// Finding 5: a credential reference into a namespace the controller does not read from is
/// refused with a condition, and the Secret is never read.
#[tokio::test]
async fn credential_outside_the_credential_namespaces_is_not_read() {
    let cfg = install_config(NS, &[]);
    let repo = s3_repo(&closed_endpoint(), "team-a");
    let objects = vec![
        to_value(&builtin_provider("s3-compatible")),
        creds("team-a"),
    ];
    let (res, seen) = reconcile_in(cfg, &repo, objects).await;
    res.unwrap();
    assert!(
        !seen.iter().any(|r| r.path.contains("/namespaces/team-a/")),
        "read a Secret in team-a: {seen:#?}"
    );
    let status = status_written(&seen);
    let c = condition(status, "ParametersChecked");
    assert_eq!(c["reason"], "CredentialNamespaceNotAllowed");
    let msg = c["message"].as_str().unwrap();
    assert!(msg.contains("team-a/creds"), "{msg}");
    assert!(msg.contains("backuprepo-system, kb-system"), "{msg}");
    assert!(msg.contains("BACKUPREPO_CREDENTIAL_NAMESPACES"), "{msg}");
}

fn tool_config_secret(ns: &str, owner_uid: Option<&str>, digest: &str) -> Value {
    let mut s = json!({"apiVersion": "v1", "kind": "Secret",
        "metadata": {"name": "tool-config-r1-abcdef", "namespace": ns,
            "labels": {"dataprotection.kubeblocks.io/backup-repo-name": "r1",
                       "dataprotection.kubeblocks.io/is-tool-config": "true"},
            "annotations": {BACKUP_REPO_DIGEST_ANNOTATION: digest}},
        "data": {"datasafed.conf": "b2xk"}});
    if let Some(uid) = owner_uid {
        s["metadata"]["ownerReferences"] = json!([{
            "apiVersion": "dataprotection.kubeblocks.io/v1alpha1", "kind": "BackupRepo",
            "name": "r1", "uid": uid, "controller": true, "blockOwnerDeletion": true}]);
    }
    s
}

fn writes_to(seen: &[Seen], ns: &str) -> Vec<Seen> {
    seen.iter()
        .filter(|r| r.method != "GET" && r.path.contains(&format!("/namespaces/{ns}/secrets")))
        .cloned()
        .collect()
}

/// Defect 1: a new config reaches only the Secrets this repository owns in allowed
/// namespaces. A Secret planted with the labels is never patched; an owned Secret in a
/// namespace taken off the allow-list loses its data and is handed to the garbage collector.
#[tokio::test]
async fn tool_config_updates_skip_planted_secrets_and_revoke_withdrawn_namespaces() {
    let dir = tempfile::tempdir().unwrap();
    let mut repo = tool_repo(dir.path().to_str().unwrap());
    repo.spec.allowed_namespaces = Some(vec!["ns1".into(), "planted".into()]);
    let uid = repo.metadata.uid.clone().unwrap();
    let objects = vec![
        to_value(&local_provider()),
        tool_config_secret("ns1", Some(&uid), "old"),
        tool_config_secret("planted", None, "old"),
        tool_config_secret("other-owner", Some("someone-else"), "old"),
        tool_config_secret("withdrawn", Some(&uid), "old"),
    ];
    let (res, seen) = reconcile_in(config(), &repo, objects).await;
    res.unwrap();
    assert_eq!(status_written(&seen)["phase"], "Ready");

    let ns1 = writes_to(&seen, "ns1");
    assert_eq!(ns1.len(), 1, "{ns1:#?}");
    assert_eq!(ns1[0].method, "PATCH");
    let conf = ns1[0].body["data"]["datasafed.conf"].as_str().unwrap();
    assert_ne!(conf, "b2xk", "the new config was not written");
    assert!(
        writes_to(&seen, "planted").is_empty(),
        "patched a planted Secret"
    );
    assert!(writes_to(&seen, "other-owner").is_empty());

    let withdrawn = writes_to(&seen, "withdrawn");
    assert_eq!(withdrawn.len(), 1, "{withdrawn:#?}");
    let body = &withdrawn[0].body;
    assert_eq!(withdrawn[0].method, "PATCH");
    assert_eq!(body["data"], Value::Null);
    assert!(
        body.as_object().unwrap().contains_key("data"),
        "data is not removed"
    );
    let owners = body["metadata"]["ownerReferences"].as_array().unwrap();
    assert_eq!(owners.len(), 1);
    assert_ne!(
        owners[0]["uid"],
        uid.as_str(),
        "still owned: the GC would keep it"
    );
    assert_eq!(owners[0]["kind"], "BackupRepo");
    assert!(body["metadata"]["annotations"]["backuprepo.io/revoked"]
        .as_str()
        .unwrap()
        .contains("withdrawn"));

    // Without an allow-list and with namespaces closed by the operator, every owned Secret
    // is withdrawn.
    let mut closed = config();
    closed.default_allowed_namespaces = Some(Vec::new());
    let repo = tool_repo(dir.path().to_str().unwrap());
    let objects = vec![
        to_value(&local_provider()),
        tool_config_secret("ns1", Some(&uid), "old"),
    ];
    let (_, seen) = reconcile_in(closed, &repo, objects).await;
    let ns1 = writes_to(&seen, "ns1");
    assert_eq!(ns1.len(), 1, "{seen:#?}");
    assert_eq!(ns1[0].body["data"], Value::Null);
}

/// The pre-check Job's pod under the Pod Security "restricted" profile (v1.33), rule by rule.
fn restricted_violations(pod: &Value) -> Vec<String> {
    let mut v = Vec::new();
    for key in ["hostNetwork", "hostPID", "hostIPC"] {
        if pod[key] == true {
            v.push(format!("{key} is set"));
        }
    }
    let allowed_volumes = [
        "configMap",
        "csi",
        "downwardAPI",
        "emptyDir",
        "ephemeral",
        "persistentVolumeClaim",
        "projected",
        "secret",
    ];
    for vol in pod["volumes"].as_array().into_iter().flatten() {
        for k in vol.as_object().unwrap().keys().filter(|k| *k != "name") {
            if !allowed_volumes.contains(&k.as_str()) {
                v.push(format!("volume type {k}"));
            }
        }
    }
    let psc = &pod["securityContext"];
    let containers: Vec<&Value> = ["containers", "initContainers", "ephemeralContainers"]
        .iter()
        .flat_map(|k| pod[*k].as_array().into_iter().flatten())
        .collect();
    for c in containers {
        let sc = &c["securityContext"];
        let name = c["name"].as_str().unwrap_or_default();
        if sc["privileged"] == true {
            v.push(format!("{name}: privileged"));
        }
        if sc["allowPrivilegeEscalation"] != false {
            v.push(format!("{name}: allowPrivilegeEscalation is not false"));
        }
        let drops = sc["capabilities"]["drop"]
            .as_array()
            .cloned()
            .unwrap_or_default();
        if !drops.iter().any(|d| d == "ALL") {
            v.push(format!("{name}: capabilities do not drop ALL"));
        }
        for add in sc["capabilities"]["add"].as_array().into_iter().flatten() {
            if add != "NET_BIND_SERVICE" {
                v.push(format!("{name}: adds capability {add}"));
            }
        }
        let non_root = if sc["runAsNonRoot"].is_null() {
            psc["runAsNonRoot"] == true
        } else {
            sc["runAsNonRoot"] == true
        };
        if !non_root {
            v.push(format!("{name}: runAsNonRoot is not true"));
        }
        for ctx in [psc, sc] {
            if ctx["runAsUser"] == 0 {
                v.push(format!("{name}: runAsUser 0"));
            }
        }
        let seccomp = if sc["seccompProfile"].is_null() {
            &psc["seccompProfile"]["type"]
        } else {
            &sc["seccompProfile"]["type"]
        };
        if seccomp != "RuntimeDefault" && seccomp != "Localhost" {
            v.push(format!("{name}: seccompProfile is {seccomp}"));
        }
        if c["ports"]
            .as_array()
            .into_iter()
            .flatten()
            .any(|p| !p["hostPort"].is_null() && p["hostPort"] != 0)
        {
            v.push(format!("{name}: hostPort"));
        }
    }
    v
}

/// A Mount repository whose pre-check has not started: the Job the controller creates.
async fn pre_check_job_created() -> Value {
    let provider = json!({
        "apiVersion": "dataprotection.kubeblocks.io/v1alpha1", "kind": "StorageProvider",
        "metadata": {"name": "nfs"},
        "spec": {"csiDriverName": "nfs.csi.k8s.io",
                 "storageClassTemplate": "provisioner: nfs.csi.k8s.io\nparameters:\n  server: \"{{ .Parameters.nfsServerAddress }}\"\n  share: /\n",
                 "parametersSchema": {"openAPIV3Schema": {"type": "object", "properties": {"nfsServerAddress": {"type": "string"}}}}},
        "status": {"phase": "Ready", "conditions": [{"type": "CSIDriverInstalled", "status": "True",
            "reason": "CSIDriverObjectFound", "message": "", "lastTransitionTime": "2023-01-01T00:00:00Z"}]}
    });
    let repo: BackupRepo = serde_json::from_value(json!({
        "apiVersion": "dataprotection.kubeblocks.io/v1alpha1", "kind": "BackupRepo",
        "metadata": {"name": "r1", "uid": "0123456789-uid-r1", "resourceVersion": "1",
                     "generation": 1, "finalizers": [FINALIZER]},
        "spec": {"storageProviderRef": "nfs", "accessMethod": "Mount", "pvReclaimPolicy": "Retain",
                 "volumeCapacity": "1Gi", "config": {"nfsServerAddress": "10.0.0.1"}}
    }))
    .unwrap();
    let driver = json!({"apiVersion": "storage.k8s.io/v1", "kind": "CSIDriver",
                        "metadata": {"name": "nfs.csi.k8s.io"}, "spec": {}});
    let (res, seen) = reconcile_in(install_config(NS, &[]), &repo, vec![provider, driver]).await;
    res.unwrap();
    seen.iter()
        .find(|r| r.method == "POST" && r.path == format!("/apis/batch/v1/namespaces/{NS}/jobs"))
        .unwrap_or_else(|| panic!("no Job created: {seen:#?}"))
        .body
        .clone()
}

/// Finding 4: the pre-check pod passes the restricted profile, mounts no token, has bounded
/// resources and run time, keeps existing data's ownership, and writes under a directory of
/// its own.
#[tokio::test]
async fn pre_check_pod_passes_the_restricted_profile() {
    let job = pre_check_job_created().await;
    let pod = &job["spec"]["template"]["spec"];
    assert_eq!(restricted_violations(pod), Vec::<String>::new(), "{pod:#}");
    // The rule check itself can fail: the previous pod spec (no securityContext) does.
    let mut bare = pod.clone();
    bare["securityContext"] = json!({"fsGroup": 65532});
    bare["containers"][0]["securityContext"] = json!({"allowPrivilegeEscalation": false});
    assert_eq!(
        restricted_violations(&bare).len(),
        3,
        "{:?}",
        restricted_violations(&bare)
    );

    assert_eq!(pod["automountServiceAccountToken"], false);
    assert_eq!(
        pod["securityContext"]["fsGroupChangePolicy"],
        "OnRootMismatch"
    );
    assert_eq!(pod["securityContext"]["runAsUser"], 65532);
    let c = &pod["containers"][0];
    assert_eq!(c["securityContext"]["readOnlyRootFilesystem"], true);
    assert!(c["resources"]["limits"]["memory"].is_string(), "{c:#}");
    assert!(c["resources"]["requests"]["cpu"].is_string(), "{c:#}");
    let image = c["image"].as_str().unwrap();
    assert!(
        image.contains(':') && !image.ends_with(":latest"),
        "{image}"
    );
    let script = c["args"][0].as_str().unwrap();
    assert!(!script.contains("/backup/precheck.txt"), "{script}");
    assert!(
        script.contains("/backup/.backuprepo-precheck/${POD_NAME}"),
        "{script}"
    );
    assert_eq!(
        c["env"][0]["valueFrom"]["fieldRef"]["fieldPath"],
        "metadata.name"
    );
    assert_eq!(job["spec"]["activeDeadlineSeconds"], 900);
    assert!(job["spec"]["ttlSecondsAfterFinished"].as_i64().unwrap() > 0);

    // The Job against the Kubernetes 1.33 schema, strictly (unknown fields refused).
    if let Some(out) = kubernetes_validate(&serde_yaml_ng::to_string(&job).unwrap()) {
        assert!(out.contains("passed for resource job/"), "{out}");
    }
}

/// The install runs two replicas; its env gives each its pod name, which is its identity in
/// the leader-election Lease, and leaves the election on (`BACKUPREPO_LEADER_ELECTION=false`
/// turns it off for a single replica).
#[test]
fn the_install_elects_a_leader_by_pod_name() {
    let c = common::install_config("ops", &[]);
    assert!(c.leader_election);
    assert_eq!(c.instance.as_deref(), Some("backuprepo-controller-0"));
    let off = common::install_config("ops", &[("BACKUPREPO_LEADER_ELECTION", "false")]);
    assert!(!off.leader_election);
}
