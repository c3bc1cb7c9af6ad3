//! Config → OpenDAL operator, built in one function from the typed config plus layers
//! (retry with jitter for temporary errors, timeouts), and our own HTTP client so TLS options
//! (`no_check_certificate`, `ca_cert`) and a connect timeout apply.

use std::time::Duration;

use opendal::layers::{RetryLayer, TimeoutLayer};
use opendal::services;
use opendal::Operator;

use crate::config::{Backend, S3Config, S3Provider, ToolConfig};
use crate::{Error, Result};

/// Temporary files of local writes live here (inside the root, so rename is atomic) and are
/// hidden from listings.
pub const LOCAL_TMP_DIR: &str = ".backuprepo-tmp";

pub fn build(cfg: &ToolConfig) -> Result<Operator> {
    install_crypto_provider();
    let target = cfg.backend.target();
    let op = match &cfg.backend {
        Backend::S3(c) => {
            let endpoint = s3_endpoint(c)?;
            let mut b = services::S3::default()
                .bucket(&c.bucket)
                .root(&format!("/{}", c.prefix))
                .endpoint(&endpoint)
                .region(if c.region.is_empty() {
                    "us-east-1"
                } else {
                    &c.region
                });
            if !c.access_key_id.is_empty() {
                b = b.access_key_id(c.access_key_id.expose());
            }
            if !c.secret_access_key.is_empty() {
                b = b.secret_access_key(c.secret_access_key.expose());
            }
            if !c.session_token.is_empty() {
                b = b.session_token(c.session_token.expose());
            }
            if !c.env_auth {
                // Only what the config says: no ~/.aws files, no instance metadata lookups.
                b = b.disable_config_load().disable_ec2_metadata();
            }
            let path_style = c
                .force_path_style
                .unwrap_or(!c.provider.virtual_host_by_default());
            if !path_style {
                b = b.enable_virtual_host_style();
            }
            if let Some(sc) = &c.storage_class {
                b = b.default_storage_class(sc);
            }
            if let Some(acl) = &c.acl {
                b = b.default_acl(acl);
            }
            if let Some(sse) = &c.server_side_encryption {
                b = b.server_side_encryption(sse);
            }
            Operator::new(b).map_err(|e| Error::from_opendal(e, &target))?
        }
        Backend::Ftp(c) => {
            let scheme = if c.explicit_tls { "ftps" } else { "ftp" };
            let mut b = services::Ftp::default()
                .endpoint(&format!("{scheme}://{}:{}", c.host, c.port))
                .user(&c.user)
                .root(&format!("/{}", c.root.trim_matches('/')));
            if !c.pass.is_empty() {
                b = b.password(c.pass.expose());
            }
            Operator::new(b).map_err(|e| Error::from_opendal(e, &target))?
        }
        Backend::Azblob(c) => {
            let endpoint = if c.endpoint.is_empty() {
                format!("https://{}.blob.core.windows.net", c.account)
            } else {
                with_scheme(&c.endpoint)
            };
            let mut b = services::Azblob::default()
                .container(&c.container)
                .root(&format!("/{}", c.prefix))
                .endpoint(&endpoint)
                .account_name(&c.account);
            if !c.key.is_empty() {
                b = b.account_key(c.key.expose());
            }
            Operator::new(b).map_err(|e| Error::from_opendal(e, &target))?
        }
        Backend::Local(c) => {
            let root = std::path::absolute(&c.root)
                .map_err(|e| Error::io(format!("resolve {}", c.root.display()), e))?;
            if !root.is_dir() {
                return Err(Error::Config(format!(
                    "the local root {} does not exist or is not a directory; create it first",
                    root.display()
                )));
            }
            let b = services::Fs::default()
                .root(&root.display().to_string())
                .atomic_write_dir(&root.join(LOCAL_TMP_DIR).display().to_string());
            Operator::new(b).map_err(|e| Error::from_opendal(e, &target))?
        }
    };
    let op = with_http_client(op, cfg)?;
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

fn with_http_client(op: Operator, cfg: &ToolConfig) -> Result<Operator> {
    let mut b = reqwest::Client::builder()
        .connect_timeout(Duration::from_secs(10))
        .tls_danger_accept_invalid_certs(cfg.tuning.insecure);
    if let Some(path) = &cfg.tuning.ca_cert {
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
    let client = b
        .build()
        .map_err(|e| Error::Config(format!("cannot build the HTTP client: {e}")))?;
    let transport = opendal::HttpTransporter::new(
        opendal_http_transport_reqwest::ReqwestTransport::new(client),
    );
    let ctx = op.context().with_http_transport(transport);
    Ok(op.with_context(ctx))
}

fn with_scheme(ep: &str) -> String {
    if ep.contains("://") {
        ep.trim_end_matches('/').to_string()
    } else {
        format!("https://{}", ep.trim_end_matches('/'))
    }
}

/// The endpoint for an S3-family config: as given (https:// added when the scheme is missing,
/// as rclone does), or derived from the region for providers with a fixed naming scheme.
pub fn s3_endpoint(c: &S3Config) -> Result<String> {
    if !c.endpoint.is_empty() {
        return Ok(with_scheme(&c.endpoint));
    }
    let region = c.region.as_str();
    let need_region = |p: &str| {
        Error::Config(format!(
            "[storage] (type s3, provider {p}) has neither `endpoint` nor `region`; set region (e.g. us-west-1) or the endpoint"
        ))
    };
    Ok(match c.provider {
        S3Provider::Aws if region.is_empty() => return Err(need_region("AWS")),
        S3Provider::Aws if region.starts_with("cn-") => format!("https://s3.{region}.amazonaws.com.cn"),
        S3Provider::Aws => format!("https://s3.{region}.amazonaws.com"),
        S3Provider::Alibaba if region.is_empty() => return Err(need_region("Alibaba")),
        S3Provider::Alibaba => format!("https://oss-{region}.aliyuncs.com"),
        S3Provider::TencentCos if region.is_empty() => return Err(need_region("TencentCOS")),
        S3Provider::TencentCos => format!("https://cos.{region}.myqcloud.com"),
        S3Provider::HuaweiObs if region.is_empty() => return Err(need_region("HuaweiOBS")),
        S3Provider::HuaweiObs => format!("https://obs.{region}.myhuaweicloud.com"),
        S3Provider::Gcs => "https://storage.googleapis.com".to_string(),
        S3Provider::Minio | S3Provider::Other => {
            return Err(Error::Config(
                "[storage] (type s3) needs `endpoint` for providers Minio and Other (e.g. http://minio.example:9000)".into(),
            ))
        }
    })
}
