//! The `BackupRepo` custom resource (spec §1.1).

use std::collections::BTreeMap;
use std::fmt;

use k8s_openapi::api::core::v1::SecretReference;
use k8s_openapi::apimachinery::pkg::api::resource::Quantity;
use k8s_openapi::apimachinery::pkg::apis::meta::v1::{Condition, Time};
use kube::CustomResource;
use schemars::JsonSchema;
use serde::{Deserialize, Serialize};

use crate::constants::IS_DEFAULT_REPO_ANNOTATION;
use crate::schema;

/// How workloads reach the repository's storage.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, Hash, Serialize, Deserialize, JsonSchema)]
pub enum AccessMethod {
    /// A PVC backed by a CSI driver is mounted into the workload (the CRD default).
    #[default]
    Mount,
    /// The `datasafed` tool accesses the storage with a per-namespace config secret.
    Tool,
}

impl AccessMethod {
    /// The wire name (`Mount` / `Tool`).
    pub fn as_str(self) -> &'static str {
        match self {
            AccessMethod::Mount => "Mount",
            AccessMethod::Tool => "Tool",
        }
    }
}

impl fmt::Display for AccessMethod {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

/// Reclaim policy of the PVs created through the repository's StorageClass.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, Serialize, Deserialize, JsonSchema)]
pub enum PvReclaimPolicy {
    /// Delete the volume with its claim.
    Delete,
    /// Keep the volume after its claim is deleted.
    Retain,
}

impl PvReclaimPolicy {
    /// The wire name (`Delete` / `Retain`).
    pub fn as_str(self) -> &'static str {
        match self {
            PvReclaimPolicy::Delete => "Delete",
            PvReclaimPolicy::Retain => "Retain",
        }
    }
}

impl fmt::Display for PvReclaimPolicy {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

/// Phase of a BackupRepo.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, Serialize, Deserialize, JsonSchema)]
pub enum BackupRepoPhase {
    /// The basic checks passed and the pre-check is pending.
    PreChecking,
    /// A check failed.
    Failed,
    /// Every check passed; the repository can be used.
    Ready,
    /// The repository is being deleted.
    Deleting,
}

impl BackupRepoPhase {
    /// The wire name.
    pub fn as_str(self) -> &'static str {
        match self {
            BackupRepoPhase::PreChecking => "PreChecking",
            BackupRepoPhase::Failed => "Failed",
            BackupRepoPhase::Ready => "Ready",
            BackupRepoPhase::Deleting => "Deleting",
        }
    }
}

impl fmt::Display for BackupRepoPhase {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

/// BackupRepoSpec defines the desired state of `BackupRepo`.
// The repeated `printcolumn(type_ = ...)` entries are distinct columns.
#[allow(clippy::duplicated_attributes)]
#[derive(CustomResource, Clone, Debug, PartialEq, Serialize, Deserialize, JsonSchema)]
#[kube(
    group = "dataprotection.kubeblocks.io",
    version = "v1alpha1",
    kind = "BackupRepo",
    singular = "backuprepo",
    plural = "backuprepos",
    status = "BackupRepoStatus",
    category = "kubeblocks",
    derive = "PartialEq",
    doc = "BackupRepo is a repository for storing backup data.",
    printcolumn(name = "STATUS", type_ = "string", json_path = ".status.phase"),
    printcolumn(
        name = "STORAGEPROVIDER",
        type_ = "string",
        json_path = ".spec.storageProviderRef"
    ),
    printcolumn(
        name = "ACCESSMETHOD",
        type_ = "string",
        json_path = ".spec.accessMethod"
    ),
    printcolumn(name = "DEFAULT", type_ = "boolean", json_path = ".status.isDefault"),
    printcolumn(
        name = "AGE",
        type_ = "date",
        json_path = ".metadata.creationTimestamp"
    )
)]
#[serde(rename_all = "camelCase")]
pub struct BackupRepoSpec {
    /// Specifies the name of the `StorageProvider` used by this backup repository.
    #[schemars(extend("x-kubernetes-validations" = [{
        "rule": "self == oldSelf",
        "message": "StorageProviderRef is immutable"
    }]))]
    pub storage_provider_ref: String,

    /// Specifies the access method of the backup repository.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    #[schemars(extend("default" = "Mount"))]
    pub access_method: Option<AccessMethod>,

    /// Specifies the capacity of the PVC created by this backup repository.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    #[schemars(schema_with = "schema::quantity")]
    pub volume_capacity: Option<Quantity>,

    /// Specifies reclaim policy of the PV created by this backup repository.
    pub pv_reclaim_policy: PvReclaimPolicy,

    /// Stores the non-secret configuration parameters for the `StorageProvider`.
    ///
    /// Scalar YAML values (`true`, `8080`) are accepted and kept as their text; `null` becomes "".
    #[serde(
        default,
        skip_serializing_if = "BTreeMap::is_empty",
        deserialize_with = "schema::string_map"
    )]
    pub config: BTreeMap<String, String>,

    /// References to the secret that holds the credentials for the `StorageProvider`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    #[schemars(schema_with = "schema::secret_reference")]
    pub credential: Option<SecretReference>,

    /// Specifies the prefix of the path for storing backup data.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    #[schemars(regex(pattern = r"^([a-zA-Z0-9-_]+/?)*$"))]
    pub path_prefix: Option<String>,

    /// Namespaces allowed to receive the tool-config secret of this repository; all namespaces
    /// when absent. (Extension over KubeBlocks.)
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub allowed_namespaces: Option<Vec<String>>,
}

impl BackupRepoSpec {
    /// The effective access method: `Mount` when unset (the CRD default).
    pub fn access_method(&self) -> AccessMethod {
        self.access_method.unwrap_or_default()
    }
}

/// Outcome of one operation of a connectivity probe (extension over KubeBlocks).
#[derive(Clone, Debug, Default, PartialEq, Eq, Serialize, Deserialize, JsonSchema)]
#[serde(rename_all = "camelCase")]
pub struct ProbeCheck {
    /// The operation probed, e.g. `push`, `pull`, `list`, `delete`.
    pub operation: String,
    /// `Passed`, `Failed` or `Skipped`.
    pub result: String,
    /// Details, e.g. the error text.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub message: Option<String>,
    /// How long the operation took, in milliseconds.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub duration_ms: Option<u64>,
}

/// Bytes and objects under a path (extension over KubeBlocks).
#[derive(Clone, Debug, Default, PartialEq, Eq, Serialize, Deserialize, JsonSchema)]
#[serde(rename_all = "camelCase")]
pub struct UsageFigures {
    /// Bytes stored.
    pub total_bytes: u64,
    /// Objects stored.
    pub object_count: u64,
}

/// What a repository holds, measured after its checks (extension over KubeBlocks): `list` and
/// `describe` show it without scanning the storage.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize, JsonSchema)]
#[serde(rename_all = "camelCase")]
pub struct RepoUsage {
    /// Bytes under the repository's path.
    pub total_bytes: u64,
    /// Objects under the repository's path.
    pub object_count: u64,
    /// When the measurement finished (or, while partial, when its last part ran).
    pub measured_at: Time,
    /// The same figures per top-level directory under the path: the namespaces in KubeBlocks'
    /// layout `<pathPrefix>/<namespace>/...`. Objects directly under the path count under "".
    #[serde(default, skip_serializing_if = "BTreeMap::is_empty")]
    pub by_prefix: BTreeMap<String, UsageFigures>,
    /// `true` while the measurement is incomplete: each run reads a bounded number of listing
    /// pages and the next run resumes; the figures so far are a lower bound.
    #[serde(default, skip_serializing_if = "std::ops::Not::not")]
    pub partial: bool,
    /// Where the next run resumes (the last key read), while partial.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub resume_after: Option<String>,
    /// On a bucket with object lock: the objects that cannot be removed now, and until when.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub locked: Option<LockedFigures>,
}

/// Objects under object lock, as the usage scan found them (one HEAD per object, only on
/// buckets with object lock).
#[derive(Clone, Debug, Default, PartialEq, Eq, Serialize, Deserialize, JsonSchema)]
#[serde(rename_all = "camelCase")]
pub struct LockedFigures {
    /// Objects under retention or a legal hold.
    pub object_count: u64,
    /// Of them, under a legal hold (kept until it is lifted).
    #[serde(default, skip_serializing_if = "is_zero")]
    pub legal_holds: u64,
    /// The earliest end of a retention: the first object that can go.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub first_until: Option<String>,
    /// The latest end of a retention: when all of them (legal holds aside) can go.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub last_until: Option<String>,
}

fn is_zero(n: &u64) -> bool {
    *n == 0
}

/// What the storage does on delete, read by the check where the service tells (extension
/// over KubeBlocks; S3 family).
#[derive(Clone, Debug, Default, PartialEq, Eq, Serialize, Deserialize, JsonSchema)]
#[serde(rename_all = "camelCase")]
pub struct StorageCapabilities {
    /// Bucket versioning: `Enabled`, `Suspended`, or `Off` (never enabled).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub versioning: Option<String>,
    /// Object lock, when the bucket has it enabled.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub object_lock: Option<ObjectLock>,
}

/// A bucket's object-lock configuration.
#[derive(Clone, Debug, Default, PartialEq, Eq, Serialize, Deserialize, JsonSchema)]
#[serde(rename_all = "camelCase")]
pub struct ObjectLock {
    /// Default retention mode of new objects: `GOVERNANCE` or `COMPLIANCE` (none: objects
    /// are locked only when written with a retention of their own).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub mode: Option<String>,
    /// Default retention in days.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub days: Option<u32>,
    /// Default retention in years.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub years: Option<u32>,
}

impl ObjectLock {
    /// The default retention's length (`1 days`, `2 years`), if the bucket has one.
    pub fn period(&self) -> Option<String> {
        match (self.days, self.years) {
            (Some(d), _) => Some(format!("{d} days")),
            (None, Some(y)) => Some(format!("{y} years")),
            _ => None,
        }
    }

    /// The default retention (`GOVERNANCE, 1 days`): its mode and length, when it has both.
    pub fn default_retention(&self) -> Option<String> {
        Some(format!("{}, {}", self.mode.as_deref()?, self.period()?))
    }
}

/// BackupRepoStatus defines the observed state of `BackupRepo`.
#[derive(Clone, Debug, Default, PartialEq, Serialize, Deserialize, JsonSchema)]
#[serde(rename_all = "camelCase")]
pub struct BackupRepoStatus {
    /// Represents the current phase of reconciliation for the backup repository.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub phase: Option<BackupRepoPhase>,

    /// Provides a detailed description of the current state of the backup repository.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub conditions: Vec<Condition>,

    /// Represents the latest generation of the resource that the controller has observed.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub observed_generation: Option<i64>,

    /// Refers to the generated secret for the `StorageProvider`.
    #[serde(
        default,
        rename = "generatedCSIDriverSecret",
        skip_serializing_if = "Option::is_none"
    )]
    #[schemars(schema_with = "schema::secret_reference")]
    pub generated_csi_driver_secret: Option<SecretReference>,

    /// Represents the name of the generated storage class.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub generated_storage_class_name: Option<String>,

    /// Represents the name of the PVC that stores backup data.
    #[serde(
        default,
        rename = "backupPVCName",
        skip_serializing_if = "Option::is_none"
    )]
    pub backup_pvc_name: Option<String>,

    /// Represents the name of the secret that contains the configuration for the tool.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub tool_config_secret_name: Option<String>,

    /// Indicates if this backup repository is the default one.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub is_default: Option<bool>,

    /// When the repository was last probed (extension over KubeBlocks).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub last_check_time: Option<Time>,

    /// Per-operation results of the last probe (extension over KubeBlocks).
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub checks: Vec<ProbeCheck>,

    /// What the repository holds, measured after its checks (extension over KubeBlocks).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub usage: Option<RepoUsage>,

    /// Versioning and object lock of the storage, read by the check (extension over
    /// KubeBlocks).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub capabilities: Option<StorageCapabilities>,

    /// The storage keys the controller made for consumer namespaces, limited to their own
    /// path (`backuprepo.io/scoped-credentials`; extension over KubeBlocks). Never a secret.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub scoped_credentials: Vec<ScopedCredential>,

    /// The second copy kept by `backuprepo.io/replicate-to` (extension over KubeBlocks).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub replication: Option<ReplicationStatus>,
}

/// The figures of one replication run (`backuprepo.io/replicate-to`): what the data plane
/// reports and the status records (not stored as such).
#[derive(Clone, Debug, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct ReplicationRun {
    /// What the run found to copy.
    pub planned_objects: u64,
    pub planned_bytes: u64,
    /// What it copied (and verified).
    pub copied_objects: u64,
    pub copied_bytes: u64,
    /// Why it stopped short.
    pub error: Option<String>,
}

/// The last run of the copy into the repository that `backuprepo.io/replicate-to` names.
#[derive(Clone, Debug, Default, PartialEq, Eq, Serialize, Deserialize, JsonSchema)]
#[serde(rename_all = "camelCase")]
pub struct ReplicationStatus {
    /// The repository the objects are copied into.
    pub destination: String,
    /// When the last run started.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub last_run_time: Option<Time>,
    /// When the last run that finished began: the copy holds every object written before it
    /// (the lag is the time since).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub last_success_time: Option<Time>,
    /// Objects (and bytes) the last run found missing or different at the destination and did
    /// not copy: zero after a run that finished.
    #[serde(default)]
    pub objects_behind: u64,
    #[serde(default)]
    pub bytes_behind: u64,
    /// Objects (and bytes) the last run copied.
    #[serde(default)]
    pub copied_objects: u64,
    #[serde(default)]
    pub copied_bytes: u64,
    /// Why the last run failed or was refused (none after a run that finished).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub last_error: Option<String>,
}

/// The key of one consumer namespace: a user on the storage whose policy allows
/// `<pathPrefix>/<namespace>/` (and reading `readPaths`), and the key its tool-config Secret
/// holds.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize, JsonSchema)]
#[serde(rename_all = "camelCase")]
pub struct ScopedCredential {
    pub namespace: String,
    /// The user on the storage.
    pub user: String,
    /// The key in the namespace's tool-config Secret (its ID; the secret is only there).
    pub access_key_id: String,
    /// When that key was made: keys are replaced when they reach the rotation age.
    pub created_at: Time,
    /// Keys replaced by a rotation, still working until `until` so that jobs already running
    /// with them finish.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub retiring: Vec<RetiringKey>,
    /// Backup paths of other namespaces this namespace may read, for its Restores of them.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub read_paths: Vec<String>,
}

/// A key replaced by a rotation, deleted at `until`.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize, JsonSchema)]
#[serde(rename_all = "camelCase")]
pub struct RetiringKey {
    pub access_key_id: String,
    pub until: Time,
}

/// Why a credential reference without a namespace is refused (field `spec.credential.namespace`).
pub const CREDENTIAL_NAMESPACE_MISSING: &str = "must be set when spec.credential is given (the \
namespace of the Secret holding the credentials, e.g. \"kb-system\")";

impl BackupRepo {
    /// The repository's name (`metadata.name`), "" when unset.
    pub fn name(&self) -> &str {
        self.metadata.name.as_deref().unwrap_or_default()
    }

    /// The effective access method: `Mount` when `spec.accessMethod` is unset.
    pub fn access_method(&self) -> AccessMethod {
        self.spec.access_method()
    }

    /// Whether the annotation `dataprotection.kubeblocks.io/is-default-repo` is `"true"`.
    pub fn is_default(&self) -> bool {
        self.annotation_is_true(IS_DEFAULT_REPO_ANNOTATION)
    }

    /// Whether `backuprepo.io/suspend` is `"true"`: no periodic checks.
    pub fn is_suspended(&self) -> bool {
        self.annotation_is_true(crate::constants::SUSPEND_ANNOTATION)
    }

    /// What `backuprepo.io/scoped-credentials` asks for: `Some(true)` (scoped keys required),
    /// `Some(false)` (off), `None` (absent: the controller's default). Any other value is an
    /// error naming it: `"True"` or `"yes"` must not silently mean the default.
    pub fn scoped_credentials_annotation(&self) -> Result<Option<bool>, String> {
        let key = crate::constants::SCOPED_CREDENTIALS_ANNOTATION;
        match self
            .metadata
            .annotations
            .as_ref()
            .and_then(|a| a.get(key))
            .map(String::as_str)
        {
            None => Ok(None),
            Some("true") => Ok(Some(true)),
            Some("false") => Ok(Some(false)),
            Some(other) => Err(format!(
                "annotation {key} is {other:?}, which is neither \"true\" nor \"false\"; keys stay scoped (as with \"true\") until it is corrected"
            )),
        }
    }

    /// Whether `backuprepo.io/read-only` is `"true"`: no writes.
    pub fn is_read_only(&self) -> bool {
        self.annotation_is_true(crate::constants::READ_ONLY_ANNOTATION)
    }

    /// The value of an annotation, if set.
    pub fn annotation(&self, key: &str) -> Option<&str> {
        self.metadata
            .annotations
            .as_ref()
            .and_then(|a| a.get(key))
            .map(String::as_str)
    }

    fn annotation_is_true(&self, key: &str) -> bool {
        self.metadata
            .annotations
            .as_ref()
            .and_then(|a| a.get(key))
            .is_some_and(|v| v == "true")
    }

    /// Whether `spec.credential` names a secret.
    pub fn uses_credential(&self) -> bool {
        self.spec
            .credential
            .as_ref()
            .and_then(|c| c.name.as_deref())
            .is_some_and(|n| !n.is_empty())
    }

    /// The credential Secret as `(namespace, name)`, when `spec.credential` names one
    /// (`Ok(None)`: no credential). The one rule for both stores: a name without a namespace
    /// is an error ([`CREDENTIAL_NAMESPACE_MISSING`]). KubeBlocks' CRD admits it, but its
    /// controller then looks for a cluster-scoped Secret and never finds one; guessing
    /// `default` would read a Secret the author may not have meant.
    pub fn credential_key(&self) -> Result<Option<(String, String)>, &'static str> {
        let Some(c) = self.spec.credential.as_ref() else {
            return Ok(None);
        };
        let Some(name) = c.name.as_deref().filter(|n| !n.is_empty()) else {
            return Ok(None);
        };
        match c.namespace.as_deref().filter(|n| !n.is_empty()) {
            Some(ns) => Ok(Some((ns.to_string(), name.to_string()))),
            None => Err(CREDENTIAL_NAMESPACE_MISSING),
        }
    }

    /// Whether `namespace` may receive this repository's tool-config secret
    /// (`spec.allowedNamespaces` absent means every namespace, as in KubeBlocks).
    pub fn allows_namespace(&self, namespace: &str) -> bool {
        self.allows_namespace_when_unset(namespace, None)
    }

    /// As [`BackupRepo::allows_namespace`], with the list that stands for an absent one:
    /// `None` (every namespace, KubeBlocks' behaviour) or the controller's default list.
    pub fn allows_namespace_when_unset(&self, namespace: &str, default: Option<&[String]>) -> bool {
        let list = match (&self.spec.allowed_namespaces, default) {
            (Some(list), _) => list.as_slice(),
            (None, Some(list)) => list,
            (None, None) => return true,
        };
        list.iter().any(|n| n == namespace)
    }

    /// The current phase, if any.
    pub fn phase(&self) -> Option<BackupRepoPhase> {
        self.status.as_ref().and_then(|s| s.phase)
    }
}
