//! A scripted API server at the HTTP layer: each test lists the requests the reconcile must
//! make, in order (method, path, query), with the response to give; the mock checks each one
//! and records its body. A request out of script fails the test with both sides shown.
#![allow(dead_code, clippy::unwrap_used, clippy::expect_used)]

use std::sync::{Arc, Mutex};
use std::time::Duration;

use backuprepo_api::constants::FINALIZER;
use backuprepo_api::{BackupRepo, StorageProvider};
use backuprepo_operator::{Context, OperatorConfig};
use http::{Request, Response};
use k8s_openapi::apimachinery::pkg::apis::meta::v1::Time;
use k8s_openapi::jiff::Timestamp;
use kube::client::Body;
use kube::Client;
use serde_json::{json, Value};

pub const NOW: i64 = 1_700_000_000;
pub const SUFFIX: &str = "abcdef";
pub const REPO_PATH: &str = "/apis/dataprotection.kubeblocks.io/v1alpha1/backuprepos";
pub const SP_PATH: &str = "/apis/dataprotection.kubeblocks.io/v1alpha1/storageproviders";
pub const EVENTS_DEFAULT: &str = "/apis/events.k8s.io/v1/namespaces/default/events";

pub fn now() -> Time {
    Time(Timestamp::from_second(NOW).unwrap())
}

pub fn at(secs: i64) -> Time {
    Time(Timestamp::from_second(secs).unwrap())
}

/// One expected request and its response.
#[derive(Debug, Clone)]
pub struct Step {
    pub method: &'static str,
    pub path: String,
    /// Substrings the decoded query must contain.
    pub query: Vec<String>,
    pub status: u16,
    pub body: Value,
}

pub fn step(method: &'static str, path: impl Into<String>, status: u16, body: Value) -> Step {
    Step {
        method,
        path: path.into(),
        query: Vec::new(),
        status,
        body,
    }
}

impl Step {
    pub fn query(mut self, q: &str) -> Step {
        self.query.push(q.to_string());
        self
    }
}

/// A request as the mock received it.
#[derive(Debug, Clone)]
pub struct Seen {
    pub method: String,
    pub path: String,
    pub query: String,
    pub content_type: String,
    pub body: Value,
}

pub fn not_found(what: &str) -> Value {
    json!({"kind":"Status","apiVersion":"v1","status":"Failure","message":format!("{what} not found"),"reason":"NotFound","code":404})
}

pub fn list(kind: &str, items: Vec<Value>) -> Value {
    json!({"apiVersion":"v1","kind":kind,"metadata":{"resourceVersion":"1"},"items":items})
}

fn decode(q: &str) -> String {
    let b = q.as_bytes();
    let mut out = Vec::new();
    let mut i = 0;
    while i < b.len() {
        if b[i] == b'%' && i + 2 < b.len() {
            let h = u8::from_str_radix(std::str::from_utf8(&b[i + 1..i + 3]).unwrap(), 16).unwrap();
            out.push(h);
            i += 3;
        } else if b[i] == b'+' {
            out.push(b' ');
            i += 1;
        } else {
            out.push(b[i]);
            i += 1;
        }
    }
    String::from_utf8(out).unwrap()
}

/// A client whose API server follows `script`; the join handle yields what it saw.
pub fn scripted(script: Vec<Step>) -> (Client, tokio::task::JoinHandle<Vec<Seen>>) {
    let (svc, mut handle) = tower_test::mock::pair::<Request<Body>, Response<Body>>();
    let task = tokio::spawn(async move {
        let mut seen = Vec::new();
        for (i, s) in script.into_iter().enumerate() {
            let next = tokio::time::timeout(Duration::from_secs(30), handle.next_request()).await;
            let Ok(Some((req, send))) = next else {
                panic!(
                    "step {i}: expected {} {} but no request came; seen so far: {seen:#?}",
                    s.method, s.path
                );
            };
            let method = req.method().to_string();
            let path = req.uri().path().to_string();
            let query = decode(req.uri().query().unwrap_or_default());
            let content_type = req
                .headers()
                .get(http::header::CONTENT_TYPE)
                .map(|v| v.to_str().unwrap().to_string())
                .unwrap_or_default();
            let bytes = req.into_body().collect_bytes().await.unwrap();
            let body = if bytes.is_empty() {
                Value::Null
            } else {
                serde_json::from_slice(&bytes).unwrap_or(Value::Null)
            };
            assert!(
                method == s.method && path == s.path && s.query.iter().all(|q| query.contains(q.as_str())),
                "step {i}: expected {} {} ?{:?}, got {method} {path} ?{query}\nbody: {body:#}\nseen so far: {seen:#?}",
                s.method, s.path, s.query
            );
            // Events are echoed back as created.
            let resp_body = if s.body.is_null() {
                body.clone()
            } else {
                s.body.clone()
            };
            seen.push(Seen {
                method,
                path,
                query,
                content_type,
                body,
            });
            // A string body is sent as text (pod logs), anything else as JSON.
            let (ctype, bytes) = match &resp_body {
                Value::String(t) => ("text/plain", t.clone().into_bytes()),
                v => ("application/json", serde_json::to_vec(v).unwrap()),
            };
            let resp = Response::builder()
                .status(s.status)
                .header("content-type", ctype)
                .body(Body::from(bytes))
                .unwrap();
            send.send_response(resp);
        }
        // Nothing more may come.
        if let Ok(Some((req, _))) =
            tokio::time::timeout(Duration::from_millis(200), handle.next_request()).await
        {
            panic!(
                "unexpected extra request {} {}; seen: {seen:#?}",
                req.method(),
                req.uri()
            );
        }
        seen
    });
    (Client::new(svc, "default"), task)
}

/// The defaults: namespace `kb-system`, re-checks every 30 min (Ready) and 1 min (Failed).
pub fn config() -> OperatorConfig {
    OperatorConfig::default()
}

pub fn context(client: Client) -> Arc<Context> {
    Arc::new(
        Context::new(client, config())
            .with_clock(Arc::new(now))
            .with_suffixes(Arc::new(|| SUFFIX.to_string())),
    )
}

pub fn local_provider() -> StorageProvider {
    serde_yaml_ng::from_str(include_str!("../../../catalog/providers/local.yaml")).unwrap()
}

pub fn tool_repo(path: &str) -> BackupRepo {
    serde_json::from_value(json!({
        "apiVersion": "dataprotection.kubeblocks.io/v1alpha1",
        "kind": "BackupRepo",
        "metadata": {
            "name": "r1", "uid": "0123456789-uid-r1", "resourceVersion": "1", "generation": 1,
            "finalizers": [FINALIZER]
        },
        "spec": {
            "storageProviderRef": "local", "accessMethod": "Tool", "pvReclaimPolicy": "Retain",
            "config": {"path": path}
        }
    }))
    .unwrap()
}

pub fn to_value<T: serde::Serialize>(t: &T) -> Value {
    serde_json::to_value(t).unwrap()
}

/// RFC 7386 merge.
pub fn merge(target: &mut Value, patch: &Value) {
    match patch {
        Value::Object(p) => {
            if !target.is_object() {
                *target = json!({});
            }
            let t = target.as_object_mut().unwrap();
            for (k, v) in p {
                if v.is_null() {
                    t.remove(k);
                } else {
                    merge(t.entry(k.clone()).or_insert(Value::Null), v);
                }
            }
        }
        _ => *target = patch.clone(),
    }
}

/// Apply what the reconcile wrote to the repository (status and metadata merge patches).
pub fn apply_writes(repo: &BackupRepo, seen: &[Seen]) -> BackupRepo {
    let mut v = to_value(repo);
    for s in seen {
        if s.method == "PATCH" && s.path.starts_with(&format!("{REPO_PATH}/r1")) {
            let mut body = s.body.clone();
            if let Some(m) = body.get_mut("metadata").and_then(Value::as_object_mut) {
                m.remove("resourceVersion");
            }
            merge(&mut v, &body);
        }
    }
    serde_json::from_value(v).unwrap()
}

pub fn condition<'a>(status: &'a Value, type_: &str) -> &'a Value {
    status["conditions"]
        .as_array()
        .unwrap()
        .iter()
        .find(|c| c["type"] == type_)
        .unwrap_or_else(|| panic!("no condition {type_} in {status:#}"))
}

pub type Shared<T> = Arc<Mutex<T>>;
