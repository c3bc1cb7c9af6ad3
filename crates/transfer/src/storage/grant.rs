//! `grant` / `revoke`: keys limited to `<path>/<PREFIX>/` of a repository, made on the storage
//! (see [`crate::service::s3::iam`]), and the datasafed config that uses one.

use std::sync::Arc;

use super::Storage;
use crate::config::{Backend, S3Config, S3Provider};
use crate::service::s3::iam::{GrantKey, Iam, Scope};
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

    /// The IAM API of a storage that can scope keys, at `iam_endpoint` (`None`: the S3
    /// endpoint), and `scope` (paths under this storage's base) as key prefixes in its bucket.
    fn iam_for(&self, scope: &Scope, iam_endpoint: Option<&str>) -> Result<(Iam, Scope)> {
        let (c, api) = self.scopable()?;
        let in_bucket = |paths: &[String]| -> Result<Vec<String>> {
            paths
                .iter()
                .map(|p| Ok(api.key(&format!("{}{}/", self.base, grant_prefix(p)?))))
                .collect()
        };
        let scope = Scope {
            write: in_bucket(&scope.write)?,
            read: in_bucket(&scope.read)?,
            lock: self.lock.is_some(),
        };
        Ok((Iam::new(c, &self.tuning, iam_endpoint)?, scope))
    }

    /// Whether keys can be scoped on this storage: an S3 storage whose IAM API (at
    /// `iam_endpoint`, `None`: the S3 endpoint) accepts the repository's key. Makes nothing.
    pub async fn can_scope(&self, iam_endpoint: Option<&str>) -> Result<()> {
        let (iam, _) = self.iam_for(&Scope::default(), iam_endpoint)?;
        iam.available().await
    }

    /// Make a key for `prefix` (under the repository's path) named `user` on the storage,
    /// through the IAM API at `iam_endpoint` (`None`: the S3 endpoint), and its config.
    pub async fn grant(
        &self,
        user: &str,
        prefix: &str,
        read_only: bool,
        iam_endpoint: Option<&str>,
    ) -> Result<Granted> {
        let prefix = vec![prefix.to_string()];
        let scope = match read_only {
            true => Scope {
                read: prefix,
                ..Scope::default()
            },
            false => Scope {
                write: prefix,
                ..Scope::default()
            },
        };
        let (iam, in_bucket) = self.iam_for(&scope, iam_endpoint)?;
        let key = iam.create_scoped(user, &in_bucket).await?;
        let (c, _) = self.scopable()?;
        let key_prefix = in_bucket.write.iter().chain(&in_bucket.read).next();
        let config = grant_config(
            c,
            &key,
            key_prefix.map(String::as_str).unwrap_or_default(),
            read_only,
            &self.tuning,
        );
        Ok(Granted { key, config })
    }

    /// Make the user `user` with one key limited to `scope` (paths under this storage's base).
    pub async fn scoped_user(
        &self,
        user: &str,
        scope: &Scope,
        iam_endpoint: Option<&str>,
    ) -> Result<GrantKey> {
        let (iam, scope) = self.iam_for(scope, iam_endpoint)?;
        iam.create_scoped(user, &scope).await
    }

    /// A new key for an existing user (rotation: its other keys keep working until deleted).
    pub async fn scoped_key(&self, user: &str, iam_endpoint: Option<&str>) -> Result<GrantKey> {
        let (iam, _) = self.iam_for(&Scope::default(), iam_endpoint)?;
        iam.create_key(user).await
    }

    /// Replace what an existing user may reach.
    pub async fn rescope(
        &self,
        user: &str,
        scope: &Scope,
        iam_endpoint: Option<&str>,
    ) -> Result<()> {
        let (iam, scope) = self.iam_for(scope, iam_endpoint)?;
        iam.put_policy(user, &scope).await
    }

    /// Delete one key of a user (gone already is fine).
    pub async fn delete_scoped_key(
        &self,
        user: &str,
        access_key_id: &str,
        iam_endpoint: Option<&str>,
    ) -> Result<()> {
        let (iam, _) = self.iam_for(&Scope::default(), iam_endpoint)?;
        iam.delete_key(user, access_key_id).await
    }

    /// Delete a user made by [`Storage::grant`] or [`Storage::scoped_user`], with every key
    /// it has (gone already is fine).
    pub async fn revoke(&self, user: &str, iam_endpoint: Option<&str>) -> Result<()> {
        let (iam, _) = self.iam_for(&Scope::default(), iam_endpoint)?;
        iam.delete_user(user).await
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
