//! Well-known strings of the BackupRepo API: group/version, label, annotation and finalizer
//! keys, condition types, reasons and messages (spec §1.3, §2.5, §2.6, §2.12).

/// API group of both custom resources.
pub const GROUP: &str = "dataprotection.kubeblocks.io";
/// API version of both custom resources.
pub const VERSION: &str = "v1alpha1";
/// `apiVersion` of both custom resources.
pub const API_VERSION: &str = "dataprotection.kubeblocks.io/v1alpha1";
/// Kind of the backup repository resource.
pub const BACKUP_REPO_KIND: &str = "BackupRepo";
/// Kind of the storage provider resource.
pub const STORAGE_PROVIDER_KIND: &str = "StorageProvider";
/// Category of both CRDs (`kubectl get kubeblocks`).
pub const CATEGORY: &str = "kubeblocks";

/// Annotation on a BackupRepo marking it as the default repository (value `"true"`).
pub const IS_DEFAULT_REPO_ANNOTATION: &str = "dataprotection.kubeblocks.io/is-default-repo";
/// Annotation holding the digest of the parameters and templates last pre-checked; also put
/// on every derived object.
pub const BACKUP_REPO_DIGEST_ANNOTATION: &str = "dataprotection.kubeblocks.io/backup-repo-digest";
/// Annotation on a BackupRepo: `"true"` when tool-config secrets must be re-rendered.
pub const NEED_UPDATE_TOOL_CONFIG_ANNOTATION: &str =
    "dataprotection.kubeblocks.io/need-update-tool-config";
/// Annotation (ours) asking the controller to check the storage now, whatever the digest and
/// the re-check interval say; the value is the time of the request. The controller removes it
/// once the check it asked for finished (`backuprepo check NAME` on a cluster).
pub const CHECK_REQUESTED_ANNOTATION: &str = "backuprepo.io/check-requested";
/// Annotation (ours): `"true"` stops periodic checks (and usage scans) of the repository, so
/// a paid bucket is not polled; `backuprepo check NAME` still checks on demand.
pub const SUSPEND_ANNOTATION: &str = "backuprepo.io/suspend";
/// Annotation (ours): `"true"` makes the repository read-only: writes (push, rm, gc, bench)
/// are refused, reads keep working, and its check writes nothing. An annotation keeps the CRD
/// wire-compatible with KubeBlocks.
pub const READ_ONLY_ANNOTATION: &str = "backuprepo.io/read-only";
/// Annotation (ours): `"<duration>[,GOVERNANCE|COMPLIANCE]"` locks every object our datasafed
/// face writes into the repository for that long (S3 object lock; the bucket must have it).
pub const RETENTION_ANNOTATION: &str = "backuprepo.io/retention";
/// Annotation (ours): `"<repository>[,every=<duration>]"` keeps a verified copy of the
/// repository's objects in another repository, brought up to date every `every` (default 1h).
pub const REPLICATE_TO_ANNOTATION: &str = "backuprepo.io/replicate-to";
/// Annotation (ours): `"true"` gives each consumer namespace its own storage key, limited to
/// `<pathPrefix>/<namespace>/`, instead of a copy of the repository's key; `"false"` turns it
/// off where the controller scopes keys by default (`BACKUPREPO_SCOPED_CREDENTIALS=true`).
pub const SCOPED_CREDENTIALS_ANNOTATION: &str = "backuprepo.io/scoped-credentials";
/// Annotation (ours) asking the controller to replace every scoped key of the repository now;
/// it removes the annotation once done (`backuprepo rotate-keys NAME`).
pub const ROTATE_KEYS_ANNOTATION: &str = "backuprepo.io/rotate-keys";
/// Annotation (ours): a Kubernetes quantity (`"500Gi"`); the controller exports it as
/// `backuprepo_repository_usage_alert_bytes`, and the `BackupRepoUsageHigh` alert fires when
/// the repository holds more.
pub const USAGE_ALERT_ANNOTATION: &str = "backuprepo.io/usage-alert";
/// Label naming the repository, on derived objects and on Backups/Restores using it.
pub const BACKUP_REPO_NAME_LABEL: &str = "dataprotection.kubeblocks.io/backup-repo-name";
/// Label (`"true"`) on Backups/Restores waiting for the repository to be prepared in their
/// namespace.
pub const WAIT_REPO_PREPARATION_LABEL: &str = "dataprotection.kubeblocks.io/wait-repo-preparation";
/// Label (`"true"`) on tool-config secrets.
pub const IS_TOOL_CONFIG_LABEL: &str = "dataprotection.kubeblocks.io/is-tool-config";
/// Finalizer put on BackupRepos (and removed from StorageProviders if present).
pub const FINALIZER: &str = "dataprotection.kubeblocks.io/finalizer";

/// Key of the datasafed configuration inside a tool-config secret.
pub const TOOL_CONFIG_SECRET_KEY: &str = "datasafed.conf";

/// Prefixes of the names allocated by [`crate::derived_name`] (spec §2.5).
pub mod name_prefix {
    /// `status.generatedCSIDriverSecret.name`: `secret-<repo>-<rand6>`.
    pub const CSI_DRIVER_SECRET: &str = "secret";
    /// `status.generatedStorageClassName`: `sc-<repo>-<rand6>`.
    pub const STORAGE_CLASS: &str = "sc";
    /// `status.backupPVCName`: `pvc-<repo>-<rand6>`.
    pub const BACKUP_PVC: &str = "pvc";
    /// `status.toolConfigSecretName`: `tool-config-<repo>-<rand6>`.
    pub const TOOL_CONFIG_SECRET: &str = "tool-config";
}

/// Condition types of a BackupRepo (spec §2.6) and of a StorageProvider (spec §1.2, §2.12).
pub mod condition_type {
    /// The referenced StorageProvider exists and supports the access method.
    pub const STORAGE_PROVIDER_READY: &str = "StorageProviderReady";
    /// Parameters (config + credential secret) could be assembled.
    pub const PARAMETERS_CHECKED: &str = "ParametersChecked";
    /// The CSI secret and StorageClass were prepared.
    pub const STORAGE_CLASS_CREATED: &str = "StorageClassCreated";
    /// The PVC template renders.
    pub const PVC_TEMPLATE_CHECKED: &str = "PVCTemplateChecked";
    /// The pre-check job passed.
    pub const PRE_CHECK_PASSED: &str = "PreCheckPassed";
    /// Derived objects were deleted (deletion flow).
    pub const DERIVED_OBJECTS_DELETED: &str = "DerivedObjectsDeleted";
    /// StorageProvider condition: the CSI driver is installed.
    pub const CSI_DRIVER_INSTALLED: &str = "CSIDriverInstalled";
    /// Ours: periodic checks are suspended (`backuprepo.io/suspend`); not a failure.
    pub const SUSPENDED: &str = "Suspended";
    /// Ours: the repository is read-only (`backuprepo.io/read-only`); not a failure.
    pub const READ_ONLY: &str = "ReadOnly";
    /// Ours: the bucket keeps old versions on delete (versioning enabled); not a failure.
    pub const VERSIONED: &str = "Versioned";
    /// Ours: the bucket has object lock; objects under retention cannot be removed.
    pub const OBJECT_LOCKED: &str = "ObjectLocked";
    /// Ours: the retention of `backuprepo.io/retention` applies (True), is refused (False: the
    /// repository is Failed), or waits for the check (Unknown).
    pub const RETENTION: &str = "Retention";
    /// Ours: consumer namespaces get keys limited to their own path
    /// (`backuprepo.io/scoped-credentials`); False when the storage would not make them.
    pub const SCOPED_CREDENTIALS: &str = "ScopedCredentials";
}

/// Condition reasons (spec §2.6, §2.12).
pub mod reason {
    /// True reason of `StorageProviderReady`.
    pub const STORAGE_PROVIDER_READY: &str = "StorageProviderReady";
    /// The referenced provider does not exist.
    pub const STORAGE_PROVIDER_NOT_FOUND: &str = "StorageProviderNotFound";
    /// The provider lacks the templates the access method needs.
    pub const INVALID_STORAGE_PROVIDER: &str = "InvalidStorageProvider";
    /// Mount access but the provider's CSI driver is not installed.
    pub const STORAGE_PROVIDER_NOT_READY: &str = "StorageProviderNotReady";
    /// Any other error.
    pub const UNKNOWN_ERROR: &str = "UnknownError";
    /// True reason of `ParametersChecked`.
    pub const PARAMETERS_CHECKED: &str = "ParametersChecked";
    /// The credential secret does not exist.
    pub const CREDENTIAL_SECRET_NOT_FOUND: &str = "CredentialSecretNotFound";
    /// True reason of `StorageClassCreated`.
    pub const STORAGE_CLASS_CREATED: &str = "StorageClassCreated";
    /// The CSI secret could not be rendered or written.
    pub const PREPARE_CSI_SECRET_FAILED: &str = "PrepareCSISecretFailed";
    /// The StorageClass could not be rendered or created.
    pub const PREPARE_STORAGE_CLASS_FAILED: &str = "PrepareStorageClassFailed";
    /// True reason of `PVCTemplateChecked`.
    pub const PVC_TEMPLATE_CHECKED: &str = "PVCTemplateChecked";
    /// `PVCTemplateChecked` not applicable (Tool access or no PVC template).
    pub const SKIPPED: &str = "Skipped";
    /// The PVC template does not render to a PersistentVolumeClaim.
    pub const BAD_PVC_TEMPLATE: &str = "BadPVCTemplate";
    /// True reason of `PreCheckPassed`.
    pub const PRE_CHECK_PASSED: &str = "PreCheckPassed";
    /// `PreCheckPassed` Unknown: the digest changed, a new pre-check is due.
    pub const DIGEST_CHANGED: &str = "DigestChanged";
    /// `PreCheckPassed` False: the pre-check job failed or timed out.
    pub const PRE_CHECK_FAILED: &str = "PreCheckFailed";
    /// True reason of `DerivedObjectsDeleted`.
    pub const DERIVED_OBJECTS_DELETED: &str = "DerivedObjectsDeleted";
    /// Deletion blocked: backups still use the repository.
    pub const HAVE_ASSOCIATED_BACKUPS: &str = "HaveAssociatedBackups";
    /// Deletion blocked: derived PVCs still exist.
    pub const HAVE_RESIDUAL_PVCS: &str = "HaveResidualPVCs";
    /// StorageProvider: the CSIDriver object was found (or no driver is needed).
    pub const CSI_DRIVER_OBJECT_FOUND: &str = "CSIDriverObjectFound";
    /// StorageProvider: looking up the CSIDriver object failed.
    pub const CHECK_CSI_DRIVER_FAILED: &str = "CheckCSIDriverFailed";
}

/// Fixed condition / error messages (spec §1.1, §2.6, §2.7, §2.8).
pub mod message {
    /// Mount access, provider has neither a StorageClass nor a PVC template.
    pub const BOTH_SC_AND_PVC_TEMPLATES_EMPTY: &str =
        "both StorageClassTemplate and PersistentVolumeClaimTemplate are empty";
    /// Tool access, provider has no datasafed template.
    pub const DATASAFED_CONFIG_TEMPLATE_EMPTY: &str = "DatasafedConfigTemplate is empty";
    /// Mount access, provider's CSI driver not installed.
    pub const CSI_DRIVER_NOT_INSTALLED: &str = "CSI driver is not installed";
    /// Deletion blocked by backups.
    pub const SOME_BACKUPS_STILL_REFER: &str = "some backups still refer to this repo";
    /// Deletion blocked by residual PVCs.
    pub const DERIVED_PVCS_STILL_IN_USE: &str = "maybe the derived PVCs are still in use";
    /// CEL message of the immutable `storageProviderRef`.
    pub const STORAGE_PROVIDER_REF_IMMUTABLE: &str = "StorageProviderRef is immutable";
    /// Mount pre-check resources carry a stale digest.
    pub const PRE_CHECK_PVC_DIGEST_MISMATCH: &str =
        "pre-check job or PVC digest not match, try again";
    /// Tool pre-check resources carry a stale digest.
    pub const PRE_CHECK_SECRET_DIGEST_MISMATCH: &str =
        "pre-check job or tool config secret digest not match, try again";
    /// First line of the pre-check failure message.
    pub const PRE_CHECK_FAILED_HEADER: &str =
        "Pre-check job failed, information collected for diagnosis.";
}

/// Values of [`crate::ProbeCheck::result`].
pub mod probe_result {
    /// The operation succeeded.
    pub const PASSED: &str = "Passed";
    /// The operation failed.
    pub const FAILED: &str = "Failed";
    /// The operation was not attempted.
    pub const SKIPPED: &str = "Skipped";
}
