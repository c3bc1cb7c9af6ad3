//! The Helm chart (`deploy/chart/backuprepo/`), generated from the same builders as
//! `backuprepo install --print`: the Rust code is the one source, the chart is its output.
//!
//! Each template is the object [`install_manifests`] makes, rendered with marked settings
//! (the release namespace, the image, the replicas, ...) whose marks are then replaced by
//! the Helm expressions that read `.Values`. The chart's `values.yaml` is written from
//! [`ControllerValues::default`], so both read the same keys with the same defaults; a test
//! renders the chart with `helm template` and `install --print` with the same values file and
//! compares the objects.
//!
//! Helm's conventions: the CRDs are in `crds/` (installed first, never upgraded or deleted by
//! Helm); the release namespace is made only with `createNamespace: true` (or `helm install
//! --create-namespace`); the `backupRepo:` block's Secret and BackupRepo carry
//! `helm.sh/resource-policy: keep`, so `helm uninstall` leaves the repository and its
//! credential where backups rely on them.

use serde_json::Value;

use crate::controller_values::ControllerValues;
use crate::install::{install_manifests, InstallOptions};
use crate::yaml::{sorted, to_yaml_documents};
use crate::{crds, DeployError, GENERATED_HEADER};

/// Where the chart lives, relative to the repository root.
pub const CHART_DIR: &str = "deploy/chart/backuprepo";

/// The release namespace while the templates are made (a valid name no object uses).
const NS_MARK: &str = "helm-release-namespace-mark";

/// Marks set into the rendered objects, each replaced by its Helm expression.
const IMAGE_MARK: &str = "__HELM_IMAGE__";

fn mark(name: &str) -> Value {
    Value::String(format!("__HELM_{name}__"))
}

/// The chart's `values.yaml`: the controller's defaults as [`ControllerValues`] has them,
/// with the chart's own keys and KubeBlocks' `backupRepo:` block.
fn values_yaml() -> Result<String, DeployError> {
    let controller =
        serde_json::to_value(ControllerValues::default()).map_err(|e| DeployError::Serialize {
            what: "controller values".into(),
            message: e.to_string(),
        })?;
    let controller =
        serde_yaml_ng::to_string(&serde_json::json!({ "controller": sorted(controller) }))
            .map_err(|e| DeployError::Serialize {
                what: "controller values".into(),
                message: e.to_string(),
            })?;
    Ok(format!(
        "{GENERATED_HEADER}\
# The same file works with `backuprepo install -f` (which reads controller: and backupRepo:).
#
# controller: the backuprepo controller. allowedNamespaces: \"team-a,team-b\", \"*\", or empty for
# every namespace (KubeBlocks' behaviour); scopedKeys: auto | true | false; recheckInterval and
# retryInterval: seconds (null: the controller's defaults, 1800 and 60; 0 turns them off).
{controller}\
# Make the release namespace (or use `helm install --create-namespace`).
createNamespace: false

# The PrometheusRule (alerts: a repository not Ready for 10 min, scoped keys failing, usage
# over a repository's backuprepo.io/usage-alert, no leader for 1 min) and a Grafana dashboard
# ConfigMap (label grafana_dashboard: \"1\"). Needs the Prometheus Operator's CRDs.
monitoring:
  enabled: false

# KubeBlocks' block: a BackupRepo (and its credential Secret) made at install, kept on uninstall.
backupRepo:
  create: false
  default: true
  accessMethod: Tool
  storageProvider: \"\"
  pvReclaimPolicy: Retain
  volumeCapacity: \"\"
  config: {{}}
  secrets: {{}}
"
    ))
}

const CHART_YAML: &str = "apiVersion: v2
name: backuprepo
description: BackupRepo and StorageProvider controller (KubeBlocks-compatible) with its CRDs and built-in providers
type: application
";

/// The Secret and BackupRepo of the `backupRepo:` block, as `backup_repo_from_values` makes
/// them (the chart cannot call Rust: this template is the one rule written twice, and the
/// comparison test renders both from the same values files).
const BACKUP_REPO_TEMPLATE: &str = r#"{{- $b := .Values.backupRepo | default dict }}
{{- if and $b.create $b.storageProvider }}
---
apiVersion: v1
kind: Secret
metadata:
  annotations:
    helm.sh/resource-policy: keep
  labels:
    app.kubernetes.io/name: backuprepo
  name: kubeblocks-backuprepo-secret
  namespace: {{ .Release.Namespace }}
stringData:
  {{- range $k, $v := ($b.secrets | default dict) }}
  {{ $k }}: {{ $v | toString | quote }}
  {{- end }}
---
apiVersion: dataprotection.kubeblocks.io/v1alpha1
kind: BackupRepo
metadata:
  annotations:
    {{- if or (not (hasKey $b "default")) $b.default }}
    dataprotection.kubeblocks.io/is-default-repo: "true"
    {{- end }}
    helm.sh/resource-policy: keep
  labels:
    app.kubernetes.io/name: backuprepo
  name: kubeblocks-backuprepo
spec:
  accessMethod: {{ $b.accessMethod | default "Tool" }}
  config:
    {{- range $k, $v := ($b.config | default dict) }}
    {{ $k }}: {{ $v | toString | quote }}
    {{- end }}
  credential:
    name: kubeblocks-backuprepo-secret
    namespace: {{ .Release.Namespace }}
  pvReclaimPolicy: {{ $b.pvReclaimPolicy | default "Retain" }}
  storageProviderRef: {{ $b.storageProvider }}
  volumeCapacity: {{ $b.volumeCapacity | default "100Gi" | quote }}
{{- end }}
"#;

/// Go template braces in the objects themselves (the StorageProviders' templates) made
/// literal for Helm.
fn escape(text: &str) -> String {
    let mut out = String::with_capacity(text.len());
    let mut rest = text;
    while let Some(i) = rest.find(['{', '}']) {
        out.push_str(&rest[..i]);
        let tail = &rest[i..];
        if let Some(after) = tail.strip_prefix("{{") {
            out.push_str("{{ \"{{\" }}");
            rest = after;
        } else if let Some(after) = tail.strip_prefix("}}") {
            out.push_str("{{ \"}}\" }}");
            rest = after;
        } else {
            out.push_str(&tail[..1]);
            rest = &tail[1..];
        }
    }
    out.push_str(rest);
    out
}

/// Replace the marks of one rendered template by Helm expressions.
fn templated(text: &str) -> String {
    let mut out: Vec<String> = Vec::new();
    let lines: Vec<&str> = text.lines().collect();
    let mut i = 0;
    while i < lines.len() {
        let line = lines[i].replace(NS_MARK, "{{ .Release.Namespace }}");
        let indent = line.len() - line.trim_start().len();
        let pad = " ".repeat(indent);
        let t = line.trim_start();
        // `- name: X` followed by `value: __HELM_X__`: an optional environment variable.
        let next = lines.get(i + 1).map(|l| l.trim_start()).unwrap_or("");
        let optional_env = |key: &str, test: &str, value: &str| -> Vec<String> {
            if next != format!("value: __HELM_{key}__") {
                return Vec::new();
            }
            vec![
                format!("{{{{- if {test} }}}}"),
                line.clone(),
                format!("{pad}  value: {value}"),
                "{{- end }}".to_string(),
            ]
        };
        let env = match t {
            "- name: BACKUPREPO_ALLOWED_NAMESPACES" => optional_env(
                "ALLOWED",
                ".Values.controller.allowedNamespaces",
                "{{ .Values.controller.allowedNamespaces | trim | quote }}",
            ),
            "- name: BACKUPREPO_RECHECK_INTERVAL" => optional_env(
                "RECHECK",
                "not (kindIs \"invalid\" .Values.controller.recheckInterval)",
                "{{ int64 .Values.controller.recheckInterval | toString | quote }}",
            ),
            "- name: BACKUPREPO_RETRY_INTERVAL" => optional_env(
                "RETRY",
                "not (kindIs \"invalid\" .Values.controller.retryInterval)",
                "{{ int64 .Values.controller.retryInterval | toString | quote }}",
            ),
            _ => Vec::new(),
        };
        if !env.is_empty() {
            out.extend(env);
            i += 2;
            continue;
        }
        let block = |key: &str, value: &str| {
            vec![
                format!("{{{{- with {value} }}}}"),
                format!("{pad}{key}:"),
                format!("{{{{- toYaml . | nindent {} }}}}", indent + 2),
                "{{- end }}".to_string(),
            ]
        };
        match t {
            "replicas: __HELM_REPLICAS__" => out.push(format!(
                "{pad}replicas: {{{{ .Values.controller.replicas }}}}"
            )),
            "minAvailable: __HELM_MIN_AVAILABLE__" => out.push(format!(
                "{pad}minAvailable: {{{{ .Values.controller.podDisruptionBudget.minAvailable }}}}"
            )),
            "value: __HELM_SCOPED__" => out.push(format!(
                "{pad}value: {{{{ .Values.controller.scopedKeys | quote }}}}"
            )),
            "resources: __HELM_RESOURCES__" => {
                out.push(format!("{pad}resources:"));
                out.push(format!(
                    "{{{{- toYaml .Values.controller.resources | nindent {} }}}}",
                    indent + 2
                ));
            }
            "nodeSelector: __HELM_NODE_SELECTOR__" => {
                out.extend(block("nodeSelector", ".Values.controller.nodeSelector"))
            }
            "tolerations: __HELM_TOLERATIONS__" => {
                out.extend(block("tolerations", ".Values.controller.tolerations"))
            }
            "affinity: __HELM_AFFINITY__" => {
                out.extend(block("affinity", ".Values.controller.affinity"))
            }
            _ => out.push(line.replace(
                &format!("image: {IMAGE_MARK}"),
                "image: {{ .Values.controller.image | quote }}",
            )),
        }
        i += 1;
    }
    let mut text = out.join("\n");
    text.push('\n');
    text
}

/// Every file of the chart, as `(path relative to the repository root, content)`.
pub fn chart_files() -> Result<Vec<(String, String)>, DeployError> {
    let controller = ControllerValues {
        image: IMAGE_MARK.into(),
        allowed_namespaces: "mark".into(),
        recheck_interval: Some(1),
        retry_interval: Some(1),
        network_policy: true,
        pod_disruption_budget: crate::PdbValues {
            enabled: true,
            min_available: 1,
        },
        ..ControllerValues::default()
    };
    let opts = InstallOptions {
        namespace: NS_MARK.into(),
        values: Some(
            serde_yaml_ng::to_string(&serde_json::json!({ "controller": controller })).map_err(
                |e| DeployError::Serialize {
                    what: "controller values".into(),
                    message: e.to_string(),
                },
            )?,
        ),
        monitoring: true,
        ..InstallOptions::default()
    };
    let dir = CHART_DIR;
    let mut files = vec![
        (
            format!("{dir}/Chart.yaml"),
            format!(
                "{GENERATED_HEADER}{CHART_YAML}version: {v}\nappVersion: \"{v}\"\n",
                v = env!("CARGO_PKG_VERSION")
            ),
        ),
        (format!("{dir}/values.yaml"), values_yaml()?),
    ];
    for crd in crds() {
        let value = crate::yaml::to_sorted_value(&crd, "CustomResourceDefinition")?;
        files.push((
            format!("{dir}/crds/{}.yaml", crd.spec.names.plural),
            format!("{GENERATED_HEADER}{}", to_yaml_documents(&[value])?),
        ));
    }
    let mut n = 0;
    for mut object in install_manifests(&opts)? {
        let kind = object["kind"].as_str().unwrap_or_default().to_string();
        let name = object["metadata"]["name"]
            .as_str()
            .unwrap_or_default()
            .to_string();
        if kind == "CustomResourceDefinition" {
            continue;
        }
        let gate = match kind.as_str() {
            "Namespace" => Some(".Values.createNamespace"),
            "NetworkPolicy" => Some(".Values.controller.networkPolicy"),
            "PodDisruptionBudget" => Some(".Values.controller.podDisruptionBudget.enabled"),
            "PrometheusRule" => Some(".Values.monitoring.enabled"),
            "ConfigMap" => Some(".Values.monitoring.enabled"),
            _ => None,
        };
        if kind == "Deployment" {
            let spec = &mut object["spec"];
            spec["replicas"] = mark("REPLICAS");
            let pod = &mut spec["template"]["spec"];
            pod["nodeSelector"] = mark("NODE_SELECTOR");
            pod["tolerations"] = mark("TOLERATIONS");
            pod["affinity"] = mark("AFFINITY");
            let c = &mut pod["containers"][0];
            c["resources"] = mark("RESOURCES");
            if let Some(env) = c["env"].as_array_mut() {
                for e in env {
                    let key = match e["name"].as_str() {
                        Some("BACKUPREPO_SCOPED_CREDENTIALS") => "SCOPED",
                        Some("BACKUPREPO_ALLOWED_NAMESPACES") => "ALLOWED",
                        Some("BACKUPREPO_RECHECK_INTERVAL") => "RECHECK",
                        Some("BACKUPREPO_RETRY_INTERVAL") => "RETRY",
                        _ => continue,
                    };
                    e["value"] = mark(key);
                }
            }
        }
        if kind == "PodDisruptionBudget" {
            object["spec"]["minAvailable"] = mark("MIN_AVAILABLE");
        }
        let body = templated(&escape(&to_yaml_documents(&[object])?));
        let body = match gate {
            Some(g) => format!("{{{{- if {g} }}}}\n{body}{{{{- end }}}}\n"),
            None => body,
        };
        n += 1;
        let name = if kind == "Namespace" {
            "release"
        } else {
            name.as_str()
        };
        let file = format!(
            "{dir}/templates/{n:02}-{}-{name}.yaml",
            kind.to_ascii_lowercase()
        );
        files.push((file, format!("{GENERATED_HEADER}{body}")));
    }
    files.push((
        format!("{dir}/templates/{:02}-backuprepo-values.yaml", n + 1),
        format!("{GENERATED_HEADER}{BACKUP_REPO_TEMPLATE}"),
    ));
    Ok(files)
}
