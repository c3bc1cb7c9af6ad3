//! Operator settings, read from the environment KubeBlocks' chart already sets (spec §2.1).

use std::collections::BTreeMap;
use std::net::SocketAddr;
use std::time::Duration;

use backuprepo_core::env::{number, seconds};
use backuprepo_core::Settings;
use k8s_openapi::api::core::v1::{Affinity, Toleration};

#[derive(Debug, Clone)]
pub struct OperatorConfig {
    /// The core's settings (re-check intervals, Mount support, the CSI secret namespace).
    pub settings: Settings,
    /// The controller's own namespace: CSI secrets and pre-check resources go there
    /// (`CM_NAMESPACE`, else `POD_NAMESPACE` as the Deployment sets it, else `kb-system`).
    pub namespace: String,
    /// Namespaces the controller reads credential Secrets from (`BACKUPREPO_CREDENTIAL_NAMESPACES`,
    /// comma-separated; `*` for any). Default: its own namespace and `kb-system`, where the
    /// seed's examples put them. A repository naming a Secret elsewhere gets a condition,
    /// so creating a BackupRepo cannot make the controller read (and send) any Secret.
    pub credential_namespaces: Option<Vec<String>>,
    /// The namespaces a repository without `spec.allowedNamespaces` may hand its tool config
    /// to: `None`, every namespace (KubeBlocks' behaviour, the default, `*`), or a list
    /// (`BACKUPREPO_ALLOWED_NAMESPACES=a,b`, which `install --allowed-namespaces` sets;
    /// `BACKUPREPO_REQUIRE_ALLOWED_NAMESPACES=true` is the empty list).
    pub default_allowed_namespaces: Option<Vec<String>>,
    /// Whether probes may contact link-local and cloud-metadata addresses and the cluster's API
    /// server (`BACKUPREPO_ALLOW_INTERNAL_ENDPOINTS=true`); refused by default.
    pub allow_internal_endpoints: bool,
    /// Hosts refused as probe endpoints besides the metadata ranges: the API server
    /// (`KUBERNETES_SERVICE_HOST`).
    pub refused_hosts: Vec<String>,
    /// At most this many repositories are reconciled at once
    /// (`BACKUPREPO_MAX_CONCURRENT_RECONCILES`).
    pub max_concurrent_reconciles: u16,
    /// At most this many storage probes run at once (`BACKUPREPO_MAX_CONCURRENT_PROBES`); a
    /// probe holds a multipart part in memory.
    pub max_concurrent_probes: usize,
    /// Upper bound of one in-process Tool probe (`BACKUPREPO_PROBE_TIMEOUT`, seconds).
    pub probe_timeout: Duration,
    /// The binary that runs Tool checks in a sandboxed child without Kubernetes credentials
    /// (see [`crate::probe_worker`]): this `backuprepo` binary; `None` (checks in this process)
    /// with `BACKUPREPO_PROBE_WORKER=off`, and in processes that are not `backuprepo` (tests).
    pub probe_worker: Option<std::path::PathBuf>,
    /// Image of the Mount pre-check Job (`KUBEBLOCKS_TOOLS_IMAGE`).
    pub tools_image: String,
    /// Pull policy of that image (`KUBEBLOCKS_IMAGE_PULL_POLICY`).
    pub image_pull_policy: Option<String>,
    /// Service account of the pre-check pods (`WORKER_SERVICE_ACCOUNT_NAME`).
    pub worker_service_account: Option<String>,
    /// A Mount pre-check Job that has not finished after this long has failed (KubeBlocks: 15 min).
    pub pre_check_timeout: Duration,
    /// Where `/metrics` listens (`BACKUPREPO_METRICS_ADDR`, default 0.0.0.0:8080).
    pub metrics_addr: SocketAddr,
    /// Where `/healthz` and `/readyz` listen (`BACKUPREPO_HEALTH_ADDR`, default 0.0.0.0:8081):
    /// a listener of their own, so metrics clients cannot starve the kubelet's probes.
    pub health_addr: SocketAddr,
    /// Name reported on events (`reportingController`).
    pub controller_name: String,
    /// Instance reported on events (`POD_NAME`); also this replica's identity in the
    /// leader-election Lease.
    pub instance: Option<String>,
    /// Whether replicas elect a leader through the Lease (`BACKUPREPO_LEADER_ELECTION`, default
    /// true); off, every replica reconciles (run one only).
    pub leader_election: bool,
    /// Placement of the pre-check pods (`CM_TOLERATIONS`, `CM_AFFINITY`, `CM_NODE_SELECTOR`,
    /// JSON), e.g. to run them on the nodes that run backups.
    pub tolerations: Option<Vec<Toleration>>,
    pub affinity: Option<Affinity>,
    pub node_selector: Option<BTreeMap<String, String>>,
    /// Scoped keys for consumer namespaces: what repositories without the annotation get
    /// (`BACKUPREPO_SCOPED_CREDENTIALS`: `auto`, the default, `true` or `false`), rotation age
    /// (`BACKUPREPO_KEY_ROTATION`, seconds, default 30 days) and how long a replaced key keeps
    /// working (`BACKUPREPO_KEY_GRACE`, seconds, default 1 day).
    pub scoping: backuprepo_core::scoping::Policy,
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

/// The pre-check image when `KUBEBLOCKS_TOOLS_IMAGE` is not set: the pre-check needs only a
/// POSIX shell, so a small pinned image does.
pub const DEFAULT_TOOLS_IMAGE: &str = "docker.io/library/busybox:1.36.1";

/// Namespace KubeBlocks installs into; the seed's credential Secrets live there.
pub const KUBEBLOCKS_NAMESPACE: &str = "kb-system";

/// Refuse an image that is not pinned: no tag, or `latest`. A digest always pins.
fn check_pinned_image(image: &str) -> Result<(), String> {
    if image.contains("@sha256:") {
        return Ok(());
    }
    let last = image.rsplit('/').next().unwrap_or(image);
    match last.split_once(':') {
        Some((_, tag)) if !tag.is_empty() && tag != "latest" => Ok(()),
        _ => Err(format!(
            "KUBEBLOCKS_TOOLS_IMAGE: {image:?} is not pinned; give a version tag or a digest \
             (e.g. {DEFAULT_TOOLS_IMAGE}), never `latest`"
        )),
    }
}

/// A namespace list setting: unset or empty → `None`; `*` → `Some(None)` (every namespace);
/// `a,b` → `Some(Some([a, b]))`.
fn namespace_list(get: &impl Fn(&str) -> Option<String>, key: &str) -> Option<Option<Vec<String>>> {
    let v = get(key)?;
    match v.trim() {
        "" => None,
        "*" => Some(None),
        list => Some(Some(
            list.split(',')
                .map(|n| n.trim().to_string())
                .filter(|n| !n.is_empty())
                .collect(),
        )),
    }
}

fn flag(get: &impl Fn(&str) -> Option<String>, key: &str) -> Result<Option<bool>, String> {
    match get(key).map(|v| v.trim().to_ascii_lowercase()) {
        None => Ok(None),
        Some(v) if v.is_empty() => Ok(None),
        Some(v) => match v.as_str() {
            "true" | "1" | "yes" => Ok(Some(true)),
            "false" | "0" | "no" => Ok(Some(false)),
            _ => Err(format!("{key}: expected true or false, got {v:?}")),
        },
    }
}

impl Default for OperatorConfig {
    fn default() -> Self {
        let namespace = KUBEBLOCKS_NAMESPACE.to_string();
        OperatorConfig {
            probe_worker: None,
            settings: Settings {
                mount_supported: true,
                namespace: namespace.clone(),
                ..Settings::default()
            },
            credential_namespaces: Some(vec![namespace.clone()]),
            namespace,
            default_allowed_namespaces: None,
            allow_internal_endpoints: false,
            refused_hosts: Vec::new(),
            max_concurrent_reconciles: 16,
            max_concurrent_probes: 4,
            probe_timeout: backuprepo_transfer::probe::DEFAULT_TIMEOUT,
            tools_image: DEFAULT_TOOLS_IMAGE.into(),
            image_pull_policy: None,
            worker_service_account: None,
            pre_check_timeout: Duration::from_secs(15 * 60),
            metrics_addr: SocketAddr::from(([0, 0, 0, 0], 8080)),
            health_addr: SocketAddr::from(([0, 0, 0, 0], 8081)),
            controller_name: "backuprepo-controller".into(),
            instance: None,
            leader_election: true,
            tolerations: None,
            affinity: None,
            node_selector: None,
            scoping: backuprepo_core::scoping::Policy::default(),
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
        if let Some(ns) = ["CM_NAMESPACE", "POD_NAMESPACE"]
            .iter()
            .find_map(|k| get(k).filter(|v| !v.trim().is_empty()))
        {
            c.namespace = ns.trim().to_string();
            c.settings.namespace = c.namespace.clone();
        }
        c.credential_namespaces = match namespace_list(&get, "BACKUPREPO_CREDENTIAL_NAMESPACES") {
            Some(list) => list,
            None => {
                let mut list = vec![c.namespace.clone()];
                if c.namespace != KUBEBLOCKS_NAMESPACE {
                    list.push(KUBEBLOCKS_NAMESPACE.to_string());
                }
                Some(list)
            }
        };
        if let Some(list) = namespace_list(&get, "BACKUPREPO_ALLOWED_NAMESPACES") {
            c.default_allowed_namespaces = list;
        }
        if flag(&get, "BACKUPREPO_REQUIRE_ALLOWED_NAMESPACES")? == Some(true) {
            c.default_allowed_namespaces = Some(Vec::new());
        }
        c.probe_worker = match get("BACKUPREPO_PROBE_WORKER").as_deref().map(str::trim) {
            Some("off") => None,
            Some(p) if !p.is_empty() => Some(std::path::PathBuf::from(p)),
            _ => crate::probe_worker::default_worker(),
        };
        if let Some(elect) = flag(&get, "BACKUPREPO_LEADER_ELECTION")? {
            c.leader_election = elect;
        }
        if let Some(allow) = flag(&get, "BACKUPREPO_ALLOW_INTERNAL_ENDPOINTS")? {
            c.allow_internal_endpoints = allow;
        }
        c.refused_hosts = get("KUBERNETES_SERVICE_HOST")
            .map(|h| h.trim().to_string())
            .filter(|h| !h.is_empty())
            .into_iter()
            .collect();
        if let Some(n) = number::<u16>(
            &get,
            "BACKUPREPO_MAX_CONCURRENT_RECONCILES",
            "a positive whole number",
        )? {
            c.max_concurrent_reconciles = n.max(1);
        }
        if let Some(n) = number::<usize>(
            &get,
            "BACKUPREPO_MAX_CONCURRENT_PROBES",
            "a positive whole number",
        )? {
            c.max_concurrent_probes = n.max(1);
        }
        if let Some(d) = seconds(&get, "BACKUPREPO_PROBE_TIMEOUT")? {
            c.probe_timeout = d;
        }
        c.settings.override_from(&get)?;
        if let Some(v) = get("KUBEBLOCKS_TOOLS_IMAGE").filter(|v| !v.is_empty()) {
            check_pinned_image(&v)?;
            c.tools_image = v;
        }
        c.image_pull_policy = get("KUBEBLOCKS_IMAGE_PULL_POLICY").filter(|v| !v.is_empty());
        c.worker_service_account = get("WORKER_SERVICE_ACCOUNT_NAME").filter(|v| !v.is_empty());
        for (key, addr) in [
            ("BACKUPREPO_METRICS_ADDR", &mut c.metrics_addr),
            ("BACKUPREPO_HEALTH_ADDR", &mut c.health_addr),
        ] {
            if let Some(v) = get(key) {
                *addr = v
                    .parse()
                    .map_err(|_| format!("{key}: expected host:port, got {v:?}"))?;
            }
        }
        if let Some(v) = get("BACKUPREPO_SCOPED_CREDENTIALS").filter(|v| !v.trim().is_empty()) {
            c.scoping.by_default = v
                .parse()
                .map_err(|e| format!("BACKUPREPO_SCOPED_CREDENTIALS: {e}"))?;
        }
        if let Some(d) = seconds(&get, "BACKUPREPO_KEY_ROTATION")? {
            if d.is_zero() {
                return Err("BACKUPREPO_KEY_ROTATION: expected a number of seconds above 0".into());
            }
            c.scoping.rotate_every = d;
        }
        if let Some(d) = seconds(&get, "BACKUPREPO_KEY_GRACE")? {
            c.scoping.grace = d;
        }
        c.instance = get("POD_NAME").filter(|v| !v.is_empty());
        c.tolerations = json_setting(&get, "CM_TOLERATIONS", "a list of tolerations")?;
        c.affinity = json_setting(&get, "CM_AFFINITY", "an affinity object")?;
        c.node_selector = json_setting(&get, "CM_NODE_SELECTOR", "a map of node labels")?;
        Ok(c)
    }

    /// Whether credential Secrets may be read from `namespace`.
    pub fn reads_credentials_from(&self, namespace: &str) -> bool {
        self.credential_namespaces
            .as_ref()
            .is_none_or(|list| list.iter().any(|n| n == namespace))
    }

    /// Whether `repo` may hand its tool config or PVC to `namespace` under this setting of
    /// [`OperatorConfig::default_allowed_namespaces`].
    pub fn allows_namespace(&self, repo: &backuprepo_api::BackupRepo, namespace: &str) -> bool {
        repo.allows_namespace_when_unset(namespace, self.default_allowed_namespaces.as_deref())
    }
}
