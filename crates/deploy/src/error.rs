//! Errors of manifest generation.

/// Why the manifests could not be produced. Messages name the offending field and never
/// quote a value of the values file's `secrets:` block.
#[derive(Debug, thiserror::Error)]
pub enum DeployError {
    /// The values file is not YAML.
    #[error("the values file is not valid YAML: {0}")]
    ValuesYaml(String),
    /// A field of the values file's `backupRepo:` block is wrong.
    #[error("values file: {field}: {message}")]
    Values {
        /// e.g. `backupRepo.accessMethod`.
        field: String,
        /// What is wrong and what is accepted.
        message: String,
    },
    /// An [`InstallOptions`](crate::InstallOptions) field is wrong.
    #[error("install option {field}: {message}")]
    Option {
        /// `namespace` or `image`.
        field: &'static str,
        /// What is wrong and what is accepted.
        message: String,
    },
    /// The built-in StorageProvider catalogue could not be read (a build defect).
    #[error("built-in storage providers: {0}")]
    Catalog(String),
    /// An object could not be serialised.
    #[error("cannot serialise {what}: {message}")]
    Serialize {
        /// Which object.
        what: String,
        /// The serialiser's message.
        message: String,
    },
}

impl DeployError {
    pub(crate) fn values(field: impl Into<String>, message: impl Into<String>) -> Self {
        DeployError::Values {
            field: field.into(),
            message: message.into(),
        }
    }
}
