//! The controller's install settings, read from the same values file as the chart's
//! `backupRepo:` block: the `controller:` block (and `createNamespace`). `backuprepo install
//! -f values.yaml` and `helm install -f values.yaml` read the same keys with the same
//! defaults: the chart's `values.yaml` is written from [`ControllerValues::default`]
//! ([`crate::chart`]), and a test renders both and compares them.

use std::collections::BTreeMap;

use serde::{Deserialize, Serialize};
use serde_json::Value;

use crate::DeployError;

/// The `controller:` block. Every key is optional; a key that is not one of these is refused
/// (a typo would otherwise be ignored).
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase", deny_unknown_fields, default)]
pub struct ControllerValues {
    /// The controller image.
    pub image: String,
    /// Controller replicas (one leads; the others wait on the Lease).
    pub replicas: i32,
    /// The container's resources (requests and limits).
    pub resources: Value,
    /// The namespaces a repository without `spec.allowedNamespaces` hands its config to:
    /// `team-a,team-b`, `*`, or empty for every namespace (KubeBlocks' behaviour).
    pub allowed_namespaces: String,
    /// Keys scoped to each consumer namespace: `auto` (where the storage's IAM allows it),
    /// `true` or `false` (`BACKUPREPO_SCOPED_CREDENTIALS`).
    pub scoped_keys: String,
    /// Seconds between re-checks of a Ready repository (`BACKUPREPO_RECHECK_INTERVAL`);
    /// `None`: the controller's default (30 min); 0 turns them off.
    pub recheck_interval: Option<u64>,
    /// Seconds between re-checks of a Failed repository (`BACKUPREPO_RETRY_INTERVAL`).
    pub retry_interval: Option<u64>,
    /// The NetworkPolicy that admits only the metrics scrapers and the kubelet.
    pub network_policy: bool,
    pub pod_disruption_budget: PdbValues,
    pub node_selector: BTreeMap<String, String>,
    pub tolerations: Vec<Value>,
    pub affinity: Value,
}

/// `controller.podDisruptionBudget`.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase", deny_unknown_fields, default)]
pub struct PdbValues {
    pub enabled: bool,
    pub min_available: i32,
}

impl Default for PdbValues {
    fn default() -> Self {
        PdbValues {
            enabled: false,
            min_available: 1,
        }
    }
}

impl Default for ControllerValues {
    fn default() -> Self {
        ControllerValues {
            image: format!("backuprepo:{}", env!("CARGO_PKG_VERSION")),
            replicas: 2,
            resources: serde_json::json!({
                "requests": {"cpu": "50m", "memory": "64Mi"},
                "limits": {"cpu": "500m", "memory": "256Mi"},
            }),
            allowed_namespaces: String::new(),
            scoped_keys: "auto".into(),
            recheck_interval: None,
            retry_interval: None,
            network_policy: true,
            pod_disruption_budget: PdbValues::default(),
            node_selector: BTreeMap::new(),
            tolerations: Vec::new(),
            affinity: Value::Object(Default::default()),
        }
    }
}

/// The install-wide keys of a values file besides `backupRepo:`.
#[derive(Clone, Debug, Default, PartialEq)]
pub struct InstallValues {
    pub controller: ControllerValues,
    /// Make the release namespace (`helm install --create-namespace` is Helm's other way).
    pub create_namespace: bool,
    /// `monitoring.enabled`: the PrometheusRule and the Grafana dashboard.
    pub monitoring: bool,
}

impl InstallValues {
    /// Read `controller:` and `createNamespace` from a values file (other keys, such as
    /// KubeBlocks' own, are left to their readers). Errors name the key.
    pub fn from_values(text: &str) -> Result<InstallValues, DeployError> {
        let doc: serde_yaml_ng::Value =
            serde_yaml_ng::from_str(text).map_err(|e| DeployError::ValuesYaml(e.to_string()))?;
        let mut out = InstallValues::default();
        let serde_yaml_ng::Value::Mapping(m) = doc else {
            return Ok(out);
        };
        if let Some(c) = m.get("controller").filter(|c| !c.is_null()) {
            // Helm's rule: the file's maps merge into the defaults key by key (so
            // `resources: {requests: ...}` keeps the default limits); lists and scalars
            // replace.
            let given: Value = serde_yaml_ng::from_value(c.clone())
                .map_err(|e| DeployError::values("controller", e.to_string()))?;
            let mut merged = serde_json::to_value(ControllerValues::default())
                .map_err(|e| DeployError::values("controller", e.to_string()))?;
            merge(&mut merged, given);
            out.controller = serde_json::from_value(merged)
                .map_err(|e| DeployError::values("controller", e.to_string()))?;
        }
        if let Some(v) = m.get("createNamespace").filter(|c| !c.is_null()) {
            out.create_namespace = v
                .as_bool()
                .ok_or_else(|| DeployError::values("createNamespace", "must be true or false"))?;
        }
        if let Some(v) = m.get("monitoring").filter(|c| !c.is_null()) {
            out.monitoring = v
                .get("enabled")
                .map(|e| {
                    e.as_bool().ok_or_else(|| {
                        DeployError::values("monitoring.enabled", "must be true or false")
                    })
                })
                .transpose()?
                .unwrap_or(false);
        }
        let c = &out.controller;
        if c.replicas < 0 {
            return Err(DeployError::values(
                "controller.replicas",
                "must be 0 or more",
            ));
        }
        if !matches!(c.scoped_keys.as_str(), "auto" | "true" | "false") {
            return Err(DeployError::values(
                "controller.scopedKeys",
                format!("{:?} is not auto, true or false", c.scoped_keys),
            ));
        }
        Ok(out)
    }
}

/// Merge `over` into `base` as Helm coalesces values: maps key by key, everything else
/// replaced.
fn merge(base: &mut Value, over: Value) {
    match (base, over) {
        (Value::Object(b), Value::Object(o)) => {
            for (k, v) in o {
                match b.get_mut(&k) {
                    Some(slot) if slot.is_object() && v.is_object() => merge(slot, v),
                    _ => {
                        b.insert(k, v);
                    }
                }
            }
        }
        (b, o) => *b = o,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn controller_block_with_defaults_and_named_errors() {
        let v = InstallValues::from_values("backupRepo: {create: false}\n").unwrap();
        assert_eq!(v, InstallValues::default());
        let v = InstallValues::from_values(
            "controller:\n  replicas: 3\n  nodeSelector: {disk: ssd}\n  podDisruptionBudget: {enabled: true}\ncreateNamespace: true\n",
        )
        .unwrap();
        assert_eq!(v.controller.replicas, 3);
        assert!(v.controller.pod_disruption_budget.enabled);
        assert_eq!(v.controller.pod_disruption_budget.min_available, 1);
        assert_eq!(v.controller.scoped_keys, "auto");
        assert!(v.create_namespace);
        // Maps merge into the defaults, as Helm merges values.
        let v =
            InstallValues::from_values("controller:\n  resources: {requests: {cpu: 1}}\n").unwrap();
        assert_eq!(v.controller.resources["requests"]["cpu"], 1);
        assert_eq!(v.controller.resources["requests"]["memory"], "64Mi");
        assert_eq!(v.controller.resources["limits"]["cpu"], "500m");
        let err = InstallValues::from_values("controller:\n  replica: 3\n")
            .unwrap_err()
            .to_string();
        assert!(
            err.contains("controller") && err.contains("replica"),
            "{err}"
        );
        let err = InstallValues::from_values("controller: {scopedKeys: maybe}\n")
            .unwrap_err()
            .to_string();
        assert!(err.contains("controller.scopedKeys"), "{err}");
    }
}
