//! The embedded store of backuprepo: StorageProviders, BackupRepos and Secrets as files under
//! one home directory ([`store`]), reconciled in-process by the pure core right after every
//! change and on `check` ([`engine`]).

pub mod engine;
pub mod repo_store;
pub mod store;

pub use engine::{check_unstored, Clock, Engine};
pub use repo_store::{LocalStore, SECRET_NAMESPACE};
pub use store::Store;

use std::path::Path;

#[derive(Debug, thiserror::Error)]
pub enum Error {
    #[error("{path}: {source}")]
    Io {
        path: String,
        #[source]
        source: std::io::Error,
    },
    /// A stored or given object is not acceptable.
    #[error("{0}")]
    Invalid(String),
    /// Optimistic concurrency: someone else wrote the object first.
    #[error("{0}")]
    Conflict(String),
    #[error("{0}")]
    NotFound(String),
}

impl Error {
    pub fn io(path: &Path, source: std::io::Error) -> Error {
        Error::Io {
            path: path.display().to_string(),
            source,
        }
    }
}

pub type Result<T, E = Error> = std::result::Result<T, E>;

/// The current time as the API's timestamp type.
pub fn now() -> backuprepo_api::k8s_openapi::apimachinery::pkg::apis::meta::v1::Time {
    backuprepo_api::k8s_openapi::apimachinery::pkg::apis::meta::v1::Time(
        backuprepo_api::k8s_openapi::jiff::Timestamp::now(),
    )
}
