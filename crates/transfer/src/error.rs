//! One error type for the data plane. Every variant names the problem and, where there is one,
//! the fix. No variant carries a secret: config errors name keys, never values of credential keys.

use std::io;

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
    /// The storage refused the credentials or the operation.
    #[error("{0}")]
    Denied(String),
    /// The storage could not be reached.
    #[error("{0}")]
    Unreachable(String),
    /// The bucket or container does not exist (we never create it implicitly).
    #[error("{0}")]
    MissingBucket(String),
    /// The stored data failed an integrity check (tampered, truncated, wrong key).
    #[error("{0}")]
    Corrupt(String),
    /// Unsupported algorithm or operation.
    #[error("{0}")]
    Unsupported(String),
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

    /// Classify an OpenDAL error into one of ours, with an actionable message.
    /// `target` describes where we were talking to (endpoint/bucket), never credentials.
    pub fn from_opendal(err: opendal::Error, target: &str) -> Self {
        use opendal::ErrorKind as K;
        let text = err.to_string();
        let has = |needle: &str| text.contains(needle);
        if has("NoSuchBucket") || has("ContainerNotFound") {
            return Error::MissingBucket(format!(
                "the bucket or container does not exist: {target}; create it first or fix its name (backuprepo never creates buckets implicitly)"
            ));
        }
        match err.kind() {
            K::NotFound => Error::NotFound,
            K::PermissionDenied => Error::Denied(format!(
                "access denied by {target}{}; check the access key, secret and the bucket policy",
                code_hint(&text)
            )),
            K::ConfigInvalid => Error::Config(format!("invalid storage config: {text}")),
            K::Unsupported => Error::Unsupported(format!("not supported by this storage: {text}")),
            _ if has("InvalidAccessKeyId")
                || has("SignatureDoesNotMatch")
                || has("AuthenticationFailed")
                || has("AuthorizationFailure")
                || has("530 ")
                || has("Login incorrect") =>
            {
                Error::Denied(format!(
                    "the storage at {target} rejected the credentials{}; check the access key and secret (or user and password)",
                    code_hint(&text)
                ))
            }
            _ if has("AuthorizationHeaderMalformed") || has("IllegalLocationConstraint") || has("PermanentRedirect") => {
                Error::Config(format!(
                    "region mismatch at {target}{}: set `region` to the bucket's region (or use its regional endpoint)",
                    code_hint(&text)
                ))
            }
            _ if has("Connection refused")
                || has("connect")
                || has("dns error")
                || has("timed out")
                || has("tcp connect")
                || has("error sending request") =>
            {
                Error::Unreachable(format!(
                    "cannot reach the storage at {target}: {}; check the endpoint/host and port and that the server is running",
                    short(&text)
                ))
            }
            _ => Error::Storage(format!("storage error at {target}: {}", short(&text))),
        }
    }
}

/// Pull a service error code such as `InvalidAccessKeyId` out of an OpenDAL message, if any.
fn code_hint(text: &str) -> String {
    const CODES: &[&str] = &[
        "InvalidAccessKeyId",
        "SignatureDoesNotMatch",
        "AccessDenied",
        "AuthenticationFailed",
        "AuthorizationFailure",
        "AuthorizationHeaderMalformed",
        "PermanentRedirect",
        "IllegalLocationConstraint",
    ];
    CODES
        .iter()
        .find(|c| text.contains(*c))
        .map(|c| format!(" ({c})"))
        .unwrap_or_default()
}

/// Keep the first line of a long backend message; OpenDAL messages carry the whole HTTP context.
fn short(text: &str) -> String {
    let line = text.lines().next().unwrap_or(text);
    if line.len() > 300 {
        let mut end = 300;
        while !line.is_char_boundary(end) {
            end -= 1;
        }
        format!("{}…", &line[..end])
    } else {
        line.to_string()
    }
}
