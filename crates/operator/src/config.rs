//! Operator settings, read from the environment KubeBlocks' chart already sets (spec §2.1).

use std::collections::BTreeMap;
use std::net::SocketAddr;
use std::time::Duration;

use backuprepo_core::Settings;
use k8s_openapi::api::core::v1::{Affinity, Toleration};

#[derive(Debug, Clone)]
pub struct OperatorConfig {
    /// The core's settings (re-check intervals, Mount support, the CSI secret namespace).
    pub settings: Settings,
    /// Namespace of the CSI secrets and pre-check resources (`CM_NAMESPACE`).
    pub namespace: String,
    /// Upper bound of one in-process Tool probe (`BACKUPREPO_PROBE_TIMEOUT`, seconds).
    pub probe_timeout: Duration,
    /// Image of the Mount pre-check Job (`KUBEBLOCKS_TOOLS_IMAGE`).
    pub tools_image: String,
    /// Pull policy of that image (`KUBEBLOCKS_IMAGE_PULL_POLICY`).
    pub image_pull_policy: Option<String>,
    /// Service account of the pre-check pods (`WORKER_SERVICE_ACCOUNT_NAME`).
    pub worker_service_account: Option<String>,
    /// A Mount pre-check Job that has not finished after this long has failed (KubeBlocks: 15 min).
    pub pre_check_timeout: Duration,
    /// Where `/metrics` and `/healthz` listen (`BACKUPREPO_METRICS_ADDR`).
    pub metrics_addr: SocketAddr,
    /// Name reported on events (`reportingController`).
    pub controller_name: String,
    /// Instance reported on events (`POD_NAME`).
    pub instance: Option<String>,
    /// Placement of the pre-check pods (`CM_TOLERATIONS`, `CM_AFFINITY`, `CM_NODE_SELECTOR`,
    /// JSON), e.g. to run them on the nodes that run backups.
    pub tolerations: Option<Vec<Toleration>>,
    pub affinity: Option<Affinity>,
    pub node_selector: Option<BTreeMap<String, String>>,
}

/// A JSON setting; a malformed value is an error naming the variable and its expected shape.
fn json_setting<T: serde::de::DeserializeOwned>(
    get: &impl Fn(&str) -> Option<String>,
    key: &str,
    shape: &str,
) -> Result<Option<T>, String> {
    match get(key).filter(|v| !v.trim().is_empty()) {
        None => Ok(None),
        Some(v) => serde_json::from_str(&v)
            .map(Some)
            .map_err(|e| format!("{key}: expected {shape} as JSON: {e}")),
    }
}

impl Default for OperatorConfig {
    fn default() -> Self {
        let namespace = "kb-system".to_string();
        OperatorConfig {
            settings: Settings {
                mount_supported: true,
                namespace: namespace.clone(),
                ..Settings::default()
            },
            namespace,
            probe_timeout: backuprepo_transfer::probe::DEFAULT_TIMEOUT,
            tools_image: "apecloud/kubeblocks-tools:latest".into(),
            image_pull_policy: None,
            worker_service_account: None,
            pre_check_timeout: Duration::from_secs(15 * 60),
            metrics_addr: SocketAddr::from(([0, 0, 0, 0], 8080)),
            controller_name: "backuprepo-controller".into(),
            instance: None,
            tolerations: None,
            affinity: None,
            node_selector: None,
        }
    }
}

impl OperatorConfig {
    /// Defaults overridden by the environment; a malformed value is an error naming the variable.
    pub fn from_env() -> Result<OperatorConfig, String> {
        Self::from_lookup(|k| std::env::var(k).ok())
    }

    /// As [`OperatorConfig::from_env`], from any lookup (tests).
    pub fn from_lookup(get: impl Fn(&str) -> Option<String>) -> Result<OperatorConfig, String> {
        let mut c = OperatorConfig::default();
        let secs = |k: &str| -> Result<Option<Duration>, String> {
            match get(k) {
                None => Ok(None),
                Some(v) => v
                    .trim()
                    .parse::<u64>()
                    .map(|s| Some(Duration::from_secs(s)))
                    .map_err(|_| format!("{k}: expected a number of seconds, got {v:?}")),
            }
        };
        if let Some(ns) = get("CM_NAMESPACE").filter(|v| !v.is_empty()) {
            c.namespace = ns.clone();
            c.settings.namespace = ns;
        }
        if let Some(d) = secs("BACKUPREPO_PROBE_TIMEOUT")? {
            c.probe_timeout = d;
        }
        if let Some(d) = secs("BACKUPREPO_RECHECK_INTERVAL")? {
            c.settings.recheck_interval = (!d.is_zero()).then_some(d);
        }
        if let Some(d) = secs("BACKUPREPO_RETRY_INTERVAL")? {
            c.settings.retry_failed_interval = (!d.is_zero()).then_some(d);
        }
        if let Some(v) = get("KUBEBLOCKS_TOOLS_IMAGE").filter(|v| !v.is_empty()) {
            c.tools_image = v;
        }
        c.image_pull_policy = get("KUBEBLOCKS_IMAGE_PULL_POLICY").filter(|v| !v.is_empty());
        c.worker_service_account = get("WORKER_SERVICE_ACCOUNT_NAME").filter(|v| !v.is_empty());
        if let Some(v) = get("BACKUPREPO_METRICS_ADDR") {
            c.metrics_addr = v
                .parse()
                .map_err(|_| format!("BACKUPREPO_METRICS_ADDR: expected host:port, got {v:?}"))?;
        }
        c.instance = get("POD_NAME").filter(|v| !v.is_empty());
        c.tolerations = json_setting(&get, "CM_TOLERATIONS", "a list of tolerations")?;
        c.affinity = json_setting(&get, "CM_AFFINITY", "an affinity object")?;
        c.node_selector = json_setting(&get, "CM_NODE_SELECTOR", "a map of node labels")?;
        Ok(c)
    }
}
