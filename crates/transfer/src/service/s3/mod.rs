//! S3 and the S3-compatible services (AWS, MinIO, Alibaba OSS, Tencent COS, Huawei OBS, GCS's
//! XML API, Ceph, SeaweedFS, ...).

use opendal::{services, Operator};

use super::{build_error, with_scheme, Service};
use crate::config::{S3Config, S3Provider};
use crate::diagnose::{between, find_code};
use crate::probe::Operation;
use crate::{Error, Result};

mod api;
pub mod iam;
pub mod upload;

pub use api::{crc32c_header, crc32c_text, Api, Held, IncompleteUpload};

/// The endpoint for an S3-family config: as given (https:// added when the scheme is missing,
/// as rclone does), or derived from the region for providers with a fixed naming scheme.
pub fn endpoint(c: &S3Config) -> Result<String> {
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

/// Whether requests put the bucket in the path (else in the host name).
pub(crate) fn path_style(c: &S3Config) -> bool {
    c.force_path_style
        .unwrap_or(!c.provider.virtual_host_by_default())
}

/// Whether our own requests (the uploader, gc, versioning and lock reads, grants) can sign
/// for this config: a key is given. With `env_auth` (instance roles, IRSA, AWS_* variables)
/// only OpenDAL finds the credentials, so pushes go through its writer.
pub fn signs_itself(c: &S3Config) -> bool {
    !c.env_auth && !c.access_key_id.is_empty()
}

impl Service for S3Config {
    /// Our uploader composes large streams, so its parts never grow; OpenDAL's writer (used
    /// with `env_auth`) has S3's 10,000 parts.
    fn part_limit(&self) -> Option<u64> {
        (!signs_itself(self)).then_some(crate::pipeline::MAX_PARTS)
    }

    fn operator(&self) -> Result<Operator> {
        let c = self;
        // Every write OpenDAL makes (env_auth pushes) carries a CRC32C the service checks, as
        // our own uploader's do.
        let mut b = services::S3::default()
            .checksum_algorithm("crc32c")
            .bucket(&c.bucket)
            .root(&format!("/{}", c.prefix))
            .endpoint(&endpoint(c)?)
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
        if !path_style(c) {
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
        Operator::new(b).map_err(build_error)
    }

    fn endpoint(&self) -> String {
        endpoint(self).unwrap_or_else(|_| self.endpoint.clone())
    }

    fn host_port(&self) -> Option<(String, u16)> {
        crate::endpoint::parse(&self.endpoint)
    }

    fn secrets(&self) -> Vec<&str> {
        vec![self.secret_access_key.expose(), self.session_token.expose()]
    }

    fn checks_bucket_on_write(&self) -> bool {
        self.check_bucket
    }

    fn bucket_check(&self) -> Result<String, &'static str> {
        super::bucket_exists(
            self.check_bucket,
            format!("bucket {:?} exists", self.bucket),
            "not run: no_check_bucket is set, so backups write without checking the bucket either",
        )
    }

    fn missing_bucket(&self, endpoint: &str) -> Option<String> {
        Some(format!(
            "the bucket {:?} does not exist at {endpoint}; backuprepo never creates buckets: create it, or correct `bucket` in the BackupRepo's config",
            self.bucket
        ))
    }

    fn rejected_credentials(
        &self,
        text: &str,
    ) -> Option<(&'static str, &'static str, &'static str)> {
        let code = find_code(
            text,
            &[
                "InvalidAccessKeyId",
                "SignatureDoesNotMatch",
                "InvalidToken",
                "ExpiredToken",
                "InvalidSecurity",
            ],
        )?;
        let what = match code {
            "InvalidAccessKeyId" => "the access key ID is unknown to the storage",
            "SignatureDoesNotMatch" => "the secret access key does not match the access key ID",
            _ => "the session token is invalid or expired",
        };
        Some((
            code,
            what,
            "check accessKeyId and secretAccessKey in the BackupRepo's credential secret",
        ))
    }

    fn wrong_region(&self, text: &str, target: &str) -> Option<String> {
        let lower = text.to_lowercase();
        let code = find_code(
            text,
            &[
                "AuthorizationHeaderMalformed",
                "IllegalLocationConstraint",
                "PermanentRedirect",
                "IncorrectEndpoint",
                "InvalidRegion",
            ],
        );
        let header_region = between(&lower, "\"x-amz-bucket-region\": \"", '"');
        let redirect = text.contains("status: 301");
        if code.is_none() && !(redirect && header_region.is_some()) {
            return None;
        }
        let expected = between(text, "expecting '", '\'').or(header_region);
        let configured = if self.region.is_empty() {
            "us-east-1 (the default: `region` is empty)".to_string()
        } else {
            self.region.clone()
        };
        let code = code.map(|c| format!(" ({c})")).unwrap_or_default();
        Some(match expected {
            Some(r) => format!(
                "region mismatch at {target}{code}: the bucket is in region {r} but requests are signed for {configured}; set `region: {r}` (the bucket's region) in the BackupRepo's config, or use that region's endpoint"
            ),
            None => format!(
                "region mismatch at {target}{code}: requests are signed for {configured}, which is not the bucket's region; set `region` to the bucket's region in the BackupRepo's config, or use that region's endpoint"
            ),
        })
    }

    fn permission(&self, operation: Operation) -> &'static str {
        match operation {
            Operation::Put => "write permission (s3:PutObject)",
            Operation::Multipart => {
                "write permission for multipart uploads (s3:PutObject, s3:AbortMultipartUpload)"
            }
            Operation::Get => "read permission (s3:GetObject)",
            Operation::List | Operation::Bucket => "list permission (s3:ListBucket)",
            Operation::Delete => "delete permission (s3:DeleteObject)",
        }
    }

    fn unresolved(&self, endpoint: &str, cause: &str) -> Option<String> {
        if path_style(self) {
            return None;
        }
        let host = endpoint
            .split_once("://")
            .map(|(_, h)| h)
            .unwrap_or(endpoint)
            .trim_end_matches('/');
        Some(format!(
            "cannot resolve {}.{host}: with virtual-host-style addressing the bucket name is part of the host name, and DNS has no entry for it; set `forcePathStyle: true` (force_path_style = true) so requests go to {endpoint}/{}, or correct the endpoint ({cause})",
            self.bucket, self.bucket
        ))
    }
}
