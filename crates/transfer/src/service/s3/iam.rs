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
        if let Some(why) = crate::endpoint::parse(&endpoint)
            .and_then(|(host, _)| crate::endpoint::refused_literal(&host))
        {
            return Err(Error::Config(format!("IAM endpoint: {why}")));
        }
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
            (_, "NoSuchEntity") => format!("{status} NoSuchEntity {message}"),
            (404, _) | (_, "NotImplemented" | "InvalidAction") => format!(
                "the storage has no IAM API ({status} {code}); grants need one (SeaweedFS: start the S3 gateway with -s3.iam.readOnly=false)"
            ),
            (403, _) => format!(
                "the repository's key may not manage users ({status} {code} {message}); grants need an admin key"
            ),
            _ => format!("the service answered {status} {code} {message}"),
        }))
    }

    /// Whether the IAM API answers and accepts this key for managing users: one `ListUsers`,
    /// which changes nothing.
    pub async fn available(&self) -> Result<()> {
        self.call("ListUsers", &[]).await.map(|_| ())
    }

    /// A user with one key, limited to `scope`. Half-made users are removed when a later step
    /// fails.
    pub async fn create_scoped(&self, user: &str, scope: &Scope) -> Result<GrantKey> {
        self.call("CreateUser", &[("UserName", user)]).await?;
        let made = async {
            self.put_policy(user, scope).await?;
            self.create_key(user).await
        }
        .await;
        if made.is_err() {
            if let Err(e) = self.delete_user(user).await {
                tracing::warn!(error = %e, user, "removing a half-made user");
            }
        }
        made
    }

    /// Replace the user's policy with one for `scope`.
    pub async fn put_policy(&self, user: &str, scope: &Scope) -> Result<()> {
        let policy = policy(&self.cfg.bucket, scope);
        self.call(
            "PutUserPolicy",
            &[
                ("UserName", user),
                ("PolicyName", POLICY_NAME),
                ("PolicyDocument", &policy),
            ],
        )
        .await
        .map(|_| ())
    }

    /// A new key of an existing user (its other keys keep working).
    pub async fn create_key(&self, user: &str) -> Result<GrantKey> {
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

    /// Delete one key of a user; a key already gone counts as deleted.
    pub async fn delete_key(&self, user: &str, access_key_id: &str) -> Result<()> {
        match self
            .call(
                "DeleteAccessKey",
                &[("UserName", user), ("AccessKeyId", access_key_id)],
            )
            .await
        {
            Err(e) if is_no_such_entity(&e) => Ok(()),
            r => r.map(|_| ()),
        }
    }

    /// The IDs of a user's keys.
    async fn keys(&self, user: &str) -> Result<Vec<String>> {
        let body = self.call("ListAccessKeys", &[("UserName", user)]).await?;
        Ok(body
            .split("<AccessKeyId>")
            .skip(1)
            .filter_map(|r| r.split('<').next())
            .map(str::to_string)
            .collect())
    }

    /// Delete the user with all its keys and its policy. A user already gone counts as deleted.
    pub async fn delete_user(&self, user: &str) -> Result<()> {
        let keys = match self.keys(user).await {
            Err(e) if is_no_such_entity(&e) => return Ok(()),
            k => k?,
        };
        for id in keys {
            self.delete_key(user, &id).await?;
        }
        let _ = self
            .call(
                "DeleteUserPolicy",
                &[("UserName", user), ("PolicyName", POLICY_NAME)],
            )
            .await;
        match self.call("DeleteUser", &[("UserName", user)]).await {
            Err(e) if is_no_such_entity(&e) => Ok(()),
            r => r.map(|_| ()),
        }
    }
}

/// The name of the one inline policy backuprepo gives each user it makes.
const POLICY_NAME: &str = "backuprepo-grant";

fn is_no_such_entity(e: &Error) -> bool {
    e.to_string().contains("NoSuchEntity")
}

/// What a key may reach: key prefixes in the bucket (each ending with `/`) it may read and
/// write, and prefixes it may only read.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Scope {
    pub write: Vec<String>,
    pub read: Vec<String>,
    /// The repository locks what it writes (`backuprepo.io/retention`): the key may set
    /// retention and legal holds on objects under its write prefixes.
    pub lock: bool,
}

/// The inline policy of a scoped key: under each write prefix, reading, writing, deleting
/// objects, aborting uploads and reading their object lock (so `rm` can say what is locked),
/// and setting it when the repository locks what it writes; under each read prefix, reading;
/// listing the bucket only for keys under one of them (`s3:prefix` condition). Nothing else.
pub fn policy(bucket: &str, scope: &Scope) -> String {
    let resources = |prefixes: &[String]| -> Vec<String> {
        prefixes
            .iter()
            .map(|p| format!("arn:aws:s3:::{bucket}/{p}*"))
            .collect()
    };
    let mut statements = Vec::new();
    if !scope.write.is_empty() {
        let mut actions = vec![
            "s3:GetObject",
            "s3:PutObject",
            "s3:DeleteObject",
            "s3:AbortMultipartUpload",
            "s3:GetObjectRetention",
            "s3:GetObjectLegalHold",
        ];
        if scope.lock {
            actions.extend(["s3:PutObjectRetention", "s3:PutObjectLegalHold"]);
        }
        statements.push(serde_json::json!({
            "Effect": "Allow",
            "Action": actions,
            "Resource": resources(&scope.write),
        }));
    }
    if !scope.read.is_empty() {
        statements.push(serde_json::json!({
            "Effect": "Allow", "Action": ["s3:GetObject"], "Resource": resources(&scope.read),
        }));
    }
    let listed: Vec<String> = scope
        .write
        .iter()
        .chain(&scope.read)
        .map(|p| format!("{p}*"))
        .collect();
    statements.push(serde_json::json!({
        "Effect": "Allow", "Action": ["s3:ListBucket"],
        "Resource": [format!("arn:aws:s3:::{bucket}")],
        "Condition": {"StringLike": {"s3:prefix": listed}},
    }));
    serde_json::json!({"Version": "2012-10-17", "Statement": statements}).to_string()
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
        let read = |p: &str| Scope {
            read: vec![p.to_string()],
            ..Scope::default()
        };
        let p = policy("b", &read("repo/team-a/"));
        assert!(
            !p.contains("PutObject") && !p.contains("DeleteObject"),
            "{p}"
        );
        assert!(p.contains("arn:aws:s3:::b/repo/team-a/*"));
        let mut both = Scope {
            write: vec!["repo/a/".into()],
            read: vec!["repo/b/x/".into()],
            lock: false,
        };
        assert!(!policy("b", &both).contains("PutObjectRetention"));
        both.lock = true;
        assert!(policy("b", &both).contains("\"s3:PutObjectRetention\",\"s3:PutObjectLegalHold\""));
        let v: serde_json::Value = serde_json::from_str(&policy("b", &both)).unwrap();
        let st = v["Statement"].as_array().unwrap();
        assert_eq!(
            st[0]["Resource"],
            serde_json::json!(["arn:aws:s3:::b/repo/a/*"])
        );
        assert!(st[0]["Action"].to_string().contains("s3:PutObject"));
        assert_eq!(st[1]["Action"], serde_json::json!(["s3:GetObject"]));
        assert_eq!(
            st[1]["Resource"],
            serde_json::json!(["arn:aws:s3:::b/repo/b/x/*"])
        );
        assert_eq!(
            st[2]["Condition"]["StringLike"]["s3:prefix"],
            serde_json::json!(["repo/a/*", "repo/b/x/*"])
        );
        assert_eq!(form("a b/c"), "a%20b%2Fc");
    }
}
