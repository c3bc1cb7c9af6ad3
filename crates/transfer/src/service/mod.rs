//! One module per storage service (s3, ftp, azblob, local). Each holds what is particular to
//! its service: building the OpenDAL operator, the endpoint it connects to, which values of its
//! config are secrets, what the pre-check does on it, and how its failures read (codes,
//! messages, fixes). Parsing its config keys is in `backuprepo_toolconfig` (pure, shared with
//! the catalogue). What all services share (layers, the HTTP client with its TLS options, the
//! one error classifier in [`crate::diagnose`]) is here and there.

pub mod azblob;
pub mod ftp;
pub mod local;
pub mod s3;

use std::time::Duration;

use opendal::layers::{RetryLayer, TimeoutLayer};
use opendal::Operator;

use crate::config::{Backend, ToolConfig, Tuning};
use crate::probe::Operation;
use crate::{Error, Result};

/// The temporary directory: local writes stage their files in it (inside the root, so the
/// rename is atomic), S3 uploads their segments (under the base path). Hidden from listings;
/// `gc` removes what is old in it.
pub const TMP_DIR: &str = ".backuprepo-tmp";

/// What a storage service knows about itself.
pub trait Service: Send + Sync {
    /// The OpenDAL operator for this config (without the shared layers and HTTP client).
    fn operator(&self) -> Result<Operator>;
    /// Where requests go, for messages: the endpoint URL, `ftp://host:port`, or the root.
    fn endpoint(&self) -> String;
    /// Host and port the service connects to (for the endpoint guard); `None` for a local
    /// directory and for a provider's default endpoint (a public service address).
    fn host_port(&self) -> Option<(String, u16)>;
    /// Credential values of the config (scrubbed from every message).
    fn secrets(&self) -> Vec<&str>;
    /// Whether writes check that the bucket exists first (`no_check_bucket` turns it off):
    /// `Ok(what is checked)`, or `Err(why not)`. Services without buckets check their root.
    fn bucket_check(&self) -> Result<String, &'static str>;
    /// Whether writes first check that the bucket exists (services with buckets, unless
    /// `no_check_bucket` / `no_check_container` is set).
    fn checks_bucket_on_write(&self) -> bool {
        false
    }
    /// Why the pre-check's multipart step does not apply (`None`: it does).
    fn multipart_skip(&self) -> Option<&'static str> {
        None
    }
    /// How a 2-part upload is made, for the pre-check's report.
    fn multipart_how(&self) -> &'static str {
        "a 2-part multipart upload"
    }
    /// The most parts an upload may have, when part sizes must grow to reach
    /// `limit × chunk_size` (see [`crate::pipeline::Shape`]); `None` when they need not (one
    /// stream, or S3's uploader, which composes instead).
    fn part_limit(&self) -> Option<u64> {
        None
    }
    /// A file the service's own uploads leave while in flight (`name` is a base name).
    fn is_temporary(&self, _name: &str) -> bool {
        false
    }

    // How failures read (see `crate::diagnose`).

    /// The message for a missing bucket or container, if the service has them.
    fn missing_bucket(&self, _endpoint: &str) -> Option<String> {
        None
    }
    /// Credentials the service does not accept at all: (code, what, fix).
    fn rejected_credentials(
        &self,
        _text: &str,
    ) -> Option<(&'static str, &'static str, &'static str)> {
        None
    }
    /// A region the requests are not signed for (S3).
    fn wrong_region(&self, _text: &str, _target: &str) -> Option<String> {
        None
    }
    /// The permission an operation needs, named as the service's policies name it.
    fn permission(&self, operation: Operation) -> &'static str {
        match operation {
            Operation::Put | Operation::Multipart => "write permission",
            Operation::Get => "read permission",
            Operation::List | Operation::Bucket => "list permission",
            Operation::Delete => "delete permission",
        }
    }
    /// A name that does not resolve, when the service can say more than "check the host".
    fn unresolved(&self, _endpoint: &str, _cause: &str) -> Option<String> {
        None
    }
}

/// The bucket check of a service with buckets: what is checked, or why it is not (the option
/// that turned it off also turns off the check before each write).
fn bucket_exists(check: bool, what: String, off: &'static str) -> Result<String, &'static str> {
    if check {
        Ok(what)
    } else {
        Err(off)
    }
}

/// The service of a backend config.
pub fn of(backend: &Backend) -> &dyn Service {
    match backend {
        Backend::S3(c) => c,
        Backend::Ftp(c) => c,
        Backend::Azblob(c) => c,
        Backend::Local(c) => c,
    }
}

/// Where a storage is, for errors: its service and the target described without credentials.
#[derive(Clone)]
pub struct Site {
    backend: Backend,
    target: String,
}

impl Site {
    pub fn of(backend: &Backend) -> Site {
        Site {
            backend: backend.clone(),
            target: backend.target(),
        }
    }

    pub fn service(&self) -> &dyn Service {
        of(&self.backend)
    }

    pub fn target(&self) -> &str {
        &self.target
    }

    /// An OpenDAL error of this storage, classified.
    pub fn error(&self, e: opendal::Error) -> Error {
        Error::from_opendal(e, self)
    }
}

impl std::fmt::Display for Site {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(&self.target)
    }
}

/// Config → OpenDAL operator: the service's operator, our HTTP client (so TLS options
/// `no_check_certificate`, `ca_cert` and a connect timeout apply), timeouts, and retries with
/// jitter for temporary errors.
pub fn build(cfg: &ToolConfig) -> Result<Operator> {
    install_crypto_provider();
    if let Some(why) = of(&cfg.backend)
        .host_port()
        .and_then(|(host, _)| crate::endpoint::refused_literal(&host))
    {
        return Err(Error::Config(why));
    }
    let op = of(&cfg.backend).operator()?;
    let op = with_http_client(op, &cfg.tuning)?;
    Ok(op
        .layer(
            TimeoutLayer::new()
                .with_timeout(Duration::from_secs(300))
                .with_io_timeout(Duration::from_secs(60)),
        )
        .layer(
            RetryLayer::new()
                .with_max_times(4)
                .with_min_delay(Duration::from_millis(200))
                .with_max_delay(Duration::from_secs(5))
                .with_jitter(),
        ))
}

/// Make ring the process's TLS crypto provider: it is the only one linked (storage, FTP and
/// Kubernetes clients all use it), and reqwest needs it installed before it builds a client.
/// Installing twice is harmless (the first stays).
pub fn install_crypto_provider() {
    let _ = rustls::crypto::ring::default_provider().install_default();
}

fn with_http_client(op: Operator, tuning: &Tuning) -> Result<Operator> {
    let transport = opendal::HttpTransporter::new(
        opendal_http_transport_reqwest::ReqwestTransport::new(http_client(tuning)?),
    );
    let ctx = op.context().with_http_transport(transport);
    Ok(op.with_context(ctx))
}

/// The HTTP client of a config: its TLS options and a connect timeout.
pub(crate) fn http_client(tuning: &Tuning) -> Result<reqwest::Client> {
    install_crypto_provider();
    // Storage APIs answer, they do not redirect: a redirect would lead to a host nobody
    // checked (see `crate::endpoint`).
    let b = reqwest::Client::builder()
        .connect_timeout(Duration::from_secs(10))
        .redirect(reqwest::redirect::Policy::none())
        .tls_danger_accept_invalid_certs(tuning.insecure);
    let mut b = crate::endpoint::guarded(b);
    if let Some(path) = &tuning.ca_cert {
        let pem = std::fs::read(path).map_err(|e| {
            Error::Config(format!(
                "cannot read ca_cert {}: {e}; point ca_cert at a PEM bundle",
                path.display()
            ))
        })?;
        let certs = reqwest::Certificate::from_pem_bundle(&pem).map_err(|e| {
            Error::Config(format!(
                "ca_cert {} is not a PEM bundle: {e}",
                path.display()
            ))
        })?;
        for c in certs {
            b = b.add_root_certificate(c);
        }
    }
    b.build()
        .map_err(|e| Error::Config(format!("cannot build the HTTP client: {e}")))
}

/// An endpoint with its scheme (`https://` when none is given, as rclone does).
pub(crate) fn with_scheme(ep: &str) -> String {
    if ep.contains("://") {
        ep.trim_end_matches('/').to_string()
    } else {
        format!("https://{}", ep.trim_end_matches('/'))
    }
}

/// OpenDAL's refusal to build an operator: a config it does not accept.
pub(crate) fn build_error(e: opendal::Error) -> Error {
    Error::Config(format!("invalid storage config: {e}"))
}
