//! `backuprepo install`: every object a cluster needs, in apply order.

use std::collections::BTreeMap;

use backuprepo_api::constants::{API_VERSION, BACKUP_REPO_KIND, GROUP, VERSION};
use backuprepo_api::{check_dns1123_label, StorageProvider};
use k8s_openapi::api::admissionregistration::v1::{
    MatchResources, NamedRuleWithOperations, ParamKind, ParamRef, ValidatingAdmissionPolicy,
    ValidatingAdmissionPolicyBinding, ValidatingAdmissionPolicyBindingSpec,
    ValidatingAdmissionPolicySpec, Validation,
};
use k8s_openapi::api::apps::v1::{Deployment, DeploymentSpec};
use k8s_openapi::api::core::v1::{
    Affinity, Container, ContainerPort, EmptyDirVolumeSource, HTTPGetAction, Namespace, PodSpec,
    PodTemplateSpec, Probe, ResourceRequirements, ServiceAccount, Toleration, Volume, VolumeMount,
};
use k8s_openapi::api::policy::v1::{PodDisruptionBudget, PodDisruptionBudgetSpec};
use k8s_openapi::api::rbac::v1::{
    ClusterRole, ClusterRoleBinding, PolicyRule, Role, RoleBinding, RoleRef, Subject,
};
use k8s_openapi::apimachinery::pkg::apis::meta::v1::{LabelSelector, ObjectMeta};
use k8s_openapi::apimachinery::pkg::util::intstr::IntOrString;
use serde_json::Value;

use crate::controller_values::{ControllerValues, InstallValues};
use crate::crd::crds;
use crate::security::{container_security_context, field_env, pod_security_context, value_env};
use crate::values::backup_repo_from_values;
use crate::yaml::{to_sorted_value, to_yaml_documents};
use crate::DeployError;

/// The namespace `backuprepo install` uses by default.
pub const DEFAULT_NAMESPACE: &str = "backuprepo-system";
/// Name of the controller's ServiceAccount, ClusterRole, ClusterRoleBinding and Deployment.
pub const CONTROLLER_NAME: &str = "backuprepo-controller";
/// Name of the ValidatingAdmissionPolicy (and its binding) that keeps one default BackupRepo.
pub const ADMISSION_POLICY_NAME: &str = "backuprepo-single-default";
/// `app.kubernetes.io/name` (value `backuprepo`) on every object we create.
pub const NAME_LABEL: &str = "app.kubernetes.io/name";
/// `app.kubernetes.io/component` (value `controller`) on the controller's objects.
pub const COMPONENT_LABEL: &str = "app.kubernetes.io/component";

use crate::network::{network_policy, HEALTH_PORT, METRICS_PORT};

/// The validation of the single-default policy, evaluated once per existing BackupRepo
/// (`params`) for the BackupRepo being created or updated (`object`): allowed unless the object
/// is default **and** `params` is another default repository. "Is default" is the annotation
/// `dataprotection.kubeblocks.io/is-default-repo: "true"`, as KubeBlocks and kbcli read it.
pub const SINGLE_DEFAULT_EXPRESSION: &str = "\
!(has(object.metadata.annotations) &&
  'dataprotection.kubeblocks.io/is-default-repo' in object.metadata.annotations &&
  object.metadata.annotations['dataprotection.kubeblocks.io/is-default-repo'] == 'true') ||
params.metadata.name == object.metadata.name ||
!(has(params.metadata.annotations) &&
  'dataprotection.kubeblocks.io/is-default-repo' in params.metadata.annotations &&
  params.metadata.annotations['dataprotection.kubeblocks.io/is-default-repo'] == 'true')";

/// The second validation of the policy: a read-only BackupRepo (`backuprepo.io/read-only:
/// "true"`) is never the default, since every backup without a repository goes to the
/// default (the stores refuse it too; this covers `kubectl` writes).
pub const READ_ONLY_DEFAULT_EXPRESSION: &str = "\
!(has(object.metadata.annotations) &&
  'dataprotection.kubeblocks.io/is-default-repo' in object.metadata.annotations &&
  object.metadata.annotations['dataprotection.kubeblocks.io/is-default-repo'] == 'true' &&
  'backuprepo.io/read-only' in object.metadata.annotations &&
  object.metadata.annotations['backuprepo.io/read-only'] == 'true')";

/// The refusal of [`READ_ONLY_DEFAULT_EXPRESSION`].
pub const READ_ONLY_DEFAULT_MESSAGE: &str = "a read-only BackupRepo (annotation \
backuprepo.io/read-only: \"true\") cannot be the default: new backups go to the default; \
make another repository the default, or remove the read-only annotation";

/// The static message of a refusal (used when the message expression cannot be evaluated).
pub const SINGLE_DEFAULT_MESSAGE: &str = "another BackupRepo is already the default \
(annotation dataprotection.kubeblocks.io/is-default-repo: \"true\"); only one default \
BackupRepo is allowed: unset the other default first (kubectl annotate backuprepo <name> \
dataprotection.kubeblocks.io/is-default-repo=false --overwrite)";

/// The message of a refusal, naming the repository that is already the default.
pub const SINGLE_DEFAULT_MESSAGE_EXPRESSION: &str = "'BackupRepo ' + params.metadata.name + \
' is already the default (annotation dataprotection.kubeblocks.io/is-default-repo: \"true\"); \
only one default BackupRepo is allowed: unset the other default first (kubectl annotate \
backuprepo ' + params.metadata.name + ' dataprotection.kubeblocks.io/is-default-repo=false \
--overwrite)'";

/// What `backuprepo install` is told.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct InstallOptions {
    /// Namespace of the controller (and of the values file's Secret);
    /// default `backuprepo-system`.
    pub namespace: String,
    /// The controller's container image, over the values file's `controller.image` (default
    /// `backuprepo:<crate version>`).
    pub image: Option<String>,
    /// The text of a Helm values file: its `controller:` block sets the controller
    /// ([`ControllerValues`]), its `backupRepo:` block adds a Secret and a BackupRepo (see
    /// [`backup_repo_from_values`]).
    pub values: Option<String>,
    /// The namespaces repositories without `spec.allowedNamespaces` hand their config to
    /// (`a,b` or `*`): the controller's `BACKUPREPO_ALLOWED_NAMESPACES`, over the values
    /// file's `controller.allowedNamespaces`. `None` there too: every namespace, as in
    /// KubeBlocks.
    pub allowed_namespaces: Option<String>,
    /// Add the PrometheusRule and the Grafana dashboard ([`crate::monitoring`]); the values
    /// file's `monitoring.enabled` asks for them too.
    pub monitoring: bool,
}

impl Default for InstallOptions {
    fn default() -> Self {
        InstallOptions {
            namespace: DEFAULT_NAMESPACE.to_owned(),
            image: None,
            values: None,
            allowed_namespaces: None,
            monitoring: false,
        }
    }
}

impl InstallOptions {
    /// The install-wide settings: the values file's `controller:` block (or the defaults),
    /// with `image` and `allowed_namespaces` over it, checked; and `monitoring` (the option or
    /// the file's `monitoring.enabled`). The values file is read once.
    pub fn settings(&self) -> Result<InstallValues, DeployError> {
        let mut values = match &self.values {
            Some(text) => InstallValues::from_values(text)?,
            None => InstallValues::default(),
        };
        values.monitoring |= self.monitoring;
        let c = &mut values.controller;
        if let Some(image) = &self.image {
            c.image = image.clone();
        }
        if let Some(list) = &self.allowed_namespaces {
            check_allowed(list)?;
            c.allowed_namespaces = list.trim().to_owned();
        } else if !c.allowed_namespaces.trim().is_empty() {
            check_allowed(&c.allowed_namespaces)?;
        }
        if c.image.trim().is_empty() || c.image.chars().any(char::is_whitespace) {
            return Err(DeployError::Option {
                field: "image",
                message: format!(
                    "{:?} is not an image reference (e.g. \"registry.example/backuprepo:0.1.0\")",
                    c.image
                ),
            });
        }
        Ok(values)
    }

    fn check(&self) -> Result<(), DeployError> {
        if let Err(why) = check_dns1123_label(&self.namespace) {
            return Err(DeployError::Option {
                field: "namespace",
                message: format!(
                    "{:?} is not a namespace name ({why}): at most 63 lowercase letters, \
                     digits and '-', starting and ending with a letter or digit",
                    self.namespace
                ),
            });
        }
        Ok(())
    }
}

/// A namespace list: names separated by commas, or `*` alone.
fn check_allowed(list: &str) -> Result<(), DeployError> {
    let names: Vec<&str> = list.split(',').map(str::trim).collect();
    let bad = names
        .iter()
        .find(|n| **n != "*" && check_dns1123_label(n).is_err());
    if list.trim().is_empty() || bad.is_some() || (names.len() > 1 && names.contains(&"*")) {
        return Err(DeployError::Option {
            field: "allowed-namespaces",
            message: format!(
                "{list:?} is not a namespace list: give namespace names separated by commas (\"team-a,team-b\"), or \"*\" for every namespace"
            ),
        });
    }
    Ok(())
}

/// Every object `backuprepo install` applies, in apply order, as JSON values (keys sorted):
///
/// 1. the Namespace;
/// 2. the CRDs of `backuprepos` and `storageproviders`;
/// 3. the built-in StorageProviders except `local` (a directory of one machine, meaningless in
///    a cluster), without status;
/// 4. the ServiceAccount, ClusterRole and ClusterRoleBinding of the controller, and its Role
///    and RoleBinding in its namespace;
/// 5. the controller Deployment and its NetworkPolicy;
/// 6. the single-default ValidatingAdmissionPolicy and its binding;
/// 7. with `values` whose `backupRepo:` block asks for it, that block's Secret and BackupRepo.
pub fn install_manifests(opts: &InstallOptions) -> Result<Vec<Value>, DeployError> {
    opts.check()?;
    let InstallValues {
        controller,
        monitoring,
        ..
    } = opts.settings()?;
    let ns = opts.namespace.as_str();
    let mut out = Vec::new();

    let namespace = Namespace {
        metadata: meta(ns, None, None),
        ..Namespace::default()
    };
    out.push(to_sorted_value(&namespace, "Namespace")?);
    for crd in crds() {
        out.push(to_sorted_value(&crd, "CustomResourceDefinition")?);
    }
    for provider in storage_providers()? {
        out.push(to_sorted_value(&provider, "StorageProvider")?);
    }
    let sa = ServiceAccount {
        metadata: meta(CONTROLLER_NAME, Some(ns), Some("controller")),
        ..ServiceAccount::default()
    };
    out.push(to_sorted_value(&sa, "ServiceAccount")?);
    out.push(to_sorted_value(&cluster_role(), "ClusterRole")?);
    out.push(to_sorted_value(
        &cluster_role_binding(ns),
        "ClusterRoleBinding",
    )?);
    out.push(to_sorted_value(&controller_role(ns), "Role")?);
    out.push(to_sorted_value(
        &controller_role_binding(ns),
        "RoleBinding",
    )?);
    out.push(to_sorted_value(
        &deployment(ns, &controller)?,
        "Deployment",
    )?);
    if controller.network_policy {
        out.push(to_sorted_value(&network_policy(ns), "NetworkPolicy")?);
    }
    if controller.pod_disruption_budget.enabled {
        out.push(to_sorted_value(
            &disruption_budget(ns, controller.pod_disruption_budget.min_available),
            "PodDisruptionBudget",
        )?);
    }
    if monitoring {
        out.push(crate::yaml::sorted(crate::monitoring::prometheus_rule(ns)));
        let dashboard =
            crate::monitoring::dashboard_config_map(ns).map_err(|e| DeployError::Serialize {
                what: "the Grafana dashboard".into(),
                message: e.to_string(),
            })?;
        out.push(crate::yaml::sorted(dashboard));
    }
    out.push(to_sorted_value(
        &admission_policy(),
        "ValidatingAdmissionPolicy",
    )?);
    out.push(to_sorted_value(
        &admission_policy_binding(),
        "ValidatingAdmissionPolicyBinding",
    )?);

    if let Some(text) = &opts.values {
        if let Some((secret, repo)) = backup_repo_from_values(text, ns)? {
            out.push(to_sorted_value(&secret, "Secret")?);
            out.push(to_sorted_value(&repo, BACKUP_REPO_KIND)?);
        }
    }
    Ok(out)
}

/// [`install_manifests`] as one multi-document YAML stream (what `backuprepo install` prints).
pub fn install_yaml(opts: &InstallOptions) -> Result<String, DeployError> {
    to_yaml_documents(&install_manifests(opts)?)
}

/// The built-in StorageProviders installed in a cluster: every one of the catalogue but
/// `local`, with `status` removed (the StorageProvider controller sets it).
pub fn storage_providers() -> Result<Vec<StorageProvider>, DeployError> {
    let all = backuprepo_catalog::builtin::all().map_err(DeployError::Catalog)?;
    Ok(all
        .into_iter()
        .filter(|p| p.name() != "local")
        .map(|mut p| {
            p.status = None;
            p
        })
        .collect())
}

/// `app.kubernetes.io/name: backuprepo`, plus `app.kubernetes.io/component` when given.
pub(crate) fn labels(component: Option<&str>) -> BTreeMap<String, String> {
    let mut l = BTreeMap::from([(NAME_LABEL.to_owned(), "backuprepo".to_owned())]);
    if let Some(c) = component {
        l.insert(COMPONENT_LABEL.to_owned(), c.to_owned());
    }
    l
}

fn meta(name: &str, namespace: Option<&str>, component: Option<&str>) -> ObjectMeta {
    ObjectMeta {
        name: Some(name.to_owned()),
        namespace: namespace.map(str::to_owned),
        labels: Some(labels(component)),
        ..ObjectMeta::default()
    }
}

fn strings(items: &[&str]) -> Vec<String> {
    items.iter().map(|s| (*s).to_owned()).collect()
}

fn rule(groups: &[&str], resources: &[&str], verbs: &[&str]) -> PolicyRule {
    PolicyRule {
        api_groups: Some(strings(groups)),
        resources: Some(strings(resources)),
        verbs: strings(verbs),
        ..PolicyRule::default()
    }
}

/// The controller's ClusterRole: what it reads and writes across the cluster, no wildcard,
/// no verb it does not call (a test compares these rules with the requests of its scripted
/// reconciles, both ways).
///
/// - its own kinds and their `status` (`get` of a repository: the destination of another's
///   `backuprepo.io/replicate-to`); `backuprepos/finalizers` (`update`) is what the API
///   server asks of whoever creates an object with a blocking owner reference to a repository;
/// - consumer namespaces: tool-config Secrets (created, re-rendered and revoked by `patch`; the
///   garbage collector deletes revoked ones, so there is no `delete` on Secrets) and backup
///   PVCs (deleted with the repository); the metadata watch on Secrets notices credential
///   changes;
/// - StorageClasses (created once, never changed; removed by the garbage collector with their
///   repository) and CSIDrivers (read);
/// - KubeBlocks Backups and Restores: their wait label is removed once prepared;
/// - events about repositories and consumers.
///
/// What happens only in the controller's namespace (pre-check Jobs, their Pods, logs and
/// Events) is in [`controller_role`].
pub fn cluster_role() -> ClusterRole {
    const READ: &[&str] = &["get", "list", "watch"];
    ClusterRole {
        metadata: meta(CONTROLLER_NAME, None, Some("controller")),
        rules: Some(vec![
            rule(
                &[GROUP],
                &["backuprepos"],
                &["get", "list", "watch", "patch"],
            ),
            rule(
                &[GROUP],
                &["storageproviders"],
                &["get", "list", "watch", "patch"],
            ),
            rule(
                &[GROUP],
                &["backuprepos/status", "storageproviders/status"],
                &["patch"],
            ),
            rule(&[GROUP], &["backuprepos/finalizers"], &["update"]),
            rule(
                &[GROUP],
                &["backups", "restores"],
                &["list", "watch", "patch"],
            ),
            rule(
                &[""],
                &["secrets"],
                &["get", "list", "watch", "create", "patch"],
            ),
            rule(
                &[""],
                &["persistentvolumeclaims"],
                &["get", "list", "watch", "create", "delete"],
            ),
            rule(&["events.k8s.io"], &["events"], &["create", "patch"]),
            rule(
                &["storage.k8s.io"],
                &["storageclasses"],
                &["get", "list", "watch", "create"],
            ),
            rule(&["storage.k8s.io"], &["csidrivers"], READ),
        ]),
        ..ClusterRole::default()
    }
}

/// The controller's Role in its own namespace: the Mount pre-check's Jobs, and the Pods, logs
/// and Events its failure diagnosis quotes. Nothing here reaches another namespace, so a
/// stolen controller token cannot start a Job elsewhere (with another service account).
pub fn controller_role(namespace: &str) -> Role {
    Role {
        metadata: meta(CONTROLLER_NAME, Some(namespace), Some("controller")),
        rules: Some(vec![
            rule(
                &["batch"],
                &["jobs"],
                &["get", "list", "watch", "create", "delete"],
            ),
            rule(&[""], &["pods"], &["list"]),
            rule(&[""], &["pods/log"], &["get"]),
            rule(&[""], &["events"], &["list"]),
            // Leader election between the two replicas (crates/operator/src/lease.rs).
            rule(
                &["coordination.k8s.io"],
                &["leases"],
                &["get", "create", "update"],
            ),
        ]),
    }
}

fn controller_subjects(namespace: &str) -> Option<Vec<Subject>> {
    Some(vec![Subject {
        kind: "ServiceAccount".to_owned(),
        name: CONTROLLER_NAME.to_owned(),
        namespace: Some(namespace.to_owned()),
        ..Subject::default()
    }])
}

fn role_ref(kind: &str) -> RoleRef {
    RoleRef {
        api_group: "rbac.authorization.k8s.io".to_owned(),
        kind: kind.to_owned(),
        name: CONTROLLER_NAME.to_owned(),
    }
}

/// Binds [`cluster_role`] to the controller's ServiceAccount in `namespace`.
pub fn cluster_role_binding(namespace: &str) -> ClusterRoleBinding {
    ClusterRoleBinding {
        metadata: meta(CONTROLLER_NAME, None, Some("controller")),
        role_ref: role_ref("ClusterRole"),
        subjects: controller_subjects(namespace),
    }
}

/// Binds [`controller_role`] to the controller's ServiceAccount in `namespace`.
pub fn controller_role_binding(namespace: &str) -> RoleBinding {
    RoleBinding {
        metadata: meta(CONTROLLER_NAME, Some(namespace), Some("controller")),
        role_ref: role_ref("Role"),
        subjects: controller_subjects(namespace),
    }
}

fn health_probe(initial_delay: i32) -> Probe {
    Probe {
        http_get: Some(HTTPGetAction {
            path: Some("/healthz".to_owned()),
            port: IntOrString::Int(HEALTH_PORT),
            ..HTTPGetAction::default()
        }),
        initial_delay_seconds: Some(initial_delay),
        period_seconds: Some(10),
        ..Probe::default()
    }
}

/// The controller: two replicas (one leads through a Lease) of `image` running `backuprepo controller` as the distroless
/// `nonroot` user (65532) with a read-only root filesystem (an `emptyDir` on `/tmp`), no
/// capabilities, no privilege escalation and the runtime's default seccomp profile; metrics
/// and `/healthz` on port 8080; `POD_NAMESPACE` from the downward API; scoped keys where the
/// storage allows them (`BACKUPREPO_SCOPED_CREDENTIALS=auto`), and the default allow-list when
/// `allowed_namespaces` gives one.
/// The controller's PodDisruptionBudget: at least `min_available` controllers stay through a
/// node drain.
pub fn disruption_budget(namespace: &str, min_available: i32) -> PodDisruptionBudget {
    PodDisruptionBudget {
        metadata: meta(CONTROLLER_NAME, Some(namespace), Some("controller")),
        spec: Some(PodDisruptionBudgetSpec {
            min_available: Some(IntOrString::Int(min_available)),
            selector: Some(LabelSelector {
                match_labels: Some(labels(Some("controller"))),
                ..LabelSelector::default()
            }),
            ..PodDisruptionBudgetSpec::default()
        }),
        ..PodDisruptionBudget::default()
    }
}

/// A value of the `controller:` block as its Kubernetes type; the error names the key.
fn typed<T: serde::de::DeserializeOwned>(what: &str, v: &Value) -> Result<T, DeployError> {
    serde_json::from_value(v.clone())
        .map_err(|e| DeployError::values(format!("controller.{what}"), e.to_string()))
}

/// The controller Deployment, as `c` sets it.
pub fn deployment(namespace: &str, c: &ControllerValues) -> Result<Deployment, DeployError> {
    let mut env = vec![
        field_env("POD_NAMESPACE", "metadata.namespace"),
        field_env("POD_NAME", "metadata.name"),
        value_env("BACKUPREPO_SCOPED_CREDENTIALS", &c.scoped_keys),
    ];
    if !c.allowed_namespaces.trim().is_empty() {
        env.push(value_env(
            "BACKUPREPO_ALLOWED_NAMESPACES",
            c.allowed_namespaces.trim(),
        ));
    }
    if let Some(s) = c.recheck_interval {
        env.push(value_env("BACKUPREPO_RECHECK_INTERVAL", &s.to_string()));
    }
    if let Some(s) = c.retry_interval {
        env.push(value_env("BACKUPREPO_RETRY_INTERVAL", &s.to_string()));
    }
    let resources: ResourceRequirements = typed("resources", &c.resources)?;
    let tolerations: Vec<Toleration> = typed("tolerations", &Value::Array(c.tolerations.clone()))?;
    let affinity: Option<Affinity> = match &c.affinity {
        Value::Object(m) if m.is_empty() => None,
        Value::Null => None,
        v => Some(typed("affinity", v)?),
    };
    let selector = labels(Some("controller"));
    Ok(Deployment {
        metadata: meta(CONTROLLER_NAME, Some(namespace), Some("controller")),
        spec: Some(DeploymentSpec {
            // Two replicas: one leads (the Lease), the other takes over within 15 s.
            replicas: Some(c.replicas),
            selector: LabelSelector {
                match_labels: Some(selector.clone()),
                ..LabelSelector::default()
            },
            template: PodTemplateSpec {
                metadata: Some(ObjectMeta {
                    labels: Some(selector),
                    ..ObjectMeta::default()
                }),
                spec: Some(PodSpec {
                    service_account_name: Some(CONTROLLER_NAME.to_owned()),
                    security_context: Some(pod_security_context(None)),
                    containers: vec![Container {
                        name: "controller".to_owned(),
                        image: Some(c.image.clone()),
                        args: Some(strings(&["controller"])),
                        env: Some(env),
                        ports: Some(vec![
                            ContainerPort {
                                name: Some("metrics".to_owned()),
                                container_port: METRICS_PORT,
                                protocol: Some("TCP".to_owned()),
                                ..ContainerPort::default()
                            },
                            ContainerPort {
                                name: Some("health".to_owned()),
                                container_port: HEALTH_PORT,
                                protocol: Some("TCP".to_owned()),
                                ..ContainerPort::default()
                            },
                        ]),
                        liveness_probe: Some(health_probe(15)),
                        readiness_probe: Some(health_probe(5)),
                        resources: Some(resources),
                        security_context: Some(container_security_context()),
                        volume_mounts: Some(vec![VolumeMount {
                            name: "tmp".to_owned(),
                            mount_path: "/tmp".to_owned(),
                            ..VolumeMount::default()
                        }]),
                        ..Container::default()
                    }],
                    volumes: Some(vec![Volume {
                        name: "tmp".to_owned(),
                        empty_dir: Some(EmptyDirVolumeSource::default()),
                        ..Volume::default()
                    }]),
                    node_selector: (!c.node_selector.is_empty()).then(|| c.node_selector.clone()),
                    tolerations: (!tolerations.is_empty()).then_some(tolerations),
                    affinity,
                    ..PodSpec::default()
                }),
            },
            ..DeploymentSpec::default()
        }),
        ..Deployment::default()
    })
}

/// The policy that keeps a single default BackupRepo, enforced by the API server.
///
/// KubeBlocks leaves uniqueness to kbcli and the chart (spec §2.10); with two defaults every
/// backup without a repository fails with `multiple default BackupRepo found`. A CEL rule on
/// the CRD cannot help, because it sees one object, and CEL in admission cannot list objects
/// either. What it can do is *parameters*: with `paramKind` = BackupRepo and a binding whose
/// `paramRef` has an empty `selector`, the API server evaluates the validation once for every
/// existing BackupRepo, bound to `params` (from its informer cache), and denies the request if
/// any evaluation is false. The expression ([`SINGLE_DEFAULT_EXPRESSION`]) therefore says, per
/// existing repository: "the object is not default, or `params` is the object itself (an update
/// re-applying the default), or `params` is not default". `parameterNotFoundAction: Allow`
/// admits the first BackupRepo of a cluster, when no parameter exists yet.
///
/// It matches CREATE and UPDATE of `backuprepos` (annotations can change on update); DELETE
/// never creates a second default. The message names the annotation and the repository that is
/// already default and says to unset it first. Limits: the parameters come from a cache, so
/// two default repositories created within the same instant can both be admitted (the
/// controller and kbcli still report it); and the policy needs Kubernetes ≥ 1.30
/// (`admissionregistration.k8s.io/v1`). A second validation ([`READ_ONLY_DEFAULT_EXPRESSION`])
/// refuses a default that is read-only; like the first, it runs only when some BackupRepo
/// exists (for the very first one the stores' own rule applies).
pub fn admission_policy() -> ValidatingAdmissionPolicy {
    ValidatingAdmissionPolicy {
        metadata: meta(ADMISSION_POLICY_NAME, None, None),
        spec: Some(ValidatingAdmissionPolicySpec {
            failure_policy: Some("Fail".to_owned()),
            param_kind: Some(ParamKind {
                api_version: Some(API_VERSION.to_owned()),
                kind: Some(BACKUP_REPO_KIND.to_owned()),
            }),
            match_constraints: Some(MatchResources {
                resource_rules: Some(vec![NamedRuleWithOperations {
                    api_groups: Some(strings(&[GROUP])),
                    api_versions: Some(strings(&[VERSION])),
                    operations: Some(strings(&["CREATE", "UPDATE"])),
                    resources: Some(strings(&["backuprepos"])),
                    ..NamedRuleWithOperations::default()
                }]),
                ..MatchResources::default()
            }),
            validations: Some(vec![
                Validation {
                    expression: SINGLE_DEFAULT_EXPRESSION.to_owned(),
                    message: Some(SINGLE_DEFAULT_MESSAGE.to_owned()),
                    message_expression: Some(SINGLE_DEFAULT_MESSAGE_EXPRESSION.to_owned()),
                    reason: Some("Invalid".to_owned()),
                },
                Validation {
                    expression: READ_ONLY_DEFAULT_EXPRESSION.to_owned(),
                    message: Some(READ_ONLY_DEFAULT_MESSAGE.to_owned()),
                    reason: Some("Invalid".to_owned()),
                    ..Validation::default()
                },
            ]),
            ..ValidatingAdmissionPolicySpec::default()
        }),
        ..ValidatingAdmissionPolicy::default()
    }
}

/// Binds [`admission_policy`] with every BackupRepo as a parameter (`selector: {}`), denying
/// on failure; no BackupRepo at all means allowed.
pub fn admission_policy_binding() -> ValidatingAdmissionPolicyBinding {
    ValidatingAdmissionPolicyBinding {
        metadata: meta(ADMISSION_POLICY_NAME, None, None),
        spec: Some(ValidatingAdmissionPolicyBindingSpec {
            policy_name: Some(ADMISSION_POLICY_NAME.to_owned()),
            param_ref: Some(ParamRef {
                selector: Some(LabelSelector::default()),
                parameter_not_found_action: Some("Allow".to_owned()),
                ..ParamRef::default()
            }),
            validation_actions: Some(strings(&["Deny"])),
            ..ValidatingAdmissionPolicyBindingSpec::default()
        }),
    }
}
