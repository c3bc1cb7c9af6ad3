//! What the operator's tests share: the scripted API server of `backuprepo-kube-mock`, a fixed
//! clock and name suffix, and the objects the scenarios start from.
#![allow(dead_code, clippy::unwrap_used, clippy::expect_used)]

use std::sync::{Arc, Mutex};

use backuprepo_api::constants::FINALIZER;
use backuprepo_api::{BackupRepo, StorageProvider};
pub use backuprepo_kube_mock::*;
use backuprepo_operator::{Context, OperatorConfig};
use k8s_openapi::apimachinery::pkg::apis::meta::v1::Time;
use k8s_openapi::jiff::Timestamp;
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
