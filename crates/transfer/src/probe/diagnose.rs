//! What a failed probe operation means and how to fix it: the storage's error, read for its
//! code, status and network cause, turned into one message with the fix, without credentials.

use super::*;

/// Credential values of the config, to be scrubbed from every message.
pub(super) fn secrets_of(cfg: &ToolConfig) -> Vec<String> {
    let v: Vec<&str> = match &cfg.backend {
        Backend::S3(c) => vec![c.secret_access_key.expose(), c.session_token.expose()],
        Backend::Ftp(c) => vec![c.pass.expose()],
        Backend::Azblob(c) => vec![c.key.expose()],
        Backend::Local(_) => vec![],
    };
    v.into_iter()
        .filter(|s| s.len() >= 4)
        .map(str::to_string)
        .collect()
}

/// Where we talk to, for messages: the endpoint URL (or host:port, or root directory).
pub(super) fn endpoint_of(cfg: &ToolConfig) -> String {
    match &cfg.backend {
        Backend::S3(c) => backend::s3_endpoint(c).unwrap_or_else(|_| c.endpoint.clone()),
        Backend::Azblob(c) if c.endpoint.is_empty() => {
            format!("https://{}.blob.core.windows.net", c.account)
        }
        Backend::Azblob(c) => c.endpoint.clone(),
        Backend::Ftp(c) => format!("ftp://{}:{}", c.host, c.port),
        Backend::Local(c) => c.root.display().to_string(),
    }
}

/// The error and every source below it, as one line: the interesting part (a DNS or TLS
/// failure) is often only in the innermost source.
pub(super) fn full_text(err: &opendal::Error) -> String {
    let mut text = err.to_string();
    let mut cur: Option<&dyn std::error::Error> = std::error::Error::source(err);
    while let Some(e) = cur {
        let s = e.to_string();
        if !text.contains(&s) {
            text.push_str(": ");
            text.push_str(&s);
        }
        cur = e.source();
    }
    text
}

/// The causes below the error (for network failures: reqwest → hyper → io), lowercase and
/// without URLs, so a bucket or host name can never look like a symptom. Errors without a
/// source (answers of the service) use their own text.
pub(super) fn network_text(err: &opendal::Error) -> String {
    let mut parts = Vec::new();
    let mut cur: Option<&dyn std::error::Error> = std::error::Error::source(err);
    while let Some(e) = cur {
        parts.push(e.to_string());
        cur = e.source();
    }
    if parts.is_empty() {
        parts.push(err.to_string());
    }
    strip_urls(&parts.join(": ")).to_lowercase()
}

/// Drop `http://…`/`https://…`/`ftp://…` up to the next space, `)` or `,`.
pub(super) fn strip_urls(text: &str) -> String {
    let mut out = String::with_capacity(text.len());
    let mut rest = text;
    while let Some(i) = ["http://", "https://", "ftp://"]
        .iter()
        .filter_map(|p| rest.find(p))
        .min()
    {
        out.push_str(&rest[..i]);
        let tail = &rest[i..];
        let end = tail
            .find(|c: char| c.is_whitespace() || c == ')' || c == ',')
            .unwrap_or(tail.len());
        out.push_str("<url>");
        rest = &tail[end..];
    }
    out.push_str(rest);
    out
}

/// The innermost cause, short: `Connection refused (os error 111)`,
/// `invalid peer certificate: UnknownIssuer`, ...
pub(super) fn root_cause(err: &opendal::Error) -> String {
    let mut last: Option<String> = None;
    let mut cur: Option<&dyn std::error::Error> = std::error::Error::source(err);
    while let Some(e) = cur {
        last = Some(e.to_string());
        cur = e.source();
    }
    let s = last.unwrap_or_else(|| err.to_string());
    let s = s.lines().next().unwrap_or_default().to_string();
    if s.chars().count() > 200 {
        format!("{}…", s.chars().take(200).collect::<String>())
    } else {
        s
    }
}

pub(super) fn is_missing_bucket(text: &str) -> bool {
    text.contains("NoSuchBucket") || text.contains("ContainerNotFound")
}

pub(super) fn find_code<'a>(text: &str, codes: &[&'a str]) -> Option<&'a str> {
    codes.iter().find(|c| text.contains(*c)).copied()
}

/// Text between `start` and the next `end` after it.
pub(super) fn between<'a>(text: &'a str, start: &str, end: char) -> Option<&'a str> {
    let i = text.find(start)? + start.len();
    let rest = &text[i..];
    let j = rest.find(end)?;
    Some(&rest[..j]).filter(|s| !s.is_empty() && s.len() < 64)
}

/// Turn an OpenDAL error into one message naming the problem and the fix. Extends
/// [`Error::from_opendal`] with what a pre-check can tell apart: which operation was denied,
/// credentials vs. permissions, the bucket's region, virtual-host DNS failures, TLS.
pub(super) fn classify(cfg: &ToolConfig, operation: Operation, err: opendal::Error) -> String {
    let text = full_text(&err);
    let lower = text.to_lowercase();
    let target = cfg.backend.target();
    let endpoint = endpoint_of(cfg);
    let has = |needle: &str| lower.contains(needle);
    let net_text = network_text(&err);
    let net = |needle: &str| net_text.contains(needle);

    // Missing bucket / container.
    if is_missing_bucket(&text) {
        return match &cfg.backend {
            Backend::Azblob(c) => format!(
                "the container {:?} does not exist in storage account {:?} at {endpoint}; backuprepo never creates containers: create it, or correct `container` in the BackupRepo's config",
                c.container, c.account
            ),
            Backend::S3(c) => format!(
                "the bucket {:?} does not exist at {endpoint}; backuprepo never creates buckets: create it, or correct `bucket` in the BackupRepo's config",
                c.bucket
            ),
            _ => Error::from_opendal(err, &target).to_string(),
        };
    }

    // Credentials the storage does not accept at all.
    let cred = match &cfg.backend {
        Backend::S3(_) => find_code(
            &text,
            &[
                "InvalidAccessKeyId",
                "SignatureDoesNotMatch",
                "InvalidToken",
                "ExpiredToken",
                "InvalidSecurity",
            ],
        )
        .map(|code| {
            let what = match code {
                "InvalidAccessKeyId" => "the access key ID is unknown to the storage",
                "SignatureDoesNotMatch" => {
                    "the secret access key does not match the access key ID"
                }
                _ => "the session token is invalid or expired",
            };
            (code, what, "check accessKeyId and secretAccessKey in the BackupRepo's credential secret")
        }),
        // Azure answers a bad signature with AuthenticationFailed (Azurite: AuthorizationFailure,
        // which Azure itself uses for missing permissions); both say "failed to authenticate".
        Backend::Azblob(_) => find_code(&text, &["AuthenticationFailed", "InvalidAuthenticationInfo"])
            .or_else(|| {
                has("failed to authenticate")
                    .then(|| find_code(&text, &["AuthorizationFailure"]).unwrap_or("403"))
            })
            .map(|code| {
                (
                    code,
                    "the account key was not accepted",
                    "check the storage account name and accountKey in the BackupRepo's credential secret",
                )
            }),
        Backend::Ftp(_) => (text.contains("[530]")
            || has("login incorrect")
            || has("not logged in")
            || has("authentication failed"))
        .then_some((
            "530",
            "the user or password was not accepted",
            "check the ftp user and password in the BackupRepo's credential secret",
        )),
        Backend::Local(_) => None,
    };
    if let Some((code, what, fix)) = cred {
        return format!("the storage at {target} rejected the credentials ({code}): {what}; {fix}");
    }

    // Region mismatch (S3).
    if let Backend::S3(c) = &cfg.backend {
        let code = find_code(
            &text,
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
        if code.is_some() || (redirect && header_region.is_some()) {
            let expected = between(&text, "expecting '", '\'')
                .or(header_region)
                .map(str::to_string);
            let configured = if c.region.is_empty() {
                "us-east-1 (the default: `region` is empty)".to_string()
            } else {
                c.region.clone()
            };
            let code = code.map(|c| format!(" ({c})")).unwrap_or_default();
            return match expected {
                Some(r) => format!(
                    "region mismatch at {target}{code}: the bucket is in region {r} but requests are signed for {configured}; set `region: {r}` (the bucket's region) in the BackupRepo's config, or use that region's endpoint"
                ),
                None => format!(
                    "region mismatch at {target}{code}: requests are signed for {configured}, which is not the bucket's region; set `region` to the bucket's region in the BackupRepo's config, or use that region's endpoint"
                ),
            };
        }
    }

    // Denied for this operation only: the credentials are valid, the permission is missing.
    let denied_code = find_code(
        &text,
        &[
            "AccessDenied",
            "AuthorizationPermissionMismatch",
            "AuthorizationFailure",
            "AllAccessDisabled",
        ],
    );
    if err.kind() == ErrorKind::PermissionDenied || denied_code.is_some() {
        let s3 = matches!(cfg.backend, Backend::S3(_));
        let need = match operation {
            Operation::Put if s3 => "write permission (s3:PutObject)",
            Operation::Multipart if s3 => {
                "write permission for multipart uploads (s3:PutObject, s3:AbortMultipartUpload)"
            }
            Operation::Get if s3 => "read permission (s3:GetObject)",
            Operation::List | Operation::Bucket if s3 => "list permission (s3:ListBucket)",
            Operation::Delete if s3 => "delete permission (s3:DeleteObject)",
            Operation::Put | Operation::Multipart => "write permission",
            Operation::Get => "read permission",
            Operation::List | Operation::Bucket => "list permission",
            Operation::Delete => "delete permission",
        };
        let code = denied_code.map(|c| format!(" ({c})")).unwrap_or_default();
        return format!(
            "access denied by {target}{code} for the {operation}: the key needs {need}; grant it in the bucket policy or the key's role (a read-only key cannot hold backups)"
        );
    }

    // TLS: before the connection checks, since a failed handshake is also a failed request.
    if net("certificate")
        || net("handshake")
        || net("rustls")
        || net("invalidcontenttype")
        || net("corrupt message")
        || net("unknownissuer")
        || net("tls")
    {
        return format!(
            "TLS failed with {endpoint}: {}; if the server's certificate comes from a private CA, set `caCert` (ca_cert) to that CA's PEM bundle; `insecure: true` (no_check_certificate = true) skips verification (testing only); if the server speaks plain HTTP, use an http:// endpoint",
            root_cause(&err)
        );
    }

    // DNS.
    if net("dns error")
        || net("failed to lookup address")
        || net("name or service not known")
        || net("no address associated")
        || net("nodename nor servname")
        || net("name resolution")
    {
        if let Backend::S3(c) = &cfg.backend {
            let path_style = c
                .force_path_style
                .unwrap_or(!c.provider.virtual_host_by_default());
            if !path_style {
                let host = endpoint
                    .split_once("://")
                    .map(|(_, h)| h)
                    .unwrap_or(&endpoint)
                    .trim_end_matches('/');
                return format!(
                    "cannot resolve {}.{host}: with virtual-host-style addressing the bucket name is part of the host name, and DNS has no entry for it; set `forcePathStyle: true` (force_path_style = true) so requests go to {endpoint}/{}, or correct the endpoint ({})",
                    c.bucket,
                    c.bucket,
                    root_cause(&err)
                );
            }
        }
        return format!(
            "cannot resolve the host name of {endpoint}: {}; check the endpoint (host) spelling and the cluster's DNS",
            root_cause(&err)
        );
    }

    // Unreachable.
    if net("connection refused")
        || net("tcp connect")
        || net("connect error")
        || net("error sending request")
        || net("connection reset")
        || net("network is unreachable")
        || net("no route to host")
        || net("timed out")
        || net("connection closed")
    {
        return format!(
            "cannot reach {endpoint}: {}; check the endpoint host and port, that the server is running, and that network policies or firewalls allow the connection",
            root_cause(&err)
        );
    }

    if err.kind() == ErrorKind::NotFound && operation == Operation::Get {
        return "the object just written is not there when read back: the storage lacks read-after-write consistency, or a gateway lost the write".to_string();
    }
    Error::from_opendal(err, &target).to_string()
}
