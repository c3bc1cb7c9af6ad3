//! One error type for the data plane. Every variant names the problem and, where there is one,
//! the fix. No variant carries a secret: config errors name keys, never values of credential keys.

use std::io;

use crate::diagnose::diagnose;
use crate::service::Site;

pub type Result<T, E = Error> = std::result::Result<T, E>;

#[derive(Debug, thiserror::Error)]
pub enum Error {
    /// The tool config is malformed or names something we do not support.
    #[error("{0}")]
    Config(String),
    /// A remote path is not acceptable (escapes the base path, ends with `/` where a file is needed).
    #[error("invalid path: {0}")]
    InvalidPath(String),
    /// The object does not exist.
    #[error("object not found")]
    NotFound,
    /// The directory does not exist.
    #[error("directory not found")]
    DirNotFound,
    /// The storage service failed: what went wrong ([`Problem`]), the fix, whether trying
    /// again may succeed, and the service's own error.
    #[error("{message}")]
    Service {
        problem: Problem,
        message: String,
        temporary: bool,
        #[source]
        source: Option<Box<dyn std::error::Error + Send + Sync>>,
    },
    /// The stored data failed an integrity check (tampered, truncated, wrong key).
    #[error("{0}")]
    Corrupt(String),
    /// Unsupported algorithm or operation.
    #[error("{0}")]
    Unsupported(String),
    /// A write on a read-only repository, refused before any request.
    #[error("{0}")]
    ReadOnly(String),
    /// A delete of objects under object-lock retention, refused before any delete.
    #[error("{0}")]
    Locked(String),
    /// The transfer was interrupted (signal); nothing was written at the target.
    #[error("interrupted: {0}")]
    Interrupted(String),
    /// Any other storage error, already rendered without secrets.
    #[error("{0}")]
    Storage(String),
    #[error("{context}: {source}")]
    Io {
        context: String,
        #[source]
        source: io::Error,
    },
}

impl From<backuprepo_toolconfig::Error> for Error {
    fn from(e: backuprepo_toolconfig::Error) -> Self {
        match e {
            backuprepo_toolconfig::Error::Config(m) => Error::Config(m),
            backuprepo_toolconfig::Error::Unsupported(m) => Error::Unsupported(m),
        }
    }
}

impl Error {
    pub fn io(context: impl Into<String>, source: io::Error) -> Self {
        // Errors raised inside our own io::Read/Write adapters travel through std::io as
        // `io::Error::other(Error)`; unwrap them so the caller sees the precise variant.
        if source.get_ref().is_some_and(|e| e.is::<Error>()) {
            if let Some(inner) = source.into_inner() {
                if let Ok(e) = inner.downcast::<Error>() {
                    return *e;
                }
            }
            return Error::Storage("internal error while unwrapping an I/O error".into());
        }
        Error::Io {
            context: context.into(),
            source,
        }
    }

    /// Wrap into an `io::Error` so it can cross `std::io::Read`/`Write` boundaries intact.
    pub fn into_io(self) -> io::Error {
        io::Error::other(self)
    }

    /// A failure of the storage service.
    pub fn service(
        problem: Problem,
        message: String,
        temporary: bool,
        source: Option<Box<dyn std::error::Error + Send + Sync>>,
    ) -> Self {
        Error::Service {
            problem,
            message,
            temporary,
            source,
        }
    }

    /// Whether trying again may succeed (a network failure, a throttled or busy service).
    pub fn is_temporary(&self) -> bool {
        matches!(
            self,
            Error::Service {
                temporary: true,
                ..
            }
        )
    }

    /// What went wrong at the storage service, if that is where it went wrong.
    pub fn problem(&self) -> Option<Problem> {
        match self {
            Error::Service { problem, .. } => Some(*problem),
            _ => None,
        }
    }

    /// Classify an OpenDAL error of the storage at `site` ([`crate::diagnose`]), keeping it as
    /// the source.
    pub fn from_opendal(err: opendal::Error, site: &Site) -> Self {
        use opendal::ErrorKind as K;
        // A missing bucket comes as NotFound or ConfigInvalid, depending on the call.
        if !crate::diagnose::is_missing_bucket(&err) {
            match err.kind() {
                K::NotFound => return Error::NotFound,
                K::ConfigInvalid => return Error::Config(format!("invalid storage config: {err}")),
                K::Unsupported => {
                    return Error::Unsupported(format!("not supported by this storage: {err}"))
                }
                _ => {}
            }
        }
        let (problem, message) = diagnose(site, None, &err);
        Error::Service {
            problem,
            message,
            temporary: problem.is_temporary(&err),
            source: Some(Box::new(err)),
        }
    }
}

/// What went wrong at a storage service.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Problem {
    /// The bucket or container does not exist (backuprepo never creates it).
    MissingBucket,
    /// The credentials are not accepted at all.
    Credentials,
    /// Requests are signed for another region than the bucket's.
    Region,
    /// The credentials are valid, a permission is missing.
    Denied,
    Tls,
    /// The endpoint's name does not resolve.
    Dns,
    /// The endpoint cannot be reached.
    Unreachable,
    Other,
}

impl Problem {
    /// Whether trying again may succeed: an endpoint that does not answer may come back; a
    /// missing bucket, refused credentials, a wrong region, a missing permission, a failed TLS
    /// check or an unknown name stay until someone fixes them (OpenDAL's retry layer retries
    /// some of those too, so its flag alone does not say). Otherwise OpenDAL's flag
    /// (persistent: temporary, and still failing after our retries).
    fn is_temporary(self, err: &opendal::Error) -> bool {
        match self {
            Problem::Unreachable => true,
            Problem::Other => err.is_temporary() || err.is_persistent(),
            _ => false,
        }
    }
}
