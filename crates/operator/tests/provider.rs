//! The StorageProvider controller and the metrics server.
#![allow(clippy::unwrap_used, clippy::expect_used)]

mod common;

use std::sync::Arc;

use backuprepo_api::StorageProvider;
use backuprepo_operator::metrics::Metrics;
use backuprepo_operator::{reconcile_provider, Action};
use common::*;
use serde_json::{json, Value};
use tokio::io::{AsyncReadExt, AsyncWriteExt};

fn sp(driver: Option<&str>, status: Option<Value>, finalizers: Option<Value>) -> StorageProvider {
    let mut v = json!({
        "apiVersion": "dataprotection.kubeblocks.io/v1alpha1", "kind": "StorageProvider",
        "metadata": {"name": "p1", "uid": "uid-p1", "resourceVersion": "3", "generation": 2},
        "spec": {"datasafedConfigTemplate": "[storage]\ntype = local\nroot = /x\n"}
    });
    if let Some(d) = driver {
        v["spec"]["csiDriverName"] = json!(d);
    }
    if let Some(s) = status {
        v["status"] = s;
    }
    if let Some(f) = finalizers {
        v["metadata"]["finalizers"] = f;
    }
    serde_json::from_value(v).unwrap()
}

async fn run(p: &StorageProvider, script: Vec<Step>) -> (Action, Vec<Seen>) {
    let (client, task) = scripted(script);
    let res = reconcile_provider(context(client), Arc::new(p.clone())).await;
    (res.unwrap(), task.await.unwrap())
}

const CSI: &str = "/apis/storage.k8s.io/v1/csidrivers/csi.example.com";

#[tokio::test]
async fn provider_without_driver_is_ready() {
    let p = sp(None, None, None);
    let (action, seen) = run(
        &p,
        vec![
            step("PATCH", format!("{SP_PATH}/p1/status"), 200, to_value(&p)),
            step("POST", EVENTS_DEFAULT, 201, Value::Null),
        ],
    )
    .await;
    assert_eq!(action, Action::await_change());
    assert_eq!(
        seen[0].body,
        json!({"status": {"phase": "Ready", "conditions": [{
            "type": "CSIDriverInstalled", "status": "True", "reason": "CSIDriverObjectFound",
            "message": "", "observedGeneration": 2, "lastTransitionTime": "2023-11-14T22:13:20Z"}]}})
    );
    assert_eq!(seen[1].body["reason"], "CSIDriverObjectFound");
}

/// Finding 8: a CSIDriver lookup that fails (here a 503) says nothing about the driver: no
/// status is written, and the error is transient, so the controller retries with backoff
/// instead of waiting for a change that may never come.
#[tokio::test]
async fn failed_driver_lookup_is_retried_not_written() {
    let p = sp(Some("csi.example.com"), None, None);
    let unavailable = json!({"kind": "Status", "apiVersion": "v1", "status": "Failure",
        "message": "etcd leader changed", "reason": "ServiceUnavailable", "code": 503});
    let (client, task) = scripted(vec![step("GET", CSI, 503, unavailable)]);
    let err = reconcile_provider(context(client), Arc::new(p))
        .await
        .unwrap_err();
    task.await.unwrap();
    assert_eq!(err.class(), backuprepo_operator::ErrorClass::Transient);
    assert!(
        err.to_string().contains("get CSIDriver csi.example.com"),
        "{err}"
    );
}

#[tokio::test]
async fn missing_driver_makes_it_not_ready_and_its_arrival_ready() {
    let p = sp(Some("csi.example.com"), None, None);
    let (_, seen) = run(
        &p,
        vec![
            step("GET", CSI, 404, not_found("csidrivers \"csi.example.com\"")),
            step("PATCH", format!("{SP_PATH}/p1/status"), 200, to_value(&p)),
            step("POST", EVENTS_DEFAULT, 201, Value::Null),
        ],
    )
    .await;
    let status = &seen[1].body["status"];
    assert_eq!(status["phase"], "NotReady");
    let c = condition(status, "CSIDriverInstalled");
    assert_eq!(
        (c["status"].as_str(), c["reason"].as_str()),
        (Some("Unknown"), Some("CheckCSIDriverFailed"))
    );
    assert_eq!(c["message"], "CSIDriver \"csi.example.com\" not found");
    assert_eq!(seen[2].body["type"], "Warning");

    // Same phase again: no write at all.
    let not_ready = sp(Some("csi.example.com"), Some(status.clone()), None);
    run(
        &not_ready,
        vec![step("GET", CSI, 404, not_found("csidriver"))],
    )
    .await;

    // The driver appears: Ready, transition time moves.
    let driver = json!({"apiVersion":"storage.k8s.io/v1","kind":"CSIDriver","metadata":{"name":"csi.example.com"},"spec":{}});
    let (_, seen) = run(
        &not_ready,
        vec![
            step("GET", CSI, 200, driver.clone()),
            step("PATCH", format!("{SP_PATH}/p1/status"), 200, to_value(&p)),
            step("POST", EVENTS_DEFAULT, 201, Value::Null),
        ],
    )
    .await;
    let c = condition(&seen[1].body["status"], "CSIDriverInstalled");
    assert_eq!(
        (c["status"].as_str(), c["message"].as_str()),
        (Some("True"), Some(""))
    );
    assert_eq!(seen[1].body["status"]["phase"], "Ready");
}

#[tokio::test]
async fn legacy_finalizer_is_removed() {
    let p = sp(
        None,
        Some(json!({"phase": "Ready"})),
        Some(json!([
            "dataprotection.kubeblocks.io/finalizer",
            "other/keep"
        ])),
    );
    let (_, seen) = run(
        &p,
        vec![step("PATCH", format!("{SP_PATH}/p1"), 200, to_value(&p))],
    )
    .await;
    assert_eq!(
        seen[0].body,
        json!({"metadata": {"finalizers": ["other/keep"], "resourceVersion": "3"}})
    );
}

async fn http_get(addr: std::net::SocketAddr, path: &str) -> String {
    let mut s = tokio::net::TcpStream::connect(addr).await.unwrap();
    s.write_all(format!("GET {path} HTTP/1.1\r\nHost: x\r\nConnection: close\r\n\r\n").as_bytes())
        .await
        .unwrap();
    let mut out = String::new();
    s.read_to_string(&mut out).await.unwrap();
    out
}

/// One listener of `routes` on an ephemeral port: its address, the stop sender and the task.
fn listen(
    routes: backuprepo_operator::server::Routes,
    metrics: Arc<Metrics>,
    limits: backuprepo_operator::server::Limits,
) -> (
    std::net::SocketAddr,
    tokio::sync::oneshot::Sender<()>,
    tokio::task::JoinHandle<std::io::Result<()>>,
) {
    let std_listener = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
    std_listener.set_nonblocking(true).unwrap();
    let addr = std_listener.local_addr().unwrap();
    let listener = tokio::net::TcpListener::from_std(std_listener).unwrap();
    let (tx, rx) = tokio::sync::oneshot::channel::<()>();
    let server = tokio::spawn(backuprepo_operator::server::serve(
        listener,
        routes,
        metrics,
        limits,
        async {
            let _ = rx.await;
        },
    ));
    (addr, tx, server)
}

#[tokio::test]
async fn metrics_and_healthz_are_served_on_their_own_listeners() {
    use backuprepo_operator::server::{Limits, Routes};
    let metrics = Arc::new(Metrics::default());
    metrics.set_phase("r1", Some(backuprepo_api::BackupRepoPhase::Ready));
    metrics.observe_probe("put", "Passed", 0.02);
    metrics.reconcile_error("backuprepo", backuprepo_operator::ErrorClass::Transient);
    let (addr, tx, server) = listen(Routes::Metrics, metrics.clone(), Limits::default());
    let (health_addr, health_tx, health) = listen(Routes::Health, metrics, Limits::default());
    let ok = http_get(health_addr, "/healthz").await;
    assert!(ok.starts_with("HTTP/1.1 200"), "{ok}");
    // Each listener answers its own routes only.
    assert!(http_get(addr, "/healthz").await.starts_with("HTTP/1.1 404"));
    assert!(http_get(health_addr, "/metrics")
        .await
        .starts_with("HTTP/1.1 404"));
    let body = http_get(addr, "/metrics").await;
    assert!(
        body.contains("backuprepo_repository_phase{repo=\"r1\",phase=\"Ready\"} 1"),
        "{body}"
    );
    assert!(
        body.contains("backuprepo_repository_phase{repo=\"r1\",phase=\"Failed\"} 0"),
        "{body}"
    );
    assert!(
        body.contains("backuprepo_probe_duration_seconds_count{operation=\"put\"} 1"),
        "{body}"
    );
    assert!(
        body.contains("backuprepo_probe_results_total{operation=\"put\",result=\"Passed\"} 1"),
        "{body}"
    );
    assert!(
        body.contains(
            "backuprepo_reconcile_errors_total{controller=\"backuprepo\",class=\"transient\"} 1"
        ),
        "{body}"
    );
    assert!(http_get(addr, "/nope").await.starts_with("HTTP/1.1 404"));
    tx.send(()).unwrap();
    health_tx.send(()).unwrap();
    server.await.unwrap().unwrap();
    health.await.unwrap().unwrap();
}

/// Issue 21 item 5: silent clients that fill the metrics port's slots neither queue the next
/// client (it is closed at once) nor touch the health probes, which answer on their own
/// listener; a client that never finishes its headers is cut off.
#[tokio::test]
async fn silent_metrics_clients_are_refused_over_the_limit_and_never_starve_the_probes() {
    use backuprepo_operator::server::{Limits, Routes};
    let limits = Limits {
        max_connections: 2,
        header_read_timeout: std::time::Duration::from_millis(800),
    };
    let metrics = Arc::new(Metrics::default());
    let (addr, tx, server) = listen(Routes::Metrics, metrics.clone(), limits);
    let (health_addr, health_tx, health) = listen(Routes::Health, metrics, Limits::default());
    // Silent clients hold every slot of the metrics port...
    let mut silent = Vec::new();
    for _ in 0..2 {
        let mut s = tokio::net::TcpStream::connect(addr).await.unwrap();
        s.write_all(b"GET /metrics HTTP/1.1\r\nHost: x\r\n")
            .await
            .unwrap();
        silent.push(s);
    }
    tokio::time::sleep(std::time::Duration::from_millis(100)).await;
    // ...the next one is closed at once, not queued...
    let mut next = tokio::net::TcpStream::connect(addr).await.unwrap();
    let _ = next
        .write_all(b"GET /metrics HTTP/1.1\r\nHost: x\r\nConnection: close\r\n\r\n")
        .await;
    let mut out = Vec::new();
    let closed = tokio::time::timeout(
        std::time::Duration::from_millis(300),
        next.read_to_end(&mut out),
    )
    .await;
    assert!(closed.is_ok(), "a client over the limit was queued");
    assert!(out.is_empty(), "served over the limit");
    // ...and the probes answer meanwhile.
    let ok = http_get(health_addr, "/healthz").await;
    assert!(ok.starts_with("HTTP/1.1 200"), "{ok}");
    // The silent ones are cut off once their header time runs out; then a client is served.
    for mut s in silent {
        let mut rest = Vec::new();
        let cut = tokio::time::timeout(std::time::Duration::from_secs(5), s.read_to_end(&mut rest))
            .await
            .expect("a client without headers was never cut off");
        assert!(cut.is_ok());
        assert!(
            !String::from_utf8_lossy(&rest).contains("200 OK"),
            "served a partial request"
        );
    }
    let body = http_get(addr, "/metrics").await;
    assert!(body.starts_with("HTTP/1.1 200"), "{body}");
    tx.send(()).unwrap();
    health_tx.send(()).unwrap();
    server.await.unwrap().unwrap();
    health.await.unwrap().unwrap();
}

#[test]
fn config_from_environment() {
    let env = |k: &str| match k {
        "CM_NAMESPACE" => Some("dp-system".to_string()),
        "BACKUPREPO_RECHECK_INTERVAL" => Some("0".to_string()),
        "BACKUPREPO_PROBE_TIMEOUT" => Some("5".to_string()),
        _ => None,
    };
    let c = backuprepo_operator::OperatorConfig::from_lookup(env).unwrap();
    assert_eq!(c.namespace, "dp-system");
    assert_eq!(c.settings.namespace, "dp-system");
    assert!(c.settings.mount_supported);
    assert_eq!(c.settings.recheck_interval, None);
    assert_eq!(c.probe_timeout, std::time::Duration::from_secs(5));
    let bad = backuprepo_operator::OperatorConfig::from_lookup(|k| {
        (k == "BACKUPREPO_PROBE_TIMEOUT").then(|| "soon".to_string())
    });
    assert!(bad.unwrap_err().contains("BACKUPREPO_PROBE_TIMEOUT"));
}
