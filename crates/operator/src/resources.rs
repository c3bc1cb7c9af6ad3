//! The Kubernetes objects the controller reads and writes besides its own kinds: the consumers
//! (Backups and Restores of KubeBlocks, read dynamically so no schema of theirs is compiled
//! in), label selectors, owner references, merge-patch bodies.

use std::collections::BTreeMap;

use backuprepo_api::constants::{
    BACKUP_REPO_NAME_LABEL, GROUP, VERSION, WAIT_REPO_PREPARATION_LABEL,
};
use backuprepo_api::BackupRepo;
use k8s_openapi::apimachinery::pkg::apis::meta::v1::OwnerReference;
use kube::api::{ApiResource, DynamicObject, GroupVersionKind, ListParams};
use kube::{Api, Client, Resource};
use serde_json::{json, Map, Value};

use crate::error::{is_not_found, Error, Result};

/// Label of a Backup giving its type; `Continuous` backups count even when Failed.
pub const BACKUP_TYPE_LABEL: &str = "dataprotection.kubeblocks.io/backup-type";

/// `backups.dataprotection.kubeblocks.io`.
pub fn backup_resource() -> ApiResource {
    ApiResource::from_gvk_with_plural(&GroupVersionKind::gvk(GROUP, VERSION, "Backup"), "backups")
}

/// `restores.dataprotection.kubeblocks.io`.
pub fn restore_resource() -> ApiResource {
    ApiResource::from_gvk_with_plural(
        &GroupVersionKind::gvk(GROUP, VERSION, "Restore"),
        "restores",
    )
}

/// `repo-name=<repo>`.
pub fn repo_selector(repo: &str) -> String {
    format!("{BACKUP_REPO_NAME_LABEL}={repo}")
}

/// The controller ownerReference KubeBlocks puts on every derived object, so the garbage
/// collector removes them with the repository.
pub fn owner_ref(repo: &BackupRepo) -> OwnerReference {
    OwnerReference {
        api_version: BackupRepo::api_version(&()).to_string(),
        kind: BackupRepo::kind(&()).to_string(),
        name: repo.name().to_string(),
        uid: repo.metadata.uid.clone().unwrap_or_default(),
        controller: Some(true),
        block_owner_deletion: Some(true),
    }
}

/// Whether `refs` holds a reference to the repository (by UID, as KubeBlocks checks).
pub fn owned_by(refs: Option<&Vec<OwnerReference>>, repo: &BackupRepo) -> bool {
    let uid = repo.metadata.uid.as_deref().unwrap_or_default();
    !uid.is_empty() && refs.is_some_and(|r| r.iter().any(|o| o.uid == uid))
}

fn label<'a>(o: &'a DynamicObject, key: &str) -> Option<&'a str> {
    o.metadata
        .labels
        .as_ref()
        .and_then(|l| l.get(key))
        .map(String::as_str)
}

/// A consumer in phase `Failed` no longer needs the repository, unless it is a continuous
/// backup (it still holds logs) — KubeBlocks' rule.
pub fn is_active_consumer(o: &DynamicObject) -> bool {
    let failed = o
        .data
        .get("status")
        .and_then(|s| s.get("phase"))
        .and_then(Value::as_str)
        == Some("Failed");
    !failed || label(o, BACKUP_TYPE_LABEL) == Some("Continuous")
}

/// Whether a consumer asks the repository controller to prepare its namespace.
pub fn waits_for_preparation(o: &DynamicObject) -> bool {
    label(o, WAIT_REPO_PREPARATION_LABEL) == Some("true")
}

/// List consumers of `ar` in all namespaces matching `selector`. A kind whose CRD is not
/// installed has none.
pub async fn list_consumers(
    client: &Client,
    ar: &ApiResource,
    selector: &str,
) -> Result<Vec<DynamicObject>> {
    let api: Api<DynamicObject> = Api::all_with(client.clone(), ar);
    match api.list(&ListParams::default().labels(selector)).await {
        Ok(list) => Ok(list.items),
        Err(e) if is_not_found(&e) => Ok(Vec::new()),
        Err(e) => Err(Error::kube(format!("list {}", ar.plural))(e)),
    }
}

/// A JSON merge patch of `status` that also clears the fields `old` had and `new` lacks (a
/// plain merge patch of the serialised status would leave them behind).
pub fn status_merge_patch<T: serde::Serialize>(old: Option<&T>, new: &T) -> Value {
    let mut body = match serde_json::to_value(new) {
        Ok(Value::Object(m)) => m,
        _ => Map::new(),
    };
    if let Some(Ok(Value::Object(old))) = old.map(serde_json::to_value) {
        for k in old.keys() {
            if !body.contains_key(k) {
                body.insert(k.clone(), Value::Null);
            }
        }
    }
    json!({ "status": body })
}

/// The merge patch that makes `status.replication` `new` (clearing what `old` had and `new`
/// lacks, such as a last error).
pub fn replication_patch(
    old: Option<&backuprepo_api::ReplicationStatus>,
    new: &backuprepo_api::ReplicationStatus,
) -> Value {
    json!({ "status": { "replication": status_merge_patch(old, new)["status"].clone() } })
}

/// `{"metadata":{"annotations":{..}}}` with only the entries that differ from `current`, and
/// `null` for the `remove` keys present;
/// `None` when nothing differs.
pub fn annotations_patch(
    current: Option<&BTreeMap<String, String>>,
    wanted: &BTreeMap<String, String>,
    remove: &[&str],
) -> Option<Value> {
    let mut changed: Map<String, Value> = wanted
        .iter()
        .filter(|(k, v)| current.and_then(|c| c.get(*k)) != Some(*v))
        .map(|(k, v)| (k.clone(), Value::String(v.clone())))
        .collect();
    for k in remove {
        if current.is_some_and(|c| c.contains_key(*k)) {
            changed.insert((*k).to_string(), Value::Null);
        }
    }
    (!changed.is_empty()).then(|| json!({ "metadata": { "annotations": changed } }))
}
