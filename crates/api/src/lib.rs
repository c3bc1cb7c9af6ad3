//! API types of backuprepo: the `BackupRepo` and `StorageProvider` custom resources of
//! `dataprotection.kubeblocks.io/v1alpha1` (KubeBlocks-compatible, with a few optional
//! extensions), their well-known strings, YAML parsing, validation and derived names.

pub mod backup_repo;
pub mod constants;
pub mod error;
pub mod names;
pub mod parse;
mod schema;
pub mod storage_provider;
pub mod validate;

pub use backup_repo::{
    AccessMethod, BackupRepo, BackupRepoPhase, BackupRepoSpec, BackupRepoStatus, LockedFigures,
    ObjectLock, ProbeCheck, PvReclaimPolicy, ReplicationRun, ReplicationStatus, RepoUsage,
    RetiringKey, ScopedCredential, StorageCapabilities, UsageFigures,
};
pub use error::{ApiError, SUPPORTED_KINDS};
pub use names::{derived_name, pre_check_resource_name, random_suffix, RANDOM_ALPHABET};
pub use parse::{parse_documents, secret_data, Document, Parsed};
pub use schema::QUANTITY_PATTERN;
pub use storage_provider::{
    ParametersSchema, ScopedCredentials, StorageProvider, StorageProviderPhase,
    StorageProviderSpec, StorageProviderStatus,
};
pub use validate::{
    check_dns1123_label, check_dns1123_subdomain, is_valid_path_prefix, parse_quantity, FieldError,
    PATH_PREFIX_PATTERN,
};

// Re-exported so dependants use the same versions.
pub use k8s_openapi;
pub use kube;
