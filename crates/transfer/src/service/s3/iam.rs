//! Keys scoped to a prefix of the bucket (`backuprepo grant`): a user with one access key and
//! one inline policy, made through the IAM API of the storage (AWS's query protocol, which
//! SeaweedFS serves on its S3 port and MinIO-compatible gateways accept), signed with the
//! repository's own key.
//!
//! The policy allows, under `bucket/<key prefix>`: reading, and unless read-only writing and
//! deleting objects and aborting uploads; and listing the bucket only for keys under the
//! prefix (`s3:prefix` condition). Nothing else.

use bytes::Bytes;
use sha2::{Digest, Sha256};

use super::endpoint;
use crate::config::{S3Config, Tuning};
use crate::diagnose::between;
use crate::{Error, Result};

/// A key made for a grant. The secret is shown once, in the config written for it.
pub struct GrantKey {
    pub user: String,
    pub access_key_id: String,
    pub secret_access_key: String,
}

impl std::fmt::Debug for GrantKey {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("GrantKey")
            .field("user", &self.user)
            .field("access_key_id", &self.access_key_id)
            .finish_non_exhaustive()
    }
}

/// The IAM API of one storage.
pub struct Iam {
    cfg: S3Config,
    http: reqwest::Client,
    endpoint: String,
}

impl Iam {
    /// The IAM API at `iam_endpoint`, or at the config's S3 endpoint.
    pub fn new(cfg: &S3Config, tuning: &Tuning, iam_endpoint: Option<&str>) -> Result<Self> {
        let endpoint = match iam_endpoint.filter(|e| !e.is_empty()) {
            Some(e) => super::super::with_scheme(e),
            None => endpoint(cfg)?,
        };
        Ok(Iam {
            cfg: cfg.clone(),
            http: super::super::http_client(tuning)?,
            endpoint,
        })
    }

    /// One action; the answer's body.
    async fn call(&self, action: &str, params: &[(&str, &str)]) -> Result<String> {
        let mut body = format!("Action={action}&Version=2010-05-08");
        for (k, v) in params {
            body.push('&');
            body.push_str(k);
            body.push('=');
            body.push_str(&form(v));
        }
        let hash = hex::encode(Sha256::digest(body.as_bytes()));
        let url = format!("{}/", self.endpoint);
        let fail =
            |what: String| Error::Storage(format!("IAM {action} at {}: {what}", self.endpoint));
        let (mut parts, ()) = http::Request::builder()
            .method("POST")
            .uri(&url)
            .header(
                "content-type",
                "application/x-www-form-urlencoded; charset=utf-8",
            )
            .header("x-amz-content-sha256", &hash)
            .body(())
            .map_err(|e| fail(e.to_string()))?
            .into_parts();
        super::api::sign(&self.cfg, "iam", &mut parts)
            .await
            .map_err(|e| fail(format!("cannot sign: {e}")))?;
        let mut rb = self
            .http
            .post(parts.uri.to_string())
            .body(Bytes::from(body));
        for (k, v) in &parts.headers {
            if k != http::header::HOST {
                rb = rb.header(k.as_str(), v.as_bytes());
            }
        }
        let resp = rb
            .send()
            .await
            .map_err(|e| fail(format!("cannot reach it: {e}")))?;
        let status = resp.status();
        let text = resp.text().await.map_err(|e| fail(e.to_string()))?;
        if status.is_success() {
            return Ok(text);
        }
        let code = between(&text, "<Code>", '<').unwrap_or("");
        let message = between(&text, "<Message>", '<').unwrap_or("");
        Err(fail(match (status.as_u16(), code) {
            (404, _) | (_, "NotImplemented" | "InvalidAction") => format!(
                "the storage has no IAM API ({status} {code}); grants need one (SeaweedFS: start the S3 gateway with -s3.iam.readOnly=false)"
            ),
            (403, _) => format!(
                "the repository's key may not manage users ({status} {code} {message}); grants need an admin key"
            ),
            _ => format!("the service answered {status} {code} {message}"),
        }))
    }

    /// A user with one key, limited to `key_prefix` (a key prefix in the bucket, ending with
    /// `/`). Half-made users are removed when a later step fails.
    pub async fn create_scoped(
        &self,
        user: &str,
        key_prefix: &str,
        read_only: bool,
    ) -> Result<GrantKey> {
        self.call("CreateUser", &[("UserName", user)]).await?;
        let made = async {
            let policy = policy(&self.cfg.bucket, key_prefix, read_only);
            self.call(
                "PutUserPolicy",
                &[
                    ("UserName", user),
                    ("PolicyName", "backuprepo-grant"),
                    ("PolicyDocument", &policy),
                ],
            )
            .await?;
            let body = self.call("CreateAccessKey", &[("UserName", user)]).await?;
            let id = between(&body, "<AccessKeyId>", '<')
                .unwrap_or_default()
                .to_string();
            let secret = body
                .split("<SecretAccessKey>")
                .nth(1)
                .and_then(|r| r.split('<').next())
                .unwrap_or_default()
                .to_string();
            if id.is_empty() || secret.is_empty() {
                return Err(Error::Storage(
                    "IAM CreateAccessKey answered without a key".into(),
                ));
            }
            Ok(GrantKey {
                user: user.to_string(),
                access_key_id: id,
                secret_access_key: secret,
            })
        }
        .await;
        if made.is_err() {
            if let Err(e) = self.delete_user(user, None).await {
                tracing::warn!(error = %e, user, "removing a half-made grant user");
            }
        }
        made
    }

    /// Delete the user's key (when known), its policy and the user.
    pub async fn delete_user(&self, user: &str, access_key_id: Option<&str>) -> Result<()> {
        if let Some(id) = access_key_id {
            self.call(
                "DeleteAccessKey",
                &[("UserName", user), ("AccessKeyId", id)],
            )
            .await?;
        }
        let _ = self
            .call(
                "DeleteUserPolicy",
                &[("UserName", user), ("PolicyName", "backuprepo-grant")],
            )
            .await;
        self.call("DeleteUser", &[("UserName", user)])
            .await
            .map(|_| ())
    }
}

/// The inline policy of a grant.
pub fn policy(bucket: &str, key_prefix: &str, read_only: bool) -> String {
    let mut actions = vec!["s3:GetObject"];
    if !read_only {
        actions.extend(["s3:PutObject", "s3:DeleteObject", "s3:AbortMultipartUpload"]);
    }
    serde_json::json!({
        "Version": "2012-10-17",
        "Statement": [
            {"Effect": "Allow", "Action": actions,
             "Resource": [format!("arn:aws:s3:::{bucket}/{key_prefix}*")]},
            {"Effect": "Allow", "Action": ["s3:ListBucket"],
             "Resource": [format!("arn:aws:s3:::{bucket}")],
             "Condition": {"StringLike": {"s3:prefix": [format!("{key_prefix}*")]}}}
        ]
    })
    .to_string()
}

/// `application/x-www-form-urlencoded` value.
fn form(v: &str) -> String {
    let mut out = String::with_capacity(v.len());
    for b in v.bytes() {
        match b {
            b'A'..=b'Z' | b'a'..=b'z' | b'0'..=b'9' | b'-' | b'_' | b'.' | b'~' => {
                out.push(b as char)
            }
            _ => out.push_str(&format!("%{b:02X}")),
        }
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn read_only_policies_cannot_write() {
        let p = policy("b", "repo/team-a/", true);
        assert!(
            !p.contains("PutObject") && !p.contains("DeleteObject"),
            "{p}"
        );
        assert!(p.contains("arn:aws:s3:::b/repo/team-a/*"));
        let w = policy("b", "repo/team-a/", false);
        assert!(w.contains("s3:PutObject"));
        assert_eq!(form("a b/c"), "a%20b%2Fc");
    }
}
