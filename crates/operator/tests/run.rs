//! The whole operator (`run`: both controllers, their watches, the metrics server) against a
//! mocked API server that answers by rule rather than by script, since watches and
//! reconciles interleave freely: lists answer with the objects below, watches stay open,
//! writes are echoed. Checks that every watch of spec §2.2 is opened, that a repository found
//! in the initial list is reconciled to Ready (finalizer, real probe, status), that a
//! malformed repository does not stall it, and that /healthz and /metrics answer.
#![allow(clippy::unwrap_used, clippy::expect_used)]

mod common;

use std::time::Duration;

use backuprepo_operator::{run, OperatorConfig};
use common::*;
use serde_json::{json, Value};
use tokio::io::{AsyncReadExt, AsyncWriteExt};

/// The answer to one request, by rule.
fn answer(r: &Seen, repo: &Value, bad: &Value, provider: &Value) -> (u16, Value) {
    let p = r.path.as_str();
    match r.method.as_str() {
        "GET" if p == REPO_PATH => (200, list("BackupRepoList", vec![bad.clone(), repo.clone()])),
        "GET" if p == SP_PATH => (200, list("StorageProviderList", vec![provider.clone()])),
        "GET" if p == format!("{SP_PATH}/local") => (200, provider.clone()),
        // No controller has led yet: the lease is created.
        "GET" if p.contains("/leases/") => (404, not_found(p)),
        "POST" if p.ends_with("/leases") => (201, r.body.clone()),
        // KubeBlocks' Backup and Restore kinds are not installed in this cluster.
        "GET" if p.ends_with("/backups") || p.ends_with("/restores") => (404, not_found(p)),
        "GET" => (200, list("List", vec![])),
        "PATCH" if p.starts_with(REPO_PATH) => (200, repo.clone()),
        "PATCH" if p.starts_with(SP_PATH) => (200, provider.clone()),
        "POST" if p.ends_with("/events") => (201, r.body.clone()),
        _ => (404, not_found(p)),
    }
}

async fn http_get(port: u16, path: &str) -> String {
    let mut s = tokio::net::TcpStream::connect(("127.0.0.1", port))
        .await
        .unwrap();
    s.write_all(format!("GET {path} HTTP/1.1\r\nHost: x\r\nConnection: close\r\n\r\n").as_bytes())
        .await
        .unwrap();
    let mut out = String::new();
    s.read_to_string(&mut out).await.unwrap();
    out
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn run_watches_everything_and_reconciles_what_it_lists() {
    let dir = tempfile::tempdir().unwrap();
    let mut repo = tool_repo(dir.path().to_str().unwrap());
    repo.metadata.finalizers = None;
    let repo = to_value(&repo);
    let bad = json!({"apiVersion": "dataprotection.kubeblocks.io/v1alpha1", "kind": "BackupRepo",
        "metadata": {"name": "bad", "uid": "u-bad", "resourceVersion": "3"},
        "spec": {"storageProviderRef": 5}});
    let provider = to_value(&local_provider());

    let (client, seen, server) = by_rule(move |r| answer(r, &repo, &bad, &provider));
    let (port, health_port) = (free_port(), free_port());
    let cfg = OperatorConfig {
        metrics_addr: ([127, 0, 0, 1], port).into(),
        health_addr: ([127, 0, 0, 1], health_port).into(),
        ..OperatorConfig::default()
    };
    let operator = tokio::spawn(run(client, cfg));

    // Wait for the repository's status to be written.
    let status_patch = |seen: &[Seen]| {
        seen.iter()
            .find(|r| r.method == "PATCH" && r.path == format!("{REPO_PATH}/r1/status"))
            .cloned()
    };
    let mut written = None;
    for _ in 0..300 {
        written = status_patch(&seen.lock().unwrap());
        if written.is_some() {
            break;
        }
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    let written = written.unwrap_or_else(|| panic!("no status written; seen: {seen:#?}"));
    assert_eq!(
        written.body["status"]["phase"], "Ready",
        "{:#}",
        written.body
    );

    // The only cluster-wide Secret watch is of the tool-config Secrets, by their label.
    for r in seen.lock().unwrap().iter() {
        if r.path == "/api/v1/secrets" && r.query.contains("watch=true") {
            assert!(
                r.query.contains("is-tool-config%3Dtrue")
                    || r.query.contains("is-tool-config=true"),
                "a cluster-wide Secret watch without the tool-config label: {}",
                r.query
            );
        }
    }
    // Every watch of spec §2.2 was opened (Backups and Restores only when installed).
    let watched: Vec<String> = seen
        .lock()
        .unwrap()
        .iter()
        .filter(|r| r.query.contains("watch=true"))
        .map(|r| r.path.clone())
        .collect();
    for path in [
        REPO_PATH,
        SP_PATH,
        // Secrets: credentials in the credential namespaces, tool configs by their label;
        // never every Secret of the cluster.
        "/api/v1/namespaces/kb-system/secrets",
        "/apis/storage.k8s.io/v1/storageclasses",
        "/api/v1/persistentvolumeclaims",
        // Pre-check Jobs are watched in the controller's namespace only.
        "/apis/batch/v1/namespaces/kb-system/jobs",
        "/apis/storage.k8s.io/v1/csidrivers",
    ] {
        assert!(
            watched.iter().any(|w| w == path),
            "{path} not watched: {watched:#?}"
        );
    }
    assert!(!watched.iter().any(|w| w.ends_with("/backups")));
    // The finalizer came first; the malformed object got a Warning event, not a crash.
    {
        let seen = seen.lock().unwrap();
        let first_write = seen
            .iter()
            .find(|r| r.method == "PATCH" && r.path.starts_with(REPO_PATH))
            .unwrap();
        assert_eq!(first_write.path, format!("{REPO_PATH}/r1"));
        assert!(first_write.body["metadata"]["finalizers"].is_array());
    }
    let mut invalid = None;
    for _ in 0..100 {
        invalid = seen
            .lock()
            .unwrap()
            .iter()
            .find(|r| r.method == "POST" && r.body["reason"] == "InvalidObject")
            .cloned();
        if invalid.is_some() {
            break;
        }
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    let invalid = invalid.unwrap_or_else(|| panic!("no InvalidObject event: {seen:#?}"));
    assert_eq!(invalid.body["regarding"]["name"], "bad");
    assert_eq!(invalid.body["type"], "Warning");

    // The metrics server answers.
    let health = http_get(health_port, "/healthz").await;
    assert!(
        health.starts_with("HTTP/1.1 200") && health.ends_with("ok\n"),
        "{health}"
    );
    let metrics = http_get(port, "/metrics").await;
    assert!(
        metrics.contains("backuprepo_repository_phase{") && metrics.contains("repo=\"r1\""),
        "{metrics}"
    );
    assert!(
        metrics.contains("backuprepo_probe_results_total"),
        "{metrics}"
    );

    operator.abort();
    server.abort();
}

/// A second replica while another leads (a fresh lease held by someone else): it serves
/// `/healthz` and `/metrics` (`backuprepo_leader 0`), opens no watch and writes nothing.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_follower_serves_health_and_metrics_and_does_not_reconcile() {
    let renewed = k8s_openapi::jiff::Timestamp::now().to_string();
    let lease = json!({"apiVersion": "coordination.k8s.io/v1", "kind": "Lease",
        "metadata": {"name": "backuprepo-controller", "namespace": "kb-system", "resourceVersion": "4"},
        "spec": {"holderIdentity": "the-leader", "leaseDurationSeconds": 15,
                 "renewTime": renewed, "leaseTransitions": 2}});
    let (client, seen, _server) = by_rule(move |r| {
        if r.method == "GET" && r.path.ends_with("/leases/backuprepo-controller") {
            (200, lease.clone())
        } else {
            (404, not_found(&r.path))
        }
    });
    let (port, health_port) = (free_port(), free_port());
    let cfg = OperatorConfig {
        metrics_addr: ([127, 0, 0, 1], port).into(),
        health_addr: ([127, 0, 0, 1], health_port).into(),
        instance: Some("the-follower".into()),
        ..OperatorConfig::default()
    };
    let operator = tokio::spawn(run(client, cfg));
    let mut health = String::new();
    for _ in 0..100 {
        tokio::time::sleep(Duration::from_millis(50)).await;
        if let Ok(mut s) = tokio::net::TcpStream::connect(("127.0.0.1", health_port)).await {
            s.write_all(b"GET /healthz HTTP/1.1\r\nHost: x\r\nConnection: close\r\n\r\n")
                .await
                .unwrap();
            s.read_to_string(&mut health).await.unwrap();
            break;
        }
    }
    assert!(health.starts_with("HTTP/1.1 200"), "{health}");
    let metrics = http_get(port, "/metrics").await;
    assert!(metrics.contains("backuprepo_leader 0"), "{metrics}");
    let seen = seen.lock().unwrap().clone();
    assert!(seen
        .iter()
        .any(|r| r.path.ends_with("/leases/backuprepo-controller")));
    assert!(
        seen.iter()
            .all(|r| r.method == "GET" && r.path.contains("/leases/")),
        "a follower only reads the lease: {seen:#?}"
    );
    operator.abort();
}

/// A port nothing listens on now.
fn free_port() -> u16 {
    let l = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
    l.local_addr().unwrap().port()
}
