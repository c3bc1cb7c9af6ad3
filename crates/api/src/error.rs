//! Errors of parsing and secret decoding.

/// What `parse_documents` accepts, for error messages.
pub const SUPPORTED_KINDS: &str = "dataprotection.kubeblocks.io/v1alpha1 BackupRepo, \
dataprotection.kubeblocks.io/v1alpha1 StorageProvider, v1 Secret";

/// An error of [`crate::parse_documents`] or [`crate::secret_data`]. Document indexes are
/// 1-based positions in the YAML stream.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum ApiError {
    /// The text is not well-formed YAML.
    #[error("document {document}: invalid YAML: {message}{}", at_if_missing(.message, .line, .column))]
    Yaml {
        /// 1-based document index.
        document: usize,
        /// 1-based line in the whole input, when known.
        line: Option<usize>,
        /// 1-based column, when known.
        column: Option<usize>,
        /// The parser's message.
        message: String,
    },

    /// The document is not a mapping with string `apiVersion` and `kind`.
    #[error("document {document}: {message}; supported kinds: {SUPPORTED_KINDS}")]
    MissingTypeMeta {
        /// 1-based document index.
        document: usize,
        /// What is missing.
        message: String,
    },

    /// `apiVersion`/`kind` name no supported kind.
    #[error(
        "document {document}: unsupported kind {kind:?} with apiVersion {api_version:?}; \
         supported kinds: {SUPPORTED_KINDS}"
    )]
    UnsupportedKind {
        /// 1-based document index.
        document: usize,
        /// The document's `apiVersion`.
        api_version: String,
        /// The document's `kind`.
        kind: String,
    },

    /// The document has a supported kind but does not match its schema.
    #[error("document {document} ({kind}{}): {message}", named(.name))]
    InvalidObject {
        /// 1-based document index.
        document: usize,
        /// The document's kind.
        kind: String,
        /// `metadata.name`, when readable.
        name: Option<String>,
        /// What is wrong, with the field path and location.
        message: String,
        /// 1-based line in the whole input, when known.
        line: Option<usize>,
        /// 1-based column, when known.
        column: Option<usize>,
    },

    /// A value of a Secret's `data` is not UTF-8 text.
    #[error("secret {secret:?}: the value of key {key:?} is not valid UTF-8")]
    SecretDataNotUtf8 {
        /// `namespace/name` of the secret.
        secret: String,
        /// The offending key.
        key: String,
    },
}

/// The location, unless the parser's message already names it.
fn at_if_missing(message: &str, line: &Option<usize>, column: &Option<usize>) -> String {
    if message.contains(" line ") {
        return String::new();
    }
    match (line, column) {
        (Some(l), Some(c)) => format!(" at line {l}, column {c}"),
        (Some(l), None) => format!(" at line {l}"),
        _ => String::new(),
    }
}

fn named(name: &Option<String>) -> String {
    match name {
        Some(n) => format!(" {n:?}"),
        None => String::new(),
    }
}
