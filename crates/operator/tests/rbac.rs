//! The RBAC of `backuprepo install` against what the controller really asks of the API server,
//! both ways: every request of a tour through the controller's paths (Tool and Mount
//! repositories, consumers in allowed and refused namespaces, tool-config updates and
//! revocations, pre-check success and failure, deletion, the StorageProvider controller, every
//! watch of `run`) must be granted, and every verb granted must be used by some request: a
//! ClusterRole verb by a request outside the controller's namespace, a Role verb inside it.
#![allow(clippy::unwrap_used, clippy::expect_used)]

mod common;

use std::collections::BTreeSet;
use std::sync::Arc;
use std::time::Duration;

use backuprepo_api::constants::{BACKUP_REPO_DIGEST_ANNOTATION, FINALIZER};
use backuprepo_api::{BackupRepo, StorageProvider};
use backuprepo_operator::{reconcile_provider, reconcile_repo, run, Context};
use common::*;
use serde_json::{json, Value};

const NS: &str = "backuprepo-system";

/// Granted although no request of ours uses it, and why.
const ADMISSION_ONLY: &[(&str, &str, &str, &str)] = &[(
    "dataprotection.kubeblocks.io",
    "backuprepos/finalizers",
    "update",
    "the API server asks it of whoever sets blockOwnerDeletion on an owner reference to a BackupRepo",
)];

fn repo_of(v: Value) -> BackupRepo {
    serde_json::from_value(v).unwrap()
}

fn base_repo(name: &str, provider: &str, method: &str, config: Value) -> Value {
    json!({
        "apiVersion": "dataprotection.kubeblocks.io/v1alpha1", "kind": "BackupRepo",
        "metadata": {"name": name, "uid": format!("0123456789-uid-{name}"), "resourceVersion": "1",
                     "generation": 1, "finalizers": [FINALIZER]},
        "spec": {"storageProviderRef": provider, "accessMethod": method, "pvReclaimPolicy": "Retain",
                 "volumeCapacity": "1Gi", "config": config}
    })
}

fn mount_provider(finalizer: bool) -> Value {
    let mut p = json!({
        "apiVersion": "dataprotection.kubeblocks.io/v1alpha1", "kind": "StorageProvider",
        "metadata": {"name": "csi-x"},
        "spec": {
            "csiDriverName": "csi.example.com",
            "csiDriverSecretTemplate": "bucket: {{ index .Parameters \"bucket\" }}\nkey: {{ index .Parameters \"key\" }}\n",
            "storageClassTemplate": "provisioner: csi.example.com\nparameters:\n  csi.storage.k8s.io/node-publish-secret-name: {{ .CSIDriverSecretRef.Name }}\n  csi.storage.k8s.io/node-publish-secret-namespace: {{ .CSIDriverSecretRef.Namespace }}\n",
            "parametersSchema": {"openAPIV3Schema": {"type": "object",
                "properties": {"bucket": {"type": "string"}, "key": {"type": "string"}},
                "required": ["bucket"]},
                "credentialFields": ["key"]}
        },
        "status": {"phase": "Ready", "conditions": [{"type": "CSIDriverInstalled", "status": "True",
            "reason": "CSIDriverObjectFound", "message": "", "lastTransitionTime": "2023-01-01T00:00:00Z"}]}
    });
    if finalizer {
        p["metadata"]["finalizers"] = json!([FINALIZER]);
        p.as_object_mut().unwrap().remove("status");
    }
    p
}

fn mount_repo(name: &str) -> Value {
    let mut r = base_repo(name, "csi-x", "Mount", json!({"bucket": "b"}));
    r["spec"]["credential"] = json!({"namespace": "kb-system", "name": "creds"});
    r
}

fn consumer(kind: &str, ns: &str, name: &str, repo: &str) -> Value {
    json!({
        "apiVersion": "dataprotection.kubeblocks.io/v1alpha1", "kind": kind,
        "metadata": {"name": name, "namespace": ns, "uid": format!("uid-{name}"),
            "labels": {"dataprotection.kubeblocks.io/backup-repo-name": repo,
                       "dataprotection.kubeblocks.io/wait-repo-preparation": "true"}},
        "status": {"phase": "Running"}
    })
}

fn owned_secret(ns: &str, repo: &str) -> Value {
    json!({"apiVersion": "v1", "kind": "Secret",
        "metadata": {"name": format!("tool-config-{repo}-abcdef"), "namespace": ns,
            "labels": {"dataprotection.kubeblocks.io/backup-repo-name": repo,
                       "dataprotection.kubeblocks.io/is-tool-config": "true"},
            "annotations": {BACKUP_REPO_DIGEST_ANNOTATION: "old"},
            "ownerReferences": [{"apiVersion": "dataprotection.kubeblocks.io/v1alpha1",
                "kind": "BackupRepo", "name": repo, "uid": format!("0123456789-uid-{repo}"),
                "controller": true}]},
        "data": {"datasafed.conf": "b2xk"}})
}

fn common_objects() -> Vec<Value> {
    vec![
        to_value(&local_provider()),
        mount_provider(false),
        json!({"apiVersion": "storage.k8s.io/v1", "kind": "CSIDriver",
               "metadata": {"name": "csi.example.com"}, "spec": {}}),
        json!({"apiVersion": "v1", "kind": "Secret",
               "metadata": {"name": "creds", "namespace": "kb-system"},
               "data": {"key": "a2V5"}}),
    ]
}

/// Reconcile `repo` in a world of `objects`, `passes` times with one context (a repeated
/// event is then patched, as the event recorder does); the requests made.
async fn tour_repo(repo: &Value, objects: Vec<Value>, passes: usize) -> Vec<Seen> {
    let (client, log, server) = by_rule(world(objects, "touch: read-only file system\n"));
    let ctx: Arc<Context> = context_with(client, install_config(NS, &[]));
    for _ in 0..passes {
        let _ = reconcile_repo(ctx.clone(), Arc::new(repo_of(repo.clone()))).await;
    }
    server.abort();
    let seen = log.lock().unwrap().clone();
    seen
}

/// The pre-check Job a Mount repository creates (its digest annotation is the current one).
fn created_job(seen: &[Seen]) -> Value {
    seen.iter()
        .find(|r| r.method == "POST" && r.path.ends_with("/jobs"))
        .unwrap_or_else(|| panic!("no Job created: {seen:#?}"))
        .body
        .clone()
}

fn finished(mut job: Value, condition: &str) -> Value {
    job["metadata"]["uid"] = json!("uid-job");
    job["metadata"]["creationTimestamp"] = json!("2023-11-14T22:00:00Z");
    job["status"] = json!({"conditions": [{"type": condition, "status": "True",
        "reason": "BackoffLimitExceeded", "message": "failed"}]});
    job
}

async fn tour() -> Vec<Seen> {
    let mut seen = Vec::new();
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().to_str().unwrap();

    // Tool: a consumer in an allowed namespace is prepared; one outside is refused (twice,
    // so its event is patched); a stale Secret is re-rendered, a withdrawn one revoked.
    let mut r1 = base_repo("r1", "local", "Tool", json!({"path": path}));
    r1["spec"]["allowedNamespaces"] = json!(["ns1", "ns3"]);
    // Its copy goes to a repository the controller reads by name (missing here: refused).
    r1["metadata"]["annotations"] = json!({"backuprepo.io/replicate-to": "r9"});
    let mut objects = common_objects();
    objects.extend([
        r1.clone(),
        consumer("Backup", "ns1", "b1", "r1"),
        consumer("Restore", "ns1", "rs1", "r1"),
        consumer("Restore", "ns2", "rs2", "r1"),
        owned_secret("ns3", "r1"),
        owned_secret("ns4", "r1"),
    ]);
    seen.extend(tour_repo(&r1, objects, 2).await);

    // Mount: a new repository creates its CSI secret, StorageClass, pre-check PVC and Job.
    let r2 = mount_repo("r2");
    let mut objects = common_objects();
    objects.push(r2.clone());
    let first = tour_repo(&r2, objects, 1).await;
    let job = created_job(&first);
    seen.extend(first);

    // Mount: the pre-check passed; the repository is Ready and a consumer gets its PVC.
    let mut objects = common_objects();
    objects.extend([
        r2.clone(),
        finished(job.clone(), "Complete"),
        consumer("Backup", "ns1", "b2", "r2"),
    ]);
    seen.extend(tour_repo(&r2, objects, 1).await);

    // Mount: the pre-check failed; its pod's log and the events are quoted.
    let mut objects = common_objects();
    let pod = json!({"apiVersion": "v1", "kind": "Pod",
        "metadata": {"name": "p1", "namespace": NS, "uid": "uid-p1",
                     "labels": {"job-name": job["metadata"]["name"]},
                     "creationTimestamp": "2023-11-14T22:00:00Z"},
        "status": {"phase": "Failed"}});
    let event = json!({"apiVersion": "v1", "kind": "Event",
        "metadata": {"name": "e1", "namespace": NS},
        "involvedObject": {"kind": "Pod", "name": "p1", "uid": "uid-p1"},
        "type": "Warning", "reason": "Failed", "message": "boom"});
    objects.extend([r2.clone(), finished(job, "Failed"), pod, event]);
    seen.extend(tour_repo(&r2, objects, 1).await);

    // Deletion: the repository's PVCs are deleted before its finalizer goes.
    let mut r5 = base_repo("r5", "local", "Tool", json!({"path": path}));
    r5["metadata"]["deletionTimestamp"] = json!("2023-11-14T22:00:00Z");
    let pvc = json!({"apiVersion": "v1", "kind": "PersistentVolumeClaim",
        "metadata": {"name": "pvc-r5-abcdef", "namespace": "ns1",
            "labels": {"dataprotection.kubeblocks.io/backup-repo-name": "r5"},
            "ownerReferences": [{"apiVersion": "dataprotection.kubeblocks.io/v1alpha1",
                "kind": "BackupRepo", "name": "r5", "uid": "0123456789-uid-r5", "controller": true}]}});
    let mut objects = common_objects();
    objects.extend([r5.clone(), pvc]);
    seen.extend(tour_repo(&r5, objects, 1).await);

    // The StorageProvider controller: legacy finalizer, CSIDriver lookup, status.
    let provider = mount_provider(true);
    let mut objects = common_objects();
    objects.retain(|o| o["kind"] != "StorageProvider");
    objects.push(provider.clone());
    let (client, log, server) = by_rule(world(objects, ""));
    let ctx = context_with(client, install_config(NS, &[]));
    let p: StorageProvider = serde_json::from_value(provider).unwrap();
    reconcile_provider(ctx, Arc::new(p)).await.unwrap();
    server.abort();
    seen.extend(log.lock().unwrap().clone());

    // `run`: every watch and the CRD probes.
    let (client, log, server) = by_rule(world(common_objects(), ""));
    let port = std::net::TcpListener::bind("127.0.0.1:0")
        .unwrap()
        .local_addr()
        .unwrap()
        .port();
    let mut cfg = install_config(NS, &[]);
    cfg.metrics_addr = ([127, 0, 0, 1], port).into();
    cfg.health_addr = ([127, 0, 0, 1], 0).into();
    let operator = tokio::spawn(run(client, cfg));
    for _ in 0..200 {
        let watches = log
            .lock()
            .unwrap()
            .iter()
            .filter(|r| r.query.contains("watch=true"))
            .count();
        if watches >= 9 {
            break;
        }
        tokio::time::sleep(Duration::from_millis(25)).await;
    }
    operator.abort();
    server.abort();
    seen.extend(log.lock().unwrap().clone());

    // `run` again, as the second replica when the first stopped renewing: it takes the
    // lease over once it has seen no change for the lease's duration (1 s here; expiry is
    // measured on the candidate's clock, not from renewTime), then starts its watches.
    let lease = json!({"apiVersion": "coordination.k8s.io/v1", "kind": "Lease",
        "metadata": {"name": "backuprepo-controller", "namespace": NS, "resourceVersion": "7"},
        "spec": {"holderIdentity": "backuprepo-controller-1", "leaseDurationSeconds": 1,
                 "renewTime": "2023-11-14T22:00:00.000000Z", "leaseTransitions": 0}});
    let mut objects = common_objects();
    objects.push(lease);
    let (client, log, server) = by_rule(world(objects, ""));
    let mut cfg = install_config(NS, &[]);
    // A port of its own: the first run's listener may not be closed yet.
    let port = std::net::TcpListener::bind("127.0.0.1:0")
        .unwrap()
        .local_addr()
        .unwrap()
        .port();
    cfg.metrics_addr = ([127, 0, 0, 1], port).into();
    cfg.health_addr = ([127, 0, 0, 1], 0).into();
    let operator = tokio::spawn(run(client, cfg));
    for _ in 0..200 {
        let took_over = log
            .lock()
            .unwrap()
            .iter()
            .any(|r| r.method == "PUT" && r.path.ends_with("/leases/backuprepo-controller"));
        if took_over {
            break;
        }
        tokio::time::sleep(Duration::from_millis(25)).await;
    }
    operator.abort();
    server.abort();
    seen.extend(log.lock().unwrap().clone());
    seen
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn rbac_grants_exactly_what_the_controller_requests() {
    let seen = tour().await;
    let accesses: BTreeSet<Access> = seen.iter().map(access).collect();
    let (cluster, role) = install_rbac(NS);

    // Every request is granted.
    let mut refused = refused_by_rbac(&seen, NS);
    refused.dedup();
    assert!(
        refused.is_empty(),
        "requests the RBAC does not grant: {refused:#?}"
    );

    // Every grant is used, in its scope.
    let used_outside = |k: &(String, String, String)| {
        accesses.iter().any(|a| {
            (&a.group, &a.resource, &a.verb) == (&k.0, &k.1, &k.2)
                && a.namespace.as_deref() != Some(NS)
        })
    };
    let used_inside = |k: &(String, String, String)| {
        accesses.iter().any(|a| {
            (&a.group, &a.resource, &a.verb) == (&k.0, &k.1, &k.2)
                && a.namespace.as_deref() == Some(NS)
        })
    };
    let exempt = |k: &(String, String, String)| {
        ADMISSION_ONLY
            .iter()
            .any(|(g, r, v, _)| (*g, *r, *v) == (k.0.as_str(), k.1.as_str(), k.2.as_str()))
    };
    let unused_cluster: Vec<_> = cluster
        .iter()
        .filter(|k| !used_outside(k) && !exempt(k))
        .collect();
    assert!(
        unused_cluster.is_empty(),
        "ClusterRole verbs no request outside {NS} uses (drop them, or move them to the Role): {unused_cluster:#?}"
    );
    let unused_role: Vec<_> = role.iter().filter(|k| !used_inside(k)).collect();
    assert!(
        unused_role.is_empty(),
        "Role verbs never used: {unused_role:#?}"
    );

    // The findings of the review, explicitly.
    assert!(
        !cluster.iter().any(|k| k.0 == "batch"),
        "batch in the ClusterRole"
    );
    assert!(!cluster.contains(&("".into(), "secrets".into(), "delete".into())));
    for res in ["pods", "pods/log", "events"] {
        assert!(
            !cluster.iter().any(|k| k.0.is_empty() && k.1 == res),
            "{res} in the ClusterRole"
        );
    }
}

/// The mapping itself, on requests whose RBAC is known.
#[test]
fn requests_map_to_rbac_attributes() {
    let r = |method: &str, path: &str, query: &str| Seen {
        method: method.into(),
        path: path.into(),
        query: query.into(),
        content_type: String::new(),
        body: Value::Null,
    };
    let a = access(&r("GET", "/api/v1/namespaces/ns/pods/p/log", ""));
    assert_eq!(
        (a.resource.as_str(), a.verb.as_str(), a.namespace.as_deref()),
        ("pods/log", "get", Some("ns"))
    );
    let a = access(&r("GET", "/apis/batch/v1/namespaces/ns/jobs", "watch=true"));
    assert_eq!((a.group.as_str(), a.verb.as_str()), ("batch", "watch"));
    let a = access(&r(
        "PATCH",
        "/apis/dataprotection.kubeblocks.io/v1alpha1/backuprepos/r1/status",
        "",
    ));
    assert_eq!(
        (a.resource.as_str(), a.verb.as_str(), a.namespace.as_deref()),
        ("backuprepos/status", "patch", None)
    );
    let a = access(&r("GET", "/api/v1/secrets", "labelSelector=x"));
    assert_eq!((a.verb.as_str(), a.namespace.as_deref()), ("list", None));
}
