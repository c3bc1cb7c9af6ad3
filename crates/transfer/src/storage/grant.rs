//! `grant` / `revoke`: keys limited to `<path>/<PREFIX>/` of a repository, made on the storage
//! (see [`crate::service::s3::iam`]), and the datasafed config that uses one.

use std::sync::Arc;

use super::Storage;
use crate::config::{Backend, S3Config, S3Provider};
use crate::service::s3::iam::{GrantKey, Iam};
use crate::service::s3::Api;
use crate::{Error, Result};

/// A key made for a grant, and the config that uses it (holds the secret: write it 0600).
pub struct Granted {
    pub key: GrantKey,
    pub config: String,
}

impl Storage {
    /// The S3 config of a storage that can scope keys, with our requests to it, or why it
    /// cannot.
    fn scopable(&self) -> Result<(&S3Config, &Arc<Api>)> {
        match (&self.backend, self.s3()?) {
            (Backend::S3(c), Some((_, api)))
                if matches!(c.provider, S3Provider::Minio | S3Provider::Other) =>
            {
                Ok((c, api))
            }
            (Backend::S3(_), _) => Err(Error::Unsupported(
                "this storage cannot scope keys through backuprepo yet: grants use the storage's IAM API, which the providers minio and s3-compatible (SeaweedFS, MinIO, Ceph RGW) offer at their S3 endpoint; nothing was created".into(),
            )),
            (_, _) => Err(Error::Unsupported(
                "this storage has no keys to scope (grants need an S3-compatible storage with an IAM API: providers minio and s3-compatible); nothing was created".into(),
            )),
        }
    }

    /// Make a key for `prefix` (under the repository's path) named `user` on the storage,
    /// through the IAM API at `iam_endpoint` (`None`: the S3 endpoint).
    pub async fn grant(
        &self,
        user: &str,
        prefix: &str,
        read_only: bool,
        iam_endpoint: Option<&str>,
    ) -> Result<Granted> {
        let (c, api) = self.scopable()?;
        let prefix = grant_prefix(prefix)?;
        let key_prefix = api.key(&format!("{}{prefix}/", self.base));
        let key = Iam::new(c, &self.tuning, iam_endpoint)?
            .create_scoped(user, &key_prefix, read_only)
            .await?;
        let config = grant_config(c, &key, &key_prefix, read_only, &self.tuning);
        Ok(Granted { key, config })
    }

    /// Delete a grant's key and user on the storage.
    pub async fn revoke(
        &self,
        user: &str,
        access_key_id: &str,
        iam_endpoint: Option<&str>,
    ) -> Result<()> {
        let (c, _) = self.scopable()?;
        Iam::new(c, &self.tuning, iam_endpoint)?
            .delete_user(user, Some(access_key_id))
            .await
    }
}

/// A prefix a grant may name: relative, no `..`, plain characters.
fn grant_prefix(p: &str) -> Result<String> {
    let p = p.trim_matches('/');
    let ok = !p.is_empty()
        && p.split('/').all(|c| !c.is_empty() && c != "." && c != "..")
        && p.bytes()
            .all(|b| b.is_ascii_alphanumeric() || b"-_./".contains(&b));
    if ok {
        Ok(p.to_string())
    } else {
        Err(Error::InvalidPath(format!(
            "--prefix {p:?}: use a relative path of letters, digits, '-', '_', '.' and '/', e.g. the namespace whose backups it is for"
        )))
    }
}

/// The datasafed config of a grant: the repository's S3 settings, the grant's key, and its
/// prefix as the root.
fn grant_config(
    c: &S3Config,
    key: &GrantKey,
    key_prefix: &str,
    read_only: bool,
    tuning: &crate::config::Tuning,
) -> String {
    let provider = match c.provider {
        S3Provider::Minio => "Minio",
        _ => "Other",
    };
    let mut out = format!(
        "[storage]\ntype = s3\nprovider = {provider}\nenv_auth = false\naccess_key_id = {}\nsecret_access_key = {}\nregion = {}\nendpoint = {}\nroot = {}/{}\nchunk_size = 50Mi\n",
        key.access_key_id,
        key.secret_access_key,
        c.region,
        c.endpoint,
        c.bucket,
        key_prefix.trim_end_matches('/'),
    );
    if let Some(p) = c.force_path_style {
        out.push_str(&format!("force_path_style = {p}\n"));
    }
    if tuning.insecure {
        out.push_str("no_check_certificate = true\n");
    }
    if let Some(ca) = &tuning.ca_cert {
        out.push_str(&format!("ca_cert = {}\n", ca.display()));
    }
    if read_only {
        out.push_str("read_only = true\n");
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn prefixes_are_relative_and_plain() {
        assert_eq!(grant_prefix("/team-a/").unwrap(), "team-a");
        assert_eq!(grant_prefix("ns/db1").unwrap(), "ns/db1");
        for bad in ["", "/", "../x", "a/../b", "a b", "a//b"] {
            assert!(grant_prefix(bad).is_err(), "{bad:?}");
        }
    }
}
