//! Errors of one reconcile, and their class: the class decides what the controller does next
//! (wait for a change, or retry with backoff) and labels the error metric.

/// What to do about an error.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum ErrorClass {
    /// Retrying the same object cannot help (the API server rejects what we send, or the object
    /// cannot be read): wait for it to change.
    Invalid,
    /// Network trouble, server errors, conflicts, throttling, a dependency still converging:
    /// retry with backoff.
    Transient,
}

impl ErrorClass {
    /// The metric label.
    pub fn as_str(self) -> &'static str {
        match self {
            ErrorClass::Invalid => "invalid",
            ErrorClass::Transient => "transient",
        }
    }
}

#[derive(Debug, thiserror::Error)]
pub enum Error {
    /// A call to the API server failed; `step` names what we were doing.
    #[error("{step}: {source}")]
    Kube {
        step: String,
        #[source]
        source: kube::Error,
    },
    /// The object cannot be handled as it is (e.g. it does not deserialize).
    #[error("{0}")]
    Invalid(String),
    /// Something we depend on is still converging (residual PVCs, a stale pre-check Job).
    #[error("{0}")]
    Pending(String),
}

impl Error {
    pub fn kube(step: impl Into<String>) -> impl FnOnce(kube::Error) -> Error {
        let step = step.into();
        move |source| Error::Kube { step, source }
    }

    pub fn class(&self) -> ErrorClass {
        match self {
            Error::Kube { source, .. } => kube_class(source),
            Error::Invalid(_) => ErrorClass::Invalid,
            Error::Pending(_) => ErrorClass::Transient,
        }
    }
}

/// 400 and 422 mean the request itself is wrong: sending it again cannot succeed until the
/// object changes. Everything else (5xx, 409, 429, 403 until RBAC is fixed, transport errors)
/// may pass later.
fn kube_class(e: &kube::Error) -> ErrorClass {
    match e {
        kube::Error::Api(status) if matches!(status.code, 400 | 422) => ErrorClass::Invalid,
        kube::Error::SerdeError(_) | kube::Error::BuildRequest(_) => ErrorClass::Invalid,
        _ => ErrorClass::Transient,
    }
}

/// Whether an API error is NotFound.
pub fn is_not_found(e: &kube::Error) -> bool {
    matches!(e, kube::Error::Api(s) if s.code == 404)
}

/// Whether an API error is AlreadyExists.
pub fn is_conflict(e: &kube::Error) -> bool {
    matches!(e, kube::Error::Api(s) if s.code == 409)
}

pub type Result<T, E = Error> = std::result::Result<T, E>;
